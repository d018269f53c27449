/* fuzz_vv.c: libFuzzer target for vv_decode (see fuzz_common.h). */
#include "fuzz_common.h"

#define JOIN(d, s) vv_join(d, s)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct vv x;
  int rc = vv_decode(&x, data, size, NULL);
  if (rc != CHORUS_OK) {
    fuzz_refused(rc);
    return 0;
  }
  FUZZ_ROUND_TRIP(vv, &x, JOIN);
  vv_free(&x);
  return 0;
}
