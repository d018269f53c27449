/* sim_toy.c: the simulator's own test protocols (see sim_toy.h). */
#include "sim_toy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"

/* ========================================================================
 * Bytes in and out. Everything that arrives from the network or the store
 * goes through struct rbuf, which never reads past its end.
 * ======================================================================== */

struct wbuf {
  unsigned char *p;
  size_t n, cap;
  int err;
};

static void w_bytes(struct wbuf *w, const void *d, size_t n) {
  if (w->err)
    return;
  if (w->n + n > w->cap) {
    size_t ncap = w->cap ? w->cap * 2 : 64;
    while (ncap < w->n + n)
      ncap *= 2;
    unsigned char *p = chorus_realloc(w->p, ncap);
    if (p == NULL) {
      w->err = CHORUS_ENOMEM;
      return;
    }
    w->p = p;
    w->cap = ncap;
  }
  if (n > 0)
    memcpy(w->p + w->n, d, n);
  w->n += n;
}

static void w_uint(struct wbuf *w, uint64_t v, int bytes) {
  unsigned char b[8];
  for (int i = bytes - 1; i >= 0; i--) {
    b[i] = (unsigned char)v;
    v >>= 8;
  }
  w_bytes(w, b, (size_t)bytes);
}

static void w_free(struct wbuf *w) {
  chorus_free(w->p);
  memset(w, 0, sizeof *w);
}

struct rbuf {
  const unsigned char *p;
  size_t n, off;
  int err;
};

static uint64_t r_uint(struct rbuf *r, int bytes) {
  if (r->err || r->n - r->off < (size_t)bytes) {
    r->err = 1;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++)
    v = (v << 8) | r->p[r->off++];
  return v;
}

static const void *r_bytes(struct rbuf *r, size_t n) {
  if (r->err || r->n - r->off < n) {
    r->err = 1;
    return NULL;
  }
  const void *p = r->p + r->off;
  r->off += n;
  return p;
}

/* ========================================================================
 * Key states: kv sibling sets, op-id counters, grow-only sets. Arrays are
 * kept sorted so the encoding (and so the digest) is canonical.
 * ======================================================================== */

struct blob {
  unsigned char *p;
  size_t n;
};

struct sib {
  uint64_t dot;
  struct blob v;
};

struct cop {
  uint64_t id;
  int64_t amount;
};

struct kstate {
  enum sim_op_type type;
  struct sib *sibs; /* by dot */
  size_t nsibs;
  uint64_t *covered; /* sorted */
  size_t ncovered;
  struct cop *cops; /* by id */
  size_t ncops;
  struct blob *elems; /* by (len, bytes) */
  size_t nelems;
};

#define MAX_ITEMS 100000u /* a bound on decoded counts, for hostile input */

static void ks_free(struct kstate *ks) {
  for (size_t i = 0; i < ks->nsibs; i++)
    chorus_free(ks->sibs[i].v.p);
  for (size_t i = 0; i < ks->nelems; i++)
    chorus_free(ks->elems[i].p);
  chorus_free(ks->sibs);
  chorus_free(ks->covered);
  chorus_free(ks->cops);
  chorus_free(ks->elems);
  enum sim_op_type t = ks->type;
  memset(ks, 0, sizeof *ks);
  ks->type = t;
}

static int blob_cmp(const struct blob *a, const struct blob *b) {
  if (a->n != b->n)
    return a->n < b->n ? -1 : 1;
  return a->n ? memcmp(a->p, b->p, a->n) : 0;
}

static int blob_set(struct blob *b, const void *d, size_t n) {
  b->p = chorus_malloc(n ? n : 1);
  if (b->p == NULL)
    return CHORUS_ENOMEM;
  if (n)
    memcpy(b->p, d, n);
  b->n = n;
  return CHORUS_OK;
}

/* Generic sorted-array insertion: @pos from a binary search. */
static int arr_insert(void **arr, size_t *n, size_t elem, size_t pos,
                      const void *item) {
  unsigned char *p = chorus_realloc(*arr, (*n + 1) * elem);
  if (p == NULL)
    return CHORUS_ENOMEM;
  memmove(p + (pos + 1) * elem, p + pos * elem, (*n - pos) * elem);
  memcpy(p + pos * elem, item, elem);
  *arr = p;
  (*n)++;
  return CHORUS_OK;
}

static size_t u64_lb(const uint64_t *a, size_t n, uint64_t v) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (a[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int covered_has(const struct kstate *ks, uint64_t dot) {
  size_t i = u64_lb(ks->covered, ks->ncovered, dot);
  return i < ks->ncovered && ks->covered[i] == dot;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* covered_union: covered := covered U @dots (sorted, may repeat), in one
 * linear merge: contexts and gossiped states carry thousands of dots, and
 * inserting them one by one into a sorted array would be quadratic. */
static int covered_union(struct kstate *ks, const uint64_t *dots, size_t n) {
  if (n == 0)
    return CHORUS_OK;
  uint64_t *out = chorus_malloc((ks->ncovered + n) * sizeof *out);
  if (out == NULL)
    return CHORUS_ENOMEM;
  size_t i = 0, j = 0, k = 0;
  while (i < ks->ncovered || j < n) {
    uint64_t v;
    if (j == n || (i < ks->ncovered && ks->covered[i] <= dots[j]))
      v = ks->covered[i++];
    else
      v = dots[j++];
    if (k == 0 || out[k - 1] != v)
      out[k++] = v;
  }
  chorus_free(ks->covered);
  ks->covered = out;
  ks->ncovered = k;
  return CHORUS_OK;
}

static size_t sib_lb(const struct kstate *ks, uint64_t dot) {
  size_t lo = 0, hi = ks->nsibs;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (ks->sibs[mid].dot < dot)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* sib_add: adds (dot, value) unless the dot is there or covered. */
static int sib_add(struct kstate *ks, uint64_t dot, const void *v, size_t n) {
  if (covered_has(ks, dot))
    return CHORUS_OK;
  size_t i = sib_lb(ks, dot);
  if (i < ks->nsibs && ks->sibs[i].dot == dot)
    return CHORUS_OK;
  struct sib s = {.dot = dot};
  if (blob_set(&s.v, v, n) != CHORUS_OK)
    return CHORUS_ENOMEM;
  int rc = arr_insert((void **)&ks->sibs, &ks->nsibs, sizeof s, i, &s);
  if (rc != CHORUS_OK)
    chorus_free(s.v.p);
  return rc;
}

/* drop_covered: removes siblings whose dots are covered. */
static void drop_covered(struct kstate *ks) {
  size_t j = 0;
  for (size_t i = 0; i < ks->nsibs; i++) {
    if (covered_has(ks, ks->sibs[i].dot))
      chorus_free(ks->sibs[i].v.p);
    else
      ks->sibs[j++] = ks->sibs[i];
  }
  ks->nsibs = j;
}

static int cop_add(struct kstate *ks, uint64_t id, int64_t amount) {
  size_t lo = 0, hi = ks->ncops;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (ks->cops[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < ks->ncops && ks->cops[lo].id == id)
    return CHORUS_OK; /* idempotent: a retried or duplicated increment */
  struct cop c = {.id = id, .amount = amount};
  return arr_insert((void **)&ks->cops, &ks->ncops, sizeof c, lo, &c);
}

static int elem_add(struct kstate *ks, const void *d, size_t n) {
  struct blob probe = {.p = (unsigned char *)(uintptr_t)d, .n = n};
  size_t lo = 0, hi = ks->nelems;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (blob_cmp(&ks->elems[mid], &probe) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < ks->nelems && blob_cmp(&ks->elems[lo], &probe) == 0)
    return CHORUS_OK;
  struct blob b;
  if (blob_set(&b, d, n) != CHORUS_OK)
    return CHORUS_ENOMEM;
  int rc = arr_insert((void **)&ks->elems, &ks->nelems, sizeof b, lo, &b);
  if (rc != CHORUS_OK)
    chorus_free(b.p);
  return rc;
}

/* Encoding of a key state (store values and messages):
 *
 *   u8 type
 *   kv:      u32 nsibs, nsibs x (u64 dot, u32 len, len bytes),
 *            u32 ncovered, ncovered x u64 dot
 *   counter: u32 n, n x (u64 op id, u64 amount as two's complement)
 *   set:     u32 n, n x (u32 len, len bytes)
 */
static void ks_encode(const struct kstate *ks, struct wbuf *w) {
  w_uint(w, (uint64_t)ks->type, 1);
  switch (ks->type) {
  case SIM_TYPE_KV:
    w_uint(w, ks->nsibs, 4);
    for (size_t i = 0; i < ks->nsibs; i++) {
      w_uint(w, ks->sibs[i].dot, 8);
      w_uint(w, ks->sibs[i].v.n, 4);
      w_bytes(w, ks->sibs[i].v.p, ks->sibs[i].v.n);
    }
    w_uint(w, ks->ncovered, 4);
    for (size_t i = 0; i < ks->ncovered; i++)
      w_uint(w, ks->covered[i], 8);
    break;
  case SIM_TYPE_COUNTER:
    w_uint(w, ks->ncops, 4);
    for (size_t i = 0; i < ks->ncops; i++) {
      w_uint(w, ks->cops[i].id, 8);
      w_uint(w, (uint64_t)ks->cops[i].amount, 8);
    }
    break;
  case SIM_TYPE_SET:
    w_uint(w, ks->nelems, 4);
    for (size_t i = 0; i < ks->nelems; i++) {
      w_uint(w, ks->elems[i].n, 4);
      w_bytes(w, ks->elems[i].p, ks->elems[i].n);
    }
    break;
  case SIM_TYPE_CAS:
  case SIM_TYPE_LWW:
    break; /* the toy has no CAS or LWW keys: it never stores one */
  }
}

/* ks_decode: a fresh state from @r. Errors: CHORUS_EMALFORMED (and nothing
 * allocated), CHORUS_ENOMEM. */
static int ks_decode(struct rbuf *r, struct kstate *ks) {
  memset(ks, 0, sizeof *ks);
  uint64_t type = r_uint(r, 1);
  if (r->err || type > SIM_TYPE_SET)
    return CHORUS_EMALFORMED;
  ks->type = (enum sim_op_type)type;
  int rc = CHORUS_OK;
  uint64_t n = r_uint(r, 4);
  if (n > MAX_ITEMS)
    r->err = 1;
  for (uint64_t i = 0; i < n && !r->err && rc == CHORUS_OK; i++) {
    if (ks->type == SIM_TYPE_KV) {
      uint64_t dot = r_uint(r, 8);
      uint64_t len = r_uint(r, 4);
      const void *v = r_bytes(r, len);
      if (!r->err)
        rc = sib_add(ks, dot, v, len);
    } else if (ks->type == SIM_TYPE_COUNTER) {
      uint64_t id = r_uint(r, 8);
      int64_t amount = (int64_t)r_uint(r, 8);
      if (!r->err)
        rc = cop_add(ks, id, amount);
    } else {
      uint64_t len = r_uint(r, 4);
      const void *v = r_bytes(r, len);
      if (!r->err)
        rc = elem_add(ks, v, len);
    }
  }
  if (ks->type == SIM_TYPE_KV && !r->err && rc == CHORUS_OK) {
    n = r_uint(r, 4);
    if (n > MAX_ITEMS || r->n - r->off < n * 8)
      r->err = 1;
    uint64_t *dots = r->err ? NULL : chorus_malloc((n ? n : 1) * 8);
    if (!r->err && dots == NULL)
      rc = CHORUS_ENOMEM;
    for (uint64_t i = 0; i < n && dots != NULL; i++)
      dots[i] = r_uint(r, 8);
    if (dots != NULL) {
      qsort(dots, n, 8, cmp_u64); /* hostile input need not be sorted */
      rc = covered_union(ks, dots, n);
    }
    chorus_free(dots);
    drop_covered(ks);
  }
  if (rc == CHORUS_OK && r->err)
    rc = CHORUS_EMALFORMED;
  if (rc != CHORUS_OK)
    ks_free(ks);
  return rc;
}

static uint64_t ks_digest(const struct kstate *ks, int *err) {
  struct wbuf w = {0};
  ks_encode(ks, &w);
  uint64_t d = sim_fnv64(SIM_FNV64_INIT, w.p, w.n);
  if (w.err)
    *err = w.err;
  w_free(&w);
  return d;
}

/* ks_merge: joins @src into @dst (same type); *@changed tells whether @dst
 * changed. @naive keeps only the highest-versioned sibling. */
static int ks_merge(struct kstate *dst, const struct kstate *src, int naive,
                    int *changed) {
  /* Joins only grow covered, cops and elems, and drop a sibling only when
   * covered grew, so counting detects any change without encoding. */
  size_t before[4] = {dst->nsibs, dst->ncovered, dst->ncops, dst->nelems};
  uint64_t top = dst->nsibs ? dst->sibs[dst->nsibs - 1].dot : 0;
  int rc = CHORUS_OK;
  switch (dst->type) {
  case SIM_TYPE_KV:
    if (naive) {
      /* Last writer wins by (local counter, node): no causality at all. */
      if (src->nsibs == 1 &&
          (dst->nsibs == 0 || src->sibs[0].dot > dst->sibs[0].dot)) {
        ks_free(dst);
        rc = sib_add(dst, src->sibs[0].dot, src->sibs[0].v.p, src->sibs[0].v.n);
      }
      break;
    }
    rc = covered_union(dst, src->covered, src->ncovered);
    for (size_t i = 0; i < src->nsibs && rc == CHORUS_OK; i++)
      rc = sib_add(dst, src->sibs[i].dot, src->sibs[i].v.p, src->sibs[i].v.n);
    drop_covered(dst);
    break;
  case SIM_TYPE_COUNTER:
    for (size_t i = 0; i < src->ncops && rc == CHORUS_OK; i++)
      rc = cop_add(dst, src->cops[i].id, src->cops[i].amount);
    break;
  case SIM_TYPE_SET:
    for (size_t i = 0; i < src->nelems && rc == CHORUS_OK; i++)
      rc = elem_add(dst, src->elems[i].p, src->elems[i].n);
    break;
  case SIM_TYPE_CAS:
  case SIM_TYPE_LWW:
    break; /* never stored (above) */
  }
  *changed = before[0] != dst->nsibs || before[1] != dst->ncovered ||
             before[2] != dst->ncops || before[3] != dst->nelems ||
             top != (dst->nsibs ? dst->sibs[dst->nsibs - 1].dot : 0);
  return rc;
}

/* ========================================================================
 * The node
 * ======================================================================== */

enum msg_type {
  MSG_REPL = 1,  /* u64 req, u16 klen, key, state: merge, persist, ack */
  MSG_ACK,       /* u64 req: the sender made the write durable */
  MSG_READ,      /* u64 req, u16 klen, key, u8 type */
  MSG_READ_RESP, /* u64 req, u16 klen, key, state */
  MSG_GOSSIP,    /* u32 n, n x (u16 klen, key, u32 slen, state) */
};

enum { TIMER_GOSSIP = 1, TIMER_RETRY_START = 2 };
#define TIMER_REQ (2ULL << 56) /* | request id: a coordinator's timeout */

struct key {
  unsigned char *name;
  size_t klen;
  struct kstate st;
};

/* A client request this node coordinates. */
struct pending {
  uint64_t req;
  enum sim_op op;
  size_t key;
  int need, got;
  uint64_t from;     /* bit per node that answered; dedups duplicates */
  struct kstate acc; /* reads: the merge of the replies */
};

/* What a sync barrier's completion means. */
enum psync_kind { PS_START = 1, PS_LOCAL, PS_ACK };

struct psync {
  uint64_t token;
  enum psync_kind kind;
  int peer;
  uint64_t req;
};

struct toy {
  int naive;
  int index, nodes;
  struct sim_toy_options opt;
  struct store *store;
  struct chorus_prng prng;
  const struct chorus_tracer *tracer;
  int loaded; /* the store's keys are in memory: merging is safe */
  int ready;  /* loaded and the epoch durable: serving clients */
  uint32_t epoch, dots;
  struct key *keys;
  size_t nkeys;
  struct pending *pend;
  size_t npend;
  struct psync *syncs;
  size_t nsyncs;
  uint64_t next_token;
  struct sim_buf *scratch;
  uint64_t *scratch_ids;
  unsigned char *ctx;
};

#define TRACE(t, ...)                                                          \
  chorus_trace((t)->tracer, (t)->naive ? "naive" : "toy", __VA_ARGS__)

static struct key *find_key(struct toy *t, const void *name, size_t klen) {
  for (size_t i = 0; i < t->nkeys; i++)
    if (t->keys[i].klen == klen && memcmp(t->keys[i].name, name, klen) == 0)
      return &t->keys[i];
  return NULL;
}

/* get_key: the key's state, created empty with @type if absent.
 * Errors: CHORUS_ETYPE, CHORUS_ENOMEM, CHORUS_ETOOBIG. */
static int get_key(struct toy *t, const void *name, size_t klen,
                   enum sim_op_type type, size_t *ix) {
  struct key *k = find_key(t, name, klen);
  if (k != NULL) {
    if (k->st.type != type)
      return CHORUS_ETYPE;
    *ix = (size_t)(k - t->keys);
    return CHORUS_OK;
  }
  if (klen == 0 || klen > 1024)
    return CHORUS_ETOOBIG;
  struct key *p = chorus_realloc(t->keys, (t->nkeys + 1) * sizeof *p);
  if (p == NULL)
    return CHORUS_ENOMEM;
  t->keys = p;
  k = &t->keys[t->nkeys];
  memset(k, 0, sizeof *k);
  k->name = chorus_memdup(name, klen);
  if (k->name == NULL)
    return CHORUS_ENOMEM;
  k->klen = klen;
  k->st.type = type;
  *ix = t->nkeys++;
  return CHORUS_OK;
}

/* persist: writes key @ix's state (unsynced); *@seq gets its sequence. */
static int persist(struct toy *t, size_t ix, chorus_seq *seq) {
  struct key *k = &t->keys[ix];
  struct wbuf w = {0};
  ks_encode(&k->st, &w);
  if (w.err) {
    w_free(&w);
    return CHORUS_ENOMEM;
  }
  unsigned char dkey[STORE_TOKEN_PREFIX + 1024];
  size_t dlen = store_data_key(
      dkey, sim_fnv64(SIM_FNV64_INIT, k->name, k->klen), k->name, k->klen);
  int rc = store_put(t->store, STORE_DATA, dkey, dlen, w.p, w.n, seq);
  w_free(&w);
  return rc;
}

static int add_sync(struct toy *t, chorus_seq seq, enum psync_kind kind,
                    int peer, uint64_t req, struct sim_effects *fx) {
  struct psync *p = chorus_realloc(t->syncs, (t->nsyncs + 1) * sizeof *p);
  if (p == NULL)
    return CHORUS_ENOMEM;
  t->syncs = p;
  uint64_t token = ++t->next_token;
  t->syncs[t->nsyncs++] =
      (struct psync){.token = token, .kind = kind, .peer = peer, .req = req};
  return sim_fx_sync(fx, seq, token);
}

static struct pending *find_pending(struct toy *t, uint64_t req) {
  for (size_t i = 0; i < t->npend; i++)
    if (t->pend[i].req == req)
      return &t->pend[i];
  return NULL;
}

static void drop_pending(struct toy *t, struct pending *p) {
  ks_free(&p->acc);
  *p = t->pend[--t->npend];
}

static int reply_simple(struct sim_effects *fx, uint64_t req, int status,
                        int maybe) {
  struct sim_reply r = {.id = req, .status = status, .maybe_applied = maybe};
  return sim_fx_reply(fx, &r);
}

static int scratch_reserve(struct toy *t, size_t n) {
  struct sim_buf *b = chorus_realloc(t->scratch, (n ? n : 1) * sizeof *b);
  if (b == NULL)
    return CHORUS_ENOMEM;
  t->scratch = b;
  uint64_t *ids = chorus_realloc(t->scratch_ids, (n ? n : 1) * 8);
  if (ids == NULL)
    return CHORUS_ENOMEM;
  t->scratch_ids = ids;
  unsigned char *c = chorus_realloc(t->ctx, (n ? n : 1) * 8);
  if (c == NULL)
    return CHORUS_ENOMEM;
  t->ctx = c;
  return CHORUS_OK;
}

/* reply_state: answers read @req from @st. */
static int reply_state(struct toy *t, uint64_t req, const struct kstate *st,
                       struct sim_effects *fx) {
  struct sim_reply r = {.id = req, .status = CHORUS_OK};
  size_t n = st->type == SIM_TYPE_KV ? st->nsibs : st->nelems;
  if (scratch_reserve(t, n) != CHORUS_OK)
    return CHORUS_ENOMEM;
  if (st->type == SIM_TYPE_KV) {
    /* The context is the whole causal past the client saw: the siblings'
     * dots and every dot they (transitively) covered, as a DVV context
     * (a version vector) would be. Listing only the siblings' dots is not
     * enough: a replica that never saw an intermediate write would keep
     * the values that write had superseded (a false sibling; the checker
     * caught exactly that in this toy's first version). */
    if (scratch_reserve(t, n + st->ncovered) != CHORUS_OK)
      return CHORUS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
      t->scratch[i] = (struct sim_buf){st->sibs[i].v.p, st->sibs[i].v.n};
      store_be64_put(t->ctx + 8 * i, st->sibs[i].dot);
    }
    for (size_t i = 0; i < st->ncovered; i++)
      store_be64_put(t->ctx + 8 * (n + i), st->covered[i]);
    r.context = t->ctx;
    r.clen = 8 * (n + st->ncovered);
  } else if (st->type == SIM_TYPE_SET) {
    for (size_t i = 0; i < n; i++)
      t->scratch[i] = (struct sim_buf){st->elems[i].p, st->elems[i].n};
  } else {
    n = 0;
    for (size_t i = 0; i < st->ncops; i++)
      r.counter += st->cops[i].amount;
  }
  r.values = t->scratch;
  r.nvalues = n;
  return sim_fx_reply(fx, &r);
}

static int send_state(struct toy *t, int to, enum msg_type type, uint64_t req,
                      const struct key *k, struct sim_effects *fx) {
  struct wbuf w = {0};
  w_uint(&w, type, 1);
  w_uint(&w, req, 8);
  w_uint(&w, k->klen, 2);
  w_bytes(&w, k->name, k->klen);
  ks_encode(&k->st, &w);
  int rc = w.err ? w.err : sim_fx_send(fx, to, w.p, w.n);
  w_free(&w);
  return rc;
}

static int send_gossip(struct toy *t, struct sim_effects *fx) {
  if (t->nodes < 2 || t->nkeys == 0)
    return CHORUS_OK;
  int to = (int)chorus_prng_below(&t->prng, (uint64_t)t->nodes - 1);
  if (to >= t->index)
    to++;
  struct wbuf w = {0}, st = {0};
  w_uint(&w, MSG_GOSSIP, 1);
  w_uint(&w, t->nkeys, 4);
  for (size_t i = 0; i < t->nkeys; i++) {
    st.n = 0;
    ks_encode(&t->keys[i].st, &st);
    w_uint(&w, t->keys[i].klen, 2);
    w_bytes(&w, t->keys[i].name, t->keys[i].klen);
    w_uint(&w, st.n, 4);
    w_bytes(&w, st.p, st.n);
  }
  int rc = w.err ? w.err : st.err ? st.err : sim_fx_send(fx, to, w.p, w.n);
  w_free(&w);
  w_free(&st);
  return rc;
}

/* ---- start -------------------------------------------------------------- */

static int load(struct toy *t) {
  struct store_iter *it;
  int rc = store_iter_open(t->store, STORE_DATA, NULL, 0, NULL, 0, &it);
  if (rc != CHORUS_OK)
    return rc;
  for (; store_iter_valid(it) && rc == CHORUS_OK; store_iter_next(it)) {
    size_t dlen, vlen, klen;
    const void *dkey = store_iter_key(it, &dlen);
    const void *val = store_iter_value(it, &vlen);
    const void *key;
    chorus_token tok;
    rc = store_data_key_parse(dkey, dlen, &tok, &key, &klen);
    if (rc != CHORUS_OK)
      break;
    struct rbuf r = {.p = val, .n = vlen};
    struct kstate st;
    rc = ks_decode(&r, &st);
    if (rc != CHORUS_OK)
      break;
    size_t ix;
    rc = get_key(t, key, klen, st.type, &ix);
    if (rc == CHORUS_OK) {
      ks_free(&t->keys[ix].st);
      t->keys[ix].st = st;
    } else {
      ks_free(&st);
    }
  }
  if (rc == CHORUS_OK)
    rc = store_iter_status(it);
  store_iter_close(it);
  return rc;
}

static void drop_keys(struct toy *t) {
  for (size_t i = 0; i < t->nkeys; i++) {
    ks_free(&t->keys[i].st);
    chorus_free(t->keys[i].name);
  }
  t->nkeys = 0;
}

static int on_start(struct toy *t, struct sim_effects *fx) {
  drop_keys(t);
  t->loaded = 0;
  int rc = load(t);
  if (rc == CHORUS_ENOMEM)
    return rc;
  t->loaded = rc == CHORUS_OK;
  if (rc == CHORUS_OK && !t->naive) {
    /* Dots are (node, epoch, counter): make the new epoch durable before
     * minting any, so no crash can make us reuse a dot. */
    void *v;
    size_t vlen;
    uint32_t epoch = 0;
    rc = store_get(t->store, STORE_META, "epoch", 5, &v, &vlen);
    if (rc == CHORUS_OK) {
      const unsigned char *b = v;
      if (vlen == 4)
        epoch = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
                (uint32_t)b[2] << 8 | b[3];
      else
        rc = CHORUS_ECORRUPT;
      chorus_free(v);
    } else if (rc == CHORUS_ENOTFOUND) {
      rc = CHORUS_OK;
    }
    if (rc == CHORUS_OK) {
      t->epoch = epoch + 1;
      unsigned char b[4] = {
          (unsigned char)(t->epoch >> 24), (unsigned char)(t->epoch >> 16),
          (unsigned char)(t->epoch >> 8), (unsigned char)t->epoch};
      chorus_seq seq;
      rc = store_put(t->store, STORE_META, "epoch", 5, b, 4, &seq);
      if (rc == CHORUS_OK)
        rc = add_sync(t, seq, PS_START, 0, 0, fx);
    }
  }
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK) {
    TRACE(t, "start: %s; retrying in 100 ms", chorus_strerror(rc));
    return sim_fx_timer(fx, TIMER_RETRY_START, 100);
  }
  TRACE(t, "start: %zu keys loaded, epoch %" PRIu32, t->nkeys, t->epoch);
  if (t->naive)
    t->ready = 1;
  return sim_fx_timer(fx, TIMER_GOSSIP, 100 + chorus_prng_below(&t->prng, 200));
}

/* ---- client requests ---------------------------------------------------- */

static uint64_t make_dot(const struct toy *t) {
  return ((uint64_t)t->index << 56) | ((uint64_t)(t->epoch & 0xffffff) << 32) |
         t->dots;
}

static int clampq(int q, int def, int nodes) {
  if (q <= 0)
    q = def;
  return q > nodes ? nodes : q;
}

static int on_request(struct toy *t, const struct sim_request *req,
                      struct sim_effects *fx) {
  if (!t->ready)
    return reply_simple(fx, req->id, CHORUS_EUNAVAILABLE, 0);
  enum sim_op_type type = sim_op_type_of(req->op);
  if (type == SIM_TYPE_CAS || (t->naive && type != SIM_TYPE_KV))
    return reply_simple(fx, req->id, CHORUS_ENOTSUP, 0); /* no Paxos here */
  size_t ix;
  int rc = get_key(t, req->key, req->klen, type, &ix);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK)
    return reply_simple(fx, req->id, rc, 0);
  struct key *k = &t->keys[ix];
  int is_read = req->op == SIM_OP_GET || req->op == SIM_OP_COUNTER_READ ||
                req->op == SIM_OP_SET_READ;

  if (is_read) {
    int r = clampq(req->r, t->opt.r, t->nodes);
    if (t->naive || r <= 1) {
      if (chorus_tracing(t->tracer) && type == SIM_TYPE_KV) {
        char buf[256];
        size_t off = 0;
        for (size_t i = 0; i < k->st.nsibs && off < sizeof buf - 40; i++)
          off += (size_t)snprintf(
              buf + off, sizeof buf - off, " %" PRIx64 "@%" PRIx64,
              k->st.sibs[i].v.n == 8 ? store_be64_get(k->st.sibs[i].v.p) : 0,
              k->st.sibs[i].dot);
        buf[off] = 0;
        TRACE(t, "get %.*s (req %" PRIu64 "):%s", (int)k->klen,
              (const char *)k->name, req->id, buf);
      }
      return reply_state(t, req->id, &k->st, fx);
    }
    struct pending *p = chorus_realloc(t->pend, (t->npend + 1) * sizeof *p);
    if (p == NULL)
      return CHORUS_ENOMEM;
    t->pend = p;
    p = &t->pend[t->npend++];
    *p = (struct pending){.req = req->id,
                          .op = req->op,
                          .key = ix,
                          .need = r,
                          .got = 1,
                          .from = 1ULL << t->index};
    p->acc.type = type;
    int changed;
    rc = ks_merge(&p->acc, &k->st, 0, &changed);
    for (int i = 0; i < t->nodes && rc == CHORUS_OK; i++) {
      if (i == t->index)
        continue;
      struct wbuf w = {0};
      w_uint(&w, MSG_READ, 1);
      w_uint(&w, req->id, 8);
      w_uint(&w, k->klen, 2);
      w_bytes(&w, k->name, k->klen);
      w_uint(&w, type, 1);
      rc = w.err ? w.err : sim_fx_send(fx, i, w.p, w.n);
      w_free(&w);
    }
    TRACE(t, "read %.*s (req %" PRIu64 "): asking peers, R=%d", (int)k->klen,
          (const char *)k->name, req->id, r);
    if (rc == CHORUS_OK)
      rc = sim_fx_timer(fx, TIMER_REQ | req->id, t->opt.timeout);
    return rc;
  }

  /* A write: apply locally, persist, replicate. */
  switch (req->op) {
  case SIM_OP_PUT:
    if (t->naive) {
      /* Bump the local counter: a version only this node orders. */
      uint64_t ver = k->st.nsibs ? (k->st.sibs[0].dot >> 8) + 1 : 1;
      ks_free(&k->st);
      rc = sib_add(&k->st, (ver << 8) | (uint64_t)t->index, req->value,
                   req->vlen);
      break;
    }
    if (req->clen % 8 != 0)
      return reply_simple(fx, req->id, CHORUS_EMALFORMED, 0);
    size_t nctx = req->clen / 8;
    uint64_t *dots = chorus_malloc((nctx ? nctx : 1) * 8);
    if (dots == NULL)
      return CHORUS_ENOMEM;
    for (size_t i = 0; i < nctx; i++)
      dots[i] = store_be64_get((const unsigned char *)req->context + 8 * i);
    qsort(dots, nctx, 8, cmp_u64);
    rc = covered_union(&k->st, dots, nctx);
    chorus_free(dots);
    if (rc == CHORUS_OK) {
      drop_covered(&k->st);
      t->dots++;
      TRACE(t, "put %.*s: dot %" PRIx64 ", context of %zu dots", (int)k->klen,
            (const char *)k->name, make_dot(t), req->clen / 8);
      rc = sib_add(&k->st, make_dot(t), req->value, req->vlen);
    }
    break;
  case SIM_OP_COUNTER_ADD:
    rc = cop_add(&k->st, req->id, req->amount);
    break;
  case SIM_OP_SET_ADD:
    rc = elem_add(&k->st, req->value, req->vlen);
    break;
  default:
    return CHORUS_EINTERNAL;
  }
  if (rc != CHORUS_OK)
    return rc;
  chorus_seq seq;
  rc = persist(t, ix, &seq);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK) {
    /* Memory already holds the write and may gossip it: not a clean fail. */
    TRACE(t, "write %.*s: store: %s -> unknown", (int)k->klen,
          (const char *)k->name, chorus_strerror(rc));
    return reply_simple(fx, req->id, rc, 1);
  }
  for (int i = 0; i < t->nodes && rc == CHORUS_OK; i++)
    if (i != t->index)
      rc = send_state(t, i, MSG_REPL, t->naive ? 0 : req->id, k, fx);
  if (rc != CHORUS_OK)
    return rc;
  if (t->naive) {
    TRACE(t, "put %.*s: version %" PRIu64 " -> OK without sync or quorum",
          (int)k->klen, (const char *)k->name, k->st.sibs[0].dot >> 8);
    return reply_simple(fx, req->id, CHORUS_OK, 0);
  }
  if (t->opt.ack_before_sync) {
    /* The planted bug: acknowledged, yet only in the page cache. */
    TRACE(t, "%s %.*s (req %" PRIu64 "): seq %" PRIu64 " -> OK before sync",
          sim_op_name(req->op), (int)k->klen, (const char *)k->name, req->id,
          seq);
    return reply_simple(fx, req->id, CHORUS_OK, 0);
  }
  int w = clampq(req->w, t->opt.w, t->nodes);
  struct pending *p = chorus_realloc(t->pend, (t->npend + 1) * sizeof *p);
  if (p == NULL)
    return CHORUS_ENOMEM;
  t->pend = p;
  t->pend[t->npend++] = (struct pending){
      .req = req->id, .op = req->op, .key = ix, .need = w, .got = 0};
  TRACE(t, "%s %.*s (req %" PRIu64 "): seq %" PRIu64 ", waiting for W=%d",
        sim_op_name(req->op), (int)k->klen, (const char *)k->name, req->id, seq,
        w);
  rc = add_sync(t, seq, PS_LOCAL, 0, req->id, fx);
  if (rc == CHORUS_OK)
    rc = sim_fx_timer(fx, TIMER_REQ | req->id, t->opt.timeout);
  return rc;
}

/* count: one more replica answered @p; replies once enough did. */
static int count(struct toy *t, struct pending *p, int from,
                 struct sim_effects *fx) {
  if (p->from & (1ULL << from))
    return CHORUS_OK; /* a duplicate */
  p->from |= 1ULL << from;
  p->got++;
  if (p->got < p->need)
    return CHORUS_OK;
  int rc;
  if (p->op == SIM_OP_GET || p->op == SIM_OP_COUNTER_READ ||
      p->op == SIM_OP_SET_READ) {
    TRACE(t, "req %" PRIu64 ": %d/%d replies -> reply", p->req, p->got,
          p->need);
    rc = reply_state(t, p->req, &p->acc, fx);
  } else {
    TRACE(t, "req %" PRIu64 ": %d/%d durable -> reply OK", p->req, p->got,
          p->need);
    rc = reply_simple(fx, p->req, CHORUS_OK, 0);
  }
  drop_pending(t, p);
  return rc;
}

/* ---- messages ----------------------------------------------------------- */

/* merge_in: joins a received state into key @name's local state and
 * persists it when it changed; *@seq is 0 when nothing was written. */
static int merge_in(struct toy *t, const void *name, size_t klen,
                    const struct kstate *st, chorus_seq *seq) {
  *seq = 0;
  size_t ix;
  int rc = get_key(t, name, klen, st->type, &ix);
  if (rc != CHORUS_OK)
    return rc;
  int changed;
  rc = ks_merge(&t->keys[ix].st, st, t->naive, &changed);
  if (rc != CHORUS_OK || !changed)
    return rc;
  return persist(t, ix, seq);
}

static int on_message(struct toy *t, int from, const void *data, size_t len,
                      struct sim_effects *fx) {
  struct rbuf r = {.p = data, .n = len};
  uint64_t type = r_uint(&r, 1);
  int rc = CHORUS_OK;
  if (!t->loaded) {
    /* Merging into a half-loaded state and persisting it would overwrite
     * durable data with less (the simulator found this: a read fault during
     * startup, then gossip, lost an acknowledged set add). */
    TRACE(t, "message %" PRIu64 " from n%d ignored: still loading", type, from);
    return CHORUS_OK;
  }
  if (type == MSG_GOSSIP) {
    uint64_t n = r_uint(&r, 4);
    for (uint64_t i = 0; i < n && !r.err && rc != CHORUS_ENOMEM; i++) {
      uint64_t klen = r_uint(&r, 2);
      const void *key = r_bytes(&r, klen);
      uint64_t slen = r_uint(&r, 4);
      struct rbuf sr = {.p = r_bytes(&r, slen), .n = slen};
      if (r.err)
        break;
      struct kstate st;
      rc = ks_decode(&sr, &st);
      if (rc != CHORUS_OK)
        break;
      chorus_seq seq;
      rc = merge_in(t, key, klen, &st, &seq);
      ks_free(&st);
    }
    if (r.err)
      rc = CHORUS_EMALFORMED;
  } else if (type == MSG_ACK) {
    uint64_t req = r_uint(&r, 8);
    struct pending *p = r.err ? NULL : find_pending(t, req);
    if (p != NULL)
      return count(t, p, from, fx);
  } else if (type == MSG_REPL || type == MSG_READ || type == MSG_READ_RESP) {
    uint64_t req = r_uint(&r, 8);
    uint64_t klen = r_uint(&r, 2);
    const void *key = r_bytes(&r, klen);
    if (r.err)
      return CHORUS_OK;
    if (type == MSG_READ) {
      uint64_t kt = r_uint(&r, 1);
      if (r.err || kt > SIM_TYPE_SET)
        return CHORUS_OK;
      size_t ix;
      rc = get_key(t, key, klen, (enum sim_op_type)kt, &ix);
      if (rc == CHORUS_OK)
        rc = send_state(t, from, MSG_READ_RESP, req, &t->keys[ix], fx);
    } else {
      struct kstate st;
      rc = ks_decode(&r, &st);
      if (rc != CHORUS_OK)
        goto out;
      if (type == MSG_READ_RESP) {
        struct pending *p = find_pending(t, req);
        int changed;
        if (p != NULL && p->acc.type == st.type) {
          rc = ks_merge(&p->acc, &st, 0, &changed);
          if (rc == CHORUS_OK)
            rc = count(t, p, from, fx);
        }
      } else {
        chorus_seq seq;
        rc = merge_in(t, key, klen, &st, &seq);
        if (rc == CHORUS_OK && req != 0) {
          /* Ack only once durable (acked writes survive our crash). */
          if (seq == 0)
            seq = store_last_seq(t->store);
          rc = add_sync(t, seq, PS_ACK, from, req, fx);
        }
      }
      ks_free(&st);
    }
  } else {
    rc = CHORUS_EMALFORMED;
  }
out:
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK)
    TRACE(t, "message %" PRIu64 " from n%d dropped: %s", type, from,
          chorus_strerror(rc));
  return CHORUS_OK;
}

/* ---- timers and syncs --------------------------------------------------- */

static int on_timer(struct toy *t, uint64_t id, struct sim_effects *fx) {
  if (id == TIMER_GOSSIP) {
    int rc = send_gossip(t, fx);
    if (rc != CHORUS_OK)
      return rc;
    return sim_fx_timer(fx, TIMER_GOSSIP,
                        100 + chorus_prng_below(&t->prng, 200));
  }
  if (id == TIMER_RETRY_START)
    return on_start(t, fx);
  if ((id & ~((1ULL << 56) - 1)) == TIMER_REQ) {
    struct pending *p = find_pending(t, id & ((1ULL << 56) - 1));
    if (p == NULL)
      return CHORUS_OK;
    int is_write = p->op == SIM_OP_PUT || p->op == SIM_OP_COUNTER_ADD ||
                   p->op == SIM_OP_SET_ADD;
    TRACE(t, "req %" PRIu64 ": %d/%d after timeout -> %s", p->req, p->got,
          p->need, is_write ? "unknown" : "fail");
    int rc = reply_simple(fx, p->req, CHORUS_ETIMEDOUT, is_write);
    drop_pending(t, p);
    return rc;
  }
  return CHORUS_OK;
}

static int on_sync(struct toy *t, uint64_t token, int status,
                   struct sim_effects *fx) {
  size_t i = 0;
  while (i < t->nsyncs && t->syncs[i].token != token)
    i++;
  if (i == t->nsyncs)
    return CHORUS_OK;
  struct psync ps = t->syncs[i];
  t->syncs[i] = t->syncs[--t->nsyncs];
  if (status != CHORUS_OK) {
    /* The store is sticky-failed: nothing we write is durable any more.
     * Stop answering; the supervisor restarts us. */
    TRACE(t, "sync failed: %s", chorus_strerror(status));
    t->ready = 0;
    if (ps.kind == PS_LOCAL) {
      struct pending *p = find_pending(t, ps.req);
      if (p != NULL) {
        int rc = reply_simple(fx, p->req, status, 1);
        drop_pending(t, p);
        return rc;
      }
    }
    return CHORUS_OK;
  }
  switch (ps.kind) {
  case PS_START:
    t->ready = 1;
    TRACE(t, "epoch %" PRIu32 " durable: serving", t->epoch);
    return CHORUS_OK;
  case PS_LOCAL: {
    struct pending *p = find_pending(t, ps.req);
    return p != NULL ? count(t, p, t->index, fx) : CHORUS_OK;
  }
  case PS_ACK: {
    unsigned char b[9];
    b[0] = MSG_ACK;
    store_be64_put(b + 1, ps.req);
    return sim_fx_send(fx, ps.peer, b, sizeof b);
  }
  }
  return CHORUS_OK;
}

/* ---- the vtable --------------------------------------------------------- */

static int toy_create_common(void **state, const struct sim_node_config *cfg,
                             int naive) {
  struct toy *t = chorus_calloc(1, sizeof *t);
  if (t == NULL)
    return CHORUS_ENOMEM;
  t->naive = naive;
  t->index = cfg->index;
  t->nodes = cfg->nodes;
  t->tracer = cfg->tracer;
  chorus_prng_seed(&t->prng, cfg->seed);
  t->opt = (struct sim_toy_options){.r = 1, .w = 1, .timeout = 1000};
  if (cfg->arg != NULL) {
    const struct sim_toy_options *o = cfg->arg;
    if (o->r > 0)
      t->opt.r = o->r;
    if (o->w > 0)
      t->opt.w = o->w;
    if (o->timeout > 0)
      t->opt.timeout = o->timeout;
    t->opt.ack_before_sync = o->ack_before_sync;
  }
  *state = t;
  return CHORUS_OK;
}

static int toy_create(void **state, const struct sim_node_config *cfg) {
  return toy_create_common(state, cfg, 0);
}

static int naive_create(void **state, const struct sim_node_config *cfg) {
  return toy_create_common(state, cfg, 1);
}

static int toy_handle(void *state, const struct sim_event *ev,
                      struct sim_effects *fx) {
  struct toy *t = state;
  switch (ev->kind) {
  case SIM_EV_START:
    t->store = ev->start.store;
    return on_start(t, fx);
  case SIM_EV_MESSAGE:
    return on_message(t, ev->msg.from, ev->msg.data, ev->msg.len, fx);
  case SIM_EV_TIMER:
    return on_timer(t, ev->timer.id, fx);
  case SIM_EV_REQUEST:
    return on_request(t, &ev->req, fx);
  case SIM_EV_SYNC_DONE:
    return on_sync(t, ev->sync.token, ev->sync.status, fx);
  }
  return CHORUS_EINVAL;
}

static int toy_inspect(void *state, enum sim_op_type type, const void *key,
                       size_t klen, struct sim_replica_view *out) {
  struct toy *t = state;
  static const struct kstate empties[3] = {{.type = SIM_TYPE_KV},
                                           {.type = SIM_TYPE_COUNTER},
                                           {.type = SIM_TYPE_SET}};
  const struct key *k = find_key(t, key, klen);
  const struct kstate *st = k != NULL ? &k->st : &empties[type];
  memset(out, 0, sizeof *out);
  size_t n = st->nsibs + st->nelems + st->ncops;
  if (scratch_reserve(t, n) != CHORUS_OK)
    return CHORUS_ENOMEM;
  for (size_t i = 0; i < st->nsibs; i++)
    t->scratch[i] = (struct sim_buf){st->sibs[i].v.p, st->sibs[i].v.n};
  for (size_t i = 0; i < st->nelems; i++)
    t->scratch[i] = (struct sim_buf){st->elems[i].p, st->elems[i].n};
  for (size_t i = 0; i < st->ncops; i++) {
    t->scratch_ids[i] = st->cops[i].id;
    out->counter += st->cops[i].amount;
  }
  out->values = t->scratch;
  out->nvalues = st->nsibs + st->nelems;
  if (st->type == SIM_TYPE_COUNTER) {
    out->has_op_ids = 1;
    out->op_ids = t->scratch_ids;
    out->nop_ids = st->ncops;
  }
  int err = 0;
  out->digest = ks_digest(st, &err);
  return err;
}

static void toy_destroy(void *state) {
  struct toy *t = state;
  if (t == NULL)
    return;
  drop_keys(t);
  chorus_free(t->keys);
  for (size_t i = 0; i < t->npend; i++)
    ks_free(&t->pend[i].acc);
  chorus_free(t->pend);
  chorus_free(t->syncs);
  chorus_free(t->scratch);
  chorus_free(t->scratch_ids);
  chorus_free(t->ctx);
  chorus_free(t);
}

const struct sim_node_ops sim_toy_naive = {
    .name = "naive",
    .create = naive_create,
    .handle = toy_handle,
    .inspect = toy_inspect,
    .destroy = toy_destroy,
};

const struct sim_node_ops sim_toy_gossip = {
    .name = "toy",
    .create = toy_create,
    .handle = toy_handle,
    .inspect = toy_inspect,
    .destroy = toy_destroy,
};
