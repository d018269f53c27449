/* node_dispatch.c: chorusd's frames into the node core, the slots of client
 * requests in flight, and the core's send, reply and ring effects (node.h).
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "node_int.h"

/* ------------------------------------------------------------------------
 * Client request slots. A slot's (generation, index) is the core's cookie:
 * an answer whose slot was released or reused is recognised and dropped,
 * so each request is answered exactly once.
 * ------------------------------------------------------------------------ */

static struct node_slot *slot_of(struct node *n, uint64_t cookie) {
  uint32_t i = (uint32_t)cookie;
  if (i >= n->nslots || !n->slots[i].used ||
      n->slots[i].gen != (uint32_t)(cookie >> 32))
    return NULL;
  return &n->slots[i];
}

/* slots_grow: doubles the table (256 at first). Errors: CHORUS_ENOMEM. */
static int slots_grow(struct node *n) {
  uint32_t cap = n->capslots ? 2 * n->capslots : 256;
  struct node_slot *s = chorus_realloc(n->slots, cap * sizeof *s);
  if (s == NULL)
    return CHORUS_ENOMEM;
  n->slots = s;
  uint32_t *f = chorus_realloc(n->free_slots, cap * sizeof *f);
  if (f == NULL)
    return CHORUS_ENOMEM;
  n->free_slots = f;
  for (uint32_t i = n->capslots; i < cap; i++) {
    n->slots[i] = (struct node_slot){0};
    n->free_slots[n->nfree++] = cap - 1 - (i - n->capslots);
  }
  n->capslots = n->nslots = cap;
  return CHORUS_OK;
}

/* slot_take: a slot for request @request_id of @c; its cookie in *@cookie.
 * Errors: CHORUS_ENOMEM. */
static int slot_take(struct node_conn *c, uint64_t request_id, enum node_op op,
                     unsigned level, uint64_t *cookie) {
  struct node *n = c->n;
  if (n->nfree == 0 && slots_grow(n) != CHORUS_OK)
    return CHORUS_ENOMEM;
  uint32_t i = n->free_slots[--n->nfree];
  struct node_slot *p = &n->slots[i];
  assert(!p->used && p->c == NULL);
  p->used = true;
  p->gen = ++n->req_seq;
  p->c = c;
  p->request_id = request_id;
  p->op = (uint8_t)op;
  p->level = (uint8_t)level;
  p->start_ns = uv_hrtime();
  c->inflight++;
  *cookie = ((uint64_t)p->gen << 32) | i;
  return CHORUS_OK;
}

static void slot_release(struct node *n, struct node_slot *p) {
  assert(p->used && n->nfree < n->nslots);
  p->used = false;
  p->c = NULL;
  n->free_slots[n->nfree++] = (uint32_t)(p - n->slots);
}

/* deliver: reply @m to request @request_id of @c, in its protocol. */
static void deliver(struct node_conn *c, uint64_t request_id,
                    const struct wire_msg *m) {
  if (c->kind == NODE_CONN_RESP) {
    node__resp_reply(c, request_id, m);
    return;
  }
  struct wire_msg copy = *m;
  copy.request_id = request_id;
  int rc = node__conn_send(c, &copy);
  if (rc == CHORUS_EINVAL || rc == CHORUS_ETOOBIG)
    node__conn_send_error(c, request_id, CHORUS_ETOOBIG,
                          "the reply does not fit in a frame");
}

void node__cancel_inflight(struct node *n) {
  for (uint32_t i = 0; i < n->nslots; i++) {
    struct node_slot *p = &n->slots[i];
    if (p->used && p->c) {
      struct wire_msg m;
      wire_error_reply(&m, 0, CHORUS_ECANCELED,
                       "node shutting down; the request may or may not "
                       "have been applied");
      struct node_conn *c = p->c;
      /* Detached first: a RESP session may submit again from the
       * answer, and that request is canceled by the loop below or
       * refused by the closing connection. */
      c->inflight--;
      p->c = NULL;
      deliver(c, p->request_id, &m);
    }
  }
}

void node__on_conn_closed(struct node_conn *c) {
  struct node *n = c->n;
  /* Requests still in flight are answered into the void. */
  if (c->inflight)
    for (uint32_t i = 0; i < n->nslots; i++)
      if (n->slots[i].used && n->slots[i].c == c)
        n->slots[i].c = NULL;
  c->inflight = 0;
  if (c->kind == NODE_CONN_RESP)
    node__resp_closed(c);
  node__peer_conn_closed(c);
}

/* ------------------------------------------------------------------------
 * The core's effects
 * ------------------------------------------------------------------------ */

int node__fx_send(void *ctx, chorus_node_id to, const struct wire_msg *m) {
  return node__peer_send(ctx, to, m);
}

int node__fx_reply(void *ctx, uint64_t cookie, const struct wire_msg *m,
                   bool maybe_applied) {
  struct node *n = ctx;
  (void)maybe_applied; /* the ERROR's code and text say it */
  struct node_slot *p = slot_of(n, cookie);
  if (m->type == WIRE_TRACE) {
    /* A traced request's timeline, just before its reply (repl_op.c,
     * TRACING): delivered, the slot kept for the reply. One whose reply
     * went first (it could not be held) finds no slot and is dropped. */
    if (p != NULL && p->c != NULL && p->c->kind != NODE_CONN_RESP)
      deliver(p->c, p->request_id, m);
    return CHORUS_OK;
  }
  if (p == NULL) {
    node_log(NODE_LOG_ERROR, NODE_MOD,
             "req=%" PRIx64 ": reply, but no such "
             "request",
             cookie);
    return CHORUS_OK;
  }
  node__metrics_reply(n, (enum node_op)p->op, p->level, p->start_ns, m);
  if (node_log_enabled(NODE_LOG_DEBUG))
    node_log(NODE_LOG_DEBUG, NODE_MOD,
             "req=%" PRIx64 ": %s after %" PRIu64 " us%s", cookie,
             wire_type_name(m->type), (uv_hrtime() - p->start_ns) / 1000,
             p->c ? "" : " (client gone)");
  struct node_conn *c = p->c;
  uint64_t request_id = p->request_id;
  /* Released first: a RESP session answers by submitting its next step,
   * which may take a slot. */
  slot_release(n, p);
  if (c) {
    assert(c->inflight > 0);
    c->inflight--;
    deliver(c, request_id, m);
  }
  return CHORUS_OK;
}

/* node__fx_ring: publishes the core's new snapshot for any thread that
 * reads the ring (ring_rcu_get under ring_rcu_read_lock); the previous one
 * is retired after a grace period, once the core no longer reads it. */
void node__fx_ring(void *ctx, struct ring_snapshot *s) {
  struct node *n = ctx;
  if (n->ring_pub.current == NULL)
    ring_rcu_init(&n->ring_pub, s);
  else
    ring_rcu_publish(&n->ring_pub, s);
  node_log(NODE_LOG_DEBUG, NODE_MOD, "ring v%" PRIu64 ": %zu nodes",
           ring_snapshot_version(s), ring_snapshot_node_count(s));
}

/* ------------------------------------------------------------------------
 * Incoming frames
 * ------------------------------------------------------------------------ */

static void on_client_msg(struct node_conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  if (m->type == WIRE_RING_QUERY) {
    node__answer_ring(c, m->request_id);
    return;
  }
  if (m->type == WIRE_STATUS_QUERY) {
    node__answer_status(c, m->request_id);
    return;
  }
  /* Exchanges on demand cost the cluster: admin only (core.h, ROLES PER
   * REQUEST); status and the ring are for every logged-in user. */
  if ((m->type == WIRE_REPAIR_NOW ||
       (m->type == WIRE_REPAIR_RANGES && m->repair_ranges.now)) &&
      !node__login_may(c, m, META_ROLE_ADMIN, "repair"))
    return;
  if (m->type == WIRE_REPAIR_STATUS || m->type == WIRE_REPAIR_NOW) {
    if (m->type == WIRE_REPAIR_NOW) {
      int rc = core_aae_now(n->core, node__now(n), node__wall_ms());
      if (rc != CHORUS_OK)
        node__fatal(rc, "repair now");
    }
    node__answer_repair(c, m->request_id, NULL, 0);
    return;
  }
  if (m->type == WIRE_REPAIR_RANGES) {
    const struct wire_repair_ranges *q = &m->repair_ranges;
    size_t ranges = 0, peers = 0;
    if (q->now) {
      int rc = core_aae_range_now(n->core, q->first, q->last, node__now(n),
                                  node__wall_ms(), &ranges, &peers);
      if (rc == CHORUS_EUNAVAILABLE) {
        node__conn_send_error(c, m->request_id, rc, "replication not started");
        return;
      }
      if (rc != CHORUS_OK)
        node__fatal(rc, "repair now");
      if (ranges == 0) {
        /* Only a replica of a range can exchange it. */
        node__conn_send_error(c, m->request_id, CHORUS_ERANGE,
                              "this node replicates no part of that token "
                              "range: ask one of its replicas");
        return;
      }
    }
    node__answer_repair(c, m->request_id, q, peers);
    return;
  }
  if (c->inflight >= n->cfg.max_inflight) {
    n->stats.overload++;
    node__conn_send_error(c, m->request_id, CHORUS_EOVERLOAD,
                          "too many requests in flight on this connection");
    return;
  }
  if (node__client_submit(c, m) != CHORUS_OK)
    node__conn_send_error(c, m->request_id, CHORUS_ENOMEM, "out of memory");
}

int node__client_submit(struct node_conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  uint64_t cookie;
  enum node_op op = node__metrics_op(m);
  unsigned level = node__metrics_level(op, m);
  if (slot_take(c, m->request_id, op, level, &cookie) != CHORUS_OK)
    return CHORUS_ENOMEM;
  node__metrics_request(n, op, level);
  if (node_log_enabled(NODE_LOG_DEBUG))
    node_log(NODE_LOG_DEBUG, NODE_MOD,
             "req=%" PRIx64 ": %s from %s (id %" PRIu64 ")", cookie,
             wire_type_name(m->type), c->addr, m->request_id);
  int rc =
      core_client_as(n->core, m, cookie, n->cfg.auth_required ? c->user : NULL,
                     node__now(n), node__wall_ms());
  if (rc != CHORUS_OK)
    node__fatal(rc, "client request");
  return CHORUS_OK;
}

static void on_peer_msg(struct node_conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  if (node__peer_handshake_answer(c, m))
    return;
  int rc = CHORUS_OK;
  switch (m->type) {
  case WIRE_GOSSIP:
    rc = core_gossip(n->core, m->gossip.packet.ptr, m->gossip.packet.len,
                     node__now(n), node__wall_ms());
    break;
  case WIRE_RING_QUERY:
    node__answer_ring(c, m->request_id);
    break;
  case WIRE_STATUS_QUERY:
    node__answer_status(c, m->request_id);
    break;
  default:
    rc = core_peer(n->core, c->peer_id, m, node__now(n), node__wall_ms());
    break;
  }
  if (rc != CHORUS_OK)
    node__fatal(rc, "peer message");
}

void node__on_frame(struct node_conn *c, const uint8_t *body, size_t len) {
  /* A tagged peer link: tags are checked before anything is decoded. */
  if (c->auth != NULL && c->auth->state == PEER_AUTH_DONE && c->auth->tagged &&
      !node__peer_frame(c, body, len))
    return;
  struct wire_msg m;
  char err[CHORUS_ERRMSG_SIZE] = "";
  int rc = wire_decode(body, len, &c->limits, &m, err);
  if (rc == CHORUS_ENOTSUP) {
    /* Well framed, unknown type: answer and keep the connection. */
    node__conn_send_error(c, m.request_id, CHORUS_ENOTSUP,
                          "unknown message type");
    wire_msg_free(&m);
    return;
  }
  if (rc != CHORUS_OK) {
    c->n->stats.malformed++;
    node__conn_reject(c, 0, rc, err[0] ? err : chorus_strerror(rc));
    return;
  }
  if (c->kind == NODE_CONN_NEW && c->login_pending)
    node__login_proof(c, &m);
  else if (c->kind == NODE_CONN_NEW)
    node__on_hello(c, &m);
  else if (c->kind == NODE_CONN_CLIENT)
    on_client_msg(c, &m);
  else
    on_peer_msg(c, &m);
  wire_msg_free(&m);
}
