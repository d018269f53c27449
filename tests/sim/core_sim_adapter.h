/* core_sim_adapter.h: the coordinator and replica protocol (replication/
 * repl.h) with SWIM membership (ring/swim.h) as nodes of the deterministic
 * cluster simulator (tests/sim).
 *
 * WHAT ONE SIMULATED NODE IS
 *
 * A struct sim_node_ops (core_sim_ops) whose instance holds, for one
 * incarnation of node i, exactly what chorusd's driver will hold:
 *
 *   one ring snapshot   built at create() from sim_node_config: every node
 *                       RING_NORMAL, id ids[i], datacenter "dc<dc[i]>",
 *                       rack "r<i % 3>", the options' replication spec;
 *                       never rebuilt (no joins or leaves here)
 *   one struct repl     over the simulator's store for the node (lent at
 *                       SIM_EV_START), configured from the options
 *   one struct swim     (unless swim is off) whose member_changed feeds
 *                       repl_member: ALIVE/SUSPECT is alive, DEAD, LEFT
 *                       and REMOVED are down
 *
 * WIRING (what the libuv driver in node/ does with sockets)
 *
 *   messages   every message starts with a 1-byte tag:
 *                'd' SWIM datagram   sim_fx_send (lossy, like UDP)
 *                's' SWIM stream     sim_fx_send_stream (TCP)
 *                'r' repl message    sim_fx_send_stream: the whole frame of
 *                                    wire_encode (u32 length + body), decoded
 *                                    with wire_decode(WIRE_LIMITS_PEER)
 *              A repl frame that fails to decode is a bug (our own encoder
 *              wrote it): handle() fails the run with it.
 *   requests   SIM_EV_REQUEST becomes a struct wire_msg (GET, PUT with its
 *              context, COUNTER_ADD with op_id = the request id,
 *              COUNTER_READ, SET_ADD of one member, SET_READ; the request's
 *              r/w go into wire_options as they are, 0 = node default, a
 *              negative number a named level) for repl_client, with
 *              origin.cookie = the request id. repl's reply effect becomes
 *              sim_fx_reply (values, context, counter; WIRE_ERROR's code as
 *              the status with repl's maybe_applied).
 *   timers     repl's timer ids and SWIM's deadline timer share
 *              sim_fx_timer: SWIM's ids have the top bit set plus a
 *              generation (only the newest counts); repl's ids go through a
 *              slot table (the simulator's id is the slot, which keeps
 *              repl's own id whatever bits it uses).
 *   syncs      repl's sync effect is sim_fx_sync with repl's token;
 *              SIM_EV_SYNC_DONE is repl_sync_done.
 *
 * ERRORS
 *
 * An error returned by a repl or SWIM event, or by an effect, is a bug and
 * handle() returns it (the simulator fails the run), with two exceptions,
 * both the way chorusd is meant to die and come back:
 *   - CHORUS_ESYNCFAILED, the store's sticky fsync failure (an injected
 *     store fault): the process exits by design (store.h, "fsyncgate").
 *     The node goes silent until the simulator restarts it (it does so
 *     for every node whose fsync failed);
 *   - a store error out of repl_start (CHORUS_EIO, CHORUS_ENOSPC: an
 *     injected read or write fault while booting): the process exits at
 *     boot and its supervisor starts it again; here a fresh instance is
 *     started 100 ms later (the failed one emitted no effect). Meanwhile
 *     clients are refused (CHORUS_ECLOSED) and messages are lost.
 *
 * INSPECTION (the convergence and final-state checkers)
 *
 * inspect() reads the node's object for the key straight from its store
 * (STORE_DATA, store_data_key(ring_token_of(key), key)), decodes it with
 * crdt_obj_decode and reports kv values (siblings that are not
 * tombstones), the counter's value (no op ids: the PN-counter keeps only a
 * window of them) or the set's members. The digest is FNV-1a of the
 * object's canonical re-encoding, so equal states give equal digests. A
 * node that is not a natural replica of the key (repl_is_replica) answers
 * CHORUS_ENOTFOUND; a replica without the key an empty view.
 */
#ifndef CHORUS_CORE_SIM_ADAPTER_H
#define CHORUS_CORE_SIM_ADAPTER_H

#include <stdint.h>

#include "repl.h"
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
  int no_swim;                /* 1: no membership: every peer is alive */
  int swim_lan;               /* 1: SWIM's LAN timing [local timing]; use
                               * it across datacenters (40-150 ms links
                               * against the local profile's 100 ms probe
                               * timeout make every probe fail) */
  int planted_early_ack;      /* a planted bug, for the checkers' own test:
                               * the adapter answers every write OK at once
                               * and drops repl's real answer */
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
 * Looking inside a running cluster (scenario tests)
 * ------------------------------------------------------------------------ */

/* core_sim_repl: node @node's struct repl (borrowed until the node's next
 * crash), or NULL while it is down. */
struct repl *core_sim_repl(struct sim *s, int node);

/* core_sim_id: node @node's chorus_node_id (the simulator's ids; read
 * through any node that is up), or 0 when every node is down. */
chorus_node_id core_sim_id(struct sim *s, int node);

/* core_sim_natural: the natural replicas of @key (node indexes, primary
 * first) in node @node's ring, up to @cap of them into @out. Returns their
 * number, or CHORUS_ECLOSED (node down), CHORUS_EUNAVAILABLE. */
int core_sim_natural(struct sim *s, int node, const char *key, int *out,
                     int cap);

/* core_sim_stored: whether node @node's store (up or down) holds kv
 * @key with a live sibling of value @value. Returns 1, 0, or a store or
 * decode error (CHORUS_ECORRUPT). */
int core_sim_stored(struct sim *s, int node, const char *key, uint64_t value);

#endif /* CHORUS_CORE_SIM_ADAPTER_H */
