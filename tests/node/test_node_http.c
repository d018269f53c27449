/* test_node_http.c: chorusd's HTTP listener (--http, node/node_http.c) on
 * three real processes.
 *
 *   1. /health and /ready answer 200 on every member of a formed cluster,
 *      and /ready answers 503 with its reason on a node whose seed is
 *      not there (no metadata).
 *   2. Traffic through each node: its /metrics request counter
 *      (chorus_requests_total{op,level}) grows by exactly what was sent
 *      through it at each level, and the latency histogram's _count (by
 *      op and level) with it; the store's write figures (pending
 *      compaction bytes, stalls, WAL syncs) are there; every
 *      node's /metrics passes `promtool check metrics` (Debian's
 *      prometheus package; that check is skipped, with a line saying so,
 *      when promtool is not installed).
 *   3. Hostile HTTP, each while a client on the data port keeps working
 *      (its writes and reads succeed between and during them): a client
 *      sending a byte a second (closed at --http-timeout-ms), a request
 *      line of garbage (400), an 8 KiB+ head (431), 1,000 idle
 *      connections (all but the cap closed at once, the rest at the
 *      deadline).
 *
 * About 15 s under ASan (the two deadlines take 8 of it). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "node_harness.h"

#define HTTP_TIMEOUT_MS 3000 /* --http-timeout-ms of the nodes */
#define HTTP_CAP 16          /* --http-max-connections */
#define IDLE_CONNS 1000

static char metrics_buf[1 << 20];

static const char *scrape(int i) {
  int st = http_get(http_port[i], "/metrics", metrics_buf, sizeof metrics_buf);
  if (st != 200)
    fail_msg("%s /metrics: status %d", nodes[i].name, st);
  return metrics_buf;
}

/* promtool_check: `promtool check metrics` on @text; 77 when promtool is
 * not installed, else its exit status (its complaints shown). */
static int promtool_check(const char *text, const char *name) {
  if (system("command -v promtool >/dev/null 2>&1") != 0)
    return 77;
  char path[400], cmd[900], out[4096];
  snprintf(path, sizeof path, "%s/metrics-%s.txt", root, name);
  write_text(path, text);
  snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s.out 2>&1", path,
           path);
  int rc = system(cmd);
  snprintf(cmd, sizeof cmd, "%s.out", path);
  read_file(cmd, out, sizeof out);
  if (out[0])
    show("promtool says", out);
  return rc == 0 ? 0 : 1;
}

/* put_retry: a QUORUM write through @fd, asked again while the cluster's
 * gossip catches up (EUNAVAILABLE for a few seconds after it forms);
 * returns how many requests it took. */
static int put_retry(int fd, const char *key, const char *value) {
  double end = now_s() + 15;
  for (int n = 1;; n++) {
    int rc = put(fd, key, value);
    if (rc == 0)
      return n;
    if (rc != CHORUS_EUNAVAILABLE || now_s() > end)
      fail_msg("put %s: %d", key, rc);
    sleep_ms(200);
  }
}

/* data_ok: the data-path client still works: a write and its read back. */
static void data_ok(int fd, const char *what) {
  static int round;
  char key[64], val[64], got[64];
  snprintf(key, sizeof key, "data-%d", round);
  snprintf(val, sizeof val, "v%d", round++);
  int rc = put(fd, key, val);
  if (rc != 0)
    fail_msg("during %s: put: %d", what, rc);
  rc = get(fd, key, got, sizeof got);
  if (rc != 0 || strcmp(got, val) != 0)
    fail_msg("during %s: get: %d (%s)", what, rc, got);
}

/* ------------------------------------------------------------------------
 * Cases
 * ------------------------------------------------------------------------ */

static void test_health_ready(void **state) {
  (void)state;
  static const char *const more[] = {"--http-timeout-ms", "3000",
                                     "--http-max-connections", "16", NULL};
  start_cluster_http(more);
  char body[256];
  for (int i = 0; i < 3; i++) {
    assert_int_equal(http_get(http_port[i], "/health", body, sizeof body), 200);
    assert_string_equal(body, "ok\n");
    /* Ready once the metadata lists the members and gossip knows them:
     * wait_alive saw both, so at once. */
    int st = http_get(http_port[i], "/ready", body, sizeof body);
    if (st != 200)
      fail_msg("%s /ready: %d %s", nodes[i].name, st, body);
    assert_int_equal(http_get(http_port[i], "/nope", body, sizeof body), 404);
    const char post[] = "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(http_raw(http_port[i], post, sizeof post - 1, NULL, 0),
                     405);
  }
  /* A node whose only seed is not there has no metadata: not ready, and
   * says why; alive all the same. */
  struct proc lone;
  node_init(&lone, "lone");
  int hp = free_port(), dead = free_port();
  char harg[32], seeds[32];
  snprintf(harg, sizeof harg, "127.0.0.1:%d", hp);
  snprintf(seeds, sizeof seeds, "127.0.0.1:%d", dead);
  const char *extra[] = {"--http", harg,        "--seeds", seeds, "--cluster",
                         cluster,  "--profile", "local",   NULL};
  spawn(&lone, extra);
  double end = now_s() + 15;
  int st;
  while ((st = http_get(hp, "/health", body, sizeof body)) != 200 &&
         now_s() < end)
    sleep_ms(100);
  assert_int_equal(st, 200);
  st = http_get(hp, "/ready", body, sizeof body);
  show("/ready of a node whose seed is not there", body);
  assert_int_equal(st, 503);
  assert_non_null(strstr(body, "metadata"));
  const char *nl = strchr(body, '\n');
  assert_non_null(nl);
  assert_int_equal(nl[1], '\0'); /* one line */
}

/* Per node: PUTS writes and GETS reads at QUORUM and ONES writes at ONE
 * through it; its request counters and histogram counts, by operation and
 * level, grow by exactly that; the store's write figures are there. */
static void test_metrics_count_requests(void **state) {
  (void)state;
  enum { PUTS = 40, GETS = 25, ONES = 7 };
  for (int i = 0; i < 3; i++) {
    int fd = client_open(nodes[i].port);
    assert_true(fd >= 0);
    const char *m = scrape(i);
    double put0 =
        metric_value(m, "chorus_requests_total{op=\"put\",level=\"QUORUM\"}");
    double get0 =
        metric_value(m, "chorus_requests_total{op=\"get\",level=\"QUORUM\"}");
    double hput0 = metric_value(
        m,
        "chorus_request_duration_seconds_count{op=\"put\",level=\"QUORUM\"}");
    double hget0 = metric_value(
        m,
        "chorus_request_duration_seconds_count{op=\"get\",level=\"QUORUM\"}");
    double one0 =
        metric_value(m, "chorus_requests_total{op=\"put\",level=\"ONE\"}");
    double hone0 = metric_value(
        m, "chorus_request_duration_seconds_count{op=\"put\",level=\"ONE\"}");
    int sent = 0;
    char key[64], got[64];
    for (int k = 0; k < PUTS; k++) {
      snprintf(key, sizeof key, "m-%d-%d", i, k);
      sent += put_retry(fd, key, "x");
    }
    for (int k = 0; k < GETS; k++) {
      snprintf(key, sizeof key, "m-%d-%d", i, k);
      assert_int_equal(get(fd, key, got, sizeof got), 0);
    }
    /* Writes at ONE: a level of their own in both families. */
    struct wire_options at_one = quorum();
    at_one.w = WIRE_ONE;
    for (int k = 0; k < ONES; k++) {
      snprintf(key, sizeof key, "m1-%d-%d", i, k);
      assert_int_equal(put_with(fd, key, "y", at_one), 0);
    }
    close(fd);
    m = scrape(i);
    double put1 =
        metric_value(m, "chorus_requests_total{op=\"put\",level=\"QUORUM\"}");
    double get1 =
        metric_value(m, "chorus_requests_total{op=\"get\",level=\"QUORUM\"}");
    double hput1 = metric_value(
        m,
        "chorus_request_duration_seconds_count{op=\"put\",level=\"QUORUM\"}");
    double hget1 = metric_value(
        m,
        "chorus_request_duration_seconds_count{op=\"get\",level=\"QUORUM\"}");
    double inf =
        metric_value(m, "chorus_request_duration_seconds_bucket{op=\"put\","
                        "level=\"QUORUM\",le=\"+Inf\"}");
    double one1 =
        metric_value(m, "chorus_requests_total{op=\"put\",level=\"ONE\"}");
    double hone1 = metric_value(
        m, "chorus_request_duration_seconds_count{op=\"put\",level=\"ONE\"}");
    printf("# %s: %d QUORUM PUT requests sent (%d keys), %d GETs, %d ONE "
           "PUTs: counter +%.0f +%.0f +%.0f, histogram count +%.0f +%.0f "
           "+%.0f, QUORUM put sum %.4f s\n",
           nodes[i].name, sent, PUTS, GETS, ONES, put1 - put0, get1 - get0,
           one1 - one0, hput1 - hput0, hget1 - hget0, hone1 - hone0,
           metric_value(m, "chorus_request_duration_seconds_sum{op=\"put\","
                           "level=\"QUORUM\"}"));
    assert_true(put1 - put0 == sent);
    assert_true(get1 - get0 == GETS);
    assert_true(one1 - one0 == ONES);
    assert_true(hput1 - hput0 == sent);
    assert_true(hget1 - hget0 == GETS);
    assert_true(hone1 - hone0 == ONES);
    assert_true(inf == hput1);
    /* The store's write figures are there (an idle RocksDB: not stopped;
     * every node's barriers ran WAL syncs by now). */
    static const char *const store_series[] = {
        "chorus_store_pending_compaction_bytes",
        "chorus_store_write_stopped",
        "chorus_store_delayed_write_rate_bytes",
        "chorus_store_write_stall_seconds_total",
        "chorus_store_wal_syncs_total",
        "chorus_store_wal_sync_seconds_total"};
    for (size_t j = 0; j < sizeof store_series / sizeof store_series[0]; j++) {
      char line[128];
      snprintf(line, sizeof line, "\n%s ", store_series[j]);
      if (strstr(m, line) == NULL)
        fail_msg("%s: no %s", nodes[i].name, store_series[j]);
    }
    assert_true(metric_value(m, "chorus_store_write_stopped") == 0);
    printf("# %s: %.0f WAL syncs, %.6f s in them\n", nodes[i].name,
           metric_value(m, "chorus_store_wal_syncs_total"),
           metric_value(m, "chorus_store_wal_sync_seconds_total"));
    assert_true(metric_value(m, "chorus_swim_members{state=\"alive\"}") == 3);
    /* Peers by the names the metadata gives them. */
    char series[128];
    snprintf(series, sizeof series,
             "chorus_hints_pending_by_target{peer=\"%s\"} ",
             nodes[(i + 1) % 3].name);
    if (strstr(m, series) == NULL) {
      const char *h = strstr(m, "# TYPE chorus_hints_pending_by_target");
      show("no such series; the family reads", h ? h : "(absent)");
      fail_msg("%s: no %s", nodes[i].name, series);
    }
    int rc = promtool_check(m, nodes[i].name);
    if (rc == 77)
      printf("# promtool not installed (Debian package prometheus): "
             "`promtool check metrics` skipped for %s\n",
             nodes[i].name);
    else
      assert_int_equal(rc, 0);
  }
}

/* closed_within: whether the server closed @fd (EOF or reset) within
 * @ms, reading and dropping whatever it sent. */
static bool closed_within(int fd, int ms) {
  double end = now_s() + ms / 1000.0;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int left = (int)((end - now_s()) * 1000);
    if (left < 0)
      left = 0;
    if (poll(&p, 1, left) <= 0)
      return false;
    char buf[4096];
    ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
      return true;
  }
}

static void test_hostile_http(void **state) {
  (void)state;
  int port = http_port[0];
  int fd = client_open(nodes[0].port);
  assert_true(fd >= 0);
  put_retry(fd, "warm", "up");
  data_ok(fd, "the start");

  /* A slow client: a byte a second of a valid request; closed at the
   * deadline, never answered, while the data path serves. */
  int slow = tcp_connect(port);
  assert_true(slow >= 0);
  const char *req = "GET /metrics HTTP/1.1\r\nHost: slow\r\n\r\n";
  double t0 = now_s();
  bool closed = false;
  for (size_t k = 0; k < strlen(req) && !closed; k++) {
    if (send(slow, req + k, 1, MSG_NOSIGNAL) != 1)
      break;
    data_ok(fd, "a slow HTTP client");
    closed = closed_within(slow, 1000);
  }
  double took = now_s() - t0;
  close(slow);
  printf("# slow client (a byte a second): closed after %.1f s\n", took);
  assert_true(closed);
  assert_true(took >= HTTP_TIMEOUT_MS / 1000.0 - 0.5 &&
              took <= HTTP_TIMEOUT_MS / 1000.0 + 5);

  /* A request line of garbage (a TLS hello, say): 400 and closed. */
  const char garbage[] = "\x16\x03\x01\x02\x05garbage garbage\r\n\r\n";
  char body[256];
  assert_int_equal(
      http_raw(port, garbage, sizeof garbage - 1, body, sizeof body), 400);
  data_ok(fd, "a garbage request line");

  /* A head over 8 KiB: 431 and closed. */
  static char big[10000];
  int off = snprintf(big, sizeof big, "GET /metrics HTTP/1.1\r\nX-Big: ");
  memset(big + off, 'a', sizeof big - (size_t)off - 4);
  memcpy(big + sizeof big - 4, "\r\n\r\n", 4);
  assert_int_equal(http_raw(port, big, sizeof big, body, sizeof body), 431);
  data_ok(fd, "an oversized head");

  /* 1,000 idle connections: past the cap each is closed at once; the cap's
   * worth are closed at the deadline. The data path serves throughout. */
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < IDLE_CONNS + 100) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < IDLE_CONNS + 100) {
    printf("# descriptor limit %llu: the %d idle connections skipped\n",
           (unsigned long long)rl.rlim_cur, IDLE_CONNS);
  } else {
    const char *m = scrape(0);
    double over0 = metric_value(
        m, "chorus_connections_closed_total{reason=\"http_over_cap\"}");
    double acc0 = metric_value(m, "chorus_http_connections_accepted_total");
    static int idle[IDLE_CONNS];
    int opened = 0;
    for (int k = 0; k < IDLE_CONNS; k++) {
      idle[k] = tcp_connect(port);
      opened += idle[k] >= 0;
      if (k % 250 == 0)
        data_ok(fd, "1,000 idle HTTP connections");
    }
    assert_int_equal(opened, IDLE_CONNS);
    data_ok(fd, "1,000 idle HTTP connections");
    double t1 = now_s();
    /* Within a second, all but the cap's worth are closed (more stay
     * open when a slot freed while we connected: a loaded machine). */
    sleep_ms(1000);
    int closed_now = 0;
    for (int k = 0; k < IDLE_CONNS; k++)
      closed_now += closed_within(idle[k], 0);
    data_ok(fd, "1,000 idle HTTP connections");
    /* The rest by the deadline. */
    int closed_later = 0;
    for (int k = 0; k < IDLE_CONNS; k++)
      closed_later += closed_within(
          idle[k], (int)(HTTP_TIMEOUT_MS + 2500 - (now_s() - t1) * 1000));
    for (int k = 0; k < IDLE_CONNS; k++)
      close(idle[k]);
    printf("# %d idle connections: %d closed at once, %d by the deadline\n",
           IDLE_CONNS, closed_now, closed_later);
    assert_true(closed_now >= IDLE_CONNS / 2);
    assert_int_equal(closed_later, IDLE_CONNS);
    data_ok(fd, "after 1,000 idle HTTP connections");
    m = scrape(0);
    double over1 = metric_value(
        m, "chorus_connections_closed_total{reason=\"http_over_cap\"}");
    /* Each was either closed at once or admitted under the cap (the
     * second scrape is one more admitted). */
    double admitted =
        metric_value(m, "chorus_http_connections_accepted_total") - acc0 - 1;
    printf("# http_over_cap +%.0f, admitted +%.0f, http_timeout %.0f\n",
           over1 - over0, admitted,
           metric_value(m, "chorus_connections_closed_total{reason=\"http_"
                           "timeout\"}"));
    assert_true(over1 - over0 + admitted == IDLE_CONNS);
    assert_true(over1 - over0 >= IDLE_CONNS / 2);
  }
  const char *m = scrape(0);
  assert_true(metric_value(m, "chorus_http_responses_total{code=\"4xx\"}") >=
              2);
  assert_true(metric_value(m, "chorus_connections_closed_total{reason=\"http_"
                              "timeout\"}") >= 1);
  close(fd);
}

static int teardown(void **state) {
  return group_teardown(state);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      TIMED(test_health_ready),
      TIMED(test_metrics_count_requests),
      TIMED(test_hostile_http),
  };
  int failed = cmocka_run_group_tests_name("node_http", tests, NULL, teardown);
  return harness_finish(failed);
}
