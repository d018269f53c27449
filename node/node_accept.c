/* node_accept.c: chorusd's listener and connection budgets: accepting,
 * the reserve of pending handshakes, pausing when descriptors run out, and
 * the deadlines of handshakes, idle clients and slow senders (node.h,
 * CONNECTION BUDGETS). All of it is I/O policy, so none of it is in the
 * sans-I/O core.
 *
 * HOW IT WORKS
 *
 * Budgets. A connection is NEW until its HELLO; then a client, or a peer.
 * The three are budgeted apart, so that the cheap kind (a TCP connect that
 * never says anything) cannot take what the expensive kinds earned:
 *
 *   NEW     at most --max-pending-handshakes (max-connections / 4). One
 *           more is admitted by closing the *oldest* pending one, so a
 *           flood of silent sockets evicts itself. Only a connection that
 *           has been through a whole poll phase since its accept may be
 *           evicted (evictable()): a real client's HELLO follows its
 *           connect at once, so by then it has been read and the client
 *           is no longer pending; only silence is evicted. When the
 *           oldest is younger than that, accepting waits for the next
 *           loop iteration (the backlog keeps the rest).
 *   client  at most --max-connections sessions; one more HELLO is answered
 *           ERROR EOVERLOAD and closed (node_peer.c).
 *   peer    never refused for either budget: peers authenticate with the
 *           cluster key, and a node that cannot reach its peers cannot
 *           serve anyone.
 *
 * Before HELLO a frame may be NODE_HELLO_MAX_FRAME (8 KiB) long, so the
 * queue of pending handshakes holds at most cap x 8 KiB of our memory.
 *
 * Descriptors. libuv's own listener, when accept fails with EMFILE, closes
 * a reserved descriptor, accepts and closes everything waiting, and tells
 * its user nothing: the clients see resets, the log says nothing. So the
 * listening socket is ours (a uv_poll on it) and so is the decision: on
 * EMFILE or ENFILE (or the kernel's ENOBUFS/ENOMEM) the oldest pending
 * handshake, if evictable, is closed to make room; if the pending ones
 * are all younger, accepting waits for the next iteration (which reads
 * their HELLOs); with none pending, accepting pauses (the poll stops;
 * connections wait in the kernel's backlog, neither reset nor dropped)
 * and is retried every NODE_ACCEPT_RETRY_MS. A shortage is logged once as
 * a warning when it starts, with the counts, and once when a calm second
 * ends it, with what it cost.
 *
 * Deadlines, all from uv_now, checked by one timer (sweep) every second
 * (or a quarter of the shortest deadline): O(connections) per tick.
 *
 *   handshake  NEW for --handshake-ms (5 s): closed. The queue is in
 *              accept order, so the sweep pops expired ones off its head.
 *   idle       a client with nothing in flight and no byte read or
 *              written for --idle-ms (5 min; 0 never): closed. A client
 *              that stopped reading its answers makes no progress either
 *              (its writes never complete), so it is idle too.
 *   frame      a frame that has started must keep --min-frame-rate bytes
 *              a second, measured over the frame since its first byte,
 *              judged after NODE_FRAME_GRACE_MS; else the connection is
 *              closed, with the reason logged. Clients and handshakes
 *              only; a connection we stopped reading (back-pressure) is
 *              not judged, and is measured afresh when reading resumes.
 *   http       an HTTP connection (node_http.c) whose request head is
 *              not whole within --http-timeout-ms (5 s) of its accept,
 *              or whose answer made no progress for as long: closed.
 *
 * Deadlines close without an ERROR frame: the other side is, by then, not
 * reading or not sending, and a goodbye it may never read is not worth a
 * connection held open for its write.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <uv.h>

#include "node_int.h"

#define NODE_ACCEPT_BATCH 32u     /* accepts per listener wakeup, at most */
#define NODE_ACCEPT_RETRY_MS 100u /* paused: accepting is retried after */
#define NODE_FD_CALM_MS 1000u     /* a shortage ends after this calm */
#define NODE_FRAME_GRACE_MS 3000u /* no frame is judged slow before */
#define NODE_SWEEP_MAX_MS 1000u   /* the sweep runs at least this often */
#define NODE_STALL_MS 1000u       /* a sweep this late skips its checks */

/* ------------------------------------------------------------------------
 * Budgets
 * ------------------------------------------------------------------------ */

/* evictable: the oldest pending handshake has been through a whole poll
 * phase since its accept: whatever it sent has been read, and it sent no
 * HELLO. */
static bool evictable(const struct node *n) {
  const struct node_conn *c = n->pend_head;
  return c != NULL && n->iterations >= c->accept_iter + 2;
}

/* evict_oldest: closes the oldest pending handshake to admit a newer one
 * (a flood of silent connections then costs only the flood). */
static void evict_oldest(struct node *n, const char *why) {
  struct node_conn *c = n->pend_head;
  assert(evictable(n) && c->kind == NODE_CONN_NEW);
  n->stats.pending_evicted++;
  node_log(NODE_LOG_DEBUG, NODE_MOD,
           "conn %" PRIu64 " (%s): closed before its HELLO: %s", c->serial,
           c->addr, why);
  node__conn_close(c);
}

static void set_addr(struct node_conn *c) {
  struct sockaddr_storage sa;
  int salen = sizeof sa;
  char host[48] = "?";
  int port = 0;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &salen) == 0) {
    if (sa.ss_family == AF_INET) {
      uv_ip4_name((struct sockaddr_in *)&sa, host, sizeof host);
      port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    } else if (sa.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&sa, host, sizeof host);
      port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    }
  }
  snprintf(c->addr, sizeof c->addr, "%s:%d", host, port);
}

struct node_conn *node__conn_adopt(struct node *n, enum node_conn_kind kind,
                                   int fd) {
  struct node_conn *c = node__conn_new(n, kind);
  if (c == NULL) {
    close(fd);
    return NULL;
  }
  int rc = uv_tcp_open(&c->tcp, (uv_os_sock_t)fd);
  if (rc < 0) {
    node_log(NODE_LOG_WARN, NODE_MOD, "accept: %s", uv_strerror(rc));
    close(fd);
    node__conn_close(c);
    return NULL;
  }
  c->connected = true;
  c->accept_iter = n->iterations;
  set_addr(c);
  (void)uv_tcp_nodelay(&c->tcp, 1);
  node__conn_read_start(c);
  return c;
}

/* admit: the accepted descriptor @fd becomes a NODE_CONN_NEW connection at
 * the tail of the handshake queue (on_listener made room for it). */
static void admit(struct node *n, int fd) {
  assert(n->npending < n->cfg.max_pending);
  if (node__conn_adopt(n, NODE_CONN_NEW, fd) != NULL)
    n->stats.accepted++;
}

/* ------------------------------------------------------------------------
 * Accepting, and running out of descriptors
 * ------------------------------------------------------------------------ */

static void on_listener(uv_poll_t *h, int status, int events);

static void on_accept_retry(uv_timer_t *t) {
  struct node *n = t->data;
  n->accept_paused = false;
  if (n->listening)
    uv_poll_start(&n->listener, UV_READABLE, on_listener);
}

static void accept_pause(struct node *n) {
  if (n->accept_paused || !n->listening)
    return;
  n->accept_paused = true;
  uv_poll_stop(&n->listener);
  uv_timer_start(&n->accept_timer, on_accept_retry, NODE_ACCEPT_RETRY_MS, 0);
}

/* accept_short: accept failed for lack of descriptors (or kernel memory,
 * @err). True when room was made (the oldest pending handshake closed)
 * and accepting may go on; false when it waits: for the next iteration
 * (young pending handshakes are read first) or, with none pending, for
 * the retry timer. */
static bool accept_short(struct node *n, int err) {
  n->stats.fd_exhausted++;
  n->fd_episode_fails++;
  n->fd_last_fail = node__now(n);
  if (!n->fd_short) {
    n->fd_short = true;
    struct rlimit rl = {0};
    (void)getrlimit(RLIMIT_NOFILE, &rl);
    node_log(NODE_LOG_WARN, NODE_MOD,
             "accept: %s, with %" PRIu32 " connections open (%" PRIu32
             " clients, %" PRIu32 " pending handshakes, descriptor limit "
             "%llu): closing the oldest pending handshakes, else pausing "
             "accept",
             strerror(err), n->nconns, n->nclients, n->npending,
             (unsigned long long)rl.rlim_cur);
  }
  if (evictable(n)) {
    n->fd_episode_evicted++;
    evict_oldest(n, "out of descriptors");
    return true;
  }
  if (n->pend_head == NULL)
    accept_pause(n);
  return false;
}

/* accept_calm: the sweep ends a shortage after NODE_FD_CALM_MS without a
 * failed accept. */
static void accept_calm(struct node *n, chorus_ms now) {
  if (!n->fd_short || n->accept_paused ||
      now - n->fd_last_fail < NODE_FD_CALM_MS)
    return;
  node_log(NODE_LOG_INFO, NODE_MOD,
           "accept: descriptors available again, after %" PRIu64
           " failed accepts and %" PRIu64 " pending handshakes closed to "
           "make room",
           n->fd_episode_fails, n->fd_episode_evicted);
  n->fd_short = false;
  n->fd_episode_fails = n->fd_episode_evicted = 0;
}

static void on_listener(uv_poll_t *h, int status, int events) {
  struct node *n = h->data;
  (void)events;
  if (status < 0) {
    node_log(NODE_LOG_WARN, NODE_MOD, "listener: %s", uv_strerror(status));
    accept_pause(n);
    return;
  }
  for (unsigned i = 0; i < NODE_ACCEPT_BATCH; i++) {
    if (!n->listening || n->accept_paused || n->shutting_down)
      return;
    /* Room first, so the reserve is never exceeded. Should the backlog
     * turn out empty (EAGAIN), that eviction was early, never wrong: it
     * closed a connection silent for a whole poll phase, at most one per
     * wakeup. */
    if (n->npending >= n->cfg.max_pending) {
      if (!evictable(n))
        return; /* the next iteration reads them first */
      evict_oldest(n, "the reserve of pending handshakes is full");
    }
    int fd = accept4(n->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      admit(n, fd);
      continue;
    }
    int err = errno;
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
      return;
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
      continue; /* that connection is gone; the next may be fine */
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
      if (!accept_short(n, err))
        return;
      continue;
    default:
      node_log(NODE_LOG_WARN, NODE_MOD, "accept: %s", strerror(err));
      accept_pause(n);
      return;
    }
  }
}

int node__listen_socket(const struct sockaddr *sa, int *out) {
  socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  /* As libuv's uv_tcp_bind: a restart may bind while old connections
   * linger in TIME_WAIT. */
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, sa, len) != 0 || listen(fd, NODE_LISTEN_BACKLOG) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  *out = fd;
  return 0;
}

/* ------------------------------------------------------------------------
 * Side listeners (HTTP, RESP)
 * ------------------------------------------------------------------------ */

#define NODE_SIDE_ACCEPT_BATCH 64u /* accepts per listener wakeup */
#define NODE_SIDE_RETRY_MS 100u    /* accepting resumes after a pause */

static void on_side_listener(uv_poll_t *h, int status, int events);

static void on_side_retry(uv_timer_t *t) {
  struct node_side *s = t->data;
  s->paused = false;
  if (s->listening)
    uv_poll_start(&s->poll, UV_READABLE, on_side_listener);
}

static void side_pause(struct node_side *s) {
  if (s->paused || !s->listening)
    return;
  s->paused = true;
  uv_poll_stop(&s->poll);
  uv_timer_start(&s->timer, on_side_retry, NODE_SIDE_RETRY_MS, 0);
}

static void on_side_listener(uv_poll_t *h, int status, int events) {
  struct node_side *s = h->data;
  struct node *n = s->n;
  (void)events;
  if (status < 0) {
    node_log(NODE_LOG_WARN, NODE_MOD, "%s listener: %s", s->name,
             uv_strerror(status));
    side_pause(s);
    return;
  }
  for (unsigned i = 0; i < NODE_SIDE_ACCEPT_BATCH; i++) {
    if (!s->listening || s->paused || n->shutting_down)
      return;
    int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO)
        continue;
      if (err != EAGAIN && err != EWOULDBLOCK) {
        n->stats.fd_exhausted += err == EMFILE || err == ENFILE;
        side_pause(s);
      }
      return;
    }
    s->admit(n, fd);
  }
}

void node__side_init(struct node *n, struct node_side *s, const char *name,
                     void (*on_accept)(struct node *n, int fd)) {
  *s = (struct node_side){.n = n, .name = name, .admit = on_accept, .fd = -1};
  uv_timer_init(&n->loop, &s->timer);
  s->timer.data = s;
}

int node__side_listen(struct node_side *s, const struct sockaddr *sa) {
  int fd;
  int rc = node__listen_socket(sa, &fd);
  if (rc < 0)
    return rc;
  rc = uv_poll_init_socket(&s->n->loop, &s->poll, fd);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  s->poll.data = s;
  s->fd = fd;
  s->listening = true;
  rc = uv_poll_start(&s->poll, UV_READABLE, on_side_listener);
  if (rc < 0)
    node__side_stop(s);
  return rc;
}

static void on_side_closed(uv_handle_t *h) {
  struct node_side *s = h->data;
  close(s->fd);
  s->fd = -1;
}

void node__side_stop(struct node_side *s) {
  if (!s->listening)
    return;
  s->listening = false;
  uv_close((uv_handle_t *)&s->poll, on_side_closed);
  uv_timer_stop(&s->timer);
}

void node__side_close(struct node_side *s) {
  node__side_stop(s);
  if (!uv_is_closing((uv_handle_t *)&s->timer))
    uv_close((uv_handle_t *)&s->timer, NULL);
}

int node__listen(struct node *n, const struct sockaddr *sa) {
  int fd;
  int rc = node__listen_socket(sa, &fd);
  if (rc < 0)
    return rc;
  rc = uv_poll_init_socket(&n->loop, &n->listener, fd);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  n->listener.data = n;
  n->listen_fd = fd;
  n->listening = true;
  rc = uv_poll_start(&n->listener, UV_READABLE, on_listener);
  if (rc < 0)
    node__listen_stop(n);
  return rc;
}

static void on_listener_closed(uv_handle_t *h) {
  struct node *n = h->data;
  close(n->listen_fd);
  n->listen_fd = -1;
}

void node__listen_stop(struct node *n) {
  if (!n->listening)
    return;
  n->listening = false;
  uv_close((uv_handle_t *)&n->listener, on_listener_closed);
  uv_timer_stop(&n->accept_timer);
}

/* ------------------------------------------------------------------------
 * Deadlines
 * ------------------------------------------------------------------------ */

static chorus_ms sweep_period(const struct node *n) {
  chorus_ms p = NODE_SWEEP_MAX_MS;
  if (n->cfg.handshake_ms / 4 < p)
    p = n->cfg.handshake_ms / 4;
  if (n->cfg.idle_ms && n->cfg.idle_ms / 4 < p)
    p = n->cfg.idle_ms / 4;
  if (n->http.fd >= 0 && n->cfg.http_timeout_ms / 4 < p)
    p = n->cfg.http_timeout_ms / 4;
  return p < 10 ? 10 : p;
}

/* expire_handshakes: the queue is in accept order, so the expired ones are
 * at its head. */
static void expire_handshakes(struct node *n, chorus_ms now) {
  struct node_conn *c;
  while ((c = n->pend_head) != NULL &&
         now - c->opened_at >= n->cfg.handshake_ms) {
    n->stats.handshake_timeouts++;
    node_log(NODE_LOG_DEBUG, NODE_MOD,
             "conn %" PRIu64 " (%s): no HELLO within %" PRIu32 " ms: closing",
             c->serial, c->addr, n->cfg.handshake_ms);
    node__conn_close(c);
  }
}

static bool idle_expired(const struct node *n, const struct node_conn *c,
                         chorus_ms now) {
  return (c->kind == NODE_CONN_CLIENT || c->kind == NODE_CONN_RESP) &&
         n->cfg.idle_ms != 0 && c->inflight == 0 &&
         now - c->last_active >= n->cfg.idle_ms;
}

/* too_slow: a frame has been arriving for at least the grace period at
 * less than --min-frame-rate, averaged since its first byte. */
static bool too_slow(const struct node *n, const struct node_conn *c,
                     chorus_ms now) {
  if (n->cfg.min_frame_rate == 0 || c->paused || c->close_after_flush)
    return false;
  if (c->kind == NODE_CONN_RESP) {
    /* Bytes of a command not whole yet; complete ones waiting for room
     * in the pipeline are ours to read, not the sender's. */
    if (c->in.len == 0 || node__resp_held(c))
      return false;
  } else if ((c->kind != NODE_CONN_NEW && c->kind != NODE_CONN_CLIENT) ||
             wire_splitter_buffered(&c->sp) == 0) {
    return false;
  }
  chorus_ms elapsed = now - c->frame_start;
  return elapsed >= NODE_FRAME_GRACE_MS &&
         c->frame_bytes * 1000 < (uint64_t)n->cfg.min_frame_rate * elapsed;
}

/* http_expired: an HTTP request head not complete within
 * --http-timeout-ms of the accept, or an answer that made no progress
 * (no byte written) for as long: the client is slow or gone. */
static bool http_expired(const struct node *n, const struct node_conn *c,
                         chorus_ms now) {
  if (c->kind != NODE_CONN_HTTP)
    return false;
  chorus_ms since = c->http_answered ? c->last_active : c->opened_at;
  return now - since >= n->cfg.http_timeout_ms;
}

static void sweep(struct node *n, chorus_ms now) {
  expire_handshakes(n, now);
  struct node_conn *next;
  for (struct node_conn *c = n->conns; c; c = next) {
    next = c->next; /* closing unlinks c, and nothing else */
    if (idle_expired(n, c, now)) {
      n->stats.idle_timeouts++;
      node_log(NODE_LOG_DEBUG, NODE_MOD,
               "conn %" PRIu64 " (%s): idle for %" PRIu64 " ms: closing",
               c->serial, c->addr, now - c->last_active);
      node__conn_close(c);
    } else if (http_expired(n, c, now)) {
      n->stats.http_timeouts++;
      node_log(NODE_LOG_DEBUG, NODE_MOD,
               "http conn %" PRIu64 " (%s): %s within %" PRIu32 " ms: closing",
               c->serial, c->addr,
               c->http_answered ? "answer not read" : "no whole request",
               n->cfg.http_timeout_ms);
      node__conn_close(c);
    } else if (too_slow(n, c, now)) {
      n->stats.slow_senders++;
      node_log(NODE_LOG_INFO, NODE_MOD,
               "conn %" PRIu64 " (%s): closing a slow sender: %" PRIu64
               " bytes of a frame in %" PRIu64 " ms, under %" PRIu32 " bytes/s",
               c->serial, c->addr, c->frame_bytes, now - c->frame_start,
               n->cfg.min_frame_rate);
      node__conn_close(c);
    }
  }
}

static void on_conn_timer(uv_timer_t *t) {
  struct node *n = t->data;
  chorus_ms now = node__now(n), last = n->last_sweep;
  n->last_sweep = now;
  accept_calm(n, now);
  /* A loop that stalled (a long compaction, a debugger) judges nobody on
   * its first tick after: the bytes it has not read yet may be on time. */
  if (now - last > sweep_period(n) + NODE_STALL_MS)
    return;
  sweep(n, now);
}

/* ------------------------------------------------------------------------
 * Handles
 * ------------------------------------------------------------------------ */

void node__accept_init(struct node *n) {
  n->listen_fd = -1;
  uv_timer_init(&n->loop, &n->conn_timer);
  uv_timer_init(&n->loop, &n->accept_timer);
  n->conn_timer.data = n->accept_timer.data = n;
}

void node__accept_start(struct node *n) {
  chorus_ms p = sweep_period(n);
  n->last_sweep = node__now(n);
  uv_timer_start(&n->conn_timer, on_conn_timer, p, p);
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

void node__accept_close(struct node *n) {
  node__listen_stop(n);
  close_handle((uv_handle_t *)&n->conn_timer);
  close_handle((uv_handle_t *)&n->accept_timer);
}
