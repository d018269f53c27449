/* test_meta_sim.c: the metadata Raft group under the simulator (issue 18).
 *
 * Five nodes run the node core with metadata on (core_sim_options.metadata:
 * the roster founds the group, as chorusd does), under the workload and a
 * swarm of faults (partitions, clogs, drops, crashes and restarts, store
 * faults, clock jumps and drift) drawn per seed, and NOTE commands (writes
 * of the state's register with unique values) proposed through a rotating
 * node every 150 ms, so the log grows past the snapshot threshold, and
 * barrier reads of the register every 50 ms on every node that believes
 * it leads (a deposed leader among them is the stale read to catch).
 * Every 20 ms of virtual time every running node is observed: its Raft
 * role and term (meta_check_role), the state it serves and the index it
 * was applied at (meta_check_applied); every state any node applies gives
 * the register's value at its index (meta_check_value). After the heal,
 * every node must have applied what any leader called committed
 * (meta_check_final), and the register's history must be linearizable
 * (meta_check_linearizable). The workload's own checkers judge the data
 * path as usual.
 *
 * Meanwhile a gossip key rotation (issue 24: KEY_INSTALL, KEY_USE, then
 * KEY_REMOVE of the boot key, each tried again every 700 ms through the
 * next node until applied; the nodes' own KEY_APPLIED reports make the
 * next step acceptable) runs under the same faults: the applied states
 * must agree as for every command, and at the end every node's SWIM must
 * hold the keyring of the state it serves (core_gossip_keys,
 * core_keyring_version). The count of completed rotations is printed.
 *
 * The checker is first shown to catch planted violations (two leaders in
 * a term, two states at one index, a lost commit, a stale read, a read of
 * a write not yet begun, writes out of real-time order, a write applied
 * twice).
 *
 * Seeds: CHORUS_META_SIM_SEEDS (default 12; scripts/meta-sim-long runs
 * 1,000), from CHORUS_META_SIM_FIRST (default 1), and by default the
 * regression seeds below; CHORUS_META_SIM_BRUTAL=1 for heavy fixed fault
 * rates. */
#include <inttypes.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "chorus_error.h"
#include "core.h"
#include "core_sim_adapter.h"
#include "meta.h"
#include "meta_check.h"
#include "meta_node.h"
#include "sim.h"

#define POLL_MS 20
#define PROPOSE_MS 150
#define READ_MS 50

/* ---- the checker against planted violations ----------------------------- */

static void test_checker_catches_two_leaders(void **state) {
  (void)state;
  struct meta_check mc;
  meta_check_init(&mc);
  meta_check_role(&mc, 0, 3, 0xa, 5);
  meta_check_role(&mc, 1, 3, 0, 5);
  meta_check_role(&mc, 1, 4, 0xb, 6);
  assert_int_equal(mc.violations, 0);
  meta_check_role(&mc, 2, 3, 0xc, 5);
  assert_int_equal(mc.violations, 1);
  assert_non_null(strstr(mc.first, "two leaders in term 3"));
  meta_check_free(&mc);
}

static void test_checker_catches_two_histories(void **state) {
  (void)state;
  struct meta_check mc;
  meta_check_init(&mc);
  meta_check_applied(&mc, 0, 7, 111);
  meta_check_applied(&mc, 1, 7, 111);
  meta_check_applied(&mc, 1, 9, 222);
  meta_check_applied(&mc, 2, 8, 333);
  assert_int_equal(mc.violations, 0);
  meta_check_applied(&mc, 2, 9, 444);
  assert_int_equal(mc.violations, 1);
  assert_non_null(strstr(mc.first, "index 9"));
  meta_check_free(&mc);
}

static void test_checker_catches_a_lost_commit(void **state) {
  (void)state;
  struct meta_check mc;
  meta_check_init(&mc);
  meta_check_role(&mc, 0, 2, 0xa, 40);
  meta_check_final(&mc, 0, 40);
  meta_check_final(&mc, 1, 41);
  assert_int_equal(mc.violations, 0);
  meta_check_final(&mc, 2, 39);
  assert_int_equal(mc.violations, 1);
  assert_non_null(strstr(mc.first, "lost"));
  meta_check_free(&mc);
}

/* Register histories for the linearizability checker: a write invoked at
 * @inv, seen applied at log @index, answered OK at @resp (0: never). */
static uint64_t write_at(struct meta_check *mc, uint64_t inv, uint64_t index,
                         uint64_t resp) {
  uint64_t w = meta_check_invoke(mc, 1, inv);
  meta_check_value(mc, index, w);
  if (resp != 0)
    meta_check_answer(mc, w, 1, 0, resp);
  return w;
}

/* A read invoked at @inv that returned @value at @resp. */
static void read_of(struct meta_check *mc, uint64_t inv, uint64_t value,
                    uint64_t resp) {
  meta_check_answer(mc, meta_check_invoke(mc, 0, inv), 1, value, resp);
}

/* The history is judged: exactly one violation, saying @what. */
static void expect_violation(struct meta_check *mc, const char *what) {
  meta_check_linearizable(mc);
  assert_int_equal(mc->violations, 1);
  assert_non_null(strstr(mc->first, what));
  meta_check_free(mc);
}

/* Linearizability, planted: w1 then w2 in real time and in the log; a
 * read that begins after w2 completed returns w1 (stale). */
static void test_checker_catches_a_stale_read(void **state) {
  (void)state;
  struct meta_check mc;
  meta_check_init(&mc);
  uint64_t w1 = write_at(&mc, 10, 5, 20);
  uint64_t w2 = write_at(&mc, 30, 6, 40);
  meta_check_value(&mc, 7, w2); /* a JOIN after it: still w2 */
  /* Concurrent with w2: either value is fine. */
  read_of(&mc, 35, w1, 45);
  read_of(&mc, 36, w2, 46);
  /* An unanswered read says nothing; a failed write may still apply. */
  (void)meta_check_invoke(&mc, 0, 41);
  uint64_t w3 = write_at(&mc, 42, 8, 0);
  meta_check_answer(&mc, w3, 0, 0, 43);
  meta_check_linearizable(&mc);
  assert_int_equal(mc.violations, 0);
  assert_int_equal(mc.reads_checked, 2);
  assert_int_equal(mc.writes_placed, 3);
  read_of(&mc, 50, w1, 55);
  expect_violation(&mc, "stale read");
}

/* A read of a write that had not begun; a read of the initial register
 * after a write completed; two writes whose log order contradicts real
 * time; a value that comes back after another (a write applied twice). */
static void test_checker_catches_bad_orders(void **state) {
  (void)state;
  struct meta_check mc;
  meta_check_init(&mc);
  read_of(&mc, 10, write_at(&mc, 30, 3, 0), 20);
  expect_violation(&mc, "before that write began");

  meta_check_init(&mc);
  (void)write_at(&mc, 10, 3, 20);
  read_of(&mc, 30, 0, 40);
  expect_violation(&mc, "stale read");

  meta_check_init(&mc);
  uint64_t w1 = meta_check_invoke(&mc, 1, 10);
  meta_check_answer(&mc, w1, 1, 0, 20);
  (void)write_at(&mc, 30, 4, 40); /* w2 before w1 in the log */
  meta_check_value(&mc, 5, w1);
  expect_violation(&mc, "out of order");

  meta_check_init(&mc);
  w1 = write_at(&mc, 10, 4, 0);
  (void)write_at(&mc, 11, 5, 0);
  meta_check_value(&mc, 6, w1); /* w1 committed again */
  expect_violation(&mc, "applied twice");
}

static uint64_t env_u64(const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  return v != NULL && *v != '\0' ? strtoull(v, NULL, 10) : dflt;
}

/* ---- runs --------------------------------------------------------------- */

struct watch {
  struct meta_check mc;
  struct sim *sim;
  const struct sim_run_config *rc;
  uint64_t proposed, accepted, restarts;
  uint64_t max_epoch;  /* the highest epoch any node served */
  sim_time late_epoch; /* when it was first seen */
  int next_proposer;
  int nodes;
  sim_time stop;      /* proposals stop here (the heal) */
  sim_time stop_poll; /* observations stop here (the heal's bound) */
  /* A gossip key rotation under the faults (issue 24): the next step
   * (0 install, 1 use, 2 remove of the boot key, 3 done), its tries, and
   * what the end found. */
  int rot_step;
  uint64_t rot_tries;
  uint8_t rot_key[META_KEY_BYTES];
  int keys_wrong;    /* a node whose SWIM keys are not its state's */
  uint64_t rot_done; /* 1: the rotation completed */
};

static const struct meta_node *meta_of(struct sim *s, int i) {
  const struct core *c = core_sim_core(s, i);
  return c == NULL ? NULL : core_meta(c);
}

/* info_of: node @i's metadata node and its Raft view, if it has started
 * one (NULL otherwise). */
static const struct meta_node *info_of(struct sim *s, int i,
                                       struct meta_node_info *mi) {
  const struct meta_node *m = meta_of(s, i);
  if (m == NULL || !meta_node_started(m))
    return NULL;
  meta_node_info(m, mi);
  return m;
}

static void observe(struct sim *s, struct watch *w) {
  for (int i = 0; i < w->nodes; i++) {
    struct meta_node_info mi;
    const struct meta_node *m = info_of(s, i, &mi);
    if (m == NULL)
      continue;
    uint64_t self = core_sim_id(s, i);
    meta_check_role(&w->mc, i, mi.term, mi.raft_state == RAFT_LEADER ? self : 0,
                    mi.commit_index);
    const struct meta_state *st = meta_node_state(m);
    if (st == NULL || st->applied == 0)
      continue;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (meta_state_encode(st, &buf, &len) != CHORUS_OK)
      continue;
    meta_check_applied(&w->mc, i, st->applied, XXH3_64bits(buf, len));
    if (st->epoch > w->max_epoch) {
      w->max_epoch = st->epoch;
      w->late_epoch = sim_now(s);
    }
    free(buf);
  }
}

/* supervise: a node whose store failed a sync exits (fsyncgate); its
 * supervisor starts it again from what its disk holds, as systemd's
 * Restart= would. Writes no sync covered may or may not have reached the
 * disk (SIM_KEEP_RANDOM); the restart reopens the store. */
static void supervise(struct sim *s, struct watch *w) {
  for (int i = 0; i < w->nodes; i++)
    if (core_sim_exited(s, i)) {
      sim_kill(s, i, SIM_KEEP_RANDOM);
      if (sim_restart(s, i) == CHORUS_OK)
        w->restarts++;
    }
}

static void poll(struct sim *s, void *arg) {
  struct watch *w = arg;
  supervise(s, w);
  observe(s, w);
  if (sim_now(s) < w->stop_poll)
    (void)sim_schedule(s, SIM_MS(POLL_MS), poll, w);
}

struct note {
  uint64_t key, value;
};

static int propose_note(struct core *c, chorus_ms now, chorus_ms wall,
                        void *arg) {
  const struct note *n = arg;
  struct meta_cmd cmd = {.type = META_CMD_NOTE};
  cmd.note_key = n->key;
  cmd.note_value = n->value;
  return core_meta_propose(c, &cmd, n->value, 2000, now, wall);
}

/* propose: a register write through the next node; its value is its id
 * in the checker's history (unique), which is also the cookie. */
static void propose(struct sim *s, void *arg) {
  struct watch *w = arg;
  int node = w->next_proposer++ % w->nodes;
  struct note n = {.key = (uint64_t)node + 1,
                   .value = meta_check_invoke(&w->mc, 1, sim_now(s))};
  w->proposed++;
  if (n.value != 0 && core_sim_do(s, node, propose_note, &n) == CHORUS_OK)
    w->accepted++;
  if (sim_now(s) < w->stop)
    (void)sim_schedule(s, SIM_MS(PROPOSE_MS), propose, w);
}

static int read_register(struct core *c, chorus_ms now, chorus_ms wall,
                         void *arg) {
  return core_meta_read(c, *(const uint64_t *)arg, now, wall);
}

/* reads: a barrier read on every node that believes it leads. */
static void reads(struct sim *s, void *arg) {
  struct watch *w = arg;
  for (int i = 0; i < w->nodes; i++) {
    struct meta_node_info mi;
    if (info_of(s, i, &mi) == NULL || mi.raft_state != RAFT_LEADER)
      continue;
    uint64_t id = meta_check_invoke(&w->mc, 0, sim_now(s));
    if (id != 0)
      (void)core_sim_do(s, i, read_register, &id);
  }
  if (sim_now(s) < w->stop)
    (void)sim_schedule(s, SIM_MS(READ_MS), reads, w);
}

/* rotate: the rotation's next step through the next node, every 700 ms
 * until it is done; a refusal (EBUSY while a member has not applied the
 * step before, no leader, a timeout) is simply tried again. */
#define ROT_COOKIE (UINT64_C(1) << 59)

static int propose_key(struct core *c, chorus_ms now, chorus_ms wall,
                       void *arg) {
  const struct watch *w = arg;
  struct meta_cmd cmd = {0};
  if (w->rot_step == 0) {
    cmd.type = META_CMD_KEY_INSTALL;
    memcpy(cmd.key.key, w->rot_key, sizeof cmd.key.key);
    cmd.key.id = meta_key_id(cmd.key.key);
  } else {
    cmd.type = w->rot_step == 1 ? META_CMD_KEY_USE : META_CMD_KEY_REMOVE;
    cmd.key.id = w->rot_step == 1 ? meta_key_id(w->rot_key) : 0;
  }
  return core_meta_propose(c, &cmd, ROT_COOKIE | (uint64_t)w->rot_step, 2000,
                           now, wall);
}

static void rotate(struct sim *s, void *arg) {
  struct watch *w = arg;
  if (w->rot_step >= 3)
    return;
  w->rot_tries++;
  (void)core_sim_do(s, (int)(w->rot_tries % (uint64_t)w->nodes), propose_key,
                    w);
  if (sim_now(s) < w->stop)
    (void)sim_schedule(s, SIM_MS(700), rotate, w);
}

/* The metadata group's effects (core_sim_options' observers). An answered
 * read returns the register of the state the node serves at that moment:
 * its barrier is applied, so it is the state after it. */
static void on_answer(void *observer, int node, uint64_t cookie, int status) {
  struct watch *w = observer;
  if (cookie & ROT_COOKIE) {
    /* An install answered twice (a resend) or EEXIST moves on too. */
    int step = (int)(cookie & 3);
    if (step == w->rot_step &&
        (status == CHORUS_OK || (step == 0 && status == CHORUS_EEXIST) ||
         (step == 2 && status == CHORUS_ENOTFOUND)))
      w->rot_step++;
    return;
  }
  const struct meta_node *m = meta_of(w->sim, node);
  uint64_t value = m != NULL ? meta_node_state(m)->note : 0;
  meta_check_answer(&w->mc, cookie, status == CHORUS_OK, value,
                    sim_now(w->sim));
}

static void on_applied(void *observer, int node, uint64_t index,
                       const struct meta_state *st) {
  struct watch *w = observer;
  (void)node;
  meta_check_value(&w->mc, index, st->note);
}

static void at_start(struct sim *s, void *arg) {
  struct watch *w = arg;
  w->sim = s;
  w->stop = w->rc->chaos;
  w->stop_poll = w->rc->chaos + SIM_MS(30000);
  (void)sim_schedule(s, SIM_MS(POLL_MS), poll, w);
  (void)sim_schedule(s, SIM_MS(1000), propose, w);
  (void)sim_schedule(s, SIM_MS(1000), reads, w);
  (void)sim_schedule(s, SIM_MS(3000), rotate, w);
}

/* at_end: healed and judged; give Raft time to catch every node up, then
 * the final check on every node that runs. */
static void at_end(struct sim *s, void *arg) {
  struct watch *w = arg;
  for (int k = 0; k < 100; k++) {
    supervise(s, w);
    (void)sim_run_for(s, SIM_MS(100));
    observe(s, w);
  }
  for (int i = 0; i < w->nodes; i++) {
    struct meta_node_info mi;
    const struct meta_node *m = info_of(s, i, &mi);
    if (m == NULL)
      continue;
    if (getenv("CHORUS_META_SIM_TRACE") != NULL)
      printf("# n%d: raft state %d term %" PRIu64 " commit %" PRIu64
             " applied %" PRIu64 " last %" PRIu64 " store errors %" PRIu64
             " epoch %" PRIu64 " members %zu held %" PRIu64 "\n",
             i, mi.raft_state, mi.term, mi.commit_index, mi.applied_index,
             mi.last_index, mi.store_errors, meta_node_state(m)->epoch,
             meta_node_state(m)->n, mi.sends_held);
    /* The keys its SWIM holds are the keyring of the state it serves. */
    const struct meta_state *st = meta_node_state(m);
    const struct core *c = core_sim_core(s, i);
    uint8_t keys[SWIM_MAX_KEYS][SWIM_KEY_BYTES];
    size_t nk = core_gossip_keys(c, keys);
    const struct meta_key *pk =
        meta_keyring_find(&st->keyring, st->keyring.primary);
    if (core_keyring_version(c) != st->keyring.version ||
        (pk != NULL && memcmp(keys[0], pk->key, sizeof pk->key) != 0) ||
        nk != st->keyring.n + (st->keyring.boot_retired ? 0u : 1u))
      w->keys_wrong++;
    if (st->keyring.boot_retired && pk != NULL &&
        memcmp(pk->key, w->rot_key, sizeof w->rot_key) == 0)
      w->rot_done = 1;
    int before = w->mc.violations;
    meta_check_final(&w->mc, i, mi.applied_index);
    if (w->mc.violations > before && before == 0) {
      size_t len = strlen(w->mc.first);
      snprintf(w->mc.first + len, sizeof w->mc.first - len,
               " (raft state %d, term %" PRIu64 ", commit %" PRIu64
               ", last index %" PRIu64 ", store errors %" PRIu64 ")",
               mi.raft_state, mi.term, mi.commit_index, mi.last_index,
               mi.store_errors);
    }
  }
  meta_check_linearizable(&w->mc);
}

static void test_meta_under_faults(void **state) {
  (void)state;
  struct core_sim_preset p = *core_sim_preset_find("n5");
  p.opt.metadata = 1;
  p.opt.meta_answer = on_answer;
  p.opt.meta_applied = on_applied;
  struct sim_run_config rc;
  core_sim_preset_apply(&rc, &p);
  rc.sim.verbose = getenv("CHORUS_META_SIM_TRACE") != NULL;
  /* CHORUS_META_SIM_BRUTAL=1: every seed gets every fault at a high rate
   * (core_sim_brutal) instead of a swarm draw. */
  if (env_u64("CHORUS_META_SIM_BRUTAL", 0) != 0)
    core_sim_brutal(&rc);
  rc.hook_start = at_start;
  rc.hook_end = at_end;
  uint64_t first = env_u64("CHORUS_META_SIM_FIRST", 1);
  uint64_t seeds = env_u64("CHORUS_META_SIM_SEEDS", 12);
  /* Swarm seeds that once found a bug, run by default after the range
   * (seeds depend on the workload's draws: re-find them when it changes):
   * 97, a follower with a stale tail stuck for good (clamp_append_entries
   * in meta_node.c). */
  static const uint64_t regressions[] = {97};
  size_t nreg = getenv("CHORUS_META_SIM_FIRST") == NULL &&
                        getenv("CHORUS_META_SIM_SEEDS") == NULL &&
                        env_u64("CHORUS_META_SIM_BRUTAL", 0) == 0
                    ? sizeof regressions / sizeof regressions[0]
                    : 0;
  uint64_t terms = 0, states = 0, proposed = 0, restarts = 0, failed = 0;
  uint64_t data_failed = 0, reads = 0, placed = 0, rotated = 0;
  for (uint64_t k = 0; k < seeds + nreg; k++) {
    uint64_t seed = k < seeds ? first + k : regressions[k - seeds];
    struct watch w = {.rc = &rc, .nodes = p.nodes};
    for (size_t i = 0; i < sizeof w.rot_key; i++) /* one key per seed */
      w.rot_key[i] = (uint8_t)(seed * 131 + i * 7 + 1);
    meta_check_init(&w.mc);
    rc.hook_arg = &w;
    p.opt.meta_observer = &w;
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    /* The data path's checkers judge runs in which the ring changed under
     * the workload: the founders' JOINs commit one by one (later when
     * partitions hold one off), and no streaming brings a new owner the
     * data written before (issue 19), nor do pending ranges cover a node
     * that restarted with an older ring. Their verdicts are counted and
     * shown by checker, not failed here: this test's subject is the
     * metadata group; repl_sim judges the data path on a fixed ring. */
    if (!res.ok) {
      data_failed++;
      printf("# seed %" PRIu64 ": data path: %s: %s (last ring change at "
             "%.1f s)\n",
             seed, res.checker, res.message, (double)w.late_epoch / 1e6);
    }
    if (w.keys_wrong > 0) {
      failed++;
      printf("# seed %" PRIu64 ": FAILED: %d nodes hold other gossip keys "
             "than their metadata's keyring\n",
             seed, w.keys_wrong);
    }
    rotated += w.rot_done;
    if (w.mc.violations > 0 || w.mc.nterms == 0) {
      failed++;
      printf("# seed %" PRIu64 ": FAILED: %s\n", seed,
             w.mc.nterms == 0 ? "no leader ever" : w.mc.first);
    }
    terms += w.mc.nterms;
    states += w.mc.nstates;
    proposed += w.proposed;
    restarts += w.restarts;
    reads += w.mc.reads_checked;
    placed += w.mc.writes_placed;
    meta_check_free(&w.mc);
  }
  printf("# %" PRIu64 " seeds from %" PRIu64
         " (and %zu regression seeds): %" PRIu64 " failed, %" PRIu64
         " with a data-path verdict (issue 19); %" PRIu64
         " terms with a leader, %" PRIu64 " distinct applied states checked, "
         "%" PRIu64 " NOTE proposals (%" PRIu64 " seen applied), %" PRIu64
         " linearizable reads checked, %" PRIu64 " restarts after a store "
         "failure; %" PRIu64 " gossip key rotations completed\n",
         seeds, first, nreg, failed, data_failed, terms, states, proposed,
         placed, reads, restarts, rotated);
  assert_int_equal(failed, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_checker_catches_two_leaders),
      cmocka_unit_test(test_checker_catches_two_histories),
      cmocka_unit_test(test_checker_catches_a_lost_commit),
      cmocka_unit_test(test_checker_catches_a_stale_read),
      cmocka_unit_test(test_checker_catches_bad_orders),
      cmocka_unit_test(test_meta_under_faults),
  };
  return cmocka_run_group_tests_name("meta_sim", tests, NULL, NULL);
}
