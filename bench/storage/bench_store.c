/* bench_store.c: storage throughput of the RocksDB backend: unsynced puts,
 * group-synced puts with 1/8/64 concurrent writers, random gets and scans.
 *
 * A program, not a test: it prints figures. bench/storage/compare.sh runs it
 * beside RocksDB's own db_bench on the same machine and prints the ratios.
 *
 *   bench_store [--dir DIR] [--num N] [--value-size B] [--sync-seconds S]
 *
 * Keys are 16 bytes (as db_bench's default), written in random order, in
 * the shape of chorus's data keys (store.h): an 8-byte token, then 8 bytes
 * of user key. The data space's memtable is hashed by that token, so keys
 * sharing their first 8 bytes would all land in one bucket. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chorus_alloc.h"
#include "chorus_prng.h"
#include "store_rocksdb.h"

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* make_key: [token][8 decimal digits of i]; the token stands in for
 * ring_token_of (a 64-bit hash of the user key): splitmix64's finalizer. */
static void make_key(char key[17], uint64_t i) {
  uint64_t z = i + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  char user[9];
  snprintf(user, sizeof user, "%08llu", (unsigned long long)(i % 100000000u));
  store_data_key((unsigned char *)key, z ^ (z >> 31), user, 8);
}

struct synced_writer {
  struct store *s;
  int id;
  double stop_at;
  long writes;
  int value_size;
  pthread_mutex_t lock;
  pthread_cond_t done;
  int durable;
};

static void on_durable(void *arg, chorus_seq durable, int status) {
  (void)durable;
  struct synced_writer *w = arg;
  if (status != CHORUS_OK) {
    fprintf(stderr, "sync failed: %s\n", chorus_strerror(status));
    exit(1);
  }
  pthread_mutex_lock(&w->lock);
  w->durable = 1;
  pthread_cond_signal(&w->done);
  pthread_mutex_unlock(&w->lock);
}

static void *synced_writer_main(void *arg) {
  struct synced_writer *w = arg;
  char *value = malloc((size_t)w->value_size);
  memset(value, 'x', (size_t)w->value_size);
  struct chorus_prng prng;
  chorus_prng_seed(&prng, (uint64_t)w->id + 1000);
  while (now_seconds() < w->stop_at) {
    char key[17];
    make_key(key, chorus_prng_next(&prng) % 100000000);
    chorus_seq seq;
    if (store_put(w->s, STORE_DATA, key, 16, value, (size_t)w->value_size,
                  &seq) != CHORUS_OK) {
      fprintf(stderr, "put: %s\n", store_errmsg(w->s));
      exit(1);
    }
    w->durable = 0;
    if (store_sync_request(w->s, seq, on_durable, w) != CHORUS_OK) {
      fprintf(stderr, "sync request: %s\n", store_errmsg(w->s));
      exit(1);
    }
    pthread_mutex_lock(&w->lock);
    while (!w->durable)
      pthread_cond_wait(&w->done, &w->lock);
    pthread_mutex_unlock(&w->lock);
    w->writes++;
  }
  free(value);
  return NULL;
}

static double run_synced(struct store *s, int writers, double seconds,
                         int value_size) {
  struct synced_writer *w = calloc((size_t)writers, sizeof *w);
  pthread_t *t = calloc((size_t)writers, sizeof *t);
  double start = now_seconds();
  for (int i = 0; i < writers; i++) {
    w[i].s = s;
    w[i].id = i;
    w[i].stop_at = start + seconds;
    w[i].value_size = value_size;
    pthread_mutex_init(&w[i].lock, NULL);
    pthread_cond_init(&w[i].done, NULL);
    pthread_create(&t[i], NULL, synced_writer_main, &w[i]);
  }
  long total = 0;
  for (int i = 0; i < writers; i++) {
    pthread_join(t[i], NULL);
    total += w[i].writes;
  }
  double elapsed = now_seconds() - start;
  free(w);
  free(t);
  return (double)total / elapsed;
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  long num = 1000000;
  int value_size = 100;
  double sync_seconds = 3.0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
      dir = argv[++i];
    else if (strcmp(argv[i], "--num") == 0 && i + 1 < argc)
      num = atol(argv[++i]);
    else if (strcmp(argv[i], "--value-size") == 0 && i + 1 < argc)
      value_size = atoi(argv[++i]);
    else if (strcmp(argv[i], "--sync-seconds") == 0 && i + 1 < argc)
      sync_seconds = atof(argv[++i]);
    else {
      fprintf(stderr,
              "usage: %s [--dir DIR] [--num N] [--value-size B] "
              "[--sync-seconds S]\n",
              argv[0]);
      return 2;
    }
  }
  char tmpdir[] = "/tmp/chorus-bench-store-XXXXXX";
  if (dir == NULL) {
    if (mkdtemp(tmpdir) == NULL) {
      perror("mkdtemp");
      return 1;
    }
    dir = tmpdir;
  }
  struct store_rocksdb_options o = {.path = dir};
  struct store *s;
  char errmsg[CHORUS_ERRMSG_SIZE];
  if (store_rocksdb_open(&o, &s, errmsg) != CHORUS_OK) {
    fprintf(stderr, "%s\n", errmsg);
    return 1;
  }
  char *value = malloc((size_t)value_size);
  memset(value, 'v', (size_t)value_size);

  /* Unsynced puts in random order (db_bench fillrandom). */
  uint64_t *order = malloc(sizeof(uint64_t) * (size_t)num);
  for (long i = 0; i < num; i++)
    order[i] = (uint64_t)i;
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 301);
  for (long i = num - 1; i > 0; i--) {
    uint64_t j = chorus_prng_below(&prng, (uint64_t)i + 1);
    uint64_t tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
  double t0 = now_seconds();
  for (long i = 0; i < num; i++) {
    char key[17];
    make_key(key, order[i]);
    if (store_put(s, STORE_DATA, key, 16, value, (size_t)value_size, NULL) !=
        CHORUS_OK) {
      fprintf(stderr, "put: %s\n", store_errmsg(s));
      return 1;
    }
  }
  double put_rate = (double)num / (now_seconds() - t0);

  /* Random gets of present keys (db_bench readrandom). */
  t0 = now_seconds();
  long found = 0;
  for (long i = 0; i < num; i++) {
    char key[17];
    make_key(key, chorus_prng_below(&prng, (uint64_t)num));
    void *val;
    size_t vlen;
    if (store_get(s, STORE_DATA, key, 16, &val, &vlen) == CHORUS_OK) {
      found++;
      chorus_free(val);
    }
  }
  double get_rate = (double)num / (now_seconds() - t0);

  /* A full ordered scan (db_bench readseq). */
  t0 = now_seconds();
  struct store_iter *it;
  long scanned = 0;
  store_iter_open(s, STORE_DATA, NULL, 0, NULL, 0, &it);
  for (; store_iter_valid(it); store_iter_next(it)) {
    size_t klen, vlen;
    (void)store_iter_key(it, &klen);
    (void)store_iter_value(it, &vlen);
    scanned++;
  }
  store_iter_close(it);
  double scan_rate = (double)scanned / (now_seconds() - t0);

  /* Group-synced puts: each writer waits for its barrier before the next. */
  double synced[3];
  int writers[3] = {1, 8, 64};
  for (int i = 0; i < 3; i++)
    synced[i] = run_synced(s, writers[i], sync_seconds, value_size);

  printf("chorus storage (RocksDB backend), %ld keys of 16 bytes, values of "
         "%d bytes\n",
         num, value_size);
  printf("%-34s %14s\n", "operation", "ops/s");
  printf("%-34s %14.0f\n", "put, unsynced (fillrandom)", put_rate);
  printf("%-34s %14.0f\n", "get, random (readrandom)", get_rate);
  printf("%-34s %14.0f\n", "scan, full (readseq)", scan_rate);
  for (int i = 0; i < 3; i++) {
    char label[64];
    snprintf(label, sizeof label, "put, group-synced, %d writer%s",
             writers[i], writers[i] > 1 ? "s" : "");
    printf("%-34s %14.0f\n", label, synced[i]);
  }
  printf("group commit gain, 64 writers vs 1: %.1fx\n", synced[2] / synced[0]);
  printf("found %ld of %ld random gets\n", found, num);
  /* Machine-readable lines for compare.sh. */
  printf("RESULT put_unsynced %.0f\nRESULT get %.0f\nRESULT scan %.0f\n",
         put_rate, get_rate, scan_rate);
  printf("RESULT sync1 %.0f\nRESULT sync8 %.0f\nRESULT sync64 %.0f\n",
         synced[0], synced[1], synced[2]);

  free(order);
  free(value);
  store_close(s);
  if (dir == tmpdir) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", tmpdir);
  }
  return 0;
}
