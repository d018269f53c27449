/* meta_check.c: see meta_check.h. */
#include "meta_check.h"

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
  free(mc->terms);
  free(mc->states);
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

/* grow: room for one more element of @size in *@v (@n used, *@cap). */
static int grow(void **v, size_t n, size_t *cap, size_t size) {
  if (n < *cap)
    return 0;
  size_t c = *cap ? 2 * *cap : 64;
  void *g = realloc(*v, c * size);
  if (g == NULL)
    return -1;
  *v = g;
  *cap = c;
  return 0;
}

void meta_check_role(struct meta_check *mc, int node, uint64_t term,
                     uint64_t leader, uint64_t commit) {
  mc->observations++;
  if (leader == 0)
    return;
  if (commit > mc->max_commit)
    mc->max_commit = commit;
  /* Sorted by a 64-bit key at offset 0: the project's one search. */
  size_t lo = chorus_id_lower_bound(mc->terms, mc->nterms, sizeof mc->terms[0], 0, term);
  if (lo < mc->nterms && mc->terms[lo].term == term) {
    if (mc->terms[lo].leader != leader)
      violation(mc,
                "two leaders in term %" PRIu64 ": %016" PRIx64
                " and %016" PRIx64 " (seen on n%d)",
                term, mc->terms[lo].leader, leader, node);
    return;
  }
  if (grow((void **)&mc->terms, mc->nterms, &mc->capterms,
           sizeof *mc->terms) != 0) {
    violation(mc, "checker out of memory");
    return;
  }
  memmove(&mc->terms[lo + 1], &mc->terms[lo],
          (mc->nterms - lo) * sizeof *mc->terms);
  mc->terms[lo] = (struct meta_check_term){term, leader};
  mc->nterms++;
}

void meta_check_applied(struct meta_check *mc, int node, uint64_t index,
                        uint64_t hash) {
  mc->observations++;
  /* Sorted by a 64-bit key at offset 0: the project's one search. */
  size_t lo = chorus_id_lower_bound(mc->states, mc->nstates, sizeof mc->states[0], 0, index);
  if (lo < mc->nstates && mc->states[lo].index == index) {
    if (mc->states[lo].hash != hash)
      violation(mc,
                "two histories: the state at index %" PRIu64
                " differs between n%d and n%d",
                index, mc->states[lo].node, node);
    return;
  }
  if (grow((void **)&mc->states, mc->nstates, &mc->capstates,
           sizeof *mc->states) != 0) {
    violation(mc, "checker out of memory");
    return;
  }
  memmove(&mc->states[lo + 1], &mc->states[lo],
          (mc->nstates - lo) * sizeof *mc->states);
  mc->states[lo] = (struct meta_check_state){index, hash, node};
  mc->nstates++;
}

void meta_check_final(struct meta_check *mc, int node, uint64_t index) {
  if (index < mc->max_commit)
    violation(mc,
              "lost: n%d has applied %" PRIu64 " after the heal, but a "
              "leader reported index %" PRIu64 " committed",
              node, index, mc->max_commit);
}
