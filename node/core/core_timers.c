/* core_timers.c: replication's one-shot timers as a min-heap by deadline
 * (core_int.h). */
#include <assert.h>

#include "chorus_alloc.h"
#include "core_int.h"

static void swap(struct core__timer *a, struct core__timer *b) {
  struct core__timer t = *a;
  *a = *b;
  *b = t;
}

int core__timers_push(struct core__timers *t, chorus_ms at, uint64_t id) {
  struct core__timer *h = chorus_grow(t->h, &t->cap, t->n, sizeof *h, 64);
  if (h == NULL)
    return CHORUS_ENOMEM;
  t->h = h;
  size_t i = t->n++;
  t->h[i] = (struct core__timer){at, id};
  while (i > 0 && t->h[(i - 1) / 2].at > t->h[i].at) {
    swap(&t->h[(i - 1) / 2], &t->h[i]);
    i = (i - 1) / 2;
  }
  return CHORUS_OK;
}

bool core__timers_pop_due(struct core__timers *t, chorus_ms now,
                          struct core__timer *out) {
  if (t->n == 0 || t->h[0].at > now)
    return false;
  *out = t->h[0];
  t->h[0] = t->h[--t->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < t->n && t->h[l].at < t->h[m].at)
      m = l;
    if (r < t->n && t->h[r].at < t->h[m].at)
      m = r;
    if (m == i)
      break;
    swap(&t->h[i], &t->h[m]);
    i = m;
  }
  assert(t->n == 0 || t->h[0].at >= out->at);
  return true;
}

chorus_ms core__timers_next(const struct core__timers *t) {
  return t->n ? t->h[0].at : CORE_NEVER;
}

void core__timers_free(struct core__timers *t) {
  chorus_free(t->h);
  *t = (struct core__timers){0};
}
