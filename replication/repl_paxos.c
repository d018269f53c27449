/* repl_paxos.c: compare-and-set on a node (issue 23): the acceptor side of
 * per-key Paxos (PAXOS_PREPARE, PAXOS_PROPOSE, PAXOS_COMMIT, each change
 * durable before it is answered) and the coordinator's CAS operation,
 * which drives one paxos_op (paxos.h) over the key's natural replicas.
 *
 * HOW IT WORKS
 *
 * Where the state lives. A CAS key's acceptor state is the key's object in
 * STORE_DATA, of type CRDT_PAXOS (crdt.h: opaque bytes, paxos.h's stored
 * form), joined by repl__obj_join with paxos_acceptor_join. So streaming,
 * anti-entropy and cleanup carry it as they carry any object, and the type
 * rule of every other object holds: a kv request on a CAS key, or a CAS on
 * a key of another type, is CHORUS_ETYPE.
 *
 * The acceptor. A PREPARE or PROPOSE loads the state, applies the rule
 * (paxos_prepare, paxos_propose), writes the state back (a join: the new
 * state is above the old in every slot) and asks for a sync barrier; the
 * answer (PAXOS_PROMISE with the whole state after the call, or
 * PAXOS_ACCEPT) leaves once the barrier ends (REPL_OP_PXANSWER): a promise
 * or an acceptance a crash could take back would break Paxos. A COMMIT is
 * applied and not answered; losing it in a crash loses nothing, as the
 * acceptance it would have cleared is durable and a later round finishes
 * it. Only a natural replica of the key in this node's ring (not
 * restoring) answers; others answer ESTALE and count toward nothing.
 *
 * The coordinator (REPL_OP_CAS, SENT until done). It asks every natural
 * replica (itself through the same acceptor path, its answer delivered
 * when its barrier ends, never from inside the step); a quorum is a
 * majority of them. Each round: a ballot (this node's HLC, received past
 * the highest ballot seen, and its node id), PREPARE to all, then what the
 * paxos_op asks. A round that gets no quorum within round_ms, or that is
 * refused, starts again after a randomized backoff (two proposers that
 * keep pre-empting each other is Paxos's livelock), at most
 * REPL_CAS_MAX_ROUNDS rounds and within the request's timeout; then the
 * operation gives up: ETIMEDOUT "may or may not have been applied" when
 * one of its proposals may lie with an acceptor, else EUNAVAILABLE.
 *
 * Topology changes. While the key's range has pending replicas (a change
 * streams it), CAS is refused with CHORUS_EBUSY: the acceptor set must not
 * change under a round, and the new owners learn the state by streaming,
 * which carries it whole (the join). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_prng.h"
#include "paxos.h"
#include "repl_int.h"

_Static_assert((int)WIRE_CAS_READ == (int)PAXOS_READ &&
                   (int)WIRE_CAS_SET == (int)PAXOS_SET &&
                   (int)WIRE_CAS_IF_ABSENT == (int)PAXOS_IF_ABSENT &&
                   (int)WIRE_CAS_IF_VALUE == (int)PAXOS_IF_VALUE &&
                   (int)WIRE_CAS_DELETE_IF_VALUE ==
                       (int)PAXOS_DELETE_IF_VALUE &&
                   (int)WIRE_CAS_IF_MATCH == (int)PAXOS_IF_MATCH &&
                   (int)WIRE_CAS_DELETE_IF_MATCH ==
                       (int)PAXOS_DELETE_IF_MATCH &&
                   WIRE_CAS_CONTEXT_LEN == PAXOS_CONTEXT_LEN,
               "the wire's conditions are paxos.h's");
_Static_assert(REPL_CAS_MAX_ROUNDS < PAXOS_MAX_OWN,
               "a CAS gives up before its paxos_op forgets a proposal");

/* ------------------------------------------------------------------------
 * The acceptor
 * ------------------------------------------------------------------------ */

/* Where an answer goes: a peer, or this node's own CAS operation (found
 * by the request id; delivered from a barrier's event, never from inside
 * the operation's own step). */
static int deliver(struct repl *r, const struct repl_effects *fx,
                   chorus_node_id to, const struct wire_msg *m) {
  if (to != r->cfg.self)
    return fx->send(fx->ctx, to, m);
  struct repl_op *op = repl__op_find(r, m->request_id);
  if (op == NULL || op->kind != REPL_OP_CAS)
    return CHORUS_OK;
  const struct repl_op_event ev = {
      .kind = REPL_EV_ANSWER, .from = to, .m = m, .wall = r->wall};
  return repl__op_step(r, op, &ev, fx);
}

/* An answer waits for the barrier on everything written so far. */
static int answer_when_durable(struct repl *r, const struct repl_effects *fx,
                               chorus_node_id to, const struct wire_msg *m,
                               uint8_t *state, size_t slen) {
  struct repl_op *op = repl__op_new(r, REPL_OP_PXANSWER);
  if (op == NULL) {
    chorus_free(state);
    return CHORUS_ENOMEM;
  }
  struct repl_op_pxanswer *a = &op->u.pxanswer;
  a->peer = to;
  a->m = *m;
  a->state = state;
  if (m->type == WIRE_PAXOS_PROMISE)
    a->m.paxos_promise.state = (struct wire_bytes){state, slen};
  if (m->type == WIRE_ERROR) {
    size_t n =
        m->error.text.len < sizeof a->text ? m->error.text.len : sizeof a->text;
    memcpy(a->text, m->error.text.ptr, n);
    a->m.error.text = (struct wire_bytes){(const uint8_t *)a->text, n};
  }
  return fx->sync(fx->ctx, store_last_seq(r->store), op->id);
}

int repl__pxanswer_step(struct repl *r, struct repl_op *op, int status,
                        const struct repl_effects *fx) {
  struct repl_op_pxanswer *a = &op->u.pxanswer;
  struct wire_msg m = a->m;
  chorus_node_id to = a->peer;
  /* The op ends first: delivering may step this node's own CAS, which
   * may end and start operations. @m borrows a->state (kept until then)
   * and a->text (copied). */
  uint8_t *state = a->state;
  a->state = NULL;
  char text[sizeof a->text];
  if (m.type == WIRE_ERROR) {
    memcpy(text, a->text, m.error.text.len);
    m.error.text.ptr = (const uint8_t *)text;
  }
  repl__op_end(r, op);
  int rc = status == CHORUS_OK ? deliver(r, fx, to, &m) : CHORUS_OK;
  chorus_free(state);
  return rc;
}

static int refuse(struct repl *r, const struct repl_effects *fx,
                  chorus_node_id from, uint64_t req, int code,
                  const char *text) {
  struct wire_msg e;
  wire_error_reply(&e, req, code, text);
  REPL_TRACE(r, "paxos message of %016" PRIx64 " refused: %s", from, text);
  return answer_when_durable(r, fx, from, &e, NULL, 0);
}

/* The key's acceptor state (a fresh one when it has none). *@refusal: why
 * it cannot be used (ETYPE: the key holds another type), 0 when it can. */
static int load_state(struct repl *r, chorus_token token, const void *key,
                      size_t klen, struct paxos_acceptor *a, int *refusal) {
  void *buf;
  size_t len;
  *refusal = 0;
  int rc = repl__load_bytes(r, token, key, klen, &buf, &len);
  if (rc != CHORUS_OK)
    return rc;
  struct crdt_obj o;
  rc = repl__decode_obj(buf, len, CRDT_PAXOS, &o, r->err);
  chorus_free(buf);
  if (rc == CHORUS_ETYPE || rc == CHORUS_EMALFORMED) {
    *refusal = rc == CHORUS_ETYPE ? CHORUS_ETYPE : CHORUS_ECORRUPT;
    return CHORUS_OK;
  }
  if (rc != CHORUS_OK)
    return rc;
  rc = repl__paxos_get(&o, a, r->err);
  crdt_obj_free(&o);
  if (rc == CHORUS_EMALFORMED) {
    *refusal = CHORUS_ECORRUPT;
    return CHORUS_OK;
  }
  return rc;
}

static int save_state(struct repl *r, chorus_token token, const void *key,
                      size_t klen, const struct paxos_acceptor *a) {
  struct crdt_obj o;
  crdt_obj_init(&o, CRDT_PAXOS);
  uint8_t *bytes = NULL;
  size_t blen = 0;
  int rc = repl__paxos_set(&o, a);
  if (rc == CHORUS_OK)
    rc = repl__encode_obj(&o, &bytes, &blen);
  crdt_obj_free(&o);
  if (rc == CHORUS_OK)
    rc = repl__join_into_store(r, token, key, klen, bytes, blen);
  chorus_free(bytes);
  return rc;
}

static bool natural_replica(struct repl *r, const struct wire_bytes *key,
                            chorus_token token) {
  struct ring_plist pl;
  if (r->restoring || r->ring == NULL ||
      ring_lookup(ring_snapshot_for_key(r->ring, key->ptr, key->len), token, 0,
                  &pl) != CHORUS_OK)
    return false;
  for (uint8_t i = 0; i < pl.n_natural; i++)
    if (pl.r[i].id == r->cfg.self)
      return true;
  return false;
}

int repl__on_paxos(struct repl *r, chorus_node_id from,
                   const struct wire_msg *m, const struct repl_effects *fx) {
  const struct wire_paxos *p = &m->paxos;
  if (r->failed || !repl__serving(r))
    return CHORUS_OK; /* no answer: the proposer counts it as down */
  if (p->key.len > WIRE_MAX_KEY)
    return refuse(r, fx, from, m->request_id, CHORUS_EMALFORMED,
                  "paxos message: key over the key limit");
  if (p->token != ring_token_of(p->key.ptr, p->key.len))
    return refuse(r, fx, from, m->request_id, CHORUS_EMALFORMED,
                  "paxos message: token is not the key's");
  if (m->type != WIRE_PAXOS_PREPARE && p->present &&
      p->value.len > PAXOS_MAX_VALUE)
    return refuse(r, fx, from, m->request_id, CHORUS_ETOOBIG,
                  "paxos message: value over the limit");
  if (!natural_replica(r, &p->key, p->token))
    return refuse(r, fx, from, m->request_id, CHORUS_ESTALE,
                  "not a replica of the key (rings differ, or restoring)");
  int rc = store_write_allowed(r->store);
  if (rc != CHORUS_OK)
    return refuse(r, fx, from, m->request_id, rc, store_errmsg(r->store));
  struct paxos_acceptor a;
  int refusal;
  rc = load_state(r, p->token, p->key.ptr, p->key.len, &a, &refusal);
  if (rc == CHORUS_ENOMEM || rc == CHORUS_ESYNCFAILED)
    return rc;
  if (rc != CHORUS_OK) /* a read the store failed (EIO): this node's loss,
                        * not the event's; the round goes on without it */
    return refuse(r, fx, from, m->request_id, rc, store_errmsg(r->store));
  if (refusal != 0)
    return refuse(r, fx, from, m->request_id, refusal,
                  refusal == CHORUS_ETYPE
                      ? "the key holds another type than a CAS key's"
                      : "the key's CAS state does not decode");
  const struct paxos_ballot b = {p->ballot_time, p->ballot_node};
  const struct paxos_value v = {p->present != 0, p->value.ptr, p->value.len};
  struct wire_msg ans = {.request_id = m->request_id};
  uint8_t *state = NULL;
  size_t slen = 0;
  bool changed = false;
  switch (m->type) {
  case WIRE_PAXOS_PREPARE: {
    struct paxos_promise pr;
    struct paxos_ballot before = a.promised;
    paxos_prepare(&a, b, &pr);
    changed = paxos_ballot_cmp(before, a.promised) != 0;
    ans.type = WIRE_PAXOS_PROMISE;
    ans.paxos_promise.round_time = b.time;
    ans.paxos_promise.round_node = b.node;
    ans.paxos_promise.ok = pr.ok;
    size_t n = paxos_acceptor_encoded_size(&a);
    state = chorus_malloc(n);
    rc = state ? paxos_acceptor_encode(&a, state, n, &slen) : CHORUS_ENOMEM;
    break;
  }
  case WIRE_PAXOS_PROPOSE: {
    bool accepted = false;
    struct paxos_ballot promised;
    rc = paxos_propose(&a, b, v, &accepted, &promised);
    changed = accepted;
    ans.type = WIRE_PAXOS_ACCEPT;
    ans.paxos_accept.round_time = b.time;
    ans.paxos_accept.round_node = b.node;
    ans.paxos_accept.accepted = accepted;
    ans.paxos_accept.promised_time = promised.time;
    ans.paxos_accept.promised_node = promised.node;
    break;
  }
  default: /* WIRE_PAXOS_COMMIT */
    rc = paxos_commit(&a, b, v);
    changed = true; /* the join below writes nothing when it was known */
    break;
  }
  if (rc == CHORUS_OK && changed)
    rc = save_state(r, p->token, p->key.ptr, p->key.len, &a);
  paxos_acceptor_free(&a);
  if (rc != CHORUS_OK) {
    chorus_free(state);
    if (rc == CHORUS_ENOMEM)
      return rc;
    /* The store refused the write: no answer, nothing promised. */
    REPL_TRACE(r, "paxos state of a key not written: %s", chorus_errname(rc));
    return CHORUS_OK;
  }
  if (m->type == WIRE_PAXOS_COMMIT)
    return CHORUS_OK;
  return answer_when_durable(r, fx, from, &ans, state, slen);
}

/* ------------------------------------------------------------------------
 * The coordinator
 * ------------------------------------------------------------------------ */

/* The coordinator's clock for leases: its HLC's physical part (ms). */
static uint64_t lease_now(struct repl *r) {
  hlc_time t;
  if (hlc_now(&r->hlc, r->wall, &t) != CHORUS_OK)
    return r->wall;
  return hlc_physical(t);
}

static chorus_ms round_ms(chorus_ms timeout) {
  chorus_ms t = timeout / 4;
  return t < 50 ? 50 : t > 1000 ? 1000 : t;
}

static int broadcast(struct repl *r, struct repl_op *op,
                     const struct paxos_msg *pm,
                     const struct repl_effects *fx) {
  struct repl_op_cas *c = &op->u.cas;
  struct wire_msg m = {.request_id = op->id};
  m.type = pm->type == PAXOS_MSG_PREPARE   ? WIRE_PAXOS_PREPARE
           : pm->type == PAXOS_MSG_PROPOSE ? WIRE_PAXOS_PROPOSE
                                           : WIRE_PAXOS_COMMIT;
  m.paxos.token = c->token;
  m.paxos.key = (struct wire_bytes){c->key, c->klen};
  m.paxos.ballot_time = pm->ballot.time;
  m.paxos.ballot_node = pm->ballot.node;
  if (pm->type != PAXOS_MSG_PREPARE) {
    m.paxos.present = pm->value.present;
    m.paxos.value = (struct wire_bytes){pm->value.bytes, pm->value.len};
  }
  int rc = CHORUS_OK;
  for (uint8_t i = 0; i < c->px.nreplicas && rc == CHORUS_OK; i++) {
    chorus_node_id to = c->px.replicas[i];
    if (to == r->cfg.self)
      rc = repl__on_paxos(r, to, &m, fx);
    else if (repl__peer_alive(r, to))
      rc = fx->send(fx->ctx, to, &m);
  }
  return rc;
}

/* A ballot above every one seen: this node's HLC received past the
 * highest (so that no later ballot of this node repeats it), node id as
 * the tiebreak. Errors: CHORUS_ECLOCK (the highest is further ahead of
 * this node's clock than the drift bound allows). */
static int next_ballot(struct repl *r, struct repl_op_cas *c,
                       struct paxos_ballot *b) {
  hlc_time t;
  int rc = c->px.highest.time != 0
               ? hlc_recv(&r->hlc, r->wall, c->px.highest.time, &t)
               : hlc_now(&r->hlc, r->wall, &t);
  if (rc != CHORUS_OK)
    return CHORUS_ECLOCK;
  *b = (struct paxos_ballot){t, r->cfg.self};
  if (paxos_ballot_cmp(*b, c->px.highest) <= 0 &&
      (rc = hlc_now(&r->hlc, r->wall, &t)) == CHORUS_OK)
    *b = (struct paxos_ballot){t, r->cfg.self};
  return rc == CHORUS_OK && paxos_ballot_cmp(*b, c->px.highest) > 0
             ? CHORUS_OK
             : CHORUS_ECLOCK;
}

_Static_assert((int)WIRE_LOCK_HELD == (int)PAXOS_REFUSED_HELD &&
                   (int)WIRE_LOCK_BAD_TOKEN == (int)PAXOS_REFUSED_TOKEN &&
                   (int)WIRE_LOCK_EXPIRED == (int)PAXOS_REFUSED_EXPIRED &&
                   (int)WIRE_LOCK_FENCED == (int)PAXOS_REFUSED_FENCED &&
                   (int)WIRE_LOCK_CORRUPT == (int)PAXOS_REFUSED_CORRUPT,
               "the wire's lock refusals are paxos.h's");

/* reply_lock: LOCK_REPLY of a lock operation (the record chosen when
 * applied, else the one found) or of a fenced write. */
static int reply_lock(struct repl *r, struct repl_op *op,
                      const struct repl_origin *origin,
                      const struct repl_effects *fx) {
  struct repl_op_cas *c = &op->u.cas;
  struct wire_msg m = {.type = WIRE_LOCK_REPLY};
  struct wire_lock_reply *a = &m.lock_reply;
  a->applied = c->px.outcome == PAXOS_APPLIED;
  a->refusal = a->applied ? WIRE_LOCK_OK : c->px.refusal;
  if (c->px.cond == PAXOS_FENCED_SET) {
    struct paxos_value v;
    bool fenced;
    if (paxos_fenced_value(c->px.found, &v, &fenced) != CHORUS_OK)
      v = (struct paxos_value){0};
    a->token = c->px.fence_seen;
    a->present = v.present;
    a->value = (struct wire_bytes){v.bytes, v.len};
  } else {
    struct paxos_lock l;
    if (paxos_lock_decode(a->applied ? c->px.commit.value : c->px.found, &l) !=
        CHORUS_OK)
      return repl__reply_error(r, fx, origin, WIRE_LOCK, CHORUS_ECORRUPT,
                               "the lock's record does not decode");
    uint64_t now = lease_now(r);
    a->held = l.held;
    a->token = l.token;
    a->holder = (struct wire_bytes){l.holder, l.holder_len};
    a->expires = l.expires;
    a->left_ms = l.held && l.expires > now ? l.expires - now : 0;
  }
  REPL_TRACE(r,
             "lock op=%" PRIu64 ": %s (refusal %u) token %" PRIu64
             " after %" PRIu32 " rounds",
             op->id, a->applied ? "applied" : "not applied", a->refusal,
             a->token, c->px.rounds);
  return fx->reply(fx->ctx, origin, &m, false);
}

static int reply_done(struct repl *r, struct repl_op *op,
                      const struct repl_effects *fx) {
  struct repl_op_cas *c = &op->u.cas;
  struct repl_origin origin = c->origin;
  int rc;
  if (c->px.outcome == PAXOS_UNKNOWN) {
    rc = repl__reply_error(r, fx, &origin, c->mtype, CHORUS_ETIMEDOUT,
                           "compare-and-set gave up after %" PRIu32
                           " rounds; it may or may not have been applied",
                           c->px.rounds);
  } else if (c->gave_up && c->clock_behind) {
    /* A ballot must be above every one seen, and this node's HLC may not
     * jump further ahead of its clock than the drift bound: the key's
     * last ballot came from a clock that far ahead of this one. Nothing
     * was proposed: EUNAVAILABLE (ECLOCK would read "may be applied"). */
    rc = repl__reply_error(r, fx, &origin, c->mtype, CHORUS_EUNAVAILABLE,
                           "this node's clock is behind the key's last "
                           "ballot by more than the drift bound; "
                           "compare-and-set was not applied (another "
                           "node may serve it, or retry once the clocks "
                           "agree)");
  } else if (c->gave_up) {
    rc = repl__reply_error(r, fx, &origin, c->mtype, CHORUS_EUNAVAILABLE,
                           "compare-and-set found no quorum of replicas in "
                           "%" PRIu32 " rounds; it was not applied",
                           c->px.rounds);
  } else if (c->px.refusal == PAXOS_REFUSED_NOT_FENCED) {
    rc = repl__reply_error(r, fx, &origin, c->mtype, CHORUS_ETYPE,
                           "the key is fenced (written with a fencing token): "
                           "only a fenced write changes it; nothing was "
                           "applied");
  } else if (c->px.refusal == PAXOS_REFUSED_CORRUPT) {
    rc = repl__reply_error(r, fx, &origin, c->mtype, CHORUS_ECORRUPT,
                           "the key's lock or fenced record does not decode, "
                           "or more than %u locks fence it; nothing was "
                           "applied",
                           PAXOS_FENCE_MAX);
  } else if (c->mtype == WIRE_LOCK) {
    rc = reply_lock(r, op, &origin, fx);
  } else {
    /* A fenced key's serial read answers its value, not its record. */
    struct paxos_value v;
    bool fenced;
    if (paxos_fenced_value(c->px.found, &v, &fenced) != CHORUS_OK)
      v = c->px.found; /* a damaged record: as it is */
    struct wire_msg m = {.type = WIRE_CAS_REPLY};
    uint8_t ctx[PAXOS_CONTEXT_LEN];
    paxos_context_encode(paxos_op_context(&c->px), ctx);
    m.cas_reply.applied = c->px.outcome == PAXOS_APPLIED;
    m.cas_reply.present = v.present;
    m.cas_reply.value = (struct wire_bytes){v.bytes, v.len};
    m.cas_reply.context = (struct wire_bytes){ctx, sizeof ctx};
    REPL_TRACE(r, "cas op=%" PRIu64 ": %s after %" PRIu32 " rounds", op->id,
               m.cas_reply.applied ? "applied" : "not applied", c->px.rounds);
    rc = fx->reply(fx->ctx, &origin, &m, false);
  }
  repl__op_end(r, op);
  return rc;
}

static int new_round(struct repl *r, struct repl_op *op,
                     const struct repl_effects *fx);

/* After every event: the commit due, then the phase's work. */
static int advance(struct repl *r, struct repl_op *op,
                   const struct repl_effects *fx) {
  struct repl_op_cas *c = &op->u.cas;
  struct paxos_msg pm;
  int rc = CHORUS_OK;
  if (paxos_op_commit_due(&c->px, &pm))
    rc = broadcast(r, op, &pm, fx);
  if (rc != CHORUS_OK)
    return rc;
  switch (c->px.phase) {
  case PAXOS_DONE:
    return reply_done(r, op, fx);
  case PAXOS_RESTART: {
    if (c->px.rounds >= REPL_CAS_MAX_ROUNDS || r->now >= c->deadline) {
      paxos_op_give_up(&c->px);
      c->gave_up = true;
      return reply_done(r, op, fx);
    }
    /* Randomized, growing backoff before the next round. */
    uint32_t shift = c->px.rounds < 6 ? c->px.rounds : 6;
    chorus_ms wait = chorus_prng_range(&r->cas_prng, 1, 4u << shift);
    c->backing_off = true;
    c->due = r->now + wait;
    return repl__op_arm(fx, op, wait);
  }
  default:
    if (paxos_op_outbox(&c->px, &pm)) {
      chorus_ms t = round_ms(c->timeout);
      c->due = r->now + t;
      rc = broadcast(r, op, &pm, fx);
      if (rc == CHORUS_OK)
        rc = repl__op_arm(fx, op, t);
    }
    return rc;
  }
}

static int new_round(struct repl *r, struct repl_op *op,
                     const struct repl_effects *fx) {
  struct repl_op_cas *c = &op->u.cas;
  struct paxos_ballot b;
  c->backing_off = false;
  int rc = next_ballot(r, c, &b);
  if (rc != CHORUS_OK || paxos_op_restart(&c->px, b) != CHORUS_OK) {
    paxos_op_give_up(&c->px);
    c->gave_up = true;
    c->clock_behind = rc == CHORUS_ECLOCK;
    return reply_done(r, op, fx);
  }
  return advance(r, op, fx);
}

int repl__cas_step(struct repl *r, struct repl_op *op,
                   const struct repl_op_event *ev,
                   const struct repl_effects *fx) {
  struct repl_op_cas *c = &op->u.cas;
  int rc = CHORUS_OK;
  switch (ev->kind) {
  case REPL_EV_TIMEOUT:
    if (r->now < c->due)
      return CHORUS_OK; /* an earlier round's timer */
    if (c->backing_off && r->now < c->deadline)
      return new_round(r, op, fx);
    if (r->now >= c->deadline || c->px.rounds >= REPL_CAS_MAX_ROUNDS) {
      paxos_op_give_up(&c->px);
      c->gave_up = true;
      return reply_done(r, op, fx);
    }
    return new_round(r, op, fx); /* no quorum in time */
  case REPL_EV_ANSWER: {
    const struct wire_msg *m = ev->m;
    if (c->backing_off)
      return CHORUS_OK;
    if (m->type == WIRE_PAXOS_PROMISE) {
      const struct wire_paxos_promise *p = &m->paxos_promise;
      struct paxos_acceptor a;
      rc = paxos_acceptor_decode(&a, p->state.ptr, p->state.len, r->err);
      if (rc == CHORUS_ENOMEM)
        return rc;
      if (rc != CHORUS_OK) {
        REPL_TRACE(r, "promise of %016" PRIx64 " ignored: %s", ev->from,
                   r->err);
        return CHORUS_OK;
      }
      const struct paxos_promise pr = {.ok = p->ok != 0,
                                       .promised = a.promised,
                                       .accepted_at = a.accepted_at,
                                       .accepted = a.accepted,
                                       .committed_at = a.committed_at,
                                       .committed = a.committed};
      rc = paxos_op_on_promise(
          &c->px, ev->from, (struct paxos_ballot){p->round_time, p->round_node},
          &pr);
      paxos_acceptor_free(&a);
    } else if (m->type == WIRE_PAXOS_ACCEPT) {
      const struct wire_paxos_accept *p = &m->paxos_accept;
      rc = paxos_op_on_accept(
          &c->px, ev->from, (struct paxos_ballot){p->round_time, p->round_node},
          p->accepted != 0,
          (struct paxos_ballot){p->promised_time, p->promised_node});
    } else if (m->type == WIRE_ERROR && m->error.code == CHORUS_ETYPE) {
      struct repl_origin origin = c->origin;
      uint8_t mtype = c->mtype; /* @c ends with the op */
      repl__op_end(r, op);
      return repl__reply_error(r, fx, &origin, mtype, CHORUS_ETYPE,
                               "the key holds a value of another type: CAS "
                               "works on CAS keys only (written by CAS)");
    } else {
      return CHORUS_OK; /* another refusal: that replica counts as down */
    }
    if (rc != CHORUS_OK)
      return rc;
    return advance(r, op, fx);
  }
  default:
    return CHORUS_OK;
  }
}

/* begin: the checks every CAS and LOCK passes, then its operation (SENT,
 * the key copied) in *@out; NULL in *@out when it was answered here. */
/* begin: the checks every CAS and LOCK passes, then its operation; its
 * acceptors in @ids (*@nids of them): the key's natural replicas, or those
 * of group @only_group alone (LOCAL_SERIAL; -1: every group). */
static int begin(struct repl *r, const struct wire_msg *m,
                 const struct repl_origin *origin, const struct ring_plist *pl,
                 int only_group, chorus_ms timeout,
                 const struct wire_bytes *key, const struct repl_effects *fx,
                 struct repl_op **out, chorus_node_id *ids, uint8_t *nids) {
  *out = NULL;
  *nids = 0;
  for (uint8_t i = 0; i < pl->n_natural; i++)
    if (only_group < 0 || pl->r[i].dc == only_group)
      ids[(*nids)++] = pl->r[i].id;
  if (*nids == 0)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                             "the datacenter holds no replica of the key");
  if (pl->n_pending > 0)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EBUSY,
                             "the key's range is moving (a topology change): "
                             "compare-and-set waits until it is done; "
                             "nothing was applied");
  if (*nids > PAXOS_MAX_REPLICAS)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EINVAL,
                             "compare-and-set supports up to %u replicas",
                             PAXOS_MAX_REPLICAS);
  uint8_t live = 0;
  for (uint8_t i = 0; i < *nids; i++)
    live += repl__peer_alive(r, ids[i]);
  if (live < *nids / 2 + 1)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                             "%u of %u %sreplicas live: compare-and-set needs "
                             "a majority",
                             live, *nids, only_group >= 0 ? "local " : "");
  if (!r->cas_prng_ready) {
    chorus_prng_seed(&r->cas_prng, r->cfg.seed ^ r->cfg.self ^ 0x9e3779b9u);
    r->cas_prng_ready = true;
  }
  struct repl_op *op = repl__op_new(r, REPL_OP_CAS);
  if (op == NULL)
    return CHORUS_ENOMEM;
  struct repl_op_cas *c = &op->u.cas;
  c->origin = *origin;
  c->mtype = m->type;
  c->token = pl->token;
  c->timeout = timeout;
  c->deadline = r->now + timeout;
  c->klen = key->len;
  c->key = chorus_malloc(c->klen);
  if (c->key == NULL) {
    repl__op_end(r, op);
    return CHORUS_ENOMEM;
  }
  memcpy(c->key, key->ptr, c->klen);
  *out = op;
  return CHORUS_OK;
}

/* started: the operation's paxos_op initialised with @rc: its first
 * round, or its end. */
static int started(struct repl *r, struct repl_op *op, int rc,
                   const struct wire_msg *m, const struct repl_effects *fx) {
  if (rc != CHORUS_OK) {
    struct repl_origin origin = op->u.cas.origin;
    repl__op_end(r, op);
    if (rc == CHORUS_ENOMEM)
      return rc;
    return repl__reply_error(r, fx, &origin, m->type, rc,
                             "compare-and-set: invalid request");
  }
  op->u.cas.px_live = true;
  return new_round(r, op, fx);
}

int repl__cas_start(struct repl *r, const struct wire_msg *m,
                    const struct repl_origin *origin,
                    const struct ring_plist *pl, int only_group,
                    chorus_ms timeout, const struct repl_effects *fx) {
  const struct wire_cas *q = &m->cas;
  bool match =
      q->cond == WIRE_CAS_IF_MATCH || q->cond == WIRE_CAS_DELETE_IF_MATCH;
  bool has_expected = match || q->cond == WIRE_CAS_IF_VALUE ||
                      q->cond == WIRE_CAS_DELETE_IF_VALUE;
  bool has_update = q->cond == WIRE_CAS_SET || q->cond == WIRE_CAS_IF_ABSENT ||
                    q->cond == WIRE_CAS_IF_VALUE ||
                    q->cond == WIRE_CAS_IF_MATCH;
  if (match && q->expected.len != WIRE_CAS_CONTEXT_LEN)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EINVAL,
                             "an if-match context is %u bytes (as a CAS "
                             "answer gives it), not %zu",
                             WIRE_CAS_CONTEXT_LEN, q->expected.len);
  /* A value that starts like a lock or fenced record would be taken for
   * one (paxos.h, LOCKS AND FENCING). */
  if (has_update && paxos_is_record(q->value.ptr, q->value.len))
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EINVAL,
                             "a CAS value may not start with 0xc1 \"LCK\" or "
                             "0xc1 \"FNC\" (reserved for lock and fenced "
                             "records)");
  struct repl_op *op;
  chorus_node_id ids[RING_PLIST_MAX];
  uint8_t nids;
  int rc = begin(r, m, origin, pl, only_group, timeout, &q->key, fx, &op, ids,
                 &nids);
  if (op == NULL)
    return rc;
  const struct paxos_value exp = {has_expected, q->expected.ptr,
                                  has_expected ? q->expected.len : 0};
  const struct paxos_value upd = {has_update, q->value.ptr,
                                  has_update ? q->value.len : 0};
  rc = paxos_op_init(&op->u.cas.px, q->cond, exp, upd, ids, nids);
  return started(r, op, rc, m, fx);
}

int repl__lock_start(struct repl *r, const struct wire_msg *m,
                     const struct repl_origin *origin,
                     const struct ring_plist *pl, chorus_ms timeout,
                     const struct repl_effects *fx) {
  const struct wire_lock *q = &m->lock;
  static const uint8_t conds[] = {[WIRE_LOCK_STATUS] = PAXOS_READ,
                                  [WIRE_LOCK_ACQUIRE] = PAXOS_LOCK_ACQUIRE,
                                  [WIRE_LOCK_RENEW] = PAXOS_LOCK_RENEW,
                                  [WIRE_LOCK_RELEASE] = PAXOS_LOCK_RELEASE,
                                  [WIRE_LOCK_FENCED_PUT] = PAXOS_FENCED_SET};
  const char *bad = NULL;
  size_t name_len = q->op == WIRE_LOCK_FENCED_PUT
                        ? q->name.len
                        : q->key.len - WIRE_LOCK_PREFIX_LEN;
  if (name_len == 0 || name_len > WIRE_MAX_LOCK_NAME)
    bad = "a lock's name is 1 to 255 bytes";
  else if ((q->op == WIRE_LOCK_ACQUIRE || q->op == WIRE_LOCK_RENEW) &&
           q->ttl_ms == 0)
    bad = "a lease needs a ttl of at least 1 ms";
  else if (q->op == WIRE_LOCK_FENCED_PUT &&
           paxos_is_record(q->value.ptr, q->value.len))
    bad = "a fenced value may not start with 0xc1 \"LCK\" or 0xc1 \"FNC\" "
          "(reserved for lock and fenced records)";
  if (bad != NULL)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EINVAL, "%s", bad);
  struct repl_op *op;
  chorus_node_id ids[RING_PLIST_MAX];
  uint8_t nids;
  int rc = begin(r, m, origin, pl, -1, timeout, &q->key, fx, &op, ids, &nids);
  if (op == NULL)
    return rc;
  struct paxos_op *px = &op->u.cas.px;
  if (q->op == WIRE_LOCK_STATUS) {
    rc = paxos_op_init(px, PAXOS_READ, (struct paxos_value){0},
                       (struct paxos_value){0}, ids, nids);
  } else {
    const struct paxos_lock_args a = {
        .now = lease_now(r),
        .ttl = q->ttl_ms,
        .skew = r->cfg.lock_skew_ms,
        .token = q->token,
        .holder = q->holder.ptr,
        .holder_len = q->holder.len,
        .fence = q->name.ptr,
        .fence_len = q->op == WIRE_LOCK_FENCED_PUT ? q->name.len : 0};
    const struct paxos_value v = {true, q->value.ptr, q->value.len};
    rc = paxos_op_init_lock(px, conds[q->op], &a, v, ids, nids);
  }
  return started(r, op, rc, m, fx);
}
