/* repl_options.c: consistency levels resolved into quorum requirements, and
 * the tallies that decide when a request has met them. */
#include <stdio.h>
#include <string.h>

#include "repl_int.h"

int repl__group_of_dc(const struct ring_replication *rs, const char *dc) {
  if (rs->dc_count == 0)
    return 0;
  for (uint32_t i = 0; i < rs->dc_count; i++)
    if (strcmp(rs->dcs[i].dc, dc) == 0)
      return (int)i;
  return -1;
}

static uint32_t group_factor(const struct ring_replication *rs, int g) {
  return rs->dc_count == 0 ? rs->n : rs->dcs[g].factor;
}

static const char *level_text(int32_t level, char *buf, size_t cap) {
  const char *name = wire_level_name(level);
  if (name != NULL)
    return name;
  snprintf(buf, cap, "%ld", (long)level);
  return buf;
}

/* The count a level asks for when it names no group: counts, ONE..ALL. */
static int plain_count(int32_t level, uint32_t n, uint32_t *out) {
  switch (level) {
  case WIRE_ONE:
    *out = 1;
    return CHORUS_OK;
  case WIRE_TWO:
    *out = 2;
    return CHORUS_OK;
  case WIRE_THREE:
    *out = 3;
    return CHORUS_OK;
  case WIRE_QUORUM:
    *out = n / 2 + 1;
    return CHORUS_OK;
  case WIRE_ALL:
    *out = n;
    return CHORUS_OK;
  default:
    if (level > 0 && level <= (int32_t)WIRE_MAX_REPLICAS) {
      *out = (uint32_t)level;
      return CHORUS_OK;
    }
    return CHORUS_EINVAL;
  }
}

int repl__resolve(const struct ring_replication *rs, int32_t level,
                  int32_t primary_level, int local_group, const char *what,
                  struct repl_need *out, char *errmsg) {
  memset(out, 0, sizeof *out);
  out->only_group = -1;
  uint32_t n = ring_replication_total(rs);
  char t[24];
  uint32_t k = 0;
  switch (level) {
  case WIRE_LOCAL_ONE:
  case WIRE_LOCAL_QUORUM:
    if (rs->dc_count == 0)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "%s=%s needs datacenters in the replication settings",
                         what, wire_level_name(level));
    if (local_group < 0)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "%s=%s: this node's datacenter holds no replicas",
                         what, wire_level_name(level));
    /* The coordinator's group comes from repl__group_of_dc on this very
     * replication setting. */
    assert((uint32_t)local_group < rs->dc_count);
    k = level == WIRE_LOCAL_ONE ? 1 : group_factor(rs, local_group) / 2 + 1;
    out->only_group = (int8_t)local_group;
    break;
  case WIRE_EACH_QUORUM:
    /* Without datacenters there is one group: EACH_QUORUM is QUORUM. */
    out->ngroups = (uint8_t)(rs->dc_count == 0             ? 1
                             : rs->dc_count > RING_MAX_DCS ? RING_MAX_DCS
                                                           : rs->dc_count);
    for (uint8_t g = 0; g < out->ngroups; g++) {
      out->per_group[g] = (uint8_t)(group_factor(rs, g) / 2 + 1);
      k += out->per_group[g];
    }
    break;
  default:
    if (plain_count(level, n, &k) != CHORUS_OK)
      return chorus_errf(errmsg, CHORUS_EINVAL, "%s=%s is not a level", what,
                         level_text(level, t, sizeof t));
    if (k > n)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "%s=%s asks for %u replicas but N=%u", what,
                         level_text(level, t, sizeof t), k, n);
  }
  uint32_t p = 0;
  if (primary_level != 0) {
    if (primary_level == WIRE_LOCAL_ONE || primary_level == WIRE_LOCAL_QUORUM ||
        primary_level == WIRE_EACH_QUORUM ||
        plain_count(primary_level, n, &p) != CHORUS_OK)
      return chorus_errf(errmsg, CHORUS_EINVAL, "p%s=%s is not a count", what,
                         level_text(primary_level, t, sizeof t));
    if (p > n)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "p%s=%u asks for more primaries than N=%u", what, p,
                         n);
  }
  /* Riak: pr above r raises r, since primaries are replicas too. */
  out->total = (uint8_t)(k > p ? k : p);
  out->primaries = (uint8_t)p;
  return CHORUS_OK;
}

void repl__need_pending(struct repl_need *need, const struct ring_plist *pl) {
  for (uint8_t i = pl->n_natural; i < pl->n_natural + pl->n_pending; i++) {
    int g = pl->r[i].dc;
    if (need->only_group >= 0 && g != need->only_group)
      continue;
    need->total++;
    if (g < need->ngroups && need->per_group[g] > 0)
      need->per_group[g]++;
  }
}

void repl__tally_add(struct repl_tally *t, const struct repl_need *n, int group,
                     bool natural) {
  /* One acknowledgement per preference-list entry: far below 255. */
  assert(t->total < RING_PLIST_MAX && t->primaries < RING_PLIST_MAX);
  if (natural)
    t->primaries++;
  if (n->only_group >= 0 && group != n->only_group)
    return;
  t->total++;
  if (group >= 0 && group < (int)RING_MAX_DCS)
    t->per_group[group]++;
}

bool repl__tally_met(const struct repl_tally *t, const struct repl_need *n) {
  if (t->total < n->total || t->primaries < n->primaries)
    return false;
  for (uint8_t g = 0; g < n->ngroups; g++)
    if (t->per_group[g] < n->per_group[g])
      return false;
  return true;
}
