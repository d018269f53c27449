/* test_http.c: the pure half of chorusd's HTTP listener (node/http/http.h):
 * request heads accepted and refused with the right status, heads that
 * arrive a byte at a time, the head bound, response heads, and the
 * Prometheus writer (escaping, histograms, the size bound). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

static enum http_parse_result parse_str(const char *s, size_t max,
                                        struct http_request *req, int *status) {
  return http_parse((const uint8_t *)s, strlen(s), max, req, status);
}

static void accepts_get_and_head(void **state) {
  (void)state;
  struct http_request req;
  int st;
  const char *get = "GET /metrics?x=1 HTTP/1.1\r\nHost: a:1\r\n"
                    "Accept: text/plain;q=0.9, */*\r\n\r\n";
  assert_int_equal(parse_str(get, 8192, &req, &st), HTTP_PARSE_DONE);
  assert_int_equal(req.method, HTTP_GET);
  assert_string_equal(req.path, "/metrics");
  assert_int_equal(req.minor, 1);
  assert_int_equal(req.head_len, strlen(get));
  /* Bare LFs, HTTP/1.0, no fields; bytes after the head are not its. */
  const char *head = "HEAD /ready HTTP/1.0\n\nleftover";
  assert_int_equal(parse_str(head, 8192, &req, &st), HTTP_PARSE_DONE);
  assert_int_equal(req.method, HTTP_HEAD);
  assert_string_equal(req.path, "/ready");
  assert_int_equal(req.minor, 0);
  assert_int_equal(req.head_len, strlen("HEAD /ready HTTP/1.0\n\n"));
  assert_int_equal(
      parse_str("DELETE /health HTTP/1.1\r\n\r\n", 8192, &req, &st),
      HTTP_PARSE_DONE);
  assert_int_equal(req.method, HTTP_OTHER);
}

static void refuses_malformed(void **state) {
  (void)state;
  static const struct {
    const char *in;
    int status;
  } cases[] = {
      {"\x16\x03\x01\x02\x05\x01\x01\r\n\r\n", 400}, /* a TLS hello */
      {"GARBAGE\r\n\r\n", 400},
      {"GET\r\n\r\n", 400},
      {"GET  / HTTP/1.1\r\n\r\n", 400},
      {"GET metrics HTTP/1.1\r\n\r\n", 400}, /* not origin form */
      {"GET http://a/ HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1 \r\n\r\n", 400},
      {"GET / http/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.10\r\n\r\n", 400},
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"GET / HTTP/1.2\r\n\r\n", 505},
      {"G\x01T / HTTP/1.1\r\n\r\n", 400},
      {"GET /\x7f HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nNo-Colon\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nSpace : x\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\n: x\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\r\n\r\n", 400},
      {"VERYLONGMETHODNAMEX / HTTP/1.1\r\n\r\n", 400},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct http_request req;
    int st = 0;
    enum http_parse_result r = parse_str(cases[i].in, 8192, &req, &st);
    if (r != HTTP_PARSE_ERROR || st != cases[i].status)
      fail_msg("case %zu: result %d status %d, want error %d", i, r, st,
               cases[i].status);
  }
}

static void long_target_is_414(void **state) {
  (void)state;
  char line[HTTP_MAX_TARGET + 64];
  memset(line, 'a', sizeof line);
  memcpy(line, "GET /", 5);
  snprintf(line + 5 + HTTP_MAX_TARGET, 59, " HTTP/1.1\r\n\r\n");
  struct http_request req;
  int st;
  assert_int_equal(parse_str(line, 8192, &req, &st), HTTP_PARSE_ERROR);
  assert_int_equal(st, 414);
  /* One byte less is served. */
  line[4 + HTTP_MAX_TARGET] = ' ';
  snprintf(line + 4 + HTTP_MAX_TARGET, 59, " HTTP/1.1\r\n\r\n");
  assert_int_equal(parse_str(line, 8192, &req, &st), HTTP_PARSE_DONE);
  assert_int_equal(strlen(req.path), HTTP_MAX_TARGET);
}

/* A head that arrives a byte at a time is "more" until its empty line;
 * garbage is refused at its first line end, before the head ends. */
static void byte_at_a_time(void **state) {
  (void)state;
  const char *get = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t n = strlen(get);
  struct http_request req;
  int st;
  for (size_t k = 0; k < n; k++)
    assert_int_equal(http_parse((const uint8_t *)get, k, 8192, &req, &st),
                     HTTP_PARSE_MORE);
  assert_int_equal(http_parse((const uint8_t *)get, n, 8192, &req, &st),
                   HTTP_PARSE_DONE);
  const char *bad = "xx\x01yy\r\nmore";
  assert_int_equal(http_parse((const uint8_t *)bad, 4, 8192, &req, &st),
                   HTTP_PARSE_MORE);
  assert_int_equal(http_parse((const uint8_t *)bad, 7, 8192, &req, &st),
                   HTTP_PARSE_ERROR);
  assert_int_equal(st, 400);
}

/* The head bound: a head is refused 431 as soon as the bound is reached
 * without its end, whether the request line or a field is what is long;
 * a head of exactly the bound is served. */
static void head_bound_is_431(void **state) {
  (void)state;
  enum { MAX = 8192 };
  static char buf[MAX + 100];
  struct http_request req;
  int st;
  /* One huge field. */
  int off = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nX-Big: ");
  memset(buf + off, 'a', sizeof buf - (size_t)off);
  assert_int_equal(http_parse((const uint8_t *)buf, MAX - 1, MAX, &req, &st),
                   HTTP_PARSE_MORE);
  assert_int_equal(http_parse((const uint8_t *)buf, MAX, MAX, &req, &st),
                   HTTP_PARSE_ERROR);
  assert_int_equal(st, 431);
  assert_int_equal(http_parse((const uint8_t *)buf, sizeof buf, MAX, &req, &st),
                   HTTP_PARSE_ERROR);
  assert_int_equal(st, 431);
  /* Exactly MAX bytes, the empty line last: served. */
  memcpy(buf + MAX - 4, "\r\n\r\n", 4);
  assert_int_equal(http_parse((const uint8_t *)buf, MAX, MAX, &req, &st),
                   HTTP_PARSE_DONE);
  assert_int_equal(req.head_len, MAX);
  /* Many small fields add up the same way. */
  off = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\n");
  while (off < MAX + 50)
    off += snprintf(buf + off, sizeof buf - (size_t)off, "A: b\r\n");
  assert_int_equal(
      http_parse((const uint8_t *)buf, (size_t)off, MAX, &req, &st),
      HTTP_PARSE_ERROR);
  assert_int_equal(st, 431);
}

static void response_head(void **state) {
  (void)state;
  struct http_text t;
  http_text_init(&t, 0);
  http_response_head(&t, 503, "text/plain", NULL, 12);
  http_text_put(&t, "", 1);
  assert_false(t.failed);
  assert_string_equal(t.data, "HTTP/1.1 503 Service Unavailable\r\n"
                              "Content-Type: text/plain\r\n"
                              "Content-Length: 12\r\n"
                              "Cache-Control: no-store\r\n"
                              "Connection: close\r\n\r\n");
  t.len = 0;
  http_response_head(&t, 405, "text/plain", "Allow: GET, HEAD\r\n", 0);
  http_text_put(&t, "", 1);
  assert_string_equal(t.data, "HTTP/1.1 405 Method Not Allowed\r\n"
                              "Content-Type: text/plain\r\n"
                              "Content-Length: 0\r\n"
                              "Cache-Control: no-store\r\n"
                              "Connection: close\r\n"
                              "Allow: GET, HEAD\r\n\r\n");
  http_text_free(&t);
  assert_string_equal(http_reason(431), "Request Header Fields Too Large");
  assert_string_equal(http_reason(299), "Error");
}

static void prom_text(void **state) {
  (void)state;
  struct http_text t;
  http_text_init(&t, 0);
  http_prom_family(&t, "chorus_requests_total", HTTP_PROM_COUNTER,
                   "Client requests.");
  struct http_label l[2] = {{"op", "get"}, {"peer", "a\"b\\c\nd"}};
  http_prom_sample(&t, "chorus_requests_total", l, 2, 12);
  http_prom_sample(&t, "chorus_requests_total", NULL, 0, 0.25);
  http_prom_family(&t, "chorus_request_duration_seconds", HTTP_PROM_HISTOGRAM,
                   "Latency.");
  const double bounds[] = {0.001, 0.01};
  const uint64_t counts[] = {3, 0, 2};
  http_prom_histogram(&t, "chorus_request_duration_seconds", l, 1, bounds,
                      counts, 2, 1.5);
  http_text_put(&t, "", 1);
  assert_false(t.failed);
  assert_string_equal(
      t.data,
      "# HELP chorus_requests_total Client requests.\n"
      "# TYPE chorus_requests_total counter\n"
      "chorus_requests_total{op=\"get\",peer=\"a\\\"b\\\\c\\nd\"} 12\n"
      "chorus_requests_total 0.25\n"
      "# HELP chorus_request_duration_seconds Latency.\n"
      "# TYPE chorus_request_duration_seconds histogram\n"
      "chorus_request_duration_seconds_bucket{op=\"get\",le=\"0.001\"} 3\n"
      "chorus_request_duration_seconds_bucket{op=\"get\",le=\"0.01\"} 3\n"
      "chorus_request_duration_seconds_bucket{op=\"get\",le=\"+Inf\"} 5\n"
      "chorus_request_duration_seconds_sum{op=\"get\"} 1.5\n"
      "chorus_request_duration_seconds_count{op=\"get\"} 5\n");
  http_text_free(&t);
}

/* The bound stops the text and says so; nothing after it is written. */
static void text_bound(void **state) {
  (void)state;
  struct http_text t;
  http_text_init(&t, 100);
  for (int i = 0; i < 20; i++)
    http_text_printf(&t, "line %d\n", i);
  assert_true(t.failed);
  assert_true(t.len <= 100);
  size_t len = t.len;
  http_text_puts(&t, "x");
  assert_int_equal(t.len, len);
  http_text_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(accepts_get_and_head),
      cmocka_unit_test(refuses_malformed),
      cmocka_unit_test(long_target_is_414),
      cmocka_unit_test(byte_at_a_time),
      cmocka_unit_test(head_bound_is_431),
      cmocka_unit_test(response_head),
      cmocka_unit_test(prom_text),
      cmocka_unit_test(text_bound),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
