/* test_wire.c: the wire protocol: round trips of every message, encoder
 * checks, per-field decoding errors, the splitter, the HELLO decision, and
 * random mutations of valid frames. The hostile-input table with its memory
 * bound lives in test_wire_hostile.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "chorus_alloc.h"
#include "wire_gen.h"
#include "wire_int.h"

#ifdef CHORUS_LONG_TESTS
#define RANDOM_ROUNDS 50000
#define MUTATIONS 2000000
#else
#define RANDOM_ROUNDS 2000
#define MUTATIONS 100000
#endif

static const struct wire_limits peer = {WIRE_MAX_FRAME_PEER, WIRE_MAX_DEPTH};

/* Encodes @m into a fresh buffer (caller frees); asserts success. */
static uint8_t *encode(const struct wire_msg *m, size_t *len) {
  char err[CHORUS_ERRMSG_SIZE] = "";
  size_t cap = wire_encoded_size(m);
  uint8_t *buf = chorus_malloc(cap);
  assert_non_null(buf);
  int rc = wire_encode(m, buf, cap, len, err);
  if (rc)
    fail_msg("encode %s: %s", wire_type_name(m->type), err);
  assert_int_equal(*len, cap);
  return buf;
}

/* encode -> decode -> equal, then encode again -> same bytes. */
static void round_trip(const struct wire_msg *m) {
  char err[CHORUS_ERRMSG_SIZE] = "";
  size_t len, len2;
  uint8_t *buf = encode(m, &len);
  uint32_t prefix = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
                    (uint32_t)buf[2] << 8 | buf[3];
  assert_int_equal(prefix, len - WIRE_FRAME_PREFIX);
  struct wire_msg d;
  int rc = wire_decode(buf + 4, len - 4, &peer, &d, err);
  if (rc)
    fail_msg("decode %s: %s", wire_type_name(m->type), err);
  assert_true(wire__msg_equal(m, &d));
  uint8_t *buf2 = encode(&d, &len2);
  assert_int_equal(len, len2);
  assert_memory_equal(buf, buf2, len);
  wire_msg_free(&d);
  chorus_free(buf2);
  chorus_free(buf);
}

/* Optional trailing fields (AAE_TREE_REQ's and AAE_KEYS_REQ's class_tag
 * and class_map, version 5): left out when 0 from the end, so that the
 * message is the one a version-4 peer decodes; read as 0 when absent;
 * carried when set (a 0 before a set one travels). */
static void optional_fields_are_left_out_when_zero(void **state) {
  (void)state;
  uint8_t iv[16] = {0}, ids[4] = {0};
  struct wire_msg m = {.type = WIRE_AAE_TREE_REQ, .request_id = 9};
  m.aae_tree_req =
      (struct wire_aae_tree_req){7, 16, 0, {iv, 16}, {ids, 4}, 0, 0};
  struct wire_msg k = {.type = WIRE_AAE_KEYS_REQ, .request_id = 9};
  k.aae_keys_req = (struct wire_aae_keys_req){7, {iv, 16}, {NULL, 0}, 5, 0, 0};
  /* Neither, the tag alone, the map alone: 0, 1 and 2 extra fields. */
  static const uint64_t tags[3] = {0, 0x8123456789abcdefull, 0};
  static const uint64_t maps[3] = {0, 0, 42};
  for (int v = 0; v < 3; v++) {
    m.aae_tree_req.class_tag = k.aae_keys_req.class_tag = tags[v];
    m.aae_tree_req.class_map = k.aae_keys_req.class_map = maps[v];
    size_t len;
    uint8_t *b = encode(&m, &len);
    assert_int_equal(b[4], 0x90 | (7 + v)); /* fixarray of fields */
    chorus_free(b);
    b = encode(&k, &len);
    assert_int_equal(b[4], 0x90 | (6 + v));
    chorus_free(b);
    round_trip(&m);
    round_trip(&k);
  }
  assert_int_equal(wire__schema_nopt(wire__schema_of(WIRE_AAE_TREE_REQ)), 2);
  assert_int_equal(wire__schema_nopt(wire__schema_of(WIRE_GET)), 0);
}

static void every_message_round_trips_empty_and_max(void **state) {
  (void)state;
  struct wire_gen g;
  assert_int_equal(wire_gen_init(&g, 1), 0);
  for (size_t i = 0; i < wire__nschemas; i++) {
    struct wire_msg m;
    wire_gen_msg(&g, &wire__schemas[i], WIRE_GEN_EMPTY, &m);
    round_trip(&m);
    wire_gen_msg(&g, &wire__schemas[i], WIRE_GEN_MAX, &m);
    round_trip(&m);
  }
  wire_gen_fini(&g);
}

static void every_message_round_trips_random(void **state) {
  (void)state;
  struct wire_gen g;
  assert_int_equal(wire_gen_init(&g, 2), 0);
  for (int r = 0; r < RANDOM_ROUNDS; r++)
    for (size_t i = 0; i < wire__nschemas; i++) {
      struct wire_msg m;
      wire_gen_msg(&g, &wire__schemas[i], WIRE_GEN_RANDOM, &m);
      round_trip(&m);
    }
  wire_gen_fini(&g);
}

/* The comparison the round trips rely on must notice a changed field. */
static void msg_equal_notices_every_field(void **state) {
  (void)state;
  struct wire_gen g;
  assert_int_equal(wire_gen_init(&g, 3), 0);
  for (size_t i = 0; i < wire__nschemas; i++) {
    const struct wire__schema *s = &wire__schemas[i];
    struct wire_msg a, b;
    wire_gen_msg(&g, s, WIRE_GEN_MAX, &a);
    b = a;
    assert_true(wire__msg_equal(&a, &b));
    b.request_id ^= 1;
    assert_false(wire__msg_equal(&a, &b));
    for (unsigned k = 0; k < s->nfields; k++) {
      b = a;
      char *p = (char *)&b + s->f[k].off;
      struct wire_bytes_list l2;
      struct wire_ring_reply r2;
      struct wire_status_reply st2;
      struct wire_cluster_reply c2;
      struct wire_cluster_plan_reply p2;
      switch (s->f[k].kind) {
      case WIRE__K_UINT:
      case WIRE__K_INT:
        *(uint8_t *)p ^= 1; /* low byte on little-endian hosts */
        break;
      case WIRE__K_BOOL:
        *(bool *)p = !*(bool *)p;
        break;
      case WIRE__K_BIN:
      case WIRE__K_TEXT:
        ((struct wire_bytes *)p)->len--;
        break;
      case WIRE__K_OPTS:
        ((struct wire_options *)p)->sloppy ^= 1;
        break;
      case WIRE__K_BLIST:
        memcpy(&l2, p, sizeof l2);
        l2.n--;
        memcpy(p, &l2, sizeof l2);
        break;
      case WIRE__K_NODES:
        memcpy(&r2, p, sizeof r2);
        r2.nnodes--;
        memcpy(p, &r2, sizeof r2);
        break;
      case WIRE__K_STATS:
        memcpy(&st2, p, sizeof st2);
        st2.nstats--;
        memcpy(p, &st2, sizeof st2);
        break;
      case WIRE__K_MEMBERS:
        memcpy(&c2, p, sizeof c2);
        c2.nmembers--;
        memcpy(p, &c2, sizeof c2);
        break;
      case WIRE__K_MOVES:
        memcpy(&p2, p, sizeof p2);
        p2.nmoves--;
        memcpy(p, &p2, sizeof p2);
        break;
      }
      if (wire__msg_equal(&a, &b))
        fail_msg("%s.%s change not noticed", s->name, s->f[k].name);
    }
  }
  wire_gen_fini(&g);
}

/* The bytes of one PUT, written out by hand from docs/PROTOCOL.md. */
static void put_has_documented_bytes(void **state) {
  (void)state;
  struct wire_msg m = {.type = WIRE_PUT, .request_id = 7};
  m.put.key = (struct wire_bytes){(const uint8_t *)"k", 1};
  m.put.value = (struct wire_bytes){(const uint8_t *)"vv", 2};
  m.put.opts = (struct wire_options){.r = WIRE_QUORUM,
                                     .w = 2,
                                     .timeout_ms = 1500,
                                     .sloppy = true,
                                     .read_repair = WIRE_RR_ASYNC};
  static const uint8_t want[] = {
      0x00, 0x00, 0x00, 0x16,       /* body length 22 */
      0x96, 0x11, 0x07,             /* [6 entries, PUT=17, id 7 */
      0xc4, 0x01, 'k',              /* key bin8 */
      0xc4, 0x02, 'v',  'v',        /* value bin8 */
      0xc4, 0x00,                   /* empty context */
      0x97, 0xfc, 0x02, 0x00, 0x00, /* opts [QUORUM=-4, 2, 0, 0, */
      0xcd, 0x05, 0xdc, 0xc3, 0x02, /*       1500, true, ASYNC]] */
  };
  size_t len;
  uint8_t *buf = encode(&m, &len);
  assert_int_equal(len, sizeof want);
  assert_memory_equal(buf, want, sizeof want);
  char err[CHORUS_ERRMSG_SIZE];
  struct wire_msg d;
  assert_int_equal(wire_decode(buf + 4, len - 4, &peer, &d, err), CHORUS_OK);
  assert_int_equal(d.type, WIRE_PUT);
  assert_int_equal(d.request_id, 7);
  assert_int_equal(d.put.key.len, 1);
  assert_memory_equal(d.put.key.ptr, "k", 1);
  /* Borrowed, not copied: the value points into the frame. */
  assert_ptr_equal(d.put.value.ptr, buf + 4 + 8);
  assert_int_equal(d.put.context.len, 0);
  assert_int_equal(d.put.opts.r, WIRE_QUORUM);
  assert_int_equal(d.put.opts.w, 2);
  assert_int_equal(d.put.opts.timeout_ms, 1500);
  assert_true(d.put.opts.sloppy);
  assert_int_equal(d.put.opts.read_repair, WIRE_RR_ASYNC);
  assert_null(d.owned);
  wire_msg_free(&d);
  chorus_free(buf);
}

/* PUT_TTL is PUT with a fifth field, ttl_ms, bounded by WIRE_MAX_TTL_MS on
 * both sides. */
static void put_ttl_carries_its_ttl(void **state) {
  (void)state;
  struct wire_msg m = {.type = WIRE_PUT_TTL, .request_id = 9};
  m.put.key = (struct wire_bytes){(const uint8_t *)"k", 1};
  m.put.value = (struct wire_bytes){(const uint8_t *)"v", 1};
  m.put.ttl_ms = WIRE_MAX_TTL_MS;
  size_t len;
  uint8_t *buf = encode(&m, &len);
  assert_int_equal(buf[4], 0x97); /* [7 entries: type, id, 5 fields */
  assert_int_equal(buf[5], WIRE_PUT_TTL);
  char err[CHORUS_ERRMSG_SIZE];
  struct wire_msg d;
  assert_int_equal(wire_decode(buf + 4, len - 4, &peer, &d, err), CHORUS_OK);
  assert_int_equal(d.type, WIRE_PUT_TTL);
  assert_int_equal(d.put.ttl_ms, WIRE_MAX_TTL_MS);
  assert_memory_equal(d.put.value.ptr, "v", 1);
  wire_msg_free(&d);
  /* The ttl is last, a uint64: one more millisecond is malformed. */
  assert_int_equal(buf[len - 9], 0xcf);
  uint64_t over = WIRE_MAX_TTL_MS + 1;
  for (int i = 0; i < 8; i++)
    buf[len - 1 - i] = (uint8_t)(over >> (8 * i));
  assert_int_equal(wire_decode(buf + 4, len - 4, &peer, &d, err),
                   CHORUS_EMALFORMED);
  assert_non_null(strstr(err, "ttl_ms"));
  chorus_free(buf);
  m.put.ttl_ms = over;
  uint8_t small[64];
  size_t n;
  assert_int_equal(wire_encode(&m, small, sizeof small, &n, err),
                   CHORUS_EINVAL);
}

static void lists_decode_into_one_owned_array(void **state) {
  (void)state;
  struct wire_bytes vals[3] = {
      {(const uint8_t *)"a", 1}, {NULL, 0}, {(const uint8_t *)"ccc", 3}};
  struct wire_msg m = {.type = WIRE_GET_REPLY, .request_id = 1};
  m.get_reply.values = (struct wire_bytes_list){3, vals};
  m.get_reply.context = (struct wire_bytes){(const uint8_t *)"ctx", 3};
  size_t len;
  uint8_t *buf = encode(&m, &len);
  struct wire_msg d;
  long before = chorus_alloc_count();
  assert_int_equal(wire_decode(buf + 4, len - 4, &peer, &d, NULL), CHORUS_OK);
  assert_int_equal(chorus_alloc_count() - before, 1);
  assert_ptr_equal(d.owned, d.get_reply.values.items);
  assert_int_equal(d.get_reply.values.n, 3);
  assert_memory_equal(d.get_reply.values.items[2].ptr, "ccc", 3);
  assert_true(d.get_reply.values.items[2].ptr > buf);
  assert_true(d.get_reply.values.items[2].ptr < buf + len);
  wire_msg_free(&d);
  assert_null(d.owned);
  wire_msg_free(&d); /* harmless twice */
  wire_msg_free(NULL);

  /* Out of memory while decoding: ENOMEM, nothing held, nothing leaked. */
  chorus_alloc_fail_after(0);
  assert_int_equal(wire_decode(buf + 4, len - 4, &peer, &d, NULL),
                   CHORUS_ENOMEM);
  chorus_alloc_fail_after(-1);
  assert_null(d.owned);
  chorus_free(buf);
}

static void encoder_rejects_invalid_fields(void **state) {
  (void)state;
  uint8_t buf[256];
  size_t len;
  char err[CHORUS_ERRMSG_SIZE];
  struct wire_msg m;
  static uint8_t big[WIRE_MAX_KEY_FIELD + 1];

#define EXPECT(code, substr)                                                   \
  do {                                                                         \
    err[0] = '\0';                                                             \
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len, err), code);       \
    if (!strstr(err, substr))                                                  \
      fail_msg("message \"%s\" lacks \"%s\"", err, substr);                    \
  } while (0)
#define GET(k, n)                                                              \
  (m = (struct wire_msg){.type = WIRE_GET},                                    \
   m.get.key = (struct wire_bytes){(k), (n)})

  GET((const uint8_t *)"k", 0);
  EXPECT(CHORUS_EINVAL, "GET: key: length 0");
  GET(big, WIRE_MAX_KEY_FIELD + 1);
  EXPECT(CHORUS_EINVAL, "key: length 65537");
  GET(NULL, 3);
  EXPECT(CHORUS_EINVAL, "NULL pointer");
  GET((const uint8_t *)"k", 1);
  m.get.opts.r = WIRE_MAX_REPLICAS + 1;
  EXPECT(CHORUS_EINVAL, "opts.r: 65");
  GET((const uint8_t *)"k", 1);
  m.get.opts.pw = WIRE_LEVEL_MIN - 1;
  EXPECT(CHORUS_EINVAL, "opts.pw: -9");
  GET((const uint8_t *)"k", 1);
  m.get.opts.timeout_ms = WIRE_MAX_TIMEOUT_MS + 1;
  EXPECT(CHORUS_EINVAL, "timeout_ms");
  GET((const uint8_t *)"k", 1);
  m.get.opts.read_repair = WIRE_RR_MAX + 1;
  EXPECT(CHORUS_EINVAL, "read_repair");

  m = (struct wire_msg){.type = WIRE_ERROR};
  m.error.code = 0;
  EXPECT(CHORUS_EINVAL, "ERROR: code: 0 out of range");
  m = (struct wire_msg){.type = WIRE_REPLICA_WRITE};
  m.replica_write.key = (struct wire_bytes){(const uint8_t *)"k", 1};
  m.replica_write.object = (struct wire_bytes){(const uint8_t *)"o", 1};
  m.replica_write.flags = 2;
  EXPECT(CHORUS_EINVAL, "flags: 2 exceeds 1");
  m.replica_write.flags = WIRE_REPLICA_DURABLE;
  EXPECT(CHORUS_OK, "");
  m = (struct wire_msg){.type = WIRE_HELLO};
  m.hello.cluster = (struct wire_bytes){(const uint8_t *)"c", 1};
  m.hello.role = 2;
  EXPECT(CHORUS_EINVAL, "role");
  m = (struct wire_msg){.type = 200};
  EXPECT(CHORUS_EINVAL, "unknown type 200");
  assert_int_equal(wire_encoded_size(&m), 0);

  /* A buffer too small is ETOOBIG, and the size function says what fits. */
  GET((const uint8_t *)"k", 1);
  size_t need = wire_encoded_size(&m);
  assert_int_equal(wire_encode(&m, buf, need - 1, &len, err), CHORUS_ETOOBIG);
  assert_int_equal(wire_encode(&m, buf, 3, &len, err), CHORUS_ETOOBIG);
  assert_int_equal(wire_encode(&m, buf, need, &len, err), CHORUS_OK);
  assert_int_equal(len, need);
#undef GET
#undef EXPECT
}

/* ------------------------------------------------------------------------
 * Per-field decoding errors, generated from the schema
 * ------------------------------------------------------------------------ */

/* Packs a valid message of @s, except that field @bad is replaced by what
 * @spoil packs (or dropped if @spoil is NULL); @extra appends a field. */
static void pack_spoiled(msgpack_sbuffer *sb, const struct wire__schema *s,
                         int bad, void (*spoil)(msgpack_packer *), bool extra) {
  /* One generator for every call: filling its 2 MiB pool is the slow part. */
  static struct wire_gen g;
  static bool ready;
  if (!ready) {
    assert_int_equal(wire_gen_init(&g, 9), 0);
    ready = true;
  }
  struct wire_msg m;
  wire_gen_msg(&g, s, WIRE_GEN_RANDOM, &m);
  /* Optional fields present (the encoder leaves out a 0 one), so that
   * every field has its element to spoil, and at their largest, so that
   * one taken for the field before it (that one left out) is out of that
   * field's range. */
  for (unsigned f = s->nfields - wire__schema_nopt(s); f < s->nfields; f++)
    wire__uint_store((char *)&m + s->f[f].off, s->f[f].width, s->f[f].max);
  size_t len;
  uint8_t *good = encode(&m, &len);
  /* Walk the good body and copy each field, replacing field @bad. */
  struct wire__rd rd = {good + 4, len - 4, good + 4, NULL};
  uint64_t n, skip;
  assert_int_equal(wire__rd_array(&rd, &n, "frame"), 0);
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  unsigned out_n = (unsigned)n - (bad >= 0 && !spoil) + extra;
  msgpack_pack_array(&pk, out_n);
  for (uint64_t i = 0; i < n; i++) {
    const uint8_t *start = rd.p;
    /* The field's end: our own valid encoding, so msgpack-c may parse it. */
    msgpack_unpacked obj;
    msgpack_unpacked_init(&obj);
    skip = 0;
    assert_int_equal(
        msgpack_unpack_next(&obj, (const char *)start, rd.left, &skip),
        MSGPACK_UNPACK_SUCCESS);
    msgpack_unpacked_destroy(&obj);
    assert_true(skip >= 1 && skip <= rd.left);
    if (bad >= 0 && (int)i - 2 == bad) {
      if (spoil)
        spoil(&pk);
    } else {
      msgpack_sbuffer_write(sb, (const char *)start, skip);
    }
    rd.p += skip;
    rd.left -= skip;
  }
  if (extra)
    msgpack_pack_nil(&pk);
  chorus_free(good);
}

static void spoil_nil(msgpack_packer *pk) {
  msgpack_pack_nil(pk);
}
static void spoil_str(msgpack_packer *pk) {
  msgpack_pack_str(pk, 1);
  msgpack_pack_str_body(pk, "x", 1);
}
static void spoil_bin(msgpack_packer *pk) {
  msgpack_pack_bin(pk, 1);
  msgpack_pack_bin_body(pk, "x", 1);
}
static void spoil_neg(msgpack_packer *pk) {
  msgpack_pack_int64(pk, -5);
}
static void spoil_float(msgpack_packer *pk) {
  msgpack_pack_double(pk, 1.5);
}

static void expect_malformed(msgpack_sbuffer *sb, const char *substr,
                             const char *what) {
  char err[CHORUS_ERRMSG_SIZE] = "";
  struct wire_msg d;
  int rc = wire_decode((const uint8_t *)sb->data, sb->size, &peer, &d, err);
  if (rc != CHORUS_EMALFORMED)
    fail_msg("%s: got %s (%s)", what, chorus_errname(rc), err);
  if (substr && !strstr(err, substr))
    fail_msg("%s: message \"%s\" lacks \"%s\"", what, err, substr);
  assert_null(d.owned);
}

static void decoder_rejects_wrong_missing_extra_fields(void **state) {
  (void)state;
  void (*spoilers[])(msgpack_packer *) = {spoil_nil, spoil_str, spoil_bin,
                                          spoil_neg, spoil_float};
  int cases = 0;
  for (size_t i = 0; i < wire__nschemas; i++) {
    const struct wire__schema *s = &wire__schemas[i];
    char what[128];
    msgpack_sbuffer sb;
    for (unsigned f = 0; f < s->nfields; f++) {
      const struct wire__field *fd = &s->f[f];
      for (size_t k = 0; k < sizeof spoilers / sizeof spoilers[0]; k++) {
        /* Skip the spoilers that are valid for this field. */
        if ((spoilers[k] == spoil_str && fd->kind == WIRE__K_TEXT) ||
            (spoilers[k] == spoil_bin && fd->kind == WIRE__K_BIN) ||
            (spoilers[k] == spoil_neg && fd->kind == WIRE__K_INT &&
             fd->min <= -5 && fd->imax >= -5))
          continue;
        msgpack_sbuffer_init(&sb);
        pack_spoiled(&sb, s, (int)f, spoilers[k], false);
        snprintf(what, sizeof what, "%s.%s spoiler %zu", s->name, fd->name, k);
        expect_malformed(&sb, fd->name, what);
        msgpack_sbuffer_destroy(&sb);
        cases++;
      }
      msgpack_sbuffer_init(&sb);
      pack_spoiled(&sb, s, (int)f, NULL, false);
      snprintf(what, sizeof what, "%s without %s", s->name, fd->name);
      if (f + 1 < s->nfields && s->f[f].opt) {
        /* An optional field before the last: one leaves out only those
         * at the end (the next takes its place, a valid message of
         * another meaning). */
        msgpack_sbuffer_destroy(&sb);
        continue;
      }
      if (wire__schema_nopt(s) > 0 && f + 1 == s->nfields) {
        /* The last field optional: a message without it is whole. */
        struct wire_msg d;
        char err[CHORUS_ERRMSG_SIZE] = "";
        int rc = wire_decode((const uint8_t *)sb.data, sb.size, &peer, &d, err);
        if (rc != CHORUS_OK)
          fail_msg("%s: %s", what, err);
        assert_int_equal(wire__uint_load((char *)&d + fd->off, fd->width), 0);
        wire_msg_free(&d);
      } else {
        /* With optional fields, one missing earlier shifts the rest: a
         * field of the wrong kind rather than a count. */
        expect_malformed(
            &sb, wire__schema_nopt(s) > 0 ? NULL : "missing fields", what);
      }
      msgpack_sbuffer_destroy(&sb);
      cases++;
    }
    msgpack_sbuffer_init(&sb);
    pack_spoiled(&sb, s, -1, NULL, true);
    snprintf(what, sizeof what, "%s with an extra field", s->name);
    expect_malformed(&sb, "extra fields", what);
    msgpack_sbuffer_destroy(&sb);
    cases++;
  }
  assert_true(cases > 300);
}

/* Every integer field one past its range. */
static void decoder_rejects_out_of_range_integers(void **state) {
  (void)state;
  int cases = 0;
  for (size_t i = 0; i < wire__nschemas; i++) {
    const struct wire__schema *s = &wire__schemas[i];
    for (unsigned f = 0; f < s->nfields; f++) {
      const struct wire__field *fd = &s->f[f];
      bool has_hi = (fd->kind == WIRE__K_UINT && fd->max < UINT64_MAX) ||
                    (fd->kind == WIRE__K_INT && fd->imax < INT64_MAX);
      bool has_lo = fd->kind == WIRE__K_INT && fd->min > INT64_MIN;
      for (int side = 0; side < 2; side++) {
        if (side == 0 ? !has_hi : !has_lo)
          continue;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2u + s->nfields);
        msgpack_pack_uint64(&pk, s->type);
        msgpack_pack_uint64(&pk, 1);
        for (unsigned k = 0; k < s->nfields; k++) {
          const struct wire__field *x = &s->f[k];
          if (k == f) {
            if (side == 0 && x->kind == WIRE__K_UINT)
              msgpack_pack_uint64(&pk, x->max + 1);
            else if (side == 0)
              msgpack_pack_int64(&pk, x->imax + 1);
            else
              msgpack_pack_int64(&pk, x->min - 1);
            continue;
          }
          /* A minimal valid value of every other field. */
          switch (x->kind) {
          case WIRE__K_UINT:
            msgpack_pack_uint64(&pk, 0);
            break;
          case WIRE__K_INT:
            msgpack_pack_int64(&pk, x->imax);
            break;
          case WIRE__K_BIN:
          case WIRE__K_TEXT:
            if (x->kind == WIRE__K_BIN) {
              /* Zeros past one byte (REPLICA_FORWARD's targets: 8). */
              static const char zeros[64];
              assert_true(x->min_len <= sizeof zeros);
              msgpack_pack_bin(&pk, x->min_len);
              msgpack_pack_bin_body(&pk, x->min_len <= 1 ? "k" : zeros,
                                    x->min_len);
            } else {
              msgpack_pack_str(&pk, x->min_len);
              msgpack_pack_str_body(&pk, "k", x->min_len);
            }
            break;
          case WIRE__K_OPTS:
            msgpack_pack_array(&pk, 7);
            for (int o = 0; o < 5; o++)
              msgpack_pack_uint64(&pk, 0);
            msgpack_pack_false(&pk);
            msgpack_pack_uint64(&pk, 0);
            break;
          case WIRE__K_STATS:
            msgpack_pack_map(&pk, 0);
            break;
          default:
            msgpack_pack_array(&pk, 0);
          }
        }
        char what[128];
        snprintf(what, sizeof what, "%s.%s %s", s->name, fd->name,
                 side ? "below" : "above");
        expect_malformed(&sb, fd->name, what);
        cases++;
        msgpack_sbuffer_destroy(&sb);
      }
    }
  }
  assert_true(cases >= 11);
}

static void pack_get_with_opts(msgpack_sbuffer *sb, int64_t r, uint64_t tmo,
                               int sloppy, uint64_t rr, unsigned nopts,
                               const char *dc) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint64(&pk, WIRE_GET);
  msgpack_pack_uint64(&pk, 1);
  msgpack_pack_bin(&pk, 1);
  msgpack_pack_bin_body(&pk, "k", 1);
  msgpack_pack_array(&pk, nopts);
  msgpack_pack_int64(&pk, r);
  msgpack_pack_int64(&pk, 0);
  msgpack_pack_int64(&pk, 0);
  msgpack_pack_int64(&pk, 0);
  msgpack_pack_uint64(&pk, tmo);
  if (sloppy < 0)
    msgpack_pack_nil(&pk);
  else if (sloppy)
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
  msgpack_pack_uint64(&pk, rr);
  for (unsigned k = 7; k < nopts; k++)
    if (k == 7 && dc != NULL) {
      msgpack_pack_str(&pk, strlen(dc));
      msgpack_pack_str_body(&pk, dc, strlen(dc));
    } else {
      msgpack_pack_nil(&pk);
    }
}

/* decodes_as_case: case @i's bytes in @sb are malformed with @msg (not
 * NULL: false), or decode into *@d (true). */
static bool decodes_as_case(msgpack_sbuffer *sb, const char *msg, size_t i,
                            struct wire_msg *d) {
  if (msg != NULL) {
    expect_malformed(sb, msg, msg);
    return false;
  }
  char err[CHORUS_ERRMSG_SIZE] = "";
  if (wire_decode((const uint8_t *)sb->data, sb->size, &peer, d, err) != 0)
    fail_msg("case %zu: %s", i, err);
  return true;
}

static void decoder_checks_options(void **state) {
  (void)state;
  struct {
    int64_t r;
    uint64_t tmo;
    int sloppy;
    uint64_t rr;
    unsigned nopts;
    const char *msg; /* NULL: valid */
    const char *dc;  /* the 8th option, when there is one (NULL: nil) */
  } cases[] = {
      {WIRE_QUORUM, 100, 1, 2, 7, NULL, NULL},
      {WIRE_MAX_REPLICAS, WIRE_MAX_TIMEOUT_MS, 0, WIRE_RR_MAX, 7, NULL, NULL},
      {WIRE_MAX_REPLICAS + 1, 0, 0, 0, 7, "opts.r: 65", NULL},
      {WIRE_LEVEL_MIN - 1, 0, 0, 0, 7, "opts.r: -9", NULL},
      {(int64_t)INT32_MAX + 1, 0, 0, 0, 7, "opts.r", NULL},
      {0, WIRE_MAX_TIMEOUT_MS + 1, 0, 0, 7, "timeout_ms", NULL},
      {0, (uint64_t)UINT32_MAX + 1, 0, 0, 7, "timeout_ms", NULL},
      {0, 0, -1, 0, 7, "opts.sloppy: expected bool", NULL},
      {0, 0, 0, WIRE_RR_MAX + 1, 7, "read_repair", NULL},
      {0, 0, 0, 256, 7, "read_repair", NULL},
      /* Version 4: the client's datacenter, 1..64 bytes of text. */
      {WIRE_LOCAL_QUORUM, 0, 0, 0, 8, NULL, "dc2"},
      {0, 0, 0, 0, 8, "opts.dc: expected str", NULL},
      {0, 0, 0, 0, 8, "opts.dc: empty", ""},
      {0, 0, 0, 0, 8, "exceeds the limit of 64",
       "a-datacenter-name-of-sixty-five-bytes-which-is-one-more-than-64!!"},
      {0, 0, 0, 0, 9, "9 entries, expected 7, 8 or 10", "dc2"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_get_with_opts(&sb, cases[i].r, cases[i].tmo, cases[i].sloppy,
                       cases[i].rr, cases[i].nopts, cases[i].dc);
    struct wire_msg d;
    if (decodes_as_case(&sb, cases[i].msg, i, &d)) {
      assert_int_equal(d.get.opts.r, cases[i].r);
      size_t dl = cases[i].dc ? strlen(cases[i].dc) : 0;
      assert_int_equal(d.get.opts.dc.len, dl);
      assert_true(dl == 0 || memcmp(d.get.opts.dc.ptr, cases[i].dc, dl) == 0);
    }
    msgpack_sbuffer_destroy(&sb);
  }
}

/* Version 5's options: 10 entries, [.., dc, keyspace, flags]; dc may then
 * be empty, keyspace and flags not both (one encoding per message). */
static void pack_get_v5_opts(msgpack_sbuffer *sb, const char *dc,
                             const char *ks, uint64_t flags) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint64(&pk, WIRE_GET);
  msgpack_pack_uint64(&pk, 1);
  msgpack_pack_bin(&pk, 1);
  msgpack_pack_bin_body(&pk, "k", 1);
  msgpack_pack_array(&pk, 10);
  for (int k = 0; k < 5; k++)
    msgpack_pack_int64(&pk, 0);
  msgpack_pack_false(&pk);
  msgpack_pack_uint64(&pk, 0);
  msgpack_pack_str(&pk, strlen(dc));
  msgpack_pack_str_body(&pk, dc, strlen(dc));
  msgpack_pack_str(&pk, strlen(ks));
  msgpack_pack_str_body(&pk, ks, strlen(ks));
  msgpack_pack_uint64(&pk, flags);
}

static void decoder_checks_version_five_options(void **state) {
  (void)state;
  struct {
    const char *dc, *ks;
    uint64_t flags;
    const char *msg; /* NULL: valid */
  } cases[] = {
      {"", "users", 0, NULL},
      {"dc1", "", WIRE_OPT_TRACE, NULL},
      {"", "", 0, "without a keyspace or flags"},
      {"", "users", WIRE_OPT_FLAGS_ALL + 1, "opts.flags: unknown bits"},
      {"", "users", 256, "opts.flags"},
      {"", "a-keyspace-name-of-forty-eight-bytes-is-too-long", 0,
       "exceeds the limit of 47"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_get_v5_opts(&sb, cases[i].dc, cases[i].ks, cases[i].flags);
    struct wire_msg d;
    if (decodes_as_case(&sb, cases[i].msg, i, &d)) {
      assert_int_equal(d.get.opts.dc.len, strlen(cases[i].dc));
      assert_int_equal(d.get.opts.keyspace.len, strlen(cases[i].ks));
      assert_int_equal(d.get.opts.flags, cases[i].flags);
      /* The encoder writes the same bytes back. */
      uint8_t buf[256];
      size_t n = 0;
      assert_int_equal(wire_encode(&d, buf, sizeof buf, &n, NULL), CHORUS_OK);
      assert_int_equal(n - 4, sb.size);
      assert_memory_equal(buf + 4, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
  }
  /* A peer before version 5 gets the request without its flags. */
  struct wire_msg m = {.type = WIRE_GET, .request_id = 2}, out;
  char text[CHORUS_ERRMSG_SIZE];
  m.get.key = (struct wire_bytes){(const uint8_t *)"k", 1};
  m.get.opts.flags = WIRE_OPT_TRACE;
  assert_false(wire_reply_for(&m, WIRE_PROTOCOL_VERSION, &out, text));
  assert_true(wire_reply_for(&m, WIRE_PROTOCOL_STREAM_GAPS - 1, &out, text));
  assert_int_equal(out.get.opts.flags, 0);
  assert_int_equal(m.get.opts.flags, WIRE_OPT_TRACE);
}

static void decoder_limits_frame_and_unknown_types(void **state) {
  (void)state;
  char err[CHORUS_ERRMSG_SIZE];
  struct wire_msg d;
  /* RING_QUERY [96, 5] is the smallest message. */
  static const uint8_t ring_q[] = {0x92, 0x60, 0x05};
  assert_int_equal(wire_decode(ring_q, 3, &peer, &d, err), CHORUS_OK);
  assert_int_equal(d.type, WIRE_RING_QUERY);
  assert_int_equal(d.request_id, 5);
  /* A limit of 2 bytes refuses the 3-byte frame before reading it. */
  struct wire_limits tiny = {2, WIRE_MAX_DEPTH};
  assert_int_equal(wire_decode(ring_q, 3, &tiny, &d, err), CHORUS_ETOOBIG);
  assert_non_null(strstr(err, "exceeds the limit of 2"));
  /* NULL limits mean peer defaults. */
  assert_int_equal(wire_decode(ring_q, 3, NULL, &d, err), CHORUS_OK);
  /* Unknown type in a well-formed frame: ENOTSUP, type and id kept so an
   * ERROR can answer it, and the connection may stay open. */
  static const uint8_t unknown[] = {0x93, 0xcc, 0xef, 0x2a, 0xc0};
  assert_int_equal(wire_decode(unknown, sizeof unknown, &peer, &d, err),
                   CHORUS_ENOTSUP);
  assert_int_equal(d.type, 239);
  assert_int_equal(d.request_id, 42);
  assert_false(wire_should_close(CHORUS_ENOTSUP));
  assert_true(wire_should_close(CHORUS_EMALFORMED));
  assert_true(wire_should_close(CHORUS_ETOOBIG));
  assert_false(wire_should_close(CHORUS_OK));

  /* A PUT whose body is exactly the client limit decodes; one more byte is
   * refused. Body = 3 + key (2+1) + value (5+V) + ctx 2 + opts 8 = 21+V. */
  struct wire_limits client = WIRE_LIMITS_CLIENT;
  size_t vlen = WIRE_MAX_FRAME_CLIENT - 21;
  uint8_t *val = chorus_calloc(1, vlen + 1);
  assert_non_null(val);
  for (int extra = 0; extra < 2; extra++) {
    struct wire_msg m = {.type = WIRE_PUT};
    m.put.key = (struct wire_bytes){(const uint8_t *)"k", 1};
    m.put.value = (struct wire_bytes){val, vlen + (size_t)extra};
    size_t len;
    uint8_t *buf = encode(&m, &len);
    assert_int_equal(len - 4, WIRE_MAX_FRAME_CLIENT + (size_t)extra);
    int rc = wire_decode(buf + 4, len - 4, &client, &d, err);
    assert_int_equal(rc, extra ? CHORUS_ETOOBIG : CHORUS_OK);
    wire_msg_free(&d);
    chorus_free(buf);
  }
  chorus_free(val);
}

/* The key and value limits (wire.h): a key field carries up to
 * WIRE_MAX_KEY_FIELD bytes (one more is malformed), so a key just over
 * WIRE_MAX_KEY still decodes and the node can answer it with ETOOBIG; a
 * PUT with a key, value and context each at its limit fits a client frame. */
static void key_and_value_limits_on_the_wire(void **state) {
  (void)state;
  assert_int_equal(WIRE_MAX_KEY, 65528);
  assert_int_equal(WIRE_MAX_VALUE, 1048576);
  assert_true(WIRE_MAX_KEY < WIRE_MAX_KEY_FIELD);
  struct wire_limits client = WIRE_LIMITS_CLIENT;
  char err[CHORUS_ERRMSG_SIZE];
  uint8_t *big = chorus_calloc(1, WIRE_MAX_VALUE + 1);
  assert_non_null(big);
  static const size_t keys[] = {WIRE_MAX_KEY, WIRE_MAX_KEY + 1,
                                WIRE_MAX_KEY_FIELD, WIRE_MAX_KEY_FIELD + 1};
  for (size_t i = 0; i < 4; i++) {
    struct wire_msg m = {.type = WIRE_GET};
    m.get.key = (struct wire_bytes){big, keys[i]};
    size_t len, cap = wire_encoded_size(&m);
    uint8_t *buf = chorus_malloc(cap);
    assert_non_null(buf);
    int rc = wire_encode(&m, buf, cap, &len, err);
    bool over = keys[i] > WIRE_MAX_KEY_FIELD;
    assert_int_equal(rc, over ? CHORUS_EINVAL : CHORUS_OK);
    if (over) {
      assert_non_null(strstr(err, "GET: key: length 65537"));
      /* The same bytes from a raw sender: malformed. */
      msgpack_sbuffer sb;
      msgpack_sbuffer_init(&sb);
      msgpack_packer pk;
      msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
      msgpack_pack_array(&pk, 4);
      msgpack_pack_uint8(&pk, WIRE_GET);
      msgpack_pack_uint8(&pk, 1);
      msgpack_pack_bin(&pk, keys[i]);
      msgpack_pack_bin_body(&pk, big, keys[i]);
      msgpack_pack_array(&pk, 7);
      for (int k = 0; k < 5; k++)
        msgpack_pack_uint8(&pk, 0);
      msgpack_pack_false(&pk);
      msgpack_pack_uint8(&pk, 0);
      struct wire_msg d;
      assert_int_equal(
          wire_decode((const uint8_t *)sb.data, sb.size, &client, &d, err),
          CHORUS_EMALFORMED);
      assert_non_null(strstr(err, "key: 65537 bytes exceeds"));
      msgpack_sbuffer_destroy(&sb);
    } else {
      struct wire_msg d;
      assert_int_equal(wire_decode(buf + 4, len - 4, &client, &d, err),
                       CHORUS_OK);
      assert_int_equal(d.get.key.len, keys[i]);
      wire_msg_free(&d);
    }
    chorus_free(buf);
  }
  /* Everything at its limit at once: one client frame. */
  struct wire_msg m = {.type = WIRE_PUT};
  m.put.key = (struct wire_bytes){big, WIRE_MAX_KEY};
  m.put.value = (struct wire_bytes){big, WIRE_MAX_VALUE};
  m.put.context = (struct wire_bytes){big, WIRE_MAX_CONTEXT};
  size_t len;
  uint8_t *buf = encode(&m, &len);
  assert_true(len - WIRE_FRAME_PREFIX <= WIRE_MAX_FRAME_CLIENT);
  struct wire_msg d;
  assert_int_equal(wire_decode(buf + 4, len - 4, &client, &d, err), CHORUS_OK);
  assert_int_equal(d.put.value.len, WIRE_MAX_VALUE);
  wire_msg_free(&d);
  chorus_free(buf);
  chorus_free(big);
}

/* CAS_REPLY's context (replication/paxos.h, CONTEXTS) is exactly
 * WIRE_CAS_CONTEXT_LEN bytes: it round trips, and one byte short or over
 * is refused by the encoder and, from a raw sender, by the decoder; CAS
 * takes the if-match conditions, and none past them. */
static void cas_reply_carries_its_context(void **state) {
  (void)state;
  static const uint8_t ctx[WIRE_CAS_CONTEXT_LEN + 1] = {
      0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 7, 8};
  struct wire_msg m = {.type = WIRE_CAS_REPLY};
  m.cas_reply.applied = 1;
  m.cas_reply.present = 1;
  m.cas_reply.value = (struct wire_bytes){(const uint8_t *)"v", 1};
  m.cas_reply.context = (struct wire_bytes){ctx, WIRE_CAS_CONTEXT_LEN};
  round_trip(&m);
  char err[CHORUS_ERRMSG_SIZE];
  uint8_t buf[128];
  size_t len;
  for (size_t n = WIRE_CAS_CONTEXT_LEN - 1; n <= WIRE_CAS_CONTEXT_LEN + 1;
       n += 2) {
    m.cas_reply.context = (struct wire_bytes){ctx, n};
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len, err),
                     CHORUS_EINVAL);
    assert_non_null(strstr(err, "context"));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint8(&pk, WIRE_CAS_REPLY);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_bin(&pk, 1);
    msgpack_pack_bin_body(&pk, "v", 1);
    msgpack_pack_bin(&pk, n);
    msgpack_pack_bin_body(&pk, ctx, n);
    expect_malformed(&sb, "context", "CAS_REPLY with a bad context");
    msgpack_sbuffer_destroy(&sb);
  }
  m = (struct wire_msg){.type = WIRE_CAS};
  m.cas.key = (struct wire_bytes){(const uint8_t *)"k", 1};
  m.cas.cond = WIRE_CAS_DELETE_IF_MATCH;
  m.cas.expected = (struct wire_bytes){ctx, WIRE_CAS_CONTEXT_LEN};
  round_trip(&m);
  m.cas.cond = WIRE_CAS_COND_MAX + 1;
  assert_int_equal(wire_encode(&m, buf, sizeof buf, &len, err), CHORUS_EINVAL);
}

/* ------------------------------------------------------------------------
 * Splitter
 * ------------------------------------------------------------------------ */

struct stream {
  uint8_t *bytes;
  size_t len;
  size_t nframes;
  size_t *ends; /* frame i ends at ends[i] */
};

/* A stream of @n random messages of every type. */
static void make_stream(struct stream *st, size_t n, uint64_t seed) {
  struct wire_gen g;
  assert_int_equal(wire_gen_init(&g, seed), 0);
  st->len = 0;
  st->bytes = NULL;
  st->nframes = n;
  st->ends = chorus_calloc(n, sizeof *st->ends);
  for (size_t i = 0; i < n; i++) {
    struct wire_msg m;
    wire_gen_msg(&g, &wire__schemas[i % wire__nschemas], WIRE_GEN_RANDOM, &m);
    size_t len;
    uint8_t *f = encode(&m, &len);
    st->bytes = chorus_realloc(st->bytes, st->len + len);
    assert_non_null(st->bytes);
    memcpy(st->bytes + st->len, f, len);
    st->len += len;
    st->ends[i] = st->len;
    chorus_free(f);
  }
  wire_gen_fini(&g);
}

static void free_stream(struct stream *st) {
  chorus_free(st->bytes);
  chorus_free(st->ends);
}

/* Pushes @st in chunks (chunk sizes from @prng, or all 1 if @bytewise) and
 * checks that every frame comes out whole, in order, and decodes. */
static void split_stream(const struct stream *st, struct chorus_prng *prng,
                         size_t max_chunk) {
  struct wire_splitter sp;
  wire_splitter_init(&sp, WIRE_MAX_FRAME_PEER);
  size_t pos = 0, got = 0;
  while (pos < st->len) {
    size_t chunk = 1 + (size_t)chorus_prng_below(prng, max_chunk);
    if (chunk > st->len - pos)
      chunk = st->len - pos;
    const uint8_t *p = st->bytes + pos;
    size_t left = chunk;
    for (;;) {
      size_t used;
      struct wire_bytes fr;
      int rc = wire_splitter_push(&sp, p, left, &used, &fr);
      assert_true(rc >= 0);
      assert_true(used <= left);
      p += used;
      left -= used;
      if (rc == 0) {
        assert_int_equal(left, 0);
        break;
      }
      size_t start = got ? st->ends[got - 1] : 0;
      assert_true(got < st->nframes);
      assert_int_equal(fr.len, st->ends[got] - start - 4);
      assert_memory_equal(fr.ptr, st->bytes + start + 4, fr.len);
      struct wire_msg d;
      assert_int_equal(wire_decode(fr.ptr, fr.len, &peer, &d, NULL), 0);
      wire_msg_free(&d);
      got++;
    }
    pos += chunk;
  }
  assert_int_equal(got, st->nframes);
  assert_int_equal(sp.frames, st->nframes);
  assert_int_equal(wire_splitter_buffered(&sp), 0);
  wire_splitter_fini(&sp);
}

static void splitter_recovers_frames_from_any_chunking(void **state) {
  (void)state;
  struct stream st;
  make_stream(&st, 3 * wire__nschemas, 11);
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 12);
  split_stream(&st, &prng, 1);      /* one byte at a time */
  split_stream(&st, &prng, 7);      /* small pieces */
  split_stream(&st, &prng, 1000);   /* a few frames per push */
  split_stream(&st, &prng, st.len); /* everything at once */
  free_stream(&st);
}

static void splitter_returns_whole_frames_in_place(void **state) {
  (void)state;
  /* Two RING_QUERY frames in one push: both come out of @data itself. */
  static const uint8_t two[] = {0, 0, 0, 3, 0x92, 0x60, 1,
                                0, 0, 0, 3, 0x92, 0x60, 2};
  struct wire_splitter sp;
  wire_splitter_init(&sp, 0);
  assert_int_equal(sp.max_frame, WIRE_MAX_FRAME_HARD);
  size_t used;
  struct wire_bytes fr;
  assert_int_equal(wire_splitter_push(&sp, two, sizeof two, &used, &fr), 1);
  assert_ptr_equal(fr.ptr, two + 4);
  assert_int_equal(used, 7);
  assert_int_equal(
      wire_splitter_push(&sp, two + used, sizeof two - used, &used, &fr), 1);
  assert_ptr_equal(fr.ptr, two + 11);
  assert_null(sp.buf); /* nothing was ever buffered */
  assert_int_equal(wire_splitter_push(&sp, two, 0, &used, &fr), 0);
  wire_splitter_fini(&sp);
}

static void splitter_buffers_only_what_arrived(void **state) {
  (void)state;
  struct wire_splitter sp;
  wire_splitter_init(&sp, WIRE_MAX_FRAME_PEER);
  /* A 16 MiB announcement followed by 10 bytes holds 256 bytes, not 16 MiB. */
  uint8_t hdr[4 + 10] = {0x01, 0x00, 0x00, 0x00};
  size_t used;
  struct wire_bytes fr;
  assert_int_equal(wire_splitter_push(&sp, hdr, sizeof hdr, &used, &fr), 0);
  assert_int_equal(used, sizeof hdr);
  assert_int_equal(wire_splitter_buffered(&sp), 14);
  assert_true(sp.cap <= 256);
  /* Feed 1 MiB more in 64 KiB pieces: capacity stays within 2x of it. */
  static uint8_t chunk[64 * 1024];
  for (int i = 0; i < 16; i++) {
    assert_int_equal(wire_splitter_push(&sp, chunk, sizeof chunk, &used, &fr),
                     0);
    assert_true(sp.cap <= 2 * sp.have);
  }
  wire_splitter_fini(&sp);

  /* After a big buffered frame is delivered, the buffer is dropped. */
  wire_splitter_init(&sp, WIRE_MAX_FRAME_PEER);
  size_t body = 200 * 1024;
  uint8_t *big = chorus_calloc(1, body + 4);
  big[1] = (uint8_t)(body >> 16);
  big[2] = (uint8_t)(body >> 8);
  big[3] = (uint8_t)body;
  assert_int_equal(wire_splitter_push(&sp, big, 100, &used, &fr), 0);
  assert_int_equal(
      wire_splitter_push(&sp, big + 100, body + 4 - 100, &used, &fr), 1);
  assert_ptr_equal(fr.ptr, sp.buf);
  assert_int_equal(fr.len, body);
  assert_int_equal(wire_splitter_buffered(&sp), 0);
  static const uint8_t next[] = {0, 0, 0, 3, 0x92, 0x60, 1};
  assert_int_equal(wire_splitter_push(&sp, next, 2, &used, &fr), 0);
  assert_null(sp.buf);
  assert_int_equal(wire_splitter_push(&sp, next + 2, 5, &used, &fr), 1);
  chorus_free(big);
  wire_splitter_fini(&sp);
}

static void splitter_errors_are_sticky(void **state) {
  (void)state;
  struct {
    uint8_t prefix[4];
    uint32_t limit;
    int code;
    const char *msg;
  } cases[] = {
      {{0xff, 0xff, 0xff, 0xff},
       WIRE_MAX_FRAME_PEER,
       CHORUS_ETOOBIG,
       "length prefix 4294967295 exceeds"},
      {{0x01, 0x00, 0x00, 0x01},
       WIRE_MAX_FRAME_PEER,
       CHORUS_ETOOBIG,
       "16777217"},
      {{0x00, 0x20, 0x00, 0x01},
       WIRE_MAX_FRAME_CLIENT,
       CHORUS_ETOOBIG,
       "2097153"},
      {{0, 0, 0, 0}, WIRE_MAX_FRAME_PEER, CHORUS_EMALFORMED, "zero length"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct wire_splitter sp;
    wire_splitter_init(&sp, cases[i].limit);
    size_t used;
    struct wire_bytes fr;
    /* Prefix split across two pushes: the check fires on the 4th byte. */
    assert_int_equal(wire_splitter_push(&sp, cases[i].prefix, 3, &used, &fr),
                     0);
    assert_int_equal(
        wire_splitter_push(&sp, cases[i].prefix + 3, 1, &used, &fr),
        cases[i].code);
    assert_non_null(strstr(sp.errmsg, cases[i].msg));
    assert_null(sp.buf);
    static const uint8_t ok[] = {0, 0, 0, 3, 0x92, 0x60, 1};
    assert_int_equal(wire_splitter_push(&sp, ok, sizeof ok, &used, &fr),
                     cases[i].code);
    assert_int_equal(used, 0);
    wire_splitter_fini(&sp);
  }

  /* Out of memory while buffering: ENOMEM, sticky, nothing leaked. */
  struct wire_splitter sp;
  wire_splitter_init(&sp, WIRE_MAX_FRAME_PEER);
  static const uint8_t part[] = {0, 0, 1, 0, 1, 2, 3};
  size_t used;
  struct wire_bytes fr;
  chorus_alloc_fail_after(0);
  assert_int_equal(wire_splitter_push(&sp, part, sizeof part, &used, &fr),
                   CHORUS_ENOMEM);
  chorus_alloc_fail_after(-1);
  assert_int_equal(wire_splitter_push(&sp, part, sizeof part, &used, &fr),
                   CHORUS_ENOMEM);
  wire_splitter_fini(&sp);
}

/* ------------------------------------------------------------------------
 * HELLO
 * ------------------------------------------------------------------------ */

static void hello_check_decides_and_replies(void **state) {
  (void)state;
  struct wire_hello_policy pol = {WIRE_PROTOCOL_MIN,
                                  WIRE_PROTOCOL_VERSION,
                                  {(const uint8_t *)"prod", 4},
                                  (1u << WIRE_ROLE_CLIENT) |
                                      (1u << WIRE_ROLE_PEER),
                                  77};
  struct {
    uint32_t version;
    const char *cluster;
    uint8_t role;
    chorus_node_id id;
    unsigned roles;
    int code;
    const char *msg;
  } cases[] = {
      {1, "prod", WIRE_ROLE_CLIENT, 0, 3, CHORUS_OK, ""},
      {1, "prod", WIRE_ROLE_PEER, 9, 3, CHORUS_OK, ""},
      {2, "prod", WIRE_ROLE_CLIENT, 0, 3, CHORUS_OK, ""},
      {3, "prod", WIRE_ROLE_PEER, 9, 3, CHORUS_OK, ""},
      {4, "prod", WIRE_ROLE_CLIENT, 0, 3, CHORUS_OK, ""},
      {5, "prod", WIRE_ROLE_PEER, 9, 3, CHORUS_OK, ""},
      {6, "prod", WIRE_ROLE_CLIENT, 0, 3, CHORUS_EVERSION,
       "protocol version 6 not supported; this node speaks 1..5"},
      {0, "prod", WIRE_ROLE_CLIENT, 0, 3, CHORUS_EVERSION, "version 0"},
      {1, "staging", WIRE_ROLE_CLIENT, 0, 3, CHORUS_ECLUSTER,
       "cluster name (7 bytes) does not match this node's cluster \"prod\""},
      {1, "pro", WIRE_ROLE_CLIENT, 0, 3, CHORUS_ECLUSTER, "3 bytes"},
      {1, "prod", WIRE_ROLE_CLIENT, 0, 1u << WIRE_ROLE_PEER, CHORUS_EPERM,
       "role client not accepted"},
      {1, "prod", WIRE_ROLE_PEER, 9, 1u << WIRE_ROLE_CLIENT, CHORUS_EPERM,
       "role peer"},
      {1, "prod", WIRE_ROLE_PEER, 0, 3, CHORUS_EMALFORMED, "without a node id"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct wire_hello h = {
        cases[i].version,
        {(const uint8_t *)cases[i].cluster, strlen(cases[i].cluster)},
        cases[i].role,
        cases[i].id,
        {NULL, 0}};
    pol.roles = cases[i].roles;
    char text[CHORUS_ERRMSG_SIZE] = "";
    struct wire_msg reply;
    int rc = wire_hello_check(&h, &pol, 99, &reply, text);
    assert_int_equal(rc, cases[i].code);
    assert_int_equal(reply.request_id, 99);
    assert_int_equal(wire_should_close(rc), rc != CHORUS_OK);
    if (rc == CHORUS_OK) {
      assert_int_equal(reply.type, WIRE_WELCOME);
      assert_int_equal(reply.welcome.version, cases[i].version);
      assert_int_equal(reply.welcome.node_id, 77);
    } else {
      assert_int_equal(reply.type, WIRE_ERROR);
      assert_int_equal(reply.error.code, rc);
      if (!strstr(text, cases[i].msg))
        fail_msg("case %zu: \"%s\" lacks \"%s\"", i, text, cases[i].msg);
    }
    round_trip(&reply); /* the reply is always sendable */
  }
}

/* Version 2's replies, as a version-1 connection gets them. */
static void replies_for_version_one(void **state) {
  (void)state;
  struct wire_bytes vals[2] = {{(const uint8_t *)"a", 1},
                               {(const uint8_t *)"bb", 2}};
  struct wire_msg g = {.type = WIRE_GET_REPLY2, .request_id = 5};
  g.get_reply.values = (struct wire_bytes_list){2, vals};
  g.get_reply.context = (struct wire_bytes){(const uint8_t *)"ctx", 3};
  g.get_reply.flags = WIRE_REPLY_SIBLINGS;
  g.get_reply.siblings = 2;
  g.get_reply.bytes = 40;
  round_trip(&g);
  char text[CHORUS_ERRMSG_SIZE] = "";
  struct wire_msg out;
  /* Version 2 and later: unchanged. */
  assert_false(wire_reply_for(&g, 2, &out, text));
  assert_true(wire__msg_equal(&out, &g));
  /* Version 1: the old type, the same values and context. */
  assert_true(wire_reply_for(&g, 1, &out, text));
  assert_int_equal(out.type, WIRE_GET_REPLY);
  assert_int_equal(out.request_id, 5);
  assert_int_equal(out.get_reply.values.n, 2);
  assert_memory_equal(out.get_reply.context.ptr, "ctx", 3);
  round_trip(&out);
  /* A truncated answer is an error for version 1, never a part. */
  g.get_reply.flags = WIRE_REPLY_TRUNCATED;
  g.get_reply.siblings = 9;
  g.get_reply.bytes = 17000000;
  assert_true(wire_reply_for(&g, 1, &out, text));
  assert_int_equal(out.type, WIRE_ERROR);
  assert_int_equal(out.request_id, 5);
  assert_int_equal(out.error.code, CHORUS_ETOOBIG);
  assert_non_null(strstr(text, "17000000 bytes with 9 siblings"));
  round_trip(&out);
  /* WRITE_REPLY2 loses its warnings. */
  struct wire_msg w = {.type = WIRE_WRITE_REPLY2, .request_id = 6};
  w.write_reply.context = (struct wire_bytes){(const uint8_t *)"c", 1};
  w.write_reply.flags = WIRE_REPLY_SIBLINGS | WIRE_REPLY_LARGE;
  w.write_reply.siblings = 30;
  w.write_reply.bytes = 5000000;
  round_trip(&w);
  assert_true(wire_reply_for(&w, 1, &out, text));
  assert_int_equal(out.type, WIRE_WRITE_REPLY);
  assert_int_equal(out.write_reply.context.len, 1);
  round_trip(&out);
  /* Anything else passes as it is. */
  struct wire_msg e;
  wire_error_reply(&e, 7, CHORUS_EIO, "x");
  assert_false(wire_reply_for(&e, 1, &out, text));
  assert_true(wire__msg_equal(&out, &e));
}

/* Version 3's replies with names, as version-1 and -2 connections get
 * them: the same lists in the old types, whose nodes have five entries. */
static void replies_for_version_two_lose_names(void **state) {
  (void)state;
  struct wire_ring_node nodes[2] = {{0x11,
                                     {(const uint8_t *)"a:1", 3},
                                     {NULL, 0},
                                     {NULL, 0},
                                     WIRE_NODE_UP,
                                     {(const uint8_t *)"n1", 2}},
                                    {0x22,
                                     {(const uint8_t *)"b:2", 3},
                                     {NULL, 0},
                                     {NULL, 0},
                                     WIRE_NODE_JOINING,
                                     {(const uint8_t *)"n2", 2}}};
  struct wire_msg r = {.type = WIRE_RING_REPLY2, .request_id = 8};
  r.ring_reply.epoch = 3;
  r.ring_reply.vnodes = 16;
  r.ring_reply.nnodes = 2;
  r.ring_reply.nodes = nodes;
  round_trip(&r);
  char text[CHORUS_ERRMSG_SIZE] = "";
  struct wire_msg out;
  assert_false(wire_reply_for(&r, 3, &out, text));
  assert_int_equal(out.type, WIRE_RING_REPLY2);
  for (uint32_t v = 1; v <= 2; v++) {
    assert_true(wire_reply_for(&r, v, &out, text));
    assert_int_equal(out.type, WIRE_RING_REPLY);
    assert_int_equal(out.request_id, 8);
    size_t len;
    uint8_t *buf = encode(&out, &len);
    /* [97, 8, 3, 16, [[0x11, "a:1", "", "", 0], ...]]: five entries. */
    static const uint8_t head[] = {0x95, 0x61, 0x08, 0x03, 0x10,
                                   0x92, 0x95, 0x11, 0xa3};
    assert_memory_equal(buf + 4, head, sizeof head);
    struct wire_msg d;
    assert_int_equal(wire_decode(buf + 4, len - 4, &peer, &d, NULL), 0);
    assert_int_equal(d.ring_reply.nnodes, 2);
    assert_int_equal(d.ring_reply.nodes[1].state, WIRE_NODE_JOINING);
    assert_int_equal(d.ring_reply.nodes[1].name.len, 0);
    wire_msg_free(&d);
    chorus_free(buf);
  }
  /* A RING_REPLY compares and encodes without the names it cannot carry. */
  struct wire_msg a = r, b = r;
  a.type = b.type = WIRE_RING_REPLY;
  struct wire_ring_node other[2] = {nodes[0], nodes[1]};
  other[1].name = (struct wire_bytes){(const uint8_t *)"zz", 2};
  b.ring_reply.nodes = other;
  assert_true(wire__msg_equal(&a, &b));
  a.type = b.type = WIRE_RING_REPLY2;
  assert_false(wire__msg_equal(&a, &b));

  struct wire_stat stats[1] = {{{(const uint8_t *)"x", 1}, 5}};
  struct wire_msg st = {.type = WIRE_STATUS_REPLY2, .request_id = 9};
  st.status_reply.node_id = 0x11;
  st.status_reply.name = (struct wire_bytes){(const uint8_t *)"n1", 2};
  st.status_reply.nstats = 1;
  st.status_reply.stats = stats;
  round_trip(&st);
  assert_false(wire_reply_for(&st, 3, &out, text));
  assert_true(wire_reply_for(&st, 2, &out, text));
  assert_int_equal(out.type, WIRE_STATUS_REPLY);
  size_t len;
  uint8_t *buf = encode(&out, &len);
  /* [99, 9, 0x11, {"x": 5}]: no name. */
  static const uint8_t want[] = {0x94, 0x63, 0x09, 0x11, 0x81, 0xa1, 'x', 0x05};
  assert_int_equal(len - 4, sizeof want);
  assert_memory_equal(buf + 4, want, sizeof want);
  chorus_free(buf);
  /* Version 3's other messages pass as they are. */
  struct wire_msg c = {.type = WIRE_CLUSTER_REPLY, .request_id = 4};
  assert_false(wire_reply_for(&c, 1, &out, text));
  assert_int_equal(out.type, WIRE_CLUSTER_REPLY);
}

/* The cluster metadata messages: their bytes, what the encoder refuses, and
 * the member limit on both sides. */
/* A request forwarded to a peer of version 3 loses the client's datacenter
 * (that peer would close the connection on an 8th option); from version 4
 * on it is carried, and it round-trips. */
static void requests_for_version_three_lose_the_dc(void **state) {
  (void)state;
  struct wire_msg m = {.type = WIRE_PUT, .request_id = 5};
  m.put.key = (struct wire_bytes){(const uint8_t *)"k", 1};
  m.put.value = (struct wire_bytes){(const uint8_t *)"v", 1};
  m.put.opts.w = WIRE_LOCAL_QUORUM;
  m.put.opts.dc = (struct wire_bytes){(const uint8_t *)"dc2", 3};
  struct wire_msg out;
  char text[CHORUS_ERRMSG_SIZE];
  assert_false(wire_reply_for(&m, WIRE_PROTOCOL_CLIENT_DC, &out, text));
  assert_true(wire_reply_for(&m, WIRE_PROTOCOL_CLIENT_DC - 1, &out, text));
  assert_int_equal(out.type, WIRE_PUT);
  assert_int_equal(out.put.opts.dc.len, 0);
  assert_int_equal(out.put.opts.w, WIRE_LOCAL_QUORUM);
  assert_int_equal(m.put.opts.dc.len, 3); /* the original is untouched */
  uint8_t buf[256];
  size_t n7 = 0, n8 = 0;
  assert_int_equal(wire_encode(&out, buf, sizeof buf, &n7, NULL), CHORUS_OK);
  assert_int_equal(wire_encode(&m, buf, sizeof buf, &n8, NULL), CHORUS_OK);
  assert_int_equal(n8, n7 + 4); /* fixstr header and "dc2" */
  struct wire_msg d;
  assert_int_equal(wire_decode(buf + 4, n8 - 4, &peer, &d, NULL), CHORUS_OK);
  assert_int_equal(d.put.opts.dc.len, 3);
  assert_memory_equal(d.put.opts.dc.ptr, "dc2", 3);
  /* Other requests and replies pass unchanged. */
  struct wire_msg g = {.type = WIRE_GET, .request_id = 6};
  g.get.key = m.put.key;
  assert_false(wire_reply_for(&g, 1, &out, text));
}

/* A batch answering a peer of version 4 is a STREAM_CHUNK without the
 * empty stretch (that peer would close the connection on STREAM_CHUNK2);
 * from version 5 on it is STREAM_CHUNK2, and the stretch round-trips. */
static void stream_chunks_for_version_four_lose_the_stretch(void **state) {
  (void)state;
  struct wire_bytes items[2] = {{(const uint8_t *)"k", 1},
                                {(const uint8_t *)"obj", 3}};
  struct wire_msg m = {.type = WIRE_STREAM_CHUNK2, .request_id = 8};
  m.stream_chunk.entries = (struct wire_bytes_list){2, items};
  m.stream_chunk.sum = 42;
  m.stream_chunk.empty_to = UINT64_C(0x123456789abcdef0);
  struct wire_msg out;
  char text[CHORUS_ERRMSG_SIZE];
  assert_false(wire_reply_for(&m, WIRE_PROTOCOL_STREAM_GAPS, &out, text));
  assert_true(wire_reply_for(&m, WIRE_PROTOCOL_STREAM_GAPS - 1, &out, text));
  assert_int_equal(out.type, WIRE_STREAM_CHUNK);
  assert_int_equal(out.stream_chunk.empty_to, 0);
  assert_int_equal(out.stream_chunk.sum, 42);
  assert_int_equal(out.stream_chunk.entries.n, 2);
  uint8_t buf[256];
  size_t n3 = 0, n4 = 0;
  assert_int_equal(wire_encode(&out, buf, sizeof buf, &n3, NULL), CHORUS_OK);
  assert_int_equal(wire_encode(&m, buf, sizeof buf, &n4, NULL), CHORUS_OK);
  assert_int_equal(n4, n3 + 9); /* uint64 header and 8 bytes */
  struct wire_msg d;
  assert_int_equal(wire_decode(buf + 4, n4 - 4, &peer, &d, NULL), CHORUS_OK);
  assert_int_equal(d.type, WIRE_STREAM_CHUNK2);
  assert_int_equal(d.stream_chunk.empty_to, UINT64_C(0x123456789abcdef0));
  assert_int_equal(d.stream_chunk.more, 0);
  wire_msg_free(&d);
}

static void cluster_messages_on_the_wire(void **state) {
  (void)state;
  size_t len;
  uint8_t *buf;
  struct wire_msg m, d;
  char err[CHORUS_ERRMSG_SIZE] = "";

  m = (struct wire_msg){.type = WIRE_CLUSTER_QUERY, .request_id = 9};
  buf = encode(&m, &len);
  static const uint8_t query[] = {0, 0, 0, 3, 0x92, 0x66, 0x09};
  assert_int_equal(len, sizeof query);
  assert_memory_equal(buf, query, sizeof query);
  chorus_free(buf);

  m = (struct wire_msg){.type = WIRE_CLUSTER_REMOVE, .request_id = 5};
  m.cluster_remove.name = (struct wire_bytes){(const uint8_t *)"n2", 2};
  m.cluster_remove.force = 1;
  buf = encode(&m, &len);
  static const uint8_t remove[] = {0,    0,    0,   7,   0x94, 0x68,
                                   0x05, 0xa2, 'n', '2', 0x01};
  assert_int_equal(len, sizeof remove);
  assert_memory_equal(buf, remove, sizeof remove);
  chorus_free(buf);

  m = (struct wire_msg){.type = WIRE_META, .request_id = 0};
  m.meta.msg = (struct wire_bytes){(const uint8_t *)"\x01\x02", 2};
  buf = encode(&m, &len);
  static const uint8_t meta[] = {0,    0,    0,    7,    0x93, 0x65,
                                 0x00, 0xc4, 0x02, 0x01, 0x02};
  assert_int_equal(len, sizeof meta);
  assert_memory_equal(buf, meta, sizeof meta);
  chorus_free(buf);

  /* A reply: members decode into one owned array, bytes borrowed. */
  struct wire_cluster_member mb[2] = {{0x11,
                                       {(const uint8_t *)"n1", 2},
                                       {(const uint8_t *)"a:1", 3},
                                       {(const uint8_t *)"dc1", 3},
                                       {(const uint8_t *)"r1", 2},
                                       WIRE_MEMBER_NORMAL,
                                       WIRE_RAFT_ROLE_VOTER,
                                       WIRE_ALIVE_ALIVE,
                                       256,
                                       500000},
                                      {0x22,
                                       {(const uint8_t *)"n2", 2},
                                       {NULL, 0},
                                       {NULL, 0},
                                       {NULL, 0},
                                       WIRE_MEMBER_REMOVED,
                                       WIRE_RAFT_ROLE_NONE,
                                       WIRE_ALIVE_LEFT,
                                       0,
                                       0}};
  m = (struct wire_msg){.type = WIRE_CLUSTER_REPLY, .request_id = 6};
  struct wire_cluster_reply *r = &m.cluster_reply;
  r->node_id = 0x11;
  r->node_name = (struct wire_bytes){(const uint8_t *)"n1", 2};
  r->leader_id = 0x11;
  r->leader_name = r->node_name;
  r->term = 4;
  r->commit_index = 40;
  r->applied_index = 39;
  r->epoch = 12;
  r->raft_state = WIRE_RAFT_LEADER;
  r->nmembers = 2;
  r->members = mb;
  round_trip(&m);
  buf = encode(&m, &len);
  long before = chorus_alloc_count();
  assert_int_equal(wire_decode(buf + 4, len - 4, &peer, &d, err), CHORUS_OK);
  assert_int_equal(chorus_alloc_count() - before, 1);
  assert_ptr_equal(d.owned, d.cluster_reply.members);
  assert_int_equal(d.cluster_reply.nmembers, 2);
  assert_int_equal(d.cluster_reply.members[0].share_ppm, 500000);
  assert_int_equal(d.cluster_reply.members[1].state, WIRE_MEMBER_REMOVED);
  assert_true(d.cluster_reply.members[0].name.ptr > buf &&
              d.cluster_reply.members[0].name.ptr < buf + len);
  wire_msg_free(&d);
  chorus_free(buf);

  /* The encoder refuses what the decoder would. */
  uint8_t small[512];
  static uint8_t longname[WIRE_MAX_NAME + 1];
  memset(longname, 'n', sizeof longname);
#define REFUSED(substr)                                                        \
  do {                                                                         \
    err[0] = '\0';                                                             \
    assert_int_equal(wire_encode(&m, small, sizeof small, &len, err),          \
                     CHORUS_EINVAL);                                           \
    if (!strstr(err, substr))                                                  \
      fail_msg("message \"%s\" lacks \"%s\"", err, substr);                    \
    mb[1] = keep;                                                              \
  } while (0)
  struct wire_cluster_member keep = mb[1];
  mb[1].state = 0;
  REFUSED("CLUSTER_REPLY: member 1: member.state: 0 unknown");
  mb[1].state = WIRE_MEMBER_STATE_MAX + 1;
  REFUSED("member.state: 7 unknown");
  mb[1].role = WIRE_RAFT_ROLE_MAX + 1;
  REFUSED("member.role: 4 unknown");
  mb[1].alive = WIRE_ALIVE_MAX + 1;
  REFUSED("member.alive: 5 unknown");
  mb[1].vnodes = 65536;
  REFUSED("member.vnodes: 65536 exceeds 65535");
  mb[1].share_ppm = WIRE_SHARE_PPM_MAX + 1;
  REFUSED("member.share_ppm: 1000001 exceeds 1000000");
  mb[1].name.len = 0;
  REFUSED("member 1: member.name: length 0 outside [1, 127]");
  mb[1].name = (struct wire_bytes){longname, WIRE_MAX_NAME + 1};
  REFUSED("member.name: length 128");
  mb[1].addr = (struct wire_bytes){longname, WIRE_MAX_NAME + 1};
  mb[1].dc = mb[1].addr;
  REFUSED("member.dc: length 128 outside [0, 64]");
  r->raft_state = WIRE_RAFT_STATE_MAX + 1;
  REFUSED("raft_state: 4 exceeds 3");
  r->raft_state = WIRE_RAFT_LEADER;
  r->leader_name = (struct wire_bytes){longname, WIRE_MAX_NAME + 1};
  REFUSED("leader_name: length 128");
  r->leader_name = r->node_name;
  r->nmembers = WIRE_MAX_CLUSTER_MEMBERS + 1;
  REFUSED("members: 4097 exceed 4096");
  r->nmembers = 2;

  m = (struct wire_msg){.type = WIRE_CLUSTER_REMOVE};
  REFUSED("CLUSTER_REMOVE: name: length 0");
  m.cluster_remove.name = (struct wire_bytes){longname, WIRE_MAX_NAME + 1};
  REFUSED("name: length 128 outside [1, 127]");
  m.cluster_remove.name.len = WIRE_MAX_NAME;
  m.cluster_remove.force = 2;
  REFUSED("force: 2 exceeds 1");
  m = (struct wire_msg){.type = WIRE_META};
  REFUSED("META: msg: length 0");
  struct wire_ring_node nd = {.name = {longname, WIRE_MAX_NAME + 1}};
  m = (struct wire_msg){.type = WIRE_RING_REPLY2};
  m.ring_reply.nnodes = 1;
  m.ring_reply.nodes = &nd;
  REFUSED("RING_REPLY2: node.name: length 128");
  m.type = WIRE_RING_REPLY; /* no name there: nothing to refuse */
  assert_int_equal(wire_encode(&m, small, sizeof small, &len, err), 0);
  m = (struct wire_msg){.type = WIRE_STATUS_REPLY2};
  m.status_reply.name = (struct wire_bytes){longname, WIRE_MAX_NAME + 1};
  REFUSED("STATUS_REPLY2: name: length 128");
#undef REFUSED

  /* 4096 members decode; 4097, each well formed, are malformed. */
  for (size_t n = WIRE_MAX_CLUSTER_MEMBERS; n <= WIRE_MAX_CLUSTER_MEMBERS + 1;
       n++) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 12);
    msgpack_pack_uint64(&pk, WIRE_CLUSTER_REPLY);
    msgpack_pack_uint64(&pk, 1);
    for (int k = 0; k < 9; k++)
      if (k == 1 || k == 3) {
        msgpack_pack_str(&pk, 0);
      } else {
        msgpack_pack_uint64(&pk, 0);
      }
    msgpack_pack_array(&pk, n);
    for (size_t k = 0; k < n; k++) {
      msgpack_pack_array(&pk, 10);
      msgpack_pack_uint64(&pk, k + 1);
      msgpack_pack_str(&pk, 1);
      msgpack_pack_str_body(&pk, "n", 1);
      for (int e = 0; e < 3; e++)
        msgpack_pack_str(&pk, 0);
      msgpack_pack_uint64(&pk, WIRE_MEMBER_JOINING);
      for (int e = 0; e < 4; e++)
        msgpack_pack_uint64(&pk, 0);
    }
    int rc = wire_decode((const uint8_t *)sb.data, sb.size, &peer, &d, err);
    if (n == WIRE_MAX_CLUSTER_MEMBERS) {
      assert_int_equal(rc, CHORUS_OK);
      assert_int_equal(d.cluster_reply.nmembers, n);
      wire_msg_free(&d);
    } else {
      expect_malformed(&sb, "members: 4097 exceed 4096", "4097 members");
    }
    msgpack_sbuffer_destroy(&sb);
  }
}

/* The schema table is sorted by type (wire__schema_of's binary search):
 * every type is found, and a type out of order would not be (a merge
 * once put CLUSTER_STAGE before CLUSTER_PLAN and lost 109 and 110). */
static void schema_is_sorted(void **state) {
  (void)state;
  for (size_t i = 0; i < wire__nschemas; i++) {
    if (i > 0)
      assert_true(wire__schemas[i - 1].type < wire__schemas[i].type);
    assert_ptr_equal(wire__schema_of(wire__schemas[i].type), &wire__schemas[i]);
  }
}

/* TRACE carries fixed records in a bin: each field of a record comes back
 * as put, big-endian at its documented offset, and the message round
 * trips; REPLICA_TIMES bounds its flag. */
static void trace_records_round_trip(void **state) {
  (void)state;
  uint8_t rec[2 * WIRE_TRACE_EVENT_BYTES];
  const struct wire_trace_event e = {.kind = WIRE_TRACE_REPLICA,
                                     .state = WIRE_TRACE_NO_ANSWER,
                                     .flags = WIRE_TRACE_HINT,
                                     .at_ms = 0x01020304u,
                                     .node = 0x1112131415161718ull,
                                     .other = 0x2122232425262728ull,
                                     .synced_ms = 7,
                                     .answered_ms = UINT32_MAX};
  wire_trace_event_put(rec, &e);
  wire_trace_event_put(rec + WIRE_TRACE_EVENT_BYTES, &e);
  assert_int_equal(rec[0], WIRE_TRACE_REPLICA);
  assert_int_equal(rec[4], 0x01);
  assert_int_equal(rec[8], 0x11);
  assert_int_equal(rec[23], 0x28);
  struct wire_trace_event g;
  wire_trace_event_get(rec + WIRE_TRACE_EVENT_BYTES, &g);
  assert_int_equal(g.kind, e.kind);
  assert_int_equal(g.state, e.state);
  assert_int_equal(g.flags, e.flags);
  assert_int_equal(g.at_ms, e.at_ms);
  assert_int_equal(g.node, e.node);
  assert_int_equal(g.other, e.other);
  assert_int_equal(g.synced_ms, e.synced_ms);
  assert_int_equal(g.answered_ms, e.answered_ms);

  struct wire_msg m = {.type = WIRE_TRACE, .request_id = 9}, d;
  m.trace.node_id = 77;
  m.trace.events = (struct wire_bytes){rec, sizeof rec};
  uint8_t buf[256];
  size_t n;
  char err[CHORUS_ERRMSG_SIZE];
  assert_int_equal(wire_encode(&m, buf, sizeof buf, &n, err), CHORUS_OK);
  assert_int_equal(wire_decode(buf + 4, n - 4, &peer, &d, err), CHORUS_OK);
  assert_int_equal(d.type, WIRE_TRACE);
  assert_int_equal(d.trace.node_id, 77);
  assert_int_equal(d.trace.events.len, sizeof rec);
  assert_memory_equal(d.trace.events.ptr, rec, sizeof rec);
  wire_msg_free(&d);
  /* More records than WIRE_MAX_TRACE_EVENTS do not encode. */
  static uint8_t big[(WIRE_MAX_TRACE_EVENTS + 1) * WIRE_TRACE_EVENT_BYTES];
  m.trace.events = (struct wire_bytes){big, sizeof big};
  uint8_t bbuf[sizeof big + 64];
  assert_int_equal(wire_encode(&m, bbuf, sizeof bbuf, &n, err), CHORUS_EINVAL);

  struct wire_msg t = {.type = WIRE_REPLICA_TIMES,
                       .request_id = WIRE_REQ_TRACE | 5};
  t.replica_times = (struct wire_replica_times){1, 3, 4};
  assert_int_equal(wire_encode(&t, buf, sizeof buf, &n, err), CHORUS_OK);
  assert_int_equal(wire_decode(buf + 4, n - 4, &peer, &d, err), CHORUS_OK);
  assert_int_equal(d.request_id, WIRE_REQ_TRACE | 5);
  assert_int_equal(d.replica_times.synced, 1);
  assert_int_equal(d.replica_times.synced_ms, 3);
  assert_int_equal(d.replica_times.answered_ms, 4);
  t.replica_times.synced = 2;
  assert_int_equal(wire_encode(&t, buf, sizeof buf, &n, err), CHORUS_EINVAL);
}

static void error_reply_and_names(void **state) {
  (void)state;
  struct wire_msg r;
  char text[2000];
  memset(text, 'x', sizeof text - 1);
  text[sizeof text - 1] = '\0';
  wire_error_reply(&r, 3, CHORUS_EOVERLOAD, text);
  assert_int_equal(r.error.text.len, WIRE_MAX_ERROR_TEXT);
  round_trip(&r);
  wire_error_reply(&r, 3, 5, NULL); /* a bad code still encodes */
  assert_int_equal(r.error.code, CHORUS_EINTERNAL);
  round_trip(&r);

  assert_string_equal(wire_type_name(WIRE_REPLICA_WRITE), "REPLICA_WRITE");
  assert_string_equal(wire_type_name(200), "UNKNOWN");
  assert_string_equal(wire_level_name(WIRE_LOCAL_QUORUM), "LOCAL_QUORUM");
  assert_string_equal(wire_level_name(0), "DEFAULT");
  assert_null(wire_level_name(3));
  assert_null(wire_level_name(-9));
  int32_t v;
  assert_int_equal(wire_level_parse("each_quorum", &v), CHORUS_OK);
  assert_int_equal(v, WIRE_EACH_QUORUM);
  assert_int_equal(wire_level_parse("64", &v), CHORUS_OK);
  assert_int_equal(v, 64);
  assert_int_equal(wire_level_parse("65", &v), CHORUS_EINVAL);
  assert_int_equal(wire_level_parse("0", &v), CHORUS_EINVAL);
  assert_int_equal(wire_level_parse("-1", &v), CHORUS_EINVAL);
  assert_int_equal(wire_level_parse("2x", &v), CHORUS_EINVAL);
  assert_int_equal(wire_level_parse("", &v), CHORUS_EINVAL);
  /* Every type in the table has a distinct number and a name, in order. */
  for (size_t i = 1; i < wire__nschemas; i++)
    assert_true(wire__schemas[i - 1].type < wire__schemas[i].type);
  for (size_t i = 0; i < wire__nschemas; i++)
    assert_true(wire__schemas[i].nfields <= WIRE__MAX_FIELDS);
}

/* ------------------------------------------------------------------------
 * Random mutations: whatever the bytes, decode returns a code and, when it
 * accepts, the message re-encodes to something that decodes to the same.
 * ------------------------------------------------------------------------ */

static void mutated_frames_never_crash(void **state) {
  (void)state;
  struct wire_gen g;
  assert_int_equal(wire_gen_init(&g, 21), 0);
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 22);
  int accepted = 0, rejected = 0;
  for (int r = 0; r < MUTATIONS; r++) {
    struct wire_msg m, d;
    wire_gen_msg(&g, &wire__schemas[r % wire__nschemas], WIRE_GEN_RANDOM, &m);
    size_t len;
    uint8_t *buf = encode(&m, &len);
    int flips = 1 + (int)chorus_prng_below(&prng, 4);
    for (int k = 0; k < flips; k++) {
      size_t at = 4 + (size_t)chorus_prng_below(&prng, len - 4);
      if (chorus_prng_chance(&prng, 0.5))
        buf[at] ^= (uint8_t)(1u << chorus_prng_below(&prng, 8));
      else
        buf[at] = (uint8_t)chorus_prng_next(&prng);
    }
    size_t cut = len - (size_t)chorus_prng_below(&prng, 3);
    int rc = wire_decode(buf + 4, cut - 4, &peer, &d, NULL);
    if (rc == CHORUS_OK) {
      accepted++;
      size_t len2;
      uint8_t *again = encode(&d, &len2);
      struct wire_msg d2;
      assert_int_equal(wire_decode(again + 4, len2 - 4, &peer, &d2, NULL), 0);
      assert_true(wire__msg_equal(&d, &d2));
      wire_msg_free(&d2);
      chorus_free(again);
    } else {
      rejected++;
      assert_true(rc == CHORUS_EMALFORMED || rc == CHORUS_ENOTSUP);
    }
    wire_msg_free(&d);
    chorus_free(buf);
  }
  assert_true(accepted > 0);
  assert_true(rejected > 0);
  wire_gen_fini(&g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_message_round_trips_empty_and_max),
      cmocka_unit_test(every_message_round_trips_random),
      cmocka_unit_test(msg_equal_notices_every_field),
      cmocka_unit_test(put_has_documented_bytes),
      cmocka_unit_test(put_ttl_carries_its_ttl),
      cmocka_unit_test(lists_decode_into_one_owned_array),
      cmocka_unit_test(encoder_rejects_invalid_fields),
      cmocka_unit_test(decoder_rejects_wrong_missing_extra_fields),
      cmocka_unit_test(optional_fields_are_left_out_when_zero),
      cmocka_unit_test(decoder_rejects_out_of_range_integers),
      cmocka_unit_test(decoder_checks_options),
      cmocka_unit_test(decoder_checks_version_five_options),
      cmocka_unit_test(decoder_limits_frame_and_unknown_types),
      cmocka_unit_test(key_and_value_limits_on_the_wire),
      cmocka_unit_test(cas_reply_carries_its_context),
      cmocka_unit_test(splitter_recovers_frames_from_any_chunking),
      cmocka_unit_test(splitter_returns_whole_frames_in_place),
      cmocka_unit_test(splitter_buffers_only_what_arrived),
      cmocka_unit_test(splitter_errors_are_sticky),
      cmocka_unit_test(hello_check_decides_and_replies),
      cmocka_unit_test(replies_for_version_one),
      cmocka_unit_test(replies_for_version_two_lose_names),
      cmocka_unit_test(requests_for_version_three_lose_the_dc),
      cmocka_unit_test(stream_chunks_for_version_four_lose_the_stretch),
      cmocka_unit_test(cluster_messages_on_the_wire),
      cmocka_unit_test(trace_records_round_trip),
      cmocka_unit_test(error_reply_and_names),
      cmocka_unit_test(schema_is_sorted),
      cmocka_unit_test(mutated_frames_never_crash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
