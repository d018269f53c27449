/* swim.c: the SWIM + Lifeguard membership state machine (see swim.h). */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "chorus_alloc.h"
#include "chorus_search.h"
#include "swim.h"

/* Every this many probe periods, a member held dead is pinged too
 * (ping_dead). */
#define SWIM_DEAD_PROBE_EVERY 4u
/* PING-REQs this node relays at once (as an intermediary). */
#define SWIM_MAX_RELAYS 64u
/* Independent confirmations a suspicion remembers (k is at most this). */
#define SWIM_MAX_CONFIRM 8u
/* Plaintext room of a datagram: sealed, it stays strictly below
 * SWIM_PACKET_MAX. */
#define SWIM_PLAIN_MAX (SWIM_PACKET_MAX - 1 - SWIM_SEAL_OVERHEAD)

struct swim__mem {
  struct swim_member pub;
  /* suspicion (state SUSPECT) */
  chorus_ms susp_start, susp_deadline;
  uint32_t susp_k, susp_n;
  chorus_node_id confirmers[SWIM_MAX_CONFIRM + 1];
  uint32_t nconfirmers;
  /* clock filter: the last samples, the lowest-RTT one wins */
  int64_t off[SWIM_CLOCK_SAMPLES], rtt[SWIM_CLOCK_SAMPLES];
  uint32_t sample_pos;
  /* Our last probe of it was answered only through an intermediary: it
   * may not know us (it drops a stranger's PING), so the next PING we
   * send it carries our ALIVE. */
  int tell_self;
};

struct swim__bcast {
  struct swim_update u;
  uint32_t transmits;
};

struct swim__relay {
  int active;
  uint32_t my_seq, origin_seq;
  chorus_node_id origin, target;
  chorus_ms nack_at;
};

struct swim {
  struct swim_config cfg;
  struct chorus_prng prng;  /* probe order, intermediaries */
  struct chorus_prng nonce; /* AEAD nonces */
  struct chorus_prng dead;  /* ping_dead's picks: the probe order's stream
                               is left as it was */
  uint8_t keys[SWIM_MAX_KEYS][SWIM_KEY_BYTES];
  size_t nkeys;

  struct swim__mem *mem; /* sorted by id; self included */
  size_t n, cap;
  size_t nsuspect;

  chorus_node_id *order; /* probe order */
  size_t norder, order_cap, order_pos;

  struct swim__bcast *bq;
  size_t nbq, bq_cap;

  struct swim__relay relays[SWIM_MAX_RELAYS];

  int started, leaving;
  int accused;      /* the packet being handled accused this node */
  uint32_t periods; /* probe periods begun */
  /* A join under way (swim_join): the seeds, asked again with a doubling
   * delay until a push/pull answer arrives. */
  char join_seeds[SWIM_MAX_SEEDS][SWIM_ADDR_MAX];
  size_t njoin;
  chorus_ms join_retry_at, join_delay;
  uint32_t lhm, seq;
  chorus_ms next_probe, next_pushpull, next_gossip;
  struct {
    int active, acked, indirect_sent;
    chorus_node_id target;
    uint32_t seq, expected_nacks, nacks;
    int64_t t1;
    chorus_ms timeout_at, end_at;
  } probe;

  uint64_t epoch;
  struct swim_stats stats;
  char errmsg[CHORUS_ERRMSG_SIZE];
};

#define TRACE(s, ...) chorus_trace((s)->cfg.tracer, "swim", __VA_ARGS__)

const char *swim_state_name(enum swim_state st) {
  switch (st) {
  case SWIM_ALIVE:
    return "alive";
  case SWIM_SUSPECT:
    return "suspect";
  case SWIM_DEAD:
    return "dead";
  case SWIM_LEFT:
    return "left";
  case SWIM_REMOVED:
    return "removed";
  }
  return "?";
}

void swim_timing_lan(struct swim_timing *t) {
  *t = (struct swim_timing){.probe_interval = 1000,
                            .probe_timeout = 500,
                            .indirect = 3,
                            .suspicion_mult = 4,
                            .suspicion_max_mult = 6,
                            .retransmit_mult = 4,
                            .max_lhm = 8,
                            .pushpull_interval = 30000,
                            .gossip_interval = 200,
                            .gossip_nodes = 3,
                            .gossip_to_dead = 30000};
}

void swim_timing_local(struct swim_timing *t) {
  *t = (struct swim_timing){.probe_interval = 200,
                            .probe_timeout = 100,
                            .indirect = 3,
                            .suspicion_mult = 3,
                            .suspicion_max_mult = 6,
                            .retransmit_mult = 2,
                            .max_lhm = 8,
                            .pushpull_interval = 15000,
                            .gossip_interval = 100,
                            .gossip_nodes = 3,
                            .gossip_to_dead = 15000};
}

/* ========================================================================
 * The member table
 * ======================================================================== */

/* The index of member @id in the table, or -1. */
static long find_index(const struct swim *s, chorus_node_id id) {
  size_t i = chorus_id_lower_bound(s->mem, s->n, sizeof s->mem[0],
                                   offsetof(struct swim__mem, pub.id), id);
  return (i < s->n && s->mem[i].pub.id == id) ? (long)i : -1;
}

static struct swim__mem *find(struct swim *s, chorus_node_id id) {
  long i = find_index(s, id);
  return i < 0 ? NULL : &s->mem[i];
}

/* This node's own entry: always present (swim_new adds it, nothing
 * removes it). */
static struct swim__mem *self(struct swim *s) {
  long i = find_index(s, s->cfg.id);
  assert(i >= 0);
  return &s->mem[i < 0 ? 0 : i];
}

static int meta_valid(const struct swim_meta *m) {
  return memchr(m->addr, 0, sizeof m->addr) != NULL &&
         memchr(m->dc, 0, sizeof m->dc) != NULL &&
         memchr(m->rack, 0, sizeof m->rack) != NULL &&
         m->vnodes <= RING_MAX_VNODES && (unsigned)m->ownership <= RING_LEFT;
}

static int meta_equal(const struct swim_meta *a, const struct swim_meta *b) {
  return strcmp(a->addr, b->addr) == 0 && strcmp(a->dc, b->dc) == 0 &&
         strcmp(a->rack, b->rack) == 0 && a->vnodes == b->vnodes &&
         a->ownership == b->ownership;
}

/* Members that count for n in the formulas: alive or suspect. */
static size_t live_count(const struct swim *s) {
  size_t c = 0;
  for (size_t i = 0; i < s->n; i++)
    if (s->mem[i].pub.state <= SWIM_SUSPECT)
      c++;
  return c;
}

/* Inserts a new member (sorted), and into the probe order at a random place
 * (memberlist does the same, so a newcomer is probed as soon as anyone). */
static struct swim__mem *add_member(struct swim *s, chorus_node_id id,
                                    const struct swim_meta *meta, uint32_t inc,
                                    chorus_ms now) {
  if (s->n == s->cap) {
    size_t ncap = s->cap ? s->cap * 2 : 16;
    struct swim__mem *m = chorus_realloc(s->mem, ncap * sizeof *m);
    if (m == NULL)
      return NULL;
    s->mem = m;
    s->cap = ncap;
  }
  if (s->norder == s->order_cap) {
    size_t ncap = s->order_cap ? s->order_cap * 2 : 16;
    chorus_node_id *o = chorus_realloc(s->order, ncap * sizeof *o);
    if (o == NULL)
      return NULL;
    s->order = o;
    s->order_cap = ncap;
  }
  size_t pos = 0, hi = s->n;
  while (pos < hi) {
    size_t mid = pos + (hi - pos) / 2;
    if (s->mem[mid].pub.id < id)
      pos = mid + 1;
    else
      hi = mid;
  }
  memmove(&s->mem[pos + 1], &s->mem[pos], (s->n - pos) * sizeof *s->mem);
  s->n++;
  struct swim__mem *m = &s->mem[pos];
  memset(m, 0, sizeof *m);
  m->pub.id = id;
  m->pub.meta = *meta;
  m->pub.incarnation = inc;
  m->pub.state = SWIM_ALIVE;
  m->pub.state_since = now;
  if (id != s->cfg.id) {
    size_t at = (size_t)chorus_prng_below(&s->prng, s->norder + 1);
    memmove(&s->order[at + 1], &s->order[at],
            (s->norder - at) * sizeof *s->order);
    s->order[at] = id;
    s->norder++;
    if (at < s->order_pos)
      s->order_pos++;
  }
  return m;
}

static void notify(struct swim *s, const struct swim__mem *m,
                   enum swim_state old, int is_new, int ring_changed) {
  s->epoch++;
  if (s->cfg.fx.member_changed)
    s->cfg.fx.member_changed(s->cfg.fx.ctx, &m->pub, old, is_new, ring_changed);
}

static void set_state(struct swim *s, struct swim__mem *m, enum swim_state st,
                      chorus_ms now) {
  if (m->pub.state == SWIM_SUSPECT && s->nsuspect > 0)
    s->nsuspect--;
  if (st == SWIM_SUSPECT)
    s->nsuspect++;
  m->pub.state = st;
  m->pub.state_since = now;
}

/* ========================================================================
 * Dissemination: the broadcast queue (SWIM §4.1, memberlist's
 * TransmitLimitedQueue)
 * ======================================================================== */

static uint32_t retransmit_limit(const struct swim *s) {
  double n = (double)live_count(s);
  uint32_t scale = (uint32_t)ceil(log10(n + 1.0));
  return s->cfg.timing.retransmit_mult * (scale ? scale : 1);
}

/* Queues @u, replacing any queued update about the same member: only the
 * newest word on a member is worth repeating. */
static int broadcast(struct swim *s, const struct swim_update *u) {
  for (size_t i = 0; i < s->nbq; i++) {
    if (s->bq[i].u.id == u->id) {
      s->bq[i].u = *u;
      s->bq[i].transmits = 0;
      return CHORUS_OK;
    }
  }
  if (s->nbq == s->bq_cap) {
    size_t ncap = s->bq_cap ? s->bq_cap * 2 : 16;
    struct swim__bcast *b = chorus_realloc(s->bq, ncap * sizeof *b);
    if (b == NULL)
      return CHORUS_ENOMEM;
    s->bq = b;
    s->bq_cap = ncap;
  }
  s->bq[s->nbq].u = *u;
  s->bq[s->nbq].transmits = 0;
  s->nbq++;
  return CHORUS_OK;
}

static int bcast_cmp(const void *a, const void *b) {
  const struct swim__bcast *x = a, *y = b;
  if (x->transmits != y->transmits)
    return x->transmits < y->transmits ? -1 : 1;
  return x->u.id < y->u.id ? -1 : (x->u.id > y->u.id);
}

static void alive_update(const struct swim__mem *m, struct swim_update *u) {
  memset(u, 0, sizeof *u);
  u->kind = SWIM_UPD_ALIVE;
  u->id = m->pub.id;
  u->incarnation = m->pub.incarnation;
  u->meta = m->pub.meta;
}

/* ========================================================================
 * Sending
 * ======================================================================== */

static void seal_and_send(struct swim *s, const char *addr,
                          enum swim_channel ch, const uint8_t *plain,
                          size_t plen, uint8_t *out) {
  /* The nonce comes from a PRNG, not from the OS: XChaCha20-Poly1305 needs
   * nonces that never repeat under one key, not secret or unpredictable
   * ones. 192 random bits make a repeat negligible (birthday bound ~2^96
   * packets), and the driver seeds every instance independently (node/
   * from randombytes_buf), so two nodes or two incarnations of one node do
   * not share a stream. The generator is separate from the protocol's, so
   * nonces seen on the wire say nothing about probe order. */
  uint8_t nonce[24];
  for (int i = 0; i < 3; i++) {
    uint64_t r = chorus_prng_next(&s->nonce);
    memcpy(nonce + 8 * i, &r, 8);
  }
  size_t len = swim_seal(s->keys[0], nonce, s->cfg.cluster, plain, plen, out);
  s->stats.sent++;
  s->stats.bytes_sent += len;
  if (s->cfg.fx.send)
    s->cfg.fx.send(s->cfg.fx.ctx, addr, ch, out, len);
}

/* Sends datagram @m to @addr with @forced (may be NULL) first, then as many
 * queued updates as fit, fewest-sent first. */
static void send_datagram(struct swim *s, const char *addr, struct swim_msg *m,
                          const struct swim_update *forced) {
  uint8_t plain[SWIM_PLAIN_MAX];
  uint8_t sealed[SWIM_PACKET_MAX];
  m->sender = s->cfg.id;
  m->nupdates = 0;
  size_t off = swim_codec_header_size(m);
  if (forced != NULL) {
    off += swim_codec_encode_update(forced, plain + off);
    m->nupdates++;
  }
  if (s->nbq > 0) {
    uint32_t limit = retransmit_limit(s);
    qsort(s->bq, s->nbq, sizeof *s->bq, bcast_cmp);
    for (size_t i = 0; i < s->nbq; i++) {
      struct swim__bcast *b = &s->bq[i];
      if (forced != NULL && b->u.id == forced->id)
        continue;
      size_t need = swim_codec_update_size(&b->u);
      if (off + need > SWIM_PLAIN_MAX)
        continue;
      off += swim_codec_encode_update(&b->u, plain + off);
      m->nupdates++;
      b->transmits++;
      s->stats.updates_sent++;
    }
    /* drop the ones sent often enough */
    size_t w = 0;
    for (size_t i = 0; i < s->nbq; i++)
      if (s->bq[i].transmits < limit)
        s->bq[w++] = s->bq[i];
    s->nbq = w;
  }
  swim_codec_encode_header(m, plain);
  seal_and_send(s, addr, SWIM_DATAGRAM, plain, off, sealed);
}

/* Sends our whole table on the stream channel (push/pull, SWIM §4.1's
 * anti-entropy as memberlist does it): for each member an ALIVE carrying
 * its metadata, then its state when it is not alive. */
static int send_pushpull(struct swim *s, const char *addr, uint8_t flags) {
  struct swim_msg m = {.kind = SWIM_MSG_PUSH_PULL, .flags = flags};
  m.sender = s->cfg.id;
  size_t cap = swim_codec_header_size(&m);
  struct swim_update u;
  for (size_t i = 0; i < s->n; i++) {
    alive_update(&s->mem[i], &u);
    cap += swim_codec_update_size(&u) + 1 + 8 + 4 + 8;
  }
  cap = cap < SWIM_STREAM_MAX - SWIM_SEAL_OVERHEAD
            ? cap
            : SWIM_STREAM_MAX - SWIM_SEAL_OVERHEAD;
  uint8_t *plain = chorus_malloc(cap);
  uint8_t *sealed = chorus_malloc(cap + SWIM_SEAL_OVERHEAD);
  if (plain == NULL || sealed == NULL) {
    chorus_free(plain);
    chorus_free(sealed);
    return CHORUS_ENOMEM;
  }
  size_t off = swim_codec_header_size(&m);
  for (size_t i = 0; i < s->n && m.nupdates < UINT16_MAX - 1; i++) {
    const struct swim__mem *x = &s->mem[i];
    alive_update(x, &u);
    if (off + swim_codec_update_size(&u) + 21 > cap)
      break;
    off += swim_codec_encode_update(&u, plain + off);
    m.nupdates++;
    if (x->pub.state != SWIM_ALIVE) {
      u.kind = x->pub.state == SWIM_SUSPECT   ? SWIM_UPD_SUSPECT
               : x->pub.state == SWIM_REMOVED ? SWIM_UPD_REMOVE
                                              : SWIM_UPD_DEAD;
      u.from = x->pub.state == SWIM_LEFT ? x->pub.id : s->cfg.id;
      off += swim_codec_encode_update(&u, plain + off);
      m.nupdates++;
    }
  }
  swim_codec_encode_header(&m, plain);
  seal_and_send(s, addr, SWIM_STREAM, plain, off, sealed);
  chorus_free(plain);
  chorus_free(sealed);
  return CHORUS_OK;
}

static chorus_ms scaled(const struct swim *s, chorus_ms d) {
  return d * (chorus_ms)(s->lhm + 1);
}

static void health_delta(struct swim *s, int delta) {
  int64_t v = (int64_t)s->lhm + delta;
  if (v < 0)
    v = 0;
  if (v > (int64_t)s->cfg.timing.max_lhm)
    v = s->cfg.timing.max_lhm;
  if ((uint32_t)v != s->lhm)
    TRACE(s, "local health %u -> %u", s->lhm, (unsigned)v);
  s->lhm = (uint32_t)v;
}

/* ========================================================================
 * Applying updates (SWIM §4.2, memberlist's aliveNode/suspectNode/deadNode)
 * ======================================================================== */

chorus_ms swim_suspicion_timeout(const struct swim_timing *t, size_t n,
                                 uint32_t k, uint32_t confirmations) {
  double nodes = n < 1 ? 1.0 : (double)n;
  double scale = log10(nodes);
  if (scale < 1.0)
    scale = 1.0;
  double min = (double)t->suspicion_mult * scale * (double)t->probe_interval;
  double max = (double)t->suspicion_max_mult * min;
  if (k == 0)
    return (chorus_ms)min; /* nobody to confirm: the minimum (memberlist) */
  double frac = log((double)confirmations + 1.0) / log((double)k + 1.0);
  double raw = max - frac * (max - min);
  if (raw < min)
    raw = min;
  return (chorus_ms)floor(raw);
}

/* This node is accused (suspect/dead/remove about itself, or an alive with
 * a newer incarnation): refute with a higher incarnation (SWIM §4.2). */
static int refute(struct swim *s, uint32_t accused_inc, chorus_ms now,
                  const char *why) {
  struct swim__mem *me = self(s);
  uint32_t inc = me->pub.incarnation;
  me->pub.incarnation = (accused_inc >= inc ? accused_inc : inc) + 1;
  s->stats.refutations++;
  /* Lifeguard §4.1: being suspected is a sign that we are the slow one. */
  health_delta(s, 1);
  TRACE(s, "refute %s: incarnation %u -> %u", why, inc, me->pub.incarnation);
  s->accused = 1;
  struct swim_update u;
  alive_update(me, &u);
  (void)now;
  return broadcast(s, &u);
}

/* An accusation older than our incarnation: we refuted it already, but
 * the accuser has not heard. Queue our current ALIVE again (fresh
 * transmit count, no new incarnation), so the answer to the very packet
 * that carried the accusation (the buddy system's probe, typically)
 * carries the refutation. memberlist ignores these; then a member whose
 * refutation missed one node by bad luck can still die there. */
static int repeat_alive(struct swim *s) {
  s->accused = 1;
  struct swim_update u;
  alive_update(self(s), &u);
  return broadcast(s, &u);
}

static int apply_alive(struct swim *s, const struct swim_update *u,
                       chorus_ms now) {
  if (!meta_valid(&u->meta))
    return CHORUS_OK;
  if (u->id == s->cfg.id) {
    struct swim__mem *me = self(s);
    if (s->leaving)
      return CHORUS_OK;
    if (u->incarnation > me->pub.incarnation ||
        (u->incarnation == me->pub.incarnation &&
         !meta_equal(&u->meta, &me->pub.meta)))
      return refute(s, u->incarnation, now, "stale alive");
    return CHORUS_OK;
  }
  struct swim__mem *m = find(s, u->id);
  if (m == NULL) {
    m = add_member(s, u->id, &u->meta, u->incarnation, now);
    if (m == NULL)
      return CHORUS_ENOMEM;
    TRACE(s, "member %016" PRIx64 " joins at %s inc %u", u->id, u->meta.addr,
          u->incarnation);
    notify(s, m, SWIM_ALIVE, 1, 1);
    return broadcast(s, u);
  }
  if (u->incarnation <= m->pub.incarnation)
    return CHORUS_OK;
  enum swim_state old = m->pub.state;
  int ring_changed = !meta_equal(&m->pub.meta, &u->meta) || old == SWIM_REMOVED;
  m->pub.meta = u->meta;
  m->pub.incarnation = u->incarnation;
  if (old != SWIM_ALIVE) {
    set_state(s, m, SWIM_ALIVE, now);
    TRACE(s, "member %016" PRIx64 " %s -> alive (inc %u)", u->id,
          swim_state_name(old), u->incarnation);
  }
  notify(s, m, old, 0, ring_changed);
  return broadcast(s, u);
}

static int apply_suspect(struct swim *s, const struct swim_update *u,
                         chorus_ms now) {
  if (u->id == s->cfg.id) {
    if (s->leaving)
      return CHORUS_OK;
    if (u->incarnation < self(s)->pub.incarnation)
      return repeat_alive(s);
    return refute(s, u->incarnation, now, "suspicion");
  }
  struct swim__mem *m = find(s, u->id);
  if (m == NULL || u->incarnation < m->pub.incarnation ||
      m->pub.state >= SWIM_DEAD)
    return CHORUS_OK;
  if (m->pub.state == SWIM_SUSPECT) {
    /* Lifeguard §4.2: an independent confirmation shortens the timeout. */
    for (uint32_t i = 0; i < m->nconfirmers; i++)
      if (m->confirmers[i] == u->from)
        return CHORUS_OK;
    if (m->nconfirmers <= SWIM_MAX_CONFIRM)
      m->confirmers[m->nconfirmers++] = u->from;
    if (m->susp_n >= m->susp_k)
      return CHORUS_OK;
    m->susp_n++;
    m->susp_deadline =
        m->susp_start + swim_suspicion_timeout(&s->cfg.timing, live_count(s),
                                               m->susp_k, m->susp_n);
    TRACE(s, "suspicion of %016" PRIx64 " confirmed by %016" PRIx64 " (%u/%u)",
          u->id, u->from, m->susp_n, m->susp_k);
    return broadcast(s, u);
  }
  /* alive -> suspect */
  size_t n = live_count(s);
  uint32_t k =
      s->cfg.timing.suspicion_mult >= 2 ? s->cfg.timing.suspicion_mult - 2 : 0;
  if (k > SWIM_MAX_CONFIRM)
    k = SWIM_MAX_CONFIRM;
  if (n < 2 || n - 2 < k) /* not enough members to confirm (memberlist) */
    k = 0;
  m->pub.incarnation = u->incarnation;
  set_state(s, m, SWIM_SUSPECT, now);
  m->susp_start = now;
  m->susp_k = k;
  m->susp_n = 0;
  m->confirmers[0] = u->from;
  m->nconfirmers = 1;
  m->susp_deadline = now + swim_suspicion_timeout(&s->cfg.timing, n, k, 0);
  TRACE(s,
        "member %016" PRIx64 " suspect (inc %u, by %016" PRIx64
        "), dead in %" PRIu64 " ms unless refuted",
        u->id, u->incarnation, u->from, m->susp_deadline - now);
  notify(s, m, SWIM_ALIVE, 0, 0);
  return broadcast(s, u);
}

static int apply_dead(struct swim *s, const struct swim_update *u,
                      chorus_ms now) {
  if (u->id == s->cfg.id) {
    if (s->leaving)
      return CHORUS_OK;
    if (u->incarnation < self(s)->pub.incarnation)
      return repeat_alive(s);
    return refute(s, u->incarnation, now,
                  u->kind == SWIM_UPD_REMOVE ? "removal" : "death");
  }
  struct swim__mem *m = find(s, u->id);
  if (m == NULL || u->incarnation < m->pub.incarnation)
    return CHORUS_OK;
  enum swim_state old = m->pub.state;
  enum swim_state st = u->kind == SWIM_UPD_REMOVE ? SWIM_REMOVED
                       : u->from == u->id         ? SWIM_LEFT
                                                  : SWIM_DEAD;
  if (old == SWIM_REMOVED || (old >= SWIM_DEAD && st != SWIM_REMOVED))
    return CHORUS_OK;
  m->pub.incarnation = u->incarnation;
  set_state(s, m, st, now);
  TRACE(s, "member %016" PRIx64 " %s -> %s (inc %u, by %016" PRIx64 ")", u->id,
        swim_state_name(old), swim_state_name(st), u->incarnation, u->from);
  notify(s, m, old, 0, st == SWIM_REMOVED);
  return broadcast(s, u);
}

/* One update from a peer. From a push/pull, a DEAD is taken as a suspicion
 * (memberlist's mergeState): a peer's old table should not kill a member
 * we may still reach; the suspicion lets it refute. */
static int apply(struct swim *s, struct swim_update *u, int pushpull,
                 chorus_ms now) {
  if (pushpull && u->kind == SWIM_UPD_DEAD && u->from != u->id)
    u->kind = SWIM_UPD_SUSPECT;
  switch (u->kind) {
  case SWIM_UPD_ALIVE:
    return apply_alive(s, u, now);
  case SWIM_UPD_SUSPECT:
    return apply_suspect(s, u, now);
  case SWIM_UPD_DEAD:
  case SWIM_UPD_REMOVE:
    return apply_dead(s, u, now);
  }
  return CHORUS_OK;
}

/* ========================================================================
 * Probing (SWIM §3.1, §4.3; Lifeguard §4.1)
 * ======================================================================== */

static void shuffle_order(struct swim *s) {
  for (size_t i = s->norder; i > 1; i--) {
    size_t j = (size_t)chorus_prng_below(&s->prng, i);
    chorus_node_id t = s->order[i - 1];
    s->order[i - 1] = s->order[j];
    s->order[j] = t;
  }
}

/* The next member to probe in round-robin order, reshuffled at each pass
 * (SWIM §4.3): alive or suspect, never self. NULL when there is none. */
static struct swim__mem *next_target(struct swim *s) {
  for (size_t tries = 0; tries < s->norder + 1; tries++) {
    if (s->order_pos >= s->norder) {
      s->order_pos = 0;
      shuffle_order(s);
    }
    if (s->norder == 0)
      return NULL;
    struct swim__mem *m = find(s, s->order[s->order_pos++]);
    if (m != NULL && m->pub.state <= SWIM_SUSPECT)
      return m;
  }
  return NULL;
}

/* ping_dead: a PING to a member held dead, picked at random, carrying our
 * ALIVE; nothing is expected of it. A member that is up after all answers
 * (it learns of us from the PING if it did not know us), and the ACK,
 * coming from a member held dead, gets our accusation back (stale_answers):
 * it refutes, and we take it back. Without it, a node that holds a peer
 * dead while that peer, restarted, never heard of the node (its join
 * answered by a seed that did not know the node either) exchange no
 * packet at all until a push/pull: seen in the change simulator, join
 * 3->5 seed 174. Serf's reconnect does the same by push/pull every 30 s;
 * a PING is cheaper, so it runs every SWIM_DEAD_PROBE_EVERY periods. */
static void ping_dead(struct swim *s, chorus_ms wall) {
  size_t dead = 0;
  for (size_t i = 0; i < s->n; i++)
    dead += s->mem[i].pub.state == SWIM_DEAD;
  if (dead == 0)
    return;
  size_t pick = (size_t)chorus_prng_below(&s->dead, dead);
  for (size_t i = 0; i < s->n; i++) {
    struct swim__mem *t = &s->mem[i];
    if (t->pub.state != SWIM_DEAD || pick-- != 0)
      continue;
    struct swim_msg m = {.kind = SWIM_MSG_PING,
                         .seq = ++s->seq,
                         .target = t->pub.id,
                         .target_inc = t->pub.incarnation,
                         .t1 = (int64_t)wall};
    struct swim_update me;
    alive_update(self(s), &me);
    char addr[SWIM_ADDR_MAX];
    memcpy(addr, t->pub.meta.addr, sizeof addr);
    send_datagram(s, addr, &m, &me);
    return;
  }
}

static void start_probe(struct swim *s, chorus_ms now, chorus_ms wall) {
  s->next_probe = now + scaled(s, s->cfg.timing.probe_interval);
  if (++s->periods % SWIM_DEAD_PROBE_EVERY == 0)
    ping_dead(s, wall);
  struct swim__mem *t = next_target(s);
  if (t == NULL)
    return;
  s->stats.probes++;
  s->probe.active = 1;
  s->probe.acked = 0;
  s->probe.indirect_sent = 0;
  s->probe.target = t->pub.id;
  s->probe.seq = ++s->seq;
  s->probe.expected_nacks = 0;
  s->probe.nacks = 0;
  s->probe.t1 = (int64_t)wall;
  s->probe.timeout_at = now + scaled(s, s->cfg.timing.probe_timeout);
  s->probe.end_at = s->next_probe;
  struct swim_msg m = {.kind = SWIM_MSG_PING,
                       .seq = s->probe.seq,
                       .target = t->pub.id,
                       .target_inc = t->pub.incarnation,
                       .t1 = (int64_t)wall};
  /* Lifeguard §4.3 (buddy system): a suspected member hears of it in the
   * probe itself, so it can refute at once. */
  struct swim_update su;
  const struct swim_update *forced = NULL;
  if (t->pub.state == SWIM_SUSPECT) {
    memset(&su, 0, sizeof su);
    su.kind = SWIM_UPD_SUSPECT;
    su.id = t->pub.id;
    su.incarnation = t->pub.incarnation;
    su.from = s->cfg.id;
    forced = &su;
  } else if (t->tell_self) {
    /* It answers others but not us: a member that lost our entry (it
     * restarted, and the push/pull that would have told it was cut)
     * ignores our PINGs, as it cannot address an ACK; our ALIVE in the
     * PING makes us known to it, and the ACK follows. */
    alive_update(self(s), &su);
    forced = &su;
  }
  char addr[SWIM_ADDR_MAX];
  memcpy(addr, t->pub.meta.addr, sizeof addr);
  send_datagram(s, addr, &m, forced);
}

static void send_indirect(struct swim *s) {
  s->probe.indirect_sent = 1;
  struct swim__mem *t = find(s, s->probe.target);
  if (t == NULL)
    return;
  struct swim_msg m = {
      .kind = SWIM_MSG_PING_REQ, .seq = s->probe.seq, .target = t->pub.id};
  memcpy(m.target_addr, t->pub.meta.addr, sizeof m.target_addr);
  /* k random alive members other than us and the target. */
  size_t cand = 0;
  for (size_t i = 0; i < s->n; i++)
    if (s->mem[i].pub.state == SWIM_ALIVE && s->mem[i].pub.id != s->cfg.id &&
        s->mem[i].pub.id != t->pub.id)
      cand++;
  uint32_t want = s->cfg.timing.indirect;
  for (size_t i = 0; i < s->n && want > 0 && cand > 0; i++) {
    struct swim__mem *x = &s->mem[i];
    if (x->pub.state != SWIM_ALIVE || x->pub.id == s->cfg.id ||
        x->pub.id == t->pub.id)
      continue;
    /* selection sampling: take x with probability want / cand */
    if (chorus_prng_below(&s->prng, cand) < want) {
      char addr[SWIM_ADDR_MAX];
      memcpy(addr, x->pub.meta.addr, sizeof addr);
      send_datagram(s, addr, &m, NULL);
      s->stats.indirect_probes++;
      s->probe.expected_nacks++;
      want--;
    }
    cand--;
  }
}

static int finish_probe(struct swim *s, chorus_ms now) {
  s->probe.active = 0;
  if (s->probe.acked)
    return CHORUS_OK;
  s->stats.probe_failed++;
  /* Lifeguard §4.1: a missing nack means the intermediary could not reach
   * us either, or we could not hear it: count against our own health. */
  int delta = 0;
  if (s->probe.expected_nacks > 0) {
    if (s->probe.nacks < s->probe.expected_nacks)
      delta = (int)(s->probe.expected_nacks - s->probe.nacks);
  } else {
    delta = 1;
  }
  health_delta(s, delta);
  struct swim__mem *t = find(s, s->probe.target);
  if (t == NULL || t->pub.state >= SWIM_DEAD)
    return CHORUS_OK;
  TRACE(s, "probe of %016" PRIx64 " failed (%u/%u nacks): suspect", t->pub.id,
        s->probe.nacks, s->probe.expected_nacks);
  if (t->pub.state == SWIM_ALIVE)
    s->stats.suspicions++;
  struct swim_update u = {.kind = SWIM_UPD_SUSPECT,
                          .id = t->pub.id,
                          .incarnation = t->pub.incarnation,
                          .from = s->cfg.id};
  return apply_suspect(s, &u, now);
}

/* ========================================================================
 * Packets in
 * ======================================================================== */

static void clock_sample(struct swim__mem *m, const struct swim_msg *msg,
                         int64_t t4) {
  int64_t off = ((msg->t2 - msg->t1) + (msg->t3 - t4)) / 2;
  int64_t rtt = (t4 - msg->t1) - (msg->t3 - msg->t2);
  if (rtt < 0)
    rtt = 0;
  uint32_t slot = m->sample_pos++ % SWIM_CLOCK_SAMPLES;
  m->off[slot] = off;
  m->rtt[slot] = rtt;
  if (m->pub.clock_samples < SWIM_CLOCK_SAMPLES)
    m->pub.clock_samples++;
  uint32_t best = 0;
  for (uint32_t i = 1; i < m->pub.clock_samples; i++)
    if (m->rtt[i] < m->rtt[best])
      best = i;
  m->pub.offset_ms = m->off[best];
  m->pub.rtt_ms = m->rtt[best];
}

static struct swim__relay *relay_slot(struct swim *s) {
  struct swim__relay *oldest = &s->relays[0];
  for (size_t i = 0; i < SWIM_MAX_RELAYS; i++) {
    if (!s->relays[i].active)
      return &s->relays[i];
    if (s->relays[i].nack_at < oldest->nack_at)
      oldest = &s->relays[i];
  }
  return oldest; /* full: the oldest relay loses its nack */
}

/* Handles @msg once its updates are applied. @answer (may be NULL) rides
 * first in the ACK to a PING; *@answered tells whether it went. */
static void on_message(struct swim *s, struct swim_msg *msg, chorus_ms now,
                       chorus_ms wall, const struct swim_update *answer,
                       int *answered) {
  struct swim__mem *from = find(s, msg->sender);
  char from_addr[SWIM_ADDR_MAX];
  if (from != NULL)
    memcpy(from_addr, from->pub.meta.addr, sizeof from_addr);
  switch (msg->kind) {
  case SWIM_MSG_PING: {
    if (msg->target != s->cfg.id || from == NULL)
      return; /* meant for an earlier owner of our address, or a stranger */
    struct swim_msg ack = {.kind = SWIM_MSG_ACK,
                           .seq = msg->seq,
                           .t1 = msg->t1,
                           .t2 = (int64_t)wall,
                           .t3 = (int64_t)wall};
    send_datagram(s, from_addr, &ack, answer);
    *answered = answer != NULL;
    return;
  }
  case SWIM_MSG_ACK:
    if (s->probe.active && msg->seq == s->probe.seq && !s->probe.acked) {
      s->probe.acked = 1;
      struct swim__mem *t = find(s, s->probe.target);
      if (t != NULL)
        t->tell_self = msg->sender != t->pub.id;
      if (msg->sender == s->probe.target && msg->t1 == s->probe.t1 &&
          from != NULL)
        clock_sample(from, msg, (int64_t)wall);
      health_delta(s, -1);
      s->probe.active = 0;
      return;
    }
    for (size_t i = 0; i < SWIM_MAX_RELAYS; i++) {
      struct swim__relay *r = &s->relays[i];
      if (r->active && r->my_seq == msg->seq && r->target == msg->sender) {
        r->active = 0;
        struct swim__mem *o = find(s, r->origin);
        if (o == NULL)
          return;
        char addr[SWIM_ADDR_MAX];
        memcpy(addr, o->pub.meta.addr, sizeof addr);
        struct swim_msg fwd = {.kind = SWIM_MSG_ACK, .seq = r->origin_seq};
        send_datagram(s, addr, &fwd, NULL);
        return;
      }
    }
    return;
  case SWIM_MSG_PING_REQ: {
    if (from == NULL || msg->target == s->cfg.id)
      return;
    struct swim__relay *r = relay_slot(s);
    r->active = 1;
    r->my_seq = ++s->seq;
    r->origin_seq = msg->seq;
    r->origin = msg->sender;
    r->target = msg->target;
    /* Nack at 80% of the probe timeout, so the nack reaches the origin
     * before its period ends (memberlist). */
    r->nack_at = now + s->cfg.timing.probe_timeout * 4 / 5;
    struct swim_msg ping = {.kind = SWIM_MSG_PING,
                            .seq = r->my_seq,
                            .target = msg->target,
                            .t1 = (int64_t)wall};
    send_datagram(s, msg->target_addr, &ping, NULL);
    return;
  }
  case SWIM_MSG_NACK:
    if (s->probe.active && msg->seq == s->probe.seq)
      s->probe.nacks++;
    return;
  case SWIM_MSG_GOSSIP:
    return; /* its updates are all it had */
  case SWIM_MSG_PUSH_PULL:
    if ((msg->flags & SWIM_PP_REPLY) && s->njoin > 0) {
      TRACE(s, "joined: %016" PRIx64 " answered", msg->sender);
      s->njoin = 0;
    }
    if (!(msg->flags & SWIM_PP_REPLY) && from != NULL) {
      TRACE(s, "push/pull%s from %016" PRIx64 ": %u entries",
            (msg->flags & SWIM_PP_JOIN) ? " (join)" : "", msg->sender,
            (unsigned)msg->nupdates);
      (void)send_pushpull(s, from_addr, SWIM_PP_REPLY);
    }
    return;
  }
}

/* HOW A STALE VIEW HEALS. Suspicions, deaths and refutations spread by
 * piggybacking, each update a bounded number of times (retransmit_limit).
 * Under loss and partitions that budget can run out before a given member
 * hears: say B declared A dead at incarnation i while A, told by others,
 * refuted with i+1. Everyone else took A back; B did not, and nothing
 * repeats A's ALIVE to B any more: B does not probe A (dead members are
 * not probed), A probes B and gets plain ACKs, and only the next push/pull
 * between them (15-30 s, or never if B's peers are all dead to B) would
 * mend it. The simulator found a node holding a live peer dead for the
 * rest of a run this way.
 *
 * Yet every packet A sends B is proof that A is up. So when a packet comes
 * from a member we hold suspect or dead, we answer its sender with our
 * accusation (as the buddy system does on a probe, Lifeguard §4.3); and a
 * packet that accused us (refute() or repeat_alive() ran) is answered with
 * our current ALIVE, straight to its sender, whatever the broadcast queue
 * still holds. A's next packet to B thus brings B the accusation A never
 * heard or B the ALIVE it missed, and a refutation always carries an
 * incarnation above the accusation's, so the exchange ends after one round.
 * The answer rides in the ACK when the packet was a PING, otherwise in a
 * GOSSIP datagram of its own: at most one extra datagram per packet, and
 * only while views disagree. A push/pull needs none of this: the answer
 * to one carries our whole table. A member that left or was removed gets
 * no answer (neither state is refuted by design). */
static size_t stale_answers(struct swim *s, const struct swim_msg *msg,
                            struct swim_update out[2]) {
  size_t n = 0;
  if (msg->kind == SWIM_MSG_PUSH_PULL && !(msg->flags & SWIM_PP_REPLY))
    return 0;
  const struct swim__mem *from = find(s, msg->sender);
  if (from == NULL)
    return 0;
  if (s->accused && !s->leaving)
    alive_update(self(s), &out[n++]);
  if (from->pub.state == SWIM_SUSPECT || from->pub.state == SWIM_DEAD) {
    memset(&out[n], 0, sizeof out[n]);
    out[n].kind =
        from->pub.state == SWIM_SUSPECT ? SWIM_UPD_SUSPECT : SWIM_UPD_DEAD;
    out[n].id = from->pub.id;
    out[n].incarnation = from->pub.incarnation;
    out[n].from = s->cfg.id;
    TRACE(s, "%016" PRIx64 " talks to us while %s here (inc %u): told so",
          from->pub.id, swim_state_name(from->pub.state),
          from->pub.incarnation);
    n++;
  }
  return n;
}

/* Sends each of @answers (stale_answers) to member @to in a GOSSIP
 * datagram of its own, queued updates filling the rest of it. */
static void send_answers(struct swim *s, chorus_node_id to,
                         const struct swim_update *answers, size_t n) {
  const struct swim__mem *m = find(s, to);
  if (m == NULL)
    return;
  char addr[SWIM_ADDR_MAX];
  memcpy(addr, m->pub.meta.addr, sizeof addr);
  for (size_t i = 0; i < n; i++) {
    struct swim_msg g = {.kind = SWIM_MSG_GOSSIP};
    send_datagram(s, addr, &g, &answers[i]);
  }
}

int swim_handle_packet(struct swim *s, const void *data, size_t len,
                       chorus_ms now, chorus_ms wall) {
  if (len > SWIM_STREAM_MAX || len < SWIM_SEAL_OVERHEAD) {
    s->stats.malformed++;
    return CHORUS_OK;
  }
  uint8_t stack[SWIM_PACKET_MAX];
  uint8_t *plain = len <= sizeof stack ? stack : chorus_malloc(len);
  if (plain == NULL)
    return CHORUS_ENOMEM;
  size_t plen = 0;
  int rc = swim_open((const uint8_t(*)[SWIM_KEY_BYTES])s->keys, s->nkeys,
                     s->cfg.cluster, data, len, plain, &plen);
  if (rc != CHORUS_OK) {
    s->stats.auth_failed++;
    rc = CHORUS_OK;
    goto out;
  }
  struct swim_msg msg;
  if (swim_codec_decode(plain, plen, &msg, s->errmsg) != CHORUS_OK) {
    s->stats.malformed++;
    TRACE(s, "drop: %s", s->errmsg);
    rc = CHORUS_OK;
    goto out;
  }
  s->stats.received++;
  if (msg.sender == s->cfg.id) {
    rc = CHORUS_OK;
    goto out;
  }
  int pushpull = msg.kind == SWIM_MSG_PUSH_PULL;
  struct swim_update u;
  rc = CHORUS_OK;
  s->accused = 0;
  while (rc == CHORUS_OK && swim_codec_next_update(&msg, &u)) {
    if (pushpull && u.kind != SWIM_UPD_ALIVE && u.from == s->cfg.id)
      u.from = msg.sender; /* our table, their word: count them */
    rc = apply(s, &u, pushpull, now);
  }
  if (rc == CHORUS_OK) {
    struct swim_update answers[2];
    size_t nanswers = stale_answers(s, &msg, answers);
    int answered = 0;
    on_message(s, &msg, now, wall, nanswers > 0 ? &answers[0] : NULL,
               &answered);
    send_answers(s, msg.sender, answers + answered,
                 nanswers - (size_t)answered);
  }
out:
  if (plain != stack)
    chorus_free(plain);
  return rc;
}

/* ========================================================================
 * Time
 * ======================================================================== */

static chorus_ms pushpull_interval(const struct swim *s) {
  /* memberlist's pushPullScale: above 32 members the interval grows with
   * log2(n / 32), so the cluster's total push/pull load stays bounded. */
  chorus_ms iv = s->cfg.timing.pushpull_interval;
  size_t n = live_count(s);
  if (n <= 32)
    return iv;
  double mult = ceil(log2((double)n) - log2(32.0)) + 1.0;
  return (chorus_ms)((double)iv * mult);
}

/* A gossip round (memberlist's gossip()): the queued updates to a few
 * random members, including those dead for less than gossip_to_dead. */
static void gossip(struct swim *s, chorus_ms now) {
  if (s->nbq == 0)
    return;
  size_t cand = 0;
  for (size_t i = 0; i < s->n; i++) {
    const struct swim_member *m = &s->mem[i].pub;
    if (m->id != s->cfg.id &&
        (m->state <= SWIM_SUSPECT ||
         (m->state == SWIM_DEAD &&
          now - m->state_since < s->cfg.timing.gossip_to_dead)))
      cand++;
  }
  uint32_t want = s->cfg.timing.gossip_nodes;
  for (size_t i = 0; i < s->n && want > 0 && cand > 0 && s->nbq > 0; i++) {
    const struct swim_member *m = &s->mem[i].pub;
    if (!(m->id != s->cfg.id &&
          (m->state <= SWIM_SUSPECT ||
           (m->state == SWIM_DEAD &&
            now - m->state_since < s->cfg.timing.gossip_to_dead))))
      continue;
    if (chorus_prng_below(&s->prng, cand) < want) {
      char addr[SWIM_ADDR_MAX];
      memcpy(addr, m->meta.addr, sizeof addr);
      struct swim_msg g = {.kind = SWIM_MSG_GOSSIP};
      send_datagram(s, addr, &g, NULL);
      want--;
    }
    cand--;
  }
}

int swim_tick(struct swim *s, chorus_ms now, chorus_ms wall) {
  if (!s->started)
    return CHORUS_OK;
  int rc = CHORUS_OK;
  /* relayed probes whose target stayed silent: nack the origin */
  for (size_t i = 0; i < SWIM_MAX_RELAYS; i++) {
    struct swim__relay *r = &s->relays[i];
    if (!r->active || now < r->nack_at)
      continue;
    r->active = 0;
    struct swim__mem *o = find(s, r->origin);
    if (o == NULL)
      continue;
    char addr[SWIM_ADDR_MAX];
    memcpy(addr, o->pub.meta.addr, sizeof addr);
    struct swim_msg nack = {.kind = SWIM_MSG_NACK, .seq = r->origin_seq};
    send_datagram(s, addr, &nack, NULL);
  }
  /* suspicions that outlived their timeout (SWIM §4.2) */
  if (s->nsuspect > 0) {
    for (size_t i = 0; i < s->n && rc == CHORUS_OK; i++) {
      struct swim__mem *m = &s->mem[i];
      if (m->pub.state != SWIM_SUSPECT || now < m->susp_deadline)
        continue;
      s->stats.deaths++;
      TRACE(s,
            "suspicion of %016" PRIx64 " timed out after %" PRIu64
            " ms with %u/%u confirmations: dead",
            m->pub.id, now - m->susp_start, m->susp_n, m->susp_k);
      struct swim_update u = {.kind = SWIM_UPD_DEAD,
                              .id = m->pub.id,
                              .incarnation = m->pub.incarnation,
                              .from = s->cfg.id};
      rc = apply_dead(s, &u, now);
    }
  }
  if (rc != CHORUS_OK)
    return rc;
  if (s->probe.active) {
    if (!s->probe.acked && !s->probe.indirect_sent &&
        now >= s->probe.timeout_at)
      send_indirect(s);
    if (now >= s->probe.end_at)
      rc = finish_probe(s, now);
  }
  if (rc != CHORUS_OK)
    return rc;
  if (!s->probe.active && now >= s->next_probe)
    start_probe(s, now, wall);
  if (s->cfg.timing.gossip_interval > 0 && now >= s->next_gossip) {
    s->next_gossip = now + s->cfg.timing.gossip_interval;
    gossip(s, now);
  }
  if (s->njoin > 0 && now >= s->join_retry_at) {
    /* Nobody answered the join: the push/pulls were cut or the seeds
     * down. A member table that is not empty (a restart from a saved
     * one) is no proof of a join: without the answer this node may never
     * hear of members that joined while it was away, and they hold it
     * dead (the simulator found such pairs lasting until a push/pull). */
    s->join_delay *= 2;
    if (s->join_delay > SWIM_JOIN_RETRY_MAX)
      s->join_delay = SWIM_JOIN_RETRY_MAX;
    s->join_retry_at = now + s->join_delay;
    TRACE(s, "join: no answer yet, asking %zu seeds again", s->njoin);
    for (size_t i = 0; i < s->njoin && rc == CHORUS_OK; i++)
      rc = send_pushpull(s, s->join_seeds[i], SWIM_PP_JOIN);
    if (rc != CHORUS_OK)
      return rc;
  }
  if (s->cfg.timing.pushpull_interval > 0 && now >= s->next_pushpull) {
    s->next_pushpull = now + pushpull_interval(s);
    /* Serf's reconnect: with probability dead/alive the exchange goes to a
     * dead member instead, so the two sides of a healed partition, each
     * holding the other dead, find each other again (memberlist alone
     * never would: it gossips to the dead only for gossip_to_dead). */
    size_t alive = 0, dead = 0;
    for (size_t i = 0; i < s->n; i++) {
      if (s->mem[i].pub.id == s->cfg.id)
        continue;
      if (s->mem[i].pub.state == SWIM_ALIVE)
        alive++;
      else if (s->mem[i].pub.state == SWIM_DEAD)
        dead++;
    }
    enum swim_state want = SWIM_ALIVE;
    size_t cand = alive;
    if (dead > 0 && (alive == 0 || chorus_prng_below(&s->prng, alive) < dead)) {
      want = SWIM_DEAD;
      cand = dead;
    }
    if (cand > 0) {
      size_t pick = (size_t)chorus_prng_below(&s->prng, cand);
      for (size_t i = 0; i < s->n; i++) {
        if (s->mem[i].pub.state != want || s->mem[i].pub.id == s->cfg.id)
          continue;
        if (pick-- == 0) {
          char addr[SWIM_ADDR_MAX];
          memcpy(addr, s->mem[i].pub.meta.addr, sizeof addr);
          rc = send_pushpull(s, addr, 0);
          break;
        }
      }
    }
  }
  return rc;
}

chorus_ms swim_next_deadline(const struct swim *s) {
  chorus_ms d = UINT64_MAX;
#define MIN_D(x)                                                               \
  do {                                                                         \
    if ((x) < d)                                                               \
      d = (x);                                                                 \
  } while (0)
  if (!s->started)
    return d;
  if (s->probe.active) {
    if (!s->probe.acked && !s->probe.indirect_sent)
      MIN_D(s->probe.timeout_at);
    MIN_D(s->probe.end_at);
  } else {
    MIN_D(s->next_probe);
  }
  if (s->cfg.timing.pushpull_interval > 0)
    MIN_D(s->next_pushpull);
  if (s->cfg.timing.gossip_interval > 0 && s->nbq > 0)
    MIN_D(s->next_gossip);
  if (s->njoin > 0)
    MIN_D(s->join_retry_at);
  for (size_t i = 0; i < SWIM_MAX_RELAYS; i++)
    if (s->relays[i].active)
      MIN_D(s->relays[i].nack_at);
  if (s->nsuspect > 0)
    for (size_t i = 0; i < s->n; i++)
      if (s->mem[i].pub.state == SWIM_SUSPECT)
        MIN_D(s->mem[i].susp_deadline);
#undef MIN_D
  return d;
}

/* ========================================================================
 * Life cycle and operator calls
 * ======================================================================== */

int swim_new(const struct swim_config *cfg, struct swim **out) {
  if (cfg == NULL || out == NULL)
    return CHORUS_EINVAL;
  const struct swim_timing *t = &cfg->timing;
  if (t->probe_interval == 0 || t->probe_timeout == 0 ||
      t->probe_timeout >= t->probe_interval || t->retransmit_mult == 0 ||
      t->suspicion_mult == 0 || t->suspicion_max_mult == 0 ||
      !meta_valid(&cfg->meta) ||
      memchr(cfg->cluster, 0, sizeof cfg->cluster) == NULL)
    return CHORUS_EINVAL;
  /* Idempotent and thread-safe; picks the fastest AEAD implementation. */
  if (sodium_init() < 0)
    return CHORUS_EINTERNAL;
  struct swim *s = chorus_calloc(1, sizeof *s);
  if (s == NULL)
    return CHORUS_ENOMEM;
  s->cfg = *cfg;
  struct chorus_prng root;
  chorus_prng_seed(&root, cfg->seed);
  chorus_prng_derive(&s->prng, &root, 1);
  chorus_prng_derive(&s->nonce, &root, 2);
  chorus_prng_derive(&s->dead, &root, 3);
  memcpy(s->keys[0], cfg->key, SWIM_KEY_BYTES);
  s->nkeys = 1;
  if (add_member(s, cfg->id, &cfg->meta, 0, 0) == NULL) {
    swim_free(s);
    return CHORUS_ENOMEM;
  }
  *out = s;
  return CHORUS_OK;
}

void swim_free(struct swim *s) {
  if (s == NULL)
    return;
  sodium_memzero(s->keys, sizeof s->keys);
  sodium_memzero(s->cfg.key, sizeof s->cfg.key);
  chorus_free(s->mem);
  chorus_free(s->order);
  chorus_free(s->bq);
  chorus_free(s);
}

int swim_start(struct swim *s, chorus_ms now) {
  if (s->started)
    return CHORUS_EINVAL;
  s->started = 1;
  /* a random phase, so that nodes started together do not probe in step */
  s->next_probe =
      now + chorus_prng_below(&s->prng, s->cfg.timing.probe_interval);
  s->next_pushpull = now + s->cfg.timing.pushpull_interval;
  s->next_gossip = now;
  struct swim__mem *me = self(s);
  me->pub.state_since = now;
  struct swim_update u;
  alive_update(me, &u);
  return broadcast(s, &u);
}

int swim_join(struct swim *s, const char *const *seeds, size_t n, chorus_ms now,
              chorus_ms wall) {
  if (seeds == NULL || n > SWIM_MAX_SEEDS)
    return CHORUS_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (seeds[i] == NULL || strnlen(seeds[i], SWIM_ADDR_MAX) >= SWIM_ADDR_MAX)
      return CHORUS_EINVAL;
  s->njoin = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(seeds[i], s->cfg.meta.addr) == 0)
      continue;
    TRACE(s, "join via %s", seeds[i]);
    int rc = send_pushpull(s, seeds[i], SWIM_PP_JOIN);
    if (rc != CHORUS_OK)
      return rc;
    memcpy(s->join_seeds[s->njoin++], seeds[i],
           strnlen(seeds[i], SWIM_ADDR_MAX) + 1);
  }
  s->join_delay = s->cfg.timing.probe_interval;
  s->join_retry_at = now + s->join_delay;
  (void)wall;
  return CHORUS_OK;
}

int swim_add_member(struct swim *s, chorus_node_id id,
                    const struct swim_meta *meta, uint32_t inc, chorus_ms now) {
  if (meta == NULL || id == s->cfg.id || !meta_valid(meta))
    return CHORUS_EINVAL;
  if (find(s, id) != NULL)
    return CHORUS_EEXIST;
  struct swim__mem *m = add_member(s, id, meta, inc, now);
  if (m == NULL)
    return CHORUS_ENOMEM;
  notify(s, m, SWIM_ALIVE, 1, 1);
  return CHORUS_OK;
}

int swim_leave(struct swim *s, chorus_ms now, chorus_ms wall) {
  struct swim__mem *me = self(s);
  if (s->leaving)
    return CHORUS_OK;
  s->leaving = 1;
  me->pub.incarnation++;
  set_state(s, me, SWIM_LEFT, now);
  TRACE(s, "leaving (inc %u)", me->pub.incarnation);
  struct swim_update u = {.kind = SWIM_UPD_DEAD,
                          .id = s->cfg.id,
                          .incarnation = me->pub.incarnation,
                          .from = s->cfg.id};
  int rc = broadcast(s, &u);
  if (rc != CHORUS_OK)
    return rc;
  notify(s, self(s), SWIM_ALIVE, 0, 0);
  /* Tell a few members now rather than wait for our next probes: the
   * leave should not look like a failure to anyone. */
  for (uint32_t i = 0; i <= s->cfg.timing.indirect; i++) {
    struct swim__mem *t = next_target(s);
    if (t == NULL)
      break;
    struct swim_msg m = {.kind = SWIM_MSG_PING,
                         .seq = ++s->seq,
                         .target = t->pub.id,
                         .target_inc = t->pub.incarnation,
                         .t1 = (int64_t)wall};
    char addr[SWIM_ADDR_MAX];
    memcpy(addr, t->pub.meta.addr, sizeof addr);
    send_datagram(s, addr, &m, &u);
  }
  return CHORUS_OK;
}

int swim_set_meta(struct swim *s, const struct swim_meta *meta, chorus_ms now) {
  if (meta == NULL || !meta_valid(meta))
    return CHORUS_EINVAL;
  struct swim__mem *me = self(s);
  me->pub.meta = *meta;
  me->pub.incarnation++;
  me->pub.state_since = now;
  s->cfg.meta = *meta;
  notify(s, me, me->pub.state, 0, 1);
  struct swim_update u;
  alive_update(me, &u);
  return broadcast(s, &u);
}

int swim_remove(struct swim *s, chorus_node_id id, chorus_ms now) {
  if (id == s->cfg.id)
    return CHORUS_EINVAL;
  struct swim__mem *m = find(s, id);
  if (m == NULL)
    return CHORUS_ENOTFOUND;
  TRACE(s, "operator removes %016" PRIx64, id);
  struct swim_update u = {.kind = SWIM_UPD_REMOVE,
                          .id = id,
                          .incarnation = m->pub.incarnation,
                          .from = s->cfg.id};
  return apply_dead(s, &u, now);
}

int swim_keys_set(struct swim *s, const uint8_t primary[SWIM_KEY_BYTES],
                  const uint8_t (*accepted)[SWIM_KEY_BYTES], size_t n) {
  if (primary == NULL || n > SWIM_MAX_KEYS - 1 || (n > 0 && accepted == NULL))
    return CHORUS_EINVAL;
  sodium_memzero(s->keys, sizeof s->keys);
  memcpy(s->keys[0], primary, SWIM_KEY_BYTES);
  for (size_t i = 0; i < n; i++)
    memcpy(s->keys[i + 1], accepted[i], SWIM_KEY_BYTES);
  s->nkeys = n + 1;
  TRACE(s, "key ring: primary + %zu accepted", n);
  return CHORUS_OK;
}

/* ========================================================================
 * Lookups
 * ======================================================================== */

size_t swim_member_count(const struct swim *s) {
  return s->n;
}

const struct swim_member *swim_member_at(const struct swim *s, size_t i) {
  return i < s->n ? &s->mem[i].pub : NULL;
}

const struct swim_member *swim_member_find(const struct swim *s,
                                           chorus_node_id id) {
  long i = find_index(s, id);
  return i < 0 ? NULL : &s->mem[i].pub;
}

size_t swim_alive_count(const struct swim *s) {
  return live_count(s);
}

const struct swim_stats *swim_stats(const struct swim *s) {
  return &s->stats;
}

uint32_t swim_health(const struct swim *s) {
  return s->lhm;
}

uint32_t swim_incarnation(const struct swim *s) {
  long i = find_index(s, s->cfg.id);
  return i < 0 ? 0 : s->mem[i].pub.incarnation;
}

uint64_t swim_epoch(const struct swim *s) {
  return s->epoch;
}

size_t swim_ring_nodes(const struct swim *s, struct ring_node *out,
                       size_t cap) {
  size_t c = 0;
  for (size_t i = 0; i < s->n; i++) {
    const struct swim_member *m = &s->mem[i].pub;
    if (m->state == SWIM_REMOVED)
      continue;
    if (c < cap && out != NULL) {
      struct ring_node *r = &out[c];
      memset(r, 0, sizeof *r);
      r->id = m->id;
      memcpy(r->dc, m->meta.dc, sizeof r->dc);
      memcpy(r->rack, m->meta.rack, sizeof r->rack);
      r->state = m->meta.ownership;
      r->vnodes = m->meta.vnodes;
    }
    c++;
  }
  return c;
}

int swim_ring_snapshot(const struct swim *s,
                       const struct ring_replication *repl,
                       struct ring_snapshot **out, char *errmsg) {
  size_t n = swim_ring_nodes(s, NULL, 0);
  struct ring_node *nodes = chorus_calloc(n ? n : 1, sizeof *nodes);
  if (nodes == NULL)
    return CHORUS_ENOMEM;
  swim_ring_nodes(s, nodes, n);
  int rc = ring_snapshot_build(nodes, n, repl, s->epoch, out, errmsg);
  chorus_free(nodes);
  return rc;
}

size_t swim_clock_report(const struct swim *s, int64_t bound_ms,
                         chorus_node_id *out, size_t cap) {
  if (bound_ms < 0)
    bound_ms = s->cfg.clock_bound_ms;
  size_t c = 0;
  for (size_t i = 0; i < s->n; i++) {
    const struct swim_member *m = &s->mem[i].pub;
    if (m->clock_samples == 0 || llabs(m->offset_ms) <= bound_ms)
      continue;
    if (c < cap && out != NULL)
      out[c] = m->id;
    c++;
  }
  return c;
}
