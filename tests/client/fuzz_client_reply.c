/* fuzz_client_reply.c: libFuzzer target for what libchorus does with a
 * node's reply after wire_decode() accepted it: the result builders
 * (sibling and member copies, the ring/status join that parses
 * member.<id>.* names and replication.* factors and computes token shares
 * with ring.h, the cluster status copy, the repair status and its
 * per-range records, a TRACE's records). Input: one frame body. A
 * RING_REPLY(2) is joined with a fixed STATUS_REPLY and the reverse, so
 * both halves of the join see hostile input.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chorus_alloc.h"
#include "libchorus_int.h"

static const uint8_t fixed_ring[] = {
    0x95, 0x61, 0x01, 0x07, 0x10, 0x92, /* epoch 7, T=16 */
    0x95, 0x01, 0xa3, 'a',  ':',  '1',  0xa3, 'd', 'c', '1',
    0xa2, 'r',  '1',  0x00, 0x95, 0x02, 0xa3, 'b', ':', '2',
    0xa3, 'd',  'c',  '1',  0xa2, 'r',  '2',  0x03};

static const uint8_t fixed_status[] = {
    0x94, 0x63, 0x01, 0x05, 0x82, 0xad, 'r',  'e',  'p', 'l', 'i', 'c', 'a',
    't',  'i',  'o',  'n',  '.',  'n',  0x03, 0xbd, 'm', 'e', 'm', 'b', 'e',
    'r',  '.',  '0',  '0',  '0',  '0',  '0',  '0',  '0', '0', '0', '0', '0',
    '0',  '0',  '0',  '0',  '1',  '.',  's',  't',  'a', 't', 'e', 0x01};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct wire_limits lim = CHORUS__REPLY_LIMITS;
  struct wire_msg m;
  if (wire_decode(data, size, &lim, &m, NULL) != CHORUS_OK) {
    wire_msg_free(&m);
    return 0;
  }
  static const uint8_t reqs[] = {
      WIRE_GET,           WIRE_PUT,          WIRE_COUNTER_READ,
      WIRE_SET_READ,      WIRE_RING_QUERY,   WIRE_STATUS_QUERY,
      WIRE_CLUSTER_QUERY, WIRE_CLUSTER_PLAN, WIRE_REPAIR_STATUS,
      WIRE_REPAIR_RANGES, WIRE_LWW_READ,     WIRE_LWW_SET,
      WIRE_KEYSPACE,      WIRE_MAP_READ,     WIRE_MAP_UPDATE,
      WIRE_CAS,           WIRE_USER,         WIRE_LOCK,
      WIRE_CLUSTER_KEY};
  for (size_t i = 0; i < sizeof reqs; i++) {
    struct chorus_result res;
    memset(&res, 0, sizeof res);
    chorus__result_from_reply(&res, reqs[i], &m);
    if (reqs[i] == WIRE_MAP_READ && res.status == CHORUS_OK) {
      /* The node's map bytes through the walker and the JSON writer. */
      size_t need = 0;
      char small[16];
      int rc = chorus_map_json(&res, small, sizeof small, &need);
      if (rc == CHORUS_ETOOBIG) {
        char *js = chorus_malloc(need + 1);
        if (js != NULL &&
            chorus_map_json(&res, js, need + 1, NULL) != CHORUS_OK)
          __builtin_trap();
        chorus_free(js);
      }
    }
    chorus_result_free(&res);
  }
  if (m.type == WIRE_TRACE) {
    /* A traced request's timeline, as libchorus keeps it for the result
     * (any bytes: whole records or nothing). */
    struct chorus_result res;
    memset(&res, 0, sizeof res);
    chorus__result_trace(&res, m.trace.node_id, m.trace.events.ptr,
                         m.trace.events.len);
    if (res.ntrace * WIRE_TRACE_EVENT_BYTES != m.trace.events.len &&
        res.ntrace != 0)
      __builtin_trap();
    chorus_result_free(&res);
  }
  if (m.type == WIRE_RING_REPLY || m.type == WIRE_STATUS_REPLY ||
      m.type == WIRE_RING_REPLY2 || m.type == WIRE_STATUS_REPLY2) {
    bool ring = m.type == WIRE_RING_REPLY || m.type == WIRE_RING_REPLY2;
    struct wire_msg other;
    const uint8_t *o = ring ? fixed_status : fixed_ring;
    size_t olen = ring ? sizeof fixed_status : sizeof fixed_ring;
    if (wire_decode(o, olen, &lim, &other, NULL) == CHORUS_OK) {
      struct chorus_result res;
      memset(&res, 0, sizeof res);
      chorus__result_info(&res, ring ? &m : &other, ring ? &other : &m);
      double sum = 0;
      for (size_t i = 0; i < res.nnodes; i++)
        sum += res.nodes[i].share;
      if (sum > 1.0001)
        __builtin_trap(); /* shares of one ring never exceed the whole */
      chorus_result_free(&res);
    }
    wire_msg_free(&other);
  }
  wire_msg_free(&m);
  return 0;
}
