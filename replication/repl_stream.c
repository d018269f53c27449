/* repl_stream.c: streaming by token range (repl.h, STREAMING): the side
 * that serves a STREAM_PULL from its store, and the side that joins a
 * STREAM_CHUNK into its own. Which ranges a node pulls, from whom, and how
 * fast is the node core's (node/core/core_stream.c); this file only reads
 * and joins objects, so the rules that keep them whole stay with the rest
 * of the replica side. Every field of these messages comes from the
 * network: checked here, never asserted. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "chorus_alloc.h"
#include "repl_int.h"

/* Entries a chunk carries at most (user key and object each count). */
#define STREAM_MAX_ITEMS 8192u

uint64_t repl_stream_sum(const struct wire_bytes *items, size_t n) {
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  for (size_t i = 0; i < n; i++) {
    uint8_t len[4] = {(uint8_t)items[i].len, (uint8_t)(items[i].len >> 8),
                      (uint8_t)(items[i].len >> 16),
                      (uint8_t)(items[i].len >> 24)};
    XXH3_64bits_update(&st, len, sizeof len);
    if (items[i].len > 0)
      XXH3_64bits_update(&st, items[i].ptr, items[i].len);
  }
  return XXH3_64bits_digest(&st);
}

/* ------------------------------------------------------------------------
 * The serving side
 * ------------------------------------------------------------------------ */

static int refuse_pull(struct repl *r, const struct repl_effects *fx,
                       chorus_node_id to, uint64_t req, int code,
                       const char *text) {
  REPL_TRACE(r, "stream pull of %016" PRIx64 " refused: %s", to, text);
  struct wire_msg e;
  wire_error_reply(&e, req, code, text);
  return fx->send(fx->ctx, to, &e);
}

/* A chunk being gathered: keys and objects back to back in @buf, their
 * offsets in @off (pointers are made once @buf stops moving). */
struct gather {
  uint8_t *buf;
  size_t len, cap;
  size_t *off;
  size_t n, capn;
};

static int gather_add(struct gather *g, const void *p, size_t len) {
  size_t *off = chorus_grow(g->off, &g->capn, g->n, sizeof *off, 64);
  if (off == NULL)
    return CHORUS_ENOMEM;
  g->off = off;
  while (g->len + len > g->cap) {
    size_t ncap = g->cap ? g->cap * 2 : 64u * 1024;
    uint8_t *nb = chorus_realloc(g->buf, ncap);
    if (nb == NULL)
      return CHORUS_ENOMEM;
    g->buf = nb;
    g->cap = ncap;
  }
  if (len > 0)
    memcpy(g->buf + g->len, p, len);
  g->off[g->n++] = g->len;
  g->len += len;
  return CHORUS_OK;
}

static void gather_free(struct gather *g) {
  chorus_free(g->buf);
  chorus_free(g->off);
}

/* ------------------------------------------------------------------------
 * THE KEPT READ
 *
 * Opening an ordered read of the data space costs a sort of its memtable
 * (store_rocksdb.c: the memtable is hashed by token, and its ordered view is
 * a sorted copy made at open): 40 ms with 50,000 1-KiB objects in it, 140
 * ms with 400,000 small ones (bench/stream/bench_scan), against well under
 * a millisecond for the rest of a 1-MiB pull. A puller pulls batch after
 * batch, range after range (a join gains hundreds of small ranges, one
 * pull each), so the holder keeps the read that served one puller open,
 * over the whole data space, and serves that puller's next pull from it
 * with a seek (store_iter_seek: no new sort) when:
 *
 *   - the pull is at the epoch the read was opened for, and this node's
 *     ring and store (a reopen) did not change since it opened;
 *   - the read is younger than REPL_STREAM_READ_MAX_AGE_MS: its snapshot
 *     misses what this node wrote since it opened, which reaches the
 *     puller as a pending replica (repl.h, STREAMING) as it does for a
 *     fresh read's; the age bounds that window and how long the read pins
 *     the store's old memtables and files.
 *
 * Anything else closes it and opens a new one. Each pull seeks to its own
 * cursor, so a pull retried after a lost answer gets the same entries
 * again. At most REPL_STREAM_READS are kept (one per puller, the least
 * recently used goes first); the hint round closes those unused for
 * REPL_STREAM_READ_IDLE_MS (an open read holds off a store reopen), and
 * all of them once the store failed; a full store keeps none.
 * ------------------------------------------------------------------------ */

void repl__stream_reads_close(struct repl *r, chorus_ms now, bool all) {
  for (size_t i = 0; i < REPL_STREAM_READS; i++) {
    struct repl_stream_read *k = &r->reads[i];
    if (k->it != NULL && (all || now - k->used >= REPL_STREAM_READ_IDLE_MS)) {
      REPL_TRACE(r, "stream read of %016" PRIx64 " closed (%s)", k->puller,
                 all ? "all" : "idle");
      store_iter_close(k->it);
      *k = (struct repl_stream_read){0};
    }
  }
}

/* read_for: the read that serves @p from @puller, kept or new (NULL and
 * the store's error when a new one cannot open), and in *@seq the newest
 * write its snapshot may show. */
static struct store_iter *read_for(struct repl *r, chorus_node_id puller,
                                   const struct wire_stream_pull *p,
                                   chorus_ms now, chorus_seq *seq, int *rc) {
  uint64_t ring = ring_snapshot_version(r->ring);
  uint64_t gen = store_disk_info(r->store)->generation;
  struct repl_stream_read *slot = NULL;
  for (size_t i = 0; i < REPL_STREAM_READS; i++) {
    struct repl_stream_read *k = &r->reads[i];
    if (k->it != NULL && k->puller == puller) {
      if (k->epoch == p->epoch && k->ring == ring && k->store_gen == gen &&
          now - k->opened < REPL_STREAM_READ_MAX_AGE_MS &&
          store_iter_status(k->it) == CHORUS_OK) {
        k->used = now;
        r->stats.stream_reads_kept++;
        *seq = k->seq;
        return k->it;
      }
      store_iter_close(k->it);
      *k = (struct repl_stream_read){0};
    }
    if (slot == NULL ||
        (slot->it != NULL && (k->it == NULL || k->used < slot->used)))
      slot = k;
  }
  struct store_iter *it;
  *rc = store_iter_open(r->store, STORE_DATA, NULL, 0, NULL, 0, &it);
  if (*rc != CHORUS_OK)
    return NULL;
  r->stats.stream_reads_opened++;
  /* The snapshot was taken at the open, on this thread: nothing written
   * after it shows, so this bounds what it shows. */
  *seq = store_last_seq(r->store);
  if (slot->it != NULL)
    store_iter_close(slot->it); /* the least recently used */
  *slot = (struct repl_stream_read){.puller = puller,
                                    .epoch = p->epoch,
                                    .ring = ring,
                                    .store_gen = gen,
                                    .it = it,
                                    .seq = *seq,
                                    .opened = now,
                                    .used = now};
  return it;
}

/* read_drop: closes the kept read @it. */
static void read_drop(struct repl *r, struct store_iter *it) {
  for (size_t i = 0; i < REPL_STREAM_READS; i++)
    if (r->reads[i].it == it) {
      store_iter_close(it);
      r->reads[i] = (struct repl_stream_read){0};
    }
}

/* read_range: up to about @max bytes of @p's range into @g; *@more when
 * the range holds more after them; *@seq the newest write they may carry.
 * A value too big for a peer frame is skipped and counted
 * (repl_stats.unsent): it is never sent in part.
 *
 * THE EMPTY STRETCH. When the range is done (no @more), *@empty_to is the
 * token before the next object the read holds after the range (the top
 * of the token space when none does): nothing in (last, *@empty_to]. The
 * read stops on that object anyway, so this costs nothing, and the puller
 * skips its later ranges from this node that fall in the stretch
 * (core_stream.c, EMPTY STRETCHES): a founder joining an empty cluster
 * gains thousands of ranges, each a round trip across the WAN for no key.
 * A stretch is as good as a pull of those ranges would be: the read is
 * of this epoch or later, like theirs, and what this node writes after it
 * reaches the puller as a pending replica (repl.h, STREAMING). Otherwise
 * (*@more, or a range that ends at the top) *@empty_to is @p->last, which
 * says nothing.
 *
 * THE CLASS. A pull names a replication class (ring.h): a keyspace with a
 * replication of its own moves its keys' ranges apart from the cluster's,
 * to other nodes, so a pull gets only the keys whose class in this node's
 * ring has @p->class_tag, and the others in its range are read past. The
 * empty stretch is the next object's of any class: nothing of any class
 * lies in it, so the puller may skip its later ranges of every class
 * there. */
static int read_range(struct repl *r, chorus_node_id puller,
                      const struct wire_stream_pull *p, struct gather *g,
                      bool *more, chorus_token *empty_to, chorus_seq *seq,
                      chorus_ms now) {
  *more = false;
  *empty_to = p->last;
  int rc = CHORUS_OK;
  struct store_iter *it = read_for(r, puller, p, now, seq, &rc);
  if (it == NULL)
    return rc;
  unsigned char lo[STORE_TOKEN_PREFIX];
  store_be64_put(lo, p->first);
  if (p->after.len > 0)
    store_iter_seek(it, p->after.ptr, p->after.len);
  else
    store_iter_seek(it, lo, sizeof lo);
  size_t bytes = 0;
  bool ended = true; /* no object after the range */
  for (; store_iter_valid(it); store_iter_next(it)) {
    size_t klen, vlen;
    const uint8_t *k = store_iter_key(it, &klen);
    if (p->after.len > 0 && klen == p->after.len &&
        memcmp(k, p->after.ptr, klen) == 0)
      continue; /* the cursor itself was sent already */
    if (klen < STORE_TOKEN_PREFIX)
      continue; /* not an object's key */
    if (store_be64_get(k) > p->last) {
      *empty_to = store_be64_get(k) - 1;
      ended = false;
      break; /* the range's end */
    }
    if (ring_snapshot_class_tag(
            r->ring, ring_key_class(r->ring, k + STORE_TOKEN_PREFIX,
                                    klen - STORE_TOKEN_PREFIX)) != p->class_tag)
      continue; /* another class's key: another pull's (THE CLASS) */
    if (ring_key_dropped(r->ring, k + STORE_TOKEN_PREFIX,
                         klen - STORE_TOKEN_PREFIX))
      continue; /* a dropped keyspace's: nobody's (ring.h) */
    const void *v = store_iter_value(it, &vlen);
    if (g->n >= 2 && (bytes >= p->max_bytes || g->n + 2 > STREAM_MAX_ITEMS)) {
      *more = true;
      break;
    }
    if (vlen + klen > REPL_MAX_OBJECT_LIMIT) {
      r->stats.unsent++;
      REPL_TRACE(r,
                 "stream: a %zu-byte object does not fit a peer frame: "
                 "not sent",
                 vlen);
      continue;
    }
    if ((rc = gather_add(g, k + STORE_TOKEN_PREFIX,
                         klen - STORE_TOKEN_PREFIX)) != CHORUS_OK ||
        (rc = gather_add(g, v, vlen)) != CHORUS_OK)
      break;
    bytes += klen + vlen;
  }
  if (rc == CHORUS_OK)
    rc = store_iter_status(it);
  if (*more)
    *empty_to = p->last;
  else if (ended && rc == CHORUS_OK)
    *empty_to = UINT64_MAX;
  /* A failed read is not kept, nor one on a full store: it waits for a
   * reopen, which an open read holds off (store.h, THE SPACE RESERVE). */
  if (store_iter_status(it) != CHORUS_OK || store_disk_info(r->store)->full)
    read_drop(r, it);
  return rc;
}

int repl__send_chunk(const struct repl_effects *fx, chorus_node_id to,
                     uint64_t req, struct wire_bytes *items, size_t n,
                     uint64_t sum, bool more, chorus_token empty_to) {
  struct wire_msg m = {.type = WIRE_STREAM_CHUNK2, .request_id = req};
  m.stream_chunk.entries = (struct wire_bytes_list){n, items};
  m.stream_chunk.sum = sum;
  m.stream_chunk.more = more ? 1 : 0;
  m.stream_chunk.empty_to = empty_to;
  return fx->send(fx->ctx, to, &m);
}

/* stream_replica: whether this node is a natural replica of @t in class
 * @cls of its ring. */
static bool stream_replica(const struct repl *r, unsigned cls, chorus_token t) {
  struct ring_plist pl;
  if (ring_lookup(ring_snapshot_class(r->ring, cls), t, 0, &pl) != CHORUS_OK)
    return false;
  for (unsigned i = 0; i < pl.n_natural; i++)
    if (pl.r[i].id == r->cfg.self)
      return true;
  return false;
}

int repl__on_stream_pull(struct repl *r, chorus_node_id from,
                         const struct wire_msg *m, chorus_ms now,
                         const struct repl_effects *fx) {
  const struct wire_stream_pull *p = &m->stream_pull;
  if (r->failed)
    return refuse_pull(r, fx, from, m->request_id, CHORUS_EIO,
                       "this node's store failed");
  /* A node behind the puller's epoch may not yet send the writes that
   * coordinators at that epoch send to the puller too: its answer could
   * miss writes it then takes (repl.h, STREAMING). */
  uint64_t epoch = ring_snapshot_version(r->ring);
  if (epoch < p->epoch) {
    char text[96];
    snprintf(text, sizeof text,
             "this node is at epoch %" PRIu64 ", not %" PRIu64, epoch,
             p->epoch);
    return refuse_pull(r, fx, from, m->request_id, CHORUS_ESTALE, text);
  }
  /* The class by its tag, and the keyspaces in each class as the puller's
   * plan has them: one this node's ring does not know, or classes keys
   * otherwise, is a keyspace one of them has not applied yet (created
   * moments ago: the epoch stays): its keys would be read past, or sent
   * to a range of another class. The puller asks again shortly. */
  int cls = ring_snapshot_class_find(r->ring, p->class_tag);
  if (cls < 0 || ring_snapshot_class_map(r->ring) != p->class_map) {
    char text[128];
    snprintf(text, sizeof text,
             cls < 0 ? "this node's ring has no replication class %016" PRIx64
                     : "this node classes keys otherwise (class map %016" PRIx64
                       ")",
             cls < 0 ? p->class_tag : ring_snapshot_class_map(r->ring));
    return refuse_pull(r, fx, from, m->request_id, CHORUS_ESTALE, text);
  }
  /* At the puller's epoch, every node a range is pulled from is a natural
   * replica of it in its class (core_stream.c: the node that gives it up
   * or keeps it, or a live replica of the piece): one that is not was
   * asked by a plan that is not this node's, and its empty answer would
   * pass for the range held. */
  if (epoch == p->epoch && !stream_replica(r, (unsigned)cls, p->first))
    return refuse_pull(r, fx, from, m->request_id, CHORUS_EINVAL,
                       "this node is no replica of that range in that "
                       "replication class");
  if (p->first > p->last || p->max_bytes == 0 ||
      (p->after.len > 0 && (p->after.len < STORE_TOKEN_PREFIX ||
                            store_be64_get(p->after.ptr) < p->first ||
                            store_be64_get(p->after.ptr) > p->last)))
    return refuse_pull(r, fx, from, m->request_id, CHORUS_EINVAL,
                       "a token range first <= last, with the cursor in it");
  struct gather g = {0};
  bool more = false;
  chorus_token empty_to = p->last;
  chorus_seq seq = 0;
  int rc = read_range(r, from, p, &g, &more, &empty_to, &seq, now);
  if (rc != CHORUS_OK) {
    gather_free(&g);
    if (rc == CHORUS_ENOMEM)
      return rc;
    return refuse_pull(r, fx, from, m->request_id, rc, chorus_strerror(rc));
  }
  struct wire_bytes *items = chorus_calloc(g.n ? g.n : 1, sizeof *items);
  if (items == NULL) {
    gather_free(&g);
    return CHORUS_ENOMEM;
  }
  for (size_t i = 0; i < g.n; i++)
    items[i] = (struct wire_bytes){
        g.buf + g.off[i], (i + 1 < g.n ? g.off[i + 1] : g.len) - g.off[i]};
  uint64_t sum = repl_stream_sum(items, g.n);
  r->stats.stream_served_keys += g.n / 2;
  r->stats.stream_served_bytes += g.len;
  chorus_free(g.off);
  /* ONE BARRIER A READ. Nothing non-durable leaves a node
   * (repl_object.c), yet the answer carries only what its read's
   * snapshot shows, all of it written at or before @seq: it waits for
   * the barrier that makes @seq durable, not for the writes that came
   * since. A holder that is itself joining batches (a removal: every
   * live node gains ranges and serves others) is never wholly durable,
   * and its every answer waited for a barrier of its own (a group-commit
   * fsync, tens to hundreds of ms on a loaded disk, for a pull of a few
   * keys); now the first pull of a kept read waits, and the others, from
   * the same snapshot, are answered at once. */
  if (store_durable_seq(r->store) >= seq) {
    rc = repl__send_chunk(fx, from, m->request_id, items, g.n, sum, more,
                          empty_to);
    chorus_free(items);
    chorus_free(g.buf);
    return rc;
  }
  struct repl_op *op = repl__op_new(r, REPL_OP_ANSWER);
  if (op == NULL) {
    chorus_free(items);
    chorus_free(g.buf);
    return CHORUS_ENOMEM;
  }
  op->u.answer = (struct repl_op_answer){.peer = from,
                                         .peer_req = m->request_id,
                                         .obj = g.buf,
                                         .olen = g.len,
                                         .items = items,
                                         .nitems = g.n,
                                         .sum = sum,
                                         .more = more,
                                         .empty_to = empty_to,
                                         .chunk = true};
  return fx->sync(fx->ctx, seq, op->id);
}

/* ------------------------------------------------------------------------
 * The pulling side
 * ------------------------------------------------------------------------ */

int repl_stream_apply(struct repl *r, const struct wire_stream_chunk *c,
                      chorus_token first, chorus_token last,
                      const struct wire_bytes *after, uint64_t *keys,
                      uint64_t *bytes, char *errmsg) {
  *keys = *bytes = 0;
  if (r->failed)
    return chorus_errf(errmsg, CHORUS_EIO, "this node's store failed");
  int rc = store_write_allowed(r->store);
  if (rc != CHORUS_OK)
    return chorus_errf(errmsg, rc, "%s", store_errmsg(r->store));
  const struct wire_bytes_list *e = &c->entries;
  if (e->n % 2 != 0)
    return chorus_errf(errmsg, CHORUS_EMALFORMED, "an odd number of entries");
  if (repl_stream_sum(e->items, e->n) != c->sum)
    return chorus_errf(errmsg, CHORUS_ECORRUPT,
                       "the batch does not match its checksum");
  /* Every key in the range, in storage-key order after the cursor: a
   * batch that is not what was asked for is refused whole. */
  chorus_token prev_token = 0;
  const struct wire_bytes *prev = NULL;
  for (size_t i = 0; i < e->n; i += 2) {
    const struct wire_bytes *k = &e->items[i];
    chorus_token t = ring_token_of(k->ptr, k->len);
    if (k->len == 0 || k->len > WIRE_MAX_KEY || t < first || t > last ||
        e->items[i + 1].len == 0)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "entry %zu is not a key of the range", i / 2);
    int order = 1;
    if (prev != NULL) {
      order = t != prev_token ? (t > prev_token ? 1 : -1)
                              : memcmp(k->ptr, prev->ptr,
                                       k->len < prev->len ? k->len : prev->len);
      if (t == prev_token && order == 0)
        order = k->len > prev->len ? 1 : -1;
    } else if (after != NULL && after->len >= STORE_TOKEN_PREFIX) {
      chorus_token at = store_be64_get(after->ptr);
      size_t alen = after->len - STORE_TOKEN_PREFIX;
      const uint8_t *ak = after->ptr + STORE_TOKEN_PREFIX;
      order = t != at ? (t > at ? 1 : -1)
                      : memcmp(k->ptr, ak, k->len < alen ? k->len : alen);
      if (t == at && order == 0)
        order = k->len > alen ? 1 : -1;
    }
    if (order <= 0)
      return chorus_errf(errmsg, CHORUS_EMALFORMED, "entry %zu is out of order",
                         i / 2);
    prev_token = t;
    prev = k;
  }
  for (size_t i = 0; i < e->n; i += 2) {
    const struct wire_bytes *k = &e->items[i], *v = &e->items[i + 1];
    /* Without the clock bound (repl.h, THE CLOCK BOUND OF LWW REGISTERS):
     * a register stamped too far ahead of our clock was acknowledged by
     * replicas whose clocks took it, and once this range is streamed its
     * old owner deletes its copy (cleanup). Refusing it here lost the
     * write for good (the simulator's LWW checker, test_aae_sim's wiped
     * replica, seed 1). Writes through this node wait for its clock to
     * pass it (ECLOCK) as on any replica holding it. */
    rc = repl__join_into_store_bound(r, ring_token_of(k->ptr, k->len), k->ptr,
                                     k->len, v->ptr, v->len, false);
    if (rc == CHORUS_ESYNCFAILED)
      r->failed = true;
    if (rc != CHORUS_OK)
      return chorus_errf(errmsg, rc, "joining entry %zu: %s", i / 2,
                         chorus_strerror(rc));
    ++*keys;
    *bytes += k->len + v->len;
  }
  r->stats.stream_keys += *keys;
  r->stats.stream_bytes += *bytes;
  return CHORUS_OK;
}
