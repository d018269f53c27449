/* ring_int.h: the layout of a ring snapshot, shared by the ring_*.c files. */
#ifndef CHORUS_RING_INT_H
#define CHORUS_RING_INT_H

#include <urcu/urcu-memb.h>

#include "ring.h"

/* Group of a node whose datacenter the replication spec does not name. */
#define RING__NO_GROUP 0xffu
#define RING__MAX_GROUPS RING_MAX_DCS
/* Largest precomputed replica table, in entries (2 bytes each): 32 MiB.
 * 100 nodes at T=1024 with 3+3 replicas take 614,400. */
#define RING__PRECOMPUTE_MAX (16u * 1024u * 1024u)

/* One virtual node while a table is being built (sorted, then split). */
struct ring__vnode {
  chorus_token token;
  uint16_t node;
  uint16_t rack;
  uint8_t group;
};

/* What the walk reads about a vnode besides its token. Kept apart from the
 * tokens so that a lookup, which only searches tokens and copies a
 * precomputed row, touches as few cache lines and pages as possible. */
struct ring__vmeta {
  uint16_t node; /* index into ring_snapshot.nodes */
  uint16_t rack; /* global rack index: one per (datacenter, rack) pair */
  uint8_t group; /* replication group, or RING__NO_GROUP */
  uint8_t pad;   /* zero */
};

/* One ring of tokens (current or future) with its lookup accelerator: the
 * top @bucket_bits of a token index @bucket, where bucket[b] is the first
 * vnode whose token's top bits are >= b, so a lookup binary-searches only
 * the two to four vnodes of one bucket. */
struct ring__table {
  size_t count;
  chorus_token *tok;        /* sorted; ties ordered by node id */
  struct ring__vmeta *meta; /* parallel to tok */
  uint32_t *bucket;         /* (1 << bucket_bits) + 1 entries */
  unsigned bucket_bits;
  /* The natural replicas of every vnode's range, precomputed at build time
   * (need_total node indexes per vnode, in the order the walk takes them),
   * so a lookup is one search and a copy; NULL when the table would exceed
   * RING__PRECOMPUTE_MAX entries, and lookups walk instead. */
  uint16_t *replicas;
  /* Per group: replicas a key actually gets (the factor capped by the
   * group's node count in this ring), and distinct racks in the group. */
  uint8_t need[RING__MAX_GROUPS];
  uint16_t racks[RING__MAX_GROUPS];
  /* Per group: nodes with at least one vnode in this table (where a
   * fallback walk may stop, ring_lookup.c). */
  uint16_t members[RING__MAX_GROUPS];
  unsigned group_count;
  unsigned need_total;
};

/* A keyspace in a class of its own (ring_class.c). */
struct ring__ks {
  uint32_t id;
  uint32_t cls;
};

struct ring_snapshot {
  struct rcu_head rcu; /* ring_rcu.c frees through call_rcu */
  uint64_t version;
  struct ring_replication repl;
  size_t node_count;
  struct ring_node *nodes; /* sorted by id */
  chorus_node_id *node_id; /* per node, compact: what lookups copy out */
  uint8_t *node_group;     /* per node */
  uint16_t *node_rack;     /* per node: global rack index */
  struct ring__table cur;  /* normal + leaving */
  struct ring__table fut;  /* normal + joining */
  int has_future;          /* fut differs from cur */
  /* Replication classes (ring.h): cls[0] is NULL (class 0 is this
   * snapshot), cls[1..class_count) own snapshots built with the same
   * nodes; ks maps the keyspaces outside class 0 to theirs, sorted by id. */
  unsigned class_count;
  struct ring_snapshot *cls[RING_MAX_CLASSES];
  uint64_t cls_tag[RING_MAX_CLASSES];
  size_t nks;
  struct ring__ks *ks;
  /* The metadata's next keyspace id when the builder knew it (0: not
   * known): an id below it that ks does not list was dropped. */
  uint32_t ks_next;
  uint64_t checksum; /* ring_snapshot_verify */
};

uint64_t ring__checksum(const struct ring_snapshot *s);

/* ring__search: the first vnode of @t (count > 0) whose token is >=
 * @token, wrapping to 0 past the last. */
size_t ring__search(const struct ring__table *t, chorus_token token);

/* ring__walk: the clockwise walk from vnode @start of @t: the natural
 * replicas into @out (at most RING_MAX_REPLICAS); returns how many. */
unsigned ring__walk(const struct ring_snapshot *s, const struct ring__table *t,
                    size_t start, struct ring_replica *out);

/* ring__natural: the natural replicas of @token in @t, into @out; from the
 * precomputed table when there is one. */
unsigned ring__natural(const struct ring_snapshot *s,
                       const struct ring__table *t, chorus_token token,
                       struct ring_replica *out);

#endif /* CHORUS_RING_INT_H */
