/* dvv.c: dotted version vector sets, the `kv` multi-value register (see the
 * essay in crdt.h). */
#include <assert.h>
#include <string.h>

#include "chorus_alloc.h"
#include "crdt_int.h"

static const struct dvv_limits dvv_default_limits = {DVV_WARN_DEFAULT,
                                                     DVV_REJECT_DEFAULT, NULL};

void dvv_init(struct dvv *d) {
  vv_init(&d->vv);
  d->sib = NULL;
  d->n = d->cap = 0;
}

void dvv_free(struct dvv *d) {
  for (uint32_t i = 0; i < d->n; i++)
    chorus_free(d->sib[i].value);
  chorus_free(d->sib);
  vv_free(&d->vv);
  dvv_init(d);
}

bool crdt__dvv_valid(const struct dvv *d) {
  if (!crdt__vv_valid(&d->vv) || d->n > d->cap || (d->n > 0 && d->sib == NULL))
    return false;
  for (uint32_t i = 0; i < d->n; i++) {
    const struct dvv_sibling *s = &d->sib[i];
    if ((i > 0 && crdt__dot_cmp(d->sib[i - 1].dot, s->dot) >= 0) ||
        s->dot.counter == 0 || !vv_covers(&d->vv, s->dot) ||
        (s->len > 0) != (s->value != NULL) || (s->tombstone && s->len > 0) ||
        (s->tombstone && s->expires != 0) ||
        (s->expires != 0 && s->expires <= s->ts))
      return false;
  }
  return true;
}

/* A deep copy of one sibling's value into @out. */
static int sib_dup(struct dvv_sibling *out, const struct dvv_sibling *in) {
  *out = *in;
  if (in->len == 0) {
    out->value = NULL;
    return CHORUS_OK;
  }
  out->value = chorus_memdup(in->value, in->len);
  return out->value ? CHORUS_OK : CHORUS_ENOMEM;
}

int dvv_copy(struct dvv *dst, const struct dvv *src) {
  if (dst == src)
    return CHORUS_OK;
  struct dvv t;
  dvv_init(&t);
  if (vv_copy(&t.vv, &src->vv) != CHORUS_OK)
    goto err_after_init;
  if (crdt__grow((void **)&t.sib, &t.cap, src->n, sizeof *t.sib) != CHORUS_OK)
    goto err_after_init;
  for (; t.n < src->n; t.n++)
    if (sib_dup(&t.sib[t.n], &src->sib[t.n]) != CHORUS_OK)
      goto err_after_init;
  dvv_free(dst);
  *dst = t;
  assert(crdt__dvv_valid(dst) && dst->n == src->n);
  return CHORUS_OK;

err_after_init:
  dvv_free(&t);
  return CHORUS_ENOMEM;
}

/* The write path shared by put and delete (steps 1-3 of the essay). */
static int dvv_write(struct dvv *d, chorus_node_id coord, uint64_t floor,
                     const struct vv *ctx, const void *value, size_t len,
                     bool tombstone, hlc_time ts, hlc_time expires,
                     const struct dvv_limits *lim, struct crdt_dot *dot,
                     unsigned *flags) {
  assert(crdt__dvv_valid(d));
  assert(len == 0 || value != NULL);
  assert(!tombstone || (len == 0 && expires == 0));
  if (lim == NULL)
    lim = &dvv_default_limits;
  if (flags)
    *flags = 0;
  if (len > DVV_VALUE_MAX)
    return CHORUS_ETOOBIG;
  if (expires != 0 && expires <= ts)
    return CHORUS_EINVAL;
  static const struct vv empty = {NULL, 0, 0};
  if (ctx == NULL)
    ctx = &empty;
  assert(crdt__vv_valid(ctx));

  uint32_t covered = 0;
  for (uint32_t i = 0; i < d->n; i++)
    covered += vv_covers(ctx, d->sib[i].dot);
  uint32_t after = d->n - covered + 1;
  if (after > lim->reject) {
    chorus_trace(lim->tracer, "dvv",
                 "write at %016llx refused: %u siblings would exceed the cap "
                 "of %u",
                 (unsigned long long)coord, after, lim->reject);
    return CHORUS_ESIBLINGS;
  }

  uint64_t mine = vv_get(&d->vv, coord), theirs = vv_get(ctx, coord);
  uint64_t last = mine > theirs ? mine : theirs;
  if (floor > last)
    last = floor;
  if (last >= CRDT_EVENT_MAX)
    return CHORUS_ERANGE;

  /* Reserve everything first so that nothing below can fail half-way. */
  struct dvv_sibling s = {{coord, 0}, NULL, (uint32_t)len,
                          tombstone,  ts,   expires};
  if (len > 0 && (s.value = chorus_memdup(value, len)) == NULL)
    return CHORUS_ENOMEM;
  if (crdt__grow((void **)&d->sib, &d->cap, d->n + 1, sizeof *d->sib) !=
          CHORUS_OK ||
      crdt__vv_reserve(&d->vv, d->vv.n + ctx->n + 1) != CHORUS_OK) {
    chorus_free(s.value);
    return CHORUS_ENOMEM;
  }

  s.dot.counter = last + 1;
  (void)vv_join(&d->vv, ctx);                 /* reserved */
  (void)vv_set(&d->vv, coord, s.dot.counter); /* reserved */

  /* Discard what the client saw, then insert the new sibling after every
   * sibling of nodes <= coord: its counter exceeds all of coord's. */
  uint32_t w = 0, at = 0;
  for (uint32_t i = 0; i < d->n; i++) {
    if (covered && vv_covers(ctx, d->sib[i].dot)) {
      chorus_free(d->sib[i].value);
      continue;
    }
    d->sib[w++] = d->sib[i];
  }
  d->n = w;
  assert(d->n + 1 == after);
  while (at < d->n && d->sib[at].dot.node <= coord)
    at++;
  memmove(&d->sib[at + 1], &d->sib[at], (d->n - at) * sizeof *d->sib);
  d->sib[at] = s;
  d->n++;
  /* The vv covered every earlier dot of @coord, so the new one is last of
   * its node: the order holds. */
  assert(crdt__dvv_valid(d));

  if (dot)
    *dot = s.dot;
  if (d->n > lim->warn) {
    if (flags)
      *flags |= DVV_WARN;
    chorus_trace(lim->tracer, "dvv",
                 "write at %016llx leaves %u siblings (warn above %u)",
                 (unsigned long long)coord, d->n, lim->warn);
  }
  return CHORUS_OK;
}

int dvv_put(struct dvv *d, chorus_node_id coord, const struct vv *ctx,
            const void *value, size_t len, const struct dvv_limits *lim,
            struct crdt_dot *dot, unsigned *flags) {
  return dvv_write(d, coord, 0, ctx, value, len, false, 0, 0, lim, dot, flags);
}

int dvv_delete(struct dvv *d, chorus_node_id coord, const struct vv *ctx,
               const struct dvv_limits *lim, struct crdt_dot *dot,
               unsigned *flags) {
  return dvv_write(d, coord, 0, ctx, NULL, 0, true, 0, 0, lim, dot, flags);
}

int dvv_put_at(struct dvv *d, chorus_node_id coord, const struct vv *ctx,
               const void *value, size_t len, hlc_time ts, hlc_time expires,
               const struct dvv_limits *lim, struct crdt_dot *dot,
               unsigned *flags) {
  return dvv_write(d, coord, 0, ctx, value, len, false, ts, expires, lim, dot,
                   flags);
}

int dvv_delete_at(struct dvv *d, chorus_node_id coord, const struct vv *ctx,
                  hlc_time ts, const struct dvv_limits *lim,
                  struct crdt_dot *dot, unsigned *flags) {
  return dvv_write(d, coord, 0, ctx, NULL, 0, true, ts, 0, lim, dot, flags);
}

int dvv_write_after(struct dvv *d, chorus_node_id coord, uint64_t floor,
                    const struct vv *ctx, const void *value, size_t len,
                    bool tombstone, hlc_time ts, hlc_time expires,
                    const struct dvv_limits *lim, struct crdt_dot *dot,
                    unsigned *flags) {
  if (tombstone && (len != 0 || expires != 0))
    return CHORUS_EINVAL;
  return dvv_write(d, coord, floor, ctx, value, len, tombstone, ts, expires,
                   lim, dot, flags);
}

void dvv_discard(struct dvv *d, const struct vv *ctx) {
  assert(crdt__dvv_valid(d));
  uint32_t w = 0;
  for (uint32_t i = 0; i < d->n; i++) {
    if (vv_covers(ctx, d->sib[i].dot)) {
      chorus_free(d->sib[i].value);
      continue;
    }
    d->sib[w++] = d->sib[i];
  }
  d->n = w;
}

/* Siblings with the same dot come from the same write and are equal; when
 * hostile or corrupt states disagree, the smaller one wins on both sides so
 * that join stays commutative. */
static int sib_cmp(const struct dvv_sibling *a, const struct dvv_sibling *b) {
  if (a->tombstone != b->tombstone)
    return a->tombstone ? -1 : 1;
  if (a->ts != b->ts)
    return a->ts < b->ts ? -1 : 1;
  if (a->expires != b->expires)
    return a->expires < b->expires ? -1 : 1;
  return crdt__bytes_cmp(a->value, a->len, b->value, b->len);
}

int dvv_join(struct dvv *dst, const struct dvv *src,
             const struct dvv_limits *lim, unsigned *flags) {
  assert(crdt__dvv_valid(dst) && crdt__dvv_valid(src));
  if (lim == NULL)
    lim = &dvv_default_limits;
  if (flags)
    *flags = 0;
  if (dst == src)
    return CHORUS_OK;

  /* Merge the two dot-sorted sibling lists into a fresh array; copied[k]
   * says whether entry k came from @src (its value was duplicated). */
  uint32_t cap = dst->n + src->n;
  struct dvv_sibling *out =
      chorus_malloc((cap ? cap : 1) * (sizeof *out + sizeof(bool)));
  if (out == NULL)
    return CHORUS_ENOMEM;
  bool *copied = (bool *)(out + cap);
  uint32_t i = 0, j = 0, k = 0;
  while (i < dst->n || j < src->n) {
    int r = i >= dst->n   ? 1
            : j >= src->n ? -1
                          : crdt__dot_cmp(dst->sib[i].dot, src->sib[j].dot);
    if (r < 0) {
      if (!vv_covers(&src->vv, dst->sib[i].dot)) {
        out[k] = dst->sib[i];
        copied[k++] = false;
      }
      i++;
    } else if (r > 0) {
      if (!vv_covers(&dst->vv, src->sib[j].dot)) {
        if (sib_dup(&out[k], &src->sib[j]) != CHORUS_OK)
          goto err_after_out;
        copied[k++] = true;
      }
      j++;
    } else {
      if (sib_cmp(&src->sib[j], &dst->sib[i]) < 0) {
        if (sib_dup(&out[k], &src->sib[j]) != CHORUS_OK)
          goto err_after_out;
        copied[k++] = true;
      } else {
        out[k] = dst->sib[i];
        copied[k++] = false;
      }
      i++, j++;
    }
  }
  assert(k <= cap);
  if (vv_join(&dst->vv, &src->vv) != CHORUS_OK)
    goto err_after_out;

  /* Commit: free the values of dst siblings that did not survive. Both
   * lists are dot-sorted, so one walk finds them. */
  uint32_t o = 0;
  for (i = 0; i < dst->n; i++) {
    while (o < k &&
           (copied[o] || crdt__dot_cmp(out[o].dot, dst->sib[i].dot) < 0))
      o++;
    bool kept =
        o < k && !copied[o] && crdt__dot_cmp(out[o].dot, dst->sib[i].dot) == 0;
    if (!kept)
      chorus_free(dst->sib[i].value);
  }
  if (k > dst->cap) {
    chorus_free(dst->sib);
    dst->sib = out;
    dst->cap = cap;
  } else {
    if (k)
      memcpy(dst->sib, out, k * sizeof *out);
    chorus_free(out);
  }
  dst->n = k;
  assert(crdt__dvv_valid(dst));
  if (dst->n > lim->warn) {
    if (flags)
      *flags |= DVV_WARN;
    chorus_trace(lim->tracer, "dvv", "join leaves %u siblings (warn above %u)",
                 dst->n, lim->warn);
  }
  return CHORUS_OK;

err_after_out:
  for (uint32_t x = 0; x < k; x++)
    if (copied[x])
      chorus_free(out[x].value);
  chorus_free(out);
  return CHORUS_ENOMEM;
}

bool dvv_found(const struct dvv *d, hlc_time now) {
  for (uint32_t i = 0; i < d->n; i++)
    if (dvv_sibling_live(&d->sib[i], now))
      return true;
  return false;
}

uint32_t dvv_live_count(const struct dvv *d, hlc_time now) {
  uint32_t c = 0;
  for (uint32_t i = 0; i < d->n; i++)
    c += dvv_sibling_live(&d->sib[i], now);
  return c;
}

hlc_time dvv_dead_since(const struct dvv *d, hlc_time now) {
  hlc_time since = 0;
  for (uint32_t i = 0; i < d->n; i++) {
    const struct dvv_sibling *s = &d->sib[i];
    if (dvv_sibling_live(s, now))
      return 0;
    /* Dead: a tombstone since its write, a value since it expired. */
    hlc_time t = s->tombstone ? s->ts : s->expires;
    if (t > since)
      since = t;
  }
  return since;
}

bool dvv_equal(const struct dvv *a, const struct dvv *b) {
  if (a->n != b->n || !vv_equal(&a->vv, &b->vv))
    return false;
  for (uint32_t i = 0; i < a->n; i++)
    if (crdt__dot_cmp(a->sib[i].dot, b->sib[i].dot) != 0 ||
        sib_cmp(&a->sib[i], &b->sib[i]) != 0)
      return false;
  return true;
}
