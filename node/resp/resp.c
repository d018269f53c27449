/* resp.c: the RESP command parser and reply writer (resp.h). */
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "resp.h"

/* ------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------ */

static enum resp_parse_result bad_length(char *err, const char *what) {
  snprintf(err, RESP_ERRMSG_SIZE, "invalid %s length", what);
  return RESP_ERROR;
}

/* header: the "*" or "$" line at @buf[*pos] (its marker already checked):
 * its number, in *@out. RESP_MORE when the line is not whole yet and
 * still under RESP_MAX_HEADER bytes; RESP_ERROR for anything but an
 * optional '-' and up to 18 digits followed by CRLF. */
static enum resp_parse_result header(const uint8_t *buf, size_t len,
                                     size_t *pos, int64_t *out, char *err,
                                     const char *what) {
  size_t p = *pos + 1, end = *pos + RESP_MAX_HEADER;
  bool neg = false;
  int64_t v = 0;
  size_t digits = 0;
  if (p < len && buf[p] == '-') {
    neg = true;
    p++;
  }
  for (;; p++) {
    if (p >= len)
      return p >= end ? bad_length(err, what) : RESP_MORE;
    uint8_t c = buf[p];
    if (c >= '0' && c <= '9') {
      /* 18 digits cannot overflow an int64_t; more is a length no limit
       * allows anyway. */
      if (++digits > 18)
        return bad_length(err, what);
      v = v * 10 + (c - '0');
      continue;
    }
    break;
  }
  if (digits == 0 || buf[p] != '\r')
    return bad_length(err, what);
  if (p + 1 >= len)
    return p + 1 >= end ? bad_length(err, what) : RESP_MORE;
  if (buf[p + 1] != '\n')
    return bad_length(err, what);
  *out = neg ? -v : v;
  *pos = p + 2;
  return RESP_DONE;
}

static enum resp_parse_result parse_inline(const uint8_t *buf, size_t len,
                                           const struct resp_limits *lim,
                                           struct resp_arg *argv, size_t *argc,
                                           size_t *used, char *err) {
  size_t scan = len < lim->max_inline ? len : lim->max_inline;
  const uint8_t *nl = memchr(buf, '\n', scan);
  if (nl == NULL) {
    if (len >= lim->max_inline) {
      snprintf(err, RESP_ERRMSG_SIZE, "too big inline request");
      return RESP_ERROR;
    }
    return RESP_MORE;
  }
  size_t line = (size_t)(nl - buf);
  size_t end = line > 0 && buf[line - 1] == '\r' ? line - 1 : line;
  size_t n = 0;
  for (size_t i = 0; i < end;) {
    while (i < end && (buf[i] == ' ' || buf[i] == '\t'))
      i++;
    if (i == end)
      break;
    size_t s = i;
    while (i < end && buf[i] != ' ' && buf[i] != '\t')
      i++;
    if (i - s > lim->max_bulk) {
      snprintf(err, RESP_ERRMSG_SIZE, "invalid bulk length");
      return RESP_ERROR;
    }
    if (n == lim->max_args) {
      snprintf(err, RESP_ERRMSG_SIZE, "too many arguments in inline request");
      return RESP_ERROR;
    }
    argv[n++] = (struct resp_arg){buf + s, i - s};
  }
  *argc = n;
  *used = line + 1;
  return RESP_DONE;
}

enum resp_parse_result resp_parse(const uint8_t *buf, size_t len,
                                  const struct resp_limits *lim,
                                  struct resp_arg *argv, size_t *argc,
                                  size_t *used, char *err) {
  *argc = 0;
  *used = 0;
  if (len == 0)
    return RESP_MORE;
  if (buf[0] != '*')
    return parse_inline(buf, len, lim, argv, argc, used, err);
  size_t pos = 0;
  int64_t count;
  enum resp_parse_result r = header(buf, len, &pos, &count, err, "multibulk");
  if (r != RESP_DONE)
    return r;
  if (count <= 0) { /* Redis: nothing to run */
    *used = pos;
    return RESP_DONE;
  }
  if ((uint64_t)count > lim->max_args) {
    snprintf(err, RESP_ERRMSG_SIZE, "invalid multibulk length");
    return RESP_ERROR;
  }
  /* Declared bytes so far: checked against max_command before any of
   * them is waited for. */
  uint64_t declared = pos;
  for (int64_t i = 0; i < count; i++) {
    if (pos >= len)
      return RESP_MORE;
    if (buf[pos] != '$') {
      snprintf(err, RESP_ERRMSG_SIZE, "expected '$', got '%c'",
               buf[pos] >= 0x20 && buf[pos] < 0x7f ? buf[pos] : '?');
      return RESP_ERROR;
    }
    size_t h = pos;
    int64_t blen;
    r = header(buf, len, &pos, &blen, err, "bulk");
    if (r != RESP_DONE)
      return r;
    if (blen < 0 || (uint64_t)blen > lim->max_bulk) {
      snprintf(err, RESP_ERRMSG_SIZE, "invalid bulk length");
      return RESP_ERROR;
    }
    declared += (pos - h) + (uint64_t)blen + 2;
    if (declared > lim->max_command) {
      snprintf(err, RESP_ERRMSG_SIZE, "command too large");
      return RESP_ERROR;
    }
    if (len - pos < (uint64_t)blen + 2)
      return RESP_MORE;
    if (buf[pos + (size_t)blen] != '\r' ||
        buf[pos + (size_t)blen + 1] != '\n') {
      snprintf(err, RESP_ERRMSG_SIZE, "bulk not ended by CRLF");
      return RESP_ERROR;
    }
    argv[i] = (struct resp_arg){buf + pos, (size_t)blen};
    pos += (size_t)blen + 2;
  }
  *argc = (size_t)count;
  *used = pos;
  return RESP_DONE;
}

bool resp_int_parse(const uint8_t *p, size_t len, int64_t *out) {
  if (len == 0 || len > 20)
    return false;
  size_t i = 0;
  bool neg = p[0] == '-';
  if (neg && ++i == len)
    return false;
  if (p[i] == '0' && len - i > 1)
    return false;
  if (neg && p[i] == '0')
    return false; /* "-0" */
  uint64_t v = 0;
  uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; i < len; i++) {
    if (p[i] < '0' || p[i] > '9')
      return false;
    uint64_t d = (uint64_t)(p[i] - '0');
    if (v > (lim - d) / 10)
      return false;
    v = v * 10 + d;
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return true;
}

bool resp_arg_is(const struct resp_arg *a, const char *word) {
  size_t n = strlen(word);
  if (a->len != n)
    return false;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = a->ptr[i];
    if (c >= 'a' && c <= 'z')
      c = (uint8_t)(c - 'a' + 'A');
    uint8_t w = (uint8_t)word[i];
    if (w >= 'a' && w <= 'z')
      w = (uint8_t)(w - 'a' + 'A');
    if (c != w)
      return false;
  }
  return true;
}

/* ------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------ */

void resp_out_init(struct resp_out *o, size_t max) {
  memset(o, 0, sizeof *o);
  o->max = max;
}

void resp_out_free(struct resp_out *o) {
  chorus_free(o->data);
  o->data = NULL;
  o->len = o->cap = 0;
}

static bool room(struct resp_out *o, size_t more) {
  if (o->failed)
    return false;
  if (o->max && (more > o->max || o->len > o->max - more)) {
    o->failed = true;
    return false;
  }
  if (o->cap - o->len >= more)
    return true;
  size_t cap = o->cap ? o->cap : 64;
  while (cap - o->len < more)
    cap *= 2;
  uint8_t *p = chorus_realloc(o->data, cap);
  if (p == NULL) {
    o->failed = true;
    return false;
  }
  o->data = p;
  o->cap = cap;
  return true;
}

void resp_raw(struct resp_out *o, const void *p, size_t len) {
  if (len == 0 || !room(o, len))
    return;
  memcpy(o->data + o->len, p, len);
  o->len += len;
}

/* line: @mark, @text with CR and LF replaced by spaces, CRLF. */
static void line(struct resp_out *o, char mark, const char *text) {
  size_t n = strlen(text);
  if (!room(o, n + 3))
    return;
  o->data[o->len++] = (uint8_t)mark;
  for (size_t i = 0; i < n; i++)
    o->data[o->len++] =
        text[i] == '\r' || text[i] == '\n' ? ' ' : (uint8_t)text[i];
  o->data[o->len++] = '\r';
  o->data[o->len++] = '\n';
}

static void head(struct resp_out *o, char mark, int64_t n) {
  char b[32];
  int k = snprintf(b, sizeof b, "%c%lld\r\n", mark, (long long)n);
  resp_raw(o, b, (size_t)k);
}

void resp_simple(struct resp_out *o, const char *text) {
  line(o, '+', text);
}
void resp_error(struct resp_out *o, const char *text) {
  line(o, '-', text);
}
void resp_int(struct resp_out *o, int64_t v) {
  head(o, ':', v);
}

void resp_bulk(struct resp_out *o, const void *p, size_t len) {
  head(o, '$', (int64_t)len);
  resp_raw(o, p, len);
  resp_raw(o, "\r\n", 2);
}

void resp_bulk_str(struct resp_out *o, const char *s) {
  resp_bulk(o, s, strlen(s));
}

void resp_null(struct resp_out *o, int proto) {
  if (proto >= 3)
    resp_raw(o, "_\r\n", 3);
  else
    resp_raw(o, "$-1\r\n", 5);
}

void resp_array(struct resp_out *o, size_t n) {
  head(o, '*', (int64_t)n);
}

void resp_null_array(struct resp_out *o, int proto) {
  if (proto >= 3)
    resp_raw(o, "_\r\n", 3);
  else
    resp_raw(o, "*-1\r\n", 5);
}

void resp_map(struct resp_out *o, int proto, size_t pairs) {
  if (proto >= 3)
    head(o, '%', (int64_t)pairs);
  else
    head(o, '*', (int64_t)(2 * pairs));
}

void resp_set(struct resp_out *o, int proto, size_t n) {
  head(o, proto >= 3 ? '~' : '*', (int64_t)n);
}

void resp_attr(struct resp_out *o, int proto, size_t pairs) {
  if (proto >= 3)
    head(o, '|', (int64_t)pairs);
}

void resp_verbatim(struct resp_out *o, int proto, const char *text,
                   size_t len) {
  if (proto < 3) {
    resp_bulk(o, text, len);
    return;
  }
  head(o, '=', (int64_t)(len + 4));
  resp_raw(o, "txt:", 4);
  resp_raw(o, text, len);
  resp_raw(o, "\r\n", 2);
}
