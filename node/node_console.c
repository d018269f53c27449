/* node_console.c: the web console's data, GET /api/cluster (node_http.c
 * serves it beside the page, node/web/console.html): this node's view of
 * the members, the ring, its request figures and its repairs, as one
 * JSON object the page polls every second.
 *
 * HOW IT WORKS
 *
 * Everything is read on the loop thread from what /metrics and `chorus
 * status` already read (node_metrics.c, node_status.c); nothing is kept
 * for the console alone, so it costs the data path nothing. Strings that
 * come from users (names, addresses, datacenters, racks) go through
 * node_json_escape; the page puts them into the DOM as text only.
 *
 * SIZE. The ring has ~1,024 tokens per node: listing them would be tens
 * of KiB a second per open page. The page needs a picture, so the ring
 * goes out sampled: CONSOLE_RING_BINS equal slices of the token space,
 * each with the member owning its midpoint (-1: no owner), which the page
 * merges into arcs; each member's exact share (ring_snapshot_ownership)
 * goes with it. The request figures are the raw histogram buckets of the
 * (operation, level) pairs this node has seen: the page computes rates
 * and percentiles over the change between two polls, i.e. the last
 * second, not since the start. The answer is bounded (CONSOLE_MAX_BODY);
 * past it node_http.c answers 500.
 *
 *   {"node":{"name","id","cluster"}, "mono_ms", "epoch",
 *    "members":[{"name","id","addr","dc","rack","self","state","swim",
 *                "meta","offset_ms"|null,"rtt_ms"|null,"hints","share"}],
 *    "ring":{"bins":[member index or -1, ...]},
 *    "bounds_ms":[...], "requests":[{"op","level","n","sum_ms",
 *                                    "b":[per-bucket counts, +Inf last]}],
 *    "repair":{...}, "stream":{...}}
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "http.h"
#include "node_int.h"
#include "node_json.h"

#define CONSOLE_RING_BINS 360u

/* json_str: @s as a JSON string, quotes included. */
static void json_str(struct http_text *t, const char *s) {
  char buf[4 * 256 + 8];
  size_t len = strlen(s);
  http_text_put(t, "\"", 1);
  while (len > 0) {
    size_t cut = 0;
    size_t w = node_json_escape(buf, sizeof buf, s, len, &cut);
    http_text_put(t, buf, w);
    s += len - cut;
    len = cut;
  }
  http_text_put(t, "\"", 1);
}

/* json_kv: ,"@key":"@value" (the comma unless @first). */
static void json_kv(struct http_text *t, const char *key, const char *value,
                    bool first) {
  http_text_printf(t, "%s\"%s\":", first ? "" : ",", key);
  json_str(t, value);
}

/* One member as the console shows it. */
struct console_member {
  chorus_node_id id;
  const char *name, *addr, *dc, *rack;
  const char *meta;  /* its metadata state ("normal"...), or "" */
  const char *swim;  /* gossip's view: alive, suspect, dead... */
  const char *state; /* the one word the page colours: up, suspect, down,
                        joining, leaving, replacing */
  const struct swim_member *sm; /* NULL when gossip does not know it */
};

/* state_word: what `chorus status` would say of the member (node_status.c,
 * wire_state_of): its ownership change first, else gossip's liveness; this
 * node is up (it answered). */
static const char *state_word(struct node *n, const struct console_member *m,
                              int meta_state) {
  if (meta_state == META_JOINING)
    return "joining";
  if (meta_state == META_LEAVING)
    return "leaving";
  if (meta_state == META_REPLACING)
    return "replacing";
  if (m->id == n->cfg.id)
    return "up";
  if (m->sm == NULL)
    return "down";
  switch (m->sm->state) {
  case SWIM_ALIVE:
    return "up";
  case SWIM_SUSPECT:
    return "suspect";
  default:
    return "down";
  }
}

/* members_of: the members, from the metadata when there is one (removed
 * and left members skipped), else from gossip; returns how many, at most
 * @cap. Strings are borrowed from the core until the loop runs on; @idbuf
 * holds hex names for members nobody named. */
static size_t members_of(struct node *n, struct console_member *out, size_t cap,
                         char (*idbuf)[17]) {
  const struct swim *sw = core_swim(n->core);
  const struct meta_node *mn = core_meta(n->core);
  size_t k = 0;
  if (mn != NULL) {
    const struct meta_state *ms = meta_node_state(mn);
    for (size_t i = 0; i < ms->n && k < cap; i++) {
      const struct meta_member *mm = &ms->members[i];
      if (mm->state == META_REMOVED || mm->state == META_LEFT)
        continue;
      struct console_member *c = &out[k++];
      c->id = mm->id;
      c->name = mm->name;
      c->addr = mm->addr;
      c->dc = mm->dc;
      c->rack = mm->rack;
      c->meta = meta_member_state_name((enum meta_member_state)mm->state);
      c->sm = swim_member_find(sw, mm->id);
      c->swim = c->sm ? swim_state_name(c->sm->state) : "unknown";
      c->state = state_word(n, c, mm->state);
    }
    return k;
  }
  size_t count = swim_member_count(sw);
  for (size_t i = 0; i < count && k < cap; i++) {
    const struct swim_member *sm = swim_member_at(sw, i);
    if (sm->state == SWIM_REMOVED)
      continue;
    struct console_member *c = &out[k];
    c->id = sm->id;
    if (sm->id == n->cfg.id) {
      c->name = n->cfg.name;
    } else {
      snprintf(idbuf[k], sizeof idbuf[k], "%016" PRIx64, sm->id);
      c->name = idbuf[k];
    }
    k++;
    c->addr = sm->meta.addr;
    c->dc = sm->meta.dc;
    c->rack = sm->meta.rack;
    c->meta = "";
    c->sm = sm;
    c->swim = swim_state_name(sm->state);
    c->state = state_word(n, c, 0);
  }
  return k;
}

static int by_name(const void *a, const void *b) {
  const struct console_member *x = a, *y = b;
  return strcmp(x->name, y->name);
}

static long member_index(const struct console_member *m, size_t count,
                         chorus_node_id id) {
  for (size_t i = 0; i < count; i++)
    if (m[i].id == id)
      return (long)i;
  return -1;
}

/* ring_text: the sampled ring and each member's exact share, from the
 * published snapshot read as any thread would. */
static void ring_text(struct node *n, struct http_text *t,
                      const struct console_member *m, size_t count,
                      double *share_of_member) {
  ring_rcu_read_lock();
  const struct ring_snapshot *s = ring_rcu_get(&n->ring_pub);
  http_text_printf(t, ",\"epoch\":%" PRIu64, s ? ring_snapshot_version(s) : 0);
  http_text_puts(t, ",\"ring\":{\"bins\":[");
  size_t nn = s ? ring_snapshot_node_count(s) : 0;
  size_t ntok = s ? ring_snapshot_token_count(s) : 0;
  double *share = nn ? chorus_calloc(nn, sizeof *share) : NULL;
  if (share != NULL) {
    ring_snapshot_ownership(s, share);
    for (size_t i = 0; i < nn; i++) {
      long mi = member_index(m, count, ring_snapshot_node(s, i)->id);
      if (mi >= 0)
        share_of_member[mi] = share[i];
    }
  }
  chorus_free(share);
  for (unsigned b = 0; b < CONSOLE_RING_BINS; b++) {
    long owner = -1;
    if (ntok > 0) {
      /* The bin's midpoint; its piece ends at the first token >= it, and
       * wraps to the first token past the top of the space. */
      const uint64_t step = UINT64_MAX / CONSOLE_RING_BINS;
      chorus_token pos = (chorus_token)(step * b + step / 2);
      size_t ti = ring_snapshot_token_index(s, pos);
      size_t node_ix = 0;
      (void)ring_snapshot_token(s, ti < ntok ? ti : 0, &node_ix);
      owner = member_index(m, count, ring_snapshot_node(s, node_ix)->id);
    }
    http_text_printf(t, "%s%ld", b ? "," : "", owner);
  }
  http_text_puts(t, "]}");
  ring_rcu_read_unlock();
}

static void members_text(struct node *n, struct http_text *t,
                         const struct console_member *m, size_t count,
                         const double *share) {
  const struct repl *r = core_repl(n->core);
  http_text_puts(t, ",\"members\":[");
  for (size_t i = 0; i < count; i++) {
    char id[17];
    snprintf(id, sizeof id, "%016" PRIx64, m[i].id);
    http_text_puts(t, i ? ",{" : "{");
    json_kv(t, "name", m[i].name, true);
    json_kv(t, "id", id, false);
    json_kv(t, "addr", m[i].addr, false);
    json_kv(t, "dc", m[i].dc, false);
    json_kv(t, "rack", m[i].rack, false);
    json_kv(t, "state", m[i].state, false);
    json_kv(t, "swim", m[i].swim, false);
    json_kv(t, "meta", m[i].meta, false);
    bool self = m[i].id == n->cfg.id;
    http_text_printf(t, ",\"self\":%s", self ? "true" : "false");
    if (!self && m[i].sm != NULL && m[i].sm->clock_samples > 0)
      http_text_printf(t, ",\"offset_ms\":%" PRId64 ",\"rtt_ms\":%" PRId64,
                       m[i].sm->offset_ms, m[i].sm->rtt_ms);
    else
      http_text_puts(t, ",\"offset_ms\":null,\"rtt_ms\":null");
    http_text_printf(t, ",\"hints\":%" PRIu64 ",\"share\":%.4f}",
                     self ? 0 : repl_hints_for(r, m[i].id), share[i]);
  }
  http_text_puts(t, "]");
}

static void requests_text(struct node *n, struct http_text *t) {
  const struct node_metrics *x = &n->metrics;
  const double *bounds = node__metrics_bounds();
  http_text_puts(t, ",\"bounds_ms\":[");
  for (unsigned b = 0; b < NODE_LAT_BUCKETS; b++)
    http_text_printf(t, "%s%g", b ? "," : "", bounds[b] * 1000.0);
  http_text_puts(t, "],\"requests\":[");
  bool first = true;
  for (unsigned op = 0; op < NODE_OP_COUNT; op++)
    for (unsigned l = 0; l < NODE_LEVELS; l++) {
      if (x->requests[op][l] == 0)
        continue;
      http_text_puts(t, first ? "{" : ",{");
      first = false;
      json_kv(t, "op", node__metrics_op_name((enum node_op)op), true);
      json_kv(t, "level", node__metrics_level_name(l), false);
      http_text_printf(t, ",\"n\":%" PRIu64 ",\"sum_ms\":%.3f,\"b\":[",
                       x->requests[op][l], (double)x->lat_sum_ns[op][l] / 1e6);
      for (unsigned b = 0; b <= NODE_LAT_BUCKETS; b++)
        http_text_printf(t, "%s%" PRIu64, b ? "," : "", x->lat[op][l][b]);
      http_text_puts(t, "]}");
    }
  http_text_puts(t, "]");
}

static void progress_text(struct node *n, struct http_text *t) {
  const struct repl_stats *rs = repl_stats(core_repl(n->core));
  http_text_printf(
      t,
      ",\"repair\":{\"read_repairs\":%" PRIu64 ",\"hints_pending\":%" PRIu64
      ",\"hints_queued\":%" PRIu64 ",\"hints_replayed\":%" PRIu64
      ",\"aae_completed\":%" PRIu64 ",\"aae_keys_repaired\":%" PRIu64 "}",
      rs->read_repairs, rs->hints_pending, rs->hints_queued, rs->hints_replayed,
      rs->aae_completed, rs->aae_keys_repaired);
  struct core_stream_info si;
  core_stream_info(n->core, &si);
  http_text_printf(t,
                   ",\"stream\":{\"epoch\":%" PRIu64 ",\"active\":%s"
                   ",\"ranges\":%zu,\"ranges_done\":%zu,\"done\":%.4f"
                   ",\"keys\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
                   si.epoch, si.active ? "true" : "false", si.ranges,
                   si.ranges_done, si.epoch ? si.done : 0.0,
                   (uint64_t)si.stats.keys, (uint64_t)si.stats.bytes);
}

void node__console_json(struct node *n, struct http_text *t) {
  size_t cap = swim_member_count(core_swim(n->core));
  const struct meta_node *mn = core_meta(n->core);
  if (mn != NULL && meta_node_state(mn)->n > cap)
    cap = meta_node_state(mn)->n;
  cap = cap ? cap : 1;
  struct console_member *m = chorus_calloc(cap, sizeof *m);
  char(*idbuf)[17] = chorus_calloc(cap, sizeof *idbuf);
  double *share = chorus_calloc(cap, sizeof *share);
  if (m == NULL || idbuf == NULL || share == NULL) {
    t->failed = true;
    goto out;
  }
  size_t count = members_of(n, m, cap, idbuf);
  /* By name: the order, and so the colours, stay put as states change. */
  qsort(m, count, sizeof *m, by_name);
  char id[17];
  snprintf(id, sizeof id, "%016" PRIx64, n->cfg.id);
  http_text_puts(t, "{\"node\":{");
  json_kv(t, "name", n->cfg.name, true);
  json_kv(t, "id", id, false);
  json_kv(t, "cluster", n->cfg.cluster, false);
  http_text_printf(t, "},\"mono_ms\":%" PRIu64, uv_hrtime() / 1000000u);
  ring_text(n, t, m, count, share);
  members_text(n, t, m, count, share);
  requests_text(n, t);
  progress_text(n, t);
  http_text_puts(t, "}\n");
out:
  chorus_free(share);
  chorus_free(idbuf);
  chorus_free(m);
}
