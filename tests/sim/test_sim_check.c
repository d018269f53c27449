/* test_sim_check.c: every history checker passes a clean history and
 * catches its planted violation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_error.h"
#include "sim_history.h"

/* A tiny builder: histories read like the scenario they describe. */
struct hb {
  struct sim_history h;
  uint64_t next_id;
};

static int setup(void **state) {
  struct hb *b = test_calloc(1, sizeof *b);
  sim_history_init(&b->h);
  *state = b;
  return 0;
}

static int teardown(void **state) {
  struct hb *b = *state;
  sim_history_free(&b->h);
  test_free(b);
  return 0;
}

static uint32_t key(struct hb *b, const char *name, enum sim_op_type t) {
  int64_t k = sim_history_key(&b->h, name, t);
  assert_true(k >= 0);
  return (uint32_t)k;
}

/* op: one completed operation. @covers/@read are 0-terminated lists. */
static size_t op(struct hb *b, int client, enum sim_op o, uint32_t k,
                 uint64_t value, int64_t amount, const uint64_t *covers,
                 uint64_t t0, uint64_t t1, enum sim_outcome out,
                 const uint64_t *read, int64_t counter) {
  size_t nc = 0, nr = 0;
  while (covers != NULL && covers[nc] != 0)
    nc++;
  while (read != NULL && read[nr] != 0)
    nr++;
  struct sim_hop hop = {.id = ++b->next_id,
                        .client = client,
                        .op = o,
                        .key = k,
                        .value = value,
                        .amount = amount,
                        .covers = (uint64_t *)(uintptr_t)covers,
                        .ncovers = nc,
                        .invoke = t0};
  int64_t ix = sim_history_invoke(&b->h, &hop);
  assert_true(ix >= 0);
  if (out != SIM_PENDING)
    assert_int_equal(
        sim_history_complete(&b->h, (size_t)ix, out, t1, read, nr, counter),
        CHORUS_OK);
  return (size_t)ix;
}

#define L(...) ((const uint64_t[]){__VA_ARGS__, 0})

static size_t put(struct hb *b, int client, uint32_t k, uint64_t v,
                  const uint64_t *covers, uint64_t t0, uint64_t t1,
                  enum sim_outcome out) {
  return op(b, client, SIM_OP_PUT, k, v, 0, covers, t0, t1, out, NULL, 0);
}

static void get(struct hb *b, int client, uint32_t k, uint64_t t0, uint64_t t1,
                const uint64_t *read) {
  op(b, client, SIM_OP_GET, k, 0, 0, NULL, t0, t1, SIM_OK, read, 0);
}

static void final(struct hb *b, uint32_t k, int node, const uint64_t *vals,
                  int64_t counter, const uint64_t *ids, uint64_t digest) {
  size_t n = 0, ni = 0;
  while (vals != NULL && vals[n] != 0)
    n++;
  while (ids != NULL && ids[ni] != 0)
    ni++;
  struct sim_hfinal f = {.key = k,
                         .node = node,
                         .values = (uint64_t *)(uintptr_t)vals,
                         .nvalues = n,
                         .counter = counter,
                         .has_op_ids = ids != NULL,
                         .op_ids = (uint64_t *)(uintptr_t)ids,
                         .nop_ids = ni,
                         .digest = digest};
  assert_int_equal(sim_history_final(&b->h, &f), CHORUS_OK);
}

static void expect(struct hb *b,
                   int (*check)(const struct sim_history *,
                                struct sim_check_report *),
                   int verdict, const char *name) {
  struct sim_check_report rep;
  memset(&rep, 0, sizeof rep);
  int rc = check(&b->h, &rep);
  if (rc != verdict)
    fail_msg("expected %d, got %d (%s: %s)", verdict, rc, rep.checker,
             rep.message);
  if (verdict == 1)
    assert_string_equal(rep.checker, name);
}

/* ---- lost writes -------------------------------------------------------- */

static void kv_lost_passes_kept_and_superseded_writes(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 1, k, 2, L(1), 20, 30, SIM_UNKNOWN); /* covered 1 */
  put(b, 0, k, 3, L(2), 40, 50, SIM_OK);      /* covered 2, so 1 too */
  put(b, 2, k, 4, NULL, 45, 55, SIM_OK);      /* concurrent sibling */
  put(b, 2, k, 5, NULL, 45, 55, SIM_FAIL);    /* failed: may vanish */
  final(b, k, 0, L(3, 4), 0, NULL, 7);
  final(b, k, 1, L(4, 3), 0, NULL, 7);
  expect(b, sim_check_kv_lost, 0, NULL);
}

static void kv_lost_catches_overwritten_write(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 1, k, 2, NULL, 5, 15, SIM_OK); /* did not see 1 */
  final(b, k, 0, L(2), 0, NULL, 7);     /* last writer won: 1 is lost */
  expect(b, sim_check_kv_lost, 1, "kv-lost-write");
}

static void kv_lost_catches_broken_chain(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 0, k, 2, L(1), 20, 30, SIM_OK);
  put(b, 0, k, 3, L(9), 40, 50, SIM_OK); /* covers something else */
  final(b, k, 0, L(3), 0, NULL, 7);
  expect(b, sim_check_kv_lost, 1, "kv-lost-write");
}

static void kv_lost_catches_one_bad_replica(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  final(b, k, 0, L(1), 0, NULL, 7);
  final(b, k, 1, NULL, 0, NULL, 7);
  expect(b, sim_check_kv_lost, 1, "kv-lost-write");
}

static void kv_lost_catches_key_with_no_replica(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  expect(b, sim_check_kv_lost, 1, "kv-lost-write");
}

/* ---- phantoms ----------------------------------------------------------- */

static void phantom_passes_written_values(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  uint32_t s = key(b, "s", SIM_TYPE_SET);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 0, k, 2, NULL, 20, 0, SIM_UNKNOWN);
  get(b, 1, k, 25, 30, L(1, 2)); /* an unknown write may be visible */
  op(b, 0, SIM_OP_SET_ADD, s, 5, 0, NULL, 0, 10, SIM_OK, NULL, 0);
  op(b, 0, SIM_OP_SET_READ, s, 0, 0, NULL, 20, 30, SIM_OK, L(5), 0);
  final(b, k, 0, L(1, 2), 0, NULL, 1);
  final(b, s, 0, L(5), 0, NULL, 1);
  expect(b, sim_check_phantom, 0, NULL);
}

static void phantom_catches_unwritten_read(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  get(b, 1, k, 20, 30, L(1, 99));
  expect(b, sim_check_phantom, 1, "phantom");
}

static void phantom_catches_value_of_other_key(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  uint32_t j = key(b, "j", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  final(b, j, 0, L(1), 0, NULL, 1);
  expect(b, sim_check_phantom, 1, "phantom");
}

static void phantom_catches_read_from_the_future(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  get(b, 1, k, 0, 10, L(1));
  put(b, 0, k, 1, NULL, 20, 30, SIM_OK);
  expect(b, sim_check_phantom, 1, "phantom");
}

static void phantom_catches_set_element(void **state) {
  struct hb *b = *state;
  uint32_t s = key(b, "s", SIM_TYPE_SET);
  op(b, 0, SIM_OP_SET_ADD, s, 5, 0, NULL, 0, 10, SIM_OK, NULL, 0);
  final(b, s, 2, L(5, 6), 0, NULL, 1);
  expect(b, sim_check_phantom, 1, "phantom");
}

/* ---- false siblings ----------------------------------------------------- */

static void false_siblings_pass_concurrent_values(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 1, k, 2, NULL, 0, 10, SIM_OK);
  put(b, 1, k, 3, L(2), 20, 30, SIM_OK);
  get(b, 2, k, 40, 50, L(1, 3));
  final(b, k, 0, L(1, 3), 0, NULL, 1);
  expect(b, sim_check_false_siblings, 0, NULL);
}

static void false_siblings_catch_superseded_final(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 0, k, 2, L(1), 20, 30, SIM_OK);
  final(b, k, 0, L(1, 2), 0, NULL, 1);
  expect(b, sim_check_false_siblings, 1, "false-sibling");
}

static void false_siblings_catch_transitive_in_read(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 0, k, 2, L(1), 20, 30, SIM_UNKNOWN);
  put(b, 0, k, 3, L(2), 40, 50, SIM_OK);
  get(b, 1, k, 60, 70, L(3, 1));
  expect(b, sim_check_false_siblings, 1, "false-sibling");
}

/* ---- convergence -------------------------------------------------------- */

static void convergence_passes_equal_replicas(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 0, k, 2, NULL, 0, 10, SIM_OK);
  final(b, k, 0, L(1, 2), 0, NULL, 42);
  final(b, k, 1, L(2, 1), 0, NULL, 42);
  final(b, k, 2, L(1, 2), 0, NULL, 42);
  expect(b, sim_check_convergence, 0, NULL);
}

static void convergence_catches_different_values(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  final(b, k, 0, L(1, 2), 0, NULL, 42);
  final(b, k, 1, L(1), 0, NULL, 42);
  expect(b, sim_check_convergence, 1, "convergence");
}

static void convergence_catches_different_digests(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  final(b, k, 0, L(1), 0, NULL, 42);
  final(b, k, 1, L(1), 0, NULL, 43); /* same values, other metadata */
  expect(b, sim_check_convergence, 1, "convergence");
}

static void convergence_catches_different_counters(void **state) {
  struct hb *b = *state;
  uint32_t c = key(b, "c", SIM_TYPE_COUNTER);
  final(b, c, 0, NULL, 5, NULL, 1);
  final(b, c, 1, NULL, 4, NULL, 1);
  expect(b, sim_check_convergence, 1, "convergence");
}

/* ---- counters ----------------------------------------------------------- */

static void counter_history(struct hb *b, uint32_t c) {
  /* ok +5 before the reads; unknown +3 and ok -2 concurrent with them */
  op(b, 0, SIM_OP_COUNTER_ADD, c, 0, 5, NULL, 0, 10, SIM_OK, NULL, 0);
  op(b, 1, SIM_OP_COUNTER_ADD, c, 0, 3, NULL, 15, 0, SIM_UNKNOWN, NULL, 0);
  op(b, 2, SIM_OP_COUNTER_ADD, c, 0, -2, NULL, 15, 40, SIM_OK, NULL, 0);
  op(b, 2, SIM_OP_COUNTER_ADD, c, 0, 100, NULL, 15, 16, SIM_FAIL, NULL, 0);
}

static void counter_bounds_pass_reads_in_range(void **state) {
  struct hb *b = *state;
  uint32_t c = key(b, "c", SIM_TYPE_COUNTER);
  counter_history(b, c);
  op(b, 3, SIM_OP_COUNTER_READ, c, 0, 0, NULL, 20, 30, SIM_OK, NULL, 3);
  op(b, 3, SIM_OP_COUNTER_READ, c, 0, 0, NULL, 20, 30, SIM_OK, NULL, 8);
  op(b, 3, SIM_OP_COUNTER_READ, c, 0, 0, NULL, 50, 60, SIM_OK, NULL, 6);
  expect(b, sim_check_counter_bounds, 0, NULL);
}

static void counter_bounds_catch_low_read(void **state) {
  struct hb *b = *state;
  uint32_t c = key(b, "c", SIM_TYPE_COUNTER);
  counter_history(b, c);
  /* after -2 completed, the floor is 5 - 2 = 3; the +5 cannot be unseen */
  op(b, 3, SIM_OP_COUNTER_READ, c, 0, 0, NULL, 50, 60, SIM_OK, NULL, 2);
  expect(b, sim_check_counter_bounds, 1, "counter-bounds");
}

static void counter_bounds_catch_high_read(void **state) {
  struct hb *b = *state;
  uint32_t c = key(b, "c", SIM_TYPE_COUNTER);
  counter_history(b, c);
  op(b, 3, SIM_OP_COUNTER_READ, c, 0, 0, NULL, 20, 30, SIM_OK, NULL, 9);
  expect(b, sim_check_counter_bounds, 1, "counter-bounds");
}

static void counter_weak_passes_a_stale_read(void **state) {
  struct hb *b = *state;
  uint32_t c = key(b, "c", SIM_TYPE_COUNTER);
  counter_history(b, c);
  /* R=1 may miss the +5 entirely: fine for weak, not for strict. */
  op(b, 3, SIM_OP_COUNTER_READ, c, 0, 0, NULL, 50, 60, SIM_OK, NULL, -2);
  expect(b, sim_check_counter_weak, 0, NULL);
  expect(b, sim_check_counter_bounds, 1, "counter-bounds");
}

static void counter_weak_catches_impossible_reads(void **state) {
  struct hb *b = *state;
  uint32_t c = key(b, "c", SIM_TYPE_COUNTER);
  counter_history(b, c);
  /* +100 failed: no read may include it; nor go below every decrement. */
  op(b, 3, SIM_OP_COUNTER_READ, c, 0, 0, NULL, 50, 60, SIM_OK, NULL, 9);
  expect(b, sim_check_counter_weak, 1, "counter-weak");
  sim_history_free(&b->h);
  c = key(b, "c", SIM_TYPE_COUNTER);
  counter_history(b, c);
  op(b, 3, SIM_OP_COUNTER_READ, c, 0, 0, NULL, 50, 60, SIM_OK, NULL, -3);
  expect(b, sim_check_counter_weak, 1, "counter-weak");
}

static void counter_final_exact_passes(void **state) {
  struct hb *b = *state;
  uint32_t c = key(b, "c", SIM_TYPE_COUNTER);
  counter_history(b, c); /* ids 1 (+5), 2 (+3 unknown), 3 (-2), 4 failed */
  final(b, c, 0, NULL, 3, L(1, 3), 1);
  final(b, c, 1, NULL, 6, L(1, 2, 3), 1);
  final(b, c, 2, NULL, 6, NULL, 1); /* bounds only: [3, 6] */
  expect(b, sim_check_counter_final, 0, NULL);
}

static void counter_final_catches_lost_increment(void **state) {
  struct hb *b = *state;
  uint32_t c = key(b, "c", SIM_TYPE_COUNTER);
  counter_history(b, c);
  final(b, c, 0, NULL, 1, L(2, 3), 1);
  expect(b, sim_check_counter_final, 1, "counter-final");
}

static void counter_final_catches_wrong_sum(void **state) {
  struct hb *b = *state;
  uint32_t c = key(b, "c", SIM_TYPE_COUNTER);
  counter_history(b, c);
  final(b, c, 0, NULL, 4, L(1, 3), 1);
  expect(b, sim_check_counter_final, 1, "counter-final");
}

static void counter_final_catches_double_apply(void **state) {
  struct hb *b = *state;
  uint32_t c = key(b, "c", SIM_TYPE_COUNTER);
  counter_history(b, c);
  final(b, c, 0, NULL, 8, L(1, 3, 1), 1);
  expect(b, sim_check_counter_final, 1, "counter-final");
}

static void counter_final_catches_failed_op_applied(void **state) {
  struct hb *b = *state;
  uint32_t c = key(b, "c", SIM_TYPE_COUNTER);
  counter_history(b, c);
  final(b, c, 0, NULL, 103, L(1, 3, 4), 1);
  expect(b, sim_check_counter_final, 1, "counter-final");
}

static void counter_final_catches_out_of_bounds(void **state) {
  struct hb *b = *state;
  uint32_t c = key(b, "c", SIM_TYPE_COUNTER);
  counter_history(b, c);
  final(b, c, 0, NULL, 7, NULL, 1);
  expect(b, sim_check_counter_final, 1, "counter-final");
}

/* ---- sets --------------------------------------------------------------- */

static void set_lost_passes_kept_adds(void **state) {
  struct hb *b = *state;
  uint32_t s = key(b, "s", SIM_TYPE_SET);
  op(b, 0, SIM_OP_SET_ADD, s, 5, 0, NULL, 0, 10, SIM_OK, NULL, 0);
  op(b, 0, SIM_OP_SET_ADD, s, 6, 0, NULL, 0, 0, SIM_UNKNOWN, NULL, 0);
  final(b, s, 0, L(5), 0, NULL, 1);
  expect(b, sim_check_set_lost, 0, NULL);
}

static void set_lost_catches_missing_add(void **state) {
  struct hb *b = *state;
  uint32_t s = key(b, "s", SIM_TYPE_SET);
  op(b, 0, SIM_OP_SET_ADD, s, 5, 0, NULL, 0, 10, SIM_OK, NULL, 0);
  op(b, 0, SIM_OP_SET_ADD, s, 6, 0, NULL, 0, 10, SIM_OK, NULL, 0);
  final(b, s, 0, L(5, 6), 0, NULL, 1);
  final(b, s, 1, L(6), 0, NULL, 1);
  expect(b, sim_check_set_lost, 1, "set-lost-add");
}

/* ---- read-your-writes --------------------------------------------------- */

static void ryw_passes_own_and_superseding_reads(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  uint32_t s = key(b, "s", SIM_TYPE_SET);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  get(b, 0, k, 20, 30, L(1));
  put(b, 1, k, 2, L(1), 40, 50, SIM_OK);
  get(b, 0, k, 60, 70, L(2)); /* 2 supersedes 0's write */
  get(b, 2, k, 5, 8, NULL);   /* another client, before: fine */
  op(b, 0, SIM_OP_SET_ADD, s, 7, 0, NULL, 0, 10, SIM_OK, NULL, 0);
  op(b, 0, SIM_OP_SET_READ, s, 0, 0, NULL, 20, 30, SIM_OK, L(7), 0);
  expect(b, sim_check_ryw, 0, NULL);
}

static void ryw_catches_stale_kv_read(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 0, k, 2, NULL, 20, 30, SIM_OK);
  get(b, 0, k, 40, 50, L(1)); /* a stale replica answered */
  expect(b, sim_check_ryw, 1, "read-your-writes");
}

static void ryw_catches_stale_set_read(void **state) {
  struct hb *b = *state;
  uint32_t s = key(b, "s", SIM_TYPE_SET);
  op(b, 0, SIM_OP_SET_ADD, s, 7, 0, NULL, 0, 10, SIM_OK, NULL, 0);
  op(b, 0, SIM_OP_SET_READ, s, 0, 0, NULL, 20, 30, SIM_OK, NULL, 0);
  expect(b, sim_check_ryw, 1, "read-your-writes");
}

/* ---- deletes ------------------------------------------------------------ */

static size_t del(struct hb *b, int client, uint32_t k, uint64_t name,
                  const uint64_t *covers, uint64_t t0, uint64_t t1,
                  enum sim_outcome out) {
  return op(b, client, SIM_OP_DELETE, k, name, 0, covers, t0, t1, out, NULL, 0);
}

static void kv_lost_passes_writes_a_delete_removed(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 0, k, 2, L(1), 20, 30, SIM_OK);
  put(b, 1, k, 3, NULL, 20, 30, SIM_OK);
  del(b, 0, k, 4, L(2), 40, 50, SIM_OK);      /* 2, so 1 too */
  del(b, 1, k, 5, L(3), 40, 50, SIM_UNKNOWN); /* may have removed 3 */
  final(b, k, 0, NULL, 0, NULL, 7);
  expect(b, sim_check_kv_lost, 0, NULL);
}

static void kv_lost_catches_what_no_delete_covered(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 1, k, 2, NULL, 5, 15, SIM_OK);
  del(b, 0, k, 3, L(1), 20, 30, SIM_OK);
  del(b, 1, k, 4, L(2), 20, 30, SIM_FAIL); /* certainly not applied */
  final(b, k, 0, NULL, 0, NULL, 7);
  expect(b, sim_check_kv_lost, 1, "kv-lost-write");
}

static void zombie_passes_a_concurrent_sibling(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 0, k, 2, L(1), 20, 30, SIM_OK);
  put(b, 1, k, 3, NULL, 25, 35, SIM_OK);      /* not seen by the delete */
  del(b, 0, k, 4, L(2), 40, 50, SIM_OK);      /* removes 2 and 1 */
  del(b, 1, k, 5, L(3), 40, 50, SIM_UNKNOWN); /* not acknowledged */
  final(b, k, 0, L(3), 0, NULL, 7);
  final(b, k, 1, L(3), 0, NULL, 7);
  expect(b, sim_check_zombie, 0, NULL);
}

static void zombie_catches_a_value_back(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 0, k, 2, L(1), 20, 30, SIM_OK);
  del(b, 0, k, 3, L(2), 40, 50, SIM_OK);
  final(b, k, 0, NULL, 0, NULL, 7);
  final(b, k, 1, L(1), 0, NULL, 7); /* transitively covered: back */
  expect(b, sim_check_zombie, 1, "zombie");
}

static void read_after_delete_passes_earlier_and_concurrent_reads(void **s) {
  struct hb *b = *s;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  del(b, 0, k, 2, L(1), 20, 30, SIM_OK);
  get(b, 1, k, 15, 25, L(1)); /* began before the delete completed */
  get(b, 0, k, 40, 50, NULL); /* the writer: its value was deleted */
  expect(b, sim_check_read_after_delete, 0, NULL);
  /* and read-your-writes excuses what a delete removed */
  expect(b, sim_check_ryw, 0, NULL);
}

static void read_after_delete_catches_a_deleted_value(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  del(b, 0, k, 2, L(1), 20, 30, SIM_OK);
  get(b, 1, k, 40, 50, L(1)); /* another client, after the ack */
  expect(b, sim_check_read_after_delete, 1, "read-after-delete");
}

/* ---- all together ------------------------------------------------------- */

static void check_all_reports_first_failure_and_ryw_on_request(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "k", SIM_TYPE_KV);
  put(b, 0, k, 1, NULL, 0, 10, SIM_OK);
  put(b, 0, k, 2, L(1), 20, 30, SIM_OK);
  get(b, 0, k, 15, 18, NULL); /* after put 1 completed, without it */
  final(b, k, 0, L(2), 0, NULL, 1);
  struct sim_check_report rep;
  assert_int_equal(sim_check_all(&b->h, 0, &rep), 0);
  assert_int_equal(sim_check_all(&b->h, 1, &rep), 1);
  assert_string_equal(rep.checker, "read-your-writes");
  assert_int_equal(sim_history_key(&b->h, "k", SIM_TYPE_SET), CHORUS_ETYPE);
}

/* ---- set removes (issue 21) ----------------------------------------- */

static void set_remove_excuses_the_element_it_named(void **state) {
  struct hb *b = *state;
  uint32_t s = key(b, "s", SIM_TYPE_SET);
  op(b, 0, SIM_OP_SET_ADD, s, 5, 0, NULL, 0, 10, SIM_OK, NULL, 0);
  op(b, 0, SIM_OP_SET_ADD, s, 6, 0, NULL, 0, 10, SIM_OK, NULL, 0);
  op(b, 1, SIM_OP_SET_READ, s, 0, 0, NULL, 20, 30, SIM_OK, L(5, 6), 0);
  op(b, 1, SIM_OP_SET_REMOVE, s, 5, 0, L(5), 40, 50, SIM_OK, NULL, 0);
  op(b, 1, SIM_OP_SET_REMOVE, s, 6, 0, L(6), 60, 0, SIM_UNKNOWN, NULL, 0);
  final(b, s, 0, NULL, 0, NULL, 1); /* the unknown remove took 6 too */
  final(b, s, 1, NULL, 0, NULL, 1);
  expect(b, sim_check_set_lost, 0, NULL);
  expect(b, sim_check_set_removed, 0, NULL);
  /* A read of a client after its own remove: not a lost add. */
  op(b, 1, SIM_OP_SET_READ, s, 0, 0, NULL, 70, 80, SIM_OK, NULL, 0);
  expect(b, sim_check_ryw, 0, NULL);
}

static void set_removed_catches_an_element_back(void **state) {
  struct hb *b = *state;
  uint32_t s = key(b, "s", SIM_TYPE_SET);
  op(b, 0, SIM_OP_SET_ADD, s, 5, 0, NULL, 0, 10, SIM_OK, NULL, 0);
  op(b, 1, SIM_OP_SET_READ, s, 0, 0, NULL, 20, 30, SIM_OK, L(5), 0);
  op(b, 1, SIM_OP_SET_REMOVE, s, 5, 0, L(5), 40, 50, SIM_OK, NULL, 0);
  final(b, s, 0, NULL, 0, NULL, 1);
  final(b, s, 1, L(5), 0, NULL, 2); /* a replica that got the add late */
  expect(b, sim_check_set_lost, 0, NULL);
  expect(b, sim_check_set_removed, 1, "set-removed");
}

/* ---- LWW registers (issue 21) --------------------------------------- */

static size_t lww(struct hb *b, int client, enum sim_op o, uint32_t k,
                  uint64_t v, uint64_t t0, uint64_t t1, enum sim_outcome out,
                  uint64_t ts, uint64_t node) {
  size_t ix = op(b, client, o, k, v, 0, NULL, t0, t1, out,
                 o == SIM_OP_LWW_READ && v ? L(v) : NULL, 0);
  sim_history_stamp(&b->h, ix, (const uint64_t[2]){ts, node});
  return ix;
}

static void lww_final(struct hb *b, uint32_t k, int node, uint64_t v,
                      uint64_t ts, uint64_t writer) {
  const uint64_t one[2] = {v, 0};
  struct sim_hfinal f = {.key = k,
                         .node = node,
                         .values = (uint64_t *)(uintptr_t)one,
                         .nvalues = v != 0,
                         .digest = ts,
                         .stamp = {ts, writer}};
  assert_int_equal(sim_history_final(&b->h, &f), CHORUS_OK);
}

static void lww_passes_the_greatest_stamp(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "r", SIM_TYPE_LWW);
  lww(b, 0, SIM_OP_LWW_SET, k, 1, 0, 10, SIM_OK, 100, 7);
  lww(b, 1, SIM_OP_LWW_SET, k, 2, 0, 10, SIM_OK, 100, 9); /* tie: node */
  lww(b, 2, SIM_OP_LWW_SET, k, 3, 0, 0, SIM_UNKNOWN, 0, 0);
  lww(b, 0, SIM_OP_LWW_READ, k, 1, 5, 12, SIM_OK, 100, 7); /* concurrent */
  lww(b, 0, SIM_OP_LWW_READ, k, 2, 20, 30, SIM_OK, 100, 9);
  lww_final(b, k, 0, 2, 100, 9);
  lww_final(b, k, 1, 2, 100, 9);
  expect(b, sim_check_lww, 0, NULL);
  expect(b, sim_check_phantom, 0, NULL);
  expect(b, sim_check_lww_fresh, 0, NULL);
}

static void lww_catches_a_lost_write(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "r", SIM_TYPE_LWW);
  lww(b, 0, SIM_OP_LWW_SET, k, 1, 0, 10, SIM_OK, 100, 7);
  lww(b, 1, SIM_OP_LWW_SET, k, 2, 0, 10, SIM_OK, 200, 9);
  lww_final(b, k, 0, 1, 100, 7); /* 2's stamp was greater */
  expect(b, sim_check_lww, 1, "lww-lost");
}

static void lww_catches_a_wrong_stamp(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "r", SIM_TYPE_LWW);
  lww(b, 0, SIM_OP_LWW_SET, k, 1, 0, 10, SIM_OK, 100, 7);
  lww(b, 0, SIM_OP_LWW_READ, k, 1, 20, 30, SIM_OK, 300, 7);
  lww_final(b, k, 0, 1, 100, 7);
  expect(b, sim_check_lww, 1, "lww-stamp");
}

static void lww_catches_a_shared_stamp(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "r", SIM_TYPE_LWW);
  lww(b, 0, SIM_OP_LWW_SET, k, 1, 0, 10, SIM_OK, 100, 7);
  lww(b, 1, SIM_OP_LWW_SET, k, 2, 0, 10, SIM_OK, 100, 7);
  lww_final(b, k, 0, 2, 100, 7);
  expect(b, sim_check_lww, 1, "lww-stamp");
}

static void lww_catches_a_phantom_and_a_stale_read(void **state) {
  struct hb *b = *state;
  uint32_t k = key(b, "r", SIM_TYPE_LWW);
  lww(b, 0, SIM_OP_LWW_SET, k, 1, 0, 10, SIM_OK, 100, 7);
  lww(b, 1, SIM_OP_LWW_SET, k, 2, 20, 30, SIM_OK, 200, 9);
  lww(b, 0, SIM_OP_LWW_READ, k, 1, 40, 50, SIM_OK, 100, 7);
  expect(b, sim_check_lww_fresh, 1, "lww-fresh");
  lww(b, 0, SIM_OP_LWW_READ, k, 99, 60, 70, SIM_OK, 300, 7);
  expect(b, sim_check_phantom, 1, "phantom");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(kv_lost_passes_kept_and_superseded_writes),
      T(kv_lost_catches_overwritten_write),
      T(kv_lost_catches_broken_chain),
      T(kv_lost_catches_one_bad_replica),
      T(kv_lost_catches_key_with_no_replica),
      T(phantom_passes_written_values),
      T(phantom_catches_unwritten_read),
      T(phantom_catches_value_of_other_key),
      T(phantom_catches_read_from_the_future),
      T(phantom_catches_set_element),
      T(false_siblings_pass_concurrent_values),
      T(false_siblings_catch_superseded_final),
      T(false_siblings_catch_transitive_in_read),
      T(convergence_passes_equal_replicas),
      T(convergence_catches_different_values),
      T(convergence_catches_different_digests),
      T(convergence_catches_different_counters),
      T(counter_bounds_pass_reads_in_range),
      T(counter_bounds_catch_low_read),
      T(counter_bounds_catch_high_read),
      T(counter_weak_passes_a_stale_read),
      T(counter_weak_catches_impossible_reads),
      T(counter_final_exact_passes),
      T(counter_final_catches_lost_increment),
      T(counter_final_catches_wrong_sum),
      T(counter_final_catches_double_apply),
      T(counter_final_catches_failed_op_applied),
      T(counter_final_catches_out_of_bounds),
      T(set_lost_passes_kept_adds),
      T(set_lost_catches_missing_add),
      T(ryw_passes_own_and_superseding_reads),
      T(ryw_catches_stale_kv_read),
      T(ryw_catches_stale_set_read),
      T(kv_lost_passes_writes_a_delete_removed),
      T(kv_lost_catches_what_no_delete_covered),
      T(zombie_passes_a_concurrent_sibling),
      T(zombie_catches_a_value_back),
      T(read_after_delete_passes_earlier_and_concurrent_reads),
      T(read_after_delete_catches_a_deleted_value),
      T(check_all_reports_first_failure_and_ryw_on_request),
      T(set_remove_excuses_the_element_it_named),
      T(set_removed_catches_an_element_back),
      T(lww_passes_the_greatest_stamp),
      T(lww_catches_a_lost_write),
      T(lww_catches_a_wrong_stamp),
      T(lww_catches_a_shared_stamp),
      T(lww_catches_a_phantom_and_a_stale_read),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
