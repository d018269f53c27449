/* fuzz_swim.c: libFuzzer target for the gossip decoder and, through a
 * sealed envelope, for the whole packet path of a SWIM instance. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "swim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore_send(void *ctx, const char *addr, enum swim_channel ch,
                        const void *d, size_t len) {
  (void)ctx;
  (void)addr;
  (void)ch;
  (void)d;
  if (ch == SWIM_DATAGRAM && len > SWIM_PACKET_MAX)
    __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct swim_msg m;
  if (swim_codec_decode(data, size, &m, NULL) == CHORUS_OK) {
    struct swim_update u;
    while (swim_codec_next_update(&m, &u))
      ;
  }
  if (size > 8192)
    return 0;
  /* The same bytes as the plaintext of an authentic packet. */
  struct swim_config c;
  memset(&c, 0, sizeof c);
  c.id = 1;
  snprintf(c.meta.addr, sizeof c.meta.addr, "n1");
  snprintf(c.cluster, sizeof c.cluster, "fuzz");
  swim_timing_lan(&c.timing);
  c.fx.send = ignore_send;
  struct swim *s = NULL;
  if (swim_new(&c, &s) != CHORUS_OK)
    return 0;
  struct swim_meta peer = c.meta;
  snprintf(peer.addr, sizeof peer.addr, "n2");
  (void)swim_add_member(s, 2, &peer, 0, 0);
  (void)swim_start(s, 0);
  static uint8_t sealed[8192 + SWIM_SEAL_OVERHEAD];
  uint8_t nonce[24] = {0};
  size_t len = swim_seal(c.key, nonce, c.cluster, data, size, sealed);
  (void)swim_handle_packet(s, sealed, len, 10, 10);
  (void)swim_tick(s, 100000, 100000);
  swim_free(s);
  return 0;
}
