/* node_log.c: chorusd's structured log lines on stderr, with levels. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "chorus_trace.h"
#include "node_int.h"
#include "node_json.h"

static enum node_log_level log_level = NODE_LOG_INFO;
static enum node_log_format log_format = NODE_LOG_TEXT;
static char log_node[128]; /* --id, for json lines */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void node_log_set_level(enum node_log_level level) {
  log_level = level;
}

void node_log_set_format(enum node_log_format format, const char *node) {
  log_format = format;
  snprintf(log_node, sizeof log_node, "%s", node ? node : "");
}

int node_log_format_parse(const char *s, enum node_log_format *out) {
  if (strcmp(s, "text") == 0)
    *out = NODE_LOG_TEXT;
  else if (strcmp(s, "json") == 0)
    *out = NODE_LOG_JSON;
  else
    return CHORUS_EINVAL;
  return CHORUS_OK;
}

bool node_log_enabled(enum node_log_level level) {
  return level <= log_level;
}

int node_log_level_parse(const char *s, enum node_log_level *out) {
  for (int i = 0; i <= NODE_LOG_DEBUG; i++)
    if (strcasecmp(s, level_names[i]) == 0) {
      *out = (enum node_log_level)i;
      return CHORUS_OK;
    }
  if (strcasecmp(s, "warning") == 0) {
    *out = NODE_LOG_WARN;
    return CHORUS_OK;
  }
  return CHORUS_EINVAL;
}

/* The longest line either format writes, newline included: a line is one
 * write(2) (stderr is unbuffered) of at most this. */
#define LINE_MAX_BYTES (CHORUS_TRACE_LINE_MAX + 128)

/* json_line: @msg as one JSON object in @line (LINE_MAX_BYTES), without
 * the newline; its length. @msg is cut, at a character, to what fits: the
 * object is always closed, so every line parses. */
static size_t json_line(char *line, const char *stamp, const char *level,
                        const char *module, const char *msg, size_t mlen) {
  static const char tail[] = "\"}";
  size_t cap = LINE_MAX_BYTES - 1 - (sizeof tail - 1); /* newline, tail */
  size_t o = (size_t)snprintf(line, cap, "{\"ts\":\"%s\",\"level\":\"%s\"",
                              stamp, level);
  /* Module and node are ours (short, plain), escaped all the same. */
  static const char *const keys[] = {",\"module\":\"", "\",\"node\":\"",
                                     "\",\"msg\":\""};
  const char *vals[] = {module, log_node, msg};
  size_t lens[] = {strlen(module), strlen(log_node), mlen};
  for (int k = 0; k < 3 && o < cap; k++) {
    size_t kl = strlen(keys[k]);
    if (cap - o < kl)
      break;
    memcpy(line + o, keys[k], kl);
    o += kl;
    o += node_json_escape(line + o, cap - o, vals[k], lens[k], NULL);
  }
  memcpy(line + o, tail, sizeof tail - 1);
  return o + sizeof tail - 1;
}

/* One write per line, so lines of concurrent processes sharing a terminal
 * (a local cluster) never interleave mid-line. */
static void vlog(enum node_log_level level, const char *module, const char *fmt,
                 va_list ap) __attribute__((format(printf, 3, 0)));
static void vlog(enum node_log_level level, const char *module, const char *fmt,
                 va_list ap) {
  char line[LINE_MAX_BYTES];
  char stamp[64]; /* room for any int fields, for -Wformat-truncation */
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec, ts.tv_nsec / 1000000L);
  size_t used;
  if (log_format == NODE_LOG_JSON) {
    char msg[LINE_MAX_BYTES];
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t mlen = m < 0                    ? 0
                  : (size_t)m < sizeof msg ? (size_t)m
                                           : sizeof msg - 1;
    used = json_line(line, stamp, level_names[level], module, msg, mlen);
  } else {
    int n = snprintf(line, sizeof line, "%s %s %s: ", stamp, level_names[level],
                     module);
    if (n < 0)
      return;
    used = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    int m = vsnprintf(line + used, sizeof line - used, fmt, ap);
    if (m > 0)
      used +=
          (size_t)m < sizeof line - used ? (size_t)m : sizeof line - used - 1;
    if (used > sizeof line - 2)
      used = sizeof line - 2;
  }
  line[used++] = '\n';
  fwrite(line, 1, used, stderr);
}

void node_log(enum node_log_level level, const char *module, const char *fmt,
              ...) {
  if (level > log_level)
    return;
  va_list ap;
  va_start(ap, fmt);
  vlog(level, module, fmt, ap);
  va_end(ap);
}

static void trace_emit(void *ctx, const char *module, const char *line) {
  (void)ctx;
  node_log(NODE_LOG_DEBUG, module, "%s", line);
}

const struct chorus_tracer node_log_tracer = {trace_emit, NULL};

static void info_emit(void *ctx, const char *module, const char *line) {
  (void)ctx;
  node_log(NODE_LOG_INFO, module, "%s", line);
}

const struct chorus_tracer node_log_info_tracer = {info_emit, NULL};

static void warn_emit(void *ctx, const char *module, const char *line) {
  (void)ctx;
  node_log(NODE_LOG_WARN, module, "%s", line);
}

const struct chorus_tracer node_log_warn_tracer = {warn_emit, NULL};

void node__fatal(int rc, const char *what) {
  node_log(NODE_LOG_ERROR, NODE_MOD, "%s: %s; stopping", what,
           chorus_strerror(rc));
  exit(2);
}
