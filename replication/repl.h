/* repl.h: the coordinator and replica protocol of one chorus node: tunable
 * quorums, read repair, hinted handoff, forwarding (DESIGN.md §4; Dynamo
 * §4.5-4.6; Riak's and Cassandra's request options).
 *
 * WHAT IT IS
 *
 * One struct repl per node, a sans-I/O state machine (DESIGN.md §3). The
 * driver (chorusd's libuv loop in node/, or the simulator's adapter in
 * tests/sim) hands it events and it answers through struct repl_effects:
 *
 *   events in                           effects out
 *     repl_start      boot, restart       send    a wire message to a peer
 *     repl_client     a client request    reply   a request's answer
 *     repl_peer       a peer's message    timer   a one-shot timer
 *     repl_timer      a timer fired       sync    a sync barrier on the store
 *     repl_sync_done  a barrier ended
 *     repl_member     a peer went up or down (SWIM)
 *     repl_set_ring   a new ring snapshot
 *
 * Messages are struct wire_msg (client/wire/wire.h): the structs are the
 * protocol's schema; encoding and framing are the driver's. Every effect
 * is called synchronously from inside the event call and borrows its
 * arguments for the call only: the driver encodes or copies them at once.
 * The instance must not be re-entered from an effect. Reads and unsynced
 * writes go straight to the node's struct store (synchronous, DESIGN.md
 * §3); durability is the sync effect, answered by repl_sync_done().
 *
 * THE WRITE PATH (PUT, DELETE, COUNTER_ADD, SET_ADD, SET_REMOVE, LWW_SET,
 * LWW_DELETE)
 *
 * The coordinator must be a natural replica of the key; any other node
 * forwards the request, unchanged, to the first live natural replica (one
 * hop: a request that arrives from a peer is never forwarded again) and
 * relays the answer. A node that gets a peer's request for a key it is no
 * replica of in its ring (the two rings differ: a change just finished on
 * one of them) answers CHORUS_ESTALE having done nothing, and the
 * forwarder routes the request again with its ring then: here if it is a
 * replica by now, else to a live natural replica not asked yet
 * (REPL_FORWARD_TRIES in all; then CHORUS_EUNAVAILABLE). The coordinating
 * replica
 *   1. resolves the request's options against the key's preference list and
 *      the live members: an impossible level (w > N, a LOCAL level without
 *      datacenters) is CHORUS_EINVAL, too few live replicas (natural, plus
 *      fallbacks when sloppy) CHORUS_EUNAVAILABLE, both before anything is
 *      written or sent;
 *   2. reads its object, applies the update with a dot of its own actor
 *      (below), refuses it with CHORUS_ETOOBIG when the result would be
 *      over the object's byte budget (below: nothing written or sent), and
 *      writes the object, then asks for a sync barrier;
 *   3. once the batch is durable it counts itself and sends the object to
 *      the other replicas (REPLICA_WRITE, durable flag), which join it into
 *      their own object, make it durable and acknowledge; a natural replica
 *      that membership holds down is skipped, or, with a sloppy quorum,
 *      replaced by the next live fallback of its datacenter (none there:
 *      not replaced, the hint stays here), which keeps the object as a
 *      hint for it (HINT_DELIVER) and counts toward w (never toward pw);
 *   4. answers OK once the acknowledgements meet w and pw (WRITE_REPLY2:
 *      the context, the live siblings, the object's size and its warnings,
 *      WIRE_REPLY_SIBLINGS past the sibling cap's warn level and
 *      WIRE_REPLY_LARGE past half the budget), or ETIMEDOUT (with the
 *      count, "may have been applied") when the timeout fires first;
 *   5. when every replica asked has answered, or at the timeout, writes a
 *      hint for each replica that did not acknowledge it (below).
 * Sending only after the coordinator's own barrier costs one fsync of
 * latency and buys this: no replica ever holds a write that the
 * coordinator could lose in a crash and then mint again under the same dot.
 *
 * HINTS FOR THE REPLICAS THAT DID NOT ANSWER (Cassandra's way). A hint
 * says "target T may be missing key K". It is written when the write's
 * operation ends, for each replica that had not acknowledged it by then
 * (down and not asked, refused, or silent until the timeout), with a sync
 * barrier of its own; a write every replica acknowledged writes none.
 * (Until issue 27 a hint per replica was written ahead with the object and
 * deleted by the acknowledgement: two puts and two deletes per QUORUM
 * write at N=3, about 28% of node CPU per request at rw50.) The guarantee that
 * changed: a write acknowledged at w < N whose coordinator crashes before
 * its operation ended leaves no hint for the replicas still silent; the w
 * replicas that acknowledged it hold it durably (no acknowledged write is
 * lost), and anti-entropy brings it to the others within an exchange
 * interval rather than hint replay. One hint per (target, key): replay
 * sends the current object, which covers every write the hint stood for
 * (a join). Replay is periodic and triggered when membership sees the
 * target alive, rate-limited, and idempotent; hints are bounded per target
 * in bytes and in age: over a bound the hint is dropped and counted
 * (anti-entropy repairs the gap).
 *
 * HINTS FOLLOW OWNERSHIP. A hint is for a replica (natural or pending) of
 * its key in this node's ring, never for a node that is no longer one: it
 * left or was removed (it is gone from the ring), or a topology change
 * gave the key's range to others. After every ring change the hint round
 * checks each target's hints against the new ring, a bounded number per
 * round (64 x hint_batch), down targets included, and replay checks each
 * hint before sending it. A hint whose target no longer owns the key is
 * moved, with its age: hinted to each owner of the key but this node (as
 * a replica at a later epoch re-hints a write, repl_replica.c), carrying
 * this node's copy when this node owns the key no more (it may be cleaned
 * up), and joined into this node's store when it is an owner and the hint
 * carried the object; the old hint is deleted in the same batch
 * (repl_stats.hints_moved). With no owner to move it to, or no copy to
 * hand on, it is dropped (hints_dropped_not_owner), with a trace line
 * saying why. A fallback handed a hint for a non-owner moves it at once.
 *
 * THE READ PATH (GET, COUNTER_READ, SET_READ, LWW_READ)
 *
 * The coordinating replica reads its own object and asks every other live
 * natural replica (REPLICA_READ), waits for r answers (itself included),
 * joins them and answers: kv siblings without tombstones plus the causal
 * context (GET_REPLY2, with the object's size and warnings), a set's
 * members plus its whole causal context (SET_REPLY; a SET_REMOVE with it
 * drops only the adds it saw, repl_write.c), a register's winning write
 * with its stamp (LWW_REPLY; answers stamped beyond THE CLOCK BOUND OF
 * LWW REGISTERS are left out); not found is an empty answer,
 * not an error. Read repair sends
 * the joined object to each replica whose answer lacked something, and
 * joins it into the coordinator's own: `async` (the default) after
 * answering, also for answers that arrive later; `blocking` before
 * answering, waiting for the repaired replicas' acknowledgements; `off`.
 *
 * OBJECTS TOO BIG (the byte budget, below; issue 17). The budget is the
 * coordinator's rule, so an object can still outgrow it: written by an
 * older node that had none, or joined from writes that different
 * coordinators accepted concurrently, each within it. Three rules keep
 * such an object readable and every connection up:
 *   - A GET answers at most the budget plus REPL_FRAME_RESERVE: an object
 *     within the budget always reads whole; a larger one is answered
 *     WIRE_REPLY_TRUNCATED, with its first siblings (dot order, as many as
 *     fit), the count of all, and the context of all, so that a PUT with
 *     it replaces every sibling, also those the client never saw (it was
 *     told). That write shrinks the object, and the key works again.
 *   - A replica whose copy does not fit a peer frame answers REPLICA_READ
 *     with ERROR CHORUS_ETOOBIG, never with a part of it: the coordinator
 *     would join the part, answer its context, and a write with that
 *     context would drop what was left out. The coordinator counts the
 *     refusal toward nothing (r counts copies it holds) and, once every
 *     asked replica answered and r cannot be met, answers ETOOBIG at once
 *     (a read with r = 1 at a replica answers from its own copy,
 *     truncated).
 *   - Nothing over a peer frame is sent: read repairs and hint replays of
 *     such an object are skipped (counted, repl_stats.unsent; the hint
 *     stays) until a write resolves the key.
 *
 * THE REPLICA SIDE never refuses a join over the budget (REPLICA_WRITE,
 * HINT_DELIVER, read repair): joins must succeed for replicas to converge,
 * and refusing one would shrink nothing; the hint behind it would retry
 * forever. The coordinator enforced the budget on what it wrote; what a
 * join adds beyond it comes from concurrent coordinators only, is counted
 * (repl_stats.over_budget), and waits for a client to resolve it. Since
 * every accepted write is within the budget and the budget leaves
 * REPL_FRAME_RESERVE of the peer frame, a write's own messages always
 * fit.
 *
 * ACTORS: the dots a node mints are not in its node id's name but in an
 * actor id derived from (node id, epoch), where the epoch is a counter in
 * the store's meta space made durable at every start before the node
 * coordinates anything (Riak's vnode-vclock lesson). A crash that loses
 * unsynced state can therefore never mint a dot that a replica already
 * holds for a different value. The cost: one version-vector entry per
 * incarnation of a coordinator.
 *
 * A FULL DATA FOLDER (store.h, THE SPACE RESERVE)
 *
 * While the store refuses writes for lack of space, the node refuses the
 * writes it would coordinate with CHORUS_ENOSPC and the store's reason
 * ("data folder full (N bytes free)") before reading or writing anything,
 * and refuses replica writes and hints the same way (their coordinators
 * keep them hinted and replay them later); it keeps answering reads,
 * replica reads and replaying the hints it holds (their deletes wait).
 * A barrier that ends with CHORUS_ENOSPC (the disk filled before the
 * writes reached it) is no failed sync: a coordinated write waiting on it
 * is answered CHORUS_ESYNCFAILED "may have been applied", an
 * acknowledgement carries ENOSPC, and the node goes on. At start the epoch
 * is written like any write; when the store refuses it the epoch stays in
 * memory ("volatile"): the node serves reads and replica work, with
 * operation ids from a random point so that a later incarnation reusing
 * the epoch cannot match them, coordinates no write (no dot may be minted
 * under an epoch that is not durable), and each hint round tries to write
 * it again. After the store reopened (a full disk met by RocksDB), the
 * hint index is rebuilt from the table.
 *
 * CONSISTENCY LEVELS (struct wire_options, resolved per request)
 *
 *   count k    k acknowledgements from any replicas (1..N)
 *   ONE TWO THREE, QUORUM (N/2+1), ALL (N)      N = all natural replicas
 *   LOCAL_ONE, LOCAL_QUORUM    1 or RF(dc)/2+1 from the client's datacenter
 *                              (opts.dc) or else the coordinator's own,
 *                              counting only its replicas; a node of
 *                              another one hands the request to a live
 *                              replica there
 *   EACH_QUORUM                RF(dc)/2+1 in every replicated datacenter
 * pr/pw (same scale) demand that many natural replicas among them; a
 * fallback never counts toward them. Pending replicas (joining nodes) get
 * every write but never count.
 */
#ifndef CHORUS_REPL_H
#define CHORUS_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus_error.h"
#include "chorus_trace.h"
#include "chorus_types.h"
#include "ring.h"
#include "store.h"
#include "wire.h"

/* ------------------------------------------------------------------------
 * Configuration
 *
 * THE BYTE BUDGET OF AN OBJECT. Everything a key holds (every sibling, its
 * dots, the version vector: the encoded object) travels whole between
 * replicas, in one frame, so its size is bounded below the peer frame with
 * room for what travels beside it: max_object_bytes <=
 * REPL_MAX_OBJECT_LIMIT. A coordinated write whose result would exceed the
 * budget is refused (CHORUS_ETOOBIG, nothing written or sent); replica-side
 * joins never refuse (see the replica side, below).
 * ------------------------------------------------------------------------ */

#define REPL_MAX_OBJECT_DEFAULT (8u * 1024 * 1024)
/* 5 s: NTP keeps clocks within tens of ms, a VM resumed from a pause or a
 * host with a broken time source is off by seconds to hours; 5 s lets the
 * first through and stops the second, and is how long a fast node's write
 * can beat later writes of the others (their HLCs do not follow a time
 * they refused). */
#define REPL_MAX_CLOCK_AHEAD_DEFAULT 5000
/* Room a peer frame keeps beside an object: a key (WIRE_MAX_KEY), a
 * context (WIRE_MAX_CONTEXT, in GET replies), message headers. */
#define REPL_FRAME_RESERVE (256u * 1024)
#define REPL_MAX_OBJECT_LIMIT (WIRE_MAX_FRAME_PEER - REPL_FRAME_RESERVE)

/* How tombstones are collected (TOMBSTONE COLLECTION below). */
enum repl_tombstone_gc {
  REPL_GC_REPAIR = 0, /* once anti-entropy shows every replica holds them */
  REPL_GC_TIMEOUT,    /* after a timeout, repaired or not */
  REPL_GC_OFF,        /* never */
};

struct dvv_limits; /* crdt.h */

struct repl_config {
  chorus_node_id self;
  char dc[RING_NAME_MAX]; /* this node's datacenter (LOCAL_* levels) */
  uint64_t seed;          /* the instance PRNG (fallback choice, jitter) */
  /* Defaults for options a request leaves at 0. */
  int32_t r, w;         /* default WIRE_QUORUM */
  chorus_ms timeout_ms; /* default 2000 */
  bool sloppy;          /* default false: set sloppy_default to use it */
  bool sloppy_default;  /* whether @sloppy was given */
  uint8_t read_repair;  /* enum wire_read_repair; default async */
  /* The largest value a PUT and each SET_ADD member may carry; a request
   * over it is refused (CHORUS_ETOOBIG) before anything is read or sent.
   * Default WIRE_MAX_VALUE (chorusd --max-value-bytes). */
  uint32_t max_value_bytes;
  /* Hints. */
  uint64_t hint_max_bytes;   /* per target; default 64 MiB */
  chorus_ms hint_max_age_ms; /* default 3 h (Cassandra's hint window) */
  chorus_ms hint_interval;   /* replay round period; default 1000 ms */
  uint32_t hint_batch;       /* hints in flight per target; default 16 */
  uint32_t fallbacks;        /* fallbacks looked up for sloppy writes; 3 */
  /* The byte budget of one encoded object (above); 0: the default,
   * REPL_MAX_OBJECT_DEFAULT; at most REPL_MAX_OBJECT_LIMIT. */
  uint32_t max_object_bytes;
  /* Tombstone collection (TOMBSTONE COLLECTION): the mode, default
   * REPL_GC_REPAIR, and REPL_GC_TIMEOUT's timeout. */
  enum repl_tombstone_gc tombstone_gc;
  chorus_ms tombstone_gc_timeout_ms;
  /* Anti-entropy (ANTI-ENTROPY below): the tree's segments are 2^aae_bits
   * (0: AAE_TREE_BITS_DEFAULT, 16; every node of a cluster must use the
   * same, an exchange between different ones is refused); repairs are
   * throttled to @aae_keys_per_sec keys and @aae_bytes_per_sec bytes a
   * second (0: 1000 keys/s, 8 MiB/s). */
  uint8_t aae_bits;
  uint32_t aae_keys_per_sec;
  uint64_t aae_bytes_per_sec;
  /* THE CLOCK BOUND OF LWW REGISTERS: an lww object whose HLC time is more
   * than this many ms ahead of this node's wall clock is refused wherever
   * it arrives (a replica write, a hint, a read answer, anti-entropy:
   * CHORUS_ECLOCK), so that one node with a fast clock cannot win every
   * write of the others until real time catches up with it. A streamed
   * range is the exception: its old owner drops it afterwards, so it is
   * taken whole (repl_stream.c).
   * Default REPL_MAX_CLOCK_AHEAD_DEFAULT (chorusd --max-clock-ahead-ms). */
  chorus_ms max_clock_ahead_ms;
  /* The sibling cap of a kv key when it is not dvv's default (a
   * keyspace's own, issue 21): fills *@out and returns true, or returns
   * false for the default. Asked where this node applies a client's kv
   * write as its coordinator. NULL: always the default. */
  bool (*kv_limits)(void *ctx, const uint8_t *key, size_t len,
                    struct dvv_limits *out);
  void *kv_limits_ctx;
  /* LOCKS (repl_paxos.c): a lease is taken from its holder only once it
   * expired this many ms ago on the coordinator's clock, an allowance for
   * the skew between the clocks of the nodes that judge it. Default
   * REPL_LOCK_SKEW_DEFAULT (chorusd --lock-skew-ms). */
  chorus_ms lock_skew_ms;
  const struct chorus_tracer *tracer; /* borrowed for life; may be NULL */
  /* A write or read coordinated here whose answer took @slow_ms or more
   * leaves one line on @warn when it ends (SLOW REQUESTS, repl_timeline.c):
   * its timeline, replica by replica. 0: never (the default). */
  chorus_ms slow_ms;
  /* REPLICA WRITES IN BATCHES (repl_replica.c): a coordinator's durable
   * REPLICA_WRITE is joined at once but deferred into the store's batch
   * (store_defer), and acknowledged only after repl_flush() applied it:
   * one store write per driver iteration for all of them. The driver
   * must then call repl_flush at the end of every batch of events
   * (chorusd: its check phase; the simulator: after each event). false
   * (the default): each one is its own store write. */
  bool defer_replica_writes;
  /* Where what an operator must hear goes (dropped hints, per target and
   * reason, at most once a hint round); borrowed for life; may be NULL. */
  const struct chorus_tracer *warn;
};

#define REPL_LOCK_SKEW_DEFAULT 500u

/* repl_config_defaults: fills @cfg with the defaults above for node @self. */
void repl_config_defaults(struct repl_config *cfg, chorus_node_id self);

/* ------------------------------------------------------------------------
 * Effects
 * ------------------------------------------------------------------------ */

/* Where a request came from: a client connection, or a peer that forwarded
 * it (and must get the answer under the request id it used). */
struct repl_origin {
  bool from_peer;
  chorus_node_id peer; /* when from_peer */
  uint64_t cookie;     /* the driver's own: connection and request id */
};

struct repl_effects {
  void *ctx;
  /* send: @m (borrowed for the call) to peer @to. Delivery is not
   * guaranteed: the protocol tolerates loss, duplication and reordering. */
  int (*send)(void *ctx, chorus_node_id to, const struct wire_msg *m);
  /* reply: the answer to the request that came from @origin: a reply
   * message or WIRE_ERROR. @maybe_applied (writes only): an error after
   * which the write may still take effect (timeouts, partial quorums);
   * false means it certainly did not. Exactly once per request. */
  int (*reply)(void *ctx, const struct repl_origin *origin,
               const struct wire_msg *m, bool maybe_applied);
  /* timer: repl_timer(@id) after @after_ms of the monotonic clock. Timers
   * cannot be cancelled; stale ones are ignored. */
  int (*timer)(void *ctx, uint64_t id, chorus_ms after_ms);
  /* sync: repl_sync_done(@token, ...) once every store write with sequence
   * <= @seq is durable (or the store failed). */
  int (*sync)(void *ctx, chorus_seq seq, uint64_t token);
};

/* ------------------------------------------------------------------------
 * Lifecycle and events. Every event carries the node's monotonic clock
 * (@now, for timeouts) and wall clock (@wall, for hint ages only). An event
 * function returns CHORUS_OK, or an error that means the instance cannot go
 * on (CHORUS_ENOMEM in an effect, a failed store): the driver treats it as
 * fatal for the node (chorusd exits; the simulator fails the run).
 * ------------------------------------------------------------------------ */

struct repl;

/* repl_new: an instance for @cfg (copied) over @store (borrowed for the
 * instance's life; the driver owns it) and @ring (borrowed until the next
 * repl_set_ring; must list @cfg->self). Nothing happens until repl_start.
 * Errors: CHORUS_EINVAL (NULL argument, max_object_bytes over
 * REPL_MAX_OBJECT_LIMIT), CHORUS_ENOMEM. */
int repl_new(const struct repl_config *cfg, struct store *store,
             const struct ring_snapshot *ring, struct repl **out);
void repl_free(struct repl *r);

/* repl_start: boot. Bumps the durable epoch (a sync barrier: requests are
 * refused with CHORUS_EUNAVAILABLE until it completes; on a full store the
 * epoch stays volatile, A FULL DATA FOLDER), loads the hint table's
 * per-target sizes and arms the hint round timer. Replica-side messages
 * are served at once. Errors: store errors but CHORUS_ENOSPC,
 * CHORUS_ENOMEM. */
int repl_start(struct repl *r, chorus_ms now, chorus_ms wall,
               const struct repl_effects *fx);

/* repl_request_key: the key field of @m, a request repl_client
 * coordinates, and in *@type (may be NULL) the crdt type it names; NULL for
 * any other message. Points inside @m, so a caller may replace the key of
 * its own copy. */
struct wire_bytes *repl_request_key(struct wire_msg *m, uint8_t *type);

/* repl_client: a client request (GET, PUT, DELETE, COUNTER_ADD,
 * COUNTER_READ, SET_ADD, SET_REMOVE, SET_READ, LWW_SET, LWW_DELETE,
 * LWW_READ) from @origin (copied). Bad
 * requests get an error reply, never an error return. @m is borrowed for
 * the call. */
int repl_client(struct repl *r, const struct wire_msg *m,
                const struct repl_origin *origin, chorus_ms now, chorus_ms wall,
                const struct repl_effects *fx);

/* repl_peer: a message from peer @from: a forwarded client request, a
 * replica or hint message, or a reply to one of ours. @m is borrowed. */
int repl_peer(struct repl *r, chorus_node_id from, const struct wire_msg *m,
              chorus_ms now, chorus_ms wall, const struct repl_effects *fx);

int repl_timer(struct repl *r, uint64_t id, chorus_ms now, chorus_ms wall,
               const struct repl_effects *fx);

/* repl_flush: the end of a batch of events: applies the replica writes
 * deferred since the last call (cfg.defer_replica_writes) as one store
 * write (store_commit), then answers each: a barrier, then its
 * acknowledgement (as an immediate write would be answered), or, when the
 * store write failed, the error. Nothing to do without deferred writes.
 * Errors: as the other events (CHORUS_ENOMEM; CHORUS_ESYNCFAILED through
 * repl_failed when the store broke). */
int repl_flush(struct repl *r, chorus_ms now, chorus_ms wall,
               const struct repl_effects *fx);

/* repl_sync_done: the barrier @token asked for ended with @status
 * (CHORUS_OK; CHORUS_ENOSPC: what waited on it fails, the node goes on;
 * else CHORUS_ESYNCFAILED: nothing waiting on it is acknowledged, and the
 * node must stop, as store.h says). */
int repl_sync_done(struct repl *r, uint64_t token, int status, chorus_ms now,
                   chorus_ms wall, const struct repl_effects *fx);

/* repl_member: membership (SWIM) says @node is @alive or not. Unknown
 * nodes are fine. A node coming alive triggers hint replay to it. */
int repl_member(struct repl *r, chorus_node_id node, bool alive, chorus_ms now,
                chorus_ms wall, const struct repl_effects *fx);

/* repl_set_ring: a new snapshot (borrowed until the next call or
 * repl_free). Requests in flight keep the preference lists they resolved. */
void repl_set_ring(struct repl *r, const struct ring_snapshot *ring);

/* repl_set_restoring: whether this node's store lacks what its ring says
 * it owns (meta_node_restoring: a replaced disk). While it does, it
 * coordinates nothing itself (requests are forwarded to a replica), and
 * refuses REPLICA_READ and STREAM_PULL (CHORUS_EUNAVAILABLE), so that no
 * read ever counts its empty answer; it still takes replica writes and
 * hints (they are data it must hold). A STREAM_PULL is served all the
 * same when no other node of its ring is normal or leaving: nobody else
 * can hold the range, and the puller's change must finish before this
 * node's REPLACE may begin. One at an epoch this node has not reached is
 * answered CHORUS_ESTALE, restoring or not: at that epoch its REPLACE may
 * have finished (a refusal as restoring makes the puller take it for
 * lost, core_stream.c). */
void repl_set_restoring(struct repl *r, bool restoring);

/* ------------------------------------------------------------------------
 * Cleanup (issue 19; Cassandra's nodetool cleanup)
 *
 * Once a topology change has finished, the nodes that gave ranges away
 * still hold their objects. repl_cleanup_begin starts a scan of the data
 * in storage-key order; each repl_cleanup_step looks at up to @budget keys
 * after the cursor and deletes, in one unsynced batch, every object whose
 * token this node is neither a natural nor a pending replica of in the
 * ring in force, except those a hint still names (replay sends the
 * object). *@done once the scan has reached the end (or none is under
 * way). The node core paces the steps and starts a scan only after a
 * grace period with no change under way (core.h). A full store postpones
 * the deletes. The scan keeps its store read across steps, a new one
 * after REPL_CLEANUP_READ_MAX_AGE_MS by @now (repl_cleanup.c, THE SCAN'S
 * READ), and reads nothing where this node owns the whole ring. Errors:
 * CHORUS_ENOMEM, store errors.
 * ------------------------------------------------------------------------ */
void repl_cleanup_begin(struct repl *r);
/* repl_cleanup_wanted: since the last scan began, an object this node
 * does not own was kept for a hint or written (a coordinator behind the
 * ring's epoch): the node core scans again a while later. */
bool repl_cleanup_wanted(const struct repl *r);
int repl_cleanup_step(struct repl *r, size_t budget, chorus_ms now, bool *done);

/* ------------------------------------------------------------------------
 * Tombstone collection (issue 20; ScyllaDB's tombstone_gc = repair)
 *
 * A delete leaves a tombstone: the object keeps its version vector so a
 * late replica's stale value loses on join. Kept forever, delete-heavy
 * workloads grow without bound; purged too early, a replica that missed
 * the delete brings the value back (a zombie). Every write that leaves a
 * kv object mortal (all siblings tombstones or values with a TTL) queues
 * it in STORE_META,
 * stamped with this node's incarnation and monotonic time; each
 * repl_gc_step walks up to @budget queued objects after the cursor and, in
 * one unsynced batch, purges those that are dead, that no hint of this
 * node still names, and that are known held everywhere:
 *   REPL_GC_REPAIR (default): for every other natural replica of the
 *     object's range in the key's replication class, an anti-entropy
 *     exchange of that class over the range started after the stamp and
 *     completed, so each of them held this object or one that supersedes
 *     it (repl__aae_repaired_after). A replica cut off for a month keeps
 *     everyone's tombstones until it is repaired. A key of a class of one
 *     replica (a keyspace at N = 1) has no other: the grace alone.
 *   REPL_GC_TIMEOUT: dead for tombstone_gc_timeout_ms (by the write's HLC
 *     time when known, else since the stamp), repaired or not: Cassandra's
 *     gc_grace_seconds. A replica that missed the delete and is not
 *     repaired within the timeout brings the value back. For users who
 *     accept that.
 *   REPL_GC_OFF: nothing is queued or purged.
 * Objects written live again leave the queue. *@done once a walk reached
 * the end (repl_stats.tombstones: the dead objects that walk kept). The
 * node core paces the walks. A full store postpones them. Errors:
 * CHORUS_ENOMEM, store errors.
 * ------------------------------------------------------------------------ */
int repl_gc_step(struct repl *r, size_t budget, chorus_ms now, chorus_ms wall,
                 bool *done);

/* What one walk of the tombstone queue purged: the objects, and the
 * smallest and largest of their tokens (the queue is walked in token
 * order). The node core hints the store to reclaim that range when a walk
 * purged many (store_reclaim). */
struct repl_gc_walk {
  uint64_t number; /* walks completed by this incarnation, this one too */
  uint64_t purged;
  chorus_token first, last; /* meaningful when purged > 0 */
};

/* repl_gc_last_walk: the last completed walk's (all zero before one). */
struct repl_gc_walk repl_gc_last_walk(const struct repl *r);

/* ------------------------------------------------------------------------
 * Streaming by token range (issue 19; Cassandra's bootstrap streams,
 * Riak's handoff)
 *
 * A node that gains ranges in a topology change pulls them, one batch at a
 * time, from a node that holds them (the node core plans which and from
 * whom: node/core/core_stream.c). The holder answers a STREAM_PULL from
 * repl_peer: the objects of the range after the cursor, in storage-key
 * order, about max_bytes of them, with an XXH3 checksum of the batch, sent
 * once durable like every answer that carries state (once the newest write
 * its read's snapshot may show is: not every write since, so a holder that
 * is itself joining batches waits for one barrier a read, not one a pull).
 * It serves only when
 * its ring epoch is at least the puller's: from that epoch on every
 * coordinator it hears from sends the range's writes to the puller too
 * (a pending replica), so what the holder writes after its read reaches
 * the puller without the stream. That read may be one kept open for the
 * same puller at the same epoch and seeked to the pull's cursor: a
 * snapshot at most REPL_STREAM_READ_MAX_AGE_MS old (repl_int.h), taken at
 * that epoch or later, which the same rule covers (opening an ordered read
 * of the store sorts its memtable, which was most of a pull's cost;
 * repl_stream.c, THE KEPT READ). The puller joins each object into its
 * own (repl_stream_apply: the same join as a replica write, so a batch
 * applied twice, or a write that arrived first, loses nothing), then
 * waits for a barrier before it moves its cursor on.
 * ------------------------------------------------------------------------ */

/* repl_stream_sum: XXH3-64 over @n byte strings, each as [len u32
 * LE][bytes]: a STREAM_CHUNK's checksum. */
uint64_t repl_stream_sum(const struct wire_bytes *items, size_t n);

/* repl_stream_apply: joins the objects of chunk @c, an answer to a pull of
 * [@first, @last] after the storage key @after (NULL or empty: from the
 * start), into the store, unsynced (the caller waits for a barrier on
 * store_last_seq before counting them as held). *@keys and *@bytes count
 * what was joined. Nothing is applied when the batch is not what was
 * asked for. Errors: CHORUS_ECORRUPT (checksum mismatch),
 * CHORUS_EMALFORMED (an odd count, a key outside the range, out of order
 * or not after the cursor, an empty object; @errmsg says which), the
 * store's refusal (CHORUS_ENOSPC below the reserve, CHORUS_EIO once
 * failed), a join's error (some entries may be joined: joins are
 * idempotent), CHORUS_ENOMEM. */
int repl_stream_apply(struct repl *r, const struct wire_stream_chunk *c,
                      chorus_token first, chorus_token last,
                      const struct wire_bytes *after, uint64_t *keys,
                      uint64_t *bytes, char *errmsg);

/* repl_stream_repair: a batch of a piece pulled from every live replica in
 * turn (node/core/core_stream.c), BEFORE repl_stream_apply joins it:
 * compares it with what this node holds (the union of the replicas asked
 * before) and arms hints, replayed like any other: for @rep->source, of
 * every key this node holds in the span the batch covers that it did not
 * send or sent lacking something; for the @rep->earlier replicas, of every
 * key it sends with something this node lacks. A write acknowledged by
 * some replicas only thus reaches them all (repl_repair.c). A batch that
 * is not what was asked for arms nothing (repl_stream_apply refuses it).
 * *@armed counts the hints (repl_stats.stream_repairs). Errors:
 * CHORUS_ENOMEM (others are traced and skipped). */
struct repl_stream_repair {
  chorus_node_id source;
  const chorus_node_id *earlier;
  size_t nearlier;
};
int repl_stream_repair(struct repl *r, const struct wire_stream_chunk *c,
                       chorus_token first, chorus_token last,
                       const struct wire_bytes *after,
                       const struct repl_stream_repair *rep, chorus_ms wall,
                       uint64_t *armed);

/* ------------------------------------------------------------------------
 * Observation
 * ------------------------------------------------------------------------ */

struct repl_stats {
  uint64_t requests, forwarded;
  /* ONE MESSAGE PER REMOTE DATACENTER (repl_write.c): REPLICA_FORWARDs
   * this node sent as coordinator, the replica writes they stood for
   * (besides their forwarders'), and, as a forwarder, the writes it fanned
   * out in its datacenter. */
  uint64_t dc_forwards, dc_forwarded_writes, dc_relayed;
  uint64_t writes_ok, reads_ok;
  uint64_t unavailable, timeouts, invalid;
  uint64_t read_repairs;   /* REPLICA_WRITEs sent by read repair */
  uint64_t hints_queued;   /* hints written (armed or re-armed) */
  uint64_t hints_replayed; /* hints a target acknowledged on replay */
  uint64_t hints_dropped;  /* over a bound: bytes + age below */
  uint64_t hints_dropped_bytes, hints_dropped_age;
  /* Hints whose target no longer owns the key (it left, was removed, or
   * lost the range; HINTS FOLLOW OWNERSHIP): handed to the key's owners in
   * this node's ring, or dropped when the ring lists none (or this node
   * has no copy left to hand on). */
  uint64_t hints_moved;
  uint64_t hints_dropped_not_owner;
  uint64_t hints_pending; /* in the table now */
  uint64_t hint_bytes;    /* in the table now */
  /* The byte budget (THE BYTE BUDGET OF AN OBJECT). */
  uint64_t too_big;       /* coordinated writes refused over the budget */
  uint64_t over_budget;   /* replica joins that left an object over it */
  uint64_t clock_refused; /* lww objects refused: stamped too far ahead */
  uint64_t unsent;        /* messages not sent: over the peer frame */
  uint64_t truncated;     /* GET answers that carried only some siblings */
  /* Streaming (STREAMING): joined from chunks, and served to pullers. */
  uint64_t stream_keys, stream_bytes;
  uint64_t stream_served_keys, stream_served_bytes;
  /* Pulls served from a read opened for them, and from one kept open
   * since an earlier pull of the same puller (repl_stream.c). */
  uint64_t stream_reads_opened, stream_reads_kept;
  /* Hints this replica armed for the owners of writes whose coordinator
   * was behind its ring epoch (repl_replica.c, hint_owners). */
  uint64_t pending_hinted;
  /* REPLICA WRITES IN BATCHES (cfg.defer_replica_writes): store writes
   * that applied deferred replica writes, and the writes they carried. */
  uint64_t replica_batches, replica_batched;
  /* Cleanup (CLEANUP): keys looked at, objects deleted, objects kept
   * because a hint still needs them, reads the scans opened (one per
   * REPL_CLEANUP_READ_MAX_AGE_MS at most, none where this node owns the
   * whole ring). */
  uint64_t cleanup_scanned, cleanup_deleted, cleanup_hinted;
  uint64_t cleanup_reads_opened;
  /* Tombstone collection: dead objects the last walk kept, purged since
   * start, walks completed. */
  uint64_t tombstones, tombstones_purged, gc_walks;
  /* Joins of an object this node had purged, skipped (PURGE RECORDS). */
  uint64_t gc_rejoins_skipped;
  /* Hints armed by repl_stream_repair for replicas a piece showed lacking. */
  uint64_t stream_repairs;
  /* Anti-entropy (ANTI-ENTROPY): exchanges this node started, completed
   * and abandoned; tree segments found differing; keys whose digests were
   * compared; keys repaired (fetched from the peer and joined here, or
   * sent to it); AAE message bytes sent and received (their encoded
   * sizes), objects included; tree rebuilds completed. */
  uint64_t aae_started, aae_completed, aae_aborted;
  uint64_t aae_segments_differing, aae_keys_compared, aae_keys_repaired;
  uint64_t aae_bytes_sent, aae_bytes_received;
  uint64_t aae_rebuilds;
  uint64_t aae_tree_keys; /* objects the tree counts (exact once built) */
};

const struct repl_stats *repl_stats(const struct repl *r);

/* repl_actor: the actor id this incarnation mints dots with (0 before the
 * epoch barrier completed, and while the epoch is volatile). */
chorus_node_id repl_actor(const struct repl *r);

/* repl_failed: whether the store failed under this instance (a sync or a
 * write said so): it acknowledges nothing any more, and the driver must
 * restart the node (store.h, "fsyncgate"). */
bool repl_failed(const struct repl *r);

/* repl_is_replica: whether this node is a natural replica of @key. */
bool repl_is_replica(const struct repl *r, const void *key, size_t klen);

/* repl_hints_for: hints kept for @target now. */
uint64_t repl_hints_for(const struct repl *r, chorus_node_id target);

/* ------------------------------------------------------------------------
 * ANTI-ENTROPY (repl_aae.c, docs/ARCHITECTURE.md "Anti-entropy")
 *
 * The node keeps one hash tree (aae_tree.h) per replication class of its
 * ring (ring.h: the cluster's, class 0, and one per distinct replication
 * of a keyspace), each over the keys of its class only, updated on every
 * write of STORE_DATA this module makes, and rebuilt together by one
 * paced scan at start, whenever a write they could not follow (a failed
 * batch, a store reopen) left them stale, and when the ring's classes
 * change. An exchange is with one peer in one class: it compares that
 * class's trees over the token intervals where both are natural replicas
 * in that class (AAE requests name the class by its tag): branches, then
 * the segments under differing branches, then the (key, digest) lists of
 * differing segments (and of the segments an interval boundary cuts),
 * keys of that class only; each differing key is fetched from the peer
 * (REPLICA_READ), joined here, and the join sent back when it differs
 * from the peer's copy (as read repair does). Nothing is overwritten and
 * a missing key is never taken for a delete: joins only add. A key thus
 * only ever moves between replicas of its class: a keyspace at N = 1 has
 * nothing to exchange.
 * ------------------------------------------------------------------------ */

/* repl_aae_rebuild_step: advances a rebuild of the trees by up to @budget
 * keys (one store iterator a step, whatever the number of classes; one
 * starts when a tree is stale); *@built says whether every class's tree
 * is built after it. Errors: CHORUS_ENOMEM, store errors (the next step
 * starts over). */
int repl_aae_rebuild_step(struct repl *r, size_t budget, bool *built);
/* repl_aae_built: whether the trees of every class of the current ring
 * are built (exchanges need them). */
bool repl_aae_built(const struct repl *r);
/* repl_aae_exchange: starts an exchange with @peer (0: the next peer in
 * turn, peers whose hints were dropped first) in one class: the one asked
 * for (repl_aae_request), else one a dropped hint named, else the one
 * whose last exchange with @peer started the longest ago, among the
 * classes in which the two share ranges (so a peer's classes take turns).
 * Does nothing when one is under way, the trees are not built, the node
 * does not serve, or the peer shares no range in any class (*@started,
 * may be NULL, says whether one started). Errors: CHORUS_ENOMEM, effect
 * errors. */
int repl_aae_exchange(struct repl *r, chorus_node_id peer, chorus_ms now,
                      chorus_ms wall, const struct repl_effects *fx,
                      bool *started);
/* repl_aae_busy: whether an exchange is under way. */
bool repl_aae_busy(const struct repl *r);
/* repl_aae_repaired_since: the local wall time at which the last
 * exchange of the cluster's class (0) that completed over @token's range
 * started, the smallest over the other natural replicas of the range in
 * this node's ring; 0 when some never completed one (or the ring has no
 * replica). A key of that class written before that time is held by
 * every replica of its range (or its hint is still pending somewhere).
 * (The tombstone collector asks the same of each key's own class.) */
chorus_ms repl_aae_repaired_since(const struct repl *r, chorus_token token);

/* What repair status says of one peer (REPAIR_STATUS). */
struct repl_aae_peer_status {
  chorus_node_id peer;
  chorus_ms last_started, last_completed; /* wall ms; 0: never */
  uint64_t exchanges, aborted;            /* completed, abandoned */
  uint64_t segments_differing, keys_repaired, bytes;
};
/* repl_aae_status: the peers this node exchanged with (or tried), up to
 * @max of them into @out (NULL when @max is 0); returns how many there
 * are. A peer's exchanges of every class are summed in its entry. */
size_t repl_aae_status(const struct repl *r, struct repl_aae_peer_status *out,
                       size_t max);

/* What repair status says of one token range this node replicates in the
 * cluster's class (REPAIR_RANGES; repl_aae_ranges.c says how an exchange,
 * which is with a peer over every range the two share, maps to ranges;
 * the exchanges of a keyspace's own class do not count here). */
struct repl_aae_range_status {
  chorus_token first, last; /* inclusive; first > last wraps past 2^64-1 */
  chorus_ms last_completed; /* wall ms at which the last exchange this node
                               completed over it ended; 0: never */
  uint64_t exchanges;       /* completed exchanges over it */
  uint64_t segments_differing, keys_differing, keys_repaired;
  uint64_t bytes_sent, bytes_received; /* repair objects */
  bool repaired; /* every other natural replica completed an exchange with
                    this node over it since this node started (what
                    repl_aae_repaired_since needs) */
};
/* repl_aae_ranges: the ranges of the current ring this node is a natural
 * replica of that overlap [@first, @last] (first > last wraps; 0 and
 * UINT64_MAX: all), in token order, up to @max of them into @out (NULL
 * when @max is 0); returns how many there are. */
size_t repl_aae_ranges(const struct repl *r, chorus_token first,
                       chorus_token last, struct repl_aae_range_status *out,
                       size_t max);
/* repl_aae_request: an exchange soon with every other natural replica,
 * alive, of the ranges this node replicates that overlap [@first, @last]
 * (first > last wraps), in every class: each such (peer, class) goes
 * before any other in turn (repl_aae_exchange with peer 0) until an
 * exchange of it starts; the exchange covers every range the two share in
 * that class. *@ranges (may be NULL): how many of this node's ranges of
 * the cluster's class overlap; *@peers (may be NULL): how many peers now
 * wait for an exchange. Errors: CHORUS_ENOMEM. */
int repl_aae_request(struct repl *r, chorus_token first, chorus_token last,
                     size_t *ranges, size_t *peers);
/* repl_aae_wanted: whether a peer asked for by repl_aae_request, alive and
 * in the ring, still waits for its exchange. */
bool repl_aae_wanted(struct repl *r);

#endif /* CHORUS_REPL_H */
