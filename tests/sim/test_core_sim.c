/* test_core_sim.c: membership changes through the node core's own hookup
 * (node/core/core.h) on the simulator: a node joins, a node leaves, a node
 * dies, a node's data folder fills, each under the random client workload and
 * judged by every checker of the run (lost acknowledged writes, phantoms, false
 * siblings, convergence after heal, counters, sets).
 *
 * HOW A SCENARIO RUNS
 *
 * One sim_run_seed per seed on 5 nodes (N=3, QUORUM), calm but for a
 * little datagram loss and latency: the workload's clients run for 20 s of
 * chaos while the scenario's actions, scheduled by the run's start hook,
 * act on one node (the target). A poll every 100 ms of virtual time
 * records what the other nodes' cores show (SWIM's view of the target,
 * their rings); the end hook records the judged cluster, after waiting
 * (bounded) for what must follow it. cmocka's asserts must not jump out of
 * the simulator's callbacks, so every assertion comes after the run, on
 * the record (struct watch).
 *
 * Why 20 s: SWIM sends each update in only 2 packets per member with the
 * local timing on 5 nodes (retransmit_mult 2 x ceil(log10(n + 1))), so a
 * member may miss a join, a leave or a return until its next push/pull
 * exchange (every 15 s, swim.h). The observation windows span one.
 */
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

/* Seeds per scenario (long runs: CHORUS_LONG_TESTS). */
#ifdef CHORUS_LONG_TESTS
#define SCENARIO_SEEDS 100
#else
#define SCENARIO_SEEDS 4
#endif
#define NODES 5
#define CHAOS_MS 20000
#define POLL_US SIM_MS(100)
/* A key no workload client touches (they use kv*, ctr*, set*): its one
 * write while the target is away can reach the target only as a hint. */
#define COLD_KEY "cold"
#define COLD_VALUE (1ULL << 40) /* the workload's values count from 1 */

/* What a scenario saw, for the assertions after the run. */
struct watch {
  const struct sim_run_config *rc;
  int target; /* the node that joins, leaves or dies */
  chorus_node_id id;
  int err;           /* a scheduled action failed */
  sim_time poll_end; /* polls stop here */
  /* During the run, per other node: the SWIM states it held for the
   * target (bit 1 << state), whether its ring listed the target. */
  unsigned saw[NODES];
  int listed[NODES];
  int natural_seen;         /* join: (ring, key) pairs where it was natural */
  int pending_seen;         /* join: (ring, key) pairs where it was pending */
  int replica_seen;         /* join: keys its own replication called its own */
  int cold_outcome;         /* leave, death: the cold write's outcome */
  uint64_t hints_at_return; /* hints for the target, all nodes, as it
                             * came back */
  /* At the end, after the heal, the checkers and the settling. */
  int settle, settled; /* wait for: no hints for it, ALIVE everywhere */
  int listed_end, joining_end, alive_end, holds_end, cold_end;
  uint64_t hints_end, replayed_end;
  /* full: the probes' statuses (a full data folder), in order. */
  int nat2;            /* a healthy natural replica of the cold key */
  int probe;           /* the next probe of the chain */
  int probe_status[8]; /* each probe's status; 1 while not done */
  int full_seen;       /* the target's store refused writes, seen at polls */
};

/* The workload's keys (sim_workload.c names them). */
static int key_at(const struct sim_run_config *rc, int i, char *key,
                  size_t size, enum sim_op_type *type) {
  if (i < rc->kv_keys) {
    snprintf(key, size, "kv%d", i);
    *type = SIM_TYPE_KV;
  } else if (i < rc->kv_keys + rc->counter_keys) {
    snprintf(key, size, "ctr%d", i - rc->kv_keys);
    *type = SIM_TYPE_COUNTER;
  } else if (i < rc->kv_keys + rc->counter_keys + rc->set_keys) {
    snprintf(key, size, "set%d", i - rc->kv_keys - rc->counter_keys);
    *type = SIM_TYPE_SET;
  } else if (i < rc->kv_keys + rc->counter_keys + rc->set_keys + rc->lww_keys) {
    snprintf(key, size, "lww%d",
             i - rc->kv_keys - rc->counter_keys - rc->set_keys);
    *type = SIM_TYPE_LWW;
  } else {
    return 0;
  }
  return 1;
}

static uint64_t hints_for_target(struct sim *s, const struct watch *w) {
  uint64_t sum = 0;
  for (int i = 0; i < sim_nodes(s); i++)
    if (core_sim_repl(s, i) != NULL)
      sum += repl_hints_for(core_sim_repl(s, i), w->id);
  return sum;
}

/* in_plist: whether @id is among the @n entries of @pl from @from. */
static int in_plist(const struct ring_plist *pl, int from, int n,
                    chorus_node_id id) {
  for (int i = from; i < from + n; i++)
    if (pl->r[i].id == id)
      return 1;
  return 0;
}

/* look_at_keys: the target's place in every running node's ring for every
 * workload key (a joining node must be pending, never natural). */
static void look_at_keys(struct sim *s, struct watch *w) {
  char key[32];
  enum sim_op_type type;
  for (int k = 0; key_at(w->rc, k, key, sizeof key, &type); k++) {
    for (int i = 0; i < sim_nodes(s); i++) {
      const struct core *c = core_sim_core(s, i);
      struct ring_plist pl;
      if (c == NULL ||
          ring_lookup_key(core_ring(c), key, strlen(key), 0, &pl) != CHORUS_OK)
        continue;
      w->natural_seen += in_plist(&pl, 0, pl.n_natural, w->id);
      w->pending_seen += in_plist(&pl, pl.n_natural, pl.n_pending, w->id);
    }
    const struct repl *r = core_sim_repl(s, w->target);
    if (r != NULL && repl_is_replica(r, key, strlen(key)))
      w->replica_seen++;
  }
}

static void poll(struct sim *s, void *arg) {
  struct watch *w = arg;
  w->full_seen += store_disk_info(sim_store(s, w->target))->full;
  for (int i = 0; i < sim_nodes(s); i++) {
    const struct core *c = core_sim_core(s, i);
    if (i == w->target || c == NULL)
      continue;
    const struct swim_member *m = swim_member_find(core_swim(c), w->id);
    if (m != NULL)
      w->saw[i] |= 1u << m->state;
    if (ring_snapshot_find(core_ring(c), w->id) >= 0)
      w->listed[i] = 1;
  }
  look_at_keys(s, w);
  if (sim_now(s) + POLL_US <= w->poll_end &&
      sim_schedule(s, POLL_US, poll, w) != CHORUS_OK)
    w->err = CHORUS_ENOMEM;
}

static void watch_until(struct sim *s, struct watch *w, sim_time end) {
  w->id = core_sim_id(s, w->target);
  w->poll_end = end;
  poll(s, w);
}

/* settled: no node keeps a hint for the target, and every other node holds
 * it ALIVE (its return spread). */
static int settled(struct sim *s, void *arg) {
  struct watch *w = arg;
  if (hints_for_target(s, w) > 0)
    return 0;
  for (int i = 0; i < sim_nodes(s); i++) {
    const struct core *c = core_sim_core(s, i);
    if (i == w->target)
      continue;
    const struct swim_member *m =
        c != NULL ? swim_member_find(core_swim(c), w->id) : NULL;
    if (m == NULL || m->state != SWIM_ALIVE)
      return 0;
  }
  return 1;
}

/* at_end: the judged cluster, settled first when asked (at most 40 s):
 * the others' view of the target and their rings, the hints left for it
 * and replayed to it, what the target's store holds. */
static void at_end(struct sim *s, void *arg) {
  struct watch *w = arg;
  if (w->settle)
    w->settled = sim_step_until(s, settled, w, SIM_MS(40000)) == 1;
  w->hints_end = hints_for_target(s, w);
  for (int i = 0; i < sim_nodes(s); i++) {
    const struct core *c = core_sim_core(s, i);
    if (c == NULL)
      continue;
    long at = ring_snapshot_find(core_ring(c), w->id);
    if (at >= 0) {
      w->listed_end++;
      w->joining_end +=
          ring_snapshot_node(core_ring(c), (size_t)at)->state == RING_JOINING;
    }
    if (i == w->target)
      continue;
    const struct swim_member *m = swim_member_find(core_swim(c), w->id);
    w->alive_end += m != NULL && m->state == SWIM_ALIVE;
    w->replayed_end += repl_stats(core_repl(c))->hints_replayed;
  }
  const struct core *t = core_sim_core(s, w->target);
  char key[32];
  enum sim_op_type type;
  for (int k = 0; t != NULL && key_at(w->rc, k, key, sizeof key, &type); k++) {
    struct ring_plist pl;
    if (ring_lookup_key(core_ring(t), key, strlen(key), 0, &pl) == CHORUS_OK &&
        in_plist(&pl, pl.n_natural, pl.n_pending, w->id))
      w->holds_end += core_sim_holds(s, w->target, type, key) == 1;
  }
  w->cold_end = core_sim_stored(s, w->target, COLD_KEY, COLD_VALUE);
}

/* run: the scenario's seeds; @check asserts what one seed's record must
 * show. */
static void run(const char *name, const struct core_sim_options *opt,
                void (*start)(struct sim *, void *),
                void (*check)(const struct watch *)) {
  struct core_sim_preset p = *core_sim_preset_find("n5");
  p.opt = *opt;
  struct sim_run_config rc;
  core_sim_preset_apply(&rc, &p);
  memset(&rc.sim.faults, 0, sizeof rc.sim.faults);
  rc.sim.faults.drop = 0.01;
  rc.sim.faults.tail_ms = 5;
  rc.sim.faults.fsync_ms = 5;
  rc.sim.verbose = getenv("CHORUS_CORE_SIM_TRACE") != NULL;
  rc.swarm = 0;
  rc.chaos = SIM_MS(CHAOS_MS);
  rc.hook_start = start;
  rc.hook_end = at_end;
  for (uint64_t seed = 1; seed <= SCENARIO_SEEDS; seed++) {
    struct watch w = {.rc = &rc};
    rc.hook_arg = &w;
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    if (!res.ok)
      fail_msg("%s seed %llu: %s: %s", name, (unsigned long long)seed,
               res.checker, res.message);
    check(&w);
    printf("# %s seed %llu: n%d; pending in %d lookups, holds %d keys; "
           "%llu hints for it as it came back, %llu replayed; %zu ops\n",
           name, (unsigned long long)seed, w.target, w.pending_seen,
           w.holds_end, (unsigned long long)w.hints_at_return,
           (unsigned long long)w.replayed_end, res.ops);
  }
}

/* ---- join -----------------------------------------------------------------
 */

static void join_boot(struct sim *s, void *arg) {
  struct watch *w = arg;
  if (sim_restart(s, w->target) != CHORUS_OK)
    w->err = CHORUS_EINTERNAL;
  watch_until(s, w, SIM_MS(CHAOS_MS));
}

static void join_start(struct sim *s, void *arg) {
  struct watch *w = arg;
  w->target = NODES - 1;
  /* Not started with the others: its process comes up 2 s into the run. */
  sim_kill(s, w->target, SIM_KEEP_ALL);
  if (sim_schedule(s, SIM_MS(2000), join_boot, w) != CHORUS_OK)
    w->err = CHORUS_ENOMEM;
}

static void join_check(const struct watch *w) {
  assert_int_equal(w->err, CHORUS_OK);
  for (int i = 0; i < NODES; i++)
    if (i != w->target)
      assert_true(w->listed[i]); /* rebuilt through the hookup, mid-run */
  assert_int_equal(w->listed_end, NODES);
  assert_int_equal(w->joining_end, NODES);
  assert_int_equal(w->alive_end, NODES - 1);
  assert_true(w->pending_seen > 0);
  assert_int_equal(w->natural_seen, 0);
  assert_int_equal(w->replica_seen, 0);
  assert_true(w->holds_end > 0); /* a pending replica gets writes */
}

/* A node outside every roster starts late as RING_JOINING and joins
 * through two seeds: every core learns it through SWIM and rebuilds its
 * ring with it as a pending replica of some keys (it receives their
 * writes) and a natural replica of none (it never serves a read: nothing
 * streams it the data it lacks). */
static void node_joins(void **state) {
  (void)state;
  struct core_sim_options opt = {.replication = "3",
                                 .joining = 1u << (NODES - 1)};
  run("join", &opt, join_start, join_check);
}

/* ---- leave and death: the target goes away, comes back -------------------
 */

static void cold_done(struct sim *s, void *arg, int client) {
  struct watch *w = arg;
  w->cold_outcome = (int)sim_client_result(s, client)->outcome;
}

/* cold_write: one write of the cold key, of which the target is the
 * primary, while it is away (through the next node). */
static void cold_write(struct sim *s, void *arg) {
  struct watch *w = arg;
  struct sim_call c = {.op = SIM_OP_PUT, .key = COLD_KEY, .value = COLD_VALUE};
  w->cold_outcome = -1;
  if (sim_request_start(s, SIM_VOCAB_CLIENT, (w->target + 1) % NODES, &c,
                        cold_done, w) != CHORUS_OK)
    w->err = CHORUS_EINTERNAL;
}

static void go_away(struct sim *s, struct watch *w, sim_time back_at,
                    void (*back)(struct sim *, void *)) {
  watch_until(s, w, back_at);
  if (sim_schedule(s, SIM_MS(2000), cold_write, w) != CHORUS_OK ||
      sim_schedule(s, back_at - sim_now(s), back, w) != CHORUS_OK)
    w->err = CHORUS_ENOMEM;
}

static int target_primary(struct sim *s, struct watch *w) {
  int nat[3];
  if (core_sim_natural(s, 0, COLD_KEY, nat, 3) < 1) {
    w->err = CHORUS_EINTERNAL;
    return 0;
  }
  w->target = nat[0];
  w->settle = 1;
  return 1;
}

/* After the target came back: what it missed arrived as hints. */
static void came_back_check(const struct watch *w) {
  assert_int_equal(w->err, CHORUS_OK);
  assert_int_equal(w->cold_outcome, SIM_OK);
  assert_true(w->hints_at_return > 0); /* replication held it down */
  assert_true(w->settled);
  assert_int_equal(w->hints_end, 0);
  assert_int_equal(w->alive_end, NODES - 1); /* its return spread */
  assert_true(w->replayed_end > 0);
  assert_int_equal(w->cold_end, 1); /* through a replayed hint */
}

static int leave_op(struct core *c, chorus_ms now, chorus_ms wall, void *arg) {
  (void)arg;
  return core_leave(c, now, wall);
}

static void kill_left(struct sim *s, void *arg) {
  struct watch *w = arg;
  w->hints_at_return = hints_for_target(s, w);
  sim_kill(s, w->target, SIM_KEEP_ALL);
}

static void leave_now(struct sim *s, void *arg) {
  struct watch *w = arg;
  if (!target_primary(s, w))
    return;
  if (core_sim_do(s, w->target, leave_op, NULL) != CHORUS_OK) {
    w->err = CHORUS_EINTERNAL;
    return;
  }
  go_away(s, w, SIM_MS(17000), kill_left);
}

static void leave_start(struct sim *s, void *arg) {
  if (sim_schedule(s, SIM_MS(1000), leave_now, arg) != CHORUS_OK)
    ((struct watch *)arg)->err = CHORUS_ENOMEM;
}

static void leave_check(const struct watch *w) {
  for (int i = 0; i < NODES; i++)
    if (i != w->target)
      assert_true(w->saw[i] & (1u << SWIM_LEFT));
  came_back_check(w);
}

/* A node leaves gracefully (core_leave, an operator's command) under the
 * workload and is killed 16 s later: meanwhile it refuses clients and
 * replica work, every other node holds it LEFT and their replication
 * treats it as down (hints for it); the heal restarts it, its new
 * incarnation refutes LEFT, the hints replay, the replicas converge. */
static void node_leaves(void **state) {
  (void)state;
  struct core_sim_options opt = {.replication = "3"};
  run("leave", &opt, leave_start, leave_check);
}

static void restart_dead(struct sim *s, void *arg) {
  struct watch *w = arg;
  w->hints_at_return = hints_for_target(s, w);
  if (sim_restart(s, w->target) != CHORUS_OK)
    w->err = CHORUS_EINTERNAL;
}

static void die_now(struct sim *s, void *arg) {
  struct watch *w = arg;
  if (!target_primary(s, w))
    return;
  sim_kill(s, w->target, SIM_KEEP_ALL); /* kill -9: the page cache stays */
  go_away(s, w, SIM_MS(7000), restart_dead);
}

static void death_start(struct sim *s, void *arg) {
  if (sim_schedule(s, SIM_MS(1000), die_now, arg) != CHORUS_OK)
    ((struct watch *)arg)->err = CHORUS_ENOMEM;
}

static void death_check(const struct watch *w) {
  for (int i = 0; i < NODES; i++)
    if (i != w->target)
      assert_true(w->saw[i] & (1u << SWIM_DEAD));
  came_back_check(w);
}

/* kill -9 of a node under the workload: SWIM marks it DEAD at every other
 * node, their replication hints for it; restarted 6 s later, mid-workload,
 * it rejoins and the hints replay to it. */
static void node_dies(void **state) {
  (void)state;
  struct core_sim_options opt = {.replication = "3"};
  run("death", &opt, death_start, death_check);
}

/* ---- a full data folder ---------------------------------------------------
 */

/* The probes, one request at a time through SIM_VOCAB_CLIENT: through the
 * full target a write (refused) and a read (served); a write of the cold
 * key through a healthy replica (QUORUM without the target, which keeps it
 * hinted); after the target's restart on the full folder a read and a
 * write; once space is back a write through the target. */
enum {
  PROBE_FULL_WRITE,
  PROBE_FULL_READ,
  PROBE_COLD_WRITE,
  PROBE_RESTARTED_READ,
  PROBE_RESTARTED_WRITE,
  PROBE_BACK_WRITE,
  PROBES
};

static void probe_next(struct sim *s, void *arg);

static void probe_done(struct sim *s, void *arg, int client) {
  struct watch *w = arg;
  const struct sim_result *r = sim_client_result(s, client);
  w->probe_status[w->probe] = r->outcome == SIM_OK ? CHORUS_OK
                              : r->status != 0     ? r->status
                                                   : CHORUS_EINTERNAL;
  w->probe++;
  /* The next probe of the same phase follows at once. */
  if (w->probe == PROBE_FULL_READ || w->probe == PROBE_COLD_WRITE ||
      w->probe == PROBE_RESTARTED_WRITE)
    probe_next(s, w);
}

static void probe_next(struct sim *s, void *arg) {
  struct watch *w = arg;
  struct sim_call c = {.op = SIM_OP_PUT, .value = COLD_VALUE + 1 + w->probe};
  int node = w->target;
  switch (w->probe) {
  case PROBE_FULL_WRITE:
  case PROBE_RESTARTED_WRITE:
  case PROBE_BACK_WRITE:
    c.key = COLD_KEY;
    break;
  case PROBE_FULL_READ:
  case PROBE_RESTARTED_READ:
    c = (struct sim_call){.op = SIM_OP_GET, .key = COLD_KEY};
    break;
  case PROBE_COLD_WRITE:
    c.key = COLD_KEY;
    c.value = COLD_VALUE;
    node = w->nat2;
    break;
  default:
    return;
  }
  c.r = c.w = WIRE_QUORUM;
  w->probe_status[w->probe] = 1;
  if (sim_request_start(s, SIM_VOCAB_CLIENT, node, &c, probe_done, w) !=
      CHORUS_OK)
    w->err = CHORUS_EINTERNAL;
}

static void full_restart(struct sim *s, void *arg) {
  struct watch *w = arg;
  sim_kill(s, w->target, SIM_KEEP_ALL);
  if (sim_restart(s, w->target) != CHORUS_OK)
    w->err = CHORUS_EINTERNAL;
}

static void space_back(struct sim *s, void *arg) {
  struct watch *w = arg;
  w->hints_at_return = hints_for_target(s, w);
  store_inject_fault(sim_store(s, w->target), STORE_FAULT_NONE);
}

static void fill_now(struct sim *s, void *arg) {
  struct watch *w = arg;
  int nat[3];
  if (!target_primary(s, w) || core_sim_natural(s, 0, COLD_KEY, nat, 3) < 2) {
    w->err = CHORUS_EINTERNAL;
    return;
  }
  w->nat2 = nat[1];
  store_inject_fault(sim_store(s, w->target), STORE_FAULT_FULL);
  watch_until(s, w, SIM_MS(11000));
  if (sim_schedule(s, SIM_MS(1500), probe_next, w) != CHORUS_OK ||
      sim_schedule(s, SIM_MS(4000), full_restart, w) != CHORUS_OK ||
      sim_schedule(s, SIM_MS(6500), probe_next, w) != CHORUS_OK ||
      sim_schedule(s, SIM_MS(10000), space_back, w) != CHORUS_OK ||
      sim_schedule(s, SIM_MS(13000), probe_next, w) != CHORUS_OK)
    w->err = CHORUS_ENOMEM;
}

static void full_start(struct sim *s, void *arg) {
  if (sim_schedule(s, SIM_MS(1000), fill_now, arg) != CHORUS_OK)
    ((struct watch *)arg)->err = CHORUS_ENOMEM;
}

static void full_check(const struct watch *w) {
  assert_int_equal(w->err, CHORUS_OK);
  assert_true(w->full_seen > 0);
  assert_int_equal(w->probe, PROBES);
  assert_int_equal(w->probe_status[PROBE_FULL_WRITE], CHORUS_ENOSPC);
  assert_int_equal(w->probe_status[PROBE_FULL_READ], CHORUS_OK);
  assert_int_equal(w->probe_status[PROBE_COLD_WRITE], CHORUS_OK);
  assert_int_equal(w->probe_status[PROBE_RESTARTED_READ], CHORUS_OK);
  assert_int_equal(w->probe_status[PROBE_RESTARTED_WRITE], CHORUS_ENOSPC);
  assert_int_equal(w->probe_status[PROBE_BACK_WRITE], CHORUS_OK);
  assert_true(w->hints_at_return > 0); /* it refused its copies */
  assert_true(w->settled);
  assert_int_equal(w->hints_end, 0);
  assert_int_equal(w->alive_end, NODES - 1); /* it never left SWIM */
  assert_true(w->replayed_end > 0);
  assert_int_equal(w->cold_end, 1); /* the write it refused, replayed */
}

/* A node's data folder fills under the workload (the memory store's
 * STORE_FAULT_FULL, seen by the adapter's space check): writes through it
 * are refused with ENOSPC, reads through it are served, writes through the
 * others reach QUORUM and keep its copies as hints; restarted on the full
 * folder it serves reads with a volatile epoch; once space is back it
 * writes again and the hints replay to it. The checkers judge the
 * workload's history: no acknowledged write is lost, no refused one
 * appears. */
static void data_folder_fills(void **state) {
  (void)state;
  struct core_sim_options opt = {.replication = "3"};
  run("full", &opt, full_start, full_check);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(node_joins),
      cmocka_unit_test(node_leaves),
      cmocka_unit_test(node_dies),
      cmocka_unit_test(data_folder_fills),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
