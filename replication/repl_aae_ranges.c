/* repl_aae_ranges.c: anti-entropy per token range: what the exchanges this
 * node initiated found in each range it replicates, and the operator's
 * "exchange now with the replicas of this range" (repl.h, ANTI-ENTROPY).
 *
 * HOW AN EXCHANGE MAPS TO RANGES
 *
 * There is one tree per node and replication class, not one per range,
 * and an exchange is with one peer in one class over every interval the
 * two both replicate in it (the union of whole vnode ranges,
 * repl__aae_shared_intervals). The table is of the cluster's class (0):
 * the figures of its exchanges are attributed to the ranges of this
 * node's table by token, as they happen (a keyspace's own class's
 * exchanges count in the node's and the peer's totals only):
 *
 *   keys differing, keys repaired, bytes   the key's token: exact
 *   segments differing                      every range the segment
 *                                           overlaps (a segment across a
 *                                           range boundary counts in both;
 *                                           boundary-cut segments are
 *                                           compared key by key, not
 *                                           counted)
 *   exchanges, last completed               every range inside the
 *                                           exchange's intervals, once it
 *                                           completes
 *
 * So a range's keys and bytes add up to what the exchanges moved there,
 * also in exchanges abandoned later (what was repaired stays repaired),
 * while exchanges and last completed count only completed ones. Bytes are
 * the repair objects' (fetched and sent); the trees' and key lists' bytes
 * are the node's totals only. Exchanges that peers initiate show in their
 * own status. "repaired" is repl_aae_repaired_since's test: every other
 * natural replica of the range completed an exchange with this node over
 * it since this node started (the table and the peers' state live in
 * memory: a restart, with or without a wiped data folder, starts over).
 *
 * The table is rebuilt when an exchange starts at a new ring version;
 * a range whose bounds did not change keeps its figures. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_aae_int.h"

/* Whether [f, l] holds @t; first > last wraps. */
static bool span_has(chorus_token f, chorus_token l, chorus_token t) {
  return f <= l ? f <= t && t <= l : t >= f || t <= l;
}

static bool plain_overlap(chorus_token f1, chorus_token l1, chorus_token f2,
                          chorus_token l2) {
  return f1 <= l2 && f2 <= l1;
}

/* Whether two spans overlap (either may wrap). */
static bool span_overlap(chorus_token f1, chorus_token l1, chorus_token f2,
                         chorus_token l2) {
  if (f1 > l1)
    return span_overlap(f1, UINT64_MAX, f2, l2) || span_overlap(0, l1, f2, l2);
  if (f2 > l2)
    return plain_overlap(f1, l1, f2, UINT64_MAX) ||
           plain_overlap(f1, l1, 0, l2);
  return plain_overlap(f1, l1, f2, l2);
}

static bool lists(const struct ring_plist *pl, chorus_node_id id) {
  for (unsigned j = 0; j < pl->n_natural; j++)
    if (pl->r[j].id == id)
      return true;
  return false;
}

/* The index of the first range whose last token is >= @t. */
static size_t lower_bound(const struct repl_aae_range *v, size_t n,
                          chorus_token t) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid].last < t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* The range of @v holding @t, or NULL. Sorted by last token, the wrapping
 * range (the one before the smallest token) comes first. */
static struct repl_aae_range *find(struct repl_aae_range *v, size_t n,
                                   chorus_token t) {
  size_t i = lower_bound(v, n, t);
  if (i < n && span_has(v[i].first, v[i].last, t))
    return &v[i];
  if (n > 0 && v[0].first > v[0].last && span_has(v[0].first, v[0].last, t))
    return &v[0];
  return NULL;
}

static struct repl_aae_range *exact(struct repl_aae_range *v, size_t n,
                                    chorus_token first, chorus_token last) {
  size_t i = lower_bound(v, n, last);
  return i < n && v[i].last == last && v[i].first == first ? &v[i] : NULL;
}

/* ------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------ */

struct build {
  const struct repl *r;
  struct repl_aae_range *v;
  size_t n, cap;
  struct repl_aae_range *old;
  size_t nold;
};

static int add_mine(void *arg, chorus_token first, chorus_token last,
                    const struct ring_plist *pl) {
  struct build *b = arg;
  if (!lists(pl, b->r->cfg.self))
    return CHORUS_OK;
  struct repl_aae_range *v = chorus_grow(b->v, &b->cap, b->n, sizeof *v, 64);
  if (v == NULL)
    return CHORUS_ENOMEM;
  b->v = v;
  const struct repl_aae_range *o = exact(b->old, b->nold, first, last);
  v[b->n++] = o ? *o : (struct repl_aae_range){.first = first, .last = last};
  return CHORUS_OK;
}

static int range_cmp(const void *x, const void *y) {
  const struct repl_aae_range *a = x, *b = y;
  return a->last < b->last ? -1 : a->last > b->last;
}

int repl__aae_ranges_refresh(struct repl *r) {
  struct repl_aae *a = &r->aae;
  uint64_t epoch = r->ring ? ring_snapshot_version(r->ring) : 0;
  if (a->ranges_set && a->ranges_epoch == epoch)
    return CHORUS_OK;
  struct build b = {.r = r, .old = a->ranges, .nold = a->nranges};
  int rc = repl__aae_each_range(r->ring, add_mine, &b);
  if (rc != CHORUS_OK) {
    chorus_free(b.v);
    return rc;
  }
  /* Ring tokens come sorted: only the whole-ring range of a one-token
   * ring needs no order; sorting keeps the invariant obvious. */
  if (b.n > 1)
    qsort(b.v, b.n, sizeof *b.v, range_cmp);
  chorus_free(a->ranges);
  a->ranges = b.v;
  a->nranges = b.n;
  a->ranges_epoch = epoch;
  a->ranges_set = true;
  return CHORUS_OK;
}

void repl__aae_ranges_free(struct repl *r) {
  chorus_free(r->aae.ranges);
  r->aae.ranges = NULL;
  r->aae.nranges = 0;
  r->aae.ranges_set = false;
}

struct repl_aae_range *repl__aae_range_of(struct repl *r, chorus_token t) {
  return find(r->aae.ranges, r->aae.nranges, t);
}

void repl__aae_ranges_segment(struct repl *r, chorus_token first,
                              chorus_token last) {
  struct repl_aae_range *v = r->aae.ranges;
  size_t n = r->aae.nranges;
  size_t i = lower_bound(v, n, first);
  size_t start = i;
  for (; i < n; i++) {
    if (span_overlap(v[i].first, v[i].last, first, last))
      v[i].segments_differing++;
    if (v[i].last >= last)
      break;
  }
  if (start > 0 && v[0].first > v[0].last &&
      span_overlap(v[0].first, v[0].last, first, last))
    v[0].segments_differing++;
}

void repl__aae_ranges_completed(struct repl *r, const struct repl_aae_iv *iv,
                                size_t niv, chorus_ms wall) {
  struct repl_aae *a = &r->aae;
  for (size_t i = 0; i < a->nranges; i++) {
    struct repl_aae_range *g = &a->ranges[i];
    /* Shared intervals are unions of whole ranges: one token tells. */
    if (repl__aae_inside(iv, niv, g->last, g->last)) {
      g->exchanges++;
      g->last_completed = wall;
    }
  }
}

/* ------------------------------------------------------------------------
 * Status
 * ------------------------------------------------------------------------ */

struct report {
  const struct repl *r;
  chorus_token first, last;
  struct repl_aae_range_status *out;
  size_t max, n;
};

static int report_one(void *arg, chorus_token first, chorus_token last,
                      const struct ring_plist *pl) {
  struct report *p = arg;
  const struct repl *r = p->r;
  if (!lists(pl, r->cfg.self) || !span_overlap(first, last, p->first, p->last))
    return CHORUS_OK;
  if (p->n < p->max) {
    struct repl_aae_range_status *s = &p->out[p->n];
    *s = (struct repl_aae_range_status){.first = first, .last = last};
    /* The figures of the table's range of the same bounds (a range whose
     * bounds a ring change moved shows none until an exchange). */
    const struct repl_aae_range *g =
        exact(r->aae.ranges, r->aae.nranges, first, last);
    if (g != NULL) {
      s->last_completed = g->last_completed;
      s->exchanges = g->exchanges;
      s->segments_differing = g->segments_differing;
      s->keys_differing = g->keys_differing;
      s->keys_repaired = g->keys_repaired;
      s->bytes_sent = g->bytes_sent;
      s->bytes_received = g->bytes_received;
    }
    s->repaired = repl__aae_oldest_repair(r, 0, last, false) != 0;
  }
  p->n++;
  return CHORUS_OK;
}

size_t repl_aae_ranges(const struct repl *r, chorus_token first,
                       chorus_token last, struct repl_aae_range_status *out,
                       size_t max) {
  struct report p = {r, first, last, out, out ? max : 0, 0};
  (void)repl__aae_each_range(r->ring, report_one, &p); /* never fails */
  return p.n;
}

/* ------------------------------------------------------------------------
 * Exchanges on request
 * ------------------------------------------------------------------------ */

struct request {
  struct repl *r;
  chorus_token first, last;
  unsigned cls;
  uint64_t tag;
  size_t ranges; /* the cluster's (class 0) only, as status lists */
};

static int want_one(void *arg, chorus_token first, chorus_token last,
                    const struct ring_plist *pl) {
  struct request *q = arg;
  struct repl *r = q->r;
  if (!lists(pl, r->cfg.self) || !span_overlap(first, last, q->first, q->last))
    return CHORUS_OK;
  q->ranges += q->cls == 0;
  for (unsigned j = 0; j < pl->n_natural; j++) {
    chorus_node_id id = pl->r[j].id;
    if (id == r->cfg.self || !repl__peer_alive(r, id))
      continue;
    struct repl_aae_peer *p = repl__aae_peer(r, id, q->tag, true);
    if (p == NULL)
      return CHORUS_ENOMEM;
    p->wanted = true;
  }
  return CHORUS_OK;
}

int repl_aae_request(struct repl *r, chorus_token first, chorus_token last,
                     size_t *ranges, size_t *peers) {
  /* In every class: a keyspace's own replicas of these tokens too. */
  struct request q = {r, first, last, 0, 0, 0};
  int rc = CHORUS_OK;
  unsigned n = r->ring ? ring_snapshot_class_count(r->ring) : 0;
  for (unsigned c = 0; c < n && rc == CHORUS_OK; c++) {
    q.cls = c;
    q.tag = ring_snapshot_class_tag(r->ring, c);
    rc = repl__aae_each_range(ring_snapshot_class(r->ring, c), want_one, &q);
  }
  /* Peers, not (peer, class) records: a peer's are adjacent. */
  size_t waiting = 0;
  chorus_node_id counted = 0;
  for (size_t i = 0; i < r->aae.npeers; i++)
    if (r->aae.peers[i].wanted && r->aae.peers[i].id != counted) {
      counted = r->aae.peers[i].id;
      waiting++;
    }
  REPL_TRACE(r,
             "aae asked for [%016" PRIx64 ", %016" PRIx64 "]: %zu of this "
             "node's ranges, %zu peers wait for an exchange",
             first, last, q.ranges, waiting);
  if (ranges != NULL)
    *ranges = q.ranges;
  if (peers != NULL)
    *peers = waiting;
  return rc;
}

bool repl_aae_wanted(struct repl *r) {
  const struct repl_aae *a = &r->aae;
  for (size_t i = 0; i < a->npeers; i++)
    if (a->peers[i].wanted && repl__peer_alive(r, a->peers[i].id) &&
        ring_snapshot_find(r->ring, a->peers[i].id) >= 0)
      return true;
  return false;
}
