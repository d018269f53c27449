/* node_tls.c: TLS 1.3 on chorusd's client and peer port: which connection
 * speaks TLS, the policy at HELLO, the contexts and their reload. The
 * engine itself is client/tls/ (sans-I/O); node_conn.c moves its bytes.
 *
 * HOW IT WORKS
 *
 * One port, three kinds of talker. An accepted connection's first byte
 * decides (node__tls_sniff): 0x16 is a TLS ClientHello, anything else the
 * first byte of a frame's big-endian length (which would be a frame of at
 * least 369 MB, over every limit, so the two never meet). A ClientHello
 * gets a server engine when the node has TLS (--client-tls or --peer-tls
 * not off); without TLS it is counted and the connection closed. Who the
 * other side is (client or peer) is known only at its HELLO, inside TLS
 * or not, so the policy is applied there (node__tls_hello_check):
 *
 *   client, --client-tls required, plaintext  refused: ERROR EAUTH in
 *                                             plaintext, which a plaintext
 *                                             client can read
 *   client, --client-tls off|optional          served either way
 *   peer, --peer-tls required                  must be TLS and have shown
 *                                              a certificate of --tls-ca
 *   peer, --peer-tls off                       served either way
 *
 * So --client-tls optional is the step of a rolling switch: plaintext and
 * TLS clients share the port while they move over, then required.
 *
 * The server context asks every TLS client for a certificate and verifies
 * the one shown against --tls-ca (a client without one is let in, unless
 * it claims to be a peer). Peer links we dial under --peer-tls required
 * show our certificate and verify the other node's chain against the CA;
 * they do not check its address: a peer is anyone the cluster CA signed
 * (the CA is the cluster's membership authority), and nodes move between
 * addresses that gossip, not a certificate, tells us.
 *
 * Revocation. With --tls-crl every chain verified (peers' both ways,
 * clients' certificates) is checked against that CA's CRLs: a revoked
 * certificate fails the handshake like one of another CA (counted
 * tls_auth_failed, a WARN line "certificate revoked").
 *
 * Reload. SIGHUP reads --tls-cert, --tls-key, --tls-ca and --tls-crl
 * again into new contexts; connections opened from then on use them, open
 * ones keep theirs (each engine holds a reference), so nothing is
 * dropped, with one exception: every open connection whose other side
 * showed a certificate has it verified again against the new context
 * (recheck), and one that no longer passes (revoked by the new CRL,
 * expired since, of a CA no longer trusted) is closed, counted and
 * logged: a revocation must cut the links a stolen certificate already
 * holds. A reload that fails (a file half written) keeps the old contexts
 * and logs why.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "node_int.h"

/* build: fresh contexts from the configuration into *@server, *@dial. */
static int build(const struct node_config *cfg, struct tls_ctx **server,
                 struct tls_ctx **dial, char *errmsg) {
  *server = *dial = NULL;
  if (cfg->client_tls == NODE_TLS_OFF && cfg->peer_tls == NODE_TLS_OFF)
    return CHORUS_OK;
  /* As --cluster-key (node_config.c): other users may neither read nor
   * change a private key; its group may read it. */
  struct stat st;
  if (stat(cfg->tls_key, &st) == 0 &&
      (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)))
    return chorus_errf(errmsg, CHORUS_EPERM,
                       "--tls-key %s: mode %04o lets other users %s it; "
                       "chmod 600 %s",
                       cfg->tls_key, (unsigned)(st.st_mode & 07777),
                       st.st_mode & S_IROTH ? "read" : "change", cfg->tls_key);
  const char *ca = cfg->tls_ca[0] ? cfg->tls_ca : NULL;
  struct tls_ctx_opts o = {
      .role = TLS_ROLE_SERVER,
      .cert = cfg->tls_cert,
      .key = cfg->tls_key,
      .ca = ca,
      .crl = cfg->tls_crl[0] ? cfg->tls_crl : NULL,
      .verify = ca ? TLS_VERIFY_OPTIONAL : TLS_VERIFY_NONE,
  };
  int rc = tls_ctx_new(&o, server, errmsg);
  if (rc != CHORUS_OK || cfg->peer_tls == NODE_TLS_OFF)
    return rc;
  o.role = TLS_ROLE_CLIENT;
  o.verify = TLS_VERIFY_REQUIRED;
  rc = tls_ctx_new(&o, dial, errmsg);
  if (rc != CHORUS_OK) {
    tls_ctx_free(*server);
    *server = NULL;
  }
  return rc;
}

int node__tls_open(struct node *n, char *errmsg) {
  uv_signal_init(&n->loop, &n->sighup);
  n->sighup.data = n;
  return build(&n->cfg, &n->tls_server, &n->tls_dial, errmsg);
}

/* recheck: after a reload, closes every open connection whose
 * certificate the new contexts refuse (see Reload above). */
static void recheck(struct node *n) {
  for (struct node_conn *c = n->conns, *next; c != NULL; c = next) {
    next = c->next; /* closing unlinks @c */
    if (c->tls == NULL || c->closing || !tls_engine_peer_verified(c->tls))
      continue;
    const struct tls_ctx *ctx =
        c->kind == NODE_CONN_PEER_OUT ? n->tls_dial : n->tls_server;
    char err[CHORUS_ERRMSG_SIZE] = "";
    int rc = ctx ? tls_engine_recheck(c->tls, ctx, err) : CHORUS_OK;
    if (rc != CHORUS_EAUTH)
      continue;
    n->stats.tls_auth_failed++;
    n->stats.tls_reload_closed++;
    node_log(NODE_LOG_WARN, NODE_MOD,
             "conn %" PRIu64 " (%s): closing after the TLS reload: %s",
             c->serial, c->addr, err);
    node__conn_close(c);
  }
}

static void on_sighup(uv_signal_t *s, int signum) {
  struct node *n = s->data;
  (void)signum;
  if (n->tls_server == NULL) {
    node_log(NODE_LOG_INFO, NODE_MOD, "SIGHUP: no TLS to reload");
    return;
  }
  struct tls_ctx *server, *dial;
  char err[CHORUS_ERRMSG_SIZE] = "";
  if (build(&n->cfg, &server, &dial, err) != CHORUS_OK) {
    n->stats.tls_reload_failed++;
    node_log(NODE_LOG_ERROR, NODE_MOD,
             "SIGHUP: TLS reload failed, keeping the certificates in use: %s",
             err);
    return;
  }
  tls_ctx_free(n->tls_server);
  tls_ctx_free(n->tls_dial);
  n->tls_server = server;
  n->tls_dial = dial;
  n->stats.tls_reloads++;
  recheck(n);
  node_log(NODE_LOG_INFO, NODE_MOD,
           "SIGHUP: TLS certificates reloaded from %s; new connections use "
           "them",
           n->cfg.tls_cert);
}

void node__tls_start(struct node *n) {
  uv_signal_start(&n->sighup, on_sighup, SIGHUP);
  if (n->tls_server != NULL)
    node_log(NODE_LOG_INFO, NODE_MOD,
             "TLS 1.3: clients %s, peers %s; certificate %s, CA %s, CRL %s",
             n->cfg.client_tls == NODE_TLS_REQUIRED   ? "required"
             : n->cfg.client_tls == NODE_TLS_OPTIONAL ? "optional"
                                                      : "off",
             n->cfg.peer_tls == NODE_TLS_REQUIRED ? "required" : "off",
             n->cfg.tls_cert, n->cfg.tls_ca[0] ? n->cfg.tls_ca : "(none)",
             n->cfg.tls_crl[0] ? n->cfg.tls_crl : "(none)");
}

void node__tls_close(struct node *n) {
  if (!uv_is_closing((uv_handle_t *)&n->sighup))
    uv_close((uv_handle_t *)&n->sighup, NULL);
}

void node__tls_free(struct node *n) {
  tls_ctx_free(n->tls_server);
  tls_ctx_free(n->tls_dial);
  n->tls_server = n->tls_dial = NULL;
}

int node__tls_dial(struct node_conn *c) {
  c->sniffed = true;
  if (c->n->tls_dial == NULL)
    return CHORUS_OK;
  char err[CHORUS_ERRMSG_SIZE];
  return tls_engine_new(c->n->tls_dial, NULL, &c->tls, err);
}

bool node__tls_sniff(struct node_conn *c, const uint8_t *p, size_t len) {
  struct node *n = c->n;
  c->sniffed = true;
  if (len == 0 || p[0] != TLS_RECORD_HANDSHAKE || c->kind != NODE_CONN_NEW)
    return true;
  if (n->tls_server == NULL) {
    n->stats.tls_off_refused++;
    node_log(NODE_LOG_WARN, NODE_MOD,
             "conn %" PRIu64 " (%s): closing: a TLS ClientHello, but this "
             "node has no TLS (--client-tls off)",
             c->serial, c->addr);
    node__conn_close(c);
    return false;
  }
  char err[CHORUS_ERRMSG_SIZE];
  if (tls_engine_new(n->tls_server, NULL, &c->tls, err) != CHORUS_OK) {
    node__conn_close(c);
    return false;
  }
  return true;
}

void node__tls_input(struct node_conn *c, const uint8_t *p, size_t len,
                     void (*deliver)(struct node_conn *c, const uint8_t *p,
                                     size_t len)) {
  struct node *n = c->n;
  struct tls_engine *e = c->tls;
  bool was = tls_engine_established(e);
  int rc = tls_engine_feed(e, p, len);
  while (rc == CHORUS_OK && !c->closing && !c->close_after_flush) {
    size_t got = 0;
    rc = tls_engine_read(e, n->tls_plain, sizeof n->tls_plain, &got);
    if (rc != CHORUS_OK || got == 0)
      break;
    deliver(c, n->tls_plain, got);
  }
  if (!was && tls_engine_established(e)) {
    n->stats.tls_handshakes++;
    node_log(NODE_LOG_DEBUG, NODE_MOD,
             "conn %" PRIu64 " (%s): %s established%s", c->serial, c->addr,
             tls_engine_version(e),
             tls_engine_peer_verified(e) ? ", certificate verified" : "");
  }
  if (rc != CHORUS_OK && !c->closing) {
    if (rc == CHORUS_EAUTH)
      n->stats.tls_auth_failed++;
    else if (rc == CHORUS_EMALFORMED)
      n->stats.tls_malformed++;
    node_log(rc == CHORUS_ECLOSED ? NODE_LOG_DEBUG : NODE_LOG_WARN, NODE_MOD,
             "conn %" PRIu64 " (%s): closing: %s", c->serial, c->addr,
             tls_engine_errmsg(e));
    if (c->kind == NODE_CONN_PEER_OUT && c->peer && rc != CHORUS_ECLOSED)
      c->peer->retry_at = node__now(n) + 10 * NODE_DIAL_BACKOFF_MS;
    /* Its alert goes out, then it closes; frames in @out never entered
     * the engine, so a peer link's go back to its queue (node_peer.c). */
    node__conn_refuse(c);
    return;
  }
  if (tls_engine_pending(e) || (tls_engine_established(e) && c->out.len))
    node__mark_dirty(c);
}

bool node__tls_hello_check(struct node_conn *c, int role, char *why,
                           size_t cap) {
  struct node *n = c->n;
  if (role == WIRE_ROLE_PEER) {
    if (n->cfg.peer_tls != NODE_TLS_REQUIRED ||
        (c->tls != NULL && tls_engine_peer_verified(c->tls)))
      return true;
    n->stats.tls_peer_refused++;
    snprintf(why, cap,
             "peer links need TLS with a certificate of the cluster CA "
             "(--peer-tls required)");
    return false;
  }
  if (n->cfg.client_tls != NODE_TLS_REQUIRED || c->tls != NULL)
    return true;
  n->stats.tls_plaintext_refused++;
  snprintf(why, cap,
           "this node requires TLS from clients (--client-tls required): "
           "connect with --tls-ca");
  return false;
}
