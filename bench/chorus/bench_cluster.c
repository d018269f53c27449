/* bench_cluster.c: starts, watches, kills and stops local chorusd processes
 * for chorus-bench (bench.h), and reads their CPU time from /proc. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "chorus_error.h"
#include "libchorus.h"

/* Clusters to stop at exit or on a signal. A run uses one or two. */
#define MAX_REGISTERED 4
static struct bench_cluster *registered[MAX_REGISTERED];
static bool hooks_installed;

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static void stop_registered(void) {
  for (int i = 0; i < MAX_REGISTERED; i++)
    if (registered[i] != NULL)
      bench_cluster_stop(registered[i]);
}

/* A signal kills the nodes at once (kill() is async-signal-safe) and exits
 * through exit() so the atexit hook still removes the data folders. */
static void on_signal(int sig) {
  for (int i = 0; i < MAX_REGISTERED; i++) {
    struct bench_cluster *c = registered[i];
    if (c == NULL)
      continue;
    for (unsigned k = 0; k < c->count; k++)
      if (c->nodes[k].pid > 0)
        kill(c->nodes[k].pid, SIGKILL);
  }
  signal(sig, SIG_DFL);
  exit(128 + sig);
}

static void register_cluster(struct bench_cluster *c) {
  if (!hooks_installed) {
    atexit(stop_registered);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    hooks_installed = true;
  }
  for (int i = 0; i < MAX_REGISTERED; i++)
    if (registered[i] == c)
      return;
  for (int i = 0; i < MAX_REGISTERED; i++)
    if (registered[i] == NULL) {
      registered[i] = c;
      return;
    }
}

static void unregister_cluster(struct bench_cluster *c) {
  for (int i = 0; i < MAX_REGISTERED; i++)
    if (registered[i] == c)
      registered[i] = NULL;
}

/* Forks and execs chorusd for node @i. The child asks the kernel to kill it
 * when the bench dies (PR_SET_PDEATHSIG), so even a crash of chorus-bench
 * leaves no node running. */
static int spawn(struct bench_cluster *c, unsigned i, char *errmsg) {
  struct bench_node *n = &c->nodes[i];
  const char *seed = c->nodes[0].addr;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    return chorus_errf(errmsg, CHORUS_EIO, "fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(1);
    if (n->netns > 0 && setns(n->netns, CLONE_NEWNET) != 0)
      _exit(126);
    int fd = open(n->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    static char pem[512], key[512], ca[512];
    snprintf(pem, sizeof pem, "%s/node.pem", c->tls_dir);
    snprintf(key, sizeof key, "%s/node.key", c->tls_dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", c->tls_dir);
    if (c->user[0])
      setenv("CHORUS_ADMIN_PASSWORD", c->password, 1);
    const char *argv[40] = {
        c->chorusd, "--id",        n->id,          "--listen",    n->addr,
        "--data",   n->data,       "--seeds",      seed,          "--cluster",
        c->cluster, "--replicas",  c->replicas,    "--dc",        n->dc,
        "--rack",   "r1",          "--durability", c->durability, "--profile",
        "local",    "--log-level", "warn"};
    size_t a = 0;
    while (argv[a] != NULL)
      a++;
    if (c->user[0]) {
      argv[a++] = "--auth";
      argv[a++] = "required";
      argv[a++] = "--admin-user";
      argv[a++] = c->user;
      /* Cheap Argon2id: a login is per connection, and what a bench
       * measures is the cost per request (each of its clients would
       * otherwise spend 64 MiB and ~0.1 s of CPU before its first). */
      argv[a++] = "--admin-kdf";
      argv[a++] = "1:64";
    }
    if (c->tls_dir[0]) {
      const char *tls[] = {"--tls-cert", pem,        "--tls-key",    key,
                           "--tls-ca",   ca,         "--client-tls", "required",
                           "--peer-tls", c->peer_tls};
      for (size_t t = 0; t < sizeof tls / sizeof tls[0]; t++)
        argv[a++] = tls[t];
    }
    execv(c->chorusd, (char *const *)(uintptr_t)argv);
    fprintf(stderr, "exec %s: %s\n", c->chorusd, strerror(errno));
    _exit(127);
  }
  n->pid = pid;
  n->killed = false;
  n->cpu_last = 0.0;
  return CHORUS_OK;
}

/* Prints the last lines of node @i's log to stderr (a failed start). */
static void show_log(const struct bench_node *n) {
  FILE *f = fopen(n->log, "r");
  if (f == NULL)
    return;
  char lines[8][256];
  int count = 0;
  while (fgets(lines[count % 8], sizeof lines[0], f) != NULL)
    count++;
  fclose(f);
  int first = count > 8 ? count - 8 : 0;
  for (int k = first; k < count; k++)
    fprintf(stderr, "  %s: %s", n->id, lines[k % 8]);
}

/* Node @i's view: every running node in the ring, up, and alive. */
static bool node_sees_all(const struct bench_cluster *c, unsigned i,
                          unsigned want) {
  struct chorus_config cfg;
  chorus_config_init(&cfg);
  cfg.cluster = c->cluster;
  char ca[512];
  if (c->tls_dir[0]) {
    snprintf(ca, sizeof ca, "%s/ca.pem", c->tls_dir);
    cfg.tls_ca = ca;
  }
  if (c->user[0]) {
    cfg.user = c->user;
    cfg.password = c->password;
  }
  cfg.connect_timeout_ms = 500;
  cfg.default_timeout_ms = 500;
  cfg.grace_ms = 200;
  cfg.seed = 1;
  struct chorus_client *cl = NULL;
  if (chorus_client_open(c->nodes[i].addr, &cfg, &cl, NULL) != CHORUS_OK)
    return false;
  struct chorus_result res = {0};
  bool ok = false;
  if (chorus_status(cl, &res) == CHORUS_OK) {
    unsigned up = 0;
    for (size_t k = 0; k < res.nnodes; k++)
      if (res.nodes[k].in_ring && res.nodes[k].ring_state == CHORUS_RING_UP &&
          res.nodes[k].member_state == CHORUS_MEMBER_ALIVE)
        up++;
    ok = up == want;
  }
  chorus_result_free(&res);
  chorus_client_close(cl);
  return ok;
}

/* Waits until every running node sees @want nodes up; fails early when a
 * node process exits. */
static int wait_converged(struct bench_cluster *c, unsigned want, double wait_s,
                          char *errmsg) {
  double deadline = mono_s() + wait_s;
  for (;;) {
    for (unsigned i = 0; i < c->count; i++) {
      struct bench_node *n = &c->nodes[i];
      int st;
      if (n->pid > 0 && waitpid(n->pid, &st, WNOHANG) == n->pid) {
        n->pid = 0;
        show_log(n);
        return chorus_errf(errmsg, CHORUS_EIO, "node %s exited (status %d)",
                           n->id, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
      }
    }
    bool all = true;
    for (unsigned i = 0; i < c->count && all; i++)
      if (c->nodes[i].pid > 0)
        all = node_sees_all(c, i, want);
    if (all)
      return CHORUS_OK;
    if (mono_s() > deadline) {
      for (unsigned i = 0; i < c->count; i++)
        show_log(&c->nodes[i]);
      return chorus_errf(errmsg, CHORUS_ETIMEDOUT,
                         "the ring did not show %u nodes up within %.0f s",
                         want, wait_s);
    }
    sleep_ms(100);
  }
}

int bench_cluster_start(struct bench_cluster *c, unsigned count, unsigned dcs,
                        unsigned port_base, double wait_s, char *errmsg) {
  if (count == 0 || count > BENCH_MAX_NODES)
    return chorus_errf(errmsg, CHORUS_EINVAL, "cluster size must be 1..%d",
                       BENCH_MAX_NODES);
  snprintf(c->dir, sizeof c->dir, "/tmp/chorus-bench-XXXXXX");
  if (mkdtemp(c->dir) == NULL)
    return chorus_errf(errmsg, CHORUS_EIO, "mkdtemp: %s", strerror(errno));
  c->count = count;
  register_cluster(c);
  for (unsigned i = 0; i < count; i++) {
    struct bench_node *n = &c->nodes[i];
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "n%u", i);
    snprintf(n->addr, sizeof n->addr, "127.0.0.1:%u", port_base + i);
    if (c->netns[0] > 0) {
      unsigned d = i % 2;
      n->netns = c->netns[d];
      snprintf(n->addr, sizeof n->addr, "%s:%u", c->host[d][i / 2],
               port_base + i);
      snprintf(n->dc, sizeof n->dc, "dc%u", d + 1);
    } else if (dcs > 1)
      snprintf(n->dc, sizeof n->dc, "dc%u", i % dcs);
    else
      snprintf(n->dc, sizeof n->dc, "dc1");
    snprintf(n->data, sizeof n->data, "%s/n%u", c->dir, i);
    snprintf(n->log, sizeof n->log, "%s/n%u.log", c->dir, i);
  }
  int rc = CHORUS_OK;
  for (unsigned i = 0; i < count && rc == CHORUS_OK; i++) {
    rc = spawn(c, i, errmsg);
    if (i == 0)
      sleep_ms(200); /* the seed listens before the others dial it */
  }
  if (rc == CHORUS_OK)
    rc = wait_converged(c, count, wait_s, errmsg);
  if (rc != CHORUS_OK)
    bench_cluster_stop(c);
  return rc;
}

void bench_cluster_seeds(const struct bench_cluster *c, unsigned first,
                         char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = '\0';
  for (unsigned k = 0; k < c->count; k++) {
    const struct bench_node *n = &c->nodes[(first + k) % c->count];
    if (n->killed || n->pid <= 0)
      continue;
    int w = snprintf(buf + len, cap - len, "%s%s", len ? "," : "", n->addr);
    if (w < 0 || (size_t)w >= cap - len)
      break;
    len += (size_t)w;
  }
}

double bench_proc_cpu(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1.0;
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[len] = '\0';
  /* the command name (field 2) may hold spaces: count from its ')' */
  char *p = strrchr(buf, ')');
  if (p == NULL)
    return -1.0;
  p++;
  unsigned long long utime = 0, stime = 0;
  /* after ')': field 3 (state) is token 0, so utime (14) is token 11 */
  char *save = NULL;
  int tok = 0;
  for (char *t = strtok_r(p, " ", &save); t != NULL;
       t = strtok_r(NULL, " ", &save), tok++) {
    if (tok == 11)
      utime = strtoull(t, NULL, 10);
    else if (tok == 12) {
      stime = strtoull(t, NULL, 10);
      break;
    }
  }
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

double bench_cluster_cpu(struct bench_cluster *c) {
  double sum = 0.0;
  for (unsigned i = 0; i < c->count; i++) {
    struct bench_node *n = &c->nodes[i];
    if (n->pid > 0 && !n->killed) {
      double v = bench_proc_cpu(n->pid);
      if (v >= 0.0)
        n->cpu_last = v;
    }
    sum += n->cpu_base + n->cpu_last;
  }
  return sum;
}

void bench_cluster_kill(struct bench_cluster *c, unsigned i) {
  struct bench_node *n = &c->nodes[i];
  if (n->pid <= 0 || n->killed)
    return;
  double v = bench_proc_cpu(n->pid);
  if (v >= 0.0)
    n->cpu_last = v;
  kill(n->pid, SIGKILL);
  waitpid(n->pid, NULL, 0);
  n->killed = true;
}

int bench_cluster_restart(struct bench_cluster *c, unsigned i, double wait_s,
                          char *errmsg) {
  struct bench_node *n = &c->nodes[i];
  if (!n->killed)
    return CHORUS_OK;
  n->cpu_base += n->cpu_last;
  n->pid = 0;
  int rc = spawn(c, i, errmsg);
  if (rc != CHORUS_OK)
    return rc;
  return wait_converged(c, c->count, wait_s, errmsg);
}

static int rm_one(const char *path, const struct stat *sb, int type,
                  struct FTW *ftw) {
  remove(path); /* best effort: keep going */
  return 0;
}

void bench_cluster_stop(struct bench_cluster *c) {
  bool any = false;
  for (unsigned i = 0; i < c->count; i++)
    if (c->nodes[i].pid > 0 && !c->nodes[i].killed) {
      kill(c->nodes[i].pid, SIGTERM);
      any = true;
    }
  double deadline = mono_s() + 5.0;
  while (any) {
    any = false;
    for (unsigned i = 0; i < c->count; i++) {
      struct bench_node *n = &c->nodes[i];
      if (n->pid <= 0 || n->killed)
        continue;
      if (waitpid(n->pid, NULL, WNOHANG) == n->pid) {
        n->pid = 0;
        continue;
      }
      if (mono_s() > deadline) {
        kill(n->pid, SIGKILL);
        waitpid(n->pid, NULL, 0);
        n->pid = 0;
        continue;
      }
      any = true;
    }
    if (any)
      sleep_ms(20);
  }
  for (unsigned i = 0; i < c->count; i++)
    c->nodes[i].pid = 0;
  if (c->dir[0] != '\0' && getenv("CHORUS_BENCH_KEEP") == NULL)
    nftw(c->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  c->dir[0] = '\0';
  unregister_cluster(c);
}
