/* fuzz_wire_decode.c: libFuzzer target for wire_decode() on frame bodies of
 * every message type, with the round-trip and handshake properties checked
 * on whatever it accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "wire_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *encode(const struct wire_msg *m, size_t *len) {
  size_t cap = wire_encoded_size(m);
  uint8_t *buf = chorus_malloc(cap);
  if (!buf || wire_encode(m, buf, cap, len, NULL) != CHORUS_OK || *len != cap)
    abort(); /* whatever decodes must encode */
  return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const struct wire_limits lim = {64 * 1024, WIRE_MAX_DEPTH};
  char err[CHORUS_ERRMSG_SIZE];
  struct wire_msg d;
  int rc = wire_decode(data, size, &lim, &d, err);
  if (rc != CHORUS_OK) {
    if (rc != CHORUS_EMALFORMED && rc != CHORUS_ENOTSUP && rc != CHORUS_ETOOBIG)
      abort();
    if (d.owned)
      abort();
    return 0;
  }
  /* decode -> encode -> decode gives the same message, and encoding is
   * canonical: the second encoding is byte-identical to the first. */
  size_t len1, len2;
  uint8_t *e1 = encode(&d, &len1);
  struct wire_msg d2;
  if (wire_decode(e1 + 4, len1 - 4, NULL, &d2, err) != CHORUS_OK ||
      !wire__msg_equal(&d, &d2))
    abort();
  uint8_t *e2 = encode(&d2, &len2);
  if (len1 != len2 || memcmp(e1, e2, len1) != 0)
    abort();
  if (len1 - 4 > size) /* canonical encoding is never longer */
    abort();

  if (d.type == WIRE_HELLO) {
    struct wire_hello_policy pol = {WIRE_PROTOCOL_MIN,
                                    WIRE_PROTOCOL_VERSION,
                                    {(const uint8_t *)"prod", 4},
                                    3,
                                    1};
    char text[CHORUS_ERRMSG_SIZE];
    struct wire_msg reply;
    rc = wire_hello_check(&d.hello, &pol, d.request_id, &reply, text);
    size_t rl;
    chorus_free(encode(&reply, &rl)); /* every reply is sendable */
    if ((rc == CHORUS_OK) != (reply.type == WIRE_WELCOME))
      abort();
  }
  chorus_free(e2);
  chorus_free(e1);
  wire_msg_free(&d2);
  wire_msg_free(&d);
  return 0;
}
