/* fault_run.c: chorusd clusters in network namespaces under a seeded
 * nemesis (partitions, loss, kill -9, pauses, clock skew), a recorded
 * workload through libchorus, and the simulator's checkers on the history.
 *
 * HOW ONE SCHEDULE RUNS (DESIGN.md §8 level 4; Jepsen's method)
 *
 *   1. Every node gets its own network namespace, joined by veth pairs to a
 *      bridge in the root namespace (where the workload runs), and an
 *      nftables table whose input/output chains the nemesis fills.
 *   2. chorusd starts in each namespace (group durability, local SWIM
 *      profile); the run waits until every node sees every member alive.
 *   3. Workload threads issue random operations through libchorus (unique
 *      kv values written after reading, blind kv writes, counter increments
 *      with op ids, set adds, reads), each recorded with invoke and
 *      completion times and its outcome (ok / fail / unknown).
 *   4. The nemesis, driven by the schedule's seed, applies one fault after
 *      another: partitions (random halves, one node isolated, one-way),
 *      random loss (nft numgen), kill -9 then restart, SIGSTOP/SIGCONT, a
 *      restart under a skewed wall clock (libfaketime, monotonic untouched).
 *      Each step is printed.
 *   5. Heal: rules flushed, every node continued or restarted, the workload
 *      stopped. Every key is read from every node at r=1 until all agree
 *      (convergence time), the final states go into the history, and the
 *      checkers of tests/sim judge it: lost acknowledged writes, phantoms,
 *      false siblings, convergence, counter bounds, lost set adds.
 *   6. Everything is torn down, also on failure (atexit and signals).
 *
 * The durability check (--durability-rounds R) kills -9 one node during a
 * stream of W=1 writes to it, R times, and reads every acknowledged key back
 * from it after each restart: not one may be missing.
 *
 * Needs root, `ip netns`, nft (nftables) and, for skew, libfaketime; without
 * them it prints why and exits 77 (skipped).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chorus_prng.h"
#include "libchorus.h"
#include "sim_history.h"

#define MAXN 5
#define MAX_CLIENTS 8
#define PORT 7400
#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

static int verbose;

/* ------------------------------------------------------------------------
 * Time and shell
 * ------------------------------------------------------------------------ */

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_ms(uint64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* sh: runs a shell command; its output is discarded unless verbose.
 * Returns the exit status (or -1). */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
  char cmd[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  char full[1100];
  snprintf(full, sizeof full, "%s%s", cmd, verbose ? "" : " >/dev/null 2>&1");
  if (verbose)
    fprintf(stderr, "+ %s\n", cmd);
  int st = system(full);
  return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static uint64_t t0_us;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stdout, "[%7.3f] ", (double)(mono_us() - t0_us) / 1e6);
  vfprintf(stdout, fmt, ap);
  fputc('\n', stdout);
  fflush(stdout);
  va_end(ap);
}

/* ------------------------------------------------------------------------
 * The cluster
 * ------------------------------------------------------------------------ */

static char base_dir[200];

struct cluster {
  int n;
  int tag; /* names and subnet: unique per run */
  char dir[256];
  const char *chorusd;
  pid_t pid[MAXN];
  bool paused[MAXN];
  int skew_s[MAXN];
  char ns[MAXN][32];
  char ip[MAXN][24];
  char addr[MAXN][32];
  char seeds[256];
  bool net_up;
};

static struct cluster C;

static void node_start(int i) {
  char data[300], log[300];
  snprintf(data, sizeof data, "%s/n%d", C.dir, i);
  snprintf(log, sizeof log, "%s/n%d.log", C.dir, i);
  char id[16];
  snprintf(id, sizeof id, "n%d", i);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(1);
  }
  if (pid == 0) {
    C.n = 0; /* never tear the cluster down from here (atexit) */
    C.net_up = false;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    if (C.skew_s[i] != 0) {
      char ft[32];
      snprintf(ft, sizeof ft, "%+ds", C.skew_s[i]);
      setenv("LD_PRELOAD", FAKETIME_LIB, 1);
      setenv("FAKETIME", ft, 1);
      setenv("DONT_FAKE_MONOTONIC", "1", 1);
      /* A sanitizer build wants its runtime first among the libraries;
       * libfaketime comes first here, which is harmless. */
      const char *asan = getenv("ASAN_OPTIONS");
      char opts[512];
      snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0",
               asan ? asan : "", asan && *asan ? ":" : "");
      setenv("ASAN_OPTIONS", opts, 1);
    }
    execlp("ip", "ip", "netns", "exec", C.ns[i], C.chorusd, "--id", id,
           "--listen", C.addr[i], "--data", data, "--seeds", C.seeds,
           "--cluster", "fault", "--replicas", "3", "--durability", "group",
           "--profile", "local", (char *)NULL);
    _exit(127);
  }
  C.pid[i] = pid;
  C.paused[i] = false;
}

static void node_kill(int i) {
  if (C.pid[i] <= 0)
    return;
  kill(C.pid[i], SIGKILL);
  waitpid(C.pid[i], NULL, 0);
  C.pid[i] = 0;
  C.paused[i] = false;
}

static void flush_rules(int i) {
  sh("ip netns exec %s nft flush chain inet chaos input", C.ns[i]);
  sh("ip netns exec %s nft flush chain inet chaos output", C.ns[i]);
}

static void teardown(void) {
  for (int i = 0; i < C.n; i++) {
    if (C.pid[i] > 0) {
      kill(C.pid[i], SIGCONT);
      node_kill(i);
    }
  }
  if (!C.net_up)
    return;
  for (int i = 0; i < C.n; i++) {
    sh("ip netns del %s", C.ns[i]);
    sh("ip link del chf%dv%d", C.tag, i);
  }
  sh("ip link del chf%dbr", C.tag);
  C.net_up = false;
}

static void on_signal(int sig) {
  teardown();
  signal(sig, SIG_DFL);
  raise(sig);
}

static int net_setup(int n) {
  C.n = n;
  C.tag = (int)(getpid() % 200) + 20;
  C.net_up = true;
  if (sh("ip link add chf%dbr type bridge", C.tag) != 0 ||
      sh("ip addr add 10.%d.0.254/24 dev chf%dbr", C.tag, C.tag) != 0 ||
      sh("ip link set chf%dbr up", C.tag) != 0)
    return -1;
  C.seeds[0] = '\0';
  for (int i = 0; i < n; i++) {
    snprintf(C.ns[i], sizeof C.ns[i], "chf%d-%d", C.tag, i);
    snprintf(C.ip[i], sizeof C.ip[i], "10.%d.0.%d", C.tag, i + 1);
    snprintf(C.addr[i], sizeof C.addr[i], "%s:%d", C.ip[i], PORT);
    if (sh("ip netns add %s", C.ns[i]) != 0 ||
        sh("ip link add chf%dv%d type veth peer name chf%dp%d", C.tag, i, C.tag,
           i) != 0 ||
        sh("ip link set chf%dp%d netns %s", C.tag, i, C.ns[i]) != 0 ||
        sh("ip netns exec %s ip link set lo up", C.ns[i]) != 0 ||
        sh("ip netns exec %s ip addr add %s/24 dev chf%dp%d", C.ns[i], C.ip[i],
           C.tag, i) != 0 ||
        sh("ip netns exec %s ip link set chf%dp%d up", C.ns[i], C.tag, i) !=
            0 ||
        sh("ip link set chf%dv%d master chf%dbr up", C.tag, i, C.tag) != 0)
      return -1;
    if (sh("ip netns exec %s nft add table inet chaos", C.ns[i]) != 0 ||
        sh("ip netns exec %s nft 'add chain inet chaos input { type filter "
           "hook input priority 0; }'",
           C.ns[i]) != 0 ||
        sh("ip netns exec %s nft 'add chain inet chaos output { type filter "
           "hook output priority 0; }'",
           C.ns[i]) != 0)
      return -1;
    size_t l = strlen(C.seeds);
    snprintf(C.seeds + l, sizeof C.seeds - l, "%s%s", i ? "," : "", C.addr[i]);
  }
  return 0;
}

/* A client of node @i alone (@i < 0: every node, failing over). */
static struct chorus_client *client_of(int i, uint64_t seed) {
  struct chorus_config cfg;
  chorus_config_init(&cfg);
  cfg.cluster = "fault";
  cfg.connect_timeout_ms = 500;
  cfg.grace_ms = 500;
  cfg.seed = seed;
  struct chorus_client *c = NULL;
  char err[CHORUS_ERRMSG_SIZE];
  if (chorus_client_open(i < 0 ? C.seeds : C.addr[i], &cfg, &c, err) !=
      CHORUS_OK) {
    fprintf(stderr, "fault-run: client: %s\n", err);
    exit(1);
  }
  return c;
}

/* The member state node @observer reports for node @subject (-1: none). */
static int member_state(int observer, int subject) {
  struct chorus_client *c = client_of(observer, 1);
  struct chorus_result res;
  int st = -1;
  if (chorus_status(c, &res) == CHORUS_OK) {
    for (size_t k = 0; k < res.nnodes; k++)
      if (strcmp(res.nodes[k].addr, C.addr[subject]) == 0)
        st = res.nodes[k].member_state;
  }
  chorus_result_free(&res);
  chorus_client_close(c);
  return st;
}

/* Hints node @holder keeps for @subject (-1 when unknown). */
static int64_t hints_for(int holder, int subject) {
  struct chorus_client *c = client_of(holder, 2);
  struct chorus_result res;
  int64_t h = -1;
  if (chorus_status(c, &res) == CHORUS_OK)
    for (size_t k = 0; k < res.nnodes; k++)
      if (strcmp(res.nodes[k].addr, C.addr[subject]) == 0)
        h = res.nodes[k].hints;
  chorus_result_free(&res);
  chorus_client_close(c);
  return h;
}

static bool all_alive(void) {
  for (int i = 0; i < C.n; i++)
    for (int j = 0; j < C.n; j++)
      if (i != j && member_state(i, j) != CHORUS_MEMBER_ALIVE)
        return false;
  return true;
}

static bool wait_until(bool (*pred)(void), uint64_t limit_ms) {
  uint64_t end = mono_us() + limit_ms * 1000;
  while (mono_us() < end) {
    if (pred())
      return true;
    sleep_ms(200);
  }
  return false;
}

/* ------------------------------------------------------------------------
 * The workload
 * ------------------------------------------------------------------------ */

#define KV_KEYS 4
#define COUNTER_KEYS 1
#define SET_KEYS 1

static struct {
  pthread_mutex_t mu;
  struct sim_history h;
  atomic_bool stop;
  atomic_uint_fast64_t next_value, next_id;
  int r, w;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void be64(uint8_t *b, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    b[i] = (uint8_t)v;
}

static uint64_t unbe64(const struct chorus_bytes *b) {
  uint64_t v = 0;
  for (size_t i = 0; i < b->len && i < 8; i++)
    v = v << 8 | b->ptr[i];
  return b->len == 8 ? v : UINT64_MAX; /* not a workload value */
}

static int64_t record_invoke(struct sim_hop *op, const char *key,
                             enum sim_op_type type) {
  pthread_mutex_lock(&W.mu);
  int64_t k = sim_history_key(&W.h, key, type);
  op->key = (uint32_t)k;
  op->invoke = mono_us() - t0_us;
  int64_t idx = k >= 0 ? sim_history_invoke(&W.h, op) : k;
  pthread_mutex_unlock(&W.mu);
  return idx;
}

static void record_done(int64_t idx, bool write,
                        const struct chorus_result *res, int64_t counter) {
  enum sim_outcome o =
      res->status == CHORUS_OK ? SIM_OK
      : write && (res->maybe_applied || res->status == CHORUS_ETIMEDOUT)
          ? SIM_UNKNOWN
          : SIM_FAIL;
  size_t n = 0;
  uint64_t *vals = calloc(res->nvalues + 1, sizeof *vals);
  if (vals == NULL)
    abort();
  for (size_t i = 0; o == SIM_OK && i < res->nvalues; i++)
    vals[n++] = unbe64(&res->values[i]);
  pthread_mutex_lock(&W.mu);
  (void)sim_history_complete(&W.h, (size_t)idx, o, mono_us() - t0_us, vals, n,
                             counter);
  pthread_mutex_unlock(&W.mu);
  free(vals);
}

static void *client_main(void *arg) {
  int me = (int)(intptr_t)arg;
  struct chorus_prng p;
  chorus_prng_seed(&p, 0xfa17 + (uint64_t)me);
  struct chorus_client *c = client_of(-1, 0x5eed + (uint64_t)me);
  struct chorus_opts o = {.r = W.r, .w = W.w, .timeout_ms = 1500};
  while (!atomic_load(&W.stop)) {
    char key[16];
    uint64_t dice = chorus_prng_below(&p, 100);
    int pick = (int)chorus_prng_below(&p, KV_KEYS + COUNTER_KEYS + SET_KEYS);
    struct sim_hop op = {.client = me, .node = -1};
    op.id = atomic_fetch_add(&W.next_id, 1) + 1;
    struct chorus_result res;
    if (pick < KV_KEYS) {
      snprintf(key, sizeof key, "kv%d", pick);
      if (dice < 60) {
        /* read, then write after what was read (covers it) */
        op.op = SIM_OP_GET;
        int64_t idx = record_invoke(&op, key, SIM_TYPE_KV);
        chorus_get(c, key, strlen(key), &o, &res);
        record_done(idx, false, &res, 0);
        if (res.status == CHORUS_OK && dice < 45) {
          struct sim_hop put = {.client = me, .node = -1, .op = SIM_OP_PUT};
          put.id = atomic_fetch_add(&W.next_id, 1) + 1;
          put.value = atomic_fetch_add(&W.next_value, 1) + 1;
          uint64_t cov[256];
          size_t nc = 0;
          for (size_t i = 0; i < res.nvalues && nc < 256; i++)
            cov[nc++] = unbe64(&res.values[i]);
          put.covers = cov;
          put.ncovers = nc;
          uint8_t v[8];
          be64(v, put.value);
          int64_t pidx = record_invoke(&put, key, SIM_TYPE_KV);
          struct chorus_result wr;
          chorus_put(c, key, strlen(key), v, 8, res.context.ptr,
                     res.context.len, &o, &wr);
          record_done(pidx, true, &wr, 0);
          chorus_result_free(&wr);
        }
      } else {
        op.op = SIM_OP_PUT;
        op.value = atomic_fetch_add(&W.next_value, 1) + 1;
        uint8_t v[8];
        be64(v, op.value);
        int64_t idx = record_invoke(&op, key, SIM_TYPE_KV);
        chorus_put(c, key, strlen(key), v, 8, NULL, 0, &o, &res);
        record_done(idx, true, &res, 0);
      }
    } else if (pick < KV_KEYS + COUNTER_KEYS) {
      snprintf(key, sizeof key, "ctr%d", pick - KV_KEYS);
      if (dice < 70) {
        op.op = SIM_OP_COUNTER_ADD;
        op.amount = (int64_t)chorus_prng_range(&p, 0, 8) - 3;
        if (op.amount == 0)
          op.amount = 1;
        struct chorus_opts co = o;
        co.op_id = op.id;
        int64_t idx = record_invoke(&op, key, SIM_TYPE_COUNTER);
        chorus_counter_add(c, key, strlen(key), op.amount, &co, &res);
        record_done(idx, true, &res, 0);
      } else {
        op.op = SIM_OP_COUNTER_READ;
        int64_t idx = record_invoke(&op, key, SIM_TYPE_COUNTER);
        chorus_counter_read(c, key, strlen(key), &o, &res);
        record_done(idx, false, &res, res.counter);
      }
    } else {
      snprintf(key, sizeof key, "set%d", pick - KV_KEYS - COUNTER_KEYS);
      if (dice < 70) {
        op.op = SIM_OP_SET_ADD;
        op.value = atomic_fetch_add(&W.next_value, 1) + 1;
        uint8_t v[8];
        be64(v, op.value);
        struct chorus_bytes m = {v, 8};
        int64_t idx = record_invoke(&op, key, SIM_TYPE_SET);
        chorus_set_add(c, key, strlen(key), &m, 1, &o, &res);
        record_done(idx, true, &res, 0);
      } else {
        op.op = SIM_OP_SET_READ;
        int64_t idx = record_invoke(&op, key, SIM_TYPE_SET);
        chorus_set_members(c, key, strlen(key), &o, &res);
        record_done(idx, false, &res, 0);
      }
    }
    chorus_result_free(&res);
    sleep_ms(chorus_prng_below(&p, 20));
  }
  chorus_client_close(c);
  return NULL;
}

/* ------------------------------------------------------------------------
 * Final states and convergence
 * ------------------------------------------------------------------------ */

struct view {
  uint64_t *vals; /* malloc'ed; view_free */
  size_t n;
  int64_t counter;
  bool ok;
};

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void read_view(int node, const struct sim_hkey *k, struct view *v) {
  memset(v, 0, sizeof *v);
  struct chorus_client *c = client_of(node, 3);
  struct chorus_opts o = {.r = 1, .timeout_ms = 1000};
  struct chorus_result res;
  int rc = k->type == SIM_TYPE_KV
               ? chorus_get(c, k->name, strlen(k->name), &o, &res)
           : k->type == SIM_TYPE_COUNTER
               ? chorus_counter_read(c, k->name, strlen(k->name), &o, &res)
               : chorus_set_members(c, k->name, strlen(k->name), &o, &res);
  if (rc == CHORUS_OK) {
    v->ok = true;
    v->counter = res.counter;
    if ((v->vals = calloc(res.nvalues + 1, sizeof *v->vals)) == NULL)
      abort();
    for (size_t i = 0; i < res.nvalues; i++)
      v->vals[v->n++] = unbe64(&res.values[i]);
    qsort(v->vals, v->n, sizeof v->vals[0], cmp_u64);
  }
  chorus_result_free(&res);
  chorus_client_close(c);
}

static void view_free(struct view *v) {
  free(v->vals);
  v->vals = NULL;
}

static bool converged(void) {
  for (size_t k = 0; k < W.h.nkeys; k++) {
    struct view a, b;
    read_view(0, &W.h.keys[k], &a);
    bool same = a.ok;
    for (int i = 1; i < C.n && same; i++) {
      read_view(i, &W.h.keys[k], &b);
      same = b.ok && a.n == b.n && a.counter == b.counter &&
             memcmp(a.vals, b.vals, a.n * sizeof a.vals[0]) == 0;
      view_free(&b);
    }
    view_free(&a);
    if (!same)
      return false;
  }
  return true;
}

static void record_finals(void) {
  for (size_t k = 0; k < W.h.nkeys; k++)
    for (int i = 0; i < C.n; i++) {
      struct view v;
      read_view(i, &W.h.keys[k], &v);
      if (!v.ok) {
        view_free(&v);
        continue;
      }
      struct sim_hfinal f = {.key = (uint32_t)k,
                             .node = i,
                             .values = v.vals,
                             .nvalues = v.n,
                             .counter = v.counter};
      (void)sim_history_final(&W.h, &f);
      view_free(&v);
    }
}

/* ------------------------------------------------------------------------
 * The nemesis
 * ------------------------------------------------------------------------ */

struct figures {
  double detect_ms[64];
  int ndetect;
  double replay_ms[64];
  int nreplay;
  double converge_ms;
  size_t ok, fail, unknown;
};

static void drop_between(int a, int b, bool both_ways) {
  sh("ip netns exec %s nft add rule inet chaos input ip saddr %s drop", C.ns[a],
     C.ip[b]);
  if (both_ways)
    sh("ip netns exec %s nft add rule inet chaos input ip saddr %s drop",
       C.ns[b], C.ip[a]);
}

static void heal_network(void) {
  for (int i = 0; i < C.n; i++)
    flush_rules(i);
}

/* Kills node @v and measures how long until another node calls it dead. */
static void kill_and_measure(int v, struct figures *fig) {
  int observer = (v + 1) % C.n;
  /* Detection is measured only from a member the observer holds alive
   * (a partition may have made it suspect already). */
  bool measure = C.pid[observer] > 0 && !C.paused[observer] &&
                 member_state(observer, v) == CHORUS_MEMBER_ALIVE;
  say("nemesis: kill -9 n%d", v);
  uint64_t t = mono_us();
  node_kill(v);
  while (measure && mono_us() - t < 20000000) {
    if (C.pid[observer] > 0 && !C.paused[observer] &&
        member_state(observer, v) == CHORUS_MEMBER_DEAD) {
      if (fig->ndetect < 64)
        fig->detect_ms[fig->ndetect++] = (double)(mono_us() - t) / 1000.0;
      say("nemesis: n%d sees n%d dead after %.0f ms", observer, v,
          (double)(mono_us() - t) / 1000.0);
      return;
    }
    sleep_ms(100);
  }
}

static void restart_and_measure(int v, struct figures *fig) {
  say("nemesis: restart n%d%s", v, C.skew_s[v] ? " (skewed clock)" : "");
  node_start(v);
  uint64_t t = mono_us();
  /* Hint replay: the others' hints for it drain. */
  while (mono_us() - t < 20000000) {
    int64_t pending = 0;
    for (int i = 0; i < C.n; i++)
      if (i != v && C.pid[i] > 0 && !C.paused[i]) {
        int64_t h = hints_for(i, v);
        pending += h > 0 ? h : 0;
      }
    if (pending == 0) {
      if (fig->nreplay < 64)
        fig->replay_ms[fig->nreplay++] = (double)(mono_us() - t) / 1000.0;
      say("nemesis: hints for n%d replayed after %.0f ms", v,
          (double)(mono_us() - t) / 1000.0);
      return;
    }
    sleep_ms(200);
  }
}

static void nemesis(struct chorus_prng *p, uint64_t chaos_ms,
                    struct figures *fig) {
  uint64_t end = mono_us() + chaos_ms * 1000;
  while (mono_us() < end) {
    int v = (int)chorus_prng_below(p, (uint64_t)C.n);
    switch (chorus_prng_below(p, 6)) {
    case 0: { /* halves */
      int a = v, b = (v + 1) % C.n;
      say("nemesis: partition {n%d%s} | rest", a, C.n > 3 ? ", next" : "");
      for (int i = 0; i < C.n; i++)
        for (int j = 0; j < C.n; j++) {
          bool ia = i == a || (C.n > 3 && i == b);
          bool ja = j == a || (C.n > 3 && j == b);
          if (ia && !ja)
            drop_between(i, j, true);
        }
      break;
    }
    case 1: { /* one way */
      int to = (v + 1 + (int)chorus_prng_below(p, (uint64_t)C.n - 1)) % C.n;
      say("nemesis: one-way drop n%d -> n%d", v, to);
      drop_between(to, v, false);
      break;
    }
    case 2: { /* loss */
      int pct = (int)chorus_prng_range(p, 5, 40);
      say("nemesis: %d%% loss on every node", pct);
      for (int i = 0; i < C.n; i++)
        sh("ip netns exec %s nft add rule inet chaos input numgen random "
           "mod 100 \\< %d drop",
           C.ns[i], pct);
      break;
    }
    case 3: /* kill -9 and restart */
      if (C.pid[v] > 0) {
        kill_and_measure(v, fig);
        sleep_ms(chorus_prng_range(p, 200, 1500));
        restart_and_measure(v, fig);
      }
      break;
    case 4: /* pause */
      if (C.pid[v] > 0 && !C.paused[v]) {
        uint64_t ms = chorus_prng_range(p, 500, 4000);
        say("nemesis: SIGSTOP n%d for %" PRIu64 " ms", v, ms);
        kill(C.pid[v], SIGSTOP);
        C.paused[v] = true;
        sleep_ms(ms);
        kill(C.pid[v], SIGCONT);
        C.paused[v] = false;
      }
      break;
    default: /* clock skew: restart under a shifted wall clock */
      if (C.pid[v] > 0 && access(FAKETIME_LIB, R_OK) == 0) {
        C.skew_s[v] = (int)chorus_prng_range(p, 0, 120) - 60;
        say("nemesis: n%d's wall clock %+d s", v, C.skew_s[v]);
        kill(C.pid[v], SIGTERM);
        waitpid(C.pid[v], NULL, 0);
        C.pid[v] = 0;
        node_start(v);
      }
      break;
    }
    sleep_ms(chorus_prng_range(p, 1000, 3000));
    if (chorus_prng_below(p, 2) == 0) {
      say("nemesis: heal network");
      heal_network();
    }
  }
}

/* ------------------------------------------------------------------------
 * Runs
 * ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  if (n == 0)
    return 0;
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

static double maximum(const double *v, int n) {
  double m = 0;
  for (int i = 0; i < n; i++)
    if (v[i] > m)
      m = v[i];
  return m;
}

static int run_schedule(int nodes, uint64_t seed, uint64_t chaos_ms,
                        int clients) {
  t0_us = mono_us();
  struct chorus_prng p;
  chorus_prng_seed(&p, seed);
  say("schedule: seed %" PRIu64 ", %d nodes, %" PRIu64 " ms of chaos", seed,
      nodes, chaos_ms);
  memset(C.skew_s, 0, sizeof C.skew_s);
  snprintf(C.dir, sizeof C.dir, "%s/s%" PRIu64, base_dir, seed);
  mkdir(C.dir, 0755);
  if (net_setup(nodes) != 0) {
    fprintf(stderr, "fault-run: network setup failed\n");
    return 1;
  }
  for (int i = 0; i < nodes; i++)
    node_start(i);
  if (!wait_until(all_alive, 30000)) {
    fprintf(stderr, "fault-run: the cluster did not form (logs in %s)\n",
            C.dir);
    return 1;
  }
  say("cluster formed");
  sim_history_init(&W.h);
  atomic_store(&W.stop, false);
  pthread_t th[MAX_CLIENTS];
  for (int i = 0; i < clients; i++)
    pthread_create(&th[i], NULL, client_main, (void *)(intptr_t)i);
  struct figures fig;
  memset(&fig, 0, sizeof fig);
  nemesis(&p, chaos_ms, &fig);
  say("heal: network, paused and dead nodes");
  heal_network();
  for (int i = 0; i < nodes; i++) {
    if (C.pid[i] > 0 && C.paused[i]) {
      kill(C.pid[i], SIGCONT);
      C.paused[i] = false;
    }
    if (C.pid[i] <= 0)
      node_start(i);
  }
  atomic_store(&W.stop, true);
  for (int i = 0; i < clients; i++)
    pthread_join(th[i], NULL);
  uint64_t heal = mono_us();
  bool conv = wait_until(converged, 60000);
  fig.converge_ms = (double)(mono_us() - heal) / 1000.0;
  say("converged: %s after %.0f ms", conv ? "yes" : "NO", fig.converge_ms);
  record_finals();
  for (size_t i = 0; i < W.h.nops; i++) {
    enum sim_outcome o = W.h.ops[i].outcome;
    fig.ok += o == SIM_OK;
    fig.fail += o == SIM_FAIL;
    fig.unknown += o == SIM_UNKNOWN || o == SIM_PENDING;
  }
  struct sim_check_report rep;
  memset(&rep, 0, sizeof rep);
  int verdict = conv ? sim_check_all(&W.h, 0, &rep) : 1;
  if (!conv)
    snprintf(rep.checker, sizeof rep.checker, "convergence");
  say("result: %s%s%s; ops %zu ok, %zu fail, %zu unknown; failure detection "
      "median %.0f ms max %.0f ms (%d); hint replay median %.0f ms max %.0f "
      "ms (%d); convergence %.0f ms",
      verdict == 0 ? "PASS" : "FAIL ", verdict == 0 ? "" : rep.checker,
      verdict == 0 ? "" : rep.message, fig.ok, fig.fail, fig.unknown,
      median(fig.detect_ms, fig.ndetect), maximum(fig.detect_ms, fig.ndetect),
      fig.ndetect, median(fig.replay_ms, fig.nreplay),
      maximum(fig.replay_ms, fig.nreplay), fig.nreplay, fig.converge_ms);
  sim_history_free(&W.h);
  teardown();
  return verdict == 0 ? 0 : 1;
}

/* Node 0 coordinates again (its start barrier is done): a read at r=1
 * (a write would pile up siblings of one key over a hundred rounds). */
static bool node0_ready(void) {
  struct chorus_client *c = client_of(0, 4);
  struct chorus_result res;
  struct chorus_opts o = {.r = 1, .timeout_ms = 1000};
  int rc = chorus_get(c, "ready", 5, &o, &res);
  chorus_result_free(&res);
  chorus_client_close(c);
  return rc == CHORUS_OK;
}

/* kill -9 during a stream of W=1 writes to node 0, @rounds times; every
 * acknowledged write must be there after the restart. */
static int run_durability(int rounds, uint64_t seed) {
  t0_us = mono_us();
  struct chorus_prng p;
  chorus_prng_seed(&p, seed);
  memset(C.skew_s, 0, sizeof C.skew_s);
  snprintf(C.dir, sizeof C.dir, "%s/durability", base_dir);
  mkdir(C.dir, 0755);
  if (net_setup(3) != 0)
    return 1;
  for (int i = 0; i < 3; i++)
    node_start(i);
  if (!wait_until(all_alive, 30000))
    return 1;
  size_t acked_total = 0, missing_total = 0;
  for (int r = 0; r < rounds; r++) {
    if (!wait_until(node0_ready, 20000)) {
      fprintf(stderr, "fault-run: n0 not serving after restart\n");
      return 1;
    }
    /* The writer runs in a child so that the kill lands mid-stream. */
    char path[300];
    snprintf(path, sizeof path, "%s/acked-%d", C.dir, r);
    pid_t w = fork();
    if (w == 0) {
      /* The child must never tear the cluster down (atexit). */
      C.n = 0;
      C.net_up = false;
      FILE *f = fopen(path, "w");
      struct chorus_client *c = client_of(0, 5);
      struct chorus_opts o = {.w = 1, .timeout_ms = 1000};
      for (int i = 0;; i++) {
        char key[32];
        snprintf(key, sizeof key, "d%d-%d", r, i);
        struct chorus_result res;
        if (chorus_put(c, key, strlen(key), "v", 1, NULL, 0, &o, &res) ==
            CHORUS_OK) {
          fprintf(f, "%s\n", key);
          fflush(f);
        }
        chorus_result_free(&res);
        if (res.status == CHORUS_EUNAVAILABLE || res.status == CHORUS_ECLOSED)
          break;
      }
      _exit(0);
    }
    sleep_ms(chorus_prng_range(&p, 200, 800));
    node_kill(0);
    sleep_ms(300);
    kill(w, SIGKILL);
    waitpid(w, NULL, 0);
    node_start(0);
    if (!wait_until(node0_ready, 20000))
      return 1;
    FILE *f = fopen(path, "r");
    char key[64];
    size_t acked = 0, missing = 0;
    struct chorus_client *c = client_of(0, 6);
    while (f && fgets(key, sizeof key, f)) {
      key[strcspn(key, "\n")] = '\0';
      acked++;
      struct chorus_result res;
      struct chorus_opts o = {.r = 1, .timeout_ms = 1000};
      if (chorus_get(c, key, strlen(key), &o, &res) != CHORUS_OK ||
          res.nvalues == 0)
        missing++;
      chorus_result_free(&res);
    }
    if (f)
      fclose(f);
    chorus_client_close(c);
    acked_total += acked;
    missing_total += missing;
    say("durability round %d: %zu acknowledged, %zu missing", r + 1, acked,
        missing);
  }
  say("durability: %d rounds, %zu acknowledged writes, %zu missing", rounds,
      acked_total, missing_total);
  teardown();
  return missing_total == 0 ? 0 : 1;
}

static void usage(FILE *f) {
  fprintf(f, "usage: fault-run --chorusd PATH [options]\n"
             "  --nodes N               3 or 5 (default 3)\n"
             "  --seed S                first schedule's seed (default 1)\n"
             "  --schedules K           schedules to run (default 1)\n"
             "  --chaos-ms MS           chaos per schedule (default 10000)\n"
             "  --clients N             workload threads (default 4)\n"
             "  --r N --w N             quorum sizes (default: node's)\n"
             "  --durability-rounds R   the kill -9 durability check (0: off)\n"
             "  --keep                  keep the data folder\n"
             "  --verbose               print every command\n"
             "Needs root, ip netns and nft; exits 77 (skip) without them.\n");
}

int main(int argc, char **argv) {
  int nodes = 3, schedules = 1, clients = 4, rounds = 0, keep = 0;
  uint64_t seed = 1, chaos_ms = 10000;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--chorusd") == 0 && v)
      C.chorusd = argv[++i];
    else if (strcmp(a, "--nodes") == 0 && v)
      nodes = atoi(argv[++i]);
    else if (strcmp(a, "--seed") == 0 && v)
      seed = strtoull(argv[++i], NULL, 10);
    else if (strcmp(a, "--schedules") == 0 && v)
      schedules = atoi(argv[++i]);
    else if (strcmp(a, "--chaos-ms") == 0 && v)
      chaos_ms = strtoull(argv[++i], NULL, 10);
    else if (strcmp(a, "--clients") == 0 && v)
      clients = atoi(argv[++i]);
    else if (strcmp(a, "--r") == 0 && v)
      W.r = atoi(argv[++i]);
    else if (strcmp(a, "--w") == 0 && v)
      W.w = atoi(argv[++i]);
    else if (strcmp(a, "--durability-rounds") == 0 && v)
      rounds = atoi(argv[++i]);
    else if (strcmp(a, "--keep") == 0)
      keep = 1;
    else if (strcmp(a, "--verbose") == 0)
      verbose = 1;
    else if (strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (C.chorusd == NULL || (nodes != 3 && nodes != 5) || clients < 1 ||
      clients > MAX_CLIENTS) {
    usage(stderr);
    return 2;
  }
  if (geteuid() != 0) {
    printf("fault-run: SKIP: needs root for network namespaces\n");
    return 77;
  }
  if (sh("ip netns list") != 0 || sh("nft --version") != 0) {
    printf("fault-run: SKIP: ip netns or nft (nftables) is not available\n");
    return 77;
  }
  /* The tools may exist where the kernel refuses namespaces, veth pairs or
   * nf_tables (containers): try each once, in a throwaway namespace. */
  int probe = (int)(getpid() % 100000);
  bool usable =
      sh("ip netns add chfprobe%d", probe) == 0 &&
      sh("ip netns exec chfprobe%d nft add table inet chaos", probe) == 0 &&
      sh("ip netns exec chfprobe%d ip link add chfpa type veth "
         "peer name chfpb",
         probe) == 0;
  sh("ip netns del chfprobe%d", probe);
  if (!usable) {
    printf("fault-run: SKIP: this kernel or container refuses network "
           "namespaces, veth pairs or nf_tables\n");
    return 77;
  }
  snprintf(base_dir, sizeof base_dir, "/tmp/chorus-fault-XXXXXX");
  if (mkdtemp(base_dir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  atexit(teardown);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  int failed = 0;
  for (int k = 0; k < schedules; k++)
    failed += run_schedule(nodes, seed + (uint64_t)k, chaos_ms, clients) != 0;
  if (rounds > 0)
    failed += run_durability(rounds, seed) != 0;
  if (!keep && failed == 0)
    sh("rm -rf %s", base_dir);
  else
    printf("fault-run: logs and data kept in %s\n", base_dir);
  printf("fault-run: %d schedule(s)%s, %d failed\n", schedules,
         rounds > 0 ? " and the durability check" : "", failed);
  return failed ? 1 : 0;
}
