/* libchorus_keyring.c: the gossip keyring of the cluster metadata
 * (libchorus.h, GOSSIP KEYS; wire.h, CLUSTER_KEY). A key's bytes go to
 * the node only with INSTALL; no reply ever carries them. */
#include <assert.h>
#include <string.h>

#include "chorus_alloc.h"
#include "libchorus_int.h"

_Static_assert(CHORUS_GOSSIP_KEY_BYTES == WIRE_KEY_BYTES, "key bytes");
_Static_assert(CHORUS_MAX_KEY_BEHIND == WIRE_MAX_KEY_BEHIND, "behind");

void chorus_keyring_free(struct chorus_keyring *k) {
  chorus_free(k);
}

static uint64_t be(const uint8_t *p, unsigned n) {
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* chorus__take_keyring: each record checked (wire.h): its exact length,
 * ids ascending, at most one primary. */
int chorus__take_keyring(struct chorus_result *res,
                         const struct wire_cluster_key_reply *r) {
  size_t n = r->entries.n;
  bool ok =
      n <= CHORUS_MAX_GOSSIP_KEYS && r->behind.len <= CHORUS_MAX_KEY_BEHIND;
  struct chorus_keyring *k = ok ? chorus_calloc(1, sizeof *k) : NULL;
  if (ok && k == NULL) {
    chorus__result_error(res, CHORUS_ENOMEM, "out of memory");
    return CHORUS_ENOMEM;
  }
  size_t primaries = 0;
  for (size_t i = 0; ok && i < n; i++) {
    const uint8_t *p = r->entries.items[i].ptr;
    ok = r->entries.items[i].len == WIRE_KEY_RECORD_BYTES && p[12] <= 1;
    if (ok) {
      k->keys[i].id = (uint32_t)be(p, 4);
      k->keys[i].since = be(p + 4, 8);
      k->keys[i].primary = p[12] == 1;
      primaries += p[12];
      ok = i == 0 || k->keys[i - 1].id < k->keys[i].id;
    }
  }
  if (!ok || primaries > 1) {
    chorus_free(k);
    chorus__result_error(res, CHORUS_EMALFORMED, "a malformed keyring");
    return CHORUS_EMALFORMED;
  }
  k->applied = r->applied;
  k->version = r->version;
  k->id = r->id;
  k->n = n;
  if (r->behind.len > 0)
    memcpy(k->behind, r->behind.ptr, r->behind.len);
  res->keyring = k;
  return CHORUS_OK;
}

/* One CLUSTER_KEY call, synchronous: LIST a read (resent on another
 * seed), the others writes. */
static int sync_key(struct chorus_client *c, uint8_t op, uint32_t id,
                    const uint8_t *key, struct chorus_keyring **out) {
  if (c == NULL)
    return CHORUS_EINVAL;
  if (out == NULL)
    return chorus_errf(c->errmsg, CHORUS_EINVAL, "NULL out");
  *out = NULL;
  if (op == WIRE_KEY_INSTALL && key == NULL)
    return chorus_errf(c->errmsg, CHORUS_EINVAL, "NULL key");
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_CLUSTER_KEY;
  m.cluster_key.op = op;
  m.cluster_key.id = id;
  if (op == WIRE_KEY_INSTALL)
    m.cluster_key.key = (struct wire_bytes){key, WIRE_KEY_BYTES};
  struct chorus_result res;
  struct chorus__sync_wait w;
  int rc = chorus__sync_begin(c, &res, &w);
  if (rc == CHORUS_OK)
    rc = chorus__sync_end(
        c,
        chorus__submit(c, &m, op != WIRE_KEY_LIST, false,
                       op == WIRE_KEY_LIST ? 0 : CHORUS__ADMIN_TIMEOUT_MS,
                       chorus__sync_cb, &w),
        &w);
  assert(rc != CHORUS_OK || res.keyring != NULL);
  if (rc == CHORUS_OK) {
    *out = res.keyring;
    res.keyring = NULL;
  }
  return chorus__sync_result_end(c, &res, rc);
}

int chorus_cluster_key_list(struct chorus_client *c,
                            struct chorus_keyring **out) {
  return sync_key(c, WIRE_KEY_LIST, 0, NULL, out);
}

int chorus_cluster_key_install(struct chorus_client *c,
                               const uint8_t key[CHORUS_GOSSIP_KEY_BYTES],
                               struct chorus_keyring **out) {
  return sync_key(c, WIRE_KEY_INSTALL, 0, key, out);
}

int chorus_cluster_key_use(struct chorus_client *c, uint32_t id,
                           struct chorus_keyring **out) {
  return sync_key(c, WIRE_KEY_USE, id, NULL, out);
}

int chorus_cluster_key_remove(struct chorus_client *c, uint32_t id,
                              struct chorus_keyring **out) {
  return sync_key(c, WIRE_KEY_REMOVE, id, NULL, out);
}
