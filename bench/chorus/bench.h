/* bench.h: the pieces of chorus-bench that stand alone (latency histogram,
 * zipfian key generator, local cluster processes, SVG chart), so the unit
 * test and the program share one copy.
 *
 * HOW IT FITS
 *
 * chorus_bench.c drives libchorus (client/libchorus.h) on one or more uv
 * loops and records every completed request into a struct bench_hist per
 * operation type; keys come from a struct bench_zipf (or uniform draws);
 * a struct bench_cluster starts chorusd processes on loopback and reads
 * their CPU time from /proc; bench_svg_sweep draws the --sweep chart. None
 * of this is protocol logic: it reads clocks and forks processes freely.
 */
#ifndef CHORUS_BENCH_H
#define CHORUS_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "chorus_prng.h"

/* ------------------------------------------------------------------------
 * Log-linear latency histogram
 *
 * HdrHistogram's layout (Gil Tene): values below 2^(S+1) get one bucket
 * each; above, each power of two [2^m, 2^(m+1)) is cut into 2^S equal
 * sub-buckets. With S = 8 a recorded value is known to within 1/256
 * (0.4 %) of itself at any magnitude, and 64-bit values need 14,592
 * counters (117 KB). Values are nanoseconds in chorus-bench, but nothing
 * here cares about the unit.
 * ------------------------------------------------------------------------ */

#define BENCH_HIST_SUB_BITS 8
#define BENCH_HIST_BUCKETS                                                     \
  ((64 - BENCH_HIST_SUB_BITS + 1) << BENCH_HIST_SUB_BITS)

struct bench_hist {
  uint64_t count;
  uint64_t min, max; /* exact; min is UINT64_MAX when empty */
  double sum;        /* for the mean */
  uint64_t buckets[BENCH_HIST_BUCKETS];
};

/* bench_hist_reset: empties @h. */
void bench_hist_reset(struct bench_hist *h);

/* bench_hist_record: counts @v once. */
void bench_hist_record(struct bench_hist *h, uint64_t v);

/* bench_hist_merge: adds every count of @src into @dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);

/* bench_hist_index / bench_hist_upper: the bucket of @v, and the highest
 * value that falls into bucket @i (exposed for the unit test). */
size_t bench_hist_index(uint64_t v);
uint64_t bench_hist_upper(size_t i);

/* bench_hist_percentile: the smallest recorded value v such that at least
 * @p percent (0..100) of the values are <= v, as the upper edge of v's
 * bucket clamped to [min, max]: within 0.4 % above the exact order
 * statistic, never below it. 0 for an empty histogram; p = 100 is max. */
uint64_t bench_hist_percentile(const struct bench_hist *h, double p);

/* bench_hist_mean: sum / count, 0 when empty. */
double bench_hist_mean(const struct bench_hist *h);

/* ------------------------------------------------------------------------
 * Zipfian ranks
 *
 * Gray, Sundaresan, Englert, Baclawski & Weinberger, "Quickly Generating
 * Billion-Record Synthetic Databases" (SIGMOD 1994), §6 and Fig. 6: one
 * uniform draw and one pow() per rank, after an O(n) zeta(n, theta) at
 * set-up. Ranks 0 and 1 are drawn with their exact probabilities; higher
 * ranks follow the continuous approximation of the inverse CDF, the same
 * generator YCSB uses (theta 0.99 is YCSB's "zipfian" constant).
 * ------------------------------------------------------------------------ */

struct bench_zipf {
  uint64_t n;
  double theta, alpha, zetan, eta, half_pow_theta;
};

/* bench_zeta: sum_{i=1..n} 1 / i^theta. */
double bench_zeta(uint64_t n, double theta);

/* bench_zipf_init: a generator of ranks 0..@n-1 (rank 0 the most popular).
 * Preconditions: n >= 2, 0 < theta < 1. O(n) time. */
void bench_zipf_init(struct bench_zipf *z, uint64_t n, double theta);

/* bench_zipf_next: one rank in 0..n-1, from one draw of @prng. */
uint64_t bench_zipf_next(const struct bench_zipf *z, struct chorus_prng *prng);

/* bench_scramble: a fixed spread of @rank over 0..@n-1 (a 64-bit mix, then
 * modulo; not a bijection, as in YCSB's "scrambled zipfian"), so popular
 * ranks land on keys all over the ring, not next to each other. */
uint64_t bench_scramble(uint64_t rank, uint64_t n);

/* ------------------------------------------------------------------------
 * Local cluster: chorusd processes on loopback
 * ------------------------------------------------------------------------ */

#define BENCH_MAX_NODES 16

struct bench_node {
  pid_t pid; /* 0 when not running */
  char id[16];
  char addr[32]; /* "127.0.0.1:PORT" */
  char dc[16];
  char data[128];
  char log[128];
  int netns;       /* 0, or an open network namespace it runs in */
  bool killed;     /* by bench_cluster_kill */
  double cpu_base; /* CPU seconds of earlier incarnations (restarts) */
  double cpu_last; /* last reading of the running process */
};

struct bench_cluster {
  char chorusd[512]; /* program path */
  char dir[64];      /* mkdtemp root; removed by bench_cluster_stop */
  char replicas[64]; /* --replicas spec */
  char durability[16];
  char cluster[32];
  /* "": plaintext; else a scripts/mkcerts folder: every node runs
   * --client-tls required and --peer-tls @peer_tls with its node
   * certificate, and the cluster's own clients verify with its CA. */
  char tls_dir[400];
  char peer_tls[16];
  /* "": no logins; else every node runs --auth required with this first
   * admin (CHORUS_ADMIN_PASSWORD := @password) and the cluster's own
   * clients log in as it. */
  char user[48];
  const char *password;
  unsigned count;
  /* Two datacenters in network namespaces (--wan-rtt): when netns[0] > 0,
   * bench_cluster_start puts node i in datacenter d = i % 2, named
   * "dc<d+1>", inside namespace netns[d], listening on
   * host[d][i / 2]:port_base + i. Filled by the caller; 0 otherwise. */
  int netns[2];
  char host[2][BENCH_MAX_NODES / 2][20];
  struct bench_node nodes[BENCH_MAX_NODES];
};

/* bench_cluster_start: mkdtemp a folder, start @count chorusd (ports
 * @port_base + i, node i in dc "dc<i % dcs>" when @dcs > 1, else "dc1";
 * in namespaces when @c->netns[0] > 0, see above),
 * all seeded through node 0, with --profile local; then wait (up to
 * @wait_s seconds) until every node's ring lists every node up. @c's
 * chorusd, replicas, durability and cluster fields are read; the rest is
 * filled. On failure the started nodes are stopped. Registers an atexit
 * hook and SIGINT/SIGTERM handlers that stop the nodes, so a failed or
 * interrupted run leaves no process behind.
 * Errors: CHORUS_EIO (mkdtemp, fork or exec failed; a node exited),
 *         CHORUS_ETIMEDOUT (the ring did not converge), with @errmsg. */
int bench_cluster_start(struct bench_cluster *c, unsigned count, unsigned dcs,
                        unsigned port_base, double wait_s, char *errmsg);

/* bench_cluster_seeds: "addr,addr,..." of the nodes not killed, starting
 * at node @first (so clients spread their first choice); into @buf. */
void bench_cluster_seeds(const struct bench_cluster *c, unsigned first,
                         char *buf, size_t cap);

/* bench_cluster_kill: SIGKILL node @i (Dynamo's crash-stop failure). */
void bench_cluster_kill(struct bench_cluster *c, unsigned i);

/* bench_cluster_restart: starts a killed node @i again on its data folder
 * and waits (up to @wait_s) until the ring shows every node up.
 * Errors: as bench_cluster_start. */
int bench_cluster_restart(struct bench_cluster *c, unsigned i, double wait_s,
                          char *errmsg);

/* bench_cluster_cpu: user + system CPU seconds of every running node, from
 * /proc/PID/stat (fields 14 and 15). Nodes killed keep their last reading,
 * so a difference across a kill stays meaningful. */
double bench_cluster_cpu(struct bench_cluster *c);

/* bench_cluster_stop: SIGTERM every node, SIGKILL after 5 s, reap them
 * and remove the data folder. Idempotent. */
void bench_cluster_stop(struct bench_cluster *c);

/* bench_proc_cpu: user + system CPU seconds of @pid, or -1. */
double bench_proc_cpu(pid_t pid);

/* ------------------------------------------------------------------------
 * SVG chart of a sweep
 * ------------------------------------------------------------------------ */

struct bench_svg_point {
  const char *label; /* "R=2 W=2" */
  double ops;        /* throughput, ops/s (bars, left axis) */
  double p99_ms;     /* p99 latency of every op type, ms (line, right axis) */
};

/* bench_svg_sweep: writes a hand-drawn SVG to @f: one bar per point for
 * throughput, a line with dots for p99, both axes labelled with ticks, a
 * title and a legend. */
void bench_svg_sweep(FILE *f, const char *title,
                     const struct bench_svg_point *pts, size_t n);

#endif /* CHORUS_BENCH_H */
