/* repl_cleanup.c: after a topology change, the old owners drop the
 * objects of the ranges they gave away (repl.h, CLEANUP; Cassandra's
 * nodetool cleanup, run by the node itself). A scan of STORE_DATA in
 * storage-key order, a bounded number of keys per step, deleting every
 * object whose token this node is neither a natural nor a pending replica
 * of in the ring in force, unless a hint still needs it (replay sends the
 * current object). The deletes are not synced: a crash only leaves work
 * for the next scan. */
#include <inttypes.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_int.h"

/* ------------------------------------------------------------------------
 * THE SCAN'S READ (issue 27). A step used to open a new iterator at its
 * cursor. With RocksDB that costs the whole data memtable: it is hashed by
 * token (store_rocksdb.c), so an ordered iterator first copies every entry
 * into a sorted view, O(m log m) for m entries, whatever the bounds. Under
 * a sustained write load the memtable holds a few hundred thousand entries
 * and one open took 100-300 ms; a step every 20 ms of 1,000 keys made the
 * loop spend nearly all its time sorting, for as long as the scan lasted
 * (100,000 keys: 100 steps, half a minute), and the whole cluster stalled
 * ten seconds after it formed (the cleanup's grace period): replica
 * answers a second late, gossip suspicions, ops/s down a hundredfold.
 *
 * Two things make it cheap again:
 *   - a node that owns every token of the ring in force (N at least the
 *     number of nodes, the usual small cluster) has nothing to delete: the
 *     scan ends at once, without a read;
 *   - the scan keeps its read across steps and goes on from where it
 *     stopped, seeking over the spans this node owns, as a stream read is
 *     kept for a puller (repl_stream.c): a new one only when the ring or
 *     the store (a reopen) changed, or after REPL_CLEANUP_READ_MAX_AGE_MS.
 *     Its snapshot misses what was written after it opened: an object
 *     this node does not own written since then sets repl_cleanup_wanted
 *     (repl_replica.c), so a later scan finds it; the age bounds how long
 *     the read pins the store's old memtables and files. The hint round
 *     closes a read idle for REPL_STREAM_READ_IDLE_MS (a scan a change
 *     stopped), and every read once the store failed.
 * ------------------------------------------------------------------------ */

static void cleanup_read_close(struct repl_cleanup *cl) {
  if (cl->it != NULL)
    store_iter_close(cl->it);
  cl->it = NULL;
}

void repl__cleanup_read_close(struct repl *r, chorus_ms now, bool all) {
  struct repl_cleanup *cl = &r->cleanup;
  if (cl->it != NULL && (all || now - cl->used >= REPL_STREAM_READ_IDLE_MS))
    cleanup_read_close(cl);
}

void repl__cleanup_free(struct repl *r) {
  cleanup_read_close(&r->cleanup);
  chorus_free(r->cleanup.from);
  r->cleanup = (struct repl_cleanup){0};
}

/* ------------------------------------------------------------------------
 * DROPPED KEYSPACES (issue 21). A keyspace's drop makes its keys
 * unreachable at once (its id is never given again); their space comes
 * back here. A ring that knows of dropped keyspaces (ring_key_dropped)
 * the scans have not collected yet asks for a scan (repl_set_ring sets
 * cleanup_wanted), and that scan looks at every key, even in the spans and
 * classes this node owns whole, deleting each dropped keyspace's key
 * unless a hint still needs it. Nothing else keeps them meanwhile: they
 * are in no anti-entropy tree and no stream (repl_aae_serve.c,
 * repl_stream.c), so one scan per node per drop ends them. The ring the
 * scan ends under names what it collected (its class map); a drop during
 * the scan asks for another.
 * ------------------------------------------------------------------------ */

/* drops_pending: whether the ring in force names dropped keyspaces that
 * no whole scan has collected. */
static bool drops_pending(const struct repl *r) {
  return r->ring != NULL && ring_snapshot_has_dropped(r->ring) &&
         ring_snapshot_class_map(r->ring) != r->dropped_done;
}

void repl__cleanup_note_ring(struct repl *r) {
  if (drops_pending(r))
    r->cleanup_wanted = true;
}

void repl_cleanup_begin(struct repl *r) {
  repl__cleanup_free(r);
  r->cleanup = (struct repl_cleanup){.active = true};
  r->cleanup_wanted = false;
  if (drops_pending(r)) {
    r->cleanup.collect = true;
    r->cleanup.collect_map = ring_snapshot_class_map(r->ring);
  }
}

bool repl_cleanup_wanted(const struct repl *r) {
  return r->cleanup_wanted;
}

/* owned: whether this node holds @token's replicas in @ring (the ring in
 * force, or one of its classes); *@span_end is the last token with the
 * same answer (the span of the ring that holds @token). */
static bool owned(const struct repl *r, const struct ring_snapshot *ring,
                  chorus_token token, chorus_token *span_end) {
  size_t n = ring_snapshot_token_count(ring),
         at = ring_snapshot_token_index(ring, token);
  *span_end = at < n ? ring_snapshot_token(ring, at, NULL) : UINT64_MAX;
  struct ring_plist pl;
  if (ring_lookup(ring, token, 0, &pl) != CHORUS_OK)
    return true; /* no replica at all: keep everything */
  for (unsigned i = 0; i < (unsigned)pl.n_natural + pl.n_pending; i++)
    if (pl.r[i].id == r->cfg.self)
      return true;
  return false;
}

/* owns_all: whether this node holds every token of @ring (then no object
 * of its class is to be deleted): one lookup per span of the ring. */
static bool owns_all(const struct repl *r, const struct ring_snapshot *ring) {
  chorus_token t = 0, span_end;
  for (;;) {
    if (!owned(r, ring, t, &span_end))
      return false;
    if (span_end == UINT64_MAX)
      return true;
    t = span_end + 1;
  }
}

/* ------------------------------------------------------------------------
 * CLASSES. A key is owned in its replication class (ring.h): a keyspace
 * with a replication of its own (N=1 under a cluster of N=3) keeps its
 * keys on other nodes than the cluster's, and a node drops the ones of it
 * that it does not replicate even where it owns the cluster's range. The
 * scan keeps one verdict per class (@spans: owned or not, up to the end
 * of the span that holds the token looked at); a class this node owns
 * whole is owned to the top at once (the shortcut above, per class: the
 * scan reads nothing when every class is owned whole). It seeks over a
 * span only where every class is owned (then no key there, of any class,
 * is deleted), to the first end of those spans; elsewhere it looks at
 * each key and judges it in its own class.
 * ------------------------------------------------------------------------ */

struct spans {
  unsigned n;                         /* classes of the ring in force */
  bool known[RING_MAX_CLASSES];       /* a verdict is held for... */
  bool keep[RING_MAX_CLASSES];        /* ...owned or not... */
  chorus_token end[RING_MAX_CLASSES]; /* ...up to this token */
};

/* spans_init: no verdict yet, but for the classes this node owns whole
 * (cl->whole, checked once a scan). */
static void spans_init(const struct repl *r, struct spans *sp) {
  *sp = (struct spans){.n = ring_snapshot_class_count(r->ring)};
  for (unsigned c = 0; c < sp->n; c++)
    if (r->cleanup.whole & (1u << c)) {
      sp->known[c] = sp->keep[c] = true;
      sp->end[c] = UINT64_MAX;
    }
}

/* spans_keep: whether class @c owns @t, its verdict renewed when @t is
 * past its span. */
static bool spans_keep(const struct repl *r, struct spans *sp, unsigned c,
                       chorus_token t) {
  if (!sp->known[c] || t > sp->end[c]) {
    sp->keep[c] = owned(r, ring_snapshot_class(r->ring, c), t, &sp->end[c]);
    sp->known[c] = true;
  }
  return sp->keep[c];
}

/* spans_all: whether every class owns @t; then *@end is the last token
 * they all own from @t on. */
static bool spans_all(const struct repl *r, struct spans *sp, chorus_token t,
                      chorus_token *end) {
  *end = UINT64_MAX;
  for (unsigned c = 0; c < sp->n; c++) {
    if (!spans_keep(r, sp, c, t))
      return false;
    if (sp->end[c] < *end)
      *end = sp->end[c];
  }
  return true;
}

/* cleanup_read: the scan's read, kept or new (THE SCAN'S READ), on the
 * first key the scan has not looked at; NULL and the store's error in
 * *@rc when a new one cannot open. */
static struct store_iter *cleanup_read(struct repl *r, chorus_ms now, int *rc) {
  struct repl_cleanup *cl = &r->cleanup;
  uint64_t ring = ring_snapshot_version(r->ring);
  uint64_t gen = store_disk_info(r->store)->generation;
  if (cl->it != NULL && (cl->ring != ring || cl->store_gen != gen ||
                         now - cl->opened >= REPL_CLEANUP_READ_MAX_AGE_MS ||
                         store_iter_status(cl->it) != CHORUS_OK))
    cleanup_read_close(cl);
  if (cl->it == NULL) {
    struct store_iter *it;
    *rc = store_iter_open(r->store, STORE_DATA, NULL, 0, NULL, 0, &it);
    if (*rc != CHORUS_OK)
      return NULL;
    r->stats.cleanup_reads_opened++;
    if (cl->from != NULL)
      store_iter_seek(it, cl->from, cl->flen);
    cl->it = it;
    cl->ring = ring;
    cl->store_gen = gen;
    cl->opened = now;
  }
  cl->used = now;
  return cl->it;
}

/* cleanup_end: the scan reached the end of the data. */
static void cleanup_end(struct repl *r, bool *done) {
  REPL_TRACE(r,
             "cleanup: %" PRIu64 " objects this node no longer owns "
             "deleted%s",
             r->cleanup.deleted,
             r->cleanup.collect ? " (dropped keyspaces' among them)" : "");
  if (r->cleanup.collect) {
    r->dropped_done = r->cleanup.collect_map;
    if (ring_snapshot_class_map(r->ring) != r->dropped_done)
      r->cleanup_wanted = true; /* dropped during the scan */
  }
  repl__cleanup_free(r);
  *done = true;
}

int repl_cleanup_step(struct repl *r, size_t budget, chorus_ms now,
                      bool *done) {
  struct repl_cleanup *cl = &r->cleanup;
  *done = !cl->active;
  if (!cl->active || r->ring == NULL)
    return CHORUS_OK;
  int rc = store_write_allowed(r->store);
  if (rc != CHORUS_OK)
    return CHORUS_OK; /* deletes are writes too: later */
  if (!cl->checked) {
    /* Per class (CLASSES): the classes owned whole, again when the ring
     * changed under the scan (repl_set_ring: a keyspace's class created
     * keeps the epoch). */
    cl->checked = true;
    cl->whole = 0;
    unsigned n = ring_snapshot_class_count(r->ring);
    for (unsigned c = 0; c < n; c++)
      if (owns_all(r, ring_snapshot_class(r->ring, c)))
        cl->whole |= 1u << c;
    if (cl->whole == (1u << n) - 1 && !cl->collect) {
      cleanup_end(r, done);
      return CHORUS_OK;
    }
  }
  struct store_iter *it = cleanup_read(r, now, &rc);
  if (it == NULL)
    return rc;
  struct store_batch *b = store_batch_new();
  if (b == NULL)
    return CHORUS_ENOMEM;
  struct spans sp;
  spans_init(r, &sp);
  bool owned_to_end = false;
  size_t seen = 0;
  while (store_iter_valid(it) && seen < budget) {
    size_t klen;
    const uint8_t *k = store_iter_key(it, &klen);
    seen++;
    if (klen < STORE_TOKEN_PREFIX) {
      store_iter_next(it);
      continue;
    }
    chorus_token t = store_be64_get(k), span_end;
    if (!cl->collect && spans_all(r, &sp, t, &span_end)) {
      /* Over the rest of a span this node owns in every class: one seek,
       * not a key at a time (a node owns most of what it holds). Keys
       * shorter than a token are never deleted, so a last span owned ends
       * the scan. */
      if (span_end == UINT64_MAX) {
        owned_to_end = true;
        break;
      }
      uint8_t next[STORE_TOKEN_PREFIX];
      store_be64_put(next, span_end + 1);
      store_iter_seek(it, next, sizeof next);
      continue;
    }
    /* Judged in its own class (CLASSES). */
    unsigned cls = ring_key_class(r->ring, k + STORE_TOKEN_PREFIX,
                                  klen - STORE_TOKEN_PREFIX);
    bool dropped =
        cl->collect && ring_key_dropped(r->ring, k + STORE_TOKEN_PREFIX,
                                        klen - STORE_TOKEN_PREFIX);
    if (!dropped && spans_keep(r, &sp, cls, t)) {
      store_iter_next(it);
      continue;
    }
    if (repl__hints_any(&r->hints, t, k + STORE_TOKEN_PREFIX,
                        klen - STORE_TOKEN_PREFIX)) {
      r->stats.cleanup_hinted++;
      r->cleanup_wanted = true; /* once the hint is replayed */
      store_iter_next(it);
      continue;
    }
    if ((rc = store_batch_delete(b, STORE_DATA, k, klen)) != CHORUS_OK)
      break;
    /* The tree follows now; a batch that fails below makes it stale. */
    size_t vl;
    const void *v = store_iter_value(it, &vl);
    repl__aae_note(r, k, klen, aae_digest(v, vl), 0);
    store_iter_next(it);
  }
  bool end = rc == CHORUS_OK && (owned_to_end || !store_iter_valid(it));
  if (rc == CHORUS_OK)
    rc = store_iter_status(it);
  if (rc == CHORUS_OK && !end) {
    /* Where a new read goes on from, should this one be closed. */
    size_t klen;
    const uint8_t *k = store_iter_key(it, &klen);
    uint8_t *a = chorus_realloc(cl->from, klen ? klen : 1);
    if (a == NULL) {
      rc = CHORUS_ENOMEM;
    } else {
      memcpy(a, k, klen);
      cl->from = a;
      cl->flen = klen;
    }
  }
  size_t ndel = store_batch_count(b);
  if (rc == CHORUS_OK && ndel > 0)
    rc = store_write_batch(r->store, b, NULL);
  store_batch_free(b);
  if (ndel > 0 && rc != CHORUS_OK)
    repl__aae_stale(r);
  if (rc != CHORUS_OK) {
    cleanup_read_close(cl); /* the next step opens a new one */
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK; /* the next step again */
  }
  r->stats.cleanup_scanned += seen;
  r->stats.cleanup_deleted += ndel;
  cl->deleted += ndel;
  if (end)
    cleanup_end(r, done);
  return CHORUS_OK;
}
