/* chorus_bench.c: chorus-bench, a load generator and latency meter for a
 * chorus cluster, over the asynchronous libchorus API on uv loops.
 *
 * HOW IT WORKS
 *
 * A run is one workload at one consistency setting. Each of --threads
 * loops opens its share of --connections "connection slots"; a slot holds
 * one libchorus client per ring node when routing is token-aware (the key's
 * first natural replica coordinates it: Dynamo §4.5 and §6.4, client-driven
 * coordination, with the ring computed by ring/ring.h from RING_REPLY as
 * libchorus computes it, chorus__ring_build), or
 * one client whose seed list starts at a different node per slot.
 *
 *   closed loop  every slot keeps --pipeline requests in flight; a request's
 *                completion issues the next, and latency runs from the
 *                actual send.
 *   open loop    (--rate) a 1 ms timer issues every request whose intended
 *                time i / rate has come, however many are still in flight,
 *                and latency runs from the intended time: a stalled server
 *                shows up as latency, not as fewer samples (Tene's
 *                "coordinated omission").
 *
 * Requests that start during the warm-up are not counted; the others are
 * recorded per operation type into log-linear histograms (bench_hist.c),
 * successes as latency and failures by error code. With --kill-node-at the
 * counts split at the kill into "before" and "after", by start time.
 * Throughput is the successful requests that started in the window over
 * the window, stretched to the last of their completions. The
 * node processes' CPU time is read from /proc at the end of the warm-up and
 * at the end of the run.
 *
 * A closed-loop worker's next request leaves from the loop's check phase,
 * not from inside the completion callback (see on_done for the libchorus
 * timer behaviour that makes this matter).
 *
 * Updates carry the causal context the last read or write of that key
 * returned to this loop, as a real read-modify-write client would, so
 * siblings stay few (an empty context would add one sibling per write:
 * DVV semantics, Almeida et al.).
 *
 * --dcs 2 --wan-rtt MS runs two datacenters in network namespaces over
 * chorus-wan, clients in each with their datacenter set, one row per level
 * and client datacenter (run_wan below).
 *
 * --scaling DIM prints issue 27's "how cost grows" tables: one per
 * dimension (data set, value size, cluster size, connections), each row a
 * fresh cluster preloaded through the nodes, then one run (run_scaling).
 *
 * --staleness measures PBS t-visibility (Bailis et al., "Probabilistically
 * Bounded Staleness", VLDB 2012, §3): write a fresh key through one node,
 * wait t ms after the acknowledgement, read it through another, count how
 * often the write is seen.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "bench.h"
#include "chorus_alloc.h"
#include "chorus_error.h"
#include "libchorus.h"
#include "libchorus_int.h"
#include "ring.h"
#include "wan_net.h"

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

enum op_kind {
  OP_GET,
  OP_PUT,
  OP_CADD,
  OP_SADD,
  OP_CAS,
  OP_LOCK,
  OP_UNLOCK,
  OP_KINDS
};
static const char *const op_names[OP_KINDS] = {
    "get", "put",          "counter_add", "set_add",
    "cas", "lock_acquire", "lock_release"};

/* cas (issue 23): compare-and-set on keys of their own ("cas:"), each an
 * if-value increment of the value this loop last saw there (if-absent "0"
 * on a key it has not seen): one Paxos round, or more under contention.
 * lock: each worker acquires a lock of its key, then releases it. */
enum workload {
  WL_RW50,
  WL_RW95,
  WL_RO,
  WL_WO,
  WL_COUNTER,
  WL_SET,
  WL_CAS,
  WL_LOCK
};
static const char *const wl_names[] = {"rw50",    "rw95", "ro",  "wo",
                                       "counter", "set",  "cas", "lock"};

#define MAX_SETTINGS 16
#define PHASES 2
#define ERR_SLOTS 32 /* -code; the last slot collects anything beyond */

struct setting {
  int32_t r, w;
  char label[48];
};

struct options {
  const char *seeds;
  unsigned start_cluster, dcs, port_base;
  const char *replicas, *durability, *chorusd, *cluster;
  /* TLS: the clients' CA, certificate and key (NULL: plaintext); --tls
   * DIR sets the CA from a scripts/mkcerts folder and starts the cluster
   * with TLS (peers too unless --peer-tls off). */
  const char *tls_ca, *tls_cert, *tls_key, *tls_dir, *peer_tls;
  /* --user: every client logs in (its password from CHORUS_PASSWORD); a
   * started cluster runs --auth required with that user as first admin */
  const char *user, *password;
  unsigned conns, pipeline, threads;
  double rate, duration, warmup;
  uint64_t ops;
  enum workload wl;
  bool zipf, token_aware, preload;
  double theta;
  uint64_t keys;
  size_t value_size;
  int32_t r, w;
  uint32_t timeout_ms;
  bool json, sweep, staleness;
  const char *csv, *svg, *label;
  double kill_at;
  unsigned stale_trials;
  uint64_t seed;
  double wan_rtt;        /* ms; > 0: two datacenters over chorus-wan */
  bool check;            /* --wan-rtt: judge the rows (the bench_wan test) */
  const char *client_dc; /* chorus_config.dc of every client, or NULL */
  /* --scaling: the dimensions to run (SCALE_* bits) and each one's row
   * values, comma lists; see run_scaling */
  unsigned scaling;
  const char *scale_keys, *scale_values, *scale_nodes, *scale_conns;
  double scale_data_mb;   /* values rows: keys x value size at most this */
  unsigned scale_preload; /* the preload's requests in flight */
  bool conns_set, duration_set;
};

enum {
  SCALE_DATASET = 1,
  SCALE_VALUES = 2,
  SCALE_NODES = 4,
  SCALE_CONNS = 8,
  SCALE_ALL = 15
};

/* ------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------ */

struct stats {
  struct bench_hist hist[PHASES][OP_KINDS]; /* successes, ns */
  uint64_t ok[PHASES][OP_KINDS];
  uint64_t not_found[PHASES];
  uint64_t cas_not_applied[PHASES]; /* a condition that failed (an ok) */
  uint64_t err[PHASES][OP_KINDS][ERR_SLOTS];
  uint64_t maybe_applied[PHASES];
  /* open loop: submit time - intended time of the counted requests, ns:
   * the pacing timer's own wake-up, a part of every latency above (issue
   * 27: at low load it is a good share of the p50) */
  struct bench_hist lag;
};

static void stats_init(struct stats *s) {
  memset(s, 0, sizeof *s);
  for (int p = 0; p < PHASES; p++)
    for (int k = 0; k < OP_KINDS; k++)
      bench_hist_reset(&s->hist[p][k]);
  bench_hist_reset(&s->lag);
}

static void stats_merge(struct stats *d, const struct stats *s) {
  for (int p = 0; p < PHASES; p++) {
    for (int k = 0; k < OP_KINDS; k++) {
      bench_hist_merge(&d->hist[p][k], &s->hist[p][k]);
      d->ok[p][k] += s->ok[p][k];
      for (int e = 0; e < ERR_SLOTS; e++)
        d->err[p][k][e] += s->err[p][k][e];
    }
    d->not_found[p] += s->not_found[p];
    d->cas_not_applied[p] += s->cas_not_applied[p];
    d->maybe_applied[p] += s->maybe_applied[p];
  }
  bench_hist_merge(&d->lag, &s->lag);
}

static uint64_t stats_errors(const struct stats *s, int phase, int kind) {
  uint64_t n = 0;
  for (int e = 0; e < ERR_SLOTS; e++)
    n += s->err[phase][kind][e];
  return n;
}

/* The outcome of one run, as printed and written. */
struct result {
  struct setting set;
  struct stats st;
  bool killed;
  double phase_s[PHASES]; /* measured seconds per phase */
  double node_cpu_s;      /* < 0: unknown (no started cluster) */
  double bench_cpu_s;
  uint64_t dropped; /* open loop: requests refused at once by the library */
};

/* ------------------------------------------------------------------------
 * Run state
 * ------------------------------------------------------------------------ */

struct ctx_slot { /* the last causal context seen for one key */
  uint8_t len;    /* 0: none (or too long to cache) */
  uint8_t data[63];
};

struct run;

struct req {
  struct loop_ctx *lc;
  uint64_t t_start; /* ns: intended (open loop) or actual send time */
  uint64_t key;
  unsigned slot;
  uint8_t op;
  uint8_t phase;
  bool counted;        /* started after the warm-up */
  bool busy;           /* closed loop: waiting for a reply */
  bool queued;         /* closed loop: in the ready list */
  uint64_t lock_token; /* lock workload: held at this token; 0: not held */
};

struct loop_ctx {
  struct run *run;
  unsigned index;
  uv_loop_t loop;
  uv_timer_t tick;
  uv_check_t check; /* issues the workers that completed this turn */
  /* Open loop: a timerfd at the request interval paces the sends, since a
   * libuv timer has millisecond resolution and would add up to a tick of
   * dispatch delay to every latency (measured from the intended time). */
  int pace_fd;
  uv_poll_t pace;
  struct chorus_prng prng;
  unsigned nslots, per_slot; /* per_slot: clients per slot */
  struct chorus_client **clients;
  struct req *workers; /* closed loop: nslots * pipeline */
  unsigned nworkers;
  unsigned *ready; /* workers to issue at the check phase */
  unsigned nready;
  struct ctx_slot *ctxs; /* per key */
  uint64_t inflight;
  uint64_t counted_issued, quota; /* --ops share; 0: by time */
  uint64_t next_intended;         /* open loop, ns */
  uint64_t interval_ns;
  uint64_t rr;           /* round-robin slot of the open loop */
  uint64_t preload_next; /* preload: next key of this loop */
  uint64_t last_done;    /* ns of the last counted completion */
  uint64_t stop_at;      /* ns when issuing stopped */
  bool stopping, finished;
  uint64_t dropped;
  struct stats *st;
  uint8_t *value; /* value_size bytes (up to 1 MiB: --scaling values) */
};

struct run {
  const struct options *o;
  struct setting set;
  struct bench_cluster *cluster; /* NULL for --seeds */
  char **slot_seeds;             /* per token-aware node or per slot */
  struct ring_snapshot *ring;    /* token-aware routing; NULL otherwise */
  unsigned ring_nodes;
  long *ring_client; /* ring node index -> client index in a slot */
  bool preload;
  uint64_t t_start, t_warm, t_end, t_kill, drain_ns;
  double cpu_warm, cpu_end, bcpu_warm, bcpu_end;
  bool cpu_warm_taken, killed;
  unsigned kill_index;
  struct bench_zipf zipf;
};

static double cpu_self(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------
 * Keys and operations
 * ------------------------------------------------------------------------ */

static const char *key_prefix(enum op_kind op) {
  return op == OP_CADD   ? "ctr:"
         : op == OP_SADD ? "set:"
         : op == OP_CAS  ? "cas:"
                         : "key:";
}

static size_t format_key(char *buf, enum op_kind op, uint64_t k) {
  return (size_t)snprintf(buf, 32, "%s%012" PRIu64, key_prefix(op), k);
}

static enum op_kind pick_op(struct loop_ctx *lc) {
  const struct options *o = lc->run->o;
  if (lc->run->preload)
    return OP_PUT;
  switch (o->wl) {
  case WL_RW50:
    return chorus_prng_chance(&lc->prng, 0.5) ? OP_GET : OP_PUT;
  case WL_RW95:
    return chorus_prng_chance(&lc->prng, 0.95) ? OP_GET : OP_PUT;
  case WL_RO:
    return OP_GET;
  case WL_WO:
    return OP_PUT;
  case WL_COUNTER:
    return OP_CADD;
  case WL_SET:
    return OP_SADD;
  case WL_CAS:
    return OP_CAS;
  case WL_LOCK:
    return OP_LOCK; /* prepare() alternates it with OP_UNLOCK */
  }
  return OP_GET;
}

static uint64_t pick_key(struct loop_ctx *lc) {
  const struct options *o = lc->run->o;
  if (lc->run->preload) {
    uint64_t k = lc->preload_next;
    lc->preload_next += o->threads;
    return k;
  }
  if (o->zipf)
    return bench_scramble(bench_zipf_next(&lc->run->zipf, &lc->prng), o->keys);
  return chorus_prng_below(&lc->prng, o->keys);
}

/* The client of @slot that should coordinate @key. */
static struct chorus_client *route(struct loop_ctx *lc, unsigned slot,
                                   const char *key, size_t len) {
  struct run *run = lc->run;
  unsigned pick = 0;
  if (run->ring != NULL) {
    struct ring_plist pl;
    if (ring_lookup_key(run->ring, key, len, 0, &pl) == CHORUS_OK &&
        pl.n_natural > 0) {
      long c = run->ring_client[pl.r[0].node];
      if (c >= 0)
        pick = (unsigned)c;
    }
  }
  return lc->clients[slot * lc->per_slot + pick];
}

static void on_done(struct chorus_client *c, struct chorus_result *res,
                    void *arg);
static void finish(struct loop_ctx *lc);

static void record_error(struct loop_ctx *lc, const struct req *rq, int status,
                         bool maybe) {
  int e = -status;
  if (e < 0 || e >= ERR_SLOTS)
    e = ERR_SLOTS - 1;
  lc->st->err[rq->phase][rq->op][e]++;
  if (maybe)
    lc->st->maybe_applied[rq->phase]++;
}

/* Sends @rq (its op and key already chosen); CHORUS_OK or the library's
 * immediate error (then no callback runs). */
static int send_req(struct loop_ctx *lc, struct req *rq) {
  const struct options *o = lc->run->o;
  char key[32];
  size_t klen = format_key(key, rq->op, rq->key);
  struct chorus_client *cl = route(lc, rq->slot, key, klen);
  struct chorus_opts opts = {0};
  opts.r = lc->run->set.r;
  opts.w = lc->run->set.w;
  opts.timeout_ms = o->timeout_ms;
  lc->inflight++;
  int rc;
  switch ((enum op_kind)rq->op) {
  case OP_GET:
    rc = chorus_get_async(cl, key, klen, &opts, on_done, rq);
    break;
  case OP_PUT: {
    const struct ctx_slot *cs = &lc->ctxs[rq->key];
    memcpy(lc->value, &rq->t_start, sizeof rq->t_start); /* fresh bytes */
    rc = chorus_put_async(cl, key, klen, lc->value, o->value_size, cs->data,
                          cs->len, &opts, on_done, rq);
    break;
  }
  case OP_CADD:
    rc = chorus_counter_add_async(cl, key, klen, 1, &opts, on_done, rq);
    break;
  case OP_LOCK:
  case OP_UNLOCK: {
    /* Lock "lk:K": routed by its key in the lock namespace. */
    char lk[40];
    int nlen = snprintf(lk + 6, sizeof lk - 6, "lk:%012" PRIu64, rq->key);
    memcpy(lk, "\xc1lock:", 6);
    cl = route(lc, rq->slot, lk, 6 + (size_t)nlen);
    rc = rq->op == OP_LOCK
             ? chorus_lock_acquire_async(cl, lk + 6, (size_t)nlen, "bench", 5,
                                         10000, &opts, on_done, rq)
             : chorus_lock_release_async(cl, lk + 6, (size_t)nlen,
                                         rq->lock_token, &opts, on_done, rq);
    break;
  }
  case OP_SADD: {
    /* members from a universe of 64, so sets stay small */
    char m[8];
    int mlen = snprintf(m, sizeof m, "m%02u",
                        (unsigned)chorus_prng_below(&lc->prng, 64));
    struct chorus_bytes mem = {(const uint8_t *)m, (size_t)mlen};
    rc = chorus_set_add_async(cl, key, klen, &mem, 1, &opts, on_done, rq);
    break;
  }
  case OP_CAS: {
    /* The value last seen is cached where a kv key keeps its context. */
    const struct ctx_slot *cs = &lc->ctxs[rq->key];
    char next[24];
    int nlen;
    if (cs->len == 0) {
      nlen = snprintf(next, sizeof next, "0");
      rc = chorus_cas_async(cl, key, klen, CHORUS_CAS_IF_ABSENT, NULL, 0, next,
                            (size_t)nlen, &opts, on_done, rq);
    } else {
      char seen[24];
      size_t n = cs->len < sizeof seen - 1 ? cs->len : sizeof seen - 1;
      memcpy(seen, cs->data, n);
      seen[n] = '\0';
      nlen = snprintf(next, sizeof next, "%lld", atoll(seen) + 1);
      rc = chorus_cas_async(cl, key, klen, CHORUS_CAS_IF_VALUE, cs->data,
                            cs->len, next, (size_t)nlen, &opts, on_done, rq);
    }
    break;
  }
  default:
    rc = CHORUS_EINVAL;
  }
  if (rc != CHORUS_OK)
    lc->inflight--;
  return rc;
}

/* May this loop start another request now? */
static bool may_issue(struct loop_ctx *lc, uint64_t now) {
  if (lc->stopping)
    return false;
  if (lc->run->preload)
    return lc->preload_next < lc->run->o->keys;
  if (lc->quota > 0)
    return lc->counted_issued < lc->quota;
  return now < lc->run->t_end;
}

static void prepare(struct loop_ctx *lc, struct req *rq, uint64_t t_start) {
  struct run *run = lc->run;
  rq->lc = lc;
  rq->t_start = t_start;
  rq->op = (uint8_t)pick_op(lc);
  if (rq->op == OP_LOCK && rq->lock_token != 0)
    rq->op = OP_UNLOCK; /* a worker releases what it acquired, same key */
  else
    rq->key = pick_key(lc);
  /* a preload counts every write, so its failures can be reported */
  rq->counted = run->preload || t_start >= run->t_warm;
  rq->phase = run->t_kill != 0 && t_start >= run->t_kill ? 1 : 0;
  if (rq->counted)
    lc->counted_issued++;
}

/* Closed loop: (re)starts worker @rq if the run goes on. */
static void closed_issue(struct loop_ctx *lc, struct req *rq) {
  uint64_t now = uv_hrtime();
  if (!may_issue(lc, now)) {
    rq->busy = false;
    return;
  }
  prepare(lc, rq, now);
  rq->busy = true;
  int rc = send_req(lc, rq);
  if (rc != CHORUS_OK) {
    /* refused before sending (e.g. a closing client): count it and let
     * the tick retry this worker, so a dead client cannot spin us */
    if (rq->counted)
      record_error(lc, rq, rc, false);
    rq->busy = false;
  }
}

/* cas_seen: what a CAS answer says the key's value is now, cached for the
 * next increment (none after an error: the next try is an if-absent, whose
 * failure tells the value). */
static void cas_seen(struct loop_ctx *lc, const struct req *rq,
                     const struct chorus_result *res) {
  struct ctx_slot *cs = &lc->ctxs[rq->key];
  if (res->status != CHORUS_OK) {
    cs->len = 0;
    return;
  }
  if (!res->cas_applied && rq->counted)
    lc->st->cas_not_applied[rq->phase]++;
  char v[24];
  int n;
  if (res->cas_applied) {
    /* Applied: the value found plus one (if-absent: "0"). */
    long long found = 0;
    if (res->nvalues > 0 && res->values[0].len < sizeof v) {
      memcpy(v, res->values[0].ptr, res->values[0].len);
      v[res->values[0].len] = '\0';
      found = atoll(v) + 1;
    }
    n = snprintf(v, sizeof v, "%lld", found);
  } else if (res->nvalues > 0 && res->values[0].len < sizeof v) {
    memcpy(v, res->values[0].ptr, res->values[0].len);
    n = (int)res->values[0].len;
  } else {
    n = 0;
  }
  memcpy(cs->data, v, (size_t)n);
  cs->len = (uint8_t)n;
}

static void on_done(struct chorus_client *c, struct chorus_result *res,
                    void *arg) {
  struct req *rq = arg;
  struct loop_ctx *lc = rq->lc;
  uint64_t now = uv_hrtime();
  lc->inflight--;
  if (rq->counted) {
    if (res->status == CHORUS_OK) {
      bench_hist_record(&lc->st->hist[rq->phase][rq->op], now - rq->t_start);
      lc->st->ok[rq->phase][rq->op]++;
      if (rq->op == OP_GET && res->nvalues == 0)
        lc->st->not_found[rq->phase]++;
    } else {
      record_error(lc, rq, res->status, res->maybe_applied);
    }
    lc->last_done = now;
  }
  if (rq->op == OP_CAS)
    cas_seen(lc, rq, res);
  else if (rq->op == OP_LOCK)
    rq->lock_token =
        res->status == CHORUS_OK && res->cas_applied ? res->lock_token : 0;
  else if (rq->op == OP_UNLOCK)
    rq->lock_token = 0;
  if (res->status == CHORUS_OK && (rq->op == OP_GET || rq->op == OP_PUT)) {
    struct ctx_slot *cs = &lc->ctxs[rq->key];
    if (res->context.len <= sizeof cs->data) {
      memcpy(cs->data, res->context.ptr, res->context.len);
      cs->len = (uint8_t)res->context.len;
    } else {
      cs->len = 0;
    }
  }
  /* The next request of a closed-loop worker goes out from the check
   * phase, not from inside this callback: libchorus (as of this writing)
   * re-arms its timer to the next deadline after dispatching a read, which
   * overrides the immediate turn a request submitted from the callback
   * asked for, so that request would sit queued until its deadline. */
  if (lc->workers != NULL) {
    rq->busy = false;
    rq->queued = true;
    lc->ready[lc->nready++] = (unsigned)(rq - lc->workers);
  } else {
    chorus_free(rq);
  }
  if (lc->stopping && lc->inflight == 0)
    finish(lc);
}

/* Open loop: every request whose intended time has come. */
static void open_issue(struct loop_ctx *lc, uint64_t now) {
  while (lc->next_intended <= now && may_issue(lc, lc->next_intended)) {
    struct req *rq = chorus_calloc(1, sizeof *rq);
    if (rq == NULL)
      break;
    prepare(lc, rq, lc->next_intended);
    if (rq->counted && !lc->run->preload)
      bench_hist_record(&lc->st->lag, uv_hrtime() - rq->t_start);
    rq->slot = (unsigned)(lc->rr++ % lc->nslots);
    lc->next_intended += lc->interval_ns;
    int rc = send_req(lc, rq);
    if (rc != CHORUS_OK) {
      if (rq->counted)
        record_error(lc, rq, rc, false);
      lc->dropped++;
      chorus_free(rq);
    }
  }
}

static void on_timer_closed(uv_handle_t *h) {
  (void)h;
}

static void on_pace_closed(uv_handle_t *h) {
  struct loop_ctx *lc = h->data;
  close(lc->pace_fd);
  lc->pace_fd = -1;
}

static void on_pace(uv_poll_t *h, int status, int events) {
  (void)status, (void)events;
  struct loop_ctx *lc = h->data;
  uint64_t expirations;
  if (read(lc->pace_fd, &expirations, sizeof expirations) < 0)
    return; /* EAGAIN: nothing yet */
  if (!lc->stopping && !lc->finished)
    open_issue(lc, uv_hrtime());
}

/* pace_start: the timerfd of the open loop; without one (an old kernel),
 * the 1 ms tick still issues, with its coarser dispatch. */
static void pace_start(struct loop_ctx *lc) {
  lc->pace_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (lc->pace_fd < 0)
    return;
  /* At most 100k wake-ups a second: faster rates send a few per wake. The
   * first expiry is the first intended time itself, on the clock
   * uv_hrtime reads (CLOCK_MONOTONIC): a timer armed relative to now
   * would fire every tick late by the time since run->t_start, a
   * constant share of every latency measured (issue 27). */
  uint64_t ns = lc->interval_ns > 10000 ? lc->interval_ns : 10000;
  uint64_t first = lc->next_intended;
  struct itimerspec its = {
      .it_interval = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)},
      .it_value = {(time_t)(first / 1000000000u), (long)(first % 1000000000u)}};
  if (timerfd_settime(lc->pace_fd, TFD_TIMER_ABSTIME, &its, NULL) != 0 ||
      uv_poll_init(&lc->loop, &lc->pace, lc->pace_fd) != 0) {
    close(lc->pace_fd);
    lc->pace_fd = -1;
    return;
  }
  lc->pace.data = lc;
  uv_poll_start(&lc->pace, UV_READABLE, on_pace);
}

static void on_check(uv_check_t *h) {
  struct loop_ctx *lc = h->data;
  unsigned n = lc->nready;
  lc->nready = 0;
  for (unsigned i = 0; i < n && !lc->finished; i++) {
    struct req *rq = &lc->workers[lc->ready[i]];
    rq->queued = false;
    closed_issue(lc, rq);
  }
  if (lc->stopping && lc->inflight == 0)
    finish(lc);
}

/* Closes the clients and the timer; the loop then runs dry. */
static void finish(struct loop_ctx *lc) {
  if (lc->finished)
    return;
  lc->finished = true;
  lc->stopping = true;
  unsigned n = lc->nslots * lc->per_slot;
  for (unsigned i = 0; i < n; i++) {
    struct chorus_client *c = lc->clients[i];
    lc->clients[i] = NULL;
    chorus_client_close(c); /* pending callbacks run, as ECANCELED */
  }
  uv_timer_stop(&lc->tick);
  uv_close((uv_handle_t *)&lc->tick, on_timer_closed);
  if (lc->pace_fd >= 0) {
    uv_poll_stop(&lc->pace);
    uv_close((uv_handle_t *)&lc->pace, on_pace_closed);
  }
  uv_check_stop(&lc->check);
  uv_close((uv_handle_t *)&lc->check, on_timer_closed);
}

static void on_tick(uv_timer_t *t) {
  struct loop_ctx *lc = t->data;
  struct run *run = lc->run;
  uint64_t now = uv_hrtime();
  if (lc->index == 0 && !run->preload) {
    if (!run->cpu_warm_taken && now >= run->t_warm) {
      run->cpu_warm = run->cluster ? bench_cluster_cpu(run->cluster) : -1.0;
      run->bcpu_warm = cpu_self();
      run->cpu_warm_taken = true;
    }
    if (run->t_kill != 0 && !run->killed && now >= run->t_kill &&
        run->cluster != NULL) {
      bench_cluster_kill(run->cluster, run->kill_index);
      run->killed = true;
    }
  }
  if (lc->finished)
    return;
  if (!lc->stopping) {
    if (lc->workers == NULL) {
      open_issue(lc, now);
    } else {
      for (unsigned i = 0; i < lc->nworkers; i++)
        if (!lc->workers[i].busy && !lc->workers[i].queued)
          closed_issue(lc, &lc->workers[i]);
    }
    if (!may_issue(lc, now)) {
      lc->stopping = true;
      if (lc->index == 0 && !run->preload) {
        run->cpu_end = run->cluster ? bench_cluster_cpu(run->cluster) : -1.0;
        run->bcpu_end = cpu_self();
      }
      lc->stop_at = now;
    }
  }
  if (lc->stopping) {
    if (lc->inflight == 0 || now > lc->stop_at + run->drain_ns)
      finish(lc);
  }
}

static int loop_open(struct loop_ctx *lc, char *errmsg) {
  struct run *run = lc->run;
  const struct options *o = run->o;
  if (uv_loop_init(&lc->loop) != 0)
    return chorus_errf(errmsg, CHORUS_EIO, "uv_loop_init failed");
  uv_timer_init(&lc->loop, &lc->tick);
  lc->tick.data = lc;
  lc->pace_fd = -1;
  uv_check_init(&lc->loop, &lc->check);
  lc->check.data = lc;
  lc->per_slot = run->ring != NULL ? run->ring_nodes : 1;
  lc->clients =
      chorus_calloc((size_t)lc->nslots * lc->per_slot, sizeof *lc->clients);
  lc->ctxs = chorus_calloc(o->keys, sizeof *lc->ctxs);
  lc->value = chorus_malloc(o->value_size);
  if (lc->clients == NULL || lc->ctxs == NULL || lc->value == NULL)
    return chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
  for (size_t i = 0; i < o->value_size; i++)
    lc->value[i] = (uint8_t)('a' + chorus_prng_below(&lc->prng, 26));
  struct chorus_config cfg;
  chorus_config_init(&cfg);
  cfg.cluster = o->cluster;
  cfg.tls_ca = o->tls_ca;
  cfg.tls_cert = o->tls_cert;
  cfg.tls_key = o->tls_key;
  cfg.seed = o->seed + 1000u * lc->index + 1;
  cfg.user = o->user;
  cfg.password = o->password;
  cfg.dc = o->client_dc;
  for (unsigned s = 0; s < lc->nslots; s++) {
    for (unsigned k = 0; k < lc->per_slot; k++) {
      /* token-aware: client k of every slot starts at ring node k; else
       * slots start at successive seeds */
      unsigned global_slot = s * o->threads + lc->index;
      const char *seeds = run->ring != NULL
                              ? run->slot_seeds[k]
                              : run->slot_seeds[global_slot % run->ring_nodes];
      int rc = chorus_client_open_async(
          &lc->loop, seeds, &cfg, &lc->clients[s * lc->per_slot + k], errmsg);
      if (rc != CHORUS_OK)
        return rc;
    }
  }
  return CHORUS_OK;
}

static void loop_close(struct loop_ctx *lc) {
  if (!lc->finished)
    finish(lc);
  uv_run(&lc->loop, UV_RUN_DEFAULT);
  uv_loop_close(&lc->loop);
  chorus_free(lc->clients);
  chorus_free(lc->ctxs);
  chorus_free(lc->value);
  chorus_free(lc->workers);
  chorus_free(lc->ready);
}

static void loop_run(struct loop_ctx *lc) {
  const struct options *o = lc->run->o;
  if (o->rate > 0 && !lc->run->preload) {
    double per_loop = o->rate / (double)o->threads;
    lc->interval_ns = (uint64_t)(1e9 / per_loop);
    if (lc->interval_ns == 0)
      lc->interval_ns = 1;
    /* loops interleave their intended times */
    lc->next_intended =
        lc->run->t_start + lc->interval_ns * lc->index / o->threads;
    uv_timer_start(&lc->tick, on_tick, 0, 1);
    pace_start(lc);
  } else {
    lc->nworkers = lc->nslots * o->pipeline;
    lc->workers = chorus_calloc(lc->nworkers, sizeof *lc->workers);
    lc->ready = chorus_calloc(lc->nworkers, sizeof *lc->ready);
    uv_check_start(&lc->check, on_check);
    for (unsigned i = 0; i < lc->nworkers && lc->workers != NULL; i++) {
      lc->workers[i].lc = lc;
      lc->workers[i].slot = i / o->pipeline;
    }
    uv_timer_start(&lc->tick, on_tick, 0, 10);
  }
  uv_run(&lc->loop, UV_RUN_DEFAULT);
}

static void *thread_main(void *arg) {
  loop_run(arg);
  return NULL;
}

/* ------------------------------------------------------------------------
 * Routing set-up
 * ------------------------------------------------------------------------ */

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = chorus_malloc(n);
  if (d != NULL)
    memcpy(d, s, n);
  return d;
}

/* Splits the seed list into addresses; returns how many. */
static unsigned split_seeds(const char *seeds, char addrs[][64], unsigned max) {
  unsigned n = 0;
  const char *p = seeds;
  while (*p && n < max) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len > 0 && len < 64) {
      memcpy(addrs[n], p, len);
      addrs[n][len] = '\0';
      n++;
    }
    p += len + (e ? 1 : 0);
  }
  return n;
}

/* "a[first],a[first+1],..." rotated. */
static char *rotated(char addrs[][64], unsigned n, unsigned first) {
  char buf[BENCH_MAX_NODES * 64 + 64] = "";
  size_t len = 0;
  for (unsigned k = 0; k < n; k++) {
    int w = snprintf(buf + len, sizeof buf - len, "%s%s", k ? "," : "",
                     addrs[(first + k) % n]);
    if (w < 0 || (size_t)w >= sizeof buf - len)
      break;
    len += (size_t)w;
  }
  return dup_str(buf);
}

static void routing_free(struct run *run) {
  if (run->slot_seeds != NULL)
    for (unsigned i = 0; i < run->ring_nodes; i++)
      chorus_free(run->slot_seeds[i]);
  chorus_free(run->slot_seeds);
  chorus_free(run->ring_client);
  ring_snapshot_free(run->ring);
  run->slot_seeds = NULL;
  run->ring_client = NULL;
  run->ring = NULL;
}

/* Token-aware routing from one node's RING_REPLY; falls back to spreading
 * the slots over the seeds when the ring cannot be read or built. */
static void routing_setup(struct run *run, const char *seeds) {
  const struct options *o = run->o;
  char addrs[BENCH_MAX_NODES][64];
  unsigned n = split_seeds(seeds, addrs, BENCH_MAX_NODES);
  if (o->token_aware) {
    struct chorus_config cfg;
    chorus_config_init(&cfg);
    cfg.cluster = o->cluster;
    cfg.tls_ca = o->tls_ca;
    cfg.tls_cert = o->tls_cert;
    cfg.tls_key = o->tls_key;
    cfg.seed = 7;
    cfg.user = o->user;
    cfg.password = o->password;
    struct chorus_client *cl = NULL;
    struct chorus_result res = {0};
    if (chorus_client_open(seeds, &cfg, &cl, NULL) == CHORUS_OK &&
        chorus_ring(cl, &res) == CHORUS_OK && res.nnodes > 0 &&
        res.nnodes <= BENCH_MAX_NODES &&
        chorus__ring_build(&res, &run->ring) == CHORUS_OK) {
      /* one client per ring node, whose seed list starts at that node
       * and then goes on to the others (failover after a kill) */
      char raddrs[BENCH_MAX_NODES][64];
      size_t count = ring_snapshot_node_count(run->ring);
      for (size_t i = 0; i < count; i++) {
        const struct ring_node *rn = ring_snapshot_node(run->ring, i);
        for (size_t k = 0; k < res.nnodes; k++)
          if (res.nodes[k].id == rn->id)
            snprintf(raddrs[i], 64, "%s", res.nodes[k].addr);
      }
      run->ring_nodes = (unsigned)count;
      run->slot_seeds = chorus_calloc(count, sizeof *run->slot_seeds);
      run->ring_client = chorus_calloc(count, sizeof *run->ring_client);
      for (size_t i = 0; i < count; i++) {
        run->slot_seeds[i] = rotated(raddrs, (unsigned)count, (unsigned)i);
        run->ring_client[i] = (long)i;
      }
    }
    chorus_result_free(&res);
    chorus_client_close(cl);
    if (run->ring != NULL)
      return;
    fprintf(stderr,
            "chorus-bench: no ring from %s; spreading connections "
            "over the seeds instead\n",
            seeds);
  }
  run->ring_nodes = n;
  run->slot_seeds = chorus_calloc(n, sizeof *run->slot_seeds);
  for (unsigned i = 0; i < n; i++)
    run->slot_seeds[i] = rotated(addrs, n, i);
}

/* ------------------------------------------------------------------------
 * One run
 * ------------------------------------------------------------------------ */

/* Runs the workload (or, with @preload, writes every key once) at @set and
 * fills @out. */
static int run_once(const struct options *o, struct bench_cluster *cluster,
                    const char *seeds, const struct setting *set, bool preload,
                    struct result *out, char *errmsg) {
  struct run run;
  memset(&run, 0, sizeof run);
  run.o = o;
  run.set = *set;
  run.cluster = cluster;
  run.preload = preload;
  if (o->zipf)
    bench_zipf_init(&run.zipf, o->keys, o->theta);
  routing_setup(&run, seeds);
  if (run.slot_seeds == NULL)
    return chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");

  unsigned nt = o->threads;
  struct loop_ctx **lcs = chorus_calloc(nt, sizeof *lcs);
  struct stats *sts = chorus_calloc(nt, sizeof *sts);
  int rc = lcs && sts ? CHORUS_OK : CHORUS_ENOMEM;
  for (unsigned i = 0; i < nt && rc == CHORUS_OK; i++) {
    lcs[i] = chorus_calloc(1, sizeof **lcs);
    if (lcs[i] == NULL) {
      rc = CHORUS_ENOMEM;
      break;
    }
    struct loop_ctx *lc = lcs[i];
    lc->run = &run;
    lc->index = i;
    lc->st = &sts[i];
    stats_init(lc->st);
    chorus_prng_seed(&lc->prng, o->seed * 7919u + i + (preload ? 99 : 0));
    lc->nslots = o->conns / nt + (i < o->conns % nt ? 1 : 0);
    if (lc->nslots == 0)
      lc->nslots = 1;
    lc->preload_next = i;
    if (o->ops > 0 && !preload)
      lc->quota = o->ops / nt + (i < o->ops % nt ? 1 : 0);
    rc = loop_open(lc, errmsg);
  }
  if (rc == CHORUS_OK) {
    uint64_t now = uv_hrtime();
    run.t_start = now;
    run.t_warm = preload ? now : now + (uint64_t)(o->warmup * 1e9);
    run.t_end = o->ops > 0 || preload
                    ? UINT64_MAX / 2
                    : run.t_warm + (uint64_t)(o->duration * 1e9);
    if (o->kill_at > 0 && cluster != NULL && !preload) {
      run.t_kill = run.t_warm + (uint64_t)(o->kill_at * 1e9);
      run.kill_index = cluster->count - 1;
    }
    uint64_t tmo = o->timeout_ms ? o->timeout_ms : 2000;
    run.drain_ns = (tmo + 3000) * 1000000ull;
    pthread_t *th = chorus_calloc(nt, sizeof *th);
    for (unsigned i = 1; i < nt; i++)
      pthread_create(&th[i], NULL, thread_main, lcs[i]);
    loop_run(lcs[0]);
    for (unsigned i = 1; i < nt; i++)
      pthread_join(th[i], NULL);
    chorus_free(th);
  }
  /* the measured span: up to the end time, or the last completion */
  uint64_t last = 0;
  for (unsigned i = 0; i < nt; i++)
    if (lcs && lcs[i] && lcs[i]->last_done > last)
      last = lcs[i]->last_done;
  /* requests started in the window and completed after it stretch it: an
   * overloaded open loop must not report its offered rate as throughput */
  uint64_t end = o->ops > 0 || last > run.t_end ? last : run.t_end;
  if (end < run.t_warm)
    end = run.t_warm;
  if (!run.cpu_warm_taken) { /* a run shorter than one tick */
    run.cpu_warm = cluster ? bench_cluster_cpu(cluster) : -1.0;
    run.bcpu_warm = cpu_self();
  }
  if (o->ops > 0 || run.cpu_end == 0.0) {
    run.cpu_end = cluster ? bench_cluster_cpu(cluster) : -1.0;
    run.bcpu_end = cpu_self();
  }
  memset(out, 0, sizeof *out);
  out->set = *set;
  stats_init(&out->st);
  for (unsigned i = 0; i < nt; i++) {
    if (lcs && lcs[i]) {
      loop_close(lcs[i]);
      out->dropped += lcs[i]->dropped;
      stats_merge(&out->st, &sts[i]);
      chorus_free(lcs[i]);
    }
  }
  chorus_free(lcs);
  chorus_free(sts);
  routing_free(&run);
  out->killed = run.killed;
  if (run.killed) {
    out->phase_s[0] = (double)(run.t_kill - run.t_warm) * 1e-9;
    out->phase_s[1] = (double)(end - run.t_kill) * 1e-9;
  } else {
    out->phase_s[0] = (double)(end - run.t_warm) * 1e-9;
  }
  out->node_cpu_s = cluster ? run.cpu_end - run.cpu_warm : -1.0;
  out->bench_cpu_s = run.bcpu_end - run.bcpu_warm;
  if (rc != CHORUS_OK && errmsg[0] == '\0')
    chorus_errf(errmsg, rc, "%s", chorus_strerror(rc));
  return rc;
}

/* ------------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------------ */

static uint64_t total_ok(const struct result *r, int phase) {
  uint64_t n = 0;
  for (int k = 0; k < OP_KINDS; k++)
    n += r->st.ok[phase][k];
  return n;
}

static uint64_t total_err(const struct result *r, int phase) {
  uint64_t n = 0;
  for (int k = 0; k < OP_KINDS; k++)
    n += stats_errors(&r->st, phase, k);
  return n;
}

static void all_hist(const struct result *r, int phase, struct bench_hist *h) {
  bench_hist_reset(h);
  for (int k = 0; k < OP_KINDS; k++)
    bench_hist_merge(h, &r->st.hist[phase][k]);
}

static double ms(uint64_t ns) {
  return (double)ns / 1e6;
}

static const char *level_text(int32_t v, char *buf) {
  const char *n = chorus_level_name(v);
  if (n != NULL)
    return n;
  snprintf(buf, 16, "%d", (int)v);
  return buf;
}

static double ops_per_s(const struct result *r, int phase) {
  return r->phase_s[phase] > 0 ? (double)total_ok(r, phase) / r->phase_s[phase]
                               : 0.0;
}

static double cpu_us_per_op(const struct result *r) {
  uint64_t n =
      total_ok(r, 0) + total_ok(r, 1) + total_err(r, 0) + total_err(r, 1);
  return r->node_cpu_s >= 0 && n > 0 ? r->node_cpu_s * 1e6 / (double)n : -1.0;
}

static void print_header(const struct options *o, const struct setting *set,
                         const char *seeds) {
  char rb[16], wb[16];
  printf("\nchorus-bench %s: %s, ", set->label, wl_names[o->wl]);
  if (o->rate > 0)
    printf("open loop at %.0f ops/s over %u connections", o->rate, o->conns);
  else
    printf("closed loop, %u connections x %u in flight", o->conns, o->pipeline);
  printf(", %u thread%s\n", o->threads, o->threads > 1 ? "s" : "");
  printf("  keys %s over %" PRIu64 ", values %zu B, R=%s W=%s, ",
         o->zipf ? "zipfian" : "uniform", o->keys, o->value_size,
         level_text(set->r, rb), level_text(set->w, wb));
  if (o->ops > 0)
    printf("%" PRIu64 " ops", o->ops);
  else
    printf("%.1f s", o->duration);
  printf(" after %.1f s warm-up; nodes %s\n", o->warmup, seeds);
}

static void print_table(const struct result *r) {
  static const char *const phase_names[PHASES] = {"before kill", "after kill"};
  for (int p = 0; p < (r->killed ? PHASES : 1); p++) {
    uint64_t okc = total_ok(r, p), errc = total_err(r, p);
    if (r->killed)
      printf("  -- %s (%.1f s)\n", phase_names[p], r->phase_s[p]);
    printf("  throughput %.0f ops/s: %" PRIu64 " ok, %" PRIu64
           " errors, success %.3f%%",
           ops_per_s(r, p), okc, errc,
           okc + errc ? 100.0 * (double)okc / (double)(okc + errc) : 0.0);
    if (r->st.not_found[p])
      printf(", %" PRIu64 " reads not found", r->st.not_found[p]);
    if (r->st.cas_not_applied[p])
      printf(", %" PRIu64 " cas not applied", r->st.cas_not_applied[p]);
    printf("\n");
    printf("  %-12s %10s %10s %9s %9s %9s %9s %9s\n", "op (ms)", "count",
           "ops/s", "p50", "p90", "p99", "p99.9", "max");
    struct bench_hist *all = chorus_malloc(sizeof *all);
    for (int k = 0; k <= OP_KINDS; k++) {
      const struct bench_hist *h;
      if (k == OP_KINDS) {
        if (all == NULL)
          break;
        all_hist(r, p, all);
        h = all;
      } else {
        h = &r->st.hist[p][k];
      }
      if (h->count == 0)
        continue;
      printf("  %-12s %10" PRIu64 " %10.0f %9.3f %9.3f %9.3f %9.3f %9.3f\n",
             k == OP_KINDS ? "all" : op_names[k], h->count,
             r->phase_s[p] > 0 ? (double)h->count / r->phase_s[p] : 0.0,
             ms(bench_hist_percentile(h, 50)), ms(bench_hist_percentile(h, 90)),
             ms(bench_hist_percentile(h, 99)),
             ms(bench_hist_percentile(h, 99.9)), ms(h->max));
    }
    chorus_free(all);
    for (int k = 0; k < OP_KINDS; k++)
      for (int e = 0; e < ERR_SLOTS; e++)
        if (r->st.err[p][k][e])
          printf("  error %-12s %-22s %" PRIu64 "\n", op_names[k],
                 e == ERR_SLOTS - 1 ? "other" : chorus_errname(-e),
                 r->st.err[p][k][e]);
    if (r->st.maybe_applied[p])
      printf("  writes that may have applied: %" PRIu64 "\n",
             r->st.maybe_applied[p]);
  }
  if (r->st.lag.count)
    printf("  open-loop send lag (submit - intended time, ms): p50 %.3f p90 "
           "%.3f p99 %.3f p99.9 %.3f max %.3f\n",
           ms(bench_hist_percentile(&r->st.lag, 50)),
           ms(bench_hist_percentile(&r->st.lag, 90)),
           ms(bench_hist_percentile(&r->st.lag, 99)),
           ms(bench_hist_percentile(&r->st.lag, 99.9)), ms(r->st.lag.max));
  if (r->dropped)
    printf("  requests the library refused at once: %" PRIu64 "\n", r->dropped);
  if (r->node_cpu_s >= 0)
    printf("  node CPU %.2f s = %.1f us/op; bench CPU %.2f s\n", r->node_cpu_s,
           cpu_us_per_op(r), r->bench_cpu_s);
  else
    printf("  bench CPU %.2f s (node CPU unknown: not started here)\n",
           r->bench_cpu_s);
  fflush(stdout);
}

static void json_hist(FILE *f, const struct bench_hist *h, double secs) {
  fprintf(f,
          "{\"count\":%" PRIu64 ",\"ops_per_s\":%.1f,\"mean\":%.4f,"
          "\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,\"p999\":%.4f,"
          "\"max\":%.4f}",
          h->count, secs > 0 ? (double)h->count / secs : 0.0,
          bench_hist_mean(h) / 1e6, ms(bench_hist_percentile(h, 50)),
          ms(bench_hist_percentile(h, 90)), ms(bench_hist_percentile(h, 99)),
          ms(bench_hist_percentile(h, 99.9)), ms(h->max));
}

static void json_result(FILE *f, const struct options *o,
                        const struct result *r) {
  static const char *const pn[PHASES] = {"before", "after"};
  char rb[16], wb[16];
  fprintf(f,
          "{\"label\":\"%s\",\"workload\":\"%s\",\"mode\":\"%s\","
          "\"connections\":%u,\"pipeline\":%u,\"rate\":%.0f,\"threads\":%u,"
          "\"keys\":%" PRIu64 ",\"distribution\":\"%s\",\"value_size\":%zu,"
          "\"r\":\"%s\",\"w\":\"%s\",\"node_cpu_s\":%.3f,"
          "\"cpu_us_per_op\":%.2f,\"bench_cpu_s\":%.3f,\"dropped\":%" PRIu64
          ",\"phases\":[",
          r->set.label, wl_names[o->wl], o->rate > 0 ? "open" : "closed",
          o->conns, o->pipeline, o->rate, o->threads, o->keys,
          o->zipf ? "zipfian" : "uniform", o->value_size,
          level_text(r->set.r, rb), level_text(r->set.w, wb), r->node_cpu_s,
          cpu_us_per_op(r), r->bench_cpu_s, r->dropped);
  for (int p = 0; p < (r->killed ? PHASES : 1); p++) {
    uint64_t okc = total_ok(r, p), errc = total_err(r, p);
    fprintf(f,
            "%s{\"phase\":\"%s\",\"seconds\":%.3f,\"ok\":%" PRIu64
            ",\"errors\":%" PRIu64 ",\"ops_per_s\":%.1f,\"success_rate\":%.5f,"
            "\"not_found\":%" PRIu64 ",\"latency_ms\":{",
            p ? "," : "", r->killed ? pn[p] : "all", r->phase_s[p], okc, errc,
            ops_per_s(r, p),
            okc + errc ? (double)okc / (double)(okc + errc) : 0.0,
            r->st.not_found[p]);
    bool first = true;
    for (int k = 0; k < OP_KINDS; k++) {
      if (r->st.hist[p][k].count == 0)
        continue;
      fprintf(f, "%s\"%s\":", first ? "" : ",", op_names[k]);
      json_hist(f, &r->st.hist[p][k], r->phase_s[p]);
      first = false;
    }
    struct bench_hist *all = chorus_malloc(sizeof *all);
    if (all != NULL) {
      all_hist(r, p, all);
      fprintf(f, "%s\"all\":", first ? "" : ",");
      json_hist(f, all, r->phase_s[p]);
      chorus_free(all);
    }
    fprintf(f, "},\"errors_by_kind\":{");
    first = true;
    for (int k = 0; k < OP_KINDS; k++)
      for (int e = 0; e < ERR_SLOTS; e++)
        if (r->st.err[p][k][e]) {
          fprintf(f, "%s\"%s %s\":%" PRIu64, first ? "" : ",", op_names[k],
                  e == ERR_SLOTS - 1 ? "other" : chorus_errname(-e),
                  r->st.err[p][k][e]);
          first = false;
        }
    fprintf(f, "}}");
  }
  fprintf(f, "]}");
}

static void csv_rows(FILE *f, const struct options *o, const struct result *r) {
  static const char *const pn[PHASES] = {"before", "after"};
  char rb[16], wb[16];
  struct bench_hist *all = chorus_malloc(sizeof *all);
  for (int p = 0; p < (r->killed ? PHASES : 1); p++) {
    uint64_t okc = total_ok(r, p), errc = total_err(r, p);
    for (int k = 0; k <= OP_KINDS; k++) {
      const struct bench_hist *h;
      if (k == OP_KINDS) {
        if (all == NULL)
          break;
        all_hist(r, p, all);
        h = all;
      } else {
        h = &r->st.hist[p][k];
      }
      uint64_t e = k == OP_KINDS ? errc : stats_errors(&r->st, p, k);
      if (h->count == 0 && e == 0)
        continue;
      fprintf(f,
              "\"%s\",%s,%s,%u,%u,%.0f,%s,%s,%s,%s,%" PRIu64 ",%" PRIu64
              ",%.1f,%.5f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.3f,%.2f\n",
              r->set.label, wl_names[o->wl], o->rate > 0 ? "open" : "closed",
              o->conns, o->pipeline, o->rate, level_text(r->set.r, rb),
              level_text(r->set.w, wb), r->killed ? pn[p] : "all",
              k == OP_KINDS ? "all" : op_names[k], h->count, e,
              r->phase_s[p] > 0 ? (double)h->count / r->phase_s[p] : 0.0,
              k == OP_KINDS && okc + errc
                  ? (double)okc / (double)(okc + errc)
                  : (h->count + e ? (double)h->count / (double)(h->count + e)
                                  : 0.0),
              bench_hist_mean(h) / 1e6, ms(bench_hist_percentile(h, 50)),
              ms(bench_hist_percentile(h, 90)),
              ms(bench_hist_percentile(h, 99)),
              ms(bench_hist_percentile(h, 99.9)), ms(h->max), r->node_cpu_s,
              cpu_us_per_op(r));
    }
  }
  chorus_free(all);
}

static const char csv_header[] =
    "label,workload,mode,connections,pipeline,rate,r,w,phase,op,ok,errors,"
    "ops_per_s,success_rate,mean_ms,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,"
    "node_cpu_s,cpu_us_per_op\n";

/* ------------------------------------------------------------------------
 * Staleness (PBS t-visibility)
 * ------------------------------------------------------------------------ */

static const unsigned stale_t_ms[] = {0, 1, 2, 5, 10, 20, 50};
#define STALE_TS (sizeof stale_t_ms / sizeof stale_t_ms[0])
/* Probes in flight. Few, and each starts after a random 0..3 ms pause: a
 * wave of probes sent together is acknowledged and replicated together, so
 * they would see or miss their writes as one (correlated trials; the first
 * version, 16 in lockstep, measured only multiples of 16). */
#define STALE_PROBES 4

struct stale_result {
  struct setting set;
  uint64_t trials[STALE_TS], seen[STALE_TS], failed[STALE_TS];
};

struct stale_ctx;

/* One probe's life: WRITE -> (ack) WAIT t ms -> READ -> (reply) done, then
 * the next trial, until this t has its trials. */
struct probe {
  struct stale_ctx *sc;
  uv_timer_t timer;
  int next; /* 0 nothing, 1 read, 2 start: done at the check phase */
  uint64_t serial;
  bool active;
  char key[96];
  char value[24];
};

struct stale_ctx {
  const struct options *o;
  uv_loop_t loop;
  uv_check_t check;
  struct chorus_client *writer, *reader;
  struct setting set;
  unsigned t_index;
  uint64_t started, done, serial_base;
  struct stale_result *out;
  struct chorus_prng prng;
  struct probe probes[STALE_PROBES];
};

static void probe_start(struct probe *p);
static void probe_write(uv_timer_t *t);

static void probe_read_done(struct chorus_client *c, struct chorus_result *res,
                            void *arg) {
  struct probe *p = arg;
  struct stale_ctx *sc = p->sc;
  if (res->status != CHORUS_OK) {
    sc->out->failed[sc->t_index]++;
  } else {
    bool seen = false;
    size_t vlen = strlen(p->value);
    for (size_t i = 0; i < res->nvalues; i++)
      if (res->values[i].len == vlen &&
          memcmp(res->values[i].ptr, p->value, vlen) == 0)
        seen = true;
    sc->out->trials[sc->t_index]++;
    sc->out->seen[sc->t_index] += seen;
  }
  sc->done++;
  p->active = false;
  p->next = 2; /* see on_done: nothing is submitted from a callback */
}

static void probe_read(struct probe *p) {
  struct stale_ctx *sc = p->sc;
  struct chorus_opts opts = {0};
  opts.r = sc->set.r;
  opts.read_repair = CHORUS_RR_OFF; /* a probe must not heal what it sees */
  if (chorus_get_async(sc->reader, p->key, strlen(p->key), &opts,
                       probe_read_done, p) != CHORUS_OK) {
    sc->out->failed[sc->t_index]++;
    sc->done++;
    p->active = false;
  }
}

static void probe_timer(uv_timer_t *t) {
  probe_read(t->data);
}

static void probe_write_done(struct chorus_client *c, struct chorus_result *res,
                             void *arg) {
  struct probe *p = arg;
  struct stale_ctx *sc = p->sc;
  if (res->status != CHORUS_OK) {
    sc->out->failed[sc->t_index]++;
    sc->done++;
    p->active = false;
    p->next = 2;
    return;
  }
  unsigned t = stale_t_ms[sc->t_index];
  if (t == 0)
    p->next = 1;
  else
    uv_timer_start(&p->timer, probe_timer, t, 0);
}

static void probe_start(struct probe *p) {
  struct stale_ctx *sc = p->sc;
  if (sc->started >= sc->o->stale_trials)
    return;
  sc->started++;
  p->active = true;
  p->serial = sc->serial_base + sc->started;
  snprintf(p->key, sizeof p->key, "pbs:%s:%u:%" PRIu64, sc->set.label,
           stale_t_ms[sc->t_index], p->serial);
  for (char *q = p->key; *q; q++)
    if (*q == ' ')
      *q = '_';
  snprintf(p->value, sizeof p->value, "v%" PRIu64, p->serial);
  uv_timer_start(&p->timer, probe_write, chorus_prng_below(&sc->prng, 4), 0);
}

static void probe_write(uv_timer_t *t) {
  struct probe *p = t->data;
  struct stale_ctx *sc = p->sc;
  struct chorus_opts opts = {0};
  opts.w = sc->set.w;
  if (chorus_put_async(sc->writer, p->key, strlen(p->key), p->value,
                       strlen(p->value), NULL, 0, &opts, probe_write_done,
                       p) != CHORUS_OK) {
    sc->out->failed[sc->t_index]++;
    sc->done++;
    p->active = false;
  }
}

static void noop_close(uv_handle_t *h) {
  (void)h;
}

static void stale_check(uv_check_t *h) {
  struct stale_ctx *sc = h->data;
  for (unsigned i = 0; i < STALE_PROBES; i++) {
    struct probe *p = &sc->probes[i];
    int next = p->next;
    p->next = 0;
    if (next == 1)
      probe_read(p);
    else if (next == 2)
      probe_start(p);
  }
}

/* Writer through seeds[0], reader through seeds[1] (another node). */
static int run_staleness(const struct options *o, char addrs[][64],
                         unsigned naddrs, const struct setting *set,
                         struct stale_result *out, char *errmsg) {
  struct stale_ctx *sc = chorus_calloc(1, sizeof *sc);
  if (sc == NULL)
    return chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
  memset(out, 0, sizeof *out);
  out->set = *set;
  sc->o = o;
  sc->set = *set;
  sc->out = out;
  sc->serial_base = (uint64_t)time(NULL) * 1000000u;
  chorus_prng_seed(&sc->prng, o->seed + 4242);
  uv_loop_init(&sc->loop);
  uv_check_init(&sc->loop, &sc->check);
  sc->check.data = sc;
  uv_check_start(&sc->check, stale_check);
  char *wseeds = rotated(addrs, naddrs, 0);
  char *rseeds = rotated(addrs, naddrs, naddrs > 1 ? 1 : 0);
  struct chorus_config cfg;
  chorus_config_init(&cfg);
  cfg.cluster = o->cluster;
  cfg.tls_ca = o->tls_ca;
  cfg.tls_cert = o->tls_cert;
  cfg.tls_key = o->tls_key;
  cfg.seed = o->seed + 77;
  cfg.user = o->user;
  cfg.password = o->password;
  int rc =
      chorus_client_open_async(&sc->loop, wseeds, &cfg, &sc->writer, errmsg);
  if (rc == CHORUS_OK)
    rc = chorus_client_open_async(&sc->loop, rseeds, &cfg, &sc->reader, errmsg);
  for (unsigned i = 0; i < STALE_PROBES; i++) {
    sc->probes[i].sc = sc;
    uv_timer_init(&sc->loop, &sc->probes[i].timer);
    sc->probes[i].timer.data = &sc->probes[i];
  }
  for (unsigned t = 0; t < STALE_TS && rc == CHORUS_OK; t++) {
    sc->t_index = t;
    sc->started = sc->done = 0;
    sc->serial_base += 1000000u;
    for (unsigned i = 0; i < STALE_PROBES; i++)
      probe_start(&sc->probes[i]);
    while (sc->done < sc->started)
      uv_run(&sc->loop, UV_RUN_ONCE);
  }
  chorus_client_close(sc->writer);
  chorus_client_close(sc->reader);
  for (unsigned i = 0; i < STALE_PROBES; i++)
    uv_close((uv_handle_t *)&sc->probes[i].timer, noop_close);
  uv_close((uv_handle_t *)&sc->check, noop_close);
  uv_run(&sc->loop, UV_RUN_DEFAULT);
  uv_loop_close(&sc->loop);
  chorus_free(wseeds);
  chorus_free(rseeds);
  chorus_free(sc);
  return rc;
}

static void print_staleness(const struct stale_result *s, size_t n) {
  printf("\nPBS t-visibility: P(read sees the acknowledged write) after t "
         "ms, write via one node, read via another\n");
  printf("  %-22s", "setting");
  for (size_t t = 0; t < STALE_TS; t++)
    printf(" %7u ms", stale_t_ms[t]);
  printf("   trials, failed\n");
  for (size_t i = 0; i < n; i++) {
    printf("  %-22s", s[i].set.label);
    uint64_t trials = 0, failed = 0;
    for (size_t t = 0; t < STALE_TS; t++) {
      printf(" %9.4f", s[i].trials[t]
                           ? (double)s[i].seen[t] / (double)s[i].trials[t]
                           : 0.0);
      trials += s[i].trials[t];
      failed += s[i].failed[t];
    }
    printf("   %" PRIu64 ", %" PRIu64 "\n", trials, failed);
  }
  fflush(stdout);
}

static void json_staleness(FILE *f, const struct stale_result *s, size_t n) {
  fprintf(f, "\"staleness\":[");
  for (size_t i = 0; i < n; i++) {
    fprintf(f, "%s{\"setting\":\"%s\",\"points\":[", i ? "," : "",
            s[i].set.label);
    for (size_t t = 0; t < STALE_TS; t++)
      fprintf(f,
              "%s{\"t_ms\":%u,\"trials\":%" PRIu64 ",\"seen\":%" PRIu64
              ",\"failed\":%" PRIu64 "}",
              t ? "," : "", stale_t_ms[t], s[i].trials[t], s[i].seen[t],
              s[i].failed[t]);
    fprintf(f, "]}");
  }
  fprintf(f, "]");
}

/* ------------------------------------------------------------------------
 * Options parsing and main
 * ------------------------------------------------------------------------ */

static const char usage_text[] =
    "usage: chorus-bench (--start-cluster N | --seeds H:P,...) [options]\n"
    "\n"
    "cluster\n"
    "  --start-cluster N      start N local chorusd (stopped at the end)\n"
    "  --seeds H:P[,H:P...]   use an existing cluster\n"
    "  --dcs D                datacenters of a started cluster (1 or 2)\n"
    "  --replicas SPEC        default 3, or dc0:3,dc1:3 with --dcs 2\n"
    "  --durability MODE      none | group (default none)\n"
    "  --chorusd PATH         default: node/chorusd next to this build\n"
    "  --port-base P          first port of a started cluster\n"
    "  --cluster NAME         cluster name (default chorus)\n"
    "  --tls DIR              TLS 1.3 from a scripts/mkcerts folder: a\n"
    "                         started cluster runs --client-tls required\n"
    "                         and --peer-tls required with DIR/node.pem;\n"
    "                         clients verify against DIR/ca.pem\n"
    "  --peer-tls MODE        with --tls: required (default) or off\n"
    "  --tls-ca FILE, --tls-cert FILE, --tls-key FILE\n"
    "                         the clients' TLS (an existing cluster)\n"
    "  --user NAME            clients log in as NAME (password from\n"
    "                         CHORUS_PASSWORD); a started cluster runs\n"
    "                         --auth required with NAME its first admin\n"
    "  --wan-rtt MS           with --dcs 2: 2 x 3 nodes (replicas\n"
    "                         dc1:3,dc2:3) in two network namespaces joined\n"
    "                         by chorus-wan at MS round trip; clients in\n"
    "                         each datacenter (their dc set) run every level\n"
    "                         ONE..ALL for --duration; one row per level and\n"
    "                         client dc. Root and /dev/net/tun, else exit 77;\n"
    "                         chorus-wan from $CHORUS_WAN or this build\n"
    "  --check                with --wan-rtt: exit 1 unless every row has\n"
    "                         successes, LOCAL_ONE and LOCAL_QUORUM p50 are\n"
    "                         under RTT/2 and QUORUM, EACH_QUORUM, ALL p50\n"
    "                         at least the RTT (each pays one WAN trip)\n"
    "load\n"
    "  -c, --connections C    connection slots (default 4)\n"
    "  -p, --pipeline P       requests in flight per slot (default 1)\n"
    "  --rate OPS             open loop at OPS requests/s (latency from the\n"
    "                         intended send time)\n"
    "  --threads T            uv loops on T threads (default 1)\n"
    "  -d, --duration S       measured seconds (default 10)\n"
    "  --warmup S             seconds not counted (default 2)\n"
    "  -n, --ops N            stop after N counted requests instead\n"
    "  --no-token-aware       spread slots over nodes, ignore the ring\n"
    "workload\n"
    "  --workload W           rw50 | rw95 | ro | wo | counter | set |\n"
    "                         cas (if-value increments, SERIAL) |\n"
    "                         lock (closed loop: each worker acquires a\n"
    "                         lock of its key, then releases it)\n"
    "  --keys K               key space (default 100000)\n"
    "  --zipf [THETA]         zipfian keys (Gray et al.; default 0.99)\n"
    "  --uniform              uniform keys (default)\n"
    "  --value-size B         bytes per value (default 100)\n"
    "  --preload              write every key once first (not measured)\n"
    "  --read LEVEL, --write LEVEL   ONE..EACH_QUORUM or 1..64 (QUORUM)\n"
    "  --timeout MS           per-request timeout (node default)\n"
    "experiments\n"
    "  --sweep                every R,W in 1..3 (with --dcs 2: ONE,\n"
    "                         LOCAL_QUORUM, QUORUM, EACH_QUORUM)\n"
    "  --kill-node-at S       kill -9 the last started node S s into the\n"
    "                         measured run; report before/after\n"
    "  --staleness            PBS t-visibility per setting\n"
    "  --stale-trials N       trials per t (default 200)\n"
    "output\n"
    "  --json                 one JSON document on stdout instead of tables\n"
    "  --csv FILE             one row per run, phase and op type\n"
    "  --svg FILE             sweep chart (default chorus-sweep.svg)\n"
    "  --label TEXT           label of a single run\n"
    "  --seed N               PRNG seed (default 1)\n";
/* apart: C99 promises string literals of 4095 bytes only */
static const char usage_scaling[] =
    "scaling (issue 27: how cost grows; a fresh cluster per row, its keys\n"
    "preloaded through the nodes, then --workload for --duration; rows\n"
    "default to 50 connections, 5 s, --start-cluster 3)\n"
    "  --scaling DIM          dataset | values | nodes | conns | all\n"
    "                         (repeatable); one table per dimension\n"
    "  --scaling-keys LIST    dataset rows (default 100000,1000000,10000000)\n"
    "  --scaling-values LIST  value sizes, bytes (default\n"
    "                         100,4096,65536,1048576)\n"
    "  --scaling-nodes LIST   cluster sizes at --replicas (default 3,5,7)\n"
    "  --scaling-conns LIST   connections (default 1,10,50,200,1000)\n"
    "  --scaling-data-mb MB   values rows: --keys cut to MB / value size\n"
    "                         (default 256)\n"
    "  --scaling-preload C    the preload's requests in flight, one per\n"
    "                         connection (default 32)\n"
    "  --check                exit 1 unless every row has successes and\n"
    "                         no errors\n";

static double parse_double(const char *s, const char *what, double lo,
                           double hi) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || !(v >= lo && v <= hi)) {
    fprintf(stderr, "chorus-bench: %s: \"%s\" is not in %g..%g\n", what, s, lo,
            hi);
    exit(2);
  }
  return v;
}

static int32_t parse_level(const char *s, const char *what) {
  int32_t v;
  if (chorus_level_parse(s, &v) != CHORUS_OK) {
    fprintf(stderr, "chorus-bench: %s: \"%s\" is not a level\n", what, s);
    exit(2);
  }
  return v;
}

static const char *short_level(int32_t v, char *buf) {
  switch (v) {
  case CHORUS_LOCAL_QUORUM:
    return "LQ";
  case CHORUS_EACH_QUORUM:
    return "EQ";
  case CHORUS_QUORUM:
    return "Q";
  default:
    return level_text(v, buf);
  }
}

static void make_label(struct setting *s) {
  char a[16], b[16];
  snprintf(s->label, sizeof s->label, "R=%s W=%s", short_level(s->r, a),
           short_level(s->w, b));
}

static void default_chorusd(char *buf, size_t cap) {
  char self[400];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    snprintf(buf, cap, "chorusd");
    return;
  }
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (slash != NULL)
    *slash = '\0';
  /* build/bench/chorus/chorus-bench -> build/node/chorusd */
  snprintf(buf, cap, "%s/../../node/chorusd", self);
}

static void parse_options(int argc, char **argv, struct options *o) {
  enum {
    O_SEEDS = 256,
    O_START,
    O_DCS,
    O_REPL,
    O_DUR,
    O_CHORUSD,
    O_PORT,
    O_CLUSTER,
    O_RATE,
    O_THREADS,
    O_WARMUP,
    O_NOTA,
    O_WL,
    O_KEYS,
    O_ZIPF,
    O_UNIFORM,
    O_VSIZE,
    O_PRELOAD,
    O_READ,
    O_WRITE,
    O_TIMEOUT,
    O_SWEEP,
    O_KILL,
    O_STALE,
    O_STRIALS,
    O_JSON,
    O_CSV,
    O_SVG,
    O_LABEL,
    O_SEED,
    O_WAN,
    O_CHECK,
    O_TLS,
    O_PEER_TLS,
    O_TLS_CA,
    O_TLS_CERT,
    O_TLS_KEY,
    O_USER,
    O_SCALING,
    O_SKEYS,
    O_SVALUES,
    O_SNODES,
    O_SCONNS,
    O_SDATA,
    O_SPRE
  };
  static const struct option longopts[] = {
      {"seeds", required_argument, NULL, O_SEEDS},
      {"start-cluster", required_argument, NULL, O_START},
      {"dcs", required_argument, NULL, O_DCS},
      {"replicas", required_argument, NULL, O_REPL},
      {"durability", required_argument, NULL, O_DUR},
      {"chorusd", required_argument, NULL, O_CHORUSD},
      {"port-base", required_argument, NULL, O_PORT},
      {"cluster", required_argument, NULL, O_CLUSTER},
      {"connections", required_argument, NULL, 'c'},
      {"pipeline", required_argument, NULL, 'p'},
      {"rate", required_argument, NULL, O_RATE},
      {"threads", required_argument, NULL, O_THREADS},
      {"duration", required_argument, NULL, 'd'},
      {"warmup", required_argument, NULL, O_WARMUP},
      {"ops", required_argument, NULL, 'n'},
      {"no-token-aware", no_argument, NULL, O_NOTA},
      {"workload", required_argument, NULL, O_WL},
      {"keys", required_argument, NULL, O_KEYS},
      {"zipf", optional_argument, NULL, O_ZIPF},
      {"uniform", no_argument, NULL, O_UNIFORM},
      {"value-size", required_argument, NULL, O_VSIZE},
      {"preload", no_argument, NULL, O_PRELOAD},
      {"read", required_argument, NULL, O_READ},
      {"write", required_argument, NULL, O_WRITE},
      {"timeout", required_argument, NULL, O_TIMEOUT},
      {"sweep", no_argument, NULL, O_SWEEP},
      {"kill-node-at", required_argument, NULL, O_KILL},
      {"staleness", no_argument, NULL, O_STALE},
      {"stale-trials", required_argument, NULL, O_STRIALS},
      {"json", no_argument, NULL, O_JSON},
      {"csv", required_argument, NULL, O_CSV},
      {"svg", required_argument, NULL, O_SVG},
      {"label", required_argument, NULL, O_LABEL},
      {"seed", required_argument, NULL, O_SEED},
      {"wan-rtt", required_argument, NULL, O_WAN},
      {"check", no_argument, NULL, O_CHECK},
      {"tls", required_argument, NULL, O_TLS},
      {"peer-tls", required_argument, NULL, O_PEER_TLS},
      {"tls-ca", required_argument, NULL, O_TLS_CA},
      {"tls-cert", required_argument, NULL, O_TLS_CERT},
      {"tls-key", required_argument, NULL, O_TLS_KEY},
      {"user", required_argument, NULL, O_USER},
      {"scaling", required_argument, NULL, O_SCALING},
      {"scaling-keys", required_argument, NULL, O_SKEYS},
      {"scaling-values", required_argument, NULL, O_SVALUES},
      {"scaling-nodes", required_argument, NULL, O_SNODES},
      {"scaling-conns", required_argument, NULL, O_SCONNS},
      {"scaling-data-mb", required_argument, NULL, O_SDATA},
      {"scaling-preload", required_argument, NULL, O_SPRE},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  memset(o, 0, sizeof *o);
  o->dcs = 1;
  /* Below Linux's ephemeral range (32768 up): a port there can be taken by
   * an outgoing connection of this or an earlier run, and listen fails. */
  o->port_base = 20000u + (unsigned)(getpid() % 760) * 16u;
  o->durability = "none";
  o->cluster = "chorus";
  o->conns = 4;
  o->pipeline = 1;
  o->threads = 1;
  o->duration = 10;
  o->warmup = 2;
  o->token_aware = true;
  o->theta = 0.99;
  o->keys = 100000;
  o->value_size = 100;
  o->r = CHORUS_QUORUM;
  o->w = CHORUS_QUORUM;
  o->stale_trials = 200;
  o->seed = 1;
  o->scale_keys = "100000,1000000,10000000";
  o->scale_values = "100,4096,65536,1048576";
  o->scale_nodes = "3,5,7";
  o->scale_conns = "1,10,50,200,1000";
  o->scale_data_mb = 256;
  o->scale_preload = 32;
  int ch;
  while ((ch = getopt_long(argc, argv, "c:p:d:n:h", longopts, NULL)) != -1) {
    switch (ch) {
    case O_SEEDS:
      o->seeds = optarg;
      break;
    case O_START:
      o->start_cluster =
          (unsigned)parse_double(optarg, "--start-cluster", 1, BENCH_MAX_NODES);
      break;
    case O_CHECK:
      o->check = true;
      break;
    case O_WAN:
      o->wan_rtt = parse_double(optarg, "--wan-rtt", 0, 10000);
      break;
    case O_DCS:
      o->dcs = (unsigned)parse_double(optarg, "--dcs", 1, 2);
      break;
    case O_REPL:
      o->replicas = optarg;
      break;
    case O_DUR:
      o->durability = optarg;
      break;
    case O_CHORUSD:
      o->chorusd = optarg;
      break;
    case O_PORT:
      o->port_base = (unsigned)parse_double(optarg, "--port-base", 1024, 65000);
      break;
    case O_CLUSTER:
      o->cluster = optarg;
      break;
    case O_TLS: {
      static char ca[600];
      snprintf(ca, sizeof ca, "%s/ca.pem", optarg);
      o->tls_dir = optarg;
      o->tls_ca = ca;
      break;
    }
    case O_PEER_TLS:
      if (strcmp(optarg, "off") != 0 && strcmp(optarg, "required") != 0) {
        fprintf(stderr, "chorus-bench: --peer-tls: off or required\n");
        exit(2);
      }
      o->peer_tls = optarg;
      break;
    case O_TLS_CA:
      o->tls_ca = optarg;
      break;
    case O_TLS_CERT:
      o->tls_cert = optarg;
      break;
    case O_TLS_KEY:
      o->tls_key = optarg;
      break;
    case O_USER:
      o->user = optarg;
      o->password = getenv("CHORUS_PASSWORD");
      if (o->password == NULL || o->password[0] == '\0') {
        fprintf(stderr, "chorus-bench: --user needs CHORUS_PASSWORD\n");
        exit(2);
      }
      break;
    case 'c':
      o->conns = (unsigned)parse_double(optarg, "--connections", 1, 4096);
      o->conns_set = true;
      break;
    case 'p':
      o->pipeline = (unsigned)parse_double(optarg, "--pipeline", 1, 256);
      break;
    case O_RATE:
      o->rate = parse_double(optarg, "--rate", 1, 1e8);
      break;
    case O_THREADS:
      o->threads = (unsigned)parse_double(optarg, "--threads", 1, 64);
      break;
    case 'd':
      o->duration = parse_double(optarg, "--duration", 0.1, 1e6);
      o->duration_set = true;
      break;
    case O_WARMUP:
      o->warmup = parse_double(optarg, "--warmup", 0, 1e6);
      break;
    case 'n':
      o->ops = (uint64_t)parse_double(optarg, "--ops", 1, 1e15);
      break;
    case O_NOTA:
      o->token_aware = false;
      break;
    case O_WL: {
      bool found = false;
      for (size_t i = 0; i < sizeof wl_names / sizeof wl_names[0]; i++)
        if (strcmp(optarg, wl_names[i]) == 0) {
          o->wl = (enum workload)i;
          found = true;
        }
      if (!found) {
        fprintf(stderr,
                "chorus-bench: --workload: \"%s\" is not rw50, rw95, "
                "ro, wo, counter, set or cas\n",
                optarg);
        exit(2);
      }
      break;
    }
    case O_KEYS:
      o->keys = (uint64_t)parse_double(optarg, "--keys", 2, 1e9);
      break;
    case O_ZIPF:
      o->zipf = true;
      if (optarg != NULL)
        o->theta = parse_double(optarg, "--zipf", 0.01, 0.999);
      break;
    case O_UNIFORM:
      o->zipf = false;
      break;
    case O_VSIZE:
      /* 1 MiB: chorusd's default --max-value-bytes (WIRE_MAX_VALUE) */
      o->value_size =
          (size_t)parse_double(optarg, "--value-size", 8, 1024.0 * 1024);
      break;
    case O_PRELOAD:
      o->preload = true;
      break;
    case O_READ:
      o->r = parse_level(optarg, "--read");
      break;
    case O_WRITE:
      o->w = parse_level(optarg, "--write");
      break;
    case O_TIMEOUT:
      o->timeout_ms = (uint32_t)parse_double(optarg, "--timeout", 1, 86400000);
      break;
    case O_SWEEP:
      o->sweep = true;
      break;
    case O_KILL:
      o->kill_at = parse_double(optarg, "--kill-node-at", 0.001, 1e6);
      break;
    case O_STALE:
      o->staleness = true;
      break;
    case O_STRIALS:
      o->stale_trials =
          (unsigned)parse_double(optarg, "--stale-trials", 1, 1e7);
      break;
    case O_JSON:
      o->json = true;
      break;
    case O_CSV:
      o->csv = optarg;
      break;
    case O_SVG:
      o->svg = optarg;
      break;
    case O_LABEL:
      o->label = optarg;
      break;
    case O_SEED:
      o->seed = (uint64_t)parse_double(optarg, "--seed", 0, 1e15);
      break;
    case O_SCALING: {
      static const char *const dims[] = {"dataset", "values", "nodes", "conns",
                                         "all"};
      static const unsigned bits[] = {SCALE_DATASET, SCALE_VALUES, SCALE_NODES,
                                      SCALE_CONNS, SCALE_ALL};
      unsigned found = 0;
      for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (strcmp(optarg, dims[i]) == 0)
          found = bits[i];
      if (found == 0) {
        fprintf(stderr,
                "chorus-bench: --scaling: \"%s\" is not dataset, "
                "values, nodes, conns or all\n",
                optarg);
        exit(2);
      }
      o->scaling |= found;
      break;
    }
    case O_SKEYS:
      o->scale_keys = optarg;
      break;
    case O_SVALUES:
      o->scale_values = optarg;
      break;
    case O_SNODES:
      o->scale_nodes = optarg;
      break;
    case O_SCONNS:
      o->scale_conns = optarg;
      break;
    case O_SDATA:
      o->scale_data_mb = parse_double(optarg, "--scaling-data-mb", 0.001, 1e6);
      break;
    case O_SPRE:
      o->scale_preload =
          (unsigned)parse_double(optarg, "--scaling-preload", 1, 4096);
      break;
    case 'h':
      fputs(usage_text, stdout);
      fputs(usage_scaling, stdout);
      exit(0);
    default:
      fputs(usage_text, stderr);
      fputs(usage_scaling, stderr);
      exit(2);
    }
  }
  if (o->wl == WL_LOCK && o->rate > 0) {
    /* a worker's release follows its own acquire */
    fprintf(stderr, "chorus-bench: --workload lock is closed loop (no "
                    "--rate)\n");
    exit(2);
  }
  if (o->check && o->wan_rtt <= 0 && o->scaling == 0) {
    fprintf(stderr, "chorus-bench: --check goes with --wan-rtt or "
                    "--scaling\n");
    exit(2);
  }
  if (o->scaling != 0) {
    /* every row starts its own cluster and preloads its keys */
    if (o->seeds != NULL || o->wan_rtt > 0 || o->dcs > 1 || o->sweep ||
        o->kill_at > 0 || o->staleness || o->preload || o->json ||
        o->csv != NULL || o->rate > 0 || o->ops > 0) {
      fprintf(stderr, "chorus-bench: --scaling starts a cluster per row "
                      "(no --seeds, --dcs 2, --wan-rtt, --sweep, "
                      "--kill-node-at, --staleness, --preload, --json, "
                      "--csv, --rate, --ops)\n");
      exit(2);
    }
    if (o->start_cluster == 0)
      o->start_cluster = 3;
    /* issue 27's baseline: 50 connections, 5 s rows */
    if (!o->conns_set)
      o->conns = 50;
    if (!o->duration_set)
      o->duration = 5;
  }
  if (o->wan_rtt > 0) {
    /* the two datacenters live in namespaces this run makes: it starts
     * its own six nodes there */
    if (o->dcs != 2 || o->seeds != NULL || o->sweep || o->kill_at > 0 ||
        o->staleness || o->preload || o->json || o->csv != NULL ||
        o->start_cluster > 6) {
      fprintf(stderr, "chorus-bench: --wan-rtt needs --dcs 2 and starts its "
                      "own 2 x 3 nodes (no --seeds, --start-cluster > 6, "
                      "--sweep, --kill-node-at, --staleness, --preload, "
                      "--json, --csv)\n");
      exit(2);
    }
    o->start_cluster = 6;
    if (o->replicas == NULL)
      o->replicas = "dc1:3,dc2:3";
  }
  if (optind < argc || (o->seeds == NULL) == (o->start_cluster == 0)) {
    fprintf(stderr, "chorus-bench: give exactly one of --start-cluster N and "
                    "--seeds (try --help)\n");
    exit(2);
  }
  if (o->kill_at > 0 && o->start_cluster < 2) {
    fprintf(stderr,
            "chorus-bench: --kill-node-at needs --start-cluster >= 2\n");
    exit(2);
  }
  if (o->kill_at > 0 && o->ops > 0) {
    fprintf(stderr, "chorus-bench: --kill-node-at needs a --duration run\n");
    exit(2);
  }
  if (o->replicas == NULL)
    o->replicas = o->dcs > 1 ? "dc0:3,dc1:3" : "3";
  if (o->threads > o->conns)
    o->threads = o->conns;
}

/* The settings of this invocation. */
static size_t make_settings(const struct options *o, struct setting *s) {
  size_t n = 0;
  if (!o->sweep) {
    s[0].r = o->r;
    s[0].w = o->w;
    make_label(&s[0]);
    if (o->label != NULL) {
      snprintf(s[0].label, sizeof s[0].label, "%s", o->label);
      /* it goes into JSON strings and quoted CSV fields unescaped */
      for (char *c = s[0].label; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
          *c = '_';
    }
    return 1;
  }
  if (o->dcs > 1) {
    static const int32_t pairs[][2] = {
        {CHORUS_ONE, CHORUS_ONE},
        {CHORUS_LOCAL_QUORUM, CHORUS_LOCAL_QUORUM},
        {CHORUS_LOCAL_QUORUM, CHORUS_EACH_QUORUM},
        {CHORUS_QUORUM, CHORUS_QUORUM},
        {CHORUS_EACH_QUORUM, CHORUS_EACH_QUORUM},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
      s[n].r = pairs[i][0];
      s[n].w = pairs[i][1];
      make_label(&s[n++]);
    }
    return n;
  }
  for (int32_t r = 1; r <= 3; r++)
    for (int32_t w = 1; w <= 3; w++) {
      s[n].r = r;
      s[n].w = w;
      make_label(&s[n++]);
    }
  return n;
}

/* ------------------------------------------------------------------------
 * Two datacenters over an emulated WAN (--wan-rtt)
 *
 * The network is tests/wan/wan_net.c's: namespaces dc1 and dc2 joined only
 * by chorus-wan at half the round trip each way. Node i runs in dc(i%2+1).
 * This process moves into dc1 (so it reaches every node, dc2's through
 * the link, to watch the ring converge), then for each level forks one
 * child per datacenter; the child enters its namespace (threads it starts
 * stay there), sets chorus_config.dc to its datacenter and runs the
 * workload at R = W = level against that datacenter's nodes only, both
 * datacenters at once. Token-aware routing is off: the bench's own ring
 * routing sends a key to its first natural replica in any datacenter,
 * which would put the WAN into every LOCAL request; a local node
 * coordinates instead, as a client near its datacenter would.
 * ------------------------------------------------------------------------ */

static struct wan_net wan;
static char wan_log[64];

static void wan_cleanup(void) {
  wan_net_teardown(&wan);
  if (wan_log[0] != '\0' && getenv("CHORUS_BENCH_KEEP") == NULL)
    unlink(wan_log);
}

/* $CHORUS_WAN, else build/tests/wan/chorus-wan beside this build. */
static void default_wan(char *buf, size_t cap) {
  const char *env = getenv("CHORUS_WAN");
  if (env != NULL && env[0] != '\0') {
    snprintf(buf, cap, "%s", env);
    return;
  }
  char self[400];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    snprintf(buf, cap, "chorus-wan");
    return;
  }
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (slash != NULL)
    *slash = '\0';
  snprintf(buf, cap, "%s/../../tests/wan/chorus-wan", self);
}

static int read_full(int fd, void *buf, size_t len) {
  uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int write_full(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* One datacenter's clients at @set, in a child process; its result and
 * error message go back through @fd. Never returns. */
static void wan_child(const struct options *o, int d, const char *seeds,
                      const struct setting *set, int fd) {
  /* the parent owns the nodes and the link: a signal here just ends us */
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  struct result *res = chorus_calloc(1, sizeof *res);
  int rc = CHORUS_ENOMEM;
  if (res != NULL && wan_net_enter(&wan, d) != 0)
    rc = chorus_errf(errmsg, CHORUS_EIO, "setns into %s failed", wan.ns[d]);
  else if (res != NULL) {
    struct options co = *o;
    co.client_dc = d == 0 ? "dc1" : "dc2";
    co.token_aware = false;
    rc = run_once(&co, NULL, seeds, set, false, res, errmsg);
  }
  if (res == NULL || write_full(fd, res, sizeof *res) != 0 ||
      write_full(fd, errmsg, sizeof errmsg) != 0)
    rc = CHORUS_EIO;
  _exit(rc == CHORUS_OK ? 0 : 1);
}

static int run_wan(const struct options *o) {
  static const int32_t levels[] = {CHORUS_ONE,          CHORUS_LOCAL_ONE,
                                   CHORUS_LOCAL_QUORUM, CHORUS_QUORUM,
                                   CHORUS_EACH_QUORUM,  CHORUS_ALL};
  char wan_bin[512], why[256], errmsg[CHORUS_ERRMSG_SIZE] = "";
  default_wan(wan_bin, sizeof wan_bin);
  wan_net_init(&wan);
  snprintf(wan_log, sizeof wan_log, "/tmp/chorus-bench-wan-%d.log",
           (int)getpid());
  /* registered before the cluster's hook: atexit runs it after the
   * nodes are stopped */
  atexit(wan_cleanup);
  /* the link starts at no delay and gets it once the ring has formed:
   * founders joining across 50 ms took 26-29 s each in test_node_wan's
   * runs (streams of still empty ranges), which would dominate a run */
  int rc =
      wan_net_setup(&wan, "chbench", 3, 0, wan_bin, wan_log, why, sizeof why);
  if (rc != 0) {
    fprintf(stderr, "chorus-bench: --wan-rtt: %s%s\n",
            rc == 77 ? "skipped, " : "", why);
    return rc;
  }
  if (wan_net_enter(&wan, 0) != 0) {
    fprintf(stderr, "chorus-bench: setns into %s failed\n", wan.ns[0]);
    return 1;
  }

  static struct bench_cluster cluster;
  memset(&cluster, 0, sizeof cluster);
  if (o->chorusd != NULL)
    snprintf(cluster.chorusd, sizeof cluster.chorusd, "%s", o->chorusd);
  else
    default_chorusd(cluster.chorusd, sizeof cluster.chorusd);
  snprintf(cluster.replicas, sizeof cluster.replicas, "%s", o->replicas);
  snprintf(cluster.durability, sizeof cluster.durability, "%s", o->durability);
  snprintf(cluster.cluster, sizeof cluster.cluster, "%s", o->cluster);
  for (int d = 0; d < 2; d++) {
    cluster.netns[d] = wan.nsfd[d];
    for (int k = 0; k < 3; k++)
      wan_net_host(&wan, d, k, cluster.host[d][k], sizeof cluster.host[d][k]);
  }
  fprintf(stderr,
          "chorus-bench: two datacenters (namespaces %s, %s) over chorus-wan "
          "at %.1f ms RTT; starting 6 chorusd (replicas %s)\n",
          wan.ns[0], wan.ns[1], o->wan_rtt, o->replicas);
  if (bench_cluster_start(&cluster, 6, 2, o->port_base, 90.0, errmsg) !=
      CHORUS_OK) {
    fprintf(stderr, "chorus-bench: cluster: %s\n", errmsg);
    return 1;
  }
  char cmd[48], line[160];
  snprintf(cmd, sizeof cmd, "delay %g", o->wan_rtt / 2);
  if (wan_net_cmd(&wan, cmd, line, sizeof line) != 0) {
    fprintf(stderr, "chorus-bench: chorus-wan %s: %s\n", cmd, line);
    return 1;
  }
  char seeds[2][BENCH_MAX_NODES * 64];
  for (int d = 0; d < 2; d++) {
    size_t len = 0;
    seeds[d][0] = '\0';
    for (unsigned i = (unsigned)d; i < cluster.count; i += 2)
      len += (size_t)snprintf(seeds[d] + len, sizeof seeds[d] - len, "%s%s",
                              len ? "," : "", cluster.nodes[i].addr);
  }

  printf("chorus-bench --wan-rtt %.1f: %s, replicas %s, per datacenter ",
         o->wan_rtt, wl_names[o->wl], o->replicas);
  if (o->rate > 0)
    printf("open loop at %.0f ops/s over %u connections", o->rate, o->conns);
  else
    printf("%u connections x %u in flight", o->conns, o->pipeline);
  printf(", %.1f s after %.1f s warm-up\n", o->duration, o->warmup);
  printf("  dc1 nodes %s\n  dc2 nodes %s\n", seeds[0], seeds[1]);
  printf("%-13s %-4s %10s %9s %9s %9s %8s\n", "level (R=W)", "dc", "ops/s",
         "p50 ms", "p99 ms", "max ms", "errors");
  fflush(stdout);

  struct result *res = chorus_calloc(2, sizeof *res);
  int status = res != NULL ? 0 : 1;
  bool failed = false;
  for (size_t l = 0; l < sizeof levels / sizeof levels[0] && !status; l++) {
    struct setting set = {.r = levels[l], .w = levels[l]};
    make_label(&set);
    pid_t pid[2] = {-1, -1};
    int fds[2] = {-1, -1};
    for (int d = 0; d < 2; d++) {
      int p[2];
      if (pipe(p) != 0) {
        status = 1;
        break;
      }
      fflush(NULL); /* nothing buffered is written twice */
      pid[d] = fork();
      if (pid[d] == 0) {
        close(p[0]);
        wan_child(o, d, seeds[d], &set, p[1]);
      }
      close(p[1]);
      fds[d] = p[0];
      if (pid[d] < 0)
        status = 1;
    }
    for (int d = 0; d < 2; d++) {
      char cerr[CHORUS_ERRMSG_SIZE] = "";
      int got = fds[d] >= 0 && read_full(fds[d], &res[d], sizeof res[d]) == 0 &&
                        read_full(fds[d], cerr, sizeof cerr) == 0
                    ? 0
                    : -1;
      if (fds[d] >= 0)
        close(fds[d]);
      int st = 0;
      if (pid[d] > 0)
        waitpid(pid[d], &st, 0);
      if (got != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        cerr[sizeof cerr - 1] = '\0';
        fprintf(stderr, "chorus-bench: %s from dc%d: %s\n", set.label, d + 1,
                cerr[0] ? cerr : "the client process failed");
        status = 1;
        continue;
      }
      char lb[16];
      struct bench_hist *all = chorus_malloc(sizeof *all);
      if (all == NULL) {
        status = 1;
        continue;
      }
      all_hist(&res[d], 0, all);
      double p50 = ms(bench_hist_percentile(all, 50));
      bool local =
          levels[l] == CHORUS_LOCAL_ONE || levels[l] == CHORUS_LOCAL_QUORUM;
      /* a dc-local coordinator still needs a remote replica for these: 4
       * of 6 (QUORUM), 2 of 3 in each dc, all 6 */
      bool remote = levels[l] == CHORUS_QUORUM ||
                    levels[l] == CHORUS_EACH_QUORUM || levels[l] == CHORUS_ALL;
      if (o->check &&
          (total_ok(&res[d], 0) == 0 || (local && p50 >= o->wan_rtt / 2) ||
           (remote && p50 < o->wan_rtt))) {
        fprintf(stderr,
                "chorus-bench: check: %s from dc%d: %" PRIu64
                " ok, p50 %.3f ms (RTT %.1f ms)\n",
                set.label, d + 1, total_ok(&res[d], 0), p50, o->wan_rtt);
        failed = true;
      }
      printf("%-13s dc%-2d %10.0f %9.3f %9.3f %9.3f %8" PRIu64 "\n",
             level_text(levels[l], lb), d + 1, ops_per_s(&res[d], 0),
             ms(bench_hist_percentile(all, 50)),
             ms(bench_hist_percentile(all, 99)), ms(all->max),
             total_err(&res[d], 0));
      chorus_free(all);
      fflush(stdout);
    }
  }
  if (wan_net_cmd(&wan, "stats", line, sizeof line) == 0)
    printf("  link (chorus-wan stats): %s\n", line + 3);
  chorus_free(res);
  bench_cluster_stop(&cluster);
  return status != 0 || failed ? 1 : 0;
}

/* The fields of @c that bench_cluster_start reads, from the options. */
static void cluster_init(const struct options *o, struct bench_cluster *c) {
  memset(c, 0, sizeof *c);
  if (o->chorusd != NULL)
    snprintf(c->chorusd, sizeof c->chorusd, "%s", o->chorusd);
  else
    default_chorusd(c->chorusd, sizeof c->chorusd);
  snprintf(c->replicas, sizeof c->replicas, "%s", o->replicas);
  snprintf(c->durability, sizeof c->durability, "%s", o->durability);
  snprintf(c->cluster, sizeof c->cluster, "%s", o->cluster);
  if (o->tls_dir != NULL) {
    snprintf(c->tls_dir, sizeof c->tls_dir, "%s", o->tls_dir);
    snprintf(c->peer_tls, sizeof c->peer_tls, "%s",
             o->peer_tls ? o->peer_tls : "required");
  }
  if (o->user != NULL) {
    snprintf(c->user, sizeof c->user, "%s", o->user);
    c->password = o->password;
  }
}

/* ------------------------------------------------------------------------
 * How cost grows (--scaling, issue 27)
 *
 * One table per dimension (data set, value size, cluster size,
 * connections); each row is a fresh cluster from bench_cluster_start,
 * its keys written once through the nodes by run_once's preload at high
 * concurrency (a batch load the way a client would do it: nothing is
 * written to a node's store behind its back), then one measured run_once
 * of the workload. A row changes one thing from the base options. The
 * machine may be shared, so each row notes the 1-minute load average
 * before it starts.
 * ------------------------------------------------------------------------ */

#define SCALE_MAX_ROWS 16

struct scale_row {
  uint64_t param;
  double preload_s;
  uint64_t preload_err; /* preload writes that failed (keys missing) */
  struct result res;
  double load;
};

static double load_average(void) {
  double l = -1.0;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f != NULL) {
    if (fscanf(f, "%lf", &l) != 1)
      l = -1.0;
    fclose(f);
  }
  return l;
}

/* Parses "a,b,c" into @out (at most SCALE_MAX_ROWS); exits on a bad list. */
static size_t parse_list(const char *s, const char *what, double lo, double hi,
                         uint64_t *out) {
  size_t n = 0;
  const char *p = s;
  while (*p != '\0') {
    char *end;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || errno != 0 || v < lo || v > hi || n == SCALE_MAX_ROWS ||
        (*end != ',' && *end != '\0')) {
      fprintf(stderr,
              "chorus-bench: %s: \"%s\" is not a list of at most %d numbers "
              "in %.0f..%.0f\n",
              what, s, SCALE_MAX_ROWS, lo, hi);
      exit(2);
    }
    out[n++] = (uint64_t)v;
    p = *end == ',' ? end + 1 : end;
  }
  if (n == 0) {
    fprintf(stderr, "chorus-bench: %s: empty list\n", what);
    exit(2);
  }
  return n;
}

/* The options of one row of dimension @dim at @v. */
static void scale_options(const struct options *base, unsigned dim, uint64_t v,
                          struct options *o) {
  *o = *base;
  switch (dim) {
  case SCALE_DATASET:
    o->keys = v;
    break;
  case SCALE_VALUES: {
    /* a bounded data set, so 1 MiB rows preload in seconds and fit on
     * disk; at least 64 keys so the connections do not all share a few */
    o->value_size = (size_t)v;
    uint64_t cap = (uint64_t)(base->scale_data_mb * 1e6 / (double)v);
    if (cap < 64)
      cap = 64;
    if (o->keys > cap)
      o->keys = cap;
    break;
  }
  case SCALE_NODES:
    o->start_cluster = (unsigned)v;
    break;
  case SCALE_CONNS:
    o->conns = (unsigned)v;
    break;
  }
  if (o->threads > o->conns)
    o->threads = o->conns;
}

/* The preload's concurrency: --scaling-preload requests in flight, one
 * per connection, fewer when that is more than 8 MiB of values (at least
 * 4). Past about 50 in flight a 3-node cluster on 2 cores gets no faster
 * (the connections table: 9.3k ops/s at 50, 8.2k at 200), more only
 * queues; 32 x 4 was tried first. On a loaded machine a long preload can
 * meet the stall under sustained load (another branch's issue): then
 * writes time out, and the row reports them (keys missing). */
static void preload_options(const struct options *row, struct options *o) {
  *o = *row;
  uint64_t inflight = row->scale_preload;
  uint64_t by_bytes = (8u << 20) / row->value_size;
  if (inflight > by_bytes)
    inflight = by_bytes;
  if (inflight < 4)
    inflight = 4;
  o->conns = (unsigned)inflight;
  o->pipeline = 1;
  if (o->threads > o->conns)
    o->threads = o->conns;
}

/* Runs one row: a fresh cluster, the preload, the measured run. */
static int scale_row_run(const struct options *o, unsigned port_base,
                         struct scale_row *row, char *errmsg) {
  static struct bench_cluster cluster;
  char seeds[BENCH_MAX_NODES * 64];
  cluster_init(o, &cluster);
  row->load = load_average();
  int rc = bench_cluster_start(&cluster, o->start_cluster, 1, port_base, 60.0,
                               errmsg);
  if (rc != CHORUS_OK)
    return rc;
  bench_cluster_seeds(&cluster, 0, seeds, sizeof seeds);
  struct setting set = {.r = o->r, .w = o->w};
  make_label(&set);
  struct options po;
  preload_options(o, &po);
  struct result *pre = chorus_malloc(sizeof *pre);
  if (pre == NULL) {
    rc = chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
  } else {
    uint64_t t0 = uv_hrtime();
    rc = run_once(&po, &cluster, seeds, &set, true, pre, errmsg);
    row->preload_s = (double)(uv_hrtime() - t0) / 1e9;
    row->preload_err = total_err(pre, 0);
    chorus_free(pre);
  }
  if (rc == CHORUS_OK)
    rc = run_once(o, &cluster, seeds, &set, false, &row->res, errmsg);
  bench_cluster_stop(&cluster);
  return rc;
}

static const char *const scale_names[] = {
    "data set (keys)", "value size (B)", "cluster size (nodes)", "connections"};
static const char *const scale_cols[] = {"keys", "value B", "nodes", "conns"};

static int scale_index(unsigned dim) {
  return dim == SCALE_DATASET  ? 0
         : dim == SCALE_VALUES ? 1
         : dim == SCALE_NODES  ? 2
                               : 3;
}

/* The table's title and column heads. */
static void scale_head(const struct options *base, unsigned dim) {
  int di = scale_index(dim);
  char rb[16], wb[16];
  printf("\n== %s: %s, R=%s W=%s, replicas %s, durability %s; "
         "unless the row says otherwise %u nodes, %u connections x %u, %zu B "
         "values, %" PRIu64 " keys; %.1f s after %.1f s warm-up per row\n",
         scale_names[di], wl_names[base->wl], level_text(base->r, rb),
         level_text(base->w, wb), base->replicas, base->durability,
         base->start_cluster, base->conns, base->pipeline, base->value_size,
         base->keys, base->duration, base->warmup);
  printf("  %10s %8s %9s %8s %9s %8s %8s %8s %8s %10s %7s %5s\n",
         scale_cols[di], "keys", "preload s", "keys/s", "ops/s", "MB/s",
         "p50 ms", "p99 ms", "max ms", "node us/op", "errors", "load");
  fflush(stdout);
}

/* One row, printed as soon as it has run (a long table shows progress). */
static void scale_line(const struct options *base, unsigned dim,
                       const struct scale_row *r) {
  struct bench_hist *all = chorus_malloc(sizeof *all);
  if (all == NULL)
    return;
  struct options ro;
  scale_options(base, dim, r->param, &ro);
  all_hist(&r->res, 0, all);
  double secs = r->res.phase_s[0];
  /* payload bytes moved: every write's value, every found read's */
  uint64_t found = r->res.st.ok[0][OP_GET] - r->res.st.not_found[0];
  double mbs = secs > 0 ? (double)(found + r->res.st.ok[0][OP_PUT]) *
                              (double)ro.value_size / secs / 1e6
                        : 0.0;
  printf("  %10" PRIu64 " %8" PRIu64 " %9.1f %8.0f %9.0f %8.1f %8.3f %8.3f "
         "%8.3f %10.1f %7" PRIu64 " %5.1f\n",
         r->param, ro.keys, r->preload_s,
         r->preload_s > 0 ? (double)ro.keys / r->preload_s : 0.0,
         ops_per_s(&r->res, 0), mbs, ms(bench_hist_percentile(all, 50)),
         ms(bench_hist_percentile(all, 99)), ms(all->max),
         cpu_us_per_op(&r->res), total_err(&r->res, 0), r->load);
  for (int k = 0; k < OP_KINDS; k++)
    for (int e = 0; e < ERR_SLOTS; e++)
      if (r->res.st.err[0][k][e])
        printf("  %10s error %s %s: %" PRIu64 "\n", "", op_names[k],
               e == ERR_SLOTS - 1 ? "other" : chorus_errname(-e),
               r->res.st.err[0][k][e]);
  if (r->preload_err)
    printf("  %10s preload writes failed: %" PRIu64 " (keys missing)\n", "",
           r->preload_err);
  if (r->res.st.not_found[0])
    printf("  %10s reads not found: %" PRIu64 "\n", "", r->res.st.not_found[0]);
  chorus_free(all);
  fflush(stdout);
}

static void scale_foot(void) {
  printf("  (preload: every key written once through the nodes; node us/op: "
         "CPU of every node over the measured run, summed, per request; "
         "load: 1-minute load average before the row; %.1f now)\n",
         load_average());
  fflush(stdout);
}

/* --scaling: one table per chosen dimension. Returns the exit status: 1
 * when a row failed to run, or with --check when a row had no success or
 * any error. */
static int run_scaling(const struct options *o) {
  static const unsigned dims[] = {SCALE_DATASET, SCALE_VALUES, SCALE_NODES,
                                  SCALE_CONNS};
  char errmsg[CHORUS_ERRMSG_SIZE];
  int status = 0;
  unsigned port_base = o->port_base;
  for (size_t d = 0; d < sizeof dims / sizeof dims[0] && status == 0; d++) {
    unsigned dim = dims[d];
    if ((o->scaling & dim) == 0)
      continue;
    uint64_t params[SCALE_MAX_ROWS];
    size_t n =
        dim == SCALE_DATASET
            ? parse_list(o->scale_keys, "--scaling-keys", 2, 1e9, params)
        : dim == SCALE_VALUES ? parse_list(o->scale_values, "--scaling-values",
                                           8, 1024.0 * 1024, params)
        : dim == SCALE_NODES
            ? parse_list(o->scale_nodes, "--scaling-nodes", 1, BENCH_MAX_NODES,
                         params)
            : parse_list(o->scale_conns, "--scaling-conns", 1, 4096, params);
    struct scale_row *rows = chorus_calloc(n, sizeof *rows);
    if (rows == NULL)
      return 1;
    scale_head(o, dim);
    for (size_t i = 0; i < n; i++) {
      struct options ro;
      scale_options(o, dim, params[i], &ro);
      rows[i].param = params[i];
      fprintf(stderr, "chorus-bench: scaling %s = %" PRIu64 "\n",
              scale_names[scale_index(dim)], params[i]);
      errmsg[0] = '\0';
      /* a fresh port range per row: the last row's sockets may linger */
      int rc = scale_row_run(&ro, port_base, &rows[i], errmsg);
      port_base += BENCH_MAX_NODES;
      if (port_base + BENCH_MAX_NODES > 32000)
        port_base = 20000;
      if (rc != CHORUS_OK) {
        fprintf(stderr, "chorus-bench: scaling row %" PRIu64 ": %s\n",
                params[i], errmsg);
        status = 1;
        break;
      }
      scale_line(o, dim, &rows[i]);
      if (o->check &&
          (total_ok(&rows[i].res, 0) == 0 || total_err(&rows[i].res, 0) > 0 ||
           rows[i].preload_err > 0)) {
        fprintf(stderr,
                "chorus-bench: scaling row %" PRIu64 ": %" PRIu64
                " successes, %" PRIu64 " errors\n",
                params[i], total_ok(&rows[i].res, 0),
                total_err(&rows[i].res, 0));
        status = 1;
      }
    }
    scale_foot();
    chorus_free(rows);
  }
  return status;
}

int main(int argc, char **argv) {
  struct options o;
  parse_options(argc, argv, &o);
  if (o.wan_rtt > 0)
    return run_wan(&o);
  if (o.scaling != 0)
    return run_scaling(&o);
  char errmsg[CHORUS_ERRMSG_SIZE] = "";
  static struct bench_cluster cluster;
  struct bench_cluster *cl = NULL;
  char seeds[BENCH_MAX_NODES * 64];
  int status = 0;

  if (o.start_cluster > 0) {
    cluster_init(&o, &cluster);
    unsigned count = o.start_cluster;
    if (o.dcs > 1 && count < 6)
      count = 6; /* dc0:3,dc1:3 needs three nodes per datacenter */
    if (!o.json)
      fprintf(stderr,
              "chorus-bench: starting %u chorusd (%s, replicas %s, "
              "durability %s) on ports %u..\n",
              count, cluster.chorusd, o.replicas, o.durability, o.port_base);
    if (bench_cluster_start(&cluster, count, o.dcs, o.port_base, 60.0,
                            errmsg) != CHORUS_OK) {
      fprintf(stderr, "chorus-bench: cluster: %s\n", errmsg);
      return 1;
    }
    cl = &cluster;
    bench_cluster_seeds(cl, 0, seeds, sizeof seeds);
  } else {
    snprintf(seeds, sizeof seeds, "%s", o.seeds);
  }

  struct setting settings[MAX_SETTINGS];
  size_t nset = make_settings(&o, settings);
  struct result *results = chorus_calloc(nset, sizeof *results);
  struct stale_result *stale = chorus_calloc(nset, sizeof *stale);
  FILE *csv = NULL;
  if (o.csv != NULL) {
    csv = fopen(o.csv, "w");
    if (csv == NULL) {
      fprintf(stderr, "chorus-bench: --csv %s: cannot open\n", o.csv);
      status = 1;
      goto out;
    }
    fputs(csv_header, csv);
  }
  if (results == NULL || stale == NULL) {
    status = 1;
    goto out;
  }

  if (o.preload) {
    struct result pre;
    struct setting ps = settings[0];
    uint64_t t0 = uv_hrtime();
    if (run_once(&o, cl, seeds, &ps, true, &pre, errmsg) != CHORUS_OK) {
      fprintf(stderr, "chorus-bench: preload: %s\n", errmsg);
      status = 1;
      goto out;
    }
    if (!o.json)
      fprintf(stderr, "chorus-bench: preloaded %" PRIu64 " keys in %.1f s\n",
              o.keys, (double)(uv_hrtime() - t0) / 1e9);
  }

  for (size_t i = 0; i < nset; i++) {
    if (cl != NULL && o.kill_at > 0 && i > 0) {
      /* each setting starts from a whole cluster */
      if (bench_cluster_restart(cl, cl->count - 1, 60.0, errmsg) != CHORUS_OK) {
        fprintf(stderr, "chorus-bench: restart: %s\n", errmsg);
        status = 1;
        break;
      }
      bench_cluster_seeds(cl, 0, seeds, sizeof seeds);
    }
    if (!o.json)
      print_header(&o, &settings[i], seeds);
    errmsg[0] = '\0';
    if (run_once(&o, cl, seeds, &settings[i], false, &results[i], errmsg) !=
        CHORUS_OK) {
      fprintf(stderr, "chorus-bench: run %s: %s\n", settings[i].label, errmsg);
      status = 1;
      break;
    }
    if (!o.json)
      print_table(&results[i]);
    if (csv != NULL) {
      csv_rows(csv, &o, &results[i]);
      fflush(csv);
    }
  }

  if (status == 0 && o.staleness) {
    if (cl != NULL)
      for (unsigned k = 0; k < cl->count; k++)
        if (cl->nodes[k].killed &&
            bench_cluster_restart(cl, k, 60.0, errmsg) != CHORUS_OK) {
          fprintf(stderr, "chorus-bench: restart: %s\n", errmsg);
          status = 1;
        }
    char addrs[BENCH_MAX_NODES][64];
    if (cl != NULL)
      bench_cluster_seeds(cl, 0, seeds, sizeof seeds);
    unsigned na = split_seeds(seeds, addrs, BENCH_MAX_NODES);
    for (size_t i = 0; i < nset && status == 0; i++) {
      if (run_staleness(&o, addrs, na, &settings[i], &stale[i], errmsg) !=
          CHORUS_OK) {
        fprintf(stderr, "chorus-bench: staleness %s: %s\n", settings[i].label,
                errmsg);
        status = 1;
      }
    }
    if (!o.json)
      print_staleness(stale, nset);
  }

  if (status == 0 && o.sweep) {
    const char *svg_path = o.svg ? o.svg : "chorus-sweep.svg";
    struct bench_svg_point pts[MAX_SETTINGS];
    struct bench_hist *all = chorus_malloc(sizeof *all);
    for (size_t i = 0; i < nset && all != NULL; i++) {
      all_hist(&results[i], 0, all);
      pts[i].label = results[i].set.label;
      pts[i].ops = ops_per_s(&results[i], 0);
      pts[i].p99_ms = ms(bench_hist_percentile(all, 99));
    }
    chorus_free(all);
    FILE *f = fopen(svg_path, "w");
    if (f != NULL) {
      char title[160];
      snprintf(title, sizeof title,
               "chorus %s sweep: %u nodes, replicas %s, %s loop, %u conns x "
               "%u",
               wl_names[o.wl], cl ? cl->count : 0, o.replicas,
               o.rate > 0 ? "open" : "closed", o.conns, o.pipeline);
      bench_svg_sweep(f, title, pts, nset);
      fclose(f);
      if (!o.json)
        printf("\nsweep chart: %s%s%s\n", svg_path, o.csv ? ", rows: " : "",
               o.csv ? o.csv : "");
    }
  }

  if (o.json) {
    printf("{\"runs\":[");
    for (size_t i = 0; i < nset; i++) {
      if (i)
        putchar(',');
      json_result(stdout, &o, &results[i]);
    }
    printf("]");
    if (o.staleness) {
      putchar(',');
      json_staleness(stdout, stale, nset);
    }
    printf("}\n");
  }

out:
  if (csv != NULL)
    fclose(csv);
  chorus_free(results);
  chorus_free(stale);
  if (cl != NULL)
    bench_cluster_stop(cl);
  return status;
}
