/* node_conn.c: chorusd's connections: buffered, coalesced output with
 * back-pressure, framed input, lazily dialled peer connections (node.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "chorus_alloc.h"
#include "node_int.h"

/* ------------------------------------------------------------------------
 * Buffers
 * ------------------------------------------------------------------------ */

static int buf_reserve(struct buf *b, size_t more) {
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

static void buf_free(struct buf *b) {
  chorus_free(b->data);
  memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------------
 * Addresses
 * ------------------------------------------------------------------------ */

int node__resolve(const char *addr, struct sockaddr_storage *sa) {
  char host[SWIM_ADDR_MAX];
  int port;
  if (node_addr_split(addr, host, sizeof host, &port) != CHORUS_OK)
    return CHORUS_EINVAL;
  if (strcmp(host, "localhost") == 0)
    snprintf(host, sizeof host, "127.0.0.1");
  memset(sa, 0, sizeof *sa);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)sa) == 0)
    return CHORUS_OK;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)sa) == 0)
    return CHORUS_OK;
  /* A name: resolved once per peer entry, blocking (addresses in gossip
   * are normally numeric). */
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%d", port);
  if (getaddrinfo(host, portstr, &hints, &res) != 0 || res == NULL)
    return CHORUS_ENOTFOUND;
  memcpy(sa, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return CHORUS_OK;
}

struct peer *node__peer_by_addr(struct node *n, const char *addr, bool create) {
  for (size_t i = 0; i < n->npeers; i++)
    if (strcmp(n->peers[i].addr, addr) == 0)
      return &n->peers[i];
  if (!create)
    return NULL;
  if (n->npeers == n->cappeers) {
    size_t cap = n->cappeers ? 2 * n->cappeers : 16;
    struct peer *p = chorus_realloc(n->peers, cap * sizeof *p);
    if (p == NULL)
      return NULL;
    /* Connections point at their entries: re-point them. */
    for (size_t i = 0; i < n->npeers; i++)
      if (p[i].out)
        p[i].out->peer = &p[i];
    n->peers = p;
    n->cappeers = cap;
  }
  struct peer *p = &n->peers[n->npeers++];
  memset(p, 0, sizeof *p);
  snprintf(p->addr, sizeof p->addr, "%s", addr);
  return p;
}

struct peer *node__peer_by_id(struct node *n, chorus_node_id id) {
  for (size_t i = 0; i < n->npeers; i++)
    if (n->peers[i].id == id)
      return &n->peers[i];
  return NULL;
}

/* ------------------------------------------------------------------------
 * Connections: output
 * ------------------------------------------------------------------------ */

static size_t conn_unsent(const struct conn *c) {
  return c->out.len + c->wr.len;
}

void node__mark_dirty(struct conn *c) {
  if (!c->dirty) {
    c->dirty = true;
    c->dirty_next = c->n->dirty;
    c->n->dirty = c;
  }
}

/* conn_send: encodes @m at the end of @c's output. A client over its
 * output bound stops being read (back-pressure); a peer over its bound
 * loses the message (replication tolerates loss). */
int node__conn_send(struct conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  if (c->closing)
    return CHORUS_ECLOSED;
  size_t need = wire_encoded_size(m);
  bool peer = c->kind == CONN_PEER_IN || c->kind == CONN_PEER_OUT;
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

void node__conn_send_error(struct conn *c, uint64_t request_id, int code,
                           const char *text) {
  struct wire_msg m;
  wire_error_reply(&m, request_id, code, text);
  (void)node__conn_send(c, &m);
}

static void on_write(uv_write_t *req, int status);

static void conn_flush(struct conn *c) {
  if (c->writing || c->closing || !c->connected || c->out.len == 0)
    return;
  struct buf t = c->wr;
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
  struct conn *c = req->data;
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

/* The flush: once per loop iteration, after I/O callbacks, one uv_write
 * per connection with everything it accumulated. The iteration's writes go
 * to the OS first (store_flush): a reply must not leave ahead of the write
 * it acknowledges, and a process crash then loses nothing acknowledged. A
 * failed flush leaves the WAL's end unknown: stop before anything leaves. */
void node__on_check(uv_check_t *h) {
  struct node *n = h->data;
  node__complete_ready(n);
  if (n->dirty != NULL && n->store != NULL &&
      store_flush(n->store) != CHORUS_OK) {
    node_log(NODE_LOG_ERROR, "store", "%s", store_errmsg(n->store));
    node__fatal(n, CHORUS_ESYNCFAILED, "handing the WAL to the OS");
  }
  struct conn *c = n->dirty;
  n->dirty = NULL;
  while (c) {
    struct conn *next = c->dirty_next;
    c->dirty = false;
    c->dirty_next = NULL;
    conn_flush(c);
    if (!c->closing && c->close_after_flush && !c->writing && c->out.len == 0)
      node__conn_close(c);
    c = next;
  }
  node__submit_barriers(n);
}

/* ------------------------------------------------------------------------
 * Connections: lifecycle
 * ------------------------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h) {
  struct conn *c = (struct conn *)h;
  struct node *n = c->n;
  wire_splitter_fini(&c->sp);
  buf_free(&c->out);
  buf_free(&c->wr);
  n->nconns--;
  chorus_free(c);
}

void node__conn_close(struct conn *c) {
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
  if (c->kind == CONN_CLIENT)
    n->nclients--;
  if (c->peer && c->peer->out == c)
    c->peer->out = NULL;
  /* Requests still in flight are answered into the void. */
  if (c->inflight)
    for (uint32_t i = 0; i < n->nslots; i++)
      if (n->slots[i].used && n->slots[i].c == c)
        n->slots[i].c = NULL;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static struct conn *conn_new(struct node *n, enum conn_kind kind) {
  struct conn *c = chorus_calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->n = n;
  c->kind = kind;
  c->serial = ++n->serials;
  c->wreq.data = c;
  c->creq.data = c;
  c->limits = kind == CONN_PEER_OUT
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

/* ------------------------------------------------------------------------
 * Peers: dialling, HELLO credentials
 * ------------------------------------------------------------------------ */

/* Peer credentials: HMAC-SHA-512-256 (crypto_auth) of the cluster name and
 * the sender's node id under a key derived from the cluster key, so a node
 * with another key cannot open a peer connection (it could replay a
 * captured HELLO, but it still cannot take part in sealed gossip). */
void node__peer_mac(const struct node *n, chorus_node_id id,
                    uint8_t out[crypto_auth_BYTES]) {
  uint8_t msg[SWIM_CLUSTER_MAX + 8];
  size_t cl = strlen(n->cfg.cluster);
  memcpy(msg, n->cfg.cluster, cl);
  for (int i = 0; i < 8; i++)
    msg[cl + (size_t)i] = (uint8_t)(id >> (8 * i));
  crypto_auth(out, msg, cl + 8, n->peer_auth_key);
}

static void on_connect(uv_connect_t *req, int status) {
  struct conn *c = req->data;
  if (c->closing)
    return;
  if (status < 0) {
    node_log(NODE_LOG_DEBUG, NODE_MOD, "dial %s: %s", c->addr,
             uv_strerror(status));
    if (c->peer)
      c->peer->retry_at = node__now(c->n) + NODE_DIAL_BACKOFF_MS;
    node__conn_close(c);
    return;
  }
  c->connected = true;
  (void)uv_tcp_nodelay(&c->tcp, 1);
  node__conn_read_start(c);
  if (c->out.len)
    node__mark_dirty(c);
}

/* peer_conn: the outbound connection to @p, dialled lazily; NULL while a
 * dial is backing off. HELLO is queued first and frames pipeline behind
 * it. */
struct conn *node__peer_conn(struct node *n, struct peer *p) {
  if (p->out)
    return p->out;
  if (n->closing_all || node__now(n) < p->retry_at)
    return NULL;
  if (!p->resolved) {
    if (node__resolve(p->addr, &p->sa) != CHORUS_OK) {
      p->retry_at = node__now(n) + 10 * NODE_DIAL_BACKOFF_MS;
      node_log(NODE_LOG_WARN, NODE_MOD, "cannot resolve peer address %s",
               p->addr);
      return NULL;
    }
    p->resolved = true;
  }
  struct conn *c = conn_new(n, CONN_PEER_OUT);
  if (c == NULL)
    return NULL;
  snprintf(c->addr, sizeof c->addr, "%s", p->addr);
  c->peer = p;
  c->peer_id = p->id;
  int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&p->sa,
                          on_connect);
  if (rc < 0) {
    p->retry_at = node__now(n) + NODE_DIAL_BACKOFF_MS;
    node__conn_close(c);
    return NULL;
  }
  p->out = c;
  uint8_t mac[crypto_auth_BYTES];
  node__peer_mac(n, n->cfg.id, mac);
  struct wire_msg hello = {.type = WIRE_HELLO,
                           .request_id = NODE_HELLO_REQUEST_ID};
  hello.hello.version = WIRE_PROTOCOL_VERSION;
  hello.hello.cluster = (struct wire_bytes){(const uint8_t *)n->cfg.cluster,
                                            strlen(n->cfg.cluster)};
  hello.hello.role = WIRE_ROLE_PEER;
  hello.hello.node_id = n->cfg.id;
  hello.hello.credentials = (struct wire_bytes){mac, sizeof mac};
  (void)node__conn_send(c, &hello);
  node_log(NODE_LOG_DEBUG, NODE_MOD, "dialling peer %s", p->addr);
  return c;
}

int node__peer_send(struct node *n, chorus_node_id to,
                    const struct wire_msg *m) {
  struct peer *p = node__peer_by_id(n, to);
  struct conn *c = p ? node__peer_conn(n, p) : NULL;
  if (c == NULL) {
    n->stats.peer_dropped++;
    return CHORUS_OK; /* delivery is not guaranteed (repl.h) */
  }
  int rc = node__conn_send(c, m);
  return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
}

/* A protocol violation: answer ERROR, log, and close once it is sent. */
void node__conn_reject(struct conn *c, uint64_t request_id, int code,
                       const char *why) {
  node_log(NODE_LOG_WARN, NODE_MOD, "conn %" PRIu64 " (%s): closing: %s",
           c->serial, c->addr, why);
  node__conn_send_error(c, request_id, code, why);
  c->close_after_flush = true;
  if (!c->paused) {
    c->paused = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
  }
  node__mark_dirty(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  struct conn *c = h->data;
  *b = uv_buf_init((char *)c->n->rbuf, sizeof c->n->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  struct conn *c = s->data;
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
    node__on_frame(c, frame.ptr, frame.len);
  }
}

void node__conn_read_start(struct conn *c) {
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rc < 0)
    node__conn_close(c);
}

void node__on_accept(uv_stream_t *server, int status) {
  struct node *n = server->data;
  if (status < 0 || n->shutting_down)
    return;
  struct conn *c = conn_new(n, CONN_NEW);
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
