/* libchorus_int.h: internals shared by the files of libchorus: the client,
 * connection and request structs, and the engine's entry points.
 *
 * A request is in exactly one list at a time: c->queue (waiting for a ready
 * connection, in submission order) or c->inflight (written to the current
 * connection, waiting for its reply). The connection's lifetime is the uv
 * handle's: it is freed in its close callback, which libuv runs after the
 * callbacks of every connect and write request on it.
 */
#ifndef CHORUS_LIBCHORUS_INT_H
#define CHORUS_LIBCHORUS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "auth_login.h"
#include "chorus_prng.h"
#include "libchorus.h"
#include "tls.h"
#include "wire.h"

/* Replies may be larger than requests (a GET answers with every sibling),
 * so the client accepts the peer limit on what it reads. */
#define CHORUS__REPLY_LIMITS WIRE_LIMITS_PEER
#define CHORUS__READ_BUF (64u * 1024)
#define CHORUS__DEFAULT_CLUSTER "chorus"

struct chorus__link {
  struct chorus__link *prev, *next;
};

struct chorus__seed {
  char *host; /* without IPv6 brackets */
  char *port;
  char *text; /* as given: "host:port" */
  /* HELLO's protocol version; 0: WIRE_PROTOCOL_VERSION. A node that
   * refuses it with CHORUS_EVERSION (an older node) is asked again at
   * once, one version lower. */
  uint32_t version;
};

/* The request state machine, all transitions in engine code:
 *
 *   QUEUED --write--> INFLIGHT --reply--> done (callback)
 *     ^                  |  connection lost / no reply in time:
 *     |                  |    read, or write not yet sent -> QUEUED (retry)
 *     +------------------+    write sent -> done, maybe_applied
 *   QUEUED --deadline--> done (ETIMEDOUT, nothing sent)
 *   any --close--> done (ECANCELED)
 *
 * An info request (ring, status) is two wire requests in a row on the same
 * connection: RING_QUERY, then STATUS_QUERY; a retry starts over. */
struct chorus__req {
  struct chorus__link link;
  uint8_t type;   /* wire type of what is (or will be) on the wire */
  bool is_write;  /* not idempotent: never resent once sent */
  bool info;      /* ring/status request */
  bool sent;      /* bytes handed to the socket */
  uint64_t id;    /* wire request id of the current stage */
  uint8_t *frame; /* encoded request (prefix included), owned */
  size_t frame_len;
  unsigned tries;      /* connections it was written on */
  uint32_t timeout_ms; /* effective request timeout */
  uint64_t deadline;   /* uv_now() ms: fail or fail over after it */
  uint8_t *ring_body;  /* info: the RING_REPLY body, owned */
  size_t ring_len;
  /* A traced request's TRACE (its events field, owned), which the node
   * sends just before the reply: handed to the result with it. */
  uint8_t *trace;
  size_t trace_len;
  uint64_t trace_node;
  chorus_cb cb;
  void *arg;
};

enum chorus__conn_state {
  CHORUS__RESOLVING,
  CHORUS__CONNECTING,
  CHORUS__HELLO, /* HELLO sent, waiting for WELCOME */
  CHORUS__READY
};

struct chorus__conn {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_getaddrinfo_t gai;
  struct chorus_client *c;
  size_t seed;
  enum chorus__conn_state state;
  bool closing;
  bool gai_pending;  /* uv_close waits for the resolver's callback */
  uint64_t deadline; /* handshake deadline, uv_now() ms */
  uint32_t version;  /* the protocol version of our HELLO */
  uint64_t hello_ns; /* uv_hrtime() when HELLO was written */
  struct wire_splitter sp;
  struct tls_engine *tls; /* NULL: plaintext */
  /* The login on this connection (libchorus.c, login_*): our nonce, the
   * signature the node must show, and whether it did. */
  uint8_t cnonce[AUTH_NONCE_BYTES], snonce[AUTH_NONCE_BYTES];
  uint8_t want_sig[AUTH_KEY_BYTES];
  bool proof_sent, node_proved;
  /* The key derivation on the thread pool (libchorus.c, THE KEYS OFF THE
   * LOOP), NULL when none; a connection closed meanwhile is freed when it
   * returns (@free_after_work). */
  struct chorus__kwork *kwork;
  bool free_after_work;
  uint8_t rbuf[CHORUS__READ_BUF];
};

/* A client's login (chorus_config.user): shared by a routing client with
 * the clients it opens per node (libchorus_route.c), owned by the first. */
struct chorus__login {
  char user[AUTH_USER_MAX + 1];
  char *password; /* until the keys are derived, then wiped and freed */
  size_t password_len;
  bool have_keys;
  struct auth_kdf kdf; /* the keys' salt and costs */
  uint8_t client_key[AUTH_KEY_BYTES], server_key[AUTH_KEY_BYTES];
};

struct chorus_client {
  uv_loop_t *loop;
  uv_loop_t own_loop_storage;
  bool own_loop; /* synchronous client */
  bool closing;
  bool kick_pending; /* requests were submitted; the timer fires at once */
  unsigned handles;  /* open uv handles (timer, connections) */
  uv_timer_t timer;
  struct chorus_config cfg;
  char *cluster;
  char *dc; /* the client's datacenter (chorus_config.dc), or NULL */
  /* TLS: the context of every connection (NULL: plaintext), and the
   * configuration's paths, copied (cfg points at them). */
  struct tls_ctx *tls;
  char *tls_ca, *tls_cert, *tls_key, *tls_crl;
  uint8_t tls_plain[16384]; /* plaintext out of a connection's engine */
  uint8_t *credentials;
  struct chorus__login *login; /* NULL: no login */
  bool login_owned;            /* false: the routing parent's */
  struct chorus__seed *seeds;
  size_t nseeds;
  size_t cur;             /* seed of the current or next connection */
  unsigned conn_failures; /* connections failed in a row */
  int last_err;           /* what to report when every seed failed */
  char last_msg[CHORUS_ERRMSG_SIZE];
  struct chorus__conn *conn;
  /* Handshakes completed, and the last one's HELLO-to-WELCOME time: a
   * round trip with no work on the node's side, which the router takes
   * as a sample of the path (libchorus_route.c, NEAREST BY RTT). */
  uint64_t handshakes;
  uint32_t hello_rtt_us;
  struct chorus__link queue, inflight;
  struct chorus_prng prng;
  uint64_t next_id;
  uint64_t *ids; /* request ids: &next_id, or the parent's (routing) */
  /* Token-aware routing (libchorus_route.c); NULL when off. A routed
   * request goes to a child client (one seed: a replica's address) on the
   * same loop; the ids counter is shared so a frame may move between
   * them. */
  struct chorus__router *router;
  char errmsg[CHORUS_ERRMSG_SIZE];
};

/* Engine (libchorus.c). */

/* chorus__encode: assigns @m a request id and encodes it into a new
 * *@frame (chorus_malloc'ed, *@len bytes).
 * Errors: CHORUS_EINVAL, CHORUS_ETOOBIG, CHORUS_ENOMEM (c->errmsg says). */
int chorus__encode(struct chorus_client *c, struct wire_msg *m, uint8_t **frame,
                   size_t *len);

/* chorus__submit_frame: queues an encoded request; takes @frame in every
 * case. Errors: CHORUS_ECLOSED, CHORUS_ENOMEM. */
int chorus__submit_frame(struct chorus_client *c, uint8_t *frame, size_t len,
                         uint8_t type, uint64_t id, bool is_write, bool info,
                         uint32_t timeout_ms, chorus_cb cb, void *arg);

/* chorus__connect: opens @c's connection now if it has none (the HELLO
 * round trip measures the path, c->hello_rtt_us), with nothing to send;
 * a failure is only traced. */
void chorus__connect(struct chorus_client *c);

/* chorus__new: a client on @loop (NULL: a private loop, synchronous).
 * Errors as chorus_client_open(). */
int chorus__new(uv_loop_t *loop, const char *seeds,
                const struct chorus_config *cfg, struct chorus_client **out,
                char *errmsg);

/* Routing (libchorus_route.c). */

/* chorus__map_ops_encode: @ops (libchorus.h) as MAP_UPDATE's ops bytes
 * (crdt_map_ops_encode); *@buf is the caller's to chorus_free. Checks the
 * count, paths, names and types first. Errors: CHORUS_EINVAL (reason in
 * @errmsg), CHORUS_ENOMEM. */
int chorus__map_ops_encode(const struct chorus_map_op *ops, size_t n,
                           uint8_t **buf, size_t *len, char *errmsg);

/* chorus__route_submit: like chorus__submit, sending a request about @key
 * to a replica of it when the client routes by token. */
int chorus__route_submit(struct chorus_client *c, const void *key,
                         size_t key_len, struct wire_msg *m, bool is_write,
                         uint32_t timeout_ms, chorus_cb cb, void *arg);

/* What the router knows of one natural replica of a key when it picks
 * where to send a request (chorus__route_choose). */
struct chorus__cand {
  bool usable;      /* alive, with an address, not marked down */
  bool local;       /* in the client's datacenter (chorus_config.dc) */
  uint32_t srtt_us; /* smoothed round trip to it; 0: not measured yet */
};

/* chorus__route_choose: which of the @n candidates @cand, the natural
 * replicas of a key in ring order, a request goes to: the first usable one
 * in the client's datacenter; else, while any usable one is not measured
 * yet, the first usable one (ring order, as before anything was known);
 * else the nearest: the first in ring order whose srtt_us is within
 * max(1 ms, 20 %) of the smallest. Pure. Returns an index, or -1 when none
 * is usable. */
int chorus__route_choose(const struct chorus__cand *cand, size_t n);

/* chorus__route_close: closes the child clients (their requests fail with
 * ECANCELED) and frees the router. */
void chorus__route_close(struct chorus_client *c);

/* chorus__submit: encodes @m (request id assigned here) and queues it.
 * Errors: CHORUS_EINVAL (the encoder's reason in c->errmsg),
 * CHORUS_ETOOBIG, CHORUS_ENOMEM, CHORUS_ECLOSED (closing client). */
int chorus__submit(struct chorus_client *c, struct wire_msg *m, bool is_write,
                   bool info, uint32_t timeout_ms, chorus_cb cb, void *arg);

/* chorus__next_op_id: a random non-zero counter operation id. */
uint64_t chorus__next_op_id(struct chorus_client *c);

/* chorus__trace: one decision line to cfg.trace, if set. */
void chorus__trace(const struct chorus_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Results (libchorus_result.c). */

/* chorus__result_from_reply: fills @res from reply @m to a request of type
 * @req_type: the data of the matching reply type, or the error of an ERROR
 * reply. Errors (also in res->status): CHORUS_EMALFORMED (another reply
 * type), CHORUS_ENOMEM, or the ERROR's code. */
int chorus__result_from_reply(struct chorus_result *res, uint8_t req_type,
                              const struct wire_msg *m);

/* chorus__result_info: joins a RING_REPLY and a STATUS_REPLY into @res. */
/* chorus__result_trace: @len bytes of TRACE records (@ev, borrowed) from
 * coordinator @node into @res's trace; nothing when they are not whole
 * records or memory is short. */
void chorus__result_trace(struct chorus_result *res, uint64_t node,
                          const uint8_t *ev, size_t len);
int chorus__result_info(struct chorus_result *res, const struct wire_msg *ring,
                        const struct wire_msg *status);

/* chorus__result_error: status @code and a formatted message. */
void chorus__result_error(struct chorus_result *res, int code, const char *fmt,
                          ...) __attribute__((format(printf, 3, 4)));

/* Ring (libchorus_ring.c). */

struct ring_snapshot;

/* chorus__ring_build: the ring/ring.h snapshot that info result @res (of
 * chorus_ring or chorus_status, status CHORUS_OK) describes: its nodes
 * listed in RING_REPLY (in_ring), in their ring states, each with
 * res->vnodes, stamped with res->epoch, replicated as res->replication
 * says, or with a single replica when that is empty or unreadable (enough
 * for token shares and for a key's first natural replica). @res is only
 * read. On CHORUS_OK *@out is a new snapshot the caller frees with
 * ring_snapshot_free(); on error *@out is NULL.
 * Errors: CHORUS_EINVAL (no node in the ring), CHORUS_EMALFORMED (a
 * datacenter or rack name too long for ring.h, more than RING_MAX_NODES
 * nodes, a vnode count ring.h refuses), CHORUS_ENOMEM. */
int chorus__ring_build(const struct chorus_result *res,
                       struct ring_snapshot **out);

/* How long an operator's change (cluster, keyspace, user) may take: the
 * node's own wait for the metadata leader (5 s) and then some. */
#define CHORUS__ADMIN_TIMEOUT_MS 10000u

/* The synchronous calls (libchorus_api.c): begin, submit with
 * chorus__sync_cb and the wait as its argument, then end; a call that
 * returns one part of the result moves it out and ends with
 * chorus__sync_result_end. */
struct chorus__sync_wait {
  bool done;
  struct chorus_result *res;
};
void chorus__sync_cb(struct chorus_client *c, struct chorus_result *res,
                     void *arg);
int chorus__sync_begin(struct chorus_client *c, struct chorus_result *res,
                       struct chorus__sync_wait *w);
int chorus__sync_end(struct chorus_client *c, int rc,
                     struct chorus__sync_wait *w);
int chorus__sync_result_end(struct chorus_client *c, struct chorus_result *res,
                            int rc);
/* libchorus_user.c: USER_REPLY's records into res->users. */
int chorus__take_users(struct chorus_result *res,
                       const struct wire_user_reply *r);

/* libchorus_keyring.c: CLUSTER_KEY_REPLY into res->keyring. */
int chorus__take_keyring(struct chorus_result *res,
                         const struct wire_cluster_key_reply *r);

#endif /* CHORUS_LIBCHORUS_INT_H */
