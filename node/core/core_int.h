/* core_int.h: the node core's internals, shared by core.c (the hookup and
 * the events) and core_timers.c (replication's timers). core.h tells how
 * it works. */
#ifndef CHORUS_CORE_INT_H
#define CHORUS_CORE_INT_H

#include "core.h"

/* One of replication's one-shot timers: fire repl_timer(@id) at @at. */
struct core__timer {
  chorus_ms at;
  uint64_t id;
};

/* A min-heap of timers by deadline. Replication's timers cannot be
 * cancelled and there is one per request, so a heap (O(log n) per timer,
 * no allocation once grown) rather than a driver timer each. */
struct core__timers {
  struct core__timer *h;
  size_t n, cap;
};

/* core__timers_push: @id due at @at. Errors: CHORUS_ENOMEM (unchanged). */
int core__timers_push(struct core__timers *t, chorus_ms at, uint64_t id);
/* core__timers_pop_due: the earliest timer due at @now into *@out and
 * true, or false when none is due. */
bool core__timers_pop_due(struct core__timers *t, chorus_ms now,
                          struct core__timer *out);
/* core__timers_next: the earliest deadline, or CORE_NEVER. */
chorus_ms core__timers_next(const struct core__timers *t);
void core__timers_free(struct core__timers *t);

/* The members whose clock estimate is beyond the bound now (core.h, CLOCK
 * SKEW); usually none, so a plain array. */
struct core__skew {
  chorus_node_id *ids;
  size_t n, cap;
};

/* core__skew_step: @m's estimate against @bound_ms (> 0), remembered in
 * @k: +1 when it has just gone beyond (|offset| > bound), -1 when it is
 * back within, 0 when nothing crossed (or no estimate yet). Out of memory
 * to remember a crossing it answers 0, and the next call tries again. */
int core__skew_step(struct core__skew *k, const struct swim_member *m,
                    int64_t bound_ms);
void core__skew_free(struct core__skew *k);

/* A member change SWIM reported, applied once its call has returned. */
struct core__member_ev {
  struct swim_member m; /* a copy: SWIM's is borrowed for the callback */
  enum swim_state old;
  bool is_new;
};

/* One range this node gains in a topology change (core_stream.c). */
struct core__range {
  chorus_token first, last; /* first <= last */
  chorus_node_id from;      /* the node that gives it up */
  /* Its replication class (ring.h): the tag a pull names, and the class's
   * index in the plan's ring_now (its replicas). */
  uint64_t class_tag;
  uint8_t cls;
  bool has_from;
  bool held; /* pulled whole (a lane may finish after a later one) */
};

/* One pull in flight and the range it works on (core_stream.c, LANES):
 * a receiver keeps up to CORE_STREAM_PULLS of them, each on its own range. */
struct core__lane {
  bool active;      /* holds a range not yet pulled whole */
  size_t idx;       /* that range */
  chorus_token pos; /* its first token still to pull */
  uint8_t *after;   /* the cursor: the storage key last held, or NULL */
  size_t alen;
  /* The pull in flight (req != 0). */
  uint64_t req;
  chorus_node_id source;
  chorus_token piece_last;
  chorus_ms deadline, next_at;
  bool no_source_said;
  size_t warned_idx; /* the range whose fallback was traced, + 1 */
  /* A piece pulled from the live replicas (the node giving it up is down
   * or lost its data): from each in turn (@round), from @piece_first; at
   * least one served it whole (@piece_ok). */
  bool fallback, in_piece, piece_ok;
  chorus_node_id cand[RING_MAX_REPLICAS]; /* the replicas asked in turn */
  uint8_t ncand;
  uint8_t round;
  chorus_token piece_first;
};

/* A stretch of the token space in which a giver's read held no object
 * (STREAM_CHUNK2's empty_to; core_stream.c, EMPTY STRETCHES). */
struct core__gap {
  chorus_node_id from;
  chorus_token after, to; /* nothing in (after, to] */
};
#define CORE_STREAM_GAPS 16u

/* The streams of the change under way (core_stream.c says how). */
struct core__stream {
  bool planned;
  uint64_t epoch;                 /* the change's, when planned */
  uint64_t placement;             /* meta_state_placement, when planned */
  struct ring_snapshot *ring_now; /* the ring of that epoch (sources) */
  struct core__range *ranges;
  size_t n, cap;
  size_t next_range; /* the first range no lane has taken; n: none left */
  size_t nheld;      /* ranges held whole */
  struct core__lane lanes[CORE_STREAM_PULLS];
  uint8_t nlanes; /* lanes in use: core_config.stream_pulls */
  uint64_t next_req;
  chorus_ms throttle_at; /* --stream-mbps: no pull before this */
  chorus_ms started_at;
  bool syncing, reporting;
  bool poked; /* something changed: step at the next tick */
  bool idle;  /* the last step found nothing to do until a poke */
  /* The giver that refused as restoring (it lost its data): every range
   * of this plan it gives up comes from the other replicas, not just the
   * one it refused (one refusal and RETRY_MS per range made a join beside
   * a restoring node take a second per range). 0: none. */
  chorus_node_id lost_from;
  /* The latest empty stretches, one a giver (CORE_STREAM_GAPS at most; a
   * new giver's takes the slot @gap_next). */
  struct core__gap gaps[CORE_STREAM_GAPS];
  uint8_t ngaps, gap_next;
  /* Cleanup once no change is under way: armed for @cleanup_epoch at
   * @cleanup_at, a scan under way (@cleaning), done for @cleaned_epoch. */
  uint64_t cleanup_epoch, cleaned_epoch;
  chorus_ms cleanup_at, cleanup_again;
  bool cleaning;
  /* repl_stats' cleanup_deleted when the scan under way began: a scan
   * that deleted anything hints the store to give the space back (once
   * per topology change, as Cassandra's cleanup is a compaction). */
  uint64_t cleanup_deleted_at_begin;
  /* The cursor after the batch just taken (stage, then adopt). */
  size_t st_idx;
  chorus_token st_pos;
  uint8_t *st_after;
  size_t st_alen;
  uint8_t st_round;
  bool st_piece_ok;
  /* The next pull goes out while the batches before it are being made
   * durable: @syncing is a barrier in flight for the cursor in @d_*
   * (what save_progress writes once it passes: every range before @d_idx
   * held, @d_idx from @d_pos and @d_after), @sync_again asks for one
   * more once it does (batches taken meanwhile). */
  bool sync_again;
  size_t d_idx;
  chorus_token d_pos;
  uint8_t *d_after;
  size_t d_alen;
  uint64_t d_keys, d_bytes;       /* taken up to @d_*, not yet counted */
  uint64_t pend_keys, pend_bytes; /* taken since the last snapshot */
  struct core_stream_stats stats;
};

/* Anti-entropy's pace (core_aae.c). */
struct core__aae {
  chorus_ms rebuild_at; /* the next rebuild step */
  chorus_ms next_at;    /* the next exchange; 0: the tree not built yet */
  bool now_wanted;      /* core_aae_now, core_aae_range_now: one as soon as
                           possible (the latter: while a peer asked waits) */
};

/* Operators' metadata changes whose answer is not a CLUSTER_REPLY: the
 * client request (its cookie) and what answers it once applied. */
#define CORE_ADMIN_PENDING 16u
enum core_pending_kind {
  CORE_PENDING_NONE = 0,
  CORE_PENDING_KEYSPACE = 1, /* KEYSPACE_REPLY */
  CORE_PENDING_USER = 2,     /* USER_REPLY */
  CORE_PENDING_KEY = 3       /* CLUSTER_KEY_REPLY */
};
struct core__pending {
  uint64_t cookie; /* 0: free */
  uint8_t kind;    /* enum core_pending_kind */
  uint32_t key_id; /* KEY_*: the key it named (the reply's id) */
};

/* The gossip keyring this node applied to its SWIM (core_keys.c). */
struct core__keys {
  size_t n; /* 0: none yet (--cluster-key alone) */
  uint8_t keys[SWIM_MAX_KEYS][SWIM_KEY_BYTES]; /* the sealing one first */
  uint64_t version;   /* the keyring version they are */
  bool reporting;     /* a KEY_APPLIED under way, of version @proposed */
  uint64_t proposed;  /* the version under way, or last proposed */
  uint64_t committed; /* the highest version a KEY_APPLIED committed */
  chorus_ms retry_at; /* the next report (0: none due) */
};

struct core {
  struct core_config cfg;
  /* A peer said this node is no longer a member (EREMOVED): it serves
   * nothing. When this node last told a removed one so. */
  bool evicted;
  chorus_ms told_evicted_at;
  bool admin_staging; /* core_meta.c: an admin command being staged */
  /* core_client_as: the logged-in user of the request being handled, or
   * NULL (no check); borrowed for that call only. */
  const char *req_user;
  bool bootstrap_proposed; /* core_meta.c: the first admin's step in flight */
  /* core_meta.c: client requests whose KEYSPACE or USER command is being
   * proposed (core__propose_pending). */
  struct core__pending admin_pending[CORE_ADMIN_PENDING];
  struct core_effects fx;
  struct swim *swim;
  struct repl *repl;          /* from core_start */
  struct repl_effects rfx;    /* replication's effects, bound to us */
  struct ring_snapshot *ring; /* in force; ours unless handed over */
  bool ring_handed_over;      /* the driver owns @ring (fx.ring) */
  struct core__timers timers;
  /* Member changes queued inside a SWIM call (core.h, THE HOOKUP). */
  struct core__member_ev *mev;
  size_t nmev, capmev;
  bool ring_dirty;
  struct core__skew skew; /* members beyond the clock bound */
  bool in_swim; /* inside a SWIM call: its callbacks must only queue */
  int swim_err; /* the first error raised inside a SWIM callback */
  /* Join retries (core_join). */
  char seeds[SWIM_MAX_SEEDS][SWIM_ADDR_MAX];
  size_t nseeds;
  chorus_ms join_at; /* next retry; CORE_NEVER when none is pending */
  /* Tombstone collection (repl.h): the next repl_gc_step, a batch every
   * CORE_GC_PAUSE_MS while a walk lasts, the next walk a gc interval after
   * one ends. CORE_NEVER before the start. */
  chorus_ms gc_at;
  /* Purges not yet hinted to the store (core.c, reclaim): their count and
   * token range, the last walk counted, and whether a hint was made whose
   * wave's tail is still to be hinted. */
  struct repl_gc_walk reclaim;
  uint64_t reclaim_walk;
  bool reclaim_tail;
  chorus_ms now, wall; /* the current event's clocks */
  bool started, leaving;
  /* Cluster metadata (core.h, CLUSTER METADATA; core_meta.c) */
  struct meta_node *meta;
  struct store *store; /* lent by core_start */
  bool founder;        /* core_found was called */
  bool meta_pending;   /* founders not all known yet: no bootstrap yet */
  char founders[SWIM_MAX_SEEDS][SWIM_ADDR_MAX];
  size_t nfounders;
  bool meta_ring;             /* the ring in force was built from metadata */
  uint64_t meta_epoch;        /* its epoch */
  uint64_t meta_placement;    /* its meta_state_placement */
  int meta_err;               /* an error raised inside a metadata effect */
  struct core__stream stream; /* core_stream.c */
  struct core__aae aae;       /* core_aae.c */
  struct core__keys keys;     /* core_keys.c */
};

chorus_ms core__aae_deadline(const struct core *c);
int core__aae_step(struct core *c);

/* core__swim_up: whether SWIM holds @id alive or suspect (this node
 * always): who is asked, who streams (core_meta.c). */
bool core__swim_up(const struct core *c, chorus_node_id id);

/* core_meta.c: the metadata hookup. */
int core__meta_start(struct core *c);
void core__meta_free(struct core *c);
int core__meta_found(struct core *c, const char *const *addrs, size_t n);
int core__meta_join(struct core *c);
int core__meta_after_swim(struct core *c);
int core__meta_peer(struct core *c, chorus_node_id from,
                    const struct wire_msg *m);
int core__meta_client(struct core *c, const struct wire_msg *m,
                      uint64_t cookie);
/* core__refuse: client request @cookie answered ERROR @code, @text. */
int core__refuse(struct core *c, uint64_t cookie, int code, const char *text);
/* How long an operator's change may wait for the metadata leader. */
#define CORE_ADMIN_TIMEOUT_MS 5000u
/* core_keyspace.c: KEYSPACE (wire.h) for client request @cookie: LIST
 * answered now, a change proposed (the proposal's result is returned, for
 * core_meta.c's done()); _answered: whether @cookie is a KEYSPACE change's
 * (forgotten now: its answer is a KEYSPACE_REPLY, _reply, not a
 * CLUSTER_REPLY); _reply: KEYSPACE_REPLY with every keyspace, or @name's
 * (NULL: all). */
int core__keyspace_client(struct core *c, const struct wire_msg *m,
                          uint64_t cookie);
int core__keyspace_reply(struct core *c, uint64_t cookie, const char *name);
/* A metadata table as a reply of records (KEYSPACE_REPLY, USER_REPLY):
 * core__table_reply answers @cookie with every row, or only @name's
 * (ENOTFOUND "no <what> named <name>" when none is), as this node applied
 * them. */
struct core__table {
  const char *what;   /* "keyspace", "user" */
  uint8_t reply_type; /* its wire type */
  size_t record_max;  /* a record's bound */
  size_t (*rows)(const struct meta_state *s);
  const char *(*name_of)(const struct meta_state *s, size_t i);
  size_t (*record)(const struct meta_state *s, size_t i, uint8_t *out);
};
int core__table_reply(struct core *c, uint64_t cookie,
                      const struct core__table *t, const char *name);
/* core__propose_pending: @cmd proposed for client request @cookie, whose
 * answer once applied is @kind's (EBUSY when CORE_ADMIN_PENDING are under
 * way); core__pending_take: the kind @cookie waits for (forgotten now), or
 * CORE_PENDING_NONE (a CLUSTER_REPLY). */
int core__propose_pending(struct core *c, const struct meta_cmd *cmd,
                          uint64_t cookie, uint8_t kind);
uint8_t core__pending_take(struct core *c, uint64_t cookie);
/* core__pending_find: @cookie's slot (before core__pending_take), or
 * NULL. */
const struct core__pending *core__pending_find(const struct core *c,
                                               uint64_t cookie);
/* core_keys.c: the gossip keyring. _state: the state in force moved:
 * apply its keyring to SWIM when it changed, report it (KEY_APPLIED, at
 * the next tick); _tick: a report due; _reported: KEY_APPLIED's answer;
 * _client: CLUSTER_KEY for client request @cookie; _answer: its command
 * (about key @id) ended with @status (@text: the leader's reason);
 * _reply: CLUSTER_KEY_REPLY. */
void core__keys_state(struct core *c, const struct meta_state *s);
int core__keys_tick(struct core *c);
void core__keys_reported(struct core *c, int status);
int core__keys_client(struct core *c, const struct wire_msg *m,
                      uint64_t cookie);
int core__keys_answer(struct core *c, uint64_t cookie, int status,
                      const char *text, uint32_t id);
int core__keys_reply(struct core *c, uint64_t cookie, uint32_t id);
/* core_users.c: USER (wire.h) for client request @cookie, as KEYSPACE;
 * _reply: USER_REPLY with every user, or @name's (NULL: all). */
int core__user_client(struct core *c, const struct wire_msg *m,
                      uint64_t cookie);
int core__user_reply(struct core *c, uint64_t cookie, const char *name);
/* core__may: whether the request being handled (c->req_user) may take
 * @need on keyspace @ks_id (@ks_name); when not, answered EPERM. */
bool core__may(struct core *c, uint64_t cookie, struct core_need need,
               uint32_t ks_id, const char *ks_name);

/* core__ks_request: client request @m (one with options) resolved against
 * the keyspace it names (KEYSPACE KEYS in core_keyspace.c) and handed to
 * repl_client: refused when the keyspace does not exist or holds another
 * type, or when a key of `default` begins with 0x00; else its key made the
 * keyspace's and the keyspace's defaults applied. core__ks_kv_limits: a
 * kv key's sibling cap (repl_config.kv_limits, @ctx the core). */
int core__ks_request(struct core *c, const struct wire_msg *m,
                     const struct repl_origin *o, chorus_ms now,
                     chorus_ms wall);
bool core__ks_kv_limits(void *ctx, const uint8_t *key, size_t len,
                        struct dvv_limits *out);
/* The administrative path's checks (core_meta.c), shared with plans:
 * whether decommissioning @m leaves its replication group fewer normal
 * members than its factor; one line naming the change under way. */
bool core__meta_too_few_left(const struct meta_state *s,
                             const struct meta_member *m, uint32_t *factor,
                             size_t *left);
void core__meta_change_under_way(const struct meta_state *s, char *out,
                                 size_t cap);
/* core__meta_sole_owner: whether @m is the last member that owns tokens
 * (meta_state_sole_owner: its LEAVE is refused, --force or not), with
 * the operator's line for it in @out. */
bool core__meta_sole_owner(const struct meta_state *s,
                           const struct meta_member *m, char *out, size_t cap);
/* core_plan.c: answers CLUSTER_PLAN (a dry run) to client request
 * @cookie, exactly once. Errors: CHORUS_ENOMEM. */
int core__plan_client(struct core *c, const struct wire_msg *m,
                      uint64_t cookie);
int core__meta_tick(struct core *c);
chorus_ms core__meta_deadline(const struct core *c);
int core__meta_sync_done(struct core *c, uint64_t token, int status);
/* core_stream.c: the streams of a topology change. _step pulls, reports
 * or plans what is due; _owns: @m answers our pull in flight; _answer
 * takes it; _synced: the barrier of a batch ended; _reported: STREAMED's
 * proposal was answered. */
int core__stream_step(struct core *c);
chorus_ms core__stream_deadline(const struct core *c);
bool core__stream_owns(const struct core *c, chorus_node_id from,
                       const struct wire_msg *m);
int core__stream_answer(struct core *c, chorus_node_id from,
                        const struct wire_msg *m);
int core__stream_synced(struct core *c, int status);
void core__stream_reported(struct core *c, int status);
void core__stream_free(struct core *c);

/* core__install_ring: @s (new) becomes the ring in force: replication
 * first, then the driver (core.c). */
void core__install_ring(struct core *c, struct ring_snapshot *s);

#endif /* CHORUS_CORE_INT_H */
