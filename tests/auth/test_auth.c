/* test_auth.c: SCRAM with Argon2id (client/auth/chorus_auth.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth_login.h"
#include "chorus_auth.h"
#include "chorus_error.h"

/* Cheap costs: the tests check the protocol, not Argon2id's strength. */
static struct auth_kdf cheap(uint8_t salt_byte) {
  struct auth_kdf k = {.ops = AUTH_OPS_MIN, .mem_kib = AUTH_MEM_KIB_MIN};
  memset(k.salt, salt_byte, sizeof k.salt);
  return k;
}

struct login {
  uint8_t msg[AUTH_MESSAGE_MAX];
  size_t len;
  uint8_t proof[AUTH_KEY_BYTES], sig[AUTH_KEY_BYTES];
};

/* login: the client's half with @password against nonces @c and @s. */
static int client_half(const char *user, const char *password,
                       const struct auth_kdf *kdf, uint8_t c, uint8_t s,
                       const char *cluster, struct login *out,
                       uint8_t server_key[AUTH_KEY_BYTES]) {
  uint8_t cn[AUTH_NONCE_BYTES], sn[AUTH_NONCE_BYTES], ck[AUTH_KEY_BYTES];
  memset(cn, c, sizeof cn);
  memset(sn, s, sizeof sn);
  out->len = auth_message(user, strlen(user), cn, sn, cluster, strlen(cluster),
                          out->msg, sizeof out->msg);
  assert_true(out->len > 0);
  int rc =
      auth_client_keys(password, strlen(password), kdf, ck, server_key, NULL);
  if (rc == CHORUS_OK)
    auth_client_proof(ck, out->msg, out->len, out->proof);
  return rc;
}

static void right_password_logs_in_both_ways(void **state) {
  (void)state;
  struct auth_kdf kdf = cheap(7);
  struct auth_verifier v;
  assert_int_equal(auth_verifier_make("s3cret", 6, &kdf, &v, NULL), CHORUS_OK);
  struct login l;
  uint8_t client_server_key[AUTH_KEY_BYTES];
  assert_int_equal(
      client_half("ann", "s3cret", &kdf, 1, 2, "prod", &l, client_server_key),
      CHORUS_OK);
  assert_true(auth_server_verify(&v, l.msg, l.len, l.proof));
  /* The node proves it holds the verifier; the client checks. */
  auth_signature(v.server_key, l.msg, l.len, l.sig);
  uint8_t want[AUTH_KEY_BYTES];
  auth_signature(client_server_key, l.msg, l.len, want);
  assert_true(auth_equal(l.sig, want));
  /* The verifier holds neither the password nor ClientKey: the proof
   * differs from every key it holds. */
  assert_memory_not_equal(l.proof, v.stored_key, AUTH_KEY_BYTES);
  assert_memory_not_equal(l.proof, v.server_key, AUTH_KEY_BYTES);
}

static void anything_else_fails(void **state) {
  (void)state;
  struct auth_kdf kdf = cheap(7);
  struct auth_verifier v;
  assert_int_equal(auth_verifier_make("s3cret", 6, &kdf, &v, NULL), CHORUS_OK);
  uint8_t sk[AUTH_KEY_BYTES];
  struct login l;
  /* A wrong password, an empty one, another salt. */
  assert_int_equal(client_half("ann", "s3creT", &kdf, 1, 2, "prod", &l, sk),
                   CHORUS_OK);
  assert_false(auth_server_verify(&v, l.msg, l.len, l.proof));
  assert_int_equal(client_half("ann", "", &kdf, 1, 2, "prod", &l, sk),
                   CHORUS_OK);
  assert_false(auth_server_verify(&v, l.msg, l.len, l.proof));
  struct auth_kdf other = cheap(8);
  assert_int_equal(client_half("ann", "s3cret", &other, 1, 2, "prod", &l, sk),
                   CHORUS_OK);
  assert_false(auth_server_verify(&v, l.msg, l.len, l.proof));
  /* A proof replayed into another login (another server nonce), for
   * another user or cluster: the message differs, the proof fails. */
  assert_int_equal(client_half("ann", "s3cret", &kdf, 1, 2, "prod", &l, sk),
                   CHORUS_OK);
  struct login replay;
  assert_int_equal(
      client_half("ann", "s3cret", &kdf, 1, 3, "prod", &replay, sk), CHORUS_OK);
  assert_false(auth_server_verify(&v, replay.msg, replay.len, l.proof));
  assert_true(auth_server_verify(&v, replay.msg, replay.len, replay.proof));
  assert_int_equal(
      client_half("bob", "s3cret", &kdf, 1, 2, "prod", &replay, sk), CHORUS_OK);
  assert_false(auth_server_verify(&v, replay.msg, replay.len, l.proof));
  assert_int_equal(
      client_half("ann", "s3cret", &kdf, 1, 2, "test", &replay, sk), CHORUS_OK);
  assert_false(auth_server_verify(&v, replay.msg, replay.len, l.proof));
  /* One flipped bit of the proof. */
  l.proof[5] ^= 0x10;
  assert_false(auth_server_verify(&v, l.msg, l.len, l.proof));
}

static void costs_and_names_are_bounded(void **state) {
  (void)state;
  char err[CHORUS_ERRMSG_SIZE];
  struct auth_kdf k = cheap(1);
  k.mem_kib = AUTH_MEM_KIB_MAX + 1;
  uint8_t a[AUTH_KEY_BYTES], b[AUTH_KEY_BYTES];
  assert_int_equal(auth_client_keys("x", 1, &k, a, b, err), CHORUS_EINVAL);
  assert_non_null(strstr(err, "memory"));
  k = cheap(1);
  k.ops = 0;
  assert_int_equal(auth_kdf_check(&k, err), CHORUS_EINVAL);
  k.ops = AUTH_OPS_MAX + 1;
  assert_int_equal(auth_kdf_check(&k, err), CHORUS_EINVAL);
  k = cheap(1);
  char big[AUTH_PASSWORD_MAX + 1];
  memset(big, 'p', sizeof big);
  assert_int_equal(auth_client_keys(big, sizeof big, &k, a, b, err),
                   CHORUS_EINVAL);
  assert_int_equal(auth_user_check("ann", 3, err), CHORUS_OK);
  assert_int_equal(auth_user_check("a.b@c-d_e", 9, err), CHORUS_OK);
  assert_int_equal(auth_user_check("", 0, err), CHORUS_EINVAL);
  assert_int_equal(auth_user_check("a b", 3, err), CHORUS_EINVAL);
  assert_int_equal(auth_user_check("a:b", 3, err), CHORUS_EINVAL);
  char longname[AUTH_USER_MAX + 1];
  memset(longname, 'u', sizeof longname);
  assert_int_equal(auth_user_check(longname, sizeof longname, err),
                   CHORUS_EINVAL);
  /* The message does not fit a short buffer: 0, nothing overrun. */
  uint8_t n[AUTH_NONCE_BYTES] = {0}, small[20];
  assert_int_equal(auth_message("ann", 3, n, n, "c", 1, small, sizeof small),
                   0);
}

/* The handshake as node and client run it (auth_login.h). */
static void login_handshake_both_sides(void **state) {
  (void)state;
  struct auth_kdf kdf = cheap(9);
  struct auth_verifier v;
  assert_int_equal(auth_verifier_make("pw", 2, &kdf, &v, NULL), CHORUS_OK);
  uint8_t secret[AUTH_SECRET_BYTES] = {1}, cn[AUTH_NONCE_BYTES],
          sn[AUTH_NONCE_BYTES];
  memset(cn, 3, sizeof cn);
  memset(sn, 4, sizeof sn);
  uint8_t cred[AUTH_HELLO_MAX];
  size_t cl = auth_hello_encode("bob", cn, cred);
  assert_int_equal(cl, AUTH_NONCE_BYTES + 3);
  assert_int_equal(auth_hello_encode("no spaces", cn, cred), 0);
  struct auth_login l;
  assert_int_equal(auth_login_start(&l, cred, cl, &v, secret, sn, NULL),
                   CHORUS_OK);
  assert_string_equal(l.user, "bob");
  assert_memory_equal(l.v.kdf.salt, kdf.salt, sizeof kdf.salt);
  /* The client answers with its password's keys. */
  uint8_t ck[AUTH_KEY_BYTES], sk[AUTH_KEY_BYTES], proof[AUTH_KEY_BYTES],
      want[AUTH_KEY_BYTES], sig[AUTH_KEY_BYTES];
  assert_int_equal(auth_client_keys("pw", 2, &l.v.kdf, ck, sk, NULL),
                   CHORUS_OK);
  auth_login_answer("bob", cn, sn, "prod", ck, sk, proof, want);
  assert_int_equal(auth_login_finish(&l, "prod", proof, sig), CHORUS_OK);
  assert_true(auth_equal(sig, want));
  /* Another cluster, another proof. */
  assert_int_equal(auth_login_finish(&l, "dev", proof, sig), CHORUS_EAUTH);
  /* A wrong password fails at the proof. */
  assert_int_equal(auth_client_keys("px", 2, &l.v.kdf, ck, sk, NULL),
                   CHORUS_OK);
  auth_login_answer("bob", cn, sn, "prod", ck, sk, proof, want);
  assert_int_equal(auth_login_finish(&l, "prod", proof, sig), CHORUS_EAUTH);
  /* Bad credentials are refused before any challenge. */
  assert_int_equal(
      auth_login_start(&l, cred, AUTH_NONCE_BYTES, &v, secret, sn, NULL),
      CHORUS_EINVAL);
}

static void unknown_user_looks_known(void **state) {
  (void)state;
  uint8_t secret[AUTH_SECRET_BYTES] = {7}, other[AUTH_SECRET_BYTES] = {8},
          cn[AUTH_NONCE_BYTES] = {0}, sn[AUTH_NONCE_BYTES] = {0};
  uint8_t cred[AUTH_HELLO_MAX];
  size_t cl = auth_hello_encode("ghost", cn, cred);
  struct auth_login a, b, c;
  assert_int_equal(auth_login_start(&a, cred, cl, NULL, secret, sn, NULL),
                   CHORUS_OK);
  assert_int_equal(auth_login_start(&b, cred, cl, NULL, secret, sn, NULL),
                   CHORUS_OK);
  assert_int_equal(auth_login_start(&c, cred, cl, NULL, other, sn, NULL),
                   CHORUS_OK);
  /* The same salt each time (a real user's is stable too), the default
   * costs, and a salt no one can predict without the secret. */
  assert_memory_equal(a.v.kdf.salt, b.v.kdf.salt, AUTH_SALT_BYTES);
  assert_memory_not_equal(a.v.kdf.salt, c.v.kdf.salt, AUTH_SALT_BYTES);
  assert_int_equal(a.v.kdf.ops, AUTH_OPS_DEFAULT);
  assert_int_equal(a.v.kdf.mem_kib, AUTH_MEM_KIB_DEFAULT);
  /* Whatever the proof (even one made with all-zero keys), it fails. */
  uint8_t zero[AUTH_KEY_BYTES] = {0}, proof[AUTH_KEY_BYTES],
          want[AUTH_KEY_BYTES], sig[AUTH_KEY_BYTES];
  auth_login_answer("ghost", cn, sn, "prod", zero, zero, proof, want);
  assert_int_equal(auth_login_finish(&a, "prod", proof, sig), CHORUS_EAUTH);
}

static void limiter_counts_failures_per_address(void **state) {
  (void)state;
  struct auth_limiter lim;
  auth_limiter_init(&lim, 3, 1000);
  uint64_t wait = 0;
  for (int i = 0; i < 3; i++) {
    assert_true(auth_limiter_allows(&lim, "10.0.0.1", 100, &wait));
    auth_limiter_failed(&lim, "10.0.0.1", 100);
  }
  assert_false(auth_limiter_allows(&lim, "10.0.0.1", 100, &wait));
  assert_int_equal(wait, 1000);
  /* Another address is not held back. */
  assert_true(auth_limiter_allows(&lim, "10.0.0.2", 100, &wait));
  assert_false(auth_limiter_allows(&lim, "10.0.0.1", 1099, &wait));
  assert_int_equal(wait, 1);
  /* One token back per period. */
  assert_true(auth_limiter_allows(&lim, "10.0.0.1", 1100, &wait));
  auth_limiter_failed(&lim, "10.0.0.1", 1100);
  assert_false(auth_limiter_allows(&lim, "10.0.0.1", 1100, &wait));
  /* A long quiet spell fills the bucket, never beyond its size. */
  assert_true(auth_limiter_allows(&lim, "10.0.0.1", 100000, &wait));
  for (int i = 0; i < 3; i++)
    auth_limiter_failed(&lim, "10.0.0.1", 100000);
  assert_false(auth_limiter_allows(&lim, "10.0.0.1", 100000, &wait));
  /* Many addresses: the table reuses the oldest slot, never grows. */
  char a[32];
  for (int i = 0; i < 200; i++) {
    snprintf(a, sizeof a, "10.1.%d.%d", i / 256, i % 256);
    auth_limiter_failed(&lim, a, 200000 + (uint64_t)i);
  }
  assert_true(auth_limiter_allows(&lim, "10.1.0.199", 200199, &wait));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(right_password_logs_in_both_ways),
      cmocka_unit_test(anything_else_fails),
      cmocka_unit_test(costs_and_names_are_bounded),
      cmocka_unit_test(login_handshake_both_sides),
      cmocka_unit_test(unknown_user_looks_known),
      cmocka_unit_test(limiter_counts_failures_per_address),
  };
  return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
