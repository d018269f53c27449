/* node_metrics.c: chorusd's request metrics (counts by operation and
 * consistency level, latency histograms, errors by code), the /metrics
 * text that reports them with every counter the node already keeps, and
 * the /ready verdict (node_http.c serves both).
 *
 * HOW IT WORKS
 *
 * Recording is on the data path, so it is a few integer adds on the loop
 * thread, which alone touches the figures (no lock, no atomic): a request
 * is counted when it reaches the core (node_dispatch.c, on_client_msg),
 * with uv_hrtime, its operation and its level's index in its slot; its
 * latency is the time until the core's
 * answer is queued for the client (node__fx_reply), recorded into fixed
 * buckets found by a short scan. Everything else (replication, SWIM,
 * metadata, streaming, the store, connections) is read when /metrics is
 * asked for, from the structs STATUS_QUERY reads (node_status.c): the two
 * show the same figures, the one for `chorus status`, this one for
 * Prometheus.
 *
 * Names follow Prometheus' conventions: chorus_ prefix, _total for
 * counters, base units (_seconds, _bytes). Every family is written through
 * http.h's writer, in one pass over one buffer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "node_int.h"

/* Bucket bounds in seconds, and the same in nanoseconds for recording:
 * a loopback QUORUM write is ~0.2-2 ms; timeouts are 2 s by default. */
static const double lat_bounds[NODE_LAT_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
static const uint64_t lat_bounds_ns[NODE_LAT_BUCKETS] = {
    100000ull,     250000ull,     500000ull,     1000000ull,
    2500000ull,    5000000ull,    10000000ull,   25000000ull,
    50000000ull,   100000000ull,  250000000ull,  500000000ull,
    1000000000ull, 2500000000ull, 5000000000ull, 10000000000ull};

static const char *const op_names[NODE_OP_COUNT] = {
    "get",      "put",        "delete",   "counter_add", "counter_read",
    "set_add",  "set_remove", "set_read", "lww_set",     "lww_delete",
    "lww_read", "map_update", "map_read", "admin"};

/* ------------------------------------------------------------------------
 * Recording (the data path)
 * ------------------------------------------------------------------------ */

enum node_op node__metrics_op(const struct wire_msg *m) {
  switch (m->type) {
  case WIRE_GET:
    return NODE_OP_GET;
  case WIRE_PUT:
  case WIRE_PUT_TTL:
    return NODE_OP_PUT;
  case WIRE_DELETE:
    return NODE_OP_DELETE;
  case WIRE_COUNTER_ADD:
    return NODE_OP_COUNTER_ADD;
  case WIRE_COUNTER_READ:
    return NODE_OP_COUNTER_READ;
  case WIRE_SET_ADD:
    return NODE_OP_SET_ADD;
  case WIRE_SET_REMOVE:
    return NODE_OP_SET_REMOVE;
  case WIRE_SET_READ:
    return NODE_OP_SET_READ;
  case WIRE_LWW_SET:
    return NODE_OP_LWW_SET;
  case WIRE_LWW_DELETE:
    return NODE_OP_LWW_DELETE;
  case WIRE_LWW_READ:
    return NODE_OP_LWW_READ;
  case WIRE_MAP_UPDATE:
    return NODE_OP_MAP_UPDATE;
  case WIRE_MAP_READ:
    return NODE_OP_MAP_READ;
  default:
    return NODE_OP_ADMIN;
  }
}

/* level_of: the consistency level @op asked for: R for reads, W for
 * writes; 0 for admin requests. */
static int32_t level_of(enum node_op op, const struct wire_msg *m) {
  switch (op) {
  case NODE_OP_GET:
    return m->get.opts.r;
  case NODE_OP_PUT:
    return m->put.opts.w;
  case NODE_OP_DELETE:
    return m->del.opts.w;
  case NODE_OP_COUNTER_ADD:
    return m->counter_add.opts.w;
  case NODE_OP_COUNTER_READ:
    return m->counter_read.opts.r;
  case NODE_OP_SET_ADD:
    return m->set_add.opts.w;
  case NODE_OP_SET_REMOVE:
    return m->set_remove.opts.w;
  case NODE_OP_SET_READ:
    return m->set_read.opts.r;
  case NODE_OP_LWW_SET:
    return m->lww_set.opts.w;
  case NODE_OP_LWW_DELETE:
    return m->lww_key.opts.w;
  case NODE_OP_LWW_READ:
    return m->lww_key.opts.r;
  case NODE_OP_MAP_UPDATE:
    return m->map_update.opts.w;
  case NODE_OP_MAP_READ:
    return m->map_read.opts.r;
  default:
    return 0;
  }
}

/* level_index: 0 DEFAULT, 1..8 the named levels ONE..EACH_QUORUM, 9 an
 * explicit count of replicas (the wire says which, enum wire_level). */
static unsigned level_index(int32_t level) {
  if (level > 0)
    return NODE_LEVELS - 1;
  if (level < WIRE_LEVEL_MIN)
    return 0; /* the decoder refuses these; never counted apart */
  return (unsigned)-level;
}

static const char *level_name(unsigned i) {
  if (i == NODE_LEVELS - 1)
    return "count";
  const char *s = wire_level_name(-(int32_t)i);
  return s ? s : "DEFAULT";
}

const char *node__metrics_op_name(enum node_op op) {
  return op < NODE_OP_COUNT ? op_names[op] : "?";
}

const char *node__metrics_level_name(unsigned level) {
  return level < NODE_LEVELS ? level_name(level) : "?";
}

const double *node__metrics_bounds(void) {
  return lat_bounds;
}

unsigned node__metrics_level(enum node_op op, const struct wire_msg *m) {
  return level_index(level_of(op, m));
}

void node__metrics_request(struct node *n, enum node_op op, unsigned level) {
  n->metrics.requests[op][level]++;
}

void node__metrics_reply(struct node *n, enum node_op op, unsigned level,
                         uint64_t start_ns, const struct wire_msg *m) {
  struct node_metrics *x = &n->metrics;
  uint64_t ns = uv_hrtime() - start_ns;
  unsigned b = 0;
  while (b < NODE_LAT_BUCKETS && ns > lat_bounds_ns[b])
    b++;
  x->lat[op][level][b]++;
  x->lat_sum_ns[op][level] += ns;
  if (m->type == WIRE_ERROR) {
    int32_t code = m->error.code;
    x->errors[op][code < 0 && code > -NODE_ERROR_CODES ? -code : 0]++;
  }
}

/* ------------------------------------------------------------------------
 * The text
 * ------------------------------------------------------------------------ */

/* A family of one unlabelled sample. */
static void one(struct http_text *t, const char *name, enum http_prom_type ty,
                const char *help, double v) {
  http_prom_family(t, name, ty, help);
  http_prom_sample(t, name, NULL, 0, v);
}

static void requests_text(struct node *n, struct http_text *t) {
  const struct node_metrics *x = &n->metrics;
  http_prom_family(t, "chorus_requests_total", HTTP_PROM_COUNTER,
                   "Client requests this node coordinated, by operation and "
                   "consistency level (R for reads, W for writes).");
  for (unsigned op = 0; op < NODE_OP_COUNT; op++)
    for (unsigned l = 0; l < NODE_LEVELS; l++)
      if (x->requests[op][l] != 0 || (l == 0 && op != NODE_OP_ADMIN)) {
        struct http_label lb[2] = {{"op", op_names[op]},
                                   {"level", level_name(l)}};
        http_prom_sample(t, "chorus_requests_total", lb, 2,
                         (double)x->requests[op][l]);
      }
  http_prom_family(t, "chorus_request_duration_seconds", HTTP_PROM_HISTOGRAM,
                   "Time from a client request's arrival to its answer "
                   "queued for the client, by operation and consistency "
                   "level.");
  /* The levels a node saw, and DEFAULT always (a stable series per
   * operation): sum by (op) gives the per-operation histogram. */
  for (unsigned op = 0; op < NODE_OP_COUNT; op++)
    for (unsigned l = 0; l < NODE_LEVELS; l++)
      if (x->requests[op][l] != 0 || l == 0) {
        struct http_label lb[2] = {{"op", op_names[op]},
                                   {"level", level_name(l)}};
        http_prom_histogram(t, "chorus_request_duration_seconds", lb, 2,
                            lat_bounds, x->lat[op][l], NODE_LAT_BUCKETS,
                            (double)x->lat_sum_ns[op][l] / 1e9);
      }
  http_prom_family(t, "chorus_request_errors_total", HTTP_PROM_COUNTER,
                   "Client requests answered with an error, by operation "
                   "and error code.");
  for (unsigned op = 0; op < NODE_OP_COUNT; op++)
    for (int c = 0; c < NODE_ERROR_CODES; c++)
      if (x->errors[op][c] != 0) {
        const char *name = c ? chorus_errname(-c) : "OTHER";
        if (strncmp(name, "CHORUS_", 7) == 0)
          name += 7;
        struct http_label lb[2] = {{"op", op_names[op]}, {"code", name}};
        http_prom_sample(t, "chorus_request_errors_total", lb, 2,
                         (double)x->errors[op][c]);
      }
}

static void repl_text(struct node *n, struct http_text *t) {
  const struct repl_stats *rs = repl_stats(core_repl(n->core));
  one(t, "chorus_coordinator_forwarded_total", HTTP_PROM_COUNTER,
      "Requests forwarded to a replica coordinator.", (double)rs->forwarded);
  http_prom_family(t, "chorus_coordinator_results_total", HTTP_PROM_COUNTER,
                   "Coordinated requests by result.");
  static const char *const res[] = {"write_ok", "read_ok", "unavailable",
                                    "timeout",  "invalid", "too_big"};
  const uint64_t rv[] = {rs->writes_ok, rs->reads_ok, rs->unavailable,
                         rs->timeouts,  rs->invalid,  rs->too_big};
  for (size_t i = 0; i < sizeof rv / sizeof rv[0]; i++) {
    struct http_label lb = {"result", res[i]};
    http_prom_sample(t, "chorus_coordinator_results_total", &lb, 1,
                     (double)rv[i]);
  }
  one(t, "chorus_read_repairs_total", HTTP_PROM_COUNTER,
      "Replica writes sent by read repair.", (double)rs->read_repairs);
  one(t, "chorus_lww_clock_refused_total", HTTP_PROM_COUNTER,
      "LWW register writes refused: stamped more than --max-clock-ahead-ms "
      "ahead of this node's clock.",
      (double)rs->clock_refused);
  one(t, "chorus_hints_queued_total", HTTP_PROM_COUNTER,
      "Hints written (armed or re-armed).", (double)rs->hints_queued);
  one(t, "chorus_hints_replayed_total", HTTP_PROM_COUNTER,
      "Hints a target acknowledged on replay.", (double)rs->hints_replayed);
  one(t, "chorus_hints_moved_total", HTTP_PROM_COUNTER,
      "Hints handed to a key's new owners after its target lost it.",
      (double)rs->hints_moved);
  http_prom_family(t, "chorus_hints_dropped_total", HTTP_PROM_COUNTER,
                   "Hints dropped, by reason.");
  static const char *const why[] = {"bytes", "age", "not_owner"};
  const uint64_t dv[] = {rs->hints_dropped_bytes, rs->hints_dropped_age,
                         rs->hints_dropped_not_owner};
  for (size_t i = 0; i < 3; i++) {
    struct http_label lb = {"reason", why[i]};
    http_prom_sample(t, "chorus_hints_dropped_total", &lb, 1, (double)dv[i]);
  }
  one(t, "chorus_hints_pending", HTTP_PROM_GAUGE, "Hints held now.",
      (double)rs->hints_pending);
  one(t, "chorus_hints_pending_bytes", HTTP_PROM_GAUGE,
      "Bytes of the hints held now.", (double)rs->hint_bytes);
  one(t, "chorus_tombstones", HTTP_PROM_GAUGE,
      "Tombstones the last collection walk kept.", (double)rs->tombstones);
  one(t, "chorus_tombstones_purged_total", HTTP_PROM_COUNTER,
      "Tombstones purged.", (double)rs->tombstones_purged);
  one(t, "chorus_aae_exchanges_started_total", HTTP_PROM_COUNTER,
      "Anti-entropy exchanges started.", (double)rs->aae_started);
  one(t, "chorus_aae_exchanges_completed_total", HTTP_PROM_COUNTER,
      "Anti-entropy exchanges completed.", (double)rs->aae_completed);
  one(t, "chorus_aae_exchanges_aborted_total", HTTP_PROM_COUNTER,
      "Anti-entropy exchanges abandoned.", (double)rs->aae_aborted);
  one(t, "chorus_aae_segments_differing_total", HTTP_PROM_COUNTER,
      "Hash tree segments found differing.",
      (double)rs->aae_segments_differing);
  one(t, "chorus_aae_keys_compared_total", HTTP_PROM_COUNTER,
      "Keys whose digests anti-entropy compared.",
      (double)rs->aae_keys_compared);
  one(t, "chorus_aae_keys_repaired_total", HTTP_PROM_COUNTER,
      "Keys anti-entropy repaired.", (double)rs->aae_keys_repaired);
  http_prom_family(t, "chorus_aae_bytes_total", HTTP_PROM_COUNTER,
                   "Anti-entropy message bytes, by direction.");
  struct http_label d = {"direction", "sent"};
  http_prom_sample(t, "chorus_aae_bytes_total", &d, 1,
                   (double)rs->aae_bytes_sent);
  d.value = "received";
  http_prom_sample(t, "chorus_aae_bytes_total", &d, 1,
                   (double)rs->aae_bytes_received);
  one(t, "chorus_aae_tree_keys", HTTP_PROM_GAUGE,
      "Objects the anti-entropy tree counts.", (double)rs->aae_tree_keys);
  http_prom_family(t, "chorus_stream_served_total", HTTP_PROM_COUNTER,
                   "Streaming: what this node served to pullers.");
  struct http_label s = {"unit", "keys"};
  http_prom_sample(t, "chorus_stream_served_total", &s, 1,
                   (double)rs->stream_served_keys);
  s.value = "bytes";
  http_prom_sample(t, "chorus_stream_served_total", &s, 1,
                   (double)rs->stream_served_bytes);
}

/* peer_name: @id's name as the cluster metadata lists it (what `chorus
 * status` shows), or its id in hex for a member the metadata does not
 * name (yet); in @buf when it is the latter. */
static const char *peer_name(struct node *n, chorus_node_id id, char *buf,
                             size_t cap) {
  const struct meta_node *mn = core_meta(n->core);
  const struct meta_state *ms = mn ? meta_node_state(mn) : NULL;
  for (size_t i = 0; ms && i < ms->n; i++)
    if (ms->members[i].id == id && ms->members[i].name[0] != '\0')
      return ms->members[i].name;
  snprintf(buf, cap, "%016" PRIx64, id);
  return buf;
}

static void swim_text(struct node *n, struct http_text *t) {
  const struct swim *sw = core_swim(n->core);
  const struct swim_stats *ss = swim_stats(sw);
  size_t members = swim_member_count(sw);
  uint64_t by_state[SWIM_REMOVED + 1] = {0};
  for (size_t i = 0; i < members; i++) {
    const struct swim_member *m = swim_member_at(sw, i);
    if (m->state <= SWIM_REMOVED)
      by_state[m->state]++;
  }
  http_prom_family(t, "chorus_swim_members", HTTP_PROM_GAUGE,
                   "Members this node's gossip knows, by state (itself "
                   "included).");
  for (int st = SWIM_ALIVE; st <= SWIM_REMOVED; st++) {
    struct http_label lb = {"state", swim_state_name((enum swim_state)st)};
    http_prom_sample(t, "chorus_swim_members", &lb, 1, (double)by_state[st]);
  }
  one(t, "chorus_swim_probes_total", HTTP_PROM_COUNTER,
      "Probe periods with a target.", (double)ss->probes);
  one(t, "chorus_swim_probes_failed_total", HTTP_PROM_COUNTER,
      "Probe periods that ended unacknowledged.", (double)ss->probe_failed);
  one(t, "chorus_swim_suspicions_total", HTTP_PROM_COUNTER,
      "Members this node suspected.", (double)ss->suspicions);
  one(t, "chorus_swim_refutations_total", HTTP_PROM_COUNTER,
      "Suspicions of this node it refuted.", (double)ss->refutations);
  one(t, "chorus_swim_deaths_total", HTTP_PROM_COUNTER,
      "Members this node declared dead.", (double)ss->deaths);
  http_prom_family(t, "chorus_swim_packets_total", HTTP_PROM_COUNTER,
                   "Gossip packets, by direction.");
  struct http_label d = {"direction", "sent"};
  http_prom_sample(t, "chorus_swim_packets_total", &d, 1, (double)ss->sent);
  d.value = "received";
  http_prom_sample(t, "chorus_swim_packets_total", &d, 1, (double)ss->received);
  http_prom_family(t, "chorus_swim_packets_dropped_total", HTTP_PROM_COUNTER,
                   "Gossip packets dropped, by reason.");
  d = (struct http_label){"reason", "auth"};
  http_prom_sample(t, "chorus_swim_packets_dropped_total", &d, 1,
                   (double)ss->auth_failed);
  d.value = "malformed";
  http_prom_sample(t, "chorus_swim_packets_dropped_total", &d, 1,
                   (double)ss->malformed);
  one(t, "chorus_swim_health", HTTP_PROM_GAUGE,
      "Lifeguard's local health multiplier (0: healthy).",
      (double)swim_health(sw));
  /* Per peer: its clock offset and the hints held for it. */
  http_prom_family(t, "chorus_swim_clock_offset_seconds", HTTP_PROM_GAUGE,
                   "A peer's wall clock minus this node's, as gossip "
                   "measured it.");
  char id[17];
  for (size_t i = 0; i < members; i++) {
    const struct swim_member *m = swim_member_at(sw, i);
    if (m->id == n->cfg.id || m->clock_samples == 0)
      continue;
    struct http_label lb = {"peer", peer_name(n, m->id, id, sizeof id)};
    http_prom_sample(t, "chorus_swim_clock_offset_seconds", &lb, 1,
                     (double)m->offset_ms / 1000.0);
  }
  http_prom_family(t, "chorus_hints_pending_by_target", HTTP_PROM_GAUGE,
                   "Hints held now, by target.");
  for (size_t i = 0; i < members; i++) {
    const struct swim_member *m = swim_member_at(sw, i);
    if (m->id == n->cfg.id)
      continue;
    struct http_label lb = {"peer", peer_name(n, m->id, id, sizeof id)};
    http_prom_sample(t, "chorus_hints_pending_by_target", &lb, 1,
                     (double)repl_hints_for(core_repl(n->core), m->id));
  }
}

static void meta_text(struct node *n, struct http_text *t) {
  const struct meta_node *mn = core_meta(n->core);
  if (mn == NULL)
    return;
  struct meta_node_info mi;
  meta_node_info(mn, &mi);
  const struct meta_state *ms = meta_node_state(mn);
  one(t, "chorus_meta_epoch", HTTP_PROM_GAUGE,
      "The cluster metadata's epoch (ring changes).", (double)ms->epoch);
  one(t, "chorus_meta_members", HTTP_PROM_GAUGE,
      "Members the cluster metadata lists.", (double)ms->n);
  one(t, "chorus_meta_raft_term", HTTP_PROM_GAUGE,
      "The metadata Raft group's term.", (double)mi.term);
  one(t, "chorus_meta_raft_commit_index", HTTP_PROM_GAUGE,
      "The metadata Raft log's commit index.", (double)mi.commit_index);
  one(t, "chorus_meta_raft_applied_index", HTTP_PROM_GAUGE,
      "The metadata Raft log's applied index.", (double)mi.applied_index);
  one(t, "chorus_meta_raft_leader", HTTP_PROM_GAUGE,
      "1 when this node is the metadata leader.",
      (double)(mi.leader == n->cfg.id));
  one(t, "chorus_meta_raft_leader_known", HTTP_PROM_GAUGE,
      "1 when this node knows a metadata leader.", (double)(mi.leader != 0));
  one(t, "chorus_meta_proposals_total", HTTP_PROM_COUNTER,
      "Metadata commands proposed.", (double)mi.proposals);
  one(t, "chorus_meta_refused_total", HTTP_PROM_COUNTER,
      "Metadata commands refused.", (double)mi.refused);
  one(t, "chorus_meta_bad_messages_total", HTTP_PROM_COUNTER,
      "Metadata messages dropped as malformed.", (double)mi.bad_messages);
  struct core_stream_info si;
  core_stream_info(n->core, &si);
  one(t, "chorus_stream_active", HTTP_PROM_GAUGE,
      "1 while this node pulls ranges for a topology change.",
      (double)si.active);
  one(t, "chorus_stream_ranges", HTTP_PROM_GAUGE,
      "Ranges of the change under way this node pulls.", (double)si.ranges);
  one(t, "chorus_stream_ranges_done", HTTP_PROM_GAUGE, "Of them, ranges held.",
      (double)si.ranges_done);
  one(t, "chorus_stream_keys_total", HTTP_PROM_COUNTER,
      "Keys this node pulled in streams.", (double)si.stats.keys);
  one(t, "chorus_stream_bytes_total", HTTP_PROM_COUNTER,
      "Bytes this node pulled in streams.", (double)si.stats.bytes);
  one(t, "chorus_stream_retries_total", HTTP_PROM_COUNTER,
      "Stream pulls retried.", (double)si.stats.retries);
}

static void node_text(struct node *n, struct http_text *t) {
  http_prom_family(t, "chorus_connections", HTTP_PROM_GAUGE,
                   "Open connections, by kind.");
  /* Peers are counted on the list of open connections: nconns also holds
   * the ones whose close has not completed yet. */
  uint32_t peers = 0;
  for (const struct node_conn *c = n->conns; c; c = c->next)
    peers += c->kind == NODE_CONN_PEER_IN || c->kind == NODE_CONN_PEER_OUT;
  static const char *const kinds[] = {"client", "pending", "peer", "http"};
  const uint32_t kv[] = {n->nclients, n->npending, peers, n->nhttp};
  for (size_t i = 0; i < 4; i++) {
    struct http_label lb = {"kind", kinds[i]};
    http_prom_sample(t, "chorus_connections", &lb, 1, (double)kv[i]);
  }
  one(t, "chorus_connections_accepted_total", HTTP_PROM_COUNTER,
      "Connections accepted on the client and peer port.",
      (double)n->stats.accepted);
  one(t, "chorus_http_connections_accepted_total", HTTP_PROM_COUNTER,
      "Connections admitted on the HTTP port (under its cap).",
      (double)n->stats.http_accepted);
  http_prom_family(t, "chorus_connections_closed_total", HTTP_PROM_COUNTER,
                   "Connections the node closed, by reason.");
  static const char *const why[] = {
      "handshake_timeout", "idle",         "slow_sender",  "pending_evicted",
      "malformed",         "http_timeout", "http_over_cap"};
  const uint64_t wv[] = {n->stats.handshake_timeouts, n->stats.idle_timeouts,
                         n->stats.slow_senders,       n->stats.pending_evicted,
                         n->stats.malformed,          n->stats.http_timeouts,
                         n->stats.http_refused};
  for (size_t i = 0; i < sizeof wv / sizeof wv[0]; i++) {
    struct http_label lb = {"reason", why[i]};
    http_prom_sample(t, "chorus_connections_closed_total", &lb, 1,
                     (double)wv[i]);
  }
  http_prom_family(t, "chorus_logins_total", HTTP_PROM_COUNTER,
                   "Client logins (--auth), by result: ok; failed (a wrong "
                   "password or an unknown user, at the proof); limited "
                   "(too many failures from the address); missing (no or "
                   "bad credentials where a login is required).");
  static const char *const login_res[] = {"ok", "failed", "limited", "missing"};
  const uint64_t lgv[] = {n->stats.logins, n->stats.login_failed,
                          n->stats.login_limited, n->stats.login_missing};
  for (size_t i = 0; i < sizeof lgv / sizeof lgv[0]; i++) {
    struct http_label lb = {"result", login_res[i]};
    http_prom_sample(t, "chorus_logins_total", &lb, 1, (double)lgv[i]);
  }
  one(t, "chorus_tls_handshakes_total", HTTP_PROM_COUNTER,
      "TLS handshakes completed on the client and peer port, accepted and "
      "dialled.",
      (double)n->stats.tls_handshakes);
  http_prom_family(t, "chorus_tls_refused_total", HTTP_PROM_COUNTER,
                   "Connections refused by TLS, by reason.");
  static const char *const tls_why[] = {"certificate", "not_tls",
                                        "plaintext_client",
                                        "peer_without_certificate", "tls_off"};
  const uint64_t tv[] = {n->stats.tls_auth_failed, n->stats.tls_malformed,
                         n->stats.tls_plaintext_refused,
                         n->stats.tls_peer_refused, n->stats.tls_off_refused};
  for (size_t i = 0; i < sizeof tv / sizeof tv[0]; i++) {
    struct http_label lb = {"reason", tls_why[i]};
    http_prom_sample(t, "chorus_tls_refused_total", &lb, 1, (double)tv[i]);
  }
  http_prom_family(t, "chorus_peer_auth_failures_total", HTTP_PROM_COUNTER,
                   "Peer links refused at the handshake, or closed for a "
                   "frame whose tag failed.");
  struct http_label ph = {"stage", "handshake"}, pf = {"stage", "frame"};
  http_prom_sample(t, "chorus_peer_auth_failures_total", &ph, 1,
                   (double)n->stats.peer_auth_failed);
  http_prom_sample(t, "chorus_peer_auth_failures_total", &pf, 1,
                   (double)n->stats.peer_frame_auth_failed);
  http_prom_family(t, "chorus_tls_reloads_total", HTTP_PROM_COUNTER,
                   "Certificate reloads on SIGHUP, by result.");
  struct http_label rl = {"result", "ok"};
  http_prom_sample(t, "chorus_tls_reloads_total", &rl, 1,
                   (double)n->stats.tls_reloads);
  rl.value = "failed";
  http_prom_sample(t, "chorus_tls_reloads_total", &rl, 1,
                   (double)n->stats.tls_reload_failed);
  one(t, "chorus_overload_total", HTTP_PROM_COUNTER,
      "Requests refused EOVERLOAD: too many in flight on a connection.",
      (double)n->stats.overload);
  one(t, "chorus_accept_no_descriptor_total", HTTP_PROM_COUNTER,
      "Accepts that failed for lack of descriptors.",
      (double)n->stats.fd_exhausted);
  http_prom_family(t, "chorus_peer_messages_lost_total", HTTP_PROM_COUNTER,
                   "Messages to peers not delivered, by reason.");
  static const char *const lost[] = {"over_bound", "in_flight", "too_big"};
  const uint64_t lv[] = {n->stats.peer_dropped, n->stats.peer_lost_in_flight,
                         n->stats.too_big};
  for (size_t i = 0; i < 3; i++) {
    struct http_label lb = {"reason", lost[i]};
    http_prom_sample(t, "chorus_peer_messages_lost_total", &lb, 1,
                     (double)lv[i]);
  }
  http_prom_family(t, "chorus_http_responses_total", HTTP_PROM_COUNTER,
                   "HTTP answers of this listener, by status class.");
  static const char *const cls[] = {"2xx", "4xx", "5xx"};
  const uint64_t cv[] = {n->stats.http_2xx, n->stats.http_4xx,
                         n->stats.http_5xx};
  for (size_t i = 0; i < 3; i++) {
    struct http_label lb = {"code", cls[i]};
    http_prom_sample(t, "chorus_http_responses_total", &lb, 1, (double)cv[i]);
  }
}

static void store_text(struct node *n, struct http_text *t) {
  one(t, "chorus_store_last_seq", HTTP_PROM_GAUGE,
      "The store's last write sequence number.",
      (double)store_last_seq(n->store));
  one(t, "chorus_store_durable_seq", HTTP_PROM_GAUGE,
      "The store's last sequence number known synced.",
      (double)store_durable_seq(n->store));
  /* store_usage reads RocksDB's properties (store.h, SPACE TAKEN AND
   * GIVEN BACK); a folder it cannot list leaves folder_bytes short. */
  struct store_usage u;
  (void)store_usage(n->store, &u);
  one(t, "chorus_store_folder_bytes", HTTP_PROM_GAUGE,
      "Bytes of the data folder on disk.", (double)u.folder_bytes);
  one(t, "chorus_store_table_bytes", HTTP_PROM_GAUGE,
      "Bytes of the store's table files.", (double)u.table_bytes);
  one(t, "chorus_store_live_bytes", HTTP_PROM_GAUGE,
      "The store's estimate of its live data.", (double)u.live_bytes);
  one(t, "chorus_store_memory_bytes", HTTP_PROM_GAUGE,
      "The store's memtables and block cache.", (double)u.memory_bytes);
  one(t, "chorus_store_reclaims_total", HTTP_PROM_COUNTER,
      "Compactions run to give space back.", (double)u.reclaims);
  one(t, "chorus_store_reclaim_seconds_total", HTTP_PROM_COUNTER,
      "Time spent in them.", (double)u.reclaim_ms / 1000.0);
  one(t, "chorus_store_pending_compaction_bytes", HTTP_PROM_GAUGE,
      "Bytes the store estimates compaction has to rewrite (RocksDB slows, "
      "then stops, writes past its limits).",
      (double)u.pending_compaction_bytes);
  one(t, "chorus_store_write_stopped", HTTP_PROM_GAUGE,
      "1 while the store stops writes (too many memtables, level-0 files or "
      "pending compaction bytes).",
      (double)u.write_stopped);
  one(t, "chorus_store_delayed_write_rate_bytes", HTTP_PROM_GAUGE,
      "The rate the store lets writes through while it slows them down, "
      "bytes/s; 0 while it does not.",
      (double)u.delayed_write_rate);
  one(t, "chorus_store_write_stall_seconds_total", HTTP_PROM_COUNTER,
      "Time writes were held by the store's slowdowns and stops.",
      (double)u.write_stall_us / 1e6);
  one(t, "chorus_store_wal_syncs_total", HTTP_PROM_COUNTER,
      "WAL syncs (group fsyncs) the store ran.", (double)u.wal_syncs);
  one(t, "chorus_store_wal_sync_seconds_total", HTTP_PROM_COUNTER,
      "Time the store's WAL syncs took (divided by "
      "chorus_store_wal_syncs_total: their mean latency).",
      (double)u.wal_sync_us / 1e6);
  const struct store_disk *disk = store_disk_info(n->store);
  one(t, "chorus_store_disk_full", HTTP_PROM_GAUGE,
      "1 while the data folder is below its reserve (writes refused).",
      (double)disk->full);
}

void node__metrics_text(struct node *n, struct http_text *t) {
  http_prom_family(t, "chorus_node_info", HTTP_PROM_GAUGE,
                   "This node's name and id (always 1).");
  char id[17];
  snprintf(id, sizeof id, "%016" PRIx64, n->cfg.id);
  struct http_label info[3] = {
      {"name", n->cfg.name}, {"id", id}, {"cluster", n->cfg.cluster}};
  http_prom_sample(t, "chorus_node_info", info, 3, 1);
  requests_text(n, t);
  repl_text(n, t);
  swim_text(n, t);
  meta_text(n, t);
  node_text(n, t);
  store_text(n, t);
}

/* ------------------------------------------------------------------------
 * Readiness
 * ------------------------------------------------------------------------ */

bool node__ready(struct node *n, char *why, size_t cap) {
  const struct meta_node *mn = core_meta(n->core);
  if (mn == NULL)
    return true; /* static membership: nothing to wait for */
  const struct meta_state *ms = meta_node_state(mn);
  if (ms->epoch == 0 || ms->n == 0) {
    snprintf(why, cap, "cluster metadata not loaded yet");
    return false;
  }
  if (meta_node_conflict(mn)) {
    snprintf(why, cap, "another member holds this node's name");
    return false;
  }
  bool member = false;
  for (size_t i = 0; i < ms->n; i++)
    member = member || ms->members[i].id == n->cfg.id;
  if (!member) {
    snprintf(why, cap, "not a member of the cluster's metadata yet");
    return false;
  }
  if (meta_node_restoring(mn)) {
    snprintf(why, cap, "restoring its ranges from the other replicas");
    return false;
  }
  const struct swim *sw = core_swim(n->core);
  for (size_t i = 0; i < ms->n; i++) {
    const struct meta_member *m = &ms->members[i];
    if (m->id != n->cfg.id && swim_member_find(sw, m->id) == NULL) {
      snprintf(why, cap, "peer %s (%s) not known to gossip yet", m->name,
               m->addr);
      return false;
    }
  }
  return true;
}
