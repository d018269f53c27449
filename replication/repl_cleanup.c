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

void repl_cleanup_begin(struct repl *r) {
  chorus_free(r->cleanup.after);
  r->cleanup = (struct repl_cleanup){.active = true};
  r->cleanup_wanted = false;
}

bool repl_cleanup_wanted(const struct repl *r) {
  return r->cleanup_wanted;
}

/* owned: whether this node holds @token's replicas in the ring in force;
 * *@span_end is the last token with the same answer (the span of the ring
 * that holds @token). */
static bool owned(const struct repl *r, chorus_token token,
                  chorus_token *span_end) {
  const struct ring_snapshot *ring = r->ring;
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

int repl_cleanup_step(struct repl *r, size_t budget, bool *done) {
  struct repl_cleanup *cl = &r->cleanup;
  *done = !cl->active;
  if (!cl->active || r->ring == NULL)
    return CHORUS_OK;
  int rc = store_write_allowed(r->store);
  if (rc != CHORUS_OK)
    return CHORUS_OK; /* deletes are writes too: later */
  struct store_iter *it;
  rc = store_iter_open(r->store, STORE_DATA, cl->after, cl->alen, NULL, 0, &it);
  if (rc != CHORUS_OK)
    return rc;
  struct store_batch *b = store_batch_new();
  if (b == NULL) {
    store_iter_close(it);
    return CHORUS_ENOMEM;
  }
  chorus_token span_end = 0;
  bool span_known = false, keep = true;
  const uint8_t *last = NULL;
  size_t lastlen = 0, seen = 0;
  for (; store_iter_valid(it) && seen < budget; store_iter_next(it)) {
    size_t klen;
    const uint8_t *k = store_iter_key(it, &klen);
    if (cl->alen > 0 && klen == cl->alen && memcmp(k, cl->after, klen) == 0)
      continue; /* the cursor itself */
    seen++;
    last = k;
    lastlen = klen;
    if (klen < STORE_TOKEN_PREFIX)
      continue;
    chorus_token t = store_be64_get(k);
    if (!span_known || t > span_end) {
      keep = owned(r, t, &span_end);
      span_known = true;
    }
    if (keep)
      continue;
    if (repl__hints_any(&r->hints, t, k + STORE_TOKEN_PREFIX,
                        klen - STORE_TOKEN_PREFIX)) {
      r->stats.cleanup_hinted++;
      r->cleanup_wanted = true; /* once the hint is replayed */
      continue;
    }
    if ((rc = store_batch_delete(b, STORE_DATA, k, klen)) != CHORUS_OK)
      break;
    /* The tree follows now; a batch that fails below makes it stale. */
    size_t vl;
    const void *v = store_iter_value(it, &vl);
    repl__aae_note(r, k, klen, aae_digest(v, vl), 0);
  }
  bool end = rc == CHORUS_OK && !store_iter_valid(it);
  if (rc == CHORUS_OK)
    rc = store_iter_status(it);
  if (rc == CHORUS_OK && last != NULL) {
    uint8_t *a = chorus_realloc(cl->after, lastlen);
    if (a == NULL) {
      rc = CHORUS_ENOMEM;
    } else {
      memcpy(a, last, lastlen);
      cl->after = a;
      cl->alen = lastlen;
    }
  }
  store_iter_close(it);
  size_t ndel = store_batch_count(b);
  if (rc == CHORUS_OK && ndel > 0)
    rc = store_write_batch(r->store, b, NULL);
  store_batch_free(b);
  if (ndel > 0 && rc != CHORUS_OK)
    repl__aae_stale(r);
  if (rc != CHORUS_OK)
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK; /* the next step again */
  r->stats.cleanup_scanned += seen;
  r->stats.cleanup_deleted += ndel;
  cl->deleted += ndel;
  if (end) {
    REPL_TRACE(r,
               "cleanup: %" PRIu64 " objects this node no longer owns "
               "deleted",
               cl->deleted);
    chorus_free(cl->after);
    *cl = (struct repl_cleanup){0};
    *done = true;
  }
  return CHORUS_OK;
}
