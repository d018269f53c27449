/* node_int.h: chorusd's internals, shared by the files of the libuv binding
 * of the node core (node.h tells how it works). The files, each calling
 * only the ones listed before it (no circles; the connection layer reaches
 * the frame dispatch only through the two hooks in struct node):
 *
 *   node_log.c       log lines, node__fatal
 *   node_config.c    flags and config files
 *   node_conn.c      connections: buffered, coalesced output with
 *                    back-pressure, framed input, the handshake queue,
 *                    close
 *   node_accept.c    the listener and the connection budgets: accept,
 *                    the pending-handshake reserve, descriptor shortage,
 *                    the handshake, idle and slow-frame deadlines
 *   node_peer.c      peers: the address book, dialling, HELLO on both
 *                    sides, gossip datagrams (UDP)
 *   node_status.c    RING_QUERY and STATUS_QUERY answers
 *   node_metrics.c   request counts and latency histograms, the
 *                    /metrics text, the /ready verdict
 *   node_dispatch.c  frames into the core, client request slots, the
 *                    core's send/reply/member/ring effects
 *   node_http.c      the HTTP listener: /metrics, /health, /ready
 *   node_resp.c      the RESP gateway: Redis commands into client
 *                    requests through node_dispatch.c's path
 *   node_loop.c      the check phase (the durability rule), sync barriers
 *                    and their thread, the core's deadline timer, the
 *                    space check
 *   node.c           open (ports, data folder, identity), run, shutdown
 */
#ifndef CHORUS_NODE_INT_H
#define CHORUS_NODE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <sodium.h>
#include <uv.h>

#include "auth_login.h"
#include "core.h"
#include "peer_auth.h"
#include "node.h"
#include "store.h"
#include "tls.h"
#include "wire.h"

#define NODE_MOD "node" /* the module name in log lines */
#define NODE_READ_BUF (64u * 1024)
#define NODE_DIAL_BACKOFF_MS 500u /* no redial of a failed peer before */
#define NODE_HELLO_REQUEST_ID 0u  /* request id of a peer HELLO */
/* Frames before HELLO: the largest valid HELLO (a 255-byte cluster name,
 * 4096 bytes of credentials) fits, so an unauthenticated socket can make
 * the node buffer at most this much. */
#define NODE_HELLO_MAX_FRAME (8u * 1024)
#define NODE_LISTEN_BACKLOG 511
#define NODE_HTTP_MAX_HEAD (8u * 1024) /* an HTTP request head; more: 431 */
/* The /metrics answer, at most: what a node with thousands of peers
 * would need, and a bound on what one scrape can make it allocate. */
#define NODE_HTTP_MAX_BODY (4u << 20)

/* Request metrics (node_metrics.c): counts and latency histograms by
 * operation and consistency level, errors by operation and code. The loop
 * thread alone writes and reads them: plain integers. */
enum node_op {
  NODE_OP_GET,
  NODE_OP_PUT,
  NODE_OP_DELETE,
  NODE_OP_COUNTER_ADD,
  NODE_OP_COUNTER_READ,
  NODE_OP_SET_ADD,
  NODE_OP_SET_REMOVE,
  NODE_OP_SET_READ,
  NODE_OP_LWW_SET,
  NODE_OP_LWW_DELETE,
  NODE_OP_LWW_READ,
  NODE_OP_MAP_UPDATE,
  NODE_OP_MAP_READ,
  NODE_OP_ADMIN, /* cluster changes and plans through the core */
  NODE_OP_COUNT
};
#define NODE_LEVELS 10      /* DEFAULT, ONE..EACH_QUORUM, a count */
#define NODE_LAT_BUCKETS 16 /* finite bounds (node_metrics.c) */
#define NODE_ERROR_CODES 32 /* -code; 0 collects codes beyond */

struct node_metrics {
  uint64_t requests[NODE_OP_COUNT][NODE_LEVELS];
  /* 12 x 10 x 17 x 8 bytes: 16 KiB, indexed directly, so recording stays
   * two adds whatever the level. */
  uint64_t lat[NODE_OP_COUNT][NODE_LEVELS][NODE_LAT_BUCKETS + 1]; /* +Inf */
  uint64_t lat_sum_ns[NODE_OP_COUNT][NODE_LEVELS];
  uint64_t errors[NODE_OP_COUNT][NODE_ERROR_CODES];
};

struct node_buf {
  uint8_t *data;
  size_t len, cap;
};

enum node_conn_kind {
  NODE_CONN_NEW,      /* accepted, waiting for HELLO */
  NODE_CONN_CLIENT,   /* accepted, HELLO role client */
  NODE_CONN_PEER_IN,  /* accepted, HELLO role peer */
  NODE_CONN_PEER_OUT, /* dialled by us to a peer's address */
  NODE_CONN_HTTP,     /* accepted on the --http listener (node_http.c) */
  NODE_CONN_RESP,     /* accepted on the --resp listener (node_resp.c) */
};

struct node_resp; /* a RESP connection's session (node_resp.c) */

struct node_conn {
  uv_tcp_t tcp; /* first: the handle's address is the conn's */
  struct node *n;
  struct node_conn *prev, *next; /* every open conn */
  /* NODE_CONN_NEW: the handshake queue, oldest first (node_conn.c). */
  struct node_conn *pend_prev, *pend_next;
  bool pending;                 /* on the handshake queue */
  struct node_conn *dirty_next; /* output waiting for the flush */
  bool dirty;
  enum node_conn_kind kind;
  uint64_t serial;
  chorus_node_id peer_id;   /* peers: from HELLO or WELCOME */
  char addr[SWIM_ADDR_MAX]; /* dialled or remote address, for logs */
  struct node_peer *peer;   /* NODE_CONN_PEER_OUT: its address book entry */
  struct wire_splitter sp;
  struct wire_limits limits;
  struct node_buf out; /* frames accumulating this iteration */
  size_t hello_len;    /* our HELLO at the start of @out, until flushed */
  /* When the oldest frame queued for the peer before this dial was queued
   * (its queue's clock, kept should the dial fail); 0: none. */
  chorus_ms queued_since;
  struct node_buf wr; /* frames being written */
  uv_write_t wreq;
  uv_connect_t creq;
  bool writing, connected, welcomed, paused, closing, close_after_flush;
  uint32_t inflight;
  uint64_t accept_iter; /* n->iterations when accepted */
  /* Deadlines (node_accept.c), uv_now milliseconds. */
  chorus_ms opened_at;   /* accepted (handshake deadline) */
  chorus_ms last_active; /* last bytes read or written (idle deadline) */
  chorus_ms frame_start; /* first byte of the partial frame, if any */
  uint64_t frame_bytes;  /* bytes of it read since frame_start */
  uint32_t version;      /* the protocol version of its HELLO; 0 before */
  /* NODE_CONN_HTTP: the request head so far (at most NODE_HTTP_MAX_HEAD
   * bytes), and whether it was answered. */
  struct node_buf in;
  bool http_answered;
  /* NODE_CONN_RESP: its session; @in holds the bytes not parsed yet. */
  struct node_resp *resp;
  /* TLS (node_tls.c): the engine of a TLS connection, NULL for plaintext;
   * @sniffed once the first byte said which (accepted connections). */
  struct tls_engine *tls;
  bool sniffed;
  /* Peer links (node_peer.c, peer_auth.h): the handshake and frame tags,
   * NULL on other connections. While @auth_hold, only the @hello_len
   * handshake bytes at the head of @out leave: the dialer's frames wait
   * for the acceptor's proof of the key, the acceptor's for the dialer's. */
  struct peer_auth *auth;
  bool auth_hold;
  /* Client logins (node_login.c): the login between HELLO and the proof
   * (@login_pending), and the user once logged in ("" before, and on a
   * node with --auth off that was not asked to log in). */
  bool login_pending;
  struct auth_login login;
  char user[AUTH_USER_MAX + 1];
};

/* The address book: one entry per address SWIM or replication talks to. */
struct node_peer {
  char addr[SWIM_ADDR_MAX];
  chorus_node_id id; /* 0 for a seed not heard from yet */
  struct node_conn *out;
  chorus_ms retry_at;    /* no dial before this (after a failed one) */
  uint32_t dial_version; /* HELLO's version; 0: WIRE_PROTOCOL_VERSION */
  /* Whole frames waiting for a connection (node_peer.c, NOTHING
   * DISAPPEARS), queued since @pending_since. */
  struct node_buf pending;
  chorus_ms pending_since;
  bool resolved;
  struct sockaddr_storage sa;
};

/* A client request in flight: its (generation, index) is the core's cookie,
 * so a late answer for a closed connection is recognised and dropped. The
 * generation is the request's number on this node (node.req_seq), so the
 * cookie is also the request's id in log lines: "req=%" PRIx64, as the
 * replication layer prints it in its slow-request lines. */
struct node_slot {
  struct node_conn *c; /* NULL once answered or its connection closed */
  uint64_t request_id;
  uint64_t start_ns; /* uv_hrtime at arrival (the latency histogram) */
  uint32_t gen;
  uint8_t op;    /* enum node_op */
  uint8_t level; /* node__metrics_level's index, < NODE_LEVELS */
  bool used;
};

/* One sync barrier the core asked for, on its way to the store's sync
 * thread and back. */
struct node_sync {
  struct node_sync *next;
  struct node *n;
  uint64_t token;
  int status;
};

/* A listener of a side protocol (HTTP, RESP; node_accept.c): it accepts
 * in batches; out of descriptors, or on a listener error, it pauses
 * NODE_SIDE_RETRY_MS (a level-triggered poll would spin; connections wait
 * in the backlog); each accepted socket goes to @admit, which adopts or
 * closes it. The client port has its own policy (node_accept.c: a
 * handshake queue to evict from). */
struct node_side {
  struct node *n;
  const char *name; /* "http", "resp": for logs */
  void (*admit)(struct node *n, int fd);
  uv_poll_t poll;
  uv_timer_t timer; /* retries accepting after a pause */
  int fd;           /* -1: none */
  bool listening, paused;
};

struct node {
  struct node_config cfg;
  uv_loop_t loop;
  uv_poll_t listener;      /* readable: connections to accept (node_accept.c) */
  int listen_fd;           /* -1 until bound */
  uv_timer_t conn_timer;   /* the deadline sweep (node_accept.c) */
  uv_timer_t accept_timer; /* retries accepting while paused */
  struct node_side http;   /* node_http.c; fd -1 when there is none */
  struct node_side resp;   /* node_resp.c; likewise */
  uint64_t resp_op_seq;    /* COUNTER_ADD op ids: a random base plus this */
  uint64_t resp_op_base;
  struct node_buf resp_scratch; /* each request encoded: the wire's checks */
  uv_udp_t udp;
  uv_timer_t deadline_timer, leave_timer;
  uv_timer_t redial_timer; /* node_peer.c: peers with pending frames */
  uv_timer_t space_timer;  /* the store's space check, every second */
  uv_check_t flush_check;
  uv_idle_t wake_idle; /* keeps the poll from blocking (node__loop_wake) */
  uv_async_t sync_async;
  uv_signal_t sigint, sigterm;
  uv_signal_t sighup; /* reloads the TLS certificates (node_tls.c) */
  /* TLS contexts (node_tls.c): accepted connections (NULL: no TLS on the
   * port) and dialled peer links (NULL: --peer-tls off). Replaced whole by
   * a reload; open connections keep the one they were made with. */
  struct tls_ctx *tls_server, *tls_dial;
  uv_mutex_t sync_lock;
  struct node_sync *sync_head, *sync_tail; /* under sync_lock */
  /* Barriers asked for in this loop iteration, submitted as one
   * (node__submit_barriers); loop thread only. */
  struct node_sync *barrier_head, *barrier_tail;
  /* `none` durability: barriers answered at once, delivered at the check
   * (node_loop.c); loop thread only. */
  struct node_sync *ready_head, *ready_tail;
  chorus_seq barrier_seq;
  bool async_closed; /* under sync_lock */
  bool space_due;    /* check the store's space at this iteration's end */
  int space_rc;      /* the last space check's result (logged on change) */
  bool listening, closing_all, shutting_down;
  /* Descriptor shortage (node_accept.c): an episode starts at the first
   * EMFILE/ENFILE from accept and ends after a calm second. */
  bool fd_short, accept_paused;
  /* Loop iterations, counted by the check phase (node_loop.c): a
   * connection accepted in iteration i has had its first reads by the end
   * of iteration i + 1. */
  uint64_t iterations;
  chorus_ms fd_last_fail, last_sweep;
  uint64_t fd_episode_fails, fd_episode_evicted;
  int exit_status;
  chorus_ms deadline_armed; /* the deadline the timer runs for */

  struct store *store;
  struct core *core;
  struct ring_rcu ring_pub;
  /* The peer keys (node__peer_keys): [0] signs, all are accepted. */
  uint8_t peer_keys[SWIM_MAX_KEYS][PEER_AUTH_KEY_BYTES];

  /* The connection layer's two hooks into dispatch (node_dispatch.c). */
  void (*on_frame)(struct node_conn *c, const uint8_t *body, size_t len);
  void (*on_conn_closed)(struct node_conn *c);
  /* ... and node_http.c's: bytes read on a NODE_CONN_HTTP connection. */
  void (*on_http)(struct node_conn *c, const uint8_t *data, size_t len);
  /* ... and node_resp.c's: bytes read on a NODE_CONN_RESP connection. */
  void (*on_resp)(struct node_conn *c, const uint8_t *data, size_t len);

  struct node_conn *conns;
  struct node_conn *pend_head, *pend_tail; /* the handshake queue */
  uint32_t nconns, nclients, npending, nhttp, nresp;
  uint64_t serials;
  struct node_conn *dirty;
  struct node_peer *peers;
  size_t npeers, cappeers;
  struct node_slot *slots;
  uint32_t nslots, capslots;
  uint32_t req_seq; /* client requests so far (wraps): slot generations */
  uint32_t *free_slots;
  uint32_t nfree;
  uint8_t rbuf[NODE_READ_BUF];
  uint8_t tls_plain[NODE_READ_BUF]; /* plaintext out of a TLS engine */

  struct {
    uint64_t accepted, refused, malformed, overload, peer_dropped;
    uint64_t peer_requeued, peer_lost_in_flight;
    uint64_t auth_failed, udp_in, udp_out;
    uint64_t handshake_timeouts, idle_timeouts, slow_senders;
    uint64_t pending_evicted, fd_exhausted;
    uint64_t too_big; /* messages not sent: over the peer frame */
    /* HTTP: connections accepted, closed at once over the cap, closed by
     * the deadline; requests answered by status class. */
    uint64_t http_accepted, http_refused, http_timeouts;
    uint64_t http_2xx, http_4xx, http_5xx;
    /* RESP: connections accepted, refused over --max-connections, closed
     * for a protocol error; commands run, and answered with an error. */
    uint64_t resp_accepted, resp_refused, resp_protocol_errors;
    uint64_t resp_commands, resp_errors;
    /* TLS (node_tls.c): handshakes completed; connections closed for a
     * certificate refused either way (auth), for bytes that are not TLS
     * (malformed); refused at HELLO: a plaintext client on a port with
     * --client-tls required, a peer without a verified certificate under
     * --peer-tls required; a ClientHello on a port without TLS; reloads. */
    uint64_t tls_handshakes, tls_auth_failed, tls_malformed;
    uint64_t tls_plaintext_refused, tls_peer_refused, tls_off_refused;
    uint64_t tls_reloads, tls_reload_failed, tls_reload_closed;
    /* Peer links (node_peer.c): handshakes refused (a wrong or replayed
     * MAC, a fake acceptor); links closed for a frame whose tag failed. */
    uint64_t peer_auth_failed, peer_frame_auth_failed;
    /* Client logins (node_login.c): succeeded; refused at the proof
     * (wrong password or unknown user); refused before the challenge
     * (too many failures from the address; no login on a node that
     * requires one; credentials that are no login). */
    uint64_t logins, login_failed, login_limited, login_missing;
  } stats;
  /* Client logins (node_login.c): failures per source address, and the
   * secret the salts of unknown names derive from. */
  struct auth_limiter login_limiter;
  uint8_t login_secret[AUTH_SECRET_BYTES];
  struct node_metrics metrics;
};

static inline chorus_ms node__now(struct node *n) {
  return uv_now(&n->loop);
}

static inline chorus_ms node__wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (chorus_ms)ts.tv_sec * 1000u + (chorus_ms)(ts.tv_nsec / 1000000);
}

/* node_log.c: node__fatal: an event said the node cannot go on (core.h,
 * ERRORS): logs and exits 2; a restart recovers from the store. */
void node__fatal(int rc, const char *what) __attribute__((noreturn));

/* ------------------------------------------------------------------------
 * node_conn.c: connections
 * ------------------------------------------------------------------------ */

/* node__buf_reserve: room for @more bytes. Errors: CHORUS_ENOMEM. */
int node__buf_reserve(struct node_buf *b, size_t more);
/* node__buf_encode: @m, whose wire_encoded_size is @need, at the end of @b.
 * Errors: CHORUS_ENOMEM, wire_encode's (logged). */
int node__buf_encode(struct node_buf *b, const struct wire_msg *m, size_t need);
void node__buf_free(struct node_buf *b);
/* node__conn_new: a connection of @kind on the loop (its TCP handle
 * initialised, not connected), or NULL (out of memory). A NODE_CONN_NEW
 * one joins the tail of the handshake queue, with HELLO's frame limit. */
struct node_conn *node__conn_new(struct node *n, enum node_conn_kind kind);
/* node__conn_handshaken: @c (NODE_CONN_NEW) completed HELLO as @kind
 * (NODE_CONN_CLIENT or NODE_CONN_PEER_IN): it leaves the handshake queue
 * and takes that kind's frame limit from its next frame on. */
void node__conn_handshaken(struct node_conn *c, enum node_conn_kind kind);
/* node__conn_send: encodes @m at the end of @c's output (flushed once per
 * loop iteration, node__conn_flush_dirty). A client over its output bound
 * stops being read; a peer over its bound loses the message.
 * Errors: CHORUS_ECLOSED, CHORUS_EOVERLOAD (peer over its bound),
 * CHORUS_ENOMEM, wire_encode's. */
int node__conn_send(struct node_conn *c, const struct wire_msg *m);
void node__conn_send_error(struct node_conn *c, uint64_t request_id, int code,
                           const char *text);
/* node__conn_write: @len raw bytes at the end of @c's output, with
 * node__conn_send's back-pressure (the RESP gateway's replies).
 * Errors: CHORUS_ECLOSED, CHORUS_ENOMEM. */
int node__conn_write(struct node_conn *c, const void *data, size_t len);
/* node_login.c: a client's HELLO on a node that requires a login or
 * with credentials that ask for one (answers AUTH_CHALLENGE, or ERROR and
 * closes), and the frame after it (AUTH_PROOF: AUTH_OK and WELCOME, or
 * ERROR EAUTH and close). node__login_init at open. */
void node__login_init(struct node *n);
void node__login_hello(struct node_conn *c, const struct wire_msg *m);
void node__login_proof(struct node_conn *c, const struct wire_msg *m);
/* node__login_may: whether @c's user may take @role on every keyspace
 * (node-level requests: REPAIR_NOW); else answered EPERM. */
bool node__login_may(struct node_conn *c, const struct wire_msg *m,
                     uint8_t role, const char *verb);

/* node__conn_reject: a protocol violation: ERROR, log, close once sent. */
void node__conn_reject(struct node_conn *c, uint64_t request_id, int code,
                       const char *why);
/* node__conn_refuse: stop reading @c and close it once its output (an
 * answer already queued) is written. */
void node__conn_refuse(struct node_conn *c);
void node__conn_close(struct node_conn *c);
void node__conn_read_start(struct node_conn *c);
void node__mark_dirty(struct node_conn *c);
/* node__conn_flush_dirty: one uv_write per connection with output. */
void node__conn_flush_dirty(struct node *n);

/* ------------------------------------------------------------------------
 * node_tls.c: TLS on the client and peer port
 * ------------------------------------------------------------------------ */

/* node__tls_open: the contexts of --tls-* (none when both modes are off).
 * Errors: CHORUS_EINVAL (a file unreadable, not PEM, a key that does not
 * match), CHORUS_EPERM (a key file other users may read or change),
 * CHORUS_ENOMEM; @errmsg says which. */
int node__tls_open(struct node *n, char *errmsg);
/* node__tls_start: SIGHUP reloads the contexts (node_run).
 * node__tls_close: its handle closes (close_all). node__tls_free: the
 * contexts (node_free). */
void node__tls_start(struct node *n);
void node__tls_close(struct node *n);
void node__tls_free(struct node *n);
/* node__tls_dial: a peer link we dial gets a client engine when
 * --peer-tls is on. Errors: CHORUS_ENOMEM. */
int node__tls_dial(struct node_conn *c);
/* node__tls_sniff: the first bytes @p (@len > 0) of accepted connection
 * @c: a ClientHello gets a server engine. False when @c was refused (a
 * ClientHello on a port without TLS, or out of memory). */
bool node__tls_sniff(struct node_conn *c, const uint8_t *p, size_t len);
/* node__tls_input: ciphertext read on @c into its engine; the plaintext
 * goes to @deliver. A failed handshake or session is counted and logged,
 * its alert flushed, and @c closed after it. */
void node__tls_input(struct node_conn *c, const uint8_t *p, size_t len,
                     void (*deliver)(struct node_conn *c, const uint8_t *p,
                                     size_t len));
/* node__tls_hello_check: @c's HELLO as @role passes the TLS policy; else
 * false with the refusal's text in @why (@cap bytes), counted. */
bool node__tls_hello_check(struct node_conn *c, int role, char *why,
                           size_t cap);

/* ------------------------------------------------------------------------
 * node_accept.c: the listener, budgets and deadlines
 * ------------------------------------------------------------------------ */

/* node__accept_init: the timers of this file (at open, before anything
 * can fail). */
void node__accept_init(struct node *n);
/* node__listen: binds and listens on @sa; connections are accepted once
 * the loop runs. Errors: negative errno values as libuv's (UV_EADDRINUSE
 * for a port in use). */
int node__listen(struct node *n, const struct sockaddr *sa);
/* node__listen_socket: a non-blocking listening TCP socket bound to @sa
 * in *@fd. Errors: as node__listen. */
int node__listen_socket(const struct sockaddr *sa, int *fd);
/* node__side_init: @s's handles (at open, before anything can fail).
 * node__side_listen: binds @sa and accepts once the loop runs (a negative
 * libuv code on failure). node__side_stop: no more accepting (shutdown);
 * idempotent. node__side_close: its handles close (close_all). */
void node__side_init(struct node *n, struct node_side *s, const char *name,
                     void (*admit)(struct node *n, int fd));
int node__side_listen(struct node_side *s, const struct sockaddr *sa);
void node__side_stop(struct node_side *s);
void node__side_close(struct node_side *s);
/* node__conn_adopt: the accepted descriptor @fd becomes a connection of
 * @kind, reading; NULL when it could not (@fd is then closed). */
struct node_conn *node__conn_adopt(struct node *n, enum node_conn_kind kind,
                                   int fd);
/* node__accept_start: starts the deadline sweep (node_run). */
void node__accept_start(struct node *n);
/* node__listen_stop: no more accepting (shutdown); idempotent. */
void node__listen_stop(struct node *n);
/* node__accept_close: the listener and the timers close (close_all). */
void node__accept_close(struct node *n);

/* ------------------------------------------------------------------------
 * node_peer.c: peers, handshake, gossip transport
 * ------------------------------------------------------------------------ */

int node__resolve(const char *addr, struct sockaddr_storage *sa);
/* node__keys: the node's gossip keys (issue 24), the sealing one first,
 * into @out; their count (1..SWIM_MAX_KEYS). The cluster metadata's
 * keyring as this node last applied it (core_gossip_keys), or before any
 * metadata --cluster-key alone: the one place node code reads them (the
 * peer handshake's keys come from here). */
size_t node__keys(const struct node *n,
                  uint8_t out[SWIM_MAX_KEYS][SWIM_KEY_BYTES]);
/* node__peer_keys: the keys peer links sign with (key[0], the primary:
 * from the sealing gossip key) and accept (all): node__peer_key_derive()
 * of each of node__keys(), kept in n->peer_keys. */
void node__peer_key_derive(const uint8_t cluster_key[SWIM_KEY_BYTES],
                           uint8_t out[PEER_AUTH_KEY_BYTES]);
struct peer_auth_keys node__peer_keys(struct node *n);
/* node__peer_frame: whether a frame read on a peer link may be dispatched
 * (its tag checked, on a tagged link); false when it was a tag or the link
 * closed. */
bool node__peer_frame(struct node_conn *c, const uint8_t *body, size_t len);
/* node__peer_auth_free: a closed connection's peer_auth (wiped). */
void node__peer_auth_free(struct node_conn *c);
/* node__peer_send: @m to node @to over our connection to it; dropped
 * (counted) when there is none yet. Errors: CHORUS_ENOMEM only. */
int node__peer_send(struct node *n, chorus_node_id to,
                    const struct wire_msg *m);
/* node__on_hello: the first frame of an accepted connection. */
void node__on_hello(struct node_conn *c, const struct wire_msg *m);
/* node__peer_handshake_answer: WELCOME or a refusal of our HELLO on a
 * dialled connection; true when @m was one (consumed). */
bool node__peer_handshake_answer(struct node_conn *c, const struct wire_msg *m);
/* node__peer_conn_closed: @c no longer serves its address book entry; the
 * frames it never handed to the kernel go back to the entry's queue. */
void node__peer_conn_closed(struct node_conn *c);
/* node__peers_init / node__peers_close / node__peers_free: the redial timer
 * and the address book's memory. */
void node__peers_init(struct node *n);
void node__peers_close(struct node *n);
void node__peers_free(struct node *n);
/* node__gossip_listen: starts receiving SWIM datagrams on the UDP socket.
 * Errors: libuv's, as a negative number. */
int node__gossip_listen(struct node *n);
/* The core's gossip and member effects. */
void node__fx_gossip(void *ctx, const char *addr, enum swim_channel ch,
                     const void *data, size_t len);
void node__fx_member(void *ctx, const struct swim_member *m,
                     enum swim_state old, bool is_new);
/* node__fx_clock: one log line per crossing of the clock bound (core.h,
 * CLOCK SKEW): WARN beyond it, INFO back within. */
void node__fx_clock(void *ctx, const struct swim_member *m, int64_t bound_ms,
                    bool beyond);

/* ------------------------------------------------------------------------
 * node_status.c
 * ------------------------------------------------------------------------ */

void node__answer_ring(struct node_conn *c, uint64_t request_id);
void node__answer_status(struct node_conn *c, uint64_t request_id);
/* node__answer_repair: this node's anti-entropy (names: docs/PROTOCOL.md,
 * 113 and 116): REPAIR_STATUS_REPLY when @q is NULL, else
 * REPAIR_RANGES_REPLY with the ranges overlapping @q's and, when @q asked
 * for exchanges, @requested_peers (core_aae_range_now's count). */
void node__answer_repair(struct node_conn *c, uint64_t request_id,
                         const struct wire_repair_ranges *q,
                         size_t requested_peers);

/* ------------------------------------------------------------------------
 * node_metrics.c: request metrics, /metrics, /ready
 * ------------------------------------------------------------------------ */

/* node__metrics_op: the operation of client request @m (NODE_OP_ADMIN
 * for what is not a data operation). */
enum node_op node__metrics_op(const struct wire_msg *m);
/* node__metrics_level: the index (< NODE_LEVELS) of the consistency level
 * request @m of operation @op asked for: R for reads, W for writes. */
unsigned node__metrics_level(enum node_op op, const struct wire_msg *m);
/* node__metrics_request: counts a request of operation @op at level index
 * @level. */
void node__metrics_request(struct node *n, enum node_op op, unsigned level);
/* node__metrics_reply: the answer @m to a request of @op at level index
 * @level that arrived at @start_ns (uv_hrtime): its latency, and its error
 * code if it is one. */
void node__metrics_reply(struct node *n, enum node_op op, unsigned level,
                         uint64_t start_ns, const struct wire_msg *m);
/* node__metrics_text: every metric in the Prometheus text format into @t
 * (http.h; @t->failed says whether it fit). */
struct http_text;
void node__metrics_text(struct node *n, struct http_text *t);
/* The names /metrics gives: node__metrics_op_name ("get", "put"...) and
 * node__metrics_level_name ("DEFAULT", "QUORUM"..., "count") for a level
 * index; node__metrics_bounds: the NODE_LAT_BUCKETS latency bucket bounds
 * in seconds, ascending. All static. */
const char *node__metrics_op_name(enum node_op op);
const char *node__metrics_level_name(unsigned level);
const double *node__metrics_bounds(void);
/* node__console_json: the web console's /api/cluster object into @t
 * (node_console.c; @t->failed says whether it fit). */
void node__console_json(struct node *n, struct http_text *t);
/* node__ready: whether the node serves (its metadata loaded, itself a
 * member, its peers known to gossip); else one line in @why (@cap). */
bool node__ready(struct node *n, char *why, size_t cap);

/* ------------------------------------------------------------------------
 * node_dispatch.c: frames into the core, client slots, effects
 * ------------------------------------------------------------------------ */

/* The connection layer's hooks (struct node). */
void node__on_frame(struct node_conn *c, const uint8_t *body, size_t len);
void node__on_conn_closed(struct node_conn *c);
/* node__client_submit: client request @m of @c (a native client or a
 * RESP session) into the core: a slot, the request metrics, core_client.
 * Its answer comes back as node__conn_send(@m->request_id's reply) on a
 * native connection and as node__resp_reply on a RESP one, possibly
 * before this returns. Errors: CHORUS_ENOMEM (nothing was sent). */
int node__client_submit(struct node_conn *c, const struct wire_msg *m);
/* node__cancel_inflight: answers every client request in flight with
 * CHORUS_ECANCELED (shutdown); their late answers are dropped. */
void node__cancel_inflight(struct node *n);
int node__fx_send(void *ctx, chorus_node_id to, const struct wire_msg *m);
int node__fx_reply(void *ctx, uint64_t cookie, const struct wire_msg *m,
                   bool maybe_applied);
void node__fx_ring(void *ctx, struct ring_snapshot *s);

/* ------------------------------------------------------------------------
 * node_loop.c: the check phase, barriers, the deadline
 * ------------------------------------------------------------------------ */

/* node__loop_init / node__loop_start / node__loop_close / node__loop_fini:
 * the handles of this file: initialised at open, started by node_run,
 * closed by shutdown, and what they still hold freed at node_free (after
 * the store closed, which cancels pending barriers). */
void node__loop_init(struct node *n);
void node__loop_start(struct node *n);
void node__loop_close(struct node *n);
void node__loop_fini(struct node *n);
/* The core's sync effect. */
int node__fx_sync(void *ctx, chorus_seq seq, uint64_t token);
/* node__loop_wake: this iteration's poll must not block (work produced
 * outside the poll, in a timer callback, waits for the check phase). */
void node__loop_wake(struct node *n);
/* node__space_check: store_check_space, a log line per transition, and
 * node__fatal when the store cannot even read any more. */
void node__space_check(struct node *n);

/* ------------------------------------------------------------------------
 * node_http.c: the HTTP listener
 * ------------------------------------------------------------------------ */

/* node__http_init: its handles (at open, before anything can fail). */
void node__http_init(struct node *n);
/* node__http_listen: binds --http and accepts once the loop runs (a
 * no-op without --http). Errors: as node__listen. */
int node__http_listen(struct node *n, const struct sockaddr *sa);
/* node__http_on_read: the connection layer's on_http hook. */
void node__http_on_read(struct node_conn *c, const uint8_t *data, size_t len);
/* node__http_stop: no more accepting (shutdown); idempotent.
 * node__http_close: the listener and its timer close (close_all). */
void node__http_stop(struct node *n);
void node__http_close(struct node *n);

/* ------------------------------------------------------------------------
 * node_resp.c: the RESP gateway
 * ------------------------------------------------------------------------ */

/* node__resp_init: its handles (at open, before anything can fail). */
void node__resp_init(struct node *n);
/* node__resp_listen: binds --resp and accepts once the loop runs.
 * Errors: as node__listen. */
int node__resp_listen(struct node *n, const struct sockaddr *sa);
/* node__resp_on_read: the connection layer's on_resp hook. */
void node__resp_on_read(struct node_conn *c, const uint8_t *data, size_t len);
/* node__resp_reply: the core's answer @m to RESP connection @c's request
 * @request_id (node__client_submit). */
void node__resp_reply(struct node_conn *c, uint64_t request_id,
                      const struct wire_msg *m);
/* node__resp_held: the session stopped reading @c: its pipeline is full,
 * and the bytes it holds are whole commands waiting for room. */
bool node__resp_held(const struct node_conn *c);
/* node__resp_resume: @c's output drained below half --out-limit: parse
 * the commands waiting in its input, and read again once there is room. */
void node__resp_resume(struct node_conn *c);
/* node__resp_closed: @c is closing: its session is freed (its requests in
 * flight were already detached from it). */
void node__resp_closed(struct node_conn *c);
/* node__resp_stop / node__resp_close: as node__http_stop / _close. */
void node__resp_stop(struct node *n);
void node__resp_close(struct node *n);

#endif /* CHORUS_NODE_INT_H */
