/* repl.c: one node's replication instance (repl.h): its lifecycle, the
 * event entry points, which only route an event to the role that serves
 * it or to the operation it names, and the peer table. */
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_prng.h"
#include "chorus_search.h"
#include "repl_int.h"

#define META_EPOCH "repl/epoch"

void repl_config_defaults(struct repl_config *cfg, chorus_node_id self) {
  memset(cfg, 0, sizeof *cfg);
  cfg->self = self;
  cfg->r = WIRE_QUORUM;
  cfg->w = WIRE_QUORUM;
  cfg->timeout_ms = 2000;
  cfg->lock_skew_ms = REPL_LOCK_SKEW_DEFAULT;
  cfg->read_repair = WIRE_RR_ASYNC;
  cfg->max_value_bytes = WIRE_MAX_VALUE;
  cfg->hint_max_bytes = 64ull * 1024 * 1024;
  cfg->hint_max_age_ms = 3ull * 3600 * 1000;
  cfg->hint_interval = 1000;
  cfg->hint_batch = 16;
  cfg->fallbacks = 3;
  cfg->max_object_bytes = REPL_MAX_OBJECT_DEFAULT;
  cfg->max_clock_ahead_ms = REPL_MAX_CLOCK_AHEAD_DEFAULT;
}

/* ------------------------------------------------------------------------
 * Peers
 * ------------------------------------------------------------------------ */

struct repl_peer_state *repl__peer_get(struct repl *r, chorus_node_id id,
                                       bool create) {
  size_t lo = chorus_id_lower_bound(r->peers, r->npeers, sizeof r->peers[0],
                                    offsetof(struct repl_peer_state, id), id);
  if (lo < r->npeers && r->peers[lo].id == id)
    return &r->peers[lo];
  if (!create)
    return NULL;
  if (r->npeers == r->cappeers) {
    uint32_t ncap = r->cappeers ? r->cappeers * 2 : 16;
    struct repl_peer_state *p = chorus_realloc(r->peers, ncap * sizeof *p);
    if (p == NULL)
      return NULL;
    r->peers = p;
    r->cappeers = ncap;
  }
  assert(r->npeers < r->cappeers);
  memmove(&r->peers[lo + 1], &r->peers[lo],
          (r->npeers - lo) * sizeof *r->peers);
  r->peers[lo] = (struct repl_peer_state){.id = id};
  r->npeers++;
  return &r->peers[lo];
}

bool repl__peer_alive(struct repl *r, chorus_node_id id) {
  if (id == r->cfg.self)
    return true;
  struct repl_peer_state *p = repl__peer_get(r, id, false);
  return p == NULL || !p->down;
}

/* ------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------ */

static void refresh_stats(struct repl *r) {
  repl__hints_stats(&r->hints, &r->stats);
  uint64_t keys = 0;
  for (unsigned c = 0; c < r->ntrees; c++)
    keys += r->trees[c].keys;
  r->stats.aae_tree_keys = keys;
}

int repl_new(const struct repl_config *cfg, struct store *store,
             const struct ring_snapshot *ring, struct repl **out) {
  if (cfg == NULL || store == NULL || ring == NULL || out == NULL ||
      cfg->max_object_bytes > REPL_MAX_OBJECT_LIMIT)
    return CHORUS_EINVAL;
  struct repl *r = chorus_calloc(1, sizeof *r);
  if (r == NULL)
    return CHORUS_ENOMEM;
  r->cfg = *cfg;
  if (r->cfg.timeout_ms == 0)
    r->cfg.timeout_ms = 2000;
  if (r->cfg.hint_interval == 0)
    r->cfg.hint_interval = 1000;
  if (r->cfg.hint_batch == 0)
    r->cfg.hint_batch = 16;
  if (r->cfg.max_object_bytes == 0)
    r->cfg.max_object_bytes = REPL_MAX_OBJECT_DEFAULT;
  if (r->cfg.read_repair == WIRE_RR_DEFAULT)
    r->cfg.read_repair = WIRE_RR_ASYNC;
  if (r->cfg.max_clock_ahead_ms == 0)
    r->cfg.max_clock_ahead_ms = REPL_MAX_CLOCK_AHEAD_DEFAULT;
  r->store = store;
  hlc_init(&r->hlc, r->cfg.max_clock_ahead_ms);
  r->hlc.tracer = r->cfg.tracer;
  /* Class 0's tree; the others' as the ring has classes (rebuild). */
  int rc = aae_tree_init(&r->trees[0],
                         cfg->aae_bits ? cfg->aae_bits : AAE_TREE_BITS_DEFAULT);
  if (rc != CHORUS_OK) {
    chorus_free(r);
    return rc;
  }
  r->ntrees = 1;
  repl__hints_init(&r->hints,
                   cfg->hint_max_bytes ? cfg->hint_max_bytes : UINT64_MAX);
  repl_set_ring(r, ring);
  *out = r;
  return CHORUS_OK;
}

void repl_free(struct repl *r) {
  if (r == NULL)
    return;
  repl__ops_free(r);
  repl__stream_reads_close(r, 0, true);
  repl__cleanup_free(r);
  for (uint32_t i = 0; i < r->npeers; i++) {
    chorus_free(r->peers[i].cursor);
    chorus_free(r->peers[i].mcursor);
  }
  chorus_free(r->peers);
  repl__hints_free(&r->hints);
  chorus_free(r->gc.after);
  repl__aae_free(r);
  chorus_free(r->deferred);
  chorus_free(r);
}

void repl_set_restoring(struct repl *r, bool restoring) {
  if (restoring != r->restoring)
    REPL_TRACE(r, "%s",
               restoring ? "restoring: no replica reads nor streams served "
                           "until this node's ranges are streamed back"
                         : "restored: serving replica reads again");
  r->restoring = restoring;
}

void repl_set_ring(struct repl *r, const struct ring_snapshot *ring) {
  r->ring = ring;
  repl__cleanup_note_ring(r);
  /* A scan under way judges the new ring's classes afresh
   * (repl_cleanup.c, CLASSES). */
  r->cleanup.checked = false;
  r->local_group =
      repl__group_of_dc(ring_snapshot_replication(ring), r->cfg.dc);
  repl__aae_ring_set(r);
}

/* arm_hint_round: the hint round's timer, once: it re-arms itself. */
static int arm_hint_round(struct repl *r, const struct repl_effects *fx) {
  if (r->hint_round)
    return CHORUS_OK;
  r->hint_round = true;
  return fx->timer(fx->ctx, REPL_TIMER_HINTS << REPL_TIMER_KIND_SHIFT,
                   r->cfg.hint_interval);
}

/* write_epoch: writes the epoch and asks for its barrier (the EPOCH
 * operation); a full store is no error: the epoch stays volatile and the
 * next hint round tries again. Errors: other store errors, ENOMEM. */
static int write_epoch(struct repl *r, const struct repl_effects *fx) {
  assert(!r->ready && !r->epoch_syncing);
  unsigned char e[16];
  store_be64_put(e, r->epoch);
  store_be64_put(e + 8, r->disk_id);
  chorus_seq seq;
  int rc = store_put(r->store, STORE_META, META_EPOCH, strlen(META_EPOCH), e,
                     r->disk_id != 0 ? 16 : 8, &seq);
  if (rc == CHORUS_ENOSPC) {
    REPL_TRACE(r, "epoch %" PRIu64 " not written: %s", r->epoch,
               store_errmsg(r->store));
    return repl__epoch_lost(r, fx);
  }
  if (rc != CHORUS_OK)
    return rc;
  struct repl_op *op = repl__op_new(r, REPL_OP_EPOCH);
  if (op == NULL)
    return CHORUS_ENOMEM;
  r->epoch_syncing = true;
  return fx->sync(fx->ctx, seq, op->id);
}

int repl_start(struct repl *r, chorus_ms now, chorus_ms wall,
               const struct repl_effects *fx) {
  repl__tick(r, now, wall);
  assert(!r->ready && r->epoch == 0 && "repl_start runs once per instance");
  void *buf;
  size_t len;
  int rc = store_get(r->store, STORE_META, META_EPOCH, strlen(META_EPOCH), &buf,
                     &len);
  if (rc == CHORUS_OK) {
    r->epoch = len == 8 || len == 16 ? store_be64_get(buf) : 0;
    r->disk_id = len == 16 ? store_be64_get((const uint8_t *)buf + 8) : 0;
    chorus_free(buf);
  } else if (rc == CHORUS_ENOTFOUND) {
    /* An empty store: a new disk (a new node, or a replaced one). */
    struct chorus_prng p;
    chorus_prng_seed(&p, r->cfg.seed ^ r->cfg.self ^ (uint64_t)wall ^
                             ((uint64_t)now << 32));
    while (r->disk_id == 0)
      r->disk_id = chorus_prng_next(&p);
  } else {
    return rc;
  }
  r->epoch++;
  if (r->epoch >= (1ull << (REPL_TIMER_KIND_SHIFT - REPL_OP_COUNTER_BITS)))
    return CHORUS_ERANGE;
  if ((rc = repl__hints_load(&r->hints, r->store)) != CHORUS_OK)
    return rc;
  r->store_reopens = store_disk_info(r->store)->generation;
  REPL_TRACE(r, "start: epoch %" PRIu64 ", %" PRIu64 " hints kept", r->epoch,
             repl__hints_total(&r->hints, NULL));
  refresh_stats(r);
  return write_epoch(r, fx);
}

int repl__epoch_lost(struct repl *r, const struct repl_effects *fx) {
  assert(!r->ready);
  r->epoch_syncing = false;
  if (r->epoch_volatile)
    return CHORUS_OK;
  r->epoch_volatile = true;
  /* A later incarnation may start from the same epoch (this one is not
   * durable), so this one's operation ids must not be the ones that one
   * will use from counter 1: an answer meant for one must never match the
   * other. Ours go on from a random point in the upper half of the
   * counter's range (never reached from 1 in practice). Until now no id
   * has left the node: requests are refused before the epoch is durable. */
  struct chorus_prng p;
  chorus_prng_seed(&p, r->cfg.seed ^ r->epoch);
  uint64_t half = 1ull << (REPL_OP_COUNTER_BITS - 1);
  uint64_t from = half + chorus_prng_below(&p, half / 2);
  if (r->next_op < from)
    r->next_op = from;
  REPL_TRACE(r,
             "epoch %" PRIu64 " volatile: reads served, writes refused "
             "until it is durable",
             r->epoch);
  /* The hint round retries the epoch (repl_timer). */
  return arm_hint_round(r, fx);
}

int repl__epoch_ready(struct repl *r, const struct repl_effects *fx) {
  assert(!r->ready && r->epoch > 0);
  unsigned char b[24];
  store_be64_put(b, r->cfg.self);
  store_be64_put(b + 8, r->epoch);
  store_be64_put(b + 16, r->disk_id);
  r->actor = ring_token_of(b, r->disk_id != 0 ? 24 : 16);
  if (r->actor == 0)
    r->actor = 1;
  r->ready = true;
  r->epoch_syncing = false;
  r->epoch_volatile = false;
  REPL_TRACE(r, "ready: actor %016" PRIx64, r->actor);
  return arm_hint_round(r, fx);
}

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

int repl_client(struct repl *r, const struct wire_msg *m,
                const struct repl_origin *origin, chorus_ms now, chorus_ms wall,
                const struct repl_effects *fx) {
  repl__tick(r, now, wall);
  r->stats.requests++;
  int rc = repl__coordinate(r, m, origin, wall, fx);
  refresh_stats(r);
  return rc;
}

/* sole_holder: whether no other node of this node's ring is a natural
 * replica of anything (normal or leaving). A restoring node that is then
 * asked for a range is the only place its data can be, partial as it is:
 * refused, the puller (a node joining while this one's disk was lost) has
 * nobody else to ask, and this node's REPLACE waits for that join to
 * finish (one change at a time): neither would ever move (change_sim,
 * "shrink while forming 3->5->3" seed 82: the first member lost its disk
 * while the second joined). */
static bool sole_holder(const struct repl *r) {
  if (r->ring == NULL)
    return false; /* no ring yet: nothing known, nothing served */
  size_t n = ring_snapshot_node_count(r->ring);
  for (size_t i = 0; i < n; i++) {
    const struct ring_node *x = ring_snapshot_node(r->ring, i);
    if (x->id != r->cfg.self &&
        (x->state == RING_NORMAL || x->state == RING_LEAVING))
      return false;
  }
  return true;
}

/* pull_class_plist: the natural replicas of STREAM_PULL @m's first
 * token in the pull's class of this node's ring; false when the ring
 * does not know the class or lists none. */
static bool pull_class_plist(const struct repl *r, const struct wire_msg *m,
                             struct ring_plist *pl) {
  int cls = ring_snapshot_class_find(r->ring, m->stream_pull.class_tag);
  return cls >= 0 && ring_lookup(ring_snapshot_class(r->ring, (unsigned)cls),
                                 m->stream_pull.first, 0, pl) == CHORUS_OK;
}

/* keeper_pulls: whether @m, a STREAM_PULL from @from, is a decommission's
 * kept range (meta_state.c kept_moves): this node leaves, and @from is
 * already a natural replica of the range it asks for, in the pull's
 * class. What this node
 * holds, partial as a lost disk leaves it, then only adds to what @from
 * has, and nobody else can give it: refused, the keeper (the only other
 * replica: below N) finds no live replica to ask and waits for this node
 * forever, while this node's REPLACE lost the race to its decommission
 * and will not come (change_sim, "shrink while forming 3->5->3" seeds 431
 * and 863: the last two owners, one of which lost its disk, then left). A
 * node that gains the range is no replica of it yet: it is still refused,
 * and pulls from the other replicas. */
static bool keeper_pulls(const struct repl *r, chorus_node_id from,
                         const struct wire_msg *m) {
  if (r->ring == NULL || m->type != WIRE_STREAM_PULL)
    return false;
  long self = ring_snapshot_find(r->ring, r->cfg.self);
  if (self < 0 ||
      ring_snapshot_node(r->ring, (size_t)self)->state != RING_LEAVING)
    return false;
  /* In the pull's class (ring.h, replication classes): a keyspace's own
   * replication keeps its ranges on other nodes than the cluster's. A
   * class this ring does not know is no keeper's: refused below. */
  struct ring_plist pl;
  if (!pull_class_plist(r, m, &pl))
    return false;
  for (unsigned i = 0; i < pl.n_natural; i++)
    if (pl.r[i].id == from)
      return true;
  return false;
}

/* sole_class_replica: whether @m is a STREAM_PULL of a range this node
 * is the only natural replica of in the pull's class (ring.h, replication
 * classes): a keyspace replicated once keeps its keys on one node, and
 * when that node lost its disk what it holds since is all there is. The
 * puller's fallback has no other replica of the class to ask and asks it
 * again; refused, a change that moves such a range never finished
 * (change_sim "join 3->5" with a keyspace of N=1, seed 78: n3 lost its
 * disk while n4 joined, n0 was refused 372 times for 60 s past the
 * heal). */
static bool sole_class_replica(const struct repl *r, const struct wire_msg *m) {
  struct ring_plist pl;
  if (r->ring == NULL || m->type != WIRE_STREAM_PULL ||
      !pull_class_plist(r, m, &pl))
    return false;
  bool self = false;
  for (unsigned i = 0; i < pl.n_natural; i++) {
    if (pl.r[i].id != r->cfg.self)
      return false;
    self = true;
  }
  return self;
}

/* ahead_pull: whether @m is a STREAM_PULL at an epoch this node has not
 * reached. repl__on_stream_pull answers it ESTALE (the puller asks again
 * shortly), restoring or not: a restoring node behind the puller cannot
 * tell whether it is restoring still at the puller's epoch, and its
 * refusal as restoring makes the puller take it for lost for every range
 * it gives up in the change (core_stream.c, lost_from), pulled instead
 * from the other replicas in turn. change_sim "join 2 dcs" seed 57: the
 * FINISH of n5's REPLACE (epoch 9) was followed at once by n3's JOIN
 * (epoch 10); n3 applied both 4 ms before n5 did, n5's refusal as
 * restoring sent n3 to the fallback for all of n5's ranges across the
 * WAN, where n5, in n3's datacenter, would have served them a moment
 * later, and the founding did not finish within 60 s of the heal. */
static bool ahead_pull(const struct repl *r, const struct wire_msg *m) {
  return m->type == WIRE_STREAM_PULL && r->ring != NULL &&
         ring_snapshot_version(r->ring) < m->stream_pull.epoch;
}

int repl_peer(struct repl *r, chorus_node_id from, const struct wire_msg *m,
              chorus_ms now, chorus_ms wall, const struct repl_effects *fx) {
  repl__tick(r, now, wall);
  int rc = CHORUS_OK;
  struct repl_request q;
  switch (m->type) {
  case WIRE_REPLICA_WRITE:
  case WIRE_REPLICA_WRITE2:
    rc = repl__on_replica_write(r, from, m, wall, fx);
    break;
  case WIRE_REPLICA_FORWARD:
    rc = repl__on_replica_forward(r, from, m, wall, fx);
    break;
  case WIRE_REPLICA_READ:
  case WIRE_STREAM_PULL:
    if (r->restoring && (m->type == WIRE_REPLICA_READ ||
                         (!sole_holder(r) && !sole_class_replica(r, m) &&
                          !keeper_pulls(r, from, m) && !ahead_pull(r, m)))) {
      struct wire_msg e;
      wire_error_reply(&e, m->request_id, CHORUS_EUNAVAILABLE,
                       "this node is restoring its data (a replaced disk)");
      rc = fx->send(fx->ctx, from, &e);
    } else if (m->type == WIRE_REPLICA_READ) {
      rc = repl__on_replica_read(r, from, m, fx);
    } else {
      rc = repl__on_stream_pull(r, from, m, now, fx);
    }
    break;
  case WIRE_HINT_DELIVER:
    rc = repl__on_hint_deliver(r, from, m, wall, fx);
    break;
  case WIRE_PAXOS_PREPARE:
  case WIRE_PAXOS_PROPOSE:
  case WIRE_PAXOS_COMMIT:
    rc = repl__on_paxos(r, from, m, fx);
    break;
  case WIRE_AAE_TREE_REQ:
    rc = repl__aae_on_tree_req(r, from, m, fx);
    break;
  case WIRE_AAE_KEYS_REQ:
    rc = repl__aae_on_keys_req(r, from, m, fx);
    break;
  default:
    if (repl__aae_answer(r, from, m, now, wall, fx, &rc))
      break;
    if (repl__request_of(m, &q)) {
      /* Forwarded to us: answered under the forwarder's request id. */
      struct repl_origin origin = {true, from, m->request_id};
      r->stats.requests++;
      rc = repl__coordinate(r, m, &origin, wall, fx);
    } else {
      /* An answer to one of ours; none when late, or meant for an
       * earlier incarnation. */
      struct repl_op *op = repl__op_find(r, m->request_id & ~REPL_REQ_TRACE);
      const struct repl_op_event ev = {
          .kind = REPL_EV_ANSWER, .from = from, .m = m, .wall = wall};
      if (op != NULL)
        rc = repl__op_step(r, op, &ev, fx);
    }
  }
  refresh_stats(r);
  return rc;
}

int repl_timer(struct repl *r, uint64_t id, chorus_ms now, chorus_ms wall,
               const struct repl_effects *fx) {
  repl__tick(r, now, wall);
  uint64_t kind = id >> REPL_TIMER_KIND_SHIFT;
  int rc = CHORUS_OK;
  if (kind == REPL_TIMER_HINTS) {
    /* A kept stream read pins its snapshot and holds off a reopen; so
     * does a cleanup scan's. */
    repl__stream_reads_close(r, now, r->failed);
    repl__cleanup_read_close(r, now, r->failed);
    uint64_t reopens = store_disk_info(r->store)->generation;
    if (reopens != r->store_reopens) {
      /* A reopen after a full disk may have lost the newest writes, and
       * with them hints the index counts, or deletes it forgot. */
      r->store_reopens = reopens;
      repl__resync_hints(r);
      repl__aae_stale(r);
    }
    if (!r->failed && store_write_allowed(r->store) == CHORUS_OK) {
      rc = repl__hints_flush(&r->hints, r->store, NULL);
      if (rc != CHORUS_OK && rc != CHORUS_ENOMEM) {
        REPL_TRACE(r, "hint deletes not written: %s", chorus_errname(rc));
        rc = CHORUS_OK;
      }
      if (rc == CHORUS_OK && r->epoch_volatile && !r->epoch_syncing &&
          (rc = write_epoch(r, fx)) != CHORUS_OK && rc != CHORUS_ENOMEM) {
        /* Not now; the next round tries again (a failed sync stops). */
        REPL_TRACE(r, "epoch not written: %s", chorus_errname(rc));
        r->failed |= rc == CHORUS_ESYNCFAILED;
        rc = CHORUS_OK;
      }
    }
    if (rc == CHORUS_OK && repl__serving(r) && !r->failed)
      rc = repl__replay(r, 0, wall, fx);
    repl__hints_report(&r->hints, &r->cfg);
    if (rc == CHORUS_OK)
      rc = fx->timer(fx->ctx, REPL_TIMER_HINTS << REPL_TIMER_KIND_SHIFT,
                     r->cfg.hint_interval);
  } else if (kind == REPL_TIMER_OP) {
    struct repl_op *op =
        repl__op_find(r, id & ((1ull << REPL_TIMER_KIND_SHIFT) - 1));
    if (op == NULL)
      return CHORUS_OK; /* it ended before its timeout */
    const struct repl_op_event ev = {.kind = REPL_EV_TIMEOUT};
    rc = repl__op_step(r, op, &ev, fx);
  } else if (kind == REPL_TIMER_AAE) {
    rc = repl__aae_timer(r, id & ((1ull << REPL_TIMER_KIND_SHIFT) - 1), now,
                         wall, fx);
  }
  refresh_stats(r);
  return rc;
}

int repl_sync_done(struct repl *r, uint64_t token, int status, chorus_ms now,
                   chorus_ms wall, const struct repl_effects *fx) {
  repl__tick(r, now, wall);
  int arc;
  if (repl__aae_barrier(r, token, status, now, fx, &arc)) {
    refresh_stats(r);
    return arc;
  }
  struct repl_op *op = repl__op_find(r, token);
  if (op == NULL)
    return CHORUS_OK;
  if (status == CHORUS_ENOSPC) {
    /* The disk filled before these writes reached it: they are not
     * durable and may be lost, but nothing synced is in doubt (store.h):
     * what waited on them fails, the node goes on. */
    REPL_TRACE(r, "sync refused: data folder full; what waited on it fails");
  } else if (status != CHORUS_OK) {
    /* fsyncgate: nothing waiting on this barrier is acknowledged, and the
     * node must stop (store.h). */
    r->failed = true;
    REPL_TRACE(r, "sync failed: %s; acknowledgements stop",
               chorus_errname(status));
  }
  const struct repl_op_event ev = {.kind = REPL_EV_BARRIER, .status = status};
  int rc = repl__op_step(r, op, &ev, fx);
  refresh_stats(r);
  return rc;
}

int repl_member(struct repl *r, chorus_node_id node, bool alive, chorus_ms now,
                chorus_ms wall, const struct repl_effects *fx) {
  repl__tick(r, now, wall);
  if (node == r->cfg.self)
    return CHORUS_OK;
  struct repl_peer_state *p = repl__peer_get(r, node, true);
  if (p == NULL)
    return CHORUS_ENOMEM;
  bool was_down = p->down;
  p->down = !alive;
  p->quiet_until = 0;
  repl__aae_member(r, node, alive);
  if (was_down != p->down)
    REPL_TRACE(r, "%016" PRIx64 " is %s", node, alive ? "alive" : "down");
  int rc = CHORUS_OK;
  if (alive && was_down && repl__serving(r) && !r->failed)
    rc = repl__replay(r, node, wall, fx);
  if (!alive && !was_down && rc == CHORUS_OK)
    rc = repl__forwards_lost(r, node, wall, fx);
  refresh_stats(r);
  return rc;
}

/* ------------------------------------------------------------------------
 * Observation
 * ------------------------------------------------------------------------ */

const struct repl_stats *repl_stats(const struct repl *r) {
  return &r->stats;
}

chorus_node_id repl_actor(const struct repl *r) {
  return r->ready ? r->actor : 0;
}

bool repl_failed(const struct repl *r) {
  return r->failed;
}

bool repl_is_replica(const struct repl *r, const void *key, size_t klen) {
  struct ring_plist pl;
  if (ring_lookup_key(r->ring, key, klen, 0, &pl) != CHORUS_OK)
    return false;
  for (uint8_t i = 0; i < pl.n_natural; i++)
    if (pl.r[i].id == r->cfg.self)
      return true;
  return false;
}

uint64_t repl_hints_for(const struct repl *r, chorus_node_id target) {
  return repl__hints_count(&r->hints, target);
}
