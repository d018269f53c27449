/* meta_node_props.c: proposals carried to the metadata leader, linearizable
 * reads, and the leader's reconcile loop (meta_node.h, BOOTSTRAP, JOIN,
 * RECONCILE). */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "meta_node_int.h"

#define TRACE(n, ...) chorus_trace((n)->cfg.tracer, "meta", __VA_ARGS__)

#define RESEND_MS 300u
#define RECONCILE_BACKOFF_MS 1000u
#define PEER_PROPOSAL_MS 10000u
#define SELF_JOIN_RETRY_MS 1000u
#define FOREVER UINT64_MAX

static bool is_leader(const struct meta_node *n) {
  return n->started && raft_state(n->rp) == RAFT_LEADER;
}

static chorus_node_id leader_of(const struct meta_node *n) {
  raft_id id = 0;
  const char *addr = NULL;
  if (n->started)
    raft_leader(n->rp, &id, &addr);
  return id;
}

static struct meta__prop *prop_new(struct meta_node *n) {
  struct meta__prop **props =
      chorus_grow(n->props, &n->capprops, n->nprops, sizeof *props, 8);
  if (props == NULL)
    return NULL;
  n->props = props;
  struct meta__prop *p = chorus_calloc(1, sizeof *p);
  if (p == NULL)
    return NULL;
  p->n = n;
  p->req_id = ++n->next_req;
  n->props[n->nprops++] = p;
  return p;
}

static int send_msg(struct meta_node *n, chorus_node_id to,
                    const struct meta_msg *m) {
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = meta_msg_encode(m, &buf, &len);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK) {
    n->bad_messages++;
    return CHORUS_OK;
  }
  rc = n->fx.send(n->fx.ctx, to, buf, len);
  chorus_free(buf);
  return rc;
}

static int reply_peer(struct meta_node *n, chorus_node_id peer, uint64_t req,
                      int status, uint64_t index, const char *text) {
  struct meta_msg m = {.type = META_MSG_PROPOSE_REPLY,
                       .cluster = n->cfg.cluster,
                       .from = n->cfg.self,
                       .req_id = req,
                       .status = status,
                       .index = index,
                       .leader = leader_of(n)};
  snprintf(m.text, sizeof m.text, "%s", text ? text : "");
  return send_msg(n, peer, &m);
}

/* finish: a proposal's one answer: the answer effect for ours, a
 * PROPOSE_REPLY for a peer's. The proposal is freed by the next sweep. */
static void finish(struct meta_node *n, struct meta__prop *p, int status,
                   uint64_t index, const char *text) {
  if (p->deadline == 0)
    return; /* finished already */
  p->deadline = 0;
  if (p->self_join)
    n->joining_self = false; /* answered: the next tick looks again */
  if (p->self_join && status == CHORUS_OK) {
    bool join = p->cmd.type == META_CMD_JOIN;
    TRACE(n, "this node's %s committed at index %" PRIu64,
          join ? "JOIN" : "REPLACE of itself", index);
  }
  if (p->self_join && status != CHORUS_OK) {
    /* Another change under way (EBUSY), no leader: ask again later, not
     * at once (meta__proposals_next). */
    n->self_join_at = n->now + SELF_JOIN_RETRY_MS;
    if (status != n->self_join_status)
      TRACE(n,
            "this node's %s was refused (%s: %s): asking again every "
            "%u ms",
            p->cmd.type == META_CMD_JOIN ? "JOIN" : "REPLACE of itself",
            chorus_errname(status), text && text[0] ? text : "",
            SELF_JOIN_RETRY_MS);
    n->self_join_status = status;
  }
  if (p->peer != 0) {
    (void)reply_peer(n, p->peer, p->peer_req, status, index, text);
  } else if (p->cookie != 0 && n->fx.answer != NULL) {
    n->fx.answer(n->fx.ctx, p->cookie, status, text);
  }
}

static void sweep(struct meta_node *n) {
  size_t k = 0;
  for (size_t i = 0; i < n->nprops; i++) {
    if (n->props[i]->deadline == 0)
      chorus_free(n->props[i]);
    else
      n->props[k++] = n->props[i];
  }
  n->nprops = k;
}

static int raft_to_chorus(int rv) {
  switch (rv) {
  case 0:
    return CHORUS_OK;
  case RAFT_NOMEM:
    return CHORUS_ENOMEM;
  case RAFT_NOTLEADER:
  case RAFT_LEADERSHIPLOST:
  case RAFT_SHUTDOWN:
  case RAFT_CANCELED:
    return CHORUS_EUNAVAILABLE;
  case RAFT_NOSPACE:
    return CHORUS_ENOSPC;
  case RAFT_TOOBIG:
    return CHORUS_ETOOBIG;
  default:
    return CHORUS_EIO;
  }
}

static void apply_cb(struct raft_apply *req, int status, void *result) {
  struct meta__prop *p = (struct meta__prop *)req; /* apply is first */
  struct meta_node *n = p->n;
  int rc = status == 0 ? (int)(intptr_t)result : raft_to_chorus(status);
  const char *text = "";
  char why[META_TEXT_MAX];
  if (status == RAFT_LEADERSHIPLOST)
    text = "metadata leadership lost: the change may or may not apply";
  else if (rc != CHORUS_OK)
    text = chorus_strerror(rc);
  /* A keyring change refused when applied: why, judged on the state that
   * refused it (unchanged by the refusal), so that the proposer, wherever
   * it is, names the member that lags (meta.h, THE SAFETY RULE). */
  if (status == 0 && rc != CHORUS_OK && !p->read &&
      (p->cmd.type == META_CMD_KEY_INSTALL || p->cmd.type == META_CMD_KEY_USE ||
       p->cmd.type == META_CMD_KEY_REMOVE) &&
      meta_keyring_check(&n->fsm, &p->cmd, why) == rc)
    text = why;
  if (p->finishing)
    n->finishing = false;
  finish(n, p, rc, req->index, text);
}

static void barrier_cb(struct raft_barrier *req, int status) {
  struct meta__prop *p =
      (struct meta__prop *)((char *)req - offsetof(struct meta__prop, barrier));
  finish(p->n, p, raft_to_chorus(status), req->index,
         status ? "metadata leadership lost" : "");
}

/* with_origin: @p's command with its origin (meta.h, EXACTLY ONCE): the
 * peer's request for a peer's proposal (whatever origin its message
 * claimed), else ours. The same on every resend. */
static struct meta_cmd with_origin(const struct meta_node *n,
                                   const struct meta__prop *p) {
  struct meta_cmd c = p->cmd;
  c.proposer = p->peer != 0 ? p->peer : n->cfg.self;
  c.req_id = p->peer != 0 ? p->peer_req : p->req_id;
  return c;
}

/* submit: hands @p to this node's raft (it is the leader). */
static int submit(struct meta_node *n, struct meta__prop *p) {
  int rv;
  p->local = true;
  if (p->read) {
    rv = raft_barrier(&n->raft, &p->barrier, barrier_cb);
  } else {
    uint8_t *enc = NULL;
    size_t len = 0;
    struct meta_cmd c = with_origin(n, p);
    int rc = meta_cmd_encode(&c, &enc, &len);
    if (rc != CHORUS_OK) {
      finish(n, p, rc, 0, "the command does not encode");
      return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
    }
    struct raft_buffer buf = {raft_malloc(len ? len : 1), len};
    if (buf.base == NULL) {
      chorus_free(enc);
      return CHORUS_ENOMEM;
    }
    memcpy(buf.base, enc, len);
    chorus_free(enc);
    rv = raft_apply(&n->raft, &p->apply, &buf, 1, apply_cb);
    if (rv != 0)
      raft_free(buf.base);
    else
      n->proposals++;
  }
  if (rv == 0)
    return CHORUS_OK;
  p->local = false;
  int rc = raft_to_chorus(rv);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_EUNAVAILABLE)
    finish(n, p, rc, 0, raft_strerror(rv));
  return CHORUS_OK; /* not leader after all: carried to the leader */
}

/* target: whom to carry a proposal to: the leader Raft knows, the one a
 * reply named, else the contacts in turn. */
static chorus_node_id target(struct meta_node *n) {
  chorus_node_id l = leader_of(n);
  if (l != 0 && l != n->cfg.self)
    return l;
  if (n->leader_hint != 0 && n->leader_hint != n->cfg.self) {
    chorus_node_id h = n->leader_hint;
    n->leader_hint = 0; /* tried once; a reply names the next */
    return h;
  }
  if (n->ncontacts == 0)
    return 0;
  return n->contacts[n->next_contact++ % n->ncontacts];
}

static int carry(struct meta_node *n, struct meta__prop *p) {
  p->resend_at = n->now + RESEND_MS;
  if (is_leader(n))
    return submit(n, p);
  if (p->read) {
    finish(n, p, CHORUS_EUNAVAILABLE, 0, "not the metadata leader");
    return CHORUS_OK;
  }
  chorus_node_id to = target(n);
  if (to == 0)
    return CHORUS_OK;
  struct meta_msg m = {.type = META_MSG_PROPOSE,
                       .cluster = n->cfg.cluster,
                       .from = n->cfg.self,
                       .req_id = p->req_id,
                       .cmd = with_origin(n, p)};
  return send_msg(n, to, &m);
}

int meta_node_propose(struct meta_node *n, const struct meta_cmd *c,
                      uint64_t cookie, chorus_ms timeout_ms, chorus_ms now) {
  n->now = now;
  struct meta__prop *p = prop_new(n);
  if (p == NULL)
    return CHORUS_ENOMEM;
  p->cmd = *c;
  p->cookie = cookie;
  p->deadline = now + (timeout_ms ? timeout_ms : 1);
  p->resend_at = now;
  int rc = carry(n, p);
  sweep(n);
  if (rc != CHORUS_OK)
    return rc;
  return meta__drain(n);
}

int meta_node_read(struct meta_node *n, uint64_t cookie, chorus_ms now) {
  n->now = now;
  struct meta__prop *p = prop_new(n);
  if (p == NULL)
    return CHORUS_ENOMEM;
  p->read = true;
  p->cookie = cookie;
  p->deadline = FOREVER; /* a barrier ends by commit or lost leadership */
  int rc = carry(n, p);
  sweep(n);
  if (rc != CHORUS_OK)
    return rc;
  return meta__drain(n);
}

int meta__propose_from_peer(struct meta_node *n, chorus_node_id from,
                            uint64_t req_id, const struct meta_cmd *c) {
  /* Applied already (its reply was lost): the same answer again. Applied
   * by an earlier leader but not here yet: this leader's copy is a
   * duplicate that the state machine answers alike (meta.h, EXACTLY
   * ONCE). */
  const struct meta_session *done = meta_state_session(&n->fsm, from, req_id);
  if (done != NULL)
    return reply_peer(n, from, req_id, done->status, done->index, "");
  for (size_t i = 0; i < n->nprops; i++)
    if (n->props[i]->peer == from && n->props[i]->peer_req == req_id)
      return CHORUS_OK; /* in flight: its answer comes */
  if (!is_leader(n)) {
    n->refused++;
    return reply_peer(n, from, req_id, CHORUS_EUNAVAILABLE, 0,
                      "not the metadata leader");
  }
  struct meta__prop *p = prop_new(n);
  if (p == NULL)
    return CHORUS_ENOMEM;
  p->cmd = *c;
  p->peer = from;
  p->peer_req = req_id;
  p->deadline = n->now + PEER_PROPOSAL_MS;
  int rc = submit(n, p);
  if (rc == CHORUS_OK && !p->local && p->deadline != 0) {
    finish(n, p, CHORUS_EUNAVAILABLE, 0, "not the metadata leader");
  }
  sweep(n);
  return rc;
}

void meta__proposal_reply(struct meta_node *n, chorus_node_id from,
                          const struct meta_msg *m) {
  for (size_t i = 0; i < n->nprops; i++) {
    struct meta__prop *p = n->props[i];
    if (p->req_id != m->req_id || p->peer != 0 || p->local || p->deadline == 0)
      continue;
    if (m->status == CHORUS_EUNAVAILABLE) {
      /* Not the leader: go where it points, at once. */
      n->leader_hint = m->leader;
      p->resend_at = n->now;
      return;
    }
    if (m->status == CHORUS_OK && m->index > raft_last_applied(n->rp)) {
      /* Committed: answered once applied here, so that whoever asked
       * reads its own change from this node (meta__props_applied). */
      p->await = m->index;
      return;
    }
    finish(n, p, m->status, m->index, m->text);
    sweep(n);
    return;
  }
  (void)from;
}

/* self_join: every started node proposes its own JOIN until its member is
 * committed (meta_node.h). */
static int self_join(struct meta_node *n) {
  if (!n->started || n->joining_self)
    return CHORUS_OK;
  const struct meta_member *me =
      meta_state_find(meta_node_state(n), n->cfg.self);
  if (me != NULL) {
    if (n->pristine && !n->conflict &&
        strcmp(me->addr, n->cfg.self_member.addr) != 0) {
      n->conflict = true;
      TRACE(n,
            "the name %s belongs to the member at %s: this node (at %s, "
            "started with no metadata) is not it and will not serve",
            me->name, me->addr, n->cfg.self_member.addr);
    }
    if (me->state == META_REMOVED && !n->told_removed) {
      n->told_removed = true;
      TRACE(n, "this node was removed from the cluster's metadata");
    }
    if (!meta__disk_lost(n, me) || n->conflict || me->state != META_NORMAL ||
        n->now < n->self_join_at)
      return CHORUS_OK;
    /* Our member owns its tokens on another data folder than ours: the
     * disk was replaced (or wiped). This node holds nothing of what the
     * member owns, so it is not that member's replica: it becomes
     * REPLACING on this disk and streams its ranges back (meta.h). */
    if (!n->told_lost_disk)
      TRACE(n,
            "this node's member %s owns tokens on another disk than this "
            "node's: its disk was lost; replacing itself",
            me->name);
    n->told_lost_disk = true;
    struct meta__prop *p = prop_new(n);
    if (p == NULL)
      return CHORUS_ENOMEM;
    p->self_join = true;
    p->cmd.type = META_CMD_REPLACE;
    p->cmd.id = n->cfg.self;
    p->cmd.with = n->cfg.self;
    p->cmd.disk = n->disk;
    p->deadline = FOREVER;
    p->resend_at = n->now;
    n->joining_self = true;
    return CHORUS_OK;
  }
  if (n->now < n->self_join_at)
    return CHORUS_OK;
  struct meta__prop *p = prop_new(n);
  if (p == NULL)
    return CHORUS_ENOMEM;
  p->self_join = true;
  p->cmd.type = META_CMD_JOIN;
  p->cmd.member = n->cfg.self_member;
  p->cmd.member.disk = n->disk;
  p->cmd.member.state = n->founder ? META_NORMAL : META_JOINING;
  p->deadline = FOREVER;
  p->resend_at = n->now;
  n->joining_self = true;
  return CHORUS_OK;
}

void meta__props_applied(struct meta_node *n) {
  bool any = false;
  for (size_t i = 0; i < n->nprops; i++) {
    struct meta__prop *p = n->props[i];
    if (p->await != 0 && p->deadline != 0 &&
        raft_last_applied(n->rp) >= p->await) {
      finish(n, p, CHORUS_OK, p->await, "");
      any = true;
    }
  }
  if (any)
    sweep(n);
}

int meta__proposals_tick(struct meta_node *n) {
  int rc = self_join(n);
  for (size_t i = 0; i < n->nprops && rc == CHORUS_OK; i++) {
    struct meta__prop *p = n->props[i];
    if (p->deadline == 0 || p->local)
      continue;
    if (p->deadline <= n->now) {
      if (p->await != 0)
        finish(n, p, CHORUS_OK, p->await,
               "committed; not yet applied on this node");
      else
        finish(n, p, CHORUS_EUNAVAILABLE, 0, "no metadata leader reachable");
      continue;
    }
    if (p->await == 0 && p->resend_at <= n->now)
      rc = carry(n, p);
  }
  sweep(n);
  return rc;
}

chorus_ms meta__proposals_next(const struct meta_node *n) {
  chorus_ms d = UINT64_MAX;
  if (n->started && !n->joining_self &&
      meta_state_find(meta_node_state(n), n->cfg.self) == NULL)
    d = n->self_join_at > n->now ? n->self_join_at
                                 : n->now; /* self_join has work */
  for (size_t i = 0; i < n->nprops; i++) {
    const struct meta__prop *p = n->props[i];
    if (p->deadline == 0 || p->local)
      continue;
    chorus_ms t = p->resend_at < p->deadline && p->await == 0 ? p->resend_at
                                                              : p->deadline;
    if (t < d)
      d = t;
  }
  if (is_leader(n) && !n->change_busy && n->reconcile_at > n->now &&
      n->reconcile_at < d)
    d = n->reconcile_at;
  return d;
}

/* ========================================================================
 * The leader's reconcile loop
 * ======================================================================== */

static void change_cb(struct raft_change *req, int status) {
  struct meta_node *n = req->data;
  n->change_busy = false;
  if (status != 0) {
    TRACE(n, "configuration change failed: %s", raft_strerror(status));
    n->reconcile_at = n->now + RECONCILE_BACKOFF_MS;
  }
}

static int change_result(struct meta_node *n, int rv, const char *what,
                         chorus_node_id id) {
  if (rv == 0) {
    n->change_busy = true;
    TRACE(n, "configuration: %s %016" PRIx64, what, id);
    return CHORUS_OK;
  }
  if (rv == RAFT_NOMEM)
    return CHORUS_ENOMEM;
  TRACE(n, "configuration: %s %016" PRIx64 " refused: %s", what, id,
        raft_strerror(rv));
  n->reconcile_at = n->now + RECONCILE_BACKOFF_MS;
  return CHORUS_OK;
}

/* moves_of: the change under way's moves, computed once per epoch (the
 * moves depend only on the ring's input, which only an epoch changes). */
static int moves_of(struct meta_node *n, const struct ring_move **moves,
                    size_t *count) {
  const struct meta_state *s = &n->fsm;
  if (!n->moves_valid || n->moves_epoch != s->epoch) {
    struct ring_move *mv = NULL;
    size_t nmv = 0;
    int rc = meta_state_moves(s, &mv, &nmv, NULL, NULL);
    if (rc != CHORUS_OK)
      return rc;
    chorus_free(n->moves);
    n->moves = mv;
    n->nmoves = nmv;
    n->moves_epoch = s->epoch;
    n->moves_valid = true;
  }
  *moves = n->moves;
  *count = n->nmoves;
  return CHORUS_OK;
}

/* finish_change: FINISH(epoch) once every node that gains a range, and
 * every joiner, has committed STREAMED at this epoch (meta.h, TOPOLOGY
 * CHANGES): the ring switches once, for everyone. */
static int finish_change(struct meta_node *n) {
  const struct meta_state *s = &n->fsm;
  if (n->finishing || !meta_state_changing(s))
    return CHORUS_OK;
  const struct ring_move *mv;
  size_t nmv;
  int rc = moves_of(n, &mv, &nmv);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK) {
    TRACE(n, "the change at epoch %" PRIu64 " gives no ring (%s)", s->epoch,
          chorus_strerror(rc));
    return CHORUS_OK;
  }
  if (!meta_state_finishable(s, mv, nmv))
    return CHORUS_OK;
  struct meta__prop *p = prop_new(n);
  if (p == NULL)
    return CHORUS_ENOMEM;
  p->finishing = true;
  p->cmd.type = META_CMD_FINISH;
  p->cmd.epoch = s->epoch;
  p->deadline = n->now + PEER_PROPOSAL_MS;
  n->finishing = true;
  TRACE(n,
        "every range of the change at epoch %" PRIu64
        " is streamed: finishing it",
        s->epoch);
  rc = submit(n, p);
  if (!p->local)
    n->finishing = false;
  sweep(n);
  return rc;
}

int meta__reconcile(struct meta_node *n) {
  if (!is_leader(n) || n->change_busy || n->now < n->reconcile_at)
    return CHORUS_OK;
  const struct meta_state *s = &n->fsm;
  const struct raft_configuration *conf = &n->raft.configuration;
  chorus_node_id voters[META_MAX_VOTERS];
  size_t nv = meta_state_voters(s, voters);
  n->change.data = n;
  /* 1. Members that left or were removed leave the configuration, once
   * they have the entry that made them so and a few heartbeats have told
   * them it is committed: a decommissioned node that never learned it
   * left would go on serving its old ring to whoever asks it. */
  for (unsigned i = 0; i < conf->n; i++) {
    const struct meta_member *m = meta_state_find(s, conf->servers[i].id);
    if (m == NULL || m->id == n->cfg.self ||
        (m->state != META_LEFT && m->state != META_REMOVED))
      continue;
    if (m->state == META_LEFT &&
        n->raft.leader_state.progress[i].match_index < m->since) {
      n->reconcile_at = n->now + RECONCILE_BACKOFF_MS;
      continue; /* not there yet (a dead node is removed instead) */
    }
    if (n->outgoing != m->id) {
      n->outgoing = m->id;
      n->outgoing_at =
          n->now + 5 * (n->cfg.heartbeat_ms ? n->cfg.heartbeat_ms : 100);
    }
    if (n->now < n->outgoing_at) {
      n->reconcile_at = n->outgoing_at;
      continue;
    }
    return change_result(n, raft_remove(&n->raft, &n->change, m->id, change_cb),
                         "remove", m->id);
  }
  /* 2. Members not in it yet join it (as spares, then a role). */
  for (size_t i = 0; i < s->n; i++) {
    const struct meta_member *m = &s->members[i];
    if (m->state == META_LEFT || m->state == META_REMOVED ||
        meta_node_role(n, m->id) >= 0)
      continue;
    char addr[META_HEX_ID];
    meta__hex_id(m->id, addr);
    return change_result(n,
                         raft_add(&n->raft, &n->change, m->id, addr, change_cb),
                         "add", m->id);
  }
  /* 3. Roles: the chosen voters vote, the others receive the log. */
  for (size_t i = 0; i < s->n; i++) {
    const struct meta_member *m = &s->members[i];
    int role = meta_node_role(n, m->id);
    if (role < 0 || m->id == n->cfg.self)
      continue;
    bool voter = false;
    for (size_t k = 0; k < nv; k++)
      voter = voter || voters[k] == m->id;
    int want = voter ? RAFT_VOTER : RAFT_STANDBY;
    if (role != want)
      return change_result(
          n, raft_assign(&n->raft, &n->change, m->id, want, change_cb),
          voter ? "promote to voter" : "make standby", m->id);
  }
  /* 4. A change whose ranges are all streamed completes. */
  return finish_change(n);
}
