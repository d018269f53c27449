/* test_sim_toy.c: the toy protocols under scenarios written in the
 * simulator's vocabulary, and under swarms of random seeds: the naive
 * register must be caught losing acknowledged writes; the gossip toy must
 * pass every seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_error.h"
#include "sim.h"
#include "sim_toy.h"

#ifdef CHORUS_LONG_TESTS
#define TOY_SEEDS 3000
#define NAIVE_SEEDS 200
#else
#define TOY_SEEDS 200
#define NAIVE_SEEDS 20
#endif

static struct sim *cluster(const struct sim_node_ops *ops, int nodes,
                           const struct sim_toy_options *opt, uint64_t seed) {
  struct sim_config cfg = {.seed = seed,
                           .nodes = nodes,
                           .dcs = 1,
                           .ops = ops,
                           .ops_arg = (void *)(uintptr_t)opt};
  cfg.faults.fsync_ms = 2;
  struct sim *s;
  assert_int_equal(sim_new(&cfg, &s), CHORUS_OK);
  assert_int_equal(sim_run_for(s, SIM_MS(20)), CHORUS_OK); /* boot */
  return s;
}

static int converged(struct sim *s, void *arg) {
  (void)arg;
  return sim_converged(s);
}

/* heal_and_judge: heal, wait for convergence, record finals, run every
 * checker; returns the verdict and fills @rep. */
static int heal_and_judge(struct sim *s, int ryw,
                          struct sim_check_report *rep) {
  sim_heal(s);
  for (int i = 0; i < sim_nodes(s); i++)
    if (!sim_node_up(s, i))
      assert_int_equal(sim_restart(s, i), CHORUS_OK);
  assert_int_equal(sim_step_until(s, converged, NULL, SIM_MS(20000)), 1);
  assert_int_equal(sim_record_finals(s), CHORUS_OK);
  memset(rep, 0, sizeof *rep);
  return sim_check_all(sim_history(s), ryw, rep);
}

static int has(const struct sim_result *r, uint64_t v) {
  for (size_t i = 0; i < r->nvalues; i++)
    if (r->values[i] == v)
      return 1;
  return 0;
}

/* ---- scenarios ------------------------------------------------------------
 */

static void naive_register_loses_a_write_across_a_partition(void **state) {
  (void)state;
  struct sim *s = cluster(&sim_toy_naive, 3, NULL, 21);
  sim_isolate(s, 0); /* n0 | n1 n2 */
  assert_int_equal(sim_put(s, 0, "k", 1)->outcome, SIM_OK);
  const struct sim_result *r = sim_get(s, 1, "k");
  assert_int_equal(r->nvalues, 0); /* n1 never heard of 1 */
  assert_int_equal(sim_put(s, 1, "k", 2)->outcome, SIM_OK);
  assert_int_equal(sim_put(s, 1, "k", 3)->outcome, SIM_OK);
  struct sim_check_report rep;
  assert_int_equal(heal_and_judge(s, 0, &rep), 1);
  assert_string_equal(rep.checker, "kv-lost-write");
  printf("# caught: %s\n", rep.message);
  sim_free(s);
}

static void toy_keeps_concurrent_writes_as_siblings(void **state) {
  (void)state;
  struct sim *s = cluster(&sim_toy_gossip, 3, NULL, 22);
  sim_isolate(s, 0);
  assert_int_equal(sim_put(s, 0, "k", 1)->outcome, SIM_OK);
  assert_int_equal(sim_put(s, 1, "k", 2)->outcome, SIM_OK);
  sim_heal(s);
  assert_int_equal(sim_step_until(s, converged, NULL, SIM_MS(10000)), 1);
  const struct sim_result *r = sim_get(s, 2, "k");
  assert_int_equal(r->outcome, SIM_OK);
  assert_int_equal(r->nvalues, 2);
  assert_true(has(r, 1) && has(r, 2));
  /* A put with that context resolves both. */
  r = sim_put_after(s, 2, "k", 3, r);
  assert_int_equal(r->outcome, SIM_OK);
  assert_int_equal(sim_step_until(s, converged, NULL, SIM_MS(10000)), 1);
  r = sim_get(s, 0, "k");
  assert_int_equal(r->nvalues, 1);
  assert_true(has(r, 3));
  struct sim_check_report rep;
  assert_int_equal(heal_and_judge(s, 0, &rep), 0);
  sim_free(s);
}

static void toy_ack_survives_an_immediate_crash(void **state) {
  (void)state;
  struct sim *s = cluster(&sim_toy_gossip, 3, NULL, 23);
  sim_isolate(s, 0); /* no peer can have it: only n0's disk */
  assert_int_equal(sim_put(s, 0, "k", 1)->outcome, SIM_OK);
  struct sim_call add = {.op = SIM_OP_COUNTER_ADD, .key = "c", .amount = 4};
  assert_int_equal(sim_call(s, 0, &add)->outcome, SIM_OK);
  sim_kill(s, 0, SIM_KEEP_NONE);
  assert_int_equal(sim_restart(s, 0), CHORUS_OK);
  assert_int_equal(sim_run_for(s, SIM_MS(20)), CHORUS_OK);
  assert_true(has(sim_get(s, 0, "k"), 1));
  struct sim_call rd = {.op = SIM_OP_COUNTER_READ, .key = "c"};
  assert_int_equal(sim_call(s, 0, &rd)->counter, 4);
  struct sim_check_report rep;
  assert_int_equal(heal_and_judge(s, 0, &rep), 0);
  sim_free(s);
}

static void ryw_needs_overlapping_quorums(void **state) {
  (void)state;
  /* R = W = 1 of 3 with a partition: a stale read, which the checker
   * catches... */
  struct sim *s = cluster(&sim_toy_gossip, 3, NULL, 24);
  sim_isolate(s, 1);
  assert_int_equal(sim_put(s, 0, "k", 1)->outcome, SIM_OK);
  assert_int_equal(sim_get(s, 1, "k")->nvalues, 0);
  struct sim_check_report rep;
  assert_int_equal(heal_and_judge(s, 1, &rep), 1);
  assert_string_equal(rep.checker, "read-your-writes");
  sim_free(s);

  /* ...and R = W = 2 of 3 without faults: every read sees the write. */
  struct sim_toy_options q = {.r = 2, .w = 2};
  s = cluster(&sim_toy_gossip, 3, &q, 25);
  for (uint64_t v = 1; v <= 20; v++) {
    assert_int_equal(sim_put(s, (int)(v % 3), "k", v)->outcome, SIM_OK);
    const struct sim_result *r = sim_get(s, (int)((v + 1) % 3), "k");
    assert_int_equal(r->outcome, SIM_OK);
    assert_true(has(r, v));
  }
  assert_int_equal(heal_and_judge(s, 1, &rep), 0);
  sim_free(s);
}

/* ---- swarms ---------------------------------------------------------------
 */

static void naive_register_is_caught_by_the_swarm(void **state) {
  (void)state;
  struct sim_run_config rc;
  sim_run_defaults(&rc, &sim_toy_naive);
  rc.counter_keys = rc.set_keys = 0;
  rc.chaos = SIM_MS(4000);
  rc.quiet = 1;
  int lost = 0, failed = 0;
  for (uint64_t seed = 1; seed <= NAIVE_SEEDS; seed++) {
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    failed += !res.ok;
    lost += !res.ok && strcmp(res.checker, "kv-lost-write") == 0;
  }
  printf("# naive: %d of %d seeds failed, %d with lost writes\n", failed,
         NAIVE_SEEDS, lost);
  assert_true(lost >= NAIVE_SEEDS / 2);
}

static void toy_passes_every_seed(void **state) {
  (void)state;
  struct sim_run_config rc;
  sim_run_defaults(&rc, &sim_toy_gossip);
  rc.chaos = SIM_MS(3000);
  size_t ops = 0, events = 0;
  for (uint64_t seed = 1; seed <= TOY_SEEDS; seed++) {
    struct sim_run_result res;
    rc.sim.nodes = 3 + (int)(seed % 3);
    rc.sim.dcs = seed % 4 == 0 ? 2 : 1;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    if (!res.ok)
      fail_msg("seed %llu: %s: %s", (unsigned long long)seed, res.checker,
               res.message);
    ops += res.ops;
    events += res.events;
  }
  printf("# toy: %d seeds passed, %zu ops, %zu events\n", TOY_SEEDS, ops,
         events);
}

/* brutal: fixed, heavy fault rates (no swarm). */
static void brutal(struct sim_run_config *rc, const struct sim_node_ops *ops) {
  sim_run_defaults(rc, ops);
  rc->swarm = 0;
  rc->sim.faults.drop = 0.5;
  rc->sim.faults.partition = 2;
  rc->sim.faults.crash = 4;
  rc->sim.faults.store_fault = 2;
  rc->sim.faults.fsync_ms = 20;
  rc->chaos = SIM_MS(3000);
  rc->quiet = 1;
}

static void planted_ack_before_sync_is_caught(void **state) {
  (void)state;
  struct sim_toy_options bug = {.ack_before_sync = 1};
  struct sim_run_config rc;
  brutal(&rc, &sim_toy_gossip);
  rc.sim.ops_arg = &bug;
  int lost = 0;
  for (uint64_t seed = 1; seed <= 20; seed++) {
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    lost += !res.ok && (strcmp(res.checker, "kv-lost-write") == 0 ||
                        strcmp(res.checker, "set-lost-add") == 0 ||
                        strcmp(res.checker, "counter-final") == 0);
  }
  printf("# acking before fsync: caught losing acknowledged writes in %d of "
         "20 brutal seeds\n",
         lost);
  assert_true(lost >= 5);
}

static void toy_survives_brutal_faults(void **state) {
  (void)state;
  struct sim_run_config rc;
  brutal(&rc, &sim_toy_gossip);
  rc.quiet = 0;
  for (uint64_t seed = 1; seed <= TOY_SEEDS / 4; seed++) {
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    if (!res.ok)
      fail_msg("seed %llu: %s: %s", (unsigned long long)seed, res.checker,
               res.message);
  }
}

static void toy_passes_multi_region_and_quorum_seeds(void **state) {
  (void)state;
  struct sim_toy_options q = {.r = 2, .w = 2, .timeout = 2000};
  struct sim_run_config rc;
  sim_run_defaults(&rc, &sim_toy_gossip);
  rc.sim.nodes = 6;
  rc.sim.dcs = 3;
  rc.sim.ops_arg = &q;
  rc.chaos = SIM_MS(3000);
  for (uint64_t seed = 500; seed < 500 + TOY_SEEDS / 10; seed++) {
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    if (!res.ok)
      fail_msg("seed %llu: %s: %s", (unsigned long long)seed, res.checker,
               res.message);
  }
}

static void toy_reads_its_writes_without_faults(void **state) {
  (void)state;
  struct sim_toy_options q = {.r = 2, .w = 2};
  struct sim_run_config rc;
  sim_run_defaults(&rc, &sim_toy_gossip);
  memset(&rc.sim.faults, 0, sizeof rc.sim.faults);
  rc.sim.faults.fsync_ms = 5;
  rc.swarm = 0;
  rc.sim.nodes = 3;
  rc.sim.ops_arg = &q;
  rc.strict = 1;
  rc.chaos = SIM_MS(2000);
  for (uint64_t seed = 900; seed < 910; seed++) {
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    if (!res.ok)
      fail_msg("seed %llu: %s: %s", (unsigned long long)seed, res.checker,
               res.message);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(naive_register_loses_a_write_across_a_partition),
      cmocka_unit_test(toy_keeps_concurrent_writes_as_siblings),
      cmocka_unit_test(toy_ack_survives_an_immediate_crash),
      cmocka_unit_test(ryw_needs_overlapping_quorums),
      cmocka_unit_test(naive_register_is_caught_by_the_swarm),
      cmocka_unit_test(toy_passes_every_seed),
      cmocka_unit_test(planted_ack_before_sync_is_caught),
      cmocka_unit_test(toy_survives_brutal_faults),
      cmocka_unit_test(toy_passes_multi_region_and_quorum_seeds),
      cmocka_unit_test(toy_reads_its_writes_without_faults),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
