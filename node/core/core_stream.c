/* core_stream.c: the node core's side of a topology change (core.h,
 * STREAMING): which ranges this node gains, from whom it pulls them, at
 * what rate, where it is after a crash, and the STREAMED report once it
 * holds them all. replication/repl_stream.c serves and joins the batches.
 *
 * HOW IT WORKS
 *
 * The plan is the committed change's moves that come to this node
 * (meta_state_moves: ring_diff of the ring now and the ring once the
 * change completes), cut at the end of the token space, so that every
 * range is [first, last] with first <= last. Each range is pulled one
 * batch in flight at a time: STREAM_PULL(epoch, [pos, piece_last], after
 * cursor), the answer joined into the store (repl_stream_apply), and the
 * range's next pull goes out at once while a sync barrier runs for what
 * is joined so far (one at a time: batches taken meanwhile wait for the
 * next). STREAMED waits for the last barrier.
 *
 * LANES. Up to CORE_STREAM_PULLS ranges are pulled at once
 * (core_config.stream_pulls), each by a lane that takes the next range no
 * lane has taken once its own is held. One pull in flight in all waited a
 * round trip a pull, and a join gains hundreds of small ranges of one pull
 * each: a joiner 80-300 ms of round trip from its holders (change_sim's
 * "join 2 dcs") took 200 ms a range, 39 s for 191 ranges, longer than the
 * scenario allows a founding of six members one join at a time. The
 * holder serves each pull from its kept read with a seek of its own
 * (repl_stream.c), so pulls of one puller in flight together are
 * independent.
 *
 * CLASSES. A keyspace with a replication of its own (ring.h, replication
 * classes) places its keys on other nodes than the cluster's: the plan
 * holds the moves of every class (meta_state_moves tags each with its
 * class), a range pulls only its class's keys (STREAM_PULL's class_tag;
 * the holder reads past the others), its fallback replicas are its
 * class's, and STREAMED waits for every class's ranges. A keyspace's
 * class created during the change (same epoch, another placement) makes
 * a new plan.
 *
 * Progress: once a barrier passes, the cursor it stands for is written to
 * STORE_META ("stream/progress": [epoch BE][range index BE][pos BE]
 * [placement BE][cursor]): the lowest range a lane still works on, with that
 * lane's cursor (every range before it is held; later ones held already are
 * pulled again), so a crash of either side resumes from the last cursor
 * this node holds durably (joins are idempotent: a batch pulled twice
 * costs only time).
 *
 * Sources (Cassandra's consistent range movement): a range is pulled from
 * the node that gives it up (the move's @from). When that node is down
 * (a removal of a dead node, or a crash during a decommission) the range is
 * pulled piece by piece, each piece a span of the current ring with one
 * set of live replicas (consecutive spans of the ring with the same set
 * are one piece: span_end), from every live replica of that piece in
 * turn, and the fallback is counted and traced. A source behind this node's
 * epoch answers ESTALE and is asked again shortly (repl.h, STREAMING: it may
 * not yet forward new writes to us).
 *
 * EMPTY STRETCHES. A giver that finishes a range tells how far past it its
 * read held nothing (STREAM_CHUNK2's empty_to: repl_stream.c, THE EMPTY
 * STRETCH); a later range of the plan from the same giver that lies in
 * that stretch is held at once, without a pull. A founder joins an empty
 * cluster gaining ~3,000 ranges; each was a round trip for no key, and
 * across 50 ms of WAN the founders of the second datacenter took 26-29 s
 * each. Only ranges pulled from their giver whole use it (not the pieces
 * pulled from every live replica in turn: there the union counts).
 *
 * Throttle: after a batch of B bytes no lane pulls for B / rate more
 * (--stream-mbps, megabits per second as Cassandra's
 * stream_throughput_outbound; 0: no limit), whatever the lanes.
 *
 * Once every range is held, the node commits STREAMED(itself, epoch)
 * (retried until the state shows it); the leader then commits FINISH
 * (meta_node_props.c). A new epoch before that (a forced removal, another
 * replication) drops the plan and starts over with the new moves.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "core_int.h"

/* Streams are operator-visible events: traced where metadata is (chorusd
 * logs it at INFO), else with the core's tracer. */
#define TRACE(c, ...)                                                          \
  chorus_trace((c)->cfg.meta.tracer ? (c)->cfg.meta.tracer : (c)->cfg.tracer,  \
               "stream", __VA_ARGS__)

/* A pull unanswered this long is given up and sent again (to another
 * source if its own went down meanwhile). A batch is 1 MiB: well under a
 * second on any link a cluster runs on. */
#define PULL_TIMEOUT_MS 3000u
/* Waits before asking again: after a refusal, a lost pull, or while no
 * source is live; after a source behind our epoch. */
#define RETRY_MS 1000u
#define STALE_RETRY_MS 200u
/* One batch: what a pull asks for (the answer may hold one object more). */
#define BATCH_BYTES (1024u * 1024)

static const char PROGRESS_KEY[] = "stream/progress";
/* Its value: [epoch BE 8][range index BE 4][pos BE 8][placement BE 8]
 * [cursor]. The placement (meta_state_placement) names the keyspaces'
 * replication classes the plan was made with: a keyspace created during
 * the change makes another plan, whose range indexes are not these. */
#define PROGRESS_HEAD 28u

/* ========================================================================
 * The plan
 * ======================================================================== */

static void drop_plan(struct core__stream *s) {
  chorus_free(s->ranges);
  for (size_t i = 0; i < CORE_STREAM_PULLS; i++)
    chorus_free(s->lanes[i].after);
  chorus_free(s->st_after);
  chorus_free(s->d_after);
  ring_snapshot_free(s->ring_now);
  struct core_stream_stats keep = s->stats;
  uint64_t next_req = s->next_req;
  *s = (struct core__stream){.stats = keep, .next_req = next_req};
}

/* A range, and a span pulled from the live replicas as one piece
 * (span_end), holds at most 1/SPAN_SHARE of the ring's pieces: a crash
 * resumes a span from its start (request_sync), so a span of the whole
 * ring (a replaced disk in a 3-node cluster is one range of it:
 * meta_state.c, merge_self_moves) would pull everything again. 3 nodes of
 * 1,024 vnodes: 16 spans of 192 pieces, ~34 pulls for 20,000 keys where
 * one range a piece pulled 2,094 (and spans of 64 pieces 98). And the
 * lanes share out ranges, not the pieces of one: a replaced disk's plan
 * of two ranges (the whole ring, cut at the end of the token space) was
 * pulled by one lane, span after span, each from every live replica in
 * turn (change_sim "join 2 dcs" seed 57: 144 pulls across the WAN, 42 s
 * for 14 keys, and the founding did not finish within 60 s of the heal);
 * cut into ranges of 1/SPAN_SHARE of the ring, every lane pulls. */
#define SPAN_SHARE 16

static int add_one(struct core__stream *s, chorus_token first,
                   chorus_token last, const struct ring_move *m, unsigned cls) {
  struct core__range *g = chorus_grow(s->ranges, &s->cap, s->n, sizeof *g, 16);
  if (g == NULL)
    return CHORUS_ENOMEM;
  s->ranges = g;
  s->ranges[s->n++] = (struct core__range){.first = first,
                                           .last = last,
                                           .from = m->from,
                                           .class_tag = m->class_tag,
                                           .cls = (uint8_t)cls,
                                           .has_from = m->has_from};
  return CHORUS_OK;
}

/* class_ring: the snapshot of @g's class in the plan's ring (its
 * replicas: ring.h, replication classes). */
static const struct ring_snapshot *class_ring(const struct core__stream *s,
                                              const struct core__range *g) {
  return ring_snapshot_class(s->ring_now, g->cls);
}

/* add_range: [first, last] of move @m, cut into ranges of at most
 * (count / SPAN_SHARE + 1) pieces of the change's ring (SPAN_SHARE says
 * why). Most ranges of a join or a decommission are a piece or a few
 * (ring_diff merges adjacent ones with the same giver) and are not cut;
 * a replaced disk's merged ones are, and a small cluster's. */
static int add_range(struct core__stream *s, chorus_token first,
                     chorus_token last, const struct ring_move *m,
                     unsigned cls) {
  const struct ring_snapshot *ring = ring_snapshot_class(s->ring_now, cls);
  size_t owner, nt = ring_snapshot_token_count(ring);
  size_t most = nt / SPAN_SHARE + 1;
  for (size_t i = ring_snapshot_token_index(ring, first) + most - 1; i < nt;
       i += most) {
    chorus_token t = ring_snapshot_token(ring, i, &owner);
    if (t >= last)
      break;
    int rc = add_one(s, first, t, m, cls);
    if (rc != CHORUS_OK)
      return rc;
    first = t + 1;
  }
  return add_one(s, first, last, m, cls);
}

/* lane_take: @l (no pull in flight) takes the next range no lane has
 * taken, from its first token; none left, it goes idle. */
static void lane_take(struct core__stream *s, struct core__lane *l) {
  chorus_free(l->after);
  *l = (struct core__lane){.idx = s->n};
  if (s->next_range < s->n) {
    l->active = true;
    l->idx = s->next_range++;
    l->pos = s->ranges[l->idx].first;
  }
}

/* lane_done: @l's range is held whole; on to the next one. */
static void lane_done(struct core__stream *s, struct core__lane *l) {
  if (!s->ranges[l->idx].held) {
    s->ranges[l->idx].held = true;
    s->nheld++;
  }
  lane_take(s, l);
}

static bool all_held(const struct core__stream *s) {
  return s->nheld == s->n;
}

/* lane_of: the index of the lane whose pull @req is (from @from), or
 * -1. */
static int lane_of(const struct core__stream *s, uint64_t req,
                   chorus_node_id from) {
  for (uint8_t i = 0; i < s->nlanes; i++)
    if (s->lanes[i].req != 0 && s->lanes[i].req == req &&
        s->lanes[i].source == from)
      return i;
  return -1;
}

/* load_progress: where a plan for @epoch stood when this node last held a
 * batch durably (a previous run): every range before the first lane's
 * held, that lane from the cursor saved; nothing when it was another
 * epoch. The lanes have taken no range yet. */
static void load_progress(struct core *c, struct core__stream *s) {
  void *v = NULL;
  size_t len = 0;
  if (store_get(c->store, STORE_META, PROGRESS_KEY, sizeof PROGRESS_KEY - 1, &v,
                &len) != CHORUS_OK)
    return;
  const unsigned char *p = v;
  if (len >= PROGRESS_HEAD && store_be64_get(p) == s->epoch &&
      store_be64_get(p + 20) == s->placement) {
    uint32_t idx = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 |
                   (uint32_t)p[10] << 8 | p[11];
    chorus_token pos = store_be64_get(p + 12);
    size_t alen = len - PROGRESS_HEAD;
    p += PROGRESS_HEAD - 20; /* the cursor at p + 20, as it was */
    if (idx <= s->n &&
        (idx == s->n ||
         (pos >= s->ranges[idx].first && pos <= s->ranges[idx].last)) &&
        (alen == 0 ||
         (alen >= STORE_TOKEN_PREFIX && store_be64_get(p + 20) >= pos))) {
      for (size_t i = 0; i < idx; i++)
        s->ranges[i].held = true;
      s->nheld = s->next_range = idx;
      lane_take(s, &s->lanes[0]);
      struct core__lane *l = &s->lanes[0];
      if (l->active) {
        l->pos = pos;
        if (alen > 0 && (l->after = chorus_memdup(p + 20, alen)) != NULL)
          l->alen = alen;
      }
      s->stats.resumed++;
      TRACE(c,
            "resuming the streams of epoch %" PRIu64 " at range %" PRIu32
            " of %zu",
            s->epoch, idx, s->n);
    }
  }
  chorus_free(v);
}

static int plan(struct core *c, const struct meta_state *ms) {
  struct core__stream *s = &c->stream;
  drop_plan(s);
  struct ring_move *mv = NULL;
  size_t nmv = 0;
  struct ring_snapshot *now = NULL;
  int rc = meta_state_moves(ms, &mv, &nmv, &now, NULL);
  if (rc != CHORUS_OK)
    return rc == CHORUS_ENOMEM ? rc : CHORUS_OK; /* no ring: nothing */
  s->epoch = ms->epoch;
  s->placement = meta_state_placement(ms);
  s->ring_now = now;
  for (size_t i = 0; i < nmv && rc == CHORUS_OK; i++) {
    const struct ring_move *m = &mv[i];
    /* Every class's moves (meta_state_moves tags them): a keyspace with a
     * replication of its own gains this node other ranges than the
     * cluster's, and STREAMED waits for all of them. */
    int cls = now != NULL ? ring_snapshot_class_find(now, m->class_tag) : -1;
    if (m->to != c->cfg.swim.id || !m->has_from || cls < 0)
      continue;
    /* (start, end], wrapping when start >= end (start == end: all). */
    if (m->start < m->end) {
      rc = add_range(s, m->start + 1, m->end, m, (unsigned)cls);
    } else {
      if (m->start != UINT64_MAX)
        rc = add_range(s, m->start + 1, UINT64_MAX, m, (unsigned)cls);
      if (rc == CHORUS_OK)
        rc = add_range(s, 0, m->end, m, (unsigned)cls);
    }
  }
  chorus_free(mv);
  if (rc != CHORUS_OK)
    return rc;
  s->planned = true;
  s->nlanes =
      c->cfg.stream_pulls == 0 || c->cfg.stream_pulls > CORE_STREAM_PULLS
          ? (uint8_t)CORE_STREAM_PULLS
          : c->cfg.stream_pulls;
  s->started_at = c->now;
  load_progress(c, s);
  for (uint8_t i = 0; i < s->nlanes; i++)
    if (!s->lanes[i].active)
      lane_take(s, &s->lanes[i]);
  TRACE(c, "epoch %" PRIu64 ": this node gains %zu ranges", s->epoch, s->n);
  return CHORUS_OK;
}

/* ========================================================================
 * Pulling
 * ======================================================================== */

/* piece_end: the last token of the span of @ring that holds @pos (its
 * successor token: every token in (predecessor, successor] has the same
 * replicas). */
static chorus_token piece_end(const struct ring_snapshot *ring,
                              chorus_token pos) {
  size_t i = ring_snapshot_token_index(ring, pos), owner;
  return i < ring_snapshot_token_count(ring)
             ? ring_snapshot_token(ring, i, &owner)
             : UINT64_MAX;
}

/* candidates: the natural replicas of the piece of @ring holding @t but
 * this node and @from (the node giving the range up), in ring order, into
 * @cand (RING_MAX_REPLICAS); their count (0 also when the piece has no
 * natural replica: its only one replaces its disk), or -1 when the lookup
 * fails. */
static int candidates(const struct core *c, const struct ring_snapshot *ring,
                      chorus_token t, chorus_node_id from,
                      chorus_node_id *cand) {
  struct ring_plist pl;
  int rc = ring_lookup(ring, t, 0, &pl);
  if (rc == CHORUS_EUNAVAILABLE)
    return 0; /* no natural replica: its only one is replacing its disk */
  if (rc != CHORUS_OK)
    return -1;
  int n = 0;
  for (uint8_t i = 0; i < pl.n_natural && n < (int)RING_MAX_REPLICAS; i++)
    if (pl.r[i].id != c->cfg.swim.id && pl.r[i].id != from)
      cand[n++] = pl.r[i].id;
  return n;
}

static bool same_set(const chorus_node_id *a, int na, const chorus_node_id *b,
                     int nb) {
  if (na != nb)
    return false;
  for (int i = 0; i < na; i++) {
    bool found = false;
    for (int j = 0; j < nb && !found; j++)
      found = a[i] == b[j];
    if (!found)
      return false;
  }
  return true;
}

/* span_end: the last token of the span pulled as one piece from @first,
 * at most @last: the ring's pieces that follow one another from @first
 * whose candidates (above) are the same set as @first's, @ncand of them
 * in @cand. Asking each candidate once for the whole span takes every
 * live replica's data for every piece in it, as asking it piece by piece
 * did; in a small cluster a range spans several pieces with the same
 * replicas (5 nodes, 1,024 vnodes, a dead one removed: ~4 a range), and
 * each pull costs a round trip and, on the holder, a barrier, mostly for
 * no key at all. At most 1/SPAN_SHARE of the ring's pieces (above). */
static chorus_token span_end(const struct core *c,
                             const struct ring_snapshot *ring,
                             chorus_token first, chorus_token last,
                             chorus_node_id from, const chorus_node_id *cand,
                             int ncand) {
  chorus_token end = piece_end(ring, first);
  size_t most = ring_snapshot_token_count(ring) / SPAN_SHARE + 1;
  for (size_t pieces = 1; end < last && pieces < most; pieces++) {
    chorus_node_id next[RING_MAX_REPLICAS];
    int nn = candidates(c, ring, end + 1, from, next);
    if (nn < 0 || !same_set(cand, ncand, next, nn))
      break;
    end = piece_end(ring, end + 1);
  }
  return end < last ? end : last;
}

/* next_piece: @l's current piece is held; on to the next one (of its
 * range, or the next range). */
static void next_piece(struct core__stream *s, struct core__lane *l) {
  const struct core__range *g = &s->ranges[l->idx];
  if (l->piece_last >= g->last) {
    lane_done(s, l);
    return;
  }
  l->pos = l->piece_last + 1;
  chorus_free(l->after);
  l->after = NULL;
  l->alen = 0;
  l->in_piece = l->piece_ok = false;
  l->round = 0;
}

/* source_of: whom @l pulls its range from, and up to which token (0:
 * nobody now, or the piece is done and *@again says so). */
/* giver_serves: whether @g is pulled from the node that gives it up (else
 * piece by piece from every live replica). A member being removed is
 * presumed lost even when it answers again (it may have come back with an
 * old disk): its ranges come from the other replicas, as Cassandra's
 * removenode. A replacing member's moves come from itself: its lost
 * disk. */
static bool giver_serves(const struct core *c, const struct core__range *g) {
  const struct core__stream *s = &c->stream;
  const struct meta_member *fm =
      meta_state_find(meta_node_state(c->meta), g->from);
  bool removed =
      (fm != NULL && fm->state == META_LEAVING && fm->goal == META_REMOVED) ||
      (s->lost_from != 0 && s->lost_from == g->from);
  return g->has_from && !removed && g->from != c->cfg.swim.id &&
         core__swim_up(c, g->from);
}

/* giver_lost: whether @g's giver lost its data for good: this node
 * itself (a replacing member's moves), or a member being removed. */
static bool giver_lost(const struct core *c, const struct core__range *g) {
  const struct meta_member *fm =
      meta_state_find(meta_node_state(c->meta), g->from);
  return g->from == c->cfg.swim.id ||
         (fm != NULL && fm->state == META_LEAVING && fm->goal == META_REMOVED);
}

/* gap_note: @from's read held nothing in (@after, @to]. */
static void gap_note(struct core__stream *s, chorus_node_id from,
                     chorus_token after, chorus_token to) {
  if (to <= after)
    return;
  struct core__gap *slot = NULL;
  for (uint8_t i = 0; i < s->ngaps && slot == NULL; i++)
    if (s->gaps[i].from == from)
      slot = &s->gaps[i];
  if (slot == NULL && s->ngaps < CORE_STREAM_GAPS)
    slot = &s->gaps[s->ngaps++];
  if (slot == NULL) {
    slot = &s->gaps[s->gap_next];
    s->gap_next = (uint8_t)((s->gap_next + 1) % CORE_STREAM_GAPS);
  }
  *slot = (struct core__gap){from, after, to};
}

/* in_gap: whether what is left of @l's range lies in an empty stretch of
 * its giver (from its start: a lane with a cursor has pulled some). */
static bool in_gap(const struct core *c, const struct core__lane *l) {
  const struct core__stream *s = &c->stream;
  const struct core__range *g = &s->ranges[l->idx];
  if (c->cfg.stream_pull_empty || l->alen > 0 || l->fallback ||
      !giver_serves(c, g))
    return false;
  for (uint8_t i = 0; i < s->ngaps; i++) {
    const struct core__gap *e = &s->gaps[i];
    if (e->from == g->from && e->after < l->pos && g->last <= e->to)
      return true;
  }
  return false;
}

static chorus_node_id source_of(struct core *c, struct core__lane *l,
                                chorus_token *last, bool *again) {
  struct core__stream *s = &c->stream;
  const struct core__range *g = &s->ranges[l->idx];
  *last = g->last;
  *again = false;
  if (giver_serves(c, g)) {
    l->fallback = l->in_piece = l->piece_ok = false;
    l->round = 0;
    return g->from;
  }
  /* The node giving it up is down or lost: the piece (a span of the
   * current ring with one replica set) is pulled from every live replica
   * of it in turn, so that a write acknowledged by some of them only is
   * not missed (they are joined: pulling a key twice costs only time). */
  if (!l->fallback || !l->in_piece) {
    l->fallback = l->in_piece = true;
    l->piece_ok = false;
    l->round = 0;
    l->piece_first = l->pos;
  }
  chorus_node_id *cand = l->cand;
  const struct ring_snapshot *ring = class_ring(s, g);
  int nc = candidates(c, ring, l->piece_first, g->from, cand);
  if (nc < 0)
    return 0;
  uint8_t ncand = (uint8_t)nc;
  l->ncand = ncand;
  *last = span_end(c, ring, l->piece_first, *last, g->from, cand, nc);
  if (nc == 0 && giver_lost(c, g)) {
    /* No other replica of the piece in its class, and its giver lost its
     * data (this node's own replaced disk, or a member removed): nothing
     * anywhere holds it. A keyspace replicated once (N=1) loses its keys
     * so by design; waiting would keep the change from ever finishing
     * (change_sim "join 3->5" with such a keyspace, seed 78: n3 replaced
     * its own disk and waited for ever). */
    s->stats.fallbacks++;
    TRACE(c,
          "WARNING: range %zu: no replica of its class holds it but "
          "%016" PRIx64 ", which lost its data: held as it is",
          l->idx, g->from);
    l->piece_last = *last;
    next_piece(s, l);
    *again = true;
    return 0;
  }
  for (; l->round < ncand; l->round++) {
    if (!core__swim_up(c, cand[l->round]))
      continue;
    if (l->warned_idx != l->idx + 1) {
      l->warned_idx = l->idx + 1;
      s->stats.fallbacks++;
      TRACE(c,
            "WARNING: %016" PRIx64
            " gives up range %zu but is down or being removed: "
            "pulling it from %016" PRIx64 " and the other live replicas",
            g->from, l->idx, cand[l->round]);
    }
    return cand[l->round];
  }
  /* Every replica asked: done when one of them served the piece whole,
   * else wait for one to come back and start over. */
  l->piece_last = *last;
  if (l->piece_ok) {
    next_piece(s, l);
    *again = true;
  } else {
    /* Nobody else to ask: the giver again, once it serves (a refusal
     * may have been a restart's, not a lost disk's). */
    s->lost_from = 0;
    l->round = 0;
    l->pos = l->piece_first;
    chorus_free(l->after);
    l->after = NULL;
    l->alen = 0;
  }
  return 0;
}

static int pull(struct core *c, struct core__lane *l) {
  struct core__stream *s = &c->stream;
  while (l->active && in_gap(c, l)) {
    s->stats.skipped++;
    lane_done(s, l);
  }
  if (!l->active)
    return CHORUS_OK;
  chorus_token last;
  bool again;
  chorus_node_id from = source_of(c, l, &last, &again);
  if (from == 0 && again) {
    l->next_at = c->now; /* the next piece, or the next range */
    s->poked = true;
    return CHORUS_OK;
  }
  if (from == 0) {
    if (!l->no_source_said) {
      l->no_source_said = true;
      TRACE(c, "range %zu: no live replica to pull it from; waiting", l->idx);
    }
    l->next_at = c->now + RETRY_MS;
    return CHORUS_OK;
  }
  l->no_source_said = false;
  struct wire_msg m = {.type = WIRE_STREAM_PULL,
                       .request_id = CORE_STREAM_BIT | ++s->next_req};
  m.stream_pull.epoch = s->epoch;
  m.stream_pull.first = l->pos;
  m.stream_pull.last = last;
  m.stream_pull.after = (struct wire_bytes){l->after, l->alen};
  m.stream_pull.max_bytes = BATCH_BYTES;
  m.stream_pull.class_tag = s->ranges[l->idx].class_tag;
  m.stream_pull.class_map = ring_snapshot_class_map(s->ring_now);
  l->req = m.request_id;
  l->source = from;
  l->piece_last = last;
  l->deadline = c->now + PULL_TIMEOUT_MS;
  return c->fx.send(c->fx.ctx, from, &m);
}

/* report: STREAMED(this node, epoch), once every range is held. */
static int report(struct core *c) {
  struct core__stream *s = &c->stream;
  s->reporting = true;
  struct meta_cmd cmd = {
      .type = META_CMD_STREAMED, .id = c->cfg.swim.id, .epoch = s->epoch};
  TRACE(c,
        "epoch %" PRIu64 ": every range held (%" PRIu64 " keys, %" PRIu64
        " bytes): reporting",
        s->epoch, s->stats.keys, s->stats.bytes);
  return meta_node_propose(c->meta, &cmd, CORE_STREAM_COOKIE, 10000, c->now);
}

/* ========================================================================
 * Cleanup: once a change has finished (no change under way for the grace
 * period), this node deletes what it no longer owns, a batch per step
 * (replication/repl.h, CLEANUP). A change that begins stops the scan; the
 * next epoch's scan starts over.
 * ======================================================================== */

#define CLEANUP_BATCH 1000u  /* keys looked at per step */
#define CLEANUP_PAUSE_MS 20u /* between steps: at most 50,000 keys/s */
#define CLEANUP_GRACE_MS 10000u
#define CLEANUP_AGAIN_MS 5000u /* a scan after one that kept copies */
#define CLEANUP_AGAIN_MAX_MS 600000u

static int cleanup_step(struct core *c, const struct meta_state *ms) {
  struct core__stream *s = &c->stream;
  if (c->ring == NULL || ring_snapshot_version(c->ring) != ms->epoch)
    return CHORUS_OK;
  if (s->cleaned_epoch == ms->epoch) {
    /* Done for this epoch; again when a copy was kept for a hint or
     * written by a coordinator behind the epoch (repl_cleanup_wanted). */
    if (!repl_cleanup_wanted(c->repl))
      return CHORUS_OK;
    s->cleaned_epoch = 0;
    s->cleanup_epoch = ms->epoch;
    /* Doubling while copies keep being kept (a hint for a node down for
     * long): a scan is the whole store, at a bounded rate. */
    s->cleanup_again = s->cleanup_again == 0 ? CLEANUP_AGAIN_MS
                       : s->cleanup_again >= CLEANUP_AGAIN_MAX_MS
                           ? CLEANUP_AGAIN_MAX_MS
                           : 2 * s->cleanup_again;
    s->cleanup_at = c->now + s->cleanup_again;
    return CHORUS_OK;
  }
  if (s->cleanup_epoch != ms->epoch) {
    s->cleanup_epoch = ms->epoch;
    s->cleanup_at = c->now + (c->cfg.cleanup_grace_ms ? c->cfg.cleanup_grace_ms
                                                      : CLEANUP_GRACE_MS);
    s->cleaning = false;
    return CHORUS_OK;
  }
  if (c->now < s->cleanup_at)
    return CHORUS_OK;
  if (!s->cleaning) {
    repl_cleanup_begin(c->repl);
    s->cleaning = true;
    s->cleanup_deleted_at_begin = repl_stats(c->repl)->cleanup_deleted;
  }
  bool done;
  int rc = repl_cleanup_step(c->repl, CLEANUP_BATCH, c->now, &done);
  if (done) {
    s->cleaned_epoch = ms->epoch;
    s->cleaning = false;
    s->stats.cleanups++;
    uint64_t deleted =
        repl_stats(c->repl)->cleanup_deleted - s->cleanup_deleted_at_begin;
    if (deleted > 0) {
      /* The objects of the ranges given away: anywhere on the ring. */
      int rrc = store_reclaim(c->store, 0, UINT64_MAX);
      TRACE(c,
            "cleanup: %" PRIu64 " objects deleted: the store reclaims "
            "their space (%s)",
            deleted, rrc == CHORUS_OK ? "asked" : store_errmsg(c->store));
    }
    if (!repl_cleanup_wanted(c->repl))
      s->cleanup_again = 0;
  } else {
    s->cleanup_at = c->now + CLEANUP_PAUSE_MS;
  }
  return rc;
}

/* cleanup_deadline: when cleanup_step has work (CORE_NEVER: none). */
static chorus_ms cleanup_deadline(const struct core *c) {
  const struct core__stream *s = &c->stream;
  if (c->meta == NULL || c->repl == NULL || c->leaving)
    return CORE_NEVER;
  const struct meta_state *ms = meta_node_state(c->meta);
  if (meta_state_changing(ms) || c->ring == NULL ||
      ring_snapshot_version(c->ring) != ms->epoch)
    return CORE_NEVER;
  if (s->cleaned_epoch == ms->epoch)
    return repl_cleanup_wanted(c->repl) ? c->now : CORE_NEVER;
  return s->cleanup_epoch != ms->epoch ? c->now : s->cleanup_at;
}

int core__stream_step(struct core *c) {
  struct core__stream *s = &c->stream;
  s->poked = false;
  s->idle = true; /* unless there is something to do or wait for below */
  if (c->meta == NULL || c->repl == NULL || c->leaving)
    return CHORUS_OK;
  const struct meta_state *ms = meta_node_state(c->meta);
  if (!meta_state_changing(ms)) {
    if (s->planned)
      drop_plan(s);
    return cleanup_step(c, ms);
  }
  /* A new epoch, or keyspaces' classes changed under the change (a
   * keyspace with a replication of its own created meanwhile): the moves
   * are others. */
  if (!s->planned || s->epoch != ms->epoch ||
      s->placement != meta_state_placement(ms)) {
    int rc = plan(c, ms);
    if (rc != CHORUS_OK || !s->planned)
      return rc;
  }
  const struct meta_member *me = meta_state_find(ms, c->cfg.swim.id);
  if (me == NULL || me->ready == s->epoch || s->reporting)
    return CHORUS_OK; /* a state change, an answer or a barrier pokes */
  if (s->n == 0 && me->state != META_JOINING && me->state != META_REPLACING)
    return CHORUS_OK; /* gains nothing, and no joiner: nothing to say */
  s->idle = false;
  int rc = CHORUS_OK;
  for (uint8_t i = 0; i < s->nlanes && rc == CHORUS_OK; i++) {
    struct core__lane *l = &s->lanes[i];
    if (!l->active)
      continue;
    if (l->req != 0) {
      if (c->now < l->deadline)
        continue;
      TRACE(c, "pull %016" PRIx64 " of %016" PRIx64 " unanswered: again",
            l->req, l->source);
      l->req = 0;
      s->stats.retries++;
    }
    if (c->now < l->next_at || c->now < s->throttle_at)
      continue;
    rc = pull(c, l);
  }
  if (rc != CHORUS_OK || !all_held(s))
    return rc;
  if (s->syncing || s->sync_again)
    return CHORUS_OK; /* the last batches' barrier pokes */
  if (c->now < s->throttle_at)
    return CHORUS_OK; /* the throttle, or a report or barrier that failed */
  return report(c);   /* FINISH waits for every receiver's and joiner's */
}

chorus_ms core__stream_deadline(const struct core *c) {
  const struct core__stream *s = &c->stream;
  if (s->poked)
    return c->now;
  if (!s->planned)
    return cleanup_deadline(c);
  if (s->idle || s->reporting || (all_held(s) && s->syncing))
    return CORE_NEVER;
  if (all_held(s))
    return s->throttle_at;
  chorus_ms at = CORE_NEVER;
  for (uint8_t i = 0; i < s->nlanes; i++) {
    const struct core__lane *l = &s->lanes[i];
    if (!l->active)
      continue;
    chorus_ms t = l->req != 0                   ? l->deadline
                  : l->next_at > s->throttle_at ? l->next_at
                                                : s->throttle_at;
    if (t < at)
      at = t;
  }
  return at;
}

/* ========================================================================
 * Answers
 * ======================================================================== */

/* adopt: the cursor after the batch just taken (staged by stage())
 * becomes the one @l's next pull starts from; a range held whole passes
 * @l on to the next one. */
static void adopt(struct core__stream *s, struct core__lane *l) {
  if (s->st_idx != l->idx) {
    s->st_alen = 0;
    lane_done(s, l);
    return;
  }
  l->pos = s->st_pos;
  l->round = s->st_round;
  l->piece_ok = s->st_piece_ok;
  uint8_t *old = l->after;
  l->after = s->st_alen > 0 ? s->st_after : NULL;
  l->alen = s->st_alen;
  s->st_after = s->st_alen > 0 ? old : s->st_after;
  if (s->st_alen == 0)
    chorus_free(old);
  s->st_alen = 0;
}

/* request_sync: a barrier for what the store holds now, with the cursor
 * to write once it passes: the lowest range a lane still works on, from
 * that lane's cursor (every range before it is held), or every range held
 * (a piece pulled from several replicas in turn resumes from its first
 * token and its first replica: the rounds are not written down). */
static int request_sync(struct core *c) {
  struct core__stream *s = &c->stream;
  const struct core__lane *low = NULL;
  for (uint8_t i = 0; i < s->nlanes; i++)
    if (s->lanes[i].active && (low == NULL || s->lanes[i].idx < low->idx))
      low = &s->lanes[i];
  s->d_alen = 0;
  if (low == NULL) {
    s->d_idx = s->n; /* no lane active: every range held */
    s->d_pos = 0;
  } else {
    bool whole = low->fallback && low->in_piece;
    s->d_idx = low->idx;
    s->d_pos = whole ? low->piece_first : low->pos;
    if (!whole && low->alen > 0) {
      uint8_t *a = chorus_realloc(s->d_after, low->alen);
      if (a == NULL)
        return CHORUS_ENOMEM;
      memcpy(a, low->after, low->alen);
      s->d_after = a;
      s->d_alen = low->alen;
    }
  }
  s->d_keys = s->pend_keys;
  s->d_bytes = s->pend_bytes;
  s->pend_keys = s->pend_bytes = 0;
  s->syncing = true;
  return c->fx.sync(c->fx.ctx, store_last_seq(c->store), CORE_STREAM_BIT);
}

bool core__stream_owns(const struct core *c, chorus_node_id from,
                       const struct wire_msg *m) {
  return (m->type == WIRE_STREAM_CHUNK || m->type == WIRE_STREAM_CHUNK2 ||
          m->type == WIRE_ERROR) &&
         lane_of(&c->stream, m->request_id, from) >= 0;
}

/* The cursor after a batch of @l's whose last key is @k (or the end of
 * the piece when nothing follows), for adopt(). */
static int stage(struct core__stream *s, const struct core__lane *l,
                 const struct wire_stream_chunk *ch) {
  size_t n = ch->entries.n;
  s->st_idx = l->idx;
  s->st_pos = l->pos;
  s->st_alen = 0;
  s->st_round = l->round;
  s->st_piece_ok = l->piece_ok;
  if (ch->more && n >= 2) {
    const struct wire_bytes *k = &ch->entries.items[n - 2];
    chorus_token t = ring_token_of(k->ptr, k->len);
    uint8_t *a = chorus_realloc(s->st_after, STORE_TOKEN_PREFIX + k->len);
    if (a == NULL)
      return CHORUS_ENOMEM;
    s->st_after = a;
    s->st_alen = store_data_key(a, t, k->ptr, k->len);
    s->st_pos = t;
    return CHORUS_OK;
  }
  if (ch->more) /* more, and yet nothing sent: the same pull again */
    return CHORUS_OK;
  /* The piece is done: from this source, when each live replica serves
   * it in turn (source_of); else wholly. */
  if (l->fallback) {
    s->st_pos = l->piece_first;
    s->st_round = (uint8_t)(l->round + 1);
    s->st_piece_ok = true;
    return CHORUS_OK;
  }
  const struct core__range *g = &s->ranges[l->idx];
  gap_note(s, l->source, l->piece_last, ch->empty_to);
  if (l->piece_last >= g->last)
    s->st_idx = l->idx + 1; /* held whole */
  else
    s->st_pos = l->piece_last + 1;
  return CHORUS_OK;
}

int core__stream_answer(struct core *c, chorus_node_id from,
                        const struct wire_msg *m) {
  struct core__stream *s = &c->stream;
  int li = lane_of(s, m->request_id, from);
  if (li < 0)
    return CHORUS_OK; /* core__stream_owns said otherwise */
  struct core__lane *l = &s->lanes[li];
  l->req = 0;
  s->poked = true;
  if (m->type == WIRE_ERROR) {
    bool stale = m->error.code == CHORUS_ESTALE;
    /* A giver that lost its data (a replaced disk: repl_set_restoring)
     * refuses: this range, and every later one it gives up (whichever
     * lane pulls it), comes from the other replicas, asked at once. */
    bool lost = m->error.code == CHORUS_EUNAVAILABLE && !l->fallback &&
                l->source == s->ranges[l->idx].from;
    if (lost)
      s->lost_from = l->source;
    /* ... and so is a replica asked in turn: the next one, from the
     * piece's start. */
    if (m->error.code == CHORUS_EUNAVAILABLE && l->fallback && l->in_piece) {
      l->round++;
      l->pos = l->piece_first;
      chorus_free(l->after);
      l->after = NULL;
      l->alen = 0;
      stale = true; /* asked again soon */
    }
    l->next_at = c->now + (lost ? 0 : stale ? STALE_RETRY_MS : RETRY_MS);
    s->stats.refused++;
    TRACE(c, "pull refused by %016" PRIx64 ": %s (%.*s)", l->source,
          chorus_errname(m->error.code), (int)m->error.text.len,
          (const char *)m->error.text.ptr);
    return CHORUS_OK;
  }
  char err[CHORUS_ERRMSG_SIZE] = "";
  uint64_t keys, bytes;
  const struct wire_bytes after = {l->after, l->alen};
  if (l->fallback && l->in_piece && l->round < l->ncand) {
    /* Each replica asked in turn: what it lacks, and what the ones asked
     * before lack, is hinted to them (repl_stream_repair). */
    const struct repl_stream_repair rep = {l->source, l->cand, l->round};
    uint64_t armed;
    int rc = repl_stream_repair(c->repl, &m->stream_chunk, l->pos,
                                l->piece_last, &after, &rep, c->wall, &armed);
    if (rc != CHORUS_OK)
      return rc;
    s->stats.repairs += armed;
  }
  int rc = repl_stream_apply(c->repl, &m->stream_chunk, l->pos, l->piece_last,
                             &after, &keys, &bytes, err);
  if (rc == CHORUS_ENOMEM)
    return rc;
  if (rc != CHORUS_OK) {
    if (rc == CHORUS_ECORRUPT || rc == CHORUS_EMALFORMED)
      s->stats.bad_batches++;
    TRACE(c, "batch from %016" PRIx64 " not taken: %s", l->source,
          err[0] ? err : chorus_strerror(rc));
    l->next_at = c->now + RETRY_MS;
    return CHORUS_OK; /* a failed store stops the node in core.c's finish */
  }
  if ((rc = stage(s, l, &m->stream_chunk)) != CHORUS_OK)
    return rc;
  s->stats.batches++;
  adopt(s, l);
  s->pend_keys += keys;
  s->pend_bytes += bytes;
  uint64_t rate = c->cfg.stream_mbps; /* megabits per second */
  l->next_at = c->now;
  if (rate > 0) /* bits / (bits per ms), for every lane */
    s->throttle_at = (s->throttle_at > c->now ? s->throttle_at : c->now) +
                     bytes * 8 / (rate * 1000);
  /* The next pull goes out now; the barrier runs meanwhile, and the
   * cursor is written once it passes (a crash pulls the batches since
   * the last written cursor again: joins are idempotent). */
  if (s->syncing) {
    s->sync_again = true;
    return CHORUS_OK;
  }
  return request_sync(c);
}

/* save_progress: the cursor of the barrier that passed (@d_*), now that
 * the batches before it are durable (an unsynced write: lost in a crash,
 * they are pulled again). */
static void save_progress(struct core *c) {
  struct core__stream *s = &c->stream;
  size_t len = PROGRESS_HEAD + s->d_alen;
  unsigned char *v = chorus_malloc(len);
  if (v == NULL)
    return; /* only progress: a restart pulls more again */
  store_be64_put(v, s->epoch);
  v[8] = (unsigned char)(s->d_idx >> 24);
  v[9] = (unsigned char)(s->d_idx >> 16);
  v[10] = (unsigned char)(s->d_idx >> 8);
  v[11] = (unsigned char)s->d_idx;
  store_be64_put(v + 12, s->d_pos);
  store_be64_put(v + 20, s->placement);
  if (s->d_alen > 0)
    memcpy(v + PROGRESS_HEAD, s->d_after, s->d_alen);
  int rc = store_put(c->store, STORE_META, PROGRESS_KEY,
                     sizeof PROGRESS_KEY - 1, v, len, NULL);
  if (rc != CHORUS_OK)
    TRACE(c, "progress not written: %s", chorus_errname(rc));
  chorus_free(v);
}

int core__stream_synced(struct core *c, int status) {
  struct core__stream *s = &c->stream;
  if (!s->syncing)
    return CHORUS_OK;
  s->syncing = false;
  s->poked = true;
  if (status != CHORUS_OK) {
    /* Not durable: a failed store stops the node (core.c's finish), which
     * resumes from the last cursor written. */
    s->throttle_at = c->now + RETRY_MS;
    return CHORUS_OK;
  }
  s->stats.keys += s->d_keys;
  s->stats.bytes += s->d_bytes;
  save_progress(c);
  if (!s->sync_again)
    return CHORUS_OK;
  s->sync_again = false;
  return request_sync(c);
}

void core__stream_reported(struct core *c, int status) {
  struct core__stream *s = &c->stream;
  s->reporting = false;
  s->poked = true;
  if (status != CHORUS_OK) {
    TRACE(c, "STREAMED not committed (%s): again", chorus_errname(status));
    s->throttle_at = c->now + RETRY_MS;
  }
}

void core__stream_free(struct core *c) {
  drop_plan(&c->stream);
}

/* ========================================================================
 * Observation
 * ======================================================================== */

void core_stream_info(const struct core *c, struct core_stream_info *out) {
  const struct core__stream *s = &c->stream;
  *out = (struct core_stream_info){.stats = s->stats};
  out->epoch = s->planned ? s->epoch : 0;
  out->ranges = s->n;
  out->ranges_done = s->nheld;
  out->started_at = s->started_at;
  out->active = s->planned && !all_held(s);
  if (!s->planned)
    return;
  out->elapsed_ms = c->now > s->started_at ? c->now - s->started_at : 0;
  /* Token counts as doubles: a range may span all 2^64 tokens. */
  double total = 0, held = 0;
  for (size_t i = 0; i < s->n; i++) {
    const struct core__range *g = &s->ranges[i];
    double len = (double)(g->last - g->first) + 1.0;
    total += len;
    if (g->held)
      held += len;
  }
  for (uint8_t i = 0; i < s->nlanes; i++) {
    const struct core__lane *l = &s->lanes[i];
    if (l->active && l->pos > s->ranges[l->idx].first)
      held += (double)(l->pos - s->ranges[l->idx].first);
  }
  out->done = total > 0 ? held / total : 1.0;
  if (out->done > 1.0)
    out->done = 1.0;
}
