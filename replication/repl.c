/* repl.c: the coordinator and replica state machine (see repl.h); its
 * parts are laid out by role, one banner each, ahead of a split into one
 * file per role. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_search.h"
#include "repl_int.h"

/* ========================================================================
 * One node's replication instance (repl.h): its lifecycle, the event entry
 * points, which only route an event to the role that serves it or to the
 * operation it names, and the peer table.
 * ======================================================================== */

#define META_EPOCH "repl/epoch"

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
 * Peers
 * ------------------------------------------------------------------------ */

struct repl_peer_state *repl__peer_get(struct repl *r, chorus_node_id id,
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

bool repl__peer_alive(struct repl *r, chorus_node_id id) {
  if (id == r->cfg.self)
    return true;
  struct repl_peer_state *p = repl__peer_get(r, id, false);
  return p == NULL || !p->down;
}

/* ------------------------------------------------------------------------
 * Lifecycle
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
  repl__ops_free(r);
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
  if (r->epoch >= (1ull << (REPL_TIMER_KIND_SHIFT - REPL_OP_COUNTER_BITS)))
    return CHORUS_ERANGE;
  unsigned char e[8];
  store_be64_put(e, r->epoch);
  chorus_seq seq;
  if ((rc = store_put(r->store, STORE_META, META_EPOCH, strlen(META_EPOCH), e,
                      8, &seq)) != CHORUS_OK)
    return rc;
  if ((rc = repl__hints_load(&r->hints, r->store)) != CHORUS_OK)
    return rc;
  struct repl_op *op = repl__op_new(r, REPL_OP_EPOCH);
  if (op == NULL)
    return CHORUS_ENOMEM;
  REPL_TRACE(r, "start: epoch %" PRIu64 ", %" PRIu64 " hints kept", r->epoch,
             repl__hints_total(&r->hints, NULL));
  refresh_stats(r);
  return fx->sync(fx->ctx, seq, op->id);
}

int repl__epoch_ready(struct repl *r, const struct repl_effects *fx) {
  unsigned char b[16];
  store_be64_put(b, r->cfg.self);
  store_be64_put(b + 8, r->epoch);
  r->actor = ring_token_of(b, sizeof b);
  if (r->actor == 0)
    r->actor = 1;
  r->ready = true;
  REPL_TRACE(r, "ready: actor %016" PRIx64, r->actor);
  return fx->timer(fx->ctx, REPL_TIMER_HINTS << REPL_TIMER_KIND_SHIFT,
                   r->cfg.hint_interval);
}

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

int repl_client(struct repl *r, const struct wire_msg *m,
                const struct repl_origin *origin, chorus_ms now, chorus_ms wall,
                const struct repl_effects *fx) {
  r->stats.requests++;
  int rc = repl__coordinate(r, m, origin, wall, fx);
  refresh_stats(r);
  return rc;
}

int repl_peer(struct repl *r, chorus_node_id from, const struct wire_msg *m,
              chorus_ms now, chorus_ms wall, const struct repl_effects *fx) {
  int rc = CHORUS_OK;
  struct repl_request q;
  switch (m->type) {
  case WIRE_REPLICA_WRITE:
    rc = repl__on_replica_write(r, from, m, fx);
    break;
  case WIRE_REPLICA_READ:
    rc = repl__on_replica_read(r, from, m, fx);
    break;
  case WIRE_HINT_DELIVER:
    rc = repl__on_hint_deliver(r, from, m, wall, fx);
    break;
  default:
    if (repl__request_of(m, &q)) {
      /* Forwarded to us: answered under the forwarder's request id. */
      struct repl_origin origin = {true, from, m->request_id};
      r->stats.requests++;
      rc = repl__coordinate(r, m, &origin, wall, fx);
    } else {
      /* An answer to one of ours; none when late, or meant for an
       * earlier incarnation. */
      struct repl_op *op = repl__op_find(r, m->request_id);
      const struct repl_op_event ev = {
          .kind = REPL_EV_ANSWER, .from = from, .m = m};
      if (op != NULL)
        rc = repl__op_step(r, op, &ev, fx);
    }
  }
  refresh_stats(r);
  return rc;
}

int repl_timer(struct repl *r, uint64_t id, chorus_ms now, chorus_ms wall,
               const struct repl_effects *fx) {
  uint64_t kind = id >> REPL_TIMER_KIND_SHIFT;
  int rc = CHORUS_OK;
  if (kind == REPL_TIMER_HINTS) {
    if (!r->failed) {
      rc = repl__hints_flush(&r->hints, r->store, NULL);
      if (rc != CHORUS_OK && rc != CHORUS_ENOMEM) {
        REPL_TRACE(r, "hint deletes not written: %s", chorus_errname(rc));
        rc = CHORUS_OK;
      }
    }
    if (rc == CHORUS_OK && r->ready && !r->failed)
      rc = repl__replay(r, 0, wall, fx);
    if (rc == CHORUS_OK)
      rc = fx->timer(fx->ctx, REPL_TIMER_HINTS << REPL_TIMER_KIND_SHIFT,
                     r->cfg.hint_interval);
  } else if (kind == REPL_TIMER_OP) {
    struct repl_op *op =
        repl__op_find(r, id & ((1ull << REPL_TIMER_KIND_SHIFT) - 1));
    if (op == NULL)
      return CHORUS_OK; /* it ended before its timeout */
    const struct repl_op_event ev = {.kind = REPL_EV_TIMEOUT};
    rc = repl__op_step(r, op, &ev, fx);
  }
  refresh_stats(r);
  return rc;
}

int repl_sync_done(struct repl *r, uint64_t token, int status, chorus_ms now,
                   chorus_ms wall, const struct repl_effects *fx) {
  struct repl_op *op = repl__op_find(r, token);
  if (op == NULL)
    return CHORUS_OK;
  if (status != CHORUS_OK) {
    /* fsyncgate: nothing waiting on this barrier is acknowledged, and the
     * node must stop (store.h). */
    r->failed = true;
    REPL_TRACE(r, "sync failed: %s; acknowledgements stop",
               chorus_errname(status));
  }
  const struct repl_op_event ev = {.kind = REPL_EV_BARRIER, .status = status};
  int rc = repl__op_step(r, op, &ev, fx);
  refresh_stats(r);
  return rc;
}

int repl_member(struct repl *r, chorus_node_id node, bool alive, chorus_ms now,
                chorus_ms wall, const struct repl_effects *fx) {
  if (node == r->cfg.self)
    return CHORUS_OK;
  struct repl_peer_state *p = repl__peer_get(r, node, true);
  if (p == NULL)
    return CHORUS_ENOMEM;
  bool was_down = p->down;
  p->down = !alive;
  p->quiet_until = 0;
  if (was_down != p->down)
    REPL_TRACE(r, "%016" PRIx64 " is %s", node, alive ? "alive" : "down");
  int rc = CHORUS_OK;
  if (alive && was_down && r->ready && !r->failed)
    rc = repl__replay(r, node, wall, fx);
  refresh_stats(r);
  return rc;
}

/* ------------------------------------------------------------------------
 * Observation
 * ------------------------------------------------------------------------ */

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

/* ========================================================================
 * The operation table, and the one state machine every operation of a node
 * moves through (repl__op_step).
 * ======================================================================== */

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
    return REPL_OP_SENT;
  case REPL_OP_REPLAY:
    return REPL_OP_HELD;
  default: /* EPOCH, ACK, ANSWER, ROUND: their barrier is asked at once */
    return REPL_OP_SYNCING;
  }
}

struct repl_op *repl__op_new(struct repl *r, enum repl_op_kind kind) {
  struct repl_op *op = chorus_calloc(1, sizeof *op);
  if (op == NULL)
    return NULL;
  op->kind = kind;
  op->state = born_in(kind);
  op->id = (r->epoch << REPL_OP_COUNTER_BITS) | (++r->next_op);
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
    break;
  case REPL_OP_REPLAY:
    chorus_free(op->u.replay.key);
    chorus_free(op->u.replay.obj);
    break;
  case REPL_OP_ROUND:
    chorus_free(op->u.round.wait);
    break;
  default:
    break;
  }
  chorus_free(op);
}

/* The end of every operation: out of the table, freed. Only the state
 * machine below calls it. */
static void op_end(struct repl *r, struct repl_op *op) {
  struct repl_op **p = &r->ops[op->id % REPL_OP_BUCKETS];
  while (*p && *p != op)
    p = &(*p)->next;
  if (*p)
    *p = op->next;
  op_destroy(op);
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
 *          SENT            * w and pw met         REPLIED     OK reply
 *          REPLIED         * every sent acked     done
 *          not REPLIED     timeout                done        ETIMEDOUT
 *          REPLIED         timeout                done
 *  READ    START           started                SENT *      (asked)
 *          START           failed                 REPLIED *   error reply
 *          any             own barrier, answer    same *      count it
 *          any             repair acknowledged    same *
 *          SENT, REPAIRING * r met, no repair     REPLIED     join, answer
 *                            awaited or needed                (ETYPE: error)
 *          SENT, REPAIRING * r met, blocking      REPAIRING   send repairs
 *                            repairs to await
 *          REPLIED         * all asked answered,  done        async repair
 *                            no repair awaited
 *          not REPLIED     timeout                done        ETIMEDOUT
 *          REPLIED         timeout                done        async repair
 *  FORWARD SENT            the replica's answer   done        relay it
 *          SENT            timeout                done        ETIMEDOUT
 *  REPLAY  HELD            release                SENT        HINT_DELIVER
 *          HELD, SENT      HINT_ACK               done        ok: disarm
 *          HELD, SENT      timeout                done
 *  EPOCH   SYNCING         barrier                done        ok: ready
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
    op->state = REPL_OP_SYNCING;
    return CHORUS_OK;
  case REPL_EV_FAILED:
    op->state = REPL_OP_REPLIED;
    rc = repl__reply_error(r, fx, &w->c.origin, w->c.mtype, ev->status, "%s",
                           ev->text);
    break;
  case REPL_EV_BARRIER:
    if (ev->status != CHORUS_OK) {
      rc =
          repl__reply_error(r, fx, &w->c.origin, w->c.mtype, CHORUS_ESYNCFAILED,
                            "the coordinator's sync failed");
      op_end(r, op);
      return rc;
    }
    op->state = REPL_OP_SENT;
    rc = repl__write_send(r, op, fx);
    break;
  case REPL_EV_ANSWER: {
    if (!is_ack(ev->m))
      return CHORUS_OK;
    int status = ev->m->type == WIRE_REPLICA_ACK ? ev->m->replica_ack.status
                                                 : ev->m->hint_ack.status;
    bool counted = false;
    rc = repl__write_ack(r, op, ev->from, status, &counted);
    if (!counted)
      return rc;
    break;
  }
  case REPL_EV_TIMEOUT:
    if (op->state != REPL_OP_REPLIED)
      rc = repl__reply_error(r, fx, &w->c.origin, w->c.mtype, CHORUS_ETIMEDOUT,
                             "timed out with %u of %u acknowledgements; the "
                             "write may or may not have been applied",
                             w->c.tally.total, w->c.need.total);
    op_end(r, op);
    return rc;
  default:
    return CHORUS_OK;
  }
  /* Settle. */
  if (rc == CHORUS_OK && op->state == REPL_OP_SENT &&
      repl__tally_met(&w->c.tally, &w->c.need)) {
    op->state = REPL_OP_REPLIED;
    rc = repl__write_reply(r, op, fx);
  }
  if (rc == CHORUS_OK && op->state == REPL_OP_REPLIED &&
      repl__write_all_acked(op))
    op_end(r, op);
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
    op->state = REPL_OP_SENT;
    break;
  case REPL_EV_FAILED:
    op->state = REPL_OP_REPLIED;
    rc = repl__reply_error(r, fx, &rd->c.origin, rd->c.mtype, ev->status, "%s",
                           ev->text);
    break;
  case REPL_EV_BARRIER:
    /* Our own part is durable (a failed barrier leaves it uncounted). */
    if (ev->status != CHORUS_OK)
      return CHORUS_OK;
    counted = repl__read_own(r, op);
    break;
  case REPL_EV_ANSWER:
    if (ev->m->type == WIRE_REPLICA_READ_REPLY)
      rc = repl__read_answer(op, ev->from, &ev->m->replica_read_reply.object,
                             &counted);
    else if (ev->m->type == WIRE_REPLICA_ACK)
      counted = repl__read_repair_acked(op, ev->from);
    else
      return CHORUS_OK;
    break;
  case REPL_EV_TIMEOUT:
    if (op->state != REPL_OP_REPLIED)
      rc =
          repl__reply_error(r, fx, &rd->c.origin, rd->c.mtype, CHORUS_ETIMEDOUT,
                            "timed out with %u of %u answers",
                            rd->c.tally.total, rd->c.need.total);
    else
      rc = repl__read_repair_async(r, op, fx);
    op_end(r, op);
    return rc;
  default:
    return CHORUS_OK;
  }
  if (rc != CHORUS_OK || !counted)
    return rc;
  /* Settle. */
  if ((op->state == REPL_OP_SENT || op->state == REPL_OP_REPAIRING) &&
      repl__tally_met(&rd->c.tally, &rd->c.need)) {
    bool answered = false;
    rc = repl__read_reply(r, op, fx, &answered);
    if (answered)
      op->state = REPL_OP_REPLIED;
    else if (rc == CHORUS_OK)
      op->state = REPL_OP_REPAIRING;
  }
  if (rc == CHORUS_OK && repl__read_finished(op)) {
    rc = repl__read_repair_async(r, op, fx);
    op_end(r, op);
  }
  return rc;
}

int repl__op_step(struct repl *r, struct repl_op *op,
                  const struct repl_op_event *ev,
                  const struct repl_effects *fx) {
  int rc = CHORUS_OK;
  switch (op->kind) {
  case REPL_OP_WRITE:
    return step_write(r, op, ev, fx);
  case REPL_OP_READ:
    return step_read(r, op, ev, fx);
  case REPL_OP_EPOCH:
    if (ev->kind != REPL_EV_BARRIER)
      return CHORUS_OK;
    if (ev->status == CHORUS_OK)
      rc = repl__epoch_ready(r, fx);
    op_end(r, op);
    return rc;
  case REPL_OP_ACK: {
    if (ev->kind != REPL_EV_BARRIER)
      return CHORUS_OK;
    const struct repl_op_ack *a = &op->u.ack;
    rc = repl__send_ack(fx, a->peer, a->peer_req, a->type, a->hint_seq,
                        ev->status == CHORUS_OK ? CHORUS_OK
                                                : CHORUS_ESYNCFAILED);
    op_end(r, op);
    return rc;
  }
  case REPL_OP_ANSWER: {
    if (ev->kind != REPL_EV_BARRIER)
      return CHORUS_OK;
    const struct repl_op_answer *a = &op->u.answer;
    if (ev->status == CHORUS_OK)
      rc = repl__send_read_answer(fx, a->peer, a->peer_req, a->obj, a->olen);
    op_end(r, op);
    return rc;
  }
  case REPL_OP_ROUND: {
    if (ev->kind != REPL_EV_BARRIER)
      return CHORUS_OK;
    const struct repl_op_round *rd = &op->u.round;
    const struct repl_op_event go = {.kind = REPL_EV_RELEASE};
    for (uint32_t i = 0; i < rd->nwait && rc == CHORUS_OK; i++) {
      /* A replay that timed out meanwhile is gone. */
      struct repl_op *rp = repl__op_find(r, rd->wait[i]);
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
      if (is_ack(m) || m->type == WIRE_REPLICA_READ_REPLY || ev->from != f->to)
        return CHORUS_OK;
      bool maybe = m->type == WIRE_ERROR && repl__is_write_type(mtype) &&
                   chorus_maybe_applied(m->error.code);
      op_end(r, op);
      return fx->reply(fx->ctx, &origin, m, maybe);
    }
    if (ev->kind != REPL_EV_TIMEOUT)
      return CHORUS_OK;
    op_end(r, op);
    return repl__reply_error(r, fx, &origin, mtype, CHORUS_ETIMEDOUT,
                             "the replica the request was forwarded to did "
                             "not answer in time");
  }
  case REPL_OP_REPLAY:
    switch (ev->kind) {
    case REPL_EV_RELEASE:
      op->state = REPL_OP_SENT;
      return repl__replay_send(fx, op);
    case REPL_EV_ANSWER:
      if (ev->m->type != WIRE_HINT_ACK)
        return CHORUS_OK;
      repl__replay_ended(r, op);
      rc = repl__replay_acked(r, op, ev->from, ev->m->hint_ack.hint_seq,
                              ev->m->hint_ack.status);
      op_end(r, op);
      return rc;
    case REPL_EV_TIMEOUT:
      repl__replay_ended(r, op);
      op_end(r, op);
      return CHORUS_OK;
    default:
      return CHORUS_OK;
    }
  }
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

/* ========================================================================
 * A client request's way in: what it asks, whether this node can serve it,
 * which replicas it needs, and forwarding when this node is no replica of
 * the key.
 * ======================================================================== */

/* Extra time a forwarding node waits beyond the request's own timeout, so
 * that the coordinator's ETIMEDOUT (with its count) arrives first. */
#define FORWARD_SLACK_MS 200

/* ------------------------------------------------------------------------
 * Requests and error replies
 * ------------------------------------------------------------------------ */

bool repl__is_write_type(uint8_t t) {
  return t == WIRE_PUT || t == WIRE_DELETE || t == WIRE_COUNTER_ADD ||
         t == WIRE_SET_ADD || t == WIRE_SET_REMOVE;
}

bool repl__request_of(const struct wire_msg *m, struct repl_request *q) {
  switch (m->type) {
  case WIRE_GET:
    *q = (struct repl_request){&m->get.key, &m->get.opts, CRDT_KV, false};
    return true;
  case WIRE_PUT:
    *q = (struct repl_request){&m->put.key, &m->put.opts, CRDT_KV, true};
    return true;
  case WIRE_DELETE:
    *q = (struct repl_request){&m->del.key, &m->del.opts, CRDT_KV, true};
    return true;
  case WIRE_COUNTER_ADD:
    *q = (struct repl_request){&m->counter_add.key, &m->counter_add.opts,
                               CRDT_COUNTER, true};
    return true;
  case WIRE_COUNTER_READ:
    *q = (struct repl_request){&m->counter_read.key, &m->counter_read.opts,
                               CRDT_COUNTER, false};
    return true;
  case WIRE_SET_ADD:
    *q = (struct repl_request){&m->set_add.key, &m->set_add.opts, CRDT_SET,
                               true};
    return true;
  case WIRE_SET_REMOVE:
    *q = (struct repl_request){&m->set_remove.key, &m->set_remove.opts,
                               CRDT_SET, true};
    return true;
  case WIRE_SET_READ:
    *q = (struct repl_request){&m->set_read.key, &m->set_read.opts, CRDT_SET,
                               false};
    return true;
  default:
    return false;
  }
}

int repl__reply_error(struct repl *r, const struct repl_effects *fx,
                      const struct repl_origin *origin, uint8_t mtype, int code,
                      const char *fmt, ...) {
  char text[WIRE_MAX_ERROR_TEXT];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  REPL_TRACE(r, "%s answered %s: %s", wire_type_name(mtype),
             chorus_errname(code), text);
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
                   repl__is_write_type(mtype) && chorus_maybe_applied(code));
}

/* ------------------------------------------------------------------------
 * Forwarding
 * ------------------------------------------------------------------------ */

/* Hands @m to the first live natural replica of @pl; the answer is relayed
 * (the state machine). */
static int forward(struct repl *r, const struct wire_msg *m,
                   const struct ring_plist *pl,
                   const struct repl_origin *origin, chorus_ms timeout,
                   const struct repl_effects *fx) {
  chorus_node_id to = 0;
  for (uint8_t i = 0; i < pl->n_natural && to == 0; i++)
    if (repl__peer_alive(r, pl->r[i].id))
      to = pl->r[i].id;
  if (to == 0)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                             "no live replica of the key to forward to");
  struct repl_op *op = repl__op_new(r, REPL_OP_FORWARD);
  if (op == NULL)
    return CHORUS_ENOMEM;
  op->u.forward = (struct repl_op_forward){m->type, *origin, to};
  struct wire_msg fwd = *m;
  fwd.request_id = op->id;
  r->stats.forwarded++;
  REPL_TRACE(r, "%s forwarded to %016" PRIx64, wire_type_name(m->type), to);
  int rc = fx->send(fx->ctx, to, &fwd);
  if (rc == CHORUS_OK)
    rc = repl__op_arm(fx, op, timeout + FORWARD_SLACK_MS);
  return rc;
}

/* ------------------------------------------------------------------------
 * Coordinating
 * ------------------------------------------------------------------------ */

/* Whether the replicas @pl can meet @need at all, counting the live ones
 * (and live fallbacks standing in for dead naturals when @sloppy). */
static bool can_meet(struct repl *r, const struct ring_plist *pl,
                     const struct repl_need *need, bool sloppy) {
  struct repl_tally t = {0};
  uint32_t dead = 0;
  for (uint8_t i = 0; i < pl->n_natural; i++) {
    if (repl__peer_alive(r, pl->r[i].id))
      repl__tally_add(&t, need, pl->r[i].dc, true);
    else
      dead++;
  }
  if (sloppy) {
    uint8_t first = (uint8_t)(pl->n_natural + pl->n_pending);
    for (uint8_t i = 0; i < pl->n_fallback && dead > 0; i++)
      if (repl__peer_alive(r, pl->r[first + i].id)) {
        repl__tally_add(&t, need, pl->r[first + i].dc, false);
        dead--;
      }
  }
  return repl__tally_met(&t, need);
}

/* The write's or read's common part: whom to answer, the key, the need,
 * and the targets: natural replicas (and pending ones for a write). */
static int coord_init(struct repl_coord *c, const struct wire_msg *m,
                      const struct repl_origin *origin,
                      const struct repl_request *q, const struct ring_plist *pl,
                      const struct repl_need *need) {
  c->mtype = m->type;
  c->origin = *origin;
  c->need = *need;
  c->token = pl->token;
  c->klen = q->key->len;
  c->key = chorus_malloc(c->klen ? c->klen : 1);
  if (c->key == NULL)
    return CHORUS_ENOMEM;
  if (c->klen)
    memcpy(c->key, q->key->ptr, c->klen);
  uint8_t upto =
      q->write ? (uint8_t)(pl->n_natural + pl->n_pending) : pl->n_natural;
  for (uint8_t i = 0; i < upto; i++)
    c->t[c->ntargets++] = (struct repl_target){.id = pl->r[i].id,
                                               .group = pl->r[i].dc,
                                               .natural = i < pl->n_natural,
                                               .pending = i >= pl->n_natural};
  return CHORUS_OK;
}

int repl__coordinate(struct repl *r, const struct wire_msg *m,
                     const struct repl_origin *origin, chorus_ms wall,
                     const struct repl_effects *fx) {
  struct repl_request q;
  if (!repl__request_of(m, &q))
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EINVAL,
                             "%s is not a request a node coordinates",
                             wire_type_name(m->type));
  if (r->failed)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EIO,
                             "this node's store failed; it must restart");
  if (!r->ready)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                             "this node is starting");
  const struct wire_options *o = q.opts;
  chorus_ms timeout = o->timeout_ms ? o->timeout_ms : r->cfg.timeout_ms;
  bool sloppy = o->sloppy || r->cfg.sloppy;

  struct ring_plist pl;
  chorus_token token = ring_token_of(q.key->ptr, q.key->len);
  int rc = ring_lookup(r->ring, token, q.write && sloppy ? r->cfg.fallbacks : 0,
                       &pl);
  if (rc != CHORUS_OK)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                             "the ring has no replica for the key");
  bool replica = false;
  for (uint8_t i = 0; i < pl.n_natural; i++)
    replica |= pl.r[i].id == r->cfg.self;
  if (!replica) {
    if (origin->from_peer)
      return repl__reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                               "forwarded to a node that is not a replica of "
                               "the key (rings differ)");
    return forward(r, m, &pl, origin, timeout, fx);
  }

  int32_t level = q.write ? (o->w ? o->w : r->cfg.w) : (o->r ? o->r : r->cfg.r);
  int32_t plevel = q.write ? o->pw : o->pr;
  struct repl_need need;
  rc = repl__resolve(ring_snapshot_replication(r->ring), level, plevel,
                     r->local_group, q.write ? "w" : "r", &need, r->err);
  if (rc != CHORUS_OK)
    return repl__reply_error(r, fx, origin, m->type, rc, "%s", r->err);
  if (!can_meet(r, &pl, &need, q.write && sloppy))
    return repl__reply_error(
        r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
        "too few live replicas for %s=%s", q.write ? "w" : "r",
        wire_level_name(level) ? wire_level_name(level) : "n");

  struct repl_op *op = repl__op_new(r, q.write ? REPL_OP_WRITE : REPL_OP_READ);
  if (op == NULL ||
      coord_init(repl__coord(op), m, origin, &q, &pl, &need) != CHORUS_OK)
    return CHORUS_ENOMEM;
  if (q.write) {
    op->u.write.sloppy = sloppy;
    op->u.write.pl = pl;
  } else {
    op->u.read.read_repair =
        o->read_repair ? o->read_repair : r->cfg.read_repair;
  }
  rc = repl__op_arm(fx, op, timeout);
  if (rc != CHORUS_OK)
    return rc;
  return q.write ? repl__write_start(r, op, m, &q, wall, fx)
                 : repl__read_start(r, op, &q, fx);
}

/* ========================================================================
 * Coordinated writes: the update applied with this incarnation's actor,
 * written ahead with a hint per replica, sent once durable, and counted
 * (repl.h, THE WRITE PATH).
 * ======================================================================== */

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

int repl__write_start(struct repl *r, struct repl_op *op,
                      const struct wire_msg *m, const struct repl_request *q,
                      chorus_ms wall, const struct repl_effects *fx) {
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
  chorus_free(buf);
  if (rc == CHORUS_ETYPE)
    return repl__op_fail(r, op, fx, rc, "the key holds another type than %s",
                         crdt_type_name(q->type));
  if (rc != CHORUS_OK)
    return repl__op_fail(r, op, fx, CHORUS_ECORRUPT,
                         "the stored object is corrupt: %s", r->err);
  r->err[0] = '\0';
  rc = apply_update(r, m, &obj);
  if (rc == CHORUS_OK)
    rc = repl__encode_obj(&obj, &w->obj, &w->olen);
  if (rc == CHORUS_OK)
    rc = repl__encode_ctx(&obj, &w->ctx, &w->clen);
  crdt_obj_free(&obj);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK)
    return repl__op_fail(r, op, fx, rc, "%s",
                         r->err[0] ? r->err : chorus_strerror(rc));

  /* The object and a hint for every other replica, in one atomic batch. */
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
  chorus_free(dk);
  w->hint_seq = (r->epoch << 32) | (++r->hint_ctr & 0xffffffffu);
  for (uint8_t i = 0; i < w->c.ntargets && rc == CHORUS_OK; i++) {
    if (w->c.t[i].id == r->cfg.self)
      continue;
    bool dropped;
    rc = repl__hints_arm(&r->hints, r->store, b, w->c.t[i].id, pl->token,
                         q->key->ptr, q->key->len, w->hint_seq, wall, NULL, 0,
                         &dropped);
    if (rc == CHORUS_OK && dropped)
      REPL_TRACE(r, "hint for %016" PRIx64 " dropped: over %" PRIu64 " bytes",
                 w->c.t[i].id, r->cfg.hint_max_bytes);
  }
  chorus_seq seq = 0;
  if (rc == CHORUS_OK)
    rc = store_write_batch(r->store, b, &seq);
  store_batch_free(b);
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

int repl__write_send(struct repl *r, struct repl_op *op,
                     const struct repl_effects *fx) {
  struct repl_op_write *w = &op->u.write;
  struct repl_coord *c = &w->c;
  int rc = CHORUS_OK;
  uint8_t next_fallback = (uint8_t)(w->pl.n_natural + w->pl.n_pending);
  uint8_t end_fallback = (uint8_t)(next_fallback + w->pl.n_fallback);
  uint8_t n = c->ntargets;
  for (uint8_t i = 0; i < n && rc == CHORUS_OK; i++) {
    struct repl_target *t = &c->t[i];
    struct wire_msg m;
    if (t->id == r->cfg.self) {
      t->sent = t->acked = true;
      repl__tally_add(&c->tally, &c->need, t->group, true);
      continue;
    }
    if (repl__peer_alive(r, t->id)) {
      repl__msg_replica_write(&m, op->id, c->token, c->key, c->klen, w->obj,
                              w->olen, WIRE_REPLICA_DURABLE);
      t->sent = true;
      rc = fx->send(fx->ctx, t->id, &m);
      continue;
    }
    if (!w->sloppy || !t->natural)
      continue; /* its hint waits for it */
    /* Sloppy quorum: the next live fallback keeps the object for it. */
    while (next_fallback < end_fallback &&
           (!repl__peer_alive(r, w->pl.r[next_fallback].id) ||
            repl__op_target(c, w->pl.r[next_fallback].id) != NULL))
      next_fallback++;
    if (next_fallback == end_fallback || c->ntargets == RING_PLIST_MAX)
      continue;
    const struct ring_replica *f = &w->pl.r[next_fallback++];
    struct repl_target *ft = &c->t[c->ntargets++];
    *ft = (struct repl_target){
        .id = f->id, .group = f->dc, .stands_in = t->id, .sent = true};
    REPL_TRACE(r, "sloppy: %016" PRIx64 " stands in for %016" PRIx64, f->id,
               t->id);
    repl__msg_hint_deliver(&m, op->id, t->id, w->hint_seq, c->token, c->key,
                           c->klen, w->obj, w->olen);
    rc = fx->send(fx->ctx, f->id, &m);
  }
  return rc;
}

int repl__write_ack(struct repl *r, struct repl_op *op, chorus_node_id from,
                    int status, bool *counted) {
  struct repl_op_write *w = &op->u.write;
  struct repl_coord *c = &w->c;
  *counted = false;
  struct repl_target *t = repl__op_target(c, from);
  if (t == NULL || !t->sent || t->acked)
    return CHORUS_OK; /* late, duplicated, or never asked */
  if (status != CHORUS_OK) {
    REPL_TRACE(r, "%016" PRIx64 " refused the write: %s", from,
               chorus_errname(status));
    return CHORUS_OK;
  }
  t->acked = true;
  *counted = true;
  if (t->stands_in != 0) {
    /* A fallback took the object for a dead replica: it counts when the
     * request is sloppy (always, here), never as a primary, and its hint
     * replaces ours. */
    repl__tally_add(&c->tally, &c->need, t->group, false);
    return repl__disarm(r, t->stands_in, c->token, c->key, c->klen, w->hint_seq,
                        NULL);
  }
  if (!t->pending)
    repl__tally_add(&c->tally, &c->need, t->group, t->natural);
  return repl__disarm(r, from, c->token, c->key, c->klen, w->hint_seq, NULL);
}

int repl__write_reply(struct repl *r, struct repl_op *op,
                      const struct repl_effects *fx) {
  r->stats.writes_ok++;
  struct wire_msg m = {.type = WIRE_WRITE_REPLY};
  m.write_reply.context =
      (struct wire_bytes){op->u.write.ctx, op->u.write.clen};
  return fx->reply(fx->ctx, &op->u.write.c.origin, &m, false);
}

bool repl__write_all_acked(const struct repl_op *op) {
  const struct repl_coord *c = &op->u.write.c;
  for (uint8_t i = 0; i < c->ntargets; i++)
    if (c->t[i].sent && !c->t[i].acked)
      return false;
  return true;
}

/* ========================================================================
 * Coordinated reads: our own object and the other replicas' answers
 * gathered, joined, answered, and read repair (repl.h, THE READ PATH).
 * ======================================================================== */

static enum crdt_type read_type(uint8_t mtype) {
  return mtype == WIRE_GET            ? CRDT_KV
         : mtype == WIRE_COUNTER_READ ? CRDT_COUNTER
                                      : CRDT_SET;
}

int repl__read_start(struct repl *r, struct repl_op *op,
                     const struct repl_request *q,
                     const struct repl_effects *fx) {
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
      /* Our part counts once durable (all_durable). */
      if (repl__all_durable(r)) {
        t->answered = true;
        repl__tally_add(&c->tally, &c->need, t->group, true);
      } else {
        rc = fx->sync(fx->ctx, store_last_seq(r->store), op->id);
      }
    } else if (repl__peer_alive(r, t->id)) {
      struct wire_msg m = {.type = WIRE_REPLICA_READ, .request_id = op->id};
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
  struct repl_coord *c = &op->u.read.c;
  struct repl_target *self = repl__op_target(c, r->cfg.self);
  if (self == NULL || self->answered)
    return false;
  self->answered = true;
  repl__tally_add(&c->tally, &c->need, self->group, true);
  return true;
}

int repl__read_answer(struct repl_op *op, chorus_node_id from,
                      const struct wire_bytes *obj, bool *counted) {
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

bool repl__read_repair_acked(struct repl_op *op, chorus_node_id from) {
  struct repl_target *t = repl__op_target(&op->u.read.c, from);
  if (t == NULL || !t->repairing)
    return false;
  t->repairing = false;
  return true;
}

/* Joins every answer of a read into *@out (type @want). */
static int read_join(struct repl *r, struct repl_coord *c, enum crdt_type want,
                     struct crdt_obj *out) {
  crdt_obj_init(out, want);
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
    if (rc != CHORUS_OK) {
      REPL_TRACE(r, "answer of %016" PRIx64 " ignored: %s", t->id, r->err);
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
    if (t->id == r->cfg.self) {
      rc = repl__join_into_store(r, c->token, c->key, c->klen, bytes, blen);
      if (rc != CHORUS_OK && rc != CHORUS_ENOMEM) {
        REPL_TRACE(r, "local read repair failed: %s", chorus_strerror(rc));
        rc = CHORUS_OK;
      }
    } else {
      struct wire_msg m;
      repl__msg_replica_write(&m, blocking ? op->id : 0, c->token, c->key,
                              c->klen, bytes, blen,
                              blocking ? WIRE_REPLICA_DURABLE : 0);
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

static bool read_repairs_pending(const struct repl_coord *c) {
  for (uint8_t i = 0; i < c->ntargets; i++)
    if (c->t[i].repairing)
      return true;
  return false;
}

bool repl__read_finished(const struct repl_op *op) {
  const struct repl_coord *c = &op->u.read.c;
  return op->state == REPL_OP_REPLIED && read_all_answered(c) &&
         !read_repairs_pending(c);
}

/* The answer to a read from the joined object @obj (found or not). */
static int reply_read(struct repl *r, const struct repl_effects *fx,
                      const struct repl_coord *c, const struct crdt_obj *obj) {
  struct wire_msg m = {0};
  struct wire_bytes *items = NULL;
  uint8_t *ctx = NULL;
  size_t clen = 0;
  int rc = CHORUS_OK;
  switch (c->mtype) {
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
    rc = repl__encode_ctx(obj, &ctx, &clen);
    m.get_reply.context = (struct wire_bytes){ctx, clen};
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
    rc = fx->reply(fx->ctx, &c->origin, &m, false);
  }
  chorus_free(items);
  chorus_free(ctx);
  return rc;
}

int repl__read_reply(struct repl *r, struct repl_op *op,
                     const struct repl_effects *fx, bool *answered) {
  struct repl_op_read *rd = &op->u.read;
  enum crdt_type want = read_type(rd->c.mtype);
  *answered = false;
  struct crdt_obj merged;
  int rc = read_join(r, &rd->c, want, &merged);
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
    rc = reply_read(r, fx, &rd->c, &merged);
  }
  crdt_obj_free(&merged);
  return rc;
}

int repl__read_repair_async(struct repl *r, struct repl_op *op,
                            const struct repl_effects *fx) {
  struct repl_op_read *rd = &op->u.read;
  if (rd->read_repair != WIRE_RR_ASYNC)
    return CHORUS_OK;
  struct crdt_obj merged;
  int rc = read_join(r, &rd->c, read_type(rd->c.mtype), &merged);
  if (rc == CHORUS_ETYPE)
    return CHORUS_OK; /* the client was told; there is nothing to repair */
  if (rc != CHORUS_OK)
    return rc;
  int waiting;
  rc = read_repair(r, fx, op, &merged, false, &waiting);
  crdt_obj_free(&merged);
  return rc;
}

/* ========================================================================
 * The replica side: a coordinator's REPLICA_WRITE and REPLICA_READ, and
 * HINT_DELIVER (a hint replayed to us, or an object a fallback keeps for
 * another node), answered once durable. Every field of these messages comes
 * from the network: checked here, never asserted.
 * ======================================================================== */

void repl__msg_replica_write(struct wire_msg *m, uint64_t req,
                             chorus_token token, const void *key, size_t klen,
                             const void *obj, size_t olen, uint8_t flags) {
  *m = (struct wire_msg){.type = WIRE_REPLICA_WRITE, .request_id = req};
  m->replica_write.token = token;
  m->replica_write.key = (struct wire_bytes){key, klen};
  m->replica_write.object = (struct wire_bytes){obj, olen};
  m->replica_write.flags = flags;
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

int repl__send_ack(const struct repl_effects *fx, chorus_node_id to,
                   uint64_t req, uint8_t type, uint64_t hint_seq, int status) {
  struct wire_msg m = {.type = type, .request_id = req};
  if (type == WIRE_HINT_ACK) {
    m.hint_ack.hint_seq = hint_seq;
    m.hint_ack.status = status;
  } else {
    m.replica_ack.status = status;
  }
  return fx->send(fx->ctx, to, &m);
}

int repl__send_read_answer(const struct repl_effects *fx, chorus_node_id to,
                           uint64_t req, const void *obj, size_t olen) {
  struct wire_msg a = {.type = WIRE_REPLICA_READ_REPLY, .request_id = req};
  a.replica_read_reply.object = (struct wire_bytes){obj, olen};
  return fx->send(fx->ctx, to, &a);
}

/* Acknowledges once durable: a barrier on everything written so far. */
static int ack_when_durable(struct repl *r, const struct repl_effects *fx,
                            chorus_node_id to, uint64_t req, uint8_t type,
                            uint64_t hint_seq) {
  struct repl_op *op = repl__op_new(r, REPL_OP_ACK);
  if (op == NULL)
    return CHORUS_ENOMEM;
  op->u.ack = (struct repl_op_ack){to, req, type, hint_seq};
  return fx->sync(fx->ctx, store_last_seq(r->store), op->id);
}

int repl__on_replica_write(struct repl *r, chorus_node_id from,
                           const struct wire_msg *m,
                           const struct repl_effects *fx) {
  const struct wire_replica_write *w = &m->replica_write;
  int status = CHORUS_EIO;
  if (!r->failed) {
    status = ring_token_of(w->key.ptr, w->key.len) == w->token
                 ? repl__join_into_store(r, w->token, w->key.ptr, w->key.len,
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
    REPL_TRACE(r, "replica write from %016" PRIx64 " refused: %s", from,
               chorus_errname(status));
  return repl__send_ack(fx, from, m->request_id, WIRE_REPLICA_ACK, 0, status);
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
    op->u.answer = (struct repl_op_answer){from, m->request_id, buf, len};
    return fx->sync(fx->ctx, store_last_seq(r->store), op->id);
  }
  rc = repl__send_read_answer(fx, from, m->request_id, buf, len);
  chorus_free(buf);
  return rc;
}

/* A fallback keeps the object for @target: joined with any hint it
 * already keeps for the same key. */
static int keep_hint(struct repl *r, const struct wire_hint_deliver *h,
                     chorus_ms wall) {
  struct crdt_obj in;
  int rc =
      repl__decode_obj(h->object.ptr, h->object.len, CRDT_NONE, &in, r->err);
  if (rc != CHORUS_OK)
    return CHORUS_EMALFORMED;
  struct repl_hint old;
  void *oldbuf = NULL;
  rc = repl__hints_get(r->store, h->target, h->token, h->key.ptr, h->key.len,
                       &old, &oldbuf);
  if (rc == CHORUS_OK && old.olen > 0) {
    struct crdt_obj prev;
    if (repl__decode_obj(old.object, old.olen, in.type, &prev, r->err) ==
        CHORUS_OK) {
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
    rc = repl__encode_obj(&in, &bytes, &blen);
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
    repl__resync_hints(r);
  return rc;
}

int repl__on_hint_deliver(struct repl *r, chorus_node_id from,
                          const struct wire_msg *m, chorus_ms wall,
                          const struct repl_effects *fx) {
  const struct wire_hint_deliver *h = &m->hint_deliver;
  int status = CHORUS_EIO;
  if (!r->failed) {
    if (ring_token_of(h->key.ptr, h->key.len) != h->token || h->object.len == 0)
      status = CHORUS_EMALFORMED;
    else if (h->target == r->cfg.self)
      status = repl__join_into_store(r, h->token, h->key.ptr, h->key.len,
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
  REPL_TRACE(r, "hint from %016" PRIx64 " refused: %s", from,
             chorus_errname(status));
  return repl__send_ack(fx, from, m->request_id, WIRE_HINT_ACK, h->hint_seq,
                        status);
}

/* ========================================================================
 * Replicated objects in the store's data space: loaded, decoded, encoded
 * and joined, and the durability rule every answer that leaves a node
 * obeys.
 * ======================================================================== */

unsigned char *repl__data_key(chorus_token token, const void *key, size_t klen,
                              size_t *len) {
  unsigned char *dk = chorus_malloc(STORE_TOKEN_PREFIX + klen);
  if (dk != NULL)
    *len = store_data_key(dk, token, key, klen);
  return dk;
}

int repl__load_bytes(struct repl *r, chorus_token token, const void *key,
                     size_t klen, void **buf, size_t *len) {
  size_t dl;
  unsigned char *dk = repl__data_key(token, key, klen, &dl);
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
bool repl__all_durable(struct repl *r) {
  return store_durable_seq(r->store) >= store_last_seq(r->store);
}

int repl__decode_obj(const void *buf, size_t len, enum crdt_type want,
                     struct crdt_obj *obj, char *err) {
  if (len == 0) {
    if (want == CRDT_NONE)
      return CHORUS_EINVAL;
    crdt_obj_init(obj, want);
    return CHORUS_OK;
  }
  return crdt_obj_decode(obj, want, buf, len, err);
}

int repl__encode_obj(const struct crdt_obj *obj, uint8_t **buf, size_t *len) {
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

int repl__encode_ctx(const struct crdt_obj *obj, uint8_t **buf, size_t *len) {
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

int repl__join_into_store(struct repl *r, chorus_token token, const void *key,
                          size_t klen, const void *bytes, size_t blen) {
  struct crdt_obj in, local;
  int rc = repl__decode_obj(bytes, blen, CRDT_NONE, &in, r->err);
  if (rc != CHORUS_OK)
    return CHORUS_EMALFORMED;
  void *buf;
  size_t len;
  if ((rc = repl__load_bytes(r, token, key, klen, &buf, &len)) != CHORUS_OK) {
    crdt_obj_free(&in);
    return rc;
  }
  rc = repl__decode_obj(buf, len, in.type, &local, r->err);
  if (rc == CHORUS_EMALFORMED)
    rc = CHORUS_ECORRUPT;
  if (rc == CHORUS_OK) {
    rc = crdt_obj_join(&local, &in, NULL);
    uint8_t *out = NULL;
    size_t olen = 0;
    if (rc == CHORUS_OK)
      rc = repl__encode_obj(&local, &out, &olen);
    if (rc == CHORUS_OK && (olen != len || memcmp(out, buf, len) != 0)) {
      size_t dl;
      unsigned char *dk = repl__data_key(token, key, klen, &dl);
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

/* ========================================================================
 * The instance's side of hinted handoff: hints disarmed by
 * acknowledgements, the index rebuilt after a failed batch, and replay of
 * the hints that are due to targets that are up (repl.h, HINTS ARE WRITTEN
 * AHEAD).
 * ======================================================================== */

/* Deletes wait for the next write batch; without writes, they are written
 * once this many have gathered (and at every hint round). */
#define DISARM_FLUSH_AT 256

int repl__disarm(struct repl *r, chorus_node_id target, chorus_token token,
                 const void *key, size_t klen, uint64_t seq, bool *deleted) {
  int rc = repl__hints_disarm(&r->hints, r->store, target, token, key, klen,
                              seq, deleted);
  if (rc == CHORUS_OK &&
      repl__hints_pending_deletes(&r->hints) >= DISARM_FLUSH_AT)
    rc = repl__hints_flush(&r->hints, r->store, NULL);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK)
    REPL_TRACE(r, "hint for %016" PRIx64 " not deleted: %s", target,
               chorus_errname(rc));
  return CHORUS_OK;
}

void repl__resync_hints(struct repl *r) {
  int rc = repl__hints_load(&r->hints, r->store);
  if (rc != CHORUS_OK)
    REPL_TRACE(r, "hint index not rebuilt: %s", chorus_errname(rc));
}

int repl__replay_send(const struct repl_effects *fx, const struct repl_op *op) {
  const struct repl_op_replay *p = &op->u.replay;
  struct wire_msg m;
  repl__msg_hint_deliver(&m, op->id, p->target, p->hint_seq, p->token, p->key,
                         p->klen, p->obj, p->olen);
  return fx->send(fx->ctx, p->target, &m);
}

void repl__replay_ended(struct repl *r, const struct repl_op *op) {
  struct repl_peer_state *p = repl__peer_get(r, op->u.replay.target, false);
  if (p && p->inflight > 0)
    p->inflight--;
}

int repl__replay_acked(struct repl *r, struct repl_op *op, chorus_node_id from,
                       uint64_t hint_seq, int status) {
  const struct repl_op_replay *p = &op->u.replay;
  int rc = CHORUS_OK;
  if (from == p->target && status == CHORUS_OK) {
    bool deleted = false;
    rc = repl__disarm(r, p->target, p->token, p->key, p->klen, hint_seq,
                      &deleted);
    if (deleted)
      r->stats.hints_replayed++;
    REPL_TRACE(r, "hint replayed to %016" PRIx64 "%s", p->target,
               deleted ? "" : " (re-armed meanwhile: kept)");
  } else if (status != CHORUS_OK) {
    REPL_TRACE(r, "hint replay to %016" PRIx64 " refused: %s", p->target,
               chorus_errname(status));
  }
  return rc;
}

/* Replays hint @h now, or, when the store holds writes not yet durable,
 * holds it in @round (created on first use) until a barrier. */
static int replay_one(struct repl *r, struct repl_peer_state *p,
                      const struct repl_hint *h, chorus_ms wall,
                      struct repl_op **round, const struct repl_effects *fx) {
  if (r->cfg.hint_max_age_ms && wall > h->wall &&
      wall - h->wall > r->cfg.hint_max_age_ms) {
    REPL_TRACE(r, "hint for %016" PRIx64 " dropped: older than %" PRIu64 " ms",
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
    int rc = repl__load_bytes(r, h->token, h->key, h->klen, &obj, &olen);
    if (rc != CHORUS_OK || olen == 0) {
      chorus_free(obj);
      return rc == CHORUS_ENOMEM ? rc : CHORUS_OK; /* keep the hint */
    }
  }
  struct repl_op *op = repl__op_new(r, REPL_OP_REPLAY);
  uint8_t *key = op ? chorus_malloc(h->klen ? h->klen : 1) : NULL;
  if (key == NULL) {
    chorus_free(obj);
    return CHORUS_ENOMEM;
  }
  if (h->klen)
    memcpy(key, h->key, h->klen);
  op->u.replay = (struct repl_op_replay){h->target, h->token, key, h->klen,
                                         h->seq,    obj,      olen};
  p->inflight++;
  int rc = repl__op_arm(fx, op, r->cfg.timeout_ms);
  if (rc != CHORUS_OK)
    return rc;
  if (repl__all_durable(r)) {
    const struct repl_op_event go = {.kind = REPL_EV_RELEASE};
    return repl__op_step(r, op, &go, fx);
  }
  if (*round == NULL && (*round = repl__op_new(r, REPL_OP_ROUND)) == NULL)
    return CHORUS_ENOMEM;
  struct repl_op_round *rd = &(*round)->u.round;
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
                         struct repl_op **round,
                         const struct repl_effects *fx) {
  struct repl_peer_state *p = repl__peer_get(r, target, true);
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
    REPL_TRACE(
        r, "replaying hints to %016" PRIx64 ": %u in flight, %" PRIu64 " kept",
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

/* Replays held back for durability leave after one barrier, the round's. */
int repl__replay(struct repl *r, chorus_node_id target, chorus_ms wall,
                 const struct repl_effects *fx) {
  int rc = CHORUS_OK;
  struct repl_op *round = NULL;
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
