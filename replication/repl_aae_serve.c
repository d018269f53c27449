/* repl_aae_serve.c: anti-entropy's shared parts and the peer's side
 * (repl.h, ANTI-ENTROPY; the exchange itself, this node initiating, is
 * repl_aae.c): interval and key-list helpers, the tree's upkeep, the per
 * peer record, the answers to AAE_TREE_REQ and AAE_KEYS_REQ, and what the
 * tombstone collector and `repair status` read. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_aae_int.h"

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

uint64_t repl__aae_new_id(struct repl *r) {
  return (r->epoch << REPL_OP_COUNTER_BITS) | (++r->next_op);
}

int repl__aae_send(struct repl *r, const struct repl_effects *fx,
                   chorus_node_id to, const struct wire_msg *m) {
  r->stats.aae_bytes_sent += wire_encoded_size(m);
  return fx->send(fx->ctx, to, m);
}

int repl__aae_arm(const struct repl_effects *fx, uint64_t id, chorus_ms after) {
  return fx->timer(fx->ctx, (REPL_TIMER_AAE << REPL_TIMER_KIND_SHIFT) | id,
                   after);
}

int repl__aae_push_iv(struct repl_aae_iv **v, size_t *n, size_t *cap,
                      chorus_token first, chorus_token last) {
  if (*n > 0 && (*v)[*n - 1].last != UINT64_MAX &&
      (*v)[*n - 1].last + 1 == first) {
    (*v)[*n - 1].last = last; /* adjacent: merged */
    return CHORUS_OK;
  }
  struct repl_aae_iv *p = chorus_grow(*v, cap, *n, sizeof *p, 16);
  if (p == NULL)
    return CHORUS_ENOMEM;
  *v = p;
  p[(*n)++] = (struct repl_aae_iv){first, last};
  return CHORUS_OK;
}

int repl__aae_iv_cmp(const void *a, const void *b) {
  const struct repl_aae_iv *x = a, *y = b;
  return x->first < y->first ? -1 : x->first > y->first;
}

/* Whether [first, last] lies inside one of @iv's (sorted, disjoint). */
bool repl__aae_inside(const struct repl_aae_iv *iv, size_t n,
                      chorus_token first, chorus_token last) {
  size_t lo = 0, hi = n;
  while (lo < hi) { /* the first interval ending at or after @first */
    size_t mid = lo + (hi - lo) / 2;
    if (iv[mid].last < first)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && iv[lo].first <= first && last <= iv[lo].last;
}

/* Parses a bin of 16-byte [first BE][last BE] intervals: sorted, disjoint,
 * first <= last, 1..WIRE_AAE_MAX_INTERVALS of them. */
int repl__aae_parse_ivs(const struct wire_bytes *b, struct repl_aae_iv **out,
                        size_t *n) {
  *out = NULL;
  *n = 0;
  if (b->len == 0 || b->len % 16 != 0 || b->len / 16 > WIRE_AAE_MAX_INTERVALS)
    return CHORUS_EMALFORMED;
  size_t k = b->len / 16;
  struct repl_aae_iv *v = chorus_malloc(k * sizeof *v);
  if (v == NULL)
    return CHORUS_ENOMEM;
  for (size_t i = 0; i < k; i++) {
    v[i].first = store_be64_get(b->ptr + 16 * i);
    v[i].last = store_be64_get(b->ptr + 16 * i + 8);
    if (v[i].first > v[i].last || (i > 0 && v[i - 1].last >= v[i].first)) {
      chorus_free(v);
      return CHORUS_EMALFORMED;
    }
  }
  *out = v;
  *n = k;
  return CHORUS_OK;
}

uint8_t *repl__aae_encode_ivs(const struct repl_aae_iv *iv, size_t n) {
  uint8_t *b = chorus_malloc(16 * n);
  if (b != NULL)
    for (size_t i = 0; i < n; i++) {
      store_be64_put(b + 16 * i, iv[i].first);
      store_be64_put(b + 16 * i + 8, iv[i].last);
    }
  return b;
}

int repl__aae_key_cmp(const uint8_t *a, size_t al, const uint8_t *b,
                      size_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  return c != 0 ? c : (al < bl ? -1 : al > bl);
}

/* ------------------------------------------------------------------------
 * Key lists: the (storage key, digest) pairs of intervals after a cursor
 * ------------------------------------------------------------------------ */

void repl__aae_key_list_free(struct key_list *l) {
  for (size_t i = 0; i < l->n; i++)
    chorus_free(l->k[i]);
  chorus_free(l->k);
  chorus_free(l->kl);
  chorus_free(l->d);
  *l = (struct key_list){0};
}

int repl__aae_key_list_add(struct key_list *l, const uint8_t *k, size_t kl,
                           uint64_t d) {
  if (l->n == l->cap) {
    size_t c = l->cap ? 2 * l->cap : 64;
    uint8_t **nk = chorus_realloc(l->k, c * sizeof *nk);
    if (nk == NULL)
      return CHORUS_ENOMEM;
    l->k = nk;
    size_t *nl = chorus_realloc(l->kl, c * sizeof *nl);
    if (nl == NULL)
      return CHORUS_ENOMEM;
    l->kl = nl;
    uint64_t *nd = chorus_realloc(l->d, c * sizeof *nd);
    if (nd == NULL)
      return CHORUS_ENOMEM;
    l->d = nd;
    l->cap = c;
  }
  uint8_t *copy = chorus_malloc(kl);
  if (copy == NULL)
    return CHORUS_ENOMEM;
  memcpy(copy, k, kl);
  l->k[l->n] = copy;
  l->kl[l->n] = kl;
  l->d[l->n] = d;
  l->n++;
  l->bytes += kl + 8;
  return CHORUS_OK;
}

/* list_keys: the keys of class @cls in @iv sorting after @after (none:
 * from the start), and at most @upto when not NULL, into @l until @max keys
 * or @max_bytes; *@more when it stopped at a bound with keys left. One
 * iterator serves every interval, seeked to each: opening one costs more
 * than a seek (RocksDB builds the memtable's view each time: a thousand
 * opens took seconds). The keys of other classes in the intervals are
 * read and skipped (classes interleave by token): the intervals listed are
 * differing segments and the parts of cut ones, small spans. */
int repl__aae_list_keys(struct repl *r, unsigned cls,
                        const struct repl_aae_iv *iv, size_t n,
                        const uint8_t *after, size_t alen, const uint8_t *upto,
                        size_t ulen, size_t max, size_t max_bytes,
                        struct key_list *l, bool *more) {
  *more = false;
  if (n == 0)
    return CHORUS_OK;
  uint8_t lo[STORE_TOKEN_PREFIX], hi[STORE_TOKEN_PREFIX];
  store_be64_put(lo, iv[0].first);
  store_be64_put(hi, iv[n - 1].last + 1);
  struct store_iter *it;
  int rc =
      store_iter_open(r->store, STORE_DATA, lo, sizeof lo,
                      iv[n - 1].last == UINT64_MAX ? NULL : hi, sizeof hi, &it);
  if (rc != CHORUS_OK)
    return rc;
  bool done = false;
  for (size_t i = 0; i < n && !done; i++) {
    store_be64_put(lo, iv[i].first);
    const uint8_t *from = lo;
    size_t flen = sizeof lo;
    if (alen > 0 && repl__aae_key_cmp(after, alen, lo, sizeof lo) > 0) {
      if (alen >= STORE_TOKEN_PREFIX && store_be64_get(after) > iv[i].last)
        continue; /* the cursor is past this interval */
      from = after;
      flen = alen;
    }
    store_iter_seek(it, from, flen);
    for (; store_iter_valid(it); store_iter_next(it)) {
      size_t kl, vl;
      const uint8_t *k = store_iter_key(it, &kl);
      if (kl < STORE_TOKEN_PREFIX)
        continue;
      if (store_be64_get(k) > iv[i].last)
        break; /* the next interval seeks on */
      if (alen > 0 && repl__aae_key_cmp(k, kl, after, alen) <= 0)
        continue;
      if (upto != NULL && repl__aae_key_cmp(k, kl, upto, ulen) > 0) {
        done = true; /* past the bound: done with every interval */
        break;
      }
      if (repl__aae_class_of(r, k, kl) != cls)
        continue; /* another class's: its own exchanges */
      if (l->n >= max || l->bytes >= max_bytes) {
        *more = true;
        done = true;
        break;
      }
      const void *v = store_iter_value(it, &vl);
      if (repl__gc_purgeable(r, k, kl, v, vl))
        continue; /* as good as purged: every replica holds it */
      if ((rc = repl__aae_key_list_add(l, k, kl, aae_digest(v, vl))) !=
          CHORUS_OK) {
        done = true;
        break;
      }
    }
    if (rc == CHORUS_OK)
      rc = store_iter_status(it);
    done |= rc != CHORUS_OK;
  }
  store_iter_close(it);
  return rc;
}

/* ------------------------------------------------------------------------
 * The tree's upkeep
 * ------------------------------------------------------------------------ */

unsigned repl__aae_class_of(const struct repl *r, const uint8_t *dkey,
                            size_t dlen) {
  if (r->ring == NULL || dlen <= STORE_TOKEN_PREFIX)
    return 0;
  /* A dropped keyspace's key is in no tree: nobody replicates it, and
   * cleanup deletes it (repl_cleanup.c, DROPPED KEYSPACES). */
  if (ring_key_dropped(r->ring, dkey + STORE_TOKEN_PREFIX,
                       dlen - STORE_TOKEN_PREFIX))
    return REPL_AAE_NO_CLASS;
  return ring_key_class(r->ring, dkey + STORE_TOKEN_PREFIX,
                        dlen - STORE_TOKEN_PREFIX);
}

void repl__aae_note(struct repl *r, const void *dkey, size_t dlen, uint64_t old,
                    uint64_t new) {
  unsigned c = repl__aae_class_of(r, dkey, dlen);
  if (c < r->ntrees)
    aae_tree_update(&r->trees[c], dkey, dlen, old, new);
}

static void trees_stale(struct repl *r) {
  for (unsigned c = 0; c < r->ntrees; c++)
    aae_tree_mark_stale(&r->trees[c]);
}

void repl__aae_ring_set(struct repl *r) {
  uint64_t map = ring_snapshot_class_map(r->ring);
  if (map == r->trees_map)
    return;
  /* Keys changed class, or classes changed index: every tree is rebuilt
   * (keyspaces are created and dropped rarely; one scan refills all). */
  if (r->ntrees > 0 && r->trees[0].state != AAE_TREE_STALE)
    REPL_TRACE(r, "aae: replication classes changed (%u now); trees rebuilt",
               ring_snapshot_class_count(r->ring));
  trees_stale(r);
  r->trees_map = map;
  /* Exchanges before the change compared keys by their old classes:
   * none counts for the tombstone collector any more (their figures
   * stay). */
  for (size_t i = 0; i < r->aae.npeers; i++) {
    chorus_free(r->aae.peers[i].iv);
    r->aae.peers[i].iv = NULL;
    r->aae.peers[i].niv = 0;
  }
}

void repl__aae_stale(struct repl *r) {
  if (r->ntrees > 0 && r->trees[0].state != AAE_TREE_STALE)
    REPL_TRACE(r, "aae: trees stale (a write they could not follow); rebuilt");
  trees_stale(r);
}

bool repl_aae_built(const struct repl *r) {
  if (r->ring == NULL || r->ntrees != ring_snapshot_class_count(r->ring))
    return false;
  for (unsigned c = 0; c < r->ntrees; c++)
    if (!aae_tree_built(&r->trees[c]))
      return false;
  return true;
}

/* Makes the trees one per class of the current ring (the new ones stale,
 * as are all then). Errors: CHORUS_ENOMEM. */
static int trees_fit(struct repl *r) {
  unsigned want = ring_snapshot_class_count(r->ring);
  if (r->ntrees == want)
    return CHORUS_OK;
  while (r->ntrees > want)
    aae_tree_free(&r->trees[--r->ntrees]);
  while (r->ntrees < want) {
    int rc = aae_tree_init(&r->trees[r->ntrees], r->trees[0].bits);
    if (rc != CHORUS_OK)
      return rc;
    r->ntrees++;
  }
  trees_stale(r);
  return CHORUS_OK;
}

int repl_aae_rebuild_step(struct repl *r, size_t budget, bool *built) {
  *built = repl_aae_built(r);
  if (*built)
    return CHORUS_OK;
  int rc = trees_fit(r);
  if (rc != CHORUS_OK)
    return rc;
  /* The trees are rebuilt together by one scan of the data space (an
   * iterator a step, as before classes: a scan per class would multiply
   * the opens): each key goes to its class's tree, and at the step's end
   * every tree's cursor moves to the last key read, so that a write the
   * scan has passed updates its tree whichever class it is of. A tree
   * left stale (a failed write, a class added) restarts them all. */
  bool begin = false;
  for (unsigned c = 0; c < r->ntrees; c++)
    begin |= r->trees[c].state != AAE_TREE_BUILDING;
  if (begin)
    for (unsigned c = 0; c < r->ntrees; c++)
      aae_tree_rebuild_begin(&r->trees[c]);
  struct aae_tree *t0 = &r->trees[0];
  if (budget == 0)
    budget = REBUILD_DEFAULT_KEYS;
  /* The bound is copied: the cursors move as keys are added. */
  uint8_t *lo = NULL;
  size_t lolen = t0->clen;
  if (lolen > 0) {
    if ((lo = chorus_malloc(lolen)) == NULL)
      return CHORUS_ENOMEM;
    memcpy(lo, t0->cursor, lolen);
  }
  struct store_iter *it;
  rc = store_iter_open(r->store, STORE_DATA, lo, lolen, NULL, 0, &it);
  if (rc != CHORUS_OK) {
    chorus_free(lo);
    return rc;
  }
  size_t seen = 0;
  const uint8_t *last = NULL;
  size_t lastlen = 0;
  unsigned lastc = 0;
  for (; store_iter_valid(it) && seen < budget; store_iter_next(it)) {
    size_t kl, vl;
    const uint8_t *k = store_iter_key(it, &kl);
    if (lolen > 0 && kl == lolen && memcmp(k, lo, kl) == 0)
      continue;
    const void *v = store_iter_value(it, &vl);
    unsigned c = repl__aae_class_of(r, k, kl);
    if (c < r->ntrees &&
        (rc = aae_tree_rebuild_add(&r->trees[c], k, kl, aae_digest(v, vl))) !=
            CHORUS_OK)
      break;
    last = k;
    lastlen = kl;
    lastc = c;
    seen++;
  }
  /* The other trees' cursors to the last key read (a digest of 0 adds
   * nothing); the key stays valid until the iterator moves. */
  for (unsigned c = 0; c < r->ntrees && rc == CHORUS_OK && last != NULL; c++)
    if (c != lastc)
      rc = aae_tree_rebuild_add(&r->trees[c], last, lastlen, 0);
  bool end = rc == CHORUS_OK && !store_iter_valid(it);
  if (rc == CHORUS_OK)
    rc = store_iter_status(it);
  store_iter_close(it);
  chorus_free(lo);
  if (rc != CHORUS_OK) {
    trees_stale(r);
    return rc;
  }
  uint64_t keys = 0;
  for (unsigned c = 0; c < r->ntrees; c++) {
    if (end)
      aae_tree_rebuild_end(&r->trees[c]);
    keys += r->trees[c].keys;
  }
  if (end) {
    r->stats.aae_rebuilds++;
    REPL_TRACE(r, "aae: trees built, %" PRIu64 " objects in %u classes", keys,
               r->ntrees);
  }
  *built = repl_aae_built(r);
  r->stats.aae_tree_keys = keys;
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * Peers
 * ------------------------------------------------------------------------ */

struct repl_aae_peer *repl__aae_peer(struct repl *r, chorus_node_id id,
                                     uint64_t tag, bool create) {
  struct repl_aae *a = &r->aae;
  size_t i = 0;
  while (i < a->npeers && (a->peers[i].id < id ||
                           (a->peers[i].id == id && a->peers[i].tag < tag)))
    i++;
  if (i < a->npeers && a->peers[i].id == id && a->peers[i].tag == tag)
    return &a->peers[i];
  if (!create)
    return NULL;
  struct repl_aae_peer *p =
      chorus_grow(a->peers, &a->cappeers, a->npeers, sizeof *p, 8);
  if (p == NULL)
    return NULL;
  a->peers = p;
  memmove(&p[i + 1], &p[i], (a->npeers - i) * sizeof *p);
  p[i] = (struct repl_aae_peer){.id = id, .tag = tag};
  a->npeers++;
  return &p[i];
}

void repl__aae_hint_dropped(struct repl *r, chorus_node_id target,
                            chorus_token token) {
  (void)token; /* every range shared with @target is exchanged */
  unsigned n = r->ring ? ring_snapshot_class_count(r->ring) : 1;
  for (unsigned c = 0; c < n; c++) { /* the hint's key's class is unknown */
    struct repl_aae_peer *p = repl__aae_peer(
        r, target, r->ring ? ring_snapshot_class_tag(r->ring, c) : 0, true);
    if (p != NULL)
      p->priority = true;
  }
}

/* Calls @fn with every range of @s, (previous token, token] as [first,
 * last] (first > last: it wraps), with its natural replicas; stops at an
 * error. A class's snapshot has the same tokens as the ring's: the ranges
 * are the same, their replicas those of the class. */
int repl__aae_each_range(const struct ring_snapshot *s,
                         int (*fn)(void *arg, chorus_token first,
                                   chorus_token last,
                                   const struct ring_plist *pl),
                         void *arg) {
  size_t n = s ? ring_snapshot_token_count(s) : 0;
  for (size_t i = 0; i < n; i++) {
    chorus_token tok = ring_snapshot_token(s, i, NULL);
    chorus_token prev = ring_snapshot_token(s, i > 0 ? i - 1 : n - 1, NULL);
    if (i > 0 && prev == tok)
      continue;
    struct ring_plist pl;
    if (ring_lookup(s, tok, 0, &pl) != CHORUS_OK)
      continue;
    /* One distinct token: the range is the whole ring. */
    int rc = fn(arg, prev + 1, tok, &pl);
    if (rc != CHORUS_OK)
      return rc;
  }
  return CHORUS_OK;
}

struct shared_ivs {
  const struct repl *r;
  chorus_node_id peer;
  struct repl_aae_iv *v;
  size_t n, cap;
};

static int add_shared(void *arg, chorus_token first, chorus_token last,
                      const struct ring_plist *pl) {
  struct shared_ivs *s = arg;
  bool me = false, him = false;
  for (unsigned j = 0; j < pl->n_natural; j++) {
    me |= pl->r[j].id == s->r->cfg.self;
    him |= pl->r[j].id == s->peer;
  }
  if (!me || !him)
    return CHORUS_OK;
  if (first <= last)
    return repl__aae_push_iv(&s->v, &s->n, &s->cap, first, last);
  /* It wraps: its two sides. */
  int rc = repl__aae_push_iv(&s->v, &s->n, &s->cap, first, UINT64_MAX);
  return rc == CHORUS_OK ? repl__aae_push_iv(&s->v, &s->n, &s->cap, 0, last)
                         : rc;
}

int repl__aae_shared_intervals(struct repl *r, unsigned cls,
                               chorus_node_id peer, struct repl_aae_iv **out,
                               size_t *nout) {
  *out = NULL;
  *nout = 0;
  struct shared_ivs s = {.r = r, .peer = peer};
  const struct ring_snapshot *cs =
      r->ring ? ring_snapshot_class(r->ring, cls) : NULL;
  int rc = cs ? repl__aae_each_range(cs, add_shared, &s) : CHORUS_OK;
  struct repl_aae_iv *v = s.v;
  size_t nv = s.n;
  if (rc != CHORUS_OK) {
    chorus_free(v);
    return rc;
  }
  if (nv > 1)
    qsort(v, nv, sizeof *v, repl__aae_iv_cmp);
  /* Merge what touches or overlaps (a one-token ring covers it all). */
  size_t m = 0;
  for (size_t i = 0; i < nv; i++) {
    if (m > 0 &&
        (v[m - 1].last == UINT64_MAX || v[m - 1].last + 1 >= v[i].first)) {
      if (v[i].last > v[m - 1].last)
        v[m - 1].last = v[i].last;
    } else {
      v[m++] = v[i];
    }
  }
  *out = v;
  *nout = m;
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * The peer's side
 * ------------------------------------------------------------------------ */

static int refuse(const struct repl_effects *fx, chorus_node_id to,
                  uint64_t req, int code, const char *why) {
  struct wire_msg e;
  wire_error_reply(&e, req, code, why);
  return fx->send(fx->ctx, to, &e);
}

/* served: whether this node serves @from intervals @iv (@niv) of class
 * @tag at the current ring: it knows the class (*@cls its index), and is a
 * natural replica in that class of every interval together with @from.
 * Else *@code and *@why say what to answer. Errors: CHORUS_ENOMEM. */
static int served(struct repl *r, chorus_node_id from, uint64_t tag,
                  uint64_t map, const struct repl_aae_iv *iv, size_t niv,
                  unsigned *cls, int *code, const char *why[1]) {
  struct repl_aae *a = &r->aae;
  *code = CHORUS_OK;
  if (map != r->trees_map) {
    /* The two class keys otherwise (a keyspace created or dropped that
     * one of them has not learnt yet; the epoch does not change): their
     * trees and lists would not compare. Later. */
    *code = CHORUS_ESTALE;
    *why = "replication classes differ";
    return CHORUS_OK;
  }
  int c = ring_snapshot_class_find(r->ring, tag);
  if (c < 0) {
    /* A class the asker's ring has and this one's not: their metadata
     * differ (the epochs matched otherwise); the asker tries later. */
    *code = CHORUS_ESTALE;
    *why = "unknown replication class";
    return CHORUS_OK;
  }
  *cls = (unsigned)c;
  uint64_t epoch = ring_snapshot_version(r->ring);
  struct repl_aae_served *sv = NULL;
  for (unsigned i = 0; i < REPL_AAE_SERVED && sv == NULL; i++)
    if (a->sv[i].peer == from && a->sv[i].tag == tag && a->sv[i].epoch == epoch)
      sv = &a->sv[i];
  if (sv == NULL) {
    sv = &a->sv[a->sv_next++ % REPL_AAE_SERVED];
    chorus_free(sv->iv);
    *sv = (struct repl_aae_served){0};
    int rc =
        repl__aae_shared_intervals(r, (unsigned)c, from, &sv->iv, &sv->niv);
    if (rc != CHORUS_OK)
      return rc;
    sv->peer = from;
    sv->tag = tag;
    sv->epoch = epoch;
  }
  for (size_t i = 0; i < niv; i++)
    if (!repl__aae_inside(sv->iv, sv->niv, iv[i].first, iv[i].last)) {
      *code = CHORUS_EINVAL;
      *why = "not replicas together of these intervals in this class";
      return CHORUS_OK;
    }
  return CHORUS_OK;
}

/* admit: served(), and when not, the refusal sent to @from (a @what of
 * request @req), @iv freed and *@refused set. Errors: CHORUS_ENOMEM (@iv
 * freed), the send's. */
static int admit(struct repl *r, const struct repl_effects *fx,
                 chorus_node_id from, uint64_t req, const char *what,
                 uint64_t tag, uint64_t map, struct repl_aae_iv *iv, size_t niv,
                 unsigned *cls, bool *refused) {
  int code;
  const char *why = NULL;
  int rc = served(r, from, tag, map, iv, niv, cls, &code, &why);
  *refused = rc != CHORUS_OK || code != CHORUS_OK;
  if (!*refused)
    return CHORUS_OK;
  chorus_free(iv);
  if (rc != CHORUS_OK)
    return rc;
  REPL_TRACE(r,
             "aae: %s from %016" PRIx64 " of class %016" PRIx64 " refused: %s",
             what, from, tag, why);
  return refuse(fx, from, req, code, why);
}

int repl__aae_on_tree_req(struct repl *r, chorus_node_id from,
                          const struct wire_msg *m,
                          const struct repl_effects *fx) {
  const struct wire_aae_tree_req *q = &m->aae_tree_req;
  r->stats.aae_bytes_received += wire_encoded_size(m);
  if (q->epoch != ring_snapshot_version(r->ring))
    return refuse(fx, from, m->request_id, CHORUS_ESTALE, "ring epochs differ");
  if (q->bits != r->trees[0].bits)
    return refuse(fx, from, m->request_id, CHORUS_EINVAL,
                  "tree sizes differ (aae bits)");
  if (!repl_aae_built(r))
    return refuse(fx, from, m->request_id, CHORUS_EUNAVAILABLE,
                  "tree not built yet");
  struct repl_aae_iv *iv;
  size_t niv;
  int rc = repl__aae_parse_ivs(&q->intervals, &iv, &niv);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK || q->ids.len % 4 != 0 ||
      q->ids.len / 4 > WIRE_AAE_MAX_IDS || q->level > 1) {
    chorus_free(iv);
    REPL_TRACE(r, "aae: malformed AAE_TREE_REQ from %016" PRIx64, from);
    return refuse(fx, from, m->request_id, CHORUS_EMALFORMED,
                  "malformed AAE_TREE_REQ");
  }
  unsigned cls = 0;
  bool refused;
  rc = admit(r, fx, from, m->request_id, "AAE_TREE_REQ", q->class_tag,
             q->class_map, iv, niv, &cls, &refused);
  if (refused)
    return rc;
  const struct aae_tree *t = &r->trees[cls];
  size_t n = q->ids.len / 4;
  unsigned bits = q->level == 0 ? t->branch_bits : t->bits;
  uint8_t *hb = chorus_malloc(8 * n + 1);
  if (hb == NULL) {
    chorus_free(iv);
    return CHORUS_ENOMEM;
  }
  bool ok = true;
  for (size_t i = 0; i < n && ok; i++) {
    const uint8_t *p = q->ids.ptr + 4 * i;
    uint32_t id = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                  (uint32_t)p[2] << 8 | p[3];
    ok = id < (1u << bits) &&
         repl__aae_inside(iv, niv, aae_tree_segment_first(bits, id),
                          aae_tree_segment_last(bits, id));
    if (ok)
      store_be64_put(hb + 8 * i, q->level == 0 ? aae_tree_branch(t, id)
                                               : aae_tree_leaf(t, id));
  }
  chorus_free(iv);
  if (!ok) {
    chorus_free(hb);
    REPL_TRACE(r, "aae: AAE_TREE_REQ from %016" PRIx64 " out of range", from);
    return refuse(fx, from, m->request_id, CHORUS_EMALFORMED,
                  "tree entry outside the intervals");
  }
  struct wire_msg a = {.type = WIRE_AAE_TREE, .request_id = m->request_id};
  a.aae_tree.hashes = (struct wire_bytes){hb, 8 * n};
  rc = repl__aae_send(r, fx, from, &a);
  chorus_free(hb);
  return rc;
}

int repl__aae_on_keys_req(struct repl *r, chorus_node_id from,
                          const struct wire_msg *m,
                          const struct repl_effects *fx) {
  const struct wire_aae_keys_req *q = &m->aae_keys_req;
  r->stats.aae_bytes_received += wire_encoded_size(m);
  if (q->epoch != ring_snapshot_version(r->ring))
    return refuse(fx, from, m->request_id, CHORUS_ESTALE, "ring epochs differ");
  struct repl_aae_iv *iv;
  size_t niv;
  int rc = repl__aae_parse_ivs(&q->intervals, &iv, &niv);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK || q->max_keys == 0 || q->max_keys > WIRE_AAE_MAX_KEYS ||
      (q->after.len > 0 && q->after.len < STORE_TOKEN_PREFIX)) {
    chorus_free(iv);
    REPL_TRACE(r, "aae: malformed AAE_KEYS_REQ from %016" PRIx64, from);
    return refuse(fx, from, m->request_id, CHORUS_EMALFORMED,
                  "malformed AAE_KEYS_REQ");
  }
  unsigned cls = 0;
  bool refused;
  rc = admit(r, fx, from, m->request_id, "AAE_KEYS_REQ", q->class_tag,
             q->class_map, iv, niv, &cls, &refused);
  if (refused)
    return rc;
  struct key_list l = {0};
  bool more;
  rc = repl__aae_list_keys(r, cls, iv, niv, q->after.ptr, q->after.len, NULL, 0,
                           q->max_keys, KEYS_REPLY_BYTES, &l, &more);
  chorus_free(iv);
  struct wire_bytes *items =
      rc == CHORUS_OK ? chorus_malloc((2 * l.n + 1) * sizeof *items) : NULL;
  uint8_t *digests = rc == CHORUS_OK ? chorus_malloc(8 * l.n + 1) : NULL;
  if (rc == CHORUS_OK && (items == NULL || digests == NULL))
    rc = CHORUS_ENOMEM;
  if (rc == CHORUS_OK) {
    for (size_t i = 0; i < l.n; i++) {
      store_be64_put(digests + 8 * i, l.d[i]);
      items[2 * i] = (struct wire_bytes){l.k[i] + STORE_TOKEN_PREFIX,
                                         l.kl[i] - STORE_TOKEN_PREFIX};
      items[2 * i + 1] = (struct wire_bytes){digests + 8 * i, 8};
    }
    struct wire_msg a = {.type = WIRE_AAE_KEYS, .request_id = m->request_id};
    a.aae_keys.entries = (struct wire_bytes_list){2 * l.n, items};
    a.aae_keys.more = more;
    rc = repl__aae_send(r, fx, from, &a);
  } else if (rc != CHORUS_ENOMEM) {
    rc = refuse(fx, from, m->request_id, rc, "listing keys failed");
  }
  chorus_free(items);
  chorus_free(digests);
  repl__aae_key_list_free(&l);
  return rc;
}

/* ------------------------------------------------------------------------
 * Observation
 * ------------------------------------------------------------------------ */

chorus_ms repl__aae_oldest_repair(const struct repl *r, unsigned cls,
                                  chorus_token token, bool mono) {
  struct ring_plist pl;
  const struct ring_snapshot *cs =
      r->ring ? ring_snapshot_class(r->ring, cls) : NULL;
  if (cs == NULL || ring_lookup(cs, token, 0, &pl) != CHORUS_OK ||
      pl.n_natural == 0)
    return 0;
  uint64_t tag = ring_snapshot_class_tag(r->ring, cls);
  chorus_ms oldest = UINT64_MAX;
  for (unsigned i = 0; i < pl.n_natural; i++) {
    if (pl.r[i].id == r->cfg.self)
      continue;
    const struct repl_aae_peer *p = NULL;
    for (size_t j = 0; j < r->aae.npeers; j++)
      if (r->aae.peers[j].id == pl.r[i].id && r->aae.peers[j].tag == tag)
        p = &r->aae.peers[j];
    if (p == NULL || p->exchanges == 0 ||
        !repl__aae_inside(p->iv, p->niv, token, token))
      return 0;
    chorus_ms at = mono ? p->last_started_mono : p->last_started;
    if (at < oldest)
      oldest = at;
  }
  return oldest;
}

chorus_ms repl_aae_repaired_since(const struct repl *r, chorus_token token) {
  chorus_ms at = repl__aae_oldest_repair(r, 0, token, false);
  return at == UINT64_MAX ? 0 : at;
}

bool repl__aae_repaired_after(const struct repl *r, chorus_token token,
                              const void *key, size_t klen, chorus_ms since) {
  /* A replica with no other (N = 1, the cluster's or a keyspace's) holds
   * the only copy: nothing to wait for. */
  unsigned cls = r->ring ? ring_key_class(r->ring, key, klen) : 0;
  return repl__aae_oldest_repair(r, cls, token, true) > since;
}

size_t repl_aae_status(const struct repl *r, struct repl_aae_peer_status *out,
                       size_t max) {
  /* One entry per peer: its classes' records (adjacent, sorted by id then
   * tag) summed, the latest exchange's times. */
  const struct repl_aae *a = &r->aae;
  size_t n = 0;
  for (size_t i = 0; i < a->npeers; i++) {
    const struct repl_aae_peer *p = &a->peers[i];
    bool same = i > 0 && a->peers[i - 1].id == p->id;
    if (!same)
      n++;
    if (n > max)
      continue;
    struct repl_aae_peer_status *o = &out[n - 1];
    if (!same)
      *o = (struct repl_aae_peer_status){.peer = p->id};
    if (p->last_started > o->last_started)
      o->last_started = p->last_started;
    if (p->exchanges && p->last_started > o->last_completed)
      o->last_completed = p->last_started;
    o->exchanges += p->exchanges;
    o->aborted += p->aborted;
    o->segments_differing += p->segments_differing;
    o->keys_repaired += p->keys_repaired;
    o->bytes += p->bytes;
  }
  return n;
}

void repl__aae_free(struct repl *r) {
  repl__aae_exchange_reset(&r->aae);
  for (size_t i = 0; i < r->aae.npeers; i++)
    chorus_free(r->aae.peers[i].iv);
  chorus_free(r->aae.peers);
  chorus_free(r->aae.scan);
  for (unsigned i = 0; i < REPL_AAE_SERVED; i++)
    chorus_free(r->aae.sv[i].iv);
  repl__aae_ranges_free(r);
  for (unsigned c = 0; c < r->ntrees; c++)
    aae_tree_free(&r->trees[c]);
  r->ntrees = 0;
}
