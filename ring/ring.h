/* ring.h: the consistent-hash ring: tokens, immutable snapshots, preference
 * lists, range movement between snapshots, and RCU publication.
 *
 * HOW IT WORKS
 *
 * A key's token is the xxh3-64 of its bytes (ring_token_of). Each node owns
 * T virtual-node tokens derived from an id alone, its own unless it took
 * another's (struct ring_node, tokens_of: a replacement),
 *
 *     token(id, i) = XXH3_64bits([id: 8 bytes LE][i: 4 bytes LE]),  0 <= i < T
 *
 * so the metadata (or gossip, with static membership) needs to carry only
 * the id, T and tokens_of for every peer to compute the same ring (DESIGN.md
 * §5; Dynamo §4.2 "virtual nodes"). A key belongs to the first token at or
 * after its own, clockwise, wrapping past 2^64-1 to 0.
 *
 * A struct ring_snapshot is immutable once built (ring_snapshot_build): the
 * sorted tokens with their owners, the node metadata (datacenter, rack,
 * ownership state) and the replication settings. Readers on any thread look
 * keys up without locks; a writer replaces the whole snapshot and publishes
 * it with RCU (struct ring_rcu below), freeing the old one after a grace
 * period, so a reader never sees a half-built ring.
 *
 * PREFERENCE LISTS (Dynamo §4.3, Cassandra's NetworkTopologyStrategy)
 *
 * Replication is either a single factor N for the whole cluster ("3") or a
 * factor per datacenter ("dc1:3,dc2:2"). Each datacenter (or the whole
 * cluster, for a single N) is a *group*. The lookup walks clockwise from the
 * key's token and, for each owner not seen before, takes it if its group
 * still needs replicas and its rack is new in that group; a node on a rack
 * already used is set aside. Once every rack of a group has been used, the
 * set-aside nodes of that group are taken in walk order, then any further
 * node: distinct racks first, reused racks only when there are not enough.
 * A group never asks for more replicas than it has nodes, so a small cluster
 * gives a short list rather than an error.
 *
 * OWNERSHIP STATES AND PENDING REPLICAS
 *
 * The *current* ring holds the tokens of normal and leaving nodes; it gives
 * the natural replicas, which serve reads and writes. The *future* ring holds
 * the tokens of normal and joining nodes (what the ring will be once every
 * transition completes). Nodes on the future list of a key but not on its
 * current list are *pending* replicas: they receive writes, so that they are
 * up to date when the transition completes, but are never counted for reads
 * or quorums (Cassandra's pending ranges). A joining node is thus pending for
 * the ranges it is taking; when a node leaves, its successors are pending for
 * the ranges they inherit. Left nodes own nothing and are kept only as
 * metadata.
 *
 * FALLBACKS
 *
 * For sloppy quorum and hinted handoff (Dynamo §4.6) a lookup can also return
 * fallback nodes: in each replicated group, the first nodes in clockwise
 * order from the key's token that are neither natural nor pending replicas,
 * listed in walk order. Each carries its group: a stand-in must be in the
 * datacenter of the down replica it stands in for (a LOCAL_QUORUM write
 * counted there, its hint held there, never a WAN hop away), so the list
 * has a share for every group rather than the first few of any group.
 *
 * THREADS
 *
 * Every function here is pure over its arguments except the ring_rcu_*
 * functions. A snapshot may be read from any number of threads at once.
 *
 * COST
 *
 * Building a snapshot sorts the vnodes, indexes them by the top bits of
 * their tokens, and walks once from every vnode to precompute its natural
 * replicas (tens of milliseconds for 100 nodes at the default T; rings
 * too big for a 32 MiB table walk at lookup time instead). A lookup is
 * then one bucket-indexed search and a copy (~40-50 ns for 100 nodes,
 * bench_ring); asking for fallbacks adds a short plain walk, and a
 * snapshot with joining or leaving nodes a second search (future ring).
 */
#ifndef CHORUS_RING_H
#define CHORUS_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus_error.h"
#include "chorus_types.h"

/* Default number of virtual nodes per node (T), chosen from the balance
 * table (bench_ring balance; tests/ring checks it). A node's share of the
 * ring is a sum of T gaps between random tokens, so its relative spread is
 * about 1/sqrt(T), and the largest of n shares sits near 1 + 2.4/sqrt(T)
 * times the mean at n = 64 (the tail of n draws). We promise max/mean
 * <= 1.15 for 3..64 nodes. Measured worst max/mean over 3..64 nodes and
 * eight id sets: T=256 1.242, T=512 1.186, T=768 1.133, T=1024 1.113,
 * T=2048 1.091. 512 breaks the promise on some id sets and 768 keeps it
 * with little margin; 1024 keeps a margin of ~0.04, while a 100-node ring
 * is still only 102,400 vnodes (1.6 MiB, plus the precomputed replica
 * table) and a lookup stays one bucket-indexed search. Gossip carries
 * only T, so nodes may still choose their own (a bigger machine, a bigger
 * T). */
#define RING_DEFAULT_VNODES 1024u
#define RING_MAX_VNODES 4096u
/* Nodes in one snapshot (node indexes are 16-bit in the token table). */
#define RING_MAX_NODES 4096u
/* Datacenter and rack names, including the terminating NUL. */
#define RING_NAME_MAX 32u
/* Datacenters named in one replication spec. */
#define RING_MAX_DCS 8u
/* Natural replicas of a key (the sum of the factors), and pending replicas. */
#define RING_MAX_REPLICAS 16u
/* Fallbacks one lookup can return. */
#define RING_MAX_FALLBACK 8u
/* Entries of struct ring_plist. */
#define RING_PLIST_MAX (2u * RING_MAX_REPLICAS + RING_MAX_FALLBACK)

/* ------------------------------------------------------------------------
 * Tokens
 * ------------------------------------------------------------------------ */

/* Keys of a keyspace (issue 21) are stored and replicated as
 * [0x00][the keyspace's id: 4 bytes BE][the client's key]; a client's key
 * never begins with 0x00 (nodes refuse one), so the form is unambiguous.
 * Such a key's token is its client key's: the keys a client names alike in
 * every keyspace share their replicas (as a partition key does across
 * Cassandra's tables), and a client routes by the key it has. */
#define RING_KS_PREFIX_LEN 5u

/* ring_key_keyspace: the keyspace id a stored key names in that form, 0
 * for a key of the default keyspace. */
uint32_t ring_key_keyspace(const void *key, size_t len);

/* ring_token_of: the token of a key: xxh3-64 of its @len bytes (@key may be
 * NULL when @len is 0), or of its client key for a keyspace's key (above). */
chorus_token ring_token_of(const void *key, size_t len);

/* ring_vnode_token: the token of virtual node @index of node @id, as the
 * layout above says. Every node computes every peer's tokens with it. */
chorus_token ring_vnode_token(chorus_node_id id, uint32_t index);

/* ------------------------------------------------------------------------
 * Replication settings
 * ------------------------------------------------------------------------ */

struct ring_dc_factor {
  char dc[RING_NAME_MAX];
  uint32_t factor; /* >= 1 */
};

/* Either a single factor (dc_count == 0, @n replicas anywhere in the
 * cluster) or one factor per named datacenter (datacenters not named get no
 * replicas). */
struct ring_replication {
  uint32_t n;        /* used when dc_count == 0; >= 1 */
  uint32_t dc_count; /* 0..RING_MAX_DCS */
  struct ring_dc_factor dcs[RING_MAX_DCS];
};

/* ring_replication_parse: parses a replication spec into @out.
 *
 *     spec    = factor | dcspec *("," dcspec)
 *     dcspec  = name ":" factor
 *     name    = 1*(ALPHA / DIGIT / "-" / "_" / ".")   (< RING_NAME_MAX bytes)
 *     factor  = decimal 1..RING_MAX_REPLICAS
 *
 * Spaces around names, factors and commas are ignored. "3" is three replicas
 * anywhere; "dc1:3,dc2:2" is three in dc1 and two in dc2. A datacenter may
 * appear once, and the factors may sum to at most RING_MAX_REPLICAS.
 * Errors: CHORUS_EINVAL (NULL arguments), CHORUS_EMALFORMED (bad spec; @errmsg,
 * which may be NULL, says what and where, e.g. `replication "dc1:0": factor
 * of dc1 must be 1..16`). @out is unspecified on error. */
int ring_replication_parse(const char *spec, struct ring_replication *out,
                           char *errmsg);

/* ring_replication_total: the sum of the factors (the natural replicas a
 * key gets when every group has enough nodes). */
uint32_t ring_replication_total(const struct ring_replication *repl);

/* ring_replication_check: whether @r is a replication ring_snapshot_build
 * accepts (what ring_replication_parse produces): with dc_count 0, n in
 * 1..RING_MAX_REPLICAS; else dc_count <= RING_MAX_DCS, every name
 * NUL-terminated within RING_NAME_MAX and named once, every factor in
 * 1..RING_MAX_REPLICAS and their sum at most RING_MAX_REPLICAS. Decoders of
 * replication settings read from the network or disk call it.
 * Errors: CHORUS_EMALFORMED (@errmsg, which may be NULL, says why). */
int ring_replication_check(const struct ring_replication *r, char *errmsg);

/* ------------------------------------------------------------------------
 * Snapshots
 * ------------------------------------------------------------------------ */

enum ring_node_state {
  RING_JOINING = 0, /* pending replica: writes, no reads */
  RING_NORMAL,      /* natural replica */
  RING_LEAVING,     /* still natural until it has left; successors pending */
  RING_LEFT,        /* owns nothing; metadata only */
  RING_REPLACING,   /* owns its tokens but lost its data (a replacement
                       with an empty disk): listed as a pending replica of
                       its ranges, never a natural one, until it has
                       streamed them back (Cassandra's replace) */
};

/* ring_node_state_name: "joining", "normal", "leaving", "left",
 * "replacing", or "?". */
const char *ring_node_state_name(enum ring_node_state state);

struct ring_node {
  chorus_node_id id;
  char dc[RING_NAME_MAX];   /* NUL-terminated; "" is a valid name */
  char rack[RING_NAME_MAX]; /* NUL-terminated; racks are per datacenter */
  enum ring_node_state state;
  uint32_t vnodes; /* T; 0 means RING_DEFAULT_VNODES */
  /* Whose virtual-node tokens the node holds: token(tokens_of, i) for
   * 0 <= i < T. 0 means its own id. A replacement takes the tokens of the
   * node it replaces (Cassandra's replace_address), so only the
   * replacement gains ranges and no other node's ranges move. */
  chorus_node_id tokens_of;
};

struct ring_snapshot;

/* ring_snapshot_build: builds an immutable snapshot of @count nodes with
 * replication @repl, stamped with @version (the writer's own counter, e.g.
 * the gossip epoch; ring_snapshot_version returns it). @nodes and @repl are
 * copied; the nodes are kept sorted by id, and a node's index (0..count-1)
 * in the snapshot is its rank by id. On CHORUS_OK *@out is a new snapshot
 * the caller frees with ring_snapshot_free() or hands to ring_rcu_publish().
 * An empty node list is valid (every lookup is then unavailable).
 * Errors: CHORUS_EINVAL (NULL @out or @repl, or @nodes NULL with @count > 0),
 * CHORUS_EMALFORMED (a duplicate id, a name without NUL within RING_NAME_MAX,
 * an unknown state, vnodes > RING_MAX_VNODES, more than RING_MAX_NODES nodes,
 * or @repl out of range; @errmsg, which may be NULL, says which),
 * CHORUS_ENOMEM. */
int ring_snapshot_build(const struct ring_node *nodes, size_t count,
                        const struct ring_replication *repl, uint64_t version,
                        struct ring_snapshot **out, char *errmsg);

/* ring_snapshot_free: frees @s (NULL is a no-op). Never call it on a
 * snapshot that is or was published: the publisher frees those. */
void ring_snapshot_free(struct ring_snapshot *s);

/* Accessors. @s is borrowed; returned pointers live as long as @s. */
uint64_t ring_snapshot_version(const struct ring_snapshot *s);
size_t ring_snapshot_node_count(const struct ring_snapshot *s);
/* The node at index @i (< node count), in id order. */
const struct ring_node *ring_snapshot_node(const struct ring_snapshot *s,
                                           size_t i);
/* The index of node @id, or -1 when it is not in @s. */
long ring_snapshot_find(const struct ring_snapshot *s, chorus_node_id id);
const struct ring_replication *
ring_snapshot_replication(const struct ring_snapshot *s);
/* Tokens of the current ring (normal and leaving nodes), and the @i-th of
 * them with its owner's node index. */
size_t ring_snapshot_token_count(const struct ring_snapshot *s);
chorus_token ring_snapshot_token(const struct ring_snapshot *s, size_t i,
                                 size_t *owner);
/* ring_snapshot_token_index: the index of the current ring's first token
 * >= @pos, where the piece holding @pos ends; the token count when none is
 * (@pos lies in the piece that wraps past the top of the token space). */
size_t ring_snapshot_token_index(const struct ring_snapshot *s,
                                 chorus_token pos);

/* ring_snapshot_ownership: the fraction of the token space each node's
 * vnodes own in the current ring (the gap before each of its tokens),
 * exactly: its share as primary replica when every datacenter is
 * replicated. The balance table measures this. @share must hold
 * ring_snapshot_node_count() doubles; nodes outside the current ring get
 * 0. */
void ring_snapshot_ownership(const struct ring_snapshot *s, double *share);

/* ring_snapshot_verify: recomputes the checksum sealed into @s at build time
 * over its tokens, owners and metadata. Meant for tests and debug checks
 * that a reader sees a whole, live snapshot.
 * Errors: CHORUS_ECORRUPT (mismatch). */
int ring_snapshot_verify(const struct ring_snapshot *s);

/* ------------------------------------------------------------------------
 * Preference lists
 * ------------------------------------------------------------------------ */

struct ring_replica {
  chorus_node_id id;
  uint16_t node; /* index in the snapshot */
  uint16_t dc;   /* replication group: index in the spec's dcs[], 0 for N */
};

/* The answer to one lookup, filled in by ring_lookup into caller memory.
 * r[] holds, in this order:
 *   [0, n_natural)                          natural replicas, order taken
 *   [n_natural, n_natural + n_pending)      pending replicas (writes only)
 *   [n_natural + n_pending, + n_fallback)   fallbacks, walk order
 * The first natural replica is the key's primary owner. */
struct ring_plist {
  chorus_token token;
  uint8_t n_natural;
  uint8_t n_pending;
  uint8_t n_fallback;
  struct ring_replica r[RING_PLIST_MAX];
};

/* ring_lookup: fills @out with the preference list of @token in @s, plus up
 * to @want_fallback fallbacks per replicated group (0 for none; cut to
 * RING_MAX_FALLBACK / groups when there are several groups, to
 * RING_MAX_FALLBACK for one).
 * Allocation-free and pure; @s is borrowed for the call (under RCU: inside
 * the read-side critical section that dereferenced it). Fewer natural
 * replicas than ring_replication_total() means some group has fewer nodes
 * than its factor. Asking for fallbacks costs a walk (see COST above).
 * Errors: CHORUS_EUNAVAILABLE (no natural replica: the current ring is
 * empty, or no replicated group has a node; pending replicas may still be
 * listed). */
int ring_lookup(const struct ring_snapshot *s, chorus_token token,
                unsigned want_fallback, struct ring_plist *out);

/* ring_lookup_key: ring_lookup(ring_snapshot_for_key(s, key, len),
 * ring_token_of(key, len), ...): the preference list of the key's class. */
int ring_lookup_key(const struct ring_snapshot *s, const void *key, size_t len,
                    unsigned want_fallback, struct ring_plist *out);

/* ------------------------------------------------------------------------
 * Replication classes (issue 21: a keyspace's own replication)
 *
 * A keyspace may replicate differently from the cluster ("dc1:3,dc2:1"
 * where the cluster has "3"). Its keys ([0x00][id][client key], above)
 * then take their preference lists from a *class*: a snapshot of the same
 * nodes built with the keyspace's replication, held inside the cluster's
 * snapshot. Class 0 is the snapshot itself (the cluster's replication,
 * and every key of the default keyspace or of a keyspace without its own);
 * keyspaces with equal replication share a class. The nodes, their order
 * and so their indexes are the same in every class, so a ring_replica's
 * node index means one node whichever class listed it.
 *
 * What looks up one key asks the key's class (ring_snapshot_for_key, or
 * ring_lookup_key which does); what works on token ranges (streaming,
 * cleanup, anti-entropy) works per class, on ring_snapshot_class(s, c),
 * and keeps to the keys of that class (ring_key_class). A class is named
 * across nodes by its tag (ring_replication_tag), never by its index,
 * which depends on which keyspaces a node's metadata holds.
 * ------------------------------------------------------------------------ */

/* Classes in one snapshot, the cluster's included. */
#define RING_MAX_CLASSES 8u

/* A keyspace's own replication, for ring_snapshot_build_classes. */
struct ring_ks_replication {
  uint32_t ks_id; /* >= 1 */
  struct ring_replication repl;
};

/* ring_replication_tag: a 64-bit name of the replica sets @r gives: the
 * same for two specs naming the same factors per datacenter in any order
 * (the walk picks each group on its own, so their lists hold the same
 * nodes), never 0. */
uint64_t ring_replication_tag(const struct ring_replication *r);

/* ring_snapshot_build_classes: ring_snapshot_build, plus one class per
 * distinct replication among @ks (@nks entries; @ks may be NULL when 0)
 * that differs from @repl. Keyspaces whose replication is the cluster's
 * stay in class 0. Errors: those of ring_snapshot_build; CHORUS_EMALFORMED
 * also for a bad replication in @ks, a keyspace id 0 or given twice, or
 * more than RING_MAX_CLASSES classes. */
int ring_snapshot_build_classes(const struct ring_node *nodes, size_t count,
                                const struct ring_replication *repl,
                                const struct ring_ks_replication *ks,
                                size_t nks, uint64_t version,
                                struct ring_snapshot **out, char *errmsg);

/* ring_snapshot_build_keyspaces: ring_snapshot_build_classes where @ks
 * lists every live keyspace (a replication with n 0 and no datacenters:
 * the cluster's) and @next_id is the metadata's next keyspace id: an id
 * below it that @ks does not list belongs to a dropped keyspace, whose
 * keys nobody replicates (ring_key_dropped). @next_id 0: not known (as
 * ring_snapshot_build_classes). Errors: those of
 * ring_snapshot_build_classes; also an id at or above @next_id. */
int ring_snapshot_build_keyspaces(const struct ring_node *nodes, size_t count,
                                  const struct ring_replication *repl,
                                  const struct ring_ks_replication *ks,
                                  size_t nks, uint32_t next_id,
                                  uint64_t version, struct ring_snapshot **out,
                                  char *errmsg);

/* ring_key_dropped: whether a stored key belongs to a dropped keyspace of
 * @s (ring_snapshot_build_keyspaces): unreachable by any request, so
 * never streamed, exchanged by anti-entropy or repaired, and deleted by
 * cleanup. ring_key_class answers 0 for it. ring_snapshot_has_dropped:
 * whether @s knows of any. */
bool ring_key_dropped(const struct ring_snapshot *s, const void *key,
                      size_t len);
bool ring_snapshot_has_dropped(const struct ring_snapshot *s);

/* ring_snapshot_class_count: the classes of @s, at least 1 (class 0). A
 * class's own snapshot has 1. */
unsigned ring_snapshot_class_count(const struct ring_snapshot *s);

/* ring_snapshot_class: the snapshot of class @c (< class count; 0 is @s
 * itself), NULL past the count. Borrowed: it lives as long as @s. */
const struct ring_snapshot *ring_snapshot_class(const struct ring_snapshot *s,
                                                unsigned c);

/* ring_snapshot_class_tag: the tag of class @c: 0 for class 0 (whatever
 * the cluster's replication), ring_replication_tag of its replication
 * otherwise. */
uint64_t ring_snapshot_class_tag(const struct ring_snapshot *s, unsigned c);

/* ring_snapshot_class_find: the index of the class tagged @tag (0 for 0),
 * or -1 when @s has none. */
int ring_snapshot_class_find(const struct ring_snapshot *s, uint64_t tag);

/* ring_snapshot_class_map: a 64-bit name of which keyspace is in which
 * class at which index in @s: equal for two snapshots whose
 * ring_key_class answers and class tags are the same for every key and
 * index (what keeps per-class state, like anti-entropy's trees, valid
 * across a ring change), whatever their nodes; it names the dropped
 * keyspaces too (ring_key_dropped). 0 when @s has no class but the
 * cluster's and no dropped keyspace. */
uint64_t ring_snapshot_class_map(const struct ring_snapshot *s);

/* ring_key_class: the class of a stored key: its keyspace's, or 0 (the
 * default keyspace, a keyspace with the cluster's replication or one @s
 * does not know). */
unsigned ring_key_class(const struct ring_snapshot *s, const void *key,
                        size_t len);

/* ring_snapshot_for_key: ring_snapshot_class(s, ring_key_class(...)). */
const struct ring_snapshot *ring_snapshot_for_key(const struct ring_snapshot *s,
                                                  const void *key, size_t len);

/* ------------------------------------------------------------------------
 * Range movement
 * ------------------------------------------------------------------------ */

/* One token range that @to gains between two snapshots. The range is
 * (start, end] clockwise: it wraps past 2^64-1 when start >= end, and
 * start == end means the whole ring. */
struct ring_move {
  chorus_token start; /* exclusive */
  chorus_token end;   /* inclusive */
  chorus_node_id from;
  chorus_node_id to;
  /* 0 when no node held the range before (an empty old ring): nothing to
   * stream, @from is then 0 and meaningless. */
  int has_from;
  /* The class whose keys move (ring_snapshot_class_tag; 0 for class 0):
   * ring_diff leaves it 0, and its callers set it when they diff the
   * snapshots of another class. */
  uint64_t class_tag;
};

/* ring_diff: lists the token ranges whose natural replica sets differ
 * between @before and @after, as (range, from, to) moves: for each range,
 * every node that is a natural replica in @after but not in @before gains
 * it (@to), paired in walk order with a node that loses it (@from) when one
 * does, otherwise with the range's first natural replica in @before (a node
 * that keeps it, and can stream it). Adjacent ranges with the same pair are
 * merged. Pure; both snapshots are borrowed. Pending replicas are not
 * natural: to plan the streams of a join, diff the snapshot before the join
 * against one where the joiner is normal.
 * On CHORUS_OK *@moves is a chorus_malloc'ed array of *@count moves (NULL
 * when there are none) that the caller frees with chorus_free().
 * Errors: CHORUS_EINVAL (NULL argument), CHORUS_ENOMEM. */
int ring_diff(const struct ring_snapshot *before,
              const struct ring_snapshot *after, struct ring_move **moves,
              size_t *count);

/* ring_diff_kept: the ranges that @leaver, a natural replica of them in
 * @before and not in @after, gives up to nobody: no node gains them
 * (every natural replica in @after was one in @before, as when a cluster
 * shrinks below its replication factor). ring_diff lists nothing for
 * them, yet @leaver may hold writes the replicas that keep them missed
 * (acknowledged by it and others, hinted to them): each is listed as a
 * move from @leaver to every natural replica in @after, which pulls it.
 * Adjacent ranges with the same pair are merged; has_from is 1. Pure;
 * both snapshots are borrowed. On CHORUS_OK *@moves is a chorus_malloc'ed
 * array of *@count moves (NULL when none) that the caller frees with
 * chorus_free(). Errors: CHORUS_EINVAL (NULL argument), CHORUS_ENOMEM. */
int ring_diff_kept(const struct ring_snapshot *before,
                   const struct ring_snapshot *after, chorus_node_id leaver,
                   struct ring_move **moves, size_t *count);

/* ------------------------------------------------------------------------
 * RCU publication (liburcu, urcu-memb flavour)
 *
 * Defined in ring_rcu.c, a target of its own (chorus_ring_rcu, ring_rcu_dep
 * in ring/meson.build) so that what only builds and reads snapshots, such
 * as the client library, does not link liburcu.
 * ------------------------------------------------------------------------ */

/* The published ring. A single writer at a time (serialize writers
 * yourself) publishes; any number of reader threads read. Readers:
 *
 *     ring_rcu_register_thread();          // once per thread
 *     ring_rcu_read_lock();
 *     const struct ring_snapshot *s = ring_rcu_get(&pub);
 *     ... ring_lookup(s, ...); no blocking, s dies at unlock ...
 *     ring_rcu_read_unlock();
 *     ring_rcu_unregister_thread();        // before the thread exits
 *
 * The writer's thread must be registered too (call_rcu requires it). */
struct ring_rcu {
  struct ring_snapshot *current; /* only through the functions below */
};

/* ring_rcu_init: @initial (may be NULL) becomes the published snapshot;
 * ownership passes to @r. */
void ring_rcu_init(struct ring_rcu *r, struct ring_snapshot *initial);

/* ring_rcu_publish: makes @s (may be NULL) the published snapshot with
 * rcu_assign_pointer and hands the previous one to call_rcu, which frees it
 * once every reader that could see it has left its critical section. Never
 * blocks. Ownership of @s passes to @r. Must not be called inside a
 * read-side critical section. */
void ring_rcu_publish(struct ring_rcu *r, struct ring_snapshot *s);

/* ring_rcu_get: the published snapshot, or NULL. Only inside
 * ring_rcu_read_lock()/unlock(); the pointer is valid until the unlock. */
const struct ring_snapshot *ring_rcu_get(struct ring_rcu *r);

/* ring_rcu_fini: unpublishes, waits for readers and for every pending free
 * (synchronize_rcu, rcu_barrier), and frees the last snapshot. No reader may
 * use @r afterwards. */
void ring_rcu_fini(struct ring_rcu *r);

/* The flavour's thread and critical-section calls, so callers need not
 * include liburcu headers or pick the flavour themselves. */
void ring_rcu_register_thread(void);
void ring_rcu_unregister_thread(void);
void ring_rcu_read_lock(void);
void ring_rcu_read_unlock(void);

#endif /* CHORUS_RING_H */
