/* node_peer.c: chorusd's peers: the address book (one entry per address
 * SWIM or replication talks to), lazily dialled peer connections, HELLO on
 * both sides (credentials, refusals), and SWIM's transport: datagrams over
 * UDP, streams as WIRE_GOSSIP frames on the peer connection (node.h). */
#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "chorus_alloc.h"
#include "node_int.h"

/* ------------------------------------------------------------------------
 * The address book
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

static struct node_peer *peer_by_addr(struct node *n, const char *addr,
                                      bool create) {
  for (size_t i = 0; i < n->npeers; i++)
    if (strcmp(n->peers[i].addr, addr) == 0)
      return &n->peers[i];
  if (!create)
    return NULL;
  if (n->npeers == n->cappeers) {
    size_t cap = n->cappeers ? 2 * n->cappeers : 16;
    struct node_peer *p = chorus_realloc(n->peers, cap * sizeof *p);
    if (p == NULL)
      return NULL;
    /* Connections point at their entries: re-point them. */
    for (size_t i = 0; i < n->npeers; i++)
      if (p[i].out)
        p[i].out->peer = &p[i];
    n->peers = p;
    n->cappeers = cap;
  }
  struct node_peer *p = &n->peers[n->npeers++];
  memset(p, 0, sizeof *p);
  snprintf(p->addr, sizeof p->addr, "%s", addr);
  return p;
}

static struct node_peer *peer_by_id(struct node *n, chorus_node_id id) {
  for (size_t i = 0; i < n->npeers; i++)
    if (n->peers[i].id == id)
      return &n->peers[i];
  return NULL;
}

/* node__peer_key: peer credentials use their own key, derived from the
 * cluster key, never the gossip key itself. */
void node__peer_key(struct node *n) {
  static const char tag[] = "chorus peer hello v1";
  crypto_generichash(n->peer_auth_key, sizeof n->peer_auth_key,
                     (const unsigned char *)tag, sizeof tag - 1, n->cfg.key,
                     SWIM_KEY_BYTES);
}

/* ------------------------------------------------------------------------
 * Dialling and credentials
 * ------------------------------------------------------------------------ */

/* Peer credentials: HMAC-SHA-512-256 (crypto_auth) of the cluster name and
 * the sender's node id under a key derived from the cluster key, so a node
 * with another key cannot open a peer connection (it could replay a
 * captured HELLO, but it still cannot take part in sealed gossip). */
static void peer_mac(const struct node *n, chorus_node_id id,
                     uint8_t out[crypto_auth_BYTES]) {
  uint8_t msg[SWIM_CLUSTER_MAX + 8];
  size_t cl = strlen(n->cfg.cluster);
  memcpy(msg, n->cfg.cluster, cl);
  for (int i = 0; i < 8; i++)
    msg[cl + (size_t)i] = (uint8_t)(id >> (8 * i));
  crypto_auth(out, msg, cl + 8, n->peer_auth_key);
}

static void on_connect(uv_connect_t *req, int status) {
  struct node_conn *c = req->data;
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
static struct node_conn *peer_conn(struct node *n, struct node_peer *p) {
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
  struct node_conn *c = node__conn_new(n, NODE_CONN_PEER_OUT);
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
  peer_mac(n, n->cfg.id, mac);
  struct wire_msg hello = {.type = WIRE_HELLO,
                           .request_id = NODE_HELLO_REQUEST_ID};
  c->version = p->dial_version ? p->dial_version : WIRE_PROTOCOL_VERSION;
  hello.hello.version = c->version;
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
  struct node_peer *p = peer_by_id(n, to);
  struct node_conn *c = p ? peer_conn(n, p) : NULL;
  if (c == NULL) {
    n->stats.peer_dropped++;
    return CHORUS_OK; /* delivery is not guaranteed (repl.h) */
  }
  int rc = node__conn_send(c, m);
  return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * HELLO: the handshake of accepted connections, and the answer to ours
 * ------------------------------------------------------------------------ */

void node__on_hello(struct node_conn *c, const struct wire_msg *m) {
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
    peer_mac(n, m->hello.node_id, mac);
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
    node__conn_refuse(c);
    return;
  }
  c->version = m->hello.version;
  if (m->hello.role == WIRE_ROLE_PEER) {
    c->kind = NODE_CONN_PEER_IN;
    c->peer_id = m->hello.node_id;
    c->limits = WIRE_LIMITS_PEER;
    c->sp.max_frame = c->limits.max_frame; /* the next frame's limit */
  } else {
    c->kind = NODE_CONN_CLIENT;
    n->nclients++;
  }
  (void)node__conn_send(c, &reply);
}

bool node__peer_handshake_answer(struct node_conn *c,
                                 const struct wire_msg *m) {
  if (c->kind != NODE_CONN_PEER_OUT)
    return false;
  if (m->type == WIRE_WELCOME) {
    c->welcomed = true;
    c->peer_id = m->welcome.node_id;
    c->version = m->welcome.version;
    return true;
  }
  if (m->type != WIRE_ERROR || c->welcomed ||
      m->request_id != NODE_HELLO_REQUEST_ID)
    return false;
  if (m->error.code == CHORUS_EVERSION && c->version > WIRE_PROTOCOL_MIN &&
      c->peer) {
    /* An older node (a rolling upgrade): dial again at once, one version
     * lower; a later dial tries ours first again. */
    c->peer->dial_version = c->version - 1;
    node_log(NODE_LOG_INFO, NODE_MOD,
             "peer %s speaks an older protocol: dialling in version %" PRIu32,
             c->addr, c->peer->dial_version);
    node__conn_close(c);
    return true;
  }
  node_log(NODE_LOG_WARN, NODE_MOD, "peer %s refused our HELLO: %.*s", c->addr,
           (int)m->error.text.len, (const char *)m->error.text.ptr);
  if (c->peer)
    c->peer->retry_at = node__now(c->n) + 10 * NODE_DIAL_BACKOFF_MS;
  node__conn_close(c);
  return true;
}

void node__peer_conn_closed(struct node_conn *c) {
  if (c->peer && c->peer->out == c) {
    c->peer->out = NULL;
    if (c->welcomed)
      c->peer->dial_version = 0; /* it may come back upgraded */
  }
}

/* ------------------------------------------------------------------------
 * SWIM's transport and the core's member effect
 * ------------------------------------------------------------------------ */

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
  int rc = core_gossip(n->core, b->base, (size_t)nread, node__now(n),
                       node__wall_ms());
  if (rc != CHORUS_OK)
    node__fatal(rc, "gossip");
}

int node__gossip_listen(struct node *n) {
  return uv_udp_recv_start(&n->udp, on_udp_alloc, on_udp);
}

void node__fx_gossip(void *ctx, const char *addr, enum swim_channel ch,
                     const void *data, size_t len) {
  struct node *n = ctx;
  struct node_peer *p = peer_by_addr(n, addr, true);
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
  struct node_conn *c = peer_conn(n, p);
  if (c == NULL)
    return;
  struct wire_msg m = {.type = WIRE_GOSSIP, .request_id = 0};
  m.gossip.packet = (struct wire_bytes){data, len};
  (void)node__conn_send(c, &m);
}

/* node__fx_member: logs the change and points the address book at the
 * member's address (before replication can send it anything: core.h, THE
 * HOOKUP). */
void node__fx_member(void *ctx, const struct swim_member *m,
                     enum swim_state old, bool is_new) {
  struct node *n = ctx;
  if (m->id == n->cfg.id)
    return;
  node_log(is_new || old != m->state ? NODE_LOG_INFO : NODE_LOG_DEBUG, "swim",
           "member %016" PRIx64 " (%s) %s -> %s, incarnation %" PRIu32, m->id,
           m->meta.addr, is_new ? "new" : swim_state_name(old),
           swim_state_name(m->state), m->incarnation);
  if (m->meta.addr[0] == '\0')
    return;
  struct node_peer *p = peer_by_addr(n, m->meta.addr, true);
  if (p && p->id != m->id) {
    /* A member that moved: its old address is no longer its own. */
    struct node_peer *old_entry;
    while ((old_entry = peer_by_id(n, m->id)) != NULL)
      old_entry->id = 0;
    p->id = m->id;
  }
}
