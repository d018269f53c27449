/* fuzz_aae.c: libFuzzer target for the four anti-entropy messages as a
 * peer sends them (repl_aae.c). Input: one frame body. Whatever
 * wire_decode (peer limits) accepts goes to a replica holding a few keys
 * with a built tree:
 *   AAE_TREE_REQ, AAE_KEYS_REQ   served by it (answered or refused)
 *   AAE_TREE                     as the answer its exchange awaits in the
 *                                branch phase
 *   AAE_KEYS                     as the answer awaited in the key phase
 * The ring has replication classes (keyspace 1 at N = 2, keyspace 2 at
 * N = 1) and the store keys of each; a request's class_tag below 3 is
 * taken as the tag of that class index, and a class_map of 0 as the
 * ring's, so that the fuzzer reaches the class paths (served, refused as
 * not replicas together) and not only the refusals of an unknown tag or
 * map.
 * Bad input must be refused or abandon the exchange: never an assert, a
 * leak, or an out-of-bounds access (ASan and UBSan in the fuzz build). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "repl_int.h"
#include "store_mem.h"

static int fx_send(void *ctx, chorus_node_id to, const struct wire_msg *m) {
  (void)ctx, (void)to;
  size_t n = wire_encoded_size(m), w;
  uint8_t *b = malloc(n);
  if (b == NULL || wire_encode(m, b, n, &w, NULL) != CHORUS_OK)
    abort(); /* what a node sends must encode */
  free(b);
  return CHORUS_OK;
}
static int fx_reply(void *ctx, const struct repl_origin *o,
                    const struct wire_msg *m, bool maybe) {
  (void)ctx, (void)o, (void)m, (void)maybe;
  return CHORUS_OK;
}
static int fx_timer(void *ctx, uint64_t id, chorus_ms after) {
  (void)ctx, (void)id, (void)after;
  return CHORUS_OK;
}
static int fx_sync(void *ctx, chorus_seq seq, uint64_t token) {
  (void)ctx, (void)seq, (void)token;
  return CHORUS_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct wire_msg m;
  if (wire_decode(data, size, &WIRE_LIMITS_PEER, &m, NULL) != CHORUS_OK) {
    wire_msg_free(&m);
    return 0;
  }
  if (m.type < WIRE_AAE_TREE_REQ || m.type > WIRE_AAE_KEYS) {
    wire_msg_free(&m);
    return 0;
  }
  /* Three nodes, N = 3, a small tree: node 1 is this replica. */
  struct ring_node rn[3];
  memset(rn, 0, sizeof rn);
  for (int i = 0; i < 3; i++) {
    rn[i].id = 1 + (chorus_node_id)i;
    strcpy(rn[i].dc, "dc1");
    rn[i].rack[0] = (char)('a' + i);
    rn[i].state = RING_NORMAL;
    rn[i].vnodes = 8;
  }
  struct ring_replication rs;
  struct ring_snapshot *ring;
  struct store *st;
  struct ring_ks_replication ks[2] = {{.ks_id = 1}, {.ks_id = 2}};
  if (ring_replication_parse("3", &rs, NULL) != CHORUS_OK ||
      ring_replication_parse("2", &ks[0].repl, NULL) != CHORUS_OK ||
      ring_replication_parse("1", &ks[1].repl, NULL) != CHORUS_OK ||
      ring_snapshot_build_classes(rn, 3, &rs, ks, 2, 1, &ring, NULL) !=
          CHORUS_OK)
    abort();
  if (store_mem_open(&st) != CHORUS_OK)
    abort();
  /* Keys of the cluster's class and of each keyspace ([0][id BE][key]). */
  for (int k = 0; k < 48; k++) {
    char key[8] = {0, 0, 0, 0, (char)(k / 16), 'k', (char)('a' + k % 16)};
    size_t kl = k < 16 ? 2 : 7;
    const char *kp = k < 16 ? key + 5 : key;
    uint8_t dk[24];
    size_t dl = store_data_key(dk, ring_token_of(kp, kl), kp, kl);
    store_put(st, STORE_DATA, dk, dl, "\x01", 1, NULL);
  }
  uint64_t *tag = m.type == WIRE_AAE_TREE_REQ   ? &m.aae_tree_req.class_tag
                  : m.type == WIRE_AAE_KEYS_REQ ? &m.aae_keys_req.class_tag
                                                : NULL;
  uint64_t *map = m.type == WIRE_AAE_TREE_REQ   ? &m.aae_tree_req.class_map
                  : m.type == WIRE_AAE_KEYS_REQ ? &m.aae_keys_req.class_map
                                                : NULL;
  if (tag != NULL && *tag < ring_snapshot_class_count(ring))
    *tag = ring_snapshot_class_tag(ring, (unsigned)*tag);
  if (map != NULL && *map == 0) /* else: another map, refused */
    *map = ring_snapshot_class_map(ring);
  struct repl_config cfg;
  repl_config_defaults(&cfg, 1);
  strcpy(cfg.dc, "dc1");
  cfg.aae_bits = 8;
  struct repl *r;
  struct repl_effects fx = {NULL, fx_send, fx_reply, fx_timer, fx_sync};
  if (repl_new(&cfg, st, ring, &r) != CHORUS_OK ||
      repl_start(r, 1, 1, &fx) != CHORUS_OK)
    abort();
  bool built = false;
  while (!built)
    if (repl_aae_rebuild_step(r, 100, &built) != CHORUS_OK)
      abort();
  store_mem_sync_step(st);
  repl_sync_done(r, (r->epoch << REPL_OP_COUNTER_BITS) | 1, CHORUS_OK, 1, 1,
                 &fx); /* the epoch barrier: ready */
  if (m.type == WIRE_AAE_TREE || m.type == WIRE_AAE_KEYS) {
    bool started = false;
    if (repl_aae_exchange(r, 2, 1, 1, &fx, &started) != CHORUS_OK || !started)
      abort();
    struct repl_aae *a = &r->aae;
    if (m.type == WIRE_AAE_KEYS) {
      /* The key phase over the whole ring, as after differing segments. */
      a->kr = chorus_malloc(sizeof *a->kr);
      if (a->kr == NULL)
        abort();
      a->kr[0] = (struct repl_aae_iv){0, UINT64_MAX};
      a->nkr = a->capkr = a->krn = 1;
      a->krpos = 0;
      a->phase = REPL_AAE_KEYS;
    }
    m.request_id = a->awaited;
  }
  if (repl_peer(r, 2, &m, 1, 1, &fx) != CHORUS_OK)
    abort();
  repl_free(r);
  store_close(st);
  ring_snapshot_free(ring);
  wire_msg_free(&m);
  return 0;
}
