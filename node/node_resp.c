/* node_resp.c: chorusd's RESP gateway (--resp HOST:PORT): Redis clients
 * (redis-cli, redis-py, node-redis, redis-benchmark) read and write chorus
 * through the node's own client path. docs/RESP.md is the user's page
 * (commands and semantics); this is how it is built.
 *
 * HOW IT WORKS
 *
 * No second coordinator. A RESP command becomes one or more ordinary
 * client requests (struct wire_msg, as a native client's frame decodes
 * to) handed to node__client_submit, the very function native frames go
 * through: a slot, the request metrics, core_client. The answer comes
 * back through the core's reply effect (node_dispatch.c), which hands it
 * here (node__resp_reply) instead of encoding a frame. Each request is
 * first encoded into a scratch buffer: wire_encode checks every field
 * against the limits wire_decode enforces on a native frame, so what
 * reaches the core from this port is exactly what a native frame could
 * carry (an empty key, a value over --max-value-bytes: an -ERR here).
 *
 * A session (struct node_resp) keeps its commands in arrival order, each
 * a struct rcmd: a small state machine over the requests it needs
 * (INCR: COUNTER_ADD then COUNTER_READ; SET GET: LWW_READ then LWW_SET;
 * MGET: one LWW_READ per key at once), whose reply bytes accumulate in
 * the command's own buffer. Replies leave strictly in order: only a done
 * command at the head of the queue is moved to the connection's output,
 * so a pipeline's later GET that finishes first waits for the SET before
 * it (RESP has no request ids: order is the only correlation).
 *
 * Request ids: a command's number on its session << 12 | the request's
 * index within it (an argument position, < RESP_MAX_ARGS_HARD = 4096), so
 * an answer finds its command by a walk of the queue (at most
 * --max-inflight entries).
 *
 * Order on a key. Redis runs a connection's commands one after the
 * other, so a pipelined GET sees the SET before it. Here commands run
 * concurrently (that is what makes pipelining pay on a quorum store),
 * except that a command waits to start until every earlier command of
 * its session that names one of its keys has finished (start_ready): per
 * connection and per key, commands take effect in the order sent, while
 * commands on different keys overlap. The consistency levels a command
 * uses are the ones set when it arrived.
 *
 * Re-entrancy: core_client may answer before it returns (a refused
 * request, a local read). So a state machine issues its request as its
 * last act, multi-request commands count what they wait for and complete
 * when the count drops to zero outside their issuing loop, and the queue
 * is only flushed (commands freed) from the outermost entry point
 * (r->depth).
 *
 * Limits (the native port's, in RESP terms):
 *
 *   pipeline   at most --max-inflight commands queued (or requests in
 *              flight: an MGET is many) per connection;
 *              past it the session stops parsing and reading (the bytes
 *              wait in the kernel) until answers leave: a client that
 *              pipelines a million commands holds 256.
 *   output     --out-limit of unsent replies stops reading (node_conn.c)
 *              and parsing what was read (pipeline_full), so a client
 *              that never reads its answers blocks itself, holding at
 *              most --out-limit plus one pipeline of answers.
 *   input      a command's declared size is checked against --max-frame,
 *              an argument against --max-frame, the count against
 *              RESP_MAX_ARGS, an inline line against RESP_MAX_INLINE
 *              (resp.h): no allocation from a header. A violation is
 *              "-ERR Protocol error: ..." and the connection closes.
 *   time       --idle-ms and --min-frame-rate apply as to native clients
 *              (node_accept.c): a command's bytes must keep coming.
 *   sessions   RESP and native sessions together at most
 *              --max-connections; one more gets "-ERR max number of
 *              clients reached" and is closed.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chorus_alloc.h"
#include "node_int.h"
#include "resp.h"

#define RESP_MAX_ARGS 1024u          /* arguments of one command */
#define RESP_MAX_INLINE (64u * 1024) /* an inline command line */
#define RESP_SUB_BITS 12u            /* request id: command << 12 | sub */
#define RESP_MAX_REPLY (64u << 20)   /* one command's reply, at most */
#define RESP_SERVER_VERSION "0.1.0"  /* chorusd's */
#define RESP_REDIS_VERSION "7.0.0"   /* the dialect, for clients that ask */

_Static_assert(RESP_MAX_ARGS <= (1u << RESP_SUB_BITS), "sub index bits");

/* ------------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------------ */

enum rkind {
  /* answered at once */
  K_PING,
  K_ECHO,
  K_HELLO,
  K_AUTH,
  K_SELECT,
  K_KEYSPACE,
  K_QUIT,
  K_COMMAND,
  K_INFO,
  K_CLIENT,
  K_CONFIG,
  K_CONSISTENCY,
  K_NOTTL,
  K_MULTI,
  /* through the core */
  K_GET,
  K_SET,
  K_GETSET,
  K_MGET,
  K_MSET,
  K_DEL,
  K_EXISTS,
  K_INCR,
  K_INCRBY,
  K_DECR,
  K_DECRBY,
  K_SADD,
  K_SREM,
  K_SMEMBERS,
  K_SISMEMBER,
  K_SCARD,
  K_SIBLINGS,
  K_PUT,
};

/* The command table: Redis's arity convention (n: exactly n words with
 * the name, -n: at least n), and what COMMAND reports. */
struct rdef {
  const char *name;
  int arity;
  enum rkind kind;
  const char *flags; /* COMMAND's flags, space separated */
  int first, last, step;
};

static const struct rdef defs[] = {
    {"ping", -1, K_PING, "fast", 0, 0, 0},
    {"echo", 2, K_ECHO, "fast", 0, 0, 0},
    {"hello", -1, K_HELLO, "fast", 0, 0, 0},
    {"auth", -2, K_AUTH, "fast", 0, 0, 0},
    {"select", 2, K_SELECT, "fast", 0, 0, 0},
    {"chorus.keyspace", 2, K_KEYSPACE, "fast", 0, 0, 0},
    {"quit", -1, K_QUIT, "fast", 0, 0, 0},
    {"command", -1, K_COMMAND, "", 0, 0, 0},
    {"info", -1, K_INFO, "", 0, 0, 0},
    {"client", -2, K_CLIENT, "", 0, 0, 0},
    {"config", -2, K_CONFIG, "", 0, 0, 0},
    {"chorus.consistency", -1, K_CONSISTENCY, "fast", 0, 0, 0},
    {"expire", -3, K_NOTTL, "write", 1, 1, 1},
    {"pexpire", -3, K_NOTTL, "write", 1, 1, 1},
    {"ttl", 2, K_NOTTL, "readonly", 1, 1, 1},
    {"pttl", 2, K_NOTTL, "readonly", 1, 1, 1},
    {"persist", 2, K_NOTTL, "write", 1, 1, 1},
    {"multi", 1, K_MULTI, "", 0, 0, 0},
    {"exec", 1, K_MULTI, "", 0, 0, 0},
    {"discard", 1, K_MULTI, "", 0, 0, 0},
    {"watch", -2, K_MULTI, "", 0, 0, 0},
    {"get", 2, K_GET, "readonly", 1, 1, 1},
    {"set", -3, K_SET, "write", 1, 1, 1},
    {"getset", 3, K_GETSET, "write", 1, 1, 1},
    {"mget", -2, K_MGET, "readonly", 1, -1, 1},
    {"mset", -3, K_MSET, "write", 1, -1, 2},
    {"del", -2, K_DEL, "write", 1, -1, 1},
    {"exists", -2, K_EXISTS, "readonly", 1, -1, 1},
    {"incr", 2, K_INCR, "write", 1, 1, 1},
    {"incrby", 3, K_INCRBY, "write", 1, 1, 1},
    {"decr", 2, K_DECR, "write", 1, 1, 1},
    {"decrby", 3, K_DECRBY, "write", 1, 1, 1},
    {"sadd", -3, K_SADD, "write", 1, 1, 1},
    {"srem", -3, K_SREM, "write", 1, 1, 1},
    {"smembers", 2, K_SMEMBERS, "readonly", 1, 1, 1},
    {"sismember", 3, K_SISMEMBER, "readonly", 1, 1, 1},
    {"scard", 2, K_SCARD, "readonly", 1, 1, 1},
    {"chorus.siblings", 2, K_SIBLINGS, "readonly", 1, 1, 1},
    {"chorus.put", 4, K_PUT, "write", 1, 1, 1},
};
#define NDEFS (sizeof defs / sizeof defs[0])

/* One command in a session's queue. */
struct rcmd {
  struct rcmd *next;
  uint64_t id;
  const struct rdef *def; /* NULL: answered when parsed */
  enum rkind kind;
  uint8_t step;
  bool started, done, issuing, quit, get_old;
  int32_t r, w;      /* the session's levels when it arrived */
  char keyspace[48]; /* ... and its keyspace ("": default) */
  int proto;         /* ... and its protocol (a later HELLO changes neither) */
  uint32_t waiting;  /* requests submitted and not answered yet */
  size_t argc;
  struct resp_arg *argv; /* owned: one allocation with the bytes */
  struct resp_out out;   /* the reply, once done */
  /* Multi-key commands: each key's reply (MGET) or state (DEL). */
  struct resp_out *subs;
  uint8_t *kstate;
  int64_t count, delta;
  int err;              /* the first error of a multi-request command */
  struct resp_out eout; /* ... its RESP error line */
  uint8_t *ctx;         /* SREM: the context read */
  size_t ctxlen;
};

struct node_resp {
  int proto; /* 2, or 3 after HELLO 3 */
  int32_t r, w;
  char keyspace[48]; /* CHORUS.KEYSPACE's ("": default) */
  char name[128];
  struct rcmd *head, *tail;
  uint32_t queued;
  uint32_t unstarted; /* commands waiting for an earlier one on a key */
  uint64_t next_id;
  int depth;
  bool held, quitting;
};

static const struct rdef *lookup(const struct resp_arg *a) {
  for (size_t i = 0; i < NDEFS; i++)
    if (resp_arg_is(a, defs[i].name))
      return &defs[i];
  return NULL;
}

static void addf(struct resp_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void addf(struct resp_out *o, const char *fmt, ...) {
  char b[512];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(b, sizeof b, fmt, ap);
  va_end(ap);
  if (k > 0)
    resp_raw(o, b, (size_t)k < sizeof b ? (size_t)k : sizeof b - 1);
}

static void errorf(struct resp_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void errorf(struct resp_out *o, const char *fmt, ...) {
  char b[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b, sizeof b, fmt, ap);
  va_end(ap);
  resp_error(o, b);
}

/* chorus_error: a core ERROR as a RESP error: ETYPE is Redis's WRONGTYPE;
 * every other code is its chorus name without CHORUS_E ("UNAVAILABLE",
 * "TIMEDOUT", "OVERLOAD"...) followed by the node's text, so a client
 * can tell them apart by the first word. */
static void chorus_error(struct resp_out *o, int code, struct wire_bytes text) {
  if (code == CHORUS_ETYPE) {
    resp_error(o, "WRONGTYPE Operation against a key holding the wrong kind "
                  "of value");
    return;
  }
  const char *name = chorus_errname(code);
  if (strncmp(name, "CHORUS_E", 8) == 0)
    name += 8;
  int len = text.len > 400 ? 400 : (int)text.len;
  errorf(o, "%s %.*s", name, len, text.ptr ? (const char *)text.ptr : "");
}

/* ------------------------------------------------------------------------
 * Requests into the core
 * ------------------------------------------------------------------------ */

static void on_answer(struct node_conn *c, struct rcmd *k, unsigned sub,
                      const struct wire_msg *m);

static struct wire_options opts_of(const struct rcmd *k) {
  struct wire_options o = {0};
  o.r = k->r;
  o.w = k->w;
  o.keyspace =
      (struct wire_bytes){(const uint8_t *)k->keyspace, strlen(k->keyspace)};
  return o;
}

static struct wire_bytes wb(const struct resp_arg *a) {
  return (struct wire_bytes){a->ptr, a->len};
}

/* issue: @m (its request id set here) into the core for command @k's
 * request @sub. A request the wire would refuse, or that finds no memory,
 * is answered at once with the ERROR a native client would get. Callers
 * touch @k no more after this (its answer may already have come). */
static void issue(struct node_conn *c, struct rcmd *k, unsigned sub,
                  struct wire_msg *m) {
  struct node *n = c->n;
  m->request_id = (k->id << RESP_SUB_BITS) | sub;
  k->waiting++;
  size_t need = wire_encoded_size(m);
  char err[CHORUS_ERRMSG_SIZE] = "";
  int rc = node__buf_reserve(&n->resp_scratch, need);
  if (rc == CHORUS_OK) {
    size_t written;
    n->resp_scratch.len = 0;
    rc = wire_encode(m, n->resp_scratch.data, need, &written, err);
  }
  if (rc == CHORUS_OK)
    rc = node__client_submit(c, m);
  if (rc != CHORUS_OK) {
    struct wire_msg e;
    wire_error_reply(&e, 0, rc, err[0] ? err : chorus_strerror(rc));
    k->waiting--;
    on_answer(c, k, sub, &e);
  }
}

static void issue_key(struct node_conn *c, struct rcmd *k, unsigned sub,
                      uint8_t type, const struct resp_arg *key) {
  struct wire_msg m = {.type = type};
  /* GET, COUNTER_READ, SET_READ, LWW_READ and LWW_DELETE share {key,
   * opts} at the head of their structs; each is filled by name. */
  switch (type) {
  case WIRE_GET:
    m.get.key = wb(key);
    m.get.opts = opts_of(k);
    break;
  case WIRE_COUNTER_READ:
    m.counter_read.key = wb(key);
    m.counter_read.opts = opts_of(k);
    break;
  case WIRE_SET_READ:
    m.set_read.key = wb(key);
    m.set_read.opts = opts_of(k);
    break;
  default:
    m.lww_key.key = wb(key);
    m.lww_key.opts = opts_of(k);
    break;
  }
  issue(c, k, sub, &m);
}

static void issue_lww_set(struct node_conn *c, struct rcmd *k, unsigned sub,
                          const struct resp_arg *key,
                          const struct resp_arg *value) {
  struct wire_msg m = {.type = WIRE_LWW_SET};
  m.lww_set.key = wb(key);
  m.lww_set.value = wb(value);
  m.lww_set.opts = opts_of(k);
  issue(c, k, sub, &m);
}

static uint64_t next_op_id(struct node *n) {
  uint64_t id;
  do
    id = n->resp_op_base + ++n->resp_op_seq * 0x9e3779b97f4a7c15ull;
  while (id == 0); /* 0 means "no id" to the node */
  return id;
}

/* issue_members: SET_ADD or SET_REMOVE of the arguments from index 2. */
static void issue_members(struct node_conn *c, struct rcmd *k, uint8_t type) {
  size_t nm = k->argc - 2;
  struct wire_bytes *items = chorus_calloc(nm, sizeof *items);
  if (items == NULL) {
    struct wire_msg e;
    wire_error_reply(&e, 0, CHORUS_ENOMEM, "out of memory");
    on_answer(c, k, 0, &e);
    return;
  }
  for (size_t i = 0; i < nm; i++)
    items[i] = wb(&k->argv[2 + i]);
  struct wire_msg m = {.type = type};
  if (type == WIRE_SET_ADD) {
    m.set_add.key = wb(&k->argv[1]);
    m.set_add.members = (struct wire_bytes_list){nm, items};
    m.set_add.opts = opts_of(k);
  } else {
    m.set_remove.key = wb(&k->argv[1]);
    m.set_remove.members = (struct wire_bytes_list){nm, items};
    m.set_remove.context = (struct wire_bytes){k->ctx, k->ctxlen};
    m.set_remove.opts = opts_of(k);
  }
  /* The core copies what it keeps before core_client returns (a native
   * frame is freed right after it), so the list may go once issued. */
  issue(c, k, 0, &m);
  chorus_free(items);
}

/* ------------------------------------------------------------------------
 * Answers: each command's state machine
 * ------------------------------------------------------------------------ */

static void finish(struct rcmd *k) {
  k->done = true;
}

static bool is_error(const struct wire_msg *m) {
  return m->type == WIRE_ERROR;
}

static void reply_error(struct rcmd *k, const struct wire_msg *m) {
  chorus_error(&k->out, m->error.code, m->error.text);
  finish(k);
}

/* note_error: the first error of a multi-request command. */
static void note_error(struct rcmd *k, const struct wire_msg *m) {
  if (k->err)
    return;
  k->err = m->error.code ? m->error.code : CHORUS_EINTERNAL;
  chorus_error(&k->eout, m->error.code, m->error.text);
}

static bool set_has(const struct wire_bytes_list *l, const struct resp_arg *a) {
  for (size_t i = 0; i < l->n; i++)
    if (l->items[i].len == a->len &&
        (a->len == 0 || memcmp(l->items[i].ptr, a->ptr, a->len) == 0))
      return true;
  return false;
}

/* distinct_new: the arguments from index 2 that are (@present) or are
 * not (!@present) in @l, each counted once. */
static int64_t count_members(const struct rcmd *k,
                             const struct wire_bytes_list *l, bool present) {
  int64_t n = 0;
  for (size_t i = 2; i < k->argc; i++) {
    bool dup = false;
    for (size_t j = 2; j < i && !dup; j++)
      dup = k->argv[j].len == k->argv[i].len &&
            memcmp(k->argv[j].ptr, k->argv[i].ptr, k->argv[i].len) == 0;
    if (!dup && set_has(l, &k->argv[i]) == present)
      n++;
  }
  return n;
}

/* multi_done: a multi-request command with nothing more to wait for
 * writes its reply. */
static void multi_done(struct node_conn *c, struct rcmd *k) {
  if (k->issuing || k->waiting || k->done)
    return;
  if (k->err) {
    resp_raw(&k->out, k->eout.data, k->eout.len);
  } else if (k->kind == K_MGET) {
    resp_array(&k->out, k->argc - 1);
    for (size_t i = 0; i + 1 < k->argc; i++)
      resp_raw(&k->out, k->subs[i].data, k->subs[i].len);
  } else if (k->kind == K_MSET) {
    resp_simple(&k->out, "OK");
  } else {
    resp_int(&k->out, k->count);
  }
  (void)c;
  finish(k);
}

static void answer_get(struct node_conn *c, struct rcmd *k,
                       const struct wire_msg *m) {
  int proto = k->proto;
  if (is_error(m)) {
    /* A RESP key is an LWW register; a key the native API wrote as kv or
     * as a counter is read as such (docs/RESP.md, GET). */
    static const uint8_t next[] = {WIRE_GET, WIRE_COUNTER_READ};
    if (m->error.code == CHORUS_ETYPE && k->step < 2) {
      uint8_t t = next[k->step++];
      issue_key(c, k, 0, t, &k->argv[1]);
      return;
    }
    reply_error(k, m);
    return;
  }
  switch (m->type) {
  case WIRE_LWW_REPLY:
    if (m->lww_reply.present)
      resp_bulk(&k->out, m->lww_reply.value.ptr, m->lww_reply.value.len);
    else
      resp_null(&k->out, proto);
    break;
  case WIRE_GET_REPLY:
  case WIRE_GET_REPLY2:
    if (m->get_reply.values.n == 0)
      resp_null(&k->out, proto);
    else if (m->get_reply.values.n == 1)
      resp_bulk(&k->out, m->get_reply.values.items[0].ptr,
                m->get_reply.values.items[0].len);
    else
      errorf(&k->out,
             "SIBLINGS the key is a kv object with %zu concurrent values: "
             "CHORUS.SIBLINGS reads them and their context, CHORUS.PUT "
             "resolves them",
             m->get_reply.values.n);
    break;
  case WIRE_COUNTER_REPLY: {
    char b[24];
    int len = snprintf(b, sizeof b, "%" PRId64, m->counter_reply.value);
    resp_bulk(&k->out, b, (size_t)len);
    break;
  }
  default:
    resp_error(&k->out, "ERR unexpected answer from the node");
  }
  finish(k);
}

static void answer_set(struct node_conn *c, struct rcmd *k,
                       const struct wire_msg *m) {
  if (is_error(m)) {
    k->out.len = 0; /* an old value read before, if any */
    reply_error(k, m);
    return;
  }
  if (k->step == 0 && k->get_old) {
    /* The old value, then the write: two requests, not one atomic step
     * (docs/RESP.md): a write between them is overwritten unseen. */
    if (m->type == WIRE_LWW_REPLY && m->lww_reply.present)
      resp_bulk(&k->out, m->lww_reply.value.ptr, m->lww_reply.value.len);
    else
      resp_null(&k->out, k->proto);
    k->step = 1;
    issue_lww_set(c, k, 0, &k->argv[1], &k->argv[2]);
    return;
  }
  if (!k->get_old)
    resp_simple(&k->out, "OK");
  finish(k);
}

static void answer_incr(struct node_conn *c, struct rcmd *k,
                        const struct wire_msg *m) {
  if (is_error(m)) {
    reply_error(k, m);
    return;
  }
  if (k->step == 0) {
    /* A PN-counter add answers no value: the value is read after it
     * (docs/RESP.md, INCR). */
    k->step = 1;
    issue_key(c, k, 0, WIRE_COUNTER_READ, &k->argv[1]);
    return;
  }
  resp_int(&k->out, m->counter_reply.value);
  finish(k);
}

static void answer_set_cmd(struct node_conn *c, struct rcmd *k,
                           const struct wire_msg *m) {
  int proto = k->proto;
  if (is_error(m)) {
    reply_error(k, m);
    return;
  }
  if (k->step == 1) { /* SADD's or SREM's write */
    resp_int(&k->out, k->count);
    finish(k);
    return;
  }
  const struct wire_set_reply *s = &m->set_reply;
  switch (k->kind) {
  case K_SMEMBERS:
    resp_set(&k->out, proto, s->members.n);
    for (size_t i = 0; i < s->members.n; i++)
      resp_bulk(&k->out, s->members.items[i].ptr, s->members.items[i].len);
    break;
  case K_SISMEMBER:
    resp_int(&k->out, set_has(&s->members, &k->argv[2]) ? 1 : 0);
    break;
  case K_SCARD:
    resp_int(&k->out, (int64_t)s->members.n);
    break;
  case K_SADD:
    /* Redis answers the count of members that were not there: read
     * first, then add (docs/RESP.md, sets). */
    k->count = count_members(k, &s->members, false);
    if (k->count == 0)
      break;
    k->step = 1;
    issue_members(c, k, WIRE_SET_ADD);
    return;
  case K_SREM:
    /* An OR-set remove names the adds it observed: the read's context. */
    k->count = count_members(k, &s->members, true);
    if (k->count == 0)
      break;
    if (s->context.len) {
      k->ctx = chorus_malloc(s->context.len);
      if (k->ctx == NULL) {
        resp_error(&k->out, "ERR out of memory");
        break;
      }
      memcpy(k->ctx, s->context.ptr, s->context.len);
      k->ctxlen = s->context.len;
    }
    k->step = 1;
    issue_members(c, k, WIRE_SET_REMOVE);
    return;
  default:
    break;
  }
  if (k->kind == K_SADD || k->kind == K_SREM)
    resp_int(&k->out, 0);
  finish(k);
}

static void answer_key(struct node_conn *c, struct rcmd *k, unsigned sub,
                       const struct wire_msg *m) {
  size_t i = sub; /* the key's index among the keys */
  switch (k->kind) {
  case K_MGET:
    if (is_error(m) && m->error.code == CHORUS_ETYPE)
      resp_null(&k->subs[i], k->proto); /* as Redis, for non-strings */
    else if (is_error(m))
      note_error(k, m);
    else if (m->type == WIRE_LWW_REPLY && m->lww_reply.present)
      resp_bulk(&k->subs[i], m->lww_reply.value.ptr, m->lww_reply.value.len);
    else
      resp_null(&k->subs[i], k->proto);
    break;
  case K_MSET:
    if (is_error(m))
      note_error(k, m);
    break;
  case K_EXISTS:
    /* Another type than a register is a key that exists all the same. */
    if (is_error(m) && m->error.code != CHORUS_ETYPE)
      note_error(k, m);
    else if (is_error(m) || m->lww_reply.present)
      k->count++;
    break;
  case K_DEL:
    if (is_error(m)) {
      note_error(k, m);
    } else if (k->kstate[i] == 0 && m->type == WIRE_LWW_REPLY &&
               m->lww_reply.present) {
      /* Present: delete it, and count it. */
      k->kstate[i] = 1;
      k->count++;
      issue_key(c, k, sub, WIRE_LWW_DELETE, &k->argv[1 + i]);
    }
    break;
  default:
    break;
  }
  multi_done(c, k);
}

static void answer_siblings(struct node_conn *c, struct rcmd *k,
                            const struct wire_msg *m) {
  (void)c;
  if (is_error(m)) {
    reply_error(k, m);
    return;
  }
  if (k->kind == K_PUT) {
    resp_bulk(&k->out, m->write_reply.context.ptr, m->write_reply.context.len);
  } else {
    const struct wire_get_reply *g = &m->get_reply;
    resp_array(&k->out, 2);
    resp_bulk(&k->out, g->context.ptr, g->context.len);
    resp_array(&k->out, g->values.n);
    for (size_t i = 0; i < g->values.n; i++)
      resp_bulk(&k->out, g->values.items[i].ptr, g->values.items[i].len);
  }
  finish(k);
}

static void on_answer(struct node_conn *c, struct rcmd *k, unsigned sub,
                      const struct wire_msg *m) {
  switch (k->kind) {
  case K_GET:
    answer_get(c, k, m);
    break;
  case K_SET:
  case K_GETSET:
    answer_set(c, k, m);
    break;
  case K_INCR:
  case K_INCRBY:
  case K_DECR:
  case K_DECRBY:
    answer_incr(c, k, m);
    break;
  case K_SADD:
  case K_SREM:
  case K_SMEMBERS:
  case K_SISMEMBER:
  case K_SCARD:
    answer_set_cmd(c, k, m);
    break;
  case K_MGET:
  case K_MSET:
  case K_DEL:
  case K_EXISTS:
    answer_key(c, k, sub, m);
    break;
  case K_SIBLINGS:
  case K_PUT:
    answer_siblings(c, k, m);
    break;
  default:
    assert(0 && "a command answered at once got an answer");
  }
}

/* ------------------------------------------------------------------------
 * Commands answered at once
 * ------------------------------------------------------------------------ */

static void hello_map(struct node_conn *c, struct resp_out *o) {
  struct node_resp *r = c->resp;
  resp_map(o, r->proto, 7);
  resp_bulk_str(o, "server");
  resp_bulk_str(o, "chorus");
  resp_bulk_str(o, "version");
  resp_bulk_str(o, RESP_REDIS_VERSION);
  resp_bulk_str(o, "proto");
  resp_int(o, r->proto);
  resp_bulk_str(o, "id");
  resp_int(o, (int64_t)c->serial);
  resp_bulk_str(o, "mode");
  resp_bulk_str(o, "cluster");
  resp_bulk_str(o, "role");
  resp_bulk_str(o, "master");
  resp_bulk_str(o, "modules");
  resp_array(o, 0);
}

static void run_hello(struct node_conn *c, struct rcmd *k) {
  struct resp_out *o = &k->out;
  int64_t v = c->resp->proto;
  if (k->argc >= 2 && (!resp_int_parse(k->argv[1].ptr, k->argv[1].len, &v) ||
                       (v != 2 && v != 3))) {
    resp_error(o, "NOPROTO unsupported protocol version");
    return;
  }
  for (size_t i = 2; i < k->argc; i++) {
    if (resp_arg_is(&k->argv[i], "AUTH") && i + 2 < k->argc) {
      resp_error(o, "ERR AUTH: chorus has no users yet (no password is set)");
      return;
    }
    if (resp_arg_is(&k->argv[i], "SETNAME") && i + 1 < k->argc) {
      size_t len = k->argv[i + 1].len;
      if (len >= sizeof c->resp->name)
        len = sizeof c->resp->name - 1;
      memcpy(c->resp->name, k->argv[i + 1].ptr, len);
      c->resp->name[len] = '\0';
      i++;
      continue;
    }
    resp_error(o, "ERR syntax error in HELLO option");
    return;
  }
  c->resp->proto = (int)v;
  hello_map(c, o);
}

static void command_entry(struct resp_out *o, const struct rdef *d) {
  resp_array(o, 6);
  resp_bulk_str(o, d->name);
  resp_int(o, d->arity);
  size_t nf = d->flags[0] ? 1 : 0;
  resp_set(o, 2, nf);
  if (nf)
    resp_simple(o, d->flags);
  resp_int(o, d->first);
  resp_int(o, d->last);
  resp_int(o, d->step);
}

static void run_command(struct node_conn *c, struct rcmd *k) {
  struct resp_out *o = &k->out;
  if (k->argc == 1) {
    resp_array(o, NDEFS);
    for (size_t i = 0; i < NDEFS; i++)
      command_entry(o, &defs[i]);
  } else if (resp_arg_is(&k->argv[1], "COUNT")) {
    resp_int(o, (int64_t)NDEFS);
  } else if (resp_arg_is(&k->argv[1], "DOCS")) {
    resp_map(o, c->resp->proto, 0); /* no docs: redis-cli then has no hints */
  } else if (resp_arg_is(&k->argv[1], "INFO")) {
    resp_array(o, k->argc - 2);
    for (size_t i = 2; i < k->argc; i++) {
      const struct rdef *d = lookup(&k->argv[i]);
      if (d)
        command_entry(o, d);
      else
        resp_null_array(o, c->resp->proto);
    }
  } else {
    resp_error(o, "ERR unknown subcommand of COMMAND: COUNT, DOCS, INFO");
  }
}

static bool want_section(const struct rcmd *k, const char *name) {
  if (k->argc < 2)
    return true;
  for (size_t i = 1; i < k->argc; i++)
    if (resp_arg_is(&k->argv[i], name) || resp_arg_is(&k->argv[i], "all") ||
        resp_arg_is(&k->argv[i], "everything") ||
        resp_arg_is(&k->argv[i], "default"))
      return true;
  return false;
}

static void run_info(struct node_conn *c, struct rcmd *k) {
  struct node *n = c->n;
  struct resp_out t;
  resp_out_init(&t, 1u << 20);
  if (want_section(k, "server")) {
    addf(&t,
         "# Server\r\nredis_version:%s\r\nchorus_version:%s\r\n"
         "redis_mode:cluster\r\nnode_name:%s\r\nnode_id:%016" PRIx64 "\r\n"
         "cluster:%s\r\ndatacenter:%s\r\nrack:%s\r\nprocess_id:%ld\r\n"
         "resp_listen:%s\r\n\r\n",
         RESP_REDIS_VERSION, RESP_SERVER_VERSION, n->cfg.name, n->cfg.id,
         n->cfg.cluster, n->cfg.dc, n->cfg.rack, (long)getpid(), n->cfg.resp);
  }
  if (want_section(k, "clients"))
    addf(&t,
         "# Clients\r\nconnected_clients:%" PRIu32 "\r\n"
         "resp_clients:%" PRIu32 "\r\nnative_clients:%" PRIu32 "\r\n"
         "maxclients:%" PRIu32 "\r\n\r\n",
         n->nresp + n->nclients, n->nresp, n->nclients, n->cfg.max_connections);
  if (want_section(k, "stats")) {
    uint64_t req = 0;
    for (int op = 0; op < NODE_OP_COUNT; op++)
      for (int l = 0; l < NODE_LEVELS; l++)
        req += n->metrics.requests[op][l];
    addf(&t,
         "# Stats\r\ntotal_connections_received:%" PRIu64 "\r\n"
         "total_commands_processed:%" PRIu64 "\r\n"
         "total_error_replies:%" PRIu64 "\r\n"
         "rejected_connections:%" PRIu64 "\r\n"
         "protocol_errors:%" PRIu64 "\r\n"
         "chorus_requests:%" PRIu64 "\r\n"
         "idle_timeouts:%" PRIu64 "\r\nslow_senders:%" PRIu64 "\r\n\r\n",
         n->stats.resp_accepted, n->stats.resp_commands, n->stats.resp_errors,
         n->stats.resp_refused, n->stats.resp_protocol_errors, req,
         n->stats.idle_timeouts, n->stats.slow_senders);
  }
  if (want_section(k, "keyspace"))
    addf(&t,
         "# Keyspace\r\nkeyspace_default:type=lww,replicas=%s,"
         "read=%s,write=%s\r\n",
         n->cfg.replicas,
         wire_level_name(c->resp->r) ? wire_level_name(c->resp->r) : "count",
         wire_level_name(c->resp->w) ? wire_level_name(c->resp->w) : "count");
  if (t.failed)
    resp_error(&k->out, "ERR out of memory");
  else
    resp_verbatim(&k->out, c->resp->proto, (const char *)t.data, t.len);
  resp_out_free(&t);
}

static void run_client(struct node_conn *c, struct rcmd *k) {
  struct resp_out *o = &k->out;
  struct node_resp *r = c->resp;
  if (resp_arg_is(&k->argv[1], "ID") && k->argc == 2) {
    resp_int(o, (int64_t)c->serial);
  } else if (resp_arg_is(&k->argv[1], "GETNAME") && k->argc == 2) {
    if (r->name[0])
      resp_bulk_str(o, r->name);
    else
      resp_null(o, r->proto);
  } else if (resp_arg_is(&k->argv[1], "SETNAME") && k->argc == 3) {
    const struct resp_arg *a = &k->argv[2];
    if (a->len >= sizeof r->name || memchr(a->ptr, ' ', a->len)) {
      resp_error(o, "ERR Client names cannot contain spaces, newlines or "
                    "special characters.");
      return;
    }
    memcpy(r->name, a->ptr, a->len);
    r->name[a->len] = '\0';
    resp_simple(o, "OK");
  } else if (resp_arg_is(&k->argv[1], "SETINFO") && k->argc == 4) {
    resp_simple(o, "OK"); /* library name and version: not kept */
  } else {
    int len = k->argv[1].len > 64 ? 64 : (int)k->argv[1].len;
    errorf(o,
           "ERR unknown subcommand or wrong number of arguments for '%.*s'. "
           "chorus serves CLIENT ID, GETNAME, SETNAME, SETINFO",
           len, (const char *)k->argv[1].ptr);
  }
}

static bool parse_level(const struct resp_arg *a, int32_t *out) {
  char b[32];
  if (a->len == 0 || a->len >= sizeof b)
    return false;
  memcpy(b, a->ptr, a->len);
  b[a->len] = '\0';
  return wire_level_parse(b, out) == CHORUS_OK;
}

static void level_str(int32_t v, char *b, size_t cap) {
  const char *name = wire_level_name(v);
  if (name)
    snprintf(b, cap, "%s", name);
  else
    snprintf(b, cap, "%" PRId32, v);
}

static void run_consistency(struct node_conn *c, struct rcmd *k) {
  struct node_resp *r = c->resp;
  struct resp_out *o = &k->out;
  if (k->argc == 1) {
    char rb[16], wbuf[16];
    level_str(r->r, rb, sizeof rb);
    level_str(r->w, wbuf, sizeof wbuf);
    resp_array(o, 2);
    resp_bulk_str(o, rb);
    resp_bulk_str(o, wbuf);
    return;
  }
  int32_t rv, wv;
  if (k->argc != 3 || !parse_level(&k->argv[1], &rv) ||
      !parse_level(&k->argv[2], &wv)) {
    resp_error(o, "ERR usage: CHORUS.CONSISTENCY READ WRITE, each a level "
                  "(ONE, TWO, THREE, QUORUM, ALL, LOCAL_ONE, LOCAL_QUORUM, "
                  "EACH_QUORUM, DEFAULT) or a replica count");
    return;
  }
  r->r = rv;
  r->w = wv;
  resp_simple(o, "OK");
}

/* run_now: a command that needs no request. */
/* CHORUS.KEYSPACE NAME: the keyspace of the session's later commands,
 * checked against the metadata now so that a typo is told at once (a
 * keyspace dropped later makes each request fail with its reason). */
static void run_keyspace(struct node_conn *c, struct rcmd *k) {
  const struct resp_arg *a = &k->argv[1];
  struct resp_out *o = &k->out;
  struct node_resp *r = c->resp;
  char name[sizeof r->keyspace];
  if (a->len >= sizeof name || memchr(a->ptr, '\0', a->len) != NULL) {
    resp_error(o, "ERR a keyspace name holds 1..47 letters, digits, _ or -");
    return;
  }
  memcpy(name, a->ptr, a->len);
  name[a->len] = '\0';
  if (strcmp(name, "default") == 0) {
    r->keyspace[0] = '\0';
    resp_simple(o, "OK");
    return;
  }
  const struct meta_node *mn = core_meta(c->n->core);
  const struct meta_keyspace *ks =
      mn != NULL ? meta_state_keyspace(meta_node_state(mn), name) : NULL;
  if (ks == NULL) {
    errorf(o, "ERR no keyspace named %s (chorus keyspace list)", name);
    return;
  }
  memcpy(r->keyspace, name, sizeof name);
  resp_simple(o, "OK");
}

static void run_now(struct node_conn *c, struct rcmd *k) {
  struct resp_out *o = &k->out;
  struct node_resp *r = c->resp;
  switch (k->kind) {
  case K_PING:
    if (k->argc == 1)
      resp_simple(o, "PONG");
    else if (k->argc == 2)
      resp_bulk(o, k->argv[1].ptr, k->argv[1].len);
    else
      resp_error(o, "ERR wrong number of arguments for 'ping' command");
    break;
  case K_ECHO:
    resp_bulk(o, k->argv[1].ptr, k->argv[1].len);
    break;
  case K_HELLO:
    run_hello(c, k);
    break;
  case K_AUTH:
    resp_error(o, "ERR AUTH <password> called without any password "
                  "configured for the default user: chorus has no users "
                  "yet");
    break;
  case K_SELECT:
    if (k->argv[1].len == 1 && k->argv[1].ptr[0] == '0')
      resp_simple(o, "OK");
    else
      resp_error(o, "ERR only database 0: name a keyspace with "
                    "CHORUS.KEYSPACE NAME");
    break;
  case K_KEYSPACE:
    run_keyspace(c, k);
    break;
  case K_QUIT:
    resp_simple(o, "OK");
    k->quit = true;
    r->quitting = true;
    break;
  case K_COMMAND:
    run_command(c, k);
    break;
  case K_INFO:
    run_info(c, k);
    break;
  case K_CLIENT:
    run_client(c, k);
    break;
  case K_CONFIG:
    /* redis-benchmark asks for "save" and "appendonly": nothing here is
     * a Redis setting, and an empty answer is Redis's for an unknown
     * one. CONFIG SET and the rest: refused. */
    if (resp_arg_is(&k->argv[1], "GET"))
      resp_map(o, r->proto, 0);
    else
      resp_error(o, "ERR chorus is configured by chorusd's flags, not "
                    "CONFIG: only CONFIG GET is answered (empty)");
    break;
  case K_CONSISTENCY:
    run_consistency(c, k);
    break;
  case K_NOTTL:
    resp_error(o, "ERR RESP keys are LWW registers, which have no time to "
                  "live in chorus yet (TTL exists for kv keys through the "
                  "native API only)");
    break;
  case K_MULTI:
    resp_error(o, "ERR chorus has no transactions: MULTI, EXEC, DISCARD "
                  "and WATCH are refused; each command is its own quorum "
                  "operation");
    break;
  default:
    assert(0 && "not a command answered at once");
  }
  finish(k);
}

/* ------------------------------------------------------------------------
 * Starting a command
 * ------------------------------------------------------------------------ */

static bool start_set(struct node_conn *c, struct rcmd *k) {
  for (size_t i = 3; i < k->argc; i++) {
    const struct resp_arg *a = &k->argv[i];
    if (resp_arg_is(a, "NX") || resp_arg_is(a, "XX")) {
      resp_error(&k->out, "ERR SET NX and XX need compare-and-set, which "
                          "chorus does not have yet");
      return false;
    }
    if (resp_arg_is(a, "EX") || resp_arg_is(a, "PX") ||
        resp_arg_is(a, "EXAT") || resp_arg_is(a, "PXAT")) {
      resp_error(&k->out, "ERR SET EX/PX: RESP keys are LWW registers, "
                          "which have no time to live in chorus yet");
      return false;
    }
    if (resp_arg_is(a, "GET")) {
      k->get_old = true;
    } else if (!resp_arg_is(a, "KEEPTTL")) { /* no TTL to keep: a no-op */
      resp_error(&k->out, "ERR syntax error");
      return false;
    }
  }
  (void)c;
  return true;
}

static bool parse_delta(struct rcmd *k) {
  int64_t v = 1;
  if ((k->kind == K_INCRBY || k->kind == K_DECRBY) &&
      !resp_int_parse(k->argv[2].ptr, k->argv[2].len, &v)) {
    resp_error(&k->out, "ERR value is not an integer or out of range");
    return false;
  }
  if (k->kind == K_DECR || k->kind == K_DECRBY) {
    if (v == INT64_MIN) {
      resp_error(&k->out, "ERR decrement would overflow");
      return false;
    }
    v = -v;
  }
  k->delta = v;
  return true;
}

/* start_keys: one request per key (MGET, MSET, DEL, EXISTS). */
static void start_keys(struct node_conn *c, struct rcmd *k) {
  size_t nkeys = k->kind == K_MSET ? (k->argc - 1) / 2 : k->argc - 1;
  if (k->kind == K_MGET) {
    k->subs = chorus_calloc(nkeys, sizeof *k->subs);
    if (k->subs == NULL)
      goto err_nomem;
  }
  if (k->kind == K_DEL) {
    k->kstate = chorus_calloc(nkeys, 1);
    if (k->kstate == NULL)
      goto err_nomem;
  }
  k->issuing = true;
  for (size_t i = 0; i < nkeys; i++) {
    if (k->kind == K_MSET)
      issue_lww_set(c, k, (unsigned)i, &k->argv[1 + 2 * i],
                    &k->argv[2 + 2 * i]);
    else
      issue_key(c, k, (unsigned)i, WIRE_LWW_READ, &k->argv[1 + i]);
  }
  k->issuing = false;
  multi_done(c, k);
  return;
err_nomem:
  resp_error(&k->out, "ERR out of memory");
  finish(k);
}

static void start(struct node_conn *c, struct rcmd *k, const struct rdef *d) {
  switch (d->kind) {
  case K_GET:
    issue_key(c, k, 0, WIRE_LWW_READ, &k->argv[1]);
    return;
  case K_GETSET:
    k->get_old = true;
    /* fall through */
  case K_SET:
    if (!start_set(c, k))
      break;
    if (k->get_old)
      issue_key(c, k, 0, WIRE_LWW_READ, &k->argv[1]);
    else
      issue_lww_set(c, k, 0, &k->argv[1], &k->argv[2]);
    return;
  case K_MSET:
    if (k->argc % 2 == 0) {
      resp_error(&k->out, "ERR wrong number of arguments for 'mset' command");
      break;
    }
    /* fall through */
  case K_MGET:
  case K_DEL:
  case K_EXISTS:
    start_keys(c, k);
    return;
  case K_INCR:
  case K_INCRBY:
  case K_DECR:
  case K_DECRBY: {
    if (!parse_delta(k))
      break;
    struct wire_msg m = {.type = WIRE_COUNTER_ADD};
    m.counter_add.key = wb(&k->argv[1]);
    m.counter_add.delta = k->delta;
    m.counter_add.op_id = next_op_id(c->n);
    m.counter_add.opts = opts_of(k);
    issue(c, k, 0, &m);
    return;
  }
  case K_SADD:
  case K_SREM:
  case K_SMEMBERS:
  case K_SISMEMBER:
  case K_SCARD:
    issue_key(c, k, 0, WIRE_SET_READ, &k->argv[1]);
    return;
  case K_SIBLINGS:
    issue_key(c, k, 0, WIRE_GET, &k->argv[1]);
    return;
  case K_PUT: {
    struct wire_msg m = {.type = WIRE_PUT};
    m.put.key = wb(&k->argv[1]);
    m.put.value = wb(&k->argv[2]);
    m.put.context = wb(&k->argv[3]);
    m.put.opts = opts_of(k);
    issue(c, k, 0, &m);
    return;
  }
  default:
    break;
  }
  finish(k);
}

/* ------------------------------------------------------------------------
 * The queue
 * ------------------------------------------------------------------------ */

static void rcmd_free(struct rcmd *k) {
  resp_out_free(&k->out);
  resp_out_free(&k->eout);
  if (k->subs) {
    for (size_t i = 0; i + 1 < k->argc; i++)
      resp_out_free(&k->subs[i]);
    chorus_free(k->subs);
  }
  chorus_free(k->kstate);
  chorus_free(k->ctx);
  chorus_free(k->argv);
  chorus_free(k);
}

static struct rcmd *enqueue(struct node_conn *c, size_t argc) {
  struct node_resp *r = c->resp;
  struct rcmd *k = chorus_calloc(1, sizeof *k);
  if (k == NULL)
    return NULL;
  k->id = ++r->next_id;
  k->argc = argc;
  k->proto = r->proto;
  k->started = true; /* until run() says it waits */
  resp_out_init(&k->out, RESP_MAX_REPLY);
  resp_out_init(&k->eout, 1024);
  if (r->tail)
    r->tail->next = k;
  else
    r->head = k;
  r->tail = k;
  r->queued++;
  return k;
}

/* ------------------------------------------------------------------------
 * Order on a key
 * ------------------------------------------------------------------------ */

/* key_range: the argument indexes of @k's keys: first, last, step (COMMAND's
 * key specification); first 0 for none. */
static void key_range(const struct rcmd *k, size_t *first, size_t *last,
                      size_t *step) {
  *first = *last = 0;
  *step = 1;
  if (k->def == NULL || k->def->first == 0 || k->argc < 2)
    return;
  *first = (size_t)k->def->first;
  *last = k->def->last < 0 ? k->argc - 1 : (size_t)k->def->last;
  *step = (size_t)k->def->step;
}

static bool shares_key(const struct rcmd *a, const struct rcmd *b) {
  size_t af, al, as, bf, bl, bs;
  key_range(a, &af, &al, &as);
  key_range(b, &bf, &bl, &bs);
  if (af == 0 || bf == 0)
    return false;
  for (size_t i = af; i <= al && i < a->argc; i += as)
    for (size_t j = bf; j <= bl && j < b->argc; j += bs)
      if (a->argv[i].len == b->argv[j].len &&
          memcmp(a->argv[i].ptr, b->argv[j].ptr, a->argv[i].len) == 0)
        return true;
  return false;
}

/* start_ready: starts, in arrival order, every waiting command that no
 * unfinished earlier command shares a key with. */
static void start_ready(struct node_conn *c) {
  struct node_resp *r = c->resp;
  for (struct rcmd *k = r->head; k && r->unstarted; k = k->next) {
    if (k->started)
      continue;
    bool blocked = false;
    for (struct rcmd *e = r->head; e != k && !blocked; e = e->next)
      blocked = !(e->done && e->waiting == 0) && shares_key(e, k);
    if (blocked)
      continue;
    k->started = true;
    r->unstarted--;
    start(c, k, k->def);
  }
}

/* run: a parsed command (@argv borrowed from the input buffer) joins the
 * queue with its own copy of its arguments and starts. */
static void run(struct node_conn *c, const struct resp_arg *argv, size_t argc) {
  c->n->stats.resp_commands++;
  struct rcmd *k = enqueue(c, argc);
  if (k == NULL) {
    /* No memory for even the queue entry: the reply order cannot be
     * kept, so this connection ends (the node's others go on). */
    node__conn_refuse(c);
    c->resp->quitting = true;
    return;
  }
  size_t bytes = 0;
  for (size_t i = 0; i < argc; i++)
    bytes += argv[i].len;
  k->argv = chorus_malloc(argc * sizeof *k->argv + bytes + 1);
  if (k->argv == NULL) {
    resp_error(&k->out, "ERR out of memory");
    finish(k);
    return;
  }
  uint8_t *p = (uint8_t *)(k->argv + argc);
  for (size_t i = 0; i < argc; i++) {
    if (argv[i].len)
      memcpy(p, argv[i].ptr, argv[i].len);
    k->argv[i] = (struct resp_arg){p, argv[i].len};
    p += argv[i].len;
  }
  const struct rdef *d = lookup(&k->argv[0]);
  if (d == NULL) {
    /* Redis's words, so that clients and humans recognise it. */
    char args[200] = "";
    size_t used = 0;
    for (size_t i = 1; i < argc && used < 120; i++) {
      int len = argv[i].len > 40 ? 40 : (int)argv[i].len;
      int w = snprintf(args + used, sizeof args - used, "'%.*s' ", len,
                       (const char *)argv[i].ptr);
      if (w > 0)
        used += (size_t)w;
    }
    int nlen = argv[0].len > 64 ? 64 : (int)argv[0].len;
    errorf(&k->out, "ERR unknown command '%.*s', with args beginning with: %s",
           nlen, (const char *)argv[0].ptr, args);
    finish(k);
    return;
  }
  k->kind = d->kind;
  if ((d->arity > 0 && (int64_t)argc != d->arity) ||
      (d->arity < 0 && (int64_t)argc < -d->arity)) {
    errorf(&k->out, "ERR wrong number of arguments for '%s' command", d->name);
    finish(k);
    return;
  }
  if (k->kind < K_GET) {
    /* In order with the parse: CHORUS.CONSISTENCY holds from the next
     * command on, whenever that one starts. */
    run_now(c, k);
    return;
  }
  k->def = d;
  k->r = c->resp->r;
  k->w = c->resp->w;
  memcpy(k->keyspace, c->resp->keyspace, sizeof k->keyspace);
  k->started = false;
  c->resp->unstarted++;
  start_ready(c);
}

/* protocol_error: what the client sent cannot be parsed: its answer
 * follows the ones before it, and the connection closes once it is
 * written. */
static void protocol_error(struct node_conn *c, const char *why) {
  struct node *n = c->n;
  n->stats.resp_protocol_errors++;
  node_log(NODE_LOG_INFO, NODE_MOD, "resp conn %" PRIu64 " (%s): closing: %s",
           c->serial, c->addr, why);
  c->resp->quitting = true;
  struct rcmd *k = enqueue(c, 0);
  if (k == NULL) {
    node__conn_refuse(c);
    return;
  }
  errorf(&k->out, "ERR Protocol error: %s", why);
  k->quit = true;
  finish(k);
}

/* pipeline_full: no more commands are parsed while --max-inflight are
 * queued, or as many requests are in flight (an MGET is one command and
 * up to RESP_MAX_ARGS requests): a connection holds at most that many
 * plus one command's. */
static bool pipeline_full(const struct node_conn *c) {
  uint32_t max = c->n->cfg.max_inflight;
  /* Output over --out-limit (c->paused): the answers wait for the client
   * to read them, and parsing more of what it sent would only pile up
   * more (a client that never reads held 166 MB of 60 KB answers before:
   * its buffered commands kept being parsed as each answer left the
   * queue for the output). node__resp_resume goes on once it drains. */
  return c->resp->queued >= max || c->inflight >= max || c->paused;
}

/* parse_some: commands from the input while the pipeline has room. */
static void parse_some(struct node_conn *c) {
  struct node *n = c->n;
  struct node_resp *r = c->resp;
  struct resp_arg argv[RESP_MAX_ARGS];
  const struct resp_limits lim = {RESP_MAX_ARGS, n->cfg.max_frame,
                                  RESP_MAX_INLINE, n->cfg.max_frame};
  size_t off = 0;
  while (!r->quitting && !pipeline_full(c) && off < c->in.len) {
    size_t argc, used;
    char err[RESP_ERRMSG_SIZE];
    enum resp_parse_result pr = resp_parse(c->in.data + off, c->in.len - off,
                                           &lim, argv, &argc, &used, err);
    if (pr == RESP_MORE)
      break;
    if (pr == RESP_ERROR) {
      protocol_error(c, err);
      off = c->in.len;
      break;
    }
    off += used;
    if (argc)
      run(c, argv, argc);
  }
  if (off) {
    memmove(c->in.data, c->in.data + off, c->in.len - off);
    c->in.len -= off;
  }
  /* Nothing more will be read from it, or a large command's room is
   * given back. */
  if (r->quitting || (c->in.len == 0 && c->in.cap > NODE_READ_BUF))
    node__buf_free(&c->in);
}

/* flush: done commands at the head of the queue go to the output, in
 * order. Returns how many left the queue. */
static size_t flush(struct node_conn *c) {
  struct node_resp *r = c->resp;
  size_t freed = 0;
  struct rcmd *k;
  while ((k = r->head) != NULL && k->done && k->waiting == 0) {
    r->head = k->next;
    if (r->head == NULL)
      r->tail = NULL;
    r->queued--;
    freed++;
    if (k->out.len && k->out.data[0] == '-')
      c->n->stats.resp_errors++;
    if (k->out.failed) {
      static const char e[] = "-ERR reply too large or out of memory\r\n";
      (void)node__conn_write(c, e, sizeof e - 1);
    } else if (k->out.len) {
      if (node__conn_write(c, k->out.data, k->out.len) != CHORUS_OK) {
        node_log(NODE_LOG_WARN, NODE_MOD,
                 "resp conn %" PRIu64 " (%s): out of memory for a reply: "
                 "closing",
                 c->serial, c->addr);
        r->quitting = true;
        node__conn_refuse(c);
      }
    }
    bool quit = k->quit;
    rcmd_free(k);
    if (quit) {
      node__conn_refuse(c);
      break;
    }
  }
  return freed;
}

/* service: parse, flush, again while answers free room; then hold or
 * resume reading. Only from the outermost entry point. */
static void service(struct node_conn *c) {
  struct node_resp *r = c->resp;
  if (r->depth > 0 || c->closing)
    return;
  r->depth++;
  do
    parse_some(c);
  while (flush(c) > 0 && !r->quitting && c->in.len > 0 && !c->closing);
  r->depth--;
  if (c->closing || c->close_after_flush)
    return;
  /* Held: whole commands wait for room in the pipeline (a partial one
   * needs its next bytes read). */
  bool hold = (c->in.len > 0 && pipeline_full(c)) || r->quitting;
  if (hold && !r->held) {
    r->held = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
  } else if (!hold && r->held) {
    r->held = false;
    if (!c->paused)
      node__conn_read_start(c);
  }
}

/* ------------------------------------------------------------------------
 * The connection layer's hooks
 * ------------------------------------------------------------------------ */

bool node__resp_held(const struct node_conn *c) {
  return c->resp != NULL && c->resp->held;
}

void node__resp_resume(struct node_conn *c) {
  if (c->resp != NULL)
    service(c);
}

void node__resp_on_read(struct node_conn *c, const uint8_t *data, size_t len) {
  struct node_resp *r = c->resp;
  if (r == NULL || r->quitting)
    return;
  if (node__buf_reserve(&c->in, len) != CHORUS_OK) {
    protocol_error(c, "out of memory");
  } else {
    memcpy(c->in.data + c->in.len, data, len);
    c->in.len += len;
  }
  service(c);
}

void node__resp_reply(struct node_conn *c, uint64_t request_id,
                      const struct wire_msg *m) {
  struct node_resp *r = c->resp;
  if (r == NULL)
    return;
  uint64_t id = request_id >> RESP_SUB_BITS;
  unsigned sub = (unsigned)(request_id & ((1u << RESP_SUB_BITS) - 1));
  struct rcmd *k = r->head;
  while (k && k->id != id)
    k = k->next;
  if (k == NULL || k->waiting == 0) {
    node_log(NODE_LOG_ERROR, NODE_MOD,
             "resp conn %" PRIu64 ": an answer for no command (%" PRIx64 ")",
             c->serial, request_id);
    return;
  }
  k->waiting--;
  r->depth++;
  on_answer(c, k, sub, m);
  if (k->done && k->waiting == 0 && r->unstarted)
    start_ready(c);
  r->depth--;
  service(c);
}

void node__resp_closed(struct node_conn *c) {
  struct node_resp *r = c->resp;
  if (r == NULL)
    return;
  struct rcmd *k = r->head;
  while (k) {
    struct rcmd *next = k->next;
    rcmd_free(k);
    k = next;
  }
  chorus_free(r);
  c->resp = NULL;
}

/* ------------------------------------------------------------------------
 * The listener
 * ------------------------------------------------------------------------ */

static void resp_admit(struct node *n, int fd) {
  bool full = n->nclients + n->nresp >= n->cfg.max_connections;
  struct node_conn *c = node__conn_adopt(n, NODE_CONN_RESP, fd);
  if (c == NULL)
    return;
  if (full) {
    static const char e[] = "-ERR max number of clients reached\r\n";
    n->stats.resp_refused++;
    (void)node__conn_write(c, e, sizeof e - 1);
    node__conn_refuse(c);
    return;
  }
  c->resp = chorus_calloc(1, sizeof *c->resp);
  if (c->resp == NULL) {
    node__conn_close(c);
    return;
  }
  c->resp->proto = 2;
  n->stats.resp_accepted++;
}

void node__resp_init(struct node *n) {
  node__side_init(n, &n->resp, "resp", resp_admit);
  /* COUNTER_ADD op ids: unique per add (a replica keeps one add per id),
   * so a random base per process and a counter. */
  randombytes_buf(&n->resp_op_base, sizeof n->resp_op_base);
}

int node__resp_listen(struct node *n, const struct sockaddr *sa) {
  return node__side_listen(&n->resp, sa);
}

void node__resp_stop(struct node *n) {
  node__side_stop(&n->resp);
}

void node__resp_close(struct node *n) {
  node__side_close(&n->resp);
  node__buf_free(&n->resp_scratch);
}
