/* meta_check.c: see meta_check.h. */
#include "meta_check.h"

#include "chorus_alloc.h"
#include "chorus_search.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void meta_check_init(struct meta_check *mc) {
  memset(mc, 0, sizeof *mc);
}

void meta_check_free(struct meta_check *mc) {
  chorus_free(mc->terms);
  chorus_free(mc->states);
  chorus_free(mc->ops);
  chorus_free(mc->values);
  memset(mc, 0, sizeof *mc);
}

static void violation(struct meta_check *mc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violation(struct meta_check *mc, const char *fmt, ...) {
  if (mc->violations++ == 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mc->first, sizeof mc->first, fmt, ap);
    va_end(ap);
  }
}

/* slot: where @key is in *@v, @n elements of @size sorted by a 64-bit key
 * at offset 0 (the project's one search, chorus_id_lower_bound); when it
 * is not there, a zeroed element holding @key is inserted there. Returns
 * its index (*@found: it was there), or SIZE_MAX out of memory (a
 * violation). */
static size_t slot(struct meta_check *mc, void **v, size_t *n, size_t *cap,
                   size_t size, uint64_t key, int *found) {
  size_t lo = chorus_id_lower_bound(*v, *n, size, 0, key);
  uint8_t *base = *v;
  *found = lo < *n && memcmp(base + lo * size, &key, sizeof key) == 0;
  if (*found)
    return lo;
  base = chorus_grow(*v, cap, *n, size, 64);
  if (base == NULL) {
    violation(mc, "checker out of memory");
    return SIZE_MAX;
  }
  *v = base;
  memmove(base + (lo + 1) * size, base + lo * size, (*n - lo) * size);
  memset(base + lo * size, 0, size);
  memcpy(base + lo * size, &key, sizeof key);
  (*n)++;
  return lo;
}

void meta_check_role(struct meta_check *mc, int node, uint64_t term,
                     uint64_t leader, uint64_t commit) {
  mc->observations++;
  if (leader == 0)
    return;
  if (commit > mc->max_commit)
    mc->max_commit = commit;
  int found;
  size_t i = slot(mc, (void **)&mc->terms, &mc->nterms, &mc->capterms,
                  sizeof *mc->terms, term, &found);
  if (i == SIZE_MAX)
    return;
  if (!found)
    mc->terms[i].leader = leader;
  else if (mc->terms[i].leader != leader)
    violation(mc,
              "two leaders in term %" PRIu64 ": %016" PRIx64 " and %016" PRIx64
              " (seen on n%d)",
              term, mc->terms[i].leader, leader, node);
}

void meta_check_applied(struct meta_check *mc, int node, uint64_t index,
                        uint64_t hash) {
  mc->observations++;
  int found;
  size_t i = slot(mc, (void **)&mc->states, &mc->nstates, &mc->capstates,
                  sizeof *mc->states, index, &found);
  if (i == SIZE_MAX)
    return;
  if (!found)
    mc->states[i] = (struct meta_check_state){index, hash, node};
  else if (mc->states[i].hash != hash)
    violation(mc,
              "two histories: the state at index %" PRIu64
              " differs between n%d and n%d",
              index, mc->states[i].node, node);
}

void meta_check_final(struct meta_check *mc, int node, uint64_t index) {
  if (index < mc->max_commit)
    violation(mc,
              "lost: n%d has applied %" PRIu64 " after the heal, but a "
              "leader reported index %" PRIu64 " committed",
              node, index, mc->max_commit);
}

/* ------------------------------------------------------------------------
 * The register's history (meta_check.h, HOW LINEARIZABILITY IS DECIDED)
 * ------------------------------------------------------------------------ */

#define NEVER UINT64_MAX

uint64_t meta_check_invoke(struct meta_check *mc, int write, uint64_t now) {
  struct meta_check_op *ops =
      chorus_grow(mc->ops, &mc->capops, mc->nops, sizeof *ops, 64);
  if (ops == NULL) {
    violation(mc, "checker out of memory");
    return 0;
  }
  mc->ops = ops;
  uint64_t id = ++mc->nops;
  mc->ops[id - 1] = (struct meta_check_op){
      .value = write ? id : 0, .inv = now, .resp = NEVER, .write = write};
  return id;
}

void meta_check_answer(struct meta_check *mc, uint64_t id, int ok,
                       uint64_t value, uint64_t now) {
  if (id == 0 || id > mc->nops)
    return;
  struct meta_check_op *op = &mc->ops[id - 1];
  if (!ok || op->answered)
    return; /* a write may still take effect; a read says nothing */
  op->answered = 1;
  op->resp = now;
  if (!op->write)
    op->value = value;
}

void meta_check_value(struct meta_check *mc, uint64_t index, uint64_t value) {
  if (value == 0)
    return; /* the initial register: before every write */
  int found;
  size_t i = slot(mc, (void **)&mc->values, &mc->nvalues, &mc->capvalues,
                  sizeof *mc->values, value, &found);
  if (i == SIZE_MAX)
    return;
  struct meta_check_value *v = &mc->values[i];
  if (!found || index < v->first)
    v->first = index;
  if (!found || index > v->last)
    v->last = index;
}

static int by_first(const void *a, const void *b) {
  const struct meta_check_value *x = a, *y = b;
  return (x->first > y->first) - (x->first < y->first);
}

/* rank_of: the group of @value: 0 for the initial register, else its
 * write's place in log order (1..); -1 when no applied state held it. */
static long rank_of(const struct meta_check *mc, const uint64_t *rank,
                    uint64_t value) {
  if (value == 0)
    return 0;
  size_t i = chorus_id_lower_bound(mc->values, mc->nvalues,
                                   sizeof mc->values[0], 0, value);
  if (i == mc->nvalues || mc->values[i].value != value)
    return -1;
  return (long)rank[i];
}

void meta_check_linearizable(struct meta_check *mc) {
  size_t k = mc->nvalues;
  /* The order of writes: by the first index each value was seen at; two
   * values' index ranges may not interleave (a write applied twice). */
  struct meta_check_value *order = malloc((k + 1) * sizeof *order);
  uint64_t *rank = malloc((k + 1) * sizeof *rank);
  /* Per group 0..k: the latest invocation, the earliest completion, the
   * write's invocation and its reads' earliest completion. */
  uint64_t *max_inv = malloc((k + 2) * sizeof *max_inv);
  uint64_t *min_resp = malloc((k + 2) * sizeof *min_resp);
  uint64_t *w_inv = malloc((k + 1) * sizeof *w_inv);
  uint64_t *r_resp = malloc((k + 1) * sizeof *r_resp);
  if (!order || !rank || !max_inv || !min_resp || !w_inv || !r_resp) {
    violation(mc, "checker out of memory");
    goto out;
  }
  if (k > 0)
    memcpy(order, mc->values, k * sizeof *order);
  qsort(order, k, sizeof *order, by_first);
  for (size_t g = 1; g < k; g++)
    if (order[g].first <= order[g - 1].last)
      violation(mc,
                "register: value %" PRIu64 " at indexes %" PRIu64 "..%" PRIu64
                " and %" PRIu64 " at %" PRIu64 "..%" PRIu64
                ": a write applied twice",
                order[g - 1].value, order[g - 1].first, order[g - 1].last,
                order[g].value, order[g].first, order[g].last);
  for (size_t g = 0; g < k; g++) {
    size_t i = chorus_id_lower_bound(mc->values, k, sizeof mc->values[0], 0,
                                     order[g].value);
    rank[i] = g + 1;
  }
  for (size_t g = 0; g <= k + 1; g++) {
    max_inv[g] = 0;
    min_resp[g] = NEVER;
  }
  for (size_t g = 0; g <= k; g++) {
    w_inv[g] = NEVER;
    r_resp[g] = NEVER;
  }
  mc->reads_checked = mc->writes_placed = 0;
  for (size_t i = 0; i < mc->nops; i++) {
    const struct meta_check_op *op = &mc->ops[i];
    if (!op->write && !op->answered)
      continue;
    long g = rank_of(mc, rank, op->value);
    if (g < 0) {
      if (!op->write)
        violation(mc,
                  "register: a read returned %" PRIu64 ", which no applied "
                  "state held",
                  op->value);
      continue; /* a write never seen applied: left out */
    }
    if (op->write) {
      w_inv[g] = op->inv;
      mc->writes_placed++;
    } else {
      mc->reads_checked++;
      if (op->resp < r_resp[g])
        r_resp[g] = op->resp;
    }
    if (op->inv > max_inv[g])
      max_inv[g] = op->inv;
    if (op->resp < min_resp[g])
      min_resp[g] = op->resp;
  }
  /* min_resp[g] becomes the earliest completion in groups >= g. */
  for (size_t g = k + 1; g-- > 0;)
    if (min_resp[g + 1] < min_resp[g])
      min_resp[g] = min_resp[g + 1];
  for (size_t g = 0; g <= k; g++) {
    uint64_t v = g == 0 ? 0 : order[g - 1].value;
    if (g > 0 && r_resp[g] < w_inv[g])
      violation(mc,
                "register: a read of %" PRIu64 " completed at %" PRIu64
                " before that write began at %" PRIu64,
                v, r_resp[g], w_inv[g]);
    if (max_inv[g] > min_resp[g + 1])
      violation(mc,
                "register: an operation on value %" PRIu64 " began at %" PRIu64
                " after one on a later value had completed at %" PRIu64
                " (a stale read or a write out of order)",
                v, max_inv[g], min_resp[g + 1]);
  }
out:
  free(order);
  free(rank);
  free(max_inv);
  free(min_resp);
  free(w_inv);
  free(r_resp);
}
