/* fuzz_meta_msg.c: libFuzzer target for meta_msg_decode(): whatever it
 * accepts must encode, decode again to an equal message (entries' bytes,
 * configuration, data) with the same bytes on a second encoding, and
 * release without a leak; whatever it refuses must leave nothing behind. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "meta_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

static bool zeroed(const struct meta_msg *m) {
  static const struct meta_msg zero;
  return memcmp(m, &zero, sizeof zero) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct meta_msg d, d2;
  int rc = meta_msg_decode(data, size, &d);
  if (rc != CHORUS_OK) {
    CHECK(rc == CHORUS_EMALFORMED || rc == CHORUS_ETOOBIG ||
          rc == CHORUS_EVERSION);
    CHECK(zeroed(&d));
    return 0;
  }
  if (d.type == META_MSG_RAFT)
    CHECK(d.raft.server_id == d.from && d.raft.server_address == NULL);
  if (d.type == META_MSG_RAFT && d.raft.type == RAFT_IO_APPEND_ENTRIES) {
    const struct raft_append_entries *a = &d.raft.append_entries;
    CHECK((a->n_entries == 0) == (a->entries == NULL));
    size_t off = 0;
    for (unsigned i = 0; i < a->n_entries; i++) {
      CHECK(a->entries[i].batch == a->entries[0].batch);
      CHECK((uint8_t *)a->entries[i].buf.base ==
            (uint8_t *)a->entries[0].batch + off);
      off += a->entries[i].buf.len;
    }
  }
  uint8_t *e1, *e2;
  size_t len1, len2;
  CHECK(meta_msg_encode(&d, &e1, &len1) == CHORUS_OK);
  /* Ours is the shortest encoding; an older PROPOSE re-encodes as V5: a
   * V1 one with an empty origin's two bytes more, a JOIN's member with
   * goal and ready (two more), disk and tokens_of (one more each). */
  bool propose = d.type == META_MSG_PROPOSE;
  CHECK(len1 <=
        size + (propose && data[0] == META_FORMAT_V1 ? 2 : 0) +
            (propose && data[0] < META_FORMAT_V3 && d.cmd.type == META_CMD_JOIN
                 ? 2
                 : 0) +
            (propose && data[0] < META_FORMAT_V4 && d.cmd.type == META_CMD_JOIN
                 ? 1
                 : 0) +
            (propose && data[0] < META_FORMAT_V5 && d.cmd.type == META_CMD_JOIN
                 ? 1
                 : 0));
  CHECK(meta_msg_decode(e1, len1, &d2) == CHORUS_OK);
  CHECK(meta_t_msg_eq(&d, &d2) && d2.raft.server_id == d.raft.server_id);
  CHECK(meta_msg_encode(&d2, &e2, &len2) == CHORUS_OK);
  CHECK(len1 == len2 && memcmp(e1, e2, len1) == 0);
  chorus_free(e2);
  chorus_free(e1);
  meta_msg_release(&d2);
  meta_msg_release(&d);
  meta_msg_release(&d); /* idempotent */
  return 0;
}
