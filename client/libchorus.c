/* libchorus.c: the client engine: seeds, one connection at a time with its
 * HELLO handshake, pipelined requests, timeouts, and failover between seeds.
 *
 * HOW IT WORKS
 *
 * Requests wait in c->queue until a connection is READY (WELCOME received;
 * nothing is written before it, so a refused handshake never leaves a write
 * "maybe applied"). Then every queued frame is written in one uv_write and
 * the requests move to c->inflight, where replies find them by request id.
 *
 * One uv timer per client is armed at the earliest deadline among queued
 * requests, in-flight requests and the handshake. A request's deadline is
 * its timeout (opts.timeout_ms, or the node default the config assumes)
 * plus a grace period: the node answers ETIMEDOUT itself when a quorum is
 * late, so silence past the grace means the node (or the path to it) is
 * gone, and the connection is failed like a reset one.
 *
 * A failed connection moves the client to the next seed (round robin) and
 * sorts what was in flight: reads are queued again (they are idempotent),
 * as are writes never sent; sent writes fail with maybe_applied, since the
 * node may have applied them (libchorus.h, FAILOVER). Each request is tried
 * on at most nseeds connections, and after nseeds connection failures in a
 * row every queued request fails with the last error.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <sodium.h>

#include "chorus_alloc.h"
#include "libchorus_int.h"

static void conn_fail(struct chorus__conn *k, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void msgf(char *dst, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* msgf: formats into a CHORUS_ERRMSG_SIZE buffer, truncating (messages
 * nest other messages, so the compiler cannot prove they fit). */
static void msgf(char *dst, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, CHORUS_ERRMSG_SIZE, fmt, ap);
  va_end(ap);
}
static void kick(struct chorus_client *c);
static void arm_timer(struct chorus_client *c);
static void on_timer(uv_timer_t *t);

void chorus__trace(const struct chorus_client *c, const char *fmt, ...) {
  if (c->cfg.trace == NULL)
    return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  c->cfg.trace(c->cfg.trace_ctx, line);
}

/* ------------------------------------------------------------------------
 * Lists
 * ------------------------------------------------------------------------ */

static void list_init(struct chorus__link *h) {
  h->prev = h->next = h;
}

static bool list_empty(const struct chorus__link *h) {
  return h->next == h;
}

static void list_remove(struct chorus__link *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->prev = l->next = l;
}

/* A request is in one list at a time: only an unlinked one is pushed. */
static void list_push_back(struct chorus__link *h, struct chorus__link *l) {
  assert(l->prev == l && l->next == l);
  l->prev = h->prev;
  l->next = h;
  h->prev->next = l;
  h->prev = l;
}

static void list_push_front(struct chorus__link *h, struct chorus__link *l) {
  assert(l->prev == l && l->next == l);
  l->next = h->next;
  l->prev = h;
  h->next->prev = l;
  h->next = l;
}

static struct chorus__req *req_of(struct chorus__link *l) {
  return (struct chorus__req *)(void *)((char *)l -
                                        offsetof(struct chorus__req, link));
}

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------ */

static void req_free(struct chorus__req *q) {
  chorus_free(q->frame);
  chorus_free(q->ring_body);
  chorus_free(q->trace);
  chorus_free(q);
}

static uint64_t req_budget(const struct chorus_client *c,
                           const struct chorus__req *q) {
  return (uint64_t)q->timeout_ms + c->cfg.grace_ms;
}

/* A queued request waits for connections, each bounded by the connect
 * timeout and tried at most once per seed in a row (after which it fails
 * with EUNAVAILABLE); its own deadline is only a backstop. Once written,
 * its deadline is its budget. */
static uint64_t queue_budget(const struct chorus_client *c,
                             const struct chorus__req *q) {
  return (uint64_t)c->cfg.connect_timeout_ms * (c->nseeds + 1) +
         req_budget(c, q);
}

/* finish: the one place a request ends. Unlinks it, runs its callback with
 * @res (freed afterwards unless the callback moved it), frees it. */
static void finish(struct chorus_client *c, struct chorus__req *q,
                   struct chorus_result *res) {
  assert(q->cb != NULL && q->link.next != &q->link);
  list_remove(&q->link);
  q->cb(c, res, q->arg);
  chorus_result_free(res);
  req_free(q);
}

static void finish_error(struct chorus_client *c, struct chorus__req *q,
                         int code, bool maybe_applied, const char *msg) {
  struct chorus_result res;
  memset(&res, 0, sizeof res);
  res.status = code;
  res.maybe_applied = maybe_applied;
  snprintf(res.errmsg, sizeof res.errmsg, "%s", msg);
  finish(c, q, &res);
}

/* Encodes a field-less query (RING_QUERY, STATUS_QUERY) as @q's frame. */
static int req_encode_query(struct chorus__req *q, uint8_t type, uint64_t id) {
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  m.request_id = id;
  size_t need = wire_encoded_size(&m), written = 0;
  uint8_t *f = chorus_malloc(need);
  if (f == NULL)
    return CHORUS_ENOMEM;
  int rc = wire_encode(&m, f, need, &written, NULL);
  if (rc != CHORUS_OK) {
    chorus_free(f);
    return rc;
  }
  assert(written == need);
  chorus_free(q->frame);
  q->frame = f;
  q->frame_len = written;
  q->type = type;
  q->id = id;
  return CHORUS_OK;
}

int chorus__encode(struct chorus_client *c, struct wire_msg *m, uint8_t **frame,
                   size_t *len) {
  m->request_id = (*c->ids)++;
  size_t need = wire_encoded_size(m);
  if (need > WIRE_MAX_FRAME_CLIENT + WIRE_FRAME_PREFIX)
    return chorus_errf(c->errmsg, CHORUS_ETOOBIG,
                       "%s request of %zu bytes is over the %u-byte client "
                       "frame limit",
                       wire_type_name(m->type), need, WIRE_MAX_FRAME_CLIENT);
  uint8_t *f = chorus_malloc(need);
  if (f == NULL)
    return chorus_errf(c->errmsg, CHORUS_ENOMEM, "out of memory");
  int rc = wire_encode(m, f, need, len, c->errmsg);
  if (rc != CHORUS_OK) {
    /* The encoder's message names the type already ("PUT: key: ..."). */
    chorus_free(f);
    return rc == CHORUS_ETOOBIG ? rc : CHORUS_EINVAL;
  }
  assert(*len == need); /* wire_encoded_size() is exact */
  *frame = f;
  return CHORUS_OK;
}

int chorus__submit_frame(struct chorus_client *c, uint8_t *frame, size_t len,
                         uint8_t type, uint64_t id, bool is_write, bool info,
                         uint32_t timeout_ms, chorus_cb cb, void *arg) {
  assert(frame != NULL && len > WIRE_FRAME_PREFIX && cb != NULL);
  if (c->closing) {
    chorus_free(frame);
    return chorus_errf(c->errmsg, CHORUS_ECLOSED, "client is closing");
  }
  struct chorus__req *q = chorus_calloc(1, sizeof *q);
  if (q == NULL) {
    chorus_free(frame);
    return chorus_errf(c->errmsg, CHORUS_ENOMEM, "out of memory");
  }
  list_init(&q->link);
  q->frame = frame;
  q->frame_len = len;
  q->type = type;
  q->id = id;
  q->is_write = is_write;
  q->info = info;
  q->timeout_ms = timeout_ms ? timeout_ms : c->cfg.default_timeout_ms;
  q->cb = cb;
  q->arg = arg;
  uv_update_time(c->loop);
  q->deadline = uv_now(c->loop) + queue_budget(c, q);
  list_push_back(&c->queue, &q->link);
  c->errmsg[0] = '\0';
  /* Connect or write from the loop, not from here: a failure found now
   * would run the callback inside the call (libuv's contract forbids it),
   * and requests submitted in one loop turn share one write. */
  c->kick_pending = true;
  uv_timer_start(&c->timer, on_timer, 0, 0);
  return CHORUS_OK;
}

int chorus__submit(struct chorus_client *c, struct wire_msg *m, bool is_write,
                   bool info, uint32_t timeout_ms, chorus_cb cb, void *arg) {
  if (c->closing)
    return chorus_errf(c->errmsg, CHORUS_ECLOSED, "client is closing");
  if (cb == NULL)
    return chorus_errf(c->errmsg, CHORUS_EINVAL, "no callback");
  uint8_t *frame = NULL;
  size_t len = 0;
  int rc = chorus__encode(c, m, &frame, &len);
  if (rc != CHORUS_OK)
    return rc;
  return chorus__submit_frame(c, frame, len, m->type, m->request_id, is_write,
                              info, timeout_ms, cb, arg);
}

/* ------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------ */

static void client_free(struct chorus_client *c);

/* An asynchronous client is freed when its last handle has closed after
 * chorus_client_close(); a synchronous one by chorus_client_close(). */
static void maybe_free(struct chorus_client *c) {
  if (c->closing && c->handles == 0 && !c->own_loop)
    client_free(c);
}

static void on_conn_closed(uv_handle_t *h) {
  struct chorus__conn *k = h->data;
  struct chorus_client *c = k->c;
  assert(k->closing && c->conn != k && c->handles > 0);
  c->handles--;
  if (k->kwork != NULL) {
    k->free_after_work = true; /* its key derivation still runs */
    return;
  }
  wire_splitter_fini(&k->sp);
  tls_engine_free(k->tls);
  chorus_free(k);
  maybe_free(c);
}

static void conn_close(struct chorus__conn *k) {
  if (k->closing)
    return;
  k->closing = true;
  if (k->c->conn == k)
    k->c->conn = NULL;
  if (k->gai_pending) {
    /* The resolver's callback closes the handle (with UV_ECANCELED when
     * the cancel wins, or after a result it then ignores). */
    uv_cancel((uv_req_t *)&k->gai);
    return;
  }
  uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
}

struct chorus__write {
  uv_write_t req;
  struct chorus__conn *conn;
  uint8_t data[];
};

static void on_written(uv_write_t *w, int status) {
  struct chorus__write *wr = (struct chorus__write *)(void *)w;
  struct chorus__conn *k = wr->conn;
  chorus_free(wr);
  if (status < 0 && status != UV_ECANCELED && !k->closing)
    conn_fail(k, CHORUS_ECLOSED, "write to %s failed: %s",
              k->c->seeds[k->seed].text, uv_strerror(status));
}

/* Writes @len bytes from @n buffers as one uv_write (one copy, so requests
 * may end while their bytes are still queued in libuv). On a TLS
 * connection the buffers go through the engine (once its handshake is
 * done: HELLO waits for it, send_hello) and its ciphertext is written. */
static int conn_write(struct chorus__conn *k, const uv_buf_t *bufs, size_t n) {
  size_t len = 0;
  if (k->tls != NULL) {
    for (size_t i = 0; i < n; i++)
      if (tls_engine_write(k->tls, bufs[i].base, bufs[i].len) != CHORUS_OK)
        return tls_engine_failed(k->tls);
    len = tls_engine_pending(k->tls);
    if (len == 0)
      return CHORUS_OK;
  } else {
    for (size_t i = 0; i < n; i++)
      len += bufs[i].len;
  }
  struct chorus__write *wr = chorus_malloc(sizeof *wr + len);
  if (wr == NULL)
    return CHORUS_ENOMEM;
  wr->conn = k;
  if (k->tls != NULL) {
    len = tls_engine_take(k->tls, wr->data, len);
  } else {
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
      memcpy(wr->data + off, bufs[i].base, bufs[i].len);
      off += bufs[i].len;
    }
  }
  uv_buf_t b = uv_buf_init((char *)wr->data, (unsigned)len);
  int rc = uv_write(&wr->req, (uv_stream_t *)&k->tcp, &b, 1, on_written);
  if (rc < 0) {
    chorus_free(wr);
    return CHORUS_ECLOSED;
  }
  return CHORUS_OK;
}

/* Fails every queued request with @code (nothing of theirs was sent). */
static void fail_queue(struct chorus_client *c, int code, const char *msg) {
  while (!list_empty(&c->queue))
    finish_error(c, req_of(c->queue.next), code, false, msg);
}

/* Writes every queued request to the READY connection. */
static void flush_queue(struct chorus_client *c) {
  struct chorus__conn *k = c->conn;
  if (k == NULL || k->state != CHORUS__READY || list_empty(&c->queue))
    return;
  if (c->dc != NULL && k->version < WIRE_PROTOCOL_CLIENT_DC) {
    /* Its requests carry the client's datacenter, on which a node of an
     * older release would close the connection: refused here instead. */
    char msg[CHORUS_ERRMSG_SIZE];
    snprintf(msg, sizeof msg,
             "%s speaks protocol %u; a client with a datacenter "
             "(chorus_config.dc) needs %u: upgrade the node, or leave dc "
             "unset",
             c->seeds[k->seed].text, k->version, WIRE_PROTOCOL_CLIENT_DC);
    /* From the head each time: a callback may submit or fail others. */
    for (bool again = true; again;) {
      again = false;
      for (struct chorus__link *l = c->queue.next; l != &c->queue; l = l->next)
        if (wire_has_options(req_of(l)->type)) {
          finish_error(c, req_of(l), CHORUS_EVERSION, false, msg);
          again = true;
          break;
        }
    }
    if (c->conn != k || list_empty(&c->queue))
      return;
  }
  size_t n = 0;
  for (struct chorus__link *l = c->queue.next; l != &c->queue; l = l->next)
    n++;
  uv_buf_t *bufs = chorus_malloc(n * sizeof *bufs);
  if (bufs == NULL) {
    fail_queue(c, CHORUS_ENOMEM, "out of memory; nothing sent");
    return;
  }
  size_t i = 0;
  for (struct chorus__link *l = c->queue.next; l != &c->queue; l = l->next) {
    struct chorus__req *q = req_of(l);
    assert(!q->sent && i < n);
    bufs[i++] = uv_buf_init((char *)q->frame, (unsigned)q->frame_len);
  }
  assert(i == n);
  int rc = conn_write(k, bufs, n);
  chorus_free(bufs);
  if (rc == CHORUS_ENOMEM) {
    fail_queue(c, CHORUS_ENOMEM, "out of memory; nothing sent");
    return;
  }
  if (rc != CHORUS_OK) {
    conn_fail(k, CHORUS_ECLOSED, "write to %s failed: %s",
              c->seeds[k->seed].text, chorus_strerror(rc));
    return;
  }
  while (!list_empty(&c->queue)) {
    struct chorus__req *q = req_of(c->queue.next);
    list_remove(&q->link);
    q->sent = true;
    q->tries++;
    q->deadline = uv_now(c->loop) + req_budget(c, q);
    list_push_back(&c->inflight, &q->link);
  }
}

static struct chorus__req *find_inflight(struct chorus_client *c, uint64_t id) {
  for (struct chorus__link *l = c->inflight.next; l != &c->inflight;
       l = l->next)
    if (req_of(l)->id == id)
      return req_of(l);
  return NULL;
}

/* A reply for @q arrived on @k. */
static void on_reply(struct chorus__conn *k, struct chorus__req *q,
                     const struct wire_msg *m, const uint8_t *body,
                     size_t len) {
  struct chorus_client *c = k->c;
  assert(q->sent && q->id == m->request_id && k->state == CHORUS__READY);
  struct chorus_result res;
  memset(&res, 0, sizeof res);
  snprintf(res.server, sizeof res.server, "%s", c->seeds[k->seed].text);
  /* RING_REPLY2 and STATUS_REPLY2 answer a connection of version 3 (the
   * same lists with names); the join reads either. */
  bool ring_reply = m->type == WIRE_RING_REPLY || m->type == WIRE_RING_REPLY2;
  bool status_reply =
      m->type == WIRE_STATUS_REPLY || m->type == WIRE_STATUS_REPLY2;
  if (q->info && q->type == WIRE_RING_QUERY && ring_reply) {
    /* Stage 2: keep the ring reply's bytes, ask for the status. */
    q->ring_body = chorus_memdup(body, len);
    q->ring_len = len;
    uint64_t id = (*c->ids)++;
    int rc = q->ring_body ? req_encode_query(q, WIRE_STATUS_QUERY, id)
                          : CHORUS_ENOMEM;
    uv_buf_t b = uv_buf_init((char *)q->frame, (unsigned)q->frame_len);
    if (rc == CHORUS_OK)
      rc = conn_write(k, &b, 1);
    if (rc != CHORUS_OK) {
      chorus__result_error(&res, rc, "status query: %s", chorus_strerror(rc));
      finish(c, q, &res);
    }
    return;
  }
  if (q->info && q->type == WIRE_STATUS_QUERY && status_reply) {
    struct wire_msg ring;
    struct wire_limits lim = CHORUS__REPLY_LIMITS;
    char err[CHORUS_ERRMSG_SIZE];
    int rc = wire_decode(q->ring_body, q->ring_len, &lim, &ring, err);
    if (rc == CHORUS_OK)
      chorus__result_info(&res, &ring, m);
    else
      chorus__result_error(&res, rc, "ring reply: %s", err);
    wire_msg_free(&ring);
  } else {
    chorus__result_from_reply(&res, q->type, m);
    if (res.status != CHORUS_OK && m->type == WIRE_ERROR) {
      char text[CHORUS_ERRMSG_SIZE];
      snprintf(text, sizeof text, "%s", res.errmsg);
      msgf(res.errmsg, "%s: %s", res.server, text);
      /* The coordinator answers ETIMEDOUT when a write's quorum was late
       * (repl.h, THE WRITE PATH, step 4), ECANCELED when it shut down
       * mid-write: some replicas may hold it. */
      res.maybe_applied = q->is_write && chorus_maybe_applied(res.status);
      res.from_node = true;
    }
    chorus__result_trace(&res, q->trace_node, q->trace, q->trace_len);
  }
  finish(c, q, &res);
}

/* ------------------------------------------------------------------------
 * The login (docs/PROTOCOL.md, Login; client/auth/auth_login.h)
 * ------------------------------------------------------------------------ */

/* THE KEYS OFF THE LOOP. Argon2id takes a tenth of a second and 64 MiB
 * at the default costs: run on the loop, a process with many clients on
 * one loop (a pool, chorus-bench) would stall every connection while each
 * client derives, and their handshake deadlines would pass. So the
 * derivation runs on libuv's thread pool (uv_queue_work) with its own copy
 * of the password; meanwhile the connection's handshake deadline is held
 * (it times the network, not this CPU work) and restarts when the keys
 * are there. The keys are kept in the client's login (shared with its
 * routing children) and the password wiped: every later connection
 * answers at once. A connection closed meanwhile is freed when its work
 * returns. */
struct chorus__kwork {
  uv_work_t req;
  struct chorus__conn *k;
  char *password;
  size_t password_len;
  struct auth_kdf kdf;
  uint8_t client_key[AUTH_KEY_BYTES], server_key[AUTH_KEY_BYTES];
  int rc;
  char why[CHORUS_ERRMSG_SIZE];
};

static void send_proof(struct chorus__conn *k) {
  struct chorus_client *c = k->c;
  uint8_t proof[AUTH_KEY_BYTES];
  auth_login_answer(c->login->user, k->cnonce, k->snonce, c->cluster,
                    c->login->client_key, c->login->server_key, proof,
                    k->want_sig);
  struct wire_msg p = {.type = WIRE_AUTH_PROOF, .request_id = 0};
  p.auth_key.key = (struct wire_bytes){proof, sizeof proof};
  uint8_t frame[128];
  size_t n = 0;
  char why[CHORUS_ERRMSG_SIZE] = "";
  int rc = wire_encode(&p, frame, sizeof frame, &n, why);
  if (rc == CHORUS_OK) {
    uv_buf_t b = uv_buf_init((char *)frame, (unsigned)n);
    rc = conn_write(k, &b, 1);
  }
  sodium_memzero(proof, sizeof proof);
  if (rc != CHORUS_OK) {
    conn_fail(k, rc, "login to %s: %s", c->seeds[k->seed].text,
              chorus_strerror(rc));
    return;
  }
  k->proof_sent = true;
}

static void kwork_run(uv_work_t *req) {
  struct chorus__kwork *w = req->data;
  w->rc = auth_client_keys(w->password, w->password_len, &w->kdf, w->client_key,
                           w->server_key, w->why);
}

static void kwork_done(uv_work_t *req, int status) {
  struct chorus__kwork *w = req->data;
  struct chorus__conn *k = w->k;
  struct chorus_client *c = k->c;
  k->kwork = NULL;
  bool got = status >= 0 && w->rc == CHORUS_OK;
  if (got && !c->closing) {
    /* Kept even when this connection has closed meanwhile (the node's
     * handshake deadline, a failover): the next one answers at once. */
    struct chorus__login *l = c->login;
    l->kdf = w->kdf;
    memcpy(l->client_key, w->client_key, sizeof l->client_key);
    memcpy(l->server_key, w->server_key, sizeof l->server_key);
    l->have_keys = true;
    if (l->password != NULL) {
      sodium_memzero(l->password, l->password_len);
      chorus_free(l->password);
      l->password = NULL;
    }
  }
  if (k->free_after_work) {
    wire_splitter_fini(&k->sp);
    tls_engine_free(k->tls);
    chorus_free(k);
  } else if (!k->closing && !got) {
    conn_fail(k, status < 0 ? CHORUS_ECANCELED : w->rc, "login to %s: %s",
              c->seeds[k->seed].text,
              status < 0 ? "key derivation canceled" : w->why);
  } else if (!k->closing) {
    uv_update_time(c->loop);
    k->deadline = uv_now(c->loop) + c->cfg.connect_timeout_ms;
    send_proof(k);
    arm_timer(c);
  }
  sodium_memzero(w->password, w->password_len);
  chorus_free(w->password);
  sodium_memzero(w, sizeof *w);
  chorus_free(w);
  c->handles--;
  maybe_free(c);
}

/* login_derive: the keys of the password under @kdf, on the thread pool;
 * the proof goes when they are there (kwork_done). */
static int login_derive(struct chorus__conn *k, const struct auth_kdf *kdf,
                        char *why) {
  struct chorus_client *c = k->c;
  struct chorus__login *l = c->login;
  if (l->password == NULL) {
    snprintf(why, CHORUS_ERRMSG_SIZE,
             "user %s's password changed since this client derived its "
             "keys: open a new client",
             l->user);
    return CHORUS_EAUTH;
  }
  struct chorus__kwork *w = chorus_calloc(1, sizeof *w);
  if (w == NULL ||
      (w->password = chorus_memdup(l->password, l->password_len)) == NULL) {
    chorus_free(w);
    snprintf(why, CHORUS_ERRMSG_SIZE, "out of memory");
    return CHORUS_ENOMEM;
  }
  w->password_len = l->password_len;
  w->kdf = *kdf;
  w->k = k;
  w->req.data = w;
  if (uv_queue_work(c->loop, &w->req, kwork_run, kwork_done) != 0) {
    sodium_memzero(w->password, w->password_len);
    chorus_free(w->password);
    chorus_free(w);
    snprintf(why, CHORUS_ERRMSG_SIZE, "cannot queue the key derivation");
    return CHORUS_EINTERNAL;
  }
  k->kwork = w;
  c->handles++; /* the client outlives the work */
  return CHORUS_OK;
}

static void login_step(struct chorus__conn *k, const struct wire_msg *m) {
  struct chorus_client *c = k->c;
  const char *node = c->seeds[k->seed].text;
  if (c->login == NULL ||
      (m->type == WIRE_AUTH_CHALLENGE && (k->proof_sent || k->kwork)) ||
      (m->type == WIRE_AUTH_OK && !k->proof_sent)) {
    conn_fail(k, CHORUS_EMALFORMED, "%s sent %s out of turn", node,
              wire_type_name(m->type));
    return;
  }
  if (m->type == WIRE_AUTH_OK) {
    if (!auth_equal(m->auth_key.key.ptr, k->want_sig)) {
      conn_fail(k, CHORUS_EAUTH,
                "%s could not prove it holds user %s's verifier (a node "
                "of another cluster, or an impostor)",
                node, c->login->user);
      return;
    }
    k->node_proved = true;
    return;
  }
  const struct wire_auth_challenge *ch = &m->auth_challenge;
  struct auth_kdf kdf = {.ops = ch->ops, .mem_kib = ch->mem_kib};
  memcpy(kdf.salt, ch->salt.ptr, sizeof kdf.salt);
  char why[CHORUS_ERRMSG_SIZE] = "";
  int rc = auth_kdf_check(&kdf, why);
  if (rc != CHORUS_OK) {
    conn_fail(k, CHORUS_EAUTH, "%s asked for a login we refuse: %s", node, why);
    return;
  }
  memcpy(k->snonce, ch->nonce.ptr, sizeof k->snonce);
  const struct chorus__login *l = c->login;
  if (l->have_keys && memcmp(&l->kdf, &kdf, sizeof kdf) == 0) {
    send_proof(k);
    return;
  }
  rc = login_derive(k, &kdf, why);
  if (rc != CHORUS_OK)
    conn_fail(k, rc, "login to %s: %s", node, why);
}

/* Handles one frame body from @k. */
static void on_frame(struct chorus__conn *k, const uint8_t *body, size_t len) {
  struct chorus_client *c = k->c;
  struct wire_msg m;
  struct wire_limits lim = CHORUS__REPLY_LIMITS;
  char err[CHORUS_ERRMSG_SIZE];
  int rc = wire_decode(body, len, &lim, &m, err);
  if (rc == CHORUS_ENOTSUP) {
    wire_msg_free(&m);
    return; /* a newer node's message type: nothing of ours to match */
  }
  if (rc == CHORUS_ENOMEM) {
    /* Our memory, not the node's fault; the reply is lost all the same,
     * and so is the stream position. */
    conn_fail(k, CHORUS_ENOMEM, "out of memory decoding a reply from %s",
              c->seeds[k->seed].text);
    return;
  }
  if (rc != CHORUS_OK) {
    wire_msg_free(&m);
    conn_fail(k, CHORUS_EMALFORMED, "%s sent a bad frame: %s",
              c->seeds[k->seed].text, err);
    return;
  }
  if (k->state == CHORUS__HELLO &&
      (m.type == WIRE_AUTH_CHALLENGE || m.type == WIRE_AUTH_OK)) {
    login_step(k, &m);
    wire_msg_free(&m);
    return;
  }
  if (k->state == CHORUS__HELLO) {
    if (m.type == WIRE_WELCOME && c->login != NULL && !k->node_proved) {
      /* A node that skips the login could be anyone's. */
      conn_fail(k, CHORUS_EAUTH,
                "%s welcomed us without the login we asked for (a node "
                "that does not hold user %s's verifier)",
                c->seeds[k->seed].text, c->login->user);
      wire_msg_free(&m);
      return;
    }
    if (m.type == WIRE_WELCOME) {
      uint64_t rtt_us = (uv_hrtime() - k->hello_ns) / 1000;
      c->hello_rtt_us = rtt_us > UINT32_MAX ? UINT32_MAX : (uint32_t)rtt_us;
      c->handshakes++;
      chorus__trace(c, "connected to %s (node %016" PRIx64 ", %" PRIu32 " us)",
                    c->seeds[k->seed].text, m.welcome.node_id, c->hello_rtt_us);
      k->state = CHORUS__READY;
      c->conn_failures = 0;
      wire_msg_free(&m);
      flush_queue(c);
      arm_timer(c);
      return;
    }
    if (m.type == WIRE_ERROR && m.error.code == CHORUS_EVERSION &&
        k->version > WIRE_PROTOCOL_MIN) {
      /* An older node: ask it again at once in the version below. Nothing
       * was sent on this connection but HELLO. */
      c->seeds[k->seed].version = k->version - 1;
      chorus__trace(c, "%s speaks an older protocol: HELLO again in version %u",
                    c->seeds[k->seed].text, c->seeds[k->seed].version);
      wire_msg_free(&m);
      conn_close(k);
      kick(c);
      return;
    }
    if (m.type == WIRE_ERROR) {
      int code = m.error.code < 0 ? m.error.code : CHORUS_EINTERNAL;
      conn_fail(k, code, "%s refused the handshake: %.*s",
                c->seeds[k->seed].text, (int)m.error.text.len,
                (const char *)m.error.text.ptr);
    } else {
      conn_fail(k, CHORUS_EMALFORMED, "%s answered HELLO with %s",
                c->seeds[k->seed].text, wire_type_name(m.type));
    }
    wire_msg_free(&m);
    return;
  }
  struct chorus__req *q = find_inflight(c, m.request_id);
  if (q != NULL && m.type == WIRE_TRACE) {
    /* A traced request's timeline: its reply follows (REQUEST TRACES). */
    uint8_t *t = m.trace.events.len > 0
                     ? chorus_memdup(m.trace.events.ptr, m.trace.events.len)
                     : NULL;
    chorus_free(q->trace);
    q->trace = t;
    q->trace_len = t != NULL ? m.trace.events.len : 0;
    q->trace_node = m.trace.node_id;
  } else if (q != NULL) {
    on_reply(k, q, &m, body, len);
  }
  /* else: a reply to a request that already ended (timed out, canceled). */
  wire_msg_free(&m);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct chorus__conn *k = h->data;
  buf->base = (char *)k->rbuf;
  buf->len = sizeof k->rbuf;
}

/* conn_input: @len bytes of the protocol (plaintext) from the node. */
static void conn_input(struct chorus__conn *k, const uint8_t *p, size_t left) {
  struct chorus_client *c = k->c;
  while (left > 0 && !k->closing) {
    size_t used = 0;
    struct wire_bytes frame;
    int rc = wire_splitter_push(&k->sp, p, left, &used, &frame);
    if (rc < 0) {
      conn_fail(k, rc, "%s: %s", c->seeds[k->seed].text, k->sp.errmsg);
      return;
    }
    p += used;
    left -= used;
    if (rc == 1)
      on_frame(k, frame.ptr, frame.len);
  }
}

static void send_hello(struct chorus__conn *k);

/* conn_tls_input: ciphertext from the node through the engine: the
 * handshake (HELLO follows it at once), then the protocol. */
static void conn_tls_input(struct chorus__conn *k, const uint8_t *p,
                           size_t len) {
  struct chorus_client *c = k->c;
  bool was = tls_engine_established(k->tls);
  int rc = tls_engine_feed(k->tls, p, len);
  while (rc == CHORUS_OK && !k->closing) {
    size_t got = 0;
    rc = tls_engine_read(k->tls, c->tls_plain, sizeof c->tls_plain, &got);
    if (rc != CHORUS_OK || got == 0)
      break;
    conn_input(k, c->tls_plain, got);
  }
  if (k->closing)
    return;
  if (rc != CHORUS_OK) {
    conn_fail(k, rc, "%s: %s", c->seeds[k->seed].text,
              tls_engine_errmsg(k->tls));
    return;
  }
  if (!was && tls_engine_established(k->tls)) {
    chorus__trace(c, "%s: %s established, certificate verified",
                  c->seeds[k->seed].text, tls_engine_version(k->tls));
    send_hello(k); /* flushes the handshake's last flight with it */
    return;
  }
  if (tls_engine_pending(k->tls) && (rc = conn_write(k, NULL, 0)) != CHORUS_OK)
    conn_fail(k, rc, "TLS to %s: %s", c->seeds[k->seed].text,
              chorus_strerror(rc));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct chorus__conn *k = s->data;
  struct chorus_client *c = k->c;
  if (k->closing)
    return;
  if (nread < 0) {
    if (k->tls != NULL && !tls_engine_established(k->tls))
      conn_fail(k, CHORUS_ECLOSED,
                "%s closed the connection during the TLS handshake (does "
                "the node have --client-tls optional or required?)",
                c->seeds[k->seed].text);
    else if (nread == UV_EOF)
      conn_fail(k, CHORUS_ECLOSED, "%s closed the connection",
                c->seeds[k->seed].text);
    else
      conn_fail(k, CHORUS_ECLOSED, "read from %s failed: %s",
                c->seeds[k->seed].text, uv_strerror((int)nread));
    return;
  }
  if (k->tls != NULL)
    conn_tls_input(k, (const uint8_t *)buf->base, (size_t)nread);
  else
    conn_input(k, (const uint8_t *)buf->base, (size_t)nread);
  if (!k->closing)
    arm_timer(c);
}

static void send_hello(struct chorus__conn *k) {
  struct chorus_client *c = k->c;
  assert(k->state == CHORUS__CONNECTING && !k->closing);
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_HELLO;
  m.request_id = 0;
  k->version = c->seeds[k->seed].version ? c->seeds[k->seed].version
                                         : WIRE_PROTOCOL_VERSION;
  m.hello.version = k->version;
  m.hello.cluster.ptr = (const uint8_t *)c->cluster;
  m.hello.cluster.len = strlen(c->cluster);
  m.hello.role = WIRE_ROLE_CLIENT;
  m.hello.credentials.ptr = c->credentials;
  m.hello.credentials.len = c->cfg.credentials_len;
  uint8_t cred[AUTH_HELLO_MAX];
  if (c->login != NULL) {
    /* A login: [our nonce][user] (auth_login.h); the node answers
     * AUTH_CHALLENGE. */
    randombytes_buf(k->cnonce, sizeof k->cnonce);
    k->proof_sent = k->node_proved = false;
    m.hello.credentials.ptr = cred;
    m.hello.credentials.len =
        auth_hello_encode(c->login->user, k->cnonce, cred);
  }
  uint8_t frame[WIRE_MAX_CLUSTER + WIRE_MAX_CREDENTIALS + 64];
  size_t n = 0;
  char err[CHORUS_ERRMSG_SIZE];
  int rc = wire_encode(&m, frame, sizeof frame, &n, err);
  if (rc == CHORUS_OK) {
    uv_buf_t b = uv_buf_init((char *)frame, (unsigned)n);
    k->hello_ns = uv_hrtime();
    rc = conn_write(k, &b, 1);
  }
  if (rc != CHORUS_OK) {
    conn_fail(k, rc, "HELLO to %s: %s", c->seeds[k->seed].text,
              chorus_strerror(rc));
    return;
  }
  k->state = CHORUS__HELLO;
}

/* c_tls_start: a TLS connection sends its ClientHello (HELLO waits for
 * the handshake: false); a plaintext one may send HELLO (true). */
static bool c_tls_start(struct chorus__conn *k) {
  struct chorus_client *c = k->c;
  if (c->tls == NULL)
    return true;
  char err[CHORUS_ERRMSG_SIZE];
  int rc = tls_engine_new(c->tls, c->seeds[k->seed].host, &k->tls, err);
  if (rc == CHORUS_OK)
    rc = conn_write(k, NULL, 0);
  if (rc != CHORUS_OK)
    conn_fail(k, rc, "TLS to %s: %s", c->seeds[k->seed].text,
              k->tls ? tls_engine_errmsg(k->tls) : err);
  return false;
}

static void on_connected(uv_connect_t *r, int status) {
  struct chorus__conn *k = r->data;
  if (k->closing)
    return;
  if (status < 0) {
    conn_fail(k, CHORUS_EUNAVAILABLE, "connect to %s: %s",
              k->c->seeds[k->seed].text, uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(&k->tcp, 1);
  int rc = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
  if (rc < 0) {
    conn_fail(k, CHORUS_EUNAVAILABLE, "read from %s: %s",
              k->c->seeds[k->seed].text, uv_strerror(rc));
    return;
  }
  if (c_tls_start(k))
    send_hello(k);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai) {
  struct chorus__conn *k = g->data;
  struct chorus_client *c = k->c;
  k->gai_pending = false;
  if (k->closing) {
    uv_freeaddrinfo(ai);
    uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
    return;
  }
  if (status < 0 || ai == NULL) {
    uv_freeaddrinfo(ai);
    conn_fail(k, CHORUS_EUNAVAILABLE, "resolve %s: %s", c->seeds[k->seed].text,
              status < 0 ? uv_strerror(status) : "no address");
    return;
  }
  /* Prefer IPv4: "localhost" often lists ::1 first while a node listens
   * on 127.0.0.1 only. */
  assert(k->state == CHORUS__RESOLVING);
  struct addrinfo *pick = ai;
  for (struct addrinfo *a = ai; a != NULL; a = a->ai_next)
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  k->state = CHORUS__CONNECTING;
  k->connect.data = k;
  int rc = uv_tcp_connect(&k->connect, &k->tcp, pick->ai_addr, on_connected);
  uv_freeaddrinfo(ai);
  if (rc < 0)
    conn_fail(k, CHORUS_EUNAVAILABLE, "connect to %s: %s",
              c->seeds[k->seed].text, uv_strerror(rc));
}

static void conn_open(struct chorus_client *c) {
  assert(c->conn == NULL && !c->closing && c->cur < c->nseeds);
  struct chorus__conn *k = chorus_calloc(1, sizeof *k);
  if (k == NULL) {
    fail_queue(c, CHORUS_ENOMEM, "out of memory; nothing sent");
    return;
  }
  k->c = c;
  k->seed = c->cur;
  k->state = CHORUS__RESOLVING;
  wire_splitter_init(&k->sp, CHORUS__REPLY_LIMITS.max_frame);
  int rc = uv_tcp_init(c->loop, &k->tcp);
  if (rc < 0) {
    wire_splitter_fini(&k->sp);
    chorus_free(k);
    fail_queue(c, CHORUS_EIO, "cannot create a socket; nothing sent");
    return;
  }
  k->tcp.data = k;
  c->handles++;
  c->conn = k;
  k->deadline = uv_now(c->loop) + c->cfg.connect_timeout_ms;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  k->gai.data = k;
  k->gai_pending = true;
  rc = uv_getaddrinfo(c->loop, &k->gai, on_resolved, c->seeds[k->seed].host,
                      c->seeds[k->seed].port, &hints);
  if (rc < 0) {
    k->gai_pending = false;
    conn_fail(k, CHORUS_EUNAVAILABLE, "resolve %s: %s", c->seeds[k->seed].text,
              uv_strerror(rc));
  }
}

/* conn_fail: @k is unusable. Records why, closes it, moves to the next
 * seed, and sorts its requests (see HOW IT WORKS). @code is what a sent
 * write fails with. */
static void conn_fail(struct chorus__conn *k, int code, const char *fmt, ...) {
  struct chorus_client *c = k->c;
  if (k->closing)
    return;
  assert(c->nseeds > 0);
  char msg[CHORUS_ERRMSG_SIZE];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* A certificate refused, either way, is the answer too. */
  bool handshake_refused =
      code == CHORUS_EAUTH ||
      (k->state == CHORUS__HELLO && code != CHORUS_ECLOSED &&
       code != CHORUS_ETIMEDOUT && code != CHORUS_EMALFORMED);
  bool was_current = c->conn == k;
  conn_close(k);
  if (!was_current)
    return;
  c->last_err = handshake_refused ? code : CHORUS_EUNAVAILABLE;
  snprintf(c->last_msg, sizeof c->last_msg, "%s", msg);
  c->conn_failures++;
  c->cur = (c->cur + 1) % c->nseeds;

  /* What was in flight: reads (and, never, unsent writes) go back to the
   * front of the queue in their order; sent writes fail. */
  struct chorus__link failed;
  list_init(&failed);
  uint64_t now = uv_now(c->loop);
  unsigned retried = 0, writes_failed = 0, reads_failed = 0;
  while (!list_empty(&c->inflight)) {
    struct chorus__req *q = req_of(c->inflight.prev);
    list_remove(&q->link);
    if (q->is_write && q->sent) {
      list_push_front(&failed, &q->link);
      continue;
    }
    if (q->tries >= c->nseeds || code == CHORUS_ENOMEM) {
      list_push_front(&failed, &q->link);
      continue;
    }
    if (q->info && q->type != WIRE_RING_QUERY) {
      chorus_free(q->ring_body);
      q->ring_body = NULL;
      if (req_encode_query(q, WIRE_RING_QUERY, q->id) != CHORUS_OK) {
        list_push_front(&failed, &q->link);
        continue;
      }
    }
    q->sent = false;
    q->deadline = now + queue_budget(c, q);
    list_push_front(&c->queue, &q->link);
    retried++;
  }
  /* Nothing stays in flight on a connection that is gone. */
  assert(list_empty(&c->inflight));
  for (struct chorus__link *l = failed.next; l != &failed; l = l->next)
    req_of(l)->is_write ? writes_failed++ : reads_failed++;
  chorus__trace(c,
                "%s: %u read(s) retried, %u write(s) failed maybe-applied, "
                "%u read(s) out of tries; next seed %s",
                msg, retried, writes_failed, reads_failed,
                c->seeds[c->cur].text);
  while (!list_empty(&failed)) {
    struct chorus__req *q = req_of(failed.next);
    char text[CHORUS_ERRMSG_SIZE];
    if (q->is_write) {
      msgf(text, "%s; the write was sent and may have been applied", msg);
      finish_error(c, q,
                   code == CHORUS_ETIMEDOUT || code == CHORUS_ENOMEM
                       ? code
                       : CHORUS_ECLOSED,
                   true, text);
    } else if (code == CHORUS_ENOMEM) {
      finish_error(c, q, code, false, msg); /* ours, not the node's */
    } else {
      msgf(text, "tried %u node(s), last: %s", q->tries, msg);
      finish_error(c, q, CHORUS_EUNAVAILABLE, false, text);
    }
  }
  if (c->conn_failures >= c->nseeds) {
    /* Every seed failed in a row: give up on what waits. */
    c->conn_failures = 0;
    if (!list_empty(&c->queue))
      chorus__trace(c, "every seed failed in a row: queued requests fail");
    while (!list_empty(&c->queue)) {
      struct chorus__req *q = req_of(c->queue.next);
      char text[CHORUS_ERRMSG_SIZE];
      msgf(text, "no seed reachable (%zu tried), last: %s", c->nseeds,
           c->last_msg);
      finish_error(c, q, c->last_err, false, text);
    }
  }
  kick(c);
}

/* ------------------------------------------------------------------------
 * Timer and kick
 * ------------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t) {
  struct chorus_client *c = t->data;
  c->kick_pending = false;
  kick(c); /* new requests wait for this turn (chorus__submit_frame) */
  uint64_t now = uv_now(c->loop);
  struct chorus__conn *k = c->conn;
  if (k != NULL && k->state != CHORUS__READY && k->kwork == NULL &&
      now >= k->deadline) {
    conn_fail(k, CHORUS_ETIMEDOUT, "%s did not complete the handshake in %u ms",
              c->seeds[k->seed].text, c->cfg.connect_timeout_ms);
  }
  /* An in-flight request past its deadline: the node did not even answer
   * ETIMEDOUT, so the connection is dead to us. */
  k = c->conn;
  if (k != NULL) {
    for (struct chorus__link *l = c->inflight.next; l != &c->inflight;
         l = l->next) {
      struct chorus__req *q = req_of(l);
      if (now >= q->deadline) {
        conn_fail(k, CHORUS_ETIMEDOUT, "no reply from %s within %" PRIu64 " ms",
                  c->seeds[k->seed].text, req_budget(c, q));
        break;
      }
    }
  }
  /* Queued requests past their deadline never got a connection. */
  for (struct chorus__link *l = c->queue.next; l != &c->queue;) {
    struct chorus__req *q = req_of(l);
    l = l->next;
    if (now >= q->deadline) {
      char text[CHORUS_ERRMSG_SIZE];
      msgf(text, "no connection within %" PRIu64 " ms (last: %s); nothing sent",
           req_budget(c, q), c->last_msg[0] ? c->last_msg : "connecting");
      finish_error(c, q, CHORUS_ETIMEDOUT, false, text);
      l = c->queue.next; /* the callback may have changed the queue */
    }
  }
  if (!c->closing)
    arm_timer(c);
}

static void arm_timer(struct chorus_client *c) {
  if (c->closing)
    return;
  if (c->kick_pending) {
    uv_timer_start(&c->timer, on_timer, 0, 0); /* keep the next turn */
    return;
  }
  uint64_t best = UINT64_MAX;
  for (struct chorus__link *l = c->queue.next; l != &c->queue; l = l->next)
    if (req_of(l)->deadline < best)
      best = req_of(l)->deadline;
  for (struct chorus__link *l = c->inflight.next; l != &c->inflight;
       l = l->next)
    if (req_of(l)->deadline < best)
      best = req_of(l)->deadline;
  if (c->conn != NULL && c->conn->state != CHORUS__READY &&
      c->conn->kwork == NULL && c->conn->deadline < best)
    best = c->conn->deadline; /* held while the keys are derived */
  if (best == UINT64_MAX) {
    uv_timer_stop(&c->timer);
    return;
  }
  uint64_t now = uv_now(c->loop);
  uv_timer_start(&c->timer, on_timer, best > now ? best - now : 0, 0);
}

static void kick(struct chorus_client *c) {
  if (c->closing)
    return;
  if (!list_empty(&c->queue)) {
    if (c->conn == NULL)
      conn_open(c);
    else
      flush_queue(c);
  }
  arm_timer(c);
}

void chorus__connect(struct chorus_client *c) {
  if (c->closing || c->conn != NULL)
    return;
  conn_open(c);
  arm_timer(c); /* the handshake's deadline */
}

/* ------------------------------------------------------------------------
 * Open and close
 * ------------------------------------------------------------------------ */

void chorus_config_init(struct chorus_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->cluster = CHORUS__DEFAULT_CLUSTER;
  cfg->connect_timeout_ms = 1000;
  cfg->default_timeout_ms = 2000;
  cfg->ring_refresh_ms = 30000;
  cfg->grace_ms = 1000;
}

static void free_seeds(struct chorus_client *c) {
  for (size_t i = 0; i < c->nseeds; i++) {
    chorus_free(c->seeds[i].host);
    chorus_free(c->seeds[i].port);
    chorus_free(c->seeds[i].text);
  }
  chorus_free(c->seeds);
  c->seeds = NULL;
  c->nseeds = 0;
}

/* Parses one "host:port" or "[v6]:port" of @len bytes. */
static int parse_seed(const char *s, size_t len, struct chorus__seed *out,
                      char *errmsg) {
  const char *colon = NULL;
  const char *host = s;
  size_t host_len;
  if (len > 0 && s[0] == '[') {
    const char *close = memchr(s, ']', len);
    if (close == NULL || (size_t)(close - s) + 1 >= len || close[1] != ':')
      return chorus_errf(errmsg, CHORUS_EINVAL, "seed \"%.*s\": want [v6]:port",
                         (int)len, s);
    host = s + 1;
    host_len = (size_t)(close - host);
    colon = close + 1;
  } else {
    for (size_t i = len; i > 0; i--)
      if (s[i - 1] == ':') {
        colon = s + i - 1;
        break;
      }
    if (colon == NULL)
      return chorus_errf(errmsg, CHORUS_EINVAL, "seed \"%.*s\": want host:port",
                         (int)len, s);
    host_len = (size_t)(colon - s);
  }
  size_t port_len = len - (size_t)(colon + 1 - s);
  if (host_len == 0 || port_len == 0 || port_len > 5)
    return chorus_errf(errmsg, CHORUS_EINVAL, "seed \"%.*s\": want host:port",
                       (int)len, s);
  unsigned port = 0;
  for (size_t i = 0; i < port_len; i++) {
    char ch = colon[1 + i];
    if (ch < '0' || ch > '9')
      return chorus_errf(errmsg, CHORUS_EINVAL, "seed \"%.*s\": bad port",
                         (int)len, s);
    port = port * 10 + (unsigned)(ch - '0');
  }
  if (port == 0 || port > 65535)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "seed \"%.*s\": port must be 1..65535", (int)len, s);
  out->host = chorus_malloc(host_len + 1);
  out->port = chorus_malloc(port_len + 1);
  out->text = chorus_malloc(len + 1);
  if (!out->host || !out->port || !out->text) {
    chorus_free(out->host);
    chorus_free(out->port);
    chorus_free(out->text);
    memset(out, 0, sizeof *out);
    return chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
  }
  memcpy(out->host, host, host_len);
  out->host[host_len] = '\0';
  memcpy(out->port, colon + 1, port_len);
  out->port[port_len] = '\0';
  memcpy(out->text, s, len);
  out->text[len] = '\0';
  return CHORUS_OK;
}

static int parse_seeds(struct chorus_client *c, const char *seeds,
                       char *errmsg) {
  size_t n = 1;
  for (const char *p = seeds; *p; p++)
    n += *p == ',';
  c->seeds = chorus_calloc(n, sizeof *c->seeds);
  if (c->seeds == NULL)
    return chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
  const char *p = seeds;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    while (len > 0 && (*p == ' ' || *p == '\t')) {
      p++;
      len--;
    }
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
      len--;
    if (len > 0) {
      int rc = parse_seed(p, len, &c->seeds[c->nseeds], errmsg);
      if (rc != CHORUS_OK)
        return rc;
      c->nseeds++;
    }
    if (end == NULL)
      break;
    p = end + 1;
  }
  if (c->nseeds == 0)
    return chorus_errf(errmsg, CHORUS_EINVAL, "no seed given");
  return CHORUS_OK;
}

static void client_free(struct chorus_client *c) {
  free_seeds(c);
  chorus_free(c->cluster);
  chorus_free(c->dc);
  chorus_free(c->credentials);
  if (c->login != NULL && c->login_owned) {
    if (c->login->password != NULL) {
      sodium_memzero(c->login->password, c->login->password_len);
      chorus_free(c->login->password);
    }
    sodium_memzero(c->login, sizeof *c->login);
    chorus_free(c->login);
  }
  tls_ctx_free(c->tls);
  chorus_free(c->tls_ca);
  chorus_free(c->tls_cert);
  chorus_free(c->tls_key);
  chorus_free(c->tls_crl);
  chorus_free(c);
}

static void on_timer_closed(uv_handle_t *h) {
  struct chorus_client *c = h->data;
  assert(c->closing && c->handles > 0);
  c->handles--;
  maybe_free(c);
}

/* client_tls: @c's TLS context from @cfg's files (none without a CA),
 * and its copies of their paths. */
static int client_tls(struct chorus_client *c, const struct chorus_config *cfg,
                      char *errmsg) {
  c->cfg.tls_ca = c->cfg.tls_cert = c->cfg.tls_key = c->cfg.tls_crl = NULL;
  if (cfg->tls_ca == NULL) {
    if (cfg->tls_cert != NULL || cfg->tls_key != NULL)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "a TLS certificate needs the CA of the nodes "
                         "(--tls-ca) to verify them");
    if (cfg->tls_crl != NULL)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "a CRL (--tls-crl) needs the CA of the nodes "
                         "(--tls-ca)");
    return CHORUS_OK;
  }
  c->tls_ca = chorus_strdup(cfg->tls_ca);
  c->tls_cert = cfg->tls_cert ? chorus_strdup(cfg->tls_cert) : NULL;
  c->tls_key = cfg->tls_key ? chorus_strdup(cfg->tls_key) : NULL;
  c->tls_crl = cfg->tls_crl ? chorus_strdup(cfg->tls_crl) : NULL;
  if (c->tls_ca == NULL || (cfg->tls_cert && c->tls_cert == NULL) ||
      (cfg->tls_key && c->tls_key == NULL) ||
      (cfg->tls_crl && c->tls_crl == NULL))
    return chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
  c->cfg.tls_ca = c->tls_ca;
  c->cfg.tls_cert = c->tls_cert;
  c->cfg.tls_key = c->tls_key;
  c->cfg.tls_crl = c->tls_crl;
  struct tls_ctx_opts o = {.role = TLS_ROLE_CLIENT,
                           .cert = c->tls_cert,
                           .key = c->tls_key,
                           .ca = c->tls_ca,
                           .crl = c->tls_crl,
                           .verify = TLS_VERIFY_REQUIRED};
  return tls_ctx_new(&o, &c->tls, errmsg);
}

int chorus__new(uv_loop_t *loop, const char *seeds,
                const struct chorus_config *cfg, struct chorus_client **out,
                char *errmsg) {
  if (out == NULL || seeds == NULL)
    return chorus_errf(errmsg, CHORUS_EINVAL, "NULL argument");
  *out = NULL;
  struct chorus_config defaults;
  chorus_config_init(&defaults);
  if (cfg == NULL)
    cfg = &defaults;
  const char *cluster = cfg->cluster ? cfg->cluster : CHORUS__DEFAULT_CLUSTER;
  if (cluster[0] == '\0' || strlen(cluster) > WIRE_MAX_CLUSTER)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "cluster name must be 1..%u bytes", WIRE_MAX_CLUSTER);
  if (cfg->credentials_len > WIRE_MAX_CREDENTIALS ||
      (cfg->credentials_len > 0 && cfg->credentials == NULL))
    return chorus_errf(errmsg, CHORUS_EINVAL, "credentials must be 0..%u bytes",
                       WIRE_MAX_CREDENTIALS);
  if (cfg->user != NULL) {
    char why[CHORUS_ERRMSG_SIZE] = "";
    if (auth_user_check(cfg->user, strnlen(cfg->user, AUTH_USER_MAX + 1),
                        why) != CHORUS_OK)
      return chorus_errf(errmsg, CHORUS_EINVAL, "user: %s", why);
    if (cfg->password == NULL || cfg->password[0] == '\0' ||
        strnlen(cfg->password, AUTH_PASSWORD_MAX + 1) > AUTH_PASSWORD_MAX)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "a user's password must be 1..%u bytes",
                         AUTH_PASSWORD_MAX);
  }
  if (cfg->dc != NULL &&
      (cfg->dc[0] == '\0' || strlen(cfg->dc) > WIRE_MAX_LABEL))
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "datacenter name must be 1..%u bytes", WIRE_MAX_LABEL);
  struct chorus_client *c = chorus_calloc(1, sizeof *c);
  if (c == NULL)
    return chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
  c->cfg = *cfg;
  c->cfg.cluster = NULL;
  c->cfg.credentials = NULL;
  c->cfg.dc = NULL;
  c->cfg.user = c->cfg.password = NULL; /* copied below, then wiped */
  if (c->cfg.connect_timeout_ms == 0)
    c->cfg.connect_timeout_ms = defaults.connect_timeout_ms;
  if (c->cfg.default_timeout_ms == 0)
    c->cfg.default_timeout_ms = defaults.default_timeout_ms;
  if (c->cfg.ring_refresh_ms == 0)
    c->cfg.ring_refresh_ms = defaults.ring_refresh_ms;
  list_init(&c->queue);
  list_init(&c->inflight);
  c->next_id = 1;
  c->ids = &c->next_id;
  c->last_err = CHORUS_EUNAVAILABLE;
  c->cluster = chorus_strdup(cluster);
  c->credentials = chorus_memdup(cfg->credentials, cfg->credentials_len);
  c->dc = cfg->dc != NULL ? chorus_strdup(cfg->dc) : NULL;
  if (c->cluster == NULL || c->credentials == NULL ||
      (cfg->dc != NULL && c->dc == NULL)) {
    client_free(c);
    return chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
  }
  if (cfg->user != NULL) {
    c->login = chorus_calloc(1, sizeof *c->login);
    c->login_owned = true;
    if (c->login != NULL) {
      snprintf(c->login->user, sizeof c->login->user, "%s", cfg->user);
      c->login->password_len = strlen(cfg->password);
      c->login->password = chorus_memdup(cfg->password, c->login->password_len);
    }
    if (c->login == NULL || c->login->password == NULL) {
      client_free(c);
      return chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
    }
  }
  int rc = parse_seeds(c, seeds, errmsg);
  if (rc == CHORUS_OK)
    rc = client_tls(c, cfg, errmsg);
  if (rc != CHORUS_OK) {
    client_free(c);
    return rc;
  }
  uint64_t seed = cfg->seed;
  if (seed == 0 && getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
    seed = (uint64_t)uv_hrtime() ^ (uint64_t)(uintptr_t)c;
  chorus_prng_seed(&c->prng, seed);
  if (loop == NULL) {
    if (uv_loop_init(&c->own_loop_storage) < 0) {
      client_free(c);
      return chorus_errf(errmsg, CHORUS_EIO, "cannot create a uv loop");
    }
    c->own_loop = true;
    loop = &c->own_loop_storage;
  }
  c->loop = loop;
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->handles = 1;
  *out = c;
  return CHORUS_OK;
}

int chorus_client_open(const char *seeds, const struct chorus_config *cfg,
                       struct chorus_client **out, char *errmsg) {
  return chorus__new(NULL, seeds, cfg, out, errmsg);
}

int chorus_client_open_async(struct uv_loop_s *loop, const char *seeds,
                             const struct chorus_config *cfg,
                             struct chorus_client **out, char *errmsg) {
  if (loop == NULL)
    return chorus_errf(errmsg, CHORUS_EINVAL, "NULL loop");
  return chorus__new(loop, seeds, cfg, out, errmsg);
}

void chorus_client_close(struct chorus_client *c) {
  if (c == NULL || c->closing)
    return;
  c->closing = true;
  while (!list_empty(&c->inflight) || !list_empty(&c->queue)) {
    struct chorus__link *l =
        !list_empty(&c->inflight) ? c->inflight.next : c->queue.next;
    finish_error(c, req_of(l), CHORUS_ECANCELED,
                 req_of(l)->is_write && req_of(l)->sent,
                 "client closed before the reply");
  }
  chorus__route_close(c);
  if (c->conn != NULL)
    conn_close(c->conn);
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
  if (c->own_loop) {
    while (c->handles > 0)
      uv_run(c->loop, UV_RUN_ONCE);
    /* Resolver threads may still hold canceled work: drain it. */
    uv_run(c->loop, UV_RUN_DEFAULT);
    uv_loop_close(c->loop);
    client_free(c);
    return;
  }
  /* An asynchronous client is freed by the close callback of its last
   * handle (maybe_free). */
}

const char *chorus_client_errmsg(const struct chorus_client *c) {
  return c ? c->errmsg : "";
}

const char *chorus_client_server(const struct chorus_client *c) {
  return c && c->nseeds ? c->seeds[c->cur].text : "";
}

uint64_t chorus__next_op_id(struct chorus_client *c) {
  uint64_t id;
  do
    id = chorus_prng_next(&c->prng);
  while (id == 0); /* 0 means "no id" to the node */
  return id;
}
