/* repl_replica.c: the replica side: a coordinator's REPLICA_WRITE and
 * REPLICA_READ, and HINT_DELIVER (a hint replayed to us, or an object a
 * fallback keeps for another node), answered once durable. Every field of
 * these messages comes from the network: checked here, never asserted. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_int.h"

void repl__msg_replica_write(struct wire_msg *m, uint64_t req,
                             chorus_token token, const void *key, size_t klen,
                             const void *obj, size_t olen, uint8_t flags,
                             uint64_t epoch) {
  *m = (struct wire_msg){.type = WIRE_REPLICA_WRITE2, .request_id = req};
  m->replica_write.token = token;
  m->replica_write.key = (struct wire_bytes){key, klen};
  m->replica_write.object = (struct wire_bytes){obj, olen};
  m->replica_write.flags = flags;
  m->replica_write.epoch = epoch;
}

void repl__msg_hint_deliver(struct wire_msg *m, uint64_t req,
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

int repl__send_times(const struct repl *r, const struct repl_effects *fx,
                     chorus_node_id to, uint64_t req, chorus_ms born,
                     bool synced) {
  if (!(req & REPL_REQ_TRACE))
    return CHORUS_OK;
  chorus_ms d = r->now >= born ? r->now - born : 0;
  uint32_t ms = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
  struct wire_msg m = {.type = WIRE_REPLICA_TIMES, .request_id = req};
  m.replica_times =
      (struct wire_replica_times){synced ? 1 : 0, synced ? ms : 0, ms};
  return fx->send(fx->ctx, to, &m);
}

int repl__send_ack(const struct repl_effects *fx, chorus_node_id to,
                   uint64_t req, uint8_t type, uint64_t hint_seq, int status) {
  assert(type == WIRE_REPLICA_ACK || type == WIRE_HINT_ACK);
  struct wire_msg m = {.type = type, .request_id = req};
  if (type == WIRE_HINT_ACK) {
    m.hint_ack.hint_seq = hint_seq;
    m.hint_ack.status = status;
  } else {
    m.replica_ack.status = status;
  }
  return fx->send(fx->ctx, to, &m);
}

bool repl__fits_peer(const struct wire_msg *m) {
  return wire_encoded_size(m) <= WIRE_FRAME_PREFIX + WIRE_MAX_FRAME_PEER;
}

int repl__send_read_answer(struct repl *r, const struct repl_effects *fx,
                           chorus_node_id to, uint64_t req, const void *obj,
                           size_t olen) {
  struct wire_msg a = {.type = WIRE_REPLICA_READ_REPLY, .request_id = req};
  a.replica_read_reply.object = (struct wire_bytes){obj, olen};
  if (repl__fits_peer(&a))
    return fx->send(fx->ctx, to, &a);
  char text[WIRE_MAX_ERROR_TEXT];
  snprintf(text, sizeof text,
           "this replica's copy is %zu bytes, too big for a peer frame", olen);
  r->stats.unsent++;
  REPL_TRACE(r, "read of %016" PRIx64 " refused: %s", to, text);
  wire_error_reply(&a, req, CHORUS_ETOOBIG, text);
  return fx->send(fx->ctx, to, &a);
}

/* Acknowledges once durable: a barrier on everything written so far.
 * @born: when the message acknowledged arrived. */
static int ack_when_durable(struct repl *r, const struct repl_effects *fx,
                            chorus_node_id to, uint64_t req, uint8_t type,
                            uint64_t hint_seq, chorus_ms born) {
  struct repl_op *op = repl__op_new(r, REPL_OP_ACK);
  if (op == NULL)
    return CHORUS_ENOMEM;
  op->u.ack = (struct repl_op_ack){to, req, type, hint_seq, born};
  return fx->sync(fx->ctx, store_last_seq(r->store), op->id);
}

/* arm_joined: into @b, the hint (@target, @token, @key) carrying @obj (a
 * received or moved object) joined with the object a hint of @target for
 * the key already carries here. Errors: CHORUS_EMALFORMED (@obj does not
 * decode), CHORUS_ENOMEM, encoder errors. */
static int arm_joined(struct repl *r, struct store_batch *b,
                      chorus_node_id target, chorus_token token,
                      const void *key, size_t klen, uint64_t seq,
                      const void *obj, size_t olen, chorus_ms wall,
                      bool *dropped) {
  struct crdt_obj in;
  int rc = repl__decode_obj(obj, olen, CRDT_NONE, &in, r->err);
  if (rc != CHORUS_OK)
    return CHORUS_EMALFORMED;
  struct repl_hint old;
  void *oldbuf = NULL;
  rc = repl__hints_get(r->store, target, token, key, klen, &old, &oldbuf);
  if (rc == CHORUS_OK && old.olen > 0) {
    struct crdt_obj prev;
    if (repl__decode_obj(old.object, old.olen, in.type, &prev, r->err) ==
        CHORUS_OK) {
      rc = repl__obj_join(&in, &prev, NULL);
      crdt_obj_free(&prev);
    }
  } else if (rc == CHORUS_ENOTFOUND || rc == CHORUS_ECORRUPT) {
    rc = CHORUS_OK;
  }
  chorus_free(oldbuf);
  uint8_t *bytes = NULL;
  size_t blen = 0;
  if (rc == CHORUS_OK)
    rc = repl__encode_obj(&in, &bytes, &blen);
  crdt_obj_free(&in);
  if (rc == CHORUS_OK)
    rc = repl__hints_arm(&r->hints, r->store, b, target, token, key, klen, seq,
                         wall, bytes, blen, dropped);
  if (rc == CHORUS_OK && *dropped)
    repl__aae_hint_dropped(r, target, token);
  chorus_free(bytes);
  return rc;
}

int repl__hint_owners(struct repl *r, struct store_batch *b,
                      const struct ring_plist *pl, chorus_node_id skip,
                      const void *key, size_t klen, const void *obj,
                      size_t olen, chorus_ms wall, size_t *armed) {
  uint64_t seq = repl__hint_seq(r);
  int rc = CHORUS_OK;
  *armed = 0;
  for (uint8_t i = 0; i < pl->n_natural + pl->n_pending && rc == CHORUS_OK;
       i++) {
    chorus_node_id p = pl->r[i].id;
    if (p == r->cfg.self || p == skip)
      continue;
    bool dropped = false;
    if (olen == 0 &&
        repl__hints_carries_object(&r->hints, p, pl->token, key, klen)) {
      struct repl_hint old;
      void *buf = NULL;
      rc = repl__hints_get(r->store, p, pl->token, key, klen, &old, &buf);
      if (rc == CHORUS_OK)
        rc = repl__join_into_store(r, pl->token, key, klen, old.object,
                                   old.olen);
      chorus_free(buf);
      if (rc == CHORUS_EMALFORMED || rc == CHORUS_ETYPE ||
          rc == CHORUS_ECORRUPT || rc == CHORUS_ENOTFOUND)
        rc = CHORUS_OK; /* nothing to keep of it */
      if (rc != CHORUS_OK)
        break;
    }
    rc = olen > 0 ? arm_joined(r, b, p, pl->token, key, klen, seq, obj, olen,
                               wall, &dropped)
                  : repl__hints_arm(&r->hints, r->store, b, p, pl->token, key,
                                    klen, seq, wall, NULL, 0, &dropped);
    if (rc == CHORUS_OK && dropped && olen == 0)
      repl__aae_hint_dropped(r, p, pl->token);
    *armed += rc == CHORUS_OK && !dropped;
  }
  return rc;
}

/* hint_owners: hints the key to every replica this node's ring lists
 * (natural and pending) but itself and @from (repl__hint_owners, without
 * an object: replay sends this node's current one, like a coordinator's);
 * with @pending_only, only when the key has pending replicas. Two callers:
 *   - a REPLICA_WRITE2 from a coordinator behind this node's ring epoch:
 *     it resolved the key before a topology change reached it and may
 *     have missed the key's pending replicas (or new natural ones, if the
 *     change has completed), while a stream may already have passed it;
 *   - a hint replayed to this node while the key has pending replicas:
 *     if this node is the one giving the key up, the receiver may have
 *     pulled it before the replay came (the hint's write reached other
 *     replicas, not this one), and nothing else would bring it there.
 * Each owner then gets it whatever the stream saw (repl.h, STREAMING); a
 * duplicate costs one idempotent join. */
static int hint_owners(struct repl *r, chorus_node_id from, chorus_token token,
                       const struct wire_bytes *key, bool pending_only,
                       chorus_ms wall) {
  struct ring_plist pl;
  if (ring_lookup(ring_snapshot_for_key(r->ring, key->ptr, key->len), token, 0,
                  &pl) != CHORUS_OK)
    return CHORUS_OK;
  bool owner = false;
  for (unsigned i = 0; i < (unsigned)pl.n_natural + pl.n_pending; i++)
    owner |= pl.r[i].id == r->cfg.self;
  /* A write for a key this node no longer owns (a hint replayed by a node
   * behind the ring): the owners get it, whatever @pending_only says, and
   * this copy is cleanup's (kept until the hints are replayed). */
  if (owner && pending_only && pl.n_pending == 0)
    return CHORUS_OK;
  r->cleanup_wanted |= !owner;
  struct store_batch *b = store_batch_new();
  if (b == NULL)
    return CHORUS_ENOMEM;
  size_t armed = 0;
  int rc = repl__hint_owners(r, b, &pl, from, key->ptr, key->len, NULL, 0, wall,
                             &armed);
  if (rc == CHORUS_OK && armed > 0) {
    rc = store_write_batch(r->store, b, NULL);
    if (rc != CHORUS_OK && rc != CHORUS_ENOMEM)
      repl__resync_hints(r);
    if (rc == CHORUS_OK) {
      r->stats.pending_hinted += armed;
      REPL_TRACE(r,
                 "a write from %016" PRIx64 " hinted to %zu owners at epoch "
                 "%" PRIu64,
                 from, armed, ring_snapshot_version(r->ring));
    }
  }
  store_batch_free(b);
  return rc;
}

/* ------------------------------------------------------------------------
 * REPLICA WRITES IN BATCHES (repl.h, cfg.defer_replica_writes)
 *
 * At many requests in flight a replica joins dozens of coordinators'
 * writes per loop iteration, each once its own store write: a WAL record
 * and a pass through RocksDB's write group apiece. Deferred, each join
 * still happens at once (its read sees every earlier one: the store
 * answers reads from its deferred batch), but its write joins the store's
 * deferred batch, and repl_flush, at the end of the driver's iteration,
 * applies them all as one store write and only then answers each one as
 * before: a barrier, then the acknowledgement. So nothing is acknowledged
 * that is not written, and the durability rule (repl_object.c: NOTHING
 * NON-DURABLE LEAVES A NODE; node_loop.c) is unchanged: the answers wait
 * for the same barrier, and chorusd hands the WAL to the OS after the
 * flush and before any output. If the store write fails, every write of
 * the batch is answered with its error (the coordinators hint them), as
 * one refused write is today.
 * ------------------------------------------------------------------------ */

static int defer_ack(struct repl *r, chorus_node_id to, uint64_t req) {
  if (r->ndeferred == r->capdeferred) {
    size_t cap = r->capdeferred ? r->capdeferred * 2 : 64;
    struct repl_deferred_ack *grown =
        chorus_realloc(r->deferred, cap * sizeof *grown);
    if (grown == NULL)
      return CHORUS_ENOMEM;
    r->deferred = grown;
    r->capdeferred = cap;
  }
  r->deferred[r->ndeferred++] = (struct repl_deferred_ack){to, req, r->now};
  return CHORUS_OK;
}

int repl_flush(struct repl *r, chorus_ms now, chorus_ms wall,
               const struct repl_effects *fx) {
  if (r->ndeferred == 0)
    return CHORUS_OK;
  repl__tick(r, now, wall);
  int status = store_commit(r->store);
  size_t n = r->ndeferred;
  r->ndeferred = 0;
  if (status == CHORUS_ENOMEM)
    return status;
  if (status != CHORUS_OK) {
    /* The tree noted them as written. */
    repl__aae_stale(r);
    if (status == CHORUS_ESYNCFAILED)
      r->failed = true;
    REPL_TRACE(r, "%zu deferred replica writes refused: %s", n,
               chorus_errname(status));
  }
  r->stats.replica_batches++;
  r->stats.replica_batched += n;
  int rc = CHORUS_OK;
  for (size_t i = 0; i < n && rc == CHORUS_OK; i++) {
    const struct repl_deferred_ack *d = &r->deferred[i];
    if (status == CHORUS_OK) {
      rc = ack_when_durable(r, fx, d->to, d->req, WIRE_REPLICA_ACK, 0, d->born);
      continue;
    }
    rc = repl__send_times(r, fx, d->to, d->req, d->born, false);
    if (rc == CHORUS_OK)
      rc = repl__send_ack(fx, d->to, d->req, WIRE_REPLICA_ACK, 0, status);
  }
  return rc;
}

int repl__on_replica_write(struct repl *r, chorus_node_id from,
                           const struct wire_msg *m, chorus_ms wall,
                           const struct repl_effects *fx) {
  const struct wire_replica_write *w = &m->replica_write;
  int status = CHORUS_EIO;
  /* Only writes answered after a barrier wait for the batch: a read
   * repair's (not durable) is answered at once. */
  bool defer =
      r->cfg.defer_replica_writes && (w->flags & WIRE_REPLICA_DURABLE) != 0;
  bool deferred = false;
  if (!r->failed && (status = store_write_allowed(r->store)) == CHORUS_OK) {
    if (ring_token_of(w->key.ptr, w->key.len) != w->token)
      status = CHORUS_EMALFORMED;
    else if (defer)
      status = repl__join_into_store_deferred(r, w->token, w->key.ptr,
                                              w->key.len, w->object.ptr,
                                              w->object.len, &deferred);
    else
      status = repl__join_into_store(r, w->token, w->key.ptr, w->key.len,
                                     w->object.ptr, w->object.len);
    if (status == CHORUS_OK && m->type == WIRE_REPLICA_WRITE2 &&
        w->epoch < ring_snapshot_version(r->ring))
      status = hint_owners(r, from, w->token, &w->key, false, wall);
  }
  if (status == CHORUS_ENOMEM)
    return status;
  if (status == CHORUS_ESYNCFAILED)
    r->failed = true;
  if (status == CHORUS_OK && deferred)
    return defer_ack(r, from, m->request_id);
  if (status == CHORUS_OK && (w->flags & WIRE_REPLICA_DURABLE))
    return ack_when_durable(r, fx, from, m->request_id, WIRE_REPLICA_ACK, 0,
                            r->now);
  if (status != CHORUS_OK)
    REPL_TRACE(r, "replica write from %016" PRIx64 " refused: %s", from,
               chorus_errname(status));
  int rc = repl__send_times(r, fx, from, m->request_id, r->now, false);
  if (rc != CHORUS_OK)
    return rc;
  return repl__send_ack(fx, from, m->request_id, WIRE_REPLICA_ACK, 0, status);
}

/* ------------------------------------------------------------------------
 * Forwarding for a coordinator of another datacenter (repl_write.c, ONE
 * MESSAGE PER REMOTE DATACENTER)
 * ------------------------------------------------------------------------ */

static uint64_t get_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

/* The target list of @f into @ids (*@n of them): false when it is not a
 * whole number of ids, names this node, the coordinator, node 0, or one
 * node twice. */
static bool forward_targets(const struct repl *r, chorus_node_id from,
                            const struct wire_replica_forward *f,
                            chorus_node_id *ids, uint8_t *n) {
  size_t len = f->targets.len;
  if (len == 0 || len % 8 != 0 || len / 8 > WIRE_MAX_FORWARD_TARGETS)
    return false;
  *n = (uint8_t)(len / 8);
  for (uint8_t k = 0; k < *n; k++) {
    ids[k] = get_be64(f->targets.ptr + 8 * k);
    if (ids[k] == 0 || ids[k] == r->cfg.self || ids[k] == from)
      return false;
    for (uint8_t j = 0; j < k; j++)
      if (ids[j] == ids[k])
        return false;
  }
  return true;
}

int repl__on_replica_forward(struct repl *r, chorus_node_id from,
                             const struct wire_msg *m, chorus_ms wall,
                             const struct repl_effects *fx) {
  const struct wire_replica_forward *f = &m->replica_forward;
  /* Our own copy first, acknowledged to the coordinator as its
   * REPLICA_WRITE2 would be. */
  struct wire_msg own = {.type = WIRE_REPLICA_WRITE2,
                         .request_id = m->request_id};
  own.replica_write = f->w;
  int rc = repl__on_replica_write(r, from, &own, wall, fx);
  if (rc != CHORUS_OK)
    return rc;
  chorus_node_id ids[WIRE_MAX_FORWARD_TARGETS];
  uint8_t n = 0;
  if (ring_token_of(f->w.key.ptr, f->w.key.len) != f->w.token ||
      !forward_targets(r, from, f, ids, &n)) {
    REPL_TRACE(r,
               "forward from %016" PRIx64 " refused: a malformed target "
               "list or token",
               from);
    return CHORUS_OK;
  }
  struct repl_op *op = repl__op_new(r, REPL_OP_RELAY);
  if (op == NULL)
    return CHORUS_ENOMEM;
  struct repl_op_relay *y = &op->u.relay;
  y->coord = from;
  y->coord_req = m->request_id;
  y->n = n;
  memcpy(y->to, ids, n * sizeof ids[0]);
  r->stats.dc_relayed += n;
  struct wire_msg w;
  repl__msg_replica_write(&w, op->id, f->w.token, f->w.key.ptr, f->w.key.len,
                          f->w.object.ptr, f->w.object.len, f->w.flags,
                          f->w.epoch);
  for (uint8_t k = 0; k < n && rc == CHORUS_OK; k++)
    rc = fx->send(fx->ctx, ids[k], &w);
  /* As long as the coordinator waits (its request's timeout); an ack
   * after that would count for nothing. */
  if (rc == CHORUS_OK)
    rc =
        repl__op_arm(fx, op, f->timeout_ms ? f->timeout_ms : r->cfg.timeout_ms);
  return rc;
}

int repl__relay_answer(struct repl *r, struct repl_op *op, chorus_node_id from,
                       const struct wire_msg *m, const struct repl_effects *fx,
                       bool *done) {
  assert(op->kind == REPL_OP_RELAY);
  struct repl_op_relay *y = &op->u.relay;
  *done = false;
  if (m->type != WIRE_REPLICA_ACK)
    return CHORUS_OK;
  uint8_t k = 0;
  while (k < y->n && y->to[k] != from)
    k++;
  if (k == y->n || y->answered[k])
    return CHORUS_OK; /* late, duplicated, or never asked */
  y->answered[k] = true;
  struct wire_msg a = {.type = WIRE_REPLICA_RELAY_ACK,
                       .request_id = y->coord_req};
  a.replica_relay_ack.replica = from;
  a.replica_relay_ack.status = m->replica_ack.status;
  int rc = fx->send(fx->ctx, y->coord, &a);
  *done = true;
  for (k = 0; k < y->n; k++)
    *done &= y->answered[k];
  return rc;
}

int repl__on_replica_read(struct repl *r, chorus_node_id from,
                          const struct wire_msg *m,
                          const struct repl_effects *fx) {
  const struct wire_replica_read *q = &m->replica_read;
  void *buf = NULL;
  size_t len = 0;
  int rc =
      ring_token_of(q->key.ptr, q->key.len) == q->token
          ? repl__load_bytes(r, q->token, q->key.ptr, q->key.len, &buf, &len)
          : CHORUS_EMALFORMED;
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK) {
    /* No answer: the coordinator counts us as silent. */
    REPL_TRACE(r, "replica read from %016" PRIx64 " failed: %s", from,
               chorus_errname(rc));
    return CHORUS_OK;
  }
  if (!repl__all_durable(r)) {
    struct repl_op *op = repl__op_new(r, REPL_OP_ANSWER);
    if (op == NULL) {
      chorus_free(buf);
      return CHORUS_ENOMEM;
    }
    op->u.answer = (struct repl_op_answer){.peer = from,
                                           .peer_req = m->request_id,
                                           .obj = buf,
                                           .olen = len,
                                           .born = r->now};
    return fx->sync(fx->ctx, store_last_seq(r->store), op->id);
  }
  rc = repl__send_times(r, fx, from, m->request_id, r->now, false);
  if (rc == CHORUS_OK)
    rc = repl__send_read_answer(r, fx, from, m->request_id, buf, len);
  chorus_free(buf);
  return rc;
}

/* A fallback keeps the object for @target: joined with any hint it
 * already keeps for the same key. A target that no longer owns the key in
 * this node's ring gets nothing kept: the object goes to the key's owners
 * at once (repl__hints_move, repl.h: HINTS FOLLOW OWNERSHIP). */
static int keep_hint(struct repl *r, chorus_node_id from,
                     const struct wire_hint_deliver *h, chorus_ms wall) {
  struct ring_plist pl;
  if (!repl__owns(r, h->target, h->token, h->key.ptr, h->key.len, &pl)) {
    struct repl_hint moved = {h->target,     h->token,     h->key.ptr,
                              h->key.len,    h->hint_seq,  wall,
                              h->object.ptr, h->object.len};
    return repl__hints_move(r, &moved, &pl, from, false);
  }
  struct store_batch *b = store_batch_new();
  if (b == NULL)
    return CHORUS_ENOMEM;
  bool dropped = false;
  int rc =
      arm_joined(r, b, h->target, h->token, h->key.ptr, h->key.len, h->hint_seq,
                 h->object.ptr, h->object.len, wall, &dropped);
  if (rc == CHORUS_OK && dropped)
    rc = CHORUS_ENOSPC;
  if (rc == CHORUS_OK)
    rc = store_write_batch(r->store, b, NULL);
  store_batch_free(b);
  if (rc != CHORUS_OK && rc != CHORUS_ENOMEM && rc != CHORUS_EMALFORMED)
    repl__resync_hints(r);
  return rc;
}

int repl__on_hint_deliver(struct repl *r, chorus_node_id from,
                          const struct wire_msg *m, chorus_ms wall,
                          const struct repl_effects *fx) {
  const struct wire_hint_deliver *h = &m->hint_deliver;
  int status = CHORUS_EIO;
  if (!r->failed && (status = store_write_allowed(r->store)) == CHORUS_OK) {
    if (ring_token_of(h->key.ptr, h->key.len) != h->token || h->object.len == 0)
      status = CHORUS_EMALFORMED;
    else if (h->target == r->cfg.self &&
             (status = repl__join_into_store(r, h->token, h->key.ptr,
                                             h->key.len, h->object.ptr,
                                             h->object.len)) == CHORUS_OK)
      status = hint_owners(r, from, h->token, &h->key, true, wall);
    else if (h->target != r->cfg.self)
      status = keep_hint(r, from, h, wall);
  }
  if (status == CHORUS_ENOMEM)
    return status;
  if (status == CHORUS_ESYNCFAILED)
    r->failed = true;
  if (status == CHORUS_OK)
    return ack_when_durable(r, fx, from, m->request_id, WIRE_HINT_ACK,
                            h->hint_seq, r->now);
  REPL_TRACE(r, "hint from %016" PRIx64 " refused: %s", from,
             chorus_errname(status));
  return repl__send_ack(fx, from, m->request_id, WIRE_HINT_ACK, h->hint_seq,
                        status);
}
