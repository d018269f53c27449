/* bench_crdt.c: join, encode and decode cost of every crdt type, small and
 * large states, in nanoseconds per operation.
 *
 * Joins mutate their destination, so a "fresh" join is timed over a batch
 * of copies of the destination made beforehand (untimed): the cost of
 * merging two states that differ. A "no-op" join merges a state that the
 * destination already contains (replicas agree: the common read-repair case).
 * Encode includes x_encoded_size, as callers need both. Run from a release
 * build: meson setup build-rel --buildtype=release && ninja -C build-rel
 *   ./build-rel/bench/crdt/bench_crdt
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chorus_alloc.h"
#include "crdt.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_crdt: %s: %s\n", what, chorus_strerror(rc));
  exit(1);
}

#define CHECK(call)                                                            \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != CHORUS_OK)                                                      \
      die(#call, rc_);                                                         \
  } while (0)

/* The operations timed on one pair of objects. */
enum op { OP_JOIN_NOOP, OP_ENCODE, OP_DECODE };

struct pair {
  struct crdt_obj a, b, ab; /* ab = join(a, b), for the no-op join */
  uint8_t *buf;
  size_t len;
};

static void obj_copy(struct crdt_obj *dst, const struct crdt_obj *src) {
  crdt_obj_init(dst, src->type);
  CHECK(crdt_obj_join(dst, src, NULL));
}

static void run_op(struct pair *p, enum op op) {
  struct crdt_obj t;
  size_t n;
  switch (op) {
  case OP_JOIN_NOOP:
    CHECK(crdt_obj_join(&p->ab, &p->b, NULL));
    break;
  case OP_ENCODE:
    n = crdt_obj_encoded_size(&p->a);
    CHECK(crdt_obj_encode(&p->a, p->buf, n, &n));
    break;
  case OP_DECODE:
    CHECK(crdt_obj_decode(&t, p->a.type, p->buf, p->len, NULL));
    crdt_obj_free(&t);
    break;
  }
}

/* ns per call of @op: the best of 5 rounds of at least 50 ms each. */
static double time_op(struct pair *p, enum op op) {
  double best = 1e30;
  for (int round = 0; round < 5; round++) {
    long iters = 1;
    for (;;) {
      double t0 = now_ns();
      for (long i = 0; i < iters; i++)
        run_op(p, op);
      double dt = now_ns() - t0;
      if (dt > 50e6) {
        if (dt / (double)iters < best)
          best = dt / (double)iters;
        break;
      }
      iters *= 2;
    }
  }
  return best;
}

/* ns per fresh join(copy of a, b): best of 5 rounds over batches of
 * copies prepared outside the timed region. */
static double time_fresh_join(struct pair *p) {
  enum { BATCH = 64 };
  static struct crdt_obj t[BATCH];
  double best = 1e30;
  for (int round = 0; round < 5; round++) {
    double total = 0;
    long n = 0;
    while (total < 50e6) {
      for (int i = 0; i < BATCH; i++)
        obj_copy(&t[i], &p->a);
      double t0 = now_ns();
      for (int i = 0; i < BATCH; i++)
        CHECK(crdt_obj_join(&t[i], &p->b, NULL));
      total += now_ns() - t0;
      n += BATCH;
      for (int i = 0; i < BATCH; i++)
        crdt_obj_free(&t[i]);
    }
    if (total / (double)n < best)
      best = total / (double)n;
  }
  return best;
}

static void report(const char *type, const char *size, struct pair *p) {
  p->len = crdt_obj_encoded_size(&p->a);
  p->buf = malloc(p->len);
  CHECK(crdt_obj_encode(&p->a, p->buf, p->len, &p->len));
  obj_copy(&p->ab, &p->a);
  CHECK(crdt_obj_join(&p->ab, &p->b, NULL));
  double fresh = time_fresh_join(p);
  double noop = time_op(p, OP_JOIN_NOOP);
  double enc = time_op(p, OP_ENCODE);
  double dec = time_op(p, OP_DECODE);
  printf("| %-7s | %-34s | %9zu | %12.0f | %12.0f | %10.0f | %10.0f |\n", type,
         size, p->len, fresh, noop, enc, dec);
  free(p->buf);
  crdt_obj_free(&p->a);
  crdt_obj_free(&p->b);
  crdt_obj_free(&p->ab);
}

static void value_of(uint8_t *v, size_t len, uint64_t seed) {
  for (size_t i = 0; i < len; i++)
    v[i] = (uint8_t)(seed * 31 + i);
}

/* kv: a common base of @base siblings, then one concurrent write each at
 * two coordinators, so a and b have base + 1 siblings and share base. */
static void bench_kv(const char *label, int base, size_t vlen) {
  struct pair p;
  crdt_obj_init(&p.a, CRDT_KV);
  crdt_obj_init(&p.b, CRDT_KV);
  uint8_t *v = malloc(vlen);
  struct dvv_limits lim = {1000, 1000, NULL};
  for (int i = 0; i < base; i++) {
    value_of(v, vlen, (uint64_t)i);
    CHECK(
        dvv_put(&p.a.u.kv, 100 + (uint64_t)i, NULL, v, vlen, &lim, NULL, NULL));
  }
  CHECK(dvv_join(&p.b.u.kv, &p.a.u.kv, &lim, NULL));
  CHECK(dvv_put(&p.a.u.kv, 1, NULL, v, vlen, &lim, NULL, NULL));
  CHECK(dvv_put(&p.b.u.kv, 2, NULL, v, vlen, &lim, NULL, NULL));
  free(v);
  report("kv", label, &p);
}

/* counter: @slots nodes; a and b each saw a different newer half. */
static void bench_counter(const char *label, int slots) {
  struct pair p;
  crdt_obj_init(&p.a, CRDT_COUNTER);
  crdt_obj_init(&p.b, CRDT_COUNTER);
  uint64_t opid = 1;
  for (int round = 0; round < PNCOUNTER_OP_WINDOW; round++)
    for (int s = 0; s < slots; s++) {
      struct crdt_op_id op = {0x5eed, opid++};
      int64_t amount = round % 3 == 1 ? -2 : 5;
      CHECK(pncounter_add(&p.a.u.counter, 1000 + (uint64_t)s, amount, &op, NULL,
                          NULL));
    }
  CHECK(pncounter_join(&p.b.u.counter, &p.a.u.counter));
  for (int s = 0; s < slots; s++) {
    struct crdt_op_id op = {0x5eed, opid++};
    CHECK(pncounter_add(s % 2 ? &p.a.u.counter : &p.b.u.counter,
                        1000 + (uint64_t)s, 1, &op, NULL, NULL));
  }
  report("counter", label, &p);
}

/* set: @n elements added at node 1; then a adds 10 more at node 1 while b
 * adds 10 at node 2 and removes 10. */
static void bench_set(const char *label, int n) {
  struct pair p;
  crdt_obj_init(&p.a, CRDT_SET);
  crdt_obj_init(&p.b, CRDT_SET);
  char e[32];
  for (int i = 0; i < n; i++) {
    int len = snprintf(e, sizeof e, "element-%08d", i);
    CHECK(orset_add(&p.a.u.set, 1, e, (size_t)len, NULL));
  }
  CHECK(orset_join(&p.b.u.set, &p.a.u.set));
  for (int i = 0; i < 10; i++) {
    int len = snprintf(e, sizeof e, "a-extra-%08d", i);
    CHECK(orset_add(&p.a.u.set, 1, e, (size_t)len, NULL));
    len = snprintf(e, sizeof e, "b-extra-%08d", i);
    CHECK(orset_add(&p.b.u.set, 2, e, (size_t)len, NULL));
    len = snprintf(e, sizeof e, "element-%08d", i * (n / 10));
    CHECK(orset_remove(&p.b.u.set, e, (size_t)len, NULL, NULL));
  }
  report("set", label, &p);
}

static void bench_lww(const char *label, size_t vlen) {
  struct pair p;
  crdt_obj_init(&p.a, CRDT_LWW);
  crdt_obj_init(&p.b, CRDT_LWW);
  uint8_t *v = malloc(vlen);
  value_of(v, vlen, 7);
  CHECK(lww_set(&p.a.u.lww, hlc_make(1764000000000ull, 0), 1, v, vlen, NULL));
  CHECK(lww_set(&p.b.u.lww, hlc_make(1764000000001ull, 0), 2, v, vlen, NULL));
  free(v);
  report("lww", label, &p);
}

int main(void) {
  printf("| type    | state                              | bytes     | "
         "join fresh ns | join no-op ns | encode ns | decode ns |\n");
  printf("|---------|------------------------------------|-----------|"
         "--------------|--------------|-----------|-----------|\n");
  bench_kv("3 siblings x 100 B (2 shared)", 2, 100);
  bench_kv("3 siblings x 10 B (2 shared)", 2, 10);
  bench_kv("100 siblings x 100 B (99 shared)", 99, 100);
  bench_counter("3 slots, full op-id windows", 3);
  bench_counter("64 slots, full op-id windows", 64);
  bench_set("10 elements", 10);
  bench_set("10,000 elements", 10000);
  bench_lww("100 B value", 100);
  bench_lww("64 KiB value", 65536);
  return 0;
}
