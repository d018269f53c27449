/* test_store_rocksdb.c: what only the RocksDB backend can get wrong: opening
 * (bad folders, a second opener), error conversion, group commit under
 * concurrent writers, barriers canceled by close, and a full disk: opening
 * read-only below the reserve, and a real ENOSPC on a small tmpfs (root
 * only; skipped otherwise) that must not abort the process; space given
 * back after deletes (store_reclaim), and a close while it runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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
  char mnt[512];
  snprintf(mnt, sizeof mnt, "%s/small", dir);
  (void)umount2(mnt, MNT_DETACH); /* a failed tmpfs test's */
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
    assert_int_equal(store_put(s, STORE_DATA, "k", 1, "v", 1, &seq), CHORUS_OK);
    assert_int_equal(store_sync_request(s, seq, count_cb, NULL), CHORUS_OK);
  }
  store_close(s);
  /* Every callback ran exactly once, before close returned. */
  assert_int_equal(atomic_load(&canceled) + atomic_load(&completed), REQUESTS);
}

/* Below the reserve at open the database opens read-only: reads work,
 * writes are refused; a check with room reopens it read-write. */
static void below_the_reserve_opens_read_only(void **state) {
  (void)state;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  struct store_rocksdb_options o = {.path = dir};
  struct store *s;
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_OK);
  assert_int_equal(store_put(s, STORE_DATA, "k", 1, "v", 1, NULL), CHORUS_OK);
  store_close(s); /* unsynced: the read-only open syncs the WAL itself */

  o.min_free_bytes = UINT64_MAX;
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_OK);
  const struct store_disk *d = store_disk_info(s);
  assert_true(d->read_only);
  assert_true(d->full);
  void *val;
  size_t vlen;
  assert_int_equal(store_get(s, STORE_DATA, "k", 1, &val, &vlen), CHORUS_OK);
  chorus_free(val);
  assert_int_equal(store_put(s, STORE_DATA, "x", 1, "v", 1, NULL),
                   CHORUS_ENOSPC);
  assert_non_null(strstr(store_errmsg(s), "data folder full ("));
  assert_true(store_durable_seq(s) >= store_last_seq(s));
  assert_int_equal(store_flush(s), CHORUS_OK);
  chorus_seq last = store_last_seq(s);

  store_set_reserve(s, 0);
  bool changed = false;
  assert_int_equal(store_check_space(s, &changed), CHORUS_OK);
  assert_true(changed);
  assert_false(d->read_only);
  assert_int_equal(d->generation, 1);
  chorus_seq seq;
  assert_int_equal(store_put(s, STORE_DATA, "x", 1, "v", 1, &seq), CHORUS_OK);
  assert_true(seq > last);
  assert_int_equal(store_get(s, STORE_DATA, "k", 1, &val, &vlen), CHORUS_OK);
  chorus_free(val);
  assert_int_equal(store_sync(s), CHORUS_OK);
  store_close(s);

  /* No database to open read-only: a new one cannot be made. */
  char path[512];
  snprintf(path, sizeof path, "%s/new", dir);
  o.path = path;
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_ENOSPC);
  assert_non_null(strstr(errmsg, "data folder full"));
}

/* ------------------------------------------------------------------------
 * A real full disk: a 16 MiB tmpfs, filled by another file while the store
 * writes with no reserve. RocksDB 7.8 aborted the process here (issue 17);
 * now the write is refused with ENOSPC, the store reopens read-only,
 * keeps every synced write, and resumes once the file is gone.
 * ------------------------------------------------------------------------ */

static uint64_t avail_of(const char *path) {
  struct statvfs v;
  assert_int_equal(statvfs(path, &v), 0);
  return (uint64_t)v.f_bavail * v.f_frsize;
}

static atomic_int nospc_status;

static void status_cb(void *arg, chorus_seq durable, int status) {
  (void)arg, (void)durable;
  atomic_store(&nospc_status, status);
}

static void real_enospc_reopens_and_resumes(void **state) {
  (void)state;
  char mnt[512], db[600], filler[600];
  snprintf(mnt, sizeof mnt, "%s/small", dir);
  assert_int_equal(mkdir(mnt, 0755), 0);
  if (mount("tmpfs", mnt, "tmpfs", 0, "size=16m") != 0) {
    fprintf(stderr, "# skipped: cannot mount a tmpfs (%s): not root?\n",
            strerror(errno));
    skip();
  }
  snprintf(db, sizeof db, "%s/db", mnt);
  snprintf(filler, sizeof filler, "%s/filler", mnt);
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  struct store_rocksdb_options o = {.path = db};
  struct store *s;
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_OK);
  char key[32], val[16384];
  memset(val, 'v', sizeof val);
  enum { SYNCED = 100 };
  for (int i = 0; i < SYNCED; i++) {
    int n = snprintf(key, sizeof key, "synced%03d", i);
    assert_int_equal(store_put(s, STORE_DATA, key, (size_t)n, "v", 1, NULL),
                     CHORUS_OK);
  }
  assert_int_equal(store_sync(s), CHORUS_OK);

  /* Another file takes all but 64 KiB. */
  FILE *f = fopen(filler, "w");
  assert_non_null(f);
  static char block[4096];
  while (avail_of(mnt) > 64 * 1024 && fwrite(block, 1, sizeof block, f) > 0)
    fflush(f);
  fclose(f);

  /* Writes until one (its WAL append or the flush) finds the disk full;
   * @last_key is the newest write that returned a sequence. */
  int rc = CHORUS_OK;
  char last_key[32] = "";
  for (int i = 0; i < 1000 && rc == CHORUS_OK; i++) {
    int n = snprintf(key, sizeof key, "lost%04d", i);
    rc = store_put(s, STORE_DATA, key, (size_t)n, val, sizeof val, NULL);
    if (rc == CHORUS_OK) {
      memcpy(last_key, key, sizeof key);
      rc = store_flush(s);
    }
  }
  assert_int_equal(rc, CHORUS_ENOSPC);
  assert_true(last_key[0] != '\0');
  assert_true(store_space_stale(s));
  chorus_seq last = store_last_seq(s);
  atomic_store(&nospc_status, 1);
  assert_int_equal(store_sync_request(s, last, status_cb, NULL), CHORUS_OK);
  bool changed = false;
  assert_int_equal(store_check_space(s, &changed), CHORUS_OK);
  const struct store_disk *d = store_disk_info(s);
  assert_true(changed);
  assert_true(d->full);
  assert_true(d->read_only);
  assert_int_equal(d->generation, 1);
  for (int i = 0; i < 500 && atomic_load(&nospc_status) == 1; i++)
    usleep(10000);
  /* The barrier says what the reopen kept: the newest write, when it
   * reached the disk before it filled (OK), or not (ENOSPC, and the lost
   * sequence is refused from now on). */
  int st = atomic_load(&nospc_status);
  void *v;
  size_t vlen;
  int got = store_get(s, STORE_DATA, last_key, strlen(last_key), &v, &vlen);
  if (got == CHORUS_OK)
    chorus_free(v);
  if (st == CHORUS_ENOSPC) {
    assert_int_equal(got, CHORUS_ENOTFOUND);
    assert_int_equal(store_sync_request(s, last, status_cb, NULL),
                     CHORUS_ENOSPC);
  } else {
    assert_int_equal(st, CHORUS_OK);
    assert_int_equal(got, CHORUS_OK);
  }
  assert_true(store_last_seq(s) >= last);
  for (int i = 0; i < SYNCED; i++) {
    int n = snprintf(key, sizeof key, "synced%03d", i);
    assert_int_equal(store_get(s, STORE_DATA, key, (size_t)n, &v, &vlen),
                     CHORUS_OK);
    chorus_free(v);
  }

  assert_int_equal(unlink(filler), 0);
  assert_int_equal(store_check_space(s, &changed), CHORUS_OK);
  assert_true(changed);
  assert_false(d->full);
  assert_false(d->read_only);
  chorus_seq seq;
  assert_int_equal(store_put(s, STORE_DATA, "after", 5, "v", 1, &seq),
                   CHORUS_OK);
  assert_true(seq > last);
  assert_int_equal(store_sync(s), CHORUS_OK);
  store_close(s);
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_OK);
  assert_int_equal(store_get(s, STORE_DATA, "after", 5, &v, &vlen), CHORUS_OK);
  chorus_free(v);
  assert_int_equal(store_get(s, STORE_DATA, "synced000", 9, &v, &vlen),
                   CHORUS_OK);
  chorus_free(v);
  store_close(s);
  assert_int_equal(umount(mnt), 0);
}

/* ------------------------------------------------------------------------
 * Space given back (store_rocksdb.c, HOW SPACE COMES BACK)
 * ------------------------------------------------------------------------ */

/* usage_after_reclaims: store_usage once @n reclaims have completed (10 s
 * bound: the reclaim thread compacts a few MiB in milliseconds). */
static struct store_usage usage_after_reclaims(struct store *s, uint64_t n) {
  struct store_usage u;
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(store_usage(s, &u), CHORUS_OK);
    if (u.reclaims >= n)
      break;
    usleep(10000);
  }
  assert_true(u.reclaims >= n);
  return u;
}

/* A store whose data fits its memory table never flushes: deleting every
 * value leaves the folder larger than it was full, until store_reclaim.
 * Then the WAL and the deleted values are gone, the kept values are all
 * there, and the folder is a few times its empty size. */
static void reclaim_gives_deleted_space_back(void **state) {
  (void)state;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  struct store_rocksdb_options o = {.path = dir};
  struct store *s;
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_OK);
  struct store_usage empty, full, deleted, after;
  assert_int_equal(store_usage(s, &empty), CHORUS_OK);
  enum { GONE = 3000, KEPT = 100, VLEN = 1024 };
  unsigned char val[VLEN], dk[STORE_TOKEN_PREFIX + 16];
  uint64_t x = 88172645463325252u; /* xorshift: values LZ4 cannot shrink */
  for (int i = 0; i < GONE + KEPT; i++) {
    for (size_t j = 0; j < VLEN; j += 8) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      memcpy(val + j, &x, 8);
    }
    char key[16];
    int kl = snprintf(key, sizeof key, "%c%05d", i < GONE ? 'g' : 'k', i);
    size_t dl = store_data_key(dk, (chorus_token)i * 0x9E3779B97F4A7C15u, key,
                               (size_t)kl);
    assert_int_equal(store_put(s, STORE_DATA, dk, dl, val, VLEN, NULL),
                     CHORUS_OK);
  }
  assert_int_equal(store_flush(s), CHORUS_OK);
  assert_int_equal(store_usage(s, &full), CHORUS_OK);
  for (int i = 0; i < GONE; i++) {
    char key[16];
    int kl = snprintf(key, sizeof key, "g%05d", i);
    size_t dl = store_data_key(dk, (chorus_token)i * 0x9E3779B97F4A7C15u, key,
                               (size_t)kl);
    assert_int_equal(store_delete(s, STORE_DATA, dk, dl, NULL), CHORUS_OK);
  }
  assert_int_equal(store_flush(s), CHORUS_OK);
  assert_int_equal(store_usage(s, &deleted), CHORUS_OK);
  assert_int_equal(store_reclaim(s, 0, UINT64_MAX), CHORUS_OK);
  after = usage_after_reclaims(s, 1);
  print_message("# folder bytes: empty %" PRIu64 ", full %" PRIu64
                ", all but %d deleted %" PRIu64 ", reclaimed %" PRIu64
                " (tables %" PRIu64 ", %" PRIu64 " ms)\n",
                empty.folder_bytes, full.folder_bytes, KEPT,
                deleted.folder_bytes, after.folder_bytes, after.table_bytes,
                after.reclaim_ms);
  assert_true(deleted.folder_bytes >= full.folder_bytes); /* the WAL grew */
  /* The kept values (100 KiB) in a table file, the rest gone: well under
   * a tenth of the full folder (3.1 MiB). */
  assert_true(after.table_bytes >= KEPT * VLEN);
  assert_true(after.folder_bytes < empty.folder_bytes + 2 * KEPT * VLEN);
  assert_true(after.folder_bytes < full.folder_bytes / 10);
  for (int i = 0; i < GONE + KEPT; i += 7) {
    char key[16];
    int kl = snprintf(key, sizeof key, "%c%05d", i < GONE ? 'g' : 'k', i);
    size_t dl = store_data_key(dk, (chorus_token)i * 0x9E3779B97F4A7C15u, key,
                               (size_t)kl);
    void *v = NULL;
    size_t vl = 0;
    int rc = store_get(s, STORE_DATA, dk, dl, &v, &vl);
    assert_int_equal(rc, i < GONE ? CHORUS_ENOTFOUND : CHORUS_OK);
    if (rc == CHORUS_OK)
      assert_int_equal(vl, VLEN);
    chorus_free(v);
  }
  store_close(s);
}

/* A compaction writes before it deletes: with less room than the reserve
 * plus the range's tables, a reclaim is skipped and counted, and the data
 * is untouched. */
static void reclaim_without_room_is_skipped(void **state) {
  (void)state;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  struct store_rocksdb_options o = {.path = dir};
  struct store *s;
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_OK);
  assert_int_equal(store_put(s, STORE_DATA, "a", 1, "1", 1, NULL), CHORUS_OK);
  assert_int_equal(store_delete(s, STORE_DATA, "a", 1, NULL), CHORUS_OK);
  /* More than the disk has; no space check runs, so writes still go. */
  store_set_reserve(s, avail_of(dir) + (1ull << 40));
  assert_int_equal(store_reclaim(s, 0, UINT64_MAX), CHORUS_OK);
  struct store_usage u;
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(store_usage(s, &u), CHORUS_OK);
    if (u.reclaims_skipped > 0)
      break;
    usleep(10000);
  }
  assert_int_equal(u.reclaims_skipped, 1);
  assert_int_equal(u.reclaims, 0);
  store_set_reserve(s, 0);
  assert_int_equal(store_reclaim(s, 0, UINT64_MAX), CHORUS_OK);
  u = usage_after_reclaims(s, 1);
  assert_int_equal(u.reclaims_skipped, 1);
  store_close(s);
}

/* Close with a reclaim asked for and perhaps running: it is cancelled or
 * finishes, close returns, and the store reopens with its data. */
static void close_during_reclaim(void **state) {
  (void)state;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  struct store_rocksdb_options o = {.path = dir};
  struct store *s;
  for (int round = 0; round < 3; round++) {
    assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_OK);
    char v[512];
    memset(v, 'a' + round, sizeof v);
    for (int i = 0; i < 2000; i++) {
      char k[32];
      int kl = snprintf(k, sizeof k, "key%06d", i);
      assert_int_equal(
          store_put(s, STORE_DATA, k, (size_t)kl, v, sizeof v, NULL),
          CHORUS_OK);
      if (i % 2 == 0)
        assert_int_equal(store_delete(s, STORE_DATA, k, (size_t)kl, NULL),
                         CHORUS_OK);
    }
    assert_int_equal(store_reclaim(s, 0, UINT64_MAX), CHORUS_OK);
    if (round == 1)
      usleep(2000); /* let it start */
    assert_int_equal(store_sync(s), CHORUS_OK);
    store_close(s);
  }
  assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_OK);
  void *got = NULL;
  size_t gl = 0;
  assert_int_equal(store_get(s, STORE_DATA, "key000001", 9, &got, &gl),
                   CHORUS_OK);
  assert_int_equal(gl, 512);
  assert_int_equal(((char *)got)[0], 'c');
  chorus_free(got);
  assert_int_equal(store_get(s, STORE_DATA, "key000000", 9, &got, &gl),
                   CHORUS_ENOTFOUND);
  store_close(s);
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
      cmocka_unit_test_setup_teardown(below_the_reserve_opens_read_only, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(reclaim_gives_deleted_space_back, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(reclaim_without_room_is_skipped, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(close_during_reclaim, setup, teardown),
      cmocka_unit_test_setup_teardown(real_enospc_reopens_and_resumes, setup,
                                      teardown),
  };
  return cmocka_run_group_tests_name("rocksdb", tests, NULL, NULL);
}
