/* node_conn.c: chorusd's connections: buffered, coalesced output with
 * back-pressure, framed input, accept and close (node.h). Frames go up
 * through struct node's on_frame hook, closes through on_conn_closed: this
 * layer knows nothing of what the frames mean. */
#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "chorus_alloc.h"
#include "node_int.h"

/* ------------------------------------------------------------------------
 * Buffers
 * ------------------------------------------------------------------------ */

static int buf_reserve(struct node_buf *b, size_t more) {
  if (b->cap - b->len >= more)
    return CHORUS_OK;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len < more)
    cap *= 2;
  uint8_t *p = chorus_realloc(b->data, cap);
  if (p == NULL)
    return CHORUS_ENOMEM;
  b->data = p;
  b->cap = cap;
  return CHORUS_OK;
}

static void buf_free(struct node_buf *b) {
  chorus_free(b->data);
  memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------------
 * Connections: output
 * ------------------------------------------------------------------------ */

static size_t conn_unsent(const struct node_conn *c) {
  return c->out.len + c->wr.len;
}

void node__mark_dirty(struct node_conn *c) {
  if (!c->dirty) {
    c->dirty = true;
    c->dirty_next = c->n->dirty;
    c->n->dirty = c;
  }
}

/* conn_send: encodes @m at the end of @c's output, in the form the
 * connection's protocol version knows (wire_reply_for). A client over its
 * output bound stops being read (back-pressure); a peer over its bound
 * loses the message (replication tolerates loss).
 *
 * Nothing above the peer frame leaves (CHORUS_ETOOBIG, counted): peers read
 * with that limit, and so does libchorus for replies, and a receiver closes
 * the connection on a frame over its limit, taking everything else in
 * flight on it along. Refused here, the message alone is lost: its request
 * fails or times out like any other. */
int node__conn_send(struct node_conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  if (c->closing)
    return CHORUS_ECLOSED;
  struct wire_msg low;
  char text[CHORUS_ERRMSG_SIZE];
  if (wire_reply_for(m, c->version, &low, text))
    m = &low;
  size_t need = wire_encoded_size(m);
  if (need > WIRE_FRAME_PREFIX + WIRE_MAX_FRAME_PEER) {
    n->stats.too_big++;
    node_log(NODE_LOG_WARN, NODE_MOD,
             "conn %" PRIu64 " (%s): %s of %zu bytes not sent: over the "
             "%u-byte frame limit",
             c->serial, c->addr, wire_type_name(m->type), need,
             WIRE_MAX_FRAME_PEER);
    return CHORUS_ETOOBIG;
  }
  bool peer = c->kind == NODE_CONN_PEER_IN || c->kind == NODE_CONN_PEER_OUT;
  if (peer && conn_unsent(c) + need > n->cfg.peer_out_limit) {
    n->stats.peer_dropped++;
    return CHORUS_EOVERLOAD;
  }
  if (buf_reserve(&c->out, need) != CHORUS_OK)
    return CHORUS_ENOMEM;
  size_t written;
  char err[CHORUS_ERRMSG_SIZE];
  int rc = wire_encode(m, c->out.data + c->out.len, need, &written, err);
  if (rc != CHORUS_OK) {
    node_log(NODE_LOG_ERROR, NODE_MOD, "conn %" PRIu64 ": cannot encode %s: %s",
             c->serial, wire_type_name(m->type), err);
    return rc;
  }
  c->out.len += written;
  node__mark_dirty(c);
  if (!peer && !c->paused && conn_unsent(c) > n->cfg.out_limit) {
    c->paused = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    node_log(NODE_LOG_DEBUG, NODE_MOD,
             "conn %" PRIu64 ": %zu bytes unsent: reading paused", c->serial,
             conn_unsent(c));
  }
  return CHORUS_OK;
}

void node__conn_send_error(struct node_conn *c, uint64_t request_id, int code,
                           const char *text) {
  struct wire_msg m;
  wire_error_reply(&m, request_id, code, text);
  (void)node__conn_send(c, &m);
}

static void on_write(uv_write_t *req, int status);

static void conn_flush(struct node_conn *c) {
  if (c->writing || c->closing || !c->connected || c->out.len == 0)
    return;
  struct node_buf t = c->wr;
  c->wr = c->out;
  c->out = t;
  c->out.len = 0;
  uv_buf_t b = uv_buf_init((char *)c->wr.data, (unsigned)c->wr.len);
  int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rc < 0) {
    node_log(NODE_LOG_INFO, NODE_MOD, "conn %" PRIu64 " (%s): write: %s",
             c->serial, c->addr, uv_strerror(rc));
    node__conn_close(c);
    return;
  }
  c->writing = true;
}

static void on_write(uv_write_t *req, int status) {
  struct node_conn *c = req->data;
  c->writing = false;
  c->wr.len = 0;
  if (c->wr.cap > (1u << 20))
    buf_free(&c->wr); /* a burst's buffer is not kept */
  if (c->closing)
    return;
  if (status < 0) {
    node_log(NODE_LOG_INFO, NODE_MOD, "conn %" PRIu64 " (%s): write: %s",
             c->serial, c->addr, uv_strerror(status));
    node__conn_close(c);
    return;
  }
  if (c->close_after_flush && c->out.len == 0) {
    node__conn_close(c);
    return;
  }
  if (c->paused && !c->close_after_flush &&
      conn_unsent(c) <= c->n->cfg.out_limit / 2) {
    c->paused = false;
    node__conn_read_start(c);
  }
  if (c->out.len)
    node__mark_dirty(c);
}

/* node__conn_flush_dirty: every connection with output gets one uv_write
 * of everything it accumulated; node_loop.c calls it from the check phase,
 * after the iteration's WAL records went to the OS. */
void node__conn_flush_dirty(struct node *n) {
  struct node_conn *c = n->dirty;
  n->dirty = NULL;
  while (c) {
    struct node_conn *next = c->dirty_next;
    c->dirty = false;
    c->dirty_next = NULL;
    conn_flush(c);
    if (!c->closing && c->close_after_flush && !c->writing && c->out.len == 0)
      node__conn_close(c);
    c = next;
  }
}

/* ------------------------------------------------------------------------
 * Connections: lifecycle
 * ------------------------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h) {
  struct node_conn *c = (struct node_conn *)h;
  struct node *n = c->n;
  wire_splitter_fini(&c->sp);
  buf_free(&c->out);
  buf_free(&c->wr);
  n->nconns--;
  chorus_free(c);
}

void node__conn_close(struct node_conn *c) {
  struct node *n = c->n;
  if (c->closing)
    return;
  c->closing = true;
  if (c->prev)
    c->prev->next = c->next;
  else
    n->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  if (c->kind == NODE_CONN_CLIENT)
    n->nclients--;
  n->on_conn_closed(c);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

struct node_conn *node__conn_new(struct node *n, enum node_conn_kind kind) {
  struct node_conn *c = chorus_calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->n = n;
  c->kind = kind;
  c->serial = ++n->serials;
  c->wreq.data = c;
  c->creq.data = c;
  c->limits = kind == NODE_CONN_PEER_OUT
                  ? WIRE_LIMITS_PEER
                  : (struct wire_limits){n->cfg.max_frame, WIRE_MAX_DEPTH};
  wire_splitter_init(&c->sp, c->limits.max_frame);
  if (uv_tcp_init(&n->loop, &c->tcp) != 0) {
    chorus_free(c);
    return NULL;
  }
  c->tcp.data = c;
  c->next = n->conns;
  if (n->conns)
    n->conns->prev = c;
  n->conns = c;
  n->nconns++;
  return c;
}

/* A protocol violation: answer ERROR, log, and close once it is sent. */
void node__conn_reject(struct node_conn *c, uint64_t request_id, int code,
                       const char *why) {
  node_log(NODE_LOG_WARN, NODE_MOD, "conn %" PRIu64 " (%s): closing: %s",
           c->serial, c->addr, why);
  node__conn_send_error(c, request_id, code, why);
  node__conn_refuse(c);
}

void node__conn_refuse(struct node_conn *c) {
  c->close_after_flush = true;
  if (!c->paused) {
    c->paused = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
  }
  node__mark_dirty(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  struct node_conn *c = h->data;
  *b = uv_buf_init((char *)c->n->rbuf, sizeof c->n->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  struct node_conn *c = s->data;
  if (nread < 0) {
    if (nread != UV_EOF)
      node_log(NODE_LOG_DEBUG, NODE_MOD, "conn %" PRIu64 " (%s): read: %s",
               c->serial, c->addr, uv_strerror((int)nread));
    node__conn_close(c);
    return;
  }
  const uint8_t *p = (const uint8_t *)b->base;
  size_t left = (size_t)nread;
  while (left && !c->closing && !c->close_after_flush) {
    size_t used = 0;
    struct wire_bytes frame;
    int rc = wire_splitter_push(&c->sp, p, left, &used, &frame);
    p += used;
    left -= used;
    if (rc < 0) {
      c->n->stats.malformed++;
      node__conn_reject(c, 0, rc, c->sp.errmsg);
      return;
    }
    if (rc == 0)
      break;
    c->n->on_frame(c, frame.ptr, frame.len);
  }
}

void node__conn_read_start(struct node_conn *c) {
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rc < 0)
    node__conn_close(c);
}

void node__on_accept(uv_stream_t *server, int status) {
  struct node *n = server->data;
  if (status < 0 || n->shutting_down)
    return;
  struct node_conn *c = node__conn_new(n, NODE_CONN_NEW);
  if (c == NULL)
    return;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    node__conn_close(c);
    return;
  }
  c->connected = true;
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
  (void)uv_tcp_nodelay(&c->tcp, 1);
  n->stats.accepted++;
  if (n->nconns > n->cfg.max_connections) {
    n->stats.refused++;
    node_log(NODE_LOG_WARN, NODE_MOD,
             "conn %" PRIu64 " (%s): refused: %u "
             "connections is the limit",
             c->serial, c->addr, n->cfg.max_connections);
    node__conn_send_error(c, 0, CHORUS_EOVERLOAD, "too many connections");
    c->close_after_flush = true;
    return;
  }
  node__conn_read_start(c);
}
