/* chorus_floor.c: chorus-floor, the latency floor of this machine for
 * chorus's message pattern: processes on loopback that only pass fixed-size
 * messages on, paced and measured as chorus-bench's open loop is (issue 27:
 * a target out of reach is shown with a measured bound, not an estimate).
 *
 * HOW IT WORKS
 *
 * The parent is the client: one uv loop, --connections TCP connections,
 * a timerfd at the request interval issuing every request whose intended
 * time has come (round robin over the connections), latency from the
 * intended time into a bench_hist, the first --warmup seconds not counted
 * (chorus-bench's open loop, chorus_bench.c). The servers are forked
 * children, each a uv loop that does no work on a message but pass it on:
 *
 *   echo     client -> A -> client: one loopback round trip, two wake-ups
 *            on the path (A, then the client).
 *   quorum   client -> A -> {B, C} -> A -> client, A answering the client
 *            at the first of B's and C's answers: the wake-ups of a chorus
 *            QUORUM request at N=3 whose coordinator is a replica (A, the
 *            faster of B and C, A, the client), with nothing done at any
 *            of them; the slower answer still wakes A, as in chorus.
 *   fsync    no server: each request appends its message to a file in
 *            /tmp (where chorus-bench's nodes keep their data), and a
 *            sync thread runs fdatasync over everything appended so far,
 *            then completes those requests through a uv_async (the group
 *            commit of `--durability group`, store_rocksdb.c, with nothing
 *            else done): the floor of a durable acknowledgement's wait.
 *
 * Every message is --size bytes (default 128, about a 100-byte chorus
 * request), its first 8 bytes the request number. Writes go out at once
 * with uv_try_write (uv_write only for a remainder): the floor takes the
 * cheapest path. The children's CPU time (/proc) over the measured window
 * is printed as µs per request, beside their p50/p90/p99/p99.9/max, and so
 * is the send lag (actual send minus intended time: the pacing timer's
 * own wake-up, a part of every latency measured from the intended time,
 * chorus-bench's too).
 *
 * Usage: chorus-floor [--shape echo|quorum|fsync] [--rate OPS] [-c CONNS]
 *                     [-d S] [--warmup S] [--size B]
 */
#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "bench.h"

#define FLOOR_MAX_CONNS 1024
#define FLOOR_MAX_SIZE 4096
#define FLOOR_SLOTS 65536 /* answered-request ring of the quorum's A */

enum floor_shape { FLOOR_ECHO, FLOOR_QUORUM, FLOOR_FSYNC };

static const char *const shape_names[] = {"echo", "quorum", "fsync"};

struct floor_opts {
  enum floor_shape shape;
  double rate, duration, warmup;
  unsigned conns, size;
};

/* One stream and its partial input message. */
struct floor_conn {
  uv_tcp_t tcp;
  struct floor_srv *srv; /* NULL on the client side */
  unsigned index;
  unsigned have;
  uint8_t in[FLOOR_MAX_SIZE];
};

struct floor_srv {
  uv_loop_t *loop;
  uv_tcp_t listener;
  unsigned size;
  int role; /* 0 echo, 1 the quorum's A, 2 a quorum replica (B, C) */
  struct floor_conn *clients[FLOOR_MAX_CONNS];
  unsigned nclients;
  struct floor_conn peer[2]; /* A's dialled links to B and C */
  uint64_t answered[FLOOR_SLOTS];
};

static void die(const char *what, int rc) {
  fprintf(stderr, "chorus-floor: %s: %s\n", what,
          rc < 0 ? uv_strerror(rc) : strerror(errno));
  exit(1);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h, (void)hint;
  static char scratch[65536]; /* one loop per process: one buffer */
  *buf = uv_buf_init(scratch, sizeof scratch);
}

static void on_written(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

/* send_msg: @len bytes at once; a remainder the kernel did not take goes
 * through uv_write from a copy. */
static void send_msg(struct floor_conn *k, uint8_t *msg, unsigned len) {
  uv_buf_t b = uv_buf_init((char *)msg, len);
  int n = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
  if (n == (int)len)
    return;
  if (n < 0 && n != UV_EAGAIN)
    die("write", n);
  unsigned done = n > 0 ? (unsigned)n : 0;
  uv_write_t *w = malloc(sizeof *w + len - done);
  if (w == NULL)
    die("out of memory", 0);
  memcpy(w + 1, msg + done, len - done);
  b = uv_buf_init((char *)(w + 1), len - done);
  int rc = uv_write(w, (uv_stream_t *)&k->tcp, &b, 1, on_written);
  if (rc != 0)
    die("write", rc);
}

static uint64_t msg_id(const uint8_t *m) {
  uint64_t id;
  memcpy(&id, m, sizeof id);
  return id;
}

/* ------------------------------------------------------------------------
 * Servers
 * ------------------------------------------------------------------------ */

/* server_msg: one whole message from connection @k. The quorum's A tags
 * what it forwards with the client connection's index (bytes 8..11) so an
 * answer finds its way back. */
static void server_msg(struct floor_conn *k, uint8_t *m) {
  struct floor_srv *s = k->srv;
  if (s->role == 0 || s->role == 2) {
    send_msg(k, m, s->size); /* echo, or a replica's answer */
    return;
  }
  if (k->index < FLOOR_MAX_CONNS) { /* from a client: ask B and C */
    uint32_t idx = k->index;
    memcpy(m + 8, &idx, sizeof idx);
    send_msg(&s->peer[0], m, s->size);
    send_msg(&s->peer[1], m, s->size);
    return;
  }
  /* an answer from B or C: the first one answers the client */
  uint64_t id = msg_id(m);
  uint32_t idx;
  memcpy(&idx, m + 8, sizeof idx);
  if (s->answered[id % FLOOR_SLOTS] == id + 1 || idx >= s->nclients)
    return;
  s->answered[id % FLOOR_SLOTS] = id + 1;
  send_msg(s->clients[idx], m, s->size);
}

static void conn_feed(struct floor_conn *k, const uint8_t *p, size_t n,
                      unsigned size,
                      void (*msg)(struct floor_conn *, uint8_t *)) {
  while (n > 0) {
    size_t take = size - k->have < n ? size - k->have : n;
    memcpy(k->in + k->have, p, take);
    k->have += (unsigned)take;
    p += take;
    n -= take;
    if (k->have == size) {
      k->have = 0;
      msg(k, k->in);
    }
  }
}

static void on_server_read(uv_stream_t *st, ssize_t nread,
                           const uv_buf_t *buf) {
  struct floor_conn *k = st->data;
  if (nread < 0) {
    uv_read_stop(st); /* the client went away: the run is over */
    uv_stop(k->srv->loop);
    return;
  }
  conn_feed(k, (const uint8_t *)buf->base, (size_t)nread, k->srv->size,
            server_msg);
}

static void nodelay(uv_tcp_t *t) {
  uv_tcp_nodelay(t, 1);
}

static void on_connection(uv_stream_t *l, int status) {
  struct floor_srv *s = l->data;
  if (status != 0 || s->nclients == FLOOR_MAX_CONNS)
    die("accept", status);
  struct floor_conn *k = calloc(1, sizeof *k);
  if (k == NULL)
    die("out of memory", 0);
  k->srv = s;
  uv_tcp_init(s->loop, &k->tcp);
  k->tcp.data = k;
  if (uv_accept(l, (uv_stream_t *)&k->tcp) != 0)
    die("accept", -1);
  nodelay(&k->tcp);
  /* A's clients are numbered; links from A to a replica need no number */
  k->index = s->nclients;
  s->clients[s->nclients++] = k;
  uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_server_read);
}

static void on_peer_connect(uv_connect_t *req, int status) {
  if (status != 0)
    die("connect to a replica", status);
  free(req);
}

/* dial: starts connecting @k to 127.0.0.1:@port; @cb frees the request. */
static void dial(uv_loop_t *loop, struct floor_conn *k, int port,
                 uv_connect_cb cb) {
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", port, &a);
  uv_tcp_init(loop, &k->tcp);
  k->tcp.data = k;
  uv_connect_t *req = malloc(sizeof *req);
  if (req == NULL)
    die("out of memory", 0);
  req->data = k;
  int rc = uv_tcp_connect(req, &k->tcp, (struct sockaddr *)&a, cb);
  if (rc != 0)
    die("connect", rc);
  nodelay(&k->tcp);
}

/* server_run: the child's whole life. Listens on an ephemeral port, tells
 * the parent which one through @fd, then (the quorum's A) reads the
 * replicas' ports from @fd and dials them. */
static void server_run(int role, unsigned size, int fd) {
  static struct floor_srv s;
  uv_loop_t loop;
  uv_loop_init(&loop);
  s.loop = &loop;
  s.size = size;
  s.role = role;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(&loop, &s.listener);
  s.listener.data = &s;
  int rc = uv_tcp_bind(&s.listener, (struct sockaddr *)&a, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&s.listener, 1024, on_connection);
  if (rc != 0)
    die("listen", rc);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_getsockname(&s.listener, (struct sockaddr *)&ss, &len);
  int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (write(fd, &port, sizeof port) != sizeof port)
    die("pipe", 0);
  if (role == 1) {
    int ports[2];
    if (read(fd, ports, sizeof ports) != sizeof ports)
      die("pipe", 0);
    for (int i = 0; i < 2; i++) {
      s.peer[i].srv = &s;
      s.peer[i].index = FLOOR_MAX_CONNS + (unsigned)i;
      dial(&loop, &s.peer[i], ports[i], on_peer_connect);
      uv_read_start((uv_stream_t *)&s.peer[i].tcp, on_alloc, on_server_read);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  _exit(0);
}

/* spawn: forks a server of @role; returns its pid and its port. */
static pid_t spawn(int role, unsigned size, int *port, int sock[2]) {
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sock) != 0)
    die("socketpair", 0);
  pid_t pid = fork();
  if (pid < 0)
    die("fork", 0);
  if (pid == 0) {
    close(sock[0]);
    server_run(role, size, sock[1]);
  }
  close(sock[1]);
  if (read(sock[0], port, sizeof *port) != sizeof *port)
    die("a server did not start", 0);
  return pid;
}

/* ------------------------------------------------------------------------
 * The client: chorus-bench's open loop
 * ------------------------------------------------------------------------ */

struct floor_client {
  const struct floor_opts *o;
  uv_loop_t loop;
  struct floor_conn conns[FLOOR_MAX_CONNS];
  unsigned connected;
  int pace_fd;
  uv_poll_t pace;
  uint64_t t_start, t_warm, t_end, interval, next_intended, seq, rr;
  uint64_t sent_counted, done_counted, inflight;
  uint64_t *intended; /* by request number % FLOOR_SLOTS */
  struct bench_hist hist;
  struct bench_hist lag; /* send time - intended time: the pacing's part */
  pid_t pids[3];
  unsigned npids;
  double cpu_warm, cpu_end;
  uint8_t msg[FLOOR_MAX_SIZE];
  /* fsync: the file, what is appended and synced (request numbers, under
   * mu), and the next request to complete on the loop */
  int file_fd;
  pthread_t syncer;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t appended, synced, completed;
  int sync_stop;
  uv_async_t sync_async;
};

static double servers_cpu(const struct floor_client *c) {
  double sum = 0;
  for (unsigned i = 0; i < c->npids; i++)
    sum += bench_proc_cpu(c->pids[i]);
  return sum;
}

/* complete: request @id is answered now. */
static void complete(struct floor_client *c, uint64_t id) {
  uint64_t now = uv_hrtime();
  uint64_t t0 = c->intended[id % FLOOR_SLOTS];
  c->inflight--;
  if (t0 >= c->t_warm && t0 < c->t_end) {
    bench_hist_record(&c->hist, now - t0);
    c->done_counted++;
  }
  if (now >= c->t_end && c->inflight == 0)
    uv_stop(&c->loop);
}

static void client_msg(struct floor_conn *k, uint8_t *m) {
  complete(k->tcp.loop->data, msg_id(m));
}

/* syncer_main: the group commit: one fdatasync covers every request
 * appended before it started. */
static void *syncer_main(void *arg) {
  struct floor_client *c = arg;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (!c->sync_stop && c->appended == c->synced)
      pthread_cond_wait(&c->cv, &c->mu);
    if (c->sync_stop)
      break;
    uint64_t upto = c->appended;
    pthread_mutex_unlock(&c->mu);
    if (fdatasync(c->file_fd) != 0)
      die("fdatasync", 0);
    pthread_mutex_lock(&c->mu);
    c->synced = upto;
    uv_async_send(&c->sync_async);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

static void on_synced(uv_async_t *h) {
  struct floor_client *c = h->data;
  pthread_mutex_lock(&c->mu);
  uint64_t upto = c->synced;
  pthread_mutex_unlock(&c->mu);
  while (c->completed < upto)
    complete(c, c->completed++);
}

/* issue: request @id leaves: to A, or into the file. */
static void issue(struct floor_client *c, uint64_t id) {
  memcpy(c->msg, &id, sizeof id);
  if (c->o->shape != FLOOR_FSYNC) {
    send_msg(&c->conns[c->rr++ % c->o->conns], c->msg, c->o->size);
    return;
  }
  if (write(c->file_fd, c->msg, c->o->size) != (ssize_t)c->o->size)
    die("write", 0);
  pthread_mutex_lock(&c->mu);
  c->appended = id + 1;
  pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static void on_client_read(uv_stream_t *st, ssize_t nread,
                           const uv_buf_t *buf) {
  struct floor_conn *k = st->data;
  struct floor_client *c = k->tcp.loop->data;
  if (nread < 0)
    die("a server closed", (int)nread);
  conn_feed(k, (const uint8_t *)buf->base, (size_t)nread, c->o->size,
            client_msg);
}

static void on_pace(uv_poll_t *h, int status, int events) {
  (void)status, (void)events;
  struct floor_client *c = h->data;
  uint64_t exp;
  if (read(c->pace_fd, &exp, sizeof exp) < 0)
    return;
  uint64_t now = uv_hrtime();
  if (c->cpu_warm < 0 && now >= c->t_warm)
    c->cpu_warm = servers_cpu(c);
  while (c->next_intended <= now && c->next_intended < c->t_end) {
    uint64_t id = c->seq++;
    c->intended[id % FLOOR_SLOTS] = c->next_intended;
    if (c->next_intended >= c->t_warm)
      c->sent_counted++;
    c->inflight++;
    if (c->next_intended >= c->t_warm)
      bench_hist_record(&c->lag, uv_hrtime() - c->next_intended);
    issue(c, id);
    c->next_intended += c->interval;
  }
  if (now >= c->t_end) {
    if (c->cpu_end < 0)
      c->cpu_end = servers_cpu(c);
    uv_poll_stop(h);
    if (c->inflight == 0)
      uv_stop(&c->loop);
  }
}

static void on_client_connect(uv_connect_t *req, int status) {
  struct floor_conn *k = req->data;
  struct floor_client *c = k->tcp.loop->data;
  if (status != 0)
    die("connect", status);
  free(req);
  uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_client_read);
  c->connected++;
}

static int run(const struct floor_opts *o) {
  static struct floor_client c;
  c.o = o;
  c.cpu_warm = c.cpu_end = -1;
  c.intended = calloc(FLOOR_SLOTS, sizeof *c.intended);
  if (c.intended == NULL)
    die("out of memory", 0);
  int sock[3][2], port[3];
  if (o->shape == FLOOR_QUORUM) {
    c.pids[1] = spawn(2, o->size, &port[1], sock[1]);
    c.pids[2] = spawn(2, o->size, &port[2], sock[2]);
    c.pids[0] = spawn(1, o->size, &port[0], sock[0]);
    int ports[2] = {port[1], port[2]};
    if (write(sock[0][0], ports, sizeof ports) != sizeof ports)
      die("pipe", 0);
    c.npids = 3;
  } else if (o->shape == FLOOR_ECHO) {
    c.pids[0] = spawn(0, o->size, &port[0], sock[0]);
    c.npids = 1;
  }
  uv_loop_init(&c.loop);
  c.loop.data = &c;
  if (o->shape == FLOOR_FSYNC) {
    char path[] = "/tmp/chorus-floor-XXXXXX";
    c.file_fd = mkstemp(path);
    if (c.file_fd < 0)
      die("mkstemp", 0);
    unlink(path);
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    uv_async_init(&c.loop, &c.sync_async, on_synced);
    c.sync_async.data = &c;
    if (pthread_create(&c.syncer, NULL, syncer_main, &c) != 0)
      die("pthread_create", 0);
  } else {
    for (unsigned i = 0; i < o->conns; i++) {
      c.conns[i].index = i;
      dial(&c.loop, &c.conns[i], port[0], on_client_connect);
    }
    while (c.connected < o->conns)
      uv_run(&c.loop, UV_RUN_ONCE);
    usleep(200000); /* A's links to B and C are up by now */
  }
  c.t_start = uv_hrtime();
  c.t_warm = c.t_start + (uint64_t)(o->warmup * 1e9);
  c.t_end = c.t_warm + (uint64_t)(o->duration * 1e9);
  c.interval = (uint64_t)(1e9 / o->rate);
  if (c.interval == 0)
    c.interval = 1;
  c.next_intended = c.t_start;
  bench_hist_reset(&c.hist);
  bench_hist_reset(&c.lag);
  c.pace_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  /* absolute, from the first intended time (chorus_bench.c, pace_start) */
  uint64_t ns = c.interval > 10000 ? c.interval : 10000;
  struct itimerspec its = {
      .it_interval = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)},
      .it_value = {(time_t)(c.t_start / 1000000000u),
                   (long)(c.t_start % 1000000000u)}};
  if (c.pace_fd < 0 ||
      timerfd_settime(c.pace_fd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
    die("timerfd", 0);
  uv_poll_init(&c.loop, &c.pace, c.pace_fd);
  c.pace.data = &c;
  uv_poll_start(&c.pace, UV_READABLE, on_pace);
  uv_run(&c.loop, UV_RUN_DEFAULT);
  if (o->shape == FLOOR_FSYNC) {
    pthread_mutex_lock(&c.mu);
    c.sync_stop = 1;
    pthread_cond_signal(&c.cv);
    pthread_mutex_unlock(&c.mu);
    pthread_join(c.syncer, NULL);
    close(c.file_fd);
  }
  for (unsigned i = 0; i < c.npids; i++) {
    kill(c.pids[i], SIGTERM);
    waitpid(c.pids[i], NULL, 0);
  }
  double ms = 1e-6;
  double cpu = c.cpu_end - c.cpu_warm;
  printf("chorus-floor %s: open loop at %.0f ops/s over %u connections, "
         "%u-byte messages, %.1f s after %.1f s warm-up\n",
         shape_names[o->shape], o->rate, o->conns, o->size, o->duration,
         o->warmup);
  printf("  requests %" PRIu64 " sent, %" PRIu64 " answered\n", c.sent_counted,
         c.done_counted);
  printf("  %-10s %10s %9s %9s %9s %9s %9s\n", "(ms)", "count", "p50", "p90",
         "p99", "p99.9", "max");
  printf("  %-10s %10" PRIu64 " %9.3f %9.3f %9.3f %9.3f %9.3f\n", "all",
         c.hist.count, bench_hist_percentile(&c.hist, 50) * ms,
         bench_hist_percentile(&c.hist, 90) * ms,
         bench_hist_percentile(&c.hist, 99) * ms,
         bench_hist_percentile(&c.hist, 99.9) * ms,
         bench_hist_percentile(&c.hist, 100) * ms);
  printf("  %-10s %10" PRIu64 " %9.3f %9.3f %9.3f %9.3f %9.3f\n", "send lag",
         c.lag.count, bench_hist_percentile(&c.lag, 50) * ms,
         bench_hist_percentile(&c.lag, 90) * ms,
         bench_hist_percentile(&c.lag, 99) * ms,
         bench_hist_percentile(&c.lag, 99.9) * ms,
         bench_hist_percentile(&c.lag, 100) * ms);
  if (c.npids > 0)
    printf("  server CPU %.2f s = %.1f us/op\n", cpu,
           c.done_counted ? cpu * 1e6 / (double)c.done_counted : 0.0);
  return c.done_counted == c.sent_counted ? 0 : 1;
}

int main(int argc, char **argv) {
  struct floor_opts o = {.shape = FLOOR_QUORUM,
                         .rate = 2000,
                         .duration = 8,
                         .warmup = 2,
                         .conns = 50,
                         .size = 128};
  static const struct option longs[] = {
      {"shape", required_argument, NULL, 's'},
      {"rate", required_argument, NULL, 'r'},
      {"connections", required_argument, NULL, 'c'},
      {"duration", required_argument, NULL, 'd'},
      {"warmup", required_argument, NULL, 'w'},
      {"size", required_argument, NULL, 'z'},
      {NULL, 0, NULL, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "c:d:", longs, NULL)) != -1) {
    switch (ch) {
    case 's':
      for (o.shape = FLOOR_ECHO; o.shape <= FLOOR_FSYNC; o.shape++)
        if (strcmp(optarg, shape_names[o.shape]) == 0)
          break;
      if (o.shape > FLOOR_FSYNC)
        goto usage;
      break;
    case 'r':
      o.rate = atof(optarg);
      break;
    case 'c':
      o.conns = (unsigned)atoi(optarg);
      break;
    case 'd':
      o.duration = atof(optarg);
      break;
    case 'w':
      o.warmup = atof(optarg);
      break;
    case 'z':
      o.size = (unsigned)atoi(optarg);
      break;
    default:
      goto usage;
    }
  }
  if (optind != argc || o.rate <= 0 || o.rate > 1e7 || o.duration <= 0 ||
      o.warmup < 0 || o.conns == 0 || o.conns > FLOOR_MAX_CONNS ||
      o.size < 16 || o.size > FLOOR_MAX_SIZE)
    goto usage;
  signal(SIGPIPE, SIG_IGN);
  return run(&o);
usage:
  fprintf(stderr,
          "usage: chorus-floor [--shape echo|quorum|fsync] [--rate OPS] "
          "[-c CONNS] [-d S] [--warmup S] [--size B]\n"
          "  (16 <= B <= 4096, CONNS <= 1024)\n");
  return 2;
}
