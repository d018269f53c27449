/* test_node_aae.c: anti-entropy on real processes (issue 20): three
 * chorusd at N = 3 with a one-byte hint bound (every hint dropped) and a
 * short exchange interval. n2 is killed while keys are written at QUORUM,
 * so no hint will ever bring them; once it is back, anti-entropy alone
 * (every read in the test has read repair off) must bring them: n0 and n1
 * are then killed and every key is read through n2 at R = 1. Before that,
 * keys of keyspaces at N = 1 and N = 2 (issue 21) must stay on their own
 * replicas through dozens of exchanges. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "node_harness.h"

#define KEYS 1000

static const char *const aae_flags[] = {"--aae-interval-ms", "200",
                                        "--hint-max-bytes", "1", NULL};

/* A GET at R = 1 with read repair off: 0 with the value in @out, 1 when
 * not found, else an error. */
static int get_r1(int fd, const char *key, char *out, size_t cap) {
  struct wire_msg m = {.type = WIRE_GET, .request_id = next_id++};
  m.get.key = (struct wire_bytes){(const uint8_t *)key, strlen(key)};
  m.get.opts.r = 1;
  m.get.opts.read_repair = WIRE_RR_OFF;
  struct reply r;
  if (call(fd, &m, &r) != 0)
    return -1000;
  int rc = -1001;
  if (r.m.type == WIRE_GET_REPLY || r.m.type == WIRE_GET_REPLY2) {
    const struct wire_bytes_list *v = &r.m.get_reply.values;
    rc = v->n == 0 ? 1 : 0;
    out[0] = '\0';
    if (v->n >= 1) {
      size_t l = v->items[0].len < cap - 1 ? v->items[0].len : cap - 1;
      memcpy(out, v->items[0].ptr, l);
      out[l] = '\0';
    }
  } else if (r.m.type == WIRE_ERROR) {
    rc = r.m.error.code;
  }
  reply_free(&r);
  return rc;
}

static int64_t sum_stat(const char *name) {
  int64_t s = 0;
  for (int i = 0; i < 3; i++) {
    int64_t v = stat_of(nodes[i].port, name);
    s += v > 0 ? v : 0;
  }
  return s;
}

static void test_aae_refills_missed_writes(void **state) {
  (void)state;
  member_extra = aae_flags;
  for (int i = 0; i < 3; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    node_init(&nodes[i], name);
  }
  start_cluster();
  wait_alive(3, 30);
  int fd = client_open(nodes[0].port);
  assert_true(fd >= 0);
  char key[32], val[32], got[64];
  struct wire_options all = quorum();
  all.w = WIRE_ALL;
  for (int k = 0; k < KEYS; k++) {
    snprintf(key, sizeof key, "all-%d", k);
    snprintf(val, sizeof val, "a%d", k);
    assert_int_equal(put_with(fd, key, val, all), 0);
  }
  /* n2 down: these writes miss it, and their hints are dropped. */
  kill(nodes[2].pid, SIGKILL);
  assert_true(wait_exit(&nodes[2], 10) != -1);
  for (int k = 0; k < KEYS; k++) {
    snprintf(key, sizeof key, "missed-%d", k);
    snprintf(val, sizeof val, "m%d", k);
    assert_int_equal(put(fd, key, val), 0);
  }
  close(fd);
  /* Each write's operation ends (at its 2 s timeout, or at once once n0
   * holds n2 down) without n2's acknowledgement and only then arms n2's
   * hint, which the 1-byte bound drops. */
  double t_end = now_s();
  for (double end = t_end + 15;
       sum_stat("repl.hints_dropped") < KEYS && now_s() < end;)
    sleep_ms(100);
  print_message("# %.1f s after the writes, %lld hints dropped\n",
                now_s() - t_end, (long long)sum_stat("repl.hints_dropped"));
  /* A node queues what it sends to a peer whose link is down and sends it
   * once the link is back: restart n0 and n1, so that nothing they sent
   * n2 meanwhile survives. What n2 lacks, only anti-entropy can bring. */
  int64_t dropped = sum_stat("repl.hints_dropped");
  for (int i = 0; i < 2; i++) {
    kill(nodes[i].pid, SIGKILL);
    wait_exit(&nodes[i], 10);
  }
  start_member(&nodes[0], keyfile_a, nodes[1].port, "8");
  start_member(&nodes[1], keyfile_a, nodes[0].port, "64");
  print_message("# hints dropped while n2 was down: %lld\n",
                (long long)dropped);
  assert_true(dropped >= KEYS);
  double t0 = now_s();
  start_member(&nodes[2], keyfile_a, nodes[0].port, "64");
  wait_alive(3, 30);
  /* Anti-entropy (n2 pulling, n0 and n1 pushing) until n2's tree counts
   * every key (its rebuild at start counted what it had). */
  double end = now_s() + 60;
  while (stat_of(nodes[2].port, "repl.aae_tree_keys") < 2 * KEYS &&
         now_s() < end)
    sleep_ms(100);
  double took = now_s() - t0;
  print_message("# n2 refilled by anti-entropy in %.1f s: %lld exchanges, "
                "%lld keys repaired, %lld bytes sent\n",
                took, (long long)sum_stat("repl.aae_completed"),
                (long long)sum_stat("repl.aae_keys_repaired"),
                (long long)sum_stat("repl.aae_bytes_sent"));
  assert_int_equal(stat_of(nodes[2].port, "repl.aae_tree_keys"), 2 * KEYS);
  assert_true(sum_stat("repl.aae_keys_repaired") >= KEYS);
  assert_int_equal(sum_stat("repl.hints_replayed"), 0); /* none to replay */
  /* What the CLI shows of it. */
  char out[8192];
  assert_int_equal(run_cli(nodes[2].port, out, sizeof out, "repair status"), 0);
  show("chorus repair status (n2)", out);
  assert_non_null(strstr(out, "tree built"));
  assert_int_equal(run_cli(nodes[2].port, out, sizeof out, "--json repair now"),
                   0);
  assert_non_null(strstr(out, "\"aae.tree_built\":1"));
  assert_non_null(strstr(out, ".last_completed_ms\":"));
  /* Per range (n2 replicates every range: three nodes, N = 3): the text
   * table, then an exchange asked for one token's range, with both other
   * replicas, until that range shows repaired. */
  static char big[1 << 18];
  assert_int_equal(run_cli(nodes[2].port, big, sizeof big, "repair status"), 0);
  assert_non_null(strstr(big, "range (first..last)"));
  assert_non_null(strstr(big, "ranges replicated here"));
  int range_lines = 0;
  for (const char *l = strstr(big, "range (first..last)"); l != NULL;
       l = strchr(l + 1, '\n'))
    range_lines += strspn(l + 1, "0123456789abcdef") == 16 &&
                   strncmp(l + 17, "..", 2) == 0;
  print_message("# n2: %d range lines\n", range_lines);
  assert_true(range_lines >= 3 * 8);
  assert_int_equal(
      run_cli(nodes[2].port, out, sizeof out, "repair now --range 0x0"), 0);
  show("chorus repair now --range 0x0 (n2)", out);
  assert_non_null(strstr(out, "exchanges requested with 2 peers"));
  bool repaired = false;
  end = now_s() + 30;
  while (!repaired && now_s() < end) {
    assert_int_equal(run_cli(nodes[2].port, out, sizeof out,
                             "--json repair status --range 0"),
                     0);
    repaired = strstr(out, "\"repaired\":true") != NULL;
    if (!repaired)
      sleep_ms(100);
  }
  show("chorus --json repair status --range 0 (n2)", out);
  assert_true(repaired);
  assert_non_null(strstr(out, "\"ranges\":[{\"first\":\""));
  assert_null(strstr(out, "\"exchanges\":0,"));
  /* A malformed range: a usage error naming it, nothing sent. */
  assert_int_equal(
      run_cli(nodes[2].port, out, sizeof out, "repair now --range 12..zz"), 2);
  assert_non_null(strstr(out, "--range \"12..zz\" is not START..END"));
  assert_int_equal(run_cli(nodes[2].port, out, sizeof out,
                           "repair now --range 00000000000000001"),
                   2);
  /* Keyspaces of their own replication (issue 21): "one" at N = 1 and
   * "two" at N = 2 beside the cluster's N = 3. Their keys are compared
   * only among their class's replicas: however many exchanges run, the
   * trees of the three nodes together count each key of "one" once and
   * each of "two" twice (an exchange that carried a key to a node that is
   * not its replica would count it again there). */
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out,
                           "keyspace create one --replicas 1"),
                   0);
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out,
                           "keyspace create two --replicas 2"),
                   0);
  for (int i = 0; i < 3; i++)
    for (end = now_s() + 10;; sleep_ms(100)) {
      if (run_cli(nodes[i].port, out, sizeof out, "keyspace list two") == 0)
        break;
      assert_true(now_s() < end);
    }
  /* The new classes stale every tree; the rebuilds count the same keys. */
  for (end = now_s() + 20;
       sum_stat("repl.aae_tree_keys") != 6 * KEYS && now_s() < end;)
    sleep_ms(100);
  assert_int_equal(sum_stat("repl.aae_tree_keys"), 6 * KEYS);
  enum { KS_KEYS = 100 };
  fd = client_open(nodes[0].port);
  assert_true(fd >= 0);
  for (int k = 0; k < KS_KEYS; k++) {
    snprintf(key, sizeof key, "ks-%d", k);
    all.keyspace = (struct wire_bytes){(const uint8_t *)"one", 3};
    assert_int_equal(put_with(fd, key, "1", all), 0);
    all.keyspace = (struct wire_bytes){(const uint8_t *)"two", 3};
    assert_int_equal(put_with(fd, key, "2", all), 0);
  }
  close(fd);
  int64_t want = 6 * KEYS + 3 * KS_KEYS;
  for (end = now_s() + 10;
       sum_stat("repl.aae_tree_keys") != want && now_s() < end;)
    sleep_ms(100);
  assert_int_equal(sum_stat("repl.aae_tree_keys"), want);
  /* Exchanges at 200 ms, and one asked for on every node: some dozens. */
  int64_t done0 = sum_stat("repl.aae_completed");
  for (int i = 0; i < 3; i++)
    assert_int_equal(run_cli(nodes[i].port, out, sizeof out, "repair now"), 0);
  for (end = now_s() + 10;
       sum_stat("repl.aae_completed") < done0 + 30 && now_s() < end;)
    sleep_ms(100);
  print_message("# keyspaces at N = 1 and 2: %lld exchanges later, the "
                "trees count %lld keys (%lld wanted)\n",
                (long long)(sum_stat("repl.aae_completed") - done0),
                (long long)sum_stat("repl.aae_tree_keys"), (long long)want);
  assert_true(sum_stat("repl.aae_completed") >= done0 + 30);
  assert_int_equal(sum_stat("repl.aae_tree_keys"), want);
  /* Only n2 is left: every key, read at R = 1 through it. */
  int64_t n2_read_repairs = stat_of(nodes[2].port, "repl.read_repairs");
  kill(nodes[0].pid, SIGKILL);
  kill(nodes[1].pid, SIGKILL);
  wait_exit(&nodes[0], 10);
  wait_exit(&nodes[1], 10);
  fd = client_open(nodes[2].port);
  assert_true(fd >= 0);
  int present = 0;
  for (int k = 0; k < KEYS; k++) {
    snprintf(key, sizeof key, "missed-%d", k);
    snprintf(val, sizeof val, "m%d", k);
    present += get_r1(fd, key, got, sizeof got) == 0 && strcmp(got, val) == 0;
    snprintf(key, sizeof key, "all-%d", k);
    snprintf(val, sizeof val, "a%d", k);
    present += get_r1(fd, key, got, sizeof got) == 0 && strcmp(got, val) == 0;
  }
  close(fd);
  print_message("# n2 alone holds %d of %d keys\n", present, 2 * KEYS);
  assert_int_equal(present, 2 * KEYS);
  assert_int_equal(stat_of(nodes[2].port, "repl.read_repairs"),
                   n2_read_repairs);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0 || find_cli() != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      TIMED(test_aae_refills_missed_writes),
  };
  int failed =
      cmocka_run_group_tests_name("node_aae", tests, NULL, group_teardown);
  return harness_finish(failed);
}
