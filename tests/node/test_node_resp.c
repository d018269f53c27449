/* test_node_resp.c: chorusd's RESP gateway (--resp, node/node_resp.c) on
 * a real 3-node cluster, driven by the tools Redis users have.
 *
 *   1. redis-cli (Debian redis-tools): a scripted session of every
 *      command docs/RESP.md lists, errors included, compared line by line.
 *   2. RESP on a raw socket: RESP3 after HELLO 3 (map, null, set forms),
 *      and a pipeline whose answers come back in order in one read.
 *   3. redis-py (python3-redis) and node-redis (node-redis): pipelines,
 *      MULTI refused, siblings read and resolved, WRONGTYPE, and
 *      reconnecting to another node after the first one is killed (the
 *      node is started again after each script).
 *   4. redis-benchmark -t ping,set,get,incr,sadd, with and without -P 16
 *      (a few hundred requests each: SADD of one growing set is what
 *      costs under ASan): exits 0, and the node counted no error reply
 *      during it.
 *   5. Hostile RESP, each on its own connection while another one keeps
 *      working: a *2147483647 header, a $4294967296 bulk, 10,000 nested
 *      arrays, a 1 MiB inline command (each answered "-ERR Protocol
 *      error" and closed), a client that pipelines and never reads (held
 *      by back-pressure); the node's RSS grows by less than 64 MiB.
 *
 * A case whose tool is not installed is skipped with a line saying so
 * (CI installs them: scripts/deps test). About 30 s under ASan. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "node_harness.h"

static int resp_port[3];
static char resp_arg[3][32];
static const char *resp_extra[3][3];

static void start_node(int i) {
  member_extra = resp_extra[i];
  start_member(&nodes[i], keyfile_a, nodes[0].port, "64");
  member_extra = NULL;
}

static bool resp_cluster_up;

/* ensure_resp_cluster: the three members with their --resp ports, started
 * by the first case (each case may run alone: CHORUS_TEST_FILTER). */
static void ensure_resp_cluster(void) {
  if (resp_cluster_up)
    return;
  resp_cluster_up = true;
  for (int i = 0; i < 3; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    node_init(&nodes[i], name);
    resp_port[i] = free_port();
    snprintf(resp_arg[i], sizeof resp_arg[i], "127.0.0.1:%d", resp_port[i]);
    resp_extra[i][0] = "--resp";
    resp_extra[i][1] = resp_arg[i];
    resp_extra[i][2] = NULL;
  }
  for (int i = 0; i < 3; i++)
    start_node(i);
  wait_alive(3, 30);
}

static bool have(const char *cmd) {
  char sh[256];
  snprintf(sh, sizeof sh, "%s >/dev/null 2>&1", cmd);
  return system(sh) == 0;
}

/* sh_out: runs @cmd (sh -c) with its output into @out; the exit status. */
static int sh_out(const char *cmd, char *out, size_t cap) {
  char path[400], full[2048];
  snprintf(path, sizeof path, "%s/sh.out", root);
  snprintf(full, sizeof full, "(%s) > %s 2>&1", cmd, path);
  int rc = system(full);
  read_file(path, out, cap);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* ------------------------------------------------------------------------
 * A raw RESP connection
 * ------------------------------------------------------------------------ */

/* read_until: reads from @fd into @buf until it holds @want bytes, the
 * peer closes, or @secs pass; the bytes read (NUL-terminated). *@eof says
 * whether the peer closed (or reset). */
static size_t read_until(int fd, char *buf, size_t cap, size_t want,
                         double secs, bool *eof) {
  size_t len = 0;
  double end = now_s() + secs;
  *eof = false;
  while (len < want && len + 1 < cap) {
    double left = end - now_s();
    if (left <= 0)
      break;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
      continue;
    ssize_t k = recv(fd, buf + len, cap - 1 - len, 0);
    if (k <= 0) {
      *eof = true;
      break;
    }
    len += (size_t)k;
  }
  buf[len] = '\0';
  return len;
}

/* exchange: sends @req on a new connection to @port and reads @want bytes
 * of answer, which must be @expect exactly. */
static void exchange(int fd, const char *req, const char *expect) {
  assert_int_equal(write_all(fd, req, strlen(req)), 0);
  char buf[4096];
  bool eof;
  size_t n = read_until(fd, buf, sizeof buf, strlen(expect), 10, &eof);
  if (n != strlen(expect) || memcmp(buf, expect, n) != 0)
    fail_msg("sent %s: got \"%s\", want \"%s\"", req, buf, expect);
}

/* still_serves: a fresh connection to @port sets and reads a key. */
static void still_serves(int port, const char *what) {
  static int round;
  int fd = tcp_connect(port);
  if (fd < 0)
    fail_msg("after %s: cannot connect", what);
  char req[128], want[64];
  snprintf(req, sizeof req, "SET alive:%d v%d\r\nGET alive:%d\r\n", round,
           round, round);
  int vlen = snprintf(want, sizeof want, "v%d", round);
  char expect[128];
  snprintf(expect, sizeof expect, "+OK\r\n$%d\r\n%s\r\n", vlen, want);
  round++;
  exchange(fd, req, expect);
  close(fd);
}

/* hostile: sends @len bytes of @req (send errors ignored: the node may
 * close before it has all), and expects the protocol error naming @why,
 * then the close, within 10 s. */
static void hostile(int port, const void *req, size_t len, const char *why) {
  int fd = tcp_connect(port);
  assert_true(fd >= 0);
  const char *p = req;
  size_t off = 0;
  while (off < len) {
    ssize_t k = send(fd, p + off, len - off, MSG_NOSIGNAL);
    if (k <= 0)
      break;
    off += (size_t)k;
  }
  char buf[512];
  bool eof = false;
  read_until(fd, buf, sizeof buf, sizeof buf, 10, &eof);
  close(fd);
  if (!eof)
    fail_msg("%s: the connection stayed open", why);
  /* A reset may eat the answer when the node closed while the client was
   * still sending (the 1 MiB line); otherwise the answer is there. */
  if (buf[0] && (strncmp(buf, "-ERR Protocol error: ", 21) != 0 ||
                 strstr(buf, why) == NULL))
    fail_msg("%s: got \"%s\"", why, buf);
  still_serves(port, why);
}

/* ------------------------------------------------------------------------
 * Cases
 * ------------------------------------------------------------------------ */

/* The session: each command, then the lines redis-cli prints for its
 * answer when its output is not a terminal. An error is its line then
 * an empty one. CHORUS.PUT and CHORUS.SIBLINGS answer binary contexts,
 * which redis-cli prints raw: the redis-py script checks them; redis-cli
 * ends at QUIT without printing its answer: the raw case checks it. */
static const char *const session[][2] = {
    {"PING", "PONG"},
    {"PING hello", "hello"},
    {"ECHO \"two words\"", "two words"},
    {"SELECT 0", "OK"},
    {"SELECT 1", "ERR only database 0: name a keyspace with CHORUS.KEYSPACE "
                 "NAME\n"},
    {"CHORUS.KEYSPACE default", "OK"},
    {"CHORUS.KEYSPACE other",
     "ERR no keyspace named other (chorus keyspace list)\n"},
    {"AUTH secret", "ERR AUTH <password> called without any password "
                    "configured for the default user: chorus has no users "
                    "yet\n"},
    {"CLIENT SETNAME cli", "OK"},
    {"CLIENT GETNAME", "cli"},
    {"CLIENT SETINFO lib-name x", "OK"},
    {"CLIENT KILL x", "ERR unknown subcommand or wrong number of arguments "
                      "for 'KILL'. chorus serves CLIENT ID, GETNAME, "
                      "SETNAME, SETINFO\n"},
    {"COMMAND COUNT", "39"},
    {"CHORUS.CONSISTENCY", "DEFAULT\nDEFAULT"},
    {"CHORUS.CONSISTENCY QUORUM ALL", "OK"},
    {"CHORUS.CONSISTENCY", "QUORUM\nALL"},
    {"CHORUS.CONSISTENCY 2 TWO", "OK"},
    {"CHORUS.CONSISTENCY MANY ONE",
     "ERR usage: CHORUS.CONSISTENCY READ WRITE, each a level (ONE, TWO, "
     "THREE, QUORUM, ALL, LOCAL_ONE, LOCAL_QUORUM, EACH_QUORUM, DEFAULT) or "
     "a replica count\n"},
    {"CHORUS.CONSISTENCY QUORUM QUORUM", "OK"},
    {"GET s:k", ""},
    {"SET s:k v1", "OK"},
    {"GET s:k", "v1"},
    {"SET s:k v2 GET", "v1"},
    {"GETSET s:k v3", "v2"},
    {"SET s:k v4 KEEPTTL", "OK"},
    {"GET s:k", "v4"},
    {"SET s:k v NX",
     "ERR SET NX and XX need compare-and-set, which chorus does not have "
     "yet\n"},
    {"SET s:k v XX",
     "ERR SET NX and XX need compare-and-set, which chorus does not have "
     "yet\n"},
    {"SET s:k v EX 10", "ERR SET EX/PX: RESP keys are LWW registers, which "
                        "have no time to live in chorus yet\n"},
    {"SET s:k v PX 10", "ERR SET EX/PX: RESP keys are LWW registers, which "
                        "have no time to live in chorus yet\n"},
    {"SET s:k v BOGUS", "ERR syntax error\n"},
    {"MSET s:m1 a s:m2 b", "OK"},
    {"MSET s:m1", "ERR wrong number of arguments for 'mset' command\n"},
    {"INCR s:c", "1"},
    {"MGET s:m1 s:m2 s:none s:c", "a\nb\n\n"},
    {"DEL s:m1 s:none", "1"},
    {"EXISTS s:m1 s:m2 s:k s:c", "3"},
    {"INCRBY s:c 10", "11"},
    {"DECR s:c", "10"},
    {"DECRBY s:c 5", "5"},
    {"INCRBY s:c x", "ERR value is not an integer or out of range\n"},
    {"GET s:c", "5"},
    {"SADD s:set a b a", "2"},
    {"SADD s:set b c", "1"},
    {"SMEMBERS s:set", "a\nb\nc"},
    {"SISMEMBER s:set a", "1"},
    {"SISMEMBER s:set z", "0"},
    {"SCARD s:set", "3"},
    {"SREM s:set a z", "1"},
    {"SCARD s:set", "2"},
    {"SADD s:k x",
     "WRONGTYPE Operation against a key holding the wrong kind of value\n"},
    {"INCR s:k",
     "WRONGTYPE Operation against a key holding the wrong kind of value\n"},
    {"GET s:set",
     "WRONGTYPE Operation against a key holding the wrong kind of value\n"},
    {"EXPIRE s:k 10", "ERR RESP keys are LWW registers, which have no time "
                      "to live in chorus yet (TTL exists for kv keys through "
                      "the native API only)\n"},
    {"TTL s:k", "ERR RESP keys are LWW registers, which have no time to live "
                "in chorus yet (TTL exists for kv keys through the native API "
                "only)\n"},
    {"PERSIST s:k", "ERR RESP keys are LWW registers, which have no time to "
                    "live in chorus yet (TTL exists for kv keys through the "
                    "native API only)\n"},
    /* Keyspace rcache (created by the case first): the same key name, a
     * value of its own; back in default, default's value. */
    {"CHORUS.KEYSPACE rcache", "OK"},
    {"GET s:k", ""},
    {"SET s:k in-rcache", "OK"},
    {"GET s:k", "in-rcache"},
    {"CHORUS.KEYSPACE default", "OK"},
    {"GET s:k", "v4"},
    {"MULTI", "ERR chorus has no transactions: MULTI, EXEC, DISCARD and "
              "WATCH are refused; each command is its own quorum "
              "operation\n"},
    {"GET", "ERR wrong number of arguments for 'get' command\n"},
    {"FLUSHALL",
     "ERR unknown command 'FLUSHALL', with args beginning with: \n"},
};

static void test_redis_cli_session(void **state) {
  (void)state;
  ensure_resp_cluster();
  if (!have("command -v redis-cli")) {
    show("skipped", "redis-cli is not installed (Debian redis-tools)");
    skip();
  }
  char cmd[512], out[16384];
  /* Writes are refused while the new cluster's gossip settles. */
  double end = now_s() + 20;
  for (;;) {
    snprintf(cmd, sizeof cmd, "redis-cli -p %d SET s:ready 1", resp_port[0]);
    if (sh_out(cmd, out, sizeof out) == 0 && strcmp(out, "OK\n") == 0)
      break;
    if (now_s() > end)
      fail_msg("no write through RESP within 20 s: %s", out);
    sleep_ms(200);
  }
  /* The session's keyspace, known to the node it talks to. */
  assert_int_equal(run_cli(nodes[0].port, out, sizeof out,
                           "keyspace create rcache --type any"),
                   0);
  for (end = now_s() + 10;
       run_cli(nodes[1].port, out, sizeof out, "keyspace list rcache") != 0;
       sleep_ms(100))
    if (now_s() > end)
      fail_msg("n1 does not list keyspace rcache: %s", out);
  char script[400], want[16384] = "";
  snprintf(script, sizeof script, "%s/session.txt", root);
  FILE *f = fopen(script, "w");
  assert_non_null(f);
  size_t nlines = sizeof session / sizeof session[0];
  for (size_t i = 0; i < nlines; i++) {
    fprintf(f, "%s\n", session[i][0]);
    strcat(want, session[i][1]);
    strcat(want, "\n");
  }
  fclose(f);
  snprintf(cmd, sizeof cmd, "redis-cli -p %d < %s", resp_port[1], script);
  int rc = sh_out(cmd, out, sizeof out);
  /* Line by line. */
  const char *g = out, *w = want;
  int line = 1;
  while (*w) {
    const char *ge = strchr(g, '\n'), *we = strchr(w, '\n');
    if (ge == NULL || we == NULL)
      break;
    if (ge - g != we - w || memcmp(g, w, (size_t)(we - w)) != 0) {
      show("redis-cli printed", out);
      fail_msg("line %d: got \"%.*s\", want \"%.*s\"", line, (int)(ge - g), g,
               (int)(we - w), w);
    }
    g = ge + 1;
    w = we + 1;
    line++;
  }
  if (*w || *g) {
    show("redis-cli printed", out);
    show("expected", want);
    fail_msg("the output ends at line %d unlike the expected", line);
  }
  assert_int_equal(rc, 0);
  snprintf(cmd, sizeof cmd, "redis-cli -p %d INFO", resp_port[2]);
  assert_int_equal(sh_out(cmd, out, sizeof out), 0);
  static const char *const sections[] = {
      "# Server",   "# Clients",      "# Stats",
      "# Keyspace", "redis_version:", "connected_clients:"};
  for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
    if (strstr(out, sections[i]) == NULL)
      fail_msg("INFO lacks %s: %s", sections[i], out);
}

static void test_raw_resp3_and_order(void **state) {
  (void)state;
  ensure_resp_cluster();
  int fd = tcp_connect(resp_port[0]);
  assert_true(fd >= 0);
  /* RESP2 first: a null bulk; then RESP3's null, map and set. */
  exchange(fd, "GET r3:none\r\n", "$-1\r\n");
  char buf[1024];
  bool eof;
  /* A command answers in the protocol of its arrival, though HELLO 3
   * behind it in the pipeline is answered first. */
  static const char get_hello[] = "GET r3:none\r\nHELLO 3\r\n";
  assert_int_equal(write_all(fd, get_hello, sizeof get_hello - 1), 0);
  read_until(fd, buf, sizeof buf, 9, 10, &eof);
  if (strncmp(buf, "$-1\r\n%7\r\n", 9) != 0)
    fail_msg("GET then HELLO 3: %s", buf);
  sleep_ms(100);
  read_until(fd, buf, sizeof buf, sizeof buf, 0.2, &eof); /* the rest */
  exchange(fd, "GET r3:none\r\n", "_\r\n");
  exchange(fd, "SADD r3:s x\r\nSMEMBERS r3:s\r\n", ":1\r\n~1\r\n$1\r\nx\r\n");
  exchange(fd, "HELLO 4\r\n", "-NOPROTO unsupported protocol version\r\n");
  /* A pipeline in one write: writes, reads and a counter, answered in
   * the order asked though each read may finish before the write ahead. */
  exchange(fd,
           "*3\r\n$3\r\nSET\r\n$4\r\nr3:a\r\n$1\r\n1\r\nGET r3:a\r\n"
           "INCR r3:c\r\nSET r3:a 2\r\nGET r3:a\r\nINCR r3:c\r\nPING\r\n"
           "GET r3:a\r\n",
           "+OK\r\n$1\r\n1\r\n:1\r\n+OK\r\n$1\r\n2\r\n:2\r\n+PONG\r\n"
           "$1\r\n2\r\n");
  exchange(fd, "QUIT\r\n", "+OK\r\n");
  read_until(fd, buf, sizeof buf, 1, 5, &eof);
  assert_true(eof);
  close(fd);
}

/* client_script: runs @runner SOURCE_DIR/@script against the cluster
 * (keys prefixed @what): its node n2 is killed half way, and started
 * again after. */
static void client_script(const char *what, const char *runner,
                          const char *script) {
  char cmd[1024], out[16384];
  snprintf(cmd, sizeof cmd, "%s %s/%s %s %d %d %d %d", runner, SOURCE_DIR,
           script, what, (int)nodes[2].pid, resp_port[2], resp_port[0],
           resp_port[1]);
  int rc = sh_out(cmd, out, sizeof out);
  show(what, out);
  assert_int_equal(rc, 0);
  assert_non_null(strstr(out, "all ok"));
  assert_true(wait_exit(&nodes[2], 10) != -1);
  start_node(2);
  wait_alive(3, 30);
}

static void test_redis_py(void **state) {
  (void)state;
  ensure_resp_cluster();
  if (!have("/usr/bin/python3 -c 'import redis'")) {
    show("skipped", "redis-py is not installed (Debian python3-redis)");
    skip();
  }
  client_script("py", "/usr/bin/python3", "resp_redis_py.py");
}

static void test_node_redis(void **state) {
  (void)state;
  ensure_resp_cluster();
  if (!have("NODE_PATH=/usr/share/nodejs node -e 'require(\"redis\")'")) {
    show("skipped", "node-redis is not installed (Debian node-redis)");
    skip();
  }
  client_script("js", "NODE_PATH=/usr/share/nodejs node", "resp_node_redis.js");
}

static int64_t error_replies(int port) {
  char cmd[256], out[8192];
  snprintf(cmd, sizeof cmd, "redis-cli -p %d INFO stats", port);
  if (sh_out(cmd, out, sizeof out) != 0)
    return -1;
  const char *p = strstr(out, "total_error_replies:");
  return p ? strtoll(p + 20, NULL, 10) : -1;
}

static void test_redis_benchmark(void **state) {
  (void)state;
  ensure_resp_cluster();
  if (!have("command -v redis-benchmark")) {
    show("skipped", "redis-benchmark is not installed (Debian redis-tools)");
    skip();
  }
  int64_t before = error_replies(resp_port[1]);
  assert_true(before >= 0);
  char cmd[512], out[16384];
  for (int pipe = 0; pipe < 2; pipe++) {
    snprintf(cmd, sizeof cmd,
             "redis-benchmark -p %d -t ping,set,get,incr,sadd -n %d -c 10 "
             "-r 1000 -q %s",
             resp_port[1], pipe ? 800 : 400, pipe ? "-P 16" : "");
    int rc = sh_out(cmd, out, sizeof out);
    show(pipe ? "redis-benchmark -P 16" : "redis-benchmark", out);
    assert_int_equal(rc, 0);
    if (strstr(out, "rror") && !strstr(out, "WARNING: Could not fetch"))
      fail_msg("redis-benchmark reported an error");
    static const char *const tests[] = {"PING_INLINE", "PING_MBULK", "SET",
                                        "GET",         "INCR",       "SADD"};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
      char want[32];
      snprintf(want, sizeof want, "%s: ", tests[i]);
      if (strstr(out, want) == NULL)
        fail_msg("no %s result", tests[i]);
    }
  }
  /* Every answer was a value, not an error. */
  assert_int_equal(error_replies(resp_port[1]), before);
}

static void test_hostile_resp(void **state) {
  (void)state;
  ensure_resp_cluster();
  int port = resp_port[0];
  still_serves(port, "the start");
  long rss0 = rss_kb(nodes[0].pid);
  assert_true(rss0 > 0);
  hostile(port, "*2147483647\r\n", 13, "invalid multibulk length");
  hostile(port, "*1\r\n$4294967296\r\n", 18, "invalid bulk length");
  char *big = malloc(1 << 20);
  assert_non_null(big);
  for (size_t i = 0; i + 4 <= 40000; i += 4)
    memcpy(big + i, "*1\r\n", 4);
  hostile(port, big, 40000, "expected '$', got '*'");
  memset(big, 'a', 1 << 20);
  hostile(port, big, 1 << 20, "too big inline request");
  /* A client that pipelines and never reads: GETs until its sends block
   * for a second (the node stopped reading it), while another client
   * works. Each GET answers a 60,000-byte value, so the replies, not the
   * node's speed, fill the kernel's buffers and then --out-limit within a
   * few hundred requests (with a nil reply the bound was tens of MB of
   * requests, which an ASan node did not always reach in time). */
  int setter = tcp_connect(port);
  assert_true(setter >= 0);
  static const char set_head[] = "*3\r\n$3\r\nSET\r\n$7\r\nheavy:0\r\n"
                                 "$60000\r\n";
  assert_int_equal(write_all(setter, set_head, sizeof set_head - 1), 0);
  memset(big, 'v', 60000);
  memcpy(big + 60000, "\r\n", 2);
  assert_int_equal(write_all(setter, big, 60002), 0);
  char ok[8];
  bool eof;
  assert_int_equal(read_until(setter, ok, sizeof ok, 5, 10, &eof), 5);
  assert_memory_equal(ok, "+OK\r\n", 5);
  close(setter);
  int fd = tcp_connect(port);
  assert_true(fd >= 0);
  assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
  static const char get[] = "GET heavy:0\r\n";
  for (size_t i = 0; i + sizeof get - 1 <= 65536; i += sizeof get - 1)
    memcpy(big + i, get, sizeof get - 1);
  size_t chunk = (65536 / (sizeof get - 1)) * (sizeof get - 1);
  double last = now_s(), end = now_s() + 20;
  uint64_t sent = 0;
  while (now_s() - last < 1.0 && now_s() < end) {
    ssize_t k = send(fd, big, chunk, MSG_NOSIGNAL);
    if (k > 0) {
      sent += (uint64_t)k;
      last = now_s();
    } else {
      sleep_ms(20);
    }
  }
  char line[128];
  snprintf(line, sizeof line, "%" PRIu64 " bytes of GETs sent unread", sent);
  show("never reads", line);
  if (now_s() >= end)
    fail_msg("the node kept reading a client that never reads");
  still_serves(port, "a client that never reads");
  still_serves(resp_port[1], "a client that never reads (n1)");
  long rss1 = rss_kb(nodes[0].pid);
  close(fd);
  free(big);
  snprintf(line, sizeof line, "node RSS %ld kB before, %ld kB after", rss0,
           rss1);
  show("memory", line);
  if (rss1 - rss0 > 64 * 1024)
    fail_msg("the node grew by %ld kB", rss1 - rss0);
  still_serves(port, "the end");
}

static int teardown(void **state) {
  return group_teardown(state);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0 || find_cli() != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      TIMED(test_redis_cli_session), TIMED(test_raw_resp3_and_order),
      TIMED(test_redis_py),          TIMED(test_node_redis),
      TIMED(test_redis_benchmark),   TIMED(test_hostile_resp),
  };
  int failed = cmocka_run_group_tests_name("node_resp", tests, NULL, teardown);
  return harness_finish(failed);
}
