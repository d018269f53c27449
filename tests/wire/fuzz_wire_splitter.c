/* fuzz_wire_splitter.c: libFuzzer target for the streaming splitter: the
 * input (after two control bytes) is a byte stream pushed in chunks whose
 * sizes the control bytes seed; the frames must match a one-shot reference
 * parse of the same stream, and each is decoded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_prng.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reference: frame i of @s, parsed in one go. Returns 1 frame, 0 incomplete,
 * <0 the error the splitter must report. */
static int ref_next(const uint8_t *s, size_t len, size_t *pos, uint32_t max,
                    struct wire_bytes *fr) {
  if (len - *pos < 4)
    return 0;
  const uint8_t *p = s + *pos;
  uint32_t n =
      (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
  if (n == 0)
    return CHORUS_EMALFORMED;
  if (n > max)
    return CHORUS_ETOOBIG;
  if (len - *pos - 4 < n)
    return 0;
  fr->ptr = p + 4;
  fr->len = n;
  *pos += 4 + (size_t)n;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  struct chorus_prng prng;
  chorus_prng_seed(&prng, data[0]);
  uint32_t max_frame = 1u + (uint32_t)data[1] * 16; /* 1..4081 */
  const uint8_t *s = data + 2;
  size_t len = size - 2, pos = 0, ref_pos = 0;
  struct wire_splitter sp;
  wire_splitter_init(&sp, max_frame);
  int ref_rc = 0;
  while (pos < len) {
    size_t chunk = 1 + (size_t)chorus_prng_below(&prng, 64);
    if (chunk > len - pos)
      chunk = len - pos;
    size_t off = 0;
    for (;;) {
      size_t used;
      struct wire_bytes fr, want;
      int rc = wire_splitter_push(&sp, s + pos + off, chunk - off, &used, &fr);
      if (used > chunk - off)
        abort();
      off += used;
      if (rc < 0) {
        /* The reference must hit the same error at the same place. */
        ref_rc = ref_next(s, len, &ref_pos, max_frame, &want);
        if (ref_rc != rc)
          abort();
        wire_splitter_fini(&sp);
        return 0;
      }
      if (rc == 0) {
        if (off != chunk)
          abort();
        break;
      }
      ref_rc = ref_next(s, len, &ref_pos, max_frame, &want);
      if (ref_rc != 1 || want.len != fr.len ||
          memcmp(want.ptr, fr.ptr, fr.len) != 0)
        abort();
      struct wire_msg d;
      if (wire_decode(fr.ptr, fr.len, NULL, &d, NULL) == CHORUS_OK)
        wire_msg_free(&d);
    }
    pos += chunk;
  }
  /* Input exhausted: the reference has no further whole frame either, and
   * the splitter holds exactly the incomplete rest. */
  struct wire_bytes want;
  ref_rc = ref_next(s, len, &ref_pos, max_frame, &want);
  if (ref_rc == 1)
    abort();
  if (ref_rc == 0 && wire_splitter_buffered(&sp) != len - ref_pos)
    abort();
  wire_splitter_fini(&sp);
  return 0;
}
