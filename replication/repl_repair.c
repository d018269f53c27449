/* repl_repair.c: a piece pulled from every live replica in turn repairs
 * them too (repl.h, repl_stream_repair). The receiver holds the union of
 * what the replicas it asked so far sent; comparing each new batch with it
 * tells which replica lacks what: the sender lacks whatever the union holds
 * beyond its object (and every key it did not send), the replicas asked
 * before lack what the sender brings. Each gets a hint, replayed like any
 * other, so that a write acknowledged by some replicas only (its
 * coordinator's hints lost with a disk) reaches all of them, not only the
 * receiver: Cassandra leaves that to a repair after the replace. */
#include <string.h>

#include "chorus_alloc.h"
#include "repl_int.h"

/* hint_to: arms hints of @key for @n nodes (replay sends this node's
 * object) into @b. */
static int hint_to(struct repl *r, struct store_batch *b, chorus_token token,
                   const void *key, size_t klen, const chorus_node_id *to,
                   size_t n, chorus_ms wall, uint64_t *armed) {
  if (n == 0)
    return CHORUS_OK;
  struct ring_plist pl = {.token = token};
  for (size_t i = 0; i < n && i < RING_PLIST_MAX; i++)
    pl.r[pl.n_natural++].id = to[i];
  size_t a = 0;
  int rc = repl__hint_owners(r, b, &pl, 0, key, klen, NULL, 0, wall, &a);
  *armed += a;
  return rc;
}

/* lacks: whether the object @in (received) lacks something of this node's
 * object of the key (*@in_lacks), and whether this node's lacks something
 * of @in (*@local_lacks). Undecodable objects decide nothing. */
static int lacks(struct repl *r, chorus_token token, const void *key,
                 size_t klen, const struct wire_bytes *in, bool *in_lacks,
                 bool *local_lacks) {
  *in_lacks = *local_lacks = false;
  void *buf = NULL;
  size_t len = 0;
  int rc = repl__load_bytes(r, token, key, klen, &buf, &len);
  if (rc != CHORUS_OK)
    return rc;
  if (len == 0) {
    *local_lacks = true;
    chorus_free(buf);
    return CHORUS_OK;
  }
  struct crdt_obj i1, l1, l2;
  if (repl__decode_obj(in->ptr, in->len, CRDT_NONE, &i1, r->err) != CHORUS_OK) {
    chorus_free(buf);
    return CHORUS_OK;
  }
  if (repl__decode_obj(buf, len, i1.type, &l1, r->err) != CHORUS_OK) {
    crdt_obj_free(&i1);
    chorus_free(buf);
    return CHORUS_OK;
  }
  rc = repl__decode_obj(buf, len, i1.type, &l2, r->err);
  chorus_free(buf);
  if (rc == CHORUS_OK) {
    rc = repl__obj_join(&l1, &i1, NULL); /* l1: the union */
    if (rc == CHORUS_OK) {
      *in_lacks = !crdt_obj_equal(&l1, &i1);
      *local_lacks = !crdt_obj_equal(&l1, &l2);
    }
    crdt_obj_free(&l2);
  }
  crdt_obj_free(&l1);
  crdt_obj_free(&i1);
  return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
}

/* key_cmp: storage order of (@t, @k) against the storage key @sk. */
static int key_cmp(chorus_token t, const uint8_t *k, size_t klen,
                   const uint8_t *sk, size_t sklen) {
  chorus_token st = store_be64_get(sk);
  if (t != st)
    return t < st ? -1 : 1;
  size_t sl = sklen - STORE_TOKEN_PREFIX;
  int c = memcmp(k, sk + STORE_TOKEN_PREFIX, klen < sl ? klen : sl);
  return c != 0 ? c : (klen < sl ? -1 : klen > sl ? 1 : 0);
}

int repl_stream_repair(struct repl *r, const struct wire_stream_chunk *c,
                       chorus_token first, chorus_token last,
                       const struct wire_bytes *after,
                       const struct repl_stream_repair *rep, chorus_ms wall,
                       uint64_t *armed) {
  *armed = 0;
  const struct wire_bytes_list *e = &c->entries;
  if (r->failed || store_write_allowed(r->store) != CHORUS_OK ||
      e->n % 2 != 0 || repl_stream_sum(e->items, e->n) != c->sum)
    return CHORUS_OK; /* repl_stream_apply says why */
  struct store_batch *b = store_batch_new();
  if (b == NULL)
    return CHORUS_ENOMEM;
  int rc = CHORUS_OK;
  /* The keys this node holds in what the batch covers, which the sender
   * did not send: [after the cursor (or first), the batch's last key (or
   * last, when the piece ends here)]. */
  unsigned char lo[STORE_TOKEN_PREFIX], hi[STORE_TOKEN_PREFIX];
  store_be64_put(lo, first);
  const void *from = lo;
  size_t fromlen = sizeof lo;
  if (after != NULL && after->len > 0) {
    from = after->ptr;
    fromlen = after->len;
  }
  struct store_iter *it = NULL;
  if (last == UINT64_MAX)
    rc = store_iter_open(r->store, STORE_DATA, from, fromlen, NULL, 0, &it);
  else {
    store_be64_put(hi, last + 1);
    rc = store_iter_open(r->store, STORE_DATA, from, fromlen, hi, sizeof hi,
                         &it);
  }
  size_t i = 0; /* the batch entry the walk is at */
  for (; rc == CHORUS_OK && store_iter_valid(it); store_iter_next(it)) {
    size_t sl;
    const uint8_t *sk = store_iter_key(it, &sl);
    if (sl < STORE_TOKEN_PREFIX ||
        (after != NULL && after->len == sl && memcmp(after->ptr, sk, sl) == 0))
      continue;
    int cmp = 1;
    while (i < e->n) {
      const struct wire_bytes *k = &e->items[i];
      cmp = key_cmp(ring_token_of(k->ptr, k->len), k->ptr, k->len, sk, sl);
      if (cmp >= 0)
        break;
      i += 2;
    }
    if (i >= e->n && c->more)
      break; /* past the batch: the next one covers it */
    if (i < e->n && cmp == 0)
      continue; /* sent: compared below */
    rc = hint_to(r, b, store_be64_get(sk), sk + STORE_TOKEN_PREFIX,
                 sl - STORE_TOKEN_PREFIX, &rep->source, 1, wall, armed);
  }
  if (it != NULL) {
    if (rc == CHORUS_OK)
      rc = store_iter_status(it);
    store_iter_close(it);
  }
  /* The keys it sent. */
  for (size_t j = 0; j + 1 < e->n && rc == CHORUS_OK; j += 2) {
    const struct wire_bytes *k = &e->items[j];
    chorus_token t = ring_token_of(k->ptr, k->len);
    bool in_lacks, local_lacks;
    rc = lacks(r, t, k->ptr, k->len, &e->items[j + 1], &in_lacks, &local_lacks);
    if (rc == CHORUS_OK && in_lacks)
      rc = hint_to(r, b, t, k->ptr, k->len, &rep->source, 1, wall, armed);
    if (rc == CHORUS_OK && local_lacks)
      rc = hint_to(r, b, t, k->ptr, k->len, rep->earlier, rep->nearlier, wall,
                   armed);
  }
  if (rc == CHORUS_OK && store_batch_count(b) > 0) {
    rc = store_write_batch(r->store, b, NULL);
    if (rc != CHORUS_OK && rc != CHORUS_ENOMEM)
      repl__resync_hints(r);
  }
  store_batch_free(b);
  if (rc == CHORUS_OK)
    r->stats.stream_repairs += *armed;
  return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
}
