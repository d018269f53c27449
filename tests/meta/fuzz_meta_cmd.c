/* fuzz_meta_cmd.c: libFuzzer target for meta_cmd_decode(): whatever it
 * accepts must encode, decode again to an equal command with the same
 * bytes on a second encoding, and apply to a state without harm; applied
 * again, a command with an origin changes nothing but applied. */
#include <stdbool.h>
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct meta_cmd d, d2;
  int rc = meta_cmd_decode(data, size, &d);
  if (rc != CHORUS_OK) {
    CHECK(rc == CHORUS_EMALFORMED || rc == CHORUS_ETOOBIG ||
          rc == CHORUS_EVERSION);
    return 0;
  }
  uint8_t *e1, *e2;
  size_t len1, len2;
  CHECK(meta_cmd_encode(&d, &e1, &len1) == CHORUS_OK);
  /* Older input re-encodes as V7: a V1 command with an empty origin's
   * two bytes more, a JOIN's member with goal and ready (two more), disk
   * (one more) and tokens_of (one more). */
  CHECK(len1 <=
        size + (data[0] == META_FORMAT_V1 ? 2 : 0) +
            (data[0] < META_FORMAT_V3 && d.type == META_CMD_JOIN ? 2 : 0) +
            (data[0] < META_FORMAT_V4 && d.type == META_CMD_JOIN ? 1 : 0) +
            (data[0] < META_FORMAT_V5 && d.type == META_CMD_JOIN ? 1 : 0));
  CHECK(meta_cmd_decode(e1, len1, &d2) == CHORUS_OK);
  CHECK(meta_t_cmd_eq(&d, &d2));
  CHECK(meta_cmd_encode(&d2, &e2, &len2) == CHORUS_OK);
  CHECK(len1 == len2 && memcmp(e1, e2, len1) == 0);
  chorus_free(e2);
  chorus_free(e1);

  /* A decoded command applies to a state that then still encodes. */
  struct meta_member m[3] = {
      meta_t_member(0x8000000000000001ull, "node-a", "dc1", "r1", META_NORMAL),
      meta_t_member(0x8000000000000002ull, "node-b", "dc2", "r1", META_NORMAL),
      meta_t_member(0x8000000000000003ull, "node-c", "dc1", "r2",
                    META_LEAVING)};
  struct meta_state s, c;
  meta_state_init(&s, NULL);
  s.replication = meta_t_repl_n(3);
  s.n = 3;
  s.members = m;
  CHECK(meta_state_copy(&s, &c) == CHORUS_OK);
  rc = meta_state_apply(&c, &d, 10);
  /* (ENOTSUP: a keyspace with a replication of its own; ENOSPC: the
   * keyspace table or a user's grants full.) */
  CHECK(rc == CHORUS_OK || rc == CHORUS_EEXIST || rc == CHORUS_ENOTFOUND ||
        rc == CHORUS_EINVAL || rc == CHORUS_ETOOBIG || rc == CHORUS_EBUSY ||
        rc == CHORUS_ESTALE || rc == CHORUS_ENOTSUP || rc == CHORUS_ENOSPC);
  CHECK(c.applied == 10);
  /* The epoch moves when the ring's input changed: not for a NOTE, a
   * STREAMED, a STAGE, a COMMIT that drops the staged change (none is
   * staged here, so a commit is ENOTFOUND), a keyspace or a user command, nor
   * for replication settings equal to those in force. */
  bool same_repl =
      d.type == META_CMD_REPLICATION &&
      memcmp(&d.replication, &s.replication, sizeof d.replication) == 0;
  CHECK(c.epoch ==
        (rc == CHORUS_OK && d.type != META_CMD_NOTE &&
                 d.type != META_CMD_STREAMED && d.type != META_CMD_STAGE &&
                 d.type != META_CMD_COMMIT &&
                 d.type != META_CMD_KEYSPACE_CREATE &&
                 d.type != META_CMD_KEYSPACE_ALTER &&
                 d.type != META_CMD_KEYSPACE_DROP &&
                 d.type < META_CMD_USER_CREATE && !same_repl
             ? 1u
             : 0u));
  CHECK(meta_state_encode(&c, &e1, &len1) == CHORUS_OK);
  chorus_free(e1);
  if (d.proposer != 0) {
    struct meta_state again;
    CHECK(meta_state_copy(&c, &again) == CHORUS_OK);
    CHECK(meta_state_apply(&again, &d, 11) == rc);
    again.applied = 10;
    CHECK(meta_t_state_eq(&again, &c));
    meta_state_free(&again);
  }
  meta_state_free(&c);
  return 0;
}
