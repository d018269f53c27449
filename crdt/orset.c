/* orset.c: the add-wins observed-remove set without tombstones (ORSWOT), with
 * delta mutators (see the essay in crdt.h). */
#include <assert.h>
#include <string.h>

#include "chorus_alloc.h"
#include "crdt_int.h"

void orset_init(struct orset *s) {
  crdt_ctx_init(&s->ctx);
  s->e = NULL;
  s->n = s->cap = 0;
}

bool crdt__orset_valid(const struct orset *s) {
  if (!crdt__ctx_valid(&s->ctx) || s->n > s->cap || (s->n > 0 && s->e == NULL))
    return false;
  for (uint32_t i = 0; i < s->n; i++) {
    const struct orset_elem *e = &s->e[i];
    if ((i > 0 && crdt__bytes_cmp(s->e[i - 1].data, s->e[i - 1].len, e->data,
                                  e->len) >= 0) ||
        e->len > ORSET_ELEM_MAX || (e->len > 0) != (e->data != NULL) ||
        e->ndots == 0 || e->dots == NULL)
      return false;
    for (uint32_t k = 0; k < e->ndots; k++)
      if ((k > 0 && crdt__dot_cmp(e->dots[k - 1], e->dots[k]) >= 0) ||
          !crdt_ctx_covers(&s->ctx, e->dots[k]))
        return false;
  }
  return true;
}

void crdt__orset_elem_free(struct orset_elem *e) {
  chorus_free(e->data);
  chorus_free(e->dots);
  e->data = NULL;
  e->dots = NULL;
}

void orset_free(struct orset *s) {
  for (uint32_t i = 0; i < s->n; i++)
    crdt__orset_elem_free(&s->e[i]);
  chorus_free(s->e);
  crdt_ctx_free(&s->ctx);
  orset_init(s);
}

/* Deep copy of one element. */
static int elem_dup(struct orset_elem *out, const struct orset_elem *in) {
  assert(in->ndots > 0 && in->dots != NULL);
  out->len = in->len;
  out->ndots = in->ndots;
  out->data = NULL;
  out->dots = chorus_memdup(in->dots, in->ndots * sizeof *in->dots);
  if (out->dots == NULL)
    return CHORUS_ENOMEM;
  if (in->len && (out->data = chorus_memdup(in->data, in->len)) == NULL) {
    chorus_free(out->dots);
    out->dots = NULL;
    return CHORUS_ENOMEM;
  }
  return CHORUS_OK;
}

int orset_copy(struct orset *dst, const struct orset *src) {
  if (dst == src)
    return CHORUS_OK;
  struct orset t;
  orset_init(&t);
  if (crdt_ctx_copy(&t.ctx, &src->ctx) != CHORUS_OK ||
      crdt__grow((void **)&t.e, &t.cap, src->n, sizeof *t.e) != CHORUS_OK)
    goto err_after_init;
  for (; t.n < src->n; t.n++)
    if (elem_dup(&t.e[t.n], &src->e[t.n]) != CHORUS_OK)
      goto err_after_init;
  orset_free(dst);
  *dst = t;
  assert(orset_equal(dst, src));
  return CHORUS_OK;

err_after_init:
  orset_free(&t);
  return CHORUS_ENOMEM;
}

/* Binary search: index of @elem, or of where it would go (*@found false). */
static uint32_t elem_find(const struct orset *s, const void *elem, size_t len,
                          bool *found) {
  assert(len <= ORSET_ELEM_MAX && (len == 0 || elem != NULL));
  uint32_t lo = 0, hi = s->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int r = crdt__bytes_cmp(s->e[mid].data, s->e[mid].len, elem, (uint32_t)len);
    if (r == 0) {
      *found = true;
      return mid;
    }
    if (r < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = false;
  return lo;
}

bool orset_contains(const struct orset *s, const void *elem, size_t len) {
  bool found;
  if (len > ORSET_ELEM_MAX)
    return false;
  (void)elem_find(s, elem, len, &found);
  return found;
}

/* A delta holding @ctx_dots (plus @d when @d.counter != 0) as its context
 * and, when @elem is non-NULL, the one element @elem with dot @d. */
static int delta_build(struct orset *t, const struct crdt_dot *ctx_dots,
                       uint32_t n, struct crdt_dot d, const void *elem,
                       size_t len) {
  orset_init(t);
  for (uint32_t i = 0; i < n; i++)
    if (crdt_ctx_add(&t->ctx, ctx_dots[i]) != CHORUS_OK)
      goto err_after_init;
  if (d.counter != 0 && crdt_ctx_add(&t->ctx, d) != CHORUS_OK)
    goto err_after_init;
  if (elem != NULL) {
    struct orset_elem x = {(uint8_t *)(uintptr_t)elem, (uint32_t)len, 1, &d};
    if (crdt__grow((void **)&t->e, &t->cap, 1, sizeof *t->e) != CHORUS_OK ||
        elem_dup(&t->e[0], &x) != CHORUS_OK)
      goto err_after_init;
    t->n = 1;
  }
  return CHORUS_OK;

err_after_init:
  orset_free(t);
  return CHORUS_ENOMEM;
}

int orset_add(struct orset *s, chorus_node_id node, const void *elem,
              size_t len, struct orset *delta) {
  assert(delta != s);
  if (len > ORSET_ELEM_MAX)
    return CHORUS_ETOOBIG;
  bool found;
  uint32_t i = elem_find(s, elem, len, &found);
  struct crdt_dot d = crdt_ctx_next(&s->ctx, node);
  if (d.counter > CRDT_EVENT_MAX)
    return CHORUS_ERANGE;

  /* Everything fallible first: the delta, the new element's memory, the
   * context's room for the dot. Then commit. */
  struct orset t;
  if (delta &&
      delta_build(&t, found ? s->e[i].dots : NULL, found ? s->e[i].ndots : 0, d,
                  elem, len) != CHORUS_OK)
    return CHORUS_ENOMEM;
  struct orset_elem x = {NULL, (uint32_t)len, 1, NULL};
  x.dots = chorus_malloc(sizeof *x.dots);
  if (x.dots == NULL)
    goto err_after_delta;
  x.dots[0] = d;
  if (!found) {
    if (len && (x.data = chorus_memdup(elem, len)) == NULL)
      goto err_after_elem;
    if (crdt__grow((void **)&s->e, &s->cap, s->n + 1, sizeof *s->e) !=
        CHORUS_OK)
      goto err_after_elem;
  }
  if (crdt_ctx_add(&s->ctx, d) != CHORUS_OK)
    goto err_after_elem;

  if (found) {
    /* The new dot supersedes every dot this replica saw for the element. */
    chorus_free(s->e[i].dots);
    s->e[i].dots = x.dots;
    s->e[i].ndots = 1;
  } else {
    memmove(&s->e[i + 1], &s->e[i], (s->n - i) * sizeof *s->e);
    s->e[i] = x;
    s->n++;
  }
  if (delta) {
    orset_free(delta);
    *delta = t;
  }
  assert(orset_contains(s, elem, len) && crdt_ctx_covers(&s->ctx, d));
  return CHORUS_OK;

err_after_elem:
  crdt__orset_elem_free(&x);
err_after_delta:
  if (delta)
    orset_free(&t);
  return CHORUS_ENOMEM;
}

/* Whether a remove with @seen (NULL: this replica's own view, every dot)
 * drops dot @d. */
static bool seen_covers(const struct crdt_ctx *seen, struct crdt_dot d) {
  return seen == NULL || crdt_ctx_covers(seen, d);
}

/* The one remove: drops @elem's dots that @seen covers (all when NULL);
 * the element goes with its last dot. */
static int remove_dots(struct orset *s, const void *elem, size_t len,
                       const struct crdt_ctx *seen, struct orset *delta,
                       bool *removed) {
  assert(delta != s);
  if (removed)
    *removed = false;
  bool found = false;
  uint32_t i = len > ORSET_ELEM_MAX ? 0 : elem_find(s, elem, len, &found);
  struct orset_elem *e = found ? &s->e[i] : NULL;
  uint32_t ngone = 0;
  for (uint32_t k = 0; e != NULL && k < e->ndots; k++)
    ngone += seen_covers(seen, e->dots[k]);
  bool whole = e != NULL && ngone == e->ndots;

  /* Everything fallible first: the split of a partly seen element's dots
   * (what goes into the delta, what stays), and the delta. */
  struct crdt_dot *gone = whole ? e->dots : NULL, *keep = NULL;
  if (e != NULL && !whole && ngone > 0) {
    gone = chorus_malloc(ngone * sizeof *gone);
    keep = chorus_malloc((e->ndots - ngone) * sizeof *keep);
    if (gone == NULL || keep == NULL)
      goto err_after_split;
    for (uint32_t k = 0, g = 0, n = 0; k < e->ndots; k++) {
      if (seen_covers(seen, e->dots[k]))
        gone[g++] = e->dots[k];
      else
        keep[n++] = e->dots[k];
    }
  }
  struct orset t;
  struct crdt_dot none = {0, 0};
  if (delta && delta_build(&t, gone, ngone, none, NULL, 0) != CHORUS_OK)
    goto err_after_split;

  if (whole) {
    /* No tombstone: the context already holds the element's dots, so a
     * join with a replica that still has them drops them. */
    crdt__orset_elem_free(e);
    memmove(&s->e[i], &s->e[i + 1], (s->n - i - 1) * sizeof *s->e);
    s->n--;
    if (removed)
      *removed = true;
    assert(!orset_contains(s, elem, len));
  } else if (keep != NULL) {
    /* The adds the reader never saw stay (add wins); the context still
     * covers the dropped ones, as above. */
    chorus_free(e->dots);
    e->dots = keep;
    e->ndots -= ngone;
    chorus_free(gone);
  }
  if (delta) {
    orset_free(delta);
    *delta = t;
  }
  return CHORUS_OK;

err_after_split:
  if (!whole)
    chorus_free(gone);
  chorus_free(keep);
  return CHORUS_ENOMEM;
}

int orset_remove(struct orset *s, const void *elem, size_t len,
                 struct orset *delta, bool *removed) {
  return remove_dots(s, elem, len, NULL, delta, removed);
}

int orset_remove_seen(struct orset *s, const void *elem, size_t len,
                      const struct crdt_ctx *seen, struct orset *delta,
                      bool *removed) {
  assert(seen != NULL);
  return remove_dots(s, elem, len, seen, delta, removed);
}

/* The dots of one element after a join: those both sides have, and those
 * one side has that the other side's context never saw. Writes them to @out
 * when non-NULL; returns the count and sets *@same_as_a when the result is
 * exactly @a's dots. */
static uint32_t dots_join(const struct crdt_dot *a, uint32_t na,
                          const struct crdt_ctx *ctx_a,
                          const struct crdt_dot *b, uint32_t nb,
                          const struct crdt_ctx *ctx_b, struct crdt_dot *out,
                          bool *same_as_a) {
  uint32_t i = 0, j = 0, k = 0;
  bool same = true;
  while (i < na || j < nb) {
    int r = i >= na ? 1 : j >= nb ? -1 : crdt__dot_cmp(a[i], b[j]);
    if (r == 0) {
      if (out)
        out[k] = a[i];
      k++, i++, j++;
    } else if (r < 0) {
      if (!crdt_ctx_covers(ctx_b, a[i])) {
        if (out)
          out[k] = a[i];
        k++;
      } else {
        same = false;
      }
      i++;
    } else {
      if (!crdt_ctx_covers(ctx_a, b[j])) {
        if (out)
          out[k] = b[j];
        k++;
        same = false;
      }
      j++;
    }
  }
  if (same_as_a)
    *same_as_a = same;
  return k;
}

/* Ownership marks for the join's output entries. */
#define NEW_DATA 1u
#define NEW_DOTS 2u

int orset_join(struct orset *dst, const struct orset *src) {
  assert(crdt__orset_valid(dst) && crdt__orset_valid(src));
  if (dst == src)
    return CHORUS_OK;
  struct crdt_ctx ctx;
  crdt_ctx_init(&ctx);
  if (crdt_ctx_copy(&ctx, &dst->ctx) != CHORUS_OK ||
      crdt_ctx_join(&ctx, &src->ctx) != CHORUS_OK)
    goto err_after_ctx;

  uint32_t cap = dst->n + src->n;
  struct orset_elem *out = chorus_malloc((cap ? cap : 1) * (sizeof *out + 1));
  if (out == NULL)
    goto err_after_ctx;
  uint8_t *own = (uint8_t *)(out + cap);
  uint32_t i = 0, j = 0, k = 0;
  while (i < dst->n || j < src->n) {
    const struct orset_elem *a = i < dst->n ? &dst->e[i] : NULL;
    const struct orset_elem *b = j < src->n ? &src->e[j] : NULL;
    int r = !a   ? 1
            : !b ? -1
                 : crdt__bytes_cmp(a->data, a->len, b->data, b->len);
    /* r <= 0 implies a, r >= 0 implies b; the tests say so to the
     * compiler too. */
    const struct crdt_dot *ad = r <= 0 && a ? a->dots : NULL;
    const struct crdt_dot *bd = r >= 0 && b ? b->dots : NULL;
    uint32_t na = r <= 0 && a ? a->ndots : 0, nb = r >= 0 && b ? b->ndots : 0;
    bool same;
    uint32_t nd = dots_join(ad, na, &dst->ctx, bd, nb, &src->ctx, NULL, &same);
    if (nd > 0) {
      struct orset_elem *o = &out[k];
      own[k] = 0;
      if (r <= 0) {
        *o = *a; /* data moves from dst */
      } else {
        o->len = b->len;
        o->data = NULL;
        if (b->len && (o->data = chorus_memdup(b->data, b->len)) == NULL)
          goto err_after_out;
        own[k] |= NEW_DATA;
      }
      if (r <= 0 && same) {
        o->dots = a->dots; /* dots move from dst too */
      } else {
        o->dots = chorus_malloc(nd * sizeof *o->dots);
        if (o->dots == NULL) {
          if (own[k] & NEW_DATA)
            chorus_free(o->data);
          goto err_after_out;
        }
        own[k] |= NEW_DOTS;
        (void)dots_join(ad, na, &dst->ctx, bd, nb, &src->ctx, o->dots, NULL);
      }
      o->ndots = nd;
      k++;
    }
    if (r <= 0)
      i++;
    if (r >= 0)
      j++;
  }
  assert(k <= cap);

  /* Commit: free what dst owned and the output did not take over. */
  uint32_t o = 0;
  for (i = 0; i < dst->n; i++) {
    while (o < k && crdt__bytes_cmp(out[o].data, out[o].len, dst->e[i].data,
                                    dst->e[i].len) < 0)
      o++;
    bool kept = o < k && !(own[o] & NEW_DATA) &&
                out[o].data == dst->e[i].data &&
                crdt__bytes_cmp(out[o].data, out[o].len, dst->e[i].data,
                                dst->e[i].len) == 0;
    if (!kept) {
      crdt__orset_elem_free(&dst->e[i]);
    } else if (own[o] & NEW_DOTS) {
      chorus_free(dst->e[i].dots);
    }
  }
  chorus_free(dst->e);
  dst->e = out;
  dst->n = k;
  dst->cap = cap;
  crdt_ctx_free(&dst->ctx);
  dst->ctx = ctx;
  assert(crdt__orset_valid(dst));
  return CHORUS_OK;

err_after_out:
  for (uint32_t x = 0; x < k; x++) {
    if (own[x] & NEW_DATA)
      chorus_free(out[x].data);
    if (own[x] & NEW_DOTS)
      chorus_free(out[x].dots);
  }
  chorus_free(out);
err_after_ctx:
  crdt_ctx_free(&ctx);
  return CHORUS_ENOMEM;
}

bool orset_equal(const struct orset *a, const struct orset *b) {
  if (a->n != b->n || !crdt_ctx_equal(&a->ctx, &b->ctx))
    return false;
  for (uint32_t i = 0; i < a->n; i++) {
    const struct orset_elem *x = &a->e[i], *y = &b->e[i];
    if (crdt__bytes_cmp(x->data, x->len, y->data, y->len) != 0 ||
        x->ndots != y->ndots ||
        memcmp(x->dots, y->dots, x->ndots * sizeof *x->dots) != 0)
      return false;
  }
  return true;
}
