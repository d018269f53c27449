/* repl_timeline.c: what a write or read coordinated here tells of its
 * own path: the slow-request line (SLOW REQUESTS) and the traced
 * request's timeline (TRACING), both from times its events store as they
 * happen. repl_op.c's state machine calls in here; nothing here decides
 * what an operation does. */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_int.h"

/* ------------------------------------------------------------------------
 * Slow requests
 *
 * HOW A SLOW REQUEST IS TOLD. A write or read coordinated here keeps a few
 * times, each one store in an event that happens anyway: when it arrived
 * (born, the request's event), when its messages went out (sent_at), when
 * each replica answered (repl_target.at), when the client got its answer
 * (replied_at), and how many read repairs it sent. Nothing is formatted on
 * the way. When the operation ends (every answer in, or its timer fired)
 * and its answer took slow_ms or more, one line on the warn tracer tells
 * the whole story, ms after arrival:
 *
 *   slow PUT req=100000002 token=...: answered in 1503 ms (2/2);
 *   received +0, sent +1; 5f...(self) +1; 8a... acked +3;
 *   c1... acked +1502; answered +1503; ended +1503
 *
 * A replica that never answered shows "no answer (timed out)" or, for a
 * write, "hint kept" (its hint stays armed: hinted handoff brings it the
 * object later); one never asked, "down, not asked". @req is the origin:
 * a client's is the driver's cookie in hex (chorusd prints its requests so
 * in every line about them), a forwarded one's "PEER/ID", the peer's node
 * id and its request id. A request this node forwards (it is no replica of
 * the key) is timed from its arrival to the replica's answer and told in
 * a shorter line: "forwarded to REPLICA as ID", the id the replica's own
 * line names it by.
 * ------------------------------------------------------------------------ */

/* since: ms from @c's arrival to the event being handled. */
uint32_t repl__since(const struct repl *r, const struct repl_coord *c) {
  chorus_ms d = r->now >= c->born ? r->now - c->born : 0;
  return d > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)d;
}

/* answered_at: @from answered @c now (the first answer is kept). */
void repl__answered_at(const struct repl *r, struct repl_coord *c,
                       chorus_node_id from) {
  struct repl_target *t = repl__op_target(c, from);
  if (t != NULL && t->at == 0)
    t->at = repl__since(r, c) + 1;
}

void repl__to_replied(struct repl *r, struct repl_op *op) {
  op->state = REPL_OP_REPLIED;
  struct repl_coord *c = repl__coord(op);
  c->replied_at = repl__since(r, c);
}

/* req_text: @o as the request's id in a line (SLOW REQUESTS above). */
static void req_text(char *out, size_t cap, const struct repl_origin *o) {
  if (o->from_peer)
    snprintf(out, cap, "%016" PRIx64 "/%" PRIx64, o->peer, o->cookie);
  else
    snprintf(out, cap, "%" PRIx64, o->cookie);
}

/* A printf into a fixed line that stops quietly at its end. */
struct line {
  char buf[CHORUS_TRACE_LINE_MAX];
  size_t len;
};

static void add(struct line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add(struct line *l, const char *fmt, ...) {
  if (l->len >= sizeof l->buf - 1)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
  va_end(ap);
  if (n > 0)
    l->len += (size_t)n < sizeof l->buf - l->len ? (size_t)n
                                                 : sizeof l->buf - l->len - 1;
}

void repl__slow_line(struct repl *r, const struct repl_op *op,
                     const struct repl_coord *c, bool timed_out) {
  bool replied = op->state == REPL_OP_REPLIED;
  uint32_t took = replied ? c->replied_at : repl__since(r, c);
  if (r->cfg.slow_ms == 0 || took < r->cfg.slow_ms ||
      !chorus_tracing(r->cfg.warn))
    return;
  bool write = op->kind == REPL_OP_WRITE;
  struct line l = {.len = 0};
  char req[48];
  req_text(req, sizeof req, &c->origin);
  add(&l, "slow %s req=%s token=", wire_type_name(c->mtype), req);
  add(&l, "%016" PRIx64 ": answered in %" PRIu32 " ms (%u/%u)%s", c->token,
      took, c->tally.total, c->need.total,
      timed_out && !replied ? ", timed out" : "");
  add(&l, "; received +0, sent +%" PRIu32, c->sent_at);
  for (uint8_t i = 0; i < c->ntargets; i++) {
    const struct repl_target *t = &c->t[i];
    add(&l, "; %016" PRIx64, t->id);
    if (t->stands_in)
      add(&l, " for %016" PRIx64, t->stands_in);
    if (t->id == r->cfg.self)
      add(&l, " (self) +%" PRIu32,
          write || t->at == 0 ? c->sent_at : t->at - 1);
    else if (!t->sent)
      add(&l, " down, not asked%s", write ? ", hint kept" : "");
    else if (t->at == 0)
      add(&l, " no answer (%s)%s", timed_out ? "timed out" : "not awaited",
          write ? ", hint kept" : "");
    else
      add(&l, " %s +%" PRIu32,
          write ? (t->acked ? "acked" : "refused")
                : (t->refusal ? "refused" : "answered"),
          t->at - 1);
  }
  if (replied)
    add(&l, "; answered +%" PRIu32, c->replied_at);
  if (c->repairs)
    add(&l, "; %u read repairs", c->repairs);
  add(&l, "; ended +%" PRIu32, repl__since(r, c));
  chorus_trace(r->cfg.warn, "repl", "%s", l.buf);
}

/* forward_slow: the line of a slow request this node forwarded (the
 * replica that coordinated it logs the replicas' side, under PEER/ID). */
void repl__forward_slow(struct repl *r, const struct repl_op *op,
                        const char *how) {
  const struct repl_op_forward *f = &op->u.forward;
  chorus_ms took = r->now >= f->born ? r->now - f->born : 0;
  if (r->cfg.slow_ms == 0 || took < r->cfg.slow_ms ||
      !chorus_tracing(r->cfg.warn))
    return;
  char req[48];
  req_text(req, sizeof req, &f->origin);
  chorus_trace(r->cfg.warn, "repl",
               "slow %s req=%s: %s in %" PRIu64 " ms; forwarded to %016" PRIx64
               " as %" PRIx64 " after %u tries",
               wire_type_name(f->mtype), req, how, took, f->to, op->id,
               f->ntried);
}

/* ------------------------------------------------------------------------
 * Tracing
 *
 * HOW A TRACED REQUEST IS TOLD (issue 25; docs/PROTOCOL.md, TRACE). A
 * request whose opts.flags has TRACE keeps the same timeline as any
 * (SLOW REQUESTS above), and two things more: its replica requests carry
 * REPL_REQ_TRACE in their id, so each replica sends its own times first
 * (REPLICA_TIMES: receipt to barrier, receipt to answer, on its own clock;
 * kept in repl_coord.trace), and its reply is held. Holding is done in one
 * place: repl__op_step hands a traced write's or read's step the
 * effects below, whose reply encodes the answer into repl_trace.held
 * instead of sending it. When the operation ends (coord_end), the TRACE
 * goes to the client, then the held reply, both under the request's id:
 * the client keeps the TRACE with the request and completes it on the
 * reply, and the timeline has the stragglers, the timeouts and the
 * hints, as the slow line does. The cost: a traced request is answered
 * when its operation ends rather than at its quorum (its ANSWERED record
 * says when the answer was ready). An untraced one takes none of this:
 * one pointer test per step (repl_coord.trace, NULL), no allocation.
 *
 * A node that forwards a traced request (no replica of the key) gets the
 * coordinator's TRACE under its forward's id before the reply: it passes
 * it on with a FORWARDED record of its own first (forward_trace), and
 * the reply then ends the forward as usual.
 * ------------------------------------------------------------------------ */

static int hold_send(void *ctx, chorus_node_id to, const struct wire_msg *m) {
  const struct repl_hold *h = ctx;
  return h->fx->send(h->fx->ctx, to, m);
}

static int hold_timer(void *ctx, uint64_t id, chorus_ms after_ms) {
  const struct repl_hold *h = ctx;
  return h->fx->timer(h->fx->ctx, id, after_ms);
}

static int hold_sync(void *ctx, chorus_seq seq, uint64_t token) {
  const struct repl_hold *h = ctx;
  return h->fx->sync(h->fx->ctx, seq, token);
}

/* The traced request's reply, kept encoded until its operation ends. A
 * reply that cannot be kept (out of memory, or no frame holds it; any
 * other origin's) goes out at once, and the request gets no TRACE
 * (coord_end sends one only before a held reply). */
static int hold_reply(void *ctx, const struct repl_origin *o,
                      const struct wire_msg *m, bool maybe_applied) {
  const struct repl_hold *h = ctx;
  struct repl_trace *tr = h->c->trace;
  uint8_t *b = NULL;
  size_t n = 0;
  const struct repl_origin *mine = &h->c->origin;
  if (tr->held == NULL && o->from_peer == mine->from_peer &&
      o->peer == mine->peer && o->cookie == mine->cookie) {
    size_t cap = wire_encoded_size(m);
    b = chorus_malloc(cap ? cap : 1);
    if (b != NULL && wire_encode(m, b, cap, &n, NULL) != CHORUS_OK) {
      chorus_free(b);
      b = NULL;
    }
  }
  if (b == NULL)
    return h->fx->reply(h->fx->ctx, o, m, maybe_applied);
  tr->held = b;
  tr->held_len = n;
  tr->held_maybe = maybe_applied;
  return CHORUS_OK;
}

/* The driver's effects behind @fx (a traced step's, or already them). */
const struct repl_effects *repl__driver_fx(const struct repl_effects *fx) {
  return fx->reply == hold_reply ? ((const struct repl_hold *)fx->ctx)->fx : fx;
}

static void trace_put(uint8_t *buf, size_t *n, uint8_t kind, uint8_t state,
                      uint8_t flags, uint32_t at, chorus_node_id node,
                      chorus_node_id other, uint32_t synced_ms,
                      uint32_t answered_ms) {
  if (*n >= WIRE_MAX_TRACE_EVENTS)
    return; /* bounded: the list has at most 2 x RING_PLIST_MAX + 4 */
  const struct wire_trace_event e = {kind, state, flags,     at,
                                     node, other, synced_ms, answered_ms};
  wire_trace_event_put(buf + WIRE_TRACE_EVENT_BYTES * (*n)++, &e);
}

/* trace_times: replica @from's REPLICA_TIMES for @c. */
void repl__trace_times(struct repl_coord *c, chorus_node_id from,
                       const struct wire_replica_times *t) {
  struct repl_target *x = repl__op_target(c, from);
  if (x == NULL || c->trace == NULL)
    return;
  size_t i = (size_t)(x - c->t);
  c->trace->t[i].times = true;
  c->trace->t[i].synced = t->synced != 0;
  c->trace->t[i].synced_ms = t->synced_ms;
  c->trace->t[i].answered_ms = t->answered_ms;
}

/* trace_send: @c's TRACE to its client (see HOW A TRACED REQUEST IS TOLD),
 * as the slow line tells it, record by record. */
int repl__trace_send(struct repl *r, const struct repl_op *op,
                     const struct repl_coord *c, bool timed_out,
                     const struct repl_effects *fx) {
  _Static_assert(2 * RING_PLIST_MAX + 4 <= WIRE_MAX_TRACE_EVENTS,
                 "a trace holds every target and its repair");
  uint8_t buf[WIRE_MAX_TRACE_EVENTS * WIRE_TRACE_EVENT_BYTES];
  size_t n = 0;
  bool write = op->kind == REPL_OP_WRITE;
  bool replied = op->state == REPL_OP_REPLIED;
  chorus_node_id self = r->cfg.self;
  uint32_t end = repl__since(r, c);
  trace_put(buf, &n, WIRE_TRACE_RECEIVED, 0, 0, 0, self, 0, 0, 0);
  trace_put(buf, &n, WIRE_TRACE_SENT, 0, 0, c->sent_at, self, 0, 0, 0);
  const struct repl_trace *tr = c->trace;
  for (uint8_t i = 0; i < c->ntargets; i++) {
    const struct repl_target *t = &c->t[i];
    uint8_t state = WIRE_TRACE_ACKED, flags = 0;
    uint32_t at = t->at ? t->at - 1 : end;
    uint32_t synced_ms = tr->t[i].synced_ms, answered_ms = tr->t[i].answered_ms;
    if (t->id == self) {
      /* Our own part: a write is applied and synced before it is sent
       * (SYNCING), a read's counts when read or synced. */
      at = write || t->at == 0 ? c->sent_at : t->at - 1;
      flags |= WIRE_TRACE_SELF | WIRE_TRACE_TIMES;
      if (write)
        flags |= WIRE_TRACE_SYNCED;
      synced_ms = write ? at : 0;
      answered_ms = at;
    } else if (!t->sent) {
      state = WIRE_TRACE_NOT_ASKED;
    } else if (t->at == 0) {
      state = WIRE_TRACE_NO_ANSWER;
    } else if (write ? !t->acked : t->refusal != 0) {
      state = WIRE_TRACE_REFUSED;
    }
    if (write && t->id != self && !t->acked)
      flags |= WIRE_TRACE_HINT; /* its hint stays armed (Dynamo §4.6) */
    if (t->id != self && tr->t[i].times)
      flags |= WIRE_TRACE_TIMES | (tr->t[i].synced ? WIRE_TRACE_SYNCED : 0);
    trace_put(buf, &n, WIRE_TRACE_REPLICA, state, flags, at, t->id,
              t->stands_in, synced_ms, answered_ms);
  }
  if (replied)
    trace_put(buf, &n, WIRE_TRACE_ANSWERED, 0, 0, c->replied_at, self, 0, 0, 0);
  for (uint8_t i = 0; i < c->ntargets; i++)
    if (tr->t[i].repaired_at)
      trace_put(buf, &n, WIRE_TRACE_REPAIR, 0, 0, tr->t[i].repaired_at - 1,
                c->t[i].id, 0, 0, 0);
  trace_put(buf, &n, WIRE_TRACE_ENDED, 0, timed_out ? WIRE_TRACE_TIMED_OUT : 0,
            end, self, 0, 0, 0);
  struct wire_msg m = {.type = WIRE_TRACE};
  m.trace.node_id = self;
  m.trace.events = (struct wire_bytes){buf, n * WIRE_TRACE_EVENT_BYTES};
  return fx->reply(fx->ctx, &c->origin, &m, false);
}

/* held_send: @c's held reply, as it was made. */
int repl__held_send(struct repl *r, struct repl_coord *c,
                    const struct repl_effects *fx) {
  struct wire_msg m;
  const struct wire_limits lim = {WIRE_MAX_FRAME_HARD, WIRE_MAX_DEPTH};
  const struct repl_trace *tr = c->trace;
  int rc = wire_decode(tr->held + WIRE_FRAME_PREFIX,
                       tr->held_len - WIRE_FRAME_PREFIX, &lim, &m, NULL);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK) { /* it encoded here: a bug, told as one */
    wire_msg_free(&m);
    return repl__reply_error(r, fx, &c->origin, c->mtype, CHORUS_EINTERNAL,
                             "%s", "the traced reply did not decode");
  }
  rc = fx->reply(fx->ctx, &c->origin, &m, tr->held_maybe);
  wire_msg_free(&m);
  return rc;
}

/* forward_trace: the coordinator's TRACE @m of a request this node
 * forwarded, passed on to its origin with this node's hop first. */
int repl__forward_trace(struct repl *r, const struct repl_op *op,
                        const struct wire_msg *m,
                        const struct repl_effects *fx) {
  const struct repl_op_forward *f = &op->u.forward;
  uint8_t buf[WIRE_MAX_TRACE_EVENTS * WIRE_TRACE_EVENT_BYTES];
  size_t n = 0;
  chorus_ms took = r->now >= f->born ? r->now - f->born : 0;
  trace_put(buf, &n, WIRE_TRACE_FORWARDED, 0, 0,
            took > UINT32_MAX ? UINT32_MAX : (uint32_t)took, r->cfg.self, f->to,
            0, 0);
  size_t more = m->trace.events.len / WIRE_TRACE_EVENT_BYTES;
  if (more > WIRE_MAX_TRACE_EVENTS - n)
    more = WIRE_MAX_TRACE_EVENTS - n;
  if (more > 0)
    memcpy(buf + n * WIRE_TRACE_EVENT_BYTES, m->trace.events.ptr,
           more * WIRE_TRACE_EVENT_BYTES);
  struct wire_msg t = {.type = WIRE_TRACE};
  t.trace.node_id = m->trace.node_id;
  t.trace.events =
      (struct wire_bytes){buf, (n + more) * WIRE_TRACE_EVENT_BYTES};
  return fx->reply(fx->ctx, &f->origin, &t, false);
}

void repl__hold_effects(struct repl_hold *h, const struct repl_effects *fx,
                        struct repl_coord *c, struct repl_effects *out) {
  h->fx = fx;
  h->c = c;
  *out = (struct repl_effects){h, hold_send, hold_reply, hold_timer, hold_sync};
}
