/* core_plan.c: CLUSTER_PLAN, the dry run of a topology change (core.h,
 * CLUSTER METADATA; docs/PROTOCOL.md, Topology changes): what a join, a
 * decommission or a removal would move, from whom to whom, and about how
 * many keys and bytes.
 *
 * HOW IT WORKS
 *
 * The node copies the metadata it has applied (meta_state_copy) and
 * applies to the copy the command the operator's request would propose
 * (a JOIN of a new member, a LEAVE with goal LEFT or REMOVED), after the
 * checks the administrative path makes (core_meta.c): a request it would
 * refuse is refused alike, a refusal that --force overrides is planned
 * with a note. The moves are those the streams would pull,
 * meta_state_moves of the copy (ring_diff of the ring now and the ring
 * once the change completes), summed per (from, to) pair. Nothing is
 * proposed; the copy is dropped.
 *
 * Estimates. A node knows only its own store, and keys are spread over
 * the token space by a hash, so the data one replica holds per unit of
 * token space is about the same everywhere: this node reads its STORE_DATA
 * in token order (at most SAMPLE_KEYS entries, so the loop is not held for
 * long), divides the keys and bytes it read by the fraction of the token
 * space it replicates up to the last token read (its "basis"), and
 * multiplies that density by each pair's share. It does so per
 * replication class (ring.h: a keyspace with a replication of its own
 * has its own density here and moves its own ranges): each move is
 * estimated with its class's density, and a pair sums its classes' moves
 * (ranges, share and estimates). A node that replicates
 * nothing yet (a joiner) has no basis: the estimates are 0 and the basis
 * says so. Keys include tombstones; bytes are key and object bytes as
 * stored (what a stream sends, about).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "core_int.h"

/* Entries read for the estimate (about 10 ms on RocksDB). */
#define SAMPLE_KEYS 20000u
#define TWO64 18446744073709551616.0 /* tokens in the ring */

static struct wire_bytes str_bytes(const char *s) {
  return (struct wire_bytes){(const uint8_t *)s, strlen(s)};
}

/* ========================================================================
 * The estimate's basis
 * ======================================================================== */

/* upto: tokens of (@a, @b] (a < b) that are <= @end, as a double. */
static double upto(chorus_token a, chorus_token b, chorus_token end) {
  chorus_token hi = b < end ? b : end;
  return hi > a ? (double)(hi - a) : 0.0;
}

/* held_fraction: the fraction of the token space in [0, @end] that @self
 * replicates (a natural replica) in @ring. Each span (previous token,
 * token] has the replicas of its token; the first span wraps. */
static double held_fraction(const struct ring_snapshot *ring,
                            chorus_node_id self, chorus_token end) {
  size_t n = ring_snapshot_token_count(ring), owner;
  double held = 0;
  for (size_t i = 0; i < n; i++) {
    chorus_token t = ring_snapshot_token(ring, i, &owner);
    struct ring_plist pl;
    if (ring_lookup(ring, t, 0, &pl) != CHORUS_OK)
      continue;
    bool mine = false;
    for (uint8_t k = 0; k < pl.n_natural && !mine; k++)
      mine = pl.r[k].id == self;
    if (!mine)
      continue;
    if (i > 0) {
      held += upto(ring_snapshot_token(ring, i - 1, &owner), t, end);
      continue;
    }
    /* (last token, 2^64 - 1] and [0, t] */
    chorus_token last = ring_snapshot_token(ring, n - 1, &owner);
    held += (t < end ? (double)t : (double)end) + 1.0;
    if (n > 1 && end > last)
      held += (double)(end - last);
  }
  return held / TWO64;
}

/* The sample, as a whole (what the reply's basis says) and per
 * replication class of this node's ring (ring.h): a keyspace with a
 * replication of its own has a density of its own on this node (N=1: a
 * third of the ring's keys of a 3-node cluster are here, all of them
 * with N=3), so each class's moves are estimated with its own. */
struct basis {
  uint64_t keys, bytes;
  double fraction; /* of the token space, replicated by this node */
  unsigned nclasses;
  uint64_t tag[RING_MAX_CLASSES];
  uint64_t ckeys[RING_MAX_CLASSES], cbytes[RING_MAX_CLASSES];
  double cfraction[RING_MAX_CLASSES]; /* 0: no basis for that class */
};

/* basis: keys and bytes read in token order, up to SAMPLE_KEYS, and the
 * fraction of the token space this node replicates up to the last token
 * read, in all and per class. A store error leaves no basis (the plan
 * goes without estimates). */
static struct basis basis(struct core *c) {
  struct basis b = {0};
  struct store_iter *it = NULL;
  if (c->ring == NULL ||
      store_iter_open(c->store, STORE_DATA, NULL, 0, NULL, 0, &it) != CHORUS_OK)
    return b;
  chorus_token end = UINT64_MAX;
  bool full = true;
  for (; store_iter_valid(it); store_iter_next(it)) {
    if (b.keys == SAMPLE_KEYS) {
      full = false;
      break;
    }
    size_t klen, vlen;
    const unsigned char *k = store_iter_key(it, &klen);
    (void)store_iter_value(it, &vlen);
    unsigned cls = 0;
    if (klen >= STORE_TOKEN_PREFIX) {
      end = store_be64_get(k);
      cls = ring_key_class(c->ring, k + STORE_TOKEN_PREFIX,
                           klen - STORE_TOKEN_PREFIX);
    }
    b.keys++;
    b.bytes += klen + vlen;
    b.ckeys[cls]++;
    b.cbytes[cls] += klen + vlen;
  }
  int rc = store_iter_status(it);
  store_iter_close(it);
  if (rc != CHORUS_OK)
    return (struct basis){0};
  if (full)
    end = UINT64_MAX;
  b.fraction = held_fraction(c->ring, c->cfg.swim.id, end);
  b.nclasses = ring_snapshot_class_count(c->ring);
  for (unsigned k = 0; k < b.nclasses; k++) {
    b.tag[k] = ring_snapshot_class_tag(c->ring, k);
    b.cfraction[k] =
        held_fraction(ring_snapshot_class(c->ring, k), c->cfg.swim.id, end);
  }
  if (b.fraction <= 0)
    b = (struct basis){0};
  return b;
}

/* density: keys and bytes per unit of token space of @b's class tagged
 * @tag (0 and 0 without a basis for it). */
static void density(const struct basis *b, uint64_t tag, double *keys,
                    double *bytes) {
  *keys = *bytes = 0;
  for (unsigned k = 0; k < b->nclasses; k++)
    if (b->tag[k] == tag && b->cfraction[k] > 0) {
      *keys = (double)b->ckeys[k] / b->cfraction[k];
      *bytes = (double)b->cbytes[k] / b->cfraction[k];
    }
}

/* ========================================================================
 * The would-be state
 * ======================================================================== */

/* What a plan request asks, checked as the administrative path checks the
 * command itself. */
struct plan_req {
  char name[META_NAME_MAX];
  char note[WIRE_MAX_ERROR_TEXT];
  bool empty; /* nothing would move (answer no moves) */
};

static const char *name_of(const struct meta_state *s, chorus_node_id id);

/* would_be: into @out, the state once the command @m describes is applied
 * (or the state as it is, for the change under way or a member's own
 * change). CHORUS_OK, or a refusal code with its text in @text (then
 * @out holds nothing). */
static int would_be(struct core *c, const struct wire_cluster_plan *p,
                    struct plan_req *q, struct meta_state *out, char *text,
                    size_t cap) {
  const struct meta_state *s = meta_node_state(c->meta);
  const struct meta_member *mm = meta_state_find_name(s, q->name);
  struct meta_cmd cmd = {0};
  bool apply = false;
  switch (p->action) {
  case WIRE_PLAN_UNDER_WAY:
    if (!meta_state_changing(s) && s->staged.type != 0) {
      /* The staged change, as `chorus cluster commit` would apply it. */
      const struct meta_staged *st = &s->staged;
      cmd = (struct meta_cmd){.type = META_CMD_COMMIT, .state = 1};
      apply = true;
      const struct meta_member *who = meta_state_find(s, st->id);
      snprintf(q->note, sizeof q->note,
               "staged, not committed: %s of %s%s%s (chorus cluster commit "
               "applies it, cluster clear drops it)",
               st->type == META_CMD_LEAVE
                   ? (st->state == META_LEFT ? "decommission" : "removal")
               : st->type == META_CMD_REPLACE ? "replacement"
                                              : "forced removal",
               who != NULL ? who->name : "?",
               st->type == META_CMD_REPLACE ? " by " : "",
               st->type == META_CMD_REPLACE ? name_of(s, st->with) : "");
    } else if (!meta_state_changing(s)) {
      snprintf(q->note, sizeof q->note, "no change is under way");
    }
    break;
  case WIRE_PLAN_JOIN:
    if (mm != NULL && mm->state == META_JOINING) {
      snprintf(q->note, sizeof q->note,
               "%s is joining: this is its change, under way", q->name);
    } else if (mm != NULL && mm->state == META_NORMAL) {
      snprintf(q->note, sizeof q->note, "%s is a normal member already",
               q->name);
      q->empty = true;
    } else if (mm != NULL) {
      snprintf(text, cap, "%s is %s: its name is not reused", q->name,
               meta_member_state_name(mm->state));
      return CHORUS_EINVAL;
    } else if (meta_state_changing(s)) {
      core__meta_change_under_way(s, text, cap);
      return CHORUS_EBUSY;
    } else {
      cmd.type = META_CMD_JOIN;
      /* A member's id is the xxh3-64 of its name (chorusd --id), the
       * hash ring_token_of computes. */
      cmd.member.id = ring_token_of(q->name, strlen(q->name));
      snprintf(cmd.member.name, sizeof cmd.member.name, "%s", q->name);
      snprintf(cmd.member.dc, sizeof cmd.member.dc, "%.*s", (int)p->dc.len,
               (const char *)p->dc.ptr);
      snprintf(cmd.member.rack, sizeof cmd.member.rack, "%.*s",
               (int)p->rack.len, (const char *)p->rack.ptr);
      cmd.member.vnodes = p->vnodes;
      cmd.member.state = META_NORMAL; /* JOINING once others own tokens */
      apply = true;
    }
    break;
  case WIRE_PLAN_DECOMMISSION:
  case WIRE_PLAN_REMOVE: {
    bool dec = p->action == WIRE_PLAN_DECOMMISSION;
    if (mm == NULL) {
      snprintf(text, cap, "no member named %s", q->name);
      return CHORUS_ENOTFOUND;
    }
    if (mm->state == META_LEAVING) {
      snprintf(q->note, sizeof q->note,
               "%s is leaving: this is its change, under way", q->name);
      break;
    }
    if (mm->state != META_NORMAL && dec) {
      snprintf(text, cap,
               "%s is %s: only a normal member hands its ranges over", q->name,
               meta_member_state_name(mm->state));
      return CHORUS_EINVAL;
    }
    if (mm->state != META_NORMAL) {
      snprintf(q->note, sizeof q->note,
               "%s is %s: it is removed at once, nothing moves", q->name,
               meta_member_state_name(mm->state));
      q->empty = true;
      break;
    }
    if (meta_state_changing(s)) {
      core__meta_change_under_way(s, text, cap);
      return CHORUS_EBUSY;
    }
    if (core__meta_sole_owner(s, mm, text, cap))
      return CHORUS_EINVAL;
    uint32_t factor;
    size_t left;
    if (dec && core__meta_too_few_left(s, mm, &factor, &left))
      snprintf(q->note, sizeof q->note,
               "it would leave %zu normal members where the replication "
               "factor is %" PRIu32
               ": keys would have fewer replicas (the command refuses it "
               "without --force)",
               left, factor);
    if (!dec && core__swim_up(c, mm->id))
      snprintf(q->note, sizeof q->note,
               "%s is alive: cluster remove refuses it (--force removes it at "
               "once, without streaming); decommission it instead",
               q->name);
    cmd.type = META_CMD_LEAVE;
    cmd.id = mm->id;
    cmd.state = dec ? META_LEFT : META_REMOVED;
    apply = true;
    break;
  }
  default:
    snprintf(text, cap, "unknown plan action %u", (unsigned)p->action);
    return CHORUS_EINVAL;
  }
  int rc = meta_state_copy(s, out);
  if (rc != CHORUS_OK)
    return rc;
  if (apply &&
      (rc = meta_state_apply(out, &cmd, s->applied + 1)) != CHORUS_OK) {
    meta_state_free(out);
    snprintf(text, cap, "the metadata would refuse it: %s",
             chorus_strerror(rc));
    return rc;
  }
  return CHORUS_OK;
}

/* ========================================================================
 * The answer
 * ======================================================================== */

/* share_of: the fraction of the token space in (start, end]; start == end
 * is the whole ring (ring.h, struct ring_move). */
static double share_of(const struct ring_move *m) {
  if (m->start == m->end)
    return 1.0;
  return (double)(chorus_token)(m->end - m->start) / TWO64;
}

struct pair {
  chorus_node_id from, to;
  uint32_t ranges;
  double share;
  double keys, bytes; /* estimated, summed over the classes */
};

/* pairs: @mv summed per (from, to) over every replication class, in
 * first-seen order, each move's keys and bytes estimated with its class's
 * density in @b; at most WIRE_MAX_PLAN_MOVES (*@clipped says whether more
 * were dropped). A pair's share sums its classes' shares (each of the
 * token space of its class's keys). */
static int pairs(const struct ring_move *mv, size_t n, const struct basis *b,
                 struct pair **out, size_t *np, bool *clipped) {
  *out = NULL;
  *np = 0;
  *clipped = false;
  struct pair *ps = chorus_calloc(n ? n : 1, sizeof *ps);
  if (ps == NULL)
    return CHORUS_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    chorus_node_id from = mv[i].has_from ? mv[i].from : 0;
    size_t j = 0;
    while (j < k && !(ps[j].from == from && ps[j].to == mv[i].to))
      j++;
    if (j == k) {
      if (k == WIRE_MAX_PLAN_MOVES) {
        *clipped = true;
        continue;
      }
      ps[k++] = (struct pair){.from = from, .to = mv[i].to};
    }
    double keys, bytes, share = share_of(&mv[i]);
    density(b, mv[i].class_tag, &keys, &bytes);
    ps[j].ranges++;
    ps[j].share += share;
    ps[j].keys += keys * share;
    ps[j].bytes += bytes * share;
  }
  *out = ps;
  *np = k;
  return CHORUS_OK;
}

static uint32_t ppm(double f) {
  double v = f * 1e6 + 0.5;
  return v >= 1e6 ? 1000000u : v <= 0 ? 0u : (uint32_t)v;
}

static const char *name_of(const struct meta_state *s, chorus_node_id id) {
  const struct meta_member *m = id != 0 ? meta_state_find(s, id) : NULL;
  return m != NULL ? m->name : "";
}

int core__plan_client(struct core *c, const struct wire_msg *m,
                      uint64_t cookie) {
  const struct wire_cluster_plan *p = &m->cluster_plan;
  struct plan_req q = {0};
  char text[2 * META_NAME_MAX + 256];
  if (p->action != WIRE_PLAN_UNDER_WAY &&
      (p->name.len == 0 || p->name.len >= sizeof q.name))
    return core__refuse(c, cookie, CHORUS_EINVAL,
                        "a member name is 1..127 bytes");
  if (p->name.len > 0 && memchr(p->name.ptr, '\0', p->name.len) != NULL)
    return core__refuse(c, cookie, CHORUS_EINVAL,
                        "a member name has no NUL byte");
  if (p->name.len > 0)
    memcpy(q.name, p->name.ptr, p->name.len);
  struct meta_state w;
  int rc = would_be(c, p, &q, &w, text, sizeof text);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK)
    return core__refuse(c, cookie, rc, text);
  struct ring_move *mv = NULL;
  size_t nmv = 0, np = 0;
  struct pair *ps = NULL;
  struct wire_plan_move *wm = NULL;
  bool clipped = false;
  if (!q.empty &&
      (rc = meta_state_moves(&w, &mv, &nmv, NULL, NULL)) != CHORUS_OK) {
    meta_state_free(&w);
    if (rc == CHORUS_ENOMEM)
      return rc;
    snprintf(text, sizeof text, "no ring for that change: %s",
             chorus_strerror(rc));
    return core__refuse(c, cookie, rc, text);
  }
  struct basis b = basis(c);
  if ((rc = pairs(mv, nmv, &b, &ps, &np, &clipped)) != CHORUS_OK ||
      (wm = chorus_calloc(np ? np : 1, sizeof *wm)) == NULL) {
    rc = CHORUS_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < np; i++) {
    wm[i] =
        (struct wire_plan_move){.from = ps[i].from,
                                .to = ps[i].to,
                                .from_name = str_bytes(name_of(&w, ps[i].from)),
                                .to_name = str_bytes(name_of(&w, ps[i].to)),
                                .ranges = ps[i].ranges,
                                .share_ppm = ppm(ps[i].share),
                                .est_keys = (uint64_t)(ps[i].keys + 0.5),
                                .est_bytes = (uint64_t)(ps[i].bytes + 0.5)};
  }
  if (clipped)
    snprintf(q.note, sizeof q.note,
             "more than %u from -> to pairs: the rest "
             "are left out",
             WIRE_MAX_PLAN_MOVES);
  chorus_trace(c->cfg.tracer, "core",
               "plan (action %u, %s): %zu ranges in %zu pairs at epoch "
               "%" PRIu64,
               (unsigned)p->action, q.name[0] ? q.name : "-", nmv, np,
               meta_node_state(c->meta)->epoch);
  struct wire_msg r = {.type = WIRE_CLUSTER_PLAN_REPLY};
  r.cluster_plan_reply =
      (struct wire_cluster_plan_reply){.epoch = meta_node_state(c->meta)->epoch,
                                       .basis_keys = b.keys,
                                       .basis_bytes = b.bytes,
                                       .basis_ppm = ppm(b.fraction),
                                       .note = str_bytes(q.note),
                                       .nmoves = np,
                                       .moves = wm};
  rc = c->fx.reply(c->fx.ctx, cookie, &r, false);
out:
  chorus_free(wm);
  chorus_free(ps);
  chorus_free(mv);
  meta_state_free(&w);
  return rc;
}
