/* http.h: the pure half of chorusd's HTTP listener (--http): a parser of
 * request heads, a writer of response heads, and a writer of the
 * Prometheus text exposition format over a growable buffer. No socket,
 * clock or libuv here: bytes in, a request or an error status out, so
 * unit tests and a libFuzzer target reach all of it (node/node_http.c is
 * the I/O half).
 *
 * WHAT IS SPOKEN
 *
 * The listener serves read-only paths to monitoring systems, load
 * balancers and browsers (the web console), so it speaks the small part of
 * HTTP/1.1 (RFC 9112) they use: a request line and header fields, no body,
 * one request per connection (every response says "Connection: close"). Methods
 * GET and HEAD; any other well-formed method token is answered 405. Everything
 * that is not well formed is answered 400 and the connection closed:
 *
 *   request-line  = method SP request-target SP HTTP-version CRLF
 *   method        = 1*tchar                      (at most 16 bytes)
 *   request-target= "/" *(VCHAR)                 (origin form; at most
 *                                                 HTTP_MAX_TARGET: 414)
 *   HTTP-version  = "HTTP/1.0" | "HTTP/1.1"      (other HTTP/d.d: 505)
 *   header-field  = field-name ":" OWS field-value OWS CRLF
 *   field-name    = 1*tchar; field-value VCHAR, SP, HTAB, obs-text
 *
 * A bare LF ends a line as CRLF does (RFC 9112 §2.2 allows it); a field
 * line starting with whitespace (obs-fold) and any control byte other
 * than HTAB are refused. The head, request line to empty line, is at most
 * the caller's bound (431 past it). Header fields are checked for form
 * and otherwise ignored: with no keep-alive and no body none of them
 * changes the answer, and a body a client sends anyway is never read.
 */
#ifndef CHORUS_HTTP_H
#define CHORUS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_TARGET 1024u /* request-target bytes; longer: 414 */
#define HTTP_MAX_METHOD 16u   /* method bytes; longer: 400 (none is) */

enum http_method {
  HTTP_GET = 1,
  HTTP_HEAD,
  HTTP_OTHER, /* well formed, not served: 405 */
};

/* A parsed request head. @path is the request-target up to any '?' (the
 * query is ignored), NUL-terminated. */
struct http_request {
  enum http_method method;
  int minor; /* HTTP/1.@minor */
  char path[HTTP_MAX_TARGET + 1];
  size_t head_len; /* bytes of the head, its empty line included */
};

enum http_parse_result {
  HTTP_PARSE_MORE = 0, /* no empty line yet, and still under the bound */
  HTTP_PARSE_DONE,     /* @req is filled in */
  HTTP_PARSE_ERROR,    /* *@status says which: 400, 414, 431 or 505 */
};

/* http_parse: the request head at the start of @buf (@len bytes: all that
 * arrived so far; call again with more). @max_head bounds the head's
 * length: a head without its empty line within @max_head bytes is
 * HTTP_PARSE_ERROR with *@status 431. Malformed bytes are an error as soon
 * as they arrive, before the head is complete: a request line of garbage
 * is refused at its first line end (or at the bound). @buf may be NULL
 * when @len is 0. Never reads past @len. */
enum http_parse_result http_parse(const uint8_t *buf, size_t len,
                                  size_t max_head, struct http_request *req,
                                  int *status);

/* http_reason: "OK" for 200, "Not Found" for 404...; "Error" for a status
 * it does not know. Static. */
const char *http_reason(int status);

/* ------------------------------------------------------------------------
 * Text buffers
 * ------------------------------------------------------------------------ */

/* A growable text buffer, bounded: past @limit bytes (0: no bound) or on
 * out of memory it stops growing and sets @failed; everything written
 * after is dropped, so a writer checks once, at the end. */
struct http_text {
  char *data; /* owned; not NUL-terminated */
  size_t len, cap, limit;
  bool failed;
};

void http_text_init(struct http_text *t, size_t limit);
void http_text_free(struct http_text *t);
void http_text_put(struct http_text *t, const char *s, size_t len);
void http_text_puts(struct http_text *t, const char *s);
void http_text_printf(struct http_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* http_response_head: "HTTP/1.1 @status REASON", Content-Type
 * @content_type, Content-Length @body_len, Cache-Control: no-store,
 * Connection: close, the fields @extra (NULL, or whole lines each ending
 * in CRLF, such as "Allow: GET, HEAD\r\n"), then the empty line, appended
 * to @t. */
void http_response_head(struct http_text *t, int status,
                        const char *content_type, const char *extra,
                        size_t body_len);

/* ------------------------------------------------------------------------
 * The Prometheus text format, version 0.0.4
 *
 *   # HELP chorus_requests_total Client requests ...
 *   # TYPE chorus_requests_total counter
 *   chorus_requests_total{op="get",level="QUORUM"} 12
 *
 * Each family opens with http_prom_family (HELP and TYPE, once), then its
 * samples follow (the format wants a family's samples together). Names
 * are the caller's constants (chorus_ prefix, _total for counters, base
 * units _seconds and _bytes); label values are escaped here (\\, \", \n).
 * ------------------------------------------------------------------------ */

#define HTTP_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum http_prom_type {
  HTTP_PROM_COUNTER,
  HTTP_PROM_GAUGE,
  HTTP_PROM_HISTOGRAM,
};

struct http_label {
  const char *name, *value;
};

void http_prom_family(struct http_text *t, const char *name,
                      enum http_prom_type type, const char *help);
/* http_prom_sample: `@name{labels} @value`; @nlabels may be 0. */
void http_prom_sample(struct http_text *t, const char *name,
                      const struct http_label *labels, size_t nlabels,
                      double value);
/* http_prom_histogram: the _bucket series (cumulative, le="..." added to
 * @labels, then le="+Inf"), _sum and _count of one histogram. @counts
 * holds @nbounds + 1 per-bucket (not cumulative) counts: counts[i] for
 * values <= bounds[i] and above bounds[i-1], counts[nbounds] above the
 * last bound. @bounds ascend. At most 7 labels besides le. */
void http_prom_histogram(struct http_text *t, const char *name,
                         const struct http_label *labels, size_t nlabels,
                         const double *bounds, const uint64_t *counts,
                         size_t nbounds, double sum);

#endif /* CHORUS_HTTP_H */
