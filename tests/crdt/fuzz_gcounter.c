/* fuzz_gcounter.c: libFuzzer target for gcounter_decode (see fuzz_common.h). */
#include "fuzz_common.h"

#define JOIN(d, s) gcounter_join(d, s)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct gcounter x;
  int rc = gcounter_decode(&x, data, size, NULL);
  if (rc != CHORUS_OK) {
    fuzz_refused(rc);
    return 0;
  }
  FUZZ_ROUND_TRIP(gcounter, &x, JOIN);
  gcounter_free(&x);
  return 0;
}
