/* test_node_change.c: topology changes on real chorusd processes (nodes
 * joining, decommissioned, removed dead, and a joiner killed mid-stream)
 * lose no key, checked by reading every key at R=1 through each node.
 *
 *   1. grow 3 -> 5: n1..n3 founded (N=3), 2,000 keys written at W=ALL,
 *      n4 and n5 join while a forked child writes and reads at QUORUM
 *      through n1..n3; every key is then found at R=1 through n4 and n5,
 *      and every write the child saw acknowledged reads back at QUORUM.
 *   2. shrink: `chorus cluster decommission n5` until n5 is left; n5
 *      stopped; every key at R=1 through n1..n4.
 *   3. a dead node removed: n4 killed (-9), `chorus cluster remove n4`
 *      once it is dead, until removed; every key at R=1 through n1..n3,
 *      its ranges pulled from the other replicas (stream.fallbacks).
 *   4. a joiner killed mid-stream: n6 joins at --stream-mbps 1, is killed
 *      (-9) once it holds streamed keys, and restarted at full speed: it
 *      resumes (stream.resumed), is normal, serves every key at R=1.
 *
 * The cases run in order on one cluster. The numbers observed (seconds,
 * stream counters) are printed as TAP comments. CHORUS_KEEP_LOGS=1 keeps
 * the nodes' logs. */
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

#include "node_harness.h"

static char cli_buf[512];

/* ns[1..6]: n1..n6 (index 0 unused, so a node's index is its number). */
#define NODES 7
static struct proc ns[NODES];
static char founders[256]; /* --seeds: n1, n2 and n3 */

#define NKEYS 2000
#define VLEN 100 /* the W=ALL keys' values: enough bytes to stream */
#define NBULK 300
#define BULK_VLEN 8000 /* case 4's extra keys: ~2.4 MB, ~15 s at 1 Mbps */
#define WINDOW 32      /* requests in flight per connection (< 64) */

/* ------------------------------------------------------------------------
 * The CLI
 * ------------------------------------------------------------------------ */

/* member_field: @field ("state", "alive") of member @name in a `cluster
 * status --json` answer, into @out ("" when @name is not a member). */
static void member_field(const char *json, const char *name, const char *field,
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

/* view_is: @json matches every token of @expect: "NAME=STATE" (the
 * member's metadata state) or "NAME/FIELD=VALUE". */
static bool view_is(const char *json, const char *expect) {
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

/* wait_view: every running node's `cluster status --json` matches
 * @expect (view_is), within @secs; the seconds it took. The nodes are
 * asked in turn, each until it agrees (the states awaited last until the
 * test's next change), twice a second: an ASan CLI costs ~80 ms of CPU,
 * and a faster poll of every node would slow the streams it waits for. */
static double wait_view(const char *expect, double secs) {
  static char json[16384];
  double t0 = now_s();
  for (int i = 1; i < NODES;) {
    if (ns[i].pid <= 0) {
      i++;
      continue;
    }
    if (run_cli(ns[i].port, json, sizeof json, "--json cluster status") == 0 &&
        view_is(json, expect)) {
      i++;
      continue;
    }
    if (now_s() - t0 > secs) {
      show("the last cluster status", json);
      fail_msg("n%d's view is not \"%s\" within %.0f s", i, expect, secs);
    }
    sleep_ms(500);
  }
  return now_s() - t0;
}

/* ------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------ */

/* start: n@i with the test cluster's flags, seeded by the founders;
 * @mbps is its --stream-mbps, or NULL for the default. */
static void start(int i, const char *mbps) {
  const char *extra[] = {"--cluster",
                         cluster,
                         "--cluster-key",
                         keyfile_a,
                         "--profile",
                         "local",
                         "--replicas",
                         "3",
                         "--seeds",
                         founders,
                         "--leave-ms",
                         "500",
                         "--max-inflight",
                         "64",
                         "--timeout",
                         "10000",
                         mbps ? "--stream-mbps" : NULL,
                         mbps,
                         NULL};
  spawn(&ns[i], extra);
}

/* kill9: SIGKILL, reaped (and no longer tracked by the harness). */
static void kill9(struct proc *p) {
  if (p->pid > 0) {
    kill(p->pid, SIGKILL);
    wait_exit(p, 10);
  }
}

/* stream_line: n@i's stream counters as one TAP comment. */
static void stream_line(int i) {
  static const char *const names[] = {
      "stream.ranges",      "stream.ranges_done", "stream.keys",
      "stream.bytes",       "stream.batches",     "stream.retries",
      "stream.refused",     "stream.fallbacks",   "stream.resumed",
      "stream.served_keys", "stream.served_bytes"};
  printf("# n%d:", i);
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
    printf(" %s=%" PRId64, names[k] + 7, stat_of(ns[i].port, names[k]));
  printf("\n");
}

/* ------------------------------------------------------------------------
 * Keys, pipelined
 * ------------------------------------------------------------------------ */

/* A set of keys: a prefix and an index, and values derived from it. */
struct keys {
  const char *prefix;
  size_t vlen;
  const int *idx; /* the indexes, or NULL for 0..n-1 */
  int n;
};

static const struct keys base_keys = {"k", VLEN, NULL, NKEYS};
static const struct keys bulk_keys = {"bulk", BULK_VLEN, NULL, NBULK};

static int index_at(const struct keys *ks, int i) {
  return ks->idx ? ks->idx[i] : i;
}

static void key_at(const struct keys *ks, int i, char *k, size_t cap) {
  snprintf(k, cap, "%s%06d", ks->prefix, index_at(ks, i));
}

/* value_at: "v<index>-" and then letters, @ks->vlen bytes. */
static size_t value_at(const struct keys *ks, int i, char *v) {
  int x = index_at(ks, i);
  int n = snprintf(v, ks->vlen + 1, "v%d-", x);
  for (size_t j = (size_t)n; j < ks->vlen; j++)
    v[j] = (char)('a' + (x + (int)j) % 26);
  v[ks->vlen] = '\0';
  return ks->vlen;
}

struct tally {
  int ok, missing, wrong, errors, unanswered;
  int last_error;
  char first_missing[3][32];
};

static struct wire_options opts_rw(int32_t r, int32_t w) {
  struct wire_options o = {0};
  o.r = r;
  o.w = w;
  return o;
}

/* judge: one reply to a PUT or GET of key @i, counted into @t. */
static void judge(const struct keys *ks, int i, const struct reply *r,
                  struct tally *t) {
  static char want[BULK_VLEN + 1];
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

/* batch: every @stride-th key of @ks from @first, written (@write) or
 * read through the node on @port with @o, WINDOW requests in flight;
 * the answers counted into @t. */
static void batch(int port, const struct keys *ks, bool write,
                  struct wire_options o, int first, int stride,
                  struct tally *t) {
  static char v[BULK_VLEN + 1];
  int fd = client_open(port);
  if (fd < 0) {
    t->unanswered += (ks->n - first + stride - 1) / stride;
    return;
  }
  int count = (ks->n - first + stride - 1) / stride;
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

static void tally_line(const char *what, const struct tally *t) {
  printf("# %s: %d ok, %d missing, %d wrong, %d errors (last %d), %d "
         "unanswered",
         what, t->ok, t->missing, t->wrong, t->errors, t->last_error,
         t->unanswered);
  for (int k = 0; k < t->missing && k < 3; k++)
    printf("%s%s", k ? ", " : "; missing: ", t->first_missing[k]);
  printf("\n");
}

/* write_all_keys: @ks at W=ALL through n@i: every write acknowledged. */
static void write_all_keys(int i, const struct keys *ks) {
  struct tally t = {0};
  batch(ns[i].port, ks, true, opts_rw(WIRE_QUORUM, WIRE_ALL), 0, 1, &t);
  char what[64];
  snprintf(what, sizeof what, "W=ALL writes of %d keys through n%d", ks->n, i);
  tally_line(what, &t);
  assert_int_equal(t.ok, ks->n);
}

/* read_everything: every key of @ks at R=1 through n@i, found with its
 * value; the number found. */
static int read_everything(int i, const struct keys *ks) {
  struct tally t = {0};
  batch(ns[i].port, ks, false, opts_rw(1, WIRE_QUORUM), 0, 1, &t);
  char what[64];
  snprintf(what, sizeof what, "R=1 reads of %d keys through n%d", ks->n, i);
  tally_line(what, &t);
  return t.ok;
}

/* ------------------------------------------------------------------------
 * The background load: a forked child writing and reading at QUORUM
 * ------------------------------------------------------------------------ */

static pid_t bg_pid;
static int bg_stop = -1;   /* the child ends when this pipe closes */
static char bg_acked[300]; /* the keys it saw acknowledged, one a line */
static char bg_summary[300];
static char bg_errors[300]; /* each failed request, one a line */

struct bg_counts {
  int writes, acked, write_errors, reads, read_ok, read_missing, read_wrong,
      read_errors, reconnects, last_error;
};

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

/* bg_run: round robin over n1..n3, each acknowledged write read back at
 * QUORUM through the next node (an acknowledged QUORUM write must be
 * readable at QUORUM, during the change as after it). Paced at about 100
 * writes a second: every key written grows the memtable that each stream
 * pull of the later cases copies into a sorted view (store_rocksdb.c), so
 * an unpaced load makes them slower, not the check stronger. */
static int bg_run(int stop) {
  FILE *acked = fopen(bg_acked, "w"), *errs = fopen(bg_errors, "w");
  if (acked == NULL || errs == NULL)
    return 1;
  struct bg_counts c = {0};
  int fds[3] = {-1, -1, -1};
  static const struct keys bg = {"bg", 16, NULL, 1 << 30};
  for (int i = 0;; i++) {
    struct pollfd pf = {.fd = stop, .events = POLLIN};
    if (poll(&pf, 1, 0) != 0)
      break; /* closed (or written): the parent says stop */
    char k[32], v[32], got[64], text[256];
    int w = i % 3, r = (i + 1) % 3;
    for (int j = 0; j < 3; j++)
      if (fds[j] < 0 && (j == w || j == r) &&
          (fds[j] = client_open(ns[1 + j].port)) >= 0)
        c.reconnects++;
    if (fds[w] < 0 || fds[r] < 0) {
      sleep_ms(50);
      continue;
    }
    key_at(&bg, i, k, sizeof k);
    value_at(&bg, i, v);
    sleep_ms(10);
    c.writes++;
    struct wire_msg m = {.type = WIRE_PUT};
    m.put.key = (struct wire_bytes){(const uint8_t *)k, strlen(k)};
    m.put.value = (struct wire_bytes){(const uint8_t *)v, strlen(v)};
    m.put.opts = quorum();
    int rc = bg_call(fds[w], &m, got, sizeof got, text, sizeof text);
    if (rc != 0) {
      c.write_errors++;
      c.last_error = rc;
      bg_error(errs, "PUT", 1 + w, k, rc, text);
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
    rc = bg_call(fds[r], &m, got, sizeof got, text, sizeof text);
    if (rc == 0 && strcmp(got, v) == 0) {
      c.read_ok++;
    } else if (rc == 1) {
      c.read_missing++;
      bg_error(errs, "GET (acknowledged, not found)", 1 + r, k, rc, "");
    } else if (rc == 0 || rc == 2) {
      c.read_wrong++;
      bg_error(errs, "GET (acknowledged, other value)", 1 + r, k, rc, got);
    } else {
      c.read_errors++;
      c.last_error = rc;
      bg_error(errs, "GET", 1 + r, k, rc, text);
      if (rc == -1000) {
        close(fds[r]);
        fds[r] = -1;
      }
    }
  }
  fclose(acked);
  fclose(errs);
  FILE *f = fopen(bg_summary, "w");
  if (f == NULL)
    return 1;
  fprintf(f, "%d %d %d %d %d %d %d %d %d %d\n", c.writes, c.acked,
          c.write_errors, c.reads, c.read_ok, c.read_missing, c.read_wrong,
          c.read_errors, c.reconnects - 3, c.last_error);
  fclose(f);
  return 0;
}

static void bg_start(void) {
  snprintf(bg_acked, sizeof bg_acked, "%s/bg-acked", root);
  snprintf(bg_summary, sizeof bg_summary, "%s/bg-summary", root);
  snprintf(bg_errors, sizeof bg_errors, "%s/bg-errors", root);
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

/* bg_end: stops the child (within 30 s, else killed); its exit status. */
static int bg_end(void) {
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
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------------------
 * 1: grow 3 -> 5
 * ------------------------------------------------------------------------ */

static void test_grow_three_to_five(void **state) {
  (void)state;
  for (int i = 1; i < NODES; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    node_init(&ns[i], name);
  }
  snprintf(founders, sizeof founders, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d",
           ns[1].port, ns[2].port, ns[3].port);
  for (int i = 1; i <= 3; i++)
    start(i, NULL);
  /* Founders join one at a time: only then may W=ALL reach all three. */
  double t = wait_view("n1=normal n2=normal n3=normal", 60);
  printf("# n1..n3 all normal after %.1f s\n", t);
  double t0 = now_s();
  write_all_keys(1, &base_keys);
  printf("# %d W=ALL writes in %.1f s\n", NKEYS, now_s() - t0);

  bg_start();
  sleep_ms(1000); /* load before the change, too */
  t0 = now_s();
  start(4, NULL);
  start(5, NULL);
  t = wait_view("n1=normal n2=normal n3=normal n4=normal n5=normal", 90);
  printf("# n4 and n5 joined: 5 normal members after %.1f s\n", t);
  sleep_ms(1000); /* and after it */
  assert_int_equal(bg_end(), 0);

  char text[256];
  read_file(bg_summary, text, sizeof text);
  struct bg_counts c = {0};
  assert_int_equal(sscanf(text, "%d %d %d %d %d %d %d %d %d %d", &c.writes,
                          &c.acked, &c.write_errors, &c.reads, &c.read_ok,
                          &c.read_missing, &c.read_wrong, &c.read_errors,
                          &c.reconnects, &c.last_error),
                   10);
  printf("# background QUORUM load during the change: %d writes, %d "
         "acknowledged, %d refused or unanswered (last error %d); %d "
         "reads back, %d ok, %d missing, %d wrong, %d errors; %d "
         "reconnects\n",
         c.writes, c.acked, c.write_errors, c.last_error, c.reads, c.read_ok,
         c.read_missing, c.read_wrong, c.read_errors, c.reconnects);
  static char errs[8192];
  read_file(bg_errors, errs, sizeof errs);
  if (errs[0] != '\0')
    show("the background load's failed requests (UTC)", errs);

  for (int i = 4; i <= 5; i++)
    stream_line(i);
  for (int i = 1; i <= 3; i++)
    stream_line(i);

  /* Every key at R=1 through each new node: whatever replica answers it
   * must hold the key (W=ALL before, streamed since). */
  int found4 = read_everything(4, &base_keys);
  int found5 = read_everything(5, &base_keys);

  /* Every write the load saw acknowledged, read at QUORUM afterwards,
   * spread over the five coordinators. */
  static char list[1 << 20];
  read_file(bg_acked, list, sizeof list);
  static int idx[1 << 16];
  int n = 0;
  for (char *l = list; *l != '\0' && n < (int)(sizeof idx / sizeof idx[0]);) {
    idx[n++] = atoi(l);
    char *e = strchr(l, '\n');
    if (e == NULL)
      break;
    l = e + 1;
  }
  assert_int_equal(n, c.acked);
  struct keys acked = {"bg", 16, idx, n};
  struct tally bt = {0};
  for (int i = 1; i <= 5; i++)
    batch(ns[i].port, &acked, false, quorum(), i - 1, 5, &bt);
  tally_line("acknowledged background writes read at QUORUM afterwards", &bt);

  assert_int_equal(found4, NKEYS);
  assert_int_equal(found5, NKEYS);
  assert_true(c.acked > 0);
  assert_int_equal(bt.ok, n);
  /* No acknowledged write went missing while the ranges moved. */
  assert_int_equal(c.read_missing, 0);
  assert_int_equal(c.read_wrong, 0);
}

/* ------------------------------------------------------------------------
 * 2: decommission n5
 * ------------------------------------------------------------------------ */

static void test_decommission(void **state) {
  (void)state;
  bg_end(); /* case 1 failed before stopping its load: not in this case */
  assert_true(ns[5].pid > 0);
  char out[4096];
  double t0 = now_s();
  /* A change may still be finishing (EBUSY): asked again. */
  while (run_cli(ns[1].port, out, sizeof out, "cluster decommission n5") != 0) {
    if (now_s() - t0 > 30)
      fail_msg("cluster decommission n5 not accepted within 30 s: %s", out);
    sleep_ms(300);
  }
  show("chorus cluster decommission n5", out);
  double t = wait_view("n5=left n1=normal n2=normal n3=normal n4=normal", 90);
  printf("# n5 left %.1f s after the decommission\n", t);
  stream_line(5);
  for (int i = 1; i <= 4; i++)
    stream_line(i);
  kill(ns[5].pid, SIGTERM);
  int st = wait_exit(&ns[5], 30);
  printf("# n5 stopped (SIGTERM): exit status %d\n", st);

  int found[5] = {0};
  for (int i = 1; i <= 4; i++)
    found[i] = read_everything(i, &base_keys);
  for (int i = 1; i <= 4; i++)
    assert_int_equal(found[i], NKEYS);
}

/* ------------------------------------------------------------------------
 * 3: n4 killed, then removed
 * ------------------------------------------------------------------------ */

static void test_remove_dead(void **state) {
  (void)state;
  assert_true(ns[4].pid > 0);
  int64_t fb0 = 0;
  for (int i = 1; i <= 3; i++)
    fb0 += stat_of(ns[i].port, "stream.fallbacks");
  kill9(&ns[4]);
  double t = wait_view("n4/alive=dead", 30);
  printf("# n4 killed (-9): seen dead after %.1f s\n", t);
  char out[4096];
  double t0 = now_s();
  while (run_cli(ns[1].port, out, sizeof out, "cluster remove n4") != 0) {
    if (now_s() - t0 > 30)
      fail_msg("cluster remove n4 not accepted within 30 s: %s", out);
    sleep_ms(300);
  }
  show("chorus cluster remove n4", out);
  t = wait_view("n4=removed n1=normal n2=normal n3=normal", 90);
  printf("# n4 removed %.1f s after the remove\n", t);
  int64_t fb = 0;
  for (int i = 1; i <= 3; i++) {
    stream_line(i);
    fb += stat_of(ns[i].port, "stream.fallbacks");
  }
  printf("# stream.fallbacks summed over n1..n3: %" PRId64 " (%" PRId64
         " before the kill)\n",
         fb, fb0);

  int found[4] = {0};
  for (int i = 1; i <= 3; i++)
    found[i] = read_everything(i, &base_keys);
  for (int i = 1; i <= 3; i++)
    assert_int_equal(found[i], NKEYS);
  /* n4 gave up its ranges while down: pulled from the other replicas. */
  assert_true(fb - fb0 > 0);
}

/* ------------------------------------------------------------------------
 * 4: a joiner killed mid-stream and restarted
 * ------------------------------------------------------------------------ */

static void test_joiner_killed_mid_stream(void **state) {
  (void)state;
  /* ~2.4 MB more, so that a 1 Mbps join takes long enough to be caught
   * in the middle. */
  double t0 = now_s();
  write_all_keys(1, &bulk_keys);
  printf("# %d W=ALL writes of %d bytes in %.1f s\n", NBULK, BULK_VLEN,
         now_s() - t0);

  t0 = now_s();
  start(6, "1");
  int64_t done = 0, keys = 0;
  for (;; sleep_ms(20)) {
    done = stat_of(ns[6].port, "stream.ranges_done");
    keys = stat_of(ns[6].port, "stream.keys");
    if (keys > 0)
      break;
    if (now_s() - t0 > 60)
      fail_msg("n6 pulled nothing within 60 s");
  }
  double t_first = now_s() - t0;
  stream_line(6);
  char json[16384];
  assert_int_equal(
      run_cli(ns[1].port, json, sizeof json, "--json cluster status"), 0);
  char st[32];
  member_field(json, "n6", "state", st, sizeof st);
  printf("# n6 (1 Mbps) held its first keys after %.1f s "
         "(ranges_done=%" PRId64 ", keys=%" PRId64 "), n1 says it is %s: "
         "killed (-9)\n",
         t_first, done, keys, st);
  assert_string_equal(st, "joining");
  kill9(&ns[6]);

  t0 = now_s();
  start(6, NULL);
  double t = wait_view("n1=normal n2=normal n3=normal n6=normal", 90);
  printf("# n6 restarted at full speed: normal after %.1f s\n", t);
  stream_line(6);
  int64_t resumed = stat_of(ns[6].port, "stream.resumed");
  int found = read_everything(6, &base_keys);
  int found_bulk = read_everything(6, &bulk_keys);
  assert_true(resumed >= 1);
  assert_int_equal(found, NKEYS);
  assert_int_equal(found_bulk, NBULK);
}

static int teardown(void **state) {
  bg_end();
  return group_teardown(state);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  cli = getenv("CHORUS_CLI");
  if (cli == NULL) {
    /* Run by hand with the chorusd path: the CLI of the same build. */
    snprintf(cli_buf, sizeof cli_buf, "%s", chorusd);
    char *slash = strrchr(cli_buf, '/');
    if (slash != NULL) {
      *slash = '\0';
      slash = strrchr(cli_buf, '/');
    }
    if (slash == NULL) {
      fprintf(stderr, "test_node_change: $CHORUS_CLI is not set\n");
      return 1;
    }
    snprintf(slash, sizeof cli_buf - (size_t)(slash - cli_buf),
             "/client/chorus");
    cli = cli_buf;
  }
  const struct CMUnitTest tests[] = {
      TIMED(test_grow_three_to_five),
      TIMED(test_decommission),
      TIMED(test_remove_dead),
      TIMED(test_joiner_killed_mid_stream),
  };
  int failed =
      cmocka_run_group_tests_name("node_change", tests, NULL, teardown);
  return harness_finish(failed);
}
