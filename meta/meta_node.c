/* meta_node.c: the metadata Raft node (meta_node.h): libraft's raft_io as
 * events and effects, the state machine's FSM, proposals, the leader's
 * reconcile loop. meta_node_store.c keeps Raft's state in STORE_META. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "meta_node_int.h"

#define TRACE(n, ...) chorus_trace((n)->cfg.tracer, "meta", __VA_ARGS__)

/* How often a proposal is sent again while unanswered, and how long the
 * leader waits after a failed configuration change before the next. */
#define RESEND_MS 300u
#define RECONCILE_BACKOFF_MS 1000u
/* Proposals of this node about itself never give up. */
#define FOREVER UINT64_MAX

static struct meta_node *node_of(struct raft_io *io) {
  return io->impl;
}

void meta__hex_id(chorus_node_id id, char out[META_HEX_ID]) {
  snprintf(out, META_HEX_ID, "%016" PRIx64, id);
}

/* ========================================================================
 * Deferred completions and the send gate (meta_node.h, HOW RAFT'S I/O
 * BECOMES EVENTS AND EFFECTS)
 * ======================================================================== */

static int push_pending(struct meta_node *n, struct meta__pending p) {
  if (n->npend == n->cappend) {
    size_t cap = n->cappend ? 2 * n->cappend : 16;
    struct meta__pending *grown = chorus_realloc(n->pend, cap * sizeof *grown);
    if (grown == NULL)
      return RAFT_NOMEM;
    n->pend = grown;
    n->cappend = cap;
  }
  n->pend[n->npend++] = p;
  return 0;
}

static int hold_message(struct meta_node *n, chorus_node_id to, uint8_t *buf,
                        size_t len) {
  if (n->nheld == n->capheld) {
    size_t cap = n->capheld ? 2 * n->capheld : 16;
    struct meta__held *grown = chorus_realloc(n->held, cap * sizeof *grown);
    if (grown == NULL)
      return CHORUS_ENOMEM;
    n->held = grown;
    n->capheld = cap;
  }
  n->held[n->nheld++] = (struct meta__held){to, buf, len, n->written};
  return CHORUS_OK;
}

/* run_one: completes pending request @p (status 0, or @status_override
 * when closing). */
static void run_one(struct meta_node *n, struct meta__pending *p, int status) {
  switch (p->kind) {
  case META__P_SEND: {
    struct raft_io_send *req = p->req;
    if (req->cb != NULL)
      req->cb(req, status);
    break;
  }
  case META__P_APPEND: {
    struct raft_io_append *req = p->req;
    if (req->cb != NULL)
      req->cb(req, status ? status : p->status);
    break;
  }
  case META__P_SNAP_PUT: {
    struct raft_io_snapshot_put *req = p->req;
    if (req->cb != NULL)
      req->cb(req, status ? status : p->status);
    break;
  }
  case META__P_SNAP_GET: {
    struct raft_io_snapshot_get *req = p->req;
    struct raft_snapshot *s = p->snap;
    int st = status ? status : p->status;
    if (st != 0 && s != NULL) {
      meta__snapshot_destroy(s);
      s = NULL;
    }
    req->cb(req, s, st);
    break;
  }
  }
  (void)n;
}

static int request_sync(struct meta_node *n) {
  if (n->sync_inflight || n->written <= n->durable)
    return CHORUS_OK;
  n->sync_inflight = true;
  n->sync_seq = n->written;
  uint64_t token = META_SYNC_TOKEN_BIT | ++n->sync_counter;
  n->sync_token = token;
  return n->fx.sync(n->fx.ctx, n->sync_seq, token);
}

/* drain: what the durable sequence now allows: completions in order (an
 * append's callback only once its entries are on disk), then held
 * messages, then the next barrier. Completions may queue more work, so it
 * loops until nothing moves. */
static int drain(struct meta_node *n) {
  int rc = CHORUS_OK;
  bool moved = true;
  while (moved && rc == CHORUS_OK) {
    moved = false;
    while (n->pend_head < n->npend && n->pend[n->pend_head].seq <= n->durable) {
      struct meta__pending p = n->pend[n->pend_head++];
      run_one(n, &p, 0);
      moved = true;
    }
    if (n->pend_head == n->npend)
      n->pend_head = n->npend = 0;
    size_t k = 0;
    for (size_t i = 0; i < n->nheld; i++) {
      struct meta__held *h = &n->held[i];
      if (h->seq <= n->durable) {
        if (rc == CHORUS_OK)
          rc = n->fx.send(n->fx.ctx, h->to, h->buf, h->len);
        chorus_free(h->buf);
        moved = true;
      } else {
        n->held[k++] = *h;
      }
    }
    n->nheld = k;
    if (rc == CHORUS_OK)
      rc = request_sync(n);
  }
  meta__props_applied(n);
  if (rc == CHORUS_OK && n->store_failed)
    rc = n->store_failed;
  return rc;
}

/* ========================================================================
 * raft_io
 * ======================================================================== */

static int io_init(struct raft_io *io, raft_id id, const char *address) {
  (void)io;
  (void)id;
  (void)address;
  return 0;
}

static void io_close(struct raft_io *io, raft_io_close_cb cb) {
  struct meta_node *n = node_of(io);
  /* Whatever is still pending is canceled, so that raft releases the
   * entries and snapshots it lent us (libuv's backend does the same),
   * newest first: libraft 0.15's leader append callback truncates its
   * in-memory log from the failed request's first index and asserts that
   * the index is still in the log (fixed upstream in 0.17: "only truncate
   * if index <= last index"), so with two appends pending the older one's
   * failure, canceled first, would take the newer one's entries away
   * before its own cancellation truncates at them (an abort, or a
   * segfault without assertions: the metadata simulator's brutal seeds,
   * a leader killed with several appends waiting for one sync). */
  while (n->npend > n->pend_head) {
    struct meta__pending p = n->pend[--n->npend];
    run_one(n, &p, RAFT_CANCELED);
  }
  n->pend_head = n->npend = 0;
  if (cb != NULL)
    cb(io);
}

static int io_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                   struct raft_snapshot **snapshot, raft_index *start_index,
                   struct raft_entry **entries, size_t *n_entries) {
  struct meta_node *n = node_of(io);
  int rc = meta__store_load(n, term, voted_for, snapshot, start_index, entries,
                            n_entries);
  if (rc != CHORUS_OK) {
    n->store_failed = rc;
    return rc == CHORUS_ENOMEM ? RAFT_NOMEM : RAFT_CORRUPT;
  }
  return 0;
}

static int io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                    raft_io_recv_cb recv) {
  struct meta_node *n = node_of(io);
  n->tick_ms = msecs;
  n->tick_cb = tick;
  n->recv_cb = recv;
  n->next_tick = n->now + msecs;
  return 0;
}

static int io_bootstrap(struct raft_io *io,
                        const struct raft_configuration *conf) {
  return meta__store_bootstrap(node_of(io), conf);
}

static int io_recover(struct raft_io *io,
                      const struct raft_configuration *conf) {
  (void)io;
  (void)conf;
  return RAFT_IOERR; /* never used: recovery is an operator's restore */
}

static int io_set_term(struct raft_io *io, raft_term term) {
  struct meta_node *n = node_of(io);
  int rv = meta__store_term_vote(n, term, 0);
  if (rv == 0)
    n->term = term; /* raft updates current_term only after set_vote */
  return rv;
}

static int io_set_vote(struct raft_io *io, raft_id server_id) {
  struct meta_node *n = node_of(io);
  return meta__store_term_vote(n, n->term, server_id);
}

static int io_send(struct raft_io *io, struct raft_io_send *req,
                   const struct raft_message *message, raft_io_send_cb cb) {
  struct meta_node *n = node_of(io);
  req->cb = cb;
  struct meta_msg m = {.type = META_MSG_RAFT,
                       .cluster = n->cfg.cluster,
                       .from = n->cfg.self,
                       .raft = *message};
  /* libraft sends every entry from a follower's next index in one
   * AppendEntries; a prefix is a valid message (the follower asks for the
   * rest), so it is clipped to what one message may carry (meta.h). */
  if (m.raft.type == RAFT_IO_APPEND_ENTRIES_RESULT && n->answering_ae &&
      m.raft.append_entries_result.rejected == 0 &&
      m.raft.append_entries_result.last_log_index > n->ae_matched) {
    /* The answer to the AppendEntries being received (see meta_node_recv:
     * libraft reports its whole log, a stale tail included). */
    m.raft.append_entries_result.last_log_index = n->ae_matched;
    n->ae_clamped++;
  }
  if (m.raft.type == RAFT_IO_APPEND_ENTRIES) {
    struct raft_append_entries *a = &m.raft.append_entries;
    size_t bytes = 0;
    unsigned keep = 0;
    while (keep < a->n_entries && keep < META_MAX_ENTRIES &&
           bytes + a->entries[keep].buf.len <= META_MAX_MSG_BYTES / 2) {
      bytes += a->entries[keep].buf.len;
      keep++;
    }
    if (keep == 0 && a->n_entries > 0)
      keep = 1; /* one entry always fits: entries are bounded too */
    a->n_entries = keep;
  }
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = meta_msg_encode(&m, &buf, &len);
  if (rc == CHORUS_OK) {
    rc = hold_message(n, message->server_id, buf, len);
    if (rc != CHORUS_OK)
      chorus_free(buf);
  }
  if (rc == CHORUS_ENOMEM)
    return RAFT_NOMEM;
  if (rc != CHORUS_OK) {
    n->bad_messages++;
    TRACE(n, "a raft message to %016" PRIx64 " did not encode: %s",
          (chorus_node_id)message->server_id, chorus_strerror(rc));
  }
  /* The message is encoded: raft may have its memory back. */
  return push_pending(n, (struct meta__pending){META__P_SEND, req, 0, 0, NULL});
}

static int io_append(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned count,
                     raft_io_append_cb cb) {
  struct meta_node *n = node_of(io);
  req->cb = cb;
  int rv = meta__store_append(n, entries, count);
  if (rv != 0)
    return rv;
  return push_pending(
      n, (struct meta__pending){META__P_APPEND, req, 0, n->written, NULL});
}

static int io_truncate(struct raft_io *io, raft_index index) {
  return meta__store_truncate(node_of(io), index);
}

static int io_snapshot_put(struct raft_io *io, unsigned trailing,
                           struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot,
                           raft_io_snapshot_put_cb cb) {
  struct meta_node *n = node_of(io);
  req->cb = cb;
  int rv = meta__store_snapshot_put(n, trailing, snapshot);
  if (rv != 0 && trailing == 0) {
    /* A snapshot a leader sent (trailing 0: InstallSnapshot replaces
     * everything) that could not be stored: libraft 0.15's synchronous
     * error path (replicationInstallSnapshot) frees only its own wrapper,
     * and the message's data and configuration, which it holds here, are
     * then nobody's (up to META_MAX_STATE_BYTES lost per attempt on a full
     * disk, once a second with revive). libraft goes unavailable on this
     * error and never reads them again, so they are released here. */
    for (unsigned i = 0; i < snapshot->n_bufs; i++)
      raft_free(snapshot->bufs[i].base);
    struct raft_configuration conf = snapshot->configuration;
    raft_configuration_close(&conf);
  }
  if (rv != 0)
    return rv;
  return push_pending(
      n, (struct meta__pending){META__P_SNAP_PUT, req, 0, n->written, NULL});
}

static int io_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                           raft_io_snapshot_get_cb cb) {
  struct meta_node *n = node_of(io);
  req->cb = cb;
  struct raft_snapshot *s = NULL;
  int rc = meta__store_snapshot_get(n, &s);
  int status = rc == CHORUS_OK          ? 0
               : rc == CHORUS_ENOMEM    ? RAFT_NOMEM
               : rc == CHORUS_ENOTFOUND ? RAFT_NOTFOUND
                                        : RAFT_IOERR;
  return push_pending(
      n, (struct meta__pending){META__P_SNAP_GET, req, status, 0, s});
}

static raft_time io_time(struct raft_io *io) {
  return node_of(io)->now;
}

static int io_random(struct raft_io *io, int min, int max) {
  struct meta_node *n = node_of(io);
  if (max <= min)
    return min;
  return (int)chorus_prng_range(&n->prng, (uint64_t)min, (uint64_t)max);
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
  n->io = (struct raft_io){
      .version = 1,
      .impl = n,
      .init = io_init,
      .close = io_close,
      .load = io_load,
      .start = io_start,
      .bootstrap = io_bootstrap,
      .recover = io_recover,
      .set_term = io_set_term,
      .set_vote = io_set_vote,
      .send = io_send,
      .append = io_append,
      .truncate = io_truncate,
      .snapshot_put = io_snapshot_put,
      .snapshot_get = io_snapshot_get,
      .time = io_time,
      .random = io_random,
  };
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
  return drain(n);
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
  return start_raft(n);
}

int meta_node_start_empty(struct meta_node *n, chorus_ms now) {
  n->now = now;
  if (n->started)
    return CHORUS_EINVAL;
  TRACE(n, "started empty: asking to join");
  n->pristine = true;
  return start_raft(n);
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
  if (n->ncontacts == n->capcontacts) {
    size_t cap = n->capcontacts ? 2 * n->capcontacts : 8;
    chorus_node_id *grown = chorus_realloc(n->contacts, cap * sizeof *grown);
    if (grown == NULL)
      return; /* a contact is a hint: none is no error */
    n->contacts = grown;
    n->capcontacts = cap;
  }
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
  out->revivals = n->revivals;
}

bool meta_node_conflict(const struct meta_node *n) {
  return n->conflict;
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
  return drain(n);
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
  if (n->started && raft_state(&n->raft) == RAFT_UNAVAILABLE &&
      now >= n->revive_at) {
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
  return drain(n);
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
  return drain(n);
}

int meta__drain(struct meta_node *n) {
  return drain(n);
}
