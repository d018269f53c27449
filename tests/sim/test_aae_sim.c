/* test_aae_sim.c: anti-entropy on the simulator (issue 20): 5 nodes, N = 3,
 * QUORUM, swarm faults (loss, partitions, crashes that lose unsynced
 * writes, store faults, clock jumps), with divergence injected on purpose:
 * every hint dropped at once (a one-byte hint bound, as a hint lost to its
 * bounds would be) and read repair off for every read. Replica writes lost
 * to the faults then stay lost unless anti-entropy brings them: after the
 * faults stop, every replica of every key must be identical within the
 * heal bound below, and every checker of the run hold (no acknowledged
 * write lost, no phantom, no false sibling, counters, sets).
 *
 * THE BOUND. Exchanges run every AAE_INTERVAL_MS on each node, with its
 * peers in turn (4 of them): each pair is compared at least every 4
 * intervals from each side. The heal bound is HEAL_INTERVALS intervals.
 *
 * The control: the same runs without anti-entropy must leave some seed
 * diverged (the liveness checker fails it): the scenario does create
 * divergence that nothing else repairs, so the test can fail.
 *
 * Seeds: AAE_SIM_SEEDS by default (the suite's time budget under ASan),
 * 1,000 with CHORUS_LONG_TESTS, or CHORUS_AAE_SIM_SEEDS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_error.h"
#include "core_sim_adapter.h"
#include "sim.h"

#ifdef CHORUS_LONG_TESTS
#define AAE_SIM_SEEDS 1000
#else
#define AAE_SIM_SEEDS 40
#endif
#define AAE_INTERVAL_MS 500
#define HEAL_INTERVALS 40 /* 20 s */
#define CHAOS_MS 4000

static int seeds(void) {
  const char *e = getenv("CHORUS_AAE_SIM_SEEDS");
  return e != NULL && atoi(e) > 0 ? atoi(e) : AAE_SIM_SEEDS;
}

static void configure(struct sim_run_config *rc, struct core_sim_options *opt,
                      chorus_ms interval) {
  *opt = (struct core_sim_options){.replication = "3",
                                   .hint_max_bytes = 1,
                                   .read_repair = WIRE_RR_OFF,
                                   .aae_interval_ms = interval};
  struct core_sim_preset p = *core_sim_preset_find("n5");
  core_sim_preset_apply(rc, &p);
  rc->sim.ops_arg = opt;
  rc->chaos = SIM_MS(CHAOS_MS);
  rc->heal_bound = SIM_MS(HEAL_INTERVALS * AAE_INTERVAL_MS);
  rc->sim.verbose = getenv("CHORUS_AAE_SIM_TRACE") != NULL;
}

static void replicas_converge_by_anti_entropy(void **state) {
  (void)state;
  struct core_sim_options opt;
  struct sim_run_config rc;
  configure(&rc, &opt, AAE_INTERVAL_MS);
  int n = seeds();
  size_t ops = 0;
  for (uint64_t seed = 1; seed <= (uint64_t)n; seed++) {
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    if (!res.ok)
      fail_msg("aae seed %llu: %s: %s (CHORUS_AAE_SIM_TRACE=1 to trace)",
               (unsigned long long)seed, res.checker, res.message);
    ops += res.ops;
  }
  printf("# anti-entropy: %d seeds converged within %d exchange intervals "
         "(%d ms) of healing, %zu ops\n",
         n, HEAL_INTERVALS, HEAL_INTERVALS * AAE_INTERVAL_MS, ops);
}

static void without_it_replicas_stay_diverged(void **state) {
  (void)state;
  struct core_sim_options opt;
  struct sim_run_config rc;
  configure(&rc, &opt, 0);
  rc.quiet = 1;
  int diverged = 0, n = seeds();
  for (uint64_t seed = 1; seed <= (uint64_t)n; seed++) {
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    diverged += !res.ok && strcmp(res.checker, "liveness") == 0;
  }
  printf("# without anti-entropy: %d of %d seeds never converged\n", diverged,
         n);
  assert_true(diverged > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(replicas_converge_by_anti_entropy),
      cmocka_unit_test(without_it_replicas_stay_diverged),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
