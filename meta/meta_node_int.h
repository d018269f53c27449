/* meta_node_int.h: the metadata Raft node's internals, shared by
 * meta_node.c (the FSM, lifecycle, events), meta_node_io.c (raft_io: the
 * deferred completions and the send gate), meta_node_store.c (Raft's
 * state in STORE_META) and meta_node_props.c (proposals, the leader's
 * reconcile loop). meta_node.h tells how it works. */
#ifndef CHORUS_META_NODE_INT_H
#define CHORUS_META_NODE_INT_H

#include <raft.h>

#include "chorus_prng.h"
#include "meta_node.h"

#define META_HEX_ID 17 /* 16 hex digits and NUL: Raft's server address */

enum meta__pending_kind {
  META__P_SEND = 1,
  META__P_APPEND,
  META__P_SNAP_PUT,
  META__P_SNAP_GET
};

/* A raft_io request whose callback is due once @seq is durable. */
struct meta__pending {
  int kind;
  void *req;
  int status; /* the request's own outcome */
  chorus_seq seq;
  struct raft_snapshot *snap; /* SNAP_GET: handed to raft */
};

/* An encoded message waiting for the writes before it to be durable. */
struct meta__held {
  chorus_node_id to;
  uint8_t *buf;
  size_t len;
  chorus_seq seq;
};

/* A proposal this node is carrying to the leader (meta_node_propose), or
 * one it applies as leader for itself or a peer. */
struct meta__prop {
  struct raft_apply apply; /* first: raft's callback finds us from it */
  struct raft_barrier barrier;
  struct meta_node *n;
  struct meta_cmd cmd;
  uint64_t cookie;     /* answer effect; 0 for none */
  uint64_t req_id;     /* ours, for PROPOSE_REPLY */
  chorus_node_id peer; /* PROPOSE from @peer (leader side), or 0 */
  uint64_t peer_req;   /* the peer's request id */
  chorus_ms deadline, resend_at;
  uint64_t await; /* committed at this index: answered once it
                     is applied here too (0: not yet known) */
  bool read;      /* a barrier read, not a command */
  bool local;     /* handed to this node's raft */
  bool self_join; /* this node's own JOIN (or REPLACE of itself) */
  bool finishing; /* the leader's FINISH of a change */
};

/* STORE_META: the data folder's id (meta_member.disk), 8 bytes BE. */
#define META__KEY_DISK "meta/disk"

struct meta_node;
/* meta__disk_lost: @me (this node's member) names another data folder
 * than this node's: the disk it ran on was lost. */
bool meta__disk_lost(const struct meta_node *n, const struct meta_member *me);

struct meta_node {
  struct meta_node_config cfg;
  struct meta_node_effects fx;
  struct store *store;
  struct chorus_prng prng;
  struct raft raft;
  /* &raft: libraft's observers (raft_state, raft_leader...) take a
   * non-const pointer, and meta_node's observers a const node. */
  struct raft *rp;
  struct raft_io io;
  struct raft_fsm fsmi;
  char self_addr[META_HEX_ID];
  char peer_addr[META_HEX_ID];
  bool started, founder;
  bool pristine;       /* started with no Raft state on disk (this run) */
  bool conflict;       /* its name belongs to a member elsewhere (impostor) */
  uint64_t disk;       /* this data folder's id (0: from before ids) */
  bool disk_unsaved;   /* its write failed (a full store): again */
  bool told_lost_disk; /* the "disk was lost" line was logged */
  chorus_ms now;
  /* raft_io's start */
  unsigned tick_ms;
  chorus_ms next_tick;
  chorus_ms revive_at; /* the next try to restart an unavailable raft */
  bool revive_wanted;  /* a failed write raft was not told of at once */
  uint64_t revivals;   /* raft restarted in place after a failed write */
  raft_io_tick_cb tick_cb;
  raft_io_recv_cb recv_cb;
  /* Persistence and the send gate */
  raft_term term; /* the term last persisted (set_term, load) */
  /* The last log index the store holds (load, then each append, truncation
   * and installed snapshot that was written): an append must continue it
   * (meta__store_append, A FAILED WRITE LEAVES NO HOLE). */
  raft_index log_last;
  chorus_seq written, durable, sync_seq;
  bool sync_inflight;
  uint64_t sync_token, sync_counter;
  int store_failed; /* a store error that stops the node */
  struct meta__pending *pend;
  size_t npend, cappend, pend_head;
  struct meta__held *held;
  size_t nheld, capheld;
  /* The state machine: the FSM's state, and the one loaded from disk,
   * served until the FSM reaches it. */
  struct meta_state fsm, loaded;
  bool serving_fsm;
  bool reported;
  uint64_t reported_epoch, reported_applied;
  /* Proposals and contacts */
  struct meta__prop **props;
  size_t nprops, capprops;
  uint64_t next_req;
  chorus_node_id leader_hint;
  chorus_node_id *contacts;
  size_t ncontacts, capcontacts, next_contact;
  bool joining_self;      /* this node's own JOIN is being carried */
  chorus_ms self_join_at; /* not before: the last one was refused */
  int self_join_status;   /* the last refusal (logged once per kind) */
  bool told_removed;      /* the "removed" line was logged */
  /* The leader's reconcile loop */
  struct raft_change change;
  bool change_busy;
  bool finishing; /* a FINISH proposal is in flight */
  /* A LEFT or REMOVED member about to leave the configuration, and when
   * (it has had a few heartbeats to learn it left). */
  chorus_node_id outgoing;
  chorus_ms outgoing_at;
  /* The change under way's moves, for the epoch they were computed at. */
  struct ring_move *moves;
  size_t nmoves;
  uint64_t moves_epoch;
  bool moves_valid;
  chorus_ms reconcile_at;
  /* Counters */
  uint64_t proposals, refused, foreign, bad_messages, store_errors;
  uint64_t duplicates; /* commands committed twice, applied once */
  /* An AppendEntries being handed to raft: what it proves (meta_node.c,
   * clamp_append_entries), and how often an answer claimed more. */
  bool answering_ae;
  raft_index ae_matched;
  uint64_t ae_clamped;
  uint64_t term_raises; /* Raft messages with a term above ours */
};

void meta__hex_id(chorus_node_id id, char out[META_HEX_ID]);

/* meta_node_io.c: n->io, libraft's raft_io over @n; meta__drain runs what
 * the durable sequence now allows (completions, held messages, the next
 * sync barrier). */
void meta__io_init(struct meta_node *n);
int meta__drain(struct meta_node *n);
void meta__snapshot_destroy(struct raft_snapshot *s);

/* meta_node_store.c: raft_io's persistence; return raft codes (0 or
 * RAFT_*), except the load helpers (CHORUS_*). A failed write sets
 * store_failed when the node must stop (a failed sync is sticky). */
int meta__store_load(struct meta_node *n, raft_term *term, raft_id *vote,
                     struct raft_snapshot **snapshot, raft_index *start,
                     struct raft_entry **entries, size_t *count);
int meta__store_has_raft(struct meta_node *n, bool *has);
int meta__store_load_state(struct meta_node *n, struct meta_state *out);
int meta__store_bootstrap(struct meta_node *n,
                          const struct raft_configuration *conf);
int meta__store_term_vote(struct meta_node *n, raft_term term, raft_id vote);
int meta__store_append(struct meta_node *n, const struct raft_entry *e,
                       unsigned count);
int meta__store_truncate(struct meta_node *n, raft_index index);
int meta__store_snapshot_put(struct meta_node *n, unsigned trailing,
                             const struct raft_snapshot *s);
int meta__store_snapshot_get(struct meta_node *n, struct raft_snapshot **out);
void meta__store_state(struct meta_node *n, const struct meta_state *s);

/* meta_node_props.c */
int meta__propose_from_peer(struct meta_node *n, chorus_node_id from,
                            uint64_t req_id, const struct meta_cmd *c);
void meta__proposal_reply(struct meta_node *n, chorus_node_id from,
                          const struct meta_msg *m);
int meta__proposals_tick(struct meta_node *n);
chorus_ms meta__proposals_next(const struct meta_node *n);
int meta__reconcile(struct meta_node *n);
/* meta__props_applied: answers the proposals whose command this node has
 * now applied (meta__prop.await). */
void meta__props_applied(struct meta_node *n);

#endif /* CHORUS_META_NODE_INT_H */
