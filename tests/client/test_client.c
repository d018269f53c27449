/* test_client.c: libchorus against the fake node: sibling/context round
 * trips, counters and sets, error mapping, failover between seeds (reads
 * retried, sent writes reported as maybe applied), timeouts, handshake
 * refusal, malformed replies, ring/status joins, and the async API on a uv
 * loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "chorus_alloc.h"
#include "crdt.h"
#include "fake_server.h"
#include "libchorus.h"
#include "libchorus_int.h"

#define CLUSTER "test-cluster"

static struct chorus_config cfg_fast(void) {
  struct chorus_config cfg;
  chorus_config_init(&cfg);
  cfg.cluster = CLUSTER;
  cfg.connect_timeout_ms = 500;
  cfg.default_timeout_ms = 300;
  cfg.grace_ms = 200;
  cfg.seed = 42;
  return cfg;
}

static struct chorus_client *open_sync(const char *seeds) {
  struct chorus_config cfg = cfg_fast();
  struct chorus_client *c = NULL;
  char err[CHORUS_ERRMSG_SIZE];
  int rc = chorus_client_open(seeds, &cfg, &c, err);
  if (rc != CHORUS_OK)
    fail_msg("open %s: %s", seeds, err);
  return c;
}

static char *seeds2(const char *a, const char *b) {
  static char buf[128];
  snprintf(buf, sizeof buf, "%s,%s", a, b);
  return buf;
}

static char *dead_addr(void) {
  static char buf[32];
  snprintf(buf, sizeof buf, "127.0.0.1:%u", fake_dead_port());
  return buf;
}

static bool has_value(const struct chorus_result *r, const char *v) {
  for (size_t i = 0; i < r->nvalues; i++)
    if (r->values[i].len == strlen(v) &&
        memcmp(r->values[i].ptr, v, r->values[i].len) == 0)
      return true;
  return false;
}

/* ------------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------------ */

static void test_open_errors(void **state) {
  static const char *bad[] = {"",     " , ",    "host", "h:0",     "h:99999",
                              "h:x1", "[::1]7", ":80",  "h:123456"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct chorus_client *c = (void *)1;
    char err[CHORUS_ERRMSG_SIZE] = "";
    assert_int_equal(chorus_client_open(bad[i], NULL, &c, err), CHORUS_EINVAL);
    assert_null(c);
    assert_true(strlen(err) > 0);
  }
  struct chorus_config cfg;
  chorus_config_init(&cfg);
  cfg.cluster = "";
  struct chorus_client *c = NULL;
  assert_int_equal(chorus_client_open("h:1", &cfg, &c, NULL), CHORUS_EINVAL);
  /* Good lists, including IPv6 and spaces; nothing connects yet. */
  assert_int_equal(
      chorus_client_open(" 127.0.0.1:1 , [::1]:2,localhost:3", NULL, &c, NULL),
      CHORUS_OK);
  assert_string_equal(chorus_client_server(c), "127.0.0.1:1");
  chorus_client_close(c);
}

/* ------------------------------------------------------------------------
 * Data round trips
 * ------------------------------------------------------------------------ */

static void test_siblings_and_context(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  assert_non_null(f);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_result r;

  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_OK);
  assert_int_equal(r.nvalues, 0); /* not found is not an error */
  assert_string_equal(r.server, fake_addr(f));
  chorus_result_free(&r);

  /* Two blind writes: two siblings, which the (toy) node warns of. */
  assert_int_equal(chorus_put(c, "k", 1, "v1", 2, NULL, 0, NULL, &r),
                   CHORUS_OK);
  assert_int_equal(r.context.len, 8);
  assert_int_equal(r.siblings, 1);
  assert_int_equal(r.object_flags, 0);
  chorus_result_free(&r);
  struct chorus_opts o = {.w = CHORUS_QUORUM, .timeout_ms = 500};
  assert_int_equal(chorus_put(c, "k", 1, "v2", 2, NULL, 0, &o, &r), CHORUS_OK);
  assert_int_equal(r.siblings, 2);
  assert_int_equal(r.object_flags, CHORUS_OBJECT_SIBLINGS);
  chorus_result_free(&r);
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_OK);
  assert_int_equal(r.nvalues, 2);
  assert_int_equal(r.siblings, 2);
  assert_int_equal(r.object_bytes, 4);
  assert_int_equal(r.object_flags, CHORUS_OBJECT_SIBLINGS);
  assert_true(has_value(&r, "v1") && has_value(&r, "v2"));
  uint8_t ctx[16];
  size_t ctx_len = r.context.len;
  memcpy(ctx, r.context.ptr, ctx_len);
  chorus_result_free(&r);

  /* A write with the read's context collapses them. */
  assert_int_equal(chorus_put(c, "k", 1, "v3", 2, ctx, ctx_len, NULL, &r),
                   CHORUS_OK);
  chorus_result_free(&r);
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_OK);
  assert_int_equal(r.nvalues, 1);
  assert_true(has_value(&r, "v3"));
  memcpy(ctx, r.context.ptr, r.context.len);
  ctx_len = r.context.len;
  chorus_result_free(&r);

  /* Delete with the context: gone. */
  assert_int_equal(chorus_delete(c, "k", 1, ctx, ctx_len, NULL, &r), CHORUS_OK);
  chorus_result_free(&r);
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_OK);
  assert_int_equal(r.nvalues, 0);
  chorus_result_free(&r);

  /* A binary value with NUL bytes survives. */
  static const uint8_t bin[] = {0, 1, 0xff, 0, '\n'};
  assert_int_equal(chorus_put(c, "b", 1, bin, sizeof bin, NULL, 0, NULL, &r),
                   CHORUS_OK);
  chorus_result_free(&r);
  assert_int_equal(chorus_get(c, "b", 1, NULL, &r), CHORUS_OK);
  assert_int_equal(r.nvalues, 1);
  assert_int_equal(r.values[0].len, sizeof bin);
  assert_memory_equal(r.values[0].ptr, bin, sizeof bin);
  chorus_result_free(&r);

  chorus_client_close(c);
  fake_stop(f);
}

/* chorus_opts.trace: the TRACE the node sends before the reply lands in
 * the result (libchorus.h, REQUEST TRACES); none without it. */
static void test_trace_kept_with_the_reply(void **state) {
  (void)state;
  struct fake_server *f = fake_start(CLUSTER);
  assert_non_null(f);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_result res;
  assert_int_equal(chorus_put(c, "t", 1, "v", 1, NULL, 0, NULL, &res),
                   CHORUS_OK);
  chorus_result_free(&res);
  struct chorus_opts o = {.trace = true};
  assert_int_equal(chorus_get(c, "t", 1, &o, &res), CHORUS_OK);
  assert_int_equal(res.nvalues, 1);
  assert_int_equal(res.ntrace, 2);
  assert_non_null(res.trace);
  assert_int_equal(res.trace_node, 0x1111111111111111ull);
  assert_int_equal(res.trace[0].kind, CHORUS_TRACE_RECEIVED);
  assert_int_equal(res.trace[1].kind, CHORUS_TRACE_REPLICA);
  assert_int_equal(res.trace[1].state, CHORUS_TRACE_ACKED);
  assert_int_equal(res.trace[1].flags,
                   CHORUS_TRACE_TIMES | CHORUS_TRACE_SYNCED);
  assert_int_equal(res.trace[1].at_ms, 3);
  assert_int_equal(res.trace[1].node, 0x2222222222222222ull);
  assert_int_equal(res.trace[1].synced_ms, 1);
  assert_int_equal(res.trace[1].answered_ms, 2);
  chorus_result_free(&res);
  assert_null(res.trace);
  assert_int_equal(chorus_get(c, "t", 1, NULL, &res), CHORUS_OK);
  assert_null(res.trace);
  assert_int_equal(res.ntrace, 0);
  chorus_result_free(&res);
  chorus_client_close(c);
  fake_stop(f);
}

static void test_counters_and_sets(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_result r;
  assert_int_equal(chorus_counter_add(c, "n", 1, 5, NULL, &r), CHORUS_OK);
  chorus_result_free(&r);
  uint64_t id1 = fake_last_op_id(f);
  assert_int_equal(chorus_counter_add(c, "n", 1, -2, NULL, &r), CHORUS_OK);
  chorus_result_free(&r);
  uint64_t id2 = fake_last_op_id(f);
  assert_true(id1 != 0 && id2 != 0 && id1 != id2);
  /* A client-given op id is sent as is (a retry counts once). */
  struct chorus_opts o = {.op_id = 777};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(chorus_counter_add(c, "n", 1, 10, &o, &r), CHORUS_OK);
    chorus_result_free(&r);
    assert_int_equal(fake_last_op_id(f), 777);
  }
  assert_int_equal(chorus_counter_read(c, "n", 1, NULL, &r), CHORUS_OK);
  assert_int_equal(r.counter, 13);
  chorus_result_free(&r);
  /* delta 0 is refused before anything is sent */
  int before = fake_requests(f);
  assert_int_equal(chorus_counter_add(c, "n", 1, 0, NULL, &r), CHORUS_EINVAL);
  assert_true(strlen(r.errmsg) > 0);
  chorus_result_free(&r);
  assert_int_equal(fake_requests(f), before);

  struct chorus_bytes m[3] = {{(const uint8_t *)"a", 1},
                              {(const uint8_t *)"b", 1},
                              {(const uint8_t *)"c", 1}};
  assert_int_equal(chorus_set_add(c, "s", 1, m, 3, NULL, &r), CHORUS_OK);
  chorus_result_free(&r);
  assert_int_equal(chorus_set_remove(c, "s", 1, m, 1, NULL, 0, NULL, &r),
                   CHORUS_OK);
  chorus_result_free(&r);
  assert_int_equal(chorus_set_members(c, "s", 1, NULL, &r), CHORUS_OK);
  assert_int_equal(r.nvalues, 2);
  assert_true(has_value(&r, "b") && has_value(&r, "c"));
  chorus_result_free(&r);

  /* Type errors travel with the node's text and address. */
  assert_int_equal(chorus_get(c, "n", 1, NULL, &r), CHORUS_ETYPE);
  assert_non_null(strstr(r.errmsg, "counter"));
  assert_non_null(strstr(r.errmsg, fake_addr(f)));
  assert_false(r.maybe_applied);
  chorus_result_free(&r);
  assert_int_equal(chorus_counter_read(c, "s", 1, NULL, &r), CHORUS_ETYPE);
  chorus_result_free(&r);
  chorus_client_close(c);
  fake_stop(f);
}

static void test_argument_errors(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_result r;
  assert_int_equal(chorus_get(c, "", 0, NULL, &r), CHORUS_EINVAL);
  assert_non_null(strstr(r.errmsg, "empty key"));
  chorus_result_free(&r);
  assert_int_equal(chorus_get(c, NULL, 3, NULL, &r), CHORUS_EINVAL);
  chorus_result_free(&r);
  /* The encoder's message names the request once (issue 17: "GET: GET:"). */
  struct chorus_opts bad = {.r = 65};
  assert_int_equal(chorus_get(c, "k", 1, &bad, &r), CHORUS_EINVAL);
  assert_string_equal(r.errmsg,
                      "GET: opts.r: 65 is neither a level (-8..-1) nor a "
                      "count (0..64)");
  chorus_result_free(&r);
  static uint8_t big[70 * 1024];
  assert_int_equal(chorus_get(c, big, sizeof big, NULL, &r), CHORUS_ETOOBIG);
  chorus_result_free(&r);
  uint8_t *huge = chorus_calloc(1, 3u << 20);
  assert_int_equal(chorus_put(c, "k", 1, huge, 3u << 20, NULL, 0, NULL, &r),
                   CHORUS_ETOOBIG);
  chorus_result_free(&r);
  chorus_free(huge);
  struct chorus_opts ttl = {.ttl_ms = CHORUS_MAX_TTL_MS + 1};
  assert_int_equal(chorus_put(c, "k", 1, "v", 1, NULL, 0, &ttl, &r),
                   CHORUS_EINVAL);
  assert_non_null(strstr(r.errmsg, "ttl"));
  chorus_result_free(&r);
  assert_int_equal(fake_requests(f), 0);
  /* Async calls on a sync client are refused. */
  assert_int_equal(chorus_get_async(c, "k", 1, NULL, NULL, NULL),
                   CHORUS_EINVAL);
  int32_t lvl;
  assert_int_equal(chorus_level_parse("quorum", &lvl), CHORUS_OK);
  assert_int_equal(lvl, CHORUS_QUORUM);
  assert_int_equal(chorus_level_parse("each_quorum", &lvl), CHORUS_OK);
  assert_int_equal(lvl, CHORUS_EACH_QUORUM);
  assert_int_equal(chorus_level_parse("3", &lvl), CHORUS_OK);
  assert_int_equal(lvl, 3);
  assert_int_equal(chorus_level_parse("MOST", &lvl), CHORUS_EINVAL);
  assert_int_equal(chorus_level_parse("0", &lvl), CHORUS_EINVAL);
  assert_string_equal(chorus_level_name(CHORUS_ALL), "ALL");
  chorus_client_close(c);
  fake_stop(f);
}

/* The key, value and member limits at their exact boundary: the maximum
 * is sent, one byte more is refused with CHORUS_ETOOBIG and a message
 * naming the size and the limit, and nothing reaches the node. (The same
 * against real nodes: test_cluster.c.) */
static void test_limits(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_result r;
  uint8_t *big = chorus_calloc(1, CHORUS_MAX_VALUE + 1);
  assert_non_null(big);
  memset(big, 'x', CHORUS_MAX_VALUE + 1);
  int sent = fake_requests(f);
  /* Keys, on every keyed call. */
  assert_int_equal(chorus_get(c, big, CHORUS_MAX_KEY, NULL, &r), CHORUS_OK);
  chorus_result_free(&r);
  assert_int_equal(fake_requests(f), ++sent);
  assert_int_equal(chorus_get(c, big, CHORUS_MAX_KEY + 1, NULL, &r),
                   CHORUS_ETOOBIG);
  assert_string_equal(r.errmsg,
                      "key of 65529 bytes is over the 65528-byte key limit");
  assert_false(r.from_node);
  chorus_result_free(&r);
  assert_int_equal(
      chorus_put(c, big, CHORUS_MAX_KEY + 1, "v", 1, NULL, 0, NULL, &r),
      CHORUS_ETOOBIG);
  chorus_result_free(&r);
  assert_int_equal(chorus_counter_add(c, big, CHORUS_MAX_KEY + 1, 1, NULL, &r),
                   CHORUS_ETOOBIG);
  chorus_result_free(&r);
  assert_int_equal(chorus_delete(c, big, CHORUS_MAX_KEY + 1, NULL, 0, NULL, &r),
                   CHORUS_ETOOBIG);
  chorus_result_free(&r);
  assert_int_equal(chorus_set_members(c, big, CHORUS_MAX_KEY + 1, NULL, &r),
                   CHORUS_ETOOBIG);
  chorus_result_free(&r);
  assert_int_equal(fake_requests(f), sent);
  /* Values: the maximum goes out (the fake refuses to keep it), one more
   * byte does not. */
  (void)chorus_put(c, "v", 1, big, CHORUS_MAX_VALUE, NULL, 0, NULL, &r);
  assert_true(r.from_node);
  chorus_result_free(&r);
  assert_int_equal(fake_requests(f), ++sent);
  assert_int_equal(
      chorus_put(c, "v", 1, big, CHORUS_MAX_VALUE + 1, NULL, 0, NULL, &r),
      CHORUS_ETOOBIG);
  assert_string_equal(
      r.errmsg, "value of 1048577 bytes is over the 1048576-byte value limit");
  chorus_result_free(&r);
  assert_int_equal(fake_requests(f), sent);
  /* Members. */
  struct chorus_bytes m[2] = {{(const uint8_t *)"a", 1},
                              {big, CHORUS_MAX_MEMBER}};
  (void)chorus_set_add(c, "s", 1, m, 2, NULL, &r);
  assert_true(r.from_node || r.status == CHORUS_OK);
  chorus_result_free(&r);
  assert_int_equal(fake_requests(f), ++sent);
  m[1].len = CHORUS_MAX_MEMBER + 1;
  assert_int_equal(chorus_set_add(c, "s", 1, m, 2, NULL, &r), CHORUS_ETOOBIG);
  assert_string_equal(
      r.errmsg, "member 1 of 65537 bytes is over the 65536-byte member limit");
  chorus_result_free(&r);
  assert_int_equal(chorus_set_remove(c, "s", 1, m, 2, NULL, 0, NULL, &r),
                   CHORUS_ETOOBIG);
  chorus_result_free(&r);
  assert_int_equal(fake_requests(f), sent);
  chorus_free(big);
  chorus_client_close(c);
  fake_stop(f);
}

/* ------------------------------------------------------------------------
 * Errors from the node
 * ------------------------------------------------------------------------ */

static void test_error_mapping(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_result r;
  static const int codes[] = {CHORUS_EUNAVAILABLE, CHORUS_EINVAL,
                              CHORUS_EOVERLOAD, CHORUS_ESIBLINGS, -99};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    fake_set_mode(f, FAKE_ERROR, codes[i]);
    assert_int_equal(chorus_put(c, "k", 1, "v", 1, NULL, 0, NULL, &r),
                     codes[i]);
    assert_false(r.maybe_applied);
    assert_non_null(strstr(r.errmsg, "fake error"));
    chorus_result_free(&r);
  }
  /* A quorum timeout on a write: it may have been applied; on a read, no. */
  fake_set_mode(f, FAKE_ERROR, CHORUS_ETIMEDOUT);
  assert_int_equal(chorus_put(c, "k", 1, "v", 1, NULL, 0, NULL, &r),
                   CHORUS_ETIMEDOUT);
  assert_true(r.maybe_applied);
  chorus_result_free(&r);
  assert_int_equal(chorus_counter_add(c, "n", 1, 1, NULL, &r),
                   CHORUS_ETIMEDOUT);
  assert_true(r.maybe_applied);
  chorus_result_free(&r);
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_ETIMEDOUT);
  assert_false(r.maybe_applied);
  chorus_result_free(&r);
  /* The connection survived every error reply. */
  assert_int_equal(fake_connections(f), 1);
  chorus_client_close(c);
  fake_stop(f);
}

static void test_handshake_refused(void **state) {
  struct fake_server *f = fake_start("other-cluster");
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_result r;
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_ECLUSTER);
  assert_non_null(strstr(r.errmsg, "handshake"));
  assert_non_null(strstr(r.errmsg, "other-cluster"));
  chorus_result_free(&r);
  assert_int_equal(fake_requests(f), 0);
  /* A write is never sent before WELCOME, so never "maybe applied". */
  assert_int_equal(chorus_put(c, "k", 1, "v", 1, NULL, 0, NULL, &r),
                   CHORUS_ECLUSTER);
  assert_false(r.maybe_applied);
  chorus_result_free(&r);
  chorus_client_close(c);
  fake_stop(f);
}

/* An older node refuses HELLO in version 5, 4, 3, then 2: the client asks
 * again at once a version lower each time, and gets version 1's replies (no
 * warnings). */
static void test_older_node_speaks_version_1(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  fake_set_mode(f, FAKE_VERSION_1, 0);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_result r;
  for (int i = 0; i < 2; i++) {
    assert_int_equal(chorus_put(c, "k", 1, "v", 1, NULL, 0, NULL, &r),
                     CHORUS_OK);
    assert_int_equal(r.context.len, 8);
    chorus_result_free(&r);
  }
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_OK);
  assert_int_equal(r.nvalues, 2);
  assert_int_equal(r.siblings, 0);
  assert_int_equal(r.object_flags, 0);
  chorus_result_free(&r);
  assert_int_equal(fake_connections(f), 5); /* version 5, 4, 3, 2, then 1 */
  chorus_client_close(c);
  fake_stop(f);
}

/* A client with a datacenter (protocol 4) and a node of an older release:
 * its requests are refused by the library with CHORUS_EVERSION (the node
 * would close the connection on the 8th option), the ring and status still
 * served; without a datacenter the same node serves them. */
static void test_datacenter_needs_protocol_4(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  fake_set_mode(f, FAKE_VERSION_1, 0);
  struct chorus_config cfg = cfg_fast();
  cfg.dc = "dc2";
  struct chorus_client *c = NULL;
  assert_int_equal(chorus_client_open(fake_addr(f), &cfg, &c, NULL), CHORUS_OK);
  struct chorus_result r;
  assert_int_equal(chorus_put(c, "k", 1, "v", 1, NULL, 0, NULL, &r),
                   CHORUS_EVERSION);
  assert_false(r.maybe_applied);
  assert_non_null(strstr(r.errmsg, "needs 4"));
  chorus_result_free(&r);
  assert_int_equal(chorus_status(c, &r), CHORUS_OK);
  chorus_result_free(&r);
  chorus_client_close(c);
  /* A datacenter name out of bounds is the caller's error. */
  cfg.dc = "";
  assert_int_equal(chorus_client_open(fake_addr(f), &cfg, &c, NULL),
                   CHORUS_EINVAL);
  fake_stop(f);
}

/* ------------------------------------------------------------------------
 * Failover
 * ------------------------------------------------------------------------ */

static void test_failover_dead_seed(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  struct chorus_client *c = open_sync(seeds2(dead_addr(), fake_addr(f)));
  struct chorus_result r;
  /* The write was never sent to the dead seed, so it is retried. */
  assert_int_equal(chorus_put(c, "k", 1, "v", 1, NULL, 0, NULL, &r), CHORUS_OK);
  assert_string_equal(r.server, fake_addr(f));
  chorus_result_free(&r);
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_OK);
  assert_int_equal(r.nvalues, 1);
  chorus_result_free(&r);
  chorus_client_close(c);
  fake_stop(f);
}

static void test_all_seeds_dead(void **state) {
  char seeds[96];
  snprintf(seeds, sizeof seeds, "127.0.0.1:%u,127.0.0.1:%u", fake_dead_port(),
           fake_dead_port());
  struct chorus_client *c = open_sync(seeds);
  struct chorus_result r;
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_EUNAVAILABLE);
  assert_non_null(strstr(r.errmsg, "no seed reachable"));
  chorus_result_free(&r);
  assert_int_equal(chorus_put(c, "k", 1, "v", 1, NULL, 0, NULL, &r),
                   CHORUS_EUNAVAILABLE);
  assert_false(r.maybe_applied);
  chorus_result_free(&r);
  /* Status and ring too. */
  assert_int_equal(chorus_status(c, &r), CHORUS_EUNAVAILABLE);
  chorus_result_free(&r);
  chorus_client_close(c);
}

struct trace_log {
  char text[4096];
};

static void trace_sink(void *ctx, const char *line) {
  struct trace_log *t = ctx;
  size_t n = strlen(t->text);
  snprintf(t->text + n, sizeof t->text - n, "%s\n", line);
}

static void test_read_retried_write_not(void **state) {
  struct fake_server *a = fake_start(CLUSTER);
  struct fake_server *b = fake_start(CLUSTER);
  fake_set_mode(a, FAKE_CLOSE_ON_REQ, 0);
  struct chorus_config cfg = cfg_fast();
  struct trace_log tl = {""};
  cfg.trace = trace_sink;
  cfg.trace_ctx = &tl;
  struct chorus_client *c = NULL;
  assert_int_equal(
      chorus_client_open(seeds2(fake_addr(a), fake_addr(b)), &cfg, &c, NULL),
      CHORUS_OK);
  struct chorus_result r;
  /* The read reached a, which dropped it; it is retried on b. */
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_OK);
  assert_string_equal(r.server, fake_addr(b));
  chorus_result_free(&r);
  assert_int_equal(fake_requests(a), 1);
  assert_int_equal(fake_requests(b), 1);

  /* Now b drops requests and a is healthy: the client is on b. A sent
   * write is reported as maybe applied and NOT resent to a. */
  fake_set_mode(a, FAKE_NORMAL, 0);
  fake_set_mode(b, FAKE_CLOSE_ON_REQ, 0);
  assert_int_equal(chorus_put(c, "k", 1, "v", 1, NULL, 0, NULL, &r),
                   CHORUS_ECLOSED);
  assert_true(r.maybe_applied);
  assert_non_null(strstr(r.errmsg, "may have been applied"));
  chorus_result_free(&r);
  assert_int_equal(fake_requests(a), 1);
  assert_int_equal(fake_requests(b), 2);
  /* The next request goes to a. */
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_OK);
  assert_string_equal(r.server, fake_addr(a));
  assert_int_equal(r.nvalues, 0); /* the write never reached a */
  chorus_result_free(&r);
  chorus_client_close(c);
  /* The decisions left their lines. */
  assert_non_null(strstr(tl.text, "1 read(s) retried, 0 write(s) failed"));
  assert_non_null(strstr(tl.text, "0 read(s) retried, 1 write(s) failed"));
  assert_non_null(strstr(tl.text, "connected to"));
  fake_stop(a);
  fake_stop(b);
}

static void test_timeouts(void **state) {
  struct fake_server *a = fake_start(CLUSTER);
  struct fake_server *b = fake_start(CLUSTER);
  fake_set_mode(a, FAKE_HANG, 0);
  struct chorus_client *c = open_sync(seeds2(fake_addr(a), fake_addr(b)));
  struct chorus_result r;
  /* a swallows the read; past timeout + grace the client fails over. */
  struct chorus_opts o = {.timeout_ms = 100};
  uint64_t t0 = uv_hrtime();
  assert_int_equal(chorus_get(c, "k", 1, &o, &r), CHORUS_OK);
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  assert_string_equal(r.server, fake_addr(b));
  chorus_result_free(&r);
  assert_true(ms >= 250 && ms < 5000);
  /* A write to a hanging node times out, maybe applied. */
  fake_set_mode(b, FAKE_HANG, 0);
  assert_int_equal(chorus_put(c, "k", 1, "v", 1, NULL, 0, &o, &r),
                   CHORUS_ETIMEDOUT);
  assert_true(r.maybe_applied);
  chorus_result_free(&r);
  /* Both hang: a read is tried once per seed, then fails. */
  assert_int_equal(chorus_get(c, "k", 1, &o, &r), CHORUS_EUNAVAILABLE);
  assert_non_null(strstr(r.errmsg, "no reply"));
  chorus_result_free(&r);
  chorus_client_close(c);
  fake_stop(a);
  fake_stop(b);
}

static void test_silent_handshake(void **state) {
  struct fake_server *a = fake_start(CLUSTER);
  struct fake_server *b = fake_start(CLUSTER);
  fake_set_mode(a, FAKE_SILENT_HELLO, 0);
  struct chorus_client *c = open_sync(seeds2(fake_addr(a), fake_addr(b)));
  struct chorus_result r;
  assert_int_equal(chorus_put(c, "k", 1, "v", 1, NULL, 0, NULL, &r), CHORUS_OK);
  assert_string_equal(r.server, fake_addr(b));
  chorus_result_free(&r);
  assert_int_equal(fake_requests(a), 0);
  chorus_client_close(c);
  fake_stop(a);
  fake_stop(b);
}

static void test_garbage_reply(void **state) {
  struct fake_server *a = fake_start(CLUSTER);
  struct fake_server *b = fake_start(CLUSTER);
  fake_set_mode(a, FAKE_GARBAGE, 0);
  struct chorus_client *c = open_sync(seeds2(fake_addr(a), fake_addr(b)));
  struct chorus_result r;
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_OK);
  assert_string_equal(r.server, fake_addr(b));
  chorus_result_free(&r);
  chorus_client_close(c);
  /* Alone, the garbage node makes the read fail with the reason. */
  c = open_sync(fake_addr(a));
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_EUNAVAILABLE);
  assert_non_null(strstr(r.errmsg, "bad frame"));
  chorus_result_free(&r);
  chorus_client_close(c);
  fake_stop(a);
  fake_stop(b);
}

/* ------------------------------------------------------------------------
 * Ring and status
 * ------------------------------------------------------------------------ */

/* REPAIR_RANGES_REPLY's records into res->ranges, field by field; a
 * ranges field that is not whole records is refused. */
static void test_repair_ranges_records(void **state) {
  (void)state;
  struct wire_repair_range in[2] = {
      {UINT64_MAX - 5, 9, 1796643192561, 2500, 3, 4, 5, 6, 7, 8,
       WIRE_RANGE_REPAIRED},
      {10, UINT64_MAX - 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}};
  uint8_t buf[2 * WIRE_REPAIR_RANGE_BYTES];
  for (int i = 0; i < 2; i++)
    wire_repair_range_put(buf + i * WIRE_REPAIR_RANGE_BYTES, &in[i]);
  struct wire_stat st = {{(const uint8_t *)"aae.ranges", 10}, 2};
  struct wire_msg m = {.type = WIRE_REPAIR_RANGES_REPLY, .request_id = 1};
  m.repair_ranges_reply.status =
      (struct wire_status_reply){7, {(const uint8_t *)"n7", 2}, 1, &st};
  m.repair_ranges_reply.ranges = (struct wire_bytes){buf, sizeof buf};
  struct chorus_result res;
  memset(&res, 0, sizeof res);
  assert_int_equal(chorus__result_from_reply(&res, WIRE_REPAIR_RANGES, &m),
                   CHORUS_OK);
  assert_int_equal(res.node_id, 7);
  assert_string_equal(res.node_name, "n7");
  assert_int_equal(res.nstats, 1);
  assert_string_equal(res.stats[0].name, "aae.ranges");
  assert_int_equal(res.nranges, 2);
  const struct chorus_repair_range *g = res.ranges;
  assert_true(g[0].first == UINT64_MAX - 5 && g[0].last == 9);
  assert_true(g[0].last_completed_ms == 1796643192561 && g[0].age_ms == 2500);
  assert_true(g[0].exchanges == 3 && g[0].segments_differing == 4 &&
              g[0].keys_differing == 5 && g[0].keys_repaired == 6 &&
              g[0].bytes_sent == 7 && g[0].bytes_received == 8);
  assert_true(g[0].repaired);
  assert_false(g[1].repaired); /* an unknown flag bit is ignored */
  assert_true(g[1].first == 10 && g[1].last == UINT64_MAX - 6);
  chorus_result_free(&res);
  m.repair_ranges_reply.ranges.len = WIRE_REPAIR_RANGE_BYTES + 1;
  assert_int_equal(chorus__result_from_reply(&res, WIRE_REPAIR_RANGES, &m),
                   CHORUS_EMALFORMED);
  assert_non_null(strstr(res.errmsg, "not a multiple of 88"));
  chorus_result_free(&res);
  /* The reply of another request is not taken for this one. */
  m.repair_ranges_reply.ranges.len = 0;
  assert_int_equal(chorus__result_from_reply(&res, WIRE_REPAIR_STATUS, &m),
                   CHORUS_EMALFORMED);
  chorus_result_free(&res);
}

/* USER_REPLY's records into res->users; a record that overruns, trails
 * bytes, names no one or holds an unknown role is refused. */
static void test_user_records(void **state) {
  (void)state;
  static const uint8_t ann[] = {3, 'a', 'n', 'n', 2,   1,   0,
                                2, 5,   'u', 'k', 'e', 'y', 's'};
  static const uint8_t bob[] = {3, 'b', 'o', 'b', 0};
  struct wire_bytes items[2] = {{ann, sizeof ann}, {bob, sizeof bob}};
  struct wire_msg m = {.type = WIRE_USER_REPLY, .request_id = 1};
  m.user_reply.applied = 42;
  m.user_reply.entries = (struct wire_bytes_list){2, items};
  struct chorus_result res;
  memset(&res, 0, sizeof res);
  assert_int_equal(chorus__result_from_reply(&res, WIRE_USER, &m), CHORUS_OK);
  assert_int_equal(res.users->applied, 42);
  assert_int_equal(res.users->n, 2);
  const struct chorus_user *u = &res.users->users[0];
  assert_string_equal(u->name, "ann");
  assert_int_equal(u->ngrants, 2);
  assert_int_equal(u->grants[0].role, CHORUS_ROLE_READ);
  assert_string_equal(u->grants[0].keyspace, "");
  assert_int_equal(u->grants[1].role, CHORUS_ROLE_WRITE);
  assert_string_equal(u->grants[1].keyspace, "ukeys");
  assert_int_equal(res.users->users[1].ngrants, 0);
  chorus_result_free(&res);
  static const uint8_t bad[][6] = {
      {3, 'a', 'n', 'n', 1, 4}, /* a grant cut short */
      {9, 'a', 'n', 'n', 0, 0}, /* a name past the record */
      {0, 0, 0, 0, 0, 0},       /* no name */
      {1, 'a', 1, 4, 0, 0},     /* role 4 */
      {1, 'a', 0, 0, 0, 0},     /* trailing bytes */
  };
  static const size_t lens[] = {6, 6, 2, 5, 4};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    struct wire_bytes one = {bad[i], lens[i]};
    m.user_reply.entries = (struct wire_bytes_list){1, &one};
    assert_int_equal(chorus__result_from_reply(&res, WIRE_USER, &m),
                     CHORUS_EMALFORMED);
    assert_non_null(strstr(res.errmsg, "user record 0"));
    chorus_result_free(&res);
  }
  assert_string_equal(chorus_role_name(CHORUS_ROLE_ADMIN), "admin");
  assert_int_equal(chorus_role_parse("write"), CHORUS_ROLE_WRITE);
  assert_int_equal(chorus_role_parse("root"), -1);
}

/* CLUSTER_KEY_REPLY into a chorus_keyring: records of exactly 13 bytes,
 * ids ascending, one primary at most; anything else is refused. */
static void test_keyring_records(void **state) {
  (void)state;
  static const uint8_t boot[13] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  static const uint8_t k1[13] = {0x1a, 0x2b, 0x3c, 0x4d, 0, 0, 0,
                                 0,    0,    0,    0,    1, 1};
  struct wire_bytes items[2] = {{boot, 13}, {k1, 13}};
  struct wire_msg m = {.type = WIRE_CLUSTER_KEY_REPLY, .request_id = 1};
  m.cluster_key_reply.applied = 42;
  m.cluster_key_reply.version = 2;
  m.cluster_key_reply.id = 0x1a2b3c4d;
  m.cluster_key_reply.entries = (struct wire_bytes_list){2, items};
  m.cluster_key_reply.behind = (struct wire_bytes){(const uint8_t *)"n3", 2};
  struct chorus_result res;
  memset(&res, 0, sizeof res);
  assert_int_equal(chorus__result_from_reply(&res, WIRE_CLUSTER_KEY, &m),
                   CHORUS_OK);
  const struct chorus_keyring *k = res.keyring;
  assert_int_equal(k->applied, 42);
  assert_int_equal(k->version, 2);
  assert_int_equal(k->id, 0x1a2b3c4d);
  assert_int_equal(k->n, 2);
  assert_int_equal(k->keys[0].id, 0);
  assert_false(k->keys[0].primary);
  assert_int_equal(k->keys[1].id, 0x1a2b3c4d);
  assert_int_equal(k->keys[1].since, 1);
  assert_true(k->keys[1].primary);
  assert_string_equal(k->behind, "n3");
  chorus_result_free(&res);
  /* Out of order, a short record, a primary flag of 2. */
  struct wire_bytes swapped[2] = {{k1, 13}, {boot, 13}};
  uint8_t two[13];
  memcpy(two, k1, 13);
  two[12] = 2;
  struct wire_bytes bad[][2] = {
      {swapped[0], swapped[1]}, {{k1, 12}, {boot, 13}}, {{two, 13}, {boot, 0}}};
  const size_t n[] = {2, 1, 1};
  for (size_t i = 0; i < 3; i++) {
    m.cluster_key_reply.entries = (struct wire_bytes_list){n[i], bad[i]};
    assert_int_equal(chorus__result_from_reply(&res, WIRE_CLUSTER_KEY, &m),
                     CHORUS_EMALFORMED);
    assert_null(res.keyring);
    chorus_result_free(&res);
  }
}

static void test_ring_status(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_result r;
  assert_int_equal(chorus_ring(c, &r), CHORUS_OK);
  assert_int_equal(r.epoch, 7);
  assert_int_equal(r.vnodes, 64);
  assert_string_equal(r.replication, "3");
  assert_int_equal(r.node_id, 0x1111111111111111ull);
  assert_int_equal(r.nnodes, 3);
  double sum = 0;
  for (size_t i = 0; i < r.nnodes; i++) {
    const struct chorus_node_info *n = &r.nodes[i];
    assert_true(n->in_ring);
    assert_true(n->share > 0.05 && n->share < 0.9);
    sum += n->share;
    assert_string_equal(n->dc, "dc1");
    assert_string_equal(n->rack, "r1");
    assert_int_equal(n->member_state, (int)i); /* alive, suspect, dead */
    assert_int_equal(n->incarnation, 10 + (int)i);
    assert_int_equal(n->has_offset, i == 1);
    if (i == 1)
      assert_int_equal(n->offset_ms, -3);
    assert_int_equal(n->hints, i == 2 ? 42 : 0);
  }
  assert_true(sum > 0.999 && sum < 1.001);
  assert_string_equal(r.nodes[0].addr, "127.0.0.1:7401");
  assert_int_equal(r.nodes[2].ring_state, CHORUS_RING_DOWN);
  /* Version 3: the names of the nodes and of the one that answered. */
  assert_string_equal(r.node_name, "n1");
  assert_string_equal(r.nodes[1].name, "n2");
  assert_int_equal(r.nstats, 12);
  assert_string_equal(r.stats[11].name, "requests.get");
  assert_int_equal(r.stats[11].value, 12);
  chorus_result_free(&r);
  assert_string_equal(chorus_member_state_name(CHORUS_MEMBER_SUSPECT),
                      "suspect");
  assert_string_equal(chorus_member_state_name(99), "unknown");
  assert_string_equal(chorus_ring_state_name(CHORUS_RING_LEAVING), "leaving");
  chorus_client_close(c);
  fake_stop(f);
}

/* An older node: the same ring and status, without names. */
static void test_ring_status_older_node(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  fake_set_mode(f, FAKE_VERSION_1, 0);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_result r;
  assert_int_equal(chorus_status(c, &r), CHORUS_OK);
  assert_int_equal(r.nnodes, 3);
  assert_string_equal(r.node_name, "");
  for (size_t i = 0; i < r.nnodes; i++)
    assert_string_equal(r.nodes[i].name, "");
  assert_string_equal(r.nodes[2].addr, "127.0.0.1:7403");
  chorus_result_free(&r);
  chorus_client_close(c);
  fake_stop(f);
}

/* ------------------------------------------------------------------------
 * Cluster metadata
 * ------------------------------------------------------------------------ */

static void test_cluster_status(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_cluster_status *st = NULL;
  assert_int_equal(chorus_cluster_status(c, &st), CHORUS_OK);
  assert_non_null(st);
  assert_string_equal(st->server, fake_addr(f));
  assert_int_equal(st->node_id, 0x1111111111111111ull);
  assert_string_equal(st->node_name, "n1");
  assert_int_equal(st->leader_id, 0x2222222222222222ull);
  assert_string_equal(st->leader_name, "n2");
  assert_int_equal(st->term, 7);
  assert_int_equal(st->commit_index, 120);
  assert_int_equal(st->applied_index, 118);
  assert_int_equal(st->epoch, 12);
  assert_int_equal(st->raft_state, CHORUS_RAFT_FOLLOWER);
  assert_int_equal(st->nmembers, 4);
  const struct chorus_cluster_member *m = &st->members[2];
  assert_int_equal(m->id, 0x3333333333333333ull);
  assert_string_equal(m->name, "n3");
  assert_string_equal(m->addr, "127.0.0.1:7403");
  assert_string_equal(m->dc, "dc2");
  assert_string_equal(m->rack, "r1");
  assert_int_equal(m->state, CHORUS_META_NORMAL);
  assert_int_equal(m->role, CHORUS_ROLE_STANDBY);
  assert_int_equal(m->alive, CHORUS_ALIVE_DEAD);
  assert_int_equal(m->vnodes, 256);
  assert_int_equal(m->share_ppm, 333333);
  assert_string_equal(st->members[3].addr, "");
  assert_string_equal(st->members[3].rack, "");
  uint32_t total = 0;
  for (size_t i = 0; i < st->nmembers; i++)
    total += st->members[i].share_ppm;
  assert_int_equal(total, 1000000);
  chorus_cluster_status_free(st);
  chorus_cluster_status_free(NULL);

  assert_string_equal(chorus_meta_state_name(CHORUS_META_LEAVING), "leaving");
  assert_string_equal(chorus_meta_state_name(0), "?");
  assert_string_equal(chorus_raft_role_name(CHORUS_ROLE_STANDBY), "standby");
  assert_string_equal(chorus_raft_role_name(4), "?");
  assert_string_equal(chorus_alive_name(CHORUS_ALIVE_UNKNOWN), "unknown");
  assert_string_equal(chorus_alive_name(-1), "?");
  assert_string_equal(chorus_raft_state_name(CHORUS_RAFT_CANDIDATE),
                      "candidate");

  /* A refusal: no status, the node's words through chorus_client_errmsg. */
  fake_set_mode(f, FAKE_ERROR, CHORUS_EUNAVAILABLE);
  st = (void *)1;
  assert_int_equal(chorus_cluster_status(c, &st), CHORUS_EUNAVAILABLE);
  assert_null(st);
  assert_non_null(strstr(chorus_client_errmsg(c), fake_addr(f)));
  assert_non_null(strstr(chorus_client_errmsg(c), "fake error"));
  fake_set_mode(f, FAKE_NORMAL, 0);
  chorus_client_close(c);
  fake_stop(f);
}

static void test_cluster_remove(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_cluster_status *st = NULL;
  /* Argument errors: nothing sent. */
  static char longname[129]; /* 128 bytes: one over the limit */
  memset(longname, 'n', sizeof longname - 1);
  assert_int_equal(chorus_cluster_remove(c, "", false, &st), CHORUS_EINVAL);
  assert_null(st);
  assert_non_null(strstr(chorus_client_errmsg(c), "1..127 bytes"));
  assert_int_equal(chorus_cluster_remove(c, NULL, false, &st), CHORUS_EINVAL);
  assert_int_equal(chorus_cluster_remove(c, longname, false, &st),
                   CHORUS_EINVAL);
  assert_int_equal(chorus_cluster_remove(c, "n3", false, NULL), CHORUS_EINVAL);
  assert_int_equal(chorus_cluster_status(c, NULL), CHORUS_EINVAL);
  assert_int_equal(chorus_cluster_status(NULL, &st), CHORUS_EINVAL);
  assert_int_equal(fake_requests(f), 0);

  assert_int_equal(chorus_cluster_remove(c, "n9", false, &st),
                   CHORUS_ENOTFOUND);
  assert_null(st);
  assert_non_null(strstr(chorus_client_errmsg(c), "no member named n9"));
  assert_int_equal(chorus_cluster_remove(c, "n2", false, &st), CHORUS_EBUSY);
  assert_non_null(strstr(chorus_client_errmsg(c), "n2 is alive"));
  /* A dead member goes without force; the answer is the status after. */
  assert_int_equal(chorus_cluster_remove(c, "n3", false, &st), CHORUS_OK);
  assert_int_equal(st->members[2].state, CHORUS_META_REMOVED);
  assert_int_equal(st->members[2].share_ppm, 0);
  assert_int_equal(st->epoch, 13);
  chorus_cluster_status_free(st);
  assert_int_equal(chorus_cluster_remove(c, "n2", true, &st), CHORUS_OK);
  assert_int_equal(st->members[1].state, CHORUS_META_REMOVED);
  assert_int_equal(st->epoch, 14);
  chorus_cluster_status_free(st);

  /* A removal is a write: a connection lost after it was sent fails it
   * (it may have been applied) and it is not resent. */
  int before = fake_requests(f);
  fake_set_mode(f, FAKE_CLOSE_ON_REQ, 0);
  assert_int_equal(chorus_cluster_remove(c, "n4", true, &st), CHORUS_ECLOSED);
  assert_null(st);
  assert_non_null(strstr(chorus_client_errmsg(c), "may have been applied"));
  assert_int_equal(fake_requests(f), before + 1);
  fake_set_mode(f, FAKE_NORMAL, 0);
  chorus_client_close(c);
  fake_stop(f);
}

/* A node older than version 3 does not know the cluster requests. */
static void test_cluster_older_node(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  fake_set_mode(f, FAKE_VERSION_1, 0);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_cluster_status *st = NULL;
  assert_int_equal(chorus_cluster_status(c, &st), CHORUS_ENOTSUP);
  assert_null(st);
  assert_non_null(strstr(chorus_client_errmsg(c),
                         "older than protocol version 3): unknown message "
                         "type 102"));
  assert_int_equal(chorus_cluster_remove(c, "n3", false, &st), CHORUS_ENOTSUP);
  chorus_client_close(c);
  fake_stop(f);
}

struct cluster_async {
  int done;
  struct chorus_cluster_status *kept;
  int status[2];
};

static void cluster_cb(struct chorus_client *c, struct chorus_result *res,
                       void *arg) {
  struct cluster_async *a = arg;
  a->status[a->done++] = res->status;
  if (res->status == CHORUS_OK && a->kept == NULL) {
    a->kept = res->cluster; /* taken: the result no longer frees it */
    res->cluster = NULL;
  }
  if (a->done == 2)
    chorus_client_close(c);
}

static void test_cluster_async(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct chorus_config cfg = cfg_fast();
  struct chorus_client *c = NULL;
  assert_int_equal(
      chorus_client_open_async(&loop, fake_addr(f), &cfg, &c, NULL), CHORUS_OK);
  struct cluster_async a = {0};
  struct chorus_cluster_status *st = NULL;
  assert_int_equal(chorus_cluster_status(c, &st), CHORUS_EINVAL); /* sync */
  assert_int_equal(chorus_cluster_remove_async(c, "", false, cluster_cb, &a),
                   CHORUS_EINVAL);
  assert_int_equal(chorus_cluster_status_async(c, cluster_cb, &a), CHORUS_OK);
  assert_int_equal(chorus_cluster_remove_async(c, "n1", false, cluster_cb, &a),
                   CHORUS_OK);
  assert_int_equal(a.done, 0); /* never from inside the call */
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(a.done, 2);
  assert_int_equal(a.status[0], CHORUS_OK);
  assert_int_equal(a.status[1], CHORUS_EBUSY);
  assert_non_null(a.kept);
  assert_int_equal(a.kept->nmembers, 4);
  assert_string_equal(a.kept->leader_name, "n2");
  chorus_cluster_status_free(a.kept);
  assert_int_equal(uv_loop_close(&loop), 0);
  fake_stop(f);
}

/* ------------------------------------------------------------------------
 * Asynchronous API
 * ------------------------------------------------------------------------ */

struct async_state {
  int done;
  int ok;
  int canceled;
  int order[64];
  struct chorus_client *c;
  bool close_at_end;
  int expect;
};

struct async_req {
  struct async_state *st;
  int index;
};

static void async_cb(struct chorus_client *c, struct chorus_result *res,
                     void *arg) {
  struct async_req *q = arg;
  struct async_state *st = q->st;
  assert_ptr_equal(c, st->c);
  st->order[st->done++] = q->index;
  if (res->status == CHORUS_OK)
    st->ok++;
  else if (res->status == CHORUS_ECANCELED)
    st->canceled++;
  if (st->close_at_end && st->done == st->expect)
    chorus_client_close(c); /* allowed from a callback */
}

static void test_async(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct chorus_config cfg = cfg_fast();
  struct async_state st = {0};
  char seeds[64];
  snprintf(seeds, sizeof seeds, "%s,%s", dead_addr(), fake_addr(f));
  assert_int_equal(chorus_client_open_async(&loop, seeds, &cfg, &st.c, NULL),
                   CHORUS_OK);
  /* Sync calls on an async client are refused. */
  struct chorus_result r;
  assert_int_equal(chorus_get(st.c, "k", 1, NULL, &r), CHORUS_EINVAL);
  chorus_result_free(&r);

  /* 30 pipelined requests of every kind; callbacks never run inside the
   * call, each runs once. */
  struct async_req reqs[30];
  st.expect = 30;
  st.close_at_end = true;
  for (int i = 0; i < 30; i++) {
    reqs[i] = (struct async_req){&st, i};
    char key[8];
    snprintf(key, sizeof key, "k%d", i % 5);
    int rc;
    switch (i % 5) {
    case 0:
      rc = chorus_put_async(st.c, key, strlen(key), "v", 1, NULL, 0, NULL,
                            async_cb, &reqs[i]);
      break;
    case 1:
      rc = chorus_counter_add_async(st.c, key, strlen(key), 2, NULL, async_cb,
                                    &reqs[i]);
      break;
    case 2: {
      struct chorus_bytes m = {(const uint8_t *)"x", 1};
      rc = chorus_set_add_async(st.c, key, strlen(key), &m, 1, NULL, async_cb,
                                &reqs[i]);
      break;
    }
    case 3:
      rc = chorus_status_async(st.c, async_cb, &reqs[i]);
      break;
    default:
      rc = chorus_get_async(st.c, "k0", 2, NULL, async_cb, &reqs[i]);
    }
    assert_int_equal(rc, CHORUS_OK);
  }
  assert_int_equal(st.done, 0);
  uv_run(&loop, UV_RUN_DEFAULT); /* returns once the client has closed */
  assert_int_equal(st.done, 30);
  assert_int_equal(st.ok, 30);
  /* Each callback ran once. */
  int seen[30] = {0};
  for (int i = 0; i < 30; i++)
    seen[st.order[i]]++;
  for (int i = 0; i < 30; i++)
    assert_int_equal(seen[i], 1);
  assert_int_equal(uv_loop_close(&loop), 0);
  fake_stop(f);
}

/* Requests submitted from inside callbacks (while replies are being read)
 * must go out at once: a lost kick would leave them queued until a
 * deadline, here a minute away, and the watchdog would fail the test. */
struct chain {
  struct chorus_client *c;
  int done, submitted;
  uv_timer_t watchdog;
};

static void chain_cb(struct chorus_client *c, struct chorus_result *res,
                     void *arg) {
  struct chain *ch = arg;
  assert_int_equal(res->status, CHORUS_OK);
  if (++ch->done == 200) {
    uv_timer_stop(&ch->watchdog);
    uv_close((uv_handle_t *)&ch->watchdog, NULL);
    chorus_client_close(c);
    return;
  }
  /* Two per completion early on, so the pipeline widens. */
  for (int i = 0; i < (ch->done < 50 ? 2 : 1) && ch->submitted < 200; i++) {
    assert_int_equal(chorus_get_async(c, "k", 1, NULL, chain_cb, ch),
                     CHORUS_OK);
    ch->submitted++;
  }
}

static void on_watchdog(uv_timer_t *t) {
  fail_msg("chained requests stalled");
}

static void test_async_chain(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct chorus_config cfg = cfg_fast();
  cfg.default_timeout_ms = 60000;
  struct chain ch = {0};
  assert_int_equal(
      chorus_client_open_async(&loop, fake_addr(f), &cfg, &ch.c, NULL),
      CHORUS_OK);
  uv_timer_init(&loop, &ch.watchdog);
  uv_timer_start(&ch.watchdog, on_watchdog, 20000, 0);
  assert_int_equal(chorus_get_async(ch.c, "k", 1, NULL, chain_cb, &ch),
                   CHORUS_OK);
  ch.submitted = 1;
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(ch.done, 200);
  assert_int_equal(uv_loop_close(&loop), 0);
  fake_stop(f);
}

static void test_async_close_cancels(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  fake_set_mode(f, FAKE_HANG, 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct chorus_config cfg = cfg_fast();
  cfg.default_timeout_ms = 60000; /* nothing may end by timing out */
  struct async_state st = {0};
  assert_int_equal(
      chorus_client_open_async(&loop, fake_addr(f), &cfg, &st.c, NULL),
      CHORUS_OK);
  struct async_req reqs[4];
  for (int i = 0; i < 4; i++) {
    reqs[i] = (struct async_req){&st, i};
    assert_int_equal(chorus_get_async(st.c, "k", 1, NULL, async_cb, &reqs[i]),
                     CHORUS_OK);
  }
  /* Run until the requests are on the wire, then close. */
  while (fake_requests(f) < 4)
    uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(st.done, 0);
  chorus_client_close(st.c);
  assert_int_equal(st.done, 4);
  assert_int_equal(st.canceled, 4);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  fake_stop(f);
}

static void test_oom_submit(void **state) {
  struct fake_server *f = fake_start(CLUSTER);
  struct chorus_client *c = open_sync(fake_addr(f));
  struct chorus_result r;
  /* Warm up the connection so the walk covers submit and result only. */
  assert_int_equal(chorus_put(c, "k", 1, "v", 1, NULL, 0, NULL, &r), CHORUS_OK);
  chorus_result_free(&r);
  for (long k = 0; k < 20; k++) {
    chorus_alloc_fail_after(k);
    int rc = chorus_get(c, "k", 1, NULL, &r);
    chorus_alloc_fail_after(-1);
    if (rc == CHORUS_OK) {
      assert_int_equal(r.nvalues, 1);
      chorus_result_free(&r);
      break;
    }
    if (rc != CHORUS_ENOMEM)
      fail_msg("k=%ld: %s: %s", k, chorus_errname(rc), r.errmsg);
    chorus_result_free(&r);
  }
  /* Still usable. */
  assert_int_equal(chorus_get(c, "k", 1, NULL, &r), CHORUS_OK);
  chorus_result_free(&r);
  chorus_client_close(c);
  fake_stop(f);
}

/* ------------------------------------------------------------------------
 * Token-aware routing
 * ------------------------------------------------------------------------ */

static void test_token_routing(void **state) {
  struct fake_server *seed = fake_start(CLUSTER);
  struct fake_server *n[3];
  for (int i = 0; i < 3; i++)
    n[i] = fake_start(CLUSTER);
  const char *const addrs[3] = {fake_addr(n[0]), fake_addr(n[1]),
                                fake_addr(n[2])};
  fake_set_ring(seed, addrs);
  struct chorus_config cfg = cfg_fast();
  cfg.token_aware = true;
  struct chorus_client *c = NULL;
  assert_int_equal(chorus_client_open(fake_addr(seed), &cfg, &c, NULL),
                   CHORUS_OK);
  struct chorus_result r;
  /* Before the ring is known, requests use the seed. */
  assert_int_equal(chorus_put(c, "warm", 4, "v", 1, NULL, 0, NULL, &r),
                   CHORUS_OK);
  assert_string_equal(r.server, fake_addr(seed));
  chorus_result_free(&r);
  /* That put started the ring fetch; a status query queued behind it on
   * the same connection completes after it. */
  assert_int_equal(chorus_status(c, &r), CHORUS_OK);
  chorus_result_free(&r);
  int seed_before = 0;
  for (int i = 0; i < 40; i++) {
    char key[16];
    snprintf(key, sizeof key, "key-%d", i);
    if (i == 5)
      seed_before = fake_requests(seed);
    assert_int_equal(
        chorus_put(c, key, strlen(key), key, strlen(key), NULL, 0, NULL, &r),
        CHORUS_OK);
    chorus_result_free(&r);
    assert_int_equal(chorus_get(c, key, strlen(key), NULL, &r), CHORUS_OK);
    /* The put and the get of a key meet at the same replica. */
    assert_int_equal(r.nvalues, 1);
    chorus_result_free(&r);
  }
  /* Node 3 is dead in the seed's status: never chosen. Nodes 1 and 2 took
   * the keys, each its share; the seed saw almost nothing after warm-up. */
  assert_int_equal(fake_requests(n[2]), 0);
  if (fake_requests(n[0]) <= 10 || fake_requests(n[1]) <= 10)
    fail_msg("n1 %d n2 %d n3 %d seed %d", fake_requests(n[0]),
             fake_requests(n[1]), fake_requests(n[2]), fake_requests(seed));
  assert_int_equal(fake_requests(seed), seed_before);
  /* Node 1 goes away: its keys fall back to the seed, nothing fails. */
  int n1_before = fake_requests(n[0]);
  fake_stop(n[0]);
  for (int i = 0; i < 40; i++) {
    char key[16];
    snprintf(key, sizeof key, "key-%d", i);
    assert_int_equal(chorus_get(c, key, strlen(key), NULL, &r), CHORUS_OK);
    chorus_result_free(&r);
    snprintf(key, sizeof key, "new-%d", i);
    if (chorus_put(c, key, strlen(key), "v", 1, NULL, 0, NULL, &r) != CHORUS_OK)
      fail_msg("put %s: %s", key, r.errmsg);
    chorus_result_free(&r);
  }
  assert_true(fake_requests(seed) > seed_before);
  assert_true(n1_before > 0);
  /* Async clients route too; closing cancels what the children hold. */
  chorus_client_close(c);
  fake_stop(seed);
  fake_stop(n[1]);
  fake_stop(n[2]);
}

static void test_token_routing_async_close(void **state) {
  struct fake_server *seed = fake_start(CLUSTER);
  struct fake_server *n = fake_start(CLUSTER);
  fake_set_mode(n, FAKE_HANG, 0);
  const char *const addrs[3] = {fake_addr(n), fake_addr(n), fake_addr(n)};
  fake_set_ring(seed, addrs);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct chorus_config cfg = cfg_fast();
  cfg.token_aware = true;
  cfg.default_timeout_ms = 60000;
  struct async_state st = {0};
  assert_int_equal(
      chorus_client_open_async(&loop, fake_addr(seed), &cfg, &st.c, NULL),
      CHORUS_OK);
  struct async_req warm = {&st, 0};
  assert_int_equal(chorus_status_async(st.c, async_cb, &warm), CHORUS_OK);
  while (st.done < 1)
    uv_run(&loop, UV_RUN_ONCE);
  /* Routed to the hanging node (or, before the ring, to the seed). */
  struct async_req reqs[8];
  for (int i = 0; i < 8; i++) {
    reqs[i] = (struct async_req){&st, i + 1};
    char key[8];
    snprintf(key, sizeof key, "k%d", i);
    assert_int_equal(
        chorus_get_async(st.c, key, strlen(key), NULL, async_cb, &reqs[i]),
        CHORUS_OK);
  }
  uint64_t end = uv_hrtime() + 5000000000ull;
  while (st.done < 9 && fake_requests(n) < 8 && uv_hrtime() < end)
    uv_run(&loop, UV_RUN_NOWAIT);
  chorus_client_close(st.c);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(st.done, 9);
  assert_int_equal(st.ok + st.canceled, 9);
  assert_int_equal(uv_loop_close(&loop), 0);
  fake_stop(seed);
  fake_stop(n);
}

/* The router's choice among a key's natural replicas (ring order): the
 * client's datacenter first, in ring order; while any is unmeasured, ring
 * order; then the nearest by smoothed round trip, ring order among those
 * within max(1 ms, 20 %) of it. */
static void test_route_choose(void **state) {
  (void)state;
  struct chorus__cand c[4];
  /* The client's datacenter wins over a nearer replica elsewhere, and in
   * ring order, not by round trip. */
  c[0] = (struct chorus__cand){true, false, 300};
  c[1] = (struct chorus__cand){true, true, 900};
  c[2] = (struct chorus__cand){true, true, 400};
  assert_int_equal(chorus__route_choose(c, 3), 1);
  c[1].usable = false; /* down: the next of the datacenter */
  assert_int_equal(chorus__route_choose(c, 3), 2);
  c[2].usable = false; /* none left there: the nearest of the others */
  assert_int_equal(chorus__route_choose(c, 3), 0);
  /* No datacenter: by round trip. 50 ms away first in ring order, 0.3 ms
   * second: the second. */
  c[0] = (struct chorus__cand){true, false, 50000};
  c[1] = (struct chorus__cand){true, false, 300};
  c[2] = (struct chorus__cand){true, false, 80000};
  assert_int_equal(chorus__route_choose(c, 3), 1);
  /* One not measured yet: ring order until it is. */
  c[2].srtt_us = 0;
  assert_int_equal(chorus__route_choose(c, 3), 0);
  c[0].usable = false;
  assert_int_equal(chorus__route_choose(c, 3), 1);
  c[0].usable = true;
  c[2].usable = false; /* the unmeasured one down: by round trip again */
  assert_int_equal(chorus__route_choose(c, 3), 1);
  /* Within the tolerance ring order holds: 0.9 ms vs 0.3 ms (1 ms slack),
   * 57 ms vs 50 ms (20 %); 61 ms vs 50 ms is farther. */
  c[0].srtt_us = 900;
  assert_int_equal(chorus__route_choose(c, 2), 0);
  c[0].srtt_us = 57000;
  c[1].srtt_us = 50000;
  assert_int_equal(chorus__route_choose(c, 2), 0);
  c[0].srtt_us = 61000;
  assert_int_equal(chorus__route_choose(c, 2), 1);
  /* Nothing usable. */
  c[0].usable = c[1].usable = false;
  assert_int_equal(chorus__route_choose(c, 2), -1);
  assert_int_equal(chorus__route_choose(c, 0), -1);
}

/* Maps without a node: the operations' checks before sending, and a
 * MAP_REPLY's map through chorus_map_walk and chorus_map_json (nested
 * maps, every field type, bytes that are not UTF-8, a buffer too small,
 * bytes that are no map). */
static int count_visits(void *arg, const struct chorus_map_field *f) {
  (void)f;
  ++*(int *)arg;
  return 0;
}

static void test_maps_offline(void **state) {
  (void)state;
  char err[CHORUS_ERRMSG_SIZE];
  uint8_t *buf;
  size_t len;
  static const uint8_t odd[] = {'a', 0xff, '"'};
  struct chorus_map_op ops[] = {
      {.kind = CHORUS_MAP_OP_COUNTER_ADD, .path = "n", .amount = -2},
      {.kind = CHORUS_MAP_OP_SET_ADD, .path = "a.tags", .data = odd, .len = 3},
      {.kind = CHORUS_MAP_OP_REGISTER_SET,
       .path = "a.b.name",
       .data = "v",
       .len = 1},
      {.kind = CHORUS_MAP_OP_FLAG_ENABLE, .path = "on"}};
  assert_int_equal(chorus__map_ops_encode(ops, 4, &buf, &len, err), CHORUS_OK);
  /* Applied as a node would, then read back as a MAP_REPLY's map. */
  struct crdt_map_op *dec;
  uint32_t n;
  assert_int_equal(crdt_map_ops_decode(&dec, &n, buf, len, NULL), CHORUS_OK);
  struct crdt_map m;
  crdt_map_init(&m);
  assert_int_equal(crdt_map_update(&m, 7, 1, NULL, dec, n, err), CHORUS_OK);
  chorus_free(dec);
  chorus_free(buf);
  uint8_t enc[512];
  size_t elen;
  assert_int_equal(crdt_map_encode(&m, enc, sizeof enc, &elen), CHORUS_OK);
  crdt_map_free(&m);
  struct chorus_bytes one = {enc, elen};
  struct chorus_result res;
  memset(&res, 0, sizeof res);
  res.nvalues = 1;
  res.values = &one;
  int visits = 0;
  assert_int_equal(chorus_map_walk(&res, count_visits, &visits), CHORUS_OK);
  assert_int_equal(visits, 6); /* a, a.b, a.b.name, a.tags, n, on */
  char js[256];
  size_t need = 0;
  assert_int_equal(chorus_map_json(&res, js, sizeof js, &need), CHORUS_OK);
  assert_string_equal(js, "{\"a:map\":{\"b:map\":{\"name:register\":\"v\"},"
                          "\"tags:set\":[\"a\\u00ff\\u0022\"]},"
                          "\"n:counter\":-2,\"on:flag\":true}");
  assert_int_equal(need, strlen(js));
  assert_int_equal(chorus_map_json(&res, js, 10, &need), CHORUS_ETOOBIG);
  assert_int_equal(strlen(js), 9);
  /* Bytes that are no map. */
  one.len = 3;
  assert_int_equal(chorus_map_walk(&res, count_visits, &visits),
                   CHORUS_EMALFORMED);
  res.nvalues = 0;
  assert_int_equal(chorus_map_json(&res, js, sizeof js, NULL), CHORUS_EINVAL);
  /* Refused before sending, with the crdt code's words. */
  static const struct {
    struct chorus_map_op op;
    int code;
    const char *want;
  } bad[] = {
      {{.kind = CHORUS_MAP_OP_COUNTER_ADD, .path = "n"},
       CHORUS_EINVAL,
       "amount 0"},
      {{.kind = CHORUS_MAP_OP_REMOVE, .path = "n"},
       CHORUS_EINVAL,
       "needs the field's type"},
      {{.kind = CHORUS_MAP_OP_FLAG_ENABLE, .path = "a..b"},
       CHORUS_EINVAL,
       "1 to 255 bytes"},
      {{.kind = CHORUS_MAP_OP_FLAG_ENABLE, .path = "a.b.c.d.e"},
       CHORUS_EINVAL,
       "more than 4 steps"},
      {{.kind = CHORUS_MAP_OP_FLAG_ENABLE, .path = "a", .type = CHORUS_MAP_SET},
       CHORUS_EINVAL,
       "the operation needs a flag"},
      {{.kind = CHORUS_MAP_OP_SET_ADD,
        .path = "s",
        .data = "x",
        .len = CHORUS_MAX_MEMBER + 1},
       CHORUS_ETOOBIG,
       "65536-byte limit"},
      {{.kind = 9, .path = "s"}, CHORUS_EINVAL, "unknown kind"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    int rc = chorus__map_ops_encode(&bad[i].op, 1, &buf, &len, err);
    if (rc != bad[i].code || strstr(err, bad[i].want) == NULL)
      fail_msg("bad op %zu: %d \"%s\"", i, rc, err);
    assert_null(buf);
  }
  assert_int_equal(chorus__map_ops_encode(ops, 0, &buf, &len, err),
                   CHORUS_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_siblings_and_context),
      cmocka_unit_test(test_counters_and_sets),
      cmocka_unit_test(test_trace_kept_with_the_reply),
      cmocka_unit_test(test_maps_offline),
      cmocka_unit_test(test_argument_errors),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_error_mapping),
      cmocka_unit_test(test_handshake_refused),
      cmocka_unit_test(test_older_node_speaks_version_1),
      cmocka_unit_test(test_datacenter_needs_protocol_4),
      cmocka_unit_test(test_failover_dead_seed),
      cmocka_unit_test(test_all_seeds_dead),
      cmocka_unit_test(test_read_retried_write_not),
      cmocka_unit_test(test_timeouts),
      cmocka_unit_test(test_silent_handshake),
      cmocka_unit_test(test_garbage_reply),
      cmocka_unit_test(test_ring_status),
      cmocka_unit_test(test_repair_ranges_records),
      cmocka_unit_test(test_user_records),
      cmocka_unit_test(test_keyring_records),
      cmocka_unit_test(test_ring_status_older_node),
      cmocka_unit_test(test_cluster_status),
      cmocka_unit_test(test_cluster_remove),
      cmocka_unit_test(test_cluster_older_node),
      cmocka_unit_test(test_cluster_async),
      cmocka_unit_test(test_async),
      cmocka_unit_test(test_async_chain),
      cmocka_unit_test(test_async_close_cancels),
      cmocka_unit_test(test_oom_submit),
      cmocka_unit_test(test_token_routing),
      cmocka_unit_test(test_route_choose),
      cmocka_unit_test(test_token_routing_async_close),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
