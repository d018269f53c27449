/* test_store_rocksdb.c: what only the RocksDB backend can get wrong: opening
 * (bad folders, a second opener), error conversion, group commit under
 * concurrent writers, and barriers canceled by close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chorus_alloc.h"
#include "store_rocksdb.h"

static char dir[] = "/tmp/chorus-rocks-XXXXXX";

static int remove_entry(const char *p, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(p);
}

static int setup(void **state) {
  (void)state;
  strcpy(dir, "/tmp/chorus-rocks-XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void open_reports_bad_folders(void **state) {
  (void)state;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  struct store *s = (struct store *)1;
  assert_int_equal(store_rocksdb_open(NULL, &s, errmsg), CHORUS_EINVAL);
  assert_null(s);
  struct store_rocksdb_options o = {.path = ""};
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_EINVAL);

  char path[512];
  snprintf(path, sizeof path, "%s/no/such/parent", dir);
  o.path = path;
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_ENOTFOUND);
  assert_non_null(strstr(errmsg, "no/such/parent"));

  snprintf(path, sizeof path, "%s/a-file", dir);
  FILE *f = fopen(path, "w");
  fclose(f);
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_EINVAL);
  assert_non_null(strstr(errmsg, "not a folder"));
}

static void second_opener_is_refused(void **state) {
  (void)state;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  struct store_rocksdb_options o = {.path = dir};
  struct store *first, *second;
  assert_int_equal(store_rocksdb_open(&o, &first, errmsg), CHORUS_OK);
  int rc = store_rocksdb_open(&o, &second, errmsg);
  assert_int_equal(rc, CHORUS_EBUSY);
  assert_null(second);
  assert_non_null(strstr(errmsg, "LOCK"));
  store_close(first);
  /* Once closed, it opens again. */
  assert_int_equal(store_rocksdb_open(&o, &second, errmsg), CHORUS_OK);
  store_close(second);
}

static void corrupt_current_file_is_reported(void **state) {
  (void)state;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  struct store_rocksdb_options o = {.path = dir};
  struct store *s;
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_OK);
  assert_int_equal(store_put(s, STORE_DATA, "k", 1, "v", 1, NULL), CHORUS_OK);
  store_close(s);
  /* CURRENT names the manifest; point it at garbage. */
  char path[512];
  snprintf(path, sizeof path, "%s/CURRENT", dir);
  FILE *f = fopen(path, "w");
  fputs("MANIFEST-999999\n", f);
  fclose(f);
  int rc = store_rocksdb_open(&o, &s, errmsg);
  assert_true(rc == CHORUS_ECORRUPT || rc == CHORUS_EIO ||
              rc == CHORUS_ENOTFOUND);
  assert_null(s);
  assert_true(strlen(errmsg) > 0);
}

/* Group commit: with many writers waiting on barriers at once, one fsync
 * completes many of them. */
struct writer {
  struct store *s;
  int id;
  int writes;
  pthread_mutex_t lock;
  pthread_cond_t done;
  int durable;
  int failures;
};

static void writer_cb(void *arg, chorus_seq durable, int status) {
  (void)durable;
  struct writer *w = arg;
  pthread_mutex_lock(&w->lock);
  if (status != CHORUS_OK)
    w->failures++;
  w->durable = 1;
  pthread_cond_signal(&w->done);
  pthread_mutex_unlock(&w->lock);
}

static void *writer_main(void *arg) {
  struct writer *w = arg;
  for (int i = 0; i < w->writes; i++) {
    char key[32];
    int n = snprintf(key, sizeof key, "w%02d-%05d", w->id, i);
    chorus_seq seq;
    if (store_put(w->s, STORE_DATA, key, (size_t)n, "value", 5, &seq) !=
        CHORUS_OK) {
      w->failures++;
      break;
    }
    w->durable = 0;
    if (store_sync_request(w->s, seq, writer_cb, w) != CHORUS_OK) {
      w->failures++;
      break;
    }
    pthread_mutex_lock(&w->lock);
    while (!w->durable)
      pthread_cond_wait(&w->done, &w->lock);
    pthread_mutex_unlock(&w->lock);
  }
  return NULL;
}

static void concurrent_writers_share_syncs(void **state) {
  (void)state;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  struct store_rocksdb_options o = {.path = dir};
  struct store *s;
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_OK);
  enum { WRITERS = 16, WRITES = 50 };
  struct writer w[WRITERS];
  pthread_t t[WRITERS];
  for (int i = 0; i < WRITERS; i++) {
    w[i] = (struct writer){.s = s, .id = i, .writes = WRITES};
    pthread_mutex_init(&w[i].lock, NULL);
    pthread_cond_init(&w[i].done, NULL);
    pthread_create(&t[i], NULL, writer_main, &w[i]);
  }
  for (int i = 0; i < WRITERS; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(w[i].failures, 0);
    pthread_mutex_destroy(&w[i].lock);
    pthread_cond_destroy(&w[i].done);
  }
  assert_true(store_durable_seq(s) >= (chorus_seq)(WRITERS * WRITES));
  for (int i = 0; i < WRITERS; i++) {
    char key[32];
    int n = snprintf(key, sizeof key, "w%02d-%05d", i, WRITES - 1);
    void *val;
    size_t vlen;
    assert_int_equal(store_get(s, STORE_DATA, key, (size_t)n, &val, &vlen),
                     CHORUS_OK);
    chorus_free(val);
  }
  store_close(s);
}

static atomic_int canceled, completed;

static void count_cb(void *arg, chorus_seq durable, int status) {
  (void)arg, (void)durable;
  if (status == CHORUS_ECANCELED)
    atomic_fetch_add(&canceled, 1);
  else
    atomic_fetch_add(&completed, 1);
}

static void close_completes_or_cancels_every_barrier(void **state) {
  (void)state;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  struct store_rocksdb_options o = {.path = dir};
  struct store *s;
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_OK);
  atomic_store(&canceled, 0);
  atomic_store(&completed, 0);
  enum { REQUESTS = 2000 };
  for (int i = 0; i < REQUESTS; i++) {
    chorus_seq seq;
    assert_int_equal(store_put(s, STORE_DATA, "k", 1, "v", 1, &seq),
                     CHORUS_OK);
    assert_int_equal(store_sync_request(s, seq, count_cb, NULL), CHORUS_OK);
  }
  store_close(s);
  /* Every callback ran exactly once, before close returned. */
  assert_int_equal(atomic_load(&canceled) + atomic_load(&completed), REQUESTS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(open_reports_bad_folders, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(second_opener_is_refused, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(corrupt_current_file_is_reported, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(concurrent_writers_share_syncs, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(close_completes_or_cancels_every_barrier,
                                      setup, teardown),
  };
  return cmocka_run_group_tests_name("rocksdb", tests, NULL, NULL);
}
