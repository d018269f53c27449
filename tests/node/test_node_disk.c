/* test_node_disk.c: a full data folder on real processes (issue 17): three
 * chorusd at N=3, node n0's data folder on a 64 MiB tmpfs that a filler
 * file takes below n0's reserve (--min-free-mb 16).
 *
 *   1. healthy: QUORUM writes through n0 are acknowledged;
 *   2. full: writes through n0 are refused with ENOSPC ("data folder
 *      full"), certainly not applied, while reads through n0 and QUORUM
 *      reads and writes through n1 and n2 keep working; n0 logs the
 *      transition once and keeps running;
 *   3. n0 killed (-9) and restarted on the still-full folder: it starts
 *      read-only with a log line saying so, serves reads, refuses writes;
 *   4. the filler deleted: writes through n0 resume without a restart;
 *   5. every acknowledged write reads back, through every node.
 *
 * Needs root to mount the tmpfs: otherwise it says why and exits 77
 * (skipped). Every child is killed and the tmpfs unmounted at exit, also
 * on a failure or a signal. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "libchorus.h"

#define NODES 3
#define RESERVE_MB 16
#define KEYS_PER_PHASE 20

static const char *chorusd;
static char root[64], mnt[128];
static bool mounted;
static pid_t pid[NODES];
static int port[NODES];
static char addr[NODES][32], logpath[NODES][160], data[NODES][160];

/* ------------------------------------------------------------------------
 * Processes, folders, failures
 * ------------------------------------------------------------------------ */

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static void node_kill(int i) {
  if (pid[i] <= 0)
    return;
  kill(pid[i], SIGKILL);
  waitpid(pid[i], NULL, 0);
  pid[i] = 0;
}

static void cleanup(void) {
  for (int i = 0; i < NODES; i++)
    node_kill(i);
  if (mounted && umount2(mnt, MNT_DETACH) == 0)
    mounted = false;
  if (root[0])
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  root[0] = '\0';
}

static void on_signal(int sig) {
  cleanup();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("node-disk: ");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}

/* fail: the test failed: n0's log tail, then exit 1 (cleanup runs). */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("node-disk: FAILED: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "tail -n 15 %s", logpath[0]);
  fflush(stdout);
  if (system(cmd) != 0)
    printf("(no log)\n");
  exit(1);
}

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond))                                                               \
      fail(__VA_ARGS__);                                                       \
  } while (0)

static int free_port(void) {
  for (int tries = 0; tries < 50; tries++) {
    int t = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(t, (struct sockaddr *)&a, sizeof a) != 0) {
      close(t);
      continue;
    }
    getsockname(t, (struct sockaddr *)&a, &al);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    bool ok = bind(u, (struct sockaddr *)&a, sizeof a) == 0;
    int p = ntohs(a.sin_port);
    close(u);
    close(t);
    if (ok)
      return p;
  }
  fail("no free port");
  return 0;
}

static void node_start(int i) {
  char id[16], seeds[128];
  snprintf(id, sizeof id, "n%d", i);
  snprintf(seeds, sizeof seeds, "%s,%s", addr[0], addr[1]);
  pid_t p = fork();
  CHECK(p >= 0, "fork: %s", strerror(errno));
  if (p == 0) {
    int fd = open(logpath[i], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execl(chorusd, chorusd, "--id", id, "--listen", addr[i], "--data", data[i],
          "--seeds", seeds, "--cluster", "disk", "--replicas", "3", "--profile",
          "local", "--timeout", "3000", "--min-free-mb", i == 0 ? "16" : "0",
          (char *)NULL);
    _exit(127);
  }
  pid[i] = p;
}

static bool alive(int i) {
  int st;
  return pid[i] > 0 && waitpid(pid[i], &st, WNOHANG) == 0;
}

static uint64_t avail_of(const char *path) {
  struct statvfs v;
  if (statvfs(path, &v) != 0)
    fail("statvfs %s: %s", path, strerror(errno));
  return (uint64_t)v.f_bavail * v.f_frsize;
}

/* count_in_log: lines of node @i's log that contain @needle. */
static int count_in_log(int i, const char *needle) {
  FILE *f = fopen(logpath[i], "r");
  if (f == NULL)
    return 0;
  char line[1024];
  int n = 0;
  while (fgets(line, sizeof line, f))
    n += strstr(line, needle) != NULL;
  fclose(f);
  return n;
}

/* ------------------------------------------------------------------------
 * Clients and the record of acknowledged writes
 * ------------------------------------------------------------------------ */

static struct chorus_client *client_of(int i) {
  struct chorus_config cfg;
  chorus_config_init(&cfg);
  cfg.cluster = "disk";
  cfg.connect_timeout_ms = 1000;
  struct chorus_client *c = NULL;
  char err[CHORUS_ERRMSG_SIZE];
  if (chorus_client_open(addr[i], &cfg, &c, err) != CHORUS_OK)
    fail("client of n%d: %s", i, err);
  return c;
}

static const struct chorus_opts quorum = {.r = CHORUS_QUORUM,
                                          .w = CHORUS_QUORUM};

#define MAX_ACKED 256
static char acked[MAX_ACKED][32], acked_value[MAX_ACKED][32];
static int nacked;

/* put: one QUORUM write through node @i; acknowledged ones are recorded.
 * Returns the status; *@res (may be NULL) gets the result. */
static int put(int i, const char *key, const char *value,
               struct chorus_result *out) {
  struct chorus_client *c = client_of(i);
  struct chorus_result res;
  int rc = chorus_put(c, key, strlen(key), value, strlen(value), NULL, 0,
                      &quorum, &res);
  if (rc == CHORUS_OK) {
    CHECK(nacked < MAX_ACKED, "too many writes");
    snprintf(acked[nacked], sizeof acked[nacked], "%s", key);
    snprintf(acked_value[nacked], sizeof acked_value[nacked], "%s", value);
    nacked++;
  }
  if (out != NULL)
    chorus_result_move(out, &res);
  chorus_result_free(&res);
  chorus_client_close(c);
  return rc;
}

/* get_is: whether a QUORUM read through node @i finds exactly @value. */
static int get_is(int i, const char *key, const char *value) {
  struct chorus_client *c = client_of(i);
  struct chorus_result res;
  int rc = chorus_get(c, key, strlen(key), &quorum, &res);
  if (rc == CHORUS_OK)
    rc = res.nvalues == 1 && res.values[0].len == strlen(value) &&
                 memcmp(res.values[0].ptr, value, res.values[0].len) == 0
             ? CHORUS_OK
             : CHORUS_ENOTFOUND;
  chorus_result_free(&res);
  chorus_client_close(c);
  return rc;
}

/* write_phase: @n writes through node @i named @prefix, all acknowledged. */
static void write_phase(int i, const char *prefix, int n) {
  for (int k = 0; k < n; k++) {
    char key[32], value[32];
    snprintf(key, sizeof key, "%s%02d", prefix, k);
    snprintf(value, sizeof value, "%s-v%02d", prefix, k);
    int rc = put(i, key, value, NULL);
    CHECK(rc == CHORUS_OK, "write %s through n%d: %s", key, i,
          chorus_errname(rc));
  }
}

/* wait_writable: until a write through node @i is acknowledged (the
 * cluster formed, or space came back); the seconds it took. Each try
 * writes a key of its own (@prefix and a number): a second blind write of
 * one key would be a sibling of the first. */
static double wait_writable(int i, const char *prefix, double limit) {
  double t0 = now_s();
  for (int k = 0;; k++) {
    char key[32];
    snprintf(key, sizeof key, "%s%03d", prefix, k);
    if (put(i, key, "probe", NULL) == CHORUS_OK)
      return now_s() - t0;
    if (now_s() - t0 > limit)
      fail("no write through n%d acknowledged within %.0f s", i, limit);
    sleep_ms(100);
  }
}

/* all_normal: node @i has applied metadata in which all NODES members own
 * their tokens (a node started beside the seeds joins as `joining` and is
 * promoted a moment later: until then the replicas of a key are fewer). */
static bool all_normal(int i) {
  struct chorus_client *c = client_of(i);
  struct chorus_cluster_status *st = NULL;
  bool ok = chorus_cluster_status(c, &st) == CHORUS_OK && st->nmembers == NODES;
  for (size_t m = 0; ok && m < st->nmembers; m++)
    ok = st->members[m].state == CHORUS_META_NORMAL;
  chorus_cluster_status_free(st);
  chorus_client_close(c);
  return ok;
}

static double wait_all_normal(double limit) {
  double t0 = now_s();
  for (int i = 0; i < NODES; i++)
    while (!all_normal(i)) {
      if (now_s() - t0 > limit)
        fail("n%d: not every member normal within %.0f s", i, limit);
      sleep_ms(100);
    }
  return now_s() - t0;
}

/* ------------------------------------------------------------------------
 * The run
 * ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  chorusd = argc > 1 ? argv[1] : getenv("CHORUSD");
  if (chorusd == NULL) {
    fprintf(stderr, "usage: test_node_disk CHORUSD (or $CHORUSD)\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  double t_start = now_s();
  snprintf(root, sizeof root, "/tmp/chorus-disk-XXXXXX");
  if (mkdtemp(root) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  atexit(cleanup);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  snprintf(mnt, sizeof mnt, "%s/small", root);
  if (mkdir(mnt, 0755) != 0)
    fail("mkdir %s: %s", mnt, strerror(errno));
  if (mount("tmpfs", mnt, "tmpfs", 0, "size=64m") != 0) {
    printf("node-disk: skipped: cannot mount a 64 MiB tmpfs on %s: %s (the "
           "test needs root)\n",
           mnt, strerror(errno));
    return 77;
  }
  mounted = true;
  for (int i = 0; i < NODES; i++) {
    port[i] = free_port();
    snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", port[i]);
    snprintf(logpath[i], sizeof logpath[i], "%s/n%d.log", root, i);
    if (i == 0)
      snprintf(data[i], sizeof data[i], "%s/db", mnt);
    else
      snprintf(data[i], sizeof data[i], "%s/n%d", root, i);
  }
  for (int i = 0; i < NODES; i++)
    node_start(i);

  /* 1. Healthy. */
  say("cluster formed in %.1f s", wait_writable(0, "probe", 20));
  say("every member normal after %.1f s more", wait_all_normal(20));
  write_phase(0, "a", KEYS_PER_PHASE);

  /* 2. Another file takes n0's folder below its reserve. */
  char filler[192];
  snprintf(filler, sizeof filler, "%s/filler", mnt);
  uint64_t leave = 4u << 20; /* 4 MiB < --min-free-mb 16 */
  uint64_t take = avail_of(mnt) - leave;
  int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0, "create %s: %s", filler, strerror(errno));
  CHECK(posix_fallocate(fd, 0, (off_t)take) == 0, "fallocate %s", filler);
  close(fd);
  say("filler took %" PRIu64 " MiB; %" PRIu64 " KiB left (reserve %d MiB)",
      take >> 20, avail_of(mnt) >> 10, RESERVE_MB);
  struct chorus_result res;
  double t0 = now_s();
  int rc;
  for (int k = 0;; k++) {
    char key[32];
    snprintf(key, sizeof key, "full%03d", k);
    memset(&res, 0, sizeof res);
    rc = put(0, key, "x", &res);
    if (rc != CHORUS_OK)
      break;
    CHECK(now_s() - t0 < 5, "writes through n0 still acknowledged after 5 s");
    chorus_result_free(&res);
    sleep_ms(50);
  }
  CHECK(rc == CHORUS_ENOSPC, "write through full n0: %s (%s), want ENOSPC",
        chorus_errname(rc), res.errmsg);
  CHECK(strstr(res.errmsg, "data folder full (") != NULL, "ENOSPC text: \"%s\"",
        res.errmsg);
  CHECK(!res.maybe_applied, "an ENOSPC refusal is never maybe-applied");
  say("n0 refuses writes %.1f s after the fill: \"%s\"", now_s() - t0,
      res.errmsg);
  chorus_result_free(&res);
  for (int k = 0; k < 5; k++) {
    char key[32];
    snprintf(key, sizeof key, "refused%d", k);
    rc = put(0, key, "x", NULL);
    CHECK(rc == CHORUS_ENOSPC, "write %s through full n0: %s", key,
          chorus_errname(rc));
  }
  for (int k = 0; k < KEYS_PER_PHASE; k++) {
    char key[32], value[32];
    snprintf(key, sizeof key, "a%02d", k);
    snprintf(value, sizeof value, "a-v%02d", k);
    rc = get_is(0, key, value);
    CHECK(rc == CHORUS_OK, "read %s through full n0: %s", key,
          chorus_errname(rc));
  }
  write_phase(1, "b", KEYS_PER_PHASE / 2);
  write_phase(2, "c", KEYS_PER_PHASE / 2);
  for (int k = 0; k < KEYS_PER_PHASE / 2; k++) {
    char key[32], value[32];
    snprintf(key, sizeof key, "b%02d", k);
    snprintf(value, sizeof value, "b-v%02d", k);
    CHECK(get_is(2, key, value) == CHORUS_OK, "read %s through n2", key);
  }
  CHECK(alive(0), "n0 exited on the full disk");
  CHECK(count_in_log(0, "writes refused with ENOSPC until space returns") == 1,
        "n0 logged the full folder %d times, want once",
        count_in_log(0, "writes refused with ENOSPC until space returns"));
  say("full: reads through n0 and QUORUM through n1, n2 served");

  /* 3. n0 killed and restarted on the still-full folder. */
  node_kill(0);
  node_start(0);
  t0 = now_s();
  for (;;) {
    CHECK(alive(0), "n0 exited at a restart on the full folder");
    if (get_is(0, "a00", "a-v00") == CHORUS_OK)
      break;
    CHECK(now_s() - t0 < 15, "n0 serves no read after its restart");
    sleep_ms(100);
  }
  CHECK(count_in_log(0, "started read-only") == 1,
        "n0 did not log its read-only start");
  rc = put(0, "restarted", "x", NULL);
  CHECK(rc == CHORUS_ENOSPC, "write through restarted full n0: %s",
        chorus_errname(rc));
  say("restarted on the full folder: read-only, reads served (%.1f s)",
      now_s() - t0);

  /* 4. Space comes back. */
  CHECK(unlink(filler) == 0, "unlink %s: %s", filler, strerror(errno));
  say("filler deleted: writes through n0 resume after %.1f s",
      wait_writable(0, "resumed", 10));
  CHECK(count_in_log(0, "writes resume") >= 1, "n0 did not log the resume");
  write_phase(0, "d", KEYS_PER_PHASE / 2);
  CHECK(alive(0) && alive(1) && alive(2), "a node exited");

  /* 5. Every acknowledged write (each of its own key), through every
   * node. */
  int checked = 0;
  for (int k = 0; k < nacked; k++) {
    for (int i = 0; i < NODES; i++) {
      rc = get_is(i, acked[k], acked_value[k]);
      CHECK(rc == CHORUS_OK, "acknowledged %s=%s not read through n%d: %s",
            acked[k], acked_value[k], i, chorus_errname(rc));
    }
    checked++;
  }
  say("%d acknowledged keys read back through all %d nodes; 0 lost", checked,
      NODES);
  say("passed in %.1f s", now_s() - t_start);
  return 0;
}
