/* swim_harness.h: a minimal deterministic cluster for SWIM instances, for
 * clusters larger than the simulator's SIM_MAX_NODES (64).
 *
 * It follows tests/sim's ideas on a smaller scale: one event queue ordered
 * by (time, sequence), virtual microseconds, every random choice from a
 * chorus_prng derived from one seed (network, per node), so a seed replays
 * a run exactly. A node's `now` is virtual time; its `wall` is virtual time
 * plus a per-node offset. The network drops datagrams with probability
 * `loss` (streams, being TCP, are never dropped), delays each message by
 * 0.1-0.9 ms plus an exponential tail, and delivers to a *slow* node only
 * after an extra uniform delay of up to slow_ms: the Lifeguard case of a
 * node that processes its messages late. Links can be blocked.
 */
#ifndef CHORUS_SWIM_HARNESS_H
#define CHORUS_SWIM_HARNESS_H

#include <stdint.h>

#include "swim.h"

#define SH_NEVER UINT64_MAX

struct sh_config {
  int nodes;
  uint64_t seed;
  int local_profile;     /* 0: LAN timing, 1: local timing */
  double loss;           /* datagram drop probability */
  int slow_node;         /* -1: none */
  chorus_ms slow_ms;     /* max extra delivery delay to the slow node */
  int bootstrap;         /* 1: every node starts knowing every other */
  int started;           /* nodes started at time 0 (the rest: sh_start) */
  chorus_ms pushpull_ms; /* overrides the profile's; 0 keeps it */
  int no_gossip;         /* 1: piggybacking only (plain SWIM) */
  int no_lifeguard;      /* 1: local health off (max_lhm = 0) */
};

/* What the harness saw, per node j as a subject. */
struct sh_subject {
  chorus_ms first_suspect; /* SH_NEVER if never */
  chorus_ms first_dead;
  int dead_observers;      /* nodes holding it DEAD now (approx.) */
  uint64_t suspect_events; /* alive -> suspect transitions, any observer */
  uint64_t dead_events;
};

struct sh;

int sh_new(const struct sh_config *cfg, struct sh **out);
void sh_free(struct sh *h);

/* Runs events up to virtual time @t_ms. Returns CHORUS_OK or an error. */
int sh_run_until(struct sh *h, chorus_ms t_ms);
chorus_ms sh_now(const struct sh *h);

struct swim *sh_swim(struct sh *h, int i); /* NULL when down */
chorus_node_id sh_id(const struct sh *h, int i);
const char *sh_addr(const struct sh *h, int i);
int sh_index_of(const struct sh *h, chorus_node_id id);

/* sh_start: starts node @i (not started at time 0) and joins via @seed. */
int sh_start(struct sh *h, int i, int seed);
/* sh_kill: crashes @i (no more events; its instance is freed). */
void sh_kill(struct sh *h, int i);
/* sh_block: while set, every message to or from @i is lost. */
void sh_block(struct sh *h, int i, int blocked);
/* sh_wall_offset: node @i's wall clock runs @ms ahead. */
void sh_wall_offset(struct sh *h, int i, int64_t ms);
/* sh_key: node @i's key ring before start: only @key. */
void sh_key(struct sh *h, int i, const uint8_t key[SWIM_KEY_BYTES]);
void sh_default_key(uint8_t key[SWIM_KEY_BYTES]);

const struct sh_subject *sh_subject(const struct sh *h, int j);
/* sh_subject_reset: forgets what was seen about @j so far. */
void sh_subject_reset(struct sh *h, int j);
/* Deaths declared (by anyone) of nodes that were up: false positives. */
uint64_t sh_false_deaths(const struct sh *h);
/* Datagrams sent by all nodes, and the largest one. */
uint64_t sh_datagrams(const struct sh *h);
size_t sh_max_datagram(const struct sh *h);
/* Packets that failed authentication, summed over nodes that are up. */
uint64_t sh_auth_failed(const struct sh *h);

/* Dissemination tracking: records when each node first sees member @id at
 * incarnation >= @inc (any state change callback counts). */
void sh_track(struct sh *h, chorus_node_id id, uint32_t inc);
/* Time node @i first saw the tracked update, or SH_NEVER. */
chorus_ms sh_tracked_at(const struct sh *h, int i);

/* Verbose trace to stderr when CHORUS_SWIM_TRACE is set. */

#endif /* CHORUS_SWIM_HARNESS_H */
