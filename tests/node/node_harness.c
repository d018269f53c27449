/* node_harness.c: chorusd as real processes for the node tests (the
 * contract is node_harness.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "node_harness.h"

/* ------------------------------------------------------------------------
 * Processes and folders
 * ------------------------------------------------------------------------ */

#define MAXP 8
#define KEY_A "1111111111111111111111111111111111111111111111111111111111111111"
#define KEY_B "2222222222222222222222222222222222222222222222222222222222222222"

const char *chorusd;
char root[128];
static pid_t pids[MAXP]; /* every child still running, for the cleanup */

double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void sleep_ms(int ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

static void track(pid_t p) {
  for (int i = 0; i < MAXP; i++)
    if (pids[i] == 0) {
      pids[i] = p;
      return;
    }
}

static void untrack(pid_t p) {
  for (int i = 0; i < MAXP; i++)
    if (pids[i] == p)
      pids[i] = 0;
}

void (*harness_cleanup_hook)(void);

void kill_all(void) {
  for (int i = 0; i < MAXP; i++)
    if (pids[i] > 0) {
      kill(pids[i], SIGKILL);
      waitpid(pids[i], NULL, 0);
      pids[i] = 0;
    }
  if (harness_cleanup_hook != NULL)
    harness_cleanup_hook();
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void cleanup_all(void) {
  kill_all();
  if (root[0])
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  root[0] = '\0';
}

static void on_fatal_signal(int sig) {
  cleanup_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* free_port: a port free for both TCP and UDP right now. */
int free_port(void) {
  for (int tries = 0; tries < 50; tries++) {
    int t = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    assert_int_equal(bind(t, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(t, (struct sockaddr *)&a, &al);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    int ok = bind(u, (struct sockaddr *)&a, sizeof a) == 0;
    int port = ntohs(a.sin_port);
    close(u);
    close(t);
    if (ok)
      return port;
  }
  fail_msg("no free port");
  return 0;
}

/* spawn: chorusd with the given flags (NULL-terminated), stderr into
 * @p->log. */
void spawn(struct proc *p, const char *const *extra) {
  const char *argv[48];
  int k = 0;
  char listen[64];
  snprintf(listen, sizeof listen, "%s:%d", p->host[0] ? p->host : "127.0.0.1",
           p->port);
  argv[k++] = chorusd;
  argv[k++] = "--id";
  argv[k++] = p->name;
  argv[k++] = "--listen";
  argv[k++] = listen;
  argv[k++] = "--data";
  argv[k++] = p->data;
  for (int i = 0; extra && extra[i]; i++)
    argv[k++] = extra[i];
  argv[k] = NULL;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 2);
      close(fd);
    }
    if (p->netns > 0 && setns(p->netns, CLONE_NEWNET) != 0)
      _exit(126);
    /* The node gets none of the test's sockets: a copy held by a child
     * would keep open what the test closes. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
      for (rlim_t i = 3; i < rl.rlim_cur && i < (1u << 20); i++)
        close((int)i);
    if (p->nofile) {
      rl.rlim_cur = rl.rlim_max = p->nofile;
      if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        _exit(126);
    }
    if (p->uid != 0 && (setgroups(0, NULL) != 0 || setgid((gid_t)p->uid) != 0 ||
                        setuid(p->uid) != 0))
      _exit(126);
    execv(chorusd, (char *const *)(uintptr_t)argv);
    _exit(127);
  }
  p->pid = pid;
  track(pid);
}

/* wait_exit: the child's exit status, or -1 when it did not exit within
 * @secs (it is then killed). */
int wait_exit(struct proc *p, double secs) {
  double end = now_s() + secs;
  int st;
  while (now_s() < end) {
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
      untrack(p->pid);
      p->pid = 0;
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    sleep_ms(20);
  }
  kill(p->pid, SIGKILL);
  waitpid(p->pid, NULL, 0);
  untrack(p->pid);
  p->pid = 0;
  return -1;
}

void read_file(const char *path, char *out, size_t cap) {
  out[0] = '\0';
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return;
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = '\0';
  fclose(f);
}

size_t count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

long rss_kb(pid_t pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  read_file(path, buf, sizeof buf);
  const char *p = strstr(buf, "VmRSS:");
  return p ? strtol(p + 6, NULL, 10) : -1;
}

/* ------------------------------------------------------------------------
 * A tiny client over wire_encode / wire_decode and blocking sockets
 * ------------------------------------------------------------------------ */

void reply_free(struct reply *r) {
  wire_msg_free(&r->m);
  free(r->body);
  r->body = NULL;
}

/* socket_in: a socket made in namespace @netns (0: ours), or -1. The
 * namespace is per thread, so the test enters it, makes the socket and
 * comes back; the socket keeps its namespace. */
static int socket_in(int netns, int type) {
  static int home = -1;
  if (netns <= 0)
    return socket(AF_INET, type, 0);
  if (home < 0)
    home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0 || setns(netns, CLONE_NEWNET) != 0)
    return -1;
  int fd = socket(AF_INET, type, 0);
  assert_int_equal(setns(home, CLONE_NEWNET), 0);
  return fd;
}

int tcp_connect(int port) {
  return tcp_connect_at(NULL, port, 0);
}

int tcp_connect_at(const char *host, int port, int netns) {
  int fd = socket_in(netns, SOCK_STREAM);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (host != NULL && host[0] && inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    close(fd);
    return -1;
  }
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  struct timeval tv = {15, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

int write_all(int fd, const void *data, size_t len) {
  const uint8_t *p = data;
  while (len) {
    ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
    if (w <= 0)
      return -1;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

int read_all(int fd, void *data, size_t len) {
  uint8_t *p = data;
  while (len) {
    ssize_t r = recv(fd, p, len, 0);
    if (r <= 0)
      return -1;
    p += r;
    len -= (size_t)r;
  }
  return 0;
}

int send_msg(int fd, const struct wire_msg *m) {
  size_t n = wire_encoded_size(m), w;
  uint8_t *b = malloc(n);
  char err[CHORUS_ERRMSG_SIZE];
  int rc = wire_encode(m, b, n, &w, err);
  assert_int_equal(rc, CHORUS_OK);
  rc = write_all(fd, b, w);
  free(b);
  return rc;
}

/* recv_msg: one frame; -1 on EOF, timeout or a bad frame. */
int recv_msg(int fd, struct reply *r) {
  uint8_t hdr[4];
  memset(r, 0, sizeof *r);
  if (read_all(fd, hdr, 4) != 0)
    return -1;
  uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
                 (uint32_t)hdr[2] << 8 | hdr[3];
  if (len == 0 || len > WIRE_MAX_FRAME_PEER)
    return -1;
  r->body = malloc(len);
  if (read_all(fd, r->body, len) != 0) {
    free(r->body);
    r->body = NULL;
    return -1;
  }
  char err[CHORUS_ERRMSG_SIZE];
  if (wire_decode(r->body, len, &WIRE_LIMITS_PEER, &r->m, err) != CHORUS_OK) {
    free(r->body);
    r->body = NULL;
    return -1;
  }
  return 0;
}

const char cluster[] = "testc";

/* client_hello: HELLO/WELCOME on @fd (closed on failure), or -1. */
static int client_hello(int fd) {
  if (fd < 0)
    return -1;
  struct wire_msg h = {.type = WIRE_HELLO, .request_id = 1};
  /* A client of protocol version 1, as deployed ones are: the node answers
   * it in version 1's types (GET_REPLY, WRITE_REPLY; wire_reply_for). */
  h.hello.version = WIRE_PROTOCOL_MIN;
  h.hello.cluster =
      (struct wire_bytes){(const uint8_t *)cluster, strlen(cluster)};
  h.hello.role = WIRE_ROLE_CLIENT;
  struct reply r;
  if (send_msg(fd, &h) != 0 || recv_msg(fd, &r) != 0) {
    close(fd);
    return -1;
  }
  int ok = r.m.type == WIRE_WELCOME;
  reply_free(&r);
  if (!ok) {
    close(fd);
    return -1;
  }
  return fd;
}

int client_open(int port) {
  return client_hello(tcp_connect(port));
}

int proc_open(const struct proc *p) {
  return client_hello(tcp_connect_at(p->host, p->port, p->netns));
}

/* call: sends @m and waits for the frame answering its request id. */
int call(int fd, const struct wire_msg *m, struct reply *r) {
  if (send_msg(fd, m) != 0)
    return -1;
  for (;;) {
    if (recv_msg(fd, r) != 0)
      return -1;
    if (r->m.request_id == m->request_id)
      return 0;
    reply_free(r);
  }
}

uint64_t next_id = 100;

struct wire_options quorum(void) {
  struct wire_options o = {0};
  o.r = WIRE_QUORUM;
  o.w = WIRE_QUORUM;
  return o;
}

int put_with(int fd, const char *key, const char *value,
             struct wire_options opts) {
  struct wire_msg m = {.type = WIRE_PUT, .request_id = next_id++};
  m.put.key = (struct wire_bytes){(const uint8_t *)key, strlen(key)};
  m.put.value = (struct wire_bytes){(const uint8_t *)value, strlen(value)};
  m.put.opts = opts;
  struct reply r;
  if (call(fd, &m, &r) != 0)
    return -1000;
  int rc = r.m.type == WIRE_WRITE_REPLY ? 0
           : r.m.type == WIRE_ERROR     ? r.m.error.code
                                        : -1001;
  reply_free(&r);
  return rc;
}

int put(int fd, const char *key, const char *value) {
  return put_with(fd, key, value, quorum());
}

/* get: 0 with the only sibling in @out, 1 when not found, else an error. */
int get(int fd, const char *key, char *out, size_t cap) {
  struct wire_msg m = {.type = WIRE_GET, .request_id = next_id++};
  m.get.key = (struct wire_bytes){(const uint8_t *)key, strlen(key)};
  m.get.opts = quorum();
  struct reply r;
  if (call(fd, &m, &r) != 0)
    return -1000;
  int rc;
  if (r.m.type == WIRE_GET_REPLY) {
    const struct wire_bytes_list *v = &r.m.get_reply.values;
    rc = v->n == 0 ? 1 : 0;
    out[0] = '\0';
    if (v->n >= 1) {
      size_t l = v->items[0].len < cap - 1 ? v->items[0].len : cap - 1;
      memcpy(out, v->items[0].ptr, l);
      out[l] = '\0';
    }
    if (v->n > 1)
      rc = 2;
  } else {
    rc = r.m.type == WIRE_ERROR ? r.m.error.code : -1001;
  }
  reply_free(&r);
  return rc;
}

/* stat_of: a STATUS_QUERY value by name; -1 when absent or no answer. */
static int64_t stat_on(int fd, const char *name);

int64_t stat_of(int port, const char *name) {
  return stat_on(client_open(port), name);
}

int64_t proc_stat(const struct proc *p, const char *name) {
  return stat_on(proc_open(p), name);
}

/* stat_on: the STATUS_QUERY value @name on @fd, which it closes. */
static int64_t stat_on(int fd, const char *name) {
  if (fd < 0)
    return -1;
  struct wire_msg m = {.type = WIRE_STATUS_QUERY, .request_id = next_id++};
  struct reply r;
  int64_t v = -1;
  if (call(fd, &m, &r) == 0) {
    if (r.m.type == WIRE_STATUS_REPLY)
      for (size_t i = 0; i < r.m.status_reply.nstats; i++) {
        const struct wire_stat *s = &r.m.status_reply.stats[i];
        if (s->name.len == strlen(name) &&
            memcmp(s->name.ptr, name, s->name.len) == 0)
          v = s->value;
      }
    reply_free(&r);
  }
  close(fd);
  return v;
}

chorus_node_id id_of(const char *name) {
  return XXH3_64bits(name, strlen(name));
}

int64_t member_state(int port, const char *name) {
  char stat[64];
  snprintf(stat, sizeof stat, "member.%016" PRIx64 ".state", id_of(name));
  return stat_of(port, stat);
}

/* ------------------------------------------------------------------------
 * The cluster fixture
 * ------------------------------------------------------------------------ */

struct proc nodes[3];
char keyfile_a[300], keyfile_b[300];

void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

void node_init(struct proc *p, const char *name) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->port = free_port();
  snprintf(p->data, sizeof p->data, "%s/%s", root, name);
  snprintf(p->log, sizeof p->log, "%s/%s.log", root, name);
}

const char *const *member_extra;

static char *faketime_saved_asan;
static bool faketime_had_asan;

int faketime_begin(const char *offset, const char *file) {
  if (access(FAKETIME_LIB, R_OK) != 0)
    return 77;
  const char *old = getenv("ASAN_OPTIONS");
  faketime_had_asan = old != NULL;
  faketime_saved_asan = old ? strdup(old) : NULL;
  char asan[512];
  snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0", old ? old : "",
           old && *old ? ":" : "");
  setenv("ASAN_OPTIONS", asan, 1);
  setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
  setenv("LD_PRELOAD", FAKETIME_LIB, 1);
  if (offset != NULL) {
    setenv("FAKETIME", offset, 1);
  } else {
    setenv("FAKETIME_TIMESTAMP_FILE", file, 1);
    setenv("FAKETIME_CACHE_DURATION", "1", 1);
  }
  return 0;
}

void faketime_end(void) {
  unsetenv("LD_PRELOAD");
  unsetenv("FAKETIME");
  unsetenv("FAKETIME_TIMESTAMP_FILE");
  unsetenv("FAKETIME_CACHE_DURATION");
  unsetenv("FAKETIME_DONT_FAKE_MONOTONIC");
  if (faketime_had_asan)
    setenv("ASAN_OPTIONS", faketime_saved_asan, 1);
  else
    unsetenv("ASAN_OPTIONS");
  free(faketime_saved_asan);
  faketime_saved_asan = NULL;
}

void start_member(struct proc *p, const char *key, int seed_port,
                  const char *max_inflight) {
  char seeds[64];
  snprintf(seeds, sizeof seeds, "127.0.0.1:%d", seed_port);
  const char *extra[] = {"--cluster",
                         cluster,
                         "--cluster-key",
                         key,
                         "--profile",
                         "local",
                         "--replicas",
                         "3",
                         "--seeds",
                         seeds,
                         "--leave-ms",
                         "500",
                         "--max-inflight",
                         max_inflight,
                         "--timeout",
                         "10000",
                         NULL,
                         NULL,
                         NULL,
                         NULL,
                         NULL,
                         NULL,
                         NULL,
                         NULL,
                         NULL};
  size_t k = 16;
  for (size_t i = 0; member_extra && member_extra[i]; i++) {
    assert_true(k + 1 < sizeof extra / sizeof extra[0]);
    extra[k++] = member_extra[i];
  }
  spawn(p, extra);
}

void start_cluster(void) {
  for (int i = 0; i < 3; i++)
    start_member(&nodes[i], keyfile_a, nodes[0].port, i == 0 ? "8" : "64");
}

int http_port[3];

void start_cluster_http(const char *const *more) {
  static char arg[3][24];
  static const char *extra[3][7];
  for (int i = 0; i < 3; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    node_init(&nodes[i], name);
    http_port[i] = free_port();
    snprintf(arg[i], sizeof arg[i], "127.0.0.1:%d", http_port[i]);
    extra[i][0] = "--http";
    extra[i][1] = arg[i];
    size_t k = 2;
    for (size_t j = 0; more && more[j]; j++) {
      assert_true(k + 1 < sizeof extra[i] / sizeof extra[i][0]);
      extra[i][k++] = more[j];
    }
    extra[i][k] = NULL;
  }
  for (int i = 0; i < 3; i++) {
    member_extra = extra[i];
    start_member(&nodes[i], keyfile_a, nodes[0].port, "64");
  }
  member_extra = NULL;
  wait_alive(3, 30);
}

/* wait_alive: every node sees @want alive members, and at least @want
 * members owning their ranges in the committed metadata (the ring), within
 * @secs. */
void wait_alive(int want, double secs) {
  double end = now_s() + secs;
  for (;;) {
    int ok = 0;
    for (int i = 0; i < 3; i++)
      ok += stat_of(nodes[i].port, "members.alive") == want &&
            stat_of(nodes[i].port, "meta.members_normal") >= want;
    if (ok == 3)
      return;
    if (now_s() > end)
      fail_msg("cluster did not reach %d alive members in %.0f s", want, secs);
    sleep_ms(100);
  }
}

static bool cluster_up;

/* ensure_cluster: the 3-node cluster the tests after the startup ones
 * share, started by the first that needs it. */
void ensure_cluster(void) {
  if (cluster_up)
    return;
  cluster_up = true;
  for (int i = 0; i < 3; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    node_init(&nodes[i], name);
  }
  start_cluster();
  wait_alive(3, 30);
}

int group_teardown(void **state) {
  (void)state;
  kill_all();
  return 0;
}

void serves(int port) {
  static int round;
  int fd = client_open(port);
  assert_true(fd >= 0);
  char key[32], got[64];
  snprintf(key, sizeof key, "still-here-%d", round++);
  assert_int_equal(put(fd, key, "yes"), 0);
  assert_int_equal(get(fd, key, got, sizeof got), 0);
  assert_string_equal(got, "yes");
  close(fd);
}

/* ------------------------------------------------------------------------
 * Cases and the run
 * ------------------------------------------------------------------------ */

/* Each case reports its wall time (the suite budget is ~90 s). */
static double case_start;

int clock_start(void **state) {
  (void)state;
  case_start = now_s();
  return 0;
}

int clock_stop(void **state) {
  (void)state;
  print_message("# %.1f s\n", now_s() - case_start);
  return 0;
}

int harness_setup(int argc, char **argv) {
  chorusd = getenv("CHORUSD");
  if (chorusd == NULL && argc > 1)
    chorusd = argv[1];
  if (chorusd == NULL) {
    fprintf(stderr, "set CHORUSD to the chorusd binary\n");
    return 1;
  }
  if (getenv("CHORUS_TEST_FILTER"))
    cmocka_set_test_filter(getenv("CHORUS_TEST_FILTER"));
  snprintf(root, sizeof root, "/tmp/chorus-node-test-XXXXXX");
  if (mkdtemp(root) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  signal(SIGINT, on_fatal_signal);
  signal(SIGTERM, on_fatal_signal);
  signal(SIGABRT, on_fatal_signal);
  snprintf(keyfile_a, sizeof keyfile_a, "%s/key-a", root);
  snprintf(keyfile_b, sizeof keyfile_b, "%s/key-b", root);
  write_text(keyfile_a, KEY_A "\n");
  write_text(keyfile_b, KEY_B "\n");
  /* chorusd refuses a key file other users may read. */
  if (chmod(keyfile_a, 0600) != 0 || chmod(keyfile_b, 0600) != 0)
    return 1;
  return 0;
}

/* The lines of a node's log a failed run prints: enough for an ASan
 * report's head or the last warnings, few enough for a CI log. */
#define LOG_TAIL_LINES 30

/* print_log_tail: the last LOG_TAIL_LINES lines of @path on stderr. */
static void print_log_tail(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return;
  static char lines[LOG_TAIL_LINES][512];
  size_t n = 0;
  while (fgets(lines[n % LOG_TAIL_LINES], sizeof lines[0], f) != NULL)
    n++;
  fclose(f);
  fprintf(stderr, "--- the last lines of %s ---\n", path);
  for (size_t i = n > LOG_TAIL_LINES ? n - LOG_TAIL_LINES : 0; i < n; i++)
    fputs(lines[i % LOG_TAIL_LINES], stderr);
}

/* print_log_tails: every node's log in the run's folder (ROOT/NAME.log),
 * so that a failure on CI, where the folder is gone, still says why a
 * node stopped answering. */
static void print_log_tails(void) {
  DIR *d = root[0] ? opendir(root) : NULL;
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l > 4 && strcmp(e->d_name + l - 4, ".log") == 0) {
      char path[sizeof root + 300];
      snprintf(path, sizeof path, "%s/%s", root, e->d_name);
      print_log_tail(path);
    }
  }
  closedir(d);
}

int harness_finish(int failed) {
  kill_all();
  if (failed)
    print_log_tails();
  const char *keep = getenv("CHORUS_KEEP_LOGS");
  if (keep != NULL && *keep != '\0' && strcmp(keep, "0") != 0) {
    fprintf(stderr, "logs kept in %s\n", root);
    kill_all();
    return failed ? 1 : 0;
  }
  cleanup_all();
  return failed ? 1 : 0;
}

/* ------------------------------------------------------------------------
 * The CLI
 * ------------------------------------------------------------------------ */

const char *cli;

int find_cli(void) {
  static char buf[512];
  cli = getenv("CHORUS_CLI");
  if (cli != NULL)
    return 0;
  snprintf(buf, sizeof buf, "%s", chorusd);
  char *slash = strrchr(buf, '/');
  if (slash != NULL) {
    *slash = '\0';
    slash = strrchr(buf, '/');
  }
  if (slash == NULL) {
    fprintf(stderr, "$CHORUS_CLI is not set\n");
    return 1;
  }
  snprintf(slash, sizeof buf - (size_t)(slash - buf), "/client/chorus");
  cli = buf;
  return 0;
}

int run_cli(int port, char *out, size_t cap, const char *fmt, ...) {
  char args[256], cmd[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd, "%s -H 127.0.0.1:%d --cluster %s %s 2>&1", cli,
           port, cluster, args);
  FILE *f = popen(cmd, "r");
  if (f == NULL)
    return -1;
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = '\0';
  /* The rest is read and dropped: closing the pipe early would kill the
   * CLI with SIGPIPE (exit 141) in the middle of a long table. */
  char sink[4096];
  while (fread(sink, 1, sizeof sink, f) > 0)
    ;
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void show(const char *title, const char *text) {
  printf("# %s\n", title);
  for (const char *l = text; *l != '\0';) {
    const char *e = strchr(l, '\n');
    size_t n = e ? (size_t)(e - l) : strlen(l);
    printf("#   %.*s\n", (int)n, l);
    l += n + (e != NULL);
  }
}

int trace_replicas(const char *out, char *names, size_t cap) {
  int n = 0;
  names[0] = '\0';
  for (const char *line = out; line && *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < 255 ? len : 255), line);
    char who[32];
    int ms;
    if ((strstr(buf, "self: read") || strstr(buf, "acked;")) &&
        sscanf(buf, " %d ms %31s", &ms, who) == 2 &&
        strstr(names, who) == NULL) {
      size_t at = strlen(names);
      snprintf(names + at, cap - at, "%s%s", at ? " " : "", who);
      n++;
    }
    line = end ? end + 1 : NULL;
  }
  return n;
}

/* ------------------------------------------------------------------------
 * HTTP
 * ------------------------------------------------------------------------ */

int http_raw(int port, const void *req, size_t len, char *body, size_t cap) {
  int fd = tcp_connect(port);
  if (fd < 0)
    return -1;
  static char buf[1 << 20];
  size_t got = 0;
  if (write_all(fd, req, len) != 0) {
    close(fd);
    return -1;
  }
  for (;;) {
    ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
    if (r <= 0)
      break;
    got += (size_t)r;
    if (got == sizeof buf - 1)
      break;
  }
  close(fd);
  buf[got] = '\0';
  int status = -1;
  if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
    return -1;
  const char *b = strstr(buf, "\r\n\r\n");
  if (body != NULL && cap > 0) {
    body[0] = '\0';
    if (b != NULL)
      snprintf(body, cap, "%s", b + 4);
  }
  return status;
}

int http_get(int port, const char *path, char *body, size_t cap) {
  char req[2048];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Connection: close\r\n\r\n",
                   path);
  if (n < 0 || (size_t)n >= sizeof req)
    return -1;
  return http_raw(port, req, (size_t)n, body, cap);
}

double metric_value(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
    if (strncmp(p, series, n) == 0 && p[n] == ' ')
      return strtod(p + n + 1, NULL);
  return 0;
}
