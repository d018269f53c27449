/* repl_int.h: replication's private pieces: quorum resolution and tallies
 * (repl_options.c) and the hint table (repl_hints.c). Not for other modules;
 * tests include it to drive the pieces directly. */
#ifndef CHORUS_REPL_INT_H
#define CHORUS_REPL_INT_H

#include "repl.h"

/* ------------------------------------------------------------------------
 * Quorums (repl_options.c)
 * ------------------------------------------------------------------------ */

/* What one request needs, resolved from a level (enum wire_level or a
 * count) against the replication settings. Acknowledgements from replicas
 * outside @only_group (when >= 0) count toward nothing but @primaries. */
struct repl_need {
  uint8_t total;     /* acknowledgements, all eligible replicas together */
  uint8_t primaries; /* of which natural replicas (pr/pw) */
  int8_t only_group; /* LOCAL_*: the coordinator's group; -1: any */
  uint8_t ngroups;   /* groups with a minimum below */
  uint8_t per_group[RING_MAX_DCS]; /* EACH_QUORUM: minimum per group */
};

struct repl_tally {
  uint8_t total, primaries;
  uint8_t per_group[RING_MAX_DCS];
};

/* repl__group_of_dc: the replication group of datacenter @dc under @rs:
 * 0 when @rs has no datacenters (one group), the index of @dc in rs->dcs,
 * or -1 when @dc is not replicated. */
int repl__group_of_dc(const struct ring_replication *rs, const char *dc);

/* repl__resolve: resolves @level (and @primary_level, the pr/pw, 0 for
 * none) into *@out. @local_group is the coordinator's group (-1: its
 * datacenter holds no replicas). @what names the option in messages ("r",
 * "w"). Errors: CHORUS_EINVAL (level out of range, more than N, a LOCAL
 * level without datacenters or outside a replicated one, pr above N;
 * @errmsg, CHORUS_ERRMSG_SIZE bytes, says which). */
int repl__resolve(const struct ring_replication *rs, int32_t level,
                  int32_t primary_level, int local_group, const char *what,
                  struct repl_need *out, char *errmsg);

/* repl__tally_add: counts one acknowledgement of a replica in @group,
 * natural or not. */
void repl__tally_add(struct repl_tally *t, const struct repl_need *n, int group,
                     bool natural);
bool repl__tally_met(const struct repl_tally *t, const struct repl_need *n);

/* ------------------------------------------------------------------------
 * Hints (repl_hints.c)
 *
 * STORE_HINTS layout: key [target BE][token BE][user key], one hint per
 * (target, key); value [hint seq BE][wall ms BE][object...]. The object is
 * empty for a coordinator's own hints (replay sends its current object of
 * the key) and present for hints a fallback keeps for another node.
 * ------------------------------------------------------------------------ */

#define REPL_HINT_PREFIX 16u
#define REPL_HINT_HEAD 16u

struct repl_hint_target {
  chorus_node_id target;
  uint64_t count, bytes;
};

/* The index: every hint in the table, by (target, token, key), with its
 * sequence and size, so that arming and disarming never read the store
 * (they are on every replicated write's path). */
struct repl_hint_entry {
  struct repl_hint_entry *next;
  chorus_node_id target;
  chorus_token token;
  uint64_t seq;
  uint64_t size; /* key + value bytes in the table */
  size_t klen;
  unsigned char key[]; /* the user key */
};

/* A delete decided (the hint was disarmed) but not yet written: deletes
 * ride along with the next write batch (repl__hints_flush), skipping keys
 * re-armed meanwhile. A crash that loses them only replays a hint again. */
struct repl_hint_pending {
  chorus_node_id target;
  chorus_token token;
  size_t klen;
  unsigned char *key;
};

struct repl_hints {
  struct repl_hint_target *t; /* sorted by target */
  uint32_t n, cap;
  uint64_t max_bytes;
  uint64_t queued, dropped; /* totals since start */
  struct repl_hint_entry **bucket;
  size_t nbuckets, nentries;
  struct repl_hint_pending *pend;
  size_t npend, cappend;
};

/* One hint read back; pointers borrowed from the iterator or buffer. */
struct repl_hint {
  chorus_node_id target;
  chorus_token token;
  const void *key;
  size_t klen;
  uint64_t seq;
  chorus_ms wall;
  const void *object;
  size_t olen;
};

void repl__hints_init(struct repl_hints *h, uint64_t max_bytes);
void repl__hints_free(struct repl_hints *h);
/* repl__hints_load: (re)builds the index and the counts from the table: at
 * start, and after a write batch that carried hints (or pending deletes)
 * failed, since the index already counted them. Errors: store errors,
 * CHORUS_ECORRUPT (a malformed hint key or value), CHORUS_ENOMEM. */
int repl__hints_load(struct repl_hints *h, struct store *s);
/* repl__hints_arm: adds to @b the hint (@target, @token, @key) with @seq,
 * @wall and @object (may be empty), replacing the one there. Over the
 * target's byte bound the hint is not written: *@dropped is set and the
 * drop counted. The index assumes @b gets written: if it does not, call
 * repl__hints_load. Errors:
 * CHORUS_ENOMEM, store read errors. */
int repl__hints_arm(struct repl_hints *h, struct store *s,
                    struct store_batch *b, chorus_node_id target,
                    chorus_token token, const void *key, size_t klen,
                    uint64_t seq, chorus_ms wall, const void *object,
                    size_t olen, bool *dropped);
/* repl__hints_get: the hint (@target, @token, @key) into *@out, its value
 * in *@buf (chorus_malloc'ed, the caller frees). Errors: CHORUS_ENOTFOUND,
 * CHORUS_ECORRUPT, store errors. */
int repl__hints_get(struct store *s, chorus_node_id target, chorus_token token,
                    const void *key, size_t klen, struct repl_hint *out,
                    void **buf);
/* repl__hints_disarm: deletes the hint when it still carries @seq (a later
 * write re-arms it with a newer one): at once from the index and the
 * counts, from the table at the next repl__hints_flush. *@deleted (may be
 * NULL) says so. Errors: CHORUS_ENOMEM. */
int repl__hints_disarm(struct repl_hints *h, struct store *s,
                       chorus_node_id target, chorus_token token,
                       const void *key, size_t klen, uint64_t seq,
                       bool *deleted);
/* repl__hints_flush: appends the pending deletes to @b (NULL: writes them
 * in a batch of their own), skipping hints re-armed since. Errors:
 * CHORUS_ENOMEM, store write errors (the deletes stay pending). */
int repl__hints_flush(struct repl_hints *h, struct store *s,
                      struct store_batch *b);
size_t repl__hints_pending_deletes(const struct repl_hints *h);
/* repl__hints_current: whether the index holds (@target, @token, @key)
 * with sequence @seq (replay skips hints disarmed or re-armed since). */
bool repl__hints_current(const struct repl_hints *h, chorus_node_id target,
                         chorus_token token, const void *key, size_t klen,
                         uint64_t seq);
/* repl__hints_drop: deletes a hint over a bound and counts it. */
int repl__hints_drop(struct repl_hints *h, struct store *s,
                     const struct repl_hint *hint);
/* repl__hint_parse: splits a table entry. Errors: CHORUS_ECORRUPT. */
int repl__hint_parse(const void *k, size_t klen, const void *v, size_t vlen,
                     struct repl_hint *out);
uint64_t repl__hints_count(const struct repl_hints *h, chorus_node_id target);
uint64_t repl__hints_total(const struct repl_hints *h, uint64_t *bytes);
/* repl__hint_key: writes the key into @out (REPL_HINT_PREFIX + @klen). */
size_t repl__hint_key(unsigned char *out, chorus_node_id target,
                      chorus_token token, const void *key, size_t klen);

#endif /* CHORUS_REPL_INT_H */
