/* storage_demo.c: what `scripts/start` runs until chorusd exists: a short
 * tour of the storage engine on a real RocksDB folder. Writes objects from
 * several threads with group-commit acknowledgements, restarts the store,
 * verifies every acknowledged write, and scans one quarter of the ring. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "chorus_alloc.h"
#include "store_rocksdb.h"

enum { WRITERS = 8, PER_WRITER = 2000 };

struct writer {
  struct store *s;
  int id;
  pthread_mutex_t lock;
  pthread_cond_t done;
  int durable;
  int failed;
};

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void on_durable(void *arg, chorus_seq durable, int status) {
  (void)durable;
  struct writer *w = arg;
  pthread_mutex_lock(&w->lock);
  w->failed |= status != CHORUS_OK;
  w->durable = 1;
  pthread_cond_signal(&w->done);
  pthread_mutex_unlock(&w->lock);
}

static size_t demo_key(unsigned char *out, int writer, int i) {
  char user[32];
  int n = snprintf(user, sizeof user, "user:%d:%d", writer, i);
  return store_data_key(out, XXH3_64bits(user, (size_t)n), user, (size_t)n);
}

static void *writer_main(void *arg) {
  struct writer *w = arg;
  for (int i = 0; i < PER_WRITER && !w->failed; i++) {
    unsigned char key[64];
    size_t klen = demo_key(key, w->id, i);
    char value[64];
    int vlen = snprintf(value, sizeof value, "value %d of writer %d", i, w->id);
    chorus_seq seq;
    if (store_put(w->s, STORE_DATA, key, klen, value, (size_t)vlen, &seq) !=
            CHORUS_OK ||
        store_sync_request(w->s, seq, on_durable, w) != CHORUS_OK) {
      fprintf(stderr, "writer %d: %s\n", w->id, store_errmsg(w->s));
      w->failed = 1;
      break;
    }
    pthread_mutex_lock(&w->lock);
    while (!w->durable)
      pthread_cond_wait(&w->done, &w->lock);
    w->durable = 0;
    pthread_mutex_unlock(&w->lock);
  }
  return NULL;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "data/demo";
  struct store_rocksdb_options o = {.path = path};
  struct store *s;
  char errmsg[CHORUS_ERRMSG_SIZE];
  if (store_rocksdb_open(&o, &s, errmsg) != CHORUS_OK) {
    fprintf(stderr, "chorus-storage-demo: %s\n", errmsg);
    return 1;
  }
  printf("chorus storage demo: RocksDB store at %s\n", path);
  printf("(chorusd, the node, replaces this demo; see README)\n\n");

  double t0 = now_seconds();
  struct writer w[WRITERS];
  pthread_t t[WRITERS];
  for (int i = 0; i < WRITERS; i++) {
    w[i] = (struct writer){.s = s, .id = i};
    pthread_mutex_init(&w[i].lock, NULL);
    pthread_cond_init(&w[i].done, NULL);
    pthread_create(&t[i], NULL, writer_main, &w[i]);
  }
  int failed = 0;
  for (int i = 0; i < WRITERS; i++) {
    pthread_join(t[i], NULL);
    failed |= w[i].failed;
  }
  double elapsed = now_seconds() - t0;
  if (failed) {
    store_close(s);
    return 1;
  }
  printf("%d writers acknowledged %d durable writes (group commit) in %.2f s: "
         "%.0f writes/s\n",
         WRITERS, WRITERS * PER_WRITER, elapsed,
         WRITERS * PER_WRITER / elapsed);
  printf("durable through sequence %llu\n",
         (unsigned long long)store_durable_seq(s));

  store_close(s);
  if (store_rocksdb_open(&o, &s, errmsg) != CHORUS_OK) {
    fprintf(stderr, "chorus-storage-demo: reopen: %s\n", errmsg);
    return 1;
  }
  int missing = 0;
  for (int wr = 0; wr < WRITERS; wr++)
    for (int i = 0; i < PER_WRITER; i++) {
      unsigned char key[64];
      size_t klen = demo_key(key, wr, i);
      void *val;
      size_t vlen;
      if (store_get(s, STORE_DATA, key, klen, &val, &vlen) != CHORUS_OK)
        missing++;
      else
        chorus_free(val);
    }
  printf("after restart: %d of %d acknowledged writes present\n",
         WRITERS * PER_WRITER - missing, WRITERS * PER_WRITER);

  /* Keys are prefixed by their token, so a quarter of the ring is one scan. */
  struct store_iter *it;
  long in_range = 0;
  if (store_iter_open_tokens(s, 0, UINT64_MAX / 4, &it) == CHORUS_OK) {
    for (; store_iter_valid(it); store_iter_next(it))
      in_range++;
    store_iter_close(it);
  }
  printf("token range [0, 2^62): %ld keys (about a quarter expected)\n",
         in_range);
  store_close(s);
  return missing ? 1 : 0;
}
