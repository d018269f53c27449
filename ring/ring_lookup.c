/* ring_lookup.c: preference lists: the clockwise walk with per-datacenter
 * factors, distinct racks first, pending replicas and fallbacks. */
#include <string.h>

#include "ring_int.h"

size_t ring__search(const struct ring__table *t, chorus_token token) {
  size_t b = (size_t)(token >> (64 - t->bucket_bits));
  size_t lo = t->bucket[b], hi = t->bucket[b + 1];
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (t->tok[mid] < token)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo == t->count ? 0 : lo;
}

/* A node met on the walk and set aside: its rack was already used in its
 * group; it is taken later if the group runs out of racks. */
struct aside {
  uint16_t node;
  uint8_t group;
  uint8_t taken;
};

static int has_node(const struct ring_replica *r, unsigned n, uint16_t node) {
  for (unsigned i = 0; i < n; i++)
    if (r[i].node == node)
      return 1;
  return 0;
}

static int aside_has(const struct aside *e, unsigned n, uint16_t node) {
  for (unsigned i = 0; i < n; i++)
    if (e[i].node == node)
      return 1;
  return 0;
}

static inline void emit(const struct ring_snapshot *s, struct ring_replica *r,
                        uint16_t node, uint8_t group) {
  r->id = s->node_id[node];
  r->node = node;
  r->dc = group;
}

static inline size_t next(const struct ring__table *t, size_t i) {
  return i + 1 == t->count ? 0 : i + 1;
}

/* HOW THE WALK WORKS
 *
 * Start at the first vnode at or after the key's token and step clockwise
 * over at most one full turn. Skip vnodes of unreplicated datacenters and
 * nodes already met. For a node of group g that still needs replicas:
 *   - if its rack is new, take it; if that was g's last unused rack, also
 *     take g's set-aside nodes in the order met until g is complete;
 *   - if every rack of g is already used, take it;
 *   - otherwise set it aside (at most need[g] of them: more could never be
 *     taken).
 * Stop when every group is complete. The walk meets every node within one
 * turn, so every group completes (need[g] never exceeds g's node count). */
unsigned ring__walk(const struct ring_snapshot *s, const struct ring__table *t,
                    size_t start, struct ring_replica *out) {
  if (t->count == 0)
    return 0;
  uint8_t taken[RING__MAX_GROUPS] = {0};
  uint8_t racks_used[RING__MAX_GROUPS] = {0};
  uint8_t aside_n[RING__MAX_GROUPS] = {0};
  uint16_t used_rack[RING_MAX_REPLICAS];
  struct aside aside[RING_MAX_REPLICAS];
  unsigned n_used_rack = 0, n_aside = 0, n = 0;
  unsigned need_left = t->need_total;
  /* Bit (node & 63) set when that node may have been met, and bit
   * (rack & 63) when that rack may have been used: most vnodes are new
   * nodes on new racks, and this spares the list scans for them. */
  uint64_t met = 0, rack_seen = 0;

  size_t i = start;
  for (size_t steps = 0; need_left > 0 && steps < t->count;
       steps++, i = next(t, i)) {
    const struct ring__vmeta *v = &t->meta[i];
    uint8_t g = v->group;
    if (g == RING__NO_GROUP || taken[g] == t->need[g])
      continue;
    uint64_t bit = (uint64_t)1 << (v->node & 63);
    if ((met & bit) != 0 &&
        (has_node(out, n, v->node) || aside_has(aside, n_aside, v->node)))
      continue;
    uint64_t rbit = (uint64_t)1 << (v->rack & 63);
    int rack_new = 1;
    if ((rack_seen & rbit) != 0)
      for (unsigned k = 0; k < n_used_rack; k++)
        if (used_rack[k] == v->rack) {
          rack_new = 0;
          break;
        }
    if (!rack_new && racks_used[g] < t->racks[g]) {
      if (aside_n[g] < t->need[g]) {
        aside[n_aside++] = (struct aside){v->node, g, 0};
        aside_n[g]++;
        met |= bit;
      }
      continue;
    }
    emit(s, &out[n++], v->node, g);
    taken[g]++;
    need_left--;
    met |= bit;
    if (rack_new) {
      used_rack[n_used_rack++] = v->rack;
      rack_seen |= rbit;
      if (++racks_used[g] == t->racks[g])
        for (unsigned k = 0; k < n_aside && taken[g] < t->need[g]; k++)
          if (aside[k].group == g && !aside[k].taken) {
            aside[k].taken = 1;
            emit(s, &out[n++], aside[k].node, g);
            taken[g]++;
            need_left--;
          }
    }
  }
  return n;
}

/* The natural replicas of the range of vnode @i (precomputed, or walked). */
static unsigned natural_at(const struct ring_snapshot *s,
                           const struct ring__table *t, size_t i,
                           struct ring_replica *out) {
  if (t->replicas == NULL)
    return ring__walk(s, t, i, out);
  const uint16_t *r = &t->replicas[i * t->need_total];
  for (unsigned k = 0; k < t->need_total; k++)
    emit(s, &out[k], r[k], s->node_group[r[k]]);
  return t->need_total;
}

unsigned ring__natural(const struct ring_snapshot *s,
                       const struct ring__table *t, chorus_token token,
                       struct ring_replica *out) {
  if (t->count == 0)
    return 0;
  return natural_at(s, t, ring__search(t, token), out);
}

/* Fallbacks: from vnode @start, the first @want distinct nodes *of each
 * replicated group* that are not among the @n_ex nodes of @ex (the natural
 * and pending replicas), listed in walk order. Per group, because a
 * stand-in must be in the datacenter of the replica it stands in for
 * (repl_write.c, SLOPPY QUORUM): the first few nodes clockwise may all be
 * in another datacenter. @want is cut so that every group's share fits
 * RING_MAX_FALLBACK. A plain walk: no racks. It ends once each group has
 * its share or has shown all of its nodes (t->members), so a group with no
 * spare node costs one turn of the ring, never more. */
static unsigned fallbacks(const struct ring_snapshot *s,
                          const struct ring__table *t, size_t start,
                          const struct ring_replica *ex, unsigned n_ex,
                          unsigned want, struct ring_replica *fb) {
  unsigned groups =
      t->group_count < RING__MAX_GROUPS ? t->group_count : RING__MAX_GROUPS;
  if (groups > 1 && want > RING_MAX_FALLBACK / groups)
    want = RING_MAX_FALLBACK / groups;
  uint8_t got[RING__MAX_GROUPS] = {0};
  uint16_t seen[RING__MAX_GROUPS] = {0}; /* distinct nodes met */
  uint8_t ex_seen[RING_PLIST_MAX] = {0};
  unsigned open = 0; /* groups that may still yield a fallback */
  for (unsigned g = 0; g < groups; g++)
    open += t->members[g] > 0;
  uint64_t met = 0;
  for (unsigned k = 0; k < n_ex; k++)
    met |= (uint64_t)1 << (ex[k].node & 63);
  unsigned nf = 0;
  size_t i = start;
  for (size_t steps = 0; open > 0 && steps < t->count;
       steps++, i = next(t, i)) {
    const struct ring__vmeta *v = &t->meta[i];
    uint8_t g = v->group;
    if (g == RING__NO_GROUP || g >= groups || got[g] == want ||
        seen[g] == t->members[g])
      continue; /* unreplicated, or its group is done */
    uint64_t bit = (uint64_t)1 << (v->node & 63);
    if ((met & bit) != 0) {
      if (has_node(fb, nf, v->node))
        continue;
      unsigned k = 0;
      while (k < n_ex && ex[k].node != v->node)
        k++;
      if (k < n_ex) {
        if (!ex_seen[k]) {
          ex_seen[k] = 1;
          if (++seen[g] == t->members[g])
            open--;
        }
        continue;
      }
    }
    emit(s, &fb[nf++], v->node, g);
    met |= bit;
    got[g]++;
    seen[g]++;
    if (got[g] == want || seen[g] == t->members[g])
      open--;
  }
  return nf;
}

int ring_lookup(const struct ring_snapshot *s, chorus_token token,
                unsigned want_fallback, struct ring_plist *out) {
  if (want_fallback > RING_MAX_FALLBACK)
    want_fallback = RING_MAX_FALLBACK;
  out->token = token;
  unsigned n = 0, np = 0, nf = 0;
  size_t at = 0;
  if (s->cur.count > 0) {
    at = ring__search(&s->cur, token);
    n = natural_at(s, &s->cur, at, out->r);
  }
  /* A replacing node (an owner whose disk was lost) keeps its place in
   * the walk, so no other node becomes a natural replica of its ranges
   * with nothing to serve, but it is listed as pending: it takes writes
   * and is never read from or counted for quorums until it has streamed
   * its ranges back. */
  unsigned kept = 0;
  struct ring_replica lost[RING_MAX_REPLICAS];
  unsigned nlost = 0;
  for (unsigned k = 0; k < n; k++) {
    if (s->nodes[out->r[k].node].state == RING_REPLACING)
      lost[nlost++] = out->r[k];
    else
      out->r[kept++] = out->r[k];
  }
  n = kept;
  for (unsigned k = 0; k < nlost; k++)
    out->r[n + np++] = lost[k];
  if (s->has_future) {
    struct ring_replica f[RING_MAX_REPLICAS];
    unsigned nfut = ring__natural(s, &s->fut, token, f);
    for (unsigned k = 0; k < nfut; k++)
      if (!has_node(out->r, n + np, f[k].node))
        out->r[n + np++] = f[k];
  }
  if (want_fallback > 0 && s->cur.count > 0)
    nf = fallbacks(s, &s->cur, at, out->r, n + np, want_fallback,
                   out->r + n + np);
  out->n_natural = (uint8_t)n;
  out->n_pending = (uint8_t)np;
  out->n_fallback = (uint8_t)nf;
  return n > 0 ? CHORUS_OK : CHORUS_EUNAVAILABLE;
}

size_t ring_snapshot_token_index(const struct ring_snapshot *s,
                                 chorus_token pos) {
  const struct ring__table *t = &s->cur;
  if (t->count == 0)
    return 0;
  size_t i = ring__search(t, pos); /* 0 also when it wrapped */
  return i == 0 && t->tok[0] < pos ? t->count : i;
}

int ring_lookup_key(const struct ring_snapshot *s, const void *key, size_t len,
                    unsigned want_fallback, struct ring_plist *out) {
  return ring_lookup(ring_snapshot_for_key(s, key, len),
                     ring_token_of(key, len), want_fallback, out);
}
