/* repl_gc.c: tombstone collection (repl.h, TOMBSTONE COLLECTION). A queue
 * in STORE_META names every kv object a write left mortal (all its
 * siblings tombstones or values with a TTL), stamped with when it got
 * there; a paced walk over the queue purges the objects that are dead and
 * that every other replica is known to hold: an anti-entropy exchange with
 * each of them, over the object's range and in the key's replication class
 * (ring.h; the other replicas are those of that class), started after the
 * stamp and completed (ScyllaDB's tombstone_gc = repair, judged per key by
 * when this node last changed the object, never by a clock another node
 * set). A key of a class with one replica waits for the grace alone. */
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

/* PURGE RECORDS. Replicas purge one object at different times (each once
 * its own exchanges since its own stamp have completed). One that has
 * purged, handed the same object back by a replica that may not purge it
 * yet (an exchange, a read repair, a stream), would store it again and
 * start its wait over, and the object could bounce between them for good
 * (the simulator saw it: gc_sim seed 8). So a purge leaves a record,
 * "gp/" [token][key] -> [digest of the purged bytes][epoch][monotonic
 * ms], and a join into an empty slot of exactly those bytes is a no-op:
 * every replica held them or more when they were purged here, so they
 * bring nothing. Records go after REPL_GC_RECORD_MS (or at a restart):
 * by then the other replicas have purged it too; a late copy is then
 * only stored and collected once more. */
#define GP_PREFIX "gp/"
#define GP_VALUE_LEN 24u

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

/* eligible: whether a dead object (dead since @since, HLC, 0 unknown),
 * last written by this node at monotonic @stamp, may be purged now. */
static bool eligible(const struct repl *r, chorus_token token,
                     const uint8_t *key, size_t klen, hlc_time since,
                     chorus_ms stamp) {
  chorus_ms settle = REPL_GC_SKEW_MS, wall = r->wall, now = r->now;
  if (r->cfg.tombstone_gc == REPL_GC_TIMEOUT) {
    if (r->cfg.tombstone_gc_timeout_ms > settle)
      settle = r->cfg.tombstone_gc_timeout_ms;
  } else if (r->cfg.hint_max_age_ms > settle) {
    /* A fallback's hint carries the object it was given (perhaps the
     * value a tombstone deleted) for up to the hint window, to a replica
     * that may have purged the tombstone by then: Cassandra's rule that
     * gc_grace_seconds exceed max_hint_window_in_ms. */
    settle = r->cfg.hint_max_age_ms;
  }
  /* Dead here is dead everywhere only past the clocks' skew: a replica
   * whose clock is behind still reads a value whose TTL ran out here. */
  if (since != 0 ? wall < hlc_physical(since) + settle
                 : now < stamp || now - stamp < settle)
    return false;
  return r->cfg.tombstone_gc == REPL_GC_TIMEOUT ||
         repl__aae_repaired_after(r, token, key, klen, stamp);
}

/* What the walk does with one queued object. */
enum gc_verdict {
  GC_FORGET,  /* off the queue: gone, live again, or not ours to judge */
  GC_RESTAMP, /* an earlier incarnation's stamp: stamped now */
  GC_WAIT,    /* a value whose TTL has not run out */
  GC_HOLD,    /* dead, not purgeable yet */
  GC_PURGE,
};

/* judge: the verdict on queued object (@token, @key) stored as @obj (@len
 * bytes; 0: absent), stamped (@epoch, @stamp). */
static enum gc_verdict judge(struct repl *r, chorus_token token,
                             const uint8_t *key, size_t klen, const void *obj,
                             size_t len, uint64_t epoch, chorus_ms stamp) {
  struct crdt_obj o;
  if (len == 0 ||
      repl__decode_obj(obj, len, CRDT_NONE, &o, r->err) != CHORUS_OK)
    return GC_FORGET; /* gone, or corrupt: reads report it */
  bool mortal = repl__gc_mortal(&o);
  hlc_time since = 0;
  bool dead = mortal && dead_since(&o, repl__read_time(r), &since);
  crdt_obj_free(&o);
  if (!mortal)
    return GC_FORGET;
  if (epoch != r->epoch)
    return GC_RESTAMP;
  if (!dead)
    return GC_WAIT;
  if (repl__hints_any(&r->hints, token, key, klen) ||
      !eligible(r, token, key, klen, since, stamp))
    return GC_HOLD;
  return GC_PURGE;
}

bool repl__gc_was_purged(struct repl *r, chorus_token token, const void *key,
                         size_t klen, uint64_t digest) {
  if (klen > STORE_MAX_USER_KEY)
    return false;
  uint8_t k[GC_KEY_MAX];
  size_t kl = gc_key(k, token, key, klen);
  memcpy(k, GP_PREFIX, GC_PREFIX_LEN);
  void *v = NULL;
  size_t vl = 0;
  bool same = store_get(r->store, STORE_META, k, kl, &v, &vl) == CHORUS_OK &&
              vl == GP_VALUE_LEN && store_be64_get(v) == digest;
  chorus_free(v);
  return same;
}

bool repl__gc_purgeable(struct repl *r, const uint8_t *dkey, size_t dlen,
                        const void *obj, size_t len) {
  if (r->cfg.tombstone_gc == REPL_GC_OFF || dlen < STORE_TOKEN_PREFIX ||
      dlen - STORE_TOKEN_PREFIX > STORE_MAX_USER_KEY || len == 0)
    return false;
  chorus_token token = store_be64_get(dkey);
  const uint8_t *key = dkey + STORE_TOKEN_PREFIX;
  size_t klen = dlen - STORE_TOKEN_PREFIX;
  uint8_t k[GC_KEY_MAX];
  size_t kl = gc_key(k, token, key, klen);
  void *v = NULL;
  size_t vl = 0;
  if (store_get(r->store, STORE_META, k, kl, &v, &vl) != CHORUS_OK) {
    chorus_free(v);
    return false; /* not queued: not known mortal */
  }
  bool purge = vl == GC_VALUE_LEN &&
               judge(r, token, key, klen, obj, len, store_be64_get(v),
                     store_be64_get((const uint8_t *)v + 8)) == GC_PURGE;
  chorus_free(v);
  return purge;
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
  static const uint8_t hi[] = {'g', 'p', '/' + 1}; /* the queue, records */
  struct store_iter *it;
  if ((rc = store_iter_open(r->store, STORE_META, lo, lolen, hi, sizeof hi,
                            &it)) != CHORUS_OK)
    return rc;
  struct store_batch *b = store_batch_new();
  if (b == NULL) {
    store_iter_close(it);
    return CHORUS_ENOMEM;
  }
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
    if (kl >= GC_PREFIX_LEN && memcmp(k, GP_PREFIX, GC_PREFIX_LEN) == 0) {
      /* A purge record: gone once old, or from an earlier incarnation. */
      if (vl != GP_VALUE_LEN || store_be64_get(v + 8) != r->epoch ||
          r->now < store_be64_get(v + 16) ||
          r->now - store_be64_get(v + 16) > REPL_GC_RECORD_MS)
        rc = store_batch_delete(b, STORE_META, k, kl);
      continue;
    }
    if (kl < GC_PREFIX_LEN + STORE_TOKEN_PREFIX || vl != GC_VALUE_LEN ||
        memcmp(k, GC_PREFIX, GC_PREFIX_LEN) != 0) {
      if (memcmp(k, GC_PREFIX, GC_PREFIX_LEN) == 0) /* malformed: ours */
        rc = store_batch_delete(b, STORE_META, k, kl);
      continue;
    }
    chorus_token token = store_be64_get(k + GC_PREFIX_LEN);
    const uint8_t *key = k + GC_PREFIX_LEN + STORE_TOKEN_PREFIX;
    size_t klen = kl - GC_PREFIX_LEN - STORE_TOKEN_PREFIX;
    void *buf = NULL;
    size_t len = 0;
    if ((rc = repl__load_bytes(r, token, key, klen, &buf, &len)) != CHORUS_OK)
      break;
    enum gc_verdict verdict = judge(r, token, key, klen, buf, len,
                                    store_be64_get(v), store_be64_get(v + 8));
    if (verdict == GC_FORGET) {
      rc = store_batch_delete(b, STORE_META, k, kl);
    } else if (verdict == GC_RESTAMP) {
      uint8_t nv[GC_VALUE_LEN];
      store_be64_put(nv, r->epoch);
      store_be64_put(nv + 8, r->now);
      rc = store_batch_put(b, STORE_META, k, kl, nv, sizeof nv);
    } else if (verdict == GC_HOLD) {
      g->held++;
    } else if (verdict == GC_PURGE) {
      size_t dl;
      uint8_t *dk = repl__data_key(token, key, klen, &dl);
      rc = dk ? store_batch_delete(b, STORE_DATA, dk, dl) : CHORUS_ENOMEM;
      if (rc == CHORUS_OK)
        rc = store_batch_delete(b, STORE_META, k, kl);
      uint64_t digest = aae_digest(buf, len);
      if (rc == CHORUS_OK) {
        uint8_t pk[GC_KEY_MAX], pv[GP_VALUE_LEN];
        memcpy(pk, k, kl);
        memcpy(pk, GP_PREFIX, GC_PREFIX_LEN);
        store_be64_put(pv, digest);
        store_be64_put(pv + 8, r->epoch);
        store_be64_put(pv + 16, r->now);
        rc = store_batch_put(b, STORE_META, pk, kl, pv, sizeof pv);
      }
      /* The tree follows now; a batch that fails below makes it stale. */
      if (rc == CHORUS_OK) {
        repl__aae_note(r, dk, dl, digest, 0);
        purged++;
        if (g->walk.purged + purged == 1 || token < g->walk.first)
          g->walk.first = token;
        if (g->walk.purged + purged == 1 || token > g->walk.last)
          g->walk.last = token;
      }
      chorus_free(dk);
    }
    chorus_free(buf);
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
  if (rc != CHORUS_OK && purged > 0)
    repl__aae_stale(r);
  if (rc != CHORUS_OK)
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK; /* this step again */
  r->stats.tombstones_purged += purged;
  g->walk.purged += purged;
  if (end) {
    r->stats.tombstones = g->held;
    r->stats.gc_walks++;
    chorus_free(g->after);
    struct repl_gc_walk walk = g->walk;
    walk.number = g->last.number + 1;
    *g = (struct repl_gc){.last = walk};
    *done = true;
  }
  return CHORUS_OK;
}

struct repl_gc_walk repl_gc_last_walk(const struct repl *r) {
  return r->gc.last;
}
