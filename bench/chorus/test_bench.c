/* test_bench.c: chorus-bench's latency histogram against exact order
 * statistics, and its zipfian generator against the zipf law it samples. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench.h"
#include "chorus_alloc.h"

/* Relative width of a bucket: the histogram's promised precision. */
#define PREC (1.0 / (double)(1u << BENCH_HIST_SUB_BITS))

static struct bench_hist *new_hist(void) {
  struct bench_hist *h = chorus_malloc(sizeof *h);
  assert_non_null(h);
  bench_hist_reset(h);
  return h;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Every value falls into a bucket whose upper edge is >= it and within the
 * promised precision, and bucket indexes never decrease with the value. */
static void test_hist_buckets(void **state) {
  (void)state;
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 11);
  size_t prev_index = 0;
  uint64_t prev = 0;
  for (uint64_t v = 0; v < 5000; v++) {
    size_t i = bench_hist_index(v);
    assert_true(i < BENCH_HIST_BUCKETS);
    assert_true(bench_hist_upper(i) >= v);
    assert_true(i >= prev_index);
    prev_index = i;
  }
  for (int k = 0; k < 200000; k++) {
    unsigned bits = (unsigned)chorus_prng_below(&prng, 64) + 1;
    uint64_t v = chorus_prng_next(&prng) >> (64 - bits);
    size_t i = bench_hist_index(v);
    assert_true(i < BENCH_HIST_BUCKETS);
    uint64_t up = bench_hist_upper(i);
    assert_true(up >= v);
    assert_true((double)(up - v) <= (double)v * PREC + 1.0);
    /* the bucket below ends below v */
    if (i > 0)
      assert_true(bench_hist_upper(i - 1) < v);
    if (v >= prev)
      assert_true(i >= bench_hist_index(prev));
    prev = v;
  }
  assert_int_equal(bench_hist_index(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
  assert_true(bench_hist_upper(BENCH_HIST_BUCKETS - 1) == UINT64_MAX);
}

/* Checks percentile @p of @h against the exact order statistic of the
 * sorted @vals (rank ceil(p/100 * n)): never below, within precision. */
static void check_pct(const struct bench_hist *h, const uint64_t *vals,
                      size_t n, double p) {
  size_t rank = (size_t)ceil(p / 100.0 * (double)n);
  if (rank == 0)
    rank = 1;
  uint64_t exact = vals[rank - 1];
  uint64_t got = bench_hist_percentile(h, p);
  if (!(got >= exact && (double)(got - exact) <= (double)exact * PREC + 1.0))
    fail_msg("p%g: got %llu, exact %llu", p, (unsigned long long)got,
             (unsigned long long)exact);
}

static void test_hist_percentiles(void **state) {
  (void)state;
  const size_t n = 200000;
  uint64_t *vals = chorus_malloc(n * sizeof *vals);
  assert_non_null(vals);
  struct bench_hist *h = new_hist();
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 5);
  /* a latency-like shape: lognormal body (~200 us) with a heavy tail */
  for (size_t i = 0; i < n; i++) {
    double u1 = chorus_prng_unit(&prng) + 1e-12, u2 = chorus_prng_unit(&prng);
    double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    double v = 200000.0 * exp(0.6 * z);
    if (chorus_prng_chance(&prng, 0.001))
      v *= 100.0;
    vals[i] = (uint64_t)v;
    bench_hist_record(h, vals[i]);
  }
  qsort(vals, n, sizeof *vals, cmp_u64);
  const double ps[] = {0.001, 1, 10, 50, 90, 99, 99.9, 99.99, 99.999};
  for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++)
    check_pct(h, vals, n, ps[k]);
  assert_true(bench_hist_percentile(h, 100) == vals[n - 1]);
  assert_true(h->max == vals[n - 1] && h->min == vals[0]);
  assert_int_equal(h->count, n);
  double mean = 0;
  for (size_t i = 0; i < n; i++)
    mean += (double)vals[i];
  mean /= (double)n;
  assert_true(fabs(bench_hist_mean(h) - mean) < 1e-6 * mean);
  chorus_free(h);
  chorus_free(vals);
}

/* 1..100000 once each: the percentiles of a uniform count are known. */
static void test_hist_uniform_exact(void **state) {
  (void)state;
  struct bench_hist *h = new_hist();
  for (uint64_t v = 1; v <= 100000; v++)
    bench_hist_record(h, v);
  const struct {
    double p;
    uint64_t exact;
  } want[] = {{50, 50000}, {90, 90000}, {99, 99000}, {99.9, 99900}};
  for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
    uint64_t got = bench_hist_percentile(h, want[k].p);
    assert_true(got >= want[k].exact);
    assert_true((double)got <= (double)want[k].exact * (1.0 + PREC));
  }
  /* small values are exact */
  struct bench_hist *s = new_hist();
  for (uint64_t v = 1; v <= 100; v++)
    bench_hist_record(s, v);
  assert_int_equal(bench_hist_percentile(s, 50), 50);
  assert_int_equal(bench_hist_percentile(s, 99), 99);
  assert_int_equal(bench_hist_percentile(s, 0), 1);
  chorus_free(s);
  chorus_free(h);
}

static void test_hist_empty_and_merge(void **state) {
  (void)state;
  struct bench_hist *a = new_hist(), *b = new_hist(), *whole = new_hist();
  assert_int_equal(bench_hist_percentile(a, 99), 0);
  assert_true(bench_hist_mean(a) == 0.0);
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 9);
  for (int i = 0; i < 50000; i++) {
    uint64_t v = chorus_prng_below(&prng, 10000000);
    bench_hist_record(i % 2 ? a : b, v);
    bench_hist_record(whole, v);
  }
  bench_hist_merge(a, b);
  assert_int_equal(a->count, whole->count);
  assert_true(a->min == whole->min && a->max == whole->max);
  assert_memory_equal(a->buckets, whole->buckets, sizeof a->buckets);
  const double ps[] = {50, 90, 99, 99.9};
  for (size_t k = 0; k < 4; k++)
    assert_true(bench_hist_percentile(a, ps[k]) ==
                bench_hist_percentile(whole, ps[k]));
  chorus_free(a);
  chorus_free(b);
  chorus_free(whole);
}

/* ------------------------------------------------------------------------
 * Zipf
 * ------------------------------------------------------------------------ */

#define DRAWS 2000000

/* Draws DRAWS ranks over @n at @theta into @counts. */
static void draw(uint64_t n, double theta, uint64_t seed, uint64_t *counts) {
  struct bench_zipf z;
  bench_zipf_init(&z, n, theta);
  struct chorus_prng prng;
  chorus_prng_seed(&prng, seed);
  memset(counts, 0, n * sizeof *counts);
  for (int i = 0; i < DRAWS; i++) {
    uint64_t r = bench_zipf_next(&z, &prng);
    assert_true(r < n);
    counts[r]++;
  }
}

static void test_zeta(void **state) {
  (void)state;
  assert_true(fabs(bench_zeta(1, 0.99) - 1.0) < 1e-12);
  assert_true(fabs(bench_zeta(2, 0.5) - (1.0 + 1.0 / sqrt(2.0))) < 1e-12);
  /* zeta(n, theta) ~ n^(1-theta)/(1-theta) + zeta(theta) for large n;
   * for theta = 0.5, zeta(0.5) = -1.4603545 */
  double z = bench_zeta(1000000, 0.5);
  assert_true(fabs(z - (2.0 * 1000.0 - 1.4603545)) < 1e-3);
}

/* Ranks 0 and 1 are drawn with their exact zipf probabilities 1/zeta_n and
 * 2^-theta/zeta_n (Gray et al. Fig. 6): within 5 binomial sigmas. */
static void test_zipf_head_exact(void **state) {
  (void)state;
  const uint64_t n = 1000;
  uint64_t *counts = chorus_calloc(n, sizeof *counts);
  assert_non_null(counts);
  const double thetas[] = {0.5, 0.8, 0.99};
  for (size_t t = 0; t < 3; t++) {
    draw(n, thetas[t], 42 + t, counts);
    double zn = bench_zeta(n, thetas[t]);
    for (unsigned r = 0; r < 2; r++) {
      double p = pow((double)(r + 1), -thetas[t]) / zn;
      double sigma = sqrt(p * (1 - p) / DRAWS);
      double got = (double)counts[r] / DRAWS;
      if (fabs(got - p) > 5 * sigma)
        fail_msg("theta %g rank %u: %f, zipf %f", thetas[t], r, got, p);
    }
  }
  chorus_free(counts);
}

/* The law Gray et al.'s generator samples exactly: ranks 0 and 1 as zipf,
 * then rank < k (k >= 2) iff u < ((k/n)^(1-theta) - 1 + eta) / eta. Its
 * mean and second moment, for a tight check of the sampler itself. */
static void generator_moments(uint64_t n, double theta, double *mean,
                              double *m2) {
  struct bench_zipf z;
  bench_zipf_init(&z, n, theta);
  double head = (1.0 + z.half_pow_theta) / z.zetan; /* P(rank < 2) */
  double prev = head;
  *mean = 1.0 * z.half_pow_theta / z.zetan;
  *m2 = *mean;
  for (uint64_t k = 2; k < n; k++) {
    double next = 1.0;
    if (k + 1 < n) {
      next =
          (pow((double)(k + 1) / (double)n, 1.0 - theta) - 1.0 + z.eta) / z.eta;
      if (next < head)
        next = head;
    }
    double p = next - prev;
    *mean += (double)k * p;
    *m2 += (double)k * (double)k * p;
    prev = next;
  }
}

/* The shape: log frequency against log rank falls with slope -theta over
 * ranks 10..500 (least squares); the mean rank matches the generator's own
 * law within 5 standard errors; and that law's mean is within 4 % of the
 * zipf mean sum r * (r+1)^-theta / zeta_n. The generator approximates the
 * inverse CDF past rank 1, and the approximation runs a little light in
 * the tail: -0.5 %, -1.7 %, -3.3 % at theta 0.5, 0.8, 0.99 for n = 1000. */
static void test_zipf_shape_and_mean(void **state) {
  (void)state;
  const uint64_t n = 1000;
  uint64_t *counts = chorus_calloc(n, sizeof *counts);
  assert_non_null(counts);
  const double thetas[] = {0.5, 0.8, 0.99};
  for (size_t t = 0; t < 3; t++) {
    double theta = thetas[t];
    draw(n, theta, 7 + t, counts);
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int m = 0;
    for (uint64_t r = 10; r < 500; r++) {
      if (counts[r] == 0)
        fail_msg("theta %g: rank %llu never drawn", theta,
                 (unsigned long long)r);
      double x = log((double)(r + 1)), y = log((double)counts[r]);
      sx += x;
      sy += y;
      sxx += x * x;
      sxy += x * y;
      m++;
    }
    double slope = (m * sxy - sx * sy) / (m * sxx - sx * sx);
    if (fabs(slope + theta) > 0.05)
      fail_msg("theta %g: log-log slope %f", theta, slope);

    double zn = bench_zeta(n, theta), mean_zipf = 0, mean = 0;
    for (uint64_t r = 0; r < n; r++) {
      mean_zipf += (double)r * pow((double)(r + 1), -theta) / zn;
      mean += (double)r * (double)counts[r];
    }
    mean /= DRAWS;
    double gmean, gm2;
    generator_moments(n, theta, &gmean, &gm2);
    double se = sqrt((gm2 - gmean * gmean) / DRAWS);
    if (fabs(mean - gmean) > 5 * se)
      fail_msg("theta %g: mean rank %f, generator law %f (se %f)", theta, mean,
               gmean, se);
    if (fabs(gmean - mean_zipf) > 0.04 * mean_zipf)
      fail_msg("theta %g: generator mean %f, zipf %f", theta, gmean, mean_zipf);
  }
  chorus_free(counts);
}

/* A generator at the wrong theta must fail the checks above: the test can
 * tell 0.99 from 0.8. */
static void test_zipf_discriminates(void **state) {
  (void)state;
  const uint64_t n = 1000;
  uint64_t *counts = chorus_calloc(n, sizeof *counts);
  assert_non_null(counts);
  draw(n, 0.8, 3, counts);
  double p0 = 1.0 / bench_zeta(n, 0.99);
  double got = (double)counts[0] / DRAWS;
  assert_true(fabs(got - p0) > 5 * sqrt(p0 * (1 - p0) / DRAWS));
  chorus_free(counts);
}

static void test_scramble(void **state) {
  (void)state;
  const uint64_t n = 100000;
  uint64_t *hits = chorus_calloc(n, sizeof *hits);
  assert_non_null(hits);
  uint64_t distinct = 0;
  for (uint64_t r = 0; r < n; r++) {
    uint64_t k = bench_scramble(r, n);
    assert_true(k < n);
    assert_true(k == bench_scramble(r, n));
    if (hits[k]++ == 0)
      distinct++;
  }
  /* a random map hits 1 - 1/e of the keys: not a clump */
  assert_true(distinct > n * 6 / 10 && distinct < n * 7 / 10);
  chorus_free(hits);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hist_buckets),
      cmocka_unit_test(test_hist_percentiles),
      cmocka_unit_test(test_hist_uniform_exact),
      cmocka_unit_test(test_hist_empty_and_merge),
      cmocka_unit_test(test_zeta),
      cmocka_unit_test(test_zipf_head_exact),
      cmocka_unit_test(test_zipf_shape_and_mean),
      cmocka_unit_test(test_zipf_discriminates),
      cmocka_unit_test(test_scramble),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
