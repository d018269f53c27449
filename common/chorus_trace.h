/* chorus_trace.h: the tracer seam through which decisions leave one line.
 *
 * Protocol state machines explain what they decided in plain sentences
 * ("coord k=42: 2/3 acks, W=2 -> reply OK", STYLE.md rule 11). They do not
 * print: they hand the line to an injected tracer. chorusd routes traces to
 * its log at debug level; the simulator stamps them with virtual time and
 * node and can hash or compare whole transcripts.
 *
 * A NULL tracer, or one with a NULL emit, is silent and costs one branch.
 */
#ifndef CHORUS_TRACE_H
#define CHORUS_TRACE_H

#include <stddef.h>

/* Longest trace line; longer ones are truncated. */
#define CHORUS_TRACE_LINE_MAX 512

struct chorus_tracer {
  /* Receives one line (no trailing newline) from @module ("swim", "coord",
   * "store"...). @line is borrowed for the duration of the call. */
  void (*emit)(void *ctx, const char *module, const char *line);
  void *ctx;
};

/* chorus_trace: formats a line and hands it to @tracer (which may be NULL). */
void chorus_trace(const struct chorus_tracer *tracer, const char *module,
                  const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* chorus_tracing: whether @tracer would emit; lets callers skip building
 * expensive arguments. */
static inline int chorus_tracing(const struct chorus_tracer *tracer) {
  return tracer != NULL && tracer->emit != NULL;
}

#endif /* CHORUS_TRACE_H */
