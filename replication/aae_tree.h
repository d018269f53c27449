/* aae_tree.h: the anti-entropy hash tree of one node's STORE_DATA, a
 * TicTac tree (Riak's kv_index_tictactree): fixed memory, maintained by
 * XOR on every write, rebuilt by a paced scan when it cannot be trusted.
 *
 * HOW IT WORKS
 *
 * The token space is cut into 2^bits segments by the top @bits bits of a
 * key's token; STORE_DATA keys are [token BE][user key], so a segment is
 * one contiguous store range. A segment's hash (a leaf) is the XOR over
 * the keys in it of h(storage key, digest), digest being a 64-bit hash of
 * the stored object's bytes. XOR is its own inverse and order-free, so a
 * write that takes a key's object from digest D0 to D1 updates its leaf
 * with  leaf ^= h(k, D0) ^ h(k, D1)  (an absent object contributes no
 * term), and two replicas holding the same objects hold the same leaves
 * whatever the order they received them in. Above the leaves sit
 * 2^(bits/2) branches, each the XOR of its 2^(bits - bits/2) leaves,
 * maintained by the same delta. Memory: 8 * (2^bits + 2^(bits/2)) bytes
 * whatever the number of keys: 526,336 bytes at the default bits = 16,
 * the same for a thousand or a billion keys.
 *
 * A rebuild (at start, and after a write the tree could not follow)
 * starts from zero and adds the keys in storage-key order, a step at a
 * time, while writes go on: a write to a key at or before the scan's
 * cursor updates the tree (the scan already counted the old object), a
 * write past it is left to the scan (which reads the new object). The
 * tree is exact once the scan ends. Pure: no store, no clock. */
#ifndef CHORUS_AAE_TREE_H
#define CHORUS_AAE_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus_types.h"

#define AAE_TREE_BITS_DEFAULT 16u
#define AAE_TREE_BITS_MIN 4u
#define AAE_TREE_BITS_MAX 24u

enum aae_tree_state {
  AAE_TREE_STALE = 0, /* not maintained: a rebuild must start */
  AAE_TREE_BUILDING,  /* a rebuild scan is under way */
  AAE_TREE_BUILT,     /* exact */
};

struct aae_tree {
  unsigned bits, branch_bits;
  uint64_t *leaf;   /* 2^bits; owned */
  uint64_t *branch; /* 2^branch_bits; owned */
  uint64_t keys;    /* objects counted (exact when BUILT) */
  enum aae_tree_state state;
  unsigned char *cursor; /* BUILDING: keys <= it are in; owned */
  size_t clen;           /* 0: the scan has added nothing yet */
  size_t ccap;
};

/* aae_tree_init: an empty STALE tree of 2^@bits segments (@bits in
 * [AAE_TREE_BITS_MIN, AAE_TREE_BITS_MAX]). Errors: CHORUS_EINVAL (@bits),
 * CHORUS_ENOMEM. */
int aae_tree_init(struct aae_tree *t, unsigned bits);
void aae_tree_free(struct aae_tree *t);
/* aae_tree_bytes: the memory the tree holds, its cursor aside. */
size_t aae_tree_bytes(const struct aae_tree *t);

/* aae_digest: the digest of a stored object's @len bytes; 0 only for
 * absent (@len 0), so 0 can stand for "no object". */
uint64_t aae_digest(const void *obj, size_t len);
/* aae_key_hash: h(storage key, @digest), the term a key adds to its leaf
 * (0 when @digest is 0). */
uint64_t aae_key_hash(const void *dkey, size_t dlen, uint64_t digest);

/* aae_tree_segment: the segment of @token. aae_tree_segment_first and
 * _last: the first and last token of segment @seg. */
static inline uint32_t aae_tree_segment(const struct aae_tree *t,
                                        chorus_token token) {
  return (uint32_t)(token >> (64 - t->bits));
}
static inline chorus_token aae_tree_segment_first(unsigned bits, uint32_t seg) {
  return (chorus_token)seg << (64 - bits);
}
static inline chorus_token aae_tree_segment_last(unsigned bits, uint32_t seg) {
  return aae_tree_segment_first(bits, seg) | (UINT64_MAX >> bits);
}

/* aae_tree_update: the object of storage key @dkey (@dlen >= 8 bytes:
 * [token BE][user key]) went from digest @old to @new (0: absent). A STALE
 * tree, or a BUILDING one whose scan has not reached @dkey, ignores it. */
void aae_tree_update(struct aae_tree *t, const void *dkey, size_t dlen,
                     uint64_t old, uint64_t new);

/* The rebuild: begin zeroes the tree (BUILDING, nothing scanned); add
 * counts the object of @dkey, which must sort after every key added
 * before (its cursor); end makes the tree BUILT. mark_stale abandons the
 * tree until the next begin. Errors of add: CHORUS_ENOMEM (the tree is
 * then STALE). */
void aae_tree_rebuild_begin(struct aae_tree *t);
int aae_tree_rebuild_add(struct aae_tree *t, const void *dkey, size_t dlen,
                         uint64_t digest);
void aae_tree_rebuild_end(struct aae_tree *t);
void aae_tree_mark_stale(struct aae_tree *t);

static inline bool aae_tree_built(const struct aae_tree *t) {
  return t->state == AAE_TREE_BUILT;
}
/* aae_tree_leaf, aae_tree_branch: a segment's and a branch's hash. A
 * branch covers segments [b << (bits - branch_bits), (b + 1) << ...). */
static inline uint64_t aae_tree_leaf(const struct aae_tree *t, uint32_t seg) {
  return t->leaf[seg];
}
static inline uint64_t aae_tree_branch(const struct aae_tree *t, uint32_t b) {
  return t->branch[b];
}

#endif /* CHORUS_AAE_TREE_H */
