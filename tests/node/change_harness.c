/* change_harness.c: what the topology-change tests share (the contract is
 * change_harness.h). */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "change_harness.h"

#define WINDOW 32 /* requests in flight per connection (< 64) */

struct proc ns[CH_NODES];
char founders[256];

/* ------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------ */

int ch_setup(int argc, char **argv) {
  return harness_setup(argc, argv) != 0 ? 1 : find_cli();
}

void ch_init(void) {
  for (int i = 1; i < CH_NODES; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    node_init(&ns[i], name);
  }
  snprintf(founders, sizeof founders, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d",
           ns[1].port, ns[2].port, ns[3].port);
}

void ch_start(int i, const char *const *more) {
  const char *extra[32] = {
      "--cluster",      cluster,  "--cluster-key", keyfile_a,
      "--profile",      "local",  "--replicas",    "3",
      "--seeds",        founders, "--leave-ms",    "500",
      "--max-inflight", "64",     "--timeout",     "10000"};
  size_t k = 16;
  for (size_t j = 0; more && more[j]; j++) {
    assert_true(k + 1 < sizeof extra / sizeof extra[0]);
    extra[k++] = more[j];
  }
  extra[k] = NULL;
  spawn(&ns[i], extra);
}

void kill9(struct proc *p) {
  if (p->pid > 0) {
    kill(p->pid, SIGKILL);
    wait_exit(p, 10);
  }
}

int64_t stream_stat(int i, const char *name) {
  char full[64];
  snprintf(full, sizeof full, "stream.%s", name);
  return stat_of(ns[i].port, full);
}

void stream_line(int i) {
  static const char *const names[] = {
      "ranges",      "ranges_done",  "keys",         "bytes",     "batches",
      "retries",     "refused",      "fallbacks",    "resumed",   "repairs",
      "served_keys", "served_bytes", "reads_opened", "reads_kept"};
  printf("# n%d:", i);
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
    printf(" %s=%" PRId64, names[k], stream_stat(i, names[k]));
  printf("\n");
}

/* ------------------------------------------------------------------------
 * Members as `chorus cluster status --json` shows them
 * ------------------------------------------------------------------------ */

void member_field(const char *json, const char *name, const char *field,
                  char *out, size_t cap) {
  out[0] = '\0';
  const char *members = strstr(json, "\"members\":[");
  if (members == NULL)
    return;
  char needle[64];
  snprintf(needle, sizeof needle, "\"name\":\"%s\"", name);
  const char *m = strstr(members, needle);
  if (m == NULL)
    return;
  const char *end = strchr(m, '}');
  snprintf(needle, sizeof needle, "\"%s\":\"", field);
  const char *f = strstr(m, needle);
  if (f == NULL || (end != NULL && f > end))
    return;
  f += strlen(needle);
  size_t n = strcspn(f, "\"");
  if (n >= cap)
    n = cap - 1;
  memcpy(out, f, n);
  out[n] = '\0';
}

int64_t member_number(const char *json, const char *name, const char *field) {
  const char *members = strstr(json, "\"members\":[");
  char needle[64];
  snprintf(needle, sizeof needle, "\"name\":\"%s\"", name);
  const char *m = members != NULL ? strstr(members, needle) : NULL;
  if (m == NULL)
    return -1;
  const char *end = strchr(m, '}');
  snprintf(needle, sizeof needle, "\"%s\":", field);
  const char *f = strstr(m, needle);
  if (f == NULL || (end != NULL && f > end))
    return -1;
  return strtoll(f + strlen(needle), NULL, 10);
}

bool view_is(const char *json, const char *expect) {
  char spec[256];
  snprintf(spec, sizeof spec, "%s", expect);
  char *save = NULL;
  for (char *t = strtok_r(spec, " ", &save); t != NULL;
       t = strtok_r(NULL, " ", &save)) {
    char *eq = strchr(t, '=');
    if (eq == NULL)
      return false;
    *eq = '\0';
    char *slash = strchr(t, '/');
    const char *field = "state";
    if (slash != NULL) {
      *slash = '\0';
      field = slash + 1;
    }
    char got[32];
    member_field(json, t, field, got, sizeof got);
    if (strcmp(got, eq + 1) != 0)
      return false;
  }
  return true;
}

void state_of(int i, const char *name, char *out, size_t cap) {
  static char json[16384];
  out[0] = '\0';
  if (run_cli(ns[i].port, json, sizeof json, "--json cluster status") == 0)
    member_field(json, name, "state", out, cap);
}

/* moved: whether the streams moved since @best was last updated: a
 * running node's stream.done_ppm (the token space of its ranges held up
 * to its cursor) plus a million a range done grew past its best. */
static bool moved(int64_t best[CH_NODES]) {
  bool any = false;
  for (int i = 1; i < CH_NODES; i++)
    if (ns[i].pid > 0) {
      int64_t done = stream_stat(i, "ranges_done"),
              ppm = stream_stat(i, "done_ppm");
      int64_t p = (done > 0 ? done * 1000000 : 0) + (ppm > 0 ? ppm : 0);
      if (p > best[i]) {
        best[i] = p;
        any = true;
      }
    }
  return any;
}

/* view_within: wait_view, and wait_view_moving when @stall > 0. */
static double view_within(const char *expect, double secs, double stall) {
  static char json[16384];
  double t0 = now_s(), last_move = t0, next_look = t0;
  int64_t best[CH_NODES];
  for (int k = 0; k < CH_NODES; k++)
    best[k] = -1;
  for (int i = 1; i < CH_NODES;) {
    if (ns[i].pid <= 0) {
      i++;
      continue;
    }
    if (run_cli(ns[i].port, json, sizeof json, "--json cluster status") == 0 &&
        view_is(json, expect)) {
      i++;
      continue;
    }
    double now = now_s();
    if (stall > 0 && now >= next_look) {
      if (moved(best))
        last_move = now;
      next_look = now + 1;
    }
    if (now - t0 > secs || (stall > 0 && now - last_move > stall)) {
      show("the last cluster status", json);
      for (int k = 1; stall > 0 && k < CH_NODES; k++)
        if (ns[k].pid > 0)
          stream_line(k);
      if (stall > 0 && now - last_move > stall)
        fail_msg("n%d's view is not \"%s\" after %.0f s, and no stream "
                 "moved in the last %.0f s",
                 i, expect, now - t0, stall);
      fail_msg("n%d's view is not \"%s\" within %.0f s", i, expect, secs);
    }
    sleep_ms(500);
  }
  return now_s() - t0;
}

double wait_view(const char *expect, double secs) {
  return view_within(expect, secs, 0);
}

double wait_view_moving(const char *expect, double stall, double secs) {
  return view_within(expect, secs, stall);
}

double wait_all_normal(const char *more, double secs) {
  char expect[256] = "";
  for (int i = 1; i < CH_NODES; i++)
    if (ns[i].pid > 0)
      snprintf(expect + strlen(expect), sizeof expect - strlen(expect),
               "%sn%d=normal", expect[0] ? " " : "", i);
  if (more != NULL)
    snprintf(expect + strlen(expect), sizeof expect - strlen(expect), " %s",
             more);
  return wait_view(expect, secs);
}

double cli_until_ok(int i, double secs, const char *args) {
  char out[4096];
  double t0 = now_s();
  while (run_cli(ns[i].port, out, sizeof out, "%s", args) != 0) {
    if (now_s() - t0 > secs)
      fail_msg("chorus %s not accepted within %.0f s: %s", args, secs, out);
    sleep_ms(300);
  }
  char title[128];
  snprintf(title, sizeof title, "chorus %s (after %.1f s)", args, now_s() - t0);
  show(title, out);
  return now_s() - t0;
}

/* ------------------------------------------------------------------------
 * Keys, pipelined
 * ------------------------------------------------------------------------ */

static int index_at(const struct keys *ks, int i) {
  return ks->idx ? ks->idx[i] : i;
}

static void key_at(const struct keys *ks, int i, char *k, size_t cap) {
  snprintf(k, cap, "%s%06d", ks->prefix, index_at(ks, i));
}

static size_t value_at(const struct keys *ks, int i, char *v) {
  int x = index_at(ks, i);
  int n = snprintf(v, ks->vlen + 1, "v%d-", x);
  for (size_t j = (size_t)n; j < ks->vlen; j++)
    v[j] = (char)('a' + (x + (int)j) % 26);
  v[ks->vlen] = '\0';
  return ks->vlen;
}

struct wire_options opts_rw(int32_t r, int32_t w) {
  struct wire_options o = {0};
  o.r = r;
  o.w = w;
  return o;
}

/* judge: one reply to a PUT or GET of key @i, counted into @t. */
static void judge(const struct keys *ks, int i, const struct reply *r,
                  struct tally *t) {
  static char want[CH_MAX_VLEN + 1];
  char k[32];
  if (r->m.type == WIRE_WRITE_REPLY) {
    t->ok++;
  } else if (r->m.type == WIRE_GET_REPLY) {
    const struct wire_bytes_list *v = &r->m.get_reply.values;
    size_t len = value_at(ks, i, want);
    if (v->n == 0) {
      if (t->missing < 3) {
        key_at(ks, i, k, sizeof k);
        snprintf(t->first_missing[t->missing], sizeof t->first_missing[0], "%s",
                 k);
      }
      t->missing++;
    } else if (v->n == 1 && v->items[0].len == len &&
               memcmp(v->items[0].ptr, want, len) == 0) {
      t->ok++;
    } else {
      t->wrong++;
    }
  } else {
    t->errors++;
    t->last_error = r->m.type == WIRE_ERROR ? r->m.error.code : -1001;
  }
}

void batch(int port, const struct keys *ks, bool write, struct wire_options o,
           int first, int stride, struct tally *t) {
  static char v[CH_MAX_VLEN + 1];
  assert_true(ks->vlen <= CH_MAX_VLEN);
  int count = first < ks->n ? (ks->n - first + stride - 1) / stride : 0;
  int fd = client_open(port);
  if (fd < 0) {
    t->unanswered += count;
    return;
  }
  uint64_t base = next_id;
  next_id += (uint64_t)count;
  int sent = 0, got = 0;
  while (got < count) {
    while (sent < count && sent - got < WINDOW) {
      int i = first + sent * stride;
      char k[32];
      key_at(ks, i, k, sizeof k);
      struct wire_msg m = {.request_id = base + (uint64_t)sent};
      if (write) {
        size_t vl = value_at(ks, i, v);
        m.type = WIRE_PUT;
        m.put.key = (struct wire_bytes){(const uint8_t *)k, strlen(k)};
        m.put.value = (struct wire_bytes){(const uint8_t *)v, vl};
        m.put.opts = o;
      } else {
        m.type = WIRE_GET;
        m.get.key = (struct wire_bytes){(const uint8_t *)k, strlen(k)};
        m.get.opts = o;
      }
      if (send_msg(fd, &m) != 0)
        break;
      sent++;
    }
    struct reply r;
    if (recv_msg(fd, &r) != 0)
      break;
    uint64_t at = r.m.request_id - base;
    if (r.m.request_id >= base && at < (uint64_t)sent) {
      judge(ks, first + (int)at * stride, &r, t);
      got++;
    }
    reply_free(&r);
  }
  t->unanswered += count - got;
  close(fd);
}

void tally_line(const char *what, const struct tally *t) {
  printf("# %s: %d ok, %d missing, %d wrong, %d errors (last %d), %d "
         "unanswered",
         what, t->ok, t->missing, t->wrong, t->errors, t->last_error,
         t->unanswered);
  for (int k = 0; k < t->missing && k < 3; k++)
    printf("%s%s", k ? ", " : "; missing: ", t->first_missing[k]);
  printf("\n");
}

void write_all_keys(int i, const struct keys *ks) {
  struct tally t = {0};
  batch(ns[i].port, ks, true, opts_rw(WIRE_QUORUM, WIRE_ALL), 0, 1, &t);
  char what[64];
  snprintf(what, sizeof what, "W=ALL writes of %d keys through n%d", ks->n, i);
  tally_line(what, &t);
  assert_int_equal(t.ok, ks->n);
}

int read_everything(int i, const struct keys *ks) {
  struct tally t = {0};
  batch(ns[i].port, ks, false, opts_rw(1, WIRE_QUORUM), 0, 1, &t);
  char what[64];
  snprintf(what, sizeof what, "R=1 reads of %d keys through n%d", ks->n, i);
  tally_line(what, &t);
  return t.ok;
}

void every_node_reads(const struct keys *ks) {
  int found[CH_NODES] = {0};
  for (int i = 1; i < CH_NODES; i++)
    if (ns[i].pid > 0)
      found[i] = read_everything(i, ks);
  for (int i = 1; i < CH_NODES; i++)
    if (ns[i].pid > 0 && found[i] != ks->n)
      fail_msg("%d of the %d \"%s\" keys at R=1 through n%d", found[i], ks->n,
               ks->prefix, i);
}

/* ------------------------------------------------------------------------
 * The background load
 * ------------------------------------------------------------------------ */

static pid_t bg_pid;
static int bg_stop = -1;   /* the child ends when this pipe closes */
static char bg_acked[300]; /* the keys it saw acknowledged, one a line */
static char bg_summary[300];
static char bg_errors[300]; /* each failed request, one a line */
static int bg_via[CH_NODES], bg_nvia;

/* bg_call: @m on @fd; 0 on a write's WRITE_REPLY, else as get() (0 with
 * the only sibling in @out, 1 not found, 2 siblings), or the error code
 * with its text in @text (-1000: no answer). */
static int bg_call(int fd, struct wire_msg *m, char *out, size_t cap,
                   char *text, size_t tcap) {
  struct reply r;
  text[0] = '\0';
  m->request_id = next_id++;
  if (call(fd, m, &r) != 0) {
    snprintf(text, tcap, "no answer");
    return -1000;
  }
  int rc = 0;
  if (r.m.type == WIRE_GET_REPLY) {
    const struct wire_bytes_list *v = &r.m.get_reply.values;
    rc = v->n == 0 ? 1 : v->n > 1 ? 2 : 0;
    if (v->n == 1)
      snprintf(out, cap, "%.*s", (int)v->items[0].len,
               (const char *)v->items[0].ptr);
  } else if (r.m.type == WIRE_ERROR) {
    rc = r.m.error.code;
    snprintf(text, tcap, "%.*s", (int)r.m.error.text.len,
             (const char *)r.m.error.text.ptr);
  } else if (r.m.type != WIRE_WRITE_REPLY) {
    rc = -1001;
  }
  reply_free(&r);
  return rc;
}

/* bg_error: one failed request, with the wall clock the node logs use. */
static void bg_error(FILE *f, const char *op, int node, const char *key, int rc,
                     const char *text) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(f, "%02d:%02d:%02d.%03ldZ %s %s through n%d: %s (%s)\n", tm.tm_hour,
          tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, op, key, node,
          chorus_errname(rc), text);
  fflush(f);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#define BG_MAX_LAT (1 << 16)
static double bg_lat[BG_MAX_LAT]; /* milliseconds, in the child */

/* Each load writes keys of its own ("bg1-000000"...): a blind PUT of a
 * key an earlier load wrote would make a sibling, not a new value. */
static char bg_prefix[16];
static int bg_gen;
static const struct keys bg_keys = {bg_prefix, 16, NULL, 1 << 30};

/* bg_run: the child. Paced at about 100 writes a second: every key
 * written grows the memtable that each stream pull copies into a sorted
 * view (store_rocksdb.c), so an unpaced load makes the streams slower, not
 * the check stronger. */
static int bg_run(int stop) {
  FILE *acked = fopen(bg_acked, "w"), *errs = fopen(bg_errors, "w");
  if (acked == NULL || errs == NULL)
    return 1;
  struct bg_counts c = {0};
  int nlat = 0;
  int fds[CH_NODES];
  for (int j = 0; j < bg_nvia; j++)
    fds[j] = -1;
  for (int i = 0;; i++) {
    struct pollfd pf = {.fd = stop, .events = POLLIN};
    if (poll(&pf, 1, 0) != 0)
      break; /* closed (or written): the parent says stop */
    char k[32], v[32], got[64], text[256];
    int w = i % bg_nvia, r = (i + 1) % bg_nvia;
    for (int j = 0; j < bg_nvia; j++)
      if (fds[j] < 0 && (j == w || j == r) &&
          (fds[j] = client_open(ns[bg_via[j]].port)) >= 0)
        c.reconnects++;
    if (fds[w] < 0 || fds[r] < 0) {
      sleep_ms(50);
      continue;
    }
    key_at(&bg_keys, i, k, sizeof k);
    value_at(&bg_keys, i, v);
    sleep_ms(10);
    c.writes++;
    struct wire_msg m = {.type = WIRE_PUT};
    m.put.key = (struct wire_bytes){(const uint8_t *)k, strlen(k)};
    m.put.value = (struct wire_bytes){(const uint8_t *)v, strlen(v)};
    m.put.opts = quorum();
    double t0 = now_s();
    int rc = bg_call(fds[w], &m, got, sizeof got, text, sizeof text);
    if (nlat < BG_MAX_LAT)
      bg_lat[nlat++] = (now_s() - t0) * 1e3;
    if (rc != 0) {
      c.write_errors++;
      c.last_error = rc;
      bg_error(errs, "PUT", bg_via[w], k, rc, text);
      if (rc == -1000) {
        close(fds[w]);
        fds[w] = -1;
      }
      continue;
    }
    c.acked++;
    fprintf(acked, "%d\n", i);
    fflush(acked);
    c.reads++;
    m = (struct wire_msg){.type = WIRE_GET};
    m.get.key = (struct wire_bytes){(const uint8_t *)k, strlen(k)};
    m.get.opts = quorum();
    t0 = now_s();
    rc = bg_call(fds[r], &m, got, sizeof got, text, sizeof text);
    if (nlat < BG_MAX_LAT)
      bg_lat[nlat++] = (now_s() - t0) * 1e3;
    if (rc == 0 && strcmp(got, v) == 0) {
      c.read_ok++;
    } else if (rc == 1) {
      c.read_missing++;
      bg_error(errs, "GET (acknowledged, not found)", bg_via[r], k, rc, "");
    } else if (rc == 0 || rc == 2) {
      c.read_wrong++;
      bg_error(errs, "GET (acknowledged, other value)", bg_via[r], k, rc, got);
    } else {
      c.read_errors++;
      c.last_error = rc;
      bg_error(errs, "GET", bg_via[r], k, rc, text);
      if (rc == -1000) {
        close(fds[r]);
        fds[r] = -1;
      }
    }
  }
  fclose(acked);
  fclose(errs);
  if (nlat > 0) {
    qsort(bg_lat, (size_t)nlat, sizeof bg_lat[0], cmp_double);
    c.p50_ms = bg_lat[nlat / 2];
    c.p99_ms = bg_lat[(size_t)((double)nlat * 0.99) < (size_t)nlat
                          ? (size_t)((double)nlat * 0.99)
                          : (size_t)nlat - 1];
    c.max_ms = bg_lat[nlat - 1];
  }
  FILE *f = fopen(bg_summary, "w");
  if (f == NULL)
    return 1;
  fprintf(f, "%d %d %d %d %d %d %d %d %d %d %.3f %.3f %.3f\n", c.writes,
          c.acked, c.write_errors, c.reads, c.read_ok, c.read_missing,
          c.read_wrong, c.read_errors, c.reconnects - bg_nvia, c.last_error,
          c.p50_ms, c.p99_ms, c.max_ms);
  fclose(f);
  return 0;
}

void bg_start(const int *via, int nvia) {
  assert_true(nvia >= 1 && nvia < CH_NODES);
  for (int j = 0; j < nvia; j++)
    bg_via[j] = via[j];
  bg_nvia = nvia;
  snprintf(bg_prefix, sizeof bg_prefix, "bg%d-", ++bg_gen);
  snprintf(bg_acked, sizeof bg_acked, "%s/bg-acked", root);
  snprintf(bg_summary, sizeof bg_summary, "%s/bg-summary", root);
  snprintf(bg_errors, sizeof bg_errors, "%s/bg-errors", root);
  unlink(bg_summary);
  int p[2];
  assert_int_equal(pipe(p), 0);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* The harness's fatal-signal cleanup would kill the nodes and remove
     * the run's folder: not the child's to do. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGABRT, SIG_DFL);
    close(p[1]);
    _exit(bg_run(p[0]));
  }
  close(p[0]);
  bg_stop = p[1];
  bg_pid = pid;
}

int bg_end(struct bg_counts *c) {
  *c = (struct bg_counts){0};
  if (bg_pid <= 0)
    return -1;
  close(bg_stop);
  bg_stop = -1;
  int st = 0;
  pid_t r = 0;
  for (double end = now_s() + 30; now_s() < end; sleep_ms(20))
    if ((r = waitpid(bg_pid, &st, WNOHANG)) == bg_pid)
      break;
  if (r != bg_pid) {
    kill(bg_pid, SIGKILL);
    waitpid(bg_pid, &st, 0);
  }
  bg_pid = 0;
  char text[256];
  read_file(bg_summary, text, sizeof text);
  if (sscanf(text, "%d %d %d %d %d %d %d %d %d %d %lf %lf %lf", &c->writes,
             &c->acked, &c->write_errors, &c->reads, &c->read_ok,
             &c->read_missing, &c->read_wrong, &c->read_errors, &c->reconnects,
             &c->last_error, &c->p50_ms, &c->p99_ms, &c->max_ms) != 13)
    return -1;
  int total = c->writes + c->reads;
  int failed = c->write_errors + c->read_errors;
  printf("# background QUORUM load: %d writes, %d acknowledged, %d refused "
         "or unanswered (last error %d); %d reads back, %d ok, %d missing, "
         "%d wrong, %d errors; %d reconnects\n",
         c->writes, c->acked, c->write_errors, c->last_error, c->reads,
         c->read_ok, c->read_missing, c->read_wrong, c->read_errors,
         c->reconnects);
  printf("# background QUORUM load: error rate %.2f%% (%d of %d requests), "
         "latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
         total ? 100.0 * failed / total : 0.0, failed, total, c->p50_ms,
         c->p99_ms, c->max_ms);
  /* The first failures, and how many there were. */
  static char errs[1 << 20];
  read_file(bg_errors, errs, sizeof errs);
  size_t lines = count_lines(errs);
  char *cut = errs;
  for (int k = 0; k < 12 && cut != NULL; k++)
    if ((cut = strchr(cut, '\n')) != NULL)
      cut++;
  if (cut != NULL)
    *cut = '\0';
  char title[96];
  snprintf(title, sizeof title,
           "the background load's failed requests (UTC; %zu in all)", lines);
  if (errs[0] != '\0')
    show(title, errs);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void bg_check_acked(const struct bg_counts *c) {
  static char list[1 << 20];
  static int idx[1 << 16];
  read_file(bg_acked, list, sizeof list);
  int n = 0;
  for (char *l = list; *l != '\0' && n < (int)(sizeof idx / sizeof idx[0]);) {
    idx[n++] = atoi(l);
    char *e = strchr(l, '\n');
    if (e == NULL)
      break;
    l = e + 1;
  }
  assert_int_equal(n, c->acked);
  struct keys acked = {bg_prefix, 16, idx, n};
  int live[CH_NODES], nlive = 0;
  for (int i = 1; i < CH_NODES; i++)
    if (ns[i].pid > 0)
      live[nlive++] = i;
  assert_true(nlive > 0);
  struct tally t = {0};
  for (int j = 0; j < nlive; j++)
    batch(ns[live[j]].port, &acked, false, quorum(), j, nlive, &t);
  tally_line("acknowledged background writes read at QUORUM afterwards", &t);
  assert_int_equal(t.ok, n);
}

void bg_end_checked(void) {
  struct bg_counts c;
  assert_int_equal(bg_end(&c), 0);
  bg_check_acked(&c);
  assert_true(c.acked > 0);
  assert_int_equal(c.read_missing, 0);
  assert_int_equal(c.read_wrong, 0);
}

void states_seen_add(char *seen, size_t cap, const char *state) {
  size_t used = strlen(seen);
  if (used + strlen(state) + 4 >= cap)
    return;
  const char *last = strrchr(seen, ' ');
  if (seen[0] != '\0' && strcmp(last != NULL ? last + 1 : seen, state) == 0)
    return;
  snprintf(seen + used, cap - used, " %s", state);
}
