/* repl_staleness.c: repl-staleness, PBS t-visibility of the replication
 * protocol measured on the simulator (Bailis et al., "Probabilistically
 * Bounded Staleness for Practical Partial Quorums", VLDB 2012, §3).
 *
 * HOW IT MEASURES
 *
 * t-visibility is the probability that a read started t ms after a write's
 * acknowledgement returns that write (PBS §3.2, "t-visibility"). One trial:
 * a client writes a fresh value to a fresh key at W through a random node
 * and waits for the acknowledgement; then, t = 0, 1, 2, 5, 10, 20, 50, 100
 * ms after it, one read each at R, from separate clients, to random nodes.
 * Read repair is off, so one read cannot make a later one fresh; the keys
 * are fresh, so trials do not interact. N = 3 on 3 nodes, no faults, no
 * SWIM (nothing fails), one datacenter: 0.1-0.9 ms per link plus the
 * simulator's exponential tail.
 *
 * Why staleness exists at all: a write is acknowledged once W replicas
 * made it durable; the others receive it one network delay after the
 * coordinator's own fsync and may still lack it when a read arrives. With
 * R + W > N the read set always meets the write set (PBS §2.2, strict
 * quorums), so the probability is 1 whatever the delays: the program
 * checks that too. The knobs that make partial quorums visibly stale are
 * the latency tail (--tail-ms: the mean inside one datacenter is a tenth
 * of it, sim.h) and the fsync latency (--fsync-ms: each barrier waits
 * uniformly between a tenth of it and all of it).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_error.h"
#include "core_sim_adapter.h"
#include "sim.h"

static const unsigned offsets_ms[] = {0, 1, 2, 5, 10, 20, 50, 100};
#define NOFF (sizeof offsets_ms / sizeof offsets_ms[0])

struct quorum {
  int r, w;
  const char *label;
};

static const struct quorum quorums[] = {
    {1, 1, "R=W=1"},
    {1, 2, "R=1 W=2"},
    {2, 1, "R=2 W=1"},
    {2, 2, "R=W=QUORUM (2)"},
};
#define NQ (sizeof quorums / sizeof quorums[0])

struct trial {
  struct sim *s;
  const struct quorum *q;
  char key[32];
  uint64_t value;
  int node[NOFF];
  int started[NOFF];
  int err;
};

struct read_arg {
  struct trial *t;
  unsigned i;
};

static void read_start(struct sim *s, void *arg) {
  struct read_arg *ra = arg;
  struct trial *t = ra->t;
  struct sim_call c = {
      .op = SIM_OP_GET, .key = t->key, .r = t->q->r, .w = t->q->w};
  int rc = sim_request_start(s, 1 + (int)ra->i, t->node[ra->i], &c, NULL, NULL);
  if (rc != CHORUS_OK)
    t->err = rc;
  t->started[ra->i] = 1;
}

static int reads_done(struct sim *s, void *arg) {
  struct trial *t = arg;
  for (unsigned i = 0; i < NOFF; i++)
    if (!t->started[i] || !sim_client_result(s, 1 + (int)i)->done)
      return 0;
  return 1;
}

/* run_quorum: @trials trials at @q; fresh[i] counts reads at offset i that
 * saw the write, *@valid the trials whose write was acknowledged. */
static int run_quorum(const struct quorum *q, uint64_t seed, int trials,
                      chorus_ms tail_ms, chorus_ms fsync_ms,
                      uint64_t fresh[NOFF], uint64_t *valid) {
  static struct core_sim_options opt = {
      .replication = "3", .no_swim = 1, .read_repair = WIRE_RR_OFF};
  struct sim_config cfg = {.seed = seed,
                           .nodes = 3,
                           .dcs = 1,
                           .ops = &core_sim_ops,
                           .ops_arg = &opt};
  cfg.faults.tail_ms = tail_ms;
  cfg.faults.fsync_ms = fsync_ms;
  struct sim *s;
  int rc = sim_new(&cfg, &s);
  if (rc != CHORUS_OK)
    return rc;
  rc = sim_run_for(s, SIM_MS(200));
  struct chorus_prng *p = sim_prng(s, 0x57a1e);
  memset(fresh, 0, NOFF * sizeof fresh[0]);
  *valid = 0;
  struct read_arg ra[NOFF];
  for (int k = 0; k < trials && rc == CHORUS_OK; k++) {
    struct trial t = {.s = s, .q = q, .value = (uint64_t)k + 1};
    snprintf(t.key, sizeof t.key, "pbs%d", k);
    struct sim_call w = {
        .op = SIM_OP_PUT, .key = t.key, .value = t.value, .r = q->r, .w = q->w};
    const struct sim_result *res =
        sim_call(s, (int)chorus_prng_below(p, 3), &w);
    if (res == NULL) {
      rc = CHORUS_EINTERNAL;
      break;
    }
    if (res->outcome != SIM_OK)
      continue; /* not acknowledged: no t-visibility to measure */
    for (unsigned i = 0; i < NOFF && rc == CHORUS_OK; i++) {
      t.node[i] = (int)chorus_prng_below(p, 3);
      ra[i] = (struct read_arg){&t, i};
      rc = sim_schedule(s, SIM_MS(offsets_ms[i]), read_start, &ra[i]);
    }
    if (rc != CHORUS_OK)
      break;
    int done = sim_step_until(s, reads_done, &t, SIM_MS(10000));
    if (done != 1 || t.err != CHORUS_OK) {
      rc = done < 0 ? done : t.err != CHORUS_OK ? t.err : CHORUS_ETIMEDOUT;
      break;
    }
    (*valid)++;
    for (unsigned i = 0; i < NOFF; i++) {
      const struct sim_result *r = sim_client_result(s, 1 + (int)i);
      for (size_t j = 0; r->outcome == SIM_OK && j < r->nvalues; j++)
        if (r->values[j] == t.value) {
          fresh[i]++;
          break;
        }
    }
    /* Let stragglers land before the next trial's clock starts. */
    rc = sim_run_for(s, SIM_MS(5));
  }
  if (rc != CHORUS_OK) {
    const char *msg;
    if (sim_failure(s, &msg) != CHORUS_OK)
      fprintf(stderr, "repl-staleness: %s\n", msg);
    sim_trace_dump(s, stderr, 30);
  }
  sim_free(s);
  return rc;
}

int main(int argc, char **argv) {
  int trials = 2000;
  uint64_t seed = 1;
  chorus_ms tail_ms = 100, fsync_ms = 10;
  static const struct option opts[] = {
      {"trials", required_argument, 0, 't'},
      {"seed", required_argument, 0, 's'},
      {"tail-ms", required_argument, 0, 'l'},
      {"fsync-ms", required_argument, 0, 'f'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0},
  };
  int o;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
    case 't':
      trials = atoi(optarg);
      break;
    case 's':
      seed = strtoull(optarg, NULL, 0);
      break;
    case 'l':
      tail_ms = strtoull(optarg, NULL, 0);
      break;
    case 'f':
      fsync_ms = strtoull(optarg, NULL, 0);
      break;
    case 'h':
      printf("usage: repl-staleness [--trials N (2000)] [--seed S (1)]\n"
             "       [--tail-ms MS (100: mean 10 ms inside a datacenter)]\n"
             "       [--fsync-ms MS (10: barriers take 1-10 ms)]\n");
      return 0;
    default:
      return 2;
    }
  }
  if (trials < 1) {
    fprintf(stderr, "repl-staleness: --trials must be >= 1\n");
    return 2;
  }
  uint64_t fresh[NQ][NOFF], valid[NQ];
  for (size_t qi = 0; qi < NQ; qi++) {
    int rc = run_quorum(&quorums[qi], seed, trials, tail_ms, fsync_ms,
                        fresh[qi], &valid[qi]);
    if (rc != CHORUS_OK) {
      fprintf(stderr, "repl-staleness: %s: %s\n", quorums[qi].label,
              chorus_strerror(rc));
      return 1;
    }
  }
  printf("PBS t-visibility: N=3, 3 nodes, one datacenter (links 0.1-0.9 ms "
         "+ exponential tail of mean %.1f ms), fsync %.1f-%" PRIu64
         " ms, read repair off; %d trials per column, seed %" PRIu64 ".\n"
         "P(a read started t ms after the write's acknowledgement returns "
         "it):\n\n",
         (double)tail_ms / 10.0, (double)fsync_ms / 10.0, fsync_ms, trials,
         seed);
  printf("| t (ms) |");
  for (size_t qi = 0; qi < NQ; qi++)
    printf(" %s |", quorums[qi].label);
  printf("\n|---:|");
  for (size_t qi = 0; qi < NQ; qi++)
    printf("---:|");
  printf("\n");
  for (unsigned i = 0; i < NOFF; i++) {
    printf("| %u |", offsets_ms[i]);
    for (size_t qi = 0; qi < NQ; qi++)
      printf(" %.4f |",
             valid[qi] ? (double)fresh[qi][i] / (double)valid[qi] : 0.0);
    printf("\n");
  }
  printf("\nacknowledged writes per column:");
  for (size_t qi = 0; qi < NQ; qi++)
    printf(" %s %" PRIu64 ";", quorums[qi].label, valid[qi]);
  printf("\n");
  /* Strict quorums must never be stale (PBS §2.2). */
  for (size_t qi = 0; qi < NQ; qi++)
    if (quorums[qi].r + quorums[qi].w > 3)
      for (unsigned i = 0; i < NOFF; i++)
        if (fresh[qi][i] != valid[qi]) {
          fprintf(stderr,
                  "repl-staleness: %s read a stale value at t=%u ms: a "
                  "strict quorum must not\n",
                  quorums[qi].label, offsets_ms[i]);
          return 1;
        }
  return 0;
}
