/* repl_aae.c: anti-entropy: exchanges of trees and key lists with the
 * other replicas of this node's ranges, this node initiating (repl.h,
 * ANTI-ENTROPY; the tree's rebuild, the peer's answers and the shared
 * helpers are repl_aae_serve.c).
 *
 * HOW AN EXCHANGE GOES (this node A initiates, peer B answers)
 *
 *   1. A computes the token intervals where A and B are both natural
 *      replicas in its ring (vnode ranges, merged). Both sides must be at
 *      the same ring epoch: B refuses otherwise (ESTALE), A gives up and
 *      tries later.
 *   2. BRANCHES: A asks B's hashes of the branches lying wholly inside
 *      the intervals (AAE_TREE_REQ level 0) and compares them with its own.
 *   3. SEGMENTS: A asks the hashes of every segment of a differing branch,
 *      and of every segment wholly inside an interval whose branch is not
 *      (level 1, in chunks of at most WIRE_AAE_MAX_IDS).
 *   4. KEYS: differing segments, and the parts of the segments an interval
 *      boundary cuts (their hash covers keys outside the interval), are
 *      compared key by key: B lists (key, digest) pairs in storage-key
 *      order (AAE_KEYS_REQ / AAE_KEYS, bounded batches with a cursor), A
 *      lists its own over the same span and merges the two lists.
 *   5. REPAIR: each differing key B holds is fetched (REPLICA_READ, which
 *      B answers once durable), joined into A's store, and A's join sent
 *      to B when it differs from B's copy (REPLICA_WRITE, as read repair
 *      does); a key only A holds is sent to B. An object goes out only
 *      when everything A wrote is durable (NOTHING NON-DURABLE LEAVES A
 *      NODE): otherwise it stays for B's own exchange with A, which pulls
 *      it. Throttled in keys and bytes a second.
 *
 * Anything unexpected (a timeout, an ERROR, an answer that breaks the
 * bounds, the peer down, a ring change) abandons the exchange; the next
 * one starts over. Only a completed exchange counts for
 * repl_aae_repaired_since. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_aae_int.h"

/* ------------------------------------------------------------------------
 * The exchange: start, end
 * ------------------------------------------------------------------------ */

void repl__aae_exchange_reset(struct repl_aae *a) {
  chorus_free(a->iv);
  chorus_free(a->ids);
  chorus_free(a->kr);
  chorus_free(a->after);
  for (size_t i = 0; i < a->ndiff; i++)
    chorus_free(a->diff[i].dkey);
  chorus_free(a->diff);
  a->phase = REPL_AAE_IDLE;
  a->peer = 0;
  a->awaited = 0;
  a->wake = 0;
  a->iv = NULL;
  a->niv = 0;
  a->ids = NULL;
  a->nids = a->capids = a->pos = a->chunk = 0;
  a->kr = NULL;
  a->nkr = a->capkr = a->krpos = a->krn = 0;
  a->after = NULL;
  a->alen = a->acap = 0;
  a->diff = NULL;
  a->ndiff = a->capdiff = a->dpos = 0;
  memset(a->fetch, 0, sizeof a->fetch);
  memset(a->push, 0, sizeof a->push);
  for (size_t i = 0; i < a->nheld; i++)
    chorus_free(a->held[i].obj);
  a->nheld = 0;
  a->barrier = 0;
  a->segs = a->keys = a->repaired = a->bytes = 0;
}

static void exchange_abort(struct repl *r, const char *why) {
  struct repl_aae *a = &r->aae;
  if (a->phase == REPL_AAE_IDLE)
    return;
  REPL_TRACE(r, "aae with %016" PRIx64 " abandoned: %s", a->peer, why);
  r->stats.aae_aborted++;
  struct repl_aae_peer *p = repl__aae_peer(r, a->peer, a->tag, false);
  if (p != NULL)
    p->aborted++;
  repl__aae_exchange_reset(a);
}

/* The table's range of storage key @dkey (NULL: not one of this node's).
 * The table is of the cluster's ranges (repl_aae_ranges.c): only class 0
 * exchanges count in it. */
static struct repl_aae_range *range_of(struct repl *r, const uint8_t *dkey) {
  if (r->aae.cls != 0)
    return NULL;
  return repl__aae_range_of(r, store_be64_get(dkey));
}

/* The tree of the class exchanged. */
static const struct aae_tree *tree_of(const struct repl *r) {
  return &r->trees[r->aae.cls];
}

static int exchange_complete(struct repl *r, chorus_ms now) {
  struct repl_aae *a = &r->aae;
  if (r->trees_map != a->map) {
    /* Keys changed class meanwhile (the epoch stays): what was compared
     * is not what the tombstone collector would count on. */
    exchange_abort(r, "the replication classes changed");
    return CHORUS_OK;
  }
  struct repl_aae_peer *p = repl__aae_peer(r, a->peer, a->tag, true);
  if (p == NULL)
    return CHORUS_ENOMEM;
  r->stats.aae_completed++;
  /* The wall time of the end, from the start's and the monotonic clock's
   * advance (the events of an exchange carry only the monotonic one). */
  if (a->cls == 0)
    repl__aae_ranges_completed(r, a->iv, a->niv,
                               a->started + (now - a->started_mono));
  p->last_started = a->started;
  p->last_started_mono = a->started_mono;
  p->exchanges++;
  p->segments_differing += a->segs;
  p->keys_repaired += a->repaired;
  p->bytes += a->bytes;
  chorus_free(p->iv);
  p->iv = a->iv; /* handed over */
  p->niv = a->niv;
  a->iv = NULL;
  a->niv = 0;
  REPL_TRACE(r,
             "aae with %016" PRIx64 " (class %016" PRIx64 "): %" PRIu64
             " segments differed, %" PRIu64 " keys compared, %" PRIu64
             " repaired",
             a->peer, a->tag, a->segs, a->keys, a->repaired);
  repl__aae_exchange_reset(a);
  return CHORUS_OK;
}

static int send_tree_req(struct repl *r, const struct repl_effects *fx,
                         uint8_t level);
static int next_keys(struct repl *r, const struct repl_effects *fx);
static int pump(struct repl *r, chorus_ms now, const struct repl_effects *fx);

bool repl_aae_busy(const struct repl *r) {
  return r->aae.phase != REPL_AAE_IDLE;
}

/* The next peer: one asked for (repl_aae_request) first, then one whose
 * hint was dropped, else the one after the
 * last in id order among the nodes of the ring, alive. */
static chorus_node_id next_peer(struct repl *r) {
  struct repl_aae *a = &r->aae;
  /* (A record per peer and class: a peer with any wanted.) */
  for (size_t i = 0; i < a->npeers; i++)
    if (a->peers[i].wanted && repl__peer_alive(r, a->peers[i].id) &&
        ring_snapshot_find(r->ring, a->peers[i].id) >= 0)
      return a->peers[i].id;
  for (size_t i = 0; i < a->npeers; i++)
    if (a->peers[i].priority && repl__peer_alive(r, a->peers[i].id) &&
        ring_snapshot_find(r->ring, a->peers[i].id) >= 0)
      return a->peers[i].id;
  chorus_node_id best = 0, first = 0;
  size_t n = ring_snapshot_node_count(r->ring);
  for (size_t i = 0; i < n; i++) {
    const struct ring_node *node = ring_snapshot_node(r->ring, i);
    chorus_node_id id = node->id;
    if (id == r->cfg.self || !repl__peer_alive(r, id))
      continue;
    if (first == 0 || id < first)
      first = id;
    if (id > a->last_peer && (best == 0 || id < best))
      best = id;
  }
  return best != 0 ? best : first;
}

/* pick_class: the class of the exchange with @peer, *@cls, and the
 * intervals the two share in it (*@iv, *@niv; none: no class to
 * exchange): the one asked for (wanted), else one a dropped hint named
 * (priority), else the one whose last exchange started the longest ago,
 * among the classes in which the two share ranges. So exchanges with one
 * peer take its classes in turn. A flag on a class they share nothing in
 * is cleared (nothing to do there). Errors: CHORUS_ENOMEM. */
static int pick_class(struct repl *r, chorus_node_id peer, unsigned *cls,
                      struct repl_aae_iv **iv, size_t *niv) {
  *iv = NULL;
  *niv = 0;
  unsigned n = ring_snapshot_class_count(r->ring);
  int best_rank = 3;
  chorus_ms best_at = 0;
  for (unsigned c = 0; c < n; c++) {
    struct repl_aae_iv *v;
    size_t nv;
    int rc = repl__aae_shared_intervals(r, c, peer, &v, &nv);
    if (rc != CHORUS_OK) {
      chorus_free(*iv);
      *iv = NULL;
      *niv = 0;
      return rc;
    }
    struct repl_aae_peer *p =
        repl__aae_peer(r, peer, ring_snapshot_class_tag(r->ring, c), false);
    if (nv == 0 || nv > WIRE_AAE_MAX_INTERVALS) {
      chorus_free(v);
      if (p != NULL)
        p->wanted = p->priority = false;
      continue;
    }
    int rank = p == NULL ? 2 : p->wanted ? 0 : p->priority ? 1 : 2;
    chorus_ms at = p != NULL && p->exchanges ? p->last_started_mono : 0;
    if (rank < best_rank || (rank == best_rank && at < best_at)) {
      chorus_free(*iv);
      *iv = v;
      *niv = nv;
      *cls = c;
      best_rank = rank;
      best_at = at;
    } else {
      chorus_free(v);
    }
  }
  return CHORUS_OK;
}

int repl_aae_exchange(struct repl *r, chorus_node_id peer, chorus_ms now,
                      chorus_ms wall, const struct repl_effects *fx,
                      bool *started) {
  struct repl_aae *a = &r->aae;
  if (started != NULL)
    *started = false;
  if (a->phase != REPL_AAE_IDLE || !repl_aae_built(r) || !repl__serving(r) ||
      r->failed)
    return CHORUS_OK;
  if (peer == 0)
    peer = next_peer(r);
  if (peer == 0 || peer == r->cfg.self || !repl__peer_alive(r, peer))
    return CHORUS_OK;
  a->last_peer = peer;
  int rc = repl__aae_ranges_refresh(r);
  if (rc != CHORUS_OK)
    return rc;
  unsigned cls = 0;
  rc = pick_class(r, peer, &cls, &a->iv, &a->niv);
  if (rc != CHORUS_OK || a->niv == 0)
    return rc;
  uint64_t tag = ring_snapshot_class_tag(r->ring, cls);
  struct repl_aae_peer *p = repl__aae_peer(r, peer, tag, true);
  if (p == NULL) {
    chorus_free(a->iv);
    a->iv = NULL;
    a->niv = 0;
    return CHORUS_ENOMEM;
  }
  p->priority = false;
  p->wanted = false;
  a->cls = cls;
  a->tag = tag;
  a->map = r->trees_map;
  a->peer = peer;
  a->epoch = ring_snapshot_version(r->ring);
  a->started = wall;
  a->started_mono = now;
  a->refilled = now;
  a->keys_tokens = 0;
  a->bytes_tokens = 0;
  r->stats.aae_started++;
  if (started != NULL)
    *started = true;
  const struct aae_tree *t = tree_of(r);
  REPL_TRACE(r,
             "aae with %016" PRIx64 " (class %016" PRIx64 "): %zu intervals "
             "at epoch %" PRIu64 " (the first [%016" PRIx64 ", %016" PRIx64
             "]), tree of %" PRIu64 " objects",
             peer, tag, a->niv, a->epoch, a->iv[0].first, a->iv[0].last,
             t->keys);
  /* The branches wholly inside the intervals. */
  for (uint32_t b = 0; b < (1u << t->branch_bits); b++)
    if (repl__aae_inside(a->iv, a->niv,
                         aae_tree_segment_first(t->branch_bits, b),
                         aae_tree_segment_last(t->branch_bits, b))) {
      uint32_t *ids = chorus_grow(a->ids, &a->capids, a->nids, sizeof *ids, 64);
      if (ids == NULL)
        return CHORUS_ENOMEM;
      a->ids = ids;
      ids[a->nids++] = b;
    }
  a->phase = REPL_AAE_BRANCHES;
  a->pos = 0;
  return send_tree_req(r, fx, 0);
}

/* ------------------------------------------------------------------------
 * The exchange: comparing trees
 * ------------------------------------------------------------------------ */

/* Segments to compare by hash once the branches are compared: every
 * segment of a differing branch (in @diffb, sorted), and every segment
 * wholly inside an interval whose branch is not; the parts of segments an
 * interval boundary cuts go to the key ranges. */
static int plan_segments(struct repl *r, const uint32_t *diffb, size_t ndiffb) {
  struct repl_aae *a = &r->aae;
  const struct aae_tree *t = tree_of(r);
  unsigned shift = t->bits - t->branch_bits;
  a->nids = 0;
  size_t db = 0;
  for (size_t i = 0; i < a->niv; i++) {
    const struct repl_aae_iv *iv = &a->iv[i];
    uint32_t s0 = aae_tree_segment(t, iv->first);
    uint32_t s1 = aae_tree_segment(t, iv->last);
    for (uint64_t s = s0; s <= s1; s++) {
      chorus_token f = aae_tree_segment_first(t->bits, (uint32_t)s);
      chorus_token l = aae_tree_segment_last(t->bits, (uint32_t)s);
      if (f < iv->first || l > iv->last) {
        /* Cut by the boundary: its part inside, key by key. */
        int rc = repl__aae_push_iv(&a->kr, &a->nkr, &a->capkr,
                                   f < iv->first ? iv->first : f,
                                   l > iv->last ? iv->last : l);
        if (rc != CHORUS_OK)
          return rc;
        continue;
      }
      uint32_t b = (uint32_t)s >> shift;
      bool full_branch = repl__aae_inside(
          a->iv, a->niv, aae_tree_segment_first(t->branch_bits, b),
          aae_tree_segment_last(t->branch_bits, b));
      if (full_branch) {
        while (db < ndiffb && diffb[db] < b)
          db++;
        if (db >= ndiffb || diffb[db] != b)
          continue; /* its branch matched */
      }
      uint32_t *ids = chorus_grow(a->ids, &a->capids, a->nids, sizeof *ids, 64);
      if (ids == NULL)
        return CHORUS_ENOMEM;
      a->ids = ids;
      ids[a->nids++] = (uint32_t)s;
    }
  }
  return CHORUS_OK;
}

static int send_tree_req(struct repl *r, const struct repl_effects *fx,
                         uint8_t level) {
  struct repl_aae *a = &r->aae;
  size_t n = a->nids - a->pos;
  if (n > WIRE_AAE_MAX_IDS)
    n = WIRE_AAE_MAX_IDS;
  a->chunk = n;
  uint8_t *ivb = repl__aae_encode_ivs(a->iv, a->niv);
  uint8_t *idb = chorus_malloc(4 * n + 1);
  if (ivb == NULL || idb == NULL) {
    chorus_free(ivb);
    chorus_free(idb);
    return CHORUS_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t v = a->ids[a->pos + i];
    idb[4 * i] = (uint8_t)(v >> 24);
    idb[4 * i + 1] = (uint8_t)(v >> 16);
    idb[4 * i + 2] = (uint8_t)(v >> 8);
    idb[4 * i + 3] = (uint8_t)v;
  }
  a->awaited = repl__aae_new_id(r);
  struct wire_msg m = {.type = WIRE_AAE_TREE_REQ, .request_id = a->awaited};
  m.aae_tree_req = (struct wire_aae_tree_req){.epoch = a->epoch,
                                              .bits = (uint8_t)tree_of(r)->bits,
                                              .level = level,
                                              .intervals = {ivb, 16 * a->niv},
                                              .ids = {idb, 4 * n},
                                              .class_tag = a->tag,
                                              .class_map = a->map};
  int rc = repl__aae_send(r, fx, a->peer, &m);
  chorus_free(ivb);
  chorus_free(idb);
  if (rc == CHORUS_OK)
    rc = repl__aae_arm(fx, a->awaited, r->cfg.timeout_ms);
  return rc;
}

/* The peer's hashes of the chunk asked: compared. */
static int on_tree(struct repl *r, const struct wire_msg *m,
                   const struct repl_effects *fx) {
  struct repl_aae *a = &r->aae;
  const struct wire_bytes *h = &m->aae_tree.hashes;
  if (h->len != 8 * a->chunk) {
    exchange_abort(r, "AAE_TREE with a wrong hash count");
    return CHORUS_OK;
  }
  const struct aae_tree *t = tree_of(r);
  bool branches = a->phase == REPL_AAE_BRANCHES;
  /* Differing entries are written back over the ids compared (in
   * place: index w <= i). */
  size_t w = a->pos;
  for (size_t i = 0; i < a->chunk; i++) {
    uint32_t id = a->ids[a->pos + i];
    uint64_t mine = branches ? aae_tree_branch(t, id) : aae_tree_leaf(t, id);
    if (mine != store_be64_get(h->ptr + 8 * i))
      a->ids[w++] = id;
  }
  size_t ndiff = w - a->pos;
  /* Shift the rest down over the matched ones. */
  if (a->nids > a->pos + a->chunk)
    memmove(&a->ids[w], &a->ids[a->pos + a->chunk],
            (a->nids - a->pos - a->chunk) * sizeof *a->ids);
  a->nids -= a->chunk - ndiff;
  a->pos = w;
  a->awaited = 0;
  if (a->pos < a->nids)
    return send_tree_req(r, fx, branches ? 0 : 1);
  /* The level is compared: ids[0, nids) are the ones that differ. */
  int rc;
  if (branches) {
    REPL_TRACE(r, "aae with %016" PRIx64 ": %zu branches differ", a->peer,
               a->nids);
    uint32_t *diffb = a->ids; /* taken: plan_segments refills a->ids */
    size_t nb = a->nids;
    a->ids = NULL;
    a->nids = a->capids = 0;
    rc = plan_segments(r, diffb, nb);
    chorus_free(diffb);
    if (rc != CHORUS_OK)
      return rc;
    a->phase = REPL_AAE_SEGMENTS;
    a->pos = 0;
    if (a->nids > 0)
      return send_tree_req(r, fx, 1);
  } else {
    a->segs += a->nids;
    r->stats.aae_segments_differing += a->nids;
    for (size_t i = 0; i < a->nids && a->cls == 0; i++)
      repl__aae_ranges_segment(r, aae_tree_segment_first(t->bits, a->ids[i]),
                               aae_tree_segment_last(t->bits, a->ids[i]));
  }
  /* The segments compared: the differing ones join the key ranges. */
  if (a->phase == REPL_AAE_SEGMENTS) {
    for (size_t i = 0; i < a->nids; i++) {
      rc = repl__aae_push_iv(&a->kr, &a->nkr, &a->capkr,
                             aae_tree_segment_first(t->bits, a->ids[i]),
                             aae_tree_segment_last(t->bits, a->ids[i]));
      if (rc != CHORUS_OK)
        return rc;
    }
    if (a->nkr > 1)
      qsort(a->kr, a->nkr, sizeof *a->kr, repl__aae_iv_cmp);
    a->phase = REPL_AAE_KEYS;
    a->krpos = 0;
    a->alen = 0;
  }
  return next_keys(r, fx);
}

/* ------------------------------------------------------------------------
 * The exchange: comparing key lists
 * ------------------------------------------------------------------------ */

static int send_keys_req(struct repl *r, const struct repl_effects *fx) {
  struct repl_aae *a = &r->aae;
  uint8_t *ivb = repl__aae_encode_ivs(a->kr + a->krpos, a->krn);
  if (ivb == NULL)
    return CHORUS_ENOMEM;
  a->awaited = repl__aae_new_id(r);
  struct wire_msg m = {.type = WIRE_AAE_KEYS_REQ, .request_id = a->awaited};
  m.aae_keys_req = (struct wire_aae_keys_req){.epoch = a->epoch,
                                              .intervals = {ivb, 16 * a->krn},
                                              .after = {a->after, a->alen},
                                              .max_keys = KEYS_PER_REQ,
                                              .class_tag = a->tag,
                                              .class_map = a->map};
  int rc = repl__aae_send(r, fx, a->peer, &m);
  chorus_free(ivb);
  if (rc == CHORUS_OK)
    rc = repl__aae_arm(fx, a->awaited, r->cfg.timeout_ms);
  return rc;
}

/* The next chunk of key ranges, or the repairs once none is left. */
static int next_keys(struct repl *r, const struct repl_effects *fx) {
  struct repl_aae *a = &r->aae;
  a->krpos += a->krn;
  a->alen = 0;
  if (a->krpos >= a->nkr) {
    a->phase = REPL_AAE_REPAIR;
    a->dpos = 0;
    return pump(r, a->refilled, fx);
  }
  a->krn = a->nkr - a->krpos;
  if (a->krn > RANGES_PER_REQ)
    a->krn = RANGES_PER_REQ;
  return send_keys_req(r, fx);
}

static int set_after(struct repl_aae *a, const uint8_t *k, size_t kl) {
  if (kl > a->acap) {
    uint8_t *p = chorus_realloc(a->after, kl);
    if (p == NULL)
      return CHORUS_ENOMEM;
    a->after = p;
    a->acap = kl;
  }
  memcpy(a->after, k, kl);
  a->alen = kl;
  return CHORUS_OK;
}

static int add_diff(struct repl *r, const uint8_t *k, size_t kl,
                    uint64_t remote) {
  struct repl_aae *a = &r->aae;
  struct repl_aae_range *g = range_of(r, k);
  if (g != NULL)
    g->keys_differing++;
  struct repl_aae_diff *d =
      chorus_grow(a->diff, &a->capdiff, a->ndiff, sizeof *d, 16);
  if (d == NULL)
    return CHORUS_ENOMEM;
  a->diff = d;
  uint8_t *copy = chorus_malloc(kl);
  if (copy == NULL)
    return CHORUS_ENOMEM;
  memcpy(copy, k, kl);
  d[a->ndiff++] = (struct repl_aae_diff){copy, kl, remote};
  return CHORUS_OK;
}

static int on_keys(struct repl *r, const struct wire_msg *m,
                   const struct repl_effects *fx) {
  struct repl_aae *a = &r->aae;
  const struct wire_bytes_list *e = &m->aae_keys.entries;
  const struct repl_aae_iv *kr = a->kr + a->krpos;
  a->awaited = 0;
  /* The peer's list, checked: pairs, 8-byte digests, in order, after the
   * cursor, inside the ranges asked, within the count asked. */
  if (e->n % 2 != 0 || e->n / 2 > KEYS_PER_REQ) {
    exchange_abort(r, "AAE_KEYS of a bad shape");
    return CHORUS_OK;
  }
  struct key_list peer = {0}, mine = {0};
  int rc = CHORUS_OK;
  const char *bad = NULL;
  for (size_t i = 0; i < e->n && rc == CHORUS_OK && bad == NULL; i += 2) {
    const struct wire_bytes *k = &e->items[i], *d = &e->items[i + 1];
    if (d->len != 8 || k->len == 0 || k->len > WIRE_MAX_KEY_FIELD) {
      bad = "AAE_KEYS entry of a bad size";
      break;
    }
    size_t dl;
    uint8_t *dk =
        repl__data_key(ring_token_of(k->ptr, k->len), k->ptr, k->len, &dl);
    if (dk == NULL) {
      rc = CHORUS_ENOMEM;
      break;
    }
    chorus_token tok = store_be64_get(dk);
    if (!repl__aae_inside(kr, a->krn, tok, tok) ||
        repl__aae_class_of(r, dk, dl) != a->cls ||
        (a->alen > 0 && repl__aae_key_cmp(dk, dl, a->after, a->alen) <= 0) ||
        (peer.n > 0 && repl__aae_key_cmp(dk, dl, peer.k[peer.n - 1],
                                         peer.kl[peer.n - 1]) <= 0))
      bad = "AAE_KEYS entry out of order, out of range or of another class";
    else
      rc = repl__aae_key_list_add(&peer, dk, dl, store_be64_get(d->ptr));
    chorus_free(dk);
  }
  if (bad != NULL || rc != CHORUS_OK) {
    repl__aae_key_list_free(&peer);
    if (rc != CHORUS_OK)
      return rc;
    exchange_abort(r, bad);
    return CHORUS_OK;
  }
  r->stats.aae_bytes_received += wire_encoded_size(m);
  bool pmore = m->aae_keys.more != 0, mmore = false;
  const uint8_t *upto = pmore && peer.n > 0 ? peer.k[peer.n - 1] : NULL;
  size_t ulen = upto ? peer.kl[peer.n - 1] : 0;
  if (pmore && peer.n == 0) {
    repl__aae_key_list_free(&peer);
    exchange_abort(r, "AAE_KEYS empty with more");
    return CHORUS_OK;
  }
  rc = repl__aae_list_keys(r, a->cls, kr, a->krn, a->after, a->alen, upto, ulen,
                           KEYS_PER_REQ, SIZE_MAX, &mine, &mmore);
  if (rc != CHORUS_OK) {
    repl__aae_key_list_free(&peer);
    repl__aae_key_list_free(&mine);
    exchange_abort(r, "local key list failed");
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
  }
  /* The span both lists cover: up to the last key of a list that stopped
   * at its bound (the smaller of two), else to the ranges' end. */
  const uint8_t *bound = NULL;
  size_t blen = 0;
  if (pmore) {
    bound = upto;
    blen = ulen;
  }
  if (mmore && mine.n > 0 &&
      (bound == NULL ||
       repl__aae_key_cmp(mine.k[mine.n - 1], mine.kl[mine.n - 1], bound, blen) <
           0)) {
    bound = mine.k[mine.n - 1];
    blen = mine.kl[mine.n - 1];
  }
  size_t i = 0, j = 0;
  while (rc == CHORUS_OK && (i < peer.n || j < mine.n)) {
    int c = i >= peer.n   ? 1
            : j >= mine.n ? -1
                          : repl__aae_key_cmp(peer.k[i], peer.kl[i], mine.k[j],
                                              mine.kl[j]);
    const uint8_t *k = c <= 0 ? peer.k[i] : mine.k[j];
    size_t kl = c <= 0 ? peer.kl[i] : mine.kl[j];
    if (bound != NULL && repl__aae_key_cmp(k, kl, bound, blen) > 0)
      break;
    a->keys++;
    r->stats.aae_keys_compared++;
    if (c < 0)
      rc = add_diff(r, k, kl, peer.d[i]);
    else if (c > 0)
      rc = add_diff(r, k, kl, 0);
    else if (peer.d[i] != mine.d[j])
      rc = add_diff(r, k, kl, peer.d[i]);
    i += c <= 0;
    j += c >= 0;
  }
  if (rc == CHORUS_OK && bound != NULL)
    rc = set_after(a, bound, blen);
  repl__aae_key_list_free(&peer);
  repl__aae_key_list_free(&mine);
  if (rc != CHORUS_OK)
    return rc;
  if (bound != NULL)
    return send_keys_req(r, fx); /* the same ranges, on from the bound */
  return next_keys(r, fx);
}

/* ------------------------------------------------------------------------
 * The exchange: repairs
 * ------------------------------------------------------------------------ */

/* Sends a repair to the peer as a durable REPLICA_WRITE whose
 * acknowledgement the exchange waits for (a push slot; a free one always
 * exists: pushes, fetches and held objects together stay within the
 * window). */
static int send_obj(struct repl *r, const struct repl_effects *fx,
                    const uint8_t *dkey, size_t dlen, const void *obj,
                    size_t len) {
  struct repl_aae *a = &r->aae;
  size_t s = 0;
  while (s < REPL_AAE_WINDOW && a->push[s] != 0)
    s++;
  assert(s < REPL_AAE_WINDOW);
  uint64_t id = repl__aae_new_id(r);
  struct wire_msg m;
  repl__msg_replica_write(&m, id, store_be64_get(dkey),
                          dkey + STORE_TOKEN_PREFIX, dlen - STORE_TOKEN_PREFIX,
                          obj, len, WIRE_REPLICA_DURABLE,
                          ring_snapshot_version(r->ring));
  if (!repl__fits_peer(&m)) {
    r->stats.unsent++;
    return CHORUS_OK;
  }
  a->bytes_tokens -= (double)len;
  a->bytes += len;
  struct repl_aae_range *g = range_of(r, dkey);
  if (g != NULL)
    g->bytes_sent += len;
  a->push[s] = id;
  int rc = repl__aae_send(r, fx, a->peer, &m);
  return rc == CHORUS_OK ? repl__aae_arm(fx, id, r->cfg.timeout_ms) : rc;
}

/* The number of fetches, pushes and held objects of the exchange. */
static size_t in_flight(const struct repl_aae *a) {
  size_t n = a->nheld;
  for (size_t s = 0; s < REPL_AAE_WINDOW; s++)
    n += (a->fetch[s] != 0) + (a->push[s] != 0);
  return n;
}

/* Sends this node's object of diff @di to the peer when it has one that
 * differs from @theirs: at once when everything written is durable, else
 * held for a barrier (NOTHING NON-DURABLE LEAVES A NODE); *@sent says
 * whether it goes. */
static int push_local(struct repl *r, const struct repl_effects *fx, size_t di,
                      const void *theirs, size_t tlen, bool *sent) {
  struct repl_aae *a = &r->aae;
  const struct repl_aae_diff *d = &a->diff[di];
  *sent = false;
  void *buf;
  size_t len;
  int rc =
      repl__load_bytes(r, store_be64_get(d->dkey), d->dkey + STORE_TOKEN_PREFIX,
                       d->dlen - STORE_TOKEN_PREFIX, &buf, &len);
  if (rc != CHORUS_OK || len == 0 ||
      (len == tlen && memcmp(buf, theirs, len) == 0)) {
    chorus_free(buf);
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
  }
  *sent = true;
  if (repl__all_durable(r)) {
    rc = send_obj(r, fx, d->dkey, d->dlen, buf, len);
    chorus_free(buf);
    return rc;
  }
  assert(a->nheld < REPL_AAE_WINDOW);
  chorus_seq seq = store_last_seq(r->store);
  a->held[a->nheld++] = (struct repl_aae_push){buf, len, di, seq};
  if (a->barrier != 0)
    return CHORUS_OK; /* the next barrier, once this one ends */
  a->barrier = repl__aae_new_id(r);
  a->barrier_seq = seq;
  return fx->sync(fx->ctx, seq, a->barrier);
}

bool repl__aae_barrier(struct repl *r, uint64_t token, int status,
                       chorus_ms now, const struct repl_effects *fx, int *rc) {
  struct repl_aae *a = &r->aae;
  *rc = CHORUS_OK;
  if (token == 0 || token != a->barrier || a->phase != REPL_AAE_REPAIR)
    return false;
  a->barrier = 0;
  if (status != CHORUS_OK) {
    exchange_abort(r, "a barrier failed");
    return true;
  }
  size_t w = 0;
  chorus_seq next = 0;
  for (size_t i = 0; i < a->nheld; i++) {
    struct repl_aae_push *p = &a->held[i];
    if (p->seq <= a->barrier_seq) {
      const struct repl_aae_diff *d = &a->diff[p->diff];
      if (*rc == CHORUS_OK)
        *rc = send_obj(r, fx, d->dkey, d->dlen, p->obj, p->len);
      chorus_free(p->obj);
    } else {
      next = p->seq > next ? p->seq : next;
      a->held[w++] = *p;
    }
  }
  a->nheld = w;
  if (*rc == CHORUS_OK && w > 0) {
    a->barrier = repl__aae_new_id(r);
    a->barrier_seq = next;
    *rc = fx->sync(fx->ctx, next, a->barrier);
  }
  if (*rc == CHORUS_OK)
    *rc = pump(r, now, fx);
  return true;
}

static void refill(struct repl *r, chorus_ms now) {
  struct repl_aae *a = &r->aae;
  double kps =
      r->cfg.aae_keys_per_sec ? r->cfg.aae_keys_per_sec : DEFAULT_KEYS_PER_SEC;
  double bps = r->cfg.aae_bytes_per_sec ? (double)r->cfg.aae_bytes_per_sec
                                        : (double)DEFAULT_BYTES_PER_SEC;
  if (now > a->refilled) {
    double s = (double)(now - a->refilled) / 1000.0;
    a->keys_tokens += s * kps;
    a->bytes_tokens += s * bps;
    a->refilled = now;
  }
  /* At most a second's worth, and at least one key to start with. */
  if (a->keys_tokens > kps)
    a->keys_tokens = kps;
  if (a->bytes_tokens > bps)
    a->bytes_tokens = bps;
}

static int pump(struct repl *r, chorus_ms now, const struct repl_effects *fx) {
  struct repl_aae *a = &r->aae;
  refill(r, now);
  int rc = CHORUS_OK;
  size_t inflight = in_flight(a);
  while (rc == CHORUS_OK && a->dpos < a->ndiff && inflight < REPL_AAE_WINDOW) {
    if (a->keys_tokens < 1.0 || a->bytes_tokens < 0) {
      /* Throttled: on when the buckets have refilled enough. */
      double kps = r->cfg.aae_keys_per_sec ? r->cfg.aae_keys_per_sec
                                           : DEFAULT_KEYS_PER_SEC;
      double bps = r->cfg.aae_bytes_per_sec ? (double)r->cfg.aae_bytes_per_sec
                                            : (double)DEFAULT_BYTES_PER_SEC;
      double wk = a->keys_tokens < 1.0 ? (1.0 - a->keys_tokens) / kps : 0;
      double wb = a->bytes_tokens < 0 ? -a->bytes_tokens / bps : 0;
      chorus_ms after = (chorus_ms)(1000.0 * (wk > wb ? wk : wb)) + 1;
      if (a->wake == 0) {
        a->wake = repl__aae_new_id(r);
        rc = repl__aae_arm(fx, a->wake, after);
      }
      return rc;
    }
    a->keys_tokens -= 1.0;
    struct repl_aae_diff *d = &a->diff[a->dpos];
    if (d->remote == 0) {
      /* Only this node holds it: sent, if durable. */
      bool sent;
      rc = push_local(r, fx, a->dpos++, NULL, 0, &sent);
      a->repaired += sent;
      r->stats.aae_keys_repaired += sent;
      struct repl_aae_range *g = range_of(r, d->dkey);
      if (g != NULL)
        g->keys_repaired += sent;
      inflight = in_flight(a);
      continue;
    }
    size_t s = 0;
    while (a->fetch[s] != 0)
      s++;
    a->fetch[s] = repl__aae_new_id(r);
    a->fetch_diff[s] = a->dpos++;
    struct wire_msg m = {.type = WIRE_REPLICA_READ, .request_id = a->fetch[s]};
    m.replica_read.token = store_be64_get(d->dkey);
    m.replica_read.key = (struct wire_bytes){d->dkey + STORE_TOKEN_PREFIX,
                                             d->dlen - STORE_TOKEN_PREFIX};
    rc = repl__aae_send(r, fx, a->peer, &m);
    if (rc == CHORUS_OK)
      rc = repl__aae_arm(fx, a->fetch[s], r->cfg.timeout_ms);
    inflight++;
  }
  if (rc == CHORUS_OK && a->dpos >= a->ndiff && inflight == 0 &&
      a->barrier == 0)
    rc = exchange_complete(r, now);
  return rc;
}

/* A fetched object: joined here, and our join sent back if it differs. */
static int on_fetched(struct repl *r, size_t slot, const struct wire_msg *m,
                      chorus_ms now, const struct repl_effects *fx) {
  struct repl_aae *a = &r->aae;
  struct repl_aae_diff *d = &a->diff[a->fetch_diff[slot]];
  a->fetch[slot] = 0;
  if (m->type != WIRE_REPLICA_READ_REPLY) {
    exchange_abort(r, m->type == WIRE_ERROR ? "the peer refused a read"
                                            : "unexpected answer");
    return CHORUS_OK;
  }
  const struct wire_bytes *o = &m->replica_read_reply.object;
  r->stats.aae_bytes_received += wire_encoded_size(m);
  a->bytes += o->len;
  a->bytes_tokens -= (double)o->len;
  struct repl_aae_range *g = range_of(r, d->dkey);
  if (g != NULL)
    g->bytes_received += o->len;
  chorus_token tok = store_be64_get(d->dkey);
  const uint8_t *key = d->dkey + STORE_TOKEN_PREFIX;
  size_t klen = d->dlen - STORE_TOKEN_PREFIX;
  bool changed = false;
  if (o->len > 0) {
    void *old;
    size_t olen;
    int rc = repl__load_bytes(r, tok, key, klen, &old, &olen);
    if (rc == CHORUS_OK)
      rc = repl__join_into_store(r, tok, key, klen, o->ptr, o->len);
    if (rc == CHORUS_OK) {
      void *now_b;
      size_t nlen;
      rc = repl__load_bytes(r, tok, key, klen, &now_b, &nlen);
      if (rc == CHORUS_OK)
        changed = nlen != olen || (nlen > 0 && memcmp(now_b, old, nlen) != 0);
      chorus_free(now_b);
    }
    chorus_free(old);
    if (rc == CHORUS_ENOMEM)
      return rc;
    if (rc == CHORUS_ECLOCK) {
      /* A register stamped too far ahead of our clock (repl.h, THE CLOCK
       * BOUND OF LWW REGISTERS): this key waits for a later exchange, the
       * rest of the exchange goes on. */
      REPL_TRACE(r, "aae: fetched object not joined: %s", r->err);
      return pump(r, now, fx);
    }
    if (rc != CHORUS_OK) {
      REPL_TRACE(r, "aae: join of a fetched object failed: %s",
                 chorus_errname(rc));
      exchange_abort(r, "a join failed");
      return CHORUS_OK;
    }
  }
  bool sent;
  int rc = push_local(r, fx, a->fetch_diff[slot], o->ptr, o->len, &sent);
  if (rc != CHORUS_OK)
    return rc;
  if (changed || sent) {
    a->repaired++;
    r->stats.aae_keys_repaired++;
    if (g != NULL)
      g->keys_repaired++;
  }
  return pump(r, now, fx);
}

bool repl__aae_answer(struct repl *r, chorus_node_id from,
                      const struct wire_msg *m, chorus_ms now, chorus_ms wall,
                      const struct repl_effects *fx, int *rc) {
  struct repl_aae *a = &r->aae;
  (void)wall;
  *rc = CHORUS_OK;
  if (a->phase == REPL_AAE_IDLE || from != a->peer || m->request_id == 0)
    return false;
  if (m->request_id == a->awaited) {
    if (ring_snapshot_version(r->ring) != a->epoch || r->trees_map != a->map) {
      exchange_abort(r, "the ring changed");
      return true;
    }
    if (m->type == WIRE_ERROR) {
      REPL_TRACE(r, "aae: %016" PRIx64 " refused: %s (%.*s)", from,
                 chorus_errname(m->error.code), (int)m->error.text.len,
                 (const char *)m->error.text.ptr);
      exchange_abort(r, "the peer refused");
    } else if (m->type == WIRE_AAE_TREE && (a->phase == REPL_AAE_BRANCHES ||
                                            a->phase == REPL_AAE_SEGMENTS)) {
      r->stats.aae_bytes_received += wire_encoded_size(m);
      *rc = on_tree(r, m, fx);
    } else if (m->type == WIRE_AAE_KEYS && a->phase == REPL_AAE_KEYS) {
      *rc = on_keys(r, m, fx);
    } else {
      exchange_abort(r, "unexpected answer");
    }
    return true;
  }
  for (size_t s = 0; s < REPL_AAE_WINDOW; s++) {
    if (a->fetch[s] == m->request_id && a->phase == REPL_AAE_REPAIR) {
      *rc = on_fetched(r, s, m, now, fx);
      return true;
    }
    if (a->push[s] == m->request_id && a->phase == REPL_AAE_REPAIR) {
      a->push[s] = 0;
      if (m->type != WIRE_REPLICA_ACK || m->replica_ack.status != CHORUS_OK)
        exchange_abort(r, "the peer did not take a repair");
      else
        *rc = pump(r, now, fx);
      return true;
    }
  }
  return false;
}

int repl__aae_timer(struct repl *r, uint64_t id, chorus_ms now, chorus_ms wall,
                    const struct repl_effects *fx) {
  struct repl_aae *a = &r->aae;
  (void)wall;
  if (a->phase == REPL_AAE_IDLE || id == 0)
    return CHORUS_OK;
  if (id == a->wake) {
    a->wake = 0;
    return a->phase == REPL_AAE_REPAIR ? pump(r, now, fx) : CHORUS_OK;
  }
  bool ours = id == a->awaited;
  for (size_t s = 0; s < REPL_AAE_WINDOW; s++)
    ours |= a->fetch[s] == id || a->push[s] == id;
  if (ours)
    exchange_abort(r, "timed out");
  return CHORUS_OK;
}

void repl__aae_member(struct repl *r, chorus_node_id node, bool alive) {
  if (!alive && r->aae.phase != REPL_AAE_IDLE && r->aae.peer == node)
    exchange_abort(r, "the peer is down");
}
