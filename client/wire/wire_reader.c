/* wire_reader.c: a bounded msgpack reader: header parsing, the generic
 * structural check every frame passes first, and the typed cursor reads.
 *
 * Nothing here allocates, and nothing trusts a header: every length is
 * compared with the bytes actually present before it is used. That is the
 * whole answer to msgpack-c issue 1013 (a 5-byte array32 header asking for
 * 4 billion elements): we never ask an unpacker to honour a count that the
 * frame cannot back.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "wire_int.h"

static uint64_t be(const uint8_t *p, unsigned n) {
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* ------------------------------------------------------------------------
 * Headers
 * ------------------------------------------------------------------------ */

/* Sets the header length and, when it is all there, the big-endian size
 * field of @n bytes that follows the first byte. */
static int need(size_t left, unsigned hlen, struct wire__head *h) {
  h->hlen = (uint8_t)hlen;
  return left < hlen ? -1 : 0;
}

static int head_parse(const uint8_t *p, size_t left, struct wire__head *h) {
  memset(h, 0, sizeof *h);
  if (left == 0)
    return -1;
  uint8_t b = p[0];
  h->first = b;
  h->hlen = 1;
  if (b <= 0x7f) {
    h->cls = WIRE__UINT;
    h->u = b;
    return 0;
  }
  if (b >= 0xe0) {
    h->cls = WIRE__NINT;
    h->i = (int8_t)b;
    return 0;
  }
  if (b <= 0x8f) {
    h->cls = WIRE__MAP;
    h->n = b & 0x0f;
    return 0;
  }
  if (b <= 0x9f) {
    h->cls = WIRE__ARRAY;
    h->n = b & 0x0f;
    return 0;
  }
  if (b <= 0xbf) {
    h->cls = WIRE__STR;
    h->n = b & 0x1f;
    return 0;
  }
  switch (b) {
  case 0xc0:
    h->cls = WIRE__NIL;
    return 0;
  case 0xc1:
    return -2;
  case 0xc2:
  case 0xc3:
    h->cls = WIRE__BOOL;
    h->u = b == 0xc3;
    return 0;
  case 0xc4:
  case 0xc5:
  case 0xc6: {
    unsigned w = 1u << (b - 0xc4);
    h->cls = WIRE__BIN;
    if (need(left, 1 + w, h))
      return -1;
    h->n = be(p + 1, w);
    return 0;
  }
  case 0xc7:
  case 0xc8:
  case 0xc9: {
    unsigned w = 1u << (b - 0xc7);
    h->cls = WIRE__EXT;
    if (need(left, 1 + w + 1, h)) /* size, then the ext type byte */
      return -1;
    h->n = be(p + 1, w);
    return 0;
  }
  case 0xca:
  case 0xcb:
    h->cls = WIRE__FLOAT;
    return need(left, b == 0xca ? 5 : 9, h);
  case 0xcc:
  case 0xcd:
  case 0xce:
  case 0xcf: {
    unsigned w = 1u << (b - 0xcc);
    h->cls = WIRE__UINT;
    if (need(left, 1 + w, h))
      return -1;
    h->u = be(p + 1, w);
    return 0;
  }
  case 0xd0:
  case 0xd1:
  case 0xd2:
  case 0xd3: {
    unsigned w = 1u << (b - 0xd0);
    if (need(left, 1 + w, h))
      return -1;
    uint64_t raw = be(p + 1, w);
    int64_t v;
    if (w < 8 && (raw >> (8 * w - 1)) & 1)
      raw |= ~UINT64_C(0) << (8 * w); /* sign-extend */
    memcpy(&v, &raw, sizeof v);
    if (v >= 0) {
      h->cls = WIRE__UINT;
      h->u = (uint64_t)v;
    } else {
      h->cls = WIRE__NINT;
      h->i = v;
    }
    return 0;
  }
  case 0xd4:
  case 0xd5:
  case 0xd6:
  case 0xd7:
  case 0xd8:
    h->cls = WIRE__EXT;
    h->n = 1u << (b - 0xd4);
    return need(left, 2, h); /* first byte and ext type */
  case 0xd9:
  case 0xda:
  case 0xdb: {
    unsigned w = 1u << (b - 0xd9);
    h->cls = WIRE__STR;
    if (need(left, 1 + w, h))
      return -1;
    h->n = be(p + 1, w);
    return 0;
  }
  case 0xdc:
  case 0xdd: {
    unsigned w = b == 0xdc ? 2 : 4;
    h->cls = WIRE__ARRAY;
    if (need(left, 1 + w, h))
      return -1;
    h->n = be(p + 1, w);
    return 0;
  }
  default: { /* 0xde, 0xdf */
    unsigned w = b == 0xde ? 2 : 4;
    h->cls = WIRE__MAP;
    if (need(left, 1 + w, h))
      return -1;
    h->n = be(p + 1, w);
    return 0;
  }
  }
}

int wire__head_parse(const uint8_t *p, size_t left, struct wire__head *h) {
  assert(p != NULL || left == 0);
  int rc = head_parse(p, left, h);
  /* A parsed header lies within the bytes given: callers step over it. */
  assert(rc != 0 || (h->hlen >= 1 && h->hlen <= left));
  assert(h->cls <= WIRE__EXT);
  return rc;
}

const char *wire__format_name(uint8_t b) {
  if (b <= 0x7f)
    return "positive fixint";
  if (b <= 0x8f)
    return "fixmap";
  if (b <= 0x9f)
    return "fixarray";
  if (b <= 0xbf)
    return "fixstr";
  if (b >= 0xe0)
    return "negative fixint";
  static const char *const names[] = {
      "nil",      "reserved 0xc1", "false",   "true",    "bin8",    "bin16",
      "bin32",    "ext8",          "ext16",   "ext32",   "float32", "float64",
      "uint8",    "uint16",        "uint32",  "uint64",  "int8",    "int16",
      "int32",    "int64",         "fixext1", "fixext2", "fixext4", "fixext8",
      "fixext16", "str8",          "str16",   "str32",   "array16", "array32",
      "map16",    "map32"};
  assert(b >= 0xc0 && (size_t)(b - 0xc0) < sizeof names / sizeof names[0]);
  return names[b - 0xc0];
}

/* ------------------------------------------------------------------------
 * Pass 1: structural check
 *
 * HOW IT WORKS. The walk keeps, for each open container, how many objects
 * it still owes, and in @pending the sum of all of them. Every object takes
 * at least one byte, so at any point `pending <= bytes left` must hold;
 * checking it whenever a container opens rejects an inflated count at its
 * header, before anything could be sized from it, including a chain of
 * array16 headers each claiming 65535 elements. Payload lengths (str, bin,
 * ext) must fit in the bytes left. The walk ends when the top-level object
 * is complete; any byte after it is an error.
 * ------------------------------------------------------------------------ */

int wire_msgpack_check(const uint8_t *buf, size_t len, uint32_t max_depth,
                       size_t *objects, char *errmsg) {
  uint64_t owed[WIRE_MAX_DEPTH + 1];
  unsigned depth = 0;
  uint64_t pending = 1;
  size_t pos = 0, count = 0;

  if (max_depth == 0 || max_depth > WIRE_MAX_DEPTH)
    max_depth = WIRE_MAX_DEPTH;
  owed[0] = 1; /* level 0: the one top-level object */
  while (pending > 0) {
    struct wire__head h;
    assert(pos <= len && depth <= max_depth);
    /* The innermost open level still owes an object (finished levels are
     * popped below), so the next object belongs to it. */
    assert(owed[depth] > 0 && owed[depth] <= pending);
    size_t left = len - pos;
    if (left == 0)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "truncated at offset %zu: %" PRIu64
                         " more objects expected",
                         pos, pending);
    int rc = wire__head_parse(buf + pos, left, &h);
    if (rc == -2)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "reserved byte 0xc1 at offset %zu", pos);
    if (rc < 0)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "truncated %s header at offset %zu: %u bytes "
                         "needed, %zu left",
                         wire__format_name(h.first), pos, h.hlen, left);
    size_t at = pos;
    pos += h.hlen;
    left -= h.hlen;
    count++;
    owed[depth]--;
    pending--;
    switch (h.cls) {
    case WIRE__STR:
    case WIRE__BIN:
    case WIRE__EXT:
      if (h.n > left)
        return chorus_errf(errmsg, CHORUS_EMALFORMED,
                           "%s at offset %zu declares %" PRIu64
                           " bytes, only %zu left",
                           wire__format_name(h.first), at, h.n, left);
      pos += (size_t)h.n;
      break;
    case WIRE__ARRAY:
    case WIRE__MAP: {
      uint64_t items = h.cls == WIRE__MAP ? 2 * h.n : h.n;
      /* An empty container is a level too: msgpack-c's unpacker refuses
       * one past its 32-deep stack (found by fuzz_wire_check). */
      if (depth + 1 > max_depth)
        return chorus_errf(errmsg, CHORUS_EMALFORMED,
                           "nesting deeper than %u at offset %zu", max_depth,
                           at);
      if (items == 0)
        break;
      if (items > left || pending + items > left)
        return chorus_errf(errmsg, CHORUS_EMALFORMED,
                           "%s at offset %zu declares %" PRIu64
                           " %s, only %zu bytes left",
                           wire__format_name(h.first), at, h.n,
                           h.cls == WIRE__MAP ? "pairs" : "elements", left);
      assert(depth + 1 <= WIRE_MAX_DEPTH);
      owed[++depth] = items;
      pending += items;
      break;
    }
    default:
      break;
    }
    while (depth > 0 && owed[depth] == 0)
      depth--;
  }
  if (pos != len)
    return chorus_errf(errmsg, CHORUS_EMALFORMED,
                       "%zu trailing bytes after the message at offset %zu",
                       len - pos, pos);
  /* Every object took at least its header's first byte. */
  assert(count <= len);
  if (objects)
    *objects = count;
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * Pass 2: typed cursor reads
 * ------------------------------------------------------------------------ */

static const char *cls_name(uint8_t cls) {
  static const char *const names[] = {"nil",   "bool", "uint", "negative int",
                                      "float", "str",  "bin",  "array",
                                      "map",   "ext"};
  assert(cls < sizeof names / sizeof names[0]);
  return names[cls];
}

static int rd_head(struct wire__rd *rd, struct wire__head *h, uint8_t want,
                   const char *what) {
  assert(rd->p >= rd->base);
  size_t at = (size_t)(rd->p - rd->base);
  int rc = wire__head_parse(rd->p, rd->left, h);
  if (rc < 0)
    return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                       "%s: truncated or reserved header at offset %zu", what,
                       at);
  bool is_int = h->cls == WIRE__UINT || h->cls == WIRE__NINT;
  bool want_int = want == WIRE__UINT || want == WIRE__NINT;
  if (h->cls != want && !(is_int && want_int))
    return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                       "%s: expected %s, got %s at offset %zu", what,
                       want_int ? "integer" : cls_name(want),
                       wire__format_name(h->first), at);
  rd->p += h->hlen;
  rd->left -= h->hlen;
  return CHORUS_OK;
}

static int rd_count(struct wire__rd *rd, uint8_t cls, uint64_t *n,
                    const char *what) {
  struct wire__head h;
  int rc = rd_head(rd, &h, cls, what);
  if (rc)
    return rc;
  uint64_t items = cls == WIRE__MAP ? 2 * h.n : h.n;
  if (items > rd->left)
    return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                       "%s: %" PRIu64 " entries but %zu bytes left", what, h.n,
                       rd->left);
  *n = h.n;
  return CHORUS_OK;
}

int wire__rd_array(struct wire__rd *rd, uint64_t *n, const char *what) {
  return rd_count(rd, WIRE__ARRAY, n, what);
}

int wire__rd_map(struct wire__rd *rd, uint64_t *n, const char *what) {
  return rd_count(rd, WIRE__MAP, n, what);
}

int wire__rd_uint(struct wire__rd *rd, uint64_t max, uint64_t *v,
                  const char *what) {
  struct wire__head h;
  int rc = rd_head(rd, &h, WIRE__UINT, what);
  if (rc)
    return rc;
  if (h.cls == WIRE__NINT)
    return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                       "%s: %" PRId64 " is negative", what, h.i);
  if (h.u > max)
    return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                       "%s: %" PRIu64 " out of range (max %" PRIu64 ")", what,
                       h.u, max);
  *v = h.u;
  return CHORUS_OK;
}

int wire__rd_int(struct wire__rd *rd, int64_t min, int64_t max, int64_t *v,
                 const char *what) {
  struct wire__head h;
  int rc = rd_head(rd, &h, WIRE__NINT, what);
  if (rc)
    return rc;
  if (h.cls == WIRE__UINT) {
    if (max < 0 || h.u > (uint64_t)max)
      return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                         "%s: %" PRIu64 " out of range [%" PRId64 ", %" PRId64
                         "]",
                         what, h.u, min, max);
    *v = (int64_t)h.u;
    return CHORUS_OK;
  }
  if (h.i < min || h.i > max)
    return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                       "%s: %" PRId64 " out of range [%" PRId64 ", %" PRId64
                       "]",
                       what, h.i, min, max);
  *v = h.i;
  return CHORUS_OK;
}

int wire__rd_bool(struct wire__rd *rd, bool *v, const char *what) {
  struct wire__head h;
  int rc = rd_head(rd, &h, WIRE__BOOL, what);
  if (rc)
    return rc;
  *v = h.u != 0;
  return CHORUS_OK;
}

int wire__rd_bytes(struct wire__rd *rd, bool text, uint64_t max,
                   struct wire_bytes *v, const char *what) {
  struct wire__head h;
  int rc = rd_head(rd, &h, text ? WIRE__STR : WIRE__BIN, what);
  if (rc)
    return rc;
  if (h.n > rd->left)
    return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                       "%s: %" PRIu64 " bytes declared, %zu left", what, h.n,
                       rd->left);
  if (h.n > max)
    return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                       "%s: %" PRIu64 " bytes exceeds the limit of %" PRIu64,
                       what, h.n, max);
  v->ptr = rd->p;
  v->len = (size_t)h.n;
  rd->p += h.n;
  rd->left -= (size_t)h.n;
  return CHORUS_OK;
}
