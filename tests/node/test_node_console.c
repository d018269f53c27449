/* test_node_console.c: the web console (issue 25; node/web/console.html,
 * node/node_console.c) in headless Chromium, on three real processes.
 *
 *   1. /api/cluster answers JSON (python3's json parses it) naming the
 *      three members, and / answers the page with its
 *      Content-Security-Policy. Every member's rack is HOSTILE: markup,
 *      quotes and a backslash, which the JSON must escape and the page
 *      must show as text.
 *   2. With a writer putting keys through n0 at QUORUM, Chromium (Debian's
 *      chromium, driven over the DevTools protocol by console_cdp.py
 *      through --remote-debugging-pipe: no socket, no library) opens n0's
 *      console: its DOM lists n0, n1 and n2 as "up" and their names are in
 *      the page's text; its QUORUM row shows a rate and a p99; a
 *      screenshot (PNG, decoded by the script) is not blank: many colours,
 *      many pixels not white.
 *   3. n2 killed (SIGKILL): on the same page (a marker set in the page
 *      before the kill is still there: no reload), n2's state leaves "up"
 *      within CHANGE_S and reaches "down" within DOWN_S.
 *
 * Skipped (77) when chromium or python3 is missing. About 8 s under ASan
 * (Chromium's start takes 1-2 s of it). */
#include <errno.h>
#include <poll.h>
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

#define CHANGE_S 8.0 /* the local gossip profile suspects in ~0.5 s */
#define DOWN_S 15.0
#define SCRIPT_S 45.0 /* the driver's whole run */
#define HOSTILE                                                                \
  "<img src=x onerror=alert(1)>\"\\" /* 30 bytes: a rack fits 31 */

static pid_t driver_pid, writer_pid;

/* stop_children: the writer, and the driver with its Chromium (the driver
 * leads a process group of its own, so the browser it started goes too
 * when a failed test kills it mid-run). */
static void stop_children(void) {
  pid_t *pids[] = {&driver_pid, &writer_pid};
  for (size_t i = 0; i < 2; i++)
    if (*pids[i] > 0) {
      if (pids[i] == &driver_pid)
        kill(-*pids[i], SIGKILL);
      kill(*pids[i], SIGKILL);
      waitpid(*pids[i], NULL, 0);
      *pids[i] = 0;
    }
}

/* start_writer: a child writing keys through n0 at QUORUM, a few hundred a
 * second at most, until killed: the load the page's rates show. */
static void start_writer(void) {
  fflush(stdout);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fd = client_open(nodes[0].port);
    for (unsigned i = 0; fd >= 0; i++) {
      char key[32];
      snprintf(key, sizeof key, "console-%u", i % 500);
      if (put(fd, key, "v") < -100)
        break; /* the connection is gone */
      usleep(2000);
    }
    _exit(0);
  }
  writer_pid = pid;
}

/* The driver: python3 console_cdp.py with pipes to its stdin and stdout. */
static FILE *driver_out;
static int driver_in = -1;

static void start_driver(const char *script, const char *url, const char *node,
                         const char *png, const char *rack) {
  int in[2], out[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  fflush(stdout);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    execlp("python3", "python3", script, url, node, png, rack, (char *)NULL);
    _exit(127);
  }
  setpgid(pid, pid); /* as the child does: whichever runs first */
  close(in[0]);
  close(out[1]);
  driver_pid = pid;
  driver_in = in[1];
  driver_out = fdopen(out[0], "r");
  assert_non_null(driver_out);
}

/* driver_line: the driver's next line (without its newline) into @buf, or
 * fails the test past @deadline (now_s()). */
static const char *driver_line(char *buf, size_t cap, double deadline) {
  for (;;) {
    double left = deadline - now_s();
    if (left <= 0)
      fail_msg("the Chromium driver said nothing more in time");
    struct pollfd p = {fileno(driver_out), POLLIN, 0};
    int r = poll(&p, 1, (int)(left * 1000) + 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r > 0)
      break;
  }
  if (fgets(buf, (int)cap, driver_out) == NULL)
    fail_msg("the Chromium driver exited early");
  buf[strcspn(buf, "\n")] = '\0';
  printf("# driver: %s\n", buf);
  if (strncmp(buf, "ERROR", 5) == 0)
    fail_msg("the Chromium driver failed: %s", buf);
  return buf;
}

/* expect: the next line, which must start with @word and a space; returns
 * what follows. */
static const char *expect(const char *word, char *buf, size_t cap,
                          double deadline) {
  driver_line(buf, cap, deadline);
  size_t n = strlen(word);
  if (strncmp(buf, word, n) != 0 || (buf[n] != ' ' && buf[n] != '\0'))
    fail_msg("expected %s from the driver, got: %s", word, buf);
  return buf[n] ? buf + n + 1 : buf + n;
}

static void test_api_and_page(void **state) {
  (void)state;
  static const char *const more[] = {"--rack", HOSTILE, NULL};
  start_cluster_http(more);
  static char body[1 << 16];
  int st = http_get(http_port[0], "/api/cluster", body, sizeof body);
  assert_int_equal(st, 200);
  char path[400], cmd[1000];
  snprintf(path, sizeof path, "%s/cluster.json", root);
  write_text(path, body);
  /* Valid JSON, the three members by name, the ring's bins owned. */
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
           "assert sorted(m[\"name\"] for m in d[\"members\"]) == "
           "[\"n0\",\"n1\",\"n2\"], d[\"members\"]; "
           "assert len(d[\"ring\"][\"bins\"]) == 360; "
           "assert all(0 <= b < 3 for b in d[\"ring\"][\"bins\"]); "
           "assert abs(sum(m[\"share\"] for m in d[\"members\"]) - 1) < 0.01; "
           "assert all(m[\"rack\"] == sys.argv[2] for m in d[\"members\"])' "
           "%s '%s'",
           path, HOSTILE);
  if (system(cmd) != 0) {
    show("/api/cluster", body);
    fail_msg("/api/cluster is not what the page expects");
  }
  printf("# /api/cluster: %zu bytes\n", strlen(body));
  assert_true(strlen(body) < 8192); /* the ring sampled, not listed */
  /* The page, with its head (http_raw keeps only the body). */
  const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  static char raw[1 << 15];
  int fd = tcp_connect(http_port[0]);
  assert_true(fd >= 0);
  assert_int_equal(write_all(fd, req, sizeof req - 1), 0);
  size_t got = 0;
  ssize_t r;
  while ((r = read(fd, raw + got, sizeof raw - 1 - got)) > 0)
    got += (size_t)r;
  close(fd);
  raw[got] = '\0';
  assert_true(strncmp(raw, "HTTP/1.1 200 ", 13) == 0);
  assert_non_null(strstr(raw, "Content-Type: text/html"));
  assert_non_null(strstr(raw, "Content-Security-Policy: default-src 'none'"));
  assert_non_null(strstr(raw, "<title>chorus console</title>"));
}

static void test_chromium_sees_a_kill(void **state) {
  (void)state;
  start_writer();
  char url[64], png[400], script[600], buf[4096];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", http_port[0]);
  snprintf(png, sizeof png, "%s/console.png", root);
  snprintf(script, sizeof script, "%s/console_cdp.py", SOURCE_DIR);
  start_driver(script, url, "n2", png, HOSTILE);
  double deadline = now_s() + SCRIPT_S;

  const char *rows = expect("ROWS", buf, sizeof buf, deadline);
  assert_non_null(strstr(rows, "n0=up"));
  assert_non_null(strstr(rows, "n1=up"));
  assert_non_null(strstr(rows, "n2=up"));
  const char *text = expect("TEXT", buf, sizeof buf, deadline);
  assert_string_equal(text, "n0 n1 n2");
  /* The hostile rack in every row, as text; no element made from it. */
  const char *racks = expect("RACKS", buf, sizeof buf, deadline);
  assert_string_equal(racks, "3 3 0");
  /* The writer's QUORUM PUTs: a rate and a p99 drawn from the change
   * between two polls, e.g. "QUORUM=212.0/3.41 ms". */
  const char *levels = expect("LEVELS", buf, sizeof buf, deadline);
  const char *q = strstr(levels, "QUORUM=");
  assert_non_null(q);
  double rate = 0, p99 = 0;
  assert_int_equal(sscanf(q, "QUORUM=%lf/%lf ms", &rate, &p99), 2);
  assert_true(rate > 0 && p99 > 0);
  unsigned w = 0, h = 0, colours = 0, nonwhite = 0;
  const char *shot = expect("SHOT", buf, sizeof buf, deadline);
  assert_int_equal(sscanf(shot, "%u %u %u %u", &w, &h, &colours, &nonwhite), 4);
  printf("# screenshot %ux%u: %u colours, %.0f %% of pixels not white (%s)\n",
         w, h, colours, 100.0 * nonwhite / ((double)w * h + 1), png);
  assert_true(w >= 300 && h >= 200);
  /* A blank page has one colour; the ring alone brings hundreds (its
   * arcs' anti-aliased edges). */
  assert_true(colours >= 100);
  assert_true(nonwhite >= (unsigned)(w * h / 4));
  expect("READY", buf, sizeof buf, deadline);

  kill(nodes[2].pid, SIGKILL);
  assert_int_equal(wait_exit(&nodes[2], 5), 128 + SIGKILL);
  assert_int_equal(write(driver_in, "killed\n", 7), 7);
  double changed = -1, down = -1;
  char st[32] = "";
  const char *c = expect("CHANGED", buf, sizeof buf, deadline);
  assert_int_equal(sscanf(c, "%31s %lf", st, &changed), 2);
  printf("# n2 shown as %s %.2f s after the kill\n", st, changed);
  assert_true(changed <= CHANGE_S);
  /* CHANGED and DOWN come both, in this order, even when the first state
   * seen after "up" is "down". */
  const char *d = expect("DOWN", buf, sizeof buf, deadline);
  assert_int_equal(sscanf(d, "%lf", &down), 1);
  printf("# n2 shown as down %.2f s after the kill\n", down);
  assert_true(down <= DOWN_S);
  assert_string_equal(expect("SAME", buf, sizeof buf, deadline), "1");
  rows = expect("ROWS", buf, sizeof buf, deadline);
  assert_non_null(strstr(rows, "n0=up"));
  assert_non_null(strstr(rows, "n1=up"));
  assert_non_null(strstr(rows, "n2=down"));
  int status = 0;
  fclose(driver_out);
  driver_out = NULL;
  close(driver_in);
  driver_in = -1;
  while (waitpid(driver_pid, &status, 0) < 0 && errno == EINTR)
    ;
  driver_pid = 0;
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  stop_children();
}

static int teardown(void **state) {
  stop_children();
  return group_teardown(state);
}

static bool have(const char *cmd) {
  char line[200];
  snprintf(line, sizeof line, "command -v %s >/dev/null 2>&1", cmd);
  return system(line) == 0;
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  if (!have("chromium") || !have("python3")) {
    printf("1..0 # SKIP chromium or python3 not installed (Debian packages "
           "chromium, python3)\n");
    harness_finish(0);
    return 77;
  }
  harness_cleanup_hook = stop_children;
  const struct CMUnitTest tests[] = {
      TIMED(test_api_and_page),
      TIMED(test_chromium_sees_a_kill),
  };
  int failed =
      cmocka_run_group_tests_name("node_console", tests, NULL, teardown);
  return harness_finish(failed);
}
