/* node_status.c: the answers to RING_QUERY and STATUS_QUERY (the status
 * names are docs/PROTOCOL.md's, STATUS_REPLY). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "chorus_alloc.h"
#include "node_int.h"

/* ------------------------------------------------------------------------
 * Ring and status answers
 * ------------------------------------------------------------------------ */

static uint8_t wire_state_of(const struct swim_member *m) {
  switch (m->state) {
  case SWIM_ALIVE:
    if (m->meta.ownership == RING_JOINING)
      return WIRE_NODE_JOINING;
    if (m->meta.ownership == RING_LEAVING)
      return WIRE_NODE_LEAVING;
    return WIRE_NODE_UP;
  case SWIM_SUSPECT:
    return WIRE_NODE_SUSPECT;
  default:
    return WIRE_NODE_DOWN;
  }
}

static struct wire_bytes str_bytes(const char *str) {
  return (struct wire_bytes){(const uint8_t *)str, strlen(str)};
}

/* ring_from_meta: the ring's members as the committed metadata lists them
 * (core.h, CLUSTER METADATA), each with SWIM's liveness or its ownership
 * state; @nodes holds meta_node_state()->n. */
static size_t ring_from_meta(struct node *n, const struct meta_state *ms,
                             struct wire_ring_node *nodes) {
  size_t k = 0;
  for (size_t i = 0; i < ms->n; i++) {
    const struct meta_member *m = &ms->members[i];
    if (!meta_member_owns(m->state))
      continue;
    nodes[k].id = m->id;
    nodes[k].addr = str_bytes(m->addr);
    nodes[k].dc = str_bytes(m->dc);
    nodes[k].rack = str_bytes(m->rack);
    nodes[k].name = str_bytes(m->name);
    const struct swim_member *sm = swim_member_find(core_swim(n->core), m->id);
    if (m->state == META_JOINING)
      nodes[k].state = WIRE_NODE_JOINING;
    else if (m->state == META_LEAVING)
      nodes[k].state = WIRE_NODE_LEAVING;
    else if (m->id == n->cfg.id)
      nodes[k].state = WIRE_NODE_UP;
    else
      nodes[k].state = sm != NULL ? wire_state_of(sm) : WIRE_NODE_DOWN;
    k++;
  }
  return k;
}

void node__answer_ring(struct node_conn *c, uint64_t request_id) {
  struct node *n = c->n;
  const struct meta_node *mn = core_meta(n->core);
  size_t count = mn != NULL ? meta_node_state(mn)->n
                            : swim_member_count(core_swim(n->core));
  struct wire_ring_node *nodes =
      chorus_calloc(count ? count : 1, sizeof *nodes);
  if (nodes == NULL) {
    node__conn_send_error(c, request_id, CHORUS_ENOMEM, "out of memory");
    return;
  }
  size_t k = 0;
  if (mn != NULL)
    k = ring_from_meta(n, meta_node_state(mn), nodes);
  for (size_t i = 0; mn == NULL && i < count; i++) {
    const struct swim_member *m = swim_member_at(core_swim(n->core), i);
    if (m->state == SWIM_REMOVED)
      continue;
    nodes[k].id = m->id;
    nodes[k].addr = str_bytes(m->meta.addr);
    nodes[k].dc = str_bytes(m->meta.dc);
    nodes[k].rack = str_bytes(m->meta.rack);
    nodes[k].name = str_bytes(m->id == n->cfg.id ? n->cfg.name : "");
    nodes[k].state = wire_state_of(m);
    k++;
  }
  struct wire_msg r = {.type = WIRE_RING_REPLY2, .request_id = request_id};
  /* The published snapshot's version, read the way any thread would. */
  ring_rcu_read_lock();
  const struct ring_snapshot *s = ring_rcu_get(&n->ring_pub);
  r.ring_reply.epoch = s ? ring_snapshot_version(s) : 0;
  ring_rcu_read_unlock();
  r.ring_reply.vnodes = RING_DEFAULT_VNODES;
  r.ring_reply.nnodes = k;
  r.ring_reply.nodes = nodes;
  (void)node__conn_send(c, &r);
  chorus_free(nodes);
}

struct stat_builder {
  struct wire_stat *items;
  char (*names)[WIRE_MAX_STAT_NAME + 1];
  size_t n, cap;
};

static void stat_add(struct stat_builder *b, int64_t value, const char *fmt,
                     ...) __attribute__((format(printf, 3, 4)));

static void stat_add(struct stat_builder *b, int64_t value, const char *fmt,
                     ...) {
  if (b->n == b->cap)
    return;
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(b->names[b->n], WIRE_MAX_STAT_NAME + 1, fmt, ap);
  va_end(ap);
  if (len <= 0)
    return;
  if (len > (int)WIRE_MAX_STAT_NAME)
    len = WIRE_MAX_STAT_NAME;
  b->items[b->n].name =
      (struct wire_bytes){(const uint8_t *)b->names[b->n], (size_t)len};
  b->items[b->n].value = value;
  b->n++;
}

void node__answer_status(struct node_conn *c, uint64_t request_id) {
  struct node *n = c->n;
  size_t members = swim_member_count(core_swim(n->core));
  struct stat_builder b = {0};
  b.cap = 160 + 4 * members; /* the fixed stats (about 85) and per member */
  b.items = chorus_calloc(b.cap, sizeof *b.items);
  b.names = chorus_calloc(b.cap, sizeof *b.names);
  if (b.items == NULL || b.names == NULL) {
    chorus_free(b.items);
    chorus_free(b.names);
    node__conn_send_error(c, request_id, CHORUS_ENOMEM, "out of memory");
    return;
  }
  const struct repl_stats *rs = repl_stats(core_repl(n->core));
#define RSTAT(f) stat_add(&b, (int64_t)rs->f, "repl." #f)
  RSTAT(requests);
  RSTAT(forwarded);
  RSTAT(dc_forwards);
  RSTAT(dc_forwarded_writes);
  RSTAT(dc_relayed);
  RSTAT(replica_batches);
  RSTAT(replica_batched);
  RSTAT(writes_ok);
  RSTAT(reads_ok);
  RSTAT(unavailable);
  RSTAT(timeouts);
  RSTAT(invalid);
  RSTAT(read_repairs);
  RSTAT(hints_queued);
  RSTAT(hints_replayed);
  RSTAT(hints_dropped);
  RSTAT(hints_dropped_bytes);
  RSTAT(hints_dropped_age);
  RSTAT(hints_moved);
  RSTAT(hints_dropped_not_owner);
  RSTAT(hints_pending);
  RSTAT(hint_bytes);
  RSTAT(tombstones);
  RSTAT(tombstones_purged);
  RSTAT(gc_walks);
  RSTAT(gc_rejoins_skipped);
  RSTAT(aae_started);
  RSTAT(aae_completed);
  RSTAT(aae_aborted);
  RSTAT(aae_segments_differing);
  RSTAT(aae_keys_compared);
  RSTAT(aae_keys_repaired);
  RSTAT(aae_bytes_sent);
  RSTAT(aae_bytes_received);
  RSTAT(aae_rebuilds);
  RSTAT(aae_tree_keys);
#undef RSTAT
  const struct swim_stats *ss = swim_stats(core_swim(n->core));
#define SSTAT(f) stat_add(&b, (int64_t)ss->f, "swim." #f)
  SSTAT(sent);
  SSTAT(received);
  SSTAT(auth_failed);
  SSTAT(malformed);
  SSTAT(probes);
  SSTAT(probe_failed);
  SSTAT(suspicions);
  SSTAT(refutations);
  SSTAT(deaths);
#undef SSTAT
  stat_add(&b, (int64_t)swim_health(core_swim(n->core)), "swim.health");
  stat_add(&b, (int64_t)swim_alive_count(core_swim(n->core)), "members.alive");
  stat_add(&b, (int64_t)members, "members.known");
  {
    uint8_t keys[SWIM_MAX_KEYS][SWIM_KEY_BYTES];
    stat_add(&b, (int64_t)node__keys(n, keys), "swim.keys");
    sodium_memzero(keys, sizeof keys);
    stat_add(&b, (int64_t)core_keyring_version(n->core),
             "swim.keyring_version");
  }
  /* The cluster metadata (core.h, CLUSTER METADATA). */
  const struct meta_node *mn = core_meta(n->core);
  if (mn != NULL) {
    struct meta_node_info mi;
    meta_node_info(mn, &mi);
    const struct meta_state *ms = meta_node_state(mn);
    size_t owning = 0;
    for (size_t i = 0; i < ms->n; i++)
      owning += ms->members[i].state == META_NORMAL;
    stat_add(&b, (int64_t)mi.raft_state, "meta.raft_state");
    stat_add(&b, (int64_t)mi.term, "meta.term");
    stat_add(&b, (int64_t)mi.commit_index, "meta.commit_index");
    stat_add(&b, (int64_t)mi.applied_index, "meta.applied_index");
    stat_add(&b, (int64_t)ms->epoch, "meta.epoch");
    stat_add(&b, (int64_t)ms->n, "meta.members");
    stat_add(&b, (int64_t)owning, "meta.members_normal");
    stat_add(&b, (int64_t)(mi.leader != 0), "meta.leader_known");
    stat_add(&b, (int64_t)mi.proposals, "meta.proposals");
    stat_add(&b, (int64_t)mi.refused, "meta.refused");
    stat_add(&b, (int64_t)mi.foreign, "meta.foreign");
    stat_add(&b, (int64_t)mi.bad_messages, "meta.bad_messages");
    stat_add(&b, (int64_t)mi.store_errors, "meta.store_errors");
    stat_add(&b, (int64_t)mi.revivals, "meta.revivals");
    stat_add(&b, (int64_t)mi.duplicates, "meta.duplicates");
    stat_add(&b, (int64_t)mi.ae_clamped, "meta.ae_clamped");
    stat_add(&b, (int64_t)mi.term_raises, "meta.term_raises");
    /* The streams of a topology change this node pulls (core.h). */
    struct core_stream_info si;
    core_stream_info(n->core, &si);
    stat_add(&b, (int64_t)si.epoch, "stream.epoch");
    stat_add(&b, (int64_t)si.ranges, "stream.ranges");
    stat_add(&b, (int64_t)si.ranges_done, "stream.ranges_done");
    stat_add(&b, (int64_t)si.stats.keys, "stream.keys");
    stat_add(&b, (int64_t)si.stats.bytes, "stream.bytes");
    stat_add(&b, (int64_t)si.stats.batches, "stream.batches");
    stat_add(&b, (int64_t)si.stats.retries, "stream.retries");
    stat_add(&b, (int64_t)si.stats.refused, "stream.refused");
    stat_add(&b, (int64_t)si.stats.bad_batches, "stream.bad_batches");
    stat_add(&b, (int64_t)si.stats.fallbacks, "stream.fallbacks");
    stat_add(&b, (int64_t)si.stats.resumed, "stream.resumed");
    stat_add(&b, (int64_t)si.stats.repairs, "stream.repairs");
    stat_add(&b, (int64_t)si.stats.skipped, "stream.skipped");
    /* Progress of the plan under way (0 without one): the fraction of its
     * token space held, in parts per million, and its age. */
    stat_add(&b, (int64_t)si.active, "stream.active");
    stat_add(&b, si.epoch != 0 ? (int64_t)(si.done * 1e6 + 0.5) : 0,
             "stream.done_ppm");
    stat_add(&b, (int64_t)si.elapsed_ms, "stream.elapsed_ms");
    const struct repl_stats *served = repl_stats(core_repl(n->core));
    stat_add(&b, (int64_t)served->stream_served_keys, "stream.served_keys");
    stat_add(&b, (int64_t)served->stream_served_bytes, "stream.served_bytes");
    stat_add(&b, (int64_t)served->stream_reads_opened, "stream.reads_opened");
    stat_add(&b, (int64_t)served->stream_reads_kept, "stream.reads_kept");
    /* Cleanup after a change (replication/repl.h, CLEANUP). */
    stat_add(&b, (int64_t)si.stats.cleanups, "cleanup.scans");
    stat_add(&b, (int64_t)served->cleanup_deleted, "cleanup.deleted");
    stat_add(&b, (int64_t)served->cleanup_hinted, "cleanup.kept_hinted");
    stat_add(&b, (int64_t)served->cleanup_scanned, "cleanup.scanned");
    stat_add(&b, (int64_t)served->cleanup_reads_opened, "cleanup.reads_opened");
  }
  /* Peers whose clock differs from ours by more than the bound (DESIGN.md
   * §7: a warning in status, never an input to ordering). */
  chorus_node_id skewed[1];
  stat_add(&b, (int64_t)swim_clock_report(core_swim(n->core), -1, skewed, 1),
           "clock.skewed");
  stat_add(&b, (int64_t)n->nconns, "node.connections");
  stat_add(&b, (int64_t)n->nclients, "node.clients");
  stat_add(&b, (int64_t)n->npending, "node.pending_handshakes");
  stat_add(&b, (int64_t)n->stats.accepted, "node.accepted");
  stat_add(&b, (int64_t)n->stats.refused, "node.refused");
  stat_add(&b, (int64_t)n->stats.malformed, "node.malformed");
  stat_add(&b, (int64_t)n->stats.overload, "node.overload");
  stat_add(&b, (int64_t)n->stats.peer_dropped, "node.peer_dropped");
  stat_add(&b, (int64_t)n->stats.peer_requeued, "node.peer_requeued");
  stat_add(&b, (int64_t)n->stats.peer_lost_in_flight,
           "node.peer_lost_in_flight");
  stat_add(&b, (int64_t)n->stats.too_big, "node.too_big");
  stat_add(&b, (int64_t)n->stats.auth_failed, "node.auth_failed");
  stat_add(&b, (int64_t)n->stats.peer_auth_failed, "node.peer_auth_failed");
  stat_add(&b, (int64_t)n->stats.peer_frame_auth_failed,
           "node.peer_frame_auth_failed");
  stat_add(&b, (int64_t)n->stats.logins, "node.logins");
  stat_add(&b, (int64_t)n->stats.login_failed, "node.login_failed");
  stat_add(&b, (int64_t)n->stats.login_limited, "node.login_limited");
  stat_add(&b, (int64_t)n->stats.login_missing, "node.login_missing");
  stat_add(&b, (int64_t)n->stats.tls_handshakes, "node.tls_handshakes");
  stat_add(&b, (int64_t)n->stats.tls_auth_failed, "node.tls_auth_failed");
  stat_add(&b, (int64_t)n->stats.tls_malformed, "node.tls_malformed");
  stat_add(&b, (int64_t)n->stats.tls_plaintext_refused,
           "node.tls_plaintext_refused");
  stat_add(&b, (int64_t)n->stats.tls_peer_refused, "node.tls_peer_refused");
  stat_add(&b, (int64_t)n->stats.tls_off_refused, "node.tls_off_refused");
  stat_add(&b, (int64_t)n->stats.tls_reloads, "node.tls_reloads");
  stat_add(&b, (int64_t)n->stats.tls_reload_failed, "node.tls_reload_failed");
  stat_add(&b, (int64_t)n->stats.tls_reload_closed, "node.tls_reload_closed");
  stat_add(&b, (int64_t)n->stats.udp_in, "node.udp_in");
  stat_add(&b, (int64_t)n->stats.udp_out, "node.udp_out");
  stat_add(&b, (int64_t)n->stats.handshake_timeouts, "node.handshake_timeouts");
  stat_add(&b, (int64_t)n->stats.idle_timeouts, "node.idle_timeouts");
  stat_add(&b, (int64_t)n->stats.slow_senders, "node.slow_senders");
  stat_add(&b, (int64_t)n->stats.pending_evicted, "node.pending_evicted");
  stat_add(&b, (int64_t)n->stats.fd_exhausted, "node.accept_no_fd");
  stat_add(&b, (int64_t)n->accept_paused, "node.accept_paused");
  stat_add(&b, (int64_t)store_last_seq(n->store), "store.last_seq");
  stat_add(&b, (int64_t)store_durable_seq(n->store), "store.durable_seq");
  /* What the data folder takes (store.h, SPACE TAKEN AND GIVEN BACK); a
   * folder that cannot be listed leaves folder_bytes short, not the rest. */
  struct store_usage u;
  (void)store_usage(n->store, &u);
  stat_add(&b, (int64_t)u.folder_bytes, "store.folder_bytes");
  stat_add(&b, (int64_t)u.table_bytes, "store.table_bytes");
  stat_add(&b, (int64_t)u.live_bytes, "store.live_bytes");
  stat_add(&b, (int64_t)u.memory_bytes, "store.memory_bytes");
  stat_add(&b, (int64_t)u.reclaims, "store.reclaims");
  stat_add(&b, (int64_t)u.reclaim_ms, "store.reclaim_ms");
  stat_add(&b, (int64_t)u.reclaims_skipped, "store.reclaims_skipped");
  const struct ring_replication *rr = &n->cfg.replication;
  if (rr->dc_count == 0)
    stat_add(&b, (int64_t)rr->n, "replication.n");
  for (uint32_t i = 0; i < rr->dc_count; i++)
    stat_add(&b, (int64_t)rr->dcs[i].factor, "replication.dc.%s",
             rr->dcs[i].dc);
  for (size_t i = 0; i < members; i++) {
    const struct swim_member *m = swim_member_at(core_swim(n->core), i);
    stat_add(&b, (int64_t)m->state, "member.%016" PRIx64 ".state", m->id);
    stat_add(&b, (int64_t)m->incarnation, "member.%016" PRIx64 ".incarnation",
             m->id);
    if (m->clock_samples > 0)
      stat_add(&b, m->offset_ms, "member.%016" PRIx64 ".offset_ms", m->id);
    if (m->id != n->cfg.id)
      stat_add(&b, (int64_t)repl_hints_for(core_repl(n->core), m->id),
               "member.%016" PRIx64 ".hints", m->id);
  }
  struct wire_msg r = {.type = WIRE_STATUS_REPLY2, .request_id = request_id};
  r.status_reply.node_id = n->cfg.id;
  r.status_reply.name = str_bytes(n->cfg.name);
  r.status_reply.nstats = b.n;
  r.status_reply.stats = b.items;
  (void)node__conn_send(c, &r);
  chorus_free(b.items);
  chorus_free(b.names);
}

void node__answer_repair(struct node_conn *c, uint64_t request_id,
                         const struct wire_repair_ranges *q,
                         size_t requested_peers) {
  struct node *n = c->n;
  const struct repl *r = core_repl(n->core);
  if (r == NULL) {
    node__conn_send_error(c, request_id, CHORUS_EUNAVAILABLE,
                          "replication not started");
    return;
  }
  size_t npeers = repl_aae_status(r, NULL, 0);
  /* REPAIR_RANGES: this node's ranges overlapping the one asked, at most
   * WIRE_MAX_REPAIR_RANGES of them (aae.ranges says how many there are). */
  size_t nranges = q ? repl_aae_ranges(r, q->first, q->last, NULL, 0) : 0;
  size_t nsent =
      nranges < WIRE_MAX_REPAIR_RANGES ? nranges : WIRE_MAX_REPAIR_RANGES;
  struct repl_aae_peer_status *ps = chorus_calloc(npeers + 1, sizeof *ps);
  struct repl_aae_range_status *rg = chorus_calloc(nsent + 1, sizeof *rg);
  uint8_t *rb = chorus_malloc(nsent * WIRE_REPAIR_RANGE_BYTES + 1);
  struct stat_builder b = {0};
  b.cap = 20 + 7 * npeers;
  b.items = chorus_calloc(b.cap, sizeof *b.items);
  b.names = chorus_calloc(b.cap, sizeof *b.names);
  if (ps == NULL || rg == NULL || rb == NULL || b.items == NULL ||
      b.names == NULL) {
    node__conn_send_error(c, request_id, CHORUS_ENOMEM, "out of memory");
    goto out;
  }
  npeers = repl_aae_status(r, ps, npeers);
  const struct repl_stats *rs = repl_stats(r);
  stat_add(&b, repl_aae_built(r), "aae.tree_built");
  stat_add(&b, repl_aae_busy(r), "aae.busy");
  stat_add(&b, (int64_t)n->cfg.aae_interval_ms, "aae.interval_ms");
  stat_add(&b, (int64_t)rs->aae_started, "aae.started");
  stat_add(&b, (int64_t)rs->aae_completed, "aae.completed");
  stat_add(&b, (int64_t)rs->aae_aborted, "aae.aborted");
  stat_add(&b, (int64_t)rs->aae_segments_differing, "aae.segments_differing");
  stat_add(&b, (int64_t)rs->aae_keys_compared, "aae.keys_compared");
  stat_add(&b, (int64_t)rs->aae_keys_repaired, "aae.keys_repaired");
  stat_add(&b, (int64_t)rs->aae_bytes_sent, "aae.bytes_sent");
  stat_add(&b, (int64_t)rs->aae_bytes_received, "aae.bytes_received");
  if (q != NULL) {
    stat_add(&b, (int64_t)nranges, "aae.ranges");
    stat_add(&b, (int64_t)nsent, "aae.ranges_sent");
    if (q->now)
      stat_add(&b, (int64_t)requested_peers, "aae.requested_peers");
  }
  for (size_t i = 0; i < npeers; i++) {
    const struct repl_aae_peer_status *p = &ps[i];
    stat_add(&b, (int64_t)p->last_completed,
             "peer.%016" PRIx64 ".last_completed_ms", p->peer);
    stat_add(&b, (int64_t)p->exchanges, "peer.%016" PRIx64 ".exchanges",
             p->peer);
    stat_add(&b, (int64_t)p->aborted, "peer.%016" PRIx64 ".aborted", p->peer);
    stat_add(&b, (int64_t)p->segments_differing,
             "peer.%016" PRIx64 ".segments_differing", p->peer);
    stat_add(&b, (int64_t)p->keys_repaired, "peer.%016" PRIx64 ".keys_repaired",
             p->peer);
    stat_add(&b, (int64_t)p->bytes, "peer.%016" PRIx64 ".bytes", p->peer);
  }
  struct wire_msg m = {.request_id = request_id};
  struct wire_status_reply *sr = &m.status_reply;
  if (q != NULL) {
    m.type = WIRE_REPAIR_RANGES_REPLY;
    sr = &m.repair_ranges_reply.status;
    (void)repl_aae_ranges(r, q->first, q->last, rg, nsent); /* same ring */
    chorus_ms wall = node__wall_ms();
    for (size_t i = 0; i < nsent; i++) {
      const struct repl_aae_range_status *g = &rg[i];
      struct wire_repair_range w = {
          .first = g->first,
          .last = g->last,
          .last_completed_ms = g->last_completed,
          /* The age on the node's own clock: the client's may be off. */
          .age_ms = g->last_completed == 0     ? 0
                    : wall > g->last_completed ? wall - g->last_completed
                                               : 0,
          .exchanges = g->exchanges,
          .segments_differing = g->segments_differing,
          .keys_differing = g->keys_differing,
          .keys_repaired = g->keys_repaired,
          .bytes_sent = g->bytes_sent,
          .bytes_received = g->bytes_received,
          .flags = g->repaired ? WIRE_RANGE_REPAIRED : 0};
      wire_repair_range_put(rb + i * WIRE_REPAIR_RANGE_BYTES, &w);
    }
    m.repair_ranges_reply.ranges =
        (struct wire_bytes){rb, nsent * WIRE_REPAIR_RANGE_BYTES};
  } else {
    m.type = WIRE_REPAIR_STATUS_REPLY;
  }
  sr->node_id = n->cfg.id;
  sr->name = str_bytes(n->cfg.name);
  sr->nstats = b.n;
  sr->stats = b.items;
  (void)node__conn_send(c, &m);
out:
  chorus_free(ps);
  chorus_free(rg);
  chorus_free(rb);
  chorus_free(b.items);
  chorus_free(b.names);
}
