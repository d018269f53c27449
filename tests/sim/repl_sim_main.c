/* repl_sim_main.c: repl-sim, the command-line runner of simulated seeds of
 * the replication protocol, run by the node core (core_sim_adapter.h), for
 * long runs. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chorus_error.h"
#include "core_sim_adapter.h"
#include "sim.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: repl-sim [options]\n"
          "  --config NAME     a preset (--list), or 'all' (default rw22)\n"
          "  --seed S          first seed (default 1)\n"
          "  --seeds N         how many seeds from S (default 1)\n"
          "  --chaos-ms MS     chaos phase length (default 8000)\n"
          "  --heal-ms MS      convergence bound after heal (default 30000)\n"
          "  --clients N       concurrent clients (default 4)\n"
          "  --strict          no faults, R+W>N: also read-your-writes\n"
          "  --calm            every fault knob at zero (fsync kept)\n"
          "  --brutal          fixed heavy faults, no swarm: drop 0.3, 2\n"
          "                    partitions, 3 crashes, 1 store fault per s\n"
          "  --no-swim         static membership: every peer counts as alive\n"
          "  --sloppy          sloppy quorums by default\n"
          "  --maps            sets kept as maps (MAP_UPDATE set ops)\n"
          "  --batch-events N  a node's deferred replica writes applied and\n"
          "                    answered every N of its events (default 1)\n"
          "  --list            print the presets\n"
          "  --verbose         print every trace line\n"
          "  --quiet           print only the summaries\n"
          "Prints one line per configuration: seeds, failures, ops, events,\n"
          "wall time. Exit status 1 if any seed failed.\n");
}

static double wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct knobs {
  uint64_t seed, seeds;
  sim_time chaos, heal;
  int clients, strict, calm, brutal, no_swim, sloppy, maps, verbose, quiet;
  uint32_t batch_events;
};

/* run_config: every seed of one preset; returns the failures. */
static uint64_t run_config(const struct core_sim_preset *p,
                           const struct knobs *k, int *engine_err) {
  struct core_sim_preset local = *p;
  if (k->no_swim)
    local.opt.no_swim = 1;
  if (k->sloppy)
    local.opt.sloppy = 1;
  if (k->maps)
    local.opt.sets_as_maps = 1;
  if (k->batch_events)
    local.opt.batch_events = k->batch_events;
  struct sim_run_config rc;
  core_sim_preset_apply(&rc, &local);
  if (k->chaos)
    rc.chaos = k->chaos;
  if (k->heal)
    rc.heal_bound = k->heal;
  if (k->clients)
    rc.clients = k->clients;
  if (k->calm || k->strict) {
    chorus_ms fsync = rc.sim.faults.fsync_ms;
    memset(&rc.sim.faults, 0, sizeof rc.sim.faults);
    rc.sim.faults.fsync_ms = fsync;
    rc.swarm = 0;
  }
  if (k->brutal)
    core_sim_brutal(&rc);
  rc.strict = k->strict;
  rc.sim.verbose = k->verbose;
  rc.quiet = k->quiet;
  uint64_t failed = 0, ops = 0, events = 0;
  uint64_t combined = 0xcbf29ce484222325ULL;
  double t0 = wall_s();
  for (uint64_t i = 0; i < k->seeds; i++) {
    struct sim_run_result res;
    int err = sim_run_seed(&rc, k->seed + i, &res);
    if (err != CHORUS_OK) {
      fprintf(stderr, "repl-sim: %s seed %" PRIu64 ": engine error: %s\n",
              p->name, k->seed + i, chorus_strerror(err));
      *engine_err = 1;
      return failed + 1;
    }
    combined = (combined ^ res.trace_hash) * 0x100000001b3ULL;
    ops += res.ops;
    events += res.events;
    if (!res.ok) {
      failed++;
      printf("%s seed %" PRIu64 ": FAILED %s: %s\n"
             "  reproduce: repl-sim --config %s --seed %" PRIu64
             " --chaos-ms %" PRIu64 "%s%s --verbose\n",
             p->name, k->seed + i, res.checker, res.message, p->name,
             k->seed + i, (uint64_t)(rc.chaos / SIM_US_PER_MS),
             k->strict   ? " --strict"
             : k->calm   ? " --calm"
             : k->brutal ? " --brutal"
                         : "",
             k->maps ? " --maps" : "");
    } else if (k->seeds == 1) {
      printf("%s seed %" PRIu64 ": ok, %zu ops, %zu events, %.1f s virtual, "
             "trace hash %016" PRIx64 "\n",
             p->name, k->seed, res.ops, res.events, (double)res.end / 1e6,
             res.trace_hash);
    }
    fflush(stdout);
  }
  printf("repl-sim: %-5s %-45s %" PRIu64 " seeds from %" PRIu64 ", %" PRIu64
         " failed; %" PRIu64 " ops, %" PRIu64 " events; %.1f s wall; "
         "trace hash %016" PRIx64 "\n",
         p->name, p->what, k->seeds, k->seed, failed, ops, events,
         wall_s() - t0, combined);
  fflush(stdout);
  return failed;
}

int main(int argc, char **argv) {
  struct knobs k = {.seed = 1, .seeds = 1};
  const char *config = "rw22";
  enum {
    O_CONFIG = 256,
    O_SEED,
    O_SEEDS,
    O_CHAOS,
    O_HEAL,
    O_CLIENTS,
    O_STRICT,
    O_CALM,
    O_BRUTAL,
    O_NOSWIM,
    O_SLOPPY,
    O_MAPS,
    O_BATCH,
    O_LIST,
    O_VERBOSE,
    O_QUIET,
    O_HELP
  };
  static const struct option opts[] = {
      {"config", required_argument, 0, O_CONFIG},
      {"seed", required_argument, 0, O_SEED},
      {"seeds", required_argument, 0, O_SEEDS},
      {"chaos-ms", required_argument, 0, O_CHAOS},
      {"heal-ms", required_argument, 0, O_HEAL},
      {"clients", required_argument, 0, O_CLIENTS},
      {"strict", no_argument, 0, O_STRICT},
      {"calm", no_argument, 0, O_CALM},
      {"brutal", no_argument, 0, O_BRUTAL},
      {"no-swim", no_argument, 0, O_NOSWIM},
      {"sloppy", no_argument, 0, O_SLOPPY},
      {"maps", no_argument, 0, O_MAPS},
      {"batch-events", required_argument, 0, O_BATCH},
      {"list", no_argument, 0, O_LIST},
      {"verbose", no_argument, 0, O_VERBOSE},
      {"quiet", no_argument, 0, O_QUIET},
      {"help", no_argument, 0, O_HELP},
      {0, 0, 0, 0},
  };
  int o;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
    case O_CONFIG:
      config = optarg;
      break;
    case O_SEED:
      k.seed = strtoull(optarg, NULL, 0);
      break;
    case O_SEEDS:
      k.seeds = strtoull(optarg, NULL, 0);
      break;
    case O_CHAOS:
      k.chaos = SIM_MS(strtoull(optarg, NULL, 0));
      break;
    case O_HEAL:
      k.heal = SIM_MS(strtoull(optarg, NULL, 0));
      break;
    case O_CLIENTS:
      k.clients = atoi(optarg);
      if (k.clients < 1 || k.clients >= SIM_MAX_CLIENTS) {
        fprintf(stderr, "repl-sim: --clients 1..%d\n", SIM_MAX_CLIENTS - 1);
        return 2;
      }
      break;
    case O_STRICT:
      k.strict = 1;
      break;
    case O_CALM:
      k.calm = 1;
      break;
    case O_BRUTAL:
      k.brutal = 1;
      break;
    case O_NOSWIM:
      k.no_swim = 1;
      break;
    case O_SLOPPY:
      k.sloppy = 1;
      break;
    case O_MAPS:
      k.maps = 1;
      break;
    case O_BATCH:
      k.batch_events = (uint32_t)strtoul(optarg, NULL, 0);
      break;
    case O_LIST:
      for (const struct core_sim_preset *p = core_sim_presets(); p->name; p++)
        printf("%-6s %s\n", p->name, p->what);
      return 0;
    case O_VERBOSE:
      k.verbose = 1;
      break;
    case O_QUIET:
      k.quiet = 1;
      break;
    case O_HELP:
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  uint64_t failed = 0;
  int engine_err = 0;
  if (strcmp(config, "all") == 0) {
    for (const struct core_sim_preset *p = core_sim_presets();
         p->name != NULL && !engine_err; p++)
      failed += run_config(p, &k, &engine_err);
  } else {
    const struct core_sim_preset *p = core_sim_preset_find(config);
    if (p == NULL) {
      fprintf(stderr, "repl-sim: unknown config %s (try --list)\n", config);
      return 2;
    }
    failed = run_config(p, &k, &engine_err);
  }
  if (engine_err)
    return 3;
  return failed > 0 ? 1 : 0;
}
