/* repl.c: the coordinator and replica state machine (see repl.h). */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_search.h"
#include "crdt.h"
#include "repl_int.h"

/* Ids of our own operations: [epoch : 22][counter : 40], below 2^62, so a
 * timer id keeps two bits for its kind and an answer meant for an earlier
 * incarnation never matches an operation of this one. */
#define OP_COUNTER_BITS 40
#define TIMER_KIND_SHIFT 62
#define TIMER_OP 1ull
#define TIMER_HINTS 2ull
#define OP_BUCKETS 1024u
#define META_EPOCH "repl/epoch"
/* Extra time a forwarding node waits beyond the request's own timeout, so
 * that the coordinator's ETIMEDOUT (with its count) arrives first. */
#define FORWARD_SLACK_MS 200

enum op_kind {
  OP_EPOCH = 1, /* the start barrier */
  OP_WRITE,     /* a coordinated write */
  OP_READ,      /* a coordinated read */
  OP_FORWARD,   /* a request handed to a replica */
  OP_ACK,       /* replica side: an acknowledgement waiting for a barrier */
  OP_REPLAY,    /* a hint in flight to its target */
  OP_ANSWER,    /* replica side: a read answer waiting for a barrier */
  OP_ROUND,     /* replays waiting for a barrier */
};

struct target {
  chorus_node_id id;
  int group;                /* replication group (ring_replica.dc) */
  bool natural, pending;    /* a fallback is neither */
  chorus_node_id stands_in; /* fallback: the natural replica it covers */
  bool sent, answered, acked, repairing;
  uint8_t *reply; /* OP_READ: the answer's object (NULL: not found) */
  size_t rlen;
};

struct op {
  struct op *next; /* hash chain */
  uint64_t id;
  enum op_kind kind;
  uint8_t mtype; /* the client's message type */
  struct repl_origin origin;
  chorus_token token;
  uint8_t *key;
  size_t klen;
  uint8_t *obj; /* OP_WRITE: the object written; OP_REPLAY: the one sent */
  size_t olen;
  uint8_t *ctx; /* OP_WRITE: the written object's causal context */
  size_t clen;
  struct repl_need need;
  struct repl_tally tally;
  uint8_t ntargets;
  struct target t[RING_PLIST_MAX];
  struct ring_plist pl; /* OP_WRITE: for fallbacks */
  uint64_t hint_seq;
  bool replied, sloppy;
  uint8_t read_repair;
  int status; /* the first error a replica answered */
  /* OP_ACK: whom to answer, and how. */
  chorus_node_id peer;
  uint64_t peer_req;
  uint8_t ack_type; /* WIRE_REPLICA_ACK or WIRE_HINT_ACK */
  int ack_status;
  /* OP_REPLAY */
  chorus_node_id target;
  /* OP_ROUND: the replays it holds back */
  uint64_t *wait;
  uint32_t nwait, capwait;
};

/* Replication's view of one peer: what membership says of it and how its
 * hint replay stands. (node/ has a struct peer of its own, a connection.) */
struct repl_peer_state {
  chorus_node_id id;
  bool down;
  uint32_t inflight;     /* replays in flight */
  unsigned char *cursor; /* replay resumes after this hint key */
  size_t curlen;
  /* [quiet_from, quiet_until): no hint to this peer can be due (see
   * replay_target), so the replay timer skips the scan. */
  chorus_ms quiet_from, quiet_until;
};

struct repl {
  struct repl_config cfg;
  struct store *store;
  const struct ring_snapshot *ring;
  struct op *ops[OP_BUCKETS];
  uint64_t next_op;
  uint64_t epoch;
  chorus_node_id actor;
  bool ready, failed;
  uint64_t hint_ctr;
  struct repl_hints hints;
  struct repl_peer_state *peers; /* sorted by id */
  uint32_t npeers, cappeers;
  int local_group;
  struct repl_stats stats;
  char err[CHORUS_ERRMSG_SIZE];
};

#define TRACE(r, ...) chorus_trace((r)->cfg.tracer, "repl", __VA_ARGS__)

void repl_config_defaults(struct repl_config *cfg, chorus_node_id self) {
  memset(cfg, 0, sizeof *cfg);
  cfg->self = self;
  cfg->r = WIRE_QUORUM;
  cfg->w = WIRE_QUORUM;
  cfg->timeout_ms = 2000;
  cfg->read_repair = WIRE_RR_ASYNC;
  cfg->hint_max_bytes = 64ull * 1024 * 1024;
  cfg->hint_max_age_ms = 3ull * 3600 * 1000;
  cfg->hint_interval = 1000;
  cfg->hint_batch = 16;
  cfg->fallbacks = 3;
}

/* ------------------------------------------------------------------------
 * Operations table
 * ------------------------------------------------------------------------ */

static struct op *op_new(struct repl *r, enum op_kind kind) {
  struct op *op = chorus_calloc(1, sizeof *op);
  if (op == NULL)
    return NULL;
  op->kind = kind;
  op->id = (r->epoch << OP_COUNTER_BITS) | (++r->next_op);
  struct op **b = &r->ops[op->id % OP_BUCKETS];
  op->next = *b;
  *b = op;
  return op;
}

static struct op *op_find(struct repl *r, uint64_t id) {
  for (struct op *op = r->ops[id % OP_BUCKETS]; op; op = op->next)
    if (op->id == id)
      return op;
  return NULL;
}

static void op_destroy(struct op *op) {
  for (uint8_t i = 0; i < op->ntargets; i++)
    chorus_free(op->t[i].reply);
  chorus_free(op->key);
  chorus_free(op->obj);
  chorus_free(op->ctx);
  chorus_free(op->wait);
  chorus_free(op);
}

static void op_free(struct repl *r, struct op *op) {
  struct op **p = &r->ops[op->id % OP_BUCKETS];
  while (*p && *p != op)
    p = &(*p)->next;
  if (*p)
    *p = op->next;
  op_destroy(op);
}

static struct target *op_target(struct op *op, chorus_node_id id) {
  for (uint8_t i = 0; i < op->ntargets; i++)
    if (op->t[i].id == id)
      return &op->t[i];
  return NULL;
}

static int op_set_key(struct op *op, chorus_token token, const void *key,
                      size_t klen) {
  op->token = token;
  op->klen = klen;
  op->key = chorus_malloc(klen ? klen : 1);
  if (op->key == NULL)
    return CHORUS_ENOMEM;
  if (klen)
    memcpy(op->key, key, klen);
  return CHORUS_OK;
}

static int arm_op_timer(const struct repl_effects *fx, struct op *op,
                        chorus_ms after) {
  return fx->timer(fx->ctx, (TIMER_OP << TIMER_KIND_SHIFT) | op->id, after);
}

/* ------------------------------------------------------------------------
 * Peers
 * ------------------------------------------------------------------------ */

static struct repl_peer_state *peer_get(struct repl *r, chorus_node_id id,
                                        bool create) {
  size_t lo = chorus_id_lower_bound(r->peers, r->npeers, sizeof r->peers[0],
                                    offsetof(struct repl_peer_state, id), id);
  if (lo < r->npeers && r->peers[lo].id == id)
    return &r->peers[lo];
  if (!create)
    return NULL;
  if (r->npeers == r->cappeers) {
    uint32_t ncap = r->cappeers ? r->cappeers * 2 : 16;
    struct repl_peer_state *p = chorus_realloc(r->peers, ncap * sizeof *p);
    if (p == NULL)
      return NULL;
    r->peers = p;
    r->cappeers = ncap;
  }
  memmove(&r->peers[lo + 1], &r->peers[lo],
          (r->npeers - lo) * sizeof *r->peers);
  r->peers[lo] = (struct repl_peer_state){.id = id};
  r->npeers++;
  return &r->peers[lo];
}

static bool peer_alive(struct repl *r, chorus_node_id id) {
  if (id == r->cfg.self)
    return true;
  struct repl_peer_state *p = peer_get(r, id, false);
  return p == NULL || !p->down;
}

/* ------------------------------------------------------------------------
 * Objects in the store
 * ------------------------------------------------------------------------ */

static unsigned char *data_key(chorus_token token, const void *key, size_t klen,
                               size_t *len) {
  unsigned char *dk = chorus_malloc(STORE_TOKEN_PREFIX + klen);
  if (dk != NULL)
    *len = store_data_key(dk, token, key, klen);
  return dk;
}

/* The stored bytes of a key: *@buf NULL and *@len 0 when absent. */
static int load_bytes(struct repl *r, chorus_token token, const void *key,
                      size_t klen, void **buf, size_t *len) {
  size_t dl;
  unsigned char *dk = data_key(token, key, klen, &dl);
  if (dk == NULL)
    return CHORUS_ENOMEM;
  int rc = store_get(r->store, STORE_DATA, dk, dl, buf, len);
  chorus_free(dk);
  if (rc == CHORUS_ENOTFOUND) {
    *buf = NULL;
    *len = 0;
    return CHORUS_OK;
  }
  return rc;
}

/* NOTHING NON-DURABLE LEAVES A NODE. A write reaches other replicas only
 * after the coordinator's barrier; likewise a read answer, our own part of
 * a read, and a hint replay carry state only once everything written so far
 * is durable. Otherwise a node could hand out a state it then loses in a
 * crash, and no hint anywhere would bring it back to that node: the others
 * would keep it and the replicas would never converge (found by the
 * simulator: rw13, seed 104). When the store is fully durable there is no
 * wait; otherwise the answer waits for one group-commit barrier. */
static bool all_durable(struct repl *r) {
  return store_durable_seq(r->store) >= store_last_seq(r->store);
}

/* A batch that carried hints (armed, or pending deletes) failed: the index
 * counted them already, so rebuild it from the table. */
static void resync_hints(struct repl *r) {
  int rc = repl__hints_load(&r->hints, r->store);
  if (rc != CHORUS_OK)
    TRACE(r, "hint index not rebuilt: %s", chorus_errname(rc));
}

/* Decodes stored or received bytes as @want (CRDT_NONE: any type); empty
 * bytes are an empty object of @want. Errors: CHORUS_ETYPE,
 * CHORUS_EMALFORMED, CHORUS_EINVAL (empty with CRDT_NONE). */
static int decode_obj(const void *buf, size_t len, enum crdt_type want,
                      struct crdt_obj *obj, char *err) {
  if (len == 0) {
    if (want == CRDT_NONE)
      return CHORUS_EINVAL;
    crdt_obj_init(obj, want);
    return CHORUS_OK;
  }
  return crdt_obj_decode(obj, want, buf, len, err);
}

static int encode_obj(const struct crdt_obj *obj, uint8_t **buf, size_t *len) {
  size_t n = crdt_obj_encoded_size(obj), w = 0;
  *buf = chorus_malloc(n ? n : 1);
  if (*buf == NULL)
    return CHORUS_ENOMEM;
  int rc = crdt_obj_encode(obj, *buf, n, &w);
  if (rc != CHORUS_OK) {
    chorus_free(*buf);
    *buf = NULL;
    return rc;
  }
  *len = w;
  return CHORUS_OK;
}

static int encode_ctx(const struct crdt_obj *obj, uint8_t **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  if (obj->type != CRDT_KV)
    return CHORUS_OK;
  const struct vv *v = dvv_context(&obj->u.kv);
  size_t n = vv_encoded_size(v), w = 0;
  if ((*buf = chorus_malloc(n)) == NULL)
    return CHORUS_ENOMEM;
  int rc = vv_encode(v, *buf, n, &w);
  *len = w;
  return rc;
}

/* Joins @bytes (a received object) into the stored object of the key and
 * writes the result when it changed. Errors: CHORUS_EMALFORMED (bad
 * object), CHORUS_ETYPE, CHORUS_ECORRUPT (the stored object does not
 * decode), store errors, CHORUS_ENOMEM. */
static int join_into_store(struct repl *r, chorus_token token, const void *key,
                           size_t klen, const void *bytes, size_t blen) {
  struct crdt_obj in, local;
  int rc = decode_obj(bytes, blen, CRDT_NONE, &in, r->err);
  if (rc != CHORUS_OK)
    return CHORUS_EMALFORMED;
  void *buf;
  size_t len;
  if ((rc = load_bytes(r, token, key, klen, &buf, &len)) != CHORUS_OK) {
    crdt_obj_free(&in);
    return rc;
  }
  rc = decode_obj(buf, len, in.type, &local, r->err);
  if (rc == CHORUS_EMALFORMED)
    rc = CHORUS_ECORRUPT;
  if (rc == CHORUS_OK) {
    rc = crdt_obj_join(&local, &in, NULL);
    uint8_t *out = NULL;
    size_t olen = 0;
    if (rc == CHORUS_OK)
      rc = encode_obj(&local, &out, &olen);
    if (rc == CHORUS_OK && (olen != len || memcmp(out, buf, len) != 0)) {
      size_t dl;
      unsigned char *dk = data_key(token, key, klen, &dl);
      rc = dk ? store_put(r->store, STORE_DATA, dk, dl, out, olen, NULL)
              : CHORUS_ENOMEM;
      chorus_free(dk);
    }
    chorus_free(out);
    crdt_obj_free(&local);
  }
  chorus_free(buf);
  crdt_obj_free(&in);
  return rc;
}

/* ------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------ */

static bool is_write_type(uint8_t t) {
  return t == WIRE_PUT || t == WIRE_DELETE || t == WIRE_COUNTER_ADD ||
         t == WIRE_SET_ADD || t == WIRE_SET_REMOVE;
}

static int reply_error(struct repl *r, const struct repl_effects *fx,
                       const struct repl_origin *origin, uint8_t mtype,
                       int code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int reply_error(struct repl *r, const struct repl_effects *fx,
                       const struct repl_origin *origin, uint8_t mtype,
                       int code, const char *fmt, ...) {
  char text[WIRE_MAX_ERROR_TEXT];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  TRACE(r, "%s answered %s: %s", wire_type_name(mtype), chorus_errname(code),
        text);
  struct wire_msg m = {.type = WIRE_ERROR};
  m.error.code = code;
  m.error.text = (struct wire_bytes){(const uint8_t *)text, strlen(text)};
  switch (code) {
  case CHORUS_EUNAVAILABLE:
    r->stats.unavailable++;
    break;
  case CHORUS_ETIMEDOUT:
    r->stats.timeouts++;
    break;
  case CHORUS_EINVAL:
    r->stats.invalid++;
    break;
  default:
    break;
  }
  return fx->reply(fx->ctx, origin, &m,
                   is_write_type(mtype) && chorus_maybe_applied(code));
}

/* Ends a coordinated operation with an error answer; its timer frees it. */
#define OP_FAIL(r, fx, op, code, ...)                                          \
  ((op)->replied = true,                                                       \
   reply_error(r, fx, &(op)->origin, (op)->mtype, code, __VA_ARGS__))

/* The answer to a read from the joined object @obj (found or not). */
static int reply_read(struct repl *r, const struct repl_effects *fx,
                      struct op *op, const struct crdt_obj *obj) {
  struct wire_msg m = {0};
  struct wire_bytes *items = NULL;
  uint8_t *ctx = NULL;
  size_t clen = 0;
  int rc = CHORUS_OK;
  switch (op->mtype) {
  case WIRE_GET: {
    const struct dvv *d = &obj->u.kv;
    m.type = WIRE_GET_REPLY;
    items = chorus_malloc((d->n ? d->n : 1) * sizeof *items);
    if (items == NULL)
      return CHORUS_ENOMEM;
    size_t n = 0;
    for (uint32_t i = 0; i < d->n; i++)
      if (!d->sib[i].tombstone)
        items[n++] = (struct wire_bytes){d->sib[i].value, d->sib[i].len};
    m.get_reply.values = (struct wire_bytes_list){n, items};
    rc = encode_ctx(obj, &ctx, &clen);
    m.get_reply.context = (struct wire_bytes){ctx, clen};
    break;
  }
  case WIRE_COUNTER_READ: {
    m.type = WIRE_COUNTER_REPLY;
    rc = pncounter_value(&obj->u.counter, &m.counter_reply.value);
    if (rc != CHORUS_OK)
      return reply_error(r, fx, &op->origin, op->mtype, rc,
                         "counter value out of range");
    break;
  }
  default: { /* WIRE_SET_READ */
    const struct orset *s = &obj->u.set;
    m.type = WIRE_SET_REPLY;
    items = chorus_malloc((s->n ? s->n : 1) * sizeof *items);
    if (items == NULL)
      return CHORUS_ENOMEM;
    for (uint32_t i = 0; i < s->n; i++)
      items[i] = (struct wire_bytes){s->e[i].data, s->e[i].len};
    m.set_reply.members = (struct wire_bytes_list){s->n, items};
    break;
  }
  }
  if (rc == CHORUS_OK) {
    r->stats.reads_ok++;
    rc = fx->reply(fx->ctx, &op->origin, &m, false);
  }
  chorus_free(items);
  chorus_free(ctx);
  return rc;
}

/* ------------------------------------------------------------------------
 * Requests: decoding what a client asks
 * ------------------------------------------------------------------------ */

struct request {
  const struct wire_bytes *key;
  const struct wire_options *opts;
  enum crdt_type type;
  bool write;
};

static bool request_of(const struct wire_msg *m, struct request *q) {
  switch (m->type) {
  case WIRE_GET:
    *q = (struct request){&m->get.key, &m->get.opts, CRDT_KV, false};
    return true;
  case WIRE_PUT:
    *q = (struct request){&m->put.key, &m->put.opts, CRDT_KV, true};
    return true;
  case WIRE_DELETE:
    *q = (struct request){&m->del.key, &m->del.opts, CRDT_KV, true};
    return true;
  case WIRE_COUNTER_ADD:
    *q = (struct request){&m->counter_add.key, &m->counter_add.opts,
                          CRDT_COUNTER, true};
    return true;
  case WIRE_COUNTER_READ:
    *q = (struct request){&m->counter_read.key, &m->counter_read.opts,
                          CRDT_COUNTER, false};
    return true;
  case WIRE_SET_ADD:
    *q = (struct request){&m->set_add.key, &m->set_add.opts, CRDT_SET, true};
    return true;
  case WIRE_SET_REMOVE:
    *q = (struct request){&m->set_remove.key, &m->set_remove.opts, CRDT_SET,
                          true};
    return true;
  case WIRE_SET_READ:
    *q = (struct request){&m->set_read.key, &m->set_read.opts, CRDT_SET, false};
    return true;
  default:
    return false;
  }
}

/* Applies the update @m to @obj with this incarnation's actor. Errors are
 * the client's (nothing written yet): CHORUS_EINVAL, CHORUS_EMALFORMED
 * (context), CHORUS_ESIBLINGS, CHORUS_ETOOBIG, CHORUS_ERANGE, ENOMEM. */
static int apply_update(struct repl *r, const struct wire_msg *m,
                        struct crdt_obj *obj) {
  chorus_node_id a = r->actor;
  int rc = CHORUS_OK;
  switch (m->type) {
  case WIRE_PUT:
  case WIRE_DELETE: {
    const struct wire_bytes *c =
        m->type == WIRE_PUT ? &m->put.context : &m->del.context;
    struct vv ctx;
    vv_init(&ctx);
    if (c->len > 0 &&
        (rc = vv_decode(&ctx, c->ptr, c->len, r->err)) != CHORUS_OK)
      return chorus_errwrap(r->err, CHORUS_EMALFORMED, "context");
    rc = m->type == WIRE_PUT
             ? dvv_put(&obj->u.kv, a, &ctx, m->put.value.ptr, m->put.value.len,
                       NULL, NULL, NULL)
             : dvv_delete(&obj->u.kv, a, &ctx, NULL, NULL, NULL);
    vv_free(&ctx);
    return rc;
  }
  case WIRE_COUNTER_ADD: {
    if (m->counter_add.delta == 0)
      return chorus_errf(r->err, CHORUS_EINVAL, "counter delta 0");
    struct crdt_op_id id = {0, m->counter_add.op_id};
    return pncounter_add(&obj->u.counter, a, m->counter_add.delta,
                         id.lo ? &id : NULL, NULL, NULL);
  }
  case WIRE_SET_ADD:
    for (size_t i = 0; i < m->set_add.members.n && rc == CHORUS_OK; i++)
      rc = orset_add(&obj->u.set, a, m->set_add.members.items[i].ptr,
                     m->set_add.members.items[i].len, NULL);
    return rc;
  case WIRE_SET_REMOVE:
    /* Observed-remove at the coordinator: removes the adds it has seen. */
    for (size_t i = 0; i < m->set_remove.members.n && rc == CHORUS_OK; i++)
      rc = orset_remove(&obj->u.set, m->set_remove.members.items[i].ptr,
                        m->set_remove.members.items[i].len, NULL, NULL);
    return rc;
  default:
    return CHORUS_EINVAL;
  }
}

/* ------------------------------------------------------------------------
 * Messages to replicas: the two that carry an object, each built here only.
 * *@m borrows every pointer it is given.
 * ------------------------------------------------------------------------ */

static void msg_replica_write(struct wire_msg *m, uint64_t req,
                              chorus_token token, const void *key, size_t klen,
                              const void *obj, size_t olen, uint8_t flags) {
  *m = (struct wire_msg){.type = WIRE_REPLICA_WRITE, .request_id = req};
  m->replica_write.token = token;
  m->replica_write.key = (struct wire_bytes){key, klen};
  m->replica_write.object = (struct wire_bytes){obj, olen};
  m->replica_write.flags = flags;
}

static void msg_hint_deliver(struct wire_msg *m, uint64_t req,
                             chorus_node_id target, uint64_t hint_seq,
                             chorus_token token, const void *key, size_t klen,
                             const void *obj, size_t olen) {
  *m = (struct wire_msg){.type = WIRE_HINT_DELIVER, .request_id = req};
  m->hint_deliver.target = target;
  m->hint_deliver.hint_seq = hint_seq;
  m->hint_deliver.token = token;
  m->hint_deliver.key = (struct wire_bytes){key, klen};
  m->hint_deliver.object = (struct wire_bytes){obj, olen};
}

/* ------------------------------------------------------------------------
 * Coordinating
 * ------------------------------------------------------------------------ */

static int forward(struct repl *r, const struct wire_msg *m,
                   const struct ring_plist *pl,
                   const struct repl_origin *origin, chorus_ms timeout,
                   const struct repl_effects *fx) {
  chorus_node_id to = 0;
  for (uint8_t i = 0; i < pl->n_natural && to == 0; i++)
    if (peer_alive(r, pl->r[i].id))
      to = pl->r[i].id;
  if (to == 0)
    return reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                       "no live replica of the key to forward to");
  struct op *op = op_new(r, OP_FORWARD);
  if (op == NULL)
    return CHORUS_ENOMEM;
  op->mtype = m->type;
  op->origin = *origin;
  op->target = to;
  struct wire_msg fwd = *m;
  fwd.request_id = op->id;
  r->stats.forwarded++;
  TRACE(r, "%s forwarded to %016" PRIx64, wire_type_name(m->type), to);
  int rc = fx->send(fx->ctx, to, &fwd);
  if (rc == CHORUS_OK)
    rc = arm_op_timer(fx, op, timeout + FORWARD_SLACK_MS);
  return rc;
}

/* Whether the replicas @pl can meet @need at all, counting the live ones
 * (and live fallbacks standing in for dead naturals when @sloppy). */
static bool can_meet(struct repl *r, const struct ring_plist *pl,
                     const struct repl_need *need, bool sloppy) {
  struct repl_tally t = {0};
  uint32_t dead = 0;
  for (uint8_t i = 0; i < pl->n_natural; i++) {
    if (peer_alive(r, pl->r[i].id))
      repl__tally_add(&t, need, pl->r[i].dc, true);
    else
      dead++;
  }
  if (sloppy) {
    uint8_t first = (uint8_t)(pl->n_natural + pl->n_pending);
    for (uint8_t i = 0; i < pl->n_fallback && dead > 0; i++)
      if (peer_alive(r, pl->r[first + i].id)) {
        repl__tally_add(&t, need, pl->r[first + i].dc, false);
        dead--;
      }
  }
  return repl__tally_met(&t, need);
}

static int write_try_reply(struct repl *r, const struct repl_effects *fx,
                           struct op *op) {
  if (op->replied || !repl__tally_met(&op->tally, &op->need))
    return CHORUS_OK;
  op->replied = true;
  r->stats.writes_ok++;
  struct wire_msg m = {.type = WIRE_WRITE_REPLY};
  m.write_reply.context = (struct wire_bytes){op->ctx, op->clen};
  return fx->reply(fx->ctx, &op->origin, &m, false);
}

/* Frees a finished write: answered, and every target that was sent the
 * object answered (or the timeout ended it). */
static void write_maybe_done(struct repl *r, struct op *op) {
  if (!op->replied)
    return;
  for (uint8_t i = 0; i < op->ntargets; i++)
    if (op->t[i].sent && !op->t[i].acked)
      return;
  op_free(r, op);
}

static int coordinate_write(struct repl *r, const struct wire_msg *m,
                            const struct request *q,
                            const struct ring_plist *pl, struct op *op,
                            chorus_ms wall, const struct repl_effects *fx) {
  struct crdt_obj obj;
  void *buf;
  size_t len;
  int rc = load_bytes(r, pl->token, q->key->ptr, q->key->len, &buf, &len);
  if (rc != CHORUS_OK)
    return OP_FAIL(r, fx, op, rc, "reading the key: %s", chorus_strerror(rc));
  rc = decode_obj(buf, len, q->type, &obj, r->err);
  chorus_free(buf);
  if (rc == CHORUS_ETYPE)
    return OP_FAIL(r, fx, op, rc, "the key holds another type than %s",
                   crdt_type_name(q->type));
  if (rc != CHORUS_OK)
    return OP_FAIL(r, fx, op, CHORUS_ECORRUPT,
                   "the stored object is corrupt: %s", r->err);
  r->err[0] = '\0';
  rc = apply_update(r, m, &obj);
  if (rc == CHORUS_OK)
    rc = encode_obj(&obj, &op->obj, &op->olen);
  if (rc == CHORUS_OK)
    rc = encode_ctx(&obj, &op->ctx, &op->clen);
  crdt_obj_free(&obj);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK)
    return OP_FAIL(r, fx, op, rc, "%s",
                   r->err[0] ? r->err : chorus_strerror(rc));

  /* The object and a hint for every other replica, in one atomic batch. */
  struct store_batch *b = store_batch_new();
  if (b == NULL)
    return CHORUS_ENOMEM;
  /* Deletes of disarmed hints ride along, ahead of this write's hints. */
  rc = repl__hints_flush(&r->hints, r->store, b);
  size_t dl;
  unsigned char *dk = rc == CHORUS_OK
                          ? data_key(pl->token, q->key->ptr, q->key->len, &dl)
                          : NULL;
  rc = dk ? store_batch_put(b, STORE_DATA, dk, dl, op->obj, op->olen)
          : CHORUS_ENOMEM;
  chorus_free(dk);
  op->hint_seq = (r->epoch << 32) | (++r->hint_ctr & 0xffffffffu);
  for (uint8_t i = 0; i < op->ntargets && rc == CHORUS_OK; i++) {
    if (op->t[i].id == r->cfg.self)
      continue;
    bool dropped;
    rc = repl__hints_arm(&r->hints, r->store, b, op->t[i].id, pl->token,
                         q->key->ptr, q->key->len, op->hint_seq, wall, NULL, 0,
                         &dropped);
    if (rc == CHORUS_OK && dropped)
      TRACE(r, "hint for %016" PRIx64 " dropped: over %" PRIu64 " bytes",
            op->t[i].id, r->cfg.hint_max_bytes);
  }
  chorus_seq seq = 0;
  if (rc == CHORUS_OK)
    rc = store_write_batch(r->store, b, &seq);
  store_batch_free(b);
  if (rc != CHORUS_OK && rc != CHORUS_ENOMEM)
    resync_hints(r);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK) {
    if (rc == CHORUS_ESYNCFAILED)
      r->failed = true;
    return OP_FAIL(r, fx, op, rc, "writing the object: %s",
                   chorus_strerror(rc));
  }
  return fx->sync(fx->ctx, seq, op->id);
}

/* The local barrier of a write is done: count ourselves, send the object. */
static int write_send(struct repl *r, const struct repl_effects *fx,
                      struct op *op) {
  int rc = CHORUS_OK;
  uint8_t next_fallback = (uint8_t)(op->pl.n_natural + op->pl.n_pending);
  uint8_t end_fallback = (uint8_t)(next_fallback + op->pl.n_fallback);
  uint8_t n = op->ntargets;
  for (uint8_t i = 0; i < n && rc == CHORUS_OK; i++) {
    struct target *t = &op->t[i];
    if (t->id == r->cfg.self) {
      t->sent = t->acked = true;
      repl__tally_add(&op->tally, &op->need, t->group, true);
      continue;
    }
    if (peer_alive(r, t->id)) {
      struct wire_msg m;
      msg_replica_write(&m, op->id, op->token, op->key, op->klen, op->obj,
                        op->olen, WIRE_REPLICA_DURABLE);
      t->sent = true;
      rc = fx->send(fx->ctx, t->id, &m);
      continue;
    }
    if (!op->sloppy || !t->natural)
      continue; /* its hint waits for it */
    /* Sloppy quorum: the next live fallback keeps the object for it. */
    while (next_fallback < end_fallback &&
           (!peer_alive(r, op->pl.r[next_fallback].id) ||
            op_target(op, op->pl.r[next_fallback].id) != NULL))
      next_fallback++;
    if (next_fallback == end_fallback || op->ntargets == RING_PLIST_MAX)
      continue;
    const struct ring_replica *f = &op->pl.r[next_fallback++];
    struct target *ft = &op->t[op->ntargets++];
    *ft = (struct target){
        .id = f->id, .group = f->dc, .stands_in = t->id, .sent = true};
    TRACE(r, "sloppy: %016" PRIx64 " stands in for %016" PRIx64, f->id, t->id);
    struct wire_msg m;
    msg_hint_deliver(&m, op->id, t->id, op->hint_seq, op->token, op->key,
                     op->klen, op->obj, op->olen);
    rc = fx->send(fx->ctx, f->id, &m);
  }
  if (rc == CHORUS_OK)
    rc = write_try_reply(r, fx, op);
  if (rc == CHORUS_OK)
    write_maybe_done(r, op);
  return rc;
}

/* Joins every answer of a read into *@out (type @want). */
static int read_join(struct repl *r, struct op *op, enum crdt_type want,
                     struct crdt_obj *out) {
  crdt_obj_init(out, want);
  for (uint8_t i = 0; i < op->ntargets; i++) {
    struct target *t = &op->t[i];
    if (!t->answered || t->rlen == 0)
      continue;
    struct crdt_obj o;
    int rc = decode_obj(t->reply, t->rlen, want, &o, r->err);
    if (rc == CHORUS_ETYPE) {
      crdt_obj_free(out);
      return rc;
    }
    if (rc != CHORUS_OK) {
      TRACE(r, "answer of %016" PRIx64 " ignored: %s", t->id, r->err);
      continue;
    }
    rc = crdt_obj_join(out, &o, NULL);
    crdt_obj_free(&o);
    if (rc != CHORUS_OK) {
      crdt_obj_free(out);
      return rc;
    }
  }
  return CHORUS_OK;
}

static enum crdt_type read_type(uint8_t mtype) {
  return mtype == WIRE_GET            ? CRDT_KV
         : mtype == WIRE_COUNTER_READ ? CRDT_COUNTER
                                      : CRDT_SET;
}

/* Read repair: sends @merged to every answered replica whose answer
 * differs, and joins it into our own copy. Blocking repairs ask for an
 * acknowledgement; *@waiting counts them. */
static int read_repair(struct repl *r, const struct repl_effects *fx,
                       struct op *op, const struct crdt_obj *merged,
                       bool blocking, int *waiting) {
  uint8_t *bytes;
  size_t blen;
  int rc = encode_obj(merged, &bytes, &blen);
  if (rc != CHORUS_OK)
    return rc;
  *waiting = 0;
  bool empty = true;
  for (uint8_t i = 0; i < op->ntargets; i++)
    if (op->t[i].rlen > 0)
      empty = false;
  for (uint8_t i = 0; i < op->ntargets && rc == CHORUS_OK && !empty; i++) {
    struct target *t = &op->t[i];
    if (!t->answered || (t->rlen == blen && memcmp(t->reply, bytes, blen) == 0))
      continue;
    r->stats.read_repairs++;
    if (t->id == r->cfg.self) {
      rc = join_into_store(r, op->token, op->key, op->klen, bytes, blen);
      if (rc != CHORUS_OK && rc != CHORUS_ENOMEM) {
        TRACE(r, "local read repair failed: %s", chorus_strerror(rc));
        rc = CHORUS_OK;
      }
    } else {
      struct wire_msg m;
      msg_replica_write(&m, blocking ? op->id : 0, op->token, op->key, op->klen,
                        bytes, blen, blocking ? WIRE_REPLICA_DURABLE : 0);
      t->repairing = blocking;
      *waiting += blocking;
      rc = fx->send(fx->ctx, t->id, &m);
    }
    /* The answer now equals the merged state (a later round compares
     * against it). */
    if (rc == CHORUS_OK) {
      uint8_t *copy = chorus_malloc(blen);
      if (copy == NULL) {
        rc = CHORUS_ENOMEM;
        break;
      }
      memcpy(copy, bytes, blen);
      chorus_free(t->reply);
      t->reply = copy;
      t->rlen = blen;
    }
  }
  chorus_free(bytes);
  return rc;
}

static bool read_all_answered(const struct op *op) {
  for (uint8_t i = 0; i < op->ntargets; i++)
    if (op->t[i].sent && !op->t[i].answered)
      return false;
  return true;
}

static bool read_repairs_pending(const struct op *op) {
  for (uint8_t i = 0; i < op->ntargets; i++)
    if (op->t[i].repairing)
      return true;
  return false;
}

/* Answered, every asked replica answered, no repair awaited: nothing more
 * can arrive that the read would use. */
static bool read_finished(const struct op *op) {
  return op->replied && read_all_answered(op) && !read_repairs_pending(op);
}

/* Advances a read: answers once r is met (after blocking repairs), and
 * finishes (async repair, free) once every asked replica answered. */
static int read_progress(struct repl *r, const struct repl_effects *fx,
                         struct op *op) {
  int rc = CHORUS_OK;
  enum crdt_type want = read_type(op->mtype);
  if (!op->replied && repl__tally_met(&op->tally, &op->need)) {
    struct crdt_obj merged;
    rc = read_join(r, op, want, &merged);
    if (rc == CHORUS_ETYPE) {
      op->replied = true;
      rc = reply_error(r, fx, &op->origin, op->mtype, rc,
                       "the key holds another type than %s",
                       crdt_type_name(want));
    } else if (rc == CHORUS_OK) {
      int waiting = 0;
      if (op->read_repair == WIRE_RR_BLOCKING && !read_repairs_pending(op))
        rc = read_repair(r, fx, op, &merged, true, &waiting);
      if (rc == CHORUS_OK && waiting == 0 && !read_repairs_pending(op)) {
        op->replied = true;
        rc = reply_read(r, fx, op, &merged);
      }
      crdt_obj_free(&merged);
    }
  }
  return rc;
}

/* The end of a read (all answered, or the timeout): async repair. */
static int read_finish(struct repl *r, const struct repl_effects *fx,
                       struct op *op) {
  int rc = CHORUS_OK;
  if (op->read_repair == WIRE_RR_ASYNC) {
    struct crdt_obj merged;
    rc = read_join(r, op, read_type(op->mtype), &merged);
    if (rc == CHORUS_OK) {
      int waiting;
      rc = read_repair(r, fx, op, &merged, false, &waiting);
      crdt_obj_free(&merged);
    } else if (rc == CHORUS_ETYPE) {
      rc = CHORUS_OK;
    }
  }
  op_free(r, op);
  return rc;
}

static int coordinate_read(struct repl *r, const struct request *q,
                           const struct ring_plist *pl, struct op *op,
                           const struct repl_effects *fx) {
  int rc = CHORUS_OK;
  for (uint8_t i = 0; i < op->ntargets && rc == CHORUS_OK; i++) {
    struct target *t = &op->t[i];
    if (t->id == r->cfg.self) {
      void *buf;
      rc = load_bytes(r, pl->token, q->key->ptr, q->key->len, &buf, &t->rlen);
      if (rc != CHORUS_OK)
        return OP_FAIL(r, fx, op, rc, "reading the key: %s",
                       chorus_strerror(rc));
      t->reply = buf;
      t->sent = true;
      if (all_durable(r)) {
        t->answered = true;
        repl__tally_add(&op->tally, &op->need, t->group, true);
      } else {
        rc = fx->sync(fx->ctx, store_last_seq(r->store), op->id);
      }
    } else if (peer_alive(r, t->id)) {
      struct wire_msg m = {.type = WIRE_REPLICA_READ, .request_id = op->id};
      m.replica_read.token = pl->token;
      m.replica_read.key = *q->key;
      t->sent = true;
      rc = fx->send(fx->ctx, t->id, &m);
    }
  }
  if (rc != CHORUS_OK)
    return rc;
  rc = read_progress(r, fx, op);
  if (rc == CHORUS_OK && read_finished(op))
    return read_finish(r, fx, op);
  return rc;
}

static int coordinate(struct repl *r, const struct wire_msg *m,
                      const struct repl_origin *origin, chorus_ms wall,
                      const struct repl_effects *fx) {
  struct request q;
  if (!request_of(m, &q))
    return reply_error(r, fx, origin, m->type, CHORUS_EINVAL,
                       "%s is not a request a node coordinates",
                       wire_type_name(m->type));
  if (r->failed)
    return reply_error(r, fx, origin, m->type, CHORUS_EIO,
                       "this node's store failed; it must restart");
  if (!r->ready)
    return reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                       "this node is starting");
  const struct wire_options *o = q.opts;
  chorus_ms timeout = o->timeout_ms ? o->timeout_ms : r->cfg.timeout_ms;
  bool sloppy = o->sloppy || r->cfg.sloppy;

  struct ring_plist pl;
  chorus_token token = ring_token_of(q.key->ptr, q.key->len);
  int rc = ring_lookup(r->ring, token, q.write && sloppy ? r->cfg.fallbacks : 0,
                       &pl);
  if (rc != CHORUS_OK)
    return reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                       "the ring has no replica for the key");
  bool replica = false;
  for (uint8_t i = 0; i < pl.n_natural; i++)
    replica |= pl.r[i].id == r->cfg.self;
  if (!replica) {
    if (origin->from_peer)
      return reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                         "forwarded to a node that is not a replica of the "
                         "key (rings differ)");
    return forward(r, m, &pl, origin, timeout, fx);
  }

  int32_t level = q.write ? (o->w ? o->w : r->cfg.w) : (o->r ? o->r : r->cfg.r);
  int32_t plevel = q.write ? o->pw : o->pr;
  struct repl_need need;
  rc = repl__resolve(ring_snapshot_replication(r->ring), level, plevel,
                     r->local_group, q.write ? "w" : "r", &need, r->err);
  if (rc != CHORUS_OK)
    return reply_error(r, fx, origin, m->type, rc, "%s", r->err);
  if (!can_meet(r, &pl, &need, q.write && sloppy))
    return reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                       "too few live replicas for %s=%s", q.write ? "w" : "r",
                       wire_level_name(level) ? wire_level_name(level) : "n");

  struct op *op = op_new(r, q.write ? OP_WRITE : OP_READ);
  if (op == NULL || op_set_key(op, token, q.key->ptr, q.key->len) != CHORUS_OK)
    return CHORUS_ENOMEM;
  op->mtype = m->type;
  op->origin = *origin;
  op->need = need;
  op->sloppy = sloppy;
  op->read_repair = o->read_repair ? o->read_repair : r->cfg.read_repair;
  op->pl = pl;
  uint8_t upto =
      q.write ? (uint8_t)(pl.n_natural + pl.n_pending) : pl.n_natural;
  for (uint8_t i = 0; i < upto; i++)
    op->t[op->ntargets++] = (struct target){.id = pl.r[i].id,
                                            .group = pl.r[i].dc,
                                            .natural = i < pl.n_natural,
                                            .pending = i >= pl.n_natural};
  rc = arm_op_timer(fx, op, timeout);
  if (rc != CHORUS_OK)
    return rc;
  return q.write ? coordinate_write(r, m, &q, &pl, op, wall, fx)
                 : coordinate_read(r, &q, &pl, op, fx);
}

/* ------------------------------------------------------------------------
 * Replica side
 * ------------------------------------------------------------------------ */

static int send_ack(struct repl *r, const struct repl_effects *fx,
                    chorus_node_id to, uint64_t req, uint8_t type,
                    uint64_t hint_seq, int status) {
  struct wire_msg m = {.type = type, .request_id = req};
  if (type == WIRE_HINT_ACK) {
    m.hint_ack.hint_seq = hint_seq;
    m.hint_ack.status = status;
  } else {
    m.replica_ack.status = status;
  }
  return fx->send(fx->ctx, to, &m);
}

/* Acknowledges once durable: a barrier on everything written so far. */
static int ack_when_durable(struct repl *r, const struct repl_effects *fx,
                            chorus_node_id to, uint64_t req, uint8_t type,
                            uint64_t hint_seq) {
  struct op *op = op_new(r, OP_ACK);
  if (op == NULL)
    return CHORUS_ENOMEM;
  op->peer = to;
  op->peer_req = req;
  op->ack_type = type;
  op->hint_seq = hint_seq;
  return fx->sync(fx->ctx, store_last_seq(r->store), op->id);
}

static int on_replica_write(struct repl *r, chorus_node_id from,
                            const struct wire_msg *m,
                            const struct repl_effects *fx) {
  const struct wire_replica_write *w = &m->replica_write;
  int status = CHORUS_EIO;
  if (!r->failed) {
    status = ring_token_of(w->key.ptr, w->key.len) == w->token
                 ? join_into_store(r, w->token, w->key.ptr, w->key.len,
                                   w->object.ptr, w->object.len)
                 : CHORUS_EMALFORMED;
  }
  if (status == CHORUS_ENOMEM)
    return status;
  if (status == CHORUS_ESYNCFAILED)
    r->failed = true;
  if (status == CHORUS_OK && (w->flags & WIRE_REPLICA_DURABLE))
    return ack_when_durable(r, fx, from, m->request_id, WIRE_REPLICA_ACK, 0);
  if (status != CHORUS_OK)
    TRACE(r, "replica write from %016" PRIx64 " refused: %s", from,
          chorus_errname(status));
  return send_ack(r, fx, from, m->request_id, WIRE_REPLICA_ACK, 0, status);
}

static int on_replica_read(struct repl *r, chorus_node_id from,
                           const struct wire_msg *m,
                           const struct repl_effects *fx) {
  const struct wire_replica_read *q = &m->replica_read;
  void *buf = NULL;
  size_t len = 0;
  int rc = ring_token_of(q->key.ptr, q->key.len) == q->token
               ? load_bytes(r, q->token, q->key.ptr, q->key.len, &buf, &len)
               : CHORUS_EMALFORMED;
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK) {
    /* No answer: the coordinator counts us as silent. */
    TRACE(r, "replica read from %016" PRIx64 " failed: %s", from,
          chorus_errname(rc));
    return CHORUS_OK;
  }
  if (!all_durable(r)) {
    struct op *op = op_new(r, OP_ANSWER);
    if (op == NULL) {
      chorus_free(buf);
      return CHORUS_ENOMEM;
    }
    op->peer = from;
    op->peer_req = m->request_id;
    op->obj = buf;
    op->olen = len;
    return fx->sync(fx->ctx, store_last_seq(r->store), op->id);
  }
  struct wire_msg a = {.type = WIRE_REPLICA_READ_REPLY,
                       .request_id = m->request_id};
  a.replica_read_reply.object = (struct wire_bytes){buf, len};
  rc = fx->send(fx->ctx, from, &a);
  chorus_free(buf);
  return rc;
}

/* A fallback keeps the object for @target: joined with any hint it
 * already keeps for the same key. */
static int keep_hint(struct repl *r, const struct wire_hint_deliver *h,
                     chorus_ms wall) {
  struct crdt_obj in;
  int rc = decode_obj(h->object.ptr, h->object.len, CRDT_NONE, &in, r->err);
  if (rc != CHORUS_OK)
    return CHORUS_EMALFORMED;
  struct repl_hint old;
  void *oldbuf = NULL;
  rc = repl__hints_get(r->store, h->target, h->token, h->key.ptr, h->key.len,
                       &old, &oldbuf);
  if (rc == CHORUS_OK && old.olen > 0) {
    struct crdt_obj prev;
    if (decode_obj(old.object, old.olen, in.type, &prev, r->err) == CHORUS_OK) {
      rc = crdt_obj_join(&in, &prev, NULL);
      crdt_obj_free(&prev);
    }
  } else if (rc == CHORUS_ENOTFOUND || rc == CHORUS_ECORRUPT) {
    rc = CHORUS_OK;
  }
  chorus_free(oldbuf);
  uint8_t *bytes = NULL;
  size_t blen = 0;
  if (rc == CHORUS_OK)
    rc = encode_obj(&in, &bytes, &blen);
  crdt_obj_free(&in);
  struct store_batch *b = rc == CHORUS_OK ? store_batch_new() : NULL;
  if (rc == CHORUS_OK && b == NULL)
    rc = CHORUS_ENOMEM;
  bool dropped = false;
  if (rc == CHORUS_OK)
    rc =
        repl__hints_arm(&r->hints, r->store, b, h->target, h->token, h->key.ptr,
                        h->key.len, h->hint_seq, wall, bytes, blen, &dropped);
  if (rc == CHORUS_OK && dropped)
    rc = CHORUS_ENOSPC;
  if (rc == CHORUS_OK)
    rc = store_write_batch(r->store, b, NULL);
  store_batch_free(b);
  chorus_free(bytes);
  if (rc != CHORUS_OK && rc != CHORUS_ENOMEM && rc != CHORUS_EMALFORMED)
    resync_hints(r);
  return rc;
}

static int on_hint_deliver(struct repl *r, chorus_node_id from,
                           const struct wire_msg *m, chorus_ms wall,
                           const struct repl_effects *fx) {
  const struct wire_hint_deliver *h = &m->hint_deliver;
  int status = CHORUS_EIO;
  if (!r->failed) {
    if (ring_token_of(h->key.ptr, h->key.len) != h->token || h->object.len == 0)
      status = CHORUS_EMALFORMED;
    else if (h->target == r->cfg.self)
      status = join_into_store(r, h->token, h->key.ptr, h->key.len,
                               h->object.ptr, h->object.len);
    else
      status = keep_hint(r, h, wall);
  }
  if (status == CHORUS_ENOMEM)
    return status;
  if (status == CHORUS_ESYNCFAILED)
    r->failed = true;
  if (status == CHORUS_OK)
    return ack_when_durable(r, fx, from, m->request_id, WIRE_HINT_ACK,
                            h->hint_seq);
  TRACE(r, "hint from %016" PRIx64 " refused: %s", from,
        chorus_errname(status));
  return send_ack(r, fx, from, m->request_id, WIRE_HINT_ACK, h->hint_seq,
                  status);
}

/* ------------------------------------------------------------------------
 * Answers to our own operations
 * ------------------------------------------------------------------------ */

static int disarm(struct repl *r, chorus_node_id target, const struct op *op,
                  uint64_t seq, bool *deleted) {
  int rc = repl__hints_disarm(&r->hints, r->store, target, op->token, op->key,
                              op->klen, seq, deleted);
  /* Deletes wait for the next write batch; without writes, write them
   * once enough have gathered (and at every hint round). */
  if (rc == CHORUS_OK && repl__hints_pending_deletes(&r->hints) >= 256)
    rc = repl__hints_flush(&r->hints, r->store, NULL);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK)
    TRACE(r, "hint for %016" PRIx64 " not deleted: %s", target,
          chorus_errname(rc));
  return CHORUS_OK;
}

static int on_write_ack(struct repl *r, struct op *op, chorus_node_id from,
                        int status, const struct repl_effects *fx) {
  struct target *t = op_target(op, from);
  if (t == NULL || !t->sent || t->acked)
    return CHORUS_OK;
  if (status != CHORUS_OK) {
    if (op->status == CHORUS_OK)
      op->status = status;
    TRACE(r, "%016" PRIx64 " refused the write: %s", from,
          chorus_errname(status));
    return CHORUS_OK;
  }
  t->acked = true;
  int rc;
  if (t->stands_in != 0) {
    /* A fallback took the object for a dead replica: it counts when the
     * request is sloppy (always, here), never as a primary, and its hint
     * replaces ours. */
    repl__tally_add(&op->tally, &op->need, t->group, false);
    rc = disarm(r, t->stands_in, op, op->hint_seq, NULL);
  } else {
    if (!t->pending)
      repl__tally_add(&op->tally, &op->need, t->group, t->natural);
    rc = disarm(r, from, op, op->hint_seq, NULL);
  }
  if (rc == CHORUS_OK)
    rc = write_try_reply(r, fx, op);
  if (rc == CHORUS_OK)
    write_maybe_done(r, op);
  return rc;
}

static int on_replay_ack(struct repl *r, struct op *op, chorus_node_id from,
                         uint64_t hint_seq, int status) {
  struct repl_peer_state *p = peer_get(r, op->target, false);
  if (p && p->inflight > 0)
    p->inflight--;
  int rc = CHORUS_OK;
  if (from == op->target && status == CHORUS_OK) {
    bool deleted = false;
    rc = disarm(r, op->target, op, hint_seq, &deleted);
    if (deleted)
      r->stats.hints_replayed++;
    TRACE(r, "hint replayed to %016" PRIx64 "%s", op->target,
          deleted ? "" : " (re-armed meanwhile: kept)");
  } else if (status != CHORUS_OK) {
    TRACE(r, "hint replay to %016" PRIx64 " refused: %s", op->target,
          chorus_errname(status));
  }
  op_free(r, op);
  return rc;
}

static int on_answer(struct repl *r, chorus_node_id from,
                     const struct wire_msg *m, const struct repl_effects *fx) {
  struct op *op = op_find(r, m->request_id);
  if (op == NULL)
    return CHORUS_OK; /* late, or meant for an earlier incarnation */
  switch (m->type) {
  case WIRE_REPLICA_ACK:
    if (op->kind == OP_WRITE)
      return on_write_ack(r, op, from, m->replica_ack.status, fx);
    if (op->kind == OP_READ) {
      struct target *t = op_target(op, from);
      if (t == NULL || !t->repairing)
        return CHORUS_OK;
      t->repairing = false;
      int rc = read_progress(r, fx, op);
      /* Blocking repair: read_finish has no async repair to do. */
      if (rc == CHORUS_OK && read_finished(op))
        return read_finish(r, fx, op);
      return rc;
    }
    return CHORUS_OK;
  case WIRE_HINT_ACK:
    if (op->kind == OP_WRITE)
      return on_write_ack(r, op, from, m->hint_ack.status, fx);
    if (op->kind == OP_REPLAY)
      return on_replay_ack(r, op, from, m->hint_ack.hint_seq,
                           m->hint_ack.status);
    return CHORUS_OK;
  case WIRE_REPLICA_READ_REPLY: {
    if (op->kind != OP_READ)
      return CHORUS_OK;
    struct target *t = op_target(op, from);
    if (t == NULL || !t->sent || t->answered)
      return CHORUS_OK;
    const struct wire_bytes *obj = &m->replica_read_reply.object;
    if (obj->len > 0) {
      if ((t->reply = chorus_malloc(obj->len)) == NULL)
        return CHORUS_ENOMEM;
      memcpy(t->reply, obj->ptr, obj->len);
      t->rlen = obj->len;
    }
    t->answered = true;
    repl__tally_add(&op->tally, &op->need, t->group, t->natural);
    int rc = read_progress(r, fx, op);
    if (rc == CHORUS_OK && read_finished(op))
      return read_finish(r, fx, op);
    return rc;
  }
  default:
    /* A forwarded request's answer: relay it. */
    if (op->kind != OP_FORWARD || from != op->target)
      return CHORUS_OK;
    {
      bool maybe = m->type == WIRE_ERROR && is_write_type(op->mtype) &&
                   chorus_maybe_applied(m->error.code);
      struct repl_origin origin = op->origin;
      op_free(r, op);
      return fx->reply(fx->ctx, &origin, m, maybe);
    }
  }
}

/* ------------------------------------------------------------------------
 * Hint replay
 * ------------------------------------------------------------------------ */

static int send_replay(const struct repl_effects *fx, struct op *op) {
  struct wire_msg m;
  msg_hint_deliver(&m, op->id, op->target, op->hint_seq, op->token, op->key,
                   op->klen, op->obj, op->olen);
  return fx->send(fx->ctx, op->target, &m);
}

/* Replays hint @h now, or, when the store holds writes not yet durable,
 * parks it in @round (created on first use) until a barrier. */
static int replay_one(struct repl *r, struct repl_peer_state *p,
                      const struct repl_hint *h, chorus_ms wall,
                      struct op **round, const struct repl_effects *fx) {
  if (r->cfg.hint_max_age_ms && wall > h->wall &&
      wall - h->wall > r->cfg.hint_max_age_ms) {
    TRACE(r, "hint for %016" PRIx64 " dropped: older than %" PRIu64 " ms",
          h->target, r->cfg.hint_max_age_ms);
    int rc = repl__hints_drop(&r->hints, r->store, h);
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
  }
  void *obj = NULL;
  size_t olen = h->olen;
  if (olen > 0) {
    if ((obj = chorus_malloc(olen)) == NULL)
      return CHORUS_ENOMEM;
    memcpy(obj, h->object, olen);
  } else {
    int rc = load_bytes(r, h->token, h->key, h->klen, &obj, &olen);
    if (rc != CHORUS_OK || olen == 0) {
      chorus_free(obj);
      return rc == CHORUS_ENOMEM ? rc : CHORUS_OK; /* keep the hint */
    }
  }
  struct op *op = op_new(r, OP_REPLAY);
  if (op == NULL || op_set_key(op, h->token, h->key, h->klen) != CHORUS_OK) {
    chorus_free(obj);
    return CHORUS_ENOMEM;
  }
  op->target = h->target;
  op->hint_seq = h->seq;
  op->obj = obj;
  op->olen = olen;
  p->inflight++;
  int rc = arm_op_timer(fx, op, r->cfg.timeout_ms);
  if (rc != CHORUS_OK)
    return rc;
  if (all_durable(r))
    return send_replay(fx, op);
  if (*round == NULL && (*round = op_new(r, OP_ROUND)) == NULL)
    return CHORUS_ENOMEM;
  struct op *rd = *round;
  if (rd->nwait == rd->capwait) {
    uint32_t ncap = rd->capwait ? rd->capwait * 2 : 16;
    uint64_t *w = chorus_realloc(rd->wait, ncap * sizeof *w);
    if (w == NULL)
      return CHORUS_ENOMEM;
    rd->wait = w;
    rd->capwait = ncap;
  }
  rd->wait[rd->nwait++] = op->id;
  return CHORUS_OK;
}

/* One replay round for @target: up to hint_batch hints in flight, resuming
 * after the last one sent.
 *
 * Under load every target always has hints, those of the writes in flight,
 * and all of them are young. A full scan that finds nothing due learns when
 * the first of them comes due (its arm time + timeout); a hint armed later
 * comes due later still. Until then the peer is quiet and the scan, which
 * steps over every live hint and every delete not yet flushed, is skipped.
 * A peer coming back up (repl_member) or the wall clock stepping back ends
 * the quiet. */
static int replay_target(struct repl *r, chorus_node_id target, chorus_ms wall,
                         struct op **round, const struct repl_effects *fx) {
  struct repl_peer_state *p = peer_get(r, target, true);
  if (p == NULL)
    return CHORUS_ENOMEM;
  if (p->down || target == r->cfg.self ||
      repl__hints_count(&r->hints, target) == 0 ||
      p->inflight >= r->cfg.hint_batch ||
      (wall >= p->quiet_from && wall < p->quiet_until))
    return CHORUS_OK;
  bool full_scan = p->cursor == NULL, any_due = false;
  chorus_ms first_due = wall + r->cfg.timeout_ms;
  struct repl_hint_scan sc;
  int rc = repl__hints_scan_open(r->store, target, p->cursor, p->curlen, &sc);
  if (rc != CHORUS_OK)
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
  bool reached_end = true;
  while (repl__hints_scan_valid(&sc) && rc == CHORUS_OK) {
    if (p->inflight >= r->cfg.hint_batch) {
      reached_end = false;
      break;
    }
    struct repl_hint h;
    if (!repl__hints_scan_get(&r->hints, &sc, &h)) {
      repl__hints_scan_next(&sc); /* disarmed (delete pending) or re-armed */
      continue;
    }
    /* A hint younger than a request timeout belongs to a write still in
     * flight: its own acknowledgement will delete it. */
    bool young = wall >= h.wall && wall - h.wall < r->cfg.timeout_ms;
    if (!young) {
      any_due = true;
      rc = replay_one(r, p, &h, wall, round, fx);
    } else if (h.wall + r->cfg.timeout_ms < first_due) {
      first_due = h.wall + r->cfg.timeout_ms;
    }
    if (repl__hints_scan_resume(&sc, &p->cursor, &p->curlen) != CHORUS_OK) {
      rc = CHORUS_ENOMEM;
      break;
    }
    repl__hints_scan_next(&sc);
  }
  repl__hints_scan_close(&sc);
  if (p->inflight > 0)
    TRACE(r,
          "replaying hints to %016" PRIx64 ": %u in flight, %" PRIu64 " kept",
          target, p->inflight, repl__hints_count(&r->hints, target));
  if (reached_end && rc == CHORUS_OK && full_scan && !any_due) {
    p->quiet_from = wall;
    p->quiet_until = first_due;
  }
  if (reached_end && rc == CHORUS_OK) {
    chorus_free(p->cursor);
    p->cursor = NULL;
    p->curlen = 0;
  }
  return rc;
}

/* Replays to @target (0: every target with hints); replays held back for
 * durability leave after one barrier. */
static int replay(struct repl *r, chorus_node_id target, chorus_ms wall,
                  const struct repl_effects *fx) {
  int rc = CHORUS_OK;
  struct op *round = NULL;
  if (target != 0)
    rc = replay_target(r, target, wall, &round, fx);
  chorus_node_id t;
  uint64_t count;
  for (uint32_t i = 0; target == 0 && rc == CHORUS_OK &&
                       repl__hints_target(&r->hints, i, &t, &count);
       i++)
    if (count > 0)
      rc = replay_target(r, t, wall, &round, fx);
  if (rc == CHORUS_OK && round != NULL)
    rc = fx->sync(fx->ctx, store_last_seq(r->store), round->id);
  return rc;
}

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

static void refresh_stats(struct repl *r) {
  repl__hints_stats(&r->hints, &r->stats);
}

int repl_new(const struct repl_config *cfg, struct store *store,
             const struct ring_snapshot *ring, struct repl **out) {
  if (cfg == NULL || store == NULL || ring == NULL || out == NULL)
    return CHORUS_EINVAL;
  struct repl *r = chorus_calloc(1, sizeof *r);
  if (r == NULL)
    return CHORUS_ENOMEM;
  r->cfg = *cfg;
  if (r->cfg.timeout_ms == 0)
    r->cfg.timeout_ms = 2000;
  if (r->cfg.hint_interval == 0)
    r->cfg.hint_interval = 1000;
  if (r->cfg.hint_batch == 0)
    r->cfg.hint_batch = 16;
  if (r->cfg.read_repair == WIRE_RR_DEFAULT)
    r->cfg.read_repair = WIRE_RR_ASYNC;
  r->store = store;
  repl__hints_init(&r->hints,
                   cfg->hint_max_bytes ? cfg->hint_max_bytes : UINT64_MAX);
  repl_set_ring(r, ring);
  *out = r;
  return CHORUS_OK;
}

void repl_free(struct repl *r) {
  if (r == NULL)
    return;
  for (uint32_t b = 0; b < OP_BUCKETS; b++)
    while (r->ops[b]) {
      struct op *op = r->ops[b];
      r->ops[b] = op->next;
      op_destroy(op);
    }
  for (uint32_t i = 0; i < r->npeers; i++)
    chorus_free(r->peers[i].cursor);
  chorus_free(r->peers);
  repl__hints_free(&r->hints);
  chorus_free(r);
}

void repl_set_ring(struct repl *r, const struct ring_snapshot *ring) {
  r->ring = ring;
  r->local_group =
      repl__group_of_dc(ring_snapshot_replication(ring), r->cfg.dc);
}

int repl_start(struct repl *r, chorus_ms now, chorus_ms wall,
               const struct repl_effects *fx) {
  void *buf;
  size_t len;
  int rc = store_get(r->store, STORE_META, META_EPOCH, strlen(META_EPOCH), &buf,
                     &len);
  if (rc == CHORUS_OK) {
    r->epoch = len == 8 ? store_be64_get(buf) : 0;
    chorus_free(buf);
  } else if (rc != CHORUS_ENOTFOUND) {
    return rc;
  }
  r->epoch++;
  if (r->epoch >= (1ull << (TIMER_KIND_SHIFT - OP_COUNTER_BITS)))
    return CHORUS_ERANGE;
  unsigned char e[8];
  store_be64_put(e, r->epoch);
  chorus_seq seq;
  if ((rc = store_put(r->store, STORE_META, META_EPOCH, strlen(META_EPOCH), e,
                      8, &seq)) != CHORUS_OK)
    return rc;
  if ((rc = repl__hints_load(&r->hints, r->store)) != CHORUS_OK)
    return rc;
  struct op *op = op_new(r, OP_EPOCH);
  if (op == NULL)
    return CHORUS_ENOMEM;
  TRACE(r, "start: epoch %" PRIu64 ", %" PRIu64 " hints kept", r->epoch,
        repl__hints_total(&r->hints, NULL));
  refresh_stats(r);
  return fx->sync(fx->ctx, seq, op->id);
}

int repl_client(struct repl *r, const struct wire_msg *m,
                const struct repl_origin *origin, chorus_ms now, chorus_ms wall,
                const struct repl_effects *fx) {
  r->stats.requests++;
  int rc = coordinate(r, m, origin, wall, fx);
  refresh_stats(r);
  return rc;
}

int repl_peer(struct repl *r, chorus_node_id from, const struct wire_msg *m,
              chorus_ms now, chorus_ms wall, const struct repl_effects *fx) {
  int rc;
  switch (m->type) {
  case WIRE_REPLICA_WRITE:
    rc = on_replica_write(r, from, m, fx);
    break;
  case WIRE_REPLICA_READ:
    rc = on_replica_read(r, from, m, fx);
    break;
  case WIRE_HINT_DELIVER:
    rc = on_hint_deliver(r, from, m, wall, fx);
    break;
  default: {
    struct request q;
    if (request_of(m, &q)) {
      struct repl_origin origin = {true, from, m->request_id};
      r->stats.requests++;
      rc = coordinate(r, m, &origin, wall, fx);
    } else {
      rc = on_answer(r, from, m, fx);
    }
  }
  }
  refresh_stats(r);
  return rc;
}

int repl_timer(struct repl *r, uint64_t id, chorus_ms now, chorus_ms wall,
               const struct repl_effects *fx) {
  uint64_t kind = id >> TIMER_KIND_SHIFT;
  int rc = CHORUS_OK;
  if (kind == TIMER_HINTS) {
    if (!r->failed) {
      rc = repl__hints_flush(&r->hints, r->store, NULL);
      if (rc != CHORUS_OK && rc != CHORUS_ENOMEM) {
        TRACE(r, "hint deletes not written: %s", chorus_errname(rc));
        rc = CHORUS_OK;
      }
    }
    if (rc == CHORUS_OK && r->ready && !r->failed)
      rc = replay(r, 0, wall, fx);
    if (rc == CHORUS_OK)
      rc = fx->timer(fx->ctx, TIMER_HINTS << TIMER_KIND_SHIFT,
                     r->cfg.hint_interval);
  } else if (kind == TIMER_OP) {
    struct op *op = op_find(r, id & ((1ull << TIMER_KIND_SHIFT) - 1));
    if (op == NULL)
      return CHORUS_OK;
    switch (op->kind) {
    case OP_WRITE:
      if (!op->replied) {
        uint8_t acks = op->tally.total;
        op->replied = true;
        rc = reply_error(r, fx, &op->origin, op->mtype, CHORUS_ETIMEDOUT,
                         "timed out with %u of %u acknowledgements; the "
                         "write may or may not have been applied",
                         acks, op->need.total);
      }
      op_free(r, op);
      break;
    case OP_READ:
      if (!op->replied) {
        op->replied = true;
        rc = reply_error(r, fx, &op->origin, op->mtype, CHORUS_ETIMEDOUT,
                         "timed out with %u of %u answers", op->tally.total,
                         op->need.total);
        op_free(r, op);
      } else {
        rc = read_finish(r, fx, op);
      }
      break;
    case OP_FORWARD: {
      struct repl_origin origin = op->origin;
      uint8_t mtype = op->mtype;
      op_free(r, op);
      rc = reply_error(r, fx, &origin, mtype, CHORUS_ETIMEDOUT,
                       "the replica the request was forwarded to did not "
                       "answer in time");
      break;
    }
    case OP_REPLAY: {
      struct repl_peer_state *p = peer_get(r, op->target, false);
      if (p && p->inflight > 0)
        p->inflight--;
      op_free(r, op);
      break;
    }
    default:
      break;
    }
  }
  refresh_stats(r);
  return rc;
}

int repl_sync_done(struct repl *r, uint64_t token, int status, chorus_ms now,
                   chorus_ms wall, const struct repl_effects *fx) {
  struct op *op = op_find(r, token);
  if (op == NULL)
    return CHORUS_OK;
  int rc = CHORUS_OK;
  if (status != CHORUS_OK) {
    /* fsyncgate: nothing waiting on this barrier is acknowledged, and the
     * node must stop (store.h). */
    r->failed = true;
    TRACE(r, "sync failed: %s; acknowledgements stop", chorus_errname(status));
  }
  switch (op->kind) {
  case OP_EPOCH:
    if (status == CHORUS_OK) {
      unsigned char b[16];
      store_be64_put(b, r->cfg.self);
      store_be64_put(b + 8, r->epoch);
      r->actor = ring_token_of(b, sizeof b);
      if (r->actor == 0)
        r->actor = 1;
      r->ready = true;
      TRACE(r, "ready: actor %016" PRIx64, r->actor);
      rc = fx->timer(fx->ctx, TIMER_HINTS << TIMER_KIND_SHIFT,
                     r->cfg.hint_interval);
    }
    op_free(r, op);
    break;
  case OP_WRITE:
    if (status != CHORUS_OK) {
      op->replied = true;
      rc = reply_error(r, fx, &op->origin, op->mtype, CHORUS_ESYNCFAILED,
                       "the coordinator's sync failed");
      op_free(r, op);
    } else {
      rc = write_send(r, fx, op);
    }
    break;
  case OP_READ: {
    struct target *self = op_target(op, r->cfg.self);
    if (status == CHORUS_OK && self != NULL && !self->answered) {
      self->answered = true;
      repl__tally_add(&op->tally, &op->need, self->group, true);
      rc = read_progress(r, fx, op);
      if (rc == CHORUS_OK && read_finished(op))
        rc = read_finish(r, fx, op);
    }
    break;
  }
  case OP_ANSWER:
    if (status == CHORUS_OK) {
      struct wire_msg a = {.type = WIRE_REPLICA_READ_REPLY,
                           .request_id = op->peer_req};
      a.replica_read_reply.object = (struct wire_bytes){op->obj, op->olen};
      rc = fx->send(fx->ctx, op->peer, &a);
    }
    op_free(r, op);
    break;
  case OP_ROUND:
    for (uint32_t i = 0; i < op->nwait && rc == CHORUS_OK; i++) {
      struct op *rp = op_find(r, op->wait[i]);
      if (rp != NULL && rp->kind == OP_REPLAY && status == CHORUS_OK)
        rc = send_replay(fx, rp);
    }
    op_free(r, op);
    break;
  case OP_ACK:
    rc = send_ack(r, fx, op->peer, op->peer_req, op->ack_type, op->hint_seq,
                  status == CHORUS_OK ? CHORUS_OK : CHORUS_ESYNCFAILED);
    op_free(r, op);
    break;
  default:
    break;
  }
  refresh_stats(r);
  return rc;
}

int repl_member(struct repl *r, chorus_node_id node, bool alive, chorus_ms now,
                chorus_ms wall, const struct repl_effects *fx) {
  if (node == r->cfg.self)
    return CHORUS_OK;
  struct repl_peer_state *p = peer_get(r, node, true);
  if (p == NULL)
    return CHORUS_ENOMEM;
  bool was_down = p->down;
  p->down = !alive;
  p->quiet_until = 0;
  if (was_down != p->down)
    TRACE(r, "%016" PRIx64 " is %s", node, alive ? "alive" : "down");
  int rc = CHORUS_OK;
  if (alive && was_down && r->ready && !r->failed)
    rc = replay(r, node, wall, fx);
  refresh_stats(r);
  return rc;
}

const struct repl_stats *repl_stats(const struct repl *r) {
  return &r->stats;
}

chorus_node_id repl_actor(const struct repl *r) {
  return r->ready ? r->actor : 0;
}

bool repl_failed(const struct repl *r) {
  return r->failed;
}

bool repl_is_replica(const struct repl *r, const void *key, size_t klen) {
  struct ring_plist pl;
  if (ring_lookup_key(r->ring, key, klen, 0, &pl) != CHORUS_OK)
    return false;
  for (uint8_t i = 0; i < pl.n_natural; i++)
    if (pl.r[i].id == r->cfg.self)
      return true;
  return false;
}

uint64_t repl_hints_for(const struct repl *r, chorus_node_id target) {
  return repl__hints_count(&r->hints, target);
}
