/* fuzz_map.c: libFuzzer target for crdt_map_decode and crdt_map_ops_decode
 * (MAP_UPDATE's operations). A map that decodes must round-trip and
 * self-join unchanged (fuzz_common.h), and stay valid under updates:
 * removing its first field with its own context (which saw every dot, so
 * the field goes), an add at a nested path and a set remove with a context
 * ahead of the map's (kept as deferred). Operations that decode are
 * applied to an empty map: refused with a reason or applied, the result
 * valid. */
#include <string.h>

#include "fuzz_common.h"

#define JOIN(d, s) crdt_map_join(d, s)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_ops(const uint8_t *data, size_t size) {
  struct crdt_map_op *ops;
  uint32_t n;
  int rc = crdt_map_ops_decode(&ops, &n, data, size, NULL);
  if (rc != CHORUS_OK) {
    fuzz_refused(rc);
    return;
  }
  /* Re-encoded, the ops decode to the same ops. */
  size_t len = crdt_map_ops_encoded_size(ops, n), w = 0;
  uint8_t *buf = chorus_malloc(len);
  FUZZ_CHECK(buf != NULL);
  FUZZ_CHECK(crdt_map_ops_encode(ops, n, buf, len, &w) == CHORUS_OK);
  struct crdt_map_op *back;
  uint32_t nb;
  FUZZ_CHECK(w == len &&
             crdt_map_ops_decode(&back, &nb, buf, w, NULL) == CHORUS_OK);
  FUZZ_CHECK(nb == n);
  for (uint32_t i = 0; i < n; i++) {
    FUZZ_CHECK(back[i].kind == ops[i].kind && back[i].depth == ops[i].depth &&
               back[i].amount == ops[i].amount && back[i].len == ops[i].len);
    FUZZ_CHECK(ops[i].len == 0 ||
               memcmp(back[i].data, ops[i].data, ops[i].len) == 0);
  }
  chorus_free(back);
  chorus_free(buf);
  struct crdt_map m;
  crdt_map_init(&m);
  rc = crdt_map_update(&m, 3, 9, NULL, ops, n, NULL);
  FUZZ_CHECK(rc == CHORUS_OK || rc == CHORUS_EINVAL || rc == CHORUS_ERANGE ||
             rc == CHORUS_ETOOBIG);
  if (rc == CHORUS_OK)
    FUZZ_ROUND_TRIP(crdt_map, &m, JOIN);
  crdt_map_free(&m);
  chorus_free(ops);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_ops(data, size);
  struct crdt_map x;
  int rc = crdt_map_decode(&x, data, size, NULL);
  if (rc != CHORUS_OK) {
    fuzz_refused(rc);
    return 0;
  }
  FUZZ_ROUND_TRIP(crdt_map, &x, JOIN);
  if (x.root.n > 0) {
    const struct crdt_map_field *f = &x.root.sub[0];
    uint8_t name[CRDT_MAP_NAME_MAX];
    memcpy(name, f->name, f->namelen);
    struct crdt_map_op op;
    memset(&op, 0, sizeof op);
    op.kind = CRDT_MAP_OP_REMOVE;
    op.depth = 1;
    op.path[0] = (struct crdt_map_key){name, f->namelen, f->type};
    struct crdt_ctx seen;
    crdt_ctx_init(&seen);
    FUZZ_CHECK(crdt_ctx_copy(&seen, &x.ctx) == CHORUS_OK);
    FUZZ_CHECK(crdt_map_update(&x, 1, 1, &seen, &op, 1, NULL) == CHORUS_OK);
    FUZZ_CHECK(crdt_map_find(&x.root, name, op.path[0].len, op.path[0].type) ==
               NULL);
    crdt_ctx_free(&seen);
  }
  struct crdt_map_op add;
  memset(&add, 0, sizeof add);
  add.kind = CRDT_MAP_OP_COUNTER_ADD;
  add.depth = 2;
  add.path[0] = (struct crdt_map_key){(const uint8_t *)"m", 1, CRDT_MAP_MAP};
  add.path[1] =
      (struct crdt_map_key){(const uint8_t *)"c", 1, CRDT_MAP_COUNTER};
  add.amount = -1;
  rc = crdt_map_update(&x, 7, 1, NULL, &add, 1, NULL);
  /* Hostile totals or an exhausted node counter may refuse it. */
  FUZZ_CHECK(rc == CHORUS_OK || rc == CHORUS_ERANGE || rc == CHORUS_ETOOBIG);
  FUZZ_ROUND_TRIP(crdt_map, &x, JOIN);
  /* A set remove whose reader saw a dot this copy has not: kept (crdt.h,
   * deferred removes), or refused when too many wait already. */
  struct crdt_ctx ahead;
  crdt_ctx_init(&ahead);
  struct crdt_dot next = crdt_ctx_next(&x.ctx, 5);
  if (next.counter <= CRDT_EVENT_MAX) {
    FUZZ_CHECK(crdt_ctx_copy(&ahead, &x.ctx) == CHORUS_OK &&
               crdt_ctx_add(&ahead, next) == CHORUS_OK);
    struct crdt_map_op rm = add;
    rm.kind = CRDT_MAP_OP_SET_REMOVE;
    rm.path[1].type = CRDT_MAP_SET;
    rm.data = (const uint8_t *)"e";
    rm.len = 1;
    rc = crdt_map_update(&x, 7, 2, &ahead, &rm, 1, NULL);
    FUZZ_CHECK(rc == CHORUS_OK || rc == CHORUS_EBUSY || rc == CHORUS_ETOOBIG);
    FUZZ_ROUND_TRIP(crdt_map, &x, JOIN);
  }
  crdt_ctx_free(&ahead);
  crdt_map_free(&x);
  return 0;
}
