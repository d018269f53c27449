/* test_cas_sim.c: compare-and-set (issue 23: per-key Paxos through the
 * node core) on the simulator under partitions, crashes with restarts from
 * durable state, message loss, store faults and clock skew, every key's
 * history judged linearizable by lin_check (tests/lin).
 *
 * HOW A SEED RUNS
 *
 *   1. A cluster of 3 nodes (even seeds) or 5 (odd seeds: N=3, so CAS
 *      requests landing on a non-replica are forwarded), with this seed's
 *      swarm faults (sim_faults_draw below the brutal maxima: each knob on
 *      or off, then a rate).
 *   2. Chaos (CHAOS_MS of virtual time): CLIENTS clients race on KEYS
 *      keys, each request through a random node: serial reads, if-absent,
 *      if-value increments from the value the client last saw, and
 *      delete-if-value of it; if-match increments and deletes with the
 *      context that came with that value (an applied one is judged as an
 *      if-value of it, a refused one as the read it answers; its answer's
 *      context must be later when applied, another when refused). The
 *      nemesis partitions, clogs, crashes (the
 *      node restarts from what its store made durable), fails fsyncs and
 *      jumps clocks.
 *   3. Heal: the nemesis stops, every node restarts, the clients' last
 *      requests finish; then a serial read of every key through every node
 *      (liveness: each must answer within a few tries) joins the history.
 *   4. lin_check with lin_cas_register, per key. An operation whose outcome
 *      is unknown (ETIMEDOUT "may or may not have been applied", or no
 *      answer within the client's 2 s) is pending: it may have taken effect
 *      at any time after its invocation, or never. One that failed before
 *      anything was proposed (a refusal, a node that is down) is left out.
 *
 * Seeds: CAS_SIM_SEEDS by default (under a minute under ASan), 1,000 with
 * CHORUS_LONG_TESTS, or CHORUS_CAS_SIM_SEEDS; CHORUS_CAS_SIM_FIRST moves
 * the first seed, CHORUS_CAS_SIM_TRACE=1 prints the trace. The summary
 * line gives the operations, the share whose outcome was unknown (the
 * "known weakness" of docs/ARCHITECTURE.md, Per-key Paxos) and the
 * checker's steps. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "core_sim_adapter.h"
#include "lin.h"
#include "sim.h"
#include "wire.h"

#ifdef CHORUS_LONG_TESTS
#define CAS_SIM_SEEDS 1000
#else
#define CAS_SIM_SEEDS 100
#endif
#define CLIENTS 4
#define KEYS 3
#define CHAOS_MS 4000
#define LIN_BUDGET 20000000 /* search steps per key */
/* Final reads: tries 500 ms apart. A coordinator refuses a ballot further
 * ahead of its HLC than the drift bound (5 s; repl_paxos.c next_ballot,
 * CHORUS_ECLOCK), and swarm offsets reach +-5 s, so a node far behind
 * waits for its clock to come within the bound of the last ballot made by
 * a node far ahead: up to about 5 s. */
#define FINAL_TRIES 30

/* One seed's run: the clients' state and the history for lin_check. */
struct run {
  struct sim *s;
  struct chorus_prng *prng;
  int stop;
  int busy[CLIENTS];
  int64_t seen[CLIENTS][KEYS]; /* the value each client last saw */
  /* If-match: the context that came with it (zeros: never written), and
   * whether the request in flight is an if-match (its context sent). */
  uint8_t ctx[CLIENTS][KEYS][WIRE_CAS_CONTEXT_LEN];
  uint8_t sent_ctx[CLIENTS][WIRE_CAS_CONTEXT_LEN];
  int match[CLIENTS];
  struct lin_op cur[CLIENTS]; /* the operation in flight */
  struct lin_history hist;
  int err;
};

/* Totals over every seed, for the summary line. */
struct totals {
  uint64_t ops, applied, not_applied, reads, unknown, failed, steps;
  uint64_t cas_unknown, cas_ops; /* updates only: the known weakness */
  uint64_t unanswered; /* unknown because no answer came within 2 s (the
                        * rest: the coordinator said "may or may not") */
  uint64_t match_applied, match_refused; /* if-match updates answered */
  uint64_t ctx_wrong; /* an if-match whose answer's context contradicts its
                       * outcome (must stay 0) */
  int seeds, failures, undecided;
};

static void client_next(struct sim *s, void *arg);

static void push(struct run *r, const struct lin_op *op) {
  if (lin_history_push(&r->hist, op) != 0)
    r->err = CHORUS_ENOMEM;
}

static int64_t found_value(const struct sim_result *res) {
  return res->nvalues > 0 ? (int64_t)res->values[0] : LIN_ABSENT;
}

/* record: the completed request of client @c into the history (and the
 * client's view of its key). */
static void record(struct run *r, int c, const struct sim_result *res,
                   struct totals *t) {
  struct lin_op op = r->cur[c];
  int k = (int)op.key;
  switch (res->outcome) {
  case SIM_OK:
    op.ret = sim_now(r->s);
    if (res->clen == WIRE_CAS_CONTEXT_LEN)
      memcpy(r->ctx[c][k], res->context, WIRE_CAS_CONTEXT_LEN);
    else
      t->ctx_wrong++; /* every CAS answer carries one */
    if (r->match[c]) {
      /* Applied: a new version, so a later context (ballots grow);
       * refused: another version than the one named. Judged as an
       * if-value of the value that came with the context when applied;
       * refused, only as the read it is (the value may be equal at
       * another version). */
      int cmp = memcmp(r->ctx[c][k], r->sent_ctx[c], WIRE_CAS_CONTEXT_LEN);
      bool applied = res->counter != 0;
      if (applied ? cmp <= 0 : cmp == 0)
        t->ctx_wrong++;
      if (applied) {
        t->match_applied++;
      } else {
        t->match_refused++;
        op.kind = LIN_READ;
        op.in[0] = op.in[1] = 0;
      }
    }
    if (op.kind == LIN_READ) {
      op.out = found_value(res);
      r->seen[c][k] = op.out;
      t->reads++;
    } else {
      op.out = res->counter != 0;
      /* Applied: the value is now the new one; not applied: the reply
       * carries the value the condition was judged on. */
      r->seen[c][k] = op.out ? op.in[1] : found_value(res);
      if (op.out)
        t->applied++;
      else
        t->not_applied++;
      t->cas_ops++;
    }
    push(r, &op);
    break;
  case SIM_UNKNOWN:
    op.ret = LIN_PENDING; /* may take effect at any time after call */
    t->unknown++;
    if (sim_now(r->s) - op.call >= SIM_MS(2000))
      t->unanswered++;
    if (op.kind != LIN_READ) {
      t->cas_unknown++;
      t->cas_ops++;
    }
    push(r, &op);
    break;
  default:
    t->failed++; /* nothing proposed: no effect, left out */
    break;
  }
  t->ops++;
}

static struct totals *g_totals;

static void on_done(struct sim *s, void *arg, int c) {
  struct run *r = arg;
  r->busy[c] = 0;
  record(r, c, sim_client_result(s, c), g_totals);
  if (r->stop)
    return;
  if (sim_schedule(s, chorus_prng_below(r->prng, SIM_MS(30)), client_next, r) !=
      CHORUS_OK)
    r->err = CHORUS_ENOMEM;
}

static void client_start(struct sim *s, struct run *r, int c) {
  if (r->stop || r->busy[c])
    return;
  struct chorus_prng *p = r->prng;
  int k = (int)chorus_prng_below(p, KEYS);
  char key[16];
  snprintf(key, sizeof key, "cas%d", k);
  int64_t seen = r->seen[c][k];
  uint64_t dice = chorus_prng_below(p, 100);
  struct sim_call call = {.op = SIM_OP_CAS, .key = key};
  struct lin_op op = {.key = (uint64_t)k, .client = (uint32_t)c};
  r->match[c] = 0;
  if (dice >= 80) {
    /* If-match with the context last seen (current or stale by now): an
     * increment, a new chain on an absent key, or (1 in 4) a delete. */
    bool del = dice >= 95;
    call.cas_cond = del ? WIRE_CAS_DELETE_IF_MATCH : WIRE_CAS_IF_MATCH;
    op.kind = LIN_CAS;
    op.in[0] = seen;
    op.in[1] = del ? LIN_ABSENT
               : seen != LIN_ABSENT
                   ? seen + 1
                   : (int64_t)(c + 1) * 1000000 +
                         (int64_t)chorus_prng_below(p, 1000) * 1000;
    memcpy(r->sent_ctx[c], r->ctx[c][k], WIRE_CAS_CONTEXT_LEN);
    call.context = r->sent_ctx[c];
    call.clen = WIRE_CAS_CONTEXT_LEN;
    r->match[c] = 1;
  } else if (dice < 25) {
    call.cas_cond = WIRE_CAS_READ;
    op.kind = LIN_READ;
  } else if (seen == LIN_ABSENT || dice < 35) {
    /* If-absent: a new chain starts at a value of this client's. */
    call.cas_cond = WIRE_CAS_IF_ABSENT;
    op.kind = LIN_CAS;
    op.in[0] = LIN_ABSENT;
    op.in[1] =
        (int64_t)(c + 1) * 1000000 + (int64_t)chorus_prng_below(p, 1000) * 1000;
  } else if (dice < 45) {
    call.cas_cond = WIRE_CAS_DELETE_IF_VALUE;
    op.kind = LIN_CAS;
    op.in[0] = seen;
    op.in[1] = LIN_ABSENT;
  } else {
    call.cas_cond = WIRE_CAS_IF_VALUE; /* an increment of what was seen */
    op.kind = LIN_CAS;
    op.in[0] = seen;
    op.in[1] = seen + 1;
  }
  call.expected = (uint64_t)op.in[0];
  call.value = (uint64_t)op.in[1];
  op.call = sim_now(s);
  r->cur[c] = op;
  int node = (int)chorus_prng_below(p, (uint64_t)sim_nodes(s));
  int rc = sim_request_start(s, c, node, &call, on_done, r);
  if (rc != CHORUS_OK) {
    r->err = rc;
    return;
  }
  r->busy[c] = 1;
}

/* client_next: every idle client starts its next request. */
static void client_next(struct sim *s, void *arg) {
  struct run *r = arg;
  for (int c = 0; c < CLIENTS; c++)
    if (!r->busy[c])
      client_start(s, r, c);
}

static int clients_idle(struct sim *s, void *arg) {
  (void)s;
  struct run *r = arg;
  for (int c = 0; c < CLIENTS; c++)
    if (r->busy[c])
      return 0;
  return 1;
}

static unsigned env_uint(const char *name, unsigned def) {
  const char *e = getenv(name);
  return e != NULL && atoi(e) > 0 ? (unsigned)atoi(e) : def;
}

/* final_reads: after the heal, a serial read of every key through every
 * node; each must answer within FINAL_TRIES (Paxos is live once a majority
 * talks). Returns 0, or 1 with @msg. */
static int final_reads(struct run *r, struct totals *t, char *msg, size_t cap) {
  for (int k = 0; k < KEYS; k++) {
    char key[16];
    snprintf(key, sizeof key, "cas%d", k);
    for (int node = 0; node < sim_nodes(r->s); node++) {
      int ok = 0;
      for (int tries = 0; tries < FINAL_TRIES && !ok; tries++) {
        struct sim_call call = {
            .op = SIM_OP_CAS, .key = key, .cas_cond = WIRE_CAS_READ};
        struct lin_op op = {.key = (uint64_t)k,
                            .client = CLIENTS,
                            .kind = LIN_READ,
                            .call = sim_now(r->s)};
        const struct sim_result *res = sim_call(r->s, node, &call);
        if (res == NULL)
          return snprintf(msg, cap, "the run broke"), 1;
        if (res->outcome == SIM_OK) {
          op.ret = sim_now(r->s);
          op.out = found_value(res);
          push(r, &op);
          t->reads++;
          ok = 1;
        } else if (res->outcome == SIM_UNKNOWN) {
          op.ret = LIN_PENDING;
          push(r, &op);
        }
        if (!ok && sim_run_for(r->s, SIM_MS(500)) != CHORUS_OK)
          return snprintf(msg, cap, "the run broke"), 1;
      }
      if (!ok)
        return snprintf(msg, cap,
                        "liveness: no serial read of %s through n%d answered "
                        "after the heal",
                        key, node),
               1;
    }
  }
  return 0;
}

static void describe_fail(const struct run *r, const struct lin_result *res) {
  fprintf(stderr, "#   %s\n", res->message);
  size_t shown = 0;
  for (size_t i = 0; i < r->hist.n && shown < 60; i++) {
    if (r->hist.ops[i].key != res->key)
      continue;
    char d[96];
    lin_cas_register.describe(&r->hist.ops[i], d, sizeof d);
    if (r->hist.ops[i].ret == LIN_PENDING)
      fprintf(stderr, "#   c%u [%" PRIu64 ", -] %s\n", r->hist.ops[i].client,
              r->hist.ops[i].call, d);
    else
      fprintf(stderr, "#   c%u [%" PRIu64 ", %" PRIu64 "] %s\n",
              r->hist.ops[i].client, r->hist.ops[i].call, r->hist.ops[i].ret,
              d);
    shown++;
  }
}

/* run_seed: one seed; 0 when linearizable and live, 1 on a violation
 * (printed with its seed), -1 when the checker's budget ran out. */
static int run_seed(uint64_t seed, struct totals *t) {
  const struct core_sim_preset *p =
      core_sim_preset_find(seed % 2 == 0 ? "rw22" : "n5");
  assert_non_null(p);
  struct sim_run_config rc;
  core_sim_preset_apply(&rc, p);
  struct sim_config cfg = rc.sim;
  cfg.seed = seed;
  cfg.verbose = getenv("CHORUS_CAS_SIM_TRACE") != NULL;
  struct chorus_prng base, swarm;
  chorus_prng_seed(&base, seed);
  chorus_prng_derive(&swarm, &base, 0x5a4a3);
  sim_faults_draw(&cfg.faults, &rc.sim.faults, &swarm);
  struct sim *s;
  assert_int_equal(sim_new(&cfg, &s), CHORUS_OK);
  struct run r = {.s = s};
  r.prng = sim_prng(s, 0xca5);
  for (int c = 0; c < CLIENTS; c++)
    for (int k = 0; k < KEYS; k++)
      r.seen[c][k] = LIN_ABSENT;
  g_totals = t;
  char msg[256] = "";
  int verdict = 0;
  int rc_ = sim_run_for(s, SIM_MS(50));
  if (rc_ == CHORUS_OK)
    rc_ = sim_nemesis_start(s);
  if (rc_ == CHORUS_OK)
    rc_ = sim_schedule(s, SIM_MS(1), client_next, &r);
  if (rc_ == CHORUS_OK)
    rc_ = sim_run_for(s, SIM_MS(CHAOS_MS));
  r.stop = 1;
  if (rc_ == CHORUS_OK)
    rc_ = sim_nemesis_stop(s);
  if (rc_ == CHORUS_OK) {
    int idle = sim_step_until(s, clients_idle, &r, SIM_MS(5000));
    rc_ = idle < 0 ? idle : CHORUS_OK;
  }
  /* Let SWIM see every restarted node alive again before the reads. */
  if (rc_ == CHORUS_OK)
    rc_ = sim_run_for(s, SIM_MS(2000));
  if (rc_ == CHORUS_OK && r.err == CHORUS_OK)
    verdict = final_reads(&r, t, msg, sizeof msg);
  if (rc_ != CHORUS_OK) {
    const char *m;
    sim_failure(s, &m);
    snprintf(msg, sizeof msg, "protocol error: %s",
             *m ? m : chorus_strerror(rc_));
    verdict = 1;
  }
  assert_int_equal(r.err, CHORUS_OK);
  if (verdict == 0) {
    struct lin_result res;
    lin_check(&lin_cas_register, r.hist.ops, r.hist.n, LIN_BUDGET, &res);
    t->steps += res.steps;
    if (res.verdict == LIN_UNKNOWN) {
      fprintf(stderr, "# seed %" PRIu64 ": the checker's budget ran out\n",
              seed);
      verdict = -1;
    } else if (res.verdict != LIN_OK) {
      snprintf(msg, sizeof msg, "key cas%" PRIu64 " not linearizable", res.key);
      describe_fail(&r, &res);
      verdict = 1;
    }
  }
  if (verdict == 1) {
    const struct sim_faults *f = sim_faults(s);
    fprintf(stderr,
            "cas-sim: seed %" PRIu64 " FAILED (%s): %s\n"
            "  faults: drop %.3f partition %.2f clog %.2f crash %.2f "
            "store %.2f jump %.2f/s, drift %d ppm, offset %" PRIu64 " ms\n"
            "  reproduce: CHORUS_CAS_SIM_FIRST=%" PRIu64
            " CHORUS_CAS_SIM_SEEDS=1 test_cas_sim\n",
            seed, p->name, msg, f->drop, f->partition, f->clog, f->crash,
            f->store_fault, f->clock_jump, f->drift_ppm, f->offset_ms, seed);
    sim_trace_dump(s, stderr, 30);
  }
  lin_history_free(&r.hist);
  sim_free(s);
  return verdict;
}

static void cas_histories_are_linearizable(void **state) {
  (void)state;
  unsigned seeds = env_uint("CHORUS_CAS_SIM_SEEDS", CAS_SIM_SEEDS);
  unsigned first = env_uint("CHORUS_CAS_SIM_FIRST", 1);
  struct totals t = {0};
  for (unsigned i = 0; i < seeds; i++) {
    int v = run_seed(first + i, &t);
    t.seeds++;
    if (v > 0)
      t.failures++;
    else if (v < 0)
      t.undecided++;
  }
  print_message(
      "# cas-sim: %d seeds, %d failed, %d undecided; %" PRIu64
      " operations: %" PRIu64 " applied, %" PRIu64 " not applied, %" PRIu64
      " serial reads, %" PRIu64 " unknown (%" PRIu64
      " of them unanswered), %" PRIu64
      " failed before proposing; unknown among updates %.1f %% (%" PRIu64
      " of %" PRIu64 "); if-match %" PRIu64 " applied, %" PRIu64
      " refused; %" PRIu64 " checker steps\n",
      t.seeds, t.failures, t.undecided, t.ops, t.applied, t.not_applied,
      t.reads, t.unknown, t.unanswered, t.failed,
      t.cas_ops ? 100.0 * (double)t.cas_unknown / (double)t.cas_ops : 0.0,
      t.cas_unknown, t.cas_ops, t.match_applied, t.match_refused, t.steps);
  assert_int_equal(t.failures, 0);
  assert_int_equal(t.undecided, 0);
  assert_int_equal(t.ctx_wrong, 0);
  assert_true(t.match_applied > 0 && t.match_refused > 0);
  assert_true(t.applied > (uint64_t)t.seeds); /* the workload did work */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cas_histories_are_linearizable),
  };
  return cmocka_run_group_tests_name("cas_sim", tests, NULL, NULL);
}
