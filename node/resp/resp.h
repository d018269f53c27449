/* resp.h: the pure half of chorusd's RESP gateway (--resp): a parser of
 * Redis protocol commands and a writer of RESP2/RESP3 replies over a
 * growable buffer. No socket, clock or libuv here: bytes in, a command
 * (its arguments borrowed from those bytes) or a protocol error out, so
 * unit tests and a libFuzzer target reach all of it (node/node_resp.c is
 * the I/O half, docs/RESP.md the semantics).
 *
 * WHAT IS PARSED
 *
 * A client sends commands, one after the other (pipelining), each either
 *
 *   multibulk  "*" count CRLF, then count times "$" length CRLF bytes CRLF
 *   inline     a line of words separated by spaces or tabs, ended by LF
 *              (a CR before it is dropped), as redis-cli and telnet send
 *
 * as Redis reads them (its networking.c, processMultibulkBuffer and
 * processInlineBuffer); a count of 0 or less and an empty inline line are
 * no command at all (RESP_DONE with argc 0). Inline words have no quoting.
 *
 * HOW IT IS HARDENED
 *
 * Like the msgpack decoder (wire.h): nothing is allocated from a length a
 * client declared. resp_parse allocates nothing at all: arguments point
 * into the caller's buffer, in an array of the caller's of @max_args
 * entries. Every declared size is checked before it is believed:
 *
 *   count    1..max_args, else "invalid multibulk length"
 *   length   0..max_bulk, else "invalid bulk length"
 *   command  the sum of the declared lengths (and of each header) at most
 *            max_command, else "command too large": the caller never
 *            buffers more than that for one command
 *   headers  a "*" or "$" line ends within RESP_MAX_HEADER bytes
 *   inline   a line ends within max_inline bytes, else "too big inline
 *            request"; a word is an argument: max_args, max_bulk
 *   nesting  an argument is a bulk string: "*" inside a command is
 *            "expected '$'", so 10,000 nested arrays cost one byte's look
 *
 * An error is final for the connection: after garbage there is no telling
 * where the next command starts, so the gateway answers "-ERR Protocol
 * error: ..." and closes (as Redis does).
 *
 * The parser is stateless: called again on the same bytes plus more, it
 * parses from the start of the command. A partial command's headers are
 * re-read on each arrival, never its payload (lengths skip it), so a
 * 1 MiB argument arriving in 64 KiB reads costs 16 short walks.
 */
#ifndef CHORUS_RESP_H
#define CHORUS_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESP_MAX_HEADER 32u      /* "*"/"$" line bytes, CRLF included */
#define RESP_ERRMSG_SIZE 96u     /* resp_parse's @err */
#define RESP_MAX_ARGS_HARD 4096u /* no limit may exceed it */

struct resp_limits {
  uint32_t max_args;    /* arguments of one command, 1..RESP_MAX_ARGS_HARD */
  uint64_t max_bulk;    /* bytes of one argument */
  uint32_t max_inline;  /* bytes of an inline line, LF included */
  uint64_t max_command; /* bytes of one whole command */
};

struct resp_arg {
  const uint8_t *ptr; /* borrowed from the parsed buffer */
  size_t len;
};

enum resp_parse_result {
  RESP_MORE = 0, /* no whole command yet, and nothing wrong so far */
  RESP_DONE,     /* *@argc arguments in @argv; *@used bytes consumed */
  RESP_ERROR,    /* @err says what, for "-ERR Protocol error: <err>" */
};

/* resp_parse: the first command in @buf (@len bytes; NULL when 0).
 * @argv has room for @lim->max_args entries; they point into @buf and are
 * valid while it is. On RESP_DONE *@used is the command's length (the
 * next one starts there) and *@argc its arguments (0: nothing to run). On
 * RESP_ERROR @err (RESP_ERRMSG_SIZE) gets the reason. */
enum resp_parse_result resp_parse(const uint8_t *buf, size_t len,
                                  const struct resp_limits *lim,
                                  struct resp_arg *argv, size_t *argc,
                                  size_t *used, char *err);

/* ------------------------------------------------------------------------
 * Replies. A resp_out grows up to its @max bytes (0: no bound); past it,
 * or out of memory, @failed is set and later writes do nothing, so a
 * caller checks once at the end. @proto is 2 or 3: the null, map, set
 * and attribute forms differ (RESP3 has types of their own; RESP2 writes
 * a null bulk, a flat array of pairs, an array, and nothing).
 * ------------------------------------------------------------------------ */

struct resp_out {
  uint8_t *data;
  size_t len, cap, max;
  bool failed;
};

void resp_out_init(struct resp_out *o, size_t max);
void resp_out_free(struct resp_out *o);
void resp_raw(struct resp_out *o, const void *p, size_t len);
/* "+text": @text must hold no CR or LF (they are replaced by spaces). */
void resp_simple(struct resp_out *o, const char *text);
/* "-text": the same; @text starts with its code ("ERR ...", "WRONGTYPE"). */
void resp_error(struct resp_out *o, const char *text);
void resp_int(struct resp_out *o, int64_t v);
void resp_bulk(struct resp_out *o, const void *p, size_t len);
void resp_bulk_str(struct resp_out *o, const char *s);
void resp_null(struct resp_out *o, int proto);
void resp_array(struct resp_out *o, size_t n);
void resp_null_array(struct resp_out *o, int proto);
void resp_map(struct resp_out *o, int proto, size_t pairs);
void resp_set(struct resp_out *o, int proto, size_t n);
/* resp_attr: an attribute map of @pairs ahead of the next reply; RESP3
 * only: in RESP2 it writes nothing and the caller must write no pairs. */
void resp_attr(struct resp_out *o, int proto, size_t pairs);
/* resp_verbatim: "=len\r\ntxt:..." in RESP3, a bulk string in RESP2. */
void resp_verbatim(struct resp_out *o, int proto, const char *text, size_t len);

/* resp_int_parse: @p (@len bytes) as a signed 64-bit decimal, as Redis's
 * string2ll: optional '-', digits, no spaces, no leading '+' or zeros
 * (but "0"), no overflow. */
bool resp_int_parse(const uint8_t *p, size_t len, int64_t *out);

/* resp_arg_is: argument @a equals @word, ASCII case-insensitively. */
bool resp_arg_is(const struct resp_arg *a, const char *word);

#endif /* CHORUS_RESP_H */
