/* crdt_int.h: helpers shared by the files of crdt/ (not for other modules). */
#ifndef CHORUS_CRDT_INT_H
#define CHORUS_CRDT_INT_H

#include <string.h>

#include "crdt.h"

/* Dots order by node, then counter. */
static inline int crdt__dot_cmp(struct crdt_dot a, struct crdt_dot b) {
  if (a.node != b.node)
    return a.node < b.node ? -1 : 1;
  if (a.counter != b.counter)
    return a.counter < b.counter ? -1 : 1;
  return 0;
}

/* Byte strings order by memcmp over the common prefix, then shorter first. */
static inline int crdt__bytes_cmp(const uint8_t *a, uint32_t alen,
                                  const uint8_t *b, uint32_t blen) {
  uint32_t m = alen < blen ? alen : blen;
  int c = m ? memcmp(a, b, m) : 0;
  if (c != 0)
    return c;
  return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

/* crdt__bsearch: binary search of @n items of @size bytes at @base,
 * ascending by @cmp(item, @key): the index of the match, or where @key
 * would go (*@found false). */
static inline uint32_t
crdt__bsearch(const void *base, uint32_t n, size_t size, const void *key,
              int (*cmp)(const void *item, const void *key), bool *found) {
  uint32_t lo = 0, hi = n;
  *found = false;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int r = cmp((const uint8_t *)base + (size_t)mid * size, key);
    if (r == 0) {
      *found = true;
      return mid;
    }
    if (r < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Representation invariants, for assert() after a change and before an
 * encode (O(n), compiled out with NDEBUG). Every state the operations build
 * satisfies them, and so does every state a decoder accepts: the decoders
 * check each one on the input bytes and refuse with CHORUS_EMALFORMED. A
 * failed assertion is therefore a bug in crdt/, never bad input.
 *
 *   vv        n <= cap; nodes strictly ascending; counters > 0
 *   ctx       a valid vv; cloud strictly ascending by (node, counter), each
 *             dot beyond vv[node] + 1 (compacted)
 *   dvv       a valid vv; siblings strictly ascending by dot, each covered
 *             by the vv; a value pointer iff len > 0; tombstones empty
 *   pncounter slots strictly ascending by node, none empty, windows within
 *             PNCOUNTER_OP_WINDOW
 *   lww       a value pointer iff len > 0; no bytes when absent
 *   orset     a valid ctx; elements strictly ascending, at most
 *             ORSET_ELEM_MAX bytes, a data pointer iff len > 0, each with
 *             >= 1 dot, dots strictly ascending and covered by the ctx
 *   map       a valid ctx; at every level fields strictly ascending by
 *             (name, type), named 1..CRDT_MAP_NAME_MAX bytes, at most
 *             CRDT_MAP_FIELDS_MAX, none without dots, maps at levels below
 *             CRDT_MAP_DEPTH_MAX; entries and set elements as in the
 *             header's codec paragraph, every dot covered by the ctx;
 *             kept removes strictly ascending (path, kind, element), each
 *             op-shaped, its context not covered by the map's and covering
 *             no dot it would drop; the same for an orset's */
bool crdt__vv_valid(const struct vv *v);
bool crdt__ctx_valid(const struct crdt_ctx *c);
bool crdt__dvv_valid(const struct dvv *d);
bool crdt__pncounter_valid(const struct pncounter *c);
bool crdt__lww_valid(const struct lww *r);
bool crdt__orset_valid(const struct orset *s);
bool crdt__map_valid(const struct crdt_map *m);

/* crdt__grow: makes room for @need items of @size bytes in *@arr (capacity
 * *@cap), doubling. CHORUS_ENOMEM leaves everything unchanged. */
int crdt__grow(void **arr, uint32_t *cap, uint32_t need, size_t size);

/* crdt__vv_reserve: capacity for @need entries. */
int crdt__vv_reserve(struct vv *v, uint32_t need);

/* crdt__ctx_compact: moves cloud dots contiguous with the vv into it and
 * drops covered ones. Never allocates (may only grow the vv in place when it
 * has room; reserves happen in callers), so returns an error only when the
 * vv needs a new entry and has no capacity. */
int crdt__ctx_compact(struct crdt_ctx *c);

/* crdt__orset_elem_free: releases one element's memory. */
void crdt__orset_elem_free(struct orset_elem *e);

/* crdt__elems_find: binary search of @n elements (ascending, as a set's
 * and a map set field's): the index of @data, or where it would go
 * (*@found false). */
uint32_t crdt__elems_find(const struct orset_elem *e, uint32_t n,
                          const void *data, uint32_t len, bool *found);

/* Kept removes (crdt.h, deferred removes), shared by sets and maps (a
 * map's kept remove embeds a set's). crdt__orset_def_free: releases one;
 * crdt__orset_def_dup: a deep copy of @in into uninitialised @out, @seen
 * joined in when non-NULL (CHORUS_ENOMEM leaves @out empty). */
void crdt__orset_def_free(struct orset_deferred *d);
int crdt__orset_def_dup(struct orset_deferred *out,
                        const struct orset_deferred *in,
                        const struct crdt_ctx *seen);

/* crdt__map_def_invalid: why the map's kept remove @i breaks the
 * invariants (order after @i - 1, shape, settled, covering a dot it would
 * drop), NULL when it does not; shared by crdt__map_valid and the
 * decoder. */
const char *crdt__map_def_invalid(const struct crdt_map *m, uint32_t i);

#endif /* CHORUS_CRDT_INT_H */
