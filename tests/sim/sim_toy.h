/* sim_toy.h: two small protocols of the simulator's own, which prove the
 * engine and the checkers before SWIM and the coordinator exist.
 *
 * sim_toy_naive: a replicated register as people write it on a whiteboard.
 *   Every node keeps one value per key, versioned by a local counter; a put
 *   bumps the node's own counter, writes without a sync barrier, answers OK
 *   at once and pushes the value to the peers, which keep the higher
 *   (counter, node). No quorum, no causality: concurrent writes overwrite
 *   each other, so under partitions (or mere concurrency) it loses
 *   acknowledged writes, and the lost-write checker must say so. kv only.
 *
 * sim_toy_gossip: correct enough to pass every seed. Every node replicates
 * every key (N = nodes) and handles all three types:
 *   kv       sibling sets of (dot, value) with a grow-only set of covered
 *            dots (a tombstone-heavy cousin of DVV): a put with a context
 *            covers the dots the client saw; merge is set union minus
 *            covered. Dots are (node, epoch, counter), the epoch made
 *            durable at startup before any dot is minted, so a crash never
 *            reuses a dot.
 *   counter  the set of applied (op id, amount): idempotent, exact.
 *   set      a grow-only set.
 * A write is acknowledged once W replicas made it durable (coordinator's
 * sync barrier plus peers' acks after their own barriers); a read merges R
 * replies. Every 100-300 ms each node sends its full state to one random
 * peer, so replicas converge once the network heals.
 */
#ifndef CHORUS_SIM_TOY_H
#define CHORUS_SIM_TOY_H

#include "sim.h"

struct sim_toy_options {
  int r, w;            /* defaults when a request asks for 0 (default 1, 1) */
  chorus_ms timeout;   /* coordinator's request timeout (default 1000 ms) */
  int ack_before_sync; /* a planted bug: acknowledge writes at once, before
                        * any sync barrier or replica; crashes must expose it */
};

extern const struct sim_node_ops sim_toy_naive;
extern const struct sim_node_ops sim_toy_gossip;

#endif /* CHORUS_SIM_TOY_H */
