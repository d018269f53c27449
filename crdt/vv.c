/* vv.c: version vectors and causal contexts (a version vector plus a dot
 * cloud). */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_search.h"
#include "crdt_int.h"

int crdt__grow(void **arr, uint32_t *cap, uint32_t need, size_t size) {
  assert(size > 0);
  assert(*cap == 0 || *arr != NULL);
  if (need <= *cap)
    return CHORUS_OK;
  uint64_t ncap = *cap ? *cap : 4;
  while (ncap < need)
    ncap *= 2;
  if (ncap > UINT32_MAX)
    ncap = UINT32_MAX;
  void *p = chorus_realloc(*arr, (size_t)ncap * size);
  if (p == NULL)
    return CHORUS_ENOMEM;
  *arr = p;
  *cap = (uint32_t)ncap;
  assert(*cap >= need);
  return CHORUS_OK;
}

bool crdt__vv_valid(const struct vv *v) {
  if (v->n > v->cap || (v->n > 0 && v->e == NULL))
    return false;
  for (uint32_t i = 0; i < v->n; i++)
    if (v->e[i].counter == 0 || (i > 0 && v->e[i - 1].node >= v->e[i].node))
      return false;
  return true;
}

/* ------------------------------------------------------------------------
 * Version vectors
 * ------------------------------------------------------------------------ */

void vv_init(struct vv *v) {
  v->e = NULL;
  v->n = v->cap = 0;
}

void vv_free(struct vv *v) {
  chorus_free(v->e);
  vv_init(v);
}

int crdt__vv_reserve(struct vv *v, uint32_t need) {
  return crdt__grow((void **)&v->e, &v->cap, need, sizeof *v->e);
}

int vv_copy(struct vv *dst, const struct vv *src) {
  if (dst == src)
    return CHORUS_OK;
  if (crdt__vv_reserve(dst, src->n) != CHORUS_OK)
    return CHORUS_ENOMEM;
  if (src->n)
    memcpy(dst->e, src->e, src->n * sizeof *src->e);
  dst->n = src->n;
  assert(vv_equal(dst, src));
  return CHORUS_OK;
}

/* Index of the first entry with node >= @node. */
static uint32_t vv_lower(const struct vv *v, chorus_node_id node) {
  return (uint32_t)chorus_id_lower_bound(v->e, v->n, sizeof v->e[0],
                                         offsetof(struct vv_entry, node), node);
}

uint64_t vv_get(const struct vv *v, chorus_node_id node) {
  /* Vectors are short (one entry per replica that ever coordinated), so a
   * linear scan beats the binary search's branches below 8 entries. */
  if (v->n <= 8) {
    for (uint32_t i = 0; i < v->n; i++)
      if (v->e[i].node >= node)
        return v->e[i].node == node ? v->e[i].counter : 0;
    return 0;
  }
  uint32_t i = vv_lower(v, node);
  return i < v->n && v->e[i].node == node ? v->e[i].counter : 0;
}

int vv_set(struct vv *v, chorus_node_id node, uint64_t counter) {
  assert(v->n <= v->cap);
  uint32_t i = vv_lower(v, node);
  assert(i <= v->n);
  if (i < v->n && v->e[i].node == node) {
    if (counter == 0) {
      memmove(&v->e[i], &v->e[i + 1], (v->n - i - 1) * sizeof *v->e);
      v->n--;
    } else {
      v->e[i].counter = counter;
    }
    return CHORUS_OK;
  }
  if (counter == 0)
    return CHORUS_OK;
  if (crdt__vv_reserve(v, v->n + 1) != CHORUS_OK)
    return CHORUS_ENOMEM;
  memmove(&v->e[i + 1], &v->e[i], (v->n - i) * sizeof *v->e);
  v->e[i].node = node;
  v->e[i].counter = counter;
  v->n++;
  /* Sorted around the new entry; the rest was sorted before. */
  assert(i == 0 || v->e[i - 1].node < node);
  assert(i + 1 == v->n || v->e[i + 1].node > node);
  return CHORUS_OK;
}

bool vv_covers(const struct vv *v, struct crdt_dot d) {
  return d.counter <= vv_get(v, d.node);
}

int vv_join(struct vv *dst, const struct vv *src) {
  assert(crdt__vv_valid(dst) && crdt__vv_valid(src));
  /* Count the union first, so one reservation covers the merge and a failed
   * one leaves @dst as it was; then merge from the back, in place. */
  uint32_t i = 0, j = 0, k = 0;
  while (i < dst->n && j < src->n) {
    if (dst->e[i].node == src->e[j].node)
      i++, j++;
    else if (dst->e[i].node < src->e[j].node)
      i++;
    else
      j++;
    k++;
  }
  k += (dst->n - i) + (src->n - j);
  if (k == dst->n) {
    /* No new nodes: a pointwise max in place. */
    for (i = 0, j = 0; j < src->n; j++) {
      while (dst->e[i].node < src->e[j].node)
        i++;
      assert(i < dst->n && dst->e[i].node == src->e[j].node);
      if (src->e[j].counter > dst->e[i].counter)
        dst->e[i].counter = src->e[j].counter;
    }
    return CHORUS_OK;
  }
  if (crdt__vv_reserve(dst, k) != CHORUS_OK)
    return CHORUS_ENOMEM;
  int64_t a = (int64_t)dst->n - 1, b = (int64_t)src->n - 1, w = (int64_t)k - 1;
  while (b >= 0) {
    if (a >= 0 && dst->e[a].node > src->e[b].node) {
      dst->e[w--] = dst->e[a--];
    } else if (a >= 0 && dst->e[a].node == src->e[b].node) {
      struct vv_entry x = dst->e[a--];
      if (src->e[b].counter > x.counter)
        x.counter = src->e[b].counter;
      b--;
      dst->e[w--] = x;
    } else {
      dst->e[w--] = src->e[b--];
    }
    assert(w >= a); /* never writes over an entry not yet moved */
  }
  /* What is left of @dst is already in place. */
  assert(w == a);
  dst->n = k;
  assert(crdt__vv_valid(dst));
  return CHORUS_OK;
}

enum vv_order vv_compare(const struct vv *a, const struct vv *b) {
  assert(crdt__vv_valid(a) && crdt__vv_valid(b));
  bool a_more = false, b_more = false;
  uint32_t i = 0, j = 0;
  while (i < a->n || j < b->n) {
    if (j >= b->n || (i < a->n && a->e[i].node < b->e[j].node)) {
      a_more = true;
      i++;
    } else if (i >= a->n || b->e[j].node < a->e[i].node) {
      b_more = true;
      j++;
    } else {
      if (a->e[i].counter > b->e[j].counter)
        a_more = true;
      else if (a->e[i].counter < b->e[j].counter)
        b_more = true;
      i++, j++;
    }
  }
  if (a_more && b_more)
    return VV_CONCURRENT;
  if (a_more)
    return VV_AFTER;
  if (b_more)
    return VV_BEFORE;
  return VV_EQUAL;
}

bool vv_leq(const struct vv *a, const struct vv *b) {
  enum vv_order o = vv_compare(a, b);
  return o == VV_EQUAL || o == VV_BEFORE;
}

bool vv_equal(const struct vv *a, const struct vv *b) {
  return a->n == b->n &&
         (a->n == 0 || memcmp(a->e, b->e, a->n * sizeof *a->e) == 0);
}

/* ------------------------------------------------------------------------
 * Causal contexts
 * ------------------------------------------------------------------------ */

void crdt_ctx_init(struct crdt_ctx *c) {
  vv_init(&c->vv);
  c->cloud = NULL;
  c->ncloud = c->capcloud = 0;
}

void crdt_ctx_free(struct crdt_ctx *c) {
  vv_free(&c->vv);
  chorus_free(c->cloud);
  crdt_ctx_init(c);
}

int crdt_ctx_copy(struct crdt_ctx *dst, const struct crdt_ctx *src) {
  if (dst == src)
    return CHORUS_OK;
  if (crdt__grow((void **)&dst->cloud, &dst->capcloud, src->ncloud,
                 sizeof *dst->cloud) != CHORUS_OK)
    return CHORUS_ENOMEM;
  if (vv_copy(&dst->vv, &src->vv) != CHORUS_OK)
    return CHORUS_ENOMEM;
  if (src->ncloud)
    memcpy(dst->cloud, src->cloud, src->ncloud * sizeof *src->cloud);
  dst->ncloud = src->ncloud;
  assert(crdt_ctx_equal(dst, src));
  return CHORUS_OK;
}

static bool cloud_has(const struct crdt_ctx *c, struct crdt_dot d) {
  uint32_t lo = 0, hi = c->ncloud;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int r = crdt__dot_cmp(c->cloud[mid], d);
    if (r == 0)
      return true;
    if (r < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return false;
}

bool crdt_ctx_covers(const struct crdt_ctx *c, struct crdt_dot d) {
  return vv_covers(&c->vv, d) || (c->ncloud && cloud_has(c, d));
}

int crdt__ctx_compact(struct crdt_ctx *c) {
  /* Reserve exactly the vv entries compaction can add: a node absent from
   * the vv whose smallest cloud dot is its first event. */
  uint32_t extra = 0;
  for (uint32_t i = 0; i < c->ncloud; i++) {
    if (i > 0 && c->cloud[i - 1].node == c->cloud[i].node)
      continue;
    if (c->cloud[i].counter == 1 && vv_get(&c->vv, c->cloud[i].node) == 0)
      extra++;
  }
  if (crdt__vv_reserve(&c->vv, c->vv.n + extra) != CHORUS_OK)
    return CHORUS_ENOMEM;
  uint32_t w = 0;
  for (uint32_t i = 0; i < c->ncloud;) {
    chorus_node_id node = c->cloud[i].node;
    uint64_t v = vv_get(&c->vv, node), v0 = v;
    for (; i < c->ncloud && c->cloud[i].node == node; i++) {
      uint64_t k = c->cloud[i].counter;
      if (k <= v)
        continue;
      if (k == v + 1) {
        v++;
        continue;
      }
      c->cloud[w++] = c->cloud[i];
    }
    if (v != v0)
      (void)vv_set(&c->vv, node, v); /* reserved above: cannot fail */
  }
  /* Within a run counters ascend, so once a gap appears every later dot of
   * the run stays in the cloud and none is covered: one pass suffices. */
  c->ncloud = w;
  assert(crdt__ctx_valid(c));
  return CHORUS_OK;
}

int crdt_ctx_add(struct crdt_ctx *c, struct crdt_dot d) {
  if (crdt_ctx_covers(c, d))
    return CHORUS_OK;
  uint64_t v = vv_get(&c->vv, d.node);
  if (d.counter == v + 1) {
    /* The common case: the next event of a node; extends the vv, and may
     * close a gap before cloud dots. */
    if (v == 0 && crdt__vv_reserve(&c->vv, c->vv.n + 1) != CHORUS_OK)
      return CHORUS_ENOMEM;
    (void)vv_set(&c->vv, d.node, d.counter);
    if (c->ncloud)
      (void)crdt__ctx_compact(c); /* no new vv entry possible: cannot fail */
    assert(crdt_ctx_covers(c, d));
    return CHORUS_OK;
  }
  /* Neither covered nor next: a gap before @d, so it joins the cloud. */
  assert(d.counter > v + 1);
  if (crdt__grow((void **)&c->cloud, &c->capcloud, c->ncloud + 1,
                 sizeof *c->cloud) != CHORUS_OK)
    return CHORUS_ENOMEM;
  uint32_t i = c->ncloud;
  while (i > 0 && crdt__dot_cmp(c->cloud[i - 1], d) > 0)
    i--;
  memmove(&c->cloud[i + 1], &c->cloud[i], (c->ncloud - i) * sizeof *c->cloud);
  c->cloud[i] = d;
  c->ncloud++;
  assert(i == 0 || crdt__dot_cmp(c->cloud[i - 1], d) < 0);
  assert(i + 1 == c->ncloud || crdt__dot_cmp(d, c->cloud[i + 1]) < 0);
  return CHORUS_OK;
}

int crdt_ctx_join(struct crdt_ctx *dst, const struct crdt_ctx *src) {
  assert(crdt__ctx_valid(dst) && crdt__ctx_valid(src));
  if (src->ncloud == 0 && dst->ncloud == 0)
    return vv_join(&dst->vv, &src->vv);
  /* Build the union aside, compact it, then swap: all-or-nothing. */
  struct crdt_ctx t;
  crdt_ctx_init(&t);
  if (vv_copy(&t.vv, &dst->vv) != CHORUS_OK ||
      vv_join(&t.vv, &src->vv) != CHORUS_OK)
    goto err_after_init;
  uint32_t need = dst->ncloud + src->ncloud;
  if (crdt__grow((void **)&t.cloud, &t.capcloud, need, sizeof *t.cloud) !=
      CHORUS_OK)
    goto err_after_init;
  uint32_t i = 0, j = 0, w = 0;
  while (i < dst->ncloud || j < src->ncloud) {
    int r = i >= dst->ncloud   ? 1
            : j >= src->ncloud ? -1
                               : crdt__dot_cmp(dst->cloud[i], src->cloud[j]);
    struct crdt_dot d = r <= 0 ? dst->cloud[i] : src->cloud[j];
    if (r <= 0)
      i++;
    if (r >= 0)
      j++;
    if (!vv_covers(&t.vv, d))
      t.cloud[w++] = d;
  }
  assert(w <= need);
  t.ncloud = w;
  if (crdt__ctx_compact(&t) != CHORUS_OK)
    goto err_after_init;
  crdt_ctx_free(dst);
  *dst = t;
  return CHORUS_OK;

err_after_init:
  crdt_ctx_free(&t);
  return CHORUS_ENOMEM;
}

struct crdt_dot crdt_ctx_next(const struct crdt_ctx *c, chorus_node_id node) {
  uint64_t max = vv_get(&c->vv, node);
  for (uint32_t i = 0; i < c->ncloud; i++)
    if (c->cloud[i].node == node && c->cloud[i].counter > max)
      max = c->cloud[i].counter;
  return (struct crdt_dot){node, max + 1};
}

bool crdt__ctx_valid(const struct crdt_ctx *c) {
  if (!crdt__vv_valid(&c->vv) || c->ncloud > c->capcloud ||
      (c->ncloud > 0 && c->cloud == NULL))
    return false;
  for (uint32_t i = 0; i < c->ncloud; i++) {
    struct crdt_dot d = c->cloud[i];
    if ((i > 0 && crdt__dot_cmp(c->cloud[i - 1], d) >= 0) ||
        d.counter <= vv_get(&c->vv, d.node) + 1)
      return false;
  }
  return true;
}

bool crdt_ctx_equal(const struct crdt_ctx *a, const struct crdt_ctx *b) {
  return vv_equal(&a->vv, &b->vv) && a->ncloud == b->ncloud &&
         (a->ncloud == 0 ||
          memcmp(a->cloud, b->cloud, a->ncloud * sizeof *a->cloud) == 0);
}

bool crdt_ctx_covers_all(const struct crdt_ctx *c, const struct crdt_ctx *sub) {
  /* A canonical context never holds, in its cloud, the dot right after
   * its vv entry (compaction would have taken it), so a vv entry of @sub
   * above @c's own is never covered. */
  for (uint32_t i = 0; i < sub->vv.n; i++)
    if (vv_get(&c->vv, sub->vv.e[i].node) < sub->vv.e[i].counter)
      return false;
  for (uint32_t i = 0; i < sub->ncloud; i++)
    if (!crdt_ctx_covers(c, sub->cloud[i]))
      return false;
  return true;
}
