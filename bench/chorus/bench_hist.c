/* bench_hist.c: the log-linear latency histogram of bench.h. */
#include <string.h>

#include "bench.h"

#define SUB (1u << BENCH_HIST_SUB_BITS)

void bench_hist_reset(struct bench_hist *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

/* Values below 2^(S+1) index themselves. Above, with m the top bit of v
 * and shift = m - S, v >> shift lies in [2^S, 2^(S+1)), and the index is
 * shift * 2^S + (v >> shift): each power of two continues where the one
 * below ended. */
size_t bench_hist_index(uint64_t v) {
  if (v < 2 * SUB)
    return (size_t)v;
  unsigned m = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = m - BENCH_HIST_SUB_BITS;
  return (size_t)shift * SUB + (size_t)(v >> shift);
}

uint64_t bench_hist_upper(size_t i) {
  if (i < 2 * SUB)
    return (uint64_t)i;
  unsigned shift = (unsigned)(i / SUB) - 1;
  uint64_t low = ((uint64_t)(i % SUB) + SUB) << shift;
  return low + ((UINT64_C(1) << shift) - 1);
}

void bench_hist_record(struct bench_hist *h, uint64_t v) {
  h->buckets[bench_hist_index(v)]++;
  h->count++;
  h->sum += (double)v;
  if (v < h->min)
    h->min = v;
  if (v > h->max)
    h->max = v;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src) {
  if (src->count == 0)
    return;
  for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
    dst->buckets[i] += src->buckets[i];
  dst->count += src->count;
  dst->sum += src->sum;
  if (src->min < dst->min)
    dst->min = src->min;
  if (src->max > dst->max)
    dst->max = src->max;
}

uint64_t bench_hist_percentile(const struct bench_hist *h, double p) {
  if (h->count == 0)
    return 0;
  if (p >= 100.0)
    return h->max;
  if (p < 0.0)
    p = 0.0;
  /* the rank of the order statistic: ceil(p/100 * count), at least 1 */
  double want = p / 100.0 * (double)h->count;
  uint64_t rank = (uint64_t)want;
  if ((double)rank < want)
    rank++;
  if (rank == 0)
    rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
    seen += h->buckets[i];
    if (seen >= rank) {
      uint64_t v = bench_hist_upper(i);
      return v > h->max ? h->max : v < h->min ? h->min : v;
    }
  }
  return h->max;
}

double bench_hist_mean(const struct bench_hist *h) {
  return h->count ? h->sum / (double)h->count : 0.0;
}
