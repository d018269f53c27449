/* sim_history.c: recording client histories and checking them. */
#include "sim_history.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"

/* ------------------------------------------------------------------------
 * A u64 -> u64 hash map (open addressing); a set is a map whose values are
 * ignored. Key 0 never occurs as a written value, so it marks empty slots;
 * a 0 read back is always a phantom and never inserted.
 * ------------------------------------------------------------------------ */

struct u64map {
  uint64_t *keys;
  uint64_t *vals;
  size_t cap, n;
};

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

static void map_free(struct u64map *m) {
  chorus_free(m->keys);
  chorus_free(m->vals);
  memset(m, 0, sizeof *m);
}

static uint64_t *map_find(const struct u64map *m, uint64_t k) {
  if (m->cap == 0 || k == 0)
    return NULL;
  for (size_t i = mix64(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    if (m->keys[i] == k)
      return &m->vals[i];
    if (m->keys[i] == 0)
      return NULL;
  }
}

static int map_put(struct u64map *m, uint64_t k, uint64_t v);

static int map_grow(struct u64map *m) {
  struct u64map bigger = {0};
  bigger.cap = m->cap ? m->cap * 2 : 64;
  bigger.keys = chorus_calloc(bigger.cap, sizeof(uint64_t));
  bigger.vals = chorus_calloc(bigger.cap, sizeof(uint64_t));
  if (bigger.keys == NULL || bigger.vals == NULL) {
    map_free(&bigger);
    return CHORUS_ENOMEM;
  }
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i] != 0)
      (void)map_put(&bigger, m->keys[i], m->vals[i]);
  map_free(m);
  *m = bigger;
  return CHORUS_OK;
}

/* map_put: inserts or overwrites; returns 1 when @k was new. */
static int map_put(struct u64map *m, uint64_t k, uint64_t v) {
  if (k == 0)
    return 0;
  if ((m->n + 1) * 2 > m->cap) {
    int rc = map_grow(m);
    if (rc != CHORUS_OK)
      return rc;
  }
  for (size_t i = mix64(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    if (m->keys[i] == k) {
      m->vals[i] = v;
      return 0;
    }
    if (m->keys[i] == 0) {
      m->keys[i] = k;
      m->vals[i] = v;
      m->n++;
      return 1;
    }
  }
}

static int map_has(const struct u64map *m, uint64_t k) {
  return map_find(m, k) != NULL;
}

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

enum sim_op_type sim_op_type_of(enum sim_op op) {
  switch (op) {
  case SIM_OP_COUNTER_ADD:
  case SIM_OP_COUNTER_READ:
    return SIM_TYPE_COUNTER;
  case SIM_OP_SET_ADD:
  case SIM_OP_SET_READ:
  case SIM_OP_SET_REMOVE:
    return SIM_TYPE_SET;
  case SIM_OP_CAS:
  case SIM_OP_LOCK:
    return SIM_TYPE_CAS;
  case SIM_OP_LWW_SET:
  case SIM_OP_LWW_READ:
    return SIM_TYPE_LWW;
  default:
    return SIM_TYPE_KV;
  }
}

const char *sim_op_name(enum sim_op op) {
  switch (op) {
  case SIM_OP_GET:
    return "get";
  case SIM_OP_PUT:
    return "put";
  case SIM_OP_COUNTER_ADD:
    return "counter_add";
  case SIM_OP_COUNTER_READ:
    return "counter_read";
  case SIM_OP_SET_ADD:
    return "set_add";
  case SIM_OP_SET_READ:
    return "set_read";
  case SIM_OP_DELETE:
    return "delete";
  case SIM_OP_CAS:
    return "cas";
  case SIM_OP_SET_REMOVE:
    return "set_remove";
  case SIM_OP_LWW_SET:
    return "lww_set";
  case SIM_OP_LWW_READ:
    return "lww_read";
  case SIM_OP_LOCK:
    return "lock";
  }
  return "?";
}

const char *sim_outcome_name(enum sim_outcome o) {
  switch (o) {
  case SIM_PENDING:
    return "pending";
  case SIM_OK:
    return "ok";
  case SIM_FAIL:
    return "fail";
  case SIM_UNKNOWN:
    return "unknown";
  }
  return "?";
}

/* ------------------------------------------------------------------------
 * Recording
 * ------------------------------------------------------------------------ */

void sim_history_init(struct sim_history *h) {
  memset(h, 0, sizeof *h);
}

void sim_history_free(struct sim_history *h) {
  for (size_t i = 0; i < h->nops; i++) {
    chorus_free(h->ops[i].covers);
    chorus_free(h->ops[i].read);
  }
  for (size_t i = 0; i < h->nfinals; i++) {
    chorus_free(h->finals[i].values);
    chorus_free(h->finals[i].op_ids);
  }
  for (size_t i = 0; i < h->nkeys; i++)
    chorus_free(h->keys[i].name);
  chorus_free(h->ops);
  chorus_free(h->finals);
  chorus_free(h->keys);
  sim_history_init(h);
}

void sim_history_clear_finals(struct sim_history *h) {
  for (size_t i = 0; i < h->nfinals; i++) {
    chorus_free(h->finals[i].values);
    chorus_free(h->finals[i].op_ids);
  }
  h->nfinals = 0;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return CHORUS_OK;
  size_t ncap = *cap ? *cap * 2 : 16;
  while (ncap < need)
    ncap *= 2;
  void *p = chorus_realloc(*arr, ncap * elem);
  if (p == NULL)
    return CHORUS_ENOMEM;
  *arr = p;
  *cap = ncap;
  return CHORUS_OK;
}

static int dup_u64s(uint64_t **out, const uint64_t *src, size_t n) {
  *out = NULL;
  if (n == 0)
    return CHORUS_OK;
  *out = chorus_memdup(src, n * sizeof *src);
  return *out ? CHORUS_OK : CHORUS_ENOMEM;
}

int64_t sim_history_key(struct sim_history *h, const char *name,
                        enum sim_op_type type) {
  for (size_t i = 0; i < h->nkeys; i++)
    if (strcmp(h->keys[i].name, name) == 0)
      return h->keys[i].type == type ? (int64_t)i : CHORUS_ETYPE;
  if (grow((void **)&h->keys, &h->capkeys, h->nkeys + 1, sizeof *h->keys))
    return CHORUS_ENOMEM;
  char *copy = chorus_strdup(name);
  if (copy == NULL)
    return CHORUS_ENOMEM;
  h->keys[h->nkeys].name = copy;
  h->keys[h->nkeys].type = type;
  return (int64_t)h->nkeys++;
}

int64_t sim_history_invoke(struct sim_history *h, const struct sim_hop *op) {
  if (grow((void **)&h->ops, &h->capops, h->nops + 1, sizeof *h->ops))
    return CHORUS_ENOMEM;
  struct sim_hop *o = &h->ops[h->nops];
  *o = *op;
  o->read = NULL;
  o->nread = 0;
  o->outcome = SIM_PENDING;
  if (dup_u64s(&o->covers, op->covers, op->ncovers) != CHORUS_OK)
    return CHORUS_ENOMEM;
  return (int64_t)h->nops++;
}

int sim_history_complete(struct sim_history *h, size_t idx,
                         enum sim_outcome outcome, uint64_t when,
                         const uint64_t *read, size_t nread, int64_t counter) {
  struct sim_hop *o = &h->ops[idx];
  uint64_t *copy;
  if (dup_u64s(&copy, read, nread) != CHORUS_OK)
    return CHORUS_ENOMEM;
  chorus_free(o->read);
  o->read = copy;
  o->nread = nread;
  o->outcome = outcome;
  o->complete = when;
  o->counter = counter;
  return CHORUS_OK;
}

void sim_history_stamp(struct sim_history *h, size_t idx,
                       const uint64_t stamp[2]) {
  h->ops[idx].stamp[0] = stamp[0];
  h->ops[idx].stamp[1] = stamp[1];
}

int sim_history_final(struct sim_history *h, const struct sim_hfinal *f) {
  if (grow((void **)&h->finals, &h->capfinals, h->nfinals + 1,
           sizeof *h->finals))
    return CHORUS_ENOMEM;
  struct sim_hfinal *d = &h->finals[h->nfinals];
  *d = *f;
  if (dup_u64s(&d->values, f->values, f->nvalues) != CHORUS_OK)
    return CHORUS_ENOMEM;
  if (dup_u64s(&d->op_ids, f->op_ids, f->nop_ids) != CHORUS_OK) {
    chorus_free(d->values);
    return CHORUS_ENOMEM;
  }
  h->nfinals++;
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * Checkers
 * ------------------------------------------------------------------------ */

static int violation(struct sim_check_report *rep, const char *checker,
                     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int violation(struct sim_check_report *rep, const char *checker,
                     const char *fmt, ...) {
  if (rep != NULL) {
    snprintf(rep->checker, sizeof rep->checker, "%s", checker);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->message, sizeof rep->message, fmt, ap);
    va_end(ap);
  }
  return 1;
}

static const char *keyname(const struct sim_history *h, uint32_t key) {
  return key < h->nkeys ? h->keys[key].name : "?";
}

/* The writes of one key: value -> op index + 1. */
static int index_writes(const struct sim_history *h, uint32_t key,
                        enum sim_op op, struct u64map *w) {
  for (size_t i = 0; i < h->nops; i++) {
    const struct sim_hop *o = &h->ops[i];
    if (o->key == key && o->op == op && map_put(w, o->value, i + 1) < 0)
      return CHORUS_ENOMEM;
  }
  return CHORUS_OK;
}

/* The kv writes of one key with its deletes (a delete's own value names
 * it, its covers are what it removed): value -> op index + 1. */
static int index_kv(const struct sim_history *h, uint32_t key,
                    struct u64map *w) {
  int rc = index_writes(h, key, SIM_OP_PUT, w);
  if (rc == CHORUS_OK)
    rc = index_writes(h, key, SIM_OP_DELETE, w);
  return rc;
}

/* reach: adds to @seen every value reachable from @from through covers
 * (including @from itself). Iterative, with an explicit stack. */
static int reach(const struct sim_history *h, const struct u64map *writes,
                 uint64_t from, struct u64map *seen) {
  size_t cap = 16, n = 0;
  uint64_t *stack = chorus_malloc(cap * sizeof *stack);
  if (stack == NULL)
    return CHORUS_ENOMEM;
  int rc = map_put(seen, from, 1);
  if (rc > 0)
    stack[n++] = from;
  while (n > 0 && rc >= 0) {
    uint64_t v = stack[--n];
    const uint64_t *ix = map_find(writes, v);
    if (ix == NULL)
      continue;
    const struct sim_hop *o = &h->ops[*ix - 1];
    for (size_t j = 0; j < o->ncovers && rc >= 0; j++) {
      rc = map_put(seen, o->covers[j], 1);
      if (rc <= 0)
        continue;
      if (n == cap) {
        uint64_t *p = chorus_realloc(stack, cap * 2 * sizeof *stack);
        if (p == NULL) {
          rc = CHORUS_ENOMEM;
          break;
        }
        stack = p;
        cap *= 2;
      }
      stack[n++] = o->covers[j];
    }
  }
  chorus_free(stack);
  return rc < 0 ? rc : CHORUS_OK;
}

/* superseded_within: 1 if some value of @vals (other than @vals[i]) is
 * reachable from another one, with the pair in *@a (superseded) and *@b. */
static int false_sibling_in(const struct sim_history *h,
                            const struct u64map *writes, const uint64_t *vals,
                            size_t n, uint64_t *a, uint64_t *b) {
  for (size_t i = 0; i < n; i++) {
    struct u64map seen = {0};
    /* Reach from vals[i]'s covers, not from vals[i] itself. */
    const uint64_t *ix = map_find(writes, vals[i]);
    int rc = CHORUS_OK;
    if (ix != NULL) {
      const struct sim_hop *o = &h->ops[*ix - 1];
      for (size_t j = 0; j < o->ncovers && rc == CHORUS_OK; j++)
        rc = reach(h, writes, o->covers[j], &seen);
    }
    if (rc != CHORUS_OK) {
      map_free(&seen);
      return rc;
    }
    for (size_t j = 0; j < n; j++) {
      if (j != i && vals[j] != vals[i] && map_has(&seen, vals[j])) {
        *a = vals[j];
        *b = vals[i];
        map_free(&seen);
        return 1;
      }
    }
    map_free(&seen);
  }
  return 0;
}

int sim_check_kv_lost(const struct sim_history *h,
                      struct sim_check_report *rep) {
  for (uint32_t k = 0; k < h->nkeys; k++) {
    if (h->keys[k].type != SIM_TYPE_KV)
      continue;
    struct u64map writes = {0}, deleted = {0};
    int rc = index_kv(h, k, &writes);
    /* What a delete that may have taken effect removed is not lost. */
    for (size_t i = 0; i < h->nops && rc == CHORUS_OK; i++) {
      const struct sim_hop *o = &h->ops[i];
      if (o->key == k && o->op == SIM_OP_DELETE && o->outcome != SIM_FAIL)
        rc = reach(h, &writes, o->value, &deleted);
    }
    int finals = 0;
    for (size_t f = 0; f < h->nfinals && rc == CHORUS_OK; f++) {
      const struct sim_hfinal *fin = &h->finals[f];
      if (fin->key != k)
        continue;
      finals++;
      struct u64map alive = {0};
      for (size_t j = 0; j < fin->nvalues && rc == CHORUS_OK; j++)
        rc = reach(h, &writes, fin->values[j], &alive);
      for (size_t i = 0; i < h->nops && rc == CHORUS_OK; i++) {
        const struct sim_hop *o = &h->ops[i];
        if (o->key == k && o->op == SIM_OP_PUT && o->outcome == SIM_OK &&
            !map_has(&alive, o->value) && !map_has(&deleted, o->value)) {
          rc = violation(rep, "kv-lost-write",
                         "key %s: acknowledged put %" PRIu64 " (op %" PRIu64
                         ", client %d) is neither in node "
                         "%d's final siblings (%zu) nor superseded by one",
                         keyname(h, k), o->value, o->id, o->client, fin->node,
                         fin->nvalues);
        }
      }
      map_free(&alive);
    }
    if (rc == CHORUS_OK && finals == 0) {
      for (size_t i = 0; i < h->nops && rc == CHORUS_OK; i++) {
        const struct sim_hop *o = &h->ops[i];
        if (o->key == k && o->op == SIM_OP_PUT && o->outcome == SIM_OK &&
            !map_has(&deleted, o->value))
          rc = violation(rep, "kv-lost-write",
                         "key %s: acknowledged put %" PRIu64
                         " but no replica reports the key",
                         keyname(h, k), o->value);
      }
    }
    map_free(&writes);
    map_free(&deleted);
    if (rc != CHORUS_OK)
      return rc;
  }
  return 0;
}

/* phantom_in: checks @vals read from key @k (completed at @until, or any
 * time when @until is UINT64_MAX) against the key's writes. */
static int phantom_in(const struct sim_history *h, const struct u64map *writes,
                      uint32_t k, const uint64_t *vals, size_t n,
                      uint64_t until, const char *where, int where_n,
                      struct sim_check_report *rep) {
  for (size_t j = 0; j < n; j++) {
    const uint64_t *ix = map_find(writes, vals[j]);
    if (ix == NULL)
      return violation(rep, "phantom",
                       "key %s: %s %d returned %" PRIu64
                       ", which no write on this key wrote",
                       keyname(h, k), where, where_n, vals[j]);
    if (h->ops[*ix - 1].invoke > until)
      return violation(rep, "phantom",
                       "key %s: %s %d returned %" PRIu64
                       " before its write was invoked",
                       keyname(h, k), where, where_n, vals[j]);
  }
  return 0;
}

int sim_check_phantom(const struct sim_history *h,
                      struct sim_check_report *rep) {
  for (uint32_t k = 0; k < h->nkeys; k++) {
    enum sim_op_type t = h->keys[k].type;
    if (t == SIM_TYPE_COUNTER || t == SIM_TYPE_CAS)
      continue;
    struct u64map writes = {0};
    int rc = index_writes(h, k,
                          t == SIM_TYPE_KV    ? SIM_OP_PUT
                          : t == SIM_TYPE_LWW ? SIM_OP_LWW_SET
                                              : SIM_OP_SET_ADD,
                          &writes);
    for (size_t i = 0; i < h->nops && rc == CHORUS_OK; i++) {
      const struct sim_hop *o = &h->ops[i];
      if (o->key == k && o->outcome == SIM_OK &&
          (o->op == SIM_OP_GET || o->op == SIM_OP_SET_READ ||
           o->op == SIM_OP_LWW_READ))
        rc = phantom_in(h, &writes, k, o->read, o->nread, o->complete,
                        "read by client", o->client, rep);
    }
    for (size_t f = 0; f < h->nfinals && rc == CHORUS_OK; f++)
      if (h->finals[f].key == k)
        rc = phantom_in(h, &writes, k, h->finals[f].values,
                        h->finals[f].nvalues, UINT64_MAX, "final state of node",
                        h->finals[f].node, rep);
    map_free(&writes);
    if (rc != CHORUS_OK)
      return rc;
  }
  return 0;
}

int sim_check_false_siblings(const struct sim_history *h,
                             struct sim_check_report *rep) {
  for (uint32_t k = 0; k < h->nkeys; k++) {
    if (h->keys[k].type != SIM_TYPE_KV)
      continue;
    struct u64map writes = {0};
    int rc = index_writes(h, k, SIM_OP_PUT, &writes);
    uint64_t a = 0, b = 0;
    for (size_t i = 0; i < h->nops && rc == CHORUS_OK; i++) {
      const struct sim_hop *o = &h->ops[i];
      if (o->key != k || o->op != SIM_OP_GET || o->outcome != SIM_OK)
        continue;
      rc = false_sibling_in(h, &writes, o->read, o->nread, &a, &b);
      if (rc == 1)
        rc = violation(rep, "false-sibling",
                       "key %s: read by client %d returned %" PRIu64
                       " next to %" PRIu64 ", which supersedes it",
                       keyname(h, k), o->client, a, b);
    }
    for (size_t f = 0; f < h->nfinals && rc == CHORUS_OK; f++) {
      const struct sim_hfinal *fin = &h->finals[f];
      if (fin->key != k)
        continue;
      rc = false_sibling_in(h, &writes, fin->values, fin->nvalues, &a, &b);
      if (rc == 1)
        rc = violation(rep, "false-sibling",
                       "key %s: node %d's final siblings hold %" PRIu64
                       " next to %" PRIu64 ", which supersedes it",
                       keyname(h, k), fin->node, a, b);
    }
    map_free(&writes);
    if (rc != CHORUS_OK)
      return rc;
  }
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* same_values: equal as sorted multisets. */
static int same_values(const struct sim_hfinal *a, const struct sim_hfinal *b,
                       int *equal) {
  *equal = 0;
  if (a->nvalues != b->nvalues)
    return CHORUS_OK;
  if (a->nvalues == 0) {
    *equal = 1;
    return CHORUS_OK;
  }
  uint64_t *x = chorus_memdup(a->values, a->nvalues * sizeof *x);
  uint64_t *y = chorus_memdup(b->values, b->nvalues * sizeof *y);
  if (x == NULL || y == NULL) {
    chorus_free(x);
    chorus_free(y);
    return CHORUS_ENOMEM;
  }
  qsort(x, a->nvalues, sizeof *x, cmp_u64);
  qsort(y, b->nvalues, sizeof *y, cmp_u64);
  *equal = memcmp(x, y, a->nvalues * sizeof *x) == 0;
  chorus_free(x);
  chorus_free(y);
  return CHORUS_OK;
}

int sim_check_convergence(const struct sim_history *h,
                          struct sim_check_report *rep) {
  for (uint32_t k = 0; k < h->nkeys; k++) {
    const struct sim_hfinal *first = NULL;
    for (size_t f = 0; f < h->nfinals; f++) {
      const struct sim_hfinal *fin = &h->finals[f];
      if (fin->key != k)
        continue;
      if (first == NULL) {
        first = fin;
        continue;
      }
      int equal;
      if (same_values(first, fin, &equal) != CHORUS_OK)
        return CHORUS_ENOMEM;
      if (!equal || first->digest != fin->digest ||
          first->counter != fin->counter)
        return violation(
            rep, "convergence",
            "key %s: node %d (%zu values, counter %" PRId64
            ", digest %016" PRIx64 ") and node %d (%zu values, "
            "counter %" PRId64 ", digest %016" PRIx64 ") differ after heal",
            keyname(h, k), first->node, first->nvalues, first->counter,
            first->digest, fin->node, fin->nvalues, fin->counter, fin->digest);
    }
  }
  return 0;
}

/* counter_bounds: shared by the strict and the weak checker. */
static int counter_bounds(const struct sim_history *h, int strict,
                          struct sim_check_report *rep) {
  for (size_t r = 0; r < h->nops; r++) {
    const struct sim_hop *rd = &h->ops[r];
    if (rd->op != SIM_OP_COUNTER_READ || rd->outcome != SIM_OK)
      continue;
    int64_t lo = 0, hi = 0;
    for (size_t i = 0; i < h->nops; i++) {
      const struct sim_hop *o = &h->ops[i];
      if (o->key != rd->key || o->op != SIM_OP_COUNTER_ADD ||
          o->outcome == SIM_FAIL || o->invoke > rd->complete)
        continue;
      if (strict && o->outcome == SIM_OK && o->complete < rd->invoke) {
        lo += o->amount; /* certainly applied before the read began */
        hi += o->amount;
      } else if (o->amount < 0) {
        lo += o->amount; /* may or may not be visible to the read */
      } else {
        hi += o->amount;
      }
    }
    if (rd->counter < lo || rd->counter > hi)
      return violation(rep, strict ? "counter-bounds" : "counter-weak",
                       "key %s: read by client %d returned %" PRId64
                       ", outside [%" PRId64 ", %" PRId64 "]",
                       keyname(h, rd->key), rd->client, rd->counter, lo, hi);
  }
  return 0;
}

int sim_check_counter_bounds(const struct sim_history *h,
                             struct sim_check_report *rep) {
  return counter_bounds(h, 1, rep);
}

int sim_check_counter_weak(const struct sim_history *h,
                           struct sim_check_report *rep) {
  return counter_bounds(h, 0, rep);
}

int sim_check_counter_final(const struct sim_history *h,
                            struct sim_check_report *rep) {
  for (size_t f = 0; f < h->nfinals; f++) {
    const struct sim_hfinal *fin = &h->finals[f];
    if (fin->key >= h->nkeys || h->keys[fin->key].type != SIM_TYPE_COUNTER)
      continue;
    struct u64map adds = {0};
    int64_t lo = 0, hi = 0;
    int rc = CHORUS_OK;
    for (size_t i = 0; i < h->nops && rc >= 0; i++) {
      const struct sim_hop *o = &h->ops[i];
      if (o->key != fin->key || o->op != SIM_OP_COUNTER_ADD ||
          o->outcome == SIM_FAIL)
        continue;
      rc = map_put(&adds, o->id, i + 1);
      if (o->outcome == SIM_OK) {
        lo += o->amount;
        hi += o->amount;
      } else if (o->amount < 0) {
        lo += o->amount;
      } else {
        hi += o->amount;
      }
    }
    if (rc < 0) {
      map_free(&adds);
      return rc;
    }
    rc = 0;
    if (fin->has_op_ids) {
      /* Exact: the applied ids name real increments, include every OK one,
       * and sum to the value. */
      int64_t sum = 0;
      struct u64map applied = {0};
      for (size_t j = 0; j < fin->nop_ids && rc == 0; j++) {
        const uint64_t *ix = map_find(&adds, fin->op_ids[j]);
        if (ix == NULL)
          rc = violation(rep, "counter-final",
                         "key %s: node %d applied op %" PRIu64
                         ", which is no (unfailed) increment of this key",
                         keyname(h, fin->key), fin->node, fin->op_ids[j]);
        else if (map_put(&applied, fin->op_ids[j], 1) == 1)
          sum += h->ops[*ix - 1].amount;
        else if (map_has(&applied, fin->op_ids[j]))
          rc = violation(rep, "counter-final",
                         "key %s: node %d applied op %" PRIu64 " twice",
                         keyname(h, fin->key), fin->node, fin->op_ids[j]);
        else
          rc = CHORUS_ENOMEM;
      }
      for (size_t i = 0; i < h->nops && rc == 0; i++) {
        const struct sim_hop *o = &h->ops[i];
        if (o->key == fin->key && o->op == SIM_OP_COUNTER_ADD &&
            o->outcome == SIM_OK && !map_has(&applied, o->id))
          rc = violation(
              rep, "counter-final",
              "key %s: node %d lost acknowledged increment op %" PRIu64
              " (%+" PRId64 ")",
              keyname(h, fin->key), fin->node, o->id, o->amount);
      }
      if (rc == 0 && sum != fin->counter)
        rc = violation(rep, "counter-final",
                       "key %s: node %d holds %" PRId64
                       " but its applied increments sum to %" PRId64,
                       keyname(h, fin->key), fin->node, fin->counter, sum);
      map_free(&applied);
    } else if (fin->counter < lo || fin->counter > hi) {
      rc = violation(rep, "counter-final",
                     "key %s: node %d holds %" PRId64
                     " after heal, outside [%" PRId64 ", %" PRId64 "]",
                     keyname(h, fin->key), fin->node, fin->counter, lo, hi);
    }
    map_free(&adds);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* set_removed: the elements of set @k that a remove which may have taken
 * effect (not FAIL), invoked before @until (0: any time), named, into
 * @out. */
static int set_removed(const struct sim_history *h, uint32_t k, uint64_t until,
                       struct u64map *out) {
  for (size_t i = 0; i < h->nops; i++) {
    const struct sim_hop *d = &h->ops[i];
    if (d->key == k && d->op == SIM_OP_SET_REMOVE && d->outcome != SIM_FAIL &&
        (until == 0 || d->invoke <= until) && map_put(out, d->value, 1) < 0)
      return CHORUS_ENOMEM;
  }
  return CHORUS_OK;
}

int sim_check_set_lost(const struct sim_history *h,
                       struct sim_check_report *rep) {
  for (uint32_t k = 0; k < h->nkeys; k++) {
    if (h->keys[k].type != SIM_TYPE_SET)
      continue;
    /* What a remove that may have taken effect named is not lost. */
    struct u64map removed = {0};
    if (set_removed(h, k, 0, &removed) != CHORUS_OK)
      return CHORUS_ENOMEM;
    int finals = 0, rc = 0;
    for (size_t f = 0; f < h->nfinals && rc == 0; f++) {
      const struct sim_hfinal *fin = &h->finals[f];
      if (fin->key != k)
        continue;
      finals++;
      struct u64map has = {0};
      for (size_t j = 0; j < fin->nvalues && rc == 0; j++)
        if (map_put(&has, fin->values[j], 1) < 0)
          rc = CHORUS_ENOMEM;
      for (size_t i = 0; i < h->nops && rc == 0; i++) {
        const struct sim_hop *o = &h->ops[i];
        if (o->key == k && o->op == SIM_OP_SET_ADD && o->outcome == SIM_OK &&
            !map_has(&has, o->value) && !map_has(&removed, o->value))
          rc = violation(rep, "set-lost-add",
                         "key %s: acknowledged add of %" PRIu64
                         " (client %d) missing from node %d's final set",
                         keyname(h, k), o->value, o->client, fin->node);
      }
      map_free(&has);
    }
    for (size_t i = 0; i < h->nops && finals == 0 && rc == 0; i++) {
      const struct sim_hop *o = &h->ops[i];
      if (o->key == k && o->op == SIM_OP_SET_ADD && o->outcome == SIM_OK &&
          !map_has(&removed, o->value))
        rc = violation(rep, "set-lost-add",
                       "key %s: acknowledged add of %" PRIu64
                       " but no replica reports the key",
                       keyname(h, k), o->value);
    }
    map_free(&removed);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int sim_check_set_removed(const struct sim_history *h,
                          struct sim_check_report *rep) {
  for (uint32_t k = 0; k < h->nkeys; k++) {
    if (h->keys[k].type != SIM_TYPE_SET)
      continue;
    for (size_t i = 0; i < h->nops; i++) {
      const struct sim_hop *d = &h->ops[i];
      if (d->key != k || d->op != SIM_OP_SET_REMOVE || d->outcome != SIM_OK ||
          d->ncovers == 0)
        continue;
      for (size_t f = 0; f < h->nfinals; f++) {
        const struct sim_hfinal *fin = &h->finals[f];
        for (size_t j = 0; fin->key == k && j < fin->nvalues; j++)
          if (fin->values[j] == d->value)
            return violation(rep, "set-removed",
                             "key %s: node %d's final set holds %" PRIu64
                             ", which acknowledged remove op %" PRIu64
                             " (client %d) took out with a context that "
                             "saw it",
                             keyname(h, k), fin->node, d->value, d->id,
                             d->client);
      }
    }
  }
  return 0;
}

/* stamp_cmp: the order of LWW stamps (HLC time, then node id). */
static int stamp_cmp(const uint64_t a[2], const uint64_t b[2]) {
  if (a[0] != b[0])
    return a[0] < b[0] ? -1 : 1;
  return a[1] < b[1] ? -1 : a[1] > b[1];
}

/* lww_value_stamp: @v (read with @stamp) against its write's stamp, when
 * that write was acknowledged (an unknown one was never told its
 * stamp). */
static int lww_value_stamp(const struct sim_history *h,
                           const struct u64map *writes, uint32_t k, uint64_t v,
                           const uint64_t stamp[2], const char *where,
                           int where_n, struct sim_check_report *rep) {
  const uint64_t *ix = map_find(writes, v);
  if (ix == NULL)
    return 0; /* the phantom checker's */
  const struct sim_hop *w = &h->ops[*ix - 1];
  if (w->outcome != SIM_OK || (w->stamp[0] == 0 && w->stamp[1] == 0))
    return 0;
  if (stamp_cmp(w->stamp, stamp) != 0)
    return violation(rep, "lww-stamp",
                     "key %s: %s %d holds %" PRIu64 " stamped %" PRIu64
                     "/%016" PRIx64 ", but its write (client %d) was told "
                     "%" PRIu64 "/%016" PRIx64,
                     keyname(h, k), where, where_n, v, stamp[0], stamp[1],
                     w->client, w->stamp[0], w->stamp[1]);
  return 0;
}

int sim_check_lww(const struct sim_history *h, struct sim_check_report *rep) {
  for (uint32_t k = 0; k < h->nkeys; k++) {
    if (h->keys[k].type != SIM_TYPE_LWW)
      continue;
    struct u64map writes = {0}, stamps = {0};
    int rc = index_writes(h, k, SIM_OP_LWW_SET, &writes);
    /* Acknowledged writes: each its own stamp. */
    for (size_t i = 0; i < h->nops && rc == CHORUS_OK; i++) {
      const struct sim_hop *o = &h->ops[i];
      if (o->key != k || o->op != SIM_OP_LWW_SET || o->outcome != SIM_OK)
        continue;
      if (o->stamp[0] == 0) {
        rc = violation(rep, "lww-stamp",
                       "key %s: acknowledged write %" PRIu64
                       " (client %d) was told no stamp",
                       keyname(h, k), o->value, o->client);
        break;
      }
      uint64_t sk = o->stamp[0] ^ (o->stamp[1] * 0x9e3779b97f4a7c15ull);
      const uint64_t *other = map_find(&stamps, sk);
      if (other != NULL && stamp_cmp(h->ops[*other - 1].stamp, o->stamp) == 0) {
        rc = violation(rep, "lww-stamp",
                       "key %s: writes %" PRIu64 " and %" PRIu64
                       " were both told stamp %" PRIu64 "/%016" PRIx64,
                       keyname(h, k), h->ops[*other - 1].value, o->value,
                       o->stamp[0], o->stamp[1]);
        break;
      }
      if (map_put(&stamps, sk, i + 1) < 0)
        rc = CHORUS_ENOMEM;
    }
    for (size_t i = 0; i < h->nops && rc == CHORUS_OK; i++) {
      const struct sim_hop *o = &h->ops[i];
      if (o->key == k && o->op == SIM_OP_LWW_READ && o->outcome == SIM_OK &&
          o->nread == 1)
        rc = lww_value_stamp(h, &writes, k, o->read[0], o->stamp,
                             "read by client", o->client, rep);
    }
    for (size_t f = 0; f < h->nfinals && rc == CHORUS_OK; f++) {
      const struct sim_hfinal *fin = &h->finals[f];
      if (fin->key != k)
        continue;
      if (fin->nvalues > 1) {
        rc = violation(rep, "lww-stamp",
                       "key %s: node %d's register holds %zu values",
                       keyname(h, k), fin->node, fin->nvalues);
        break;
      }
      if (fin->nvalues == 1)
        rc = lww_value_stamp(h, &writes, k, fin->values[0], fin->stamp,
                             "final state of node", fin->node, rep);
      /* No acknowledged write may be above the final stamp. (A value a
       * read saw may be: a write that reached one replica, unacknowledged,
       * dies with that replica's unsynced writes or wiped disk.) */
      for (size_t i = 0; i < h->nops && rc == CHORUS_OK; i++) {
        const struct sim_hop *o = &h->ops[i];
        if (o->key != k || o->outcome != SIM_OK || o->op != SIM_OP_LWW_SET ||
            stamp_cmp(o->stamp, fin->stamp) <= 0)
          continue;
        rc =
            violation(rep, "lww-lost",
                      "key %s: acknowledged write %" PRIu64
                      " (client %d) stamped %" PRIu64 "/%016" PRIx64
                      " is above node %d's final stamp %" PRIu64 "/%016" PRIx64,
                      keyname(h, k), o->value, o->client, o->stamp[0],
                      o->stamp[1], fin->node, fin->stamp[0], fin->stamp[1]);
      }
    }
    map_free(&writes);
    map_free(&stamps);
    if (rc != CHORUS_OK)
      return rc;
  }
  return 0;
}

int sim_check_lww_fresh(const struct sim_history *h,
                        struct sim_check_report *rep) {
  for (size_t r = 0; r < h->nops; r++) {
    const struct sim_hop *rd = &h->ops[r];
    if (rd->op != SIM_OP_LWW_READ || rd->outcome != SIM_OK)
      continue;
    for (size_t i = 0; i < h->nops; i++) {
      const struct sim_hop *w = &h->ops[i];
      if (w->key == rd->key && w->op == SIM_OP_LWW_SET &&
          w->outcome == SIM_OK && w->complete <= rd->invoke &&
          stamp_cmp(rd->stamp, w->stamp) < 0)
        return violation(
            rep, "lww-fresh",
            "key %s: client %d read a stamp %" PRIu64 "/%016" PRIx64
            " below write %" PRIu64 " (client %d, ok, stamped %" PRIu64
            "/%016" PRIx64 ") completed before it began",
            keyname(h, rd->key), rd->client, rd->stamp[0], rd->stamp[1],
            w->value, w->client, w->stamp[0], w->stamp[1]);
    }
  }
  return 0;
}

int sim_check_ryw(const struct sim_history *h, struct sim_check_report *rep) {
  for (size_t r = 0; r < h->nops; r++) {
    const struct sim_hop *rd = &h->ops[r];
    if ((rd->op != SIM_OP_GET && rd->op != SIM_OP_SET_READ) ||
        rd->outcome != SIM_OK)
      continue;
    enum sim_op wop = rd->op == SIM_OP_GET ? SIM_OP_PUT : SIM_OP_SET_ADD;
    struct u64map writes = {0}, alive = {0};
    int rc = CHORUS_OK;
    if (wop == SIM_OP_PUT)
      rc = index_kv(h, rd->key, &writes);
    for (size_t j = 0; j < rd->nread && rc == CHORUS_OK; j++)
      rc = wop == SIM_OP_PUT
               ? reach(h, &writes, rd->read[j], &alive)
               : (map_put(&alive, rd->read[j], 1) < 0 ? CHORUS_ENOMEM
                                                      : CHORUS_OK);
    /* A set remove (by any client) that may have taken effect before the
     * read completed excuses the element it named. */
    if (wop == SIM_OP_SET_ADD && rc == CHORUS_OK)
      rc = set_removed(h, rd->key, rd->complete, &alive);
    /* A delete (by any client) that may have taken effect before the read
     * completed excuses what it covered. */
    for (size_t i = 0; i < h->nops && wop == SIM_OP_PUT && rc == CHORUS_OK;
         i++) {
      const struct sim_hop *d = &h->ops[i];
      if (d->key == rd->key && d->op == SIM_OP_DELETE &&
          d->outcome != SIM_FAIL && d->invoke <= rd->complete)
        rc = reach(h, &writes, d->value, &alive);
    }
    for (size_t i = 0; i < r && rc == CHORUS_OK; i++) {
      const struct sim_hop *o = &h->ops[i];
      if (o->key == rd->key && o->op == wop && o->client == rd->client &&
          o->outcome == SIM_OK && o->complete <= rd->invoke &&
          !map_has(&alive, o->value))
        rc = violation(rep, "read-your-writes",
                       "key %s: client %d wrote %" PRIu64
                       " (ok) and then read %zu values without it",
                       keyname(h, rd->key), rd->client, o->value, rd->nread);
    }
    map_free(&writes);
    map_free(&alive);
    if (rc != CHORUS_OK)
      return rc;
  }
  return 0;
}

/* deleted_by: every value OK delete @d covered, transitively, into
 * @dead (cleared first). */
static int deleted_by(const struct sim_history *h, const struct u64map *writes,
                      const struct sim_hop *d, struct u64map *dead) {
  map_free(dead);
  int rc = CHORUS_OK;
  for (size_t j = 0; j < d->ncovers && rc == CHORUS_OK; j++)
    rc = reach(h, writes, d->covers[j], dead);
  return rc;
}

int sim_check_zombie(const struct sim_history *h,
                     struct sim_check_report *rep) {
  for (uint32_t k = 0; k < h->nkeys; k++) {
    if (h->keys[k].type != SIM_TYPE_KV)
      continue;
    struct u64map writes = {0}, dead = {0};
    int rc = index_kv(h, k, &writes);
    for (size_t i = 0; i < h->nops && rc == CHORUS_OK; i++) {
      const struct sim_hop *d = &h->ops[i];
      if (d->key != k || d->op != SIM_OP_DELETE || d->outcome != SIM_OK ||
          d->ncovers == 0)
        continue;
      rc = deleted_by(h, &writes, d, &dead);
      for (size_t f = 0; f < h->nfinals && rc == CHORUS_OK; f++) {
        const struct sim_hfinal *fin = &h->finals[f];
        for (size_t j = 0; fin->key == k && j < fin->nvalues && rc == 0; j++)
          if (map_has(&dead, fin->values[j]))
            rc = violation(rep, "zombie",
                           "key %s: node %d's final state holds %" PRIu64
                           ", which acknowledged delete op %" PRIu64
                           " (client %d) covered",
                           keyname(h, k), fin->node, fin->values[j], d->id,
                           d->client);
      }
    }
    map_free(&writes);
    map_free(&dead);
    if (rc != CHORUS_OK)
      return rc;
  }
  return 0;
}

int sim_check_read_after_delete(const struct sim_history *h,
                                struct sim_check_report *rep) {
  for (uint32_t k = 0; k < h->nkeys; k++) {
    if (h->keys[k].type != SIM_TYPE_KV)
      continue;
    struct u64map writes = {0}, dead = {0};
    int rc = index_kv(h, k, &writes);
    for (size_t i = 0; i < h->nops && rc == CHORUS_OK; i++) {
      const struct sim_hop *d = &h->ops[i];
      if (d->key != k || d->op != SIM_OP_DELETE || d->outcome != SIM_OK ||
          d->ncovers == 0)
        continue;
      rc = deleted_by(h, &writes, d, &dead);
      for (size_t r = 0; r < h->nops && rc == CHORUS_OK; r++) {
        const struct sim_hop *rd = &h->ops[r];
        if (rd->key != k || rd->op != SIM_OP_GET || rd->outcome != SIM_OK ||
            rd->invoke < d->complete)
          continue;
        for (size_t j = 0; j < rd->nread && rc == CHORUS_OK; j++)
          if (map_has(&dead, rd->read[j]))
            rc = violation(
                rep, "read-after-delete",
                "key %s: client %d read %" PRIu64 " after delete op %" PRIu64
                " (client %d, ok) that covered it",
                keyname(h, k), rd->client, rd->read[j], d->id, d->client);
      }
    }
    map_free(&writes);
    map_free(&dead);
    if (rc != CHORUS_OK)
      return rc;
  }
  return 0;
}

int sim_check_all(const struct sim_history *h, int strict,
                  struct sim_check_report *rep) {
  static const struct {
    int (*fn)(const struct sim_history *, struct sim_check_report *);
    int strict_only;
  } checks[] = {
      {sim_check_convergence, 0},
      {sim_check_zombie, 0},
      {sim_check_phantom, 0},
      {sim_check_kv_lost, 0},
      {sim_check_false_siblings, 0},
      {sim_check_counter_weak, 0},
      {sim_check_counter_bounds, 1},
      {sim_check_counter_final, 0},
      {sim_check_set_lost, 0},
      {sim_check_ryw, 1},
      {sim_check_read_after_delete, 1},
      {sim_check_set_removed, 0},
      {sim_check_lww, 0},
      {sim_check_lww_fresh, 1},
  };
  size_t n = sizeof checks / sizeof checks[0];
  for (size_t i = 0; i < n; i++) {
    if (checks[i].strict_only && !strict)
      continue;
    int rc = checks[i].fn(h, rep);
    if (rc != 0)
      return rc;
  }
  return 0;
}
