/* test_lock_sim.c: locks and fenced writes (issue 23) through the node
 * core on the simulator, under the same swarm faults and crash schedule
 * as test_cas_sim: partitions, clogs, loss, crashes restarting from
 * durable state, store faults, clock offsets, drift and jumps.
 *
 * HOW A SEED RUNS
 *
 *   1. A cluster of 3 nodes (even seeds) or 5 (odd seeds: N=3, so LOCK
 *      requests landing on a non-replica are forwarded), this seed's
 *      swarm faults, and the lock skew allowance (chorusd --lock-skew-ms)
 *      chosen from them: SKEW below.
 *   2. Chaos (CHAOS_MS): CLIENTS clients, each request through a random
 *      node, compete for one lock (TTL_MS leases). A client that holds
 *      (believes it does) writes the data key with FENCED_PUT and its
 *      token, renews, releases, reads the key (a serial CAS read), or
 *      "pauses" (Kleppmann's GC pause) past its lease and then writes
 *      with its stale token; one that does not hold acquires. Each client
 *      has its own clock drift, as the nodes do (an offset would not
 *      matter: a client only measures durations).
 *   3. Heal: the nemesis stops, every node restarts, the clients' last
 *      requests finish; a serial read of the data key through every node
 *      (each must answer within FINAL_TRIES) and a lock STATUS.
 *   4. The checkers below. Only acknowledged outcomes are judged; an
 *      unknown one (ETIMEDOUT "may or may not", no answer in 2 s) may
 *      have applied at any time after its invocation, or never.
 *
 * THE CHECKERS
 *
 *   tokens     every applied ACQUIRE's token is unique, and one that
 *              completed before another was invoked is lower (tokens
 *              strictly increase in real time).
 *   exclusion  no two holders' leases overlap. A holder's lease is the
 *              interval its client believes in, as a careful client
 *              (docs/ARCHITECTURE.md, Locks) counts it: from the ACQUIRE's
 *              answer to the ACQUIRE's *invocation* plus the TTL measured
 *              on the client's drifting clock; an applied RENEW extends it
 *              to the RENEW's invocation plus the TTL (a new interval from
 *              its answer if the old one had lapsed); a RELEASE ends it at
 *              its invocation. Why sound: let D bound every node's wall
 *              clock error |wall - true time| (offset, jumps, drift). A
 *              coordinator's lease clock is its HLC's physical part: at
 *              least its own wall clock, at most the largest wall clock
 *              it has heard of, so within D of true time. The ACQUIRE (or
 *              RENEW) takes its clock when it begins on its coordinator,
 *              at true time t0 >= its invocation, and stamps expires >=
 *              t0 - D + TTL. The next ACQUIRE applies only on a
 *              coordinator whose clock reads >= expires + skew when it
 *              begins, so at true time t1 >= t0 + TTL + skew - 2D, and
 *              its holder believes only from its answer, after t1. With
 *              skew >= 2D + the client's drift over a TTL, t1 is past the
 *              first holder's invocation plus its believed TTL. (An
 *              ACQUIRE whose Paxos round comes after the next one's is
 *              the next one: the argument holds with the roles swapped.)
 *              So the check is made when the seed's clocks stayed within
 *              the allowance (sim_clock_error_max plus drift); a seed
 *              whose clocks wandered further (two jumps the same way on
 *              one node) is counted, not judged: leases promise no
 *              mutual exclusion there (fencing still does, and is still
 *              judged).
 *   fencing    the data key's history (FENCED_PUTs and serial reads) is
 *              linearizable against a fenced register: a write with
 *              token t applies iff t >= the highest token applied before
 *              it, and then sets the value; a read answers the value. So
 *              a write with token t never applies after one with token
 *              > t applied, and its value never shows up in a later read.
 *              A FENCED refusal names a highest token above the write's.
 *   agreement  after the heal a round of serial reads of the data key
 *              through every node answers one value (within FINAL_ROUNDS
 *              rounds: final_checks says why one may not), and the lock's
 *              STATUS names a token at least the highest acquired.
 *
 * SKEW. The allowance each seed's nodes run with: 2 x (the drawn offset
 * bound + one clock jump's worst, 5 s, when jumps are on + a drift
 * margin). Offsets and single jumps are covered; a seed whose clocks
 * wander further is not judged for exclusion (counted in the summary).
 *
 * THE PLANTED BUGS (the checkers bite): the second test runs the nodes
 * with no allowance (lock_skew_ms 0) while the checker still judges with
 * SKEW: seeds with clock offsets or drift show overlapping holders; the
 * third sends every other FENCED_PUT with its token + 1 (a resource
 * comparing off by one): the fenced register breaks. Each runs PLANT_SEEDS
 * seeds and asserts some fail; CHORUS_LOCK_SIM_PLANT=skew or =fence runs the
 * first test's seeds with one (CHORUS_LOCK_SIM_VERBOSE=1 names each
 * seed's violation).
 *
 * Seeds: LOCK_SIM_SEEDS by default, 1,000 with CHORUS_LONG_TESTS, or
 * CHORUS_LOCK_SIM_SEEDS; CHORUS_LOCK_SIM_FIRST moves the first seed,
 * CHORUS_LOCK_SIM_TRACE=1 prints the trace. */
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
#define LOCK_SIM_SEEDS 1000
#else
#define LOCK_SIM_SEEDS 30
#endif
#define PLANT_SEEDS 10
#define CLIENTS 4
#define CHAOS_MS 4000
#define TTL_MS 150
#define JUMP_WORST_MS 5000 /* sim.c's nemesis: jumps of -5 s..+5 s */
#define LIN_BUDGET 20000000
#define FINAL_TRIES 30 /* 500 ms apart: see test_cas_sim's FINAL_TRIES */
#define FINAL_ROUNDS 4
#define LOCK_KEY WIRE_LOCK_PREFIX "L"
#define LOCK_NAME "L"
#define DATA_KEY "fdata"
#define MAX_HOLDS 4096

/* The data key's model: a fenced register. v[0] the highest token an
 * applied write carried, v[1] the value (LIN_ABSENT: none). */
enum { F_READ = LIN_READ, F_PUT = 40 };

static void fr_init(struct lin_state *s) {
  memset(s, 0, sizeof *s);
  s->v[1] = LIN_ABSENT;
}

static bool fr_step(const struct lin_state *s, const struct lin_op *op,
                    bool known, struct lin_state *next) {
  *next = *s;
  if (op->kind == F_READ)
    return !known || op->out == s->v[1];
  bool applies = op->in[0] >= s->v[0];
  if (known && (op->out != 0) != applies)
    return false;
  if (applies) {
    next->v[0] = op->in[0];
    next->v[1] = op->in[1];
  }
  return true;
}

static void fr_describe(const struct lin_op *op, char *buf, size_t cap) {
  if (op->kind == F_READ)
    snprintf(buf, cap, "read = %" PRId64, op->out);
  else
    snprintf(buf, cap, "fenced put(token %" PRId64 ", %" PRId64 ") = %s",
             op->in[0], op->in[1], op->out ? "applied" : "refused");
}

static const struct lin_model fenced_register = {"fenced register", fr_init,
                                                 fr_step, fr_describe};

/* A holder's belief: [from, to) in virtual time, under @token. */
struct hold {
  uint64_t token;
  sim_time from, to;
  int client;
};

/* An applied ACQUIRE. */
struct acq {
  uint64_t token;
  sim_time call, ret;
  int client;
};

enum cstate { C_IDLE = 0, C_HOLDING };
enum plant { PLANT_NONE = 0, PLANT_SKEW, PLANT_FENCE };

struct client {
  int busy;
  enum cstate st;
  uint64_t token;  /* held, or last held (stale) */
  int hold;        /* index into holds of the current belief, -1 none */
  int64_t drift;   /* ppm of its clock */
  int op;          /* the request in flight: WIRE_LOCK_* or -1 (read) */
  sim_time call;   /* its invocation */
  int stale_write; /* the request in flight is a paused holder's write */
  uint64_t seq;    /* its writes' values */
  struct lin_op cur;
  struct run *run;
  int index;
};

struct totals {
  uint64_t acquired, acq_refused, renewed, released, puts_applied, puts_refused,
      stale_puts, stale_applied, unknown, reads, holds;
  uint64_t takeovers; /* acquisitions whose previous token was never seen
                       * released: its lease ran out (or the release's
                       * outcome was unknown) */
  int seeds, failures, undecided, unjudged;
};

struct run {
  struct sim *s;
  struct chorus_prng *prng;
  int stop;
  struct client c[CLIENTS];
  struct hold holds[MAX_HOLDS];
  int nholds;
  struct acq acqs[MAX_HOLDS];
  int nacqs;
  uint64_t rel[MAX_HOLDS]; /* tokens released (applied) */
  int nrel;
  struct lin_history hist;
  uint64_t max_token_invoked; /* fenced puts: the highest token sent */
  int err;
  char msg[256];
  int bad;   /* a checker failed while running */
  int plant; /* enum plant */
  struct totals *t;
};

static void client_next(struct sim *s, void *arg);
struct run;

static void push(struct run *r, const struct lin_op *op) {
  if (lin_history_push(&r->hist, op) != 0)
    r->err = CHORUS_ENOMEM;
}

/* ttl_end: when a lease of TTL_MS counted by @c's clock from @from ends
 * in virtual time (a slow clock counts it later). */
static sim_time ttl_end(const struct client *c, sim_time from) {
  uint64_t us = (uint64_t)TTL_MS * 1000u;
  return from + (us * 1000000u + (uint64_t)(1000000 + c->drift) - 1) /
                    (uint64_t)(1000000 + c->drift);
}

/* believes: whether @c believes it holds the lock now. */
static int believes(const struct run *r, const struct client *c) {
  return c->st == C_HOLDING && c->hold >= 0 &&
         sim_now(r->s) < r->holds[c->hold].to;
}

/* fail_now: a checker run during the chaos failed (@what, with @a and
 * @b). */
static void fail_now(struct run *r, const char *what, uint64_t a, uint64_t b) {
  if (r->bad)
    return;
  r->bad = 1;
  snprintf(r->msg, sizeof r->msg, "%s (%" PRIu64 ", %" PRIu64 ")", what, a, b);
}

static int new_hold(struct run *r, int ci, uint64_t token, sim_time from,
                    sim_time to) {
  if (r->nholds == MAX_HOLDS)
    return -1;
  r->holds[r->nholds] = (struct hold){token, from, to, ci};
  r->t->holds++;
  return r->nholds++;
}

static void on_done(struct sim *s, void *arg, int ci) {
  struct run *r = arg;
  struct client *c = &r->c[ci];
  const struct sim_result *res = sim_client_result(s, ci);
  sim_time now = sim_now(s);
  c->busy = 0;
  int applied = res->outcome == SIM_OK && res->counter != 0;
  if (res->outcome == SIM_UNKNOWN)
    r->t->unknown++;
  switch (c->op) {
  case WIRE_LOCK_ACQUIRE:
    if (applied) {
      r->t->acquired++;
      if (r->nacqs < MAX_HOLDS)
        r->acqs[r->nacqs++] = (struct acq){res->lock.token, c->call, now, ci};
      c->st = C_HOLDING;
      c->token = res->lock.token;
      c->hold = new_hold(r, ci, c->token, now, ttl_end(c, c->call));
    } else if (res->outcome == SIM_OK) {
      r->t->acq_refused++;
      if (res->lock.refusal != WIRE_LOCK_HELD)
        fail_now(
            r,
            "an ACQUIRE refused for another reason than HELD (refusal, token)",
            (uint64_t)res->lock.refusal, res->lock.token);
    }
    break;
  case WIRE_LOCK_RENEW:
    if (applied) {
      r->t->renewed++;
      if (res->lock.token != c->token)
        fail_now(r, "a RENEW answered another token (sent, answered)", c->token,
                 res->lock.token);
      sim_time to = ttl_end(c, c->call);
      if (c->st == C_HOLDING && c->hold >= 0 && r->holds[c->hold].to > now) {
        if (to > r->holds[c->hold].to)
          r->holds[c->hold].to = to;
      } else {
        c->hold = new_hold(r, ci, c->token, now, to);
      }
      c->st = C_HOLDING;
    }
    break;
  case WIRE_LOCK_RELEASE:
    if (applied) {
      r->t->released++;
      if (r->nrel < MAX_HOLDS)
        r->rel[r->nrel++] = c->token;
    }
    break;
  case WIRE_LOCK_FENCED_PUT: {
    struct lin_op op = c->cur;
    if (res->outcome == SIM_OK) {
      op.ret = now;
      op.out = applied;
      if (applied) {
        r->t->puts_applied++;
        r->t->stale_applied += c->stale_write;
      } else {
        r->t->puts_refused++;
        if (res->lock.refusal != WIRE_LOCK_FENCED ||
            res->lock.token <= c->token)
          fail_now(
              r, "a FENCED_PUT refused not naming a higher token (sent, named)",
              c->token, res->lock.token);
        else if (res->lock.token > r->max_token_invoked &&
                 r->plant != PLANT_FENCE) /* left to the register's check */
          fail_now(r, "a fence of a token no write sent (named, highest sent)",
                   res->lock.token, r->max_token_invoked);
      }
      push(r, &op);
    } else if (res->outcome == SIM_UNKNOWN) {
      op.ret = LIN_PENDING;
      push(r, &op);
    }
    break;
  }
  default: /* a serial read of the data key */
    if (res->outcome == SIM_OK) {
      struct lin_op op = c->cur;
      op.ret = now;
      op.out = res->nvalues > 0 ? (int64_t)res->values[0] : LIN_ABSENT;
      push(r, &op);
      r->t->reads++;
    } else if (res->outcome == SIM_UNKNOWN) {
      struct lin_op op = c->cur;
      op.ret = LIN_PENDING; /* a serial read may finish a proposal */
      push(r, &op);
    }
    break;
  }
  if (r->stop)
    return;
  /* Refused while another holds: wait a while before asking again. */
  sim_time pause = c->op == WIRE_LOCK_ACQUIRE && !applied
                       ? chorus_prng_below(r->prng, SIM_MS(TTL_MS))
                       : chorus_prng_below(r->prng, SIM_MS(30));
  if (sim_schedule(s, pause, client_next, r) != CHORUS_OK)
    r->err = CHORUS_ENOMEM;
}

static void start(struct run *r, int ci, int op) {
  struct client *c = &r->c[ci];
  struct sim_call call = {.op = SIM_OP_LOCK, .key = LOCK_KEY, .lock_op = op};
  c->op = op;
  c->call = sim_now(r->s);
  switch (op) {
  case WIRE_LOCK_ACQUIRE:
    call.ttl_ms = TTL_MS;
    break;
  case WIRE_LOCK_RENEW:
    call.ttl_ms = TTL_MS;
    call.token = c->token;
    break;
  case WIRE_LOCK_RELEASE:
    call.token = c->token;
    /* It stops acting as the holder when it sends the release. */
    if (c->hold >= 0 && r->holds[c->hold].to > c->call)
      r->holds[c->hold].to = c->call;
    c->st = C_IDLE;
    c->hold = -1;
    break;
  case WIRE_LOCK_FENCED_PUT: {
    call.key = DATA_KEY;
    call.lock_name = LOCK_NAME;
    call.token = c->token;
    call.value = (uint64_t)(ci + 1) * 1000000u + ++c->seq;
    if (c->token > r->max_token_invoked)
      r->max_token_invoked = c->token;
    c->cur = (struct lin_op){.key = 0,
                             .call = c->call,
                             .kind = F_PUT,
                             .in = {(int64_t)c->token, (int64_t)call.value},
                             .client = (uint32_t)ci};
    break;
  }
  default: /* a serial read */
    call = (struct sim_call){
        .op = SIM_OP_CAS, .key = DATA_KEY, .cas_cond = WIRE_CAS_READ};
    c->cur = (struct lin_op){
        .key = 0, .call = c->call, .kind = F_READ, .client = (uint32_t)ci};
    break;
  }
  int node = (int)chorus_prng_below(r->prng, (uint64_t)sim_nodes(r->s));
  int rc = sim_request_start(r->s, ci, node, &call, on_done, r);
  if (rc != CHORUS_OK) {
    r->err = rc;
    return;
  }
  c->busy = 1;
}

/* pause_over: a paused holder wakes past its lease and writes with the
 * token it still has (the fence must refuse it once a later holder
 * wrote). */
static void pause_over(struct sim *s, void *arg) {
  (void)s;
  struct client *c = arg;
  struct run *r = c->run;
  c->busy = 0;
  c->st = C_IDLE;
  c->hold = -1;
  if (r->stop)
    return;
  c->stale_write = 1;
  r->t->stale_puts++;
  start(r, c->index, WIRE_LOCK_FENCED_PUT);
}

static void client_start(struct run *r, int ci) {
  struct client *c = &r->c[ci];
  if (r->stop || c->busy)
    return;
  c->stale_write = 0;
  uint64_t dice = chorus_prng_below(r->prng, 100);
  if (c->st == C_HOLDING && !believes(r, c)) {
    /* Its lease ran out while it was busy: it knows, and stops. */
    c->st = C_IDLE;
    c->hold = -1;
  }
  if (c->st != C_HOLDING) {
    if (dice < 15)
      start(r, ci, -1); /* a serial read */
    else if (dice < 22 && c->token != 0) {
      c->stale_write = 1; /* an old token, long after */
      r->t->stale_puts++;
      start(r, ci, WIRE_LOCK_FENCED_PUT);
    } else
      start(r, ci, WIRE_LOCK_ACQUIRE);
    return;
  }
  if (dice < 45) {
    start(r, ci, WIRE_LOCK_FENCED_PUT);
  } else if (dice < 60) {
    start(r, ci, WIRE_LOCK_RENEW);
  } else if (dice < 75) {
    start(r, ci, WIRE_LOCK_RELEASE);
  } else if (dice < 85) {
    start(r, ci, -1);
  } else {
    /* A pause (GC, SIGSTOP): silent past its lease, then it writes
     * with its token. */
    c->busy = 1;
    c->op = -2;
    sim_time d = r->holds[c->hold].to - sim_now(r->s) +
                 chorus_prng_below(r->prng, SIM_MS(2 * TTL_MS)) + 1;
    if (sim_schedule(r->s, d, pause_over, c) != CHORUS_OK)
      r->err = CHORUS_ENOMEM;
  }
}

static void client_next(struct sim *s, void *arg) {
  (void)s;
  struct run *r = arg;
  for (int ci = 0; ci < CLIENTS; ci++)
    if (!r->c[ci].busy)
      client_start(r, ci);
}

static int clients_idle(struct sim *s, void *arg) {
  (void)s;
  struct run *r = arg;
  for (int ci = 0; ci < CLIENTS; ci++)
    if (r->c[ci].busy)
      return 0;
  return 1;
}

static unsigned env_uint(const char *name, unsigned def) {
  const char *e = getenv(name);
  return e != NULL && atoi(e) > 0 ? (unsigned)atoi(e) : def;
}

/* check_tokens: applied ACQUIREs' tokens unique and increasing in real
 * time. */
static int check_tokens(struct run *r) {
  for (int i = 0; i < r->nacqs; i++)
    for (int j = 0; j < r->nacqs; j++) {
      const struct acq *a = &r->acqs[i], *b = &r->acqs[j];
      if (i != j && a->token == b->token)
        return snprintf(r->msg, sizeof r->msg,
                        "token %" PRIu64 " acquired twice (c%d, c%d)", a->token,
                        a->client, b->client),
               1;
      if (a->ret < b->call && a->token >= b->token)
        return snprintf(r->msg, sizeof r->msg,
                        "token %" PRIu64 " acquired after token %" PRIu64
                        " completed",
                        b->token, a->token),
               1;
    }
  return 0;
}

/* check_exclusion: no two beliefs under different tokens overlap. */
static int check_exclusion(struct run *r) {
  for (int i = 0; i < r->nholds; i++)
    for (int j = i + 1; j < r->nholds; j++) {
      const struct hold *a = &r->holds[i], *b = &r->holds[j];
      if (a->token == b->token || a->from >= a->to || b->from >= b->to)
        continue;
      if (a->from < b->to && b->from < a->to)
        return snprintf(r->msg, sizeof r->msg,
                        "holders overlap: c%d token %" PRIu64 " [%" PRIu64
                        ", %" PRIu64 ") and c%d token %" PRIu64 " [%" PRIu64
                        ", %" PRIu64 ")",
                        a->client, a->token, a->from, a->to, b->client,
                        b->token, b->from, b->to),
               1;
    }
  return 0;
}

/* read_all: a serial read of the data key through every node (each must
 * answer within FINAL_TRIES); whether they all answered the same. */
static int read_all(struct run *r, int *agree) {
  int64_t first = 0;
  *agree = 1;
  for (int node = 0; node < sim_nodes(r->s); node++) {
    int ok = 0;
    for (int tries = 0; tries < FINAL_TRIES && !ok; tries++) {
      struct sim_call call = {
          .op = SIM_OP_CAS, .key = DATA_KEY, .cas_cond = WIRE_CAS_READ};
      struct lin_op op = {
          .kind = F_READ, .call = sim_now(r->s), .client = CLIENTS};
      const struct sim_result *res = sim_call(r->s, node, &call);
      if (res == NULL)
        return snprintf(r->msg, sizeof r->msg, "the run broke"), 1;
      if (res->outcome == SIM_OK) {
        op.ret = sim_now(r->s);
        op.out = res->nvalues > 0 ? (int64_t)res->values[0] : LIN_ABSENT;
        push(r, &op);
        if (node == 0)
          first = op.out;
        else if (op.out != first)
          *agree = 0;
        ok = 1;
      } else if (res->outcome == SIM_UNKNOWN) {
        op.ret = LIN_PENDING;
        push(r, &op);
      }
      if (!ok && sim_run_for(r->s, SIM_MS(500)) != CHORUS_OK)
        return snprintf(r->msg, sizeof r->msg, "the run broke"), 1;
    }
    if (!ok)
      return snprintf(r->msg, sizeof r->msg,
                      "liveness: no serial read through n%d after the heal",
                      node),
             1;
  }
  return 0;
}

/* final_checks: after the heal, serial reads of the data key through
 * every node must come to agree, and a lock STATUS must name the highest
 * token acquired. Agreement is asked of a whole round, up to FINAL_ROUNDS
 * of them: a write whose outcome was unknown may still lie accepted on a
 * minority of replicas, and a read whose quorum includes one finishes it
 * (paxos.h, step 2), so one round may see the value change. Every read
 * also joins the history: lin_check judges that such a change is
 * legal. */
static int final_checks(struct run *r) {
  int agree = 0;
  for (int round = 0; round < FINAL_ROUNDS && !agree; round++)
    if (read_all(r, &agree) != 0)
      return 1;
  if (!agree)
    return snprintf(r->msg, sizeof r->msg,
                    "after the heal the nodes' serial reads of %s never "
                    "agreed in %d rounds",
                    DATA_KEY, FINAL_ROUNDS),
           1;
  uint64_t top = 0;
  for (int i = 0; i < r->nacqs; i++)
    if (r->acqs[i].token > top)
      top = r->acqs[i].token;
  for (int tries = 0; tries < FINAL_TRIES; tries++) {
    struct sim_call call = {
        .op = SIM_OP_LOCK, .key = LOCK_KEY, .lock_op = WIRE_LOCK_STATUS};
    const struct sim_result *res =
        sim_call(r->s, tries % sim_nodes(r->s), &call);
    if (res == NULL)
      return snprintf(r->msg, sizeof r->msg, "the run broke"), 1;
    if (res->outcome == SIM_OK) {
      if (res->lock.token < top)
        return snprintf(r->msg, sizeof r->msg,
                        "STATUS names token %" PRIu64
                        " below the acquired %" PRIu64,
                        res->lock.token, top),
               1;
      return 0;
    }
    if (sim_run_for(r->s, SIM_MS(500)) != CHORUS_OK)
      return snprintf(r->msg, sizeof r->msg, "the run broke"), 1;
  }
  return snprintf(r->msg, sizeof r->msg, "liveness: no lock STATUS answered"),
         1;
}

static uint64_t drift_margin_ms(int drift_ppm) {
  /* A run lasts under 60 s of virtual time; ms rounding on both ends. */
  return (uint64_t)drift_ppm * 60u / 1000u + 4;
}

/* run_seed: 0 safe and live, 1 a violation (printed), -1 undecided. */
static int run_seed(uint64_t seed, int plant, struct totals *t) {
  const struct core_sim_preset *p =
      core_sim_preset_find(seed % 2 == 0 ? "rw22" : "n5");
  assert_non_null(p);
  struct core_sim_preset preset = *p;
  struct sim_run_config rc;
  core_sim_preset_apply(&rc, &preset);
  struct sim_config cfg = rc.sim;
  cfg.seed = seed;
  cfg.verbose = getenv("CHORUS_LOCK_SIM_TRACE") != NULL;
  struct chorus_prng base, swarm;
  chorus_prng_seed(&base, seed);
  chorus_prng_derive(&swarm, &base, 0x5a4a3);
  sim_faults_draw(&cfg.faults, &rc.sim.faults, &swarm);
  /* SKEW (the header): what the checker judges exclusion with. */
  uint64_t dm = drift_margin_ms(cfg.faults.drift_ppm);
  uint64_t ttl_drift =
      (uint64_t)TTL_MS * (uint64_t)cfg.faults.drift_ppm / 1000000u + 1;
  uint64_t skew = 2 * ((uint64_t)cfg.faults.offset_ms +
                       (cfg.faults.clock_jump > 0 ? JUMP_WORST_MS : 0) + dm) +
                  ttl_drift;
  preset.opt.lock_skew_ms = plant == PLANT_SKEW ? -1 : (int64_t)skew;
  preset.opt.planted_fence_plus1 = plant == PLANT_FENCE;
  cfg.ops_arg = &preset.opt;
  struct sim *s;
  assert_int_equal(sim_new(&cfg, &s), CHORUS_OK);
  struct run *r = chorus_calloc(1, sizeof *r);
  assert_non_null(r);
  r->s = s;
  r->t = t;
  r->plant = plant;
  r->prng = sim_prng(s, 0x10c5);
  for (int ci = 0; ci < CLIENTS; ci++) {
    r->c[ci].hold = -1;
    r->c[ci].run = r;
    r->c[ci].index = ci;
    int64_t d = cfg.faults.drift_ppm;
    r->c[ci].drift =
        d > 0 ? (int64_t)chorus_prng_below(r->prng, 2 * (uint64_t)d + 1) - d
              : 0;
  }
  int verdict = 0;
  int rc_ = sim_run_for(s, SIM_MS(50));
  if (rc_ == CHORUS_OK)
    rc_ = sim_nemesis_start(s);
  if (rc_ == CHORUS_OK)
    rc_ = sim_schedule(s, SIM_MS(1), client_next, r);
  if (rc_ == CHORUS_OK)
    rc_ = sim_run_for(s, SIM_MS(CHAOS_MS));
  r->stop = 1;
  if (rc_ == CHORUS_OK)
    rc_ = sim_nemesis_stop(s);
  if (rc_ == CHORUS_OK) {
    int idle = sim_step_until(s, clients_idle, r, SIM_MS(5000));
    rc_ = idle < 0 ? idle : CHORUS_OK;
  }
  if (rc_ == CHORUS_OK)
    rc_ = sim_run_for(s, SIM_MS(2000));
  if (rc_ == CHORUS_OK && r->err == CHORUS_OK && !r->bad)
    verdict = final_checks(r);
  if (rc_ != CHORUS_OK) {
    const char *m;
    sim_failure(s, &m);
    snprintf(r->msg, sizeof r->msg, "protocol error: %s",
             *m ? m : chorus_strerror(rc_));
    verdict = 1;
  }
  assert_int_equal(r->err, CHORUS_OK);
  if (r->bad)
    verdict = 1;
  uint64_t d_max = (uint64_t)sim_clock_error_max(s) + dm;
  int judged = 2 * d_max + ttl_drift <= skew;
  if (!judged)
    t->unjudged++;
  for (int i = 0; i < r->nacqs; i++) {
    int freed = r->acqs[i].token <= 1;
    for (int j = 0; j < r->nrel && !freed; j++)
      freed = r->rel[j] == r->acqs[i].token - 1;
    t->takeovers += !freed;
  }
  if (verdict == 0)
    verdict = check_tokens(r);
  if (verdict == 0 && judged)
    verdict = check_exclusion(r);
  if (verdict == 0) {
    struct lin_result res;
    lin_check(&fenced_register, r->hist.ops, r->hist.n, LIN_BUDGET, &res);
    if (res.verdict == LIN_UNKNOWN) {
      fprintf(stderr, "# seed %" PRIu64 ": the checker's budget ran out\n",
              seed);
      verdict = -1;
    } else if (res.verdict != LIN_OK) {
      snprintf(r->msg, sizeof r->msg,
               "the data key's history is not a fenced register's: %.190s",
               res.message);
      size_t shown = plant != PLANT_NONE ? 60 : 0; /* planted: quiet */
      for (size_t i = 0; i < r->hist.n && shown < 60; i++, shown++) {
        char d[96];
        fr_describe(&r->hist.ops[i], d, sizeof d);
        fprintf(stderr, "#   c%u [%" PRIu64 ", %" PRId64 "] %s\n",
                r->hist.ops[i].client, r->hist.ops[i].call,
                r->hist.ops[i].ret == LIN_PENDING ? -1
                                                  : (int64_t)r->hist.ops[i].ret,
                d);
      }
      verdict = 1;
    }
  }
  if (verdict == 1 && !plant) {
    const struct sim_faults *f = sim_faults(s);
    fprintf(stderr,
            "lock-sim: seed %" PRIu64 " FAILED (%s): %s\n"
            "  faults: drop %.3f partition %.2f clog %.2f crash %.2f "
            "store %.2f jump %.2f/s, drift %d ppm, offset %" PRIu64
            " ms; skew %" PRIu64 " ms, clock error up to %" PRIu64 " ms\n"
            "  reproduce: CHORUS_LOCK_SIM_FIRST=%" PRIu64
            " CHORUS_LOCK_SIM_SEEDS=1 test_lock_sim\n",
            seed, p->name, r->msg, f->drop, f->partition, f->clog, f->crash,
            f->store_fault, f->clock_jump, f->drift_ppm, f->offset_ms, skew,
            d_max, seed);
    sim_trace_dump(s, stderr, 30);
  } else if (verdict == 1 && getenv("CHORUS_LOCK_SIM_VERBOSE") != NULL) {
    fprintf(stderr, "lock-sim (planted): seed %" PRIu64 ": %s\n", seed, r->msg);
  }
  lin_history_free(&r->hist);
  chorus_free(r);
  sim_free(s);
  return verdict;
}

static void run_seeds(unsigned first, unsigned seeds, int plant,
                      struct totals *t) {
  for (unsigned i = 0; i < seeds; i++) {
    int v = run_seed(first + i, plant, t);
    t->seeds++;
    if (v > 0)
      t->failures++;
    else if (v < 0)
      t->undecided++;
  }
  print_message(
      "# lock-sim%s: %d seeds, %d failed, %d undecided, %d not judged for "
      "exclusion (clocks beyond the allowance); %" PRIu64
      " acquisitions (%" PRIu64 " refused; %" PRIu64
      " took over a lease that ran out), %" PRIu64 " renewals, %" PRIu64
      " releases, %" PRIu64 " holder intervals; fenced puts: %" PRIu64
      " applied, %" PRIu64 " refused (%" PRIu64 " with a stale token, %" PRIu64
      " of them applied: no later holder had written); %" PRIu64
      " serial reads; %" PRIu64 " unknown outcomes\n",
      plant == PLANT_SKEW    ? " (planted: no allowance)"
      : plant == PLANT_FENCE ? " (planted: fence off by one)"
                             : "",
      t->seeds, t->failures, t->undecided, t->unjudged, t->acquired,
      t->acq_refused, t->takeovers, t->renewed, t->released, t->holds,
      t->puts_applied, t->puts_refused, t->stale_puts, t->stale_applied,
      t->reads, t->unknown);
}

/* plant_env: CHORUS_LOCK_SIM_PLANT=skew or =fence runs the first test
 * with that planted bug (it must then fail on some seeds). */
static int plant_env(void) {
  const char *e = getenv("CHORUS_LOCK_SIM_PLANT");
  if (e == NULL)
    return PLANT_NONE;
  return strcmp(e, "fence") == 0 ? PLANT_FENCE : PLANT_SKEW;
}

static void locks_and_fences_are_safe(void **state) {
  (void)state;
  unsigned seeds = env_uint("CHORUS_LOCK_SIM_SEEDS", LOCK_SIM_SEEDS);
  unsigned first = env_uint("CHORUS_LOCK_SIM_FIRST", 1);
  int plant = plant_env();
  struct totals t = {0};
  run_seeds(first, seeds, plant, &t);
  if (plant != PLANT_NONE) {
    assert_true(t.failures > 0);
    return;
  }
  assert_int_equal(t.failures, 0);
  assert_int_equal(t.undecided, 0);
  assert_true(t.acquired > (uint64_t)t.seeds); /* the workload did work */
  assert_true(t.puts_refused > 0);             /* and fencing was exercised */
}

/* The checkers bite: nodes with no skew allowance under clock offsets
 * give overlapping holders; fenced writes compared off by one break the
 * fenced register. */
static void planted_no_allowance_is_caught(void **state) {
  (void)state;
  struct totals t = {0};
  run_seeds(1, PLANT_SEEDS, PLANT_SKEW, &t);
  assert_true(t.failures > 0);
}

static void planted_fence_off_by_one_is_caught(void **state) {
  (void)state;
  struct totals t = {0};
  run_seeds(1, PLANT_SEEDS, PLANT_FENCE, &t);
  assert_true(t.failures > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(locks_and_fences_are_safe),
      cmocka_unit_test(planted_no_allowance_is_caught),
      cmocka_unit_test(planted_fence_off_by_one_is_caught),
  };
  return cmocka_run_group_tests_name("lock_sim", tests, NULL, NULL);
}
