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
  bool full = n->npeers == n->cappeers;
  struct node_peer *grown =
      chorus_grow(n->peers, &n->cappeers, n->npeers, sizeof *grown, 16);
  if (grown == NULL)
    return NULL;
  if (full) /* moved: connections point at their entries, re-point them */
    for (size_t i = 0; i < n->npeers; i++)
      if (grown[i].out)
        grown[i].out->peer = &grown[i];
  n->peers = grown;
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

size_t node__keys(const struct node *n,
                  uint8_t out[SWIM_MAX_KEYS][SWIM_KEY_BYTES]) {
  if (n->core == NULL) {
    memcpy(out[0], n->cfg.key, SWIM_KEY_BYTES);
    return 1;
  }
  return core_gossip_keys(n->core, out);
}

/* Peer links use their own keys, derived from the gossip keys, never a
 * gossip key itself. */
void node__peer_key_derive(const uint8_t cluster_key[SWIM_KEY_BYTES],
                           uint8_t out[PEER_AUTH_KEY_BYTES]) {
  static const char tag[] = "chorus peer auth v2";
  crypto_generichash(out, PEER_AUTH_KEY_BYTES, (const unsigned char *)tag,
                     sizeof tag - 1, cluster_key, SWIM_KEY_BYTES);
}

/* node__peer_keys: derived afresh from the keyring at each handshake (a
 * handful of hashes per link), so a rotation's install, use and remove
 * reach new links at once; links up keep their session keys. */
struct peer_auth_keys node__peer_keys(struct node *n) {
  uint8_t keys[SWIM_MAX_KEYS][SWIM_KEY_BYTES];
  size_t k = node__keys(n, keys);
  for (size_t i = 0; i < k; i++)
    node__peer_key_derive(keys[i], n->peer_keys[i]);
  sodium_memzero(keys, sizeof keys);
  const uint8_t(*keyp)[PEER_AUTH_KEY_BYTES] =
      (const uint8_t(*)[PEER_AUTH_KEY_BYTES])n->peer_keys;
  return (struct peer_auth_keys){keyp, k};
}

/* ------------------------------------------------------------------------
 * Dialling and the peer handshake (peer_auth.h: what each message proves)
 * ------------------------------------------------------------------------ */

_Static_assert(WIRE_PEER_NONCE_BYTES == PEER_AUTH_NONCE_BYTES, "nonce");
_Static_assert(WIRE_PEER_MAC_BYTES == PEER_AUTH_MAC_BYTES, "mac");
_Static_assert(WIRE_PEER_TAG_BYTES == PEER_AUTH_TAG_BYTES, "tag");

/* tls_binding: the TLS session's exported bytes into @out, or NULL for a
 * plaintext link (whose frames are then tagged). */
static const uint8_t *tls_binding(const struct node_conn *c,
                                  uint8_t out[PEER_AUTH_BINDING_BYTES]) {
  if (c->tls == NULL)
    return NULL;
  if (tls_engine_export(c->tls, "EXPORTER-chorus-peer-auth", out,
                        PEER_AUTH_BINDING_BYTES) != CHORUS_OK)
    memset(out, 0, PEER_AUTH_BINDING_BYTES); /* fails the MACs: closed */
  return out;
}

static struct peer_auth *auth_new(struct node_conn *c) {
  if (c->auth == NULL)
    c->auth = chorus_calloc(1, sizeof *c->auth);
  return c->auth;
}

void node__peer_auth_free(struct node_conn *c) {
  if (c->auth == NULL)
    return;
  sodium_memzero(c->auth, sizeof *c->auth);
  chorus_free(c->auth);
  c->auth = NULL;
}

/* auth_refused: a peer handshake that failed on @c: counted, logged, the
 * link closed (an acceptor answers ERROR first). */
static void auth_refused(struct node_conn *c, const char *why) {
  struct node *n = c->n;
  n->stats.peer_auth_failed++;
  n->stats.auth_failed++;
  node_log(NODE_LOG_WARN, NODE_MOD, "conn %" PRIu64 " (%s): peer %s", c->serial,
           c->addr, why);
  if (c->kind == NODE_CONN_PEER_OUT) {
    if (c->peer)
      c->peer->retry_at = node__now(n) + 10 * NODE_DIAL_BACKOFF_MS;
    node__conn_close(c);
    return;
  }
  n->stats.refused++;
  c->auth_hold = false; /* the ERROR leaves, untagged: no session */
  node__conn_send_error(c, NODE_HELLO_REQUEST_ID, CHORUS_EAUTH,
                        "peer authentication failed");
  node__conn_refuse(c);
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
    node__conn_close(c); /* its frames go back to the peer's queue */
    return;
  }
  c->connected = true;
  (void)uv_tcp_nodelay(&c->tcp, 1);
  node__conn_read_start(c);
  if (c->out.len || c->tls) /* frames, or the TLS ClientHello */
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
  if (node__tls_dial(c) != CHORUS_OK) {
    node__conn_close(c);
    return NULL;
  }
  int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&p->sa,
                          on_connect);
  if (rc < 0) {
    p->retry_at = node__now(n) + NODE_DIAL_BACKOFF_MS;
    node__conn_close(c);
    return NULL;
  }
  p->out = c;
  uint8_t nonce[PEER_AUTH_NONCE_BYTES];
  randombytes_buf(nonce, sizeof nonce);
  if (auth_new(c) == NULL) {
    node__conn_close(c);
    return NULL;
  }
  peer_auth_dial(c->auth, n->cfg.cluster, strlen(n->cfg.cluster), n->cfg.id,
                 nonce);
  /* Only the HELLO leaves until the acceptor proved the key. */
  c->auth_hold = true;
  struct wire_msg hello = {.type = WIRE_HELLO,
                           .request_id = NODE_HELLO_REQUEST_ID};
  c->version = p->dial_version ? p->dial_version : WIRE_PROTOCOL_VERSION;
  hello.hello.version = c->version;
  hello.hello.cluster = (struct wire_bytes){(const uint8_t *)n->cfg.cluster,
                                            strlen(n->cfg.cluster)};
  hello.hello.role = WIRE_ROLE_PEER;
  hello.hello.node_id = n->cfg.id;
  hello.hello.credentials =
      (struct wire_bytes){c->auth->nonce_d, PEER_AUTH_NONCE_BYTES};
  (void)node__conn_send(c, &hello);
  c->hello_len = c->out.len;
  if (p->pending.len) {
    /* What waited for this connection goes right behind the HELLO (and
     * leaves right behind our PEER_PROOF). */
    c->queued_since = p->pending_since;
    if (node__buf_reserve(&c->out, p->pending.len) == CHORUS_OK) {
      memcpy(c->out.data + c->out.len, p->pending.data, p->pending.len);
      c->out.len += p->pending.len;
      node_log(NODE_LOG_DEBUG, NODE_MOD,
               "peer %s: %zu queued bytes follow the handshake", p->addr,
               p->pending.len);
    } else {
      n->stats.peer_dropped++;
    }
    node__buf_free(&p->pending);
  }
  node_log(NODE_LOG_DEBUG, NODE_MOD, "dialling peer %s", p->addr);
  return c;
}

/* ------------------------------------------------------------------------
 * NOTHING DISAPPEARS
 *
 * A message for a peer whose connection cannot be had right now (its dial
 * is backing off after a refusal) waits in the address book entry's queue,
 * whole frames only; so do the frames a dialled connection never handed to
 * the kernel when it fails (a refused dial, a close before its first
 * write). The queue goes out behind the HELLO of the next dial, which the
 * redial timer makes as soon as the backoff ends, and at once when gossip
 * hears the peer alive: it listens now. That was the startup race of issue
 * 17: a node dialled a seed before the seed listened, and for the next
 * 500 ms dropped every message to it, so the first writes at ALL timed
 * out with 2 of 3 acknowledgements. Frames that waited longer than a
 * request timeout are dropped and counted: whoever sent them has given up.
 * Frames already handed to the kernel when a connection fails may or may
 * not have arrived; they are not sent again (a forwarded client write is
 * not idempotent, Dynamo §6), but counted, and the operations waiting on
 * them end by their own timeouts.
 * ------------------------------------------------------------------------ */

static void arm_redial(struct node *n);

/* pending_room: whether @len more bytes fit in @p's queue (counted as
 * dropped when not); starts the queue's clock when it was empty. */
static bool pending_room(struct node *n, struct node_peer *p, size_t len) {
  if (p->pending.len + len > n->cfg.peer_out_limit) {
    n->stats.peer_dropped++;
    return false;
  }
  if (p->pending.len == 0)
    p->pending_since = node__now(n);
  return true;
}

int node__peer_send(struct node *n, chorus_node_id to,
                    const struct wire_msg *m) {
  struct node_peer *p = peer_by_id(n, to);
  if (p == NULL) {
    n->stats.peer_dropped++; /* gossip has not told us where it is */
    return CHORUS_OK;
  }
  struct node_conn *c = peer_conn(n, p);
  if (c != NULL) {
    int rc = node__conn_send(c, m);
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
  }
  if (n->closing_all)
    return CHORUS_OK;
  /* Queued in the form the next dial speaks, under the same frame bound
   * as node__conn_send. */
  struct wire_msg low;
  char text[CHORUS_ERRMSG_SIZE];
  uint32_t version = p->dial_version ? p->dial_version : WIRE_PROTOCOL_VERSION;
  if (wire_reply_for(m, version, &low, text))
    m = &low;
  size_t need = wire_encoded_size(m);
  if (need > WIRE_FRAME_PREFIX + WIRE_MAX_FRAME_PEER) {
    n->stats.too_big++;
    return CHORUS_OK;
  }
  if (!pending_room(n, p, need))
    return CHORUS_OK;
  int rc = node__buf_encode(&p->pending, m, need);
  if (rc != CHORUS_OK)
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
  arm_redial(n);
  return CHORUS_OK;
}

void node__peer_conn_closed(struct node_conn *c) {
  struct node_peer *p = c->peer;
  if (p == NULL || p->out != c)
    return;
  struct node *n = c->n;
  p->out = NULL;
  if (c->welcomed)
    p->dial_version = 0; /* it may come back upgraded */
  if (n->closing_all)
    return;
  /* Our HELLO goes with this connection; the next dial queues its own. */
  size_t skip = c->hello_len, len = c->out.len - skip;
  assert(c->out.len >= skip);
  bool was_empty = p->pending.len == 0;
  if (len > 0 && pending_room(n, p, len)) {
    /* A dial that failed gives its frames back with their age: a peer
     * that refuses connections must not keep them young for ever (they
     * would reach it long past their requests' timeouts, a second,
     * unbounded hint path). */
    if (was_empty && !c->welcomed && c->queued_since != 0)
      p->pending_since = c->queued_since;
    if (node__buf_reserve(&p->pending, len) == CHORUS_OK) {
      memcpy(p->pending.data + p->pending.len, c->out.data + skip, len);
      p->pending.len += len;
      n->stats.peer_requeued++;
      arm_redial(n);
    } else {
      n->stats.peer_dropped++;
    }
  }
  if (c->wr.len) {
    n->stats.peer_lost_in_flight++;
    node_log(NODE_LOG_DEBUG, NODE_MOD,
             "peer %s: link closed with %zu bytes handed to the kernel; "
             "their operations end by timeout",
             c->addr, c->wr.len);
  }
}

/* on_redial: dials every peer whose queue waits and whose backoff ended;
 * drops queues older than a request timeout. */
static void on_redial(uv_timer_t *t) {
  struct node *n = t->data;
  chorus_ms now = node__now(n);
  for (size_t i = 0; i < n->npeers; i++) {
    struct node_peer *p = &n->peers[i];
    if (p->pending.len == 0 || p->out != NULL)
      continue;
    if (now - p->pending_since > n->cfg.timeout_ms) {
      node_log(NODE_LOG_DEBUG, NODE_MOD,
               "peer %s: %zu queued bytes dropped after %" PRIu64 " ms "
               "without a connection",
               p->addr, p->pending.len, now - p->pending_since);
      n->stats.peer_dropped++;
      node__buf_free(&p->pending);
      continue;
    }
    if (now >= p->retry_at)
      (void)peer_conn(n, p);
  }
  /* A dial's output leaves once it connects: an I/O event, which the
   * check phase follows, so this timer callback need not wake the poll. */
  arm_redial(n);
}

/* arm_redial: the redial timer at the earliest backoff end of a peer with
 * queued frames and no connection (or stopped: none). */
static void arm_redial(struct node *n) {
  if (n->closing_all)
    return;
  chorus_ms at = CORE_NEVER;
  for (size_t i = 0; i < n->npeers; i++) {
    const struct node_peer *p = &n->peers[i];
    if (p->pending.len && p->out == NULL && p->retry_at < at)
      at = p->retry_at;
  }
  if (at == CORE_NEVER) {
    uv_timer_stop(&n->redial_timer);
    return;
  }
  chorus_ms now = node__now(n);
  uv_timer_start(&n->redial_timer, on_redial, at > now ? at - now : 0, 0);
}

void node__peers_init(struct node *n) {
  uv_timer_init(&n->loop, &n->redial_timer);
  n->redial_timer.data = n;
}

void node__peers_close(struct node *n) {
  if (!uv_is_closing((uv_handle_t *)&n->redial_timer))
    uv_close((uv_handle_t *)&n->redial_timer, NULL);
}

void node__peers_free(struct node *n) {
  for (size_t i = 0; i < n->npeers; i++)
    node__buf_free(&n->peers[i].pending);
  chorus_free(n->peers);
  n->peers = NULL;
  n->npeers = n->cappeers = 0;
}

/* ------------------------------------------------------------------------
 * HELLO: the handshake of accepted connections, and the answer to ours
 * ------------------------------------------------------------------------ */

/* peer_challenge: the acceptor's answer to a peer HELLO that passed the
 * checks: WELCOME, then PEER_CHALLENGE with our fresh nonce. The link stays
 * in the handshake queue (and its deadline) until the proof comes. */
static void peer_challenge(struct node_conn *c, const struct wire_msg *m,
                           const struct wire_msg *welcome) {
  struct node *n = c->n;
  uint8_t nonce[PEER_AUTH_NONCE_BYTES], mac[PEER_AUTH_MAC_BYTES];
  uint8_t bind[PEER_AUTH_BINDING_BYTES];
  randombytes_buf(nonce, sizeof nonce);
  if (auth_new(c) == NULL) {
    node__conn_close(c);
    return;
  }
  struct peer_auth_keys keys = node__peer_keys(n);
  if (peer_auth_accept(c->auth, &keys, n->cfg.cluster, strlen(n->cfg.cluster),
                       n->cfg.id, m->hello.node_id, m->hello.credentials.ptr,
                       m->hello.credentials.len, nonce, tls_binding(c, bind),
                       mac) != CHORUS_OK) {
    auth_refused(c, "HELLO refused: its credentials are not a nonce "
                    "(a node older than the challenge-response?)");
    return;
  }
  c->version = m->hello.version;
  c->peer_id = m->hello.node_id;
  (void)node__conn_send(c, welcome);
  struct wire_msg ch = {.type = WIRE_PEER_CHALLENGE,
                        .request_id = NODE_HELLO_REQUEST_ID};
  ch.peer_challenge.nonce = (struct wire_bytes){nonce, sizeof nonce};
  ch.peer_challenge.mac = (struct wire_bytes){mac, sizeof mac};
  (void)node__conn_send(c, &ch);
  c->hello_len = c->out.len;
  c->auth_hold = true;
}

/* peer_on_proof: the acceptor checks the dialer's PEER_PROOF; the frames
 * behind it are handled in order once it passed. */
static void peer_on_proof(struct node_conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  struct peer_auth_keys keys = node__peer_keys(n);
  if (m->type != WIRE_PEER_PROOF) {
    auth_refused(c, "sent no PEER_PROOF after our challenge");
    return;
  }
  if (peer_auth_on_proof(c->auth, &keys, m->peer_proof.mac.ptr,
                         m->peer_proof.mac.len) != CHORUS_OK) {
    auth_refused(c, "proof refused: not made for this link's nonces under "
                    "our cluster key (a replayed or forged handshake?)");
    return;
  }
  node__conn_handshaken(c, NODE_CONN_PEER_IN);
  c->auth_hold = false;
  if (c->out.len)
    node__mark_dirty(c);
  node_log(NODE_LOG_DEBUG, NODE_MOD,
           "peer %016" PRIx64 " (%s): conn %" PRIu64 " authenticated%s",
           c->peer_id, c->addr, c->serial,
           c->auth->tagged ? ", frames tagged" : " (TLS)");
}

void node__on_hello(struct node_conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  char text[CHORUS_ERRMSG_SIZE];
  if (c->auth != NULL) { /* a peer we challenged: this is its answer */
    peer_on_proof(c, m);
    return;
  }
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
  if (rc == CHORUS_OK && m->hello.role == WIRE_ROLE_PEER &&
      m->hello.version < WIRE_PROTOCOL_PEER_AUTH) {
    /* Older peers sent static credentials that a recording replays. */
    n->stats.peer_auth_failed++;
    n->stats.auth_failed++;
    rc = CHORUS_EAUTH;
    snprintf(text, sizeof text,
             "peer links need protocol %u or later (the challenge-response)",
             WIRE_PROTOCOL_PEER_AUTH);
    wire_error_reply(&reply, m->request_id, rc, text);
  }
  if (rc == CHORUS_OK &&
      !node__tls_hello_check(c, m->hello.role, text, sizeof text)) {
    rc = CHORUS_EAUTH;
    wire_error_reply(&reply, m->request_id, rc, text);
  }
  if (rc == CHORUS_OK && n->shutting_down) {
    rc = CHORUS_EUNAVAILABLE;
    snprintf(text, sizeof text, "node shutting down");
    wire_error_reply(&reply, m->request_id, rc, text);
  }
  /* The client budget (node_accept.c, HOW IT WORKS); peers always get a
   * slot. */
  if (rc == CHORUS_OK && m->hello.role == WIRE_ROLE_CLIENT &&
      n->nclients >= n->cfg.max_connections) {
    rc = CHORUS_EOVERLOAD;
    snprintf(text, sizeof text,
             "too many connections (%" PRIu32 " client sessions is the limit)",
             n->cfg.max_connections);
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
  if (m->hello.role == WIRE_ROLE_CLIENT &&
      (n->cfg.auth_required || m->hello.credentials.len > 0)) {
    node__login_hello(c, m); /* node_login.c: a challenge, or a refusal */
    return;
  }
  if (m->hello.role == WIRE_ROLE_PEER) {
    peer_challenge(c, m, &reply);
    return;
  }
  node__conn_handshaken(c, NODE_CONN_CLIENT);
  (void)node__conn_send(c, &reply);
}

/* peer_on_challenge: the dialer checks the acceptor's MAC (a fake acceptor
 * stops here, having had nothing but our HELLO), then sends PEER_PROOF
 * ahead of the frames that waited behind the HELLO. */
static void peer_on_challenge(struct node_conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  if (c->auth == NULL || c->auth->state != PEER_AUTH_HELLO_SENT ||
      c->auth->id_a == 0) {
    auth_refused(c, "sent PEER_CHALLENGE out of turn");
    return;
  }
  struct peer_auth_keys keys = node__peer_keys(n);
  uint8_t proof[PEER_AUTH_MAC_BYTES], bind[PEER_AUTH_BINDING_BYTES];
  const struct wire_peer_challenge *ch = &m->peer_challenge;
  if (peer_auth_on_challenge(c->auth, &keys, c->auth->id_a, ch->nonce.ptr,
                             ch->nonce.len, ch->mac.ptr, ch->mac.len,
                             tls_binding(c, bind), proof) != CHORUS_OK) {
    auth_refused(c, "did not prove our cluster key (another cluster key, or "
                    "not a node of this cluster): link closed");
    return;
  }
  struct wire_msg pm = {.type = WIRE_PEER_PROOF,
                        .request_id = NODE_HELLO_REQUEST_ID};
  pm.peer_proof.mac = (struct wire_bytes){proof, sizeof proof};
  uint8_t frame[64];
  size_t len = 0;
  if (wire_encode(&pm, frame, sizeof frame, &len, NULL) != CHORUS_OK ||
      node__buf_reserve(&c->out, len) != CHORUS_OK) {
    node__conn_close(c);
    return;
  }
  /* Behind whatever handshake bytes are still unsent, before the frames. */
  size_t at = c->hello_len;
  memmove(c->out.data + at + len, c->out.data + at, c->out.len - at);
  memcpy(c->out.data + at, frame, len);
  c->out.len += len;
  c->hello_len += len;
  c->auth_hold = false;
  c->welcomed = true;
  c->peer_id = c->auth->id_a;
  node__mark_dirty(c);
  /* One link per direction: this one carries everything we send it. */
  node_log(NODE_LOG_DEBUG, NODE_MOD,
           "peer %016" PRIx64 " (%s): conn %" PRIu64 " carries our "
           "messages to it%s",
           c->peer_id, c->addr, c->serial,
           c->auth->tagged ? ", frames tagged" : " (TLS)");
}

static bool is_peer_auth_msg(uint8_t type) {
  return type == WIRE_PEER_CHALLENGE || type == WIRE_PEER_PROOF ||
         type == WIRE_PEER_TAG;
}

bool node__peer_handshake_answer(struct node_conn *c,
                                 const struct wire_msg *m) {
  if (c->kind != NODE_CONN_PEER_OUT) {
    /* PEER_IN: the handshake is over; a PEER_TAG here is one on a link
     * without tags (TLS). */
    if (!is_peer_auth_msg(m->type))
      return false;
    auth_refused(c, "sent a handshake message after the handshake");
    return true;
  }
  bool done = c->auth != NULL && c->auth->state == PEER_AUTH_DONE;
  if (m->type == WIRE_WELCOME && !done && c->auth != NULL &&
      c->auth->id_a == 0 && m->welcome.node_id != 0) {
    /* The challenge follows; it proves (or not) what this claims. */
    c->auth->id_a = m->welcome.node_id;
    c->version = m->welcome.version;
    return true;
  }
  if (m->type == WIRE_PEER_CHALLENGE && !done) {
    peer_on_challenge(c, m);
    return true;
  }
  if (m->type == WIRE_ERROR && m->request_id == NODE_HELLO_REQUEST_ID &&
      (!c->welcomed || m->error.code == CHORUS_EAUTH)) {
    if (m->error.code == CHORUS_EVERSION && !c->welcomed &&
        c->version > WIRE_PROTOCOL_PEER_AUTH && c->peer) {
      /* An older node (a rolling upgrade): dial again at once, one version
       * lower; a later dial tries ours first again. Never below the
       * challenge-response. */
      c->peer->dial_version = c->version - 1;
      node_log(NODE_LOG_INFO, NODE_MOD,
               "peer %s speaks an older protocol: dialling in version %" PRIu32,
               c->addr, c->peer->dial_version);
      node__conn_close(c);
      return true;
    }
    node_log(NODE_LOG_WARN, NODE_MOD, "peer %s refused our handshake: %.*s",
             c->addr, (int)m->error.text.len, (const char *)m->error.text.ptr);
    if (c->peer)
      c->peer->retry_at = node__now(c->n) + 10 * NODE_DIAL_BACKOFF_MS;
    node__conn_close(c);
    return true;
  }
  if (!done || is_peer_auth_msg(m->type)) {
    auth_refused(c, "sent a message out of the handshake's order");
    return true;
  }
  return false;
}

bool node__peer_frame(struct node_conn *c, const uint8_t *body, size_t len) {
  int rc = peer_auth_open(c->auth, body, len);
  if (rc == PEER_AUTH_FRAME_OK)
    return true;
  if (rc == PEER_AUTH_TAG_READ)
    return false;
  struct node *n = c->n;
  n->stats.peer_frame_auth_failed++;
  node_log(NODE_LOG_WARN, NODE_MOD,
           "peer %016" PRIx64 " (%s): conn %" PRIu64 ": a frame failed its "
           "tag (changed, replayed, dropped or reordered on the link): "
           "link closed",
           c->peer_id, c->addr, c->serial);
  node__conn_close(c);
  return false;
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

void node__fx_clock(void *ctx, const struct swim_member *m, int64_t bound_ms,
                    bool beyond) {
  (void)ctx;
  if (beyond)
    node_log(NODE_LOG_WARN, "swim",
             "clock of member %016" PRIx64 " (%s) is %+" PRId64
             " ms from ours, beyond the %" PRId64
             " ms bound: check its time sync",
             m->id, m->meta.addr, m->offset_ms, bound_ms);
  else
    node_log(NODE_LOG_INFO, "swim",
             "clock of member %016" PRIx64 " (%s) is back within the %" PRId64
             " ms bound: %+" PRId64 " ms from ours",
             m->id, m->meta.addr, bound_ms, m->offset_ms);
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
  if (p && m->state == SWIM_ALIVE && p->retry_at > node__now(n)) {
    /* Gossip just heard it: it listens now, whatever our last dial met. */
    p->retry_at = 0;
    if (p->pending.len && p->out == NULL)
      (void)peer_conn(n, p);
  }
}
