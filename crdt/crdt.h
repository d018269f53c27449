/* crdt.h: causality (version vectors, dotted version vectors, hybrid logical
 * clocks) and the convergent types chorus stores (counters, LWW register,
 * multi-value register, add-wins set, map), with their codecs.
 *
 * WHAT LIVES HERE
 *
 *   vv_        version vector: node id -> counter, a compact set of dots
 *   crdt_ctx_  causal context: a version vector plus a "dot cloud" of dots
 *              that are not contiguous with it (delta-CRDTs need it)
 *   dvv_       dotted version vector set (the `kv` multi-value register):
 *              siblings of opaque values, each tagged with the dot that
 *              created it, plus one version vector of everything seen
 *   hlc_       hybrid logical clock (Kulkarni et al. 2014)
 *   gcounter_  grow-only counter, one slot per chorus_node_id
 *   pncounter_ increment/decrement counter with op-id de-duplication
 *   lww_       last-writer-wins register ordered by (HLC, node id)
 *   orset_     add-wins observed-remove set without tombstones (ORSWOT)
 *   crdt_map_  Riak-style map of registers, counters, sets, flags, maps
 *   crdt_obj_  the tagged envelope storage keeps, one blob per key
 *
 * Everything here is pure: no I/O, no clock reads (time comes in as an
 * argument), no randomness. Every value type owns its memory; _init makes an
 * empty value, _free releases it (and leaves it empty, so _free twice is
 * fine), _copy makes an independent deep copy.
 *
 * JOIN
 *
 * Each type has a join (x_join(dst, src)) that is commutative, associative
 * and idempotent over every state the type's operations can build, and over
 * every state x_decode accepts: decoders check the invariants that the laws
 * rest on (sorted entries, dots covered by their context, no zero slots), so
 * a decoded state is canonical and x_equal compares meaning. The property
 * suite in tests/crdt checks the laws on random histories.
 *
 * A join either succeeds or fails with CHORUS_ENOMEM leaving @dst exactly as
 * it was; the same holds for every update operation below.
 *
 * CODECS (STYLE.md rule 13)
 *
 * x_encoded_size(x) gives the exact byte count; x_encode(x, buf, cap, &n)
 * writes it (CHORUS_ETOOBIG when @cap is too small, nothing useful written);
 * x_decode(out, buf, len, errmsg) parses into an uninitialised @out that the
 * caller _frees on success (on failure @out is left empty, nothing to free).
 * Every encoding starts with one format version byte (CRDT_FORMAT_V1), then
 * msgpack. Decoders never trust a count: every array or bin length must fit
 * in the bytes left, nesting is fixed by the schema, trailing bytes are an
 * error, and every failure is CHORUS_EMALFORMED with a message in @errmsg
 * (which may be NULL), except an unknown version byte, which is
 * CHORUS_EVERSION, and CHORUS_ENOMEM. Decoding allocates in proportion to
 * the input (at most ~40 bytes of memory per input byte, the worst case
 * being PN-counter slots, whose op-id windows are inline).
 */
#ifndef CHORUS_CRDT_H
#define CHORUS_CRDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus_error.h"
#include "chorus_trace.h"
#include "chorus_types.h"

/* The first byte of every encoding in this module. */
#define CRDT_FORMAT_V1 1
/* dvv encodings only: siblings carry their write time and expiry (issue
 * 20). dvv_encode writes it; dvv_decode still reads CRDT_FORMAT_V1 (the
 * times are then 0, "unknown" and "never"). */
#define CRDT_FORMAT_DVV_V2 2

/* A hybrid logical clock time (see "Hybrid logical clocks" below). */
typedef uint64_t hlc_time;

/* A dot: the @counter-th event minted by @node. Counters start at 1. */
struct crdt_dot {
  chorus_node_id node;
  uint64_t counter;
};

/* Event counters (dot counters and the vv entries of a causal context) stay
 * at or below CRDT_EVENT_MAX, so "the next event", counter + 1, never wraps.
 * No replica mints 2^63 events; a decoded value that claims more is refused
 * as malformed, and minting past the bound fails with CHORUS_ERANGE. */
#define CRDT_EVENT_MAX (UINT64_MAX >> 1)

/* ========================================================================
 * Version vectors
 *
 * A map node -> counter meaning "every dot (node, 1..counter) has been
 * seen". Entries are kept sorted by node id with no zero counters, so two
 * vectors with the same meaning have the same bytes.
 * ======================================================================== */

struct vv_entry {
  chorus_node_id node;
  uint64_t counter;
};

struct vv {
  struct vv_entry *e; /* sorted by node, counters > 0 */
  uint32_t n, cap;
};

enum vv_order {
  VV_EQUAL,      /* same history */
  VV_BEFORE,     /* a < b: b has seen everything a has, and more */
  VV_AFTER,      /* a > b */
  VV_CONCURRENT, /* each has seen something the other has not */
};

void vv_init(struct vv *v);
void vv_free(struct vv *v);
/* vv_copy: @dst (initialised) becomes a copy of @src.
 * Errors: CHORUS_ENOMEM (@dst unchanged). */
int vv_copy(struct vv *dst, const struct vv *src);
/* vv_get: the counter for @node, 0 when absent. O(log n). */
uint64_t vv_get(const struct vv *v, chorus_node_id node);
/* vv_set: sets @node's counter to @counter (0 removes the entry).
 * Errors: CHORUS_ENOMEM (@v unchanged). */
int vv_set(struct vv *v, chorus_node_id node, uint64_t counter);
/* vv_covers: whether @v has seen dot @d. */
bool vv_covers(const struct vv *v, struct crdt_dot d);
/* vv_join: @dst becomes the pointwise maximum of @dst and @src.
 * Errors: CHORUS_ENOMEM (@dst unchanged). */
int vv_join(struct vv *dst, const struct vv *src);
/* vv_compare: the causal order of @a and @b. */
enum vv_order vv_compare(const struct vv *a, const struct vv *b);
/* vv_leq: @a <= @b (b descends from a). */
bool vv_leq(const struct vv *a, const struct vv *b);
bool vv_equal(const struct vv *a, const struct vv *b);

/* Codec. Layout: [version][msgpack array of 2n uints: node, counter, ...],
 * nodes strictly ascending, counters >= 1. The client-facing causal context
 * of a `kv` read (dvv_context_*) is this encoding. */
size_t vv_encoded_size(const struct vv *v);
int vv_encode(const struct vv *v, uint8_t *buf, size_t cap, size_t *written);
int vv_decode(struct vv *out, const uint8_t *buf, size_t len, char *errmsg);

/* ========================================================================
 * Causal contexts: a version vector plus a dot cloud
 *
 * Delta-state CRDTs (Almeida, Shoker, Baquero, "Delta State Replicated Data
 * Types", 2018, §7) ship small deltas whose causal context is a handful of
 * dots, not a contiguous history. A replica that receives deltas out of
 * order therefore holds a dot set with gaps: the contiguous prefix per node
 * lives in @vv, the rest in @cloud. Compaction moves cloud dots into @vv as
 * soon as the gap before them closes, so the representation of a dot set is
 * unique (every cloud dot has counter > vv[node] + 1).
 * ======================================================================== */

struct crdt_ctx {
  struct vv vv;
  struct crdt_dot *cloud; /* sorted by (node, counter), none covered by vv */
  uint32_t ncloud, capcloud;
};

void crdt_ctx_init(struct crdt_ctx *c);
void crdt_ctx_free(struct crdt_ctx *c);
int crdt_ctx_copy(struct crdt_ctx *dst, const struct crdt_ctx *src);
bool crdt_ctx_covers(const struct crdt_ctx *c, struct crdt_dot d);
/* crdt_ctx_add: adds @d (compacting). Errors: CHORUS_ENOMEM (unchanged). */
int crdt_ctx_add(struct crdt_ctx *c, struct crdt_dot d);
/* crdt_ctx_join: @dst becomes the union of both dot sets (compacted).
 * Errors: CHORUS_ENOMEM (unchanged). */
int crdt_ctx_join(struct crdt_ctx *dst, const struct crdt_ctx *src);
/* crdt_ctx_next: the dot @node mints next: one past the largest of its dots
 * in @c. Does not add it. */
struct crdt_dot crdt_ctx_next(const struct crdt_ctx *c, chorus_node_id node);
bool crdt_ctx_equal(const struct crdt_ctx *a, const struct crdt_ctx *b);
/* crdt_ctx_covers_all: whether @c covers every dot @sub covers. */
bool crdt_ctx_covers_all(const struct crdt_ctx *c, const struct crdt_ctx *sub);

/* Codec. Layout: [version][array(2): vv body, array(2k) cloud dots (node,
 * counter, ...)], the same two fields a set's encoding opens with; the
 * cloud strictly ascending and canonical (no dot covered by or contiguous
 * with the vv). The client-facing causal context of a `set` read (SET_REPLY)
 * and of a set remove (SET_REMOVE) is this encoding. */
size_t crdt_ctx_encoded_size(const struct crdt_ctx *c);
int crdt_ctx_encode(const struct crdt_ctx *c, uint8_t *buf, size_t cap,
                    size_t *written);
/* crdt_ctx_decode: @out is initialised by the call (nothing to free on
 * error). Errors: CHORUS_EMALFORMED, CHORUS_EVERSION, CHORUS_ENOMEM. */
int crdt_ctx_decode(struct crdt_ctx *out, const uint8_t *buf, size_t len,
                    char *errmsg);

/* ========================================================================
 * Dotted version vector sets: the `kv` multi-value register
 *
 * HOW IT WORKS (Preguiça, Baquero, Almeida, Fonte, Gonçalves, "Dotted
 * Version Vectors: Efficient Causality Tracking for Distributed Key-Value
 * Stores", DAIS 2012 / arXiv 1011.5808 §4-5; Riak's dvvset)
 *
 * An object is a set of siblings plus one version vector @vv of everything
 * this replica has seen for the key. Each sibling carries the dot minted
 * when it was written: (coordinating node, next counter for that node). A
 * client reads all siblings and an opaque context (the vv); a write carries
 * that context back, and the coordinator
 *   1. discards every sibling whose dot the context covers (the client saw
 *      it, so the new value supersedes it),
 *   2. mints dot (coord, max(vv[coord], ctx[coord]) + 1),
 *   3. sets vv := max(vv, ctx) + the new dot and adds the sibling.
 * Siblings the client did not see survive as concurrent values. Because the
 * dot names one write exactly, two clients that keep writing with stale
 * contexts leave two siblings, where per-server version vectors shared by all
 * siblings could discard nothing and grow without bound (the paper's §3
 * sibling explosion; tests/crdt has the 101-write case).
 *
 * join(a, b) keeps a sibling when both have it, or when one has it and the
 * other's vv does not cover its dot (the other never saw it, so it was not
 * overwritten there); vv := max. Whole objects are replicated, so every vv
 * is a contiguous history and needs no dot cloud.
 *
 * A delete is a write of a tombstone (a sibling with no value) with a
 * context: it discards what the context covers like any write. An object
 * whose siblings are all tombstones (or that has none) reads as not found,
 * yet keeps its vv, so a late replica's stale value loses on join.
 *
 * SIBLING CAP
 *
 * Writes report the sibling count against struct dvv_limits: above @warn the
 * write succeeds and sets DVV_WARN in *@flags; a write that would leave more
 * than @reject siblings is refused with CHORUS_ESIBLINGS and changes nothing.
 * Joins never refuse (replicas must converge); they only report DVV_WARN.
 * ======================================================================== */

struct dvv_sibling {
  struct crdt_dot dot;
  uint8_t *value; /* owned; NULL for a tombstone or an empty value */
  uint32_t len;
  bool tombstone;
  /* The coordinator's HLC time of the write that made this sibling, value
   * or tombstone; 0: unknown (written before siblings carried it). */
  hlc_time ts;
  /* Values only (0 on tombstones): the HLC time from which the value reads
   * as not found (its TTL ran out); 0: never. */
  hlc_time expires;
};

struct dvv {
  struct vv vv;            /* everything seen; covers every sibling's dot */
  struct dvv_sibling *sib; /* sorted by dot (node, counter) */
  uint32_t n, cap;
};

/* Riak's defaults: warn at 25 siblings, refuse beyond 100. */
#define DVV_WARN_DEFAULT 25
#define DVV_REJECT_DEFAULT 100
/* Largest value a sibling may hold (the encoding's length field bound). */
#define DVV_VALUE_MAX (64u * 1024u * 1024u)

struct dvv_limits {
  uint32_t warn;   /* DVV_WARN when the count ends above this */
  uint32_t reject; /* CHORUS_ESIBLINGS when a write would exceed this */
  /* Where cap decisions are traced (module "dvv"); may be NULL. */
  const struct chorus_tracer *tracer;
};

/* Bits of *flags. */
#define DVV_WARN 1u

void dvv_init(struct dvv *d);
void dvv_free(struct dvv *d);
int dvv_copy(struct dvv *dst, const struct dvv *src);

/* dvv_put: the write at coordinator @coord of @value (@len bytes, copied)
 * with the causal context @ctx the client got from a read (NULL or empty:
 * a blind write, which adds a sibling). @lim NULL means the defaults.
 * *@dot (may be NULL) receives the minted dot; *@flags (may be NULL) gets
 * DVV_WARN or 0.
 * Errors: CHORUS_ESIBLINGS (over @lim->reject; @d unchanged),
 * CHORUS_ETOOBIG (@len > DVV_VALUE_MAX), CHORUS_ERANGE (@coord's counter is
 * at CRDT_EVENT_MAX), CHORUS_ENOMEM (@d unchanged). */
int dvv_put(struct dvv *d, chorus_node_id coord, const struct vv *ctx,
            const void *value, size_t len, const struct dvv_limits *lim,
            struct crdt_dot *dot, unsigned *flags);

/* dvv_delete: as dvv_put, writing a tombstone. */
int dvv_delete(struct dvv *d, chorus_node_id coord, const struct vv *ctx,
               const struct dvv_limits *lim, struct crdt_dot *dot,
               unsigned *flags);

/* dvv_put_at, dvv_delete_at: dvv_put and dvv_delete with the write's time:
 * the new sibling gets ts = @ts (the coordinator's hlc_now) and, for a
 * value, expires = @expires (0: never). dvv_put and dvv_delete write
 * ts = expires = 0. Errors: as dvv_put, and CHORUS_EINVAL when @expires is
 * not 0 yet not after @ts (@d unchanged). */
int dvv_put_at(struct dvv *d, chorus_node_id coord, const struct vv *ctx,
               const void *value, size_t len, hlc_time ts, hlc_time expires,
               const struct dvv_limits *lim, struct crdt_dot *dot,
               unsigned *flags);
int dvv_delete_at(struct dvv *d, chorus_node_id coord, const struct vv *ctx,
                  hlc_time ts, const struct dvv_limits *lim,
                  struct crdt_dot *dot, unsigned *flags);

/* dvv_write_after: dvv_put_at (@tombstone false) or dvv_delete_at (true:
 * @len and @expires 0) whose dot's counter is also above @floor: the last
 * counter @coord minted for any key. A node that mints every dot of an
 * incarnation from one counter (Riak's vnode vclocks) never mints the same
 * dot twice for a key, even after the key's object was purged (tombstone
 * collection) while another replica still holds a vv covering the
 * counters minted for it before: minted again, a new write's dot would be
 * covered there and lost in the join. A vv then has gaps in a key's
 * history (counters @coord spent on other keys); it stands for them all,
 * which is harmless: no sibling of this key ever has those dots. */
int dvv_write_after(struct dvv *d, chorus_node_id coord, uint64_t floor,
                    const struct vv *ctx, const void *value, size_t len,
                    bool tombstone, hlc_time ts, hlc_time expires,
                    const struct dvv_limits *lim, struct crdt_dot *dot,
                    unsigned *flags);

/* dvv_discard: drops every sibling whose dot @ctx covers; @d's vv is left
 * alone (discarding is not a write: nothing new supersedes them). */
void dvv_discard(struct dvv *d, const struct vv *ctx);

/* dvv_join: @dst := join(@dst, @src). *@flags (may be NULL) gets DVV_WARN
 * when the result has more than @lim->warn siblings (@lim NULL: defaults).
 * Errors: CHORUS_ENOMEM (@dst unchanged). */
int dvv_join(struct dvv *dst, const struct dvv *src,
             const struct dvv_limits *lim, unsigned *flags);

/* Reading at HLC time @now (the reader's clock; 0 ignores expiry).
 * A sibling is live at @now when it is a value and has not expired:
 * expires == 0 || expires > now. Tombstones and expired values are dead:
 * a reader skips them and answers "not found" when no sibling is live,
 * still with the context, which covers the dead ones too (a write with it
 * supersedes them). Expired values are never rewritten into tombstones in
 * place: replicas would then hold different bytes for one history and
 * fight under anti-entropy; they stay, identical everywhere, until the
 * tombstone collector purges the whole object (dvv_dead_since).
 * dvv_found: whether some sibling is live; dvv_live_count: how many. The
 * live values are borrowed until @d changes. dvv_context: the causal
 * context to hand the client (encode it with vv_encode; it is opaque to
 * clients). */
static inline bool dvv_sibling_live(const struct dvv_sibling *s, hlc_time now) {
  return !s->tombstone && (s->expires == 0 || s->expires > now);
}
bool dvv_found(const struct dvv *d, hlc_time now);
uint32_t dvv_live_count(const struct dvv *d, hlc_time now);
/* dvv_dead_since: for the tombstone collector: 0 when some sibling is live
 * at @now; otherwise the latest time at which one of the siblings died
 * (a tombstone's ts, an expired value's expires), i.e. the object has been
 * entirely dead since then. 0 also when that time is unknown: no siblings,
 * or only tombstones written before siblings carried a ts (ts 0; a sibling
 * with a ts is always younger than one without, so the maximum over the
 * known ones is right when both kinds are present). A collector tells the
 * cases apart with dvv_found and keeps an object whose time is unknown
 * (or dates it itself). The time is HLC: compare it with a clock of the
 * same kind, minus the skew allowed between nodes. */
hlc_time dvv_dead_since(const struct dvv *d, hlc_time now);
static inline const struct vv *dvv_context(const struct dvv *d) {
  return &d->vv;
}
bool dvv_equal(const struct dvv *a, const struct dvv *b);

/* Codec. Layout (CRDT_FORMAT_DVV_V2, what dvv_encode writes):
 *
 *   [2][array(2): vv body,
 *       array(5n): node, counter, ts, expires, bin value | nil, ...]
 *
 * dots strictly ascending and covered by the vv; ts and expires uints
 * (hlc_time), expires 0 on tombstones, expires 0 or > ts on values. The
 * previous layout, CRDT_FORMAT_V1, still decodes (ts = expires = 0):
 *
 *   [1][array(2): vv body, array(3n): node, counter, bin value | nil, ...]
 *
 * Overhead of V2 over V1: a ts of today costs 9 bytes (msgpack uint64; 1
 * when 0), expires 1 byte when 0 and 9 when set: 10 bytes per sibling
 * without a TTL, 18 with one (tests/crdt checks these figures). */
size_t dvv_encoded_size(const struct dvv *d);
int dvv_encode(const struct dvv *d, uint8_t *buf, size_t cap, size_t *written);
int dvv_decode(struct dvv *out, const uint8_t *buf, size_t len, char *errmsg);

/* ========================================================================
 * Hybrid logical clocks
 *
 * Kulkarni, Demirbas, Madappa, Avva, Leone, "Logical Physical Clocks and
 * Consistent Snapshots in Globally Distributed Databases" (OPODIS 2014), §3
 * Fig. 5. A timestamp packs l (milliseconds, 48 bits, good until year 10889)
 * above c (logical counter, 16 bits), so timestamps compare as integers and
 * encode in at most 9 bytes.
 *
 * Bounded drift: hlc_recv refuses a remote time whose l is more than
 * @max_drift ms ahead of our physical clock (CHORUS_ERANGE, clock
 * unchanged), so one node with a runaway clock cannot drag every clock in
 * the cluster into the future (the paper's §3 assumption |l - pt| <= eps).
 *
 * Counter overflow: c caps at 0xffff; the paper bounds c by the number of
 * events within eps, but a burst of 65536 events in one millisecond would
 * overflow, so the clock then advances l by one millisecond and resets c
 * (monotonicity kept; l leads pt by at most the burst).
 * ======================================================================== */

#define HLC_LOGICAL_BITS 16
#define HLC_PHYSICAL_MAX ((UINT64_C(1) << (64 - HLC_LOGICAL_BITS)) - 1)

struct hlc {
  hlc_time last;       /* the last timestamp issued or received */
  chorus_ms max_drift; /* how far ahead of us a remote time may be */
  const struct chorus_tracer *tracer; /* may be NULL */
};

static inline chorus_ms hlc_physical(hlc_time t) {
  return t >> HLC_LOGICAL_BITS;
}
static inline uint32_t hlc_logical(hlc_time t) {
  return (uint32_t)(t & ((1u << HLC_LOGICAL_BITS) - 1));
}
static inline hlc_time hlc_make(chorus_ms l, uint32_t c) {
  return ((hlc_time)l << HLC_LOGICAL_BITS) | (c & 0xffffu);
}

void hlc_init(struct hlc *h, chorus_ms max_drift);
/* hlc_now: a local or send event at physical time @wall (ms); *@out gets a
 * timestamp greater than every one issued or received before.
 * Errors: CHORUS_ERANGE (@wall > HLC_PHYSICAL_MAX; clock unchanged). */
int hlc_now(struct hlc *h, chorus_ms wall, hlc_time *out);
/* hlc_recv: a receive event of remote timestamp @remote at time @wall.
 * *@out (may be NULL) gets the new local time, greater than both.
 * Errors: CHORUS_ERANGE (@remote more than max_drift ahead of @wall, or
 * @wall out of range; clock unchanged, message traced). */
int hlc_recv(struct hlc *h, chorus_ms wall, hlc_time remote, hlc_time *out);

/* Codec. Layout: [version][msgpack uint64]. */
size_t hlc_encoded_size(hlc_time t);
int hlc_encode(hlc_time t, uint8_t *buf, size_t cap, size_t *written);
int hlc_decode(hlc_time *out, const uint8_t *buf, size_t len, char *errmsg);

/* ========================================================================
 * G-counter: one slot per node, each grown only by its node; value = sum,
 * join = pointwise max (Shapiro et al., "A comprehensive study of CRDTs",
 * 2011, §3.1.1). Increments return a delta (the one changed slot) to ship
 * instead of the whole state (Almeida et al. 2018, §4).
 * ======================================================================== */

/* A G-counter is exactly a version vector read as counts: node -> its
 * increments, pointwise-max join, no zero slots. */
struct gcounter {
  struct vv slots;
};

void gcounter_init(struct gcounter *c);
void gcounter_free(struct gcounter *c);
int gcounter_copy(struct gcounter *dst, const struct gcounter *src);
/* gcounter_inc: adds @amount (> 0) to @node's slot. @delta (may be NULL;
 * initialised) becomes the changed slot alone.
 * Errors: CHORUS_EINVAL (@amount 0), CHORUS_ERANGE (slot would overflow),
 * CHORUS_ENOMEM (nothing changed). */
int gcounter_inc(struct gcounter *c, chorus_node_id node, uint64_t amount,
                 struct gcounter *delta);
int gcounter_join(struct gcounter *dst, const struct gcounter *src);
/* gcounter_value: the sum. Errors: CHORUS_ERANGE (exceeds 2^64 - 1). */
int gcounter_value(const struct gcounter *c, uint64_t *out);
bool gcounter_equal(const struct gcounter *a, const struct gcounter *b);

/* Codec. Layout: [version][array(2n): node, value, ...]. */
size_t gcounter_encoded_size(const struct gcounter *c);
int gcounter_encode(const struct gcounter *c, uint8_t *buf, size_t cap,
                    size_t *written);
int gcounter_decode(struct gcounter *out, const uint8_t *buf, size_t len,
                    char *errmsg);

/* ========================================================================
 * PN-counter with op ids: the `counter` type
 *
 * Each node's slot holds its increments @p and decrements @n (a PN-counter
 * is two G-counters, Shapiro et al. §3.1.2). Clients tag an increment with a
 * 128-bit op id (random, or client id and sequence) so that a retry is
 * applied once.
 *
 * OP-ID DEDUP STAYS BOUNDED: each slot remembers the last
 * PNCOUNTER_OP_WINDOW op ids its own node applied, oldest first. Only the
 * owner changes its slot, so slot versions are totally ordered and join takes
 * the newer slot whole, window included (the newer one has larger (p, n)
 * in lexicographic order; ties between hostile states are broken by the
 * window bytes, so join stays a lattice). Before applying an op, a node
 * looks for its id in every slot's window, so a retry that reaches a
 * different coordinator is caught once the first application has
 * replicated there. The price of the bound: a retry that arrives after its
 * coordinator applied PNCOUNTER_OP_WINDOW newer ops, or that races the first
 * attempt to another coordinator before replication, is applied twice.
 * Clients retry within a timeout, so a window of a few ops per node covers
 * the practical case, and state size stays O(nodes), not O(history).
 * ======================================================================== */

#define PNCOUNTER_OP_WINDOW 8

/* An op id; all zeros means "no id" (never de-duplicated). */
struct crdt_op_id {
  uint64_t hi, lo;
};

struct pncounter_slot {
  chorus_node_id node;
  uint64_t p, n;                              /* not both 0 */
  uint32_t nops;                              /* <= PNCOUNTER_OP_WINDOW */
  struct crdt_op_id ops[PNCOUNTER_OP_WINDOW]; /* oldest first */
};

struct pncounter {
  struct pncounter_slot *s; /* sorted by node */
  uint32_t n, cap;
};

void pncounter_init(struct pncounter *c);
void pncounter_free(struct pncounter *c);
int pncounter_copy(struct pncounter *dst, const struct pncounter *src);
/* pncounter_add: applies @amount (non-zero, may be negative) at @node.
 * @op (may be NULL or zero) names the operation: if any slot's window holds
 * it, nothing changes and *@applied (may be NULL) is false. @delta (may be
 * NULL; initialised) becomes the changed slot alone (empty when not applied).
 * Errors: CHORUS_EINVAL (@amount 0), CHORUS_ERANGE (slot would overflow),
 * CHORUS_ENOMEM (nothing changed). */
int pncounter_add(struct pncounter *c, chorus_node_id node, int64_t amount,
                  const struct crdt_op_id *op, struct pncounter *delta,
                  bool *applied);
int pncounter_join(struct pncounter *dst, const struct pncounter *src);
/* pncounter_value: sum(p) - sum(n). Errors: CHORUS_ERANGE (outside int64). */
int pncounter_value(const struct pncounter *c, int64_t *out);
bool pncounter_seen(const struct pncounter *c, const struct crdt_op_id *op);
bool pncounter_equal(const struct pncounter *a, const struct pncounter *b);

/* Codec. Layout: [version][array(n) of array(4): node, p, n,
 * bin(16 * nops: hi, lo big-endian)]. */
size_t pncounter_encoded_size(const struct pncounter *c);
int pncounter_encode(const struct pncounter *c, uint8_t *buf, size_t cap,
                     size_t *written);
int pncounter_decode(struct pncounter *out, const uint8_t *buf, size_t len,
                     char *errmsg);

/* ========================================================================
 * LWW register: the `lww` type
 *
 * Holds the write with the greatest (hlc timestamp, node id). The node id
 * breaks ties between nodes that issued the same HLC time; equal
 * (ts, node) pairs, which honest nodes never produce, are ordered by
 * presence and then value bytes so join is still a lattice on any input.
 * A delete is a write of "no value" that wins or loses like any other.
 * ======================================================================== */

struct lww {
  hlc_time ts;
  chorus_node_id node;
  bool present;   /* false: never written, or deleted */
  uint8_t *value; /* owned; NULL when empty or absent */
  uint32_t len;
};

void lww_init(struct lww *r);
void lww_free(struct lww *r);
int lww_copy(struct lww *dst, const struct lww *src);
/* lww_set: writes @value (copied) stamped (@ts, @node) if that beats the
 * current write; *@applied (may be NULL) says whether it did.
 * @value NULL with @len 0 and @present false is a delete (lww_delete).
 * Errors: CHORUS_ETOOBIG (@len > DVV_VALUE_MAX), CHORUS_ENOMEM. */
int lww_set(struct lww *r, hlc_time ts, chorus_node_id node, const void *value,
            size_t len, bool *applied);
int lww_delete(struct lww *r, hlc_time ts, chorus_node_id node, bool *applied);
int lww_join(struct lww *dst, const struct lww *src);
bool lww_equal(const struct lww *a, const struct lww *b);

/* Codec. Layout: [version][array(3): ts, node, bin value | nil]. */
size_t lww_encoded_size(const struct lww *r);
int lww_encode(const struct lww *r, uint8_t *buf, size_t cap, size_t *written);
int lww_decode(struct lww *out, const uint8_t *buf, size_t len, char *errmsg);

/* ========================================================================
 * Add-wins OR-set without tombstones: the `set` type
 *
 * ORSWOT (Bieniusa, Zawirski, Preguiça, Shapiro, Baquero, Balegas, Duarte,
 * "An optimized conflict-free replicated set", 2012; riak_dt_orswot): each
 * element carries the dots of the adds that put it there, and the set
 * carries a causal context of every dot it has seen. add(e) at node r mints
 * a dot and replaces e's dots with it; remove(e) just drops e and its dots,
 * leaving no tombstone: the context remembers the dots were seen. join keeps
 * an element's dot when both sides have it, or when one side has it and the
 * other side's context has not seen it. A remove concurrent with an add does
 * not see the add's new dot, so the element survives: add wins.
 *
 * Deltas (Almeida et al. 2018, §7.2 "add-wins set"): add and remove produce a
 * small orset whose context is only the dots involved; joining it anywhere
 * has the effect of the operation. Deltas may arrive out of order, hence the
 * dot cloud in struct crdt_ctx.
 *
 * Deferred removes (riak_dt_orswot's "deferred"): a client's observed
 * remove names the context of its read, which may come from another
 * replica than the one applying the remove. Dots of the element that the
 * read saw and this replica has not are unknown here: dropping only what
 * it holds would let them arrive later and bring the element back after
 * the client was told it was removed. So the remove also keeps (element,
 * read's context) while this replica's context does not cover the read's;
 * every join drops the element's dots that a kept remove covers, and
 * forgets the remove once the joined context covers its context (from
 * then on the join rule drops those dots by itself: this replica has seen
 * them and holds none). Removes of one element merge by joining their
 * contexts (a dot is covered by the join iff by one of them).
 * ======================================================================== */

struct orset_elem {
  uint8_t *data; /* owned; may be NULL when len is 0 */
  uint32_t len;
  uint32_t ndots;        /* >= 1 */
  struct crdt_dot *dots; /* owned, sorted */
};

/* A remove waiting for adds this replica has not seen (above). */
struct orset_deferred {
  uint8_t *data; /* owned; may be NULL when len is 0 */
  uint32_t len;
  struct crdt_ctx seen; /* not covered by the set's context */
};

struct orset {
  struct crdt_ctx ctx;
  struct orset_elem *e; /* sorted by bytes (memcmp, then shorter first) */
  uint32_t n, cap;
  struct orset_deferred *def; /* sorted by bytes, one per element */
  uint32_t ndef;
};

#define ORSET_ELEM_MAX (64u * 1024u)
/* Removes a replica keeps waiting at most; a remove past it is refused
 * (CHORUS_EBUSY). Joins may hold more (the union of two replicas'). */
#define ORSET_DEFERRED_MAX 64u

void orset_init(struct orset *s);
void orset_free(struct orset *s);
int orset_copy(struct orset *dst, const struct orset *src);
/* orset_add: adds @elem (@len bytes, copied) at @node. @delta (may be NULL;
 * initialised) becomes the delta. Errors: CHORUS_ETOOBIG
 * (@len > ORSET_ELEM_MAX), CHORUS_ERANGE (@node's counter is at
 * CRDT_EVENT_MAX), CHORUS_ENOMEM (nothing changed). */
int orset_add(struct orset *s, chorus_node_id node, const void *elem,
              size_t len, struct orset *delta);
/* orset_remove: removes @elem if present; *@removed (may be NULL) says so.
 * Removing an absent element is a no-op with an empty delta.
 * Errors: CHORUS_ENOMEM (nothing changed). */
int orset_remove(struct orset *s, const void *elem, size_t len,
                 struct orset *delta, bool *removed);
/* orset_remove_seen: the observed-remove of a client that read the set
 * with causal context @seen: drops only the dots of @elem that @seen
 * covers, the adds that reader saw. An add @seen does not cover happened
 * concurrently with (or after) that read, and survives: add wins. The
 * element goes when no dot is left; *@removed (may be NULL) says so.
 * @s's context is unchanged, so a join with a replica that still has the
 * dropped dots drops them there too; when it does not cover @seen the
 * remove is also kept as deferred (above). @delta (may be NULL) as in
 * orset_remove: the dropped dots as context, no element, and the deferred
 * remove. Errors: CHORUS_EBUSY (ORSET_DEFERRED_MAX removes wait already),
 * CHORUS_ENOMEM (nothing changed). */
int orset_remove_seen(struct orset *s, const void *elem, size_t len,
                      const struct crdt_ctx *seen, struct orset *delta,
                      bool *removed);
int orset_join(struct orset *dst, const struct orset *src);
bool orset_contains(const struct orset *s, const void *elem, size_t len);
static inline uint32_t orset_size(const struct orset *s) {
  return s->n;
}
bool orset_equal(const struct orset *a, const struct orset *b);

/* Codec. Layout: [version][array(3): vv body, array(2k) cloud dots
 * (node, counter, ...), array(2n): bin element, array(2d) dots, ...];
 * elements strictly ascending, each with >= 1 dot covered by the context.
 * With deferred removes, array(4) and a fourth field array(3m): bin
 * element, vv body, array(2k) cloud dots, ...: elements strictly
 * ascending, each context not covered by the set's, no element's dot
 * covered by its element's remove. */
size_t orset_encoded_size(const struct orset *s);
int orset_encode(const struct orset *s, uint8_t *buf, size_t cap,
                 size_t *written);
int orset_decode(struct orset *out, const uint8_t *buf, size_t len,
                 char *errmsg);

/* ========================================================================
 * Map: the `map` type (Riak-style, riak_dt_map)
 *
 * HOW IT WORKS (Almeida, Shoker, Baquero, "Delta State Replicated Data
 * Types", 2018, §6 "causal CRDTs" and §7.4 "map embedding"; riak_dt_map and
 * its embedded counter riak_dt_emcntr)
 *
 * A map holds fields keyed by (name, type); the types are registers,
 * counters, add-wins sets, enable-wins flags and nested maps. The whole map
 * shares ONE causal context (struct crdt_ctx), and every update of any
 * field, at any depth, mints one dot from it at the coordinator. Each field
 * keeps only the dots of the updates that made its current state:
 *
 *   register  entries (dot, HLC time, value): a set replaces the field's
 *             entries with one; concurrent sets leave several, and a read
 *             shows the one with the greatest (HLC time, dot node) (LWW)
 *   counter   entries (dot, p, n), one per node in every state the
 *             operations build: node r's add replaces r's entry with a new
 *             dot and r's totals plus the amount (riak_dt_emcntr)
 *   set       elements, each with the dots of its adds (ORSWOT, as orset)
 *   flag      entries (dot, on): enable replaces the field's entries with
 *             (dot, on); disable replaces the entries the remover saw with
 *             (dot, off). The flag reads on when any entry is on, so an
 *             enable concurrent with a disable wins (enable-wins)
 *   map       nested fields, recursively
 *
 * join keeps, at every place in the tree, the dots both sides hold and the
 * dots one side holds that the other side's context has not seen (the
 * other side never saw them, so it cannot have removed them); a field, set
 * element or nested map left without dots is gone. That is the ORSWOT join
 * applied at every level, so it is a join of a lattice on every state whose
 * dots its context covers (which decoders check).
 *
 * OBSERVED REMOVE. Removing a field drops the dots of the field's whole
 * subtree that the remover's context covers (the client's read; without
 * one, the coordinator's copy), leaving no tombstone: the context still
 * covers them, so a join with a replica that has them drops them there. An
 * update concurrent with the remove mints a dot the remover never saw, and
 * survives: update wins. A removed field's state is reset: what survives is
 * the concurrent updates alone, not the removed state under them, with one
 * exception inherited from riak_dt_emcntr: a node's counter entry carries
 * that node's running totals, so a concurrent add by a node brings back
 * that node's earlier increments too (the other nodes' are gone).
 *
 * A field is present while it holds at least one dot: a set whose last
 * element was removed reads as absent, like a removed field. A disabled
 * flag is present (off).
 *
 * LIMITS (refused with CHORUS_EINVAL / CHORUS_EMALFORMED, reason in
 * errmsg): a field name is 1..CRDT_MAP_NAME_MAX bytes; a map level holds at
 * most CRDT_MAP_FIELDS_MAX fields; maps nest CRDT_MAP_DEPTH_MAX levels deep
 * (the top map's fields are level 1, so a map-typed field exists at levels
 * 1..CRDT_MAP_DEPTH_MAX-1); register values are at most DVV_VALUE_MAX
 * bytes, set elements ORSET_ELEM_MAX. Counters in maps have no op-id
 * de-duplication (unlike the `counter` type): a retried add counts twice.
 * ======================================================================== */

#define CRDT_MAP_DEPTH_MAX 4
#define CRDT_MAP_FIELDS_MAX 1024
#define CRDT_MAP_NAME_MAX 255

enum crdt_map_ftype {
  CRDT_MAP_REGISTER = 1,
  CRDT_MAP_COUNTER = 2,
  CRDT_MAP_SET = 3,
  CRDT_MAP_FLAG = 4,
  CRDT_MAP_MAP = 5,
};

/* One update's state in a register, counter or flag field. */
struct crdt_map_entry {
  struct crdt_dot dot;
  uint64_t a;     /* register: HLC time; counter: p (increments); flag: 1 on */
  uint64_t b;     /* counter: n (decrements); otherwise 0 */
  uint8_t *value; /* register: owned, NULL iff len 0; otherwise NULL */
  uint32_t len;
};

struct crdt_map_field {
  uint8_t *name; /* owned, 1..CRDT_MAP_NAME_MAX bytes */
  uint32_t namelen;
  enum crdt_map_ftype type;
  uint32_t n, cap;            /* items in whichever array the type uses */
  struct crdt_map_entry *ent; /* register, counter, flag: dots ascending */
  struct orset_elem *elem;    /* set: elements ascending (as orset) */
  struct crdt_map_field *sub; /* map: fields ascending by (name, type) */
};

struct crdt_map {
  struct crdt_ctx ctx;
  /* The top level, a field of type CRDT_MAP_MAP without a name. */
  struct crdt_map_field root;
};

/* A step of a path: a field's name (borrowed) and type. */
struct crdt_map_key {
  const uint8_t *name;
  uint32_t len;
  enum crdt_map_ftype type;
};

enum crdt_map_op_kind {
  CRDT_MAP_OP_REGISTER_SET = 1, /* data: the value */
  CRDT_MAP_OP_COUNTER_ADD = 2,  /* amount: non-zero */
  CRDT_MAP_OP_SET_ADD = 3,      /* data: the element */
  CRDT_MAP_OP_SET_REMOVE = 4,   /* data: the element */
  CRDT_MAP_OP_FLAG_ENABLE = 5,
  CRDT_MAP_OP_FLAG_DISABLE = 6,
  CRDT_MAP_OP_REMOVE = 7, /* the field at the path, any type */
};

/* One operation: on the field path[depth - 1], inside the nested maps
 * path[0 .. depth - 2] (each of type CRDT_MAP_MAP). The field's type must
 * suit the kind (REMOVE takes any). Everything is borrowed. */
struct crdt_map_op {
  enum crdt_map_op_kind kind;
  uint32_t depth; /* 1..CRDT_MAP_DEPTH_MAX */
  struct crdt_map_key path[CRDT_MAP_DEPTH_MAX];
  const uint8_t *data;
  uint32_t len;
  int64_t amount;
};

void crdt_map_init(struct crdt_map *m);
void crdt_map_free(struct crdt_map *m);
int crdt_map_copy(struct crdt_map *dst, const struct crdt_map *src);

/* crdt_map_update: applies @ops in order at coordinator @coord, each
 * minting one dot; register sets are stamped @ts (the coordinator's HLC
 * time). @seen (may be NULL) is the causal context of the client's read:
 * removes (REMOVE, SET_REMOVE) and disables drop only the dots it covers;
 * NULL means this copy's context (everything the coordinator holds). Nested
 * maps on a path are created as needed; removing what is absent is a no-op.
 * All or nothing: on error @m is unchanged.
 * Errors: CHORUS_EINVAL (an op breaks a limit or its path's types, or
 * amount 0; reason in @errmsg, may be NULL), CHORUS_ETOOBIG (a level would
 * exceed CRDT_MAP_FIELDS_MAX fields), CHORUS_ERANGE (a counter would
 * overflow, or @coord's counter is at CRDT_EVENT_MAX), CHORUS_ENOMEM. */
int crdt_map_update(struct crdt_map *m, chorus_node_id coord, hlc_time ts,
                    const struct crdt_ctx *seen, const struct crdt_map_op *ops,
                    uint32_t nops, char *errmsg);
int crdt_map_join(struct crdt_map *dst, const struct crdt_map *src);
bool crdt_map_equal(const struct crdt_map *a, const struct crdt_map *b);

/* Reading. crdt_map_find: the field (name, type) of the map field @parent
 * (&m->root for the top level), NULL when absent; borrowed until @m
 * changes. */
const struct crdt_map_field *crdt_map_find(const struct crdt_map_field *parent,
                                           const uint8_t *name, uint32_t len,
                                           enum crdt_map_ftype type);
/* The value of a register field: the entry with the greatest (HLC time,
 * node, counter) (concurrent sets), never NULL for a present field. */
const struct crdt_map_entry *crdt_map_register(const struct crdt_map_field *f);
/* A counter field's value. Errors: CHORUS_ERANGE (outside int64). */
int crdt_map_counter(const struct crdt_map_field *f, int64_t *out);
/* A flag field's value: on when any entry is on (enable wins). */
bool crdt_map_flag(const struct crdt_map_field *f);
const char *crdt_map_ftype_name(enum crdt_map_ftype t);

/* Operations on the wire (MAP_UPDATE). Layout: [version][array(n) of
 * array(5): uint kind, array(2d) path (bin name, uint type, ...), bin data,
 * uint magnitude of amount, uint 1 if amount is negative else 0];
 * 1..CRDT_MAP_OPS_MAX operations. crdt_map_ops_decode checks the shape
 * (kinds, types, path lengths, name and data sizes, the amount's range);
 * crdt_map_update checks the rest. *@out (chorus_free it) borrows names and
 * data from @buf. Errors: CHORUS_EMALFORMED, CHORUS_EVERSION,
 * CHORUS_ENOMEM. */
#define CRDT_MAP_OPS_MAX 256
size_t crdt_map_ops_encoded_size(const struct crdt_map_op *ops, uint32_t n);
int crdt_map_ops_encode(const struct crdt_map_op *ops, uint32_t n, uint8_t *buf,
                        size_t cap, size_t *written);
int crdt_map_ops_decode(struct crdt_map_op **out, uint32_t *n,
                        const uint8_t *buf, size_t len, char *errmsg);

/* Codec. Layout: [version][array(2): context (array(2): vv body, cloud
 * dots), fields], where fields is array(n) of array(3): bin name, uint type,
 * payload; payload is, by type,
 *   register  array(k) of array(4): dot node, dot counter, ts, bin value
 *   counter   array(k) of array(4): dot node, dot counter, p, n
 *   flag      array(k) of array(3): dot node, dot counter, uint 0|1
 *   set       array(2m): bin element, array(2d) dots, ... (as orset)
 *   map       fields (nested, at most CRDT_MAP_DEPTH_MAX levels)
 * Fields strictly ascending by (name, type), entries by dot, every dot
 * covered by the context, no field without a dot, no counter entry with
 * p = n = 0. */
size_t crdt_map_encoded_size(const struct crdt_map *m);
int crdt_map_encode(const struct crdt_map *m, uint8_t *buf, size_t cap,
                    size_t *written);
int crdt_map_decode(struct crdt_map *out, const uint8_t *buf, size_t len,
                    char *errmsg);

/* ========================================================================
 * The object envelope
 *
 * What storage keeps under one key and replication ships: a type tag and
 * the type's own encoding. The type is fixed at first write (DESIGN.md §4).
 *
 *   offset  size  field
 *   0       1     envelope version (CRDT_FORMAT_V1)
 *   1       1     type (enum crdt_type)
 *   2       n     the type's own encoding, version byte first
 * ======================================================================== */

enum crdt_type {
  CRDT_NONE = 0, /* for crdt_obj_decode: accept any type */
  CRDT_KV = 1,
  CRDT_COUNTER = 2,
  CRDT_SET = 3,
  CRDT_LWW = 4,
  CRDT_MAP = 5,
  /* A compare-and-set key's Paxos acceptor state (replication/paxos.h):
   * opaque here, its bytes its owner's format (version byte first). crdt/
   * cannot join it (it must not depend on replication/): crdt_obj_join
   * answers CHORUS_ENOTSUP for two different states, and replication joins
   * them with paxos_acceptor_join (repl__obj_join). */
  CRDT_PAXOS = 6,
};

/* CRDT_PAXOS: owned bytes, at least one (the owner's format byte). */
struct crdt_opaque {
  uint8_t *bytes;
  size_t len;
};

struct crdt_obj {
  enum crdt_type type;
  union {
    struct dvv kv;
    struct pncounter counter;
    struct orset set;
    struct lww lww;
    struct crdt_map map;
    struct crdt_opaque opaque;
  } u;
};

const char *crdt_type_name(enum crdt_type t);
/* crdt_obj_init: an empty object of @type (not CRDT_NONE). */
void crdt_obj_init(struct crdt_obj *o, enum crdt_type type);
void crdt_obj_free(struct crdt_obj *o);
/* crdt_obj_set_opaque: @o (CRDT_PAXOS) takes a copy of @bytes (@len >= 1;
 * its previous bytes freed). Errors: CHORUS_EINVAL, CHORUS_ENOMEM (@o
 * unchanged). */
int crdt_obj_set_opaque(struct crdt_obj *o, const uint8_t *bytes, size_t len);
/* crdt_obj_join: Errors: CHORUS_ETYPE (types differ), CHORUS_ENOMEM,
 * CHORUS_ENOTSUP (two different CRDT_PAXOS states: the owner joins).
 * kv joins use the default dvv_limits; DVV_WARN goes to *@flags. */
int crdt_obj_join(struct crdt_obj *dst, const struct crdt_obj *src,
                  unsigned *flags);
bool crdt_obj_equal(const struct crdt_obj *a, const struct crdt_obj *b);

size_t crdt_obj_encoded_size(const struct crdt_obj *o);
int crdt_obj_encode(const struct crdt_obj *o, uint8_t *buf, size_t cap,
                    size_t *written);
/* crdt_obj_decode: @expect CRDT_NONE accepts any type; another value makes a
 * well-formed object of a different type CHORUS_ETYPE (nothing to free). */
int crdt_obj_decode(struct crdt_obj *out, enum crdt_type expect,
                    const uint8_t *buf, size_t len, char *errmsg);

#endif /* CHORUS_CRDT_H */
