/* test_node_hints.c: hinted handoff across a coordinator's wall-clock jump
 * (issue 20), on three real chorusd processes.
 *
 * Found with faketime: a coordinator whose clock stepped 4 h ahead
 * dropped every hint it kept (the age bound is 3 h) when the target came
 * back, logged nothing, and the target never got those writes.
 *
 *   1. n0 runs under libfaketime with its offset read from a file ("+0").
 *      n2 is killed (-9); 100 keys are written through n0 at QUORUM: n0
 *      keeps a hint for n2 for each.
 *   2. n0's wall clock steps 4 h ahead (the file says "+4h"); its
 *      monotonic clock, as under NTP, does not.
 *   3. n2 restarts: every hint is replayed, none dropped for age
 *      (repl.hints_dropped_age stays 0), and every key reads at R=1
 *      through n2.
 *
 * Skipped (77) without libfaketime. About 20 s. */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <unistd.h>

#include <cmocka.h>

#include "node_harness.h"

#define NKEYS 100

static void test_hints_survive_a_clock_jump(void **state) {
  (void)state;
  char clockfile[300];
  snprintf(clockfile, sizeof clockfile, "%s/n0-clock", root);
  write_text(clockfile, "+0\n");
  for (int i = 0; i < 3; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    node_init(&nodes[i], name);
  }
  assert_int_equal(faketime_begin(NULL, clockfile), 0);
  start_member(&nodes[0], keyfile_a, nodes[0].port, "64");
  faketime_end();
  for (int i = 1; i < 3; i++)
    start_member(&nodes[i], keyfile_a, nodes[0].port, "64");
  wait_alive(3, 30);

  assert_int_equal(kill(nodes[2].pid, SIGKILL), 0);
  (void)wait_exit(&nodes[2], 10);
  int fd = client_open(nodes[0].port);
  assert_true(fd >= 0);
  for (int k = 0; k < NKEYS; k++) {
    char key[32];
    snprintf(key, sizeof key, "jump-%d", k);
    int rc = put(fd, key, key);
    if (rc != 0)
      fail_msg("put %s through n0 at QUORUM: %d", key, rc);
  }
  close(fd);
  /* Past the request timeout n0 gives up the REPLICA_WRITEs it queued for
   * n2 (node_peer.c), and each write's end arms a hint for n2, the replica
   * that did not acknowledge it: from then on only the hints hold them. */
  sleep_ms(11000);
  char hints[64];
  snprintf(hints, sizeof hints, "member.%016" PRIx64 ".hints",
           id_of(nodes[2].name));
  int64_t kept = stat_of(nodes[0].port, hints);
  print_message("# n0 keeps %" PRId64 " hints for killed n2\n", kept);
  assert_int_equal(kept, NKEYS);
  /* n0's wall clock steps 4 h ahead: every hint is 4 h old by it. */
  write_text(clockfile, "+4h\n");
  char offset[64];
  snprintf(offset, sizeof offset, "member.%016" PRIx64 ".offset_ms",
           id_of(nodes[0].name));
  double end = now_s() + 15;
  int64_t off;
  while ((off = stat_of(nodes[1].port, offset)) < 4 * 3600 * 1000 - 60000)
    if (now_s() > end)
      fail_msg("n1 sees n0's clock %" PRId64 " ms off, not 4 h", off);
    else
      sleep_ms(200);
  print_message("# n1 sees n0's clock %" PRId64 " ms ahead\n", off);
  start_member(&nodes[2], keyfile_a, nodes[0].port, "64");
  end = now_s() + 30;
  while (stat_of(nodes[0].port, hints) != 0 && now_s() < end)
    sleep_ms(200);
  int64_t replayed = stat_of(nodes[0].port, "repl.hints_replayed");
  int64_t dropped = stat_of(nodes[0].port, "repl.hints_dropped_age");
  print_message("# after the jump: %" PRId64 " hints left, %" PRId64
                " replayed, %" PRId64 " dropped for age\n",
                stat_of(nodes[0].port, hints), replayed, dropped);
  assert_int_equal(dropped, 0);
  assert_int_equal(stat_of(nodes[0].port, hints), 0);
  assert_true(replayed >= NKEYS);

  /* n2 holds every key itself: at R=1 it answers from its own copy. */
  fd = client_open(nodes[2].port);
  assert_true(fd >= 0);
  int missing = 0;
  for (int k = 0; k < NKEYS; k++) {
    char key[32], got[64];
    snprintf(key, sizeof key, "jump-%d", k);
    struct wire_msg m = {.type = WIRE_GET, .request_id = next_id++};
    m.get.key = (struct wire_bytes){(const uint8_t *)key, strlen(key)};
    m.get.opts.r = 1;
    m.get.opts.read_repair = WIRE_RR_OFF;
    struct reply r;
    assert_int_equal(call(fd, &m, &r), 0);
    bool found = (r.m.type == WIRE_GET_REPLY || r.m.type == WIRE_GET_REPLY2) &&
                 r.m.get_reply.values.n == 1;
    (void)got;
    missing += !found;
    reply_free(&r);
  }
  close(fd);
  print_message("# n2 at R=1: %d of %d keys missing\n", missing, NKEYS);
  assert_int_equal(missing, 0);
}

static int teardown(void **state) {
  return group_teardown(state);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  if (access(FAKETIME_LIB, R_OK) != 0) {
    printf("1..0 # SKIP libfaketime not installed (%s)\n", FAKETIME_LIB);
    harness_finish(0);
    return 77;
  }
  const struct CMUnitTest tests[] = {
      TIMED(test_hints_survive_a_clock_jump),
  };
  int failed = cmocka_run_group_tests_name("node_hints", tests, NULL, teardown);
  return harness_finish(failed);
}
