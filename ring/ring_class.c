/* ring_class.c: replication classes (ring.h): a keyspace's own
 * replication as a snapshot of the same nodes inside the cluster's. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "chorus_alloc.h"
#include "ring_int.h"

static int cmp_dc_name(const void *a, const void *b) {
  return strcmp(((const struct ring_dc_factor *)a)->dc,
                ((const struct ring_dc_factor *)b)->dc);
}

uint64_t ring_replication_tag(const struct ring_replication *r) {
  /* Canonical bytes: n, then (name, factor) sorted by name, each name
   * with its NUL so that no two lists run together. */
  struct ring_dc_factor dcs[RING_MAX_DCS];
  uint32_t k = r->dc_count < RING_MAX_DCS ? r->dc_count : RING_MAX_DCS;
  memcpy(dcs, r->dcs, k * sizeof *dcs);
  qsort(dcs, k, sizeof *dcs, cmp_dc_name);
  unsigned char buf[2 * sizeof(uint32_t) +
                    RING_MAX_DCS * (RING_NAME_MAX + sizeof(uint32_t))];
  size_t at = 0;
  uint32_t head[2] = {k == 0 ? r->n : 0, k};
  memcpy(buf, head, sizeof head);
  at += sizeof head;
  for (uint32_t i = 0; i < k; i++) {
    size_t len = strnlen(dcs[i].dc, RING_NAME_MAX - 1) + 1;
    memcpy(buf + at, dcs[i].dc, len - 1);
    buf[at + len - 1] = 0;
    at += len;
    memcpy(buf + at, &dcs[i].factor, sizeof dcs[i].factor);
    at += sizeof dcs[i].factor;
  }
  uint64_t h = XXH3_64bits(buf, at);
  return h == 0 ? 1 : h;
}

static int cmp_ks(const void *a, const void *b) {
  uint32_t x = ((const struct ring__ks *)a)->id;
  uint32_t y = ((const struct ring__ks *)b)->id;
  return x < y ? -1 : x > y;
}

int ring_snapshot_build_classes(const struct ring_node *nodes, size_t count,
                                const struct ring_replication *repl,
                                const struct ring_ks_replication *ks,
                                size_t nks, uint64_t version,
                                struct ring_snapshot **out, char *errmsg) {
  return ring_snapshot_build_keyspaces(nodes, count, repl, ks, nks, 0, version,
                                       out, errmsg);
}

int ring_snapshot_build_keyspaces(const struct ring_node *nodes, size_t count,
                                  const struct ring_replication *repl,
                                  const struct ring_ks_replication *ks,
                                  size_t nks, uint32_t next_id,
                                  uint64_t version, struct ring_snapshot **out,
                                  char *errmsg) {
  if (ks == NULL && nks > 0)
    return chorus_errf(errmsg, CHORUS_EINVAL, "ring: NULL argument");
  int rc = ring_snapshot_build(nodes, count, repl, version, out, errmsg);
  if (rc != CHORUS_OK || (nks == 0 && next_id <= 1))
    return rc;
  struct ring_snapshot *s = *out;
  *out = NULL;
  s->ks_next = next_id;
  uint64_t own = ring_replication_tag(repl);
  rc = CHORUS_ENOMEM;
  s->ks = chorus_calloc(nks ? nks : 1, sizeof *s->ks);
  if (s->ks == NULL)
    goto fail;
  for (size_t i = 0; i < nks; i++) {
    if (ks[i].ks_id == 0 || (next_id != 0 && ks[i].ks_id >= next_id)) {
      rc = chorus_errf(errmsg, CHORUS_EMALFORMED,
                       "ring: keyspace id %u (ids are 1..%u)", ks[i].ks_id,
                       next_id ? next_id - 1 : UINT32_MAX);
      goto fail;
    }
    bool cluster = ks[i].repl.n == 0 && ks[i].repl.dc_count == 0;
    if (!cluster &&
        (rc = ring_replication_check(&ks[i].repl, errmsg)) != CHORUS_OK)
      goto fail;
    uint64_t tag = cluster ? own : ring_replication_tag(&ks[i].repl);
    if (tag == own) {
      /* The cluster's: class 0, listed only when dropped ids are known
       * (every live id then is). */
      if (next_id != 0)
        s->ks[s->nks++] = (struct ring__ks){ks[i].ks_id, 0};
      continue;
    }
    unsigned c = 1;
    while (c < s->class_count && s->cls_tag[c] != tag)
      c++;
    if (c == s->class_count) {
      if (c == RING_MAX_CLASSES) {
        rc = chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "ring: more than %u replication classes",
                         RING_MAX_CLASSES);
        goto fail;
      }
      rc = ring_snapshot_build(nodes, count, &ks[i].repl, version, &s->cls[c],
                               errmsg);
      if (rc != CHORUS_OK)
        goto fail;
      s->cls_tag[c] = tag;
      s->class_count++;
    }
    s->ks[s->nks++] = (struct ring__ks){ks[i].ks_id, c};
  }
  qsort(s->ks, s->nks, sizeof *s->ks, cmp_ks);
  for (size_t i = 1; i < s->nks; i++)
    if (s->ks[i].id == s->ks[i - 1].id) {
      rc = chorus_errf(errmsg, CHORUS_EMALFORMED, "ring: keyspace %u twice",
                       s->ks[i].id);
      goto fail;
    }
  s->checksum = ring__checksum(s);
  *out = s;
  return CHORUS_OK;
fail:
  if (rc == CHORUS_ENOMEM)
    chorus_errf(errmsg, rc, "ring: building replication classes: %s",
                chorus_strerror(rc));
  ring_snapshot_free(s);
  return rc;
}

unsigned ring_snapshot_class_count(const struct ring_snapshot *s) {
  return s->class_count;
}

const struct ring_snapshot *ring_snapshot_class(const struct ring_snapshot *s,
                                                unsigned c) {
  if (c >= s->class_count)
    return NULL;
  return c == 0 ? s : s->cls[c];
}

uint64_t ring_snapshot_class_tag(const struct ring_snapshot *s, unsigned c) {
  return c < s->class_count ? s->cls_tag[c] : 0;
}

int ring_snapshot_class_find(const struct ring_snapshot *s, uint64_t tag) {
  for (unsigned c = 0; c < s->class_count; c++)
    if (s->cls_tag[c] == tag)
      return (int)c;
  return -1;
}

/* has_dropped: whether some id below ks_next is no live keyspace's. */
static bool has_dropped(const struct ring_snapshot *s) {
  return s->ks_next > 1 && s->nks < (size_t)s->ks_next - 1;
}

uint64_t ring_snapshot_class_map(const struct ring_snapshot *s) {
  /* The classes' tags by index, then (keyspace id, class index) in id
   * order (s->ks is sorted), each hash seeding the next; the next id too
   * when some keyspace was dropped (which ids are dropped). */
  if (s->class_count <= 1 && !has_dropped(s))
    return 0; /* the cluster's class alone */
  uint64_t h = XXH3_64bits(s->cls_tag, s->class_count * sizeof s->cls_tag[0]);
  if (has_dropped(s))
    h = XXH3_64bits_withSeed(&s->ks_next, sizeof s->ks_next, h);
  for (size_t i = 0; i < s->nks; i++) {
    uint32_t pair[2] = {s->ks[i].id, s->ks[i].cls};
    h = XXH3_64bits_withSeed(pair, sizeof pair, h);
  }
  return h;
}

uint32_t ring_key_keyspace(const void *key, size_t len) {
  const unsigned char *k = key;
  if (len <= RING_KS_PREFIX_LEN || k[0] != 0)
    return 0;
  return (uint32_t)k[1] << 24 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 8 |
         (uint32_t)k[4];
}

/* ks_find: the entry of keyspace @id in s->ks, or NULL. */
static const struct ring__ks *ks_find(const struct ring_snapshot *s,
                                      uint32_t id) {
  size_t lo = 0, hi = s->nks;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->ks[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < s->nks && s->ks[lo].id == id ? &s->ks[lo] : NULL;
}

unsigned ring_key_class(const struct ring_snapshot *s, const void *key,
                        size_t len) {
  uint32_t id = s->nks > 0 ? ring_key_keyspace(key, len) : 0;
  const struct ring__ks *e = id != 0 ? ks_find(s, id) : NULL;
  return e != NULL ? e->cls : 0;
}

const struct ring_snapshot *ring_snapshot_for_key(const struct ring_snapshot *s,
                                                  const void *key, size_t len) {
  unsigned c = ring_key_class(s, key, len);
  return c == 0 ? s : s->cls[c];
}

bool ring_snapshot_has_dropped(const struct ring_snapshot *s) {
  return has_dropped(s);
}

bool ring_key_dropped(const struct ring_snapshot *s, const void *key,
                      size_t len) {
  uint32_t id = has_dropped(s) ? ring_key_keyspace(key, len) : 0;
  /* An id not given yet is a keyspace this ring does not know. */
  return id != 0 && id < s->ks_next && ks_find(s, id) == NULL;
}
