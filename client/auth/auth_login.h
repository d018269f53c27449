/* auth_login.h: the login handshake's decisions (issue 24), both sides,
 * pure: no clock, no socket, no randomness of its own (the caller draws
 * the nonces and passes the time). node/node_peer.c and libchorus only
 * move the bytes; docs/PROTOCOL.md, Login, is the normative description.
 *
 * HOW IT WORKS
 *
 *   client                                   node
 *   HELLO  credentials = [cnonce 24][user]  ->
 *                                          <- AUTH_CHALLENGE salt, ops,
 *                                             mem_kib, snonce
 *   (Argon2id: the client pays it, once per
 *    password and salt; the node never does)
 *   AUTH_PROOF proof                        ->
 *                                          <- AUTH_OK signature, WELCOME
 *                                             (or ERROR EAUTH and close)
 *
 * A name the node does not know gets a challenge all the same, with a salt
 * derived from the name and a secret of the cluster (auth_login_start), so
 * the answer to HELLO says nothing about which users exist: the login
 * fails at the proof, with the text a wrong password gets.
 *
 * Failed logins are limited per source address by a token bucket
 * (struct auth_limiter): each failure takes a token, a login starts only
 * while one is left, and tokens come back one per refill period. */
#ifndef CHORUS_AUTH_LOGIN_H
#define CHORUS_AUTH_LOGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus_auth.h"

/* HELLO's credentials for a login: [client nonce][user name]. */
#define AUTH_HELLO_MIN (AUTH_NONCE_BYTES + 1u)
#define AUTH_HELLO_MAX (AUTH_NONCE_BYTES + AUTH_USER_MAX)
#define AUTH_SECRET_BYTES 32u

/* auth_hello_encode: the credentials of @user's login with @cnonce into
 * @out (AUTH_HELLO_MAX bytes); their length, 0 when @user is no user
 * name. */
size_t auth_hello_encode(const char *user,
                         const uint8_t cnonce[AUTH_NONCE_BYTES],
                         uint8_t out[AUTH_HELLO_MAX]);

/* The node's half of one login, from HELLO to the proof. */
struct auth_login {
  char user[AUTH_USER_MAX + 1];
  uint8_t cnonce[AUTH_NONCE_BYTES], snonce[AUTH_NONCE_BYTES];
  bool known;             /* the user exists: the proof may pass */
  struct auth_verifier v; /* the user's; a made-up kdf when !known */
};

/* auth_login_start: reads HELLO's @cred (@len bytes) into @l and fills
 * the challenge's kdf in @l->v.kdf. @v is the user's verifier, or NULL
 * when the node knows no such user (the salt is then derived from the
 * name and @secret, the costs are the defaults). @snonce is the node's
 * fresh nonce. Errors: CHORUS_EINVAL (credentials that are not
 * [nonce][name], with a reason in @errmsg, may be NULL). */
int auth_login_start(struct auth_login *l, const uint8_t *cred, size_t len,
                     const struct auth_verifier *v,
                     const uint8_t secret[AUTH_SECRET_BYTES],
                     const uint8_t snonce[AUTH_NONCE_BYTES], char *errmsg);

/* auth_login_finish: whether @proof logs @l's user into cluster
 * @cluster; on success the ServerSignature goes to @sig. Unknown users
 * and wrong proofs fail alike: CHORUS_EAUTH. */
int auth_login_finish(const struct auth_login *l, const char *cluster,
                      const uint8_t proof[AUTH_KEY_BYTES],
                      uint8_t sig[AUTH_KEY_BYTES]);

/* auth_login_answer: the client's half: given the keys of its password
 * under the challenge's kdf (auth_client_keys), the proof to send and
 * the signature to expect. */
void auth_login_answer(const char *user, const uint8_t cnonce[AUTH_NONCE_BYTES],
                       const uint8_t snonce[AUTH_NONCE_BYTES],
                       const char *cluster,
                       const uint8_t client_key[AUTH_KEY_BYTES],
                       const uint8_t server_key[AUTH_KEY_BYTES],
                       uint8_t proof[AUTH_KEY_BYTES],
                       uint8_t want_sig[AUTH_KEY_BYTES]);

/* ------------------------------------------------------------------------
 * Failed logins, limited per source address
 * ------------------------------------------------------------------------ */

#define AUTH_LIMITER_SLOTS 64u /* addresses tracked; the oldest is reused */

struct auth_limiter {
  uint32_t burst;     /* failures allowed in a row (tokens when full) */
  uint64_t refill_ms; /* one token back per this many ms */
  struct {
    uint64_t addr_hash; /* 0: free */
    uint32_t tokens;
    uint64_t stamp_ms; /* when tokens were last counted */
  } slot[AUTH_LIMITER_SLOTS];
};

/* auth_limiter_init: @burst failures, one back per @refill_ms. */
void auth_limiter_init(struct auth_limiter *lim, uint32_t burst,
                       uint64_t refill_ms);
/* auth_limiter_allows: whether a login from @addr may start at @now_ms;
 * when not, @wait_ms (may be NULL) is the time until one may. */
bool auth_limiter_allows(struct auth_limiter *lim, const char *addr,
                         uint64_t now_ms, uint64_t *wait_ms);
/* auth_limiter_failed: a login from @addr failed at @now_ms. */
void auth_limiter_failed(struct auth_limiter *lim, const char *addr,
                         uint64_t now_ms);

#endif
