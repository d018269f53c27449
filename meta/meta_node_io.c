/* meta_node_io.c: libraft's raft_io as events and effects (meta_node.h,
 * HOW RAFT'S I/O BECOMES EVENTS AND EFFECTS): deferred completions, the
 * send gate, and the corrections to libraft 0.15 that live at this seam
 * (docs/ARCHITECTURE.md, "libraft 0.15, corrected in our raft_io"). */
#include <inttypes.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "meta_node_int.h"

#define TRACE(n, ...) chorus_trace((n)->cfg.tracer, "meta", __VA_ARGS__)

static struct meta_node *node_of(struct raft_io *io) {
  return io->impl;
}

/* ========================================================================
 * Deferred completions and the send gate (meta_node.h, HOW RAFT'S I/O
 * BECOMES EVENTS AND EFFECTS)
 * ======================================================================== */

static int push_pending(struct meta_node *n, struct meta__pending p) {
  struct meta__pending *pend =
      chorus_grow(n->pend, &n->cappend, n->npend, sizeof *pend, 16);
  if (pend == NULL)
    return RAFT_NOMEM;
  n->pend = pend;
  n->pend[n->npend++] = p;
  return 0;
}

static int hold_message(struct meta_node *n, chorus_node_id to, uint8_t *buf,
                        size_t len) {
  struct meta__held *held =
      chorus_grow(n->held, &n->capheld, n->nheld, sizeof *held, 16);
  if (held == NULL)
    return CHORUS_ENOMEM;
  n->held = held;
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
  bool change = false;
  for (unsigned i = 0; i < count; i++)
    change = change || entries[i].type == RAFT_CHANGE;
  if (rv != 0 && (rv == RAFT_NOMEM || !change))
    return rv;
  /* A refused write of a configuration change is the request's outcome,
   * answered like a completion (after this call returns), not this
   * call's error: libraft 0.15's raft_add, raft_assign and raft_remove
   * close the new configuration when the append behind them fails
   * synchronously, though they have already made it the current one,
   * which raft_close then frees a second time (found by the change
   * simulator, join seed 390: a store fault in the middle of a
   * configuration change). Other appends keep the synchronous error,
   * which makes libraft unavailable and the node revive (meta_node.c);
   * this one asks for the revival itself. */
  if (rv != 0)
    n->revive_wanted = true;
  return push_pending(
      n, (struct meta__pending){META__P_APPEND, req, rv, n->written, NULL});
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

int meta__drain(struct meta_node *n) {
  return drain(n);
}

void meta__io_init(struct meta_node *n) {
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
}
