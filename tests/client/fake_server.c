/* fake_server.c: a wire-protocol node impostor on a thread (see
 * fake_server.h): poll() over a listener and a few connections, a toy
 * store, and switchable misbehaviour.
 */
#include "fake_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chorus_alloc.h"
#include "wire.h"

#define MAX_CONNS 16
#define MAX_KEYS 64
#define MAX_SIBS 16
#define MAX_ITEM 256

struct sibling {
  uint64_t version;
  size_t len;
  uint8_t data[MAX_ITEM];
};

struct object {
  bool used;
  int type; /* 0 kv, 1 counter, 2 set */
  size_t key_len;
  uint8_t key[MAX_ITEM];
  uint64_t version;
  size_t nsib; /* kv siblings, or set members (version unused) */
  struct sibling sib[MAX_SIBS];
  int64_t counter;
  uint64_t ops[8]; /* op ids seen, for idempotent adds */
};

struct conn {
  int fd;
  bool hello;
  uint32_t version; /* of its HELLO */
  struct wire_splitter sp;
};

struct fake_server {
  int lfd;
  int wake[2];
  uint16_t port;
  char addr[32];
  char cluster[64];
  pthread_t thread;
  atomic_bool stop;
  atomic_int mode;
  atomic_int error_code;
  atomic_int connections;
  atomic_int requests;
  _Atomic uint64_t last_op_id;
  char ring_addrs[3][32];
  bool removed[4]; /* the canned cluster's members taken out */
  struct conn conns[MAX_CONNS];
  struct object objs[MAX_KEYS];
};

/* ------------------------------------------------------------------------
 * Toy store
 * ------------------------------------------------------------------------ */

static struct object *lookup(struct fake_server *f, struct wire_bytes key,
                             bool create) {
  for (int i = 0; i < MAX_KEYS; i++)
    if (f->objs[i].used && f->objs[i].key_len == key.len &&
        memcmp(f->objs[i].key, key.ptr, key.len) == 0)
      return &f->objs[i];
  if (!create || key.len > MAX_ITEM)
    return NULL;
  for (int i = 0; i < MAX_KEYS; i++)
    if (!f->objs[i].used) {
      struct object *o = &f->objs[i];
      memset(o, 0, sizeof *o);
      o->used = true;
      o->key_len = key.len;
      memcpy(o->key, key.ptr, key.len);
      return o;
    }
  return NULL;
}

static uint64_t ctx_version(struct wire_bytes c) {
  uint64_t v = 0;
  for (size_t i = 0; i < c.len && i < 8; i++)
    v = v << 8 | c.ptr[i];
  return v;
}

static void ctx_encode(uint64_t v, uint8_t out[8]) {
  for (int i = 7; i >= 0; i--) {
    out[i] = (uint8_t)v;
    v >>= 8;
  }
}

/* Drops siblings the writer saw (version <= @seen). */
static void drop_seen(struct object *o, uint64_t seen) {
  size_t k = 0;
  for (size_t i = 0; i < o->nsib; i++)
    if (o->sib[i].version > seen)
      o->sib[k++] = o->sib[i];
  o->nsib = k;
}

static bool has_member(const struct object *o, struct wire_bytes m) {
  for (size_t i = 0; i < o->nsib; i++)
    if (o->sib[i].len == m.len && memcmp(o->sib[i].data, m.ptr, m.len) == 0)
      return true;
  return false;
}

/* ------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------ */

/* Sends @m as the connection's version knows it (wire_reply_for), as a
 * node does. */
static void send_msg(struct conn *k, const struct wire_msg *newest) {
  struct wire_msg low;
  char text[CHORUS_ERRMSG_SIZE];
  const struct wire_msg *m =
      wire_reply_for(newest, k->version, &low, text) ? &low : newest;
  size_t need = wire_encoded_size(m), n = 0;
  uint8_t *buf = malloc(need);
  if (buf == NULL)
    return;
  if (wire_encode(m, buf, need, &n, NULL) == CHORUS_OK) {
    size_t off = 0;
    while (off < n) {
      ssize_t w = send(k->fd, buf + off, n - off, MSG_NOSIGNAL);
      if (w <= 0)
        break;
      off += (size_t)w;
    }
  }
  free(buf);
}

static void send_error(struct conn *k, uint64_t id, int code,
                       const char *text) {
  struct wire_msg r;
  wire_error_reply(&r, id, code, text);
  send_msg(k, &r);
}

static int want_type(struct fake_server *f, struct conn *k, uint64_t id,
                     struct object *o, int type) {
  static const char *names[] = {"a kv object", "a counter", "a set"};
  if (o != NULL && o->type != type) {
    char text[64];
    snprintf(text, sizeof text, "key holds %s", names[o->type]);
    send_error(k, id, CHORUS_ETYPE, text);
    return -1;
  }
  return 0;
}

/* What a version-2 reply says of @o: its siblings (kv) and their bytes;
 * the toy warns of siblings from two on. */
static void object_report(const struct object *o, uint8_t *flags,
                          uint32_t *siblings, uint64_t *bytes) {
  *siblings = o && o->type == 0 ? (uint32_t)o->nsib : 0;
  *bytes = 0;
  for (size_t i = 0; o && i < o->nsib; i++)
    *bytes += o->sib[i].len;
  *flags = *siblings >= 2 ? WIRE_REPLY_SIBLINGS : 0;
}

/* The toy's contexts are kv contexts only: a real node answers counter and
 * set writes with an empty context, and its set contexts (SET_REPLY) are
 * ORSWOT contexts the toy cannot mint. Client behaviour that depends on a
 * set context is tested against a real chorusd (tests/client/test_cluster.c);
 * the toy hands out none, so no test here can pass on it (issue 21). */
static void reply_write(struct conn *k, uint64_t id, const struct object *o) {
  uint8_t ctx[8];
  ctx_encode(o->version, ctx);
  struct wire_msg r = {.type = k->version >= WIRE_PROTOCOL_REPLY2
                                   ? WIRE_WRITE_REPLY2
                                   : WIRE_WRITE_REPLY,
                       .request_id = id};
  r.write_reply.context = (struct wire_bytes){ctx, o->type == 0 ? 8 : 0};
  object_report(o, &r.write_reply.flags, &r.write_reply.siblings,
                &r.write_reply.bytes);
  send_msg(k, &r);
}

static void reply_list(struct conn *k, uint8_t type, uint64_t id,
                       const struct object *o) {
  struct wire_bytes items[MAX_SIBS];
  size_t n = o ? o->nsib : 0;
  for (size_t i = 0; i < n; i++)
    items[i] = (struct wire_bytes){o->sib[i].data, o->sib[i].len};
  uint8_t ctx[8];
  ctx_encode(o ? o->version : 0, ctx);
  struct wire_msg r = {.type = type, .request_id = id};
  struct wire_bytes_list list = {n, items};
  struct wire_bytes context = {ctx, o && o->version ? 8 : 0};
  if (type == WIRE_GET_REPLY) {
    if (k->version >= WIRE_PROTOCOL_REPLY2)
      r.type = WIRE_GET_REPLY2;
    r.get_reply.values = list;
    r.get_reply.context = context;
    object_report(o, &r.get_reply.flags, &r.get_reply.siblings,
                  &r.get_reply.bytes);
  } else {
    r.set_reply.members = list; /* no context: see reply_write */
  }
  send_msg(k, &r);
}

static const char *const member_names[4] = {"n1", "n2", "n3", "n4"};

static void reply_ring(struct fake_server *f, struct conn *k, uint64_t id) {
  struct wire_ring_node nodes[3];
  for (int i = 0; i < 3; i++) {
    nodes[i].id = 0x1111111111111111ull * (uint64_t)(i + 1);
    nodes[i].addr = (struct wire_bytes){(const uint8_t *)f->ring_addrs[i],
                                        strlen(f->ring_addrs[i])};
    nodes[i].dc = (struct wire_bytes){(const uint8_t *)"dc1", 3};
    nodes[i].rack = (struct wire_bytes){(const uint8_t *)"r1", 2};
    nodes[i].state = i == 2 ? WIRE_NODE_DOWN : WIRE_NODE_UP;
    nodes[i].name = (struct wire_bytes){(const uint8_t *)member_names[i], 2};
  }
  struct wire_msg r = {.type = WIRE_RING_REPLY2, .request_id = id};
  r.ring_reply.epoch = 7;
  r.ring_reply.vnodes = 64;
  r.ring_reply.nnodes = 3;
  r.ring_reply.nodes = nodes;
  send_msg(k, &r);
}

static void reply_status(struct conn *k, uint64_t id) {
  char names[16][64];
  struct wire_stat stats[16];
  size_t n = 0;
  static const int64_t states[] = {0, 1, 2};
  for (int i = 0; i < 3; i++) {
    uint64_t nid = 0x1111111111111111ull * (uint64_t)(i + 1);
    snprintf(names[n], 64, "member.%016" PRIx64 ".state", nid);
    stats[n].value = states[i];
    n++;
    snprintf(names[n], 64, "member.%016" PRIx64 ".incarnation", nid);
    stats[n].value = 10 + i;
    n++;
    snprintf(names[n], 64, "member.%016" PRIx64 ".hints", nid);
    stats[n].value = i == 2 ? 42 : 0;
    n++;
    if (i == 1) {
      snprintf(names[n], 64, "member.%016" PRIx64 ".offset_ms", nid);
      stats[n].value = -3;
      n++;
    }
  }
  snprintf(names[n], 64, "replication.n");
  stats[n++].value = 3;
  snprintf(names[n], 64, "requests.get");
  stats[n++].value = 12;
  for (size_t i = 0; i < n; i++)
    stats[i].name =
        (struct wire_bytes){(const uint8_t *)names[i], strlen(names[i])};
  struct wire_msg r = {.type = WIRE_STATUS_REPLY2, .request_id = id};
  r.status_reply.node_id = 0x1111111111111111ull;
  r.status_reply.name = (struct wire_bytes){(const uint8_t *)"n1", 2};
  r.status_reply.nstats = n;
  r.status_reply.stats = stats;
  send_msg(k, &r);
}

/* The canned cluster (fake_server.h): n1 answers as a follower of n2. */
static void reply_cluster(struct fake_server *f, struct conn *k, uint64_t id) {
  static const struct {
    const char *dc, *rack;
    uint8_t state, role, alive;
    uint32_t share_ppm;
  } canned[4] = {{"dc1", "r1", WIRE_MEMBER_NORMAL, WIRE_RAFT_ROLE_VOTER,
                  WIRE_ALIVE_ALIVE, 333333},
                 {"dc1", "r2", WIRE_MEMBER_NORMAL, WIRE_RAFT_ROLE_VOTER,
                  WIRE_ALIVE_ALIVE, 333334},
                 {"dc2", "r1", WIRE_MEMBER_NORMAL, WIRE_RAFT_ROLE_STANDBY,
                  WIRE_ALIVE_DEAD, 333333},
                 {"dc2", "", WIRE_MEMBER_JOINING, WIRE_RAFT_ROLE_NONE,
                  WIRE_ALIVE_SUSPECT, 0}};
  struct wire_cluster_member mb[4];
  for (int i = 0; i < 4; i++) {
    mb[i] = (struct wire_cluster_member){
        .id = 0x1111111111111111ull * (uint64_t)(i + 1),
        .name = {(const uint8_t *)member_names[i], 2},
        .addr = {(const uint8_t *)f->ring_addrs[i % 3],
                 i < 3 ? strlen(f->ring_addrs[i]) : 0},
        .dc = {(const uint8_t *)canned[i].dc, strlen(canned[i].dc)},
        .rack = {(const uint8_t *)canned[i].rack, strlen(canned[i].rack)},
        .state = f->removed[i] ? WIRE_MEMBER_REMOVED : canned[i].state,
        .role = f->removed[i] ? WIRE_RAFT_ROLE_NONE : canned[i].role,
        .alive = canned[i].alive,
        .vnodes = i < 3 ? 256 : 0,
        .share_ppm = f->removed[i] ? 0 : canned[i].share_ppm};
  }
  int removed = 0;
  for (int i = 0; i < 4; i++)
    removed += f->removed[i];
  struct wire_msg r = {.type = WIRE_CLUSTER_REPLY, .request_id = id};
  struct wire_cluster_reply *c = &r.cluster_reply;
  c->node_id = mb[0].id;
  c->node_name = mb[0].name;
  c->leader_id = mb[1].id;
  c->leader_name = mb[1].name;
  c->term = 7;
  c->commit_index = 120 + (uint64_t)removed;
  c->applied_index = 118 + (uint64_t)removed;
  c->epoch = 12 + (uint64_t)removed;
  c->raft_state = WIRE_RAFT_FOLLOWER;
  c->nmembers = 4;
  c->members = mb;
  send_msg(k, &r);
}

/* CLUSTER_REMOVE against the canned cluster: live members need force. */
static void serve_remove(struct fake_server *f, struct conn *k, uint64_t id,
                         const struct wire_cluster_remove *rm) {
  for (int i = 0; i < 4; i++) {
    if (rm->name.len != 2 || memcmp(rm->name.ptr, member_names[i], 2) != 0)
      continue;
    if (i == 2 || rm->force || f->removed[i]) { /* n3 is dead */
      f->removed[i] = true;
      reply_cluster(f, k, id);
    } else {
      char text[96];
      snprintf(text, sizeof text, "%s is alive; remove it with force",
               member_names[i]);
      send_error(k, id, CHORUS_EBUSY, text);
    }
    return;
  }
  char text[160];
  snprintf(text, sizeof text, "no member named %.*s", (int)rm->name.len,
           (const char *)rm->name.ptr);
  send_error(k, id, CHORUS_ENOTFOUND, text);
}

/* Serves one decoded request in normal mode. */
static void serve(struct fake_server *f, struct conn *k,
                  const struct wire_msg *m) {
  uint64_t id = m->request_id;
  struct object *o;
  switch (m->type) {
  case WIRE_GET:
    if (m->get.opts.flags & WIRE_OPT_TRACE) {
      /* As a node: the timeline first (received; this node, acked, its
       * own times), then the reply, under the same id. */
      uint8_t ev[2 * WIRE_TRACE_EVENT_BYTES];
      const struct wire_trace_event e[2] = {
          {.kind = WIRE_TRACE_RECEIVED, .node = 0x1111111111111111ull},
          {.kind = WIRE_TRACE_REPLICA,
           .flags = WIRE_TRACE_TIMES | WIRE_TRACE_SYNCED,
           .at_ms = 3,
           .node = 0x2222222222222222ull,
           .synced_ms = 1,
           .answered_ms = 2}};
      wire_trace_event_put(ev, &e[0]);
      wire_trace_event_put(ev + WIRE_TRACE_EVENT_BYTES, &e[1]);
      struct wire_msg t = {.type = WIRE_TRACE, .request_id = id};
      t.trace.node_id = 0x1111111111111111ull;
      t.trace.events = (struct wire_bytes){ev, sizeof ev};
      send_msg(k, &t);
    }
    o = lookup(f, m->get.key, false);
    if (want_type(f, k, id, o, 0) == 0)
      reply_list(k, WIRE_GET_REPLY, id, o);
    return;
  case WIRE_PUT:
  case WIRE_DELETE: {
    bool put = m->type == WIRE_PUT;
    o = lookup(f, put ? m->put.key : m->del.key, true);
    if (o == NULL) {
      send_error(k, id, CHORUS_ENOSPC, "fake store full");
      return;
    }
    if (o->version == 0 && o->nsib == 0)
      o->type = 0;
    if (want_type(f, k, id, o, 0) != 0)
      return;
    if (!put && m->del.context.len == 0) {
      /* As the node: an empty context covers nothing (issue 21). */
      send_error(k, id, CHORUS_EINVAL,
                 "delete needs a context: read the key first");
      return;
    }
    drop_seen(o, ctx_version(put ? m->put.context : m->del.context));
    o->version++;
    if (put) {
      if (o->nsib == MAX_SIBS || m->put.value.len > MAX_ITEM) {
        send_error(k, id, CHORUS_ESIBLINGS, "fake: too many siblings");
        return;
      }
      struct sibling *s = &o->sib[o->nsib++];
      s->version = o->version;
      s->len = m->put.value.len;
      memcpy(s->data, m->put.value.ptr, s->len);
    }
    reply_write(k, id, o);
    return;
  }
  case WIRE_COUNTER_ADD: {
    atomic_store(&f->last_op_id, m->counter_add.op_id);
    o = lookup(f, m->counter_add.key, true);
    if (o == NULL)
      return;
    if (o->version == 0)
      o->type = 1;
    if (want_type(f, k, id, o, 1) != 0)
      return;
    bool seen = false;
    for (int i = 0; i < 8; i++)
      seen |= o->ops[i] == m->counter_add.op_id;
    if (!seen) {
      memmove(o->ops + 1, o->ops, 7 * sizeof o->ops[0]);
      o->ops[0] = m->counter_add.op_id;
      o->counter += m->counter_add.delta;
    }
    o->version++;
    reply_write(k, id, o);
    return;
  }
  case WIRE_COUNTER_READ: {
    o = lookup(f, m->counter_read.key, false);
    if (want_type(f, k, id, o, 1) != 0)
      return;
    struct wire_msg r = {.type = WIRE_COUNTER_REPLY, .request_id = id};
    r.counter_reply.value = o ? o->counter : 0;
    send_msg(k, &r);
    return;
  }
  case WIRE_SET_ADD:
  case WIRE_SET_REMOVE: {
    bool add = m->type == WIRE_SET_ADD;
    o = lookup(f, add ? m->set_add.key : m->set_remove.key, true);
    if (o == NULL)
      return;
    if (o->version == 0)
      o->type = 2;
    if (want_type(f, k, id, o, 2) != 0)
      return;
    if (!add && m->set_remove.context.len > 0) {
      /* The toy never handed one out (reply_write). */
      send_error(k, id, CHORUS_ENOTSUP,
                 "fake: set contexts are tested against a real node");
      return;
    }
    const struct wire_bytes_list *l =
        add ? &m->set_add.members : &m->set_remove.members;
    for (size_t i = 0; i < l->n; i++) {
      if (add && !has_member(o, l->items[i]) && o->nsib < MAX_SIBS &&
          l->items[i].len <= MAX_ITEM) {
        o->sib[o->nsib].len = l->items[i].len;
        memcpy(o->sib[o->nsib].data, l->items[i].ptr, l->items[i].len);
        o->nsib++;
      } else if (!add) {
        for (size_t j = 0; j < o->nsib; j++)
          if (o->sib[j].len == l->items[i].len &&
              memcmp(o->sib[j].data, l->items[i].ptr, l->items[i].len) == 0) {
            o->sib[j] = o->sib[--o->nsib];
            break;
          }
      }
    }
    o->version++;
    reply_write(k, id, o);
    return;
  }
  case WIRE_SET_READ:
    o = lookup(f, m->set_read.key, false);
    if (want_type(f, k, id, o, 2) == 0)
      reply_list(k, WIRE_SET_REPLY, id, o);
    return;
  case WIRE_RING_QUERY:
    reply_ring(f, k, id);
    return;
  case WIRE_STATUS_QUERY:
    reply_status(k, id);
    return;
  case WIRE_CLUSTER_QUERY:
  case WIRE_CLUSTER_REMOVE:
    if (atomic_load(&f->mode) == FAKE_VERSION_1) {
      /* An older node: the type is unknown to it. */
      char text[64];
      snprintf(text, sizeof text, "unknown message type %u", m->type);
      send_error(k, id, CHORUS_ENOTSUP, text);
    } else if (m->type == WIRE_CLUSTER_QUERY) {
      reply_cluster(f, k, id);
    } else {
      serve_remove(f, k, id, &m->cluster_remove);
    }
    return;
  default:
    send_error(k, id, CHORUS_ENOTSUP, "fake: not a client request");
  }
}

/* ------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------ */

static void conn_close(struct conn *k) {
  if (k->fd >= 0)
    close(k->fd);
  k->fd = -1;
  wire_splitter_fini(&k->sp);
}

/* Returns false when the connection must close. */
static bool on_frame(struct fake_server *f, struct conn *k, const uint8_t *b,
                     size_t len) {
  struct wire_msg m;
  struct wire_limits lim = WIRE_LIMITS_CLIENT;
  if (wire_decode(b, len, &lim, &m, NULL) != CHORUS_OK) {
    wire_msg_free(&m);
    return false;
  }
  int mode = atomic_load(&f->mode);
  bool keep = true;
  if (!k->hello) {
    if (m.type != WIRE_HELLO) {
      keep = false;
    } else if (mode == FAKE_SILENT_HELLO) {
      /* say nothing */
    } else if (mode == FAKE_REFUSE_HELLO) {
      send_error(k, m.request_id, CHORUS_ECLUSTER, "fake: wrong cluster");
      keep = false;
    } else {
      struct wire_hello_policy pol = {
          WIRE_PROTOCOL_MIN,
          mode == FAKE_VERSION_1 ? 1 : WIRE_PROTOCOL_VERSION,
          {(const uint8_t *)f->cluster, strlen(f->cluster)},
          1u << WIRE_ROLE_CLIENT,
          0x1111111111111111ull};
      struct wire_msg r;
      char text[CHORUS_ERRMSG_SIZE];
      int rc = wire_hello_check(&m.hello, &pol, m.request_id, &r, text);
      send_msg(k, &r);
      k->hello = rc == CHORUS_OK;
      k->version = m.hello.version;
      keep = k->hello;
    }
    wire_msg_free(&m);
    return keep;
  }
  atomic_fetch_add(&f->requests, 1);
  switch (mode) {
  case FAKE_HANG:
    break;
  case FAKE_CLOSE_ON_REQ:
    keep = false;
    break;
  case FAKE_ERROR:
    send_error(k, m.request_id, atomic_load(&f->error_code), "fake error");
    break;
  case FAKE_GARBAGE: {
    static const uint8_t junk[] = {0, 0, 0, 3, 0x93, 0xc1, 0xc1};
    ssize_t w = send(k->fd, junk, sizeof junk, MSG_NOSIGNAL);
    (void)w;
    break;
  }
  default:
    serve(f, k, &m);
  }
  wire_msg_free(&m);
  return keep;
}

static void on_readable(struct fake_server *f, struct conn *k) {
  uint8_t buf[65536];
  ssize_t n = recv(k->fd, buf, sizeof buf, 0);
  if (n <= 0) {
    conn_close(k);
    return;
  }
  const uint8_t *p = buf;
  size_t left = (size_t)n;
  while (left > 0) {
    size_t used = 0;
    struct wire_bytes frame;
    int rc = wire_splitter_push(&k->sp, p, left, &used, &frame);
    if (rc < 0) {
      conn_close(k);
      return;
    }
    p += used;
    left -= used;
    if (rc == 1 && !on_frame(f, k, frame.ptr, frame.len)) {
      conn_close(k);
      return;
    }
  }
}

static void *run(void *arg) {
  struct fake_server *f = arg;
  while (!atomic_load(&f->stop)) {
    struct pollfd pfd[MAX_CONNS + 2];
    int idx[MAX_CONNS + 2];
    nfds_t n = 0;
    pfd[n] = (struct pollfd){f->lfd, POLLIN, 0};
    idx[n++] = -1;
    pfd[n] = (struct pollfd){f->wake[0], POLLIN, 0};
    idx[n++] = -2;
    for (int i = 0; i < MAX_CONNS; i++)
      if (f->conns[i].fd >= 0) {
        pfd[n] = (struct pollfd){f->conns[i].fd, POLLIN, 0};
        idx[n++] = i;
      }
    if (poll(pfd, n, 1000) < 0 && errno != EINTR)
      break;
    for (nfds_t j = 0; j < n; j++) {
      if (!(pfd[j].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      if (idx[j] == -1) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
          continue;
        int slot = -1;
        for (int i = 0; i < MAX_CONNS && slot < 0; i++)
          if (f->conns[i].fd < 0)
            slot = i;
        if (slot < 0) {
          close(fd);
          continue;
        }
        atomic_fetch_add(&f->connections, 1);
        f->conns[slot].fd = fd;
        f->conns[slot].hello = false;
        wire_splitter_init(&f->conns[slot].sp, WIRE_MAX_FRAME_CLIENT);
      } else if (idx[j] >= 0 && f->conns[idx[j]].fd >= 0) {
        on_readable(f, &f->conns[idx[j]]);
      }
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------------
 * Control
 * ------------------------------------------------------------------------ */

struct fake_server *fake_start(const char *cluster) {
  struct fake_server *f = calloc(1, sizeof *f);
  if (f == NULL)
    return NULL;
  snprintf(f->cluster, sizeof f->cluster, "%s", cluster);
  for (int i = 0; i < MAX_CONNS; i++)
    f->conns[i].fd = -1;
  for (int i = 0; i < 3; i++)
    snprintf(f->ring_addrs[i], sizeof f->ring_addrs[i], "127.0.0.1:%d",
             7401 + i);
  f->lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(f->lfd, 16) != 0 ||
      getsockname(f->lfd, (struct sockaddr *)&sa, &sl) != 0 ||
      pipe(f->wake) != 0) {
    if (f->lfd >= 0)
      close(f->lfd);
    free(f);
    return NULL;
  }
  f->port = ntohs(sa.sin_port);
  snprintf(f->addr, sizeof f->addr, "127.0.0.1:%u", f->port);
  if (pthread_create(&f->thread, NULL, run, f) != 0) {
    close(f->lfd);
    close(f->wake[0]);
    close(f->wake[1]);
    free(f);
    return NULL;
  }
  return f;
}

void fake_stop(struct fake_server *f) {
  if (f == NULL)
    return;
  atomic_store(&f->stop, true);
  ssize_t w = write(f->wake[1], "x", 1);
  (void)w;
  pthread_join(f->thread, NULL);
  for (int i = 0; i < MAX_CONNS; i++)
    if (f->conns[i].fd >= 0)
      conn_close(&f->conns[i]);
  close(f->lfd);
  close(f->wake[0]);
  close(f->wake[1]);
  free(f);
}

uint16_t fake_port(const struct fake_server *f) {
  return f->port;
}

const char *fake_addr(const struct fake_server *f) {
  return f->addr;
}

void fake_set_mode(struct fake_server *f, enum fake_mode mode, int error_code) {
  atomic_store(&f->error_code, error_code);
  atomic_store(&f->mode, (int)mode);
}

void fake_set_ring(struct fake_server *f, const char *const addrs[3]) {
  for (int i = 0; i < 3; i++)
    snprintf(f->ring_addrs[i], sizeof f->ring_addrs[i], "%s", addrs[i]);
}

int fake_connections(const struct fake_server *f) {
  return atomic_load(&f->connections);
}

int fake_requests(const struct fake_server *f) {
  return atomic_load(&f->requests);
}

uint64_t fake_last_op_id(const struct fake_server *f) {
  return atomic_load(&f->last_op_id);
}

uint16_t fake_dead_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  uint16_t port = 1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
    port = ntohs(sa.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}
