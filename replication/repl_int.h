/* repl_int.h: replication's internals, shared by its files and by nobody
 * else (tests/replication includes it to drive pieces directly).
 *
 * WHO HOLDS WHAT
 *
 *   repl.c          the instance: lifecycle, the event entry points (which
 *                   only route), the peer table, observation
 *   repl_op.c       the operation table and the one state machine every
 *                   operation moves through (repl__op_step)
 *   repl_request.c  a client request's intake: checks, quorum resolution,
 *                   forwarding to a replica; error replies
 *   repl_write.c    coordinated writes: apply, write with hints, send, count
 *   repl_read.c     coordinated reads: gather, join, answer, read repair
 *   repl_replica.c  the replica side: REPLICA_WRITE, REPLICA_READ and
 *                   HINT_DELIVER served, acknowledgements
 *   repl_object.c   replicated objects in the store: load, decode, join
 *   repl_hints.c    the hint table and its index (struct repl_hints)
 *   repl_replay.c   the instance's side of hints: disarm, rebuild, replay
 *   repl_options.c  consistency levels and tallies
 *   repl_aae.c      anti-entropy: the exchange this node initiates;
 *                   repl_aae_serve.c the tree's rebuild, the peer's side,
 *                   repaired_since; repl_aae_ranges.c the figures per
 *                   range and exchanges on request (aae_tree.c holds the
 *                   tree itself, a pure data structure)
 *
 * The role files do the work of a step (read, apply, send, count); whether
 * an operation answers, waits or ends is decided in repl_op.c only.
 */
#ifndef CHORUS_REPL_INT_H
#define CHORUS_REPL_INT_H

#include <assert.h>

#include "aae_tree.h"
#include "chorus_prng.h"
#include "crdt.h"
#include "paxos.h"
#include "repl.h"

/* ------------------------------------------------------------------------
 * Quorums (repl_options.c)
 * ------------------------------------------------------------------------ */

/* What one request needs, resolved from a level (enum wire_level or a
 * count) against the replication settings. Acknowledgements from replicas
 * outside @only_group (when >= 0) count toward nothing but @primaries. */
struct repl_need {
  uint8_t total;     /* acknowledgements, all eligible replicas together */
  uint8_t primaries; /* of which natural replicas (pr/pw) */
  int8_t only_group; /* LOCAL_*: the coordinator's group; -1: any */
  uint8_t ngroups;   /* groups with a minimum below */
  uint8_t per_group[RING_MAX_DCS]; /* EACH_QUORUM: minimum per group */
};

struct repl_tally {
  uint8_t total, primaries;
  uint8_t per_group[RING_MAX_DCS];
};

/* repl__group_of_dc: the replication group of datacenter @dc under @rs:
 * 0 when @rs has no datacenters (one group), the index of @dc in rs->dcs,
 * or -1 when @dc is not replicated. */
int repl__group_of_dc(const struct ring_replication *rs, const char *dc);

/* repl__resolve: resolves @level (and @primary_level, the pr/pw, 0 for
 * none) into *@out. @local_group is the coordinator's group (-1: its
 * datacenter holds no replicas). @what names the option in messages ("r",
 * "w"). Errors: CHORUS_EINVAL (level out of range, more than N, a LOCAL
 * level without datacenters or outside a replicated one, pr above N;
 * @errmsg, CHORUS_ERRMSG_SIZE bytes, says which). */
int repl__resolve(const struct ring_replication *rs, int32_t level,
                  int32_t primary_level, int local_group, const char *what,
                  struct repl_need *out, char *errmsg);

/* repl__need_pending: a write's @need raised by the pending replicas of
 * @pl (ring.h: nodes taking a range in a topology change), as Cassandra
 * adds them to its block-for count: any of the natural and pending
 * replicas may answer, and W + pending answers leave at least W of the
 * replicas that own the key once the change completes (R + W > N holds
 * across the switch). A LOCAL level counts the pending replicas of its
 * group, EACH_QUORUM those of each group; pw counts naturals only. */
void repl__need_pending(struct repl_need *need, const struct ring_plist *pl);

/* repl__tally_add: counts one acknowledgement of a replica in @group,
 * natural or not. A tally counts at most one acknowledgement per entry of
 * a preference list. */
void repl__tally_add(struct repl_tally *t, const struct repl_need *n, int group,
                     bool natural);
bool repl__tally_met(const struct repl_tally *t, const struct repl_need *n);

/* ------------------------------------------------------------------------
 * Hints (repl_hints.c)
 *
 * STORE_HINTS layout: key [target BE][token BE][user key], one hint per
 * (target, key); value [hint seq BE][wall ms BE][object...]. The object is
 * empty for a coordinator's own hints (replay sends its current object of
 * the key) and present for hints a fallback keeps for another node.
 *
 * struct repl_hints is the caller's to allocate (repl__hints_init); its
 * fields belong to repl_hints.c, and everyone else goes through the
 * functions below. The index holds every hint in the table, by (target,
 * token, key), with its sequence and size, so that arming and disarming
 * never read the store (they are on every replicated write's path).
 * ------------------------------------------------------------------------ */

#define REPL_HINT_PREFIX 16u
#define REPL_HINT_HEAD 16u

struct repl_hint_target;  /* per-target count and bytes */
struct repl_hint_entry;   /* one indexed hint */
struct repl_hint_pending; /* a disarmed hint whose delete is not written */

/* Why a hint was dropped (counted per reason and reported per target). */
enum repl_hint_drop {
  REPL_HINT_DROP_BYTES,     /* over its target's byte bound, never written */
  REPL_HINT_DROP_AGE,       /* older than the age bound at replay */
  REPL_HINT_DROP_NOT_OWNER, /* its target owns the key no more, no move */
  REPL_HINT_DROP_REASONS
};

struct repl_hints {
  struct repl_hint_target *t; /* sorted by target */
  uint32_t n, cap;
  uint64_t max_bytes;
  uint64_t queued; /* total since start */
  uint64_t dropped[REPL_HINT_DROP_REASONS];
  /* The monotonic time of the event being handled (repl.c sets it): the
   * index stamps each hint it arms or loads with it, so that a hint's age
   * is never judged by the wall clock alone (HINT AGE, repl_replay.c). */
  chorus_ms now;
  struct repl_hint_entry **bucket;
  size_t nbuckets, nentries;
  struct repl_hint_pending *pend;
  size_t npend, cappend;
};

/* One hint read back; pointers borrowed from the iterator or buffer. */
struct repl_hint {
  chorus_node_id target;
  chorus_token token;
  const void *key;
  size_t klen;
  uint64_t seq;
  chorus_ms wall;
  const void *object;
  size_t olen;
};

void repl__hints_init(struct repl_hints *h, uint64_t max_bytes);
void repl__hints_free(struct repl_hints *h);
/* repl__hints_load: (re)builds the index and the counts from the table: at
 * start, and after a write batch that carried hints (or pending deletes)
 * failed, since the index already counted them. Errors: store errors,
 * CHORUS_ECORRUPT (a malformed hint key or value), CHORUS_ENOMEM. */
int repl__hints_load(struct repl_hints *h, struct store *s);
/* repl__hints_arm: adds to @b the hint (@target, @token, @key) with @seq,
 * @wall and @object (may be empty), replacing the one there. Over the
 * target's byte bound the hint is not written: *@dropped is set and the
 * drop counted. The index assumes @b gets written: if it does not, call
 * repl__hints_load. @s is unused (the index answers). Errors:
 * CHORUS_ENOMEM. */
int repl__hints_arm(struct repl_hints *h, struct store *s,
                    struct store_batch *b, chorus_node_id target,
                    chorus_token token, const void *key, size_t klen,
                    uint64_t seq, chorus_ms wall, const void *object,
                    size_t olen, bool *dropped);
/* repl__hints_get: the hint (@target, @token, @key) into *@out, its value
 * in *@buf (chorus_malloc'ed, the caller frees). Errors: CHORUS_ENOTFOUND,
 * CHORUS_ECORRUPT, store errors. */
int repl__hints_get(struct store *s, chorus_node_id target, chorus_token token,
                    const void *key, size_t klen, struct repl_hint *out,
                    void **buf);
/* repl__hints_disarm: deletes the hint when it still carries @seq (a later
 * write re-arms it with a newer one): at once from the index and the
 * counts, from the table at the next repl__hints_flush. *@deleted (may be
 * NULL) says so. @s is unused. Errors: CHORUS_ENOMEM. */
int repl__hints_disarm(struct repl_hints *h, struct store *s,
                       chorus_node_id target, chorus_token token,
                       const void *key, size_t klen, uint64_t seq,
                       bool *deleted);
/* repl__hints_flush: appends the pending deletes to @b (NULL: writes them
 * in a batch of their own), skipping hints re-armed since. Errors:
 * CHORUS_ENOMEM, store write errors (the deletes stay pending). */
int repl__hints_flush(struct repl_hints *h, struct store *s,
                      struct store_batch *b);
size_t repl__hints_pending_deletes(const struct repl_hints *h);
/* repl__hints_current: whether the index holds (@target, @token, @key)
 * with sequence @seq (replay skips hints disarmed or re-armed since). */
bool repl__hints_current(const struct repl_hints *h, chorus_node_id target,
                         chorus_token token, const void *key, size_t klen,
                         uint64_t seq);
/* repl__hints_any: whether the index holds a hint of (@token, @key) for
 * any target (cleanup keeps such an object: replay sends it). */
bool repl__hints_any(const struct repl_hints *h, chorus_token token,
                     const void *key, size_t klen);
/* repl__hints_carries_object: whether the hint (@target, @token, @key) is
 * in the index and carries an object (a fallback's). */
bool repl__hints_carries_object(const struct repl_hints *h,
                                chorus_node_id target, chorus_token token,
                                const void *key, size_t klen);
/* repl__hints_drop: deletes a hint over a bound and counts it as
 * dropped for @why. Errors: CHORUS_ENOMEM, store write errors. */
int repl__hints_drop(struct repl_hints *h, struct store *s,
                     const struct repl_hint *hint, enum repl_hint_drop why);
/* repl__hints_note_drop: counts a hint for @target dropped for @why (by a
 * caller that deleted it itself), toward the counters and the next report. */
void repl__hints_note_drop(struct repl_hints *h, chorus_node_id target,
                           enum repl_hint_drop why);
/* repl__hints_report: one line on @warn (may be NULL) per target and reason
 * with hints dropped since the last report, then starts over. Dropped hints
 * are writes a replica may never get but by anti-entropy, so an operator
 * must hear of them (the hint round reports, at most once a round). */
void repl__hints_report(struct repl_hints *h, const struct repl_config *cfg);
/* repl__hints_armed_at: the monotonic time the index stamped hint @hint
 * with when it was armed or loaded (@h->now when it is not indexed). */
chorus_ms repl__hints_armed_at(const struct repl_hints *h,
                               const struct repl_hint *hint);
uint64_t repl__hints_count(const struct repl_hints *h, chorus_node_id target);
uint64_t repl__hints_total(const struct repl_hints *h, uint64_t *bytes);
/* repl__hints_stats: the hint counters of @st (queued, dropped, pending,
 * bytes) from the table's. */
void repl__hints_stats(const struct repl_hints *h, struct repl_stats *st);
/* repl__hints_next_target: the first target with an accounting slot whose
 * id is above @after (0: the first of all) and its hint count; false past
 * the last. A walk by id stays right while a round arms hints (moving
 * them adds slots, which shifts their indices). */
bool repl__hints_next_target(const struct repl_hints *h, chorus_node_id after,
                             chorus_node_id *target, uint64_t *count);

/* A walk over the table entries of one target, in key order, that can
 * resume where an earlier walk stopped. Entries are read as the table has
 * them: repl__hints_scan_get says which of them are current hints. */
struct repl_hint_scan {
  struct store_iter *it;
  const void *k; /* the entry under the walk, after scan_get */
  size_t kl;
};

/* repl__hints_scan_open: a walk over @target's entries from the first, or
 * from @from (@flen bytes, a key from repl__hints_scan_resume) when not
 * NULL; @from is copied. Errors: CHORUS_ENOMEM, store errors. */
int repl__hints_scan_open(struct store *s, chorus_node_id target,
                          const void *from, size_t flen,
                          struct repl_hint_scan *sc);
bool repl__hints_scan_valid(struct repl_hint_scan *sc);
/* repl__hints_scan_get: the entry under the walk into *@out (borrowed until
 * scan_next); false when it is not a current hint of @h (malformed,
 * disarmed with its delete pending, or re-armed since). */
bool repl__hints_scan_get(const struct repl_hints *h, struct repl_hint_scan *sc,
                          struct repl_hint *out);
/* repl__hints_scan_resume: into *@buf (chorus_realloc'ed, *@len set) the
 * key a later walk starts from to resume after the entry of the last
 * scan_get: that key with a 0 byte appended. Errors: CHORUS_ENOMEM (*@buf
 * untouched). */
int repl__hints_scan_resume(const struct repl_hint_scan *sc,
                            unsigned char **buf, size_t *len);
void repl__hints_scan_next(struct repl_hint_scan *sc);
/* repl__hints_scan_close: closes the walk; CHORUS_OK, or the store error
 * that ended it early (a failed read looks like the end to scan_valid: a
 * walk that must see every entry checks this before it counts as done). */
int repl__hints_scan_close(struct repl_hint_scan *sc);

/* ------------------------------------------------------------------------
 * The instance (repl.c)
 * ------------------------------------------------------------------------ */

/* Ids of our own operations: [epoch : 22][counter : 40], below 2^62, so a
 * timer id keeps two bits for its kind and an answer meant for an earlier
 * incarnation never matches an operation of this one. */
#define REPL_OP_COUNTER_BITS 40
#define REPL_TIMER_KIND_SHIFT 62
#define REPL_TIMER_OP 1ull
#define REPL_TIMER_HINTS 2ull
#define REPL_TIMER_AAE 3ull
#define REPL_OP_BUCKETS 1024u
/* A replica request's id with this bit asks for the replica's times
 * (wire.h, WIRE_REQ_TRACE): above every op id, so answers are looked up
 * without it. */
#define REPL_REQ_TRACE WIRE_REQ_TRACE

/* Replication's view of one peer: what membership says of it and how its
 * hint replay stands. (node/ has a struct peer of its own, a connection.) */
struct repl_peer_state {
  chorus_node_id id;
  bool down;
  uint32_t inflight;     /* replays in flight, <= cfg.hint_batch */
  unsigned char *cursor; /* replay resumes after this hint key */
  size_t curlen;
  /* [quiet_from, quiet_until): no hint to this peer can be due (see
   * repl_replay.c), so the replay timer skips the scan. */
  chorus_ms quiet_from, quiet_until;
  /* The ownership pass (repl_replay.c): every hint to this peer was
   * checked against ring version @owners_version (when @owners_checked);
   * the pass under way started at ring version @mversion and resumes
   * after @mcursor. */
  bool owners_checked;
  uint64_t owners_version, mversion;
  unsigned char *mcursor;
  size_t mcurlen;
  /* It answered a REPLICA_FORWARD with ENOTSUP (an older release): its
   * datacenter's replicas get one REPLICA_WRITE2 each from here on
   * (repl_write.c, ONE MESSAGE PER REMOTE DATACENTER). */
  bool no_forward;
};

struct repl_op;

/* A cleanup scan (repl_cleanup.c): the first storage key not looked at
 * yet (NULL: the start), whether the ring was checked for a span this node
 * does not own, and the read kept across steps (THE SCAN'S READ): the
 * ring version and store generation it was opened at, when it opened and
 * was last used. */
struct repl_cleanup {
  bool active, checked;
  /* This scan also deletes the keys of dropped keyspaces (repl_cleanup.c,
   * DROPPED KEYSPACES): it looks at every key, as of the ring's class map
   * @collect_map. */
  bool collect;
  uint64_t collect_map;
  /* The replication classes this node owns whole (bit c: class c of the
   * ring in force, repl_cleanup.c, CLASSES), once @checked; a new ring
   * clears @checked. */
  uint8_t whole;
  uint8_t *from;
  size_t flen;
  uint64_t deleted;
  struct store_iter *it;
  uint64_t ring, store_gen;
  chorus_ms opened, used;
};

/* A walk over the tombstone queue (repl_gc.c): where it is, and how many
 * dead objects it has kept so far. */
/* A dead object is purged only this long after it died (by the HLC time
 * of its death): twice the skew the nodes' clocks may have from true time
 * (their bound is 500 ms), so that every replica reads it dead too. */
#define REPL_GC_SKEW_MS 2000
/* How long a purge record (repl_gc.c, PURGE RECORDS) is kept: the other
 * replicas purge within a few exchange rounds of this node. */
#define REPL_GC_RECORD_MS (30u * 60 * 1000)

struct repl_gc {
  uint8_t *after;
  size_t alen;
  uint64_t held;
  struct repl_gc_walk walk, last; /* this walk's purges, the last one's */
};

/* repl__gc_mortal: whether @obj may die without a write: a kv object whose
 * siblings are all tombstones or values with a TTL. */
bool repl__gc_mortal(const struct crdt_obj *obj);
/* repl__gc_note: adds to @b, which writes the mortal object (@token, @key),
 * its place in the tombstone queue, stamped now. Errors: CHORUS_EINVAL (a
 * key over STORE_MAX_USER_KEY), CHORUS_ENOMEM. */
int repl__gc_note(struct repl *r, struct store_batch *b, chorus_token token,
                  const void *key, size_t klen);
/* repl__gc_was_purged: whether this node purged an object of exactly
 * @digest under (@token, @key) lately (PURGE RECORDS): a join of those
 * bytes into the empty slot brings nothing and is skipped. */
bool repl__gc_was_purged(struct repl *r, chorus_token token, const void *key,
                         size_t klen, uint64_t digest);
/* repl__gc_purgeable: whether the tombstone collector would purge the
 * object stored under @dkey (@obj, @len bytes) now: dead, queued, and
 * known held by every other replica. Anti-entropy leaves such objects out
 * of its key lists: each replica holds it or has purged it, so a
 * difference over it is no difference, and handing it back to a replica
 * that purged it would only start its collection over. */
bool repl__gc_purgeable(struct repl *r, const uint8_t *dkey, size_t dlen,
                        const void *obj, size_t len);
/* repl__aae_repaired_after: whether, for every other natural replica of
 * @token's range in the class of stored key @key (@klen bytes), an
 * anti-entropy exchange of that class over that range started at or after
 * monotonic @since in this incarnation, and completed. True at once in a
 * class with one replica: nobody else holds the key. */
bool repl__aae_repaired_after(const struct repl *r, chorus_token token,
                              const void *key, size_t klen, chorus_ms since);

/* A holder's read of the data space kept open for one puller's pulls
 * (repl_stream.c, THE KEPT READ). Empty while @it is NULL. */
struct repl_stream_read {
  chorus_node_id puller;
  uint64_t epoch;     /* the puller's, named by its STREAM_PULL */
  uint64_t ring;      /* this node's ring version when it opened */
  uint64_t store_gen; /* store_disk_info()->generation when it opened */
  struct store_iter *it;
  /* store_last_seq() just after @it opened: every entry @it shows was
   * written at or before it, so all of them are durable once
   * store_durable_seq() reaches it (repl_stream.c, ONE BARRIER A READ). */
  chorus_seq seq;
  chorus_ms opened, used;
};

/* Reads kept at once (a holder serves a few pullers per change), how long
 * one serves from its snapshot before the next pull opens a fresh one, and
 * how long an unused one stays open (the hint round closes it). */
#define REPL_STREAM_READS 4
#define REPL_STREAM_READ_MAX_AGE_MS 1000
#define REPL_STREAM_READ_IDLE_MS 2000
/* A cleanup scan's read is kept this long (repl_cleanup.c). */
#define REPL_CLEANUP_READ_MAX_AGE_MS 1000

/* ------------------------------------------------------------------------
 * Anti-entropy (repl_aae.c)
 * ------------------------------------------------------------------------ */

struct repl_aae_iv {
  chorus_token first, last; /* inclusive */
};

/* A key whose digests differ: its storage key and the peer's digest. */
struct repl_aae_diff {
  uint8_t *dkey; /* owned */
  size_t dlen;
  uint64_t remote; /* 0: the peer lacks it */
};

enum repl_aae_phase {
  REPL_AAE_IDLE = 0,
  REPL_AAE_BRANCHES, /* AAE_TREE_REQ of the branches sent */
  REPL_AAE_SEGMENTS, /* AAE_TREE_REQ of segments sent */
  REPL_AAE_KEYS,     /* AAE_KEYS_REQ sent */
  REPL_AAE_REPAIR,   /* REPLICA_READs of differing keys in flight */
};

#define REPL_AAE_WINDOW 16 /* REPLICA_READs in flight */
#define REPL_AAE_SERVED 4  /* peers whose shared intervals are kept */

/* Per (peer, replication class): the last exchanges and what
 * repaired_since needs. A class is named by its tag
 * (ring_snapshot_class_tag, 0 for the cluster's), which survives ring
 * changes where its index may not. */
struct repl_aae_peer {
  chorus_node_id id;
  uint64_t tag;
  chorus_ms last_started, last_completed;
  /* The monotonic start of the last completed exchange (this incarnation;
   * the tombstone collector's clock, repl__aae_repaired_after). */
  chorus_ms last_started_mono;
  uint64_t exchanges, aborted, segments_differing, keys_repaired, bytes;
  struct repl_aae_iv *iv; /* the intervals of the last completed exchange,
                             all repaired since @last_started; owned */
  size_t niv;
  bool priority; /* a hint to it was dropped: exchange with it first */
  bool wanted;   /* asked for (repl_aae_request): before any other */
};

/* Per token range this node replicates: what the exchanges it initiated
 * found there (repl_aae_ranges). A range is the gap before one vnode token
 * of the current ring, (previous token, token]; the one that wraps has
 * first > last. 72 bytes each, about N x T of them (3,072 at N = 3 and the
 * default T = 1,024: 221 KiB). */
struct repl_aae_range {
  chorus_token first, last;
  chorus_ms last_completed; /* wall ms at which the last exchange covering
                               it completed; 0: never */
  uint64_t exchanges;       /* completed exchanges covering it */
  uint64_t segments_differing, keys_differing, keys_repaired;
  uint64_t bytes_sent, bytes_received; /* repair objects */
};

struct repl_aae {
  enum repl_aae_phase phase;
  chorus_node_id peer;
  unsigned cls;      /* the class exchanged: its index in the ring of @epoch */
  uint64_t tag;      /* and its tag */
  uint64_t map;      /* the ring's class map at the start (trees_map) */
  uint64_t awaited;  /* request id of the AAE reply awaited; 0: none */
  uint64_t epoch;    /* this node's ring version at the start */
  chorus_ms started; /* wall */
  chorus_ms started_mono; /* monotonic */
  struct repl_aae_iv *iv; /* the shared intervals, sorted, disjoint */
  size_t niv;
  uint32_t *ids; /* tree entries of the level under comparison */
  size_t nids, capids, pos, chunk;
  struct repl_aae_iv *kr; /* token ranges to compare key by key */
  size_t nkr, capkr, krpos, krn;
  uint8_t *after; /* AAE_KEYS_REQ resumes after this storage key */
  size_t alen, acap;
  struct repl_aae_diff *diff;
  size_t ndiff, capdiff, dpos;
  uint64_t fetch[REPL_AAE_WINDOW]; /* REPLICA_READ ids; 0: free slot */
  size_t fetch_diff[REPL_AAE_WINDOW];
  /* Repairs sent to the peer (REPLICA_WRITE, durable), awaiting its
   * acknowledgement: an exchange completes only once the peer holds what
   * it was sent, so that the tombstone collector may count on it. */
  uint64_t push[REPL_AAE_WINDOW];
  /* Objects to send once durable (NOTHING NON-DURABLE LEAVES A NODE):
   * each the bytes read when everything up to @seq was written; the
   * barrier @barrier covers up to @barrier_seq. */
  struct repl_aae_push {
    uint8_t *obj; /* owned */
    size_t len, diff;
    chorus_seq seq;
  } held[REPL_AAE_WINDOW];
  size_t nheld;
  uint64_t barrier;
  chorus_seq barrier_seq;
  uint64_t wake; /* id of the throttle's timer; 0: none */
  double keys_tokens, bytes_tokens;
  chorus_ms refilled;                   /* monotonic ms of the last refill */
  uint64_t segs, keys, repaired, bytes; /* this exchange's */
  struct repl_aae_peer *peers;          /* sorted by id */
  size_t npeers, cappeers;
  chorus_node_id last_peer; /* the round robin's */
  /* This node's ranges at ring version @ranges_epoch, sorted by last
   * token (the wrapping one first), refreshed when an exchange starts. */
  struct repl_aae_range *ranges;
  size_t nranges;
  uint64_t ranges_epoch;
  bool ranges_set; /* @ranges is of @ranges_epoch (false: never built) */
  /* Rebuild scan: the next step resumes after this storage key. */
  uint8_t *scan;
  size_t slen, scap;
  /* The peer's side: the intervals this node shares with a peer in a
   * class at a ring version, kept between the requests of an exchange
   * (computing them walks the ring), for a few peers at once (several may
   * exchange with this node together); replaced round robin. */
  struct repl_aae_served {
    chorus_node_id peer; /* 0: empty */
    uint64_t tag, epoch;
    struct repl_aae_iv *iv; /* owned */
    size_t niv;
  } sv[REPL_AAE_SERVED];
  unsigned sv_next;
};

/* A replica write deferred into the store's batch, to be answered at
 * repl_flush (repl_replica.c, REPLICA WRITES IN BATCHES). */
struct repl_deferred_ack {
  chorus_node_id to;
  uint64_t req;   /* the coordinator's request id */
  chorus_ms born; /* when it arrived (REPLICA_TIMES) */
};

struct repl {
  struct repl_config cfg;
  struct store *store;
  const struct ring_snapshot *ring;
  struct repl_op *ops[REPL_OP_BUCKETS]; /* by id, chained */
  uint64_t next_op;
  uint64_t epoch;
  chorus_node_id actor;
  /* This data folder's own id, drawn when the store was created empty (0:
   * a store from before it existed): in the actor, so that a node that
   * comes back under its name with an empty disk never mints the dots its
   * lost incarnation minted (same id, same epochs from 1). */
  uint64_t disk_id;
  bool ready, failed;
  bool restoring; /* repl_set_restoring */
  struct repl_cleanup cleanup;
  struct repl_gc gc;
  /* An object this node does not own was kept (a stale coordinator's
   * write, or one a hint still needed): another scan is wanted. */
  bool cleanup_wanted;
  /* The ring class map (ring_snapshot_class_map) whose dropped
   * keyspaces a whole cleanup scan has deleted (DROPPED KEYSPACES). */
  uint64_t dropped_done;
  /* The epoch is in memory only: the store was full when it was to be
   * written (repl.h, A FULL DATA FOLDER). Reads and replica work are
   * served, writes are not coordinated; each hint round tries again. */
  bool epoch_volatile;
  bool epoch_syncing;     /* its barrier is pending */
  bool hint_round;        /* the hint round's timer runs */
  uint64_t store_reopens; /* the store's reopens the hint index has seen */
  uint64_t hint_ctr;
  struct repl_hints hints;
  struct repl_peer_state *peers; /* sorted by id */
  uint32_t npeers, cappeers;
  int local_group;
  struct repl_stats stats;
  struct repl_stream_read reads[REPL_STREAM_READS];
  /* The node's hybrid logical clock (crdt.h): stamps every kv write this
   * node coordinates (the siblings' ts, and expires = ts's physical time
   * + TTL), and dates reads (expired siblings read as absent). Advanced
   * from the @wall of events: @wall is the latest one seen. */
  struct hlc hlc;
  struct chorus_prng cas_prng; /* CAS backoff (seeded at first use) */
  bool cas_prng_ready;
  chorus_ms wall;
  chorus_ms now; /* the monotonic time of the event being handled */
  /* The last dot counter this incarnation's actor minted, for any key
   * (dvv_write_after): the actor is new at every start, so a counter in
   * memory never repeats a dot. */
  uint64_t dot_counter;
  /* Anti-entropy's trees, one per replication class of @ring (ring.h;
   * index = class index), each over the keys of its class only, so that
   * two nodes that replicate a range in one class and not in another
   * compare only what both must hold. @ntrees are initialized; they
   * follow the class map @trees_map (ring_snapshot_class_map): a ring with
   * another map makes them all stale, and one rebuild scan refills them
   * all (repl_aae_rebuild_step). */
  struct aae_tree trees[RING_MAX_CLASSES];
  unsigned ntrees;
  uint64_t trees_map;
  struct repl_aae aae;
  /* Replica writes deferred since the last repl_flush. */
  struct repl_deferred_ack *deferred;
  size_t ndeferred, capdeferred;
  char err[CHORUS_ERRMSG_SIZE];
};

/* repl__tick: an event at monotonic time @now and wall time @wall (every
 * event function calls it first). */
static inline void repl__tick(struct repl *r, chorus_ms now, chorus_ms wall) {
  r->wall = wall;
  r->now = now;
  r->hints.now = now;
}

/* repl__read_time: the HLC time a read is judged at: the clock's last time
 * or the wall clock, whichever is later (no tick of the counter: reading
 * is not an event other nodes must order after). A sibling whose expires
 * is at or before it reads as absent. */
static inline hlc_time repl__read_time(const struct repl *r) {
  chorus_ms w = r->wall < HLC_PHYSICAL_MAX ? r->wall : HLC_PHYSICAL_MAX;
  hlc_time t = hlc_make(w, 0);
  return t > r->hlc.last ? t : r->hlc.last;
}

/* repl__clock_check: an object that arrived from elsewhere, judged against THE
 * CLOCK BOUND OF LWW REGISTERS (repl.h). An lww object's time is received into
 * our HLC (hlc_recv), so that a write coordinated here later orders after what
 * this node holds; one more than max_clock_ahead_ms ahead of our wall clock is
 * refused, CHORUS_ECLOCK with the reason in r->err, and leaves our clock alone.
 * Other types: CHORUS_OK (their HLC times order nothing across nodes). */
int repl__clock_check(struct repl *r, const struct crdt_obj *obj);

/* repl__hint_seq: a new hint sequence, [epoch][counter]: unique per
 * incarnation, so an acknowledgement meant for an earlier write never
 * disarms a later one. */
static inline uint64_t repl__hint_seq(struct repl *r) {
  return (r->epoch << 32) | (++r->hint_ctr & 0xffffffffu);
}

#define REPL_TRACE(r, ...) chorus_trace((r)->cfg.tracer, "repl", __VA_ARGS__)

/* repl__peer_get: the state of peer @id, created (up, nothing in flight)
 * when @create; NULL when absent, or when creating it ran out of memory.
 * The pointer is good until the next creating call. */
struct repl_peer_state *repl__peer_get(struct repl *r, chorus_node_id id,
                                       bool create);
/* repl__peer_alive: whether membership holds @id up (ourselves, and nodes
 * it never mentioned, are). */
bool repl__peer_alive(struct repl *r, chorus_node_id id);
/* repl__epoch_ready: the start barrier passed: mint the actor, serve
 * requests, arm the hint round timer. Errors: effect errors. */
int repl__epoch_ready(struct repl *r, const struct repl_effects *fx);
/* repl__epoch_lost: the epoch could not be made durable for lack of space:
 * serve what needs no actor, and try again at each hint round.
 * Errors: effect errors. */
int repl__epoch_lost(struct repl *r, const struct repl_effects *fx);
/* repl__serving: whether requests other than coordinated writes are
 * served: the epoch is durable, or could not be for lack of space. */
static inline bool repl__serving(const struct repl *r) {
  return r->ready || r->epoch_volatile;
}

/* ------------------------------------------------------------------------
 * Operations (repl_op.c)
 *
 * Everything this node waits for is an operation in the table, found by id
 * when a timer, a barrier or a peer's answer names it. struct repl_op is a
 * tagged union: the header every kind has, and the part of its kind.
 * repl_op.c draws the states and every transition in one table.
 * ------------------------------------------------------------------------ */

enum repl_op_kind {
  REPL_OP_EPOCH = 1, /* the start barrier */
  REPL_OP_WRITE,     /* a coordinated write */
  REPL_OP_READ,      /* a coordinated read */
  REPL_OP_FORWARD,   /* a request handed to a replica */
  REPL_OP_ACK,       /* replica side: an acknowledgement waiting for a
                        barrier */
  REPL_OP_REPLAY,    /* a hint on its way to its target */
  REPL_OP_ANSWER,    /* replica side: a read answer waiting for a barrier */
  REPL_OP_ROUND,     /* replays waiting for a barrier */
  REPL_OP_RELAY,     /* forwarder side: a REPLICA_FORWARD's fan-out, its
                        replicas' acks relayed to the coordinator */
  REPL_OP_CAS,       /* a compare-and-set coordinated here (repl_paxos.c) */
  REPL_OP_PXANSWER,  /* acceptor side: a Paxos answer waiting for a
                        barrier */
};

enum repl_op_state {
  REPL_OP_START = 1, /* write, read: being set up by the request's event */
  REPL_OP_SYNCING,   /* waiting for a sync barrier it asked for */
  REPL_OP_HELD,      /* replay: waiting for its round's barrier */
  REPL_OP_SENT,      /* its messages are out; answers are being counted */
  REPL_OP_REPAIRING, /* read: blocking repairs out, their acks awaited */
  REPL_OP_REPLIED,   /* the request has its answer; stragglers awaited */
};

/* One replica a coordinated request involves. */
struct repl_target {
  chorus_node_id id;
  int group;                /* replication group (ring_replica.dc) */
  bool natural, pending;    /* a fallback is neither */
  chorus_node_id stands_in; /* fallback: the natural replica it covers */
  chorus_node_id via;       /* the forwarder that relays its ack (sent in
                               a REPLICA_FORWARD to it); 0: sent direct */
  bool sent, answered, acked, repairing;
  uint8_t *reply; /* read: the answer's object (NULL: not found); owned */
  size_t rlen;
  int refusal; /* read: the code of an ERROR it answered instead (its
                  copy too big to send); write: CHORUS_ECLOCK, it refused
                  the write's stamp; 0: none */
  uint32_t at; /* when its answer came: ms after repl_coord.born, plus 1;
                  0: none yet (the slow-request line) */
};

/* A traced request's own state (repl_timeline.c, TRACING), allocated with its
 * operation only when traced, so an untraced one carries a NULL pointer
 * and nothing else. */
struct repl_trace {
  /* The reply, held (encoded) until the operation ends; NULL until it is
   * made. */
  uint8_t *held; /* owned */
  size_t held_len;
  bool held_maybe;
  /* Per target, by repl_coord.t's index: what its REPLICA_TIMES said (its
   * own clock, ms after its receipt; @times false: nothing), and when a
   * read repair was sent to it (as repl_target.at; 0: none). */
  struct {
    bool times, synced;
    uint32_t synced_ms, answered_ms;
    uint32_t repaired_at;
  } t[RING_PLIST_MAX];
};

/* What a write and a read coordinated here have in common. */
struct repl_coord {
  uint8_t mtype;             /* the client's message type */
  struct repl_origin origin; /* whom to answer */
  chorus_token token;
  uint8_t *key; /* owned */
  size_t klen;
  struct repl_need need;
  struct repl_tally tally;
  uint8_t ntargets; /* <= RING_PLIST_MAX */
  struct repl_target t[RING_PLIST_MAX];
  /* The timeline a slow request's line shows (repl_timeline.c, SLOW REQUESTS):
   * when the request arrived (monotonic), then ms after that: its
   * messages out, its answer; read repairs sent. A few stores per event. */
  chorus_ms born;
  uint32_t sent_at, replied_at;
  uint16_t repairs;
  /* TRACING (repl_timeline.c): the request asked for its timeline (opts.flags
   * TRACE); NULL: it did not. Owned. */
  struct repl_trace *trace;
};

/* repl__coord_req: the request id of @op's replica requests: its id, with
 * REPL_REQ_TRACE when its request is traced. */
#define repl__coord_req(op, c)                                                 \
  ((op)->id | ((c)->trace != NULL ? REPL_REQ_TRACE : 0))

struct repl_op_write {
  struct repl_coord c;
  uint8_t *obj; /* the object written; owned */
  size_t olen;
  uint8_t *ctx; /* its causal context, the reply's; owned */
  size_t clen;
  struct ring_plist pl; /* fallbacks come from it */
  uint64_t hint_seq;    /* of the hints this write arms at its end */
  chorus_ms wall;       /* the write's wall clock: its hints' age */
  uint64_t epoch;       /* the ring's when the key was resolved */
  bool sloppy;
  int8_t local_group;  /* this node's group in the key's class, or -1 */
  bool stored;         /* its object is in this node's batch: hints due */
  uint32_t timeout_ms; /* the request's: REPLICA_FORWARD's relays last so */
  uint8_t flags;       /* the reply's warnings, WIRE_REPLY_* */
  uint32_t siblings;   /* live siblings after the write (kv) */
};

struct repl_op_read {
  struct repl_coord c;
  uint8_t read_repair; /* enum wire_read_repair, resolved */
};

/* Forwards to nodes that answer ESTALE (not a replica of the key in their
 * ring: this node's ring is behind, or theirs) are tried again this many
 * times in all, each to a replica not asked yet. */
#define REPL_FORWARD_TRIES 3u

struct repl_op_forward {
  uint8_t mtype;
  struct repl_origin origin;
  chorus_node_id to; /* the replica that got the request */
  /* The request, encoded whole (framed), to route it again after an
   * ESTALE; the nodes asked so far, @to the last. */
  uint8_t *req;
  size_t req_len;
  chorus_node_id tried[REPL_FORWARD_TRIES];
  uint8_t ntried;
  chorus_ms born; /* the request's arrival, for the slow-request line */
  bool traced;    /* the request asked for its timeline: the coordinator's
                     TRACE is passed on with this node's hop first */
};

struct repl_op_ack {
  chorus_node_id peer;
  uint64_t peer_req;
  uint8_t type; /* WIRE_REPLICA_ACK or WIRE_HINT_ACK */
  uint64_t hint_seq;
  chorus_ms born; /* its request's arrival (a traced one's times) */
};

struct repl_op_answer {
  chorus_node_id peer;
  uint64_t peer_req;
  uint8_t *obj; /* the stored object (NULL: not found); owned; for a
                   chunk, every entry's bytes back to back */
  size_t olen;
  /* A STREAM_CHUNK (repl_stream.c) rather than a REPLICA_READ_REPLY:
   * @items point into @obj (owned array). */
  bool chunk, more;
  struct wire_bytes *items;
  size_t nitems;
  uint64_t sum;
  chorus_token empty_to; /* STREAM_CHUNK2's (wire.h) */
  chorus_ms born;        /* its request's arrival (a traced one's times) */
};

struct repl_op_replay {
  chorus_node_id target;
  chorus_token token;
  uint8_t *key; /* owned */
  size_t klen;
  uint64_t hint_seq;
  uint8_t *obj; /* the object sent; owned */
  size_t olen;
};

struct repl_op_round {
  uint64_t *wait; /* ids of the replays it holds back; owned */
  uint32_t nwait, capwait;
};

struct repl_op_relay {
  chorus_node_id coord; /* who sent the REPLICA_FORWARD */
  uint64_t coord_req;   /* its request id, the relayed acks' */
  uint8_t n;            /* <= WIRE_MAX_FORWARD_TARGETS */
  chorus_node_id to[WIRE_MAX_FORWARD_TARGETS];
  bool answered[WIRE_MAX_FORWARD_TARGETS];
};

/* A CAS gives up after this many rounds (each a ballot; paxos.h). */
#define REPL_CAS_MAX_ROUNDS 12u

struct repl_op_cas {
  struct repl_origin origin;
  chorus_token token;
  uint8_t *key; /* owned */
  size_t klen;
  struct paxos_op px; /* owned once px_live */
  bool px_live;
  bool backing_off;            /* between rounds: the timer starts the next */
  bool gave_up;                /* its round budget or time is spent */
  bool clock_behind;           /* ... or no ballot above the highest seen:
                                  this node's clock is too far behind */
  chorus_ms timeout, deadline; /* the request's; monotonic */
  chorus_ms due; /* this round's (or backoff's) end: earlier timers are
                    stale (timers cannot be cancelled) */
  uint8_t mtype; /* WIRE_CAS or WIRE_LOCK: which reply it owes */
};

struct repl_op_pxanswer {
  chorus_node_id peer;
  struct wire_msg m; /* PAXOS_PROMISE, PAXOS_ACCEPT or ERROR */
  uint8_t *state;    /* PROMISE's state bytes; owned */
  char text[96];     /* ERROR's text */
};

struct repl_op {
  struct repl_op *next; /* hash chain */
  uint64_t id;
  enum repl_op_kind kind;
  enum repl_op_state state;
  union {
    struct repl_op_write write;
    struct repl_op_read read;
    struct repl_op_forward forward;
    struct repl_op_ack ack;
    struct repl_op_answer answer;
    struct repl_op_replay replay;
    struct repl_op_round round;
    struct repl_op_relay relay;
    struct repl_op_cas cas;
    struct repl_op_pxanswer pxanswer;
  } u;
};

/* What happens to an operation (repl_op.c's table says what it does). */
enum repl_op_event_kind {
  REPL_EV_STARTED = 1, /* write, read: set up, its first messages out */
  REPL_EV_FAILED,      /* write, read: refused while setting up: @status
                          and @text are the client's answer */
  REPL_EV_BARRIER,     /* the barrier it asked for ended with @status */
  REPL_EV_RELEASE,     /* replay: everything written is durable: go */
  REPL_EV_ANSWER,      /* @m from @from carries its id */
  REPL_EV_TIMEOUT,     /* its timer fired */
};

struct repl_op_event {
  enum repl_op_event_kind kind;
  int status;
  chorus_node_id from;
  const struct wire_msg *m;
  const char *text;
  chorus_ms wall; /* REPL_EV_ANSWER: the event's wall clock */
};

/* repl__op_new: an operation of @kind in the table, zeroed, in the state
 * its kind starts in, with the next id. NULL when out of memory. */
struct repl_op *repl__op_new(struct repl *r, enum repl_op_kind kind);
struct repl_op *repl__op_find(struct repl *r, uint64_t id);
/* repl__ops_free: every operation, at repl_free. */
void repl__ops_free(struct repl *r);
/* repl__coord: the write's or read's common part. */
static inline struct repl_coord *repl__coord(struct repl_op *op) {
  assert(op->kind == REPL_OP_WRITE || op->kind == REPL_OP_READ);
  return op->kind == REPL_OP_WRITE ? &op->u.write.c : &op->u.read.c;
}
/* repl__op_target: @op's target @id, or NULL. */
struct repl_target *repl__op_target(struct repl_coord *c, chorus_node_id id);
/* repl__op_arm: the operation's timer, @after ms from now. */
int repl__op_arm(const struct repl_effects *fx, const struct repl_op *op,
                 chorus_ms after);
/* repl__op_step: @ev happens to @op, which moves to its next state or ends
 * (freed: @op is gone when this returns, so callers touch it no more).
 * Errors: what the step's work returns (CHORUS_ENOMEM, effect errors). */
int repl__op_step(struct repl *r, struct repl_op *op,
                  const struct repl_op_event *ev,
                  const struct repl_effects *fx);
/* repl__op_end: @op ends (out of the table, freed). */
void repl__op_end(struct repl *r, struct repl_op *op);

/* ------------------------------------------------------------------------
 * Compare-and-set (repl_paxos.c)
 * ------------------------------------------------------------------------ */

/* repl__on_paxos: a PAXOS_PREPARE, PROPOSE or COMMIT from @from (this node
 * itself for its own CAS operations): applied to the key's acceptor state,
 * answered once durable. */
int repl__on_paxos(struct repl *r, chorus_node_id from,
                   const struct wire_msg *m, const struct repl_effects *fx);
/* repl__cas_start: a CAS this node coordinates (a natural replica of the
 * key, @pl its preference list), among every natural replica, or only
 * those of replication group @only_group (LOCAL_SERIAL; -1: all). */
int repl__cas_start(struct repl *r, const struct wire_msg *m,
                    const struct repl_origin *origin,
                    const struct ring_plist *pl, int only_group,
                    chorus_ms timeout, const struct repl_effects *fx);
/* repl__lock_start: a LOCK this node coordinates (as repl__cas_start; a
 * lock operation or a fenced write is a CAS with a lock condition). */
int repl__lock_start(struct repl *r, const struct wire_msg *m,
                     const struct repl_origin *origin,
                     const struct ring_plist *pl, chorus_ms timeout,
                     const struct repl_effects *fx);
int repl__cas_step(struct repl *r, struct repl_op *op,
                   const struct repl_op_event *ev,
                   const struct repl_effects *fx);
/* repl__pxanswer_step: the barrier of an acceptor's answer ended. */
int repl__pxanswer_step(struct repl *r, struct repl_op *op, int status,
                        const struct repl_effects *fx);

/* repl__op_fail: REPL_EV_FAILED with @code and a formatted text. */
int repl__op_fail(struct repl *r, struct repl_op *op,
                  const struct repl_effects *fx, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ------------------------------------------------------------------------
 * Requests (repl_request.c)
 * ------------------------------------------------------------------------ */

/* A client request, as the request message types share it. */
struct repl_request {
  const struct wire_bytes *key;
  const struct wire_options *opts;
  enum crdt_type type;
  bool write;
};

/* repl__request_of: whether @m is a request a node coordinates (*@q). */
bool repl__request_of(const struct wire_msg *m, struct repl_request *q);
bool repl__is_write_type(uint8_t type);
/* repl__coordinate: serves request @m from @origin: refused, forwarded, or
 * started here as a write or a read. Bad requests get an error reply.
 * Errors: CHORUS_ENOMEM, effect errors. */
int repl__coordinate(struct repl *r, const struct wire_msg *m,
                     const struct repl_origin *origin, chorus_ms wall,
                     const struct repl_effects *fx);
/* repl__forwards_lost: @to went down: the requests forwarded to it end now,
 * not at their timeout. A read is routed again (another replica or this
 * node); a write is answered CHORUS_ECANCELED, maybe applied (it may have
 * reached @to and been coordinated before it died: never sent twice). */
int repl__forwards_lost(struct repl *r, chorus_node_id to, chorus_ms wall,
                        const struct repl_effects *fx);
/* repl__coordinate_again: the request a forward kept (@fwd: its encoded
 * copy, the nodes that refused it), routed again from its origin with this
 * node's ring now: started here if this node is a replica of the key by
 * now, else forwarded to a live natural replica not asked yet; when there
 * is none, or @fwd's tries are spent, the origin gets EUNAVAILABLE.
 * Errors: CHORUS_ENOMEM, effect errors. */
int repl__coordinate_again(struct repl *r, const struct repl_op_forward *fwd,
                           chorus_ms wall, const struct repl_effects *fx);
/* repl__reply_error: answers @origin's request (type @mtype) with WIRE_ERROR
 * @code and a formatted text, traced and counted. */
int repl__reply_error(struct repl *r, const struct repl_effects *fx,
                      const struct repl_origin *origin, uint8_t mtype, int code,
                      const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* ------------------------------------------------------------------------
 * Coordinated writes (repl_write.c) and reads (repl_read.c)
 * ------------------------------------------------------------------------ */

/* repl__write_start: applies request @m to the stored object and writes
 * it with its hints, then asks for the barrier (REPL_EV_STARTED), or
 * refuses (REPL_EV_FAILED). @op is START with its coord part set. */
int repl__write_start(struct repl *r, struct repl_op *op,
                      const struct wire_msg *m, const struct repl_request *q,
                      chorus_ms wall, const struct repl_effects *fx);
/* repl__write_send: the write's barrier passed: counts ourselves and sends
 * the object to every live replica, or to a fallback for a dead one. */
int repl__write_send(struct repl *r, struct repl_op *op,
                     const struct repl_effects *fx);
/* repl__write_unforward: forwarder @from answered our REPLICA_FORWARD
 * with ENOTSUP (an older release): it is not asked to forward again, and
 * it and every replica it was to fan out to get the object direct. */
int repl__write_unforward(struct repl *r, struct repl_op *op,
                          chorus_node_id from, const struct repl_effects *fx);
/* repl__write_ack: replica @from answered @status; *@counted when that
 * acknowledgement counts (its hint is then disarmed). */
int repl__write_ack(struct repl *r, struct repl_op *op, chorus_node_id from,
                    int status, bool *counted);
/* repl__write_reply: the client's OK. */
int repl__write_reply(struct repl *r, struct repl_op *op,
                      const struct repl_effects *fx);
/* repl__write_hint_missing: at a write's end, a hint for every replica
 * that did not acknowledge it (HINTS FOR THE REPLICAS THAT DID NOT ANSWER,
 * repl_write.c), written with a sync barrier asked of @fx. A failed batch
 * is traced and the index rebuilt. Errors: CHORUS_ENOMEM, effect errors. */
int repl__write_hint_missing(struct repl *r, struct repl_op *op,
                             const struct repl_effects *fx);
/* repl__write_all_acked: whether every replica sent the object answered. */
bool repl__write_all_acked(const struct repl_op *op);
/* repl__write_short: the first replica that refused the write's stamp
 * (CHORUS_ECLOCK) when every replica sent the object has answered and the
 * quorum is not met, else NULL: the write can only fail. */
const struct repl_target *repl__write_short(const struct repl_op *op);

/* repl__read_start: reads our own object and asks the other live
 * replicas (REPL_EV_STARTED), or refuses (REPL_EV_FAILED). */
int repl__read_start(struct repl *r, struct repl_op *op,
                     const struct repl_request *q,
                     const struct repl_effects *fx);
/* repl__read_own: our own part became durable; false if already counted. */
bool repl__read_own(struct repl *r, struct repl_op *op);
/* repl__read_answer: replica @from answered @obj (copied); *@counted when
 * the answer was awaited. Errors: CHORUS_ENOMEM. */
int repl__read_answer(struct repl_op *op, chorus_node_id from,
                      const struct wire_bytes *obj, bool *counted);
/* repl__read_refused: replica @from answered ERROR @code instead of its
 * object (repl__send_read_answer: it does not fit a frame); false when no
 * answer of it was awaited. It counts toward nothing: r counts only copies
 * the join holds. */
bool repl__read_refused(struct repl_op *op, chorus_node_id from, int code);
/* repl__read_short: every asked replica answered, some refused, and r is
 * not met: nothing more can arrive that would meet it. */
bool repl__read_short(const struct repl_op *op);
/* repl__read_reply_short: the client's error for a short read. */
int repl__read_reply_short(struct repl *r, struct repl_op *op,
                           const struct repl_effects *fx);
/* repl__read_repair_acked: a blocking repair of @from was acknowledged;
 * false when none was awaited. */
bool repl__read_repair_acked(struct repl_op *op, chorus_node_id from);
/* repl__read_reply: r is met: joins the answers and answers the client
 * (*@answered), unless blocking read repair must first bring the replicas
 * that differ up to the join (it sends those repairs and waits for their
 * acknowledgements; the op calls again). A key of another type is answered
 * with CHORUS_ETYPE. Errors: CHORUS_ENOMEM, effect errors. */
int repl__read_reply(struct repl *r, struct repl_op *op,
                     const struct repl_effects *fx, bool *answered);
/* repl__read_finished: answered, every asked replica answered, no repair
 * awaited: nothing more can arrive that the read would use. */
bool repl__read_finished(const struct repl_op *op);
/* repl__read_repair_async: the end of an answered read: with async read
 * repair, brings the replicas that answered differently up to the join. */
int repl__read_repair_async(struct repl *r, struct repl_op *op,
                            const struct repl_effects *fx);

/* ------------------------------------------------------------------------
 * The replica side (repl_replica.c)
 * ------------------------------------------------------------------------ */

int repl__on_replica_write(struct repl *r, chorus_node_id from,
                           const struct wire_msg *m, chorus_ms wall,
                           const struct repl_effects *fx);
int repl__on_replica_read(struct repl *r, chorus_node_id from,
                          const struct wire_msg *m,
                          const struct repl_effects *fx);
/* repl__on_replica_forward: a coordinator's REPLICA_FORWARD: stored here
 * like its REPLICA_WRITE2 (acknowledged to @from by us), sent on to the
 * replicas it names, whose acknowledgements a REPL_OP_RELAY relays. A
 * malformed target list is traced and fanned out to nobody (their hints
 * stay with the coordinator). Errors: CHORUS_ENOMEM, effect errors. */
int repl__on_replica_forward(struct repl *r, chorus_node_id from,
                             const struct wire_msg *m, chorus_ms wall,
                             const struct repl_effects *fx);
/* repl__relay_answer: a replica answered a relayed write: its REPLICA_ACK
 * goes to the coordinator as REPLICA_RELAY_ACK; *@done once every replica
 * of @op answered. */
int repl__relay_answer(struct repl *r, struct repl_op *op, chorus_node_id from,
                       const struct wire_msg *m, const struct repl_effects *fx,
                       bool *done);
int repl__on_hint_deliver(struct repl *r, chorus_node_id from,
                          const struct wire_msg *m, chorus_ms wall,
                          const struct repl_effects *fx);
/* repl__send_times: for a traced replica request @req (REPL_REQ_TRACE),
 * its REPLICA_TIMES to @to: received at @born, answered now, after a
 * sync barrier when @synced (TRACING, repl_timeline.c); nothing for others.
 * Call it just before the answer. Errors: effect errors. */
int repl__send_times(const struct repl *r, const struct repl_effects *fx,
                     chorus_node_id to, uint64_t req, chorus_ms born,
                     bool synced);
/* repl__send_ack: a REPLICA_ACK or HINT_ACK (@type) of request @req. */
int repl__send_ack(const struct repl_effects *fx, chorus_node_id to,
                   uint64_t req, uint8_t type, uint64_t hint_seq, int status);
/* repl__send_read_answer: the REPLICA_READ_REPLY of request @req, or,
 * when it would not fit a peer frame (an object an older node let grow),
 * ERROR CHORUS_ETOOBIG: a part of an object must never pass for the whole,
 * or the coordinator's join, and a write with its context, would lose what
 * was left out. */
int repl__send_read_answer(struct repl *r, const struct repl_effects *fx,
                           chorus_node_id to, uint64_t req, const void *obj,
                           size_t olen);
/* repl__fits_peer: whether @m fits a peer frame (what every peer reads:
 * WIRE_MAX_FRAME_PEER). A message that does not is never sent: the
 * receiver would close the connection, and everything in flight on it
 * would go with it. */
bool repl__fits_peer(const struct wire_msg *m);
/* repl__hint_owners: adds to @b a hint of @pl's key (@key, @klen) for
 * every replica @pl lists (natural and pending) but this node and @skip
 * (0: none), all with one new sequence, stamped @wall. With @olen 0 the
 * hints carry no object (replay sends this node's current one); else each
 * carries @obj joined with what a hint of that owner for the key already
 * carries here. A hint without object replacing one that carries an
 * object (this node kept it as a fallback) first joins that object into
 * this node's store: with @olen 0 this node holds the key, and replay
 * sends its object. *@armed counts the hints added (not those over a byte
 * bound: counted dropped). The index assumes @b gets written (else
 * repl__resync_hints). Errors: CHORUS_EMALFORMED (@obj does not decode),
 * CHORUS_ENOMEM, encoder errors. */
int repl__hint_owners(struct repl *r, struct store_batch *b,
                      const struct ring_plist *pl, chorus_node_id skip,
                      const void *key, size_t klen, const void *obj,
                      size_t olen, chorus_ms wall, size_t *armed);
/* repl__msg_replica_write, repl__msg_hint_deliver: the two messages that
 * carry an object to a replica, each built here only; *@m borrows every
 * pointer it is given. */
void repl__msg_replica_write(struct wire_msg *m, uint64_t req,
                             chorus_token token, const void *key, size_t klen,
                             const void *obj, size_t olen, uint8_t flags,
                             uint64_t epoch);
void repl__msg_hint_deliver(struct wire_msg *m, uint64_t req,
                            chorus_node_id target, uint64_t hint_seq,
                            chorus_token token, const void *key, size_t klen,
                            const void *obj, size_t olen);

/* ------------------------------------------------------------------------
 * Streaming (repl_stream.c)
 * ------------------------------------------------------------------------ */

/* repl__on_stream_pull: a peer's STREAM_PULL: answered with a
 * STREAM_CHUNK once what it carries is durable, or ERROR. */
int repl__on_stream_pull(struct repl *r, chorus_node_id from,
                         const struct wire_msg *m, chorus_ms now,
                         const struct repl_effects *fx);
/* repl__stream_reads_close: closes the kept reads unused since before
 * @now - REPL_STREAM_READ_IDLE_MS (all of them when @all). */
void repl__stream_reads_close(struct repl *r, chorus_ms now, bool all);
/* repl__cleanup_read_close: closes the cleanup scan's kept read when
 * unused since before @now - REPL_STREAM_READ_IDLE_MS (or @all); the scan
 * goes on from its cursor with a new one. repl__cleanup_free: ends the
 * scan and frees it. */
void repl__cleanup_read_close(struct repl *r, chorus_ms now, bool all);
/* repl__cleanup_note_ring: a new ring; a scan is wanted when it names
 * dropped keyspaces not collected yet (repl_cleanup.c). */
void repl__cleanup_note_ring(struct repl *r);
void repl__cleanup_free(struct repl *r);
/* repl__send_chunk: the STREAM_CHUNK2 answering request @req (a
 * STREAM_CHUNK on a connection older than version 5: wire_reply_for). */
int repl__send_chunk(const struct repl_effects *fx, chorus_node_id to,
                     uint64_t req, struct wire_bytes *items, size_t n,
                     uint64_t sum, bool more, chorus_token empty_to);

/* ------------------------------------------------------------------------
 * Objects in the store (repl_object.c)
 * ------------------------------------------------------------------------ */

/* repl__data_key: the STORE_DATA key of (@token, @key), chorus_malloc'ed,
 * its length in *@len; NULL when out of memory. */
unsigned char *repl__data_key(chorus_token token, const void *key, size_t klen,
                              size_t *len);
/* repl__load_bytes: the stored bytes of a key (chorus_malloc'ed): *@buf
 * NULL and *@len 0 when absent. Errors: CHORUS_ENOMEM, store errors. */
int repl__load_bytes(struct repl *r, chorus_token token, const void *key,
                     size_t klen, void **buf, size_t *len);
/* repl__all_durable: whether every write so far is durable (see
 * repl_object.c: nothing non-durable leaves a node). */
bool repl__all_durable(struct repl *r);
/* repl__decode_obj: stored or received bytes as @want (CRDT_NONE: any
 * type); empty bytes are an empty object of @want. Errors: CHORUS_ETYPE,
 * CHORUS_EMALFORMED, CHORUS_EINVAL (empty with CRDT_NONE). */
int repl__decode_obj(const void *buf, size_t len, enum crdt_type want,
                     struct crdt_obj *obj, char *err);
/* repl__encode_obj: @obj into *@buf (chorus_malloc'ed). Errors:
 * CHORUS_ENOMEM, encoder errors (*@buf NULL). */
int repl__encode_obj(const struct crdt_obj *obj, uint8_t **buf, size_t *len);
/* repl__object_warnings: the WIRE_REPLY_* warnings of an object of
 * @bytes encoded, whose kv write or join reported @dvv_flags:
 * WIRE_REPLY_SIBLINGS for DVV_WARN (over the sibling cap's warn level),
 * WIRE_REPLY_LARGE over half the byte budget. */
uint8_t repl__object_warnings(const struct repl *r, size_t bytes,
                              unsigned dvv_flags);
/* repl__encode_ctx: a kv object's causal context, or an lww register's
 * stamp (WIRE_LWW_STAMP_BYTES), into *@buf (chorus_malloc'ed); NULL and 0
 * for other types. Errors: CHORUS_ENOMEM. */
int repl__encode_ctx(const struct crdt_obj *obj, uint8_t **buf, size_t *len);
/* repl__obj_join: crdt_obj_join, and for two compare-and-set states
 * (CRDT_PAXOS) paxos_acceptor_join. Every join of stored or received
 * objects goes through it. Errors: as crdt_obj_join; CHORUS_EMALFORMED (a
 * state that does not decode). */
int repl__obj_join(struct crdt_obj *dst, const struct crdt_obj *src,
                   unsigned *flags);
/* repl__paxos_get: @o's (CRDT_PAXOS) acceptor state into @a (uninitialised;
 * freed by the caller on success); an empty object is a fresh acceptor.
 * repl__paxos_set: @o takes @a's encoding. Errors: CHORUS_EMALFORMED,
 * CHORUS_ENOMEM. */
struct paxos_acceptor;
int repl__paxos_get(const struct crdt_obj *o, struct paxos_acceptor *a,
                    char *err);
int repl__paxos_set(struct crdt_obj *o, const struct paxos_acceptor *a);
/* repl__join_into_store: joins @bytes (a received object) into the stored
 * object of the key and writes the result when it changed, even over the
 * byte budget (counted: repl_stats.over_budget; see repl.h). Errors:
 * CHORUS_EMALFORMED (bad object), CHORUS_ETYPE, CHORUS_ECORRUPT (the
 * stored object does not decode), store errors, CHORUS_ENOMEM. */
int repl__join_into_store(struct repl *r, chorus_token token, const void *key,
                          size_t klen, const void *bytes, size_t blen);
/* repl__join_into_store_bound: repl__join_into_store, with the clock bound
 * of LWW registers (repl.h) applied only when @clock_bound: a range
 * streamed to its new owner is taken whole, since the old owner drops it
 * afterwards (cleanup) and a register refused here would be lost. */
/* repl__join_into_store_deferred: repl__join_into_store, the write (when
 * there is one) deferred into the store's batch (store_defer); *@deferred
 * says whether there was one. Its answer waits for repl_flush. */
int repl__join_into_store_deferred(struct repl *r, chorus_token token,
                                   const void *key, size_t klen,
                                   const void *bytes, size_t blen,
                                   bool *deferred);
int repl__join_into_store_bound(struct repl *r, chorus_token token,
                                const void *key, size_t klen, const void *bytes,
                                size_t blen, bool clock_bound);

/* ------------------------------------------------------------------------
 * Anti-entropy (repl_aae.c)
 * ------------------------------------------------------------------------ */

/* repl__aae_note: the object of storage key @dkey went from digest @old
 * to @new (aae_digest; 0: absent): the tree follows. Every write of
 * STORE_DATA calls it once the write succeeded, or repl__aae_stale when
 * the write failed (a batch may have been partly seen). */
void repl__aae_note(struct repl *r, const void *dkey, size_t dlen, uint64_t old,
                    uint64_t new);
/* repl__aae_ring_set: the ring changed (repl_set_ring): the trees go
 * stale when the class map changed. */
void repl__aae_ring_set(struct repl *r);
void repl__aae_stale(struct repl *r);
/* repl__aae_hint_dropped: a hint of (@target, @token) was dropped: the
 * next exchange is with @target. */
void repl__aae_hint_dropped(struct repl *r, chorus_node_id target,
                            chorus_token token);
/* repl__aae_on_tree_req, repl__aae_on_keys_req: a peer's requests,
 * answered (or refused with ERROR). Errors: CHORUS_ENOMEM, effect
 * errors. */
int repl__aae_on_tree_req(struct repl *r, chorus_node_id from,
                          const struct wire_msg *m,
                          const struct repl_effects *fx);
int repl__aae_on_keys_req(struct repl *r, chorus_node_id from,
                          const struct wire_msg *m,
                          const struct repl_effects *fx);
/* repl__aae_answer: whether @m (an answer) belongs to the exchange under
 * way (*@rc: what handling it returned). */
bool repl__aae_answer(struct repl *r, chorus_node_id from,
                      const struct wire_msg *m, chorus_ms now, chorus_ms wall,
                      const struct repl_effects *fx, int *rc);
/* repl__aae_barrier: whether sync token @token is the exchange's barrier
 * (*@rc: what handling it returned). */
bool repl__aae_barrier(struct repl *r, uint64_t token, int status,
                       chorus_ms now, const struct repl_effects *fx, int *rc);
/* repl__aae_timer: a REPL_TIMER_AAE timer fired. */
int repl__aae_timer(struct repl *r, uint64_t id, chorus_ms now, chorus_ms wall,
                    const struct repl_effects *fx);
/* repl__aae_member: membership says @node is down: an exchange with it
 * is abandoned. */
void repl__aae_member(struct repl *r, chorus_node_id node, bool alive);
void repl__aae_free(struct repl *r);

/* ------------------------------------------------------------------------
 * Hint upkeep and replay (repl_replay.c)
 * ------------------------------------------------------------------------ */

/* repl__disarm: a durable acknowledgement of @target for the key: deletes
 * its hint if it still carries @seq (*@deleted, may be NULL). Only
 * CHORUS_ENOMEM is an error; other failures are traced. */
int repl__disarm(struct repl *r, chorus_node_id target, chorus_token token,
                 const void *key, size_t klen, uint64_t seq, bool *deleted);
/* repl__resync_hints: a batch that carried hints (armed, or pending
 * deletes) failed: rebuilds the index from the table. */
void repl__resync_hints(struct repl *r);
/* repl__owns: whether @target is a replica (natural or pending) of key
 * @key (@klen bytes, token @token) in this node's ring, in the key's
 * replication class; *@pl gets the key's list (no owner listed when the
 * ring has none). */
bool repl__owns(const struct repl *r, chorus_node_id target, chorus_token token,
                const void *key, size_t klen, struct ring_plist *pl);
/* repl__hints_move: @h's target does not own its key, whose owners are
 * @pl's (repl.h, HINTS FOLLOW OWNERSHIP): hints it to each of them but
 * this node and @skip, carrying @h's object, or this node's copy when
 * this node owns the key no more; joins a carried object into this
 * node's store when this node is an owner; with @in_table, deletes @h in
 * the same batch. Counted moved; with no owner, or no copy to hand on, a
 * hint @in_table is deleted and counted dropped (not an owner), traced.
 * Errors: CHORUS_EUNAVAILABLE (not @in_table, and nowhere to move it:
 * nothing written), CHORUS_EMALFORMED (the object does not decode),
 * CHORUS_ENOMEM, store errors (the index is rebuilt from the table). */
int repl__hints_move(struct repl *r, const struct repl_hint *h,
                     const struct ring_plist *pl, chorus_node_id skip,
                     bool in_table);
/* repl__replay: one round for @target (0: every target with hints): its
 * hints checked against the ring when it changed, and replayed. */
int repl__replay(struct repl *r, chorus_node_id target, chorus_ms wall,
                 const struct repl_effects *fx);
/* repl__replay_send: a released replay's HINT_DELIVER. */
int repl__replay_send(const struct repl_effects *fx, const struct repl_op *op);
/* repl__replay_acked: the target of @op answered @status for @hint_seq:
 * the hint goes when it is still that one. */
int repl__replay_acked(struct repl *r, struct repl_op *op, chorus_node_id from,
                       uint64_t hint_seq, int status);
/* repl__replay_ended: a replay leaves the flight of its target. */
void repl__replay_ended(struct repl *r, const struct repl_op *op);

/* ------------------------------------------------------------------------
 * repl_timeline.c: a write's or read's own story (SLOW REQUESTS, TRACING)
 * ------------------------------------------------------------------------ */

/* repl__since: ms from @c's arrival to the event being handled. */
uint32_t repl__since(const struct repl *r, const struct repl_coord *c);
/* repl__answered_at: replica @from's first answer, timed (once). */
void repl__answered_at(const struct repl *r, struct repl_coord *c,
                       chorus_node_id from);
/* repl__to_replied: @op answered its client now. */
void repl__to_replied(struct repl *r, struct repl_op *op);
/* repl__slow_line: @op's one line on the warn tracer when it was slow
 * (@timed_out: its timer ended it). repl__forward_slow: a forward's. */
void repl__slow_line(struct repl *r, const struct repl_op *op,
                     const struct repl_coord *c, bool timed_out);
void repl__forward_slow(struct repl *r, const struct repl_op *op,
                        const char *how);
/* A traced step's effects: the driver's, with the reply held
 * (repl__hold_effects fills @h and *@out; repl__driver_fx: the driver's
 * effects behind either). */
struct repl_hold {
  const struct repl_effects *fx; /* the driver's */
  struct repl_coord *c;
};
void repl__hold_effects(struct repl_hold *h, const struct repl_effects *fx,
                        struct repl_coord *c, struct repl_effects *out);
const struct repl_effects *repl__driver_fx(const struct repl_effects *fx);
/* repl__trace_times: replica @from's own times (REPLICA_TIMES). */
void repl__trace_times(struct repl_coord *c, chorus_node_id from,
                       const struct wire_replica_times *t);
/* repl__trace_send, repl__held_send: a traced operation's end: its TRACE,
 * then its held reply. repl__forward_trace: a forwarded request's TRACE
 * passed on with this node's hop first. Errors: effect errors. */
int repl__trace_send(struct repl *r, const struct repl_op *op,
                     const struct repl_coord *c, bool timed_out,
                     const struct repl_effects *fx);
int repl__held_send(struct repl *r, struct repl_coord *c,
                    const struct repl_effects *fx);
int repl__forward_trace(struct repl *r, const struct repl_op *op,
                        const struct wire_msg *m,
                        const struct repl_effects *fx);

#endif /* CHORUS_REPL_INT_H */
