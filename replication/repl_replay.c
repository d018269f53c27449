/* repl_replay.c: the instance's side of hinted handoff: hints disarmed by
 * acknowledgements, the index rebuilt after a failed batch, and replay of
 * the hints that are due to targets that are up (repl.h, HINTS FOR THE
 * REPLICAS THAT DID NOT ANSWER). */
#include <inttypes.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_int.h"

/* Deletes wait for the next write batch; without writes, they are written
 * once this many have gathered (and at every hint round). */
#define DISARM_FLUSH_AT 256

int repl__disarm(struct repl *r, chorus_node_id target, chorus_token token,
                 const void *key, size_t klen, uint64_t seq, bool *deleted) {
  int rc = repl__hints_disarm(&r->hints, r->store, target, token, key, klen,
                              seq, deleted);
  if (rc == CHORUS_OK &&
      repl__hints_pending_deletes(&r->hints) >= DISARM_FLUSH_AT)
    rc = repl__hints_flush(&r->hints, r->store, NULL);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK)
    REPL_TRACE(r, "hint for %016" PRIx64 " not deleted: %s", target,
               chorus_errname(rc));
  return CHORUS_OK;
}

void repl__resync_hints(struct repl *r) {
  int rc = repl__hints_load(&r->hints, r->store);
  if (rc != CHORUS_OK)
    REPL_TRACE(r, "hint index not rebuilt: %s", chorus_errname(rc));
}

int repl__replay_send(const struct repl_effects *fx, const struct repl_op *op) {
  assert(op->kind == REPL_OP_REPLAY && op->state == REPL_OP_SENT);
  const struct repl_op_replay *p = &op->u.replay;
  struct wire_msg m;
  repl__msg_hint_deliver(&m, op->id, p->target, p->hint_seq, p->token, p->key,
                         p->klen, p->obj, p->olen);
  return fx->send(fx->ctx, p->target, &m);
}

void repl__replay_ended(struct repl *r, const struct repl_op *op) {
  assert(op->kind == REPL_OP_REPLAY);
  struct repl_peer_state *p = repl__peer_get(r, op->u.replay.target, false);
  /* replay_one counted it in flight on its target, which it created. */
  assert(p != NULL && p->inflight > 0);
  if (p && p->inflight > 0)
    p->inflight--;
}

int repl__replay_acked(struct repl *r, struct repl_op *op, chorus_node_id from,
                       uint64_t hint_seq, int status) {
  assert(op->kind == REPL_OP_REPLAY);
  const struct repl_op_replay *p = &op->u.replay;
  int rc = CHORUS_OK;
  if (from == p->target && status == CHORUS_OK) {
    bool deleted = false;
    rc = repl__disarm(r, p->target, p->token, p->key, p->klen, hint_seq,
                      &deleted);
    if (deleted)
      r->stats.hints_replayed++;
    REPL_TRACE(r, "hint replayed to %016" PRIx64 "%s", p->target,
               deleted ? "" : " (re-armed meanwhile: kept)");
  } else if (status != CHORUS_OK) {
    REPL_TRACE(r, "hint replay to %016" PRIx64 " refused: %s", p->target,
               chorus_errname(status));
  }
  return rc;
}

/* ------------------------------------------------------------------------
 * HINTS FOLLOW OWNERSHIP (repl.h)
 *
 * A hint is for a replica of its key. After a topology change it may not
 * be: its target left or was removed (a killed node kept collecting hints
 * for minutes before this), or the key's range went to a joiner. Three
 * places keep the rule:
 *   - the ownership pass (owners_pass) walks each target's hints after
 *     every ring change, down targets included (a removed node is dead),
 *     and moves those its target no longer owns: at most
 *     OWNERS_CHECKS_PER_BATCH x hint_batch entries a round over all
 *     targets, so a million hints for a removed node take many rounds,
 *     never one long stall of the loop;
 *   - replay (replay_target) sends no hint to a non-owner: it skips it and
 *     leaves it to the pass;
 *   - a fallback handed a hint for a non-owner moves it at once
 *     (repl_replica.c, keep_hint).
 * Hints armed in between target the ring's owners (writes and
 * hint_owners resolve the key in the current ring), so after a pass every
 * hint of its target is for an owner until the ring changes again.
 * ------------------------------------------------------------------------ */

#define OWNERS_CHECKS_PER_BATCH 64

bool repl__owns(const struct repl *r, chorus_node_id target, chorus_token token,
                const void *key, size_t klen, struct ring_plist *pl) {
  /* none listed: owns nothing */
  (void)ring_lookup(ring_snapshot_for_key(r->ring, key, klen), token, 0, pl);
  for (uint8_t i = 0; i < pl->n_natural + pl->n_pending; i++)
    if (pl->r[i].id == target)
      return true;
  return false;
}

/* drop_not_owner: deletes @h, whose target owns its key no more and which
 * cannot be moved (@why), counted and traced. Errors: CHORUS_ENOMEM. */
static int drop_not_owner(struct repl *r, const struct repl_hint *h,
                          const char *why) {
  int rc = repl__hints_disarm(&r->hints, r->store, h->target, h->token, h->key,
                              h->klen, h->seq, NULL);
  if (rc == CHORUS_OK) {
    repl__hints_note_drop(&r->hints, h->target, REPL_HINT_DROP_NOT_OWNER);
    repl__aae_hint_dropped(r, h->target, h->token);
    REPL_TRACE(r, "hint for %016" PRIx64 " dropped: not an owner, and %s",
               h->target, why);
  }
  return rc;
}

int repl__hints_move(struct repl *r, const struct repl_hint *h,
                     const struct ring_plist *pl, chorus_node_id skip,
                     bool in_table) {
  uint8_t owners = (uint8_t)(pl->n_natural + pl->n_pending), needed = 0;
  bool self_owns = false;
  for (uint8_t i = 0; i < owners; i++) {
    self_owns |= pl->r[i].id == r->cfg.self;
    needed += pl->r[i].id != r->cfg.self && pl->r[i].id != skip;
  }
  const void *obj = h->object;
  size_t olen = h->olen;
  void *copy = NULL;
  const char *why = NULL;
  int rc = CHORUS_OK;
  if (owners == 0) {
    why = "the ring lists no owner of the key";
  } else if (olen == 0 && !self_owns) {
    /* Our copy goes with the hint: we own the key no more, and cleanup
     * may delete it before the hint replays. */
    if ((rc = repl__load_bytes(r, h->token, h->key, h->klen, &copy, &olen)) !=
        CHORUS_OK)
      return rc;
    obj = copy;
    if (olen == 0)
      why = "this node has no copy of the key to hand on";
  }
  if (why != NULL) {
    chorus_free(copy);
    if (!in_table) {
      REPL_TRACE(r, "hint for %016" PRIx64 " refused: not an owner, and %s",
                 h->target, why);
      return CHORUS_EUNAVAILABLE;
    }
    return drop_not_owner(r, h, why);
  }
  /* An owner keeps the data itself: a carried object is joined into its
   * store, and the other owners' hints carry none (replay sends ours). */
  if (self_owns && olen > 0)
    rc = repl__join_into_store(r, h->token, h->key, h->klen, obj, olen);
  if (self_owns)
    olen = 0;
  struct store_batch *b = rc == CHORUS_OK ? store_batch_new() : NULL;
  if (rc == CHORUS_OK && b == NULL)
    rc = CHORUS_ENOMEM;
  size_t armed = 0;
  bool touched = false;
  if (rc == CHORUS_OK) {
    touched = true;
    rc = repl__hint_owners(r, b, pl, skip, h->key, h->klen, obj, olen, h->wall,
                           &armed);
  }
  if (rc == CHORUS_OK && in_table)
    rc = repl__hints_disarm(&r->hints, r->store, h->target, h->token, h->key,
                            h->klen, h->seq, NULL);
  if (rc == CHORUS_OK)
    rc = repl__hints_flush(&r->hints, r->store, b);
  if (rc == CHORUS_OK && store_batch_count(b) > 0)
    rc = store_write_batch(r->store, b, NULL);
  store_batch_free(b);
  chorus_free(copy);
  if (rc != CHORUS_OK) {
    /* The index counted what the batch did not write (an object that
     * does not decode failed the first owner's hint: nothing counted). */
    if (touched && rc != CHORUS_EMALFORMED)
      repl__resync_hints(r);
    return rc;
  }
  if (armed > 0 || self_owns || needed == 0) {
    r->stats.hints_moved++;
    REPL_TRACE(r,
               "hint for %016" PRIx64 " moved to %zu owners%s: it no longer "
               "owns the key at epoch %" PRIu64,
               h->target, armed, self_owns ? " (and kept here)" : "",
               ring_snapshot_version(r->ring));
  } else {
    REPL_TRACE(r,
               "hint for %016" PRIx64 " not moved: its %u owners are over "
               "their hint bound",
               h->target, needed);
  }
  return CHORUS_OK;
}

/* owners_pass: checks @target's hints against the ring, moving those whose
 * key it no longer owns, while @budget (entries, over the round) lasts;
 * resumes where the last round stopped. A ring change restarts it. */
static int owners_pass(struct repl *r, chorus_node_id target,
                       uint32_t *budget) {
  struct repl_peer_state *p = repl__peer_get(r, target, true);
  if (p == NULL)
    return CHORUS_ENOMEM;
  uint64_t v = ring_snapshot_version(r->ring);
  if ((p->owners_checked && p->owners_version == v) || *budget == 0 ||
      target == r->cfg.self || store_write_allowed(r->store) != CHORUS_OK)
    return CHORUS_OK;
  if (p->mcursor != NULL && p->mversion != v) {
    chorus_free(p->mcursor); /* checked against an older ring: start over */
    p->mcursor = NULL;
    p->mcurlen = 0;
  }
  if (p->mcursor == NULL)
    p->mversion = v;
  struct repl_hint_scan sc;
  int rc = repl__hints_scan_open(r->store, target, p->mcursor, p->mcurlen, &sc);
  if (rc != CHORUS_OK)
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
  bool reached_end = true;
  while (repl__hints_scan_valid(&sc)) {
    if (*budget == 0) {
      reached_end = false;
      break;
    }
    (*budget)--;
    struct repl_hint h;
    struct ring_plist pl;
    if (repl__hints_scan_get(&r->hints, &sc, &h) &&
        !repl__owns(r, target, h.token, h.key, h.klen, &pl) &&
        (rc = repl__hints_move(r, &h, &pl, 0, true)) != CHORUS_OK) {
      if (rc == CHORUS_EMALFORMED || rc == CHORUS_ETYPE ||
          rc == CHORUS_ECORRUPT) {
        /* It would fail the same way every round. */
        REPL_TRACE(r, "hint for %016" PRIx64 " cannot be moved: %s", target,
                   chorus_errname(rc));
        rc = drop_not_owner(r, &h, "its object cannot be moved");
      } else {
        /* The hint stays; the next round tries it again. */
        REPL_TRACE(r, "hint for %016" PRIx64 " not moved: %s", target,
                   chorus_errname(rc));
        reached_end = false;
        break;
      }
      if (rc != CHORUS_OK) {
        reached_end = false;
        break;
      }
    }
    if (repl__hints_scan_resume(&sc, &p->mcursor, &p->mcurlen) != CHORUS_OK) {
      rc = CHORUS_ENOMEM;
      reached_end = false;
      break;
    }
    repl__hints_scan_next(&sc);
  }
  /* A read that failed ends the walk as the end would: the hints after it
   * were never checked (seed 156 of the change simulator's "replace dead
   * 4": a removed node's hints went unmoved for good, and the copies they
   * held on a node that was no owner outlived every cleanup). */
  if (repl__hints_scan_close(&sc) != CHORUS_OK)
    reached_end = false;
  if (reached_end) {
    p->owners_checked = true;
    p->owners_version = v;
    chorus_free(p->mcursor);
    p->mcursor = NULL;
    p->mcurlen = 0;
  }
  return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
}

/* HINT AGE. A hint is dropped as too old only when both clocks agree: its
 * wall-clock age (the table keeps the arm time, across restarts) and the
 * monotonic time since this node armed or loaded it. A wall clock stepped
 * hours ahead (NTP, an operator, faketime) once expired every hint at the
 * next round, and the writes they stood for never reached their targets;
 * now a jump can only make hints live longer. The cost: a hint loaded at
 * start lives at least the age bound past the restart. */
static bool hint_expired(const struct repl *r, const struct repl_hint *h,
                         chorus_ms wall) {
  chorus_ms bound = r->cfg.hint_max_age_ms,
            armed = repl__hints_armed_at(&r->hints, h), now = r->hints.now;
  return bound && wall > h->wall && wall - h->wall > bound && now > armed &&
         now - armed > bound;
}

/* Replays hint @h now, or, when the store holds writes not yet durable,
 * holds it in @round (created on first use) until a barrier. */
static int replay_one(struct repl *r, struct repl_peer_state *p,
                      const struct repl_hint *h, chorus_ms wall,
                      struct repl_op **round, const struct repl_effects *fx) {
  assert(p->inflight < r->cfg.hint_batch);
  if (hint_expired(r, h, wall)) {
    REPL_TRACE(r, "hint for %016" PRIx64 " dropped: older than %" PRIu64 " ms",
               h->target, r->cfg.hint_max_age_ms);
    repl__aae_hint_dropped(r, h->target, h->token);
    int rc = repl__hints_drop(&r->hints, r->store, h, REPL_HINT_DROP_AGE);
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
  }
  void *obj = NULL;
  size_t olen = h->olen;
  if (olen > 0) {
    if ((obj = chorus_malloc(olen)) == NULL)
      return CHORUS_ENOMEM;
    memcpy(obj, h->object, olen);
  } else {
    int rc = repl__load_bytes(r, h->token, h->key, h->klen, &obj, &olen);
    if (rc != CHORUS_OK || olen == 0) {
      chorus_free(obj);
      return rc == CHORUS_ENOMEM ? rc : CHORUS_OK; /* keep the hint */
    }
  }
  struct wire_msg m;
  repl__msg_hint_deliver(&m, 0, h->target, h->seq, h->token, h->key, h->klen,
                         obj, olen);
  if (!repl__fits_peer(&m)) {
    /* An object over what a frame holds (an older node let it grow): the
     * hint waits for a write that resolves the key. */
    r->stats.unsent++;
    REPL_TRACE(r, "hint for %016" PRIx64 " kept: %zu bytes do not fit a frame",
               h->target, olen);
    chorus_free(obj);
    return CHORUS_OK;
  }
  struct repl_op *op = repl__op_new(r, REPL_OP_REPLAY);
  uint8_t *key = op ? chorus_malloc(h->klen ? h->klen : 1) : NULL;
  if (key == NULL) {
    chorus_free(obj);
    return CHORUS_ENOMEM;
  }
  if (h->klen)
    memcpy(key, h->key, h->klen);
  op->u.replay = (struct repl_op_replay){h->target, h->token, key, h->klen,
                                         h->seq,    obj,      olen};
  p->inflight++;
  int rc = repl__op_arm(fx, op, r->cfg.timeout_ms);
  if (rc != CHORUS_OK)
    return rc;
  if (repl__all_durable(r)) {
    const struct repl_op_event go = {.kind = REPL_EV_RELEASE};
    return repl__op_step(r, op, &go, fx);
  }
  if (*round == NULL && (*round = repl__op_new(r, REPL_OP_ROUND)) == NULL)
    return CHORUS_ENOMEM;
  struct repl_op_round *rd = &(*round)->u.round;
  if (rd->nwait == rd->capwait) {
    uint32_t ncap = rd->capwait ? rd->capwait * 2 : 16;
    uint64_t *w = chorus_realloc(rd->wait, ncap * sizeof *w);
    if (w == NULL)
      return CHORUS_ENOMEM;
    rd->wait = w;
    rd->capwait = ncap;
  }
  rd->wait[rd->nwait++] = op->id;
  return CHORUS_OK;
}

/* One replay round for @target: up to hint_batch hints in flight, resuming
 * after the last one sent.
 *
 * Under load every target always has hints, those of the writes in flight,
 * and all of them are young. A full scan that finds nothing due learns when
 * the first of them comes due (its write's time + timeout); a hint armed
 * later that comes due sooner (armed at its write's end, repl_write.c)
 * ends the quiet. Until then the peer is quiet and the scan, which
 * steps over every live hint and every delete not yet flushed, is skipped.
 * A peer coming back up (repl_member) or the wall clock stepping back ends
 * the quiet. */
static int replay_target(struct repl *r, chorus_node_id target, chorus_ms wall,
                         struct repl_op **round,
                         const struct repl_effects *fx) {
  struct repl_peer_state *p = repl__peer_get(r, target, true);
  if (p == NULL)
    return CHORUS_ENOMEM;
  long at = ring_snapshot_find(r->ring, target);
  bool gone = at < 0 || ring_snapshot_node(r->ring, (size_t)at)->state ==
                            RING_LEFT; /* owns nothing: the pass moves all */
  if (p->down || gone || target == r->cfg.self ||
      repl__hints_count(&r->hints, target) == 0 ||
      p->inflight >= r->cfg.hint_batch ||
      (wall >= p->quiet_from && wall < p->quiet_until))
    return CHORUS_OK;
  bool full_scan = p->cursor == NULL, any_due = false;
  chorus_ms first_due = wall + r->cfg.timeout_ms;
  struct repl_hint_scan sc;
  int rc = repl__hints_scan_open(r->store, target, p->cursor, p->curlen, &sc);
  if (rc != CHORUS_OK)
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK;
  bool reached_end = true;
  while (repl__hints_scan_valid(&sc) && rc == CHORUS_OK) {
    if (p->inflight >= r->cfg.hint_batch) {
      reached_end = false;
      break;
    }
    struct repl_hint h;
    if (!repl__hints_scan_get(&r->hints, &sc, &h)) {
      repl__hints_scan_next(&sc); /* disarmed (delete pending) or re-armed */
      continue;
    }
    /* A hint younger than a request timeout: its write ended early (its
     * target down, not asked) and waits as if it had been in flight. */
    bool young = wall >= h.wall && wall - h.wall < r->cfg.timeout_ms;
    struct ring_plist pl;
    if (!young && !repl__owns(r, target, h.token, h.key, h.klen, &pl)) {
      /* Never to a non-owner: the ownership pass moves it (and runs again
       * should a pass have missed it). */
      p->owners_checked = false;
    } else if (!young) {
      any_due = true;
      rc = replay_one(r, p, &h, wall, round, fx);
    } else if (h.wall + r->cfg.timeout_ms < first_due) {
      first_due = h.wall + r->cfg.timeout_ms;
    }
    if (repl__hints_scan_resume(&sc, &p->cursor, &p->curlen) != CHORUS_OK) {
      rc = CHORUS_ENOMEM;
      break;
    }
    repl__hints_scan_next(&sc);
  }
  if (repl__hints_scan_close(&sc) != CHORUS_OK)
    reached_end = false; /* a failed read: resume from the cursor */
  if (p->inflight > 0)
    REPL_TRACE(
        r, "replaying hints to %016" PRIx64 ": %u in flight, %" PRIu64 " kept",
        target, p->inflight, repl__hints_count(&r->hints, target));
  if (reached_end && rc == CHORUS_OK && full_scan && !any_due) {
    p->quiet_from = wall;
    p->quiet_until = first_due;
  }
  if (reached_end && rc == CHORUS_OK) {
    chorus_free(p->cursor);
    p->cursor = NULL;
    p->curlen = 0;
  }
  return rc;
}

/* Replays held back for durability leave after one barrier, the round's. */
int repl__replay(struct repl *r, chorus_node_id target, chorus_ms wall,
                 const struct repl_effects *fx) {
  assert(repl__serving(r) && !r->failed);
  int rc = CHORUS_OK;
  struct repl_op *round = NULL;
  if (target != 0)
    rc = replay_target(r, target, wall, &round, fx);
  uint32_t budget = OWNERS_CHECKS_PER_BATCH * r->cfg.hint_batch;
  chorus_node_id t = 0;
  uint64_t count;
  while (target == 0 && rc == CHORUS_OK &&
         repl__hints_next_target(&r->hints, t, &t, &count))
    if (count > 0 && (rc = owners_pass(r, t, &budget)) == CHORUS_OK)
      rc = replay_target(r, t, wall, &round, fx);
  if (rc == CHORUS_OK && round != NULL)
    rc = fx->sync(fx->ctx, store_last_seq(r->store), round->id);
  return rc;
}
