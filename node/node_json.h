/* node_json.h: the JSON string escaper behind chorusd's --log-format json
 * (node_log.c). Pure: no I/O, no allocation, so it has a unit test of its
 * own (tests/node/test_node_json.c).
 *
 * WHAT IT WRITES. The bytes of a JSON string's inside (RFC 8259 §7),
 * without the quotes:
 *   - '"' and '\' as \" and \\;
 *   - control bytes 0x00..0x1f and DEL 0x7f as \b \f \n \r \t or \u00XX
 *     (DEL is legal JSON, escaped all the same so that a log line on a
 *     terminal shows what it holds);
 *   - well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
 *     nothing above U+10FFFF) copied as it is;
 *   - every byte that does not start a well-formed sequence as \ufffd
 *     (U+FFFD, the replacement character), one per byte: keys and values
 *     are bytes, and a log must neither fail to parse nor pass them on raw.
 * The output is always valid UTF-8 and valid JSON string content.
 */
#ifndef CHORUS_NODE_JSON_H
#define CHORUS_NODE_JSON_H

#include <stddef.h>

/* node_json_escape: escapes the @len bytes at @s into @out, which has room
 * for @cap bytes, and returns how many it wrote (no terminating NUL). When
 * the escaped form does not fit, it stops before the first character whose
 * escape would not fit whole (never half an escape or half a UTF-8
 * sequence) and sets *@cut (when not NULL) to the number of input bytes
 * left out; else *@cut is 0. */
size_t node_json_escape(char *out, size_t cap, const char *s, size_t len,
                        size_t *cut);

#endif /* CHORUS_NODE_JSON_H */
