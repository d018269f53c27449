/* core.c: the node core: SWIM, the ring snapshot and replication joined
 * once, for chorusd and the simulator alike (core.h, HOW IT WORKS). */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "core_int.h"

#define TRACE(c, ...) chorus_trace((c)->cfg.tracer, "core", __VA_ARGS__)

/* ========================================================================
 * SWIM's effects: sends go out at once; member changes wait for the call
 * to return (core.h, THE HOOKUP).
 * ======================================================================== */

static void sw_send(void *ctx, const char *addr, enum swim_channel ch,
                    const void *data, size_t len) {
  struct core *c = ctx;
  c->fx.gossip(c->fx.ctx, addr, ch, data, len);
}

static void sw_changed(void *ctx, const struct swim_member *m,
                       enum swim_state old, int is_new, int ring_changed) {
  struct core *c = ctx;
  assert(c->in_swim);
  if (ring_changed || is_new)
    c->ring_dirty = true;
  struct core__member_ev *e =
      chorus_grow(c->mev, &c->capmev, c->nmev, sizeof *e, 16);
  if (e == NULL) {
    if (c->swim_err == CHORUS_OK)
      c->swim_err = CHORUS_ENOMEM;
    return;
  }
  c->mev = e;
  c->mev[c->nmev++] = (struct core__member_ev){*m, old, is_new != 0};
}

/* rebuild_ring: a new snapshot of SWIM's table (static membership, or no
 * metadata). A failed build keeps the ring in force. */
static void rebuild_ring(struct core *c) {
  struct ring_snapshot *s = NULL;
  char err[CHORUS_ERRMSG_SIZE] = "";
  int rc = swim_ring_snapshot(c->swim, &c->cfg.replication, &s, err);
  if (rc != CHORUS_OK) {
    TRACE(c, "ring rebuild failed, keeping v%" PRIu64 ": %s",
          ring_snapshot_version(c->ring), err[0] ? err : chorus_strerror(rc));
    return;
  }
  core__install_ring(c, s);
}

/* core__install_ring: to replication first (it must never read a retired
 * snapshot), then to the driver. */
void core__install_ring(struct core *c, struct ring_snapshot *s) {
  struct ring_snapshot *old = c->ring;
  c->ring = s;
  if (c->repl != NULL)
    repl_set_ring(c->repl, s);
  TRACE(c, "ring v%" PRIu64 ": %zu nodes", ring_snapshot_version(s),
        ring_snapshot_node_count(s));
  if (c->fx.ring != NULL)
    c->fx.ring(c->fx.ctx, s); /* the driver owns old and new */
  else
    ring_snapshot_free(old);
}

/* ========================================================================
 * Clock skew (core.h, CLOCK SKEW)
 * ======================================================================== */

int core__skew_step(struct core__skew *k, const struct swim_member *m,
                    int64_t bound_ms) {
  assert(bound_ms > 0);
  size_t i = 0;
  while (i < k->n && k->ids[i] != m->id)
    i++;
  bool was = i < k->n;
  /* Compared without llabs: an offset of INT64_MIN has no absolute value. */
  bool now = m->clock_samples > 0 &&
             (m->offset_ms > bound_ms || m->offset_ms < -bound_ms);
  if (was == now)
    return 0;
  if (was) {
    k->ids[i] = k->ids[--k->n];
    return -1;
  }
  chorus_node_id *ids = chorus_grow(k->ids, &k->cap, k->n, sizeof *ids, 4);
  if (ids == NULL)
    return 0;
  k->ids = ids;
  k->ids[k->n++] = m->id;
  return 1;
}

void core__skew_free(struct core__skew *k) {
  chorus_free(k->ids);
  *k = (struct core__skew){0};
}

/* check_clocks: the clock effect for every member whose estimate crossed
 * the bound since the last look. */
static void check_clocks(struct core *c) {
  int64_t bound = c->cfg.swim.clock_bound_ms;
  if (bound <= 0)
    return;
  size_t n = swim_member_count(c->swim);
  for (size_t i = 0; i < n; i++) {
    const struct swim_member *m = swim_member_at(c->swim, i);
    if (m->id == c->cfg.swim.id)
      continue;
    int step = core__skew_step(&c->skew, m, bound);
    if (step == 0)
      continue;
    TRACE(c,
          "clock of %016" PRIx64 " is %+" PRId64 " ms: %s the %" PRId64
          " ms bound",
          m->id, m->offset_ms, step > 0 ? "beyond" : "back within", bound);
    if (c->fx.clock != NULL)
      c->fx.clock(c->fx.ctx, m, bound, step > 0);
  }
}

/* after_swim: applies what SWIM's callbacks queued, in the order core.h
 * gives: member effects, one ring rebuild, liveness into replication; then
 * the clock bound. */
static int after_swim(struct core *c, int rc) {
  assert(!c->in_swim);
  if (rc == CHORUS_OK)
    rc = c->swim_err;
  c->swim_err = CHORUS_OK;
  if (c->fx.member != NULL)
    for (size_t i = 0; i < c->nmev; i++)
      c->fx.member(c->fx.ctx, &c->mev[i].m, c->mev[i].old, c->mev[i].is_new);
  if (c->ring_dirty) {
    c->ring_dirty = false;
    if (!c->cfg.metadata)
      rebuild_ring(c);
  }
  for (size_t i = 0; i < c->nmev && rc == CHORUS_OK; i++) {
    const struct swim_member *m = &c->mev[i].m;
    if (m->id == c->cfg.swim.id || c->repl == NULL)
      continue;
    bool up = m->state == SWIM_ALIVE || m->state == SWIM_SUSPECT;
    rc = repl_member(c->repl, m->id, up, c->now, c->wall, &c->rfx);
  }
  c->nmev = 0;
  check_clocks(c);
  if (rc == CHORUS_OK && c->meta != NULL)
    rc = core__meta_after_swim(c);
  return rc;
}

/* Every SWIM call goes through these two: in_swim marks where its
 * callbacks may only queue. */
static void swim_enter(struct core *c, chorus_ms now, chorus_ms wall) {
  assert(!c->in_swim);
  c->now = now;
  c->wall = wall;
  c->in_swim = true;
}

static int swim_exit(struct core *c, int rc) {
  c->in_swim = false;
  return after_swim(c, rc);
}

/* ========================================================================
 * Replication's effects
 * ======================================================================== */

static int rx_send(void *ctx, chorus_node_id to, const struct wire_msg *m) {
  struct core *c = ctx;
  return c->fx.send(c->fx.ctx, to, m);
}

/* A forwarded request's answer goes back to the peer that forwarded it,
 * under the request id it used (repl keeps it as the cookie); the driver
 * sees only its own clients' cookies. */
static int rx_reply(void *ctx, const struct repl_origin *o,
                    const struct wire_msg *m, bool maybe_applied) {
  struct core *c = ctx;
  if (o->from_peer) {
    struct wire_msg copy = *m;
    copy.request_id = o->cookie;
    return c->fx.send(c->fx.ctx, o->peer, &copy);
  }
  return c->fx.reply(c->fx.ctx, o->cookie, m, maybe_applied);
}

static int rx_timer(void *ctx, uint64_t id, chorus_ms after_ms) {
  struct core *c = ctx;
  return core__timers_push(&c->timers, c->now + after_ms, id);
}

static int rx_sync(void *ctx, chorus_seq seq, uint64_t token) {
  struct core *c = ctx;
  return c->fx.sync(c->fx.ctx, seq, token);
}

/* finish: the end of every event that reached replication: a store that
 * failed under it stops the node (store.h, "fsyncgate"). */
static int finish(struct core *c, int rc) {
  if (rc == CHORUS_OK && c->repl != NULL && repl_failed(c->repl))
    return CHORUS_ESYNCFAILED;
  return rc;
}

/* ========================================================================
 * Lifecycle
 * ======================================================================== */

int core_new(const struct core_config *cfg, const struct core_effects *fx,
             struct core **out, char *errmsg) {
  *out = NULL;
  if (cfg->repl.self != cfg->swim.id ||
      strcmp(cfg->repl.dc, cfg->swim.meta.dc) != 0 || fx->gossip == NULL ||
      (cfg->metadata &&
       (!cfg->gossip || cfg->meta.self_member.id != cfg->swim.id)) ||
      fx->send == NULL || fx->reply == NULL || fx->sync == NULL)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "core: replication and gossip disagree on the node's "
                       "id or datacenter, or an effect is missing");
  struct core *c = chorus_calloc(1, sizeof *c);
  if (c == NULL)
    return chorus_errf(errmsg, CHORUS_ENOMEM, "core: out of memory");
  c->cfg = *cfg;
  c->fx = *fx;
  c->join_at = CORE_NEVER;
  c->gc_at = CORE_NEVER;
  struct swim_config sc = cfg->swim;
  sc.fx = (struct swim_effects){c, sw_send, sw_changed};
  int rc = swim_new(&sc, &c->swim);
  if (rc != CHORUS_OK) {
    chorus_errf(errmsg, rc, "gossip: %s", chorus_strerror(rc));
    goto err_after_alloc;
  }
  char why[CHORUS_ERRMSG_SIZE] = "";
  /* With metadata, nothing is owned until metadata is committed (or
   * loaded): an empty ring, on which every request is unavailable. */
  if (cfg->metadata)
    rc = ring_snapshot_build(NULL, 0, &c->cfg.replication, 0, &c->ring, why);
  else
    rc = swim_ring_snapshot(c->swim, &c->cfg.replication, &c->ring, why);
  if (rc != CHORUS_OK) {
    chorus_errf(errmsg, rc, "ring: %s", why[0] ? why : chorus_strerror(rc));
    goto err_after_swim;
  }
  c->rfx = (struct repl_effects){c, rx_send, rx_reply, rx_timer, rx_sync};
  if (c->fx.ring != NULL)
    c->fx.ring(c->fx.ctx, c->ring);
  *out = c;
  return CHORUS_OK;
err_after_swim:
  swim_free(c->swim);
err_after_alloc:
  chorus_free(c);
  return rc;
}

void core_free(struct core *c) {
  if (c == NULL)
    return;
  core__stream_free(c);
  core__meta_free(c);
  repl_free(c->repl);
  swim_free(c->swim);
  if (c->fx.ring == NULL)
    ring_snapshot_free(c->ring);
  core__timers_free(&c->timers);
  core__skew_free(&c->skew);
  chorus_free(c->mev);
  chorus_free(c);
}

static chorus_ms gc_interval(const struct core *c) {
  return c->cfg.gc_interval_ms ? c->cfg.gc_interval_ms : CORE_GC_INTERVAL_MS;
}

/* reclaim: at the end of each walk, what it purged added up; once that
 * reaches CORE_RECLAIM_MIN_PURGED objects the store is hinted to give
 * their space back (store.h, SPACE TAKEN AND GIVEN BACK): it returns at
 * once, the store's own thread does the work. Added up over walks, not per
 * walk: a mass delete is purged over several walks as replicas confirm.
 * And its tail, what walks purge after a hint, is hinted too once a walk
 * purges nothing (the wave is over), however small: without that, up to
 * CORE_RECLAIM_MIN_PURGED objects' tombstones and deletes would stay in
 * the WAL of a store that sees no more writes. A steady trickle never
 * reaches the minimum, so it never starts that. A failed hint costs
 * space, not data: traced, and hinted again at the next sum. */
static void reclaim(struct core *c) {
  struct repl_gc_walk w = repl_gc_last_walk(c->repl);
  if (w.number == c->reclaim_walk)
    return; /* no new walk */
  c->reclaim_walk = w.number;
  if (w.purged > 0) {
    if (c->reclaim.purged == 0 || w.first < c->reclaim.first)
      c->reclaim.first = w.first;
    if (c->reclaim.purged == 0 || w.last > c->reclaim.last)
      c->reclaim.last = w.last;
    c->reclaim.purged += w.purged;
  }
  bool tail = c->reclaim_tail && w.purged == 0;
  if (tail)
    c->reclaim_tail = false;
  if (c->reclaim.purged == 0 ||
      (c->reclaim.purged < CORE_RECLAIM_MIN_PURGED && !tail))
    return;
  int rc = store_reclaim(c->store, c->reclaim.first, c->reclaim.last);
  TRACE(c,
        "gc: %" PRIu64 " objects purged since the last reclaim%s, tokens "
        "%016" PRIx64 "..%016" PRIx64 ": the store reclaims their space (%s)",
        c->reclaim.purged, tail ? " (the tail of a wave)" : "",
        c->reclaim.first, c->reclaim.last,
        rc == CHORUS_OK ? "asked" : store_errmsg(c->store));
  if (!tail)
    c->reclaim_tail = true;
  c->reclaim = (struct repl_gc_walk){0};
}

/* gc_step: a batch of the tombstone queue's walk (repl_gc_step). */
static int gc_step(struct core *c, chorus_ms wall) {
  bool done = true;
  int rc = repl_gc_step(c->repl, CORE_GC_BATCH, c->now, wall, &done);
  c->gc_at = c->now + (done ? gc_interval(c) : CORE_GC_PAUSE_MS);
  if (rc == CHORUS_OK && done)
    reclaim(c);
  return rc;
}

int core_start(struct core *c, struct store *store, chorus_ms now,
               chorus_ms wall) {
  if (c->started || c->repl != NULL)
    return CHORUS_EINVAL;
  c->now = now;
  c->wall = wall;
  c->store = store;
  c->cfg.repl.kv_limits = core__ks_kv_limits;
  c->cfg.repl.kv_limits_ctx = c;
  int rc = repl_new(&c->cfg.repl, store, c->ring, &c->repl);
  if (rc != CHORUS_OK)
    return rc;
  /* Replication first: its epoch barrier gates client requests, while
   * replica-side messages are served at once. */
  rc = repl_start(c->repl, now, wall, &c->rfx);
  if (rc != CHORUS_OK)
    return rc;
  c->started = true;
  c->gc_at = now + gc_interval(c);
  /* The anti-entropy tree's first rebuild step (all of it for a small
   * store); the rest at its own pace (core_aae.c). */
  if ((rc = core__aae_step(c)) != CHORUS_OK)
    return rc;
  if (c->cfg.metadata) {
    rc = core__meta_start(c);
    if (rc != CHORUS_OK)
      return rc;
  }
  if (!c->cfg.gossip)
    return CHORUS_OK;
  swim_enter(c, now, wall);
  return swim_exit(c, swim_start(c->swim, now));
}

int core_add_member(struct core *c, chorus_node_id id,
                    const struct swim_meta *meta, chorus_ms now,
                    chorus_ms wall) {
  if (!c->started)
    return CHORUS_EINVAL;
  swim_enter(c, now, wall);
  return finish(c, swim_exit(c, swim_add_member(c->swim, id, meta, 0, now)));
}

/* join_now: one join round through the remembered seeds. */
static int join_now(struct core *c, chorus_ms now, chorus_ms wall) {
  const char *seeds[SWIM_MAX_SEEDS];
  for (size_t i = 0; i < c->nseeds; i++)
    seeds[i] = c->seeds[i];
  c->join_at = now + CORE_JOIN_RETRY_MS;
  swim_enter(c, now, wall);
  int rc = swim_exit(c, swim_join(c->swim, seeds, c->nseeds, now, wall));
  TRACE(c, "join through %zu seeds: %s", c->nseeds, chorus_errname(rc));
  return rc;
}

int core_join(struct core *c, const char *const *seeds, size_t n, chorus_ms now,
              chorus_ms wall) {
  if (!c->started || n > SWIM_MAX_SEEDS)
    return CHORUS_EINVAL;
  c->now = now;
  c->wall = wall;
  if (!c->cfg.gossip || n == 0)
    return c->meta != NULL ? finish(c, core__meta_join(c)) : CHORUS_OK;
  for (size_t i = 0; i < n; i++) {
    if (strlen(seeds[i]) >= SWIM_ADDR_MAX)
      return CHORUS_EINVAL;
    snprintf(c->seeds[i], sizeof c->seeds[i], "%s", seeds[i]);
  }
  c->nseeds = n;
  int rc = CHORUS_OK;
  if (c->meta != NULL)
    rc = core__meta_join(c);
  if (rc == CHORUS_OK)
    rc = join_now(c, now, wall);
  return finish(c, rc);
}

int core_found(struct core *c, const char *const *addrs, size_t n,
               chorus_ms now, chorus_ms wall) {
  if (c->meta == NULL || n > SWIM_MAX_SEEDS)
    return CHORUS_EINVAL;
  c->now = now;
  c->wall = wall;
  return finish(c, core__meta_found(c, addrs, n));
}

int core_leave(struct core *c, chorus_ms now, chorus_ms wall) {
  if (c->leaving)
    return CHORUS_OK;
  c->leaving = true;
  c->join_at = CORE_NEVER;
  TRACE(c, "leaving: client requests refused from now on");
  if (!c->cfg.gossip || !c->started)
    return CHORUS_OK;
  swim_enter(c, now, wall);
  return finish(c, swim_exit(c, swim_leave(c->swim, now, wall)));
}

/* ========================================================================
 * Events
 * ======================================================================== */

int core_gossip(struct core *c, const void *data, size_t len, chorus_ms now,
                chorus_ms wall) {
  if (!c->cfg.gossip || !c->started)
    return CHORUS_OK;
  swim_enter(c, now, wall);
  int rc = swim_handle_packet(c->swim, data, len, now, wall);
  if (rc == CHORUS_ENOMEM) {
    /* Only this packet is lost: gossip tolerates loss (SWIM §4). */
    TRACE(c, "gossip packet of %zu bytes dropped: out of memory", len);
    rc = CHORUS_OK;
  }
  return finish(c, swim_exit(c, rc));
}

/* sync_restoring: replication learns whether this node's store lacks its
 * ranges (a replaced disk) before it serves anything. */
static void sync_restoring(struct core *c) {
  if (c->repl != NULL && c->meta != NULL)
    repl_set_restoring(c->repl, meta_node_restoring(c->meta));
}

/* evicted_peer: whether @from is a member this node's metadata holds LEFT
 * or REMOVED: a node that came back after it was taken out (with its old
 * disk, its log short of that) and serves its old ring. */
static bool evicted_peer(const struct core *c, chorus_node_id from) {
  if (c->meta == NULL || from == 0)
    return false;
  const struct meta_member *m = meta_state_find(meta_node_state(c->meta), from);
  return m != NULL && (m->state == META_LEFT || m->state == META_REMOVED);
}

/* answer_evicted: a left or removed node's request: what it asks for, it
 * must not serve (a read, a stream, a request it forwards is refused
 * EREMOVED); what it sends (writes, hints) is data and is taken. At most
 * once a second it is also told outright (an ERROR with request id 0),
 * whatever it sent. Returns true when @m was answered here. */
static bool answer_evicted(struct core *c, chorus_node_id from,
                           const struct wire_msg *m, int *rc) {
  static const char text[] = "this node was taken out of the cluster (left "
                             "or removed): it must not serve";
  struct wire_msg e;
  *rc = CHORUS_OK;
  if (c->now >= c->told_evicted_at) {
    c->told_evicted_at = c->now + 1000;
    TRACE(c, "%016" PRIx64 " is left or removed yet talks to us: told so",
          from);
    wire_error_reply(&e, 0, CHORUS_EREMOVED, text);
    *rc = c->fx.send(c->fx.ctx, from, &e);
  }
  bool refuse = m->type == WIRE_REPLICA_READ || m->type == WIRE_STREAM_PULL ||
                core_client_request(m->type); /* forwarded to us */
  if (refuse && *rc == CHORUS_OK) {
    wire_error_reply(&e, m->request_id, CHORUS_EREMOVED, text);
    *rc = c->fx.send(c->fx.ctx, from, &e);
  }
  return refuse;
}

int core_peer(struct core *c, chorus_node_id from, const struct wire_msg *m,
              chorus_ms now, chorus_ms wall) {
  assert(m->type != WIRE_GOSSIP);
  c->now = now;
  c->wall = wall;
  sync_restoring(c);
  if (m->type == WIRE_ERROR && m->request_id == 0 &&
      m->error.code == CHORUS_EREMOVED && !evicted_peer(c, from)) {
    if (!c->evicted)
      TRACE(c,
            "%016" PRIx64 " says this node was taken out of the cluster: "
            "it serves nothing from now on",
            from);
    c->evicted = true;
    return CHORUS_OK;
  }
  int rc;
  if (evicted_peer(c, from) && (answer_evicted(c, from, m, &rc) ||
                                rc != CHORUS_OK || m->type == WIRE_META))
    return finish(c, rc); /* its Raft messages included: it is out */
  if (m->type == WIRE_META)
    return c->meta != NULL && from != 0 ? finish(c, core__meta_peer(c, from, m))
                                        : CHORUS_OK;
  if (core__stream_owns(c, from, m))
    return finish(c, core__stream_answer(c, from, m));
  if (m->type == WIRE_STREAM_CHUNK || m->type == WIRE_STREAM_CHUNK2)
    return CHORUS_OK; /* late, or meant for a pull given up */
  /* A client request a peer forwarded to a node that is shutting down or
   * was taken out of the cluster is answered ESTALE at once: nothing was
   * done here, and the forwarder routes it again (repl_op.c, FORWARD)
   * instead of waiting out its timeout (node_change saw a write wait 10 s
   * on a decommissioned node stopped with SIGTERM). */
  if (from != 0 && core_client_request(m->type) && (c->leaving || c->evicted)) {
    struct wire_msg e;
    wire_error_reply(&e, m->request_id, CHORUS_ESTALE,
                     c->leaving ? "this node is shutting down: nothing done "
                                  "here"
                                : "this node was taken out of the cluster: "
                                  "nothing done here");
    return finish(c, c->fx.send(c->fx.ctx, from, &e));
  }
  /* A leaving node takes no new replica work: its peers hint for it. Nor
   * does an impostor (meta_node_conflict). */
  if (c->repl == NULL || c->leaving || from == 0 ||
      (c->meta != NULL && meta_node_conflict(c->meta)))
    return CHORUS_OK;
  /* Taken out of the cluster: it serves no request, but the answers to
   * its own (its hints' replays: data the members may lack) still count. */
  if (c->evicted &&
      (m->type == WIRE_REPLICA_READ || m->type == WIRE_REPLICA_WRITE ||
       m->type == WIRE_REPLICA_WRITE2 || m->type == WIRE_REPLICA_FORWARD ||
       m->type == WIRE_HINT_DELIVER || m->type == WIRE_STREAM_PULL ||
       m->type == WIRE_PAXOS_PREPARE || m->type == WIRE_PAXOS_PROPOSE ||
       m->type == WIRE_PAXOS_COMMIT))
    return CHORUS_OK;
  return finish(c, repl_peer(c->repl, from, m, now, wall, &c->rfx));
}

bool core_client_request(uint8_t type) {
  switch (type) {
  case WIRE_GET:
  case WIRE_PUT:
  case WIRE_PUT_TTL:
  case WIRE_DELETE:
  case WIRE_COUNTER_ADD:
  case WIRE_COUNTER_READ:
  case WIRE_SET_ADD:
  case WIRE_SET_REMOVE:
  case WIRE_SET_READ:
  case WIRE_LWW_SET:
  case WIRE_LWW_DELETE:
  case WIRE_LWW_READ:
  case WIRE_MAP_UPDATE:
  case WIRE_MAP_READ:
  case WIRE_CAS:
  case WIRE_LOCK:
  case WIRE_CLUSTER_QUERY:
  case WIRE_CLUSTER_REMOVE:
  case WIRE_CLUSTER_DECOMMISSION:
  case WIRE_CLUSTER_REPLACE:
  case WIRE_CLUSTER_PLAN:
  case WIRE_CLUSTER_STAGE:
  case WIRE_KEYSPACE:
  case WIRE_USER:
  case WIRE_CLUSTER_KEY:
    return true;
  default:
    return false;
  }
}

int core__refuse(struct core *c, uint64_t cookie, int code, const char *text) {
  struct wire_msg e;
  wire_error_reply(&e, 0, code, text);
  return c->fx.reply(c->fx.ctx, cookie, &e, false);
}

bool core__may(struct core *c, uint64_t cookie, struct core_need need,
               uint32_t ks_id, const char *ks_name) {
  if (c->req_user == NULL)
    return true;
  char text[WIRE_MAX_ERROR_TEXT];
  if (c->meta != NULL &&
      core_user_may(meta_node_state(c->meta), c->req_user, need.role, need.verb,
                    ks_id, ks_name, text, sizeof text))
    return true;
  if (c->meta == NULL)
    snprintf(text, sizeof text, "this node keeps no users");
  TRACE(c, "refused: %s", text);
  (void)core__refuse(c, cookie, CHORUS_EPERM, text);
  return false;
}

int core_client_as(struct core *c, const struct wire_msg *m, uint64_t cookie,
                   const char *user, chorus_ms now, chorus_ms wall) {
  c->req_user = user;
  int rc = core_client(c, m, cookie, now, wall);
  c->req_user = NULL;
  return rc;
}

int core_client(struct core *c, const struct wire_msg *m, uint64_t cookie,
                chorus_ms now, chorus_ms wall) {
  if (!core_client_request(m->type)) {
    char text[96];
    snprintf(text, sizeof text, "%s is not a client request",
             wire_type_name(m->type));
    return core__refuse(c, cookie, CHORUS_EPERM, text);
  }
  if (c->leaving || c->repl == NULL)
    return core__refuse(c, cookie, CHORUS_EUNAVAILABLE,
                        c->leaving ? "node shutting down" : "node starting");
  if (c->evicted && m->type != WIRE_CLUSTER_QUERY)
    return core__refuse(
        c, cookie, CHORUS_EREMOVED,
        "this node was taken out of the cluster (left or removed): "
        "it does not serve");
  if (c->meta != NULL && meta_node_conflict(c->meta) &&
      m->type != WIRE_CLUSTER_QUERY)
    return core__refuse(c, cookie, CHORUS_EEXIST,
                        "this node's name belongs to another member of the "
                        "cluster; it does not serve");
  c->now = now;
  c->wall = wall;
  if (m->type == WIRE_CLUSTER_QUERY || m->type == WIRE_CLUSTER_REMOVE ||
      m->type == WIRE_CLUSTER_DECOMMISSION || m->type == WIRE_CLUSTER_REPLACE ||
      m->type == WIRE_CLUSTER_PLAN || m->type == WIRE_CLUSTER_STAGE ||
      m->type == WIRE_KEYSPACE || m->type == WIRE_USER ||
      m->type == WIRE_CLUSTER_KEY) {
    if (c->meta == NULL)
      return core__refuse(c, cookie, CHORUS_ENOTSUP,
                          "this node keeps no cluster metadata");
    struct core_need need = core_role_of(m);
    uint32_t ks_id = 0;
    char ks[META_KEYSPACE_NAME_MAX] = "";
    if (need.keyspace && c->req_user != NULL) {
      /* KEYSPACE ALTER, DROP: admin of that keyspace will do; an unknown
       * name needs admin on every keyspace (then ENOTFOUND), and is
       * refused as a known one would be, so its absence does not leak. */
      size_t nl = m->keyspace.name.len < sizeof ks ? m->keyspace.name.len : 0;
      if (nl > 0)
        memcpy(ks, m->keyspace.name.ptr, nl);
      ks[nl] = '\0';
      const struct meta_keyspace *k =
          meta_state_keyspace(meta_node_state(c->meta), ks);
      ks_id = k != NULL ? k->id : UINT32_MAX;
    }
    if (!core__may(c, cookie, need, ks_id, ks))
      return CHORUS_OK;
    return finish(c, core__meta_client(c, m, cookie));
  }
  sync_restoring(c);
  struct repl_origin o = {.from_peer = false, .cookie = cookie};
  return finish(c, core__ks_request(c, m, &o, now, wall));
}

int core_tick(struct core *c, chorus_ms now, chorus_ms wall) {
  c->now = now;
  c->wall = wall;
  int rc = CHORUS_OK;
  struct core__timer t;
  /* A timer armed with no delay by the one firing is due too. */
  while (rc == CHORUS_OK && c->repl != NULL &&
         core__timers_pop_due(&c->timers, now, &t))
    rc = repl_timer(c->repl, t.id, now, wall, &c->rfx);
  if (rc == CHORUS_OK && c->cfg.gossip && c->started &&
      swim_next_deadline(c->swim) <= now) {
    swim_enter(c, now, wall);
    rc = swim_exit(c, swim_tick(c->swim, now, wall));
  }
  if (rc == CHORUS_OK && c->meta != NULL)
    rc = core__meta_tick(c);
  if (rc == CHORUS_OK && c->meta != NULL)
    rc = core__keys_tick(c);
  if (rc == CHORUS_OK && c->meta != NULL && core__stream_deadline(c) <= now)
    rc = core__stream_step(c);
  if (rc == CHORUS_OK && c->gc_at <= now)
    rc = gc_step(c, wall);
  if (rc == CHORUS_OK && core__aae_deadline(c) <= now)
    rc = core__aae_step(c);
  if (rc == CHORUS_OK && c->join_at <= now) {
    if (swim_member_count(c->swim) > 1 || c->leaving)
      c->join_at = CORE_NEVER; /* joined: someone answered */
    else
      rc = join_now(c, now, wall);
  }
  return finish(c, rc);
}

chorus_ms core_next_deadline(const struct core *c) {
  chorus_ms d = core__timers_next(&c->timers);
  if (c->cfg.gossip && c->started) {
    chorus_ms s = swim_next_deadline(c->swim);
    if (s < d)
      d = s;
  }
  if (c->meta != NULL) {
    chorus_ms m = core__meta_deadline(c);
    if (m < d)
      d = m;
    m = core__stream_deadline(c);
    if (m < d)
      d = m;
    if (!c->keys.reporting && c->keys.retry_at != 0 && c->keys.retry_at < d)
      d = c->keys.retry_at; /* a KEY_APPLIED to try again */
  }
  if (c->gc_at < d)
    d = c->gc_at;
  chorus_ms a = core__aae_deadline(c);
  if (a < d)
    d = a;
  return c->join_at < d ? c->join_at : d;
}

int core_flush(struct core *c, chorus_ms now, chorus_ms wall) {
  if (c->repl == NULL)
    return CHORUS_OK;
  c->now = now;
  c->wall = wall;
  return finish(c, repl_flush(c->repl, now, wall, &c->rfx));
}

int core_sync_done(struct core *c, uint64_t token, int status, chorus_ms now,
                   chorus_ms wall) {
  c->now = now;
  c->wall = wall;
  if (token & META_SYNC_TOKEN_BIT)
    return c->meta != NULL ? finish(c, core__meta_sync_done(c, token, status))
                           : CHORUS_OK;
  if (token == CORE_STREAM_BIT)
    return finish(c, core__stream_synced(c, status));
  if (c->repl == NULL)
    return CHORUS_OK;
  return finish(c, repl_sync_done(c->repl, token, status, now, wall, &c->rfx));
}

/* ========================================================================
 * Observation
 * ======================================================================== */

const struct swim *core_swim(const struct core *c) {
  return c->swim;
}
bool core_evicted(const struct core *c) {
  return c->evicted;
}

const struct meta_node *core_meta(const struct core *c) {
  return c->meta;
}
const struct repl *core_repl(const struct core *c) {
  return c->repl;
}
const struct ring_snapshot *core_ring(const struct core *c) {
  return c->ring;
}
bool core_failed(const struct core *c) {
  return c->repl != NULL && repl_failed(c->repl);
}
bool core_leaving(const struct core *c) {
  return c->leaving;
}
