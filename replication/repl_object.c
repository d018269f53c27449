/* repl_object.c: replicated objects in the store's data space: loaded,
 * decoded, encoded and joined, and the durability rule every answer that
 * leaves a node obeys. */
#include <inttypes.h>
#include <string.h>

#include "chorus_alloc.h"
#include "paxos.h"
#include "repl_int.h"

unsigned char *repl__data_key(chorus_token token, const void *key, size_t klen,
                              size_t *len) {
  unsigned char *dk = chorus_malloc(STORE_TOKEN_PREFIX + klen);
  if (dk != NULL)
    *len = store_data_key(dk, token, key, klen);
  return dk;
}

int repl__load_bytes(struct repl *r, chorus_token token, const void *key,
                     size_t klen, void **buf, size_t *len) {
  size_t dl;
  unsigned char *dk = repl__data_key(token, key, klen, &dl);
  if (dk == NULL)
    return CHORUS_ENOMEM;
  int rc = store_get(r->store, STORE_DATA, dk, dl, buf, len);
  chorus_free(dk);
  if (rc == CHORUS_ENOTFOUND) {
    *buf = NULL;
    *len = 0;
    return CHORUS_OK;
  }
  return rc;
}

/* NOTHING NON-DURABLE LEAVES A NODE. A write reaches other replicas only
 * after the coordinator's barrier; likewise a read answer, our own part of
 * a read, and a hint replay carry state only once everything written so far
 * is durable. Otherwise a node could hand out a state it then loses in a
 * crash, and no hint anywhere would bring it back to that node: the others
 * would keep it and the replicas would never converge (found by the
 * simulator: rw13, seed 104). When the store is fully durable there is no
 * wait; otherwise the answer waits for one group-commit barrier. */
bool repl__all_durable(struct repl *r) {
  return store_durable_seq(r->store) >= store_last_seq(r->store);
}

int repl__decode_obj(const void *buf, size_t len, enum crdt_type want,
                     struct crdt_obj *obj, char *err) {
  if (len == 0) {
    if (want == CRDT_NONE)
      return CHORUS_EINVAL;
    crdt_obj_init(obj, want);
    return CHORUS_OK;
  }
  return crdt_obj_decode(obj, want, buf, len, err);
}

int repl__encode_obj(const struct crdt_obj *obj, uint8_t **buf, size_t *len) {
  size_t n = crdt_obj_encoded_size(obj), w = 0;
  *buf = chorus_malloc(n ? n : 1);
  if (*buf == NULL)
    return CHORUS_ENOMEM;
  int rc = crdt_obj_encode(obj, *buf, n, &w);
  if (rc != CHORUS_OK) {
    chorus_free(*buf);
    *buf = NULL;
    return rc;
  }
  *len = w;
  return CHORUS_OK;
}

uint8_t repl__object_warnings(const struct repl *r, size_t bytes,
                              unsigned dvv_flags) {
  uint8_t f = 0;
  if (dvv_flags & DVV_WARN)
    f |= WIRE_REPLY_SIBLINGS;
  if (bytes > r->cfg.max_object_bytes / 2)
    f |= WIRE_REPLY_LARGE;
  return f;
}

int repl__encode_ctx(const struct crdt_obj *obj, uint8_t **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  if (obj->type == CRDT_LWW) {
    if ((*buf = chorus_malloc(WIRE_LWW_STAMP_BYTES)) == NULL)
      return CHORUS_ENOMEM;
    store_be64_put(*buf, obj->u.lww.ts);
    store_be64_put(*buf + 8, obj->u.lww.node);
    *len = WIRE_LWW_STAMP_BYTES;
    return CHORUS_OK;
  }
  if (obj->type != CRDT_KV)
    return CHORUS_OK;
  const struct vv *v = dvv_context(&obj->u.kv);
  size_t n = vv_encoded_size(v), w = 0;
  if ((*buf = chorus_malloc(n)) == NULL)
    return CHORUS_ENOMEM;
  int rc = vv_encode(v, *buf, n, &w);
  *len = w;
  return rc;
}

int repl__clock_check(struct repl *r, const struct crdt_obj *obj) {
  if (obj->type != CRDT_LWW || obj->u.lww.ts == 0)
    return CHORUS_OK;
  hlc_time ts = obj->u.lww.ts;
  if (hlc_recv(&r->hlc, r->wall, ts, NULL) == CHORUS_OK)
    return CHORUS_OK;
  chorus_ms l = hlc_physical(ts);
  r->stats.clock_refused++;
  return chorus_errf(r->err, CHORUS_ECLOCK,
                     "lww write of node %016" PRIx64 " stamped %" PRIu64
                     " ms ahead of this node's clock, over the %" PRIu64
                     " ms bound (--max-clock-ahead-ms)",
                     obj->u.lww.node, (uint64_t)(l > r->wall ? l - r->wall : 0),
                     (uint64_t)r->cfg.max_clock_ahead_ms);
}

/* A compare-and-set key's state (CRDT_PAXOS, opaque to crdt/) joins as
 * paxos_acceptor_join says: the higher of each slot, so that streaming,
 * anti-entropy, hints and read repair may carry it like any object
 * (paxos.h). An empty object (never written here) is a fresh acceptor. */
static int paxos_state_of(const struct crdt_obj *o, struct paxos_acceptor *a,
                          char *err) {
  if (o->u.opaque.len == 0) {
    paxos_acceptor_init(a);
    return CHORUS_OK;
  }
  int rc = paxos_acceptor_decode(a, o->u.opaque.bytes, o->u.opaque.len, err);
  return rc == CHORUS_ENOMEM ? rc : rc == CHORUS_OK ? rc : CHORUS_EMALFORMED;
}

int repl__paxos_set(struct crdt_obj *o, const struct paxos_acceptor *a) {
  size_t n = paxos_acceptor_encoded_size(a), w = 0;
  uint8_t *buf = chorus_malloc(n);
  if (buf == NULL)
    return CHORUS_ENOMEM;
  int rc = paxos_acceptor_encode(a, buf, n, &w);
  if (rc == CHORUS_OK)
    rc = crdt_obj_set_opaque(o, buf, w);
  chorus_free(buf);
  return rc;
}

int repl__paxos_get(const struct crdt_obj *o, struct paxos_acceptor *a,
                    char *err) {
  assert(o->type == CRDT_PAXOS);
  return paxos_state_of(o, a, err);
}

int repl__obj_join(struct crdt_obj *dst, const struct crdt_obj *src,
                   unsigned *flags) {
  if (dst->type != CRDT_PAXOS || src->type != CRDT_PAXOS)
    return crdt_obj_join(dst, src, flags);
  if (flags)
    *flags = 0;
  if (crdt_obj_equal(dst, src) || src->u.opaque.len == 0)
    return CHORUS_OK;
  struct paxos_acceptor d, s;
  int rc = paxos_state_of(dst, &d, NULL);
  if (rc != CHORUS_OK)
    return rc;
  if ((rc = paxos_state_of(src, &s, NULL)) == CHORUS_OK) {
    rc = paxos_acceptor_join(&d, &s);
    if (rc == CHORUS_OK)
      rc = repl__paxos_set(dst, &d);
    paxos_acceptor_free(&s);
  }
  paxos_acceptor_free(&d);
  return rc;
}

static int join_store(struct repl *r, chorus_token token, const void *key,
                      size_t klen, const void *bytes, size_t blen,
                      bool clock_bound, bool *deferred);

int repl__join_into_store(struct repl *r, chorus_token token, const void *key,
                          size_t klen, const void *bytes, size_t blen) {
  return join_store(r, token, key, klen, bytes, blen, true, NULL);
}

int repl__join_into_store_bound(struct repl *r, chorus_token token,
                                const void *key, size_t klen, const void *bytes,
                                size_t blen, bool clock_bound) {
  return join_store(r, token, key, klen, bytes, blen, clock_bound, NULL);
}

int repl__join_into_store_deferred(struct repl *r, chorus_token token,
                                   const void *key, size_t klen,
                                   const void *bytes, size_t blen,
                                   bool *deferred) {
  *deferred = false;
  return join_store(r, token, key, klen, bytes, blen, true, deferred);
}

/* join_store: the join; with @deferred, its write goes to the store's
 * deferred batch (*@deferred set when there was one). */
static int join_store(struct repl *r, chorus_token token, const void *key,
                      size_t klen, const void *bytes, size_t blen,
                      bool clock_bound, bool *deferred) {
  struct crdt_obj in, local;
  int rc = repl__decode_obj(bytes, blen, CRDT_NONE, &in, r->err);
  if (rc != CHORUS_OK)
    return CHORUS_EMALFORMED;
  if (clock_bound && (rc = repl__clock_check(r, &in)) != CHORUS_OK) {
    REPL_TRACE(r, "join refused: %s", r->err);
    crdt_obj_free(&in);
    return rc;
  }
  void *buf;
  size_t len;
  if ((rc = repl__load_bytes(r, token, key, klen, &buf, &len)) != CHORUS_OK) {
    crdt_obj_free(&in);
    return rc;
  }
  if (len == 0 && repl__gc_mortal(&in) &&
      repl__gc_was_purged(r, token, key, klen, aae_digest(bytes, blen))) {
    /* Purged here, every replica holding it: nothing new (PURGE RECORDS,
     * repl_gc.c). */
    r->stats.gc_rejoins_skipped++;
    crdt_obj_free(&in);
    chorus_free(buf);
    return CHORUS_OK;
  }
  rc = repl__decode_obj(buf, len, in.type, &local, r->err);
  if (rc == CHORUS_EMALFORMED)
    rc = CHORUS_ECORRUPT;
  if (rc == CHORUS_OK) {
    rc = repl__obj_join(&local, &in, NULL);
    uint8_t *out = NULL;
    size_t olen = 0;
    if (rc == CHORUS_OK)
      rc = repl__encode_obj(&local, &out, &olen);
    if (rc == CHORUS_OK && (olen != len || memcmp(out, buf, len) != 0)) {
      /* Over the budget, the join is written all the same: joins never
       * refuse, or replicas would never converge (repl.h, THE REPLICA
       * SIDE). Only concurrent writes at different coordinators get here,
       * each within the budget; the object waits for a client to resolve
       * its siblings, and messages too big to send are not sent. */
      if (olen > r->cfg.max_object_bytes) {
        r->stats.over_budget++;
        REPL_TRACE(
            r, "joined object of %zu bytes is over the %" PRIu32 "-byte budget",
            olen, r->cfg.max_object_bytes);
      }
      size_t dl;
      unsigned char *dk = repl__data_key(token, key, klen, &dl);
      struct store_batch *b = dk ? store_batch_new() : NULL;
      rc =
          b ? store_batch_put(b, STORE_DATA, dk, dl, out, olen) : CHORUS_ENOMEM;
      if (rc == CHORUS_OK && repl__gc_mortal(&local))
        rc = repl__gc_note(r, b, token, key, klen);
      if (rc == CHORUS_OK && deferred != NULL) {
        rc = store_defer(r->store, b);
        *deferred = rc == CHORUS_OK;
      } else if (rc == CHORUS_OK) {
        rc = store_write_batch(r->store, b, NULL);
      }
      store_batch_free(b);
      /* The anti-entropy tree follows every write of the data space (a
       * deferred one that then fails marks it stale, repl_flush). */
      if (rc == CHORUS_OK)
        repl__aae_note(r, dk, dl, aae_digest(buf, len), aae_digest(out, olen));
      else if (dk != NULL)
        repl__aae_stale(r);
      chorus_free(dk);
    }
    chorus_free(out);
    crdt_obj_free(&local);
  }
  chorus_free(buf);
  crdt_obj_free(&in);
  return rc;
}
