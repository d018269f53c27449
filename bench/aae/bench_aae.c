/* bench_aae.c: what anti-entropy costs: one exchange between two replicas
 * of N keys of which D differ, its bytes on the wire and CPU seconds,
 * beside a key-by-key comparison (every (key, digest) pair sent, as
 * AAE_KEYS batches); the tree's rebuild scan; the tree's memory; and the
 * write path's share (a tree update per write, timed alone). A program,
 * not a test: it prints figures.
 *
 *   bench_aae [--num N] [--diff D] [--bits K] [--mem] [--dir DIR]
 *             [--classes]
 *
 * --classes: two keyspaces of their own replication ("2" and "1", two
 * classes beside the cluster's), a third of the keys in each: what the
 * trees per class cost the rebuild scan (one scan feeds every class's
 * tree) and the exchange (of the cluster's class, over its third).
 *
 * Two repl instances (A, B) in a ring of three nodes at N = 3 (both hold
 * every key), over RocksDB stores under DIR (or memory stores with
 * --mem). The data is written into the stores directly, the same object
 * bytes on both; the D differing keys are on A only. Messages go through
 * wire_encode/wire_decode in process, as between two nodes. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chorus_alloc.h"
#include "crdt.h"
#include "repl.h"
#include "repl_int.h"
#include "store_mem.h"
#include "store_rocksdb.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#define QMAX 65536

struct frame {
  int to;
  chorus_node_id from;
  uint8_t *b;
  size_t n;
};

static struct {
  struct frame q[QMAX];
  size_t head, tail;
  uint64_t wire_bytes;
  struct {
    uint64_t id;
    int node;
    chorus_ms at;
  } timers[QMAX];
  size_t ntimers;
  uint64_t syncs[QMAX];
  int sync_node[QMAX];
  size_t nsyncs;
  chorus_ms now;
} W;

struct bnode {
  int idx;
  chorus_node_id id;
  struct store *store;
  struct repl *repl;
  struct repl_effects fx;
};
static struct bnode nodes[2];

static int fx_send(void *ctx, chorus_node_id to, const struct wire_msg *m) {
  struct bnode *b = ctx;
  size_t n = wire_encoded_size(m), w;
  uint8_t *buf = malloc(n);
  char err[CHORUS_ERRMSG_SIZE];
  if (wire_encode(m, buf, n, &w, err) != CHORUS_OK) {
    fprintf(stderr, "encode: %s\n", err);
    exit(1);
  }
  if (W.tail == QMAX) {
    fprintf(stderr, "queue full\n");
    exit(1);
  }
  W.q[W.tail++] = (struct frame){to == nodes[0].id ? 0 : 1, b->id, buf, w};
  W.wire_bytes += w;
  return CHORUS_OK;
}
static int fx_reply(void *ctx, const struct repl_origin *o,
                    const struct wire_msg *m, bool maybe) {
  (void)ctx, (void)o, (void)m, (void)maybe;
  return CHORUS_OK;
}
static int fx_timer(void *ctx, uint64_t id, chorus_ms after) {
  struct bnode *b = ctx;
  W.timers[W.ntimers].id = id;
  W.timers[W.ntimers].node = b->idx;
  W.timers[W.ntimers].at = W.now + after;
  W.ntimers = (W.ntimers + 1) % QMAX;
  return CHORUS_OK;
}
static int fx_sync(void *ctx, chorus_seq seq, uint64_t token) {
  struct bnode *b = ctx;
  (void)seq;
  W.syncs[W.nsyncs] = token;
  W.sync_node[W.nsyncs++] = b->idx;
  return CHORUS_OK;
}

static void pump(void) {
  for (;;) {
    bool moved = false;
    while (W.nsyncs > 0) {
      size_t i = --W.nsyncs;
      struct bnode *b = &nodes[W.sync_node[i]];
      store_sync(b->store);
      repl_sync_done(b->repl, W.syncs[i], CHORUS_OK, W.now, W.now, &b->fx);
      moved = true;
    }
    while (W.head < W.tail) {
      struct frame f = W.q[W.head++];
      struct wire_msg m;
      char err[CHORUS_ERRMSG_SIZE];
      if (wire_decode(f.b + 4, f.n - 4, &WIRE_LIMITS_PEER, &m, err) !=
          CHORUS_OK) {
        fprintf(stderr, "decode: %s\n", err);
        exit(1);
      }
      struct bnode *b = &nodes[f.to];
      repl_peer(b->repl, f.from, &m, W.now, W.now, &b->fx);
      wire_msg_free(&m);
      free(f.b);
      moved = true;
    }
    W.head = W.tail = 0;
    if (!moved)
      return;
  }
}

static void make_obj(uint64_t i, int version, uint8_t **buf, size_t *len) {
  struct crdt_obj o;
  crdt_obj_init(&o, CRDT_KV);
  struct vv ctx;
  vv_init(&ctx);
  char v[64];
  int n = snprintf(v, sizeof v, "value-%" PRIu64 "-%d-padding-to-48-bytes....",
                   i, version);
  dvv_put(&o.u.kv, 7, &ctx, v, (size_t)n, NULL, NULL, NULL);
  vv_free(&ctx);
  repl__encode_obj(&o, buf, len);
  crdt_obj_free(&o);
}

static bool classes; /* --classes */

static void put_raw(struct store *s, uint64_t i, int version) {
  /* With --classes, key i of keyspace i % 3 (0: the default). */
  char k[40] = {0, 0, 0, 0, (char)(i % 3)};
  int at = classes && i % 3 != 0 ? (int)RING_KS_PREFIX_LEN : 0;
  int kl = at + snprintf(k + at, sizeof k - (size_t)at, "user:%012" PRIu64, i);
  unsigned char dk[64];
  size_t dl = store_data_key(dk, ring_token_of(k, (size_t)kl), k, (size_t)kl);
  uint8_t *o;
  size_t ol;
  make_obj(i, version, &o, &ol);
  store_put(s, STORE_DATA, dk, dl, o, ol, NULL);
  chorus_free(o);
}

static struct store *open_store(bool mem, const char *dir, const char *name) {
  struct store *s;
  if (mem) {
    store_mem_open(&s);
    return s;
  }
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  struct store_rocksdb_options o = {.path = path};
  char err[CHORUS_ERRMSG_SIZE];
  if (store_rocksdb_open(&o, &s, err) != CHORUS_OK) {
    fprintf(stderr, "open %s: %s\n", path, err);
    exit(1);
  }
  return s;
}

int main(int argc, char **argv) {
  uint64_t num = 100000, diff = 100;
  unsigned bits = 16;
  bool mem = false;
  const char *dir = "/tmp/bench_aae";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--num") && i + 1 < argc)
      num = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--diff") && i + 1 < argc)
      diff = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--bits") && i + 1 < argc)
      bits = (unsigned)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      dir = argv[++i];
    else if (!strcmp(argv[i], "--mem"))
      mem = true;
    else if (!strcmp(argv[i], "--classes"))
      classes = true;
    else {
      fprintf(stderr,
              "usage: bench_aae [--num N] [--diff D] [--bits K] [--mem] "
              "[--dir DIR] [--classes]\n");
      return 2;
    }
  }
  if (!mem) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0)
      return 1;
  }
  /* The ring: three nodes, N = 3: A and B share every range. */
  struct ring_node rn[3];
  memset(rn, 0, sizeof rn);
  for (int i = 0; i < 3; i++) {
    rn[i].id = 1001 + (chorus_node_id)i;
    snprintf(rn[i].dc, sizeof rn[i].dc, "dc1");
    snprintf(rn[i].rack, sizeof rn[i].rack, "r%d", i);
    rn[i].state = RING_NORMAL;
    rn[i].vnodes = 256;
  }
  struct ring_replication rs;
  ring_replication_parse("3", &rs, NULL);
  struct ring_snapshot *ring;
  struct ring_ks_replication ks[2] = {{.ks_id = 1}, {.ks_id = 2}};
  ring_replication_parse("2", &ks[0].repl, NULL);
  ring_replication_parse("1", &ks[1].repl, NULL);
  ring_snapshot_build_classes(rn, 3, &rs, ks, classes ? 2 : 0, 1, &ring, NULL);

  for (int i = 0; i < 2; i++) {
    nodes[i].idx = i;
    nodes[i].id = rn[i].id;
    nodes[i].store = open_store(mem, dir, i ? "b" : "a");
  }
  double t0 = now_s();
  for (uint64_t i = 0; i < num; i++) {
    put_raw(nodes[0].store, i, 1);
    if (i >= diff)
      put_raw(nodes[1].store, i, 1);
  }
  printf("loaded %" PRIu64 " keys (%" PRIu64 " on A only) in %.1f s\n", num,
         diff, now_s() - t0);

  for (int i = 0; i < 2; i++) {
    struct repl_config cfg;
    repl_config_defaults(&cfg, nodes[i].id);
    snprintf(cfg.dc, sizeof cfg.dc, "dc1");
    cfg.aae_bits = (uint8_t)bits;
    cfg.aae_keys_per_sec = 1000000000u;
    cfg.aae_bytes_per_sec = 1ull << 40;
    nodes[i].fx =
        (struct repl_effects){&nodes[i], fx_send, fx_reply, fx_timer, fx_sync};
    repl_new(&cfg, nodes[i].store, ring, &nodes[i].repl);
    repl_start(nodes[i].repl, W.now, W.now, &nodes[i].fx);
  }
  pump();
  for (int i = 0; i < 2; i++) {
    double c0 = cpu_s(), w0 = now_s();
    bool built = false;
    while (!built)
      repl_aae_rebuild_step(nodes[i].repl, 10000, &built);
    struct repl *r = nodes[i].repl;
    uint64_t keys = 0;
    size_t bytes = 0;
    for (unsigned c = 0; c < r->ntrees; c++) {
      keys += r->trees[c].keys;
      bytes += aae_tree_bytes(&r->trees[c]);
    }
    printf("trees %c rebuilt (%u classes): %.2f s wall, %.2f s CPU (%.0f "
           "keys/s); trees %zu bytes\n",
           'A' + i, r->ntrees, now_s() - w0, cpu_s() - c0,
           (double)keys / (now_s() - w0 + 1e-9), bytes);
  }

  /* The exchange, A with B. */
  W.wire_bytes = 0;
  double c0 = cpu_s(), w0 = now_s();
  bool started = false;
  repl_aae_exchange(nodes[0].repl, nodes[1].id, W.now, W.now, &nodes[0].fx,
                    &started);
  pump();
  for (int k = 0; k < 100000 && repl_aae_busy(nodes[0].repl); k++) {
    W.now += 1;
    for (size_t t = 0; t < W.ntimers; t++)
      if (W.timers[t].at != 0 && W.timers[t].at <= W.now) {
        W.timers[t].at = 0;
        struct bnode *b = &nodes[W.timers[t].node];
        repl_timer(b->repl, W.timers[t].id, W.now, W.now, &b->fx);
      }
    pump();
  }
  double ex_cpu = cpu_s() - c0, ex_wall = now_s() - w0;
  const struct repl_stats *sa = repl_stats(nodes[0].repl);
  printf("exchange: started %d, completed %" PRIu64 ", %" PRIu64
         " segments differing, %" PRIu64 " keys compared, %" PRIu64
         " repaired\n",
         started, sa->aae_completed, sa->aae_segments_differing,
         sa->aae_keys_compared, sa->aae_keys_repaired);
  printf("exchange: %" PRIu64 " bytes on the wire (both ways, repairs "
         "included), %.3f s CPU, %.3f s wall\n",
         W.wire_bytes, ex_cpu, ex_wall);

  /* Key by key: every (key, digest) pair of B sent as AAE_KEYS batches of
   * 1,024, and A's list compared with it. */
  c0 = cpu_s();
  w0 = now_s();
  uint64_t kbk = 0, nk = 0;
  struct store_iter *it;
  store_iter_open(nodes[1].store, STORE_DATA, NULL, 0, NULL, 0, &it);
  struct wire_bytes items[2048];
  uint8_t digests[1024][8];
  uint8_t *keys[1024];
  size_t n = 0;
  for (bool more = true; more;) {
    more = store_iter_valid(it);
    if (more) {
      size_t kl, vl;
      const uint8_t *k = store_iter_key(it, &kl);
      const void *v = store_iter_value(it, &vl);
      keys[n] = malloc(kl);
      memcpy(keys[n], k, kl);
      store_be64_put(digests[n], aae_digest(v, vl));
      items[2 * n] = (struct wire_bytes){keys[n] + 8, kl - 8};
      items[2 * n + 1] = (struct wire_bytes){digests[n], 8};
      n++;
      nk++;
      store_iter_next(it);
    }
    if (n == 1024 || (!more && n > 0)) {
      struct wire_msg m = {.type = WIRE_AAE_KEYS, .request_id = 1};
      m.aae_keys.entries = (struct wire_bytes_list){2 * n, items};
      m.aae_keys.more = more;
      kbk += wire_encoded_size(m.type ? &m : &m);
      for (size_t j = 0; j < n; j++)
        free(keys[j]);
      n = 0;
    }
  }
  store_iter_close(it);
  double kbk_cpu = cpu_s() - c0;
  printf("key by key: %" PRIu64 " keys, %" PRIu64
         " bytes (one way, before any repair), %.3f s CPU to list and "
         "encode one side\n",
         nk, kbk, kbk_cpu);
  printf("ratio: exchange / key-by-key bytes = %.5f\n",
         (double)W.wire_bytes / (double)kbk);

  /* The write path's share: a tree update per write, alone. */
  struct aae_tree t;
  aae_tree_init(&t, bits);
  aae_tree_rebuild_begin(&t);
  aae_tree_rebuild_end(&t);
  uint8_t *o1, *o2;
  size_t l1, l2;
  make_obj(1, 1, &o1, &l1);
  make_obj(1, 2, &o2, &l2);
  unsigned char dk[64];
  c0 = cpu_s();
  const uint64_t reps = 2000000;
  for (uint64_t i = 0; i < reps; i++) {
    char k[32];
    int kl = snprintf(k, sizeof k, "user:%012" PRIu64, i);
    size_t dl = store_data_key(dk, ring_token_of(k, (size_t)kl), k, (size_t)kl);
    aae_tree_update(&t, dk, dl, aae_digest(o1, l1), aae_digest(o2, l2));
  }
  double per = (cpu_s() - c0) / (double)reps * 1e6;
  printf("tree update on the write path: %.3f us per write (digests of "
         "two %zu-byte objects, key hash, XOR into leaf and branch)\n",
         per, l1);
  chorus_free(o1);
  chorus_free(o2);
  aae_tree_free(&t);
  for (int i = 0; i < 2; i++) {
    repl_free(nodes[i].repl);
    store_close(nodes[i].store);
  }
  ring_snapshot_free(ring);
  return 0;
}
