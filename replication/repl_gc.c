/* repl_gc.c: tombstone collection (repl.h, TOMBSTONE COLLECTION). A queue
 * in STORE_META names every kv object a write left mortal (all its
 * siblings tombstones or values with a TTL), stamped with when it got
 * there; a paced walk over the queue purges the objects that are dead and
 * that every other replica is known to hold: an anti-entropy exchange with
 * each of them, over the object's range, started after the stamp and
 * completed (ScyllaDB's tombstone_gc = repair, judged per key by when this
 * node last changed the object, never by a clock another node set). */
#include <inttypes.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_int.h"

/* The queue: STORE_META key "gc/" [token: 8 BE][user key], value [epoch: 8
 * BE][monotonic ms: 8 BE], the incarnation and monotonic time at which
 * this node last wrote the object. Stamps of an earlier incarnation mean
 * nothing to this one's clocks: the walk stamps them again, so only an
 * exchange of this incarnation counts, and no wall clock is ever compared
 * (a clock stepped back could make an exchange that started before the
 * tombstone arrived look later than it). */
#define GC_PREFIX "gc/"
#define GC_PREFIX_LEN 3u
#define GC_KEY_MAX (GC_PREFIX_LEN + STORE_TOKEN_PREFIX + STORE_MAX_USER_KEY)
#define GC_VALUE_LEN 16u

static size_t gc_key(uint8_t *out, chorus_token token, const void *key,
                     size_t klen) {
  memcpy(out, GC_PREFIX, GC_PREFIX_LEN);
  store_be64_put(out + GC_PREFIX_LEN, token);
  if (klen > 0)
    memcpy(out + GC_PREFIX_LEN + STORE_TOKEN_PREFIX, key, klen);
  return GC_PREFIX_LEN + STORE_TOKEN_PREFIX + klen;
}

bool repl__gc_mortal(const struct crdt_obj *obj) {
  if (obj->type != CRDT_KV)
    return false;
  const struct dvv *d = &obj->u.kv;
  for (uint32_t i = 0; i < d->n; i++)
    if (!d->sib[i].tombstone && d->sib[i].expires == 0)
      return false;
  return true;
}

/* dead_since: whether mortal @obj is dead at @now (no sibling reads), and
 * since when (*@since, HLC; 0 when unknown). */
static bool dead_since(const struct crdt_obj *obj, hlc_time now,
                       hlc_time *since) {
  *since = dvv_dead_since(&obj->u.kv, now);
  return !dvv_found(&obj->u.kv, now);
}

int repl__gc_note(struct repl *r, struct store_batch *b, chorus_token token,
                  const void *key, size_t klen) {
  if (r->cfg.tombstone_gc == REPL_GC_OFF)
    return CHORUS_OK;
  uint8_t k[GC_KEY_MAX], v[GC_VALUE_LEN];
  if (klen > STORE_MAX_USER_KEY)
    return CHORUS_EINVAL;
  size_t kl = gc_key(k, token, key, klen);
  store_be64_put(v, r->epoch);
  store_be64_put(v + 8, r->hints.now);
  return store_batch_put(b, STORE_META, k, kl, v, sizeof v);
}

/* eligible: whether dead object @obj (dead since @since), last written by
 * this node at monotonic @stamp, may be purged now. */
static bool eligible(const struct repl *r, chorus_token token, hlc_time since,
                     chorus_ms stamp, chorus_ms wall) {
  /* Dead here is dead everywhere only past the clocks' skew: a replica
   * whose clock is behind still reads a value whose TTL ran out here (and
   * an exchange would hand it back). */
  if (since != 0 && wall < hlc_physical(since) + REPL_GC_SKEW_MS)
    return false;
  if (r->cfg.tombstone_gc == REPL_GC_TIMEOUT) {
    chorus_ms t = r->cfg.tombstone_gc_timeout_ms;
    if (since != 0)
      return wall >= hlc_physical(since) && wall - hlc_physical(since) >= t;
    return r->hints.now >= stamp && r->hints.now - stamp >= t;
  }
  return repl__aae_repaired_after(r, token, stamp);
}

int repl_gc_step(struct repl *r, size_t budget, chorus_ms now, chorus_ms wall,
                 bool *done) {
  repl__tick(r, now, wall);
  struct repl_gc *g = &r->gc;
  *done = false;
  if (r->cfg.tombstone_gc == REPL_GC_OFF || !r->ready) {
    *done = true;
    return CHORUS_OK;
  }
  int rc = store_write_allowed(r->store);
  if (rc != CHORUS_OK)
    return CHORUS_OK; /* purges are writes too: later */
  uint8_t lo[GC_KEY_MAX];
  size_t lolen = GC_PREFIX_LEN;
  memcpy(lo, GC_PREFIX, GC_PREFIX_LEN);
  if (g->alen > 0) {
    memcpy(lo, g->after, g->alen);
    lolen = g->alen;
  }
  static const uint8_t hi[] = {'g', 'c', '/' + 1};
  struct store_iter *it;
  if ((rc = store_iter_open(r->store, STORE_META, lo, lolen, hi, sizeof hi,
                            &it)) != CHORUS_OK)
    return rc;
  struct store_batch *b = store_batch_new();
  if (b == NULL) {
    store_iter_close(it);
    return CHORUS_ENOMEM;
  }
  hlc_time read_time = repl__read_time(r);
  size_t seen = 0, purged = 0;
  const uint8_t *last = NULL;
  size_t lastlen = 0;
  for (; store_iter_valid(it) && seen < budget && rc == CHORUS_OK;
       store_iter_next(it)) {
    size_t kl, vl;
    const uint8_t *k = store_iter_key(it, &kl), *v = store_iter_value(it, &vl);
    if (g->alen > 0 && kl == g->alen && memcmp(k, g->after, kl) == 0)
      continue; /* the cursor itself */
    seen++;
    last = k;
    lastlen = kl;
    if (kl < GC_PREFIX_LEN + STORE_TOKEN_PREFIX || vl != GC_VALUE_LEN) {
      rc = store_batch_delete(b, STORE_META, k, kl); /* not ours: malformed */
      continue;
    }
    chorus_token token = store_be64_get(k + GC_PREFIX_LEN);
    const uint8_t *key = k + GC_PREFIX_LEN + STORE_TOKEN_PREFIX;
    size_t klen = kl - GC_PREFIX_LEN - STORE_TOKEN_PREFIX;
    uint64_t epoch = store_be64_get(v);
    chorus_ms stamp = store_be64_get(v + 8);
    void *buf = NULL;
    size_t len = 0;
    if ((rc = repl__load_bytes(r, token, key, klen, &buf, &len)) != CHORUS_OK)
      break;
    struct crdt_obj obj;
    bool decoded = len > 0 && repl__decode_obj(buf, len, CRDT_NONE, &obj,
                                               r->err) == CHORUS_OK;
    chorus_free(buf);
    if (!decoded || !repl__gc_mortal(&obj)) {
      /* Gone (cleaned up, purged), written live since, or not ours to
       * judge (corrupt: reads report it): off the queue. */
      if (decoded)
        crdt_obj_free(&obj);
      rc = store_batch_delete(b, STORE_META, k, kl);
      continue;
    }
    hlc_time since;
    bool dead = dead_since(&obj, read_time, &since);
    crdt_obj_free(&obj);
    if (epoch != r->epoch) {
      /* An earlier incarnation's stamp: from now on. */
      uint8_t nv[GC_VALUE_LEN];
      store_be64_put(nv, r->epoch);
      store_be64_put(nv + 8, r->hints.now);
      rc = store_batch_put(b, STORE_META, k, kl, nv, sizeof nv);
      g->held += dead;
      continue;
    }
    if (!dead)
      continue; /* a value whose TTL has not run out yet */
    if (repl__hints_any(&r->hints, token, key, klen) ||
        !eligible(r, token, since, stamp, wall)) {
      g->held++;
      continue;
    }
    size_t dl;
    uint8_t *dk = repl__data_key(token, key, klen, &dl);
    rc = dk ? store_batch_delete(b, STORE_DATA, dk, dl) : CHORUS_ENOMEM;
    chorus_free(dk);
    if (rc == CHORUS_OK)
      rc = store_batch_delete(b, STORE_META, k, kl);
    purged++;
  }
  bool end = rc == CHORUS_OK && !store_iter_valid(it);
  if (rc == CHORUS_OK)
    rc = store_iter_status(it);
  if (rc == CHORUS_OK && last != NULL) {
    uint8_t *a = chorus_realloc(g->after, lastlen);
    if (a == NULL) {
      rc = CHORUS_ENOMEM;
    } else {
      memcpy(a, last, lastlen);
      g->after = a;
      g->alen = lastlen;
    }
  }
  store_iter_close(it);
  /* Not synced: a crash that loses a purge leaves the tombstone for the
   * next walk, and one that loses a stamp only delays it. */
  if (rc == CHORUS_OK && store_batch_count(b) > 0)
    rc = store_write_batch(r->store, b, NULL);
  store_batch_free(b);
  if (rc != CHORUS_OK)
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK; /* this step again */
  r->stats.tombstones_purged += purged;
  if (end) {
    r->stats.tombstones = g->held;
    r->stats.gc_walks++;
    chorus_free(g->after);
    *g = (struct repl_gc){0};
    *done = true;
  }
  return CHORUS_OK;
}

/* Anti-entropy (issue 20) is what shows every replica holds an object;
 * until exchanges run, no range is known repaired and the repair mode
 * purges nothing. */
bool repl__aae_repaired_after(const struct repl *r, chorus_token token,
                              chorus_ms since) {
  (void)r;
  (void)token;
  (void)since;
  return false;
}
