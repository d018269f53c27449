/* libchorus_api.c: the public calls: each builds its wire message and hands
 * it to the engine; the synchronous ones then run the client's own loop
 * until the request's callback has run.
 */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "chorus_alloc.h"
#include "libchorus_int.h"

static struct wire_options wire_opts(const struct chorus_client *c,
                                     const struct chorus_opts *o) {
  struct wire_options w;
  memset(&w, 0, sizeof w);
  if (c->dc != NULL) /* protocol 4: LOCAL levels count the client's */
    w.dc = (struct wire_bytes){(const uint8_t *)c->dc, strlen(c->dc)};
  if (o != NULL) {
    w.r = o->r;
    w.w = o->w;
    w.pr = o->pr;
    w.pw = o->pw;
    w.timeout_ms = o->timeout_ms;
    w.sloppy = o->sloppy;
    w.read_repair = o->read_repair;
    w.flags = o->trace ? WIRE_OPT_TRACE : 0;
    if (o->keyspace != NULL) /* too long: chorus__route_submit says so */
      w.keyspace =
          (struct wire_bytes){(const uint8_t *)o->keyspace,
                              strnlen(o->keyspace, WIRE_MAX_KEYSPACE_NAME + 1)};
  }
  return w;
}

static struct wire_bytes wb(const void *p, size_t len) {
  struct wire_bytes b = {(const uint8_t *)p, len};
  return b;
}

static uint32_t opt_timeout(const struct chorus_opts *o) {
  return o ? o->timeout_ms : 0;
}

/* The public limits are the wire's (one definition: wire.h). */
_Static_assert(CHORUS_MAX_KEY == WIRE_MAX_KEY, "key limit");
_Static_assert(CHORUS_MAX_VALUE == WIRE_MAX_VALUE, "value limit");
_Static_assert(CHORUS_MAX_TTL_MS == WIRE_MAX_TTL_MS, "ttl limit");
_Static_assert(CHORUS_MAX_MEMBER == WIRE_MAX_MEMBER, "member limit");
_Static_assert(CHORUS_MAX_MEMBER <= CHORUS_MAX_VALUE, "a member is a value");
_Static_assert(CHORUS_MAX_KEYSPACE_NAME == WIRE_MAX_KEYSPACE_NAME,
               "keyspace name limit");

/* Borrowed byte arguments: NULL only with length 0 (the encoder checks
 * the lengths the limits below leave to it). */
static int check_bytes(struct chorus_client *c, const void *p, size_t len,
                       const char *what) {
  if (p == NULL && len > 0)
    return chorus_errf(c->errmsg, CHORUS_EINVAL, "NULL %s of %zu bytes", what,
                       len);
  return CHORUS_OK;
}

/* The limits a node would refuse with CHORUS_ETOOBIG, checked here first
 * with the same constants and the same words (docs/PROTOCOL.md, Limits). */
static int check_key(struct chorus_client *c, const void *key, size_t len) {
  int rc = check_bytes(c, key, len, "key");
  if (rc == CHORUS_OK && len == 0)
    rc = chorus_errf(c->errmsg, CHORUS_EINVAL, "empty key (1..%u bytes)",
                     CHORUS_MAX_KEY);
  if (rc == CHORUS_OK && len > CHORUS_MAX_KEY)
    rc = chorus_errf(c->errmsg, CHORUS_ETOOBIG,
                     "key of %zu bytes is over the %u-byte key limit", len,
                     CHORUS_MAX_KEY);
  return rc;
}

static int check_value(struct chorus_client *c, const void *value, size_t len) {
  int rc = check_bytes(c, value, len, "value");
  if (rc == CHORUS_OK && len > CHORUS_MAX_VALUE)
    rc = chorus_errf(c->errmsg, CHORUS_ETOOBIG,
                     "value of %zu bytes is over the %u-byte value limit", len,
                     CHORUS_MAX_VALUE);
  return rc;
}

/* Copies @n members into a wire list (the array only: the bytes stay
 * borrowed until the frame is encoded, inside this call). */
static int member_list(struct chorus_client *c,
                       const struct chorus_bytes *members, size_t n,
                       struct wire_bytes_list *out) {
  out->n = n;
  out->items = NULL;
  if (n == 0)
    return CHORUS_OK;
  if (members == NULL)
    return chorus_errf(c->errmsg, CHORUS_EINVAL, "NULL members");
  for (size_t i = 0; i < n; i++) {
    int rc = check_bytes(c, members[i].ptr, members[i].len, "member");
    if (rc == CHORUS_OK && members[i].len > CHORUS_MAX_MEMBER)
      rc = chorus_errf(c->errmsg, CHORUS_ETOOBIG,
                       "member %zu of %zu bytes is over the %u-byte member "
                       "limit",
                       i, members[i].len, CHORUS_MAX_MEMBER);
    if (rc != CHORUS_OK)
      return rc;
  }
  out->items = chorus_calloc(n, sizeof *out->items);
  if (out->items == NULL)
    return chorus_errf(c->errmsg, CHORUS_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++)
    out->items[i] = wb(members[i].ptr, members[i].len);
  return CHORUS_OK;
}

static int check_async(struct chorus_client *c) {
  if (c == NULL)
    return CHORUS_EINVAL;
  if (c->own_loop)
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "asynchronous call on a synchronous client (use "
                       "chorus_client_open_async)");
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * Message builders, shared by both APIs. Each returns what chorus__submit
 * returns.
 * ------------------------------------------------------------------------ */

static int do_get(struct chorus_client *c, uint8_t type, const void *key,
                  size_t key_len, const struct chorus_opts *opts, chorus_cb cb,
                  void *arg) {
  int rc = check_key(c, key, key_len);
  if (rc != CHORUS_OK)
    return rc;
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  /* GET, COUNTER_READ and SET_READ share the layout {key, opts}. */
  switch (type) {
  case WIRE_GET:
    m.get.key = wb(key, key_len);
    m.get.opts = wire_opts(c, opts);
    break;
  case WIRE_COUNTER_READ:
    m.counter_read.key = wb(key, key_len);
    m.counter_read.opts = wire_opts(c, opts);
    break;
  case WIRE_LWW_READ:
    m.lww_key.key = wb(key, key_len);
    m.lww_key.opts = wire_opts(c, opts);
    break;
  case WIRE_MAP_READ:
    m.map_read.key = wb(key, key_len);
    m.map_read.opts = wire_opts(c, opts);
    break;
  default:
    m.set_read.key = wb(key, key_len);
    m.set_read.opts = wire_opts(c, opts);
    break;
  }
  return chorus__route_submit(c, key, key_len, &m, false, opt_timeout(opts), cb,
                              arg);
}

/* LWW_SET (@value non-NULL or @value_len 0 with @set) or LWW_DELETE. */
static int do_lww(struct chorus_client *c, bool set, const void *key,
                  size_t key_len, const void *value, size_t value_len,
                  const struct chorus_opts *opts, chorus_cb cb, void *arg) {
  int rc = check_key(c, key, key_len);
  if (rc == CHORUS_OK && set)
    rc = check_value(c, value, value_len);
  if (rc != CHORUS_OK)
    return rc;
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  if (set) {
    m.type = WIRE_LWW_SET;
    m.lww_set.key = wb(key, key_len);
    m.lww_set.value = wb(value, value_len);
    m.lww_set.opts = wire_opts(c, opts);
  } else {
    m.type = WIRE_LWW_DELETE;
    m.lww_key.key = wb(key, key_len);
    m.lww_key.opts = wire_opts(c, opts);
  }
  return chorus__route_submit(c, key, key_len, &m, true, opt_timeout(opts), cb,
                              arg);
}

/* MAP_UPDATE: @ops encoded (chorus__map_ops_encode checks them), sent
 * with @context. */
static int do_map_update(struct chorus_client *c, const void *key,
                         size_t key_len, const struct chorus_map_op *ops,
                         size_t n, const void *context, size_t context_len,
                         const struct chorus_opts *opts, chorus_cb cb,
                         void *arg) {
  int rc = check_key(c, key, key_len);
  if (rc == CHORUS_OK)
    rc = check_bytes(c, context, context_len, "context");
  if (rc != CHORUS_OK)
    return rc;
  uint8_t *buf = NULL;
  size_t len = 0;
  if ((rc = chorus__map_ops_encode(ops, n, &buf, &len, c->errmsg)) != CHORUS_OK)
    return rc;
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_MAP_UPDATE;
  m.map_update.key = wb(key, key_len);
  m.map_update.ops = wb(buf, len);
  m.map_update.context = wb(context, context_len);
  m.map_update.opts = wire_opts(c, opts);
  rc = chorus__route_submit(c, key, key_len, &m, true, opt_timeout(opts), cb,
                            arg);
  chorus_free(buf);
  return rc;
}

_Static_assert((int)CHORUS_CAS_IF_MATCH == (int)WIRE_CAS_IF_MATCH &&
                   (int)CHORUS_CAS_DELETE_IF_MATCH ==
                       (int)WIRE_CAS_DELETE_IF_MATCH &&
                   CHORUS_CAS_CONTEXT_LEN == WIRE_CAS_CONTEXT_LEN,
               "libchorus's if-match conditions are the wire's");

static int do_cas(struct chorus_client *c, const void *key, size_t key_len,
                  int cond, const void *expected, size_t expected_len,
                  const void *value, size_t value_len,
                  const struct chorus_opts *opts, chorus_cb cb, void *arg) {
  int rc = check_key(c, key, key_len);
  if (rc != CHORUS_OK)
    return rc;
  if (cond < CHORUS_CAS_READ || cond > CHORUS_CAS_DELETE_IF_MATCH)
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "unknown compare-and-set condition %d", cond);
  bool match =
      cond == CHORUS_CAS_IF_MATCH || cond == CHORUS_CAS_DELETE_IF_MATCH;
  bool has_expected = match || cond == CHORUS_CAS_IF_VALUE ||
                      cond == CHORUS_CAS_DELETE_IF_VALUE;
  bool has_value = cond == CHORUS_CAS_SET || cond == CHORUS_CAS_IF_ABSENT ||
                   cond == CHORUS_CAS_IF_VALUE || cond == CHORUS_CAS_IF_MATCH;
  if (match && expected_len != CHORUS_CAS_CONTEXT_LEN)
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "an if-match context is %u bytes (a CAS answer's "
                       "context), not %zu",
                       CHORUS_CAS_CONTEXT_LEN, expected_len);
  if (has_expected &&
      (rc = check_value(c, expected, expected_len)) != CHORUS_OK)
    return rc;
  if (has_value && (rc = check_value(c, value, value_len)) != CHORUS_OK)
    return rc;
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_CAS;
  m.cas.key = wb(key, key_len);
  m.cas.cond = (uint8_t)cond;
  if (has_expected)
    m.cas.expected = wb(expected, expected_len);
  if (has_value)
    m.cas.value = wb(value, value_len);
  m.cas.opts = wire_opts(c, opts);
  /* A write, also a serial read: an error after sending may leave its
   * proposal with some replica (maybe_applied). */
  return chorus__route_submit(c, key, key_len, &m, cond != CHORUS_CAS_READ,
                              opt_timeout(opts), cb, arg);
}

static int do_put(struct chorus_client *c, const void *key, size_t key_len,
                  const void *value, size_t value_len, const void *context,
                  size_t context_len, const struct chorus_opts *opts,
                  chorus_cb cb, void *arg) {
  int rc = check_key(c, key, key_len);
  if (rc == CHORUS_OK)
    rc = check_value(c, value, value_len);
  if (rc == CHORUS_OK)
    rc = check_bytes(c, context, context_len, "context");
  if (rc != CHORUS_OK)
    return rc;
  uint64_t ttl = opts ? opts->ttl_ms : 0;
  if (ttl > CHORUS_MAX_TTL_MS)
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "ttl of %" PRIu64 " ms is over the %" PRIu64
                       "-ms limit (ten years)",
                       ttl, CHORUS_MAX_TTL_MS);
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  /* A put without a TTL stays a PUT, which every node understands. */
  m.type = ttl ? WIRE_PUT_TTL : WIRE_PUT;
  m.put.ttl_ms = ttl;
  m.put.key = wb(key, key_len);
  m.put.value = wb(value, value_len);
  m.put.context = wb(context, context_len);
  m.put.opts = wire_opts(c, opts);
  return chorus__route_submit(c, key, key_len, &m, true, opt_timeout(opts), cb,
                              arg);
}

static int do_delete(struct chorus_client *c, const void *key, size_t key_len,
                     const void *context, size_t context_len,
                     const struct chorus_opts *opts, chorus_cb cb, void *arg) {
  int rc = check_key(c, key, key_len);
  if (rc == CHORUS_OK)
    rc = check_bytes(c, context, context_len, "context");
  if (rc != CHORUS_OK)
    return rc;
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_DELETE;
  m.del.key = wb(key, key_len);
  m.del.context = wb(context, context_len);
  m.del.opts = wire_opts(c, opts);
  return chorus__route_submit(c, key, key_len, &m, true, opt_timeout(opts), cb,
                              arg);
}

static int do_counter_add(struct chorus_client *c, const void *key,
                          size_t key_len, int64_t delta,
                          const struct chorus_opts *opts, chorus_cb cb,
                          void *arg) {
  int rc = check_key(c, key, key_len);
  if (rc != CHORUS_OK)
    return rc;
  if (delta == 0)
    return chorus_errf(c->errmsg, CHORUS_EINVAL, "counter delta must not be 0");
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_COUNTER_ADD;
  m.counter_add.key = wb(key, key_len);
  m.counter_add.delta = delta;
  m.counter_add.op_id =
      opts && opts->op_id ? opts->op_id : chorus__next_op_id(c);
  m.counter_add.opts = wire_opts(c, opts);
  return chorus__route_submit(c, key, key_len, &m, true, opt_timeout(opts), cb,
                              arg);
}

static int do_set(struct chorus_client *c, uint8_t type, const void *key,
                  size_t key_len, const struct chorus_bytes *members, size_t n,
                  const void *context, size_t context_len,
                  const struct chorus_opts *opts, chorus_cb cb, void *arg) {
  int rc = check_key(c, key, key_len);
  if (rc == CHORUS_OK)
    rc = check_bytes(c, context, context_len, "context");
  if (rc != CHORUS_OK)
    return rc;
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  struct wire_bytes_list list;
  rc = member_list(c, members, n, &list);
  if (rc != CHORUS_OK)
    return rc;
  if (type == WIRE_SET_ADD) {
    m.set_add.key = wb(key, key_len);
    m.set_add.members = list;
    m.set_add.opts = wire_opts(c, opts);
  } else {
    m.set_remove.key = wb(key, key_len);
    m.set_remove.members = list;
    m.set_remove.context = wb(context, context_len);
    m.set_remove.opts = wire_opts(c, opts);
  }
  rc = chorus__route_submit(c, key, key_len, &m, true, opt_timeout(opts), cb,
                            arg);
  chorus_free(list.items);
  return rc;
}

/* A removal waits for a Raft commit, which may wait for an election (a
 * few hundred ms to seconds): more than a key's default timeout. The node
 * answers within it (ETIMEDOUT itself when the commit is late). */

/* CLUSTER_QUERY (a read: retried on another seed) or CLUSTER_REMOVE (a
 * write: never resent once sent) to the current seed. */
static int do_stage(struct chorus_client *c, int action, const char *name,
                    const char *with, bool force, chorus_cb cb, void *arg);

static int do_cluster(struct chorus_client *c, uint8_t type, int action,
                      const char *name, const char *with, bool force,
                      chorus_cb cb, void *arg) {
  if (type == WIRE_CLUSTER_STAGE)
    return do_stage(c, action, name, with, force, cb, arg);
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  if (type == WIRE_CLUSTER_QUERY)
    return chorus__submit(c, &m, false, false, 0, cb, arg);
  size_t len = name ? strlen(name) : 0;
  if (len == 0 || len > WIRE_MAX_NAME)
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "a member's name is 1..%u bytes", WIRE_MAX_NAME);
  size_t wlen = with ? strlen(with) : 0;
  if (type == WIRE_CLUSTER_REPLACE && (wlen == 0 || wlen > WIRE_MAX_NAME))
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "a member's name is 1..%u bytes", WIRE_MAX_NAME);
  if (type == WIRE_CLUSTER_DECOMMISSION) {
    m.cluster_decommission.name = wb(name, len);
    m.cluster_decommission.force = force ? 1 : 0;
  } else if (type == WIRE_CLUSTER_REPLACE) {
    m.cluster_replace.name = wb(name, len);
    m.cluster_replace.with = wb(with, wlen);
  } else {
    m.cluster_remove.name = wb(name, len);
    m.cluster_remove.force = force ? 1 : 0;
  }
  return chorus__submit(c, &m, true, false, CHORUS__ADMIN_TIMEOUT_MS, cb, arg);
}

/* CLUSTER_STAGE: a write, never resent once sent (as CLUSTER_REMOVE). */
static int do_stage(struct chorus_client *c, int action, const char *name,
                    const char *with, bool force, chorus_cb cb, void *arg) {
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_CLUSTER_STAGE;
  size_t len = name ? strlen(name) : 0, wlen = with ? strlen(with) : 0;
  bool names = action != CHORUS_STAGE_COMMIT && action != CHORUS_STAGE_CLEAR;
  if (action < CHORUS_STAGE_DECOMMISSION || action > CHORUS_STAGE_CLEAR)
    return chorus_errf(c->errmsg, CHORUS_EINVAL, "unknown stage action %d",
                       action);
  if ((names && (len == 0 || len > WIRE_MAX_NAME)) ||
      (action == CHORUS_STAGE_REPLACE && (wlen == 0 || wlen > WIRE_MAX_NAME)))
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "a member's name is 1..%u bytes", WIRE_MAX_NAME);
  m.cluster_stage.action = (uint8_t)action;
  if (names)
    m.cluster_stage.name = wb(name, len);
  if (action == CHORUS_STAGE_REPLACE)
    m.cluster_stage.with = wb(with, wlen);
  m.cluster_stage.force = force ? 1 : 0;
  return chorus__submit(c, &m, true, false, CHORUS__ADMIN_TIMEOUT_MS, cb, arg);
}

/* CLUSTER_PLAN: a read (nothing changes), retried on another seed. */
static int do_plan(struct chorus_client *c, int action, const char *name,
                   const char *dc, const char *rack, uint32_t vnodes,
                   chorus_cb cb, void *arg) {
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_CLUSTER_PLAN;
  size_t len = name ? strlen(name) : 0;
  if (action < CHORUS_PLAN_UNDER_WAY || action > CHORUS_PLAN_REMOVE)
    return chorus_errf(c->errmsg, CHORUS_EINVAL, "unknown plan action %d",
                       action);
  if (action != CHORUS_PLAN_UNDER_WAY && (len == 0 || len > WIRE_MAX_NAME))
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "a member's name is 1..%u bytes", WIRE_MAX_NAME);
  dc = dc ? dc : "dc1"; /* chorusd's defaults */
  rack = rack ? rack : "r1";
  if (strlen(dc) > WIRE_MAX_LABEL || strlen(rack) > WIRE_MAX_LABEL)
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "a datacenter or rack name is 0..%u bytes",
                       WIRE_MAX_LABEL);
  if (vnodes > 65535)
    return chorus_errf(c->errmsg, CHORUS_EINVAL, "vnodes are 0..65535");
  m.cluster_plan.action = (uint8_t)action;
  m.cluster_plan.name =
      action == CHORUS_PLAN_UNDER_WAY ? wb(NULL, 0) : wb(name, len);
  m.cluster_plan.dc = wb(dc, strlen(dc));
  m.cluster_plan.rack = wb(rack, strlen(rack));
  m.cluster_plan.vnodes = vnodes;
  return chorus__submit(c, &m, false, false, CHORUS__ADMIN_TIMEOUT_MS, cb, arg);
}

static int do_info(struct chorus_client *c, chorus_cb cb, void *arg) {
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_RING_QUERY;
  return chorus__submit(c, &m, false, true, 0, cb, arg);
}

static int do_repair(struct chorus_client *c, uint8_t type, chorus_cb cb,
                     void *arg) {
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  return chorus__submit(c, &m, false, false, 0, cb, arg);
}

static int do_repair_ranges(struct chorus_client *c, uint64_t first,
                            uint64_t last, bool now, chorus_cb cb, void *arg) {
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_REPAIR_RANGES;
  m.repair_ranges = (struct wire_repair_ranges){first, last, now ? 1 : 0};
  return chorus__submit(c, &m, false, false, 0, cb, arg);
}

/* ------------------------------------------------------------------------
 * Synchronous API
 * ------------------------------------------------------------------------ */

void chorus__sync_cb(struct chorus_client *c, struct chorus_result *res,
                     void *arg) {
  struct chorus__sync_wait *w = arg;
  assert(!w->done); /* a callback runs exactly once */
  chorus_result_move(w->res, res);
  w->done = true;
  /* A request can end in a timer callback; UV_RUN_ONCE would then go on
   * to poll for I/O without a timeout. Stopping makes that poll return. */
  uv_stop(c->loop);
}

/* Before: lets the loop see what arrived while the caller was away (a
 * closed connection), so a new write is not sent on a dead socket. */
int chorus__sync_begin(struct chorus_client *c, struct chorus_result *res,
                       struct chorus__sync_wait *w) {
  memset(res, 0, sizeof *res);
  w->done = false;
  w->res = res;
  if (c == NULL) {
    chorus__result_error(res, CHORUS_EINVAL, "NULL client");
    return CHORUS_EINVAL;
  }
  if (!c->own_loop) {
    chorus__result_error(res, CHORUS_EINVAL,
                         "synchronous call on an asynchronous client");
    return CHORUS_EINVAL;
  }
  uv_run(c->loop, UV_RUN_NOWAIT);
  return CHORUS_OK;
}

int chorus__sync_end(struct chorus_client *c, int rc,
                     struct chorus__sync_wait *w) {
  if (rc != CHORUS_OK) {
    assert(!w->done); /* a call that failed never runs its callback */
    chorus__result_error(w->res, rc, "%s",
                         c->errmsg[0] ? c->errmsg : chorus_strerror(rc));
    return rc;
  }
  while (!w->done)
    if (uv_run(c->loop, UV_RUN_ONCE) == 0 && !w->done) {
      /* Nothing left that could complete it: an engine bug, reported
       * rather than spun on. */
      chorus__result_error(w->res, CHORUS_EINTERNAL,
                           "request stalled with no pending I/O");
      return CHORUS_EINTERNAL;
    }
  return w->res->status;
}

int chorus_get(struct chorus_client *c, const void *key, size_t key_len,
               const struct chorus_opts *opts, struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(
      c, do_get(c, WIRE_GET, key, key_len, opts, chorus__sync_cb, &w), &w);
}

int chorus_put(struct chorus_client *c, const void *key, size_t key_len,
               const void *value, size_t value_len, const void *context,
               size_t context_len, const struct chorus_opts *opts,
               struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(c,
                          do_put(c, key, key_len, value, value_len, context,
                                 context_len, opts, chorus__sync_cb, &w),
                          &w);
}

int chorus_delete(struct chorus_client *c, const void *key, size_t key_len,
                  const void *context, size_t context_len,
                  const struct chorus_opts *opts, struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(c,
                          do_delete(c, key, key_len, context, context_len, opts,
                                    chorus__sync_cb, &w),
                          &w);
}

int chorus_counter_add(struct chorus_client *c, const void *key, size_t key_len,
                       int64_t delta, const struct chorus_opts *opts,
                       struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(
      c, do_counter_add(c, key, key_len, delta, opts, chorus__sync_cb, &w), &w);
}

int chorus_counter_read(struct chorus_client *c, const void *key,
                        size_t key_len, const struct chorus_opts *opts,
                        struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(
      c, do_get(c, WIRE_COUNTER_READ, key, key_len, opts, chorus__sync_cb, &w),
      &w);
}

int chorus_set_add(struct chorus_client *c, const void *key, size_t key_len,
                   const struct chorus_bytes *members, size_t n,
                   const struct chorus_opts *opts, struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(c,
                          do_set(c, WIRE_SET_ADD, key, key_len, members, n,
                                 NULL, 0, opts, chorus__sync_cb, &w),
                          &w);
}

int chorus_set_remove(struct chorus_client *c, const void *key, size_t key_len,
                      const struct chorus_bytes *members, size_t n,
                      const void *context, size_t context_len,
                      const struct chorus_opts *opts,
                      struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(c,
                          do_set(c, WIRE_SET_REMOVE, key, key_len, members, n,
                                 context, context_len, opts, chorus__sync_cb,
                                 &w),
                          &w);
}

int chorus_set_members(struct chorus_client *c, const void *key, size_t key_len,
                       const struct chorus_opts *opts,
                       struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(
      c, do_get(c, WIRE_SET_READ, key, key_len, opts, chorus__sync_cb, &w), &w);
}

int chorus_lww_set(struct chorus_client *c, const void *key, size_t key_len,
                   const void *value, size_t value_len,
                   const struct chorus_opts *opts, struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(c,
                          do_lww(c, true, key, key_len, value, value_len, opts,
                                 chorus__sync_cb, &w),
                          &w);
}

int chorus_lww_delete(struct chorus_client *c, const void *key, size_t key_len,
                      const struct chorus_opts *opts,
                      struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(
      c, do_lww(c, false, key, key_len, NULL, 0, opts, chorus__sync_cb, &w),
      &w);
}

int chorus_lww_get(struct chorus_client *c, const void *key, size_t key_len,
                   const struct chorus_opts *opts, struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(
      c, do_get(c, WIRE_LWW_READ, key, key_len, opts, chorus__sync_cb, &w), &w);
}

int chorus_map_update(struct chorus_client *c, const void *key, size_t key_len,
                      const struct chorus_map_op *ops, size_t n,
                      const void *context, size_t context_len,
                      const struct chorus_opts *opts,
                      struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(c,
                          do_map_update(c, key, key_len, ops, n, context,
                                        context_len, opts, chorus__sync_cb, &w),
                          &w);
}

int chorus_map_get(struct chorus_client *c, const void *key, size_t key_len,
                   const struct chorus_opts *opts, struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(
      c, do_get(c, WIRE_MAP_READ, key, key_len, opts, chorus__sync_cb, &w), &w);
}

int chorus_cas(struct chorus_client *c, const void *key, size_t key_len,
               int cond, const void *expected, size_t expected_len,
               const void *value, size_t value_len,
               const struct chorus_opts *opts, struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(c,
                          do_cas(c, key, key_len, cond, expected, expected_len,
                                 value, value_len, opts, chorus__sync_cb, &w),
                          &w);
}

int chorus_cas_async(struct chorus_client *c, const void *key, size_t key_len,
                     int cond, const void *expected, size_t expected_len,
                     const void *value, size_t value_len,
                     const struct chorus_opts *opts, chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_cas(c, key, key_len, cond, expected, expected_len, value,
                     value_len, opts, cb, arg);
}

/* do_lock: a LOCK. Lock operations name the lock's key in the lock
 * namespace (WIRE_LOCK_PREFIX + @name); a fenced put names its data key
 * (@key) and the lock (@name). */
static int do_lock(struct chorus_client *c, uint8_t op, const void *key,
                   size_t key_len, const void *name, size_t name_len,
                   const void *value, size_t value_len, const void *holder,
                   size_t holder_len, uint64_t token, uint64_t ttl_ms,
                   const struct chorus_opts *opts, chorus_cb cb, void *arg) {
  if (name_len == 0 || name_len > WIRE_MAX_LOCK_NAME || name == NULL)
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "a lock's name is 1 to %u bytes", WIRE_MAX_LOCK_NAME);
  if (holder_len > WIRE_MAX_LOCK_HOLDER)
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "a lock holder's id is at most %u bytes",
                       WIRE_MAX_LOCK_HOLDER);
  if ((op == WIRE_LOCK_ACQUIRE || op == WIRE_LOCK_RENEW) &&
      (ttl_ms == 0 || ttl_ms > WIRE_MAX_TTL_MS))
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "a lease's ttl is 1 ms to 10 years");
  uint8_t lkey[WIRE_LOCK_PREFIX_LEN + WIRE_MAX_LOCK_NAME];
  int rc;
  if (op == WIRE_LOCK_FENCED_PUT) {
    if ((rc = check_key(c, key, key_len)) != CHORUS_OK ||
        (rc = check_value(c, value, value_len)) != CHORUS_OK)
      return rc;
  } else {
    memcpy(lkey, WIRE_LOCK_PREFIX, WIRE_LOCK_PREFIX_LEN);
    memcpy(lkey + WIRE_LOCK_PREFIX_LEN, name, name_len);
    key = lkey;
    key_len = WIRE_LOCK_PREFIX_LEN + name_len;
  }
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_LOCK;
  m.lock.op = op;
  m.lock.key = wb(key, key_len);
  if (op == WIRE_LOCK_FENCED_PUT) {
    m.lock.name = wb(name, name_len);
    m.lock.value = wb(value, value_len);
  }
  m.lock.holder = wb(holder, holder_len);
  m.lock.token = token;
  m.lock.ttl_ms = ttl_ms;
  m.lock.opts = wire_opts(c, opts);
  return chorus__route_submit(c, key, key_len, &m, op != WIRE_LOCK_STATUS,
                              opt_timeout(opts), cb, arg);
}

static int lock_sync(struct chorus_client *c, uint8_t op, const void *key,
                     size_t key_len, const void *name, size_t name_len,
                     const void *value, size_t value_len, const void *holder,
                     size_t holder_len, uint64_t token, uint64_t ttl_ms,
                     const struct chorus_opts *opts,
                     struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(c,
                          do_lock(c, op, key, key_len, name, name_len, value,
                                  value_len, holder, holder_len, token, ttl_ms,
                                  opts, chorus__sync_cb, &w),
                          &w);
}

int chorus_lock_acquire(struct chorus_client *c, const void *name,
                        size_t name_len, const void *holder, size_t holder_len,
                        uint64_t ttl_ms, const struct chorus_opts *opts,
                        struct chorus_result *res) {
  return lock_sync(c, WIRE_LOCK_ACQUIRE, NULL, 0, name, name_len, NULL, 0,
                   holder, holder_len, 0, ttl_ms, opts, res);
}

int chorus_lock_renew(struct chorus_client *c, const void *name,
                      size_t name_len, uint64_t token, uint64_t ttl_ms,
                      const struct chorus_opts *opts,
                      struct chorus_result *res) {
  return lock_sync(c, WIRE_LOCK_RENEW, NULL, 0, name, name_len, NULL, 0, NULL,
                   0, token, ttl_ms, opts, res);
}

int chorus_lock_release(struct chorus_client *c, const void *name,
                        size_t name_len, uint64_t token,
                        const struct chorus_opts *opts,
                        struct chorus_result *res) {
  return lock_sync(c, WIRE_LOCK_RELEASE, NULL, 0, name, name_len, NULL, 0, NULL,
                   0, token, 0, opts, res);
}

int chorus_lock_status(struct chorus_client *c, const void *name,
                       size_t name_len, const struct chorus_opts *opts,
                       struct chorus_result *res) {
  return lock_sync(c, WIRE_LOCK_STATUS, NULL, 0, name, name_len, NULL, 0, NULL,
                   0, 0, 0, opts, res);
}

int chorus_fenced_put(struct chorus_client *c, const void *key, size_t key_len,
                      const void *value, size_t value_len, const void *lock,
                      size_t lock_len, uint64_t token,
                      const struct chorus_opts *opts,
                      struct chorus_result *res) {
  return lock_sync(c, WIRE_LOCK_FENCED_PUT, key, key_len, lock, lock_len, value,
                   value_len, NULL, 0, token, 0, opts, res);
}

int chorus_lock_acquire_async(struct chorus_client *c, const void *name,
                              size_t name_len, const void *holder,
                              size_t holder_len, uint64_t ttl_ms,
                              const struct chorus_opts *opts, chorus_cb cb,
                              void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_lock(c, WIRE_LOCK_ACQUIRE, NULL, 0, name, name_len, NULL, 0,
                      holder, holder_len, 0, ttl_ms, opts, cb, arg);
}

int chorus_lock_renew_async(struct chorus_client *c, const void *name,
                            size_t name_len, uint64_t token, uint64_t ttl_ms,
                            const struct chorus_opts *opts, chorus_cb cb,
                            void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_lock(c, WIRE_LOCK_RENEW, NULL, 0, name, name_len, NULL, 0,
                      NULL, 0, token, ttl_ms, opts, cb, arg);
}

int chorus_lock_release_async(struct chorus_client *c, const void *name,
                              size_t name_len, uint64_t token,
                              const struct chorus_opts *opts, chorus_cb cb,
                              void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_lock(c, WIRE_LOCK_RELEASE, NULL, 0, name, name_len, NULL, 0,
                      NULL, 0, token, 0, opts, cb, arg);
}

int chorus_lock_status_async(struct chorus_client *c, const void *name,
                             size_t name_len, const struct chorus_opts *opts,
                             chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_lock(c, WIRE_LOCK_STATUS, NULL, 0, name, name_len, NULL, 0,
                      NULL, 0, 0, 0, opts, cb, arg);
}

int chorus_fenced_put_async(struct chorus_client *c, const void *key,
                            size_t key_len, const void *value, size_t value_len,
                            const void *lock, size_t lock_len, uint64_t token,
                            const struct chorus_opts *opts, chorus_cb cb,
                            void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_lock(c, WIRE_LOCK_FENCED_PUT, key, key_len, lock, lock_len,
                      value, value_len, NULL, 0, token, 0, opts, cb, arg);
}

int chorus_ring(struct chorus_client *c, struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(c, do_info(c, chorus__sync_cb, &w), &w);
}

int chorus_status(struct chorus_client *c, struct chorus_result *res) {
  return chorus_ring(c, res);
}

int chorus_repair_status(struct chorus_client *c, struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(
      c, do_repair(c, WIRE_REPAIR_STATUS, chorus__sync_cb, &w), &w);
}

int chorus_repair_now(struct chorus_client *c, struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(c, do_repair(c, WIRE_REPAIR_NOW, chorus__sync_cb, &w),
                          &w);
}

int chorus_repair_ranges(struct chorus_client *c, uint64_t first, uint64_t last,
                         bool now, struct chorus_result *res) {
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, res, &w);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__sync_end(
      c, do_repair_ranges(c, first, last, now, chorus__sync_cb, &w), &w);
}

/* chorus__sync_result_end: the end of a call that returns one part of the
 * result (moved out by the caller on success): on failure the result's message
 * moves to c->errmsg; the rest is freed. */
int chorus__sync_result_end(struct chorus_client *c, struct chorus_result *res,
                            int rc) {
  if (rc != CHORUS_OK && c != NULL)
    snprintf(c->errmsg, sizeof c->errmsg, "%s",
             res->errmsg[0] ? res->errmsg : chorus_strerror(rc));
  chorus_result_free(res);
  return rc;
}

/* The cluster calls return the status alone: on success it moves out of
 * the result, on failure the result's message moves to c->errmsg. */
static int sync_cluster(struct chorus_client *c, uint8_t type, int action,
                        const char *name, const char *with, bool force,
                        struct chorus_cluster_status **out) {
  if (out == NULL)
    return c ? chorus_errf(c->errmsg, CHORUS_EINVAL, "NULL out")
             : CHORUS_EINVAL;
  *out = NULL;
  struct chorus_result res;
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, &res, &w);
  if (rc == CHORUS_OK)
    rc = chorus__sync_end(
        c, do_cluster(c, type, action, name, with, force, chorus__sync_cb, &w),
        &w);
  /* chorus__result_from_reply: a CLUSTER_REPLY that built is a status. */
  assert(rc != CHORUS_OK || res.cluster != NULL);
  if (rc == CHORUS_OK) {
    *out = res.cluster;
    res.cluster = NULL;
  }
  return chorus__sync_result_end(c, &res, rc);
}

int chorus_cluster_plan(struct chorus_client *c, int action, const char *name,
                        const char *dc, const char *rack, uint32_t vnodes,
                        struct chorus_cluster_plan **out) {
  if (out == NULL)
    return c ? chorus_errf(c->errmsg, CHORUS_EINVAL, "NULL out")
             : CHORUS_EINVAL;
  *out = NULL;
  struct chorus_result res;
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, &res, &w);
  if (rc == CHORUS_OK)
    rc = chorus__sync_end(
        c, do_plan(c, action, name, dc, rack, vnodes, chorus__sync_cb, &w), &w);
  assert(rc != CHORUS_OK || res.plan != NULL);
  if (rc == CHORUS_OK) {
    *out = res.plan;
    res.plan = NULL;
  }
  return chorus__sync_result_end(c, &res, rc);
}

/* KEYSPACE: LIST a read (resent on another seed), the others writes. */
static int do_keyspace(struct chorus_client *c, uint8_t op,
                       const struct chorus_keyspace *ks, const char *name,
                       chorus_cb cb, void *arg) {
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_KEYSPACE;
  m.keyspace.op = op;
  const char *nm = ks != NULL ? ks->name : name != NULL ? name : "";
  size_t len = strnlen(nm, WIRE_MAX_KEYSPACE_NAME + 1);
  if (len > WIRE_MAX_KEYSPACE_NAME || (op != WIRE_KS_LIST && len == 0))
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "a keyspace's name is 1..%u bytes",
                       WIRE_MAX_KEYSPACE_NAME);
  m.keyspace.name = wb(nm, len);
  if (ks != NULL) {
    size_t rl = strnlen(ks->replication, sizeof ks->replication);
    if (ks->type < 0 || ks->type > CHORUS_KS_MAP || rl > WIRE_MAX_KEYSPACE_REPL)
      return chorus_errf(c->errmsg, CHORUS_EINVAL,
                         "a keyspace's type is 0..%d, its replication spec "
                         "0..%u bytes",
                         CHORUS_KS_MAP, WIRE_MAX_KEYSPACE_REPL);
    m.keyspace.type = (uint8_t)ks->type;
    m.keyspace.replication = wb(ks->replication, rl);
    m.keyspace.read = ks->read;
    m.keyspace.write = ks->write;
    m.keyspace.ttl_ms = ks->ttl_ms;
    m.keyspace.siblings_warn = ks->siblings_warn;
    m.keyspace.siblings_max = ks->siblings_max;
  }
  return chorus__submit(c, &m, op != WIRE_KS_LIST, false,
                        op == WIRE_KS_LIST ? 0 : CHORUS__ADMIN_TIMEOUT_MS, cb,
                        arg);
}

static int sync_keyspace(struct chorus_client *c, uint8_t op,
                         const struct chorus_keyspace *ks, const char *name,
                         struct chorus_keyspaces **out) {
  if (out == NULL)
    return c ? chorus_errf(c->errmsg, CHORUS_EINVAL, "NULL out")
             : CHORUS_EINVAL;
  *out = NULL;
  if (op != WIRE_KS_LIST && op != WIRE_KS_DROP && ks == NULL)
    return c ? chorus_errf(c->errmsg, CHORUS_EINVAL, "NULL keyspace")
             : CHORUS_EINVAL;
  struct chorus_result res;
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, &res, &w);
  if (rc == CHORUS_OK)
    rc = chorus__sync_end(c, do_keyspace(c, op, ks, name, chorus__sync_cb, &w),
                          &w);
  assert(rc != CHORUS_OK || res.keyspaces != NULL);
  if (rc == CHORUS_OK) {
    *out = res.keyspaces;
    res.keyspaces = NULL;
  }
  return chorus__sync_result_end(c, &res, rc);
}

int chorus_keyspace_list(struct chorus_client *c, const char *name,
                         struct chorus_keyspaces **out) {
  return sync_keyspace(c, WIRE_KS_LIST, NULL, name, out);
}

int chorus_keyspace_create(struct chorus_client *c,
                           const struct chorus_keyspace *ks,
                           struct chorus_keyspaces **out) {
  return sync_keyspace(c, WIRE_KS_CREATE, ks, NULL, out);
}

int chorus_keyspace_alter(struct chorus_client *c,
                          const struct chorus_keyspace *ks,
                          struct chorus_keyspaces **out) {
  return sync_keyspace(c, WIRE_KS_ALTER, ks, NULL, out);
}

int chorus_keyspace_drop(struct chorus_client *c, const char *name,
                         struct chorus_keyspaces **out) {
  return sync_keyspace(c, WIRE_KS_DROP, NULL, name, out);
}

int chorus_cluster_status(struct chorus_client *c,
                          struct chorus_cluster_status **out) {
  return sync_cluster(c, WIRE_CLUSTER_QUERY, 0, NULL, NULL, false, out);
}

int chorus_cluster_remove(struct chorus_client *c, const char *name, bool force,
                          struct chorus_cluster_status **out) {
  return sync_cluster(c, WIRE_CLUSTER_REMOVE, 0, name, NULL, force, out);
}

int chorus_cluster_decommission(struct chorus_client *c, const char *name,
                                bool force,
                                struct chorus_cluster_status **out) {
  return sync_cluster(c, WIRE_CLUSTER_DECOMMISSION, 0, name, NULL, force, out);
}

/* ------------------------------------------------------------------------
 * Asynchronous API
 * ------------------------------------------------------------------------ */

int chorus_get_async(struct chorus_client *c, const void *key, size_t key_len,
                     const struct chorus_opts *opts, chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc : do_get(c, WIRE_GET, key, key_len, opts, cb, arg);
}

int chorus_put_async(struct chorus_client *c, const void *key, size_t key_len,
                     const void *value, size_t value_len, const void *context,
                     size_t context_len, const struct chorus_opts *opts,
                     chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_put(c, key, key_len, value, value_len, context, context_len,
                     opts, cb, arg);
}

int chorus_delete_async(struct chorus_client *c, const void *key,
                        size_t key_len, const void *context, size_t context_len,
                        const struct chorus_opts *opts, chorus_cb cb,
                        void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_delete(c, key, key_len, context, context_len, opts, cb, arg);
}

int chorus_counter_add_async(struct chorus_client *c, const void *key,
                             size_t key_len, int64_t delta,
                             const struct chorus_opts *opts, chorus_cb cb,
                             void *arg) {
  int rc = check_async(c);
  return rc ? rc : do_counter_add(c, key, key_len, delta, opts, cb, arg);
}

int chorus_counter_read_async(struct chorus_client *c, const void *key,
                              size_t key_len, const struct chorus_opts *opts,
                              chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc : do_get(c, WIRE_COUNTER_READ, key, key_len, opts, cb, arg);
}

int chorus_set_add_async(struct chorus_client *c, const void *key,
                         size_t key_len, const struct chorus_bytes *members,
                         size_t n, const struct chorus_opts *opts, chorus_cb cb,
                         void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_set(c, WIRE_SET_ADD, key, key_len, members, n, NULL, 0, opts,
                     cb, arg);
}

int chorus_set_remove_async(struct chorus_client *c, const void *key,
                            size_t key_len, const struct chorus_bytes *members,
                            size_t n, const void *context, size_t context_len,
                            const struct chorus_opts *opts, chorus_cb cb,
                            void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_set(c, WIRE_SET_REMOVE, key, key_len, members, n, context,
                     context_len, opts, cb, arg);
}

int chorus_set_members_async(struct chorus_client *c, const void *key,
                             size_t key_len, const struct chorus_opts *opts,
                             chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc : do_get(c, WIRE_SET_READ, key, key_len, opts, cb, arg);
}

int chorus_lww_set_async(struct chorus_client *c, const void *key,
                         size_t key_len, const void *value, size_t value_len,
                         const struct chorus_opts *opts, chorus_cb cb,
                         void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_lww(c, true, key, key_len, value, value_len, opts, cb, arg);
}

int chorus_lww_delete_async(struct chorus_client *c, const void *key,
                            size_t key_len, const struct chorus_opts *opts,
                            chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc : do_lww(c, false, key, key_len, NULL, 0, opts, cb, arg);
}

int chorus_lww_get_async(struct chorus_client *c, const void *key,
                         size_t key_len, const struct chorus_opts *opts,
                         chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc : do_get(c, WIRE_LWW_READ, key, key_len, opts, cb, arg);
}

int chorus_map_update_async(struct chorus_client *c, const void *key,
                            size_t key_len, const struct chorus_map_op *ops,
                            size_t n, const void *context, size_t context_len,
                            const struct chorus_opts *opts, chorus_cb cb,
                            void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_map_update(c, key, key_len, ops, n, context, context_len, opts,
                            cb, arg);
}

int chorus_map_get_async(struct chorus_client *c, const void *key,
                         size_t key_len, const struct chorus_opts *opts,
                         chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc : do_get(c, WIRE_MAP_READ, key, key_len, opts, cb, arg);
}

int chorus_ring_async(struct chorus_client *c, chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc : do_info(c, cb, arg);
}

int chorus_status_async(struct chorus_client *c, chorus_cb cb, void *arg) {
  return chorus_ring_async(c, cb, arg);
}

int chorus_repair_status_async(struct chorus_client *c, chorus_cb cb,
                               void *arg) {
  int rc = check_async(c);
  return rc ? rc : do_repair(c, WIRE_REPAIR_STATUS, cb, arg);
}

int chorus_repair_now_async(struct chorus_client *c, chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc : do_repair(c, WIRE_REPAIR_NOW, cb, arg);
}

int chorus_repair_ranges_async(struct chorus_client *c, uint64_t first,
                               uint64_t last, bool now, chorus_cb cb,
                               void *arg) {
  int rc = check_async(c);
  return rc ? rc : do_repair_ranges(c, first, last, now, cb, arg);
}

int chorus_cluster_status_async(struct chorus_client *c, chorus_cb cb,
                                void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_cluster(c, WIRE_CLUSTER_QUERY, 0, NULL, NULL, false, cb, arg);
}

int chorus_cluster_remove_async(struct chorus_client *c, const char *name,
                                bool force, chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_cluster(c, WIRE_CLUSTER_REMOVE, 0, name, NULL, force, cb, arg);
}

int chorus_cluster_stage(struct chorus_client *c, int action, const char *name,
                         const char *with, bool force,
                         struct chorus_cluster_status **out) {
  return sync_cluster(c, WIRE_CLUSTER_STAGE, action, name, with, force, out);
}

int chorus_cluster_replace(struct chorus_client *c, const char *name,
                           const char *with,
                           struct chorus_cluster_status **out) {
  return sync_cluster(c, WIRE_CLUSTER_REPLACE, 0, name, with, false, out);
}

int chorus_cluster_replace_async(struct chorus_client *c, const char *name,
                                 const char *with, chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_cluster(c, WIRE_CLUSTER_REPLACE, 0, name, with, false, cb,
                         arg);
}

int chorus_cluster_decommission_async(struct chorus_client *c, const char *name,
                                      bool force, chorus_cb cb, void *arg) {
  int rc = check_async(c);
  return rc ? rc
            : do_cluster(c, WIRE_CLUSTER_DECOMMISSION, 0, name, NULL, force, cb,
                         arg);
}

int chorus_cluster_plan_async(struct chorus_client *c, int action,
                              const char *name, const char *dc,
                              const char *rack, uint32_t vnodes, chorus_cb cb,
                              void *arg) {
  int rc = check_async(c);
  return rc ? rc : do_plan(c, action, name, dc, rack, vnodes, cb, arg);
}
