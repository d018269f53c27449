/* bench_ring.c: ring figures: balance and movement tables, lookup cost.
 *
 *   bench_ring balance [T...]   max/mean primary ownership, 3..64 nodes
 *   bench_ring movement [T]     keys moved when a (k+1)-th node joins
 *   bench_ring lookup [T]       ns per preference-list lookup, 100 nodes
 *   bench_ring                  all three at the default T
 *
 * A benchmark, not a test: it prints figures and asserts nothing about
 * time. Build it without sanitizers (a release build dir). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chorus_alloc.h"
#include "chorus_prng.h"
#include "ring.h"

#define ID_SETS 8

/* Node ids as chorusd derives them: xxh3 of the node's name. */
static chorus_node_id node_id(int set, int i) {
  char name[64];
  if (set == 0)
    snprintf(name, sizeof name, "node-%d", i);
  else
    snprintf(name, sizeof name, "set%d-node-%d", set, i);
  return ring_token_of(name, strlen(name));
}

static struct ring_snapshot *build_joining(int set, int n, uint32_t T,
                                           const char *spec, int dcs, int racks,
                                           int joining) {
  struct ring_node *nodes = chorus_calloc((size_t)n, sizeof *nodes);
  for (int i = 0; i < n; i++) {
    nodes[i].id = node_id(set, i);
    snprintf(nodes[i].dc, RING_NAME_MAX, "dc%d", 1 + i % dcs);
    snprintf(nodes[i].rack, RING_NAME_MAX, "r%d", (i / dcs) % racks);
    nodes[i].state = i < joining ? RING_JOINING : RING_NORMAL;
    nodes[i].vnodes = T;
  }
  struct ring_replication repl;
  char err[CHORUS_ERRMSG_SIZE];
  struct ring_snapshot *s = NULL;
  if (ring_replication_parse(spec, &repl, err) != CHORUS_OK ||
      ring_snapshot_build(nodes, (size_t)n, &repl, 1, &s, err) != CHORUS_OK) {
    fprintf(stderr, "build: %s\n", err);
    exit(1);
  }
  chorus_free(nodes);
  return s;
}

static struct ring_snapshot *build(int set, int n, uint32_t T, const char *spec,
                                   int dcs, int racks) {
  return build_joining(set, n, T, spec, dcs, racks, 0);
}

static double max_over_mean(const struct ring_snapshot *s) {
  size_t n = ring_snapshot_node_count(s);
  double *share = chorus_calloc(n, sizeof *share), max = 0;
  ring_snapshot_ownership(s, share);
  for (size_t i = 0; i < n; i++)
    if (share[i] > max)
      max = share[i];
  chorus_free(share);
  return max * (double)n;
}

static void balance(uint32_t *Ts, int nT) {
  printf("## Balance: max/mean primary ownership (id set 0; worst of %d id "
         "sets)\n\n| nodes |",
         ID_SETS);
  for (int t = 0; t < nT; t++)
    printf(" T=%u |", Ts[t]);
  printf("\n|---|");
  for (int t = 0; t < nT; t++)
    printf("---|");
  printf("\n");
  double worst[16] = {0};
  for (int n = 3; n <= 64; n++) {
    int show = n <= 8 || n % 8 == 0 || n == 12 || n == 24;
    if (show)
      printf("| %d |", n);
    for (int t = 0; t < nT; t++) {
      double first = 0, w = 0;
      for (int set = 0; set < ID_SETS; set++) {
        struct ring_snapshot *s = build(set, n, Ts[t], "1", 1, 1);
        double r = max_over_mean(s);
        ring_snapshot_free(s);
        if (set == 0)
          first = r;
        if (r > w)
          w = r;
      }
      if (w > worst[t])
        worst[t] = w;
      if (show)
        printf(" %.3f (%.3f) |", first, w);
    }
    if (show)
      printf("\n");
  }
  printf("| worst 3..64 |");
  for (int t = 0; t < nT; t++)
    printf(" %.3f |", worst[t]);
  printf("\n\n");
}

static void movement(uint32_t T) {
  printf("## Movement: a (k+1)-th node joins, N=1, T=%u (exact, from "
         "ring_diff)\n\n| k | moved | 1/(k+1) | ratio | all to new node |\n"
         "|---|---|---|---|---|\n",
         T);
  double lo = 9, hi = 0;
  for (int k = 3; k <= 64; k++) {
    struct ring_snapshot *a = build(0, k, T, "1", 1, 1);
    struct ring_snapshot *b = build(0, k + 1, T, "1", 1, 1);
    struct ring_move *m;
    size_t nm;
    if (ring_diff(a, b, &m, &nm) != CHORUS_OK)
      exit(1);
    double moved = 0;
    int only_new = 1;
    for (size_t i = 0; i < nm; i++) {
      moved += (double)(m[i].end - m[i].start) / 18446744073709551616.0;
      if (m[i].to != node_id(0, k))
        only_new = 0;
    }
    double ratio = moved * (k + 1);
    if (ratio < lo)
      lo = ratio;
    if (ratio > hi)
      hi = ratio;
    if (k <= 8 || k % 8 == 0 || k == 12 || k == 24)
      printf("| %d | %.4f | %.4f | %.3f | %s |\n", k, moved, 1.0 / (k + 1),
             ratio, only_new ? "yes" : "NO");
    chorus_free(m);
    ring_snapshot_free(a);
    ring_snapshot_free(b);
  }
  printf("| 3..64 | | | %.3f..%.3f | |\n\n", lo, hi);
}

static double now_ns(void) {
  struct timespec ts;
  /* Thread CPU time: on a shared machine, time spent descheduled is not
   * lookup cost. */
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void lookup_case(const char *label, struct ring_snapshot *s,
                        unsigned fb) {
  enum { KEYS = 1 << 18, ROUNDS = 40, KEYLEN = 16 };
  chorus_token *tok = chorus_malloc(KEYS * sizeof *tok);
  char *keys = chorus_malloc((size_t)KEYS * KEYLEN);
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 42);
  for (size_t i = 0; i < KEYS; i++) {
    tok[i] = chorus_prng_next(&prng);
    char buf[KEYLEN + 1];
    snprintf(buf, sizeof buf, "user:%011zu", i);
    memcpy(keys + i * KEYLEN, buf, KEYLEN);
  }
  struct ring_plist pl;
  uint64_t sink = 0;
  double best = 1e30, best_key = 1e30;
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now_ns();
    for (size_t i = 0; i < KEYS; i++) {
      ring_lookup(s, tok[i], fb, &pl);
      sink += pl.r[0].id + pl.n_natural;
    }
    double ns = (now_ns() - t0) / KEYS;
    if (ns < best)
      best = ns;
    /* From key bytes: xxh3 of a 16-byte key, then the lookup. */
    t0 = now_ns();
    for (size_t i = 0; i < KEYS; i++) {
      ring_lookup_key(s, keys + i * KEYLEN, KEYLEN, fb, &pl);
      sink += pl.r[0].id;
    }
    ns = (now_ns() - t0) / KEYS;
    if (ns < best_key)
      best_key = ns;
  }
  printf("| %s | %u | %.0f | %.0f |\n", label, fb, best, best_key);
  if (sink == 42)
    printf("(sink)\n");
  chorus_free(tok);
  chorus_free(keys);
}

static double now_ns(void);

static void lookup(uint32_t T) {
  double t0 = now_ns();
  struct ring_snapshot *s1 = build(0, 100, T, "3", 1, 1);
  double t1 = now_ns();
  struct ring_snapshot *s1r = build(0, 100, T, "3", 1, 5);
  double t2 = now_ns();
  struct ring_snapshot *s2 = build(0, 100, T, "dc1:3,dc2:3", 2, 1);
  double t3 = now_ns();
  struct ring_snapshot *s2r = build(0, 100, T, "dc1:3,dc2:3", 2, 3);
  double t4 = now_ns();
  printf("## Lookup: 100 nodes, T=%u, 2^18 random keys, best of 40 rounds\n\n"
         "| case | fallbacks | ns/lookup (token) | ns/lookup (16-byte key) "
         "|\n|---|---|---|---|\n",
         T);
  lookup_case("N=3, one DC, no racks", s1, 0);
  lookup_case("N=3, one DC, 5 racks", s1r, 0);
  lookup_case("N=3, one DC, 5 racks", s1r, 3);
  lookup_case("3+3, two DCs, no racks", s2, 0);
  lookup_case("3+3, two DCs, 3 racks each", s2r, 0);
  lookup_case("3+3, two DCs, 3 racks each", s2r, 3);
  struct ring_snapshot *sj = build_joining(0, 100, T, "dc1:3,dc2:3", 2, 3, 1);
  lookup_case("3+3, 3 racks each, 1 node joining", sj, 0);
  ring_snapshot_free(sj);
  printf("\nSnapshot build (incl. precomputed lists), ms: N=3 %.1f, N=3 5 "
         "racks %.1f, 3+3 %.1f, 3+3 3 racks %.1f\n",
         (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6, (t4 - t3) / 1e6);
  ring_snapshot_free(s1);
  ring_snapshot_free(s1r);
  ring_snapshot_free(s2);
  ring_snapshot_free(s2r);
  printf("\n");
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "all";
  uint32_t Ts[16];
  int nT = 0;
  for (int i = 2; i < argc && nT < 16; i++)
    Ts[nT++] = (uint32_t)strtoul(argv[i], NULL, 10);
  if (nT == 0)
    Ts[nT++] = RING_DEFAULT_VNODES;
  if (strcmp(mode, "balance") == 0 || strcmp(mode, "all") == 0)
    balance(Ts, nT);
  if (strcmp(mode, "movement") == 0 || strcmp(mode, "all") == 0)
    movement(Ts[0]);
  if (strcmp(mode, "lookup") == 0 || strcmp(mode, "all") == 0)
    lookup(Ts[0]);
  return 0;
}
