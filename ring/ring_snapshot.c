/* ring_snapshot.c: tokens, and building, reading and sealing immutable ring
 * snapshots. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "chorus_alloc.h"
#include "ring_int.h"

chorus_token ring_token_of(const void *key, size_t len) {
  static const unsigned char empty[1] = {0};
  const unsigned char *k = key;
  if (len > RING_KS_PREFIX_LEN && k[0] == 0)
    return XXH3_64bits(k + RING_KS_PREFIX_LEN, len - RING_KS_PREFIX_LEN);
  return XXH3_64bits(len > 0 ? key : empty, len);
}

chorus_token ring_vnode_token(chorus_node_id id, uint32_t index) {
  /* Fixed little-endian layout, so every platform derives the same ring. */
  unsigned char buf[12];
  for (int i = 0; i < 8; i++)
    buf[i] = (unsigned char)(id >> (8 * i));
  for (int i = 0; i < 4; i++)
    buf[8 + i] = (unsigned char)(index >> (8 * i));
  return XXH3_64bits(buf, sizeof buf);
}

const char *ring_node_state_name(enum ring_node_state state) {
  switch (state) {
  case RING_JOINING:
    return "joining";
  case RING_NORMAL:
    return "normal";
  case RING_LEAVING:
    return "leaving";
  case RING_LEFT:
    return "left";
  case RING_REPLACING:
    return "replacing";
  }
  return "?";
}

/* ------------------------------------------------------------------------
 * Building
 * ------------------------------------------------------------------------ */

static int cmp_node_id(const void *a, const void *b) {
  const struct ring_node *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_vnode(const void *a, const void *b) {
  const struct ring__vnode *x = a, *y = b;
  if (x->token != y->token)
    return x->token < y->token ? -1 : 1;
  /* Equal tokens (a 2^-64 event, or a hostile id): order by node index,
   * i.e. by id, so every node builds the same ring. */
  return (x->node > y->node) - (x->node < y->node);
}

/* Sorting nodes by (datacenter, rack) to number the racks. */
struct rack_ref {
  const struct ring_node *node;
  uint32_t index;
};

static int cmp_rack(const void *a, const void *b) {
  const struct ring_node *x = ((const struct rack_ref *)a)->node;
  const struct ring_node *y = ((const struct rack_ref *)b)->node;
  int c = strcmp(x->dc, y->dc);
  return c != 0 ? c : strcmp(x->rack, y->rack);
}

static int name_ok(const char *name) {
  return memchr(name, '\0', RING_NAME_MAX) != NULL;
}

static uint32_t node_vnodes(const struct ring_node *n) {
  return n->vnodes == 0 ? RING_DEFAULT_VNODES : n->vnodes;
}

static chorus_node_id node_tokens_of(const struct ring_node *n) {
  return n->tokens_of == 0 ? n->id : n->tokens_of;
}

static int in_table(enum ring_node_state st, int future) {
  return st == RING_NORMAL || st == RING_REPLACING ||
         st == (future ? RING_JOINING : RING_LEAVING);
}

int ring_replication_check(const struct ring_replication *r, char *errmsg) {
  if (r->dc_count == 0) {
    if (r->n < 1 || r->n > RING_MAX_REPLICAS)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "ring: replication factor %u not in 1..%u", r->n,
                         RING_MAX_REPLICAS);
    return CHORUS_OK;
  }
  if (r->dc_count > RING_MAX_DCS)
    return chorus_errf(errmsg, CHORUS_EMALFORMED,
                       "ring: %u datacenters in replication, at most %u",
                       r->dc_count, RING_MAX_DCS);
  uint32_t total = 0;
  for (uint32_t i = 0; i < r->dc_count; i++) {
    if (!name_ok(r->dcs[i].dc))
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "ring: replication datacenter %u: name too long", i);
    if (r->dcs[i].factor < 1 || r->dcs[i].factor > RING_MAX_REPLICAS)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "ring: factor of %s not in 1..%u", r->dcs[i].dc,
                         RING_MAX_REPLICAS);
    total += r->dcs[i].factor;
    for (uint32_t j = 0; j < i; j++)
      if (strcmp(r->dcs[i].dc, r->dcs[j].dc) == 0)
        return chorus_errf(errmsg, CHORUS_EMALFORMED,
                           "ring: datacenter %s appears twice in replication",
                           r->dcs[i].dc);
  }
  if (total > RING_MAX_REPLICAS)
    return chorus_errf(errmsg, CHORUS_EMALFORMED,
                       "ring: replication factors sum to %u, at most %u", total,
                       RING_MAX_REPLICAS);
  return CHORUS_OK;
}

static void table_free(struct ring__table *t) {
  chorus_free(t->replicas);
  chorus_free(t->tok);
  chorus_free(t->meta);
  chorus_free(t->bucket);
  memset(t, 0, sizeof *t);
}

/* Builds the token table of the nodes in @s that are in the current
 * (@future == 0) or future ring. @rack_count is the number of global racks;
 * @scratch holds that many bytes. */
static int table_build(struct ring_snapshot *s, struct ring__table *t,
                       int future, size_t rack_count, uint8_t *scratch) {
  memset(t, 0, sizeof *t);
  size_t count = 0;
  uint32_t group_nodes[RING__MAX_GROUPS] = {0};
  memset(scratch, 0, rack_count);
  for (size_t i = 0; i < s->node_count; i++) {
    const struct ring_node *n = &s->nodes[i];
    if (!in_table(n->state, future))
      continue;
    count += node_vnodes(n);
    uint8_t g = s->node_group[i];
    if (g == RING__NO_GROUP)
      continue;
    group_nodes[g]++;
    if (node_vnodes(n) > 0)
      t->members[g]++;
    if (!scratch[s->node_rack[i]]) {
      scratch[s->node_rack[i]] = 1;
      t->racks[g]++;
    }
  }
  t->group_count = s->repl.dc_count == 0 ? 1 : s->repl.dc_count;
  for (unsigned g = 0; g < t->group_count && g < RING__MAX_GROUPS; g++) {
    uint32_t f = s->repl.dc_count == 0 ? s->repl.n : s->repl.dcs[g].factor;
    t->need[g] = (uint8_t)(f < group_nodes[g] ? f : group_nodes[g]);
    t->need_total += t->need[g];
  }

  /* Two to four vnodes per bucket: the search inside a bucket stays in one
   * or two cache lines, and the bucket array costs about one byte per
   * vnode, which keeps a lookup's working set (and TLB reach) small. */
  unsigned bits = 1;
  while (bits < 24 && ((size_t)4 << bits) < count)
    bits++;
  t->bucket_bits = bits;
  t->count = count;
  struct ring__vnode *v = chorus_calloc(count > 0 ? count : 1, sizeof *v);
  t->tok = chorus_calloc(count > 0 ? count : 1, sizeof *t->tok);
  t->meta = chorus_calloc(count > 0 ? count : 1, sizeof *t->meta);
  t->bucket = chorus_calloc(((size_t)1 << bits) + 1, sizeof *t->bucket);
  if (v == NULL || t->tok == NULL || t->meta == NULL || t->bucket == NULL) {
    chorus_free(v);
    table_free(t);
    return CHORUS_ENOMEM;
  }
  size_t k = 0;
  for (size_t i = 0; i < s->node_count; i++) {
    const struct ring_node *n = &s->nodes[i];
    if (!in_table(n->state, future))
      continue;
    for (uint32_t j = 0; j < node_vnodes(n); j++)
      v[k++] =
          (struct ring__vnode){ring_vnode_token(node_tokens_of(n), j),
                               (uint16_t)i, s->node_rack[i], s->node_group[i]};
  }
  qsort(v, count, sizeof *v, cmp_vnode);
  for (size_t i = 0; i < count; i++) {
    t->tok[i] = v[i].token;
    t->meta[i] = (struct ring__vmeta){v[i].node, v[i].rack, v[i].group, 0};
  }
  chorus_free(v);

  size_t nb = (size_t)1 << bits, i = 0;
  for (size_t b = 0; b <= nb; b++) {
    /* bucket[b] = first vnode whose top bits are >= b. */
    while (i < count && b < nb && (t->tok[i] >> (64 - bits)) < b)
      i++;
    t->bucket[b] = (uint32_t)(b == nb ? count : i);
  }

  /* Precompute every vnode's natural replicas. The rack-aware walk costs
   * ~15 steps of unpredictable branches for 3+3 replicas over three racks
   * per datacenter (~250 ns); copying a row costs a few. Building pays one
   * walk per vnode instead (tens of milliseconds for 100 nodes at the
   * default T), once per ring change, and every lookup is cheap. */
  if (count > 0 && t->need_total > 0 &&
      count * t->need_total <= RING__PRECOMPUTE_MAX) {
    t->replicas = chorus_malloc(count * t->need_total * sizeof *t->replicas);
    if (t->replicas == NULL) {
      table_free(t);
      return CHORUS_ENOMEM;
    }
    struct ring_replica r[RING_MAX_REPLICAS];
    for (size_t x = 0; x < count; x++) {
      unsigned n = ring__walk(s, t, x, r);
      /* Every group completes within one turn (need <= its nodes). */
      assert(n == t->need_total);
      for (unsigned j = 0; j < n; j++)
        t->replicas[x * t->need_total + j] = r[j].node;
    }
  }
  return CHORUS_OK;
}

int ring_snapshot_build(const struct ring_node *nodes, size_t count,
                        const struct ring_replication *repl, uint64_t version,
                        struct ring_snapshot **out, char *errmsg) {
  if (out == NULL || repl == NULL || (nodes == NULL && count > 0))
    return chorus_errf(errmsg, CHORUS_EINVAL, "ring: NULL argument");
  *out = NULL;
  if (count > RING_MAX_NODES)
    return chorus_errf(errmsg, CHORUS_EMALFORMED, "ring: %zu nodes, at most %u",
                       count, RING_MAX_NODES);
  int rc = ring_replication_check(repl, errmsg);
  if (rc != CHORUS_OK)
    return rc;
  for (size_t i = 0; i < count; i++) {
    const struct ring_node *n = &nodes[i];
    if (!name_ok(n->dc) || !name_ok(n->rack))
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "ring: node %016llx: datacenter or rack name "
                         "without NUL within %u bytes",
                         (unsigned long long)n->id, RING_NAME_MAX);
    if (n->state != RING_JOINING && n->state != RING_NORMAL &&
        n->state != RING_LEAVING && n->state != RING_LEFT &&
        n->state != RING_REPLACING)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "ring: node %016llx: unknown state %d",
                         (unsigned long long)n->id, (int)n->state);
    if (n->vnodes > RING_MAX_VNODES)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "ring: node %016llx: %u vnodes, at most %u",
                         (unsigned long long)n->id, n->vnodes, RING_MAX_VNODES);
  }

  rc = CHORUS_ENOMEM;
  struct ring_snapshot *s = chorus_calloc(1, sizeof *s);
  if (s == NULL)
    goto err;
  s->version = version;
  s->repl = *repl;
  s->class_count = 1;
  s->node_count = count;
  s->nodes = chorus_calloc(count > 0 ? count : 1, sizeof *s->nodes);
  s->node_group = chorus_calloc(count > 0 ? count : 1, 1);
  s->node_rack = chorus_calloc(count > 0 ? count : 1, sizeof *s->node_rack);
  s->node_id = chorus_calloc(count > 0 ? count : 1, sizeof *s->node_id);
  struct rack_ref *order = chorus_calloc(count > 0 ? count : 1, sizeof *order);
  uint8_t *scratch = chorus_calloc(count > 0 ? count : 1, 1);
  if (s->nodes == NULL || s->node_group == NULL || s->node_rack == NULL ||
      s->node_id == NULL || order == NULL || scratch == NULL)
    goto err_after_scratch;

  /* Copy with names normalised (zero after the NUL), sorted by id. */
  for (size_t i = 0; i < count; i++) {
    struct ring_node *d = &s->nodes[i];
    d->id = nodes[i].id;
    strcpy(d->dc, nodes[i].dc);
    strcpy(d->rack, nodes[i].rack);
    d->state = nodes[i].state;
    d->vnodes = node_vnodes(&nodes[i]);
    d->tokens_of = node_tokens_of(&nodes[i]);
  }
  qsort(s->nodes, count, sizeof *s->nodes, cmp_node_id);
  for (size_t i = 1; i < count; i++)
    if (s->nodes[i].id == s->nodes[i - 1].id) {
      rc =
          chorus_errf(errmsg, CHORUS_EMALFORMED, "ring: duplicate node %016llx",
                      (unsigned long long)s->nodes[i].id);
      goto err_after_scratch;
    }

  for (size_t i = 0; i < count; i++)
    s->node_id[i] = s->nodes[i].id;

  /* Groups: the datacenter's index in the spec, or 0 for a single N. */
  for (size_t i = 0; i < count; i++) {
    uint8_t g = repl->dc_count == 0 ? 0 : RING__NO_GROUP;
    for (uint32_t d = 0; d < repl->dc_count; d++)
      if (strcmp(s->nodes[i].dc, repl->dcs[d].dc) == 0)
        g = (uint8_t)d;
    s->node_group[i] = g;
  }
  /* Racks: number the distinct (datacenter, rack) pairs. */
  for (size_t i = 0; i < count; i++)
    order[i] = (struct rack_ref){&s->nodes[i], (uint32_t)i};
  qsort(order, count, sizeof *order, cmp_rack);
  size_t racks = 0;
  for (size_t i = 0; i < count; i++) {
    if (i > 0 && cmp_rack(&order[i - 1], &order[i]) != 0)
      racks++;
    s->node_rack[order[i].index] = (uint16_t)racks;
  }
  racks = count > 0 ? racks + 1 : 0;

  int future = 0;
  for (size_t i = 0; i < count; i++)
    if (s->nodes[i].state == RING_JOINING || s->nodes[i].state == RING_LEAVING)
      future = 1;
  if (table_build(s, &s->cur, 0, racks, scratch) != CHORUS_OK)
    goto err_after_scratch;
  if (future && table_build(s, &s->fut, 1, racks, scratch) != CHORUS_OK)
    goto err_after_scratch;
  s->has_future = future;
  s->checksum = ring__checksum(s);
  chorus_free(scratch);
  chorus_free(order);
  *out = s;
  return CHORUS_OK;

err_after_scratch:
  chorus_free(scratch);
  chorus_free(order);
  ring_snapshot_free(s);
err:
  if (rc == CHORUS_ENOMEM)
    chorus_errf(errmsg, rc, "ring: building a snapshot of %zu nodes: %s", count,
                chorus_strerror(rc));
  return rc;
}

void ring_snapshot_free(struct ring_snapshot *s) {
  if (s == NULL)
    return;
  for (unsigned c = 1; c < s->class_count && c < RING_MAX_CLASSES; c++)
    ring_snapshot_free(s->cls[c]);
  chorus_free(s->ks);
  table_free(&s->cur);
  table_free(&s->fut);
  chorus_free(s->nodes);
  chorus_free(s->node_group);
  chorus_free(s->node_rack);
  chorus_free(s->node_id);
  /* Poison, so a reader that outlived its grace period fails verification
   * even where ASan does not run. */
  memset(s, 0xdd, sizeof *s);
  chorus_free(s);
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

uint64_t ring_snapshot_version(const struct ring_snapshot *s) {
  return s->version;
}

size_t ring_snapshot_node_count(const struct ring_snapshot *s) {
  return s->node_count;
}

const struct ring_node *ring_snapshot_node(const struct ring_snapshot *s,
                                           size_t i) {
  return i < s->node_count ? &s->nodes[i] : NULL;
}

long ring_snapshot_find(const struct ring_snapshot *s, chorus_node_id id) {
  size_t lo = 0, hi = s->node_count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->nodes[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < s->node_count && s->nodes[lo].id == id ? (long)lo : -1;
}

const struct ring_replication *
ring_snapshot_replication(const struct ring_snapshot *s) {
  return &s->repl;
}

size_t ring_snapshot_token_count(const struct ring_snapshot *s) {
  return s->cur.count;
}

chorus_token ring_snapshot_token(const struct ring_snapshot *s, size_t i,
                                 size_t *owner) {
  if (i >= s->cur.count)
    return 0;
  if (owner != NULL)
    *owner = s->cur.meta[i].node;
  return s->cur.tok[i];
}

void ring_snapshot_ownership(const struct ring_snapshot *s, double *share) {
  for (size_t i = 0; i < s->node_count; i++)
    share[i] = 0;
  const struct ring__table *t = &s->cur;
  if (t->count == 0)
    return;
  /* Vnode i owns (token[i-1], token[i]]; the first one wraps. */
  const double scale = 1.0 / 18446744073709551616.0; /* 2^-64 */
  for (size_t i = 0; i < t->count; i++) {
    chorus_token prev = t->tok[i == 0 ? t->count - 1 : i - 1];
    chorus_token gap = t->tok[i] - prev;
    share[t->meta[i].node] += t->count == 1 ? 1.0 : (double)gap * scale;
  }
}

static uint64_t table_checksum(const struct ring__table *t, uint64_t seed) {
  seed = XXH3_64bits_withSeed(t->tok, t->count * sizeof *t->tok, seed);
  seed = XXH3_64bits_withSeed(t->meta, t->count * sizeof *t->meta, seed);
  seed ^= t->count + t->need_total;
  if (t->replicas != NULL)
    seed = XXH3_64bits_withSeed(
        t->replicas, t->count * t->need_total * sizeof *t->replicas, seed);
  if (t->bucket != NULL)
    seed = XXH3_64bits_withSeed(
        t->bucket, (((size_t)1 << t->bucket_bits) + 1) * sizeof *t->bucket,
        seed);
  return seed;
}

uint64_t ring__checksum(const struct ring_snapshot *s) {
  uint64_t h = XXH3_64bits_withSeed(&s->repl, sizeof s->repl, s->version);
  h = XXH3_64bits_withSeed(s->nodes, s->node_count * sizeof *s->nodes, h);
  h = XXH3_64bits_withSeed(s->node_group, s->node_count, h);
  h = XXH3_64bits_withSeed(s->node_id, s->node_count * sizeof *s->node_id, h);
  h = XXH3_64bits_withSeed(s->node_rack, s->node_count * sizeof *s->node_rack,
                           h);
  h = table_checksum(&s->cur, h);
  if (s->has_future)
    h = table_checksum(&s->fut, h);
  h = XXH3_64bits_withSeed(s->cls_tag, sizeof s->cls_tag, h ^ s->class_count);
  h = XXH3_64bits_withSeed(s->ks, s->nks * sizeof *s->ks, h ^ s->ks_next);
  for (unsigned c = 1; c < s->class_count && c < RING_MAX_CLASSES; c++)
    h ^= ring__checksum(s->cls[c]) + c;
  return h;
}

int ring_snapshot_verify(const struct ring_snapshot *s) {
  return ring__checksum(s) == s->checksum ? CHORUS_OK : CHORUS_ECORRUPT;
}
