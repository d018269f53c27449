/* node_log.c: chorusd's structured log lines on stderr, with levels. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "chorus_trace.h"
#include "node_int.h"

static enum node_log_level log_level = NODE_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void node_log_set_level(enum node_log_level level) {
  log_level = level;
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

/* One write per line, so lines of concurrent processes sharing a terminal
 * (a local cluster) never interleave mid-line. */
static void vlog(enum node_log_level level, const char *module, const char *fmt,
                 va_list ap) __attribute__((format(printf, 3, 0)));
static void vlog(enum node_log_level level, const char *module, const char *fmt,
                 va_list ap) {
  char line[CHORUS_TRACE_LINE_MAX + 128];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(
      line, sizeof line,
      "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
      ts.tv_nsec / 1000000L, level_names[level], module);
  if (n < 0)
    return;
  size_t used = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  int m = vsnprintf(line + used, sizeof line - used, fmt, ap);
  if (m > 0)
    used += (size_t)m < sizeof line - used ? (size_t)m : sizeof line - used - 1;
  if (used > sizeof line - 2)
    used = sizeof line - 2;
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
