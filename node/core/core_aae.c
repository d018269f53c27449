/* core_aae.c: anti-entropy's pace (replication/repl.h, ANTI-ENTROPY): the
 * tree's rebuild a step at a time, an exchange every aae_interval_ms with
 * the next peer in turn, and the on-demand triggers (REPAIR_NOW, and
 * REPAIR_RANGES with now: the replicas of some ranges first). */
#include "core_int.h"

/* Rebuild steps: keys per step, and the pause between steps (the scan
 * shares the loop with requests: 2,000 keys take about a millisecond). */
#define AAE_REBUILD_KEYS 2000u
#define AAE_REBUILD_PAUSE_MS 5

/* Whether this node takes part: it serves, and is not on its way out. */
static bool aae_active(const struct core *c) {
  return c->repl != NULL && c->started && !c->leaving && !c->evicted;
}

chorus_ms core__aae_deadline(const struct core *c) {
  if (!aae_active(c))
    return CORE_NEVER;
  if (!repl_aae_built(c->repl))
    return c->aae.rebuild_at;
  /* An exchange ends by its own messages and timers; one asked for
   * meanwhile (now_wanted) starts after it. Checked before now_wanted: a
   * deadline that stays "now" while nothing can change spins the driver. */
  if (repl_aae_busy(c->repl))
    return CORE_NEVER;
  if (c->aae.now_wanted)
    return c->now;
  if (c->cfg.aae_interval_ms == 0)
    return CORE_NEVER;
  return c->aae.next_at;
}

int core__aae_step(struct core *c) {
  if (!aae_active(c))
    return CHORUS_OK;
  if (!repl_aae_built(c->repl)) {
    bool built;
    int rc = repl_aae_rebuild_step(c->repl, AAE_REBUILD_KEYS, &built);
    c->aae.rebuild_at = c->now + AAE_REBUILD_PAUSE_MS;
    if (built && c->aae.next_at == 0)
      c->aae.next_at = c->now + c->cfg.aae_interval_ms;
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK; /* a store error: again */
  }
  if (repl_aae_busy(c->repl))
    return CHORUS_OK;
  if (!c->aae.now_wanted &&
      (c->cfg.aae_interval_ms == 0 || c->now < c->aae.next_at))
    return CHORUS_OK;
  c->aae.next_at = c->now + c->cfg.aae_interval_ms;
  bool started;
  int rc = repl_aae_exchange(c->repl, 0, c->now, c->wall, &c->rfx, &started);
  /* Peers asked for by core_aae_range_now go one after the other; when
   * none could start (the node stopped serving), they wait for the usual
   * pace rather than a deadline that is always now. */
  c->aae.now_wanted = started && repl_aae_wanted(c->repl);
  return rc;
}

int core_aae_now(struct core *c, chorus_ms now, chorus_ms wall) {
  c->now = now;
  c->wall = wall;
  c->aae.now_wanted = true;
  return core_tick(c, now, wall);
}

int core_aae_range_now(struct core *c, chorus_token first, chorus_token last,
                       chorus_ms now, chorus_ms wall, size_t *ranges,
                       size_t *peers) {
  *ranges = *peers = 0;
  if (c->repl == NULL)
    return CHORUS_EUNAVAILABLE;
  int rc = repl_aae_request(c->repl, first, last, ranges, peers);
  if (rc != CHORUS_OK)
    return rc;
  if (*peers == 0)
    return CHORUS_OK;
  c->now = now;
  c->wall = wall;
  c->aae.now_wanted = true;
  return core_tick(c, now, wall);
}
