/* chorus_alloc.c: malloc wrappers with an injectable failure point. */
#include "chorus_alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Remaining successful allocations; negative means "never fail". */
static atomic_long alloc_budget = -1;
static atomic_long alloc_attempts = 0;

static int alloc_should_fail(void) {
  atomic_fetch_add_explicit(&alloc_attempts, 1, memory_order_relaxed);
  long budget = atomic_load_explicit(&alloc_budget, memory_order_relaxed);
  while (budget >= 0) {
    if (budget == 0)
      return 1;
    if (atomic_compare_exchange_weak(&alloc_budget, &budget, budget - 1))
      return 0;
  }
  return 0;
}

void chorus_alloc_fail_after(long k) {
  atomic_store(&alloc_budget, k < 0 ? -1 : k);
  atomic_store(&alloc_attempts, 0);
}

long chorus_alloc_count(void) {
  return atomic_load(&alloc_attempts);
}

void *chorus_malloc(size_t size) {
  if (alloc_should_fail())
    return NULL;
  return malloc(size == 0 ? 1 : size);
}

void *chorus_calloc(size_t n, size_t size) {
  if (size != 0 && n > SIZE_MAX / size)
    return NULL;
  if (alloc_should_fail())
    return NULL;
  return calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
}

void *chorus_realloc(void *ptr, size_t size) {
  if (alloc_should_fail())
    return NULL;
  return realloc(ptr, size == 0 ? 1 : size);
}

void chorus_free(void *ptr) {
  free(ptr);
}

void *chorus_memdup(const void *src, size_t len) {
  void *p = chorus_malloc(len);
  if (p != NULL && len > 0)
    memcpy(p, src, len);
  return p;
}

char *chorus_strdup(const char *s) {
  return chorus_memdup(s, strlen(s) + 1);
}

void *chorus_grow(void *p, size_t *cap, size_t n, size_t size, size_t first) {
  if (n < *cap)
    return p;
  size_t c = *cap == 0 ? (first ? first : 1) : *cap;
  if (*cap != 0) {
    if (c > SIZE_MAX / 2)
      return NULL;
    c *= 2;
  }
  if (size == 0 || c > SIZE_MAX / size)
    return NULL;
  void *g = chorus_realloc(p, c * size);
  if (g != NULL)
    *cap = c;
  return g;
}
