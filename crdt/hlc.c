/* hlc.c: hybrid logical clocks (Kulkarni et al. 2014, §3 Fig. 5) with
 * bounded drift. */
#include <assert.h>

#include "crdt_int.h"

void hlc_init(struct hlc *h, chorus_ms max_drift) {
  h->last = 0;
  h->max_drift = max_drift;
  h->tracer = NULL;
}

/* Packs (l, c), carrying a counter overflow into l (see crdt.h). */
static int hlc_pack(chorus_ms l, uint64_t c, hlc_time *out) {
  if (c > 0xffffu) {
    l++;
    c = 0;
  }
  if (l > HLC_PHYSICAL_MAX)
    return CHORUS_ERANGE;
  *out = hlc_make(l, (uint32_t)c);
  return CHORUS_OK;
}

/* hlc_advance: makes (l, c) the clock's last time and reports it; fails
 * without changing the clock when (l, c) does not fit the encoding. */
static int hlc_advance(struct hlc *h, chorus_ms l, uint64_t c, hlc_time *out) {
  hlc_time t;
  if (hlc_pack(l, c, &t) != CHORUS_OK)
    return CHORUS_ERANGE;
  /* Both events take l >= the last l and advance c when l stays, with the
   * carry into l: time never goes backwards nor repeats. */
  assert(t > h->last);
  h->last = t;
  if (out)
    *out = t;
  return CHORUS_OK;
}

int hlc_now(struct hlc *h, chorus_ms wall, hlc_time *out) {
  if (wall > HLC_PHYSICAL_MAX)
    return CHORUS_ERANGE;
  chorus_ms l0 = hlc_physical(h->last);
  uint64_t c0 = hlc_logical(h->last);
  /* Send or local event: l := max(l, pt); c advances only if l did not. */
  chorus_ms l = l0 > wall ? l0 : wall;
  uint64_t c = l == l0 ? c0 + 1 : 0;
  return hlc_advance(h, l, c, out);
}

int hlc_recv(struct hlc *h, chorus_ms wall, hlc_time remote, hlc_time *out) {
  if (wall > HLC_PHYSICAL_MAX)
    return CHORUS_ERANGE;
  chorus_ms rl = hlc_physical(remote);
  uint64_t rc = hlc_logical(remote);
  if (rl > wall && rl - wall > h->max_drift) {
    chorus_trace(h->tracer, "hlc",
                 "remote time %llu ms is %llu ms ahead of local %llu ms "
                 "(bound %llu): rejected",
                 (unsigned long long)rl, (unsigned long long)(rl - wall),
                 (unsigned long long)wall, (unsigned long long)h->max_drift);
    return CHORUS_ERANGE;
  }
  chorus_ms l0 = hlc_physical(h->last);
  uint64_t c0 = hlc_logical(h->last);
  /* Receive event: l := max(l, l_m, pt); c follows whichever l it came
   * from, or restarts at 0 when the physical clock moved past both. */
  chorus_ms l = l0 > rl ? l0 : rl;
  if (wall > l)
    l = wall;
  uint64_t c;
  if (l == l0 && l == rl)
    c = (c0 > rc ? c0 : rc) + 1;
  else if (l == l0)
    c = c0 + 1;
  else if (l == rl)
    c = rc + 1;
  else
    c = 0;
  int err = hlc_advance(h, l, c, out);
  /* Whatever @remote held, an accepted receive orders after it. */
  assert(err != CHORUS_OK || h->last > remote);
  return err;
}
