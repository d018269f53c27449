/* fuzz_forward.c: libFuzzer target for REPLICA_FORWARD as a coordinator of
 * another datacenter sends it (repl_replica.c, the forwarder's side).
 * Input: one frame body. Whatever wire_decode (peer limits) accepts as a
 * REPLICA_FORWARD goes to a replica of a three-node ring from node 2; then
 * every node the forward names answers the relayed write with a
 * REPLICA_ACK carrying the input's first byte as a status. Bad input (a
 * target list that is no whole number of ids, names this node, the
 * coordinator or one node twice, a token that is not the key's) must be
 * refused: never an assert, a leak, or an out-of-bounds access (ASan and
 * UBSan in the fuzz build). */
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
  if (m.type != WIRE_REPLICA_FORWARD) {
    wire_msg_free(&m);
    return 0;
  }
  /* Three nodes, N = 3: node 1 is this replica, node 2 the coordinator. */
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
  if (ring_replication_parse("3", &rs, NULL) != CHORUS_OK ||
      ring_snapshot_build(rn, 3, &rs, 1, &ring, NULL) != CHORUS_OK)
    abort();
  if (store_mem_open(&st) != CHORUS_OK)
    abort();
  struct repl_config cfg;
  repl_config_defaults(&cfg, 1);
  strcpy(cfg.dc, "dc1");
  struct repl *r;
  struct repl_effects fx = {NULL, fx_send, fx_reply, fx_timer, fx_sync};
  if (repl_new(&cfg, st, ring, &r) != CHORUS_OK ||
      repl_start(r, 1, 1, &fx) != CHORUS_OK)
    abort();
  store_mem_sync_step(st);
  repl_sync_done(r, (r->epoch << REPL_OP_COUNTER_BITS) | 1, CHORUS_OK, 1, 1,
                 &fx); /* the epoch barrier: ready */
  if (repl_peer(r, 2, &m, 1, 1, &fx) != CHORUS_OK)
    abort();
  /* The relay, if the forward was taken: each named node answers. */
  for (uint32_t b = 0; b < REPL_OP_BUCKETS; b++)
    for (struct repl_op *op = r->ops[b]; op != NULL; op = op->next) {
      if (op->kind != REPL_OP_RELAY)
        continue;
      uint64_t id = op->id;
      uint8_t n = op->u.relay.n;
      chorus_node_id to[WIRE_MAX_FORWARD_TARGETS];
      memcpy(to, op->u.relay.to, sizeof to);
      for (uint8_t k = 0; k < n; k++) {
        struct wire_msg a = {.type = WIRE_REPLICA_ACK, .request_id = id};
        a.replica_ack.status = -(int32_t)(data[0] & 0x1f);
        /* The last answer ends the op: stop walking this chain then. */
        if (repl_peer(r, to[k], &a, 1, 1, &fx) != CHORUS_OK)
          abort();
      }
      b = REPL_OP_BUCKETS - 1; /* one forward, one relay: done */
      break;
    }
  repl_free(r);
  store_close(st);
  ring_snapshot_free(ring);
  wire_msg_free(&m);
  return 0;
}
