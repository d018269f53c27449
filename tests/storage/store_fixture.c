/* store_fixture.c: opening, driving and removing stores for the test
 * suites. */
#include "store_fixture.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_mem.h"
#include "store_rocksdb.h"

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void remove_tree(const char *path) {
  nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int open_backend(struct store_fixture *f) {
  if (strcmp(f->backend, "memory") == 0)
    return store_mem_open(&f->s);
  struct store_rocksdb_options o = {.path = f->path,
                                    .block_cache_bytes = 8u << 20,
                                    .write_buffer_bytes = 4u << 20};
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  int rc = store_rocksdb_open(&o, &f->s, errmsg);
  if (rc != CHORUS_OK)
    fprintf(stderr, "fixture: %s\n", errmsg);
  return rc;
}

int fixture_open(struct store_fixture *f, const char *backend) {
  memset(f, 0, sizeof *f);
  f->backend = backend;
  pthread_mutex_init(&f->lock, NULL);
  pthread_cond_init(&f->changed, NULL);
  const char *tmp = getenv("TMPDIR");
  snprintf(f->path, sizeof f->path, "%s/chorus-store-XXXXXX",
           tmp ? tmp : "/tmp");
  if (mkdtemp(f->path) == NULL)
    return CHORUS_EIO;
  return open_backend(f);
}

int fixture_reopen(struct store_fixture *f) {
  if (strcmp(f->backend, "memory") == 0)
    return store_mem_crash(f->s, 0);
  store_close(f->s);
  f->s = NULL;
  return open_backend(f);
}

void fixture_close(struct store_fixture *f) {
  store_close(f->s);
  f->s = NULL;
  remove_tree(f->path);
  pthread_cond_destroy(&f->changed);
  pthread_mutex_destroy(&f->lock);
}

struct request_tag {
  struct store_fixture *f;
  long index;
};

static void on_sync(void *arg, chorus_seq durable, int status) {
  struct request_tag *tag = arg;
  struct store_fixture *f = tag->f;
  pthread_mutex_lock(&f->lock);
  if (tag->index != f->next_expected)
    f->order_violations++;
  f->next_expected = tag->index + 1;
  f->callbacks++;
  f->last_status = status;
  f->last_durable = durable;
  pthread_cond_broadcast(&f->changed);
  pthread_mutex_unlock(&f->lock);
  free(tag);
}

int fixture_request(struct store_fixture *f, long index, chorus_seq seq) {
  struct request_tag *tag = malloc(sizeof *tag);
  tag->f = f;
  tag->index = index;
  int rc = store_sync_request(f->s, seq, on_sync, tag);
  if (rc != CHORUS_OK)
    free(tag);
  return rc;
}

int fixture_drive_syncs(struct store_fixture *f, int expected) {
  if (strcmp(f->backend, "memory") == 0)
    store_mem_sync_step(f->s);
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 30;
  pthread_mutex_lock(&f->lock);
  while (f->callbacks < expected) {
    if (pthread_cond_timedwait(&f->changed, &f->lock, &deadline) == ETIMEDOUT)
      break;
  }
  int n = f->callbacks;
  pthread_mutex_unlock(&f->lock);
  return n;
}
