/* swim_sim_adapter.h: SWIM instances as nodes of the deterministic cluster
 * simulator (tests/sim), with the observations SWIM's tests and
 * swim-report make of a cluster.
 *
 * The adapter is a struct sim_node_ops: SIM_EV_START starts the instance
 * (and bootstraps or joins it), SIM_EV_MESSAGE is swim_handle_packet,
 * SIM_EV_TIMER is swim_tick, and after each event one timer is armed for
 * swim_next_deadline (timers carry a generation; stale ones are ignored).
 * SWIM's datagrams go out with sim_fx_send (lost at the configured loss
 * rate), its streams with sim_fx_send_stream (TCP: never lost, only cut by
 * partitions). Node i has address "n<i>", datacenter "dc<dc>", rack
 * "r<i % 3>" and the simulator's id for i. Everything else is the
 * simulator's: one seed replays a run, event for event (sim_trace_hash).
 *
 * The network is one datacenter by default: 0.1-0.9 ms per seed plus an
 * exponential tail of mean 0.2 ms, independent per message. The knobs of
 * struct swim_sim_config map onto the simulator's: `loss` onto
 * sim_set_loss (datagrams only), the slow node onto sim_slow_node (extra
 * delay on every message delivered to it, Lifeguard §5), swim_sim_block
 * onto sim_isolate / sim_heal, swim_sim_wall_offset onto sim_clock_jump,
 * and operator commands (leave, remove, join, keys, metadata) run inside
 * the node through sim_node_do, so their messages leave at once.
 * CHORUS_SWIM_TRACE set in the environment prints every trace line.
 */
#ifndef CHORUS_SWIM_SIM_ADAPTER_H
#define CHORUS_SWIM_SIM_ADAPTER_H

#include <stdint.h>

#include "sim.h"
#include "swim.h"

#define SWIM_SIM_NEVER UINT64_MAX

struct swim_sim_config {
  int nodes; /* 1..SIM_MAX_NODES */
  int dcs;   /* 0 or 1: one datacenter */
  uint64_t seed;
  int local_profile;     /* 0: LAN timing, 1: local timing */
  double loss;           /* datagram drop probability */
  int slow_node;         /* -1: none (0 is a node: set it explicitly) */
  chorus_ms slow_ms;     /* max extra delivery delay to the slow node */
  int bootstrap;         /* 1: nodes up at time 0 start knowing each other;
                          * 0: every node joins through n0 and n1 */
  int started;           /* nodes up at time 0 (0: all; the rest start with
                          * swim_sim_start) */
  chorus_ms pushpull_ms; /* overrides the profile's; 0 keeps it */
  int no_gossip;         /* 1: piggybacking only (plain SWIM) */
  int no_lifeguard;      /* 1: local health off (max_lhm = 0) */
};

/* What the adapter saw of node j as a subject, from every observer. */
struct swim_sim_subject {
  chorus_ms first_suspect; /* SWIM_SIM_NEVER if never */
  chorus_ms first_dead;
  int dead_observers;      /* nodes holding it DEAD now (approx.) */
  uint64_t suspect_events; /* alive -> suspect transitions, any observer */
  uint64_t dead_events;
};

struct swim_sim;

/* swim_sim_new: a simulator running @cfg->nodes SWIM nodes, the first
 * @cfg->started of them up (their SIM_EV_START queued at time 0).
 * Errors: CHORUS_EINVAL (bad sizes), CHORUS_ENOMEM, sim_new's errors. */
int swim_sim_new(const struct swim_sim_config *cfg, struct swim_sim **out);
void swim_sim_free(struct swim_sim *ss); /* NULL is fine */

/* The simulator underneath (partitions, clogs, crashes, trace hash). */
struct sim *swim_sim_engine(struct swim_sim *ss);

/* swim_sim_run_until: runs the simulator to virtual time @t_ms.
 * Errors: a node's failure (sim_failure). */
int swim_sim_run_until(struct swim_sim *ss, chorus_ms t_ms);
chorus_ms swim_sim_now(const struct swim_sim *ss);

/* Node @i's instance (borrowed; NULL while down or before its start). */
struct swim *swim_sim_node(struct swim_sim *ss, int i);
chorus_node_id swim_sim_id(const struct swim_sim *ss, int i);
const char *swim_sim_addr(const struct swim_sim *ss, int i);
/* swim_sim_index_of: the node with @id, or -1. */
int swim_sim_index_of(const struct swim_sim *ss, chorus_node_id id);

/* swim_sim_start: (re)starts down node @i, which joins through node @seed;
 * its SIM_EV_START is delivered before the call returns.
 * Errors: CHORUS_EINVAL (up already), create()'s errors. */
int swim_sim_start(struct swim_sim *ss, int i, int seed);
/* swim_sim_kill: crashes @i. */
void swim_sim_kill(struct swim_sim *ss, int i);
/* swim_sim_block: while set, every message to or from @i is lost (the
 * simulator's partition; unblocking heals the whole network). */
void swim_sim_block(struct swim_sim *ss, int i, int blocked);
/* swim_sim_wall_offset: moves node @i's wall clock by @ms. */
void swim_sim_wall_offset(struct swim_sim *ss, int i, int64_t ms);
/* swim_sim_key: node @i's key ring from its next start: only @key. */
void swim_sim_key(struct swim_sim *ss, int i,
                  const uint8_t key[SWIM_KEY_BYTES]);
void swim_sim_default_key(uint8_t key[SWIM_KEY_BYTES]);

/* Operator commands, run inside live node @i (sim_node_do).
 * Errors: CHORUS_ECLOSED (down), or the swim call's errors. */
int swim_sim_leave(struct swim_sim *ss, int i);
int swim_sim_remove(struct swim_sim *ss, int i, chorus_node_id id);
int swim_sim_join(struct swim_sim *ss, int i, const char *const *seeds,
                  size_t n);
int swim_sim_set_meta(struct swim_sim *ss, int i, const struct swim_meta *m);
int swim_sim_keys_set(struct swim_sim *ss, int i,
                      const uint8_t primary[SWIM_KEY_BYTES],
                      const uint8_t (*accepted)[SWIM_KEY_BYTES], size_t n);

const struct swim_sim_subject *swim_sim_subject(const struct swim_sim *ss,
                                                int j);
/* swim_sim_subject_reset: forgets what was seen about @j so far. */
void swim_sim_subject_reset(struct swim_sim *ss, int j);
/* Deaths declared (by anyone) of nodes that were up: false positives. */
uint64_t swim_sim_false_deaths(const struct swim_sim *ss);
/* Datagrams sent by all nodes (lost ones included), and the largest. */
uint64_t swim_sim_datagrams(const struct swim_sim *ss);
size_t swim_sim_max_datagram(const struct swim_sim *ss);
/* Packets that failed authentication, summed over nodes that are up. */
uint64_t swim_sim_auth_failed(struct swim_sim *ss);

/* Dissemination tracking: records when each node first sees member @id at
 * incarnation >= @inc (any member_changed call counts). */
void swim_sim_track(struct swim_sim *ss, chorus_node_id id, uint32_t inc);
/* Time node @i first saw the tracked update, or SWIM_SIM_NEVER. */
chorus_ms swim_sim_tracked_at(const struct swim_sim *ss, int i);

#endif /* CHORUS_SWIM_SIM_ADAPTER_H */
