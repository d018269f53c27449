/* test_node_prom.c: a real Prometheus server (Debian's prometheus package,
 * /usr/bin/prometheus) scrapes a 3-node cluster's /metrics (issue 25).
 *
 * Three chorusd with --http; a prometheus.yml scraping their /metrics
 * every second; the server on a free loopback port with its TSDB in the
 * run's folder (no remote fetches: static targets only). Once it has
 * scraped all three (up == 1 each), the test sends a known number of
 * QUORUM PUTs and GETs spread over the nodes, then asks Prometheus's HTTP
 * API (/api/v1/query over a plain socket) until
 *   sum(chorus_requests_total{op="put"}) and {op="get"}
 * equal the sum of what the nodes' /metrics say (which grew by exactly
 * what was sent), as does sum(chorus_request_duration_seconds_count), and
 *   histogram_quantile(0.99, sum by (le)
 *     (rate(chorus_request_duration_seconds_bucket{op="put"}[30s])))
 * is a latency (a number > 0, not NaN). Every wait is bounded (30 s).
 * The server is killed at the end, and by the harness's cleanup (also on a
 * fatal signal). Skipped (TAP `1..0 # SKIP`, exit 77) when
 * /usr/bin/prometheus is missing. About 10 s under ASan. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "node_harness.h"

#define PROMETHEUS "/usr/bin/prometheus"
#define WAIT_S 30

static int prom_port;
static pid_t prom_pid;

/* nodes_sum: @series summed over the three nodes' /metrics. */
static double nodes_sum(const char *series) {
  static char m[1 << 20];
  double s = 0;
  for (int i = 0; i < 3; i++) {
    int st = http_get(http_port[i], "/metrics", m, sizeof m);
    if (st != 200)
      fail_msg("%s /metrics: status %d", nodes[i].name, st);
    s += metric_value(m, series);
  }
  return s;
}

/* query: Prometheus's answer to the instant query @promql: the number of
 * samples in the vector it returns, the first one's value in @v (NAN when
 * none); -1 when the server did not answer with success. Just enough
 * JSON: {"status":"success","data":{"resultType":"vector","result":
 * [{"metric":{...},"value":[<time>,"<value>"]},...]}}. */
static int query(const char *promql, double *v, char *raw, size_t cap) {
  char path[1024] = "/api/v1/query?query=";
  size_t o = strlen(path);
  for (const unsigned char *s = (const unsigned char *)promql; *s; s++) {
    if (o + 4 >= sizeof path)
      return -1;
    if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
        (*s >= '0' && *s <= '9') || strchr("-_.~", *s))
      path[o++] = (char)*s;
    else
      o += (size_t)snprintf(path + o, sizeof path - o, "%%%02X", *s);
  }
  path[o] = '\0';
  *v = (double)NAN;
  int st = http_get(prom_port, path, raw, cap);
  if (st != 200 || strstr(raw, "\"status\":\"success\"") == NULL)
    return -1;
  int n = 0;
  for (const char *p = strstr(raw, "\"value\":["); p != NULL;
       p = strstr(p + 1, "\"value\":[")) {
    if (n++ == 0) {
      const char *q = strstr(p, ",\"");
      if (q != NULL)
        *v = strtod(q + 2, NULL); /* "NaN" parses as NAN */
    }
  }
  return n;
}

static void prom_kill(void) {
  if (prom_pid > 0) {
    kill(prom_pid, SIGKILL);
    waitpid(prom_pid, NULL, 0);
    prom_pid = 0;
  }
}

/* start_prometheus: the server scraping the three /metrics every second
 * (scrape_timeout under the interval, as Prometheus requires). */
static void start_prometheus(void) {
  char yml[400], tsdb[400], log[400], listen[32], text[1024];
  snprintf(yml, sizeof yml, "%s/prometheus.yml", root);
  snprintf(tsdb, sizeof tsdb, "%s/prom-tsdb", root);
  snprintf(log, sizeof log, "%s/prometheus.log", root);
  snprintf(text, sizeof text,
           "global:\n"
           "  scrape_interval: 1s\n"
           "  scrape_timeout: 800ms\n"
           "  evaluation_interval: 1s\n"
           "scrape_configs:\n"
           "  - job_name: chorus\n"
           "    static_configs:\n"
           "      - targets: ['127.0.0.1:%d', '127.0.0.1:%d', "
           "'127.0.0.1:%d']\n",
           http_port[0], http_port[1], http_port[2]);
  write_text(yml, text);
  prom_port = free_port();
  snprintf(listen, sizeof listen, "127.0.0.1:%d", prom_port);
  char cfg[450], stor[450], web[64];
  snprintf(cfg, sizeof cfg, "--config.file=%s", yml);
  snprintf(stor, sizeof stor, "--storage.tsdb.path=%s", tsdb);
  snprintf(web, sizeof web, "--web.listen-address=%s", listen);
  fflush(stdout);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    FILE *f = freopen(log, "w", stderr);
    if (f != NULL)
      dup2(fileno(f), 1);
    /* The nodes' ASan options mean nothing to a Go binary. */
    unsetenv("LD_PRELOAD");
    execl(PROMETHEUS, PROMETHEUS, cfg, stor, web, (char *)NULL);
    _exit(127);
  }
  prom_pid = pid;
  harness_cleanup_hook = prom_kill;
}

/* wait_query: polls @promql until its first sample equals @want (NAN:
 * until it is any number > 0), within WAIT_S; the value last seen. */
static double wait_query(const char *promql, double want, double *took) {
  static char raw[1 << 16];
  double t0 = now_s(), v = (double)NAN;
  int n = -1;
  while (now_s() - t0 < WAIT_S) {
    n = query(promql, &v, raw, sizeof raw);
    if (n >= 1 && (isnan(want) ? (!isnan(v) && v > 0) : v == want))
      break;
    sleep_ms(250);
  }
  *took = now_s() - t0;
  printf("# %s = %g (%d samples, %.1f s)\n", promql, v, n, *took);
  if (n < 1 || (isnan(want) ? !(v > 0) : v != want))
    show("Prometheus's last answer", raw);
  return v;
}

static void test_prometheus_scrapes_the_cluster(void **state) {
  (void)state;
  start_cluster_http(NULL);
  /* A write before the server starts: the cluster serves (gossip caught
   * up), and every series exists before the first scrape, so rate() sees
   * the traffic below as an increase. */
  int fd[3];
  for (int i = 0; i < 3; i++) {
    fd[i] = client_open(nodes[i].port);
    assert_true(fd[i] >= 0);
  }
  double end = now_s() + 15;
  int rc;
  while ((rc = put(fd[0], "warm", "up")) == CHORUS_EUNAVAILABLE &&
         now_s() < end)
    sleep_ms(200);
  assert_int_equal(rc, 0);

  start_prometheus();
  double took;
  assert_true(wait_query("count(up{job=\"chorus\"} == 1)", 3, &took) == 3);

  const char *sput = "chorus_requests_total{op=\"put\",level=\"QUORUM\"}";
  const char *sget = "chorus_requests_total{op=\"get\",level=\"QUORUM\"}";
  double put0 = nodes_sum(sput), get0 = nodes_sum(sget);
  enum { PUTS = 30, GETS = 20 }; /* per node */
  char key[64], got[64];
  for (int i = 0; i < 3; i++) {
    for (int k = 0; k < PUTS; k++) {
      snprintf(key, sizeof key, "p-%d-%d", i, k);
      assert_int_equal(put(fd[i], key, "x"), 0);
    }
    for (int k = 0; k < GETS; k++) {
      snprintf(key, sizeof key, "p-%d-%d", i, k);
      assert_int_equal(get(fd[i], key, got, sizeof got), 0);
    }
    close(fd[i]);
  }
  double put1 = nodes_sum(sput), get1 = nodes_sum(sget);
  /* The histogram is by operation and level (all of this is QUORUM). */
  double hput = nodes_sum(
      "chorus_request_duration_seconds_count{op=\"put\",level=\"QUORUM\"}");
  printf("# sent %d PUTs and %d GETs; the nodes' /metrics: put +%.0f (%.0f), "
         "get +%.0f (%.0f), put histogram count %.0f\n",
         3 * PUTS, 3 * GETS, put1 - put0, put1, get1 - get0, get1, hput);
  assert_true(put1 - put0 == 3 * PUTS);
  assert_true(get1 - get0 == 3 * GETS);
  assert_true(hput == put1);

  /* What Prometheus stored equals what the nodes say. */
  assert_true(wait_query("sum(chorus_requests_total{op=\"put\"})", put1,
                         &took) == put1);
  assert_true(wait_query("sum(chorus_requests_total{op=\"get\"})", get1,
                         &took) == get1);
  assert_true(wait_query("sum(chorus_request_duration_seconds_count{op="
                         "\"put\"})",
                         hput, &took) == hput);
  /* And the histogram answers a latency quantile over the traffic. */
  double p99 = wait_query("histogram_quantile(0.99, sum by (le) "
                          "(rate(chorus_request_duration_seconds_bucket{op="
                          "\"put\"}[30s])))",
                          (double)NAN, &took);
  assert_true(p99 > 0 && p99 < 60);
  prom_kill();
}

static int teardown(void **state) {
  prom_kill();
  return group_teardown(state);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  if (access(PROMETHEUS, X_OK) != 0) {
    printf("1..0 # SKIP %s not installed (Debian package prometheus)\n",
           PROMETHEUS);
    harness_finish(0);
    return 77;
  }
  const struct CMUnitTest tests[] = {
      TIMED(test_prometheus_scrapes_the_cluster),
  };
  int failed = cmocka_run_group_tests_name("node_prom", tests, NULL, teardown);
  return harness_finish(failed);
}
