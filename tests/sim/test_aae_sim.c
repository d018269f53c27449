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
 * A WIPED REPLICA (the third test). The same, with the metadata group on
 * (as chorusd runs; founding it takes part of a longer fault phase) and
 * one more source of divergence: once the cluster is formed (every node a
 * NORMAL member), at a random time of the fault phase, one random node is
 * killed, its disk replaced by an empty one (core_sim_wipe) and it is
 * restarted under its name 0.1-2 s later. In a seed whose cluster forms
 * late, any NORMAL member is wiped in the last LATE_WIPE_MS instead. The
 * wiped node must replace itself (docs/ARCHITECTURE.md, Replacements:
 * REPLACING, restored by streaming, FINISH): the heal waits, within the
 * same bound, for it to be NORMAL again and for every replica of every
 * key, its own included, to be identical; every checker of the run holds.
 * Meanwhile a probe client writes PROBE_KEYS keys at W=ALL once the
 * cluster is formed and, from the wipe on, reads them at R=1 through the
 * wiped node every TICK_MS: a read that succeeds must hold the acked
 * value, never "not found" (while restoring the node forwards reads to a
 * replica; it never answers from its empty store). Exited nodes (a failed
 * store) are restarted by the scenario, their supervisor.
 *
 * Every seed's time to converge after the heal (faults stopped, until
 * every replica of every key agrees) is measured; both scenarios print
 * its median, p99 and maximum in exchange intervals.
 *
 * Seeds: AAE_SIM_SEEDS and WIPE_SIM_SEEDS by default (the suite's time
 * budget under ASan), 1,000 each with CHORUS_LONG_TESTS, or
 * CHORUS_AAE_SIM_SEEDS for both, from CHORUS_AAE_SIM_FIRST (1);
 * CHORUS_AAE_SIM_ONLY=<test name> runs one test, CHORUS_AAE_SIM_TRACE=1
 * traces. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "chorus_prng.h"
#include "core.h"
#include "core_sim_adapter.h"
#include "meta.h"
#include "meta_node.h"
#include "sim.h"
#include "sim_history.h"

#ifdef CHORUS_LONG_TESTS
#define AAE_SIM_SEEDS 1000
#define WIPE_SIM_SEEDS 1000
#else
#define AAE_SIM_SEEDS 40
#define WIPE_SIM_SEEDS 30
#endif
#define AAE_INTERVAL_MS 500
#define HEAL_INTERVALS 40 /* 20 s */
#define CHAOS_MS 4000

/* The wiped replica: founding the metadata group takes a few seconds of
 * the fault phase, so it is longer; the wipe falls between the cluster's
 * forming and WIPE_MARGIN_MS before the heal. */
#define WIPE_CHAOS_MS 8000
#define WIPE_MARGIN_MS 500
#define WIPE_NODES 5
#define PROBE_KEYS 8
#define PROBE_CLIENT (SIM_VOCAB_CLIENT - 1)
#define PROBE_VALUE0 (UINT64_C(1) << 62) /* above the workload's values */
#define TICK_MS 100
#define PROBE_LEAD_MS 1000
#define LATE_WIPE_MS 1500

static int seeds(int dflt) {
  const char *e = getenv("CHORUS_AAE_SIM_SEEDS");
  return e != NULL && atoi(e) > 0 ? atoi(e) : dflt;
}

/* CHORUS_AAE_SIM_FIRST: the first seed (1), to run one failing seed. */
static uint64_t first_seed(void) {
  const char *e = getenv("CHORUS_AAE_SIM_FIRST");
  return e != NULL && atoi(e) > 0 ? (uint64_t)atoi(e) : 1;
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

/* The distribution of the times to converge after the heal, in ms. */
struct heal_times {
  chorus_ms *ms;
  size_t n, cap;
};

static void heal_times_add(struct heal_times *t,
                           const struct sim_run_result *res) {
  if (t->n == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 64;
    t->ms = chorus_realloc(t->ms, t->cap * sizeof *t->ms);
    assert_non_null(t->ms);
  }
  t->ms[t->n++] = (res->converged - res->healed) / 1000;
}

static int cmp_ms(const void *a, const void *b) {
  chorus_ms x = *(const chorus_ms *)a, y = *(const chorus_ms *)b;
  return x < y ? -1 : x > y;
}

/* heal_times_print: median, p99 (nearest rank) and maximum. */
static void heal_times_print(struct heal_times *t, const char *what) {
  if (t->n == 0)
    return;
  qsort(t->ms, t->n, sizeof *t->ms, cmp_ms);
  chorus_ms p50 = t->ms[(t->n - 1) / 2];
  chorus_ms p99 = t->ms[(t->n * 99 + 99) / 100 - 1];
  chorus_ms max = t->ms[t->n - 1];
  printf("# %s: time to converge after the heal over %zu seeds: median %" PRIu64
         " ms (%.1f intervals), p99 %" PRIu64 " ms (%.1f), max %" PRIu64
         " ms (%.1f); bound %d intervals\n",
         what, t->n, (uint64_t)p50, (double)p50 / AAE_INTERVAL_MS,
         (uint64_t)p99, (double)p99 / AAE_INTERVAL_MS, (uint64_t)max,
         (double)max / AAE_INTERVAL_MS, HEAL_INTERVALS);
  chorus_free(t->ms);
  *t = (struct heal_times){0};
}

static void replicas_converge_by_anti_entropy(void **state) {
  (void)state;
  struct core_sim_options opt;
  struct sim_run_config rc;
  configure(&rc, &opt, AAE_INTERVAL_MS);
  int n = seeds(AAE_SIM_SEEDS);
  size_t ops = 0;
  struct heal_times t = {0};
  for (uint64_t seed = first_seed(); seed < first_seed() + (uint64_t)n;
       seed++) {
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    if (!res.ok)
      fail_msg("aae seed %llu: %s: %s (CHORUS_AAE_SIM_TRACE=1 to trace)",
               (unsigned long long)seed, res.checker, res.message);
    ops += res.ops;
    heal_times_add(&t, &res);
  }
  printf("# anti-entropy: %d seeds converged within %d exchange intervals "
         "(%d ms) of healing, %zu ops\n",
         n, HEAL_INTERVALS, HEAL_INTERVALS * AAE_INTERVAL_MS, ops);
  heal_times_print(&t, "anti-entropy");
}

static void without_it_replicas_stay_diverged(void **state) {
  (void)state;
  struct core_sim_options opt;
  struct sim_run_config rc;
  configure(&rc, &opt, 0);
  rc.quiet = 1;
  int diverged = 0, n = seeds(AAE_SIM_SEEDS);
  for (uint64_t seed = first_seed(); seed < first_seed() + (uint64_t)n;
       seed++) {
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    diverged += !res.ok && strcmp(res.checker, "liveness") == 0;
  }
  printf("# without anti-entropy: %d of %d seeds never converged\n", diverged,
         n);
  assert_true(diverged > 0);
}

/* ------------------------------------------------------------------------
 * A wiped replica
 * ------------------------------------------------------------------------ */

struct wipe_watch {
  struct chorus_prng *prng;
  int victim;
  sim_time formed;  /* when the cluster was first seen formed (0: not) */
  sim_time wipe_at; /* drawn once the cluster is formed (0: not yet) */
  sim_time wiped;   /* when the disk was replaced (0: not yet) */
  bool restarted;
  bool replacing_seen; /* the victim's member seen REPLACING */
  bool busy;           /* the probe client has a request in flight */
  uint64_t restarts;   /* exited nodes restarted (supervise) */
  int next;            /* the probe key to write or read next */
  uint64_t next_value;
  uint64_t acked[PROBE_KEYS]; /* the value acked at W=ALL (0: none) */
  /* Probe reads through the victim after the wipe. */
  uint64_t reads, found, failed;
  char why[200]; /* the first violation */
  char end[200]; /* wipe_end's */
  int err;
};

static void probe_key(char *buf, size_t cap, int k) {
  snprintf(buf, cap, "probe%d", k);
}

/* formed: every node a NORMAL member, no change under way, every running
 * node's ring at the metadata's epoch. */
static bool formed(struct sim *s) {
  const struct meta_state *st = core_sim_newest_meta(s, WIPE_NODES);
  if (st == NULL || meta_state_changing(st))
    return false;
  for (int i = 0; i < WIPE_NODES; i++) {
    const struct meta_member *m = meta_state_find(st, core_sim_id(s, i));
    if (m == NULL || m->state != META_NORMAL)
      return false;
    const struct core *c = core_sim_core(s, i);
    if (c == NULL || ring_snapshot_version(core_ring(c)) < st->epoch)
      return false;
  }
  return true;
}

static void probe(struct sim *s, struct wipe_watch *w);

static void probe_done(struct sim *s, void *arg, int client) {
  struct wipe_watch *w = arg;
  const struct sim_result *r = sim_client_result(s, client);
  const struct sim_hop *op = &sim_history(s)->ops[r->hop];
  int k = w->next;
  w->busy = false;
  w->next = (w->next + 1) % PROBE_KEYS;
  if (op->op == SIM_OP_PUT) {
    /* Acked at W=ALL before the wipe: every replica holds it durably. */
    if (r->outcome == SIM_OK && w->wiped == 0)
      w->acked[k] = op->value;
    if (w->wiped == 0)
      probe(s, w); /* the next key at once */
    return;
  }
  w->reads++;
  if (r->outcome != SIM_OK) {
    w->failed++;
    return;
  }
  bool has = false;
  for (size_t v = 0; v < r->nvalues; v++)
    has |= r->values[v] == w->acked[k];
  w->found += has;
  if (!has && w->why[0] == '\0')
    snprintf(w->why, sizeof w->why,
             "an R=1 read of probe%d through the wiped n%d at %.3f s "
             "(wiped at %.3f s) answered %zu values without %" PRIu64
             ", acked at W=ALL before the wipe",
             k, w->victim, (double)sim_now(s) / 1e6, (double)w->wiped / 1e6,
             r->nvalues, w->acked[k]);
}

/* probe: writes the probe keys at W=ALL until the wipe, then reads the
 * acked ones at R=1 through the wiped node. */
static void probe(struct sim *s, struct wipe_watch *w) {
  if (w->busy)
    return;
  char key[32];
  struct sim_call call = {.key = key};
  if (w->wiped == 0) {
    /* Not before the cluster is formed: a node joining after a write's
     * quorum may miss it at R=1 (its stream and the write raced, and the
     * hint that would bring it was dropped: a divergence of this test),
     * which is no answer of the wiped node's. */
    if (w->formed == 0)
      return;
    for (int tries = 0; tries < PROBE_KEYS && w->acked[w->next] != 0; tries++)
      w->next = (w->next + 1) % PROBE_KEYS;
    if (w->acked[w->next] != 0)
      return; /* every probe key acked */
    probe_key(key, sizeof key, w->next);
    call.op = SIM_OP_PUT;
    call.value = w->next_value++;
    call.w = WIRE_ALL;
    int node = (int)chorus_prng_below(w->prng, WIPE_NODES);
    if (sim_request_start(s, PROBE_CLIENT, node, &call, probe_done, w) ==
        CHORUS_OK)
      w->busy = true;
    return;
  }
  for (int tries = 0; tries < PROBE_KEYS && w->acked[w->next] == 0; tries++)
    w->next = (w->next + 1) % PROBE_KEYS;
  if (w->acked[w->next] == 0)
    return; /* nothing was acked before the wipe */
  probe_key(key, sizeof key, w->next);
  call.op = SIM_OP_GET;
  call.r = 1;
  if (sim_request_start(s, PROBE_CLIENT, w->victim, &call, probe_done, w) ==
      CHORUS_OK)
    w->busy = true;
}

static void restart_victim(struct sim *s, void *arg) {
  struct wipe_watch *w = arg;
  w->restarted = true;
  if (sim_restart(s, w->victim) != CHORUS_OK)
    w->err = CHORUS_EINTERNAL;
}

/* victim_normal: the victim is a NORMAL member and no change is under
 * way: a disk lost now must be found out and replaced (a member that
 * loses its disk while joining or leaving is not handled yet: ARCHITECTURE,
 * "Not yet"). */
static bool victim_normal(struct sim *s, const struct wipe_watch *w) {
  const struct meta_state *st = core_sim_newest_meta(s, WIPE_NODES);
  const struct meta_member *m =
      st != NULL ? meta_state_find(st, core_sim_id(s, w->victim)) : NULL;
  return m != NULL && m->state == META_NORMAL && !meta_state_changing(st);
}

/* supervise: a node whose store failed exits (the fsyncgate rule; a
 * failed metadata write too, core_meta.c) and its supervisor starts it
 * again; the engine does so only after a failed sync step, so the
 * scenario does the rest, as meta_sim and change_sim do. */
static void supervise(struct sim *s, struct wipe_watch *w) {
  for (int i = 0; i < WIPE_NODES; i++)
    if (core_sim_exited(s, i)) {
      sim_kill(s, i, SIM_KEEP_RANDOM);
      if (sim_restart(s, i) != CHORUS_OK)
        w->err = CHORUS_EINTERNAL;
      w->restarts++;
    }
}

/* tick: every TICK_MS: restarts exited nodes, draws the wipe's time once
 * the victim is a NORMAL member, wipes, watches the victim's member,
 * probes. */
static void tick(struct sim *s, void *arg) {
  struct wipe_watch *w = arg;
  supervise(s, w);
  sim_time now = sim_now(s);
  sim_time heal = SIM_MS(50) + SIM_MS(WIPE_CHAOS_MS);
  if (w->formed == 0 && formed(s))
    w->formed = now;
  /* The wipe falls at a random time once the probes had PROBE_LEAD_MS to
   * be written; in a seed whose cluster forms late (founding under
   * faults), as soon as the victim is a NORMAL member in the last
   * LATE_WIPE_MS, with fewer probes or none. */
  sim_time last = heal - SIM_MS(WIPE_MARGIN_MS);
  if (w->wipe_at == 0 && now < last && w->formed != 0 &&
      now >= w->formed + SIM_MS(PROBE_LEAD_MS))
    w->wipe_at = now + chorus_prng_below(w->prng, last - now);
  else if (w->wipe_at == 0 && now < last &&
           now + SIM_MS(LATE_WIPE_MS) >= last && w->formed == 0) {
    /* Late: any NORMAL member will do (no probe was written yet). */
    for (int k = 0; k < WIPE_NODES && !victim_normal(s, w); k++)
      w->victim = (w->victim + 1) % WIPE_NODES;
    if (victim_normal(s, w))
      w->wipe_at = now;
  }
  if (w->wipe_at != 0 && w->wiped == 0 && now >= w->wipe_at) {
    w->wiped = now;
    sim_tracef(s, "test: n%d's disk wiped", w->victim);
    if (core_sim_wipe(s, w->victim) != CHORUS_OK ||
        sim_schedule(s, SIM_MS(100 + chorus_prng_below(w->prng, 1900)),
                     restart_victim, w) != CHORUS_OK)
      w->err = CHORUS_EINTERNAL;
  }
  const struct meta_state *st = core_sim_newest_meta(s, WIPE_NODES);
  const struct meta_member *m =
      st != NULL ? meta_state_find(st, core_sim_id(s, w->victim)) : NULL;
  w->replacing_seen |= w->wiped != 0 && m != NULL && m->state == META_REPLACING;
  probe(s, w);
  if (sim_schedule(s, SIM_MS(TICK_MS), tick, w) != CHORUS_OK)
    w->err = CHORUS_ENOMEM;
}

static void wipe_start(struct sim *s, void *arg) {
  struct wipe_watch *w = arg;
  w->prng = sim_prng(s, 0x3179e);
  w->victim = (int)chorus_prng_below(w->prng, WIPE_NODES);
  if (sim_schedule(s, SIM_MS(TICK_MS), tick, w) != CHORUS_OK)
    w->err = CHORUS_ENOMEM;
}

/* wipe_converged: the heal also waits for the wiped node to be a NORMAL
 * member again, every node's ring at that epoch (sim_converged then
 * counts it among the replicas again). */
static int wipe_converged(struct sim *s, void *arg) {
  struct wipe_watch *w = arg;
  if (w->wiped == 0)
    return 1;
  const struct meta_state *st = core_sim_newest_meta(s, WIPE_NODES);
  const struct meta_member *m =
      st != NULL ? meta_state_find(st, core_sim_id(s, w->victim)) : NULL;
  return m != NULL && m->state == META_NORMAL && w->replacing_seen && formed(s);
}

/* wipe_end: what the victim's member and the cluster came to (for a
 * failing seed's message). */
static void wipe_end(struct sim *s, void *arg) {
  struct wipe_watch *w = arg;
  const struct meta_state *st = core_sim_newest_meta(s, WIPE_NODES);
  const struct meta_member *m =
      st != NULL ? meta_state_find(st, core_sim_id(s, w->victim)) : NULL;
  snprintf(w->end, sizeof w->end,
           "n%d wiped at %.3f s, %s, now %s%s; cluster %s, converged %d",
           w->victim, (double)w->wiped / 1e6,
           w->replacing_seen ? "seen replacing" : "never seen replacing",
           m != NULL ? meta_member_state_name(m->state) : "no member",
           st != NULL && meta_state_changing(st) ? " (changing)" : "",
           formed(s) ? "formed" : "not formed", sim_converged(s));
  if (getenv("CHORUS_AAE_SIM_TRACE") == NULL)
    return;
  for (int i = 0; i < WIPE_NODES; i++) {
    const struct core *c = core_sim_core(s, i);
    const struct meta_member *mi =
        st != NULL ? meta_state_find(st, core_sim_id(s, i)) : NULL;
    printf("# n%d: %s, member %s, ring version %" PRIu64 " of epoch %" PRIu64
           "\n",
           i, c == NULL ? "down" : "up",
           mi != NULL ? meta_member_state_name(mi->state) : "none",
           c != NULL ? ring_snapshot_version(core_ring(c)) : 0,
           st != NULL ? st->epoch : 0);
  }
}

static void a_wiped_replica_is_refilled(void **state) {
  (void)state;
  struct core_sim_options opt;
  struct sim_run_config rc;
  configure(&rc, &opt, AAE_INTERVAL_MS);
  opt.metadata = 1;
  rc.chaos = SIM_MS(WIPE_CHAOS_MS);
  rc.hook_start = wipe_start;
  rc.hook_converged = wipe_converged;
  rc.hook_end = wipe_end;
  int n = seeds(WIPE_SIM_SEEDS), wiped = 0, failed = 0;
  uint64_t reads = 0, found = 0, probes = 0, restarts = 0;
  size_t ops = 0;
  struct heal_times t = {0};
  for (uint64_t seed = first_seed(); seed < first_seed() + (uint64_t)n;
       seed++) {
    struct wipe_watch w = {.next_value = PROBE_VALUE0};
    rc.hook_arg = &w;
    struct sim_run_result res;
    assert_int_equal(sim_run_seed(&rc, seed, &res), CHORUS_OK);
    const char *why = !res.ok              ? res.message
                      : w.err != CHORUS_OK ? chorus_strerror(w.err)
                      : w.why[0] != '\0'   ? w.why
                                           : NULL;
    if (why != NULL) {
      failed++;
      printf("# wiped replica seed %" PRIu64 ": FAILED: %s%s%s (%s)\n", seed,
             res.ok ? "" : res.checker, res.ok ? "" : ": ", why, w.end);
      continue;
    }
    wiped += w.wiped != 0;
    if (w.wiped == 0 && getenv("CHORUS_AAE_SIM_TRACE") != NULL)
      printf("# seed %" PRIu64 ": no wipe (%s)\n", seed, w.end);
    restarts += w.restarts;
    reads += w.reads;
    found += w.found;
    for (int k = 0; k < PROBE_KEYS; k++)
      probes += w.acked[k] != 0;
    ops += res.ops;
    if (w.wiped != 0)
      heal_times_add(&t, &res);
  }
  printf("# wiped replica: %d seeds, %d failed, %d with a node wiped, %" PRIu64
         " exited nodes restarted; %" PRIu64
         " keys acked at W=ALL before the wipe, %" PRIu64
         " R=1 reads of them through the wiped node, %" PRIu64
         " found, the rest failed (none not found); %zu ops\n",
         n, failed, wiped, restarts, probes, reads, found, ops);
  heal_times_print(&t, "wiped replica (the seeds with a wipe)");
  assert_int_equal(failed, 0);
  /* The scenario must do what it says: most seeds wipe a node. */
  assert_true(wiped * 4 >= n * 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(replicas_converge_by_anti_entropy),
      cmocka_unit_test(without_it_replicas_stay_diverged),
      cmocka_unit_test(a_wiped_replica_is_refilled),
  };
  /* CHORUS_AAE_SIM_ONLY=a_wiped_replica_is_refilled: one scenario. */
  if (getenv("CHORUS_AAE_SIM_ONLY") != NULL)
    cmocka_set_test_filter(getenv("CHORUS_AAE_SIM_ONLY"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
