/* chorus_search.h: the one binary search over arrays kept sorted by node id
 * (version vectors, counter slots, SWIM's member table, replication's peer
 * and hint-target tables), and its twin for arrays sorted by name (the
 * metadata's keyspaces and users). */
#ifndef CHORUS_SEARCH_H
#define CHORUS_SEARCH_H

#include <stddef.h>
#include <string.h>

#include "chorus_types.h"

/* chorus_id_lower_bound: the index of the first of @n elements of @stride
 * bytes at @base whose chorus_node_id at byte @id_offset is >= @id (@n when
 * none is). The elements must be sorted by that id, ascending. Inline, so
 * with a constant stride and offset it compiles to the hand-written loop:
 *
 *   size_t i = chorus_id_lower_bound(v->e, v->n, sizeof v->e[0],
 *                                    offsetof(struct vv_entry, node), node);
 *   bool found = i < v->n && v->e[i].node == node;
 */
static inline size_t chorus_id_lower_bound(const void *base, size_t n,
                                           size_t stride, size_t id_offset,
                                           chorus_node_id id) {
  const unsigned char *b = base;
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    chorus_node_id at;
    memcpy(&at, b + mid * stride + id_offset, sizeof at);
    if (at < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* chorus_name_lower_bound: likewise for elements sorted by the
 * NUL-terminated name (strcmp order) that starts at byte @name_offset. */
static inline size_t chorus_name_lower_bound(const void *base, size_t n,
                                             size_t stride, size_t name_offset,
                                             const char *name) {
  const unsigned char *b = base;
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp((const char *)(b + mid * stride + name_offset), name) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

#endif /* CHORUS_SEARCH_H */
