/* fuzz_hlc.c: libFuzzer target for hlc_decode, plus the receive rule on
 * whatever time it yields (never crashes, never goes backwards). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hlc_time t;
  int rc = hlc_decode(&t, data, size, NULL);
  if (rc != CHORUS_OK) {
    fuzz_refused(rc);
    return 0;
  }
  uint8_t buf[16];
  size_t n;
  hlc_time back;
  FUZZ_CHECK(hlc_encode(t, buf, sizeof buf, &n) == CHORUS_OK);
  FUZZ_CHECK(n == hlc_encoded_size(t));
  FUZZ_CHECK(hlc_decode(&back, buf, n, NULL) == CHORUS_OK && back == t);
  struct hlc h;
  hlc_init(&h, 1000);
  hlc_time before = h.last, out;
  rc = hlc_recv(&h, 5000, t, &out);
  if (rc == CHORUS_OK)
    FUZZ_CHECK(out > t && out > before);
  else
    FUZZ_CHECK(rc == CHORUS_ERANGE && h.last == before);
  return 0;
}
