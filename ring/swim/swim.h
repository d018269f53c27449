/* swim.h: SWIM membership and failure detection with the Lifeguard
 * refinements, authenticated gossip and per-peer clock-offset estimates, as
 * a sans-I/O state machine.
 *
 * HOW IT WORKS (SWIM: Das, Gupta, Motivala, DSN 2002; Lifeguard: Dadgar,
 * Phillips, Currey, arXiv:1707.00788, 2017; HashiCorp memberlist)
 *
 * Every protocol period a node probes one member, taken from a shuffled
 * round-robin list (SWIM §4.3: every member is probed within 2N-1 periods):
 * it sends PING and waits `probe_timeout` for an ACK; failing that it asks
 * `indirect` random members to PING-REQ the target on its behalf (SWIM
 * §3.1). A member still silent at the end of the period is *suspected*
 * (SWIM §4.2), not declared dead: the suspicion is gossiped, the suspected
 * member refutes it by gossiping ALIVE with a higher incarnation number,
 * and only a suspicion that outlives its timeout makes the member DEAD.
 *
 * Lifeguard adds three things, all here:
 *  - Local health (LHA-Probe, §4.1): a score 0..max_lhm that rises when this
 *    node misses nacks from its indirect probers, fails a probe, or has to
 *    refute a suspicion of itself, and falls on every successful probe. The
 *    probe interval and timeout are multiplied by (score + 1), so a slow
 *    node probes less eagerly instead of accusing healthy peers.
 *  - Local-health-aware suspicion (LHA-Suspicion, §4.2), memberlist's
 *    formula: with n the number of members, min = mult * max(1, log10(n)) *
 *    interval and max = 6 * min; a suspicion confirmed by c independent
 *    members (of k = mult - 2 expected) times out after
 *        max - (max - min) * log(c + 1) / log(k + 1)   (never below min)
 *  - Buddy system (§4.3): a PING to a suspected member carries the
 *    suspicion itself, so the member hears about it and refutes at once.
 *  PING-REQ asks the intermediary for a NACK when it gets no answer either,
 *  which is what lets the prober tell "target dead" from "I am slow".
 *
 * Updates (alive, suspect, dead, left, removed) are piggybacked on every
 * probe packet (SWIM §4.1, infection-style dissemination); each is sent
 * retransmit_mult * ceil(log10(n + 1)) times, fewest-sent first, as
 * memberlist does. Like memberlist, a node also gossips its queued updates
 * to `gossip_nodes` random members every `gossip_interval` (and to members
 * dead for less than `gossip_to_dead`, so that a member wrongly declared
 * dead hears it and refutes): piggybacking alone waits for probes, which
 * is too slow for a refutation to beat a suspicion timeout. Every
 * `pushpull_interval` a node exchanges its whole table with a random member
 * (anti-entropy, memberlist's push/pull); join is the same exchange with the
 * seeds. Push/pull packets go on the STREAM channel, which the driver carries
 * over TCP (they may exceed a datagram); everything else goes on the DATAGRAM
 * channel (UDP, < SWIM_PACKET_MAX).
 *
 * Additions beyond memberlist, all for liveness of the truth: a node
 * that hears an accusation older than its incarnation (one it refuted
 * already) queues its current ALIVE again, so the reply to the accuser's
 * probe carries the refutation; as Serf's reconnect does, a push/pull
 * goes to a DEAD member with probability dead/alive, so the two sides of a
 * healed partition, each holding the other dead, find each other again.
 * And two views that disagree are mended by datagrams, not left to the
 * next push/pull (swim.c, HOW A STALE VIEW HEALS): a packet from a member
 * held suspect or dead is answered with the accusation, a packet that
 * accused its receiver with the receiver's ALIVE; a member that answers
 * only through intermediaries gets our ALIVE in our next PING; a member
 * held dead gets a PING with our ALIVE every fourth probe period; a join
 * is retried until a push/pull answer arrives.
 *
 * Failure is transient: DEAD means unreachable now, never removed from the
 * ring. Only swim_remove (an operator's decision) takes a member out;
 * swim_ring_nodes builds the ring_snapshot_build input from the table.
 *
 * CLOCK OFFSETS
 *
 * A PING carries the prober's wall clock t1; the ACK carries the target's
 * receive and send times t2, t3; the prober reads t4 on arrival. As in NTP
 * (RFC 5905 §8), offset = ((t2 - t1) + (t3 - t4)) / 2 and rtt = (t4 - t1) -
 * (t3 - t2). Each peer keeps the offset of its lowest-RTT sample among the
 * last SWIM_CLOCK_SAMPLES (NTP's clock filter: the least delayed sample is
 * the least asymmetric). swim_clock_report lists peers beyond a bound.
 *
 * SECURITY
 *
 * Every packet is sealed with XChaCha20-Poly1305 (libsodium, IETF variant)
 * under the primary key of the key ring, with the cluster name as
 * associated data; a receiver tries the primary and then every accepted
 * key, so keys rotate without restart (install the new key as accepted
 * everywhere, make it primary everywhere, then drop the old one). A packet
 * that fails is dropped and counted in stats.auth_failed; it never reaches
 * the decoder. The decoder (swim_codec.c) is bounded and rejects anything
 * malformed.
 *
 *     envelope: | 0 u8 version = 1 | 1..24 nonce | 25.. ciphertext + 16-byte
 * tag | AD:       | version u8 | cluster name bytes |
 *
 * SANS-I/O
 *
 * No clock, socket or OS randomness in here. The driver calls swim_start,
 * swim_handle_packet for each packet that arrives, and swim_tick at or
 * after swim_next_deadline; every call takes `now` (monotonic ms, for
 * timeouts) and `wall` (wall ms, for clock offsets only). Effects come out
 * synchronously through the struct swim_effects callbacks, during the call.
 * Decisions leave trace lines (module "swim").
 *
 * THREADS: one instance is used by one thread at a time.
 */
#ifndef CHORUS_SWIM_H
#define CHORUS_SWIM_H

#include <stddef.h>
#include <stdint.h>

#include "chorus_error.h"
#include "chorus_prng.h"
#include "chorus_trace.h"
#include "chorus_types.h"
#include "ring.h"

/* Every datagram is shorter than this (sealed, envelope included): below
 * the 1500-byte Ethernet MTU with room for IPv6/UDP headers and tunnels. */
#define SWIM_PACKET_MAX 1400u
/* A push/pull (stream) packet never exceeds this. */
#define SWIM_STREAM_MAX (1u << 20)
/* Addresses ("10.0.0.7:7946"), including the NUL. */
#define SWIM_ADDR_MAX 64u
/* Cluster names, including the NUL. */
#define SWIM_CLUSTER_MAX 64u
#define SWIM_KEY_BYTES 32u
/* Primary plus accepted keys. */
#define SWIM_MAX_KEYS 4u
/* Envelope bytes added to every plaintext: version, nonce, tag. */
#define SWIM_SEAL_OVERHEAD (1u + 24u + 16u)
#define SWIM_CLOCK_SAMPLES 8u
/* Seeds swim_join accepts. */
#define SWIM_MAX_SEEDS 16u
/* The longest delay between two tries of an unanswered join (ms). */
#define SWIM_JOIN_RETRY_MAX 30000u

enum swim_state {
  SWIM_ALIVE = 0,
  SWIM_SUSPECT,
  SWIM_DEAD,    /* unreachable: suspicion timed out */
  SWIM_LEFT,    /* left gracefully (swim_leave) */
  SWIM_REMOVED, /* an operator removed it: out of the ring */
};

/* swim_state_name: "alive", "suspect", "dead", "left", "removed", "?". */
const char *swim_state_name(enum swim_state st);

enum swim_channel {
  SWIM_DATAGRAM = 0, /* UDP; the packet is < SWIM_PACKET_MAX bytes */
  SWIM_STREAM,       /* TCP; push/pull and join */
};

/* What a member says about itself (gossiped in ALIVE updates). */
struct swim_meta {
  char addr[SWIM_ADDR_MAX]; /* opaque to SWIM; handed back to send() */
  char dc[RING_NAME_MAX];
  char rack[RING_NAME_MAX];
  uint32_t vnodes;                /* T; 0 means RING_DEFAULT_VNODES */
  enum ring_node_state ownership; /* joining, normal, leaving, left */
};

/* One member as this node sees it. */
struct swim_member {
  chorus_node_id id;
  struct swim_meta meta;
  uint32_t incarnation;
  enum swim_state state;
  chorus_ms state_since; /* local `now` of the last state change */
  /* Clock estimate (valid when clock_samples > 0): the peer's wall clock
   * minus ours, and the round trip, in ms. */
  uint32_t clock_samples;
  int64_t offset_ms;
  int64_t rtt_ms;
};

/* Timing. Every duration is in ms of the monotonic clock. */
struct swim_timing {
  chorus_ms probe_interval;    /* protocol period */
  chorus_ms probe_timeout;     /* direct ACK wait, < probe_interval */
  uint32_t indirect;           /* k: PING-REQ intermediaries */
  uint32_t suspicion_mult;     /* memberlist SuspicionMult */
  uint32_t suspicion_max_mult; /* memberlist SuspicionMaxTimeoutMult */
  uint32_t retransmit_mult;    /* lambda: sends per update per log10(n+1) */
  uint32_t max_lhm;            /* Lifeguard local health ceiling */
  chorus_ms pushpull_interval; /* 0: never push/pull on a timer */
  chorus_ms gossip_interval;   /* 0: piggyback only, no gossip rounds */
  uint32_t gossip_nodes;       /* members per gossip round */
  chorus_ms gossip_to_dead;    /* keep gossiping to the dead this long */
};

/* swim_timing_lan: memberlist's LAN defaults: probe 1 s, timeout 500 ms,
 * 3 indirect, suspicion mult 4 (max 6x), retransmit mult 4, health max 8,
 * push/pull 30 s, gossip to 3 members every 200 ms (and to the dead for
 * 30 s). */
void swim_timing_lan(struct swim_timing *t);

/* swim_timing_local: for clusters on one machine (memberlist's Local):
 * probe 200 ms, timeout 100 ms, 3 indirect, suspicion mult 3 (max 6x),
 * retransmit mult 2, health max 8, push/pull 15 s, gossip to 3 members
 * every 100 ms (and to the dead for 15 s). */
void swim_timing_local(struct swim_timing *t);

/* Effects, called synchronously from inside swim_* calls. The instance
 * must not be re-entered from a callback. */
struct swim_effects {
  void *ctx;
  /* Send @len bytes (borrowed for the call; already sealed) to @addr. */
  void (*send)(void *ctx, const char *addr, enum swim_channel ch,
               const void *data, size_t len);
  /* A member was added, changed state, incarnation or metadata (may be
   * NULL). @m is borrowed for the call. Each call means "the ring input
   * changed": the driver rebuilds the snapshot (swim_ring_nodes) when
   * ring_changed is set. @old is the previous state (SWIM_ALIVE for a new
   * member with @is_new set). */
  void (*member_changed)(void *ctx, const struct swim_member *m,
                         enum swim_state old, int is_new, int ring_changed);
};

struct swim_config {
  chorus_node_id id;
  struct swim_meta meta; /* this node's own; copied */
  char cluster[SWIM_CLUSTER_MAX];
  uint8_t key[SWIM_KEY_BYTES]; /* initial primary key */
  struct swim_timing timing;
  uint64_t seed;          /* the instance PRNG (probe order, nonces) */
  int64_t clock_bound_ms; /* swim_clock_report's default bound */
  struct swim_effects fx;
  const struct chorus_tracer *tracer; /* borrowed for life; may be NULL */
};

struct swim_stats {
  uint64_t sent, received; /* packets */
  uint64_t bytes_sent;
  uint64_t auth_failed;          /* dropped: no key opened them */
  uint64_t malformed;            /* dropped: opened but failed to decode */
  uint64_t probes, probe_failed; /* periods with a target; ended unacked */
  uint64_t indirect_probes;      /* PING-REQs sent */
  uint64_t suspicions;           /* members this node suspected itself */
  uint64_t refutations;          /* suspicions of itself it refuted */
  uint64_t deaths;               /* members it declared dead */
  uint64_t updates_sent;         /* piggybacked updates */
};

struct swim;

/* swim_new: a new instance in *@out. @cfg is copied (tracer borrowed). The
 * member table holds only this node until swim_start/join or push/pull
 * bring others. Errors: CHORUS_EINVAL (NULL argument, zero intervals,
 * probe_timeout >= probe_interval, unterminated names), CHORUS_ENOMEM. */
int swim_new(const struct swim_config *cfg, struct swim **out);

/* swim_free: frees @s (NULL is fine). */
void swim_free(struct swim *s);

/* swim_start: arms the first probe period at @now and queues this node's
 * own ALIVE update. Call once. Errors: CHORUS_EINVAL (already started). */
int swim_start(struct swim *s, chorus_ms now);

/* swim_join: sends a join push/pull to each of @seeds (addresses, copied;
 * at most SWIM_MAX_SEEDS; this node's own address is skipped). Members
 * learned from the answers join the table. Until one answer arrives,
 * swim_tick asks the seeds again, after probe_interval, then doubling up
 * to SWIM_JOIN_RETRY_MAX (a table that is not empty, restored from a
 * saved one, does not count as joined). Call after swim_start; calling
 * again replaces the seeds. Errors: CHORUS_EINVAL, CHORUS_ENOMEM. */
int swim_join(struct swim *s, const char *const *seeds, size_t n, chorus_ms now,
              chorus_ms wall);

/* swim_add_member: adds a member known out of band (tests, bootstrap from a
 * saved table) as ALIVE with incarnation @inc, without gossiping it.
 * Errors: CHORUS_EINVAL (own id, unterminated names), CHORUS_EEXIST,
 * CHORUS_ENOMEM. */
int swim_add_member(struct swim *s, chorus_node_id id,
                    const struct swim_meta *meta, uint32_t inc, chorus_ms now);

/* swim_handle_packet: one packet arrived on either channel (@data borrowed
 * for the call). Packets that fail authentication or decoding are dropped
 * and counted (stats); that is not an error of the call.
 * Errors: CHORUS_ENOMEM (the packet was dropped for lack of memory). */
int swim_handle_packet(struct swim *s, const void *data, size_t len,
                       chorus_ms now, chorus_ms wall);

/* swim_tick: runs every deadline that is due at @now (probe timeouts,
 * period ends, suspicion timeouts, push/pull). Calling it early is harmless.
 * Errors: CHORUS_ENOMEM. */
int swim_tick(struct swim *s, chorus_ms now, chorus_ms wall);

/* swim_next_deadline: the earliest `now` at which swim_tick has work. */
chorus_ms swim_next_deadline(const struct swim *s);

/* swim_leave: gracefully leaves: gossips LEFT about itself (incarnation
 * bumped) and stops probing. The driver keeps calling swim_tick and
 * swim_handle_packet for a few probe intervals so the update spreads, then
 * frees the instance. Errors: CHORUS_ENOMEM. */
int swim_leave(struct swim *s, chorus_ms now, chorus_ms wall);

/* swim_set_meta: changes this node's own metadata (e.g. ownership state
 * joining -> normal); bumps the incarnation and gossips ALIVE.
 * Errors: CHORUS_EINVAL (unterminated names), CHORUS_ENOMEM. */
int swim_set_meta(struct swim *s, const struct swim_meta *meta, chorus_ms now);

/* swim_remove: the operator removes member @id from the cluster: it
 * becomes REMOVED (out of the ring) and the removal is gossiped. A removed
 * node that comes back must rejoin with a higher incarnation.
 * Errors: CHORUS_EINVAL (own id), CHORUS_ENOTFOUND, CHORUS_ENOMEM. */
int swim_remove(struct swim *s, chorus_node_id id, chorus_ms now);

/* Key ring. swim_keys_set installs @primary (sealing key) and @n accepted
 * keys (opening only; n <= SWIM_MAX_KEYS - 1); all copied; the old keys are
 * wiped. Errors: CHORUS_EINVAL. */
int swim_keys_set(struct swim *s, const uint8_t primary[SWIM_KEY_BYTES],
                  const uint8_t (*accepted)[SWIM_KEY_BYTES], size_t n);

/* Lookups. Pointers are borrowed until the next call on @s. */
size_t swim_member_count(const struct swim *s); /* including self */
const struct swim_member *swim_member_at(const struct swim *s, size_t i);
const struct swim_member *swim_member_find(const struct swim *s,
                                           chorus_node_id id);
/* swim_alive_count: members ALIVE or SUSPECT, including self. */
size_t swim_alive_count(const struct swim *s);
const struct swim_stats *swim_stats(const struct swim *s);
/* swim_health: the Lifeguard local health score (0 = healthy). */
uint32_t swim_health(const struct swim *s);
uint32_t swim_incarnation(const struct swim *s);
/* swim_epoch: counts ring-relevant changes; use as the snapshot version. */
uint64_t swim_epoch(const struct swim *s);

/* swim_ring_nodes: fills @out (room for @cap) with every member not
 * REMOVED, dead or not, as ring nodes (id, dc, rack, ownership, T), and
 * returns how many there are (more than @cap means @out was truncated).
 * Feed it to ring_snapshot_build with version swim_epoch(). */
size_t swim_ring_nodes(const struct swim *s, struct ring_node *out, size_t cap);

/* swim_ring_snapshot: builds the ring snapshot of the current table
 * (swim_ring_nodes) with replication @repl (copied) and version
 * swim_epoch(); on CHORUS_OK *@out is the caller's, as ring_snapshot_build
 * says. Call it from member_changed when ring_changed is set (or on every
 * change: every membership change may produce a new snapshot).
 * Errors: those of ring_snapshot_build (@errmsg may be NULL),
 * CHORUS_ENOMEM. */
int swim_ring_snapshot(const struct swim *s,
                       const struct ring_replication *repl,
                       struct ring_snapshot **out, char *errmsg);

/* swim_clock_report: writes the ids of members whose estimated |offset|
 * exceeds @bound_ms (< 0: the configured bound) into @out (room for @cap)
 * and returns how many exceed it. */
size_t swim_clock_report(const struct swim *s, int64_t bound_ms,
                         chorus_node_id *out, size_t cap);

/* swim_suspicion_timeout: memberlist's formula (see HOW IT WORKS) for
 * @n members and @confirmations of @k expected, with the timing's
 * interval and multipliers; exposed for tests and the report. */
chorus_ms swim_suspicion_timeout(const struct swim_timing *t, size_t n,
                                 uint32_t k, uint32_t confirmations);

/* ------------------------------------------------------------------------
 * The gossip codec (swim_codec.c), exposed for tests and the fuzz target.
 * ------------------------------------------------------------------------ */

enum swim_msg_kind {
  SWIM_MSG_PING = 1,
  SWIM_MSG_ACK,
  SWIM_MSG_PING_REQ,
  SWIM_MSG_NACK,
  SWIM_MSG_PUSH_PULL,
  SWIM_MSG_GOSSIP, /* updates only */
};

enum swim_update_kind {
  SWIM_UPD_ALIVE = 1,
  SWIM_UPD_SUSPECT,
  SWIM_UPD_DEAD, /* from == id: the member left */
  SWIM_UPD_REMOVE,
};

struct swim_update {
  enum swim_update_kind kind;
  chorus_node_id id;
  uint32_t incarnation;
  chorus_node_id from;   /* SUSPECT/DEAD/REMOVE: who says so */
  struct swim_meta meta; /* ALIVE only */
};

/* Push/pull flags. */
#define SWIM_PP_REPLY 1u
#define SWIM_PP_JOIN 2u

/* A decoded message header. Plaintext layout (little-endian):
 *
 *   | version u8 = 1 | kind u8 | sender u64 | seq u32 | body | n u16 | n
 * updates | body: PING      target u64, t1 i64, target_inc u32 ACK       t1
 * i64, t2 i64, t3 i64 (all 0 when relayed) PING_REQ  target u64, target_addr
 * str8 NACK      (empty) PUSH_PULL flags u8 GOSSIP    (empty) update: kind u8,
 * id u64, incarnation u32, then ALIVE     addr str8, dc str8, rack str8, vnodes
 * u16, ownership u8 others    from u64 str8: length u8 (< the field's size, no
 * NUL inside), bytes
 */
struct swim_msg {
  enum swim_msg_kind kind;
  chorus_node_id sender;
  uint32_t seq;
  chorus_node_id target;
  uint32_t target_inc;
  int64_t t1, t2, t3;
  char target_addr[SWIM_ADDR_MAX];
  uint8_t flags;
  uint16_t nupdates;
  /* cursor over the updates (swim_codec_next_update) */
  const uint8_t *upd;
  size_t upd_len;
  uint16_t upd_left;
};

#define SWIM_CODEC_VERSION 1u

/* swim_codec_header_size: bytes of @m's header and body (with the update
 * count), without updates. */
size_t swim_codec_header_size(const struct swim_msg *m);
/* swim_codec_update_size: bytes one encoded update takes. */
size_t swim_codec_update_size(const struct swim_update *u);
/* swim_codec_encode_header: writes @m's header and body into @buf (room
 * for swim_codec_header_size bytes), with m->nupdates as the count; the
 * updates follow, each from swim_codec_encode_update. Returns the bytes
 * written. */
size_t swim_codec_encode_header(const struct swim_msg *m, uint8_t *buf);
size_t swim_codec_encode_update(const struct swim_update *u, uint8_t *buf);

/* swim_codec_decode: parses the header and body of @len bytes at @buf
 * (borrowed: @out's update cursor points into it) and checks that exactly
 * nupdates well-formed updates follow, nothing more.
 * Errors: CHORUS_EVERSION (unknown version), CHORUS_EMALFORMED (anything
 * else wrong; @errmsg, which may be NULL, says what). */
int swim_codec_decode(const void *buf, size_t len, struct swim_msg *out,
                      char *errmsg);

/* swim_codec_next_update: the next update of a decoded message into @u;
 * 1 when one was read, 0 at the end. Only after swim_codec_decode
 * succeeded (which validated them all). */
int swim_codec_next_update(struct swim_msg *m, struct swim_update *u);

/* swim_seal: encrypts @plain (@plen bytes) into @out (room for plen +
 * SWIM_SEAL_OVERHEAD) under @key with @nonce (24 bytes) and the cluster
 * name as associated data; returns the sealed length. */
size_t swim_seal(const uint8_t key[SWIM_KEY_BYTES], const uint8_t nonce[24],
                 const char *cluster, const uint8_t *plain, size_t plen,
                 uint8_t *out);

/* swim_open: authenticates and decrypts @len sealed bytes into @plain
 * (room for len - SWIM_SEAL_OVERHEAD) with the first of @nkeys keys that
 * opens it; *@plen gets the plaintext length.
 * Errors: CHORUS_EMALFORMED (too short, wrong envelope version),
 * CHORUS_EAUTH (no key opened it). */
int swim_open(const uint8_t (*keys)[SWIM_KEY_BYTES], size_t nkeys,
              const char *cluster, const uint8_t *sealed, size_t len,
              uint8_t *plain, size_t *plen);

#endif /* CHORUS_SWIM_H */
