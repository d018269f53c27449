/* repl_aae_int.h: what the two halves of anti-entropy share
 * (repl_aae.c, the exchange this node initiates; repl_aae_serve.c, the
 * helpers, the tree's upkeep and the peer's side). */
#ifndef CHORUS_REPL_AAE_INT_H
#define CHORUS_REPL_AAE_INT_H

#include "repl_int.h"

#define KEYS_PER_REQ 1024u          /* max_keys asked */
#define KEYS_REPLY_BYTES (1u << 20) /* an AAE_KEYS stops past this */
#define RANGES_PER_REQ 1024u        /* intervals of one AAE_KEYS_REQ */
#define REBUILD_DEFAULT_KEYS 1000u
#define DEFAULT_KEYS_PER_SEC 1000u
#define DEFAULT_BYTES_PER_SEC (8ull << 20)

/* Key lists: the (storage key, digest) pairs of intervals after a cursor. */
struct key_list {
  uint8_t **k; /* owned storage keys */
  size_t *kl;
  uint64_t *d;
  size_t n, cap, bytes;
};

uint64_t repl__aae_new_id(struct repl *r);
int repl__aae_send(struct repl *r, const struct repl_effects *fx,
                   chorus_node_id to, const struct wire_msg *m);
int repl__aae_arm(const struct repl_effects *fx, uint64_t id, chorus_ms after);
int repl__aae_push_iv(struct repl_aae_iv **v, size_t *n, size_t *cap,
                      chorus_token first, chorus_token last);
bool repl__aae_inside(const struct repl_aae_iv *iv, size_t n,
                      chorus_token first, chorus_token last);
int repl__aae_parse_ivs(const struct wire_bytes *b, struct repl_aae_iv **out,
                        size_t *n);
uint8_t *repl__aae_encode_ivs(const struct repl_aae_iv *iv, size_t n);
int repl__aae_key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);
void repl__aae_key_list_free(struct key_list *l);
int repl__aae_key_list_add(struct key_list *l, const uint8_t *k, size_t kl,
                           uint64_t d);
/* The keys of class @cls (an index in the current ring) only. */
int repl__aae_list_keys(struct repl *r, unsigned cls,
                        const struct repl_aae_iv *iv, size_t n,
                        const uint8_t *after, size_t alen, const uint8_t *upto,
                        size_t ulen, size_t max, size_t max_bytes,
                        struct key_list *l, bool *more);
/* The record of (@id, class @tag); created when @create (NULL: none, or
 * out of memory). */
struct repl_aae_peer *repl__aae_peer(struct repl *r, chorus_node_id id,
                                     uint64_t tag, bool create);
/* Every range of @s (the current ring or one of its classes). */
int repl__aae_each_range(const struct ring_snapshot *s,
                         int (*fn)(void *arg, chorus_token first,
                                   chorus_token last,
                                   const struct ring_plist *pl),
                         void *arg);
/* The intervals where this node and @peer are both natural replicas in
 * class @cls of the current ring. */
int repl__aae_shared_intervals(struct repl *r, unsigned cls,
                               chorus_node_id peer, struct repl_aae_iv **out,
                               size_t *nout);
/* The class index of storage key @dkey in the current ring;
 * REPL_AAE_NO_CLASS (no tree's) for a dropped keyspace's key. */
#define REPL_AAE_NO_CLASS RING_MAX_CLASSES
unsigned repl__aae_class_of(const struct repl *r, const uint8_t *dkey,
                            size_t dlen);
void repl__aae_exchange_reset(struct repl_aae *a);
int repl__aae_iv_cmp(const void *a, const void *b);
/* The earliest start (@mono: monotonic, else wall) of the last completed
 * exchanges of class @cls over @token with each other natural replica in
 * that class; 0 when one has none; UINT64_MAX when there is no other. */
chorus_ms repl__aae_oldest_repair(const struct repl *r, unsigned cls,
                                  chorus_token token, bool mono);

/* Per-range figures (repl_aae_ranges.c): the table refreshed for the
 * current ring (Errors: CHORUS_ENOMEM, the old table kept), freed; the
 * range holding a token (NULL: not one this node replicates); a differing
 * segment counted in every range it overlaps; a completed exchange's
 * intervals counted in their ranges. */
int repl__aae_ranges_refresh(struct repl *r);
void repl__aae_ranges_free(struct repl *r);
struct repl_aae_range *repl__aae_range_of(struct repl *r, chorus_token t);
void repl__aae_ranges_segment(struct repl *r, chorus_token first,
                              chorus_token last);
void repl__aae_ranges_completed(struct repl *r, const struct repl_aae_iv *iv,
                                size_t niv, chorus_ms wall);

#endif /* CHORUS_REPL_AAE_INT_H */
