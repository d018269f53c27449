/* test_store_mem.c: crash-model tests of the in-memory storage backend. */
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
#include "store_mem.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static struct store *mem_open(void) {
  struct store *s = NULL;
  assert_int_equal(store_mem_open(&s), CHORUS_OK);
  assert_non_null(s);
  assert_true(store_mem_is_mem(s));
  return s;
}

static chorus_seq put_s(struct store *s, enum store_space sp, const char *k,
                        const char *v) {
  chorus_seq seq = 0;
  assert_int_equal(store_put(s, sp, k, strlen(k), v, strlen(v), &seq),
                   CHORUS_OK);
  return seq;
}

static chorus_seq del_s(struct store *s, enum store_space sp, const char *k) {
  chorus_seq seq = 0;
  assert_int_equal(store_delete(s, sp, k, strlen(k), &seq), CHORUS_OK);
  return seq;
}

/* Checks @k's value in @sp; @v NULL means absent. */
static void expect_val(struct store *s, enum store_space sp, const char *k,
                       const char *v) {
  void *got = NULL;
  size_t glen = 0;
  int rc = store_get(s, sp, k, strlen(k), &got, &glen);
  if (v == NULL) {
    assert_int_equal(rc, CHORUS_ENOTFOUND);
    return;
  }
  assert_int_equal(rc, CHORUS_OK);
  assert_non_null(got);
  assert_int_equal(glen, strlen(v));
  if (glen)
    assert_memory_equal(got, v, glen);
  chorus_free(got);
}

/* A byte dump of a store's visible state, for "unchanged" checks. Plain
 * malloc: dumps are taken with allocation failures turned off. */
struct dump {
  unsigned char *p;
  size_t n, cap;
};

static void dump_bytes(struct dump *d, const void *b, size_t n) {
  if (d->n + n > d->cap) {
    size_t cap = d->cap ? d->cap : 256;
    while (cap < d->n + n)
      cap *= 2;
    d->p = realloc(d->p, cap);
    assert_non_null(d->p);
    d->cap = cap;
  }
  if (n)
    memcpy(d->p + d->n, b, n);
  d->n += n;
}

static void dump_u64(struct dump *d, uint64_t v) {
  dump_bytes(d, &v, sizeof v);
}

/* Contents of every key space, in iteration order. */
static void dump_contents(struct store *s, struct dump *d) {
  d->n = 0;
  for (int sp = 0; sp < STORE_SPACE_COUNT; sp++) {
    struct store_iter *it = NULL;
    assert_int_equal(store_iter_open(s, sp, NULL, 0, NULL, 0, &it), CHORUS_OK);
    dump_u64(d, 0xa11ce00000000000u + (uint64_t)sp);
    for (; store_iter_valid(it); store_iter_next(it)) {
      size_t klen, vlen;
      const void *k = store_iter_key(it, &klen);
      const void *v = store_iter_value(it, &vlen);
      dump_u64(d, klen);
      dump_bytes(d, k, klen);
      dump_u64(d, vlen);
      dump_bytes(d, v, vlen);
    }
    assert_int_equal(store_iter_status(it), CHORUS_OK);
    store_iter_close(it);
  }
}

/* Contents plus sequences, unsynced writes and pending barriers. */
static void dump_store(struct store *s, struct dump *d) {
  dump_contents(s, d);
  dump_u64(d, store_last_seq(s));
  dump_u64(d, store_durable_seq(s));
  dump_u64(d, store_mem_unsynced(s));
  dump_u64(d, store_mem_pending_syncs(s));
}

static void assert_dump_equal(const struct dump *a, const struct dump *b) {
  assert_int_equal(a->n, b->n);
  if (a->n)
    assert_memory_equal(a->p, b->p, a->n);
}

static void dump_free(struct dump *d) {
  free(d->p);
  *d = (struct dump){0};
}

/* Barrier callbacks land here, in the order they ran. */
struct cb_rec {
  long id;
  chorus_seq durable;
  int status;
};
static struct cb_rec cb_log[1 << 14];
static size_t cb_n;
static int in_request; /* set while store_sync_request() runs */

static void record_cb(void *arg, chorus_seq durable, int status) {
  assert_false(in_request); /* never inside the request call */
  assert_true(cb_n < sizeof cb_log / sizeof cb_log[0]);
  cb_log[cb_n++] = (struct cb_rec){(long)(intptr_t)arg, durable, status};
}

static int request(struct store *s, chorus_seq seq, long id) {
  in_request = 1;
  int rc = store_sync_request(s, seq, record_cb, (void *)(intptr_t)id);
  in_request = 0;
  return rc;
}

static void expect_cb(size_t i, long id, chorus_seq durable, int status) {
  assert_true(i < cb_n);
  assert_int_equal(cb_log[i].id, id);
  assert_int_equal(cb_log[i].durable, durable);
  assert_int_equal(cb_log[i].status, status);
}

static int reset_cb(void **state) {
  (void)state;
  cb_n = 0;
  in_request = 0;
  chorus_alloc_fail_after(-1);
  return 0;
}

/* ------------------------------------------------------------------------
 * Ordering, bounds, sequences
 * ------------------------------------------------------------------------ */

struct bkey {
  const char *b;
  size_t n;
};
#define BK(lit)                                                                \
  { lit, sizeof(lit) - 1 }

/* Keys in memcmp order, shorter prefix first. */
static const struct bkey ordered[] = {
    BK(""),   BK("\0"), BK("\0\0"), BK("\0\xff"), BK("a"),        BK("a\0"),
    BK("ab"), BK("b"),  BK("\x80"), BK("\xff"),   BK("\xff\xff"),
};
#define NORDERED (sizeof ordered / sizeof ordered[0])

/* Checks that iterating [lo, hi) of STORE_META yields ordered[first..end). */
static void expect_range(struct store *s, const struct bkey *lo,
                         const struct bkey *hi, size_t first, size_t end) {
  struct store_iter *it = NULL;
  assert_int_equal(store_iter_open(s, STORE_META, lo ? lo->b : NULL,
                                   lo ? lo->n : 0, hi ? hi->b : NULL,
                                   hi ? hi->n : 0, &it),
                   CHORUS_OK);
  size_t i = first;
  for (; store_iter_valid(it); store_iter_next(it), i++) {
    assert_true(i < end);
    size_t klen, vlen;
    const void *k = store_iter_key(it, &klen);
    const void *v = store_iter_value(it, &vlen);
    assert_int_equal(klen, ordered[i].n);
    if (klen)
      assert_memory_equal(k, ordered[i].b, klen);
    assert_int_equal(vlen, 1);
    assert_int_equal(*(const unsigned char *)v, (unsigned char)i);
  }
  assert_int_equal(i, end);
  assert_int_equal(store_iter_status(it), CHORUS_OK);
  store_iter_close(it);
}

static void test_order_and_bounds(void **state) {
  (void)state;
  struct store *s = mem_open();
  /* Insert in a scrambled order; values are the expected rank. */
  static const size_t scramble[NORDERED] = {7, 2, 10, 0, 5, 9, 1, 4, 8, 3, 6};
  for (size_t j = 0; j < NORDERED; j++) {
    size_t i = scramble[j];
    unsigned char v = (unsigned char)i;
    assert_int_equal(
        store_put(s, STORE_META, ordered[i].b, ordered[i].n, &v, 1, NULL),
        CHORUS_OK);
  }
  /* Same keys in another space must not leak into META. */
  put_s(s, STORE_HINTS, "a", "other");
  put_s(s, STORE_HINTS, "zz", "other");

  expect_range(s, NULL, NULL, 0, NORDERED);
  expect_range(s, &ordered[4], &ordered[7], 4, 7); /* [a, b) */
  expect_range(s, NULL, &ordered[4], 0, 4);        /* below a */
  expect_range(s, &ordered[6], NULL, 6, NORDERED); /* from ab */
  expect_range(s, &ordered[5], &ordered[5], 5, 5); /* lo == hi: empty */
  expect_range(s, &ordered[8], &ordered[3], 8, 8); /* lo > hi: empty */
  static const struct bkey between = BK("a\0\0");  /* absent, a\0 < it < ab */
  expect_range(s, &between, NULL, 6, NORDERED);
  expect_range(s, NULL, &between, 0, 6);
  static const struct bkey top = BK("\xff\xff\xff");
  expect_range(s, &top, NULL, NORDERED, NORDERED);

  /* Token ranges over STORE_DATA (store.c splits them into key bounds). */
  unsigned char k[STORE_TOKEN_PREFIX + 4];
  static const chorus_token toks[] = {1, 2, 2, 3, UINT64_MAX, 0};
  for (size_t i = 0; i < 6; i++) {
    char user[2] = {(char)('p' + i), 0};
    size_t n = store_data_key(k, toks[i], user, 1);
    assert_int_equal(store_put(s, STORE_DATA, k, n, "t", 1, NULL), CHORUS_OK);
  }
  struct {
    chorus_token first, last;
    size_t count;
  } cases[] = {{2, 2, 2},
               {0, 1, 2},
               {3, UINT64_MAX, 2},
               {0, UINT64_MAX, 6},
               {4, UINT64_MAX - 1, 0}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    struct store_iter *it = NULL;
    assert_int_equal(
        store_iter_open_tokens(s, cases[c].first, cases[c].last, &it),
        CHORUS_OK);
    size_t count = 0;
    chorus_token prev = 0;
    for (; store_iter_valid(it); store_iter_next(it), count++) {
      size_t klen;
      const void *key = store_iter_key(it, &klen);
      chorus_token t;
      const void *uk;
      size_t uklen;
      assert_int_equal(store_data_key_parse(key, klen, &t, &uk, &uklen),
                       CHORUS_OK);
      assert_true(t >= cases[c].first && t <= cases[c].last);
      assert_true(t >= prev);
      prev = t;
    }
    assert_int_equal(count, cases[c].count);
    store_iter_close(it);
  }
  store_close(s);
}

static void test_get_and_sequences(void **state) {
  (void)state;
  struct store *s = mem_open();
  assert_int_equal(store_last_seq(s), 0);
  assert_int_equal(store_durable_seq(s), 0);

  /* An empty value reads back as a non-NULL buffer of length 0. */
  assert_int_equal(put_s(s, STORE_DATA, "empty", ""), 1);
  void *v = NULL;
  size_t vlen = 99;
  assert_int_equal(store_get(s, STORE_DATA, "empty", 5, &v, &vlen), CHORUS_OK);
  assert_non_null(v);
  assert_int_equal(vlen, 0);
  chorus_free(v);
  /* So does the empty key. */
  assert_int_equal(store_put(s, STORE_DATA, NULL, 0, "e", 1, NULL), CHORUS_OK);
  expect_val(s, STORE_DATA, "", "e");

  assert_int_equal(put_s(s, STORE_DATA, "k", "v1"), 3);
  assert_int_equal(put_s(s, STORE_DATA, "k", "v2"), 4);
  expect_val(s, STORE_DATA, "k", "v2");
  expect_val(s, STORE_HINTS, "k", NULL);
  /* Deleting an absent key succeeds and consumes a sequence. */
  assert_int_equal(del_s(s, STORE_DATA, "absent"), 5);
  assert_int_equal(del_s(s, STORE_DATA, "k"), 6);
  expect_val(s, STORE_DATA, "k", NULL);
  assert_int_equal(store_mem_unsynced(s), 6);

  /* An empty batch consumes no sequence and is no unsynced write. */
  struct store_batch *b = store_batch_new();
  assert_non_null(b);
  chorus_seq seq = 0;
  assert_int_equal(store_write_batch(s, b, &seq), CHORUS_OK);
  assert_int_equal(seq, 6);
  assert_int_equal(store_mem_unsynced(s), 6);
  /* A batch is one sequence and one unsynced write. */
  assert_int_equal(store_batch_put(b, STORE_DATA, "x", 1, "1", 1), CHORUS_OK);
  assert_int_equal(store_batch_put(b, STORE_META, "y", 1, "2", 1), CHORUS_OK);
  assert_int_equal(store_write_batch(s, b, &seq), CHORUS_OK);
  assert_int_equal(seq, 7);
  assert_int_equal(store_mem_unsynced(s), 7);
  store_batch_free(b);

  assert_int_equal(store_mem_sync_step(s), 0);
  assert_int_equal(store_durable_seq(s), 7);
  assert_int_equal(store_mem_unsynced(s), 0);
  assert_int_equal(store_sync(s), CHORUS_OK); /* nothing to do is fine */
  store_close(s);
}

static void test_is_mem(void **state) {
  (void)state;
  struct store *s = mem_open();
  assert_true(store_mem_is_mem(s));
  assert_false(store_mem_is_mem(NULL));
  static const struct store_ops other = {.name = "other"};
  struct store fake = {.ops = &other};
  assert_false(store_mem_is_mem(&fake));
  store_close(s);
  store_close(NULL);
}

/* ------------------------------------------------------------------------
 * Crash model
 * ------------------------------------------------------------------------ */

/* A fixed workload: two synced writes, then five unsynced ones (one of them
 * a batch). snaps[i] receives the contents after i unsynced writes. */
#define FIXED_UNSYNCED 5
static struct store *fixed_workload(struct dump snaps[FIXED_UNSYNCED + 1]) {
  struct store *s = mem_open();
  put_s(s, STORE_DATA, "a", "a1");
  put_s(s, STORE_DATA, "b", "b1");
  assert_int_equal(store_mem_sync_step(s), 0);
  assert_int_equal(store_durable_seq(s), 2);
  if (snaps)
    dump_contents(s, &snaps[0]);

  put_s(s, STORE_DATA, "c", "c1"); /* new key */
  if (snaps)
    dump_contents(s, &snaps[1]);
  put_s(s, STORE_DATA, "a", "a2"); /* overwrite a durable key */
  if (snaps)
    dump_contents(s, &snaps[2]);
  del_s(s, STORE_DATA, "b"); /* delete a durable key */
  if (snaps)
    dump_contents(s, &snaps[3]);
  struct store_batch *bt = store_batch_new();
  assert_non_null(bt);
  assert_int_equal(store_batch_put(bt, STORE_DATA, "b", 1, "b2", 2), CHORUS_OK);
  assert_int_equal(store_batch_delete(bt, STORE_DATA, "c", 1), CHORUS_OK);
  assert_int_equal(store_batch_put(bt, STORE_HINTS, "h", 1, "h1", 2),
                   CHORUS_OK);
  assert_int_equal(store_batch_put(bt, STORE_DATA, "d", 1, "d1", 2), CHORUS_OK);
  assert_int_equal(store_batch_put(bt, STORE_DATA, "d", 1, "d2", 2), CHORUS_OK);
  assert_int_equal(store_batch_delete(bt, STORE_DATA, "a", 1), CHORUS_OK);
  assert_int_equal(store_batch_put(bt, STORE_DATA, "a", 1, "a3", 2), CHORUS_OK);
  chorus_seq seq;
  assert_int_equal(store_write_batch(s, bt, &seq), CHORUS_OK);
  assert_int_equal(seq, 6);
  store_batch_free(bt);
  if (snaps)
    dump_contents(s, &snaps[4]);
  put_s(s, STORE_META, "m", "m1");
  if (snaps)
    dump_contents(s, &snaps[5]);
  assert_int_equal(store_mem_unsynced(s), FIXED_UNSYNCED);
  assert_int_equal(store_last_seq(s), 7);
  assert_int_equal(store_durable_seq(s), 2);
  return s;
}

static void test_crash_keeps_prefix(void **state) {
  (void)state;
  struct dump snaps[FIXED_UNSYNCED + 1] = {0};
  /* keep = 0, each prefix, all, and beyond all (clamped). */
  for (size_t keep = 0; keep <= FIXED_UNSYNCED + 2; keep++) {
    struct store *s = fixed_workload(snaps);
    size_t kept = keep > FIXED_UNSYNCED ? FIXED_UNSYNCED : keep;
    assert_int_equal(store_mem_crash(s, keep), CHORUS_OK);
    struct dump now = {0};
    dump_contents(s, &now);
    assert_dump_equal(&now, &snaps[kept]);
    /* Sequences continue from the last surviving write (2 durable). */
    assert_int_equal(store_last_seq(s), 2 + kept);
    assert_int_equal(store_durable_seq(s), 2 + kept);
    assert_int_equal(store_mem_unsynced(s), 0);
    assert_int_equal(put_s(s, STORE_META, "after", "x"), 3 + kept);

    /* What a restart recovered is durable: a second crash keeps it. */
    assert_int_equal(store_mem_crash(s, 0), CHORUS_OK);
    dump_contents(s, &now);
    assert_dump_equal(&now, &snaps[kept]);
    assert_int_equal(store_last_seq(s), 2 + kept);
    dump_free(&now);
    store_close(s);
  }
  for (int i = 0; i <= FIXED_UNSYNCED; i++)
    dump_free(&snaps[i]);
}

static void test_crash_values(void **state) {
  (void)state;
  /* The same thing spelled out, so a dump bug cannot hide a model bug. */
  struct store *s = fixed_workload(NULL);
  assert_int_equal(store_mem_crash(s, 0), CHORUS_OK);
  expect_val(s, STORE_DATA, "a", "a1");
  expect_val(s, STORE_DATA, "b", "b1");
  expect_val(s, STORE_DATA, "c", NULL);
  expect_val(s, STORE_HINTS, "h", NULL);
  store_close(s);

  s = fixed_workload(NULL);
  assert_int_equal(store_mem_crash(s, 3), CHORUS_OK);
  expect_val(s, STORE_DATA, "a", "a2");
  expect_val(s, STORE_DATA, "b", NULL);
  expect_val(s, STORE_DATA, "c", "c1");
  expect_val(s, STORE_DATA, "d", NULL); /* none of the batch */
  expect_val(s, STORE_HINTS, "h", NULL);
  store_close(s);

  s = fixed_workload(NULL);
  assert_int_equal(store_mem_crash(s, 4), CHORUS_OK);
  expect_val(s, STORE_DATA, "a", "a3"); /* all of the batch */
  expect_val(s, STORE_DATA, "b", "b2");
  expect_val(s, STORE_DATA, "c", NULL);
  expect_val(s, STORE_DATA, "d", "d2");
  expect_val(s, STORE_HINTS, "h", "h1");
  expect_val(s, STORE_META, "m", NULL);
  store_close(s);

  s = fixed_workload(NULL);
  assert_int_equal(store_mem_crash(s, SIZE_MAX), CHORUS_OK);
  expect_val(s, STORE_META, "m", "m1");
  assert_int_equal(store_last_seq(s), 7);
  assert_int_equal(store_durable_seq(s), 7);
  store_close(s);
}

/* A batch is one entry: with a large batch between single writes, every
 * crash point keeps the batch whole or not at all. */
static void test_batch_atomic_across_crash(void **state) {
  (void)state;
  for (size_t keep = 0; keep <= 3; keep++) {
    struct store *s = mem_open();
    put_s(s, STORE_META, "before", "1");
    struct store_batch *b = store_batch_new();
    assert_non_null(b);
    char key[16];
    for (int i = 0; i < 100; i++) {
      int n = snprintf(key, sizeof key, "k%03d", i);
      assert_int_equal(
          store_batch_put(b, (enum store_space)(i % 3), key, (size_t)n, "v", 1),
          CHORUS_OK);
    }
    assert_int_equal(store_write_batch(s, b, NULL), CHORUS_OK);
    store_batch_free(b);
    put_s(s, STORE_META, "after", "1");
    assert_int_equal(store_mem_unsynced(s), 3);
    assert_int_equal(store_mem_crash(s, keep), CHORUS_OK);

    size_t seen = 0;
    for (int sp = 0; sp < STORE_SPACE_COUNT; sp++) {
      struct store_iter *it;
      assert_int_equal(store_iter_open(s, sp, "k", 1, "l", 1, &it), CHORUS_OK);
      for (; store_iter_valid(it); store_iter_next(it))
        seen++;
      store_iter_close(it);
    }
    assert_int_equal(seen, keep >= 2 ? 100 : 0);
    expect_val(s, STORE_META, "before", keep >= 1 ? "1" : NULL);
    expect_val(s, STORE_META, "after", keep >= 3 ? "1" : NULL);
    store_close(s);
  }
}

/* ------------------------------------------------------------------------
 * Barriers
 * ------------------------------------------------------------------------ */

static struct store *reentrant_store;

/* A callback that writes and asks for another barrier from inside. */
static void reentrant_cb(void *arg, chorus_seq durable, int status) {
  record_cb(arg, durable, status);
  if (status != CHORUS_OK)
    return;
  chorus_seq seq = put_s(reentrant_store, STORE_DATA, "from-cb", "1");
  assert_int_equal(request(reentrant_store, seq, 100), CHORUS_OK);
}

static void test_barrier_order(void **state) {
  (void)state;
  struct store *s = mem_open();
  chorus_seq s1 = put_s(s, STORE_DATA, "a", "1");
  assert_int_equal(store_mem_sync_step(s), 0);
  chorus_seq s2 = put_s(s, STORE_DATA, "b", "1");
  chorus_seq s3 = put_s(s, STORE_DATA, "c", "1");

  /* Already durable, sequence 0, newest, older: none runs inside the call. */
  assert_int_equal(request(s, s1, 0), CHORUS_OK);
  assert_int_equal(request(s, 0, 1), CHORUS_OK);
  assert_int_equal(request(s, s3, 2), CHORUS_OK);
  assert_int_equal(request(s, s2, 3), CHORUS_OK);
  assert_int_equal(cb_n, 0);
  assert_int_equal(store_mem_pending_syncs(s), 4);
  /* Beyond the last write: refused, no callback ever. */
  assert_int_equal(request(s, s3 + 1, 99), CHORUS_EINVAL);
  assert_int_equal(store_mem_pending_syncs(s), 4);

  assert_int_equal(store_mem_sync_step(s), 4);
  assert_int_equal(cb_n, 4);
  for (long i = 0; i < 4; i++)
    expect_cb((size_t)i, i, s3, CHORUS_OK);
  assert_int_equal(store_durable_seq(s), s3);
  assert_int_equal(store_mem_pending_syncs(s), 0);
  /* Exactly once: a second step runs nothing. */
  assert_int_equal(store_mem_sync_step(s), 0);
  assert_int_equal(cb_n, 4);

  /* From inside a callback: the write lands, the new barrier waits for the
   * next step. */
  reentrant_store = s;
  in_request = 1;
  assert_int_equal(store_sync_request(s, s3, reentrant_cb, (void *)7),
                   CHORUS_OK);
  in_request = 0;
  assert_int_equal(request(s, s3, 8), CHORUS_OK);
  assert_int_equal(store_mem_sync_step(s), 2);
  assert_int_equal(cb_n, 6);
  expect_cb(4, 7, s3, CHORUS_OK);
  expect_cb(5, 8, s3, CHORUS_OK);
  assert_int_equal(store_mem_pending_syncs(s), 1);
  assert_int_equal(store_mem_unsynced(s), 1);
  expect_val(s, STORE_DATA, "from-cb", "1");
  /* store_sync completes it like a sync step. */
  assert_int_equal(store_sync(s), CHORUS_OK);
  assert_int_equal(cb_n, 7);
  expect_cb(6, 100, s3 + 1, CHORUS_OK);
  assert_int_equal(store_durable_seq(s), s3 + 1);
  store_close(s);
  assert_int_equal(cb_n, 7);
}

static void test_barriers_dropped_on_crash(void **state) {
  (void)state;
  struct store *s = mem_open();
  chorus_seq seq = put_s(s, STORE_DATA, "a", "1");
  assert_int_equal(request(s, seq, 1), CHORUS_OK);
  assert_int_equal(request(s, 0, 2), CHORUS_OK);
  assert_int_equal(store_mem_crash(s, 0), CHORUS_OK);
  assert_int_equal(store_mem_pending_syncs(s), 0);
  assert_int_equal(cb_n, 0);
  assert_int_equal(store_mem_sync_step(s), 0);
  assert_int_equal(cb_n, 0);
  /* New barriers after the restart work as usual. */
  assert_int_equal(request(s, 0, 3), CHORUS_OK);
  assert_int_equal(store_mem_sync_step(s), 1);
  expect_cb(0, 3, 0, CHORUS_OK);
  store_close(s);
  assert_int_equal(cb_n, 1);
}

static void test_close_cancels_barriers(void **state) {
  (void)state;
  struct store *s = mem_open();
  put_s(s, STORE_DATA, "a", "1");
  assert_int_equal(store_mem_sync_step(s), 0);
  chorus_seq seq = put_s(s, STORE_DATA, "b", "1");
  for (long i = 0; i < 20; i++)
    assert_int_equal(request(s, i % 2 ? seq : 1, i), CHORUS_OK);
  assert_int_equal(cb_n, 0);
  store_close(s);
  assert_int_equal(cb_n, 20);
  for (long i = 0; i < 20; i++)
    expect_cb((size_t)i, i, 1, CHORUS_ECANCELED);
}

/* ------------------------------------------------------------------------
 * Sync failure and injected faults
 * ------------------------------------------------------------------------ */

static void test_sticky_sync_failure(void **state) {
  (void)state;
  struct store *s = mem_open();
  put_s(s, STORE_DATA, "a", "1");
  assert_int_equal(store_mem_sync_step(s), 0);
  chorus_seq s2 = put_s(s, STORE_DATA, "b", "1");
  assert_int_equal(request(s, s2, 1), CHORUS_OK);
  assert_int_equal(request(s, 1, 2), CHORUS_OK);

  store_inject_fault(s, STORE_FAULT_SYNC);
  assert_int_equal(store_mem_sync_step(s), CHORUS_ESYNCFAILED);
  assert_non_null(strstr(store_errmsg(s), "fsync"));
  /* Every pending barrier learns it, once; nothing new became durable. */
  assert_int_equal(cb_n, 2);
  expect_cb(0, 1, 1, CHORUS_ESYNCFAILED);
  expect_cb(1, 2, 1, CHORUS_ESYNCFAILED);
  assert_int_equal(store_durable_seq(s), 1);
  assert_int_equal(store_mem_unsynced(s), 1);
  assert_int_equal(store_last_seq(s), s2);

  /* Writes and barriers fail and change nothing; reads work. */
  struct dump before = {0}, after = {0};
  dump_store(s, &before);
  assert_int_equal(store_put(s, STORE_DATA, "c", 1, "1", 1, NULL),
                   CHORUS_ESYNCFAILED);
  assert_non_null(strstr(store_errmsg(s), "sync failed"));
  assert_int_equal(store_delete(s, STORE_DATA, "a", 1, NULL),
                   CHORUS_ESYNCFAILED);
  struct store_batch *b = store_batch_new();
  assert_non_null(b);
  assert_int_equal(store_batch_put(b, STORE_META, "x", 1, "1", 1), CHORUS_OK);
  assert_int_equal(store_write_batch(s, b, NULL), CHORUS_ESYNCFAILED);
  assert_int_equal(request(s, 0, 3), CHORUS_ESYNCFAILED);
  assert_int_equal(store_sync(s), CHORUS_ESYNCFAILED);
  assert_int_equal(store_mem_sync_step(s), CHORUS_ESYNCFAILED);
  dump_store(s, &after);
  assert_dump_equal(&before, &after);
  assert_int_equal(cb_n, 2);
  expect_val(s, STORE_DATA, "a", "1");
  expect_val(s, STORE_DATA, "b", "1");

  /* A crash (a reopen) clears the failure; the unsynced write may survive. */
  assert_int_equal(store_mem_crash(s, 1), CHORUS_OK);
  expect_val(s, STORE_DATA, "b", "1");
  assert_int_equal(store_last_seq(s), s2);
  chorus_seq s3 = put_s(s, STORE_DATA, "c", "1");
  assert_int_equal(s3, s2 + 1);
  assert_int_equal(store_write_batch(s, b, NULL), CHORUS_OK);
  assert_int_equal(request(s, s3, 4), CHORUS_OK);
  assert_int_equal(store_mem_sync_step(s), 1);
  expect_cb(2, 4, s3 + 1, CHORUS_OK);
  store_batch_free(b);
  dump_free(&before);
  dump_free(&after);
  store_close(s);
}

static void test_crash_after_failed_sync(void **state) {
  (void)state;
  for (size_t keep = 0; keep <= 4; keep++) {
    struct store *s = mem_open();
    put_s(s, STORE_META, "durable", "1");
    assert_int_equal(store_sync(s), CHORUS_OK);
    char k[4] = "w0";
    for (int i = 1; i <= 4; i++) {
      k[1] = (char)('0' + i);
      put_s(s, STORE_DATA, k, "1");
    }
    store_inject_fault(s, STORE_FAULT_SYNC);
    assert_int_equal(store_sync(s), CHORUS_ESYNCFAILED);
    assert_int_equal(store_mem_unsynced(s), 4);
    assert_int_equal(store_mem_crash(s, keep), CHORUS_OK);
    expect_val(s, STORE_META, "durable", "1");
    for (int i = 1; i <= 4; i++) {
      k[1] = (char)('0' + i);
      expect_val(s, STORE_DATA, k, (size_t)i <= keep ? "1" : NULL);
    }
    assert_int_equal(store_last_seq(s), 1 + keep);
    assert_int_equal(store_durable_seq(s), 1 + keep);
    assert_int_equal(put_s(s, STORE_DATA, "next", "1"), 2 + keep);
    assert_int_equal(store_mem_sync_step(s), 0);
    assert_int_equal(store_durable_seq(s), 2 + keep);
    store_close(s);
  }
}

static void test_write_faults(void **state) {
  (void)state;
  struct store *s = mem_open();
  put_s(s, STORE_DATA, "a", "1");
  struct dump before = {0}, after = {0};
  dump_store(s, &before);

  store_inject_fault(s, STORE_FAULT_WRITE);
  assert_int_equal(store_put(s, STORE_DATA, "b", 1, "1", 1, NULL), CHORUS_EIO);
  assert_non_null(strstr(store_errmsg(s), "injected write fault"));
  dump_store(s, &after);
  assert_dump_equal(&before, &after);

  store_inject_fault(s, STORE_FAULT_NOSPC);
  assert_int_equal(store_delete(s, STORE_DATA, "a", 1, NULL), CHORUS_ENOSPC);
  assert_non_null(strstr(store_errmsg(s), "out-of-space"));
  dump_store(s, &after);
  assert_dump_equal(&before, &after);

  struct store_batch *b = store_batch_new();
  assert_non_null(b);
  assert_int_equal(store_batch_put(b, STORE_DATA, "c", 1, "1", 1), CHORUS_OK);
  assert_int_equal(store_batch_delete(b, STORE_DATA, "a", 1), CHORUS_OK);
  store_inject_fault(s, STORE_FAULT_WRITE);
  store_inject_fault(s, STORE_FAULT_NOSPC);
  assert_int_equal(store_write_batch(s, b, NULL), CHORUS_EIO);
  assert_int_equal(store_write_batch(s, b, NULL), CHORUS_ENOSPC);
  dump_store(s, &after);
  assert_dump_equal(&before, &after);
  /* One-shot: the next write goes through. */
  chorus_seq seq;
  assert_int_equal(store_write_batch(s, b, &seq), CHORUS_OK);
  assert_int_equal(seq, 2);
  expect_val(s, STORE_DATA, "c", "1");
  expect_val(s, STORE_DATA, "a", NULL);

  /* STORE_FAULT_NONE clears what is pending; so does a crash. */
  store_inject_fault(s, STORE_FAULT_WRITE);
  store_inject_fault(s, STORE_FAULT_NONE);
  assert_int_equal(put_s(s, STORE_DATA, "d", "1"), 3);
  store_inject_fault(s, STORE_FAULT_NOSPC);
  store_inject_fault(s, STORE_FAULT_SYNC);
  store_inject_fault(s, STORE_FAULT_READ);
  assert_int_equal(store_mem_crash(s, SIZE_MAX), CHORUS_OK);
  assert_int_equal(put_s(s, STORE_DATA, "e", "1"), 4);
  expect_val(s, STORE_DATA, "e", "1");
  assert_int_equal(store_sync(s), CHORUS_OK);

  /* A failed sync outranks a pending write fault, which stays pending. */
  store_inject_fault(s, STORE_FAULT_SYNC);
  assert_int_equal(store_sync(s), CHORUS_ESYNCFAILED);
  store_inject_fault(s, STORE_FAULT_WRITE);
  assert_int_equal(store_put(s, STORE_DATA, "f", 1, "1", 1, NULL),
                   CHORUS_ESYNCFAILED);
  store_batch_free(b);
  dump_free(&before);
  dump_free(&after);
  store_close(s);
}

static void test_read_faults(void **state) {
  (void)state;
  struct store *s = mem_open();
  put_s(s, STORE_DATA, "a", "1");
  put_s(s, STORE_DATA, "b", "2");
  put_s(s, STORE_DATA, "c", "3");

  store_inject_fault(s, STORE_FAULT_READ);
  /* Writes do not consume a read fault. */
  put_s(s, STORE_DATA, "d", "4");
  void *v = NULL;
  size_t vlen;
  assert_int_equal(store_get(s, STORE_DATA, "a", 1, &v, &vlen), CHORUS_EIO);
  assert_null(v);
  assert_non_null(strstr(store_errmsg(s), "injected read fault"));
  expect_val(s, STORE_DATA, "a", "1");

  /* At open: the scan ends before its first entry. */
  struct store_iter *it;
  store_inject_fault(s, STORE_FAULT_READ);
  assert_int_equal(store_iter_open(s, STORE_DATA, NULL, 0, NULL, 0, &it),
                   CHORUS_OK);
  assert_false(store_iter_valid(it));
  assert_int_equal(store_iter_status(it), CHORUS_EIO);
  store_iter_close(it);

  /* Mid-scan: valid() turns 0 and status() tells why. */
  assert_int_equal(store_iter_open(s, STORE_DATA, NULL, 0, NULL, 0, &it),
                   CHORUS_OK);
  assert_true(store_iter_valid(it));
  store_iter_next(it);
  assert_true(store_iter_valid(it));
  store_inject_fault(s, STORE_FAULT_READ);
  store_iter_next(it);
  assert_false(store_iter_valid(it));
  assert_int_equal(store_iter_status(it), CHORUS_EIO);
  assert_non_null(strstr(store_errmsg(s), "scan"));
  store_iter_close(it);

  /* Consumed: the next scan sees all four. */
  size_t n = 0;
  assert_int_equal(store_iter_open(s, STORE_DATA, NULL, 0, NULL, 0, &it),
                   CHORUS_OK);
  for (; store_iter_valid(it); store_iter_next(it))
    n++;
  assert_int_equal(store_iter_status(it), CHORUS_OK);
  assert_int_equal(n, 4);
  store_iter_close(it);
  store_close(s);
}

/* ------------------------------------------------------------------------
 * Iterator snapshots
 * ------------------------------------------------------------------------ */

static void test_iter_snapshot(void **state) {
  (void)state;
  struct store *s = mem_open();
  put_s(s, STORE_HINTS, "a", "a1");
  put_s(s, STORE_HINTS, "b", "b1");
  put_s(s, STORE_HINTS, "c", "c1");
  assert_int_equal(store_mem_sync_step(s), 0);
  put_s(s, STORE_HINTS, "d", "d1"); /* unsynced, lost below */

  struct store_iter *it1, *it2;
  assert_int_equal(store_iter_open(s, STORE_HINTS, NULL, 0, NULL, 0, &it1),
                   CHORUS_OK);
  assert_true(store_iter_valid(it1));
  size_t klen, vlen;
  const char *k0 = store_iter_key(it1, &klen);
  const char *v0 = store_iter_value(it1, &vlen);

  /* Change everything under it, including a crash that loses "d". */
  del_s(s, STORE_HINTS, "a");
  put_s(s, STORE_HINTS, "b", "b2");
  put_s(s, STORE_HINTS, "bb", "new");
  assert_int_equal(store_iter_open(s, STORE_HINTS, "b", 1, "c", 1, &it2),
                   CHORUS_OK);
  assert_int_equal(store_mem_crash(s, 0), CHORUS_OK);
  put_s(s, STORE_HINTS, "c", "c2");
  assert_int_equal(store_sync(s), CHORUS_OK);

  /* The borrowed key and value of the current entry are still intact. */
  assert_int_equal(klen, 1);
  assert_memory_equal(k0, "a", 1);
  assert_int_equal(vlen, 2);
  assert_memory_equal(v0, "a1", 2);

  static const char *const want1[][2] = {
      {"a", "a1"}, {"b", "b1"}, {"c", "c1"}, {"d", "d1"}};
  size_t i = 0;
  for (; store_iter_valid(it1); store_iter_next(it1), i++) {
    assert_true(i < 4);
    const char *k = store_iter_key(it1, &klen);
    const char *v = store_iter_value(it1, &vlen);
    assert_int_equal(klen, strlen(want1[i][0]));
    assert_memory_equal(k, want1[i][0], klen);
    assert_int_equal(vlen, strlen(want1[i][1]));
    assert_memory_equal(v, want1[i][1], vlen);
  }
  assert_int_equal(i, 4);
  store_iter_close(it1);

  static const char *const want2[][2] = {{"b", "b2"}, {"bb", "new"}};
  i = 0;
  for (; store_iter_valid(it2); store_iter_next(it2), i++) {
    assert_true(i < 2);
    const char *k = store_iter_key(it2, &klen);
    const char *v = store_iter_value(it2, &vlen);
    assert_int_equal(klen, strlen(want2[i][0]));
    assert_memory_equal(k, want2[i][0], klen);
    assert_int_equal(vlen, strlen(want2[i][1]));
    assert_memory_equal(v, want2[i][1], vlen);
  }
  assert_int_equal(i, 2);
  store_iter_close(it2);

  /* And the store itself moved on. */
  expect_val(s, STORE_HINTS, "a", "a1");
  expect_val(s, STORE_HINTS, "b", "b1");
  expect_val(s, STORE_HINTS, "bb", NULL);
  expect_val(s, STORE_HINTS, "c", "c2");
  expect_val(s, STORE_HINTS, "d", NULL);
  store_close(s);
}

/* ------------------------------------------------------------------------
 * Out of memory: every failure is ENOMEM and leaves the store unchanged
 * ------------------------------------------------------------------------ */

/* What an operation under test works on. */
struct oom_ctx {
  const char *key;
  const struct store_batch *batch;
  struct store_iter *it;
  size_t keep;
  long id;
};

typedef int (*oom_fn)(struct store *s, struct oom_ctx *ctx);

/* Runs @fn with allocation k+1 failing, k = 0, 1, ..., until it succeeds;
 * every failure must be CHORUS_ENOMEM with a message, run no callback and
 * leave the store as it was. Returns the k that succeeded. */
static long oom_loop(struct store *s, oom_fn fn, struct oom_ctx ctx) {
  struct dump before = {0}, after = {0};
  dump_store(s, &before);
  for (long k = 0;; k++) {
    assert_true(k < 64);
    size_t cbs = cb_n;
    chorus_alloc_fail_after(k);
    int rc = fn(s, &ctx);
    chorus_alloc_fail_after(-1);
    if (rc == CHORUS_OK) {
      if (ctx.it != NULL)
        store_iter_close(ctx.it);
      dump_free(&before);
      dump_free(&after);
      return k;
    }
    assert_int_equal(rc, CHORUS_ENOMEM);
    assert_non_null(strstr(store_errmsg(s), "out of memory"));
    assert_int_equal(cb_n, cbs);
    assert_null(ctx.it);
    dump_store(s, &after);
    assert_dump_equal(&before, &after);
  }
}

static int oom_put(struct store *s, struct oom_ctx *c) {
  return store_put(s, STORE_DATA, c->key, strlen(c->key), "value", 5, NULL);
}

static int oom_delete(struct store *s, struct oom_ctx *c) {
  return store_delete(s, STORE_DATA, c->key, strlen(c->key), NULL);
}

static int oom_batch(struct store *s, struct oom_ctx *c) {
  return store_write_batch(s, c->batch, NULL);
}

static int oom_request(struct store *s, struct oom_ctx *c) {
  return request(s, store_last_seq(s), c->id);
}

static int oom_sync_step(struct store *s, struct oom_ctx *c) {
  (void)c;
  int rc = store_mem_sync_step(s);
  return rc < 0 ? rc : CHORUS_OK;
}

static int oom_crash(struct store *s, struct oom_ctx *c) {
  return store_mem_crash(s, c->keep);
}

static int oom_iter(struct store *s, struct oom_ctx *c) {
  return store_iter_open(s, STORE_DATA, NULL, 0, NULL, 0, &c->it);
}

static int oom_get(struct store *s, struct oom_ctx *c) {
  void *v = NULL;
  size_t vlen;
  int rc = store_get(s, STORE_DATA, c->key, strlen(c->key), &v, &vlen);
  chorus_free(v);
  return rc;
}

#define KEY(k) ((struct oom_ctx){.key = (k)})
#define BATCH(b) ((struct oom_ctx){.batch = (b)})
#define ID(i) ((struct oom_ctx){.id = (i)})
#define NONE ((struct oom_ctx){0})

static void test_oom(void **state) {
  (void)state;
  /* Opening. */
  struct store *s = NULL;
  chorus_alloc_fail_after(0);
  assert_int_equal(store_mem_open(&s), CHORUS_ENOMEM);
  chorus_alloc_fail_after(-1);
  assert_null(s);

  s = mem_open();
  /* Fill DATA to its first capacity (16), so the next insert must grow. */
  char key[16];
  for (int i = 0; i < 16; i++) {
    snprintf(key, sizeof key, "key%02d", i);
    put_s(s, STORE_DATA, key, "x");
  }
  /* New key with growth: log entry, record, array. */
  assert_int_equal(oom_loop(s, oom_put, KEY("grow")), 3);
  expect_val(s, STORE_DATA, "grow", "value");
  /* Overwrite: log entry and record. */
  assert_int_equal(oom_loop(s, oom_put, KEY("key03")), 2);
  expect_val(s, STORE_DATA, "key03", "value");
  /* Delete: the log entry only. */
  assert_int_equal(oom_loop(s, oom_delete, KEY("key04")), 1);
  expect_val(s, STORE_DATA, "key04", NULL);
  assert_int_equal(oom_loop(s, oom_delete, KEY("absent")), 1);

  /* A batch over every space, each of which must grow. */
  struct store_batch *b = store_batch_new();
  assert_non_null(b);
  for (int i = 0; i < 40; i++) {
    snprintf(key, sizeof key, "b%02d", i);
    assert_int_equal(store_batch_put(b, (enum store_space)(i % 3), key,
                                     strlen(key), "bv", 2),
                     CHORUS_OK);
  }
  assert_int_equal(store_batch_delete(b, STORE_DATA, "key05", 5), CHORUS_OK);
  assert_int_equal(store_batch_put(b, STORE_DATA, "key06", 5, "b6", 2),
                   CHORUS_OK);
  /* The log entry, 41 records, and growth of HINTS and META (DATA has
   * room): 44 allocations. */
  assert_int_equal(oom_loop(s, oom_batch, BATCH(b)), 44);
  expect_val(s, STORE_DATA, "b00", "bv");
  expect_val(s, STORE_HINTS, "b01", "bv");
  expect_val(s, STORE_META, "b02", "bv");
  expect_val(s, STORE_DATA, "key05", NULL);
  expect_val(s, STORE_DATA, "key06", "b6");
  store_batch_free(b);

  /* Barrier requests: the first allocates the queue, the ninth grows it. */
  assert_int_equal(oom_loop(s, oom_request, ID(0)), 1);
  for (long i = 1; i < 8; i++)
    assert_int_equal(request(s, 0, i), CHORUS_OK);
  assert_int_equal(oom_loop(s, oom_request, ID(8)), 1);
  assert_int_equal(cb_n, 0);

  /* Reads. */
  assert_int_equal(oom_loop(s, oom_get, KEY("key07")), 1);
  assert_int_equal(oom_loop(s, oom_iter, NONE), 1);

  /* Sync and crash never allocate, so they cannot fail for lack of memory:
   * the loop ends at k = 0. */
  size_t unsynced = store_mem_unsynced(s);
  assert_true(unsynced > 0);
  assert_int_equal(oom_loop(s, oom_sync_step, NONE), 0);
  assert_int_equal(cb_n, 9);
  for (long i = 0; i < 9; i++)
    expect_cb((size_t)i, i, store_last_seq(s), CHORUS_OK);
  assert_int_equal(store_mem_unsynced(s), 0);

  chorus_seq durable = store_durable_seq(s);
  put_s(s, STORE_DATA, "kept1", "x");
  put_s(s, STORE_DATA, "kept2", "x");
  assert_int_equal(oom_loop(s, oom_put, KEY("lost")), 2);
  assert_int_equal(oom_loop(s, oom_crash, (struct oom_ctx){.keep = 2}), 0);
  expect_val(s, STORE_DATA, "kept1", "x");
  expect_val(s, STORE_DATA, "kept2", "x");
  expect_val(s, STORE_DATA, "lost", NULL);
  assert_int_equal(store_last_seq(s), durable + 2);

  /* After all that the store still works normally. */
  assert_int_equal(put_s(s, STORE_DATA, "final", "x"), durable + 3);
  assert_int_equal(store_sync(s), CHORUS_OK);
  store_close(s);
}

/* OOM in the middle of a workload with open iterators and unsynced batches,
 * then a crash: the failed attempts must not leak into what a crash keeps. */
static void test_oom_then_crash(void **state) {
  (void)state;
  struct store *s = mem_open();
  put_s(s, STORE_DATA, "a", "1");
  assert_int_equal(store_sync(s), CHORUS_OK);
  struct store_iter *it;
  assert_int_equal(store_iter_open(s, STORE_DATA, NULL, 0, NULL, 0, &it),
                   CHORUS_OK);
  struct store_batch *b = store_batch_new();
  assert_non_null(b);
  assert_int_equal(store_batch_put(b, STORE_DATA, "a", 1, "2", 1), CHORUS_OK);
  assert_int_equal(store_batch_put(b, STORE_DATA, "b", 1, "2", 1), CHORUS_OK);
  assert_int_equal(oom_loop(s, oom_batch, BATCH(b)), 3);
  assert_int_equal(oom_loop(s, oom_put, KEY("c")), 2);
  assert_int_equal(store_mem_unsynced(s), 2);
  assert_int_equal(store_mem_crash(s, 1), CHORUS_OK);
  expect_val(s, STORE_DATA, "a", "2");
  expect_val(s, STORE_DATA, "b", "2");
  expect_val(s, STORE_DATA, "c", NULL);
  assert_int_equal(store_last_seq(s), 2);
  size_t n = 0;
  for (; store_iter_valid(it); store_iter_next(it))
    n++;
  assert_int_equal(n, 1);
  store_iter_close(it);
  store_batch_free(b);
  store_close(s);
}

/* ------------------------------------------------------------------------
 * Random workloads against a reference model
 *
 * The model is deliberately naive: a fixed table of 40 keys (every string of
 * length 0..3 over {0x00, 'a', 0xff}), a present flag and value per key, and
 * the crash model written the way store_mem.h states it: two full states,
 * `current` and `durable`, plus the list of unsynced writes.
 * ------------------------------------------------------------------------ */

#define NKEYS 40
#define MAXKLEN 3
#define MAXV 12
#define MAXBATCH 6
#define MAXLOG 48
#define MAXPEND 64

static unsigned char key_bytes[NKEYS][MAXKLEN];
static size_t key_len[NKEYS];
static int sorted_keys[NKEYS];

/* Byte-by-byte reference order, independent of the backend's memcmp. */
static int ref_cmp(int a, int b) {
  size_t n = key_len[a] < key_len[b] ? key_len[a] : key_len[b];
  for (size_t i = 0; i < n; i++)
    if (key_bytes[a][i] != key_bytes[b][i])
      return key_bytes[a][i] < key_bytes[b][i] ? -1 : 1;
  return key_len[a] < key_len[b] ? -1 : key_len[a] > key_len[b];
}

static void keys_init(void) {
  static const unsigned char alpha[3] = {0x00, 'a', 0xff};
  int n = 0;
  for (size_t len = 0; len <= MAXKLEN; len++) {
    int combos = 1;
    for (size_t i = 0; i < len; i++)
      combos *= 3;
    for (int c = 0; c < combos; c++) {
      int x = c;
      for (size_t i = 0; i < len; i++, x /= 3)
        key_bytes[n][i] = alpha[x % 3];
      key_len[n] = len;
      n++;
    }
  }
  assert_int_equal(n, NKEYS);
  for (int i = 0; i < NKEYS; i++) {
    int j = i;
    while (j > 0 && ref_cmp(sorted_keys[j - 1], i) > 0) {
      sorted_keys[j] = sorted_keys[j - 1];
      j--;
    }
    sorted_keys[j] = i;
  }
}

struct mspace {
  unsigned char present[NKEYS];
  unsigned char vlen[NKEYS];
  unsigned char val[NKEYS][MAXV];
};

struct mstate {
  struct mspace sp[STORE_SPACE_COUNT];
};

struct mop {
  unsigned char space, is_delete, vlen;
  int key;
  unsigned char val[MAXV];
};

struct mwrite {
  int n;
  chorus_seq seq;
  struct mop ops[MAXBATCH];
};

struct model {
  struct mstate cur, dur;
  struct mwrite log[MAXLOG];
  int nlog;
  chorus_seq last, durable;
  long pend[MAXPEND];
  int npend;
  int sticky, fault_write, fault_nospc, fault_sync;
};

static void mstate_apply(struct mstate *st, const struct mwrite *w) {
  for (int i = 0; i < w->n; i++) {
    const struct mop *op = &w->ops[i];
    struct mspace *sp = &st->sp[op->space];
    sp->present[op->key] = !op->is_delete;
    sp->vlen[op->key] = op->vlen;
    memcpy(sp->val[op->key], op->val, MAXV);
  }
}

/* Where a random run is, for failure messages. */
static uint64_t cur_seed;
static int cur_step;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      fail_msg("seed %llu step %d: %s", (unsigned long long)cur_seed,          \
               cur_step, #cond);                                               \
  } while (0)

/* Compares one space's scan of [lo, hi) (key indexes, -1 = open) with @sp. */
static void check_scan(struct store_iter *it, const struct mspace *sp, int lo,
                       int hi) {
  int i = 0;
  for (; i < NKEYS; i++) {
    int key = sorted_keys[i];
    if (!sp->present[key])
      continue;
    if (lo >= 0 && ref_cmp(key, lo) < 0)
      continue;
    if (hi >= 0 && ref_cmp(key, hi) >= 0)
      continue;
    CHECK(store_iter_valid(it));
    size_t klen, vlen;
    const unsigned char *k = store_iter_key(it, &klen);
    const unsigned char *v = store_iter_value(it, &vlen);
    CHECK(klen == key_len[key] &&
          (klen == 0 || !memcmp(k, key_bytes[key], klen)));
    CHECK(vlen == sp->vlen[key] &&
          (vlen == 0 || !memcmp(v, sp->val[key], vlen)));
    store_iter_next(it);
  }
  CHECK(!store_iter_valid(it));
  CHECK(store_iter_status(it) == CHORUS_OK);
}

static void check_model(struct store *s, const struct model *m) {
  for (int sp = 0; sp < STORE_SPACE_COUNT; sp++) {
    struct store_iter *it;
    CHECK(store_iter_open(s, sp, NULL, 0, NULL, 0, &it) == CHORUS_OK);
    check_scan(it, &m->cur.sp[sp], -1, -1);
    store_iter_close(it);
  }
  CHECK(store_last_seq(s) == m->last);
  CHECK(store_durable_seq(s) == m->durable);
  CHECK(store_mem_unsynced(s) == (size_t)m->nlog);
  CHECK(store_mem_pending_syncs(s) == (size_t)m->npend);
}

static void random_mop(struct chorus_prng *r, struct mop *op) {
  memset(op, 0, sizeof *op);
  op->space = (unsigned char)chorus_prng_below(r, STORE_SPACE_COUNT);
  op->key = (int)chorus_prng_below(r, NKEYS);
  op->is_delete = chorus_prng_chance(r, 0.25);
  if (!op->is_delete) {
    op->vlen = (unsigned char)chorus_prng_below(r, MAXV + 1);
    for (int i = 0; i < op->vlen && i < MAXV; i++)
      op->val[i] = (unsigned char)chorus_prng_next(r);
  }
}

static int model_write_expect(struct model *m) {
  if (m->sticky)
    return CHORUS_ESYNCFAILED;
  if (m->fault_write) {
    m->fault_write = 0;
    return CHORUS_EIO;
  }
  if (m->fault_nospc) {
    m->fault_nospc = 0;
    return CHORUS_ENOSPC;
  }
  return CHORUS_OK;
}

static void do_write(struct store *s, struct model *m, struct chorus_prng *r,
                     struct store_batch *b) {
  struct mwrite w = {0};
  int rc;
  chorus_seq seq = 0;
  if (chorus_prng_chance(r, 0.3)) {
    w.n = 1 + (int)chorus_prng_below(r, MAXBATCH);
    store_batch_clear(b);
    for (int i = 0; i < w.n; i++) {
      struct mop *op = &w.ops[i];
      random_mop(r, op);
      if (i > 0 && chorus_prng_chance(r, 0.3)) { /* same key again */
        op->key = w.ops[i - 1].key;
        op->space = w.ops[i - 1].space;
      }
      if (op->is_delete)
        CHECK(store_batch_delete(b, op->space, key_bytes[op->key],
                                 key_len[op->key]) == CHORUS_OK);
      else
        CHECK(store_batch_put(b, op->space, key_bytes[op->key],
                              key_len[op->key], op->val,
                              op->vlen) == CHORUS_OK);
    }
    rc = store_write_batch(s, b, &seq);
  } else {
    w.n = 1;
    struct mop *op = &w.ops[0];
    random_mop(r, op);
    if (op->is_delete)
      rc = store_delete(s, op->space, key_bytes[op->key], key_len[op->key],
                        &seq);
    else
      rc = store_put(s, op->space, key_bytes[op->key], key_len[op->key],
                     op->val, op->vlen, &seq);
  }
  int want = model_write_expect(m);
  CHECK(rc == want);
  if (rc != CHORUS_OK)
    return;
  w.seq = ++m->last;
  CHECK(seq == w.seq);
  mstate_apply(&m->cur, &w);
  m->log[m->nlog++] = w;
}

/* A sync step or store_sync(), checked against the model. */
static void do_sync(struct store *s, struct model *m, int use_store_sync) {
  size_t before = cb_n;
  int rc = use_store_sync ? store_sync(s) : store_mem_sync_step(s);
  if (m->sticky) {
    CHECK(rc == CHORUS_ESYNCFAILED);
    CHECK(cb_n == before);
    return;
  }
  int status = CHORUS_OK;
  if (m->fault_sync) {
    m->fault_sync = 0;
    m->sticky = 1;
    status = CHORUS_ESYNCFAILED;
    CHECK(rc == CHORUS_ESYNCFAILED);
  } else {
    m->dur = m->cur;
    m->nlog = 0;
    m->durable = m->last;
    CHECK(rc == (use_store_sync ? CHORUS_OK : m->npend));
  }
  CHECK(cb_n == before + (size_t)m->npend);
  for (int i = 0; i < m->npend; i++) {
    const struct cb_rec *c = &cb_log[before + (size_t)i];
    CHECK(c->id == m->pend[i]);
    CHECK(c->status == status);
    CHECK(c->durable == m->durable);
  }
  m->npend = 0;
}

static void do_crash(struct store *s, struct model *m, struct chorus_prng *r) {
  size_t keep;
  switch (chorus_prng_below(r, 4)) {
  case 0:
    keep = 0;
    break;
  case 1:
    keep = (size_t)m->nlog;
    break;
  case 2:
    keep = (size_t)m->nlog + chorus_prng_below(r, 3); /* clamped */
    break;
  default:
    keep = chorus_prng_below(r, (uint64_t)m->nlog + 1);
  }
  size_t before = cb_n;
  CHECK(store_mem_crash(s, keep) == CHORUS_OK);
  CHECK(cb_n == before);
  int kept = keep > (size_t)m->nlog ? m->nlog : (int)keep;
  m->cur = m->dur;
  for (int i = 0; i < kept; i++)
    mstate_apply(&m->cur, &m->log[i]);
  m->dur = m->cur;
  m->last = kept ? m->log[kept - 1].seq : m->durable;
  m->durable = m->last;
  m->nlog = 0;
  m->npend = 0;
  m->sticky = m->fault_write = m->fault_nospc = m->fault_sync = 0;
}

static void run_workload(uint64_t seed, int steps) {
  struct chorus_prng r;
  chorus_prng_seed(&r, seed);
  cur_seed = seed;
  struct model *m = calloc(1, sizeof *m);
  struct mspace *held_sp = calloc(1, sizeof *held_sp);
  assert_non_null(m);
  assert_non_null(held_sp);
  struct store *s = mem_open();
  struct store_batch *b = store_batch_new();
  assert_non_null(b);
  struct store_iter *held = NULL;
  long next_id = 0;
  cb_n = 0;

  for (cur_step = 0; cur_step < steps; cur_step++) {
    if (m->nlog >= MAXLOG - 1) {
      if (m->sticky)
        do_crash(s, m, &r);
      else
        do_sync(s, m, 0);
    }
    uint64_t c = chorus_prng_below(&r, 100);
    if (c < 45) {
      do_write(s, m, &r, b);
    } else if (c < 53) {
      chorus_seq seq = chorus_prng_below(&r, m->last + 1);
      if (m->npend < MAXPEND) {
        int rc = request(s, seq, next_id);
        CHECK(rc == (m->sticky ? CHORUS_ESYNCFAILED : CHORUS_OK));
        if (rc == CHORUS_OK)
          m->pend[m->npend++] = next_id;
        next_id++;
      }
    } else if (c < 62) {
      do_sync(s, m, 0);
    } else if (c < 65) {
      do_sync(s, m, 1);
    } else if (c < 74) {
      do_crash(s, m, &r);
    } else if (c < 77) {
      store_inject_fault(s, STORE_FAULT_SYNC);
      m->fault_sync = 1;
    } else if (c < 80) {
      store_inject_fault(s, STORE_FAULT_WRITE);
      m->fault_write = 1;
    } else if (c < 82) {
      store_inject_fault(s, STORE_FAULT_NOSPC);
      m->fault_nospc = 1;
    } else if (c < 90) {
      /* A bounded scan with random bounds. */
      int sp = (int)chorus_prng_below(&r, STORE_SPACE_COUNT);
      int lo = (int)chorus_prng_below(&r, NKEYS + 1) - 1;
      int hi = (int)chorus_prng_below(&r, NKEYS + 1) - 1;
      struct store_iter *it;
      CHECK(store_iter_open(s, sp, lo >= 0 ? key_bytes[lo] : NULL,
                            lo >= 0 ? key_len[lo] : 0,
                            hi >= 0 ? key_bytes[hi] : NULL,
                            hi >= 0 ? key_len[hi] : 0, &it) == CHORUS_OK);
      check_scan(it, &m->cur.sp[sp], lo, hi);
      store_iter_close(it);
    } else if (c < 95) {
      int sp = (int)chorus_prng_below(&r, STORE_SPACE_COUNT);
      int key = (int)chorus_prng_below(&r, NKEYS);
      void *v = NULL;
      size_t vlen = 0;
      int rc = store_get(s, sp, key_bytes[key], key_len[key], &v, &vlen);
      const struct mspace *ms = &m->cur.sp[sp];
      if (ms->present[key]) {
        CHECK(rc == CHORUS_OK && v != NULL && vlen == ms->vlen[key]);
        CHECK(vlen == 0 || !memcmp(v, ms->val[key], vlen));
      } else {
        CHECK(rc == CHORUS_ENOTFOUND);
      }
      chorus_free(v);
    } else {
      /* Hold a snapshot across later steps (crashes included). */
      if (held == NULL) {
        int sp = (int)chorus_prng_below(&r, STORE_SPACE_COUNT);
        CHECK(store_iter_open(s, sp, NULL, 0, NULL, 0, &held) == CHORUS_OK);
        *held_sp = m->cur.sp[sp];
      } else {
        check_scan(held, held_sp, -1, -1);
        store_iter_close(held);
        held = NULL;
      }
    }
    check_model(s, m);
  }
  if (held != NULL) {
    check_scan(held, held_sp, -1, -1);
    store_iter_close(held);
  }
  /* Close cancels what is still pending, in request order. */
  size_t before = cb_n;
  store_close(s);
  CHECK(cb_n == before + (size_t)m->npend);
  for (int i = 0; i < m->npend; i++) {
    CHECK(cb_log[before + (size_t)i].id == m->pend[i]);
    CHECK(cb_log[before + (size_t)i].status == CHORUS_ECANCELED);
  }
  store_batch_free(b);
  free(held_sp);
  free(m);
}

static void test_random_workloads(void **state) {
  (void)state;
  keys_init();
  /* STORE_MEM_SEEDS=N runs more seeds by hand. */
  const char *env = getenv("STORE_MEM_SEEDS");
  long seeds = env ? strtol(env, NULL, 10) : 400;
  for (long i = 0; i < seeds; i++)
    run_workload(0x5eed0000u + (uint64_t)i, 250);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_order_and_bounds, reset_cb),
      cmocka_unit_test_setup(test_get_and_sequences, reset_cb),
      cmocka_unit_test_setup(test_is_mem, reset_cb),
      cmocka_unit_test_setup(test_crash_keeps_prefix, reset_cb),
      cmocka_unit_test_setup(test_crash_values, reset_cb),
      cmocka_unit_test_setup(test_batch_atomic_across_crash, reset_cb),
      cmocka_unit_test_setup(test_barrier_order, reset_cb),
      cmocka_unit_test_setup(test_barriers_dropped_on_crash, reset_cb),
      cmocka_unit_test_setup(test_close_cancels_barriers, reset_cb),
      cmocka_unit_test_setup(test_sticky_sync_failure, reset_cb),
      cmocka_unit_test_setup(test_crash_after_failed_sync, reset_cb),
      cmocka_unit_test_setup(test_write_faults, reset_cb),
      cmocka_unit_test_setup(test_read_faults, reset_cb),
      cmocka_unit_test_setup(test_iter_snapshot, reset_cb),
      cmocka_unit_test_setup(test_oom, reset_cb),
      cmocka_unit_test_setup(test_oom_then_crash, reset_cb),
      cmocka_unit_test_setup(test_random_workloads, reset_cb),
  };
  return cmocka_run_group_tests_name("store_mem", tests, NULL, NULL);
}
