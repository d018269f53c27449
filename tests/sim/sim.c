/* sim.c: the simulator's engine: event queue, nodes, network, clocks,
 * storage, nemesis and clients. */
#include "sim.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "store_mem.h"

/* ========================================================================
 * Types
 * ======================================================================== */

enum ev_kind {
  EV_NODE = 1,      /* a struct sim_event for a node */
  EV_CALL,          /* a callback (sim_schedule) */
  EV_SYNC_STEP,     /* a node's simulated fsync completes */
  EV_CLIENT_REPLY,  /* a reply reaches its client */
  EV_CLIENT_TIMEOUT /* a client gives up on its request */
};

struct ev {
  sim_time t;
  uint64_t seq;
  enum ev_kind kind;
  int node;
  uint32_t epoch;      /* EV_NODE timers/syncs: the incarnation they target */
  int check_epoch;     /* 0 for messages and requests (any incarnation) */
  struct sim_event ev; /* EV_NODE; the pointers below own its bytes */
  void *data, *key, *value, *context, *name;
  void (*fn)(struct sim *, void *);
  void *arg;
  /* client replies and timeouts */
  int client;
  uint64_t req_id;
  int status, maybe_applied;
  uint64_t *values;
  size_t nvalues;
  int64_t counter;
  uint64_t stamp[2];
  struct sim_lock_answer lock;
};

/* A barrier requested through store_sync_request(); owned by the node's
 * list until its callback runs or the store forgets it in a crash. */
struct barrier {
  struct sim *s;
  int node;
  uint32_t epoch;
  uint64_t token;
  struct barrier *next, **prevp;
};

struct node {
  int up;
  int started;    /* SIM_EV_START delivered to this incarnation */
  uint32_t epoch; /* incarnations so far - 1 */
  void *state;
  struct store *store;
  struct chorus_prng prng; /* seeds incarnations */
  struct chorus_tracer tracer;
  struct sim *s;
  int index;
  int full; /* the nemesis filled its disk (STORE_FAULT_FULL) */
  /* clocks */
  int64_t drift_ppm, offset_ms, jump_ms;
  /* storage */
  sim_time fsync_us;
  int sync_scheduled;
  int store_broke; /* deferred writes broke the store (store.h): its
                      restart is scheduled */
  struct barrier *barriers;
};

/* A clog on one directed link: few at a time, so a short list rather than
 * a field in a nodes x nodes matrix. */
struct clog {
  int from, to;
  sim_time until;
};

struct client {
  int busy;
  uint64_t req_id;
  size_t hop;
  enum sim_op op;
  void (*done)(struct sim *, void *, int);
  void *arg;
  struct sim_result res;
  uint64_t *values;
  void *context;
};

/* Fx items buffered during handle(). */
enum fx_kind { FX_SEND = 1, FX_TIMER, FX_REPLY, FX_SYNC };

struct fx_item {
  enum fx_kind kind;
  int to;
  void *data;
  size_t len;
  int stream;  /* FX_SEND: sim_fx_send_stream */
  uint64_t id; /* timer id, sync token, reply id */
  chorus_ms after;
  chorus_seq seq;
  struct ev *reply; /* prepared client reply event */
};

struct sim_effects {
  struct sim *s;
  int node;
  struct fx_item *items;
  size_t n, cap;
  int err;
};

/* restart_cb packs a node index into 16 bits. */
_Static_assert(SIM_MAX_NODES <= 0x10000, "node index must fit 16 bits");

#define TRACE_RING 256
#define TRACE_LINE 240
#define NPRNG 16

struct sim {
  struct sim_config cfg;
  sim_time now;
  int64_t clock_err_max; /* sim_clock_error_max */
  uint64_t seq;
  size_t events;
  /* the queue: a binary min-heap on (t, seq) */
  struct ev **heap;
  size_t nheap, capheap;
  struct chorus_prng master, net, clock, storage, nemesis, clients;
  struct {
    uint64_t tag;
    struct chorus_prng prng;
  } prngs[NPRNG];
  int nprngs;
  /* Per-node tables, sized from cfg.nodes at sim_new (heap). */
  struct node *nodes;
  chorus_node_id *ids;
  int *dc;
  sim_time *slow_in, *slow_out; /* sim_slow_node: max extra delay */
  sim_time *dc_lat;             /* dcs x dcs, row-major */
  /* blocked[from * nodes + to]: one byte per directed link (1 MB at 1,000
   * nodes, 16 MB at SIM_MAX_NODES); clogs are a short list. */
  uint8_t *blocked;
  struct clog *clogs;
  size_t nclogs, capclogs;
  double drop, dup;
  struct client clients_[SIM_MAX_CLIENTS];
  uint64_t next_req;
  struct sim_history history;
  /* the trace */
  uint64_t hash;
  char ring[TRACE_RING][TRACE_LINE];
  size_t nlines;
  /* failure */
  int failure;
  char failmsg[256];
  int nemesis_on;
  uint64_t nemesis_gen;
  int closing;
};

/* ========================================================================
 * Trace and hash
 * ======================================================================== */

uint64_t sim_fnv64(uint64_t h, const void *d, size_t n) {
  const unsigned char *b = d;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static void hash_bytes(struct sim *s, const void *p, size_t n) {
  s->hash = sim_fnv64(s->hash, p, n);
}

static void hash_u64(struct sim *s, uint64_t v) {
  hash_bytes(s, &v, sizeof v);
}

static void trace_line(struct sim *s, int node, const char *module,
                       const char *line) {
  char *dst = s->ring[s->nlines % TRACE_RING];
  int len;
  if (node >= 0)
    len = snprintf(dst, TRACE_LINE, "%10.3f n%d %s: %s",
                   (double)s->now / 1000.0, node, module, line);
  else
    len = snprintf(dst, TRACE_LINE, "%10.3f %s: %s", (double)s->now / 1000.0,
                   module, line);
  /* A long line is cut to TRACE_LINE - 1 bytes, and hashed as cut: the
   * hash only has to be the same run after run. */
  if (len >= TRACE_LINE)
    dst[TRACE_LINE - 1] = '\0';
  s->nlines++;
  hash_bytes(s, dst, strlen(dst));
  if (s->cfg.verbose)
    fprintf(stderr, "%s\n", dst);
}

static void node_emit(void *ctx, const char *module, const char *line) {
  struct node *n = ctx;
  trace_line(n->s, n->index, module, line);
}

void sim_tracef(struct sim *s, const char *fmt, ...) {
  char buf[TRACE_LINE];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  trace_line(s, -1, "sim", buf);
}

uint64_t sim_trace_hash(const struct sim *s) {
  return s->hash;
}

void sim_trace_dump(const struct sim *s, void *f, int lines) {
  size_t n = s->nlines < TRACE_RING ? s->nlines : TRACE_RING;
  if (lines >= 0 && (size_t)lines < n)
    n = (size_t)lines;
  for (size_t i = s->nlines - n; i < s->nlines; i++)
    fprintf((FILE *)f, "  %s\n", s->ring[i % TRACE_RING]);
}

static void fail(struct sim *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct sim *s, int rc, const char *fmt, ...) {
  if (s->failure != CHORUS_OK)
    return;
  s->failure = rc;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->failmsg, sizeof s->failmsg, fmt, ap);
  va_end(ap);
  sim_tracef(s, "FAILURE: %s", s->failmsg);
}

int sim_failure(const struct sim *s, const char **msg) {
  if (msg != NULL)
    *msg = s->failmsg;
  return s->failure;
}

/* ========================================================================
 * The event queue
 * ======================================================================== */

static int ev_before(const struct ev *a, const struct ev *b) {
  return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static struct ev *ev_new(enum ev_kind kind) {
  struct ev *e = chorus_calloc(1, sizeof *e);
  if (e != NULL)
    e->kind = kind;
  return e;
}

static void ev_free(struct ev *e) {
  if (e == NULL)
    return;
  chorus_free(e->data);
  chorus_free(e->key);
  chorus_free(e->value);
  chorus_free(e->context);
  chorus_free(e->name);
  chorus_free(e->values);
  chorus_free(e);
}

/* push: queues @e at now + @delay; on failure frees @e. */
static int push(struct sim *s, struct ev *e, sim_time delay) {
  if (s->nheap == s->capheap) {
    size_t ncap = s->capheap ? s->capheap * 2 : 256;
    struct ev **p = chorus_realloc(s->heap, ncap * sizeof *p);
    if (p == NULL) {
      ev_free(e);
      return CHORUS_ENOMEM;
    }
    s->heap = p;
    s->capheap = ncap;
  }
  e->t = s->now + delay;
  e->seq = s->seq++;
  size_t i = s->nheap++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!ev_before(e, s->heap[parent]))
      break;
    s->heap[i] = s->heap[parent];
    i = parent;
  }
  s->heap[i] = e;
  return CHORUS_OK;
}

static struct ev *pop(struct sim *s) {
  if (s->nheap == 0)
    return NULL;
  struct ev *top = s->heap[0];
  struct ev *last = s->heap[--s->nheap];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const struct ev *best = last;
    if (l < s->nheap && ev_before(s->heap[l], best)) {
      m = l;
      best = s->heap[l];
    }
    if (r < s->nheap && ev_before(s->heap[r], best))
      m = r;
    if (m == i)
      break;
    s->heap[i] = s->heap[m];
    i = m;
  }
  if (s->nheap > 0)
    s->heap[i] = last;
  return top;
}

int sim_schedule(struct sim *s, sim_time delay,
                 void (*fn)(struct sim *, void *), void *arg) {
  struct ev *e = ev_new(EV_CALL);
  if (e == NULL)
    return CHORUS_ENOMEM;
  e->fn = fn;
  e->arg = arg;
  return push(s, e, delay);
}

/* ========================================================================
 * Clocks: a node's monotonic clock runs at (1 + drift) of virtual time; its
 * wall clock adds an offset and the jumps it has suffered.
 * ======================================================================== */

#define WALL_EPOCH_MS 1767225600000ULL /* 2026-01-01, arbitrary */

static chorus_ms mono_ms(const struct node *n, sim_time t) {
  int64_t local = (int64_t)t + (int64_t)t * n->drift_ppm / 1000000;
  return (chorus_ms)(local / 1000);
}

static chorus_ms wall_ms(const struct node *n, sim_time t) {
  return (chorus_ms)((int64_t)mono_ms(n, t) + (int64_t)WALL_EPOCH_MS +
                     n->offset_ms + n->jump_ms);
}

/* local_to_virtual: how long @ms of the node's clock takes in virtual
 * microseconds (rounded up, so a timer never fires early by its clock). */
static sim_time local_to_virtual(const struct node *n, chorus_ms ms) {
  uint64_t us = ms * 1000ULL;
  int64_t rate = 1000000 + n->drift_ppm;
  return (sim_time)((us * 1000000ULL + (uint64_t)rate - 1) / (uint64_t)rate) +
         1;
}

/* note_clock_error: keeps sim_clock_error_max up to date with @n's wall
 * clock error (offset and jumps). */
static void note_clock_error(struct sim *s, const struct node *n) {
  int64_t e = n->offset_ms + n->jump_ms;
  e = e < 0 ? -e : e;
  if (e > s->clock_err_max)
    s->clock_err_max = e;
}

chorus_ms sim_clock_error_max(const struct sim *s) {
  return (chorus_ms)s->clock_err_max;
}

void sim_clock_jump(struct sim *s, int node, int64_t ms) {
  s->nodes[node].jump_ms += ms;
  note_clock_error(s, &s->nodes[node]);
  sim_tracef(s, "clock of n%d jumps %+" PRId64 " ms", node, ms);
}

/* ========================================================================
 * Nodes: delivering events, applying effects
 * ======================================================================== */

static int deliver(struct sim *s, int node, struct sim_event *ev);

static int fx_send(struct sim_effects *fx, int to, const void *data, size_t len,
                   int stream) {
  if (to < 0 || to >= fx->s->cfg.nodes || to == fx->node)
    return CHORUS_EINVAL;
  if (fx->n == fx->cap) {
    size_t ncap = fx->cap ? fx->cap * 2 : 8;
    struct fx_item *p = chorus_realloc(fx->items, ncap * sizeof *p);
    if (p == NULL)
      return CHORUS_ENOMEM;
    fx->items = p;
    fx->cap = ncap;
  }
  struct fx_item *it = &fx->items[fx->n];
  memset(it, 0, sizeof *it);
  it->data = chorus_memdup(data, len);
  if (it->data == NULL)
    return CHORUS_ENOMEM;
  it->kind = FX_SEND;
  it->to = to;
  it->len = len;
  it->stream = stream;
  fx->n++;
  return CHORUS_OK;
}

int sim_fx_send(struct sim_effects *fx, int to, const void *data, size_t len) {
  return fx_send(fx, to, data, len, 0);
}

int sim_fx_send_stream(struct sim_effects *fx, int to, const void *data,
                       size_t len) {
  return fx_send(fx, to, data, len, 1);
}

static struct fx_item *fx_add(struct sim_effects *fx, enum fx_kind kind) {
  if (fx->n == fx->cap) {
    size_t ncap = fx->cap ? fx->cap * 2 : 8;
    struct fx_item *p = chorus_realloc(fx->items, ncap * sizeof *p);
    if (p == NULL)
      return NULL;
    fx->items = p;
    fx->cap = ncap;
  }
  struct fx_item *it = &fx->items[fx->n++];
  memset(it, 0, sizeof *it);
  it->kind = kind;
  return it;
}

int sim_fx_timer(struct sim_effects *fx, uint64_t id, chorus_ms after_ms) {
  struct fx_item *it = fx_add(fx, FX_TIMER);
  if (it == NULL)
    return CHORUS_ENOMEM;
  it->id = id;
  it->after = after_ms;
  return CHORUS_OK;
}

int sim_fx_sync(struct sim_effects *fx, chorus_seq seq, uint64_t token) {
  struct fx_item *it = fx_add(fx, FX_SYNC);
  if (it == NULL)
    return CHORUS_ENOMEM;
  it->seq = seq;
  it->id = token;
  return CHORUS_OK;
}

/* decode_value: a written value is 8 big-endian bytes; anything else was
 * never written, so it decodes to 0, which the phantom checker rejects. */
static uint64_t decode_value(const void *p, size_t len) {
  if (len != 8)
    return 0;
  return store_be64_get(p);
}

int sim_fx_reply(struct sim_effects *fx, const struct sim_reply *r) {
  struct ev *e = ev_new(EV_CLIENT_REPLY);
  if (e == NULL)
    return CHORUS_ENOMEM;
  e->req_id = r->id;
  e->status = r->status;
  e->maybe_applied = r->maybe_applied;
  e->counter = r->counter;
  e->stamp[0] = r->stamp[0];
  e->stamp[1] = r->stamp[1];
  e->lock = r->lock;
  e->node = fx->node;
  if (r->nvalues > 0) {
    e->values = chorus_calloc(r->nvalues, sizeof *e->values);
    if (e->values == NULL)
      goto err_after_ev;
    for (size_t i = 0; i < r->nvalues; i++)
      e->values[i] = decode_value(r->values[i].data, r->values[i].len);
    e->nvalues = r->nvalues;
  }
  if (r->clen > 0) {
    e->context = chorus_memdup(r->context, r->clen);
    if (e->context == NULL)
      goto err_after_ev;
    e->ev.req.clen = r->clen;
  }
  struct fx_item *it = fx_add(fx, FX_REPLY);
  if (it == NULL)
    goto err_after_ev;
  it->reply = e;
  it->id = r->id;
  return CHORUS_OK;
err_after_ev:
  ev_free(e);
  return CHORUS_ENOMEM;
}

static void fx_release(struct sim_effects *fx) {
  for (size_t i = 0; i < fx->n; i++) {
    chorus_free(fx->items[i].data);
    ev_free(fx->items[i].reply);
  }
  chorus_free(fx->items);
  fx->items = NULL;
  fx->n = fx->cap = 0;
}

/* ---- network ---------------------------------------------------------- */

static uint8_t *link_blocked(struct sim *s, int from, int to) {
  return &s->blocked[(size_t)from * (size_t)s->cfg.nodes + (size_t)to];
}

static struct clog *clog_find(struct sim *s, int from, int to) {
  for (size_t i = 0; i < s->nclogs; i++)
    if (s->clogs[i].from == from && s->clogs[i].to == to)
      return &s->clogs[i];
  return NULL;
}

static sim_time link_latency(struct sim *s, int from, int to) {
  sim_time base =
      s->dc_lat[(size_t)s->dc[from] * (size_t)s->cfg.dcs + (size_t)s->dc[to]];
  double mean = (double)s->cfg.faults.tail_ms * 1000.0;
  if (s->dc[from] == s->dc[to])
    mean /= 10.0; /* a datacenter's own network has a shorter tail */
  sim_time tail = 0;
  if (mean > 0) {
    double u = chorus_prng_unit(&s->net);
    tail = (sim_time)(-mean * log(1.0 - u));
    if (tail > 60u * 1000000u)
      tail = 60u * 1000000u;
  }
  return base + tail;
}

/* send_msg: a stream (sim_fx_send_stream) is never dropped or duplicated
 * by the loss knobs, as TCP retransmits; partitions and clogs still apply. */
static int send_msg(struct sim *s, int from, int to, void *data, size_t len,
                    int stream) {
  if (*link_blocked(s, from, to)) {
    chorus_free(data);
    return CHORUS_OK;
  }
  if (!stream && chorus_prng_chance(&s->net, s->drop)) {
    chorus_free(data);
    return CHORUS_OK;
  }
  int copies = !stream && chorus_prng_chance(&s->net, s->dup) ? 2 : 1;
  for (int c = 0; c < copies; c++) {
    struct ev *e = ev_new(EV_NODE);
    if (e == NULL) {
      chorus_free(data);
      return CHORUS_ENOMEM;
    }
    if (c + 1 < copies) {
      e->data = chorus_memdup(data, len);
      if (e->data == NULL) {
        ev_free(e);
        chorus_free(data);
        return CHORUS_ENOMEM;
      }
    } else {
      e->data = data;
    }
    e->node = to;
    e->ev.kind = SIM_EV_MESSAGE;
    e->ev.msg.from = from;
    e->ev.msg.data = e->data;
    e->ev.msg.len = len;
    sim_time delay = link_latency(s, from, to);
    /* A slow node (sim_slow_node): no draw unless the knob is set, so runs
     * without it keep their trace hashes. */
    if (s->slow_out[from] > 0)
      delay += chorus_prng_below(&s->net, s->slow_out[from]);
    if (s->slow_in[to] > 0)
      delay += chorus_prng_below(&s->net, s->slow_in[to]);
    const struct clog *cl = s->nclogs > 0 ? clog_find(s, from, to) : NULL;
    if (cl != NULL && cl->until > s->now + delay)
      delay += cl->until - s->now; /* waits out the clog */
    int rc = push(s, e, delay);
    if (rc != CHORUS_OK) {
      if (c + 1 < copies)
        chorus_free(data);
      return rc;
    }
  }
  return CHORUS_OK;
}

/* ---- storage barriers -------------------------------------------------- */

static void sync_step_ev(struct sim *s, int node);

static void barrier_unlink(struct barrier *b) {
  *b->prevp = b->next;
  if (b->next != NULL)
    b->next->prevp = b->prevp;
}

static void barrier_cb(void *arg, chorus_seq durable, int status) {
  struct barrier *b = arg;
  struct sim *s = b->s;
  barrier_unlink(b);
  if (!s->closing && status != CHORUS_ECANCELED) {
    struct ev *e = ev_new(EV_NODE);
    if (e == NULL) {
      fail(s, CHORUS_ENOMEM, "out of memory delivering a sync");
    } else {
      e->node = b->node;
      e->epoch = b->epoch;
      e->check_epoch = 1;
      e->ev.kind = SIM_EV_SYNC_DONE;
      e->ev.sync.token = b->token;
      e->ev.sync.durable = durable;
      e->ev.sync.status = status;
      if (push(s, e, 0) != CHORUS_OK)
        fail(s, CHORUS_ENOMEM, "out of memory delivering a sync");
    }
  }
  chorus_free(b);
}

static void barriers_forget(struct node *n) {
  while (n->barriers != NULL) {
    struct barrier *b = n->barriers;
    barrier_unlink(b);
    chorus_free(b);
  }
}

static int request_sync(struct sim *s, int node, chorus_seq seq,
                        uint64_t token) {
  struct node *n = &s->nodes[node];
  struct barrier *b = chorus_calloc(1, sizeof *b);
  if (b == NULL)
    return CHORUS_ENOMEM;
  b->s = s;
  b->node = node;
  b->epoch = n->epoch;
  b->token = token;
  b->next = n->barriers;
  b->prevp = &n->barriers;
  if (b->next != NULL)
    b->next->prevp = &b->next;
  n->barriers = b;
  int rc = store_sync_request(n->store, seq, barrier_cb, b);
  if (rc == CHORUS_ESYNCFAILED) {
    /* The store is sticky-failed: answer at once, as a backend would. */
    barrier_unlink(b);
    chorus_free(b);
    struct ev *e = ev_new(EV_NODE);
    if (e == NULL)
      return CHORUS_ENOMEM;
    e->node = node;
    e->epoch = n->epoch;
    e->check_epoch = 1;
    e->ev.kind = SIM_EV_SYNC_DONE;
    e->ev.sync.token = token;
    e->ev.sync.durable = store_durable_seq(n->store);
    e->ev.sync.status = CHORUS_ESYNCFAILED;
    return push(s, e, 0);
  }
  if (rc != CHORUS_OK) {
    barrier_unlink(b);
    chorus_free(b);
    return rc;
  }
  if (!n->sync_scheduled) {
    struct ev *e = ev_new(EV_SYNC_STEP);
    if (e == NULL)
      return CHORUS_ENOMEM;
    e->node = node;
    e->epoch = n->epoch;
    e->check_epoch = 1;
    n->sync_scheduled = 1;
    /* Group commit: every barrier asked for before this fsync completes
     * rides on it (store.h). */
    sim_time lat =
        chorus_prng_range(&s->storage, n->fsync_us / 10 + 1, n->fsync_us + 1);
    return push(s, e, lat);
  }
  return CHORUS_OK;
}

/* ---- applying effects -------------------------------------------------- */

static int apply_effects(struct sim *s, int node, struct sim_effects *fx) {
  struct node *n = &s->nodes[node];
  int rc = CHORUS_OK;
  for (size_t i = 0; i < fx->n && rc == CHORUS_OK; i++) {
    struct fx_item *it = &fx->items[i];
    switch (it->kind) {
    case FX_SEND:
      hash_u64(s, it->stream ? 0x5e9e : 0x5e9d);
      hash_u64(s, (uint64_t)it->to);
      hash_bytes(s, it->data, it->len);
      rc = send_msg(s, node, it->to, it->data, it->len, it->stream);
      it->data = NULL;
      break;
    case FX_TIMER: {
      struct ev *e = ev_new(EV_NODE);
      if (e == NULL) {
        rc = CHORUS_ENOMEM;
        break;
      }
      e->node = node;
      e->epoch = n->epoch;
      e->check_epoch = 1;
      e->ev.kind = SIM_EV_TIMER;
      e->ev.timer.id = it->id;
      rc = push(s, e, local_to_virtual(n, it->after));
      break;
    }
    case FX_REPLY: {
      struct ev *e = it->reply;
      it->reply = NULL;
      hash_u64(s, 0x7e91);
      hash_u64(s, e->req_id);
      hash_u64(s, (uint64_t)e->status);
      rc = push(s, e, chorus_prng_range(&s->clients, 100, 500));
      break;
    }
    case FX_SYNC:
      rc = request_sync(s, node, it->seq, it->id);
      if (rc != CHORUS_OK && rc != CHORUS_ENOMEM)
        fail(s, rc, "n%d asked for a sync barrier at seq %" PRIu64 ": %s", node,
             it->seq, chorus_strerror(rc));
      break;
    }
  }
  return rc;
}

static void restart_cb(struct sim *s, void *arg);

/* deliver: hands @ev to a live node and applies its effects. */
static int deliver(struct sim *s, int node, struct sim_event *ev) {
  struct node *n = &s->nodes[node];
  ev->now = mono_ms(n, s->now);
  ev->wall = wall_ms(n, s->now);
  hash_u64(s, s->now);
  hash_u64(s, (uint64_t)node);
  hash_u64(s, (uint64_t)ev->kind);
  struct sim_effects fx = {.s = s, .node = node};
  if (ev->kind == SIM_EV_START)
    n->started = 1;
  int rc = s->cfg.ops->handle(n->state, ev, &fx);
  if (rc != CHORUS_OK) {
    fail(s, rc, "n%d (%s) failed handling event %d: %s", node, s->cfg.ops->name,
         ev->kind, chorus_strerror(rc));
    fx_release(&fx);
    return rc;
  }
  rc = apply_effects(s, node, &fx);
  fx_release(&fx);
  if (rc != CHORUS_OK)
    fail(s, rc, "applying n%d's effects: %s", node, chorus_strerror(rc));
  if (n->store != NULL && n->store->deferred.broken && !n->store_broke) {
    /* Deferred writes a read had seen could not be applied (store.h,
     * DEFERRED WRITES): the store fails as after an fsync, and so does
     * the process (sync_step_ev). */
    n->store_broke = 1;
    sim_tracef(s, "the store of n%d broke: the process exits", node);
    uintptr_t a = ((uintptr_t)n->epoch << 16) | (uintptr_t)node;
    if (sim_schedule(s, chorus_prng_range(&s->nemesis, 1000, 200000),
                     restart_cb, (void *)a) != CHORUS_OK)
      fail(s, CHORUS_ENOMEM, "out of memory");
  }
  return s->failure;
}

/* ========================================================================
 * Crashes and restarts
 * ======================================================================== */

static int start_node(struct sim *s, int i, int restarted) {
  struct node *n = &s->nodes[i];
  struct sim_node_config nc = {
      .index = i,
      .nodes = s->cfg.nodes,
      .ids = s->ids,
      .dc = s->dc,
      .seed = chorus_prng_next(&n->prng),
      .tracer = &n->tracer,
      .arg = s->cfg.ops_arg,
  };
  int rc = s->cfg.ops->create(&n->state, &nc);
  if (rc != CHORUS_OK)
    return rc;
  n->up = 1;
  n->store_broke = 0;
  struct ev *e = ev_new(EV_NODE);
  if (e == NULL)
    return CHORUS_ENOMEM;
  e->node = i;
  e->epoch = n->epoch;
  e->check_epoch = 1;
  e->ev.kind = SIM_EV_START;
  e->ev.start.store = n->store;
  e->ev.start.restarted = restarted;
  e->ev.start.epoch = n->epoch;
  return push(s, e, 0);
}

void sim_kill(struct sim *s, int node, enum sim_keep keep) {
  struct node *n = &s->nodes[node];
  if (!n->up)
    return;
  size_t unsynced = store_mem_unsynced(n->store);
  size_t k = keep == SIM_KEEP_ALL ? unsynced
             : keep == SIM_KEEP_NONE
                 ? 0
                 : chorus_prng_below(&s->storage, unsynced + 1);
  sim_tracef(s, "kill n%d: keeps %zu of %zu unsynced writes", node, k,
             unsynced);
  s->cfg.ops->destroy(n->state);
  n->state = NULL;
  n->up = 0;
  n->started = 0;
  n->epoch++;
  n->sync_scheduled = 0;
  if (store_mem_crash(n->store, k) != CHORUS_OK)
    fail(s, CHORUS_ENOMEM, "store_mem_crash of n%d", node);
  barriers_forget(n);
}

int sim_wipe(struct sim *s, int node) {
  struct node *n = &s->nodes[node];
  if (n->up)
    return CHORUS_EINVAL;
  sim_tracef(s, "wipe n%d: an empty disk", node);
  struct store *fresh;
  int rc = store_mem_open(&fresh);
  if (rc != CHORUS_OK)
    return rc;
  store_close(n->store);
  n->store = fresh;
  return CHORUS_OK;
}

int sim_restart(struct sim *s, int node) {
  struct node *n = &s->nodes[node];
  if (n->up)
    return CHORUS_OK;
  sim_tracef(s, "restart n%d (epoch %" PRIu32 ")", node, n->epoch);
  int rc = start_node(s, node, 1);
  if (rc != CHORUS_OK)
    fail(s, rc, "restarting n%d: %s", node, chorus_strerror(rc));
  return rc;
}

/* A node whose fsync failed exits and is restarted by its supervisor. The
 * argument packs (epoch, node) so that no allocation outlives a run that
 * ends first. */
static void restart_cb(struct sim *s, void *arg) {
  uintptr_t a = (uintptr_t)arg;
  int node = (int)(a & 0xffff);
  if (s->nodes[node].epoch == (uint32_t)(a >> 16)) {
    sim_kill(s, node, SIM_KEEP_NONE);
    (void)sim_restart(s, node);
  }
}

static void sync_step_ev(struct sim *s, int node) {
  struct node *n = &s->nodes[node];
  n->sync_scheduled = 0;
  int rc = store_mem_sync_step(n->store);
  if (rc >= 0)
    return;
  sim_tracef(s, "fsync of n%d failed (%s): the process exits", node,
             chorus_strerror(rc));
  uintptr_t a = ((uintptr_t)n->epoch << 16) | (uintptr_t)node;
  if (sim_schedule(s, chorus_prng_range(&s->nemesis, 1000, 200000), restart_cb,
                   (void *)a) != CHORUS_OK)
    fail(s, CHORUS_ENOMEM, "out of memory");
}

/* ========================================================================
 * Clients
 * ======================================================================== */

static int is_write(enum sim_op op) {
  return op == SIM_OP_PUT || op == SIM_OP_COUNTER_ADD || op == SIM_OP_SET_ADD ||
         op == SIM_OP_DELETE || op == SIM_OP_CAS || op == SIM_OP_SET_REMOVE ||
         op == SIM_OP_LWW_SET || op == SIM_OP_LOCK;
}

static void client_complete(struct sim *s, int c, enum sim_outcome outcome,
                            int status, uint64_t *values, size_t nvalues,
                            void *context, size_t clen, int64_t counter) {
  struct client *cl = &s->clients_[c];
  chorus_free(cl->values);
  chorus_free(cl->context);
  cl->values = values;
  cl->context = context;
  cl->busy = 0;
  cl->res.done = 1;
  cl->res.outcome = outcome;
  cl->res.status = status;
  cl->res.values = values;
  cl->res.nvalues = nvalues;
  cl->res.context = context;
  cl->res.clen = clen;
  cl->res.counter = counter;
  if (sim_history_complete(&s->history, cl->hop, outcome, s->now, values,
                           outcome == SIM_OK ? nvalues : 0,
                           counter) != CHORUS_OK)
    fail(s, CHORUS_ENOMEM, "out of memory recording history");
  sim_tracef(s, "client %d <- req %" PRIu64 ": %s (%s), %zu values", c,
             cl->req_id, sim_outcome_name(outcome),
             status == CHORUS_OK ? "ok" : chorus_errname(status), nvalues);
  if (cl->done != NULL)
    cl->done(s, cl->arg, c);
}

static void client_reply_ev(struct sim *s, struct ev *e) {
  /* Replies carry only the request id; find the client still waiting. */
  int c = 0;
  while (c < SIM_MAX_CLIENTS &&
         !(s->clients_[c].busy && s->clients_[c].req_id == e->req_id))
    c++;
  if (c == SIM_MAX_CLIENTS)
    return; /* late: the client gave up already */
  struct client *cl = &s->clients_[c];
  e->client = c;
  enum sim_outcome o = SIM_OK;
  if (e->status != CHORUS_OK)
    o = is_write(cl->op) && e->maybe_applied ? SIM_UNKNOWN : SIM_FAIL;
  uint64_t *values = e->values;
  void *ctx = e->context;
  e->values = NULL;
  e->context = NULL;
  if (o == SIM_OK && (cl->op == SIM_OP_LWW_SET || cl->op == SIM_OP_LWW_READ))
    sim_history_stamp(&s->history, cl->hop, e->stamp);
  cl->res.lock = e->lock;
  client_complete(s, e->client, o, e->status, values, e->nvalues, ctx,
                  e->ev.req.clen, e->counter);
}

static void client_timeout_ev(struct sim *s, struct ev *e) {
  struct client *cl = &s->clients_[e->client];
  if (!cl->busy || cl->req_id != e->req_id)
    return;
  client_complete(s, e->client, is_write(cl->op) ? SIM_UNKNOWN : SIM_FAIL,
                  CHORUS_ETIMEDOUT, NULL, 0, NULL, 0, 0);
}

int sim_request_start(struct sim *s, int client, int node,
                      const struct sim_call *call,
                      void (*done)(struct sim *, void *, int), void *arg) {
  if (client < 0 || client >= SIM_MAX_CLIENTS || node < 0 ||
      node >= s->cfg.nodes || call->key == NULL)
    return CHORUS_EINVAL;
  struct client *cl = &s->clients_[client];
  if (cl->busy)
    return CHORUS_EBUSY;
  int64_t key =
      sim_history_key(&s->history, call->key, sim_op_type_of(call->op));
  if (key < 0)
    return (int)key;
  struct sim_hop hop = {
      .id = ++s->next_req,
      .client = client,
      .node = node,
      .op = call->op,
      .key = (uint32_t)key,
      .value = call->value,
      .amount = call->amount,
      .covers = (uint64_t *)(uintptr_t)call->covers,
      .ncovers = call->ncovers,
      .invoke = s->now,
  };
  struct ev *e = ev_new(EV_NODE);
  struct ev *t = ev_new(EV_CLIENT_TIMEOUT);
  if (e == NULL || t == NULL)
    goto err_after_evs;
  size_t klen = strlen(call->key);
  e->key = chorus_memdup(call->key, klen);
  e->value = chorus_malloc(8);
  if (e->key == NULL || e->value == NULL)
    goto err_after_evs;
  store_be64_put(e->value, call->value);
  if (call->clen > 0) {
    e->context = chorus_memdup(call->context, call->clen);
    if (e->context == NULL)
      goto err_after_evs;
  }
  size_t nlen = call->lock_name != NULL ? strlen(call->lock_name) : 0;
  if (nlen > 0) {
    e->name = chorus_memdup(call->lock_name, nlen);
    if (e->name == NULL)
      goto err_after_evs;
  }
  int64_t ix = sim_history_invoke(&s->history, &hop);
  if (ix < 0)
    goto err_after_evs;
  e->node = node;
  e->client = client;
  e->ev.kind = SIM_EV_REQUEST;
  e->ev.req = (struct sim_request){
      .id = hop.id,
      .op = call->op,
      .key = e->key,
      .klen = klen,
      .value = e->value,
      .vlen = (call->op == SIM_OP_PUT || call->op == SIM_OP_SET_ADD ||
               call->op == SIM_OP_CAS || call->op == SIM_OP_SET_REMOVE ||
               call->op == SIM_OP_LWW_SET || call->op == SIM_OP_LOCK)
                  ? 8
                  : 0,
      .context = e->context,
      .clen = call->clen,
      .amount = call->amount,
      .r = call->r,
      .w = call->w,
      .cas_cond = call->cas_cond,
      .expected = call->expected,
      .lock_op = call->lock_op,
      .token = call->token,
      .ttl_ms = call->ttl_ms,
      .name = e->name,
      .nlen = nlen,
  };
  t->client = client;
  t->req_id = hop.id;
  cl->busy = 1;
  cl->req_id = hop.id;
  cl->hop = (size_t)ix;
  cl->op = call->op;
  cl->done = done;
  cl->arg = arg;
  memset(&cl->res, 0, sizeof cl->res);
  cl->res.hop = (size_t)ix;
  if (call->op == SIM_OP_COUNTER_ADD)
    sim_tracef(s, "client %d -> n%d: req %" PRIu64 " %s %s %+" PRId64, client,
               node, hop.id, sim_op_name(call->op), call->key, call->amount);
  else
    sim_tracef(s, "client %d -> n%d: req %" PRIu64 " %s %s %" PRIu64, client,
               node, hop.id, sim_op_name(call->op), call->key, call->value);
  int rc = push(s, e, chorus_prng_range(&s->clients, 100, 500));
  if (rc != CHORUS_OK) {
    ev_free(t);
    return rc;
  }
  return push(s, t, call->timeout ? call->timeout : SIM_MS(2000));
err_after_evs:
  ev_free(e);
  ev_free(t);
  return CHORUS_ENOMEM;
}

const struct sim_result *sim_client_result(struct sim *s, int client) {
  return &s->clients_[client].res;
}

/* ========================================================================
 * Running
 * ======================================================================== */

static void run_ev(struct sim *s, struct ev *e) {
  switch (e->kind) {
  case EV_CALL:
    e->fn(s, e->arg);
    break;
  case EV_SYNC_STEP:
    if (s->nodes[e->node].epoch == e->epoch)
      sync_step_ev(s, e->node);
    break;
  case EV_CLIENT_REPLY:
    client_reply_ev(s, e);
    break;
  case EV_CLIENT_TIMEOUT:
    client_timeout_ev(s, e);
    break;
  case EV_NODE: {
    struct node *n = &s->nodes[e->node];
    if (e->check_epoch && n->epoch != e->epoch)
      break; /* for an incarnation that crashed */
    if (e->ev.kind == SIM_EV_MESSAGE &&
        *link_blocked(s, e->ev.msg.from, e->node))
      break; /* a partition began while it was in flight */
    if (!n->up) {
      if (e->ev.kind == SIM_EV_REQUEST) {
        /* Connection refused: certainly not applied. */
        struct ev *r = ev_new(EV_CLIENT_REPLY);
        if (r == NULL) {
          fail(s, CHORUS_ENOMEM, "out of memory");
          break;
        }
        r->client = e->client;
        r->req_id = e->ev.req.id;
        r->status = CHORUS_ECLOSED;
        if (push(s, r, chorus_prng_range(&s->clients, 100, 500)) != CHORUS_OK)
          fail(s, CHORUS_ENOMEM, "out of memory");
      }
      break;
    }
    if (e->ev.kind == SIM_EV_MESSAGE)
      hash_bytes(s, e->data, e->ev.msg.len);
    (void)deliver(s, e->node, &e->ev);
    break;
  }
  }
}

int sim_step(struct sim *s) {
  if (s->failure != CHORUS_OK)
    return s->failure;
  struct ev *e = pop(s);
  if (e == NULL)
    return 0;
  if (e->t > s->now)
    s->now = e->t;
  s->events++;
  run_ev(s, e);
  ev_free(e);
  return s->failure != CHORUS_OK ? s->failure : 1;
}

int sim_run_until(struct sim *s, sim_time t) {
  while (s->nheap > 0 && s->heap[0]->t <= t) {
    int rc = sim_step(s);
    if (rc < 0)
      return rc;
  }
  if (s->now < t)
    s->now = t;
  return s->failure;
}

int sim_run_for(struct sim *s, sim_time us) {
  return sim_run_until(s, s->now + us);
}

int sim_step_until(struct sim *s, int (*pred)(struct sim *, void *), void *arg,
                   sim_time limit) {
  sim_time end = s->now + limit;
  for (;;) {
    if (pred(s, arg))
      return 1;
    if (s->nheap == 0 || s->heap[0]->t > end) {
      s->now = end;
      return pred(s, arg);
    }
    int rc = sim_step(s);
    if (rc < 0)
      return rc;
  }
}

sim_time sim_now(const struct sim *s) {
  return s->now;
}
int sim_nodes(const struct sim *s) {
  return s->cfg.nodes;
}
int sim_node_up(const struct sim *s, int node) {
  return s->nodes[node].up;
}
uint64_t sim_seed(const struct sim *s) {
  return s->cfg.seed;
}
struct sim_history *sim_history(struct sim *s) {
  return &s->history;
}
const struct sim_faults *sim_faults(const struct sim *s) {
  return &s->cfg.faults;
}
size_t sim_events(const struct sim *s) {
  return s->events;
}
struct store *sim_store(struct sim *s, int node) {
  return s->nodes[node].store;
}
void *sim_node_state(struct sim *s, int node) {
  return s->nodes[node].up ? s->nodes[node].state : NULL;
}

struct chorus_prng *sim_prng(struct sim *s, uint64_t tag) {
  for (int i = 0; i < s->nprngs; i++)
    if (s->prngs[i].tag == tag)
      return &s->prngs[i].prng;
  if (s->nprngs == NPRNG)
    return &s->clients; /* plenty for tests; never reached in practice */
  s->prngs[s->nprngs].tag = tag;
  chorus_prng_derive(&s->prngs[s->nprngs].prng, &s->master, tag);
  return &s->prngs[s->nprngs++].prng;
}

/* ========================================================================
 * Partitions and clogs
 * ======================================================================== */

static void set_blocked(struct sim *s, int a, int b, int blocked) {
  if (a != b)
    *link_blocked(s, a, b) = (uint8_t)blocked;
}

static void clear_blocks(struct sim *s) {
  size_t n = (size_t)s->cfg.nodes;
  memset(s->blocked, 0, n * n);
}

void sim_nodeset_clear(struct sim_nodeset *set) {
  memset(set, 0, sizeof *set);
}

void sim_nodeset_add(struct sim_nodeset *set, int node) {
  if (node >= 0 && node < SIM_MAX_NODES)
    set->w[node / 64] |= 1ULL << (node % 64);
}

int sim_nodeset_has(const struct sim_nodeset *set, int node) {
  return node >= 0 && node < SIM_MAX_NODES &&
         ((set->w[node / 64] >> (node % 64)) & 1);
}

/* nodeset_fmt: @set as one hexadecimal number (bit i for node i), so that a
 * set of nodes below 64 prints exactly as the uint64_t masks of old did and
 * their trace lines (and hashes) stay the same. */
static void nodeset_fmt(const struct sim_nodeset *set, char *buf, size_t cap) {
  int top = SIM_NODESET_WORDS - 1;
  while (top > 0 && set->w[top] == 0)
    top--;
  size_t off = (size_t)snprintf(buf, cap, "%#" PRIx64, set->w[top]);
  for (int i = top - 1; i >= 0 && off < cap; i--)
    off += (size_t)snprintf(buf + off, cap - off, "%016" PRIx64, set->w[i]);
}

static void trace_side(struct sim *s, const struct sim_nodeset *side,
                       int bridge) {
  /* A long set is cut at the trace line's length; the hash sees the cut. */
  char buf[TRACE_LINE];
  nodeset_fmt(side, buf, sizeof buf - 48);
  if (bridge < 0)
    sim_tracef(s, "partition %s | rest", buf);
  else
    sim_tracef(s, "partition %s | rest, bridged by n%d", buf, bridge);
}

void sim_partition(struct sim *s, const struct sim_nodeset *side) {
  clear_blocks(s);
  for (int a = 0; a < s->cfg.nodes; a++)
    for (int b = 0; b < s->cfg.nodes; b++)
      if (sim_nodeset_has(side, a) != sim_nodeset_has(side, b))
        set_blocked(s, a, b, 1);
  trace_side(s, side, -1);
}

void sim_isolate(struct sim *s, int node) {
  struct sim_nodeset one;
  sim_nodeset_clear(&one);
  sim_nodeset_add(&one, node);
  sim_partition(s, &one);
}

void sim_bridge(struct sim *s, const struct sim_nodeset *side_in, int bridge) {
  struct sim_nodeset side = *side_in;
  if (bridge >= 0 && bridge < SIM_MAX_NODES)
    side.w[bridge / 64] &= ~(1ULL << (bridge % 64));
  clear_blocks(s);
  for (int a = 0; a < s->cfg.nodes; a++)
    for (int b = 0; b < s->cfg.nodes; b++)
      if (a != bridge && b != bridge &&
          sim_nodeset_has(&side, a) != sim_nodeset_has(&side, b))
        set_blocked(s, a, b, 1);
  trace_side(s, &side, bridge);
}

void sim_one_way(struct sim *s, int from, int to) {
  set_blocked(s, from, to, 1);
  sim_tracef(s, "one-way block n%d -> n%d", from, to);
}

void sim_heal(struct sim *s) {
  clear_blocks(s);
  s->nclogs = 0;
  sim_tracef(s, "heal network");
}

void sim_clog(struct sim *s, int from, int to, sim_time us) {
  struct clog *c = clog_find(s, from, to);
  if (c == NULL) {
    /* Forget clogs that have cleared: they delay nothing any more. */
    size_t k = 0;
    for (size_t i = 0; i < s->nclogs; i++)
      if (s->clogs[i].until > s->now)
        s->clogs[k++] = s->clogs[i];
    s->nclogs = k;
    if (s->nclogs == s->capclogs) {
      size_t ncap = s->capclogs ? s->capclogs * 2 : 16;
      struct clog *p = chorus_realloc(s->clogs, ncap * sizeof *p);
      if (p == NULL) {
        fail(s, CHORUS_ENOMEM, "out of memory clogging a link");
        return;
      }
      s->clogs = p;
      s->capclogs = ncap;
    }
    c = &s->clogs[s->nclogs++];
    c->from = from;
    c->to = to;
  }
  c->until = s->now + us;
  sim_tracef(s, "clog n%d -> n%d for %.1f ms", from, to, (double)us / 1000.0);
}

void sim_slow_node(struct sim *s, int node, sim_time in_us, sim_time out_us) {
  if (node < 0 || node >= s->cfg.nodes)
    return;
  s->slow_in[node] = in_us;
  s->slow_out[node] = out_us;
  sim_tracef(s, "n%d slow: up to %.1f ms in, %.1f ms out", node,
             (double)in_us / 1000.0, (double)out_us / 1000.0);
}

void sim_set_loss(struct sim *s, double drop, double dup) {
  s->drop = drop;
  s->dup = dup;
  sim_tracef(s, "network loss: drop %.3f dup %.3f", drop, dup);
}

int sim_node_do(struct sim *s, int node,
                int (*fn)(void *state, chorus_ms now, chorus_ms wall,
                          struct sim_effects *fx, void *arg),
                void *arg) {
  if (node < 0 || node >= s->cfg.nodes)
    return CHORUS_EINVAL;
  struct node *n = &s->nodes[node];
  if (!n->up || !n->started)
    return CHORUS_ECLOSED;
  if (s->failure != CHORUS_OK)
    return s->failure;
  hash_u64(s, 0xd0);
  hash_u64(s, s->now);
  hash_u64(s, (uint64_t)node);
  struct sim_effects fx = {.s = s, .node = node};
  int rc = fn(n->state, mono_ms(n, s->now), wall_ms(n, s->now), &fx, arg);
  if (rc == CHORUS_OK) {
    rc = apply_effects(s, node, &fx);
    if (rc != CHORUS_OK)
      fail(s, rc, "applying n%d's effects: %s", node, chorus_strerror(rc));
  }
  fx_release(&fx);
  return rc;
}

/* ========================================================================
 * The nemesis: random faults at the seed's rates (swarm testing)
 * ======================================================================== */

#define NEMESIS_TICK SIM_MS(50)

void sim_faults_swarm_max(struct sim_faults *f) {
  *f = (struct sim_faults){
      .drop = 0.2,
      .dup = 0.1,
      .tail_ms = 20,
      .partition = 1.0,
      .clog = 2.0,
      .crash = 0.6,
      .store_fault = 0.5,
      .clock_jump = 0.5,
      .drift_ppm = 2000,
      .offset_ms = 5000,
      .fsync_ms = 20,
  };
}

void sim_faults_draw(struct sim_faults *out, const struct sim_faults *max,
                     struct chorus_prng *p) {
#define SWARM(x) (chorus_prng_chance(p, 0.5) ? chorus_prng_unit(p) * (x) : 0.0)
  out->drop = SWARM(max->drop);
  out->dup = SWARM(max->dup);
  out->tail_ms = (chorus_ms)SWARM((double)max->tail_ms);
  out->partition = SWARM(max->partition);
  out->clog = SWARM(max->clog);
  out->crash = SWARM(max->crash);
  out->store_fault = SWARM(max->store_fault);
  out->clock_jump = SWARM(max->clock_jump);
  out->drift_ppm = (int)SWARM((double)max->drift_ppm);
  out->offset_ms = (chorus_ms)SWARM((double)max->offset_ms);
  out->fsync_ms =
      max->fsync_ms
          ? 1 + (chorus_ms)(chorus_prng_unit(p) * (double)max->fsync_ms)
          : 0;
#undef SWARM
}

static double tick_p(double rate) {
  return rate * (double)NEMESIS_TICK / 1e6;
}

static void heal_partition_cb(struct sim *s, void *arg) {
  uint64_t gen = (uint64_t)(uintptr_t)arg;
  if (s->nemesis_on && gen == s->nemesis_gen) {
    clear_blocks(s);
    sim_tracef(s, "nemesis: partition healed");
  }
}

static void nemesis_restart_cb(struct sim *s, void *arg) {
  int node = (int)(uintptr_t)arg;
  if (s->nemesis_on)
    (void)sim_restart(s, node);
}

static int random_node(struct sim *s) {
  return (int)chorus_prng_below(&s->nemesis, (uint64_t)s->cfg.nodes);
}

/* random_side: a random proper, non-empty subset of the nodes. Up to 64
 * nodes it is one draw of a mask in [1, all - 1], as before sets outgrew a
 * uint64_t (so seeds replay as they did); beyond, a fair bit per node,
 * drawn again until neither side is empty. */
static void random_side(struct sim *s, struct sim_nodeset *side) {
  struct chorus_prng *p = &s->nemesis;
  int n = s->cfg.nodes;
  sim_nodeset_clear(side);
  if (n <= 64) {
    uint64_t all = n >= 64 ? ~0ULL : (1ULL << n) - 1;
    side->w[0] = chorus_prng_range(p, 1, all - 1);
    return;
  }
  for (;;) {
    int count = 0;
    for (int w = 0; w * 64 < n; w++) {
      uint64_t bits = chorus_prng_next(p);
      if (n - w * 64 < 64)
        bits &= (1ULL << (n - w * 64)) - 1;
      side->w[w] = bits;
      count += __builtin_popcountll(bits);
    }
    if (count > 0 && count < n)
      return;
  }
}

static void nemesis_tick(struct sim *s, void *arg) {
  if (!s->nemesis_on)
    return;
  struct chorus_prng *p = &s->nemesis;
  const struct sim_faults *f = &s->cfg.faults;
  int n = s->cfg.nodes;
  if (n > 1 && chorus_prng_chance(p, tick_p(f->partition))) {
    struct sim_nodeset side;
    switch (chorus_prng_below(p, 4)) {
    case 0: /* two sides, each non-empty */
      random_side(s, &side);
      sim_partition(s, &side);
      break;
    case 1:
      sim_isolate(s, random_node(s));
      break;
    case 2: {
      /* The bridge is drawn before the side: the order in which GCC
       * evaluated the arguments of the call this replaced, so that seeds
       * replay as they did. */
      int bridge = random_node(s);
      random_side(s, &side);
      sim_bridge(s, &side, bridge);
      break;
    }
    default: {
      int a = random_node(s), b = random_node(s);
      if (a != b)
        sim_one_way(s, a, b);
      break;
    }
    }
    s->nemesis_gen++;
    if (sim_schedule(s, chorus_prng_range(p, SIM_MS(100), SIM_MS(3000)),
                     heal_partition_cb,
                     (void *)(uintptr_t)s->nemesis_gen) != CHORUS_OK)
      fail(s, CHORUS_ENOMEM, "out of memory");
  }
  if (n > 1 && chorus_prng_chance(p, tick_p(f->clog))) {
    int a = random_node(s), b = random_node(s);
    if (a != b)
      sim_clog(s, a, b, chorus_prng_range(p, SIM_MS(10), SIM_MS(1000)));
  }
  if (chorus_prng_chance(p, tick_p(f->crash))) {
    int node = random_node(s);
    if (s->nodes[node].up) {
      sim_kill(s, node, (enum sim_keep)chorus_prng_below(p, 3));
      if (sim_schedule(s, chorus_prng_range(p, SIM_MS(10), SIM_MS(2000)),
                       nemesis_restart_cb,
                       (void *)(uintptr_t)node) != CHORUS_OK)
        fail(s, CHORUS_ENOMEM, "out of memory");
    }
  }
  if (chorus_prng_chance(p, tick_p(f->store_fault))) {
    int node = random_node(s);
    static const enum store_fault kinds[] = {
        STORE_FAULT_SYNC, STORE_FAULT_WRITE, STORE_FAULT_NOSPC,
        STORE_FAULT_READ, STORE_FAULT_FULL};
    enum store_fault k = kinds[chorus_prng_below(p, 5)];
    if (k == STORE_FAULT_FULL && s->nodes[node].full) {
      k = STORE_FAULT_NONE;
      s->nodes[node].full = 0;
    } else if (k == STORE_FAULT_FULL) {
      s->nodes[node].full = 1;
    }
    store_inject_fault(s->nodes[node].store, k);
    sim_tracef(s, "nemesis: store fault %d armed on n%d", (int)k, node);
  }
  if (chorus_prng_chance(p, tick_p(f->clock_jump))) {
    int node = random_node(s);
    int64_t ms = (int64_t)chorus_prng_range(p, 1, 10000) - 5000;
    sim_clock_jump(s, node, ms);
  }
  if (sim_schedule(s, NEMESIS_TICK, nemesis_tick, arg) != CHORUS_OK)
    fail(s, CHORUS_ENOMEM, "out of memory");
}

int sim_nemesis_start(struct sim *s) {
  s->nemesis_on = 1;
  s->drop = s->cfg.faults.drop;
  s->dup = s->cfg.faults.dup;
  sim_tracef(s,
             "nemesis on: drop %.3f dup %.3f tail %" PRIu64
             " ms, per second: partition %.2f clog %.2f crash %.2f "
             "store %.2f jump %.2f",
             s->drop, s->dup, s->cfg.faults.tail_ms, s->cfg.faults.partition,
             s->cfg.faults.clog, s->cfg.faults.crash, s->cfg.faults.store_fault,
             s->cfg.faults.clock_jump);
  return sim_schedule(s, NEMESIS_TICK, nemesis_tick, NULL);
}

int sim_nemesis_stop(struct sim *s) {
  s->nemesis_on = 0;
  s->nemesis_gen++;
  s->drop = 0;
  s->dup = 0;
  sim_heal(s);
  for (int i = 0; i < s->cfg.nodes; i++) {
    /* Disarm faults that never fired: the heal phase is fault-free. */
    store_inject_fault(s->nodes[i].store, STORE_FAULT_NONE);
    s->nodes[i].full = 0;
    if (!s->nodes[i].up) {
      int rc = sim_restart(s, i);
      if (rc != CHORUS_OK)
        return rc;
    }
  }
  sim_tracef(s, "nemesis off: healed, every node up");
  return s->failure;
}

/* ========================================================================
 * Convergence and final states
 * ======================================================================== */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* view_values: decoded, sorted values of @v in a new array. */
static int view_values(const struct sim_replica_view *v, uint64_t **out) {
  *out = NULL;
  if (v->nvalues == 0)
    return CHORUS_OK;
  uint64_t *a = chorus_calloc(v->nvalues, sizeof *a);
  if (a == NULL)
    return CHORUS_ENOMEM;
  for (size_t i = 0; i < v->nvalues; i++)
    a[i] = decode_value(v->values[i].data, v->values[i].len);
  qsort(a, v->nvalues, sizeof *a, cmp_u64);
  *out = a;
  return CHORUS_OK;
}

int sim_converged(struct sim *s) {
  struct sim_history *h = &s->history;
  for (size_t k = 0; k < h->nkeys; k++) {
    const char *key = h->keys[k].name;
    int have = 0;
    uint64_t digest = 0;
    int64_t counter = 0;
    for (int i = 0; i < s->cfg.nodes; i++) {
      struct node *n = &s->nodes[i];
      if (!n->up || !n->started)
        return 0;
      struct sim_replica_view v;
      memset(&v, 0, sizeof v);
      int rc =
          s->cfg.ops->inspect(n->state, h->keys[k].type, key, strlen(key), &v);
      if (rc == CHORUS_ENOTFOUND)
        continue;
      if (rc != CHORUS_OK)
        return 0;
      if (!have) {
        have = 1;
        digest = v.digest;
        counter = v.counter;
      } else if (digest != v.digest || counter != v.counter) {
        return 0;
      }
    }
  }
  return 1;
}

int sim_record_finals(struct sim *s) {
  struct sim_history *h = &s->history;
  size_t nkeys = h->nkeys;
  for (size_t k = 0; k < nkeys; k++) {
    const char *key = h->keys[k].name;
    for (int i = 0; i < s->cfg.nodes; i++) {
      struct node *n = &s->nodes[i];
      if (!n->up)
        continue;
      struct sim_replica_view v;
      memset(&v, 0, sizeof v);
      int rc =
          s->cfg.ops->inspect(n->state, h->keys[k].type, key, strlen(key), &v);
      if (rc == CHORUS_ENOTFOUND || rc == CHORUS_ECLOSED)
        continue;
      if (rc != CHORUS_OK)
        return rc;
      uint64_t *vals;
      if (view_values(&v, &vals) != CHORUS_OK)
        return CHORUS_ENOMEM;
      struct sim_hfinal f = {
          .key = (uint32_t)k,
          .node = i,
          .values = vals,
          .nvalues = v.nvalues,
          .counter = v.counter,
          .has_op_ids = v.has_op_ids,
          .op_ids = (uint64_t *)(uintptr_t)v.op_ids,
          .nop_ids = v.nop_ids,
          .digest = v.digest,
          .stamp = {v.stamp[0], v.stamp[1]},
      };
      rc = sim_history_final(h, &f);
      chorus_free(vals);
      if (rc != CHORUS_OK)
        return rc;
    }
  }
  return CHORUS_OK;
}

/* ========================================================================
 * Vocabulary
 * ======================================================================== */

static int client_done_pred(struct sim *s, void *arg) {
  (void)arg;
  return !s->clients_[SIM_VOCAB_CLIENT].busy;
}

const struct sim_result *sim_call(struct sim *s, int node,
                                  const struct sim_call *call) {
  if (sim_request_start(s, SIM_VOCAB_CLIENT, node, call, NULL, NULL) !=
      CHORUS_OK)
    return NULL;
  sim_time limit = (call->timeout ? call->timeout : SIM_MS(2000)) + SIM_MS(10);
  if (sim_step_until(s, client_done_pred, NULL, limit) != 1)
    return NULL;
  return &s->clients_[SIM_VOCAB_CLIENT].res;
}

const struct sim_result *sim_get(struct sim *s, int node, const char *key) {
  struct sim_call c = {.op = SIM_OP_GET, .key = key};
  return sim_call(s, node, &c);
}

const struct sim_result *sim_put(struct sim *s, int node, const char *key,
                                 uint64_t value) {
  struct sim_call c = {.op = SIM_OP_PUT, .key = key, .value = value};
  return sim_call(s, node, &c);
}

const struct sim_result *sim_put_after(struct sim *s, int node, const char *key,
                                       uint64_t value,
                                       const struct sim_result *seen) {
  /* @seen may live in the very client slot this call reuses: copy first. */
  uint64_t *covers = NULL;
  void *ctx = NULL;
  size_t n = seen->nvalues, clen = seen->clen;
  if (n > 0 && (covers = chorus_memdup(seen->values, n * 8)) == NULL)
    return NULL;
  if (clen > 0 && (ctx = chorus_memdup(seen->context, clen)) == NULL) {
    chorus_free(covers);
    return NULL;
  }
  struct sim_call c = {.op = SIM_OP_PUT,
                       .key = key,
                       .value = value,
                       .context = ctx,
                       .clen = clen,
                       .covers = covers,
                       .ncovers = n};
  const struct sim_result *r = sim_call(s, node, &c);
  chorus_free(covers);
  chorus_free(ctx);
  return r;
}

/* ========================================================================
 * Setup and teardown
 * ======================================================================== */

enum {
  TAG_NET = 1,
  TAG_CLOCK,
  TAG_STORAGE,
  TAG_NEMESIS,
  TAG_CLIENTS,
  TAG_NODE = 0x100
};

int sim_new(const struct sim_config *cfg, struct sim **out) {
  if (cfg->nodes < 1 || cfg->nodes > SIM_MAX_NODES || cfg->dcs < 1 ||
      cfg->dcs > cfg->nodes || cfg->ops == NULL)
    return CHORUS_EINVAL;
  struct sim *s = chorus_calloc(1, sizeof *s);
  if (s == NULL)
    return CHORUS_ENOMEM;
  s->cfg = *cfg;
  sim_history_init(&s->history);
  size_t nn = (size_t)cfg->nodes, nd = (size_t)cfg->dcs;
  s->nodes = chorus_calloc(nn, sizeof *s->nodes);
  s->ids = chorus_calloc(nn, sizeof *s->ids);
  s->dc = chorus_calloc(nn, sizeof *s->dc);
  s->slow_in = chorus_calloc(nn, sizeof *s->slow_in);
  s->slow_out = chorus_calloc(nn, sizeof *s->slow_out);
  s->dc_lat = chorus_calloc(nd * nd, sizeof *s->dc_lat);
  s->blocked = chorus_calloc(nn * nn, 1);
  if (s->nodes == NULL || s->ids == NULL || s->dc == NULL ||
      s->slow_in == NULL || s->slow_out == NULL || s->dc_lat == NULL ||
      s->blocked == NULL) {
    s->cfg.nodes = 0; /* nothing to destroy yet */
    sim_free(s);
    return CHORUS_ENOMEM;
  }
  s->hash = SIM_FNV64_INIT;
  chorus_prng_seed(&s->master, cfg->seed);
  chorus_prng_derive(&s->net, &s->master, TAG_NET);
  chorus_prng_derive(&s->clock, &s->master, TAG_CLOCK);
  chorus_prng_derive(&s->storage, &s->master, TAG_STORAGE);
  chorus_prng_derive(&s->nemesis, &s->master, TAG_NEMESIS);
  chorus_prng_derive(&s->clients, &s->master, TAG_CLIENTS);
  const struct sim_faults *f = &cfg->faults;
  /* Latency matrix: sub-millisecond inside a datacenter, 40-150 ms across
   * (one-way), symmetric. */
  for (int a = 0; a < cfg->dcs; a++) {
    s->dc_lat[(size_t)a * nd + (size_t)a] =
        chorus_prng_range(&s->net, 100, 900);
    for (int b = a + 1; b < cfg->dcs; b++)
      s->dc_lat[(size_t)a * nd + (size_t)b] =
          s->dc_lat[(size_t)b * nd + (size_t)a] =
              chorus_prng_range(&s->net, SIM_MS(40), SIM_MS(150));
  }
  int rc = CHORUS_OK;
  for (int i = 0; i < cfg->nodes; i++) {
    struct node *n = &s->nodes[i];
    n->s = s;
    n->index = i;
    n->tracer.emit = node_emit;
    n->tracer.ctx = n;
    s->dc[i] = i % cfg->dcs;
    s->ids[i] = 0x1000 + (chorus_node_id)i; /* stable and readable */
    chorus_prng_derive(&n->prng, &s->master, TAG_NODE + (uint64_t)i);
    if (f->drift_ppm > 0)
      n->drift_ppm =
          (int64_t)chorus_prng_range(&s->clock, 0, 2 * (uint64_t)f->drift_ppm) -
          f->drift_ppm;
    if (f->offset_ms > 0)
      n->offset_ms =
          (int64_t)chorus_prng_range(&s->clock, 0, 2 * f->offset_ms) -
          (int64_t)f->offset_ms;
    note_clock_error(s, n);
    n->fsync_us = SIM_MS(f->fsync_ms ? f->fsync_ms : 1);
    rc = store_mem_open(&n->store);
    if (rc != CHORUS_OK)
      goto err_after_sim;
  }
  for (int i = 0; i < cfg->nodes && rc == CHORUS_OK; i++)
    rc = start_node(s, i, 0);
  if (rc != CHORUS_OK)
    goto err_after_sim;
  *out = s;
  return CHORUS_OK;
err_after_sim:
  sim_free(s);
  return rc;
}

void sim_free(struct sim *s) {
  if (s == NULL)
    return;
  s->closing = 1;
  for (int i = 0; i < s->cfg.nodes; i++) {
    struct node *n = &s->nodes[i];
    if (n->up)
      s->cfg.ops->destroy(n->state);
    n->up = 0;
    store_close(n->store); /* runs barriers with ECANCELED: they free */
    barriers_forget(n);
  }
  for (size_t i = 0; i < s->nheap; i++)
    ev_free(s->heap[i]);
  chorus_free(s->heap);
  for (int c = 0; c < SIM_MAX_CLIENTS; c++) {
    chorus_free(s->clients_[c].values);
    chorus_free(s->clients_[c].context);
  }
  sim_history_free(&s->history);
  chorus_free(s->nodes);
  chorus_free(s->ids);
  chorus_free(s->dc);
  chorus_free(s->slow_in);
  chorus_free(s->slow_out);
  chorus_free(s->dc_lat);
  chorus_free(s->blocked);
  chorus_free(s->clogs);
  chorus_free(s);
}
