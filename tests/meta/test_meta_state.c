/* test_meta_state.c: the metadata state machine (meta/meta_state.c):
 * applying every command type, the result codes and the epoch rule, every
 * member transition, the ring built from a state, the voter choice and
 * the deep copy, with the out-of-memory paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_alloc.h"
#include "meta.h"
#include "meta_test.h"

static struct meta_cmd join_cmd(chorus_node_id id, const char *name,
                                const char *dc, const char *rack,
                                uint8_t state) {
  struct meta_cmd c = {.type = META_CMD_JOIN};
  c.member = meta_t_member(id, name, dc, rack, state);
  c.member.vnodes = 16; /* small rings build fast */
  return c;
}

static struct meta_cmd set_cmd(chorus_node_id id, uint8_t state) {
  return (struct meta_cmd){
      .type = META_CMD_SET_STATE, .id = id, .state = state};
}

/* A state of @n members named m<i>, ids 10, 20, ..., in @dcs datacenters
 * and @racks racks per datacenter (member i in dc i % dcs, rack
 * (i / dcs) % racks), all NORMAL. */
static void grow(struct meta_state *s, size_t n, size_t dcs, size_t racks) {
  struct ring_replication r = meta_t_repl_n(3);
  meta_state_init(s, &r);
  for (size_t i = 0; i < n; i++) {
    char name[16], dc[16], rack[16];
    snprintf(name, sizeof name, "m%zu", i);
    snprintf(dc, sizeof dc, "dc%zu", i % dcs);
    snprintf(rack, sizeof rack, "r%zu", (i / dcs) % racks);
    struct meta_cmd c = join_cmd(10 * (i + 1), name, dc, rack, META_NORMAL);
    assert_int_equal(meta_state_apply(s, &c, 2 * i + 1), CHORUS_OK);
    /* Only the first owns at once; the others are made NORMAL as a
     * FINISH would. */
    c = set_cmd(10 * (i + 1), META_NORMAL);
    (void)meta_state_apply(s, &c, 2 * i + 2);
  }
}

static void test_init(void **state) {
  (void)state;
  struct meta_state s;
  struct ring_replication r = meta_t_repl_dcs();
  meta_state_init(&s, &r);
  assert_true(meta_t_repl_eq(&s.replication, &r));
  assert_int_equal(s.n, 0);
  assert_null(s.members);
  assert_int_equal(s.epoch, 0);
  assert_int_equal(s.applied, 0);
  meta_state_init(&s, NULL);
  assert_int_equal(s.replication.n, 0);
  meta_state_free(&s);
  meta_state_free(NULL);
}

static void test_join(void **state) {
  (void)state;
  struct meta_state s;
  meta_state_init(&s, NULL);
  /* Out of id order: kept sorted; since = the index; epoch +1 each. Only
   * the first member owns tokens from its JOIN: every later one joins as
   * JOINING, even when it asks to be NORMAL (a founder after the first),
   * and is made NORMAL here as a FINISH would. */
  const chorus_node_id ids[] = {50, 10, 20, 40, 30};
  uint64_t epoch = 0;
  for (size_t i = 0; i < 5; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%llu", (unsigned long long)ids[i]);
    struct meta_cmd c = join_cmd(ids[i], name, "dc1", "r1",
                                 i == 4 ? META_JOINING : META_NORMAL);
    assert_int_equal(meta_state_apply(&s, &c, 100 + 2 * i), CHORUS_OK);
    assert_int_equal(s.epoch, ++epoch);
    assert_int_equal(s.applied, 100 + 2 * i);
    assert_int_equal(meta_state_find(&s, ids[i])->state,
                     i == 0 ? META_NORMAL : META_JOINING);
    if (i == 0 || i == 4)
      continue;
    c = set_cmd(ids[i], META_NORMAL);
    assert_int_equal(meta_state_apply(&s, &c, 101 + 2 * i), CHORUS_OK);
    assert_int_equal(s.epoch, ++epoch);
  }
  assert_int_equal(s.n, 5);
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(s.members[i].id, 10 * (i + 1));
  const struct meta_member *m = meta_state_find(&s, 30);
  assert_non_null(m);
  assert_string_equal(m->name, "n30");
  assert_int_equal(m->since, 108);
  assert_int_equal(m->state, META_JOINING);
  assert_ptr_equal(meta_state_find_name(&s, "n30"), m);
  assert_null(meta_state_find(&s, 31));
  assert_null(meta_state_find_name(&s, "n31"));

  /* Refused joins: a no-op but for applied. */
  struct {
    struct meta_cmd c;
    int rc;
  } bad[] = {
      {join_cmd(30, "fresh", "dc1", "r1", META_JOINING), CHORUS_EEXIST},
      {join_cmd(31, "n30", "dc1", "r1", META_JOINING), CHORUS_EEXIST},
      {join_cmd(0, "zero", "dc1", "r1", META_JOINING), CHORUS_EINVAL},
      {join_cmd(32, "", "dc1", "r1", META_JOINING), CHORUS_EINVAL},
      {join_cmd(33, "leaving", "dc1", "r1", META_LEAVING), CHORUS_EINVAL},
      {join_cmd(34, "left", "dc1", "r1", META_LEFT), CHORUS_EINVAL},
      {join_cmd(35, "removed", "dc1", "r1", META_REMOVED), CHORUS_EINVAL},
      {join_cmd(36, "zero-state", "dc1", "r1", 0), CHORUS_EINVAL},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(meta_state_apply(&s, &bad[i].c, 200 + i), bad[i].rc);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.epoch, epoch);
    assert_int_equal(s.applied, 200 + i);
  }
  /* And a new joiner waits while n30 joins. */
  struct meta_cmd busy = join_cmd(38, "later", "dc1", "r1", META_NORMAL);
  assert_int_equal(meta_state_apply(&s, &busy, 250), CHORUS_EBUSY);
  assert_int_equal(s.n, 5);
  /* A name without its NUL is refused, not read past. */
  struct meta_cmd c = join_cmd(37, "x", "dc1", "r1", META_JOINING);
  memset(c.member.name, 'x', sizeof c.member.name);
  assert_int_equal(meta_state_apply(&s, &c, 300), CHORUS_EINVAL);
  meta_state_free(&s);
}

/* A full state (built directly: 4,096 joins cost seconds of realloc under
 * ASan): the next join is ETOOBIG, a no-op but for applied. */
static void test_join_full(void **state) {
  (void)state;
  struct meta_state s;
  meta_state_init(&s, NULL);
  s.members = chorus_calloc(META_MAX_MEMBERS, sizeof *s.members);
  assert_non_null(s.members);
  for (size_t i = 0; i < META_MAX_MEMBERS; i++) {
    char name[16];
    snprintf(name, sizeof name, "n%zu", i);
    s.members[i] = meta_t_member(i + 1, name, "", "", META_NORMAL);
  }
  s.n = META_MAX_MEMBERS;
  s.epoch = 7;
  struct meta_cmd c = join_cmd(UINT64_MAX, "one-more", "", "", META_NORMAL);
  assert_int_equal(meta_state_apply(&s, &c, 99999), CHORUS_ETOOBIG);
  assert_int_equal(s.n, META_MAX_MEMBERS);
  assert_int_equal(s.epoch, 7);
  assert_int_equal(s.applied, 99999);
  /* Full, yet a name or id in use is still EEXIST (checked first). */
  c = join_cmd(1, "fresh", "", "", META_NORMAL);
  assert_int_equal(meta_state_apply(&s, &c, 100000), CHORUS_EEXIST);
  meta_state_free(&s);
}

/* Every (from, to) pair of SET_STATE against the life meta.h draws. */
static void test_transitions(void **state) {
  (void)state;
  /* allowed[from][to] */
  static const bool allowed[META_STATE_MAX + 1][META_STATE_MAX + 2] = {
      [META_JOINING] =
          {[META_NORMAL] = true, [META_LEFT] = true, [META_REMOVED] = true},
      [META_NORMAL] = {[META_LEAVING] = true, [META_REMOVED] = true},
      [META_LEAVING] =
          {[META_NORMAL] = true, [META_LEFT] = true, [META_REMOVED] = true},
      [META_LEFT] = {[META_REMOVED] = true},
      [META_REMOVED] = {0},
  };
  /* Reach each starting state through allowed steps. */
  static const uint8_t path[META_STATE_MAX + 1][3] = {
      [META_JOINING] = {0},
      [META_NORMAL] = {META_NORMAL},
      [META_LEAVING] = {META_NORMAL, META_LEAVING},
      [META_LEFT] = {META_NORMAL, META_LEAVING, META_LEFT},
      [META_REMOVED] = {META_REMOVED},
  };
  /* REPLACING is reached by REPLACE only (test_replacements). */
  for (uint8_t from = META_JOINING; from <= META_REMOVED; from++) {
    for (uint8_t to = 0; to <= META_STATE_MAX + 1; to++) {
      struct meta_state s;
      meta_state_init(&s, NULL);
      struct meta_cmd j = join_cmd(7, "seven", "dc1", "r1", META_JOINING);
      uint64_t index = 1;
      assert_int_equal(meta_state_apply(&s, &j, index++), CHORUS_OK);
      for (int k = 0; k < 3 && path[from][k] != 0; k++) {
        struct meta_cmd c = set_cmd(7, path[from][k]);
        assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
      }
      assert_int_equal(s.members[0].state, from);
      uint64_t epoch = s.epoch, since = s.members[0].since;
      struct meta_cmd c = set_cmd(7, to);
      int rc = meta_state_apply(&s, &c, 50);
      assert_int_equal(s.applied, 50);
      if (allowed[from][to]) {
        assert_int_equal(rc, CHORUS_OK);
        assert_int_equal(s.members[0].state, to);
        assert_int_equal(s.members[0].since, 50);
        assert_int_equal(s.epoch, epoch + 1);
      } else {
        assert_int_equal(rc, CHORUS_EINVAL);
        assert_int_equal(s.members[0].state, from);
        assert_int_equal(s.members[0].since, since);
        assert_int_equal(s.epoch, epoch);
      }
      /* REMOVE is SET_STATE to REMOVED. */
      struct meta_state r;
      meta_state_init(&r, NULL);
      assert_int_equal(meta_state_apply(&r, &j, 1), CHORUS_OK);
      for (int k = 0; k < 3 && path[from][k] != 0; k++) {
        struct meta_cmd p = set_cmd(7, path[from][k]);
        assert_int_equal(meta_state_apply(&r, &p, 2 + (uint64_t)k), CHORUS_OK);
      }
      struct meta_cmd rm = {.type = META_CMD_REMOVE, .id = 7};
      assert_int_equal(meta_state_apply(&r, &rm, 60),
                       allowed[from][META_REMOVED] ? CHORUS_OK : CHORUS_EINVAL);
      assert_int_equal(r.members[0].state, META_REMOVED);
      meta_state_free(&r);
      meta_state_free(&s);
    }
  }
}

static void test_unknown_member_and_type(void **state) {
  (void)state;
  struct meta_state s;
  grow(&s, 3, 1, 1);
  uint64_t epoch = s.epoch;
  struct meta_cmd c = set_cmd(11, META_LEAVING);
  assert_int_equal(meta_state_apply(&s, &c, 10), CHORUS_ENOTFOUND);
  c = (struct meta_cmd){.type = META_CMD_REMOVE, .id = 11};
  assert_int_equal(meta_state_apply(&s, &c, 11), CHORUS_ENOTFOUND);
  c = (struct meta_cmd){.type = 0};
  assert_int_equal(meta_state_apply(&s, &c, 12), CHORUS_EINVAL);
  c = (struct meta_cmd){.type = META_CMD_MAX + 1};
  assert_int_equal(meta_state_apply(&s, &c, 13), CHORUS_EINVAL);
  assert_int_equal(s.epoch, epoch);
  assert_int_equal(s.applied, 13);
  /* applied never goes back. */
  c = (struct meta_cmd){.type = META_CMD_NOTE, .note_key = 1};
  assert_int_equal(meta_state_apply(&s, &c, 5), CHORUS_OK);
  assert_int_equal(s.applied, 13);
  meta_state_free(&s);
}

static void test_replication_and_note(void **state) {
  (void)state;
  struct meta_state s;
  grow(&s, 2, 1, 1);
  uint64_t epoch = s.epoch;
  struct meta_cmd c = {.type = META_CMD_REPLICATION,
                       .replication = meta_t_repl_dcs()};
  assert_int_equal(meta_state_apply(&s, &c, 20), CHORUS_OK);
  assert_true(meta_t_repl_eq(&s.replication, &c.replication));
  assert_int_equal(s.epoch, epoch + 1);
  /* A NOTE changes nothing but applied and the register. */
  struct meta_state before;
  assert_int_equal(meta_state_copy(&s, &before), CHORUS_OK);
  c = (struct meta_cmd){.type = META_CMD_NOTE, .note_key = 3, .note_value = 4};
  assert_int_equal(meta_state_apply(&s, &c, 21), CHORUS_OK);
  assert_int_equal(s.applied, 21);
  before.applied = 21;
  before.note_key = 3;
  before.note = 4;
  assert_true(meta_t_state_eq(&s, &before));
  meta_state_free(&before);
  meta_state_free(&s);
}

/* Keyspaces (V6): created with a fresh id, found by name, altered in
 * their settings but not their type, dropped; an id is never given again;
 * bad names and settings, a replication of their own, duplicates and
 * unknown names are refused; none changes the ring's epoch. */
static void test_keyspaces(void **state) {
  (void)state;
  struct meta_state s;
  grow(&s, 3, 1, 1);
  uint64_t epoch = s.epoch, index = 100;
  struct meta_cmd c = {.type = META_CMD_KEYSPACE_CREATE};
  c.keyspace = meta_t_keyspace("users", 0, META_KS_KV);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  c.keyspace = meta_t_keyspace("carts", 77, META_KS_MAP); /* id ignored */
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EEXIST);
  assert_int_equal(s.nks, 2);
  assert_string_equal(s.keyspaces[0].name, "carts"); /* sorted by name */
  assert_int_equal(meta_state_keyspace(&s, "users")->id, 1);
  assert_int_equal(meta_state_keyspace(&s, "carts")->id, 2);
  assert_null(meta_state_keyspace(&s, "default"));
  assert_null(meta_state_keyspace(&s, "nope"));
  /* Alter: new settings, same id; another type refused. */
  c.type = META_CMD_KEYSPACE_ALTER;
  c.keyspace = meta_t_keyspace("users", 9, META_KS_KV);
  c.keyspace.ttl_ms = 60000;
  c.keyspace.write = -4;
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  const struct meta_keyspace *u = meta_state_keyspace(&s, "users");
  assert_int_equal(u->id, 1);
  assert_int_equal(u->ttl_ms, 60000);
  assert_int_equal(u->write, -4);
  c.keyspace.type = META_KS_COUNTER;
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EINVAL);
  c.keyspace = meta_t_keyspace("ghost", 0, META_KS_KV);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_ENOTFOUND);
  /* Bad ones. */
  c.type = META_CMD_KEYSPACE_CREATE;
  static const char *const bad_names[] = {"", "default", "a b", "é", "a/b"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
    c.keyspace = meta_t_keyspace(bad_names[i], 0, META_KS_KV);
    assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EINVAL);
  }
  c.keyspace = meta_t_keyspace("x", 0, META_KS_TYPE_MAX + 1);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EINVAL);
  c.keyspace = meta_t_keyspace("x", 0, META_KS_KV);
  c.keyspace.read = META_LEVEL_MAX + 1;
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EINVAL);
  c.keyspace = meta_t_keyspace("x", 0, META_KS_KV);
  c.keyspace.siblings_warn = 50; /* above max, 20 */
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EINVAL);
  c.keyspace = meta_t_keyspace("x", 0, META_KS_KV);
  c.keyspace.replication = meta_t_repl_n(0);
  c.keyspace.replication.dc_count = 1; /* a datacenter without a name's NUL */
  memset(c.keyspace.replication.dcs[0].dc, 'a', RING_NAME_MAX);
  c.keyspace.replication.dcs[0].factor = 1;
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EINVAL);
  char why[META_TEXT_MAX];
  assert_int_equal(meta_keyspace_check(&c.keyspace, why), CHORUS_EINVAL);
  /* A replication of its own (issue 21): a class in every ring of the
   * state; the cluster's spelled out is no class; ALTER keeps it. */
  assert_int_equal(meta_state_placement(&s), 0);
  c.keyspace = meta_t_keyspace("one", 0, META_KS_KV);
  c.keyspace.replication = meta_t_repl_n(1);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  uint64_t placed = meta_state_placement(&s);
  assert_int_not_equal(placed, 0);
  c.keyspace = meta_t_keyspace("same", 0, META_KS_KV);
  c.keyspace.replication = s.replication;
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  assert_int_equal(meta_state_placement(&s), placed);
  struct ring_snapshot *ring = NULL;
  assert_int_equal(meta_state_ring(&s, &ring, NULL), CHORUS_OK);
  assert_int_equal(ring_snapshot_class_count(ring), 2);
  unsigned char key[] = {0, 0, 0, 0, 0, 'k'};
  key[4] = (unsigned char)meta_state_keyspace(&s, "one")->id;
  struct ring_plist pl;
  assert_int_equal(ring_lookup_key(ring, key, sizeof key, 0, &pl), CHORUS_OK);
  assert_int_equal(pl.n_natural, 1);
  key[4] = (unsigned char)meta_state_keyspace(&s, "same")->id;
  assert_int_equal(ring_lookup_key(ring, key, sizeof key, 0, &pl), CHORUS_OK);
  assert_int_equal(pl.n_natural, 3);
  ring_snapshot_free(ring);
  c.type = META_CMD_KEYSPACE_ALTER;
  c.keyspace = meta_t_keyspace("one", 0, META_KS_KV);
  c.keyspace.replication = meta_t_repl_n(2);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_ENOTSUP);
  assert_int_equal(meta_keyspace_placement(&s, &c.keyspace, true, why),
                   CHORUS_ENOTSUP);
  assert_non_null(strstr(why, "cannot change"));
  c.keyspace.replication = meta_t_repl_n(1);
  c.keyspace.ttl_ms = 5000;
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  /* Seven classes besides the cluster's, then no eighth. */
  c.type = META_CMD_KEYSPACE_CREATE;
  for (uint32_t n = 2; n <= 8; n++) {
    char name[8];
    snprintf(name, sizeof name, "n%u", n);
    c.keyspace = meta_t_keyspace(name, 0, META_KS_KV);
    c.keyspace.replication = meta_t_repl_n(n == 3 ? 9 : n);
    assert_int_equal(meta_state_apply(&s, &c, index++),
                     n < 8 ? CHORUS_OK : CHORUS_ENOSPC);
  }
  assert_int_equal(meta_keyspace_placement(&s, &c.keyspace, false, why),
                   CHORUS_ENOSPC);
  c.keyspace = meta_t_keyspace("n1-again", 0, META_KS_KV);
  c.keyspace.replication = meta_t_repl_n(1); /* a class already there */
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  assert_int_equal(meta_state_ring(&s, &ring, NULL), CHORUS_OK);
  assert_int_equal(ring_snapshot_class_count(ring), RING_MAX_CLASSES);
  ring_snapshot_free(ring);
  c.type = META_CMD_KEYSPACE_DROP;
  uint32_t n2_id = meta_state_keyspace(&s, "n2")->id;
  for (uint32_t n = 2; n < 8; n++) {
    snprintf(c.keyspace.name, sizeof c.keyspace.name, "n%u", n);
    assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  }
  snprintf(c.keyspace.name, sizeof c.keyspace.name, "n1-again");
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  snprintf(c.keyspace.name, sizeof c.keyspace.name, "same");
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  /* Dropped keyspaces change the placement: their keys are nobody's. */
  uint64_t after_drops = meta_state_placement(&s);
  assert_int_not_equal(after_drops, placed);
  assert_int_not_equal(after_drops, 0);
  assert_int_equal(meta_state_ring(&s, &ring, NULL), CHORUS_OK);
  assert_true(ring_snapshot_has_dropped(ring));
  assert_int_not_equal(ring_snapshot_class_map(ring), 0);
  key[1] = (unsigned char)(n2_id >> 24);
  key[2] = (unsigned char)(n2_id >> 16);
  key[3] = (unsigned char)(n2_id >> 8);
  key[4] = (unsigned char)n2_id;
  assert_true(ring_key_dropped(ring, key, sizeof key));
  assert_int_equal(ring_key_class(ring, key, sizeof key), 0);
  key[4] = (unsigned char)meta_state_keyspace(&s, "one")->id;
  key[3] = key[2] = key[1] = 0;
  assert_false(ring_key_dropped(ring, key, sizeof key));
  assert_int_equal(ring_lookup_key(ring, key, sizeof key, 0, &pl), CHORUS_OK);
  assert_int_equal(pl.n_natural, 1);
  key[4] = (unsigned char)s.next_ks_id; /* not given yet: not dropped */
  assert_false(ring_key_dropped(ring, key, sizeof key));
  assert_false(ring_key_dropped(ring, "plain", 5));
  ring_snapshot_free(ring);
  snprintf(c.keyspace.name, sizeof c.keyspace.name, "one");
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  assert_int_not_equal(meta_state_placement(&s), after_drops);
  /* Drop, and a name created again is a new keyspace. */
  c.type = META_CMD_KEYSPACE_DROP;
  c.keyspace = (struct meta_keyspace){.name = "users"};
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_ENOTFOUND);
  assert_null(meta_state_keyspace(&s, "users"));
  c.type = META_CMD_KEYSPACE_CREATE;
  c.keyspace = meta_t_keyspace("users", 0, META_KS_LWW);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  /* 12: users, carts, one, same, n2..n7 and n1-again took 1..11; the
   * refused n8 took none. */
  assert_int_equal(meta_state_keyspace(&s, "users")->id, 12);
  assert_int_equal(meta_state_keyspace(&s, "users")->type, META_KS_LWW);
  assert_int_equal(s.epoch, epoch);
  /* The table survives the state's encoding. */
  uint8_t *buf;
  size_t len;
  struct meta_state d;
  assert_int_equal(meta_state_encode(&s, &buf, &len), CHORUS_OK);
  assert_int_equal(meta_state_decode(buf, len, &d), CHORUS_OK);
  assert_true(meta_t_state_eq(&s, &d));
  chorus_free(buf);
  meta_state_free(&d);
  assert_int_equal(meta_ks_type_parse("counter"), META_KS_COUNTER);
  assert_int_equal(meta_ks_type_parse("nope"), -1);
  assert_string_equal(meta_ks_type_name(META_KS_MAP), "map");
  meta_state_free(&s);
}

/* Users (V7): created with a verifier and no grants, found by name, a new
 * password keeps the grants, grants add once and sort, a role covers the
 * ones below it, a grant on every keyspace covers default and the cluster,
 * a keyspace dropped takes its grants; bad names, costs, unknown users,
 * keyspaces and roles are refused; none changes the ring's epoch. */
/* The gossip keyring (issue 24): install -> use -> remove, judged when
 * applied; THE SAFETY RULE (meta.h): use only once every member that is
 * not LEFT or REMOVED reported applying the install, remove only once
 * every one reported applying the use; never the primary. */
static void ack(struct meta_state *s, chorus_node_id id, uint64_t *index) {
  struct meta_cmd c = {.type = META_CMD_KEY_APPLIED, .id = id};
  c.version = s->keyring.version;
  assert_int_equal(meta_state_apply(s, &c, (*index)++), CHORUS_OK);
}

static void test_keyring(void **state) {
  (void)state;
  struct meta_state s;
  grow(&s, 3, 1, 1); /* members 10 (m0), 20 (m1), 30 (m2) */
  uint64_t epoch = s.epoch, index = 100;
  uint8_t boot[META_KEY_BYTES], keys[META_MAX_KEYS][META_KEY_BYTES];
  memset(boot, 0xb0, sizeof boot);
  /* Nothing installed: the boot key alone. */
  assert_int_equal(meta_keyring_keys(&s.keyring, boot, keys), 1);
  assert_memory_equal(keys[0], boot, sizeof boot);
  struct meta_cmd c = {.type = META_CMD_KEY_INSTALL};
  c.key = meta_t_key(1);
  struct meta_key k1 = c.key;
  c.key.id ^= 1; /* not its fingerprint */
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EINVAL);
  c.key = k1;
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EEXIST);
  assert_int_equal(s.keyring.version, 1);
  /* Installed: the boot key still seals, k1 opens. */
  assert_int_equal(meta_keyring_keys(&s.keyring, boot, keys), 2);
  assert_memory_equal(keys[0], boot, sizeof boot);
  assert_memory_equal(keys[1], k1.key, sizeof k1.key);
  /* Use: refused while m2 has not applied the install, naming it. */
  ack(&s, 10, &index);
  ack(&s, 20, &index);
  struct meta_cmd use = {.type = META_CMD_KEY_USE};
  use.key.id = k1.id;
  char why[META_TEXT_MAX];
  assert_int_equal(meta_keyring_check(&s, &use, why), CHORUS_EBUSY);
  assert_non_null(strstr(why, "m2 has not applied the install"));
  assert_int_equal(meta_state_apply(&s, &use, index++), CHORUS_EBUSY);
  assert_int_equal(s.keyring.primary, 0);
  /* A report from a stranger, or of a version not reached, is refused;
   * an older one changes nothing. */
  struct meta_cmd a = {.type = META_CMD_KEY_APPLIED, .id = 99, .version = 1};
  assert_int_equal(meta_state_apply(&s, &a, index++), CHORUS_ENOTFOUND);
  a.id = 30, a.version = 2;
  assert_int_equal(meta_state_apply(&s, &a, index++), CHORUS_EINVAL);
  ack(&s, 30, &index);
  a.version = 0;
  assert_int_equal(meta_state_apply(&s, &a, index++), CHORUS_OK);
  assert_int_equal(meta_key_applied(&s, 30), 1);
  struct meta_cmd use0 = use;
  use0.key.id = 12345;
  assert_int_equal(meta_state_apply(&s, &use0, index++), CHORUS_ENOTFOUND);
  assert_int_equal(meta_state_apply(&s, &use, index++), CHORUS_OK);
  assert_int_equal(s.keyring.primary, k1.id);
  assert_int_equal(s.keyring.primary_since, 2);
  assert_int_equal(meta_state_apply(&s, &use, index++), CHORUS_OK);
  assert_int_equal(s.keyring.version, 2); /* again: nothing to apply */
  /* k1 seals, the boot key still opens. */
  assert_int_equal(meta_keyring_keys(&s.keyring, boot, keys), 2);
  assert_memory_equal(keys[0], k1.key, sizeof k1.key);
  assert_memory_equal(keys[1], boot, sizeof boot);
  /* Remove: never the primary; the boot key (0) only once every member
   * seals with k1. A REMOVED member does not count. */
  struct meta_cmd rm = {.type = META_CMD_KEY_REMOVE};
  rm.key.id = k1.id;
  assert_int_equal(meta_keyring_check(&s, &rm, why), CHORUS_EINVAL);
  assert_non_null(strstr(why, "is the primary"));
  rm.key.id = 0;
  ack(&s, 10, &index);
  ack(&s, 30, &index);
  assert_int_equal(meta_keyring_check(&s, &rm, why), CHORUS_EBUSY);
  assert_non_null(strstr(why, "m1 has not applied the use"));
  struct meta_cmd gone = {.type = META_CMD_REMOVE, .id = 20};
  assert_int_equal(meta_state_apply(&s, &gone, index++), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &rm, index++), CHORUS_OK);
  assert_true(s.keyring.boot_retired);
  assert_int_equal(meta_state_apply(&s, &rm, index++), CHORUS_ENOTFOUND);
  assert_int_equal(meta_keyring_keys(&s.keyring, boot, keys), 1);
  assert_memory_equal(keys[0], k1.key, sizeof k1.key);
  /* Full: four keys at most (the boot key counted while it is not
   * retired). */
  for (uint8_t f = 2; f <= 4; f++) {
    c.key = meta_t_key(f);
    assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  }
  c.key = meta_t_key(5);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_ENOSPC);
  assert_int_equal(meta_keyring_keys(&s.keyring, boot, keys), META_MAX_KEYS);
  assert_memory_equal(keys[0], k1.key, sizeof k1.key);
  /* An accepted key nobody seals with goes at once (all reported the
   * use); its slot is free again. */
  rm.key = meta_t_key(3);
  assert_int_equal(meta_state_apply(&s, &rm, index++), CHORUS_OK);
  assert_null(meta_keyring_find(&s.keyring, rm.key.id));
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  /* None of it moved the epoch; a copy and a round trip keep it all. */
  assert_int_equal(s.epoch, epoch + 1); /* the REMOVE */
  struct meta_state d;
  assert_int_equal(meta_state_copy(&s, &d), CHORUS_OK);
  assert_true(meta_t_state_eq(&s, &d));
  meta_state_free(&d);
  uint8_t *buf;
  size_t len;
  assert_int_equal(meta_state_encode(&s, &buf, &len), CHORUS_OK);
  assert_int_equal(meta_state_decode(buf, len, &d), CHORUS_OK);
  assert_true(meta_t_state_eq(&s, &d));
  meta_state_free(&d);
  chorus_free(buf);
  meta_state_free(&s);
}

static void test_users(void **state) {
  (void)state;
  struct meta_state s;
  grow(&s, 3, 1, 1);
  uint64_t epoch = s.epoch, index = 100;
  struct meta_cmd c = {.type = META_CMD_KEYSPACE_CREATE};
  c.keyspace = meta_t_keyspace("orders", 0, META_KS_KV);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  uint32_t orders = meta_state_keyspace(&s, "orders")->id;
  c = (struct meta_cmd){.type = META_CMD_USER_CREATE};
  c.user = meta_t_user("zed");
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  c.user = meta_t_user("ann");
  c.user.ngrants = 1; /* a command's grants are not taken */
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EEXIST);
  assert_int_equal(s.nusers, 2);
  assert_string_equal(s.users[0].name, "ann"); /* sorted by name */
  const struct meta_user *ann = meta_state_user(&s, "ann");
  assert_non_null(ann);
  assert_int_equal(ann->ngrants, 0);
  assert_false(meta_user_may(ann, META_ROLE_READ, 0));
  assert_null(meta_state_user(&s, "nobody"));
  /* Grants: write on orders, read everywhere; again: no change. */
  c = (struct meta_cmd){.type = META_CMD_USER_GRANT};
  strcpy(c.user.name, "ann");
  c.grant = (struct meta_grant){META_ROLE_WRITE, orders};
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  c.grant = (struct meta_grant){META_ROLE_READ, 0};
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  ann = meta_state_user(&s, "ann");
  assert_int_equal(ann->ngrants, 2);
  assert_int_equal(ann->grants[0].ks_id, 0); /* sorted by keyspace */
  assert_true(meta_user_may(ann, META_ROLE_READ, orders));
  assert_true(meta_user_may(ann, META_ROLE_WRITE, orders));
  assert_false(meta_user_may(ann, META_ROLE_ADMIN, orders));
  assert_true(meta_user_may(ann, META_ROLE_READ, 0));   /* default */
  assert_false(meta_user_may(ann, META_ROLE_WRITE, 0)); /* default */
  assert_true(meta_user_may(ann, META_ROLE_READ, 999)); /* read everywhere */
  c.grant = (struct meta_grant){META_ROLE_READ, 999};
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_ENOTFOUND);
  c.grant = (struct meta_grant){0, 0};
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EINVAL);
  strcpy(c.user.name, "nobody");
  c.grant = (struct meta_grant){META_ROLE_READ, 0};
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_ENOTFOUND);
  /* A new password keeps the grants. */
  c = (struct meta_cmd){.type = META_CMD_USER_PASSWD};
  c.user = meta_t_user("ann");
  memset(c.user.stored_key, 0x33, sizeof c.user.stored_key);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  ann = meta_state_user(&s, "ann");
  assert_int_equal(ann->stored_key[0], 0x33);
  assert_int_equal(ann->ngrants, 2);
  c.user = meta_t_user("nobody");
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_ENOTFOUND);
  /* Revoke: what was granted, once. */
  c = (struct meta_cmd){.type = META_CMD_USER_REVOKE};
  strcpy(c.user.name, "ann");
  c.grant = (struct meta_grant){META_ROLE_READ, 0};
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_ENOTFOUND);
  assert_false(meta_user_may(meta_state_user(&s, "ann"), META_ROLE_READ, 0));
  /* Dropping orders drops its grants. */
  c = (struct meta_cmd){.type = META_CMD_KEYSPACE_DROP};
  strcpy(c.keyspace.name, "orders");
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  assert_int_equal(meta_state_user(&s, "ann")->ngrants, 0);
  /* Bad users. */
  c = (struct meta_cmd){.type = META_CMD_USER_CREATE};
  static const char *const bad_names[] = {"", "a b", "a:b", "a/b"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
    c.user = meta_t_user(bad_names[i]);
    assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EINVAL);
  }
  c.user = meta_t_user("x");
  c.user.ops = META_USER_OPS_MAX + 1;
  char why[META_TEXT_MAX];
  assert_int_equal(meta_user_check(&c.user, why), CHORUS_EINVAL);
  assert_non_null(strstr(why, "costs"));
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_EINVAL);
  /* Drop. */
  c = (struct meta_cmd){.type = META_CMD_USER_DROP};
  strcpy(c.user.name, "zed");
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &c, index++), CHORUS_ENOTFOUND);
  assert_int_equal(s.nusers, 1);
  assert_int_equal(s.epoch, epoch);
  assert_string_equal(meta_role_name(META_ROLE_ADMIN), "admin");
  assert_int_equal(meta_role_parse("write"), META_ROLE_WRITE);
  assert_int_equal(meta_role_parse("root"), -1);
  /* The table survives the state's encoding. */
  uint8_t *buf;
  size_t len;
  struct meta_state d;
  assert_int_equal(meta_state_encode(&s, &buf, &len), CHORUS_OK);
  assert_int_equal(meta_state_decode(buf, len, &d), CHORUS_OK);
  assert_true(meta_t_state_eq(&s, &d));
  chorus_free(buf);
  meta_state_free(&d);
  meta_state_free(&s);
}

/* Out of memory in a JOIN: the one error that leaves the state unchanged
 * altogether, applied included (the caller must stop). */
static void test_join_oom(void **state) {
  (void)state;
  struct meta_state s, before;
  grow(&s, 3, 1, 1);
  assert_int_equal(meta_state_copy(&s, &before), CHORUS_OK);
  struct meta_cmd c = join_cmd(15, "new", "dc1", "r1", META_JOINING);
  chorus_alloc_fail_after(0);
  int rc = meta_state_apply(&s, &c, 40);
  chorus_alloc_fail_after(-1);
  assert_int_equal(rc, CHORUS_ENOMEM);
  assert_true(meta_t_state_eq(&s, &before));
  assert_int_equal(meta_state_apply(&s, &c, 40), CHORUS_OK);
  assert_int_equal(s.n, 4);
  meta_state_free(&before);
  meta_state_free(&s);
}

static struct meta_cmd note_cmd(chorus_node_id proposer, uint64_t req,
                                uint64_t value) {
  return (struct meta_cmd){.type = META_CMD_NOTE,
                           .note_key = proposer,
                           .note_value = value,
                           .proposer = proposer,
                           .req_id = req};
}

/* A command committed twice (a resent proposal, meta.h EXACTLY ONCE) is
 * applied once: the copy answers with the first one's result and changes
 * nothing but applied. */
static void test_exactly_once(void **state) {
  (void)state;
  struct meta_state s, before;
  grow(&s, 2, 1, 1);
  /* A register written by a, then b; a's write committed again must not
   * bring a's value back (a lost write to a reader). */
  struct meta_cmd a = note_cmd(0xa, 1, 100), b = note_cmd(0xb, 1, 200);
  assert_int_equal(meta_state_apply(&s, &a, 10), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &b, 11), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &a, 12), CHORUS_OK);
  assert_int_equal(s.note, 200);
  assert_int_equal(s.applied, 12);
  assert_int_equal(s.nsessions, 2);
  const struct meta_session *x = meta_state_session(&s, 0xa, 1);
  assert_non_null(x);
  assert_int_equal(x->index, 10);
  assert_null(meta_state_session(&s, 0xa, 2));
  assert_null(meta_state_session(&s, 0, 0));
  /* A JOIN committed twice answers OK both times (not EEXIST), and the
   * epoch moves once. */
  struct meta_cmd j = join_cmd(77, "late", "dc0", "r0", META_JOINING);
  j.proposer = 77, j.req_id = 5;
  uint64_t epoch = s.epoch;
  assert_int_equal(meta_state_apply(&s, &j, 13), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &j, 14), CHORUS_OK);
  assert_int_equal(s.epoch, epoch + 1);
  /* A refused command is refused alike when repeated; the same command
   * under a new request id is a new command. */
  struct meta_cmd bad = set_cmd(999, META_LEAVING);
  bad.proposer = 0xa, bad.req_id = 2;
  assert_int_equal(meta_state_apply(&s, &bad, 15), CHORUS_ENOTFOUND);
  assert_int_equal(meta_state_apply(&s, &bad, 16), CHORUS_ENOTFOUND);
  struct meta_cmd leave = set_cmd(77, META_LEFT);
  leave.proposer = 0xb, leave.req_id = 2;
  assert_int_equal(meta_state_apply(&s, &leave, 17), CHORUS_OK);
  leave.req_id = 3;
  assert_int_equal(meta_state_apply(&s, &leave, 18), CHORUS_EINVAL);
  /* Commands without an origin are not remembered. */
  size_t n = s.nsessions;
  struct meta_cmd anon = note_cmd(0, 0, 7);
  assert_int_equal(meta_state_apply(&s, &anon, 19), CHORUS_OK);
  assert_int_equal(s.nsessions, n);
  /* Out of memory making room: unchanged altogether. */
  assert_int_equal(meta_state_copy(&s, &before), CHORUS_OK);
  struct meta_cmd c = note_cmd(0xc, 1, 300);
  chorus_alloc_fail_after(0);
  int rc = meta_state_apply(&s, &c, 20);
  chorus_alloc_fail_after(-1);
  assert_int_equal(rc, CHORUS_ENOMEM);
  assert_true(meta_t_state_eq(&s, &before));
  meta_state_free(&before);
  /* The window: META_MAX_SESSIONS outcomes, oldest out first; beyond it
   * a copy is applied again (the bound meta.h states). */
  uint64_t index = 20;
  for (uint64_t i = 0; i < META_MAX_SESSIONS; i++) {
    c = note_cmd(0xc, 100 + i, 1000 + i);
    assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  }
  assert_int_equal(s.nsessions, META_MAX_SESSIONS);
  assert_null(meta_state_session(&s, 0xa, 1));
  assert_non_null(meta_state_session(&s, 0xc, 100));
  assert_int_equal(meta_state_apply(&s, &a, ++index), CHORUS_OK);
  assert_int_equal(s.note, 100); /* forgotten: applied again */
  assert_null(meta_state_session(&s, 0xc, 100));
  /* The table survives a copy and the snapshot encoding. */
  uint8_t *buf;
  size_t len;
  struct meta_state d;
  assert_int_equal(meta_state_encode(&s, &buf, &len), CHORUS_OK);
  assert_int_equal(meta_state_decode(buf, len, &d), CHORUS_OK);
  assert_true(meta_t_state_eq(&s, &d));
  c = note_cmd(0xc, 101, 5); /* a copy of one the decoded state knows */
  assert_int_equal(meta_state_apply(&d, &c, ++index), CHORUS_OK);
  assert_int_equal(d.note, 100);
  chorus_free(buf);
  meta_state_free(&d);
  meta_state_free(&s);
}

/* The ring holds the members that own tokens: joining, normal, leaving;
 * not left or removed. Its version is the epoch. */
static void test_ring(void **state) {
  (void)state;
  assert_true(meta_member_owns(META_JOINING));
  assert_true(meta_member_owns(META_NORMAL));
  assert_true(meta_member_owns(META_LEAVING));
  assert_false(meta_member_owns(META_LEFT));
  assert_false(meta_member_owns(META_REMOVED));
  assert_false(meta_member_owns(0));

  struct meta_state s;
  grow(&s, 6, 2, 1);
  struct meta_cmd c = join_cmd(70, "m6", "dc0", "r0", META_JOINING);
  assert_int_equal(meta_state_apply(&s, &c, 19), CHORUS_OK);
  c = set_cmd(10, META_LEAVING); /* m0 */
  assert_int_equal(meta_state_apply(&s, &c, 20), CHORUS_OK);
  c = set_cmd(20, META_LEAVING), meta_state_apply(&s, &c, 21); /* m1 */
  c = set_cmd(20, META_LEFT);
  assert_int_equal(meta_state_apply(&s, &c, 22), CHORUS_OK);
  c = (struct meta_cmd){.type = META_CMD_REMOVE, .id = 30}; /* m2 */
  assert_int_equal(meta_state_apply(&s, &c, 23), CHORUS_OK);

  struct ring_snapshot *ring;
  char err[CHORUS_ERRMSG_SIZE];
  assert_int_equal(meta_state_ring(&s, &ring, err), CHORUS_OK);
  assert_int_equal(ring_snapshot_version(ring), s.epoch);
  assert_int_equal(ring_snapshot_node_count(ring), 5); /* 7 - left - removed */
  assert_true(ring_snapshot_find(ring, 20) < 0);
  assert_true(ring_snapshot_find(ring, 30) < 0);
  const struct {
    chorus_node_id id;
    enum ring_node_state st;
  } want[] = {{10, RING_LEAVING}, {40, RING_NORMAL}, {70, RING_JOINING}};
  for (size_t i = 0; i < 3; i++) {
    long at = ring_snapshot_find(ring, want[i].id);
    assert_true(at >= 0);
    const struct ring_node *n = ring_snapshot_node(ring, (size_t)at);
    assert_int_equal(n->state, want[i].st);
    assert_int_equal(n->vnodes, 16);
    const struct meta_member *m = meta_state_find(&s, want[i].id);
    assert_string_equal(n->dc, m->dc);
    assert_string_equal(n->rack, m->rack);
  }
  assert_true(meta_t_repl_eq(ring_snapshot_replication(ring), &s.replication));
  ring_snapshot_free(ring);

  /* An empty state gives an empty ring; a bad replication an error. */
  struct meta_state e;
  struct ring_replication r = meta_t_repl_n(3);
  meta_state_init(&e, &r);
  assert_int_equal(meta_state_ring(&e, &ring, NULL), CHORUS_OK);
  assert_int_equal(ring_snapshot_node_count(ring), 0);
  ring_snapshot_free(ring);
  meta_state_init(&e, NULL);
  assert_int_equal(meta_state_ring(&e, &ring, NULL), CHORUS_EMALFORMED);

  /* Out of memory anywhere: an error, nothing leaked. */
  for (long k = 0;; k++) {
    chorus_alloc_fail_after(k);
    int rc = meta_state_ring(&s, &ring, NULL);
    chorus_alloc_fail_after(-1);
    if (rc == CHORUS_OK) {
      ring_snapshot_free(ring);
      break;
    }
    assert_int_equal(rc, CHORUS_ENOMEM);
  }
  meta_state_free(&s);
}

static void test_copy(void **state) {
  (void)state;
  struct meta_state s, c;
  grow(&s, 4, 2, 2);
  assert_int_equal(meta_state_copy(&s, &c), CHORUS_OK);
  assert_true(meta_t_state_eq(&s, &c));
  assert_ptr_not_equal(s.members, c.members);
  struct meta_cmd rm = {.type = META_CMD_REMOVE, .id = 10};
  assert_int_equal(meta_state_apply(&c, &rm, 50), CHORUS_OK);
  assert_int_equal(s.members[0].state, META_NORMAL);
  assert_int_equal(s.applied, 8);
  meta_state_free(&c);
  chorus_alloc_fail_after(0);
  assert_int_equal(meta_state_copy(&s, &c), CHORUS_ENOMEM);
  chorus_alloc_fail_after(-1);
  meta_state_free(&s);
  /* An empty state copies without allocating. */
  meta_state_init(&s, NULL);
  chorus_alloc_fail_after(0);
  assert_int_equal(meta_state_copy(&s, &c), CHORUS_OK);
  chorus_alloc_fail_after(-1);
  assert_null(c.members);
}

/* ------------------------------------------------------------------------
 * Voters
 * ------------------------------------------------------------------------ */

static size_t voters(const struct meta_state *s, chorus_node_id *out) {
  size_t n = meta_state_voters(s, out);
  assert_true(n <= META_MAX_VOTERS);
  for (size_t i = 0; i < n; i++) {
    const struct meta_member *m = meta_state_find(s, out[i]);
    assert_non_null(m);
    assert_true(m->state != META_LEFT && m->state != META_REMOVED);
    for (size_t j = 0; j < i; j++)
      assert_true(out[i] != out[j]);
  }
  return n;
}

/* How many voters sit in @dc (and @rack, unless NULL). */
static size_t count_in(const struct meta_state *s, const chorus_node_id *v,
                       size_t n, const char *dc, const char *rack) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const struct meta_member *m = meta_state_find(s, v[i]);
    if (strcmp(m->dc, dc) == 0 && (rack == NULL || strcmp(m->rack, rack) == 0))
      k++;
  }
  return k;
}

static void test_voters_count_and_determinism(void **state) {
  (void)state;
  for (size_t n = 0; n <= 9; n++) {
    for (size_t dcs = 1; dcs <= 3; dcs++) {
      struct meta_state s, c;
      grow(&s, n, dcs, 2);
      chorus_node_id a[META_MAX_VOTERS], b[META_MAX_VOTERS];
      size_t na = voters(&s, a);
      assert_int_equal(na, n < META_MAX_VOTERS ? n : META_MAX_VOTERS);
      /* Deterministic: again, and on a copy. */
      assert_int_equal(voters(&s, b), na);
      assert_memory_equal(a, b, na * sizeof a[0]);
      assert_int_equal(meta_state_copy(&s, &c), CHORUS_OK);
      assert_int_equal(voters(&c, b), na);
      assert_memory_equal(a, b, na * sizeof a[0]);
      meta_state_free(&c);
      /* Out of memory: still deterministic, still eligible members. */
      chorus_alloc_fail_after(0);
      size_t nb = voters(&s, b);
      chorus_alloc_fail_after(-1);
      assert_int_equal(nb, na);
      meta_state_free(&s);
    }
  }
}

/* Left and removed members never vote; joining and leaving ones may. */
static void test_voters_eligible(void **state) {
  (void)state;
  struct meta_state s;
  grow(&s, 7, 1, 1);
  struct meta_cmd c;
  c = join_cmd(5, "early", "dc0", "r0", META_JOINING);
  meta_state_apply(&s, &c, 19);
  c = set_cmd(10, META_LEAVING), meta_state_apply(&s, &c, 20);
  c = set_cmd(10, META_LEFT), meta_state_apply(&s, &c, 21);
  c = (struct meta_cmd){.type = META_CMD_REMOVE, .id = 20};
  meta_state_apply(&s, &c, 22);
  c = (struct meta_cmd){.type = META_CMD_REMOVE, .id = 30};
  meta_state_apply(&s, &c, 23);
  c = set_cmd(40, META_LEAVING), meta_state_apply(&s, &c, 24);
  chorus_node_id v[META_MAX_VOTERS];
  size_t n = voters(&s, v); /* eligible: 5, 40, 50, 60, 70 */
  assert_int_equal(n, 5);
  const chorus_node_id want[] = {5, 40, 50, 60, 70};
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(count_in(&s, &v[i], 1, "dc0", NULL), 1);
  for (size_t i = 0; i < 5; i++) {
    bool found = false;
    for (size_t j = 0; j < n; j++)
      found = found || v[j] == want[i];
    assert_true(found);
  }
  meta_state_free(&s);
}

/* Spread: with up to five datacenters every one gets a voter before any
 * gets a second, and within one datacenter every rack (up to five) gets
 * one before any gets a second. */
static void test_voters_spread(void **state) {
  (void)state;
  for (size_t n = 1; n <= 9; n++) {
    /* One datacenter, n racks at most. */
    for (size_t racks = 1; racks <= 5; racks++) {
      struct meta_state s;
      grow(&s, n, 1, racks);
      chorus_node_id v[META_MAX_VOTERS];
      size_t nv = voters(&s, v);
      size_t used = racks < n ? racks : n;
      for (size_t r = 0; r < used; r++) {
        char rack[16];
        snprintf(rack, sizeof rack, "r%zu", r);
        size_t k = count_in(&s, v, nv, "dc0", rack);
        assert_true(k >= 1);
        /* Balanced: no rack two ahead of another. */
        assert_true(k <= (nv + used - 1) / used);
      }
      meta_state_free(&s);
    }
    /* Several datacenters of one rack each. */
    for (size_t dcs = 2; dcs <= 5; dcs++) {
      struct meta_state s;
      grow(&s, n, dcs, 1);
      chorus_node_id v[META_MAX_VOTERS];
      size_t nv = voters(&s, v);
      size_t used = dcs < n ? dcs : n;
      for (size_t d = 0; d < used; d++) {
        char dc[16];
        snprintf(dc, sizeof dc, "dc%zu", d);
        assert_true(count_in(&s, v, nv, dc, NULL) >= 1);
      }
      meta_state_free(&s);
    }
  }
}

/* Three datacenters of three racks each (one member per rack), dc0's ids
 * first. Every datacenter gets a voter, and the five voters are split
 * 2/2/1, so that losing any one datacenter keeps a majority (3 of 5). */
static void test_voters_three_dcs(void **state) {
  (void)state;
  struct meta_state s;
  struct ring_replication r = meta_t_repl_n(3);
  meta_state_init(&s, &r);
  for (size_t i = 0; i < 9; i++) {
    char name[8], dc[8], rack[8];
    snprintf(name, sizeof name, "m%zu", i);
    snprintf(dc, sizeof dc, "dc%zu", i / 3);
    snprintf(rack, sizeof rack, "r%zu", i % 3);
    struct meta_cmd c = join_cmd(i + 1, name, dc, rack, META_NORMAL);
    assert_int_equal(meta_state_apply(&s, &c, 2 * i + 1), CHORUS_OK);
    c = set_cmd(i + 1, META_NORMAL);
    (void)meta_state_apply(&s, &c, 2 * i + 2);
  }
  chorus_node_id v[META_MAX_VOTERS];
  size_t nv = voters(&s, v);
  assert_int_equal(nv, 5);
  size_t most = 0;
  for (int d = 0; d < 3; d++) {
    char dc[8];
    snprintf(dc, sizeof dc, "dc%d", d);
    size_t k = count_in(&s, v, nv, dc, NULL);
    assert_true(k >= 1);
    most = k > most ? k : most;
  }
  assert_int_equal(most, 2); /* 2/2/1: losing any one keeps a majority */
  meta_state_free(&s);
}

static void test_state_names(void **state) {
  (void)state;
  assert_string_equal(meta_member_state_name(META_JOINING), "joining");
  assert_string_equal(meta_member_state_name(META_NORMAL), "normal");
  assert_string_equal(meta_member_state_name(META_LEAVING), "leaving");
  assert_string_equal(meta_member_state_name(META_LEFT), "left");
  assert_string_equal(meta_member_state_name(META_REMOVED), "removed");
  assert_string_equal(meta_member_state_name(META_REPLACING), "replacing");
  assert_string_equal(meta_member_state_name((enum meta_member_state)0),
                      "unknown");
}

/* Topology changes (meta.h, TOPOLOGY CHANGES): one at a time; the
 * change's moves go to the joiner, or from the leaver; FINISH waits for
 * every node that gains a range and switches everyone at once; stale
 * epochs are refused. */
static struct meta_cmd cmd_of(uint8_t type, chorus_node_id id, uint8_t state,
                              uint64_t epoch) {
  return (struct meta_cmd){
      .type = type, .id = id, .state = state, .epoch = epoch};
}

/* Every receiver of the change under way commits STREAMED; FINISH then
 * applies. */
static void stream_all_and_finish(struct meta_state *s, uint64_t *index) {
  struct ring_move *mv;
  size_t nmv;
  assert_int_equal(meta_state_moves(s, &mv, &nmv, NULL, NULL), CHORUS_OK);
  assert_true(nmv > 0);
  assert_false(meta_state_finishable(s, mv, nmv));
  struct meta_cmd c = cmd_of(META_CMD_FINISH, 0, 0, s->epoch);
  uint64_t before = s->epoch;
  for (size_t i = 0; i < nmv; i++) {
    c = cmd_of(META_CMD_STREAMED, mv[i].to, 0, s->epoch);
    assert_int_equal(meta_state_apply(s, &c, ++*index), CHORUS_OK);
  }
  for (size_t i = 0; i < s->n; i++)
    if (s->members[i].state == META_JOINING) {
      c = cmd_of(META_CMD_STREAMED, s->members[i].id, 0, s->epoch);
      assert_int_equal(meta_state_apply(s, &c, ++*index), CHORUS_OK);
    }
  assert_int_equal(s->epoch, before); /* STREAMED is not the ring's input */
  assert_true(meta_state_finishable(s, mv, nmv));
  chorus_free(mv);
  c = cmd_of(META_CMD_FINISH, 0, 0, s->epoch - 1);
  assert_int_equal(meta_state_apply(s, &c, ++*index), CHORUS_ESTALE);
  c = cmd_of(META_CMD_FINISH, 0, 0, s->epoch);
  assert_int_equal(meta_state_apply(s, &c, ++*index), CHORUS_OK);
  assert_int_equal(s->epoch, before + 1);
  assert_false(meta_state_changing(s));
  assert_int_equal(meta_state_apply(s, &c, ++*index), CHORUS_ESTALE);
}

static void test_topology_changes(void **state) {
  (void)state;
  struct meta_state s;
  grow(&s, 3, 1, 1);
  uint64_t index = 10;
  struct ring_move *mv;
  size_t nmv;
  /* Nothing changing: no moves, nothing to finish. */
  assert_false(meta_state_changing(&s));
  assert_int_equal(meta_state_moves(&s, &mv, &nmv, NULL, NULL), CHORUS_OK);
  assert_int_equal(nmv, 0);
  assert_false(meta_state_finishable(&s, mv, nmv));

  /* A join: every range goes to the joiner; a second join and a leave
   * wait for it. */
  struct meta_cmd c = join_cmd(40, "m3", "dc0", "r0", META_JOINING);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_true(meta_state_changing(&s));
  c = join_cmd(50, "m4", "dc0", "r0", META_JOINING);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_EBUSY);
  c = cmd_of(META_CMD_LEAVE, 10, META_LEFT, 0);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_EBUSY);
  assert_int_equal(meta_state_moves(&s, &mv, &nmv, NULL, NULL), CHORUS_OK);
  for (size_t i = 0; i < nmv; i++) {
    assert_int_equal(mv[i].to, 40);
    assert_true(mv[i].has_from);
  }
  chorus_free(mv);
  /* A report about another epoch is stale; one about this one for a
   * member not there is not found. */
  c = cmd_of(META_CMD_STREAMED, 40, 0, s.epoch + 1);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_ESTALE);
  c = cmd_of(META_CMD_STREAMED, 99, 0, s.epoch);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_ENOTFOUND);
  stream_all_and_finish(&s, &index);
  assert_int_equal(meta_state_find(&s, 40)->state, META_NORMAL);

  /* A decommission: every range leaves m0 (id 10), which ends LEFT. */
  c = cmd_of(META_CMD_LEAVE, 10, META_NORMAL, 0);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_EINVAL);
  c = cmd_of(META_CMD_LEAVE, 10, META_LEFT, 0);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_int_equal(meta_state_find(&s, 10)->state, META_LEAVING);
  assert_int_equal(meta_state_find(&s, 10)->goal, META_LEFT);
  c = cmd_of(META_CMD_LEAVE, 20, META_LEFT, 0);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_EBUSY);
  assert_int_equal(meta_state_moves(&s, &mv, &nmv, NULL, NULL), CHORUS_OK);
  for (size_t i = 0; i < nmv; i++)
    assert_int_equal(mv[i].from, 10);
  chorus_free(mv);
  stream_all_and_finish(&s, &index);
  assert_int_equal(meta_state_find(&s, 10)->state, META_LEFT);
  assert_int_equal(meta_state_find(&s, 10)->goal, 0);

  /* A removal ends REMOVED; LEAVE of a member that is not NORMAL is
   * refused. */
  c = cmd_of(META_CMD_LEAVE, 10, META_LEFT, 0);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_EINVAL);
  c = join_cmd(60, "m5", "dc0", "r0", META_NORMAL); /* joins as JOINING */
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_int_equal(meta_state_find(&s, 60)->state, META_JOINING);
  stream_all_and_finish(&s, &index);
  c = cmd_of(META_CMD_LEAVE, 20, META_REMOVED, 0);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  stream_all_and_finish(&s, &index);
  assert_int_equal(meta_state_find(&s, 20)->state, META_REMOVED);

  /* A forced REMOVE ends a change at once (the joiner goes; so does the
   * change). */
  c = join_cmd(70, "m6", "dc0", "r0", META_JOINING);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  c = (struct meta_cmd){.type = META_CMD_REMOVE, .id = 70};
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_false(meta_state_changing(&s));
  c = cmd_of(META_CMD_FINISH, 0, 0, s.epoch);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_ESTALE);

  /* A member made LEAVING without a goal (SET_STATE, or a V2 state)
   * finishes LEFT, never in state 0 (found by fuzz_meta_cmd). */
  c = set_cmd(30, META_LEAVING);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_int_equal(meta_state_find(&s, 30)->goal, 0);
  c = cmd_of(META_CMD_FINISH, 0, 0, s.epoch);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_int_equal(meta_state_find(&s, 30)->state, META_LEFT);
  meta_state_free(&s);
}

/* Replacements (meta.h, REPLACE): a member that lost its disk replaces
 * itself (REPLACING: a pending replica of its own ranges, which it pulls
 * from the others); a dead member is replaced by a joiner in one change. */
/* finish_now: FINISH of the change under way, which moves nothing (a
 * shrink below the replication factor: every member left holds every
 * range already). */
static void finish_now(struct meta_state *s, uint64_t *index) {
  struct ring_move *mv;
  size_t nmv;
  assert_int_equal(meta_state_moves(s, &mv, &nmv, NULL, NULL), CHORUS_OK);
  assert_int_equal(nmv, 0);
  assert_true(meta_state_finishable(s, mv, nmv));
  chorus_free(mv);
  struct meta_cmd c = cmd_of(META_CMD_FINISH, 0, 0, s->epoch);
  assert_int_equal(meta_state_apply(s, &c, ++*index), CHORUS_OK);
}

/* A keyspace with a replication of its own (ring.h, replication classes)
 * moves its keys' ranges apart: a join in a cluster of N=3 with a
 * keyspace of N=1 lists class 0's moves, then the N=1 class's, each
 * tagged with its class and exactly ring_diff of the class snapshots. */
static void test_class_moves(void **state) {
  (void)state;
  struct meta_state s;
  grow(&s, 3, 1, 1);
  uint64_t index = 10;
  struct meta_cmd c = {.type = META_CMD_KEYSPACE_CREATE};
  c.keyspace = meta_t_keyspace("one", 0, META_KS_KV);
  c.keyspace.replication = meta_t_repl_n(1);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  c = join_cmd(40, "m3", "dc0", "r0", META_JOINING);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  struct ring_move *mv, *want;
  size_t nmv, nwant;
  struct ring_snapshot *now = NULL, *then = NULL;
  assert_int_equal(meta_state_moves(&s, &mv, &nmv, &now, &then), CHORUS_OK);
  assert_int_equal(ring_snapshot_class_count(now), 2);
  uint64_t tag = ring_snapshot_class_tag(now, 1);
  struct ring_replication one = meta_t_repl_n(1);
  assert_int_equal(tag, ring_replication_tag(&one));
  size_t k = 0;
  for (unsigned cl = 0; cl < 2; cl++) {
    int tc = ring_snapshot_class_find(then, ring_snapshot_class_tag(now, cl));
    assert_true(tc >= 0);
    assert_int_equal(ring_diff(ring_snapshot_class(now, cl),
                               ring_snapshot_class(then, (unsigned)tc), &want,
                               &nwant),
                     CHORUS_OK);
    assert_true(nwant > 0);
    assert_true(k + nwant <= nmv);
    for (size_t i = 0; i < nwant; i++, k++) {
      assert_int_equal(mv[k].class_tag, cl == 0 ? 0 : tag);
      assert_int_equal(mv[k].start, want[i].start);
      assert_int_equal(mv[k].end, want[i].end);
      assert_int_equal(mv[k].from, want[i].from);
      assert_int_equal(mv[k].to, 40);
      assert_true(mv[k].has_from);
    }
    chorus_free(want);
  }
  assert_int_equal(k, nmv); /* nothing else: no replacement, no leaver */
  /* The finish waits for the joiner, whatever class gave it ranges. */
  assert_false(meta_state_finishable(&s, mv, nmv));
  c = cmd_of(META_CMD_STREAMED, 40, 0, s.epoch);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_true(meta_state_finishable(&s, mv, nmv));
  chorus_free(mv);
  ring_snapshot_free(now);
  ring_snapshot_free(then);

  /* A decommission of a member: its N=1 ranges go to a single new owner
   * each, tagged too. */
  c = cmd_of(META_CMD_FINISH, 0, 0, s.epoch);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  c = cmd_of(META_CMD_LEAVE, 10, META_LEFT, 0);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_int_equal(meta_state_moves(&s, &mv, &nmv, NULL, NULL), CHORUS_OK);
  size_t tagged = 0;
  for (size_t i = 0; i < nmv; i++) {
    assert_int_equal(mv[i].from, 10);
    assert_true(mv[i].class_tag == 0 || mv[i].class_tag == tag);
    tagged += mv[i].class_tag == tag;
  }
  assert_true(tagged > 0 && tagged < nmv);
  chorus_free(mv);
  meta_state_free(&s);
}

/* The last member that owns tokens never leaves, goal LEFT or REMOVED,
 * however it is asked (the shrink of a partly formed cluster in
 * change_sim, seed 24: the ring emptied, the member's data went with it,
 * and the next JOIN owned every token at once, holding nothing). Below
 * the replication factor a LEAVE is the operator's (--force) and allowed
 * while another member remains. */
static void test_sole_owner_never_leaves(void **state) {
  (void)state;
  struct meta_state s;
  grow(&s, 1, 1, 1);
  uint64_t index = 10;
  uint64_t epoch = s.epoch;
  assert_true(meta_state_sole_owner(&s, 10));
  assert_false(meta_state_sole_owner(&s, 99)); /* not a member */
  struct meta_cmd c = cmd_of(META_CMD_LEAVE, 10, META_LEFT, 0);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_EINVAL);
  c = cmd_of(META_CMD_LEAVE, 10, META_REMOVED, 0);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_EINVAL);
  assert_int_equal(meta_state_find(&s, 10)->state, META_NORMAL);
  assert_int_equal(s.epoch, epoch);
  /* Staged, then committed: refused alike, and it stays staged. */
  c = (struct meta_cmd){.type = META_CMD_STAGE,
                        .staged_type = META_CMD_LEAVE,
                        .id = 10,
                        .state = META_LEFT};
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  c = (struct meta_cmd){.type = META_CMD_COMMIT, .state = 1};
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_EINVAL);
  assert_int_equal(s.staged.type, META_CMD_LEAVE);
  assert_int_equal(meta_state_find(&s, 10)->state, META_NORMAL);
  c = (struct meta_cmd){.type = META_CMD_COMMIT, .state = 0};
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);

  /* A joiner owns (pending) ranges: while it joins, 10 is not alone. */
  c = join_cmd(20, "m1", "dc0", "r0", META_JOINING);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_false(meta_state_sole_owner(&s, 10));
  assert_false(meta_state_sole_owner(&s, 20));
  stream_all_and_finish(&s, &index);
  assert_false(meta_state_sole_owner(&s, 10));
  assert_false(meta_state_sole_owner(&s, 20));

  /* 2 -> 1 with N = 3 (a forced decommission): nobody gains 20's ranges,
   * so 10, which keeps them, pulls them all from 20 (it may hold writes
   * 10 missed), and the change finishes only once 10 has. */
  c = cmd_of(META_CMD_LEAVE, 20, META_LEFT, 0);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_true(meta_state_sole_owner(&s, 10)); /* 20 is leaving */
  assert_false(meta_state_sole_owner(&s, 20));
  struct ring_move *mv;
  size_t nmv;
  assert_int_equal(meta_state_moves(&s, &mv, &nmv, NULL, NULL), CHORUS_OK);
  assert_true(nmv > 0);
  double share = 0;
  for (size_t i = 0; i < nmv; i++) {
    assert_int_equal(mv[i].from, 20);
    assert_int_equal(mv[i].to, 10);
    share += mv[i].start == mv[i].end
                 ? 1.0
                 : (double)(chorus_token)(mv[i].end - mv[i].start) /
                       18446744073709551616.0;
  }
  assert_true(share > 0.999999 && share < 1.000001); /* the whole ring */
  chorus_free(mv);
  stream_all_and_finish(&s, &index);
  assert_int_equal(meta_state_find(&s, 20)->state, META_LEFT);
  assert_false(meta_state_sole_owner(&s, 20)); /* left: owns nothing */
  epoch = s.epoch;
  c = cmd_of(META_CMD_LEAVE, 10, META_LEFT, 0);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_EINVAL);
  assert_int_equal(s.epoch, epoch);
  struct ring_snapshot *ring = NULL;
  assert_int_equal(meta_state_ring(&s, &ring, NULL), CHORUS_OK);
  assert_int_equal(ring_snapshot_node_count(ring), 1);
  ring_snapshot_free(ring);

  /* Once another has joined, 10 may go: its ranges have a taker. Removed
   * (goal REMOVED: presumed lost) below N, nothing is pulled from it. */
  c = join_cmd(30, "m2", "dc0", "r0", META_NORMAL); /* joins as JOINING */
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_int_equal(meta_state_find(&s, 30)->state, META_JOINING);
  stream_all_and_finish(&s, &index);
  c = cmd_of(META_CMD_LEAVE, 10, META_REMOVED, 0);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  finish_now(&s, &index);
  assert_int_equal(meta_state_find(&s, 10)->state, META_REMOVED);
  assert_true(meta_state_sole_owner(&s, 30));
  meta_state_free(&s);
}

/* in_move: whether token @t lies in the range (start, end] of @m, which
 * wraps when start >= end (start == end: the whole ring). */
static bool in_move(const struct ring_move *m, chorus_token t) {
  if (m->start < m->end)
    return t > m->start && t <= m->end;
  return t > m->start || t <= m->end;
}

/* check_replacing_moves: @id's moves in @s (it replaces its own disk) are
 * each from itself, and cover exactly the tokens it is a natural replica
 * of once the change completes, each token once, with no two of them
 * meeting (merge_self_moves made them one): at every token of the ring,
 * either side of it, and at 4,096 spread between. Their count. */
static size_t check_replacing_moves(const struct meta_state *s,
                                    chorus_node_id id) {
  struct ring_move *mv;
  size_t nmv;
  assert_int_equal(meta_state_moves(s, &mv, &nmv, NULL, NULL), CHORUS_OK);
  struct ring_snapshot *then = NULL;
  assert_int_equal(meta_state_future_ring(s, &then, NULL), CHORUS_OK);
  for (size_t i = 0; i < nmv; i++) {
    assert_int_equal(mv[i].to, id);
    assert_int_equal(mv[i].from, id);
    for (size_t k = 0; k < nmv; k++)
      assert_true(k == i || mv[i].end != mv[k].start);
  }
  size_t nt = ring_snapshot_token_count(then), owner;
  for (size_t i = 0; i < nt + 4096; i++) {
    chorus_token base = i < nt ? ring_snapshot_token(then, i, &owner)
                               : (i - nt) * (UINT64_MAX / 4096);
    for (int d = -1; d <= 1; d++) {
      chorus_token t = base + (chorus_token)(int64_t)d;
      struct ring_plist pl;
      assert_int_equal(ring_lookup(then, t, 0, &pl), CHORUS_OK);
      bool natural = false;
      for (uint8_t k = 0; k < pl.n_natural; k++)
        natural = natural || pl.r[k].id == id;
      size_t in = 0;
      for (size_t k = 0; k < nmv; k++)
        in += in_move(&mv[k], t);
      assert_int_equal(in, natural ? 1 : 0);
    }
  }
  ring_snapshot_free(then);
  chorus_free(mv);
  return nmv;
}

static void test_replacements(void **state) {
  (void)state;
  struct meta_state s;
  grow(&s, 4, 1, 1);
  uint64_t index = 10;
  struct meta_cmd c = {.type = META_CMD_REPLACE, .id = 99, .with = 99};
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_ENOTFOUND);
  c.id = c.with = 20;
  uint64_t epoch = s.epoch;
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_int_equal(meta_state_find(&s, 20)->state, META_REPLACING);
  assert_int_equal(s.epoch, epoch + 1);
  assert_true(meta_state_changing(&s));
  /* One change at a time. */
  struct meta_cmd j = join_cmd(70, "m7", "dc0", "r0", META_JOINING);
  assert_int_equal(meta_state_apply(&s, &j, ++index), CHORUS_EBUSY);
  c.id = c.with = 30;
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_EBUSY);
  /* The ring keeps its tokens, but lists it pending, never natural. */
  struct ring_snapshot *now = NULL;
  assert_int_equal(meta_state_ring(&s, &now, NULL), CHORUS_OK);
  struct ring_plist pl;
  size_t pending = 0;
  for (uint64_t t = 0; t < 64; t++) {
    assert_int_equal(ring_lookup(now, t * (UINT64_MAX / 64), 0, &pl),
                     CHORUS_OK);
    for (uint8_t k = 0; k < pl.n_natural; k++)
      assert_int_not_equal(pl.r[k].id, 20);
    for (uint8_t k = 0; k < pl.n_pending; k++)
      pending += pl.r[pl.n_natural + k].id == 20;
    assert_int_equal(pl.n_natural + pl.n_pending, 3);
  }
  assert_true(pending > 0);
  ring_snapshot_free(now);
  /* Its moves: every range it owns, from itself (its lost disk), the
   * adjacent ones merged. */
  assert_true(check_replacing_moves(&s, 20) > 0);
  stream_all_and_finish(&s, &index);
  assert_int_equal(meta_state_find(&s, 20)->state, META_NORMAL);
  assert_false(meta_state_changing(&s));

  /* A dead member replaced by a joiner: one change, one FINISH. */
  struct ring_move *mv;
  size_t nmv;
  c = (struct meta_cmd){.type = META_CMD_REPLACE, .id = 30, .with = 70};
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_ENOTFOUND);
  assert_int_equal(meta_state_apply(&s, &j, ++index), CHORUS_OK);
  c.id = 70; /* not NORMAL */
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_EINVAL);
  c.id = 30;
  assert_int_equal(meta_state_find(&s, 70)->tokens_of, 0);
  struct ring_snapshot *before = NULL;
  assert_int_equal(meta_state_ring(&s, &before, NULL), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_int_equal(meta_state_find(&s, 30)->state, META_LEAVING);
  assert_int_equal(meta_state_find(&s, 30)->goal, META_REMOVED);
  /* It takes the lost member's tokens (and their count): every range
   * moves from the lost member to it, and no other member's. */
  assert_int_equal(meta_state_find(&s, 70)->tokens_of, 30);
  assert_int_equal(meta_state_find(&s, 70)->vnodes,
                   meta_state_find(&s, 30)->vnodes);
  assert_int_equal(meta_state_moves(&s, &mv, &nmv, NULL, NULL), CHORUS_OK);
  assert_true(nmv > 0);
  for (size_t k = 0; k < nmv; k++)
    assert_true(mv[k].to == 70 && mv[k].from == 30);
  chorus_free(mv);
  stream_all_and_finish(&s, &index);
  assert_int_equal(meta_state_find(&s, 30)->state, META_REMOVED);
  assert_int_equal(meta_state_find(&s, 70)->state, META_NORMAL);
  /* Afterwards it owns exactly the share the lost member did. */
  struct ring_snapshot *after = NULL;
  assert_int_equal(meta_state_ring(&s, &after, NULL), CHORUS_OK);
  double sb[8], sa[8];
  ring_snapshot_ownership(before, sb);
  ring_snapshot_ownership(after, sa);
  double lost = sb[ring_snapshot_find(before, 30)];
  double taken = sa[ring_snapshot_find(after, 70)];
  assert_true(lost > 0 && taken > lost - 1e-12 && taken < lost + 1e-12);
  ring_snapshot_free(before);
  ring_snapshot_free(after);
  /* And a copy of the state carries them (snapshots, STORE_META). */
  uint8_t *enc;
  size_t enc_len;
  struct meta_state back;
  assert_int_equal(meta_state_encode(&s, &enc, &enc_len), CHORUS_OK);
  assert_int_equal(meta_state_decode(enc, enc_len, &back), CHORUS_OK);
  assert_int_equal(meta_state_find(&back, 70)->tokens_of, 30);
  chorus_free(enc);
  meta_state_free(&back);
  /* A normal replacement while nothing changes is a removal: it keeps
   * its tokens. */
  c = (struct meta_cmd){.type = META_CMD_REPLACE, .id = 40, .with = 70};
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_int_equal(meta_state_find(&s, 40)->goal, META_REMOVED);
  assert_int_equal(meta_state_find(&s, 70)->tokens_of, 30);
  meta_state_free(&s);
  /* Three members at N = 3: each owns the whole ring, so a replaced disk
   * is one move of it (start == end), not one a vnode piece. */
  grow(&s, 3, 1, 1);
  c = (struct meta_cmd){.type = META_CMD_REPLACE, .id = 20, .with = 20};
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_int_equal(meta_state_moves(&s, &mv, &nmv, NULL, NULL), CHORUS_OK);
  assert_int_equal(nmv, 1);
  assert_true(mv[0].start == mv[0].end);
  chorus_free(mv);
  assert_int_equal(check_replacing_moves(&s, 20), 1);
  meta_state_free(&s);
}

/* Staged changes (Riak's plan and commit): STAGE records one, changing
 * nothing else; COMMIT applies it then, with its own checks, or drops it. */
static void test_staged(void **state) {
  (void)state;
  struct meta_state s;
  grow(&s, 4, 1, 1);
  uint64_t index = 10, epoch = s.epoch;
  struct meta_cmd c = {.type = META_CMD_COMMIT, .state = 1};
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_ENOTFOUND);
  struct meta_cmd st = {.type = META_CMD_STAGE,
                        .staged_type = META_CMD_LEAVE,
                        .id = 99,
                        .state = META_LEFT};
  assert_int_equal(meta_state_apply(&s, &st, ++index), CHORUS_ENOTFOUND);
  st.staged_type = META_CMD_JOIN;
  assert_int_equal(meta_state_apply(&s, &st, ++index), CHORUS_EINVAL);
  st.staged_type = META_CMD_LEAVE;
  st.id = 40;
  assert_int_equal(meta_state_apply(&s, &st, ++index), CHORUS_OK);
  assert_int_equal(s.staged.type, META_CMD_LEAVE);
  assert_int_equal(s.epoch, epoch); /* nothing moved */
  assert_int_equal(meta_state_find(&s, 40)->state, META_NORMAL);
  /* Dropped, staged again, committed: now it applies. */
  c.state = 0;
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_int_equal(s.staged.type, 0);
  assert_int_equal(meta_state_apply(&s, &st, ++index), CHORUS_OK);
  c.state = 1;
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_OK);
  assert_int_equal(s.staged.type, 0);
  assert_int_equal(meta_state_find(&s, 40)->state, META_LEAVING);
  assert_int_equal(s.epoch, epoch + 1);
  /* A commit that no longer fits (a change under way) keeps it staged. */
  st.id = 30;
  assert_int_equal(meta_state_apply(&s, &st, ++index), CHORUS_OK);
  assert_int_equal(meta_state_apply(&s, &c, ++index), CHORUS_EBUSY);
  assert_int_equal(s.staged.type, META_CMD_LEAVE);
  meta_state_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init),
      cmocka_unit_test(test_join),
      cmocka_unit_test(test_join_full),
      cmocka_unit_test(test_transitions),
      cmocka_unit_test(test_unknown_member_and_type),
      cmocka_unit_test(test_replication_and_note),
      cmocka_unit_test(test_join_oom),
      cmocka_unit_test(test_exactly_once),
      cmocka_unit_test(test_ring),
      cmocka_unit_test(test_topology_changes),
      cmocka_unit_test(test_class_moves),
      cmocka_unit_test(test_sole_owner_never_leaves),
      cmocka_unit_test(test_replacements),
      cmocka_unit_test(test_staged),
      cmocka_unit_test(test_copy),
      cmocka_unit_test(test_voters_count_and_determinism),
      cmocka_unit_test(test_voters_eligible),
      cmocka_unit_test(test_voters_spread),
      cmocka_unit_test(test_voters_three_dcs),
      cmocka_unit_test(test_state_names),
      cmocka_unit_test(test_keyspaces),
      cmocka_unit_test(test_users),
      cmocka_unit_test(test_keyring),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
