/* swim_sim_adapter.c: SWIM on the cluster simulator (swim_sim_adapter.h). */
#include "swim_sim_adapter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"

/* One node's instance: lives from create() to destroy() (a crash). */
struct snode {
  struct swim_sim *ss;
  struct swim *sw;
  int index;
  struct sim_effects *fx; /* during handle() and sim_node_do only */
  uint64_t gen;           /* timer generation: stale timers are ignored */
  chorus_ms armed_at;
  int armed;
};

struct swim_sim {
  struct swim_sim_config cfg;
  struct sim *s;
  uint8_t (*keys)[SWIM_KEY_BYTES]; /* per node, for its next start */
  int *join_via;                   /* per node: seed for its next start */
  struct swim_sim_subject *subj;
  chorus_ms *tracked;
  chorus_node_id track_id;
  uint32_t track_inc;
  int tracking;
  uint64_t false_deaths, datagrams;
  size_t max_datagram;
  char (*addrs)[16];
};

static chorus_ms now_ms(const struct swim_sim *ss) {
  return sim_now(ss->s) / SIM_US_PER_MS;
}

/* ---- swim effects ---- */

static void sn_send(void *ctx, const char *addr, enum swim_channel ch,
                    const void *data, size_t len) {
  struct snode *n = ctx;
  struct swim_sim *ss = n->ss;
  if (addr[0] != 'n')
    return;
  int to = atoi(addr + 1);
  if (to < 0 || to >= ss->cfg.nodes || to == n->index)
    return;
  if (ch == SWIM_DATAGRAM) {
    ss->datagrams++;
    if (len > ss->max_datagram)
      ss->max_datagram = len;
  }
  if (n->fx == NULL)
    return; /* outside an event: nothing can leave (not reached) */
  if (ch == SWIM_DATAGRAM)
    (void)sim_fx_send(n->fx, to, data, len);
  else
    (void)sim_fx_send_stream(n->fx, to, data, len);
}

static void sn_changed(void *ctx, const struct swim_member *m,
                       enum swim_state old, int is_new, int ring_changed) {
  struct snode *n = ctx;
  struct swim_sim *ss = n->ss;
  (void)ring_changed;
  int j = swim_sim_index_of(ss, m->id);
  if (j < 0)
    return;
  struct swim_sim_subject *sj = &ss->subj[j];
  chorus_ms t = now_ms(ss);
  if (m->state == SWIM_SUSPECT && old == SWIM_ALIVE) {
    sj->suspect_events++;
    if (sj->first_suspect == SWIM_SIM_NEVER)
      sj->first_suspect = t;
  }
  if (m->state == SWIM_DEAD && old != SWIM_DEAD) {
    sj->dead_events++;
    sj->dead_observers++;
    if (sj->first_dead == SWIM_SIM_NEVER)
      sj->first_dead = t;
    if (sim_node_up(ss->s, j))
      ss->false_deaths++;
  }
  if (old == SWIM_DEAD && m->state != SWIM_DEAD && !is_new)
    sj->dead_observers--;
  if (ss->tracking && m->id == ss->track_id &&
      m->incarnation >= ss->track_inc &&
      ss->tracked[n->index] == SWIM_SIM_NEVER)
    ss->tracked[n->index] = t;
}

/* ---- the node ops ---- */

static void fill_meta(struct swim_meta *m, int i, int dc) {
  memset(m, 0, sizeof *m);
  snprintf(m->addr, sizeof m->addr, "n%d", i);
  snprintf(m->dc, sizeof m->dc, "dc%d", dc);
  snprintf(m->rack, sizeof m->rack, "r%d", i % 3);
  m->ownership = RING_NORMAL;
}

static int sn_create(void **state, const struct sim_node_config *cfg) {
  struct swim_sim *ss = cfg->arg;
  struct snode *n = chorus_calloc(1, sizeof *n);
  if (n == NULL)
    return CHORUS_ENOMEM;
  n->ss = ss;
  n->index = cfg->index;
  struct swim_config c;
  memset(&c, 0, sizeof c);
  c.id = cfg->ids[cfg->index];
  fill_meta(&c.meta, cfg->index, cfg->dc[cfg->index]);
  snprintf(c.cluster, sizeof c.cluster, "test-cluster");
  memcpy(c.key, ss->keys[cfg->index], SWIM_KEY_BYTES);
  if (ss->cfg.local_profile)
    swim_timing_local(&c.timing);
  else
    swim_timing_lan(&c.timing);
  if (ss->cfg.pushpull_ms)
    c.timing.pushpull_interval = ss->cfg.pushpull_ms;
  if (ss->cfg.no_gossip)
    c.timing.gossip_interval = 0;
  if (ss->cfg.no_lifeguard)
    c.timing.max_lhm = 0;
  c.seed = cfg->seed;
  c.clock_bound_ms = 100;
  c.fx.ctx = n;
  c.fx.send = sn_send;
  c.fx.member_changed = sn_changed;
  c.tracer = cfg->tracer;
  int rc = swim_new(&c, &n->sw);
  if (rc != CHORUS_OK) {
    chorus_free(n);
    return rc;
  }
  *state = n;
  return CHORUS_OK;
}

static void sn_destroy(void *state) {
  struct snode *n = state;
  swim_free(n->sw);
  chorus_free(n);
}

static int sn_inspect(void *state, enum sim_op_type type, const void *key,
                      size_t klen, struct sim_replica_view *out) {
  (void)state;
  (void)type;
  (void)key;
  (void)klen;
  (void)out;
  return CHORUS_ENOTFOUND; /* SWIM holds no keys */
}

/* on_start: a first boot of a bootstrapped node knows every node up at
 * time 0 (as a saved member table would); any other start joins through
 * its seed (swim_sim_start) or through n0 and n1. */
static int on_start(struct snode *n, const struct sim_event *ev) {
  struct swim_sim *ss = n->ss;
  int rc = swim_start(n->sw, ev->now);
  if (rc != CHORUS_OK)
    return rc;
  int started = ss->cfg.started > 0 ? ss->cfg.started : ss->cfg.nodes;
  if (ss->cfg.bootstrap && !ev->start.restarted) {
    for (int k = 0; k < started && rc == CHORUS_OK; k++) {
      if (k == n->index)
        continue;
      struct swim_meta m;
      fill_meta(&m, k, 0); /* one datacenter */
      rc = swim_add_member(n->sw, swim_sim_id(ss, k), &m, 0, ev->now);
    }
    return rc;
  }
  int via = ss->join_via[n->index];
  const char *seeds[2] = {"n0", "n1"};
  size_t nseeds = 2;
  if (via >= 0) {
    seeds[0] = ss->addrs[via];
    nseeds = 1;
  }
  return swim_join(n->sw, seeds, nseeds, ev->now, ev->wall);
}

/* rearm: one pending timer, at the instance's next deadline. */
static int rearm(struct snode *n, chorus_ms now) {
  chorus_ms d = swim_next_deadline(n->sw);
  if (d == SWIM_SIM_NEVER || (n->armed && d >= n->armed_at))
    return CHORUS_OK;
  n->gen++;
  n->armed = 1;
  n->armed_at = d;
  return sim_fx_timer(n->fx, n->gen, d > now ? d - now : 0);
}

static int sn_handle(void *state, const struct sim_event *ev,
                     struct sim_effects *fx) {
  struct snode *n = state;
  n->fx = fx;
  int rc = CHORUS_OK;
  switch (ev->kind) {
  case SIM_EV_START:
    rc = on_start(n, ev);
    break;
  case SIM_EV_MESSAGE:
    rc =
        swim_handle_packet(n->sw, ev->msg.data, ev->msg.len, ev->now, ev->wall);
    break;
  case SIM_EV_TIMER:
    if (ev->timer.id != n->gen)
      break;
    n->armed = 0;
    rc = swim_tick(n->sw, ev->now, ev->wall);
    break;
  case SIM_EV_REQUEST: {
    struct sim_reply r = {.id = ev->req.id, .status = CHORUS_ENOTSUP};
    rc = sim_fx_reply(fx, &r);
    break;
  }
  case SIM_EV_SYNC_DONE:
    break;
  }
  if (rc == CHORUS_OK)
    rc = rearm(n, ev->now);
  n->fx = NULL;
  return rc;
}

static const struct sim_node_ops swim_sim_ops = {
    .name = "swim",
    .create = sn_create,
    .handle = sn_handle,
    .inspect = sn_inspect,
    .destroy = sn_destroy,
};

/* ---- operator commands, inside the node ---- */

enum cmd_kind { CMD_LEAVE, CMD_REMOVE, CMD_JOIN, CMD_META, CMD_KEYS };

struct cmd {
  enum cmd_kind kind;
  chorus_node_id id;
  const char *const *seeds;
  size_t n;
  const struct swim_meta *meta;
  const uint8_t *primary;
  const uint8_t (*accepted)[SWIM_KEY_BYTES];
};

static int run_cmd(void *state, chorus_ms now, chorus_ms wall,
                   struct sim_effects *fx, void *arg) {
  struct snode *n = state;
  const struct cmd *c = arg;
  n->fx = fx;
  int rc = CHORUS_EINVAL;
  switch (c->kind) {
  case CMD_LEAVE:
    rc = swim_leave(n->sw, now, wall);
    break;
  case CMD_REMOVE:
    rc = swim_remove(n->sw, c->id, now);
    break;
  case CMD_JOIN:
    rc = swim_join(n->sw, c->seeds, c->n, now, wall);
    break;
  case CMD_META:
    rc = swim_set_meta(n->sw, c->meta, now);
    break;
  case CMD_KEYS:
    rc = swim_keys_set(n->sw, c->primary, c->accepted, c->n);
    break;
  }
  if (rc == CHORUS_OK)
    rc = rearm(n, now);
  n->fx = NULL;
  return rc;
}

static int do_cmd(struct swim_sim *ss, int i, const struct cmd *c) {
  return sim_node_do(ss->s, i, run_cmd, (void *)(uintptr_t)c);
}

int swim_sim_leave(struct swim_sim *ss, int i) {
  struct cmd c = {.kind = CMD_LEAVE};
  return do_cmd(ss, i, &c);
}

int swim_sim_remove(struct swim_sim *ss, int i, chorus_node_id id) {
  struct cmd c = {.kind = CMD_REMOVE, .id = id};
  return do_cmd(ss, i, &c);
}

int swim_sim_join(struct swim_sim *ss, int i, const char *const *seeds,
                  size_t n) {
  struct cmd c = {.kind = CMD_JOIN, .seeds = seeds, .n = n};
  return do_cmd(ss, i, &c);
}

int swim_sim_set_meta(struct swim_sim *ss, int i, const struct swim_meta *m) {
  struct cmd c = {.kind = CMD_META, .meta = m};
  return do_cmd(ss, i, &c);
}

int swim_sim_keys_set(struct swim_sim *ss, int i,
                      const uint8_t primary[SWIM_KEY_BYTES],
                      const uint8_t (*accepted)[SWIM_KEY_BYTES], size_t n) {
  struct cmd c = {
      .kind = CMD_KEYS, .primary = primary, .accepted = accepted, .n = n};
  return do_cmd(ss, i, &c);
}

/* ---- setup ---- */

void swim_sim_default_key(uint8_t key[SWIM_KEY_BYTES]) {
  for (unsigned i = 0; i < SWIM_KEY_BYTES; i++)
    key[i] = (uint8_t)(i * 7 + 1);
}

int swim_sim_new(const struct swim_sim_config *cfg, struct swim_sim **out) {
  int n = cfg->nodes;
  if (n < 1 || n > SIM_MAX_NODES || cfg->dcs > 1 || cfg->started < 0 ||
      cfg->started > n)
    return CHORUS_EINVAL;
  struct swim_sim *ss = chorus_calloc(1, sizeof *ss);
  if (ss == NULL)
    return CHORUS_ENOMEM;
  ss->cfg = *cfg;
  ss->keys = chorus_calloc((size_t)n, sizeof *ss->keys);
  ss->join_via = chorus_calloc((size_t)n, sizeof *ss->join_via);
  ss->subj = chorus_calloc((size_t)n, sizeof *ss->subj);
  ss->tracked = chorus_calloc((size_t)n, sizeof *ss->tracked);
  ss->addrs = chorus_calloc((size_t)n, sizeof *ss->addrs);
  if (!ss->keys || !ss->join_via || !ss->subj || !ss->tracked || !ss->addrs) {
    swim_sim_free(ss);
    return CHORUS_ENOMEM;
  }
  for (int i = 0; i < n; i++) {
    swim_sim_default_key(ss->keys[i]);
    ss->join_via[i] = -1;
    ss->subj[i].first_suspect = SWIM_SIM_NEVER;
    ss->subj[i].first_dead = SWIM_SIM_NEVER;
    ss->tracked[i] = SWIM_SIM_NEVER;
    snprintf(ss->addrs[i], sizeof ss->addrs[i], "n%d", i);
  }
  struct sim_config sc = {
      .seed = cfg->seed, .nodes = n, .dcs = 1, .ops = &swim_sim_ops};
  sc.ops_arg = ss;
  sc.faults.tail_ms = 2; /* inside one datacenter: a 0.2 ms mean tail */
  sc.faults.fsync_ms = 1;
  sc.verbose = getenv("CHORUS_SWIM_TRACE") != NULL;
  int rc = sim_new(&sc, &ss->s);
  if (rc != CHORUS_OK) {
    swim_sim_free(ss);
    return rc;
  }
  /* Nodes not up at time 0: crashed before their first event. */
  if (cfg->started > 0)
    for (int i = cfg->started; i < n; i++)
      sim_kill(ss->s, i, SIM_KEEP_ALL);
  if (cfg->loss > 0)
    sim_set_loss(ss->s, cfg->loss, 0);
  if (cfg->slow_node >= 0 && cfg->slow_node < n && cfg->slow_ms > 0)
    sim_slow_node(ss->s, cfg->slow_node, SIM_MS(cfg->slow_ms), 0);
  *out = ss;
  return CHORUS_OK;
}

void swim_sim_free(struct swim_sim *ss) {
  if (ss == NULL)
    return;
  sim_free(ss->s);
  chorus_free(ss->keys);
  chorus_free(ss->join_via);
  chorus_free(ss->subj);
  chorus_free(ss->tracked);
  chorus_free(ss->addrs);
  chorus_free(ss);
}

/* ---- running and looking ---- */

struct sim *swim_sim_engine(struct swim_sim *ss) {
  return ss->s;
}

int swim_sim_run_until(struct swim_sim *ss, chorus_ms t_ms) {
  return sim_run_until(ss->s, SIM_MS(t_ms));
}

chorus_ms swim_sim_now(const struct swim_sim *ss) {
  return now_ms(ss);
}

struct swim *swim_sim_node(struct swim_sim *ss, int i) {
  struct snode *n = sim_node_state(ss->s, i);
  return n != NULL ? n->sw : NULL;
}

/* The simulator numbers its nodes' ids from 0x1000 (sim_new). */
#define SIM_ID_BASE 0x1000

chorus_node_id swim_sim_id(const struct swim_sim *ss, int i) {
  (void)ss;
  return SIM_ID_BASE + (chorus_node_id)i;
}

const char *swim_sim_addr(const struct swim_sim *ss, int i) {
  return ss->addrs[i];
}

int swim_sim_index_of(const struct swim_sim *ss, chorus_node_id id) {
  if (id < SIM_ID_BASE || id - SIM_ID_BASE >= (chorus_node_id)ss->cfg.nodes)
    return -1;
  return (int)(id - SIM_ID_BASE);
}

int swim_sim_start(struct swim_sim *ss, int i, int seed) {
  if (sim_node_up(ss->s, i))
    return CHORUS_EINVAL;
  ss->join_via[i] = seed;
  int rc = sim_restart(ss->s, i);
  if (rc != CHORUS_OK)
    return rc;
  /* Deliver its START (queued for now) so that it is up on return. */
  return sim_run_until(ss->s, sim_now(ss->s));
}

void swim_sim_kill(struct swim_sim *ss, int i) {
  sim_kill(ss->s, i, SIM_KEEP_ALL);
}

void swim_sim_block(struct swim_sim *ss, int i, int blocked) {
  if (blocked)
    sim_isolate(ss->s, i);
  else
    sim_heal(ss->s);
}

void swim_sim_wall_offset(struct swim_sim *ss, int i, int64_t ms) {
  sim_clock_jump(ss->s, i, ms);
}

void swim_sim_key(struct swim_sim *ss, int i,
                  const uint8_t key[SWIM_KEY_BYTES]) {
  memcpy(ss->keys[i], key, SWIM_KEY_BYTES);
}

const struct swim_sim_subject *swim_sim_subject(const struct swim_sim *ss,
                                                int j) {
  return &ss->subj[j];
}

void swim_sim_subject_reset(struct swim_sim *ss, int j) {
  memset(&ss->subj[j], 0, sizeof ss->subj[j]);
  ss->subj[j].first_suspect = SWIM_SIM_NEVER;
  ss->subj[j].first_dead = SWIM_SIM_NEVER;
}

uint64_t swim_sim_false_deaths(const struct swim_sim *ss) {
  return ss->false_deaths;
}

uint64_t swim_sim_datagrams(const struct swim_sim *ss) {
  return ss->datagrams;
}

size_t swim_sim_max_datagram(const struct swim_sim *ss) {
  return ss->max_datagram;
}

uint64_t swim_sim_auth_failed(struct swim_sim *ss) {
  uint64_t c = 0;
  for (int i = 0; i < ss->cfg.nodes; i++) {
    struct swim *sw = swim_sim_node(ss, i);
    if (sw != NULL)
      c += swim_stats(sw)->auth_failed;
  }
  return c;
}

void swim_sim_track(struct swim_sim *ss, chorus_node_id id, uint32_t inc) {
  ss->tracking = 1;
  ss->track_id = id;
  ss->track_inc = inc;
  for (int i = 0; i < ss->cfg.nodes; i++)
    ss->tracked[i] = SWIM_SIM_NEVER;
}

chorus_ms swim_sim_tracked_at(const struct swim_sim *ss, int i) {
  return ss->tracked[i];
}
