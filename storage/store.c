/* store.c: argument checks shared by every backend, batches, key layout. */
#include "store.h"

#include <string.h>

#include "chorus_alloc.h"

/* Batches: one allocation per operation holding key then value, in an
 * array that doubles (Batches, below). */
struct batch_entry {
  unsigned char space;
  unsigned char is_delete;
  size_t klen, vlen;
  unsigned char *bytes; /* key, then value */
};

struct store_batch {
  struct batch_entry *entries;
  size_t count, cap;
};

/* ------------------------------------------------------------------------
 * Argument checks: done once here so that backends see only valid calls.
 * ------------------------------------------------------------------------ */

static int check_space(struct store *s, enum store_space space) {
  if ((unsigned)space >= STORE_SPACE_COUNT)
    return chorus_errf(s->errmsg, CHORUS_EINVAL, "unknown key space %d",
                       (int)space);
  return CHORUS_OK;
}

static int check_key(char *errmsg, const void *key, size_t klen) {
  if (key == NULL && klen > 0)
    return chorus_errf(errmsg, CHORUS_EINVAL, "NULL key with length %zu", klen);
  if (klen > STORE_MAX_KEY)
    return chorus_errf(errmsg, CHORUS_ETOOBIG, "key of %zu bytes exceeds %u",
                       klen, (unsigned)STORE_MAX_KEY);
  return CHORUS_OK;
}

static int check_value(char *errmsg, const void *val, size_t vlen) {
  if (val == NULL && vlen > 0)
    return chorus_errf(errmsg, CHORUS_EINVAL, "NULL value with length %zu",
                       vlen);
  if (vlen > STORE_MAX_VALUE)
    return chorus_errf(errmsg, CHORUS_ETOOBIG, "value of %zu bytes exceeds %u",
                       vlen, (unsigned)STORE_MAX_VALUE);
  return CHORUS_OK;
}

static int write_allowed(struct store *s, bool meta_only);
static bool batch_meta_only(const struct store_batch *b);
static bool deferred_get(struct store *s, enum store_space space,
                         const void *key, size_t klen, void **val, size_t *vlen,
                         int *rc);
static int apply_deferred(struct store *s, chorus_seq *seq);
static int before_others(struct store *s);
static int broken(struct store *s);
static int batch_append(struct store_batch *b, enum store_space space,
                        int is_delete, const void *key, size_t klen,
                        const void *val, size_t vlen);

int store_get(struct store *s, enum store_space space, const void *key,
              size_t klen, void **val, size_t *vlen) {
  *val = NULL;
  *vlen = 0;
  int rc = check_space(s, space);
  if (rc == CHORUS_OK)
    rc = check_key(s->errmsg, key, klen);
  if (rc != CHORUS_OK)
    return rc;
  if (deferred_get(s, space, key, klen, val, vlen, &rc))
    return rc;
  return s->ops->get(s, space, key, klen, val, vlen);
}

/* wrote: every write's result passes here: a write that found the disk
 * full although the last check did not (the reserve was outrun) asks for
 * a check at once (store_space_stale). */
static int wrote(struct store *s, int rc) {
  if (rc == CHORUS_ENOSPC)
    s->disk.stale = true;
  return rc;
}

int store_put(struct store *s, enum store_space space, const void *key,
              size_t klen, const void *val, size_t vlen, chorus_seq *seq) {
  int rc = check_space(s, space);
  if (rc == CHORUS_OK)
    rc = check_key(s->errmsg, key, klen);
  if (rc == CHORUS_OK)
    rc = check_value(s->errmsg, val, vlen);
  if (rc == CHORUS_OK)
    rc = write_allowed(s, space == STORE_META);
  if (rc == CHORUS_OK)
    rc = before_others(s);
  if (rc != CHORUS_OK)
    return rc;
  chorus_seq ignored;
  return wrote(
      s, s->ops->put(s, space, key, klen, val, vlen, seq ? seq : &ignored));
}

int store_delete(struct store *s, enum store_space space, const void *key,
                 size_t klen, chorus_seq *seq) {
  int rc = check_space(s, space);
  if (rc == CHORUS_OK)
    rc = check_key(s->errmsg, key, klen);
  if (rc == CHORUS_OK)
    rc = write_allowed(s, space == STORE_META);
  if (rc == CHORUS_OK)
    rc = before_others(s);
  if (rc != CHORUS_OK)
    return rc;
  chorus_seq ignored;
  return wrote(s, s->ops->del(s, space, key, klen, seq ? seq : &ignored));
}

int store_write_batch(struct store *s, const struct store_batch *b,
                      chorus_seq *seq) {
  chorus_seq ignored;
  if (seq == NULL)
    seq = &ignored;
  if (b == NULL)
    return chorus_errf(s->errmsg, CHORUS_EINVAL, "NULL batch");
  if (store_batch_count(b) == 0) {
    *seq = store_last_seq(s);
    return CHORUS_OK;
  }
  int rc = write_allowed(s, batch_meta_only(b));
  if (rc != CHORUS_OK)
    return rc;
  struct store_deferred *d = &s->deferred;
  if (d->broken)
    return broken(s);
  if (d->batch == NULL || d->batch->count == 0)
    return wrote(s, s->ops->write_batch(s, b, seq));
  /* After the deferred writes, in the same backend write. */
  for (size_t i = 0; i < b->count; i++) {
    const struct batch_entry *e = &b->entries[i];
    rc = batch_append(d->batch, (enum store_space)e->space, e->is_delete,
                      e->bytes, e->klen, e->bytes + e->klen, e->vlen);
    if (rc != CHORUS_OK) {
      /* Ours only: the deferred writes stay deferred. */
      d->batch->count -= i;
      for (size_t j = 0; j < i; j++)
        chorus_free(d->batch->entries[d->batch->count + j].bytes);
      return chorus_errf(s->errmsg, rc, "deferring a batch");
    }
  }
  return apply_deferred(s, seq);
}

int store_iter_open(struct store *s, enum store_space space, const void *lo,
                    size_t lolen, const void *hi, size_t hilen,
                    struct store_iter **out) {
  *out = NULL;
  int rc = check_space(s, space);
  if (rc == CHORUS_OK && lo != NULL)
    rc = check_key(s->errmsg, lo, lolen);
  if (rc == CHORUS_OK && hi != NULL)
    rc = check_key(s->errmsg, hi, hilen);
  if (rc == CHORUS_OK)
    rc = before_others(s);
  if (rc != CHORUS_OK)
    return rc;
  return s->ops->iter_open(s, space, lo, lolen, hi, hilen, out);
}

int store_iter_open_tokens(struct store *s, chorus_token first,
                           chorus_token last, struct store_iter **out) {
  *out = NULL;
  if (first > last)
    return chorus_errf(s->errmsg, CHORUS_EINVAL,
                       "token range %016llx..%016llx is empty or wraps; split "
                       "it at the ring's end",
                       (unsigned long long)first, (unsigned long long)last);
  int rc = before_others(s);
  if (rc != CHORUS_OK)
    return rc;
  unsigned char lo[8], hi[8];
  store_be64_put(lo, first);
  if (last == UINT64_MAX)
    return s->ops->iter_open(s, STORE_DATA, lo, sizeof lo, NULL, 0, out);
  /* Every key with token <= last sorts below the 8-byte prefix last+1. */
  store_be64_put(hi, last + 1);
  return s->ops->iter_open(s, STORE_DATA, lo, sizeof lo, hi, sizeof hi, out);
}

void store_iter_seek(struct store_iter *it, const void *key, size_t len) {
  it->ops->seek(it, key, len);
}
int store_iter_valid(struct store_iter *it) {
  return it->ops->valid(it);
}
void store_iter_next(struct store_iter *it) {
  it->ops->next(it);
}
const void *store_iter_key(struct store_iter *it, size_t *len) {
  return it->ops->key(it, len);
}
const void *store_iter_value(struct store_iter *it, size_t *len) {
  return it->ops->value(it, len);
}
int store_iter_status(struct store_iter *it) {
  return it->ops->status(it);
}
void store_iter_close(struct store_iter *it) {
  if (it != NULL)
    it->ops->close(it);
}

int store_sync_request(struct store *s, chorus_seq seq, store_sync_cb cb,
                       void *arg) {
  if (cb == NULL)
    return chorus_errf(s->errmsg, CHORUS_EINVAL, "NULL sync callback");
  int rc = before_others(s);
  if (rc != CHORUS_OK)
    return rc;
  chorus_seq last = s->ops->last_seq(s);
  /* A sequence promised for deferred writes whose application failed:
   * the barrier covers what was applied before them (DEFERRED WRITES). */
  if (seq > last && seq <= s->deferred.promised)
    seq = last;
  if (seq > last)
    return chorus_errf(s->errmsg, CHORUS_EINVAL,
                       "sync requested for sequence %llu beyond the last "
                       "write %llu",
                       (unsigned long long)seq, (unsigned long long)last);
  return s->ops->sync_request(s, seq, cb, arg);
}

int store_sync(struct store *s) {
  int rc = before_others(s);
  return rc != CHORUS_OK ? rc : wrote(s, s->ops->sync(s));
}
int store_flush(struct store *s) {
  int rc = before_others(s);
  return rc != CHORUS_OK ? rc : wrote(s, s->ops->flush(s));
}
chorus_seq store_last_seq(struct store *s) {
  chorus_seq last = s->ops->last_seq(s);
  struct store_deferred *d = &s->deferred;
  if (d->batch == NULL || d->batch->count == 0)
    return last;
  /* Their application takes at least one sequence. */
  if (last + 1 > d->promised)
    d->promised = last + 1;
  return last + 1;
}
chorus_seq store_durable_seq(struct store *s) {
  return s->ops->durable_seq(s);
}
void store_inject_fault(struct store *s, enum store_fault fault) {
  s->ops->inject_fault(s, fault);
}
int store_reclaim(struct store *s, chorus_token first, chorus_token last) {
  if (s->ops->reclaim == NULL || first > last)
    return CHORUS_OK;
  (void)before_others(s); /* a hint: its failure is store_commit's */
  return s->ops->reclaim(s, first, last);
}
int store_usage(struct store *s, struct store_usage *out) {
  *out = (struct store_usage){0};
  return s->ops->usage != NULL ? s->ops->usage(s, out) : CHORUS_OK;
}
void store_close(struct store *s) {
  if (s == NULL)
    return;
  /* Like the backend's own close: what was written is flushed, not
   * synced; deferred writes count as written. */
  (void)before_others(s);
  store_batch_free(s->deferred.batch);
  s->deferred.batch = NULL;
  s->ops->close(s);
}
const char *store_errmsg(const struct store *s) {
  return s->errmsg;
}

/* ------------------------------------------------------------------------
 * The space reserve (store.h, THE SPACE RESERVE): the one place where the
 * decision to refuse writes for lack of space is made, for every backend.
 * ------------------------------------------------------------------------ */

void store_set_reserve(struct store *s, uint64_t bytes) {
  s->disk.reserve = bytes;
}

int store_write_allowed(struct store *s) {
  if (!s->disk.full)
    return CHORUS_OK;
  if (s->disk.read_only && s->disk.avail > 0 &&
      s->disk.avail >= s->disk.reserve)
    return chorus_errf(s->errmsg, CHORUS_ENOSPC,
                       "data folder full (%llu bytes free); the store is "
                       "read-only until it reopens",
                       (unsigned long long)s->disk.avail);
  return chorus_errf(s->errmsg, CHORUS_ENOSPC,
                     "data folder full (%llu bytes free)",
                     (unsigned long long)s->disk.avail);
}

/* write_allowed: store_write_allowed, except that writes to STORE_META
 * alone (the node's identity and the metadata Raft log: a few kilobytes)
 * go on below the reserve while the backend can still write. The reserve
 * keeps client data from filling the disk; the metadata must not stop with
 * it, or a node short of space would hold up the whole cluster's metadata
 * (a Raft voter that cannot persist a term or an entry). */
static int write_allowed(struct store *s, bool meta_only) {
  if (meta_only && s->disk.full && !s->disk.read_only && s->disk.avail > 0)
    return CHORUS_OK;
  return store_write_allowed(s);
}

int store_check_space(struct store *s, bool *changed) {
  /* Before a reopen can lose them; a failure is store_commit's. */
  (void)before_others(s);
  struct store_disk *sp = &s->disk;
  bool was_full = sp->full;
  uint64_t avail = 0;
  bool can_write = true;
  int rc = s->ops->avail(s, &avail, &can_write);
  if (changed != NULL)
    *changed = false;
  if (rc != CHORUS_OK)
    return rc; /* the last decision stands */
  /* No bytes at all is full whatever the reserve: a write would fail. */
  bool room = avail > 0 && avail >= sp->reserve;
  if (!can_write && s->ops->reopen != NULL) {
    bool done = false;
    rc = s->ops->reopen(s, room, &done);
    if (done)
      sp->generation++;
    int src = s->ops->avail(s, &avail, &can_write);
    if (rc == CHORUS_OK)
      rc = src;
    room = avail > 0 && avail >= sp->reserve;
  }
  sp->avail = avail;
  sp->read_only = !can_write;
  sp->full = !can_write || !room;
  sp->stale = false;
  if (changed != NULL)
    *changed = sp->full != was_full;
  return rc;
}

bool store_space_stale(const struct store *s) {
  return s->disk.stale;
}

const struct store_disk *store_disk_info(const struct store *s) {
  return &s->disk;
}

/* ------------------------------------------------------------------------
 * Batches (their structs are at the top). Backends read them back through
 * store_batch_get().
 * ------------------------------------------------------------------------ */

static bool batch_meta_only(const struct store_batch *b) {
  for (size_t i = 0; i < b->count; i++)
    if (b->entries[i].space != STORE_META)
      return false;
  return true;
}

struct store_batch *store_batch_new(void) {
  return chorus_calloc(1, sizeof(struct store_batch));
}

static int batch_append(struct store_batch *b, enum store_space space,
                        int is_delete, const void *key, size_t klen,
                        const void *val, size_t vlen) {
  if ((unsigned)space >= STORE_SPACE_COUNT)
    return CHORUS_EINVAL;
  if ((key == NULL && klen > 0) || (val == NULL && vlen > 0))
    return CHORUS_EINVAL;
  if (klen > STORE_MAX_KEY || vlen > STORE_MAX_VALUE)
    return CHORUS_ETOOBIG;
  if (b->count == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 8;
    struct batch_entry *grown = chorus_realloc(b->entries, cap * sizeof *grown);
    if (grown == NULL)
      return CHORUS_ENOMEM;
    b->entries = grown;
    b->cap = cap;
  }
  unsigned char *bytes = chorus_malloc(klen + vlen);
  if (bytes == NULL)
    return CHORUS_ENOMEM;
  if (klen)
    memcpy(bytes, key, klen);
  if (vlen)
    memcpy(bytes + klen, val, vlen);
  b->entries[b->count++] = (struct batch_entry){
      .space = (unsigned char)space,
      .is_delete = (unsigned char)is_delete,
      .klen = klen,
      .vlen = vlen,
      .bytes = bytes,
  };
  return CHORUS_OK;
}

int store_batch_put(struct store_batch *b, enum store_space space,
                    const void *key, size_t klen, const void *val,
                    size_t vlen) {
  return batch_append(b, space, 0, key, klen, val, vlen);
}

int store_batch_delete(struct store_batch *b, enum store_space space,
                       const void *key, size_t klen) {
  return batch_append(b, space, 1, key, klen, NULL, 0);
}

size_t store_batch_count(const struct store_batch *b) {
  return b->count;
}

void store_batch_get(const struct store_batch *b, size_t i,
                     struct store_batch_op *op) {
  const struct batch_entry *e = &b->entries[i];
  op->space = (enum store_space)e->space;
  op->is_delete = e->is_delete;
  op->key = e->bytes;
  op->klen = e->klen;
  op->val = e->bytes + e->klen;
  op->vlen = e->vlen;
}

void store_batch_clear(struct store_batch *b) {
  for (size_t i = 0; i < b->count; i++)
    chorus_free(b->entries[i].bytes);
  b->count = 0;
}

void store_batch_free(struct store_batch *b) {
  if (b == NULL)
    return;
  store_batch_clear(b);
  chorus_free(b->entries);
  chorus_free(b);
}

/* ------------------------------------------------------------------------
 * Deferred writes (store.h, DEFERRED WRITES)
 * ------------------------------------------------------------------------ */

static int broken(struct store *s) {
  return chorus_errf(s->errmsg, CHORUS_ESYNCFAILED,
                     "deferred writes that reads had seen could not be "
                     "applied; the store refuses writes");
}

/* deferred_get: true when the deferred batch decides @key's value (the
 * newest of its operations on it), with *@rc store_get's answer. */
static bool deferred_get(struct store *s, enum store_space space,
                         const void *key, size_t klen, void **val, size_t *vlen,
                         int *rc) {
  struct store_batch *b = s->deferred.batch;
  if (b == NULL)
    return false;
  for (size_t i = b->count; i-- > 0;) {
    const struct batch_entry *e = &b->entries[i];
    if (e->klen != klen || e->space != (unsigned char)space ||
        (klen > 0 && memcmp(e->bytes, key, klen) != 0))
      continue;
    if (e->is_delete) {
      *rc = CHORUS_ENOTFOUND;
      return true;
    }
    if ((*val = chorus_malloc(e->vlen ? e->vlen : 1)) == NULL) {
      *rc = chorus_errf(s->errmsg, CHORUS_ENOMEM, "get: copying a value");
      return true;
    }
    if (e->vlen)
      memcpy(*val, e->bytes + e->klen, e->vlen);
    *vlen = e->vlen;
    s->deferred.exposed = true;
    *rc = CHORUS_OK;
    return true;
  }
  return false;
}

/* apply_deferred: the deferred batch as one backend write (*@seq, may be
 * NULL: its sequence). A failure is kept for store_commit, or breaks the
 * store when a read had seen the batch; either way it is returned. */
static int apply_deferred(struct store *s, chorus_seq *seq) {
  struct store_deferred *d = &s->deferred;
  if (d->broken)
    return broken(s);
  chorus_seq ignored;
  if (d->batch == NULL || d->batch->count == 0) {
    if (seq != NULL)
      *seq = s->ops->last_seq(s);
    return CHORUS_OK;
  }
  int rc = wrote(s, s->ops->write_batch(s, d->batch, seq ? seq : &ignored));
  bool exposed = d->exposed;
  store_batch_clear(d->batch);
  d->bytes = 0;
  d->exposed = false;
  if (rc == CHORUS_OK)
    return rc;
  if (exposed) {
    d->broken = true;
    return broken(s);
  }
  d->failed = rc;
  return rc;
}

/* before_others: what every call that could observe or order around the
 * deferred writes does first. Only a broken store stops the call; a
 * failed application is store_commit's to report. */
static int before_others(struct store *s) {
  int rc = apply_deferred(s, NULL);
  return s->deferred.broken ? rc : CHORUS_OK;
}

int store_defer(struct store *s, struct store_batch *b) {
  if (b == NULL)
    return chorus_errf(s->errmsg, CHORUS_EINVAL, "NULL batch");
  struct store_deferred *d = &s->deferred;
  if (d->broken)
    return broken(s);
  if (b->count == 0)
    return CHORUS_OK;
  int rc = write_allowed(s, batch_meta_only(b));
  if (rc != CHORUS_OK)
    return rc;
  if (d->batch == NULL && (d->batch = store_batch_new()) == NULL)
    return chorus_errf(s->errmsg, CHORUS_ENOMEM, "deferring a batch");
  if (d->batch->count + b->count > STORE_DEFER_MAX_OPS ||
      d->bytes > STORE_DEFER_MAX_BYTES) {
    /* Full: applied now (a failure is store_commit's), then ours. */
    if ((rc = before_others(s)) != CHORUS_OK)
      return rc;
  }
  struct store_batch *to = d->batch;
  if (to->count + b->count > to->cap) {
    size_t cap = to->cap ? to->cap : 8;
    while (cap < to->count + b->count)
      cap *= 2;
    struct batch_entry *grown =
        chorus_realloc(to->entries, cap * sizeof *grown);
    if (grown == NULL)
      return chorus_errf(s->errmsg, CHORUS_ENOMEM, "deferring a batch");
    to->entries = grown;
    to->cap = cap;
  }
  /* The operations move: their bytes change owner, nothing is copied. */
  for (size_t i = 0; i < b->count; i++) {
    to->entries[to->count++] = b->entries[i];
    d->bytes += b->entries[i].klen + b->entries[i].vlen;
  }
  b->count = 0;
  return CHORUS_OK;
}

int store_commit(struct store *s) {
  struct store_deferred *d = &s->deferred;
  int rc = apply_deferred(s, NULL);
  if (rc == CHORUS_OK && d->failed != CHORUS_OK)
    rc = chorus_errf(s->errmsg, d->failed,
                     "deferred writes could not be applied: %s",
                     chorus_strerror(d->failed));
  d->failed = CHORUS_OK;
  return rc;
}

void store_defer_drop(struct store *s) {
  struct store_deferred *d = &s->deferred;
  if (d->batch != NULL)
    store_batch_clear(d->batch);
  /* A new process: nothing it deferred, nothing it broke. */
  d->bytes = 0;
  d->promised = 0;
  d->failed = CHORUS_OK;
  d->exposed = d->broken = false;
}

/* ------------------------------------------------------------------------
 * Key layout
 * ------------------------------------------------------------------------ */

size_t store_data_key(unsigned char *out, chorus_token token, const void *key,
                      size_t klen) {
  store_be64_put(out, token);
  if (klen)
    memcpy(out + STORE_TOKEN_PREFIX, key, klen);
  return STORE_TOKEN_PREFIX + klen;
}

int store_data_key_parse(const void *dkey, size_t dklen, chorus_token *token,
                         const void **key, size_t *klen) {
  if (dklen < STORE_TOKEN_PREFIX)
    return CHORUS_ECORRUPT;
  const unsigned char *p = dkey;
  *token = store_be64_get(p);
  *key = p + STORE_TOKEN_PREFIX;
  *klen = dklen - STORE_TOKEN_PREFIX;
  return CHORUS_OK;
}
