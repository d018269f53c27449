/* node.c: chorusd's loop: the glue that drives SWIM and replication from
 * libuv events, request dispatch, startup checks and graceful shutdown
 * (node.h, HOW IT WORKS). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "chorus_alloc.h"
#include "node_int.h"
#include "store_rocksdb.h"

#define JOIN_RETRY_MS 1000u
#define IDENTITY_KEY "node/identity"

chorus_ms node__wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (chorus_ms)ts.tv_sec * 1000u + (chorus_ms)(ts.tv_nsec / 1000000);
}

void node__fatal(struct node *n, int rc, const char *what) {
  (void)n;
  node_log(NODE_LOG_ERROR, NODE_MOD, "%s: %s; stopping", what,
           chorus_strerror(rc));
  exit(2);
}

/* ------------------------------------------------------------------------
 * SWIM glue
 * ------------------------------------------------------------------------ */

static void swim_fx_send(void *ctx, const char *addr, enum swim_channel ch,
                         const void *data, size_t len) {
  struct node *n = ctx;
  struct peer *p = node__peer_by_addr(n, addr, true);
  if (p == NULL)
    return;
  if (ch == SWIM_DATAGRAM) {
    if (!p->resolved) {
      if (node__resolve(addr, &p->sa) != CHORUS_OK)
        return;
      p->resolved = true;
    }
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
    if (uv_udp_try_send(&n->udp, &b, 1, (const struct sockaddr *)&p->sa) >= 0)
      n->stats.udp_out++;
    return;
  }
  struct conn *c = node__peer_conn(n, p);
  if (c == NULL)
    return;
  struct wire_msg m = {.type = WIRE_GOSSIP, .request_id = 0};
  m.gossip.packet = (struct wire_bytes){data, len};
  (void)node__conn_send(c, &m);
}

static void swim_fx_changed(void *ctx, const struct swim_member *m,
                            enum swim_state old, int is_new, int ring_changed) {
  struct node *n = ctx;
  if (ring_changed || is_new)
    n->ring_dirty = true;
  if (m->id == n->cfg.id)
    return;
  node_log(is_new || old != m->state ? NODE_LOG_INFO : NODE_LOG_DEBUG, "swim",
           "member %016" PRIx64 " (%s) %s -> %s, incarnation %" PRIu32, m->id,
           m->meta.addr, is_new ? "new" : swim_state_name(old),
           swim_state_name(m->state), m->incarnation);
  if (m->meta.addr[0]) {
    struct peer *p = node__peer_by_addr(n, m->meta.addr, true);
    if (p && p->id != m->id) {
      /* A member that moved: its old address is no longer its own. */
      struct peer *old_entry;
      while ((old_entry = node__peer_by_id(n, m->id)) != NULL)
        old_entry->id = 0;
      p->id = m->id;
    }
  }
  if (n->nmev == n->capmev) {
    size_t cap = n->capmev ? 2 * n->capmev : 16;
    struct member_ev *e = chorus_realloc(n->mev, cap * sizeof *e);
    if (e == NULL)
      return;
    n->mev = e;
    n->capmev = cap;
  }
  n->mev[n->nmev++] = (struct member_ev){m->id, m->state == SWIM_ALIVE ||
                                                    m->state == SWIM_SUSPECT};
}

static void on_swim_timer(uv_timer_t *t);

/* after_swim: what member_changed deferred (SWIM must not be re-entered
 * from its callbacks): the new ring, then membership into replication;
 * then the next SWIM deadline. */
static void after_swim(struct node *n) {
  if (n->ring_dirty) {
    n->ring_dirty = false;
    struct ring_snapshot *s = NULL;
    char err[CHORUS_ERRMSG_SIZE] = "";
    int rc = swim_ring_snapshot(n->swim, &n->cfg.replication, &s, err);
    if (rc == CHORUS_OK) {
      /* repl borrows the new one before the old one can be retired. */
      repl_set_ring(n->repl, s);
      ring_rcu_publish(&n->ring_pub, s);
      node_log(NODE_LOG_DEBUG, NODE_MOD, "ring v%" PRIu64 ": %zu nodes",
               ring_snapshot_version(s), ring_snapshot_node_count(s));
    } else {
      node_log(NODE_LOG_WARN, NODE_MOD, "ring snapshot: %s", err);
    }
  }
  for (size_t i = 0; i < n->nmev; i++) {
    int rc = repl_member(n->repl, n->mev[i].id, n->mev[i].alive, node__now(n),
                         node__wall_ms(), &n->rfx);
    if (rc != CHORUS_OK)
      node__fatal(n, rc, "repl_member");
  }
  n->nmev = 0;
  if (n->closing_all)
    return;
  chorus_ms d = swim_next_deadline(n->swim), now = node__now(n);
  uv_timer_start(&n->swim_timer, on_swim_timer, d > now ? d - now : 0, 0);
}

static void on_swim_timer(uv_timer_t *t) {
  struct node *n = t->data;
  int rc = swim_tick(n->swim, node__now(n), node__wall_ms());
  if (rc != CHORUS_OK)
    node__fatal(n, rc, "swim_tick");
  after_swim(n);
}

static void swim_packet(struct node *n, const void *data, size_t len) {
  int rc =
      swim_handle_packet(n->swim, data, len, node__now(n), node__wall_ms());
  if (rc != CHORUS_OK)
    node_log(NODE_LOG_WARN, "swim", "packet dropped: %s", chorus_strerror(rc));
  after_swim(n);
}

static void on_udp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  struct node *n = h->data;
  *b = uv_buf_init((char *)n->rbuf, sizeof n->rbuf);
}

static void on_udp(uv_udp_t *h, ssize_t nread, const uv_buf_t *b,
                   const struct sockaddr *from, unsigned flags) {
  struct node *n = h->data;
  if (nread <= 0 || from == NULL || (flags & UV_UDP_PARTIAL) || n->closing_all)
    return;
  n->stats.udp_in++;
  swim_packet(n, b->base, (size_t)nread);
}

static void join_seeds(struct node *n) {
  const char *seeds[NODE_MAX_SEEDS];
  for (size_t i = 0; i < n->cfg.nseeds; i++)
    seeds[i] = n->cfg.seeds[i];
  int rc =
      swim_join(n->swim, seeds, n->cfg.nseeds, node__now(n), node__wall_ms());
  if (rc != CHORUS_OK)
    node_log(NODE_LOG_WARN, "swim", "join: %s", chorus_strerror(rc));
  after_swim(n);
}

/* Join is retried until some member is known: seeds may start later. */
static void on_join_timer(uv_timer_t *t) {
  struct node *n = t->data;
  if (n->shutting_down || n->cfg.nseeds == 0)
    return;
  if (swim_member_count(n->swim) > 1)
    return;
  join_seeds(n);
}

/* ------------------------------------------------------------------------
 * Replication effects
 * ------------------------------------------------------------------------ */

static int fx_send(void *ctx, chorus_node_id to, const struct wire_msg *m) {
  return node__peer_send(ctx, to, m);
}

static struct pending *slot_of(struct node *n, uint64_t cookie) {
  uint32_t i = (uint32_t)cookie;
  if (i >= n->nslots || !n->slots[i].used ||
      n->slots[i].gen != (uint32_t)(cookie >> 32))
    return NULL;
  return &n->slots[i];
}

static void slot_release(struct node *n, struct pending *p) {
  p->used = false;
  p->c = NULL;
  n->free_slots[n->nfree++] = (uint32_t)(p - n->slots);
}

static int fx_reply(void *ctx, const struct repl_origin *o,
                    const struct wire_msg *m, bool maybe_applied) {
  struct node *n = ctx;
  (void)maybe_applied; /* the ERROR's code and text say it */
  if (o->from_peer) {
    struct wire_msg copy = *m;
    copy.request_id = o->cookie;
    return node__peer_send(n, o->peer, &copy);
  }
  struct pending *p = slot_of(n, o->cookie);
  if (p == NULL) {
    node_log(NODE_LOG_ERROR, NODE_MOD, "reply for unknown request %" PRIx64,
             o->cookie);
    return CHORUS_OK;
  }
  struct conn *c = p->c;
  if (c) {
    struct wire_msg copy = *m;
    copy.request_id = p->request_id;
    int rc = node__conn_send(c, &copy);
    if (rc == CHORUS_EINVAL || rc == CHORUS_ETOOBIG)
      node__conn_send_error(c, p->request_id, CHORUS_ETOOBIG,
                            "the reply does not fit in a frame");
    c->inflight--;
  }
  slot_release(n, p);
  return CHORUS_OK;
}

static void heap_swap(struct rtimer *a, struct rtimer *b) {
  struct rtimer t = *a;
  *a = *b;
  *b = t;
}

static void on_repl_timer(uv_timer_t *t);

static void repl_timer_rearm(struct node *n) {
  if (n->nheap == 0 || n->closing_all)
    return;
  chorus_ms at = n->heap[0].at, now = node__now(n);
  if (n->repl_armed && n->repl_armed_at <= at)
    return;
  n->repl_armed = true;
  n->repl_armed_at = at;
  uv_timer_start(&n->repl_timer, on_repl_timer, at > now ? at - now : 0, 0);
}

/* Replication's timers cannot be cancelled and are many (one per
 * request): a binary heap under one uv_timer. */
static int fx_timer(void *ctx, uint64_t id, chorus_ms after_ms) {
  struct node *n = ctx;
  if (n->nheap == n->capheap) {
    size_t cap = n->capheap ? 2 * n->capheap : 64;
    struct rtimer *h = chorus_realloc(n->heap, cap * sizeof *h);
    if (h == NULL)
      return CHORUS_ENOMEM;
    n->heap = h;
    n->capheap = cap;
  }
  size_t i = n->nheap++;
  n->heap[i] = (struct rtimer){node__now(n) + after_ms, id};
  while (i > 0 && n->heap[(i - 1) / 2].at > n->heap[i].at) {
    heap_swap(&n->heap[(i - 1) / 2], &n->heap[i]);
    i = (i - 1) / 2;
  }
  repl_timer_rearm(n);
  return CHORUS_OK;
}

static struct rtimer heap_pop(struct node *n) {
  struct rtimer top = n->heap[0];
  n->heap[0] = n->heap[--n->nheap];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n->nheap && n->heap[l].at < n->heap[m].at)
      m = l;
    if (r < n->nheap && n->heap[r].at < n->heap[m].at)
      m = r;
    if (m == i)
      break;
    heap_swap(&n->heap[i], &n->heap[m]);
    i = m;
  }
  return top;
}

static void on_repl_timer(uv_timer_t *t) {
  struct node *n = t->data;
  n->repl_armed = false;
  chorus_ms now = node__now(n);
  while (n->nheap && n->heap[0].at <= now) {
    struct rtimer e = heap_pop(n);
    int rc = repl_timer(n->repl, e.id, now, node__wall_ms(), &n->rfx);
    if (rc != CHORUS_OK)
      node__fatal(n, rc, "repl_timer");
  }
  repl_timer_rearm(n);
}

/* While `none` answers wait for the check phase, an active idle handle
 * makes the loop poll without blocking; the callback has nothing to do. */
static void on_ready_idle(uv_idle_t *h) { (void)h; }

/* sync_push_chain: hands the results @head..@tail to the loop. */
static void sync_push_chain(struct node *n, struct sync_done *head,
                            struct sync_done *tail) {
  uv_mutex_lock(&n->sync_lock);
  if (n->sync_tail)
    n->sync_tail->next = head;
  else
    n->sync_head = head;
  n->sync_tail = tail;
  /* Under the lock, so the loop cannot close the handle in between. */
  if (!n->async_closed)
    uv_async_send(&n->sync_async);
  uv_mutex_unlock(&n->sync_lock);
}

/* Runs on the store's sync thread: hand the results to the loop. @arg is
 * the chain of one iteration's barriers (node__submit_barriers). */
static void on_store_sync(void *arg, chorus_seq durable, int status) {
  (void)durable;
  struct sync_done *head = arg, *tail = head;
  for (struct sync_done *d = head; d; d = d->next) {
    d->status = status;
    tail = d;
  }
  sync_push_chain(head->n, head, tail);
}

static int fx_sync(void *ctx, chorus_seq seq, uint64_t token) {
  struct node *n = ctx;
  struct sync_done *d = chorus_calloc(1, sizeof *d);
  if (d == NULL)
    return CHORUS_ENOMEM;
  d->n = n;
  d->token = token;
  if (n->cfg.durability == NODE_DURABILITY_NONE) {
    /* No barrier: answered at this iteration's check, before its output
     * leaves (never re-entering replication from inside its own effect).
     * The idle handle keeps the loop from blocking in poll meanwhile. */
    d->status = CHORUS_OK;
    if (n->ready_tail)
      n->ready_tail->next = d;
    else
      n->ready_head = d;
    n->ready_tail = d;
    uv_idle_start(&n->ready_idle, on_ready_idle);
    return CHORUS_OK;
  }
  /* Wait for the end of the iteration: one barrier then covers every
   * write the iteration made, and the sync thread wakes once for all of
   * them instead of syncing the first few while the rest arrive. */
  if (n->barrier_tail)
    n->barrier_tail->next = d;
  else
    n->barrier_head = d;
  n->barrier_tail = d;
  if (seq > n->barrier_seq)
    n->barrier_seq = seq;
  return CHORUS_OK;
}

void node__submit_barriers(struct node *n) {
  struct sync_done *head = n->barrier_head, *tail = n->barrier_tail;
  if (head == NULL)
    return;
  n->barrier_head = n->barrier_tail = NULL;
  int rc = store_sync_request(n->store, n->barrier_seq, on_store_sync, head);
  if (rc != CHORUS_OK) {
    for (struct sync_done *d = head; d; d = d->next)
      d->status = rc == CHORUS_ENOMEM ? rc : CHORUS_ESYNCFAILED;
    sync_push_chain(n, head, tail);
  }
}

/* deliver_sync_results: hands each result of the chain @d to replication
 * and frees it. */
static void deliver_sync_results(struct node *n, struct sync_done *d) {
  while (d) {
    struct sync_done *next = d->next;
    if (!n->closing_all) {
      int st = d->status == CHORUS_OK ? CHORUS_OK : CHORUS_ESYNCFAILED;
      if (d->status == CHORUS_ESYNCFAILED)
        node_log(NODE_LOG_ERROR, "store", "sync failed: %s",
                 store_errmsg(n->store));
      int rc = repl_sync_done(n->repl, d->token, st, node__now(n),
                              node__wall_ms(), &n->rfx);
      if (rc != CHORUS_OK)
        node__fatal(n, rc, "repl_sync_done");
      if (repl_failed(n->repl))
        node__fatal(n, CHORUS_ESYNCFAILED,
                    "the store failed under replication");
    }
    chorus_free(d);
    d = next;
  }
}

static void on_sync_async(uv_async_t *h) {
  struct node *n = h->data;
  uv_mutex_lock(&n->sync_lock);
  struct sync_done *d = n->sync_head;
  n->sync_head = n->sync_tail = NULL;
  uv_mutex_unlock(&n->sync_lock);
  deliver_sync_results(n, d);
}

void node__complete_ready(struct node *n) {
  while (n->ready_head) {
    struct sync_done *d = n->ready_head;
    n->ready_head = n->ready_tail = NULL;
    deliver_sync_results(n, d); /* may queue more */
  }
  uv_idle_stop(&n->ready_idle);
}

/* ------------------------------------------------------------------------
 * Incoming frames
 * ------------------------------------------------------------------------ */

static bool is_client_request(uint8_t type) {
  switch (type) {
  case WIRE_GET:
  case WIRE_PUT:
  case WIRE_DELETE:
  case WIRE_COUNTER_ADD:
  case WIRE_COUNTER_READ:
  case WIRE_SET_ADD:
  case WIRE_SET_REMOVE:
  case WIRE_SET_READ:
    return true;
  default:
    return false;
  }
}

static void on_hello(struct conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  char text[CHORUS_ERRMSG_SIZE];
  if (m->type != WIRE_HELLO) {
    node__conn_reject(c, m->request_id, CHORUS_EPERM,
                      "the first message must be HELLO");
    return;
  }
  struct wire_hello_policy pol = {
      .min_version = WIRE_PROTOCOL_MIN,
      .max_version = WIRE_PROTOCOL_VERSION,
      .cluster = {(const uint8_t *)n->cfg.cluster, strlen(n->cfg.cluster)},
      .roles = (1u << WIRE_ROLE_CLIENT) | (1u << WIRE_ROLE_PEER),
      .node_id = n->cfg.id,
  };
  struct wire_msg reply;
  int rc = wire_hello_check(&m->hello, &pol, m->request_id, &reply, text);
  if (rc == CHORUS_OK && m->hello.role == WIRE_ROLE_PEER) {
    uint8_t mac[crypto_auth_BYTES];
    node__peer_mac(n, m->hello.node_id, mac);
    if (m->hello.credentials.len != sizeof mac ||
        sodium_memcmp(mac, m->hello.credentials.ptr, sizeof mac) != 0) {
      n->stats.auth_failed++;
      rc = CHORUS_EAUTH;
      snprintf(text, sizeof text,
               "peer credentials refused (another cluster key?)");
      wire_error_reply(&reply, m->request_id, rc, text);
    }
  }
  if (rc == CHORUS_OK && n->shutting_down) {
    rc = CHORUS_EUNAVAILABLE;
    snprintf(text, sizeof text, "node shutting down");
    wire_error_reply(&reply, m->request_id, rc, text);
  }
  if (rc != CHORUS_OK) {
    n->stats.refused++;
    node_log(NODE_LOG_WARN, NODE_MOD,
             "conn %" PRIu64 " (%s): HELLO refused: %s", c->serial, c->addr,
             text);
    (void)node__conn_send(c, &reply);
    c->close_after_flush = true;
    c->paused = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    return;
  }
  if (m->hello.role == WIRE_ROLE_PEER) {
    c->kind = CONN_PEER_IN;
    c->peer_id = m->hello.node_id;
    c->limits = WIRE_LIMITS_PEER;
    c->sp.max_frame = c->limits.max_frame; /* the next frame's limit */
  } else {
    c->kind = CONN_CLIENT;
    n->nclients++;
  }
  (void)node__conn_send(c, &reply);
}

static void on_client_msg(struct conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  if (m->type == WIRE_RING_QUERY) {
    node__answer_ring(c, m->request_id);
    return;
  }
  if (m->type == WIRE_STATUS_QUERY) {
    node__answer_status(c, m->request_id);
    return;
  }
  if (!is_client_request(m->type)) {
    char text[96];
    snprintf(text, sizeof text, "%s is not a client request",
             wire_type_name(m->type));
    node__conn_send_error(c, m->request_id, CHORUS_EPERM, text);
    return;
  }
  if (n->shutting_down) {
    node__conn_send_error(c, m->request_id, CHORUS_EUNAVAILABLE,
                          "node shutting down");
    return;
  }
  if (c->inflight >= n->cfg.max_inflight) {
    n->stats.overload++;
    node__conn_send_error(c, m->request_id, CHORUS_EOVERLOAD,
                          "too many requests in flight on this connection");
    return;
  }
  if (n->nfree == 0) {
    uint32_t cap = n->capslots ? 2 * n->capslots : 256;
    struct pending *s = chorus_realloc(n->slots, cap * sizeof *s);
    if (s == NULL) {
      node__conn_send_error(c, m->request_id, CHORUS_ENOMEM, "out of memory");
      return;
    }
    n->slots = s;
    uint32_t *f = chorus_realloc(n->free_slots, cap * sizeof *f);
    if (f == NULL) {
      node__conn_send_error(c, m->request_id, CHORUS_ENOMEM, "out of memory");
      return;
    }
    n->free_slots = f;
    for (uint32_t i = n->capslots; i < cap; i++) {
      n->slots[i] = (struct pending){0};
      n->free_slots[n->nfree++] = cap - 1 - (i - n->capslots);
    }
    n->capslots = n->nslots = cap;
  }
  uint32_t i = n->free_slots[--n->nfree];
  struct pending *p = &n->slots[i];
  p->used = true;
  p->gen++;
  p->c = c;
  p->request_id = m->request_id;
  c->inflight++;
  struct repl_origin o = {false, 0, ((uint64_t)p->gen << 32) | i};
  int rc = repl_client(n->repl, m, &o, node__now(n), node__wall_ms(), &n->rfx);
  if (rc != CHORUS_OK)
    node__fatal(n, rc, "repl_client");
}

static void on_peer_msg(struct conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  switch (m->type) {
  case WIRE_WELCOME:
    if (c->kind == CONN_PEER_OUT) {
      c->welcomed = true;
      c->peer_id = m->welcome.node_id;
    }
    return;
  case WIRE_ERROR:
    if (c->kind == CONN_PEER_OUT && !c->welcomed &&
        m->request_id == NODE_HELLO_REQUEST_ID) {
      node_log(NODE_LOG_WARN, NODE_MOD, "peer %s refused our HELLO: %.*s",
               c->addr, (int)m->error.text.len,
               (const char *)m->error.text.ptr);
      if (c->peer)
        c->peer->retry_at = node__now(n) + 10 * NODE_DIAL_BACKOFF_MS;
      node__conn_close(c);
      return;
    }
    break;
  case WIRE_GOSSIP:
    swim_packet(n, m->gossip.packet.ptr, m->gossip.packet.len);
    return;
  case WIRE_RING_QUERY:
    node__answer_ring(c, m->request_id);
    return;
  case WIRE_STATUS_QUERY:
    node__answer_status(c, m->request_id);
    return;
  default:
    break;
  }
  if (n->shutting_down || c->peer_id == 0)
    return;
  int rc =
      repl_peer(n->repl, c->peer_id, m, node__now(n), node__wall_ms(), &n->rfx);
  if (rc != CHORUS_OK)
    node__fatal(n, rc, "repl_peer");
}

void node__on_frame(struct conn *c, const uint8_t *body, size_t len) {
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
  if (c->kind == CONN_NEW)
    on_hello(c, &m);
  else if (c->kind == CONN_CLIENT)
    on_client_msg(c, &m);
  else
    on_peer_msg(c, &m);
  wire_msg_free(&m);
}

/* ------------------------------------------------------------------------
 * Shutdown
 * ------------------------------------------------------------------------ */

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* The last step: everything closes and uv_run returns. */
static void close_all(struct node *n) {
  n->closing_all = true;
  while (n->conns)
    node__conn_close(n->conns);
  if (n->listening)
    close_handle((uv_handle_t *)&n->listener);
  close_handle((uv_handle_t *)&n->udp);
  close_handle((uv_handle_t *)&n->swim_timer);
  close_handle((uv_handle_t *)&n->repl_timer);
  close_handle((uv_handle_t *)&n->join_timer);
  close_handle((uv_handle_t *)&n->leave_timer);
  close_handle((uv_handle_t *)&n->flush_check);
  close_handle((uv_handle_t *)&n->ready_idle);
  close_handle((uv_handle_t *)&n->sigint);
  close_handle((uv_handle_t *)&n->sigterm);
  uv_mutex_lock(&n->sync_lock);
  n->async_closed = true;
  uv_mutex_unlock(&n->sync_lock);
  close_handle((uv_handle_t *)&n->sync_async);
}

static void on_leave_timer(uv_timer_t *t) {
  struct node *n = t->data;
  node_log(NODE_LOG_INFO, NODE_MOD, "left the cluster; closing");
  close_all(n);
}

/* Graceful shutdown: stop accepting, fail in-flight client requests, make
 * every write durable, leave the gossip, and give the LEFT update time
 * to spread (swim.h: keep ticking for a few probe intervals). */
static void shutdown_begin(struct node *n, int signum) {
  if (n->shutting_down) {
    node_log(NODE_LOG_WARN, NODE_MOD, "signal %d again: closing now", signum);
    close_all(n);
    return;
  }
  n->shutting_down = true;
  node_log(NODE_LOG_INFO, NODE_MOD, "signal %d: shutting down", signum);
  if (n->listening) {
    close_handle((uv_handle_t *)&n->listener);
    n->listening = false;
  }
  for (uint32_t i = 0; i < n->nslots; i++) {
    struct pending *p = &n->slots[i];
    if (p->used && p->c) {
      node__conn_send_error(p->c, p->request_id, CHORUS_ECANCELED,
                            "node shutting down; the request may or may not "
                            "have been applied");
      p->c->inflight--;
      p->c = NULL;
    }
  }
  for (struct conn *c = n->conns; c; c = c->next)
    if (c->kind == CONN_CLIENT || c->kind == CONN_NEW) {
      c->close_after_flush = true;
      node__mark_dirty(c);
    }
  int rc = store_sync(n->store);
  if (rc != CHORUS_OK)
    node_log(NODE_LOG_ERROR, "store", "final sync: %s", store_errmsg(n->store));
  else
    node_log(NODE_LOG_INFO, "store", "synced up to seq %" PRIu64,
             store_durable_seq(n->store));
  rc = swim_leave(n->swim, node__now(n), node__wall_ms());
  if (rc != CHORUS_OK)
    node_log(NODE_LOG_WARN, "swim", "leave: %s", chorus_strerror(rc));
  after_swim(n);
  uv_timer_start(&n->leave_timer, on_leave_timer, n->cfg.leave_ms, 0);
}

static void on_signal(uv_signal_t *h, int signum) {
  shutdown_begin(h->data, signum);
}

/* ------------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------------ */

/* The data folder remembers whose it is: node name, id and cluster, written
 * on first start into the META space, checked on every later one. */
static int check_identity(struct node *n, char *errmsg) {
  char want[512];
  int wl = snprintf(want, sizeof want,
                    "chorus node identity v1\nid=%016" PRIx64
                    "\nname=%s\ncluster=%s\n",
                    n->cfg.id, n->cfg.name, n->cfg.cluster);
  void *val = NULL;
  size_t vlen = 0;
  int rc = store_get(n->store, STORE_META, IDENTITY_KEY, strlen(IDENTITY_KEY),
                     &val, &vlen);
  if (rc == CHORUS_ENOTFOUND) {
    rc = store_put(n->store, STORE_META, IDENTITY_KEY, strlen(IDENTITY_KEY),
                   want, (size_t)wl, NULL);
    if (rc == CHORUS_OK)
      rc = store_sync(n->store);
    if (rc != CHORUS_OK)
      return chorus_errf(errmsg, rc, "data folder %s: writing identity: %s",
                         n->cfg.data, store_errmsg(n->store));
    return CHORUS_OK;
  }
  if (rc != CHORUS_OK)
    return chorus_errf(errmsg, rc, "data folder %s: reading identity: %s",
                       n->cfg.data, store_errmsg(n->store));
  bool same = vlen == (size_t)wl && memcmp(val, want, vlen) == 0;
  if (!same) {
    char have[512];
    size_t hl = vlen < sizeof have - 1 ? vlen : sizeof have - 1;
    memcpy(have, val, hl);
    have[hl] = '\0';
    for (char *p = have; *p; p++)
      if (*p == '\n')
        *p = ' ';
    chorus_free(val);
    return chorus_errf(
        errmsg, CHORUS_ECLUSTER,
        "data folder %s belongs to another node or cluster "
        "(%s); this is node \"%s\" (id %016" PRIx64 ") of cluster \"%s\"",
        n->cfg.data, have, n->cfg.name, n->cfg.id, n->cfg.cluster);
  }
  chorus_free(val);
  return CHORUS_OK;
}

static int open_data(struct node *n, char *errmsg) {
  struct stat st;
  if (stat(n->cfg.data, &st) != 0) {
    if (errno != ENOENT || mkdir(n->cfg.data, 0755) != 0)
      return chorus_errf(errmsg, chorus_error_from_errno(errno),
                         "data folder %s: cannot create: %s", n->cfg.data,
                         strerror(errno));
  } else if (!S_ISDIR(st.st_mode)) {
    return chorus_errf(errmsg, CHORUS_EPERM, "data folder %s: not a directory",
                       n->cfg.data);
  }
  if (access(n->cfg.data, W_OK | X_OK) != 0)
    return chorus_errf(errmsg, CHORUS_EPERM, "data folder %s: not writable: %s",
                       n->cfg.data, strerror(errno));
  struct store_rocksdb_options o = {.path = n->cfg.data};
  char why[CHORUS_ERRMSG_SIZE] = "";
  int rc = store_rocksdb_open(&o, &n->store, why);
  if (rc == CHORUS_EBUSY)
    return chorus_errf(errmsg, rc,
                       "data folder %s is in use by another process: %s",
                       n->cfg.data, why);
  if (rc != CHORUS_OK)
    return chorus_errf(errmsg, rc, "data folder %s: %s", n->cfg.data, why);
  return check_identity(n, errmsg);
}

static int open_ports(struct node *n, char *errmsg) {
  struct sockaddr_storage sa;
  if (node__resolve(n->cfg.listen, &sa) != CHORUS_OK)
    return chorus_errf(errmsg, CHORUS_EINVAL, "--listen %s: cannot resolve",
                       n->cfg.listen);
  n->listening = true;
  int rc = uv_tcp_bind(&n->listener, (const struct sockaddr *)&sa, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&n->listener, 511, node__on_accept);
  if (rc < 0)
    return chorus_errf(errmsg, rc == UV_EADDRINUSE ? CHORUS_EBUSY : CHORUS_EIO,
                       "listen on %s (tcp): %s", n->cfg.listen,
                       rc == UV_EADDRINUSE ? "port already in use"
                                           : uv_strerror(rc));
  rc = uv_udp_bind(&n->udp, (const struct sockaddr *)&sa, 0);
  if (rc == 0)
    rc = uv_udp_recv_start(&n->udp, on_udp_alloc, on_udp);
  if (rc < 0)
    return chorus_errf(errmsg, rc == UV_EADDRINUSE ? CHORUS_EBUSY : CHORUS_EIO,
                       "listen on %s (udp gossip): %s", n->cfg.listen,
                       rc == UV_EADDRINUSE ? "port already in use"
                                           : uv_strerror(rc));
  return CHORUS_OK;
}

static int open_logic(struct node *n, char *errmsg) {
  const struct chorus_tracer *tracer =
      node_log_enabled(NODE_LOG_DEBUG) ? &node_log_tracer : NULL;
  struct swim_config sc;
  memset(&sc, 0, sizeof sc);
  sc.id = n->cfg.id;
  snprintf(sc.meta.addr, sizeof sc.meta.addr, "%s", n->cfg.advertise);
  snprintf(sc.meta.dc, sizeof sc.meta.dc, "%s", n->cfg.dc);
  snprintf(sc.meta.rack, sizeof sc.meta.rack, "%s", n->cfg.rack);
  sc.meta.vnodes = 0;
  sc.meta.ownership = RING_NORMAL;
  snprintf(sc.cluster, sizeof sc.cluster, "%s", n->cfg.cluster);
  memcpy(sc.key, n->cfg.key, SWIM_KEY_BYTES);
  if (n->cfg.profile_local)
    swim_timing_local(&sc.timing);
  else
    swim_timing_lan(&sc.timing);
  randombytes_buf(&sc.seed, sizeof sc.seed);
  sc.clock_bound_ms = 500;
  sc.fx = (struct swim_effects){n, swim_fx_send, swim_fx_changed};
  sc.tracer = tracer;
  int rc = swim_new(&sc, &n->swim);
  if (rc != CHORUS_OK)
    return chorus_errf(errmsg, rc, "gossip: %s", chorus_strerror(rc));
  struct ring_snapshot *ring = NULL;
  char why[CHORUS_ERRMSG_SIZE] = "";
  rc = swim_ring_snapshot(n->swim, &n->cfg.replication, &ring, why);
  if (rc != CHORUS_OK)
    return chorus_errf(errmsg, rc, "ring: %s", why);
  ring_rcu_init(&n->ring_pub, ring);
  struct repl_config rc_;
  repl_config_defaults(&rc_, n->cfg.id);
  snprintf(rc_.dc, sizeof rc_.dc, "%s", n->cfg.dc);
  randombytes_buf(&rc_.seed, sizeof rc_.seed);
  rc_.timeout_ms = n->cfg.timeout_ms;
  rc_.tracer = tracer;
  rc = repl_new(&rc_, n->store, ring, &n->repl);
  if (rc != CHORUS_OK)
    return chorus_errf(errmsg, rc, "replication: %s", chorus_strerror(rc));
  n->rfx = (struct repl_effects){n, fx_send, fx_reply, fx_timer, fx_sync};
  /* Peer credentials use their own key, derived from the cluster key. */
  static const char tag[] = "chorus peer hello v1";
  crypto_generichash(n->peer_auth_key, sizeof n->peer_auth_key,
                     (const unsigned char *)tag, sizeof tag - 1, n->cfg.key,
                     SWIM_KEY_BYTES);
  return CHORUS_OK;
}

int node_open(const struct node_config *cfg, struct node **out, char *errmsg) {
  *out = NULL;
  if (sodium_init() < 0)
    return chorus_errf(errmsg, CHORUS_EINTERNAL, "libsodium failed to start");
  struct node *n = chorus_calloc(1, sizeof *n);
  if (n == NULL)
    return chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
  n->cfg = *cfg;
  *out = n;
  signal(SIGPIPE, SIG_IGN);
  ring_rcu_register_thread();
  uv_loop_init(&n->loop);
  uv_mutex_init(&n->sync_lock);
  uv_timer_init(&n->loop, &n->swim_timer);
  uv_timer_init(&n->loop, &n->repl_timer);
  uv_timer_init(&n->loop, &n->join_timer);
  uv_timer_init(&n->loop, &n->leave_timer);
  uv_check_init(&n->loop, &n->flush_check);
  uv_idle_init(&n->loop, &n->ready_idle);
  uv_async_init(&n->loop, &n->sync_async, on_sync_async);
  uv_signal_init(&n->loop, &n->sigint);
  uv_signal_init(&n->loop, &n->sigterm);
  uv_tcp_init(&n->loop, &n->listener);
  uv_udp_init(&n->loop, &n->udp);
  n->listener.data = n->udp.data = n;
  n->swim_timer.data = n->repl_timer.data = n->join_timer.data = n;
  n->leave_timer.data = n->flush_check.data = n->sync_async.data = n;
  n->ready_idle.data = n;
  n->sigint.data = n->sigterm.data = n;
  int rc = open_ports(n, errmsg);
  if (rc == CHORUS_OK)
    rc = open_data(n, errmsg);
  if (rc == CHORUS_OK)
    rc = open_logic(n, errmsg);
  return rc;
}

int node_run(struct node *n) {
  uv_check_start(&n->flush_check, node__on_check);
  uv_signal_start(&n->sigint, on_signal, SIGINT);
  uv_signal_start(&n->sigterm, on_signal, SIGTERM);
  if (n->cfg.key_derived)
    node_log(NODE_LOG_WARN, NODE_MOD,
             "no --cluster-key: the gossip key is derived from the cluster "
             "name, which anyone can guess");
  node_log(NODE_LOG_INFO, NODE_MOD,
           "node %s (id %016" PRIx64 ") of cluster \"%s\" listening on %s "
           "(advertised %s), data %s, replicas %s, durability %s, profile %s",
           n->cfg.name, n->cfg.id, n->cfg.cluster, n->cfg.listen,
           n->cfg.advertise, n->cfg.data, n->cfg.replicas,
           n->cfg.durability == NODE_DURABILITY_GROUP ? "group" : "none",
           n->cfg.profile_local ? "local" : "lan");
  int rc = repl_start(n->repl, node__now(n), node__wall_ms(), &n->rfx);
  if (rc != CHORUS_OK)
    node__fatal(n, rc, "repl_start");
  rc = swim_start(n->swim, node__now(n));
  if (rc != CHORUS_OK)
    node__fatal(n, rc, "swim_start");
  after_swim(n);
  if (n->cfg.nseeds) {
    join_seeds(n);
    uv_timer_start(&n->join_timer, on_join_timer, JOIN_RETRY_MS, JOIN_RETRY_MS);
  }
  uv_run(&n->loop, UV_RUN_DEFAULT);
  return n->exit_status;
}

void node_free(struct node *n) {
  if (n == NULL)
    return;
  if (!n->closing_all)
    close_all(n);
  uv_run(&n->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
  repl_free(n->repl);
  swim_free(n->swim);
  /* Barriers still pending complete with CHORUS_ECANCELED on close. */
  store_close(n->store);
  /* Barriers never submitted and results never delivered (the loop
   * stopped first) go the same way. */
  if (n->barrier_tail) {
    n->barrier_tail->next = n->sync_head;
    n->sync_head = n->barrier_head;
    n->barrier_head = n->barrier_tail = NULL;
  }
  if (n->ready_tail) {
    n->ready_tail->next = n->sync_head;
    n->sync_head = n->ready_head;
    n->ready_head = n->ready_tail = NULL;
  }
  struct sync_done *d = n->sync_head;
  while (d) {
    struct sync_done *next = d->next;
    chorus_free(d);
    d = next;
  }
  if (n->ring_pub.current)
    ring_rcu_fini(&n->ring_pub);
  ring_rcu_unregister_thread();
  uv_loop_close(&n->loop);
  uv_mutex_destroy(&n->sync_lock);
  chorus_free(n->mev);
  chorus_free(n->peers);
  chorus_free(n->slots);
  chorus_free(n->free_slots);
  chorus_free(n->heap);
  chorus_free(n);
}
