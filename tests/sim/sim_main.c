/* sim_main.c: sim-run, the command-line runner of simulated seeds. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_error.h"
#include "sim.h"
#include "sim_toy.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: sim-run [options]\n"
          "  --protocol NAME   toy (default), naive, or toy-unsynced (the toy\n"
          "                    with a planted bug: acks before fsync)\n"
          "  --seed S          first seed (default 1)\n"
          "  --seeds N         how many seeds from S (default 1)\n"
          "  --nodes N         cluster size (default 5)\n"
          "  --dcs N           datacenters (default 1)\n"
          "  --clients N       concurrent clients (default 4)\n"
          "  --chaos-ms MS     chaos phase length (default 8000)\n"
          "  --heal-ms MS      convergence bound after heal (default 30000)\n"
          "  --r N --w N       quorum sizes asked for (default: protocol's)\n"
          "  --strict          R+W>N, no faults: also check read-your-writes\n"
          "                    and strict counter bounds (alias --ryw)\n"
          "  --no-swarm        use the fault knobs as they are, every seed\n"
          "  fault knobs (maxima under swarm, exact with --no-swarm):\n"
          "  --drop P --dup P --tail-ms MS --partition R --clog R --crash R\n"
          "  --store-fault R --clock-jump R --drift-ppm N --offset-ms MS\n"
          "  --fsync-ms MS     (R: events per second of chaos)\n"
          "  --calm            all fault knobs to zero\n"
          "  --expect-fail     exit 0 only if some seed fails (naive demos)\n"
          "  --verbose         print every trace line\n"
          "  --quiet           print only the summary\n");
}

int main(int argc, char **argv) {
  struct sim_run_config rc;
  sim_run_defaults(&rc, &sim_toy_gossip);
  uint64_t seed = 1, seeds = 1;
  int expect_fail = 0;
  struct sim_faults *f = &rc.sim.faults;
  enum {
    O_PROTO = 256,
    O_SEED,
    O_SEEDS,
    O_NODES,
    O_DCS,
    O_CLIENTS,
    O_CHAOS,
    O_HEAL,
    O_R,
    O_W,
    O_RYW,
    O_NOSWARM,
    O_DROP,
    O_DUP,
    O_TAIL,
    O_PART,
    O_CLOG,
    O_CRASH,
    O_STORE,
    O_JUMP,
    O_DRIFT,
    O_OFFSET,
    O_FSYNC,
    O_CALM,
    O_EXPECT,
    O_VERBOSE,
    O_QUIET,
    O_HELP
  };
  static const struct option opts[] = {
      {"protocol", required_argument, 0, O_PROTO},
      {"seed", required_argument, 0, O_SEED},
      {"seeds", required_argument, 0, O_SEEDS},
      {"nodes", required_argument, 0, O_NODES},
      {"dcs", required_argument, 0, O_DCS},
      {"clients", required_argument, 0, O_CLIENTS},
      {"chaos-ms", required_argument, 0, O_CHAOS},
      {"heal-ms", required_argument, 0, O_HEAL},
      {"r", required_argument, 0, O_R},
      {"w", required_argument, 0, O_W},
      {"ryw", no_argument, 0, O_RYW},
      {"strict", no_argument, 0, O_RYW},
      {"no-swarm", no_argument, 0, O_NOSWARM},
      {"drop", required_argument, 0, O_DROP},
      {"dup", required_argument, 0, O_DUP},
      {"tail-ms", required_argument, 0, O_TAIL},
      {"partition", required_argument, 0, O_PART},
      {"clog", required_argument, 0, O_CLOG},
      {"crash", required_argument, 0, O_CRASH},
      {"store-fault", required_argument, 0, O_STORE},
      {"clock-jump", required_argument, 0, O_JUMP},
      {"drift-ppm", required_argument, 0, O_DRIFT},
      {"offset-ms", required_argument, 0, O_OFFSET},
      {"fsync-ms", required_argument, 0, O_FSYNC},
      {"calm", no_argument, 0, O_CALM},
      {"expect-fail", no_argument, 0, O_EXPECT},
      {"verbose", no_argument, 0, O_VERBOSE},
      {"quiet", no_argument, 0, O_QUIET},
      {"help", no_argument, 0, O_HELP},
      {0, 0, 0, 0},
  };
  int o;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
    case O_PROTO:
      if (strcmp(optarg, "toy") == 0)
        rc.sim.ops = &sim_toy_gossip;
      else if (strcmp(optarg, "naive") == 0)
        rc.sim.ops = &sim_toy_naive;
      else if (strcmp(optarg, "toy-unsynced") == 0) {
        static struct sim_toy_options unsynced = {.ack_before_sync = 1};
        rc.sim.ops = &sim_toy_gossip;
        rc.sim.ops_arg = &unsynced;
      } else {
        fprintf(stderr, "sim-run: unknown protocol %s\n", optarg);
        return 2;
      }
      break;
    case O_SEED:
      seed = strtoull(optarg, NULL, 0);
      break;
    case O_SEEDS:
      seeds = strtoull(optarg, NULL, 0);
      break;
    case O_NODES:
      rc.sim.nodes = atoi(optarg);
      break;
    case O_DCS:
      rc.sim.dcs = atoi(optarg);
      break;
    case O_CLIENTS:
      rc.clients = atoi(optarg);
      break;
    case O_CHAOS:
      rc.chaos = SIM_MS(strtoull(optarg, NULL, 0));
      break;
    case O_HEAL:
      rc.heal_bound = SIM_MS(strtoull(optarg, NULL, 0));
      break;
    case O_R:
      rc.r = atoi(optarg);
      break;
    case O_W:
      rc.w = atoi(optarg);
      break;
    case O_RYW:
      rc.strict = 1;
      break;
    case O_NOSWARM:
      rc.swarm = 0;
      break;
    case O_DROP:
      f->drop = atof(optarg);
      break;
    case O_DUP:
      f->dup = atof(optarg);
      break;
    case O_TAIL:
      f->tail_ms = strtoull(optarg, NULL, 0);
      break;
    case O_PART:
      f->partition = atof(optarg);
      break;
    case O_CLOG:
      f->clog = atof(optarg);
      break;
    case O_CRASH:
      f->crash = atof(optarg);
      break;
    case O_STORE:
      f->store_fault = atof(optarg);
      break;
    case O_JUMP:
      f->clock_jump = atof(optarg);
      break;
    case O_DRIFT:
      f->drift_ppm = atoi(optarg);
      break;
    case O_OFFSET:
      f->offset_ms = strtoull(optarg, NULL, 0);
      break;
    case O_FSYNC:
      f->fsync_ms = strtoull(optarg, NULL, 0);
      break;
    case O_CALM: {
      chorus_ms fsync = f->fsync_ms;
      memset(f, 0, sizeof *f);
      f->fsync_ms = fsync;
      break;
    }
    case O_EXPECT:
      expect_fail = 1;
      break;
    case O_VERBOSE:
      rc.sim.verbose = 1;
      break;
    case O_QUIET:
      rc.quiet = 1;
      break;
    case O_HELP:
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (rc.sim.nodes < 1 || rc.sim.nodes > SIM_MAX_NODES || rc.sim.dcs < 1 ||
      rc.sim.dcs > rc.sim.nodes || rc.clients < 1) {
    fprintf(stderr, "sim-run: bad --nodes/--dcs/--clients\n");
    return 2;
  }
  uint64_t failed = 0, ops = 0, events = 0, combined = 0xcbf29ce484222325ULL;
  for (uint64_t i = 0; i < seeds; i++) {
    struct sim_run_result res;
    int err = sim_run_seed(&rc, seed + i, &res);
    if (err != CHORUS_OK) {
      fprintf(stderr, "sim-run: seed %" PRIu64 ": engine error: %s\n", seed + i,
              chorus_strerror(err));
      return 3;
    }
    combined = (combined ^ res.trace_hash) * 0x100000001b3ULL;
    ops += res.ops;
    events += res.events;
    if (!res.ok)
      failed++;
    if (seeds == 1)
      printf("seed %" PRIu64 ": %s%s%s, %zu ops, %zu events, %.1f s virtual, "
             "trace hash %016" PRIx64 "\n",
             seed, res.ok ? "ok" : "FAILED ", res.ok ? "" : res.checker, "",
             res.ops, res.events, (double)res.end / 1e6, res.trace_hash);
  }
  printf("sim-run: %s: %" PRIu64 " seeds from %" PRIu64 ", %" PRIu64
         " failed; %" PRIu64 " ops, %" PRIu64 " events; trace hash %016" PRIx64
         "\n",
         rc.sim.ops->name, seeds, seed, failed, ops, events, combined);
  if (expect_fail)
    return failed > 0 ? 0 : 1;
  return failed > 0 ? 1 : 0;
}
