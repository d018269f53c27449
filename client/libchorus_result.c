/* libchorus_result.c: turns decoded replies into struct chorus_result:
 * copies of the borrowed bytes, the ring/status join, and token shares.
 *
 * A result owns one block (res->owned) holding every array and byte string
 * it points to, so chorus_result_free() is one free and a result can be
 * moved by copying the struct.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "libchorus_int.h"
#include "ring.h"

void chorus_result_free(struct chorus_result *res) {
  if (res == NULL)
    return;
  chorus_cluster_status_free(res->cluster);
  chorus_cluster_plan_free(res->plan);
  chorus_keyspaces_free(res->keyspaces);
  chorus_users_free(res->users);
  chorus_keyring_free(res->keyring);
  chorus_free(res->trace);
  chorus_free(res->owned);
  memset(res, 0, sizeof *res);
}

void chorus_result_move(struct chorus_result *dst, struct chorus_result *src) {
  *dst = *src;
  memset(src, 0, sizeof *src);
}

void chorus__result_error(struct chorus_result *res, int code, const char *fmt,
                          ...) {
  res->status = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->errmsg, sizeof res->errmsg, fmt, ap);
  va_end(ap);
}

/* A bump allocator over one block: sized in a first pass, filled in a
 * second. Alignment is kept for the arrays placed first. */
struct arena {
  uint8_t *base;
  size_t used, cap;
};

static size_t align8(size_t n) {
  return (n + 7u) & ~(size_t)7u;
}

/* The sizing pass counted every take: the block never overflows. */
static void *arena_take(struct arena *a, size_t n) {
  assert(a->used + align8(n) <= a->cap);
  void *p = a->base + a->used;
  a->used += align8(n);
  return p;
}

static struct chorus_bytes arena_bytes(struct arena *a, struct wire_bytes b) {
  struct chorus_bytes out = {NULL, b.len};
  uint8_t *p = arena_take(a, b.len + 1);
  if (b.len > 0)
    memcpy(p, b.ptr, b.len);
  p[b.len] = '\0'; /* convenient for text, never counted */
  out.ptr = p;
  return out;
}

static const char *arena_str(struct arena *a, struct wire_bytes b) {
  return (const char *)arena_bytes(a, b).ptr;
}

static int arena_open(struct arena *a, size_t cap, struct chorus_result *res) {
  a->base = chorus_malloc(cap ? cap : 1);
  a->used = 0;
  a->cap = cap;
  if (a->base == NULL) {
    chorus__result_error(res, CHORUS_ENOMEM, "out of memory");
    return CHORUS_ENOMEM;
  }
  res->owned = a->base;
  return CHORUS_OK;
}

/* Copies a list (siblings or members) and a context into @res. */
static int take_list(struct chorus_result *res,
                     const struct wire_bytes_list *list,
                     struct wire_bytes context) {
  size_t cap =
      align8(list->n * sizeof(struct chorus_bytes)) + align8(context.len + 1);
  for (size_t i = 0; i < list->n; i++)
    cap += align8(list->items[i].len + 1);
  struct arena a;
  if (arena_open(&a, cap, res) != CHORUS_OK)
    return CHORUS_ENOMEM;
  res->values = arena_take(&a, list->n * sizeof(struct chorus_bytes));
  res->nvalues = list->n;
  for (size_t i = 0; i < list->n; i++)
    res->values[i] = arena_bytes(&a, list->items[i]);
  res->context = arena_bytes(&a, context);
  assert(a.used == a.cap);
  return CHORUS_OK;
}

_Static_assert(CHORUS_OBJECT_TRUNCATED == WIRE_REPLY_TRUNCATED &&
                   CHORUS_OBJECT_SIBLINGS == WIRE_REPLY_SIBLINGS &&
                   CHORUS_OBJECT_LARGE == WIRE_REPLY_LARGE,
               "libchorus.h's object flags are the wire's");

/* take_stats: REPAIR_STATUS_REPLY's (or REPAIR_RANGES_REPLY's) node and
 * stats into @res, and @ranges' records (a multiple of
 * WIRE_REPAIR_RANGE_BYTES, else CHORUS_EMALFORMED). */
static int take_stats(struct chorus_result *res,
                      const struct wire_status_reply *sr,
                      struct wire_bytes ranges) {
  if (ranges.len % WIRE_REPAIR_RANGE_BYTES != 0) {
    chorus__result_error(res, CHORUS_EMALFORMED,
                         "REPAIR_RANGES_REPLY: ranges of %zu bytes, not a "
                         "multiple of %u",
                         ranges.len, WIRE_REPAIR_RANGE_BYTES);
    return CHORUS_EMALFORMED;
  }
  size_t nr = ranges.len / WIRE_REPAIR_RANGE_BYTES;
  size_t cap = align8(nr * sizeof(struct chorus_repair_range)) +
               align8(sr->nstats * sizeof(struct chorus_stat)) + align8(1);
  for (size_t i = 0; i < sr->nstats; i++)
    cap += align8(sr->stats[i].name.len + 1);
  struct arena a;
  if (arena_open(&a, cap, res) != CHORUS_OK)
    return CHORUS_ENOMEM;
  res->ranges = arena_take(&a, nr * sizeof(struct chorus_repair_range));
  res->nranges = nr;
  for (size_t i = 0; i < nr; i++) {
    struct wire_repair_range w;
    wire_repair_range_get(ranges.ptr + i * WIRE_REPAIR_RANGE_BYTES, &w);
    res->ranges[i] = (struct chorus_repair_range){
        .first = w.first,
        .last = w.last,
        .last_completed_ms = w.last_completed_ms,
        .age_ms = w.age_ms,
        .exchanges = w.exchanges,
        .segments_differing = w.segments_differing,
        .keys_differing = w.keys_differing,
        .keys_repaired = w.keys_repaired,
        .bytes_sent = w.bytes_sent,
        .bytes_received = w.bytes_received,
        .repaired = (w.flags & WIRE_RANGE_REPAIRED) != 0};
  }
  res->stats = arena_take(&a, sr->nstats * sizeof(struct chorus_stat));
  (void)arena_take(&a, 1);
  res->nstats = sr->nstats;
  for (size_t i = 0; i < sr->nstats; i++) {
    res->stats[i].name = arena_str(&a, sr->stats[i].name);
    res->stats[i].value = sr->stats[i].value;
  }
  res->node_id = sr->node_id;
  _Static_assert(sizeof res->node_name > WIRE_MAX_NAME, "a name fits");
  if (sr->name.len > 0)
    memcpy(res->node_name, sr->name.ptr, sr->name.len);
  res->node_name[sr->name.len] = '\0';
  return CHORUS_OK;
}

static uint8_t expected_reply(uint8_t req_type) {
  switch (req_type) {
  case WIRE_GET:
    return WIRE_GET_REPLY;
  case WIRE_PUT:
  case WIRE_PUT_TTL:
  case WIRE_DELETE:
  case WIRE_COUNTER_ADD:
  case WIRE_SET_ADD:
  case WIRE_SET_REMOVE:
    return WIRE_WRITE_REPLY;
  case WIRE_COUNTER_READ:
    return WIRE_COUNTER_REPLY;
  case WIRE_SET_READ:
    return WIRE_SET_REPLY;
  case WIRE_LWW_SET:
  case WIRE_LWW_DELETE:
    return WIRE_WRITE_REPLY;
  case WIRE_LWW_READ:
    return WIRE_LWW_REPLY;
  case WIRE_MAP_UPDATE:
    return WIRE_WRITE_REPLY;
  case WIRE_MAP_READ:
    return WIRE_MAP_REPLY;
  case WIRE_CAS:
    return WIRE_CAS_REPLY;
  case WIRE_LOCK:
    return WIRE_LOCK_REPLY;
  case WIRE_RING_QUERY:
    return WIRE_RING_REPLY;
  case WIRE_STATUS_QUERY:
    return WIRE_STATUS_REPLY;
  case WIRE_CLUSTER_QUERY:
  case WIRE_CLUSTER_REMOVE:
  case WIRE_CLUSTER_DECOMMISSION:
  case WIRE_CLUSTER_REPLACE:
  case WIRE_CLUSTER_STAGE:
    return WIRE_CLUSTER_REPLY;
  case WIRE_CLUSTER_PLAN:
    return WIRE_CLUSTER_PLAN_REPLY;
  case WIRE_REPAIR_STATUS:
  case WIRE_REPAIR_NOW:
    return WIRE_REPAIR_STATUS_REPLY;
  case WIRE_REPAIR_RANGES:
    return WIRE_REPAIR_RANGES_REPLY;
  case WIRE_KEYSPACE:
    return WIRE_KEYSPACE_REPLY;
  case WIRE_USER:
    return WIRE_USER_REPLY;
  case WIRE_CLUSTER_KEY:
    return WIRE_CLUSTER_KEY_REPLY;
  default:
    return 0;
  }
}

/* ------------------------------------------------------------------------
 * Cluster status
 * ------------------------------------------------------------------------ */

_Static_assert((int)CHORUS_META_JOINING == (int)WIRE_MEMBER_JOINING &&
                   (int)CHORUS_META_REMOVED == (int)WIRE_MEMBER_REMOVED &&
                   (int)CHORUS_META_REPLACING == (int)WIRE_MEMBER_REPLACING &&
                   (int)CHORUS_ROLE_SPARE == (int)WIRE_RAFT_ROLE_SPARE &&
                   (int)CHORUS_ALIVE_LEFT == (int)WIRE_ALIVE_LEFT &&
                   (int)CHORUS_RAFT_LEADER == (int)WIRE_RAFT_LEADER,
               "libchorus.h's cluster enums are the wire's");
_Static_assert((int)CHORUS_STAGE_DECOMMISSION == (int)WIRE_STAGE_DECOMMISSION &&
                   (int)CHORUS_STAGE_CLEAR == (int)WIRE_STAGE_CLEAR,
               "libchorus.h's stage actions are the wire's");

void chorus_cluster_status_free(struct chorus_cluster_status *s) {
  chorus_free(s);
}

/* Copies a CLUSTER_REPLY into one block: the status, its members, then
 * every string. */
static int take_cluster(struct chorus_result *res,
                        const struct wire_cluster_reply *r) {
  size_t cap = align8(sizeof(struct chorus_cluster_status)) +
               align8(r->nmembers * sizeof(struct chorus_cluster_member)) +
               align8(r->node_name.len + 1) + align8(r->leader_name.len + 1);
  for (size_t i = 0; i < r->nmembers; i++) {
    const struct wire_cluster_member *w = &r->members[i];
    cap += align8(w->name.len + 1) + align8(w->addr.len + 1) +
           align8(w->dc.len + 1) + align8(w->rack.len + 1);
  }
  struct arena a = {chorus_malloc(cap), 0, cap};
  if (a.base == NULL) {
    chorus__result_error(res, CHORUS_ENOMEM, "out of memory");
    return CHORUS_ENOMEM;
  }
  struct chorus_cluster_status *st =
      arena_take(&a, sizeof(struct chorus_cluster_status));
  memset(st, 0, sizeof *st);
  st->members =
      arena_take(&a, r->nmembers * sizeof(struct chorus_cluster_member));
  snprintf(st->server, sizeof st->server, "%s", res->server);
  st->node_id = r->node_id;
  st->node_name = arena_str(&a, r->node_name);
  st->leader_id = r->leader_id;
  st->leader_name = arena_str(&a, r->leader_name);
  st->term = r->term;
  st->commit_index = r->commit_index;
  st->applied_index = r->applied_index;
  st->epoch = r->epoch;
  st->raft_state = r->raft_state;
  st->nmembers = r->nmembers;
  for (size_t i = 0; i < r->nmembers; i++) {
    const struct wire_cluster_member *w = &r->members[i];
    struct chorus_cluster_member *m = &st->members[i];
    m->id = w->id;
    m->name = arena_str(&a, w->name);
    m->addr = arena_str(&a, w->addr);
    m->dc = arena_str(&a, w->dc);
    m->rack = arena_str(&a, w->rack);
    m->state = w->state;
    m->role = w->role;
    m->alive = w->alive;
    m->vnodes = w->vnodes;
    m->share_ppm = w->share_ppm;
  }
  assert(a.used == a.cap); /* the sizing pass counted exactly these */
  res->cluster = st;
  return CHORUS_OK;
}

void chorus_cluster_plan_free(struct chorus_cluster_plan *p) {
  chorus_free(p);
}

/* Copies a CLUSTER_PLAN_REPLY into one block: the plan, its moves, then
 * every string. */
static int take_plan(struct chorus_result *res,
                     const struct wire_cluster_plan_reply *r) {
  size_t cap = align8(sizeof(struct chorus_cluster_plan)) +
               align8(r->nmoves * sizeof(struct chorus_plan_move)) +
               align8(r->note.len + 1);
  for (size_t i = 0; i < r->nmoves; i++)
    cap += align8(r->moves[i].from_name.len + 1) +
           align8(r->moves[i].to_name.len + 1);
  struct arena a = {chorus_malloc(cap), 0, cap};
  if (a.base == NULL) {
    chorus__result_error(res, CHORUS_ENOMEM, "out of memory");
    return CHORUS_ENOMEM;
  }
  struct chorus_cluster_plan *p =
      arena_take(&a, sizeof(struct chorus_cluster_plan));
  memset(p, 0, sizeof *p);
  p->moves = arena_take(&a, r->nmoves * sizeof(struct chorus_plan_move));
  snprintf(p->server, sizeof p->server, "%s", res->server);
  p->epoch = r->epoch;
  p->basis_keys = r->basis_keys;
  p->basis_bytes = r->basis_bytes;
  p->basis_ppm = r->basis_ppm;
  p->note = arena_str(&a, r->note);
  p->nmoves = r->nmoves;
  for (size_t i = 0; i < r->nmoves; i++) {
    const struct wire_plan_move *w = &r->moves[i];
    p->moves[i] =
        (struct chorus_plan_move){.from = w->from,
                                  .to = w->to,
                                  .from_name = arena_str(&a, w->from_name),
                                  .to_name = arena_str(&a, w->to_name),
                                  .ranges = w->ranges,
                                  .share_ppm = w->share_ppm,
                                  .est_keys = w->est_keys,
                                  .est_bytes = w->est_bytes};
  }
  assert(a.used == a.cap);
  res->plan = p;
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * Keyspaces
 * ------------------------------------------------------------------------ */

static const char *const ks_types[] = {"any",     "kv",  "lww",
                                       "counter", "set", "map"};

const char *chorus_keyspace_type_name(int type) {
  return type >= 0 && type <= CHORUS_KS_MAP ? ks_types[type] : "?";
}

int chorus_keyspace_type_parse(const char *name) {
  for (int i = 0; name != NULL && i <= CHORUS_KS_MAP; i++)
    if (strcmp(name, ks_types[i]) == 0)
      return i;
  return -1;
}

void chorus_keyspaces_free(struct chorus_keyspaces *k) {
  chorus_free(k);
}

static uint64_t be_get(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

/* take_keyspaces: KEYSPACE_REPLY's records (wire.h), each checked: its
 * exact length, a name, a known type, levels in range. */
static int take_keyspaces(struct chorus_result *res,
                          const struct wire_keyspace_reply *r) {
  size_t n = r->entries.n;
  struct chorus_keyspaces *k =
      chorus_calloc(1, sizeof *k + (n ? n : 1) * sizeof *k->keyspaces);
  if (k == NULL) {
    chorus__result_error(res, CHORUS_ENOMEM, "out of memory");
    return CHORUS_ENOMEM;
  }
  k->applied = r->applied;
  k->n = n;
  k->keyspaces = (struct chorus_keyspace *)(k + 1);
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = r->entries.items[i].ptr;
    size_t len = r->entries.items[i].len;
    struct chorus_keyspace *o = &k->keyspaces[i];
    size_t nl = len >= WIRE_KEYSPACE_RECORD_MIN ? p[23] : 0;
    size_t rl = len >= WIRE_KEYSPACE_RECORD_MIN + nl ? p[24 + nl] : 0;
    if (len < WIRE_KEYSPACE_RECORD_MIN || nl == 0 ||
        nl > WIRE_MAX_KEYSPACE_NAME ||
        len != WIRE_KEYSPACE_RECORD_MIN + nl + rl ||
        p[4] > WIRE_MAX_KEYSPACE_TYPE || (int8_t)p[5] < WIRE_LEVEL_MIN ||
        (int8_t)p[6] < WIRE_LEVEL_MIN) {
      chorus_free(k);
      chorus__result_error(res, CHORUS_EMALFORMED,
                           "keyspace record %zu is malformed", i);
      return CHORUS_EMALFORMED;
    }
    o->id = (uint32_t)be_get(p, 4);
    o->type = p[4];
    o->read = (int8_t)p[5];
    o->write = (int8_t)p[6];
    o->ttl_ms = be_get(p + 7, 8);
    o->siblings_warn = (uint32_t)be_get(p + 15, 4);
    o->siblings_max = (uint32_t)be_get(p + 19, 4);
    memcpy(o->name, p + 24, nl);
    o->name[nl] = '\0';
    memcpy(o->replication, p + 25 + nl, rl);
    o->replication[rl] = '\0';
  }
  res->keyspaces = k;
  return CHORUS_OK;
}

int chorus__result_from_reply(struct chorus_result *res, uint8_t req_type,
                              const struct wire_msg *m) {
  if (m->type == WIRE_ERROR) {
    int code = m->error.code < 0 ? m->error.code : CHORUS_EINTERNAL;
    if (code == CHORUS_ENOTSUP && req_type == WIRE_CLUSTER_PLAN)
      /* New with topology changes: an older node does not know it. */
      chorus__result_error(res, code,
                           "the node does not make plans (an older "
                           "release): %.*s",
                           (int)m->error.text.len,
                           m->error.text.len ? (const char *)m->error.text.ptr
                                             : "");
    else if (code == CHORUS_ENOTSUP &&
             expected_reply(req_type) == WIRE_CLUSTER_REPLY)
      /* The type is new in version 3: an older node does not know it. */
      chorus__result_error(res, code,
                           "the node does not serve cluster metadata (a node "
                           "older than protocol version %u): %.*s",
                           WIRE_PROTOCOL_CLUSTER, (int)m->error.text.len,
                           m->error.text.len ? (const char *)m->error.text.ptr
                                             : "");
    else if (m->error.text.len > 0)
      chorus__result_error(res, code, "%.*s", (int)m->error.text.len,
                           (const char *)m->error.text.ptr);
    else
      chorus__result_error(res, code, "%s", chorus_strerror(code));
    return code;
  }
  /* GET_REPLY2 and WRITE_REPLY2 answer a connection of version 2 or later,
   * RING_REPLY2 and STATUS_REPLY2 one of version 3 (wire.h): the same data
   * and more. */
  uint8_t type = m->type == WIRE_GET_REPLY2      ? WIRE_GET_REPLY
                 : m->type == WIRE_WRITE_REPLY2  ? WIRE_WRITE_REPLY
                 : m->type == WIRE_RING_REPLY2   ? WIRE_RING_REPLY
                 : m->type == WIRE_STATUS_REPLY2 ? WIRE_STATUS_REPLY
                                                 : m->type;
  if (type != expected_reply(req_type)) {
    chorus__result_error(res, CHORUS_EMALFORMED, "%s answered with %s",
                         wire_type_name(req_type), wire_type_name(m->type));
    return CHORUS_EMALFORMED;
  }
  struct wire_bytes_list none = {0, NULL};
  if (m->type == WIRE_GET_REPLY2) {
    res->object_flags = m->get_reply.flags;
    res->siblings = m->get_reply.siblings;
    res->object_bytes = m->get_reply.bytes;
  } else if (m->type == WIRE_WRITE_REPLY2) {
    res->object_flags = m->write_reply.flags;
    res->siblings = m->write_reply.siblings;
    res->object_bytes = m->write_reply.bytes;
  }
  switch (type) {
  case WIRE_GET_REPLY:
    return take_list(res, &m->get_reply.values, m->get_reply.context);
  case WIRE_SET_REPLY:
    return take_list(res, &m->set_reply.members, m->set_reply.context);
  case WIRE_WRITE_REPLY: {
    const struct wire_bytes *ctx = &m->write_reply.context;
    if ((req_type == WIRE_LWW_SET || req_type == WIRE_LWW_DELETE) &&
        ctx->len == WIRE_LWW_STAMP_BYTES) {
      /* An LWW write's context is the stamp it got (wire.h). */
      res->lww_ts = be_get(ctx->ptr, 8);
      res->lww_node = be_get(ctx->ptr + 8, 8);
      return take_list(res, &none, (struct wire_bytes){NULL, 0});
    }
    return take_list(res, &none, *ctx);
  }
  case WIRE_COUNTER_REPLY:
    res->counter = m->counter_reply.value;
    return CHORUS_OK;
  case WIRE_LWW_REPLY: {
    /* The value as a list of one, or none when absent. */
    struct wire_bytes v = m->lww_reply.value;
    struct wire_bytes_list one = {m->lww_reply.present ? 1 : 0, &v};
    res->lww_ts = m->lww_reply.ts;
    res->lww_node = m->lww_reply.node;
    return take_list(res, &one, (struct wire_bytes){NULL, 0});
  }
  case WIRE_MAP_REPLY: {
    /* The map's encoding as values[0] (chorus_map_walk decodes it). */
    struct wire_bytes v = m->map_reply.map;
    struct wire_bytes_list one = {1, &v};
    return take_list(res, &one, m->map_reply.context);
  }
  case WIRE_CAS_REPLY: {
    struct wire_bytes v = m->cas_reply.value;
    struct wire_bytes_list one = {m->cas_reply.present ? 1 : 0, &v};
    res->cas_applied = m->cas_reply.applied != 0;
    return take_list(res, &one, m->cas_reply.context);
  }
  case WIRE_LOCK_REPLY: {
    /* values[0]: the holder (a lock op) or the value found (fenced put:
     * its holder field is empty and present says). */
    const struct wire_lock_reply *l = &m->lock_reply;
    bool fenced = l->present || l->value.len > 0;
    struct wire_bytes v = fenced ? l->value : l->holder;
    struct wire_bytes_list one = {fenced ? l->present : l->held, &v};
    res->cas_applied = l->applied != 0;
    res->lock_refusal = l->refusal;
    res->lock_held = l->held != 0;
    res->lock_token = l->token;
    res->lock_expires = l->expires;
    res->lock_left_ms = l->left_ms;
    return take_list(res, &one, (struct wire_bytes){NULL, 0});
  }
  case WIRE_CLUSTER_REPLY:
    return take_cluster(res, &m->cluster_reply);
  case WIRE_CLUSTER_PLAN_REPLY:
    return take_plan(res, &m->cluster_plan_reply);
  case WIRE_REPAIR_STATUS_REPLY:
    return take_stats(res, &m->status_reply, (struct wire_bytes){NULL, 0});
  case WIRE_REPAIR_RANGES_REPLY:
    return take_stats(res, &m->repair_ranges_reply.status,
                      m->repair_ranges_reply.ranges);
  case WIRE_KEYSPACE_REPLY:
    return take_keyspaces(res, &m->keyspace_reply);
  case WIRE_USER_REPLY:
    return chorus__take_users(res, &m->user_reply);
  case WIRE_CLUSTER_KEY_REPLY:
    return chorus__take_keyring(res, &m->cluster_key_reply);
  default:
    chorus__result_error(res, CHORUS_EINTERNAL, "unexpected %s",
                         wire_type_name(m->type));
    return CHORUS_EINTERNAL;
  }
}

/* ------------------------------------------------------------------------
 * Ring and status
 * ------------------------------------------------------------------------ */

static bool bytes_prefix(struct wire_bytes b, const char *prefix) {
  size_t n = strlen(prefix);
  return b.len >= n && memcmp(b.ptr, prefix, n) == 0;
}

/* Parses "member.<16 hex>.<field>": the id and the field. */
static bool parse_member_stat(struct wire_bytes name, uint64_t *id,
                              struct wire_bytes *field) {
  if (!bytes_prefix(name, "member.") || name.len < 7 + 16 + 2 ||
      name.ptr[7 + 16] != '.')
    return false;
  uint64_t v = 0;
  for (size_t i = 0; i < 16; i++) {
    uint8_t ch = name.ptr[7 + i];
    unsigned d;
    if (ch >= '0' && ch <= '9')
      d = ch - '0';
    else if (ch >= 'a' && ch <= 'f')
      d = (unsigned)(ch - 'a') + 10;
    else if (ch >= 'A' && ch <= 'F')
      d = (unsigned)(ch - 'A') + 10;
    else
      return false;
    v = v << 4 | d;
  }
  *id = v;
  field->ptr = name.ptr + 7 + 17;
  field->len = name.len - 7 - 17;
  return true;
}

static bool bytes_is(struct wire_bytes b, const char *s) {
  return b.len == strlen(s) && memcmp(b.ptr, s, b.len) == 0;
}

static struct chorus_node_info *find_node(struct chorus_result *res,
                                          uint64_t id) {
  for (size_t i = 0; i < res->nnodes; i++)
    if (res->nodes[i].id == id)
      return &res->nodes[i];
  return NULL;
}

/* replication.n = N, or replication.dc.<name> = factor per datacenter. */
static void read_replication(const struct wire_msg *status,
                             struct ring_replication *repl, bool *known) {
  memset(repl, 0, sizeof *repl);
  *known = false;
  for (size_t i = 0; i < status->status_reply.nstats; i++) {
    const struct wire_stat *st = &status->status_reply.stats[i];
    if (bytes_is(st->name, "replication.n") && st->value >= 1 &&
        st->value <= RING_MAX_REPLICAS) {
      repl->n = (uint32_t)st->value;
      *known = true;
    } else if (bytes_prefix(st->name, "replication.dc.") && st->value >= 1 &&
               st->value <= RING_MAX_REPLICAS &&
               repl->dc_count < RING_MAX_DCS) {
      size_t n = st->name.len - strlen("replication.dc.");
      if (n == 0 || n >= RING_NAME_MAX)
        continue;
      struct ring_dc_factor *f = &repl->dcs[repl->dc_count++];
      memcpy(f->dc, st->name.ptr + strlen("replication.dc."), n);
      f->dc[n] = '\0';
      f->factor = (uint32_t)st->value;
      *known = true;
    }
  }
  if (repl->dc_count > 0)
    repl->n = 0;
}

static void format_replication(const struct ring_replication *repl, char *out,
                               size_t cap) {
  if (repl->dc_count == 0) {
    snprintf(out, cap, "%" PRIu32, repl->n);
    return;
  }
  size_t off = 0;
  out[0] = '\0';
  for (uint32_t i = 0; i < repl->dc_count && off < cap; i++) {
    int w = snprintf(out + off, cap - off, "%s%s:%" PRIu32, i ? "," : "",
                     repl->dcs[i].dc, repl->dcs[i].factor);
    if (w < 0)
      break;
    off += (size_t)w;
  }
}

/* Shares of the token space (ring_snapshot_ownership) from the ring the
 * result describes. Best effort: a ring ring.h cannot build (labels too
 * long for it, say) leaves shares at 0, because the query itself
 * succeeded. */
static void compute_shares(struct chorus_result *res) {
  struct ring_snapshot *snap = NULL;
  if (chorus__ring_build(res, &snap) != CHORUS_OK)
    return;
  size_t count = ring_snapshot_node_count(snap);
  double *all = chorus_calloc(count, sizeof *all);
  if (all != NULL) {
    ring_snapshot_ownership(snap, all);
    for (size_t i = 0; i < count; i++) {
      struct chorus_node_info *n =
          find_node(res, ring_snapshot_node(snap, i)->id);
      if (n != NULL)
        n->share = all[i];
    }
    chorus_free(all);
  }
  ring_snapshot_free(snap);
}

int chorus__result_info(struct chorus_result *res, const struct wire_msg *ring,
                        const struct wire_msg *status) {
  const struct wire_ring_reply *rr = &ring->ring_reply;
  const struct wire_status_reply *sr = &status->status_reply;
  /* Members named by status but absent from the ring. */
  size_t extra = 0;
  uint64_t *extra_ids = chorus_calloc(sr->nstats + 1, sizeof *extra_ids);
  if (extra_ids == NULL) {
    chorus__result_error(res, CHORUS_ENOMEM, "out of memory");
    return CHORUS_ENOMEM;
  }
  for (size_t i = 0; i < sr->nstats; i++) {
    uint64_t id;
    struct wire_bytes field;
    if (!parse_member_stat(sr->stats[i].name, &id, &field))
      continue;
    bool known = false;
    for (size_t j = 0; j < rr->nnodes && !known; j++)
      known = rr->nodes[j].id == id;
    for (size_t j = 0; j < extra && !known; j++)
      known = extra_ids[j] == id;
    if (!known)
      extra_ids[extra++] = id;
  }
  size_t nnodes = rr->nnodes + extra;
  size_t cap = align8(nnodes * sizeof(struct chorus_node_info)) +
               align8(sr->nstats * sizeof(struct chorus_stat)) + align8(1);
  for (size_t i = 0; i < rr->nnodes; i++)
    cap += align8(rr->nodes[i].addr.len + 1) + align8(rr->nodes[i].dc.len + 1) +
           align8(rr->nodes[i].rack.len + 1) +
           align8(rr->nodes[i].name.len + 1);
  for (size_t i = 0; i < sr->nstats; i++)
    cap += align8(sr->stats[i].name.len + 1);
  struct arena a;
  if (arena_open(&a, cap, res) != CHORUS_OK) {
    chorus_free(extra_ids);
    return CHORUS_ENOMEM;
  }
  res->nodes = arena_take(&a, nnodes * sizeof(struct chorus_node_info));
  res->stats = arena_take(&a, sr->nstats * sizeof(struct chorus_stat));
  const char *empty = arena_take(&a, 1);
  *(char *)(uintptr_t)empty = '\0';
  res->nnodes = nnodes;
  res->nstats = sr->nstats;
  res->node_id = sr->node_id;
  /* STATUS_REPLY2's name (empty from older nodes), within WIRE_MAX_NAME. */
  _Static_assert(sizeof res->node_name > WIRE_MAX_NAME, "a name fits");
  if (sr->name.len > 0)
    memcpy(res->node_name, sr->name.ptr, sr->name.len);
  res->node_name[sr->name.len] = '\0';
  res->epoch = rr->epoch;
  res->vnodes = rr->vnodes;
  for (size_t i = 0; i < nnodes; i++) {
    struct chorus_node_info *n = &res->nodes[i];
    memset(n, 0, sizeof *n);
    n->member_state = CHORUS_MEMBER_UNKNOWN;
    if (i < rr->nnodes) {
      const struct wire_ring_node *w = &rr->nodes[i];
      n->id = w->id;
      n->addr = arena_str(&a, w->addr);
      n->dc = arena_str(&a, w->dc);
      n->rack = arena_str(&a, w->rack);
      n->name = arena_str(&a, w->name);
      n->in_ring = true;
      n->ring_state = w->state;
    } else {
      n->id = extra_ids[i - rr->nnodes];
      n->addr = n->dc = n->rack = n->name = empty;
    }
  }
  chorus_free(extra_ids);
  for (size_t i = 0; i < sr->nstats; i++) {
    const struct wire_stat *st = &sr->stats[i];
    res->stats[i].name = arena_str(&a, st->name);
    res->stats[i].value = st->value;
    uint64_t id;
    struct wire_bytes field;
    struct chorus_node_info *n;
    if (!parse_member_stat(st->name, &id, &field) ||
        (n = find_node(res, id)) == NULL)
      continue;
    if (bytes_is(field, "state"))
      n->member_state = st->value >= 0 && st->value <= CHORUS_MEMBER_REMOVED
                            ? (int)st->value
                            : CHORUS_MEMBER_UNKNOWN;
    else if (bytes_is(field, "incarnation"))
      n->incarnation = st->value;
    else if (bytes_is(field, "offset_ms")) {
      n->has_offset = true;
      n->offset_ms = st->value;
    } else if (bytes_is(field, "hints"))
      n->hints = st->value;
  }
  assert(a.used == a.cap); /* the sizing pass counted exactly these */
  struct ring_replication repl;
  bool repl_known;
  read_replication(status, &repl, &repl_known);
  if (repl_known)
    format_replication(&repl, res->replication, sizeof res->replication);
  compute_shares(res);
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

int chorus_level_parse(const char *s, int32_t *out) {
  if (out == NULL)
    return CHORUS_EINVAL;
  return wire_level_parse(s, out);
}

const char *chorus_level_name(int32_t level) {
  return wire_level_name(level);
}

const char *chorus_member_state_name(int state) {
  static const char *const names[] = {"alive", "suspect", "dead", "left",
                                      "removed"};
  return state >= 0 && state <= CHORUS_MEMBER_REMOVED ? names[state]
                                                      : "unknown";
}

const char *chorus_meta_state_name(int state) {
  static const char *const names[] = {"joining", "normal",  "leaving",
                                      "left",    "removed", "replacing"};
  return state >= CHORUS_META_JOINING && state <= CHORUS_META_REPLACING
             ? names[state - CHORUS_META_JOINING]
             : "?";
}

const char *chorus_raft_role_name(int role) {
  static const char *const names[] = {"none", "voter", "standby", "spare"};
  return role >= 0 && role <= CHORUS_ROLE_SPARE ? names[role] : "?";
}

const char *chorus_alive_name(int alive) {
  static const char *const names[] = {"unknown", "alive", "suspect", "dead",
                                      "left"};
  return alive >= 0 && alive <= CHORUS_ALIVE_LEFT ? names[alive] : "?";
}

const char *chorus_raft_state_name(int state) {
  static const char *const names[] = {"unavailable", "follower", "candidate",
                                      "leader"};
  return state >= 0 && state <= CHORUS_RAFT_LEADER ? names[state] : "?";
}

const char *chorus_ring_state_name(int state) {
  static const char *const names[] = {"up", "suspect", "down", "joining",
                                      "leaving"};
  return state >= 0 && state <= CHORUS_RING_LEAVING ? names[state] : "unknown";
}

void chorus__result_trace(struct chorus_result *res, uint64_t node,
                          const uint8_t *ev, size_t len) {
  size_t n = len / WIRE_TRACE_EVENT_BYTES;
  if (ev == NULL || n == 0 || len % WIRE_TRACE_EVENT_BYTES != 0)
    return;
  struct chorus_trace_event *t = chorus_calloc(n, sizeof *t);
  if (t == NULL)
    return; /* the answer matters more than its timeline */
  for (size_t i = 0; i < n; i++) {
    struct wire_trace_event e;
    wire_trace_event_get(ev + i * WIRE_TRACE_EVENT_BYTES, &e);
    t[i] = (struct chorus_trace_event){e.kind,      e.state,      e.flags,
                                       e.at_ms,     e.node,       e.other,
                                       e.synced_ms, e.answered_ms};
  }
  chorus_free(res->trace);
  res->trace = t;
  res->ntrace = n;
  res->trace_node = node;
}
