/* sim_workload.c: one whole seed: random clients, chaos, heal, checks. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "sim.h"

/* HOW A SEED RUNS
 *
 *   1. Draw this seed's fault rates (swarm testing) and build the cluster.
 *   2. Chaos: clients issue random operations while the nemesis partitions,
 *      clogs, crashes, corrupts fsyncs and jumps clocks at those rates.
 *   3. Heal: the nemesis stops, the network heals, every node restarts;
 *      clients stop issuing. Replicas must converge within the bound
 *      (liveness), checked every 100 ms of virtual time.
 *   4. Every replica's final state goes into the history; the checkers
 *      judge it. A failure prints the seed, the checker, and the tail of
 *      the trace.
 * A scenario test adds its own actions through the hooks (sim.h): the
 * start hook schedules them among the clients' operations, the end hook
 * looks at the judged cluster.
 */

struct workload;

struct client_arg {
  struct workload *w;
  int client;
};

struct workload {
  const struct sim_run_config *rc;
  struct client_arg args[SIM_MAX_CLIENTS];
  struct sim *s;
  struct chorus_prng *prng;
  int stop;
  uint64_t next_value;
  int busy[SIM_MAX_CLIENTS];
  /* a client in the middle of a read-modify-write: the key it read */
  char rmw_key[SIM_MAX_CLIENTS][32];
  int rmw[SIM_MAX_CLIENTS];
  int rmw_delete[SIM_MAX_CLIENTS];     /* ... and deletes, with the context */
  int rmw_set_remove[SIM_MAX_CLIENTS]; /* a set read, then a remove */
  int err;
};

static void client_next(struct sim *s, void *arg);

static void on_done(struct sim *s, void *arg, int client) {
  struct workload *w = arg;
  w->busy[client] = 0;
  const struct sim_result *res = sim_client_result(s, client);
  if (w->rmw[client] == 1 && w->rmw_set_remove[client] &&
      res->outcome == SIM_OK && !w->stop && res->nvalues > 0) {
    /* Second half of a set read-then-remove: one element the read
     * returned, removed with the read's context (observed remove). */
    w->rmw[client] = 2;
    uint64_t e =
        res->values[chorus_prng_below(w->prng, (uint64_t)res->nvalues)];
    struct sim_call c = {
        .op = SIM_OP_SET_REMOVE,
        .key = w->rmw_key[client],
        .value = e,
        .context = res->context,
        .clen = res->clen,
        .covers = &e,
        .ncovers = 1,
        .r = w->rc->r,
        .w = w->rc->w,
    };
    int node = (int)chorus_prng_below(w->prng, (uint64_t)sim_nodes(s));
    int rc = sim_request_start(s, client, node, &c, on_done, w);
    if (rc == CHORUS_OK) {
      w->busy[client] = 1;
      return;
    }
    w->err = rc;
  } else if (w->rmw[client] == 1 && !w->rmw_set_remove[client] &&
             res->outcome == SIM_OK && !w->stop) {
    /* Second half of a read-modify-write: put (or delete) with what was
     * read, which supersedes (covers) exactly the values this read
     * returned. */
    w->rmw[client] = 2;
    struct sim_call c = {
        .op = w->rmw_delete[client] ? SIM_OP_DELETE : SIM_OP_PUT,
        .key = w->rmw_key[client],
        .value = w->next_value++,
        .context = res->context,
        .clen = res->clen,
        .covers = res->values,
        .ncovers = res->nvalues,
        .r = w->rc->r,
        .w = w->rc->w,
    };
    int node = (int)chorus_prng_below(w->prng, (uint64_t)sim_nodes(s));
    int rc = sim_request_start(s, client, node, &c, on_done, w);
    if (rc == CHORUS_OK) {
      w->busy[client] = 1;
      return;
    }
    w->err = rc;
  }
  w->rmw[client] = 0;
  w->rmw_set_remove[client] = 0;
  if (sim_schedule(s, chorus_prng_below(w->prng, SIM_MS(50)), client_next,
                   &w->args[client]) != CHORUS_OK)
    w->err = CHORUS_ENOMEM;
}

static void client_next(struct sim *s, void *arg) {
  struct client_arg *ca = arg;
  struct workload *w = ca->w;
  int c = ca->client;
  if (w->stop || w->busy[c])
    return;
  const struct sim_run_config *rc = w->rc;
  struct chorus_prng *p = w->prng;
  int total = rc->kv_keys + rc->counter_keys + rc->set_keys + rc->lww_keys;
  if (total <= 0)
    return;
  int pick = (int)chorus_prng_below(p, (uint64_t)total);
  char key[32];
  struct sim_call call = {.key = key, .r = rc->r, .w = rc->w};
  uint64_t dice = chorus_prng_below(p, 100);
  if (pick < rc->kv_keys) {
    snprintf(key, sizeof key, "kv%d", pick);
    if (dice < 45) { /* read-modify-write, or read-then-delete */
      call.op = SIM_OP_GET;
      w->rmw[c] = 1;
      w->rmw_delete[c] = dice < (uint64_t)rc->delete_pct;
      memcpy(w->rmw_key[c], key, sizeof key);
    } else if (dice < 70) {
      call.op = SIM_OP_PUT; /* blind: a new sibling */
      call.value = w->next_value++;
    } else {
      call.op = SIM_OP_GET;
    }
  } else if (pick < rc->kv_keys + rc->counter_keys) {
    snprintf(key, sizeof key, "ctr%d", pick - rc->kv_keys);
    if (dice < 70) {
      call.op = SIM_OP_COUNTER_ADD;
      call.amount = (int64_t)chorus_prng_range(p, 0, 8) - 3;
      if (call.amount == 0)
        call.amount = 1;
    } else {
      call.op = SIM_OP_COUNTER_READ;
    }
  } else if (pick < rc->kv_keys + rc->counter_keys + rc->set_keys) {
    snprintf(key, sizeof key, "set%d", pick - rc->kv_keys - rc->counter_keys);
    if (dice < (uint64_t)rc->set_remove_pct) {
      call.op = SIM_OP_SET_READ; /* then remove what it saw */
      w->rmw[c] = 1;
      w->rmw_set_remove[c] = 1;
      memcpy(w->rmw_key[c], key, sizeof key);
    } else if (dice < 70) {
      call.op = SIM_OP_SET_ADD;
      call.value = w->next_value++;
    } else {
      call.op = SIM_OP_SET_READ;
    }
  } else {
    snprintf(key, sizeof key, "lww%d",
             pick - rc->kv_keys - rc->counter_keys - rc->set_keys);
    if (dice < 60) {
      call.op = SIM_OP_LWW_SET; /* blind */
      call.value = w->next_value++;
    } else {
      call.op = SIM_OP_LWW_READ;
    }
  }
  int node = (int)chorus_prng_below(p, (uint64_t)sim_nodes(s));
  int err = sim_request_start(s, c, node, &call, on_done, w);
  if (err != CHORUS_OK) {
    w->err = err;
    return;
  }
  w->busy[c] = 1;
}

void sim_run_defaults(struct sim_run_config *rc,
                      const struct sim_node_ops *ops) {
  memset(rc, 0, sizeof *rc);
  rc->sim.nodes = 5;
  rc->sim.dcs = 1;
  rc->sim.ops = ops;
  sim_faults_swarm_max(&rc->sim.faults);
  rc->swarm = 1;
  rc->clients = 4;
  rc->kv_keys = 3;
  rc->counter_keys = 1;
  rc->set_keys = 1;
  rc->chaos = SIM_MS(8000);
  rc->heal_bound = SIM_MS(30000);
  rc->trace_lines = 40;
}

static int clients_idle(struct sim *s, void *arg) {
  struct workload *w = arg;
  (void)s;
  for (int c = 0; c < w->rc->clients; c++)
    if (w->busy[c])
      return 0;
  return 1;
}

static void report_failure(const struct sim_run_config *rc, struct sim *s,
                           const struct sim_run_result *res) {
  if (rc->quiet)
    return;
  const struct sim_faults *f = sim_faults(s);
  fprintf(stderr,
          "sim: seed %" PRIu64 " FAILED (%s, %d nodes, %d dcs): %s: %s\n"
          "  faults: drop %.3f dup %.3f tail %" PRIu64 " ms; per second: "
          "partition %.2f clog %.2f crash %.2f store %.2f jump %.2f; "
          "drift %d ppm, offset %" PRIu64 " ms, fsync %" PRIu64 " ms\n"
          "  reproduce: sim-run --protocol %s --seed %" PRIu64
          " --nodes %d --dcs %d%s\n"
          "  last trace lines (virtual ms, node, module):\n",
          sim_seed(s), rc->sim.ops->name, rc->sim.nodes, rc->sim.dcs,
          res->checker, res->message, f->drop, f->dup, f->tail_ms, f->partition,
          f->clog, f->crash, f->store_fault, f->clock_jump, f->drift_ppm,
          f->offset_ms, f->fsync_ms, rc->sim.ops->name, sim_seed(s),
          rc->sim.nodes, rc->sim.dcs, rc->swarm ? "" : " --no-swarm");
  sim_trace_dump(s, stderr, rc->trace_lines);
}

int sim_run_seed(const struct sim_run_config *rc, uint64_t seed,
                 struct sim_run_result *res) {
  memset(res, 0, sizeof *res);
  struct sim_config cfg = rc->sim;
  cfg.seed = seed;
  if (rc->swarm) {
    struct chorus_prng base, swarm;
    chorus_prng_seed(&base, seed);
    chorus_prng_derive(&swarm, &base, 0x5a4a3);
    sim_faults_draw(&cfg.faults, &rc->sim.faults, &swarm);
  }
  struct sim *s;
  int rc_ = sim_new(&cfg, &s);
  if (rc_ != CHORUS_OK)
    return rc_;
  struct workload w = {.rc = rc, .s = s, .next_value = 1};
  w.prng = sim_prng(s, 0x3071c);
  int clients =
      rc->clients > SIM_MAX_CLIENTS - 1 ? SIM_MAX_CLIENTS - 1 : rc->clients;
  struct sim_check_report rep = {{0}, {0}};
  int verdict = 0;
  if (rc->hook_start != NULL)
    rc->hook_start(s, rc->hook_arg);

  /* Boot, then chaos. */
  rc_ = sim_run_for(s, SIM_MS(50));
  if (rc_ == CHORUS_OK)
    rc_ = sim_nemesis_start(s);
  for (int c = 0; c < clients && rc_ == CHORUS_OK; c++) {
    w.args[c] = (struct client_arg){.w = &w, .client = c};
    rc_ = sim_schedule(s, chorus_prng_below(w.prng, SIM_MS(20)), client_next,
                       &w.args[c]);
  }
  if (rc_ == CHORUS_OK)
    rc_ = sim_run_for(s, rc->chaos);

  /* Heal: no more faults, no more new operations; wait for the clients in
   * flight, then for convergence. */
  w.stop = 1;
  if (rc_ == CHORUS_OK)
    rc_ = sim_nemesis_stop(s);
  res->healed = sim_now(s);
  if (rc_ == CHORUS_OK) {
    struct workload *wp = &w;
    int idle = sim_step_until(s, clients_idle, wp, SIM_MS(5000));
    rc_ = idle < 0 ? idle : CHORUS_OK;
  }
  sim_time deadline = sim_now(s) + rc->heal_bound;
  int converged = 0;
  while (rc_ == CHORUS_OK && sim_now(s) <= deadline) {
    if ((converged = sim_converged(s)) != 0 && rc->hook_converged != NULL)
      converged = rc->hook_converged(s, rc->hook_arg);
    if (converged) {
      res->converged = sim_now(s);
      break;
    }
    rc_ = sim_run_for(s, SIM_MS(100));
  }
  if (rc_ == CHORUS_OK && w.err != CHORUS_OK)
    rc_ = w.err;

  if (rc_ != CHORUS_OK && rc_ != CHORUS_ENOMEM) {
    /* A node's handle() failed: the protocol has a bug. */
    const char *msg;
    sim_failure(s, &msg);
    snprintf(rep.checker, sizeof rep.checker, "protocol-error");
    snprintf(rep.message, sizeof rep.message, "%s",
             *msg ? msg : chorus_strerror(rc_));
    verdict = 1;
    rc_ = CHORUS_OK;
  } else if (rc_ == CHORUS_OK && !converged) {
    snprintf(rep.checker, sizeof rep.checker, "liveness");
    snprintf(rep.message, sizeof rep.message,
             "replicas did not converge within %.1f s of healing",
             (double)rc->heal_bound / 1e6);
    verdict = 1;
  }
  if (rc_ == CHORUS_OK) {
    rc_ = sim_record_finals(s);
    if (rc_ == CHORUS_OK && verdict == 0) {
      verdict = sim_check_all(sim_history(s), rc->strict, &rep);
      if (verdict < 0)
        rc_ = verdict;
    }
  }
  res->ok = verdict == 0;
  snprintf(res->checker, sizeof res->checker, "%s", verdict ? rep.checker : "");
  snprintf(res->message, sizeof res->message, "%s", verdict ? rep.message : "");
  res->trace_hash = sim_trace_hash(s);
  res->ops = sim_history(s)->nops;
  res->events = sim_events(s);
  res->end = sim_now(s);
  if (rc_ == CHORUS_OK && !res->ok)
    report_failure(rc, s, res);
  if (rc->hook_end != NULL)
    rc->hook_end(s, rc->hook_arg);
  sim_free(s);
  return rc_;
}
