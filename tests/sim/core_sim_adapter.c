/* core_sim_adapter.c: node cores as simulator nodes (core_sim_adapter.h). */
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
#include "store_mem.h"
#include "swim.h"
#include "wire.h"

/* Message tags: the first byte of every simulated packet. */
enum {
  TAG_SWIM_DGRAM = 'd',
  TAG_SWIM_STREAM = 's',
  TAG_REPL = 'r',
};

/* The core's one timer: top bit plus a generation below TIMER_BOOT. */
#define TIMER_CORE (1ULL << 63)
/* The supervisor's retry of a failed start. */
#define TIMER_BOOT (1ULL << 62)
#define BOOT_RETRY_MS 100
/* Ticks at one simulated instant beyond which the core spins (a real
 * burst of due timers is a few dozen). */
#define CORE_SPIN_TICKS 10000u

#define TRACE(n, ...) chorus_trace((n)->tracer, "coresim", __VA_ARGS__)

/* One incarnation of one node: from create() to destroy() (a crash). */
struct cnode {
  struct core_sim_options opt;
  int index, nodes;
  const chorus_node_id *ids;
  const int *dc;
  const struct chorus_tracer *tracer;
  struct core_config ccfg; /* for core_new at SIM_EV_START */
  struct core *core;       /* NULL before START and while a boot waits */
  struct store *store;     /* lent at SIM_EV_START */
  struct sim_effects *fx;  /* during handle() and core_sim_do only */
  chorus_ms now;           /* the current event's monotonic clock */
  chorus_ms wall;          /* ... and its wall clock */
  int err;                 /* first error of an effect that returns none */
  int exited;              /* the store's fsync failed: silent until killed */
  uint32_t unflushed;      /* events since the last core_flush */
  int restarted;           /* this incarnation follows a crash */
  chorus_ms space_at;      /* the last space check (0: none yet) */
  /* The one timer: armed at @armed_at with generation @gen. */
  uint64_t gen;
  chorus_ms armed_at;
  int armed;
  /* Ticks at one instant: a deadline that stays due spins a real node's
   * loop (node_loop.c), so here it is an error, not an endless seed. */
  chorus_ms tick_at;
  unsigned ticks_at;
  /* planted_early_ack: writes answered before the core did. */
  uint64_t early[SIM_MAX_CLIENTS];
  size_t nearly;
  /* Encoding scratch. */
  uint8_t *buf;
  size_t cap;
  uint8_t *value;      /* a padded PUT value (opt.value_pad) */
  uint8_t expected[8]; /* a CAS request's expected value, as 8 bytes */
  /* inspect()'s answer, borrowed by the simulator until the next call. */
  struct crdt_obj obj;
  int have_obj;
  struct sim_buf *view;
  size_t viewcap;
  /* sets_as_maps: a MAP_UPDATE's ops, and the last MAP_REPLY's map with
   * the members of its field m.s (borrowed by the reply's view). */
  uint8_t *mapops;
  size_t mapcap;
  struct crdt_map rmap;
  struct wire_bytes *rmembers;
};

/* sets_as_maps: the set field m.s of @m, NULL when absent. */
static const struct crdt_map_field *map_set_field(const struct crdt_map *m) {
  const struct crdt_map_field *f =
      crdt_map_find(&m->root, (const uint8_t *)"m", 1, CRDT_MAP_MAP);
  return crdt_map_find(f, (const uint8_t *)"s", 1, CRDT_MAP_SET);
}

static const struct core_sim_options default_opt = {.replication = "3"};

static int index_of(const struct cnode *n, chorus_node_id id) {
  for (int i = 0; i < n->nodes; i++)
    if (n->ids[i] == id)
      return i;
  return -1;
}

/* ========================================================================
 * The keyspace of core_sim_options.keyspace_repl (issue 21)
 * ======================================================================== */

int core_sim_in_keyspace(const struct core_sim_options *opt, const char *key) {
  size_t len = strlen(key);
  return opt->keyspace_repl != NULL && len > 2 && strncmp(key, "kv", 2) == 0 &&
         (key[len - 1] - '0') % 2 == 1;
}

/* ks_id_of: the id of CORE_SIM_KEYSPACE in @c's metadata, 0 when it does
 * not know it (yet). */
static uint32_t ks_id_of(const struct core *c) {
  const struct meta_node *mn = c != NULL ? core_meta(c) : NULL;
  const struct meta_keyspace *k =
      mn != NULL ? meta_state_keyspace(meta_node_state(mn), CORE_SIM_KEYSPACE)
                 : NULL;
  return k != NULL ? k->id : 0;
}

/* ks_id_any: ks_id_of through any running node (ids are never reused:
 * every node that knows the keyspace knows it by this id). */
static uint32_t ks_id_any(struct sim *s) {
  for (int i = 0; i < sim_nodes(s); i++) {
    const struct cnode *n = sim_node_state(s, i);
    uint32_t id = n != NULL ? ks_id_of(n->core) : 0;
    if (id != 0)
      return id;
  }
  return 0;
}

/* A workload key as the nodes store it: in the keyspace, [0][id BE][key]
 * (core_keyspace.c); else as it is. */
struct skey {
  unsigned char buf[RING_KS_PREFIX_LEN + 64];
  const void *ptr;
  size_t len;
};

/* stored_key: @key as stored (above), the keyspace's id being @id (0: no
 * node known to know it). CHORUS_ENOTFOUND when @key lives in a keyspace
 * of id 0: nothing can hold it. */
static int stored_key(const struct core_sim_options *opt, uint32_t id,
                      const char *key, size_t klen, struct skey *out) {
  out->ptr = key;
  out->len = klen;
  if (!core_sim_in_keyspace(opt, key))
    return CHORUS_OK;
  if (id == 0)
    return CHORUS_ENOTFOUND;
  if (klen > sizeof out->buf - RING_KS_PREFIX_LEN)
    return CHORUS_EINVAL;
  out->buf[0] = 0;
  for (int i = 0; i < 4; i++)
    out->buf[1 + i] = (unsigned char)(id >> (24 - 8 * i));
  memcpy(out->buf + RING_KS_PREFIX_LEN, key, klen);
  out->ptr = out->buf;
  out->len = RING_KS_PREFIX_LEN + klen;
  return CHORUS_OK;
}

/* opt_of: the options every node of @s runs with. */
static const struct core_sim_options *opt_of(struct sim *s) {
  for (int i = 0; i < sim_nodes(s); i++) {
    const struct cnode *n = sim_node_state(s, i);
    if (n != NULL)
      return &n->opt;
  }
  return NULL;
}

struct ks_arg {
  struct ring_replication repl;
  uint64_t cookie;
};

static int propose_keyspace(struct core *c, chorus_ms now, chorus_ms wall,
                            void *arg) {
  const struct ks_arg *a = arg;
  struct meta_cmd cmd = {.type = META_CMD_KEYSPACE_CREATE};
  snprintf(cmd.keyspace.name, sizeof cmd.keyspace.name, "%s",
           CORE_SIM_KEYSPACE);
  cmd.keyspace.type = META_KS_KV;
  cmd.keyspace.replication = a->repl;
  return core_meta_propose(c, &cmd, a->cookie, 5000, now, wall);
}

/* in_roster: whether node @k is in every roster node's member table from
 * its start (not named by the joining mask). */
static int in_roster(const struct cnode *n, int k) {
  return k >= 64 || ((n->opt.joining >> k) & 1) == 0;
}

static int reserve(struct cnode *n, size_t need) {
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
 * The core's effects
 * ======================================================================== */

static void fx_gossip(void *ctx, const char *addr, enum swim_channel ch,
                      const void *data, size_t len) {
  struct cnode *n = ctx;
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

/* fx_send: @m as a tagged whole frame over a stream to its node. */
static int fx_send(void *ctx, chorus_node_id to, const struct wire_msg *m) {
  struct cnode *n = ctx;
  int i = index_of(n, to);
  if (i < 0 || i == n->index) {
    TRACE(n, "BUG: %s to node %" PRIx64 " (not a peer)",
          wire_type_name(m->type), to);
    return CHORUS_EINVAL;
  }
  size_t size = wire_encoded_size(m);
  if (size > WIRE_FRAME_PREFIX + WIRE_MAX_FRAME_PEER) {
    /* As chorusd: nothing over the peer frame leaves (the receiver would
     * close the stream); the message alone is lost. */
    TRACE(n, "%s of %zu bytes to n%d not sent: over the peer frame",
          wire_type_name(m->type), size, i);
    return CHORUS_OK;
  }
  int rc = reserve(n, size + 1);
  if (rc != CHORUS_OK)
    return rc;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  size_t written;
  n->buf[0] = TAG_REPL;
  rc = wire_encode(m, n->buf + 1, size, &written, errmsg);
  if (rc != CHORUS_OK) {
    TRACE(n, "BUG: %s to n%d does not encode: %s", wire_type_name(m->type), i,
          errmsg);
    return rc;
  }
  return sim_fx_send_stream(n->fx, i, n->buf, written + 1);
}

/* A stored or answered value as the simulator reads it: a padded one
 * (opt.value_pad) by its first 8 bytes. */
static struct sim_buf value_of(const struct cnode *n, const void *p,
                               size_t len) {
  if (n->opt.value_pad && len == 8 + (size_t)n->opt.value_pad)
    len = 8;
  return (struct sim_buf){p, len};
}

/* Points @r's values at the list's items through the node's view array
 * (grown as needed; borrowed until the next reply). */
static int view_of(struct cnode *n, const struct wire_bytes_list *l,
                   struct sim_reply *r) {
  if (l->n > n->viewcap) {
    struct sim_buf *v = chorus_realloc(n->view, l->n * sizeof *v);
    if (v == NULL)
      return CHORUS_ENOMEM;
    n->view = v;
    n->viewcap = l->n;
  }
  for (size_t i = 0; i < l->n; i++)
    n->view[i] = value_of(n, l->items[i].ptr, l->items[i].len);
  r->values = n->view;
  r->nvalues = l->n;
  return CHORUS_OK;
}

static void fx_meta_answer(void *ctx, uint64_t cookie, int status) {
  struct cnode *n = ctx;
  if (n->opt.meta_answer != NULL)
    n->opt.meta_answer(n->opt.meta_observer, n->index,
                       cookie & ~CORE_META_COOKIE_BIT, status);
}

static void fx_meta_applied(void *ctx, uint64_t index,
                            const struct meta_state *s) {
  struct cnode *n = ctx;
  if (n->opt.meta_applied != NULL)
    n->opt.meta_applied(n->opt.meta_observer, n->index, index, s);
}

static int view_reserve(struct cnode *n, size_t k);

static int fx_reply(void *ctx, uint64_t cookie, const struct wire_msg *m,
                    bool maybe_applied) {
  struct cnode *n = ctx;
  for (size_t i = 0; i < n->nearly; i++)
    if (n->early[i] == cookie) {
      n->early[i] = n->early[--n->nearly];
      return CHORUS_OK; /* the planted bug answered already */
    }
  struct sim_reply r = {.id = cookie};
  switch (m->type) {
  case WIRE_GET_REPLY:
  case WIRE_GET_REPLY2:
    if (m->type == WIRE_GET_REPLY2 &&
        (m->get_reply.flags & WIRE_REPLY_TRUNCATED)) {
      /* Some siblings only: the history must not take it for the whole
       * (a failed read asserts nothing). */
      r.status = CHORUS_ETOOBIG;
      TRACE(n, "req %" PRIu64 " -> %zu of %" PRIu32 " siblings (truncated)",
            cookie, m->get_reply.values.n, m->get_reply.siblings);
      break;
    }
    if (view_of(n, &m->get_reply.values, &r) != CHORUS_OK)
      return CHORUS_ENOMEM;
    r.context = m->get_reply.context.ptr;
    r.clen = m->get_reply.context.len;
    break;
  case WIRE_SET_REPLY:
    if (view_of(n, &m->set_reply.members, &r) != CHORUS_OK)
      return CHORUS_ENOMEM;
    r.context = m->set_reply.context.ptr;
    r.clen = m->set_reply.context.len;
    break;
  case WIRE_LWW_REPLY:
    r.stamp[0] = m->lww_reply.ts;
    r.stamp[1] = m->lww_reply.node;
    if (m->lww_reply.present) {
      if (view_reserve(n, 1) != CHORUS_OK)
        return CHORUS_ENOMEM;
      n->view[0] = value_of(n, m->lww_reply.value.ptr, m->lww_reply.value.len);
      r.values = n->view;
      r.nvalues = 1;
    }
    break;
  case WIRE_MAP_REPLY: {
    /* sets_as_maps: the members of m.s, as a SET_REPLY would list them. */
    crdt_map_free(&n->rmap);
    int rc = crdt_map_decode(&n->rmap, m->map_reply.map.ptr,
                             m->map_reply.map.len, NULL);
    if (rc != CHORUS_OK) {
      TRACE(n, "BUG: req %" PRIu64 ": a MAP_REPLY that does not decode",
            cookie);
      return rc == CHORUS_ENOMEM ? rc : CHORUS_EINTERNAL;
    }
    const struct crdt_map_field *f = map_set_field(&n->rmap);
    size_t k = f ? f->n : 0;
    struct wire_bytes *items =
        chorus_realloc(n->rmembers, (k ? k : 1) * sizeof *items);
    if (items == NULL)
      return CHORUS_ENOMEM;
    n->rmembers = items;
    for (size_t i = 0; i < k; i++)
      items[i] = (struct wire_bytes){f->elem[i].data, f->elem[i].len};
    struct wire_bytes_list l = {k, items};
    if (view_of(n, &l, &r) != CHORUS_OK)
      return CHORUS_ENOMEM;
    r.context = m->map_reply.context.ptr;
    r.clen = m->map_reply.context.len;
    break;
  }
  case WIRE_COUNTER_REPLY:
    r.counter = m->counter_reply.value;
    break;
  case WIRE_CAS_REPLY:
    /* sim.h, SIM_OP_CAS: applied as the counter, the value found. */
    r.counter = m->cas_reply.applied;
    r.context = m->cas_reply.context.ptr; /* for a later IF_MATCH */
    r.clen = m->cas_reply.context.len;
    if (m->cas_reply.present) {
      if (view_reserve(n, 1) != CHORUS_OK)
        return CHORUS_ENOMEM;
      n->view[0] = value_of(n, m->cas_reply.value.ptr, m->cas_reply.value.len);
      r.values = n->view;
      r.nvalues = 1;
    }
    break;
  case WIRE_LOCK_REPLY:
    /* sim.h, SIM_OP_LOCK: applied as the counter, the record in .lock,
     * a fenced put's value found. */
    r.counter = m->lock_reply.applied;
    r.lock = (struct sim_lock_answer){.refusal = m->lock_reply.refusal,
                                      .held = m->lock_reply.held,
                                      .token = m->lock_reply.token,
                                      .expires = m->lock_reply.expires};
    if (m->lock_reply.present) {
      if (view_reserve(n, 1) != CHORUS_OK)
        return CHORUS_ENOMEM;
      n->view[0] =
          value_of(n, m->lock_reply.value.ptr, m->lock_reply.value.len);
      r.values = n->view;
      r.nvalues = 1;
    }
    break;
  case WIRE_WRITE_REPLY:
  case WIRE_WRITE_REPLY2:
    /* An LWW write's context is its stamp (wire.h); the simulator reads
     * it only for LWW_SET. */
    if (m->write_reply.context.len == WIRE_LWW_STAMP_BYTES) {
      r.stamp[0] = store_be64_get(m->write_reply.context.ptr);
      r.stamp[1] = store_be64_get(m->write_reply.context.ptr + 8);
    }
    break;
  case WIRE_ERROR:
    r.status = m->error.code < 0 ? m->error.code : CHORUS_EINTERNAL;
    r.maybe_applied = maybe_applied;
    TRACE(n, "req %" PRIu64 " -> %s%s: %.*s", cookie, chorus_errname(r.status),
          maybe_applied ? " (maybe applied)" : "", (int)m->error.text.len,
          (const char *)m->error.text.ptr);
    break;
  default:
    TRACE(n, "BUG: reply of type %s to req %" PRIu64, wire_type_name(m->type),
          cookie);
    return CHORUS_EINTERNAL;
  }
  return sim_fx_reply(n->fx, &r);
}

static int fx_sync(void *ctx, chorus_seq seq, uint64_t token) {
  struct cnode *n = ctx;
  return sim_fx_sync(n->fx, seq, token);
}

/* ========================================================================
 * The node
 * ======================================================================== */

static void cn_destroy(void *state) {
  struct cnode *n = state;
  if (n == NULL)
    return;
  if (n->core != NULL && n->opt.purged_sum != NULL)
    *n->opt.purged_sum += repl_stats(core_repl(n->core))->tombstones_purged;
  core_free(n->core);
  if (n->have_obj)
    crdt_obj_free(&n->obj);
  chorus_free(n->buf);
  chorus_free(n->value);
  chorus_free(n->view);
  chorus_free(n->mapops);
  crdt_map_free(&n->rmap);
  chorus_free(n->rmembers);
  chorus_free(n);
}

/* fill_meta: what node @k says about itself in SWIM, so what its ring
 * entry is (core.h: the ring is built from SWIM's table). */
static void fill_meta(const struct cnode *n, int k, struct swim_meta *m) {
  memset(m, 0, sizeof *m);
  snprintf(m->addr, sizeof m->addr, "n%d", k);
  snprintf(m->dc, sizeof m->dc, "dc%d", n->dc[k]);
  snprintf(m->rack, sizeof m->rack, "r%d", k % 3);
  m->vnodes = n->opt.vnodes;
  m->ownership = in_roster(n, k) ? RING_NORMAL : RING_JOINING;
}

/* configure: the core's configuration for this node, from the options. */
static int configure(struct cnode *n, const struct sim_node_config *cfg) {
  struct core_config *cc = &n->ccfg;
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  int rc = ring_replication_parse(n->opt.replication, &cc->replication, errmsg);
  if (rc != CHORUS_OK) {
    TRACE(n, "bad replication option: %s", errmsg);
    return rc;
  }
  cc->gossip = !n->opt.no_swim;
  cc->aae_interval_ms = n->opt.aae_interval_ms;
  cc->stream_pulls = n->opt.stream_pulls;
  cc->stream_pull_empty = n->opt.stream_pull_empty;
  cc->gc_interval_ms = n->opt.gc_interval_ms;
  cc->metadata = cc->gossip && n->opt.metadata;
  cc->tracer = cfg->tracer;

  struct swim_config *sc = &cc->swim;
  sc->id = cfg->ids[cfg->index];
  fill_meta(n, cfg->index, &sc->meta);
  snprintf(sc->cluster, sizeof sc->cluster, "replsim");
  for (unsigned i = 0; i < SWIM_KEY_BYTES; i++)
    sc->key[i] = (uint8_t)(i * 7 + 1);
  if (n->opt.swim_lan)
    swim_timing_lan(&sc->timing);
  else
    swim_timing_local(&sc->timing);
  /* Its own stream, not replication's: the two must not draw alike. */
  sc->seed = cfg->seed ^ 0x5317a5317aULL;
  sc->clock_bound_ms = 100;
  sc->tracer = cfg->tracer;

  struct meta_member *me = &cc->meta.self_member;
  me->id = sc->id;
  snprintf(me->name, sizeof me->name, "n%d", cfg->index);
  snprintf(me->addr, sizeof me->addr, "%s", sc->meta.addr);
  snprintf(me->dc, sizeof me->dc, "%s", sc->meta.dc);
  snprintf(me->rack, sizeof me->rack, "%s", sc->meta.rack);
  me->vnodes = sc->meta.vnodes;
  me->state = META_NORMAL;
  cc->meta.cluster = 0x5e1f5e1fULL;
  cc->meta.seed = cfg->seed ^ 0x3e7a3e7aULL;

  struct repl_config *c = &cc->repl;
  repl_config_defaults(c, cfg->ids[cfg->index]);
  c->defer_replica_writes = true; /* settle() flushes, as chorusd does */
  snprintf(c->dc, sizeof c->dc, "%s", sc->meta.dc);
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
  c->max_object_bytes = n->opt.max_object_bytes;
  if (n->opt.lock_skew_ms != 0)
    c->lock_skew_ms =
        n->opt.lock_skew_ms < 0 ? 0 : (chorus_ms)n->opt.lock_skew_ms;
  c->tombstone_gc = n->opt.tombstone_gc;
  if (n->opt.tombstone_gc_timeout_ms != 0)
    c->tombstone_gc_timeout_ms = n->opt.tombstone_gc_timeout_ms;
  c->tracer = cfg->tracer;
  return CHORUS_OK;
}

static int cn_create(void **state, const struct sim_node_config *cfg) {
  struct cnode *n = chorus_calloc(1, sizeof *n);
  if (n == NULL)
    return CHORUS_ENOMEM;
  crdt_map_init(&n->rmap);
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
  int rc = configure(n, cfg);
  if (rc != CHORUS_OK) {
    cn_destroy(n);
    return rc;
  }
  *state = n;
  return CHORUS_OK;
}

/* rearm: one pending timer, at the core's next deadline (or earlier). */
static int rearm(struct cnode *n) {
  chorus_ms d = core_next_deadline(n->core);
  if (d == CORE_NEVER || (n->armed && d >= n->armed_at))
    return CHORUS_OK;
  n->gen = (n->gen + 1) & (TIMER_BOOT - 1);
  n->armed = 1;
  n->armed_at = d;
  return sim_fx_timer(n->fx, TIMER_CORE | n->gen, d > n->now ? d - n->now : 0);
}

/* boot: a fresh core over the lent store. A store error while starting (an
 * injected read or write fault) is what makes chorusd exit at boot; its
 * supervisor starts it again, which is modelled by a fresh core 100 ms
 * later. A roster node knows the roster, as a saved member table would;
 * after a crash it also joins through two other roster nodes, so that the
 * cluster hears of its new incarnation at once. A joining node knows no
 * one and joins through two roster nodes (the core retries until someone
 * answers). */

/* The mark core_sim_wipe leaves on a replaced disk (the operator's
 * knowledge that this node must join, not found). */
static const char WIPED_KEY[] = "sim/wiped";

static int was_wiped(struct store *st) {
  void *v = NULL;
  size_t len;
  int rc = store_get(st, STORE_META, WIPED_KEY, sizeof WIPED_KEY - 1, &v, &len);
  chorus_free(v);
  return rc == CHORUS_OK;
}

static int boot(struct cnode *n, chorus_ms wall) {
  const struct core_effects fx = {.ctx = n,
                                  .gossip = fx_gossip,
                                  .send = fx_send,
                                  .reply = fx_reply,
                                  .sync = fx_sync,
                                  .meta_answer = fx_meta_answer,
                                  .meta_applied = fx_meta_applied};
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  int rc = core_new(&n->ccfg, &fx, &n->core, errmsg);
  if (rc != CHORUS_OK) {
    TRACE(n, "core_new: %s", errmsg);
    return rc;
  }
  n->armed = 0;
  rc = core_start(n->core, n->store, n->now, wall);
  if (rc == CHORUS_EIO || rc == CHORUS_ENOSPC || rc == CHORUS_ESYNCFAILED) {
    TRACE(n, "start failed: %s (%s); the supervisor retries in %d ms",
          chorus_errname(rc), store_errmsg(n->store), BOOT_RETRY_MS);
    core_free(n->core);
    n->core = NULL;
    return sim_fx_timer(n->fx, TIMER_BOOT, BOOT_RETRY_MS);
  }
  /* A roster node restarted on an empty disk (sim_wipe: a replaced disk)
   * does what an operator does with chorusd: it joins through seeds, and
   * never founds a new cluster. */
  int joiner = !in_roster(n, n->index) || was_wiped(n->store);
  for (int k = 0; k < n->nodes && rc == CHORUS_OK && !joiner; k++) {
    if (k == n->index || !in_roster(n, k))
      continue;
    struct swim_meta m;
    fill_meta(n, k, &m);
    rc = core_add_member(n->core, n->ids[k], &m, n->now, wall);
  }
  if (rc == CHORUS_OK && n->ccfg.metadata && !joiner) {
    /* The roster founds the metadata (a restart with metadata on disk
     * keeps its own: core_found is then a no-op). */
    char founders[64][16];
    const char *addrs[64];
    size_t nf = 0;
    for (int k = 0; k < n->nodes && k < 64 && nf < SWIM_MAX_SEEDS; k++) {
      if (!in_roster(n, k))
        continue;
      snprintf(founders[nf], sizeof founders[nf], "n%d", k);
      addrs[nf] = founders[nf];
      nf++;
    }
    rc = core_found(n->core, addrs, nf, n->now, wall);
  }
  if (rc != CHORUS_OK || !(n->restarted || joiner))
    return rc;
  char addrs[2][16];
  const char *seeds[2];
  size_t nseeds = 0;
  for (int k = 0; k < n->nodes && nseeds < 2; k++) {
    if (k == n->index || !in_roster(n, k))
      continue;
    snprintf(addrs[nseeds], sizeof addrs[nseeds], "n%d", k);
    seeds[nseeds] = addrs[nseeds];
    nseeds++;
  }
  return core_join(n->core, seeds, nseeds, n->now, wall);
}

static int on_message(struct cnode *n, const struct sim_event *ev) {
  const uint8_t *d = ev->msg.data;
  size_t len = ev->msg.len;
  if (len < 1)
    return CHORUS_EMALFORMED;
  if (d[0] == TAG_SWIM_DGRAM || d[0] == TAG_SWIM_STREAM)
    return core_gossip(n->core, d + 1, len - 1, ev->now, ev->wall);
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
  if (m.type == WIRE_GOSSIP) {
    TRACE(n, "BUG: gossip in a repl frame from n%d", ev->msg.from);
    rc = CHORUS_EMALFORMED;
  } else {
    rc = core_peer(n->core, n->ids[ev->msg.from], &m, ev->now, ev->wall);
  }
  wire_msg_free(&m);
  return rc;
}

/* map_set_op: sets_as_maps: the one field operation @kind on m.s's
 * element @member, encoded into n->mapops (*@len bytes). */
static int map_set_op(struct cnode *n, enum crdt_map_op_kind kind,
                      const struct wire_bytes *member, size_t *len) {
  struct crdt_map_op op;
  memset(&op, 0, sizeof op);
  op.kind = kind;
  op.depth = 2;
  op.path[0] = (struct crdt_map_key){(const uint8_t *)"m", 1, CRDT_MAP_MAP};
  op.path[1] = (struct crdt_map_key){(const uint8_t *)"s", 1, CRDT_MAP_SET};
  op.data = member->ptr;
  op.len = (uint32_t)member->len;
  size_t need = crdt_map_ops_encoded_size(&op, 1);
  if (need > n->mapcap) {
    uint8_t *b = chorus_realloc(n->mapops, need);
    if (b == NULL)
      return CHORUS_ENOMEM;
    n->mapops = b;
    n->mapcap = need;
  }
  return crdt_map_ops_encode(&op, 1, n->mapops, n->mapcap, len);
}

static int on_request(struct cnode *n, const struct sim_event *ev) {
  const struct sim_request *q = &ev->req;
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.request_id = q->id;
  struct wire_options o = {.r = q->r, .w = q->w};
  struct wire_bytes key = {q->key, q->klen};
  /* The odd kv keys live in the keyspace (core_sim_options.keyspace_repl):
   * the request names it, as a client would. */
  char kname[64];
  if (n->opt.keyspace_repl != NULL && q->klen < sizeof kname &&
      (q->op == SIM_OP_GET || q->op == SIM_OP_PUT || q->op == SIM_OP_DELETE)) {
    memcpy(kname, q->key, q->klen);
    kname[q->klen] = '\0';
    if (core_sim_in_keyspace(&n->opt, kname))
      o.keyspace = (struct wire_bytes){(const uint8_t *)CORE_SIM_KEYSPACE,
                                       sizeof CORE_SIM_KEYSPACE - 1};
  }
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
    if (n->opt.value_pad) {
      /* A large value: the 8 the simulator wrote, then zeros. */
      size_t len = q->vlen + n->opt.value_pad;
      if (n->value == NULL &&
          (n->value = chorus_calloc(1, 8 + n->opt.value_pad)) == NULL)
        return CHORUS_ENOMEM;
      if (len != 8 + (size_t)n->opt.value_pad)
        return CHORUS_EINVAL;
      memcpy(n->value, q->value, q->vlen);
      m.put.value = (struct wire_bytes){n->value, len};
    }
    break;
  case SIM_OP_DELETE:
    m.type = WIRE_DELETE;
    m.del = (struct wire_delete){
        .key = key, .context = {q->context, q->clen}, .opts = o};
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
  case SIM_OP_SET_REMOVE:
    if (n->opt.sets_as_maps) {
      size_t w = 0;
      int rc = map_set_op(n,
                          q->op == SIM_OP_SET_ADD ? CRDT_MAP_OP_SET_ADD
                                                  : CRDT_MAP_OP_SET_REMOVE,
                          &member, &w);
      if (rc != CHORUS_OK)
        return rc;
      m.type = WIRE_MAP_UPDATE;
      m.map_update = (struct wire_map_update){.key = key,
                                              .ops = {n->mapops, w},
                                              .context = {q->context, q->clen},
                                              .opts = o};
      break;
    }
    if (q->op == SIM_OP_SET_REMOVE) {
      m.type = WIRE_SET_REMOVE;
      m.set_remove = (struct wire_set_remove){.key = key,
                                              .members = members,
                                              .context = {q->context, q->clen},
                                              .opts = o};
      break;
    }
    m.type = WIRE_SET_ADD;
    m.set_add =
        (struct wire_set_add){.key = key, .members = members, .opts = o};
    break;
  case SIM_OP_LWW_SET:
    m.type = WIRE_LWW_SET;
    m.lww_set = (struct wire_lww_set){
        .key = key, .value = {q->value, q->vlen}, .opts = o};
    break;
  case SIM_OP_LWW_READ:
    m.type = WIRE_LWW_READ;
    m.lww_key = (struct wire_lww_key){.key = key, .opts = o};
    break;
  case SIM_OP_SET_READ:
    if (n->opt.sets_as_maps) {
      m.type = WIRE_MAP_READ;
      m.map_read = (struct wire_map_read){.key = key, .opts = o};
      break;
    }
    m.type = WIRE_SET_READ;
    m.set_read = (struct wire_set_read){.key = key, .opts = o};
    break;
  case SIM_OP_CAS:
    /* A compare-and-set or a serial read (issue 23): values as 8 bytes,
     * the expected one from the request's integer. */
    store_be64_put(n->expected, q->expected);
    m.type = WIRE_CAS;
    m.cas =
        (struct wire_cas){.key = key, .cond = (uint8_t)q->cas_cond, .opts = o};
    if (q->cas_cond == WIRE_CAS_IF_VALUE ||
        q->cas_cond == WIRE_CAS_DELETE_IF_VALUE)
      m.cas.expected = (struct wire_bytes){n->expected, 8};
    if (q->cas_cond == WIRE_CAS_IF_MATCH ||
        q->cas_cond == WIRE_CAS_DELETE_IF_MATCH)
      m.cas.expected = (struct wire_bytes){q->context, q->clen};
    if (q->cas_cond == WIRE_CAS_SET || q->cas_cond == WIRE_CAS_IF_ABSENT ||
        q->cas_cond == WIRE_CAS_IF_VALUE || q->cas_cond == WIRE_CAS_IF_MATCH)
      m.cas.value = (struct wire_bytes){q->value, q->vlen};
    break;
  case SIM_OP_LOCK:
    /* A lock operation or a fenced write (issue 23): the key as the
     * client named it (the lock's, with WIRE_LOCK_PREFIX, or the data
     * key), a fenced put's value as 8 bytes. */
    m.type = WIRE_LOCK;
    m.lock = (struct wire_lock){.op = (uint8_t)q->lock_op,
                                .key = key,
                                .token = q->token,
                                .ttl_ms = q->ttl_ms,
                                .opts = o};
    if (q->lock_op == WIRE_LOCK_ACQUIRE)
      m.lock.holder = (struct wire_bytes){(const uint8_t *)"sim", 3};
    if (q->lock_op == WIRE_LOCK_FENCED_PUT) {
      /* The planted bug: half the writes compared one token up. */
      m.lock.token += n->opt.planted_fence_plus1 && (q->id & 1) ? 1 : 0;
      m.lock.name = (struct wire_bytes){q->name, q->nlen};
      m.lock.value = (struct wire_bytes){q->value, q->vlen};
    }
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
  return core_client(n->core, &m, q->id, ev->now, ev->wall);
}

static int on_timer(struct cnode *n, const struct sim_event *ev) {
  if (!n->armed || ev->timer.id != (TIMER_CORE | n->gen))
    return CHORUS_OK; /* stale, or a boot retry a running core outlived */
  n->armed = 0;
  if (ev->now != n->tick_at) {
    n->tick_at = ev->now;
    n->ticks_at = 0;
  } else if (++n->ticks_at > CORE_SPIN_TICKS) {
    TRACE(n,
          "the core's deadline stays due at %" PRIu64 " ms (%u ticks): "
          "it spins",
          (uint64_t)ev->now, n->ticks_at);
    return CHORUS_EINTERNAL;
  }
  return core_tick(n->core, ev->now, ev->wall);
}

/* down_event: an event while no core runs (between a failed start and its
 * retry): a client's connection is refused, everything else is lost as it
 * would be at a dead process. */
static int down_event(struct cnode *n, const struct sim_event *ev) {
  if (ev->kind == SIM_EV_TIMER && ev->timer.id == TIMER_BOOT)
    return boot(n, ev->wall);
  if (ev->kind == SIM_EV_REQUEST) {
    struct sim_reply r = {.id = ev->req.id, .status = CHORUS_ECLOSED};
    return sim_fx_reply(n->fx, &r);
  }
  return CHORUS_OK;
}

/* settle: the end of every event and operator command: the effects'
 * error, the timer re-armed, and the exit of a node whose store failed. */
static int settle(struct cnode *n, int rc, const char *what) {
  if (rc == CHORUS_OK)
    rc = n->err;
  /* The iteration's replica writes, applied as one store write and
   * answered (core_flush), as chorusd does once per loop iteration; an
   * iteration is one event unless opt.batch_events says more. */
  if (rc == CHORUS_OK && n->core != NULL &&
      ++n->unflushed >= n->opt.batch_events) {
    n->unflushed = 0;
    rc = core_flush(n->core, n->now, n->wall);
  }
  if (rc == CHORUS_OK)
    rc = n->err;
  if (rc == CHORUS_OK && n->core != NULL)
    rc = rearm(n);
  n->fx = NULL;
  if (rc == CHORUS_ESYNCFAILED) {
    /* The fsyncgate rule (store.h): the process exits and its supervisor
     * restarts it; the simulator does exactly that after a failed sync. */
    TRACE(n, "store sync failed: the node exits");
    n->exited = 1;
    return CHORUS_OK;
  }
  if (rc != CHORUS_OK)
    TRACE(n, "%s failed: %s", what, chorus_errname(rc));
  return rc;
}

/* space_check: the driver's side of the store's reserve (store.h, THE
 * SPACE RESERVE), as chorusd's: at start, every second of the node's
 * clock, and at once after a write found the disk full. The store decides;
 * STORE_FAULT_FULL is the simulated full disk. */
static void space_check(struct cnode *n) {
  if (n->store == NULL)
    return; /* not started: an event before SIM_EV_START holds no store */
  if (n->space_at != 0 && n->now < n->space_at + 1000 &&
      !store_space_stale(n->store))
    return;
  n->space_at = n->now > 0 ? n->now : 1;
  bool changed = false;
  (void)store_check_space(n->store, &changed);
  if (changed)
    TRACE(n, "data folder %s",
          store_disk_info(n->store)->full ? "full: writes refused"
                                          : "has room: writes resume");
}

static int cn_handle(void *state, const struct sim_event *ev,
                     struct sim_effects *fx) {
  struct cnode *n = state;
  if (n->exited)
    return CHORUS_OK; /* an exited process hears nothing */
  n->fx = fx;
  n->now = ev->now;
  n->wall = ev->wall;
  n->err = CHORUS_OK;
  if (ev->kind == SIM_EV_START) {
    n->store = ev->start.store;
    n->restarted = ev->start.restarted;
    space_check(n);
    return settle(n, boot(n, ev->wall), "start");
  }
  space_check(n);
  if (n->core == NULL)
    return settle(n, down_event(n, ev), "event while down");
  switch (ev->kind) {
  case SIM_EV_MESSAGE:
    return settle(n, on_message(n, ev), "message");
  case SIM_EV_TIMER:
    return settle(n, on_timer(n, ev), "timer");
  case SIM_EV_REQUEST:
    return settle(n, on_request(n, ev), "request");
  case SIM_EV_SYNC_DONE:
    return settle(n,
                  core_sync_done(n->core, ev->sync.token, ev->sync.status,
                                 ev->now, ev->wall),
                  "sync");
  case SIM_EV_START:
    break;
  }
  return settle(n, CHORUS_EINTERNAL, "unknown event");
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
  case SIM_TYPE_CAS:
    return CRDT_PAXOS;
  case SIM_TYPE_LWW:
    return CRDT_LWW;
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

static int view_reserve(struct cnode *n, size_t k) {
  if (k <= n->viewcap)
    return CHORUS_OK;
  struct sim_buf *v = chorus_realloc(n->view, k * sizeof *v);
  if (v == NULL)
    return CHORUS_ENOMEM;
  n->view = v;
  n->viewcap = k;
  return CHORUS_OK;
}

/* is_natural: whether this node is a natural replica of @key in its core's
 * ring (repl_is_replica's answer). */
static int is_natural(const struct cnode *n, const void *key, size_t klen) {
  struct ring_plist pl;
  if (ring_lookup_key(core_ring(n->core), key, klen, 0, &pl) != CHORUS_OK)
    return 0;
  for (int i = 0; i < pl.n_natural; i++)
    if (pl.r[i].id == n->ids[n->index])
      return 1;
  return 0;
}

static int cn_inspect(void *state, enum sim_op_type type, const void *wkey,
                      size_t wklen, struct sim_replica_view *out) {
  struct cnode *n = state;
  memset(out, 0, sizeof *out);
  if (n->core == NULL)
    return CHORUS_ECLOSED; /* no ring to tell (header, INSPECTION) */
  /* A key of the keyspace as this node stores it; a node whose metadata
   * does not know the keyspace holds none of its keys. */
  char kname[64];
  struct skey sk;
  if (wklen >= sizeof kname)
    return CHORUS_EINVAL;
  memcpy(kname, wkey, wklen);
  kname[wklen] = '\0';
  if (stored_key(&n->opt, ks_id_of(n->core), kname, wklen, &sk) != CHORUS_OK)
    return CHORUS_ENOTFOUND;
  const void *key = sk.ptr;
  size_t klen = sk.len;
  /* Taken out of the cluster (LEFT or REMOVED, and told so): the node
   * serves nothing more (core_peer, core_client) and runs no anti-entropy
   * (core_aae), and being out of the Raft group it may never apply the
   * entry that finished its leave, so its ring can stay at the epoch it
   * left in, where it still is a natural replica. No client can read what
   * it holds and no peer will repair it: it is no replica of anything.
   * Judged by its frozen ring, "grow and shrink 3->5->3" seed 10 left n4
   * at v10 (5 nodes) holding an old kv2 while the members agreed at v13:
   * the heal never converged (8% of 200 seeds there, 3-4% in "shrink while
   * forming" and "decommission 5->4"). test_change_sim checks that no
   * member that owns tokens is ever evicted, so this hides no real one. */
  if (core_evicted(n->core) || !is_natural(n, key, klen))
    return CHORUS_ENOTFOUND;
  if (n->have_obj) {
    crdt_obj_free(&n->obj);
    n->have_obj = 0;
  }
  int found;
  enum crdt_type ct = crdt_type_of(type);
  if (ct == CRDT_SET && n->opt.sets_as_maps)
    ct = CRDT_MAP;
  int rc = load_obj(n->store, ct, key, klen, &n->obj, &found);
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
        n->view[k++] = value_of(n, o->u.kv.sib[i].value, o->u.kv.sib[i].len);
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
  case CRDT_MAP: {
    const struct crdt_map_field *f = map_set_field(&o->u.map);
    if ((rc = view_reserve(n, f ? f->n : 0)) != CHORUS_OK)
      return rc;
    for (uint32_t i = 0; f != NULL && i < f->n; i++)
      n->view[k++] = (struct sim_buf){f->elem[i].data, f->elem[i].len};
    break;
  }
  case CRDT_PAXOS:
    break; /* a CAS key: acceptor state, no values (the digest tells) */
  case CRDT_LWW:
    if ((rc = view_reserve(n, 1)) != CHORUS_OK)
      return rc;
    if (o->u.lww.present)
      n->view[k++] = value_of(n, o->u.lww.value, o->u.lww.len);
    out->stamp[0] = o->u.lww.ts;
    out->stamp[1] = o->u.lww.node;
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
  out->digest = sim_fnv64(SIM_FNV64_INIT, n->buf, written);
  return CHORUS_OK;
}

const struct sim_node_ops core_sim_ops = {
    .name = "core",
    .create = cn_create,
    .handle = cn_handle,
    .inspect = cn_inspect,
    .destroy = cn_destroy,
};

/* ========================================================================
 * Presets
 * ======================================================================== */

/* Anti-entropy runs in every preset, as on a deployed node (chorusd's
 * default is 60 s; here 1 s of simulated time, so convergence after healing
 * is judged within the checker's window): hints are armed at a write's end
 * (repl_write.c), so a write whose coordinator crashed before then reaches
 * its silent replicas by an exchange, not by a hint. */
#define PRESET_AAE_MS 1000

static const struct core_sim_preset presets[] = {
    {"rw11",
     "3 nodes, N=3, R=1 W=1",
     3,
     1,
     1,
     1,
     {.replication = "3", .aae_interval_ms = PRESET_AAE_MS}},
    {"rw22",
     "3 nodes, N=3, R=2 W=2",
     3,
     1,
     2,
     2,
     {.replication = "3", .aae_interval_ms = PRESET_AAE_MS}},
    {"rw13",
     "3 nodes, N=3, R=1 W=3",
     3,
     1,
     1,
     3,
     {.replication = "3", .aae_interval_ms = PRESET_AAE_MS}},
    {"rw31",
     "3 nodes, N=3, R=3 W=1",
     3,
     1,
     3,
     1,
     {.replication = "3", .aae_interval_ms = PRESET_AAE_MS}},
    {"n5",
     "5 nodes, N=3, QUORUM (forwarding)",
     5,
     1,
     0,
     0,
     {.replication = "3", .aae_interval_ms = PRESET_AAE_MS}},
    {"dc2",
     "6 nodes, 2 dcs, dc0:3,dc1:3, LOCAL_QUORUM",
     6,
     2,
     WIRE_LOCAL_QUORUM,
     WIRE_LOCAL_QUORUM,
     {.replication = "dc0:3,dc1:3",
      .swim_lan = 1,
      .aae_interval_ms = PRESET_AAE_MS}},
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
  /* The node core has every type: LWW registers and set removes with a
   * read's context too (issue 21). */
  rc->lww_keys = 1;
  rc->set_remove_pct = 20;
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

const struct core *core_sim_core(struct sim *s, int node) {
  const struct cnode *n = sim_node_state(s, node);
  return n != NULL ? n->core : NULL;
}

const struct meta_state *core_sim_newest_meta(struct sim *s, int nodes) {
  const struct meta_state *best = NULL;
  for (int i = 0; i < nodes; i++) {
    const struct core *c = core_sim_core(s, i);
    if (c == NULL || core_meta(c) == NULL)
      continue;
    const struct meta_state *st = meta_node_state(core_meta(c));
    if (best == NULL || st->applied > best->applied)
      best = st;
  }
  return best;
}

int core_sim_exited(struct sim *s, int node) {
  const struct cnode *n = sim_node_state(s, node);
  return n != NULL && n->exited;
}

const struct repl *core_sim_repl(struct sim *s, int node) {
  const struct core *c = core_sim_core(s, node);
  return c != NULL ? core_repl(c) : NULL;
}

struct do_arg {
  int (*op)(struct core *c, chorus_ms now, chorus_ms wall, void *arg);
  void *arg;
};

static int do_op(void *state, chorus_ms now, chorus_ms wall,
                 struct sim_effects *fx, void *arg) {
  struct cnode *n = state;
  const struct do_arg *d = arg;
  if (n->exited || n->core == NULL)
    return CHORUS_ECLOSED;
  n->fx = fx;
  n->now = now;
  n->wall = wall;
  n->err = CHORUS_OK;
  return settle(n, d->op(n->core, now, wall, d->arg), "operator command");
}

int core_sim_do(struct sim *s, int node,
                int (*op)(struct core *c, chorus_ms now, chorus_ms wall,
                          void *arg),
                void *arg) {
  struct do_arg d = {op, arg};
  return sim_node_do(s, node, do_op, &d);
}

chorus_node_id core_sim_id(struct sim *s, int node) {
  for (int i = 0; i < sim_nodes(s); i++) {
    const struct cnode *n = sim_node_state(s, i);
    if (n != NULL && node >= 0 && node < n->nodes)
      return n->ids[node];
  }
  return 0;
}

int core_sim_natural(struct sim *s, int node, const char *key, int *out,
                     int cap) {
  const struct cnode *n = sim_node_state(s, node);
  if (n == NULL || n->core == NULL)
    return CHORUS_ECLOSED;
  struct skey sk;
  int rc = stored_key(&n->opt, ks_id_of(n->core), key, strlen(key), &sk);
  if (rc == CHORUS_ENOTFOUND)
    return CHORUS_EUNAVAILABLE; /* its metadata lacks the keyspace */
  struct ring_plist pl;
  if (rc == CHORUS_OK)
    rc = ring_lookup_key(core_ring(n->core), sk.ptr, sk.len, 0, &pl);
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

/* load_key: load_obj of the workload's @key as node @node (up or down)
 * stores it (stored_key: with the keyspace's id as any running node knows
 * it; absent when none does). */
static int load_key(struct sim *s, int node, enum crdt_type type,
                    const char *key, struct crdt_obj *o, int *found) {
  const struct core_sim_options *opt = opt_of(s);
  struct skey sk = {.ptr = key, .len = strlen(key)};
  int rc =
      opt != NULL ? stored_key(opt, ks_id_any(s), key, sk.len, &sk) : CHORUS_OK;
  if (rc == CHORUS_ENOTFOUND) {
    crdt_obj_init(o, type);
    *found = 0;
    return CHORUS_OK;
  }
  if (rc != CHORUS_OK)
    return rc;
  return load_obj(sim_store(s, node), type, sk.ptr, sk.len, o, found);
}

int core_sim_keyspace_create(struct sim *s, int node, const char *spec,
                             uint64_t cookie) {
  struct ks_arg a = {.cookie = cookie};
  if (ring_replication_parse(spec, &a.repl, NULL) != CHORUS_OK)
    return CHORUS_EINVAL;
  return core_sim_do(s, node, propose_keyspace, &a);
}

int core_sim_stored(struct sim *s, int node, const char *key, uint64_t value) {
  struct crdt_obj o;
  int found;
  int rc = load_key(s, node, CRDT_KV, key, &o, &found);
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

int core_sim_holds(struct sim *s, int node, enum sim_op_type type,
                   const char *key) {
  struct crdt_obj o;
  int found;
  int rc = load_key(s, node, crdt_type_of(type), key, &o, &found);
  if (rc != CHORUS_OK)
    return rc;
  crdt_obj_free(&o);
  return found;
}

int core_sim_dead(struct sim *s, int node, const char *key) {
  struct crdt_obj o;
  int found;
  int rc = load_key(s, node, CRDT_KV, key, &o, &found);
  if (rc != CHORUS_OK)
    return rc;
  int dead = found;
  for (uint32_t i = 0; i < o.u.kv.n && dead; i++)
    if (!o.u.kv.sib[i].tombstone)
      dead = 0;
  crdt_obj_free(&o);
  return dead;
}

uint64_t core_sim_purged(struct sim *s) {
  uint64_t sum = 0;
  for (int i = 0; i < sim_nodes(s); i++) {
    const struct repl *r = core_sim_repl(s, i);
    if (r != NULL)
      sum += repl_stats(r)->tombstones_purged;
  }
  return sum;
}

int core_sim_wipe(struct sim *s, int node) {
  sim_kill(s, node, SIM_KEEP_NONE);
  int rc = sim_wipe(s, node);
  struct store *st = sim_store(s, node);
  if (rc == CHORUS_OK)
    rc = store_put(st, STORE_META, WIPED_KEY, sizeof WIPED_KEY - 1, "1", 1,
                   NULL);
  if (rc == CHORUS_OK && store_mem_sync_step(st) < 0)
    rc = CHORUS_EIO;
  return rc;
}
