/* libchorus_route.c: token-aware routing: send each keyed request straight
 * to a live natural replica of its key (Dynamo §6.4, client-driven
 * coordination), so the node that receives it coordinates instead of
 * forwarding it (repl.h: only a natural replica coordinates).
 *
 * HOW IT WORKS
 *
 * The router learns the ring the way `chorus ring` does: RING_QUERY then
 * STATUS_QUERY to a seed, through the client's own engine. From the nodes,
 * their vnode count and the replication.* stats it builds a ring/ring.h
 * snapshot (chorus__ring_build, libchorus_ring.c), and notes each node's
 * address and whether the answering node holds it alive. It fetches again every
 * ring_refresh_ms, and at once when a replica could not be reached.
 *
 * A keyed request goes to a natural replica of its key that is alive and
 * not marked down (NEAREST BY RTT below says which), through a child
 * client: an ordinary engine on
 * the same loop with that replica as its only seed, sharing the parent's
 * request-id counter so an encoded frame can move between engines. Reads
 * and writes alike are routed; the child applies the usual rules, and when
 * it fails with a client-side error that left nothing applied (connection
 * refused, nothing sent before a timeout, a read that found no node) the
 * frame falls back to the parent's seeds and the replica is marked down
 * for a while. Errors the node answered, and writes that may have been
 * applied, are reported as they are. Requests without a key (ring,
 * status) and requests made before the first ring arrives use the seeds.
 *
 * NEAREST BY RTT
 *
 * Each route keeps a smoothed round trip (srtt, TCP's estimator, RFC 6298
 * §2: srtt += (sample - srtt) / 8). A sample is the HELLO-to-WELCOME time
 * of the child's connection when it (re)connected during the request,
 * else the request's own round trip as the node answered it (whatever its
 * status); a request the node never answered gives none. The request's
 * round trip includes the node's work (a QUORUM write waits on the WAN
 * wherever it is coordinated), but that adds about the same to every
 * replica, so the order stays the path's. chorus__route_choose then picks,
 * among the live natural replicas of the key in ring order:
 *   1. the first in the client's datacenter (chorus_config.dc): a LOCAL
 *      level is counted there, and ring order (the primary first) spreads
 *      keys over the datacenter's nodes where the nearest would take them
 *      all;
 *   2. else, while one of them is not measured yet, the first (ring
 *      order, as before RTT was known), and the unmeasured ones' children
 *      connect at once, with nothing to send, so their HELLO measures
 *      them (again at most every ROUTE_DOWN_MS while that fails);
 *   3. else the nearest, with a tolerance of max(1 ms, 20 %) so that
 *      replicas of one LAN, whose round trips differ by noise, keep ring
 *      order (Cassandra's dynamic snitch keeps a badness threshold for the
 *      same reason).
 * A request's sample is capped at 4 x srtt: one stall (a GC pause, a
 * slow fsync, a loaded CI machine) then moves srtt by at most 3/8 of it,
 * not past the tolerance, while a path that really became slower is
 * followed within a few requests. A replica is measured only when it is
 * chosen or connects: a remote one that became nearer is not noticed
 * until a reconnection or a failover sends it a request.
 */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "chorus_alloc.h"
#include "libchorus_int.h"
#include "ring.h"

#define ROUTE_DOWN_MS 5000u /* how long an unreachable replica is skipped */

struct chorus__route {
  char *addr; /* "host:port" */
  struct chorus_client *child;
  uint64_t down_until; /* uv_now() ms */
  uint32_t srtt_us;    /* smoothed round trip; 0: not measured yet */
  uint64_t handshakes; /* the child's handshakes already sampled */
  uint64_t probed_at;  /* uv_now() ms of the last chorus__connect, +1 */
};

struct chorus__router {
  struct ring_snapshot *snap;
  int *route_of; /* per snapshot node: index in routes[], or -1 */
  bool *alive;   /* per snapshot node */
  struct chorus__route *routes;
  size_t nroutes;
  uint64_t fetched_at;
  bool fetching;
};

/* One routed request: what the fallback needs to resend it. */
struct chorus__hop {
  struct chorus_client *parent;
  size_t route;
  uint8_t *frame; /* copy of the encoded request */
  size_t len;
  uint8_t type;
  uint64_t id;
  bool is_write;
  uint32_t timeout_ms;
  uint64_t sent_ns;    /* uv_hrtime() when handed to the child */
  uint64_t handshakes; /* the child's, then */
  chorus_cb cb;
  void *arg;
};

/* ------------------------------------------------------------------------
 * Learning the ring
 * ------------------------------------------------------------------------ */

static int route_index(struct chorus__router *r, const char *addr) {
  for (size_t i = 0; i < r->nroutes; i++)
    if (strcmp(r->routes[i].addr, addr) == 0)
      return (int)i;
  struct chorus__route *n =
      chorus_realloc(r->routes, (r->nroutes + 1) * sizeof *n);
  if (n == NULL)
    return -1;
  r->routes = n;
  memset(&n[r->nroutes], 0, sizeof n[0]);
  n[r->nroutes].addr = chorus_strdup(addr);
  if (n[r->nroutes].addr == NULL)
    return -1;
  return (int)r->nroutes++;
}

/* Builds the snapshot and the per-node tables from an info result. */
static void learn(struct chorus__router *r, const struct chorus_result *res) {
  struct ring_snapshot *snap = NULL;
  if (chorus__ring_build(res, &snap) != CHORUS_OK)
    return;
  size_t n = ring_snapshot_node_count(snap);
  int *route_of = chorus_calloc(n, sizeof *route_of);
  bool *alive = chorus_calloc(n, sizeof *alive);
  if (route_of == NULL || alive == NULL) {
    chorus_free(route_of);
    chorus_free(alive);
    ring_snapshot_free(snap);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    route_of[i] = -1;
    const struct ring_node *rn = ring_snapshot_node(snap, i);
    for (size_t j = 0; j < res->nnodes; j++) {
      const struct chorus_node_info *ni = &res->nodes[j];
      if (ni->id != rn->id)
        continue;
      if (ni->addr[0] != '\0')
        route_of[i] = route_index(r, ni->addr);
      /* Suspects still count as alive, as they do for the coordinator
       * (SWIM §4.2: suspicion is not yet failure). */
      alive[i] = (ni->member_state == CHORUS_MEMBER_ALIVE ||
                  ni->member_state == CHORUS_MEMBER_SUSPECT ||
                  ni->member_state == CHORUS_MEMBER_UNKNOWN) &&
                 (ni->ring_state == CHORUS_RING_UP ||
                  ni->ring_state == CHORUS_RING_LEAVING);
    }
  }
  ring_snapshot_free(r->snap);
  chorus_free(r->route_of);
  chorus_free(r->alive);
  r->snap = snap;
  r->route_of = route_of;
  r->alive = alive;
}

static void on_ring(struct chorus_client *c, struct chorus_result *res,
                    void *arg) {
  struct chorus__router *r = c->router;
  if (r == NULL)
    return;
  r->fetching = false;
  r->fetched_at = uv_now(c->loop);
  if (res->status == CHORUS_OK) {
    learn(r, res);
    chorus__trace(c,
                  "ring epoch %" PRIu64 " from %s: %zu node(s), "
                  "replication %s",
                  res->epoch, res->server, res->nnodes,
                  res->replication[0] ? res->replication : "?");
  }
}

static void fetch(struct chorus_client *c) {
  struct chorus__router *r = c->router;
  if (r->fetching)
    return;
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_RING_QUERY;
  if (chorus__submit(c, &m, false, true, 0, on_ring, NULL) == CHORUS_OK)
    r->fetching = true;
}

/* ------------------------------------------------------------------------
 * Routing
 * ------------------------------------------------------------------------ */

/* Feeds one round trip (µs) to @rt's smoothed round trip, capped at
 * 4 x srtt (NEAREST BY RTT). */
static void rtt_sample(struct chorus__route *rt, uint64_t us) {
  if (us == 0)
    us = 1; /* 0 means "not measured" */
  if (rt->srtt_us != 0 && us > 4 * (uint64_t)rt->srtt_us)
    us = 4 * (uint64_t)rt->srtt_us;
  if (us > UINT32_MAX / 8)
    us = UINT32_MAX / 8;
  if (rt->srtt_us == 0)
    rt->srtt_us = (uint32_t)us;
  else
    rt->srtt_us = (uint32_t)((int64_t)rt->srtt_us +
                             ((int64_t)us - (int64_t)rt->srtt_us) / 8);
  if (rt->srtt_us == 0)
    rt->srtt_us = 1;
}

/* Takes the HELLO round trip of @rt's child's last handshake, once. */
static void handshake_sample(struct chorus__route *rt) {
  if (rt->child == NULL || rt->child->handshakes == rt->handshakes)
    return;
  rt->handshakes = rt->child->handshakes;
  rtt_sample(rt, rt->child->hello_rtt_us);
}

static struct chorus_client *child_of(struct chorus_client *c, size_t route);

/* Connects @route's child, with nothing to send, to measure it; at most
 * every ROUTE_DOWN_MS. */
static void probe(struct chorus_client *c, size_t route, uint64_t now) {
  struct chorus__route *rt = &c->router->routes[route];
  if (rt->probed_at != 0 && now < rt->probed_at - 1 + ROUTE_DOWN_MS)
    return;
  struct chorus_client *child = child_of(c, route);
  if (child == NULL)
    return;
  rt->probed_at = now + 1;
  chorus__connect(child);
}

int chorus__route_choose(const struct chorus__cand *cand, size_t n) {
  uint32_t best = UINT32_MAX;
  for (size_t i = 0; i < n; i++)
    if (cand[i].usable && cand[i].local)
      return (int)i;
  int first = -1;
  for (size_t i = 0; i < n; i++) {
    if (!cand[i].usable)
      continue;
    if (first < 0)
      first = (int)i;
    if (cand[i].srtt_us == 0)
      best = 0;
    else if (cand[i].srtt_us < best && best > 0)
      best = cand[i].srtt_us;
  }
  if (first < 0 || best == 0)
    return first; /* none, or not all measured: ring order */
  uint64_t slack = best / 5 > 1000 ? best / 5 : 1000;
  for (size_t i = 0; i < n; i++)
    if (cand[i].usable && cand[i].srtt_us <= best + slack)
      return (int)i;
  return -1; /* not reached: the smallest is within its own slack */
}

/* The route of a live natural replica of @key, as chorus__route_choose
 * orders them, or -1. */
static int pick(struct chorus_client *c, const void *key, size_t len) {
  struct chorus__router *r = c->router;
  struct ring_plist pl;
  if (r->snap == NULL ||
      ring_lookup_key(r->snap, key, len, 0, &pl) != CHORUS_OK)
    return -1;
  uint64_t now = uv_now(c->loop);
  struct chorus__cand cand[RING_MAX_REPLICAS];
  int route_at[RING_MAX_REPLICAS];
  assert(pl.n_natural <= RING_MAX_REPLICAS);
  for (uint8_t i = 0; i < pl.n_natural; i++) {
    uint16_t node = pl.r[i].node;
    assert(node < ring_snapshot_node_count(r->snap));
    int route = r->route_of[node];
    assert(route < 0 || (size_t)route < r->nroutes);
    route_at[i] = route;
    if (route >= 0)
      handshake_sample(&r->routes[route]);
    cand[i] = (struct chorus__cand){
        .usable =
            r->alive[node] && route >= 0 && r->routes[route].down_until <= now,
        .local = c->dc != NULL &&
                 strcmp(ring_snapshot_node(r->snap, node)->dc, c->dc) == 0,
        .srtt_us = route >= 0 ? r->routes[route].srtt_us : 0};
  }
  int i = chorus__route_choose(cand, pl.n_natural);
  if (i >= 0 && !cand[i].local)
    for (uint8_t k = 0; k < pl.n_natural; k++)
      if (cand[k].usable && cand[k].srtt_us == 0)
        probe(c, (size_t)route_at[k], now);
  return i < 0 ? -1 : route_at[i];
}

static struct chorus_client *child_of(struct chorus_client *c, size_t route) {
  assert(route < c->router->nroutes);
  struct chorus__route *rt = &c->router->routes[route];
  if (rt->child != NULL)
    return rt->child;
  struct chorus_config cfg = c->cfg;
  cfg.cluster = c->cluster;
  cfg.credentials = c->credentials;
  cfg.dc = c->dc;
  cfg.token_aware = false;
  cfg.seed = chorus__next_op_id(c);
  struct chorus_client *child = NULL;
  if (chorus__new(c->loop, rt->addr, &cfg, &child, NULL) != CHORUS_OK)
    return NULL;
  child->ids = c->ids;
  child->login = c->login; /* the parent's keys: no Argon2id per node */
  child->login_owned = false;
  rt->child = child;
  return child;
}

static void hop_free(struct chorus__hop *h) {
  chorus_free(h->frame);
  chorus_free(h);
}

/* A routed request ended. Client-side failures that left nothing applied
 * fall back to the seeds; everything else is the answer. */
static void on_hop(struct chorus_client *child, struct chorus_result *res,
                   void *arg) {
  struct chorus__hop *h = arg;
  struct chorus_client *c = h->parent;
  if (!c->closing && c->router != NULL) {
    /* A request that waited for a (re)connection measured the connect
     * too: the handshake's own round trip stands for it. */
    struct chorus__route *rt = &c->router->routes[h->route];
    if (child->handshakes == h->handshakes && res->from_node)
      rtt_sample(rt, (uv_hrtime() - h->sent_ns) / 1000);
    handshake_sample(rt);
  }
  bool fallback =
      !res->from_node && !res->maybe_applied &&
      (res->status == CHORUS_EUNAVAILABLE || res->status == CHORUS_ETIMEDOUT ||
       res->status == CHORUS_ECLOSED || res->status == CHORUS_EMALFORMED) &&
      !c->closing && c->router != NULL;
  if (fallback) {
    c->router->routes[h->route].down_until = uv_now(c->loop) + ROUTE_DOWN_MS;
    chorus__trace(c,
                  "replica %s unreachable (%s): back to the seeds, skipped "
                  "for %u ms",
                  c->router->routes[h->route].addr, res->errmsg, ROUTE_DOWN_MS);
    fetch(c); /* membership may have changed */
    uint8_t *frame = h->frame;
    h->frame = NULL;
    if (chorus__submit_frame(c, frame, h->len, h->type, h->id, h->is_write,
                             false, h->timeout_ms, h->cb,
                             h->arg) == CHORUS_OK) {
      hop_free(h);
      return;
    }
  }
  h->cb(c, res, h->arg);
  hop_free(h);
}

int chorus__route_submit(struct chorus_client *c, const void *key,
                         size_t key_len, struct wire_msg *m, bool is_write,
                         uint32_t timeout_ms, chorus_cb cb, void *arg) {
  const struct wire_options *o = wire_options_of(m);
  if (o != NULL && o->keyspace.len > WIRE_MAX_KEYSPACE_NAME)
    return chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "keyspace name of %zu bytes: at most %u",
                       o->keyspace.len, WIRE_MAX_KEYSPACE_NAME);
  if (!c->cfg.token_aware || c->closing || cb == NULL)
    return chorus__submit(c, m, is_write, false, timeout_ms, cb, arg);
  if (c->router == NULL) {
    c->router = chorus_calloc(1, sizeof *c->router);
    if (c->router == NULL)
      return chorus__submit(c, m, is_write, false, timeout_ms, cb, arg);
  }
  struct chorus__router *r = c->router;
  uv_update_time(c->loop);
  if (r->snap == NULL ||
      uv_now(c->loop) - r->fetched_at >= c->cfg.ring_refresh_ms)
    fetch(c);
  int route = pick(c, key, key_len);
  struct chorus_client *child = route >= 0 ? child_of(c, (size_t)route) : NULL;
  if (child == NULL)
    return chorus__submit(c, m, is_write, false, timeout_ms, cb, arg);
  uint8_t *frame = NULL;
  size_t len = 0;
  int rc = chorus__encode(c, m, &frame, &len);
  if (rc != CHORUS_OK)
    return rc;
  struct chorus__hop *h = chorus_calloc(1, sizeof *h);
  uint8_t *copy = chorus_memdup(frame, len);
  if (h == NULL || copy == NULL) {
    chorus_free(h);
    chorus_free(copy);
    return chorus__submit_frame(c, frame, len, m->type, m->request_id, is_write,
                                false, timeout_ms, cb, arg);
  }
  *h = (struct chorus__hop){.parent = c,
                            .route = (size_t)route,
                            .frame = copy,
                            .len = len,
                            .type = m->type,
                            .id = m->request_id,
                            .is_write = is_write,
                            .timeout_ms = timeout_ms,
                            .sent_ns = uv_hrtime(),
                            .handshakes = child->handshakes,
                            .cb = cb,
                            .arg = arg};
  rc = chorus__submit_frame(child, frame, len, m->type, m->request_id, is_write,
                            false, timeout_ms, on_hop, h);
  if (rc != CHORUS_OK) {
    copy = h->frame;
    h->frame = NULL;
    hop_free(h);
    return chorus__submit_frame(c, copy, len, m->type, m->request_id, is_write,
                                false, timeout_ms, cb, arg);
  }
  return CHORUS_OK;
}

void chorus__route_close(struct chorus_client *c) {
  struct chorus__router *r = c->router;
  if (r == NULL)
    return;
  /* Children cancel their requests first: on_hop sees c->closing and
   * hands each ECANCELED to its caller. */
  for (size_t i = 0; i < r->nroutes; i++)
    chorus_client_close(r->routes[i].child);
  for (size_t i = 0; i < r->nroutes; i++)
    chorus_free(r->routes[i].addr);
  chorus_free(r->routes);
  ring_snapshot_free(r->snap);
  chorus_free(r->route_of);
  chorus_free(r->alive);
  chorus_free(r);
  c->router = NULL;
}
