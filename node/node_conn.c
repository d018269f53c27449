/* node_conn.c: chorusd's connections: buffered, coalesced output with
 * back-pressure, framed input, the handshake queue, and close (node.h).
 * Frames go up through struct node's on_frame hook, closes through
 * on_conn_closed: this layer knows nothing of what the frames mean. What
 * is let in, and for how long, is node_accept.c's. */
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

int node__buf_reserve(struct node_buf *b, size_t more) {
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

void node__buf_free(struct node_buf *b) {
  chorus_free(b->data);
  memset(b, 0, sizeof *b);
}

int node__buf_encode(struct node_buf *b, const struct wire_msg *m,
                     size_t need) {
  if (node__buf_reserve(b, need) != CHORUS_OK)
    return CHORUS_ENOMEM;
  size_t written;
  char err[CHORUS_ERRMSG_SIZE];
  int rc = wire_encode(m, b->data + b->len, need, &written, err);
  if (rc != CHORUS_OK) {
    node_log(NODE_LOG_ERROR, NODE_MOD, "cannot encode %s: %s",
             wire_type_name(m->type), err);
    return rc;
  }
  assert(written == need);
  b->len += written;
  return CHORUS_OK;
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
  int rc = node__buf_encode(&c->out, m, need);
  if (rc != CHORUS_OK)
    return rc;
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

int node__conn_write(struct node_conn *c, const void *data, size_t len) {
  struct node *n = c->n;
  if (c->closing)
    return CHORUS_ECLOSED;
  if (node__buf_reserve(&c->out, len) != CHORUS_OK)
    return CHORUS_ENOMEM;
  memcpy(c->out.data + c->out.len, data, len);
  c->out.len += len;
  node__mark_dirty(c);
  if (!c->paused && conn_unsent(c) > n->cfg.out_limit) {
    c->paused = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
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

/* conn_drained: nothing is left to write: a TLS connection's output waits
 * in @out (plaintext not yet encrypted) and in its engine (ciphertext);
 * a failed engine sends only its alert. */
static bool conn_drained(const struct node_conn *c) {
  if (c->tls == NULL)
    return c->out.len == 0;
  return (c->out.len == 0 || tls_engine_failed(c->tls)) &&
         tls_engine_pending(c->tls) == 0;
}

/* conn_tls_out: @c's output through its engine into @wr: plaintext only
 * once the handshake is done (until then a dialled peer's HELLO and
 * frames stay in @out, where node_peer.c finds them should the handshake
 * fail), the handshake's own messages whenever there are some. False
 * when the engine failed to encrypt (closed). */
static bool conn_tls_out(struct node_conn *c) {
  size_t take = c->auth_hold ? c->hello_len : c->out.len;
  if (tls_engine_established(c->tls) && take) {
    int rc = tls_engine_write(c->tls, c->out.data, take);
    if (rc != CHORUS_OK) {
      node_log(NODE_LOG_INFO, NODE_MOD, "conn %" PRIu64 " (%s): %s", c->serial,
               c->addr, tls_engine_errmsg(c->tls));
      node__conn_close(c);
      return false;
    }
    c->hello_len = 0;
    memmove(c->out.data, c->out.data + take, c->out.len - take);
    c->out.len -= take;
  }
  size_t pend = tls_engine_pending(c->tls);
  if (pend && node__buf_reserve(&c->wr, pend) != CHORUS_OK) {
    node__conn_close(c);
    return false;
  }
  c->wr.len = tls_engine_take(c->tls, c->wr.data, pend);
  return true;
}

/* conn_peer_out: a plaintext peer link's output into @wr: its handshake
 * bytes as they are, then (unless held) every frame behind its PEER_TAG
 * (peer_auth.h). The tags are made here, in the order frames go on the
 * wire, so frames queued before the handshake ended are tagged too. */
static bool conn_peer_out(struct node_conn *c) {
  size_t head = c->hello_len;
  size_t body = c->auth_hold ? 0 : c->out.len - head;
  bool tag = c->auth->state == PEER_AUTH_DONE && c->auth->tagged;
  /* Frames were whole when encoded: at most one tag per 5 bytes. */
  size_t room = head + body + (tag ? body / 5 * PEER_AUTH_TAG_FRAME : 0);
  if (node__buf_reserve(&c->wr, room) != CHORUS_OK) {
    node__conn_close(c);
    return false;
  }
  uint8_t *w = c->wr.data;
  memcpy(w, c->out.data, head);
  w += head;
  const uint8_t *p = c->out.data + head, *end = p + body;
  while (p < end) {
    assert(end - p >= (ptrdiff_t)WIRE_FRAME_PREFIX);
    size_t blen = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 |
                  (size_t)p[3];
    assert(blen <= (size_t)(end - p) - WIRE_FRAME_PREFIX);
    if (tag) {
      peer_auth_seal(c->auth, p + WIRE_FRAME_PREFIX, blen, w);
      w += PEER_AUTH_TAG_FRAME;
    }
    memcpy(w, p, WIRE_FRAME_PREFIX + blen);
    w += WIRE_FRAME_PREFIX + blen;
    p += WIRE_FRAME_PREFIX + blen;
  }
  c->wr.len = (size_t)(w - c->wr.data);
  memmove(c->out.data, c->out.data + head + body, c->out.len - head - body);
  c->out.len -= head + body;
  c->hello_len = 0;
  return true;
}

static void conn_flush(struct node_conn *c) {
  if (c->writing || c->closing || !c->connected)
    return;
  if (c->tls != NULL) {
    if (!conn_tls_out(c) || c->wr.len == 0)
      return;
  } else if (c->auth != NULL) {
    if (!conn_peer_out(c) || c->wr.len == 0)
      return;
  } else {
    if (c->out.len == 0)
      return;
    struct node_buf t = c->wr;
    c->hello_len = 0; /* HELLO, if any, is with the kernel from here */
    c->wr = c->out;
    c->out = t;
    c->out.len = 0;
  }
  /* Straight to the socket first. uv_write hands the bytes to write(2) at
   * once too, but completes through the next iteration's pending phase,
   * whose uv__drain stops POLLOUT with an epoll_ctl: one more syscall per
   * write, most of a message's at low load (issue 27). What the kernel
   * does not take goes through uv_write as before, and so does a paused
   * connection's output (its completion resumes reading, on_write) and
   * one with more to send behind this write (a held peer handshake). */
  size_t done = 0;
  if (!c->paused && conn_drained(c)) {
    uv_buf_t all = uv_buf_init((char *)c->wr.data, (unsigned)c->wr.len);
    int w = uv_try_write((uv_stream_t *)&c->tcp, &all, 1);
    if (w == (int)c->wr.len) {
      c->wr.len = 0;
      if (c->wr.cap > (1u << 20))
        node__buf_free(&c->wr);
      c->last_active = node__now(c->n);
      return;
    }
    if (w < 0 && w != UV_EAGAIN) {
      node_log(NODE_LOG_INFO, NODE_MOD, "conn %" PRIu64 " (%s): write: %s",
               c->serial, c->addr, uv_strerror(w));
      node__conn_close(c);
      return;
    }
    done = w > 0 ? (size_t)w : 0;
  }
  uv_buf_t b =
      uv_buf_init((char *)c->wr.data + done, (unsigned)(c->wr.len - done));
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
    node__buf_free(&c->wr); /* a burst's buffer is not kept */
  if (c->closing)
    return;
  if (status < 0) {
    node_log(NODE_LOG_INFO, NODE_MOD, "conn %" PRIu64 " (%s): write: %s",
             c->serial, c->addr, uv_strerror(status));
    node__conn_close(c);
    return;
  }
  c->last_active = node__now(c->n);
  if (c->close_after_flush && conn_drained(c)) {
    node__conn_close(c);
    return;
  }
  if (c->paused && !c->close_after_flush &&
      conn_unsent(c) <= c->n->cfg.out_limit / 2) {
    c->paused = false;
    /* A held RESP session parses what waits in its input first, and reads
     * again once its pipeline has room. */
    if (node__resp_held(c))
      node__resp_resume(c);
    else
      node__conn_read_start(c);
  }
  if (!conn_drained(c))
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
    if (!c->closing && c->close_after_flush && !c->writing && conn_drained(c))
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
  node__buf_free(&c->in);
  node__buf_free(&c->out);
  node__buf_free(&c->wr);
  tls_engine_free(c->tls);
  node__peer_auth_free(c);
  n->nconns--;
  chorus_free(c);
}

/* The handshake queue: accepted connections that have not completed
 * HELLO, oldest first, so that node_accept.c finds the oldest to evict
 * and the expired ones at the head. */
static void pending_push(struct node_conn *c) {
  struct node *n = c->n;
  assert(!c->pending);
  c->pending = true;
  c->pend_prev = n->pend_tail;
  c->pend_next = NULL;
  if (n->pend_tail)
    n->pend_tail->pend_next = c;
  else
    n->pend_head = c;
  n->pend_tail = c;
  n->npending++;
}

static void pending_unlink(struct node_conn *c) {
  struct node *n = c->n;
  if (!c->pending)
    return;
  c->pending = false;
  if (c->pend_prev)
    c->pend_prev->pend_next = c->pend_next;
  else
    n->pend_head = c->pend_next;
  if (c->pend_next)
    c->pend_next->pend_prev = c->pend_prev;
  else
    n->pend_tail = c->pend_prev;
  c->pend_prev = c->pend_next = NULL;
  assert(n->npending > 0);
  n->npending--;
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
  pending_unlink(c);
  if (c->kind == NODE_CONN_CLIENT)
    n->nclients--;
  else if (c->kind == NODE_CONN_HTTP)
    n->nhttp--;
  else if (c->kind == NODE_CONN_RESP)
    n->nresp--;
  n->on_conn_closed(c);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static struct wire_limits limits_of(const struct node *n,
                                    enum node_conn_kind kind) {
  switch (kind) {
  case NODE_CONN_NEW:
    return (struct wire_limits){NODE_HELLO_MAX_FRAME, WIRE_MAX_DEPTH};
  case NODE_CONN_CLIENT:
    return (struct wire_limits){n->cfg.max_frame, WIRE_MAX_DEPTH};
  default:
    return WIRE_LIMITS_PEER;
  }
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
  c->limits = limits_of(n, kind);
  wire_splitter_init(&c->sp, c->limits.max_frame);
  if (uv_tcp_init(&n->loop, &c->tcp) != 0) {
    chorus_free(c);
    return NULL;
  }
  c->tcp.data = c;
  c->opened_at = c->last_active = node__now(n);
  c->next = n->conns;
  if (n->conns)
    n->conns->prev = c;
  n->conns = c;
  n->nconns++;
  if (kind == NODE_CONN_NEW)
    pending_push(c);
  else if (kind == NODE_CONN_HTTP)
    n->nhttp++;
  else if (kind == NODE_CONN_RESP)
    n->nresp++;
  return c;
}

void node__conn_handshaken(struct node_conn *c, enum node_conn_kind kind) {
  assert(c->kind == NODE_CONN_NEW);
  assert(kind == NODE_CONN_CLIENT || kind == NODE_CONN_PEER_IN);
  pending_unlink(c);
  c->kind = kind;
  if (kind == NODE_CONN_CLIENT)
    c->n->nclients++;
  c->limits = limits_of(c->n, kind);
  /* HELLO was a whole frame, so the splitter is between frames: the
   * limit holds from the next length prefix on. */
  c->sp.max_frame = c->limits.max_frame;
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

/* conn_input: @left bytes of @c's protocol (plaintext: read from the
 * socket, or out of its TLS engine). */
static void conn_input(struct node_conn *c, const uint8_t *p, size_t left) {
  chorus_ms now = node__now(c->n);
  if (c->kind == NODE_CONN_HTTP) {
    /* HTTP is not framed: node_http.c takes the bytes as they come. */
    if (left && !c->closing && !c->close_after_flush)
      c->n->on_http(c, p, left);
    return;
  }
  if (c->kind == NODE_CONN_RESP) {
    /* Nor is RESP; its unparsed bytes are measured as a frame is. */
    if (c->in.len == 0) {
      c->frame_start = now;
      c->frame_bytes = 0;
    }
    c->frame_bytes += left;
    if (left && !c->closing && !c->close_after_flush)
      c->n->on_resp(c, p, left);
    return;
  }
  while (left && !c->closing && !c->close_after_flush) {
    size_t used = 0;
    struct wire_bytes frame;
    /* The slow-sender deadline measures each frame from its first byte
     * (node_accept.c): nothing buffered means the next byte starts one. */
    if (wire_splitter_buffered(&c->sp) == 0) {
      c->frame_start = now;
      c->frame_bytes = 0;
    }
    int rc = wire_splitter_push(&c->sp, p, left, &used, &frame);
    c->frame_bytes += used;
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
  if (left == 0)
    return;
  c->last_active = node__now(c->n);
  /* The first byte of an accepted connection says TLS or plaintext. */
  if (!c->sniffed && !node__tls_sniff(c, p, left))
    return;
  if (c->tls != NULL)
    node__tls_input(c, p, left, conn_input);
  else
    conn_input(c, p, left);
}

void node__conn_read_start(struct node_conn *c) {
  /* A frame that stalled because we stopped reading is measured again
   * from now: the pause was ours, not the sender's. */
  c->frame_start = node__now(c->n);
  c->frame_bytes = 0;
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rc < 0)
    node__conn_close(c);
}
