/* test_node_meta.c: the cluster metadata on real chorusd processes (issue
 * 18), driven through the real CLI (`chorus cluster status|remove`) and
 * STATUS_QUERY:
 *
 *   1. a 3-node cluster; the metadata leader is killed (-9): a survivor
 *      becomes leader and a metadata change (`cluster remove` of the killed
 *      node) is accepted again; the seconds each took are printed. Removing
 *      a live member without --force is refused with EBUSY.
 *   2. every node killed (-9) and restarted: each serves the metadata it
 *      had (same epoch, same members) from disk, before any leader.
 *   3. the lone restart: 5 nodes at N=3 all killed, m0 restarted alone
 *      still knows the 5-node ring; of 60 W=1 writes through it, the ones
 *      it acknowledges (keys it holds a replica of, the others hinted)
 *      are all readable at QUORUM once the other four are back; the ones
 *      it cannot place are refused, never acknowledged.
 *
 * CHORUS_KEEP_LOGS=1 keeps the nodes' logs. */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <raft.h>

#include "node_harness.h"

static void kill9(struct proc *p) {
  if (p->pid > 0) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
  }
}

/* leader_among: the index of a node in @ps that says it is the metadata
 * leader in a term above @after, or -1. */
static int leader_among(struct proc *ps, int n, int64_t after) {
  for (int i = 0; i < n; i++)
    if (ps[i].pid > 0 &&
        stat_of(ps[i].port, "meta.raft_state") == RAFT_LEADER &&
        stat_of(ps[i].port, "meta.term") > after)
      return i;
  return -1;
}

/* ------------------------------------------------------------------------
 * 1 and 2: the 3-node fixture
 * ------------------------------------------------------------------------ */

static void test_leader_killed_new_leader_remove(void **state) {
  (void)state;
  ensure_cluster();
  wait_alive(3, 30);
  char out[8192];
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out, "cluster status"),
                   0);
  show("chorus cluster status", out);

  int old = -1;
  for (double end = now_s() + 15; old < 0 && now_s() < end; sleep_ms(100))
    old = leader_among(nodes, 3, 0);
  assert_true(old >= 0);
  int64_t old_term = stat_of(nodes[old].port, "meta.term");
  printf("# killing the leader %s (term %" PRId64 ")\n", nodes[old].name,
         old_term);
  kill9(&nodes[old]);
  double t0 = now_s();

  int lead = -1;
  while ((lead = leader_among(nodes, 3, old_term)) < 0) {
    if (now_s() - t0 > 15)
      fail_msg("no new metadata leader within 15 s");
    sleep_ms(50);
  }
  double t_leader = now_s() - t0;

  /* The change: remove the killed node. SWIM holds it alive for a moment
   * (EBUSY): the CLI is asked again until it is suspect or dead. */
  int rc;
  while ((rc = run_cli(nodes[lead].port, out, sizeof out, "cluster remove %s",
                       nodes[old].name)) != 0) {
    if (now_s() - t0 > 30)
      fail_msg("cluster remove %s not accepted within 30 s: %s",
               nodes[old].name, out);
    sleep_ms(200);
  }
  double t_change = now_s() - t0;
  printf("# new leader %s after %.2f s; cluster remove %s accepted after "
         "%.2f s\n",
         nodes[lead].name, t_leader, nodes[old].name, t_change);
  show("chorus cluster remove (after the kill)", out);
  /* A dead member's ranges go to their new owners first (here none: three
   * nodes at N=3 leave two that hold everything), then it is REMOVED. */
  assert_non_null(strstr(out, "remov"));
  assert_true(t_leader < 10);
  for (double end = now_s() + 20;; sleep_ms(200)) {
    if (run_cli(nodes[lead].port, out, sizeof out, "cluster status --json") ==
            0 &&
        strstr(out, "\"state\":\"removed\"") != NULL)
      break;
    if (now_s() > end)
      fail_msg("%s not removed within 20 s: %s", nodes[old].name, out);
  }
  printf("# %s removed after %.2f s\n", nodes[old].name, now_s() - t0);

  /* Both survivors apply the removal: two members own the ring. */
  for (double end = now_s() + 10;; sleep_ms(100)) {
    int ok = 0;
    for (int i = 0; i < 3; i++)
      ok += nodes[i].pid > 0 &&
            stat_of(nodes[i].port, "meta.members_normal") == 2;
    if (ok == 2)
      break;
    if (now_s() > end)
      fail_msg("the removal was not applied by both survivors");
  }

  /* A live member is not removed without --force. */
  int live = 3 - old - lead; /* the third index */
  assert_int_not_equal(run_cli(nodes[lead].port, out, sizeof out,
                               "cluster remove %s", nodes[live].name),
                       0);
  show("chorus cluster remove of a live member", out);
  assert_non_null(strstr(out, "EBUSY"));
  serves(nodes[lead].port);
  assert_int_equal(run_cli(nodes[live].port, out, sizeof out, "cluster status"),
                   0);
  show("chorus cluster status (after)", out);
}

static void test_metadata_survives_restart_of_every_node(void **state) {
  (void)state;
  int alive[3], n = 0;
  for (int i = 0; i < 3; i++)
    if (nodes[i].pid > 0)
      alive[n++] = i;
  assert_int_equal(n, 2);
  int64_t epoch = stat_of(nodes[alive[0]].port, "meta.epoch");
  int64_t members = stat_of(nodes[alive[0]].port, "meta.members");
  assert_true(epoch > 0);
  for (int k = 0; k < n; k++)
    kill9(&nodes[alive[k]]);
  for (int k = 0; k < n; k++)
    start_member(&nodes[alive[k]], keyfile_a, nodes[alive[1 - k]].port, "64");
  /* Served from disk at once, whether or not a leader is known yet. */
  for (int k = 0; k < n; k++) {
    int64_t e = -1;
    for (double end = now_s() + 10;
         (e = stat_of(nodes[alive[k]].port, "meta.epoch")) < 0 &&
         now_s() < end;)
      sleep_ms(50);
    assert_int_equal(e, epoch);
    assert_int_equal(stat_of(nodes[alive[k]].port, "meta.members"), members);
  }
  int lead = -1;
  for (double end = now_s() + 15; lead < 0; sleep_ms(100)) {
    lead = leader_among(nodes, 3, 0);
    if (now_s() > end)
      fail_msg("no leader after the restart");
  }
  serves(nodes[lead].port);
  printf("# restarted %s and %s: epoch %" PRId64 ", %" PRId64
         " members, leader %s\n",
         nodes[alive[0]].name, nodes[alive[1]].name, epoch, members,
         nodes[lead].name);
}

/* ------------------------------------------------------------------------
 * 3: the lone restart, 5 nodes at N=3
 * ------------------------------------------------------------------------ */

#define FIVE 5
#define LONE_WRITES 60

static struct proc five[FIVE];

static void wait_five(double secs) {
  for (double end = now_s() + secs;; sleep_ms(100)) {
    int ok = 0;
    for (int i = 0; i < FIVE; i++)
      ok += stat_of(five[i].port, "members.alive") == FIVE &&
            stat_of(five[i].port, "meta.members_normal") == FIVE;
    if (ok == FIVE)
      return;
    if (now_s() > end)
      fail_msg("5 nodes not all alive and normal within %.0f s", secs);
  }
}

static void test_lone_restart_acknowledges_only_what_it_places(void **state) {
  (void)state;
  kill_all();
  for (int i = 0; i < 3; i++)
    nodes[i].pid = 0;
  for (int i = 0; i < FIVE; i++) {
    char name[8];
    snprintf(name, sizeof name, "m%d", i);
    node_init(&five[i], name);
  }
  for (int i = 0; i < FIVE; i++)
    start_member(&five[i], keyfile_a, five[0].port, "64");
  wait_five(40);
  for (int i = 0; i < FIVE; i++)
    kill9(&five[i]);

  start_member(&five[0], keyfile_a, five[0].port, "64");
  for (double end = now_s() + 10;
       stat_of(five[0].port, "meta.members_normal") != FIVE; sleep_ms(50))
    if (now_s() > end)
      fail_msg("m0 alone does not serve its 5-member metadata");

  int fd = client_open(five[0].port);
  assert_true(fd >= 0);
  struct wire_options one = {0};
  one.r = 1;
  one.w = 1;
  one.timeout_ms = 2000;
  static char acked[LONE_WRITES][16];
  int nacked = 0, refused = 0;
  for (int k = 0; k < LONE_WRITES; k++) {
    char key[16];
    snprintf(key, sizeof key, "lone%02d", k);
    int rc = put_with(fd, key, key, one);
    if (rc == 0)
      snprintf(acked[nacked++], sizeof acked[0], "%s", key);
    else
      refused++;
  }
  close(fd);
  printf("# m0 alone: %d of %d W=1 writes acknowledged, %d refused\n", nacked,
         LONE_WRITES, refused);
  /* With N=3 over 5 nodes m0 holds a replica of about 3/5 of the keys. */
  assert_true(nacked > 0);
  assert_true(refused > 0);

  for (int i = 1; i < FIVE; i++)
    start_member(&five[i], keyfile_a, five[0].port, "64");
  wait_five(40);
  for (double end = now_s() + 30;
       stat_of(five[0].port, "repl.hints_pending") != 0; sleep_ms(100))
    if (now_s() > end)
      fail_msg("m0's hints not delivered within 30 s");

  int lost = 0;
  for (int k = 0; k < nacked; k++) {
    int reader = 1 + k % (FIVE - 1);
    int rfd = client_open(five[reader].port);
    assert_true(rfd >= 0);
    char value[32];
    int rc = get(rfd, acked[k], value, sizeof value);
    close(rfd);
    if (rc != 0 || strcmp(value, acked[k]) != 0) {
      printf("# lost: %s (read through m%d: %d)\n", acked[k], reader, rc);
      lost++;
    }
  }
  printf("# %d acknowledged writes read back at QUORUM through m1..m4; %d "
         "lost\n",
         nacked, lost);
  assert_int_equal(lost, 0);
  for (int i = 0; i < FIVE; i++)
    kill9(&five[i]);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  cli = getenv("CHORUS_CLI");
  if (cli == NULL) {
    fprintf(stderr, "test_node_meta: $CHORUS_CLI is not set\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      TIMED(test_leader_killed_new_leader_remove),
      TIMED(test_metadata_survives_restart_of_every_node),
      TIMED(test_lone_restart_acknowledges_only_what_it_places),
  };
  int failed =
      cmocka_run_group_tests_name("node_meta", tests, NULL, group_teardown);
  return harness_finish(failed);
}
