/* store_mem.c: the in-memory storage backend that models what a crash loses.
 *
 * HOW IT WORKS
 *
 * Each key space is one sorted array of pointers to records; a record holds
 * a key and its value in one allocation and is reference-counted, so the live
 * map, the undo log and iterator snapshots share it without copying bytes.
 * Lookups are binary searches in memcmp order (shorter prefix first).
 *
 * store_mem.h speaks of two maps, `current` and `durable`. We keep only
 * `current` and an undo log that turns it back into `durable`: every write
 * since the last completed sync is one log entry (a batch is one entry), and
 * each of its operations remembers the record it displaced. So
 *
 *   durable  = current with every log entry undone, newest first
 *   sync     = forget the log (durable := current)
 *   crash(k) = undo log entries newest first until k remain, then forget
 *              the log (the restart's recovery made them durable)
 *
 * Undoing restores earlier states exactly, and a map's array capacity never
 * shrinks, so an undo never needs memory: sync and crash cannot fail for lack
 * of it, and the simulator can crash a node at any moment. Only writes,
 * reads, iterator opens and barrier requests allocate, and each of them
 * allocates everything it needs before it changes anything, so an
 * out-of-memory failure leaves the store exactly as it was.
 *
 * After crash(k) the recovered writes count as durable, as they are after
 * RocksDB reopens: recovery writes the replayed WAL to a synced table file
 * before the database opens. A second crash cannot lose them.
 *
 * The log keeps displaced records alive until the next sync, so memory grows
 * with the writes between syncs; the simulator syncs on every step it wants.
 *
 * Injected faults (store_inject_fault) are one-shot flags, one per kind:
 * WRITE and NOSPC fail the next put, delete or non-empty batch; READ fails
 * the next get or the next positioning step of an iterator (its open or a
 * next), which then ends with status CHORUS_EIO; SYNC fails the next sync
 * step or store_sync. STORE_FAULT_NONE clears them all; a crash clears them
 * too, since a restarted process starts without them.
 *
 * STORE_FAULT_FULL is the disk's state, not a one-shot: while it lasts the
 * store reports no bytes available (so store_check_space refuses writes,
 * as chorusd's does over a full data folder) and every write fails with
 * CHORUS_ENOSPC; reads and barriers of earlier writes work. It survives a
 * crash (a restart finds the disk as full as it was) and ends with
 * STORE_FAULT_NONE. Otherwise the store reports MEM_AVAIL bytes free.
 *
 * Barrier callbacks run inside store_mem_sync_step(), store_sync() and
 * store_close(). A callback may read, write and request new barriers (those
 * wait for the next sync step); it must not call store_sync(),
 * store_mem_sync_step(), store_mem_crash() or store_close() on the same
 * store (asserted). Iterators must be closed before store_close() (asserted).
 */
#include "store_mem.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "chorus_alloc.h"

/* ------------------------------------------------------------------------
 * Records and ordered maps
 * ------------------------------------------------------------------------ */

/* A key and its value, shared by reference count. */
struct mem_rec {
  size_t refs; /* the map, displacing log entries, iterator snapshots */
  size_t klen, vlen;
  unsigned char bytes[]; /* key, then value */
};

struct mem_map {
  struct mem_rec **recs; /* sorted by key, memcmp order */
  size_t count, cap;     /* cap never shrinks: undo relies on it */
};

static struct mem_rec *rec_new(const void *key, size_t klen, const void *val,
                               size_t vlen) {
  struct mem_rec *r = chorus_malloc(sizeof *r + klen + vlen);
  if (r == NULL)
    return NULL;
  r->refs = 1;
  r->klen = klen;
  r->vlen = vlen;
  if (klen)
    memcpy(r->bytes, key, klen);
  if (vlen)
    memcpy(r->bytes + klen, val, vlen);
  return r;
}

static void rec_release(struct mem_rec *r) {
  if (r == NULL)
    return;
  assert(r->refs > 0);
  if (--r->refs == 0)
    chorus_free(r);
}

/* Unsigned byte order; a proper prefix sorts first. */
static int key_cmp(const void *a, size_t alen, const void *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if (c != 0)
    return c;
  return (alen > blen) - (alen < blen);
}

/* The first position whose key is >= @key; *@found says whether it is equal. */
static size_t map_lower_bound(const struct mem_map *m, const void *key,
                              size_t klen, int *found) {
  size_t lo = 0, hi = m->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct mem_rec *r = m->recs[mid];
    if (key_cmp(r->bytes, r->klen, key, klen) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (found != NULL)
    *found = lo < m->count &&
             key_cmp(m->recs[lo]->bytes, m->recs[lo]->klen, key, klen) == 0;
  return lo;
}

/* Makes room for @extra more records; on failure the map is unchanged. */
static int map_reserve(struct mem_map *m, size_t extra) {
  if (extra <= m->cap - m->count)
    return CHORUS_OK;
  if (extra > SIZE_MAX / sizeof(struct mem_rec *) - m->count)
    return CHORUS_ENOMEM;
  size_t need = m->count + extra;
  size_t cap = m->cap ? m->cap : 16;
  while (cap < need)
    cap = cap > SIZE_MAX / sizeof(struct mem_rec *) / 2 ? need : cap * 2;
  struct mem_rec **grown = chorus_realloc(m->recs, cap * sizeof *grown);
  if (grown == NULL)
    return CHORUS_ENOMEM;
  m->recs = grown;
  m->cap = cap;
  return CHORUS_OK;
}

static void map_insert_at(struct mem_map *m, size_t pos, struct mem_rec *r) {
  assert(m->count < m->cap);
  memmove(&m->recs[pos + 1], &m->recs[pos],
          (m->count - pos) * sizeof m->recs[0]);
  m->recs[pos] = r;
  m->count++;
}

static void map_remove_at(struct mem_map *m, size_t pos) {
  assert(pos < m->count);
  memmove(&m->recs[pos], &m->recs[pos + 1],
          (m->count - pos - 1) * sizeof m->recs[0]);
  m->count--;
}

/* ------------------------------------------------------------------------
 * The undo log: one entry per write since the last completed sync
 * ------------------------------------------------------------------------ */

/* One operation of a write and what it displaced. */
struct mem_undo {
  unsigned char space;
  struct mem_rec *put;      /* the record a put installed (the map owns it);
                               NULL for a delete */
  struct mem_rec *replaced; /* the record the operation displaced, owned
                               here; NULL if the key was absent */
};

struct mem_write {
  struct mem_write *prev, *next; /* oldest first */
  chorus_seq seq;
  size_t nops;
  struct mem_undo ops[];
};

/* Puts back what operation @u displaced. Never allocates: the map held this
 * many records before, and its capacity never shrinks. */
static void undo_op(struct mem_map *maps, struct mem_undo *u) {
  struct mem_map *m = &maps[u->space];
  int found;
  if (u->put != NULL) {
    size_t pos = map_lower_bound(m, u->put->bytes, u->put->klen, &found);
    assert(found && m->recs[pos] == u->put);
    rec_release(u->put);
    if (u->replaced != NULL)
      m->recs[pos] = u->replaced;
    else
      map_remove_at(m, pos);
  } else if (u->replaced != NULL) {
    size_t pos =
        map_lower_bound(m, u->replaced->bytes, u->replaced->klen, &found);
    assert(!found);
    map_insert_at(m, pos, u->replaced);
  }
  u->put = NULL;
  u->replaced = NULL;
}

/* Frees an entry whose operations are kept (or undone already). */
static void write_free(struct mem_write *w) {
  for (size_t i = 0; i < w->nops; i++)
    rec_release(w->ops[i].replaced);
  chorus_free(w);
}

/* ------------------------------------------------------------------------
 * The store
 * ------------------------------------------------------------------------ */

struct mem_barrier {
  chorus_seq seq;
  store_sync_cb cb;
  void *arg;
};

struct mem_store {
  struct store base;
  struct mem_map maps[STORE_SPACE_COUNT];
  struct mem_write *log_head, *log_tail; /* unsynced writes, oldest first */
  size_t log_len;
  chorus_seq last_seq, durable_seq;
  struct mem_barrier *barriers; /* pending, in request order */
  size_t nbarriers, barriers_cap;
  int sync_failed;        /* sticky until a crash (a reopen) */
  unsigned char fault[5]; /* one-shot injected faults, by enum store_fault */
  bool disk_full;         /* STORE_FAULT_FULL: until STORE_FAULT_NONE */
  int firing;             /* barrier callbacks are running */
  size_t open_iters;
};

static const struct store_ops mem_ops;

static struct mem_store *to_mem(struct store *s) {
  assert(s != NULL && s->ops == &mem_ops);
  return (struct mem_store *)s;
}

static int take_fault(struct mem_store *s, enum store_fault f) {
  if (!s->fault[f])
    return 0;
  s->fault[f] = 0;
  return 1;
}

/* Forgets the log: every write so far is durable. */
static void log_commit(struct mem_store *s) {
  struct mem_write *w = s->log_head;
  while (w != NULL) {
    struct mem_write *next = w->next;
    write_free(w);
    w = next;
  }
  s->log_head = s->log_tail = NULL;
  s->log_len = 0;
  s->durable_seq = s->last_seq;
}

/* Runs the pending barriers' callbacks in request order with @status. The
 * list is detached first, so barriers requested from a callback wait for the
 * next sync step. Returns how many ran. */
static int fire_barriers(struct mem_store *s, chorus_seq durable, int status) {
  struct mem_barrier *list = s->barriers;
  size_t n = s->nbarriers;
  s->barriers = NULL;
  s->nbarriers = s->barriers_cap = 0;
  s->firing = 1;
  for (size_t i = 0; i < n; i++)
    list[i].cb(list[i].arg, durable, status);
  s->firing = 0;
  chorus_free(list);
  return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* ------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------ */

static int mem_get(struct store *base, enum store_space space, const void *key,
                   size_t klen, void **val, size_t *vlen) {
  struct mem_store *s = to_mem(base);
  if (take_fault(s, STORE_FAULT_READ))
    return chorus_errf(s->base.errmsg, CHORUS_EIO,
                       "store_mem get: injected read fault");
  const struct mem_map *m = &s->maps[space];
  int found;
  size_t pos = map_lower_bound(m, key, klen, &found);
  if (!found)
    return chorus_errf(s->base.errmsg, CHORUS_ENOTFOUND,
                       "store_mem get: key of %zu bytes not found", klen);
  const struct mem_rec *r = m->recs[pos];
  void *copy = chorus_memdup(r->bytes + r->klen, r->vlen);
  if (copy == NULL)
    return chorus_errf(s->base.errmsg, CHORUS_ENOMEM,
                       "store_mem get: out of memory copying a %zu-byte value",
                       r->vlen);
  *val = copy;
  *vlen = r->vlen;
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * Writes: put, delete and batch share one path
 * ------------------------------------------------------------------------ */

/* The operations of a write: a batch, or one put or delete. */
struct mem_ops_src {
  const struct store_batch *batch;
  struct store_batch_op single;
  size_t n;
};

static void src_op(const struct mem_ops_src *src, size_t i,
                   struct store_batch_op *op) {
  if (src->batch != NULL)
    store_batch_get(src->batch, i, op);
  else
    *op = src->single;
}

static int mem_write(struct mem_store *s, const char *what,
                     const struct mem_ops_src *src, chorus_seq *seq) {
  char *errmsg = s->base.errmsg;
  if (s->sync_failed)
    return chorus_errf(errmsg, CHORUS_ESYNCFAILED,
                       "store_mem %s: refused, a sync failed earlier (the "
                       "store must be reopened)",
                       what);
  if (take_fault(s, STORE_FAULT_WRITE))
    return chorus_errf(errmsg, CHORUS_EIO, "store_mem %s: injected write fault",
                       what);
  if (take_fault(s, STORE_FAULT_NOSPC))
    return chorus_errf(errmsg, CHORUS_ENOSPC,
                       "store_mem %s: injected out-of-space fault", what);
  if (s->disk_full)
    return chorus_errf(errmsg, CHORUS_ENOSPC,
                       "store_mem %s: no space left on the (simulated) disk",
                       what);

  size_t n = src->n;
  assert(n > 0);
  if (n > (SIZE_MAX - sizeof(struct mem_write)) / sizeof(struct mem_undo))
    return chorus_errf(errmsg, CHORUS_ENOMEM, "store_mem %s: %zu operations",
                       what, n);
  struct mem_write *w =
      chorus_calloc(1, sizeof *w + n * sizeof(struct mem_undo));
  if (w == NULL)
    goto err_nomem;
  w->nops = n;

  /* Everything that can fail happens before the first change. */
  size_t puts[STORE_SPACE_COUNT] = {0};
  struct store_batch_op op;
  for (size_t i = 0; i < n; i++) {
    src_op(src, i, &op);
    w->ops[i].space = (unsigned char)op.space;
    if (op.is_delete)
      continue;
    puts[op.space]++;
    w->ops[i].put = rec_new(op.key, op.klen, op.val, op.vlen);
    if (w->ops[i].put == NULL)
      goto err_after_recs;
  }
  for (int sp = 0; sp < STORE_SPACE_COUNT; sp++)
    if (map_reserve(&s->maps[sp], puts[sp]) != CHORUS_OK)
      goto err_after_recs;

  /* Apply, remembering what each operation displaces. */
  for (size_t i = 0; i < n; i++) {
    struct mem_undo *u = &w->ops[i];
    struct mem_map *m = &s->maps[u->space];
    int found;
    size_t pos;
    if (u->put != NULL) {
      pos = map_lower_bound(m, u->put->bytes, u->put->klen, &found);
      if (found) {
        u->replaced = m->recs[pos];
        m->recs[pos] = u->put;
      } else {
        map_insert_at(m, pos, u->put);
      }
    } else {
      src_op(src, i, &op);
      pos = map_lower_bound(m, op.key, op.klen, &found);
      if (found) {
        u->replaced = m->recs[pos];
        map_remove_at(m, pos);
      }
    }
  }

  w->seq = ++s->last_seq;
  w->prev = s->log_tail;
  if (s->log_tail != NULL)
    s->log_tail->next = w;
  else
    s->log_head = w;
  s->log_tail = w;
  s->log_len++;
  *seq = w->seq;
  return CHORUS_OK;

err_after_recs:
  for (size_t i = 0; i < n; i++)
    rec_release(w->ops[i].put);
  chorus_free(w);
err_nomem:
  return chorus_errf(errmsg, CHORUS_ENOMEM,
                     "store_mem %s: out of memory (%zu operations)", what, n);
}

static int mem_put(struct store *base, enum store_space space, const void *key,
                   size_t klen, const void *val, size_t vlen, chorus_seq *seq) {
  struct mem_ops_src src = {
      .single =
          {.space = space, .key = key, .klen = klen, .val = val, .vlen = vlen},
      .n = 1,
  };
  return mem_write(to_mem(base), "put", &src, seq);
}

static int mem_del(struct store *base, enum store_space space, const void *key,
                   size_t klen, chorus_seq *seq) {
  struct mem_ops_src src = {
      .single = {.space = space, .is_delete = 1, .key = key, .klen = klen},
      .n = 1,
  };
  return mem_write(to_mem(base), "delete", &src, seq);
}

static int mem_write_batch(struct store *base, const struct store_batch *b,
                           chorus_seq *seq) {
  struct mem_ops_src src = {.batch = b, .n = store_batch_count(b)};
  return mem_write(to_mem(base), "batch", &src, seq);
}

/* ------------------------------------------------------------------------
 * Iterators: a copy of the range's record pointers, taken at open
 * ------------------------------------------------------------------------ */

struct mem_iter {
  struct store_iter base;
  struct mem_store *s; /* for injected read faults */
  size_t pos, n;
  int status;
  struct mem_rec *recs[]; /* the snapshot; one reference each */
};

static const struct store_iter_ops mem_iter_ops;

static struct mem_iter *to_iter(struct store_iter *it) {
  assert(it != NULL && it->ops == &mem_iter_ops);
  return (struct mem_iter *)it;
}

/* A positioning step: where an injected read fault ends the scan. */
static void iter_step_check(struct mem_iter *it) {
  if (it->pos < it->n && take_fault(it->s, STORE_FAULT_READ))
    it->status = chorus_errf(it->s->base.errmsg, CHORUS_EIO,
                             "store_mem scan: injected read fault at entry %zu",
                             it->pos);
}

static int mem_iter_open(struct store *base, enum store_space space,
                         const void *lo, size_t lolen, const void *hi,
                         size_t hilen, struct store_iter **out) {
  struct mem_store *s = to_mem(base);
  const struct mem_map *m = &s->maps[space];
  size_t first = lo ? map_lower_bound(m, lo, lolen, NULL) : 0;
  size_t end = hi ? map_lower_bound(m, hi, hilen, NULL) : m->count;
  size_t n = end > first ? end - first : 0;
  struct mem_iter *it = chorus_malloc(sizeof *it + n * sizeof it->recs[0]);
  if (it == NULL)
    return chorus_errf(s->base.errmsg, CHORUS_ENOMEM,
                       "store_mem iter_open: out of memory for a %zu-entry "
                       "snapshot",
                       n);
  it->base.ops = &mem_iter_ops;
  it->s = s;
  it->pos = 0;
  it->n = n;
  it->status = CHORUS_OK;
  for (size_t i = 0; i < n; i++) {
    it->recs[i] = m->recs[first + i];
    it->recs[i]->refs++;
  }
  s->open_iters++;
  iter_step_check(it);
  *out = &it->base;
  return CHORUS_OK;
}

static int mem_iter_valid(struct store_iter *base) {
  struct mem_iter *it = to_iter(base);
  return it->status == CHORUS_OK && it->pos < it->n;
}

static void mem_iter_next(struct store_iter *base) {
  struct mem_iter *it = to_iter(base);
  assert(mem_iter_valid(base));
  it->pos++;
  iter_step_check(it);
}

static const void *mem_iter_key(struct store_iter *base, size_t *len) {
  struct mem_iter *it = to_iter(base);
  assert(mem_iter_valid(base));
  const struct mem_rec *r = it->recs[it->pos];
  *len = r->klen;
  return r->bytes;
}

static const void *mem_iter_value(struct store_iter *base, size_t *len) {
  struct mem_iter *it = to_iter(base);
  assert(mem_iter_valid(base));
  const struct mem_rec *r = it->recs[it->pos];
  *len = r->vlen;
  return r->bytes + r->klen;
}

static void mem_iter_seek(struct store_iter *base, const void *key,
                          size_t len) {
  struct mem_iter *it = to_iter(base);
  if (it->status != CHORUS_OK)
    return;
  size_t lo = 0, hi = it->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct mem_rec *r = it->recs[mid];
    if (key_cmp(r->bytes, r->klen, key, len) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  it->pos = lo;
  iter_step_check(it);
}

static int mem_iter_status(struct store_iter *base) {
  return to_iter(base)->status;
}

static void mem_iter_close(struct store_iter *base) {
  struct mem_iter *it = to_iter(base);
  for (size_t i = 0; i < it->n; i++)
    rec_release(it->recs[i]);
  assert(it->s->open_iters > 0);
  it->s->open_iters--;
  chorus_free(it);
}

static const struct store_iter_ops mem_iter_ops = {
    .valid = mem_iter_valid,
    .next = mem_iter_next,
    .key = mem_iter_key,
    .value = mem_iter_value,
    .status = mem_iter_status,
    .close = mem_iter_close,
    .seek = mem_iter_seek,
};

/* ------------------------------------------------------------------------
 * Durability
 * ------------------------------------------------------------------------ */

static int mem_sync_request(struct store *base, chorus_seq seq,
                            store_sync_cb cb, void *arg) {
  struct mem_store *s = to_mem(base);
  if (s->sync_failed)
    return chorus_errf(s->base.errmsg, CHORUS_ESYNCFAILED,
                       "store_mem sync_request: refused, a sync failed "
                       "earlier (the store must be reopened)");
  if (s->nbarriers == s->barriers_cap) {
    size_t cap = s->barriers_cap ? s->barriers_cap * 2 : 8;
    struct mem_barrier *grown =
        cap > SIZE_MAX / sizeof *grown
            ? NULL
            : chorus_realloc(s->barriers, cap * sizeof *grown);
    if (grown == NULL)
      return chorus_errf(s->base.errmsg, CHORUS_ENOMEM,
                         "store_mem sync_request: out of memory queueing "
                         "barrier %zu",
                         s->nbarriers + 1);
    s->barriers = grown;
    s->barriers_cap = cap;
  }
  s->barriers[s->nbarriers++] = (struct mem_barrier){seq, cb, arg};
  return CHORUS_OK;
}

int store_mem_sync_step(struct store *base) {
  struct mem_store *s = to_mem(base);
  assert(!s->firing && "sync step from inside a barrier callback");
  if (s->sync_failed) {
    assert(s->nbarriers == 0);
    return chorus_errf(s->base.errmsg, CHORUS_ESYNCFAILED,
                       "store_mem sync: refused, a sync failed earlier (the "
                       "store must be reopened)");
  }
  if (take_fault(s, STORE_FAULT_SYNC)) {
    /* A failed fsync may have dropped dirty pages: what reached the disk is
     * unknown, so nothing new is durable and the store stops accepting
     * writes (store.h, ERRORS). The log stays for a later crash to cut. */
    s->sync_failed = 1;
    size_t unsynced = s->log_len;
    fire_barriers(s, s->durable_seq, CHORUS_ESYNCFAILED);
    return chorus_errf(s->base.errmsg, CHORUS_ESYNCFAILED,
                       "store_mem sync: injected fsync failure with %zu "
                       "unsynced writes; the store is now read-only",
                       unsynced);
  }
  log_commit(s);
  return fire_barriers(s, s->durable_seq, CHORUS_OK);
}

/* The memory store models power loss; a process crash loses nothing here,
 * so there is nothing to hand over. A sticky failure still answers. */
static int mem_flush(struct store *base) {
  struct mem_store *s = to_mem(base);
  return s->sync_failed ? CHORUS_ESYNCFAILED : CHORUS_OK;
}

static int mem_sync(struct store *base) {
  int rc = store_mem_sync_step(base);
  return rc < 0 ? rc : CHORUS_OK;
}

size_t store_mem_pending_syncs(struct store *base) {
  return to_mem(base)->nbarriers;
}

size_t store_mem_unsynced(struct store *base) {
  return to_mem(base)->log_len;
}

size_t store_mem_open_iters(struct store *base) {
  return to_mem(base)->open_iters;
}

int store_mem_crash(struct store *base, size_t keep) {
  struct mem_store *s = to_mem(base);
  assert(!s->firing && "crash from inside a barrier callback");
  /* Deferred writes never reached the WAL (store.h, DEFERRED WRITES). */
  store_defer_drop(base);
  if (keep > s->log_len)
    keep = s->log_len;
  /* A WAL written but not synced loses a suffix, never a hole: undo the
   * newest entries first, each operation of a batch in reverse order, so a
   * batch comes back whole or not at all. */
  while (s->log_len > keep) {
    struct mem_write *w = s->log_tail;
    for (size_t i = w->nops; i-- > 0;)
      undo_op(s->maps, &w->ops[i]);
    s->log_tail = w->prev;
    if (s->log_tail != NULL)
      s->log_tail->next = NULL;
    else
      s->log_head = NULL;
    s->log_len--;
    write_free(w);
  }
  s->last_seq = s->log_tail != NULL ? s->log_tail->seq : s->durable_seq;
  log_commit(s);
  /* The process that asked for the barriers is gone: no callbacks. */
  chorus_free(s->barriers);
  s->barriers = NULL;
  s->nbarriers = s->barriers_cap = 0;
  s->sync_failed = 0;
  memset(s->fault, 0, sizeof s->fault);
  return CHORUS_OK;
}

static chorus_seq mem_last_seq(struct store *base) {
  return to_mem(base)->last_seq;
}

static chorus_seq mem_durable_seq(struct store *base) {
  return to_mem(base)->durable_seq;
}

/* What a disk that is not full has available: plenty, whatever the
 * reserve (store_set_reserve) a test sets below it. */
#define MEM_AVAIL (UINT64_MAX / 2)

static int mem_avail(struct store *base, uint64_t *avail, bool *can_write) {
  struct mem_store *s = to_mem(base);
  *avail = s->disk_full ? 0 : MEM_AVAIL;
  *can_write = true;
  return CHORUS_OK;
}

/* A map's deletes free their records at once: nothing to reclaim. What it
 * holds is its keys and values, the memory a simulated node's data takes. */
static int mem_reclaim(struct store *base, chorus_token first,
                       chorus_token last) {
  (void)to_mem(base), (void)first, (void)last;
  return CHORUS_OK;
}

static int mem_usage(struct store *base, struct store_usage *out) {
  struct mem_store *s = to_mem(base);
  for (int i = 0; i < STORE_SPACE_COUNT; i++)
    for (size_t j = 0; j < s->maps[i].count; j++)
      out->memory_bytes += s->maps[i].recs[j]->klen + s->maps[i].recs[j]->vlen;
  return CHORUS_OK;
}

static void mem_inject_fault(struct store *base, enum store_fault fault) {
  struct mem_store *s = to_mem(base);
  if (fault == STORE_FAULT_NONE) {
    memset(s->fault, 0, sizeof s->fault);
    s->disk_full = false;
  } else if (fault == STORE_FAULT_FULL) {
    s->disk_full = true;
  } else if ((unsigned)fault < sizeof s->fault) {
    s->fault[fault] = 1;
  }
}

/* ------------------------------------------------------------------------
 * Open and close
 * ------------------------------------------------------------------------ */

static void mem_close(struct store *base) {
  struct mem_store *s = to_mem(base);
  assert(!s->firing && "close from inside a barrier callback");
  assert(s->open_iters == 0 && "store closed with iterators open");
  fire_barriers(s, s->durable_seq, CHORUS_ECANCELED);
  /* Close does not sync; the log's displaced records are simply dropped. */
  log_commit(s);
  for (int sp = 0; sp < STORE_SPACE_COUNT; sp++) {
    struct mem_map *m = &s->maps[sp];
    for (size_t i = 0; i < m->count; i++)
      rec_release(m->recs[i]);
    chorus_free(m->recs);
  }
  chorus_free(s);
}

static const struct store_ops mem_ops = {
    .name = "memory",
    .get = mem_get,
    .put = mem_put,
    .del = mem_del,
    .write_batch = mem_write_batch,
    .iter_open = mem_iter_open,
    .sync_request = mem_sync_request,
    .sync = mem_sync,
    .flush = mem_flush,
    .last_seq = mem_last_seq,
    .durable_seq = mem_durable_seq,
    .avail = mem_avail,
    .inject_fault = mem_inject_fault,
    .reclaim = mem_reclaim,
    .usage = mem_usage,
    .close = mem_close,
};

int store_mem_open(struct store **out) {
  *out = NULL;
  struct mem_store *s = chorus_calloc(1, sizeof *s);
  if (s == NULL)
    return CHORUS_ENOMEM;
  s->base.ops = &mem_ops;
  *out = &s->base;
  return CHORUS_OK;
}

int store_mem_is_mem(const struct store *s) {
  return s != NULL && s->ops == &mem_ops;
}
