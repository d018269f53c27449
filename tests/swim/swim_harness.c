/* swim_harness.c: the deterministic event-queue cluster of swim_harness.h.
 */
#include "swim_harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"

enum { EV_DELIVER = 1, EV_WAKE };

struct ev {
  uint64_t t_us, seq;
  int kind, to, from;
  uint8_t *data;
  size_t len;
};

struct node {
  struct sh *h;
  int index;
  struct swim *sw;
  int up, blocked;
  int64_t wall_off;
  uint64_t wake_at; /* SH_NEVER: none pending */
  uint8_t key[SWIM_KEY_BYTES];
  char addr[16];
  chorus_node_id id;
  struct chorus_prng prng;
};

struct sh {
  struct sh_config cfg;
  struct node *nodes;
  struct sh_subject *subj;
  chorus_ms *tracked;
  chorus_node_id track_id;
  uint32_t track_inc;
  int tracking;
  struct ev *heap;
  size_t nheap, capheap;
  uint64_t seq, now_us;
  struct chorus_prng net;
  uint64_t false_deaths, datagrams;
  size_t max_datagram;
  struct chorus_tracer tracer;
  int err;
};

/* ---- the event queue: a binary heap on (time, seq) ---- */

static int ev_less(const struct ev *a, const struct ev *b) {
  return a->t_us < b->t_us || (a->t_us == b->t_us && a->seq < b->seq);
}

static void push(struct sh *h, struct ev e) {
  if (h->nheap == h->capheap) {
    size_t ncap = h->capheap ? h->capheap * 2 : 1024;
    struct ev *p = realloc(h->heap, ncap * sizeof *p);
    if (p == NULL) {
      h->err = CHORUS_ENOMEM;
      free(e.data);
      return;
    }
    h->heap = p;
    h->capheap = ncap;
  }
  e.seq = h->seq++;
  size_t i = h->nheap++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!ev_less(&e, &h->heap[parent]))
      break;
    h->heap[i] = h->heap[parent];
    i = parent;
  }
  h->heap[i] = e;
}

static struct ev pop(struct sh *h) {
  struct ev top = h->heap[0];
  struct ev last = h->heap[--h->nheap];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->nheap)
      break;
    if (c + 1 < h->nheap && ev_less(&h->heap[c + 1], &h->heap[c]))
      c++;
    if (!ev_less(&h->heap[c], &last))
      break;
    h->heap[i] = h->heap[c];
    i = c;
  }
  if (h->nheap > 0)
    h->heap[i] = last;
  return top;
}

/* ---- effects ---- */

static chorus_ms now_ms(const struct sh *h) {
  return h->now_us / 1000;
}

static chorus_ms wall_ms(const struct node *n) {
  return (chorus_ms)((int64_t)now_ms(n->h) + n->wall_off) + 1700000000000ull;
}

int sh_index_of(const struct sh *h, chorus_node_id id) {
  for (int i = 0; i < h->cfg.nodes; i++)
    if (h->nodes[i].id == id)
      return i;
  return -1;
}

static void fx_send(void *ctx, const char *addr, enum swim_channel ch,
                    const void *data, size_t len) {
  struct node *n = ctx;
  struct sh *h = n->h;
  int to = atoi(addr + 1);
  if (addr[0] != 'n' || to < 0 || to >= h->cfg.nodes)
    return;
  if (ch == SWIM_DATAGRAM) {
    h->datagrams++;
    if (len > h->max_datagram)
      h->max_datagram = len;
  }
  if (n->blocked || h->nodes[to].blocked)
    return;
  if (ch == SWIM_DATAGRAM && chorus_prng_chance(&h->net, h->cfg.loss))
    return;
  uint64_t delay = 100 + chorus_prng_below(&h->net, 800);
  delay += (uint64_t)(-log(1.0 - chorus_prng_unit(&h->net)) * 200.0);
  if (to == h->cfg.slow_node && h->cfg.slow_ms > 0)
    delay += chorus_prng_below(&h->net, h->cfg.slow_ms * 1000);
  uint8_t *copy = malloc(len);
  if (copy == NULL) {
    h->err = CHORUS_ENOMEM;
    return;
  }
  memcpy(copy, data, len);
  push(h, (struct ev){.t_us = h->now_us + delay,
                      .kind = EV_DELIVER,
                      .to = to,
                      .from = n->index,
                      .data = copy,
                      .len = len});
}

static void fx_changed(void *ctx, const struct swim_member *m,
                       enum swim_state old, int is_new, int ring_changed) {
  struct node *n = ctx;
  struct sh *h = n->h;
  int j = sh_index_of(h, m->id);
  if (j < 0)
    return;
  struct sh_subject *sj = &h->subj[j];
  chorus_ms t = now_ms(h);
  if (m->state == SWIM_SUSPECT && old == SWIM_ALIVE) {
    sj->suspect_events++;
    if (sj->first_suspect == SH_NEVER)
      sj->first_suspect = t;
  }
  if (m->state == SWIM_DEAD && old != SWIM_DEAD) {
    sj->dead_events++;
    sj->dead_observers++;
    if (sj->first_dead == SH_NEVER)
      sj->first_dead = t;
    if (h->nodes[j].up)
      h->false_deaths++;
  }
  if (old == SWIM_DEAD && m->state != SWIM_DEAD && !is_new)
    sj->dead_observers--;
  if (h->tracking && m->id == h->track_id && m->incarnation >= h->track_inc &&
      h->tracked[n->index] == SH_NEVER)
    h->tracked[n->index] = t;
  (void)ring_changed;
}

static void reschedule(struct node *n) {
  if (n->sw == NULL)
    return;
  struct sh *h = n->h;
  chorus_ms d = swim_next_deadline(n->sw);
  if (d == SH_NEVER)
    return;
  uint64_t t = d * 1000;
  if (t < h->now_us)
    t = h->now_us;
  if (n->wake_at != SH_NEVER && n->wake_at <= t && n->wake_at >= h->now_us)
    return;
  n->wake_at = t;
  push(h, (struct ev){.t_us = t, .kind = EV_WAKE, .to = n->index});
}

static void trace_emit(void *ctx, const char *module, const char *line) {
  struct sh *h = ctx;
  fprintf(stderr, "[%8.3f] %s: %s\n", (double)h->now_us / 1e6, module, line);
}

void sh_default_key(uint8_t key[SWIM_KEY_BYTES]) {
  for (unsigned i = 0; i < SWIM_KEY_BYTES; i++)
    key[i] = (uint8_t)(i * 7 + 1);
}

static int make_swim(struct sh *h, struct node *n) {
  struct swim_config c;
  memset(&c, 0, sizeof c);
  c.id = n->id;
  snprintf(c.meta.addr, sizeof c.meta.addr, "%s", n->addr);
  snprintf(c.meta.dc, sizeof c.meta.dc, "dc1");
  snprintf(c.meta.rack, sizeof c.meta.rack, "r%d", n->index % 3);
  c.meta.ownership = RING_NORMAL;
  snprintf(c.cluster, sizeof c.cluster, "test-cluster");
  memcpy(c.key, n->key, SWIM_KEY_BYTES);
  if (h->cfg.local_profile)
    swim_timing_local(&c.timing);
  else
    swim_timing_lan(&c.timing);
  if (h->cfg.pushpull_ms)
    c.timing.pushpull_interval = h->cfg.pushpull_ms;
  if (h->cfg.no_gossip)
    c.timing.gossip_interval = 0;
  if (h->cfg.no_lifeguard)
    c.timing.max_lhm = 0;
  c.seed = chorus_prng_next(&n->prng);
  c.clock_bound_ms = 100;
  c.fx.ctx = n;
  c.fx.send = fx_send;
  c.fx.member_changed = fx_changed;
  c.tracer = &h->tracer;
  return swim_new(&c, &n->sw);
}

static int id_cmp(const void *a, const void *b) {
  const struct node *const *x = a, *const *y = b;
  return (*x)->id < (*y)->id ? -1 : ((*x)->id > (*y)->id);
}

int sh_new(const struct sh_config *cfg, struct sh **out) {
  struct sh *h = calloc(1, sizeof *h);
  if (h == NULL)
    return CHORUS_ENOMEM;
  h->cfg = *cfg;
  int n = cfg->nodes;
  h->nodes = calloc((size_t)n, sizeof *h->nodes);
  h->subj = calloc((size_t)n, sizeof *h->subj);
  h->tracked = calloc((size_t)n, sizeof *h->tracked);
  if (!h->nodes || !h->subj || !h->tracked) {
    sh_free(h);
    return CHORUS_ENOMEM;
  }
  h->tracer.emit = getenv("CHORUS_SWIM_TRACE") ? trace_emit : NULL;
  h->tracer.ctx = h;
  struct chorus_prng root;
  chorus_prng_seed(&root, cfg->seed);
  chorus_prng_derive(&h->net, &root, 0x6e6574);
  for (int i = 0; i < n; i++) {
    struct node *x = &h->nodes[i];
    x->h = h;
    x->index = i;
    x->wake_at = SH_NEVER;
    chorus_prng_derive(&x->prng, &root, 1000 + (uint64_t)i);
    x->id = chorus_prng_next(&x->prng);
    snprintf(x->addr, sizeof x->addr, "n%d", i);
    sh_default_key(x->key);
    h->subj[i].first_suspect = SH_NEVER;
    h->subj[i].first_dead = SH_NEVER;
    h->tracked[i] = SH_NEVER;
  }
  *out = h;
  int started = cfg->started > 0 ? cfg->started : n;
  struct node **sorted = calloc((size_t)n, sizeof *sorted);
  if (sorted == NULL)
    return CHORUS_ENOMEM;
  for (int i = 0; i < n; i++)
    sorted[i] = &h->nodes[i];
  qsort(sorted, (size_t)n, sizeof *sorted, id_cmp);
  for (int i = 0; i < started; i++) {
    struct node *x = &h->nodes[i];
    int rc = make_swim(h, x);
    if (rc != CHORUS_OK) {
      free(sorted);
      return rc;
    }
    x->up = 1;
    if (cfg->bootstrap) {
      for (int k = 0; k < n; k++) {
        struct node *y = sorted[k];
        if (y == x || y->index >= started)
          continue;
        struct swim_meta m;
        memset(&m, 0, sizeof m);
        snprintf(m.addr, sizeof m.addr, "%s", y->addr);
        snprintf(m.dc, sizeof m.dc, "dc1");
        snprintf(m.rack, sizeof m.rack, "r%d", y->index % 3);
        m.ownership = RING_NORMAL;
        rc = swim_add_member(x->sw, y->id, &m, 0, 0);
        if (rc != CHORUS_OK) {
          free(sorted);
          return rc;
        }
      }
    }
    rc = swim_start(x->sw, 0);
    if (rc != CHORUS_OK) {
      free(sorted);
      return rc;
    }
    reschedule(x);
  }
  free(sorted);
  return CHORUS_OK;
}

void sh_free(struct sh *h) {
  if (h == NULL)
    return;
  for (int i = 0; h->nodes && i < h->cfg.nodes; i++)
    swim_free(h->nodes[i].sw);
  for (size_t i = 0; i < h->nheap; i++)
    free(h->heap[i].data);
  free(h->heap);
  free(h->nodes);
  free(h->subj);
  free(h->tracked);
  free(h);
}

int sh_run_until(struct sh *h, chorus_ms t_ms) {
  uint64_t limit = t_ms * 1000;
  while (h->nheap > 0 && h->heap[0].t_us <= limit && h->err == CHORUS_OK) {
    struct ev e = pop(h);
    h->now_us = e.t_us;
    struct node *n = &h->nodes[e.to];
    int rc = CHORUS_OK;
    if (e.kind == EV_DELIVER) {
      if (n->up && !n->blocked)
        rc = swim_handle_packet(n->sw, e.data, e.len, now_ms(h), wall_ms(n));
      free(e.data);
    } else {
      if (!n->up || e.t_us != n->wake_at)
        continue;
      n->wake_at = SH_NEVER;
      rc = swim_tick(n->sw, now_ms(h), wall_ms(n));
    }
    if (rc != CHORUS_OK)
      return rc;
    reschedule(n);
  }
  if (h->now_us < limit)
    h->now_us = limit;
  return h->err;
}

chorus_ms sh_now(const struct sh *h) {
  return now_ms(h);
}

struct swim *sh_swim(struct sh *h, int i) {
  return h->nodes[i].up ? h->nodes[i].sw : NULL;
}

chorus_node_id sh_id(const struct sh *h, int i) {
  return h->nodes[i].id;
}

const char *sh_addr(const struct sh *h, int i) {
  return h->nodes[i].addr;
}

int sh_start(struct sh *h, int i, int seed) {
  struct node *x = &h->nodes[i];
  if (x->up)
    return CHORUS_EINVAL;
  int rc = make_swim(h, x);
  if (rc != CHORUS_OK)
    return rc;
  x->up = 1;
  rc = swim_start(x->sw, now_ms(h));
  if (rc != CHORUS_OK)
    return rc;
  const char *seeds[1] = {h->nodes[seed].addr};
  rc = swim_join(x->sw, seeds, 1, now_ms(h), wall_ms(x));
  reschedule(x);
  return rc;
}

void sh_kill(struct sh *h, int i) {
  struct node *x = &h->nodes[i];
  x->up = 0;
  swim_free(x->sw);
  x->sw = NULL;
}

void sh_block(struct sh *h, int i, int blocked) {
  h->nodes[i].blocked = blocked;
}

void sh_wall_offset(struct sh *h, int i, int64_t ms) {
  h->nodes[i].wall_off = ms;
}

void sh_key(struct sh *h, int i, const uint8_t key[SWIM_KEY_BYTES]) {
  memcpy(h->nodes[i].key, key, SWIM_KEY_BYTES);
}

const struct sh_subject *sh_subject(const struct sh *h, int j) {
  return &h->subj[j];
}

uint64_t sh_false_deaths(const struct sh *h) {
  return h->false_deaths;
}

uint64_t sh_datagrams(const struct sh *h) {
  return h->datagrams;
}

size_t sh_max_datagram(const struct sh *h) {
  return h->max_datagram;
}

uint64_t sh_auth_failed(const struct sh *h) {
  uint64_t c = 0;
  for (int i = 0; i < h->cfg.nodes; i++)
    if (h->nodes[i].up)
      c += swim_stats(h->nodes[i].sw)->auth_failed;
  return c;
}

void sh_track(struct sh *h, chorus_node_id id, uint32_t inc) {
  h->tracking = 1;
  h->track_id = id;
  h->track_inc = inc;
  for (int i = 0; i < h->cfg.nodes; i++)
    h->tracked[i] = SH_NEVER;
}

chorus_ms sh_tracked_at(const struct sh *h, int i) {
  return h->tracked[i];
}

void sh_subject_reset(struct sh *h, int j) {
  memset(&h->subj[j], 0, sizeof h->subj[j]);
  h->subj[j].first_suspect = SH_NEVER;
  h->subj[j].first_dead = SH_NEVER;
}
