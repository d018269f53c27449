/* repl_request.c: a client request's way in: what it asks, whether this
 * node can serve it, which replicas it needs, and forwarding when this node
 * is no replica of the key. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_int.h"

/* Extra time a forwarding node waits beyond the request's own timeout, so
 * that the coordinator's ETIMEDOUT (with its count) arrives first. */
#define FORWARD_SLACK_MS 200

/* The key limit is what the store can hold under the longest key a key
 * gets, its hint's (wire.h, WIRE_MAX_KEY). */
_Static_assert(REPL_HINT_PREFIX + WIRE_MAX_KEY <= STORE_MAX_KEY,
               "a hint key of a maximal key must fit the store");
_Static_assert(WIRE_MAX_KEY <= WIRE_MAX_KEY_FIELD, "a maximal key must decode");

/* ------------------------------------------------------------------------
 * Requests and error replies
 * ------------------------------------------------------------------------ */

bool repl__is_write_type(uint8_t t) {
  return t == WIRE_PUT || t == WIRE_PUT_TTL || t == WIRE_DELETE ||
         t == WIRE_COUNTER_ADD || t == WIRE_SET_ADD || t == WIRE_SET_REMOVE ||
         t == WIRE_LWW_SET || t == WIRE_LWW_DELETE || t == WIRE_MAP_UPDATE ||
         t == WIRE_CAS || t == WIRE_LOCK;
}

bool repl__request_of(const struct wire_msg *m, struct repl_request *q) {
  switch (m->type) {
  case WIRE_GET:
    *q = (struct repl_request){&m->get.key, &m->get.opts, CRDT_KV, false};
    return true;
  case WIRE_PUT:
  case WIRE_PUT_TTL:
    *q = (struct repl_request){&m->put.key, &m->put.opts, CRDT_KV, true};
    return true;
  case WIRE_DELETE:
    *q = (struct repl_request){&m->del.key, &m->del.opts, CRDT_KV, true};
    return true;
  case WIRE_COUNTER_ADD:
    *q = (struct repl_request){&m->counter_add.key, &m->counter_add.opts,
                               CRDT_COUNTER, true};
    return true;
  case WIRE_COUNTER_READ:
    *q = (struct repl_request){&m->counter_read.key, &m->counter_read.opts,
                               CRDT_COUNTER, false};
    return true;
  case WIRE_SET_ADD:
    *q = (struct repl_request){&m->set_add.key, &m->set_add.opts, CRDT_SET,
                               true};
    return true;
  case WIRE_SET_REMOVE:
    *q = (struct repl_request){&m->set_remove.key, &m->set_remove.opts,
                               CRDT_SET, true};
    return true;
  case WIRE_SET_READ:
    *q = (struct repl_request){&m->set_read.key, &m->set_read.opts, CRDT_SET,
                               false};
    return true;
  case WIRE_LWW_SET:
    *q = (struct repl_request){&m->lww_set.key, &m->lww_set.opts, CRDT_LWW,
                               true};
    return true;
  case WIRE_LWW_DELETE:
  case WIRE_LWW_READ:
    *q = (struct repl_request){&m->lww_key.key, &m->lww_key.opts, CRDT_LWW,
                               m->type == WIRE_LWW_DELETE};
    return true;
  case WIRE_MAP_UPDATE:
    *q = (struct repl_request){&m->map_update.key, &m->map_update.opts,
                               CRDT_MAP, true};
    return true;
  case WIRE_MAP_READ:
    *q = (struct repl_request){&m->map_read.key, &m->map_read.opts, CRDT_MAP,
                               false};
    return true;
  case WIRE_CAS:
    /* A serial read writes too (a promise), and is refused as writes are
     * on a full disk. */
    *q = (struct repl_request){&m->cas.key, &m->cas.opts, CRDT_PAXOS, true};
    return true;
  case WIRE_LOCK:
    *q = (struct repl_request){&m->lock.key, &m->lock.opts, CRDT_PAXOS, true};
    return true;
  default:
    return false;
  }
}

struct wire_bytes *repl_request_key(struct wire_msg *m, uint8_t *type) {
  struct repl_request q;
  if (!repl__request_of(m, &q))
    return NULL;
  if (type != NULL)
    *type = (uint8_t)q.type;
  /* q.key points into *m, which the caller owns and may change. */
  return (struct wire_bytes *)(uintptr_t)q.key;
}

int repl__reply_error(struct repl *r, const struct repl_effects *fx,
                      const struct repl_origin *origin, uint8_t mtype, int code,
                      const char *fmt, ...) {
  char text[WIRE_MAX_ERROR_TEXT];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  REPL_TRACE(r, "%s answered %s: %s", wire_type_name(mtype),
             chorus_errname(code), text);
  struct wire_msg m = {.type = WIRE_ERROR};
  m.error.code = code;
  m.error.text = (struct wire_bytes){(const uint8_t *)text, strlen(text)};
  switch (code) {
  case CHORUS_EUNAVAILABLE:
    r->stats.unavailable++;
    break;
  case CHORUS_ETIMEDOUT:
    r->stats.timeouts++;
    break;
  case CHORUS_EINVAL:
    r->stats.invalid++;
    break;
  default:
    break;
  }
  return fx->reply(fx->ctx, origin, &m,
                   repl__is_write_type(mtype) && chorus_maybe_applied(code));
}

/* check_limits: the request's sizes against the limits (docs/PROTOCOL.md,
 * Limits), in the words libchorus uses for the same check. A key or member
 * over its wire bound never decodes; these are the limits below it.
 * Errors: CHORUS_ETOOBIG, with the reason in r->err. */
static int check_limits(struct repl *r, const struct wire_msg *m,
                        const struct repl_request *q) {
  uint32_t max = r->cfg.max_value_bytes;
  if (q->key->len > WIRE_MAX_KEY)
    return chorus_errf(r->err, CHORUS_ETOOBIG,
                       "key of %zu bytes is over the %u-byte key limit",
                       q->key->len, WIRE_MAX_KEY);
  const struct wire_bytes *v = m->type == WIRE_PUT || m->type == WIRE_PUT_TTL
                                   ? &m->put.value
                               : m->type == WIRE_LWW_SET ? &m->lww_set.value
                               : m->type == WIRE_CAS     ? &m->cas.value
                               : m->type == WIRE_LOCK    ? &m->lock.value
                                                         : NULL;
  if (v != NULL && v->len > max)
    return chorus_errf(r->err, CHORUS_ETOOBIG,
                       "value of %zu bytes is over the %" PRIu32
                       "-byte value limit",
                       v->len, max);
  if (m->type == WIRE_CAS && m->cas.expected.len > max)
    return chorus_errf(r->err, CHORUS_ETOOBIG,
                       "expected value of %zu bytes is over the %" PRIu32
                       "-byte value limit",
                       m->cas.expected.len, max);
  if (m->type != WIRE_SET_ADD)
    return CHORUS_OK;
  const struct wire_bytes_list *l = &m->set_add.members;
  for (size_t i = 0; i < l->n; i++)
    if (l->items[i].len > max)
      return chorus_errf(r->err, CHORUS_ETOOBIG,
                         "member %zu of %zu bytes is over the %" PRIu32
                         "-byte value limit",
                         i, l->items[i].len, max);
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * Forwarding
 * ------------------------------------------------------------------------ */

static bool was_tried(const struct repl_op_forward *prev, chorus_node_id id) {
  for (uint8_t i = 0; prev != NULL && i < prev->ntried; i++)
    if (prev->tried[i] == id)
      return true;
  return false;
}

/* Hands @m to the first live natural replica of @pl not asked before,
 * one in group @prefer if there is one (the client's datacenter, else this
 * node's: a forward stays off the WAN when it can), else any (@prev: an
 * earlier forward of the same request that came back ESTALE, or NULL); the
 * answer is relayed (repl_op.c). The request is kept,
 * encoded, to route it again should that replica answer ESTALE: its ring
 * and ours differ, a change having just finished on one of the two (a
 * node behind the FINISH sends to the node that gave the key up; a node
 * past it is asked by one behind). */
static int forward(struct repl *r, const struct wire_msg *m,
                   const struct ring_plist *pl,
                   const struct repl_origin *origin, chorus_ms timeout,
                   const struct repl_op_forward *prev, int prefer,
                   const struct repl_effects *fx) {
  chorus_node_id to = 0;
  for (int pass = prefer >= 0 ? 0 : 1; pass < 2 && to == 0; pass++)
    for (uint8_t i = 0; i < pl->n_natural && to == 0; i++)
      if (pl->r[i].id != r->cfg.self && repl__peer_alive(r, pl->r[i].id) &&
          !was_tried(prev, pl->r[i].id) && (pass == 1 || pl->r[i].dc == prefer))
        to = pl->r[i].id; /* ourselves only when restoring: never */
  if (to == 0 || (prev != NULL && prev->ntried >= REPL_FORWARD_TRIES))
    return repl__reply_error(
        r, fx, origin, m->type, CHORUS_EUNAVAILABLE, "%s",
        prev != NULL ? "forwarded to nodes that are not replicas of the key "
                       "(rings differ)"
                     : "no live replica of the key to forward to");
  size_t cap = wire_encoded_size(m);
  uint8_t *req = chorus_malloc(cap ? cap : 1);
  if (req == NULL)
    return CHORUS_ENOMEM;
  size_t len = 0;
  int rc = wire_encode(m, req, cap, &len, NULL);
  if (rc != CHORUS_OK) {
    /* It decoded, or this node built it: a bug; forwarded all the same,
     * without a second route. */
    chorus_free(req);
    req = NULL;
    len = 0;
  }
  struct repl_op *op = repl__op_new(r, REPL_OP_FORWARD);
  if (op == NULL) {
    chorus_free(req);
    return CHORUS_ENOMEM;
  }
  struct repl_op_forward *f = &op->u.forward;
  *f = (struct repl_op_forward){.mtype = m->type,
                                .origin = *origin,
                                .to = to,
                                .req = req,
                                .req_len = len,
                                .born = prev ? prev->born : r->now};
  struct repl_request q;
  f->traced = repl__request_of(m, &q) && (q.opts->flags & WIRE_OPT_TRACE) != 0;
  if (prev != NULL) {
    memcpy(f->tried, prev->tried, prev->ntried * sizeof f->tried[0]);
    f->ntried = prev->ntried;
  }
  if (req == NULL)
    f->ntried = REPL_FORWARD_TRIES; /* no second route */
  else
    f->tried[f->ntried++] = to;
  struct wire_msg fwd = *m;
  fwd.request_id = op->id;
  r->stats.forwarded++;
  REPL_TRACE(r, "%s forwarded to %016" PRIx64 "%s", wire_type_name(m->type), to,
             prev != NULL ? " (again: rings differed)" : "");
  rc = fx->send(fx->ctx, to, &fwd);
  if (rc == CHORUS_OK)
    rc = repl__op_arm(fx, op, timeout + FORWARD_SLACK_MS);
  return rc;
}

/* ------------------------------------------------------------------------
 * Coordinating
 * ------------------------------------------------------------------------ */

/* Whether the replicas @pl can meet @need at all, counting the live ones
 * (pending ones too for a @write, and live fallbacks standing in for dead
 * naturals of their own datacenter when @sloppy, as repl__write_send
 * picks them). */
static bool can_meet(struct repl *r, const struct ring_plist *pl,
                     const struct repl_need *need, bool write, bool sloppy) {
  struct repl_tally t = {0};
  uint32_t dead[RING_MAX_DCS] = {0};
  for (uint8_t i = 0; i < pl->n_natural; i++) {
    if (repl__peer_alive(r, pl->r[i].id))
      repl__tally_add(&t, need, pl->r[i].dc, true);
    else if (pl->r[i].dc < RING_MAX_DCS)
      dead[pl->r[i].dc]++;
  }
  for (uint8_t i = pl->n_natural; write && i < pl->n_natural + pl->n_pending;
       i++)
    if (repl__peer_alive(r, pl->r[i].id))
      repl__tally_add(&t, need, pl->r[i].dc, false);
  if (sloppy) {
    uint8_t first = (uint8_t)(pl->n_natural + pl->n_pending);
    for (uint8_t i = 0; i < pl->n_fallback; i++) {
      const struct ring_replica *f = &pl->r[first + i];
      if (f->dc < RING_MAX_DCS && dead[f->dc] > 0 &&
          repl__peer_alive(r, f->id)) {
        repl__tally_add(&t, need, f->dc, false);
        dead[f->dc]--;
      }
    }
  }
  return repl__tally_met(&t, need);
}

/* The write's or read's common part: whom to answer, the key, the need,
 * and the targets: natural replicas (and pending ones for a write). */
static int coord_init(struct repl_coord *c, const struct wire_msg *m,
                      const struct repl_origin *origin,
                      const struct repl_request *q, const struct ring_plist *pl,
                      const struct repl_need *need) {
  c->mtype = m->type;
  c->origin = *origin;
  if ((q->opts->flags & WIRE_OPT_TRACE) != 0 &&
      (c->trace = chorus_calloc(1, sizeof *c->trace)) == NULL)
    return CHORUS_ENOMEM;
  c->need = *need;
  c->token = pl->token;
  c->klen = q->key->len;
  c->key = chorus_malloc(c->klen ? c->klen : 1);
  if (c->key == NULL)
    return CHORUS_ENOMEM;
  if (c->klen)
    memcpy(c->key, q->key->ptr, c->klen);
  uint8_t upto =
      q->write ? (uint8_t)(pl->n_natural + pl->n_pending) : pl->n_natural;
  assert(upto <= RING_PLIST_MAX);
  for (uint8_t i = 0; i < upto; i++)
    c->t[c->ntargets++] = (struct repl_target){.id = pl->r[i].id,
                                               .group = pl->r[i].dc,
                                               .natural = i < pl->n_natural,
                                               .pending = i >= pl->n_natural};
  return CHORUS_OK;
}

static int coordinate(struct repl *r, const struct wire_msg *m,
                      const struct repl_origin *origin, chorus_ms wall,
                      const struct repl_op_forward *prev,
                      const struct repl_effects *fx) {
  struct repl_request q;
  if (!repl__request_of(m, &q))
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EINVAL,
                             "%s is not a request a node coordinates",
                             wire_type_name(m->type));
  if (check_limits(r, m, &q) != CHORUS_OK)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_ETOOBIG, "%s",
                             r->err);
  /* Locks have a namespace of their own (WIRE_LOCK_PREFIX): only a lock
   * operation names a key there, so a lock is never forged by a plain
   * write nor clashes with a data key. */
  bool lock_key =
      q.key->len >= WIRE_LOCK_PREFIX_LEN &&
      memcmp(q.key->ptr, WIRE_LOCK_PREFIX, WIRE_LOCK_PREFIX_LEN) == 0;
  bool lock_op = m->type == WIRE_LOCK && m->lock.op != WIRE_LOCK_FENCED_PUT;
  if (lock_key != lock_op)
    return repl__reply_error(
        r, fx, origin, m->type, CHORUS_EINVAL,
        lock_op ? "a lock operation's key is the lock namespace's prefix "
                  "and the lock's name"
                : "keys starting with the lock namespace's prefix (0xc1 "
                  "\"lock:\") are locks', reserved to lock operations");
  if (r->failed)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EIO,
                             "this node's store failed; it must restart");
  if (!repl__serving(r))
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                             "this node is starting");
  const struct wire_options *o = q.opts;
  chorus_ms timeout = o->timeout_ms ? o->timeout_ms : r->cfg.timeout_ms;
  bool sloppy = o->sloppy || r->cfg.sloppy;

  /* The key's replication class (ring.h): a keyspace may replicate
   * otherwise than the cluster, with its own groups. */
  const struct ring_snapshot *ring =
      ring_snapshot_for_key(r->ring, q.key->ptr, q.key->len);
  struct ring_plist pl;
  chorus_token token = ring_token_of(q.key->ptr, q.key->len);
  int rc =
      ring_lookup(ring, token, q.write && sloppy ? r->cfg.fallbacks : 0, &pl);
  if (rc != CHORUS_OK)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                             "the ring has no replica for the key");
  bool replica = false;
  for (uint8_t i = 0; i < pl.n_natural; i++)
    replica |= pl.r[i].id == r->cfg.self && !r->restoring;

  /* The datacenter a LOCAL level counts in: the client's when the request
   * names it (opts.dc, version 4), else this node's. */
  const struct ring_replication *rs = ring_snapshot_replication(ring);
  int own_group =
      ring == r->ring ? r->local_group : repl__group_of_dc(rs, r->cfg.dc);
  int32_t level = q.write ? (o->w ? o->w : r->cfg.w) : (o->r ? o->r : r->cfg.r);
  /* A CAS (a serial read too) is LOCAL_SERIAL with either level LOCAL. */
  if (m->type == WIRE_CAS && !o->w && o->r)
    level = o->r;
  bool local_level = level == WIRE_LOCAL_ONE || level == WIRE_LOCAL_QUORUM;
  int group = own_group;
  if (o->dc.len > 0) {
    char dc[WIRE_MAX_LABEL + 1];
    memcpy(dc, o->dc.ptr, o->dc.len);
    dc[o->dc.len] = '\0';
    group = repl__group_of_dc(rs, dc);
    if (group < 0 && local_level)
      return repl__reply_error(r, fx, origin, m->type, CHORUS_EINVAL,
                               "%s=%s: the client's datacenter %s holds no "
                               "replicas",
                               q.write ? "w" : "r", wire_level_name(level), dc);
  }
  /* A LOCAL request from a client of another datacenter is coordinated
   * there, by one of its live replicas: its quorum is counted there, and
   * only the forward crosses the WAN, not each replica's round trip. With
   * none of them live, this node coordinates it (counting the client's
   * datacenter all the same) when it can. */
  if (local_level && group >= 0 && group != own_group && !origin->from_peer) {
    for (uint8_t i = 0; i < pl.n_natural; i++)
      if (pl.r[i].dc == group && pl.r[i].id != r->cfg.self &&
          repl__peer_alive(r, pl.r[i].id) && !was_tried(prev, pl.r[i].id))
        return forward(r, m, &pl, origin, timeout, prev, group, fx);
  }
  if (!replica) {
    /* ESTALE: nothing done here; the forwarder routes it again
     * (repl__coordinate_again), never this node, which cannot tell a
     * first forward from a second: forwarded on, one could bounce between
     * two nodes whose rings differ until one caught up. */
    if (origin->from_peer)
      return repl__reply_error(r, fx, origin, m->type, CHORUS_ESTALE,
                               "forwarded to a node that is not a replica of "
                               "the key (rings differ)");
    /* A LOCAL level counts in the client's datacenter, this node's when
     * the client named none; the replica it goes to may be in another
     * (this datacenter may hold none of the key's replicas: a keyspace
     * replicated elsewhere), so it is named for it. */
    if (local_level && o->dc.len == 0 && r->cfg.dc[0] != '\0') {
      struct wire_msg named = *m;
      struct wire_options *no = wire_options_of(&named);
      no->dc =
          (struct wire_bytes){(const uint8_t *)r->cfg.dc, strlen(r->cfg.dc)};
      return forward(r, &named, &pl, origin, timeout, prev, group, fx);
    }
    return forward(r, m, &pl, origin, timeout, prev, group, fx);
  }

  /* A full data folder refuses the write here, before anything is read,
   * applied or written (store.h, THE SPACE RESERVE). So does a volatile
   * epoch: no dot may be minted under it. */
  if (q.write && (rc = store_write_allowed(r->store)) != CHORUS_OK)
    return repl__reply_error(r, fx, origin, m->type, rc, "%s",
                             store_errmsg(r->store));
  if (q.write && !r->ready)
    return repl__reply_error(r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
                             "this node's epoch is not durable yet");

  /* Compare-and-set: every natural replica, a majority (repl_paxos.c);
   * LOCAL_SERIAL (w LOCAL_QUORUM): the datacenter's (its client's, or
   * this node's) natural replicas, a majority of them. */
  if (m->type == WIRE_CAS) {
    if (local_level && (rs->dc_count == 0 || group < 0))
      return repl__reply_error(r, fx, origin, m->type, CHORUS_EINVAL,
                               "LOCAL_SERIAL needs datacenters in the "
                               "replication settings and replicas in this "
                               "one");
    return repl__cas_start(r, m, origin, &pl, local_level ? group : -1, timeout,
                           fx);
  }
  if (m->type == WIRE_LOCK)
    return repl__lock_start(r, m, origin, &pl, timeout, fx);

  int32_t plevel = q.write ? o->pw : o->pr;
  struct repl_need need;
  rc = repl__resolve(rs, level, plevel, group, q.write ? "w" : "r", &need,
                     r->err);
  if (rc != CHORUS_OK)
    return repl__reply_error(r, fx, origin, m->type, rc, "%s", r->err);
  if (q.write)
    repl__need_pending(&need, &pl);
  if (!can_meet(r, &pl, &need, q.write, q.write && sloppy))
    return repl__reply_error(
        r, fx, origin, m->type, CHORUS_EUNAVAILABLE,
        "too few live replicas for %s=%s", q.write ? "w" : "r",
        wire_level_name(level) ? wire_level_name(level) : "n");

  struct repl_op *op = repl__op_new(r, q.write ? REPL_OP_WRITE : REPL_OP_READ);
  if (op == NULL ||
      coord_init(repl__coord(op), m, origin, &q, &pl, &need) != CHORUS_OK)
    return CHORUS_ENOMEM;
  if (q.write) {
    op->u.write.sloppy = sloppy;
    op->u.write.timeout_ms = (uint32_t)timeout;
    op->u.write.pl = pl;
    op->u.write.local_group = (int8_t)own_group;
  } else {
    op->u.read.read_repair =
        o->read_repair ? o->read_repair : r->cfg.read_repair;
  }
  rc = repl__op_arm(fx, op, timeout);
  if (rc != CHORUS_OK)
    return rc;
  return q.write ? repl__write_start(r, op, m, &q, wall, fx)
                 : repl__read_start(r, op, &q, fx);
}

int repl__coordinate(struct repl *r, const struct wire_msg *m,
                     const struct repl_origin *origin, chorus_ms wall,
                     const struct repl_effects *fx) {
  return coordinate(r, m, origin, wall, NULL, fx);
}

int repl__coordinate_again(struct repl *r, const struct repl_op_forward *fwd,
                           chorus_ms wall, const struct repl_effects *fx) {
  if (fwd->req == NULL || fwd->req_len < WIRE_FRAME_PREFIX)
    return repl__reply_error(r, fx, &fwd->origin, fwd->mtype,
                             CHORUS_EUNAVAILABLE,
                             "forwarded to a node that is not a replica of "
                             "the key (rings differ)");
  struct wire_msg m;
  const struct wire_limits lim = WIRE_LIMITS_PEER;
  int rc = wire_decode(fwd->req + WIRE_FRAME_PREFIX,
                       fwd->req_len - WIRE_FRAME_PREFIX, &lim, &m, NULL);
  if (rc != CHORUS_OK) {
    /* Encoded here from a message that decoded or was built here. */
    if (rc == CHORUS_ENOMEM)
      return rc;
    return repl__reply_error(r, fx, &fwd->origin, fwd->mtype, CHORUS_EINTERNAL,
                             "a forwarded request did not decode again: %s",
                             chorus_strerror(rc));
  }
  rc = coordinate(r, &m, &fwd->origin, wall, fwd, fx);
  wire_msg_free(&m);
  return rc;
}
