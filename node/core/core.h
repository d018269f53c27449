/* core.h: the node core: one sans-I/O state machine per chorus node that
 * joins SWIM membership, the ring snapshot and replication (DESIGN.md §2-3).
 * chorusd (node/) binds it to libuv, sockets and RocksDB; the simulator
 * (tests/sim/core_sim_adapter.c) drives the very same core for every node.
 *
 * HOW IT WORKS
 *
 * The core owns a struct swim, the current struct ring_snapshot and a
 * struct repl, and is their only caller. The driver hands it events, each
 * with the node's clocks (@now monotonic, for timeouts; @wall for clock
 * offsets, hint ages and HLCs), and it answers through one set of effects,
 * struct core_effects, called synchronously from inside the event call:
 *
 *   events in                               effects out
 *     core_start      boot over a store        gossip  SWIM bytes to an address
 *     core_add_member a member known           send    a wire message to a peer
 *                     out of band                      (by node id)
 *     core_join       join through seeds       reply   a client request's
 * answer core_gossip     a SWIM packet arrived    sync    a sync barrier
 *     core_peer       a peer's wire message    member  a member changed (logs,
 *     core_client     a client request                 the address book)
 *     core_tick       a deadline passed        ring    a new ring snapshot
 *     core_sync_done  a barrier ended          clock   a member's clock crossed
 *     core_leave      graceful shutdown                the skew bound
 *
 * Timers are deadlines, not effects: after any event the driver asks
 * core_next_deadline() and calls core_tick() once its monotonic clock
 * reaches it (chorusd: one libuv timer; the simulator: one timer with a
 * generation). Behind it sit replication's one-shot timers (a min-heap,
 * core_timers.c), SWIM's next deadline and the join retry.
 *
 * THE HOOKUP (decided here, once)
 *
 * SWIM reports member changes from inside its own calls, where neither
 * SWIM nor replication may be re-entered. The core queues them and, when
 * the SWIM call has returned, applies them in this order:
 *   1. the member effect, once per change, in SWIM's order (chorusd points
 *      its address book at the member's address and logs the change);
 *   2. if any change touched the ring's input (a new member, ownership,
 *      datacenter, rack or token count), one new snapshot is built from
 *      SWIM's table (swim_ring_snapshot, version swim_epoch), handed to
 *      replication (repl_set_ring) and then to the driver (the ring
 *      effect); a failed build keeps the old ring (traced);
 *   3. each member's liveness goes to replication (repl_member: ALIVE and
 *      SUSPECT are up; DEAD, LEFT and REMOVED are down), which replays
 *      hints to a member that came up.
 * So replication never sees a member its ring does not list yet, and a
 * member's address is known before replication sends it anything.
 *
 * CLOCK SKEW
 *
 * SWIM estimates each member's wall clock offset from its probes (swim.h,
 * CLOCK OFFSETS) without reporting it. After every SWIM call, once the
 * steps above are done, the core compares each member's estimate with
 * cfg.swim.clock_bound_ms (> 0) and raises the clock effect when one
 * crosses it: beyond (|offset| > bound), then back within, once per
 * crossing however many samples agree. Skew is a warning for operators,
 * never an input to ordering (DESIGN.md §7); chorusd logs it.
 *
 * CLUSTER METADATA (cfg.metadata, DESIGN.md §10)
 *
 * With metadata, who owns what is not SWIM's: the core also owns a
 * struct meta_node (meta/meta_node.h), a member of the metadata Raft
 * group, whose messages ride the peer links as WIRE_META and whose writes
 * share the sync effect (tokens with META_SYNC_TOKEN_BIT). The ring
 * snapshot replication uses is built from the committed metadata
 * (meta_state_ring, version = the metadata epoch), rebuilt whenever the
 * epoch moves; a restarted node builds it from the metadata on disk
 * before it hears from anyone. SWIM only says who is alive: ring members
 * SWIM does not know alive are down for replication (hinted, or
 * CHORUS_EUNAVAILABLE), and alive members are the metadata layer's
 * contacts. A SWIM LEFT is liveness too: stopping a node never changes
 * ownership. CLUSTER_QUERY is answered from the metadata in force and
 * CLUSTER_REMOVE commits a REMOVE through the leader (a member SWIM holds
 * alive is refused with CHORUS_EBUSY unless forced).
 *
 * Static membership (cfg.gossip false) keeps SWIM's member table as the
 * ring's input but never starts the protocol: members come only from
 * core_add_member, are always ALIVE, and nothing is probed or gossiped.
 * The simulator's "no membership" runs use it.
 *
 * Requests: a client request carries the driver's cookie, echoed in its
 * reply effect exactly once. A request that replication forwards to another
 * node comes back to that node as a peer message; its answer returns to
 * the forwarding peer under the request id it used (the send effect), so
 * drivers see only their own cookies.
 *
 * Leaving (core_leave): new client requests are refused
 * (CHORUS_EUNAVAILABLE, "node shutting down"), peer messages for
 * replication are ignored, and SWIM gossips LEFT; the driver keeps calling
 * core_tick and core_gossip for a while so the update spreads, then frees.
 *
 * ERRORS
 *
 * An event function returns CHORUS_OK, or an error after which the
 * instance cannot go on (as repl.h and swim.h say): CHORUS_ENOMEM, a store
 * error, or CHORUS_ESYNCFAILED when the store failed under replication (the
 * "fsyncgate" rule, store.h: the process exits and a restart recovers from
 * the store). chorusd exits; the simulator restarts the node. A gossip
 * packet that SWIM drops for lack of memory is only traced: gossip
 * tolerates loss.
 */
#ifndef CHORUS_CORE_H
#define CHORUS_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus_error.h"
#include "chorus_trace.h"
#include "chorus_types.h"
#include "repl.h"
#include "meta_node.h"
#include "ring.h"
#include "store.h"
#include "swim.h"
#include "wire.h"

/* Cookies of core_meta_propose and core_meta_read carry this bit: their
 * answers go to the meta_answer effect, not to a client. */
#define CORE_META_COOKIE_BIT (UINT64_C(1) << 62)

/* The streams of a topology change (core_stream.c): sync tokens and pull
 * request ids carry CORE_STREAM_BIT (never in replication's operation ids,
 * [epoch][40-bit counter], nor in the metadata's sync tokens, bit 63);
 * the STREAMED proposal is answered under CORE_STREAM_COOKIE. */
#define CORE_STREAM_BIT (UINT64_C(1) << 62)
#define CORE_STREAM_COOKIE                                                     \
  (CORE_META_COOKIE_BIT | (UINT64_C(1) << 61) | UINT64_C(1))
/* The first admin's proposals (core_config.bootstrap_admin). */
#define CORE_ADMIN_COOKIE                                                      \
  (CORE_META_COOKIE_BIT | (UINT64_C(1) << 61) | UINT64_C(3))

/* KEY_APPLIED proposals (core_keys.c) are answered under this cookie. */
#define CORE_KEYS_COOKIE                                                       \
  (CORE_META_COOKIE_BIT | (UINT64_C(1) << 61) | UINT64_C(2))

/* core_next_deadline's answer when nothing is due, ever. */
#define CORE_NEVER UINT64_MAX

/* How often a join is retried while no other member is known (seeds may
 * start later than this node). */
#define CORE_JOIN_RETRY_MS 1000u
#define CORE_GC_INTERVAL_MS 10000u
#define CORE_GC_BATCH 1000u
#define CORE_GC_PAUSE_MS 20u
/* Once walks have purged this many objects since the last hint, the store
 * is hinted to give their space back (store_reclaim; core.c, reclaim),
 * and once more when the walks stop purging (the wave's tail): fewer are
 * the trickle that RocksDB's own compactions keep up with. */
#define CORE_RECLAIM_MIN_PURGED 1000u

/* ------------------------------------------------------------------------
 * Configuration and effects
 * ------------------------------------------------------------------------ */

/* Streaming's pulls in flight a receiver at most, and by default
 * (core_config.stream_pulls). */
#define CORE_STREAM_PULLS 4u

struct core_config {
  /* SWIM: id, own meta (address, datacenter, rack, tokens, ownership),
   * cluster, key, timing, seed, clock bound, tracer. Its effects are the
   * core's own: cfg.swim.fx is ignored. */
  struct swim_config swim;
  /* Replication: cfg.repl.self must equal cfg.swim.id and cfg.repl.dc
   * cfg.swim.meta.dc. */
  struct repl_config repl;
  /* The replication factors the ring is built with. */
  struct ring_replication replication;
  /* false: static membership (see above). */
  bool gossip;
  /* true (requires gossip): ownership from the metadata Raft group
   * (CLUSTER METADATA above); false: the ring is SWIM's table. */
  bool metadata;
  /* The metadata layer: self_member (name, address, datacenter, rack,
   * vnodes), cluster id, timings and seed; self is cfg.swim.id, tracer
   * and replication the core's own. */
  struct meta_node_config meta;
  /* Streaming's throttle: megabits per second pulled (0: no limit). */
  uint32_t stream_mbps;
  /* Streaming's pulls in flight, each on its own range (0 or more than
   * CORE_STREAM_PULLS, 4: that many): a receiver far from its holders
   * waits a round trip a pull, and a join gains hundreds of small ranges
   * of one pull each. */
  uint8_t stream_pulls;
  /* Pull every range, also those a giver's answer showed empty
   * (core_stream.c, EMPTY STRETCHES): only to measure what skipping them
   * saves (test_change_sim). */
  bool stream_pull_empty;
  /* Cleanup (replication/repl.h, CLEANUP): how long after a change has
   * finished this node starts deleting what it no longer owns (0: 10 s),
   * so that coordinators still at the old epoch are served meanwhile. */
  chorus_ms cleanup_grace_ms;
  /* Tombstone collection (replication/repl.h, TOMBSTONE COLLECTION; the
   * mode is repl.tombstone_gc): a walk of the queue every gc_interval_ms
   * (0: 10 s), CORE_GC_BATCH queued objects every CORE_GC_PAUSE_MS while
   * it lasts, so that a million tombstones never stall requests. */
  chorus_ms gc_interval_ms;
  /* Anti-entropy (replication/repl.h, ANTI-ENTROPY): an exchange with the
   * next peer in turn every this many ms (0: none but on demand). The
   * tree is kept and rebuilt at start whatever this says. */
  chorus_ms aae_interval_ms;
  const struct chorus_tracer *tracer; /* borrowed for life; may be NULL */
  /* The first admin (issue 24; docs/ARCHITECTURE.md, Users and logins):
   * a user (name and verifier; grants ignored) that this node, while it
   * leads the metadata, creates when the cluster has no user and then
   * grants admin on every keyspace (core_admin_bootstrap_step). Its name
   * empty: none. */
  struct meta_user bootstrap_admin;
};

struct core_effects {
  void *ctx;
  /* gossip: sealed SWIM bytes (borrowed for the call) to @addr: a UDP
   * datagram, or, for SWIM_STREAM, a WIRE_GOSSIP frame on the peer link.
   * Delivery is not guaranteed. */
  void (*gossip)(void *ctx, const char *addr, enum swim_channel ch,
                 const void *data, size_t len);
  /* send: @m (borrowed for the call) to peer @to. Delivery is not
   * guaranteed: replication tolerates loss, duplication and reordering.
   * Errors: CHORUS_ENOMEM only (fatal); a message that cannot go is
   * dropped, not an error. */
  int (*send)(void *ctx, chorus_node_id to, const struct wire_msg *m);
  /* reply: the answer to the client request @cookie (core_client): a reply
   * message or WIRE_ERROR, with request_id 0 (the driver sets its own).
   * @maybe_applied: a write error after which the write may still take
   * effect. Exactly once per request. Errors: CHORUS_ENOMEM only. */
  int (*reply)(void *ctx, uint64_t cookie, const struct wire_msg *m,
               bool maybe_applied);
  /* sync: core_sync_done(@token, ...) once every store write with sequence
   * <= @seq is durable (or the store failed). Never answered from inside
   * this call. Errors: CHORUS_ENOMEM only. */
  int (*sync)(void *ctx, chorus_seq seq, uint64_t token);
  /* member: a member was added or changed state, incarnation or metadata
   * (@old: its previous state; SWIM_ALIVE with @is_new). Borrowed for the
   * call. May be NULL. */
  void (*member)(void *ctx, const struct swim_member *m, enum swim_state old,
                 bool is_new);
  /* clock: member @m's estimated clock offset (m->offset_ms, its clock
   * minus ours) crossed @bound_ms: @beyond when |offset| went over it,
   * false when it came back within (CLOCK SKEW above). Borrowed for the
   * call. May be NULL. */
  void (*clock)(void *ctx, const struct swim_member *m, int64_t bound_ms,
                bool beyond);
  /* ring: a new snapshot, handed over: the driver owns @s from now on and
   * must keep it valid until the next ring effect (or core_free) has
   * returned, since the core and replication read it until then (chorusd
   * publishes it with ring_rcu_publish, which retires the previous one
   * after a grace period). May be NULL: the core then keeps each snapshot
   * and frees it when the next one replaces it. */
  void (*ring)(void *ctx, struct ring_snapshot *s);
  /* meta_answer: core_meta_propose's or core_meta_read's @cookie (with
   * CORE_META_COOKIE_BIT) ended with @status. May be NULL. */
  void (*meta_answer)(void *ctx, uint64_t cookie, int status);
  /* meta_applied: the metadata state machine reached @index (@s borrowed;
   * meta_node.h's applied effect), for the simulator's checkers. May be
   * NULL. */
  void (*meta_applied)(void *ctx, uint64_t index, const struct meta_state *s);
};

/* ------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------ */

struct core;

/* core_new: an instance for @cfg (copied; tracer borrowed) answering
 * through @fx (copied). Builds SWIM and the first ring snapshot (this node
 * alone); replication waits for the store (core_start). @errmsg
 * (CHORUS_ERRMSG_SIZE, may be NULL) gets one line on failure.
 * Errors: CHORUS_EINVAL (self ids or datacenters differ, SWIM's or the
 * ring's checks), CHORUS_ENOMEM. */
int core_new(const struct core_config *cfg, const struct core_effects *fx,
             struct core **out, char *errmsg);

/* core_free: frees @c (NULL is fine); replication's and SWIM's state go
 * with it, the store stays the driver's. A snapshot handed over by the
 * ring effect stays the driver's too. */
void core_free(struct core *c);

/* core_start: boots over @store (borrowed until core_free; the driver
 * owns it): replication starts (its epoch barrier, the hint index), then
 * SWIM (with gossip). Call once; if it fails, free the instance (the
 * simulator's supervisor starts a fresh one). A store that refuses writes
 * for lack of space is no error: the epoch stays volatile (repl.h, A FULL
 * DATA FOLDER) and the node serves reads.
 * Errors: store errors (CHORUS_EIO, CHORUS_ESYNCFAILED), CHORUS_EINVAL
 * (called twice), CHORUS_ENOMEM. */
int core_start(struct core *c, struct store *store, chorus_ms now,
               chorus_ms wall);

/* core_add_member: a member known out of band (a saved member table, the
 * simulator's roster), ALIVE at incarnation 0, not gossiped. Call after
 * core_start. Errors: CHORUS_EINVAL (own id, bad meta), CHORUS_EEXIST,
 * CHORUS_ENOMEM. */
int core_add_member(struct core *c, chorus_node_id id,
                    const struct swim_meta *meta, chorus_ms now,
                    chorus_ms wall);

/* core_join: joins through @seeds (addresses, copied; at most
 * SWIM_MAX_SEEDS) now and again every CORE_JOIN_RETRY_MS while this node
 * knows no other member (seeds may start later). No-op without gossip.
 * Errors: CHORUS_EINVAL, CHORUS_ENOMEM. */
int core_join(struct core *c, const char *const *seeds, size_t n, chorus_ms now,
              chorus_ms wall);

/* core_found: this node is one of the cluster's founders, who are the
 * members at @addrs (seed addresses; this node's own among them, or none:
 * a cluster of one). With no metadata on disk, the core bootstraps the
 * metadata group once SWIM knows the id at every address; a node with
 * metadata on disk keeps its own. Call after core_start, before
 * core_join. A node that never calls it asks to join (core_join).
 * Errors: CHORUS_EINVAL (no metadata, or too many addresses). */
int core_found(struct core *c, const char *const *addrs, size_t n,
               chorus_ms now, chorus_ms wall);

/* core_leave: graceful shutdown (see LEAVING above). Idempotent.
 * Errors: CHORUS_ENOMEM. */
int core_leave(struct core *c, chorus_ms now, chorus_ms wall);

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

/* core_gossip: a SWIM packet (a UDP datagram, or the body of a WIRE_GOSSIP
 * frame) arrived; @data borrowed. Ignored without gossip or before start;
 * bad packets are dropped and counted by SWIM (swim_stats). */
int core_gossip(struct core *c, const void *data, size_t len, chorus_ms now,
                chorus_ms wall);

/* core_peer: a wire message from peer @from (authenticated by the driver):
 * a forwarded request, a replica or hint message, or an answer to one of
 * ours. WIRE_GOSSIP goes to core_gossip, not here. @m borrowed. */
int core_peer(struct core *c, chorus_node_id from, const struct wire_msg *m,
              chorus_ms now, chorus_ms wall);

/* core_client_request: whether @type is a request a client may send to
 * core_client (GET, PUT, DELETE, COUNTER_*, SET_*, and with metadata the
 * administrative CLUSTER_QUERY and CLUSTER_REMOVE). */
bool core_client_request(uint8_t type);

/* core_client: a client request (core_client_request(m->type)) that the
 * driver tagged with @cookie; answered by exactly one reply effect, maybe
 * from inside this call. Bad or refused requests get an error reply,
 * never an error return. @m borrowed. */
int core_client(struct core *c, const struct wire_msg *m, uint64_t cookie,
                chorus_ms now, chorus_ms wall);

/* core_client_as: core_client for a request of the logged-in @user
 * (issue 24): the request runs only when the user holds the role it
 * needs on its keyspace (core_role_of, core_user_may), else it is
 * answered EPERM with a sentence that says which. @user NULL: no check
 * (--auth off). @user borrowed for the call. */
int core_client_as(struct core *c, const struct wire_msg *m, uint64_t cookie,
                   const char *user, chorus_ms now, chorus_ms wall);

/* ROLES PER REQUEST (issue 24)
 *
 * read: GET, the typed reads, CAS's serial read, LOCK STATUS, KEYSPACE
 * LIST, CLUSTER_QUERY and CLUSTER_PLAN; write: every other data request
 * (PUT, DELETE, counters, sets, registers, maps, CAS, LOCK ACQUIRE,
 * RENEW, RELEASE, FENCED_PUT); admin: cluster changes, KEYSPACE CREATE,
 * ALTER, DROP, and USER (LIST included: it names every user). Each role
 * implies the ones before it. A request of a keyspace needs the role on
 * that keyspace or on every keyspace; the default keyspace, locks, the
 * cluster and users are covered only by a grant on every keyspace.
 * KEYSPACE ALTER and DROP need admin on that keyspace. */
struct core_need {
  uint8_t role;     /* META_ROLE_*; 0: none (a logged-in user may) */
  bool keyspace;    /* checked on the request's keyspace (core.c) */
  const char *verb; /* "read", "write" or "change" */
};
struct core_need core_role_of(const struct wire_msg *m);

/* core_user_may: whether @user may take @role on keyspace @ks_id (0: every
 * keyspace; its name @ks_name, for the text) in @s; false with a sentence
 * in @text (@cap bytes) such as "user bob may read keyspace app but not
 * write it". @verb as in core_need. */
bool core_user_may(const struct meta_state *s, const char *user, uint8_t role,
                   const char *verb, uint32_t ks_id, const char *ks_name,
                   char *text, size_t cap);

/* core_admin_bootstrap_step: the next command that makes @admin the first
 * admin in @s: USER_CREATE when the cluster has no user, USER_GRANT of
 * admin on every keyspace when @admin is its only user and holds no
 * grant; false when there is nothing to do. */
bool core_admin_bootstrap_step(const struct meta_state *s,
                               const struct meta_user *admin,
                               struct meta_cmd *out);

/* core_tick: runs everything due at @now: replication's timers, SWIM's
 * deadline, a join retry. Calling it early is harmless. */
int core_tick(struct core *c, chorus_ms now, chorus_ms wall);

/* core_meta_propose: commits @cmd through the metadata leader (tests,
 * the simulator's checker); answered by the meta_answer effect with
 * @cookie | CORE_META_COOKIE_BIT. core_meta_read: a linearizable read
 * (a barrier committed by this node as leader), answered the same way;
 * the caller then reads meta_node_state(core_meta(c)).
 * Errors: CHORUS_EINVAL (no metadata), CHORUS_ENOMEM. */
/* core_gossip_keys: the keys this node's SWIM holds (issue 24: the
 * metadata's keyring as last applied; before any metadata, the boot key
 * cfg.swim.key alone), the sealing one first, into @out; their count
 * (1..SWIM_MAX_KEYS). The one place node code reads "the node's keys". */
size_t core_gossip_keys(const struct core *c,
                        uint8_t out[SWIM_MAX_KEYS][SWIM_KEY_BYTES]);
/* core_keyring_version: the metadata keyring version those keys are (0:
 * none applied, or the boot key alone). */
uint64_t core_keyring_version(const struct core *c);

int core_meta_propose(struct core *c, const struct meta_cmd *cmd,
                      uint64_t cookie, chorus_ms timeout_ms, chorus_ms now,
                      chorus_ms wall);
int core_meta_read(struct core *c, uint64_t cookie, chorus_ms now,
                   chorus_ms wall);

/* core_next_deadline: the earliest monotonic time at which core_tick has
 * work, or CORE_NEVER. */
chorus_ms core_next_deadline(const struct core *c);

/* core_flush: the end of a batch of events (chorusd: each loop
 * iteration's check phase, before anything it decided leaves; the
 * simulator: each event): applies the replica writes deferred since the
 * last call as one store write and answers them (repl_flush; with
 * cfg.repl.defer_replica_writes, which obliges the driver to call this).
 * Errors: as core_sync_done. */
int core_flush(struct core *c, chorus_ms now, chorus_ms wall);

/* core_sync_done: the barrier @token asked for by the sync effect ended
 * with @status (CHORUS_OK or CHORUS_ESYNCFAILED).
 * Errors: CHORUS_ESYNCFAILED when the store failed under replication (the
 * node must stop), others as above. */
int core_sync_done(struct core *c, uint64_t token, int status, chorus_ms now,
                   chorus_ms wall);

/* ------------------------------------------------------------------------
 * Observation (borrowed until the next event)
 * ------------------------------------------------------------------------ */

const struct swim *core_swim(const struct core *c);
/* core_meta: the metadata node, or NULL (static membership). */
const struct meta_node *core_meta(const struct core *c);
/* core_evicted: a peer told this node it was taken out of the cluster
 * (left or removed, CHORUS_EREMOVED): it serves nothing. */
bool core_evicted(const struct core *c);
const struct repl *core_repl(const struct core *c);
/* core_aae_now: an anti-entropy exchange as soon as the tree is built
 * and none is under way (REPAIR_NOW), then on the usual pace. Errors:
 * those of core_tick. */
int core_aae_now(struct core *c, chorus_ms now, chorus_ms wall);
/* core_aae_range_now: exchanges as soon as possible, one after the other,
 * with the other replicas (alive) of this node's ranges that overlap
 * [@first, @last] (first > last wraps; repl_aae_request), each covering
 * every range the two share (REPAIR_RANGES with now). *@ranges: how many of
 * this node's ranges overlap (0: it replicates none of them, nothing is
 * asked); *@peers: how many peers wait for an exchange. Errors:
 * CHORUS_EUNAVAILABLE (replication not started), CHORUS_ENOMEM, those of
 * core_tick. */
int core_aae_range_now(struct core *c, chorus_token first, chorus_token last,
                       chorus_ms now, chorus_ms wall, size_t *ranges,
                       size_t *peers);
/* core_ring: the snapshot in force (never NULL after core_new). */
const struct ring_snapshot *core_ring(const struct core *c);
/* core_failed: the store failed under replication (see ERRORS). */
bool core_failed(const struct core *c);
bool core_leaving(const struct core *c);

/* The streams of a topology change, as this node pulls them. */
struct core_stream_stats {
  uint64_t keys, bytes; /* joined and durable */
  uint64_t batches;     /* batches taken */
  uint64_t retries;     /* pulls unanswered in time */
  uint64_t refused;     /* pulls refused (ESTALE: a source behind) */
  uint64_t bad_batches; /* checksum or shape wrong: pulled again */
  uint64_t fallbacks;   /* ranges pulled from another replica (the
                           node giving them up was down) */
  uint64_t resumed;     /* plans resumed from saved progress */
  uint64_t cleanups;    /* cleanup scans completed (repl_stats counts
                           what they deleted) */
  uint64_t repairs;     /* hints armed for replicas a piece pulled from
                           each in turn showed lacking (repl_stream_repair) */
  uint64_t skipped;     /* ranges not pulled: an earlier answer of their
                           giver showed them empty (core_stream.c) */
};
struct core_stream_info {
  uint64_t epoch; /* the change being streamed; 0: none */
  size_t ranges, ranges_done;
  bool active; /* ranges left to pull */
  chorus_ms started_at;
  struct core_stream_stats stats; /* since the node started */
  /* Progress of the plan (epoch != 0): the fraction of the token space of
   * its ranges held (0..1; 1 when it gains nothing), counted up to the
   * cursor of the range being pulled; and the time since it was planned
   * (at the core's last event). A plan resumed after a restart starts its
   * clock again with the fraction it had, so a rate from the two is an
   * upper bound until the next batch. */
  double done;
  chorus_ms elapsed_ms;
};
void core_stream_info(const struct core *c, struct core_stream_info *out);

#endif /* CHORUS_CORE_H */
