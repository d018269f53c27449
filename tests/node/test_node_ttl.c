/* test_node_ttl.c: values written with a time to live (issue 20) on three
 * real chorusd processes whose wall clocks disagree: n0 runs 500 ms ahead,
 * n1 on time, n2 500 ms behind (libfaketime, preloaded into each node).
 *
 *   1. Through each node as coordinator, a PUT_TTL of 3 s at ALL, and one
 *      more through the CLI (`chorus put KEY VALUE --ttl 3`): each key
 *      reads back at R=1 through every node at once.
 *   2. After the TTL plus the worst skew margin (a coordinator 0.5 s ahead
 *      stamps the expiry 0.5 s late, a reader 0.5 s behind sees it 0.5 s
 *      late: 1 s in all, plus 0.3 s of slack), every key reads as not
 *      found at R=1 through every node.
 *
 * Skipped (77) without libfaketime. Under ASan, the preload comes before
 * the runtime: ASAN_OPTIONS gets verify_asan_link_order=0 for the nodes.
 * About 8 s. CHORUS_KEEP_LOGS=1 keeps the nodes' logs. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <cmocka.h>

#include "node_harness.h"

#define TTL_MS 3000
#define SKEW_MARGIN_MS 1300 /* 2 x 500 ms of skew, and slack */

static const char *const offsets[3] = {"+0.5", "+0", "-0.5"};

/* A PUT_TTL of @key = @value at ALL through the node behind @fd: 0, or the
 * error code (-1000: no answer). */
static int put_ttl(int fd, const char *key, const char *value,
                   uint64_t ttl_ms) {
  struct wire_msg m = {.type = WIRE_PUT_TTL, .request_id = next_id++};
  m.put.key = (struct wire_bytes){(const uint8_t *)key, strlen(key)};
  m.put.value = (struct wire_bytes){(const uint8_t *)value, strlen(value)};
  m.put.opts.w = WIRE_ALL;
  m.put.ttl_ms = ttl_ms;
  struct reply r;
  if (call(fd, &m, &r) != 0)
    return -1000;
  int rc = r.m.type == WIRE_WRITE_REPLY || r.m.type == WIRE_WRITE_REPLY2 ? 0
           : r.m.type == WIRE_ERROR ? r.m.error.code
                                    : -1001;
  reply_free(&r);
  return rc;
}

/* A GET at R=1: the number of values answered, or a negative error. */
static int values_at_r1(int fd, const char *key) {
  struct wire_msg m = {.type = WIRE_GET, .request_id = next_id++};
  m.get.key = (struct wire_bytes){(const uint8_t *)key, strlen(key)};
  m.get.opts.r = 1;
  struct reply r;
  if (call(fd, &m, &r) != 0)
    return -1000;
  int rc = r.m.type == WIRE_GET_REPLY || r.m.type == WIRE_GET_REPLY2
               ? (int)r.m.get_reply.values.n
           : r.m.type == WIRE_ERROR ? r.m.error.code
                                    : -1001;
  reply_free(&r);
  return rc;
}

#define NKEYS 4
static char keys[NKEYS][32];

/* Every key through every node at R=1: @want values each. */
static void read_everywhere(int fds[3], int want, const char *when) {
  for (int k = 0; k < NKEYS; k++)
    for (int i = 0; i < 3; i++) {
      int n = values_at_r1(fds[i], keys[k]);
      if (n != want)
        fail_msg("%s: %s through n%d (clock %s s): %d values, want %d", when,
                 keys[k], i, offsets[i], n, want);
    }
}

static void test_ttl_under_skew(void **state) {
  (void)state;
  for (int i = 0; i < 3; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    node_init(&nodes[i], name);
  }
  for (int i = 0; i < 3; i++) {
    /* The child inherits the environment at fork: this node's offset. */
    assert_int_equal(faketime_begin(offsets[i], NULL), 0);
    start_member(&nodes[i], keyfile_a, nodes[0].port, "64");
    faketime_end();
  }
  wait_alive(3, 30);
  /* The skew is real: n1 (on time) estimates n0 and n2 about 500 ms off,
   * on either side (gossip probes carry timestamps, issue 7). */
  for (int i = 0; i < 3; i += 2) {
    char stat[64];
    snprintf(stat, sizeof stat, "member.%016" PRIx64 ".offset_ms",
             id_of(nodes[i].name));
    double end = now_s() + 10;
    int64_t off;
    while ((off = stat_of(nodes[1].port, stat)),
           (off < 300 || off > 700) && (off > -300 || off < -700))
      if (now_s() > end)
        fail_msg("n1 sees %s's clock %" PRId64 " ms off, not ~500",
                 nodes[i].name, off);
      else
        sleep_ms(200);
    print_message("# n1 sees %s's clock %+" PRId64 " ms off\n", nodes[i].name,
                  off);
  }

  int fds[3];
  for (int i = 0; i < 3; i++) {
    fds[i] = client_open(nodes[i].port);
    assert_true(fds[i] >= 0);
  }
  /* Every node coordinates one key (with N = 3, each is a replica of
   * every key, so it coordinates what it is sent), the CLI one more. */
  double t0 = now_s();
  for (int i = 0; i < 3; i++) {
    snprintf(keys[i], sizeof keys[i], "ttl-n%d", i);
    int rc = put_ttl(fds[i], keys[i], "brief", TTL_MS);
    if (rc != 0)
      fail_msg("put_ttl through n%d: %d", i, rc);
  }
  snprintf(keys[3], sizeof keys[3], "ttl-cli");
  char out[4096];
  int st = run_cli(nodes[1].port, out, sizeof out,
                   "put %s brief --ttl %g -w ALL", keys[3], TTL_MS / 1000.0);
  if (st != 0) {
    show("chorus put --ttl", out);
    fail_msg("chorus put --ttl exited %d", st);
  }
  read_everywhere(fds, 1, "before the TTL");
  double before = now_s() - t0;
  /* The earliest expiry anywhere is TTL - 1 s after the first write: the
   * reads above must have come before it to mean anything. */
  assert_true(before * 1000 < TTL_MS - 1000);
  print_message("# written and read back everywhere in %.0f ms\n",
                before * 1000);

  double wait = (TTL_MS + SKEW_MARGIN_MS) / 1000.0 - (now_s() - t0);
  if (wait > 0)
    sleep_ms((int)(wait * 1000));
  read_everywhere(fds, 0, "after the TTL and the skew margin");
  for (int i = 0; i < 3; i++)
    close(fds[i]);
}

static int teardown(void **state) {
  return group_teardown(state);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  if (find_cli() != 0)
    return 1;
  if (access(FAKETIME_LIB, R_OK) != 0) {
    printf("1..0 # SKIP libfaketime not installed (%s)\n", FAKETIME_LIB);
    harness_finish(0);
    return 77;
  }
  const struct CMUnitTest tests[] = {
      TIMED(test_ttl_under_skew),
  };
  int failed = cmocka_run_group_tests_name("node_ttl", tests, NULL, teardown);
  return harness_finish(failed);
}
