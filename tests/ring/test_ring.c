/* test_ring.c: the ring: token derivation, spec parser, snapshot builder,
 * balance and movement tables, placement properties against a plain
 * reference walk over random topologies, states, range movement, OOM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "chorus_prng.h"
#include "ring.h"

#ifdef CHORUS_LONG_TESTS
enum { TOPOLOGIES = 20000, BALANCE_ID_SETS = 8 };
#else
enum { TOPOLOGIES = 1000, BALANCE_ID_SETS = 1 };
#endif

/* Node ids as chorusd derives them, xxh3 of a name; id set 0 is
 * "node-<i>", set k > 0 "set<k>-node-<i>" (as bench_ring names them). */
static chorus_node_id set_id(int set, int i) {
  char name[32];
  if (set == 0)
    snprintf(name, sizeof name, "node-%d", i);
  else
    snprintf(name, sizeof name, "set%d-node-%d", set, i);
  return ring_token_of(name, strlen(name));
}

static chorus_node_id named_id(int i) {
  return set_id(0, i);
}

static struct ring_node mk_node(chorus_node_id id, const char *dc,
                                const char *rack, enum ring_node_state st,
                                uint32_t vnodes) {
  struct ring_node n;
  memset(&n, 0, sizeof n);
  n.id = id;
  snprintf(n.dc, sizeof n.dc, "%s", dc);
  snprintf(n.rack, sizeof n.rack, "%s", rack);
  n.state = st;
  n.vnodes = vnodes;
  return n;
}

static struct ring_snapshot *build_spec(const struct ring_node *nodes, size_t n,
                                        const char *spec) {
  struct ring_replication repl;
  char err[CHORUS_ERRMSG_SIZE] = "";
  assert_int_equal(ring_replication_parse(spec, &repl, err), CHORUS_OK);
  struct ring_snapshot *s = NULL;
  int rc = ring_snapshot_build(nodes, n, &repl, 7, &s, err);
  if (rc != CHORUS_OK)
    fail_msg("build: %s", err);
  return s;
}

/* k nodes named node-0..node-(k-1), one DC, one rack, default T. */
static struct ring_snapshot *named_ring(int k, const char *spec) {
  struct ring_node *nodes = chorus_calloc((size_t)k, sizeof *nodes);
  for (int i = 0; i < k; i++)
    nodes[i] = mk_node(named_id(i), "dc1", "r1", RING_NORMAL, 0);
  struct ring_snapshot *s = build_spec(nodes, (size_t)k, spec);
  chorus_free(nodes);
  return s;
}

/* ------------------------------------------------------------------------
 * Tokens
 * ------------------------------------------------------------------------ */

static void tokens_follow_the_documented_layout(void **state) {
  (void)state;
  assert_true(ring_token_of("abc", 3) == XXH3_64bits("abc", 3));
  assert_true(ring_token_of(NULL, 0) == XXH3_64bits("", 0));
  /* A keyspace's key has its client key's token; the prefix alone, or a
   * key of other bytes, hashes whole. */
  assert_true(ring_token_of("\0\0\0\0\7abc", 8) == XXH3_64bits("abc", 3));
  assert_true(ring_token_of("\0\0\0\0\7", 5) == XXH3_64bits("\0\0\0\0\7", 5));
  assert_true(ring_token_of("\1\0\0\0\7abc", 8) ==
              XXH3_64bits("\1\0\0\0\7abc", 8));
  unsigned char buf[12] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03,
                           0x02, 0x01, 0x2a, 0x01, 0x00, 0x00};
  assert_true(ring_vnode_token(0x0102030405060708ull, 0x12a) ==
              XXH3_64bits(buf, sizeof buf));
  assert_true(ring_vnode_token(1, 0) != ring_vnode_token(1, 1));
  assert_true(ring_vnode_token(1, 0) != ring_vnode_token(2, 0));
}

/* ------------------------------------------------------------------------
 * Replication spec parser
 * ------------------------------------------------------------------------ */

static void spec_parser_accepts_good_specs(void **state) {
  (void)state;
  struct ring_replication r;
  char err[CHORUS_ERRMSG_SIZE];
  assert_int_equal(ring_replication_parse("3", &r, err), CHORUS_OK);
  assert_int_equal(r.dc_count, 0);
  assert_int_equal(r.n, 3);
  assert_int_equal(ring_replication_total(&r), 3);
  assert_int_equal(ring_replication_parse(" 16 ", &r, err), CHORUS_OK);
  assert_int_equal(r.n, 16);
  assert_int_equal(ring_replication_parse("dc1:3,dc2:2", &r, err), CHORUS_OK);
  assert_int_equal(r.dc_count, 2);
  assert_string_equal(r.dcs[0].dc, "dc1");
  assert_int_equal(r.dcs[0].factor, 3);
  assert_string_equal(r.dcs[1].dc, "dc2");
  assert_int_equal(r.dcs[1].factor, 2);
  assert_int_equal(ring_replication_total(&r), 5);
  assert_int_equal(
      ring_replication_parse(" eu-west.1 : 2 ,  us_east:1", &r, err),
      CHORUS_OK);
  assert_string_equal(r.dcs[0].dc, "eu-west.1");
  assert_string_equal(r.dcs[1].dc, "us_east");
  assert_int_equal(
      ring_replication_parse("a:2,b:2,c:2,d:2,e:2,f:2,g:2,h:2", &r, err),
      CHORUS_OK);
  assert_int_equal(r.dc_count, 8);
}

static void spec_parser_rejects_bad_specs_clearly(void **state) {
  (void)state;
  static const struct {
    const char *spec, *msg;
  } bad[] = {
      {"", "empty"},
      {"   ", "empty"},
      {"0", "factor must be 1..16"},
      {"17", "factor must be 1..16"},
      {"99999999999999999999", "factor must be 1..16"},
      {"3x", "unexpected 'x' at offset 1"},
      {"3,dc1:2", "unexpected ','"},
      {"dc1", "expected ':' after \"dc1\""},
      {"dc1:", "expected a factor after \"dc1:\""},
      {"dc1:x", "expected a factor"},
      {"dc1:0", "factor of dc1 must be 1..16"},
      {"dc1:-1", "expected a factor"},
      {"dc1:3,dc1:2", "datacenter dc1 appears twice"},
      {"dc1:3,", "expected a datacenter name at offset 6"},
      {":3", "expected a datacenter name at offset 0"},
      {"dc1:3;dc2:2", "unexpected ';' at offset 5"},
      {"dc1:3 dc2:2", "unexpected 'd'"},
      {"a b:1", "expected ':' after \"a\""},
      {"d\xc3\xa9:1", "expected ':' after \"d\""},
      {"dc1:9,dc2:8", "factors sum to more than 16"},
      {"a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1", "more than 8 datacenters"},
      {"abcdefghijabcdefghijabcdefghijab:1", "longer than 31 bytes"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct ring_replication r;
    char err[CHORUS_ERRMSG_SIZE] = "";
    int rc = ring_replication_parse(bad[i].spec, &r, err);
    if (rc != CHORUS_EMALFORMED || strstr(err, bad[i].msg) == NULL)
      fail_msg("spec \"%s\": rc %d, message \"%s\", wanted \"%s\"", bad[i].spec,
               rc, err, bad[i].msg);
    assert_non_null(strstr(err, "replication \""));
  }
  struct ring_replication r;
  assert_int_equal(ring_replication_parse(NULL, &r, NULL), CHORUS_EINVAL);
  assert_int_equal(ring_replication_parse("3", NULL, NULL), CHORUS_EINVAL);
  /* A 31-byte name is the longest allowed. */
  assert_int_equal(
      ring_replication_parse("abcdefghijabcdefghijabcdefghija:1", &r, NULL),
      CHORUS_OK);
}

/* ------------------------------------------------------------------------
 * Builder
 * ------------------------------------------------------------------------ */

static void builder_validates_and_copies(void **state) {
  (void)state;
  struct ring_replication repl = {.n = 3};
  struct ring_node nodes[3] = {
      mk_node(30, "dc1", "r1", RING_NORMAL, 8),
      mk_node(10, "dc1", "r2", RING_JOINING, 8),
      mk_node(20, "dc1", "r1", RING_LEFT, 0),
  };
  struct ring_snapshot *s = NULL;
  char err[CHORUS_ERRMSG_SIZE] = "";
  assert_int_equal(ring_snapshot_build(nodes, 3, &repl, 99, &s, err),
                   CHORUS_OK);
  nodes[0].id = 31; /* copied: the snapshot does not see this */
  assert_int_equal(ring_snapshot_version(s), 99);
  assert_int_equal(ring_snapshot_node_count(s), 3);
  assert_true(ring_snapshot_node(s, 0)->id == 10);
  assert_true(ring_snapshot_node(s, 2)->id == 30);
  assert_int_equal(ring_snapshot_node(s, 1)->vnodes, RING_DEFAULT_VNODES);
  assert_null(ring_snapshot_node(s, 3));
  assert_int_equal(ring_snapshot_find(s, 20), 1);
  assert_int_equal(ring_snapshot_find(s, 31), -1);
  assert_int_equal(ring_snapshot_replication(s)->n, 3);
  /* Only the normal node is in the current ring. */
  assert_int_equal(ring_snapshot_token_count(s), 8);
  size_t owner = 9;
  chorus_token prev = 0;
  for (size_t i = 0; i < 8; i++) {
    chorus_token t = ring_snapshot_token(s, i, &owner);
    assert_int_equal(owner, 2);
    assert_true(i == 0 || t >= prev);
    prev = t;
  }
  assert_int_equal(ring_snapshot_verify(s), CHORUS_OK);
  /* A reader of a corrupted snapshot notices. */
  struct ring_node *mut =
      (struct ring_node *)(uintptr_t)ring_snapshot_node(s, 1);
  mut->rack[0] ^= 1;
  assert_int_equal(ring_snapshot_verify(s), CHORUS_ECORRUPT);
  mut->rack[0] ^= 1;
  assert_int_equal(ring_snapshot_verify(s), CHORUS_OK);
  ring_snapshot_free(s);

  /* Errors. */
  struct ring_node dup[2] = {mk_node(5, "a", "b", RING_NORMAL, 1),
                             mk_node(5, "a", "c", RING_NORMAL, 1)};
  assert_int_equal(ring_snapshot_build(dup, 2, &repl, 1, &s, err),
                   CHORUS_EMALFORMED);
  assert_non_null(strstr(err, "duplicate node 0000000000000005"));
  assert_null(s);
  struct ring_node bad = mk_node(5, "a", "b", RING_NORMAL, 1);
  bad.state = (enum ring_node_state)9;
  assert_int_equal(ring_snapshot_build(&bad, 1, &repl, 1, &s, err),
                   CHORUS_EMALFORMED);
  assert_non_null(strstr(err, "unknown state 9"));
  bad = mk_node(5, "a", "b", RING_NORMAL, RING_MAX_VNODES + 1);
  assert_int_equal(ring_snapshot_build(&bad, 1, &repl, 1, &s, err),
                   CHORUS_EMALFORMED);
  assert_non_null(strstr(err, "vnodes"));
  bad = mk_node(5, "a", "b", RING_NORMAL, 1);
  memset(bad.rack, 'x', sizeof bad.rack);
  assert_int_equal(ring_snapshot_build(&bad, 1, &repl, 1, &s, err),
                   CHORUS_EMALFORMED);
  assert_non_null(strstr(err, "without NUL"));
  struct ring_replication r0 = {.n = 0};
  assert_int_equal(ring_snapshot_build(dup, 1, &r0, 1, &s, err),
                   CHORUS_EMALFORMED);
  struct ring_replication r2 = {.dc_count = 2, .dcs = {{"x", 2}, {"x", 1}}};
  assert_int_equal(ring_snapshot_build(dup, 1, &r2, 1, &s, err),
                   CHORUS_EMALFORMED);
  assert_non_null(strstr(err, "appears twice"));
  assert_int_equal(ring_snapshot_build(NULL, 1, &repl, 1, &s, err),
                   CHORUS_EINVAL);
  assert_int_equal(ring_snapshot_build(dup, 1, NULL, 1, &s, err),
                   CHORUS_EINVAL);
  assert_int_equal(ring_snapshot_build(dup, 1, &repl, 1, NULL, err),
                   CHORUS_EINVAL);
  struct ring_node *many = chorus_calloc(RING_MAX_NODES + 1, sizeof *many);
  assert_int_equal(
      ring_snapshot_build(many, RING_MAX_NODES + 1, &repl, 1, &s, err),
      CHORUS_EMALFORMED);
  chorus_free(many);

  /* An empty ring is valid and unavailable. */
  assert_int_equal(ring_snapshot_build(NULL, 0, &repl, 1, &s, err), CHORUS_OK);
  struct ring_plist pl;
  assert_int_equal(ring_lookup(s, 123, 2, &pl), CHORUS_EUNAVAILABLE);
  assert_int_equal(pl.n_natural + pl.n_pending + pl.n_fallback, 0);
  ring_snapshot_free(s);
  ring_snapshot_free(NULL);
}

static void builder_survives_every_allocation_failure(void **state) {
  (void)state;
  struct ring_node nodes[4] = {
      mk_node(1, "dc1", "r1", RING_NORMAL, 16),
      mk_node(2, "dc1", "r2", RING_JOINING, 16),
      mk_node(3, "dc2", "r1", RING_LEAVING, 16),
      mk_node(4, "dc2", "r2", RING_NORMAL, 16),
  };
  struct ring_replication repl;
  assert_int_equal(ring_replication_parse("dc1:2,dc2:1", &repl, NULL),
                   CHORUS_OK);
  for (long k = 0;; k++) {
    struct ring_snapshot *s = NULL;
    char err[CHORUS_ERRMSG_SIZE] = "";
    chorus_alloc_fail_after(k);
    int rc = ring_snapshot_build(nodes, 4, &repl, 1, &s, err);
    chorus_alloc_fail_after(-1);
    if (rc == CHORUS_OK) {
      assert_true(k > 3);
      assert_int_equal(ring_snapshot_verify(s), CHORUS_OK);
      /* And ring_diff, against a ring without node 3. */
      struct ring_snapshot *t = NULL;
      assert_int_equal(ring_snapshot_build(nodes, 3, &repl, 2, &t, NULL),
                       CHORUS_OK);
      for (long j = 0;; j++) {
        struct ring_move *m = NULL;
        size_t n = 0;
        chorus_alloc_fail_after(j);
        int drc = ring_diff(s, t, &m, &n);
        chorus_alloc_fail_after(-1);
        if (drc == CHORUS_OK) {
          assert_true(n > 0);
          chorus_free(m);
          break;
        }
        assert_int_equal(drc, CHORUS_ENOMEM);
        assert_null(m);
      }
      ring_snapshot_free(t);
      ring_snapshot_free(s);
      break;
    }
    assert_int_equal(rc, CHORUS_ENOMEM);
    assert_null(s);
    assert_non_null(strstr(err, "out of memory"));
  }
}

/* ------------------------------------------------------------------------
 * Balance and movement tables
 * ------------------------------------------------------------------------ */

static void balance_table_at_default_T(void **state) {
  (void)state;
  print_message("# balance at T=%u: nodes max/mean (id set 0)\n",
                RING_DEFAULT_VNODES);
  double worst = 0;
  for (int set = 0; set < BALANCE_ID_SETS; set++)
    for (int n = 3; n <= 64; n++) {
      struct ring_node nodes[64];
      for (int i = 0; i < n; i++)
        nodes[i] = mk_node(set_id(set, i), "dc1", "r1", RING_NORMAL, 0);
      struct ring_snapshot *s = build_spec(nodes, (size_t)n, "1");
      double share[64], max = 0, sum = 0;
      ring_snapshot_ownership(s, share);
      for (int i = 0; i < n; i++) {
        sum += share[i];
        if (share[i] > max)
          max = share[i];
      }
      assert_true(sum > 0.999999 && sum < 1.000001);
      double ratio = max * n;
      if (set == 0)
        print_message("#   %2d %.3f\n", n, ratio);
      if (ratio > worst)
        worst = ratio;
      if (ratio > 1.15)
        fail_msg("id set %d, %d nodes at T=%u: max/mean %.3f > 1.15", set, n,
                 RING_DEFAULT_VNODES, ratio);
      ring_snapshot_free(s);
    }
  print_message("# worst over %d id set(s): %.3f\n", BALANCE_ID_SETS, worst);
}

static double range_len(const struct ring_move *m) {
  chorus_token len = m->end - m->start; /* wraps correctly */
  return m->start == m->end ? 1.0 : (double)len / 18446744073709551616.0;
}

static void adding_a_node_moves_its_share_only_to_it(void **state) {
  (void)state;
  print_message("# movement (N=1): k moved 1/(k+1) ratio\n");
  struct ring_snapshot *prev = named_ring(3, "1");
  for (int k = 3; k <= 64; k++) {
    struct ring_snapshot *next = named_ring(k + 1, "1");
    struct ring_move *m;
    size_t nm;
    assert_int_equal(ring_diff(prev, next, &m, &nm), CHORUS_OK);
    double moved = 0;
    for (size_t i = 0; i < nm; i++) {
      assert_true(m[i].to == named_id(k));
      assert_true(m[i].has_from);
      assert_true(m[i].from != named_id(k));
      moved += range_len(&m[i]);
    }
    double ratio = moved * (k + 1);
    print_message("#   %2d %.4f %.4f %.3f\n", k, moved, 1.0 / (k + 1), ratio);
    if (ratio < 0.8 || ratio > 1.2)
      fail_msg("k=%d: moved %.4f, expected %.4f within 20%%", k, moved,
               1.0 / (k + 1));

    /* Keys agree with the ranges: a key changes owner only to the new
     * node, and only inside a listed range, with @from its old owner. */
    struct chorus_prng p;
    chorus_prng_seed(&p, (uint64_t)k);
    for (int i = 0; i < 200; i++) {
      char key[24];
      snprintf(key, sizeof key, "key-%d-%llu", i,
               (unsigned long long)chorus_prng_next(&p));
      struct ring_plist a, b;
      assert_int_equal(ring_lookup_key(prev, key, strlen(key), 0, &a),
                       CHORUS_OK);
      assert_int_equal(ring_lookup_key(next, key, strlen(key), 0, &b),
                       CHORUS_OK);
      chorus_token t = a.token;
      int in_range = 0;
      for (size_t j = 0; j < nm; j++)
        if (t - m[j].start - 1 < m[j].end - m[j].start) {
          in_range = 1;
          assert_true(m[j].from == a.r[0].id);
        }
      if (a.r[0].id != b.r[0].id) {
        assert_true(b.r[0].id == named_id(k));
        assert_true(in_range);
      } else {
        assert_false(in_range);
      }
    }
    chorus_free(m);
    ring_snapshot_free(prev);
    prev = next;
  }
  ring_snapshot_free(prev);
}

/* With N=3 and a single rack, a joining node gains about 3/(k+1) of the
 * replica ranges, and only it gains anything. */
static void adding_a_node_with_n3_moves_replicas_only_to_it(void **state) {
  (void)state;
  for (int k = 5; k <= 33; k += 7) {
    struct ring_snapshot *a = named_ring(k, "3");
    struct ring_snapshot *b = named_ring(k + 1, "3");
    struct ring_move *m;
    size_t nm;
    assert_int_equal(ring_diff(a, b, &m, &nm), CHORUS_OK);
    double moved = 0;
    for (size_t i = 0; i < nm; i++) {
      assert_true(m[i].to == named_id(k));
      moved += range_len(&m[i]);
    }
    double ratio = moved * (k + 1) / 3;
    if (ratio < 0.8 || ratio > 1.2)
      fail_msg("k=%d, N=3: moved %.4f of replica ranges, expected %.4f", k,
               moved, 3.0 / (k + 1));
    chorus_free(m);
    ring_snapshot_free(a);
    ring_snapshot_free(b);
  }
}

/* Below the replication factor a leaver's ranges have no taker:
 * ring_diff lists nothing, ring_diff_kept lists every range it held as a
 * move to each node that keeps it (the whole ring for each, N=3 on 3 or 2
 * nodes); with a taker for every range (5 -> 4 at N=3) it lists none. */
static void a_leaver_below_n_is_pulled_by_the_keepers(void **state) {
  (void)state;
  for (int k = 2; k <= 5; k++) {
    struct ring_snapshot *a = named_ring(k, "3");
    struct ring_snapshot *b = named_ring(k - 1, "3");
    chorus_node_id leaver = named_id(k - 1);
    struct ring_move *m;
    size_t nm;
    assert_int_equal(ring_diff(a, b, &m, &nm), CHORUS_OK);
    assert_int_equal(nm == 0, k <= 3);
    chorus_free(m);
    assert_int_equal(ring_diff_kept(a, b, leaver, &m, &nm), CHORUS_OK);
    if (k > 3) {
      assert_int_equal(nm, 0);
      assert_null(m);
    }
    double held[8] = {0};
    for (size_t i = 0; i < nm; i++) {
      assert_true(m[i].from == leaver);
      assert_int_equal(m[i].has_from, 1);
      int to = -1;
      for (int j = 0; j < k - 1; j++)
        if (m[i].to == named_id(j))
          to = j;
      assert_true(to >= 0);
      held[to] += range_len(&m[i]);
    }
    for (int j = 0; j < k - 1 && k <= 3; j++)
      if (held[j] < 0.999999 || held[j] > 1.000001)
        fail_msg("k=%d: node %d pulls %.6f of the ring, not all", k, j,
                 held[j]);
    chorus_free(m);
    /* A node that stays gives up nothing. */
    assert_int_equal(ring_diff_kept(a, b, named_id(0), &m, &nm), CHORUS_OK);
    assert_int_equal(nm, 0);
    assert_int_equal(ring_diff_kept(NULL, b, leaver, &m, &nm), CHORUS_EINVAL);
    ring_snapshot_free(a);
    ring_snapshot_free(b);
  }
}

/* ------------------------------------------------------------------------
 * Placement against a reference walk over random topologies
 * ------------------------------------------------------------------------ */

#define MAXN 40

struct topo {
  struct ring_node nodes[MAXN];
  size_t n;
  struct ring_replication repl;
};

static void random_topology(struct chorus_prng *p, struct topo *t) {
  memset(t, 0, sizeof *t);
  int dcs = 1 + (int)chorus_prng_below(p, 3);
  for (int d = 0; d < dcs; d++) {
    int nn = 1 + (int)chorus_prng_below(p, 12);
    int racks = 1 + (int)chorus_prng_below(p, 5);
    for (int i = 0; i < nn && t->n < MAXN; i++) {
      char dc[16], rack[16];
      snprintf(dc, sizeof dc, "dc%d", d);
      snprintf(rack, sizeof rack, "r%d", (int)chorus_prng_below(p, racks));
      uint64_t x = chorus_prng_below(p, 100);
      enum ring_node_state st = x < 70   ? RING_NORMAL
                                : x < 82 ? RING_JOINING
                                : x < 94 ? RING_LEAVING
                                         : RING_LEFT;
      /* Small ids sometimes, so ties and the node&63 filter get exercised. */
      chorus_node_id id = chorus_prng_chance(p, 0.2)
                              ? chorus_prng_below(p, 1000)
                              : chorus_prng_next(p);
      int clash = 0;
      for (size_t j = 0; j < t->n; j++)
        clash |= t->nodes[j].id == id;
      if (clash)
        continue;
      t->nodes[t->n++] =
          mk_node(id, dc, rack, st, 1 + (uint32_t)chorus_prng_below(p, 24));
    }
  }
  if (chorus_prng_chance(p, 0.4)) {
    t->repl.n = 1 + (uint32_t)chorus_prng_below(p, 6);
    return;
  }
  for (int d = 0; d < dcs + 1; d++) {
    /* Some datacenters unreplicated; sometimes one named but empty. */
    if (chorus_prng_chance(p, 0.25))
      continue;
    struct ring_dc_factor *f = &t->repl.dcs[t->repl.dc_count++];
    snprintf(f->dc, sizeof f->dc, "dc%d", d);
    f->factor = 1 + (uint32_t)chorus_prng_below(p, 4);
  }
  if (t->repl.dc_count == 0) {
    t->repl.dc_count = 1;
    snprintf(t->repl.dcs[0].dc, RING_NAME_MAX, "dc0");
    t->repl.dcs[0].factor = 2;
  }
}

/* The reference: Cassandra's NetworkTopologyStrategy, written plainly. */
struct rvnode {
  chorus_token token;
  chorus_node_id id;
  int node; /* index in topo */
};

static int cmp_rv(const void *a, const void *b) {
  const struct rvnode *x = a, *y = b;
  if (x->token != y->token)
    return x->token < y->token ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

struct rring {
  struct rvnode *v;
  size_t count;
  int group[MAXN]; /* -1: unreplicated */
  int need[RING_MAX_DCS];
  int racks[RING_MAX_DCS];
  int groups;
};

static int same_rack(const struct topo *t, int a, int b) {
  return strcmp(t->nodes[a].dc, t->nodes[b].dc) == 0 &&
         strcmp(t->nodes[a].rack, t->nodes[b].rack) == 0;
}

static void rring_build(const struct topo *t, int future, struct rring *r) {
  memset(r, 0, sizeof *r);
  r->v = calloc(MAXN * RING_MAX_VNODES + 1, sizeof *r->v);
  r->groups = t->repl.dc_count == 0 ? 1 : (int)t->repl.dc_count;
  int nodes_in[RING_MAX_DCS] = {0};
  int in[MAXN] = {0};
  for (size_t i = 0; i < t->n; i++) {
    const struct ring_node *n = &t->nodes[i];
    in[i] = n->state == RING_NORMAL ||
            n->state == (future ? RING_JOINING : RING_LEAVING);
    r->group[i] = t->repl.dc_count == 0 ? 0 : -1;
    for (uint32_t d = 0; d < t->repl.dc_count; d++)
      if (strcmp(n->dc, t->repl.dcs[d].dc) == 0)
        r->group[i] = (int)d;
    if (!in[i])
      continue;
    for (uint32_t j = 0; j < n->vnodes; j++)
      r->v[r->count++] =
          (struct rvnode){ring_vnode_token(n->id, j), n->id, (int)i};
    if (r->group[i] < 0)
      continue;
    nodes_in[r->group[i]]++;
    int new_rack = 1;
    for (size_t j = 0; j < i; j++)
      if (in[j] && r->group[j] == r->group[i] && same_rack(t, (int)i, (int)j))
        new_rack = 0;
    r->racks[r->group[i]] += new_rack;
  }
  qsort(r->v, r->count, sizeof *r->v, cmp_rv);
  for (int g = 0; g < r->groups; g++) {
    int f = t->repl.dc_count == 0 ? (int)t->repl.n : (int)t->repl.dcs[g].factor;
    r->need[g] = f < nodes_in[g] ? f : nodes_in[g];
  }
}

static size_t rring_start(const struct rring *r, chorus_token token) {
  for (size_t i = 0; i < r->count; i++)
    if (r->v[i].token >= token)
      return i;
  return 0;
}

static int contains(const int *a, int n, int x) {
  for (int i = 0; i < n; i++)
    if (a[i] == x)
      return 1;
  return 0;
}

/* Natural replicas (topo indexes) of @token in @r. */
static int rring_walk(const struct topo *t, const struct rring *r,
                      chorus_token token, int *out) {
  int n = 0, count[RING_MAX_DCS] = {0};
  int skipped[RING_MAX_DCS][MAXN], n_skipped[RING_MAX_DCS] = {0};
  int racks_seen[RING_MAX_DCS][MAXN], n_racks[RING_MAX_DCS] = {0};
  int total = 0;
  for (int g = 0; g < r->groups; g++)
    total += r->need[g];
  size_t start = rring_start(r, token);
  for (size_t s = 0; s < r->count && n < total; s++) {
    int node = r->v[(start + s) % r->count].node;
    int g = r->group[node];
    if (g < 0 || contains(out, n, node) ||
        contains(skipped[g], n_skipped[g], node) || count[g] == r->need[g])
      continue;
    int rack_new = 1;
    for (int k = 0; k < n_racks[g]; k++)
      if (same_rack(t, racks_seen[g][k], node))
        rack_new = 0;
    if (rack_new) {
      out[n++] = node;
      count[g]++;
      racks_seen[g][n_racks[g]++] = node;
      if (n_racks[g] == r->racks[g])
        for (int k = 0; k < n_skipped[g] && count[g] < r->need[g]; k++) {
          out[n++] = skipped[g][k];
          count[g]++;
        }
    } else if (n_racks[g] == r->racks[g]) {
      out[n++] = node;
      count[g]++;
    } else {
      skipped[g][n_skipped[g]++] = node;
    }
  }
  return n;
}

static int topo_index(const struct topo *t, chorus_node_id id) {
  for (size_t i = 0; i < t->n; i++)
    if (t->nodes[i].id == id)
      return (int)i;
  return -1;
}

static void check_token(const struct topo *t, const struct ring_snapshot *s,
                        const struct rring *cur, const struct rring *fut,
                        chorus_token token, unsigned want_fb) {
  struct ring_plist pl;
  int rc = ring_lookup(s, token, want_fb, &pl);
  assert_true(pl.token == token);
  if (want_fb > RING_MAX_FALLBACK) /* the lookup clamps */
    want_fb = RING_MAX_FALLBACK;
  int ref[MAXN], nref = rring_walk(t, cur, token, ref);
  assert_int_equal(rc, nref > 0 ? CHORUS_OK : CHORUS_EUNAVAILABLE);

  /* Natural: exactly the reference, in order. */
  assert_int_equal(pl.n_natural, nref);
  for (int i = 0; i < nref; i++) {
    assert_true(pl.r[i].id == t->nodes[ref[i]].id);
    assert_int_equal(pl.r[i].dc, cur->group[ref[i]]);
    assert_true(ring_snapshot_node(s, pl.r[i].node)->id == pl.r[i].id);
  }

  /* ...and the properties, checked directly. */
  int per_group[RING_MAX_DCS] = {0};
  for (int i = 0; i < nref; i++) {
    int x = ref[i];
    assert_true(t->nodes[x].state == RING_NORMAL ||
                t->nodes[x].state == RING_LEAVING);
    for (int j = 0; j < i; j++)
      assert_int_not_equal(ref[j], x); /* distinct nodes */
    per_group[cur->group[x]]++;
  }
  for (int g = 0; g < cur->groups; g++) {
    /* Per-DC counts exact. */
    assert_int_equal(per_group[g], cur->need[g]);
    /* Distinct racks whenever enough racks exist. */
    int distinct = 0;
    for (int i = 0; i < nref; i++) {
      if (cur->group[ref[i]] != g)
        continue;
      int fresh = 1;
      for (int j = 0; j < i; j++)
        if (cur->group[ref[j]] == g && same_rack(t, ref[i], ref[j]))
          fresh = 0;
      distinct += fresh;
    }
    int want = per_group[g] < cur->racks[g] ? per_group[g] : cur->racks[g];
    assert_int_equal(distinct, want);
  }
  /* The primary owns the first replicated vnode at or after the token. */
  if (nref > 0) {
    size_t st = rring_start(cur, token);
    for (size_t k = 0; k < cur->count; k++) {
      const struct rvnode *v = &cur->v[(st + k) % cur->count];
      if (cur->group[v->node] >= 0) {
        assert_true(pl.r[0].id == v->id);
        break;
      }
    }
  }

  /* Pending: the future list minus the natural one, in order. */
  int fref[MAXN], nf = rring_walk(t, fut, token, fref), np = 0;
  for (int i = 0; i < nf; i++) {
    if (contains(ref, nref, fref[i]))
      continue;
    assert_true(np < pl.n_pending);
    const struct ring_replica *r = &pl.r[pl.n_natural + np++];
    assert_true(r->id == t->nodes[fref[i]].id);
    assert_true(t->nodes[fref[i]].state == RING_NORMAL ||
                t->nodes[fref[i]].state == RING_JOINING);
  }
  assert_int_equal(np, pl.n_pending);

  /* Fallbacks: per replicated group, the first nodes clockwise of that
   * group, neither natural nor pending, each group's share cut so that
   * all shares fit RING_MAX_FALLBACK; listed in walk order. */
  unsigned nfb = 0, share = want_fb;
  if (cur->groups > 1 && share > RING_MAX_FALLBACK / (unsigned)cur->groups)
    share = RING_MAX_FALLBACK / (unsigned)cur->groups;
  unsigned got[RING_MAX_DCS] = {0};
  int seen[MAXN], nseen = 0;
  size_t st = rring_start(cur, token);
  for (size_t k = 0; k < cur->count; k++) {
    int x = cur->v[(st + k) % cur->count].node;
    if (cur->group[x] < 0 || contains(ref, nref, x) ||
        contains(seen, nseen, x) || got[cur->group[x]] == share)
      continue;
    seen[nseen++] = x;
    int pend = 0;
    for (int i = 0; i < np; i++)
      pend |= pl.r[pl.n_natural + i].id == t->nodes[x].id;
    if (pend)
      continue;
    if (nfb >= pl.n_fallback)
      fail_msg("token %llx want %u: got %u fallbacks, natural %u pending %u, "
               "missing node %d (group %d state %d)",
               (unsigned long long)token, want_fb, pl.n_fallback, pl.n_natural,
               pl.n_pending, x, cur->group[x], (int)t->nodes[x].state);
    const struct ring_replica *r = &pl.r[pl.n_natural + pl.n_pending + nfb++];
    assert_true(r->id == t->nodes[x].id);
    assert_int_equal(r->dc, cur->group[x]);
    got[cur->group[x]]++;
  }
  assert_int_equal(nfb, pl.n_fallback);
  for (int i = 0; i < pl.n_natural + pl.n_pending + pl.n_fallback; i++)
    assert_true(topo_index(t, pl.r[i].id) >= 0 &&
                t->nodes[topo_index(t, pl.r[i].id)].state != RING_LEFT);
}

static void placement_matches_reference_on_random_topologies(void **state) {
  (void)state;
  struct chorus_prng p;
  chorus_prng_seed(&p, 0x5106);
  struct topo *t = malloc(sizeof *t);
  long lookups = 0, with_pending = 0, short_racks = 0;
  for (int iter = 0; iter < TOPOLOGIES; iter++) {
    random_topology(&p, t);
    struct ring_snapshot *s = NULL;
    char err[CHORUS_ERRMSG_SIZE];
    if (ring_snapshot_build(t->nodes, t->n, &t->repl, (uint64_t)iter, &s,
                            err) != CHORUS_OK)
      fail_msg("topology %d: %s", iter, err);
    struct rring cur, fut;
    rring_build(t, 0, &cur);
    rring_build(t, 1, &fut);
    assert_int_equal(ring_snapshot_token_count(s), cur.count);
    for (size_t i = 0; i < cur.count; i++)
      assert_true(ring_snapshot_token(s, i, NULL) == cur.v[i].token);
    for (int g = 0; g < cur.groups; g++)
      short_racks += cur.racks[g] < cur.need[g];

    /* Wrap-around: 0, the top of the space, just past the last token. */
    chorus_token edge[6] = {0, 1, UINT64_MAX, UINT64_MAX - 1, 0, 0};
    if (cur.count > 0) {
      edge[4] = cur.v[cur.count - 1].token + 1;
      edge[5] = cur.v[0].token;
    }
    for (int i = 0; i < 6; i++)
      check_token(t, s, &cur, &fut, edge[i], 3);
    for (int i = 0; i < 40; i++) {
      chorus_token tok;
      if (cur.count > 0 && i % 3 == 0) {
        /* On a vnode token, and just after it. */
        tok = cur.v[chorus_prng_below(&p, cur.count)].token + (uint64_t)(i & 1);
      } else {
        tok = chorus_prng_next(&p);
      }
      check_token(t, s, &cur, &fut, tok,
                  (unsigned)chorus_prng_below(&p, RING_MAX_FALLBACK + 2));
      lookups++;
    }
    struct ring_plist pl;
    ring_lookup(s, 0, 0, &pl);
    with_pending += pl.n_pending > 0;
    free(cur.v);
    free(fut.v);
    ring_snapshot_free(s);
  }
  free(t);
  print_message("# %d topologies, %ld lookups, %ld with pending at token 0, "
                "%ld groups short of racks\n",
                TOPOLOGIES, lookups, with_pending, short_racks);
  assert_true(with_pending > 0);
  assert_true(short_racks > 0);
}

/* A hand-made case: the primary at token 0 is the owner of the smallest
 * token, and past the largest token the walk wraps to it. */
static void lookup_wraps_around_token_zero(void **state) {
  (void)state;
  struct ring_snapshot *s = named_ring(5, "3");
  size_t n = ring_snapshot_token_count(s), first, last;
  chorus_token t0 = ring_snapshot_token(s, 0, &first);
  chorus_token tl = ring_snapshot_token(s, n - 1, &last);
  assert_true(t0 > 0 && tl < UINT64_MAX);
  struct ring_plist pl;
  assert_int_equal(ring_lookup(s, tl + 1, 0, &pl), CHORUS_OK);
  assert_int_equal(pl.r[0].node, first);
  assert_int_equal(ring_lookup(s, UINT64_MAX, 0, &pl), CHORUS_OK);
  assert_int_equal(pl.r[0].node, first);
  assert_int_equal(ring_lookup(s, 0, 0, &pl), CHORUS_OK);
  assert_int_equal(pl.r[0].node, first);
  assert_int_equal(ring_lookup(s, tl, 0, &pl), CHORUS_OK);
  assert_int_equal(pl.r[0].node, last);
  assert_int_equal(pl.n_natural, 3);
  ring_snapshot_free(s);
}

/* ------------------------------------------------------------------------
 * Ownership states
 * ------------------------------------------------------------------------ */

static void joining_nodes_are_pending_and_leaving_ones_hand_over(void **state) {
  (void)state;
  struct ring_node nodes[6];
  for (int i = 0; i < 6; i++)
    nodes[i] = mk_node(named_id(i), "dc1", "r1", RING_NORMAL, 64);
  nodes[4].state = RING_JOINING;
  nodes[5].state = RING_LEFT;
  struct ring_snapshot *s = build_spec(nodes, 6, "2");
  long pending_j = 0;
  for (int i = 0; i < 2000; i++) {
    struct ring_plist pl;
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    assert_int_equal(ring_lookup_key(s, key, strlen(key), 8, &pl), CHORUS_OK);
    assert_int_equal(pl.n_natural, 2);
    assert_true(pl.n_pending <= 1);
    for (int j = 0; j < pl.n_natural; j++)
      assert_true(pl.r[j].id != named_id(4) && pl.r[j].id != named_id(5));
    if (pl.n_pending == 1) {
      assert_true(pl.r[2].id == named_id(4));
      pending_j++;
    }
    /* Fallbacks: the two other current nodes, never the joiner or the
     * left node. */
    assert_int_equal(pl.n_fallback, 2);
    for (int j = 0; j < pl.n_fallback; j++) {
      chorus_node_id id = pl.r[pl.n_natural + pl.n_pending + j].id;
      assert_true(id != named_id(4) && id != named_id(5));
    }
  }
  /* The joiner will hold 2/5 of the replicas: it is pending for them. */
  assert_true(pending_j > 2000 * 2 / 5 * 8 / 10 &&
              pending_j < 2000 * 2 / 5 * 12 / 10);
  ring_snapshot_free(s);

  /* A leaving node stays natural; its successors are pending. */
  nodes[4].state = RING_NORMAL;
  nodes[0].state = RING_LEAVING;
  s = build_spec(nodes, 6, "2");
  long natural_l = 0;
  for (int i = 0; i < 2000; i++) {
    struct ring_plist pl;
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    assert_int_equal(ring_lookup_key(s, key, strlen(key), 0, &pl), CHORUS_OK);
    int has_l = pl.r[0].id == named_id(0) || pl.r[1].id == named_id(0);
    natural_l += has_l;
    assert_int_equal(pl.n_pending, has_l);
  }
  assert_true(natural_l > 2000 * 2 / 5 * 8 / 10);
  ring_snapshot_free(s);

  /* Bootstrap: everyone joining. No natural replica, all pending. */
  for (int i = 0; i < 6; i++)
    nodes[i].state = RING_JOINING;
  s = build_spec(nodes, 6, "3");
  struct ring_plist pl;
  assert_int_equal(ring_lookup_key(s, "x", 1, 2, &pl), CHORUS_EUNAVAILABLE);
  assert_int_equal(pl.n_natural, 0);
  assert_int_equal(pl.n_pending, 3);
  assert_int_equal(pl.n_fallback, 0);
  ring_snapshot_free(s);
}

/* Each datacenter gets its share of fallbacks, whichever comes first on
 * the walk: a stand-in is picked in the down replica's datacenter
 * (repl_write.c). dc1 has many spare nodes, dc2 one; the walk must not
 * fill the list with dc1's and leave dc2 none. */
static void fallbacks_come_from_every_datacenter(void **state) {
  (void)state;
  struct ring_node nodes[12];
  for (int i = 0; i < 12; i++)
    nodes[i] =
        mk_node(named_id(i), i < 8 ? "dc1" : "dc2", "a", RING_NORMAL, 16);
  struct ring_snapshot *s = build_spec(nodes, 12, "dc1:3,dc2:3");
  for (int k = 0; k < 500; k++) {
    struct ring_plist pl;
    char key[16];
    snprintf(key, sizeof key, "k%d", k);
    assert_int_equal(ring_lookup_key(s, key, strlen(key), 3, &pl), CHORUS_OK);
    assert_int_equal(pl.n_natural, 6);
    int per[2] = {0, 0};
    for (int j = 0; j < pl.n_fallback; j++)
      per[pl.r[pl.n_natural + j].dc]++;
    assert_int_equal(per[0], 3); /* five spare, three asked */
    assert_int_equal(per[1], 1); /* its only spare node */
  }
  /* Eight datacenters: one each (8 / 8), never more than the list holds. */
  ring_snapshot_free(s);
  struct ring_node many[16];
  static const char *dcs[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
  for (int i = 0; i < 16; i++)
    many[i] = mk_node(named_id(i), dcs[i % 8], "r", RING_NORMAL, 8);
  s = build_spec(many, 16, "a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1");
  struct ring_plist pl;
  assert_int_equal(ring_lookup(s, 42, 3, &pl), CHORUS_OK);
  assert_int_equal(pl.n_natural, 8);
  assert_int_equal(pl.n_fallback, 8);
  unsigned mask = 0;
  for (int j = 0; j < pl.n_fallback; j++)
    mask |= 1u << pl.r[pl.n_natural + j].dc;
  assert_int_equal(mask, 0xffu);
  ring_snapshot_free(s);
}

static void short_clusters_give_short_lists(void **state) {
  (void)state;
  struct ring_node nodes[3] = {
      mk_node(1, "dc1", "a", RING_NORMAL, 8),
      mk_node(2, "dc1", "a", RING_NORMAL, 8),
      mk_node(3, "dc2", "a", RING_NORMAL, 8),
  };
  struct ring_snapshot *s = build_spec(nodes, 3, "dc1:3,dc2:2,dc3:1");
  struct ring_plist pl;
  assert_int_equal(ring_lookup(s, 42, 8, &pl), CHORUS_OK);
  assert_int_equal(pl.n_natural, 3);
  assert_int_equal(pl.n_fallback, 0);
  ring_snapshot_free(s);
  /* Only an unreplicated datacenter has nodes: unavailable. */
  s = build_spec(nodes, 3, "dc9:1");
  assert_int_equal(ring_lookup(s, 42, 8, &pl), CHORUS_EUNAVAILABLE);
  assert_int_equal(pl.n_natural + pl.n_fallback, 0);
  ring_snapshot_free(s);
}

/* ------------------------------------------------------------------------
 * Range movement
 * ------------------------------------------------------------------------ */

static void diff_of_equal_snapshots_is_empty(void **state) {
  (void)state;
  struct ring_snapshot *a = named_ring(6, "3"), *b = named_ring(6, "3");
  struct ring_move *m = (struct ring_move *)1;
  size_t n = 9;
  assert_int_equal(ring_diff(a, b, &m, &n), CHORUS_OK);
  assert_int_equal(n, 0);
  assert_null(m);
  assert_int_equal(ring_diff(a, NULL, &m, &n), CHORUS_EINVAL);
  ring_snapshot_free(a);
  ring_snapshot_free(b);
}

static void diff_of_a_leave_hands_its_ranges_to_successors(void **state) {
  (void)state;
  struct ring_snapshot *a = named_ring(8, "1");
  struct ring_node nodes[7];
  for (int i = 0; i < 7; i++)
    nodes[i] = mk_node(named_id(i + 1), "dc1", "r1", RING_NORMAL, 0);
  struct ring_snapshot *b = build_spec(nodes, 7, "1");
  struct ring_move *m;
  size_t n;
  assert_int_equal(ring_diff(a, b, &m, &n), CHORUS_OK);
  double share[8], moved = 0;
  ring_snapshot_ownership(a, share);
  long gone = ring_snapshot_find(a, named_id(0));
  for (size_t i = 0; i < n; i++) {
    assert_true(m[i].from == named_id(0));
    assert_true(m[i].to != named_id(0));
    moved += range_len(&m[i]);
    /* Each range's end is where the new owner is primary. */
    struct ring_plist pl;
    assert_int_equal(ring_lookup(b, m[i].end, 0, &pl), CHORUS_OK);
    assert_true(pl.r[0].id == m[i].to);
    assert_int_equal(ring_lookup(a, m[i].end, 0, &pl), CHORUS_OK);
    assert_true(pl.r[0].id == m[i].from);
  }
  assert_true(moved > share[gone] - 1e-9 && moved < share[gone] + 1e-9);
  chorus_free(m);
  ring_snapshot_free(a);
  ring_snapshot_free(b);
}

/* A replacement that holds the tokens of the node it replaces (tokens_of)
 * takes exactly that node's replica ranges, at N=3 too: every move goes
 * from the replaced node to it, and no other node's ranges change. */
static void
a_replacement_with_the_old_tokens_takes_only_its_ranges(void **state) {
  (void)state;
  struct ring_node nodes[6];
  for (int i = 0; i < 6; i++)
    nodes[i] = mk_node(named_id(i), "dc1", i % 2 ? "r1" : "r2", RING_NORMAL, 0);
  struct ring_snapshot *a = build_spec(nodes, 6, "3");
  /* named_id(2) is lost; named_id(9) takes its tokens and its rack. */
  nodes[2] = mk_node(named_id(9), "dc1", "r2", RING_NORMAL, 0);
  nodes[2].tokens_of = named_id(2);
  struct ring_snapshot *b = build_spec(nodes, 6, "3");
  assert_true(ring_snapshot_node(b, (size_t)ring_snapshot_find(b, named_id(9)))
                  ->tokens_of == named_id(2));
  struct ring_move *m;
  size_t n;
  assert_int_equal(ring_diff(a, b, &m, &n), CHORUS_OK);
  assert_true(n > 0);
  for (size_t i = 0; i < n; i++) {
    assert_true(m[i].from == named_id(2));
    assert_true(m[i].to == named_id(9));
  }
  chorus_free(m);
  /* The same tokens: the new node owns exactly the share the old one did. */
  double sa[6], sb[6];
  ring_snapshot_ownership(a, sa);
  ring_snapshot_ownership(b, sb);
  double before = sa[ring_snapshot_find(a, named_id(2))];
  double after = sb[ring_snapshot_find(b, named_id(9))];
  assert_true(before > 0 && after > before - 1e-12 && after < before + 1e-12);
  /* Without tokens_of the new node's own tokens move ranges between the
   * others too (the comparison that makes the test mean something). */
  nodes[2].tokens_of = 0;
  struct ring_snapshot *c = build_spec(nodes, 6, "3");
  assert_int_equal(ring_diff(a, c, &m, &n), CHORUS_OK);
  int others = 0;
  for (size_t i = 0; i < n; i++)
    others |= m[i].to != named_id(9);
  assert_true(others);
  chorus_free(m);
  ring_snapshot_free(a);
  ring_snapshot_free(b);
  ring_snapshot_free(c);
}

/* ring_snapshot_token_index is the first token at or after a position,
 * the token count past the last: against a linear scan, at the tokens
 * themselves, next to them, and at both ends of the token space. */
static void token_index_finds_where_a_piece_ends(void **state) {
  (void)state;
  struct ring_snapshot *s = named_ring(5, "3");
  size_t n = ring_snapshot_token_count(s);
  assert_true(n > 0);
  struct chorus_prng p;
  chorus_prng_seed(&p, 7);
  for (int k = 0; k < 4000; k++) {
    chorus_token pos;
    if (k == 0)
      pos = 0;
    else if (k == 1)
      pos = UINT64_MAX;
    else if (k % 3 == 0)
      pos = ring_snapshot_token(s, (size_t)k % n, NULL) + (k % 2 ? 1 : 0);
    else
      pos = chorus_prng_next(&p);
    size_t want = 0;
    while (want < n && ring_snapshot_token(s, want, NULL) < pos)
      want++;
    assert_int_equal(ring_snapshot_token_index(s, pos), want);
  }
  ring_snapshot_free(s);
  struct ring_snapshot *empty = build_spec(NULL, 0, "1");
  assert_int_equal(ring_snapshot_token_index(empty, 5), 0);
  ring_snapshot_free(empty);
}

static void diff_from_an_empty_ring_has_no_source(void **state) {
  (void)state;
  struct ring_snapshot *empty = build_spec(NULL, 0, "1");
  struct ring_node one = mk_node(77, "dc1", "r1", RING_NORMAL, 1);
  struct ring_snapshot *s = build_spec(&one, 1, "1");
  struct ring_move *m;
  size_t n;
  assert_int_equal(ring_diff(empty, s, &m, &n), CHORUS_OK);
  /* One token: the whole ring, start == end. */
  assert_int_equal(n, 1);
  assert_true(m[0].start == m[0].end);
  assert_true(m[0].to == 77);
  assert_false(m[0].has_from);
  chorus_free(m);
  /* And back: nobody gains anything. */
  assert_int_equal(ring_diff(s, empty, &m, &n), CHORUS_OK);
  assert_int_equal(n, 0);
  ring_snapshot_free(s);
  ring_snapshot_free(empty);
}

/* Random pairs of topologies: applying the moves to the before-lists gives
 * the after-sets, checked on sampled tokens. */
/* ------------------------------------------------------------------------
 * Replication classes (issue 21)
 * ------------------------------------------------------------------------ */

/* A keyspace's key: [0x00][id BE][client key]. */
static size_t ks_key(uint32_t id, const char *client, unsigned char *out) {
  size_t n = strlen(client);
  out[0] = 0;
  out[1] = (unsigned char)(id >> 24);
  out[2] = (unsigned char)(id >> 16);
  out[3] = (unsigned char)(id >> 8);
  out[4] = (unsigned char)id;
  memcpy(out + RING_KS_PREFIX_LEN, client, n);
  return RING_KS_PREFIX_LEN + n;
}

static struct ring_replication spec(const char *text) {
  struct ring_replication r;
  assert_int_equal(ring_replication_parse(text, &r, NULL), CHORUS_OK);
  return r;
}

static void keyspaces_take_their_own_class(void **state) {
  (void)state;
  struct ring_node nodes[6];
  for (int i = 0; i < 6; i++)
    nodes[i] =
        mk_node(named_id(i), i < 4 ? "dc1" : "dc2", "r1", RING_NORMAL, 64);
  struct ring_replication three = spec("3");
  /* ks 7 and 9 share "1"; ks 8 names the cluster's own; ks 5 is two
   * datacenters given in another order than ks 6. */
  struct ring_ks_replication ks[] = {
      {7, spec("1")},           {9, spec("1")},           {8, spec("3")},
      {5, spec("dc1:2,dc2:1")}, {6, spec("dc2:1,dc1:2")},
  };
  struct ring_snapshot *s = NULL;
  char err[CHORUS_ERRMSG_SIZE] = "";
  assert_int_equal(
      ring_snapshot_build_classes(nodes, 6, &three, ks, 5, 3, &s, err),
      CHORUS_OK);
  assert_int_equal(ring_snapshot_verify(s), CHORUS_OK);
  assert_int_equal(ring_snapshot_class_count(s), 3);
  assert_ptr_equal(ring_snapshot_class(s, 0), s);
  assert_null(ring_snapshot_class(s, 3));
  assert_int_equal(ring_snapshot_class_tag(s, 0), 0);
  assert_int_equal(ring_replication_tag(&ks[3].repl),
                   ring_replication_tag(&ks[4].repl));
  assert_int_not_equal(ring_replication_tag(&ks[0].repl),
                       ring_replication_tag(&three));
  for (unsigned c = 1; c < 3; c++) {
    const struct ring_snapshot *k = ring_snapshot_class(s, c);
    assert_int_equal(ring_snapshot_class_count(k), 1);
    assert_int_equal(ring_snapshot_version(k), 3);
    assert_int_equal(ring_snapshot_class_find(s, ring_snapshot_class_tag(s, c)),
                     (int)c);
    /* The same nodes in the same order: indexes mean the same node. */
    for (size_t i = 0; i < 6; i++)
      assert_int_equal(ring_snapshot_node(k, i)->id,
                       ring_snapshot_node(s, i)->id);
  }
  assert_int_equal(ring_snapshot_class_find(s, 12345), -1);

  unsigned char key[64];
  for (int i = 0; i < 200; i++) {
    char client[16];
    snprintf(client, sizeof client, "k%d", i);
    struct ring_plist dflt, one, one9, own, two, two6, other;
    size_t n = strlen(client);
    assert_int_equal(ring_lookup_key(s, client, n, 0, &dflt), CHORUS_OK);
    assert_int_equal(dflt.n_natural, 3);
    size_t kl = ks_key(7, client, key);
    assert_int_equal(ring_key_class(s, key, kl),
                     (unsigned)ring_snapshot_class_find(
                         s, ring_replication_tag(&ks[0].repl)));
    assert_int_equal(ring_lookup_key(s, key, kl, 0, &one), CHORUS_OK);
    assert_int_equal(one.n_natural, 1);
    kl = ks_key(9, client, key);
    assert_int_equal(ring_lookup_key(s, key, kl, 0, &one9), CHORUS_OK);
    assert_int_equal(one9.r[0].id, one.r[0].id);
    /* The class's primary is the cluster's: same walk, one replica. */
    assert_int_equal(one.r[0].id, dflt.r[0].id);
    kl = ks_key(8, client, key);
    assert_int_equal(ring_key_class(s, key, kl), 0);
    assert_int_equal(ring_lookup_key(s, key, kl, 0, &own), CHORUS_OK);
    for (int r = 0; r < 3; r++)
      assert_int_equal(own.r[r].id, dflt.r[r].id);
    kl = ks_key(5, client, key);
    assert_int_equal(ring_lookup_key(s, key, kl, 0, &two), CHORUS_OK);
    assert_int_equal(two.n_natural, 3);
    int in_dc2 = 0;
    for (int r = 0; r < 3; r++)
      in_dc2 += strcmp(ring_snapshot_node(s, two.r[r].node)->dc, "dc2") == 0;
    assert_int_equal(in_dc2, 1);
    kl = ks_key(6, client, key);
    assert_int_equal(ring_lookup_key(s, key, kl, 0, &two6), CHORUS_OK);
    assert_int_equal(ring_key_class(s, key, kl),
                     ring_key_class(s, key, ks_key(5, client, key)));
    /* An unknown keyspace, and a key too short to name one, are class 0. */
    kl = ks_key(4, client, key);
    assert_int_equal(ring_key_class(s, key, kl), 0);
    assert_int_equal(ring_lookup_key(s, key, kl, 0, &other), CHORUS_OK);
    for (int r = 0; r < 3; r++)
      assert_int_equal(other.r[r].id, dflt.r[r].id);
    assert_int_equal(ring_key_class(s, key, RING_KS_PREFIX_LEN), 0);
  }
  ring_snapshot_free(s);

  /* Refused: id 0, an id twice, a bad factor, too many classes. */
  struct ring_ks_replication bad[RING_MAX_CLASSES + 1];
  for (unsigned i = 0; i < RING_MAX_CLASSES + 1; i++) {
    char text[8];
    snprintf(text, sizeof text, "%u", i + 4);
    bad[i] = (struct ring_ks_replication){i + 1, spec(text)};
  }
  assert_int_equal(ring_snapshot_build_classes(
                       nodes, 6, &three, bad, RING_MAX_CLASSES - 1, 1, &s, err),
                   CHORUS_OK);
  assert_int_equal(ring_snapshot_class_count(s), RING_MAX_CLASSES);
  ring_snapshot_free(s);
  assert_int_equal(ring_snapshot_build_classes(nodes, 6, &three, bad,
                                               RING_MAX_CLASSES, 1, &s, err),
                   CHORUS_EMALFORMED);
  assert_null(s);
  assert_non_null(strstr(err, "classes"));
  bad[1].ks_id = 1;
  assert_int_equal(
      ring_snapshot_build_classes(nodes, 6, &three, bad, 2, 1, &s, err),
      CHORUS_EMALFORMED);
  bad[1].ks_id = 0;
  assert_int_equal(
      ring_snapshot_build_classes(nodes, 6, &three, bad, 2, 1, &s, err),
      CHORUS_EMALFORMED);
  bad[1].ks_id = 2;
  bad[1].repl.n = RING_MAX_REPLICAS + 1;
  assert_int_equal(
      ring_snapshot_build_classes(nodes, 6, &three, bad, 2, 1, &s, err),
      CHORUS_EMALFORMED);

  /* Every live keyspace and the next id: the ids between are dropped. */
  struct ring_ks_replication live[] = {{2, {0}}, {5, spec("1")}};
  assert_int_equal(
      ring_snapshot_build_keyspaces(nodes, 6, &three, live, 2, 7, 1, &s, err),
      CHORUS_OK);
  assert_true(ring_snapshot_has_dropped(s));
  assert_int_equal(ring_snapshot_class_count(s), 2);
  /* key: the buffer above */
  for (uint32_t id = 1; id < 9; id++) {
    size_t kl = ks_key(id, "k", key);
    bool dropped = id == 1 || id == 3 || id == 4 || id == 6;
    assert_int_equal(ring_key_dropped(s, key, kl), dropped);
    assert_int_equal(ring_key_class(s, key, kl), id == 5 ? 1u : 0u);
  }
  assert_false(ring_key_dropped(s, "k", 1));
  uint64_t map = ring_snapshot_class_map(s);
  ring_snapshot_free(s);
  /* The same classes with one more drop: another map. */
  assert_int_equal(
      ring_snapshot_build_keyspaces(nodes, 6, &three, live, 2, 8, 1, &s, err),
      CHORUS_OK);
  assert_int_not_equal(ring_snapshot_class_map(s), map);
  ring_snapshot_free(s);
  /* Nothing dropped, class 0 alone: no map, as without keyspaces. */
  assert_int_equal(
      ring_snapshot_build_keyspaces(nodes, 6, &three, live, 1, 3, 1, &s, err),
      CHORUS_OK);
  live[0].ks_id = 1;
  ring_snapshot_free(s);
  assert_int_equal(
      ring_snapshot_build_keyspaces(nodes, 6, &three, live, 1, 2, 1, &s, err),
      CHORUS_OK);
  assert_false(ring_snapshot_has_dropped(s));
  assert_int_equal(ring_snapshot_class_map(s), 0);
  ring_snapshot_free(s);
  /* An id at or above the next one is refused. */
  assert_int_equal(
      ring_snapshot_build_keyspaces(nodes, 6, &three, live, 1, 1, 1, &s, err),
      CHORUS_EMALFORMED);
}

/* A class's moves are its own: a join moves one replica of a key in an
 * N=1 class, and diffing the class snapshots finds just those ranges. */
static void classes_diff_on_their_own(void **state) {
  (void)state;
  struct ring_node nodes[4];
  for (int i = 0; i < 4; i++)
    nodes[i] = mk_node(named_id(i), "dc1", "r1", RING_NORMAL, 32);
  struct ring_replication three = spec("3");
  struct ring_ks_replication ks[] = {{7, spec("1")}};
  struct ring_snapshot *before = NULL, *after = NULL;
  assert_int_equal(
      ring_snapshot_build_classes(nodes, 3, &three, ks, 1, 1, &before, NULL),
      CHORUS_OK);
  assert_int_equal(
      ring_snapshot_build_classes(nodes, 4, &three, ks, 1, 2, &after, NULL),
      CHORUS_OK);
  int cb = ring_snapshot_class_find(before, ring_replication_tag(&ks[0].repl));
  int ca = ring_snapshot_class_find(after, ring_replication_tag(&ks[0].repl));
  assert_true(cb == 1 && ca == 1);
  struct ring_move *all = NULL, *one = NULL;
  size_t nall = 0, none = 0;
  assert_int_equal(ring_diff(before, after, &all, &nall), CHORUS_OK);
  assert_int_equal(ring_diff(ring_snapshot_class(before, 1),
                             ring_snapshot_class(after, 1), &one, &none),
                   CHORUS_OK);
  double share_all = 0, share_one = 0;
  for (size_t i = 0; i < nall; i++)
    share_all += range_len(&all[i]);
  for (size_t i = 0; i < none; i++) {
    assert_int_equal(one[i].to, named_id(3));
    assert_int_equal(one[i].class_tag, 0); /* ring_diff leaves it */
    share_one += range_len(&one[i]);
  }
  /* With N=3 the joiner gains three times the token space it owns as a
   * primary (each of its ranges as first, second and third replica). */
  assert_true(none > 0 && share_one > 0.1 && share_one < 0.45);
  assert_true(share_all > 2.5 * share_one && share_all < 3.5 * share_one);
  chorus_free(all);
  chorus_free(one);
  ring_snapshot_free(before);
  ring_snapshot_free(after);
}

static void diff_explains_every_change(void **state) {
  (void)state;
  struct chorus_prng p;
  chorus_prng_seed(&p, 99);
  struct topo *t = malloc(sizeof *t);
  for (int iter = 0; iter < 60; iter++) {
    random_topology(&p, t);
    struct ring_snapshot *a = NULL, *b = NULL;
    assert_int_equal(ring_snapshot_build(t->nodes, t->n, &t->repl, 1, &a, NULL),
                     CHORUS_OK);
    /* Perturb: flip a few states, move a rack, maybe change a factor. */
    for (int k = 0; k < 3 && t->n > 0; k++) {
      struct ring_node *x = &t->nodes[chorus_prng_below(&p, t->n)];
      x->state = (enum ring_node_state)chorus_prng_below(&p, 4);
      if (chorus_prng_chance(&p, 0.3))
        snprintf(x->rack, sizeof x->rack, "r9");
    }
    if (t->repl.dc_count == 0 && t->repl.n < 6)
      t->repl.n++;
    assert_int_equal(ring_snapshot_build(t->nodes, t->n, &t->repl, 2, &b, NULL),
                     CHORUS_OK);
    struct ring_move *m;
    size_t n;
    assert_int_equal(ring_diff(a, b, &m, &n), CHORUS_OK);
    for (int i = 0; i < 300; i++) {
      chorus_token tok = chorus_prng_next(&p);
      struct ring_plist pa, pb;
      ring_lookup(a, tok, 0, &pa);
      ring_lookup(b, tok, 0, &pb);
      int losers = 0, gainers = 0;
      for (int j = 0; j < pa.n_natural; j++) {
        int kept = 0;
        for (int k = 0; k < pb.n_natural; k++)
          kept |= pa.r[j].id == pb.r[k].id;
        losers += !kept;
      }
      chorus_node_id froms[RING_MAX_REPLICAS];
      for (int j = 0; j < pb.n_natural; j++) {
        int before = 0, moved = 0;
        for (int k = 0; k < pa.n_natural; k++)
          before |= pa.r[k].id == pb.r[j].id;
        for (size_t k = 0; k < n; k++)
          if (m[k].to == pb.r[j].id &&
              (m[k].start == m[k].end ||
               tok - m[k].start - 1 < m[k].end - m[k].start)) {
            moved++;
            /* Paired with a node that loses the range when there is one
             * per gainer, each loser streaming to one gainer. */
            int lost = 1;
            for (int q = 0; q < pb.n_natural; q++)
              lost &= pb.r[q].id != m[k].from;
            froms[gainers] = m[k].from;
            for (int q = 0; q < gainers; q++)
              if (gainers < losers)
                assert_true(froms[q] != m[k].from);
            if (gainers < losers)
              assert_true(lost);
            gainers++;
            if (pa.n_natural > 0) {
              assert_true(m[k].has_from);
              int src = 0;
              for (int q = 0; q < pa.n_natural; q++)
                src |= pa.r[q].id == m[k].from;
              assert_true(src);
            }
          }
        /* Gained exactly when a move says so, and by one move only. */
        assert_int_equal(moved, before ? 0 : 1);
      }
    }
    chorus_free(m);
    ring_snapshot_free(a);
    ring_snapshot_free(b);
  }
  free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tokens_follow_the_documented_layout),
      cmocka_unit_test(spec_parser_accepts_good_specs),
      cmocka_unit_test(spec_parser_rejects_bad_specs_clearly),
      cmocka_unit_test(builder_validates_and_copies),
      cmocka_unit_test(builder_survives_every_allocation_failure),
      cmocka_unit_test(balance_table_at_default_T),
      cmocka_unit_test(adding_a_node_moves_its_share_only_to_it),
      cmocka_unit_test(adding_a_node_with_n3_moves_replicas_only_to_it),
      cmocka_unit_test(a_leaver_below_n_is_pulled_by_the_keepers),
      cmocka_unit_test(placement_matches_reference_on_random_topologies),
      cmocka_unit_test(lookup_wraps_around_token_zero),
      cmocka_unit_test(joining_nodes_are_pending_and_leaving_ones_hand_over),
      cmocka_unit_test(short_clusters_give_short_lists),
      cmocka_unit_test(fallbacks_come_from_every_datacenter),
      cmocka_unit_test(diff_of_equal_snapshots_is_empty),
      cmocka_unit_test(diff_of_a_leave_hands_its_ranges_to_successors),
      cmocka_unit_test(a_replacement_with_the_old_tokens_takes_only_its_ranges),
      cmocka_unit_test(token_index_finds_where_a_piece_ends),
      cmocka_unit_test(diff_from_an_empty_ring_has_no_source),
      cmocka_unit_test(diff_explains_every_change),
      cmocka_unit_test(keyspaces_take_their_own_class),
      cmocka_unit_test(classes_diff_on_their_own),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
