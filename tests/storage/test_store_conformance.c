/* test_store_conformance.c: the storage contract (store.h), one set of test
 * bodies run against every backend. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_alloc.h"
#include "chorus_prng.h"
#include "store_fixture.h"

static int setup_memory(void **state) {
  struct store_fixture *f = malloc(sizeof *f);
  if (fixture_open(f, "memory") != CHORUS_OK)
    return -1;
  *state = f;
  return 0;
}

static int setup_rocksdb(void **state) {
  struct store_fixture *f = malloc(sizeof *f);
  if (fixture_open(f, "rocksdb") != CHORUS_OK)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct store_fixture *f = *state;
  fixture_close(f);
  free(f);
  return 0;
}

/* get_str: the value of @key as a NUL-terminated string, or NULL. */
static char *get_str(struct store *s, enum store_space space, const char *key) {
  void *val;
  size_t vlen;
  int rc = store_get(s, space, key, strlen(key), &val, &vlen);
  if (rc == CHORUS_ENOTFOUND)
    return NULL;
  assert_int_equal(rc, CHORUS_OK);
  char *str = malloc(vlen + 1);
  memcpy(str, val, vlen);
  str[vlen] = '\0';
  chorus_free(val);
  return str;
}

static void put_str(struct store *s, enum store_space space, const char *key,
                    const char *val) {
  assert_int_equal(
      store_put(s, space, key, strlen(key), val, strlen(val), NULL), CHORUS_OK);
}

static void assert_value(struct store *s, enum store_space space,
                         const char *key, const char *expected) {
  char *got = get_str(s, space, key);
  if (expected == NULL) {
    assert_null(got);
    return;
  }
  assert_non_null(got);
  assert_string_equal(got, expected);
  free(got);
}

/* ------------------------------------------------------------------------ */

static void put_get_roundtrip(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  put_str(s, STORE_DATA, "alpha", "one");
  assert_value(s, STORE_DATA, "alpha", "one");

  /* Binary keys and values with NUL bytes, an empty value, a 1 MiB value. */
  const unsigned char bkey[] = {0, 1, 0, 255};
  const unsigned char bval[] = {9, 0, 0, 9};
  assert_int_equal(
      store_put(s, STORE_DATA, bkey, sizeof bkey, bval, sizeof bval, NULL),
      CHORUS_OK);
  void *val;
  size_t vlen;
  assert_int_equal(store_get(s, STORE_DATA, bkey, sizeof bkey, &val, &vlen),
                   CHORUS_OK);
  assert_int_equal(vlen, sizeof bval);
  assert_memory_equal(val, bval, sizeof bval);
  chorus_free(val);

  assert_int_equal(store_put(s, STORE_DATA, "empty", 5, "", 0, NULL),
                   CHORUS_OK);
  assert_int_equal(store_get(s, STORE_DATA, "empty", 5, &val, &vlen),
                   CHORUS_OK);
  assert_non_null(val);
  assert_int_equal(vlen, 0);
  chorus_free(val);

  size_t big = 1u << 20;
  unsigned char *large = malloc(big);
  for (size_t i = 0; i < big; i++)
    large[i] = (unsigned char)(i * 31);
  assert_int_equal(store_put(s, STORE_DATA, "large", 5, large, big, NULL),
                   CHORUS_OK);
  assert_int_equal(store_get(s, STORE_DATA, "large", 5, &val, &vlen),
                   CHORUS_OK);
  assert_int_equal(vlen, big);
  assert_memory_equal(val, large, big);
  chorus_free(val);
  free(large);
}

static void missing_key_is_not_found(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  void *val = (void *)1;
  size_t vlen = 7;
  assert_int_equal(store_get(s, STORE_DATA, "nope", 4, &val, &vlen),
                   CHORUS_ENOTFOUND);
  assert_null(val);
}

static void overwrite_and_delete(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  put_str(s, STORE_DATA, "k", "v1");
  put_str(s, STORE_DATA, "k", "v2");
  assert_value(s, STORE_DATA, "k", "v2");
  chorus_seq seq;
  assert_int_equal(store_delete(s, STORE_DATA, "k", 1, &seq), CHORUS_OK);
  assert_value(s, STORE_DATA, "k", NULL);
  chorus_seq seq2;
  assert_int_equal(store_delete(s, STORE_DATA, "absent", 6, &seq2), CHORUS_OK);
  assert_true(seq2 > seq);
}

static void key_spaces_are_separate(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  put_str(s, STORE_DATA, "k", "data");
  put_str(s, STORE_HINTS, "k", "hints");
  put_str(s, STORE_META, "k", "meta");
  assert_value(s, STORE_DATA, "k", "data");
  assert_value(s, STORE_HINTS, "k", "hints");
  assert_value(s, STORE_META, "k", "meta");
  assert_int_equal(store_delete(s, STORE_HINTS, "k", 1, NULL), CHORUS_OK);
  assert_value(s, STORE_DATA, "k", "data");
  assert_value(s, STORE_HINTS, "k", NULL);
}

static void sequences_increase(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  chorus_seq a, b, c, d, e;
  assert_int_equal(store_put(s, STORE_DATA, "a", 1, "1", 1, &a), CHORUS_OK);
  assert_int_equal(store_put(s, STORE_META, "b", 1, "1", 1, &b), CHORUS_OK);
  assert_int_equal(store_delete(s, STORE_DATA, "a", 1, &c), CHORUS_OK);
  struct store_batch *batch = store_batch_new();
  assert_int_equal(store_batch_put(batch, STORE_DATA, "x", 1, "1", 1),
                   CHORUS_OK);
  assert_int_equal(store_batch_put(batch, STORE_HINTS, "y", 1, "1", 1),
                   CHORUS_OK);
  assert_int_equal(store_write_batch(s, batch, &d), CHORUS_OK);
  assert_true(a < b && b < c && c < d);
  assert_int_equal(store_last_seq(s), d);
  /* An empty batch consumes nothing. */
  store_batch_clear(batch);
  assert_int_equal(store_write_batch(s, batch, &e), CHORUS_OK);
  assert_int_equal(e, d);
  store_batch_free(batch);
}

static void batch_applies_all_operations(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  put_str(s, STORE_DATA, "gone", "soon");
  struct store_batch *b = store_batch_new();
  assert_non_null(b);
  assert_int_equal(store_batch_put(b, STORE_DATA, "a", 1, "A", 1), CHORUS_OK);
  assert_int_equal(store_batch_put(b, STORE_META, "m", 1, "M", 1), CHORUS_OK);
  assert_int_equal(store_batch_delete(b, STORE_DATA, "gone", 4), CHORUS_OK);
  assert_int_equal(store_batch_put(b, STORE_DATA, "a", 1, "A2", 2), CHORUS_OK);
  assert_int_equal(store_batch_count(b), 4);
  assert_int_equal(store_write_batch(s, b, NULL), CHORUS_OK);
  assert_value(s, STORE_DATA, "a", "A2"); /* later op in a batch wins */
  assert_value(s, STORE_META, "m", "M");
  assert_value(s, STORE_DATA, "gone", NULL);
  assert_int_equal(store_batch_put(b, 99, "a", 1, "A", 1), CHORUS_EINVAL);
  store_batch_free(b);
}

/* collect: the keys an iterator yields, joined with ','. */
static void collect(struct store_iter *it, char *out, size_t cap) {
  out[0] = '\0';
  size_t used = 0;
  for (; store_iter_valid(it); store_iter_next(it)) {
    size_t klen;
    const char *k = store_iter_key(it, &klen);
    size_t vlen;
    (void)store_iter_value(it, &vlen);
    assert_true(used + klen + 2 < cap);
    if (used)
      out[used++] = ',';
    memcpy(out + used, k, klen);
    used += klen;
    out[used] = '\0';
  }
  assert_int_equal(store_iter_status(it), CHORUS_OK);
}

static void iteration_is_ordered_and_bounded(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  const char *keys[] = {"b", "a", "ab", "abc", "c", "ba", "\xff"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    put_str(s, STORE_DATA, keys[i], keys[i]);
  put_str(s, STORE_META, "aa", "other space");
  char got[256];
  struct store_iter *it;
  assert_int_equal(store_iter_open(s, STORE_DATA, NULL, 0, NULL, 0, &it),
                   CHORUS_OK);
  collect(it, got, sizeof got);
  store_iter_close(it);
  assert_string_equal(got, "a,ab,abc,b,ba,c,\xff");

  /* [ab, b): lower inclusive, upper exclusive. */
  assert_int_equal(store_iter_open(s, STORE_DATA, "ab", 2, "b", 1, &it),
                   CHORUS_OK);
  collect(it, got, sizeof got);
  store_iter_close(it);
  assert_string_equal(got, "ab,abc");

  assert_int_equal(store_iter_open(s, STORE_DATA, "b", 1, NULL, 0, &it),
                   CHORUS_OK);
  collect(it, got, sizeof got);
  store_iter_close(it);
  assert_string_equal(got, "b,ba,c,\xff");

  assert_int_equal(store_iter_open(s, STORE_DATA, "x", 1, "y", 1, &it),
                   CHORUS_OK);
  assert_false(store_iter_valid(it));
  store_iter_close(it);
  store_iter_close(NULL);
}

/* A seek repositions in the iterator's own snapshot and bounds: forward,
 * back, below the lower bound, past the end. */
static void iterator_seeks_in_its_snapshot(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  const char *keys[] = {"b", "a", "ab", "abc", "c", "ba", "d"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    put_str(s, STORE_DATA, keys[i], keys[i]);
  char got[256];
  struct store_iter *it;
  assert_int_equal(store_iter_open(s, STORE_DATA, "ab", 2, "d", 1, &it),
                   CHORUS_OK);
  put_str(s, STORE_DATA, "bb", "after the snapshot");
  assert_int_equal(store_delete(s, STORE_DATA, "c", 1, NULL), CHORUS_OK);
  store_iter_seek(it, "b", 1);
  collect(it, got, sizeof got);
  assert_string_equal(got, "b,ba,c");
  store_iter_seek(it, "abb", 3); /* back, between two keys */
  collect(it, got, sizeof got);
  assert_string_equal(got, "abc,b,ba,c");
  store_iter_seek(it, "a", 1); /* below the lower bound: from the bound */
  collect(it, got, sizeof got);
  assert_string_equal(got, "ab,abc,b,ba,c");
  store_iter_seek(it, "bb", 2); /* written after the snapshot: not seen */
  collect(it, got, sizeof got);
  assert_string_equal(got, "c");
  store_iter_seek(it, "d", 1); /* at the upper bound */
  assert_false(store_iter_valid(it));
  assert_int_equal(store_iter_status(it), CHORUS_OK);
  store_iter_seek(it, "", 0);
  assert_true(store_iter_valid(it));
  store_iter_close(it);
}

static void iterator_reads_a_snapshot(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  put_str(s, STORE_DATA, "a", "1");
  put_str(s, STORE_DATA, "c", "3");
  struct store_iter *it;
  assert_int_equal(store_iter_open(s, STORE_DATA, NULL, 0, NULL, 0, &it),
                   CHORUS_OK);
  put_str(s, STORE_DATA, "b", "2");
  assert_int_equal(store_delete(s, STORE_DATA, "c", 1, NULL), CHORUS_OK);
  put_str(s, STORE_DATA, "a", "changed");
  assert_true(store_iter_valid(it));
  size_t len;
  const char *v = store_iter_value(it, &len);
  assert_int_equal(len, 1);
  assert_memory_equal(v, "1", 1);
  char got[64];
  collect(it, got, sizeof got);
  assert_string_equal(got, "a,c");
  store_iter_close(it);
}

static void token_range_scans(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  chorus_token tokens[] = {0, 1, 1000, 1000, UINT64_MAX - 1, UINT64_MAX};
  const char *ukeys[] = {"zero", "one", "k1", "k2", "max-1", "max"};
  unsigned char dkey[64];
  for (size_t i = 0; i < 6; i++) {
    size_t n = store_data_key(dkey, tokens[i], ukeys[i], strlen(ukeys[i]));
    assert_int_equal(n, 8 + strlen(ukeys[i]));
    assert_int_equal(store_put(s, STORE_DATA, dkey, n, "v", 1, NULL),
                     CHORUS_OK);
  }
  struct {
    chorus_token first, last;
    const char *expect;
  } cases[] = {
      {0, UINT64_MAX, "zero,one,k1,k2,max-1,max"},
      {1, 1000, "one,k1,k2"},
      {2, 999, ""},
      {1000, 1000, "k1,k2"},
      {UINT64_MAX, UINT64_MAX, "max"},
      {0, 0, "zero"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    struct store_iter *it;
    assert_int_equal(
        store_iter_open_tokens(s, cases[c].first, cases[c].last, &it),
        CHORUS_OK);
    char got[128] = "";
    size_t used = 0;
    for (; store_iter_valid(it); store_iter_next(it)) {
      size_t dklen;
      const void *dk = store_iter_key(it, &dklen);
      chorus_token t;
      const void *uk;
      size_t uklen;
      assert_int_equal(store_data_key_parse(dk, dklen, &t, &uk, &uklen),
                       CHORUS_OK);
      assert_true(t >= cases[c].first && t <= cases[c].last);
      if (used)
        got[used++] = ',';
      memcpy(got + used, uk, uklen);
      used += uklen;
      got[used] = '\0';
    }
    assert_int_equal(store_iter_status(it), CHORUS_OK);
    store_iter_close(it);
    assert_string_equal(got, cases[c].expect);
  }
  struct store_iter *it;
  assert_int_equal(store_iter_open_tokens(s, 10, 9, &it), CHORUS_EINVAL);
  assert_null(it);
  chorus_token t;
  const void *uk;
  size_t uklen;
  assert_int_equal(store_data_key_parse("short", 5, &t, &uk, &uklen),
                   CHORUS_ECORRUPT);
}

static void bad_arguments_are_rejected(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  size_t too_long = STORE_MAX_KEY + 1;
  char *key = calloc(1, too_long);
  assert_int_equal(store_put(s, STORE_DATA, key, too_long, "v", 1, NULL),
                   CHORUS_ETOOBIG);
  assert_true(strlen(store_errmsg(s)) > 0);
  free(key);
  assert_int_equal(store_put(s, 7, "k", 1, "v", 1, NULL), CHORUS_EINVAL);
  assert_int_equal(store_put(s, STORE_DATA, NULL, 3, "v", 1, NULL),
                   CHORUS_EINVAL);
  assert_int_equal(store_put(s, STORE_DATA, "k", 1, NULL, 3, NULL),
                   CHORUS_EINVAL);
  void *val;
  size_t vlen;
  assert_int_equal(store_get(s, 3, "k", 1, &val, &vlen), CHORUS_EINVAL);
  assert_int_equal(store_write_batch(s, NULL, NULL), CHORUS_EINVAL);
  chorus_seq last = store_last_seq(s);
  assert_int_equal(store_put(s, STORE_DATA, "k", 1, "v", 1, NULL), CHORUS_OK);
  assert_int_equal(store_last_seq(s), last + 1);
}

static void sync_barrier_completes(void **state) {
  struct store_fixture *f = *state;
  chorus_seq seq;
  assert_int_equal(store_put(f->s, STORE_DATA, "k", 1, "v", 1, &seq),
                   CHORUS_OK);
  assert_int_equal(fixture_request(f, 0, seq), CHORUS_OK);
  assert_int_equal(fixture_drive_syncs(f, 1), 1);
  assert_int_equal(f->last_status, CHORUS_OK);
  assert_true(f->last_durable >= seq);
  assert_true(store_durable_seq(f->s) >= seq);
  /* A sequence already durable still completes, later, exactly once. */
  assert_int_equal(fixture_request(f, 1, seq), CHORUS_OK);
  assert_int_equal(fixture_drive_syncs(f, 2), 2);
  assert_int_equal(f->order_violations, 0);
  /* A future sequence is a caller bug reported as EINVAL. */
  assert_int_equal(fixture_request(f, 2, store_last_seq(f->s) + 1),
                   CHORUS_EINVAL);
}

/* store_usage's write figures: the memory backend has none (zeros); RocksDB
 * counts every WAL sync it runs (each barrier drive and store_sync) and
 * times them, and an idle fresh store is neither stopped nor slowed. */
static void usage_counts_wal_syncs(void **state) {
  struct store_fixture *f = *state;
  struct store_usage u0, u1;
  assert_int_equal(store_usage(f->s, &u0), CHORUS_OK);
  chorus_seq seq;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(store_put(f->s, STORE_DATA, "k", 1, "v", 1, &seq),
                     CHORUS_OK);
    assert_int_equal(fixture_request(f, i, seq), CHORUS_OK);
    assert_int_equal(fixture_drive_syncs(f, i + 1), i + 1);
  }
  assert_int_equal(store_sync(f->s), CHORUS_OK);
  assert_int_equal(store_usage(f->s, &u1), CHORUS_OK);
  assert_false(u1.write_stopped);
  assert_true(u1.delayed_write_rate == 0);
  assert_true(u1.write_stall_us == 0);
  if (strcmp(f->backend, "memory") == 0) {
    assert_true(u1.wal_syncs == 0 && u1.wal_sync_us == 0);
    assert_true(u1.pending_compaction_bytes == 0);
    return;
  }
  /* Barriers of writes already durable may complete without a sync; the
   * first after a write and store_sync after a write sync at least. */
  print_message("# WAL syncs %" PRIu64 " in %" PRIu64 " us\n",
                u1.wal_syncs - u0.wal_syncs, u1.wal_sync_us - u0.wal_sync_us);
  assert_true(u1.wal_syncs - u0.wal_syncs >= 2);
  assert_true(u1.wal_sync_us >= u0.wal_sync_us);
}

static void many_barriers_complete_once_in_order(void **state) {
  struct store_fixture *f = *state;
  enum { WRITES = 500 };
  for (long i = 0; i < WRITES; i++) {
    char key[16];
    int n = snprintf(key, sizeof key, "k%ld", i);
    chorus_seq seq;
    assert_int_equal(store_put(f->s, STORE_DATA, key, (size_t)n, "v", 1, &seq),
                     CHORUS_OK);
    assert_int_equal(fixture_request(f, i, seq), CHORUS_OK);
  }
  assert_int_equal(fixture_drive_syncs(f, WRITES), WRITES);
  assert_int_equal(f->order_violations, 0);
  assert_int_equal(f->last_status, CHORUS_OK);
  assert_true(store_durable_seq(f->s) >= store_last_seq(f->s));
}

static void failed_sync_is_sticky(void **state) {
  struct store_fixture *f = *state;
  put_str(f->s, STORE_DATA, "before", "1");
  chorus_seq seq;
  assert_int_equal(store_put(f->s, STORE_DATA, "k", 1, "v", 1, &seq),
                   CHORUS_OK);
  store_inject_fault(f->s, STORE_FAULT_SYNC);
  assert_int_equal(fixture_request(f, 0, seq), CHORUS_OK);
  assert_int_equal(fixture_drive_syncs(f, 1), 1);
  assert_int_equal(f->last_status, CHORUS_ESYNCFAILED);
  /* From now on: writes and barriers refused, reads still served. */
  assert_int_equal(store_put(f->s, STORE_DATA, "x", 1, "v", 1, NULL),
                   CHORUS_ESYNCFAILED);
  assert_int_equal(store_delete(f->s, STORE_DATA, "k", 1, NULL),
                   CHORUS_ESYNCFAILED);
  assert_int_equal(fixture_request(f, 1, seq), CHORUS_ESYNCFAILED);
  assert_int_equal(store_sync(f->s), CHORUS_ESYNCFAILED);
  assert_int_equal(store_flush(f->s), CHORUS_ESYNCFAILED);
  assert_value(f->s, STORE_DATA, "before", "1");
}

static void injected_io_faults_write_nothing(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  chorus_seq last = store_last_seq(s);
  store_inject_fault(s, STORE_FAULT_WRITE);
  assert_int_equal(store_put(s, STORE_DATA, "k", 1, "v", 1, NULL), CHORUS_EIO);
  store_inject_fault(s, STORE_FAULT_NOSPC);
  assert_int_equal(store_put(s, STORE_DATA, "k", 1, "v", 1, NULL),
                   CHORUS_ENOSPC);
  assert_true(strlen(store_errmsg(s)) > 0);
  assert_int_equal(store_last_seq(s), last);
  assert_value(s, STORE_DATA, "k", NULL);
  /* Faults fire once; the store is healthy after. */
  put_str(s, STORE_DATA, "k", "v");
  store_inject_fault(s, STORE_FAULT_READ);
  void *val;
  size_t vlen;
  assert_int_equal(store_get(s, STORE_DATA, "k", 1, &val, &vlen), CHORUS_EIO);
  assert_value(s, STORE_DATA, "k", "v");
}

/* A full disk (store.h, THE SPACE RESERVE): once a check sees it, every
 * write is refused with ENOSPC ("data folder full (N bytes free)") before
 * the backend, while reads, scans and barriers of earlier writes work; a
 * check that finds room again lets writes resume. The reserve refuses
 * them likewise with bytes to spare. */
static void full_disk_refuses_writes_until_space_returns(void **state) {
  struct store_fixture *f = *state;
  put_str(f->s, STORE_DATA, "before", "1");
  chorus_seq seq = store_last_seq(f->s);
  bool changed = true;
  assert_int_equal(store_check_space(f->s, &changed), CHORUS_OK);
  assert_false(changed);
  assert_false(store_disk_info(f->s)->full);
  assert_true(store_disk_info(f->s)->avail > 0);

  store_inject_fault(f->s, STORE_FAULT_FULL);
  assert_int_equal(store_check_space(f->s, &changed), CHORUS_OK);
  assert_true(changed);
  assert_true(store_disk_info(f->s)->full);
  assert_int_equal(store_disk_info(f->s)->avail, 0);
  assert_int_equal(store_write_allowed(f->s), CHORUS_ENOSPC);
  assert_string_equal(store_errmsg(f->s), "data folder full (0 bytes free)");
  assert_int_equal(store_put(f->s, STORE_DATA, "k", 1, "v", 1, NULL),
                   CHORUS_ENOSPC);
  assert_int_equal(store_delete(f->s, STORE_DATA, "before", 6, NULL),
                   CHORUS_ENOSPC);
  struct store_batch *b = store_batch_new();
  store_batch_put(b, STORE_HINTS, "h", 1, "hint", 4);
  assert_int_equal(store_write_batch(f->s, b, NULL), CHORUS_ENOSPC);
  assert_int_equal(store_last_seq(f->s), seq);
  assert_value(f->s, STORE_DATA, "before", "1");
  struct store_iter *it;
  assert_int_equal(store_iter_open(f->s, STORE_DATA, NULL, 0, NULL, 0, &it),
                   CHORUS_OK);
  assert_true(store_iter_valid(it));
  store_iter_close(it);
  assert_int_equal(fixture_request(f, 0, seq), CHORUS_OK);
  assert_int_equal(fixture_drive_syncs(f, 1), 1);
  assert_int_equal(f->last_status, CHORUS_OK);
  assert_false(store_space_stale(f->s));

  store_inject_fault(f->s, STORE_FAULT_NONE);
  assert_int_equal(store_check_space(f->s, &changed), CHORUS_OK);
  assert_true(changed);
  assert_false(store_disk_info(f->s)->full);
  assert_int_equal(store_write_batch(f->s, b, NULL), CHORUS_OK);
  store_batch_free(b);
  assert_value(f->s, STORE_HINTS, "h", "hint");

  /* The reserve: more than the disk has refuses with bytes free. */
  store_set_reserve(f->s, UINT64_MAX);
  assert_int_equal(store_check_space(f->s, &changed), CHORUS_OK);
  assert_true(changed);
  assert_int_equal(store_put(f->s, STORE_DATA, "k", 1, "v", 1, NULL),
                   CHORUS_ENOSPC);
  assert_non_null(strstr(store_errmsg(f->s), "data folder full ("));
  assert_null(strstr(store_errmsg(f->s), "(0 bytes free)"));
  store_set_reserve(f->s, 1);
  assert_int_equal(store_check_space(f->s, &changed), CHORUS_OK);
  assert_true(changed);
  put_str(f->s, STORE_DATA, "k", "v");
}

/* A write the backend refuses for lack of space (the reserve outrun
 * between two checks) asks for a check at once; it is no sticky failure. */
static void out_of_space_write_asks_for_a_check(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  store_inject_fault(s, STORE_FAULT_NOSPC);
  assert_int_equal(store_put(s, STORE_DATA, "k", 1, "v", 1, NULL),
                   CHORUS_ENOSPC);
  assert_true(store_space_stale(s));
  assert_int_equal(store_check_space(s, NULL), CHORUS_OK);
  assert_false(store_space_stale(s));
  put_str(s, STORE_DATA, "k", "v");
  assert_int_equal(store_sync(s), CHORUS_OK);
}

static void synced_data_survives_restart(void **state) {
  struct store_fixture *f = *state;
  put_str(f->s, STORE_DATA, "a", "1");
  put_str(f->s, STORE_META, "node", "n1");
  struct store_batch *b = store_batch_new();
  store_batch_put(b, STORE_HINTS, "h", 1, "hint", 4);
  store_batch_delete(b, STORE_DATA, "a", 1);
  store_batch_put(b, STORE_DATA, "b", 1, "2", 1);
  assert_int_equal(store_write_batch(f->s, b, NULL), CHORUS_OK);
  store_batch_free(b);
  assert_int_equal(store_sync(f->s), CHORUS_OK);
  chorus_seq last = store_last_seq(f->s);
  assert_int_equal(fixture_reopen(f), CHORUS_OK);
  assert_value(f->s, STORE_DATA, "a", NULL);
  assert_value(f->s, STORE_DATA, "b", "2");
  assert_value(f->s, STORE_META, "node", "n1");
  assert_value(f->s, STORE_HINTS, "h", "hint");
  /* Sequences keep growing across a restart. */
  chorus_seq seq;
  assert_int_equal(store_put(f->s, STORE_DATA, "c", 1, "3", 1, &seq),
                   CHORUS_OK);
  assert_true(seq > last);
}

/* Matches a random workload against a simple reference model. */
static void random_workload_matches_model(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  enum { KEYS = 64, OPS = 3000 };
  int model[STORE_SPACE_COUNT][KEYS]; /* -1 absent, else value */
  memset(model, 0xff, sizeof model);
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 2026);
  struct store_batch *b = store_batch_new();
  for (int op = 0; op < OPS; op++) {
    unsigned space = (unsigned)chorus_prng_below(&prng, STORE_SPACE_COUNT);
    int k = (int)chorus_prng_below(&prng, KEYS);
    char key[8], val[16];
    int kl = snprintf(key, sizeof key, "%02d", k);
    int vl = snprintf(val, sizeof val, "%d", op);
    switch (chorus_prng_below(&prng, 4)) {
    case 0:
      assert_int_equal(
          store_put(s, space, key, (size_t)kl, val, (size_t)vl, NULL),
          CHORUS_OK);
      model[space][k] = op;
      break;
    case 1:
      assert_int_equal(store_delete(s, space, key, (size_t)kl, NULL),
                       CHORUS_OK);
      model[space][k] = -1;
      break;
    case 2:
      assert_int_equal(
          store_batch_put(b, space, key, (size_t)kl, val, (size_t)vl),
          CHORUS_OK);
      if (chorus_prng_chance(&prng, 0.3)) {
        assert_int_equal(store_write_batch(s, b, NULL), CHORUS_OK);
        for (size_t i = 0; i < store_batch_count(b); i++) {
          struct store_batch_op bop;
          store_batch_get(b, i, &bop);
          char kbuf[8] = {0}, vbuf[16] = {0};
          memcpy(kbuf, bop.key, bop.klen);
          memcpy(vbuf, bop.val, bop.vlen);
          model[bop.space][atoi(kbuf)] = atoi(vbuf);
        }
        store_batch_clear(b);
      }
      break;
    default: {
      void *got;
      size_t glen;
      int rc = store_get(s, space, key, (size_t)kl, &got, &glen);
      if (model[space][k] < 0) {
        assert_int_equal(rc, CHORUS_ENOTFOUND);
      } else {
        assert_int_equal(rc, CHORUS_OK);
        char gbuf[16] = {0};
        memcpy(gbuf, got, glen);
        assert_int_equal(atoi(gbuf), model[space][k]);
        chorus_free(got);
      }
    }
    }
  }
  store_batch_free(b);
  /* A full scan of each space equals the model. */
  for (unsigned space = 0; space < STORE_SPACE_COUNT; space++) {
    struct store_iter *it;
    assert_int_equal(store_iter_open(s, space, NULL, 0, NULL, 0, &it),
                     CHORUS_OK);
    int expect_k = 0;
    for (; store_iter_valid(it); store_iter_next(it)) {
      while (expect_k < KEYS && model[space][expect_k] < 0)
        expect_k++;
      size_t klen;
      const char *key = store_iter_key(it, &klen);
      char kbuf[8] = {0};
      memcpy(kbuf, key, klen);
      assert_int_equal(atoi(kbuf), expect_k);
      expect_k++;
    }
    while (expect_k < KEYS && model[space][expect_k] < 0)
      expect_k++;
    assert_int_equal(expect_k, KEYS);
    store_iter_close(it);
  }
}

/* Out of memory anywhere on these paths: an error, no leak (ASan), and the
 * store still works with the same contents. */
/* store_reclaim is a hint: whatever the backend does with it, every key
 * that was not deleted reads back the same, and every deleted one stays
 * deleted; store_usage counts what is held. */
static void reclaim_keeps_what_was_not_deleted(void **state) {
  struct store_fixture *f = *state;
  enum { KEYS = 600 };
  char key[32], val[64];
  for (int i = 0; i < KEYS; i++) {
    snprintf(key, sizeof key, "k%04d", i);
    snprintf(val, sizeof val, "value of %d", i);
    put_str(f->s, STORE_DATA, key, val);
  }
  struct store_usage full;
  assert_int_equal(store_usage(f->s, &full), CHORUS_OK);
  if (strcmp(f->backend, "memory") == 0)
    assert_true(full.memory_bytes >= KEYS * 5);
  else
    assert_true(full.folder_bytes > 0);
  for (int i = 0; i < KEYS; i += 2) {
    snprintf(key, sizeof key, "k%04d", i);
    assert_int_equal(store_delete(f->s, STORE_DATA, key, strlen(key), NULL),
                     CHORUS_OK);
  }
  assert_int_equal(store_reclaim(f->s, 0, UINT64_MAX), CHORUS_OK);
  assert_int_equal(store_reclaim(f->s, 5, 4), CHORUS_OK); /* empty range */
  /* Writes go on while the backend reclaims. */
  put_str(f->s, STORE_DATA, "k0000", "back");
  for (int i = 1; i < KEYS; i++) {
    snprintf(key, sizeof key, "k%04d", i);
    snprintf(val, sizeof val, "value of %d", i);
    if (i % 2 == 0) {
      void *v = NULL;
      size_t vl = 0;
      assert_int_equal(store_get(f->s, STORE_DATA, key, strlen(key), &v, &vl),
                       CHORUS_ENOTFOUND);
    } else {
      assert_value(f->s, STORE_DATA, key, val);
    }
  }
  assert_value(f->s, STORE_DATA, "k0000", "back");
}

static void out_of_memory_paths(void **state) {
  struct store *s = ((struct store_fixture *)*state)->s;
  put_str(s, STORE_DATA, "base", "value");
  int saw_enomem = 0;
  for (long k = 0; k < 64; k++) {
    int rc = CHORUS_OK;
    struct store_batch *b = NULL;
    struct store_iter *it = NULL;
    void *val = NULL;
    size_t vlen;
    chorus_alloc_fail_after(k);
    b = store_batch_new();
    if (b == NULL)
      rc = CHORUS_ENOMEM;
    for (int i = 0; rc == CHORUS_OK && i < 12; i++)
      rc = store_batch_put(b, STORE_DATA, "bk", 2, "bv", 2);
    if (rc == CHORUS_OK)
      rc = store_write_batch(s, b, NULL);
    if (rc == CHORUS_OK)
      rc = store_get(s, STORE_DATA, "base", 4, &val, &vlen);
    if (rc == CHORUS_OK)
      rc = store_iter_open(s, STORE_DATA, "a", 1, "z", 1, &it);
    chorus_alloc_fail_after(-1);
    store_iter_close(it);
    chorus_free(val);
    store_batch_free(b);
    if (rc == CHORUS_OK)
      break;
    assert_int_equal(rc, CHORUS_ENOMEM);
    saw_enomem = 1;
    assert_value(s, STORE_DATA, "base", "value");
  }
  assert_true(saw_enomem);
  assert_value(s, STORE_DATA, "bk", "bv");
  put_str(s, STORE_DATA, "after", "ok");
  assert_value(s, STORE_DATA, "after", "ok");
}

/* DEFERRED WRITES (store.h): a deferred batch reads back at once, joins
 * the next backend write, and becomes one write at store_commit. */
static struct store_batch *batch_of(enum store_space space, const char *key,
                                    const char *val) {
  struct store_batch *b = store_batch_new();
  assert_non_null(b);
  if (val != NULL)
    assert_int_equal(
        store_batch_put(b, space, key, strlen(key), val, strlen(val)),
        CHORUS_OK);
  else
    assert_int_equal(store_batch_delete(b, space, key, strlen(key)), CHORUS_OK);
  return b;
}

static void defer(struct store *s, enum store_space space, const char *key,
                  const char *val) {
  struct store_batch *b = batch_of(space, key, val);
  assert_int_equal(store_defer(s, b), CHORUS_OK);
  assert_int_equal(store_batch_count(b), 0); /* moved, not copied */
  store_batch_free(b);
}

static void deferred_writes_read_back_and_commit_as_one(void **state) {
  struct store_fixture *f = *state;
  struct store *s = f->s;
  put_str(s, STORE_DATA, "old", "1");
  chorus_seq last = store_last_seq(s);
  defer(s, STORE_DATA, "a", "A1");
  defer(s, STORE_DATA, "b", "B");
  defer(s, STORE_DATA, "a", "A2");
  defer(s, STORE_DATA, "old", NULL);
  defer(s, STORE_META, "a", "meta");
  /* Visible at once: the newest deferred write of a key answers. */
  assert_value(s, STORE_DATA, "a", "A2");
  assert_value(s, STORE_DATA, "b", "B");
  assert_value(s, STORE_DATA, "old", NULL);
  assert_value(s, STORE_META, "a", "meta");
  assert_value(s, STORE_HINTS, "a", NULL);
  /* Counted as one more write, so a barrier asked now covers them. */
  chorus_seq promised = store_last_seq(s);
  assert_int_equal(promised, last + 1);
  assert_true(store_durable_seq(s) < promised);
  assert_int_equal(store_commit(s), CHORUS_OK);
  assert_true(store_last_seq(s) >= promised);
  assert_value(s, STORE_DATA, "a", "A2");
  assert_value(s, STORE_DATA, "old", NULL);
  assert_int_equal(fixture_request(f, 0, promised), CHORUS_OK);
  assert_int_equal(fixture_drive_syncs(f, 1), 1);
  assert_int_equal(f->last_status, CHORUS_OK);
  assert_true(store_durable_seq(s) >= promised);
  /* Nothing deferred: a commit writes nothing. */
  last = store_last_seq(s);
  assert_int_equal(store_commit(s), CHORUS_OK);
  assert_int_equal(store_last_seq(s), last);
  /* They survive a restart once synced. */
  assert_int_equal(fixture_reopen(f), CHORUS_OK);
  assert_value(f->s, STORE_DATA, "a", "A2");
  assert_value(f->s, STORE_DATA, "b", "B");
  assert_value(f->s, STORE_DATA, "old", NULL);
}

static void deferred_writes_go_first(void **state) {
  struct store_fixture *f = *state;
  struct store *s = f->s;
  /* A write after them lands after them, in the same backend write. */
  defer(s, STORE_DATA, "k", "deferred");
  chorus_seq before = store_last_seq(s) - 1, seq = 0;
  struct store_batch *b = batch_of(STORE_DATA, "k", "later");
  assert_int_equal(store_write_batch(s, b, &seq), CHORUS_OK);
  store_batch_free(b);
  assert_true(seq > before);
  assert_value(s, STORE_DATA, "k", "later");
  assert_int_equal(store_commit(s), CHORUS_OK);
  assert_value(s, STORE_DATA, "k", "later");
  /* An iterator sees them: they are applied when it opens. */
  defer(s, STORE_DATA, "j", "J");
  struct store_iter *it;
  assert_int_equal(store_iter_open(s, STORE_DATA, NULL, 0, NULL, 0, &it),
                   CHORUS_OK);
  char keys[64];
  collect(it, keys, sizeof keys);
  store_iter_close(it);
  assert_string_equal(keys, "j,k");
  assert_int_equal(store_commit(s), CHORUS_OK);
  /* A sync request applies them first; so does a flush. */
  defer(s, STORE_DATA, "m", "M");
  chorus_seq promised = store_last_seq(s);
  assert_int_equal(fixture_request(f, 1, promised), CHORUS_OK);
  assert_true(store_last_seq(s) >= promised);
  assert_int_equal(fixture_drive_syncs(f, 1), 1);
  assert_int_equal(f->last_status, CHORUS_OK);
  defer(s, STORE_DATA, "n", "N");
  assert_int_equal(store_flush(s), CHORUS_OK);
  assert_int_equal(store_commit(s), CHORUS_OK);
  assert_value(s, STORE_DATA, "n", "N");
  /* Past the cap, a deferral applies what came before it. */
  chorus_seq last = store_last_seq(s);
  char k[16];
  for (unsigned i = 0; i <= STORE_DEFER_MAX_OPS; i++) {
    snprintf(k, sizeof k, "cap%04u", i);
    defer(s, STORE_DATA, k, "v");
  }
  assert_true(store_last_seq(s) > last + 1);
  assert_int_equal(store_commit(s), CHORUS_OK);
  assert_value(s, STORE_DATA, "cap0000", "v");
  snprintf(k, sizeof k, "cap%04u", STORE_DEFER_MAX_OPS);
  assert_value(s, STORE_DATA, k, "v");
}

static void failed_deferred_writes_are_reported_once(void **state) {
  struct store_fixture *f = *state;
  struct store *s = f->s;
  put_str(s, STORE_DATA, "before", "1");
  chorus_seq last = store_last_seq(s);
  defer(s, STORE_DATA, "k", "v");
  chorus_seq promised = store_last_seq(s);
  store_inject_fault(s, STORE_FAULT_WRITE);
  assert_int_equal(store_commit(s), CHORUS_EIO);
  assert_int_equal(store_last_seq(s), last);
  assert_value(s, STORE_DATA, "k", NULL);
  /* The barrier promised for them covers what came before them. */
  assert_int_equal(fixture_request(f, 0, promised), CHORUS_OK);
  assert_int_equal(fixture_drive_syncs(f, 1), 1);
  assert_int_equal(f->last_status, CHORUS_OK);
  assert_int_equal(store_commit(s), CHORUS_OK); /* reported once */
  /* Applied by another call's write, the failure is still the commit's. */
  defer(s, STORE_DATA, "k", "v");
  store_inject_fault(s, STORE_FAULT_WRITE);
  assert_int_equal(store_put(s, STORE_DATA, "x", 1, "y", 1, NULL), CHORUS_OK);
  assert_int_equal(store_commit(s), CHORUS_EIO);
  assert_value(s, STORE_DATA, "k", NULL);
  /* A full disk refuses a deferral at once, like a write. */
  store_inject_fault(s, STORE_FAULT_FULL);
  assert_int_equal(store_check_space(s, NULL), CHORUS_OK);
  struct store_batch *b = batch_of(STORE_DATA, "k", "v");
  assert_int_equal(store_defer(s, b), CHORUS_ENOSPC);
  assert_int_equal(store_batch_count(b), 1);
  store_batch_free(b);
  store_inject_fault(s, STORE_FAULT_NONE);
  assert_int_equal(store_check_space(s, NULL), CHORUS_OK);
  /* Once a read has answered from them, their loss breaks the store: what
   * the node may have handed out is gone (sticky, as a failed sync). */
  defer(s, STORE_DATA, "seen", "v");
  assert_value(s, STORE_DATA, "seen", "v");
  store_inject_fault(s, STORE_FAULT_WRITE);
  assert_int_equal(store_commit(s), CHORUS_ESYNCFAILED);
  assert_int_equal(store_put(s, STORE_DATA, "x", 1, "z", 1, NULL),
                   CHORUS_ESYNCFAILED);
  assert_int_equal(fixture_request(f, 1, store_last_seq(s)),
                   CHORUS_ESYNCFAILED);
  assert_value(s, STORE_DATA, "before", "1");
}

#define CONFORMANCE_TESTS(setup)                                               \
  cmocka_unit_test_setup_teardown(put_get_roundtrip, setup, teardown),         \
      cmocka_unit_test_setup_teardown(missing_key_is_not_found, setup,         \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(overwrite_and_delete, setup, teardown),  \
      cmocka_unit_test_setup_teardown(key_spaces_are_separate, setup,          \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(sequences_increase, setup, teardown),    \
      cmocka_unit_test_setup_teardown(batch_applies_all_operations, setup,     \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(iteration_is_ordered_and_bounded, setup, \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(iterator_seeks_in_its_snapshot, setup,   \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(iterator_reads_a_snapshot, setup,        \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(token_range_scans, setup, teardown),     \
      cmocka_unit_test_setup_teardown(bad_arguments_are_rejected, setup,       \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(sync_barrier_completes, setup,           \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(many_barriers_complete_once_in_order,    \
                                      setup, teardown),                        \
      cmocka_unit_test_setup_teardown(failed_sync_is_sticky, setup, teardown), \
      cmocka_unit_test_setup_teardown(injected_io_faults_write_nothing, setup, \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(                                         \
          full_disk_refuses_writes_until_space_returns, setup, teardown),      \
      cmocka_unit_test_setup_teardown(out_of_space_write_asks_for_a_check,     \
                                      setup, teardown),                        \
      cmocka_unit_test_setup_teardown(synced_data_survives_restart, setup,     \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(random_workload_matches_model, setup,    \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(reclaim_keeps_what_was_not_deleted,      \
                                      setup, teardown),                        \
      cmocka_unit_test_setup_teardown(usage_counts_wal_syncs, setup,           \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(                                         \
          deferred_writes_read_back_and_commit_as_one, setup, teardown),       \
      cmocka_unit_test_setup_teardown(deferred_writes_go_first, setup,         \
                                      teardown),                               \
      cmocka_unit_test_setup_teardown(                                         \
          failed_deferred_writes_are_reported_once, setup, teardown),          \
      cmocka_unit_test_setup_teardown(out_of_memory_paths, setup, teardown)

int main(int argc, char **argv) {
  /* One binary per backend keeps TAP output one plan per process. */
  const char *backend = argc > 1 ? argv[1] : "memory";
  if (strcmp(backend, "rocksdb") == 0) {
    const struct CMUnitTest tests[] = {CONFORMANCE_TESTS(setup_rocksdb)};
    return cmocka_run_group_tests_name("conformance/rocksdb", tests, NULL,
                                       NULL);
  }
  const struct CMUnitTest tests[] = {CONFORMANCE_TESTS(setup_memory)};
  return cmocka_run_group_tests_name("conformance/memory", tests, NULL, NULL);
}
