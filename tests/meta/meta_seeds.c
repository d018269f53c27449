/* meta_seeds.c: writes the seed corpora of the meta fuzz targets
 * (tests/meta/corpus/{msg,state,cmd}/) from the samples of meta_test.h.
 * Run by hand after a format change: meta_seeds tests/meta/corpus.
 * Deterministic. */
#include <stdio.h>
#include <stdlib.h>

#include "chorus_alloc.h"
#include "meta_test.h"

static void put(const char *dir, const char *sub, int i, uint8_t *p, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s/%02d", dir, sub, i);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
  chorus_free(p);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: meta_seeds CORPUS_DIR\n");
    return 2;
  }
  const char *dir = argv[1];
  uint8_t *buf;
  size_t len;
  for (int i = 0; i < META_T_NCMD; i++) {
    struct meta_cmd c = meta_t_cmd(i);
    if (meta_cmd_encode(&c, &buf, &len) != CHORUS_OK)
      return 1;
    put(dir, "cmd", i, buf, len);
  }
  struct meta_member m[8];
  const size_t sizes[] = {0, 1, 3, 8};
  for (int i = 0; i < 4; i++) {
    struct meta_state s = meta_t_state(m, sizes[i]);
    if (i == 2)
      s.replication = meta_t_repl_n(3);
    if (meta_state_encode(&s, &buf, &len) != CHORUS_OK)
      return 1;
    put(dir, "state", i, buf, len);
  }
  for (int i = 0; i < META_T_NMSG; i++) {
    struct meta_t_sample s;
    meta_t_msg(&s, i);
    if (meta_msg_encode(&s.msg, &buf, &len) != CHORUS_OK)
      return 1;
    put(dir, "msg", i, buf, len);
  }
  return 0;
}
