/* core_sim_adapter.c: repl + SWIM as simulator nodes (core_sim_adapter.h). */
#include "core_sim_adapter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "crdt.h"
#include "ring.h"
#include "store.h"
#include "swim.h"
#include "wire.h"

/* Message tags: the first byte of every simulated packet. */
enum {
  TAG_SWIM_DGRAM = 'd',
  TAG_SWIM_STREAM = 's',
  TAG_REPL = 'r',
};

/* SWIM's deadline timer: top bit plus a generation. Every other id is a
 * slot of the repl timer table plus one. */
#define TIMER_SWIM (1ULL << 63)
/* The supervisor's retry of a failed start. */
#define TIMER_BOOT (1ULL << 62)

#define TRACE(n, ...) chorus_trace((n)->tracer, "replsim", __VA_ARGS__)

/* One incarnation of one node: from create() to destroy() (a crash). */
struct rnode {
  struct core_sim_options opt;
  int index, nodes;
  const chorus_node_id *ids;
  const struct chorus_tracer *tracer;
  const int *dc;
  struct ring_snapshot *ring;
  struct repl_config rcfg; /* for repl_new at SIM_EV_START */
  struct repl *repl;       /* from SIM_EV_START */
  struct swim *sw;         /* NULL when swim is off */
  struct store *store;     /* lent at SIM_EV_START */
  struct sim_effects *fx;  /* during handle() and sim_node_do only */
  struct repl_effects rfx; /* repl's effects, bound to this node */
  chorus_ms now, wall;     /* the current event's clocks */
  int err;                 /* first error raised inside a SWIM callback */
  int exited;              /* the store's fsync failed: silent until killed */
  int restarted;           /* this incarnation follows a crash */
  /* SWIM's one timer. */
  uint64_t swim_gen;
  chorus_ms swim_armed_at;
  int swim_armed;
  /* repl's timers: slot i holds repl's id of simulator timer i + 1. */
  uint64_t *tslot;
  uint32_t *tfree; /* free slots, a stack */
  uint32_t nslots, nfree;
  /* planted_early_ack: writes answered before repl did. */
  uint64_t early[SIM_MAX_CLIENTS];
  size_t nearly;
  /* Encoding scratch. */
  uint8_t *buf;
  size_t cap;
  /* inspect()'s answer, borrowed by the simulator until the next call. */
  struct crdt_obj obj;
  int have_obj;
  struct sim_buf *view;
  size_t viewcap;
};

static const struct core_sim_options default_opt = {.replication = "3"};

static uint64_t fnv64(const void *d, size_t n) {
  const unsigned char *b = d;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static int index_of(const struct rnode *n, chorus_node_id id) {
  for (int i = 0; i < n->nodes; i++)
    if (n->ids[i] == id)
      return i;
  return -1;
}

static int reserve(struct rnode *n, size_t need) {
  if (need <= n->cap)
    return CHORUS_OK;
  size_t cap = n->cap ? n->cap : 1024;
  while (cap < need)
    cap *= 2;
  uint8_t *p = chorus_realloc(n->buf, cap);
  if (p == NULL)
    return CHORUS_ENOMEM;
  n->buf = p;
  n->cap = cap;
  return CHORUS_OK;
}

/* ========================================================================
 * repl's effects
 * ======================================================================== */

/* send_wire: @m as a tagged whole frame over a stream to node @to. */
static int send_wire(struct rnode *n, int to, const struct wire_msg *m) {
  size_t size = wire_encoded_size(m);
  int rc = reserve(n, size + 1);
  if (rc != CHORUS_OK)
    return rc;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  size_t written;
  n->buf[0] = TAG_REPL;
  rc = wire_encode(m, n->buf + 1, size, &written, errmsg);
  if (rc != CHORUS_OK) {
    TRACE(n, "BUG: %s to n%d does not encode: %s", wire_type_name(m->type), to,
          errmsg);
    return rc;
  }
  return sim_fx_send_stream(n->fx, to, n->buf, written + 1);
}

static int fx_send(void *ctx, chorus_node_id to, const struct wire_msg *m) {
  struct rnode *n = ctx;
  int i = index_of(n, to);
  if (i < 0 || i == n->index) {
    TRACE(n, "BUG: %s to node %" PRIx64 " (not a peer)",
          wire_type_name(m->type), to);
    return CHORUS_EINVAL;
  }
  return send_wire(n, i, m);
}

/* Points @r's values at the list's items through the node's view array
 * (grown as needed; borrowed until the next reply). */
static int view_of(struct rnode *n, const struct wire_bytes_list *l,
                   struct sim_reply *r) {
  if (l->n > n->viewcap) {
    struct sim_buf *v = chorus_realloc(n->view, l->n * sizeof *v);
    if (v == NULL)
      return CHORUS_ENOMEM;
    n->view = v;
    n->viewcap = l->n;
  }
  for (size_t i = 0; i < l->n; i++)
    n->view[i] = (struct sim_buf){l->items[i].ptr, l->items[i].len};
  r->values = n->view;
  r->nvalues = l->n;
  return CHORUS_OK;
}

static int fx_reply(void *ctx, const struct repl_origin *origin,
                    const struct wire_msg *m, bool maybe_applied) {
  struct rnode *n = ctx;
  if (origin->from_peer) {
    /* A forwarded request's answer goes back to the forwarding peer, which
     * relays it to its client (repl.h, THE WRITE PATH), under the request
     * id the peer used: repl keeps it as the origin's cookie. */
    struct wire_msg c = *m;
    c.request_id = origin->cookie;
    return fx_send(ctx, origin->peer, &c);
  }
  for (size_t i = 0; i < n->nearly; i++)
    if (n->early[i] == origin->cookie) {
      n->early[i] = n->early[--n->nearly];
      return CHORUS_OK; /* the planted bug answered already */
    }
  struct sim_reply r = {.id = origin->cookie};
  switch (m->type) {
  case WIRE_GET_REPLY:
    if (view_of(n, &m->get_reply.values, &r) != CHORUS_OK)
      return CHORUS_ENOMEM;
    r.context = m->get_reply.context.ptr;
    r.clen = m->get_reply.context.len;
    break;
  case WIRE_SET_REPLY:
    if (view_of(n, &m->set_reply.members, &r) != CHORUS_OK)
      return CHORUS_ENOMEM;
    break;
  case WIRE_COUNTER_REPLY:
    r.counter = m->counter_reply.value;
    break;
  case WIRE_WRITE_REPLY:
    break;
  case WIRE_ERROR:
    r.status = m->error.code < 0 ? m->error.code : CHORUS_EINTERNAL;
    r.maybe_applied = maybe_applied;
    TRACE(n, "req %" PRIu64 " -> %s%s: %.*s", origin->cookie,
          chorus_errname(r.status), maybe_applied ? " (maybe applied)" : "",
          (int)m->error.text.len, (const char *)m->error.text.ptr);
    break;
  default:
    TRACE(n, "BUG: reply of type %s to req %" PRIu64, wire_type_name(m->type),
          origin->cookie);
    return CHORUS_EINTERNAL;
  }
  return sim_fx_reply(n->fx, &r);
}

static int fx_timer(void *ctx, uint64_t id, chorus_ms after_ms) {
  struct rnode *n = ctx;
  uint32_t slot;
  if (n->nfree > 0) {
    slot = n->tfree[--n->nfree];
  } else {
    uint32_t cap = n->nslots ? n->nslots * 2 : 64;
    uint64_t *s = chorus_realloc(n->tslot, cap * sizeof *s);
    if (s == NULL)
      return CHORUS_ENOMEM;
    n->tslot = s;
    uint32_t *f = chorus_realloc(n->tfree, cap * sizeof *f);
    if (f == NULL)
      return CHORUS_ENOMEM;
    n->tfree = f;
    for (uint32_t i = cap; i > n->nslots + 1; i--)
      n->tfree[n->nfree++] = i - 1;
    slot = n->nslots;
    n->nslots = cap;
  }
  n->tslot[slot] = id;
  return sim_fx_timer(n->fx, (uint64_t)slot + 1, after_ms);
}

static int fx_sync(void *ctx, chorus_seq seq, uint64_t token) {
  struct rnode *n = ctx;
  return sim_fx_sync(n->fx, seq, token);
}

/* ========================================================================
 * SWIM's effects
 * ======================================================================== */

static void sw_send(void *ctx, const char *addr, enum swim_channel ch,
                    const void *data, size_t len) {
  struct rnode *n = ctx;
  if (addr[0] != 'n' || n->fx == NULL)
    return;
  int to = atoi(addr + 1);
  if (to < 0 || to >= n->nodes || to == n->index)
    return;
  int rc = reserve(n, len + 1);
  if (rc == CHORUS_OK) {
    n->buf[0] = ch == SWIM_DATAGRAM ? TAG_SWIM_DGRAM : TAG_SWIM_STREAM;
    memcpy(n->buf + 1, data, len);
    rc = ch == SWIM_DATAGRAM ? sim_fx_send(n->fx, to, n->buf, len + 1)
                             : sim_fx_send_stream(n->fx, to, n->buf, len + 1);
  }
  if (rc != CHORUS_OK && n->err == CHORUS_OK)
    n->err = rc;
}

static void sw_changed(void *ctx, const struct swim_member *m,
                       enum swim_state old, int is_new, int ring_changed) {
  struct rnode *n = ctx;
  (void)ring_changed;
  if (m->id == n->ids[n->index] || n->fx == NULL || n->err != CHORUS_OK)
    return;
  bool alive = m->state == SWIM_ALIVE || m->state == SWIM_SUSPECT;
  bool was = old == SWIM_ALIVE || old == SWIM_SUSPECT;
  if (!is_new && alive == was)
    return; /* incarnation or metadata only: repl does not care */
  TRACE(n, "swim: n%d %s -> repl %s", index_of(n, m->id),
        swim_state_name(m->state), alive ? "alive" : "down");
  int rc = repl_member(n->repl, m->id, alive, n->now, n->wall, &n->rfx);
  if (rc != CHORUS_OK)
    n->err = rc;
}

static void fill_meta(struct swim_meta *m, int i, int dc) {
  memset(m, 0, sizeof *m);
  snprintf(m->addr, sizeof m->addr, "n%d", i);
  snprintf(m->dc, sizeof m->dc, "dc%d", dc);
  snprintf(m->rack, sizeof m->rack, "r%d", i % 3);
  m->ownership = RING_NORMAL;
}

/* swim_rearm: one pending timer, at the instance's next deadline. */
static int swim_rearm(struct rnode *n) {
  if (n->sw == NULL)
    return CHORUS_OK;
  chorus_ms d = swim_next_deadline(n->sw);
  if (d == UINT64_MAX || (n->swim_armed && d >= n->swim_armed_at))
    return CHORUS_OK;
  n->swim_gen = (n->swim_gen + 1) & ~TIMER_SWIM;
  n->swim_armed = 1;
  n->swim_armed_at = d;
  return sim_fx_timer(n->fx, TIMER_SWIM | n->swim_gen,
                      d > n->now ? d - n->now : 0);
}

/* ========================================================================
 * The node
 * ======================================================================== */

static void rn_destroy(void *state) {
  struct rnode *n = state;
  if (n == NULL)
    return;
  repl_free(n->repl);
  swim_free(n->sw);
  ring_snapshot_free(n->ring);
  if (n->have_obj)
    crdt_obj_free(&n->obj);
  chorus_free(n->tslot);
  chorus_free(n->tfree);
  chorus_free(n->buf);
  chorus_free(n->view);
  chorus_free(n);
}

static int build_ring(struct rnode *n, const struct sim_node_config *cfg) {
  struct ring_replication rs;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  int rc = ring_replication_parse(n->opt.replication, &rs, errmsg);
  if (rc != CHORUS_OK) {
    TRACE(n, "bad replication option: %s", errmsg);
    return rc;
  }
  struct ring_node *rn = chorus_calloc((size_t)cfg->nodes, sizeof *rn);
  if (rn == NULL)
    return CHORUS_ENOMEM;
  for (int i = 0; i < cfg->nodes; i++) {
    rn[i].id = cfg->ids[i];
    snprintf(rn[i].dc, sizeof rn[i].dc, "dc%d", cfg->dc[i]);
    snprintf(rn[i].rack, sizeof rn[i].rack, "r%d", i % 3);
    rn[i].state = RING_NORMAL;
    rn[i].vnodes = n->opt.vnodes;
  }
  rc = ring_snapshot_build(rn, (size_t)cfg->nodes, &rs, 1, &n->ring, errmsg);
  chorus_free(rn);
  if (rc != CHORUS_OK)
    TRACE(n, "ring: %s", errmsg);
  return rc;
}

static int rn_create(void **state, const struct sim_node_config *cfg) {
  struct rnode *n = chorus_calloc(1, sizeof *n);
  if (n == NULL)
    return CHORUS_ENOMEM;
  n->opt = cfg->arg != NULL ? *(const struct core_sim_options *)cfg->arg
                            : default_opt;
  if (n->opt.replication == NULL)
    n->opt.replication = "3";
  if (n->opt.vnodes == 0)
    n->opt.vnodes = 64;
  if (n->opt.timeout_ms == 0)
    n->opt.timeout_ms = 1000;
  n->index = cfg->index;
  n->nodes = cfg->nodes;
  n->ids = cfg->ids;
  n->dc = cfg->dc;
  n->tracer = cfg->tracer;
  n->rfx = (struct repl_effects){.ctx = n,
                                 .send = fx_send,
                                 .reply = fx_reply,
                                 .timer = fx_timer,
                                 .sync = fx_sync};
  int rc = build_ring(n, cfg);
  if (rc != CHORUS_OK)
    goto err_after_node;

  /* repl_new needs the store, lent with SIM_EV_START: keep the config. */
  struct repl_config *c = &n->rcfg;
  repl_config_defaults(c, cfg->ids[cfg->index]);
  snprintf(c->dc, sizeof c->dc, "dc%d", cfg->dc[cfg->index]);
  c->seed = cfg->seed;
  if (n->opt.r != 0)
    c->r = n->opt.r;
  if (n->opt.w != 0)
    c->w = n->opt.w;
  c->timeout_ms = n->opt.timeout_ms;
  if (n->opt.sloppy) {
    c->sloppy = true;
    c->sloppy_default = true;
  }
  if (n->opt.read_repair != 0)
    c->read_repair = n->opt.read_repair;
  if (n->opt.hint_max_bytes != 0)
    c->hint_max_bytes = n->opt.hint_max_bytes;
  if (n->opt.hint_max_age_ms != 0)
    c->hint_max_age_ms = n->opt.hint_max_age_ms;
  if (n->opt.hint_interval_ms != 0)
    c->hint_interval = n->opt.hint_interval_ms;
  if (n->opt.hint_batch != 0)
    c->hint_batch = n->opt.hint_batch;
  c->tracer = cfg->tracer;

  if (!n->opt.no_swim) {
    struct swim_config sc;
    memset(&sc, 0, sizeof sc);
    sc.id = cfg->ids[cfg->index];
    fill_meta(&sc.meta, cfg->index, cfg->dc[cfg->index]);
    snprintf(sc.cluster, sizeof sc.cluster, "replsim");
    for (unsigned i = 0; i < SWIM_KEY_BYTES; i++)
      sc.key[i] = (uint8_t)(i * 7 + 1);
    if (n->opt.swim_lan)
      swim_timing_lan(&sc.timing);
    else
      swim_timing_local(&sc.timing);
    /* Its own stream, not repl's: the two instances must not draw alike. */
    sc.seed = cfg->seed ^ 0x5317a5317aULL;
    sc.clock_bound_ms = 100;
    sc.fx.ctx = n;
    sc.fx.send = sw_send;
    sc.fx.member_changed = sw_changed;
    sc.tracer = cfg->tracer;
    rc = swim_new(&sc, &n->sw);
    if (rc != CHORUS_OK)
      goto err_after_node;
  }
  *state = n;
  return CHORUS_OK;
err_after_node:
  rn_destroy(n);
  return rc;
}

/* boot: repl first (its epoch barrier gates client requests), then SWIM.
 * A store error while starting (an injected read or write fault) is what
 * makes chorusd exit at boot; its supervisor starts it again, which is
 * modelled here by a fresh instance 100 ms later (the failed one emitted
 * no effect). Every start knows every node, as a saved member table would;
 * a restart also joins through two other nodes, so that the cluster hears
 * of its new incarnation at once. */
static int boot(struct rnode *n) {
  int rc = repl_new(&n->rcfg, n->store, n->ring, &n->repl);
  if (rc != CHORUS_OK)
    return rc;
  rc = repl_start(n->repl, n->now, n->wall, &n->rfx);
  if (rc == CHORUS_EIO || rc == CHORUS_ENOSPC || rc == CHORUS_ESYNCFAILED) {
    TRACE(n, "start failed: %s (%s); the supervisor retries in 100 ms",
          chorus_errname(rc), store_errmsg(n->store));
    repl_free(n->repl);
    n->repl = NULL;
    return sim_fx_timer(n->fx, TIMER_BOOT, 100);
  }
  if (rc != CHORUS_OK || n->sw == NULL)
    return rc;
  rc = swim_start(n->sw, n->now);
  for (int k = 0; k < n->nodes && rc == CHORUS_OK; k++) {
    if (k == n->index)
      continue;
    struct swim_meta m;
    fill_meta(&m, k, n->dc[k]);
    rc = swim_add_member(n->sw, n->ids[k], &m, 0, n->now);
  }
  if (rc != CHORUS_OK || !n->restarted || n->nodes < 2)
    return rc;
  char addrs[2][16];
  const char *seeds[2];
  size_t nseeds = 0;
  for (int k = 0; k < n->nodes && nseeds < 2; k++) {
    if (k == n->index)
      continue;
    snprintf(addrs[nseeds], sizeof addrs[nseeds], "n%d", k);
    seeds[nseeds] = addrs[nseeds];
    nseeds++;
  }
  return swim_join(n->sw, seeds, nseeds, n->now, n->wall);
}

static int on_message(struct rnode *n, const struct sim_event *ev) {
  const uint8_t *d = ev->msg.data;
  size_t len = ev->msg.len;
  if (len < 1)
    return CHORUS_EMALFORMED;
  if (d[0] == TAG_SWIM_DGRAM || d[0] == TAG_SWIM_STREAM) {
    if (n->sw == NULL)
      return CHORUS_OK;
    return swim_handle_packet(n->sw, d + 1, len - 1, ev->now, ev->wall);
  }
  if (d[0] != TAG_REPL)
    return CHORUS_EMALFORMED;
  /* Our own encoder wrote this frame: any decode failure is a bug. */
  if (len < 1 + WIRE_FRAME_PREFIX ||
      ((uint32_t)d[1] << 24 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 8 |
       (uint32_t)d[4]) != len - 1 - WIRE_FRAME_PREFIX) {
    TRACE(n, "BUG: repl frame from n%d: bad length prefix", ev->msg.from);
    return CHORUS_EMALFORMED;
  }
  struct wire_msg m;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  const struct wire_limits lim = WIRE_LIMITS_PEER;
  int rc = wire_decode(d + 1 + WIRE_FRAME_PREFIX, len - 1 - WIRE_FRAME_PREFIX,
                       &lim, &m, errmsg);
  if (rc != CHORUS_OK) {
    TRACE(n, "BUG: repl frame from n%d does not decode: %s", ev->msg.from,
          errmsg);
    return rc;
  }
  rc = repl_peer(n->repl, n->ids[ev->msg.from], &m, ev->now, ev->wall, &n->rfx);
  wire_msg_free(&m);
  return rc;
}

static int on_request(struct rnode *n, const struct sim_event *ev) {
  const struct sim_request *q = &ev->req;
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.request_id = q->id;
  struct wire_options o = {.r = q->r, .w = q->w};
  struct wire_bytes key = {q->key, q->klen};
  struct wire_bytes member = {q->value, q->vlen};
  struct wire_bytes_list members = {.n = 1, .items = &member};
  switch (q->op) {
  case SIM_OP_GET:
    m.type = WIRE_GET;
    m.get = (struct wire_get){.key = key, .opts = o};
    break;
  case SIM_OP_PUT:
    m.type = WIRE_PUT;
    m.put = (struct wire_put){.key = key,
                              .value = {q->value, q->vlen},
                              .context = {q->context, q->clen},
                              .opts = o};
    break;
  case SIM_OP_COUNTER_ADD:
    m.type = WIRE_COUNTER_ADD;
    m.counter_add = (struct wire_counter_add){
        .key = key, .delta = q->amount, .op_id = q->id, .opts = o};
    break;
  case SIM_OP_COUNTER_READ:
    m.type = WIRE_COUNTER_READ;
    m.counter_read = (struct wire_counter_read){.key = key, .opts = o};
    break;
  case SIM_OP_SET_ADD:
    m.type = WIRE_SET_ADD;
    m.set_add =
        (struct wire_set_add){.key = key, .members = members, .opts = o};
    break;
  case SIM_OP_SET_READ:
    m.type = WIRE_SET_READ;
    m.set_read = (struct wire_set_read){.key = key, .opts = o};
    break;
  default: {
    struct sim_reply r = {.id = q->id, .status = CHORUS_ENOTSUP};
    return sim_fx_reply(n->fx, &r);
  }
  }
  if (n->opt.planted_early_ack && n->nearly < SIM_MAX_CLIENTS &&
      (q->op == SIM_OP_PUT || q->op == SIM_OP_COUNTER_ADD ||
       q->op == SIM_OP_SET_ADD)) {
    struct sim_reply r = {.id = q->id};
    int rc = sim_fx_reply(n->fx, &r);
    if (rc != CHORUS_OK)
      return rc;
    n->early[n->nearly++] = q->id;
  }
  struct repl_origin origin = {.from_peer = false, .cookie = q->id};
  return repl_client(n->repl, &m, &origin, ev->now, ev->wall, &n->rfx);
}

static int on_timer(struct rnode *n, const struct sim_event *ev) {
  uint64_t id = ev->timer.id;
  if (id == TIMER_BOOT)
    return n->repl == NULL ? boot(n) : CHORUS_OK;
  if (id & TIMER_SWIM) {
    if (n->sw == NULL || !n->swim_armed || id != (TIMER_SWIM | n->swim_gen))
      return CHORUS_OK; /* stale */
    n->swim_armed = 0;
    return swim_tick(n->sw, ev->now, ev->wall);
  }
  if (id == 0 || id > n->nslots)
    return CHORUS_EINTERNAL;
  uint32_t slot = (uint32_t)(id - 1);
  uint64_t rid = n->tslot[slot];
  n->tfree[n->nfree++] = slot;
  return repl_timer(n->repl, rid, ev->now, ev->wall, &n->rfx);
}

/* down_event: an event while no instance runs (between a failed start and
 * its retry): a client's connection is refused, everything else is lost
 * as it would be at a dead process. */
static int down_event(struct rnode *n, const struct sim_event *ev) {
  if (ev->kind == SIM_EV_TIMER && ev->timer.id == TIMER_BOOT)
    return boot(n);
  if (ev->kind == SIM_EV_REQUEST) {
    struct sim_reply r = {.id = ev->req.id, .status = CHORUS_ECLOSED};
    return sim_fx_reply(n->fx, &r);
  }
  return CHORUS_OK;
}

static int rn_handle(void *state, const struct sim_event *ev,
                     struct sim_effects *fx) {
  struct rnode *n = state;
  if (n->exited)
    return CHORUS_OK; /* an exited process hears nothing */
  n->fx = fx;
  n->now = ev->now;
  n->wall = ev->wall;
  n->err = CHORUS_OK;
  int rc = CHORUS_OK;
  if (ev->kind != SIM_EV_START && n->repl == NULL) {
    rc = down_event(n, ev);
    goto out;
  }
  switch (ev->kind) {
  case SIM_EV_START:
    n->store = ev->start.store;
    n->restarted = ev->start.restarted;
    rc = boot(n);
    break;
  case SIM_EV_MESSAGE:
    rc = on_message(n, ev);
    break;
  case SIM_EV_TIMER:
    rc = on_timer(n, ev);
    break;
  case SIM_EV_REQUEST:
    rc = on_request(n, ev);
    break;
  case SIM_EV_SYNC_DONE:
    rc = repl_sync_done(n->repl, ev->sync.token, ev->sync.status, ev->now,
                        ev->wall, &n->rfx);
    break;
  }
  if (rc == CHORUS_OK)
    rc = n->err;
out:
  if (rc == CHORUS_OK && n->repl != NULL)
    rc = swim_rearm(n);
  n->fx = NULL;
  if (rc == CHORUS_ESYNCFAILED) {
    /* The fsyncgate rule (store.h): the process exits and its supervisor
     * restarts it; the simulator does exactly that after a failed sync. */
    TRACE(n, "store sync failed: the node exits");
    n->exited = 1;
    return CHORUS_OK;
  }
  if (rc != CHORUS_OK)
    TRACE(n, "event %d failed: %s", (int)ev->kind, chorus_errname(rc));
  return rc;
}

/* ========================================================================
 * Inspection
 * ======================================================================== */

static enum crdt_type crdt_type_of(enum sim_op_type t) {
  switch (t) {
  case SIM_TYPE_KV:
    return CRDT_KV;
  case SIM_TYPE_COUNTER:
    return CRDT_COUNTER;
  case SIM_TYPE_SET:
    return CRDT_SET;
  }
  return CRDT_NONE;
}

/* load_obj: node's object of @key from @store into *@obj (initialised
 * empty of @type when absent). Errors: store errors, CHORUS_ECORRUPT,
 * CHORUS_ENOMEM. */
static int load_obj(struct store *store, enum crdt_type type, const void *key,
                    size_t klen, struct crdt_obj *obj, int *found) {
  unsigned char *dkey = chorus_malloc(STORE_TOKEN_PREFIX + klen);
  if (dkey == NULL)
    return CHORUS_ENOMEM;
  size_t dlen = store_data_key(dkey, ring_token_of(key, klen), key, klen);
  void *val;
  size_t vlen;
  int rc = store_get(store, STORE_DATA, dkey, dlen, &val, &vlen);
  chorus_free(dkey);
  *found = 0;
  if (rc == CHORUS_ENOTFOUND) {
    crdt_obj_init(obj, type);
    return CHORUS_OK;
  }
  if (rc != CHORUS_OK)
    return rc;
  rc = crdt_obj_decode(obj, type, val, vlen, NULL);
  chorus_free(val);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK)
    return CHORUS_ECORRUPT;
  *found = 1;
  return CHORUS_OK;
}

static int view_reserve(struct rnode *n, size_t k) {
  if (k <= n->viewcap)
    return CHORUS_OK;
  struct sim_buf *v = chorus_realloc(n->view, k * sizeof *v);
  if (v == NULL)
    return CHORUS_ENOMEM;
  n->view = v;
  n->viewcap = k;
  return CHORUS_OK;
}

/* is_natural: whether this node is a natural replica of @key in its ring
 * (repl_is_replica's answer, also while no instance runs). */
static int is_natural(const struct rnode *n, const void *key, size_t klen) {
  struct ring_plist pl;
  if (ring_lookup_key(n->ring, key, klen, 0, &pl) != CHORUS_OK)
    return 0;
  for (int i = 0; i < pl.n_natural; i++)
    if (pl.r[i].id == n->ids[n->index])
      return 1;
  return 0;
}

static int rn_inspect(void *state, enum sim_op_type type, const void *key,
                      size_t klen, struct sim_replica_view *out) {
  struct rnode *n = state;
  memset(out, 0, sizeof *out);
  if (!is_natural(n, key, klen))
    return CHORUS_ENOTFOUND;
  if (n->store == NULL)
    return CHORUS_OK; /* not started yet: holds nothing */
  if (n->have_obj) {
    crdt_obj_free(&n->obj);
    n->have_obj = 0;
  }
  int found;
  int rc = load_obj(n->store, crdt_type_of(type), key, klen, &n->obj, &found);
  if (rc != CHORUS_OK)
    return rc;
  n->have_obj = 1;
  const struct crdt_obj *o = &n->obj;
  size_t k = 0;
  switch (o->type) {
  case CRDT_KV:
    if ((rc = view_reserve(n, o->u.kv.n)) != CHORUS_OK)
      return rc;
    for (uint32_t i = 0; i < o->u.kv.n; i++)
      if (!o->u.kv.sib[i].tombstone)
        n->view[k++] =
            (struct sim_buf){o->u.kv.sib[i].value, o->u.kv.sib[i].len};
    break;
  case CRDT_SET:
    if ((rc = view_reserve(n, o->u.set.n)) != CHORUS_OK)
      return rc;
    for (uint32_t i = 0; i < o->u.set.n; i++)
      n->view[k++] = (struct sim_buf){o->u.set.e[i].data, o->u.set.e[i].len};
    break;
  case CRDT_COUNTER:
    rc = pncounter_value(&o->u.counter, &out->counter);
    if (rc != CHORUS_OK)
      return rc;
    break;
  default:
    return CHORUS_ECORRUPT;
  }
  out->values = n->view;
  out->nvalues = k;
  if (!found) {
    out->digest = 0; /* absent: the state of a replica that never heard */
    return CHORUS_OK;
  }
  size_t size = crdt_obj_encoded_size(o);
  if ((rc = reserve(n, size)) != CHORUS_OK)
    return rc;
  size_t written;
  rc = crdt_obj_encode(o, n->buf, size, &written);
  if (rc != CHORUS_OK)
    return rc;
  out->digest = fnv64(n->buf, written);
  return CHORUS_OK;
}

const struct sim_node_ops core_sim_ops = {
    .name = "repl",
    .create = rn_create,
    .handle = rn_handle,
    .inspect = rn_inspect,
    .destroy = rn_destroy,
};

/* ========================================================================
 * Presets
 * ======================================================================== */

static const struct core_sim_preset presets[] = {
    {"rw11", "3 nodes, N=3, R=1 W=1", 3, 1, 1, 1, {.replication = "3"}},
    {"rw22", "3 nodes, N=3, R=2 W=2", 3, 1, 2, 2, {.replication = "3"}},
    {"rw13", "3 nodes, N=3, R=1 W=3", 3, 1, 1, 3, {.replication = "3"}},
    {"rw31", "3 nodes, N=3, R=3 W=1", 3, 1, 3, 1, {.replication = "3"}},
    {"n5",
     "5 nodes, N=3, QUORUM (forwarding)",
     5,
     1,
     0,
     0,
     {.replication = "3"}},
    {"dc2",
     "6 nodes, 2 dcs, dc0:3,dc1:3, LOCAL_QUORUM",
     6,
     2,
     WIRE_LOCAL_QUORUM,
     WIRE_LOCAL_QUORUM,
     {.replication = "dc0:3,dc1:3", .swim_lan = 1}},
    {NULL, NULL, 0, 0, 0, 0, {0}},
};

const struct core_sim_preset *core_sim_presets(void) {
  return presets;
}

const struct core_sim_preset *core_sim_preset_find(const char *name) {
  for (const struct core_sim_preset *p = presets; p->name != NULL; p++)
    if (strcmp(p->name, name) == 0)
      return p;
  return NULL;
}

void core_sim_preset_apply(struct sim_run_config *rc,
                           const struct core_sim_preset *p) {
  sim_run_defaults(rc, &core_sim_ops);
  rc->sim.nodes = p->nodes;
  rc->sim.dcs = p->dcs;
  rc->sim.ops_arg = (void *)(uintptr_t)&p->opt;
  rc->r = p->r;
  rc->w = p->w;
}

void core_sim_brutal(struct sim_run_config *rc) {
  rc->swarm = 0;
  rc->sim.faults = (struct sim_faults){.drop = 0.3,
                                       .partition = 2,
                                       .clog = 2,
                                       .crash = 3,
                                       .store_fault = 1,
                                       .clock_jump = 0.5,
                                       .tail_ms = 10,
                                       .drift_ppm = 1000,
                                       .offset_ms = 2000,
                                       .fsync_ms = 20};
}

/* ========================================================================
 * Looking inside
 * ======================================================================== */

struct repl *core_sim_repl(struct sim *s, int node) {
  struct rnode *n = sim_node_state(s, node);
  return n != NULL ? n->repl : NULL;
}

chorus_node_id core_sim_id(struct sim *s, int node) {
  for (int i = 0; i < sim_nodes(s); i++) {
    const struct rnode *n = sim_node_state(s, i);
    if (n != NULL && node >= 0 && node < n->nodes)
      return n->ids[node];
  }
  return 0;
}

int core_sim_natural(struct sim *s, int node, const char *key, int *out,
                     int cap) {
  struct rnode *n = sim_node_state(s, node);
  if (n == NULL)
    return CHORUS_ECLOSED;
  struct ring_plist pl;
  int rc = ring_lookup_key(n->ring, key, strlen(key), 0, &pl);
  if (rc != CHORUS_OK)
    return rc;
  int k = 0;
  for (int i = 0; i < pl.n_natural && k < cap; i++) {
    int ix = index_of(n, pl.r[i].id);
    if (ix >= 0)
      out[k++] = ix;
  }
  return k;
}

int core_sim_stored(struct sim *s, int node, const char *key, uint64_t value) {
  struct crdt_obj o;
  int found;
  int rc = load_obj(sim_store(s, node), CRDT_KV, key, strlen(key), &o, &found);
  if (rc != CHORUS_OK)
    return rc;
  int has = 0;
  for (uint32_t i = 0; i < o.u.kv.n && !has; i++) {
    const struct dvv_sibling *sb = &o.u.kv.sib[i];
    if (!sb->tombstone && sb->len == 8 && store_be64_get(sb->value) == value)
      has = 1;
  }
  crdt_obj_free(&o);
  return has;
}
