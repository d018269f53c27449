/* wire.h: the chorus wire protocol: framing, message schema, hardened
 * decoding, and the HELLO handshake decision.
 *
 * Every byte that reaches chorus from a socket crosses this code, so it is
 * written to make a crash or a memory balloon from outside impossible. It is
 * sans-I/O: it never touches a socket, a clock or a loop. node/ and the
 * client library feed it bytes and send what it encodes. docs/PROTOCOL.md is
 * the normative description of every message; this header is the C view.
 *
 * FRAMES (DESIGN.md §6)
 *
 *   offset  size  field
 *   0       4     body length L, u32 big-endian, 1 <= L <= limit
 *   4       L     body: exactly one msgpack array [type, request_id, f1, ...]
 *
 * The limit is per connection: WIRE_MAX_FRAME_PEER (16 MiB) between nodes,
 * WIRE_MAX_FRAME_CLIENT (2 MiB) on client connections; both configurable up
 * to WIRE_MAX_FRAME_HARD.
 *
 * HOW DECODING STAYS SAFE
 *
 * msgpack-c allocates whatever a header declares: `dd ff 00 00 00` (5 bytes)
 * asks for 4 billion array elements (msgpack-c issue 1013). chorus never
 * hands untrusted bytes to msgpack-c's unpacker. wire_decode() runs two
 * passes over a frame body, neither of which allocates on a header's word:
 *
 *  1. wire_msgpack_check(): a generic, non-allocating walk of the msgpack
 *     structure. Every str/bin/ext length must fit in the bytes left; every
 *     array/map count, added to all the objects still owed by enclosing
 *     containers, must fit in the bytes left (each object takes at least one
 *     byte); nesting is bounded (WIRE_MAX_DEPTH); the reserved byte 0xc1 and
 *     trailing bytes after the one top-level object are rejected.
 *  2. The typed decoder: a bounded cursor reader that checks every field's
 *     type, count and range against the message schema, and borrows byte
 *     fields from the frame instead of copying them.
 *
 * The only allocation a decode makes is the array of one list field (GET
 * reply siblings, set members, ring nodes, status stats, cluster members,
 * plan moves),
 * sized by a count that pass 1 already proved is backed by real bytes; it is
 * further checked to be at most WIRE_DECODE_FACTOR times the frame length
 * (and CLUSTER_REPLY's members to be at most WIRE_MAX_CLUSTER_MEMBERS,
 * CLUSTER_PLAN_REPLY's moves at most WIRE_MAX_PLAN_MOVES).
 *
 * OWNERSHIP OF DECODED MESSAGES
 *
 * A decoded struct wire_msg BORROWS every struct wire_bytes (keys, values,
 * contexts, object blobs, texts) from the frame body passed to wire_decode():
 * they stay valid while that body buffer does and are never NUL-terminated.
 * List arrays (values.items, nodes.items, ...) are OWNED by the message and
 * released by wire_msg_free(). To keep a field beyond the frame, copy it.
 *
 * VERSIONING AND TYPE NUMBERS
 *
 * A connection opens with HELLO carrying the client's protocol version; the
 * server answers WELCOME (accepted, with the version spoken from then on) or
 * ERROR and closes (wire_hello_check()). A message's field list is fixed for
 * a protocol version: a field is added only by a new version or a new type
 * number. Type numbers are grouped in blocks with room to grow; blocks are
 * reserved for anti-entropy, streaming and CAS (enum wire_type). A
 * well-formed frame with an unknown type decodes to CHORUS_ENOTSUP, so the
 * receiver can answer ERROR and keep the connection.
 */
#ifndef CHORUS_WIRE_H
#define CHORUS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus_error.h"
#include "chorus_types.h"

/* ------------------------------------------------------------------------
 * Limits
 * ------------------------------------------------------------------------ */

/* Version 2 added GET_REPLY2 and WRITE_REPLY2 (and nothing else); version
 * 3 added RING_REPLY2 and STATUS_REPLY2 (the replies with node names) and
 * the cluster metadata messages META, CLUSTER_QUERY, CLUSTER_REPLY and
 * CLUSTER_REMOVE. A node sends a reply type only on a connection that HELLO
 * opened in a version that has it, and answers an older connection in that
 * version's types (wire_reply_for); it sends META only on a peer connection
 * of version 3 or later. Version 4 added the client's datacenter to the
 * options (struct wire_options, dc: the 8th element of opts, written only
 * when set); a node forwards a request to a peer of an older version
 * without it (wire_reply_for). Version 5 added STREAM_CHUNK2 (STREAM_CHUNK
 * with @empty_to); a node answers a pull on an older connection with
 * STREAM_CHUNK (wire_reply_for); CAS and Paxos (144..152), LOCK,
 * LOCK_REPLY, KEYSPACE, KEYSPACE_REPLY, TRACE, REPLICA_TIMES, USER,
 * USER_REPLY, AUTH_CHALLENGE, AUTH_PROOF, AUTH_OK (a client's login),
 * CLUSTER_KEY, CLUSTER_KEY_REPLY, and options of 10 entries (a keyspace
 * and flags; a node forwards a request to an older peer without its
 * flags), and the peer challenge-response (PEER_CHALLENGE, PEER_PROOF,
 * PEER_TAG; a peer HELLO's credentials became the dialer's nonce). */
#define WIRE_PROTOCOL_VERSION 5u   /* the version this code speaks */
#define WIRE_PROTOCOL_MIN 1u       /* the oldest version it accepts */
#define WIRE_PROTOCOL_REPLY2 2u    /* the first version with GET/WRITE_REPLY2 */
#define WIRE_PROTOCOL_CLUSTER 3u   /* the first with names, cluster metadata */
#define WIRE_PROTOCOL_CLIENT_DC 4u /* the first with opts.dc */
#define WIRE_PROTOCOL_STREAM_GAPS 5u /* the first with STREAM_CHUNK2 */
/* The first with the peer challenge-response (PEER_CHALLENGE, PEER_PROOF,
 * PEER_TAG): a node refuses a peer HELLO of an older version, whose static
 * credentials a recording could replay. */
#define WIRE_PROTOCOL_PEER_AUTH 5u

#define WIRE_FRAME_PREFIX 4u                     /* u32 BE length */
#define WIRE_MAX_FRAME_PEER (16u * 1024 * 1024)  /* default, node <-> node */
#define WIRE_MAX_FRAME_CLIENT (2u * 1024 * 1024) /* default, client -> node */
#define WIRE_MAX_FRAME_HARD (64u * 1024 * 1024)  /* no limit may exceed this */
#define WIRE_MAX_DEPTH 32u     /* msgpack nesting; chorus messages use 3 */
#define WIRE_DECODE_FACTOR 16u /* decoded bytes <= 16 x frame length */

/* The key and value limits a client meets (docs/PROTOCOL.md, Limits): the
 * one definition libchorus checks before sending and chorusd checks before
 * coordinating, both answering CHORUS_ETOOBIG.
 *
 * Keys: the store takes keys of up to 8 + 64 KiB bytes (STORE_MAX_KEY), and
 * the longest key a key gets is its hint's, [target 8][token 8][key]
 * (replication/repl_int.h, REPL_HINT_PREFIX): 65,536 + 8 - 16 = 65,528
 * (replication checks the sum at compile time). A key field on the wire may
 * carry up to WIRE_MAX_KEY_FIELD bytes, so a node answers a key between the
 * two with ETOOBIG and keeps the connection, as it does for a value over its
 * limit; only a key over the field bound makes the frame malformed.
 *
 * Values: WIRE_MAX_VALUE is the default of chorusd's --max-value-bytes and
 * libchorus's fixed limit; it applies to a PUT's value and to each SET_ADD
 * member (which the wire also bounds by WIRE_MAX_MEMBER). A maximal key,
 * value and context fit together in one client frame. */
#define WIRE_MAX_KEY (64u * 1024 - 8u)  /* 65,528 */
#define WIRE_MAX_VALUE (1024u * 1024)   /* 1 MiB, default */
#define WIRE_MAX_KEY_FIELD (64u * 1024) /* a key field's wire bound */

/* Per-field limits (bytes unless stated). Fields without their own limit
 * (values, object blobs) are bounded by the frame limit. */
#define WIRE_MAX_CONTEXT (64u * 1024) /* opaque causal context */
#define WIRE_MAX_MEMBER (64u * 1024)  /* one set member */
#define WIRE_MAX_CLUSTER 255u         /* cluster name */
#define WIRE_MAX_CREDENTIALS 4096u
#define WIRE_MAX_ERROR_TEXT 1024u
#define WIRE_MAX_ADDR 255u /* "host:port" in ring replies */
#define WIRE_MAX_LABEL 64u /* datacenter and rack names */
#define WIRE_MAX_STAT_NAME 128u
#define WIRE_MAX_REPLICAS 64u          /* largest explicit r/w/pr/pw count */
#define WIRE_MAX_NAME 127u             /* a node's name (chorusd --id) */
#define WIRE_MAX_CLUSTER_MEMBERS 4096u /* members in CLUSTER_REPLY */
#define WIRE_SHARE_PPM_MAX 1000000u    /* a share of the ring: all of it */
#define WIRE_MAX_TIMEOUT_MS 86400000u  /* one day */
/* A PUT_TTL's time to live: ten years of 365 days, in ms. Longer is a
 * mistake (a unit confusion), not a retention policy. */
#define WIRE_MAX_TTL_MS (UINT64_C(10) * 365 * 86400 * 1000)
#define WIRE_MAX_PLAN_MOVES 4096u /* from -> to pairs in a plan */

/* Limits of one connection. */
struct wire_limits {
  uint32_t max_frame; /* body bytes, 1..WIRE_MAX_FRAME_HARD */
  uint32_t max_depth; /* 1..WIRE_MAX_DEPTH */
};

#define WIRE_LIMITS_PEER                                                       \
  ((struct wire_limits){WIRE_MAX_FRAME_PEER, WIRE_MAX_DEPTH})
#define WIRE_LIMITS_CLIENT                                                     \
  ((struct wire_limits){WIRE_MAX_FRAME_CLIENT, WIRE_MAX_DEPTH})

/* ------------------------------------------------------------------------
 * Message types. Numbers are stable: never renumber, only add.
 * ------------------------------------------------------------------------ */
enum wire_type {
  /* 1..15 session */
  WIRE_HELLO = 1,
  WIRE_WELCOME = 2,
  WIRE_ERROR = 3,
  /* 16..31 key-value (DVV sibling sets) */
  WIRE_GET = 16,
  WIRE_PUT = 17,
  WIRE_DELETE = 18,
  WIRE_GET_REPLY = 19,
  WIRE_WRITE_REPLY = 20,
  WIRE_GET_REPLY2 = 21,   /* since version 2: GET_REPLY with the object's */
  WIRE_WRITE_REPLY2 = 22, /* size and warnings; WRITE_REPLY likewise */
  WIRE_PUT_TTL = 23,      /* PUT with a time to live (issue 20); a node
                             without it answers ENOTSUP */
  /* 32..39 counters (PN-counter) */
  WIRE_COUNTER_ADD = 32,
  WIRE_COUNTER_READ = 33,
  WIRE_COUNTER_REPLY = 34,
  /* 40..47 sets (add-wins OR-set) */
  WIRE_SET_ADD = 40,
  WIRE_SET_REMOVE = 41,
  WIRE_SET_READ = 42,
  WIRE_SET_REPLY = 43,
  /* 48..51 LWW registers (issue 21; a node without them answers ENOTSUP) */
  WIRE_LWW_SET = 48,    /* write a value, stamped by the coordinator's HLC */
  WIRE_LWW_DELETE = 49, /* write "no value", stamped likewise */
  WIRE_LWW_READ = 50,
  WIRE_LWW_REPLY = 51,
  /* 52..63 maps (issue 21; a node without them answers ENOTSUP) */
  WIRE_MAP_UPDATE = 52, /* field operations, with an optional context */
  WIRE_MAP_READ = 53,
  WIRE_MAP_REPLY = 54,
  /* 64..79 replica protocol (coordinator <-> replica) */
  WIRE_REPLICA_READ = 64,
  WIRE_REPLICA_READ_REPLY = 65,
  WIRE_REPLICA_WRITE = 66,
  WIRE_REPLICA_ACK = 67,
  WIRE_REPLICA_WRITE2 = 68,    /* REPLICA_WRITE with the coordinator's ring
                                  epoch (topology changes) */
  WIRE_REPLICA_FORWARD = 69,   /* peer only: REPLICA_WRITE2 for a remote
                                  datacenter's forwarder to fan out there
                                  (a node without it answers ENOTSUP) */
  WIRE_REPLICA_RELAY_ACK = 70, /* peer only: a forwarder relays one of its
                                  datacenter's replicas' REPLICA_ACK */
  /* 80..95 hinted handoff */
  WIRE_HINT_DELIVER = 80,
  WIRE_HINT_ACK = 81,
  /* 96..111 ring and status */
  WIRE_RING_QUERY = 96,
  WIRE_RING_REPLY = 97,
  WIRE_STATUS_QUERY = 98,
  WIRE_STATUS_REPLY = 99,
  WIRE_GOSSIP = 100, /* a SWIM stream packet (push/pull, join) over TCP */
  /* since version 3: cluster metadata (a Raft group, meta/meta.h) */
  WIRE_META = 101,           /* peer only: the metadata layers' messages */
  WIRE_CLUSTER_QUERY = 102,  /* client: the metadata as a node sees it */
  WIRE_CLUSTER_REPLY = 103,  /* answers CLUSTER_QUERY and CLUSTER_REMOVE */
  WIRE_CLUSTER_REMOVE = 104, /* client: take a member out of the cluster */
  WIRE_RING_REPLY2 = 105,    /* since version 3: RING_REPLY with names */
  WIRE_STATUS_REPLY2 = 106,  /* since version 3: STATUS_REPLY with a name */
  /* Topology changes (issue 19; a node without them answers ENOTSUP) */
  WIRE_CLUSTER_REPLACE = 108,      /* client: a new member takes a dead one's
                                      place */
  WIRE_CLUSTER_DECOMMISSION = 107, /* client: a live member streams its
                                      ranges away, then leaves */
  /* 108: reserved (CLUSTER_REPLACE) */
  WIRE_CLUSTER_PLAN = 109,        /* client: what a change would move */
  WIRE_CLUSTER_PLAN_REPLY = 110,  /* answers CLUSTER_PLAN */
  WIRE_CLUSTER_STAGE = 111,       /* client: stage, commit or drop a change */
  WIRE_REPAIR_STATUS = 112,       /* client: this node's anti-entropy */
  WIRE_REPAIR_STATUS_REPLY = 113, /* answers REPAIR_STATUS, REPAIR_NOW */
  WIRE_REPAIR_NOW = 114,          /* client: an exchange as soon as possible */
  WIRE_REPAIR_RANGES = 115,       /* client: per-range status, and on request
                                     exchanges with a range's replicas (a
                                     node without it answers ENOTSUP) */
  WIRE_REPAIR_RANGES_REPLY = 116, /* answers REPAIR_RANGES */
  /* 117..127 reserved: anti-entropy administration */
  WIRE_STREAM_PULL = 128,   /* peer only: send me a token range's objects */
  WIRE_STREAM_CHUNK = 129,  /* peer only: its answer, one batch */
  WIRE_AAE_TREE_REQ = 130,  /* peer only: hashes of my anti-entropy tree */
  WIRE_AAE_TREE = 131,      /* peer only: its answer */
  WIRE_AAE_KEYS_REQ = 132,  /* peer only: (key, digest) of token ranges */
  WIRE_AAE_KEYS = 133,      /* peer only: its answer, one batch */
  WIRE_STREAM_CHUNK2 = 134, /* since version 5: STREAM_CHUNK with the
                               empty stretch after the range */
  /* 135..143 reserved: streaming (join/leave range transfer) */
  /* 144..159 compare-and-set (issue 23; since version 5: a node without
   * them answers ENOTSUP) */
  WIRE_CAS = 144,           /* client: a conditional write or serial read */
  WIRE_CAS_REPLY = 145,     /* answers CAS */
  WIRE_PAXOS_PREPARE = 148, /* peer only: the key's replicas, Paxos phase 1 */
  WIRE_PAXOS_PROMISE = 149, /* peer only: its answer */
  WIRE_PAXOS_PROPOSE = 150, /* peer only: phase 2 */
  WIRE_PAXOS_ACCEPT = 151,  /* peer only: its answer */
  WIRE_PAXOS_COMMIT = 152,  /* peer only: a chosen value (no answer) */
  /* 153..159 locks and fencing (issue 23; since version 5: a node without
   * them answers ENOTSUP) */
  WIRE_LOCK = 153,       /* client: a lock operation, or a fenced write */
  WIRE_LOCK_REPLY = 154, /* answers LOCK */
  /* 155..159 reserved: locks and fencing */
  /* since version 5 (issue 21): keyspaces */
  WIRE_KEYSPACE = 160,       /* client: list, create, alter or drop */
  WIRE_KEYSPACE_REPLY = 161, /* answers KEYSPACE */
  /* since version 5 (issue 25): request tracing */
  WIRE_TRACE = 162,         /* client: a traced request's timeline, just
                               before its reply (opts.flags TRACE) */
  WIRE_REPLICA_TIMES = 163, /* peer only: a replica's own times for a
                               traced REPLICA_READ or REPLICA_WRITE2,
                               just before its answer */
  /* since version 5 (issue 24): users */
  WIRE_USER = 176,       /* client: list, create, passwd, drop, grant, revoke */
  WIRE_USER_REPLY = 177, /* answers USER */
  /* since version 5 (issue 24): a client's login (docs/PROTOCOL.md,
   * Login); HELLO's credentials name the user and carry its nonce */
  WIRE_AUTH_CHALLENGE = 178, /* node -> client: salt, costs, server nonce */
  WIRE_AUTH_PROOF = 179,     /* client -> node: the SCRAM proof */
  WIRE_AUTH_OK = 180,        /* node -> client: the server's signature,
                                just before WELCOME */
  /* 181..183 reserved: login */
  /* since version 5 (issue 24): the peer link's challenge-response and
   * frame tags (node/core/peer_auth.h); peer only */
  WIRE_PEER_CHALLENGE = 184, /* acceptor: nonce_a and its MAC */
  WIRE_PEER_PROOF = 185,     /* dialer: its MAC */
  WIRE_PEER_TAG = 186,       /* the tag of the next frame (no TLS) */
  /* 187 reserved: peer authentication */
  /* since version 5 (issue 24): the gossip keyring */
  WIRE_CLUSTER_KEY = 188,       /* client: list, install, use, remove */
  WIRE_CLUSTER_KEY_REPLY = 189, /* answers CLUSTER_KEY */
  /* 164..175, 181..183, 187, 190..239 reserved: future use (176..191:
   * users and security)
   * 240..255 private / experimental, never sent by a release */
  WIRE_TYPE_MAX = 255
};

/* ------------------------------------------------------------------------
 * Field types
 * ------------------------------------------------------------------------ */

/* A byte string. Decoded: borrowed from the frame (see OWNERSHIP above).
 * Encoded: borrowed for the duration of the wire_encode() call. @ptr may be
 * NULL only when @len is 0. */
struct wire_bytes {
  const uint8_t *ptr;
  size_t len;
};

struct wire_bytes_list {
  size_t n;
  struct wire_bytes *items; /* decoded: owned by the message */
};

/* Quorum sizes: a positive number is that many replicas
 * (1..WIRE_MAX_REPLICAS); 0 asks for the node's default; a negative number is
 * a named level, resolved by the coordinator against the key's replication
 * factors (Dynamo §4.5; Cassandra's names). */
enum wire_level {
  WIRE_LEVEL_DEFAULT = 0,
  WIRE_ONE = -1,
  WIRE_TWO = -2,
  WIRE_THREE = -3,
  WIRE_QUORUM = -4,
  WIRE_ALL = -5,
  WIRE_LOCAL_ONE = -6,
  WIRE_LOCAL_QUORUM = -7,
  WIRE_EACH_QUORUM = -8,
  WIRE_LEVEL_MIN = -8
};

enum wire_read_repair {
  WIRE_RR_DEFAULT = 0,  /* the node's configured mode */
  WIRE_RR_OFF = 1,      /* never repair */
  WIRE_RR_ASYNC = 2,    /* reply first, repair in the background */
  WIRE_RR_BLOCKING = 3, /* repair the R replicas read before replying */
  WIRE_RR_MAX = 3
};

/* Consistency options of a client request; all-zero means "node defaults".
 * Wire: [r, w, pr, pw, timeout_ms, sloppy, read_repair]. */
struct wire_options {
  int32_t r, w;        /* read / write quorum (enum wire_level or a count) */
  int32_t pr, pw;      /* primary (non-hinted) replicas required, same scale */
  uint32_t timeout_ms; /* 0: node default; <= WIRE_MAX_TIMEOUT_MS */
  bool sloppy; /* true: writes may land on fallback nodes (sloppy quorum) */
  uint8_t read_repair; /* enum wire_read_repair */
  /* Version 4: the client's datacenter (0..WIRE_MAX_LABEL bytes): LOCAL_*
   * levels count the replicas there, and a node of another datacenter
   * hands such a request to a coordinator there. Empty: the coordinator's
   * own datacenter, as before version 4. */
  struct wire_bytes dc;
  /* Version 5 (a 10-entry opts; docs/PROTOCOL.md): the keyspace the key
   * lives in (0..WIRE_MAX_KEYSPACE_NAME bytes; empty: `default`), and
   * WIRE_OPT_* flags. A node resolves the keyspace where the request
   * enters and forwards the request without it (the key then carries
   * it), so peers of every version agree on what it names. */
  struct wire_bytes keyspace;
  uint8_t flags;
};

/* Request option flags (opts.flags, version 5). Unknown bits are
 * malformed. */
#define WIRE_OPT_TRACE 0x1u /* answer with the request's timeline */
#define WIRE_OPT_FLAGS_ALL 0x1u

enum wire_role { WIRE_ROLE_CLIENT = 0, WIRE_ROLE_PEER = 1, WIRE_ROLE_MAX = 1 };

enum wire_node_state {
  WIRE_NODE_UP = 0,
  WIRE_NODE_SUSPECT = 1,
  WIRE_NODE_DOWN = 2,
  WIRE_NODE_JOINING = 3,
  WIRE_NODE_LEAVING = 4,
  WIRE_NODE_STATE_MAX = 4
};

/* Reply flags (GET_REPLY2, WRITE_REPLY2): warnings about the object under
 * the key. Bits not listed are reserved: senders send 0, receivers ignore
 * them. */
#define WIRE_REPLY_TRUNCATED                                                   \
  0x1u /* GET: values holds some of the siblings                               \
          only (the reply would not fit a                                      \
          frame); the context covers them all */
#define WIRE_REPLY_SIBLINGS                                                    \
  0x2u /* more siblings than the node's warn                                   \
          level (DVV_WARN): resolve them */
#define WIRE_REPLY_LARGE                                                       \
  0x4u /* the object is over half the node's byte                              \
          budget for one object */
#define WIRE_REPLY_FLAGS_MAX 0xffu

/* Replica write flags. Unknown bits are malformed. */
#define WIRE_REPLICA_DURABLE 0x1u /* ack only after a sync barrier */
#define WIRE_REPLICA_FLAGS_ALL 0x1u

/* ------------------------------------------------------------------------
 * Messages. Field order here is the wire order after [type, request_id].
 * ------------------------------------------------------------------------ */

struct wire_hello {
  uint32_t version;              /* WIRE_PROTOCOL_VERSION of the sender */
  struct wire_bytes cluster;     /* <= WIRE_MAX_CLUSTER */
  uint8_t role;                  /* enum wire_role */
  chorus_node_id node_id;        /* 0 for clients */
  struct wire_bytes credentials; /* opaque, <= WIRE_MAX_CREDENTIALS */
};

struct wire_welcome {
  uint32_t version; /* the version spoken on this connection */
  struct wire_bytes cluster;
  chorus_node_id node_id; /* the answering node */
};

struct wire_error {
  int32_t code;           /* a CHORUS_E* code, < 0 */
  struct wire_bytes text; /* <= WIRE_MAX_ERROR_TEXT, for humans */
};

struct wire_get {
  struct wire_bytes key; /* 1..WIRE_MAX_KEY_FIELD; WIRE_MAX_KEY served */
  struct wire_options opts;
};

/* PUT and PUT_TTL (which adds @ttl_ms; a PUT has none, 0). */
struct wire_put {
  struct wire_bytes key;
  struct wire_bytes value;   /* bounded by the frame; WIRE_MAX_VALUE served */
  struct wire_bytes context; /* empty: adds a sibling; <= WIRE_MAX_CONTEXT */
  struct wire_options opts;
  /* PUT_TTL: the value reads as not found from the coordinator's HLC time
   * of the write + ttl_ms on; 0: never. <= WIRE_MAX_TTL_MS. */
  uint64_t ttl_ms;
};

struct wire_delete {
  struct wire_bytes key;
  struct wire_bytes context;
  struct wire_options opts;
};

/* Reply to GET (GET_REPLY, and GET_REPLY2 since version 2): the siblings
 * and the causal context that covers them. Zero values means not found (the
 * context may still be non-empty: it then covers tombstones, and a PUT with
 * it supersedes them). GET_REPLY2 also says how many live siblings the
 * object has and how big it is; with WIRE_REPLY_TRUNCATED, values holds
 * only the first of them (as many as fit), while the context still covers
 * every one, so a PUT with it replaces siblings the client never saw. */
struct wire_get_reply {
  struct wire_bytes_list values;
  struct wire_bytes context;
  uint8_t flags;     /* GET_REPLY2: WIRE_REPLY_* */
  uint32_t siblings; /* GET_REPLY2: live siblings in the object */
  uint64_t bytes;    /* GET_REPLY2: the object's encoded size */
};

/* Reply to PUT, DELETE, SET_ADD, SET_REMOVE, COUNTER_ADD (WRITE_REPLY, and
 * WRITE_REPLY2 since version 2). */
struct wire_write_reply {
  struct wire_bytes context; /* the context of the written object */
  uint8_t flags;             /* WRITE_REPLY2: WIRE_REPLY_* */
  uint32_t siblings;         /* WRITE_REPLY2: live siblings after the write */
  uint64_t bytes;            /* WRITE_REPLY2: the object's encoded size */
};

struct wire_counter_add {
  struct wire_bytes key;
  int64_t delta;
  uint64_t op_id; /* client-chosen, makes a retried add idempotent */
  struct wire_options opts;
};

struct wire_counter_read {
  struct wire_bytes key;
  struct wire_options opts;
};

struct wire_counter_reply {
  int64_t value;
};

struct wire_set_add {
  struct wire_bytes key;
  struct wire_bytes_list members; /* each <= WIRE_MAX_MEMBER */
  struct wire_options opts;
};

struct wire_set_remove {
  struct wire_bytes key;
  struct wire_bytes_list members;
  struct wire_bytes context; /* observed adds to remove (add-wins) */
  struct wire_options opts;
};

struct wire_set_read {
  struct wire_bytes key;
  struct wire_options opts;
};

struct wire_set_reply {
  struct wire_bytes_list members;
  struct wire_bytes context;
};

struct wire_lww_set {
  struct wire_bytes key;
  struct wire_bytes value; /* <= the node's value limit */
  struct wire_options opts;
};

/* LWW_DELETE and LWW_READ share the layout {key, opts}. */
struct wire_lww_key {
  struct wire_bytes key;
  struct wire_options opts;
};

/* The register's winning write: its value when @present, the HLC time the
 * coordinator stamped it with and that coordinator's node id (0, 0 for a
 * key never written). */
/* The WRITE_REPLY(2) context of an LWW_SET or LWW_DELETE (since version
 * 5): the register's stamp after the write, the one this write got: the
 * HLC time then the node id, 8 bytes each, big-endian. Empty from an
 * older node. */
#define WIRE_LWW_STAMP_BYTES 16u
struct wire_lww_reply {
  uint8_t present; /* 0: absent (never written, or deleted), 1: @value */
  struct wire_bytes value;
  uint64_t ts;   /* hlc_time: milliseconds << 16 | logical counter */
  uint64_t node; /* the writer's node id */
};

/* MAP_UPDATE: @ops is crdt_map_ops_encode's encoding (crdt/crdt.h): 1..256
 * field operations, applied in order, all or nothing. @context (a
 * MAP_REPLY's) makes removes and flag disables observed-removes: they drop
 * only what that read saw; empty: what the coordinator's copy holds. */
struct wire_map_update {
  struct wire_bytes key;
  struct wire_bytes ops;
  struct wire_bytes context; /* crdt_ctx encoding; <= WIRE_MAX_CONTEXT */
  struct wire_options opts;
};

struct wire_map_read {
  struct wire_bytes key;
  struct wire_options opts;
};

/* MAP_REPLY: the joined map (crdt_map_encode's encoding; empty when the key
 * was never written) and its causal context for later removes. */
struct wire_map_reply {
  struct wire_bytes map;
  struct wire_bytes context;
};

/* CAS: @cond (enum wire_cas_cond) judged on the key's current value,
 * @expected the old value for IF_VALUE and DELETE_IF_VALUE, the context
 * (WIRE_CAS_CONTEXT_LEN bytes, else EINVAL) for IF_MATCH and
 * DELETE_IF_MATCH; @value the new value for SET, IF_ABSENT, IF_VALUE and
 * IF_MATCH (other fields empty). A CAS key holds only what CAS writes:
 * PUT, GET, DELETE (and the typed requests) on it are ETYPE, and CAS on a
 * key of another type likewise. */
enum wire_cas_cond {
  WIRE_CAS_READ = 0,            /* a serial read: answers the current value */
  WIRE_CAS_SET = 1,             /* always applies */
  WIRE_CAS_IF_ABSENT = 2,       /* applies when the key has no value */
  WIRE_CAS_IF_VALUE = 3,        /* applies when the value equals @expected */
  WIRE_CAS_DELETE_IF_VALUE = 4, /* deletes when it equals @expected */
  WIRE_CAS_IF_MATCH = 5,        /* applies when the value is the version the
                                   context @expected names */
  WIRE_CAS_DELETE_IF_MATCH = 6, /* deletes when it is that version */
  WIRE_CAS_COND_MAX = 6,
};
/* A CAS context: opaque to clients; the ballot that committed the value
 * (replication/paxos.h, CONTEXTS): [time u64 BE][node u64 BE]; all zeros
 * for a key never written. */
#define WIRE_CAS_CONTEXT_LEN 16u
struct wire_cas {
  struct wire_bytes key;
  uint8_t cond;
  struct wire_bytes expected;
  struct wire_bytes value; /* <= the node's value limit */
  struct wire_options opts;
};

/* CAS_REPLY: whether the update was applied (0 for a read, or a condition
 * that failed), the value the operation found (the value before the
 * update; for a read or a failed condition, the current one), and the
 * context of the key's value after the operation (applied: of the value
 * just written; else of the value found), for a later IF_MATCH. An
 * outcome the coordinator cannot tell is no reply but ERROR ETIMEDOUT
 * ("may or may not have been applied"). */
struct wire_cas_reply {
  uint8_t applied; /* 0 or 1 */
  uint8_t present; /* 0: the key had no value, 1: @value */
  struct wire_bytes value;
  struct wire_bytes context; /* WIRE_CAS_CONTEXT_LEN bytes */
};

/* LOCK (issue 23, docs/PROTOCOL.md "Locks and fencing"): @op on a lock,
 * a CAS key of its own namespace: @key is WIRE_LOCK_PREFIX then the
 * lock's name (1..WIRE_MAX_LOCK_NAME bytes), and no other request may
 * name a key with that prefix. ACQUIRE takes @holder (informative) and
 * @ttl_ms (1..WIRE_MAX_TTL_MS); RENEW takes @token and @ttl_ms; RELEASE
 * @token; STATUS nothing (a serial read). FENCED_PUT writes @value to the
 * data key @key (a CAS key, outside the lock namespace) when @token is at
 * least the highest token the key has seen for the lock named @name. */
#define WIRE_LOCK_PREFIX "\xc1lock:"
#define WIRE_LOCK_PREFIX_LEN 6u
#define WIRE_MAX_LOCK_NAME 255u
#define WIRE_MAX_LOCK_HOLDER 255u
enum wire_lock_op {
  WIRE_LOCK_STATUS = 0,
  WIRE_LOCK_ACQUIRE = 1,
  WIRE_LOCK_RENEW = 2,
  WIRE_LOCK_RELEASE = 3,
  WIRE_LOCK_FENCED_PUT = 4,
  WIRE_LOCK_OP_MAX = 4,
};
struct wire_lock {
  uint8_t op; /* enum wire_lock_op */
  struct wire_bytes key;
  struct wire_bytes name;  /* FENCED_PUT: the lock's name */
  struct wire_bytes value; /* FENCED_PUT; <= the node's value limit */
  struct wire_bytes holder;
  uint64_t token;
  uint64_t ttl_ms;
  struct wire_options opts;
};

/* Why a LOCK was not applied (replication/paxos.h, enum paxos_refusal). */
enum wire_lock_refusal {
  WIRE_LOCK_OK = 0,         /* applied, or a STATUS */
  WIRE_LOCK_HELD = 1,       /* ACQUIRE: another holder's lease is live */
  WIRE_LOCK_BAD_TOKEN = 2,  /* RENEW, RELEASE: not held at that token */
  WIRE_LOCK_EXPIRED = 3,    /* RENEW: the lease is over */
  WIRE_LOCK_FENCED = 4,     /* FENCED_PUT: token below the key's highest */
  WIRE_LOCK_NOT_FENCED = 5, /* (CAS only; never in a LOCK_REPLY) */
  WIRE_LOCK_CORRUPT = 6,    /* a record that does not decode, or a key
                               fenced by too many locks */
  WIRE_LOCK_REFUSAL_MAX = 6,
};

/* LOCK_REPLY: whether applied, and why not (@refusal). For a lock op, the
 * lock's record after the operation when applied, else as found: @held,
 * @token (the lock's last token: it stays after a release or an expiry),
 * @holder, @expires (ms, the coordinator's HLC physical time) and
 * @left_ms (the lease left on the coordinator's clock; 0 when free or
 * expired). For FENCED_PUT: @token the key's highest token for the lock
 * before the write, @present/@value the value found. */
struct wire_lock_reply {
  uint8_t applied; /* 0 or 1 */
  uint8_t refusal; /* enum wire_lock_refusal */
  uint8_t held;    /* 0 or 1 */
  uint64_t token;
  struct wire_bytes holder;
  uint64_t expires, left_ms;
  uint8_t present; /* FENCED_PUT */
  struct wire_bytes value;
};

/* PAXOS_PREPARE, PAXOS_PROPOSE, PAXOS_COMMIT (replication/paxos.h): the
 * ballot (the proposer's HLC time, its node id); the value for PROPOSE
 * and COMMIT (PREPARE's schema has no value fields). */
struct wire_paxos {
  chorus_token token;
  struct wire_bytes key;
  uint64_t ballot_time, ballot_node;
  uint8_t present;
  struct wire_bytes value;
};

/* PAXOS_PROMISE: the answer to PREPARE of the ballot (@round_*): @ok
 * whether promised, and the acceptor's state after it (paxos.h's stored
 * form, decoded as carefully as from disk). */
struct wire_paxos_promise {
  uint64_t round_time, round_node;
  uint8_t ok;
  struct wire_bytes state;
};

/* PAXOS_ACCEPT: the answer to PROPOSE of the ballot: whether accepted,
 * and the acceptor's promise after it. */
struct wire_paxos_accept {
  uint64_t round_time, round_node;
  uint8_t accepted;
  uint64_t promised_time, promised_node;
};

struct wire_replica_read {
  chorus_token token;
  struct wire_bytes key;
};

/* An empty object means the replica holds nothing for the key. */
struct wire_replica_read_reply {
  struct wire_bytes object; /* opaque crdt/ codec blob */
};

struct wire_replica_write {
  chorus_token token;
  struct wire_bytes key;
  struct wire_bytes object; /* merged (joined) by the replica */
  uint8_t flags;            /* WIRE_REPLICA_* */
  uint64_t epoch;           /* REPLICA_WRITE2: the ring epoch the coordinator
                               resolved the key in (0 in REPLICA_WRITE) */
};

struct wire_replica_ack {
  int32_t status; /* CHORUS_OK or a CHORUS_E* code */
};

/* Bit 63 of the request id of a REPLICA_READ or REPLICA_WRITE2 asks the
 * replica for its times: it answers REPLICA_TIMES, then its usual answer,
 * both under that id. A coordinator's own ids stay below 2^62
 * (replication/repl_int.h), so the bit is free; an older replica echoes
 * the id and sends no times, which costs nothing but the times (a flag
 * bit would be malformed to it, WIRE_REPLICA_FLAGS_ALL, and close the
 * link). */
#define WIRE_REQ_TRACE (UINT64_C(1) << 63)

/* REPLICA_TIMES: what a replica's own monotonic clock says of a traced
 * request, in ms after it received it (so no two nodes' clocks are ever
 * compared): @synced 1 when its answer waited for a sync barrier (a
 * durable write, or a read of data not yet synced), which passed
 * @synced_ms after receipt; its answer went out @answered_ms after
 * receipt. */
struct wire_replica_times {
  uint8_t synced; /* 0 or 1 */
  uint32_t synced_ms, answered_ms;
};

/* Node ids a REPLICA_FORWARD names at most. */
#define WIRE_MAX_FORWARD_TARGETS 16u

/* REPLICA_FORWARD: a coordinator's write sent once to one replica of a
 * remote datacenter (the forwarder), which stores it like a REPLICA_WRITE2
 * (acknowledging it itself with REPLICA_ACK), sends it as REPLICA_WRITE2 to
 * each of @targets, and relays each one's REPLICA_ACK as REPLICA_RELAY_ACK
 * under the coordinator's request id (Cassandra's forwarding of writes to
 * other datacenters). */
struct wire_replica_forward {
  struct wire_replica_write w; /* as in REPLICA_WRITE2 */
  /* The other replicas of the forwarder's datacenter: 8-byte big-endian
   * node ids back to back, 8..8 * WIRE_MAX_FORWARD_TARGETS bytes; the
   * receiver checks that the length is a multiple of 8. */
  struct wire_bytes targets;
  /* ms the coordinator waits for the acks (its request's timeout): how
   * long the forwarder relays them; 0: the forwarder's default. */
  uint32_t timeout_ms;
};

/* REPLICA_RELAY_ACK: replica @replica answered the forwarded write with
 * @status (its REPLICA_ACK's). */
struct wire_replica_relay_ack {
  chorus_node_id replica;
  int32_t status;
};

struct wire_hint_deliver {
  chorus_node_id target; /* the node the hint was kept for */
  uint64_t hint_seq;     /* the sender's hint sequence, echoed in the ack */
  chorus_token token;
  struct wire_bytes key;
  struct wire_bytes object;
};

struct wire_hint_ack {
  uint64_t hint_seq;
  int32_t status;
};

/* GOSSIP: SWIM's stream channel (ring/swim/swim.h, SWIM_STREAM) rides the
 * peer TCP connection; the packet is sealed by SWIM itself. */
struct wire_gossip {
  struct wire_bytes packet; /* 1..frame */
};

/* PEER_CHALLENGE, PEER_PROOF, PEER_TAG: the peer link's authentication
 * (docs/PROTOCOL.md, "Peer links"; node/core/peer_auth.h). A peer HELLO's
 * credentials are the dialer's nonce (WIRE_PEER_NONCE_BYTES); the
 * acceptor answers WELCOME then PEER_CHALLENGE; the dialer PEER_PROOF.
 * On a link without TLS, every later frame follows a PEER_TAG. */
#define WIRE_PEER_NONCE_BYTES 32u
#define WIRE_PEER_MAC_BYTES 32u
#define WIRE_PEER_TAG_BYTES 16u
struct wire_peer_challenge {
  struct wire_bytes nonce; /* WIRE_PEER_NONCE_BYTES */
  struct wire_bytes mac;   /* WIRE_PEER_MAC_BYTES */
};

struct wire_peer_proof {
  struct wire_bytes mac; /* WIRE_PEER_MAC_BYTES */
};

struct wire_peer_tag {
  struct wire_bytes tag; /* WIRE_PEER_TAG_BYTES */
};

/* META: the opaque messages between two nodes' metadata layers (Raft RPCs
 * and proposals, meta.h's struct meta_msg, encoded by meta_codec.c). Peer
 * connections only, of version 3 or later. */
struct wire_meta {
  struct wire_bytes msg; /* 1..frame */
};

/* One node of the ring (RING_REPLY, RING_REPLY2). @name travels only in
 * RING_REPLY2 (version 3): RING_REPLY's nodes have no name entry, so a
 * version-1 or -2 decoder, which wants exactly five, still reads them; a
 * decoded RING_REPLY leaves it empty and encoding one ignores it. */
struct wire_ring_node {
  chorus_node_id id;
  struct wire_bytes addr; /* <= WIRE_MAX_ADDR */
  struct wire_bytes dc;   /* <= WIRE_MAX_LABEL */
  struct wire_bytes rack; /* <= WIRE_MAX_LABEL */
  uint8_t state;          /* enum wire_node_state */
  struct wire_bytes name; /* RING_REPLY2: <= WIRE_MAX_NAME; empty: unknown */
};

struct wire_ring_reply {
  uint64_t epoch;  /* ring version; grows with every ownership change */
  uint32_t vnodes; /* tokens per node (DESIGN.md §5) */
  size_t nnodes;
  struct wire_ring_node *nodes; /* decoded: owned by the message */
};

struct wire_stat {
  struct wire_bytes name; /* <= WIRE_MAX_STAT_NAME */
  int64_t value;
};

/* STATUS_REPLY, and STATUS_REPLY2 since version 3, which adds the node's
 * name (empty in a decoded STATUS_REPLY, ignored when encoding one). */
struct wire_status_reply {
  chorus_node_id node_id;
  struct wire_bytes name; /* STATUS_REPLY2: <= WIRE_MAX_NAME */
  size_t nstats;
  struct wire_stat *stats; /* decoded: owned by the message */
};

/* A member's state in the cluster metadata (meta.h, enum meta_member_state:
 * the same numbers). */
enum wire_member_state {
  WIRE_MEMBER_JOINING = 1,
  WIRE_MEMBER_NORMAL = 2,
  WIRE_MEMBER_LEAVING = 3,
  WIRE_MEMBER_LEFT = 4,
  WIRE_MEMBER_REMOVED = 5,
  WIRE_MEMBER_REPLACING = 6,
  WIRE_MEMBER_STATE_MAX = 6
};

/* A member's part in the Raft group (raft.h's roles, and none). */
enum wire_raft_role {
  WIRE_RAFT_ROLE_NONE = 0,    /* not in the Raft configuration */
  WIRE_RAFT_ROLE_VOTER = 1,   /* votes */
  WIRE_RAFT_ROLE_STANDBY = 2, /* receives the log, does not vote (learner) */
  WIRE_RAFT_ROLE_SPARE = 3,   /* in the configuration, receives nothing */
  WIRE_RAFT_ROLE_MAX = 3
};

/* A member's liveness as the answering node's SWIM sees it. */
enum wire_alive {
  WIRE_ALIVE_UNKNOWN = 0, /* SWIM has not heard of it */
  WIRE_ALIVE_ALIVE = 1,
  WIRE_ALIVE_SUSPECT = 2,
  WIRE_ALIVE_DEAD = 3,
  WIRE_ALIVE_LEFT = 4,
  WIRE_ALIVE_MAX = 4
};

/* The answering node's Raft state. */
enum wire_raft_state {
  WIRE_RAFT_UNAVAILABLE = 0, /* no Raft instance (starting, or none) */
  WIRE_RAFT_FOLLOWER = 1,
  WIRE_RAFT_CANDIDATE = 2,
  WIRE_RAFT_LEADER = 3,
  WIRE_RAFT_STATE_MAX = 3
};

struct wire_cluster_member {
  chorus_node_id id;      /* xxh3-64 of the name */
  struct wire_bytes name; /* 1..WIRE_MAX_NAME */
  struct wire_bytes addr; /* <= WIRE_MAX_ADDR, its peer address */
  struct wire_bytes dc;   /* <= WIRE_MAX_LABEL */
  struct wire_bytes rack; /* <= WIRE_MAX_LABEL */
  uint8_t state;          /* enum wire_member_state, 1..5 */
  uint8_t role;           /* enum wire_raft_role */
  uint8_t alive;          /* enum wire_alive */
  uint32_t vnodes;        /* its tokens; 0: the ring's default */
  uint32_t share_ppm;     /* its share of the ring, parts per million */
};

/* CLUSTER_REPLY: the cluster metadata as the answering node has applied it,
 * with what it knows of the Raft group. */
struct wire_cluster_reply {
  chorus_node_id node_id;        /* the answering node */
  struct wire_bytes node_name;   /* <= WIRE_MAX_NAME */
  chorus_node_id leader_id;      /* the Raft leader it knows; 0: none */
  struct wire_bytes leader_name; /* <= WIRE_MAX_NAME; empty with no leader */
  uint64_t term;                 /* its Raft term */
  uint64_t commit_index;         /* its Raft commit index */
  uint64_t applied_index;        /* the last index applied to its state */
  uint64_t epoch;                /* the metadata epoch (the ring version) */
  uint8_t raft_state;            /* enum wire_raft_state, of this node */
  size_t nmembers;               /* <= WIRE_MAX_CLUSTER_MEMBERS */
  struct wire_cluster_member *members; /* by id; decoded: owned */
};

/* KEYSPACE (version 5, issue 21): the keyspaces of the cluster metadata.
 * LIST answers at once from the node's metadata (@name empty: all of
 * them, else that one or ENOTFOUND); CREATE, ALTER and DROP go through the
 * Raft leader and are answered once applied, each with KEYSPACE_REPLY.
 * ALTER replaces every setting but the type (which cannot change: EINVAL).
 * A replication of its own is ENOTSUP until keys are placed per
 * keyspace. */
enum wire_ks_op {
  WIRE_KS_LIST = 0,
  WIRE_KS_CREATE = 1,
  WIRE_KS_ALTER = 2,
  WIRE_KS_DROP = 3,
  WIRE_KS_OP_MAX = 3
};
#define WIRE_MAX_KEYSPACE_NAME 47u
#define WIRE_MAX_KEYSPACE_TYPE 5u /* any, kv, lww, counter, set, map */
#define WIRE_MAX_KEYSPACE_REPL 255u
#define WIRE_MAX_KEYSPACE_SIBLINGS 100000u
struct wire_keyspace {
  uint8_t op;                    /* enum wire_ks_op */
  struct wire_bytes name;        /* 0..WIRE_MAX_KEYSPACE_NAME */
  uint8_t type;                  /* CREATE, ALTER: 0..WIRE_MAX_KEYSPACE_TYPE */
  struct wire_bytes replication; /* a spec ("3", "dc1:3,dc2:2"); empty: the
                                    cluster's */
  int32_t read, write;           /* default levels; 0: the node's */
  uint64_t ttl_ms;               /* default TTL; 0: none */
  uint32_t siblings_warn, siblings_max; /* 0: the node's */
};

/* KEYSPACE_REPLY: the keyspaces as the answering node applied them at
 * metadata index @applied, one record each in @entries, sorted by name:
 *   [id u32 BE][type u8][read i8][write i8][ttl_ms u64 BE]
 *   [siblings_warn u32 BE][siblings_max u32 BE][name_len u8][name]
 *   [repl_len u8][replication spec text, empty: the cluster's]
 * (a record's length must be exactly that: the client checks it). */
#define WIRE_KEYSPACE_RECORD_MIN 25u
#define WIRE_KEYSPACE_RECORD_MAX                                               \
  (WIRE_KEYSPACE_RECORD_MIN + WIRE_MAX_KEYSPACE_NAME + WIRE_MAX_KEYSPACE_REPL)
struct wire_keyspace_reply {
  uint64_t applied;
  struct wire_bytes_list entries; /* <= 256 records */
};

/* USER (version 5, issue 24): the users of the cluster metadata. LIST
 * answers at once (@name empty: every user, else that one or ENOTFOUND);
 * the others go through the Raft leader and are answered with USER_REPLY
 * once applied. CREATE and PASSWD carry the password's verifier
 * (client/auth/chorus_auth.h: the password itself never leaves the
 * client); GRANT and REVOKE a role (1 read, 2 write, 3 admin) on a
 * keyspace (empty: every keyspace). */
enum wire_user_op {
  WIRE_USER_LIST = 0,
  WIRE_USER_CREATE = 1,
  WIRE_USER_PASSWD = 2,
  WIRE_USER_DROP = 3,
  WIRE_USER_GRANT = 4,
  WIRE_USER_REVOKE = 5,
  WIRE_USER_OP_MAX = 5
};
#define WIRE_MAX_USER_NAME 47u
#define WIRE_USER_SALT_BYTES 16u
#define WIRE_USER_KEY_BYTES 32u
#define WIRE_MAX_USER_ROLE 3u
struct wire_user {
  uint8_t op;                   /* enum wire_user_op */
  struct wire_bytes name;       /* 0..WIRE_MAX_USER_NAME */
  struct wire_bytes salt;       /* CREATE, PASSWD: 16 bytes; else empty */
  uint32_t ops, mem_kib;        /* CREATE, PASSWD: Argon2id's costs */
  struct wire_bytes stored_key; /* CREATE, PASSWD: 32 bytes; else empty */
  struct wire_bytes server_key; /* CREATE, PASSWD: 32 bytes; else empty */
  uint8_t role;                 /* GRANT, REVOKE: 1..3 */
  struct wire_bytes keyspace;   /* GRANT, REVOKE: a name; empty: every */
};

/* USER_REPLY: the users as the answering node applied them at metadata
 * index @applied, one record each in @entries, sorted by name (never a
 * verifier):
 *   [name_len u8][name][ngrants u8] then per grant
 *   [role u8][keyspace_len u8][keyspace name, empty: every keyspace]
 * (a record's length must be exactly that: the client checks it). */
#define WIRE_USER_RECORD_MIN 3u
#define WIRE_USER_RECORD_MAX                                                   \
  (2u + WIRE_MAX_USER_NAME + 16u * (2u + WIRE_MAX_KEYSPACE_NAME))
/* AUTH_CHALLENGE: the node's answer to a HELLO whose credentials ask for
 * a login (client/auth/auth_login.h: [client nonce 24][user name]): the
 * user's Argon2id salt and costs, and the node's nonce. A name the node
 * does not know gets a salt derived from the name, so the challenge
 * looks the same and the login fails only at the proof. */
#define WIRE_AUTH_NONCE_BYTES 24u
struct wire_auth_challenge {
  struct wire_bytes salt;  /* WIRE_USER_SALT_BYTES */
  uint32_t ops, mem_kib;   /* Argon2id's costs (the client bounds them) */
  struct wire_bytes nonce; /* WIRE_AUTH_NONCE_BYTES, the node's */
};

/* AUTH_PROOF (client) carries the ClientProof; AUTH_OK (node) carries
 * the ServerSignature, which the client checks before it takes the
 * WELCOME that follows (chorus_auth.h). Both WIRE_USER_KEY_BYTES. */
struct wire_auth_key {
  struct wire_bytes key;
};

struct wire_user_reply {
  uint64_t applied;
  struct wire_bytes_list entries; /* <= 256 records */
};

/* CLUSTER_KEY (version 5, issue 24): the gossip keyring of the cluster
 * metadata (meta.h, struct meta_keyring). LIST answers at once; INSTALL
 * (@key: 32 bytes), USE and REMOVE (@id; REMOVE 0: the boot key, each
 * node's --cluster-key) go through the Raft leader and are answered with
 * CLUSTER_KEY_REPLY once applied, or refused (EBUSY naming a member that
 * has not applied the previous step yet: try again). A reply never
 * carries a key's bytes. */
enum wire_key_op {
  WIRE_KEY_LIST = 0,
  WIRE_KEY_INSTALL = 1,
  WIRE_KEY_USE = 2,
  WIRE_KEY_REMOVE = 3,
  WIRE_KEY_OP_MAX = 3
};
#define WIRE_KEY_BYTES 32u
struct wire_cluster_key {
  uint8_t op;            /* enum wire_key_op */
  uint32_t id;           /* USE, REMOVE */
  struct wire_bytes key; /* INSTALL: 32 bytes; else empty */
};

/* CLUSTER_KEY_REPLY: the keyring as the answering node applied it at
 * metadata index @applied: its @version, the @id the request named
 * (INSTALL: the new key's), one record per key in @entries, sorted by id,
 * the boot key first as id 0 while it is not retired:
 *   [id u32 BE][since u64 BE: the version its install made][primary u8]
 * and @behind: the names of members (comma-separated, cut at
 * WIRE_MAX_KEY_BEHIND bytes) that have not reported applying @version. */
#define WIRE_KEY_RECORD_BYTES 13u
#define WIRE_MAX_KEY_BEHIND 255u
struct wire_cluster_key_reply {
  uint64_t applied;
  uint64_t version;
  uint32_t id;
  struct wire_bytes_list entries; /* <= 5 records */
  struct wire_bytes behind;       /* 0..WIRE_MAX_KEY_BEHIND */
};

/* CLUSTER_REMOVE: take member @name out (to REMOVED). A live member is
 * refused (CHORUS_EBUSY) unless @force; the node forwards the change to the
 * Raft leader and answers CLUSTER_REPLY once it is applied. */
struct wire_cluster_remove {
  struct wire_bytes name; /* 1..WIRE_MAX_NAME */
  uint8_t force;          /* 0 or 1 */
};

/* CLUSTER_DECOMMISSION: member @name (live) hands its ranges to the
 * nodes that inherit them, then is LEFT (docs/PROTOCOL.md, Topology
 * changes). Refused with CHORUS_EBUSY while another change is under way
 * (the text names it) and when it would leave a datacenter fewer nodes
 * than its replication factor, unless @force; answered with CLUSTER_REPLY
 * once the change has begun (LEAVING). */
struct wire_cluster_decommission {
  struct wire_bytes name; /* 1..WIRE_MAX_NAME */
  uint8_t force;          /* 0 or 1 */
};

/* CLUSTER_REPLACE: the dead member @name is replaced by member @with (a
 * node started with --seeds, joining or normal): @name leaves the ring
 * (REMOVED) in the same change that makes @with normal, its ranges
 * streamed from the other replicas (docs/PROTOCOL.md, Topology changes).
 * Refused with CHORUS_EBUSY while @name is alive or another change is
 * under way; answered with CLUSTER_REPLY once the change has begun. */
struct wire_cluster_replace {
  struct wire_bytes name; /* 1..WIRE_MAX_NAME */
  struct wire_bytes with; /* 1..WIRE_MAX_NAME */
};

/* CLUSTER_STAGE: a change staged in the metadata for a later commit
 * (Riak's cluster plan / commit): @action DECOMMISSION, REMOVE or REPLACE
 * of member @name (REPLACE: by @with; @force as the command's) is checked
 * as the command itself would be and staged (replacing any staged one);
 * COMMIT applies the staged change (its own checks, then); CLEAR drops
 * it. Answered with CLUSTER_REPLY once committed to the metadata log. */
enum wire_stage_action {
  WIRE_STAGE_DECOMMISSION = 1,
  WIRE_STAGE_REMOVE = 2,
  WIRE_STAGE_REPLACE = 3,
  WIRE_STAGE_COMMIT = 4,
  WIRE_STAGE_CLEAR = 5,
  WIRE_STAGE_ACTION_MAX = 5
};

struct wire_cluster_stage {
  uint8_t action;         /* enum wire_stage_action */
  struct wire_bytes name; /* 0..WIRE_MAX_NAME; 1.. for the first three */
  struct wire_bytes with; /* 0..WIRE_MAX_NAME; REPLACE: 1.. */
  uint8_t force;          /* 0 or 1 */
};

/* CLUSTER_PLAN: a dry run of a topology change (docs/PROTOCOL.md,
 * Topology changes): the node applies the command @action would propose
 * to a copy of its metadata and answers CLUSTER_PLAN_REPLY with what would
 * move. Nothing is proposed. */
enum wire_plan_action {
  WIRE_PLAN_UNDER_WAY = 0,    /* the change under way, as it stands */
  WIRE_PLAN_JOIN = 1,         /* @name joins (a new member of @dc, @rack,
                                 @vnodes; or the member's own join) */
  WIRE_PLAN_DECOMMISSION = 2, /* @name hands its ranges over and leaves */
  WIRE_PLAN_REMOVE = 3,       /* @name (dead) is removed, streamed */
  WIRE_PLAN_ACTION_MAX = 3
};

struct wire_cluster_plan {
  uint8_t action;         /* enum wire_plan_action */
  struct wire_bytes name; /* 0..WIRE_MAX_NAME; empty only for UNDER_WAY */
  struct wire_bytes dc;   /* JOIN of a new member: <= WIRE_MAX_LABEL */
  struct wire_bytes rack; /* likewise */
  uint32_t vnodes;        /* likewise; 0: the ring's default; <= 65535 */
};

/* One from -> to pair of a plan: the ranges @to would gain from @from
 * (from 0: nobody held them), their share of the token space, and an
 * estimate of the keys and bytes they hold (per replica). */
struct wire_plan_move {
  chorus_node_id from, to;
  struct wire_bytes from_name; /* <= WIRE_MAX_NAME; empty: unknown */
  struct wire_bytes to_name;   /* <= WIRE_MAX_NAME */
  uint32_t ranges;             /* token ranges (ring_diff's) */
  uint32_t share_ppm;          /* of the token space, <= 1000000 */
  uint64_t est_keys, est_bytes;
};

/* CLUSTER_PLAN_REPLY: the would-be change at metadata @epoch (the epoch
 * the plan was made from). The estimates come from the answering node's
 * own store: @basis_keys keys and @basis_bytes bytes read over
 * @basis_ppm of the token space it replicates (0: no estimate). @note
 * says why the command itself would be refused or what to mind (empty:
 * nothing). */
struct wire_cluster_plan_reply {
  uint64_t epoch;
  uint64_t basis_keys, basis_bytes;
  uint32_t basis_ppm;           /* <= 1000000 */
  struct wire_bytes note;       /* <= WIRE_MAX_ERROR_TEXT */
  size_t nmoves;                /* <= WIRE_MAX_PLAN_MOVES */
  struct wire_plan_move *moves; /* decoded: owned */
};

/* STREAM_PULL: the objects of STORE_DATA whose token t is in
 * [@first, @last] (first <= last) and whose storage key ([token BE][key])
 * sorts after @after (empty: from the start of the range), at most about
 * @max_bytes of them, of those only the keys of the replication class
 * tagged @class_tag (ring.h, replication classes: 0, the cluster's, for
 * the default keyspace and every keyspace without a replication of its
 * own). Served only by a node whose ring epoch is at least @epoch (else
 * ERROR ESTALE), whose ring knows the class and classes keys as the
 * puller's plan does (@class_map, ring_snapshot_class_map; else ERROR
 * ESTALE: the metadata of one of them is behind: a keyspace created
 * keeps the epoch), and only once what it sends is durable. @class_tag
 * and @class_map (version 5) are optional, left out when 0, as in
 * AAE_TREE_REQ. */
struct wire_stream_pull {
  uint64_t epoch;
  chorus_token first, last;
  struct wire_bytes after; /* 0..8 + WIRE_MAX_KEY_FIELD */
  uint32_t max_bytes;      /* 1..WIRE_MAX_FRAME_PEER / 2 */
  uint64_t class_tag;      /* optional; 0: the cluster's class */
  uint64_t class_map;      /* optional; 0: no class but the cluster's */
};

/* STREAM_CHUNK and STREAM_CHUNK2: @entries alternates user key and
 * encoded object, in storage-key order; @sum is XXH3-64 over every entry
 * as [len u32 LE][bytes] (a batch that does not match is dropped and
 * pulled again); @more: 1 when the range holds more after the last entry.
 * STREAM_CHUNK2 only: with @more 0, the holder's read held no object
 * whose token is in (last, @empty_to], last being the pull's; @empty_to
 * <= last says nothing (STREAM_CHUNK: 0). */
struct wire_stream_chunk {
  struct wire_bytes_list entries; /* an even count */
  uint64_t sum;
  uint8_t more; /* 0 or 1 */
  chorus_token empty_to;
};

/* Anti-entropy (replication/repl_aae.c, docs/ARCHITECTURE.md
 * "Anti-entropy"). Lists of fixed-size numbers travel as bin fields of
 * big-endian entries; a length that is not a whole number of entries, or
 * over the count bound, is refused by the receiver (the schema bounds the
 * bytes only).
 *
 * AAE_TREE_REQ: the hashes of the sender's tree entries @ids (u32 BE
 * each, at most WIRE_AAE_MAX_IDS) at @level (0: branches, 1: segments) of
 * a tree of 2^@bits segments; every entry must lie inside one of
 * @intervals ([first BE][last BE], 16 bytes each, sorted, disjoint, at
 * most WIRE_AAE_MAX_INTERVALS). Served only at ring epoch @epoch (else
 * ERROR ESTALE) and once the tree is built (else EUNAVAILABLE).
 *
 * @class_tag (version 5, optional: left out when 0) names the replication
 * class whose tree and keys are meant (ring_snapshot_class_tag; 0: the
 * cluster's): a node that knows no such class at @epoch answers ESTALE,
 * one that is not a replica of an interval in that class EINVAL.
 * @class_map (version 5, optional: left out when 0, as in a cluster with
 * no class but its own) is the requester's ring_snapshot_class_map: which
 * keyspace is in which class changes without the epoch (a keyspace
 * created), and trees compare only between nodes that class keys alike:
 * another map is ESTALE. */
#define WIRE_AAE_MAX_INTERVALS 4096u
#define WIRE_AAE_MAX_IDS 8192u
#define WIRE_AAE_MAX_KEYS 4096u
struct wire_aae_tree_req {
  uint64_t epoch;
  uint8_t bits;  /* 4..24 */
  uint8_t level; /* 0 or 1 */
  struct wire_bytes intervals;
  struct wire_bytes ids;
  uint64_t class_tag; /* optional; 0: the cluster's replication */
  uint64_t class_map; /* optional; 0: no class but the cluster's */
};
/* AAE_TREE: the hashes asked for, in the order asked (u64 BE each). */
struct wire_aae_tree {
  struct wire_bytes hashes;
};
/* AAE_KEYS_REQ: the (user key, digest) of every object whose token is in
 * @intervals (as above) and whose storage key sorts after @after (empty:
 * from the start), at most @max_keys (1..WIRE_AAE_MAX_KEYS) of them, of
 * class @class_tag only (@class_tag and @class_map as in AAE_TREE_REQ). */
struct wire_aae_keys_req {
  uint64_t epoch;
  struct wire_bytes intervals;
  struct wire_bytes after; /* 0..8 + WIRE_MAX_KEY_FIELD */
  uint32_t max_keys;
  uint64_t class_tag; /* optional; 0: the cluster's replication */
  uint64_t class_map; /* optional, as in AAE_TREE_REQ */
};
/* AAE_KEYS: @entries alternates user key and 8-byte digest (BE), in
 * storage-key order; @more: 1 when the ranges hold more after the last. */
struct wire_aae_keys {
  struct wire_bytes_list entries; /* an even count */
  uint8_t more;                   /* 0 or 1 */
};

/* REPAIR_RANGES: the node's ranges that overlap [@first, @last] (first >
 * last wraps past 2^64-1; 0 and 2^64-1: all of them); @now 1: exchanges as
 * soon as possible with their other replicas, one after the other, each
 * covering every range the two share. */
struct wire_repair_ranges {
  chorus_token first, last;
  uint8_t now; /* 0 or 1 */
};
/* REPAIR_RANGES_REPLY: the node, its anti-entropy stats (REPAIR_STATUS_
 * REPLY's, and aae.ranges: how many ranges matched, aae.ranges_sent: how
 * many follow, aae.requested_peers with now), and @ranges: that many
 * WIRE_REPAIR_RANGE_BYTES records (wire_repair_range_get), in token
 * order:
 *
 *   offset  field (u64 big-endian)
 *        0  first token
 *        8  last token (first > last wraps)
 *       16  last_completed_ms  wall ms the last exchange over it ended; 0
 *       24  age_ms             the node's wall clock minus that; 0: never
 *       32  exchanges          completed exchanges over it
 *       40  segments_differing
 *       48  keys_differing
 *       56  keys_repaired
 *       64  bytes_sent         repair objects sent
 *       72  bytes_received     repair objects fetched
 *       80  flags              WIRE_RANGE_REPAIRED; other bits ignored
 */
#define WIRE_REPAIR_RANGE_BYTES 88u
#define WIRE_MAX_REPAIR_RANGES 65536u /* records in one reply (5.5 MiB) */
#define WIRE_RANGE_REPAIRED 1u        /* every other replica exchanged it */
struct wire_repair_ranges_reply {
  struct wire_status_reply status; /* node_id, name, stats */
  struct wire_bytes ranges;        /* a multiple of WIRE_REPAIR_RANGE_BYTES */
};
/* TRACE (version 5): the timeline of a request sent with opts.flags
 * TRACE, sent by the node that received it just before the request's
 * reply, under the same request id (a client keeps it with the request
 * it matches and waits on for the reply). @node_id is the coordinator.
 * @events: WIRE_TRACE_EVENT_BYTES records (wire_trace_event_get), at most
 * WIRE_MAX_TRACE_EVENTS, in the order below:
 *
 *   offset  size  field
 *        0     1  kind      enum wire_trace_kind
 *        1     1  state     REPLICA: enum wire_trace_state; else 0
 *        2     1  flags     WIRE_TRACE_* below; other bits ignored
 *        3     1  reserved  0
 *        4     4  at_ms     u32 BE: ms after the coordinator received the
 *                           request (FORWARDED: after the forwarding node
 *                           did), on the clock of the node in @node
 *                           (FORWARDED: the forwarding node's)
 *        8     8  node      u64 BE: the node the event is about
 *       16     8  other     u64 BE: REPLICA: the natural replica a
 *                           fallback stands in for; FORWARDED: the node it
 *                           went to; REPAIR: 0; else 0
 *       24     4  synced_ms u32 BE: REPLICA with WIRE_TRACE_TIMES: the
 *                           replica's own ms from receipt to its barrier
 *       28     4  answered_ms u32 BE: likewise, to its answer
 *
 * Any value decodes; a reader checks that the length is a multiple of
 * the record and skips kinds it does not know. */
#define WIRE_TRACE_EVENT_BYTES 32u
#define WIRE_MAX_TRACE_EVENTS 128u
enum wire_trace_kind {
  WIRE_TRACE_RECEIVED = 1,  /* the coordinator received the request */
  WIRE_TRACE_FORWARDED = 2, /* a node that is no replica handed it on */
  WIRE_TRACE_SENT = 3,      /* the coordinator's messages went out */
  WIRE_TRACE_REPLICA = 4,   /* one replica: its answer, or none */
  WIRE_TRACE_ANSWERED = 5,  /* the client's answer was ready */
  WIRE_TRACE_REPAIR = 6,    /* a read repair was sent to @node */
  WIRE_TRACE_ENDED = 7,     /* the operation ended (stragglers in) */
  WIRE_TRACE_KIND_MAX = 7
};
enum wire_trace_state {
  WIRE_TRACE_ACKED = 0,     /* write acked / read answered */
  WIRE_TRACE_REFUSED = 1,   /* answered with a refusal */
  WIRE_TRACE_NO_ANSWER = 2, /* asked, never answered */
  WIRE_TRACE_NOT_ASKED = 3, /* down: never asked */
};
#define WIRE_TRACE_SELF 0x1u       /* REPLICA: the coordinator itself */
#define WIRE_TRACE_HINT 0x2u       /* REPLICA: a hint is kept for it */
#define WIRE_TRACE_TIMES 0x4u      /* REPLICA: it reported its times */
#define WIRE_TRACE_SYNCED 0x8u     /* REPLICA: its answer waited a barrier */
#define WIRE_TRACE_TIMED_OUT 0x10u /* ENDED: by its timeout */
struct wire_trace {
  chorus_node_id node_id;   /* the coordinator */
  struct wire_bytes events; /* a multiple of WIRE_TRACE_EVENT_BYTES */
};
struct wire_trace_event {
  uint8_t kind, state, flags;
  uint32_t at_ms;
  chorus_node_id node, other;
  uint32_t synced_ms, answered_ms;
};

struct wire_repair_range {
  chorus_token first, last;
  uint64_t last_completed_ms, age_ms, exchanges, segments_differing,
      keys_differing, keys_repaired, bytes_sent, bytes_received, flags;
};

/* One message. @type selects the union member; RING_QUERY, STATUS_QUERY
 * and CLUSTER_QUERY have no fields. */
struct wire_msg {
  uint8_t type;        /* enum wire_type */
  uint64_t request_id; /* chosen by the requester, echoed by the reply */
  union {
    struct wire_hello hello;
    struct wire_welcome welcome;
    struct wire_error error;
    struct wire_get get;
    struct wire_put put;
    struct wire_delete del;
    struct wire_get_reply get_reply;
    struct wire_write_reply write_reply;
    struct wire_counter_add counter_add;
    struct wire_counter_read counter_read;
    struct wire_counter_reply counter_reply;
    struct wire_set_add set_add;
    struct wire_set_remove set_remove;
    struct wire_set_read set_read;
    struct wire_set_reply set_reply;
    struct wire_lww_set lww_set;
    struct wire_lww_key lww_key; /* LWW_DELETE, LWW_READ */
    struct wire_lww_reply lww_reply;
    struct wire_map_update map_update;
    struct wire_map_read map_read;
    struct wire_map_reply map_reply;
    struct wire_replica_read replica_read;
    struct wire_replica_read_reply replica_read_reply;
    struct wire_replica_write replica_write;
    struct wire_replica_ack replica_ack;
    struct wire_replica_forward replica_forward;
    struct wire_replica_relay_ack replica_relay_ack;
    struct wire_replica_times replica_times;
    struct wire_trace trace;
    struct wire_hint_deliver hint_deliver;
    struct wire_hint_ack hint_ack;
    struct wire_ring_reply ring_reply;
    struct wire_status_reply status_reply;
    struct wire_gossip gossip;
    struct wire_meta meta;
    struct wire_cluster_reply cluster_reply;
    struct wire_cluster_remove cluster_remove;
    struct wire_keyspace keyspace;
    struct wire_keyspace_reply keyspace_reply;
    struct wire_user user;
    struct wire_auth_challenge auth_challenge;
    struct wire_auth_key auth_key; /* AUTH_PROOF, AUTH_OK */
    struct wire_user_reply user_reply;
    struct wire_peer_challenge peer_challenge;
    struct wire_peer_proof peer_proof;
    struct wire_peer_tag peer_tag;
    struct wire_cluster_key cluster_key;
    struct wire_cluster_key_reply cluster_key_reply;
    struct wire_cluster_decommission cluster_decommission;
    struct wire_cluster_replace cluster_replace;
    struct wire_cluster_stage cluster_stage;
    struct wire_cluster_plan cluster_plan;
    struct wire_cluster_plan_reply cluster_plan_reply;
    struct wire_stream_pull stream_pull;
    struct wire_stream_chunk stream_chunk;
    struct wire_aae_tree_req aae_tree_req;
    struct wire_aae_tree aae_tree;
    struct wire_aae_keys_req aae_keys_req;
    struct wire_aae_keys aae_keys;
    struct wire_repair_ranges repair_ranges;
    struct wire_repair_ranges_reply repair_ranges_reply;
    struct wire_cas cas;
    struct wire_cas_reply cas_reply;
    struct wire_paxos paxos; /* PREPARE, PROPOSE, COMMIT */
    struct wire_paxos_promise paxos_promise;
    struct wire_paxos_accept paxos_accept;
    struct wire_lock lock;
    struct wire_lock_reply lock_reply;
  };
  void *owned; /* decoded list storage; internal, freed by wire_msg_free() */
};

/* ------------------------------------------------------------------------
 * Codec (wire_codec.c)
 * ------------------------------------------------------------------------ */

/* wire_encoded_size: bytes wire_encode() writes for @m, 4-byte length prefix
 * included. Meaningful only for a message wire_encode() accepts. */
size_t wire_encoded_size(const struct wire_msg *m);

/* wire_encode: writes the whole frame (prefix and body) for @m into @buf.
 * Every field is checked against the same schema and limits the decoder
 * applies, so whatever encodes also decodes. @m is only read; @errmsg (may be
 * NULL) receives the reason of a failure.
 * Errors: CHORUS_EINVAL (a field out of range or too long, unknown type),
 *         CHORUS_ETOOBIG (@cap too small, or body above WIRE_MAX_FRAME_HARD).
 */
int wire_encode(const struct wire_msg *m, uint8_t *buf, size_t cap,
                size_t *written, char *errmsg);

/* wire_decode: decodes one frame BODY (without the 4-byte prefix, as
 * wire_splitter_push() returns it) of @len bytes into *@out, after checking
 * it against @limits (see HOW DECODING STAYS SAFE). On CHORUS_OK, *@out
 * borrows from @body and owns its list arrays: release it with
 * wire_msg_free(), and keep @body alive as long as you read *@out. On error
 * *@out holds nothing to free (wire_msg_free() is still harmless).
 * Errors: CHORUS_EMALFORMED (anything wrong: truncation, bad header, depth,
 *           wrong type, missing/extra field, out-of-range integer, trailing
 *           bytes; @errmsg says what and where),
 *         CHORUS_ETOOBIG (@len above @limits->max_frame),
 *         CHORUS_ENOTSUP (well-formed frame of an unknown type; *@out has
 *           type and request_id set so an ERROR can echo them),
 *         CHORUS_ENOMEM. */
int wire_decode(const uint8_t *body, size_t len,
                const struct wire_limits *limits, struct wire_msg *out,
                char *errmsg);

/* wire_msg_free: releases what wire_decode() allocated and zeroes *@m.
 * Never frees borrowed bytes. NULL is allowed. */
void wire_msg_free(struct wire_msg *m);

/* wire_msgpack_check: pass 1 of wire_decode(), usable on any untrusted
 * msgpack bytes (e.g. before msgpack_unpack()): exactly one object filling
 * @len bytes, every declared count backed by bytes, nesting <= @max_depth
 * containers, empty ones included (capped at WIRE_MAX_DEPTH, which is also
 * msgpack-c's unpacker stack: bytes that pass unpack completely with
 * msgpack-c, as fuzz_wire_check verifies). *@objects (may be NULL) receives
 * the number of msgpack objects, always <= @len, so an unpacker's footprint
 * is bounded by sizeof(object) x @len. Allocates nothing.
 * Errors: CHORUS_EMALFORMED with the offset and reason in @errmsg. */
int wire_msgpack_check(const uint8_t *buf, size_t len, uint32_t max_depth,
                       size_t *objects, char *errmsg);

/* ------------------------------------------------------------------------
 * Streaming frame splitter (wire_frame.c)
 *
 * Turns a byte stream cut at arbitrary points into whole frame bodies.
 * Buffering is bounded: it holds at most one partial frame, grows its buffer
 * only as bytes actually arrive (a 16 MiB header followed by silence costs
 * nothing), never beyond the announced length, and drops a buffer larger than
 * WIRE_SPLITTER_KEEP once its frame is delivered. A frame whose bytes all
 * arrive in one push is returned in place, without a copy.
 * ------------------------------------------------------------------------ */

#define WIRE_SPLITTER_KEEP (64u * 1024)

struct wire_splitter {
  uint32_t max_frame;
  uint8_t hdr[WIRE_FRAME_PREFIX];
  uint8_t nhdr;   /* prefix bytes seen for the current frame */
  bool delivered; /* the buffer held the frame returned last time */
  uint32_t need;  /* body length, once nhdr == 4 */
  uint8_t *buf;   /* partial body */
  size_t cap, have;
  uint64_t frames; /* frames delivered, for stats */
  int error;       /* sticky: once set, every push returns it */
  char errmsg[CHORUS_ERRMSG_SIZE];
};

/* wire_splitter_init: @max_frame as in struct wire_limits (0 or more than
 * WIRE_MAX_FRAME_HARD is clamped to WIRE_MAX_FRAME_HARD). Allocates nothing. */
void wire_splitter_init(struct wire_splitter *s, uint32_t max_frame);

/* wire_splitter_fini: frees the buffer. */
void wire_splitter_fini(struct wire_splitter *s);

/* wire_splitter_push: consumes bytes of @data until one frame is complete or
 * @data is exhausted; *@consumed says how many were taken. Call it again
 * with the rest (@data + *@consumed) until it returns 0.
 * Returns 1 with *@frame set to the body of a whole frame (borrowed: from
 * @data or from the splitter's buffer; valid until the next push or fini,
 * and while @data lives), or 0 when every byte was consumed and no frame is
 * complete yet.
 * Errors (sticky: the connection is unusable and must close):
 *   CHORUS_ETOOBIG (a length prefix above max_frame; 4 GiB prefixes too),
 *   CHORUS_EMALFORMED (a zero length prefix),
 *   CHORUS_ENOMEM (growing the buffer failed). */
int wire_splitter_push(struct wire_splitter *s, const uint8_t *data, size_t len,
                       size_t *consumed, struct wire_bytes *frame);

/* wire_splitter_buffered: bytes of the current partial frame held (prefix
 * included), for back-pressure and tests. */
size_t wire_splitter_buffered(const struct wire_splitter *s);

/* ------------------------------------------------------------------------
 * Handshake and helpers (wire.c)
 * ------------------------------------------------------------------------ */

/* What a listener accepts in HELLO. */
struct wire_hello_policy {
  uint32_t min_version, max_version; /* usually WIRE_PROTOCOL_MIN/VERSION */
  struct wire_bytes cluster;         /* our cluster's name */
  unsigned roles;         /* bitmask of (1u << WIRE_ROLE_*) accepted here */
  chorus_node_id node_id; /* ours, sent back in WELCOME */
};

/* wire_hello_check: the handshake decision, a pure function. On CHORUS_OK,
 * *@reply is the WELCOME to send (it borrows policy->cluster) and the
 * connection continues in hello->version. Any other return means: send
 * *@reply (an ERROR with that code and an explanation written into @text,
 * which must hold CHORUS_ERRMSG_SIZE bytes and outlive the reply) and then
 * close. @request_id is echoed in the reply.
 * Errors: CHORUS_EVERSION (version outside [min_version, max_version]; the
 *           text names the range, so a client can retry in a version we
 *           speak),
 *         CHORUS_ECLUSTER (another cluster's name),
 *         CHORUS_EPERM (role not accepted on this listener),
 *         CHORUS_EMALFORMED (a peer HELLO without a node id). */
int wire_hello_check(const struct wire_hello *hello,
                     const struct wire_hello_policy *policy,
                     uint64_t request_id, struct wire_msg *reply, char *text);

/* wire_error_reply: fills *@reply with an ERROR carrying @code and @text
 * (borrowed, NUL-terminated, truncated to WIRE_MAX_ERROR_TEXT). */
void wire_error_reply(struct wire_msg *reply, uint64_t request_id, int code,
                      const char *text);

/* wire_should_close: whether a failed wire_decode() (or splitter push) with
 * @code leaves the connection unusable. Only CHORUS_ENOTSUP (an unknown but
 * well-framed message) keeps it; framing and decoding errors close it,
 * because nothing later on the stream can be trusted. */
bool wire_should_close(int code);

/* wire_reply_for: reply @m as a connection that speaks protocol @version
 * understands it, into *@out, which borrows from @m and from @text
 * (CHORUS_ERRMSG_SIZE bytes, written only when needed; both must outlive
 * *@out). Before version 2, GET_REPLY2 and WRITE_REPLY2 become GET_REPLY
 * and WRITE_REPLY without their new fields, except a truncated GET_REPLY2,
 * which becomes ERROR CHORUS_ETOOBIG: a version-1 client would take the
 * part for the whole, and a write with its context would then drop
 * siblings it never saw. Before version 3, RING_REPLY2 and STATUS_REPLY2
 * become RING_REPLY and STATUS_REPLY without the names. Before version 4,
 * a request (one a node forwards to an older peer) loses its opts.dc.
 * Before version 5, it loses opts.flags (a trace is then shorter).
 * Before version 5, STREAM_CHUNK2 becomes STREAM_CHUNK without @empty_to.
 * Every other message is copied unchanged (CLUSTER_REPLY answers only a
 * request a version-3 client sent). Returns whether *@out differs from
 * @m. */
/* wire_has_options: whether messages of @type carry struct wire_options
 * (the client requests a node coordinates). */
bool wire_has_options(unsigned type);
/* wire_options_of: the options inside @m; NULL for a type without. */
struct wire_options *wire_options_of(struct wire_msg *m);

bool wire_reply_for(const struct wire_msg *m, uint32_t version,
                    struct wire_msg *out, char *text);

/* wire_repair_range_put, wire_repair_range_get: one REPAIR_RANGES_REPLY
 * record into / from WIRE_REPAIR_RANGE_BYTES bytes at @p (any value
 * decodes; the caller checks that the field's length is a multiple). */
void wire_repair_range_put(uint8_t *p, const struct wire_repair_range *r);
void wire_repair_range_get(const uint8_t *p, struct wire_repair_range *r);

/* wire_trace_event_put, wire_trace_event_get: one TRACE record into /
 * from WIRE_TRACE_EVENT_BYTES bytes at @p (any bytes decode). */
void wire_trace_event_put(uint8_t *p, const struct wire_trace_event *e);
void wire_trace_event_get(const uint8_t *p, struct wire_trace_event *e);

/* wire_type_name: "PUT" for WIRE_PUT; "UNKNOWN" for others. Static. */
const char *wire_type_name(unsigned type);

/* wire_level_name: "QUORUM" for WIRE_QUORUM, "DEFAULT" for 0, NULL for
 * counts and invalid values. */
const char *wire_level_name(int32_t level);

/* wire_level_parse: "QUORUM" (any case), "DEFAULT" or a count "1".."64" into
 * *@out. Errors: CHORUS_EINVAL. */
int wire_level_parse(const char *s, int32_t *out);

#endif /* CHORUS_WIRE_H */
