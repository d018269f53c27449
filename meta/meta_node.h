/* meta_node.h: one node's member of the metadata Raft group: Debian's
 * libraft (canonical raft 0.15) driven through a raft_io that does no I/O
 * of its own (DESIGN.md §10). Events in, effects out, like the rest of the
 * node core, so chorusd and the simulator drive the very same code.
 *
 * HOW RAFT'S I/O BECOMES EVENTS AND EFFECTS
 *
 *   raft_io method        what meta_node does
 *   load, bootstrap       read / write STORE_META at once (keys "raft/...")
 *   set_term, set_vote    a store write at once, not yet synced
 *   append, truncate,     store writes at once; append and snapshot_put
 *   snapshot_put          complete once a sync barrier covers them (the
 *                         sync effect, answered by meta_node_sync_done)
 *   send                  encoded at once (meta_msg), then held until every
 *                         write made so far is durable, then the send
 *                         effect; raft's callback runs after its call
 *   snapshot_get          read at once, completed after the call
 *   time, random          the event's @now, the node's own PRNG
 *   start (tick)          a deadline: meta_node_next_deadline
 *
 * The gate on sends is Raft's persistence rule (Raft §3.8, figure 3.1:
 * "updated on stable storage before responding to RPCs"): no vote, no
 * AppendEntries result and no leader message leaves before the term, vote
 * and entries it depends on are on disk. Callbacks never run inside the
 * raft call that asked for the I/O: they are queued and run when it
 * returns, as libuv would run them on a later loop iteration.
 *
 * THE STATE MACHINE AND WHAT IS SERVED
 *
 * Committed commands are applied to a struct meta_state (meta.h); after
 * each applied command the state is written to STORE_META ("meta/state")
 * so that a restarted node serves the last committed metadata at once,
 * before it hears from any leader (Raft re-applies log entries only once
 * it learns the commit index). The state effect hands every new state to
 * the owner, which builds the ring from it.
 *
 * BOOTSTRAP, JOIN, RECONCILE
 *
 * A node with Raft state on disk starts with it (a restarted node rejoins
 * its own cluster, never a new one). A pristine node either bootstraps
 * (meta_node_bootstrap: the founders, all with the same configuration, as
 * etcd's initial-cluster) or starts empty (meta_node_start_empty) and asks
 * to join. Every started node proposes its own JOIN until its member is in
 * the committed state (founders ask for NORMAL, others for JOINING; only
 * the first member is applied NORMAL, meta.h TOPOLOGY CHANGES), again every
 * second while another change refuses it (EBUSY). The leader reconciles,
 * one change at a time: Raft's configuration follows the committed members
 * (meta_state_voters vote, the others are standbys that receive the log,
 * LEFT and REMOVED ones are taken out, a LEFT one once it holds the entry
 * that made it so), and a topology change whose every receiver has
 * committed STREAMED at its epoch is finished (FINISH).
 *
 * Errors: event functions return CHORUS_OK, CHORUS_ENOMEM, or a store
 * error after which the node must stop (CHORUS_ESYNCFAILED, CHORUS_EIO,
 * CHORUS_ECORRUPT from load).
 */
#ifndef CHORUS_META_NODE_H
#define CHORUS_META_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "chorus_trace.h"
#include "chorus_types.h"
#include "meta.h"
#include "store.h"

/* Sync tokens of the metadata layer carry this bit, so that a driver that
 * shares one sync effect with replication can tell them apart. */
#define META_SYNC_TOKEN_BIT (UINT64_C(1) << 63)

struct meta_node_config {
  chorus_node_id self;
  uint64_t cluster;               /* cluster id; foreign messages refused */
  struct meta_member self_member; /* proposed by this node about itself */
  struct ring_replication replication; /* the bootstrap's settings */
  uint32_t election_ms;                /* 0: 1000 */
  uint32_t heartbeat_ms;               /* 0: 100 */
  uint32_t snapshot_threshold;         /* 0: 256 entries */
  uint32_t snapshot_trailing;          /* 0: 64 entries */
  uint64_t seed;                       /* the election timer's randomness */
  const struct chorus_tracer *tracer;  /* borrowed; may be NULL */
};

struct meta_node_effects {
  void *ctx;
  /* send: meta_msg bytes (borrowed) to @to: a WIRE_META frame. Delivery
   * is not guaranteed. Errors: CHORUS_ENOMEM only. */
  int (*send)(void *ctx, chorus_node_id to, const void *data, size_t len);
  /* sync: meta_node_sync_done(@token) once writes up to @seq are durable. */
  int (*sync)(void *ctx, chorus_seq seq, uint64_t token);
  /* state: the committed state changed (borrowed for the call). */
  void (*state)(void *ctx, const struct meta_state *s);
  /* answer: proposal or read @cookie (non-zero) ended with @status; for a
   * command, @result is meta_state_apply's result. May be NULL. */
  void (*answer)(void *ctx, uint64_t cookie, int status, const char *text);
  /* applied: the FSM reached @index (a command applied, or a snapshot
   * restored at it): @s is its state (borrowed). For checkers; may be
   * NULL. */
  void (*applied)(void *ctx, uint64_t index, const struct meta_state *s);
};

struct meta_node;

int meta_node_new(const struct meta_node_config *cfg,
                  const struct meta_node_effects *fx, struct store *store,
                  struct meta_node **out);
void meta_node_free(struct meta_node *n);

/* meta_node_load: reads what STORE_META holds: the served state (the
 * state effect, if any) and Raft's term, vote, log and snapshot; a node
 * that has Raft state starts Raft with it. Call once. */
int meta_node_load(struct meta_node *n, chorus_ms now);
/* meta_node_started: Raft runs (loaded, bootstrapped or started empty). */
bool meta_node_started(const struct meta_node *n);

struct meta_founder {
  chorus_node_id id;
  bool voter;
};
/* meta_node_bootstrap: a pristine node (not started) starts as one of
 * @nf founders. Every founder must be given the same list.
 * Errors: CHORUS_EINVAL (started, or not among @f), CHORUS_ENOMEM, store
 * errors. */
int meta_node_bootstrap(struct meta_node *n, const struct meta_founder *f,
                        size_t nf, chorus_ms now);
/* meta_node_start_empty: a pristine node starts with no configuration and
 * asks to join (its own JOIN, proposed through the contacts). */
int meta_node_start_empty(struct meta_node *n, chorus_ms now);

/* meta_node_contact: @id is a member worth asking (a SWIM member that is
 * alive); used to find someone to propose through when no leader is
 * known. */
void meta_node_contact(struct meta_node *n, chorus_node_id id, bool alive);

int meta_node_recv(struct meta_node *n, chorus_node_id from, const void *data,
                   size_t len, chorus_ms now);
int meta_node_tick(struct meta_node *n, chorus_ms now);
chorus_ms meta_node_next_deadline(const struct meta_node *n);
int meta_node_sync_done(struct meta_node *n, uint64_t token, int status,
                        chorus_ms now);

/* meta_node_propose: commits @c through the leader (this node or, by a
 * PROPOSE message, another), retried until @timeout_ms; answered once
 * through the answer effect with @cookie: the command's result once
 * applied here, or CHORUS_EUNAVAILABLE (no leader reachable: a minority
 * side), CHORUS_ETIMEDOUT. */
int meta_node_propose(struct meta_node *n, const struct meta_cmd *c,
                      uint64_t cookie, chorus_ms timeout_ms, chorus_ms now);
/* meta_node_read: a linearizable read: answered once this node, as
 * leader, has committed a barrier (Raft §6.4); the caller then reads
 * meta_node_state. Not leader: CHORUS_EUNAVAILABLE at once. */
int meta_node_read(struct meta_node *n, uint64_t cookie, chorus_ms now);

/* Observation */
const struct meta_state *meta_node_state(const struct meta_node *n);
struct meta_node_info {
  int raft_state; /* RAFT_UNAVAILABLE, RAFT_FOLLOWER, RAFT_CANDIDATE,
                     RAFT_LEADER */
  chorus_node_id leader;
  uint64_t term, commit_index, applied_index, last_index;
  uint64_t proposals, refused, sends_held, foreign, bad_messages;
  uint64_t store_errors;
  uint64_t duplicates;  /* commands committed twice, applied once (meta.h,
                           EXACTLY ONCE) */
  uint64_t ae_clamped;  /* answers to AppendEntries that claimed a stale
                           tail (meta_node.c, clamp_append_entries) */
  uint64_t term_raises; /* Raft messages with a term above ours (elections,
                           and any term from the future: a line each) */
  uint64_t revivals;    /* raft restarted in place after a refused write */
};
void meta_node_info(const struct meta_node *n, struct meta_node_info *out);

/* meta_node_conflict: this node started with no metadata on disk and
 * found its name (its id) already held by a member at another address:
 * it is not that member and must not serve as it (a replacement is the
 * membership-change issue's `cluster replace`). */
bool meta_node_conflict(const struct meta_node *n);
/* meta_node_restoring: this node's store does not hold what its member
 * owns, so it must not serve replica reads nor streams: it started with
 * no metadata on disk and is not (yet) known as a new member, or found
 * its member already NORMAL at its own address (its disk was replaced:
 * it proposes REPLACE of itself), or its member is REPLACING. */
bool meta_node_restoring(const struct meta_node *n);
/* meta_node_role: @id's role in Raft's configuration: -1 absent, else
 * RAFT_VOTER, RAFT_STANDBY or RAFT_SPARE. */
int meta_node_role(const struct meta_node *n, chorus_node_id id);

#endif /* CHORUS_META_NODE_H */
