/* http.c: request heads in, response heads and Prometheus text out
 * (http.h). Pure: no I/O, no clock. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "http.h"

/* ------------------------------------------------------------------------
 * Request heads
 * ------------------------------------------------------------------------ */

/* tchar (RFC 9110 §5.6.2): the bytes of a token. */
static bool is_tchar(uint8_t c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
      (c >= 'A' && c <= 'Z'))
    return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_vchar(uint8_t c) {
  return c >= 0x21 && c <= 0x7e;
}

/* A field value's byte: VCHAR, SP, HTAB or obs-text. */
static bool is_field_byte(uint8_t c) {
  return c == ' ' || c == '\t' || is_vchar(c) || c >= 0x80;
}

/* line_end: the index of the next LF at or after @from, below @lim, or
 * @lim when there is none. */
static size_t line_end(const uint8_t *b, size_t from, size_t lim) {
  const uint8_t *p = from < lim ? memchr(b + from, '\n', lim - from) : NULL;
  return p ? (size_t)(p - b) : lim;
}

/* parse_request_line: @b[0, @n) is the request line without its line end.
 * 0, or the status refusing it. */
static int parse_request_line(const uint8_t *b, size_t n,
                              struct http_request *req) {
  size_t i = 0;
  while (i < n && is_tchar(b[i]))
    i++;
  if (i == 0 || i > HTTP_MAX_METHOD || i == n || b[i] != ' ')
    return 400;
  if (i == 3 && memcmp(b, "GET", 3) == 0)
    req->method = HTTP_GET;
  else if (i == 4 && memcmp(b, "HEAD", 4) == 0)
    req->method = HTTP_HEAD;
  else
    req->method = HTTP_OTHER;
  size_t t = ++i;
  while (i < n && is_vchar(b[i]))
    i++;
  size_t tlen = i - t;
  if (tlen == 0 || b[t] != '/' || i == n || b[i] != ' ')
    return 400;
  if (tlen > HTTP_MAX_TARGET)
    return 414;
  const uint8_t *q = memchr(b + t, '?', tlen);
  size_t plen = q ? (size_t)(q - (b + t)) : tlen;
  memcpy(req->path, b + t, plen);
  req->path[plen] = '\0';
  i++;
  const uint8_t *v = b + i;
  if (n - i != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
      v[6] != '.' || v[7] < '0' || v[7] > '9')
    return 400;
  if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
    return 505;
  req->minor = v[7] - '0';
  return 0;
}

/* check_field: @b[0, @n) is one field line without its line end. */
static bool check_field(const uint8_t *b, size_t n) {
  size_t i = 0;
  while (i < n && is_tchar(b[i]))
    i++;
  if (i == 0 || i == n || b[i] != ':')
    return false; /* no name, obs-fold, or whitespace before the colon */
  for (i++; i < n; i++)
    if (!is_field_byte(b[i]))
      return false;
  return true;
}

/* line_len: a line's length without its CR, or SIZE_MAX for a CR that is
 * not right before the LF. */
static size_t line_len(const uint8_t *b, size_t from, size_t end) {
  const uint8_t *cr = from < end ? memchr(b + from, '\r', end - from) : NULL;
  if (cr == NULL)
    return end - from;
  if ((size_t)(cr - b) != end - 1)
    return SIZE_MAX;
  return end - 1 - from;
}

enum http_parse_result http_parse(const uint8_t *buf, size_t len,
                                  size_t max_head, struct http_request *req,
                                  int *status) {
  memset(req, 0, sizeof *req);
  *status = 0;
  /* Nothing past the bound is read: a head must end within it. */
  size_t lim = len < max_head ? len : max_head;
  size_t e = line_end(buf, 0, lim);
  if (e == lim) {
    if (len >= max_head) {
      *status = 431;
      return HTTP_PARSE_ERROR;
    }
    return HTTP_PARSE_MORE;
  }
  size_t n = line_len(buf, 0, e);
  int st = n == SIZE_MAX ? 400 : parse_request_line(buf, n, req);
  if (st != 0) {
    *status = st;
    return HTTP_PARSE_ERROR;
  }
  for (size_t from = e + 1;;) {
    e = line_end(buf, from, lim);
    if (e == lim) {
      if (len >= max_head) {
        *status = 431;
        return HTTP_PARSE_ERROR;
      }
      return HTTP_PARSE_MORE;
    }
    n = line_len(buf, from, e);
    if (n == 0) {
      req->head_len = e + 1;
      return HTTP_PARSE_DONE;
    }
    if (n == SIZE_MAX || !check_field(buf + from, n)) {
      *status = 400;
      return HTTP_PARSE_ERROR;
    }
    from = e + 1;
  }
}

const char *http_reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 414:
    return "URI Too Long";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Error";
  }
}

/* ------------------------------------------------------------------------
 * Text buffers
 * ------------------------------------------------------------------------ */

void http_text_init(struct http_text *t, size_t limit) {
  memset(t, 0, sizeof *t);
  t->limit = limit;
}

void http_text_free(struct http_text *t) {
  chorus_free(t->data);
  memset(t, 0, sizeof *t);
}

/* reserve: room for @more bytes (and a NUL for vsnprintf), or false with
 * @failed set. */
static bool reserve(struct http_text *t, size_t more) {
  if (t->failed)
    return false;
  if (more > SIZE_MAX / 2 - t->len ||
      (t->limit != 0 && t->len + more > t->limit)) {
    t->failed = true;
    return false;
  }
  if (t->cap - t->len > more)
    return true;
  size_t cap = t->cap ? t->cap : 4096;
  while (cap - t->len <= more)
    cap *= 2;
  char *p = chorus_realloc(t->data, cap);
  if (p == NULL) {
    t->failed = true;
    return false;
  }
  t->data = p;
  t->cap = cap;
  return true;
}

void http_text_put(struct http_text *t, const char *s, size_t len) {
  if (!reserve(t, len))
    return;
  memcpy(t->data + t->len, s, len);
  t->len += len;
}

void http_text_puts(struct http_text *t, const char *s) {
  http_text_put(t, s, strlen(s));
}

void http_text_printf(struct http_text *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !reserve(t, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  t->len += (size_t)n;
}

void http_response_head(struct http_text *t, int status,
                        const char *content_type, const char *extra,
                        size_t body_len) {
  http_text_printf(t,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                   "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                   "Connection: close\r\n%s\r\n",
                   status, http_reason(status), content_type, body_len,
                   extra ? extra : "");
}

/* ------------------------------------------------------------------------
 * Prometheus text format 0.0.4
 * ------------------------------------------------------------------------ */

static const char *type_name(enum http_prom_type type) {
  switch (type) {
  case HTTP_PROM_COUNTER:
    return "counter";
  case HTTP_PROM_GAUGE:
    return "gauge";
  default:
    return "histogram";
  }
}

void http_prom_family(struct http_text *t, const char *name,
                      enum http_prom_type type, const char *help) {
  /* HELP text escapes only \ and newline; ours are constants without
   * either. */
  http_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                   type_name(type));
}

static void put_escaped(struct http_text *t, const char *s) {
  for (const char *p = s; *p; p++) {
    if (*p == '\\')
      http_text_put(t, "\\\\", 2);
    else if (*p == '"')
      http_text_put(t, "\\\"", 2);
    else if (*p == '\n')
      http_text_put(t, "\\n", 2);
    else
      http_text_put(t, p, 1);
  }
}

static void put_labels(struct http_text *t, const struct http_label *labels,
                       size_t nlabels) {
  if (nlabels == 0)
    return;
  http_text_put(t, "{", 1);
  for (size_t i = 0; i < nlabels; i++) {
    if (i)
      http_text_put(t, ",", 1);
    http_text_puts(t, labels[i].name);
    http_text_put(t, "=\"", 2);
    put_escaped(t, labels[i].value);
    http_text_put(t, "\"", 1);
  }
  http_text_put(t, "}", 1);
}

/* put_value: integers as integers, the rest (sums of seconds) to ten
 * significant digits: a nanosecond in ten seconds. */
static void put_value(struct http_text *t, double v) {
  if (isnan(v))
    http_text_puts(t, "NaN");
  else if (isinf(v))
    http_text_puts(t, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 9.2e18)
    http_text_printf(t, "%lld", (long long)v);
  else
    http_text_printf(t, "%.10g", v);
}

void http_prom_sample(struct http_text *t, const char *name,
                      const struct http_label *labels, size_t nlabels,
                      double value) {
  http_text_puts(t, name);
  put_labels(t, labels, nlabels);
  http_text_put(t, " ", 1);
  put_value(t, value);
  http_text_put(t, "\n", 1);
}

void http_prom_histogram(struct http_text *t, const char *name,
                         const struct http_label *labels, size_t nlabels,
                         const double *bounds, const uint64_t *counts,
                         size_t nbounds, double sum) {
  enum { MAX_LABELS = 8 };
  struct http_label l[MAX_LABELS];
  if (nlabels > MAX_LABELS - 1)
    nlabels = MAX_LABELS - 1;
  memcpy(l, labels, nlabels * sizeof *l);
  char series[128], le[32];
  snprintf(series, sizeof series, "%s_bucket", name);
  uint64_t cum = 0;
  for (size_t i = 0; i <= nbounds; i++) {
    cum += counts[i];
    if (i < nbounds)
      snprintf(le, sizeof le, "%g", bounds[i]);
    else
      snprintf(le, sizeof le, "+Inf");
    l[nlabels] = (struct http_label){"le", le};
    http_prom_sample(t, series, l, nlabels + 1, (double)cum);
  }
  snprintf(series, sizeof series, "%s_sum", name);
  http_prom_sample(t, series, labels, nlabels, sum);
  snprintf(series, sizeof series, "%s_count", name);
  http_prom_sample(t, series, labels, nlabels, (double)cum);
}
