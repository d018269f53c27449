/* test_swim_sim.c: SWIM on the cluster simulator (tests/sim) with nodes
 * that join through seeds: crash and restart, partitions with the
 * simulator's own network and clocks, and replay by trace hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_alloc.h"
#include "sim.h"
#include "swim.h"
#include "swim_sim_adapter.h"

/* ---- helpers ---- */

/* cluster: @nodes nodes that all join through n0 and n1 (no bootstrap). */
static struct swim_sim *cluster(int nodes, uint64_t seed) {
  struct swim_sim_config cfg = {
      .nodes = nodes, .seed = seed, .slow_node = -1, .bootstrap = 0};
  struct swim_sim *ss = NULL;
  assert_int_equal(swim_sim_new(&cfg, &ss), CHORUS_OK);
  return ss;
}

static struct swim *sw(struct swim_sim *ss, int i) {
  struct swim *w = swim_sim_node(ss, i);
  assert_non_null(w);
  return w;
}

static enum swim_state seen(struct swim_sim *ss, int observer, int subject) {
  const struct swim_member *m =
      swim_member_find(sw(ss, observer), swim_sim_id(ss, subject));
  return m != NULL ? m->state : (enum swim_state) - 1;
}

static int everyone_sees(struct swim_sim *ss, int subject, enum swim_state st) {
  struct sim *s = swim_sim_engine(ss);
  for (int i = 0; i < sim_nodes(s); i++)
    if (i != subject && sim_node_up(s, i) && seen(ss, i, subject) != st)
      return 0;
  return 1;
}

static void test_sim_join_crash_restart(void **state) {
  (void)state;
  struct swim_sim *ss = cluster(8, 7);
  struct sim *s = swim_sim_engine(ss);
  /* everyone joins through the seeds */
  assert_int_equal(sim_run_for(s, SIM_MS(10000)), CHORUS_OK);
  for (int i = 0; i < 8; i++)
    assert_int_equal(swim_alive_count(sw(ss, i)), 8);
  sim_kill(s, 3, SIM_KEEP_ALL);
  assert_int_equal(sim_run_for(s, SIM_MS(60000)), CHORUS_OK);
  assert_true(everyone_sees(ss, 3, SWIM_DEAD));
  /* the restarted node (incarnation 0 again) refutes its death */
  assert_int_equal(sim_restart(s, 3), CHORUS_OK);
  assert_int_equal(sim_run_for(s, SIM_MS(20000)), CHORUS_OK);
  assert_true(everyone_sees(ss, 3, SWIM_ALIVE));
  assert_true(swim_incarnation(sw(ss, 3)) > 0);
  const char *msg = NULL;
  assert_int_equal(sim_failure(s, &msg), CHORUS_OK);
  swim_sim_free(ss);
}

/* A minority partition is declared dead by the majority and comes back
 * after the heal (gossip to the recently dead, push/pull). */
static void test_sim_partition_heal(void **state) {
  (void)state;
  struct swim_sim *ss = cluster(9, 8);
  struct sim *s = swim_sim_engine(ss);
  assert_int_equal(sim_run_for(s, SIM_MS(10000)), CHORUS_OK);
  struct sim_nodeset side;
  sim_nodeset_clear(&side);
  sim_nodeset_add(&side, 7);
  sim_nodeset_add(&side, 8);
  sim_partition(s, &side);
  assert_int_equal(sim_run_for(s, SIM_MS(90000)), CHORUS_OK);
  assert_int_equal(seen(ss, 0, 7), SWIM_DEAD);
  assert_int_equal(seen(ss, 8, 0), SWIM_DEAD);
  assert_int_equal(seen(ss, 8, 7), SWIM_ALIVE);
  sim_heal(s);
  assert_int_equal(sim_run_for(s, SIM_MS(40000)), CHORUS_OK);
  for (int j = 0; j < 9; j++)
    assert_true(everyone_sees(ss, j, SWIM_ALIVE));
  swim_sim_free(ss);
}

/* The same seed replays the same run, event for event. */
static void test_sim_replay(void **state) {
  (void)state;
  uint64_t h[2];
  for (int r = 0; r < 2; r++) {
    struct swim_sim *ss = cluster(6, 99);
    struct sim *s = swim_sim_engine(ss);
    assert_int_equal(sim_run_for(s, SIM_MS(5000)), CHORUS_OK);
    sim_kill(s, 2, SIM_KEEP_ALL);
    assert_int_equal(sim_run_for(s, SIM_MS(20000)), CHORUS_OK);
    h[r] = sim_trace_hash(s);
    swim_sim_free(ss);
  }
  assert_true(h[0] == h[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sim_join_crash_restart),
      cmocka_unit_test(test_sim_partition_heal),
      cmocka_unit_test(test_sim_replay),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
