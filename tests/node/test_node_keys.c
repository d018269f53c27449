/* test_node_keys.c: online rotation of the gossip key through the cluster
 * metadata (issue 24; meta.h, THE SAFETY RULE) on three real chorusd
 * processes, driven through the real CLI (`chorus cluster key ...`):
 *
 *   1. under a steady client load (a child writing at QUORUM through n1),
 *      install -> use -> remove of the boot key: every write succeeds and
 *      no node suspects another nor drops a packet it cannot open (SWIM's
 *      suspicions and auth_failed, from STATUS_QUERY, unchanged); removing
 *      the primary is refused with its reason.
 *   2. gossip after the old key is gone: n2 killed (-9), the others see it
 *      dead; restarted with its --cluster-key file (now retired), it
 *      rejoins with the keyring it persisted.
 *   3. a member behind: n2 stopped (SIGSTOP), a new key installed, its use
 *      refused naming n2; n2 continued (SIGCONT), the use is accepted.
 *
 * About 15 s under ASan. CHORUS_KEEP_LOGS=1 keeps the nodes' logs. */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "node_harness.h"

static int64_t sum_stat(const char *name) {
  int64_t sum = 0;
  for (int i = 0; i < 3; i++) {
    int64_t v = stat_of(nodes[i].port, name);
    assert_true(v >= 0);
    sum += v;
  }
  return sum;
}

/* key_cli: `chorus cluster key ARGS` through node @i, retried while the
 * answer is EBUSY (a member has not applied the previous step yet) for up
 * to @secs; its exit status, the output in @out. */
static int key_cli(int i, double secs, char *out, size_t cap,
                   const char *args) {
  double end = now_s() + secs;
  for (;;) {
    int rc = run_cli(nodes[i].port, out, cap, "cluster key %s", args);
    if (rc == 0 || strstr(out, "EBUSY") == NULL || now_s() > end)
      return rc;
    sleep_ms(50);
  }
}

/* key_ok: key_cli that must succeed. */
static void key_ok(int i, double secs, const char *args) {
  char out[1024];
  if (key_cli(i, secs, out, sizeof out, args) != 0)
    fail_msg("cluster key %s through n%d: %s", args, i, out);
}

/* install: a random key through node @i; its id. */
static uint32_t install(int i) {
  char out[512];
  assert_int_equal(key_cli(i, 0, out, sizeof out, "install"), 0);
  unsigned id = 0;
  if (sscanf(out, "installed key %x", &id) != 1)
    fail_msg("install said: %s", out);
  return (uint32_t)id;
}

/* The load: a child writing one key after another at QUORUM through
 * @port until @stop exists; it writes "ok failed" into @result. */
static pid_t start_load(int port, const char *stop, const char *result) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid > 0)
    return pid;
  /* Never outlive the test (a failed assertion leaves @stop unwritten). */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int fd = client_open(port);
  long ok = 0, failed = 0;
  double end = now_s() + 60;
  for (long k = 0; fd >= 0 && access(stop, F_OK) != 0 && now_s() < end; k++) {
    char key[32];
    snprintf(key, sizeof key, "rot-%ld", k);
    if (put(fd, key, "v") == 0)
      ok++;
    else
      failed++;
    sleep_ms(5);
  }
  if (fd < 0)
    failed = -1;
  char text[64];
  snprintf(text, sizeof text, "%ld %ld", ok, failed);
  write_text(result, text);
  _exit(0); /* not the harness's exit: the parent owns the nodes */
}

static uint32_t first_key;
static pid_t load_pid; /* the load while it runs */

static int teardown(void **state) {
  if (load_pid > 0) {
    kill(load_pid, SIGKILL);
    waitpid(load_pid, NULL, 0);
    load_pid = 0;
  }
  return group_teardown(state);
}

static void test_rotation_under_load(void **state) {
  (void)state;
  ensure_cluster();
  char out[1024], stop[320], result[320];
  snprintf(stop, sizeof stop, "%s/load.stop", root);
  snprintf(result, sizeof result, "%s/load.result", root);
  int64_t suspicions = sum_stat("swim.suspicions");
  int64_t auth_failed = sum_stat("swim.auth_failed");
  pid_t load = load_pid = start_load(nodes[1].port, stop, result);
  sleep_ms(300);
  double t0 = now_s();
  uint32_t id = install(0);
  /* Each step with the load running between: nodes holding two keys
   * serve as before. */
  sleep_ms(300);
  char arg[64];
  snprintf(arg, sizeof arg, "use %08x", (unsigned)id);
  key_ok(1, 10, arg);
  double t_use = now_s();
  sleep_ms(300);
  key_ok(2, 10, "remove 0");
  double t_remove = now_s();
  /* Keep the load on a moment with the new key alone. */
  sleep_ms(1000);
  write_text(stop, "stop");
  int st;
  assert_int_equal(waitpid(load, &st, 0), load);
  load_pid = 0;
  char text[64] = "";
  read_file(result, text, sizeof text);
  long ok = 0, failed = -1;
  assert_int_equal(sscanf(text, "%ld %ld", &ok, &failed), 2);
  printf("# rotation (300 ms pauses): use %.2f s, remove %.2f s after "
         "install; %ld writes, "
         "%ld failed; suspicions %" PRId64 " -> %" PRId64
         ", auth_failed %" PRId64 " -> %" PRId64 "\n",
         t_use - t0, t_remove - t0, ok, failed, suspicions,
         sum_stat("swim.suspicions"), auth_failed,
         sum_stat("swim.auth_failed"));
  assert_true(ok > 10);
  assert_int_equal(failed, 0);
  assert_int_equal(sum_stat("swim.suspicions"), suspicions);
  assert_int_equal(sum_stat("swim.auth_failed"), auth_failed);
  /* The keyring as every node lists it: the new key alone, primary. */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(key_cli(i, 0, out, sizeof out, "list"), 0);
    char row[64];
    snprintf(row, sizeof row, "%08x  yes", (unsigned)id);
    if (strstr(out, row) == NULL || strstr(out, "boot") != NULL)
      fail_msg("n%d lists: %s", i, out);
  }
  /* Every node's SWIM holds it alone (core_gossip_keys, through
   * STATUS_QUERY), at the keyring's version: not only the metadata
   * changed. */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(stat_of(nodes[i].port, "swim.keys"), 1);
    assert_int_equal(stat_of(nodes[i].port, "swim.keyring_version"), 3);
  }
  /* The primary cannot go; neither can the boot key twice. */
  snprintf(arg, sizeof arg, "remove %08x", (unsigned)id);
  assert_int_not_equal(key_cli(0, 0, out, sizeof out, arg), 0);
  assert_non_null(strstr(out, "is the primary"));
  assert_int_not_equal(key_cli(0, 0, out, sizeof out, "remove 0"), 0);
  assert_non_null(strstr(out, "ENOTFOUND"));
  first_key = id;
}

static void test_gossip_after_rotation(void **state) {
  (void)state;
  if (first_key == 0)
    skip();
  kill(nodes[2].pid, SIGKILL);
  waitpid(nodes[2].pid, NULL, 0);
  nodes[2].pid = 0;
  double end = now_s() + 20;
  while (stat_of(nodes[0].port, "members.alive") != 2 ||
         stat_of(nodes[1].port, "members.alive") != 2) {
    if (now_s() > end)
      fail_msg("n2's death was not seen under the new key");
    sleep_ms(100);
  }
  /* Its --cluster-key is the retired boot key: it seals with the keyring
   * it persisted. */
  start_member(&nodes[2], keyfile_a, nodes[0].port, "64");
  wait_alive(3, 30);
  serves(nodes[2].port);
}

static void test_use_refused_while_behind(void **state) {
  (void)state;
  if (first_key == 0)
    skip();
  char out[1024], arg[64];
  kill(nodes[2].pid, SIGSTOP);
  uint32_t id = install(0);
  snprintf(arg, sizeof arg, "use %08x", (unsigned)id);
  assert_int_not_equal(key_cli(1, 0, out, sizeof out, arg), 0);
  if (strstr(out, "n2 has not applied the install") == NULL)
    fail_msg("use while n2 is stopped: %s", out);
  kill(nodes[2].pid, SIGCONT);
  key_ok(1, 15, arg);
  wait_alive(3, 30);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0 || find_cli() != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      TIMED(test_rotation_under_load),
      TIMED(test_gossip_after_rotation),
      TIMED(test_use_refused_while_behind),
  };
  int failed = cmocka_run_group_tests_name("node_keys", tests, NULL, teardown);
  return harness_finish(failed);
}
