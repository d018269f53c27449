/* test_peer_auth.c: the peer link's challenge-response and frame tags
 * (node/core/peer_auth.h), two ends back to back: a link forms both ways
 * and its frames pass; a replayed challenge or proof from an earlier link,
 * a wrong key, swapped ids, another cluster, a flipped byte, truncated
 * fields, a TLS binding of another session fail; a frame changed,
 * dropped, replayed or reordered fails its tag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_error.h"
#include "peer_auth.h"
#include "wire.h"

static const uint8_t key_a[1][PEER_AUTH_KEY_BYTES] = {{1, 2, 3}};
static const uint8_t key_b[1][PEER_AUTH_KEY_BYTES] = {{9, 9, 9}};
/* Nodes in a rotation (install, use, remove): B installed beside A, one
 * node already signing with B, another still with A. */
static const uint8_t key_ba[2][PEER_AUTH_KEY_BYTES] = {{9, 9, 9}, {1, 2, 3}};
static const uint8_t key_ab[2][PEER_AUTH_KEY_BYTES] = {{1, 2, 3}, {9, 9, 9}};

static const struct peer_auth_keys KA = {key_a, 1}, KB = {key_b, 1},
                                   KBA = {key_ba, 2}, KAB = {key_ab, 2};

#define ID_D 0x1111u
#define ID_A 0x2222u

/* A handshake's messages, as the wire would carry them. */
struct hs {
  struct peer_auth d, a;
  uint8_t nonce_a[PEER_AUTH_NONCE_BYTES];
  uint8_t challenge[PEER_AUTH_MAC_BYTES], proof[PEER_AUTH_MAC_BYTES];
};

static void nonce(uint8_t out[PEER_AUTH_NONCE_BYTES], uint8_t seed) {
  for (size_t i = 0; i < PEER_AUTH_NONCE_BYTES; i++)
    out[i] = (uint8_t)(seed * 31 + i);
}

/* hello_and_challenge: the dialer's HELLO (nonce @nd) and the acceptor's
 * challenge (nonce @na) under @ka. */
static void hello_and_challenge(struct hs *h, uint8_t nd, uint8_t na,
                                const struct peer_auth_keys *ka,
                                const uint8_t *binding) {
  uint8_t n[PEER_AUTH_NONCE_BYTES];
  nonce(n, nd);
  peer_auth_dial(&h->d, "prod", 4, ID_D, n);
  nonce(h->nonce_a, na);
  assert_int_equal(peer_auth_accept(&h->a, ka, "prod", 4, ID_A, ID_D,
                                    h->d.nonce_d, PEER_AUTH_NONCE_BYTES,
                                    h->nonce_a, binding, h->challenge),
                   CHORUS_OK);
}

static int dialer_checks(struct hs *h, const struct peer_auth_keys *kd,
                         const uint8_t *binding) {
  return peer_auth_on_challenge(&h->d, kd, ID_A, h->nonce_a,
                                PEER_AUTH_NONCE_BYTES, h->challenge,
                                PEER_AUTH_MAC_BYTES, binding, h->proof);
}

static void link_up(struct hs *h, const struct peer_auth_keys *kd,
                    const struct peer_auth_keys *ka, uint8_t nd, uint8_t na) {
  hello_and_challenge(h, nd, na, ka, NULL);
  assert_int_equal(dialer_checks(h, kd, NULL), CHORUS_OK);
  assert_int_equal(peer_auth_on_proof(&h->a, ka, h->proof, sizeof h->proof),
                   CHORUS_OK);
  assert_int_equal(h->d.state, PEER_AUTH_DONE);
  assert_int_equal(h->a.state, PEER_AUTH_DONE);
}

/* send: @body from @from to @to through a tag, as the link carries it. */
static int send_frame(struct peer_auth *from, struct peer_auth *to,
                      const char *body) {
  uint8_t tf[PEER_AUTH_TAG_FRAME];
  peer_auth_seal(from, (const uint8_t *)body, strlen(body), tf);
  int rc = peer_auth_open(to, tf + 4, sizeof tf - 4);
  if (rc != PEER_AUTH_TAG_READ)
    return rc;
  return peer_auth_open(to, (const uint8_t *)body, strlen(body));
}

static void link_forms_and_frames_pass(void **state) {
  (void)state;
  struct hs h;
  link_up(&h, &KA, &KA, 1, 2);
  assert_true(h.d.tagged && h.a.tagged);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(send_frame(&h.d, &h.a, "to the acceptor"),
                     PEER_AUTH_FRAME_OK);
    assert_int_equal(send_frame(&h.a, &h.d, "to the dialer"),
                     PEER_AUTH_FRAME_OK);
  }
  /* A rotation: each side signs with its primary, accepts any it holds. */
  struct hs r;
  link_up(&r, &KBA, &KAB, 3, 4);
  assert_int_equal(send_frame(&r.d, &r.a, "x"), PEER_AUTH_FRAME_OK);
  link_up(&r, &KAB, &KBA, 5, 6);
  assert_int_equal(send_frame(&r.a, &r.d, "y"), PEER_AUTH_FRAME_OK);
}

/* The tag frame's bytes are PEER_TAG as wire_encode writes it. */
static void tag_frame_is_peer_tag(void **state) {
  (void)state;
  struct hs h;
  link_up(&h, &KA, &KA, 1, 2);
  uint8_t tf[PEER_AUTH_TAG_FRAME], enc[64];
  peer_auth_seal(&h.d, (const uint8_t *)"b", 1, tf);
  struct wire_msg m = {.type = WIRE_PEER_TAG, .request_id = 0};
  m.peer_tag.tag = (struct wire_bytes){tf + 10, PEER_AUTH_TAG_BYTES};
  size_t len = 0;
  assert_int_equal(wire_encode(&m, enc, sizeof enc, &len, NULL), CHORUS_OK);
  assert_int_equal(len, sizeof tf);
  assert_memory_equal(enc, tf, sizeof tf);
}

static void replays_fail(void **state) {
  (void)state;
  struct hs old, now;
  link_up(&old, &KA, &KA, 1, 2);
  /* A recorded HELLO + PROOF, replayed: the acceptor's nonce is new. */
  uint8_t n[PEER_AUTH_NONCE_BYTES], mac[PEER_AUTH_MAC_BYTES];
  nonce(n, 7);
  assert_int_equal(peer_auth_accept(&now.a, &KA, "prod", 4, ID_A, ID_D,
                                    old.d.nonce_d, PEER_AUTH_NONCE_BYTES, n,
                                    NULL, mac),
                   CHORUS_OK);
  assert_int_equal(peer_auth_on_proof(&now.a, &KA, old.proof, sizeof old.proof),
                   CHORUS_EAUTH);
  assert_int_equal(now.a.state, PEER_AUTH_FAILED);
  /* A recorded challenge, replayed to a new dial: its nonce is new. */
  nonce(n, 8);
  peer_auth_dial(&now.d, "prod", 4, ID_D, n);
  assert_int_equal(peer_auth_on_challenge(&now.d, &KA, ID_A, old.nonce_a,
                                          PEER_AUTH_NONCE_BYTES, old.challenge,
                                          PEER_AUTH_MAC_BYTES, NULL, mac),
                   CHORUS_EAUTH);
  /* The acceptor's MAC reflected as the dialer's proof. */
  struct hs r;
  hello_and_challenge(&r, 1, 2, &KA, NULL);
  assert_int_equal(
      peer_auth_on_proof(&r.a, &KA, r.challenge, sizeof r.challenge),
      CHORUS_EAUTH);
  /* A proof after the link is up, or a second challenge. */
  link_up(&r, &KA, &KA, 1, 2);
  assert_int_equal(peer_auth_on_proof(&r.a, &KA, r.proof, sizeof r.proof),
                   CHORUS_EAUTH);
  link_up(&r, &KA, &KA, 1, 2);
  assert_int_equal(dialer_checks(&r, &KA, NULL), CHORUS_EAUTH);
}

static void wrong_keys_ids_clusters_fail(void **state) {
  (void)state;
  struct hs h;
  /* A fake acceptor (another key): the dialer stops at its challenge. */
  hello_and_challenge(&h, 1, 2, &KB, NULL);
  assert_int_equal(dialer_checks(&h, &KA, NULL), CHORUS_EAUTH);
  /* A dialer that holds the acceptor's key but signs with one the
   * acceptor does not hold (B removed there too early): its proof fails. */
  hello_and_challenge(&h, 1, 2, &KA, NULL);
  struct peer_auth_keys both = {key_ba + 1, 1}; /* = A, verifies */
  assert_int_equal(dialer_checks(&h, &both, NULL), CHORUS_OK);
  hello_and_challenge(&h, 1, 2, &KA, NULL);
  assert_int_equal(dialer_checks(&h, &KBA, NULL), CHORUS_OK); /* signs B */
  assert_int_equal(peer_auth_on_proof(&h.a, &KA, h.proof, sizeof h.proof),
                   CHORUS_EAUTH);
  /* Swapped ids: the challenge claimed for another acceptor. */
  hello_and_challenge(&h, 1, 2, &KA, NULL);
  uint8_t proof[PEER_AUTH_MAC_BYTES];
  assert_int_equal(peer_auth_on_challenge(&h.d, &KA, ID_D, h.nonce_a,
                                          PEER_AUTH_NONCE_BYTES, h.challenge,
                                          PEER_AUTH_MAC_BYTES, NULL, proof),
                   CHORUS_EAUTH);
  /* The acceptor told another dialer id than the one who dialled. */
  uint8_t n[PEER_AUTH_NONCE_BYTES];
  nonce(n, 1);
  peer_auth_dial(&h.d, "prod", 4, ID_D, n);
  nonce(h.nonce_a, 2);
  assert_int_equal(peer_auth_accept(&h.a, &KA, "prod", 4, ID_A, ID_A + 1, n,
                                    sizeof n, h.nonce_a, NULL, h.challenge),
                   CHORUS_OK);
  assert_int_equal(dialer_checks(&h, &KA, NULL), CHORUS_EAUTH);
  /* A MAC of another cluster under the same key. */
  peer_auth_dial(&h.d, "prod", 4, ID_D, n);
  assert_int_equal(peer_auth_accept(&h.a, &KA, "stage", 5, ID_A, ID_D, n,
                                    sizeof n, h.nonce_a, NULL, h.challenge),
                   CHORUS_OK);
  assert_int_equal(dialer_checks(&h, &KA, NULL), CHORUS_EAUTH);
  /* A flipped bit in either MAC. */
  hello_and_challenge(&h, 1, 2, &KA, NULL);
  h.challenge[5] ^= 0x10;
  assert_int_equal(dialer_checks(&h, &KA, NULL), CHORUS_EAUTH);
  hello_and_challenge(&h, 1, 2, &KA, NULL);
  assert_int_equal(dialer_checks(&h, &KA, NULL), CHORUS_OK);
  h.proof[31] ^= 1;
  assert_int_equal(peer_auth_on_proof(&h.a, &KA, h.proof, sizeof h.proof),
                   CHORUS_EAUTH);
}

static void truncated_fields_fail(void **state) {
  (void)state;
  struct hs h;
  uint8_t n[PEER_AUTH_NONCE_BYTES], mac[PEER_AUTH_MAC_BYTES];
  nonce(n, 1);
  assert_int_equal(peer_auth_accept(&h.a, &KA, "prod", 4, ID_A, ID_D, n,
                                    sizeof n - 1, n, NULL, mac),
                   CHORUS_EAUTH);
  assert_int_equal(
      peer_auth_accept(&h.a, &KA, "prod", 4, ID_A, ID_D, n, 0, n, NULL, mac),
      CHORUS_EAUTH);
  hello_and_challenge(&h, 1, 2, &KA, NULL);
  assert_int_equal(peer_auth_on_challenge(
                       &h.d, &KA, ID_A, h.nonce_a, PEER_AUTH_NONCE_BYTES - 1,
                       h.challenge, PEER_AUTH_MAC_BYTES, NULL, mac),
                   CHORUS_EAUTH);
  hello_and_challenge(&h, 1, 2, &KA, NULL);
  assert_int_equal(peer_auth_on_challenge(&h.d, &KA, ID_A, h.nonce_a,
                                          PEER_AUTH_NONCE_BYTES, h.challenge,
                                          PEER_AUTH_MAC_BYTES - 1, NULL, mac),
                   CHORUS_EAUTH);
  hello_and_challenge(&h, 1, 2, &KA, NULL);
  assert_int_equal(dialer_checks(&h, &KA, NULL), CHORUS_OK);
  assert_int_equal(peer_auth_on_proof(&h.a, &KA, h.proof, 16), CHORUS_EAUTH);
}

/* TLS: the MACs bind the session's exported bytes; no frame tags. */
static void tls_binding_counts(void **state) {
  (void)state;
  uint8_t b1[PEER_AUTH_BINDING_BYTES] = {1}, b2[PEER_AUTH_BINDING_BYTES] = {2};
  struct hs h;
  hello_and_challenge(&h, 1, 2, &KA, b1);
  assert_int_equal(dialer_checks(&h, &KA, b1), CHORUS_OK);
  assert_false(h.d.tagged);
  assert_int_equal(peer_auth_on_proof(&h.a, &KA, h.proof, sizeof h.proof),
                   CHORUS_OK);
  /* Spliced from another TLS session, or with TLS stripped. */
  hello_and_challenge(&h, 1, 2, &KA, b1);
  assert_int_equal(dialer_checks(&h, &KA, b2), CHORUS_EAUTH);
  hello_and_challenge(&h, 1, 2, &KA, b1);
  assert_int_equal(dialer_checks(&h, &KA, NULL), CHORUS_EAUTH);
}

static void frames_changed_dropped_replayed_reordered_fail(void **state) {
  (void)state;
  struct hs h;
  uint8_t t1[PEER_AUTH_TAG_FRAME], t2[PEER_AUTH_TAG_FRAME];
  const uint8_t *f1 = (const uint8_t *)"frame one",
                *f2 = (const uint8_t *)"two";
  /* Changed. */
  link_up(&h, &KA, &KA, 1, 2);
  peer_auth_seal(&h.d, f1, 9, t1);
  assert_int_equal(peer_auth_open(&h.a, t1 + 4, sizeof t1 - 4),
                   PEER_AUTH_TAG_READ);
  assert_int_equal(peer_auth_open(&h.a, (const uint8_t *)"frame onE", 9),
                   CHORUS_EAUTH);
  /* Dropped: the second frame arrives first. */
  link_up(&h, &KA, &KA, 1, 2);
  peer_auth_seal(&h.d, f1, 9, t1);
  peer_auth_seal(&h.d, f2, 3, t2);
  assert_int_equal(peer_auth_open(&h.a, t2 + 4, sizeof t2 - 4),
                   PEER_AUTH_TAG_READ);
  assert_int_equal(peer_auth_open(&h.a, f2, 3), CHORUS_EAUTH);
  /* Replayed: the first frame and its tag twice. */
  link_up(&h, &KA, &KA, 1, 2);
  peer_auth_seal(&h.d, f1, 9, t1);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(peer_auth_open(&h.a, t1 + 4, sizeof t1 - 4),
                     PEER_AUTH_TAG_READ);
    assert_int_equal(peer_auth_open(&h.a, f1, 9),
                     i == 0 ? PEER_AUTH_FRAME_OK : CHORUS_EAUTH);
  }
  /* Reflected: a frame the dialer sealed, sent back to it. */
  link_up(&h, &KA, &KA, 1, 2);
  peer_auth_seal(&h.d, f1, 9, t1);
  assert_int_equal(peer_auth_open(&h.d, t1 + 4, sizeof t1 - 4),
                   PEER_AUTH_TAG_READ);
  assert_int_equal(peer_auth_open(&h.d, f1, 9), CHORUS_EAUTH);
  /* A frame without its tag; a truncated tag. */
  link_up(&h, &KA, &KA, 1, 2);
  assert_int_equal(peer_auth_open(&h.a, f1, 9), CHORUS_EAUTH);
  link_up(&h, &KA, &KA, 1, 2);
  peer_auth_seal(&h.d, f1, 9, t1);
  assert_int_equal(peer_auth_open(&h.a, t1 + 4, sizeof t1 - 5), CHORUS_EAUTH);
  /* Another link's tag for the same frame (the same keys, new nonces). */
  struct hs o;
  link_up(&o, &KA, &KA, 3, 4);
  link_up(&h, &KA, &KA, 1, 2);
  peer_auth_seal(&o.d, f1, 9, t1);
  assert_int_equal(peer_auth_open(&h.a, t1 + 4, sizeof t1 - 4),
                   PEER_AUTH_TAG_READ);
  assert_int_equal(peer_auth_open(&h.a, f1, 9), CHORUS_EAUTH);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(link_forms_and_frames_pass),
      cmocka_unit_test(tag_frame_is_peer_tag),
      cmocka_unit_test(replays_fail),
      cmocka_unit_test(wrong_keys_ids_clusters_fail),
      cmocka_unit_test(truncated_fields_fail),
      cmocka_unit_test(tls_binding_counts),
      cmocka_unit_test(frames_changed_dropped_replayed_reordered_fail),
  };
  return cmocka_run_group_tests_name("peer_auth", tests, NULL, NULL);
}
