/* core_meta.c: the node core's metadata hookup (core.h, CLUSTER METADATA):
 * the metadata node's effects, the ring built from committed metadata,
 * liveness from SWIM, founding and joining, and the administrative
 * requests. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "core_int.h"

#define TRACE(c, ...) chorus_trace((c)->cfg.tracer, "core", __VA_ARGS__)

bool core__swim_up(const struct core *c, chorus_node_id id) {
  if (id == c->cfg.swim.id)
    return true;
  const struct swim_member *m = swim_member_find(c->swim, id);
  return m != NULL && (m->state == SWIM_ALIVE || m->state == SWIM_SUSPECT);
}

/* liveness: every ring member's liveness as SWIM sees it, to replication
 * (a member SWIM has not heard of is down: hinted, never waited for). */
static int liveness(struct core *c) {
  if (c->repl == NULL)
    return CHORUS_OK;
  int rc = CHORUS_OK;
  size_t n = ring_snapshot_node_count(c->ring);
  for (size_t i = 0; i < n && rc == CHORUS_OK; i++) {
    chorus_node_id id = ring_snapshot_node(c->ring, i)->id;
    if (id != c->cfg.swim.id)
      rc = repl_member(c->repl, id, core__swim_up(c, id), c->now, c->wall,
                       &c->rfx);
  }
  return rc;
}

/* ========================================================================
 * The metadata node's effects
 * ======================================================================== */

static int mx_send(void *ctx, chorus_node_id to, const void *data, size_t len) {
  struct core *c = ctx;
  struct wire_msg m = {.type = WIRE_META};
  m.meta.msg = (struct wire_bytes){data, len};
  return c->fx.send(c->fx.ctx, to, &m);
}

static int mx_sync(void *ctx, chorus_seq seq, uint64_t token) {
  struct core *c = ctx;
  return c->fx.sync(c->fx.ctx, seq, token);
}

/* mx_state: committed metadata in force changed: a new ring when the
 * epoch moved. */
static void mx_state(void *ctx, const struct meta_state *s) {
  struct core *c = ctx;
  c->stream.poked = true; /* the change's streams, at the next tick */
  core__keys_state(c, s);
  /* A keyspace with a replication of its own changes where keys go
   * without changing the epoch (ring.h, replication classes). */
  uint64_t placement = meta_state_placement(s);
  if (c->meta_ring && s->epoch == c->meta_epoch &&
      placement == c->meta_placement)
    return;
  struct ring_snapshot *r = NULL;
  char err[CHORUS_ERRMSG_SIZE] = "";
  int rc = meta_state_ring(s, &r, err);
  if (rc != CHORUS_OK) {
    TRACE(c, "metadata epoch %" PRIu64 " gives no ring (%s): keeping v%" PRIu64,
          s->epoch, err[0] ? err : chorus_strerror(rc),
          ring_snapshot_version(c->ring));
    if (rc == CHORUS_ENOMEM && c->meta_err == CHORUS_OK)
      c->meta_err = rc;
    return;
  }
  c->meta_ring = true;
  c->meta_epoch = s->epoch;
  c->meta_placement = placement;
  core__install_ring(c, r);
  rc = liveness(c);
  if (rc != CHORUS_OK && c->meta_err == CHORUS_OK)
    c->meta_err = rc;
}

static int admin_reply(struct core *c, uint64_t cookie);

static void mx_answer(void *ctx, uint64_t cookie, int status,
                      const char *text) {
  struct core *c = ctx;
  int rc;
  if (cookie == CORE_STREAM_COOKIE) {
    core__stream_reported(c, status);
    return;
  }
  if (cookie == CORE_ADMIN_COOKIE) {
    c->bootstrap_proposed = false;
    chorus_trace(c->cfg.meta.tracer, "core", "first admin %s: %s",
                 c->cfg.bootstrap_admin.name,
                 status == CHORUS_OK
                     ? "step applied"
                     : (text && text[0] ? text : chorus_strerror(status)));
    return;
  }
  if (cookie == CORE_KEYS_COOKIE) {
    core__keys_reported(c, status);
    return;
  }
  if (cookie & CORE_META_COOKIE_BIT) {
    if (c->fx.meta_answer != NULL)
      c->fx.meta_answer(c->fx.ctx, cookie, status);
    return;
  }
  const struct core__pending *p = core__pending_find(c, cookie);
  uint32_t key_id = p ? p->key_id : 0;
  uint8_t kind = core__pending_take(c, cookie);
  if (kind == CORE_PENDING_KEY) {
    rc = core__keys_answer(c, cookie, status, text, key_id);
  } else if (status == CHORUS_OK && kind == CORE_PENDING_KEYSPACE) {
    rc = core__keyspace_reply(c, cookie, NULL);
  } else if (status == CHORUS_OK && kind == CORE_PENDING_USER) {
    rc = core__user_reply(c, cookie, NULL);
  } else if (status == CHORUS_OK) {
    rc = admin_reply(c, cookie);
  } else {
    struct wire_msg e;
    wire_error_reply(&e, 0, status,
                     text && text[0] ? text : chorus_strerror(status));
    rc = c->fx.reply(c->fx.ctx, cookie, &e, false);
  }
  if (rc != CHORUS_OK && c->meta_err == CHORUS_OK)
    c->meta_err = rc;
}

static void mx_applied(void *ctx, uint64_t index, const struct meta_state *s) {
  struct core *c = ctx;
  if (c->fx.meta_applied != NULL)
    c->fx.meta_applied(c->fx.ctx, index, s);
}

/* done: the end of every call into the metadata node: an error raised
 * inside its effects wins. */
static int done(struct core *c, int rc) {
  if (rc == CHORUS_OK)
    rc = c->meta_err;
  c->meta_err = CHORUS_OK;
  /* A metadata write that failed (meta_node.h: the node must stop) is the
   * core's fsyncgate like any other store failure: the driver exits and
   * restarts from what is on disk. */
  if (rc == CHORUS_EIO)
    rc = CHORUS_ESYNCFAILED;
  return rc;
}

/* ========================================================================
 * Lifecycle: start, found, join
 * ======================================================================== */

int core__meta_start(struct core *c) {
  struct meta_node_config mc = c->cfg.meta;
  mc.self = c->cfg.swim.id;
  mc.replication = c->cfg.replication;
  if (mc.tracer == NULL)
    mc.tracer = c->cfg.tracer;
  const struct meta_node_effects mfx = {c,        mx_send,   mx_sync,
                                        mx_state, mx_answer, mx_applied};
  int rc = meta_node_new(&mc, &mfx, c->store, &c->meta);
  if (rc != CHORUS_OK)
    return rc;
  return done(c, meta_node_load(c->meta, c->now));
}

void core__meta_free(struct core *c) {
  meta_node_free(c->meta);
  c->meta = NULL;
}

/* try_bootstrap: the founders' configuration once SWIM knows every
 * founder's id: voters spread as meta_state_voters spreads them, the
 * others standbys. Every founder computes the same list. */
static int try_bootstrap(struct core *c) {
  if (!c->meta_pending || meta_node_started(c->meta))
    return CHORUS_OK;
  struct meta_member ms[SWIM_MAX_SEEDS + 1];
  size_t n = 0;
  bool self_listed = false;
  for (size_t i = 0; i < c->nfounders; i++) {
    chorus_node_id id = 0;
    const struct swim_meta *meta = NULL;
    if (strcmp(c->founders[i], c->cfg.swim.meta.addr) == 0) {
      id = c->cfg.swim.id;
      meta = &c->cfg.swim.meta;
      self_listed = true;
    } else {
      size_t count = swim_member_count(c->swim);
      for (size_t k = 0; k < count; k++) {
        const struct swim_member *m = swim_member_at(c->swim, k);
        if (strcmp(m->meta.addr, c->founders[i]) == 0) {
          id = m->id;
          meta = &m->meta;
        }
      }
    }
    if (id == 0)
      return CHORUS_OK; /* not yet: SWIM will tell */
    bool dup = false;
    for (size_t k = 0; k < n; k++)
      dup = dup || ms[k].id == id;
    if (dup)
      continue;
    ms[n] = (struct meta_member){.id = id, .state = META_NORMAL};
    snprintf(ms[n].dc, sizeof ms[n].dc, "%s", meta->dc);
    snprintf(ms[n].rack, sizeof ms[n].rack, "%s", meta->rack);
    n++;
  }
  if (!self_listed)
    ms[n++] = (struct meta_member){.id = c->cfg.swim.id, .state = META_NORMAL};
  /* sorted by id, as a state's members are */
  for (size_t i = 1; i < n; i++)
    for (size_t k = i; k > 0 && ms[k - 1].id > ms[k].id; k--) {
      struct meta_member t = ms[k];
      ms[k] = ms[k - 1];
      ms[k - 1] = t;
    }
  struct meta_state s = {.n = n, .members = ms};
  chorus_node_id voters[META_MAX_VOTERS];
  size_t nv = meta_state_voters(&s, voters);
  struct meta_founder f[SWIM_MAX_SEEDS + 1];
  for (size_t i = 0; i < n; i++) {
    f[i].id = ms[i].id;
    f[i].voter = false;
    for (size_t k = 0; k < nv; k++)
      f[i].voter = f[i].voter || voters[k] == ms[i].id;
  }
  c->meta_pending = false;
  TRACE(c, "founding the cluster's metadata with %zu members (%zu voters)", n,
        nv);
  return done(c, meta_node_bootstrap(c->meta, f, n, c->now));
}

int core__meta_found(struct core *c, const char *const *addrs, size_t n) {
  c->founder = true;
  if (meta_node_started(c->meta))
    return CHORUS_OK; /* metadata on disk: its own cluster */
  c->nfounders = 0;
  for (size_t i = 0; i < n; i++) {
    if (strlen(addrs[i]) >= SWIM_ADDR_MAX)
      return CHORUS_EINVAL;
    snprintf(c->founders[c->nfounders++], SWIM_ADDR_MAX, "%s", addrs[i]);
  }
  c->meta_pending = true;
  return try_bootstrap(c);
}

int core__meta_join(struct core *c) {
  if (c->founder || meta_node_started(c->meta))
    return CHORUS_OK;
  return done(c, meta_node_start_empty(c->meta, c->now));
}

/* ========================================================================
 * Events
 * ======================================================================== */

int core__meta_after_swim(struct core *c) {
  size_t count = swim_member_count(c->swim);
  for (size_t k = 0; k < count; k++) {
    const struct swim_member *m = swim_member_at(c->swim, k);
    meta_node_contact(c->meta, m->id,
                      m->state == SWIM_ALIVE || m->state == SWIM_SUSPECT);
  }
  return try_bootstrap(c);
}

int core__meta_peer(struct core *c, chorus_node_id from,
                    const struct wire_msg *m) {
  return done(c, meta_node_recv(c->meta, from, m->meta.msg.ptr, m->meta.msg.len,
                                c->now));
}

/* bootstrap_admin: the first admin (core.h, bootstrap_admin), one step
 * at a time, by the leader only: any node may be started with it, and the
 * one that leads when the cluster has no user creates it (a follower's
 * proposal would do as well, but every node proposing at once would only
 * make duplicates that the metadata refuses). */
static int bootstrap_admin(struct core *c) {
  if (c->cfg.bootstrap_admin.name[0] == '\0' || c->bootstrap_proposed ||
      !meta_node_started(c->meta))
    return CHORUS_OK;
  struct meta_node_info i;
  meta_node_info(c->meta, &i);
  struct meta_cmd cmd;
  if (i.leader != c->cfg.swim.id ||
      !core_admin_bootstrap_step(meta_node_state(c->meta),
                                 &c->cfg.bootstrap_admin, &cmd))
    return CHORUS_OK;
  c->bootstrap_proposed = true;
  chorus_trace(c->cfg.meta.tracer, "core", "first admin %s: proposing %s",
               cmd.user.name, meta_cmd_describe(&cmd));
  return meta_node_propose(c->meta, &cmd, CORE_ADMIN_COOKIE, 10000, c->now);
}

int core__meta_tick(struct core *c) {
  int rc = bootstrap_admin(c);
  if (rc != CHORUS_OK)
    return done(c, rc);
  if (meta_node_next_deadline(c->meta) > c->now)
    return CHORUS_OK;
  return done(c, meta_node_tick(c->meta, c->now));
}

chorus_ms core__meta_deadline(const struct core *c) {
  return meta_node_next_deadline(c->meta);
}

int core__meta_sync_done(struct core *c, uint64_t token, int status) {
  return done(c, meta_node_sync_done(c->meta, token, status, c->now));
}

/* ========================================================================
 * Administrative requests
 * ======================================================================== */

static uint8_t wire_role_of(int role) {
  switch (role) {
  case RAFT_VOTER:
    return WIRE_RAFT_ROLE_VOTER;
  case RAFT_STANDBY:
    return WIRE_RAFT_ROLE_STANDBY;
  case RAFT_SPARE:
    return WIRE_RAFT_ROLE_SPARE;
  default:
    return WIRE_RAFT_ROLE_NONE;
  }
}

static uint8_t wire_alive_of(const struct core *c, chorus_node_id id) {
  if (id == c->cfg.swim.id)
    return c->leaving ? WIRE_ALIVE_LEFT : WIRE_ALIVE_ALIVE;
  const struct swim_member *m = swim_member_find(c->swim, id);
  if (m == NULL)
    return WIRE_ALIVE_UNKNOWN;
  switch (m->state) {
  case SWIM_ALIVE:
    return WIRE_ALIVE_ALIVE;
  case SWIM_SUSPECT:
    return WIRE_ALIVE_SUSPECT;
  case SWIM_DEAD:
    return WIRE_ALIVE_DEAD;
  default:
    return WIRE_ALIVE_LEFT;
  }
}

static struct wire_bytes str_bytes(const char *s) {
  return (struct wire_bytes){(const uint8_t *)s, strlen(s)};
}

/* admin_reply: CLUSTER_REPLY from the metadata in force, with this node's
 * view of Raft and SWIM's liveness, to client request @cookie. */
static int admin_reply(struct core *c, uint64_t cookie) {
  const struct meta_state *s = meta_node_state(c->meta);
  struct meta_node_info info;
  meta_node_info(c->meta, &info);
  size_t nr = ring_snapshot_node_count(c->ring);
  double *share = chorus_calloc(nr ? nr : 1, sizeof *share);
  struct wire_cluster_member *wm = chorus_calloc(s->n ? s->n : 1, sizeof *wm);
  if (share == NULL || wm == NULL) {
    chorus_free(share);
    chorus_free(wm);
    return CHORUS_ENOMEM;
  }
  ring_snapshot_ownership(c->ring, share);
  for (size_t i = 0; i < s->n; i++) {
    const struct meta_member *m = &s->members[i];
    long at = ring_snapshot_find(c->ring, m->id);
    wm[i] = (struct wire_cluster_member){
        .id = m->id,
        .name = str_bytes(m->name),
        .addr = str_bytes(m->addr),
        .dc = str_bytes(m->dc),
        .rack = str_bytes(m->rack),
        .state = m->state,
        /* A member that left or was removed has no part in the group,
         * whatever the configuration it last saw says: a decommissioned
         * node is taken out of it after it learns it left, and never
         * hears of that change (it showed itself a voter for good). */
        .role = m->state == META_LEFT || m->state == META_REMOVED
                    ? WIRE_RAFT_ROLE_NONE
                    : wire_role_of(meta_node_role(c->meta, m->id)),
        .alive = wire_alive_of(c, m->id),
        .vnodes = m->vnodes ? m->vnodes : RING_DEFAULT_VNODES,
        .share_ppm = at >= 0 ? (uint32_t)(share[at] * 1e6 + 0.5) : 0};
    if (wm[i].share_ppm > 1000000u)
      wm[i].share_ppm = 1000000u;
  }
  const struct meta_member *self = meta_state_find(s, c->cfg.swim.id);
  const struct meta_member *lead =
      info.leader ? meta_state_find(s, info.leader) : NULL;
  struct wire_msg r = {.type = WIRE_CLUSTER_REPLY};
  r.cluster_reply = (struct wire_cluster_reply){
      .node_id = c->cfg.swim.id,
      .node_name = str_bytes(self ? self->name : c->cfg.meta.self_member.name),
      .leader_id = info.leader,
      .leader_name = str_bytes(lead ? lead->name : ""),
      .term = info.term,
      .commit_index = info.commit_index,
      .applied_index = info.applied_index,
      .epoch = s->epoch,
      .raft_state = (uint8_t)info.raft_state,
      .nmembers = s->n,
      .members = wm};
  int rc = c->fx.reply(c->fx.ctx, cookie, &r, false);
  chorus_free(share);
  chorus_free(wm);
  return rc;
}

/* change_under_way: one line naming the change under way (for EBUSY). */
static void change_under_way(const struct meta_state *s, char *out,
                             size_t cap) {
  snprintf(out, cap, "another change is under way");
  for (size_t i = 0; i < s->n; i++) {
    const struct meta_member *m = &s->members[i];
    if (m->state == META_JOINING || m->state == META_LEAVING ||
        m->state == META_REPLACING) {
      snprintf(out, cap,
               "a change is under way (%s is %s, epoch %" PRIu64
               "): one at a time; wait for it to finish",
               m->name, meta_member_state_name(m->state), s->epoch);
      return;
    }
  }
}

/* too_few_left: whether decommissioning @m leaves its replication group
 * (its datacenter, or the cluster for a single factor) fewer owning
 * members than the group's factor. */
static bool too_few_left(const struct meta_state *s,
                         const struct meta_member *m, uint32_t *factor,
                         size_t *left) {
  const struct ring_replication *r = &s->replication;
  *factor = r->n;
  bool per_dc = r->dc_count > 0;
  if (per_dc) {
    *factor = 0;
    for (uint32_t k = 0; k < r->dc_count; k++)
      if (strcmp(r->dcs[k].dc, m->dc) == 0)
        *factor = r->dcs[k].factor;
  }
  *left = 0;
  for (size_t i = 0; i < s->n; i++) {
    const struct meta_member *o = &s->members[i];
    if (o->id != m->id && o->state == META_NORMAL &&
        (!per_dc || strcmp(o->dc, m->dc) == 0))
      ++*left;
  }
  return *left < *factor;
}

static int propose_admin(struct core *c, const struct meta_cmd *cmd,
                         uint64_t cookie) {
  struct meta_cmd staged;
  if (c->admin_staging) {
    /* CLUSTER_STAGE: the command, checked as if proposed now, staged. */
    staged = (struct meta_cmd){.type = META_CMD_STAGE,
                               .staged_type = cmd->type,
                               .id = cmd->id,
                               .state = cmd->state,
                               .with = cmd->with,
                               .disk = cmd->disk};
    cmd = &staged;
  }
  TRACE(c, "operator: %s", meta_cmd_describe(cmd));
  return done(c, meta_node_propose(c->meta, cmd, cookie, CORE_ADMIN_TIMEOUT_MS,
                                   c->now));
}

/* admin_stage: CLUSTER_STAGE (wire.h). The three changes go through the
 * commands' own paths (same checks, same refusals), their proposal
 * wrapped in a STAGE (propose_admin); COMMIT and CLEAR are proposed as
 * they are. */
static int admin_stage(struct core *c, const struct wire_msg *m,
                       uint64_t cookie) {
  const struct wire_cluster_stage *st = &m->cluster_stage;
  if (st->action == WIRE_STAGE_COMMIT || st->action == WIRE_STAGE_CLEAR) {
    struct meta_cmd cmd = {.type = META_CMD_COMMIT,
                           .state = st->action == WIRE_STAGE_COMMIT};
    return propose_admin(c, &cmd, cookie);
  }
  struct wire_msg as = {.request_id = m->request_id};
  switch (st->action) {
  case WIRE_STAGE_DECOMMISSION:
    as.type = WIRE_CLUSTER_DECOMMISSION;
    as.cluster_decommission =
        (struct wire_cluster_decommission){st->name, st->force};
    break;
  case WIRE_STAGE_REMOVE:
    as.type = WIRE_CLUSTER_REMOVE;
    as.cluster_remove = (struct wire_cluster_remove){st->name, st->force};
    break;
  case WIRE_STAGE_REPLACE:
    as.type = WIRE_CLUSTER_REPLACE;
    as.cluster_replace = (struct wire_cluster_replace){st->name, st->with};
    break;
  default:
    return core__refuse(
        c, cookie, CHORUS_EINVAL,
        "stage: decommission, remove, replace, commit or clear");
  }
  c->admin_staging = true;
  int rc = core__meta_client(c, &as, cookie);
  c->admin_staging = false;
  return rc;
}

/* member_named: the member @nb names, or NULL with the refusal sent
 * (*@rc). */
static const struct meta_member *member_named(struct core *c,
                                              const struct wire_bytes *nb,
                                              uint64_t cookie, int *rc) {
  char name[META_NAME_MAX], text[META_NAME_MAX + 64];
  if (nb->len == 0 || nb->len >= sizeof name) {
    *rc =
        core__refuse(c, cookie, CHORUS_EINVAL, "a member name is 1..127 bytes");
    return NULL;
  }
  memcpy(name, nb->ptr, nb->len);
  name[nb->len] = '\0';
  const struct meta_member *mm =
      meta_state_find_name(meta_node_state(c->meta), name);
  if (mm == NULL) {
    snprintf(text, sizeof text, "no member named %s", name);
    *rc = core__refuse(c, cookie, CHORUS_ENOTFOUND, text);
  }
  return mm;
}

/* admin_replace: CLUSTER_REPLACE (wire.h): the dead NORMAL member leaves
 * (REMOVED) in the change that makes the new one NORMAL. */
static int admin_replace(struct core *c, const struct wire_msg *m,
                         uint64_t cookie) {
  int rc = CHORUS_OK;
  const struct meta_member *dead =
      member_named(c, &m->cluster_replace.name, cookie, &rc);
  if (dead == NULL)
    return rc;
  const struct meta_member *with =
      member_named(c, &m->cluster_replace.with, cookie, &rc);
  if (with == NULL)
    return rc;
  const struct meta_state *s = meta_node_state(c->meta);
  char text[2 * META_NAME_MAX + 256];
  if (dead->state == META_LEAVING && dead->goal == META_REMOVED &&
      with->state == META_JOINING)
    return admin_reply(c, cookie); /* already under way */
  if (dead->id == with->id) {
    snprintf(text, sizeof text,
             "%s cannot replace itself by name: a node that comes back "
             "with an empty disk replaces itself",
             dead->name);
    return core__refuse(c, cookie, CHORUS_EINVAL, text);
  }
  if (dead->state != META_NORMAL ||
      (with->state != META_JOINING && with->state != META_NORMAL)) {
    snprintf(text, sizeof text,
             "%s is %s and %s is %s: a normal member is replaced by a "
             "joining or normal one",
             dead->name, meta_member_state_name(dead->state), with->name,
             meta_member_state_name(with->state));
    return core__refuse(c, cookie, CHORUS_EINVAL, text);
  }
  if (core__swim_up(c, dead->id)) {
    snprintf(text, sizeof text,
             "%s is alive: stop it first, or decommission it", dead->name);
    return core__refuse(c, cookie, CHORUS_EBUSY, text);
  }
  bool others = false;
  for (size_t i = 0; i < s->n; i++)
    others |=
        s->members[i].id != with->id && (s->members[i].state == META_JOINING ||
                                         s->members[i].state == META_LEAVING ||
                                         s->members[i].state == META_REPLACING);
  if (others || (with->state == META_NORMAL && meta_state_changing(s))) {
    change_under_way(s, text, sizeof text);
    return core__refuse(c, cookie, CHORUS_EBUSY, text);
  }
  struct meta_cmd cmd = {
      .type = META_CMD_REPLACE, .id = dead->id, .with = with->id};
  return propose_admin(c, &cmd, cookie);
}

int core__meta_client(struct core *c, const struct wire_msg *m,
                      uint64_t cookie) {
  if (m->type == WIRE_CLUSTER_QUERY)
    return admin_reply(c, cookie);
  if (m->type == WIRE_KEYSPACE)
    return done(c, core__keyspace_client(c, m, cookie));
  if (m->type == WIRE_USER)
    return done(c, core__user_client(c, m, cookie));
  if (m->type == WIRE_CLUSTER_KEY)
    return done(c, core__keys_client(c, m, cookie));
  if (m->type == WIRE_CLUSTER_REPLACE)
    return admin_replace(c, m, cookie);
  if (m->type == WIRE_CLUSTER_STAGE)
    return admin_stage(c, m, cookie);
  if (m->type == WIRE_CLUSTER_PLAN)
    return core__plan_client(c, m, cookie); /* core_plan.c */
  /* CLUSTER_REMOVE, CLUSTER_DECOMMISSION */
  bool decommission = m->type == WIRE_CLUSTER_DECOMMISSION;
  const struct wire_bytes *nb =
      decommission ? &m->cluster_decommission.name : &m->cluster_remove.name;
  bool force =
      decommission ? m->cluster_decommission.force : m->cluster_remove.force;
  char name[META_NAME_MAX], text[2 * META_NAME_MAX + 256];
  if (nb->len == 0 || nb->len >= sizeof name)
    return core__refuse(c, cookie, CHORUS_EINVAL,
                        "a member name is 1..127 bytes");
  memcpy(name, nb->ptr, nb->len);
  name[nb->len] = '\0';
  const struct meta_state *s = meta_node_state(c->meta);
  const struct meta_member *mm = meta_state_find_name(s, name);
  if (mm == NULL) {
    snprintf(text, sizeof text, "no member named %s", name);
    return core__refuse(c, cookie, CHORUS_ENOTFOUND, text);
  }
  struct meta_cmd cmd = {.id = mm->id};
  if (decommission) {
    if ((mm->state == META_LEAVING && mm->goal == META_LEFT) ||
        mm->state == META_LEFT)
      return admin_reply(c, cookie); /* under way, or done: as remove */
    if (mm->state != META_NORMAL) {
      snprintf(text, sizeof text,
               "%s is %s: only a normal member hands its "
               "ranges over",
               name, meta_member_state_name(mm->state));
      return core__refuse(c, cookie, CHORUS_EINVAL, text);
    }
    uint32_t factor;
    size_t left;
    if (meta_state_changing(s)) {
      change_under_way(s, text, sizeof text);
      return core__refuse(c, cookie, CHORUS_EBUSY, text);
    }
    if (core__meta_sole_owner(s, mm, text, sizeof text))
      return core__refuse(c, cookie, CHORUS_EINVAL, text);
    if (too_few_left(s, mm, &factor, &left) && !force) {
      snprintf(text, sizeof text,
               "decommissioning %s would leave %zu normal members where the "
               "replication factor is %" PRIu32
               " (%s%s): keys would have fewer replicas (--force does it "
               "anyway)",
               name, left, factor, mm->dc[0] ? "datacenter " : "the cluster",
               mm->dc);
      return core__refuse(c, cookie, CHORUS_EBUSY, text);
    }
    cmd.type = META_CMD_LEAVE;
    cmd.state = META_LEFT;
    return propose_admin(c, &cmd, cookie);
  }
  if (mm->state == META_REMOVED)
    return admin_reply(c, cookie);
  if (core__swim_up(c, mm->id) && !force) {
    snprintf(text, sizeof text,
             "%s is alive: stop it first, or decommission it (--force "
             "removes it anyway)",
             name);
    return core__refuse(c, cookie, CHORUS_EBUSY, text);
  }
  /* A dead member: its ranges are streamed to their new owners from the
   * other replicas before it is REMOVED (Cassandra's removenode). --force,
   * or a member that owns nothing natural (a joiner), goes at once. */
  if (!force && mm->state == META_NORMAL) {
    if (meta_state_changing(s)) {
      change_under_way(s, text, sizeof text);
      return core__refuse(c, cookie, CHORUS_EBUSY, text);
    }
    if (core__meta_sole_owner(s, mm, text, sizeof text))
      return core__refuse(c, cookie, CHORUS_EINVAL, text);
    cmd.type = META_CMD_LEAVE;
    cmd.state = META_REMOVED;
    return propose_admin(c, &cmd, cookie);
  }
  if (!force && mm->state == META_LEAVING) {
    snprintf(text, sizeof text,
             "%s is already leaving: its ranges stream from the other "
             "replicas (--force removes it at once)",
             name);
    return core__refuse(c, cookie, CHORUS_EBUSY, text);
  }
  cmd.type = META_CMD_REMOVE;
  return propose_admin(c, &cmd, cookie);
}

int core_meta_propose(struct core *c, const struct meta_cmd *cmd,
                      uint64_t cookie, chorus_ms timeout_ms, chorus_ms now,
                      chorus_ms wall) {
  if (c->meta == NULL)
    return CHORUS_EINVAL;
  c->now = now;
  c->wall = wall;
  return done(c, meta_node_propose(c->meta, cmd, cookie | CORE_META_COOKIE_BIT,
                                   timeout_ms, now));
}

int core_meta_read(struct core *c, uint64_t cookie, chorus_ms now,
                   chorus_ms wall) {
  if (c->meta == NULL)
    return CHORUS_EINVAL;
  c->now = now;
  c->wall = wall;
  return done(c, meta_node_read(c->meta, cookie | CORE_META_COOKIE_BIT, now));
}

/* The administrative path's checks, for core_plan.c: a plan says what the
 * command itself would. */
bool core__meta_too_few_left(const struct meta_state *s,
                             const struct meta_member *m, uint32_t *factor,
                             size_t *left) {
  return too_few_left(s, m, factor, left);
}

void core__meta_change_under_way(const struct meta_state *s, char *out,
                                 size_t cap) {
  change_under_way(s, out, cap);
}

bool core__meta_sole_owner(const struct meta_state *s,
                           const struct meta_member *m, char *out, size_t cap) {
  if (!meta_state_sole_owner(s, m->id))
    return false;
  snprintf(out, cap,
           "%s is the only member that owns ranges: nobody would take its "
           "data (join another node first; --force cannot do this)",
           m->name);
  return true;
}
