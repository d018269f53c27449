/* node_json.c: JSON string escaping for structured log lines (node_json.h).
 */
#include <stdint.h>
#include <string.h>

#include "node_json.h"

/* utf8_len: the length of the well-formed UTF-8 sequence at @s (@n bytes
 * available), or 0 when @s does not start one (RFC 3629 §4, the table of
 * well-formed byte sequences). */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned char b = s[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xbf; /* bounds of the second byte */
  if (b >= 0xc2 && b <= 0xdf)
    len = 2;
  else if (b >= 0xe0 && b <= 0xef) {
    len = 3;
    if (b == 0xe0)
      lo = 0xa0; /* no overlong forms */
    else if (b == 0xed)
      hi = 0x9f; /* no surrogates */
  } else if (b >= 0xf0 && b <= 0xf4) {
    len = 4;
    if (b == 0xf0)
      lo = 0x90; /* no overlong forms */
    else if (b == 0xf4)
      hi = 0x8f; /* nothing above U+10FFFF */
  } else
    return 0; /* ASCII is handled by the caller; 0x80..0xc1, 0xf5.. never
                 start a sequence */
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xbf)
      return 0;
  return len;
}

size_t node_json_escape(char *out, size_t cap, const char *s, size_t len,
                        size_t *cut) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  size_t o = 0, i = 0;
  while (i < len) {
    char esc[6];
    const char *piece = esc;
    size_t plen, used = 1;
    unsigned char b = p[i];
    if (b == '"' || b == '\\') {
      esc[0] = '\\', esc[1] = (char)b, plen = 2;
    } else if (b < 0x20 || b == 0x7f) {
      static const char short_esc[0x20] = {
          ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};
      esc[0] = '\\';
      if (b < 0x20 && short_esc[b]) {
        esc[1] = short_esc[b], plen = 2;
      } else {
        memcpy(esc + 1, "u00", 3);
        esc[4] = hex[b >> 4], esc[5] = hex[b & 15], plen = 6;
      }
    } else if (b < 0x80) {
      piece = (const char *)p + i, plen = 1;
    } else if ((used = utf8_len(p + i, len - i)) > 0) {
      piece = (const char *)p + i, plen = used;
    } else {
      used = 1;
      piece = "\\ufffd", plen = 6;
    }
    if (cap - o < plen)
      break;
    memcpy(out + o, piece, plen);
    o += plen;
    i += used;
  }
  if (cut)
    *cut = len - i;
  return o;
}
