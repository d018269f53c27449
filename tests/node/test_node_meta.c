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
 *   0. keyspaces (issue 21, the metadata only): KEYSPACE through n0 creates
 *      one, every node lists it within seconds; a second CREATE is EEXIST,
 *      changing a replication ENOTSUP, a bad name EINVAL, each with its
 *      reason; ALTER keeps the id and refuses another type; DROP and
 *      CREATE again give a new id; after test 2 kills every node, the
 *      keyspaces are still listed from disk.
 *  0b. keyspace keys: one key name in three keyspaces (the CLI's -k, through
 *      every node); the type, sibling-cap, TTL and unknown-keyspace rules;
 *      a keyspace dropped and created again is empty.
 *  0d. a keyspace's own replication: keyspaces solo (1 replica) and pair
 *      (2) beside the cluster's 3: a traced read at ALL of each key, via
 *      each node, is served by exactly 1, 2 and 3 nodes, the same ones;
 *      with solo's one replica of a key SIGSTOPped its read and write fail
 *      and pair's still reads; an ALTER of the replication is refused;
 *      once both are dropped, the nodes delete their keys.
 *  0c. users: add (password from CHORUS_PASSWORD), grant, revoke, passwd,
 *      drop through the CLI on every node; a keyspace's drop takes its
 *      grants; no answer carries a verifier.
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

/* The id of keyspace "orders" test 0 made (0: it did not run). */
static uint32_t ks_orders_id;

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
 * 0: keyspaces
 * ------------------------------------------------------------------------ */

/* One KEYSPACE record (wire.h, KEYSPACE_REPLY), decoded. */
struct ks_row {
  char name[48];
  uint32_t id;
  uint8_t type;
  uint64_t ttl_ms;
};

/* ks_call: KEYSPACE @op of @name through @port; 0 and the rows (at most
 * 8) on KEYSPACE_REPLY, else the error code (its text into @err). */
static int ks_call(int port, uint8_t op, const char *name, uint8_t type,
                   const char *repl, uint64_t ttl_ms, struct ks_row *rows,
                   size_t *nrows, char *err, size_t errcap) {
  int fd = client_open(port);
  assert_true(fd >= 0);
  static uint64_t next = 1;
  struct wire_msg m = {.type = WIRE_KEYSPACE, .request_id = next++};
  m.keyspace = (struct wire_keyspace){
      .op = op,
      .name = {(const uint8_t *)name, strlen(name)},
      .type = type,
      .replication = {(const uint8_t *)repl, strlen(repl)},
      .ttl_ms = ttl_ms};
  struct reply r;
  assert_int_equal(call(fd, &m, &r), 0);
  int rc = 0;
  if (nrows != NULL)
    *nrows = 0;
  if (r.m.type == WIRE_ERROR) {
    rc = r.m.error.code;
    snprintf(err, errcap, "%.*s", (int)r.m.error.text.len,
             (const char *)r.m.error.text.ptr);
  } else {
    assert_int_equal(r.m.type, WIRE_KEYSPACE_REPLY);
    const struct wire_bytes_list *e = &r.m.keyspace_reply.entries;
    for (size_t i = 0; i < e->n && nrows != NULL && *nrows < 8; i++) {
      const uint8_t *p = e->items[i].ptr;
      assert_true(e->items[i].len >= WIRE_KEYSPACE_RECORD_MIN);
      struct ks_row *k = &rows[(*nrows)++];
      k->id = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
              (uint32_t)p[2] << 8 | p[3];
      k->type = p[4];
      k->ttl_ms = 0;
      for (int b = 0; b < 8; b++)
        k->ttl_ms = k->ttl_ms << 8 | p[7 + b];
      size_t nl = p[23];
      assert_true(nl < sizeof k->name &&
                  e->items[i].len ==
                      WIRE_KEYSPACE_RECORD_MIN + nl + p[24 + nl]);
      if (nl >= sizeof k->name) /* (asserted: a bound for the compiler) */
        nl = sizeof k->name - 1;
      memcpy(k->name, p + 24, nl);
      k->name[nl] = '\0';
    }
  }
  reply_free(&r);
  close(fd);
  return rc;
}

/* listed_everywhere: waits until every running node lists keyspace @name
 * with id @id (0: not at all); fails after 10 s. */
static void listed_everywhere(const char *name, uint32_t id) {
  for (double end = now_s() + 10;; sleep_ms(100)) {
    int ok = 0, running = 0;
    for (int i = 0; i < 3; i++) {
      if (nodes[i].pid <= 0)
        continue;
      running++;
      struct ks_row rows[8];
      size_t n = 0;
      char err[256];
      int rc = ks_call(nodes[i].port, WIRE_KS_LIST, name, 0, "", 0, rows, &n,
                       err, sizeof err);
      ok += id == 0 ? rc == CHORUS_ENOTFOUND
                    : rc == 0 && n == 1 && rows[0].id == id &&
                          strcmp(rows[0].name, name) == 0;
    }
    if (ok == running)
      return;
    if (now_s() > end)
      fail_msg("keyspace %s (id %" PRIu32 ") not listed by every node", name,
               id);
  }
}

static void test_keyspaces(void **state) {
  (void)state;
  ensure_cluster();
  int port = nodes[0].port;
  struct ks_row rows[8];
  size_t n;
  char err[256];
  assert_int_equal(ks_call(port, WIRE_KS_CREATE, "orders", 1 /* kv */, "",
                           60000, rows, &n, err, sizeof err),
                   0);
  assert_true(n >= 1);
  uint32_t id = 0;
  for (size_t i = 0; i < n && i < 8; i++)
    if (strcmp(rows[i].name, "orders") == 0)
      id = rows[i].id;
  assert_true(id > 0);
  listed_everywhere("orders", id);
  /* Refusals, each with its reason. */
  assert_int_equal(ks_call(port, WIRE_KS_CREATE, "orders", 1, "", 0, NULL, NULL,
                           err, sizeof err),
                   CHORUS_EEXIST);
  assert_non_null(strstr(err, "exists"));
  assert_int_equal(ks_call(port, WIRE_KS_CREATE, "wide", 1, "2", 0, NULL, NULL,
                           err, sizeof err),
                   0);
  assert_int_equal(ks_call(port, WIRE_KS_ALTER, "wide", 1, "1", 0, NULL, NULL,
                           err, sizeof err),
                   CHORUS_ENOTSUP);
  assert_non_null(strstr(err, "cannot change"));
  assert_int_equal(ks_call(port, WIRE_KS_DROP, "wide", 0, "", 0, NULL, NULL,
                           err, sizeof err),
                   0);
  assert_int_equal(ks_call(port, WIRE_KS_CREATE, "bad name", 1, "", 0, NULL,
                           NULL, err, sizeof err),
                   CHORUS_EINVAL);
  assert_non_null(strstr(err, "letters"));
  assert_int_equal(ks_call(port, WIRE_KS_CREATE, "x", 1, "dc9:0", 0, NULL, NULL,
                           err, sizeof err),
                   CHORUS_EINVAL);
  /* Alter through another node: same id, new TTL; not another type. */
  assert_int_equal(ks_call(nodes[1].port, WIRE_KS_ALTER, "orders", 1, "",
                           120000, rows, &n, err, sizeof err),
                   0);
  for (double end = now_s() + 10;; sleep_ms(100)) {
    assert_int_equal(ks_call(nodes[2].port, WIRE_KS_LIST, "orders", 0, "", 0,
                             rows, &n, err, sizeof err),
                     0);
    if (n == 1 && rows[0].ttl_ms == 120000 && rows[0].id == id)
      break;
    if (now_s() > end)
      fail_msg("the ALTER did not reach n2");
  }
  assert_int_equal(ks_call(port, WIRE_KS_ALTER, "orders", 3 /* counter */, "",
                           0, NULL, NULL, err, sizeof err),
                   CHORUS_EINVAL);
  assert_non_null(strstr(err, "cannot change"));
  /* Drop, then create again: a new keyspace, a new id. */
  assert_int_equal(ks_call(port, WIRE_KS_DROP, "orders", 0, "", 0, NULL, NULL,
                           err, sizeof err),
                   0);
  listed_everywhere("orders", 0);
  assert_int_equal(ks_call(port, WIRE_KS_DROP, "orders", 0, "", 0, NULL, NULL,
                           err, sizeof err),
                   CHORUS_ENOTFOUND);
  assert_int_equal(ks_call(port, WIRE_KS_CREATE, "orders", 2 /* lww */, "", 0,
                           rows, &n, err, sizeof err),
                   0);
  uint32_t id2 = 0;
  for (size_t i = 0; i < n && i < 8; i++)
    if (strcmp(rows[i].name, "orders") == 0)
      id2 = rows[i].id;
  assert_true(id2 > id);
  listed_everywhere("orders", id2);
  printf("# keyspace orders: id %" PRIu32 ", dropped, created again as id "
         "%" PRIu32 "; listed by every node\n",
         id, id2);
  ks_orders_id = id2;
  /* The CLI: create, list (table and JSON), a refusal's exit status and
   * reason, alter keeping the type, drop. */
  char out[4096];
  assert_int_equal(run_cli(nodes[1].port, out, sizeof out,
                           "keyspace create sessions --type lww --ttl 60 "
                           "-w QUORUM --siblings-warn 5 --siblings-max 9"),
                   0);
  show("chorus keyspace create sessions --type lww --ttl 60 -w QUORUM ...",
       out);
  assert_non_null(strstr(out, "sessions"));
  assert_non_null(strstr(out, "lww"));
  assert_non_null(strstr(out, "QUORUM"));
  assert_int_equal(run_cli(nodes[2].port, out, sizeof out,
                           "keyspace create sessions --type kv"),
                   1);
  assert_non_null(strstr(out, "exists"));
  assert_int_equal(run_cli(nodes[2].port, out, sizeof out,
                           "keyspace create wide --replicas dc1:0"),
                   1);
  assert_non_null(strstr(out, "factor"));
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out,
                           "keyspace alter sessions --ttl 30"),
                   0);
  for (double end = now_s() + 10;; sleep_ms(100)) {
    assert_int_equal(run_cli(nodes[2].port, out, sizeof out,
                             "--json keyspace list sessions"),
                     0);
    if (strstr(out, "\"type\": \"lww\"") != NULL &&
        strstr(out, "\"ttl_ms\": 30000") != NULL &&
        strstr(out, "\"siblings_max\": 9") != NULL) /* the rest kept */
      break;
    if (now_s() > end)
      fail_msg("the CLI's alter did not reach n2: %s", out);
  }
  show("chorus --json keyspace list sessions (after alter --ttl 30)", out);
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out, "keyspace list"), 0);
  show("chorus keyspace list", out);
  assert_int_equal(
      run_cli(nodes[0].port, out, sizeof out, "keyspace drop sessions"), 0);
  assert_int_equal(
      run_cli(nodes[0].port, out, sizeof out, "keyspace create x --bogus"), 2);
}

/* ks_everywhere: waits until every running node lists keyspace @name. */
static void ks_everywhere(const char *name) {
  char out[4096];
  for (int i = 0; i < 3; i++)
    for (double end = now_s() + 10;; sleep_ms(100)) {
      if (run_cli(nodes[i].port, out, sizeof out, "keyspace list %s", name) ==
          0)
        break;
      if (now_s() > end)
        fail_msg("n%d does not list keyspace %s: %s", i, name, out);
    }
}

/* 0b: requests naming a keyspace (issue 21), through the CLI on every
 * node: one key name in three keyspaces holds three values; a keyspace
 * holds its type only; its sibling cap, default TTL and levels apply; a
 * keyspace nobody created is refused; a keyspace dropped and created again
 * does not see the old one's keys. */
static void test_keyspace_keys(void **state) {
  (void)state;
  ensure_cluster();
  char out[4096];
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out,
                           "keyspace create carts --type kv --siblings-max 2"),
                   0);
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out,
                           "keyspace create tally --type counter -w ALL"),
                   0);
  assert_int_equal(
      run_cli(nodes[0].port, out, sizeof out, "keyspace create brief --ttl 1"),
      0);
  ks_everywhere("carts");
  ks_everywhere("tally");
  ks_everywhere("brief");
  /* One name, three keyspaces, written and read through different nodes. */
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out, "put k0 plain"), 0);
  assert_int_equal(
      run_cli(nodes[1].port, out, sizeof out, "-k carts put k0 in-carts"), 0);
  assert_int_equal(
      run_cli(nodes[2].port, out, sizeof out, "-k default get k0 -c ALL"), 0);
  assert_non_null(strstr(out, "plain"));
  assert_null(strstr(out, "in-carts"));
  assert_int_equal(
      run_cli(nodes[0].port, out, sizeof out, "-k carts get k0 -c ALL"), 0);
  show("chorus -k carts get k0 -c ALL", out);
  assert_non_null(strstr(out, "in-carts"));
  assert_null(strstr(out, "plain"));
  /* The type rule: carts holds kv keys only, tally counters only. */
  assert_int_equal(
      run_cli(nodes[1].port, out, sizeof out, "-k carts incr k1 5"), 1);
  show("chorus -k carts incr k1 5", out);
  assert_non_null(strstr(out, "holds kv keys"));
  assert_int_equal(
      run_cli(nodes[1].port, out, sizeof out, "-k tally incr k0 5"), 0);
  assert_int_equal(run_cli(nodes[2].port, out, sizeof out, "-k tally get k0"),
                   0);
  assert_non_null(strstr(out, "5"));
  assert_int_equal(run_cli(nodes[2].port, out, sizeof out, "-k tally put k0 x"),
                   1);
  /* The sibling cap of carts: 2. A second blind put makes two siblings, a
   * third is refused and changes nothing. */
  assert_int_equal(
      run_cli(nodes[0].port, out, sizeof out, "-k carts put k2 a -c ALL"), 0);
  assert_int_equal(
      run_cli(nodes[1].port, out, sizeof out, "-k carts put k2 b -c ALL"), 0);
  assert_int_equal(
      run_cli(nodes[2].port, out, sizeof out, "-k carts put k2 c -c ALL"), 1);
  show("chorus -k carts put k2 c (a third sibling)", out);
  assert_non_null(strstr(out, "SIBLINGS"));
  assert_non_null(strstr(out, "more than 2 siblings (its keyspace's cap)"));
  assert_int_equal(
      run_cli(nodes[0].port, out, sizeof out, "-k carts get k2 -c ALL"), 0);
  assert_null(strstr(out, "\nc\n"));
  /* The default keyspace keeps the node's cap (100). */
  for (int i = 0; i < 3; i++)
    assert_int_equal(
        run_cli(nodes[i].port, out, sizeof out, "put k2 v%d -c ALL", i), 0);
  /* brief's default TTL: 1 s. */
  assert_int_equal(
      run_cli(nodes[0].port, out, sizeof out, "-k brief put k3 soon-gone"), 0);
  assert_int_equal(
      run_cli(nodes[1].port, out, sizeof out, "-k brief get k3 -c ALL"), 0);
  assert_non_null(strstr(out, "soon-gone"));
  sleep_ms(1600);
  assert_int_equal(
      run_cli(nodes[1].port, out, sizeof out, "-k brief get k3 -c ALL"), 0);
  assert_null(strstr(out, "soon-gone"));
  assert_non_null(strstr(out, "not found"));
  /* Locks have their own namespace, whatever keyspace is named. */
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out,
                           "-k carts lock acquire l1 --ttl 1000"),
                   2);
  assert_non_null(strstr(out, "lock namespace"));
  /* No such keyspace. */
  assert_int_equal(run_cli(nodes[2].port, out, sizeof out, "-k nosuch get k0"),
                   1);
  show("chorus -k nosuch get k0", out);
  assert_non_null(strstr(out, "no keyspace named nosuch"));
  /* Dropped and created again: a new keyspace, empty. */
  assert_int_equal(
      run_cli(nodes[0].port, out, sizeof out, "keyspace drop carts"), 0);
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out,
                           "keyspace create carts --type kv"),
                   0);
  ks_everywhere("carts");
  assert_int_equal(
      run_cli(nodes[1].port, out, sizeof out, "-k carts get k0 -c ALL"), 0);
  assert_null(strstr(out, "in-carts"));
  assert_non_null(strstr(out, "not found"));
  for (const char *k = "carts\0tally\0brief\0"; *k; k += strlen(k) + 1)
    assert_int_equal(
        run_cli(nodes[0].port, out, sizeof out, "keyspace drop %s", k), 0);
}

/* 0d: a keyspace's own replication (issue 21), on real processes: in the
 * 3-node cluster at N=3, keyspace solo has 1 replica and pair 2. Each key
 * of theirs is read at ALL with --trace through a node chosen per key, and
 * the replicas that served it are counted: 1, 2 and 3 (default), the same
 * nodes whichever node coordinates. Then the solo key's one replica is
 * SIGSTOPped: its read and write at ONE fail (never acknowledged on
 * another node), pair's key of the same name still reads at ONE, and once
 * it continues the value is back. An ALTER of the replication is refused
 * with its reason. Once both are dropped, the nodes delete their keys
 * (cleanup.deleted). */
static void test_keyspace_replication(void **state) {
  (void)state;
  ensure_cluster();
  char out[8192];
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out,
                           "keyspace create solo --replicas 1 --type kv"),
                   0);
  assert_int_equal(run_cli(nodes[1].port, out, sizeof out,
                           "keyspace create pair --replicas 2"),
                   0);
  ks_everywhere("solo");
  ks_everywhere("pair");
  assert_int_equal(run_cli(nodes[2].port, out, sizeof out, "keyspace list"), 0);
  show("chorus keyspace list (solo: 1 replica, pair: 2, the cluster: 3)", out);
  assert_int_equal(run_cli(nodes[2].port, out, sizeof out,
                           "keyspace alter solo --replicas 2"),
                   1);
  show("chorus keyspace alter solo --replicas 2", out);
  assert_non_null(strstr(out, "cannot change"));
  enum { KEYS = 12 };
  int solo_on[3] = {0};
  char solo_home[KEYS][32];
  for (int k = 0; k < KEYS; k++) {
    const char *ks[] = {"solo", "pair", "default"};
    for (int j = 0; j < 3; j++) {
      assert_int_equal(run_cli(nodes[(k + j) % 3].port, out, sizeof out,
                               "-k %s put pk%d v%d-%s -c ALL", ks[j], k, k,
                               ks[j]),
                       0);
      char first[128] = "";
      for (int via = 0; via < 3; via++) {
        assert_int_equal(run_cli(nodes[via].port, out, sizeof out,
                                 "--trace -k %s get pk%d -c ALL", ks[j], k),
                         0);
        char want[32];
        snprintf(want, sizeof want, "v%d-%s", k, ks[j]);
        assert_non_null(strstr(out, want));
        char names[128];
        int n = trace_replicas(out, names, sizeof names);
        if (n != j + 1)
          fail_msg("-k %s get pk%d via n%d: %d replicas served it (%s), "
                   "want %d:\n%s",
                   ks[j], k, via, n, names, j + 1, out);
        /* The same replicas whichever node coordinates. */
        if (via == 0)
          snprintf(first, sizeof first, "%s", names);
        for (char *w = names; *w;) {
          char *sp = strchr(w, ' ');
          if (sp)
            *sp = '\0';
          if (strstr(first, w) == NULL)
            fail_msg("pk%d in %s: served by %s via n%d, not among %s", k, ks[j],
                     w, via, first);
          w = sp ? sp + 1 : w + strlen(w);
        }
        if (j == 0 && via == 0) {
          snprintf(solo_home[k], sizeof solo_home[k], "%.31s", names);
          solo_on[names[1] - '0']++;
        }
      }
      if (k == 0)
        show(j == 0 ? "chorus --trace -k solo get pk0 -c ALL"
                    : (j == 1 ? "chorus --trace -k pair get pk0 -c ALL"
                              : "chorus --trace get pk0 -c ALL"),
             out);
    }
  }
  printf("# solo's keys per node: n0 %d, n1 %d, n2 %d\n", solo_on[0],
         solo_on[1], solo_on[2]);
  /* The one replica of solo's pk0 stopped: nothing else holds it. */
  int home = solo_home[0][1] - '0';
  int other = (home + 1) % 3;
  assert_int_equal(kill(nodes[home].pid, SIGSTOP), 0);
  int rc = run_cli(nodes[other].port, out, sizeof out,
                   "-k solo get pk0 -c ONE --timeout 500");
  show("(solo's replica of pk0 stopped) chorus -k solo get pk0 -c ONE", out);
  assert_int_not_equal(rc, 0);
  assert_null(strstr(out, "v0-solo"));
  rc = run_cli(nodes[other].port, out, sizeof out,
               "-k solo put pk0 changed -c ONE --timeout 500");
  show("(solo's replica of pk0 stopped) chorus -k solo put pk0 changed -c ONE",
       out);
  assert_int_not_equal(rc, 0);
  assert_int_equal(run_cli(nodes[other].port, out, sizeof out,
                           "-k pair get pk0 -c ONE --timeout 2000"),
                   0);
  assert_non_null(strstr(out, "v0-pair"));
  assert_int_equal(kill(nodes[home].pid, SIGCONT), 0);
  for (double end = now_s() + 10;; sleep_ms(200)) {
    rc = run_cli(nodes[other].port, out, sizeof out,
                 "-k solo get pk0 -c ONE --timeout 2000");
    if (rc == 0)
      break;
    if (now_s() > end)
      fail_msg("solo's pk0 unreadable after its replica continued: %s", out);
  }
  /* The write refused while it was stopped may or may not have applied
   * there (it may have reached the replica's socket): either value. */
  assert_true(strstr(out, "v0-solo") != NULL || strstr(out, "changed") != NULL);
  /* Dropped, their keys are collected: 12 of solo's, twice 12 of pair's
   * (cleanup.deleted summed over the nodes), within seconds. */
  int64_t deleted0 = 0;
  for (int i = 0; i < 3; i++)
    deleted0 += stat_of(nodes[i].port, "cleanup.deleted");
  for (const char *k = "solo\0pair\0"; *k; k += strlen(k) + 1)
    assert_int_equal(
        run_cli(nodes[0].port, out, sizeof out, "keyspace drop %s", k), 0);
  double t0 = now_s();
  for (int64_t deleted = 0;; sleep_ms(250)) {
    deleted = -deleted0;
    for (int i = 0; i < 3; i++)
      deleted += stat_of(nodes[i].port, "cleanup.deleted");
    if (deleted >= KEYS + 2 * KEYS) {
      printf("# solo and pair dropped: %" PRId64
             " of their objects deleted in %.1f s\n",
             deleted, now_s() - t0);
      break;
    }
    if (now_s() - t0 > 40)
      fail_msg("dropped keyspaces' keys not collected in 40 s: %" PRId64
               " of %d deleted",
               deleted, 3 * KEYS);
  }
}

/* 0c: users (issue 24: kept in the metadata, no login yet), through the
 * CLI: the password from CHORUS_PASSWORD (never argv), a verifier on the
 * wire and in the metadata (no answer carries one), grants by role and
 * keyspace, refusals with their reasons, a keyspace's drop taking its
 * grants, every node listing the same. */
static void test_users(void **state) {
  (void)state;
  ensure_cluster();
  char out[4096];
  setenv("CHORUS_PASSWORD", "correct horse battery staple", 1);
  assert_int_equal(
      run_cli(nodes[0].port, out, sizeof out, "user add ann --kdf 1:64"), 0);
  show("CHORUS_PASSWORD=... chorus user add ann --kdf 1:64", out);
  assert_non_null(strstr(out, "ann"));
  assert_int_equal(
      run_cli(nodes[1].port, out, sizeof out, "user add ann --kdf 1:64"), 1);
  assert_non_null(strstr(out, "exists"));
  assert_int_equal(
      run_cli(nodes[1].port, out, sizeof out, "user add 'b c' --kdf 1:64"), 1);
  assert_non_null(strstr(out, "user name"));
  assert_int_equal(
      run_cli(nodes[0].port, out, sizeof out, "keyspace create ukeys"), 0);
  ks_everywhere("ukeys");
  assert_int_equal(
      run_cli(nodes[1].port, out, sizeof out, "user grant ann write ukeys"), 0);
  assert_int_equal(
      run_cli(nodes[2].port, out, sizeof out, "user grant ann read"), 0);
  assert_int_equal(
      run_cli(nodes[2].port, out, sizeof out, "user grant ann root"), 2);
  assert_int_equal(
      run_cli(nodes[2].port, out, sizeof out, "user grant ann read nosuch"), 1);
  assert_non_null(strstr(out, "no keyspace named nosuch"));
  assert_int_equal(
      run_cli(nodes[2].port, out, sizeof out, "user revoke ann admin"), 1);
  assert_non_null(strstr(out, "holds no admin"));
  for (double end = now_s() + 10;; sleep_ms(100)) {
    assert_int_equal(
        run_cli(nodes[2].port, out, sizeof out, "--json user list ann"), 0);
    if (strstr(out, "\"role\": \"write\", \"keyspace\": \"ukeys\"") &&
        strstr(out, "\"role\": \"read\", \"keyspace\": null"))
      break;
    if (now_s() > end)
      fail_msg("n2 does not list ann's grants: %s", out);
  }
  show("chorus --json user list ann", out);
  assert_null(strstr(out, "key\":")); /* no verifier in an answer */
  assert_null(strstr(out, "salt"));
  /* Dropping ukeys takes its grant with it. */
  assert_int_equal(
      run_cli(nodes[0].port, out, sizeof out, "keyspace drop ukeys"), 0);
  for (double end = now_s() + 10;; sleep_ms(100)) {
    assert_int_equal(run_cli(nodes[1].port, out, sizeof out, "user list"), 0);
    if (strstr(out, "ukeys") == NULL && strstr(out, "read on *") != NULL)
      break;
    if (now_s() > end)
      fail_msg("ann keeps a grant on a dropped keyspace: %s", out);
  }
  show("chorus user list (after keyspace drop ukeys)", out);
  setenv("CHORUS_PASSWORD", "another one", 1);
  assert_int_equal(
      run_cli(nodes[0].port, out, sizeof out, "user passwd ann --kdf 1:64"), 0);
  assert_non_null(strstr(out, "read on *")); /* grants kept */
  unsetenv("CHORUS_PASSWORD");
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out, "user drop ann"), 0);
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out, "user drop ann"), 1);
  assert_non_null(strstr(out, "no user named ann"));
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
  /* The keyspaces came back from disk too. */
  if (ks_orders_id != 0)
    listed_everywhere("orders", ks_orders_id);
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
  /* The metadata serves from disk before the node's start barrier (its
   * epoch made durable) completes, and writes until then are refused as
   * "starting": wait for one W=1 write of a key m0 holds to pass. */
  for (int k = 0;; k++) {
    char key[16];
    snprintf(key, sizeof key, "probe%03d", k);
    if (put_with(fd, key, key, one) == 0)
      break;
    if (k == 200)
      fail_msg("m0 alone acknowledges no write");
    sleep_ms(20);
  }
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
      TIMED(test_keyspaces),
      TIMED(test_keyspace_keys),
      TIMED(test_keyspace_replication),
      TIMED(test_users),
      TIMED(test_leader_killed_new_leader_remove),
      TIMED(test_metadata_survives_restart_of_every_node),
      TIMED(test_lone_restart_acknowledges_only_what_it_places),
  };
  int failed =
      cmocka_run_group_tests_name("node_meta", tests, NULL, group_teardown);
  return harness_finish(failed);
}
