/* fuzz_orset.c: libFuzzer target for orset_decode and crdt_ctx_decode, the
 * set's causal context alone (SET_REPLY and SET_REMOVE carry it from and to
 * clients); both open with the same fields (see fuzz_common.h). */
#include "fuzz_common.h"

#define JOIN(d, s) orset_join(d, s)
#define CTX_JOIN(d, s) crdt_ctx_join(d, s)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct crdt_ctx c;
  int rc = crdt_ctx_decode(&c, data, size, NULL);
  if (rc != CHORUS_OK) {
    fuzz_refused(rc);
  } else {
    FUZZ_ROUND_TRIP(crdt_ctx, &c, CTX_JOIN);
    crdt_ctx_free(&c);
  }
  struct orset x;
  rc = orset_decode(&x, data, size, NULL);
  if (rc != CHORUS_OK) {
    fuzz_refused(rc);
    return 0;
  }
  FUZZ_ROUND_TRIP(orset, &x, JOIN);
  /* A remove with a context the input also names: the set's own context
   * saw every dot, so every element goes; the state stays valid. */
  uint8_t *first =
      x.n > 0 && x.e[0].len > 0 ? chorus_memdup(x.e[0].data, x.e[0].len) : NULL;
  if (x.n > 0 && (x.e[0].len == 0 || first != NULL)) {
    bool removed = false;
    FUZZ_CHECK(orset_remove_seen(&x, first, x.e[0].len, &x.ctx, NULL,
                                 &removed) == CHORUS_OK &&
               removed);
  }
  chorus_free(first);
  orset_free(&x);
  return 0;
}
