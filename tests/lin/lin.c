/* lin.c: the linearizability checker (lin.h says what and how). */
#include "lin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * The list of events of one key
 * ------------------------------------------------------------------------ */

struct entry {
  size_t op;    /* index in the key's operations */
  bool is_call; /* invocation, else completion */
  uint64_t time;
  struct entry *match; /* the call's completion, the completion's call */
  struct entry *prev, *next;
};

static int entry_cmp(const void *a, const void *b) {
  const struct entry *x = a, *y = b;
  if (x->time != y->time)
    return x->time < y->time ? -1 : 1;
  if (x->is_call != y->is_call)
    return x->is_call ? -1 : 1; /* ties: concurrent (lin.h) */
  return x->op < y->op ? -1 : x->op > y->op;
}

/* lift: takes call @e and its completion out of the list (head @h). */
static void lift(struct entry **h, struct entry *e) {
  struct entry *r = e->match;
  for (struct entry *x = e; x != NULL; x = x == e ? r : NULL) {
    if (x->prev != NULL)
      x->prev->next = x->next;
    else
      *h = x->next;
    if (x->next != NULL)
      x->next->prev = x->prev;
  }
}

/* unlift: puts them back, where they were (the inverse of lift, done in
 * the reverse order of the lifts). */
static void unlift(struct entry **h, struct entry *e) {
  struct entry *r = e->match;
  for (struct entry *x = r; x != NULL; x = x == r ? e : NULL) {
    if (x->prev != NULL)
      x->prev->next = x;
    else
      *h = x;
    if (x->next != NULL)
      x->next->prev = x;
  }
}

/* ------------------------------------------------------------------------
 * Configurations seen: (operations placed, state), Lowe's memoization
 * ------------------------------------------------------------------------ */

struct seen {
  size_t words;   /* per bitset */
  size_t cap, n;  /* slots (a power of two), used */
  uint64_t *keys; /* cap * (words + 4 state words) */
  bool *used;
};

static uint64_t mix(uint64_t h, uint64_t x) {
  h ^= x + 0x9e3779b97f4a7c15u + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdu;
}

static uint64_t conf_hash(const uint64_t *bits, size_t words,
                          const struct lin_state *s) {
  uint64_t h = 0x243f6a8885a308d3u;
  for (size_t i = 0; i < words; i++)
    h = mix(h, bits[i]);
  for (size_t i = 0; i < 4; i++)
    h = mix(h, (uint64_t)s->v[i]);
  return h;
}

static bool seen_grow(struct seen *t) {
  size_t ncap = t->cap ? t->cap * 2 : 1024, w = t->words + 4;
  uint64_t *nk = calloc(ncap * w, sizeof *nk);
  bool *nu = calloc(ncap, sizeof *nu);
  if (nk == NULL || nu == NULL) {
    free(nk);
    free(nu);
    return false;
  }
  for (size_t i = 0; i < t->cap; i++) {
    if (!t->used[i])
      continue;
    const uint64_t *k = t->keys + i * w;
    struct lin_state s;
    memcpy(s.v, k + t->words, sizeof s.v);
    size_t j = conf_hash(k, t->words, &s) & (ncap - 1);
    while (nu[j])
      j = (j + 1) & (ncap - 1);
    nu[j] = true;
    memcpy(nk + j * w, k, w * sizeof *nk);
  }
  free(t->keys);
  free(t->used);
  t->keys = nk;
  t->used = nu;
  t->cap = ncap;
  return true;
}

/* seen_add: adds the configuration; 1 when new, 0 when seen before, -1
 * out of memory. */
static int seen_add(struct seen *t, const uint64_t *bits,
                    const struct lin_state *s) {
  if ((t->n + 1) * 2 > t->cap && !seen_grow(t))
    return -1;
  size_t w = t->words + 4;
  size_t j = conf_hash(bits, t->words, s) & (t->cap - 1);
  for (; t->used[j]; j = (j + 1) & (t->cap - 1)) {
    const uint64_t *k = t->keys + j * w;
    if (memcmp(k, bits, t->words * sizeof *k) == 0 &&
        memcmp(k + t->words, s->v, sizeof s->v) == 0)
      return 0;
  }
  t->used[j] = true;
  memcpy(t->keys + j * w, bits, t->words * sizeof *bits);
  memcpy(t->keys + j * w + t->words, s->v, sizeof s->v);
  t->n++;
  return 1;
}

/* ------------------------------------------------------------------------
 * One key
 * ------------------------------------------------------------------------ */

struct frame {
  struct entry *call;
  struct lin_state state; /* before it was placed */
};

/* check_key: the Wing-Gong search over @n operations (pointers into the
 * caller's history, in input order; @idx their input indexes). */
static enum lin_verdict check_key(const struct lin_model *model,
                                  const struct lin_op **ops, const size_t *idx,
                                  size_t n, uint64_t max_steps,
                                  struct lin_result *out) {
  enum lin_verdict v = LIN_ERROR;
  size_t best = 0, stuck = 0; /* the deepest order, and where it ended */
  uint64_t steps = 0;
  struct entry *ev = calloc(2 * n, sizeof *ev);
  struct frame *stack = calloc(n + 1, sizeof *stack);
  size_t words = n / 64 + 1;
  uint64_t *bits = calloc(words, sizeof *bits);
  struct seen seen = {.words = words};
  if (ev == NULL || stack == NULL || bits == NULL)
    goto done;
  for (size_t i = 0; i < n; i++) {
    ev[2 * i] = (struct entry){.op = i, .is_call = true, .time = ops[i]->call};
    ev[2 * i + 1] =
        (struct entry){.op = i, .is_call = false, .time = ops[i]->ret};
  }
  qsort(ev, 2 * n, sizeof *ev, entry_cmp);
  struct entry **call_of = calloc(n, sizeof *call_of);
  if (call_of == NULL)
    goto done;
  for (size_t i = 0; i < 2 * n; i++) {
    ev[i].prev = i > 0 ? &ev[i - 1] : NULL;
    ev[i].next = i + 1 < 2 * n ? &ev[i + 1] : NULL;
    if (ev[i].is_call)
      call_of[ev[i].op] = &ev[i];
  }
  for (size_t i = 0; i < 2 * n; i++)
    if (!ev[i].is_call) {
      ev[i].match = call_of[ev[i].op];
      call_of[ev[i].op]->match = &ev[i];
    }
  free(call_of);

  struct entry *head = n > 0 ? &ev[0] : NULL, *e = head;
  struct lin_state state;
  model->init(&state);
  size_t depth = 0;
  while (head != NULL) {
    if (max_steps != 0 && steps >= max_steps) {
      v = LIN_UNKNOWN;
      goto done;
    }
    steps++;
    if (e->is_call) {
      const struct lin_op *op = ops[e->op];
      struct lin_state next;
      bool known = op->ret != LIN_PENDING;
      if (model->step(&state, op, known, &next)) {
        bits[e->op / 64] |= UINT64_C(1) << (e->op % 64);
        int added = seen_add(&seen, bits, &next);
        if (added < 0)
          goto done;
        if (added == 1) {
          stack[depth++] = (struct frame){e, state};
          state = next;
          lift(&head, e);
          if (depth > best)
            best = depth;
          e = head;
          continue;
        }
        bits[e->op / 64] &= ~(UINT64_C(1) << (e->op % 64));
      }
      e = e->next;
    } else {
      /* A completion: its operation had to be placed before here. */
      if (depth == best)
        stuck = e->op;
      if (depth == 0) {
        v = LIN_VIOLATION;
        goto done;
      }
      struct frame f = stack[--depth];
      state = f.state;
      bits[f.call->op / 64] &= ~(UINT64_C(1) << (f.call->op % 64));
      unlift(&head, f.call);
      e = f.call->next;
    }
  }
  v = LIN_OK;
done:
  out->steps += steps;
  if (v != LIN_OK) {
    out->ops = n;
    out->placed = best;
    out->stuck_at = n > 0 ? idx[stuck] : 0;
  }
  free(ev);
  free(stack);
  free(bits);
  free(seen.keys);
  free(seen.used);
  return v;
}

static int op_key_cmp(const void *a, const void *b) {
  const struct lin_op *const *x = a, *const *y = b;
  if ((*x)->key != (*y)->key)
    return (*x)->key < (*y)->key ? -1 : 1;
  return *x < *y ? -1 : *x > *y; /* input order within a key */
}

void lin_check(const struct lin_model *model, const struct lin_op *h, size_t n,
               uint64_t max_steps, struct lin_result *out) {
  *out = (struct lin_result){.verdict = LIN_ERROR};
  for (size_t i = 0; i < n; i++)
    if (h[i].ret < h[i].call) {
      snprintf(out->message, sizeof out->message,
               "operation %zu completes (%" PRIu64 ") before it is invoked "
               "(%" PRIu64 ")",
               i, h[i].ret, h[i].call);
      return;
    }
  const struct lin_op **by = calloc(n ? n : 1, sizeof *by);
  size_t *idx = calloc(n ? n : 1, sizeof *idx);
  if (by == NULL || idx == NULL) {
    free(by);
    free(idx);
    snprintf(out->message, sizeof out->message, "out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++)
    by[i] = &h[i];
  qsort(by, n, sizeof *by, op_key_cmp);
  for (size_t i = 0; i < n; i++)
    idx[i] = (size_t)(by[i] - h);
  out->verdict = LIN_OK;
  for (size_t lo = 0; lo < n && out->verdict == LIN_OK;) {
    size_t hi = lo;
    while (hi < n && by[hi]->key == by[lo]->key)
      hi++;
    enum lin_verdict v =
        check_key(model, by + lo, idx + lo, hi - lo, max_steps, out);
    if (v != LIN_OK) {
      out->verdict = v;
      out->key = by[lo]->key;
      char what[96] = "";
      if (v == LIN_VIOLATION && model->describe != NULL)
        model->describe(&h[out->stuck_at], what, sizeof what);
      snprintf(out->message, sizeof out->message,
               v == LIN_VIOLATION
                   ? "%s: key %" PRIu64 " is not linearizable: no order of "
                     "its %zu operations fits (at most %zu placed; stuck at "
                     "operation %zu, %s by client %" PRIu32 ")"
               : v == LIN_UNKNOWN
                   ? "%s: key %" PRIu64 ": undecided after the step budget "
                     "(%zu operations, %zu placed at most; op %zu, %s, "
                     "client %" PRIu32 ")"
                   : "%s: key %" PRIu64 ": out of memory (%zu operations, "
                     "%zu, %zu, %s, %" PRIu32 ")",
               model->name, out->key, out->ops, out->placed, out->stuck_at,
               what, h[out->stuck_at].client);
    }
    lo = hi;
  }
  free(by);
  free(idx);
}

/* ------------------------------------------------------------------------
 * The compare-and-set register
 * ------------------------------------------------------------------------ */

static void reg_init(struct lin_state *s) {
  memset(s, 0, sizeof *s);
  s->v[0] = LIN_ABSENT;
}

static bool reg_step(const struct lin_state *s, const struct lin_op *op,
                     bool known, struct lin_state *next) {
  *next = *s;
  switch (op->kind) {
  case LIN_READ:
    return !known || op->out == s->v[0];
  case LIN_WRITE:
    next->v[0] = op->in[0];
    return true;
  case LIN_DELETE:
    next->v[0] = LIN_ABSENT;
    return true;
  case LIN_CAS: {
    bool applies = s->v[0] == op->in[0];
    if (applies)
      next->v[0] = op->in[1];
    return !known || op->out == (applies ? 1 : 0);
  }
  default:
    return false;
  }
}

static void value_str(int64_t v, char *buf, size_t cap) {
  if (v == LIN_ABSENT)
    snprintf(buf, cap, "absent");
  else
    snprintf(buf, cap, "%" PRId64, v);
}

static void reg_describe(const struct lin_op *op, char *buf, size_t cap) {
  char a[24], b[24], o[24];
  value_str(op->in[0], a, sizeof a);
  value_str(op->in[1], b, sizeof b);
  value_str(op->out, o, sizeof o);
  bool pending = op->ret == LIN_PENDING;
  switch (op->kind) {
  case LIN_READ:
    snprintf(buf, cap, "read() = %s", pending ? "?" : o);
    break;
  case LIN_WRITE:
    snprintf(buf, cap, "write(%s)", a);
    break;
  case LIN_DELETE:
    snprintf(buf, cap, "delete()");
    break;
  case LIN_CAS:
    snprintf(buf, cap, "cas(%s -> %s) = %s", a, b,
             pending   ? "?"
             : op->out ? "applied"
                       : "not applied");
    break;
  default:
    snprintf(buf, cap, "op %u", op->kind);
  }
}

const struct lin_model lin_cas_register = {"cas register", reg_init, reg_step,
                                           reg_describe};

/* ------------------------------------------------------------------------
 * The lock with fencing tokens
 * ------------------------------------------------------------------------ */

static void lock_init(struct lin_state *s) {
  memset(s, 0, sizeof *s);
}

static bool lock_step(const struct lin_state *s, const struct lin_op *op,
                      bool known, struct lin_state *next) {
  *next = *s;
  switch (op->kind) {
  case LIN_ACQUIRE:
    if (s->v[0] != 0) /* held: refused */
      return !known || op->out == 0;
    if (known && op->out <= s->v[1])
      return false; /* a token not above every earlier one */
    next->v[0] = next->v[1] = known ? op->out : s->v[1] + 1;
    return true;
  case LIN_RELEASE: {
    bool holder = s->v[0] != 0 && s->v[0] == op->in[0];
    if (holder)
      next->v[0] = 0;
    return !known || op->out == (holder ? 1 : 0);
  }
  case LIN_FENCED: {
    bool applies = op->in[0] >= s->v[2];
    if (applies)
      next->v[2] = op->in[0];
    return !known || op->out == (applies ? 1 : 0);
  }
  default:
    return false;
  }
}

static void lock_describe(const struct lin_op *op, char *buf, size_t cap) {
  bool pending = op->ret == LIN_PENDING;
  switch (op->kind) {
  case LIN_ACQUIRE:
    if (pending)
      snprintf(buf, cap, "acquire() = ?");
    else
      snprintf(buf, cap, "acquire() = %" PRId64 "%s", op->out,
               op->out ? "" : " (refused)");
    break;
  case LIN_RELEASE:
    snprintf(buf, cap, "release(%" PRId64 ") = %s", op->in[0],
             pending   ? "?"
             : op->out ? "released"
                       : "not the holder");
    break;
  case LIN_FENCED:
    snprintf(buf, cap, "fenced write(token %" PRId64 ") = %s", op->in[0],
             pending   ? "?"
             : op->out ? "applied"
                       : "refused");
    break;
  default:
    snprintf(buf, cap, "op %u", op->kind);
  }
}

const struct lin_model lin_fenced_lock = {"fenced lock", lock_init, lock_step,
                                          lock_describe};

int lin_history_push(struct lin_history *h, const struct lin_op *op) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? 2 * h->cap : 256;
    struct lin_op *p = realloc(h->ops, cap * sizeof *p);
    if (p == NULL)
      return -1;
    h->ops = p;
    h->cap = cap;
  }
  h->ops[h->n++] = *op;
  return 0;
}

void lin_history_free(struct lin_history *h) {
  free(h->ops);
  *h = (struct lin_history){NULL, 0, 0};
}
