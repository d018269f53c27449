/* counter.c: the G-counter and the PN-counter with bounded op-id dedup. */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_search.h"
#include "crdt_int.h"

/* ------------------------------------------------------------------------
 * G-counter: a version vector read as counts.
 * ------------------------------------------------------------------------ */

void gcounter_init(struct gcounter *c) {
  vv_init(&c->slots);
}

void gcounter_free(struct gcounter *c) {
  vv_free(&c->slots);
}

int gcounter_copy(struct gcounter *dst, const struct gcounter *src) {
  return vv_copy(&dst->slots, &src->slots);
}

int gcounter_inc(struct gcounter *c, chorus_node_id node, uint64_t amount,
                 struct gcounter *delta) {
  assert(delta != c);
  if (amount == 0)
    return CHORUS_EINVAL;
  uint64_t v = vv_get(&c->slots, node);
  if (v > UINT64_MAX - amount)
    return CHORUS_ERANGE;
  if (delta && crdt__vv_reserve(&delta->slots, 1) != CHORUS_OK)
    return CHORUS_ENOMEM;
  if (vv_set(&c->slots, node, v + amount) != CHORUS_OK)
    return CHORUS_ENOMEM;
  if (delta) {
    delta->slots.n = 0;
    (void)vv_set(&delta->slots, node, v + amount); /* reserved */
    assert(delta->slots.n == 1);
  }
  assert(vv_get(&c->slots, node) == v + amount);
  return CHORUS_OK;
}

int gcounter_join(struct gcounter *dst, const struct gcounter *src) {
  return vv_join(&dst->slots, &src->slots);
}

int gcounter_value(const struct gcounter *c, uint64_t *out) {
  uint64_t sum = 0;
  for (uint32_t i = 0; i < c->slots.n; i++) {
    if (sum > UINT64_MAX - c->slots.e[i].counter)
      return CHORUS_ERANGE;
    sum += c->slots.e[i].counter;
  }
  *out = sum;
  return CHORUS_OK;
}

bool gcounter_equal(const struct gcounter *a, const struct gcounter *b) {
  return vv_equal(&a->slots, &b->slots);
}

/* ------------------------------------------------------------------------
 * PN-counter
 * ------------------------------------------------------------------------ */

bool crdt__pncounter_valid(const struct pncounter *c) {
  if (c->n > c->cap || (c->n > 0 && c->s == NULL))
    return false;
  for (uint32_t i = 0; i < c->n; i++) {
    const struct pncounter_slot *s = &c->s[i];
    if ((i > 0 && c->s[i - 1].node >= s->node) || (s->p == 0 && s->n == 0) ||
        s->nops > PNCOUNTER_OP_WINDOW)
      return false;
  }
  return true;
}

void pncounter_init(struct pncounter *c) {
  c->s = NULL;
  c->n = c->cap = 0;
}

void pncounter_free(struct pncounter *c) {
  chorus_free(c->s);
  pncounter_init(c);
}

int pncounter_copy(struct pncounter *dst, const struct pncounter *src) {
  if (dst == src)
    return CHORUS_OK;
  if (crdt__grow((void **)&dst->s, &dst->cap, src->n, sizeof *dst->s) !=
      CHORUS_OK)
    return CHORUS_ENOMEM;
  if (src->n)
    memcpy(dst->s, src->s, src->n * sizeof *src->s);
  dst->n = src->n;
  assert(pncounter_equal(dst, src));
  return CHORUS_OK;
}

static bool op_is_zero(const struct crdt_op_id *op) {
  return op == NULL || (op->hi == 0 && op->lo == 0);
}

bool pncounter_seen(const struct pncounter *c, const struct crdt_op_id *op) {
  if (op_is_zero(op))
    return false;
  for (uint32_t i = 0; i < c->n; i++)
    for (uint32_t k = 0; k < c->s[i].nops; k++)
      if (c->s[i].ops[k].hi == op->hi && c->s[i].ops[k].lo == op->lo)
        return true;
  return false;
}

/* Index of the first slot with node >= @node. */
static uint32_t slot_lower(const struct pncounter *c, chorus_node_id node) {
  return (uint32_t)chorus_id_lower_bound(
      c->s, c->n, sizeof c->s[0], offsetof(struct pncounter_slot, node), node);
}

int pncounter_add(struct pncounter *c, chorus_node_id node, int64_t amount,
                  const struct crdt_op_id *op, struct pncounter *delta,
                  bool *applied) {
  assert(delta != c);
  assert(c->n <= c->cap);
  if (applied)
    *applied = false;
  if (amount == 0)
    return CHORUS_EINVAL;
  if (pncounter_seen(c, op)) {
    if (delta)
      delta->n = 0;
    return CHORUS_OK;
  }
  uint32_t i = slot_lower(c, node);
  assert(i <= c->n);
  bool found = i < c->n && c->s[i].node == node;
  struct pncounter_slot s;
  if (found) {
    s = c->s[i];
  } else {
    memset(&s, 0, sizeof s);
    s.node = node;
  }
  uint64_t mag = amount > 0 ? (uint64_t)amount : (uint64_t)(-(amount + 1)) + 1;
  uint64_t *field = amount > 0 ? &s.p : &s.n;
  if (*field > UINT64_MAX - mag)
    return CHORUS_ERANGE;
  *field += mag;
  if (!op_is_zero(op)) {
    assert(s.nops <= PNCOUNTER_OP_WINDOW);
    if (s.nops == PNCOUNTER_OP_WINDOW) {
      memmove(&s.ops[0], &s.ops[1],
              (PNCOUNTER_OP_WINDOW - 1) * sizeof s.ops[0]);
      s.nops--;
    }
    s.ops[s.nops++] = *op;
  }

  if (delta && crdt__grow((void **)&delta->s, &delta->cap, 1,
                          sizeof *delta->s) != CHORUS_OK)
    return CHORUS_ENOMEM;
  if (!found) {
    if (crdt__grow((void **)&c->s, &c->cap, c->n + 1, sizeof *c->s) !=
        CHORUS_OK)
      return CHORUS_ENOMEM;
    memmove(&c->s[i + 1], &c->s[i], (c->n - i) * sizeof *c->s);
    c->n++;
  }
  c->s[i] = s;
  /* Sorted around the slot; the rest was sorted before. */
  assert(i == 0 || c->s[i - 1].node < node);
  assert(i + 1 == c->n || c->s[i + 1].node > node);
  if (delta) {
    delta->s[0] = s;
    delta->n = 1;
  }
  if (applied)
    *applied = true;
  return CHORUS_OK;
}

/* Slot versions of one node are totally ordered by its own updates: the
 * newer has p and n no smaller and one of them larger. Windows break ties
 * between states that honest nodes never produce (see crdt.h). */
static int slot_cmp(const struct pncounter_slot *a,
                    const struct pncounter_slot *b) {
  if (a->p != b->p)
    return a->p < b->p ? -1 : 1;
  if (a->n != b->n)
    return a->n < b->n ? -1 : 1;
  if (a->nops != b->nops)
    return a->nops < b->nops ? -1 : 1;
  for (uint32_t k = 0; k < a->nops; k++) {
    if (a->ops[k].hi != b->ops[k].hi)
      return a->ops[k].hi < b->ops[k].hi ? -1 : 1;
    if (a->ops[k].lo != b->ops[k].lo)
      return a->ops[k].lo < b->ops[k].lo ? -1 : 1;
  }
  return 0;
}

int pncounter_join(struct pncounter *dst, const struct pncounter *src) {
  assert(crdt__pncounter_valid(dst) && crdt__pncounter_valid(src));
  uint32_t i = 0, j = 0, k = 0;
  while (i < dst->n && j < src->n) {
    if (dst->s[i].node == src->s[j].node)
      i++, j++;
    else if (dst->s[i].node < src->s[j].node)
      i++;
    else
      j++;
    k++;
  }
  k += (dst->n - i) + (src->n - j);
  if (crdt__grow((void **)&dst->s, &dst->cap, k, sizeof *dst->s) != CHORUS_OK)
    return CHORUS_ENOMEM;
  /* Merge from the back, in place. */
  int64_t a = (int64_t)dst->n - 1, b = (int64_t)src->n - 1, w = (int64_t)k - 1;
  while (b >= 0) {
    if (a >= 0 && dst->s[a].node > src->s[b].node) {
      dst->s[w--] = dst->s[a--];
    } else if (a >= 0 && dst->s[a].node == src->s[b].node) {
      if (slot_cmp(&src->s[b], &dst->s[a]) > 0)
        dst->s[w] = src->s[b];
      else if (w != a)
        dst->s[w] = dst->s[a];
      w--, a--, b--;
    } else {
      dst->s[w--] = src->s[b--];
    }
    assert(w >= a); /* never writes over a slot not yet moved */
  }
  /* What is left of @dst is already in place. */
  assert(w == a);
  dst->n = k;
  assert(crdt__pncounter_valid(dst));
  return CHORUS_OK;
}

/* 128-bit sums: up to 2^32 slots of 2^64 each cannot overflow them. */
__extension__ typedef __int128 crdt__i128;

int pncounter_value(const struct pncounter *c, int64_t *out) {
  crdt__i128 sum = 0;
  for (uint32_t i = 0; i < c->n; i++)
    sum += (crdt__i128)c->s[i].p - (crdt__i128)c->s[i].n;
  if (sum > INT64_MAX || sum < INT64_MIN)
    return CHORUS_ERANGE;
  *out = (int64_t)sum;
  return CHORUS_OK;
}

bool pncounter_equal(const struct pncounter *a, const struct pncounter *b) {
  if (a->n != b->n)
    return false;
  for (uint32_t i = 0; i < a->n; i++)
    if (a->s[i].node != b->s[i].node || slot_cmp(&a->s[i], &b->s[i]) != 0)
      return false;
  return true;
}
