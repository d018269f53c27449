/* test_aae_tree.c: the anti-entropy tree on its own: maintained by XOR it
 * equals a tree rebuilt from the data, a rebuild under concurrent writes
 * ends exact, and equal objects encode to equal bytes whatever the order
 * their replicas joined them in (so equal data gives equal trees). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aae_tree.h"
#include "chorus_alloc.h"
#include "chorus_error.h"
#include "chorus_prng.h"
#include "crdt.h"
#include "ring.h"
#include "store.h"

#define NKEYS 400

/* A model of a data space: key i holds value version ver[i] (0: absent). */
struct model {
  unsigned char dkey[NKEYS][8 + 16];
  size_t dlen[NKEYS];
  uint32_t ver[NKEYS];
  int order[NKEYS]; /* indices sorted by storage key */
};

static uint64_t digest_of(uint32_t ver) {
  if (ver == 0)
    return 0;
  char v[32];
  int n = snprintf(v, sizeof v, "value-%u", ver);
  return aae_digest(v, (size_t)n);
}

static struct model *M;

static int cmp_dkey(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  size_t n = M->dlen[x] < M->dlen[y] ? M->dlen[x] : M->dlen[y];
  int c = memcmp(M->dkey[x], M->dkey[y], n);
  return c ? c : (M->dlen[x] < M->dlen[y] ? -1 : M->dlen[x] > M->dlen[y]);
}

static void model_init(struct model *m) {
  memset(m, 0, sizeof *m);
  for (int i = 0; i < NKEYS; i++) {
    char k[16];
    int n = snprintf(k, sizeof k, "key-%d", i);
    m->dlen[i] =
        store_data_key(m->dkey[i], ring_token_of(k, (size_t)n), k, (size_t)n);
    m->order[i] = i;
  }
  M = m;
  qsort(m->order, NKEYS, sizeof m->order[0], cmp_dkey);
}

/* A tree built from the model in one pass, as a rebuild scan would. */
static void build(const struct model *m, struct aae_tree *t, unsigned bits) {
  assert_int_equal(aae_tree_init(t, bits), CHORUS_OK);
  aae_tree_rebuild_begin(t);
  for (int j = 0; j < NKEYS; j++) {
    int i = m->order[j];
    if (m->ver[i])
      assert_int_equal(
          aae_tree_rebuild_add(t, m->dkey[i], m->dlen[i], digest_of(m->ver[i])),
          CHORUS_OK);
  }
  aae_tree_rebuild_end(t);
  assert_true(aae_tree_built(t));
}

static void assert_same(const struct aae_tree *a, const struct aae_tree *b) {
  assert_int_equal(a->bits, b->bits);
  assert_int_equal(a->keys, b->keys);
  assert_memory_equal(a->leaf, b->leaf, sizeof *a->leaf << a->bits);
  assert_memory_equal(a->branch, b->branch,
                      sizeof *a->branch << a->branch_bits);
}

static void write_key(struct model *m, struct aae_tree *t, int i,
                      uint32_t ver) {
  aae_tree_update(t, m->dkey[i], m->dlen[i], digest_of(m->ver[i]),
                  digest_of(ver));
  m->ver[i] = ver;
}

static void incremental_equals_rebuilt(void **state) {
  (void)state;
  static struct model m;
  model_init(&m);
  struct chorus_prng p;
  chorus_prng_seed(&p, 20);
  for (unsigned bits = 8; bits <= 16; bits += 8) {
    struct aae_tree inc;
    build(&m, &inc, bits); /* empty, built */
    uint32_t next = 1;
    for (int op = 0; op < 5000; op++) {
      int i = (int)(chorus_prng_next(&p) % NKEYS);
      /* puts, overwrites (joins), deletes */
      write_key(&m, &inc, i, chorus_prng_next(&p) % 4 == 0 ? 0 : next++);
    }
    struct aae_tree fresh;
    build(&m, &fresh, bits);
    assert_same(&inc, &fresh);
    /* A single differing key shows in exactly one leaf and one branch. */
    int i = m.order[NKEYS / 2];
    write_key(&m, &inc, i, next++);
    int dl = 0, db = 0;
    for (uint32_t s = 0; s < (1u << bits); s++)
      dl += aae_tree_leaf(&inc, s) != aae_tree_leaf(&fresh, s);
    for (uint32_t b = 0; b < (1u << inc.branch_bits); b++)
      db += aae_tree_branch(&inc, b) != aae_tree_branch(&fresh, b);
    assert_int_equal(dl, 1);
    assert_int_equal(db, 1);
    aae_tree_free(&inc);
    aae_tree_free(&fresh);
    memset(m.ver, 0, sizeof m.ver);
  }
}

static void rebuild_under_writes_ends_exact(void **state) {
  (void)state;
  static struct model m;
  model_init(&m);
  struct chorus_prng p;
  chorus_prng_seed(&p, 7);
  uint32_t next = 1;
  for (int i = 0; i < NKEYS; i++)
    m.ver[i] = chorus_prng_next(&p) % 3 ? next++ : 0;
  struct aae_tree t;
  assert_int_equal(aae_tree_init(&t, 12), CHORUS_OK);
  assert_false(aae_tree_built(&t));
  /* Stale: writes are ignored. */
  write_key(&m, &t, 0, next++);
  aae_tree_rebuild_begin(&t);
  for (int j = 0; j < NKEYS; j++) {
    int i = m.order[j];
    if (m.ver[i])
      assert_int_equal(
          aae_tree_rebuild_add(&t, m.dkey[i], m.dlen[i], digest_of(m.ver[i])),
          CHORUS_OK);
    else
      /* A scan sees only present keys; the cursor still moves. */
      assert_int_equal(aae_tree_rebuild_add(&t, m.dkey[i], m.dlen[i], 0),
                       CHORUS_OK);
    /* Writes between the steps, before and after the cursor. */
    for (int w = 0; w < 3; w++) {
      int k = (int)(chorus_prng_next(&p) % NKEYS);
      write_key(&m, &t, k, chorus_prng_next(&p) % 5 == 0 ? 0 : next++);
    }
  }
  aae_tree_rebuild_end(&t);
  struct aae_tree fresh;
  build(&m, &fresh, 12);
  assert_same(&t, &fresh);
  /* Stale again: nothing followed until the next rebuild. */
  aae_tree_mark_stale(&t);
  assert_false(aae_tree_built(&t));
  aae_tree_free(&t);
  aae_tree_free(&fresh);
}

static void bounds_and_memory(void **state) {
  (void)state;
  struct aae_tree t;
  assert_int_equal(aae_tree_init(&t, 3), CHORUS_EINVAL);
  assert_int_equal(aae_tree_init(&t, 25), CHORUS_EINVAL);
  assert_int_equal(aae_tree_init(&t, 16), CHORUS_OK);
  /* Fixed: 2^16 leaves and 2^8 branches of 8 bytes, whatever the keys. */
  assert_int_equal(aae_tree_bytes(&t), 8 * (65536 + 256));
  assert_int_equal(aae_digest("", 0), 0);
  assert_true(aae_digest("x", 1) != 0);
  assert_int_equal(aae_key_hash("12345678k", 9, 0), 0);
  aae_tree_free(&t);
}

/* Three replicas' objects, concurrent writes of three actors. */
static void replica_objects(enum crdt_type type, struct crdt_obj o[3]) {
  for (int a = 0; a < 3; a++) {
    crdt_obj_init(&o[a], type);
    for (int w = 0; w < 3; w++) {
      char v[16];
      int n = snprintf(v, sizeof v, "v%d-%d", a, w);
      switch (type) {
      case CRDT_KV: {
        struct vv ctx;
        vv_init(&ctx);
        if (w == 2)
          assert_int_equal(dvv_delete(&o[a].u.kv, 1000 + (chorus_node_id)a,
                                      &ctx, NULL, NULL, NULL),
                           CHORUS_OK);
        else
          assert_int_equal(dvv_put(&o[a].u.kv, 1000 + (chorus_node_id)a, &ctx,
                                   v, (size_t)n, NULL, NULL, NULL),
                           CHORUS_OK);
        vv_free(&ctx);
        break;
      }
      case CRDT_COUNTER:
        assert_int_equal(pncounter_add(&o[a].u.counter,
                                       1000 + (chorus_node_id)a,
                                       a != w ? a - w : 7, NULL, NULL, NULL),
                         CHORUS_OK);
        break;
      case CRDT_SET:
        assert_int_equal(orset_add(&o[a].u.set, 1000 + (chorus_node_id)a, v,
                                   (size_t)n, NULL),
                         CHORUS_OK);
        if (w == 1)
          assert_int_equal(orset_remove(&o[a].u.set, v, (size_t)n, NULL, NULL),
                           CHORUS_OK);
        break;
      default:
        break;
      }
    }
  }
}

static void encode(const struct crdt_obj *o, uint8_t **b, size_t *n) {
  size_t cap = crdt_obj_encoded_size(o), w = 0;
  *b = test_malloc(cap ? cap : 1);
  assert_int_equal(crdt_obj_encode(o, *b, cap, &w), CHORUS_OK);
  *n = w;
}

static void joins_in_any_order_encode_identically(void **state) {
  (void)state;
  static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                  {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
  enum crdt_type types[] = {CRDT_KV, CRDT_COUNTER, CRDT_SET};
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
    struct crdt_obj o[3];
    replica_objects(types[t], o);
    uint8_t *first = NULL;
    size_t flen = 0;
    for (int p = 0; p < 6; p++) {
      /* A replica that held o[p0] and joined the others, one at a time;
       * and one that joined a join (as read repair hands on). */
      for (int shape = 0; shape < 2; shape++) {
        struct crdt_obj acc;
        crdt_obj_init(&acc, types[t]);
        if (shape == 0) {
          for (int k = 0; k < 3; k++)
            assert_int_equal(crdt_obj_join(&acc, &o[perms[p][k]], NULL),
                             CHORUS_OK);
        } else {
          struct crdt_obj pair;
          crdt_obj_init(&pair, types[t]);
          assert_int_equal(crdt_obj_join(&pair, &o[perms[p][1]], NULL),
                           CHORUS_OK);
          assert_int_equal(crdt_obj_join(&pair, &o[perms[p][2]], NULL),
                           CHORUS_OK);
          assert_int_equal(crdt_obj_join(&acc, &o[perms[p][0]], NULL),
                           CHORUS_OK);
          assert_int_equal(crdt_obj_join(&acc, &pair, NULL), CHORUS_OK);
          crdt_obj_free(&pair);
        }
        uint8_t *b;
        size_t n;
        encode(&acc, &b, &n);
        if (first == NULL) {
          first = b;
          flen = n;
        } else {
          assert_int_equal(n, flen);
          assert_memory_equal(b, first, n);
          assert_int_equal(aae_digest(b, n), aae_digest(first, flen));
          test_free(b);
        }
        crdt_obj_free(&acc);
      }
    }
    test_free(first);
    for (int a = 0; a < 3; a++)
      crdt_obj_free(&o[a]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(incremental_equals_rebuilt),
      cmocka_unit_test(rebuild_under_writes_ends_exact),
      cmocka_unit_test(bounds_and_memory),
      cmocka_unit_test(joins_in_any_order_encode_identically),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
