/* fuzz_resp.c: libFuzzer target for the RESP command parser
 * (node/resp/resp.h). The first byte picks the limits (small ones, so
 * every bound is reached); the rest is what a client sent. Whatever the
 * bytes: the parser reads only what it is given (ASan), every argument
 * lies inside the input and within the limits, and parsing is consistent
 * across arrivals: a prefix parses to "more" or to the same answer as the
 * whole input, and once a prefix has an answer every longer one has it.
 * Parsed arguments then go through the reply writer, RESP2 and RESP3. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

#define MAXARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum resp_parse_result parse(const uint8_t *b, size_t n,
                                    const struct resp_limits *lim,
                                    struct resp_arg *argv, size_t *argc,
                                    size_t *used) {
  char err[RESP_ERRMSG_SIZE];
  enum resp_parse_result r = resp_parse(b, n, lim, argv, argc, used, err);
  if (r == RESP_ERROR && memchr(err, '\0', sizeof err) == NULL)
    abort();
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  struct resp_limits lim = {1u + (data[0] & 63u), 1u + (data[0] >> 2) * 8u,
                            1u + (data[0] & 0x0f) * 16u,
                            1u + (size_t)data[0] * 32u};
  const uint8_t *b = data + 1;
  size_t n = size - 1;
  struct resp_arg argv[MAXARGS], part[MAXARGS];
  size_t argc, used, pargc, pused;
  /* Commands one after the other, as the gateway reads a pipeline. */
  size_t off = 0;
  struct resp_out o;
  resp_out_init(&o, 1u << 16);
  for (;;) {
    enum resp_parse_result r =
        parse(off < n ? b + off : NULL, n - off, &lim, argv, &argc, &used);
    if (r != RESP_DONE)
      break;
    if (used == 0 || used > n - off || argc > lim.max_args)
      abort();
    for (size_t i = 0; i < argc; i++) {
      if (argv[i].ptr < b + off || argv[i].ptr + argv[i].len > b + off + used ||
          argv[i].len > lim.max_bulk)
        abort();
      resp_bulk(&o, argv[i].ptr, argv[i].len);
      resp_null(&o, 2 + (int)(i & 1));
    }
    /* The same command cut short: "more", or the same answer. */
    size_t step = used / 5 + 1;
    for (size_t k = 0; k < used; k += step) {
      enum resp_parse_result p =
          parse(k ? b + off : NULL, k, &lim, part, &pargc, &pused);
      if (p == RESP_ERROR)
        abort(); /* a prefix of a good command is never bad */
      if (p == RESP_DONE && (pused != used || pargc != argc))
        abort();
    }
    off += used;
    if (o.failed) /* the bound: a later write must not have happened */
      break;
  }
  resp_out_free(&o);
  return 0;
}
