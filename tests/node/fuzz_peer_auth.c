/* fuzz_peer_auth.c: libFuzzer target for the peer link's authentication
 * (node/core/peer_auth.h). The input is a script: its first bytes are the
 * HELLO's credentials and the PEER_PROOF's MAC an acceptor gets from
 * outside (which must never pass: nobody outside holds the key), then,
 * on a link two real ends set up, a stream of frames the acceptor reads:
 * each sealed by the real dialer, raw, or sealed and then changed. A
 * sealed frame on a link that has not failed passes; anything changed
 * fails, and a failed link stays failed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_error.h"
#include "peer_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[1][PEER_AUTH_KEY_BYTES] = {{7, 7, 7}};
static const struct peer_auth_keys K = {key, 1};

/* take: the next length-prefixed field of the script (1-byte length). */
static const uint8_t *take(const uint8_t **p, const uint8_t *end, size_t *len) {
  if (*p >= end) {
    *len = 0;
    return *p;
  }
  size_t n = **p;
  (*p)++;
  if (n > (size_t)(end - *p))
    n = (size_t)(end - *p);
  const uint8_t *f = *p;
  *p += n;
  *len = n;
  return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *p = data, *end = data + size;
  uint8_t nonce_a[PEER_AUTH_NONCE_BYTES] = {1}, mac[PEER_AUTH_MAC_BYTES];
  /* An outsider's handshake. */
  struct peer_auth a;
  size_t clen, mlen;
  const uint8_t *cred = take(&p, end, &clen), *proof = take(&p, end, &mlen);
  if (peer_auth_accept(&a, &K, "c", 1, 2, 1, cred, clen, nonce_a, NULL, mac) ==
          CHORUS_OK &&
      peer_auth_on_proof(&a, &K, proof, mlen) == CHORUS_OK)
    abort(); /* a proof without the key */
  /* A real link, then the script's frames. */
  struct peer_auth d;
  uint8_t nonce_d[PEER_AUTH_NONCE_BYTES] = {2}, pr[PEER_AUTH_MAC_BYTES];
  peer_auth_dial(&d, "c", 1, 1, nonce_d);
  if (peer_auth_accept(&a, &K, "c", 1, 2, 1, d.nonce_d, sizeof d.nonce_d,
                       nonce_a, NULL, mac) != CHORUS_OK ||
      peer_auth_on_challenge(&d, &K, 2, nonce_a, sizeof nonce_a, mac,
                             sizeof mac, NULL, pr) != CHORUS_OK ||
      peer_auth_on_proof(&a, &K, pr, sizeof pr) != CHORUS_OK)
    abort();
  bool failed = false;
  while (p < end) {
    uint8_t op = *p++ % 3;
    size_t len;
    const uint8_t *body = take(&p, end, &len);
    uint8_t copy[256], tf[PEER_AUTH_TAG_FRAME];
    memcpy(copy, body, len);
    int r1 = PEER_AUTH_TAG_READ, r2;
    if (op == 1) { /* raw: whatever the script says, tag or frame */
      r2 = peer_auth_open(&a, copy, len);
      if (r2 == PEER_AUTH_FRAME_OK && failed)
        abort();
      failed = failed || r2 == CHORUS_EAUTH;
      continue;
    }
    peer_auth_seal(&d, copy, len, tf);
    bool changed = op == 2 && len > 0;
    if (changed)
      copy[len - 1] ^= 0x80;
    if (!a.have_tag)
      r1 = peer_auth_open(&a, tf + 4, sizeof tf - 4);
    else
      failed = true; /* a raw tag before: this tag is read as its frame */
    r2 = r1 == PEER_AUTH_TAG_READ ? peer_auth_open(&a, copy, len) : r1;
    bool ok = r1 == PEER_AUTH_TAG_READ && r2 == PEER_AUTH_FRAME_OK;
    if (ok && (changed || failed))
      abort();
    if (!ok && !failed && !changed)
      abort();
    failed = failed || !ok;
  }
  return 0;
}
