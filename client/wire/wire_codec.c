/* wire_codec.c: encoding (through msgpack-c's packer) and hardened decoding
 * (through our bounded reader) of chorus frames, both driven by the schema.
 *
 * Encoding: one walk of the schema packs the message; run with a counting
 * writer it gives wire_encoded_size(), with a bounded buffer writer it
 * produces the frame. Fields are checked first with the limits the decoder
 * uses, so every frame we send is one we would accept.
 *
 * Decoding: wire_msgpack_check() proves the structure sound, then the schema
 * walk reads each field with its type and range and borrows byte fields from
 * the frame. msgpack-c's unpacker is never used on untrusted bytes.
 */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include <msgpack.h>

#include "chorus_alloc.h"
#include "wire_int.h"

/* ------------------------------------------------------------------------
 * Field checks, shared by both directions
 * ------------------------------------------------------------------------ */

static int check_bytes(const struct wire_bytes *b, uint64_t min, uint64_t max,
                       const char *what, int code, char *errmsg) {
  if (b->len > 0 && b->ptr == NULL)
    return chorus_errf(errmsg, code, "%s: NULL pointer with length %zu", what,
                       b->len);
  if (b->len < min || b->len > max)
    return chorus_errf(errmsg, code,
                       "%s: length %zu outside [%" PRIu64 ", %" PRIu64 "]",
                       what, b->len, min, max);
  return CHORUS_OK;
}

/* The limits of one CLUSTER_REPLY member, for both directions: the reader
 * bounds each length and integer by its type, this says what is allowed. */
static int check_member(const struct wire_cluster_member *m, size_t k, int code,
                        char *errmsg) {
  int rc;
  if ((rc = check_bytes(&m->name, 1, WIRE_MAX_NAME, "member.name", code,
                        errmsg)) ||
      (rc = check_bytes(&m->addr, 0, WIRE_MAX_ADDR, "member.addr", code,
                        errmsg)) ||
      (rc =
           check_bytes(&m->dc, 0, WIRE_MAX_LABEL, "member.dc", code, errmsg)) ||
      (rc = check_bytes(&m->rack, 0, WIRE_MAX_LABEL, "member.rack", code,
                        errmsg)))
    return chorus_errwrap(errmsg, rc, "member %zu", k);
  if (m->state < WIRE_MEMBER_JOINING || m->state > WIRE_MEMBER_STATE_MAX)
    return chorus_errf(errmsg, code, "member %zu: member.state: %u unknown", k,
                       (unsigned)m->state);
  if (m->role > WIRE_RAFT_ROLE_MAX)
    return chorus_errf(errmsg, code, "member %zu: member.role: %u unknown", k,
                       (unsigned)m->role);
  if (m->alive > WIRE_ALIVE_MAX)
    return chorus_errf(errmsg, code, "member %zu: member.alive: %u unknown", k,
                       (unsigned)m->alive);
  if (m->vnodes > 65535)
    return chorus_errf(errmsg, code,
                       "member %zu: member.vnodes: %" PRIu32 " exceeds 65535",
                       k, m->vnodes);
  if (m->share_ppm > WIRE_SHARE_PPM_MAX)
    return chorus_errf(errmsg, code,
                       "member %zu: member.share_ppm: %" PRIu32 " exceeds %u",
                       k, m->share_ppm, WIRE_SHARE_PPM_MAX);
  return CHORUS_OK;
}

/* The limits of one CLUSTER_PLAN_REPLY move, both directions. */
static int check_move(const struct wire_plan_move *m, size_t k, int code,
                      char *errmsg) {
  int rc;
  if ((rc = check_bytes(&m->from_name, 0, WIRE_MAX_NAME, "move.from_name", code,
                        errmsg)) ||
      (rc = check_bytes(&m->to_name, 0, WIRE_MAX_NAME, "move.to_name", code,
                        errmsg)))
    return chorus_errwrap(errmsg, rc, "move %zu", k);
  if (m->share_ppm > WIRE_SHARE_PPM_MAX)
    return chorus_errf(errmsg, code,
                       "move %zu: move.share_ppm: %" PRIu32 " exceeds %u", k,
                       m->share_ppm, WIRE_SHARE_PPM_MAX);
  return CHORUS_OK;
}

/* Checks everything a decoder would check, on a message about to be sent. */
static int check_msg(const struct wire__schema *s, const struct wire_msg *m,
                     char *errmsg) {
  const char *base = (const char *)m;
  const int code = CHORUS_EINVAL;
  int rc = CHORUS_OK;
  for (unsigned i = 0; i < s->nfields && rc == CHORUS_OK; i++) {
    const struct wire__field *f = &s->f[i];
    const void *p = base + f->off;
    switch (f->kind) {
    case WIRE__K_UINT: {
      uint64_t v = wire__uint_load(p, f->width);
      if (v > f->max)
        rc = chorus_errf(errmsg, code, "%s: %" PRIu64 " exceeds %" PRIu64,
                         f->name, v, f->max);
      break;
    }
    case WIRE__K_INT: {
      int64_t v = wire__int_load(p, f->width);
      if (v < f->min || v > f->imax)
        rc = chorus_errf(errmsg, code, "%s: %" PRId64 " out of range", f->name,
                         v);
      break;
    }
    case WIRE__K_BOOL:
      break;
    case WIRE__K_BIN:
    case WIRE__K_TEXT:
      rc = check_bytes(p, f->min_len, f->max, f->name, code, errmsg);
      break;
    case WIRE__K_OPTS:
      rc = wire__opts_check(p, code, errmsg);
      break;
    case WIRE__K_BLIST: {
      const struct wire_bytes_list *l = p;
      if (l->n > 0 && l->items == NULL)
        rc = chorus_errf(errmsg, code, "%s: NULL items", f->name);
      for (size_t k = 0; k < l->n && rc == CHORUS_OK; k++)
        rc = check_bytes(&l->items[k], 0, f->max, f->name, code, errmsg);
      break;
    }
    case WIRE__K_NODES: {
      const struct wire_ring_reply *r = p;
      if (r->nnodes > 0 && r->nodes == NULL)
        rc = chorus_errf(errmsg, code, "nodes: NULL array");
      for (size_t k = 0; k < r->nnodes && rc == CHORUS_OK; k++) {
        const struct wire_ring_node *n = &r->nodes[k];
        if ((rc = check_bytes(&n->addr, 0, WIRE_MAX_ADDR, "node.addr", code,
                              errmsg)) ||
            (rc = check_bytes(&n->dc, 0, WIRE_MAX_LABEL, "node.dc", code,
                              errmsg)) ||
            (rc = check_bytes(&n->rack, 0, WIRE_MAX_LABEL, "node.rack", code,
                              errmsg)) ||
            (f->max > 0 && (rc = check_bytes(&n->name, 0, f->max, "node.name",
                                             code, errmsg))))
          break;
        if (n->state > WIRE_NODE_STATE_MAX)
          rc = chorus_errf(errmsg, code, "node.state: %u unknown",
                           (unsigned)n->state);
      }
      break;
    }
    case WIRE__K_STATS: {
      const struct wire_status_reply *r = p;
      if (r->nstats > 0 && r->stats == NULL)
        rc = chorus_errf(errmsg, code, "stats: NULL array");
      for (size_t k = 0; k < r->nstats && rc == CHORUS_OK; k++)
        rc = check_bytes(&r->stats[k].name, 1, WIRE_MAX_STAT_NAME, "stat.name",
                         code, errmsg);
      break;
    }
    case WIRE__K_MEMBERS: {
      const struct wire_cluster_reply *r = p;
      if (r->nmembers > WIRE_MAX_CLUSTER_MEMBERS)
        rc = chorus_errf(errmsg, code, "members: %zu exceed %u", r->nmembers,
                         WIRE_MAX_CLUSTER_MEMBERS);
      else if (r->nmembers > 0 && r->members == NULL)
        rc = chorus_errf(errmsg, code, "members: NULL array");
      for (size_t k = 0; k < r->nmembers && rc == CHORUS_OK; k++)
        rc = check_member(&r->members[k], k, code, errmsg);
      break;
    }
    case WIRE__K_MOVES: {
      const struct wire_cluster_plan_reply *r = p;
      if (r->nmoves > WIRE_MAX_PLAN_MOVES)
        rc = chorus_errf(errmsg, code, "moves: %zu exceed %u", r->nmoves,
                         WIRE_MAX_PLAN_MOVES);
      else if (r->nmoves > 0 && r->moves == NULL)
        rc = chorus_errf(errmsg, code, "moves: NULL array");
      for (size_t k = 0; k < r->nmoves && rc == CHORUS_OK; k++)
        rc = check_move(&r->moves[k], k, code, errmsg);
      break;
    }
    }
  }
  if (rc)
    chorus_errwrap(errmsg, rc, "%s", s->name);
  return rc;
}

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

/* The packer's sink: counts when @buf is NULL, else copies within @cap. */
struct sink {
  uint8_t *buf;
  size_t len, cap;
  bool overflow;
};

static int sink_write(void *data, const char *bytes, size_t n) {
  struct sink *k = data;
  assert(k->buf == NULL || k->len <= k->cap);
  if (k->buf) {
    if (n > k->cap - k->len) {
      k->overflow = true;
      return -1;
    }
    if (n > 0)
      memcpy(k->buf + k->len, bytes, n);
  }
  k->len += n;
  return 0;
}

static void pack_bytes(msgpack_packer *pk, bool text, struct wire_bytes b) {
  if (text) {
    msgpack_pack_str(pk, b.len);
    msgpack_pack_str_body(pk, b.ptr, b.len);
  } else {
    msgpack_pack_bin(pk, b.len);
    msgpack_pack_bin_body(pk, b.ptr, b.len);
  }
}

/* One encoding per options: 10 entries when a version-5 field is set, else
 * 8 with a datacenter, else 7. */
static unsigned opts_entries(const struct wire_options *o) {
  if (o->keyspace.len > 0 || o->flags != 0)
    return 10;
  return o->dc.len > 0 ? 8 : 7;
}

static void pack_opts(msgpack_packer *pk, const struct wire_options *o) {
  unsigned n = opts_entries(o);
  msgpack_pack_array(pk, n);
  msgpack_pack_int64(pk, o->r);
  msgpack_pack_int64(pk, o->w);
  msgpack_pack_int64(pk, o->pr);
  msgpack_pack_int64(pk, o->pw);
  msgpack_pack_uint64(pk, o->timeout_ms);
  if (o->sloppy)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
  msgpack_pack_uint64(pk, o->read_repair);
  if (n >= 8)
    pack_bytes(pk, true, o->dc);
  if (n == 10) {
    pack_bytes(pk, true, o->keyspace);
    msgpack_pack_uint64(pk, o->flags);
  }
}

/* Packs the body. Sink errors are sticky in struct sink, so the individual
 * pack calls' results need no checking. */
static void pack_body(msgpack_packer *pk, const struct wire__schema *s,
                      const struct wire_msg *m) {
  assert(s->type == m->type && s->nfields <= WIRE__MAX_FIELDS);
  const char *base = (const char *)m;
  unsigned nf = wire__fields_sent(s, m);
  msgpack_pack_array(pk, 2u + nf);
  msgpack_pack_uint64(pk, m->type);
  msgpack_pack_uint64(pk, m->request_id);
  for (unsigned i = 0; i < nf; i++) {
    const struct wire__field *f = &s->f[i];
    const void *p = base + f->off;
    switch (f->kind) {
    case WIRE__K_UINT:
      msgpack_pack_uint64(pk, wire__uint_load(p, f->width));
      break;
    case WIRE__K_INT:
      msgpack_pack_int64(pk, wire__int_load(p, f->width));
      break;
    case WIRE__K_BOOL:
      if (*(const bool *)p)
        msgpack_pack_true(pk);
      else
        msgpack_pack_false(pk);
      break;
    case WIRE__K_BIN:
    case WIRE__K_TEXT:
      pack_bytes(pk, f->kind == WIRE__K_TEXT, *(const struct wire_bytes *)p);
      break;
    case WIRE__K_OPTS:
      pack_opts(pk, p);
      break;
    case WIRE__K_BLIST: {
      const struct wire_bytes_list *l = p;
      msgpack_pack_array(pk, l->n);
      for (size_t k = 0; k < l->n; k++)
        pack_bytes(pk, false, l->items[k]);
      break;
    }
    case WIRE__K_NODES: {
      const struct wire_ring_reply *r = p;
      msgpack_pack_array(pk, r->nnodes);
      for (size_t k = 0; k < r->nnodes; k++) {
        const struct wire_ring_node *n = &r->nodes[k];
        msgpack_pack_array(pk, f->max > 0 ? 6 : 5);
        msgpack_pack_uint64(pk, n->id);
        pack_bytes(pk, true, n->addr);
        pack_bytes(pk, true, n->dc);
        pack_bytes(pk, true, n->rack);
        msgpack_pack_uint64(pk, n->state);
        if (f->max > 0)
          pack_bytes(pk, true, n->name);
      }
      break;
    }
    case WIRE__K_MEMBERS: {
      const struct wire_cluster_reply *r = p;
      msgpack_pack_array(pk, r->nmembers);
      for (size_t k = 0; k < r->nmembers; k++) {
        const struct wire_cluster_member *n = &r->members[k];
        msgpack_pack_array(pk, 10);
        msgpack_pack_uint64(pk, n->id);
        pack_bytes(pk, true, n->name);
        pack_bytes(pk, true, n->addr);
        pack_bytes(pk, true, n->dc);
        pack_bytes(pk, true, n->rack);
        msgpack_pack_uint64(pk, n->state);
        msgpack_pack_uint64(pk, n->role);
        msgpack_pack_uint64(pk, n->alive);
        msgpack_pack_uint64(pk, n->vnodes);
        msgpack_pack_uint64(pk, n->share_ppm);
      }
      break;
    }
    case WIRE__K_MOVES: {
      const struct wire_cluster_plan_reply *r = p;
      msgpack_pack_array(pk, r->nmoves);
      for (size_t k = 0; k < r->nmoves; k++) {
        const struct wire_plan_move *v = &r->moves[k];
        msgpack_pack_array(pk, 8);
        msgpack_pack_uint64(pk, v->from);
        pack_bytes(pk, true, v->from_name);
        msgpack_pack_uint64(pk, v->to);
        pack_bytes(pk, true, v->to_name);
        msgpack_pack_uint64(pk, v->ranges);
        msgpack_pack_uint64(pk, v->share_ppm);
        msgpack_pack_uint64(pk, v->est_keys);
        msgpack_pack_uint64(pk, v->est_bytes);
      }
      break;
    }
    case WIRE__K_STATS: {
      const struct wire_status_reply *r = p;
      msgpack_pack_map(pk, r->nstats);
      for (size_t k = 0; k < r->nstats; k++) {
        pack_bytes(pk, true, r->stats[k].name);
        msgpack_pack_int64(pk, r->stats[k].value);
      }
      break;
    }
    }
  }
}

static size_t body_size(const struct wire__schema *s,
                        const struct wire_msg *m) {
  struct sink k = {0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &k, sink_write);
  pack_body(&pk, s, m);
  return k.len;
}

size_t wire_encoded_size(const struct wire_msg *m) {
  const struct wire__schema *s = wire__schema_of(m->type);
  return s ? WIRE_FRAME_PREFIX + body_size(s, m) : 0;
}

int wire_encode(const struct wire_msg *m, uint8_t *buf, size_t cap,
                size_t *written, char *errmsg) {
  const struct wire__schema *s = wire__schema_of(m->type);
  if (!s)
    return chorus_errf(errmsg, CHORUS_EINVAL, "encode: unknown type %u",
                       (unsigned)m->type);
  int rc = check_msg(s, m, errmsg);
  if (rc)
    return rc;
  if (cap < WIRE_FRAME_PREFIX)
    return chorus_errf(errmsg, CHORUS_ETOOBIG, "%s: buffer of %zu bytes",
                       s->name, cap);
  assert(buf != NULL && written != NULL);
  struct sink k = {buf + WIRE_FRAME_PREFIX, 0, cap - WIRE_FRAME_PREFIX, false};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &k, sink_write);
  pack_body(&pk, s, m);
  if (k.overflow)
    return chorus_errf(errmsg, CHORUS_ETOOBIG,
                       "%s: needs %zu bytes, buffer holds %zu", s->name,
                       wire_encoded_size(m), cap);
  if (k.len > WIRE_MAX_FRAME_HARD)
    return chorus_errf(errmsg, CHORUS_ETOOBIG,
                       "%s: body of %zu bytes exceeds %u", s->name, k.len,
                       WIRE_MAX_FRAME_HARD);
  assert(k.len > 0 && k.len <= k.cap);
  uint32_t n = (uint32_t)k.len;
  buf[0] = (uint8_t)(n >> 24);
  buf[1] = (uint8_t)(n >> 16);
  buf[2] = (uint8_t)(n >> 8);
  buf[3] = (uint8_t)n;
  *written = WIRE_FRAME_PREFIX + k.len;
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------ */

/* Allocates the one list array of a message. @n came from a header that
 * wire_msgpack_check() proved backed by at least @n bytes, and every item
 * takes at least @min_item bytes; the WIRE_DECODE_FACTOR check restates the
 * resulting bound explicitly so that no future schema change can break it
 * silently. */
static int alloc_list(struct wire_msg *m, uint64_t n, size_t item,
                      size_t frame_len, void **out, char *errmsg) {
  assert(item > 0);
  *out = NULL;
  if (n == 0)
    return CHORUS_OK;
  if (n > SIZE_MAX / item ||
      n * item > (uint64_t)WIRE_DECODE_FACTOR * frame_len)
    return chorus_errf(errmsg, CHORUS_EMALFORMED,
                       "%" PRIu64 " list items would decode to more than %u x "
                       "the frame size",
                       n, WIRE_DECODE_FACTOR);
  *out = chorus_malloc((size_t)(n * item));
  if (!*out)
    return chorus_errf(errmsg, CHORUS_ENOMEM, "list of %" PRIu64 " items", n);
  /* A message has one list field at most (wire.h): m->owned holds it. */
  assert(m->owned == NULL);
  m->owned = *out;
  return CHORUS_OK;
}

static int read_opts(struct wire__rd *rd, struct wire_options *o) {
  uint64_t n, u;
  int64_t i;
  bool b;
  int rc = wire__rd_array(rd, &n, "opts");
  if (rc)
    return rc;
  if (n != 7 && n != 8 && n != 10)
    return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                       "opts: %" PRIu64 " entries, expected 7, 8 or 10", n);
  int32_t *lv[4] = {&o->r, &o->w, &o->pr, &o->pw};
  static const char *const names[4] = {"opts.r", "opts.w", "opts.pr",
                                       "opts.pw"};
  for (int k = 0; k < 4; k++) {
    if ((rc = wire__rd_int(rd, INT32_MIN, INT32_MAX, &i, names[k])))
      return rc;
    *lv[k] = (int32_t)i;
  }
  if ((rc = wire__rd_uint(rd, UINT32_MAX, &u, "opts.timeout_ms")))
    return rc;
  o->timeout_ms = (uint32_t)u;
  if ((rc = wire__rd_bool(rd, &b, "opts.sloppy")))
    return rc;
  o->sloppy = b;
  if ((rc = wire__rd_uint(rd, UINT8_MAX, &u, "opts.read_repair")))
    return rc;
  o->read_repair = (uint8_t)u;
  o->dc = (struct wire_bytes){NULL, 0};
  o->keyspace = (struct wire_bytes){NULL, 0};
  o->flags = 0;
  if (n >= 8 &&
      (rc = wire__rd_bytes(rd, true, WIRE_MAX_LABEL, &o->dc, "opts.dc")))
    return rc;
  /* One encoding per message: what is empty is left out. */
  if (n == 8 && o->dc.len == 0)
    return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                       "opts.dc: empty (a client without one sends 7 "
                       "options)");
  if (n == 10) {
    if ((rc = wire__rd_bytes(rd, true, WIRE_MAX_KEYSPACE_NAME, &o->keyspace,
                             "opts.keyspace")))
      return rc;
    if ((rc = wire__rd_uint(rd, UINT8_MAX, &u, "opts.flags")))
      return rc;
    o->flags = (uint8_t)u;
    if (o->keyspace.len == 0 && o->flags == 0)
      return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                         "opts: 10 entries without a keyspace or flags "
                         "(send 7 or 8)");
  }
  return wire__opts_check(o, CHORUS_EMALFORMED, rd->errmsg);
}

static int read_field(struct wire__rd *rd, const struct wire__field *f,
                      struct wire_msg *m, size_t frame_len) {
  void *p = (char *)m + f->off;
  int rc;
  switch (f->kind) {
  case WIRE__K_UINT: {
    uint64_t v;
    if ((rc = wire__rd_uint(rd, f->max, &v, f->name)))
      return rc;
    wire__uint_store(p, f->width, v);
    return CHORUS_OK;
  }
  case WIRE__K_INT: {
    int64_t v;
    if ((rc = wire__rd_int(rd, f->min, f->imax, &v, f->name)))
      return rc;
    wire__int_store(p, f->width, v);
    return CHORUS_OK;
  }
  case WIRE__K_BOOL:
    return wire__rd_bool(rd, p, f->name);
  case WIRE__K_BIN:
  case WIRE__K_TEXT: {
    struct wire_bytes *b = p;
    if ((rc = wire__rd_bytes(rd, f->kind == WIRE__K_TEXT, f->max, b, f->name)))
      return rc;
    if (b->len < f->min_len)
      return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                         "%s: %zu bytes, at least %" PRIu64 " required",
                         f->name, b->len, f->min_len);
    return CHORUS_OK;
  }
  case WIRE__K_OPTS:
    return read_opts(rd, p);
  case WIRE__K_BLIST: {
    struct wire_bytes_list *l = p;
    uint64_t n;
    void *arr;
    if ((rc = wire__rd_array(rd, &n, f->name)) ||
        (rc = alloc_list(m, n, sizeof(struct wire_bytes), frame_len, &arr,
                         rd->errmsg)))
      return rc;
    l->items = arr;
    for (uint64_t k = 0; k < n; k++)
      if ((rc = wire__rd_bytes(rd, false, f->max, &l->items[k], f->name)))
        return rc;
    l->n = (size_t)n;
    return CHORUS_OK;
  }
  case WIRE__K_NODES: {
    struct wire_ring_reply *r = p;
    uint64_t n, u, entries;
    const uint64_t want = f->max > 0 ? 6 : 5; /* RING_REPLY2: and a name */
    void *arr;
    if ((rc = wire__rd_array(rd, &n, "nodes")) ||
        (rc = alloc_list(m, n, sizeof(struct wire_ring_node), frame_len, &arr,
                         rd->errmsg)))
      return rc;
    r->nodes = arr;
    for (uint64_t k = 0; k < n; k++) {
      struct wire_ring_node *nd = &r->nodes[k];
      if ((rc = wire__rd_array(rd, &entries, "node")))
        return rc;
      if (entries != want)
        return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                           "node %" PRIu64 ": %" PRIu64 " entries, expected "
                           "%" PRIu64,
                           k, entries, want);
      if ((rc = wire__rd_uint(rd, UINT64_MAX, &nd->id, "node.id")) ||
          (rc = wire__rd_bytes(rd, true, WIRE_MAX_ADDR, &nd->addr,
                               "node.addr")) ||
          (rc = wire__rd_bytes(rd, true, WIRE_MAX_LABEL, &nd->dc, "node.dc")) ||
          (rc = wire__rd_bytes(rd, true, WIRE_MAX_LABEL, &nd->rack,
                               "node.rack")) ||
          (rc = wire__rd_uint(rd, WIRE_NODE_STATE_MAX, &u, "node.state")))
        return rc;
      nd->state = (uint8_t)u;
      nd->name = (struct wire_bytes){NULL, 0};
      if (f->max > 0 &&
          (rc = wire__rd_bytes(rd, true, f->max, &nd->name, "node.name")))
        return rc;
    }
    r->nnodes = (size_t)n;
    return CHORUS_OK;
  }
  case WIRE__K_MEMBERS: {
    struct wire_cluster_reply *r = p;
    uint64_t n, entries, v[5];
    void *arr;
    if ((rc = wire__rd_array(rd, &n, "members")))
      return rc;
    if (n > WIRE_MAX_CLUSTER_MEMBERS)
      return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                         "members: %" PRIu64 " exceed %u", n,
                         WIRE_MAX_CLUSTER_MEMBERS);
    if ((rc = alloc_list(m, n, sizeof(struct wire_cluster_member), frame_len,
                         &arr, rd->errmsg)))
      return rc;
    r->members = arr;
    for (uint64_t k = 0; k < n; k++) {
      struct wire_cluster_member *mb = &r->members[k];
      if ((rc = wire__rd_array(rd, &entries, "member")))
        return rc;
      if (entries != 10)
        return chorus_errf(
            rd->errmsg, CHORUS_EMALFORMED,
            "member %" PRIu64 ": %" PRIu64 " entries, expected 10", k, entries);
      if ((rc = wire__rd_uint(rd, UINT64_MAX, &mb->id, "member.id")) ||
          (rc = wire__rd_bytes(rd, true, WIRE_MAX_NAME, &mb->name,
                               "member.name")) ||
          (rc = wire__rd_bytes(rd, true, WIRE_MAX_ADDR, &mb->addr,
                               "member.addr")) ||
          (rc = wire__rd_bytes(rd, true, WIRE_MAX_LABEL, &mb->dc,
                               "member.dc")) ||
          (rc = wire__rd_bytes(rd, true, WIRE_MAX_LABEL, &mb->rack,
                               "member.rack")) ||
          (rc = wire__rd_uint(rd, UINT8_MAX, &v[0], "member.state")) ||
          (rc = wire__rd_uint(rd, UINT8_MAX, &v[1], "member.role")) ||
          (rc = wire__rd_uint(rd, UINT8_MAX, &v[2], "member.alive")) ||
          (rc = wire__rd_uint(rd, UINT32_MAX, &v[3], "member.vnodes")) ||
          (rc = wire__rd_uint(rd, UINT32_MAX, &v[4], "member.share_ppm")))
        return rc;
      mb->state = (uint8_t)v[0];
      mb->role = (uint8_t)v[1];
      mb->alive = (uint8_t)v[2];
      mb->vnodes = (uint32_t)v[3];
      mb->share_ppm = (uint32_t)v[4];
      if ((rc = check_member(mb, (size_t)k, CHORUS_EMALFORMED, rd->errmsg)))
        return rc;
    }
    r->nmembers = (size_t)n;
    return CHORUS_OK;
  }
  case WIRE__K_MOVES: {
    struct wire_cluster_plan_reply *r = p;
    uint64_t n, entries, v[4];
    void *arr;
    if ((rc = wire__rd_array(rd, &n, "moves")))
      return rc;
    if (n > WIRE_MAX_PLAN_MOVES)
      return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                         "moves: %" PRIu64 " exceed %u", n,
                         WIRE_MAX_PLAN_MOVES);
    if ((rc = alloc_list(m, n, sizeof(struct wire_plan_move), frame_len, &arr,
                         rd->errmsg)))
      return rc;
    r->moves = arr;
    for (uint64_t k = 0; k < n; k++) {
      struct wire_plan_move *mv = &r->moves[k];
      if ((rc = wire__rd_array(rd, &entries, "move")))
        return rc;
      if (entries != 8)
        return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                           "move %" PRIu64 ": %" PRIu64 " entries, expected 8",
                           k, entries);
      if ((rc = wire__rd_uint(rd, UINT64_MAX, &mv->from, "move.from")) ||
          (rc = wire__rd_bytes(rd, true, WIRE_MAX_NAME, &mv->from_name,
                               "move.from_name")) ||
          (rc = wire__rd_uint(rd, UINT64_MAX, &mv->to, "move.to")) ||
          (rc = wire__rd_bytes(rd, true, WIRE_MAX_NAME, &mv->to_name,
                               "move.to_name")) ||
          (rc = wire__rd_uint(rd, UINT32_MAX, &v[0], "move.ranges")) ||
          (rc = wire__rd_uint(rd, UINT32_MAX, &v[1], "move.share_ppm")) ||
          (rc = wire__rd_uint(rd, UINT64_MAX, &v[2], "move.est_keys")) ||
          (rc = wire__rd_uint(rd, UINT64_MAX, &v[3], "move.est_bytes")))
        return rc;
      mv->ranges = (uint32_t)v[0];
      mv->share_ppm = (uint32_t)v[1];
      mv->est_keys = v[2];
      mv->est_bytes = v[3];
      if ((rc = check_move(mv, (size_t)k, CHORUS_EMALFORMED, rd->errmsg)))
        return rc;
    }
    r->nmoves = (size_t)n;
    return CHORUS_OK;
  }
  case WIRE__K_STATS: {
    struct wire_status_reply *r = p;
    uint64_t n;
    void *arr;
    if ((rc = wire__rd_map(rd, &n, "stats")) ||
        (rc = alloc_list(m, n, sizeof(struct wire_stat), frame_len, &arr,
                         rd->errmsg)))
      return rc;
    r->stats = arr;
    for (uint64_t k = 0; k < n; k++) {
      struct wire_stat *st = &r->stats[k];
      if ((rc = wire__rd_bytes(rd, true, WIRE_MAX_STAT_NAME, &st->name,
                               "stat.name")) ||
          (rc = wire__rd_int(rd, INT64_MIN, INT64_MAX, &st->value,
                             "stat.value")))
        return rc;
      if (st->name.len == 0)
        return chorus_errf(rd->errmsg, CHORUS_EMALFORMED,
                           "stat %" PRIu64 ": empty name", k);
    }
    r->nstats = (size_t)n;
    return CHORUS_OK;
  }
  }
  return chorus_errf(rd->errmsg, CHORUS_EINTERNAL, "bad schema kind");
}

int wire_decode(const uint8_t *body, size_t len,
                const struct wire_limits *limits, struct wire_msg *out,
                char *errmsg) {
  assert(out != NULL && (body != NULL || len == 0));
  memset(out, 0, sizeof *out);
  uint32_t max_frame = limits ? limits->max_frame : WIRE_MAX_FRAME_PEER;
  uint32_t max_depth = limits ? limits->max_depth : WIRE_MAX_DEPTH;
  if (len > max_frame)
    return chorus_errf(errmsg, CHORUS_ETOOBIG,
                       "frame of %zu bytes exceeds the limit of %" PRIu32, len,
                       max_frame);
  if (len == 0)
    return chorus_errf(errmsg, CHORUS_EMALFORMED, "empty frame");

  /* Pass 1: structure, before anything is sized from a header. */
  int rc = wire_msgpack_check(body, len, max_depth, NULL, errmsg);
  if (rc)
    return rc;

  /* Pass 2: schema. */
  struct wire__rd rd = {body, len, body, errmsg};
  uint64_t n, type, id;
  if ((rc = wire__rd_array(&rd, &n, "frame")))
    return rc;
  if (n < 2)
    return chorus_errf(errmsg, CHORUS_EMALFORMED,
                       "frame: array of %" PRIu64
                       " entries, need at least type and request_id",
                       n);
  if ((rc = wire__rd_uint(&rd, WIRE_TYPE_MAX, &type, "type")) ||
      (rc = wire__rd_uint(&rd, UINT64_MAX, &id, "request_id")))
    return rc;
  out->type = (uint8_t)type;
  out->request_id = id;
  const struct wire__schema *s = wire__schema_of((unsigned)type);
  if (!s)
    return chorus_errf(errmsg, CHORUS_ENOTSUP, "unknown message type %" PRIu64,
                       type);
  /* Trailing optional fields may be left out: 0 then (the message was
   * zeroed above). */
  if (n > 2u + s->nfields || n < 2u + s->nfields - wire__schema_nopt(s)) {
    rc = chorus_errf(errmsg, CHORUS_EMALFORMED,
                     "%" PRIu64 " fields, expected %u (%s)", n - 2,
                     (unsigned)s->nfields,
                     n - 2 < s->nfields ? "missing fields" : "extra fields");
    goto err_after_header;
  }
  for (unsigned i = 0; i < n - 2; i++)
    if ((rc = read_field(&rd, &s->f[i], out, len)))
      goto err_after_fields;
  /* Pass 1 saw exactly one object spanning @len, so nothing can remain. */
  if (rd.left != 0) {
    rc = chorus_errf(errmsg, CHORUS_EINTERNAL, "%zu bytes unread", rd.left);
    goto err_after_fields;
  }
  return CHORUS_OK;

err_after_fields:
  chorus_free(out->owned);
err_after_header:
  chorus_errwrap(errmsg, rc, "%s", s->name);
  memset(out, 0, sizeof *out);
  return rc;
}

void wire_msg_free(struct wire_msg *m) {
  if (!m)
    return;
  chorus_free(m->owned);
  memset(m, 0, sizeof *m);
}
