/* chorus_cli_cluster.c: the `chorus cluster` commands: the metadata's
 * status, plans (dry runs), the changes (decommission, remove, replace,
 * staged or not, commit, clear) and their transfers' progress, rate and
 * ETA with --wait (chorus_cli.c parses the command line). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chorus_cli_int.h"

/* ------------------------------------------------------------------------
 * cluster status, cluster remove
 * ------------------------------------------------------------------------ */

/* The cluster metadata as @st says it. Text: one line on the leader and the
 * answering node, then one row per member. JSON: every field, names and
 * 16-hex ids alike; a leader not known is null. */
static void print_cluster(const struct cli *cl,
                          const struct chorus_cluster_status *st,
                          const char *name, const char *sub) {
  /* What the command did to @name: "removed" (or "removing", streaming
   * first), "decommissioning". */
  const char *did = NULL;
  for (size_t i = 0; name != NULL && i < st->nmembers; i++)
    if (strcmp(st->members[i].name, name) == 0)
      did = strcmp(sub, "stage") == 0                     ? "staged"
            : strcmp(sub, "decommission") == 0            ? "decommissioning"
            : strcmp(sub, "replace") == 0                 ? "replacing"
            : st->members[i].state == CHORUS_META_REMOVED ? "removed"
                                                          : "removing";
  if (cl->json) {
    putchar('{');
    if (did != NULL) {
      printf("\"%s\":", did);
      json_cstr(name);
      putchar(',');
    }
    printf("\"server\":");
    json_cstr(st->server);
    printf(",\"node_id\":\"%016" PRIx64 "\",\"node_name\":", st->node_id);
    json_cstr(st->node_name);
    printf(",\"raft_state\":\"%s\",\"leader_id\":",
           chorus_raft_state_name(st->raft_state));
    if (st->leader_id != 0) {
      printf("\"%016" PRIx64 "\",\"leader_name\":", st->leader_id);
      json_cstr(st->leader_name);
    } else {
      printf("null,\"leader_name\":null");
    }
    printf(",\"term\":%" PRIu64 ",\"commit_index\":%" PRIu64
           ",\"applied_index\":%" PRIu64 ",\"epoch\":%" PRIu64 ",\"members\":[",
           st->term, st->commit_index, st->applied_index, st->epoch);
    for (size_t i = 0; i < st->nmembers; i++) {
      const struct chorus_cluster_member *m = &st->members[i];
      printf("%s{\"id\":\"%016" PRIx64 "\",\"name\":", i ? "," : "", m->id);
      json_cstr(m->name);
      printf(",\"addr\":");
      json_cstr(m->addr);
      printf(",\"dc\":");
      json_cstr(m->dc);
      printf(",\"rack\":");
      json_cstr(m->rack);
      printf(",\"state\":\"%s\",\"role\":\"%s\",\"alive\":\"%s\","
             "\"vnodes\":%" PRIu32 ",\"share_ppm\":%" PRIu32 "}",
             chorus_meta_state_name(m->state), chorus_raft_role_name(m->role),
             chorus_alive_name(m->alive), m->vnodes, m->share_ppm);
    }
    printf("]}\n");
    return;
  }
  if (did != NULL)
    printf("%s %s%s\n", did, name,
           strcmp(did, "removed") == 0
               ? ""
               : ": its ranges stream to their new owners; cluster status "
                 "shows when it is done");
  if (st->leader_id == 0)
    printf("leader none known");
  else if (st->leader_name[0] != '\0')
    printf("leader %s", st->leader_name);
  else
    printf("leader %016" PRIx64, st->leader_id);
  printf(", term %" PRIu64 ", commit index %" PRIu64 ", epoch %" PRIu64
         "; answered by %s (%016" PRIx64 ", %s, applied %" PRIu64 ") at %s\n",
         st->term, st->commit_index, st->epoch, or_dash(st->node_name),
         st->node_id, chorus_raft_state_name(st->raft_state), st->applied_index,
         st->server);
  int wn = 4, wd = 2, wr = 4, ws = 7; /* NAME, DC, RACK, STATE */
  for (size_t i = 0; i < st->nmembers; i++) {
    wn = widen(wn, st->members[i].name);
    wd = widen(wd, st->members[i].dc);
    wr = widen(wr, st->members[i].rack);
    ws = widen(ws, chorus_meta_state_name(st->members[i].state));
  }
  printf("%-*s  %-16s  %-*s  %-7s  %-7s  %-*s  %-*s  %6s  %7s\n", wn, "NAME",
         "ID", ws, "STATE", "ROLE", "ALIVE", wd, "DC", wr, "RACK", "VNODES",
         "SHARE%");
  for (size_t i = 0; i < st->nmembers; i++) {
    const struct chorus_cluster_member *m = &st->members[i];
    printf("%-*s  %016" PRIx64 "  %-*s  %-7s  %-7s  %-*s  %-*s  %6" PRIu32
           "  %7.2f\n",
           wn, m->name, m->id, ws, chorus_meta_state_name(m->state),
           chorus_raft_role_name(m->role), chorus_alive_name(m->alive), wd,
           or_dash(m->dc), wr, or_dash(m->rack), m->vnodes,
           (double)m->share_ppm / 10000.0);
  }
}

/* ------------------------------------------------------------------------
 * Transfers: progress, rate and ETA of a change under way
 *
 * Each node that gains ranges reports its own streams in STATUS
 * (stream.epoch, stream.ranges, stream.ranges_done, stream.done_ppm: the
 * fraction of its ranges' token space held, stream.elapsed_ms, stream.bytes,
 * stream.keys). The CLI asks every owning member it finds in the cluster
 * status, at its address, one STATUS each: each node is the authority on
 * its own transfers, and no node has to gather the others' (a node that
 * cannot be reached is shown as such). ETA is elapsed * (1 - f) / f. The
 * rate is measured by the CLI between two of its samples (stream.bytes
 * counts every stream since the node started): over a second for
 * `cluster status` (text only: --json stays the metadata alone, one
 * object; `cluster wait --json` prints the transfers), since it began
 * watching for --wait.
 * ------------------------------------------------------------------------ */

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

#define MAX_XFERS 64

/* One receiving node's transfer, as its STATUS says it. */
struct xfer {
  uint64_t id;
  char name[128];
  bool reached; /* its STATUS answered */
  bool joining; /* the member is joining */
  int64_t epoch, ranges, ranges_done, done_ppm, elapsed_ms, bytes, keys;
  double at;      /* when sampled (mono_s) */
  double rate;    /* bytes per second; < 0: not measured yet */
  double base_at; /* the first sample this rate is measured from */
  int64_t base_bytes;
};

struct xfers {
  size_t n;
  struct xfer x[MAX_XFERS];
};

static int64_t stat_val(const struct chorus_result *res, const char *name) {
  for (size_t i = 0; i < res->nstats; i++)
    if (strcmp(res->stats[i].name, name) == 0)
      return res->stats[i].value;
  return -1;
}

/* sample: one STATUS of member @m at its address into @x. */
static void sample(const struct cli *cl, const struct chorus_cluster_member *m,
                   struct xfer *x) {
  x->id = m->id;
  snprintf(x->name, sizeof x->name, "%s", m->name);
  x->joining =
      m->state == CHORUS_META_JOINING || m->state == CHORUS_META_REPLACING;
  x->reached = false;
  struct chorus_config cfg;
  chorus_config_init(&cfg);
  cfg.cluster = cl->cluster;
  cfg.tls_ca = cl->tls_ca;
  cfg.tls_cert = cl->tls_cert;
  cfg.tls_key = cl->tls_key;
  cfg.tls_crl = cl->tls_crl;
  cfg.user = cl->user;
  cfg.password = cl->user != NULL ? cl->password : NULL;
  cfg.connect_timeout_ms = 1000;
  cfg.default_timeout_ms = 1000;
  cfg.grace_ms = 500;
  struct chorus_client *c = NULL;
  if (m->addr[0] == '\0' ||
      chorus_client_open(m->addr, &cfg, &c, NULL) != CHORUS_OK)
    return;
  struct chorus_result res;
  if (chorus_status(c, &res) == CHORUS_OK) {
    x->reached = true;
    x->at = mono_s();
    x->epoch = stat_val(&res, "stream.epoch");
    x->ranges = stat_val(&res, "stream.ranges");
    x->ranges_done = stat_val(&res, "stream.ranges_done");
    x->done_ppm = stat_val(&res, "stream.done_ppm");
    x->elapsed_ms = stat_val(&res, "stream.elapsed_ms");
    x->bytes = stat_val(&res, "stream.bytes");
    x->keys = stat_val(&res, "stream.keys");
  }
  chorus_result_free(&res);
  chorus_client_close(c);
}

static bool changing(const struct chorus_cluster_status *st) {
  for (size_t i = 0; i < st->nmembers; i++)
    if (st->members[i].state == CHORUS_META_JOINING ||
        st->members[i].state == CHORUS_META_LEAVING ||
        st->members[i].state == CHORUS_META_REPLACING)
      return true;
  return false;
}

/* gather: the transfers of the change in @st: every owning member that
 * streams at the status's epoch (ranges to pull, or a joiner), with its
 * rate measured against the sample of the same node in @prev (kept as the
 * base while @keep_base: --wait measures since it began). */
static void gather(const struct cli *cl, const struct chorus_cluster_status *st,
                   const struct xfers *prev, bool keep_base,
                   struct xfers *out) {
  out->n = 0;
  for (size_t i = 0; i < st->nmembers && out->n < MAX_XFERS; i++) {
    const struct chorus_cluster_member *m = &st->members[i];
    if (m->state < CHORUS_META_JOINING ||
        (m->state > CHORUS_META_LEAVING && m->state != CHORUS_META_REPLACING) ||
        m->alive == CHORUS_ALIVE_DEAD || m->alive == CHORUS_ALIVE_LEFT)
      continue; /* owns nothing, or would cost a connect timeout a poll */
    struct xfer x = {0};
    sample(cl, m, &x);
    if (x.reached &&
        (x.epoch != (int64_t)st->epoch || (x.ranges <= 0 && !x.joining)))
      continue; /* gains nothing at this epoch */
    if (!x.reached && !x.joining)
      continue; /* unknown: shown only for joiners */
    x.rate = -1;
    x.base_at = x.at;
    x.base_bytes = x.bytes;
    for (size_t k = 0; prev != NULL && k < prev->n; k++) {
      const struct xfer *p = &prev->x[k];
      if (p->id != x.id || !p->reached || !x.reached || p->epoch != x.epoch)
        continue;
      double from_at = keep_base ? p->base_at : p->at;
      int64_t from_bytes = keep_base ? p->base_bytes : p->bytes;
      if (x.at - from_at > 0.2 && x.bytes >= from_bytes)
        x.rate = (double)(x.bytes - from_bytes) / (x.at - from_at);
      x.base_at = from_at;
      x.base_bytes = from_bytes;
    }
    out->x[out->n++] = x;
  }
}

/* fmt_bytes: @b as "12.4 MB" (powers of 1000, as MB/s). */
static const char *fmt_bytes(double b, char *out, size_t cap) {
  static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  int u = 0;
  while (b >= 1000 && u < 5) {
    b /= 1000;
    u++;
  }
  snprintf(out, cap, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return out;
}

/* eta_s: seconds left, elapsed * (1 - f) / f; -1 when unknown. */
static double eta_s(const struct xfer *x) {
  double f = (double)x->done_ppm / 1e6;
  if (!x->reached || f <= 0 || x->elapsed_ms < 0)
    return -1;
  return (double)x->elapsed_ms / 1000.0 * (1 - f) / f;
}

static const char *fmt_eta(double s, char *out, size_t cap) {
  if (s < 0) {
    snprintf(out, cap, "?");
  } else {
    long t = (long)(s + 0.5);
    if (t >= 3600)
      snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
      snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
  }
  return out;
}

/* xfer_line: "n4 <- streaming 37% 12.4 MB/s ETA 0:41 (ranges 12/40)". */
static void xfer_line(const struct xfer *x, char *out, size_t cap) {
  if (!x->reached) {
    snprintf(out, cap, "%s <- not reachable", x->name);
    return;
  }
  char rate[32] = "? B/s", eta[32];
  if (x->rate >= 0) {
    fmt_bytes(x->rate, rate, sizeof rate - 2);
    strcat(rate, "/s");
  }
  bool held = x->done_ppm >= 1000000;
  snprintf(out, cap,
           "%s <- %s %.0f%% %s ETA %s (ranges %" PRId64 "/%" PRId64 ")",
           x->name, held ? "held" : "streaming", (double)x->done_ppm / 1e4,
           rate, held ? "0:00" : fmt_eta(eta_s(x), eta, sizeof eta),
           x->ranges_done, x->ranges);
}

static void xfer_json(const struct xfer *x) {
  printf("{\"id\":\"%016" PRIx64 "\",\"name\":", x->id);
  json_cstr(x->name);
  if (!x->reached) {
    printf(",\"reached\":false}");
    return;
  }
  printf(",\"reached\":true,\"epoch\":%" PRId64 ",\"ranges\":%" PRId64
         ",\"ranges_done\":%" PRId64 ",\"done_ppm\":%" PRId64
         ",\"elapsed_ms\":%" PRId64 ",\"keys\":%" PRId64 ",\"bytes\":%" PRId64,
         x->epoch, x->ranges, x->ranges_done, x->done_ppm, x->elapsed_ms,
         x->keys, x->bytes);
  printf(",\"rate_bps\":");
  if (x->rate >= 0)
    printf("%.0f", x->rate);
  else
    printf("null");
  double e = eta_s(x);
  printf(",\"eta_s\":");
  if (e >= 0)
    printf("%.1f", e);
  else
    printf("null");
  putchar('}');
}

/* ------------------------------------------------------------------------
 * cluster plan
 * ------------------------------------------------------------------------ */

static int cmd_plan(struct chorus_client *c, const struct cli *cl) {
  const char *what = cl->argc > 2 ? cl->argv[2] : "";
  int action;
  if (cl->argc == 2)
    action = CHORUS_PLAN_UNDER_WAY;
  else if (strcmp(what, "join") == 0)
    action = CHORUS_PLAN_JOIN;
  else if (strcmp(what, "decommission") == 0)
    action = CHORUS_PLAN_DECOMMISSION;
  else if (strcmp(what, "remove") == 0)
    action = CHORUS_PLAN_REMOVE;
  else
    action = -1;
  if (action < 0 ||
      (action == CHORUS_PLAN_UNDER_WAY ? cl->argc != 2 : cl->argc != 4))
    return usage_error("usage: chorus cluster plan [join NAME [--dc DC] "
                       "[--rack RACK] [--vnodes N] | decommission NAME | "
                       "remove NAME]");
  if ((cl->dc || cl->rack || cl->vnodes) && action != CHORUS_PLAN_JOIN)
    return usage_error("--dc, --rack and --vnodes are for cluster plan join");
  const char *name = action == CHORUS_PLAN_UNDER_WAY ? NULL : cl->argv[3];
  if (name != NULL && (name[0] == '\0' || strlen(name) > 127))
    return usage_error("cluster plan: a member's name is 1..127 bytes");
  struct chorus_cluster_plan *p = NULL;
  int rc =
      chorus_cluster_plan(c, action, name, cl->dc, cl->rack, cl->vnodes, &p);
  if (rc != CHORUS_OK)
    return client_failed(c, rc);

  uint64_t tk = 0, tb = 0, tr = 0, ts = 0;
  for (size_t i = 0; i < p->nmoves; i++) {
    tk += p->moves[i].est_keys;
    tb += p->moves[i].est_bytes;
    tr += p->moves[i].ranges;
    ts += p->moves[i].share_ppm;
  }
  if (cl->json) {
    printf("{\"server\":");
    json_cstr(p->server);
    printf(",\"epoch\":%" PRIu64 ",\"note\":", p->epoch);
    json_cstr(p->note);
    printf(",\"basis\":{\"keys\":%" PRIu64 ",\"bytes\":%" PRIu64
           ",\"ppm\":%" PRIu32 "},\"moves\":[",
           p->basis_keys, p->basis_bytes, p->basis_ppm);
    for (size_t i = 0; i < p->nmoves; i++) {
      const struct chorus_plan_move *m = &p->moves[i];
      printf("%s{\"from\":", i ? "," : "");
      if (m->from != 0)
        printf("\"%016" PRIx64 "\"", m->from);
      else
        printf("null");
      printf(",\"from_name\":");
      json_cstr(m->from_name);
      printf(",\"to\":\"%016" PRIx64 "\",\"to_name\":", m->to);
      json_cstr(m->to_name);
      printf(",\"ranges\":%" PRIu32 ",\"share_ppm\":%" PRIu32
             ",\"est_keys\":%" PRIu64 ",\"est_bytes\":%" PRIu64 "}",
             m->ranges, m->share_ppm, m->est_keys, m->est_bytes);
    }
    printf("],\"total\":{\"ranges\":%" PRIu64 ",\"share_ppm\":%" PRIu64
           ",\"est_keys\":%" PRIu64 ",\"est_bytes\":%" PRIu64 "}}\n",
           tr, ts, tk, tb);
    chorus_cluster_plan_free(p);
    return 0;
  }
  printf("plan at epoch %" PRIu64 ", made by %s\n", p->epoch, p->server);
  if (p->note[0] != '\0')
    printf("note: %s\n", p->note);
  int wf = 4, wt = 2;
  for (size_t i = 0; i < p->nmoves; i++) {
    wf = widen(wf, p->moves[i].from_name);
    wt = widen(wt, p->moves[i].to_name);
  }
  printf("%-*s  %-*s  %6s  %7s  %10s  %10s\n", wf, "FROM", wt, "TO", "RANGES",
         "SHARE%", "EST_KEYS", "EST_BYTES");
  char b[32];
  for (size_t i = 0; i < p->nmoves; i++) {
    const struct chorus_plan_move *m = &p->moves[i];
    printf("%-*s  %-*s  %6" PRIu32 "  %7.2f  %10" PRIu64 "  %10s\n", wf,
           m->from != 0 ? or_dash(m->from_name) : "(none)", wt,
           or_dash(m->to_name), m->ranges, (double)m->share_ppm / 1e4,
           m->est_keys, fmt_bytes((double)m->est_bytes, b, sizeof b));
  }
  printf("%-*s  %-*s  %6" PRIu64 "  %7.2f  %10" PRIu64 "  %10s\n", wf, "total",
         wt, "", tr, (double)ts / 1e4, tk, fmt_bytes((double)tb, b, sizeof b));
  if (p->basis_ppm > 0)
    printf("estimated from %s's store: %" PRIu64 " keys, %s over %.2f%% of "
           "the token space it replicates (keys are spread by a hash)\n",
           p->server, p->basis_keys,
           fmt_bytes((double)p->basis_bytes, b, sizeof b),
           (double)p->basis_ppm / 1e4);
  else
    printf("no estimate: %s replicates nothing yet; ask a normal member\n",
           p->server);
  chorus_cluster_plan_free(p);
  return 0;
}

/* ------------------------------------------------------------------------
 * --wait: follow a change to its end
 * ------------------------------------------------------------------------ */

/* What the change of @name ends in: the state it must reach, and the
 * states that mean the change was aborted. */
struct goal {
  const char *name; /* NULL: any change (cluster wait) */
  int want;         /* enum chorus_meta_state */
};

static const struct chorus_cluster_member *
member_named(const struct chorus_cluster_status *st, const char *name) {
  for (size_t i = 0; name != NULL && i < st->nmembers; i++)
    if (strcmp(st->members[i].name, name) == 0)
      return &st->members[i];
  return NULL;
}

/* progress: one line: the bar (on a TTY), the receivers' mean fraction,
 * their summed rate, the longest ETA, then each receiver. */
static void progress(const struct cli *cl, const struct xfers *xs,
                     uint64_t epoch, bool tty) {
  if (cl->json) {
    printf("{\"epoch\":%" PRIu64 ",\"transfers\":[", epoch);
    for (size_t i = 0; i < xs->n; i++) {
      if (i)
        putchar(',');
      xfer_json(&xs->x[i]);
    }
    printf("]}\n");
    fflush(stdout);
    return;
  }
  double f = 0, rate = 0, eta = 0;
  bool rate_known = false, eta_known = xs->n > 0;
  size_t reached = 0;
  for (size_t i = 0; i < xs->n; i++) {
    const struct xfer *x = &xs->x[i];
    if (!x->reached)
      continue;
    reached++;
    f += (double)x->done_ppm / 1e6;
    if (x->rate >= 0) {
      rate += x->rate;
      rate_known = true;
    }
    double e = x->done_ppm >= 1000000 ? 0 : eta_s(x);
    if (e < 0)
      eta_known = false;
    else if (e > eta)
      eta = e;
  }
  f = reached ? f / (double)reached : 0;
  char line[1024], r[32] = "? B/s", e[32];
  if (rate_known) {
    fmt_bytes(rate, r, sizeof r - 2);
    strcat(r, "/s");
  }
  int n = 0;
  if (tty) {
    char bar[21];
    int full = (int)(f * 20 + 0.5);
    for (int i = 0; i < 20; i++)
      bar[i] = i < full ? '#' : '.';
    bar[20] = '\0';
    n = snprintf(line, sizeof line, "[%s] ", bar);
  }
  n += snprintf(line + n, sizeof line - (size_t)n,
                "epoch %" PRIu64 ": %.0f%% %s ETA %s", epoch, f * 100, r,
                fmt_eta(eta_known ? eta : -1, e, sizeof e));
  for (size_t i = 0; i < xs->n && n < (int)sizeof line - 2; i++) {
    char one[300];
    xfer_line(&xs->x[i], one, sizeof one);
    n += snprintf(line + n, sizeof line - (size_t)n, "%s%s", i ? "; " : " | ",
                  one);
  }
  if (tty)
    printf("\r%s\033[K", line);
  else
    printf("%s\n", line);
  fflush(stdout);
}

/* wait_change: polls the cluster status (and each receiver's STATUS) once
 * a second until the change of @g ends: exit 0 when @g->name reached
 * @g->want (or, without a name, when nothing is joining or leaving); 1
 * when it was aborted, on --wait-timeout, or when no node answers for
 * 30 s. */
static int wait_change(struct chorus_client *c, const struct cli *cl,
                       const struct goal *g) {
  bool tty = !cl->json && isatty(1);
  double t0 = mono_s(), last_ok = t0, last_line = 0;
  static struct xfers prev, cur;
  prev.n = 0;
  bool seen = false; /* @g->name seen as a member */
  int rc = 1;
  for (;;) {
    struct chorus_cluster_status *st = NULL;
    double now = mono_s();
    if (cl->wait_timeout > 0 && now - t0 > cl->wait_timeout) {
      if (tty)
        putchar('\n');
      fprintf(stderr,
              "chorus: the change did not finish within %u s "
              "(--wait-timeout); it goes on: cluster status shows it\n",
              cl->wait_timeout);
      return 1;
    }
    if (chorus_cluster_status(c, &st) != CHORUS_OK) {
      if (now - last_ok > 30) {
        if (tty)
          putchar('\n');
        fprintf(stderr, "chorus: no answer for 30 s: %s\n",
                chorus_client_errmsg(c));
        return 1;
      }
      nap_ms(1000);
      continue;
    }
    last_ok = now;
    const struct chorus_cluster_member *m = member_named(st, g->name);
    bool under_way = changing(st);
    if (m != NULL)
      seen = true;
    if (g->name != NULL && m == NULL && seen) {
      fprintf(stderr, "%schorus: %s is no longer a member\n", tty ? "\n" : "",
              g->name);
      goto out;
    }
    bool reached =
        g->name == NULL ? !under_way : m != NULL && m->state == g->want;
    /* Aborted: the member is neither at its goal nor on its way there (a
     * joiner removed, a decommission undone or forced into a removal). */
    bool aborted = g->name != NULL && m != NULL && !reached &&
                   m->state != CHORUS_META_JOINING &&
                   m->state != CHORUS_META_LEAVING &&
                   m->state != CHORUS_META_REPLACING;
    if (reached) {
      if (tty)
        printf("\r\033[K");
      if (cl->json)
        printf("{\"done\":true,\"epoch\":%" PRIu64 ",\"seconds\":%.1f}\n",
               st->epoch, mono_s() - t0);
      else if (g->name != NULL)
        printf("%s is %s (epoch %" PRIu64 ") after %.1f s\n", g->name,
               chorus_meta_state_name(m->state), st->epoch, mono_s() - t0);
      else
        printf("no change under way (epoch %" PRIu64 ") after %.1f s\n",
               st->epoch, mono_s() - t0);
      rc = 0;
      goto out;
    }
    if (aborted) {
      fprintf(stderr,
              "%schorus: the change was aborted: %s is %s, not %s (epoch "
              "%" PRIu64 ")\n",
              tty ? "\n" : "", g->name, chorus_meta_state_name(m->state),
              chorus_meta_state_name(g->want), st->epoch);
      goto out;
    }
    if (m == NULL && g->name != NULL) {
      if (now - last_line >= 2 || last_line == 0) {
        if (!cl->json)
          printf("%swaiting for %s to join (another change may be under "
                 "way)%s",
                 tty ? "\r" : "", g->name, tty ? "\033[K" : "\n");
        fflush(stdout);
        last_line = now;
      }
    } else {
      gather(cl, st, &prev, true, &cur);
      if (tty || now - last_line >= 2 || last_line == 0) {
        progress(cl, &cur, st->epoch, tty);
        last_line = now;
      }
      /* keep each node's base sample: the rate is since the wait began,
       * and starts over with a new epoch (gather drops a base of
       * another) */
      prev = cur;
    }
    chorus_cluster_status_free(st);
    nap_ms(1000);
    continue;
  out:
    chorus_cluster_status_free(st);
    return rc;
  }
}

int cmd_cluster(struct chorus_client *c, const struct cli *cl) {
  const char *sub = cl->argc > 1 ? cl->argv[1] : "";
  struct chorus_cluster_status *st = NULL;
  int rc;
  const char *name = NULL;
  if (strcmp(sub, "key") == 0)
    return cmd_cluster_key(c, cl);
  bool is_plan = strcmp(sub, "plan") == 0;
  if (!is_plan && (cl->dc || cl->rack || cl->vnodes))
    return usage_error("--dc, --rack and --vnodes are for cluster plan join");
  if (cl->force && strcmp(sub, "remove") != 0 &&
      strcmp(sub, "decommission") != 0)
    return usage_error("--force is for cluster remove and decommission");
  bool waits = strcmp(sub, "join") == 0 || strcmp(sub, "wait") == 0 ||
               strcmp(sub, "remove") == 0 || strcmp(sub, "decommission") == 0 ||
               strcmp(sub, "replace") == 0;
  if ((cl->wait || cl->wait_timeout) && !waits)
    return usage_error(
        "--wait is for cluster join, decommission, remove, replace");
  if (cl->with != NULL && strcmp(sub, "replace") != 0)
    return usage_error("--with is for cluster replace");
  if (cl->stage && strcmp(sub, "remove") != 0 &&
      strcmp(sub, "decommission") != 0 && strcmp(sub, "replace") != 0)
    return usage_error("--stage is for cluster decommission, remove, replace");
  if (cl->stage && cl->wait)
    return usage_error("--stage and --wait: the change begins at cluster "
                       "commit");
  if (is_plan)
    return cmd_plan(c, cl);
  if (strcmp(sub, "wait") == 0) {
    if ((rc = need_args(cl, 1, 1, "cluster wait [--wait-timeout SECS]")) != 0)
      return rc;
    struct goal g = {NULL, 0};
    return wait_change(c, cl, &g);
  }
  if (strcmp(sub, "status") == 0) {
    if ((rc = need_args(cl, 1, 1, "cluster status [--json]")) != 0)
      return rc;
    rc = chorus_cluster_status(c, &st);
  } else if (strcmp(sub, "join") == 0) {
    if ((rc = need_args(cl, 2, 2, "cluster join NAME [--wait]")) != 0)
      return rc;
    name = cl->argv[2];
    if (name[0] == '\0' || strlen(name) > 127)
      return usage_error("cluster join: a member's name is 1..127 bytes");
    /* A node joins by itself when started with --seeds: this command
     * only checks it did, and with --wait follows it. */
    if (cl->wait) {
      struct goal g = {name, CHORUS_META_NORMAL};
      return wait_change(c, cl, &g);
    }
    rc = chorus_cluster_status(c, &st);
    const struct chorus_cluster_member *m =
        rc == CHORUS_OK ? member_named(st, name) : NULL;
    if (rc == CHORUS_OK && (m == NULL || (m->state != CHORUS_META_JOINING &&
                                          m->state != CHORUS_META_NORMAL))) {
      if (m == NULL)
        fprintf(stderr,
                "chorus: %s is not a member (yet): start it with --seeds, it "
                "joins by itself once no other change is under way\n",
                name);
      else
        fprintf(stderr, "chorus: %s is %s, not joining\n", name,
                chorus_meta_state_name(m->state));
      chorus_cluster_status_free(st);
      return 1;
    }
  } else if (strcmp(sub, "remove") == 0 || strcmp(sub, "decommission") == 0) {
    bool remove = strcmp(sub, "remove") == 0;
    if ((rc = need_args(cl, 2, 2,
                        remove ? "cluster remove NAME [--force] [--wait]"
                               : "cluster decommission NAME [--force] "
                                 "[--wait]")) != 0)
      return rc;
    name = cl->argv[2];
    if (name[0] == '\0' || strlen(name) > 127)
      return usage_error("cluster %s: a member's name is 1..127 bytes", sub);
    if (cl->stage)
      rc = chorus_cluster_stage(
          c, remove ? CHORUS_STAGE_REMOVE : CHORUS_STAGE_DECOMMISSION, name,
          NULL, cl->force, &st);
    else
      rc = remove ? chorus_cluster_remove(c, name, cl->force, &st)
                  : chorus_cluster_decommission(c, name, cl->force, &st);
  } else if (strcmp(sub, "replace") == 0) {
    if ((rc = need_args(cl, 2, 2, "cluster replace DEAD --with NEW")) != 0)
      return rc;
    name = cl->argv[2];
    if (cl->with == NULL)
      return usage_error("cluster replace DEAD --with NEW: --with is needed");
    if (name[0] == '\0' || strlen(name) > 127 || cl->with[0] == '\0' ||
        strlen(cl->with) > 127)
      return usage_error("cluster replace: a member's name is 1..127 bytes");
    rc = cl->stage ? chorus_cluster_stage(c, CHORUS_STAGE_REPLACE, name,
                                          cl->with, false, &st)
                   : chorus_cluster_replace(c, name, cl->with, &st);
  } else if (strcmp(sub, "commit") == 0 || strcmp(sub, "clear") == 0) {
    if ((rc = need_args(cl, 1, 1, "cluster commit | cluster clear")) != 0)
      return rc;
    bool commit = strcmp(sub, "commit") == 0;
    rc = chorus_cluster_stage(c,
                              commit ? CHORUS_STAGE_COMMIT : CHORUS_STAGE_CLEAR,
                              NULL, NULL, false, &st);
    if (rc == CHORUS_OK && !cl->json)
      printf("%s\n", commit ? "the staged change is committed: it has begun"
                            : "no change is staged");
  } else {
    return usage_error("usage: chorus cluster status | cluster join NAME "
                       "[--wait] | cluster wait | cluster plan ... | cluster "
                       "remove NAME [--force] [--wait] | cluster decommission "
                       "NAME [--force] [--wait] | cluster replace DEAD --with "
                       "NEW");
  }
  if (rc != CHORUS_OK) {
    fprintf(stderr, "chorus: %s (%s)\n", chorus_client_errmsg(c),
            chorus_errname(rc));
    if (rc == CHORUS_EBUSY && strcmp(sub, "remove") == 0 &&
        strstr(chorus_client_errmsg(c), "--force") == NULL)
      fprintf(stderr, "chorus: %s is alive; --force removes it anyway\n", name);
    return 1;
  }
  if (cl->wait) {
    /* The change has begun: say so, then follow it. */
    if (!cl->json)
      print_cluster(cl, st, name, sub);
    bool remove = strcmp(sub, "remove") == 0 || strcmp(sub, "replace") == 0;
    struct goal g = {name, remove ? CHORUS_META_REMOVED : CHORUS_META_LEFT};
    chorus_cluster_status_free(st);
    return wait_change(c, cl, &g);
  }
  /* While a change is under way, each receiver's transfer: two samples a
   * second apart give its rate. */
  struct xfers *xs = NULL;
  if (strcmp(sub, "status") == 0 && changing(st) && !cl->json) {
    static struct xfers first, second;
    gather(cl, st, NULL, false, &first);
    nap_ms(1000);
    gather(cl, st, &first, false, &second);
    xs = &second;
  }
  print_cluster(cl, st, strcmp(sub, "join") == 0 ? NULL : name,
                cl->stage ? "stage" : sub);
  if (xs != NULL && !cl->json) {
    printf("transfers at epoch %" PRIu64 ":\n", st->epoch);
    for (size_t i = 0; i < xs->n; i++) {
      char line[300];
      xfer_line(&xs->x[i], line, sizeof line);
      printf("  %s\n", line);
    }
  }
  const struct chorus_cluster_member *joined =
      strcmp(sub, "join") == 0 ? member_named(st, name) : NULL;
  if (joined != NULL && !cl->json)
    printf("%s is %s\n", name, chorus_meta_state_name(joined->state));
  chorus_cluster_status_free(st);
  return 0;
}
