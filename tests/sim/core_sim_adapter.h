/* core_sim_adapter.h: the node core (node/core/core.h: SWIM, the ring
 * snapshot and replication, joined once) as the nodes of the deterministic
 * cluster simulator (tests/sim).
 *
 * WHAT ONE SIMULATED NODE IS
 *
 * A struct sim_node_ops (core_sim_ops) whose instance holds, for one
 * incarnation of node i, one struct core: the very state machine chorusd
 * drives, with the very hookup between membership, ring and replication
 * (core.h, THE HOOKUP). The adapter has no glue of its own: it never calls
 * SWIM or replication, never builds a ring and never reacts to a member
 * change. It only turns simulator events into core_* calls and the core's
 * effects into sim_fx_* calls, as chorusd's libuv driver turns them into
 * sockets, one uv_timer and RocksDB.
 *
 *   the core        configured at create() from sim_node_config and the
 *                   options: id ids[i]; its own SWIM metadata address
 *                   "n<i>", datacenter "dc<dc[i]>", rack "r<i % 3>", the
 *                   options' vnodes, RING_NORMAL (RING_JOINING for a
 *                   joining node, below); the options' replication spec,
 *                   quorum and hint settings; gossip unless no_swim
 *                   (static membership)
 *   the ring        the core's: built from SWIM's member table every time
 *                   it changes, read with core_ring(); the adapter passes
 *                   no ring effect, so the core frees old snapshots
 *   the store       the simulator's, lent at SIM_EV_START
 *
 * EVENTS TO CORE CALLS (what the libuv driver in node/ does with sockets)
 *
 *   SIM_EV_START     core_new, core_start over the lent store, then
 *                    core_add_member for every other node of the roster
 *                    (as chorusd loads its saved member table); after a
 *                    crash also core_join through two other roster nodes,
 *                    so the cluster hears of the new incarnation at once
 *   SIM_EV_MESSAGE   by its 1-byte tag:
 *                      'd' SWIM datagram  (sim_fx_send: lossy, like UDP)
 *                      's' SWIM stream    (sim_fx_send_stream: TCP)
 *                          both from the gossip effect, to core_gossip
 *                      'r' a wire message (sim_fx_send_stream): the whole
 *                          frame of wire_encode (u32 length + body) from
 *                          the send effect, decoded with wire_decode
 *                          (WIRE_LIMITS_PEER), to core_peer. A frame that
 *                          fails to decode is a bug (our own encoder wrote
 *                          it): handle() fails the run with it
 *   SIM_EV_REQUEST   a struct wire_msg (GET, PUT with its context,
 *                    DELETE with its context,
 *                    COUNTER_ADD with op_id = the request id, COUNTER_READ,
 *                    SET_ADD of one member, SET_READ, CAS, LOCK (a lock op
 *                    or a fenced put; its LOCK_REPLY as sim_result.lock);
 *                    the request's r/w go
 *                    into wire_options as they are, 0 = node default, a
 *                    negative number a named level) to core_client with the
 *                    request id as cookie; the reply effect is sim_fx_reply
 *                    (values, context, counter; WIRE_ERROR's code as the
 *                    status, with the core's maybe_applied)
 *   SIM_EV_TIMER     one simulator timer at a time, armed after every
 *                    event at core_next_deadline() (a delay from the
 *                    event's `now`), its id the top bit plus a generation:
 *                    only the newest fires core_tick, stale ones are
 *                    ignored. A later deadline keeps the armed timer (an
 *                    early core_tick is harmless and re-arms)
 *   SIM_EV_SYNC_DONE core_sync_done; the sync effect is sim_fx_sync
 *
 * Membership as the simulator sees it: every node of the roster (every
 * node not named in the options' `joining` mask) knows every other roster
 * node from its start. A joining node is in nobody's roster: it starts
 * knowing no one, with ownership RING_JOINING, and core_join's through two
 * roster nodes; the others learn it through SWIM and their cores rebuild
 * their rings with it as a pending replica (ring.h: it receives writes,
 * never counts for reads or quorums). Nothing streams data to it yet, so it
 * stays joining for good. A test that wants it to start later kills it at
 * once and restarts it when it likes (sim_kill before the first event).
 *
 * ERRORS
 *
 * An error returned by a core event, or by an effect, is a bug and handle()
 * returns it (the simulator fails the run), with two exceptions, both the
 * way chorusd is meant to die and come back:
 *   - CHORUS_ESYNCFAILED, the store's sticky fsync failure (an injected
 *     store fault), from any core event: the process exits by design
 *     (store.h, "fsyncgate"). The node goes silent until the simulator
 *     restarts it (it does so for every node whose fsync failed);
 *   - a store error out of core_start (CHORUS_EIO, CHORUS_ENOSPC,
 *     CHORUS_ESYNCFAILED: an injected fault while booting): the process
 *     exits at boot and its supervisor starts it again; here the core is
 *     freed and a fresh one boots 100 ms later. Meanwhile clients are
 *     refused (CHORUS_ECLOSED) and messages are lost.
 *
 * INSPECTION (the convergence and final-state checkers)
 *
 * inspect() reads the node's object for the key straight from its store
 * (STORE_DATA, store_data_key(ring_token_of(key), key)), decodes it with
 * crdt_obj_decode and reports kv values (siblings that are not
 * tombstones), the counter's value (no op ids: the PN-counter keeps only a
 * window of them) or the set's members. The digest is FNV-1a of the
 * object's canonical re-encoding, so equal states give equal digests.
 * Whether the node is a replica is read in its core's ring (core_ring): a
 * node that is not a natural replica of the key (a pending one included)
 * answers CHORUS_ENOTFOUND, and so does a node told it was taken out of
 * the cluster (core_evicted: it serves nothing, and its ring may be stuck
 * at the epoch it left in); a replica without the key an empty view.
 * While no core runs (the 100 ms between a failed boot and its retry) it
 * answers CHORUS_ECLOSED (sim.h: "cannot tell now"), so that sim_converged
 * waits for it: a copy of a ring from an earlier incarnation does not exist
 * (a crash frees it all), and borrowing another node's would be a guess
 * about what this node will think once it runs.
 */
#ifndef CHORUS_CORE_SIM_ADAPTER_H
#define CHORUS_CORE_SIM_ADAPTER_H

#include <stdint.h>

#include "core.h"
#include "sim.h"

/* What every node of a run is configured with (sim_config.ops_arg; NULL
 * means all defaults). Zero fields take the defaults in brackets. */
struct core_sim_options {
  const char *replication;    /* ring spec, e.g. "3" or "dc0:3,dc1:3" ["3"] */
  uint32_t vnodes;            /* ring tokens per node [64: fast to build] */
  int32_t r, w;               /* node defaults for requests' 0 [QUORUM] */
  chorus_ms timeout_ms;       /* coordinator timeout [1000: below the
                               * simulated client's 2 s] */
  int sloppy;                 /* 1: sloppy quorum by default [strict] */
  uint8_t read_repair;        /* enum wire_read_repair [repl's: async] */
  uint64_t hint_max_bytes;    /* [repl's: 64 MiB] */
  chorus_ms hint_max_age_ms;  /* [repl's: 3 h] */
  chorus_ms hint_interval_ms; /* hint replay round [repl's: 1000] */
  uint32_t hint_batch;        /* [repl's: 16] */
  int no_swim;                /* 1: static membership (core_config.gossip
                               * false): every roster node is alive */
  int swim_lan;               /* 1: SWIM's LAN timing [local timing]; use
                               * it across datacenters (40-150 ms links
                               * against the local profile's 100 ms probe
                               * timeout make every probe fail) */
  uint64_t joining;           /* bit k: node k (< 64) is not in the roster
                               * and joins as RING_JOINING (see above);
                               * needs SWIM */
  uint32_t max_object_bytes;  /* repl's byte budget of an object [8 MiB] */
  uint32_t value_pad;         /* bytes of padding after every PUT value's
                               * 8 (large values; replies are read by
                               * their first 8) [0] */
  int metadata;               /* 1: ownership from the metadata Raft group
                               * (core.h, CLUSTER METADATA): the roster
                               * nodes found it together (core_found with
                               * every roster address), a joiner asks to
                               * join; needs SWIM */
  /* Observers of the metadata group (test_meta_sim's checkers; NULL:
   * none): the core's meta_answer and meta_applied effects (core.h), with
   * @meta_observer and the node's index. */
  void *meta_observer;
  void (*meta_answer)(void *observer, int node, uint64_t cookie, int status);
  void (*meta_applied)(void *observer, int node, uint64_t index,
                       const struct meta_state *s);
  uint8_t stream_pulls;   /* pulls in flight a receiver (core_config; 0: 4) */
  bool stream_pull_empty; /* core_config's: pull empty stretches too */
  chorus_ms aae_interval_ms; /* anti-entropy exchanges (core_config)
                              * [0: none] */
  /* Tombstone collection (replication/repl.h, TOMBSTONE COLLECTION):
   * the mode [REPL_GC_REPAIR], REPL_GC_TIMEOUT's timeout, the core's walk
   * period [core's: 10 s]. When @purged_sum is set, every incarnation adds
   * its repl_stats tombstones_purged to it as it ends (a crash included):
   * with core_sim_purged, the purges of a whole run. */
  enum repl_tombstone_gc tombstone_gc;
  chorus_ms tombstone_gc_timeout_ms;
  chorus_ms gc_interval_ms;
  uint64_t *purged_sum;
  /* A keyspace with a replication of its own (issue 21; ring.h,
   * replication classes): non-NULL, the workload's odd kv keys ("kv1",
   * "kv3", ...) live in keyspace CORE_SIM_KEYSPACE, replicated by this
   * spec (e.g. "1" under a cluster's "3"): their requests name it (a node
   * that does not know it yet refuses them), and inspection and the
   * functions below read and place them as the nodes store them
   * ([0][id][key], its class's replicas). The test creates the keyspace
   * through the metadata (core_sim_keyspace_create). */
  const char *keyspace_repl;
  uint32_t batch_events; /* a node's loop iteration, in events: the
                          * adapter calls core_flush (the replica writes
                          * deferred so far, applied and answered) after
                          * every this many events of a node, and not
                          * between, so batches span events and other
                          * requests see deferred writes [0, 1: every
                          * event] */
  int sets_as_maps;      /* 1: the workload's set keys are maps (issue 21):
                          * SET_ADD is a MAP_UPDATE adding the member to
                          * the set field "s" of the nested map "m",
                          * SET_READ a MAP_READ answering that field, and
                          * inspection reads it from the stored map, so
                          * the set checkers judge maps */
  int planted_early_ack; /* a planted bug, for the checkers' own test:
                          * the adapter answers every write OK at once
                          * and drops the core's real answer */

  /* Locks (issue 23; test_lock_sim): repl's lock_skew_ms (chorusd
   * --lock-skew-ms) [0: repl's 500], negative for 0, no allowance (a
   * planted bug); and a planted bug for the fencing checker: every
   * FENCED_PUT of an odd request id goes out with its token + 1 (as if
   * the resource compared them off by one, and remembered that). */
  int64_t lock_skew_ms;
  int planted_fence_plus1;
};

extern const struct sim_node_ops core_sim_ops;

/* ------------------------------------------------------------------------
 * Named configurations (the test suite and repl-sim share them)
 * ------------------------------------------------------------------------ */

/* One configuration: cluster shape, protocol options, quorum sizes. */
struct core_sim_preset {
  const char *name;
  const char *what; /* one line for humans */
  int nodes, dcs;
  int r, w; /* asked by every request (0: node default) */
  struct core_sim_options opt;
};

/* core_sim_presets: the table, terminated by an entry with name NULL:
 *   rw11 rw22 rw13 rw31   3 nodes, N=3, (R,W) as named
 *   n5                    5 nodes, N=3, QUORUM (forwarding on every
 *                         request that lands on a non-replica)
 *   dc2                   6 nodes in 2 datacenters, "dc0:3,dc1:3",
 *                         LOCAL_QUORUM reads and writes, SWIM LAN timing */
const struct core_sim_preset *core_sim_presets(void);

/* core_sim_preset_find: the preset called @name, or NULL. */
const struct core_sim_preset *core_sim_preset_find(const char *name);

/* core_sim_preset_apply: fills @rc (sim_run_defaults with core_sim_ops,
 * swarm faults) from @p; rc->sim.ops_arg points at p->opt, so @p must
 * outlive every run of @rc (the table entries do). */
void core_sim_preset_apply(struct sim_run_config *rc,
                           const struct core_sim_preset *p);

/* core_sim_brutal: replaces @rc's faults with fixed heavy rates and turns
 * the swarm off (every seed gets all of them): drop 0.3 of datagrams, 2
 * partitions, 2 clogs, 3 crashes, 1 store fault and 0.5 clock jumps per
 * second, fsync up to 20 ms. Swarm seeds are often calm (each knob is on
 * with probability 1/2); these are never. */
void core_sim_brutal(struct sim_run_config *rc);

/* ------------------------------------------------------------------------
 * Looking inside a running cluster, acting on it (scenario tests)
 * ------------------------------------------------------------------------ */

/* core_sim_core: node @node's core (borrowed until the node's next event),
 * or NULL while no core runs (the node is down, or between a failed boot
 * and its retry). Read it with core_ring, core_swim, core_repl. */
const struct core *core_sim_core(struct sim *s, int node);
/* core_sim_newest_meta: the newest metadata (highest applied index) any
 * running node of the first @nodes serves; NULL when none does yet. */
const struct meta_state *core_sim_newest_meta(struct sim *s, int nodes);

/* core_sim_exited: node @node's store failed a sync and the process
 * exited (silent until the engine kills or restarts it: a scenario that
 * models a supervisor calls sim_restart). */
int core_sim_exited(struct sim *s, int node);

/* core_sim_repl: core_repl of node @node's core, or NULL (as above). */
const struct repl *core_sim_repl(struct sim *s, int node);

/* core_sim_do: runs the operator command @op on live node @node's core now
 * (sim_node_do), with the node's clocks, its effects mapped as for any
 * event and its timer re-armed afterwards: core_leave, core_join through
 * chosen seeds. CHORUS_ESYNCFAILED from @op makes the node exit, as from
 * any event. Returns @op's error (which does not fail the run), or
 * CHORUS_ECLOSED (no core runs, or the node exited), CHORUS_EINVAL. */
int core_sim_do(struct sim *s, int node,
                int (*op)(struct core *c, chorus_ms now, chorus_ms wall,
                          void *arg),
                void *arg);

/* core_sim_id: node @node's chorus_node_id (the simulator's ids; read
 * through any node that is up), or 0 when every node is down. */
chorus_node_id core_sim_id(struct sim *s, int node);

/* core_sim_dead: whether node @node's store (up or down) holds a kv
 * object for @key whose siblings are all tombstones (a dead object the
 * collector has not purged). Returns 1, 0, or a store or decode error. */
int core_sim_dead(struct sim *s, int node, const char *key);

/* core_sim_purged: the tombstones purged by the incarnations running now
 * (repl_stats tombstones_purged, summed over the nodes that are up). */
uint64_t core_sim_purged(struct sim *s);

/* core_sim_wipe: kills @node and replaces its disk by an empty one (a
 * disk replacement); restarted, it joins through seeds under its old id,
 * as an operator would start it. */
int core_sim_wipe(struct sim *s, int node);

/* core_sim_natural: the natural replicas of @key (node indexes, primary
 * first) in node @node's ring, up to @cap of them into @out. Returns their
 * number, or CHORUS_ECLOSED (no core runs), CHORUS_EUNAVAILABLE. */
int core_sim_natural(struct sim *s, int node, const char *key, int *out,
                     int cap);

/* core_sim_stored: whether node @node's store (up or down) holds kv
 * @key with a live sibling of value @value. Returns 1, 0, or a store or
 * decode error (CHORUS_ECORRUPT). */
int core_sim_stored(struct sim *s, int node, const char *key, uint64_t value);

/* core_sim_holds: whether node @node's store (up or down) holds an object
 * of @type for @key at all (a natural or a pending replica got a write).
 * Returns 1, 0, or a store or decode error. */
int core_sim_holds(struct sim *s, int node, enum sim_op_type type,
                   const char *key);

/* The keyspace of core_sim_options.keyspace_repl. */
#define CORE_SIM_KEYSPACE "own"

/* core_sim_in_keyspace: whether the workload's @key lives in the
 * keyspace of @opt (keyspace_repl set and @key an odd kv key). */
int core_sim_in_keyspace(const struct core_sim_options *opt, const char *key);

/* core_sim_keyspace_create: proposes, through node @node's metadata
 * (core_meta_propose, the command `chorus keyspace create` commits), the
 * kv keyspace CORE_SIM_KEYSPACE replicated by @spec, with @cookie. Returns
 * the proposal's error (CHORUS_EINVAL for a bad spec), CHORUS_ECLOSED
 * when no core runs there. */
int core_sim_keyspace_create(struct sim *s, int node, const char *spec,
                             uint64_t cookie);

#endif /* CHORUS_CORE_SIM_ADAPTER_H */
