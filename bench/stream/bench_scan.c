/* bench_scan.c: what one stream pull costs the store: an ordered iterator
 * opened over the data space at a cursor, read for about 1 MiB, closed
 * (what repl_stream.c's read_range did before it kept its read), one
 * iterator kept open and seeked to each batch's cursor (what it does
 * now), and one iterator read end to end, with the keys in the memtable
 * and after a flush. A program, not a test: it prints figures.
 *
 *   bench_scan [--dir DIR] [--num N] [--value-size B] [--batch BYTES]
 *   bench_scan --scan DIR    one ordered scan of an existing store's data
 *                            space (a stopped chorusd's --data folder):
 *                            bench/stream/stream.sh's baseline
 *
 * Keys have the shape of chorus's data keys (store.h): an 8-byte token,
 * then 8 bytes of user key, written in random token order. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chorus_alloc.h"
#include "store_rocksdb.h"

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void make_key(unsigned char key[16], uint64_t i) {
  uint64_t z = i + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  char user[9];
  snprintf(user, sizeof user, "%08llu", (unsigned long long)(i % 100000000u));
  store_data_key(key, z ^ (z >> 31), user, 8);
}

static struct store *open_store(const char *dir) {
  struct store_rocksdb_options o = {.path = dir};
  struct store *s;
  char errmsg[CHORUS_ERRMSG_SIZE];
  if (store_rocksdb_open(&o, &s, errmsg) != CHORUS_OK) {
    fprintf(stderr, "open %s: %s\n", dir, errmsg);
    exit(1);
  }
  return s;
}

/* pulls: the whole data space read in batches of about @batch bytes, a
 * new iterator per batch seeked past the cursor, or (@kept) one iterator
 * kept open and seeked to each batch's cursor (repl_stream.c, THE KEPT
 * READ). */
static void pulls(struct store *s, size_t batch, bool kept, const char *what) {
  unsigned char cur[STORE_MAX_KEY];
  size_t curlen = 0;
  uint64_t keys = 0, bytes = 0, n = 0;
  double t0 = now_seconds(), open_s = 0;
  struct store_iter *it = NULL;
  for (;;) {
    double o0 = now_seconds();
    if (it == NULL &&
        store_iter_open(s, STORE_DATA, NULL, 0, NULL, 0, &it) != CHORUS_OK)
      exit(1);
    if (curlen > 0)
      store_iter_seek(it, cur, curlen);
    open_s += now_seconds() - o0;
    size_t got = 0;
    bool any = false;
    for (; store_iter_valid(it) && got < batch; store_iter_next(it)) {
      size_t kl, vl;
      const void *k = store_iter_key(it, &kl);
      (void)store_iter_value(it, &vl);
      if (curlen == kl && memcmp(k, cur, kl) == 0)
        continue;
      memcpy(cur, k, kl);
      curlen = kl;
      got += kl + vl;
      keys++;
      any = true;
    }
    if (!kept) {
      store_iter_close(it);
      it = NULL;
    }
    bytes += got;
    n++;
    if (!any)
      break;
  }
  store_iter_close(it);
  double dt = now_seconds() - t0;
  printf("%-28s %8" PRIu64 " pulls %9.1f ms/pull (open+seek %6.2f ms) "
         "%8.1f MB/s %9.0f keys/s\n",
         what, n, dt * 1e3 / (double)n, open_s * 1e3 / (double)n,
         (double)bytes / dt / 1e6, (double)keys / dt);
}

static double scan(struct store *s, const char *what) {
  double t0 = now_seconds();
  struct store_iter *it;
  uint64_t keys = 0, bytes = 0;
  if (store_iter_open(s, STORE_DATA, NULL, 0, NULL, 0, &it) != CHORUS_OK)
    exit(1);
  for (; store_iter_valid(it); store_iter_next(it)) {
    size_t kl, vl;
    (void)store_iter_key(it, &kl);
    (void)store_iter_value(it, &vl);
    bytes += kl + vl;
    keys++;
  }
  store_iter_close(it);
  double dt = now_seconds() - t0;
  printf("%-28s %8d scan  %9.1f ms total                  %8.1f MB/s %9.0f "
         "keys/s\n",
         what, 1, dt * 1e3, (double)bytes / dt / 1e6, (double)keys / dt);
  printf("RESULT scan_keys %" PRIu64 "\nRESULT scan_bytes %" PRIu64
         "\nRESULT scan_seconds %.6f\n",
         keys, bytes, dt);
  return dt;
}

int main(int argc, char **argv) {
  const char *dir = NULL, *existing = NULL;
  long num = 50000, vsize = 1024, batch = 1 << 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--dir") == 0)
      dir = argv[i + 1];
    else if (strcmp(argv[i], "--num") == 0)
      num = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--value-size") == 0)
      vsize = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--batch") == 0)
      batch = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--scan") == 0)
      existing = argv[i + 1];
  }
  if (existing != NULL) {
    struct store *s = open_store(existing);
    scan(s, "one scan, cold");
    scan(s, "one scan, warm");
    store_close(s);
    return 0;
  }
  char tmp[] = "/tmp/chorus-bench-scan-XXXXXX";
  if (dir == NULL && (dir = mkdtemp(tmp)) == NULL)
    return 1;
  struct store *s = open_store(dir);
  char *val = malloc((size_t)vsize);
  memset(val, 'v', (size_t)vsize);
  for (long i = 0; i < num; i++) {
    unsigned char k[16];
    make_key(k, (uint64_t)i);
    if (store_put(s, STORE_DATA, k, 16, val, (size_t)vsize, NULL) != CHORUS_OK)
      return 1;
  }
  printf("%ld keys x %ld bytes, pulls of %ld bytes\n", num, vsize, batch);
  pulls(s, (size_t)batch, false, "pulls, memtable");
  pulls(s, (size_t)batch, true, "pulls, memtable, kept read");
  scan(s, "one scan, memtable");
  store_close(s);
  s = open_store(dir); /* the reopen flushed the recovered memtable */
  pulls(s, (size_t)batch, false, "pulls, flushed");
  pulls(s, (size_t)batch, true, "pulls, flushed, kept read");
  scan(s, "one scan, flushed");
  store_close(s);
  free(val);
  return 0;
}
