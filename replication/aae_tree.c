/* aae_tree.c: the TicTac hash tree of a node's data (aae_tree.h). */
#include <string.h>
#include <xxhash.h>

#include "aae_tree.h"
#include "chorus_alloc.h"
#include "chorus_error.h"
#include "store.h"

int aae_tree_init(struct aae_tree *t, unsigned bits) {
  memset(t, 0, sizeof *t);
  if (bits < AAE_TREE_BITS_MIN || bits > AAE_TREE_BITS_MAX)
    return CHORUS_EINVAL;
  t->bits = bits;
  t->branch_bits = bits / 2;
  t->leaf = chorus_calloc((size_t)1 << bits, sizeof *t->leaf);
  t->branch = chorus_calloc((size_t)1 << t->branch_bits, sizeof *t->branch);
  if (t->leaf == NULL || t->branch == NULL) {
    aae_tree_free(t);
    return CHORUS_ENOMEM;
  }
  return CHORUS_OK;
}

void aae_tree_free(struct aae_tree *t) {
  chorus_free(t->leaf);
  chorus_free(t->branch);
  chorus_free(t->cursor);
  memset(t, 0, sizeof *t);
}

size_t aae_tree_bytes(const struct aae_tree *t) {
  return sizeof(uint64_t) *
         (((size_t)1 << t->bits) + ((size_t)1 << t->branch_bits));
}

uint64_t aae_digest(const void *obj, size_t len) {
  if (len == 0)
    return 0;
  uint64_t d = XXH3_64bits(obj, len);
  return d != 0 ? d : 1;
}

uint64_t aae_key_hash(const void *dkey, size_t dlen, uint64_t digest) {
  return digest == 0 ? 0 : XXH3_64bits_withSeed(dkey, dlen, digest);
}

static void apply(struct aae_tree *t, const unsigned char *dkey, size_t dlen,
                  uint64_t delta) {
  uint32_t seg = aae_tree_segment(t, store_be64_get(dkey));
  t->leaf[seg] ^= delta;
  t->branch[seg >> (t->bits - t->branch_bits)] ^= delta;
  (void)dlen;
}

/* Whether the rebuild scan has reached @dkey (it is at or before the
 * cursor). */
static bool scanned(const struct aae_tree *t, const void *dkey, size_t dlen) {
  if (t->clen == 0)
    return false;
  size_t n = dlen < t->clen ? dlen : t->clen;
  int c = memcmp(dkey, t->cursor, n);
  return c < 0 || (c == 0 && dlen <= t->clen);
}

void aae_tree_update(struct aae_tree *t, const void *dkey, size_t dlen,
                     uint64_t old, uint64_t new) {
  if (dlen < STORE_TOKEN_PREFIX || old == new || t->state == AAE_TREE_STALE ||
      (t->state == AAE_TREE_BUILDING && !scanned(t, dkey, dlen)))
    return;
  apply(t, dkey, dlen,
        aae_key_hash(dkey, dlen, old) ^ aae_key_hash(dkey, dlen, new));
  t->keys += (old == 0) - (new == 0);
}

void aae_tree_rebuild_begin(struct aae_tree *t) {
  memset(t->leaf, 0, sizeof *t->leaf << t->bits);
  memset(t->branch, 0, sizeof *t->branch << t->branch_bits);
  t->keys = 0;
  t->clen = 0;
  t->state = AAE_TREE_BUILDING;
}

int aae_tree_rebuild_add(struct aae_tree *t, const void *dkey, size_t dlen,
                         uint64_t digest) {
  if (t->state != AAE_TREE_BUILDING || dlen < STORE_TOKEN_PREFIX)
    return CHORUS_OK;
  if (dlen > t->ccap) {
    unsigned char *c = chorus_realloc(t->cursor, dlen);
    if (c == NULL) {
      aae_tree_mark_stale(t);
      return CHORUS_ENOMEM;
    }
    t->cursor = c;
    t->ccap = dlen;
  }
  memcpy(t->cursor, dkey, dlen);
  t->clen = dlen;
  if (digest != 0) {
    apply(t, dkey, dlen, aae_key_hash(dkey, dlen, digest));
    t->keys++;
  }
  return CHORUS_OK;
}

void aae_tree_rebuild_end(struct aae_tree *t) {
  if (t->state == AAE_TREE_BUILDING)
    t->state = AAE_TREE_BUILT;
  t->clen = 0;
}

void aae_tree_mark_stale(struct aae_tree *t) {
  t->state = AAE_TREE_STALE;
  t->clen = 0;
}
