/* repl_op.c: the operation table, and the one state machine every
 * operation of a node moves through (repl__op_step). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_int.h"

/* ------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------ */

/* The state each kind is born in (the first rows of the table below). */
static enum repl_op_state born_in(enum repl_op_kind kind) {
  switch (kind) {
  case REPL_OP_WRITE:
  case REPL_OP_READ:
    return REPL_OP_START;
  case REPL_OP_FORWARD:
  case REPL_OP_RELAY:
  case REPL_OP_CAS:
    return REPL_OP_SENT;
  case REPL_OP_REPLAY:
    return REPL_OP_HELD;
  default: /* EPOCH, ACK, ANSWER, ROUND: their barrier is asked at once */
    return REPL_OP_SYNCING;
  }
}

struct repl_op *repl__op_new(struct repl *r, enum repl_op_kind kind) {
  assert(kind >= REPL_OP_EPOCH && kind <= REPL_OP_PXANSWER);
  /* The counter has 40 bits (see REPL_OP_COUNTER_BITS). */
  assert(r->next_op + 1 < (1ull << REPL_OP_COUNTER_BITS));
  struct repl_op *op = chorus_calloc(1, sizeof *op);
  if (op == NULL)
    return NULL;
  op->kind = kind;
  op->state = born_in(kind);
  op->id = (r->epoch << REPL_OP_COUNTER_BITS) | (++r->next_op);
  if (kind == REPL_OP_WRITE || kind == REPL_OP_READ)
    repl__coord(op)->born = r->now; /* the request's event */
  struct repl_op **b = &r->ops[op->id % REPL_OP_BUCKETS];
  op->next = *b;
  *b = op;
  return op;
}

struct repl_op *repl__op_find(struct repl *r, uint64_t id) {
  for (struct repl_op *op = r->ops[id % REPL_OP_BUCKETS]; op; op = op->next)
    if (op->id == id)
      return op;
  return NULL;
}

static void coord_free(struct repl_coord *c) {
  for (uint8_t i = 0; i < c->ntargets; i++)
    chorus_free(c->t[i].reply);
  chorus_free(c->key);
  if (c->trace != NULL)
    chorus_free(c->trace->held);
  chorus_free(c->trace);
}

static void op_destroy(struct repl_op *op) {
  switch (op->kind) {
  case REPL_OP_WRITE:
    coord_free(&op->u.write.c);
    chorus_free(op->u.write.obj);
    chorus_free(op->u.write.ctx);
    break;
  case REPL_OP_READ:
    coord_free(&op->u.read.c);
    break;
  case REPL_OP_ANSWER:
    chorus_free(op->u.answer.obj);
    chorus_free(op->u.answer.items);
    break;
  case REPL_OP_REPLAY:
    chorus_free(op->u.replay.key);
    chorus_free(op->u.replay.obj);
    break;
  case REPL_OP_ROUND:
    chorus_free(op->u.round.wait);
    break;
  case REPL_OP_FORWARD:
    chorus_free(op->u.forward.req);
    break;
  case REPL_OP_CAS:
    chorus_free(op->u.cas.key);
    if (op->u.cas.px_live)
      paxos_op_free(&op->u.cas.px);
    break;
  case REPL_OP_PXANSWER:
    chorus_free(op->u.pxanswer.state);
    break;
  default:
    break;
  }
  chorus_free(op);
}

/* The end of every operation: out of the table, freed. Only the state
 * machine below calls it. A write or read ends with its slow-request
 * line, when it was slow (@timed_out: its timer ended it). */
static void op_end_as(struct repl *r, struct repl_op *op, bool timed_out) {
  if (op->kind == REPL_OP_WRITE || op->kind == REPL_OP_READ)
    repl__slow_line(r, op, repl__coord(op), timed_out);
  struct repl_op **p = &r->ops[op->id % REPL_OP_BUCKETS];
  while (*p && *p != op)
    p = &(*p)->next;
  assert(*p == op && "ending an operation that is not in the table");
  if (*p)
    *p = op->next;
  op_destroy(op);
}

static void op_end(struct repl *r, struct repl_op *op) {
  op_end_as(r, op, false);
}

/* coord_end: a write's or read's end: a traced one's TRACE and held
 * reply go out first (TRACING, repl_timeline.c). Errors: effect errors. */
static int coord_end(struct repl *r, struct repl_op *op, bool timed_out,
                     const struct repl_effects *fx) {
  struct repl_coord *c = repl__coord(op);
  int rc = CHORUS_OK;
  /* Stored here: who did not take it gets a hint now. */
  if (op->kind == REPL_OP_WRITE && op->u.write.stored)
    rc = repl__write_hint_missing(r, op, repl__driver_fx(fx));
  if (rc == CHORUS_OK && c->trace != NULL && c->trace->held != NULL) {
    fx = repl__driver_fx(fx);
    rc = repl__trace_send(r, op, c, timed_out, fx);
    if (rc == CHORUS_OK)
      rc = repl__held_send(r, c, fx);
  }
  op_end_as(r, op, timed_out);
  return rc;
}

void repl__op_end(struct repl *r, struct repl_op *op) {
  op_end(r, op);
}

int repl__forwards_lost(struct repl *r, chorus_node_id to, chorus_ms wall,
                        const struct repl_effects *fx) {
  int rc = CHORUS_OK;
  for (uint32_t b = 0; b < REPL_OP_BUCKETS && rc == CHORUS_OK; b++)
    for (struct repl_op *op = r->ops[b], *next; op != NULL && rc == CHORUS_OK;
         op = next) {
      next = op->next; /* routing again adds ops, never ends another */
      if (op->kind != REPL_OP_FORWARD || op->u.forward.to != to)
        continue;
      struct repl_op_forward *f = &op->u.forward;
      struct repl_origin origin = f->origin;
      uint8_t mtype = f->mtype;
      if (!repl__is_write_type(mtype) && f->req != NULL) {
        /* A read: nothing to undo; another replica, or this node. */
        struct repl_op_forward again = *f;
        f->req = NULL; /* now again's */
        op_end(r, op);
        rc = repl__coordinate_again(r, &again, wall, fx);
        chorus_free(again.req);
        continue;
      }
      repl__forward_slow(r, op, "lost with its replica");
      op_end(r, op);
      rc = repl__reply_error(
          r, fx, &origin, mtype,
          repl__is_write_type(mtype) ? CHORUS_ECANCELED : CHORUS_EUNAVAILABLE,
          "%s",
          "the replica the request was forwarded to went down before "
          "answering (a write may or may not have been applied)");
    }
  return rc;
}

void repl__ops_free(struct repl *r) {
  for (uint32_t b = 0; b < REPL_OP_BUCKETS; b++)
    while (r->ops[b]) {
      struct repl_op *op = r->ops[b];
      r->ops[b] = op->next;
      op_destroy(op);
    }
}

struct repl_target *repl__op_target(struct repl_coord *c, chorus_node_id id) {
  assert(c->ntargets <= RING_PLIST_MAX);
  for (uint8_t i = 0; i < c->ntargets; i++)
    if (c->t[i].id == id)
      return &c->t[i];
  return NULL;
}

int repl__op_arm(const struct repl_effects *fx, const struct repl_op *op,
                 chorus_ms after) {
  return fx->timer(fx->ctx, (REPL_TIMER_OP << REPL_TIMER_KIND_SHIFT) | op->id,
                   after);
}

/* ------------------------------------------------------------------------
 * The state machine
 *
 * HOW AN OPERATION MOVES. An operation is born in its kind's first state
 * (repl__op_new), changes state only in repl__op_step below, and ends only
 * there ("done": out of the table, freed). The paths:
 *
 *   WRITE    START -> SYNCING -> SENT -> REPLIED -> done
 *   READ     START -> SENT <-> REPAIRING -> REPLIED -> done
 *   FORWARD  SENT -> done
 *   RELAY    SENT -> done
 *   REPLAY   HELD -> SENT -> done
 *   EPOCH, ACK, ANSWER, ROUND    SYNCING -> done
 *
 * and every transition, with the work done on the way:
 *
 *  kind    in              on                     to          work
 *  ------  --------------  ---------------------  ----------  ------------
 *  WRITE   START           started                SYNCING     (batch
 *                                                             written)
 *          START           failed                 REPLIED *   error reply
 *          SYNCING         barrier failed         done        ESYNCFAILED
 *          SYNCING         barrier                SENT *      count self,
 *                                                             send object
 *          SENT, REPLIED   acknowledgement        same *      count, disarm
 *                          (or a forwarder's
 *                          relay of one)
 *          SENT, REPLIED   a forwarder's ENOTSUP  same        send its
 *                                                             replicas the
 *                                                             object direct
 *          SENT            * w and pw met         REPLIED     OK reply
 *          REPLIED         * every sent acked     done
 *          not REPLIED     timeout                done        ETIMEDOUT
 *          REPLIED         timeout                done
 *  READ    START           started                SENT *      (asked)
 *          START           failed                 REPLIED *   error reply
 *          any             own barrier, answer    same *      count it
 *          any             a replica's ERROR      same *      note the
 *                                                             refusal
 *          any             repair acknowledged    same *
 *          SENT, REPAIRING * r met, no repair     REPLIED     join, answer
 *                            awaited or needed                (ETYPE: error)
 *          SENT, REPAIRING * r met, blocking      REPAIRING   send repairs
 *                            repairs to await
 *          SENT          * all asked answered,  REPLIED     error reply
 *                            some refused, r
 *                            not met
 *          REPLIED         * all asked answered,  done        async repair
 *                            no repair awaited
 *          not REPLIED     timeout                done        ETIMEDOUT
 *          REPLIED         timeout                done        async repair
 *  FORWARD SENT            ERROR ESTALE (not a    done        route it
 *                            replica in its ring)             again (a new
 *                                                             FORWARD, or a
 *                                                             WRITE/READ)
 *          SENT            the replica's answer   done        relay it
 *          SENT            the replica down       done        read: route
 *                            (repl_member)                    it again;
 *                                                             write:
 *                                                             ECANCELED
 *          SENT            timeout                done        ETIMEDOUT
 *  RELAY   SENT            a replica's ack        same        relay it
 *          SENT            every replica's ack    done        relay it
 *          SENT            timeout                done
 *  REPLAY  HELD            release                SENT        HINT_DELIVER
 *          HELD, SENT      HINT_ACK               done        ok: disarm
 *          HELD, SENT      timeout                done
 *  EPOCH   SYNCING         barrier                done        ok: ready;
 *                                                             ENOSPC:
 *                                                             volatile
 *  ACK     SYNCING         barrier                done        the ack
 *  ANSWER  SYNCING         barrier                done        ok: answer
 *  ROUND   SYNCING         barrier                done        ok: release
 *                                                             its replays
 *
 * Rows marked * settle: after an event's work, a write or read is checked
 * against the rows that begin with *, so one event may carry it several
 * rows down (a write to a single replica goes SYNCING -> done on its
 * barrier). Events a kind does not list are ignored: late or duplicated
 * answers (the network does both), or another kind's.
 * ------------------------------------------------------------------------ */

static bool is_ack(const struct wire_msg *m) {
  return m->type == WIRE_REPLICA_ACK || m->type == WIRE_HINT_ACK;
}

static int step_write(struct repl *r, struct repl_op *op,
                      const struct repl_op_event *ev,
                      const struct repl_effects *fx) {
  struct repl_op_write *w = &op->u.write;
  int rc = CHORUS_OK;
  switch (ev->kind) {
  case REPL_EV_STARTED:
    assert(op->state == REPL_OP_START);
    op->state = REPL_OP_SYNCING;
    return CHORUS_OK;
  case REPL_EV_FAILED:
    assert(op->state == REPL_OP_START);
    repl__to_replied(r, op);
    rc = repl__reply_error(r, fx, &w->c.origin, w->c.mtype, ev->status, "%s",
                           ev->text);
    break;
  case REPL_EV_BARRIER:
    assert(op->state == REPL_OP_SYNCING);
    if (ev->status != CHORUS_OK) {
      /* Either way the write may be applied: on a full disk it may survive
       * the store's reopen (a client must read ESYNCFAILED as "may have
       * been applied"; ENOSPC means "not written"). */
      rc = repl__reply_error(
          r, fx, &w->c.origin, w->c.mtype, CHORUS_ESYNCFAILED, "%s",
          ev->status == CHORUS_ENOSPC
              ? "the coordinator's data folder filled before the write was "
                "durable; it may or may not have been applied"
              : "the coordinator's sync failed");
      w->stored = false; /* nothing to hint of a write not made durable */
      int erc = coord_end(r, op, false, fx);
      return rc != CHORUS_OK ? rc : erc;
    }
    op->state = REPL_OP_SENT;
    w->c.sent_at = repl__since(r, &w->c);
    rc = repl__write_send(r, op, fx);
    break;
  case REPL_EV_ANSWER: {
    chorus_node_id who = ev->from;
    int status;
    if (ev->m->type == WIRE_REPLICA_TIMES) {
      repl__trace_times(&w->c, ev->from, &ev->m->replica_times);
      return CHORUS_OK;
    }
    if (ev->m->type == WIRE_ERROR) {
      if (ev->m->error.code != CHORUS_ENOTSUP)
        return CHORUS_OK;
      return repl__write_unforward(r, op, ev->from, fx);
    } else if (ev->m->type == WIRE_REPLICA_RELAY_ACK) {
      /* Believed only from the forwarder the replica was sent through. */
      who = ev->m->replica_relay_ack.replica;
      const struct repl_target *t = repl__op_target(&w->c, who);
      if (t == NULL || t->via != ev->from)
        return CHORUS_OK;
      status = ev->m->replica_relay_ack.status;
    } else if (is_ack(ev->m)) {
      status = ev->m->type == WIRE_REPLICA_ACK ? ev->m->replica_ack.status
                                               : ev->m->hint_ack.status;
    } else {
      return CHORUS_OK;
    }
    bool counted = false;
    repl__answered_at(r, &w->c, who);
    rc = repl__write_ack(r, op, who, status, &counted);
    const struct repl_target *t;
    if (rc == CHORUS_OK && op->state == REPL_OP_SENT &&
        (t = repl__write_short(op)) != NULL) {
      /* Every replica asked has answered and too few took it. */
      repl__to_replied(r, op);
      rc = repl__reply_error(
          r, fx, &w->c.origin, w->c.mtype, t->refusal,
          "%u of %u acknowledgements: replica %016" PRIx64
          " refused (%s): the write's time, from this node's clock, is too "
          "far ahead of that replica's; it may spread once the replicas' "
          "clocks pass it",
          w->c.tally.total, w->c.need.total, t->id, chorus_errname(t->refusal));
      break;
    }
    if (!counted)
      return rc;
    break;
  }
  case REPL_EV_TIMEOUT: {
    if (op->state != REPL_OP_REPLIED)
      rc = repl__reply_error(r, fx, &w->c.origin, w->c.mtype, CHORUS_ETIMEDOUT,
                             "timed out with %u of %u acknowledgements; the "
                             "write may or may not have been applied",
                             w->c.tally.total, w->c.need.total);
    int erc = coord_end(r, op, true, fx);
    return rc != CHORUS_OK ? rc : erc;
  }
  default:
    return CHORUS_OK;
  }
  /* Settle. */
  if (rc == CHORUS_OK && op->state == REPL_OP_SENT &&
      repl__tally_met(&w->c.tally, &w->c.need)) {
    repl__to_replied(r, op);
    rc = repl__write_reply(r, op, fx);
  }
  if (rc == CHORUS_OK && op->state == REPL_OP_REPLIED &&
      repl__write_all_acked(op))
    rc = coord_end(r, op, false, fx);
  return rc;
}

/* repl__read_repair_async, its repairs counted for the slow line. */
static int read_repair_async(struct repl *r, struct repl_op *op,
                             const struct repl_effects *fx) {
  uint64_t repairs = r->stats.read_repairs;
  int rc = repl__read_repair_async(r, op, fx);
  op->u.read.c.repairs += (uint16_t)(r->stats.read_repairs - repairs);
  return rc;
}

static int step_read(struct repl *r, struct repl_op *op,
                     const struct repl_op_event *ev,
                     const struct repl_effects *fx) {
  struct repl_op_read *rd = &op->u.read;
  int rc = CHORUS_OK;
  bool counted = true;
  switch (ev->kind) {
  case REPL_EV_STARTED:
    assert(op->state == REPL_OP_START);
    op->state = REPL_OP_SENT;
    rd->c.sent_at = repl__since(r, &rd->c);
    break;
  case REPL_EV_FAILED:
    assert(op->state == REPL_OP_START);
    repl__to_replied(r, op);
    rc = repl__reply_error(r, fx, &rd->c.origin, rd->c.mtype, ev->status, "%s",
                           ev->text);
    break;
  case REPL_EV_BARRIER:
    /* Our own part is durable (a failed barrier leaves it uncounted). */
    if (ev->status != CHORUS_OK)
      return CHORUS_OK;
    repl__answered_at(r, &rd->c, r->cfg.self);
    counted = repl__read_own(r, op);
    break;
  case REPL_EV_ANSWER:
    if (ev->m->type == WIRE_REPLICA_TIMES) {
      repl__trace_times(&rd->c, ev->from, &ev->m->replica_times);
      return CHORUS_OK;
    }
    if (ev->m->type == WIRE_REPLICA_READ_REPLY || ev->m->type == WIRE_ERROR)
      repl__answered_at(r, &rd->c, ev->from);
    if (ev->m->type == WIRE_REPLICA_READ_REPLY)
      rc = repl__read_answer(op, ev->from, &ev->m->replica_read_reply.object,
                             &counted);
    else if (ev->m->type == WIRE_REPLICA_ACK)
      counted = repl__read_repair_acked(op, ev->from);
    else if (ev->m->type == WIRE_ERROR)
      counted = repl__read_refused(op, ev->from, ev->m->error.code);
    else
      return CHORUS_OK;
    break;
  case REPL_EV_TIMEOUT: {
    if (op->state != REPL_OP_REPLIED)
      rc =
          repl__reply_error(r, fx, &rd->c.origin, rd->c.mtype, CHORUS_ETIMEDOUT,
                            "timed out with %u of %u answers",
                            rd->c.tally.total, rd->c.need.total);
    else
      rc = read_repair_async(r, op, fx);
    int erc = coord_end(r, op, true, fx);
    return rc != CHORUS_OK ? rc : erc;
  }
  default:
    return CHORUS_OK;
  }
  if (rc != CHORUS_OK || !counted)
    return rc;
  /* Settle. */
  if ((op->state == REPL_OP_SENT || op->state == REPL_OP_REPAIRING) &&
      repl__tally_met(&rd->c.tally, &rd->c.need)) {
    bool answered = false;
    uint64_t repairs = r->stats.read_repairs;
    rc = repl__read_reply(r, op, fx, &answered);
    rd->c.repairs += (uint16_t)(r->stats.read_repairs - repairs);
    if (answered)
      repl__to_replied(r, op);
    else if (rc == CHORUS_OK)
      op->state = REPL_OP_REPAIRING;
  } else if (op->state == REPL_OP_SENT && repl__read_short(op)) {
    repl__to_replied(r, op);
    rc = repl__read_reply_short(r, op, fx);
  }
  if (rc == CHORUS_OK && repl__read_finished(op)) {
    rc = read_repair_async(r, op, fx);
    int erc = coord_end(r, op, false, fx);
    if (rc == CHORUS_OK)
      rc = erc;
  }
  return rc;
}

int repl__op_step(struct repl *r, struct repl_op *op,
                  const struct repl_op_event *ev,
                  const struct repl_effects *fx) {
  /* Only writes and reads are set up in steps; nobody else sees START. */
  assert((ev->kind != REPL_EV_STARTED && ev->kind != REPL_EV_FAILED) ||
         op->state == REPL_OP_START);
  assert(op->state != REPL_OP_START || op->kind == REPL_OP_WRITE ||
         op->kind == REPL_OP_READ);
  assert(ev->kind != REPL_EV_ANSWER || ev->m != NULL);
  int rc = CHORUS_OK;
  switch (op->kind) {
  case REPL_OP_WRITE:
  case REPL_OP_READ: {
    struct repl_coord *c = repl__coord(op);
    struct repl_hold h;
    struct repl_effects held;
    if (c->trace != NULL) { /* TRACING (repl_timeline.c): its reply is held */
      repl__hold_effects(&h, fx, c, &held);
      fx = &held;
    }
    return op->kind == REPL_OP_WRITE ? step_write(r, op, ev, fx)
                                     : step_read(r, op, ev, fx);
  }
  case REPL_OP_CAS:
    return repl__cas_step(r, op, ev, fx);
  case REPL_OP_PXANSWER:
    if (ev->kind != REPL_EV_BARRIER)
      return CHORUS_OK;
    return repl__pxanswer_step(r, op, ev->status, fx);
  case REPL_OP_EPOCH:
    if (ev->kind != REPL_EV_BARRIER)
      return CHORUS_OK;
    assert(op->state == REPL_OP_SYNCING);
    if (ev->status == CHORUS_OK)
      rc = repl__epoch_ready(r, fx);
    else if (ev->status == CHORUS_ENOSPC)
      rc = repl__epoch_lost(r, fx);
    op_end(r, op);
    return rc;
  case REPL_OP_ACK: {
    if (ev->kind != REPL_EV_BARRIER)
      return CHORUS_OK;
    assert(op->state == REPL_OP_SYNCING);
    const struct repl_op_ack *a = &op->u.ack;
    if (a->type == WIRE_REPLICA_ACK)
      rc = repl__send_times(r, fx, a->peer, a->peer_req, a->born,
                            ev->status == CHORUS_OK);
    if (rc == CHORUS_OK)
      rc = repl__send_ack(fx, a->peer, a->peer_req, a->type, a->hint_seq,
                          ev->status == CHORUS_OK || ev->status == CHORUS_ENOSPC
                              ? ev->status
                              : CHORUS_ESYNCFAILED);
    op_end(r, op);
    return rc;
  }
  case REPL_OP_ANSWER: {
    if (ev->kind != REPL_EV_BARRIER)
      return CHORUS_OK;
    assert(op->state == REPL_OP_SYNCING);
    const struct repl_op_answer *a = &op->u.answer;
    if (ev->status == CHORUS_OK && a->chunk)
      rc = repl__send_chunk(fx, a->peer, a->peer_req, a->items, a->nitems,
                            a->sum, a->more, a->empty_to);
    else if (ev->status == CHORUS_OK &&
             (rc = repl__send_times(r, fx, a->peer, a->peer_req, a->born,
                                    true)) == CHORUS_OK)
      rc = repl__send_read_answer(r, fx, a->peer, a->peer_req, a->obj, a->olen);
    op_end(r, op);
    return rc;
  }
  case REPL_OP_ROUND: {
    if (ev->kind != REPL_EV_BARRIER)
      return CHORUS_OK;
    assert(op->state == REPL_OP_SYNCING);
    const struct repl_op_round *rd = &op->u.round;
    const struct repl_op_event go = {.kind = REPL_EV_RELEASE};
    for (uint32_t i = 0; i < rd->nwait && rc == CHORUS_OK; i++) {
      /* A replay that timed out meanwhile is gone. */
      struct repl_op *rp = repl__op_find(r, rd->wait[i]);
      assert(rp == NULL || rp->kind == REPL_OP_REPLAY);
      if (rp != NULL && ev->status == CHORUS_OK)
        rc = repl__op_step(r, rp, &go, fx);
    }
    op_end(r, op);
    return rc;
  }
  case REPL_OP_FORWARD: {
    const struct repl_op_forward *f = &op->u.forward;
    struct repl_origin origin = f->origin;
    uint8_t mtype = f->mtype;
    if (ev->kind == REPL_EV_ANSWER) {
      /* Any answer of the replica but the replica-side ones: relay it. */
      const struct wire_msg *m = ev->m;
      if (is_ack(m) || m->type == WIRE_REPLICA_READ_REPLY ||
          m->type == WIRE_REPLICA_TIMES || ev->from != f->to)
        return CHORUS_OK;
      if (m->type == WIRE_TRACE) /* the reply follows: the forward stays */
        return f->traced ? repl__forward_trace(r, op, m, fx) : CHORUS_OK;
      if (m->type == WIRE_ERROR && m->error.code == CHORUS_ESTALE) {
        /* Not a replica of the key in its ring (a change has just
         * finished on one of the two nodes only): nothing was applied
         * there; routed again, to another replica or here. */
        struct repl_op_forward again = *f;
        op->u.forward.req = NULL; /* now again's */
        op_end(r, op);
        rc = repl__coordinate_again(r, &again, ev->wall, fx);
        chorus_free(again.req);
        return rc;
      }
      bool maybe = m->type == WIRE_ERROR && repl__is_write_type(mtype) &&
                   chorus_maybe_applied(m->error.code);
      repl__forward_slow(r, op, "answered");
      op_end(r, op);
      return fx->reply(fx->ctx, &origin, m, maybe);
    }
    if (ev->kind != REPL_EV_TIMEOUT)
      return CHORUS_OK;
    repl__forward_slow(r, op, "timed out");
    op_end(r, op);
    return repl__reply_error(r, fx, &origin, mtype, CHORUS_ETIMEDOUT,
                             "the replica the request was forwarded to did "
                             "not answer in time");
  }
  case REPL_OP_RELAY:
    switch (ev->kind) {
    case REPL_EV_ANSWER: {
      bool done = false;
      rc = repl__relay_answer(r, op, ev->from, ev->m, fx, &done);
      if (done)
        op_end(r, op);
      return rc;
    }
    case REPL_EV_TIMEOUT:
      op_end(r, op);
      return CHORUS_OK;
    default:
      return CHORUS_OK;
    }
  case REPL_OP_REPLAY:
    switch (ev->kind) {
    case REPL_EV_RELEASE:
      assert(op->state == REPL_OP_HELD);
      op->state = REPL_OP_SENT;
      return repl__replay_send(fx, op);
    case REPL_EV_ANSWER: {
      if (ev->m->type != WIRE_HINT_ACK)
        return CHORUS_OK;
      chorus_node_id target = op->u.replay.target;
      bool ok = ev->from == target && ev->m->hint_ack.status == CHORUS_OK;
      repl__replay_ended(r, op);
      rc = repl__replay_acked(r, op, ev->from, ev->m->hint_ack.hint_seq,
                              ev->m->hint_ack.status);
      op_end(r, op);
      /* A batch acknowledged whole: the next one now, not at the next
       * round, so hints drain a batch a round trip rather than a batch a
       * hint_interval (node_wan: a 30 s datacenter outage's 4,572 hints
       * took 33 s at 16 a second). Young hints end the chain: a round
       * that finds none due sends nothing. */
      const struct repl_peer_state *p = repl__peer_get(r, target, false);
      if (rc == CHORUS_OK && ok && p != NULL && p->inflight == 0 && !p->down &&
          repl__serving(r) && !r->failed &&
          repl__hints_count(&r->hints, target) > 0)
        rc = repl__replay(r, target, ev->wall, fx);
      return rc;
    }
    case REPL_EV_TIMEOUT:
      repl__replay_ended(r, op);
      op_end(r, op);
      return CHORUS_OK;
    default:
      return CHORUS_OK;
    }
  }
  assert(!"an operation of no known kind");
  return CHORUS_OK;
}

int repl__op_fail(struct repl *r, struct repl_op *op,
                  const struct repl_effects *fx, int code, const char *fmt,
                  ...) {
  char text[WIRE_MAX_ERROR_TEXT];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  const struct repl_op_event ev = {
      .kind = REPL_EV_FAILED, .status = code, .text = text};
  return repl__op_step(r, op, &ev, fx);
}
