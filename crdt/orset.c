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
  s->def = NULL;
  s->ndef = 0;
}

/* def_find: binary search of s->def: index of @elem, or where it would go
 * (*@found false). */
static uint32_t def_find(const struct orset *s, const void *elem, size_t len,
                         bool *found) {
  uint32_t lo = 0, hi = s->ndef;
  *found = false;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int r =
        crdt__bytes_cmp(s->def[mid].data, s->def[mid].len, elem, (uint32_t)len);
    if (r == 0) {
      *found = true;
      return mid;
    }
    if (r < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Whether element @e keeps a dot that remove @d covers. */
static bool def_covers_elem(const struct orset_deferred *d,
                            const struct orset_elem *e) {
  for (uint32_t k = 0; k < e->ndots; k++)
    if (crdt_ctx_covers(&d->seen, e->dots[k]))
      return true;
  return false;
}

static bool defs_valid(const struct orset *s) {
  if (s->ndef > 0 && s->def == NULL)
    return false;
  for (uint32_t i = 0; i < s->ndef; i++) {
    const struct orset_deferred *d = &s->def[i];
    if ((i > 0 && crdt__bytes_cmp(s->def[i - 1].data, s->def[i - 1].len,
                                  d->data, d->len) >= 0) ||
        d->len > ORSET_ELEM_MAX || (d->len > 0) != (d->data != NULL) ||
        !crdt__ctx_valid(&d->seen) || crdt_ctx_covers_all(&s->ctx, &d->seen))
      return false;
    for (uint32_t j = 0; j < s->n; j++)
      if (crdt__bytes_cmp(s->e[j].data, s->e[j].len, d->data, d->len) == 0 &&
          def_covers_elem(d, &s->e[j]))
        return false;
  }
  return true;
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
  return defs_valid(s);
}

void crdt__orset_elem_free(struct orset_elem *e) {
  chorus_free(e->data);
  chorus_free(e->dots);
  e->data = NULL;
  e->dots = NULL;
}

static void def_free(struct orset_deferred *d) {
  chorus_free(d->data);
  d->data = NULL;
  crdt_ctx_free(&d->seen);
}

void orset_free(struct orset *s) {
  for (uint32_t i = 0; i < s->n; i++)
    crdt__orset_elem_free(&s->e[i]);
  chorus_free(s->e);
  for (uint32_t i = 0; i < s->ndef; i++)
    def_free(&s->def[i]);
  chorus_free(s->def);
  crdt_ctx_free(&s->ctx);
  orset_init(s);
}

/* def_dup: a deep copy of remove @in (@seen joined in when non-NULL). */
static int def_dup(struct orset_deferred *out, const struct orset_deferred *in,
                   const struct crdt_ctx *seen) {
  out->len = in->len;
  out->data = NULL;
  crdt_ctx_init(&out->seen);
  if ((in->len && (out->data = chorus_memdup(in->data, in->len)) == NULL) ||
      crdt_ctx_copy(&out->seen, &in->seen) != CHORUS_OK ||
      (seen != NULL && crdt_ctx_join(&out->seen, seen) != CHORUS_OK)) {
    def_free(out);
    return CHORUS_ENOMEM;
  }
  return CHORUS_OK;
}

/* def_reserve: room for one more remove in s->def (the state unchanged).
 * Errors: CHORUS_ENOMEM. */
static int def_reserve(struct orset *s) {
  struct orset_deferred *p =
      chorus_realloc(s->def, (s->ndef + 1) * sizeof *s->def);
  if (p == NULL)
    return CHORUS_ENOMEM;
  s->def = p;
  return CHORUS_OK;
}

/* def_place: @d moved in at @at (def_find's), room reserved. */
static void def_place(struct orset *s, uint32_t at, struct orset_deferred *d) {
  memmove(&s->def[at + 1], &s->def[at], (s->ndef - at) * sizeof *s->def);
  s->def[at] = *d;
  s->ndef++;
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
  if (src->ndef > 0 &&
      (t.def = chorus_malloc(src->ndef * sizeof *t.def)) == NULL)
    goto err_after_init;
  for (; t.ndef < src->ndef; t.ndef++)
    if (def_dup(&t.def[t.ndef], &src->def[t.ndef], NULL) != CHORUS_OK)
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
                       const struct crdt_ctx *seen, bool may_defer,
                       struct orset *delta, bool *removed) {
  assert(delta != s);
  if (removed)
    *removed = false;
  /* A reader's context this replica does not cover: the remove is also
   * kept for the adds it saw and we have not (crdt.h, deferred removes),
   * merged into the element's kept remove if there is one. */
  bool defer = may_defer && seen != NULL && len <= ORSET_ELEM_MAX &&
               !crdt_ctx_covers_all(&s->ctx, seen);
  bool dfound = false;
  uint32_t dat = defer ? def_find(s, elem, len, &dfound) : 0;
  if (defer && !dfound && s->ndef >= ORSET_DEFERRED_MAX)
    return CHORUS_EBUSY;
  struct orset_deferred fresh = {(uint8_t *)(uintptr_t)elem, (uint32_t)len,
                                 seen ? *seen : s->ctx};
  struct orset_deferred nd = {NULL, 0, {{NULL, 0, 0}, NULL, 0, 0}};
  if (defer && ((!dfound && def_reserve(s) != CHORUS_OK) ||
                def_dup(&nd, dfound ? &s->def[dat] : &fresh,
                        dfound ? seen : NULL) != CHORUS_OK))
    return CHORUS_ENOMEM;
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
  if (delta && defer) {
    /* The delta carries the kept remove, so joining it anywhere has the
     * operation's whole effect. */
    struct orset_deferred td;
    if (def_reserve(&t) != CHORUS_OK ||
        def_dup(&td, &fresh, NULL) != CHORUS_OK) {
      orset_free(&t);
      goto err_after_split;
    }
    def_place(&t, 0, &td);
  }

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
  if (defer) {
    if (dfound) {
      def_free(&s->def[dat]);
      s->def[dat] = nd;
    } else {
      def_place(s, dat, &nd);
    }
  }
  if (delta) {
    orset_free(delta);
    *delta = t;
  }
  /* (Mid-join, defs_settle, other kept removes are still to apply.) */
  assert(!may_defer || crdt__orset_valid(s));
  return CHORUS_OK;

err_after_split:
  if (!whole)
    chorus_free(gone);
  chorus_free(keep);
  if (defer)
    def_free(&nd);
  return CHORUS_ENOMEM;
}

int orset_remove(struct orset *s, const void *elem, size_t len,
                 struct orset *delta, bool *removed) {
  return remove_dots(s, elem, len, NULL, false, delta, removed);
}

int orset_remove_seen(struct orset *s, const void *elem, size_t len,
                      const struct crdt_ctx *seen, struct orset *delta,
                      bool *removed) {
  assert(seen != NULL);
  return remove_dots(s, elem, len, seen, true, delta, removed);
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

/* join_plain: the join of elements and contexts; kept removes are the
 * caller's (orset_join). */
static int join_plain(struct orset *dst, const struct orset *src) {
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
  assert(dst->ndef > 0 || crdt__orset_valid(dst));
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

/* defs_merge: @src's kept removes into @dst's (a remove of an element
 * both keep: its contexts joined). Errors: CHORUS_ENOMEM (@dst may hold
 * some of them: the caller works on a copy). */
static int defs_merge(struct orset *dst, const struct orset *src) {
  for (uint32_t i = 0; i < src->ndef; i++) {
    const struct orset_deferred *d = &src->def[i];
    bool found;
    uint32_t at = def_find(dst, d->data, d->len, &found);
    if (found) {
      if (crdt_ctx_join(&dst->def[at].seen, &d->seen) != CHORUS_OK)
        return CHORUS_ENOMEM;
      continue;
    }
    struct orset_deferred c;
    if (def_reserve(dst) != CHORUS_OK || def_dup(&c, d, NULL) != CHORUS_OK)
      return CHORUS_ENOMEM;
    def_place(dst, at, &c);
  }
  return CHORUS_OK;
}

/* defs_settle: every kept remove applied to the elements, then forgotten
 * once the context covers it. Errors: CHORUS_ENOMEM (as defs_merge). */
static int defs_settle(struct orset *s) {
  for (uint32_t i = 0; i < s->ndef; i++) {
    const struct orset_deferred *d = &s->def[i];
    int rc = remove_dots(s, d->data, d->len, &d->seen, false, NULL, NULL);
    if (rc != CHORUS_OK)
      return rc;
  }
  uint32_t w = 0;
  for (uint32_t i = 0; i < s->ndef; i++) {
    if (crdt_ctx_covers_all(&s->ctx, &s->def[i].seen))
      def_free(&s->def[i]);
    else
      s->def[w++] = s->def[i];
  }
  s->ndef = w;
  return CHORUS_OK;
}

int orset_join(struct orset *dst, const struct orset *src) {
  assert(crdt__orset_valid(dst) && crdt__orset_valid(src));
  if (dst == src)
    return CHORUS_OK;
  if (dst->ndef == 0 && src->ndef == 0)
    return join_plain(dst, src);
  /* Kept removes (rare, and short-lived): on a copy, all or nothing. */
  struct orset t;
  orset_init(&t);
  int rc = orset_copy(&t, dst);
  if (rc == CHORUS_OK)
    rc = join_plain(&t, src);
  if (rc == CHORUS_OK)
    rc = defs_merge(&t, src);
  if (rc == CHORUS_OK)
    rc = defs_settle(&t);
  if (rc != CHORUS_OK) {
    orset_free(&t);
    return rc;
  }
  orset_free(dst);
  *dst = t;
  assert(crdt__orset_valid(dst));
  return CHORUS_OK;
}

bool orset_equal(const struct orset *a, const struct orset *b) {
  if (a->n != b->n || a->ndef != b->ndef || !crdt_ctx_equal(&a->ctx, &b->ctx))
    return false;
  for (uint32_t i = 0; i < a->ndef; i++)
    if (crdt__bytes_cmp(a->def[i].data, a->def[i].len, b->def[i].data,
                        b->def[i].len) != 0 ||
        !crdt_ctx_equal(&a->def[i].seen, &b->def[i].seen))
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
