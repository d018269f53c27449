/* libchorus.h: the chorus client library: connect to a cluster through a
 * list of seed nodes, read and write keys with per-request consistency, ask
 * a node for the ring and the membership status, and read and change the
 * cluster metadata (CLUSTER STATUS below).
 *
 * HOW IT WORKS
 *
 * A struct chorus_client is an opaque handle holding at most one TCP
 * connection, to one seed at a time (any node coordinates any request:
 * DESIGN.md §1, a node that is not a replica of the key forwards it). A
 * connection opens with HELLO (cluster name, role client) and carries
 * pipelined requests matched to replies by request id (docs/PROTOCOL.md).
 *
 * Two APIs share one engine, a libuv state machine:
 *   - the asynchronous API (chorus_*_async) runs on the caller's uv loop
 *     and completes each request through a callback (libuv's contract: a
 *     call that returns an error never runs its callback; one that returns
 *     CHORUS_OK runs it exactly once, never from inside the call);
 *   - the synchronous API (chorus_get, chorus_put, ...) runs the same
 *     engine on a private loop the client owns, until the request is done.
 *
 * With cfg.token_aware, keyed requests skip the forwarding hop: the client
 * fetches the ring from a seed and sends each one to a live natural replica
 * of its key (Dynamo §6.4, client-driven coordination), in the client's
 * datacenter first, else the nearest by measured round trip, over a
 * connection per replica; a replica that cannot be reached before anything was
 * sent falls back to the seeds (libchorus_route.c).
 *
 * FAILOVER BETWEEN SEEDS
 *
 * When the connection fails (refused, reset, closed, a handshake refused, a
 * malformed reply, or no reply within the request's timeout plus a grace
 * period), the client moves to the next seed and:
 *   - retries every READ in flight on it (GET, COUNTER_READ, SET_READ,
 *     LWW_READ, ring and status queries are idempotent), each at most once
 *     per seed;
 *   - retries a WRITE only if none of its bytes was handed to the socket;
 *     a write that was sent fails with maybe_applied set, because the node
 *     may have applied it before the connection died (Dynamo §6: the client
 *     cannot tell, and resending a PUT would mint a second sibling).
 * When every seed failed in a row, every waiting request fails with
 * CHORUS_EUNAVAILABLE (or the handshake error the nodes gave, such as
 * CHORUS_ECLUSTER for a wrong cluster name).
 *
 * ERRORS
 *
 * Every call returns CHORUS_OK or a negative CHORUS_E* code from
 * chorus_error.h; chorus_strerror() names it. A completed request carries
 * its outcome in struct chorus_result: the code, a message (the server's
 * text for errors the node reported, prefixed by its address), and
 * maybe_applied for writes. Errors the node reports travel unchanged:
 * CHORUS_ETYPE (the key holds another type), CHORUS_EUNAVAILABLE (too few
 * live replicas for the level asked; nothing was written), CHORUS_ETIMEDOUT
 * (the quorum was not reached in time; a write may have been applied),
 * CHORUS_EINVAL (a level the key's replication cannot satisfy), ...
 *
 * THREADS
 *
 * A client is not thread-safe: use it from one thread at a time (the loop's
 * thread, for an asynchronous client). Different clients are independent.
 */
#ifndef CHORUS_LIBCHORUS_H
#define CHORUS_LIBCHORUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus_error.h"

#define CHORUS_CLIENT_VERSION "0.1.0"

/* Limits (docs/PROTOCOL.md, Limits), in bytes. A request over one is
 * refused with CHORUS_ETOOBIG before anything is sent, in the words a node
 * would use ("value of 1048577 bytes is over the 1048576-byte value
 * limit"). CHORUS_MAX_KEY is what a node can store (64 KiB less the token
 * and hint prefixes); CHORUS_MAX_VALUE is chorusd's default value limit
 * (--max-value-bytes: a node may be set lower, and then answers
 * CHORUS_ETOOBIG itself); CHORUS_MAX_MEMBER bounds each set member. */
#define CHORUS_MAX_KEY 65528u
#define CHORUS_MAX_VALUE 1048576u
/* The longest time to live a put may ask for: ten years (of 365 days), in
 * milliseconds (struct chorus_opts, ttl_ms). */
#define CHORUS_MAX_TTL_MS UINT64_C(315360000000)
#define CHORUS_MAX_MEMBER 65536u
/* A keyspace's name: 1..47 bytes of [A-Za-z0-9_-]. */
#define CHORUS_MAX_KEYSPACE_NAME 47u

struct uv_loop_s; /* uv_loop_t, from <uv.h> */
struct chorus_client;

/* ------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------ */

struct chorus_config {
  const char *cluster; /* cluster name sent in HELLO; copied; "chorus" */
  /* HELLO's raw credentials, copied; NULL: none. chorusd reads a client's
   * non-empty credentials as a login ([nonce][user]: docs/PROTOCOL.md,
   * Login): log in with @user and @password below, not with these. */
  const void *credentials;
  size_t credentials_len; /* <= 4096 */
  /* Milliseconds to connect and complete the handshake with one seed
   * before trying the next. Default 1000. */
  uint32_t connect_timeout_ms;
  /* The request timeout assumed when a request leaves timeout_ms at 0 (the
   * node's default, 2000 in chorusd). Default 2000. */
  uint32_t default_timeout_ms;
  /* Extra milliseconds the client waits past a request's timeout for the
   * node's own answer (which, on a quorum timeout, is ETIMEDOUT) before it
   * declares the connection dead and fails over. Default 1000. */
  uint32_t grace_ms;
  /* Seed of the PRNG that picks counter op ids; 0 draws one from
   * getrandom() once at open. */
  uint64_t seed;
  /* Token-aware routing: fetch the ring (RING_QUERY + STATUS_QUERY) from
   * a seed and send each keyed request straight to a live natural replica
   * of its key, saving the coordinator's forwarding hop (repl.h: only a
   * natural replica coordinates): one of the client's datacenter (dc
   * below) if it has a live one, else the nearest by the round trips the
   * client measures on its connection to each node (libchorus_route.c,
   * NEAREST BY RTT; replicas within max(1 ms, 20 %) of each other keep
   * ring order). A request that cannot reach the replica without having
   * been sent falls back to the seeds. Default false. */
  bool token_aware;
  uint32_t ring_refresh_ms; /* re-fetch the ring this often; 30000 */
  /* Decisions in plain sentences ("127.0.0.1:7401 closed the connection:
   * 2 read(s) retried, 1 write(s) failed maybe-applied, next seed
   * 127.0.0.1:7402"), one line per call without a newline, borrowed for
   * the call. NULL: silent. */
  void (*trace)(void *ctx, const char *line);
  void *trace_ctx;
  /* The client's datacenter (1..64 bytes; copied; NULL: none). Every
   * request carries it (protocol version 4): CHORUS_LOCAL_ONE and
   * CHORUS_LOCAL_QUORUM count the replicas there, wherever the request
   * lands (a node of another datacenter hands it to a coordinator there),
   * and token-aware routing prefers that datacenter's replicas. Nodes of
   * a release before protocol 4 close the connection on such a request:
   * upgrade every node first. NULL: LOCAL levels count the coordinating
   * node's datacenter. */
  const char *dc;
  /* TLS 1.3 (docs/ARCHITECTURE.md, TLS): with @tls_ca (a PEM file of the
   * CA that signs the nodes' certificates) every connection speaks TLS
   * and refuses a node whose certificate does not chain to that CA or
   * does not name the address dialled (an IP address against the
   * certificate's IP entries, a name against its DNS entries): a
   * certificate is only as good as the address it was issued for, so a
   * certificate stolen from one node cannot impersonate another.
   * @tls_cert and @tls_key (PEM) are the client's own certificate, for
   * nodes that ask for one. Paths are copied and the files read at open.
   * NULL @tls_ca: plaintext (a node with --client-tls required refuses
   * it with CHORUS_EAUTH). Errors at open: CHORUS_EINVAL naming the file
   * (unreadable, not PEM, a key that does not match). A node that refuses
   * the handshake fails requests with CHORUS_EAUTH and the reason
   * ("certificate verify failed: certificate has expired").
   * @tls_crl (with @tls_ca; NULL: none): a PEM file of that CA's CRLs,
   * read at open; a node whose certificate they revoke is refused with
   * CHORUS_EAUTH "certificate verify failed: certificate revoked" (and
   * every node, once the CRL is past its nextUpdate: renew it). */
  const char *tls_ca, *tls_cert, *tls_key, *tls_crl;
  /* A login (docs/PROTOCOL.md, Login; needed by a node started with
   * --auth required): @user (1..47 bytes of [A-Za-z0-9_.@-]) and its
   * @password (1..1024 bytes), both copied at open. The password never
   * goes on the wire: the client derives its keys (Argon2id, under the
   * salt and costs the node's challenge names; about 0.1 s once per
   * client, not per connection), then wipes its copy, and logs in to
   * every node with a proof bound to that connection's nonces. It also
   * checks the node's signature, so a node that does not hold the user's
   * verifier is refused (CHORUS_EAUTH). A wrong password, an unknown user
   * and too many failed logins fail requests with CHORUS_EAUTH and the
   * node's reason; a request the user's roles do not allow fails with
   * CHORUS_EPERM. A password changed while the client is open takes a
   * new client. NULL @user: no login. */
  const char *user, *password;
};

/* chorus_config_init: fills @cfg with the defaults above. */
void chorus_config_init(struct chorus_config *cfg);

/* ------------------------------------------------------------------------
 * Per-request options (struct wire_options semantics; PROTOCOL.md §5)
 * ------------------------------------------------------------------------ */

/* Quorum sizes: 1..64 is a count of replicas, 0 the node's default, and a
 * negative value a named level resolved by the coordinator against the
 * key's replication factors. Values are the wire's. */
enum chorus_level {
  CHORUS_LEVEL_DEFAULT = 0,
  CHORUS_ONE = -1,
  CHORUS_TWO = -2,
  CHORUS_THREE = -3,
  CHORUS_QUORUM = -4,
  CHORUS_ALL = -5,
  CHORUS_LOCAL_ONE = -6,
  CHORUS_LOCAL_QUORUM = -7,
  CHORUS_EACH_QUORUM = -8
};

enum chorus_read_repair {
  CHORUS_RR_DEFAULT = 0,
  CHORUS_RR_OFF = 1,
  CHORUS_RR_ASYNC = 2,
  CHORUS_RR_BLOCKING = 3
};

/* All zero (or a NULL pointer where a call takes options) means the node's
 * defaults. */
struct chorus_opts {
  int32_t r, w;        /* read / write quorum: enum chorus_level or 1..64 */
  int32_t pr, pw;      /* primary replicas required; same scale */
  uint32_t timeout_ms; /* 0: the node's default; at most one day */
  bool sloppy;         /* writes may land on fallback nodes (Dynamo §4.6) */
  uint8_t read_repair; /* enum chorus_read_repair */
  /* Counter adds only: the operation id that makes a retried add count
   * once. 0 lets the library draw a random non-zero 64-bit id. */
  uint64_t op_id;
  /* Puts only (other calls ignore it): the value's time to live in
   * milliseconds, 0 for none, at most CHORUS_MAX_TTL_MS. The coordinating
   * node adds it to its hybrid logical clock at the write; from then on
   * every node reads the value as not found (a get without it answers
   * nvalues 0, or only the other siblings), judged by its own clock, so a
   * value may read as absent up to the clock skew between nodes early or
   * late. The context of a read still covers an expired value: a put with
   * it replaces it. Nodes from before TTLs answer CHORUS_ENOTSUP. */
  uint64_t ttl_ms;
  /* The keyspace the key lives in (KEYSPACES below): NULL or "" or
   * "default" for the default keyspace, else a keyspace's name (at most
   * CHORUS_MAX_KEYSPACE_NAME bytes; borrowed for the call). Keys of
   * different keyspaces never meet; the keyspace's defaults (levels, TTL,
   * sibling cap) stand where these options leave the node's. A name no
   * keyspace has is CHORUS_ENOTFOUND, a request of a type the keyspace
   * does not hold CHORUS_ETYPE. Nodes of protocol 5. A key of the default
   * keyspace may not begin with byte 0x00 (CHORUS_EINVAL): that form is
   * how nodes store a keyspace's keys. */
  const char *keyspace;
  /* Ask for the request's timeline (REQUEST TRACES below): the result's
   * trace then holds it. Nodes of protocol 5; older ones ignore it. */
  bool trace;
};

/* chorus_level_parse: "QUORUM" (any case), "ONE".."EACH_QUORUM", "DEFAULT"
 * or a count "1".."64" into *@out.
 * Errors: CHORUS_EINVAL (anything else). */
int chorus_level_parse(const char *s, int32_t *out);

/* chorus_level_name: "QUORUM" for CHORUS_QUORUM, "DEFAULT" for 0; NULL for
 * counts and invalid values. Static. */
const char *chorus_level_name(int32_t level);

/* ------------------------------------------------------------------------
 * Results
 * ------------------------------------------------------------------------ */

struct chorus_bytes {
  const uint8_t *ptr;
  size_t len;
};

/* Membership states (STATUS_REPLY member.<id>.state). */
enum chorus_member_state {
  CHORUS_MEMBER_UNKNOWN = -1, /* the answering node reported nothing */
  CHORUS_MEMBER_ALIVE = 0,
  CHORUS_MEMBER_SUSPECT = 1,
  CHORUS_MEMBER_DEAD = 2,
  CHORUS_MEMBER_LEFT = 3,
  CHORUS_MEMBER_REMOVED = 4
};

/* Ring states (RING_REPLY node state). */
enum chorus_ring_state {
  CHORUS_RING_UP = 0,
  CHORUS_RING_SUSPECT = 1,
  CHORUS_RING_DOWN = 2,
  CHORUS_RING_JOINING = 3,
  CHORUS_RING_LEAVING = 4
};

/* One node as the answering node sees it: the ring entry joined with the
 * member.<id>.* status names. Strings are NUL-terminated and owned by the
 * result; "" when unknown. */
struct chorus_node_info {
  uint64_t id;
  const char *addr, *dc, *rack;
  bool in_ring;     /* listed in RING_REPLY */
  int ring_state;   /* enum chorus_ring_state, when in_ring */
  double share;     /* fraction of the token space its vnodes own, 0..1 */
  int member_state; /* enum chorus_member_state */
  int64_t incarnation;
  bool has_offset;   /* the node has estimated this member's clock */
  int64_t offset_ms; /* the member's clock minus the answering node's */
  int64_t hints;     /* hints the answering node keeps for this member */
  const char *name;  /* its name (chorusd --id), from a node of protocol
                        version 3 or later; "" when unknown */
};

struct chorus_stat {
  const char *name; /* NUL-terminated, owned by the result */
  int64_t value;
};

/* One token range a node replicates, as chorus_repair_ranges reports it
 * (docs/ARCHITECTURE.md, "Anti-entropy": how an exchange, which is with one
 * peer over every range the two share, maps to ranges). */
struct chorus_repair_range {
  uint64_t first, last;       /* tokens, inclusive; first > last wraps */
  uint64_t last_completed_ms; /* wall ms at which the last exchange this
                                 node completed over it ended; 0: never */
  uint64_t age_ms;            /* the node's clock minus that; 0: never */
  uint64_t exchanges;         /* completed exchanges over it */
  uint64_t segments_differing, keys_differing, keys_repaired;
  uint64_t bytes_sent, bytes_received; /* repair objects */
  bool repaired; /* every other replica of it completed an exchange with
                    this node over it since the node started */
};

/* The outcome of one request. Fill with nothing before a call (the call
 * initialises it); release with chorus_result_free() after every call,
 * success or not. Which fields a request fills is listed with each call. */
struct chorus_result {
  int status;         /* CHORUS_OK or a CHORUS_E* code */
  bool maybe_applied; /* a failed write that may nonetheless have happened */
  bool from_node;     /* the error is the node's answer (an ERROR reply),
                         not the client's (connection, timeout, argument) */
  char errmsg[CHORUS_ERRMSG_SIZE]; /* "" on success */
  char server[64];                 /* "host:port" of the node that answered */

  /* get: the siblings (nvalues == 0: not found); set read: the members. */
  size_t nvalues;
  struct chorus_bytes *values;
  /* get, set read, and every write: the causal context (opaque; empty when
   * the node returned none: counter and set writes). A get's context goes
   * back with chorus_put or chorus_delete, a set read's with
   * chorus_set_remove, a cas answer's with chorus_cas (CHORUS_CAS_IF_MATCH);
   * the kinds are not interchangeable. */
  struct chorus_bytes context;
  /* get and every write, from a node that speaks protocol version 2 (all
   * zero from older nodes): what the node says of the object under the
   * key. See OBJECT WARNINGS below. */
  unsigned object_flags; /* CHORUS_OBJECT_* */
  uint32_t siblings;     /* live siblings in the object (get: nvalues of
                            them are in values) */
  uint64_t object_bytes; /* the object's encoded size on the node */
  int64_t counter;       /* counter read */
  /* lww get: the winning write's HLC time (milliseconds since the epoch
   * << 16 | a logical counter; CHORUS_LWW_MS() takes the milliseconds) and
   * the id of the node that coordinated it; both 0 for a key never
   * written. Its value, if not deleted, is values[0] (nvalues 1). */
  uint64_t lww_ts;
  uint64_t lww_node;
  /* cas: whether the update was applied (false for a serial read and for
   * a condition that failed). The value the operation found, before its
   * update (for a read or a failed condition: the current value), is
   * values[0] (nvalues 0: the key had no value); context is the
   * CHORUS_CAS_CONTEXT_LEN-byte context of the key's value after the call
   * (applied: of the value written; else of the value found), for
   * CHORUS_CAS_IF_MATCH. */
  bool cas_applied;
  /* lock and fenced put (chorus_lock_*, chorus_fenced_put): cas_applied
   * says whether applied, lock_refusal why not (CHORUS_LOCK_*). A lock
   * operation: the lock's record after it when applied, else as found:
   * lock_held, lock_token (its last token; it stays after a release or an
   * expiry), lock_expires (ms, the coordinator's HLC physical time),
   * lock_left_ms (the lease left on that clock; 0 when free or expired),
   * and the holder's id as values[0]. A fenced put: lock_token the key's
   * highest token for the lock before it, values[0] the value found. */
  int lock_refusal;
  bool lock_held;
  uint64_t lock_token, lock_expires, lock_left_ms;

  /* ring and status */
  uint64_t node_id;     /* the answering node */
  char node_name[128];  /* its name; "" from a node older than protocol
                           version 3 */
  uint64_t epoch;       /* ring version */
  uint32_t vnodes;      /* tokens per node */
  char replication[96]; /* "3" or "dc1:3,dc2:2"; "" when unknown */
  size_t nnodes;
  struct chorus_node_info *nodes; /* ring nodes first (id order), then
                                     members that only status names */
  size_t nstats;
  struct chorus_stat *stats; /* every STATUS_REPLY entry, in reply order */
  /* repair ranges: the node's ranges, in token order */
  size_t nranges;
  struct chorus_repair_range *ranges;

  /* cluster status and cluster remove (the asynchronous calls): owned by
   * the result, freed with it; take it by setting this to NULL and free it
   * with chorus_cluster_status_free(). NULL for every other call. */
  struct chorus_cluster_status *cluster;
  /* cluster plan (the asynchronous call): likewise, freed with the result
   * unless taken (set to NULL; chorus_cluster_plan_free). */
  struct chorus_cluster_plan *plan;
  /* keyspace calls: likewise (chorus_keyspaces_free). */
  struct chorus_keyspaces *keyspaces;
  /* user calls: likewise (chorus_users_free). */
  struct chorus_users *users;
  /* gossip key calls: likewise (chorus_keyring_free). */
  struct chorus_keyring *keyring;
  /* A request sent with chorus_opts.trace: its timeline, @ntrace events
   * in the node's order, from coordinator @trace_node (REQUEST TRACES
   * below); NULL when the node sent none. Owned, freed with the result. */
  uint64_t trace_node;
  size_t ntrace;
  struct chorus_trace_event *trace;

  void *owned; /* internal storage; freed by chorus_result_free() */
};

/* OBJECT WARNINGS
 *
 * A node keeps every object (all siblings of a key and their metadata)
 * under a byte budget (chorusd --max-object-bytes, 8 MiB by default), so
 * that it always fits in the messages replicas exchange. A write that
 * would take the object over it fails with CHORUS_ETOOBIG and changes
 * nothing; blind writes (an empty context) each add a sibling, so this is
 * how a key fills up. The way out is to resolve the siblings: read the key
 * and write one value back with the context of that read.
 *
 * On the way there, replies carry warnings in object_flags:
 *   CHORUS_OBJECT_SIBLINGS   the object has more siblings than the node's
 *                            warn level (25): resolve them;
 *   CHORUS_OBJECT_LARGE      it is over half its byte budget;
 *   CHORUS_OBJECT_TRUNCATED  (get) the object is too big for one reply (an
 *                            older node let it grow): values holds the
 *                            first nvalues of its `siblings` siblings
 *                            only, but context covers every one of them,
 *                            so a put with it replaces them all, also
 *                            those this client never saw.
 * The `chorus` CLI prints them as warnings on stderr. */
#define CHORUS_OBJECT_TRUNCATED 0x1u
#define CHORUS_OBJECT_SIBLINGS 0x2u
#define CHORUS_OBJECT_LARGE 0x4u

/* REQUEST TRACES
 *
 * A request with chorus_opts.trace is answered with its path through the
 * cluster (docs/PROTOCOL.md, TRACE): the coordinator holds its reply until
 * the operation ends (every replica asked has answered, or it timed out),
 * then sends the timeline and the reply, so the call returns later than
 * an untraced one would (at the last replica's answer, not the quorum's)
 * and the timeline has the stragglers, timeouts and hints. Each event:
 *
 *   RECEIVED   the coordinator (node) received the request; at_ms 0
 *   FORWARDED  a node that is no replica (node) handed it to the
 *              coordinator (other); at_ms: its own ms until the timeline
 *              came back (its clock, not the coordinator's)
 *   SENT       the coordinator's messages to the replicas went out
 *   REPLICA    one replica (node; other: the natural replica a fallback
 *              stands in for): state ACKED (a write acknowledged, a read
 *              answered), REFUSED, NO_ANSWER, NOT_ASKED (down); at_ms when
 *              its answer arrived (NO_ANSWER: the end). Flags: SELF (the
 *              coordinator), HINT (a hint is kept for it: it gets the write
 *              later), TIMES (it reported its own times: synced_ms from its
 *              receipt to its sync barrier when SYNCED, answered_ms to its
 *              answer, on its own clock)
 *   ANSWERED   the answer was ready (the quorum met, or the error known)
 *   REPAIR     a read repair was sent to node
 *   ENDED      the operation ended (TIMED_OUT: by its timeout)
 *
 * at_ms counts from the coordinator's receipt, on its clock, in whole
 * milliseconds (sub-millisecond steps read 0). */
enum chorus_trace_kind {
  CHORUS_TRACE_RECEIVED = 1,
  CHORUS_TRACE_FORWARDED = 2,
  CHORUS_TRACE_SENT = 3,
  CHORUS_TRACE_REPLICA = 4,
  CHORUS_TRACE_ANSWERED = 5,
  CHORUS_TRACE_REPAIR = 6,
  CHORUS_TRACE_ENDED = 7
};
enum chorus_trace_state {
  CHORUS_TRACE_ACKED = 0,
  CHORUS_TRACE_REFUSED = 1,
  CHORUS_TRACE_NO_ANSWER = 2,
  CHORUS_TRACE_NOT_ASKED = 3
};
#define CHORUS_TRACE_SELF 0x1u
#define CHORUS_TRACE_HINT 0x2u
#define CHORUS_TRACE_TIMES 0x4u
#define CHORUS_TRACE_SYNCED 0x8u
#define CHORUS_TRACE_TIMED_OUT 0x10u
struct chorus_trace_event {
  int kind;       /* enum chorus_trace_kind (others: skip them) */
  int state;      /* REPLICA: enum chorus_trace_state */
  unsigned flags; /* CHORUS_TRACE_* */
  uint32_t at_ms;
  uint64_t node, other;
  uint32_t synced_ms, answered_ms;
};

/* chorus_result_free: releases what @res owns and zeroes it. NULL and a
 * zeroed result are allowed. */
void chorus_result_free(struct chorus_result *res);

/* chorus_result_move: moves *@src into *@dst (which must hold nothing) and
 * zeroes *@src, so an asynchronous callback can keep its result. */
void chorus_result_move(struct chorus_result *dst, struct chorus_result *src);

/* ------------------------------------------------------------------------
 * Opening and closing
 * ------------------------------------------------------------------------ */

/* chorus_client_open: a client for the synchronous API, with its own loop.
 * @seeds is a comma-separated list "host:port,host:port" (hosts are names,
 * IPv4 addresses or bracketed IPv6 "[::1]:7400"); copied. @cfg is copied;
 * NULL means defaults. Nothing is connected until the first request.
 * Errors: CHORUS_EINVAL (empty or malformed seed list, bad config; the
 *           message, through @errmsg, says which),
 *         CHORUS_ENOMEM, CHORUS_EIO (the loop could not be created).
 * @errmsg may be NULL; else it holds CHORUS_ERRMSG_SIZE bytes. */
int chorus_client_open(const char *seeds, const struct chorus_config *cfg,
                       struct chorus_client **out, char *errmsg);

/* chorus_client_open_async: a client for the asynchronous API on @loop
 * (borrowed: it must outlive the client). Same arguments and errors. */
int chorus_client_open_async(struct uv_loop_s *loop, const char *seeds,
                             const struct chorus_config *cfg,
                             struct chorus_client **out, char *errmsg);

/* chorus_client_close: fails every pending request with CHORUS_ECANCELED
 * (their callbacks run, from inside this call) and closes the connection.
 * A synchronous client is freed before this returns. An asynchronous
 * client is freed by its loop once its handles have closed: keep running
 * the loop (uv_run until it has nothing left) and never touch the handle
 * again. Calling it from a callback of an asynchronous client is allowed.
 * NULL is a no-op. */
void chorus_client_close(struct chorus_client *c);

/* chorus_client_errmsg: the message of the last call that failed before a
 * request started (argument errors), or of the last cluster call that
 * failed (those return no struct chorus_result); storage of @c, valid until
 * its next call. */
const char *chorus_client_errmsg(const struct chorus_client *c);

/* chorus_client_server: "host:port" of the seed the client is connected to
 * or will try next. Borrowed from @c. */
const char *chorus_client_server(const struct chorus_client *c);

/* ------------------------------------------------------------------------
 * Synchronous API. Only for a client from chorus_client_open(). Each call
 * initialises *@res, blocks until the request completes, and returns
 * res->status. Keys are 1..CHORUS_MAX_KEY bytes, values
 * 0..CHORUS_MAX_VALUE, contexts 0..65536 bytes, set members
 * 0..CHORUS_MAX_MEMBER; all are borrowed for the call. @opts may be NULL.
 * Argument errors (CHORUS_EINVAL: NULL or empty key, a context out of
 * range, an async client; CHORUS_ETOOBIG: a key, value or member over its
 * limit, or a request over the 2 MiB client frame limit) are returned at
 * once, in res->status and res->errmsg, and nothing is sent.
 * ------------------------------------------------------------------------ */

/* chorus_get: the siblings of @key and their context (values, context),
 * with the object's warnings (object_flags, siblings, object_bytes; see
 * OBJECT WARNINGS: with CHORUS_OBJECT_TRUNCATED, values holds only some
 * siblings). Not found is CHORUS_OK with nvalues 0. Errors: as the node
 * reports them (CHORUS_ETYPE when the key is a counter or a set;
 * CHORUS_ETOOBIG when a replica's copy is too big to send and too few
 * others answered: read with r = 1), and the connection errors above. */
int chorus_get(struct chorus_client *c, const void *key, size_t key_len,
               const struct chorus_opts *opts, struct chorus_result *res);

/* chorus_put: writes @value (0..CHORUS_MAX_VALUE bytes; a node set with a
 * lower --max-value-bytes answers CHORUS_ETOOBIG over it). With the
 * @context of an earlier read, it replaces the siblings that read saw; with
 * an empty context it adds a sibling. With opts->ttl_ms, the value expires
 * (struct chorus_opts). Fills context and the object's warnings.
 * Errors: CHORUS_EINVAL (opts->ttl_ms over CHORUS_MAX_TTL_MS),
 * CHORUS_ETOOBIG when the object would exceed the node's
 * byte budget (nothing written: resolve the siblings, see OBJECT
 * WARNINGS), CHORUS_ESIBLINGS over the sibling cap, CHORUS_ENOTSUP (a TTL
 * sent to a node from before TTLs), and as above. */
int chorus_put(struct chorus_client *c, const void *key, size_t key_len,
               const void *value, size_t value_len, const void *context,
               size_t context_len, const struct chorus_opts *opts,
               struct chorus_result *res);

/* chorus_delete: writes a tombstone over what @context (a chorus_get's)
 * saw. An empty context would cover nothing: the node refuses it with
 * CHORUS_EINVAL ("delete needs a context: read the key first"), nothing
 * written; read first, at the level you need (`chorus del KEY` does). */
int chorus_delete(struct chorus_client *c, const void *key, size_t key_len,
                  const void *context, size_t context_len,
                  const struct chorus_opts *opts, struct chorus_result *res);

/* chorus_counter_add: adds @delta (non-zero) to the PN-counter @key, with
 * opts->op_id or a random id. */
int chorus_counter_add(struct chorus_client *c, const void *key, size_t key_len,
                       int64_t delta, const struct chorus_opts *opts,
                       struct chorus_result *res);

/* chorus_counter_read: the counter's value (counter); 0 when absent. */
int chorus_counter_read(struct chorus_client *c, const void *key,
                        size_t key_len, const struct chorus_opts *opts,
                        struct chorus_result *res);

/* chorus_set_add: adds @n members (borrowed) to the add-wins set @key. */
int chorus_set_add(struct chorus_client *c, const void *key, size_t key_len,
                   const struct chorus_bytes *members, size_t n,
                   const struct chorus_opts *opts, struct chorus_result *res);

/* chorus_set_remove: removes @n members. With the @context of a
 * chorus_set_members, only the adds that read saw go: an add concurrent
 * with or after it survives (add wins), and so does one the read saw that
 * has not reached the coordinating node yet. With an empty context, the
 * adds the coordinating node holds go (docs/PROTOCOL.md, SET_REMOVE).
 * Errors: CHORUS_EMALFORMED (a context that is not a set read's), and as
 * above. */
int chorus_set_remove(struct chorus_client *c, const void *key, size_t key_len,
                      const struct chorus_bytes *members, size_t n,
                      const void *context, size_t context_len,
                      const struct chorus_opts *opts,
                      struct chorus_result *res);

/* chorus_set_members: the members (values) and the set's causal context
 * (context) of set @key. Errors: CHORUS_ETOOBIG for a set whose context is
 * over 64 KiB (never cut: docs/PROTOCOL.md, SET_REPLY), and as above. */
int chorus_set_members(struct chorus_client *c, const void *key, size_t key_len,
                       const struct chorus_opts *opts,
                       struct chorus_result *res);

/* LWW REGISTERS
 *
 * A key of type lww holds one value: the write with the greatest (HLC time,
 * node id), where the time is the hybrid logical clock of the node that
 * coordinated the write (crdt/crdt.h) and the node id breaks ties. Writes
 * are blind (no context): of two concurrent writers, the later one by
 * that order wins on every replica, the other is lost; a write through a
 * node that holds a write orders after it. A delete is a write of "no
 * value" that wins and loses the same way.
 *
 * Clocks: a replica refuses a write stamped more than its
 * --max-clock-ahead-ms (5 s by default) ahead of its own wall clock, so a
 * node with a fast clock cannot win every write of the others until real
 * time catches up with it. Such a write fails with CHORUS_ECLOCK and
 * maybe_applied set: the coordinating node holds it, its hints retry, and
 * it spreads (and wins over writes stamped before it) once the replicas'
 * clocks pass its time; reads through other nodes leave it out until
 * then. Fix the clock of the node named in the error.
 *
 * A key holds one type: an lww call on a kv, counter or set key, or the
 * reverse, fails with CHORUS_ETYPE. A node from before LWW registers
 * answers CHORUS_ENOTSUP.
 */
#define CHORUS_LWW_MS(ts) ((uint64_t)(ts) >> 16)

/* chorus_lww_set: writes @value (0..CHORUS_MAX_VALUE bytes) to register
 * @key, stamped by the coordinating node; on success lww_ts and lww_node
 * hold the stamp this write got (0 and 0 from a node before protocol 5).
 * Errors: CHORUS_ECLOCK (above), CHORUS_ETYPE, and as above. */
int chorus_lww_set(struct chorus_client *c, const void *key, size_t key_len,
                   const void *value, size_t value_len,
                   const struct chorus_opts *opts, struct chorus_result *res);

/* chorus_lww_delete: writes "no value" to register @key, stamped likewise
 * (its stamp in lww_ts and lww_node); a read then finds nothing (nvalues
 * 0) until a later write. Errors: as chorus_lww_set. */
int chorus_lww_delete(struct chorus_client *c, const void *key, size_t key_len,
                      const struct chorus_opts *opts,
                      struct chorus_result *res);

/* chorus_lww_get: the register's value (values[0], nvalues 1; nvalues 0
 * when never written or deleted) with lww_ts and lww_node, the winning
 * write's stamp. Errors: CHORUS_ETYPE, and as above. */
int chorus_lww_get(struct chorus_client *c, const void *key, size_t key_len,
                   const struct chorus_opts *opts, struct chorus_result *res);

/* MAPS
 *
 * A key of type map holds a Riak-style map (docs/PROTOCOL.md, MAP_UPDATE):
 * fields keyed by (name, type), each a register (a value; concurrent
 * writes: the greatest (HLC time, node id) wins), a counter (adds merge),
 * a set (add-wins), a flag (enable-wins) or a nested map (at most 3 deep:
 * a path has at most CHORUS_MAP_DEPTH_MAX steps). An update is a list of
 * operations applied in order, all or nothing. Removing a field, a set
 * member or disabling a flag with the context of a chorus_map_get drops
 * only what that read saw: an update it did not see survives (update
 * wins); the removed field's other state is gone. With an empty context
 * they drop what the coordinating node holds. A node from before maps
 * answers CHORUS_ENOTSUP; a map call on a key of another type, or the
 * reverse, fails with CHORUS_ETYPE.
 */
#define CHORUS_MAP_DEPTH_MAX 4
#define CHORUS_MAP_NAME_MAX 255
#define CHORUS_MAP_OPS_MAX 256

enum chorus_map_type {
  CHORUS_MAP_REGISTER = 1,
  CHORUS_MAP_COUNTER = 2,
  CHORUS_MAP_SET = 3,
  CHORUS_MAP_FLAG = 4,
  CHORUS_MAP_MAP = 5,
};

enum chorus_map_op_kind {
  CHORUS_MAP_OP_REGISTER_SET = 1, /* data: the value */
  CHORUS_MAP_OP_COUNTER_ADD = 2,  /* amount: non-zero */
  CHORUS_MAP_OP_SET_ADD = 3,      /* data: the member */
  CHORUS_MAP_OP_SET_REMOVE = 4,   /* data: the member */
  CHORUS_MAP_OP_FLAG_ENABLE = 5,
  CHORUS_MAP_OP_FLAG_DISABLE = 6,
  CHORUS_MAP_OP_REMOVE = 7, /* the field: @type says which */
};

/* One operation. @path names the field: names separated by '.', each
 * 1..CHORUS_MAP_NAME_MAX bytes (so a name holds no '.'), every step but the
 * last a nested map (created as needed). @type is the last step's type;
 * 0 means the kind's own (a counter for COUNTER_ADD, ...), and REMOVE needs
 * it. Everything is borrowed for the call. */
struct chorus_map_op {
  int kind;         /* enum chorus_map_op_kind */
  const char *path; /* "addr.city" */
  int type;         /* enum chorus_map_type, or 0 */
  const void *data;
  size_t len;
  int64_t amount;
};

/* chorus_map_update: applies @n (1..CHORUS_MAP_OPS_MAX) operations to map
 * @key, with the @context of a chorus_map_get (or none). Errors:
 * CHORUS_EINVAL (a bad path, type or amount, before sending; or the
 * node's, e.g. a field type that does not suit the operation),
 * CHORUS_ETOOBIG (a register value over CHORUS_MAX_VALUE or a member over
 * CHORUS_MAX_MEMBER, before sending; the node's value limit),
 * CHORUS_EMALFORMED (a context that is not a map read's), CHORUS_ETOOBIG (a
 * level over 1024 fields), CHORUS_EBUSY (a remove with a context whose
 * read saw updates the coordinator has not received, while 64 such
 * removes wait on the map already: retry once its replicas have
 * exchanged), CHORUS_ETYPE, and as above. */
int chorus_map_update(struct chorus_client *c, const void *key, size_t key_len,
                      const struct chorus_map_op *ops, size_t n,
                      const void *context, size_t context_len,
                      const struct chorus_opts *opts,
                      struct chorus_result *res);

/* chorus_map_get: the map (values[0], nvalues 1: its encoding, read with
 * chorus_map_walk or chorus_map_json; a key never written reads as an
 * empty map) and its causal context (context), for chorus_map_update.
 * Errors: CHORUS_ETOOBIG (a context over 64 KiB), CHORUS_ETYPE, and as
 * above. */
int chorus_map_get(struct chorus_client *c, const void *key, size_t key_len,
                   const struct chorus_opts *opts, struct chorus_result *res);

/* A field met by chorus_map_walk. Everything is borrowed until the visit
 * returns. Names are bytes (not NUL-terminated). */
struct chorus_map_field {
  unsigned depth; /* 1: a top-level field; a map's fields are one deeper */
  const uint8_t *name;
  size_t name_len;
  int type;                  /* enum chorus_map_type */
  struct chorus_bytes value; /* register: its value */
  int64_t counter;           /* counter: its value */
  bool flag;                 /* flag: on */
  size_t nmembers;           /* set: its members, in byte order */
  const struct chorus_bytes *members;
  size_t nfields; /* map: how many fields it holds (they follow) */
};

/* chorus_map_walk: calls @visit for every field of the map in @res (a
 * chorus_map_get's), depth first, each level in (name, type) order, a map
 * before its fields. A non-zero return from @visit stops the walk and is
 * returned. Errors: CHORUS_EINVAL (@res holds no map), CHORUS_EMALFORMED
 * (the node's bytes do not decode), CHORUS_ERANGE (a counter outside
 * int64), CHORUS_ENOMEM. */
typedef int (*chorus_map_visit)(void *arg, const struct chorus_map_field *f);
int chorus_map_walk(const struct chorus_result *res, chorus_map_visit visit,
                    void *arg);

/* chorus_map_json: the map in @res as one JSON object, keys "name:type"
 * (two fields may share a name): a register's value as a string, a
 * counter's as a number, a set's as an array of strings, a flag's as true
 * or false, a map's as an object; bytes that are not UTF-8 as \u00XX.
 * Writes at most @cap bytes with a NUL into @buf (may be NULL with @cap
 * 0); *@needed (may be NULL) gets the full length without the NUL.
 * Errors: CHORUS_ETOOBIG (@cap too small: call again with *@needed + 1),
 * and as chorus_map_walk. */
int chorus_map_json(const struct chorus_result *res, char *buf, size_t cap,
                    size_t *needed);

/* COMPARE-AND-SET (linearizable; issue 23, docs/PROTOCOL.md "CAS")
 *
 * A CAS key holds one value (or none) that only chorus_cas changes. Each
 * call is one single-decree Paxos round (or a few) among all the key's
 * natural replicas, a majority of which must answer: it is linearizable
 * with every other chorus_cas on the key, whatever node coordinates it,
 * crashes and pauses included. A serial read (CHORUS_CAS_READ) finishes a
 * write left half-done by a coordinator that died, and returns what every
 * later operation will see.
 *
 *   CHORUS_CAS_READ             the current value (nothing changes)
 *   CHORUS_CAS_SET              writes @value, always
 *   CHORUS_CAS_IF_ABSENT        writes @value when the key has no value
 *   CHORUS_CAS_IF_VALUE         writes @value when the value is @expected
 *   CHORUS_CAS_DELETE_IF_VALUE  removes the value when it is @expected
 *   CHORUS_CAS_IF_MATCH         writes @value when the value is still the
 *                               version the context @expected names
 *   CHORUS_CAS_DELETE_IF_MATCH  removes the value when it is that version
 *
 * CONTEXTS. Every answer carries the context of the key's value (the
 * result's context: CHORUS_CAS_CONTEXT_LEN opaque bytes; the CLI prints
 * it in hexadecimal like a kv context, and the two kinds are not
 * interchangeable). It names one version: an if-match applies only when
 * no update chose a value since, even one with equal bytes (the ABA an
 * if-value misses). A key never written has a context of its own (all
 * zeros), and so does a deleted key (the delete's): an if-match of an
 * absent key read earlier applies only while it stays that absence. A
 * stale context is refused, and the answer gives the current value and
 * context. Rarely a context goes stale with no update in between: a value
 * whose commit reached no majority is chosen again by the next operation
 * at a new ballot (replication/paxos.h, CONTEXTS); the refusal then shows
 * the same value, and a retry with its context applies.
 *
 * The answer: cas_applied, values[0] the value found, context. Errors:
 * CHORUS_ETIMEDOUT with maybe_applied: the coordinator could not tell
 * whether its update was chosen (it lost its quorum mid-way, or another
 * proposer pre-empted it after some replica accepted it): read with
 * CHORUS_CAS_READ to learn the outcome; CHORUS_EUNAVAILABLE: no majority
 * of replicas live, nothing applied; CHORUS_EBUSY: the key's range is
 * moving in a topology change, nothing applied, retry after it;
 * CHORUS_ETYPE: the key holds a kv, counter, set or lww value (and a kv,
 * counter, set or lww call on a CAS key fails with CHORUS_ETYPE);
 * CHORUS_ENOTSUP: a node from before CAS. Options: timeout_ms bounds the
 * rounds; w (or r when w is 0) CHORUS_LOCAL_QUORUM asks for LOCAL_SERIAL:
 * Paxos among the key's replicas in the client's datacenter only (linear-
 * izable only with other LOCAL_SERIAL calls of that datacenter on the key;
 * CHORUS_EINVAL without datacenters); other levels do not apply (always a
 * majority of all the key's replicas). */
enum chorus_cas_cond {
  CHORUS_CAS_READ = 0,
  CHORUS_CAS_SET = 1,
  CHORUS_CAS_IF_ABSENT = 2,
  CHORUS_CAS_IF_VALUE = 3,
  CHORUS_CAS_DELETE_IF_VALUE = 4,
  CHORUS_CAS_IF_MATCH = 5,
  CHORUS_CAS_DELETE_IF_MATCH = 6,
};
#define CHORUS_CAS_CONTEXT_LEN 16u

/* chorus_cas: @cond on @key; @expected (IF_VALUE, DELETE_IF_VALUE) and
 * @value (SET, IF_ABSENT, IF_VALUE, IF_MATCH) are 0..CHORUS_MAX_VALUE
 * bytes and ignored by conditions that take none; for IF_MATCH and
 * DELETE_IF_MATCH @expected is a context (CHORUS_CAS_CONTEXT_LEN bytes, as
 * a CAS answer gave it; else CHORUS_EINVAL). */
int chorus_cas(struct chorus_client *c, const void *key, size_t key_len,
               int cond, const void *expected, size_t expected_len,
               const void *value, size_t value_len,
               const struct chorus_opts *opts, struct chorus_result *res);

/* LOCKS WITH FENCING TOKENS (issue 23; docs/PROTOCOL.md "Locks and
 * fencing")
 *
 * A lock is a CAS key of a namespace of its own (no data key clashes with
 * a lock name) holding a record: held or free, the last fencing token,
 * the lease's expiry and the holder's id. Each call is one CAS (Paxos
 * among the key's replicas), linearizable with every other on the lock.
 *
 *   chorus_lock_acquire  takes a free lock, or one whose lease expired
 *                        more than the node's skew allowance (chorusd
 *                        --lock-skew-ms, default 500) ago on the
 *                        coordinator's clock; its token is the last + 1:
 *                        tokens of a lock only grow, across releases,
 *                        expiries, crashes and restarts
 *   chorus_lock_renew    extends the lease of the holder of @token while
 *                        it is live
 *   chorus_lock_release  frees the lock held at @token (the token stays)
 *   chorus_lock_status   reads the record (a serial read)
 *
 * A lease protects nothing by itself: a holder that pauses past its lease
 * (a GC pause, SIGSTOP) does not know it lost the lock. So the resource
 * checks the token: chorus_fenced_put writes @value to the CAS key @key
 * only when @token is at least the highest token that key has seen for
 * the lock named @lock, atomically; else it is refused (cas_applied false,
 * lock_refusal CHORUS_LOCK_FENCED, lock_token the highest) and nothing
 * changes. A fenced key keeps its tokens next to its value; chorus_cas
 * with CHORUS_CAS_READ reads its value, and a chorus_cas update on it is
 * CHORUS_ETYPE (it would drop the fences).
 *
 * Names are 1..255 bytes, holders 0..255, ttl_ms 1..10 years. Errors as
 * chorus_cas, and CHORUS_EINVAL (a name or holder out of bounds, a ttl of
 * 0, a data key in the lock namespace), CHORUS_ECORRUPT (a record that
 * does not decode, or a key fenced by more than 16 locks). */
enum chorus_lock_refusal {
  CHORUS_LOCK_OK = 0,        /* applied (or a status) */
  CHORUS_LOCK_HELD = 1,      /* acquire: another holder's lease is live */
  CHORUS_LOCK_BAD_TOKEN = 2, /* renew, release: not held at that token */
  CHORUS_LOCK_EXPIRED = 3,   /* renew: the lease is over */
  CHORUS_LOCK_FENCED = 4,    /* fenced put: the token is below the key's */
};
int chorus_lock_acquire(struct chorus_client *c, const void *name,
                        size_t name_len, const void *holder, size_t holder_len,
                        uint64_t ttl_ms, const struct chorus_opts *opts,
                        struct chorus_result *res);
int chorus_lock_renew(struct chorus_client *c, const void *name,
                      size_t name_len, uint64_t token, uint64_t ttl_ms,
                      const struct chorus_opts *opts,
                      struct chorus_result *res);
int chorus_lock_release(struct chorus_client *c, const void *name,
                        size_t name_len, uint64_t token,
                        const struct chorus_opts *opts,
                        struct chorus_result *res);
int chorus_lock_status(struct chorus_client *c, const void *name,
                       size_t name_len, const struct chorus_opts *opts,
                       struct chorus_result *res);
int chorus_fenced_put(struct chorus_client *c, const void *key, size_t key_len,
                      const void *value, size_t value_len, const void *lock,
                      size_t lock_len, uint64_t token,
                      const struct chorus_opts *opts,
                      struct chorus_result *res);

/* chorus_ring: RING_QUERY then STATUS_QUERY to one node: epoch, vnodes,
 * replication, and nodes with their share of the token space (computed
 * with ring/ring.h from the node list and the replication.* stats); from a
 * node of protocol version 3 or later also the names (node_name, and each
 * node's name). */
int chorus_ring(struct chorus_client *c, struct chorus_result *res);

/* chorus_status: the same two queries, read for membership: nodes with
 * state, incarnation, clock offset and hints, and every stat. */
int chorus_status(struct chorus_client *c, struct chorus_result *res);

/* ------------------------------------------------------------------------
 * ANTI-ENTROPY
 *
 * Each node compares a hash tree of its data with the other replicas of
 * its ranges every --aae-interval-ms and joins the keys that differ
 * (docs/ARCHITECTURE.md, "Anti-entropy").
 * ------------------------------------------------------------------------ */

/* chorus_repair_status: one node's anti-entropy as res->stats (node_id and
 * node_name set): aae.tree_built (0 while its tree is being rebuilt after
 * start), aae.busy, aae.interval_ms, its totals aae.started, .completed,
 * .aborted, .segments_differing, .keys_compared, .keys_repaired,
 * .bytes_sent, .bytes_received, and per peer it exchanged with,
 * peer.<16 hex id>.last_completed_ms (wall ms at which the last completed
 * exchange started; 0 never), .exchanges, .aborted, .segments_differing,
 * .keys_repaired, .bytes (per token range: chorus_repair_ranges). Errors:
 * the request's (a node older than anti-entropy answers CHORUS_ENOTSUP). */
int chorus_repair_status(struct chorus_client *c, struct chorus_result *res);
/* chorus_repair_now: that node starts an exchange with its next peer as
 * soon as its tree is built and none is under way, and answers its status
 * as chorus_repair_status (before the exchange ends: poll the status). */
int chorus_repair_now(struct chorus_client *c, struct chorus_result *res);
/* chorus_repair_ranges: that node's ranges overlapping [@first, @last]
 * (tokens, inclusive; first > last wraps past 2^64-1; 0 and UINT64_MAX:
 * all) in res->ranges, and its stats as chorus_repair_status plus
 * aae.ranges (how many ranges overlap) and aae.ranges_sent (how many are
 * in res->ranges: at most 65,536). With @now, the node first asks for
 * exchanges, one after the other and as soon as possible, with every other
 * replica (alive) of those ranges, each covering every range the two share
 * (aae.requested_peers: how many peers wait for one). Errors: the
 * request's; CHORUS_ERANGE (@now, and the node replicates no part of the
 * range: ask one of its replicas); CHORUS_EMALFORMED (a reply whose ranges
 * do not parse); CHORUS_ENOTSUP (a node older than per-range status). */
int chorus_repair_ranges(struct chorus_client *c, uint64_t first, uint64_t last,
                         bool now, struct chorus_result *res);

/* ------------------------------------------------------------------------
 * CLUSTER STATUS
 *
 * The cluster's membership (its members, their ownership states, the
 * metadata epoch that versions the ring) is kept by a Raft group of nodes
 * (DESIGN.md §10; docs/PROTOCOL.md, Cluster metadata). Any node answers a
 * status query, from the metadata it has applied: on the minority side of
 * a partition that is a view that may be stale, and says so (leader_id 0,
 * raft_state follower or candidate). A change (remove) also goes to any
 * node, which hands it to the Raft leader itself and answers once it is
 * applied. Nodes older than protocol version 3 know none of this and
 * answer CHORUS_ENOTSUP.
 * ------------------------------------------------------------------------ */

/* A member's ownership state in the metadata (meta.h's numbers). */
enum chorus_meta_state {
  CHORUS_META_JOINING = 1,  /* known, receives the log, owns nothing yet */
  CHORUS_META_NORMAL = 2,   /* owns its tokens */
  CHORUS_META_LEAVING = 3,  /* owns its tokens while it hands them over */
  CHORUS_META_LEFT = 4,     /* owns nothing; its name stays taken */
  CHORUS_META_REMOVED = 5,  /* taken out by an operator; owns nothing */
  CHORUS_META_REPLACING = 6 /* came back with an empty disk: owns its
                               tokens, streams them back, serves no reads */
};

/* A member's part in the Raft group. */
enum chorus_raft_role {
  CHORUS_ROLE_NONE = 0,    /* not in the Raft configuration */
  CHORUS_ROLE_VOTER = 1,   /* votes */
  CHORUS_ROLE_STANDBY = 2, /* receives the log, does not vote */
  CHORUS_ROLE_SPARE = 3    /* in the configuration, receives nothing */
};

/* A member's liveness, as the answering node's SWIM sees it. */
enum chorus_alive {
  CHORUS_ALIVE_UNKNOWN = 0,
  CHORUS_ALIVE_ALIVE = 1,
  CHORUS_ALIVE_SUSPECT = 2,
  CHORUS_ALIVE_DEAD = 3,
  CHORUS_ALIVE_LEFT = 4
};

/* The answering node's Raft state. */
enum chorus_raft_state {
  CHORUS_RAFT_UNAVAILABLE = 0, /* no Raft instance (starting) */
  CHORUS_RAFT_FOLLOWER = 1,
  CHORUS_RAFT_CANDIDATE = 2,
  CHORUS_RAFT_LEADER = 3
};

/* One member. Strings are NUL-terminated and owned by the status. */
struct chorus_cluster_member {
  uint64_t id;      /* xxh3-64 of the name */
  const char *name; /* chorusd --id, 1..127 bytes */
  const char *addr; /* peer "host:port"; "" when unknown */
  const char *dc, *rack;
  int state;          /* enum chorus_meta_state */
  int role;           /* enum chorus_raft_role */
  int alive;          /* enum chorus_alive */
  uint32_t vnodes;    /* tokens; 0: the ring's default */
  uint32_t share_ppm; /* its share of the ring, parts per million */
};

/* The metadata as one node has applied it. One allocation: free it with
 * chorus_cluster_status_free(). */
struct chorus_cluster_status {
  char server[64];         /* "host:port" of the node that answered */
  uint64_t node_id;        /* the answering node */
  const char *node_name;   /* its name */
  uint64_t leader_id;      /* the Raft leader it knows; 0: none */
  const char *leader_name; /* "" when none (or unnamed) */
  uint64_t term;           /* its Raft term */
  uint64_t commit_index;   /* its Raft commit index */
  uint64_t applied_index;  /* the last index applied to its metadata */
  uint64_t epoch;          /* the metadata epoch, the ring's version */
  int raft_state;          /* enum chorus_raft_state of the answering node */
  size_t nmembers;
  struct chorus_cluster_member *members; /* by id */
};

/* chorus_cluster_status: asks one node (the current seed, failing over
 * like any read) for the cluster metadata. On CHORUS_OK *@out is a new
 * status the caller frees with chorus_cluster_status_free(); on error it
 * is NULL and chorus_client_errmsg(@c) says why (for an error the node
 * reported: its address and its text). Only for a synchronous client.
 * Errors: CHORUS_EUNAVAILABLE (no seed reachable; or the node has no
 *           metadata yet),
 *         CHORUS_ENOTSUP (a node older than protocol version 3),
 *         CHORUS_EINVAL (NULL arguments, an asynchronous client),
 *         CHORUS_ETIMEDOUT, CHORUS_ENOMEM, and the connection errors of
 *         the synchronous API. */
int chorus_cluster_status(struct chorus_client *c,
                          struct chorus_cluster_status **out);

/* chorus_cluster_remove: takes the member named @name (1..127 bytes,
 * borrowed for the call) out of the cluster. A dead NORMAL member becomes
 * LEAVING: the nodes that inherit its ranges stream them from the other
 * replicas, and it is REMOVED once they hold them (Cassandra's removenode;
 * docs/PROTOCOL.md, Topology changes); @force, or a member that owns
 * nothing natural yet (a joiner), is REMOVED at once, without streaming.
 * Any node takes the request and hands it to the Raft leader; the answer
 * comes once the change is applied (the removal has begun), with the
 * status after it in *@out (as chorus_cluster_status). A member that SWIM
 * holds alive is refused unless @force. The request is a write: once sent
 * it is never resent, and the client waits up to 10 s for the answer.
 * Errors: CHORUS_EUNAVAILABLE (no metadata leader reachable from the node:
 *           the minority side of a partition; nothing changed),
 *         CHORUS_ENOTFOUND (no member of that name),
 *         CHORUS_EBUSY (the member is alive and @force is false; another
 *           change is under way: the message names it),
 *         CHORUS_ETIMEDOUT, CHORUS_ECLOSED (the answer was lost: the
 *           removal may have been applied; read the status),
 *         CHORUS_EINVAL (a name out of range, a transition the metadata
 *           refuses), CHORUS_ENOTSUP, as above. */
int chorus_cluster_remove(struct chorus_client *c, const char *name, bool force,
                          struct chorus_cluster_status **out);

/* chorus_cluster_decommission: the live member @name hands its ranges to
 * the nodes that inherit them (they stream them from it), then is LEFT and
 * can be stopped. Answered once the change has begun (LEAVING), with the
 * status in *@out; watch chorus_cluster_status for its end.
 * Errors: CHORUS_EBUSY (another change is under way, named in the message;
 *           or fewer members than the replication factor would remain in
 *           its datacenter, unless @force),
 *         CHORUS_EINVAL (the member is not NORMAL), and as
 *         chorus_cluster_remove. */
int chorus_cluster_decommission(struct chorus_client *c, const char *name,
                                bool force, struct chorus_cluster_status **out);

/* chorus_cluster_replace: the dead member @name is replaced by @with, a
 * node started with --seeds (joining, or normal once it has joined): one
 * change makes @with normal and takes @name out (REMOVED), @name's ranges
 * streamed from the other replicas. A node that comes back with its own
 * name and an empty disk replaces itself without this call (state
 * "replacing"). Answered once the change has begun.
 * Errors: CHORUS_EBUSY (@name is alive, or another change is under way),
 *         CHORUS_EINVAL (@name is not NORMAL, or @with neither joining
 *         nor normal), and as chorus_cluster_remove. */
int chorus_cluster_replace(struct chorus_client *c, const char *name,
                           const char *with,
                           struct chorus_cluster_status **out);

/* CLUSTER PLAN: a dry run of a topology change. The node applies the
 * command to a copy of its metadata and answers what would move, per
 * (from, to) pair, with the ranges' share of the token space and an
 * estimate of their keys and bytes (per replica), from the node's own
 * store: the keys and bytes it holds (up to 20,000 read) over the fraction
 * of the token space it replicates (@basis_*); keys are spread by a hash,
 * so that density holds everywhere, about. A keyspace with a replication
 * of its own moves ranges of its own: a pair sums every class's moves, each
 * estimated with its class's density. A node that replicates nothing (a
 * joiner) has no basis: ask a normal member. Nothing changes. */
enum chorus_plan_action {
  CHORUS_PLAN_UNDER_WAY = 0,    /* the change under way, as it stands */
  CHORUS_PLAN_JOIN = 1,         /* a node named @name joins (a new one:
                                   with @dc, @rack, @vnodes) */
  CHORUS_PLAN_DECOMMISSION = 2, /* member @name hands its ranges over */
  CHORUS_PLAN_REMOVE = 3        /* dead member @name is removed */
};

struct chorus_plan_move {
  uint64_t from;         /* 0: nobody held the ranges (nothing to send) */
  uint64_t to;           /* the node that would gain them */
  const char *from_name; /* "" when unknown */
  const char *to_name;
  uint32_t ranges;    /* token ranges */
  uint32_t share_ppm; /* of the token space, parts per million */
  uint64_t est_keys, est_bytes;
};

/* One allocation: free it with chorus_cluster_plan_free(). */
struct chorus_cluster_plan {
  char server[64]; /* "host:port" of the node that answered */
  uint64_t epoch;  /* the metadata epoch the plan was made from */
  uint64_t basis_keys, basis_bytes; /* what the estimate is from */
  uint32_t basis_ppm; /* over this share of the token space; 0: none */
  const char *note;   /* what the command itself would say (a refusal
                         --force overrides, a member already leaving); ""
                         when nothing */
  size_t nmoves;
  struct chorus_plan_move *moves;
};

/* chorus_cluster_plan: asks one node for the plan of @action on @name
 * (1..127 bytes; ignored for CHORUS_PLAN_UNDER_WAY). For the JOIN of a
 * node that is not a member yet, @dc and @rack (NULL: "dc1" and "r1",
 * chorusd's defaults) and @vnodes (0: the ring's default) place it. A read:
 * retried on another seed. On CHORUS_OK *@out is the plan (caller frees).
 * Errors: what the command itself would meet: CHORUS_ENOTFOUND (no such
 *           member), CHORUS_EINVAL (not a normal member, a name out of
 *           range), CHORUS_EBUSY (another change is under way), and as
 *           chorus_cluster_status (CHORUS_ENOTSUP from a node without
 *           plans). */
int chorus_cluster_plan(struct chorus_client *c, int action, const char *name,
                        const char *dc, const char *rack, uint32_t vnodes,
                        struct chorus_cluster_plan **out);
void chorus_cluster_plan_free(struct chorus_cluster_plan *p);

/* KEYSPACES (protocol 5, issue 21; docs/PROTOCOL.md "Keyspaces").
 *
 * A keyspace is a namespace of keys with its own type and defaults, kept
 * in the cluster metadata: created, listed, changed and dropped here, and
 * named by a request's chorus_opts.keyspace. */
enum chorus_keyspace_type {
  CHORUS_KS_ANY = 0, /* each key's type by first use, as "default" */
  CHORUS_KS_KV = 1,
  CHORUS_KS_LWW = 2,
  CHORUS_KS_COUNTER = 3,
  CHORUS_KS_SET = 4,
  CHORUS_KS_MAP = 5
};
/* chorus_keyspace_type_name: "any", "kv", "lww", "counter", "set", "map"
 * or "?". chorus_keyspace_type_parse: the type called @name, or -1. */
const char *chorus_keyspace_type_name(int type);
int chorus_keyspace_type_parse(const char *name);

struct chorus_keyspace {
  char name[48];         /* 1..47 of [A-Za-z0-9_-], never "default" */
  uint32_t id;           /* answers only: never given again after a drop */
  int type;              /* enum chorus_keyspace_type */
  char replication[256]; /* a spec ("dc1:3,dc2:2"); "": the cluster's;
                            another places the keyspace's keys on replicas
                            of their own; ALTER cannot change it */
  int32_t read, write;   /* default levels (chorus_opts' scale); 0: the
                            node's */
  uint64_t ttl_ms;       /* default time to live; 0: none */
  uint32_t siblings_warn, siblings_max; /* 0: the node's */
};

/* What a node answered: its keyspaces, sorted by name, as it applied them
 * at metadata index @applied. One allocation: chorus_keyspaces_free(). */
struct chorus_keyspaces {
  uint64_t applied;
  size_t n;
  struct chorus_keyspace *keyspaces;
};
void chorus_keyspaces_free(struct chorus_keyspaces *k);

/* chorus_keyspace_list: every keyspace (@name NULL or "") or the one
 * called @name (CHORUS_ENOTFOUND when none is), from one node's metadata.
 * A read: retried on another seed. On CHORUS_OK *@out is the answer. */
int chorus_keyspace_list(struct chorus_client *c, const char *name,
                         struct chorus_keyspaces **out);
/* chorus_keyspace_create / _alter: @ks (its id ignored) created, or the
 * settings of the one of that name replaced (its type cannot change);
 * answered once the metadata applied it, with every keyspace in *@out.
 * chorus_keyspace_drop: the keyspace @name goes (its data becomes
 * unreachable at once, and every node deletes its copies within seconds;
 * the name may be created again, as a new keyspace).
 * Writes: never resent. Errors, each with the node's reason in
 * chorus_client_errmsg(): CHORUS_EEXIST, CHORUS_ENOTFOUND, CHORUS_EINVAL (a bad
 * name or setting, a type change), CHORUS_ENOTSUP (an ALTER of the
 * replication; a node older than protocol 5), CHORUS_ENOSPC (256
 * keyspaces, or an eighth replication besides the cluster's),
 * CHORUS_ETIMEDOUT (no metadata leader within 5 s). */
int chorus_keyspace_create(struct chorus_client *c,
                           const struct chorus_keyspace *ks,
                           struct chorus_keyspaces **out);
int chorus_keyspace_alter(struct chorus_client *c,
                          const struct chorus_keyspace *ks,
                          struct chorus_keyspaces **out);
int chorus_keyspace_drop(struct chorus_client *c, const char *name,
                         struct chorus_keyspaces **out);

/* USERS (protocol 5, issue 24; docs/PROTOCOL.md "Users").
 *
 * Users live in the cluster metadata: a name, the verifier of a password
 * (SCRAM with Argon2id: the library derives it here, so the password
 * itself never leaves the caller), and grants of a role on a keyspace
 * (or on every keyspace, which alone covers `default` and the cluster).
 * Roles nest: write includes read, admin includes write. A node started
 * with --auth required asks every client to log in as one
 * (chorus_config.user) and checks each request against its roles
 * (CHORUS_EPERM with the reason when they do not allow it). */
enum chorus_role {
  CHORUS_ROLE_READ = 1,
  CHORUS_ROLE_WRITE = 2,
  CHORUS_ROLE_ADMIN = 3
};
/* chorus_role_name: "read", "write", "admin" or "?". chorus_role_parse:
 * the role called @name, or -1. */
const char *chorus_role_name(int role);
int chorus_role_parse(const char *name);

#define CHORUS_MAX_USER_NAME 47u /* [A-Za-z0-9_.@-] */
#define CHORUS_MAX_GRANTS 16u
struct chorus_grant {
  int role;          /* enum chorus_role */
  char keyspace[48]; /* "": every keyspace */
};
struct chorus_user {
  char name[48];
  size_t ngrants;
  struct chorus_grant grants[CHORUS_MAX_GRANTS];
};
/* What a node answered: its users, sorted by name, as it applied them at
 * metadata index @applied (never a verifier). One allocation:
 * chorus_users_free(). */
struct chorus_users {
  uint64_t applied;
  size_t n;
  struct chorus_user *users;
};
void chorus_users_free(struct chorus_users *u);

/* Argon2id's cost for a new password: passes (1..10) and memory in KiB
 * (8..262144). NULL where a call takes one: 2 passes and 64 MiB
 * (libsodium's "interactive"); a client pays it once (its first login),
 * never the node. */
struct chorus_pw_cost {
  uint32_t ops, mem_kib;
};

/* chorus_user_list: every user (@name NULL or "") or the one called @name
 * (CHORUS_ENOTFOUND when none is). A read: retried on another seed.
 * chorus_user_create / _passwd: @name with the password @password
 * (@len bytes, at most 1024), created (no grants) or changed (grants
 * kept). chorus_user_drop: @name goes. chorus_user_grant / _revoke: role
 * @role on keyspace @keyspace (NULL or "": every keyspace) given or taken
 * (granted again: no change; revoking what it does not hold:
 * CHORUS_ENOTFOUND). Each change is answered once the metadata applied it,
 * with every user in *@out; never resent. Errors, each with the node's
 * reason: CHORUS_EEXIST, CHORUS_ENOTFOUND, CHORUS_EINVAL (a bad name,
 * role or cost), CHORUS_ENOSPC (256 users, 16 grants), CHORUS_ENOTSUP (a
 * node older than protocol 5), CHORUS_ETIMEDOUT (no metadata leader). */
int chorus_user_list(struct chorus_client *c, const char *name,
                     struct chorus_users **out);
int chorus_user_create(struct chorus_client *c, const char *name,
                       const char *password, size_t len,
                       const struct chorus_pw_cost *cost,
                       struct chorus_users **out);
int chorus_user_passwd(struct chorus_client *c, const char *name,
                       const char *password, size_t len,
                       const struct chorus_pw_cost *cost,
                       struct chorus_users **out);
int chorus_user_drop(struct chorus_client *c, const char *name,
                     struct chorus_users **out);
int chorus_user_grant(struct chorus_client *c, const char *name, int role,
                      const char *keyspace, struct chorus_users **out);
int chorus_user_revoke(struct chorus_client *c, const char *name, int role,
                       const char *keyspace, struct chorus_users **out);

/* GOSSIP KEYS (protocol 5, issue 24; docs/PROTOCOL.md "Gossip keys").
 *
 * SWIM's packets are sealed with the primary key of a keyring kept in the
 * cluster metadata and opened with any key of it; the boot key is each
 * node's --cluster-key (id 0, until removed). Rotation is memberlist's:
 * install a new key (every node opens it), use it (every node seals with
 * it), remove the old one. The metadata refuses a use until every member
 * reported applying the install, and a remove until every member
 * reported applying the use (CHORUS_EBUSY naming the member: try again),
 * so no node ever receives a packet it cannot open. A key is named by
 * its id (a 32-bit fingerprint); no reply carries its bytes. */
#define CHORUS_GOSSIP_KEY_BYTES 32u
#define CHORUS_MAX_GOSSIP_KEYS 5u /* the boot key and four at most */
#define CHORUS_MAX_KEY_BEHIND 255u
struct chorus_gossip_key {
  uint32_t id;    /* 0: the boot key (--cluster-key) */
  uint64_t since; /* the keyring version its install made */
  bool primary;   /* the sealing key */
};
/* What a node answered: the keyring as it applied it at metadata index
 * @applied; @id the key the call named (install: the new key's id);
 * @behind the names of members (comma-separated) that have not reported
 * applying @version yet. chorus_keyring_free(). */
struct chorus_keyring {
  uint64_t applied, version;
  uint32_t id;
  size_t n;
  struct chorus_gossip_key keys[CHORUS_MAX_GOSSIP_KEYS]; /* by id */
  char behind[CHORUS_MAX_KEY_BEHIND + 1];
};
void chorus_keyring_free(struct chorus_keyring *k);
/* chorus_cluster_key_list: the keyring (a read: retried on another
 * seed). chorus_cluster_key_install: @key (32 bytes) joins it, accepted;
 * _use: key @id becomes the primary; _remove: key @id goes (0: the boot
 * key). Each change is answered once the metadata applied it; never
 * resent. Errors, each with the node's reason: CHORUS_EEXIST,
 * CHORUS_ENOTFOUND, CHORUS_ENOSPC (four keys), CHORUS_EINVAL (removing
 * the primary), CHORUS_EBUSY (a member has not applied the previous step:
 * try again), CHORUS_ENOTSUP (a node without it), CHORUS_ETIMEDOUT. */
int chorus_cluster_key_list(struct chorus_client *c,
                            struct chorus_keyring **out);
int chorus_cluster_key_install(struct chorus_client *c,
                               const uint8_t key[CHORUS_GOSSIP_KEY_BYTES],
                               struct chorus_keyring **out);
int chorus_cluster_key_use(struct chorus_client *c, uint32_t id,
                           struct chorus_keyring **out);
int chorus_cluster_key_remove(struct chorus_client *c, uint32_t id,
                              struct chorus_keyring **out);

/* chorus_cluster_stage: stages a change in the cluster's metadata for a
 * later commit (Riak's staged changes): CHORUS_STAGE_DECOMMISSION,
 * _REMOVE (@force as the commands') or _REPLACE (by @with) of member
 * @name, checked as the command itself would be and then only recorded
 * (replacing any staged change; `chorus_cluster_plan` with
 * CHORUS_PLAN_UNDER_WAY shows what it would move); CHORUS_STAGE_COMMIT
 * applies it (the metadata checks it again, then: a change under way is
 * CHORUS_EBUSY and the change stays staged; nothing staged is
 * CHORUS_ENOTFOUND); CHORUS_STAGE_CLEAR drops it (@name and @with
 * unused). Answered with the status once committed to the metadata log.
 * Errors: as the command staged, and as chorus_cluster_remove. */
enum chorus_stage_action {
  CHORUS_STAGE_DECOMMISSION = 1,
  CHORUS_STAGE_REMOVE = 2,
  CHORUS_STAGE_REPLACE = 3,
  CHORUS_STAGE_COMMIT = 4,
  CHORUS_STAGE_CLEAR = 5
};
int chorus_cluster_stage(struct chorus_client *c, int action, const char *name,
                         const char *with, bool force,
                         struct chorus_cluster_status **out);

/* chorus_cluster_status_free: NULL is allowed. */
void chorus_cluster_status_free(struct chorus_cluster_status *s);

/* Names, static: "joining".."removed"; "none", "voter", "standby",
 * "spare"; "unknown", "alive", "suspect", "dead", "left"; "unavailable",
 * "follower", "candidate", "leader". "?" for values outside the enums. */
const char *chorus_meta_state_name(int state);
const char *chorus_raft_role_name(int role);
const char *chorus_alive_name(int alive);
const char *chorus_raft_state_name(int state);

/* ------------------------------------------------------------------------
 * Asynchronous API. Only for a client from chorus_client_open_async().
 * Arguments as in the synchronous calls; keys, values, contexts and members
 * are copied before the call returns. On CHORUS_OK, @cb runs exactly once
 * on the loop with the result, which is borrowed until @cb returns (move it
 * out with chorus_result_move()); @cb may start new requests or close the
 * client. On error (CHORUS_EINVAL, CHORUS_ETOOBIG, CHORUS_ENOMEM,
 * CHORUS_ECLOSED for a closing client) @cb never runs.
 * ------------------------------------------------------------------------ */

typedef void (*chorus_cb)(struct chorus_client *c, struct chorus_result *res,
                          void *arg);

int chorus_get_async(struct chorus_client *c, const void *key, size_t key_len,
                     const struct chorus_opts *opts, chorus_cb cb, void *arg);
int chorus_put_async(struct chorus_client *c, const void *key, size_t key_len,
                     const void *value, size_t value_len, const void *context,
                     size_t context_len, const struct chorus_opts *opts,
                     chorus_cb cb, void *arg);
int chorus_delete_async(struct chorus_client *c, const void *key,
                        size_t key_len, const void *context, size_t context_len,
                        const struct chorus_opts *opts, chorus_cb cb,
                        void *arg);
int chorus_counter_add_async(struct chorus_client *c, const void *key,
                             size_t key_len, int64_t delta,
                             const struct chorus_opts *opts, chorus_cb cb,
                             void *arg);
int chorus_counter_read_async(struct chorus_client *c, const void *key,
                              size_t key_len, const struct chorus_opts *opts,
                              chorus_cb cb, void *arg);
int chorus_set_add_async(struct chorus_client *c, const void *key,
                         size_t key_len, const struct chorus_bytes *members,
                         size_t n, const struct chorus_opts *opts, chorus_cb cb,
                         void *arg);
int chorus_set_remove_async(struct chorus_client *c, const void *key,
                            size_t key_len, const struct chorus_bytes *members,
                            size_t n, const void *context, size_t context_len,
                            const struct chorus_opts *opts, chorus_cb cb,
                            void *arg);
int chorus_set_members_async(struct chorus_client *c, const void *key,
                             size_t key_len, const struct chorus_opts *opts,
                             chorus_cb cb, void *arg);
int chorus_lww_set_async(struct chorus_client *c, const void *key,
                         size_t key_len, const void *value, size_t value_len,
                         const struct chorus_opts *opts, chorus_cb cb,
                         void *arg);
int chorus_lww_delete_async(struct chorus_client *c, const void *key,
                            size_t key_len, const struct chorus_opts *opts,
                            chorus_cb cb, void *arg);
int chorus_lww_get_async(struct chorus_client *c, const void *key,
                         size_t key_len, const struct chorus_opts *opts,
                         chorus_cb cb, void *arg);
int chorus_map_update_async(struct chorus_client *c, const void *key,
                            size_t key_len, const struct chorus_map_op *ops,
                            size_t n, const void *context, size_t context_len,
                            const struct chorus_opts *opts, chorus_cb cb,
                            void *arg);
int chorus_map_get_async(struct chorus_client *c, const void *key,
                         size_t key_len, const struct chorus_opts *opts,
                         chorus_cb cb, void *arg);
int chorus_cas_async(struct chorus_client *c, const void *key, size_t key_len,
                     int cond, const void *expected, size_t expected_len,
                     const void *value, size_t value_len,
                     const struct chorus_opts *opts, chorus_cb cb, void *arg);
int chorus_lock_acquire_async(struct chorus_client *c, const void *name,
                              size_t name_len, const void *holder,
                              size_t holder_len, uint64_t ttl_ms,
                              const struct chorus_opts *opts, chorus_cb cb,
                              void *arg);
int chorus_lock_renew_async(struct chorus_client *c, const void *name,
                            size_t name_len, uint64_t token, uint64_t ttl_ms,
                            const struct chorus_opts *opts, chorus_cb cb,
                            void *arg);
int chorus_lock_release_async(struct chorus_client *c, const void *name,
                              size_t name_len, uint64_t token,
                              const struct chorus_opts *opts, chorus_cb cb,
                              void *arg);
int chorus_lock_status_async(struct chorus_client *c, const void *name,
                             size_t name_len, const struct chorus_opts *opts,
                             chorus_cb cb, void *arg);
int chorus_fenced_put_async(struct chorus_client *c, const void *key,
                            size_t key_len, const void *value, size_t value_len,
                            const void *lock, size_t lock_len, uint64_t token,
                            const struct chorus_opts *opts, chorus_cb cb,
                            void *arg);
int chorus_ring_async(struct chorus_client *c, chorus_cb cb, void *arg);
int chorus_status_async(struct chorus_client *c, chorus_cb cb, void *arg);
int chorus_repair_status_async(struct chorus_client *c, chorus_cb cb,
                               void *arg);
int chorus_repair_now_async(struct chorus_client *c, chorus_cb cb, void *arg);
int chorus_repair_ranges_async(struct chorus_client *c, uint64_t first,
                               uint64_t last, bool now, chorus_cb cb,
                               void *arg);
/* The cluster calls: the status (or the error) in res->cluster. */
int chorus_cluster_status_async(struct chorus_client *c, chorus_cb cb,
                                void *arg);
int chorus_cluster_remove_async(struct chorus_client *c, const char *name,
                                bool force, chorus_cb cb, void *arg);
int chorus_cluster_decommission_async(struct chorus_client *c, const char *name,
                                      bool force, chorus_cb cb, void *arg);
int chorus_cluster_replace_async(struct chorus_client *c, const char *name,
                                 const char *with, chorus_cb cb, void *arg);
/* The plan (or the error) in res->plan. */
int chorus_cluster_plan_async(struct chorus_client *c, int action,
                              const char *name, const char *dc,
                              const char *rack, uint32_t vnodes, chorus_cb cb,
                              void *arg);

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* chorus_member_state_name: "alive", "suspect", "dead", "left", "removed",
 * "unknown". Static. */
const char *chorus_member_state_name(int state);

/* chorus_ring_state_name: "up", "suspect", "down", "joining", "leaving",
 * "unknown". Static. */
const char *chorus_ring_state_name(int state);

#endif /* CHORUS_LIBCHORUS_H */
