/* chorus_trace.c: formatting for the tracer seam. */
#include "chorus_trace.h"

#include <stdarg.h>
#include <stdio.h>

void chorus_trace(const struct chorus_tracer *tracer, const char *module,
                  const char *fmt, ...) {
  if (!chorus_tracing(tracer))
    return;
  char line[CHORUS_TRACE_LINE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  tracer->emit(tracer->ctx, module, line);
}
