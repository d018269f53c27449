/* node_int.h: chorusd's internals shared by node.c (the glue between
 * libuv, SWIM and replication), node_conn.c (connections and peers) and
 * node_status.c (ring and status answers). node.h tells how it works. */
#ifndef CHORUS_NODE_INT_H
#define CHORUS_NODE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <sodium.h>
#include <uv.h>

#include "node.h"
#include "repl.h"
#include "store.h"
#include "swim.h"
#include "wire.h"

#define NODE_MOD "node" /* the module name in log lines */
#define NODE_READ_BUF (64u * 1024)
#define NODE_DIAL_BACKOFF_MS 500u /* no redial of a failed peer before */
#define NODE_HELLO_REQUEST_ID 0u  /* request id of a peer HELLO */

struct buf {
  uint8_t *data;
  size_t len, cap;
};

enum conn_kind {
  CONN_NEW,      /* accepted, waiting for HELLO */
  CONN_CLIENT,   /* accepted, HELLO role client */
  CONN_PEER_IN,  /* accepted, HELLO role peer */
  CONN_PEER_OUT, /* dialled by us to a peer's address */
};

struct conn {
  uv_tcp_t tcp; /* first: the handle's address is the conn's */
  struct node *n;
  struct conn *prev, *next; /* every open conn */
  struct conn *dirty_next;  /* output waiting for the flush */
  bool dirty;
  enum conn_kind kind;
  uint64_t serial;
  chorus_node_id peer_id;   /* peers: from HELLO or WELCOME */
  char addr[SWIM_ADDR_MAX]; /* dialled or remote address, for logs */
  struct peer *peer;        /* CONN_PEER_OUT: its address book entry */
  struct wire_splitter sp;
  struct wire_limits limits;
  struct buf out; /* frames accumulating this iteration */
  struct buf wr;  /* frames being written */
  uv_write_t wreq;
  uv_connect_t creq;
  bool writing, connected, welcomed, paused, closing, close_after_flush;
  uint32_t inflight;
};

/* The address book: one entry per address SWIM or replication talks to. */
struct peer {
  char addr[SWIM_ADDR_MAX];
  chorus_node_id id; /* 0 for a seed not heard from yet */
  struct conn *out;
  chorus_ms retry_at; /* no dial before this (after a failed one) */
  bool resolved;
  struct sockaddr_storage sa;
};

struct pending {
  struct conn *c; /* NULL once answered or its connection closed */
  uint64_t request_id;
  uint32_t gen;
  bool used;
};

struct rtimer {
  chorus_ms at;
  uint64_t id;
};

struct sync_done {
  struct sync_done *next;
  struct node *n;
  uint64_t token;
  int status;
};

struct member_ev {
  chorus_node_id id;
  bool alive;
};

struct node {
  struct node_config cfg;
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_udp_t udp;
  uv_timer_t swim_timer, repl_timer, join_timer, leave_timer;
  uv_check_t flush_check;
  uv_idle_t ready_idle; /* runs while ready_head is not empty */
  uv_async_t sync_async;
  uv_signal_t sigint, sigterm;
  uv_mutex_t sync_lock;
  struct sync_done *sync_head, *sync_tail; /* under sync_lock */
  /* Barriers asked for in this loop iteration, submitted as one
   * (node__submit_barriers); loop thread only. */
  struct sync_done *barrier_head, *barrier_tail;
  /* `none` durability: barriers answered at once, delivered at the check
   * (node__complete_ready); loop thread only. */
  struct sync_done *ready_head, *ready_tail;
  chorus_seq barrier_seq;
  bool async_closed;                       /* under sync_lock */
  bool listening, closing_all, shutting_down;
  int exit_status;

  struct store *store;
  struct repl *repl;
  struct repl_effects rfx;
  struct swim *swim;
  struct ring_rcu ring_pub;
  bool ring_dirty;
  struct member_ev *mev;
  size_t nmev, capmev;
  bool in_swim;
  uint8_t peer_auth_key[crypto_auth_KEYBYTES];

  struct conn *conns;
  uint32_t nconns, nclients;
  uint64_t serials;
  struct conn *dirty;
  struct peer *peers;
  size_t npeers, cappeers;
  struct pending *slots;
  uint32_t nslots, capslots;
  uint32_t *free_slots;
  uint32_t nfree;
  struct rtimer *heap;
  size_t nheap, capheap;
  chorus_ms repl_armed_at;
  bool repl_armed;
  uint8_t rbuf[NODE_READ_BUF];

  struct {
    uint64_t accepted, refused, malformed, overload, peer_dropped;
    uint64_t auth_failed, udp_in, udp_out;
  } stats;
};

static inline chorus_ms node__now(struct node *n) {
  return uv_now(&n->loop);
}

/* node.c */
chorus_ms node__wall_ms(void);
/* node__fatal: an event function said the instance cannot go on (repl.h):
 * logs and exits; a restart recovers from the store. */
void node__fatal(struct node *n, int rc, const char *what)
    __attribute__((noreturn));
/* node__on_frame: one whole frame body from @c (decoded and dispatched). */
void node__on_frame(struct conn *c, const uint8_t *body, size_t len);

/* node_conn.c: connections. */
/* node__conn_send: encodes @m at the end of @c's output (flushed once per
 * loop iteration by node__on_check). A client over its output bound stops
 * being read; a peer over its bound loses the message.
 * Errors: CHORUS_ECLOSED, CHORUS_EOVERLOAD (peer over its bound),
 * CHORUS_ENOMEM, wire_encode's. */
int node__conn_send(struct conn *c, const struct wire_msg *m);
void node__conn_send_error(struct conn *c, uint64_t request_id, int code,
                           const char *text);
/* node__conn_reject: a protocol violation: ERROR, log, close once sent. */
void node__conn_reject(struct conn *c, uint64_t request_id, int code,
                       const char *why);
void node__conn_close(struct conn *c);
void node__conn_read_start(struct conn *c);
void node__mark_dirty(struct conn *c);
void node__on_check(uv_check_t *h);
/* node__complete_ready: delivers the `none` durability answers queued
 * in this iteration, and any they cause. */
void node__complete_ready(struct node *n);
/* node__submit_barriers: one store barrier for every barrier replication
 * asked for since the last call (group commit per loop iteration). */
void node__submit_barriers(struct node *n);
void node__on_accept(uv_stream_t *server, int status);
/* Peers: the address book, HELLO credentials, lazy dialling. */
int node__resolve(const char *addr, struct sockaddr_storage *sa);
struct peer *node__peer_by_addr(struct node *n, const char *addr, bool create);
struct peer *node__peer_by_id(struct node *n, chorus_node_id id);
void node__peer_mac(const struct node *n, chorus_node_id id,
                    uint8_t out[crypto_auth_BYTES]);
struct conn *node__peer_conn(struct node *n, struct peer *p);
/* node__peer_send: @m to node @to over our connection to it; dropped
 * (counted) when there is none yet. Errors: CHORUS_ENOMEM only. */
int node__peer_send(struct node *n, chorus_node_id to,
                    const struct wire_msg *m);

/* node_status.c */
void node__answer_ring(struct conn *c, uint64_t request_id);
void node__answer_status(struct conn *c, uint64_t request_id);

#endif /* CHORUS_NODE_INT_H */
