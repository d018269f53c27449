/* test_cli.c: the `chorus` command line run as a child process against the
 * fake node: argument parsing and usage errors (exit 2), text and JSON
 * output of every command, the get fallback to counters and sets, errors
 * (exit 1, message on stderr). The binary's path comes from $CHORUS_CLI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_server.h"
#include "wire.h"

#define CLUSTER "cli-cluster"

static struct fake_server *srv;

struct run {
  int status; /* exit code, or 128 + signal */
  char out[8192];
  char err[4096];
};

/* The file the next run_cli reads as standard input (NULL: inherited). */
static const char *stdin_from;

/* Runs the CLI with @args (NULL-terminated), -H and --cluster prepended,
 * with a 10 s bound. */
static void run_cli(struct run *r, bool with_host, const char *const *args) {
  const char *cli = getenv("CHORUS_CLI");
  assert_non_null(cli);
  const char *argv[64];
  int n = 0;
  argv[n++] = cli;
  if (with_host) {
    argv[n++] = "-H";
    argv[n++] = fake_addr(srv);
    argv[n++] = "--cluster";
    argv[n++] = CLUSTER;
  }
  for (int i = 0; args[i] != NULL; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  int po[2], pe[2];
  assert_int_equal(pipe(po), 0);
  assert_int_equal(pipe(pe), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(po[1], 1);
    dup2(pe[1], 2);
    close(po[0]);
    close(pe[0]);
    close(po[1]);
    close(pe[1]);
    if (stdin_from != NULL) {
      int in = open(stdin_from, O_RDONLY);
      if (in < 0)
        _exit(126);
      dup2(in, 0);
      close(in);
    }
    unsetenv("CHORUS_HOST");
    execv(cli, (char *const *)(uintptr_t)argv);
    _exit(127);
  }
  close(po[1]);
  close(pe[1]);
  memset(r, 0, sizeof *r);
  size_t no = 0, ne = 0;
  bool open_o = true, open_e = true;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (open_o || open_e) {
    struct pollfd p[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int rc = poll(p, 2, 200);
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (t1.tv_sec - t0.tv_sec > 10) {
      kill(pid, SIGKILL);
      break;
    }
    if (rc <= 0)
      continue;
    if (open_o && (p[0].revents & (POLLIN | POLLHUP))) {
      ssize_t k = read(po[0], r->out + no, sizeof r->out - 1 - no);
      if (k <= 0)
        open_o = false;
      else
        no += (size_t)k;
    }
    if (open_e && (p[1].revents & (POLLIN | POLLHUP))) {
      ssize_t k = read(pe[0], r->err + ne, sizeof r->err - 1 - ne);
      if (k <= 0)
        open_e = false;
      else
        ne += (size_t)k;
    }
  }
  close(po[0]);
  close(pe[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define RUN(r, host, ...)                                                      \
  do {                                                                         \
    static const char *const a_[] = {__VA_ARGS__, NULL};                       \
    run_cli((r), (host), a_);                                                  \
  } while (0)

/* RUN with arguments known only at run time. */
#define RUNV(r, host, ...)                                                     \
  run_cli((r), (host), (const char *const[]){__VA_ARGS__, NULL})

static void expect(const struct run *r, int status, const char *in_out) {
  if (r->status != status || (in_out && !strstr(r->out, in_out)))
    fail_msg("exit %d (want %d)\nstdout: %s\nstderr: %s", r->status, status,
             r->out, r->err);
}

/* The hex context printed by `get` (text mode). */
static void context_of(const struct run *r, char *ctx, size_t cap) {
  const char *p = strstr(r->out, "context: ");
  assert_non_null(p);
  p += 9;
  size_t n = strcspn(p, "\n");
  assert_true(n < cap);
  memcpy(ctx, p, n);
  ctx[n] = '\0';
}

/* write_file: @len bytes of @data into @path. */
static void write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
}

static int setup(void **state) {
  srv = fake_start(CLUSTER);
  return srv ? 0 : -1;
}

static int teardown(void **state) {
  fake_stop(srv);
  return 0;
}

static void test_usage(void **state) {
  struct run r;
  RUN(&r, false, "--help");
  expect(&r, 0, "usage: chorus");
  RUN(&r, false, "--version");
  expect(&r, 0, "chorus ");
  run_cli(&r, false, (const char *const[]){NULL});
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "no command"));
  RUN(&r, true, "frobnicate", "k");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "unknown command"));
  RUN(&r, true, "get");
  expect(&r, 2, NULL);
  RUN(&r, true, "get", "a", "b");
  expect(&r, 2, NULL);
  RUN(&r, true, "put", "k");
  expect(&r, 2, NULL);
  RUN(&r, true, "get", "k", "-c", "MOST");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "MOST"));
  RUN(&r, true, "get", "k", "-r", "65");
  expect(&r, 2, NULL);
  RUN(&r, true, "get", "k", "--bogus");
  expect(&r, 2, NULL);
  RUN(&r, true, "put", "k", "v", "--context", "xyz");
  expect(&r, 2, NULL);
  RUN(&r, true, "incr", "k", "zero");
  expect(&r, 2, NULL);
  RUN(&r, true, "get", "k", "-r");
  expect(&r, 2, NULL);
  RUN(&r, false, "-H", "nocolon", "get", "k");
  expect(&r, 2, NULL);
  RUN(&r, true, "status", "extra");
  expect(&r, 2, NULL);
  /* --ttl: seconds > 0 and at most ten years, for put only. */
  RUN(&r, true, "put", "k", "v", "--ttl", "-1");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "--ttl needs seconds"));
  RUN(&r, true, "put", "k", "v", "--ttl", "0");
  expect(&r, 2, NULL);
  RUN(&r, true, "put", "k", "v", "--ttl", "2x");
  expect(&r, 2, NULL);
  RUN(&r, true, "put", "k", "v", "--ttl", "315360001");
  expect(&r, 2, NULL);
  RUN(&r, true, "get", "k", "--ttl", "5");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "--ttl is for put"));
  /* --range: hex tokens START..END or TOKEN, for repair only. */
  static const char *const bad_ranges[] = {"",
                                           "..",
                                           "5..",
                                           "..5",
                                           "0x",
                                           "g",
                                           "1..2..3",
                                           "12345678901234567",
                                           "0x12345678901234567",
                                           "-1",
                                           "1 .. 2"};
  for (size_t i = 0; i < sizeof bad_ranges / sizeof *bad_ranges; i++) {
    RUNV(&r, true, "repair", "now", "--range", bad_ranges[i]);
    expect(&r, 2, NULL);
    assert_non_null(strstr(r.err, "is not START..END or TOKEN"));
  }
  RUN(&r, true, "repair", "status", "--range");
  expect(&r, 2, NULL);
  RUN(&r, true, "get", "k", "--range", "5");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "--range is for repair"));
  assert_int_equal(fake_requests(srv), 0); /* nothing reached the node */
}

/* The topology change commands' usage: refused before anything is sent
 * (what they do is tests/node/test_node_plan.c's, on real nodes). */
static void test_change_usage(void **state) {
  (void)state;
  struct run r;
  int sent = fake_requests(srv);
  RUN(&r, true, "cluster", "plan", "grow", "n4");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "cluster plan"));
  RUN(&r, true, "cluster", "plan", "join");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "plan", "decommission", "n1", "n2");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "plan", "decommission", "n1", "--dc", "dc2");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "--dc, --rack and --vnodes"));
  RUN(&r, true, "cluster", "plan", "join", "n4", "--vnodes", "65536");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "--vnodes needs a count"));
  RUN(&r, true, "cluster", "status", "--wait");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "--wait is for"));
  RUN(&r, true, "cluster", "join");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "wait", "n4");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "join", "n4", "--wait", "--wait-timeout", "0");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "--wait-timeout needs seconds"));
  RUN(&r, true, "cluster", "join", "n4", "--force");
  expect(&r, 2, NULL);
  RUN(&r, true, "get", "k", "--wait");
  expect(&r, 2, NULL);
  /* cluster key (issue 24): ids are hex, one each; --file and --show-key
   * only for install; a key file of 64 hex digits. */
  RUN(&r, true, "cluster", "key", "use");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "key", "use", "xyz");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "not a key id"));
  RUN(&r, true, "cluster", "key", "remove", "1", "2");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "key", "list", "--show-key");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "--file and --show-key"));
  RUN(&r, true, "get", "k", "--file", "x");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "key", "rotate");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "key", "install", "--file", "/nonexistent/k");
  expect(&r, 1, NULL);
  assert_int_equal(fake_requests(srv), sent);
}

static void test_put_get_context(void **state) {
  struct run r;
  RUN(&r, true, "put", "user", "ann", "-w", "2");
  expect(&r, 0, "ok\ncontext: ");
  RUN(&r, true, "put", "user", "bob", "-c", "quorum");
  expect(&r, 0, "ok");
  RUN(&r, true, "get", "user", "-r", "ONE");
  expect(&r, 0, "ann\nbob\ncontext: ");
  char ctx[64];
  context_of(&r, ctx, sizeof ctx);
  assert_int_equal(strlen(ctx), 16); /* 8 bytes, hex */
  RUN(&r, true, "--json", "get", "user");
  expect(&r, 0, NULL);
  char want[256];
  snprintf(want, sizeof want,
           "{\"found\":true,\"type\":\"kv\",\"values\":[\"ann\",\"bob\"],"
           "\"context\":\"%s\"}\n",
           ctx);
  assert_string_equal(r.out, want);
  /* Resolve the siblings with the context. */
  const char *args[] = {"put", "user", "cat", "--context", ctx, NULL};
  run_cli(&r, true, args);
  expect(&r, 0, "ok");
  RUN(&r, true, "get", "user");
  expect(&r, 0, "cat\ncontext: ");
  assert_null(strstr(r.out, "ann"));
  context_of(&r, ctx, sizeof ctx);
  const char *dargs[] = {"del", "user", "--context", ctx, NULL};
  run_cli(&r, true, dargs);
  expect(&r, 0, "ok");
  RUN(&r, true, "get", "user", "--json");
  expect(&r, 0, "{\"found\":false,\"type\":\"kv\",\"values\":[]");
  /* Without --context, del reads first and deletes what it saw (a node
   * refuses a delete with an empty context). */
  RUN(&r, true, "put", "user", "dan");
  expect(&r, 0, "ok");
  int sent = fake_requests(srv);
  RUN(&r, true, "del", "user");
  expect(&r, 0, "ok");
  assert_int_equal(fake_requests(srv), sent + 2); /* GET, DELETE */
  RUN(&r, true, "get", "user", "--json");
  expect(&r, 0, "{\"found\":false,\"type\":\"kv\",\"values\":[]");
  RUN(&r, true, "get", "never");
  expect(&r, 0, "context: \n");
  assert_non_null(strstr(r.err, "not found"));
}

static void test_json_escaping(void **state) {
  struct run r;
  RUN(&r, true, "put", "esc", "a\"b\\c\nd\te\x01 \xc3\xa9 \xff");
  expect(&r, 0, "ok");
  RUN(&r, true, "--json", "get", "esc");
  expect(&r, 0, "\"values\":[\"a\\\"b\\\\c\\nd\\te\\u0001 \xc3\xa9 \\u00ff\"]");
}

static void test_counter_and_set(void **state) {
  struct run r;
  RUN(&r, true, "incr", "hits");
  expect(&r, 0, "ok");
  RUN(&r, true, "incr", "hits", "5");
  expect(&r, 0, "ok");
  RUN(&r, true, "incr", "hits", "-2");
  expect(&r, 0, "ok");
  RUN(&r, true, "get", "hits");
  expect(&r, 0, NULL);
  assert_string_equal(r.out, "4\n");
  RUN(&r, true, "get", "hits", "--json");
  expect(&r, 0, NULL);
  assert_string_equal(r.out,
                      "{\"found\":true,\"type\":\"counter\",\"value\":4}\n");
  RUN(&r, true, "sadd", "tags", "red", "green", "blue");
  expect(&r, 0, "ok");
  RUN(&r, true, "srem", "tags", "green");
  expect(&r, 0, "ok");
  /* The members, then the context (the fake's sets have none: a real
   * node's are tested in test_cluster.c). */
  RUN(&r, true, "smembers", "tags");
  expect(&r, 0, NULL);
  assert_string_equal(r.out, "red\nblue\ncontext: \n");
  RUN(&r, true, "get", "tags");
  expect(&r, 0, NULL);
  assert_string_equal(r.out, "red\nblue\ncontext: \n");
  RUN(&r, true, "--json", "get", "tags");
  expect(&r, 0,
         "{\"found\":true,\"type\":\"set\",\"members\":[\"red\",\"blue\"]");
  RUN(&r, true, "--json", "smembers", "tags");
  expect(&r, 0, "{\"members\":[\"red\",\"blue\"],\"context\":");
  /* Type errors: exit 1 with the node's words. */
  RUN(&r, true, "incr", "tags");
  expect(&r, 1, NULL);
  assert_non_null(strstr(r.err, "CHORUS_ETYPE"));
  assert_non_null(strstr(r.err, "set"));
}

/* Values and members from a file (--value-file) or standard input ("-"),
 * binary-safe, and refused over their limit before anything is sent. The
 * same with a value over 128 KiB against real nodes: test_cluster.c. */
static void test_value_input(void **state) {
  struct run r;
  char dir[] = "/tmp/chorus-cli-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char file[64], in[64], big[64];
  snprintf(file, sizeof file, "%s/value", dir);
  snprintf(in, sizeof in, "%s/stdin", dir);
  snprintf(big, sizeof big, "%s/big", dir);
  static const uint8_t bin[] = {'b', 0, 'i', '\n', 0xff, 'n'};
  write_file(file, bin, sizeof bin);
  write_file(in, "from stdin\n", 11);

  RUNV(&r, true, "put", "f", "--value-file", file);
  expect(&r, 0, "ok");
  RUNV(&r, true, "--json", "get", "f");
  expect(&r, 0, "\"values\":[\"b\\u0000i\\n\\u00ffn\"]");
  stdin_from = in;
  RUNV(&r, true, "put", "s", "-");
  expect(&r, 0, "ok");
  RUNV(&r, true, "--json", "get", "s");
  expect(&r, 0, "\"values\":[\"from stdin\\n\"]");
  RUNV(&r, true, "put", "t", "--value-file", "-");
  expect(&r, 0, "ok");
  /* Members: "-" and --value-file. */
  RUNV(&r, true, "sadd", "m", "plain", "-", "--value-file", file);
  expect(&r, 0, "ok");
  RUNV(&r, true, "--json", "smembers", "m");
  expect(&r, 0, "\"plain\"");
  assert_non_null(strstr(r.out, "\"from stdin\\n\""));
  assert_non_null(strstr(r.out, "\"b\\u0000i\\n\\u00ffn\""));
  RUNV(&r, true, "srem", "m", "-");
  expect(&r, 0, "ok");
  RUNV(&r, true, "smembers", "m", "--json");
  expect(&r, 0, NULL);
  assert_null(strstr(r.out, "from stdin"));

  /* Usage: one source of a value, stdin once, only where a value goes. */
  int sent = fake_requests(srv);
  RUNV(&r, true, "put", "k", "v", "--value-file", file);
  expect(&r, 2, NULL);
  RUNV(&r, true, "sadd", "m", "-", "--value-file", "-");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "standard input"));
  RUNV(&r, true, "get", "k", "--value-file", file);
  expect(&r, 2, NULL);
  RUNV(&r, true, "put", "k", "--value-file");
  expect(&r, 2, NULL);
  stdin_from = NULL;
  RUNV(&r, true, "put", "k", "--value-file", "/nonexistent/chorus-value");
  expect(&r, 1, NULL);
  assert_non_null(strstr(r.err, "No such file"));

  /* Over the limit: refused, with the limit in words, nothing sent. */
  size_t n = WIRE_MAX_VALUE + 1;
  uint8_t *b = calloc(1, n);
  assert_non_null(b);
  write_file(big, b, n);
  free(b);
  RUNV(&r, true, "put", "k", "--value-file", big);
  expect(&r, 1, NULL);
  assert_non_null(strstr(r.err, "value of 1048577 bytes is over the "
                                "1048576-byte value limit (CHORUS_ETOOBIG)"));
  stdin_from = big;
  RUNV(&r, true, "put", "k", "-");
  stdin_from = NULL;
  expect(&r, 1, NULL);
  assert_non_null(strstr(r.err, "standard input: value of 1048577 bytes"));
  RUNV(&r, true, "sadd", "m", "--value-file", big);
  expect(&r, 1, NULL);
  assert_non_null(strstr(r.err, "over the 65536-byte member limit"));
  assert_int_equal(fake_requests(srv), sent);
  unlink(file);
  unlink(in);
  unlink(big);
  rmdir(dir);
}

static void test_status_ring(void **state) {
  struct run r;
  RUN(&r, true, "status");
  expect(&r, 0, "alive");
  /* Names (protocol version 3), ids beside them. */
  assert_non_null(strstr(r.out, "node n1 (1111111111111111) at 127.0.0.1:"));
  assert_non_null(strstr(r.out, "\nname  id  "));
  assert_non_null(strstr(r.out, "\nn2    2222222222222222  suspect  "));
  assert_non_null(strstr(r.out, "suspect"));
  assert_non_null(strstr(r.out, "dead"));
  assert_non_null(strstr(r.out, "127.0.0.1:7402"));
  RUN(&r, true, "--json", "status");
  expect(&r, 0, "{\"node\":\"1111111111111111\",\"node_name\":\"n1\"");
  assert_non_null(strstr(
      r.out, "{\"id\":\"3333333333333333\",\"name\":\"n3\",\"state\":\"dead\","
             "\"addr\":\"127.0.0.1:7403\",\"dc\":\"dc1\",\"rack\":\"r1\","
             "\"incarnation\":12,\"offset_ms\":null,\"hints\":42}"));
  assert_non_null(strstr(r.out, "\"offset_ms\":-3"));
  assert_non_null(strstr(r.out, "\"replication.n\":3"));
  RUN(&r, true, "ring");
  expect(&r, 0, "replication 3");
  assert_non_null(strstr(r.out, "%"));
  assert_non_null(strstr(r.out, "\nn3    3333333333333333  127.0.0.1:7403 "));
  RUN(&r, true, "ring", "--json");
  expect(&r, 0, "{\"epoch\":7,\"vnodes\":64,\"replication\":\"3\",\"nodes\":[");
  assert_non_null(
      strstr(r.out, "{\"id\":\"2222222222222222\",\"name\":\"n2\",\"addr\":"));
  assert_non_null(strstr(r.out, "\"share\":0."));
}

/* An older node: no names, the ids as before. */
static void test_status_ring_older_node(void **state) {
  struct run r;
  fake_set_mode(srv, FAKE_VERSION_1, 0);
  RUN(&r, true, "status");
  expect(&r, 0, "node 1111111111111111 at 127.0.0.1:");
  assert_non_null(strstr(r.out, "\n-     1111111111111111  alive  "));
  RUN(&r, true, "--json", "ring");
  expect(&r, 0, "{\"id\":\"1111111111111111\",\"name\":\"\",\"addr\"");
  RUN(&r, true, "cluster", "status");
  fake_set_mode(srv, FAKE_NORMAL, 0);
  expect(&r, 1, NULL);
  assert_non_null(strstr(r.err, "older than protocol version 3"));
  assert_non_null(strstr(r.err, "(CHORUS_ENOTSUP)"));
}

/* cluster status and cluster remove against the fake node's canned
 * metadata (fake_server.h): the table, the JSON, the errors. */
static void test_cluster(void **state) {
  struct run r;
  RUN(&r, true, "cluster", "status");
  expect(&r, 0, NULL);
  char want[2048];
  snprintf(want, sizeof want,
           "leader n2, term 7, commit index 120, epoch 12; answered by n1 "
           "(1111111111111111, follower, applied 118) at %s\n"
           "NAME  ID                STATE    ROLE     ALIVE    DC   RACK  "
           "VNODES   SHARE%%\n"
           "n1    1111111111111111  normal   voter    alive    dc1  r1       "
           "256    33.33\n"
           "n2    2222222222222222  normal   voter    alive    dc1  r2       "
           "256    33.33\n"
           "n3    3333333333333333  normal   standby  dead     dc2  r1       "
           "256    33.33\n"
           "n4    4444444444444444  joining  none     suspect  dc2  -          "
           "0     0.00\n"
           /* A change is under way: each receiver's transfer, from its own
            * STATUS; the fake's n4 has no address. */
           "transfers at epoch 12:\n"
           "  n4 <- not reachable\n",
           fake_addr(srv));
  assert_string_equal(r.out, want);

  RUN(&r, true, "--json", "cluster", "status");
  expect(&r, 0, NULL);
  snprintf(
      want, sizeof want,
      "{\"server\":\"%s\",\"node_id\":\"1111111111111111\",\"node_name\":"
      "\"n1\",\"raft_state\":\"follower\",\"leader_id\":\"2222222222222222\","
      "\"leader_name\":\"n2\",\"term\":7,\"commit_index\":120,"
      "\"applied_index\":118,\"epoch\":12,\"members\":["
      "{\"id\":\"1111111111111111\",\"name\":\"n1\",\"addr\":"
      "\"127.0.0.1:7401\",\"dc\":\"dc1\",\"rack\":\"r1\",\"state\":\"normal\","
      "\"role\":\"voter\",\"alive\":\"alive\",\"vnodes\":256,"
      "\"share_ppm\":333333},"
      "{\"id\":\"2222222222222222\",\"name\":\"n2\",\"addr\":"
      "\"127.0.0.1:7402\",\"dc\":\"dc1\",\"rack\":\"r2\",\"state\":\"normal\","
      "\"role\":\"voter\",\"alive\":\"alive\",\"vnodes\":256,"
      "\"share_ppm\":333334},"
      "{\"id\":\"3333333333333333\",\"name\":\"n3\",\"addr\":"
      "\"127.0.0.1:7403\",\"dc\":\"dc2\",\"rack\":\"r1\",\"state\":\"normal\","
      "\"role\":\"standby\",\"alive\":\"dead\",\"vnodes\":256,"
      "\"share_ppm\":333333},"
      "{\"id\":\"4444444444444444\",\"name\":\"n4\",\"addr\":\"\",\"dc\":"
      "\"dc2\",\"rack\":\"\",\"state\":\"joining\",\"role\":\"none\","
      "\"alive\":\"suspect\",\"vnodes\":0,\"share_ppm\":0}]}\n",
      fake_addr(srv));
  assert_string_equal(r.out, want);

  /* Usage: nothing reaches the node. */
  int sent = fake_requests(srv);
  RUN(&r, true, "cluster");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "frob");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "status", "extra");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "status", "--force");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "remove");
  expect(&r, 2, NULL);
  RUN(&r, true, "cluster", "remove", "");
  expect(&r, 2, NULL);
  RUN(&r, true, "status", "--force");
  expect(&r, 2, NULL);
  assert_non_null(strstr(r.err, "--force is for cluster remove"));
  assert_int_equal(fake_requests(srv), sent);

  /* Refusals: exit 1, the node's words and the code. */
  RUN(&r, true, "cluster", "remove", "n9");
  expect(&r, 1, NULL);
  assert_non_null(strstr(r.err, "no member named n9 (CHORUS_ENOTFOUND)"));
  RUN(&r, true, "cluster", "remove", "n1");
  expect(&r, 1, NULL);
  assert_non_null(strstr(r.err, "n1 is alive; remove it with force "
                                "(CHORUS_EBUSY)"));
  assert_non_null(strstr(r.err, "--force removes it anyway"));
  fake_set_mode(srv, FAKE_ERROR, CHORUS_EUNAVAILABLE);
  RUN(&r, true, "cluster", "remove", "n1");
  fake_set_mode(srv, FAKE_NORMAL, 0);
  expect(&r, 1, NULL);
  assert_non_null(strstr(r.err, "(CHORUS_EUNAVAILABLE)"));

  /* Removals print the status after them. */
  RUN(&r, true, "cluster", "remove", "n3");
  expect(&r, 0, "removed n3\nleader n2, term 7, commit index 121, epoch 13;");
  assert_non_null(strstr(r.out, "\nn3    3333333333333333  removed  none     "
                                "dead     dc2  r1       256     0.00\n"));
  RUN(&r, true, "--json", "cluster", "remove", "n1", "--force");
  expect(&r, 0, "{\"removed\":\"n1\",\"server\":");
  assert_non_null(strstr(r.out, "\"epoch\":14,"));
  assert_non_null(strstr(r.out, "\"name\":\"n1\",\"addr\":\"127.0.0.1:7401\","
                                "\"dc\":\"dc1\",\"rack\":\"r1\",\"state\":"
                                "\"removed\""));
  RUN(&r, true, "--help");
  expect(&r, 0, "cluster remove NAME [--force]");
}

static void test_errors(void **state) {
  struct run r;
  char host[32];
  snprintf(host, sizeof host, "127.0.0.1:%u", fake_dead_port());
  const char *args[] = {"-H", host, "get", "k", NULL};
  run_cli(&r, false, args);
  expect(&r, 1, NULL);
  assert_non_null(strstr(r.err, "CHORUS_EUNAVAILABLE"));
  /* Wrong cluster name. */
  const char *args2[] = {"-H",   fake_addr(srv), "--cluster",
                         "nope", "status",       NULL};
  run_cli(&r, false, args2);
  expect(&r, 1, NULL);
  assert_non_null(strstr(r.err, "CHORUS_ECLUSTER"));
  /* A quorum timeout on a write says it may have been applied. */
  fake_set_mode(srv, FAKE_ERROR, -11);
  RUN(&r, true, "put", "k", "v");
  fake_set_mode(srv, FAKE_NORMAL, 0);
  expect(&r, 1, NULL);
  assert_non_null(strstr(r.err, "may have been applied"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_usage),
      cmocka_unit_test(test_put_get_context),
      cmocka_unit_test(test_json_escaping),
      cmocka_unit_test(test_counter_and_set),
      cmocka_unit_test(test_value_input),
      cmocka_unit_test(test_status_ring),
      cmocka_unit_test(test_status_ring_older_node),
      cmocka_unit_test(test_cluster),
      cmocka_unit_test(test_change_usage),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
