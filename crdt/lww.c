/* lww.c: the last-writer-wins register ordered by (HLC time, node id). */
#include <assert.h>

#include "chorus_alloc.h"
#include "crdt_int.h"

void lww_init(struct lww *r) {
  r->ts = 0;
  r->node = 0;
  r->present = false;
  r->value = NULL;
  r->len = 0;
}

bool crdt__lww_valid(const struct lww *r) {
  return (r->len > 0) == (r->value != NULL) && (r->present || r->len == 0);
}

void lww_free(struct lww *r) {
  chorus_free(r->value);
  lww_init(r);
}

/* The total order join follows: (ts, node), then presence and value bytes,
 * which only decide between states honest nodes never produce. */
static int lww_cmp(hlc_time ts, chorus_node_id node, bool present,
                   const uint8_t *v, uint32_t len, const struct lww *r) {
  if (ts != r->ts)
    return ts < r->ts ? -1 : 1;
  if (node != r->node)
    return node < r->node ? -1 : 1;
  if (present != r->present)
    return present ? 1 : -1;
  return crdt__bytes_cmp(v, len, r->value, r->len);
}

/* Replaces @r's write with the given one (value copied). */
static int lww_assign(struct lww *r, hlc_time ts, chorus_node_id node,
                      bool present, const void *value, size_t len) {
  assert(len == 0 || value != NULL);
  assert(present || len == 0);
  assert(len <= DVV_VALUE_MAX);
  uint8_t *copy = NULL;
  if (len > 0 && (copy = chorus_memdup(value, len)) == NULL)
    return CHORUS_ENOMEM;
  chorus_free(r->value);
  r->ts = ts;
  r->node = node;
  r->present = present;
  r->value = copy;
  r->len = (uint32_t)len;
  assert(crdt__lww_valid(r));
  return CHORUS_OK;
}

int lww_copy(struct lww *dst, const struct lww *src) {
  if (dst == src)
    return CHORUS_OK;
  return lww_assign(dst, src->ts, src->node, src->present, src->value,
                    src->len);
}

static int lww_write(struct lww *r, hlc_time ts, chorus_node_id node,
                     bool present, const void *value, size_t len,
                     bool *applied) {
  if (applied)
    *applied = false;
  if (len > DVV_VALUE_MAX)
    return CHORUS_ETOOBIG;
  assert(len == 0 || value != NULL);
  assert(crdt__lww_valid(r));
  if (lww_cmp(ts, node, present, value, (uint32_t)len, r) <= 0)
    return CHORUS_OK;
  int rc = lww_assign(r, ts, node, present, value, len);
  if (rc == CHORUS_OK && applied)
    *applied = true;
  return rc;
}

int lww_set(struct lww *r, hlc_time ts, chorus_node_id node, const void *value,
            size_t len, bool *applied) {
  return lww_write(r, ts, node, true, value, len, applied);
}

int lww_delete(struct lww *r, hlc_time ts, chorus_node_id node, bool *applied) {
  return lww_write(r, ts, node, false, NULL, 0, applied);
}

int lww_join(struct lww *dst, const struct lww *src) {
  assert(crdt__lww_valid(dst) && crdt__lww_valid(src));
  if (dst == src ||
      lww_cmp(src->ts, src->node, src->present, src->value, src->len, dst) <= 0)
    return CHORUS_OK;
  return lww_assign(dst, src->ts, src->node, src->present, src->value,
                    src->len);
}

bool lww_equal(const struct lww *a, const struct lww *b) {
  return lww_cmp(a->ts, a->node, a->present, a->value, a->len, b) == 0;
}
