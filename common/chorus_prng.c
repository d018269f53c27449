/* chorus_prng.c: xoshiro256** seeded by splitmix64. */
#include "chorus_prng.h"

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* The 64x64->128 multiply of Lemire's method; a GCC/Clang extension. */
__extension__ typedef unsigned __int128 prng_u128;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void chorus_prng_seed(struct chorus_prng *prng, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++)
    prng->s[i] = splitmix64(&x);
  /* splitmix64 never yields four zero words in a row, so the all-zero
   * state (the one xoshiro cannot leave) is unreachable. */
}

void chorus_prng_derive(struct chorus_prng *child, struct chorus_prng *parent,
                        uint64_t tag) {
  uint64_t x = chorus_prng_next(parent) ^ (tag * 0xd6e8feb86659fd93ULL);
  chorus_prng_seed(child, splitmix64(&x));
}

uint64_t chorus_prng_next(struct chorus_prng *prng) {
  uint64_t *s = prng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint64_t chorus_prng_below(struct chorus_prng *prng, uint64_t bound) {
  if (bound == 0)
    return 0;
  /* Lemire, "Fast Random Integer Generation in an Interval" (2019). */
  prng_u128 m = (prng_u128)chorus_prng_next(prng) * bound;
  uint64_t low = (uint64_t)m;
  if (low < bound) {
    uint64_t threshold = -bound % bound;
    while (low < threshold) {
      m = (prng_u128)chorus_prng_next(prng) * bound;
      low = (uint64_t)m;
    }
  }
  return (uint64_t)(m >> 64);
}

uint64_t chorus_prng_range(struct chorus_prng *prng, uint64_t lo, uint64_t hi) {
  if (hi - lo == UINT64_MAX)
    return chorus_prng_next(prng);
  return lo + chorus_prng_below(prng, hi - lo + 1);
}

double chorus_prng_unit(struct chorus_prng *prng) {
  return (double)(chorus_prng_next(prng) >> 11) * 0x1.0p-53;
}

int chorus_prng_chance(struct chorus_prng *prng, double p) {
  if (p <= 0.0)
    return 0;
  if (p >= 1.0)
    return 1;
  return chorus_prng_unit(prng) < p;
}
