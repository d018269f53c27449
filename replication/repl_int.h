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
 *
 * struct repl_hints is the caller's to allocate (repl__hints_init); its
 * fields belong to repl_hints.c, and everyone else goes through the
 * functions below. The index holds every hint in the table, by (target,
 * token, key), with its sequence and size, so that arming and disarming
 * never read the store (they are on every replicated write's path).
 * ------------------------------------------------------------------------ */

#define REPL_HINT_PREFIX 16u
#define REPL_HINT_HEAD 16u

struct repl_hint_target;  /* per-target count and bytes */
struct repl_hint_entry;   /* one indexed hint */
struct repl_hint_pending; /* a disarmed hint whose delete is not written */

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
 * repl__hints_load. @s is unused (the index answers). Errors:
 * CHORUS_ENOMEM. */
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
 * NULL) says so. @s is unused. Errors: CHORUS_ENOMEM. */
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
/* repl__hints_drop: deletes a hint over a bound and counts it. Errors:
 * CHORUS_ENOMEM, store write errors. */
int repl__hints_drop(struct repl_hints *h, struct store *s,
                     const struct repl_hint *hint);
uint64_t repl__hints_count(const struct repl_hints *h, chorus_node_id target);
uint64_t repl__hints_total(const struct repl_hints *h, uint64_t *bytes);
/* repl__hints_stats: the hint counters of @st (queued, dropped, pending,
 * bytes) from the table's. */
void repl__hints_stats(const struct repl_hints *h, struct repl_stats *st);
/* repl__hints_target: the @i-th target with an accounting slot (ascending
 * ids) and its hint count; false past the last. Slots are only added by
 * arming or loading, so a walk by index is stable across replay. */
bool repl__hints_target(const struct repl_hints *h, uint32_t i,
                        chorus_node_id *target, uint64_t *count);

/* A walk over the table entries of one target, in key order, that can
 * resume where an earlier walk stopped. Entries are read as the table has
 * them: repl__hints_scan_get says which of them are current hints. */
struct repl_hint_scan {
  struct store_iter *it;
  const void *k; /* the entry under the walk, after scan_get */
  size_t kl;
};

/* repl__hints_scan_open: a walk over @target's entries from the first, or
 * from @from (@flen bytes, a key from repl__hints_scan_resume) when not
 * NULL; @from is copied. Errors: CHORUS_ENOMEM, store errors. */
int repl__hints_scan_open(struct store *s, chorus_node_id target,
                          const void *from, size_t flen,
                          struct repl_hint_scan *sc);
bool repl__hints_scan_valid(struct repl_hint_scan *sc);
/* repl__hints_scan_get: the entry under the walk into *@out (borrowed until
 * scan_next); false when it is not a current hint of @h (malformed,
 * disarmed with its delete pending, or re-armed since). */
bool repl__hints_scan_get(const struct repl_hints *h, struct repl_hint_scan *sc,
                          struct repl_hint *out);
/* repl__hints_scan_resume: into *@buf (chorus_realloc'ed, *@len set) the
 * key a later walk starts from to resume after the entry of the last
 * scan_get: that key with a 0 byte appended. Errors: CHORUS_ENOMEM (*@buf
 * untouched). */
int repl__hints_scan_resume(const struct repl_hint_scan *sc,
                            unsigned char **buf, size_t *len);
void repl__hints_scan_next(struct repl_hint_scan *sc);
void repl__hints_scan_close(struct repl_hint_scan *sc);

#endif /* CHORUS_REPL_INT_H */
