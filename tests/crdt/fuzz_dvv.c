/* fuzz_dvv.c: libFuzzer target for dvv_decode (see fuzz_common.h). */
#include "fuzz_common.h"

#define JOIN(d, s) dvv_join(d, s, NULL, NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct dvv x;
  int rc = dvv_decode(&x, data, size, NULL);
  if (rc != CHORUS_OK) {
    fuzz_refused(rc);
    return 0;
  }
  FUZZ_ROUND_TRIP(dvv, &x, JOIN);
  dvv_free(&x);
  return 0;
}
