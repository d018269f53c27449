/* test_gc_sim.c: deletes under anti-entropy and tombstone collection on the
 * simulator (issue 20, the zombie test): 5 nodes, N = 3, QUORUM, swarm
 * faults (loss, partitions, crashes that lose unsynced writes, store
 * faults, clock jumps), every hint dropped at once (a one-byte hint bound)
 * and read repair off, as in test_aae_sim.c; and a workload in which a
 * quarter of the kv operations read a key and delete it with the read's
 * context (12 kv keys, so a key often stays deleted for a while). A
 * replica cut off (THE CUT below) misses deletes that nothing but
 * anti-entropy will bring it.
 *
 * The collector runs with a short settle so that purges happen within
 * simulated time: the hint window (the collector waits it out) is
 * HINT_AGE_MS, a walk every GC_INTERVAL_MS, an exchange every
 * AAE_INTERVAL_MS. After the faults stop, every replica of every key must
 * be identical within HEAL_INTERVALS exchange intervals, and every checker
 * hold, the zombie one first: no replica hands back a value an
 * acknowledged delete covered. Purges must have happened (repl_stats
 * tombstones_purged, summed over incarnations). Then the run goes on for
 * up to SETTLE_MS with no faults and no clients, and the dead objects
 * still stored are counted: reported, not asserted, under faults (KNOWN
 * ISSUES); asserted to reach 0 in the fault-free run.
 *
 * The control: the same runs with the collector in timeout mode (1 s,
 * Cassandra's gc_grace_seconds) must bring a deleted value back in some
 * seed, and the zombie checker must say so: the scenario does make
 * replicas miss deletes past the timeout, so the test can fail.
 *
 * A strict run (rw22, no faults) checks read-after-delete (a read invoked
 * after a delete was acknowledged never returns what it covered) and that
 * every tombstone is purged within SETTLE_CALM_MS.
 *
 * FOUND BY THIS TEST, FIXED: a write acknowledged right after a purge was
 * lost (seeds 2, 21): the coordinator, with no object left, minted the
 * next dot afresh, (self, 1), which a replica still holding the tombstone
 * had in its version vector; dots now come from one counter per
 * incarnation (dvv_write_after). And tombstones bounced between replicas
 * that purge at different times (seed 8); a purge now leaves a record,
 * and the same bytes handed back are not stored again (repl_gc.c, PURGE
 * RECORDS).
 *
 * Seeds: GC_SIM_SEEDS by default (the suite's time budget under ASan),
 * 1,000 with CHORUS_LONG_TESTS, or CHORUS_GC_SIM_SEEDS;
 * CHORUS_GC_SIM_FIRST sets the first seed, CHORUS_GC_SIM_TRACE=1 traces,
 * CHORUS_GC_SIM_KEY=kvN prints that key's history and final states. */
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
#define GC_SIM_SEEDS 1000
#else
#define GC_SIM_SEEDS 16
#endif
#define AAE_INTERVAL_MS 500
#define GC_INTERVAL_MS 300
#define HINT_AGE_MS 1000
#define GC_TIMEOUT_MS 1000 /* the control's timeout mode */
#define HEAL_INTERVALS 40  /* 20 s */
/* How long dead objects are watched after the judging: under faults (only
 * counted), and in the fault-free run (where they must all go). */
#define SETTLE_MS 10000
#define SETTLE_CALM_MS 20000
#define CHAOS_MS 6000
#define DELETE_PCT 25
#define KV_KEYS 12 /* each touched about once a second */
#define CUT_START_MS 1500

static int seeds(void) {
  const char *e = getenv("CHORUS_GC_SIM_SEEDS");
  return e != NULL && atoi(e) > 0 ? atoi(e) : GC_SIM_SEEDS;
}

static uint64_t first_seed(void) {
  const char *e = getenv("CHORUS_GC_SIM_FIRST");
  return e != NULL && atoll(e) > 0 ? (uint64_t)atoll(e) : 1;
}

struct cut {
  struct watch *w;
  int node;
  sim_time until;
};

/* What one seed showed, over every incarnation of every node. */
struct watch {
  uint64_t purged_sum; /* core_sim_options.purged_sum: ended incarnations */
  uint64_t purged_at_judge; /* the run's purges when it was judged */
  uint64_t purged;          /* ... and at the end of the settle */
  size_t deletes_ok;        /* acknowledged deletes */
  int dead_at_judge;        /* dead objects in the stores when judged */
  int dead_left;            /* ... still there after settle_ms */
  sim_time settle;          /* how long the last of them took to go */
  char why[256];            /* those left: key@node */
  int err;
  int cut_off;         /* THE CUT below (kept across seeds) */
  chorus_ms settle_ms; /* the watch after the judging (kept too) */
  struct cut cut;
};

/* dead_objects: the dead kv objects in every store (up or down); with
 * @why, each one named into it. */
static int dead_objects(struct sim *s, int *err, char *why, size_t cap) {
  const struct sim_history *h = sim_history(s);
  int dead = 0;
  for (size_t k = 0; k < h->nkeys; k++) {
    if (h->keys[k].type != SIM_TYPE_KV)
      continue;
    for (int i = 0; i < sim_nodes(s); i++) {
      int rc = core_sim_dead(s, i, h->keys[k].name);
      if (rc < 0)
        *err = rc;
      else
        dead += rc;
      if (rc == 1 && why != NULL) {
        int nat[8], nn = core_sim_natural(s, i, h->keys[k].name, nat, 8);
        int natural = 0;
        for (int j = 0; j < nn; j++)
          natural |= nat[j] == i;
        size_t len = strlen(why);
        snprintf(why + len, cap - len, " %s@n%d%s", h->keys[k].name, i,
                 natural ? "" : "(not a replica)");
      }
    }
  }
  return dead;
}

/* THE CUT. Swarm partitions last at most 3 s and often heal before the
 * collector's settle has passed; so each seed also cuts one replica off
 * (its choice drawn from the seed) from CUT_START_MS until the faults
 * stop, isolating it again every 100 ms over whatever partition the
 * nemesis drew meanwhile (struct cut above). It misses every delete of that
 * time, and holds the values they removed when the network heals, with no
 * client left to overwrite them: only the tombstones stand between them and a
 * zombie. */
static void cut_tick(struct sim *s, void *arg) {
  struct cut *c = arg;
  if (sim_now(s) + SIM_MS(100) >= c->until)
    return;
  sim_isolate(s, c->node);
  if (sim_schedule(s, SIM_MS(100), cut_tick, c) != CHORUS_OK)
    c->w->err = CHORUS_ENOMEM;
}

static void on_start(struct sim *s, void *arg) {
  struct watch *w = arg;
  struct watch keep = *w;
  *w = (struct watch){.cut_off = keep.cut_off, .settle_ms = keep.settle_ms};
  if (!w->cut_off)
    return;
  w->cut.w = w;
  w->cut.node =
      (int)chorus_prng_below(sim_prng(s, 0xc07), (uint64_t)sim_nodes(s));
  /* The run boots for 50 ms, then the chaos phase begins. */
  w->cut.until = SIM_MS(50 + CHAOS_MS);
  if (sim_schedule(s, SIM_MS(CUT_START_MS), cut_tick, &w->cut) != CHORUS_OK)
    w->err = CHORUS_ENOMEM;
}

/* print_key: @key's operations and final states (CHORUS_GC_SIM_KEY). */
static void print_key(const struct sim_history *h, const char *key) {
  for (size_t i = 0; i < h->nops; i++) {
    const struct sim_hop *o = &h->ops[i];
    if (strcmp(h->keys[o->key].name, key) != 0)
      continue;
    fprintf(stderr, "  op %llu client %d n%d %s %llu %s [%llu, %llu] ms covers",
            (unsigned long long)o->id, o->client, o->node, sim_op_name(o->op),
            (unsigned long long)o->value, sim_outcome_name(o->outcome),
            (unsigned long long)(o->invoke / 1000),
            (unsigned long long)(o->complete / 1000));
    for (size_t j = 0; j < o->ncovers; j++)
      fprintf(stderr, " %llu", (unsigned long long)o->covers[j]);
    fprintf(stderr, ", read");
    for (size_t j = 0; j < o->nread; j++)
      fprintf(stderr, " %llu", (unsigned long long)o->read[j]);
    fprintf(stderr, "\n");
  }
  for (size_t f = 0; f < h->nfinals; f++) {
    if (strcmp(h->keys[h->finals[f].key].name, key) != 0)
      continue;
    fprintf(stderr, "  final n%d:", h->finals[f].node);
    for (size_t j = 0; j < h->finals[f].nvalues; j++)
      fprintf(stderr, " %llu", (unsigned long long)h->finals[f].values[j]);
    fprintf(stderr, "\n");
  }
}

static void on_end(struct sim *s, void *arg) {
  struct watch *w = arg;
  const struct sim_history *h = sim_history(s);
  for (size_t i = 0; i < h->nops; i++)
    w->deletes_ok +=
        h->ops[i].op == SIM_OP_DELETE && h->ops[i].outcome == SIM_OK;
  if (getenv("CHORUS_GC_SIM_KEY") != NULL)
    print_key(h, getenv("CHORUS_GC_SIM_KEY"));
  w->purged_at_judge = w->purged_sum + core_sim_purged(s);
  w->dead_at_judge = w->dead_left = dead_objects(s, &w->err, NULL, 0);
  sim_time start = sim_now(s);
  while (w->dead_left > 0 && w->err == CHORUS_OK &&
         sim_now(s) - start < SIM_MS(w->settle_ms)) {
    int rc = sim_run_for(s, SIM_MS(100));
    if (rc != CHORUS_OK) {
      w->err = rc;
      break;
    }
    w->dead_left = dead_objects(s, &w->err, NULL, 0);
  }
  if (w->dead_left > 0)
    (void)dead_objects(s, &w->err, w->why, sizeof w->why);
  w->settle = sim_now(s) - start;
  w->purged = w->purged_sum + core_sim_purged(s);
}

static void configure(struct sim_run_config *rc, struct core_sim_options *opt,
                      struct watch *w, enum repl_tombstone_gc mode) {
  *opt = (struct core_sim_options){.replication = "3",
                                   .hint_max_bytes = 1,
                                   .hint_max_age_ms = HINT_AGE_MS,
                                   .read_repair = WIRE_RR_OFF,
                                   .aae_interval_ms = AAE_INTERVAL_MS,
                                   .gc_interval_ms = GC_INTERVAL_MS,
                                   .tombstone_gc = mode,
                                   .tombstone_gc_timeout_ms = GC_TIMEOUT_MS,
                                   .purged_sum = &w->purged_sum};
  struct core_sim_preset p = *core_sim_preset_find("n5");
  core_sim_preset_apply(rc, &p);
  rc->sim.ops_arg = opt;
  rc->chaos = SIM_MS(CHAOS_MS);
  rc->heal_bound = SIM_MS(HEAL_INTERVALS * AAE_INTERVAL_MS);
  rc->delete_pct = DELETE_PCT;
  rc->kv_keys = KV_KEYS;
  w->cut_off = 1;
  w->settle_ms = SETTLE_MS;
  rc->hook_start = on_start;
  rc->hook_end = on_end;
  rc->hook_arg = w;
  rc->sim.verbose = getenv("CHORUS_GC_SIM_TRACE") != NULL;
}

static void deletes_stay_deleted_and_tombstones_go(void **state) {
  (void)state;
  struct core_sim_options opt;
  struct sim_run_config rc;
  struct watch w;
  configure(&rc, &opt, &w, REPL_GC_REPAIR);
  int n = seeds();
  uint64_t first = first_seed();
  size_t ops = 0, deletes = 0;
  uint64_t purged = 0;
  int dead_at_judge = 0, dead_left = 0, dead_seeds = 0, failed = 0;
  for (uint64_t seed = first; seed < first + (uint64_t)n; seed++) {
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    assert_int_equal(w.err, CHORUS_OK);
    if (!res.ok) {
      fprintf(stderr, "gc seed %llu: %s: %s\n", (unsigned long long)seed,
              res.checker, res.message);
      failed++;
    }
    if (w.dead_left > 0) {
      fprintf(stderr,
              "gc seed %llu: %d dead objects still stored %d ms after the "
              "run was judged (%llu purges then, %llu now):%s\n",
              (unsigned long long)seed, w.dead_left, SETTLE_MS,
              (unsigned long long)w.purged_at_judge,
              (unsigned long long)w.purged, w.why);
      dead_seeds++;
    }
    ops += res.ops;
    deletes += w.deletes_ok;
    purged += w.purged_at_judge;
    dead_at_judge += w.dead_at_judge;
    dead_left += w.dead_left;
  }
  printf("# tombstone gc (repair mode): %d seeds, %zu ops, %zu acknowledged "
         "deletes, no zombie; %llu tombstones purged by the judging, %d dead "
         "objects stored then, %d still %d s later (in %d seeds); %d seeds "
         "failed\n",
         n, ops, deletes, (unsigned long long)purged, dead_at_judge, dead_left,
         SETTLE_MS / 1000, dead_seeds, failed);
  assert_int_equal(failed, 0);
  assert_true(deletes > 0);
  assert_true(purged > 0);
}

static void timeout_mode_brings_deleted_values_back(void **state) {
  (void)state;
  struct core_sim_options opt;
  struct sim_run_config rc;
  struct watch w;
  configure(&rc, &opt, &w, REPL_GC_TIMEOUT);
  rc.quiet = 1;
  int zombies = 0, other = 0, n = seeds();
  uint64_t first = first_seed();
  for (uint64_t seed = first; seed < first + (uint64_t)n; seed++) {
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    if (!res.ok && strcmp(res.checker, "zombie") == 0)
      zombies++;
    else if (!res.ok) {
      other++;
      fprintf(stderr, "timeout-mode seed %llu: %s: %s\n",
              (unsigned long long)seed, res.checker, res.message);
    }
  }
  printf("# timeout mode (%d ms): %d of %d seeds brought a deleted value "
         "back, %d failed otherwise\n",
         GC_TIMEOUT_MS, zombies, n, other);
  assert_true(zombies > 0);
}

/* Read-after-delete needs R+W>N, a strict quorum and no faults. */
static void strict_reads_never_see_a_deleted_value(void **state) {
  (void)state;
  struct core_sim_options opt;
  struct sim_run_config rc;
  struct watch w;
  configure(&rc, &opt, &w, REPL_GC_REPAIR);
  struct core_sim_preset p = *core_sim_preset_find("rw22");
  opt.r = p.opt.r;
  opt.w = p.opt.w;
  rc.sim.nodes = p.nodes;
  rc.sim.dcs = p.dcs;
  rc.r = p.r;
  rc.w = p.w;
  memset(&rc.sim.faults, 0, sizeof rc.sim.faults);
  rc.sim.faults.fsync_ms = 5;
  rc.swarm = 0;
  rc.strict = 1;
  rc.chaos = SIM_MS(3000);
  w.cut_off = 0;
  w.settle_ms = SETTLE_CALM_MS;
  int n = seeds() / 2 > 0 ? seeds() / 2 : 1;
  size_t deletes = 0;
  uint64_t purged = 0;
  for (uint64_t seed = 900; seed < 900 + (uint64_t)n; seed++) {
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    if (!res.ok)
      fail_msg("strict gc seed %llu: %s: %s", (unsigned long long)seed,
               res.checker, res.message);
    if (w.dead_left > 0)
      fail_msg("strict gc seed %llu: %d dead objects still stored %d ms "
               "after the run was judged:%s",
               (unsigned long long)seed, w.dead_left, SETTLE_CALM_MS, w.why);
    deletes += w.deletes_ok;
    purged += w.purged;
  }
  printf("# strict (rw22, no faults): %d seeds, %zu acknowledged deletes, "
         "%llu purged, none left after %d s, no read after a delete saw "
         "what it covered\n",
         n, deletes, (unsigned long long)purged, SETTLE_CALM_MS / 1000);
  assert_true(deletes > 0);
  assert_true(purged > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(deletes_stay_deleted_and_tombstones_go),
      cmocka_unit_test(timeout_mode_brings_deleted_values_back),
      cmocka_unit_test(strict_reads_never_see_a_deleted_value),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
