/* repl_read.c: coordinated reads: our own object and the other replicas'
 * answers gathered, joined, answered, and read repair (repl.h, THE READ
 * PATH). */
#include <inttypes.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_int.h"

static enum crdt_type read_type(uint8_t mtype) {
  return mtype == WIRE_GET            ? CRDT_KV
         : mtype == WIRE_COUNTER_READ ? CRDT_COUNTER
         : mtype == WIRE_LWW_READ     ? CRDT_LWW
         : mtype == WIRE_MAP_READ     ? CRDT_MAP
                                      : CRDT_SET;
}

int repl__read_start(struct repl *r, struct repl_op *op,
                     const struct repl_request *q,
                     const struct repl_effects *fx) {
  assert(op->kind == REPL_OP_READ && op->state == REPL_OP_START);
  struct repl_coord *c = &op->u.read.c;
  int rc = CHORUS_OK;
  for (uint8_t i = 0; i < c->ntargets && rc == CHORUS_OK; i++) {
    struct repl_target *t = &c->t[i];
    if (t->id == r->cfg.self) {
      void *buf;
      rc = repl__load_bytes(r, c->token, q->key->ptr, q->key->len, &buf,
                            &t->rlen);
      if (rc != CHORUS_OK)
        return repl__op_fail(r, op, fx, rc, "reading the key: %s",
                             chorus_strerror(rc));
      t->reply = buf;
      t->sent = true;
      /* Our part counts once durable (repl_object.c). */
      if (repl__all_durable(r)) {
        t->answered = true;
        repl__tally_add(&c->tally, &c->need, t->group, true);
      } else {
        rc = fx->sync(fx->ctx, store_last_seq(r->store), op->id);
      }
    } else if (repl__peer_alive(r, t->id)) {
      struct wire_msg m = {.type = WIRE_REPLICA_READ,
                           .request_id = repl__coord_req(op, c)};
      m.replica_read.token = c->token;
      m.replica_read.key = *q->key;
      t->sent = true;
      rc = fx->send(fx->ctx, t->id, &m);
    }
  }
  if (rc != CHORUS_OK)
    return rc;
  const struct repl_op_event started = {.kind = REPL_EV_STARTED};
  return repl__op_step(r, op, &started, fx);
}

bool repl__read_own(struct repl *r, struct repl_op *op) {
  assert(op->kind == REPL_OP_READ);
  struct repl_coord *c = &op->u.read.c;
  struct repl_target *self = repl__op_target(c, r->cfg.self);
  if (self == NULL || self->answered)
    return false;
  assert(self->sent);
  self->answered = true;
  repl__tally_add(&c->tally, &c->need, self->group, true);
  return true;
}

int repl__read_answer(struct repl_op *op, chorus_node_id from,
                      const struct wire_bytes *obj, bool *counted) {
  assert(op->kind == REPL_OP_READ);
  struct repl_coord *c = &op->u.read.c;
  *counted = false;
  struct repl_target *t = repl__op_target(c, from);
  if (t == NULL || !t->sent || t->answered)
    return CHORUS_OK; /* late, duplicated, or never asked */
  if (obj->len > 0) {
    if ((t->reply = chorus_malloc(obj->len)) == NULL)
      return CHORUS_ENOMEM;
    memcpy(t->reply, obj->ptr, obj->len);
    t->rlen = obj->len;
  }
  t->answered = true;
  repl__tally_add(&c->tally, &c->need, t->group, t->natural);
  *counted = true;
  return CHORUS_OK;
}

bool repl__read_refused(struct repl_op *op, chorus_node_id from, int code) {
  assert(op->kind == REPL_OP_READ);
  struct repl_target *t = repl__op_target(&op->u.read.c, from);
  if (t == NULL || !t->sent || t->answered)
    return false; /* late, duplicated, or never asked */
  t->answered = true;
  t->refusal = code < 0 ? code : CHORUS_EINTERNAL;
  return true;
}

bool repl__read_repair_acked(struct repl_op *op, chorus_node_id from) {
  assert(op->kind == REPL_OP_READ);
  struct repl_target *t = repl__op_target(&op->u.read.c, from);
  if (t == NULL || !t->repairing)
    return false;
  t->repairing = false;
  return true;
}

/* Joins every answer of a read into *@out (type @want); *@dvv_flags (may
 * be NULL) gets DVV_WARN when the kv join has more siblings than the
 * cap's warn level. */
static int read_join(struct repl *r, struct repl_coord *c, enum crdt_type want,
                     struct crdt_obj *out, unsigned *dvv_flags) {
  crdt_obj_init(out, want);
  if (dvv_flags)
    *dvv_flags = 0;
  for (uint8_t i = 0; i < c->ntargets; i++) {
    struct repl_target *t = &c->t[i];
    if (!t->answered || t->rlen == 0)
      continue;
    struct crdt_obj o;
    int rc = repl__decode_obj(t->reply, t->rlen, want, &o, r->err);
    if (rc == CHORUS_ETYPE) {
      crdt_obj_free(out);
      return rc;
    }
    if (rc == CHORUS_OK && (rc = repl__clock_check(r, &o)) != CHORUS_OK)
      crdt_obj_free(&o);
    if (rc != CHORUS_OK) {
      /* A register stamped too far ahead of our clock is left out, as a
       * replica would refuse it (THE CLOCK BOUND OF LWW REGISTERS). */
      REPL_TRACE(r, "answer of %016" PRIx64 " ignored: %s", t->id, r->err);
      continue;
    }
    unsigned f = 0;
    rc = crdt_obj_join(out, &o, &f);
    if (dvv_flags)
      *dvv_flags |= f;
    crdt_obj_free(&o);
    if (rc != CHORUS_OK) {
      crdt_obj_free(out);
      return rc;
    }
  }
  return CHORUS_OK;
}

/* Read repair: sends @merged to every answered replica whose answer
 * differs, and joins it into our own copy. Blocking repairs ask for an
 * acknowledgement; *@waiting counts them. */
static int read_repair(struct repl *r, const struct repl_effects *fx,
                       struct repl_op *op, const struct crdt_obj *merged,
                       bool blocking, int *waiting) {
  struct repl_coord *c = &op->u.read.c;
  uint8_t *bytes;
  size_t blen;
  int rc = repl__encode_obj(merged, &bytes, &blen);
  if (rc != CHORUS_OK)
    return rc;
  *waiting = 0;
  bool empty = true;
  for (uint8_t i = 0; i < c->ntargets; i++)
    if (c->t[i].rlen > 0)
      empty = false;
  for (uint8_t i = 0; i < c->ntargets && rc == CHORUS_OK && !empty; i++) {
    struct repl_target *t = &c->t[i];
    if (!t->answered || (t->rlen == blen && memcmp(t->reply, bytes, blen) == 0))
      continue;
    r->stats.read_repairs++;
    if (c->trace != NULL && c->trace->t[i].repaired_at == 0)
      c->trace->t[i].repaired_at = /* ms after the arrival, plus 1 */
          (uint32_t)(r->now >= c->born && r->now - c->born < UINT32_MAX - 1
                         ? r->now - c->born + 1
                         : 1);
    if (t->id == r->cfg.self) {
      rc = repl__join_into_store(r, c->token, c->key, c->klen, bytes, blen);
      if (rc != CHORUS_OK && rc != CHORUS_ENOMEM) {
        REPL_TRACE(r, "local read repair failed: %s", chorus_strerror(rc));
        rc = CHORUS_OK;
      }
    } else {
      struct wire_msg m;
      repl__msg_replica_write(
          &m, blocking ? op->id : 0, c->token, c->key, c->klen, bytes, blen,
          blocking ? WIRE_REPLICA_DURABLE : 0, ring_snapshot_version(r->ring));
      if (!repl__fits_peer(&m)) {
        /* Joined over what a frame holds (an older node let it grow):
         * the replica stays as it is until a write resolves the key. */
        r->stats.unsent++;
        REPL_TRACE(r, "read repair of %016" PRIx64 " not sent: %zu bytes",
                   t->id, blen);
        continue;
      }
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

static bool read_all_answered(const struct repl_coord *c) {
  for (uint8_t i = 0; i < c->ntargets; i++)
    if (c->t[i].sent && !c->t[i].answered)
      return false;
  return true;
}

/* The first replica that refused to answer, or NULL. */
static const struct repl_target *read_refusal(const struct repl_coord *c) {
  for (uint8_t i = 0; i < c->ntargets; i++)
    if (c->t[i].refusal != 0)
      return &c->t[i];
  return NULL;
}

bool repl__read_short(const struct repl_op *op) {
  assert(op->kind == REPL_OP_READ);
  const struct repl_coord *c = &op->u.read.c;
  return read_refusal(c) != NULL && read_all_answered(c) &&
         !repl__tally_met(&c->tally, &c->need);
}

int repl__read_reply_short(struct repl *r, struct repl_op *op,
                           const struct repl_effects *fx) {
  assert(op->kind == REPL_OP_READ && op->state == REPL_OP_REPLIED);
  const struct repl_coord *c = &op->u.read.c;
  const struct repl_target *t = read_refusal(c);
  assert(t != NULL); /* repl__read_short: a replica refused */
  if (t == NULL)     /* without assertions, an answer all the same */
    return repl__reply_error(r, fx, &c->origin, c->mtype, CHORUS_EUNAVAILABLE,
                             "%u of %u answers", c->tally.total, c->need.total);
  return repl__reply_error(
      r, fx, &c->origin, c->mtype, t->refusal,
      "%u of %u answers: replica %016" PRIx64 " refused (%s)%s", c->tally.total,
      c->need.total, t->id, chorus_errname(t->refusal),
      t->refusal == CHORUS_ETOOBIG
          ? ", its copy is too big to send; a read with r=1 answers from "
            "one copy, truncated, with the context that resolves it"
          : "");
}

static bool read_repairs_pending(const struct repl_coord *c) {
  for (uint8_t i = 0; i < c->ntargets; i++)
    if (c->t[i].repairing)
      return true;
  return false;
}

bool repl__read_finished(const struct repl_op *op) {
  assert(op->kind == REPL_OP_READ);
  const struct repl_coord *c = &op->u.read.c;
  return op->state == REPL_OP_REPLIED && read_all_answered(c) &&
         !read_repairs_pending(c);
}

/* A GET's answer is at most the budget plus the frame's reserve, which is
 * at most the peer frame: every object within the budget reads whole (its
 * values and its version vector are in its encoding too), and a larger one
 * (an older node let it grow, or concurrent writes joined past it) is
 * answered TRUNCATED: its first siblings, in dot order, as many as fit, and
 * the context of them all. */
static size_t reply_limit(const struct repl *r) {
  return (size_t)r->cfg.max_object_bytes + REPL_FRAME_RESERVE;
}

/* The answer to a GET, GET_REPLY2, into *@m: @items (d->n entries) and
 * *@ctx are the caller's to free. */
static int reply_get(struct repl *r, const struct crdt_obj *obj,
                     unsigned dvv_flags, struct wire_msg *m,
                     struct wire_bytes *items, uint8_t **ctx) {
  const struct dvv *d = &obj->u.kv;
  size_t clen = 0;
  int rc = repl__encode_ctx(obj, ctx, &clen);
  if (rc != CHORUS_OK)
    return rc;
  size_t bytes = crdt_obj_encoded_size(obj);
  m->type = WIRE_GET_REPLY2;
  m->get_reply.context = (struct wire_bytes){*ctx, clen};
  /* Dead siblings (tombstones, values past their expiry at our clock) are
   * absent from the answer; the context still covers them. */
  hlc_time now = repl__read_time(r);
  m->get_reply.siblings = dvv_live_count(d, now);
  m->get_reply.bytes = bytes;
  m->get_reply.flags = repl__object_warnings(r, bytes, dvv_flags);
  m->get_reply.values = (struct wire_bytes_list){0, items};
  /* Each value costs its bytes and at most 5 of header, the list's own
   * header at most 4 more than when empty. */
  size_t used = wire_encoded_size(m) + 4, n = 0;
  for (uint32_t i = 0; i < d->n; i++) {
    if (!dvv_sibling_live(&d->sib[i], now))
      continue;
    if (used + d->sib[i].len + 5 > reply_limit(r)) {
      m->get_reply.flags |= WIRE_REPLY_TRUNCATED;
      break;
    }
    used += d->sib[i].len + 5;
    items[n++] = (struct wire_bytes){d->sib[i].value, d->sib[i].len};
  }
  m->get_reply.values.n = n;
  if (m->get_reply.flags & WIRE_REPLY_TRUNCATED) {
    r->stats.truncated++;
    REPL_TRACE(r,
               "GET answered with %zu of %" PRIu32 " siblings: the "
               "object is %zu bytes",
               n, m->get_reply.siblings, bytes);
  }
  return CHORUS_OK;
}

/* SET_REPLY's context: the joined set's whole causal context (crdt.h,
 * crdt_ctx codec), so that a remove with it drops exactly the adds this
 * read saw (orset_remove_seen). Never a part of it: a context that left
 * dots out would make a remove spare adds the reader saw, and one that
 * named more would remove adds it never saw. Over WIRE_MAX_CONTEXT (some
 * thousands of actors) the read is refused: CHORUS_ETOOBIG, the reason in
 * r->err. *@ctx is the caller's to free. */
static int reply_set_ctx(struct repl *r, const struct orset *s,
                         struct wire_msg *m, uint8_t **ctx) {
  size_t n = crdt_ctx_encoded_size(&s->ctx), w = 0;
  if (n > WIRE_MAX_CONTEXT)
    return chorus_errf(r->err, CHORUS_ETOOBIG,
                       "the set's causal context is %zu bytes, over the "
                       "%u-byte context limit",
                       n, WIRE_MAX_CONTEXT);
  if ((*ctx = chorus_malloc(n)) == NULL)
    return CHORUS_ENOMEM;
  int rc = crdt_ctx_encode(&s->ctx, *ctx, n, &w);
  m->set_reply.context = (struct wire_bytes){*ctx, w};
  return rc;
}

/* MAP_REPLY: the joined map and, as for sets, its whole causal context
 * (a remove with it drops exactly what this read saw). A key never written
 * answers an empty map. Over WIRE_MAX_CONTEXT the read is refused
 * (CHORUS_ETOOBIG, reason in r->err). *@map and *@ctx are the caller's to
 * free. */
static int reply_map(struct repl *r, const struct crdt_map *mp,
                     struct wire_msg *m, uint8_t **map, uint8_t **ctx) {
  m->type = WIRE_MAP_REPLY;
  size_t n = crdt_map_encoded_size(mp), c = crdt_ctx_encoded_size(&mp->ctx);
  size_t wn = 0, wc = 0;
  if (c > WIRE_MAX_CONTEXT)
    return chorus_errf(r->err, CHORUS_ETOOBIG,
                       "the map's causal context is %zu bytes, over the "
                       "%u-byte context limit",
                       c, WIRE_MAX_CONTEXT);
  if ((*map = chorus_malloc(n)) == NULL || (*ctx = chorus_malloc(c)) == NULL)
    return CHORUS_ENOMEM;
  int rc = crdt_map_encode(mp, *map, n, &wn);
  if (rc == CHORUS_OK)
    rc = crdt_ctx_encode(&mp->ctx, *ctx, c, &wc);
  m->map_reply.map = (struct wire_bytes){*map, wn};
  m->map_reply.context = (struct wire_bytes){*ctx, wc};
  return rc;
}

/* The answer to a read from the joined object @obj (found or not). */
static int reply_read(struct repl *r, const struct repl_effects *fx,
                      const struct repl_coord *c, const struct crdt_obj *obj,
                      unsigned dvv_flags) {
  struct wire_msg m = {0};
  struct wire_bytes *items = NULL;
  uint8_t *ctx = NULL, *map = NULL;
  int rc = CHORUS_OK;
  switch (c->mtype) {
  case WIRE_GET: {
    const struct dvv *d = &obj->u.kv;
    items = chorus_malloc((d->n ? d->n : 1) * sizeof *items);
    if (items == NULL)
      return CHORUS_ENOMEM;
    rc = reply_get(r, obj, dvv_flags, &m, items, &ctx);
    break;
  }
  case WIRE_COUNTER_READ: {
    m.type = WIRE_COUNTER_REPLY;
    rc = pncounter_value(&obj->u.counter, &m.counter_reply.value);
    if (rc != CHORUS_OK)
      return repl__reply_error(r, fx, &c->origin, c->mtype, rc,
                               "counter value out of range");
    break;
  }
  case WIRE_LWW_READ: {
    /* The winning write, with its stamp: which of two blind writers won
     * is visible (the greater (ts, node)). */
    const struct lww *reg = &obj->u.lww;
    m.type = WIRE_LWW_REPLY;
    m.lww_reply.present = reg->present;
    m.lww_reply.value = (struct wire_bytes){reg->value, reg->len};
    m.lww_reply.ts = reg->ts;
    m.lww_reply.node = reg->node;
    break;
  }
  case WIRE_MAP_READ:
    rc = reply_map(r, &obj->u.map, &m, &map, &ctx);
    if (rc == CHORUS_ETOOBIG) {
      chorus_free(map);
      chorus_free(ctx);
      return repl__reply_error(r, fx, &c->origin, c->mtype, rc, "%s", r->err);
    }
    break;
  default: { /* WIRE_SET_READ */
    const struct orset *s = &obj->u.set;
    m.type = WIRE_SET_REPLY;
    items = chorus_malloc((s->n ? s->n : 1) * sizeof *items);
    if (items == NULL)
      return CHORUS_ENOMEM;
    for (uint32_t i = 0; i < s->n; i++)
      items[i] = (struct wire_bytes){s->e[i].data, s->e[i].len};
    m.set_reply.members = (struct wire_bytes_list){s->n, items};
    rc = reply_set_ctx(r, s, &m, &ctx);
    if (rc == CHORUS_ETOOBIG) {
      chorus_free(items);
      return repl__reply_error(r, fx, &c->origin, c->mtype, rc, "%s", r->err);
    }
    break;
  }
  }
  if (rc == CHORUS_OK) {
    r->stats.reads_ok++;
    rc = fx->reply(fx->ctx, &c->origin, &m, false);
  }
  chorus_free(items);
  chorus_free(ctx);
  chorus_free(map);
  return rc;
}

int repl__read_reply(struct repl *r, struct repl_op *op,
                     const struct repl_effects *fx, bool *answered) {
  assert(op->kind == REPL_OP_READ);
  assert(op->state == REPL_OP_SENT || op->state == REPL_OP_REPAIRING);
  struct repl_op_read *rd = &op->u.read;
  enum crdt_type want = read_type(rd->c.mtype);
  *answered = false;
  struct crdt_obj merged;
  unsigned dvv_flags = 0;
  int rc = read_join(r, &rd->c, want, &merged, &dvv_flags);
  if (rc == CHORUS_ETYPE) {
    *answered = true;
    return repl__reply_error(r, fx, &rd->c.origin, rd->c.mtype, rc,
                             "the key holds another type than %s",
                             crdt_type_name(want));
  }
  if (rc != CHORUS_OK)
    return rc;
  int waiting = 0;
  if (rd->read_repair == WIRE_RR_BLOCKING && !read_repairs_pending(&rd->c))
    rc = read_repair(r, fx, op, &merged, true, &waiting);
  if (rc == CHORUS_OK && waiting == 0 && !read_repairs_pending(&rd->c)) {
    *answered = true;
    rc = reply_read(r, fx, &rd->c, &merged, dvv_flags);
  }
  crdt_obj_free(&merged);
  return rc;
}

int repl__read_repair_async(struct repl *r, struct repl_op *op,
                            const struct repl_effects *fx) {
  assert(op->kind == REPL_OP_READ && op->state == REPL_OP_REPLIED);
  struct repl_op_read *rd = &op->u.read;
  if (rd->read_repair != WIRE_RR_ASYNC)
    return CHORUS_OK;
  struct crdt_obj merged;
  int rc = read_join(r, &rd->c, read_type(rd->c.mtype), &merged, NULL);
  if (rc == CHORUS_ETYPE)
    return CHORUS_OK; /* the client was told; there is nothing to repair */
  if (rc != CHORUS_OK)
    return rc;
  int waiting;
  rc = read_repair(r, fx, op, &merged, false, &waiting);
  crdt_obj_free(&merged);
  return rc;
}
