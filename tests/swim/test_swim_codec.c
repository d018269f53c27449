/* test_swim_codec.c: the gossip codec, the AEAD envelope, the suspicion
 * formula and the allocation-failure paths of struct swim. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_alloc.h"
#include "swim.h"

static struct swim_update alive_upd(chorus_node_id id, const char *addr) {
  struct swim_update u;
  memset(&u, 0, sizeof u);
  u.kind = SWIM_UPD_ALIVE;
  u.id = id;
  u.incarnation = 7;
  snprintf(u.meta.addr, sizeof u.meta.addr, "%s", addr);
  snprintf(u.meta.dc, sizeof u.meta.dc, "dc-east");
  snprintf(u.meta.rack, sizeof u.meta.rack, "r1");
  u.meta.vnodes = 1024;
  u.meta.ownership = RING_JOINING;
  return u;
}

static size_t encode(struct swim_msg *m, const struct swim_update *u, size_t nu,
                     uint8_t *buf) {
  m->nupdates = (uint16_t)nu;
  size_t off = swim_codec_header_size(m);
  assert_int_equal(swim_codec_encode_header(m, buf), off);
  for (size_t i = 0; i < nu; i++) {
    size_t n = swim_codec_encode_update(&u[i], buf + off);
    assert_int_equal(n, swim_codec_update_size(&u[i]));
    off += n;
  }
  return off;
}

static void test_roundtrip(void **state) {
  (void)state;
  struct swim_update ups[3];
  ups[0] = alive_upd(0x1122334455667788ull, "10.0.0.1:7946");
  memset(&ups[1], 0, sizeof ups[1]);
  ups[1].kind = SWIM_UPD_SUSPECT;
  ups[1].id = 42;
  ups[1].incarnation = 3;
  ups[1].from = 99;
  ups[2] = ups[1];
  ups[2].kind = SWIM_UPD_DEAD;
  enum swim_msg_kind kinds[] = {SWIM_MSG_PING,      SWIM_MSG_ACK,
                                SWIM_MSG_PING_REQ,  SWIM_MSG_NACK,
                                SWIM_MSG_PUSH_PULL, SWIM_MSG_GOSSIP};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    struct swim_msg m = {.kind = kinds[k],
                         .sender = 5,
                         .seq = 77,
                         .target = 9,
                         .target_inc = 4,
                         .t1 = -5,
                         .t2 = 1700000000000,
                         .t3 = 1700000000001,
                         .flags = SWIM_PP_JOIN};
    snprintf(m.target_addr, sizeof m.target_addr, "n9");
    uint8_t buf[512];
    size_t len = encode(&m, ups, 3, buf);
    struct swim_msg d;
    assert_int_equal(swim_codec_decode(buf, len, &d, NULL), CHORUS_OK);
    assert_int_equal(d.kind, kinds[k]);
    assert_true(d.sender == 5 && d.seq == 77 && d.nupdates == 3);
    if (kinds[k] == SWIM_MSG_PING)
      assert_true(d.target == 9 && d.t1 == -5 && d.target_inc == 4);
    if (kinds[k] == SWIM_MSG_ACK)
      assert_true(d.t2 == 1700000000000 && d.t3 == 1700000000001);
    if (kinds[k] == SWIM_MSG_PING_REQ)
      assert_string_equal(d.target_addr, "n9");
    if (kinds[k] == SWIM_MSG_PUSH_PULL)
      assert_int_equal(d.flags, SWIM_PP_JOIN);
    struct swim_update u;
    assert_int_equal(swim_codec_next_update(&d, &u), 1);
    assert_memory_equal(&u, &ups[0], sizeof u);
    assert_int_equal(swim_codec_next_update(&d, &u), 1);
    assert_true(u.kind == SWIM_UPD_SUSPECT && u.from == 99 && u.id == 42);
    assert_int_equal(swim_codec_next_update(&d, &u), 1);
    assert_true(u.kind == SWIM_UPD_DEAD);
    assert_int_equal(swim_codec_next_update(&d, &u), 0);
    /* every strict prefix and every extension is rejected */
    for (size_t cut = 0; cut < len; cut++)
      assert_int_not_equal(swim_codec_decode(buf, cut, &d, NULL), CHORUS_OK);
    buf[len] = 0;
    assert_int_equal(swim_codec_decode(buf, len + 1, &d, NULL),
                     CHORUS_EMALFORMED);
  }
}

static void test_hostile(void **state) {
  (void)state;
  struct swim_update u = alive_upd(1, "a");
  struct swim_msg m = {.kind = SWIM_MSG_GOSSIP, .sender = 2};
  uint8_t buf[256];
  size_t len = encode(&m, &u, 1, buf);
  struct swim_msg d;
  char err[CHORUS_ERRMSG_SIZE];
  /* version */
  buf[0] = 2;
  assert_int_equal(swim_codec_decode(buf, len, &d, err), CHORUS_EVERSION);
  buf[0] = 1;
  /* kind */
  buf[1] = 0;
  assert_int_equal(swim_codec_decode(buf, len, &d, err), CHORUS_EMALFORMED);
  buf[1] = 99;
  assert_int_equal(swim_codec_decode(buf, len, &d, err), CHORUS_EMALFORMED);
  buf[1] = SWIM_MSG_GOSSIP;
  size_t hdr = swim_codec_header_size(&m);
  /* update count larger than what follows */
  buf[hdr - 2] = 2;
  assert_int_equal(swim_codec_decode(buf, len, &d, err), CHORUS_EMALFORMED);
  buf[hdr - 2] = 1;
  /* a NUL inside the address */
  size_t addr_at = hdr + 1 + 8 + 4;
  assert_int_equal(buf[addr_at], 1);
  buf[addr_at + 1] = 0;
  assert_int_equal(swim_codec_decode(buf, len, &d, err), CHORUS_EMALFORMED);
  buf[addr_at + 1] = 'a';
  /* an address length past the end, and past the field */
  buf[addr_at] = 200;
  assert_int_equal(swim_codec_decode(buf, len, &d, err), CHORUS_EMALFORMED);
  buf[addr_at] = 1;
  /* ownership out of range */
  buf[len - 1] = 9;
  assert_int_equal(swim_codec_decode(buf, len, &d, err), CHORUS_EMALFORMED);
  buf[len - 1] = RING_NORMAL;
  assert_int_equal(swim_codec_decode(buf, len, &d, err), CHORUS_OK);
  /* push/pull flags */
  struct swim_msg pp = {.kind = SWIM_MSG_PUSH_PULL, .flags = 0x80};
  len = encode(&pp, NULL, 0, buf);
  assert_int_equal(swim_codec_decode(buf, len, &d, err), CHORUS_EMALFORMED);
  assert_non_null(strstr(err, "flags"));
  assert_int_equal(swim_codec_decode(NULL, 0, &d, err), CHORUS_EMALFORMED);
  /* random bytes never crash and rarely parse */
  struct chorus_prng p;
  chorus_prng_seed(&p, 3);
  for (int i = 0; i < 20000; i++) {
    size_t n = (size_t)chorus_prng_below(&p, sizeof buf);
    for (size_t k = 0; k < n; k++)
      buf[k] = (uint8_t)chorus_prng_next(&p);
    buf[0] = 1;
    if (swim_codec_decode(buf, n, &d, NULL) == CHORUS_OK) {
      struct swim_update x;
      while (swim_codec_next_update(&d, &x))
        ;
    }
  }
}

static void test_envelope(void **state) {
  (void)state;
  uint8_t k1[SWIM_KEY_BYTES], k2[SWIM_KEY_BYTES], nonce[24];
  memset(k1, 1, sizeof k1);
  memset(k2, 2, sizeof k2);
  memset(nonce, 7, sizeof nonce);
  const uint8_t plain[] = "hello gossip";
  uint8_t sealed[64], out[64];
  size_t len = swim_seal(k1, nonce, "prod", plain, sizeof plain, sealed);
  assert_int_equal(len, sizeof plain + SWIM_SEAL_OVERHEAD);
  size_t plen = 0;
  const uint8_t ring1[1][SWIM_KEY_BYTES] = {{1}};
  (void)ring1;
  uint8_t keys[2][SWIM_KEY_BYTES];
  memcpy(keys[0], k2, SWIM_KEY_BYTES);
  memcpy(keys[1], k1, SWIM_KEY_BYTES);
  /* an accepted (not primary) key opens it */
  assert_int_equal(
      swim_open((const uint8_t(*)[32])keys, 2, "prod", sealed, len, out, &plen),
      CHORUS_OK);
  assert_int_equal(plen, sizeof plain);
  assert_memory_equal(out, plain, plen);
  /* wrong key, wrong cluster, flipped bits, short, wrong version */
  assert_int_equal(
      swim_open((const uint8_t(*)[32])keys, 1, "prod", sealed, len, out, &plen),
      CHORUS_EAUTH);
  assert_int_equal(swim_open((const uint8_t(*)[32])keys, 2, "staging", sealed,
                             len, out, &plen),
                   CHORUS_EAUTH);
  for (size_t i = 1; i < len; i++) {
    sealed[i] ^= 0x10;
    assert_int_equal(swim_open((const uint8_t(*)[32])keys, 2, "prod", sealed,
                               len, out, &plen),
                     CHORUS_EAUTH);
    sealed[i] ^= 0x10;
  }
  assert_int_equal(swim_open((const uint8_t(*)[32])keys, 2, "prod", sealed,
                             SWIM_SEAL_OVERHEAD - 1, out, &plen),
                   CHORUS_EMALFORMED);
  sealed[0] = 2;
  assert_int_equal(
      swim_open((const uint8_t(*)[32])keys, 2, "prod", sealed, len, out, &plen),
      CHORUS_EMALFORMED);
}

/* memberlist's suspicion timeout, worked by hand for n = 10, k = 2, LAN:
 * min = 4 * max(1, log10 10) * 1 s = 4 s, max = 6 * min = 24 s;
 * one confirmation: 24 - 20 * ln 2 / ln 3 = 11.381 s. */
static void test_suspicion_formula(void **state) {
  (void)state;
  struct swim_timing t;
  swim_timing_lan(&t);
  assert_int_equal(swim_suspicion_timeout(&t, 10, 2, 0), 24000);
  assert_int_equal(swim_suspicion_timeout(&t, 10, 2, 1), 11381);
  assert_int_equal(swim_suspicion_timeout(&t, 10, 2, 2), 4000);
  assert_int_equal(swim_suspicion_timeout(&t, 10, 2, 5), 4000);
  assert_int_equal(swim_suspicion_timeout(&t, 3, 0, 0), 4000);
  assert_int_equal(swim_suspicion_timeout(&t, 100, 2, 2), 8000);
  assert_int_equal(swim_suspicion_timeout(&t, 1000, 2, 0), 72000);
}

static void send_nothing(void *ctx, const char *addr, enum swim_channel ch,
                         const void *data, size_t len) {
  (void)ctx;
  (void)addr;
  (void)ch;
  (void)data;
  assert_true(len <= (ch == SWIM_DATAGRAM ? SWIM_PACKET_MAX : SWIM_STREAM_MAX));
}

static void config(struct swim_config *c, chorus_node_id id) {
  memset(c, 0, sizeof *c);
  c->id = id;
  snprintf(c->meta.addr, sizeof c->meta.addr, "n%llu", (unsigned long long)id);
  snprintf(c->cluster, sizeof c->cluster, "c");
  swim_timing_lan(&c->timing);
  c->fx.send = send_nothing;
}

/* Every allocation failure surfaces as CHORUS_ENOMEM and leaks nothing. */
static void test_oom(void **state) {
  (void)state;
  struct swim_config c;
  config(&c, 1);
  for (long k = 0;; k++) {
    chorus_alloc_fail_after(k);
    struct swim *s = NULL;
    int rc = swim_new(&c, &s);
    if (rc == CHORUS_OK) {
      struct swim_meta m = c.meta;
      for (chorus_node_id id = 2; id < 40 && rc == CHORUS_OK; id++) {
        snprintf(m.addr, sizeof m.addr, "n%llu", (unsigned long long)id);
        rc = swim_add_member(s, id, &m, 0, 0);
      }
      if (rc == CHORUS_OK)
        rc = swim_start(s, 0);
      const char *seeds[] = {"n2"};
      if (rc == CHORUS_OK)
        rc = swim_join(s, seeds, 1, 0, 0);
      for (chorus_ms t = 0; t < 5000 && rc == CHORUS_OK; t += 100)
        rc = swim_tick(s, t, t);
    }
    chorus_alloc_fail_after(-1);
    swim_free(s);
    if (rc == CHORUS_OK)
      break;
    assert_int_equal(rc, CHORUS_ENOMEM);
  }
}

static void test_bad_config(void **state) {
  (void)state;
  struct swim_config c;
  config(&c, 1);
  struct swim *s = NULL;
  c.timing.probe_timeout = c.timing.probe_interval;
  assert_int_equal(swim_new(&c, &s), CHORUS_EINVAL);
  config(&c, 1);
  memset(c.meta.dc, 'x', sizeof c.meta.dc);
  assert_int_equal(swim_new(&c, &s), CHORUS_EINVAL);
  config(&c, 1);
  assert_int_equal(swim_new(&c, &s), CHORUS_OK);
  assert_int_equal(swim_start(s, 0), CHORUS_OK);
  assert_int_equal(swim_start(s, 0), CHORUS_EINVAL);
  assert_int_equal(swim_add_member(s, 1, &c.meta, 0, 0), CHORUS_EINVAL);
  assert_int_equal(swim_add_member(s, 2, &c.meta, 0, 0), CHORUS_OK);
  assert_int_equal(swim_add_member(s, 2, &c.meta, 0, 0), CHORUS_EEXIST);
  assert_int_equal(swim_remove(s, 1, 0), CHORUS_EINVAL);
  assert_int_equal(swim_remove(s, 3, 0), CHORUS_ENOTFOUND);
  /* garbage packets are counted, never errors */
  uint8_t junk[100] = {1};
  assert_int_equal(swim_handle_packet(s, junk, sizeof junk, 0, 0), CHORUS_OK);
  assert_int_equal(swim_handle_packet(s, junk, 3, 0, 0), CHORUS_OK);
  assert_int_equal(swim_stats(s)->auth_failed, 1);
  assert_int_equal(swim_stats(s)->malformed, 1);
  swim_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_envelope),
      cmocka_unit_test(test_suspicion_formula),
      cmocka_unit_test(test_oom),
      cmocka_unit_test(test_bad_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
