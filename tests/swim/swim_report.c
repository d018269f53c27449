/* swim_report.c: measures SWIM on the cluster simulator (through
 * swim_sim_adapter.h) for 10, 100 and 1,000 members and prints the report
 * table: detection time, false positives, messages per member per period,
 * dissemination rounds.
 *
 *   swim-report [sizes...]      (default: 10 100 1000)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swim_sim_adapter.h"

static int cmp_ms(const void *a, const void *b) {
  chorus_ms x = *(const chorus_ms *)a, y = *(const chorus_ms *)b;
  return x < y ? -1 : x > y;
}

static double median(chorus_ms *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_ms);
  return n % 2 ? (double)v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static void die(int rc, const char *what) {
  if (rc != CHORUS_OK) {
    fprintf(stderr, "%s: %s\n", what, chorus_strerror(rc));
    exit(1);
  }
}

/* Crash `trials` nodes one after another (each given time to be declared
 * dead everywhere), measuring first suspicion and first/all dead. */
static void detection(int n, int trials, chorus_ms *susp, chorus_ms *dead1,
                      chorus_ms *deadall, uint64_t *fp) {
  struct swim_sim_config c = {
      .nodes = n, .seed = 1000 + (uint64_t)n, .slow_node = -1, .bootstrap = 1};
  struct swim_sim *h = NULL;
  die(swim_sim_new(&c, &h), "swim_sim_new");
  struct swim_timing t;
  swim_timing_lan(&t);
  chorus_ms wait = swim_suspicion_timeout(&t, (size_t)n, 2, 0) + 10000;
  chorus_ms now = 10000;
  die(swim_sim_run_until(h, now), "run");
  for (int k = 0; k < trials; k++) {
    int victim = 1 + k; /* trials < n: each victim crashes once */
    /* crash at a random phase within the period */
    now += 137 * (chorus_ms)(k + 1) % 1000;
    die(swim_sim_run_until(h, now), "run");
    swim_sim_subject_reset(h, victim);
    swim_sim_kill(h, victim);
    chorus_ms crash = now;
    now += wait;
    die(swim_sim_run_until(h, now), "run");
    const struct swim_sim_subject *s = swim_sim_subject(h, victim);
    susp[k] = s->first_suspect - crash;
    dead1[k] = s->first_dead - crash;
    /* all dead: the last live observer to mark it */
    chorus_ms last = 0;
    int all = 1;
    for (int i = 0; i < n; i++) {
      struct swim *sw = swim_sim_node(h, i);
      if (sw == NULL)
        continue;
      const struct swim_member *m =
          swim_member_find(sw, swim_sim_id(h, victim));
      if (m == NULL || m->state != SWIM_DEAD) {
        all = 0;
        continue;
      }
      if (m->state_since > last)
        last = m->state_since;
    }
    deadall[k] = all ? last - crash : SWIM_SIM_NEVER;
  }
  *fp = swim_sim_false_deaths(h);
  swim_sim_free(h);
}

/* Steady state: false positives and message load over `periods`. */
static void steady(int n, double loss, int slow, int periods, int lifeguard,
                   uint64_t *fp, double *msgs, uint64_t *susp) {
  struct swim_sim_config c = {.nodes = n,
                              .no_lifeguard = !lifeguard,
                              .seed = 2000 + (uint64_t)n,
                              .loss = loss,
                              .slow_node = slow,
                              .slow_ms = 1500,
                              .bootstrap = 1};
  struct swim_sim *h = NULL;
  die(swim_sim_new(&c, &h), "swim_sim_new");
  die(swim_sim_run_until(h, (chorus_ms)periods * 1000), "run");
  *fp = swim_sim_false_deaths(h);
  *msgs = (double)swim_sim_datagrams(h) / ((double)n * periods);
  *susp = 0;
  for (int i = 0; i < n; i++)
    *susp += swim_sim_subject(h, i)->suspect_events;
  swim_sim_free(h);
}

/* Periods until an update made at one node is known everywhere. */
static double dissemination(int n, int gossip) {
  struct swim_sim_config c = {.nodes = n,
                              .seed = 3000 + (uint64_t)n,
                              .slow_node = -1,
                              .bootstrap = 1,
                              .no_gossip = !gossip};
  struct swim_sim *h = NULL;
  die(swim_sim_new(&c, &h), "swim_sim_new");
  die(swim_sim_run_until(h, 5000), "run");
  struct swim *s0 = swim_sim_node(h, 0);
  struct swim_meta m = swim_member_find(s0, swim_sim_id(h, 0))->meta;
  m.ownership = RING_LEAVING;
  chorus_ms t0 = swim_sim_now(h);
  swim_sim_track(h, swim_sim_id(h, 0), swim_incarnation(s0) + 1);
  die(swim_sim_set_meta(h, 0, &m), "set_meta");
  die(swim_sim_run_until(h, t0 + 60000), "run");
  chorus_ms last = 0;
  for (int i = 1; i < n; i++) {
    chorus_ms t = swim_sim_tracked_at(h, i);
    if (t == SWIM_SIM_NEVER) {
      swim_sim_free(h);
      return -1;
    }
    if (t - t0 > last)
      last = t - t0;
  }
  swim_sim_free(h);
  return (double)last / 1000.0;
}

int main(int argc, char **argv) {
  int sizes[8] = {10, 100, 1000};
  int nsizes = 3;
  if (argc > 1) {
    nsizes = 0;
    for (int i = 1; i < argc && nsizes < 8; i++)
      sizes[nsizes++] = atoi(argv[i]);
  }
  struct swim_timing t;
  swim_timing_lan(&t);
  printf("LAN profile: probe %llu ms, timeout %llu ms, k=%u, suspicion "
         "mult %u (max x%u); SWIM expected first detection e/(e-1) = %.2f "
         "periods\n\n",
         (unsigned long long)t.probe_interval,
         (unsigned long long)t.probe_timeout, t.indirect, t.suspicion_mult,
         t.suspicion_max_mult, exp(1.0) / (exp(1.0) - 1.0));
  printf("| members | first suspicion median / max (s) | first dead median "
         "/ max (s) | dead everywhere max (s) | memberlist timeout min..max "
         "(s) | false positives (crash runs; 0%% / 10%% loss + slow node) | "
         "suspicions (10%% loss; Lifeguard off: suspicions, false positives) | "
         "datagrams / member / period (0%% / 10%%) | dissemination periods "
         "(gossip / piggyback only) | log2 n |\n");
  printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (int si = 0; si < nsizes; si++) {
    int n = sizes[si];
    int trials = n >= 1000 ? 4 : (n > 10 ? 10 : 5);
    int periods = n >= 1000 ? 100 : 600;
    chorus_ms susp[16], d1[16], dall[16];
    uint64_t fp_crash = 0, fp0 = 0, fp10 = 0, s0 = 0, s10 = 0;
    double m0 = 0, m10 = 0;
    detection(n, trials, susp, d1, dall, &fp_crash);
    steady(n, 0.0, 3, periods, 1, &fp0, &m0, &s0);
    steady(n, 0.10, 3, periods, 1, &fp10, &m10, &s10);
    uint64_t fpnl = 0, snl = 0;
    double mnl = 0;
    steady(n, 0.10, 3, periods, 0, &fpnl, &mnl, &snl);
    double rounds = dissemination(n, 1), rounds_pb = dissemination(n, 0);
    chorus_ms dall_max = 0;
    for (int k = 0; k < trials; k++)
      if (dall[k] > dall_max)
        dall_max = dall[k];
    chorus_ms smax = 0, dmax = 0;
    for (int k = 0; k < trials; k++) {
      if (susp[k] > smax)
        smax = susp[k];
      if (d1[k] > dmax)
        dmax = d1[k];
    }
    double smed = median(susp, trials), dmed = median(d1, trials);
    printf("| %d | %.2f / %.2f | %.1f / %.1f | %.1f | %.0f..%.0f | %llu; "
           "%llu / %llu (%d periods) | %llu; off: %llu, %llu | %.2f / %.2f | "
           "%.1f / %.1f | %.1f |\n",
           n, smed / 1000, (double)smax / 1000, dmed / 1000,
           (double)dmax / 1000,
           dall_max == SWIM_SIM_NEVER ? -1.0 : (double)dall_max / 1000,
           swim_suspicion_timeout(&t, (size_t)n, 2, 2) / 1000.0,
           swim_suspicion_timeout(&t, (size_t)n, 2, 0) / 1000.0,
           (unsigned long long)fp_crash, (unsigned long long)fp0,
           (unsigned long long)fp10, periods, (unsigned long long)s10,
           (unsigned long long)snl, (unsigned long long)fpnl, m0, m10, rounds,
           rounds_pb, log2((double)n));
    fflush(stdout);
  }
  return 0;
}
