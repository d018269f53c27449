/* meta_node.c: the metadata Raft node (meta_node.h): the state machine's
 * FSM, the node's lifecycle and its events. meta_node_io.c is libraft's
 * raft_io as events and effects, meta_node_store.c keeps Raft's state in
 * STORE_META, meta_node_props.c carries proposals and reconciles. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "meta_node_int.h"

#define TRACE(n, ...) chorus_trace((n)->cfg.tracer, "meta", __VA_ARGS__)

void meta__hex_id(chorus_node_id id, char out[META_HEX_ID]) {
  snprintf(out, META_HEX_ID, "%016" PRIx64, id);
}

/* ========================================================================
 * The FSM
 * ======================================================================== */

/* serve: the state effect for the state now in force, when it changed the
 * ring's input or the membership. */
static void serve(struct meta_node *n) {
  const struct meta_state *s = meta_node_state(n);
  if (n->reported && s->epoch == n->reported_epoch &&
      s->applied == n->reported_applied)
    return;
  n->reported = true;
  n->reported_epoch = s->epoch;
  n->reported_applied = s->applied;
  if (n->fx.state != NULL)
    n->fx.state(n->fx.ctx, s);
}

/* caught_up: the FSM has reached what was served from disk, so it is
 * served from now on (a restored snapshot may be older than it). */
static void caught_up(struct meta_node *n) {
  if (!n->serving_fsm && n->fsm.applied >= n->loaded.applied) {
    n->serving_fsm = true;
    meta_state_free(&n->loaded);
  }
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result) {
  struct meta_node *n = fsm->data;
  uint64_t index = raft_last_applied(&n->raft) + 1;
  struct meta_cmd c;
  int rc = meta_cmd_decode(buf->base, buf->len, &c);
  if (rc == CHORUS_ENOMEM)
    return RAFT_NOMEM;
  if (rc != CHORUS_OK) {
    /* Committed but meaningless: every node skips it alike. */
    n->bad_messages++;
    TRACE(n, "entry %" PRIu64 " is not a command: %s", index,
          chorus_strerror(rc));
    n->fsm.applied = index;
  } else {
    uint64_t epoch = n->fsm.epoch;
    if (meta_state_session(&n->fsm, c.proposer, c.req_id) != NULL) {
      n->duplicates++;
      TRACE(n,
            "entry %" PRIu64 " repeats request %016" PRIx64 "/%" PRIu64
            ": answered as the first, not applied again",
            index, c.proposer, c.req_id);
    }
    rc = meta_state_apply(&n->fsm, &c, index);
    if (rc == CHORUS_ENOMEM)
      return RAFT_NOMEM;
    if (n->fsm.epoch != epoch)
      TRACE(n, "epoch %" PRIu64 " at index %" PRIu64 ": %s", n->fsm.epoch,
            index, meta_cmd_describe(&c));
  }
  *result = (void *)(intptr_t)rc;
  if (n->fx.applied != NULL)
    n->fx.applied(n->fx.ctx, index, &n->fsm);
  meta__store_state(n, &n->fsm);
  caught_up(n);
  if (n->serving_fsm)
    serve(n);
  return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs) {
  struct meta_node *n = fsm->data;
  uint8_t *enc = NULL;
  size_t len = 0;
  int rc = meta_state_encode(&n->fsm, &enc, &len);
  if (rc != CHORUS_OK)
    return rc == CHORUS_ENOMEM ? RAFT_NOMEM : RAFT_INVALID;
  struct raft_buffer *b = raft_malloc(sizeof *b);
  void *copy = raft_malloc(len ? len : 1);
  if (b == NULL || copy == NULL) {
    raft_free(b);
    raft_free(copy);
    chorus_free(enc);
    return RAFT_NOMEM;
  }
  memcpy(copy, enc, len);
  chorus_free(enc);
  *b = (struct raft_buffer){copy, len};
  *bufs = b;
  *n_bufs = 1;
  return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf) {
  struct meta_node *n = fsm->data;
  struct meta_state s;
  int rc = meta_state_decode(buf->base, buf->len, &s);
  if (rc != CHORUS_OK) {
    n->bad_messages++;
    TRACE(n, "a snapshot did not decode: %s; refused", chorus_strerror(rc));
    return rc == CHORUS_ENOMEM ? RAFT_NOMEM : RAFT_MALFORMED;
  }
  raft_free(buf->base); /* ours now (raft's snapshotRestore) */
  meta_state_free(&n->fsm);
  n->fsm = s;
  if (n->fx.applied != NULL)
    n->fx.applied(n->fx.ctx, n->fsm.applied, &n->fsm);
  meta__store_state(n, &n->fsm);
  caught_up(n);
  if (n->serving_fsm)
    serve(n);
  return 0;
}

/* ========================================================================
 * Lifecycle
 * ======================================================================== */

static int init_raft(struct meta_node *n);

int meta_node_new(const struct meta_node_config *cfg,
                  const struct meta_node_effects *fx, struct store *store,
                  struct meta_node **out) {
  *out = NULL;
  if (cfg->self == 0 || cfg->self_member.id != cfg->self || fx->send == NULL ||
      fx->sync == NULL)
    return CHORUS_EINVAL;
  struct meta_node *n = chorus_calloc(1, sizeof *n);
  if (n == NULL)
    return CHORUS_ENOMEM;
  n->cfg = *cfg;
  n->fx = *fx;
  n->store = store;
  chorus_prng_seed(&n->prng, cfg->seed ^ cfg->self);
  /* Proposal ids are unique per incarnation: random high 32 bits, a
   * counter below. The state machine remembers outcomes by (proposer, id)
   * (meta.h, EXACTLY ONCE); ids that restarted at 1 after a restart would
   * be answered from it with another proposal's result (a lost
   * acknowledged change, found by the metadata simulator when the leader
   * kept such a cache). chorusd seeds from randombytes. */
  n->next_req = chorus_prng_next(&n->prng) & ~UINT64_C(0xffffffff);
  meta_state_init(&n->fsm, &cfg->replication);
  meta_state_init(&n->loaded, &cfg->replication);
  meta__hex_id(cfg->self, n->self_addr);
  meta__io_init(n);
  n->fsmi = (struct raft_fsm){.version = 1,
                              .data = n,
                              .apply = fsm_apply,
                              .snapshot = fsm_snapshot,
                              .restore = fsm_restore};
  n->rp = &n->raft;
  int rc = init_raft(n);
  if (rc != CHORUS_OK) {
    meta_state_free(&n->fsm);
    meta_state_free(&n->loaded);
    chorus_free(n);
    return rc;
  }
  n->reconcile_at = 0;
  *out = n;
  return CHORUS_OK;
}

/* init_raft: raft_init with the node's io and FSM, and its settings. */
static int init_raft(struct meta_node *n) {
  const struct meta_node_config *cfg = &n->cfg;
  int rv = raft_init(&n->raft, &n->io, &n->fsmi, cfg->self, n->self_addr);
  if (rv != 0)
    return rv == RAFT_NOMEM ? CHORUS_ENOMEM : CHORUS_EINVAL;
  unsigned election_ms = cfg->election_ms ? cfg->election_ms : 1000;
  raft_set_election_timeout(&n->raft, election_ms);
  /* A leader that sent a snapshot waits this long for its answer before
   * sending another (libraft's default is 30 s). A follower that failed
   * to store one (a full disk) restarts without answering (revive), so the
   * wait is all the delay; metadata snapshots are at most 8 MiB. */
  raft_set_install_snapshot_timeout(&n->raft, 3 * election_ms);
  raft_set_heartbeat_timeout(&n->raft,
                             cfg->heartbeat_ms ? cfg->heartbeat_ms : 100);
  raft_set_snapshot_threshold(
      &n->raft, cfg->snapshot_threshold ? cfg->snapshot_threshold : 256);
  raft_set_snapshot_trailing(
      &n->raft, cfg->snapshot_trailing ? cfg->snapshot_trailing : 64);
  /* Pre-vote (Raft §9.6): a node cut off and back does not depose a
   * working leader with its inflated term. */
  raft_set_pre_vote(&n->raft, true);
  return CHORUS_OK;
}

static void closed_cb(struct raft *r) {
  (void)r;
}

static int mute_send(void *ctx, chorus_node_id to, const void *data,
                     size_t len) {
  (void)ctx, (void)to, (void)data, (void)len;
  return CHORUS_OK;
}

static int mute_sync(void *ctx, chorus_seq seq, uint64_t token) {
  (void)ctx, (void)seq, (void)token;
  return CHORUS_OK;
}

void meta_node_free(struct meta_node *n) {
  if (n == NULL)
    return;
  /* raft_close fails what is still pending (proposals being applied:
   * their callbacks answer peers); the owner is going away, so from here
   * on no effect reaches it. */
  n->fx = (struct meta_node_effects){.send = mute_send, .sync = mute_sync};
  raft_close(&n->raft, closed_cb);
  for (size_t i = 0; i < n->nheld; i++)
    chorus_free(n->held[i].buf);
  chorus_free(n->held);
  chorus_free(n->pend);
  for (size_t i = 0; i < n->nprops; i++)
    chorus_free(n->props[i]);
  chorus_free(n->props);
  chorus_free(n->contacts);
  chorus_free(n->moves);
  meta_state_free(&n->fsm);
  meta_state_free(&n->loaded);
  chorus_free(n);
}

static int start_raft(struct meta_node *n) {
  int rv = raft_start(&n->raft);
  if (rv != 0) {
    TRACE(n, "raft did not start: %s (%s)", raft_strerror(rv),
          raft_errmsg(&n->raft));
    if (n->store_failed)
      return n->store_failed;
    return rv == RAFT_NOMEM ? CHORUS_ENOMEM : CHORUS_ECORRUPT;
  }
  n->started = true;
  caught_up(n);
  serve(n);
  return meta__drain(n);
}

int meta_node_load(struct meta_node *n, chorus_ms now) {
  n->now = now;
  int rc = meta__store_load_state(n, &n->loaded);
  if (rc == CHORUS_OK) {
    TRACE(n,
          "serving the committed metadata from disk: epoch %" PRIu64
          ", index %" PRIu64 ", %zu members",
          n->loaded.epoch, n->loaded.applied, n->loaded.n);
    serve(n);
  } else if (rc != CHORUS_ENOTFOUND) {
    return rc;
  }
  /* The disk's id (0: a disk from before they existed), read also when
   * no Raft state is stored: a joiner that crashed before any reached its
   * disk may have had its JOIN committed with this id, and drawing another
   * (start_empty) made it believe its disk lost once its join finished,
   * and restore the whole ring again (change_sim "join 2 dcs", seed 57). */
  void *v = NULL;
  size_t len;
  if (store_get(n->store, STORE_META, META__KEY_DISK, sizeof META__KEY_DISK - 1,
                &v, &len) == CHORUS_OK &&
      len == 8)
    n->disk = store_be64_get(v);
  chorus_free(v);
  bool has = false;
  rc = meta__store_has_raft(n, &has);
  if (rc != CHORUS_OK)
    return rc;
  if (!has)
    return CHORUS_OK;
  n->founder = true; /* a member before: its JOIN is long committed */
  return start_raft(n);
}

bool meta_node_started(const struct meta_node *n) {
  return n->started;
}

/* save_disk: writes the data folder's id to STORE_META, unsynced:
 * ordered before the Raft state written after it. A full store is no
 * error: the tick tries again (a crash before that makes the next start
 * believe its disk lost, and replace itself: safe, only slower). */
static int save_disk(struct meta_node *n) {
  uint8_t v[8];
  store_be64_put(v, n->disk);
  int rc = store_put(n->store, STORE_META, META__KEY_DISK,
                     sizeof META__KEY_DISK - 1, v, sizeof v, NULL);
  n->disk_unsaved = rc != CHORUS_OK;
  return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
}

/* new_disk: an empty data folder draws its id (meta_member.disk); one that
 * has an id (meta_node_load read it) keeps it. */
static int new_disk(struct meta_node *n) {
  struct chorus_prng p;
  chorus_prng_seed(&p, chorus_prng_next(&n->prng) ^ (uint64_t)n->now);
  while (n->disk == 0)
    n->disk = chorus_prng_next(&p);
  return save_disk(n);
}

int meta_node_bootstrap(struct meta_node *n, const struct meta_founder *f,
                        size_t nf, chorus_ms now) {
  n->now = now;
  bool self_in = false;
  for (size_t i = 0; i < nf; i++)
    self_in = self_in || f[i].id == n->cfg.self;
  if (n->started || !self_in)
    return CHORUS_EINVAL;
  struct raft_configuration conf;
  raft_configuration_init(&conf);
  int rv = 0;
  for (size_t i = 0; i < nf && rv == 0; i++) {
    char addr[META_HEX_ID];
    meta__hex_id(f[i].id, addr);
    rv = raft_configuration_add(&conf, f[i].id, addr,
                                f[i].voter ? RAFT_VOTER : RAFT_STANDBY);
  }
  if (rv == 0)
    rv = raft_bootstrap(&n->raft, &conf);
  raft_configuration_close(&conf);
  if (rv != 0) {
    if (n->store_failed)
      return n->store_failed;
    return rv == RAFT_NOMEM ? CHORUS_ENOMEM : CHORUS_EINVAL;
  }
  TRACE(n, "bootstrapped with %zu founders", nf);
  n->founder = true;
  n->pristine = true;
  int rc = new_disk(n);
  return rc != CHORUS_OK ? rc : start_raft(n);
}

int meta_node_start_empty(struct meta_node *n, chorus_ms now) {
  n->now = now;
  if (n->started)
    return CHORUS_EINVAL;
  TRACE(n, "started empty: asking to join");
  n->pristine = true;
  int rc = new_disk(n);
  return rc != CHORUS_OK ? rc : start_raft(n);
}

void meta_node_contact(struct meta_node *n, chorus_node_id id, bool alive) {
  if (id == n->cfg.self)
    return;
  size_t i = 0;
  while (i < n->ncontacts && n->contacts[i] != id)
    i++;
  if (!alive) {
    if (i < n->ncontacts)
      n->contacts[i] = n->contacts[--n->ncontacts];
    return;
  }
  if (i < n->ncontacts)
    return;
  chorus_node_id *contacts = chorus_grow(n->contacts, &n->capcontacts,
                                         n->ncontacts, sizeof *contacts, 8);
  if (contacts == NULL)
    return; /* a contact is a hint: none is no error */
  n->contacts = contacts;
  n->contacts[n->ncontacts++] = id;
}

/* ========================================================================
 * Observation
 * ======================================================================== */

const struct meta_state *meta_node_state(const struct meta_node *n) {
  return n->serving_fsm ? &n->fsm : &n->loaded;
}

void meta_node_info(const struct meta_node *n, struct meta_node_info *out) {
  struct raft *r = n->rp;
  raft_id leader = 0;
  const char *addr = NULL;
  *out = (struct meta_node_info){0};
  if (n->started)
    raft_leader(r, &leader, &addr);
  out->raft_state = n->started ? raft_state(r) : RAFT_UNAVAILABLE;
  out->leader = leader;
  out->term = r->current_term;
  out->commit_index = r->commit_index;
  out->applied_index = r->last_applied;
  out->last_index = n->started ? raft_last_index(r) : 0;
  out->proposals = n->proposals;
  out->refused = n->refused;
  out->sends_held = n->nheld;
  out->foreign = n->foreign;
  out->bad_messages = n->bad_messages;
  out->store_errors = n->store_errors;
  out->duplicates = n->duplicates;
  out->ae_clamped = n->ae_clamped;
  out->term_raises = n->term_raises;
  out->revivals = n->revivals;
}

bool meta_node_conflict(const struct meta_node *n) {
  return n->conflict;
}

bool meta__disk_lost(const struct meta_node *n, const struct meta_member *me) {
  return me->disk != 0 && me->disk != n->disk;
}

bool meta_node_restoring(const struct meta_node *n) {
  const struct meta_member *me =
      meta_state_find(meta_node_state(n), n->cfg.self);
  if (me == NULL)
    return n->pristine; /* nothing known yet: nothing served */
  return me->state == META_REPLACING ||
         (meta_member_owns(me->state) && meta__disk_lost(n, me));
}

int meta_node_role(const struct meta_node *n, chorus_node_id id) {
  const struct raft_configuration *c = &n->raft.configuration;
  for (unsigned i = 0; i < c->n; i++)
    if (c->servers[i].id == id)
      return c->servers[i].role;
  return -1;
}

/* ========================================================================
 * Events
 * ======================================================================== */

/* clamp_append_entries: what an AppendEntries proves, and no more.
 *
 * Raft's follower may only take the leader's commit index up to "the index
 * of the last new entry" and may only acknowledge the entries the request
 * carried: prevLogIndex + len(entries) (Raft §3.5, figure 3.1). libraft
 * 0.15 (and upstream through 0.18.1) uses its last stored index for both
 * when the request brings nothing new to write (a heartbeat, or entries it
 * has): a follower holding a stale tail from an older term (a deposed
 * leader's unreplicated entries) then answers "I have everything up to
 * my last index", the leader records that match, and both may treat the
 * stale entries as the leader's: the follower may commit and apply them
 * if the leader's commit index covers them, and the leader ignores every
 * later rejection below that match, so the follower never catches up
 * (found by the metadata simulator's seed 97: a follower stuck two
 * entries behind for good). The leader's commit index is therefore
 * clamped here to prevLogIndex + len(entries) before libraft sees it (a
 * later AppendEntries carries the rest), and an answer sent while libraft
 * handles this request (io_send) acknowledges no more than that. When new
 * entries are written, libraft answers after the append with exactly that
 * index: it truncated any stale tail first. */
static void clamp_append_entries(struct meta_node *n,
                                 struct raft_append_entries *a) {
  raft_index proven = a->prev_log_index + a->n_entries;
  if (a->leader_commit > proven)
    a->leader_commit = proven;
  n->answering_ae = true;
  n->ae_matched = proven;
}

static raft_term term_of(const struct raft_message *m) {
  switch (m->type) {
  case RAFT_IO_APPEND_ENTRIES:
    return m->append_entries.term;
  case RAFT_IO_APPEND_ENTRIES_RESULT:
    return m->append_entries_result.term;
  case RAFT_IO_REQUEST_VOTE:
    return m->request_vote.term;
  case RAFT_IO_REQUEST_VOTE_RESULT:
    return m->request_vote_result.term;
  case RAFT_IO_INSTALL_SNAPSHOT:
    return m->install_snapshot.term;
  case RAFT_IO_TIMEOUT_NOW:
    return m->timeout_now.term;
  default:
    return 0;
  }
}

/* raft_screen: what is checked before libraft sees a Raft message. A term
 * above ours is Raft's own business (an election, or a node back from a
 * partition: pre-vote keeps those from deposing anyone), but one is worth
 * a line and a counter (term_raises), since a node whose terms run away
 * shows here first. A snapshot whose state does not decode is refused
 * (bad_messages): libraft would store it, replacing the log, before its
 * restore fails, and the node could then not start from its own disk; a
 * newer release's format (CHORUS_EVERSION) is refused alike, since this
 * node could not apply it. */
static int raft_screen(struct meta_node *n, chorus_node_id from,
                       const struct raft_message *m) {
  raft_term term = term_of(m), ours = n->started ? n->raft.current_term : 0;
  if (term > ours) {
    n->term_raises++;
    TRACE(n, "term %" PRIu64 " from %016" PRIx64 " (ours %" PRIu64 ")",
          (uint64_t)term, from, (uint64_t)ours);
  }
  if (m->type != RAFT_IO_INSTALL_SNAPSHOT)
    return CHORUS_OK;
  struct meta_state st;
  const struct raft_buffer *data = &m->install_snapshot.data;
  int rc = meta_state_decode(data->base, data->len, &st);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc == CHORUS_OK) {
    meta_state_free(&st);
    return CHORUS_OK;
  }
  n->bad_messages++;
  TRACE(n,
        "a snapshot from %016" PRIx64 " (index %" PRIu64 ") refused: its state "
        "does not decode (%s)",
        from, (uint64_t)m->install_snapshot.last_index, chorus_strerror(rc));
  return rc;
}

int meta_node_recv(struct meta_node *n, chorus_node_id from, const void *data,
                   size_t len, chorus_ms now) {
  n->now = now;
  struct meta_msg m;
  int rc = meta_msg_decode(data, len, &m);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK) {
    n->bad_messages++;
    TRACE(n, "a metadata message from %016" PRIx64 " dropped: %s", from,
          chorus_strerror(rc));
    return CHORUS_OK;
  }
  if (m.cluster != n->cfg.cluster || m.from != from || from == n->cfg.self) {
    n->foreign++;
    TRACE(n,
          "a metadata message from %016" PRIx64 " claiming %016" PRIx64
          " of cluster %016" PRIx64 " refused",
          from, m.from, m.cluster);
    meta_msg_release(&m);
    return CHORUS_OK;
  }
  switch (m.type) {
  case META_MSG_RAFT:
    if (!n->started || n->recv_cb == NULL) {
      meta_msg_release(&m);
      return CHORUS_OK;
    }
    rc = raft_screen(n, from, &m.raft);
    if (rc != CHORUS_OK) {
      meta_msg_release(&m);
      return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
    }
    meta__hex_id(from, n->peer_addr);
    m.raft.server_id = from;
    m.raft.server_address = n->peer_addr;
    if (m.raft.type == RAFT_IO_APPEND_ENTRIES)
      clamp_append_entries(n, &m.raft.append_entries);
    n->recv_cb(&n->io, &m.raft); /* raft owns what the message holds */
    n->answering_ae = false;
    break;
  case META_MSG_PROPOSE:
    rc = meta__propose_from_peer(n, from, m.req_id, &m.cmd);
    break;
  case META_MSG_PROPOSE_REPLY:
    meta__proposal_reply(n, from, &m);
    break;
  default:
    break;
  }
  if (rc != CHORUS_OK)
    return rc;
  return meta__drain(n);
}

/* revive: libraft turns unavailable for good when a write it asked for
 * fails (a full disk: RAFT_NOSPACE), leaving the restart to its process
 * (other failures stop chorusd: meta_node.h). This node restarts it in
 * place instead, as a restarted process would start: the instance closed
 * (pending I/O canceled, proposals failed), held messages dropped, a new
 * instance started from what the store holds. The state served meanwhile
 * stays the last one applied; the new FSM catches up to it (caught_up).
 * Tried once a second while the write still fails. */
static int revive(struct meta_node *n) {
  n->revive_at = n->now + 1000;
  n->revivals++;
  TRACE(n,
        "raft unavailable after a failed metadata write: restarting it "
        "from the store (restart %" PRIu64 ")",
        n->revivals);
  raft_close(&n->raft, closed_cb); /* io_close completes it at once */
  n->started = false;
  n->tick_cb = NULL;
  n->recv_cb = NULL;
  for (size_t i = 0; i < n->nheld; i++)
    chorus_free(n->held[i].buf);
  n->nheld = 0;
  if (n->serving_fsm) {
    int rc = meta_state_copy(&n->fsm, &n->loaded);
    if (rc != CHORUS_OK)
      return rc;
    n->serving_fsm = false;
  }
  meta_state_free(&n->fsm);
  meta_state_init(&n->fsm, &n->cfg.replication);
  int rc = init_raft(n);
  if (rc != CHORUS_OK)
    return rc;
  return start_raft(n);
}

int meta_node_tick(struct meta_node *n, chorus_ms now) {
  n->now = now;
  if (n->disk_unsaved && save_disk(n) == CHORUS_ENOMEM)
    return CHORUS_ENOMEM;
  if (n->started &&
      (raft_state(&n->raft) == RAFT_UNAVAILABLE || n->revive_wanted) &&
      now >= n->revive_at) {
    n->revive_wanted = false;
    int rc = revive(n);
    if (rc != CHORUS_OK)
      return rc;
  }
  if (n->started && n->tick_cb != NULL && now >= n->next_tick) {
    n->next_tick = now + n->tick_ms;
    n->tick_cb(&n->io);
  }
  int rc = meta__proposals_tick(n);
  if (rc == CHORUS_OK)
    rc = meta__reconcile(n);
  if (rc != CHORUS_OK)
    return rc;
  return meta__drain(n);
}

chorus_ms meta_node_next_deadline(const struct meta_node *n) {
  chorus_ms d = UINT64_MAX;
  if (n->started && n->tick_cb != NULL)
    d = n->next_tick;
  chorus_ms p = meta__proposals_next(n);
  return p < d ? p : d;
}

int meta_node_sync_done(struct meta_node *n, uint64_t token, int status,
                        chorus_ms now) {
  n->now = now;
  if (!n->sync_inflight || token != n->sync_token)
    return CHORUS_OK;
  n->sync_inflight = false;
  if (status != CHORUS_OK) {
    n->store_errors++;
    TRACE(n, "the metadata log's sync failed: %s", chorus_strerror(status));
    return status == CHORUS_ESYNCFAILED ? status : CHORUS_ESYNCFAILED;
  }
  if (n->sync_seq > n->durable)
    n->durable = n->sync_seq;
  return meta__drain(n);
}
