/* fuzz_paxos.c: libFuzzer target for the stored form of a key's Paxos
 * acceptor state (replication/paxos.h). Input: the bytes as read from the
 * store. What the decoder accepts must encode back to the same bytes (the
 * form is canonical), and joining it into a small fixed state and into
 * itself must keep the join's laws (idempotent; commutative, compared on
 * the encoded bytes). Never an assert, a leak or an out-of-bounds access
 * (ASan and UBSan in the fuzz build). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_error.h"
#include "paxos.h"

static uint8_t *encode(const struct paxos_acceptor *a, size_t *len) {
  size_t n = paxos_acceptor_encoded_size(a);
  uint8_t *b = malloc(n ? n : 1);
  if (b == NULL || paxos_acceptor_encode(a, b, n, len) != CHORUS_OK ||
      *len != n)
    abort();
  return b;
}

static void same(const struct paxos_acceptor *x,
                 const struct paxos_acceptor *y) {
  size_t nx, ny;
  uint8_t *bx = encode(x, &nx), *by = encode(y, &ny);
  if (nx != ny || memcmp(bx, by, nx) != 0)
    abort();
  free(bx);
  free(by);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct paxos_acceptor a;
  if (paxos_acceptor_decode(&a, data, size, NULL) != CHORUS_OK)
    return 0;
  size_t n;
  uint8_t *b = encode(&a, &n);
  if (n != size || memcmp(b, data, size) != 0)
    abort(); /* canonical */
  free(b);
  /* A fixed second state: promised, accepted and committed mid-range,
   * made as owned copies by joining a borrowed view into an empty one. */
  static const uint8_t v[] = "value";
  struct paxos_acceptor view = {.promised = {1u << 20, 7},
                                .accepted_at = {1u << 20, 7},
                                .accepted = {true, v, sizeof v - 1},
                                .committed_at = {1u << 19, 3},
                                .committed = {true, v, 2}};
  struct paxos_acceptor f;
  paxos_acceptor_init(&f);
  if (paxos_acceptor_join(&f, &view) != CHORUS_OK)
    abort();
  struct paxos_acceptor ab, ba, aa;
  paxos_acceptor_init(&ab);
  paxos_acceptor_init(&ba);
  paxos_acceptor_init(&aa);
  if (paxos_acceptor_copy(&ab, &a) || paxos_acceptor_join(&ab, &f) ||
      paxos_acceptor_copy(&ba, &f) || paxos_acceptor_join(&ba, &a) ||
      paxos_acceptor_copy(&aa, &a) || paxos_acceptor_join(&aa, &a))
    abort();
  same(&ab, &ba);
  same(&aa, &a);
  paxos_acceptor_free(&ab);
  paxos_acceptor_free(&ba);
  paxos_acceptor_free(&aa);
  paxos_acceptor_free(&f);
  paxos_acceptor_free(&a);
  return 0;
}
