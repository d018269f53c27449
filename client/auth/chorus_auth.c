/* chorus_auth.c: SCRAM with Argon2id (chorus_auth.h). */
#include "chorus_auth.h"

#include <string.h>

#include <sodium.h>

#include "chorus_error.h"

int auth_init(void) {
  return sodium_init() < 0 ? -1 : 0;
}

int auth_kdf_check(const struct auth_kdf *k, char *errmsg) {
  if (k->ops < AUTH_OPS_MIN || k->ops > AUTH_OPS_MAX)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "Argon2id passes %u: between %u and %u", k->ops,
                       AUTH_OPS_MIN, AUTH_OPS_MAX);
  if (k->mem_kib < AUTH_MEM_KIB_MIN || k->mem_kib > AUTH_MEM_KIB_MAX)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "Argon2id memory %u KiB: between %u and %u", k->mem_kib,
                       AUTH_MEM_KIB_MIN, AUTH_MEM_KIB_MAX);
  return CHORUS_OK;
}

int auth_user_check(const char *name, size_t len, char *errmsg) {
  if (len == 0 || len > AUTH_USER_MAX)
    return chorus_errf(errmsg, CHORUS_EINVAL, "a user name holds 1..%u bytes",
                       AUTH_USER_MAX);
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '@' ||
          c == '-'))
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "a user name holds letters, digits, _ . @ and - "
                         "only");
  }
  return CHORUS_OK;
}

static void hmac(const uint8_t key[AUTH_KEY_BYTES], const void *msg, size_t len,
                 uint8_t out[AUTH_KEY_BYTES]) {
  crypto_auth_hmacsha256(out, msg, len, key);
}

int auth_client_keys(const char *password, size_t len,
                     const struct auth_kdf *kdf,
                     uint8_t client_key[AUTH_KEY_BYTES],
                     uint8_t server_key[AUTH_KEY_BYTES], char *errmsg) {
  int rc = auth_kdf_check(kdf, errmsg);
  if (rc != CHORUS_OK)
    return rc;
  if (len > AUTH_PASSWORD_MAX)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "a password holds at most %u bytes", AUTH_PASSWORD_MAX);
  if (auth_init() != 0)
    return chorus_errf(errmsg, CHORUS_EIO, "libsodium did not start");
  uint8_t salted[AUTH_KEY_BYTES];
  if (crypto_pwhash(salted, sizeof salted, password, len, kdf->salt, kdf->ops,
                    (size_t)kdf->mem_kib * 1024u,
                    crypto_pwhash_ALG_ARGON2ID13) != 0)
    return chorus_errf(errmsg, CHORUS_ENOMEM,
                       "Argon2id could not get %u KiB of memory", kdf->mem_kib);
  hmac(salted, "Client Key", 10, client_key);
  hmac(salted, "Server Key", 10, server_key);
  sodium_memzero(salted, sizeof salted);
  return CHORUS_OK;
}

int auth_verifier_make(const char *password, size_t len,
                       const struct auth_kdf *kdf, struct auth_verifier *out,
                       char *errmsg) {
  uint8_t client_key[AUTH_KEY_BYTES];
  int rc =
      auth_client_keys(password, len, kdf, client_key, out->server_key, errmsg);
  if (rc != CHORUS_OK)
    return rc;
  out->kdf = *kdf;
  crypto_hash_sha256(out->stored_key, client_key, sizeof client_key);
  sodium_memzero(client_key, sizeof client_key);
  return CHORUS_OK;
}

static size_t put(uint8_t *out, size_t at, size_t cap, const void *p,
                  size_t n) {
  if (at + n <= cap)
    memcpy(out + at, p, n);
  return at + n;
}

size_t auth_message(const char *user, size_t user_len,
                    const uint8_t cnonce[AUTH_NONCE_BYTES],
                    const uint8_t snonce[AUTH_NONCE_BYTES], const char *cluster,
                    size_t cluster_len, uint8_t *out, size_t cap) {
  /* Lengths first, so no two (user, cluster) pairs read alike. */
  uint8_t ul = (uint8_t)(user_len > 255 ? 255 : user_len);
  uint8_t cl = (uint8_t)(cluster_len > 255 ? 255 : cluster_len);
  size_t at = put(out, 0, cap, "chorus-auth-v1", 14);
  at = put(out, at, cap, &ul, 1);
  at = put(out, at, cap, user, ul);
  at = put(out, at, cap, cnonce, AUTH_NONCE_BYTES);
  at = put(out, at, cap, snonce, AUTH_NONCE_BYTES);
  at = put(out, at, cap, &cl, 1);
  at = put(out, at, cap, cluster, cl);
  return at <= cap ? at : 0;
}

void auth_client_proof(const uint8_t client_key[AUTH_KEY_BYTES],
                       const uint8_t *msg, size_t len,
                       uint8_t proof[AUTH_KEY_BYTES]) {
  uint8_t stored[AUTH_KEY_BYTES], sig[AUTH_KEY_BYTES];
  (void)auth_init();
  crypto_hash_sha256(stored, client_key, AUTH_KEY_BYTES);
  hmac(stored, msg, len, sig);
  for (size_t i = 0; i < AUTH_KEY_BYTES; i++)
    proof[i] = client_key[i] ^ sig[i];
}

bool auth_server_verify(const struct auth_verifier *v, const uint8_t *msg,
                        size_t len, const uint8_t proof[AUTH_KEY_BYTES]) {
  uint8_t sig[AUTH_KEY_BYTES], client_key[AUTH_KEY_BYTES],
      stored[AUTH_KEY_BYTES];
  (void)auth_init();
  hmac(v->stored_key, msg, len, sig);
  for (size_t i = 0; i < AUTH_KEY_BYTES; i++)
    client_key[i] = proof[i] ^ sig[i];
  crypto_hash_sha256(stored, client_key, sizeof client_key);
  sodium_memzero(client_key, sizeof client_key);
  return auth_equal(stored, v->stored_key);
}

void auth_signature(const uint8_t server_key[AUTH_KEY_BYTES],
                    const uint8_t *msg, size_t len,
                    uint8_t sig[AUTH_KEY_BYTES]) {
  (void)auth_init();
  hmac(server_key, msg, len, sig);
}

bool auth_equal(const uint8_t a[AUTH_KEY_BYTES],
                const uint8_t b[AUTH_KEY_BYTES]) {
  return sodium_memcmp(a, b, AUTH_KEY_BYTES) == 0;
}
