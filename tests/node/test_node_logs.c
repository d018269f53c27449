/* test_node_logs.c: chorusd's structured logs on real processes (issue 25):
 *
 *   1. A 3-node cluster with --log-format json --slow-ms 500 takes traffic
 *      and a fault: n2 is stopped (SIGSTOP) for 1.5 s while n0 coordinates
 *      a PUT at ALL. n0 logs that PUT once, at warn, as slow, with n2 as the
 *      replica that answered late (or not at all); and every line every
 *      node wrote parses as one JSON object with ts, level, module, node
 *      and msg, node being its --id.
 *   2. A node whose --id holds a quote, a backslash, a tab and a byte that
 *      is not UTF-8 writes lines that still parse, the name escaped (the
 *      byte as U+FFFD); its data folder's name, 150 control bytes, makes
 *      its startup line longer than the bound: cut, and still an object.
 *
 * Lines are checked by python3's json module (Debian's python3; skipped,
 * with a line saying so, when it is missing). About 10 s under ASan. */
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

#include "node_harness.h"

static const char *const json_flags[] = {"--log-format", "json", "--slow-ms",
                                         "500", NULL};

/* The checker: every line of argv[1] one JSON object with exactly the five
 * fields, ts RFC 3339 UTC with ms, node argv[2] (as UTF-8, invalid bytes
 * replaced); prints the line count. */
static const char checker[] =
    "import json, os, re, sys\n"
    "want = os.fsencode(sys.argv[2]).decode('utf-8', 'replace')\n"
    "ts = "
    "re.compile(r'^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$')\n"
    "n = 0\n"
    "for line in open(sys.argv[1], 'rb'):\n"
    "    o = json.loads(line)\n"
    "    assert sorted(o) == ['level', 'module', 'msg', 'node', 'ts'], o\n"
    "    assert ts.match(o['ts']), o\n"
    "    assert o['level'] in ('error', 'warn', 'info', 'debug'), o\n"
    "    assert o['node'] == want, (o['node'], want)\n"
    "    assert line.endswith(b'}\\n') and len(line) <= 640, line\n"
    "    n += 1\n"
    "assert n > 0\n"
    "print('# %d JSON lines' % n)\n";

static bool have_python(void) {
  return system("python3 -c 'import json' >/dev/null 2>&1") == 0;
}

/* lines_parse: runs the checker on @p's log; asserts it passed. */
static void lines_parse(const struct proc *p) {
  char script[300];
  snprintf(script, sizeof script, "%s/check_json.py", root);
  write_text(script, checker);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    execlp("python3", "python3", script, p->log, p->name, (char *)NULL);
    _exit(127);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail_msg("%s: a line of %s is not the JSON object it should be", p->name,
             p->log);
}

static char logbuf[1 << 20];

/* slow_line: the line of @p's log that says "slow PUT", or NULL. */
static const char *slow_line(const struct proc *p) {
  read_file(p->log, logbuf, sizeof logbuf);
  char *s = strstr(logbuf, "slow PUT req=");
  if (s == NULL)
    return NULL;
  while (s > logbuf && s[-1] != '\n')
    s--;
  char *end = strchr(s, '\n');
  if (end)
    *end = '\0';
  return s;
}

static void test_json_logs_and_a_slow_request(void **state) {
  (void)state;
  if (!have_python()) {
    printf("# python3 not installed: skipping the JSON checks\n");
    skip();
  }
  member_extra = json_flags;
  ensure_cluster();
  member_extra = NULL;
  int fd = client_open(nodes[0].port);
  assert_true(fd >= 0);
  char key[32], got[64];
  for (int i = 0; i < 20; i++) {
    snprintf(key, sizeof key, "log-%d", i);
    assert_int_equal(put(fd, key, "v"), 0);
    assert_int_equal(get(fd, key, got, sizeof got), 0);
  }
  /* Nothing was slow so far. */
  assert_null(slow_line(&nodes[0]));

  /* n2 stopped for 1.5 s under a PUT at ALL through n0. */
  struct wire_options all = quorum();
  all.w = WIRE_ALL;
  struct wire_msg m = {.type = WIRE_PUT, .request_id = ++next_id};
  m.put.key = (struct wire_bytes){(const uint8_t *)"slow-key", 8};
  m.put.value = (struct wire_bytes){(const uint8_t *)"v", 1};
  m.put.opts = all;
  assert_int_equal(kill(nodes[2].pid, SIGSTOP), 0);
  double t0 = now_s();
  assert_int_equal(send_msg(fd, &m), 0);
  sleep_ms(1500);
  assert_int_equal(kill(nodes[2].pid, SIGCONT), 0);
  struct reply r;
  assert_int_equal(recv_msg(fd, &r), 0);
  assert_int_equal(r.m.request_id, m.request_id);
  printf("# PUT at ALL with n2 stopped: %s after %.2f s\n",
         wire_type_name(r.m.type), now_s() - t0);
  reply_free(&r);
  close(fd);

  /* The line is written when the PUT ends (every answer in, or its
   * timeout): within a few seconds either way. */
  const char *line = NULL;
  for (double end = now_s() + 15; now_s() < end; sleep_ms(100))
    if ((line = slow_line(&nodes[0])) != NULL)
      break;
  assert_non_null(line);
  printf("# %s\n", line);
  assert_non_null(strstr(line, "\"level\":\"warn\""));
  assert_non_null(strstr(line, "\"node\":\"n0\""));
  char n2[64], late[80], lost[80];
  snprintf(n2, sizeof n2, "%016" PRIx64, id_of("n2"));
  snprintf(late, sizeof late, "%s acked +", n2);
  snprintf(lost, sizeof lost, "%s no answer", n2);
  const char *at = strstr(line, late);
  assert_true(at != NULL || strstr(line, lost) != NULL);
  if (at != NULL) /* late by about the 1.5 s it was stopped */
    assert_true(strtoul(at + strlen(late), NULL, 10) >= 1000);

  for (int i = 0; i < 3; i++)
    lines_parse(&nodes[i]);
}

static void test_an_odd_name_is_escaped(void **state) {
  (void)state;
  if (!have_python())
    skip();
  struct proc p;
  node_init(&p, "odd");
  snprintf(p.name, sizeof p.name, "o\"d\\d\t\xff");
  /* A data folder of 150 control bytes, which the startup line names:
   * 900 bytes once escaped, so that line is cut at the bound (640 bytes)
   * and must still be a closed object. */
  char odd[151];
  memset(odd, '\x01', 150);
  odd[150] = '\0';
  snprintf(p.data, sizeof p.data, "%s/%s", root, odd);
  spawn(&p, json_flags);
  /* Up: the line saying it listens. */
  bool up = false;
  for (double end = now_s() + 20; !up && now_s() < end; sleep_ms(100)) {
    read_file(p.log, logbuf, sizeof logbuf);
    up = strstr(logbuf, "listening on") != NULL;
  }
  assert_true(up);
  assert_int_equal(kill(p.pid, SIGTERM), 0);
  assert_int_equal(wait_exit(&p, 20), 0);
  read_file(p.log, logbuf, sizeof logbuf);
  assert_non_null(strstr(logbuf, "\"node\":\"o\\\"d\\\\d\\t\\ufffd\""));
  const char *start = strstr(logbuf, "\\u0001\\u0001\\u0001");
  assert_non_null(start);
  while (start > logbuf && start[-1] != '\n')
    start--;
  size_t len = (size_t)(strchr(start, '\n') - start) + 1;
  printf("# the startup line, cut: %zu bytes\n", len);
  assert_true(len > 600 && len <= 640);
  lines_parse(&p);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      TIMED(test_json_logs_and_a_slow_request),
      TIMED(test_an_odd_name_is_escaped),
  };
  int failed =
      cmocka_run_group_tests_name("node_logs", tests, NULL, group_teardown);
  return harness_finish(failed);
}
