/* fuzz_http_parse.c: libFuzzer target for the HTTP request-head parser
 * (node/http/http.h). The first byte picks the head bound (1..4096 bytes);
 * the rest is what a client sent. Whatever the bytes: the parser reads
 * only what it is given (ASan), and it is consistent across arrivals:
 * every prefix of the input parses to "more" or to the whole input's
 * answer, and once a prefix has an answer every longer one has the same.
 * The bytes also go through the Prometheus writer as a label value, whose
 * escaping must leave one sample on one line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t max = 1u + (size_t)data[0] * 16;
  const uint8_t *b = data + 1;
  size_t n = size - 1;
  struct http_request whole, part;
  int st_whole, st_part;
  enum http_parse_result r = http_parse(b, n, max, &whole, &st_whole);
  if (r == HTTP_PARSE_ERROR && !(st_whole == 400 || st_whole == 414 ||
                                 st_whole == 431 || st_whole == 505))
    abort();
  if (r == HTTP_PARSE_DONE &&
      (whole.head_len > n || whole.head_len > max || whole.path[0] != '/' ||
       whole.method < HTTP_GET || whole.method > HTTP_OTHER))
    abort();
  bool answered = false;
  /* Prefixes at steps of a seventh: enough to catch an answer that changes
   * with where the bytes were cut, without quadratic cost. */
  size_t step = n / 7 + 1;
  for (size_t k = 0; k <= n; k += step) {
    enum http_parse_result p =
        http_parse(k ? b : NULL, k, max, &part, &st_part);
    if (p == HTTP_PARSE_MORE) {
      if (answered)
        abort();
      continue;
    }
    answered = true;
    if (p != r || st_part != st_whole)
      abort();
    if (p == HTTP_PARSE_DONE &&
        (part.head_len != whole.head_len || part.method != whole.method ||
         strcmp(part.path, whole.path) != 0))
      abort();
  }
  char *s = malloc(n + 1);
  if (s == NULL)
    return 0;
  memcpy(s, b, n);
  s[n] = '\0'; /* label values are C strings: up to the first NUL */
  struct http_text t;
  http_text_init(&t, 1u << 20);
  struct http_label l = {"v", s};
  http_prom_sample(&t, "chorus_fuzz", &l, 1, 1.0);
  if (!t.failed) {
    if (t.len == 0 || t.data[t.len - 1] != '\n' ||
        memchr(t.data, '\n', t.len - 1) != NULL)
      abort();
  }
  http_text_free(&t);
  free(s);
  return 0;
}
