/* chorus_auth.h: password login without the password on the wire (issue 24):
 * SCRAM (RFC 5802 §3) with Argon2id (libsodium's crypto_pwhash) in place of
 * PBKDF2 and SHA-256 for its hash and HMAC. Pure: no clock, no socket; the
 * caller draws the nonces and salts (randombytes_buf) and moves the bytes.
 *
 *   SaltedPassword = Argon2id(password, salt, ops, mem)
 *   ClientKey      = HMAC(SaltedPassword, "Client Key")
 *   StoredKey      = SHA-256(ClientKey)
 *   ServerKey      = HMAC(SaltedPassword, "Server Key")
 *   AuthMessage    = "chorus-auth-v1" | len,user | client nonce
 *                    | server nonce | len,cluster
 *   ClientProof    = ClientKey XOR HMAC(StoredKey, AuthMessage)
 *   ServerSignature = HMAC(ServerKey, AuthMessage)
 *
 * A node keeps only the verifier (salt, costs, StoredKey, ServerKey): it
 * can check a proof, and prove it holds the verifier, but whoever reads
 * its metadata cannot log in (the proof needs ClientKey, which StoredKey
 * hides behind SHA-256) and must still guess passwords against Argon2id.
 * The nonces bind a proof to one login, so a captured exchange replays
 * nothing. */
#ifndef CHORUS_AUTH_H
#define CHORUS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_SALT_BYTES 16u
#define AUTH_KEY_BYTES 32u   /* StoredKey, ServerKey, proofs, signatures */
#define AUTH_NONCE_BYTES 24u /* each side's */
#define AUTH_USER_MAX 47u    /* a user name's bytes: [A-Za-z0-9_.@-] */
#define AUTH_PASSWORD_MAX 1024u
/* The costs a verifier may ask for. A node hands them to whoever logs in,
 * so a client bounds what it will spend: at most AUTH_MEM_KIB_MAX of memory
 * and AUTH_OPS_MAX passes. */
#define AUTH_OPS_MIN 1u
#define AUTH_OPS_MAX 10u
#define AUTH_MEM_KIB_MIN 8u
#define AUTH_MEM_KIB_MAX (256u * 1024)
/* The defaults of `chorus user add` (libsodium's "interactive" costs). */
#define AUTH_OPS_DEFAULT 2u
#define AUTH_MEM_KIB_DEFAULT (64u * 1024)

struct auth_kdf {
  uint8_t salt[AUTH_SALT_BYTES];
  uint32_t ops;     /* Argon2id passes */
  uint32_t mem_kib; /* Argon2id memory, KiB */
};

struct auth_verifier {
  struct auth_kdf kdf;
  uint8_t stored_key[AUTH_KEY_BYTES];
  uint8_t server_key[AUTH_KEY_BYTES];
};

/* auth_init: libsodium's one-time setup (idempotent, thread-safe); 0, or
 * -1 when the library cannot start. Every function below calls it. */
int auth_init(void);

/* auth_kdf_check: whether @k's costs are in bounds; CHORUS_EINVAL with a
 * reason in @errmsg (CHORUS_ERRMSG_SIZE bytes, may be NULL). */
int auth_kdf_check(const struct auth_kdf *k, char *errmsg);

/* auth_user_check: whether @name (@len bytes) is a user name. */
int auth_user_check(const char *name, size_t len, char *errmsg);

/* auth_client_keys: ClientKey and ServerKey of @password under @kdf (the
 * expensive step: Argon2id). Errors: CHORUS_EINVAL (costs, a password
 * over AUTH_PASSWORD_MAX), CHORUS_ENOMEM (Argon2id's memory). */
int auth_client_keys(const char *password, size_t len,
                     const struct auth_kdf *kdf,
                     uint8_t client_key[AUTH_KEY_BYTES],
                     uint8_t server_key[AUTH_KEY_BYTES], char *errmsg);

/* auth_verifier_make: the verifier a node keeps for @password under @kdf
 * (its salt drawn by the caller). Errors as auth_client_keys. */
int auth_verifier_make(const char *password, size_t len,
                       const struct auth_kdf *kdf, struct auth_verifier *out,
                       char *errmsg);

/* auth_message: AuthMessage into @out (@cap bytes, at least
 * AUTH_MESSAGE_MAX); its length. */
#define AUTH_MESSAGE_MAX                                                       \
  (16u + 1u + AUTH_USER_MAX + 2u * AUTH_NONCE_BYTES + 1u + 255u)
size_t auth_message(const char *user, size_t user_len,
                    const uint8_t cnonce[AUTH_NONCE_BYTES],
                    const uint8_t snonce[AUTH_NONCE_BYTES], const char *cluster,
                    size_t cluster_len, uint8_t *out, size_t cap);

/* auth_client_proof: ClientProof of @client_key for @msg. */
void auth_client_proof(const uint8_t client_key[AUTH_KEY_BYTES],
                       const uint8_t *msg, size_t len,
                       uint8_t proof[AUTH_KEY_BYTES]);

/* auth_server_verify: whether @proof for @msg comes from the password of
 * @v (constant time in the proof's bytes). */
bool auth_server_verify(const struct auth_verifier *v, const uint8_t *msg,
                        size_t len, const uint8_t proof[AUTH_KEY_BYTES]);

/* auth_signature: ServerSignature of @server_key for @msg; a client
 * compares it with auth_equal (the node proves it holds the verifier). */
void auth_signature(const uint8_t server_key[AUTH_KEY_BYTES],
                    const uint8_t *msg, size_t len,
                    uint8_t sig[AUTH_KEY_BYTES]);
bool auth_equal(const uint8_t a[AUTH_KEY_BYTES],
                const uint8_t b[AUTH_KEY_BYTES]);

#endif
