/* fuzz_pncounter.c: libFuzzer target for pncounter_decode (see fuzz_common.h).
 */
#include "fuzz_common.h"

#define JOIN(d, s) pncounter_join(d, s)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct pncounter x;
  int rc = pncounter_decode(&x, data, size, NULL);
  if (rc != CHORUS_OK) {
    fuzz_refused(rc);
    return 0;
  }
  FUZZ_ROUND_TRIP(pncounter, &x, JOIN);
  pncounter_free(&x);
  return 0;
}
