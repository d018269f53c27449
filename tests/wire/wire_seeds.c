/* wire_seeds.c: writes the seed corpora of the wire fuzz targets
 * (tests/wire/corpus/{decode,splitter,check}/). Run by hand after a schema
 * change: wire_seeds tests/wire/corpus. Deterministic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "wire_gen.h"

static void put(const char *dir, const char *sub, const char *name,
                const uint8_t *p, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: wire_seeds CORPUS_DIR\n");
    return 2;
  }
  const char *dir = argv[1];
  struct wire_gen g;
  if (wire_gen_init(&g, 2024))
    return 1;
  static uint8_t stream[1 << 16];
  size_t slen = 2;
  stream[0] = 7;   /* chunking seed */
  stream[1] = 255; /* max_frame 4081 */
  for (size_t i = 0; i < wire__nschemas; i++) {
    const struct wire__schema *s = &wire__schemas[i];
    for (int mode = WIRE_GEN_EMPTY; mode <= WIRE_GEN_RANDOM; mode += 2) {
      for (int v = 0; v < (mode == WIRE_GEN_RANDOM ? 2 : 1); v++) {
        struct wire_msg m;
        wire_gen_msg(&g, s, mode, &m);
        size_t cap = wire_encoded_size(&m), len;
        if (cap > 3000 && v < 5) { /* keep seeds small: retry */
          v--;
          continue;
        }
        uint8_t *buf = chorus_malloc(cap);
        if (!buf || wire_encode(&m, buf, cap, &len, NULL))
          return 1;
        char name[96];
        snprintf(name, sizeof name, "%s-%s%d", s->name,
                 mode == WIRE_GEN_EMPTY ? "empty" : "random", v);
        put(dir, "decode", name, buf + 4, len - 4);
        put(dir, "check", name, buf + 4, len - 4);
        if (slen + len < 6000) {
          memcpy(stream + slen, buf, len);
          slen += len;
        }
        chorus_free(buf);
      }
    }
  }
  put(dir, "splitter", "stream-mixed", stream, slen);
  static const uint8_t one[] = {0, 16, 0, 0, 0, 3, 0x92, 0x60, 1};
  put(dir, "splitter", "stream-one", one, sizeof one);
  static const uint8_t huge[] = {3, 1, 0xff, 0xff, 0xff, 0xff, 0x92};
  put(dir, "splitter", "stream-4gib", huge, sizeof huge);
  static const uint8_t zero[] = {3, 1, 0, 0, 0, 3, 0x92, 0x60, 1, 0, 0, 0, 0};
  put(dir, "splitter", "stream-zero", zero, sizeof zero);
  static const uint8_t issue1013[] = {0xdd, 0xff, 0x00, 0x00, 0x00};
  put(dir, "check", "issue1013", issue1013, sizeof issue1013);
  put(dir, "decode", "issue1013", issue1013, sizeof issue1013);
  static const uint8_t nested[] = {0x91, 0x91, 0x92, 0x81, 0xa1, 'k', 0xc0,
                                   0xdc, 0x00, 0x01, 0xd4, 0x01, 0x02};
  put(dir, "check", "nested", nested, sizeof nested);
  static const uint8_t scalars[] = {
      0x9f, 0xc0, 0xc2, 0xc3, 0xcc, 0xff, 0xcd, 0xff, 0xff, 0xd0,
      0x80, 0xd1, 0x80, 0x00, 0xca, 0,    0,    0,    0,    0xcb,
      0,    0,    0,    0,    0,    0,    0,    0,    0xe0, 0xa1,
      'x',  0xc4, 0x01, 'y',  0xc7, 0x01, 0x05, 'z',  0xd9, 0x00,
      0xde, 0x00, 0x00, 0xdf, 0x00, 0x00, 0x00, 0x00, 0x7f};
  put(dir, "check", "scalars", scalars, sizeof scalars);
  wire_gen_fini(&g);
  return 0;
}
