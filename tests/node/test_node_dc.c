/* test_node_dc.c: the client's datacenter (issue 22, protocol version 4)
 * on real chorusd processes: n1, n2 in dc1 and n3, n4 in dc2, replication
 * "dc1:2,dc2:2".
 *
 *   1. With n2 stopped (SIGSTOP), a LOCAL_QUORUM write sent to n1 by a
 *      client of dc1 cannot be acknowledged (its datacenter has one live
 *      replica of two), while the same write from a client of dc2, sent
 *      to n1 all the same, is: n1 hands it to a replica in dc2, whose two
 *      replicas acknowledge it (n1's repl.forwarded grows by one). It
 *      reads back at LOCAL_QUORUM for dc2 through n1, and through the CLI
 *      (`chorus --dc dc2 get -c LOCAL_QUORUM`), while n2 is still stopped.
 *   2. A datacenter the replication does not name is refused (EINVAL)
 *      with its name, through the CLI too (exit 1).
 *   3. Keyspaces with replications of their own (issue 21): "dc2:2" keys
 *      are served by n3 and n4 only, "dc2:2,dc1:1" keys by one dc1 node
 *      and both dc2 nodes (traced reads at ALL); LOCAL_QUORUM of the
 *      dc2-only keyspace from dc1 is refused, from a dc2 client served.
 *
 * About 10 s. CHORUS_KEEP_LOGS=1 keeps the nodes' logs. */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "node_harness.h"

#define NODES 5 /* n1..n4; index 0 unused */
static struct proc ns[NODES];
static char founders[256];
static char out[16384];

static void start(int i) {
  const char *extra[] = {"--cluster",
                         cluster,
                         "--cluster-key",
                         keyfile_a,
                         "--profile",
                         "local",
                         "--replicas",
                         "dc1:2,dc2:2",
                         "--dc",
                         i <= 2 ? "dc1" : "dc2",
                         "--rack",
                         i % 2 ? "r1" : "r2",
                         "--seeds",
                         founders,
                         NULL};
  spawn(&ns[i], extra);
}

static void start_all(void) {
  for (int i = 1; i < NODES; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    node_init(&ns[i], name);
  }
  size_t off = 0;
  for (int i = 1; i < NODES; i++)
    off += (size_t)snprintf(founders + off, sizeof founders - off,
                            "%s127.0.0.1:%d", i > 1 ? "," : "", ns[i].port);
  for (int i = 1; i < NODES; i++)
    start(i);
  double t0 = now_s();
  for (;;) {
    int ok = 0;
    for (int i = 1; i < NODES; i++)
      ok += stat_of(ns[i].port, "members.alive") == NODES - 1 &&
            stat_of(ns[i].port, "meta.members_normal") == NODES - 1;
    if (ok == NODES - 1)
      break;
    if (now_s() - t0 > 60)
      fail_msg("the 4 founders did not form within 60 s");
    sleep_ms(200);
  }
  printf("# n1..n4 normal and alive after %.1f s\n", now_s() - t0);
}

static struct wire_options local_quorum(const char *dc) {
  struct wire_options o = {0};
  o.r = o.w = WIRE_LOCAL_QUORUM;
  o.timeout_ms = 1500;
  if (dc != NULL)
    o.dc = (struct wire_bytes){(const uint8_t *)dc, strlen(dc)};
  return o;
}

/* get_local: GET @key at LOCAL_QUORUM for @dc through @fd: 0 with the only
 * sibling in @got, 1 when not found, else the error code. */
static int get_local(int fd, const char *key, const char *dc, char *got,
                     size_t cap) {
  struct wire_msg m = {.type = WIRE_GET, .request_id = next_id++};
  m.get.key = (struct wire_bytes){(const uint8_t *)key, strlen(key)};
  m.get.opts = local_quorum(dc);
  struct reply r;
  if (call(fd, &m, &r) != 0)
    return -1000;
  int rc = -1001;
  if (r.m.type == WIRE_ERROR) {
    rc = r.m.error.code;
  } else if (r.m.type == WIRE_GET_REPLY && r.m.get_reply.values.n == 0) {
    rc = 1;
  } else if (r.m.type == WIRE_GET_REPLY && r.m.get_reply.values.n == 1) {
    const struct wire_bytes *v = &r.m.get_reply.values.items[0];
    snprintf(got, cap, "%.*s", (int)v->len, (const char *)v->ptr);
    rc = 0;
  }
  reply_free(&r);
  return rc;
}

static void test_local_quorum_of_the_clients_datacenter(void **state) {
  (void)state;
  start_all();
  int fd = client_open(ns[1].port);
  assert_true(fd >= 0);
  /* Every node up: a dc2 client's write through n1 is coordinated in dc2. */
  int64_t fwd0 = stat_of(ns[1].port, "repl.forwarded");
  assert_int_equal(put_with(fd, "k-dc", "before", local_quorum("dc2")), 0);
  assert_int_equal(stat_of(ns[1].port, "repl.forwarded"), fwd0 + 1);

  kill(ns[2].pid, SIGSTOP);
  /* dc1's quorum is n1 and n2: not with n2 stopped. */
  int rc = put_with(fd, "k-dc", "dc1 write", local_quorum("dc1"));
  printf("# LOCAL_QUORUM write of a dc1 client with n2 stopped: %s\n",
         rc == 0 ? "ok" : chorus_errname(rc));
  assert_int_not_equal(rc, 0);
  /* A dc2 client's, sent to n1 all the same, is dc2's to acknowledge. */
  double t0 = now_s();
  int64_t fwd1 = stat_of(ns[1].port, "repl.forwarded");
  rc = put_with(fd, "k-dc2", "dc2 write", local_quorum("dc2"));
  printf("# LOCAL_QUORUM write of a dc2 client through n1 with n2 stopped: "
         "%s in %.0f ms\n",
         rc == 0 ? "ok" : chorus_errname(rc), (now_s() - t0) * 1000);
  assert_int_equal(rc, 0);
  assert_int_equal(stat_of(ns[1].port, "repl.forwarded"), fwd1 + 1);
  char got[64] = "";
  assert_int_equal(get_local(fd, "k-dc2", "dc2", got, sizeof got), 0);
  assert_string_equal(got, "dc2 write");
  /* Through the CLI (libchorus, chorus_config.dc). */
  rc = run_cli(ns[1].port, out, sizeof out,
               "--dc dc2 get k-dc2 -c LOCAL_QUORUM");
  show("chorus --dc dc2 get k-dc2 -c LOCAL_QUORUM (through n1, n2 stopped)",
       out);
  assert_int_equal(rc, 0);
  assert_non_null(strstr(out, "dc2 write"));
  kill(ns[2].pid, SIGCONT);
  close(fd);
}

static void test_unknown_datacenter(void **state) {
  (void)state;
  int fd = client_open(ns[3].port);
  assert_true(fd >= 0);
  assert_int_equal(put_with(fd, "k-dc9", "v", local_quorum("dc9")),
                   CHORUS_EINVAL);
  close(fd);
  int rc =
      run_cli(ns[3].port, out, sizeof out, "--dc dc9 put k-dc9 v -c LOCAL_ONE");
  show("chorus --dc dc9 put k-dc9 v -c LOCAL_ONE", out);
  assert_int_equal(rc, 1);
  assert_non_null(strstr(out, "dc9"));
}

/* 3: keyspaces with replications of their own (issue 21) in the 2-DC
 * cluster: "dc2:2" (dc2 only) and "dc2:2,dc1:1". A traced read at ALL is
 * served by n3 and n4 only, and by one dc1 node plus both dc2 nodes; a
 * LOCAL_QUORUM read of the dc2-only keyspace through n1 counts in n1's
 * datacenter, which holds none of its replicas (refused, with the
 * reason), and is served when the client names dc2. */
static void test_keyspace_replication_per_datacenter(void **state) {
  (void)state;
  int rc = run_cli(ns[1].port, out, sizeof out,
                   "keyspace create far --replicas dc2:2");
  show("chorus keyspace create far --replicas dc2:2", out);
  assert_int_equal(rc, 0);
  assert_int_equal(run_cli(ns[1].port, out, sizeof out,
                           "keyspace create lean --replicas dc2:2,dc1:1"),
                   0);
  for (int i = 1; i < NODES; i++)
    for (double end = now_s() + 10;; sleep_ms(100)) {
      if (run_cli(ns[i].port, out, sizeof out, "keyspace list lean") == 0)
        break;
      if (now_s() > end)
        fail_msg("n%d does not list keyspace lean: %s", i, out);
    }
  for (int k = 0; k < 8; k++) {
    assert_int_equal(run_cli(ns[1 + k % 4].port, out, sizeof out,
                             "-k far put fk%d v%d -c ALL", k, k),
                     0);
    assert_int_equal(run_cli(ns[1 + (k + 1) % 4].port, out, sizeof out,
                             "-k lean put fk%d w%d -c ALL", k, k),
                     0);
    char names[128];
    assert_int_equal(run_cli(ns[1].port, out, sizeof out,
                             "--trace -k far get fk%d -c ALL", k),
                     0);
    if (k == 0)
      show("chorus --trace -k far get fk0 -c ALL (through n1, dc1)", out);
    int n = trace_replicas(out, names, sizeof names);
    if (n != 2 || strstr(names, "n3") == NULL || strstr(names, "n4") == NULL)
      fail_msg("far's fk%d served by %s", k, names);
    assert_int_equal(run_cli(ns[4].port, out, sizeof out,
                             "--trace -k lean get fk%d -c ALL", k),
                     0);
    n = trace_replicas(out, names, sizeof names);
    int dc1 = (strstr(names, "n1") != NULL) + (strstr(names, "n2") != NULL);
    if (n != 3 || dc1 != 1 || strstr(names, "n3") == NULL ||
        strstr(names, "n4") == NULL)
      fail_msg("lean's fk%d served by %s", k, names);
  }
  rc = run_cli(ns[1].port, out, sizeof out, "-k far get fk0 -c LOCAL_QUORUM");
  show("chorus -k far get fk0 -c LOCAL_QUORUM (through n1, of dc1)", out);
  assert_int_equal(rc, 1);
  assert_non_null(strstr(out, "datacenter dc1 holds no replicas"));
  rc = run_cli(ns[1].port, out, sizeof out,
               "--dc dc2 -k far get fk0 -c LOCAL_QUORUM");
  show("chorus --dc dc2 -k far get fk0 -c LOCAL_QUORUM (through n1)", out);
  assert_int_equal(rc, 0);
  assert_non_null(strstr(out, "v0"));
}

static int teardown(void **state) {
  return group_teardown(state);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  if (find_cli() != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      TIMED(test_local_quorum_of_the_clients_datacenter),
      TIMED(test_unknown_datacenter),
      TIMED(test_keyspace_replication_per_datacenter),
  };
  int failed = cmocka_run_group_tests_name("node_dc", tests, NULL, teardown);
  return harness_finish(failed);
}
