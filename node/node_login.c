/* node_login.c: chorusd's half of a client's login (issue 24): moves the
 * bytes of the handshake whose decisions client/auth/auth_login.h makes
 * (docs/PROTOCOL.md, Login), counts and limits failures per source
 * address, and logs each failure once (never a password: the node never
 * sees one, only a proof). The node does no Argon2id: the client pays
 * it; a login costs the node two HMACs and a hash. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "node_int.h"

/* Five failures in a row from one address, then one more try every two
 * seconds: a person mistyping is never held up, a guesser gets half a
 * guess a second, and the node pays for none of them in Argon2id. */
#define LOGIN_BURST 5u
#define LOGIN_REFILL_MS 2000u

void node__login_init(struct node *n) {
  uint32_t refill = LOGIN_REFILL_MS;
  /* Tests shorten the window (tests/node/test_node_auth.c). */
  const char *env = getenv("CHORUS_LOGIN_REFILL_MS");
  if (env != NULL && atoi(env) > 0)
    refill = (uint32_t)atoi(env);
  auth_limiter_init(&n->login_limiter, LOGIN_BURST, refill);
  /* Salts of names that are no user derive from the cluster key, so
   * every node of the cluster answers one name alike (docs: without
   * --cluster-key that key is public, and so is which names exist). */
  static const char tag[] = "chorus login secret v1";
  crypto_generichash(n->login_secret, sizeof n->login_secret,
                     (const unsigned char *)tag, sizeof tag - 1, n->cfg.key,
                     SWIM_KEY_BYTES);
}

/* host_of: the address of @c without its port: the limiter's key. */
static void host_of(const struct node_conn *c, char *out, size_t cap) {
  int port;
  if (node_addr_split(c->addr, out, cap, &port) != CHORUS_OK)
    snprintf(out, cap, "%s", c->addr);
}

static void refuse(struct node_conn *c, uint64_t request_id, int code,
                   const char *text) {
  c->n->stats.refused++;
  if (c->login_pending) {
    sodium_memzero(&c->login, sizeof c->login);
    c->login_pending = false;
  }
  node__conn_reject(c, request_id, code, text);
}

void node__login_hello(struct node_conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  char host[SWIM_ADDR_MAX], text[CHORUS_ERRMSG_SIZE + 64];
  const struct wire_bytes cred = m->hello.credentials;
  if (cred.len == 0) {
    n->stats.login_missing++;
    refuse(c, m->request_id, CHORUS_EAUTH,
           "this node requires a login: connect as a user (chorus --user "
           "NAME with CHORUS_PASSWORD, or chorus_config.user)");
    return;
  }
  host_of(c, host, sizeof host);
  uint64_t wait = 0;
  if (!auth_limiter_allows(&n->login_limiter, host, node__now(n), &wait)) {
    n->stats.login_limited++;
    snprintf(text, sizeof text,
             "too many failed logins from %s: try again in %" PRIu64 " ms",
             host, wait);
    refuse(c, m->request_id, CHORUS_EAUTH, text);
    return;
  }
  /* The user's verifier as the metadata in force holds it. */
  char name[AUTH_USER_MAX + 1] = "";
  if (cred.len > AUTH_NONCE_BYTES && cred.len <= AUTH_HELLO_MAX) {
    memcpy(name, cred.ptr + AUTH_NONCE_BYTES, cred.len - AUTH_NONCE_BYTES);
    name[cred.len - AUTH_NONCE_BYTES] = '\0';
  }
  const struct meta_node *meta = core_meta(n->core);
  const struct meta_user *u = meta != NULL && name[0]
                                  ? meta_state_user(meta_node_state(meta), name)
                                  : NULL;
  struct auth_verifier v, *vp = NULL;
  if (u != NULL) {
    memcpy(v.kdf.salt, u->salt, sizeof v.kdf.salt);
    v.kdf.ops = u->ops;
    v.kdf.mem_kib = u->mem_kib;
    memcpy(v.stored_key, u->stored_key, sizeof v.stored_key);
    memcpy(v.server_key, u->server_key, sizeof v.server_key);
    vp = &v;
  }
  uint8_t snonce[AUTH_NONCE_BYTES];
  randombytes_buf(snonce, sizeof snonce);
  char why[CHORUS_ERRMSG_SIZE] = "";
  int rc = auth_login_start(&c->login, cred.ptr, cred.len, vp, n->login_secret,
                            snonce, why);
  sodium_memzero(&v, sizeof v);
  if (rc != CHORUS_OK) {
    n->stats.login_missing++;
    snprintf(text, sizeof text, "bad login credentials: %s", why);
    refuse(c, m->request_id, CHORUS_EAUTH, text);
    return;
  }
  c->login_pending = true;
  c->version = m->hello.version;
  struct wire_msg ch = {.type = WIRE_AUTH_CHALLENGE,
                        .request_id = m->request_id};
  ch.auth_challenge.salt =
      (struct wire_bytes){c->login.v.kdf.salt, sizeof c->login.v.kdf.salt};
  ch.auth_challenge.ops = c->login.v.kdf.ops;
  ch.auth_challenge.mem_kib = c->login.v.kdf.mem_kib;
  ch.auth_challenge.nonce =
      (struct wire_bytes){c->login.snonce, sizeof c->login.snonce};
  (void)node__conn_send(c, &ch);
}

void node__login_proof(struct node_conn *c, const struct wire_msg *m) {
  struct node *n = c->n;
  char host[SWIM_ADDR_MAX], text[CHORUS_ERRMSG_SIZE];
  if (m->type != WIRE_AUTH_PROOF) {
    snprintf(text, sizeof text, "log in first: AUTH_PROOF expected, not %s",
             wire_type_name(m->type));
    refuse(c, m->request_id, CHORUS_EAUTH, text);
    return;
  }
  uint8_t sig[AUTH_KEY_BYTES];
  int rc =
      auth_login_finish(&c->login, n->cfg.cluster, m->auth_key.key.ptr, sig);
  if (rc != CHORUS_OK) {
    host_of(c, host, sizeof host);
    n->stats.login_failed++;
    auth_limiter_failed(&n->login_limiter, host, node__now(n));
    /* One line per failure: who, from where; never what was typed (the
     * node only ever holds a proof). */
    node_log(NODE_LOG_WARN, NODE_MOD,
             "conn %" PRIu64 " (%s): login as %s refused (%s)", c->serial,
             c->addr, c->login.user,
             c->login.known ? "wrong password" : "no such user");
    refuse(c, m->request_id, CHORUS_EAUTH,
           "login refused: unknown user or wrong password");
    return;
  }
  n->stats.logins++;
  memcpy(c->user, c->login.user, sizeof c->user);
  sodium_memzero(&c->login, sizeof c->login);
  c->login_pending = false;
  node_log(NODE_LOG_DEBUG, NODE_MOD, "conn %" PRIu64 " (%s): logged in as %s",
           c->serial, c->addr, c->user);
  struct wire_msg ok = {.type = WIRE_AUTH_OK, .request_id = m->request_id};
  ok.auth_key.key = (struct wire_bytes){sig, sizeof sig};
  (void)node__conn_send(c, &ok);
  node__conn_handshaken(c, NODE_CONN_CLIENT);
  struct wire_msg w = {.type = WIRE_WELCOME, .request_id = m->request_id};
  w.welcome.version = c->version;
  w.welcome.cluster = (struct wire_bytes){(const uint8_t *)n->cfg.cluster,
                                          strlen(n->cfg.cluster)};
  w.welcome.node_id = n->cfg.id;
  (void)node__conn_send(c, &w);
}

bool node__login_may(struct node_conn *c, const struct wire_msg *m,
                     uint8_t role, const char *verb) {
  struct node *n = c->n;
  if (!n->cfg.auth_required)
    return true;
  const struct meta_node *meta = core_meta(n->core);
  char text[WIRE_MAX_ERROR_TEXT];
  if (meta != NULL && core_user_may(meta_node_state(meta), c->user, role, verb,
                                    0, "", text, sizeof text))
    return true;
  if (meta == NULL)
    snprintf(text, sizeof text, "this node keeps no users");
  node__conn_send_error(c, m->request_id, CHORUS_EPERM, text);
  return false;
}
