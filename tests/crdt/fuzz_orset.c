/* fuzz_orset.c: libFuzzer target for orset_decode (see fuzz_common.h). */
#include "fuzz_common.h"

#define JOIN(d, s) orset_join(d, s)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct orset x;
  int rc = orset_decode(&x, data, size, NULL);
  if (rc != CHORUS_OK) {
    fuzz_refused(rc);
    return 0;
  }
  FUZZ_ROUND_TRIP(orset, &x, JOIN);
  orset_free(&x);
  return 0;
}
