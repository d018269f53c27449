/* repl_write.c: coordinated writes: the update applied with this
 * incarnation's actor, written, sent once durable, counted, and hinted at
 * the end to the replicas that did not acknowledge it (repl.h, THE WRITE
 * PATH). */
#include <inttypes.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_int.h"

/* kv_stamp: the times of a kv write coordinated at @wall: *@ts from the
 * node's HLC, and *@expires from the request's TTL (0: none) on the same
 * clock: ts's physical time + ttl_ms, logical 0.
 * Errors: CHORUS_ERANGE (the clock or the expiry out of the HLC's range). */
static int kv_stamp(struct repl *r, uint64_t ttl_ms, chorus_ms wall,
                    hlc_time *ts, hlc_time *expires) {
  int rc = hlc_now(&r->hlc, wall, ts);
  if (rc != CHORUS_OK)
    return chorus_errf(r->err, rc, "wall clock %" PRIu64 " ms out of range",
                       (uint64_t)wall);
  *expires = 0;
  if (ttl_ms == 0)
    return CHORUS_OK;
  chorus_ms l = hlc_physical(*ts);
  if (ttl_ms > WIRE_MAX_TTL_MS || l + ttl_ms > HLC_PHYSICAL_MAX)
    return chorus_errf(r->err, CHORUS_EINVAL, "ttl of %" PRIu64 " ms too long",
                       ttl_ms);
  *expires = hlc_make(l + ttl_ms, 0);
  return CHORUS_OK;
}

/* Applies the update @m to @obj with this incarnation's actor, at @wall; a
 * kv write reports DVV_WARN in *@dvv_flags. Errors are the client's
 * (nothing written yet): CHORUS_EINVAL, CHORUS_EMALFORMED (context),
 * CHORUS_ESIBLINGS, CHORUS_ETOOBIG, CHORUS_ERANGE, ENOMEM. */
static int apply_update(struct repl *r, const struct wire_msg *m,
                        chorus_ms wall, struct crdt_obj *obj,
                        unsigned *dvv_flags) {
  chorus_node_id a = r->actor;
  int rc = CHORUS_OK;
  switch (m->type) {
  case WIRE_PUT:
  case WIRE_PUT_TTL:
  case WIRE_DELETE: {
    bool put = m->type != WIRE_DELETE;
    const struct wire_bytes *c = put ? &m->put.context : &m->del.context;
    /* A tombstone over an empty context covers nothing: it would delete
     * nothing and answer OK (issue 21). The delete names what it deletes;
     * the CLI reads first for a user who gave no context. */
    if (!put && c->len == 0)
      return chorus_errf(r->err, CHORUS_EINVAL,
                         "delete needs a context: read the key first");
    hlc_time ts, expires;
    rc = kv_stamp(r, put ? m->put.ttl_ms : 0, wall, &ts, &expires);
    if (rc != CHORUS_OK)
      return rc;
    struct vv ctx;
    vv_init(&ctx);
    if (c->len > 0 &&
        (rc = vv_decode(&ctx, c->ptr, c->len, r->err)) != CHORUS_OK)
      return chorus_errwrap(r->err, CHORUS_EMALFORMED, "context");
    /* Dots from one counter per incarnation (dvv_write_after): a key
     * purged here and written again never gets a dot a replica that still
     * holds its tombstone has seen (the simulator lost such writes: gc_sim
     * seeds 2 and 21). */
    struct crdt_dot dot;
    const struct wire_bytes *key = put ? &m->put.key : &m->del.key;
    struct dvv_limits lim;
    bool own = r->cfg.kv_limits != NULL &&
               r->cfg.kv_limits(r->cfg.kv_limits_ctx, key->ptr, key->len, &lim);
    rc = dvv_write_after(&obj->u.kv, a, r->dot_counter, &ctx,
                         put ? m->put.value.ptr : NULL,
                         put ? m->put.value.len : 0, !put, ts,
                         put ? expires : 0, own ? &lim : NULL, &dot, dvv_flags);
    if (rc == CHORUS_OK)
      r->dot_counter = dot.counter;
    else if (rc == CHORUS_ESIBLINGS)
      chorus_errf(r->err, rc,
                  "the write would leave more than %" PRIu32
                  " siblings (%s cap): read the key and write back with its "
                  "context to resolve them",
                  own ? lim.reject : (uint32_t)DVV_REJECT_DEFAULT,
                  own ? "its keyspace's" : "the node's");
    vv_free(&ctx);
    if (rc == CHORUS_OK && expires != 0)
      REPL_TRACE(r, "put at %016" PRIx64 ".%u expires at %016" PRIx64 ".%u",
                 (uint64_t)hlc_physical(ts), hlc_logical(ts),
                 (uint64_t)hlc_physical(expires), hlc_logical(expires));
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
  case WIRE_SET_REMOVE: {
    /* Observed-remove (crdt.h, ORSWOT): with the context of the client's
     * read, the adds that read saw, also those this coordinator has not
     * received yet (kept as deferred removes, crdt.h); an add it did not
     * see survives (add wins). Without one, the adds this coordinator's
     * copy holds. */
    const struct wire_bytes *c = &m->set_remove.context;
    struct crdt_ctx seen;
    crdt_ctx_init(&seen);
    if (c->len > 0 &&
        (rc = crdt_ctx_decode(&seen, c->ptr, c->len, r->err)) != CHORUS_OK)
      return rc == CHORUS_ENOMEM
                 ? rc
                 : chorus_errwrap(r->err, CHORUS_EMALFORMED, "context");
    for (size_t i = 0; i < m->set_remove.members.n && rc == CHORUS_OK; i++) {
      const struct wire_bytes *e = &m->set_remove.members.items[i];
      rc = c->len > 0 ? orset_remove_seen(&obj->u.set, e->ptr, e->len, &seen,
                                          NULL, NULL)
                      : orset_remove(&obj->u.set, e->ptr, e->len, NULL, NULL);
    }
    crdt_ctx_free(&seen);
    if (rc == CHORUS_EBUSY)
      return chorus_errf(r->err, rc,
                         "%u removes on this set wait for adds this node "
                         "has not received; try again once its replicas "
                         "have exchanged",
                         ORSET_DEFERRED_MAX);
    return rc;
  }
  case WIRE_LWW_SET:
  case WIRE_LWW_DELETE: {
    /* The register's write, stamped (our HLC time, our node id): the
     * total order lww_join follows (crdt.h). The clock first receives the
     * time of the write this node holds, so a write coordinated here
     * wins over every write this node had seen (a client that read
     * through it and writes again replaces what it read), however the
     * wall clocks of the writers compare; a copy too far ahead (ours,
     * from before a clock step back) is left out of our clock. */
    struct lww *reg = &obj->u.lww;
    if (reg->ts != 0)
      (void)hlc_recv(&r->hlc, wall, reg->ts, NULL);
    hlc_time ts;
    rc = hlc_now(&r->hlc, wall, &ts);
    if (rc != CHORUS_OK)
      return chorus_errf(r->err, rc, "wall clock %" PRIu64 " ms out of range",
                         (uint64_t)wall);
    bool applied = false;
    rc = m->type == WIRE_LWW_SET
             ? lww_set(reg, ts, r->cfg.self, m->lww_set.value.ptr,
                       m->lww_set.value.len, &applied)
             : lww_delete(reg, ts, r->cfg.self, &applied);
    if (rc == CHORUS_OK && !applied)
      /* Only a copy stamped ahead of our clock by more than the bound
       * beats a fresh time of ours: the node's own write from before its
       * clock stepped back. Refused, or the client's write would vanish
       * while it is told ok. */
      return chorus_errf(r->err, CHORUS_ECLOCK,
                         "this node holds a write of node %016" PRIx64
                         " stamped %" PRIu64 " ms after its clock",
                         reg->node,
                         (uint64_t)(hlc_physical(reg->ts) - hlc_physical(ts)));
    return rc;
  }
  case WIRE_MAP_UPDATE: {
    /* The field operations at this incarnation's actor, register sets
     * stamped with our HLC; with a context (a MAP_REPLY's), removes and
     * disables drop only what that read saw, also what this coordinator
     * has not received yet (kept as deferred removes; crdt_map_update's
     * EBUSY names the limit). */
    const struct wire_bytes *c = &m->map_update.context;
    struct crdt_ctx seen;
    crdt_ctx_init(&seen);
    if (c->len > 0 &&
        (rc = crdt_ctx_decode(&seen, c->ptr, c->len, r->err)) != CHORUS_OK)
      return rc == CHORUS_ENOMEM
                 ? rc
                 : chorus_errwrap(r->err, CHORUS_EMALFORMED, "context");
    struct crdt_map_op *ops = NULL;
    uint32_t nops = 0;
    rc = crdt_map_ops_decode(&ops, &nops, m->map_update.ops.ptr,
                             m->map_update.ops.len, r->err);
    if (rc != CHORUS_OK && rc != CHORUS_ENOMEM)
      rc = chorus_errwrap(r->err, CHORUS_EMALFORMED, "map operations");
    /* A register value or set member is held to the value limit, as a
     * PUT's value and a SET_ADD member are (check_limits). */
    for (uint32_t i = 0; rc == CHORUS_OK && i < nops; i++)
      if (ops[i].len > r->cfg.max_value_bytes)
        rc = chorus_errf(r->err, CHORUS_ETOOBIG,
                         "map operation %" PRIu32 ": %" PRIu32
                         " bytes, over the %" PRIu32 "-byte value limit",
                         i + 1, ops[i].len, r->cfg.max_value_bytes);
    hlc_time ts = 0;
    if (rc == CHORUS_OK && (rc = hlc_now(&r->hlc, wall, &ts)) != CHORUS_OK)
      rc = chorus_errf(r->err, rc, "wall clock %" PRIu64 " ms out of range",
                       (uint64_t)wall);
    if (rc == CHORUS_OK)
      rc = crdt_map_update(&obj->u.map, a, ts, c->len > 0 ? &seen : NULL, ops,
                           nops, r->err);
    chorus_free(ops);
    crdt_ctx_free(&seen);
    return rc;
  }
  default:
    return CHORUS_EINVAL;
  }
}

int repl__write_start(struct repl *r, struct repl_op *op,
                      const struct wire_msg *m, const struct repl_request *q,
                      chorus_ms wall, const struct repl_effects *fx) {
  assert(op->kind == REPL_OP_WRITE && op->state == REPL_OP_START);
  assert(r->ready && r->actor != 0);
  struct repl_op_write *w = &op->u.write;
  const struct ring_plist *pl = &w->pl;
  struct crdt_obj obj;
  void *buf;
  size_t len;
  int rc = repl__load_bytes(r, pl->token, q->key->ptr, q->key->len, &buf, &len);
  if (rc != CHORUS_OK)
    return repl__op_fail(r, op, fx, rc, "reading the key: %s",
                         chorus_strerror(rc));
  rc = repl__decode_obj(buf, len, q->type, &obj, r->err);
  uint64_t old_digest = aae_digest(buf, len); /* the tree's (repl_aae.c) */
  chorus_free(buf);
  if (rc == CHORUS_ETYPE)
    return repl__op_fail(r, op, fx, rc, "the key holds another type than %s",
                         crdt_type_name(q->type));
  if (rc != CHORUS_OK)
    return repl__op_fail(r, op, fx, CHORUS_ECORRUPT,
                         "the stored object is corrupt: %s", r->err);
  r->err[0] = '\0';
  unsigned dvv_flags = 0;
  rc = apply_update(r, m, wall, &obj, &dvv_flags);
  if (rc == CHORUS_OK)
    rc = repl__encode_obj(&obj, &w->obj, &w->olen);
  if (rc == CHORUS_OK)
    rc = repl__encode_ctx(&obj, &w->ctx, &w->clen);
  if (rc == CHORUS_OK && obj.type == CRDT_KV)
    w->siblings = dvv_live_count(&obj.u.kv, repl__read_time(r));
  bool mortal = rc == CHORUS_OK && repl__gc_mortal(&obj);
  crdt_obj_free(&obj);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK)
    return repl__op_fail(r, op, fx, rc, "%s",
                         r->err[0] ? r->err : chorus_strerror(rc));
  /* The byte budget (repl.h), decided before anything is written or sent.
   * A write with the context of a read shrinks the object and passes. */
  if (w->olen > r->cfg.max_object_bytes) {
    r->stats.too_big++;
    return repl__op_fail(
        r, op, fx, CHORUS_ETOOBIG,
        "object would be %zu bytes, over the %" PRIu32 "-byte budget: %s",
        w->olen, r->cfg.max_object_bytes,
        q->type == CRDT_LWW   ? "write a smaller value"
        : q->type == CRDT_MAP ? "remove fields to make room"
        : q->type == CRDT_SET ? "remove members to make room"
                              : "read it and write back with its context to "
                                "resolve siblings");
  }
  w->flags = repl__object_warnings(r, w->olen, dvv_flags);

  /* The object alone: hints are armed when the operation ends, for the
   * replicas that did not acknowledge it by then (repl__write_hint_missing,
   * HINTS FOR THE REPLICAS THAT DID NOT ANSWER). */
  struct store_batch *b = store_batch_new();
  if (b == NULL)
    return CHORUS_ENOMEM;
  /* Deletes of disarmed hints ride along, ahead of this write's hints. */
  rc = repl__hints_flush(&r->hints, r->store, b);
  size_t dl;
  unsigned char *dk =
      rc == CHORUS_OK ? repl__data_key(pl->token, q->key->ptr, q->key->len, &dl)
                      : NULL;
  rc = dk ? store_batch_put(b, STORE_DATA, dk, dl, w->obj, w->olen)
          : CHORUS_ENOMEM;
  if (rc == CHORUS_OK && mortal)
    rc = repl__gc_note(r, b, pl->token, q->key->ptr, q->key->len);
  w->hint_seq = repl__hint_seq(r);
  w->wall = wall;
  w->epoch = ring_snapshot_version(r->ring); /* @pl's, resolved just now */
  chorus_seq seq = 0;
  if (rc == CHORUS_OK)
    rc = store_write_batch(r->store, b, &seq);
  store_batch_free(b);
  w->stored = rc == CHORUS_OK;
  if (rc == CHORUS_OK)
    repl__aae_note(r, dk, dl, old_digest, aae_digest(w->obj, w->olen));
  else if (dk != NULL)
    repl__aae_stale(r);
  chorus_free(dk);
  if (rc != CHORUS_OK && rc != CHORUS_ENOMEM)
    repl__resync_hints(r);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK) {
    if (rc == CHORUS_ESYNCFAILED)
      r->failed = true;
    return repl__op_fail(r, op, fx, rc, "writing the object: %s",
                         chorus_strerror(rc));
  }
  rc = fx->sync(fx->ctx, seq, op->id);
  if (rc != CHORUS_OK)
    return rc;
  const struct repl_op_event started = {.kind = REPL_EV_STARTED};
  return repl__op_step(r, op, &started, fx);
}

/* ------------------------------------------------------------------------
 * ONE MESSAGE PER REMOTE DATACENTER
 *
 * A write with replicas in other datacenters would cross the WAN once per
 * remote replica, object and all: with 3+3 replicas, three copies of every
 * write on the link, and as many acknowledgements back. Under a closed
 * loop of fast (ONE, LOCAL_*) writes that is what saturates the link and
 * queues every later request behind it (issue 22's note: LOCAL_QUORUM p50
 * 1,132 ms behind a ONE run). So, as Cassandra does, the coordinator sends
 * the write once per remote datacenter: a REPLICA_FORWARD to one live
 * replica there, the forwarder, naming the datacenter's other live
 * replicas it asks. The forwarder stores it as a REPLICA_WRITE2 (its own
 * REPLICA_ACK comes straight back), sends each named replica a
 * REPLICA_WRITE2 over its LAN, and relays each one's REPLICA_ACK as a
 * REPLICA_RELAY_ACK naming that replica (repl_replica.c, REPL_OP_RELAY).
 * The coordinator thus still counts per replica: EACH_QUORUM's per
 * datacenter quorums, ALL, pw, ECLOCK refusals and the slow-request line
 * are unchanged, and a replica whose ack never arrives (the forwarder died
 * on the way, or the replica) keeps the hint the coordinator armed for it
 * before anything was sent, like any replica that did not answer. A relay
 * is believed only from the forwarder the replica was sent through
 * (repl_target.via).
 *
 * Only a datacenter with two or more live replicas to ask is forwarded to
 * (one would gain nothing), never the coordinator's own, and never a
 * stand-in's hint (HINT_DELIVER goes direct). A forwarder that answers
 * ENOTSUP (a release from before REPLICA_FORWARD; unknown types are
 * answered so, the connection kept) is marked and never asked again, and
 * it and its datacenter's replicas get the object direct at once: in a
 * mixed cluster the first write to each older node pays one extra round
 * trip, no more.
 * ------------------------------------------------------------------------ */

static void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

/* A target that may be sent through a forwarder, or be one. */
static bool forwardable(struct repl *r, const struct repl_op *op,
                        const struct repl_target *t) {
  return !t->sent && t->id != r->cfg.self && t->stands_in == 0 &&
         t->group != op->u.write.local_group && repl__peer_alive(r, t->id);
}

/* The first pass of repl__write_send: a REPLICA_FORWARD per remote
 * datacenter with two or more live replicas; they are sent, the others
 * left to the direct pass. */
static int send_forwards(struct repl *r, struct repl_op *op,
                         const struct repl_effects *fx) {
  struct repl_op_write *w = &op->u.write;
  struct repl_coord *c = &w->c;
  int rc = CHORUS_OK;
  for (uint8_t i = 0; i < c->ntargets && rc == CHORUS_OK; i++) {
    struct repl_target *f = &c->t[i];
    const struct repl_peer_state *ps;
    if (!forwardable(r, op, f) ||
        ((ps = repl__peer_get(r, f->id, false)) != NULL && ps->no_forward))
      continue;
    uint8_t ids[8 * WIRE_MAX_FORWARD_TARGETS];
    uint8_t via[RING_PLIST_MAX];
    unsigned n = 0;
    for (uint8_t j = 0; j < c->ntargets && n < WIRE_MAX_FORWARD_TARGETS; j++) {
      const struct repl_target *t = &c->t[j];
      if (j == i || t->group != f->group || !forwardable(r, op, t))
        continue;
      put_be64(ids + 8 * n, t->id);
      via[n++] = j;
    }
    if (n == 0)
      continue;
    struct wire_msg m = {.type = WIRE_REPLICA_FORWARD, .request_id = op->id};
    repl__msg_replica_write(&m, op->id, c->token, c->key, c->klen, w->obj,
                            w->olen, WIRE_REPLICA_DURABLE, w->epoch);
    struct wire_replica_write rw = m.replica_write;
    m = (struct wire_msg){.type = WIRE_REPLICA_FORWARD, .request_id = op->id};
    m.replica_forward.w = rw;
    m.replica_forward.targets = (struct wire_bytes){ids, 8 * (size_t)n};
    m.replica_forward.timeout_ms = w->timeout_ms <= WIRE_MAX_TIMEOUT_MS
                                       ? w->timeout_ms
                                       : WIRE_MAX_TIMEOUT_MS;
    if (!repl__fits_peer(&m))
      continue; /* the object at the budget's edge: sent direct */
    f->sent = true;
    for (unsigned k = 0; k < n; k++) {
      c->t[via[k]].sent = true;
      c->t[via[k]].via = f->id;
    }
    r->stats.dc_forwards++;
    r->stats.dc_forwarded_writes += n;
    REPL_TRACE(r,
               "write forwarded to %016" PRIx64 " for %u replicas of its "
               "datacenter",
               f->id, n);
    rc = fx->send(fx->ctx, f->id, &m);
  }
  return rc;
}

int repl__write_unforward(struct repl *r, struct repl_op *op,
                          chorus_node_id from, const struct repl_effects *fx) {
  assert(op->kind == REPL_OP_WRITE);
  struct repl_op_write *w = &op->u.write;
  struct repl_coord *c = &w->c;
  struct repl_target *f = repl__op_target(c, from);
  bool forwarded = false;
  for (uint8_t i = 0; i < c->ntargets; i++)
    forwarded |= c->t[i].via == from;
  if (f == NULL || !forwarded)
    return CHORUS_OK; /* not an answer to a REPLICA_FORWARD */
  struct repl_peer_state *ps = repl__peer_get(r, from, true);
  if (ps == NULL)
    return CHORUS_ENOMEM;
  ps->no_forward = true;
  REPL_TRACE(r,
             "%016" PRIx64 " does not forward writes (an older release): "
             "its datacenter gets them direct",
             from);
  int rc = CHORUS_OK;
  for (uint8_t i = 0; i < c->ntargets && rc == CHORUS_OK; i++) {
    struct repl_target *t = &c->t[i];
    if ((t != f && t->via != from) || t->acked)
      continue;
    t->via = 0;
    struct wire_msg m;
    repl__msg_replica_write(&m, op->id, c->token, c->key, c->klen, w->obj,
                            w->olen, WIRE_REPLICA_DURABLE, w->epoch);
    rc = fx->send(fx->ctx, t->id, &m);
  }
  return rc;
}

int repl__write_send(struct repl *r, struct repl_op *op,
                     const struct repl_effects *fx) {
  assert(op->kind == REPL_OP_WRITE && op->state == REPL_OP_SENT);
  struct repl_op_write *w = &op->u.write;
  struct repl_coord *c = &w->c;
  int rc = CHORUS_OK;
  uint8_t first_fallback = (uint8_t)(w->pl.n_natural + w->pl.n_pending);
  uint8_t end_fallback = (uint8_t)(first_fallback + w->pl.n_fallback);
  assert(end_fallback <= RING_PLIST_MAX);
  uint8_t n = c->ntargets;
  rc = send_forwards(r, op, fx);
  for (uint8_t i = 0; i < n && rc == CHORUS_OK; i++) {
    struct repl_target *t = &c->t[i];
    struct wire_msg m;
    if (t->sent)
      continue; /* in a REPLICA_FORWARD */
    if (t->id == r->cfg.self) {
      t->sent = t->acked = true;
      repl__tally_add(&c->tally, &c->need, t->group, true);
      continue;
    }
    if (repl__peer_alive(r, t->id)) {
      repl__msg_replica_write(&m, repl__coord_req(op, c), c->token, c->key,
                              c->klen, w->obj, w->olen, WIRE_REPLICA_DURABLE,
                              w->epoch);
      assert(repl__fits_peer(&m)); /* within the budget */
      t->sent = true;
      rc = fx->send(fx->ctx, t->id, &m);
      continue;
    }
    if (!w->sloppy || !t->natural)
      continue; /* its hint waits for it */
    /* Sloppy quorum: the first live fallback of its datacenter not yet
     * used keeps the object for it. Only of its datacenter: the stand-in
     * counts toward that datacenter's LOCAL/EACH quorum, as the replica
     * would have, and holds the hint a LAN hop from it; a node across the
     * WAN would make a "local" write pay the WAN and count replicas of the
     * wrong datacenter. None there: no stand-in, the hint stays here. */
    uint8_t fi = first_fallback;
    while (fi < end_fallback && (w->pl.r[fi].dc != t->group ||
                                 !repl__peer_alive(r, w->pl.r[fi].id) ||
                                 repl__op_target(c, w->pl.r[fi].id) != NULL))
      fi++;
    if (fi == end_fallback || c->ntargets == RING_PLIST_MAX)
      continue;
    const struct ring_replica *f = &w->pl.r[fi];
    struct repl_target *ft = &c->t[c->ntargets++];
    *ft = (struct repl_target){
        .id = f->id, .group = f->dc, .stands_in = t->id, .sent = true};
    REPL_TRACE(r, "sloppy: %016" PRIx64 " stands in for %016" PRIx64, f->id,
               t->id);
    repl__msg_hint_deliver(&m, op->id, t->id, w->hint_seq, c->token, c->key,
                           c->klen, w->obj, w->olen);
    assert(repl__fits_peer(&m));
    rc = fx->send(fx->ctx, f->id, &m);
  }
  return rc;
}

int repl__write_ack(struct repl *r, struct repl_op *op, chorus_node_id from,
                    int status, bool *counted) {
  assert(op->kind == REPL_OP_WRITE);
  struct repl_op_write *w = &op->u.write;
  struct repl_coord *c = &w->c;
  *counted = false;
  struct repl_target *t = repl__op_target(c, from);
  if (t == NULL || !t->sent || t->acked)
    return CHORUS_OK; /* late, duplicated, or never asked */
  if (status != CHORUS_OK) {
    REPL_TRACE(r, "%016" PRIx64 " refused the write: %s", from,
               chorus_errname(status));
    /* A replica whose clock is behind the write's stamp by more than the
     * bound refuses it every time until its clock catches up: no use
     * waiting for the timeout (repl__write_short). Its hint stays armed. */
    if (status == CHORUS_ECLOCK)
      t->refusal = status;
    return CHORUS_OK;
  }
  t->acked = true;
  *counted = true;
  if (t->stands_in != 0) {
    /* A fallback took the object for a dead replica: it counts when the
     * request is sloppy (always, here), never as a primary, and its hint
     * replaces ours. */
    assert(w->sloppy);
    repl__tally_add(&c->tally, &c->need, t->group, false);
    return repl__disarm(r, t->stands_in, c->token, c->key, c->klen, w->hint_seq,
                        NULL);
  }
  /* A pending replica counts toward the raised need, never as a primary
   * (repl__need_pending). */
  repl__tally_add(&c->tally, &c->need, t->group, t->natural);
  return repl__disarm(r, from, c->token, c->key, c->klen, w->hint_seq, NULL);
}

/* ------------------------------------------------------------------------
 * HINTS FOR THE REPLICAS THAT DID NOT ANSWER
 *
 * A write used to arm a durable hint for every other replica in the batch
 * that stored its object, and the acknowledgements deleted them: two puts
 * and two deletes in the hints space per QUORUM write at N=3, about 10% of
 * node CPU, for hints that nearly all died within a round trip. As in
 * Cassandra, a hint is now written only for a replica that has not
 * acknowledged the write when its operation ends: every replica asked
 * answered (so only the unasked, down ones, and any that refused), or the
 * request timed out. A natural replica a fallback acknowledged for needs
 * none here: the fallback keeps it.
 *
 * What changes: a write acknowledged at W < N whose coordinator crashes
 * (or is stopped) before the slow replica answered and before its request
 * timeout leaves no hint for that replica; the W replicas that acknowledged
 * hold it durably, and anti-entropy brings it to the slow one within an
 * exchange interval (ARCHITECTURE.md, hinted handoff). An acknowledged
 * write is still never lost: it was durable on W replicas before the
 * client heard of it, as before.
 * ------------------------------------------------------------------------ */

int repl__write_hint_missing(struct repl *r, struct repl_op *op,
                             const struct repl_effects *fx) {
  assert(op->kind == REPL_OP_WRITE);
  struct repl_op_write *w = &op->u.write;
  struct repl_coord *c = &w->c;
  struct store_batch *b = NULL;
  int rc = CHORUS_OK;
  for (uint8_t i = 0; i < c->ntargets && rc == CHORUS_OK; i++) {
    const struct repl_target *t = &c->t[i];
    if (t->id == r->cfg.self || t->acked || t->stands_in != 0)
      continue;
    bool covered = false; /* a fallback took it for this replica */
    for (uint8_t j = 0; j < c->ntargets; j++)
      covered |= c->t[j].stands_in == t->id && c->t[j].acked;
    if (covered)
      continue;
    if (b == NULL && (b = store_batch_new()) == NULL)
      return CHORUS_ENOMEM;
    bool dropped;
    rc = repl__hints_arm(&r->hints, r->store, b, t->id, c->token, c->key,
                         c->klen, w->hint_seq, w->wall, NULL, 0, &dropped);
    struct repl_peer_state *ps;
    if (rc == CHORUS_OK && !dropped &&
        (ps = repl__peer_get(r, t->id, true)) != NULL) {
      /* A hint armed at the end may come due before the target's quiet
       * window ends (replay_target, repl_replay.c): the window ends now. */
      if (ps->quiet_until > w->wall + r->cfg.timeout_ms)
        ps->quiet_until = 0;
      /* Resolved against an older ring: the target may own the key no
       * more, and the ownership pass over its hints may have run since
       * (HINTS FOLLOW OWNERSHIP): it runs again and moves this one. */
      if (w->epoch != ring_snapshot_version(r->ring))
        ps->owners_checked = false;
    }
    if (rc == CHORUS_OK && dropped) {
      repl__aae_hint_dropped(r, t->id, c->token);
      REPL_TRACE(r, "hint for %016" PRIx64 " dropped: over %" PRIu64 " bytes",
                 t->id, r->cfg.hint_max_bytes);
    }
  }
  if (b == NULL)
    return rc;
  /* Pending deletes ride along, ahead of these hints. */
  if (rc == CHORUS_OK)
    rc = repl__hints_flush(&r->hints, r->store, b);
  chorus_seq seq = 0;
  if (rc == CHORUS_OK && store_batch_count(b) > 0)
    rc = store_write_batch(r->store, b, &seq);
  store_batch_free(b);
  /* Made durable by a barrier of its own (group commit joins it with the
   * others): its answer is for this operation, ended by then, and so
   * ignored. */
  if (rc == CHORUS_OK && seq != 0)
    return fx->sync(fx->ctx, seq, op->id);
  if (rc != CHORUS_OK && rc != CHORUS_ENOMEM) {
    REPL_TRACE(r, "hints not written: %s", chorus_errname(rc));
    repl__resync_hints(r); /* the index counted what the table lacks */
    if (rc == CHORUS_ESYNCFAILED)
      r->failed = true;
    return CHORUS_OK;
  }
  return rc;
}

int repl__write_reply(struct repl *r, struct repl_op *op,
                      const struct repl_effects *fx) {
  assert(op->kind == REPL_OP_WRITE && op->state == REPL_OP_REPLIED);
  r->stats.writes_ok++;
  const struct repl_op_write *w = &op->u.write;
  struct wire_msg m = {.type = WIRE_WRITE_REPLY2};
  m.write_reply.context = (struct wire_bytes){w->ctx, w->clen};
  m.write_reply.flags = w->flags;
  m.write_reply.siblings = w->siblings;
  m.write_reply.bytes = w->olen;
  if (w->flags)
    REPL_TRACE(r,
               "write of a %zu-byte object with %" PRIu32
               " siblings: warned (flags %#x)",
               w->olen, w->siblings, (unsigned)w->flags);
  return fx->reply(fx->ctx, &w->c.origin, &m, false);
}

bool repl__write_all_acked(const struct repl_op *op) {
  assert(op->kind == REPL_OP_WRITE);
  const struct repl_coord *c = &op->u.write.c;
  for (uint8_t i = 0; i < c->ntargets; i++)
    if (c->t[i].sent && !c->t[i].acked && c->t[i].refusal == 0)
      return false;
  return true;
}

const struct repl_target *repl__write_short(const struct repl_op *op) {
  assert(op->kind == REPL_OP_WRITE);
  const struct repl_coord *c = &op->u.write.c;
  const struct repl_target *refused = NULL;
  for (uint8_t i = 0; i < c->ntargets; i++)
    if (c->t[i].refusal != 0 && refused == NULL)
      refused = &c->t[i];
  if (refused == NULL || !repl__write_all_acked(op) ||
      repl__tally_met(&c->tally, &c->need))
    return NULL;
  return refused;
}
