/* wire_frame.c: the streaming frame splitter: bytes cut at arbitrary points
 * in, whole frame bodies out, with bounded buffering.
 *
 * HOW IT WORKS. A frame is a 4-byte big-endian length L and L body bytes.
 * The splitter first collects the four prefix bytes (they may arrive one per
 * push), then checks L against the connection's limit before it keeps a
 * single body byte: a hostile 4 GiB prefix costs nothing. If the whole body
 * is already in the caller's chunk and nothing is buffered, the body is
 * returned in place (the common case for small requests: zero copies).
 * Otherwise the body accumulates in a buffer that grows by doubling as bytes
 * actually arrive, capped at L, so a peer that announces 16 MiB and sends 10
 * bytes holds 10-ish bytes of ours, not 16 MiB. After a buffered frame is
 * delivered the buffer is reused, or dropped if it grew beyond
 * WIRE_SPLITTER_KEEP so that one big frame does not pin memory on an idle
 * connection.
 */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "chorus_alloc.h"
#include "wire.h"

void wire_splitter_init(struct wire_splitter *s, uint32_t max_frame) {
  memset(s, 0, sizeof *s);
  if (max_frame == 0 || max_frame > WIRE_MAX_FRAME_HARD)
    max_frame = WIRE_MAX_FRAME_HARD;
  s->max_frame = max_frame;
}

void wire_splitter_fini(struct wire_splitter *s) {
  chorus_free(s->buf);
  s->buf = NULL;
  s->cap = s->have = 0;
}

size_t wire_splitter_buffered(const struct wire_splitter *s) {
  return s->delivered ? 0 : s->nhdr + s->have;
}

static int fail(struct wire_splitter *s, int code) {
  s->error = code;
  return code;
}

/* Makes room for @want body bytes (want <= s->need). */
static int reserve(struct wire_splitter *s, size_t want) {
  assert(want <= s->need);
  if (want <= s->cap)
    return CHORUS_OK;
  size_t cap = s->cap ? s->cap : 256;
  while (cap < want)
    cap *= 2;
  if (cap > s->need)
    cap = s->need;
  uint8_t *nb = chorus_realloc(s->buf, cap);
  if (!nb)
    return chorus_errf(s->errmsg, CHORUS_ENOMEM, "frame buffer of %zu bytes",
                       cap);
  s->buf = nb;
  s->cap = cap;
  assert(s->cap >= want);
  return CHORUS_OK;
}

int wire_splitter_push(struct wire_splitter *s, const uint8_t *data, size_t len,
                       size_t *consumed, struct wire_bytes *frame) {
  size_t i = 0;
  assert(data != NULL || len == 0);
  *consumed = 0;
  frame->ptr = NULL;
  frame->len = 0;
  if (s->error)
    return s->error;
  if (s->delivered) {
    s->delivered = false;
    s->have = 0;
    if (s->cap > WIRE_SPLITTER_KEEP) {
      chorus_free(s->buf);
      s->buf = NULL;
      s->cap = 0;
    }
  }
  /* Between pushes: either the prefix is incomplete and no body byte is
   * held, or it is whole and part of the body is (a whole one would have
   * been delivered). */
  assert(s->nhdr <= WIRE_FRAME_PREFIX);
  assert(s->nhdr == WIRE_FRAME_PREFIX ? s->have < s->need : s->have == 0);
  assert(s->have <= s->cap);

  if (s->nhdr < WIRE_FRAME_PREFIX) {
    while (s->nhdr < WIRE_FRAME_PREFIX && i < len)
      s->hdr[s->nhdr++] = data[i++];
    *consumed = i;
    if (s->nhdr < WIRE_FRAME_PREFIX)
      return 0;
    s->need = (uint32_t)s->hdr[0] << 24 | (uint32_t)s->hdr[1] << 16 |
              (uint32_t)s->hdr[2] << 8 | s->hdr[3];
    if (s->need == 0) {
      chorus_errf(s->errmsg, CHORUS_EMALFORMED,
                  "frame %" PRIu64 ": zero length prefix", s->frames);
      return fail(s, CHORUS_EMALFORMED);
    }
    if (s->need > s->max_frame) {
      chorus_errf(s->errmsg, CHORUS_ETOOBIG,
                  "frame %" PRIu64 ": length prefix %" PRIu32
                  " exceeds the limit of %" PRIu32,
                  s->frames, s->need, s->max_frame);
      return fail(s, CHORUS_ETOOBIG);
    }
  }

  size_t avail = len - i;
  if (s->have == 0 && avail >= s->need) {
    /* The whole body is in the caller's chunk: hand it out in place. */
    frame->ptr = data + i;
    frame->len = s->need;
    *consumed = i + s->need;
    s->nhdr = 0;
    s->frames++;
    return 1;
  }

  size_t take = s->need - s->have;
  if (take > avail)
    take = avail;
  if (take > 0) {
    int rc = reserve(s, s->have + take);
    if (rc)
      return fail(s, rc);
    assert(s->have + take <= s->cap && i + take <= len);
    memcpy(s->buf + s->have, data + i, take);
    s->have += take;
    i += take;
  }
  *consumed = i;
  if (s->have < s->need)
    return 0;
  assert(s->have == s->need);
  frame->ptr = s->buf;
  frame->len = s->need;
  s->nhdr = 0;
  s->delivered = true;
  s->frames++;
  return 1;
}
