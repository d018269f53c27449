/* test_node.c: chorusd as real processes on loopback: startup errors, a
 * 3-node cluster serving QUORUM reads and writes, hostile bytes on the TCP
 * port, a node with another cluster key, graceful shutdown and restart.
 * Every wait is bounded; every process is killed and every folder removed
 * at the end, even when a test fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "chorus_prng.h"
#include "wire.h"

/* ------------------------------------------------------------------------
 * Processes and folders
 * ------------------------------------------------------------------------ */

#define MAXP 8
#define KEY_A "1111111111111111111111111111111111111111111111111111111111111111"
#define KEY_B "2222222222222222222222222222222222222222222222222222222222222222"

static const char *chorusd;
static char root[128];
static pid_t pids[MAXP]; /* every child still running, for the cleanup */

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
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

static void kill_all(void) {
  for (int i = 0; i < MAXP; i++)
    if (pids[i] > 0) {
      kill(pids[i], SIGKILL);
      waitpid(pids[i], NULL, 0);
      pids[i] = 0;
    }
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
static int free_port(void) {
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

struct proc {
  pid_t pid;
  int port;
  char name[32];
  char data[300];
  char log[300];
};

/* spawn: chorusd with the given flags (NULL-terminated), stderr into
 * @p->log. */
static void spawn(struct proc *p, const char *const *extra) {
  const char *argv[48];
  int k = 0;
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", p->port);
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
    execv(chorusd, (char *const *)(uintptr_t)argv);
    _exit(127);
  }
  p->pid = pid;
  track(pid);
}

/* wait_exit: the child's exit status, or -1 when it did not exit within
 * @secs (it is then killed). */
static int wait_exit(struct proc *p, double secs) {
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

static void read_file(const char *path, char *out, size_t cap) {
  out[0] = '\0';
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return;
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = '\0';
  fclose(f);
}

static size_t count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

static long rss_kb(pid_t pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  read_file(path, buf, sizeof buf);
  const char *p = strstr(buf, "VmRSS:");
  return p ? strtol(p + 6, NULL, 10) : -1;
}

/* ------------------------------------------------------------------------
 * A tiny client over wire_encode / wire_decode and blocking sockets
 * ------------------------------------------------------------------------ */

struct reply {
  struct wire_msg m;
  uint8_t *body;
};

static void reply_free(struct reply *r) {
  wire_msg_free(&r->m);
  free(r->body);
  r->body = NULL;
}

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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

static int write_all(int fd, const void *data, size_t len) {
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

static int read_all(int fd, void *data, size_t len) {
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

static int send_msg(int fd, const struct wire_msg *m) {
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
static int recv_msg(int fd, struct reply *r) {
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

static const char cluster[] = "testc";

/* client_open: a connection after HELLO/WELCOME, or -1. */
static int client_open(int port) {
  int fd = tcp_connect(port);
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

/* call: sends @m and waits for the frame answering its request id. */
static int call(int fd, const struct wire_msg *m, struct reply *r) {
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

static uint64_t next_id = 100;

static struct wire_options quorum(void) {
  struct wire_options o = {0};
  o.r = WIRE_QUORUM;
  o.w = WIRE_QUORUM;
  return o;
}

/* put: 0 on WRITE_REPLY, else the error code. */
static int put(int fd, const char *key, const char *value) {
  struct wire_msg m = {.type = WIRE_PUT, .request_id = next_id++};
  m.put.key = (struct wire_bytes){(const uint8_t *)key, strlen(key)};
  m.put.value = (struct wire_bytes){(const uint8_t *)value, strlen(value)};
  m.put.opts = quorum();
  struct reply r;
  if (call(fd, &m, &r) != 0)
    return -1000;
  int rc = r.m.type == WIRE_WRITE_REPLY ? 0
           : r.m.type == WIRE_ERROR     ? r.m.error.code
                                        : -1001;
  reply_free(&r);
  return rc;
}

/* get: 0 with the only sibling in @out, 1 when not found, else an error. */
static int get(int fd, const char *key, char *out, size_t cap) {
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
static int64_t stat_of(int port, const char *name) {
  int fd = client_open(port);
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

static chorus_node_id id_of(const char *name) {
  return XXH3_64bits(name, strlen(name));
}

static int64_t member_state(int port, const char *name) {
  char stat[64];
  snprintf(stat, sizeof stat, "member.%016" PRIx64 ".state", id_of(name));
  return stat_of(port, stat);
}

/* ------------------------------------------------------------------------
 * The cluster fixture
 * ------------------------------------------------------------------------ */

static struct proc nodes[3];
static char keyfile_a[300], keyfile_b[300];

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void node_init(struct proc *p, const char *name) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->port = free_port();
  snprintf(p->data, sizeof p->data, "%s/%s", root, name);
  snprintf(p->log, sizeof p->log, "%s/%s.log", root, name);
}

static void start_member(struct proc *p, const char *key, int seed_port,
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
                         NULL};
  spawn(p, extra);
}

static void start_cluster(void) {
  for (int i = 0; i < 3; i++)
    start_member(&nodes[i], keyfile_a, nodes[0].port, i == 0 ? "8" : "64");
}

/* wait_alive: every node sees @want alive members, within @secs. */
static void wait_alive(int want, double secs) {
  double end = now_s() + secs;
  for (;;) {
    int ok = 0;
    for (int i = 0; i < 3; i++)
      ok += stat_of(nodes[i].port, "members.alive") == want;
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
static void ensure_cluster(void) {
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

static int group_teardown(void **state) {
  (void)state;
  kill_all();
  return 0;
}

/* ------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------ */

/* Each startup error: exit 1 within seconds, one line on stderr naming
 * the problem. */
static void expect_startup_error(struct proc *p, const char *const *extra,
                                 const char *needle) {
  unlink(p->log);
  spawn(p, extra);
  int st = wait_exit(p, 20);
  char log[4096];
  read_file(p->log, log, sizeof log);
  if (st != 1 || strstr(log, needle) == NULL || count_lines(log) != 1)
    fail_msg("want exit 1 and one line with \"%s\"; got exit %d and:\n%s",
             needle, st, log);
}

static void test_startup_errors(void **state) {
  (void)state;
  struct proc p;
  node_init(&p, "solo");
  const char *base[] = {"--cluster",  cluster,      "--cluster-key",
                        keyfile_a,    "--replicas", "1",
                        "--leave-ms", "0",          NULL};

  /* A busy port. */
  int busy = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)p.port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(busy, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(busy, 1), 0);
  expect_startup_error(&p, base, "already in use");
  close(busy);

  /* An unwritable data folder (running as root, permissions would not
   * stop us: a path through a regular file does). */
  char file[200];
  snprintf(file, sizeof file, "%s/plainfile", root);
  write_text(file, "x");
  struct proc q = p;
  snprintf(q.data, sizeof q.data, "%s/sub", file);
  expect_startup_error(&q, base, "data folder");

  /* First start writes the identity; a clean stop. The settings come
   * from a config file (same keys as the flags). */
  char conf[200], text[600];
  snprintf(conf, sizeof conf, "%s/solo.conf", root);
  snprintf(text, sizeof text,
           "# solo node\ncluster = %s\ncluster-key = %s\nreplicas = 1\n"
           "leave-ms = 0\nmax-connections = 3\n",
           cluster, keyfile_a);
  write_text(conf, text);
  const char *limited[] = {"--config", conf, NULL};
  spawn(&p, limited);
  double end = now_s() + 20;
  while (stat_of(p.port, "members.alive") != 1) {
    assert_true(now_s() < end);
    sleep_ms(50);
  }
  /* The folder is locked while its node runs. */
  struct proc twin = p;
  twin.port = free_port();
  expect_startup_error(&twin, base, "in use by another process");

  /* The connection limit: the fourth gets ERROR EOVERLOAD and is closed. */
  int held[3];
  for (int i = 0; i < 3; i++) {
    held[i] = client_open(p.port);
    assert_true(held[i] >= 0);
  }
  int extra = tcp_connect(p.port);
  assert_true(extra >= 0);
  struct reply r;
  assert_int_equal(recv_msg(extra, &r), 0);
  assert_int_equal(r.m.type, WIRE_ERROR);
  assert_int_equal(r.m.error.code, CHORUS_EOVERLOAD);
  reply_free(&r);
  char c;
  assert_true(recv(extra, &c, 1, 0) <= 0);
  close(extra);
  for (int i = 0; i < 3; i++)
    close(held[i]);
  kill(p.pid, SIGTERM);
  assert_int_equal(wait_exit(&p, 15), 0);

  /* The same folder under another node id, then another cluster. */
  struct proc other = p;
  snprintf(other.name, sizeof other.name, "someone-else");
  expect_startup_error(&other, base, "belongs to another node");
  const char *other_cluster[] = {"--cluster", "elsewhere",  "--cluster-key",
                                 keyfile_a,   "--replicas", "1",
                                 NULL};
  expect_startup_error(&p, other_cluster, "belongs to another node");

  /* A bad flag is an error too, before anything is opened. */
  const char *bad[] = {"--replicas", "dc1:0", NULL};
  expect_startup_error(&p, bad, "--replicas");
  /* An object budget must leave room in the 16 MiB peer frame. */
  const char *fat[] = {"--max-object-bytes", "16777216", NULL};
  expect_startup_error(&p, fat, "--max-object-bytes");
}

static void test_cluster_forms(void **state) {
  (void)state;
  ensure_cluster();
  for (int i = 0; i < 3; i++) {
    assert_int_equal(stat_of(nodes[i].port, "members.alive"), 3);
    for (int j = 0; j < 3; j++)
      assert_int_equal(member_state(nodes[i].port, nodes[j].name), 0);
    assert_int_equal(stat_of(nodes[i].port, "replication.n"), 3);
  }
  /* RING_QUERY lists the three with their addresses. */
  int fd = client_open(nodes[1].port);
  assert_true(fd >= 0);
  struct wire_msg m = {.type = WIRE_RING_QUERY, .request_id = next_id++};
  struct reply r;
  assert_int_equal(call(fd, &m, &r), 0);
  assert_int_equal(r.m.type, WIRE_RING_REPLY);
  assert_int_equal(r.m.ring_reply.nnodes, 3);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(r.m.ring_reply.nodes[i].state, WIRE_NODE_UP);
    assert_true(r.m.ring_reply.nodes[i].addr.len > 0);
  }
  reply_free(&r);
  close(fd);
}

static void test_put_get_quorum(void **state) {
  (void)state;
  ensure_cluster();
  int fds[3];
  for (int i = 0; i < 3; i++) {
    fds[i] = client_open(nodes[i].port);
    assert_true(fds[i] >= 0);
  }
  char key[32], val[32], got[64];
  for (int k = 0; k < 30; k++) {
    snprintf(key, sizeof key, "key-%d", k);
    snprintf(val, sizeof val, "value-%d", k);
    assert_int_equal(put(fds[k % 3], key, val), 0);
  }
  for (int k = 0; k < 30; k++) {
    snprintf(key, sizeof key, "key-%d", k);
    snprintf(val, sizeof val, "value-%d", k);
    assert_int_equal(get(fds[(k + 1) % 3], key, got, sizeof got), 0);
    assert_string_equal(got, val);
  }
  assert_int_equal(get(fds[0], "never-written", got, sizeof got), 1);
  for (int i = 0; i < 3; i++)
    close(fds[i]);
}

/* closed_after: sends @bytes after HELLO and expects the node to answer
 * ERROR (or nothing) and close the connection. */
static void closed_after(int port, const void *bytes, size_t len, int code) {
  int fd = client_open(port);
  assert_true(fd >= 0);
  assert_int_equal(write_all(fd, bytes, len), 0);
  struct reply r;
  int frames = 0;
  while (recv_msg(fd, &r) == 0) {
    assert_int_equal(r.m.type, WIRE_ERROR);
    assert_int_equal(r.m.error.code, code);
    reply_free(&r);
    assert_true(++frames < 4);
  }
  assert_int_equal(frames, 1);
  /* EOF or a reset (not a timeout): the node closed it. */
  char c;
  errno = 0;
  ssize_t r0 = recv(fd, &c, 1, 0);
  assert_true(r0 == 0 || (r0 < 0 && errno == ECONNRESET));
  close(fd);
}

static void serves(int port) {
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

static void test_hostile(void **state) {
  (void)state;
  ensure_cluster();
  int port = nodes[0].port;
  pid_t pid = nodes[0].pid;
  serves(port);
  long rss0 = rss_kb(pid), rss0b = rss_kb(nodes[1].pid);

  /* 5 bytes declaring a 4-billion-element array. */
  static const uint8_t huge_array[] = {0,    0,    0,    5,   0xdd,
                                       0xff, 0xff, 0xff, 0xff};
  closed_after(port, huge_array, sizeof huge_array, CHORUS_EMALFORMED);
  /* A 4 GiB length prefix. */
  static const uint8_t huge_len[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
  closed_after(port, huge_len, sizeof huge_len, CHORUS_ETOOBIG);
  /* Garbage, before and after HELLO. */
  struct chorus_prng g;
  chorus_prng_seed(&g, 42);
  uint8_t junk[4096];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (uint8_t)chorus_prng_next(&g);
  /* A complete frame of random bytes: decoded and refused. */
  junk[0] = 0;
  junk[1] = 0;
  junk[2] = (sizeof junk - 4) >> 8;
  junk[3] = (sizeof junk - 4) & 0xff;
  closed_after(port, junk, sizeof junk, CHORUS_EMALFORMED);
  int raw = tcp_connect(port);
  assert_true(raw >= 0);
  assert_int_equal(write_all(raw, junk + 2, 1000), 0);
  char c;
  while (recv(raw, &c, 1, 0) > 0)
    ;
  close(raw);
  serves(port);

  /* A well-formed frame of an unknown type: ERROR ENOTSUP under its
   * request id, and the connection stays usable. */
  static const uint8_t unknown[] = {0, 0, 0, 4, 0x92, 0xcc, 200, 7};
  int fd = client_open(port);
  assert_true(fd >= 0);
  assert_int_equal(write_all(fd, unknown, sizeof unknown), 0);
  struct reply r;
  assert_int_equal(recv_msg(fd, &r), 0);
  assert_int_equal(r.m.type, WIRE_ERROR);
  assert_int_equal(r.m.error.code, CHORUS_ENOTSUP);
  assert_int_equal(r.m.request_id, 7);
  reply_free(&r);
  struct wire_msg q = {.type = WIRE_STATUS_QUERY, .request_id = next_id++};
  assert_int_equal(call(fd, &q, &r), 0);
  assert_int_equal(r.m.type, WIRE_STATUS_REPLY);
  reply_free(&r);
  close(fd);

  /* Pipelined requests over the in-flight limit (8 on n0): some get
   * EOVERLOAD, every one gets exactly one answer. */
  fd = client_open(port);
  assert_true(fd >= 0);
  uint8_t batch[64 * 64];
  size_t blen = 0;
  for (int i = 0; i < 64; i++) {
    struct wire_msg m = {.type = WIRE_GET, .request_id = 5000 + (uint64_t)i};
    m.get.key = (struct wire_bytes){(const uint8_t *)"k", 1};
    m.get.opts = quorum();
    size_t w;
    assert_int_equal(
        wire_encode(&m, batch + blen, sizeof batch - blen, &w, NULL),
        CHORUS_OK);
    blen += w;
  }
  assert_int_equal(write_all(fd, batch, blen), 0);
  int seen[64] = {0}, overload = 0;
  for (int i = 0; i < 64; i++) {
    assert_int_equal(recv_msg(fd, &r), 0);
    uint64_t id = r.m.request_id - 5000;
    assert_true(id < 64);
    seen[id]++;
    if (r.m.type == WIRE_ERROR) {
      assert_int_equal(r.m.error.code, CHORUS_EOVERLOAD);
      overload++;
    }
    reply_free(&r);
  }
  for (int i = 0; i < 64; i++)
    assert_int_equal(seen[i], 1);
  assert_true(overload > 0);
  close(fd);

  /* A client that asks for a 256 KiB value again and again and never
   * reads: without back-pressure the node would buffer every answer. It
   * stops reading that client once its output is over the bound, so our
   * sends block, and its memory stays put. */
  size_t biglen = 256 * 1024;
  char *big = malloc(biglen + 1);
  memset(big, 'b', biglen);
  big[biglen] = '\0';
  fd = client_open(port);
  assert_true(fd >= 0);
  assert_int_equal(put(fd, "big", big), 0);
  close(fd);
  free(big);
  blen = 0;
  for (int i = 0; i < 64; i++) {
    /* GETs of the big value, and STATUS_QUERYs: 6 bytes in, ~2 KB out,
     * answered at once (the cheapest way to make a node write). */
    struct wire_msg m = {.type = WIRE_GET, .request_id = 9000 + (uint64_t)i};
    m.get.key = (struct wire_bytes){(const uint8_t *)"big", 3};
    m.get.opts = quorum();
    if (i % 2)
      m.type = WIRE_STATUS_QUERY;
    size_t w;
    assert_int_equal(
        wire_encode(&m, batch + blen, sizeof batch - blen, &w, NULL),
        CHORUS_OK);
    blen += w;
  }
  /* n1 allows 64 requests in flight, so answers do pile up. */
  int slow = client_open(nodes[1].port);
  assert_true(slow >= 0);
  fcntl(slow, F_SETFL, fcntl(slow, F_GETFL) | O_NONBLOCK);
  size_t sent = 0;
  double end = now_s() + 4;
  while (now_s() < end) {
    ssize_t w = send(slow, batch, blen, MSG_NOSIGNAL);
    if (w > 0)
      sent += (size_t)w;
    else
      sleep_ms(5);
  }
  /* The node kept serving others meanwhile, within a memory bound. */
  serves(port);
  long rss1 = rss_kb(pid), rss1b = rss_kb(nodes[1].pid);
  print_message("# slow client: %zu bytes sent before blocking; RSS of n0 "
                "%ld -> %ld KiB, n1 %ld -> %ld KiB\n",
                sent, rss0, rss1, rss0b, rss1b);
  assert_true(sent < (size_t)64 << 20);
  assert_true(rss1 - rss0 < 64 * 1024);
  assert_true(rss1b - rss0b < 48 * 1024);
  close(slow);
  assert_int_equal(kill(pid, 0), 0);
  serves(port);
}

static void test_wrong_key_never_joins(void **state) {
  (void)state;
  ensure_cluster();
  struct proc x;
  node_init(&x, "intruder");
  char seeds[64];
  snprintf(seeds, sizeof seeds, "127.0.0.1:%d", nodes[0].port);
  const char *extra[] = {"--cluster", cluster, "--cluster-key", keyfile_b,
                         "--profile", "local", "--replicas",    "3",
                         "--seeds",   seeds,   "--leave-ms",    "0",
                         NULL};
  spawn(&x, extra);
  sleep_ms(3000);
  assert_int_equal(stat_of(x.port, "members.known"), 1);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(stat_of(nodes[i].port, "members.known"), 3);
    assert_int_equal(member_state(nodes[i].port, x.name), -1);
  }
  assert_true(stat_of(nodes[0].port, "swim.auth_failed") +
                  stat_of(nodes[0].port, "node.auth_failed") >
              0);
  kill(x.pid, SIGTERM);
  assert_int_equal(wait_exit(&x, 15), 0);
}

static void test_shutdown_restart(void **state) {
  (void)state;
  ensure_cluster();
  int fd = client_open(nodes[1].port);
  assert_true(fd >= 0);
  char key[32], val[32], got[64];
  for (int k = 0; k < 40; k++) {
    snprintf(key, sizeof key, "durable-%d", k);
    snprintf(val, sizeof val, "v%d", k);
    assert_int_equal(put(fd, key, val), 0);
  }
  close(fd);

  /* A request in flight when the node is told to stop is answered with an
   * error at once: freeze n1 and n2 so a write at ALL waits for them. */
  kill(nodes[1].pid, SIGSTOP);
  kill(nodes[2].pid, SIGSTOP);
  fd = client_open(nodes[0].port);
  assert_true(fd >= 0);
  struct wire_msg m = {.type = WIRE_PUT, .request_id = next_id++};
  m.put.key = (struct wire_bytes){(const uint8_t *)"in-flight", 9};
  m.put.value = (struct wire_bytes){(const uint8_t *)"x", 1};
  m.put.opts.w = WIRE_ALL;
  m.put.opts.timeout_ms = 30000;
  assert_int_equal(send_msg(fd, &m), 0);
  sleep_ms(300);
  double t0 = now_s();
  kill(nodes[0].pid, SIGTERM);
  struct reply r;
  assert_int_equal(recv_msg(fd, &r), 0);
  assert_int_equal(r.m.type, WIRE_ERROR);
  assert_int_equal(r.m.error.code, CHORUS_ECANCELED);
  assert_true(now_s() - t0 < 5);
  reply_free(&r);
  close(fd);
  kill(nodes[1].pid, SIGCONT);
  kill(nodes[2].pid, SIGCONT);
  for (int i = 1; i < 3; i++)
    kill(nodes[i].pid, SIGTERM);
  for (int i = 0; i < 3; i++)
    assert_int_equal(wait_exit(&nodes[i], 20), 0);
  char log[1 << 16];
  read_file(nodes[0].log, log, sizeof log);
  assert_non_null(strstr(log, "shutting down"));
  assert_non_null(strstr(log, "left the cluster"));

  start_cluster();
  wait_alive(3, 30);
  for (int k = 0; k < 40; k++) {
    snprintf(key, sizeof key, "durable-%d", k);
    snprintf(val, sizeof val, "v%d", k);
    fd = client_open(nodes[k % 3].port);
    assert_true(fd >= 0);
    assert_int_equal(get(fd, key, got, sizeof got), 0);
    assert_string_equal(got, val);
    close(fd);
  }

  /* One node leaves while the others stay: they list it as left (3), and
   * it comes back alive under the same id from the same folder. */
  kill(nodes[2].pid, SIGTERM);
  assert_int_equal(wait_exit(&nodes[2], 20), 0);
  double end = now_s() + 10;
  while (member_state(nodes[0].port, nodes[2].name) != 3) {
    assert_true(now_s() < end);
    sleep_ms(50);
  }
  start_member(&nodes[2], keyfile_a, nodes[0].port, "64");
  wait_alive(3, 30);
  fd = client_open(nodes[2].port);
  assert_true(fd >= 0);
  assert_int_equal(get(fd, "durable-0", got, sizeof got), 0);
  assert_string_equal(got, "v0");
  close(fd);
}

/* Each case reports its wall time (the suite budget is ~90 s). */
static double case_start;

static int clock_start(void **state) {
  (void)state;
  case_start = now_s();
  return 0;
}

static int clock_stop(void **state) {
  (void)state;
  print_message("# %.1f s\n", now_s() - case_start);
  return 0;
}

#define TIMED(f) cmocka_unit_test_setup_teardown(f, clock_start, clock_stop)

int main(int argc, char **argv) {
  chorusd = getenv("CHORUSD");
  if (chorusd == NULL && argc > 1)
    chorusd = argv[1];
  if (chorusd == NULL) {
    fprintf(stderr, "set CHORUSD to the chorusd binary\n");
    return 1;
  }
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

  const struct CMUnitTest tests[] = {
      TIMED(test_startup_errors),        TIMED(test_cluster_forms),
      TIMED(test_put_get_quorum),        TIMED(test_hostile),
      TIMED(test_wrong_key_never_joins), TIMED(test_shutdown_restart),
  };
  int failed = cmocka_run_group_tests_name("node", tests, NULL, group_teardown);
  if (getenv("CHORUS_KEEP_LOGS")) {
    fprintf(stderr, "logs kept in %s\n", root);
    kill_all();
    return failed ? 1 : 0;
  }
  cleanup_all();
  return failed ? 1 : 0;
}
