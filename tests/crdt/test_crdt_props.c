/* test_crdt_props.c: the merge laws and convergence of every crdt type over
 * random operation histories (seeded chorus_prng), delivered with reordering,
 * duplicates and drops, then a full exchange.
 *
 * HOW A CASE RUNS
 *
 * 2-5 replicas apply random operations; each operation ships a message (a
 * delta for counters and sets, the whole state for kv and lww) to every
 * other replica through a lossy network that delivers in random order,
 * duplicates and drops. Operations and deliveries interleave. Before the
 * final exchange the laws are checked on three states taken from the run
 * (two replicas and an in-flight message or a third replica):
 *   commutative  join(a, b) == join(b, a)
 *   associative  join(join(a, b), c) == join(a, join(b, c))
 *   idempotent   join(a, a) == a and join(join(a, b), b) == join(a, b)
 *   codec        decode(encode(x)) == x
 * Then every replica joins every other's state (two rounds) and all must be
 * equal (convergence) and match a model of the history (the oracle): a
 * counter equals the sum of the increments that reported "applied"; a set
 * holds exactly the add-dots that no remove or later add observed (add wins);
 * a kv object holds exactly the writes no other write's context covered, and
 * no replica ever keeps a sibling whose dot another sibling's history covers;
 * a map's counter that no remove touches equals the sum of its adds, and a
 * field updated concurrently with its removal survives (update wins).
 *
 * Default: CASES per type; -DCHORUS_LONG_TESTS: LONG_CASES.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "chorus_alloc.h"
#include "chorus_prng.h"
#include "crdt.h"

#ifdef CHORUS_LONG_TESTS
#define CASES 100000
#else
#define CASES 5000
#endif

#define MAXR 5

/* ------------------------------------------------------------------------
 * A type as the harness sees it
 * ------------------------------------------------------------------------ */

struct ty {
  const char *name;
  size_t size;
  void (*init)(void *);
  void (*free)(void *);
  int (*copy)(void *, const void *);
  int (*join)(void *, const void *);
  bool (*equal)(const void *, const void *);
  size_t (*enc_size)(const void *);
  int (*encode)(const void *, uint8_t *, size_t, size_t *);
  int (*decode)(void *, const uint8_t *, size_t, char *);
};

#define TY_WRAP(T, J)                                                          \
  static void T##_init_v(void *x) {                                            \
    T##_init(x);                                                               \
  }                                                                            \
  static void T##_free_v(void *x) {                                            \
    T##_free(x);                                                               \
  }                                                                            \
  static int T##_copy_v(void *d, const void *s) {                              \
    return T##_copy(d, s);                                                     \
  }                                                                            \
  static int T##_join_v(void *d, const void *s) {                              \
    return J;                                                                  \
  }                                                                            \
  static bool T##_equal_v(const void *a, const void *b) {                      \
    return T##_equal(a, b);                                                    \
  }                                                                            \
  static size_t T##_size_v(const void *x) {                                    \
    return T##_encoded_size(x);                                                \
  }                                                                            \
  static int T##_enc_v(const void *x, uint8_t *b, size_t c, size_t *w) {       \
    return T##_encode(x, b, c, w);                                             \
  }                                                                            \
  static int T##_dec_v(void *x, const uint8_t *b, size_t l, char *e) {         \
    return T##_decode(x, b, l, e);                                             \
  }                                                                            \
  static const struct ty ty_##T = {                                            \
      #T,         sizeof(struct T), T##_init_v, T##_free_v, T##_copy_v,        \
      T##_join_v, T##_equal_v,      T##_size_v, T##_enc_v,  T##_dec_v};

TY_WRAP(dvv, dvv_join(d, s, NULL, NULL))
TY_WRAP(gcounter, gcounter_join(d, s))
TY_WRAP(pncounter, pncounter_join(d, s))
TY_WRAP(lww, lww_join(d, s))
TY_WRAP(orset, orset_join(d, s))
TY_WRAP(crdt_map, crdt_map_join(d, s))

static void *ty_new(const struct ty *t) {
  void *x = test_malloc(t->size);
  t->init(x);
  return x;
}

static void *ty_dup(const struct ty *t, const void *src) {
  void *x = ty_new(t);
  assert_int_equal(t->copy(x, src), CHORUS_OK);
  return x;
}

static void ty_del(const struct ty *t, void *x) {
  if (x) {
    t->free(x);
    test_free(x);
  }
}

static void *ty_join2(const struct ty *t, const void *a, const void *b) {
  void *x = ty_dup(t, a);
  assert_int_equal(t->join(x, b), CHORUS_OK);
  return x;
}

static unsigned long law_checks[4]; /* comm, assoc, idem, codec */

static void check_codec(const struct ty *t, const void *x) {
  size_t n = t->enc_size(x), w = 0;
  uint8_t *buf = test_malloc(n);
  assert_int_equal(t->encode(x, buf, n, &w), CHORUS_OK);
  assert_int_equal(w, n);
  void *y = test_malloc(t->size);
  char err[CHORUS_ERRMSG_SIZE] = "";
  int rc = t->decode(y, buf, n, err);
  if (rc != CHORUS_OK)
    fail_msg("%s decode of own encoding failed: %s", t->name, err);
  assert_true(t->equal(x, y));
  t->free(y);
  test_free(y);
  test_free(buf);
  law_checks[3]++;
}

static void check_laws(const struct ty *t, const void *a, const void *b,
                       const void *c) {
  void *ab = ty_join2(t, a, b), *ba = ty_join2(t, b, a);
  assert_true(t->equal(ab, ba));
  law_checks[0]++;

  void *ab_c = ty_join2(t, ab, c), *bc = ty_join2(t, b, c);
  void *a_bc = ty_join2(t, a, bc);
  assert_true(t->equal(ab_c, a_bc));
  law_checks[1]++;

  void *aa = ty_join2(t, a, a), *abb = ty_join2(t, ab, b);
  assert_true(t->equal(aa, a));
  assert_true(t->equal(abb, ab));
  law_checks[2]++;

  check_codec(t, ab_c);
  ty_del(t, ab);
  ty_del(t, ba);
  ty_del(t, ab_c);
  ty_del(t, bc);
  ty_del(t, a_bc);
  ty_del(t, aa);
  ty_del(t, abb);
}

/* ------------------------------------------------------------------------
 * The lossy network
 * ------------------------------------------------------------------------ */

struct msg {
  int to;
  void *state;
};

struct net {
  const struct ty *t;
  struct chorus_prng *prng;
  struct msg *q;
  size_t n, cap;
  double p_dup, p_drop;
};

static void net_send(struct net *net, int to, const void *state) {
  if (net->n == net->cap) {
    net->cap = net->cap ? net->cap * 2 : 16;
    net->q = test_realloc(net->q, net->cap * sizeof *net->q);
  }
  net->q[net->n].to = to;
  net->q[net->n].state = ty_dup(net->t, state);
  net->n++;
}

static void net_broadcast(struct net *net, int from, int nrep,
                          const void *state) {
  for (int r = 0; r < nrep; r++)
    if (r != from)
      net_send(net, r, state);
}

/* Delivers (or drops, or duplicates) one random message into @reps. */
static void net_step(struct net *net, void **reps) {
  if (net->n == 0)
    return;
  size_t i = chorus_prng_below(net->prng, net->n);
  struct msg m = net->q[i];
  bool dup = chorus_prng_chance(net->prng, net->p_dup);
  if (!chorus_prng_chance(net->prng, net->p_drop))
    assert_int_equal(net->t->join(reps[m.to], m.state), CHORUS_OK);
  if (dup)
    return; /* stays queued: it will arrive again */
  net->q[i] = net->q[--net->n];
  ty_del(net->t, m.state);
}

static void net_free(struct net *net) {
  for (size_t i = 0; i < net->n; i++)
    ty_del(net->t, net->q[i].state);
  test_free(net->q);
}

/* Checks the laws on two replicas and an in-flight message (or a third
 * replica), then fully exchanges and checks convergence. */
static void finish_case(struct net *net, void **reps, int nrep) {
  const struct ty *t = net->t;
  int a = (int)chorus_prng_below(net->prng, (uint64_t)nrep);
  int b = (int)chorus_prng_below(net->prng, (uint64_t)nrep);
  const void *c = net->n ? net->q[chorus_prng_below(net->prng, net->n)].state
                         : reps[chorus_prng_below(net->prng, (uint64_t)nrep)];
  check_laws(t, reps[a], reps[b], c);

  for (int round = 0; round < 2; round++)
    for (int i = 0; i < nrep; i++)
      for (int j = 0; j < nrep; j++)
        if (i != j)
          assert_int_equal(t->join(reps[i], reps[j]), CHORUS_OK);
  for (int i = 1; i < nrep; i++)
    assert_true(t->equal(reps[0], reps[i]));
}

static void setup_net(struct net *net, const struct ty *t,
                      struct chorus_prng *prng) {
  memset(net, 0, sizeof *net);
  net->t = t;
  net->prng = prng;
  net->p_dup = chorus_prng_unit(prng) * 0.3;
  net->p_drop = chorus_prng_unit(prng) * 0.3;
}

static chorus_node_id node_of(int r) {
  return 0x1000 + (chorus_node_id)r * 0x9e37;
}

static void report(const char *name, unsigned long cases, clock_t t0) {
  printf("# %s: %lu cases; law checks: commutative %lu, associative %lu, "
         "idempotent %lu, codec %lu; %.1f s\n",
         name, cases, law_checks[0], law_checks[1], law_checks[2],
         law_checks[3], (double)(clock() - t0) / CLOCKS_PER_SEC);
  memset(law_checks, 0, sizeof law_checks);
}

/* ------------------------------------------------------------------------
 * Counters
 * ------------------------------------------------------------------------ */

static void pncounter_laws_and_sum(void **state) {
  (void)state;
  clock_t t0 = clock();
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 0xc0ffee01);
  for (unsigned long k = 0; k < CASES; k++) {
    int nrep = (int)chorus_prng_range(&prng, 2, MAXR);
    struct net net;
    setup_net(&net, &ty_pncounter, &prng);
    void *reps[MAXR];
    for (int r = 0; r < nrep; r++)
      reps[r] = ty_new(&ty_pncounter);
    struct crdt_op_id ops[64];
    int nops = 0;
    int64_t expect = 0;
    int steps = (int)chorus_prng_range(&prng, 1, 40);
    struct pncounter delta;
    pncounter_init(&delta);
    for (int s = 0; s < steps; s++) {
      if (chorus_prng_chance(&prng, 0.5)) {
        net_step(&net, reps);
        continue;
      }
      int r = (int)chorus_prng_below(&prng, (uint64_t)nrep);
      int64_t amount = (int64_t)chorus_prng_range(&prng, 1, 9);
      if (chorus_prng_chance(&prng, 0.4))
        amount = -amount;
      struct crdt_op_id op = {0, 0}, *opp = NULL;
      if (nops > 0 && chorus_prng_chance(&prng, 0.3)) {
        op = ops[chorus_prng_below(&prng, (uint64_t)nops)]; /* a retry */
        opp = &op;
      } else if (chorus_prng_chance(&prng, 0.8) && nops < 64) {
        op.hi = chorus_prng_next(&prng) | 1;
        op.lo = chorus_prng_next(&prng);
        ops[nops++] = op;
        opp = &op;
      }
      bool seen_here = pncounter_seen(reps[r], opp);
      bool applied;
      assert_int_equal(
          pncounter_add(reps[r], node_of(r), amount, opp, &delta, &applied),
          CHORUS_OK);
      assert_int_equal(applied, !seen_here);
      if (applied) {
        expect += amount;
        net_broadcast(&net, r, nrep, &delta);
      }
    }
    pncounter_free(&delta);
    finish_case(&net, reps, nrep);
    int64_t v;
    assert_int_equal(pncounter_value(reps[0], &v), CHORUS_OK);
    assert_int_equal(v, expect);
    for (int r = 0; r < nrep; r++)
      ty_del(&ty_pncounter, reps[r]);
    net_free(&net);
  }
  report("pncounter", CASES, t0);
}

static void gcounter_laws_and_sum(void **state) {
  (void)state;
  clock_t t0 = clock();
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 0xc0ffee02);
  for (unsigned long k = 0; k < CASES; k++) {
    int nrep = (int)chorus_prng_range(&prng, 2, MAXR);
    struct net net;
    setup_net(&net, &ty_gcounter, &prng);
    void *reps[MAXR];
    for (int r = 0; r < nrep; r++)
      reps[r] = ty_new(&ty_gcounter);
    uint64_t expect = 0;
    int steps = (int)chorus_prng_range(&prng, 1, 40);
    struct gcounter delta;
    gcounter_init(&delta);
    for (int s = 0; s < steps; s++) {
      if (chorus_prng_chance(&prng, 0.5)) {
        net_step(&net, reps);
        continue;
      }
      int r = (int)chorus_prng_below(&prng, (uint64_t)nrep);
      uint64_t amount = chorus_prng_range(&prng, 1, 100);
      assert_int_equal(gcounter_inc(reps[r], node_of(r), amount, &delta),
                       CHORUS_OK);
      expect += amount;
      net_broadcast(&net, r, nrep, &delta);
    }
    gcounter_free(&delta);
    finish_case(&net, reps, nrep);
    uint64_t v;
    assert_int_equal(gcounter_value(reps[0], &v), CHORUS_OK);
    assert_int_equal(v, expect);
    for (int r = 0; r < nrep; r++)
      ty_del(&ty_gcounter, reps[r]);
    net_free(&net);
  }
  report("gcounter", CASES, t0);
}

/* ------------------------------------------------------------------------
 * OR-set: the oracle tracks every add's dot and whether a later remove or
 * add at some replica observed it. Expected final dots of e = e's
 * unobserved add-dots; e is present iff there is one (add wins).
 * ------------------------------------------------------------------------ */

#define NELEM 6
#define MAXADDS 64

struct add_rec {
  int elem;
  struct crdt_dot dot;
  bool observed;
};

static void observe(struct add_rec *adds, int nadds, const struct orset *s,
                    int elem, const char *name) {
  for (uint32_t i = 0; i < s->n; i++) {
    if (s->e[i].len != 1 || s->e[i].data[0] != (uint8_t)name[elem])
      continue;
    for (uint32_t k = 0; k < s->e[i].ndots; k++)
      for (int a = 0; a < nadds; a++)
        if (adds[a].dot.node == s->e[i].dots[k].node &&
            adds[a].dot.counter == s->e[i].dots[k].counter)
          adds[a].observed = true;
  }
}

/* observe() for a remove with a reader's context @seen: it drops, so
 * observes, every add of e that @seen covers, whether the replica applying
 * it holds that add yet or gets it later (crdt.h, deferred removes); @s is
 * unused, kept for the call sites' symmetry with observe(). */
static void observe_seen(struct add_rec *adds, int nadds, const struct orset *s,
                         int elem, const char *name,
                         const struct crdt_ctx *seen) {
  (void)s;
  (void)name;
  for (int a = 0; a < nadds; a++)
    if (adds[a].elem == elem && crdt_ctx_covers(seen, adds[a].dot))
      adds[a].observed = true;
}

/* After orset_remove_seen(e, @seen) at @s: e keeps exactly its dots @seen
 * does not cover (@before: the replica just before). */
static void check_remove_seen(const struct orset *s, const struct orset *before,
                              int elem, const char *name,
                              const struct crdt_ctx *seen) {
  uint32_t want = 0;
  for (uint32_t i = 0; i < before->n; i++)
    if (before->e[i].len == 1 && before->e[i].data[0] == (uint8_t)name[elem])
      for (uint32_t k = 0; k < before->e[i].ndots; k++)
        want += !crdt_ctx_covers(seen, before->e[i].dots[k]);
  bool found = false;
  for (uint32_t i = 0; i < s->n; i++)
    if (s->e[i].len == 1 && s->e[i].data[0] == (uint8_t)name[elem]) {
      found = true;
      assert_int_equal(s->e[i].ndots, want);
      for (uint32_t k = 0; k < s->e[i].ndots; k++)
        assert_false(crdt_ctx_covers(seen, s->e[i].dots[k]));
    }
  assert_int_equal(found, want > 0);
  assert_true(crdt_ctx_equal(&s->ctx, &before->ctx));
}

static void orset_laws_and_add_wins(void **state) {
  (void)state;
  static const char name[NELEM + 1] = "abcdef";
  clock_t t0 = clock();
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 0xc0ffee03);
  unsigned long concurrent_add_remove = 0, seen_removes = 0;
  for (unsigned long k = 0; k < CASES; k++) {
    int nrep = (int)chorus_prng_range(&prng, 2, MAXR);
    struct net net;
    setup_net(&net, &ty_orset, &prng);
    /* A client's read: the context of some replica at some step, used by
     * later removes anywhere (SET_READ, then SET_REMOVE with it). */
    struct crdt_ctx snap;
    crdt_ctx_init(&snap);
    bool have_snap = false;
    void *reps[MAXR];
    for (int r = 0; r < nrep; r++)
      reps[r] = ty_new(&ty_orset);
    struct add_rec adds[MAXADDS];
    int nadds = 0;
    int steps = (int)chorus_prng_range(&prng, 1, 40);
    struct orset delta;
    orset_init(&delta);
    for (int s = 0; s < steps; s++) {
      if (chorus_prng_chance(&prng, 0.15)) {
        int rr = (int)chorus_prng_below(&prng, (uint64_t)nrep);
        assert_int_equal(crdt_ctx_copy(&snap, &((struct orset *)reps[rr])->ctx),
                         CHORUS_OK);
        have_snap = true;
      }
      if (chorus_prng_chance(&prng, 0.5)) {
        net_step(&net, reps);
        continue;
      }
      int r = (int)chorus_prng_below(&prng, (uint64_t)nrep);
      int e = (int)chorus_prng_below(&prng, NELEM);
      if (nadds < MAXADDS && chorus_prng_chance(&prng, 0.6)) {
        observe(adds, nadds, reps[r], e, name);
        assert_int_equal(orset_add(reps[r], node_of(r), &name[e], 1, &delta),
                         CHORUS_OK);
        bool f;
        struct orset *x = reps[r];
        (void)f;
        for (uint32_t i = 0; i < x->n; i++)
          if (x->e[i].len == 1 && x->e[i].data[0] == (uint8_t)name[e])
            adds[nadds++] = (struct add_rec){e, x->e[i].dots[0], false};
      } else if (have_snap && chorus_prng_chance(&prng, 0.5)) {
        observe_seen(adds, nadds, reps[r], e, name, &snap);
        void *before = ty_dup(&ty_orset, reps[r]);
        assert_int_equal(
            orset_remove_seen(reps[r], &name[e], 1, &snap, &delta, NULL),
            CHORUS_OK);
        check_remove_seen(reps[r], before, e, name, &snap);
        ty_del(&ty_orset, before);
        seen_removes++;
      } else {
        observe(adds, nadds, reps[r], e, name);
        bool removed;
        assert_int_equal(orset_remove(reps[r], &name[e], 1, &delta, &removed),
                         CHORUS_OK);
      }
      assert_false(orset_contains(&delta, "zz", 2));
      net_broadcast(&net, r, nrep, &delta);
    }
    /* The add-wins case proper: r0 adds x while r1, not having seen it,
     * removes x; after the exchange x must be present. */
    {
      int r0 = 0, r1 = 1, e = (int)chorus_prng_below(&prng, NELEM);
      if (nadds < MAXADDS) {
        observe(adds, nadds, reps[r1], e, name);
        assert_int_equal(orset_remove(reps[r1], &name[e], 1, &delta, NULL),
                         CHORUS_OK);
        net_broadcast(&net, r1, nrep, &delta);
        observe(adds, nadds, reps[r0], e, name);
        assert_int_equal(orset_add(reps[r0], node_of(r0), &name[e], 1, &delta),
                         CHORUS_OK);
        adds[nadds++] = (struct add_rec){e, delta.e[0].dots[0], false};
        net_broadcast(&net, r0, nrep, &delta);
        concurrent_add_remove++;
      }
      /* Issue 21's case: a client reads at r1; r0 adds e concurrently and
       * r1 gets that add; then the client's remove with its old context,
       * coordinated at r1: the add it never saw survives. */
      if (nadds < MAXADDS) {
        e = (int)chorus_prng_below(&prng, NELEM);
        assert_int_equal(crdt_ctx_copy(&snap, &((struct orset *)reps[r1])->ctx),
                         CHORUS_OK);
        observe(adds, nadds, reps[r0], e, name);
        assert_int_equal(orset_add(reps[r0], node_of(r0), &name[e], 1, &delta),
                         CHORUS_OK);
        adds[nadds++] = (struct add_rec){e, delta.e[0].dots[0], false};
        assert_int_equal(orset_join(reps[r1], &delta), CHORUS_OK);
        net_broadcast(&net, r0, nrep, &delta);
        observe_seen(adds, nadds, reps[r1], e, name, &snap);
        assert_int_equal(
            orset_remove_seen(reps[r1], &name[e], 1, &snap, &delta, NULL),
            CHORUS_OK);
        assert_true(orset_contains(reps[r1], &name[e], 1));
        net_broadcast(&net, r1, nrep, &delta);
        seen_removes++;
      }
    }
    crdt_ctx_free(&snap);
    orset_free(&delta);
    finish_case(&net, reps, nrep);
    const struct orset *fin = reps[0];
    for (int e = 0; e < NELEM; e++) {
      uint32_t want = 0;
      for (int a = 0; a < nadds; a++)
        want += adds[a].elem == e && !adds[a].observed;
      bool present = orset_contains(fin, &name[e], 1);
      assert_int_equal(present, want > 0);
      for (uint32_t i = 0; i < fin->n; i++)
        if (fin->e[i].data[0] == (uint8_t)name[e])
          assert_int_equal(fin->e[i].ndots, want);
    }
    for (int r = 0; r < nrep; r++)
      ty_del(&ty_orset, reps[r]);
    net_free(&net);
  }
  printf("# orset: %lu concurrent add/remove pairs, %lu removes with a "
         "reader's context, all add-wins\n",
         concurrent_add_remove, seen_removes);
  report("orset", CASES, t0);
}

/* ------------------------------------------------------------------------
 * DVV (kv): clients read contexts from replicas and write through random
 * coordinators. The oracle keeps each write's history (its context plus its
 * own dot): the final siblings must be exactly the writes no other write's
 * history covers, and no replica may ever hold a sibling covered by another
 * sibling's history.
 * ------------------------------------------------------------------------ */

#define MAXW 48
#define NCLIENT 3

/* A write's history is its context plus its own dot: not a contiguous
 * vector, since a blind write's dot (r, k) does not cover (r, k - 1). */
struct write_rec {
  struct crdt_dot dot;
  struct vv ctx;
};

static bool dot_eq(struct crdt_dot a, struct crdt_dot b) {
  return a.node == b.node && a.counter == b.counter;
}

static bool hist_covers(const struct write_rec *w, struct crdt_dot d) {
  return dot_eq(w->dot, d) || vv_covers(&w->ctx, d);
}

static const struct write_rec *hist_of(const struct write_rec *w, int nw,
                                       struct crdt_dot d) {
  for (int i = 0; i < nw; i++)
    if (dot_eq(w[i].dot, d))
      return &w[i];
  return NULL;
}

static void check_no_covered_sibling(const struct dvv *d,
                                     const struct write_rec *w, int nw) {
  for (uint32_t i = 0; i < d->n; i++)
    for (uint32_t j = 0; j < d->n; j++) {
      if (i == j)
        continue;
      const struct write_rec *h = hist_of(w, nw, d->sib[j].dot);
      if (h == NULL)
        fail_msg("sibling %u is no recorded write", j);
      else
        assert_false(hist_covers(h, d->sib[i].dot));
    }
}

static void dvv_laws_and_siblings(void **state) {
  (void)state;
  clock_t t0 = clock();
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 0xc0ffee04);
  struct dvv_limits lim = {1000, 1000, NULL};
  unsigned long max_sib = 0;
  for (unsigned long k = 0; k < CASES; k++) {
    int nrep = (int)chorus_prng_range(&prng, 2, MAXR);
    struct net net;
    setup_net(&net, &ty_dvv, &prng);
    void *reps[MAXR];
    for (int r = 0; r < nrep; r++)
      reps[r] = ty_new(&ty_dvv);
    struct vv client[NCLIENT];
    for (int c = 0; c < NCLIENT; c++)
      vv_init(&client[c]);
    struct write_rec w[MAXW];
    int nw = 0;
    int steps = (int)chorus_prng_range(&prng, 1, 40);
    for (int s = 0; s < steps; s++) {
      double u = chorus_prng_unit(&prng);
      int r = (int)chorus_prng_below(&prng, (uint64_t)nrep);
      int c = (int)chorus_prng_below(&prng, NCLIENT);
      struct dvv *d = reps[r];
      if (u < 0.4) {
        net_step(&net, reps);
        continue;
      }
      if (u < 0.6) {
        assert_int_equal(vv_copy(&client[c], dvv_context(d)), CHORUS_OK);
        continue;
      }
      if (nw == MAXW)
        continue;
      bool blind = chorus_prng_chance(&prng, 0.15);
      const struct vv *ctx = blind ? NULL : &client[c];
      struct crdt_dot dot;
      uint8_t val[2] = {(uint8_t)nw, (uint8_t)r};
      /* Write times (issue 20) ride along: joins must carry them. */
      hlc_time ts = hlc_make(1000 + (chorus_ms)nw, 0);
      hlc_time expires =
          chorus_prng_chance(&prng, 0.3) ? ts + hlc_make(50, 0) : 0;
      if (chorus_prng_chance(&prng, 0.2))
        assert_int_equal(
            dvv_delete_at(d, node_of(r), ctx, ts, &lim, &dot, NULL), CHORUS_OK);
      else
        assert_int_equal(dvv_put_at(d, node_of(r), ctx, val, sizeof val, ts,
                                    expires, &lim, &dot, NULL),
                         CHORUS_OK);
      vv_init(&w[nw].ctx);
      if (ctx)
        assert_int_equal(vv_copy(&w[nw].ctx, ctx), CHORUS_OK);
      w[nw++].dot = dot;
      check_no_covered_sibling(d, w, nw);
      net_broadcast(&net, r, nrep, d);
    }
    for (int r = 0; r < nrep; r++)
      check_no_covered_sibling(reps[r], w, nw);
    finish_case(&net, reps, nrep);
    const struct dvv *fin = reps[0];
    check_no_covered_sibling(fin, w, nw);
    uint32_t want = 0;
    for (int i = 0; i < nw; i++) {
      bool covered = false;
      for (int j = 0; j < nw && !covered; j++)
        covered = j != i && hist_covers(&w[j], w[i].dot);
      if (covered)
        continue;
      want++;
      bool found = false;
      for (uint32_t x = 0; x < fin->n; x++)
        found |= fin->sib[x].dot.node == w[i].dot.node &&
                 fin->sib[x].dot.counter == w[i].dot.counter;
      assert_true(found);
    }
    assert_int_equal(fin->n, want);
    if (fin->n > max_sib)
      max_sib = fin->n;
    for (int i = 0; i < nw; i++)
      vv_free(&w[i].ctx);
    for (int c = 0; c < NCLIENT; c++)
      vv_free(&client[c]);
    for (int r = 0; r < nrep; r++)
      ty_del(&ty_dvv, reps[r]);
    net_free(&net);
  }
  printf("# dvv: up to %lu siblings at convergence\n", max_sib);
  report("dvv", CASES, t0);
}

/* ------------------------------------------------------------------------
 * LWW: each replica stamps writes with its own HLC over a skewed clock; the
 * converged register holds the greatest (ts, node) write.
 * ------------------------------------------------------------------------ */

static void lww_laws_and_winner(void **state) {
  (void)state;
  clock_t t0 = clock();
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 0xc0ffee05);
  for (unsigned long k = 0; k < CASES; k++) {
    int nrep = (int)chorus_prng_range(&prng, 2, MAXR);
    struct net net;
    setup_net(&net, &ty_lww, &prng);
    void *reps[MAXR];
    struct hlc clk[MAXR];
    uint64_t skew[MAXR];
    for (int r = 0; r < nrep; r++) {
      reps[r] = ty_new(&ty_lww);
      hlc_init(&clk[r], 1000);
      skew[r] = chorus_prng_below(&prng, 5);
    }
    chorus_ms now = 1000000;
    hlc_time best_ts = 0;
    chorus_node_id best_node = 0;
    bool best_present = false, any = false;
    uint8_t best_val = 0;
    int steps = (int)chorus_prng_range(&prng, 1, 40);
    for (int s = 0; s < steps; s++) {
      now += chorus_prng_below(&prng, 3);
      if (chorus_prng_chance(&prng, 0.5)) {
        net_step(&net, reps);
        continue;
      }
      int r = (int)chorus_prng_below(&prng, (uint64_t)nrep);
      /* The coordinator first observes the stored write's time (a receive
       * event), so its own write is stamped after it. */
      hlc_time ts;
      const struct lww *cur = reps[r];
      assert_int_equal(hlc_recv(&clk[r], now + skew[r], cur->ts, NULL),
                       CHORUS_OK);
      assert_int_equal(hlc_now(&clk[r], now + skew[r], &ts), CHORUS_OK);
      uint8_t v = (uint8_t)chorus_prng_next(&prng);
      bool del = chorus_prng_chance(&prng, 0.2);
      bool applied;
      if (del)
        assert_int_equal(lww_delete(reps[r], ts, node_of(r), &applied),
                         CHORUS_OK);
      else
        assert_int_equal(lww_set(reps[r], ts, node_of(r), &v, 1, &applied),
                         CHORUS_OK);
      assert_true(applied); /* stamped after everything it has seen */
      if (!any || ts > best_ts || (ts == best_ts && node_of(r) > best_node)) {
        any = true;
        best_ts = ts;
        best_node = node_of(r);
        best_present = !del;
        best_val = v;
      }
      net_broadcast(&net, r, nrep, reps[r]);
    }
    finish_case(&net, reps, nrep);
    const struct lww *fin = reps[0];
    if (any) {
      assert_true(fin->ts == best_ts && fin->node == best_node);
      assert_int_equal(fin->present, best_present);
      if (best_present)
        assert_int_equal(fin->value[0], best_val);
    } else {
      assert_false(fin->present);
    }
    for (int r = 0; r < nrep; r++)
      ty_del(&ty_lww, reps[r]);
    net_free(&net);
  }
  report("lww", CASES, t0);
}

/* ------------------------------------------------------------------------
 * Maps: random operations on random paths up to three levels deep, whole
 * states shipped (as replication does), removes with a client's old context
 * or the coordinator's.
 * ------------------------------------------------------------------------ */

static const uint8_t map_names[] = "abcn";

/* A random op on a random path (the top-level field "n" is left to the
 * counter oracle). */
static void map_random_op(struct chorus_prng *prng, struct crdt_map_op *op) {
  memset(op, 0, sizeof *op);
  op->kind = (enum crdt_map_op_kind)chorus_prng_range(
      prng, CRDT_MAP_OP_REGISTER_SET, CRDT_MAP_OP_REMOVE);
  op->depth = (uint32_t)chorus_prng_range(prng, 1, 3);
  for (uint32_t i = 0; i + 1 < op->depth; i++)
    op->path[i] = (struct crdt_map_key){&map_names[chorus_prng_below(prng, 2)],
                                        1, CRDT_MAP_MAP};
  static const enum crdt_map_ftype by_kind[] = {0,
                                                CRDT_MAP_REGISTER,
                                                CRDT_MAP_COUNTER,
                                                CRDT_MAP_SET,
                                                CRDT_MAP_SET,
                                                CRDT_MAP_FLAG,
                                                CRDT_MAP_FLAG,
                                                0};
  enum crdt_map_ftype t = by_kind[op->kind];
  if (op->kind == CRDT_MAP_OP_REMOVE)
    t = (enum crdt_map_ftype)chorus_prng_range(
        prng, CRDT_MAP_REGISTER, op->depth < 3 ? CRDT_MAP_MAP : CRDT_MAP_FLAG);
  op->path[op->depth - 1] =
      (struct crdt_map_key){&map_names[chorus_prng_below(prng, 3)], 1, t};
  op->data = &map_names[chorus_prng_below(prng, 3)];
  op->len = 1;
  op->amount = (int64_t)chorus_prng_range(prng, 1, 9);
  if (chorus_prng_chance(prng, 0.4))
    op->amount = -op->amount;
}

static const struct crdt_map_field *
map_top(const struct crdt_map *m, const char *name, enum crdt_map_ftype t) {
  return crdt_map_find(&m->root, (const uint8_t *)name, 1, t);
}

static void map_laws_and_update_wins(void **state) {
  (void)state;
  clock_t t0 = clock();
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 0xc0ffee06);
  unsigned long ops_done = 0, seen_removes = 0;
  for (unsigned long k = 0; k < CASES; k++) {
    int nrep = (int)chorus_prng_range(&prng, 2, MAXR);
    struct net net;
    setup_net(&net, &ty_crdt_map, &prng);
    struct crdt_ctx snap;
    crdt_ctx_init(&snap);
    bool have_snap = false;
    void *reps[MAXR];
    for (int r = 0; r < nrep; r++)
      reps[r] = ty_new(&ty_crdt_map);
    int64_t expect = 0;
    hlc_time ts = 1;
    int steps = (int)chorus_prng_range(&prng, 1, 30);
    for (int s = 0; s < steps; s++) {
      if (chorus_prng_chance(&prng, 0.15)) {
        int rr = (int)chorus_prng_below(&prng, (uint64_t)nrep);
        assert_int_equal(
            crdt_ctx_copy(&snap, &((struct crdt_map *)reps[rr])->ctx),
            CHORUS_OK);
        have_snap = true;
      }
      if (chorus_prng_chance(&prng, 0.5)) {
        net_step(&net, reps);
        continue;
      }
      int r = (int)chorus_prng_below(&prng, (uint64_t)nrep);
      struct crdt_map_op ops[3];
      uint32_t nops = (uint32_t)chorus_prng_range(&prng, 1, 3);
      for (uint32_t i = 0; i < nops; i++)
        map_random_op(&prng, &ops[i]);
      if (chorus_prng_chance(&prng, 0.3)) {
        /* The oracle's counter, alone at the top level. */
        ops[0] = (struct crdt_map_op){.kind = CRDT_MAP_OP_COUNTER_ADD,
                                      .depth = 1,
                                      .amount = ops[0].amount};
        ops[0].path[0] =
            (struct crdt_map_key){&map_names[3], 1, CRDT_MAP_COUNTER};
        expect += ops[0].amount;
      }
      bool use_snap = have_snap && chorus_prng_chance(&prng, 0.5);
      seen_removes += use_snap;
      char err[CHORUS_ERRMSG_SIZE] = "";
      int rc = crdt_map_update(reps[r], node_of(r), ts++,
                               use_snap ? &snap : NULL, ops, nops, err);
      if (rc != CHORUS_OK)
        fail_msg("map update: %s", err);
      ops_done += nops;
      net_broadcast(&net, r, nrep, reps[r]);
    }
    finish_case(&net, reps, nrep);
    /* Update wins, on the converged replicas: a client reads at r1 (its
     * context); r0 then resets "a" and adds 5 to it; the client's remove of
     * "a" with its old context, coordinated at r1, comes after. Once all
     * exchange, "a" holds r0's concurrent add alone. */
    {
      struct crdt_ctx old;
      crdt_ctx_init(&old);
      assert_int_equal(crdt_ctx_copy(&old, &((struct crdt_map *)reps[1])->ctx),
                       CHORUS_OK);
      struct crdt_map_op up[2] = {
          {.kind = CRDT_MAP_OP_REMOVE, .depth = 1},
          {.kind = CRDT_MAP_OP_COUNTER_ADD, .depth = 1, .amount = 5}};
      up[0].path[0] = up[1].path[0] =
          (struct crdt_map_key){&map_names[0], 1, CRDT_MAP_COUNTER};
      assert_int_equal(
          crdt_map_update(reps[0], node_of(0), ts++, NULL, up, 2, NULL),
          CHORUS_OK);
      assert_int_equal(
          crdt_map_update(reps[1], node_of(1), ts++, &old, up, 1, NULL),
          CHORUS_OK);
      crdt_ctx_free(&old);
      for (int i = 0; i < nrep; i++)
        for (int j = 0; j < nrep; j++)
          if (i != j)
            assert_int_equal(crdt_map_join(reps[i], reps[j]), CHORUS_OK);
      for (int i = 0; i < nrep; i++) {
        const struct crdt_map_field *f =
            map_top(reps[i], "a", CRDT_MAP_COUNTER);
        assert_non_null(f);
        int64_t v;
        assert_int_equal(crdt_map_counter(f, &v), CHORUS_OK);
        assert_int_equal(v, 5);
        assert_true(crdt_map_equal(reps[0], reps[i]));
      }
    }
    const struct crdt_map_field *n = map_top(reps[0], "n", CRDT_MAP_COUNTER);
    int64_t v = 0;
    if (n)
      assert_int_equal(crdt_map_counter(n, &v), CHORUS_OK);
    assert_int_equal(v, expect);
    crdt_ctx_free(&snap);
    for (int r = 0; r < nrep; r++)
      ty_del(&ty_crdt_map, reps[r]);
    net_free(&net);
  }
  printf("# map: %lu ops, %lu with a client's old context\n", ops_done,
         seen_removes);
  report("map", CASES, t0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pncounter_laws_and_sum),
      cmocka_unit_test(gcounter_laws_and_sum),
      cmocka_unit_test(orset_laws_and_add_wins),
      cmocka_unit_test(dvv_laws_and_siblings),
      cmocka_unit_test(lww_laws_and_winner),
      cmocka_unit_test(map_laws_and_update_wins),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
