/* wire_gen.c: schema-driven message generator for wire tests and benches. */
#include <string.h>

#include "chorus_alloc.h"
#include "wire_gen.h"

#define POOL (2u * 1024 * 1024)
#define BIG (1u * 1024 * 1024) /* "maximal" length of frame-bounded bytes */

int wire_gen_init(struct wire_gen *g, uint64_t seed) {
  memset(g, 0, sizeof *g);
  chorus_prng_seed(&g->prng, seed);
  g->pool = chorus_malloc(POOL);
  if (!g->pool)
    return -1;
  g->pool_len = POOL;
  for (size_t i = 0; i < POOL; i++)
    g->pool[i] = (uint8_t)chorus_prng_next(&g->prng);
  return 0;
}

void wire_gen_fini(struct wire_gen *g) {
  chorus_free(g->pool);
  g->pool = NULL;
}

static struct wire_bytes bytes_of(struct wire_gen *g, size_t len) {
  if (len > g->pool_len)
    len = g->pool_len;
  size_t off = (size_t)chorus_prng_below(&g->prng, g->pool_len - len + 1);
  struct wire_bytes b = {g->pool + off, len};
  if (len == 0 && chorus_prng_chance(&g->prng, 0.5))
    b.ptr = NULL; /* empty fields may come with a NULL pointer */
  return b;
}

static size_t pick_len(struct wire_gen *g, enum wire_gen_mode mode,
                       uint64_t min, uint64_t max) {
  if (max > BIG)
    max = BIG;
  if (mode == WIRE_GEN_EMPTY)
    return (size_t)min;
  if (mode == WIRE_GEN_MAX)
    return (size_t)max;
  uint64_t hi = max < 300 ? max : 300;
  if (hi < min)
    hi = min;
  return (size_t)chorus_prng_range(&g->prng, min, hi);
}

static uint64_t pick_uint(struct wire_gen *g, enum wire_gen_mode mode,
                          uint64_t max) {
  if (mode == WIRE_GEN_EMPTY)
    return 0;
  if (mode == WIRE_GEN_MAX)
    return max;
  /* Favour the edges, where encodings change width. */
  switch (chorus_prng_below(&g->prng, 4)) {
  case 0:
    return chorus_prng_range(&g->prng, 0, max < 200 ? max : 200);
  case 1:
    return max;
  default:
    return max == UINT64_MAX ? chorus_prng_next(&g->prng)
                             : chorus_prng_range(&g->prng, 0, max);
  }
}

static int64_t pick_int(struct wire_gen *g, enum wire_gen_mode mode,
                        int64_t min, int64_t max) {
  if (mode == WIRE_GEN_EMPTY)
    return min <= 0 && max >= 0 ? 0 : max;
  if (mode == WIRE_GEN_MAX)
    return chorus_prng_chance(&g->prng, 0.5) ? min : max;
  uint64_t span = (uint64_t)max - (uint64_t)min;
  uint64_t r = span == UINT64_MAX ? chorus_prng_next(&g->prng)
                                  : chorus_prng_range(&g->prng, 0, span);
  return (int64_t)((uint64_t)min + r);
}

static void gen_opts(struct wire_gen *g, enum wire_gen_mode mode,
                     struct wire_options *o) {
  memset(o, 0, sizeof *o);
  if (mode == WIRE_GEN_EMPTY)
    return;
  if (mode == WIRE_GEN_MAX) {
    *o = (struct wire_options){WIRE_MAX_REPLICAS,   WIRE_EACH_QUORUM,
                               WIRE_MAX_REPLICAS,   WIRE_LEVEL_MIN,
                               WIRE_MAX_TIMEOUT_MS, true,
                               WIRE_RR_MAX,         {NULL, 0},
                               {NULL, 0},           WIRE_OPT_FLAGS_ALL};
    o->dc = bytes_of(g, WIRE_MAX_LABEL);
    o->keyspace = bytes_of(g, WIRE_MAX_KEYSPACE_NAME);
    return;
  }
  int32_t *lv[4] = {&o->r, &o->w, &o->pr, &o->pw};
  for (int k = 0; k < 4; k++)
    *lv[k] = (int32_t)pick_int(g, mode, WIRE_LEVEL_MIN, WIRE_MAX_REPLICAS);
  o->timeout_ms = (uint32_t)pick_uint(g, mode, WIRE_MAX_TIMEOUT_MS);
  o->sloppy = chorus_prng_chance(&g->prng, 0.5);
  o->read_repair = (uint8_t)pick_uint(g, mode, WIRE_RR_MAX);
  if (chorus_prng_chance(&g->prng, 0.5)) /* version 4: a client's dc */
    o->dc = bytes_of(g, pick_len(g, mode, 1, WIRE_MAX_LABEL));
  if (chorus_prng_chance(&g->prng, 0.3)) /* version 5: a keyspace */
    o->keyspace = bytes_of(g, pick_len(g, mode, 1, WIRE_MAX_KEYSPACE_NAME));
  if (chorus_prng_chance(&g->prng, 0.3)) /* version 5: flags */
    o->flags = (uint8_t)pick_uint(g, mode, WIRE_OPT_FLAGS_ALL);
}

static size_t pick_count(struct wire_gen *g, enum wire_gen_mode mode,
                         size_t cap) {
  if (mode == WIRE_GEN_EMPTY)
    return 0;
  if (mode == WIRE_GEN_MAX)
    return 3;
  return (size_t)chorus_prng_below(&g->prng, cap + 1);
}

void wire_gen_msg(struct wire_gen *g, const struct wire__schema *s,
                  enum wire_gen_mode mode, struct wire_msg *m) {
  memset(m, 0, sizeof *m);
  m->type = s->type;
  m->request_id = pick_uint(g, mode, UINT64_MAX);
  char *base = (char *)m;
  for (unsigned i = 0; i < s->nfields; i++) {
    const struct wire__field *f = &s->f[i];
    void *p = base + f->off;
    switch (f->kind) {
    case WIRE__K_UINT:
      wire__uint_store(p, f->width, pick_uint(g, mode, f->max));
      break;
    case WIRE__K_INT:
      wire__int_store(p, f->width, pick_int(g, mode, f->min, f->imax));
      break;
    case WIRE__K_BOOL:
      *(bool *)p = mode != WIRE_GEN_EMPTY;
      break;
    case WIRE__K_BIN:
    case WIRE__K_TEXT:
      *(struct wire_bytes *)p =
          bytes_of(g, pick_len(g, mode, f->min_len, f->max));
      break;
    case WIRE__K_OPTS:
      gen_opts(g, mode, p);
      break;
    case WIRE__K_BLIST: {
      struct wire_bytes_list *l = p;
      l->n = pick_count(g, mode, 20);
      l->items = l->n ? g->items : NULL;
      for (size_t k = 0; k < l->n; k++)
        g->items[k] = bytes_of(g, pick_len(g, mode, 0, f->max));
      break;
    }
    case WIRE__K_NODES: {
      struct wire_ring_reply *r = p;
      r->nnodes = pick_count(g, mode, 16);
      r->nodes = r->nnodes ? g->nodes : NULL;
      for (size_t k = 0; k < r->nnodes; k++) {
        struct wire_ring_node *n = &g->nodes[k];
        n->id = pick_uint(g, mode, UINT64_MAX);
        n->addr = bytes_of(g, pick_len(g, mode, 0, WIRE_MAX_ADDR));
        n->dc = bytes_of(g, pick_len(g, mode, 0, WIRE_MAX_LABEL));
        n->rack = bytes_of(g, pick_len(g, mode, 0, WIRE_MAX_LABEL));
        n->state = (uint8_t)pick_uint(g, mode, WIRE_NODE_STATE_MAX);
        /* RING_REPLY's nodes carry no name: leave it empty there. */
        n->name = f->max > 0 ? bytes_of(g, pick_len(g, mode, 0, f->max))
                             : (struct wire_bytes){NULL, 0};
      }
      break;
    }
    case WIRE__K_MEMBERS: {
      struct wire_cluster_reply *r = p;
      r->nmembers = pick_count(g, mode, 16);
      r->members = r->nmembers ? g->members : NULL;
      for (size_t k = 0; k < r->nmembers; k++) {
        struct wire_cluster_member *n = &g->members[k];
        n->id = pick_uint(g, mode, UINT64_MAX);
        n->name = bytes_of(g, pick_len(g, mode, 1, WIRE_MAX_NAME));
        n->addr = bytes_of(g, pick_len(g, mode, 0, WIRE_MAX_ADDR));
        n->dc = bytes_of(g, pick_len(g, mode, 0, WIRE_MAX_LABEL));
        n->rack = bytes_of(g, pick_len(g, mode, 0, WIRE_MAX_LABEL));
        /* States start at 1 (JOINING): the range is shifted. */
        n->state =
            (uint8_t)(WIRE_MEMBER_JOINING +
                      pick_uint(g, mode,
                                WIRE_MEMBER_STATE_MAX - WIRE_MEMBER_JOINING));
        n->role = (uint8_t)pick_uint(g, mode, WIRE_RAFT_ROLE_MAX);
        n->alive = (uint8_t)pick_uint(g, mode, WIRE_ALIVE_MAX);
        n->vnodes = (uint32_t)pick_uint(g, mode, 65535);
        n->share_ppm = (uint32_t)pick_uint(g, mode, WIRE_SHARE_PPM_MAX);
      }
      break;
    }
    case WIRE__K_MOVES: {
      struct wire_cluster_plan_reply *r = p;
      r->nmoves = pick_count(g, mode, 16);
      r->moves = r->nmoves ? g->moves : NULL;
      for (size_t k = 0; k < r->nmoves; k++) {
        struct wire_plan_move *v = &g->moves[k];
        v->from = pick_uint(g, mode, UINT64_MAX);
        v->to = pick_uint(g, mode, UINT64_MAX);
        v->from_name = bytes_of(g, pick_len(g, mode, 0, WIRE_MAX_NAME));
        v->to_name = bytes_of(g, pick_len(g, mode, 0, WIRE_MAX_NAME));
        v->ranges = (uint32_t)pick_uint(g, mode, UINT32_MAX);
        v->share_ppm = (uint32_t)pick_uint(g, mode, WIRE_SHARE_PPM_MAX);
        v->est_keys = pick_uint(g, mode, UINT64_MAX);
        v->est_bytes = pick_uint(g, mode, UINT64_MAX);
      }
      break;
    }
    case WIRE__K_STATS: {
      struct wire_status_reply *r = p;
      r->nstats = pick_count(g, mode, 16);
      r->stats = r->nstats ? g->stats : NULL;
      for (size_t k = 0; k < r->nstats; k++) {
        g->stats[k].name =
            bytes_of(g, pick_len(g, mode, 1, WIRE_MAX_STAT_NAME));
        g->stats[k].value = pick_int(g, mode, INT64_MIN, INT64_MAX);
      }
      break;
    }
    }
  }
}
