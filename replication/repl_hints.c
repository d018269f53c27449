/* repl_hints.c: the hint table in the store's hints space, one hint per
 * (target, key), with per-target counts and bytes for the bounds, and an
 * in-memory index of every hint so that the write path never reads the
 * table. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_search.h"
#include "repl_int.h"

/* A target's accounting slot: its hints and their bytes, for the bound. */
struct repl_hint_target {
  chorus_node_id target;
  uint64_t count, bytes;
  uint64_t unreported[REPL_HINT_DROP_REASONS]; /* drops since the report */
};

/* One hint of the index. */
struct repl_hint_entry {
  struct repl_hint_entry *next;
  chorus_node_id target;
  chorus_token token;
  uint64_t seq;
  uint64_t size;   /* key + value bytes in the table */
  chorus_ms armed; /* monotonic: when armed, or loaded at start */
  size_t klen;
  unsigned char key[]; /* the user key */
};

/* A delete decided (the hint was disarmed) but not yet written: deletes
 * ride along with the next write batch (repl__hints_flush), skipping keys
 * re-armed meanwhile. A crash that loses them only replays a hint again. */
struct repl_hint_pending {
  chorus_node_id target;
  chorus_token token;
  size_t klen;
  unsigned char *key;
};

/* The key of a hint into @out (REPL_HINT_PREFIX + @klen bytes). */
static size_t hint_key(unsigned char *out, chorus_node_id target,
                       chorus_token token, const void *key, size_t klen) {
  store_be64_put(out, target);
  store_be64_put(out + 8, token);
  if (klen > 0)
    memcpy(out + REPL_HINT_PREFIX, key, klen);
  return REPL_HINT_PREFIX + klen;
}

/* Splits a table entry. Errors: CHORUS_ECORRUPT. */
static int hint_parse(const void *k, size_t klen, const void *v, size_t vlen,
                      struct repl_hint *out) {
  if (klen < REPL_HINT_PREFIX || vlen < REPL_HINT_HEAD)
    return CHORUS_ECORRUPT;
  const unsigned char *kp = k, *vp = v;
  out->target = store_be64_get(kp);
  out->token = store_be64_get(kp + 8);
  out->key = kp + REPL_HINT_PREFIX;
  out->klen = klen - REPL_HINT_PREFIX;
  out->seq = store_be64_get(vp);
  out->wall = store_be64_get(vp + 8);
  out->object = vp + REPL_HINT_HEAD;
  out->olen = vlen - REPL_HINT_HEAD;
  return CHORUS_OK;
}

void repl__hints_init(struct repl_hints *h, uint64_t max_bytes) {
  memset(h, 0, sizeof *h);
  h->max_bytes = max_bytes;
}

static size_t entry_hash(chorus_node_id target, chorus_token token,
                         size_t klen) {
  /* The token already is a hash of the key. */
  uint64_t x = token ^ (target * 0x9e3779b97f4a7c15ull) ^ klen;
  x ^= x >> 29;
  return (size_t)x;
}

static struct repl_hint_entry **entry_slot(const struct repl_hints *h,
                                           chorus_node_id target,
                                           chorus_token token, const void *key,
                                           size_t klen) {
  if (h->nbuckets == 0)
    return NULL;
  struct repl_hint_entry **p =
      &h->bucket[entry_hash(target, token, klen) & (h->nbuckets - 1)];
  for (; *p; p = &(*p)->next)
    if ((*p)->target == target && (*p)->token == token && (*p)->klen == klen &&
        (klen == 0 || memcmp((*p)->key, key, klen) == 0))
      return p;
  return p;
}

static struct repl_hint_entry *entry_find(const struct repl_hints *h,
                                          chorus_node_id target,
                                          chorus_token token, const void *key,
                                          size_t klen) {
  struct repl_hint_entry **p = entry_slot(h, target, token, key, klen);
  return p ? *p : NULL;
}

static int entry_grow(struct repl_hints *h) {
  if (h->nentries < h->nbuckets)
    return CHORUS_OK;
  size_t nb = h->nbuckets ? h->nbuckets * 2 : 256;
  struct repl_hint_entry **b = chorus_calloc(nb, sizeof *b);
  if (b == NULL)
    return CHORUS_ENOMEM;
  for (size_t i = 0; i < h->nbuckets; i++)
    for (struct repl_hint_entry *e = h->bucket[i], *next; e; e = next) {
      next = e->next;
      struct repl_hint_entry **d =
          &b[entry_hash(e->target, e->token, e->klen) & (nb - 1)];
      e->next = *d;
      *d = e;
    }
  chorus_free(h->bucket);
  h->bucket = b;
  h->nbuckets = nb;
  return CHORUS_OK;
}

/* Inserts or updates; *@old_size gets the replaced entry's size (0). */
static int entry_put(struct repl_hints *h, chorus_node_id target,
                     chorus_token token, const void *key, size_t klen,
                     uint64_t seq, uint64_t size, uint64_t *old_size) {
  *old_size = 0;
  struct repl_hint_entry *e = entry_find(h, target, token, key, klen);
  if (e != NULL) {
    *old_size = e->size;
    e->seq = seq;
    e->size = size;
    e->armed = h->now; /* the table's value (and wall) is rewritten too */
    return CHORUS_OK;
  }
  if (entry_grow(h) != CHORUS_OK ||
      (e = chorus_malloc(sizeof *e + (klen ? klen : 1))) == NULL)
    return CHORUS_ENOMEM;
  *e = (struct repl_hint_entry){NULL, target, token, seq, size, h->now, klen};
  if (klen)
    memcpy(e->key, key, klen);
  struct repl_hint_entry **p = entry_slot(h, target, token, key, klen);
  if (p == NULL) { /* not reached: entry_grow made the buckets */
    chorus_free(e);
    return CHORUS_ENOMEM;
  }
  *p = e;
  h->nentries++;
  return CHORUS_OK;
}

static void entry_remove(struct repl_hints *h, struct repl_hint_entry **p) {
  struct repl_hint_entry *e = *p;
  *p = e->next;
  chorus_free(e);
  h->nentries--;
}

bool repl__hints_current(const struct repl_hints *h, chorus_node_id target,
                         chorus_token token, const void *key, size_t klen,
                         uint64_t seq) {
  const struct repl_hint_entry *e = entry_find(h, target, token, key, klen);
  return e != NULL && e->seq == seq;
}

bool repl__hints_any(const struct repl_hints *h, chorus_token token,
                     const void *key, size_t klen) {
  for (size_t i = 0; i < h->n; i++)
    if (entry_find(h, h->t[i].target, token, key, klen) != NULL)
      return true;
  return false;
}

bool repl__hints_carries_object(const struct repl_hints *h,
                                chorus_node_id target, chorus_token token,
                                const void *key, size_t klen) {
  const struct repl_hint_entry *e = entry_find(h, target, token, key, klen);
  return e != NULL && e->size > REPL_HINT_PREFIX + klen + REPL_HINT_HEAD;
}

void repl__hints_free(struct repl_hints *h) {
  for (size_t i = 0; i < h->nbuckets; i++)
    while (h->bucket[i])
      entry_remove(h, &h->bucket[i]);
  chorus_free(h->bucket);
  for (size_t i = 0; i < h->npend; i++)
    chorus_free(h->pend[i].key);
  chorus_free(h->pend);
  chorus_free(h->t);
  memset(h, 0, sizeof *h);
}

/* The accounting slot of @target, or NULL. */
static struct repl_hint_target *slot_find(const struct repl_hints *h,
                                          chorus_node_id target) {
  size_t i =
      chorus_id_lower_bound(h->t, h->n, sizeof h->t[0],
                            offsetof(struct repl_hint_target, target), target);
  return i < h->n && h->t[i].target == target ? &h->t[i] : NULL;
}

/* The accounting slot of @target, created when absent; NULL when out of
 * memory (*@err is then set). */
static struct repl_hint_target *slot_add(struct repl_hints *h,
                                         chorus_node_id target, int *err) {
  size_t lo =
      chorus_id_lower_bound(h->t, h->n, sizeof h->t[0],
                            offsetof(struct repl_hint_target, target), target);
  if (lo < h->n && h->t[lo].target == target)
    return &h->t[lo];
  if (h->n == h->cap) {
    uint32_t ncap = h->cap ? h->cap * 2 : 8;
    struct repl_hint_target *t = chorus_realloc(h->t, ncap * sizeof *t);
    if (t == NULL) {
      *err = CHORUS_ENOMEM;
      return NULL;
    }
    h->t = t;
    h->cap = ncap;
  }
  assert(h->n < h->cap);
  memmove(&h->t[lo + 1], &h->t[lo], (h->n - lo) * sizeof *h->t);
  h->t[lo] = (struct repl_hint_target){.target = target};
  h->n++;
  return &h->t[lo];
}

static void account(struct repl_hints *h, chorus_node_id target, int64_t count,
                    int64_t bytes) {
  struct repl_hint_target *t = slot_find(h, target);
  if (t == NULL)
    return;
  /* The index and the counts move together. */
  assert(count >= 0 ||
         (t->count >= (uint64_t)-count && t->bytes >= (uint64_t)-bytes));
  t->count = (uint64_t)((int64_t)t->count + count);
  t->bytes = (uint64_t)((int64_t)t->bytes + bytes);
}

int repl__hints_load(struct repl_hints *h, struct store *s) {
  /* Start over: the table is the truth (also after a failed batch whose
   * hints the index had already counted). */
  h->n = 0;
  for (size_t i = 0; i < h->nbuckets; i++)
    while (h->bucket[i])
      entry_remove(h, &h->bucket[i]);
  for (size_t i = 0; i < h->npend; i++)
    chorus_free(h->pend[i].key);
  h->npend = 0;
  struct store_iter *it;
  int rc = store_iter_open(s, STORE_HINTS, NULL, 0, NULL, 0, &it);
  if (rc != CHORUS_OK)
    return rc;
  for (; store_iter_valid(it); store_iter_next(it)) {
    size_t kl, vl;
    const void *k = store_iter_key(it, &kl), *v = store_iter_value(it, &vl);
    struct repl_hint hint;
    if ((rc = hint_parse(k, kl, v, vl, &hint)) != CHORUS_OK)
      break;
    struct repl_hint_target *t = slot_add(h, hint.target, &rc);
    if (t == NULL)
      break;
    uint64_t old;
    if ((rc = entry_put(h, hint.target, hint.token, hint.key, hint.klen,
                        hint.seq, kl + vl, &old)) != CHORUS_OK)
      break;
    t->count++;
    t->bytes += kl + vl;
  }
  if (rc == CHORUS_OK)
    rc = store_iter_status(it);
  store_iter_close(it);
  return rc;
}

int repl__hints_get(struct store *s, chorus_node_id target, chorus_token token,
                    const void *key, size_t klen, struct repl_hint *out,
                    void **buf) {
  unsigned char *hk = chorus_malloc(REPL_HINT_PREFIX + klen);
  if (hk == NULL)
    return CHORUS_ENOMEM;
  size_t hl = hint_key(hk, target, token, key, klen);
  size_t vl;
  int rc = store_get(s, STORE_HINTS, hk, hl, buf, &vl);
  if (rc == CHORUS_OK)
    rc = hint_parse(hk, hl, *buf, vl, out);
  chorus_free(hk);
  /* The key of *@out is the caller's @key, not the freed buffer. */
  out->key = key;
  out->klen = klen;
  if (rc != CHORUS_OK) {
    chorus_free(*buf);
    *buf = NULL;
  }
  return rc;
}

int repl__hints_arm(struct repl_hints *h, struct store *s,
                    struct store_batch *b, chorus_node_id target,
                    chorus_token token, const void *key, size_t klen,
                    uint64_t seq, chorus_ms wall, const void *object,
                    size_t olen, bool *dropped) {
  *dropped = false;
  const struct repl_hint_entry *old = entry_find(h, target, token, key, klen);
  uint64_t old_size = old ? old->size : 0;
  uint64_t size = REPL_HINT_PREFIX + klen + REPL_HINT_HEAD + olen;
  int rc = CHORUS_OK;
  struct repl_hint_target *t = slot_add(h, target, &rc);
  if (t == NULL)
    return rc;
  if (t->bytes - old_size + size > h->max_bytes) {
    *dropped = true;
    t->unreported[REPL_HINT_DROP_BYTES]++;
    h->dropped[REPL_HINT_DROP_BYTES]++;
    return CHORUS_OK;
  }
  unsigned char *hk = chorus_malloc(REPL_HINT_PREFIX + klen);
  unsigned char *hv = chorus_malloc(REPL_HINT_HEAD + olen);
  rc = CHORUS_ENOMEM;
  if (hk != NULL && hv != NULL) {
    size_t hl = hint_key(hk, target, token, key, klen);
    store_be64_put(hv, seq);
    store_be64_put(hv + 8, wall);
    if (olen > 0)
      memcpy(hv + REPL_HINT_HEAD, object, olen);
    rc = store_batch_put(b, STORE_HINTS, hk, hl, hv, REPL_HINT_HEAD + olen);
  }
  chorus_free(hk);
  chorus_free(hv);
  uint64_t replaced;
  if (rc == CHORUS_OK)
    rc = entry_put(h, target, token, key, klen, seq, size, &replaced);
  if (rc != CHORUS_OK)
    return rc;
  t->count += old ? 0 : 1;
  t->bytes = t->bytes - old_size + size;
  h->queued++;
  return CHORUS_OK;
}

static int delete_hint(struct repl_hints *h, struct store *s,
                       const struct repl_hint *hint) {
  unsigned char *hk = chorus_malloc(REPL_HINT_PREFIX + hint->klen);
  if (hk == NULL)
    return CHORUS_ENOMEM;
  size_t hl = hint_key(hk, hint->target, hint->token, hint->key, hint->klen);
  int rc = store_delete(s, STORE_HINTS, hk, hl, NULL);
  chorus_free(hk);
  if (rc != CHORUS_OK)
    return rc;
  struct repl_hint_entry **p =
      entry_slot(h, hint->target, hint->token, hint->key, hint->klen);
  if (p != NULL && *p != NULL) {
    account(h, hint->target, -1, -(int64_t)(*p)->size);
    entry_remove(h, p);
  }
  return CHORUS_OK;
}

int repl__hints_disarm(struct repl_hints *h, struct store *s,
                       chorus_node_id target, chorus_token token,
                       const void *key, size_t klen, uint64_t seq,
                       bool *deleted) {
  if (deleted)
    *deleted = false;
  struct repl_hint_entry **p = entry_slot(h, target, token, key, klen);
  if (p == NULL || *p == NULL || (*p)->seq != seq)
    return CHORUS_OK;
  if (h->npend == h->cappend) {
    size_t ncap = h->cappend ? h->cappend * 2 : 64;
    struct repl_hint_pending *np = chorus_realloc(h->pend, ncap * sizeof *np);
    if (np == NULL)
      return CHORUS_ENOMEM;
    h->pend = np;
    h->cappend = ncap;
  }
  unsigned char *k = chorus_malloc(klen ? klen : 1);
  if (k == NULL)
    return CHORUS_ENOMEM;
  if (klen)
    memcpy(k, key, klen);
  h->pend[h->npend++] = (struct repl_hint_pending){target, token, klen, k};
  account(h, target, -1, -(int64_t)(*p)->size);
  entry_remove(h, p);
  if (deleted)
    *deleted = true;
  return CHORUS_OK;
}

int repl__hints_flush(struct repl_hints *h, struct store *s,
                      struct store_batch *b) {
  if (h->npend == 0)
    return CHORUS_OK;
  struct store_batch *own = b ? NULL : store_batch_new();
  if (b == NULL && own == NULL)
    return CHORUS_ENOMEM;
  struct store_batch *into = b ? b : own;
  size_t before = store_batch_count(into);
  int rc = CHORUS_OK;
  for (size_t i = 0; i < h->npend && rc == CHORUS_OK; i++) {
    const struct repl_hint_pending *d = &h->pend[i];
    /* Re-armed since: the newer hint stays. */
    if (entry_find(h, d->target, d->token, d->key, d->klen) != NULL)
      continue;
    unsigned char *hk = chorus_malloc(REPL_HINT_PREFIX + d->klen);
    if (hk == NULL) {
      rc = CHORUS_ENOMEM;
      break;
    }
    size_t hl = hint_key(hk, d->target, d->token, d->key, d->klen);
    rc = store_batch_delete(into, STORE_HINTS, hk, hl);
    chorus_free(hk);
  }
  if (rc == CHORUS_OK && own != NULL && store_batch_count(own) > before)
    rc = store_write_batch(s, own, NULL);
  store_batch_free(own);
  if (rc != CHORUS_OK)
    return rc; /* the deletes stay pending (a caller's batch may be cut) */
  for (size_t i = 0; i < h->npend; i++)
    chorus_free(h->pend[i].key);
  h->npend = 0;
  return CHORUS_OK;
}

size_t repl__hints_pending_deletes(const struct repl_hints *h) {
  return h->npend;
}

int repl__hints_drop(struct repl_hints *h, struct store *s,
                     const struct repl_hint *hint, enum repl_hint_drop why) {
  int rc = delete_hint(h, s, hint);
  if (rc == CHORUS_OK)
    repl__hints_note_drop(h, hint->target, why);
  return rc;
}

void repl__hints_note_drop(struct repl_hints *h, chorus_node_id target,
                           enum repl_hint_drop why) {
  h->dropped[why]++;
  int rc;
  struct repl_hint_target *t = slot_add(h, target, &rc);
  if (t != NULL) /* out of memory: counted, not reported */
    t->unreported[why]++;
}

void repl__hints_report(struct repl_hints *h, const struct repl_config *cfg) {
  for (uint32_t i = 0; i < h->n; i++) {
    struct repl_hint_target *t = &h->t[i];
    for (int why = 0; why < REPL_HINT_DROP_REASONS; why++) {
      if (t->unreported[why] == 0)
        continue;
      char reason[96];
      if (why == REPL_HINT_DROP_BYTES)
        snprintf(reason, sizeof reason,
                 "over the %" PRIu64 "-byte bound per target", h->max_bytes);
      else if (why == REPL_HINT_DROP_AGE)
        snprintf(reason, sizeof reason, "older than %" PRIu64 " ms",
                 (uint64_t)cfg->hint_max_age_ms);
      else
        snprintf(reason, sizeof reason,
                 "the target owns the key no more and no copy could move");
      chorus_trace(cfg->warn, "repl",
                   "dropped %" PRIu64 " hints for %016" PRIx64 " (%s; %" PRIu64
                   " since start); anti-entropy repairs "
                   "what they carried",
                   t->unreported[why], t->target, reason, h->dropped[why]);
      t->unreported[why] = 0;
    }
  }
}

chorus_ms repl__hints_armed_at(const struct repl_hints *h,
                               const struct repl_hint *hint) {
  const struct repl_hint_entry *e =
      entry_find(h, hint->target, hint->token, hint->key, hint->klen);
  return e ? e->armed : h->now;
}

uint64_t repl__hints_count(const struct repl_hints *h, chorus_node_id target) {
  const struct repl_hint_target *t = slot_find(h, target);
  return t ? t->count : 0;
}

uint64_t repl__hints_total(const struct repl_hints *h, uint64_t *bytes) {
  uint64_t n = 0, b = 0;
  for (uint32_t i = 0; i < h->n; i++) {
    n += h->t[i].count;
    b += h->t[i].bytes;
  }
  if (bytes)
    *bytes = b;
  return n;
}

void repl__hints_stats(const struct repl_hints *h, struct repl_stats *st) {
  st->hints_queued = h->queued;
  st->hints_dropped_bytes = h->dropped[REPL_HINT_DROP_BYTES];
  st->hints_dropped_age = h->dropped[REPL_HINT_DROP_AGE];
  st->hints_dropped = st->hints_dropped_bytes + st->hints_dropped_age;
  st->hints_dropped_not_owner = h->dropped[REPL_HINT_DROP_NOT_OWNER];
  st->hints_pending = repl__hints_total(h, &st->hint_bytes);
}

bool repl__hints_next_target(const struct repl_hints *h, chorus_node_id after,
                             chorus_node_id *target, uint64_t *count) {
  if (after == UINT64_MAX)
    return false;
  size_t i = chorus_id_lower_bound(h->t, h->n, sizeof h->t[0],
                                   offsetof(struct repl_hint_target, target),
                                   after + 1);
  if (i >= h->n)
    return false;
  *target = h->t[i].target;
  *count = h->t[i].count;
  return true;
}

/* ------------------------------------------------------------------------
 * Walks over one target's hints (replay)
 * ------------------------------------------------------------------------ */

int repl__hints_scan_open(struct store *s, chorus_node_id target,
                          const void *from, size_t flen,
                          struct repl_hint_scan *sc) {
  /* The target's keys are [target BE][...]: from [target] (or @from) up to
   * [target + 1], or to the end for the last possible target. */
  unsigned char lo[8], hi[8];
  store_be64_put(lo, target);
  store_be64_put(hi, target + 1);
  bool last = target == UINT64_MAX;
  *sc = (struct repl_hint_scan){0};
  return store_iter_open(s, STORE_HINTS, from ? from : lo, from ? flen : 8,
                         last ? NULL : hi, last ? 0 : 8, &sc->it);
}

bool repl__hints_scan_valid(struct repl_hint_scan *sc) {
  return store_iter_valid(sc->it);
}

bool repl__hints_scan_get(const struct repl_hints *h, struct repl_hint_scan *sc,
                          struct repl_hint *out) {
  size_t vl;
  sc->k = store_iter_key(sc->it, &sc->kl);
  const void *v = store_iter_value(sc->it, &vl);
  return hint_parse(sc->k, sc->kl, v, vl, out) == CHORUS_OK &&
         repl__hints_current(h, out->target, out->token, out->key, out->klen,
                             out->seq);
}

int repl__hints_scan_resume(const struct repl_hint_scan *sc,
                            unsigned char **buf, size_t *len) {
  assert(sc->k != NULL);
  unsigned char *cur = chorus_realloc(*buf, sc->kl + 1);
  if (cur == NULL)
    return CHORUS_ENOMEM;
  memcpy(cur, sc->k, sc->kl);
  cur[sc->kl] = 0;
  *buf = cur;
  *len = sc->kl + 1;
  return CHORUS_OK;
}

void repl__hints_scan_next(struct repl_hint_scan *sc) {
  sc->k = NULL;
  store_iter_next(sc->it);
}

int repl__hints_scan_close(struct repl_hint_scan *sc) {
  int rc = store_iter_status(sc->it);
  store_iter_close(sc->it);
  sc->it = NULL;
  return rc;
}
