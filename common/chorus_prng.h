/* chorus_prng.h: the seeded pseudo-random generator that logic modules own.
 *
 * Logic never draws randomness from the OS (STYLE.md rule 1): every instance
 * owns one of these, seeded by its driver, so a simulator seed reproduces a
 * run exactly. The generator is xoshiro256** (Blackman and Vigna, 2018),
 * seeded through splitmix64; it is fast, has a 2^256-1 period, and is NOT
 * cryptographic: gossip keys and nonces come from libsodium in node/.
 */
#ifndef CHORUS_PRNG_H
#define CHORUS_PRNG_H

#include <stdint.h>

struct chorus_prng {
  uint64_t s[4];
};

/* chorus_prng_seed: initialises @prng from @seed; any seed, including 0, is
 * valid. The same seed always yields the same sequence on every platform. */
void chorus_prng_seed(struct chorus_prng *prng, uint64_t seed);

/* chorus_prng_derive: seeds @child from @parent's stream and a @tag, so a
 * master seed fans out into independent per-subsystem generators
 * ("network", "clock", "node 3") without the subsystems' draws interleaving.
 * Advances @parent by one draw. */
void chorus_prng_derive(struct chorus_prng *child, struct chorus_prng *parent,
                        uint64_t tag);

/* chorus_prng_next: 64 uniformly distributed bits. */
uint64_t chorus_prng_next(struct chorus_prng *prng);

/* chorus_prng_below: uniform in [0, @bound) without modulo bias (Lemire's
 * method). @bound must be > 0; 0 returns 0. */
uint64_t chorus_prng_below(struct chorus_prng *prng, uint64_t bound);

/* chorus_prng_range: uniform in [@lo, @hi] inclusive; requires lo <= hi. */
uint64_t chorus_prng_range(struct chorus_prng *prng, uint64_t lo, uint64_t hi);

/* chorus_prng_unit: uniform double in [0, 1) with 53 random bits. */
double chorus_prng_unit(struct chorus_prng *prng);

/* chorus_prng_chance: true with probability @p (p <= 0 never, p >= 1
 * always). */
int chorus_prng_chance(struct chorus_prng *prng, double p);

#endif /* CHORUS_PRNG_H */
