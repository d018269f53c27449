/* fuzz_lww.c: libFuzzer target for lww_decode (see fuzz_common.h). */
#include "fuzz_common.h"

#define JOIN(d, s) lww_join(d, s)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct lww x;
  int rc = lww_decode(&x, data, size, NULL);
  if (rc != CHORUS_OK) {
    fuzz_refused(rc);
    return 0;
  }
  FUZZ_ROUND_TRIP(lww, &x, JOIN);
  lww_free(&x);
  return 0;
}
