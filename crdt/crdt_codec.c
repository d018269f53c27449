/* crdt_codec.c: encoders (msgpack-c's packer) and hardened decoders (a
 * bounded reader of our own) for every type in crdt.h.
 *
 * WHY OUR OWN READER
 *
 * msgpack-c's unpacker allocates what a header declares, so five bytes can
 * ask for gigabytes (DESIGN.md §6). Our formats use a handful of msgpack
 * shapes (unsigned ints, arrays, bins, nil), so a small reader that checks
 * every count against the bytes left before allocating is simpler than
 * pre-validating for msgpack-c. Nesting is fixed by each type's schema (at
 * most three levels), so there is no recursion to bound, except in the map,
 * whose nested maps recurse at most CRDT_MAP_DEPTH_MAX levels. Integers must
 * use msgpack's unsigned formats (what msgpack_pack_uint64 writes).
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "chorus_alloc.h"
#include "crdt_int.h"

/* ------------------------------------------------------------------------
 * Writing: a packer over a caller buffer, or a counter when buf is NULL
 * ------------------------------------------------------------------------ */

struct wr {
  uint8_t *buf; /* NULL: only count */
  size_t cap, len;
};

static int wr_cb(void *data, const char *p, size_t n) {
  struct wr *w = data;
  assert(w->buf == NULL || w->len <= w->cap);
  if (w->buf) {
    if (n > w->cap - w->len)
      return -1;
    memcpy(w->buf + w->len, p, n);
  }
  w->len += n;
  return 0;
}

typedef int (*body_fn)(msgpack_packer *pk, const void *x);

/* dvv is the one body with a version of its own (CRDT_FORMAT_DVV_V2). */
static int body_dvv(msgpack_packer *pk, const void *x);

/* Runs @body after the version byte, counting or writing. */
static int run_encoder(body_fn body, const void *x, uint8_t *buf, size_t cap,
                       size_t *written, size_t *size) {
  struct wr w = {buf, cap, 0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &w, wr_cb);
  const char version = body == body_dvv ? CRDT_FORMAT_DVV_V2 : CRDT_FORMAT_V1;
  if (wr_cb(&w, &version, 1) != 0 || body(&pk, x) != 0) {
    if (written)
      *written = 0;
    return CHORUS_ETOOBIG;
  }
  if (written)
    *written = w.len;
  if (size)
    *size = w.len;
  return CHORUS_OK;
}

static size_t encoded_size(body_fn body, const void *x) {
  size_t n = 0;
  (void)run_encoder(body, x, NULL, 0, NULL, &n);
  return n;
}

static int encode(body_fn body, const void *x, uint8_t *buf, size_t cap,
                  size_t *written) {
  if (buf == NULL && cap > 0)
    return CHORUS_EINVAL;
  return run_encoder(body, x, buf, cap, written, NULL);
}

static int pack_dot(msgpack_packer *pk, struct crdt_dot d) {
  return msgpack_pack_uint64(pk, d.node) | msgpack_pack_uint64(pk, d.counter);
}

static int pack_bin(msgpack_packer *pk, const uint8_t *p, uint32_t len) {
  if (msgpack_pack_bin(pk, len) != 0)
    return -1;
  return len ? msgpack_pack_bin_body(pk, p, len) : 0;
}

static int body_vv(msgpack_packer *pk, const void *x) {
  const struct vv *v = x;
  int rc = msgpack_pack_array(pk, (size_t)v->n * 2);
  for (uint32_t i = 0; i < v->n && rc == 0; i++)
    rc = msgpack_pack_uint64(pk, v->e[i].node) |
         msgpack_pack_uint64(pk, v->e[i].counter);
  return rc;
}

static int body_dvv(msgpack_packer *pk, const void *x) {
  const struct dvv *d = x;
  if (msgpack_pack_array(pk, 2) != 0 || body_vv(pk, &d->vv) != 0 ||
      msgpack_pack_array(pk, (size_t)d->n * 5) != 0)
    return -1;
  for (uint32_t i = 0; i < d->n; i++) {
    const struct dvv_sibling *s = &d->sib[i];
    if (pack_dot(pk, s->dot) != 0 || msgpack_pack_uint64(pk, s->ts) != 0 ||
        msgpack_pack_uint64(pk, s->expires) != 0)
      return -1;
    if ((s->tombstone ? msgpack_pack_nil(pk)
                      : pack_bin(pk, s->value, s->len)) != 0)
      return -1;
  }
  return 0;
}

static int body_hlc(msgpack_packer *pk, const void *x) {
  return msgpack_pack_uint64(pk, *(const hlc_time *)x);
}

static int body_gcounter(msgpack_packer *pk, const void *x) {
  return body_vv(pk, &((const struct gcounter *)x)->slots);
}

static void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

static int body_pncounter(msgpack_packer *pk, const void *x) {
  const struct pncounter *c = x;
  if (msgpack_pack_array(pk, c->n) != 0)
    return -1;
  for (uint32_t i = 0; i < c->n; i++) {
    const struct pncounter_slot *s = &c->s[i];
    uint8_t ops[16 * PNCOUNTER_OP_WINDOW];
    for (uint32_t k = 0; k < s->nops; k++) {
      put_be64(ops + 16 * k, s->ops[k].hi);
      put_be64(ops + 16 * k + 8, s->ops[k].lo);
    }
    if (msgpack_pack_array(pk, 4) != 0 ||
        msgpack_pack_uint64(pk, s->node) != 0 ||
        msgpack_pack_uint64(pk, s->p) != 0 ||
        msgpack_pack_uint64(pk, s->n) != 0 || pack_bin(pk, ops, 16 * s->nops))
      return -1;
  }
  return 0;
}

static int body_lww(msgpack_packer *pk, const void *x) {
  const struct lww *r = x;
  if (msgpack_pack_array(pk, 3) != 0 || msgpack_pack_uint64(pk, r->ts) != 0 ||
      msgpack_pack_uint64(pk, r->node) != 0)
    return -1;
  return r->present ? pack_bin(pk, r->value, r->len) : msgpack_pack_nil(pk);
}

/* A causal context's two fields, shared by the set and the context alone:
 * the vv body, then the cloud's dots (node, counter, ...). */
static int ctx_fields(msgpack_packer *pk, const struct crdt_ctx *c) {
  if (body_vv(pk, &c->vv) != 0 ||
      msgpack_pack_array(pk, (size_t)c->ncloud * 2) != 0)
    return -1;
  for (uint32_t i = 0; i < c->ncloud; i++)
    if (pack_dot(pk, c->cloud[i]) != 0)
      return -1;
  return 0;
}

static int body_ctx(msgpack_packer *pk, const void *x) {
  return msgpack_pack_array(pk, 2) != 0 ? -1 : ctx_fields(pk, x);
}

static int body_orset(msgpack_packer *pk, const void *x) {
  const struct orset *s = x;
  /* Kept removes are a fourth field, written only when there are some:
   * a set without them encodes as it always did. */
  if (msgpack_pack_array(pk, s->ndef ? 4 : 3) != 0 ||
      ctx_fields(pk, &s->ctx) != 0)
    return -1;
  if (msgpack_pack_array(pk, (size_t)s->n * 2) != 0)
    return -1;
  for (uint32_t i = 0; i < s->n; i++) {
    const struct orset_elem *e = &s->e[i];
    if (pack_bin(pk, e->data, e->len) != 0 ||
        msgpack_pack_array(pk, (size_t)e->ndots * 2) != 0)
      return -1;
    for (uint32_t k = 0; k < e->ndots; k++)
      if (pack_dot(pk, e->dots[k]) != 0)
        return -1;
  }
  if (s->ndef == 0)
    return 0;
  if (msgpack_pack_array(pk, (size_t)s->ndef * 3) != 0)
    return -1;
  for (uint32_t i = 0; i < s->ndef; i++)
    if (pack_bin(pk, s->def[i].data, s->def[i].len) != 0 ||
        ctx_fields(pk, &s->def[i].seen) != 0)
      return -1;
  return 0;
}

/* A map field's payload (crdt.h, map codec); fields recurse, at most
 * CRDT_MAP_DEPTH_MAX levels (the states written are valid ones). */
static int map_fields(msgpack_packer *pk, const struct crdt_map_field *p);

static int map_payload(msgpack_packer *pk, const struct crdt_map_field *f) {
  switch (f->type) {
  case CRDT_MAP_REGISTER:
  case CRDT_MAP_COUNTER:
  case CRDT_MAP_FLAG:
    if (msgpack_pack_array(pk, f->n) != 0)
      return -1;
    for (uint32_t i = 0; i < f->n; i++) {
      const struct crdt_map_entry *e = &f->ent[i];
      int rc = msgpack_pack_array(pk, f->type == CRDT_MAP_FLAG ? 3 : 4) |
               pack_dot(pk, e->dot) | msgpack_pack_uint64(pk, e->a);
      if (f->type == CRDT_MAP_REGISTER)
        rc |= pack_bin(pk, e->value, e->len);
      else if (f->type == CRDT_MAP_COUNTER)
        rc |= msgpack_pack_uint64(pk, e->b);
      if (rc != 0)
        return -1;
    }
    return 0;
  case CRDT_MAP_SET:
    if (msgpack_pack_array(pk, (size_t)f->n * 2) != 0)
      return -1;
    for (uint32_t i = 0; i < f->n; i++) {
      const struct orset_elem *e = &f->elem[i];
      if (pack_bin(pk, e->data, e->len) != 0 ||
          msgpack_pack_array(pk, (size_t)e->ndots * 2) != 0)
        return -1;
      for (uint32_t k = 0; k < e->ndots; k++)
        if (pack_dot(pk, e->dots[k]) != 0)
          return -1;
    }
    return 0;
  case CRDT_MAP_MAP:
    return map_fields(pk, f);
  }
  return -1;
}

static int map_fields(msgpack_packer *pk, const struct crdt_map_field *p) {
  if (msgpack_pack_array(pk, p->n) != 0)
    return -1;
  for (uint32_t i = 0; i < p->n; i++) {
    const struct crdt_map_field *f = &p->sub[i];
    if (msgpack_pack_array(pk, 3) != 0 || pack_bin(pk, f->name, f->namelen) ||
        msgpack_pack_uint64(pk, f->type) != 0 || map_payload(pk, f) != 0)
      return -1;
  }
  return 0;
}

static int body_map(msgpack_packer *pk, const void *x) {
  const struct crdt_map *m = x;
  if (msgpack_pack_array(pk, 2) != 0 || msgpack_pack_array(pk, 2) != 0 ||
      ctx_fields(pk, &m->ctx) != 0)
    return -1;
  return map_fields(pk, &m->root);
}

struct map_ops {
  const struct crdt_map_op *ops;
  uint32_t n;
};

static int body_map_ops(msgpack_packer *pk, const void *x) {
  const struct map_ops *o = x;
  if (msgpack_pack_array(pk, o->n) != 0)
    return -1;
  for (uint32_t i = 0; i < o->n; i++) {
    const struct crdt_map_op *op = &o->ops[i];
    if (msgpack_pack_array(pk, 5) != 0 ||
        msgpack_pack_uint64(pk, (uint64_t)op->kind) != 0 ||
        msgpack_pack_array(pk, (size_t)op->depth * 2) != 0)
      return -1;
    for (uint32_t k = 0; k < op->depth; k++)
      if (pack_bin(pk, op->path[k].name, op->path[k].len) != 0 ||
          msgpack_pack_uint64(pk, (uint64_t)op->path[k].type) != 0)
        return -1;
    uint64_t mag = op->amount < 0 ? (uint64_t)(-(op->amount + 1)) + 1
                                  : (uint64_t)op->amount;
    if (pack_bin(pk, op->data, op->len) != 0 ||
        msgpack_pack_uint64(pk, mag) != 0 ||
        msgpack_pack_uint64(pk, op->amount < 0) != 0)
      return -1;
  }
  return 0;
}

/* Only states that keep the representation invariants (crdt_int.h) are
 * written: the invariants the decoders check on what they read. */
size_t vv_encoded_size(const struct vv *v) {
  assert(crdt__vv_valid(v));
  return encoded_size(body_vv, v);
}
int vv_encode(const struct vv *v, uint8_t *buf, size_t cap, size_t *written) {
  assert(crdt__vv_valid(v));
  return encode(body_vv, v, buf, cap, written);
}
size_t dvv_encoded_size(const struct dvv *d) {
  assert(crdt__dvv_valid(d));
  return encoded_size(body_dvv, d);
}
int dvv_encode(const struct dvv *d, uint8_t *buf, size_t cap, size_t *written) {
  assert(crdt__dvv_valid(d));
  return encode(body_dvv, d, buf, cap, written);
}
size_t hlc_encoded_size(hlc_time t) {
  return encoded_size(body_hlc, &t);
}
int hlc_encode(hlc_time t, uint8_t *buf, size_t cap, size_t *written) {
  return encode(body_hlc, &t, buf, cap, written);
}
size_t gcounter_encoded_size(const struct gcounter *c) {
  assert(crdt__vv_valid(&c->slots));
  return encoded_size(body_gcounter, c);
}
int gcounter_encode(const struct gcounter *c, uint8_t *buf, size_t cap,
                    size_t *written) {
  assert(crdt__vv_valid(&c->slots));
  return encode(body_gcounter, c, buf, cap, written);
}
size_t pncounter_encoded_size(const struct pncounter *c) {
  assert(crdt__pncounter_valid(c));
  return encoded_size(body_pncounter, c);
}
int pncounter_encode(const struct pncounter *c, uint8_t *buf, size_t cap,
                     size_t *written) {
  assert(crdt__pncounter_valid(c));
  return encode(body_pncounter, c, buf, cap, written);
}
size_t lww_encoded_size(const struct lww *r) {
  assert(crdt__lww_valid(r));
  return encoded_size(body_lww, r);
}
int lww_encode(const struct lww *r, uint8_t *buf, size_t cap, size_t *written) {
  assert(crdt__lww_valid(r));
  return encode(body_lww, r, buf, cap, written);
}
size_t orset_encoded_size(const struct orset *s) {
  assert(crdt__orset_valid(s));
  return encoded_size(body_orset, s);
}
int orset_encode(const struct orset *s, uint8_t *buf, size_t cap,
                 size_t *written) {
  assert(crdt__orset_valid(s));
  return encode(body_orset, s, buf, cap, written);
}
size_t crdt_ctx_encoded_size(const struct crdt_ctx *c) {
  assert(crdt__ctx_valid(c));
  return encoded_size(body_ctx, c);
}
int crdt_ctx_encode(const struct crdt_ctx *c, uint8_t *buf, size_t cap,
                    size_t *written) {
  assert(crdt__ctx_valid(c));
  return encode(body_ctx, c, buf, cap, written);
}
/* Operations are written as given: crdt_map_update judges them. */
size_t crdt_map_ops_encoded_size(const struct crdt_map_op *ops, uint32_t n) {
  struct map_ops o = {ops, n};
  assert(n <= CRDT_MAP_OPS_MAX);
  return encoded_size(body_map_ops, &o);
}
int crdt_map_ops_encode(const struct crdt_map_op *ops, uint32_t n, uint8_t *buf,
                        size_t cap, size_t *written) {
  struct map_ops o = {ops, n};
  for (uint32_t i = 0; i < n; i++)
    if (ops[i].depth < 1 || ops[i].depth > CRDT_MAP_DEPTH_MAX)
      return CHORUS_EINVAL;
  if (n == 0 || n > CRDT_MAP_OPS_MAX)
    return CHORUS_EINVAL;
  return encode(body_map_ops, &o, buf, cap, written);
}
size_t crdt_map_encoded_size(const struct crdt_map *m) {
  assert(crdt__map_valid(m));
  return encoded_size(body_map, m);
}
int crdt_map_encode(const struct crdt_map *m, uint8_t *buf, size_t cap,
                    size_t *written) {
  assert(crdt__map_valid(m));
  return encode(body_map, m, buf, cap, written);
}

/* ------------------------------------------------------------------------
 * Reading: every count checked against the bytes left before use
 * ------------------------------------------------------------------------ */

struct rd {
  const uint8_t *start, *p, *end;
  char *errmsg;
};

static size_t rd_left(const struct rd *r) {
  assert(r->p <= r->end); /* every advance was checked against it */
  return (size_t)(r->end - r->p);
}

__attribute__((format(printf, 2, 3))) static int rd_fail(struct rd *r,
                                                         const char *fmt, ...) {
  if (r->errmsg) {
    char what[CHORUS_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    chorus_errf(r->errmsg, CHORUS_EMALFORMED, "%s at byte %zu", what,
                (size_t)(r->p - r->start));
  }
  return CHORUS_EMALFORMED;
}

/* Reads @n big-endian bytes after a tag. */
static int rd_be(struct rd *r, unsigned n, uint64_t *v, const char *what) {
  if (rd_left(r) < n)
    return rd_fail(r, "%s: truncated", what);
  uint64_t x = 0;
  for (unsigned i = 0; i < n; i++)
    x = (x << 8) | r->p[i];
  r->p += n;
  *v = x;
  return CHORUS_OK;
}

static int rd_version(struct rd *r, const char *what) {
  if (rd_left(r) < 1)
    return rd_fail(r, "%s: empty input", what);
  if (*r->p != CRDT_FORMAT_V1) {
    if (r->errmsg)
      chorus_errf(r->errmsg, CHORUS_EVERSION, "%s: unknown format version %u",
                  what, *r->p);
    return CHORUS_EVERSION;
  }
  r->p++;
  return CHORUS_OK;
}

static int rd_uint(struct rd *r, uint64_t *v, const char *what) {
  if (rd_left(r) < 1)
    return rd_fail(r, "%s: truncated", what);
  uint8_t tag = *r->p++;
  if (tag <= 0x7f) {
    *v = tag;
    return CHORUS_OK;
  }
  switch (tag) {
  case 0xcc:
    return rd_be(r, 1, v, what);
  case 0xcd:
    return rd_be(r, 2, v, what);
  case 0xce:
    return rd_be(r, 4, v, what);
  case 0xcf:
    return rd_be(r, 8, v, what);
  default:
    r->p--;
    return rd_fail(r, "%s: expected an unsigned integer, got tag 0x%02x", what,
                   tag);
  }
}

/* An array header whose @n elements each need at least @min_bytes. */
static int rd_array(struct rd *r, uint32_t *n, size_t min_bytes,
                    const char *what) {
  assert(min_bytes > 0);
  if (rd_left(r) < 1)
    return rd_fail(r, "%s: truncated", what);
  uint8_t tag = *r->p++;
  uint64_t count = 0;
  int rc = CHORUS_OK;
  if ((tag & 0xf0) == 0x90)
    count = tag & 0x0f;
  else if (tag == 0xdc)
    rc = rd_be(r, 2, &count, what);
  else if (tag == 0xdd)
    rc = rd_be(r, 4, &count, what);
  else {
    r->p--;
    return rd_fail(r, "%s: expected an array, got tag 0x%02x", what, tag);
  }
  if (rc != CHORUS_OK)
    return rc;
  if (count > rd_left(r) / min_bytes)
    return rd_fail(r, "%s: array of %llu elements in %zu bytes", what,
                   (unsigned long long)count, rd_left(r));
  *n = (uint32_t)count;
  return CHORUS_OK;
}

/* An exact array length. */
static int rd_tuple(struct rd *r, uint32_t want, const char *what) {
  /* Set on success only; zeroed because gcc -O3 cannot always see that
   * (it warned once crdt_ctx_decode became a third inliner). */
  uint32_t n = 0;
  int rc = rd_array(r, &n, 1, what);
  if (rc == CHORUS_OK && n != want)
    return rd_fail(r, "%s: expected %u fields, got %u", what, want, n);
  return rc;
}

/* A bin (or nil when @nil_ok; *@nil says which). */
static int rd_bin(struct rd *r, const uint8_t **p, uint32_t *len, size_t max,
                  bool nil_ok, bool *nil, const char *what) {
  if (rd_left(r) < 1)
    return rd_fail(r, "%s: truncated", what);
  uint8_t tag = *r->p++;
  uint64_t n = 0;
  int rc;
  if (nil)
    *nil = false;
  if (tag == 0xc0 && nil_ok) {
    *nil = true;
    *p = NULL;
    *len = 0;
    return CHORUS_OK;
  }
  if (tag == 0xc4)
    rc = rd_be(r, 1, &n, what);
  else if (tag == 0xc5)
    rc = rd_be(r, 2, &n, what);
  else if (tag == 0xc6)
    rc = rd_be(r, 4, &n, what);
  else {
    r->p--;
    return rd_fail(r, "%s: expected bin%s, got tag 0x%02x", what,
                   nil_ok ? " or nil" : "", tag);
  }
  if (rc != CHORUS_OK)
    return rc;
  if (n > rd_left(r))
    return rd_fail(r, "%s: %llu bytes declared, %zu left", what,
                   (unsigned long long)n, rd_left(r));
  if (n > max)
    return rd_fail(r, "%s: %llu bytes exceed the limit of %zu", what,
                   (unsigned long long)n, max);
  *p = r->p;
  *len = (uint32_t)n;
  r->p += n;
  return CHORUS_OK;
}

static int rd_end(struct rd *r, const char *what) {
  if (r->p != r->end)
    return rd_fail(r, "%s: %zu trailing bytes", what, rd_left(r));
  return CHORUS_OK;
}

static int rd_dot(struct rd *r, struct crdt_dot *d, const char *what) {
  int rc = rd_uint(r, &d->node, what);
  if (rc == CHORUS_OK)
    rc = rd_uint(r, &d->counter, what);
  if (rc == CHORUS_OK && d->counter == 0)
    return rd_fail(r, "%s: dot counter 0", what);
  if (rc == CHORUS_OK && d->counter > CRDT_EVENT_MAX)
    return rd_fail(r, "%s: dot counter %llu over the event bound", what,
                   (unsigned long long)d->counter);
  return rc;
}

/* A vv body into an initialised (empty) @v; counters above @max are
 * refused (CRDT_EVENT_MAX for causal contexts, UINT64_MAX for counts). */
static int rd_vv(struct rd *r, struct vv *v, uint64_t max, const char *what) {
  uint32_t n;
  int rc = rd_array(r, &n, 1, what);
  if (rc != CHORUS_OK)
    return rc;
  if (n % 2)
    return rd_fail(r, "%s: odd vector array length %u", what, n);
  if (crdt__vv_reserve(v, n / 2) != CHORUS_OK)
    return CHORUS_ENOMEM;
  for (uint32_t i = 0; i < n / 2; i++) {
    struct vv_entry e;
    if ((rc = rd_uint(r, &e.node, what)) != CHORUS_OK ||
        (rc = rd_uint(r, &e.counter, what)) != CHORUS_OK)
      return rc;
    if (e.counter == 0)
      return rd_fail(r, "%s: zero counter for node %016llx", what,
                     (unsigned long long)e.node);
    if (e.counter > max)
      return rd_fail(r, "%s: counter %llu for node %016llx over the bound",
                     what, (unsigned long long)e.counter,
                     (unsigned long long)e.node);
    if (i > 0 && e.node <= v->e[i - 1].node)
      return rd_fail(r, "%s: nodes not strictly ascending", what);
    v->e[v->n++] = e;
  }
  return CHORUS_OK;
}

int vv_decode(struct vv *out, const uint8_t *buf, size_t len, char *errmsg) {
  struct rd r = {buf, buf, buf + len, errmsg};
  vv_init(out);
  int rc = rd_version(&r, "vv");
  if (rc == CHORUS_OK)
    rc = rd_vv(&r, out, CRDT_EVENT_MAX, "vv");
  if (rc == CHORUS_OK)
    rc = rd_end(&r, "vv");
  if (rc != CHORUS_OK)
    vv_free(out);
  assert(rc != CHORUS_OK || crdt__vv_valid(out));
  return rc;
}

/* dvv_decode reads both layouts (crdt.h): V1's siblings are triples
 * (dot, value), V2's 5-tuples (dot, ts, expires, value). */
int dvv_decode(struct dvv *out, const uint8_t *buf, size_t len, char *errmsg) {
  struct rd r = {buf, buf, buf + len, errmsg};
  dvv_init(out);
  uint32_t n, width = 3;
  int rc;
  if (rd_left(&r) >= 1 && *r.p == CRDT_FORMAT_DVV_V2) {
    r.p++;
    width = 5;
  } else if ((rc = rd_version(&r, "dvv")) != CHORUS_OK) {
    goto err_after_init;
  }
  if ((rc = rd_tuple(&r, 2, "dvv")) != CHORUS_OK ||
      (rc = rd_vv(&r, &out->vv, CRDT_EVENT_MAX, "dvv vv")) != CHORUS_OK ||
      (rc = rd_array(&r, &n, 1, "dvv siblings")) != CHORUS_OK)
    goto err_after_init;
  if (n % width) {
    rc = rd_fail(&r, "dvv siblings: array length %u not a multiple of %u", n,
                 width);
    goto err_after_init;
  }
  if (crdt__grow((void **)&out->sib, &out->cap, n / width, sizeof *out->sib) !=
      CHORUS_OK) {
    rc = CHORUS_ENOMEM;
    goto err_after_init;
  }
  for (uint32_t i = 0; i < n / width; i++) {
    struct dvv_sibling s = {{0, 0}, NULL, 0, false, 0, 0};
    const uint8_t *p;
    bool nil;
    if ((rc = rd_dot(&r, &s.dot, "dvv sibling dot")) != CHORUS_OK ||
        (width == 5 &&
         ((rc = rd_uint(&r, &s.ts, "dvv sibling ts")) != CHORUS_OK ||
          (rc = rd_uint(&r, &s.expires, "dvv sibling expires")) !=
              CHORUS_OK)) ||
        (rc = rd_bin(&r, &p, &s.len, DVV_VALUE_MAX, true, &nil,
                     "dvv sibling value")) != CHORUS_OK)
      goto err_after_init;
    if (s.expires != 0 && (nil || s.expires <= s.ts)) {
      rc = rd_fail(&r, "dvv sibling expires at %llu, %s",
                   (unsigned long long)s.expires,
                   nil ? "a tombstone" : "not after its ts");
      goto err_after_init;
    }
    if (i > 0 && crdt__dot_cmp(out->sib[i - 1].dot, s.dot) >= 0) {
      rc = rd_fail(&r, "dvv siblings: dots not strictly ascending");
      goto err_after_init;
    }
    if (!vv_covers(&out->vv, s.dot)) {
      rc = rd_fail(&r, "dvv sibling dot (%016llx, %llu) not covered by the vv",
                   (unsigned long long)s.dot.node,
                   (unsigned long long)s.dot.counter);
      goto err_after_init;
    }
    s.tombstone = nil;
    s.value = NULL;
    if (s.len && (s.value = chorus_memdup(p, s.len)) == NULL) {
      rc = CHORUS_ENOMEM;
      goto err_after_init;
    }
    out->sib[out->n++] = s;
  }
  if ((rc = rd_end(&r, "dvv")) != CHORUS_OK)
    goto err_after_init;
  assert(crdt__dvv_valid(out));
  return CHORUS_OK;

err_after_init:
  dvv_free(out);
  return rc;
}

int hlc_decode(hlc_time *out, const uint8_t *buf, size_t len, char *errmsg) {
  struct rd r = {buf, buf, buf + len, errmsg};
  uint64_t v = 0;
  int rc;
  if ((rc = rd_version(&r, "hlc")) != CHORUS_OK ||
      (rc = rd_uint(&r, &v, "hlc")) != CHORUS_OK ||
      (rc = rd_end(&r, "hlc")) != CHORUS_OK)
    return rc;
  *out = v;
  return CHORUS_OK;
}

int gcounter_decode(struct gcounter *out, const uint8_t *buf, size_t len,
                    char *errmsg) {
  struct rd r = {buf, buf, buf + len, errmsg};
  gcounter_init(out);
  int rc;
  if ((rc = rd_version(&r, "gcounter")) != CHORUS_OK ||
      (rc = rd_vv(&r, &out->slots, UINT64_MAX, "gcounter")) != CHORUS_OK ||
      (rc = rd_end(&r, "gcounter")) != CHORUS_OK)
    gcounter_free(out);
  assert(rc != CHORUS_OK || crdt__vv_valid(&out->slots));
  return rc;
}

int pncounter_decode(struct pncounter *out, const uint8_t *buf, size_t len,
                     char *errmsg) {
  struct rd r = {buf, buf, buf + len, errmsg};
  pncounter_init(out);
  uint32_t n;
  int rc;
  if ((rc = rd_version(&r, "counter")) != CHORUS_OK ||
      (rc = rd_array(&r, &n, 5, "counter slots")) != CHORUS_OK)
    goto err_after_init;
  if (crdt__grow((void **)&out->s, &out->cap, n, sizeof *out->s) != CHORUS_OK) {
    rc = CHORUS_ENOMEM;
    goto err_after_init;
  }
  for (uint32_t i = 0; i < n; i++) {
    struct pncounter_slot s;
    const uint8_t *ops;
    uint32_t opslen;
    memset(&s, 0, sizeof s);
    if ((rc = rd_tuple(&r, 4, "counter slot")) != CHORUS_OK ||
        (rc = rd_uint(&r, &s.node, "counter slot node")) != CHORUS_OK ||
        (rc = rd_uint(&r, &s.p, "counter slot p")) != CHORUS_OK ||
        (rc = rd_uint(&r, &s.n, "counter slot n")) != CHORUS_OK ||
        (rc = rd_bin(&r, &ops, &opslen, 16 * PNCOUNTER_OP_WINDOW, false, NULL,
                     "counter slot ops")) != CHORUS_OK)
      goto err_after_init;
    if (i > 0 && s.node <= out->s[i - 1].node) {
      rc = rd_fail(&r, "counter slots: nodes not strictly ascending");
      goto err_after_init;
    }
    if (s.p == 0 && s.n == 0) {
      rc = rd_fail(&r, "counter slot %016llx is empty",
                   (unsigned long long)s.node);
      goto err_after_init;
    }
    if (opslen % 16) {
      rc = rd_fail(&r, "counter slot ops: %u bytes, not whole op ids", opslen);
      goto err_after_init;
    }
    s.nops = opslen / 16;
    for (uint32_t k = 0; k < s.nops; k++) {
      s.ops[k].hi = get_be64(ops + 16 * k);
      s.ops[k].lo = get_be64(ops + 16 * k + 8);
      if (s.ops[k].hi == 0 && s.ops[k].lo == 0) {
        rc = rd_fail(&r, "counter slot ops: zero op id");
        goto err_after_init;
      }
    }
    out->s[out->n++] = s;
  }
  if ((rc = rd_end(&r, "counter")) != CHORUS_OK)
    goto err_after_init;
  assert(crdt__pncounter_valid(out));
  return CHORUS_OK;

err_after_init:
  pncounter_free(out);
  return rc;
}

int lww_decode(struct lww *out, const uint8_t *buf, size_t len, char *errmsg) {
  struct rd r = {buf, buf, buf + len, errmsg};
  lww_init(out);
  const uint8_t *p;
  uint32_t n;
  bool nil;
  int rc;
  if ((rc = rd_version(&r, "lww")) != CHORUS_OK ||
      (rc = rd_tuple(&r, 3, "lww")) != CHORUS_OK ||
      (rc = rd_uint(&r, &out->ts, "lww ts")) != CHORUS_OK ||
      (rc = rd_uint(&r, &out->node, "lww node")) != CHORUS_OK ||
      (rc = rd_bin(&r, &p, &n, DVV_VALUE_MAX, true, &nil, "lww value")) !=
          CHORUS_OK ||
      (rc = rd_end(&r, "lww")) != CHORUS_OK) {
    lww_init(out);
    return rc;
  }
  out->present = !nil;
  out->len = n;
  if (n && (out->value = chorus_memdup(p, n)) == NULL) {
    lww_init(out);
    return CHORUS_ENOMEM;
  }
  assert(crdt__lww_valid(out));
  return CHORUS_OK;
}

/* A causal context's two fields (ctx_fields) into an initialised (empty)
 * @c, in canonical form only; @what names the owner in errors. */
static int rd_ctx_fields(struct rd *r, struct crdt_ctx *c, const char *what) {
  uint32_t n;
  int rc;
  if ((rc = rd_vv(r, &c->vv, CRDT_EVENT_MAX, what)) != CHORUS_OK ||
      (rc = rd_array(r, &n, 1, what)) != CHORUS_OK)
    return rc;
  if (n % 2)
    return rd_fail(r, "%s cloud: odd array length %u", what, n);
  if (crdt__grow((void **)&c->cloud, &c->capcloud, n / 2, sizeof *c->cloud) !=
      CHORUS_OK)
    return CHORUS_ENOMEM;
  for (uint32_t i = 0; i < n / 2; i++) {
    struct crdt_dot d;
    if ((rc = rd_dot(r, &d, what)) != CHORUS_OK)
      return rc;
    if (i > 0 && crdt__dot_cmp(c->cloud[i - 1], d) >= 0)
      return rd_fail(r, "%s cloud: dots not strictly ascending", what);
    /* Canonical form: a cloud dot is neither covered by nor contiguous
     * with the vv (it would have been compacted). */
    if (d.counter <= vv_get(&c->vv, d.node) + 1)
      return rd_fail(r, "%s cloud: dot (%016llx, %llu) not compacted", what,
                     (unsigned long long)d.node, (unsigned long long)d.counter);
    c->cloud[c->ncloud++] = d;
  }
  return CHORUS_OK;
}

int crdt_ctx_decode(struct crdt_ctx *out, const uint8_t *buf, size_t len,
                    char *errmsg) {
  struct rd r = {buf, buf, buf + len, errmsg};
  crdt_ctx_init(out);
  int rc;
  if ((rc = rd_version(&r, "context")) != CHORUS_OK ||
      (rc = rd_tuple(&r, 2, "context")) != CHORUS_OK ||
      (rc = rd_ctx_fields(&r, out, "context")) != CHORUS_OK ||
      (rc = rd_end(&r, "context")) != CHORUS_OK) {
    crdt_ctx_free(out);
    return rc;
  }
  assert(crdt__ctx_valid(out));
  return CHORUS_OK;
}

/* A set's kept removes (crdt.h, orset codec) into @out, whose elements
 * and context are read: present only when there are some, each canonical
 * and not yet settled (its context not covered by the set's, no element
 * dot it covers). */
static int rd_set_deferred(struct rd *r, struct orset *out) {
  uint32_t n;
  int rc = rd_array(r, &n, 1, "set removes");
  if (rc != CHORUS_OK)
    return rc;
  if (n == 0 || n % 3)
    return rd_fail(r, "set removes: array length %u", n);
  if ((out->def = chorus_calloc(n / 3, sizeof *out->def)) == NULL)
    return CHORUS_ENOMEM;
  for (uint32_t i = 0; i < n / 3; i++) {
    struct orset_deferred *d = &out->def[i];
    const uint8_t *p;
    crdt_ctx_init(&d->seen);
    out->ndef++; /* freed with the set from here on */
    if ((rc = rd_bin(r, &p, &d->len, ORSET_ELEM_MAX, false, NULL,
                     "set remove's element")) != CHORUS_OK)
      return rc;
    if (i > 0 && crdt__bytes_cmp(out->def[i - 1].data, out->def[i - 1].len, p,
                                 d->len) >= 0)
      return rd_fail(r, "set removes: not strictly ascending");
    if (d->len && (d->data = chorus_memdup(p, d->len)) == NULL)
      return CHORUS_ENOMEM;
    if ((rc = rd_ctx_fields(r, &d->seen, "set remove's context")) != CHORUS_OK)
      return rc;
    if (crdt_ctx_covers_all(&out->ctx, &d->seen))
      return rd_fail(r, "set remove's context covered by the set's: settled");
    bool found = false;
    for (uint32_t j = 0; j < out->n && !found; j++)
      if (crdt__bytes_cmp(out->e[j].data, out->e[j].len, d->data, d->len) == 0)
        for (uint32_t k = 0; k < out->e[j].ndots && !found; k++)
          found = crdt_ctx_covers(&d->seen, out->e[j].dots[k]);
    if (found)
      return rd_fail(r, "set remove covers a dot its element keeps");
  }
  return CHORUS_OK;
}

int orset_decode(struct orset *out, const uint8_t *buf, size_t len,
                 char *errmsg) {
  struct rd r = {buf, buf, buf + len, errmsg};
  orset_init(out);
  uint32_t n;
  int rc;
  uint32_t fields = 0;
  if ((rc = rd_version(&r, "set")) != CHORUS_OK ||
      (rc = rd_array(&r, &fields, 1, "set")) != CHORUS_OK)
    goto err_after_init;
  if (fields != 3 && fields != 4) {
    rc = rd_fail(&r, "set: expected 3 or 4 fields, got %u", fields);
    goto err_after_init;
  }
  if ((rc = rd_ctx_fields(&r, &out->ctx, "set context")) != CHORUS_OK)
    goto err_after_init;
  if ((rc = rd_array(&r, &n, 2, "set elements")) != CHORUS_OK)
    goto err_after_init;
  if (n % 2) {
    rc = rd_fail(&r, "set elements: odd array length %u", n);
    goto err_after_init;
  }
  if (crdt__grow((void **)&out->e, &out->cap, n / 2, sizeof *out->e) !=
      CHORUS_OK) {
    rc = CHORUS_ENOMEM;
    goto err_after_init;
  }
  for (uint32_t i = 0; i < n / 2; i++) {
    struct orset_elem e = {NULL, 0, 0, NULL};
    const uint8_t *p;
    uint32_t nd;
    if ((rc = rd_bin(&r, &p, &e.len, ORSET_ELEM_MAX, false, NULL,
                     "set element")) != CHORUS_OK)
      goto err_after_init;
    if (i > 0 &&
        crdt__bytes_cmp(out->e[i - 1].data, out->e[i - 1].len, p, e.len) >= 0) {
      rc = rd_fail(&r, "set elements: not strictly ascending");
      goto err_after_init;
    }
    if ((rc = rd_array(&r, &nd, 1, "set element dots")) != CHORUS_OK)
      goto err_after_init;
    if (nd == 0 || nd % 2) {
      rc = rd_fail(&r, "set element dots: array length %u", nd);
      goto err_after_init;
    }
    e.ndots = nd / 2;
    e.dots = chorus_malloc(e.ndots * sizeof *e.dots);
    if (e.dots == NULL) {
      rc = CHORUS_ENOMEM;
      goto err_after_init;
    }
    for (uint32_t k = 0; k < e.ndots; k++) {
      rc = rd_dot(&r, &e.dots[k], "set element dot");
      if (rc == CHORUS_OK && k > 0 &&
          crdt__dot_cmp(e.dots[k - 1], e.dots[k]) >= 0)
        rc = rd_fail(&r, "set element dots: not strictly ascending");
      if (rc == CHORUS_OK && !crdt_ctx_covers(&out->ctx, e.dots[k]))
        rc = rd_fail(&r, "set element dot not covered by the context");
      if (rc != CHORUS_OK) {
        chorus_free(e.dots);
        goto err_after_init;
      }
    }
    if (e.len && (e.data = chorus_memdup(p, e.len)) == NULL) {
      chorus_free(e.dots);
      rc = CHORUS_ENOMEM;
      goto err_after_init;
    }
    out->e[out->n++] = e;
  }
  if (fields == 4 && (rc = rd_set_deferred(&r, out)) != CHORUS_OK)
    goto err_after_init;
  if ((rc = rd_end(&r, "set")) != CHORUS_OK)
    goto err_after_init;
  assert(crdt__orset_valid(out));
  return CHORUS_OK;

err_after_init:
  orset_free(out);
  return rc;
}

/* ------------------------------------------------------------------------
 * The map: fields nest by the schema, at most CRDT_MAP_DEPTH_MAX levels, so
 * the recursion below is bounded whatever the input says.
 * ------------------------------------------------------------------------ */

static int rd_map_fields(struct rd *r, struct crdt_map_field *p,
                         const struct crdt_ctx *c, uint32_t level);

static int rd_dot_seen(struct rd *r, struct crdt_dot *d,
                       const struct crdt_ctx *c, const char *what) {
  int rc = rd_dot(r, d, what);
  if (rc == CHORUS_OK && !crdt_ctx_covers(c, *d))
    return rd_fail(r, "%s: dot (%016llx, %llu) not covered by the context",
                   what, (unsigned long long)d->node,
                   (unsigned long long)d->counter);
  return rc;
}

static int rd_map_entries(struct rd *r, struct crdt_map_field *f,
                          const struct crdt_ctx *c) {
  bool reg = f->type == CRDT_MAP_REGISTER, flag = f->type == CRDT_MAP_FLAG;
  uint32_t n = 0;
  /* Each entry is at least a fixarray tag, two dot ints and the payload. */
  int rc = rd_array(r, &n, flag ? 4 : 5, "map entries");
  if (rc != CHORUS_OK)
    return rc;
  if (n == 0)
    return rd_fail(r, "map field without entries");
  if (crdt__grow((void **)&f->ent, &f->cap, n, sizeof *f->ent) != CHORUS_OK)
    return CHORUS_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    struct crdt_map_entry e = {{0, 0}, 0, 0, NULL, 0};
    const uint8_t *p = NULL;
    if ((rc = rd_tuple(r, flag ? 3 : 4, "map entry")) != CHORUS_OK ||
        (rc = rd_dot_seen(r, &e.dot, c, "map entry dot")) != CHORUS_OK ||
        (rc = rd_uint(r, &e.a, "map entry")) != CHORUS_OK)
      return rc;
    if (reg)
      rc = rd_bin(r, &p, &e.len, DVV_VALUE_MAX, false, NULL, "map register");
    else if (!flag)
      rc = rd_uint(r, &e.b, "map counter n");
    if (rc != CHORUS_OK)
      return rc;
    if (flag && e.a > 1)
      return rd_fail(r, "map flag entry %llu, not 0 or 1",
                     (unsigned long long)e.a);
    if (f->type == CRDT_MAP_COUNTER && e.a == 0 && e.b == 0)
      return rd_fail(r, "map counter entry is empty");
    if (i > 0 && crdt__dot_cmp(f->ent[i - 1].dot, e.dot) >= 0)
      return rd_fail(r, "map entries: dots not strictly ascending");
    if (e.len && (e.value = chorus_memdup(p, e.len)) == NULL)
      return CHORUS_ENOMEM;
    f->ent[f->n++] = e;
  }
  return CHORUS_OK;
}

static int rd_map_set(struct rd *r, struct crdt_map_field *f,
                      const struct crdt_ctx *c) {
  uint32_t n = 0;
  int rc = rd_array(r, &n, 2, "map set elements");
  if (rc != CHORUS_OK)
    return rc;
  if (n == 0 || n % 2)
    return rd_fail(r, "map set elements: array length %u", n);
  if (crdt__grow((void **)&f->elem, &f->cap, n / 2, sizeof *f->elem) !=
      CHORUS_OK)
    return CHORUS_ENOMEM;
  for (uint32_t i = 0; i < n / 2; i++) {
    struct orset_elem e = {NULL, 0, 0, NULL};
    const uint8_t *p;
    uint32_t nd = 0;
    if ((rc = rd_bin(r, &p, &e.len, ORSET_ELEM_MAX, false, NULL,
                     "map set element")) != CHORUS_OK)
      return rc;
    if (i > 0 &&
        crdt__bytes_cmp(f->elem[i - 1].data, f->elem[i - 1].len, p, e.len) >= 0)
      return rd_fail(r, "map set elements: not strictly ascending");
    if ((rc = rd_array(r, &nd, 1, "map set element dots")) != CHORUS_OK)
      return rc;
    if (nd == 0 || nd % 2)
      return rd_fail(r, "map set element dots: array length %u", nd);
    e.ndots = nd / 2;
    if ((e.dots = chorus_malloc(e.ndots * sizeof *e.dots)) == NULL)
      return CHORUS_ENOMEM;
    for (uint32_t k = 0; k < e.ndots && rc == CHORUS_OK; k++) {
      rc = rd_dot_seen(r, &e.dots[k], c, "map set element dot");
      if (rc == CHORUS_OK && k > 0 &&
          crdt__dot_cmp(e.dots[k - 1], e.dots[k]) >= 0)
        rc = rd_fail(r, "map set element dots: not strictly ascending");
    }
    if (rc == CHORUS_OK && e.len && (e.data = chorus_memdup(p, e.len)) == NULL)
      rc = CHORUS_ENOMEM;
    if (rc != CHORUS_OK) {
      chorus_free(e.dots);
      return rc;
    }
    f->elem[f->n++] = e;
  }
  return CHORUS_OK;
}

/* One field into @f (zeroed by the caller; what was read stays in it for
 * the caller to free on error). */
static int rd_map_field(struct rd *r, struct crdt_map_field *f,
                        const struct crdt_ctx *c, uint32_t level) {
  const uint8_t *name;
  uint64_t type = 0;
  int rc;
  if ((rc = rd_tuple(r, 3, "map field")) != CHORUS_OK ||
      (rc = rd_bin(r, &name, &f->namelen, CRDT_MAP_NAME_MAX, false, NULL,
                   "map field name")) != CHORUS_OK ||
      (rc = rd_uint(r, &type, "map field type")) != CHORUS_OK)
    return rc;
  if (f->namelen == 0)
    return rd_fail(r, "map field with an empty name");
  if (type < CRDT_MAP_REGISTER || type > CRDT_MAP_MAP)
    return rd_fail(r, "map field type %llu unknown", (unsigned long long)type);
  f->type = (enum crdt_map_ftype)type;
  if ((f->name = chorus_memdup(name, f->namelen)) == NULL)
    return CHORUS_ENOMEM;
  switch (f->type) {
  case CRDT_MAP_REGISTER:
  case CRDT_MAP_COUNTER:
  case CRDT_MAP_FLAG:
    return rd_map_entries(r, f, c);
  case CRDT_MAP_SET:
    return rd_map_set(r, f, c);
  case CRDT_MAP_MAP:
    if (level + 1 >= CRDT_MAP_DEPTH_MAX)
      return rd_fail(r, "maps nest at most %d levels deep", CRDT_MAP_DEPTH_MAX);
    if ((rc = rd_map_fields(r, f, c, level + 1)) != CHORUS_OK)
      return rc;
    if (f->n == 0)
      return rd_fail(r, "map field: an empty nested map");
    return CHORUS_OK;
  }
  return rd_fail(r, "map field type %llu unknown", (unsigned long long)type);
}

/* The fields of map field @p, at @level (0: the top map). */
static int rd_map_fields(struct rd *r, struct crdt_map_field *p,
                         const struct crdt_ctx *c, uint32_t level) {
  uint32_t n = 0;
  /* A field is at least fixarray + bin tag + len + name + type + array. */
  int rc = rd_array(r, &n, 6, "map fields");
  if (rc != CHORUS_OK)
    return rc;
  if (n > CRDT_MAP_FIELDS_MAX)
    return rd_fail(r, "map: %u fields, over the limit of %u", n,
                   CRDT_MAP_FIELDS_MAX);
  if (n &&
      crdt__grow((void **)&p->sub, &p->cap, n, sizeof *p->sub) != CHORUS_OK)
    return CHORUS_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    struct crdt_map_field *f = &p->sub[p->n++];
    memset(f, 0, sizeof *f);
    if ((rc = rd_map_field(r, f, c, level)) != CHORUS_OK)
      return rc;
    const struct crdt_map_field *g = i > 0 ? &p->sub[i - 1] : NULL;
    if (g) {
      int k = crdt__bytes_cmp(g->name, g->namelen, f->name, f->namelen);
      if (k > 0 || (k == 0 && g->type >= f->type))
        return rd_fail(r, "map fields: not strictly ascending");
    }
  }
  return CHORUS_OK;
}

int crdt_map_decode(struct crdt_map *out, const uint8_t *buf, size_t len,
                    char *errmsg) {
  struct rd r = {buf, buf, buf + len, errmsg};
  crdt_map_init(out);
  int rc;
  if ((rc = rd_version(&r, "map")) != CHORUS_OK ||
      (rc = rd_tuple(&r, 2, "map")) != CHORUS_OK ||
      (rc = rd_tuple(&r, 2, "map context")) != CHORUS_OK ||
      (rc = rd_ctx_fields(&r, &out->ctx, "map context")) != CHORUS_OK ||
      (rc = rd_map_fields(&r, &out->root, &out->ctx, 0)) != CHORUS_OK ||
      (rc = rd_end(&r, "map")) != CHORUS_OK) {
    crdt_map_free(out);
    return rc;
  }
  assert(crdt__map_valid(out));
  return CHORUS_OK;
}

int crdt_map_ops_decode(struct crdt_map_op **out, uint32_t *n,
                        const uint8_t *buf, size_t len, char *errmsg) {
  struct rd r = {buf, buf, buf + len, errmsg};
  *out = NULL;
  *n = 0;
  uint32_t count = 0;
  int rc;
  /* An op is at least fixarray, kind, path array, bin name (2), type, bin
   * data (2), magnitude, sign: 10 bytes. */
  if ((rc = rd_version(&r, "map ops")) != CHORUS_OK ||
      (rc = rd_array(&r, &count, 10, "map ops")) != CHORUS_OK)
    return rc;
  if (count == 0 || count > CRDT_MAP_OPS_MAX)
    return rd_fail(&r, "map ops: %u operations, not 1 to %u", count,
                   CRDT_MAP_OPS_MAX);
  struct crdt_map_op *ops = chorus_calloc(count, sizeof *ops);
  if (ops == NULL)
    return CHORUS_ENOMEM;
  for (uint32_t i = 0; i < count; i++) {
    struct crdt_map_op *op = &ops[i];
    uint64_t kind = 0, mag = 0, neg = 0;
    uint32_t np = 0;
    if ((rc = rd_tuple(&r, 5, "map op")) != CHORUS_OK ||
        (rc = rd_uint(&r, &kind, "map op kind")) != CHORUS_OK ||
        (rc = rd_array(&r, &np, 1, "map op path")) != CHORUS_OK)
      goto err_after_alloc;
    if (kind < CRDT_MAP_OP_REGISTER_SET || kind > CRDT_MAP_OP_REMOVE) {
      rc = rd_fail(&r, "map op kind %llu unknown", (unsigned long long)kind);
      goto err_after_alloc;
    }
    if (np == 0 || np % 2 || np / 2 > CRDT_MAP_DEPTH_MAX) {
      rc = rd_fail(&r, "map op path: array length %u (1 to %d steps)", np,
                   CRDT_MAP_DEPTH_MAX);
      goto err_after_alloc;
    }
    op->kind = (enum crdt_map_op_kind)kind;
    op->depth = np / 2;
    for (uint32_t k = 0; k < op->depth; k++) {
      uint64_t t = 0;
      if ((rc = rd_bin(&r, &op->path[k].name, &op->path[k].len,
                       CRDT_MAP_NAME_MAX, false, NULL, "map op path name")) !=
              CHORUS_OK ||
          (rc = rd_uint(&r, &t, "map op path type")) != CHORUS_OK)
        goto err_after_alloc;
      if (op->path[k].len == 0 || t < CRDT_MAP_REGISTER || t > CRDT_MAP_MAP) {
        rc = rd_fail(&r, "map op path: empty name or type %llu",
                     (unsigned long long)t);
        goto err_after_alloc;
      }
      op->path[k].type = (enum crdt_map_ftype)t;
    }
    if ((rc = rd_bin(&r, &op->data, &op->len, DVV_VALUE_MAX, false, NULL,
                     "map op data")) != CHORUS_OK ||
        (rc = rd_uint(&r, &mag, "map op amount")) != CHORUS_OK ||
        (rc = rd_uint(&r, &neg, "map op sign")) != CHORUS_OK)
      goto err_after_alloc;
    if (neg > 1 || mag > (uint64_t)INT64_MAX + neg) {
      rc = rd_fail(&r, "map op amount out of range");
      goto err_after_alloc;
    }
    op->amount = !neg                             ? (int64_t)mag
                 : mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN
                                                  : -(int64_t)mag;
  }
  if ((rc = rd_end(&r, "map ops")) != CHORUS_OK)
    goto err_after_alloc;
  *out = ops;
  *n = count;
  return CHORUS_OK;

err_after_alloc:
  chorus_free(ops);
  return rc;
}

/* ------------------------------------------------------------------------
 * The object envelope: [version][type][the type's own encoding]
 * ------------------------------------------------------------------------ */

size_t crdt_obj_encoded_size(const struct crdt_obj *o) {
  switch (o->type) {
  case CRDT_KV:
    return 2 + dvv_encoded_size(&o->u.kv);
  case CRDT_COUNTER:
    return 2 + pncounter_encoded_size(&o->u.counter);
  case CRDT_SET:
    return 2 + orset_encoded_size(&o->u.set);
  case CRDT_LWW:
    return 2 + lww_encoded_size(&o->u.lww);
  case CRDT_MAP:
    return 2 + crdt_map_encoded_size(&o->u.map);
  case CRDT_PAXOS:
    return 2 + o->u.opaque.len;
  case CRDT_NONE:
    break;
  }
  return 0;
}

int crdt_obj_encode(const struct crdt_obj *o, uint8_t *buf, size_t cap,
                    size_t *written) {
  if (written)
    *written = 0;
  if (o->type < CRDT_KV || o->type > CRDT_PAXOS ||
      (o->type == CRDT_PAXOS && o->u.opaque.len == 0))
    return CHORUS_EINVAL;
  if (cap < 2 || buf == NULL)
    return CHORUS_ETOOBIG;
  buf[0] = CRDT_FORMAT_V1;
  buf[1] = (uint8_t)o->type;
  size_t n = 0;
  int rc = CHORUS_EINVAL;
  switch (o->type) {
  case CRDT_KV:
    rc = dvv_encode(&o->u.kv, buf + 2, cap - 2, &n);
    break;
  case CRDT_COUNTER:
    rc = pncounter_encode(&o->u.counter, buf + 2, cap - 2, &n);
    break;
  case CRDT_SET:
    rc = orset_encode(&o->u.set, buf + 2, cap - 2, &n);
    break;
  case CRDT_LWW:
    rc = lww_encode(&o->u.lww, buf + 2, cap - 2, &n);
    break;
  case CRDT_MAP:
    rc = crdt_map_encode(&o->u.map, buf + 2, cap - 2, &n);
    break;
  case CRDT_PAXOS:
    n = o->u.opaque.len;
    rc = cap - 2 < n ? CHORUS_ETOOBIG : CHORUS_OK;
    if (rc == CHORUS_OK)
      memcpy(buf + 2, o->u.opaque.bytes, n);
    break;
  case CRDT_NONE:
    break;
  }
  if (rc == CHORUS_OK && written)
    *written = n + 2;
  return rc;
}

int crdt_obj_decode(struct crdt_obj *out, enum crdt_type expect,
                    const uint8_t *buf, size_t len, char *errmsg) {
  struct rd r = {buf, buf, buf + len, errmsg};
  out->type = CRDT_NONE;
  int rc = rd_version(&r, "object");
  if (rc != CHORUS_OK)
    return rc;
  if (rd_left(&r) < 1)
    return rd_fail(&r, "object: no type byte");
  uint8_t t = *r.p++;
  if (t < CRDT_KV || t > CRDT_PAXOS)
    return rd_fail(&r, "object: unknown type %u", t);
  if (expect != CRDT_NONE && (enum crdt_type)t != expect)
    return chorus_errf(errmsg, CHORUS_ETYPE, "object is a %s, not a %s",
                       crdt_type_name((enum crdt_type)t),
                       crdt_type_name(expect));
  switch ((enum crdt_type)t) {
  case CRDT_KV:
    rc = dvv_decode(&out->u.kv, r.p, rd_left(&r), errmsg);
    break;
  case CRDT_COUNTER:
    rc = pncounter_decode(&out->u.counter, r.p, rd_left(&r), errmsg);
    break;
  case CRDT_SET:
    rc = orset_decode(&out->u.set, r.p, rd_left(&r), errmsg);
    break;
  case CRDT_LWW:
    rc = lww_decode(&out->u.lww, r.p, rd_left(&r), errmsg);
    break;
  case CRDT_MAP:
    rc = crdt_map_decode(&out->u.map, r.p, rd_left(&r), errmsg);
    break;
  case CRDT_PAXOS:
    /* Opaque: its owner validates the bytes (paxos_acceptor_decode). */
    out->type = CRDT_PAXOS;
    out->u.opaque = (struct crdt_opaque){NULL, 0};
    rc = rd_left(&r) == 0 ? rd_fail(&r, "cas object: empty")
                          : crdt_obj_set_opaque(out, r.p, rd_left(&r));
    if (rc != CHORUS_OK)
      out->type = CRDT_NONE;
    break;
  case CRDT_NONE:
    break;
  }
  if (rc != CHORUS_OK)
    return chorus_errwrap(errmsg, rc, "%s object",
                          crdt_type_name((enum crdt_type)t));
  out->type = (enum crdt_type)t;
  return CHORUS_OK;
}
