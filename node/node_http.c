/* node_http.c: chorusd's HTTP listener (--http HOST:PORT): the web console
 * at / (and its data, /api/cluster), /metrics in the
 * Prometheus text format, /health and /ready, on the node's own loop.
 *
 * HOW IT WORKS
 *
 * Why by hand, on the loop, rather than a library (libmicrohttpd): what is
 * served is read-only answers (and one static page) built from the loop
 * thread's own figures. A library with its own threads or poll would have to
 * read them across threads (locks or copies on the data path) or be driven by
 * our loop through its external-select mode, and would bring its own limits and
 * timeouts beside the ones node_accept.c already enforces. The part of HTTP
 * needed (GET and HEAD, no body, one request per connection) is a page of code,
 * pure and fuzzed (node/http/http.h); the sockets are the connections of
 * node_conn.c (buffered output, close after flush), so nothing here writes to a
 * socket itself.
 *
 * Budgets, apart from the client port's so that neither can starve the
 * other:
 *
 *   connections  at most --http-max-connections (16) at once; one more
 *                is accepted and closed at once (counted), never queued:
 *                a scraper retries, a flood costs only itself.
 *   head         a request head of at most NODE_HTTP_MAX_HEAD (8 KiB):
 *                431 past it; malformed bytes are 400 at their line end.
 *   time         the head must be whole within --http-timeout-ms (5 s) of
 *                the accept, and the answer must keep being read (no
 *                write progress for as long closes it): node_accept.c's
 *                sweep, so a client sending a byte a second is closed at
 *                5 s whatever it sends.
 *   answer       /metrics is at most NODE_HTTP_MAX_BODY (4 MiB); past it
 *                500.
 *
 * Every answer closes its connection once written ("Connection: close"),
 * so a connection holds at most one head and one answer.
 *
 *   GET|HEAD /         the web console (node/web/console.html, built in)
 *   GET|HEAD /api/cluster  the console's data, JSON (node_console.c), at
 *                      most NODE_HTTP_MAX_CONSOLE (1 MiB); past it 500
 *   GET|HEAD /metrics  200, text/plain; version=0.0.4 (node_metrics.c)
 *   GET|HEAD /health   200 "ok": the loop runs (it answered)
 *   GET|HEAD /ready    200 "ready", or 503 with the reason in one line
 *   another path       404;   another method   405 (Allow: GET, HEAD)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "node_int.h"

#define NODE_HTTP_MAX_CONSOLE (1u << 20)

/* The page, made from node/web/console.html at build time (embed.py). */
extern const unsigned char node__console_html[];
extern const size_t node__console_html_len;

/* ------------------------------------------------------------------------
 * Answers
 * ------------------------------------------------------------------------ */

/* answer: @status with @body (@len bytes) as @type, into the connection's
 * output (the body copied once); HEAD gets the head alone. The connection
 * closes once it is written; if it could not be queued (out of memory),
 * it closes without. */
static void answer(struct node_conn *c, bool head_only, int status,
                   const char *type, const char *extra, const char *body,
                   size_t len) {
  struct node *n = c->n;
  struct http_text t;
  http_text_init(&t, 0);
  http_response_head(&t, status, type, extra, len);
  size_t blen = head_only ? 0 : len;
  if (status < 300)
    n->stats.http_2xx++;
  else if (status < 500)
    n->stats.http_4xx++;
  else
    n->stats.http_5xx++;
  c->http_answered = true;
  c->last_active = node__now(n);
  if (!t.failed && node__buf_reserve(&c->out, t.len + blen) == CHORUS_OK) {
    memcpy(c->out.data + c->out.len, t.data, t.len);
    if (blen)
      memcpy(c->out.data + c->out.len + t.len, body, blen);
    c->out.len += t.len + blen;
  }
  http_text_free(&t);
  node__conn_refuse(c); /* stop reading; close once written */
}

static void answer_text(struct node_conn *c, bool head_only, int status,
                        const char *text) {
  answer(c, head_only, status, "text/plain; charset=utf-8",
         status == 405 ? "Allow: GET, HEAD\r\n" : NULL, text, strlen(text));
}

static void answer_metrics(struct node_conn *c, bool head_only) {
  struct http_text t;
  http_text_init(&t, NODE_HTTP_MAX_BODY);
  node__metrics_text(c->n, &t);
  if (t.failed) {
    node_log(NODE_LOG_WARN, NODE_MOD,
             "http: /metrics over %u bytes (or out of memory): answered 500",
             NODE_HTTP_MAX_BODY);
    answer_text(c, head_only, 500, "metrics too large\n");
  } else {
    answer(c, head_only, 200, HTTP_PROM_CONTENT_TYPE, NULL, t.data, t.len);
  }
  http_text_free(&t);
}

/* The page may run only its own inline script and style and fetch only
 * from this node: no external fetch, whatever a name in the cluster holds. */
#define CONSOLE_HEADERS                                                        \
  "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "  \
  "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'\r\n"          \
  "X-Content-Type-Options: nosniff\r\n"

static void answer_console(struct node_conn *c, bool head_only) {
  answer(c, head_only, 200, "text/html; charset=utf-8", CONSOLE_HEADERS,
         (const char *)node__console_html, node__console_html_len);
}

static void answer_cluster(struct node_conn *c, bool head_only) {
  struct http_text t;
  http_text_init(&t, NODE_HTTP_MAX_CONSOLE);
  node__console_json(c->n, &t);
  if (t.failed) {
    node_log(NODE_LOG_WARN, NODE_MOD,
             "http: /api/cluster over %u bytes (or out of memory): answered "
             "500",
             NODE_HTTP_MAX_CONSOLE);
    answer_text(c, head_only, 500, "cluster view too large\n");
  } else {
    answer(c, head_only, 200, "application/json",
           "X-Content-Type-Options: nosniff\r\n", t.data, t.len);
  }
  http_text_free(&t);
}

static const char *const paths[] = {"/metrics", "/health",     "/ready",
                                    "/",        "/index.html", "/api/cluster"};

static void route(struct node_conn *c, const struct http_request *req) {
  bool head_only = req->method == HTTP_HEAD;
  size_t p = 0;
  while (p < sizeof paths / sizeof paths[0] && strcmp(req->path, paths[p]))
    p++;
  if (p == sizeof paths / sizeof paths[0]) {
    answer_text(c, head_only, 404,
                "not found: /, /api/cluster, /metrics, /health, /ready\n");
    return;
  }
  if (req->method == HTTP_OTHER) {
    answer_text(c, false, 405, "only GET and HEAD\n");
    return;
  }
  switch (p) {
  case 0:
    answer_metrics(c, head_only);
    return;
  case 1:
    answer_text(c, head_only, 200, "ok\n");
    return;
  case 2: {
    char why[256];
    if (node__ready(c->n, why, sizeof why - 1)) {
      answer_text(c, head_only, 200, "ready\n");
    } else {
      strcat(why, "\n");
      answer_text(c, head_only, 503, why);
    }
    return;
  }
  case 3:
  case 4:
    answer_console(c, head_only);
    return;
  default:
    answer_cluster(c, head_only);
    return;
  }
}

/* ------------------------------------------------------------------------
 * Reading a request head
 * ------------------------------------------------------------------------ */

void node__http_on_read(struct node_conn *c, const uint8_t *data, size_t len) {
  /* Keep at most the bound: bytes past it change no answer (431). */
  size_t room = NODE_HTTP_MAX_HEAD - c->in.len;
  size_t take = len < room ? len : room;
  bool line_end = memchr(data, '\n', take) != NULL;
  if (take && node__buf_reserve(&c->in, take) != CHORUS_OK) {
    answer_text(c, false, 500, "out of memory\n");
    return;
  }
  memcpy(c->in.data + c->in.len, data, take);
  c->in.len += take;
  /* The parser reads the whole head again, so it runs only when it can
   * decide something: at the first line end (a garbage request line is
   * refused at once), at a line end that may end the head, or at the
   * bound. A head that arrives a byte at a time costs one parse a line. */
  bool full = c->in.len >= NODE_HTTP_MAX_HEAD;
  if (!line_end && !full)
    return;
  struct http_request req;
  int status;
  switch (
      http_parse(c->in.data, c->in.len, NODE_HTTP_MAX_HEAD, &req, &status)) {
  case HTTP_PARSE_MORE:
    return;
  case HTTP_PARSE_DONE:
    route(c, &req);
    return;
  case HTTP_PARSE_ERROR: {
    char text[64];
    snprintf(text, sizeof text, "%s\n", http_reason(status));
    node_log(NODE_LOG_DEBUG, NODE_MOD, "http conn %" PRIu64 " (%s): %d %s",
             c->serial, c->addr, status, http_reason(status));
    answer_text(c, false, status, text);
    return;
  }
  }
}

/* ------------------------------------------------------------------------
 * The listener (node_accept.c, side listeners)
 * ------------------------------------------------------------------------ */

static void http_admit(struct node *n, int fd) {
  if (n->nhttp >= n->cfg.http_max_connections) {
    /* Over the cap: closed at once, nothing read or written. */
    n->stats.http_refused++;
    close(fd);
    return;
  }
  if (node__conn_adopt(n, NODE_CONN_HTTP, fd) != NULL)
    n->stats.http_accepted++;
}

void node__http_init(struct node *n) {
  node__side_init(n, &n->http, "http", http_admit);
}

int node__http_listen(struct node *n, const struct sockaddr *sa) {
  return node__side_listen(&n->http, sa);
}

void node__http_stop(struct node *n) {
  node__side_stop(&n->http);
}

void node__http_close(struct node *n) {
  node__side_close(&n->http);
}
