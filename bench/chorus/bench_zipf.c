/* bench_zipf.c: Gray et al.'s zipfian rank generator (bench.h). */
#include <assert.h>
#include <math.h>

#include "bench.h"

double bench_zeta(uint64_t n, double theta) {
  double sum = 0.0;
  for (uint64_t i = 1; i <= n; i++)
    sum += 1.0 / pow((double)i, theta);
  return sum;
}

/* Gray et al. 1994, Fig. 6: alpha = 1/(1-theta), and eta chosen so that
 * the continuous inverse CDF n * (eta*u - eta + 1)^alpha passes through
 * the exact CDF at ranks 1 and 2. */
void bench_zipf_init(struct bench_zipf *z, uint64_t n, double theta) {
  assert(n >= 2 && theta > 0.0 && theta < 1.0);
  z->n = n;
  z->theta = theta;
  z->alpha = 1.0 / (1.0 - theta);
  z->zetan = bench_zeta(n, theta);
  double zeta2 = bench_zeta(2, theta);
  z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / z->zetan);
  z->half_pow_theta = pow(0.5, theta);
}

uint64_t bench_zipf_next(const struct bench_zipf *z, struct chorus_prng *prng) {
  double u = chorus_prng_unit(prng);
  double uz = u * z->zetan;
  if (uz < 1.0)
    return 0;
  if (uz < 1.0 + z->half_pow_theta)
    return 1;
  uint64_t r =
      (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
  return r >= z->n ? z->n - 1 : r;
}

/* splitmix64's finaliser: every input bit reaches every output bit. */
uint64_t bench_scramble(uint64_t rank, uint64_t n) {
  uint64_t x = rank + UINT64_C(0x9e3779b97f4a7c15);
  x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
  x ^= x >> 31;
  return x % n;
}
