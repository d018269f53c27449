/* auth_login.c: the login handshake's decisions and the failed-login
 * limiter (auth_login.h). */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth_login.h"
#include "chorus_error.h"

size_t auth_hello_encode(const char *user,
                         const uint8_t cnonce[AUTH_NONCE_BYTES],
                         uint8_t out[AUTH_HELLO_MAX]) {
  size_t ul = strnlen(user, AUTH_USER_MAX + 1);
  if (auth_user_check(user, ul, NULL) != CHORUS_OK)
    return 0;
  memcpy(out, cnonce, AUTH_NONCE_BYTES);
  memcpy(out + AUTH_NONCE_BYTES, user, ul);
  return AUTH_NONCE_BYTES + ul;
}

/* unknown_kdf: the challenge of a name the node does not know: a salt
 * that is a keyed hash of the name (the same name gets the same salt each
 * time, as a real user's does), and the default costs. */
static void unknown_kdf(const char *user, size_t ul,
                        const uint8_t secret[AUTH_SECRET_BYTES],
                        struct auth_kdf *k) {
  static const char tag[] = "chorus login salt v1";
  crypto_generichash_state st;
  crypto_generichash_init(&st, secret, AUTH_SECRET_BYTES, sizeof k->salt);
  crypto_generichash_update(&st, (const unsigned char *)tag, sizeof tag - 1);
  crypto_generichash_update(&st, (const unsigned char *)user, ul);
  crypto_generichash_final(&st, k->salt, sizeof k->salt);
  k->ops = AUTH_OPS_DEFAULT;
  k->mem_kib = AUTH_MEM_KIB_DEFAULT;
}

int auth_login_start(struct auth_login *l, const uint8_t *cred, size_t len,
                     const struct auth_verifier *v,
                     const uint8_t secret[AUTH_SECRET_BYTES],
                     const uint8_t snonce[AUTH_NONCE_BYTES], char *errmsg) {
  if (auth_init() != 0)
    return CHORUS_EINTERNAL;
  memset(l, 0, sizeof *l);
  if (len < AUTH_HELLO_MIN || len > AUTH_HELLO_MAX) {
    if (errmsg != NULL)
      snprintf(errmsg, CHORUS_ERRMSG_SIZE,
               "login credentials are a %u-byte nonce and a user name",
               AUTH_NONCE_BYTES);
    return CHORUS_EINVAL;
  }
  size_t ul = len - AUTH_NONCE_BYTES;
  const char *name = (const char *)cred + AUTH_NONCE_BYTES;
  if (auth_user_check(name, ul, errmsg) != CHORUS_OK)
    return CHORUS_EINVAL;
  memcpy(l->cnonce, cred, AUTH_NONCE_BYTES);
  memcpy(l->user, name, ul);
  l->user[ul] = '\0';
  memcpy(l->snonce, snonce, AUTH_NONCE_BYTES);
  if (v != NULL) {
    l->known = true;
    l->v = *v;
  } else {
    unknown_kdf(l->user, ul, secret, &l->v.kdf);
  }
  return CHORUS_OK;
}

int auth_login_finish(const struct auth_login *l, const char *cluster,
                      const uint8_t proof[AUTH_KEY_BYTES],
                      uint8_t sig[AUTH_KEY_BYTES]) {
  uint8_t msg[AUTH_MESSAGE_MAX];
  size_t n = auth_message(l->user, strlen(l->user), l->cnonce, l->snonce,
                          cluster, strlen(cluster), msg, sizeof msg);
  /* An unknown user's proof is checked too (against no verifier: it
   * fails), so both refusals take the same path. */
  bool ok = n > 0 && auth_server_verify(&l->v, msg, n, proof) && l->known;
  if (!ok)
    return CHORUS_EAUTH;
  auth_signature(l->v.server_key, msg, n, sig);
  return CHORUS_OK;
}

void auth_login_answer(const char *user, const uint8_t cnonce[AUTH_NONCE_BYTES],
                       const uint8_t snonce[AUTH_NONCE_BYTES],
                       const char *cluster,
                       const uint8_t client_key[AUTH_KEY_BYTES],
                       const uint8_t server_key[AUTH_KEY_BYTES],
                       uint8_t proof[AUTH_KEY_BYTES],
                       uint8_t want_sig[AUTH_KEY_BYTES]) {
  uint8_t msg[AUTH_MESSAGE_MAX];
  size_t n = auth_message(user, strlen(user), cnonce, snonce, cluster,
                          strlen(cluster), msg, sizeof msg);
  auth_client_proof(client_key, msg, n, proof);
  auth_signature(server_key, msg, n, want_sig);
}

/* ------------------------------------------------------------------------
 * The limiter
 * ------------------------------------------------------------------------ */

void auth_limiter_init(struct auth_limiter *lim, uint32_t burst,
                       uint64_t refill_ms) {
  memset(lim, 0, sizeof *lim);
  lim->burst = burst ? burst : 1;
  lim->refill_ms = refill_ms ? refill_ms : 1;
}

static uint64_t addr_hash(const char *addr) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (const char *p = addr; *p; p++)
    h = (h ^ (uint8_t)*p) * 1099511628211ull;
  return h ? h : 1;
}

/* slot_of: @addr's slot with its tokens brought up to @now; NULL when it
 * has none and @create is false (a full bucket: nothing to keep). */
static int slot_of(struct auth_limiter *lim, const char *addr, uint64_t now,
                   bool create) {
  uint64_t h = addr_hash(addr);
  int found = -1, oldest = 0;
  for (unsigned i = 0; i < AUTH_LIMITER_SLOTS; i++) {
    if (lim->slot[i].addr_hash == h) {
      found = (int)i;
      break;
    }
    if (lim->slot[i].addr_hash == 0 ||
        (lim->slot[oldest].addr_hash != 0 &&
         lim->slot[i].stamp_ms < lim->slot[oldest].stamp_ms))
      oldest = (int)i;
  }
  if (found >= 0) {
    uint64_t back = now > lim->slot[found].stamp_ms
                        ? (now - lim->slot[found].stamp_ms) / lim->refill_ms
                        : 0;
    uint64_t t = lim->slot[found].tokens + back;
    if (t >= lim->burst) {
      lim->slot[found].tokens = lim->burst;
      lim->slot[found].stamp_ms = now;
    } else {
      lim->slot[found].tokens = (uint32_t)t;
      lim->slot[found].stamp_ms += back * lim->refill_ms;
    }
    return found;
  }
  if (!create)
    return -1;
  lim->slot[oldest].addr_hash = h;
  lim->slot[oldest].tokens = lim->burst;
  lim->slot[oldest].stamp_ms = now;
  return oldest;
}

bool auth_limiter_allows(struct auth_limiter *lim, const char *addr,
                         uint64_t now_ms, uint64_t *wait_ms) {
  int i = slot_of(lim, addr, now_ms, false);
  if (i < 0 || lim->slot[i].tokens > 0)
    return true;
  if (wait_ms != NULL)
    *wait_ms = lim->slot[i].stamp_ms + lim->refill_ms - now_ms;
  return false;
}

void auth_limiter_failed(struct auth_limiter *lim, const char *addr,
                         uint64_t now_ms) {
  int i = slot_of(lim, addr, now_ms, true);
  if (lim->slot[i].tokens > 0)
    lim->slot[i].tokens--;
}
