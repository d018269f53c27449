/* test_common.c: the shared seams: error table, allocation injection, PRNG,
 * tracer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "chorus_prng.h"
#include "chorus_trace.h"

static void error_table_is_complete(void **state) {
  (void)state;
  /* Every code has a distinct name and a real text. */
  int codes[] = {
#define CODE(name, value, text) CHORUS_##name,
      CHORUS_ERROR_MAP(CODE)
#undef CODE
  };
  size_t n = sizeof codes / sizeof codes[0];
  for (size_t i = 0; i < n; i++) {
    assert_true(codes[i] < 0);
    assert_string_not_equal(chorus_strerror(codes[i]), "unknown error");
    for (size_t j = i + 1; j < n; j++)
      assert_int_not_equal(codes[i], codes[j]);
  }
  assert_string_equal(chorus_strerror(CHORUS_OK), "ok");
  assert_string_equal(chorus_strerror(12345), "unknown error");
  assert_string_equal(chorus_errname(CHORUS_ENOMEM), "CHORUS_ENOMEM");
}

static void errwrap_prefixes_context_outermost_first(void **state) {
  (void)state;
  char msg[CHORUS_ERRMSG_SIZE] = "";
  assert_int_equal(chorus_errf(msg, CHORUS_EIO, "IO error: %s", "disk"),
                   CHORUS_EIO);
  assert_int_equal(chorus_errwrap(msg, CHORUS_EIO, "column family %s", "data"),
                   CHORUS_EIO);
  assert_int_equal(chorus_errwrap(msg, CHORUS_EIO, "open store"), CHORUS_EIO);
  assert_string_equal(msg, "open store: column family data: IO error: disk");

  char empty[CHORUS_ERRMSG_SIZE] = "";
  chorus_errwrap(empty, CHORUS_ENOMEM, "decode");
  assert_string_equal(empty, "decode: out of memory");

  /* Truncation, never overflow. */
  char big[600];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  chorus_errf(msg, CHORUS_EINVAL, "%s", big);
  assert_int_equal(strlen(msg), CHORUS_ERRMSG_SIZE - 1);
  chorus_errwrap(msg, CHORUS_EINVAL, "%s", big);
  assert_int_equal(strlen(msg), CHORUS_ERRMSG_SIZE - 1);
  assert_int_equal(chorus_errf(NULL, CHORUS_EIO, "ignored"), CHORUS_EIO);
}

/* Which failed writes may still have been applied: the classification the
 * coordinator and the client library share. */
static void maybe_applied_classifies_write_errors(void **state) {
  (void)state;
  const int maybe[] = {CHORUS_ETIMEDOUT, CHORUS_ECANCELED, CHORUS_ESYNCFAILED,
                       CHORUS_EINTERNAL};
  const int never[] = {CHORUS_OK,     CHORUS_EUNAVAILABLE, CHORUS_EINVAL,
                       CHORUS_ETYPE,  CHORUS_ESIBLINGS,    CHORUS_ETOOBIG,
                       CHORUS_ENOSPC, CHORUS_EOVERLOAD,    CHORUS_EMALFORMED,
                       CHORUS_EAUTH,  CHORUS_EIO};
  for (size_t i = 0; i < sizeof maybe / sizeof maybe[0]; i++)
    assert_true(chorus_maybe_applied(maybe[i]));
  for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
    assert_false(chorus_maybe_applied(never[i]));
}

static void alloc_fails_after_k(void **state) {
  (void)state;
  chorus_alloc_fail_after(2);
  void *a = chorus_malloc(10);
  void *b = chorus_calloc(2, 10);
  void *c = chorus_malloc(10);
  assert_non_null(a);
  assert_non_null(b);
  assert_null(c);
  void *d = chorus_realloc(a, 100);
  assert_null(d); /* a is untouched */
  assert_null(chorus_strdup("x"));
  assert_int_equal(chorus_alloc_count(), 5);
  chorus_alloc_fail_after(-1);
  d = chorus_realloc(a, 100);
  assert_non_null(d);
  chorus_free(d);
  chorus_free(b);
  assert_null(chorus_calloc(SIZE_MAX / 2, 4)); /* overflow */
  char *s = chorus_strdup("hello");
  assert_string_equal(s, "hello");
  chorus_free(s);
}

/* chorus_grow: room for one more, doubling from the first capacity; out
 * of memory or an overflowing size leaves the array and its capacity as
 * they were. */
static void grow_doubles_and_keeps_on_failure(void **state) {
  (void)state;
  uint32_t *v = NULL;
  size_t n = 0, cap = 0;
  for (uint32_t i = 0; i < 100; i++) {
    uint32_t *g = chorus_grow(v, &cap, n, sizeof *g, 4);
    assert_non_null(g);
    v = g;
    v[n++] = i;
  }
  assert_int_equal(cap, 128); /* 4, 8, ..., 128 */
  for (uint32_t i = 0; i < 100; i++)
    assert_int_equal(v[i], i);
  /* Room left: no allocation at all. */
  long before = chorus_alloc_count();
  assert_ptr_equal(chorus_grow(v, &cap, n, sizeof *v, 4), v);
  assert_int_equal(chorus_alloc_count(), before);
  n = cap;
  chorus_alloc_fail_after(0);
  assert_null(chorus_grow(v, &cap, n, sizeof *v, 4));
  chorus_alloc_fail_after(-1);
  assert_int_equal(cap, 128);
  assert_int_equal(v[99], 99);
  size_t huge = SIZE_MAX / 2 + 1;
  assert_null(chorus_grow(v, &huge, huge, 1, 4));
  assert_int_equal(huge, SIZE_MAX / 2 + 1);
  chorus_free(v);
  size_t zero = 0;
  uint8_t *one = chorus_grow(NULL, &zero, 0, 1, 0);
  assert_non_null(one); /* a first capacity of 0 still makes room */
  assert_int_equal(zero, 1);
  chorus_free(one);
}

static void prng_is_reproducible_and_uniform(void **state) {
  (void)state;
  struct chorus_prng a, b, c;
  chorus_prng_seed(&a, 42);
  chorus_prng_seed(&b, 42);
  chorus_prng_seed(&c, 43);
  int differs = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t x = chorus_prng_next(&a);
    assert_int_equal(x, chorus_prng_next(&b));
    differs |= x != chorus_prng_next(&c);
  }
  assert_true(differs);

  /* Known answer: pins the algorithm, so a seed means the same run forever. */
  chorus_prng_seed(&a, 0);
  uint64_t first = chorus_prng_next(&a);
  chorus_prng_seed(&b, 0);
  assert_int_equal(first, chorus_prng_next(&b));

  /* below() stays in range and hits every bucket about equally. */
  int buckets[10] = {0};
  for (int i = 0; i < 100000; i++) {
    uint64_t v = chorus_prng_below(&a, 10);
    assert_true(v < 10);
    buckets[v]++;
  }
  for (int i = 0; i < 10; i++)
    assert_true(buckets[i] > 9000 && buckets[i] < 11000);
  assert_int_equal(chorus_prng_below(&a, 0), 0);
  for (int i = 0; i < 1000; i++) {
    uint64_t v = chorus_prng_range(&a, 5, 7);
    assert_true(v >= 5 && v <= 7);
    double u = chorus_prng_unit(&a);
    assert_true(u >= 0.0 && u < 1.0);
  }
  assert_false(chorus_prng_chance(&a, 0.0));
  assert_true(chorus_prng_chance(&a, 1.0));

  /* Derived streams differ from each other and from the parent. */
  struct chorus_prng parent, net, clk;
  chorus_prng_seed(&parent, 7);
  chorus_prng_derive(&net, &parent, 1);
  chorus_prng_derive(&clk, &parent, 2);
  assert_int_not_equal(chorus_prng_next(&net), chorus_prng_next(&clk));
}

struct captured {
  char module[32];
  char line[CHORUS_TRACE_LINE_MAX];
  int count;
};

static void capture(void *ctx, const char *module, const char *line) {
  struct captured *c = ctx;
  snprintf(c->module, sizeof c->module, "%s", module);
  snprintf(c->line, sizeof c->line, "%s", line);
  c->count++;
}

static void tracer_emits_lines_and_null_is_silent(void **state) {
  (void)state;
  struct captured c = {0};
  struct chorus_tracer t = {.emit = capture, .ctx = &c};
  chorus_trace(&t, "coord", "k=%d: %d/%d acks, W=%d -> reply OK", 42, 2, 3, 2);
  assert_int_equal(c.count, 1);
  assert_string_equal(c.module, "coord");
  assert_string_equal(c.line, "k=42: 2/3 acks, W=2 -> reply OK");
  chorus_trace(NULL, "coord", "nothing");
  struct chorus_tracer silent = {0};
  chorus_trace(&silent, "coord", "nothing");
  assert_false(chorus_tracing(&silent));
  assert_int_equal(c.count, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(error_table_is_complete),
      cmocka_unit_test(errwrap_prefixes_context_outermost_first),
      cmocka_unit_test(maybe_applied_classifies_write_errors),
      cmocka_unit_test(alloc_fails_after_k),
      cmocka_unit_test(grow_doubles_and_keeps_on_failure),
      cmocka_unit_test(prng_is_reproducible_and_uniform),
      cmocka_unit_test(tracer_emits_lines_and_null_is_silent),
  };
  return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
