/* test_node_lock.c: locks with fencing tokens on three real chorusd
 * processes (issue 23), through the CLI binary and the wire.
 *
 *   1. The seed's scenario (Kleppmann's fencing example), end to end with
 *      the CLI: client A (a shell running `chorus`) acquires the lock with
 *      a short lease and prints its token t; A's process group is
 *      SIGSTOPped past its lease and the skew allowance; client B acquires
 *      (a token above t) and writes the key with --fence NAME:t+1; A is
 *      resumed (SIGCONT) and writes with --fence NAME:t: refused, exit 1,
 *      "fenced: token t is below ...", and `get --serial` answers B's value.
 *      The session is printed (TAP comments).
 *   2. Four threads take and release one lock about 50 times in all, each
 *      through a different node in turn: the tokens of the applied
 *      acquisitions, in the order they completed, strictly increase, and
 *      no two holders overlap (a holder holds from its acquire's answer to
 *      its release's call; leases are long, so no lease runs out and the
 *      allowance does not enter).
 *   3. The CLI's other forms: status, renew and release with a stale
 *      token (exit 1), --json, and the lock namespace (a plain write there
 *      is refused).
 *
 * About 10 s under ASan. CHORUS_KEEP_LOGS=1 keeps the nodes' logs. */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "node_harness.h"

#define NTHREADS 4
#define CYCLES_PER_THREAD 13
#define LEASE_MS 10000

static uint64_t now_us(void) {
  return (uint64_t)(now_s() * 1e6);
}

static void expect_cli(int port, int want, const char *has, char *out,
                       size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void expect_cli(int port, int want, const char *has, char *out,
                       size_t cap, const char *fmt, ...) {
  char args[256], buf[4096];
  if (out == NULL) {
    out = buf;
    cap = sizeof buf;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  int st = run_cli(port, out, cap, "%s", args);
  print_message("# $ chorus %s\n", args);
  show("  ->", out);
  if (st != want || (has != NULL && strstr(out, has) == NULL))
    fail_msg("chorus %s: exit %d (want %d)%s%s", args, st, want,
             has ? ", want output with " : "", has ? has : "");
}

/* ------------------------------------------------------------------------
 * 1. The scenario
 * ------------------------------------------------------------------------ */

static void paused_holder_is_fenced(void **state) {
  (void)state;
  ensure_cluster();
  int p0 = nodes[0].port, p1 = nodes[1].port, p2 = nodes[2].port;
  /* Client A: acquire (token on its first line), then, once it runs
   * again, write with that token. */
  char script[1024];
  snprintf(script, sizeof script,
           "t=$(%s -H 127.0.0.1:%d --cluster %s lock acquire scen-lock "
           "--ttl 1000) || exit 3; echo \"A acquired token $t\"; "
           "sleep 0.2; echo \"A resumes: put scen-key from-A --fence "
           "scen-lock:$t\"; "
           "%s -H 127.0.0.1:%d --cluster %s put scen-key from-A "
           "--fence scen-lock:$t 2>&1; echo \"A's put exit $?\"",
           cli, p0, cluster, cli, p1, cluster);
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  pid_t a = fork();
  assert_true(a >= 0);
  if (a == 0) {
    setpgid(0, 0);
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    execl("/bin/sh", "sh", "-c", script, (char *)NULL);
    _exit(127);
  }
  setpgid(a, a);
  close(pipefd[1]);
  FILE *in = fdopen(pipefd[0], "r");
  assert_non_null(in);
  char line[256] = "";
  assert_non_null(fgets(line, sizeof line, in));
  /* A is paused at once (its whole process group), during its sleep. */
  kill(-a, SIGSTOP);
  print_message("# %s", line);
  uint64_t t = 0;
  assert_int_equal(sscanf(line, "A acquired token %" SCNu64, &t), 1);
  assert_true(t >= 1);
  print_message("# (A is SIGSTOPped; its 1000 ms lease and the 500 ms skew "
                "allowance pass)\n");
  /* While A's lease (plus the allowance) runs, B is refused. */
  expect_cli(p2, 1, "held", NULL, 0, "lock acquire scen-lock --ttl 5000");
  sleep_ms(1700);
  char out[4096];
  expect_cli(p2, 0, NULL, out, sizeof out, "lock acquire scen-lock --ttl 5000");
  uint64_t tb = strtoull(out, NULL, 10);
  assert_true(tb > t);
  expect_cli(p2, 0, "applied", NULL, 0,
             "put scen-key from-B --fence scen-lock:%" PRIu64, tb);
  print_message("# (A is resumed with SIGCONT)\n");
  kill(-a, SIGCONT);
  char all[2048] = "";
  size_t n = 0;
  while (fgets(line, sizeof line, in) != NULL && n + strlen(line) < sizeof all)
    n += (size_t)snprintf(all + n, sizeof all - n, "%s", line);
  fclose(in);
  int st;
  assert_int_equal(waitpid(a, &st, 0), a);
  show("A", all);
  char want[96];
  snprintf(want, sizeof want, "fenced: token %" PRIu64 " is below %" PRIu64, t,
           tb);
  assert_non_null(strstr(all, want));
  assert_non_null(strstr(all, "A's put exit 1"));
  expect_cli(p0, 0, "from-B", NULL, 0, "get scen-key --serial");
  expect_cli(p1, 0, "held by", NULL, 0, "lock status scen-lock");
  expect_cli(p1, 0, "released", NULL, 0, "lock release scen-lock %" PRIu64, tb);
}

/* ------------------------------------------------------------------------
 * 2. Many holders, one at a time, tokens that only grow
 * ------------------------------------------------------------------------ */

struct hold {
  uint64_t token;
  uint64_t got_us;     /* the acquire's answer */
  uint64_t release_us; /* the release's call */
  bool released;
};

static struct hold holds[NTHREADS * CYCLES_PER_THREAD * 4];
static size_t nholds;
static pthread_mutex_t holds_lock = PTHREAD_MUTEX_INITIALIZER;
static int unknowns;

/* lock_call: one LOCK on @fd; 0 and the reply, or -1 (lost). */
static int lock_call(int fd, uint8_t op, uint64_t token, const char *holder,
                     struct wire_lock_reply *out, int *code) {
  static const char name[] = "\xc1lock:race";
  struct wire_msg m = {.type = WIRE_LOCK, .request_id = ++next_id};
  m.lock.op = op;
  m.lock.key = (struct wire_bytes){(const uint8_t *)name, sizeof name - 1};
  m.lock.holder = (struct wire_bytes){(const uint8_t *)holder, strlen(holder)};
  m.lock.token = token;
  m.lock.ttl_ms = op == WIRE_LOCK_ACQUIRE ? LEASE_MS : 0;
  m.lock.opts.timeout_ms = 3000;
  struct reply r;
  if (call(fd, &m, &r) != 0)
    return -1;
  *code = r.m.type == WIRE_ERROR ? r.m.error.code : 0;
  if (r.m.type == WIRE_LOCK_REPLY) {
    *out = r.m.lock_reply;
    /* Whether the holder is the caller (the bytes go with the reply). */
    out->present = out->holder.len == strlen(holder) &&
                   memcmp(out->holder.ptr, holder, out->holder.len) == 0;
    out->holder = out->value = (struct wire_bytes){NULL, 0};
  }
  reply_free(&r);
  return 0;
}

static void *holder_main(void *p) {
  int index = (int)(intptr_t)p;
  char me[8];
  snprintf(me, sizeof me, "t%d", index);
  int fds[3];
  for (int i = 0; i < 3; i++)
    fds[i] = client_open(nodes[i].port);
  int done = 0;
  for (unsigned n = 0; done < CYCLES_PER_THREAD && n < 400; n++) {
    int fd = fds[(index + n) % 3];
    struct wire_lock_reply a = {0};
    int code = 0;
    if (lock_call(fd, WIRE_LOCK_ACQUIRE, 0, me, &a, &code) != 0 || code != 0) {
      /* An outcome the coordinator cannot tell (contention): a holder
       * learns it as any client would, by a serial read. */
      pthread_mutex_lock(&holds_lock);
      unknowns++;
      pthread_mutex_unlock(&holds_lock);
      struct wire_lock_reply s = {0};
      int fd3 = fds[(index + n + 2) % 3];
      if (lock_call(fd3, WIRE_LOCK_STATUS, 0, me, &s, &code) != 0 ||
          code != 0 || !s.held || !s.present)
        continue;
      a = s; /* it holds it */
      a.applied = 1;
    }
    if (!a.applied) {
      sleep_ms(20 + (int)(n * 7 % 40)); /* a waiter backs off */
      continue;
    }
    struct hold h = {.token = a.token, .got_us = now_us()};
    sleep_ms(2); /* holds it a little */
    h.release_us = now_us();
    /* A release whose outcome is unknown (contention: waiters' rounds
     * pre-empt it) is retried; the status says when it took. */
    for (int tries = 0; tries < 8 && !h.released; tries++) {
      struct wire_lock_reply rel = {0}, st = {0};
      int fd2 = fds[(index + n + 1 + (unsigned)tries) % 3];
      if (lock_call(fd2, WIRE_LOCK_RELEASE, h.token, me, &rel, &code) == 0 &&
          code == 0 && rel.applied) {
        h.released = true;
        break;
      }
      h.released = lock_call(fd2, WIRE_LOCK_STATUS, 0, me, &st, &code) == 0 &&
                   code == 0 && (!st.held || st.token != h.token);
      if (!h.released)
        sleep_ms(20);
    }
    pthread_mutex_lock(&holds_lock);
    holds[nholds++] = h;
    pthread_mutex_unlock(&holds_lock);
    done++;
    if (!h.released)
      break; /* the lease then has to run out: this thread stops */
  }
  for (int i = 0; i < 3; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  return NULL;
}

static int by_got(const void *a, const void *b) {
  const struct hold *x = a, *y = b;
  return x->got_us < y->got_us ? -1 : x->got_us > y->got_us;
}

static void tokens_grow_and_holders_never_overlap(void **state) {
  (void)state;
  ensure_cluster();
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    assert_int_equal(
        pthread_create(&th[i], NULL, holder_main, (void *)(intptr_t)i), 0);
  for (int i = 0; i < NTHREADS; i++)
    pthread_join(th[i], NULL);
  qsort(holds, nholds, sizeof holds[0], by_got);
  print_message("# %zu acquisitions (%d unknown outcomes), tokens %" PRIu64
                "..%" PRIu64 "\n",
                nholds, unknowns, nholds ? holds[0].token : 0,
                nholds ? holds[nholds - 1].token : 0);
  assert_true(nholds >= 40);
  for (size_t i = 1; i < nholds; i++) {
    if (holds[i].token <= holds[i - 1].token)
      fail_msg("token %" PRIu64 " acquired after %" PRIu64, holds[i].token,
               holds[i - 1].token);
    /* The next holder got it only after the previous one let go. */
    if (holds[i - 1].released && holds[i].got_us < holds[i - 1].release_us)
      fail_msg("holders of tokens %" PRIu64 " and %" PRIu64 " overlap",
               holds[i - 1].token, holds[i].token);
    if (!holds[i - 1].released &&
        holds[i].got_us < holds[i - 1].got_us + (uint64_t)LEASE_MS * 1000)
      fail_msg("token %" PRIu64 " taken within %" PRIu64 "'s lease",
               holds[i].token, holds[i - 1].token);
  }
}

/* ------------------------------------------------------------------------
 * 3. The CLI's other forms
 * ------------------------------------------------------------------------ */

static void lock_cli(void **state) {
  (void)state;
  ensure_cluster();
  int p0 = nodes[0].port, p1 = nodes[1].port;
  char out[4096];
  expect_cli(p0, 0, "free, last token 0", NULL, 0, "lock status cli-lock");
  expect_cli(p0, 0, "\"token\":1", out, sizeof out,
             "--json lock acquire cli-lock --ttl 60000");
  expect_cli(p1, 1, "held by", NULL, 0, "lock acquire cli-lock --ttl 1000");
  expect_cli(p1, 0, "renewed", NULL, 0, "lock renew cli-lock 1 --ttl 60000");
  expect_cli(p1, 1, "not held at that token", NULL, 0,
             "lock renew cli-lock 7 --ttl 1000");
  expect_cli(p0, 1, "not held at that token", NULL, 0,
             "lock release cli-lock 2");
  expect_cli(p0, 0, "released", NULL, 0, "lock release cli-lock 1");
  expect_cli(p1, 0, "free, last token 1", NULL, 0, "lock status cli-lock");
  /* --wait: free now, so at once; token 2 (never 1 again). */
  expect_cli(p1, 0, "2", NULL, 0, "lock acquire cli-lock --ttl 300 --wait 100");
  /* Held for 300 ms (+500 ms allowance): --wait 3000 gets it after. */
  expect_cli(p0, 0, "3", NULL, 0,
             "lock acquire cli-lock --ttl 1000 --wait 3000");
  /* Fenced writes on a key, and the type rules around it. */
  expect_cli(p0, 0, "applied", NULL, 0, "put cli-fk v3 --fence cli-lock:3");
  expect_cli(p1, 1, "fenced: token 2 is below 3", NULL, 0,
             "put cli-fk v2 --fence cli-lock:2");
  expect_cli(p1, 0, "v3", NULL, 0, "get cli-fk --serial");
  expect_cli(p1, 2, "ETYPE", NULL, 0, "put cli-fk plain --if-value v3");
  expect_cli(p1, 2, "NAME:TOKEN", NULL, 0, "put cli-fk x --fence nocolon");
  /* The lock namespace is the lock commands' only. */
  expect_cli(p0, 2, "reserved", NULL, 0,
             "put $(printf '\\301')lock:cli-lock "
             "x --if-absent");
  expect_cli(p1, 1, "reserved", NULL, 0,
             "put $(printf '\\301')lock:cli-lock x");
  /* A CAS value never passes for a record. */
  expect_cli(p1, 2, "reserved for lock and fenced records", NULL, 0,
             "put cli-magic \"$(printf '\\301LCK')\" --if-absent");
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
      TIMED(paused_holder_is_fenced),
      TIMED(tokens_grow_and_holders_never_overlap),
      TIMED(lock_cli),
  };
  int failed = cmocka_run_group_tests_name("node_lock", tests, NULL, teardown);
  return harness_finish(failed);
}
