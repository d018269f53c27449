/* node_int.h: chorusd's internals, shared by the files of the libuv binding
 * of the node core (node.h tells how it works). The files, each calling
 * only the ones listed before it (no circles; the connection layer reaches
 * the frame dispatch only through the two hooks in struct node):
 *
 *   node_log.c       log lines, node__fatal
 *   node_config.c    flags and config files
 *   node_conn.c      connections: buffered, coalesced output with
 *                    back-pressure, framed input, accept, close
 *   node_peer.c      peers: the address book, dialling, HELLO on both
 *                    sides, gossip datagrams (UDP)
 *   node_status.c    RING_QUERY and STATUS_QUERY answers
 *   node_dispatch.c  frames into the core, client request slots, the
 *                    core's send/reply/member/ring effects
 *   node_loop.c      the check phase (the durability rule), sync barriers
 *                    and their thread, the core's deadline timer
 *   node.c           open (ports, data folder, identity), run, shutdown
 */
#ifndef CHORUS_NODE_INT_H
#define CHORUS_NODE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <sodium.h>
#include <uv.h>

#include "core.h"
#include "node.h"
#include "store.h"
#include "wire.h"

#define NODE_MOD "node" /* the module name in log lines */
#define NODE_READ_BUF (64u * 1024)
#define NODE_DIAL_BACKOFF_MS 500u /* no redial of a failed peer before */
#define NODE_HELLO_REQUEST_ID 0u  /* request id of a peer HELLO */

struct node_buf {
  uint8_t *data;
  size_t len, cap;
};

enum node_conn_kind {
  NODE_CONN_NEW,      /* accepted, waiting for HELLO */
  NODE_CONN_CLIENT,   /* accepted, HELLO role client */
  NODE_CONN_PEER_IN,  /* accepted, HELLO role peer */
  NODE_CONN_PEER_OUT, /* dialled by us to a peer's address */
};

struct node_conn {
  uv_tcp_t tcp; /* first: the handle's address is the conn's */
  struct node *n;
  struct node_conn *prev, *next; /* every open conn */
  struct node_conn *dirty_next;  /* output waiting for the flush */
  bool dirty;
  enum node_conn_kind kind;
  uint64_t serial;
  chorus_node_id peer_id;   /* peers: from HELLO or WELCOME */
  char addr[SWIM_ADDR_MAX]; /* dialled or remote address, for logs */
  struct node_peer *peer;   /* NODE_CONN_PEER_OUT: its address book entry */
  struct wire_splitter sp;
  struct wire_limits limits;
  struct node_buf out; /* frames accumulating this iteration */
  struct node_buf wr;  /* frames being written */
  uv_write_t wreq;
  uv_connect_t creq;
  bool writing, connected, welcomed, paused, closing, close_after_flush;
  uint32_t inflight;
  uint32_t version; /* the protocol version of its HELLO; 0 before */
};

/* The address book: one entry per address SWIM or replication talks to. */
struct node_peer {
  char addr[SWIM_ADDR_MAX];
  chorus_node_id id; /* 0 for a seed not heard from yet */
  struct node_conn *out;
  chorus_ms retry_at;    /* no dial before this (after a failed one) */
  uint32_t dial_version; /* HELLO's version; 0: WIRE_PROTOCOL_VERSION */
  bool resolved;
  struct sockaddr_storage sa;
};

/* A client request in flight: its (generation, index) is the core's cookie,
 * so a late answer for a closed connection is recognised and dropped. */
struct node_slot {
  struct node_conn *c; /* NULL once answered or its connection closed */
  uint64_t request_id;
  uint32_t gen;
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

struct node {
  struct node_config cfg;
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_udp_t udp;
  uv_timer_t deadline_timer, leave_timer;
  uv_check_t flush_check;
  uv_idle_t ready_idle; /* runs while ready_head is not empty */
  uv_async_t sync_async;
  uv_signal_t sigint, sigterm;
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
  bool listening, closing_all, shutting_down;
  int exit_status;
  chorus_ms deadline_armed; /* the deadline the timer runs for */

  struct store *store;
  struct core *core;
  struct ring_rcu ring_pub;
  uint8_t peer_auth_key[crypto_auth_KEYBYTES];

  /* The connection layer's two hooks into dispatch (node_dispatch.c). */
  void (*on_frame)(struct node_conn *c, const uint8_t *body, size_t len);
  void (*on_conn_closed)(struct node_conn *c);

  struct node_conn *conns;
  uint32_t nconns, nclients;
  uint64_t serials;
  struct node_conn *dirty;
  struct node_peer *peers;
  size_t npeers, cappeers;
  struct node_slot *slots;
  uint32_t nslots, capslots;
  uint32_t *free_slots;
  uint32_t nfree;
  uint8_t rbuf[NODE_READ_BUF];

  struct {
    uint64_t accepted, refused, malformed, overload, peer_dropped;
    uint64_t auth_failed, udp_in, udp_out;
    uint64_t too_big; /* messages not sent: over the peer frame */
  } stats;
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

/* node__conn_new: a connection of @kind on the loop (its TCP handle
 * initialised, not connected), or NULL (out of memory). */
struct node_conn *node__conn_new(struct node *n, enum node_conn_kind kind);
/* node__conn_send: encodes @m at the end of @c's output (flushed once per
 * loop iteration, node__conn_flush_dirty). A client over its output bound
 * stops being read; a peer over its bound loses the message.
 * Errors: CHORUS_ECLOSED, CHORUS_EOVERLOAD (peer over its bound),
 * CHORUS_ENOMEM, wire_encode's. */
int node__conn_send(struct node_conn *c, const struct wire_msg *m);
void node__conn_send_error(struct node_conn *c, uint64_t request_id, int code,
                           const char *text);
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
void node__on_accept(uv_stream_t *server, int status);

/* ------------------------------------------------------------------------
 * node_peer.c: peers, handshake, gossip transport
 * ------------------------------------------------------------------------ */

int node__resolve(const char *addr, struct sockaddr_storage *sa);
/* node__peer_key: derives the HELLO credential key from the cluster key. */
void node__peer_key(struct node *n);
/* node__peer_send: @m to node @to over our connection to it; dropped
 * (counted) when there is none yet. Errors: CHORUS_ENOMEM only. */
int node__peer_send(struct node *n, chorus_node_id to,
                    const struct wire_msg *m);
/* node__on_hello: the first frame of an accepted connection. */
void node__on_hello(struct node_conn *c, const struct wire_msg *m);
/* node__peer_handshake_answer: WELCOME or a refusal of our HELLO on a
 * dialled connection; true when @m was one (consumed). */
bool node__peer_handshake_answer(struct node_conn *c, const struct wire_msg *m);
/* node__peer_conn_closed: @c no longer serves its address book entry. */
void node__peer_conn_closed(struct node_conn *c);
/* node__gossip_listen: starts receiving SWIM datagrams on the UDP socket.
 * Errors: libuv's, as a negative number. */
int node__gossip_listen(struct node *n);
/* The core's gossip and member effects. */
void node__fx_gossip(void *ctx, const char *addr, enum swim_channel ch,
                     const void *data, size_t len);
void node__fx_member(void *ctx, const struct swim_member *m,
                     enum swim_state old, bool is_new);

/* ------------------------------------------------------------------------
 * node_status.c
 * ------------------------------------------------------------------------ */

void node__answer_ring(struct node_conn *c, uint64_t request_id);
void node__answer_status(struct node_conn *c, uint64_t request_id);

/* ------------------------------------------------------------------------
 * node_dispatch.c: frames into the core, client slots, effects
 * ------------------------------------------------------------------------ */

/* The connection layer's hooks (struct node). */
void node__on_frame(struct node_conn *c, const uint8_t *body, size_t len);
void node__on_conn_closed(struct node_conn *c);
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

#endif /* CHORUS_NODE_INT_H */
