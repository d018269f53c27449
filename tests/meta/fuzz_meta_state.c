/* fuzz_meta_state.c: libFuzzer target for meta_state_decode(): whatever it
 * accepts must be sorted and unique, encode, and decode again to an equal
 * state with the same bytes on a second encoding. */
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
  struct meta_state d, d2;
  int rc = meta_state_decode(data, size, &d);
  if (rc != CHORUS_OK) {
    CHECK(rc == CHORUS_EMALFORMED || rc == CHORUS_ETOOBIG ||
          rc == CHORUS_EVERSION);
    CHECK(d.members == NULL && d.n == 0);
    return 0;
  }
  for (size_t i = 0; i < d.n; i++) {
    CHECK(d.members[i].id != 0 &&
          (i == 0 || d.members[i - 1].id < d.members[i].id));
    CHECK(meta_state_find(&d, d.members[i].id) == &d.members[i]);
    CHECK(meta_state_find_name(&d, d.members[i].name) == &d.members[i]);
  }
  uint8_t *e1, *e2;
  size_t len1, len2;
  CHECK(meta_state_encode(&d, &e1, &len1) == CHORUS_OK);
  /* Older input re-encodes as V7: every member two bytes more (goal and
   * ready, 0 each), one (disk) and one (tokens_of), a V1 state an empty
   * session array more, a state before V4 no staged change (six bytes),
   * one before V6 no keyspaces (an empty array and next_ks_id 0), and one
   * before V7 no users (an empty array), one before V8 no keyring (a
   * fixarray, four fixints or bools and two empty arrays). */
  CHECK(len1 <= size + (data[0] < META_FORMAT_V3 ? 2 * d.n : 0) +
                    (data[0] < META_FORMAT_V4 ? d.n + 6 : 0) +
                    (data[0] < META_FORMAT_V5 ? d.n : 0) +
                    (data[0] < META_FORMAT_V6 ? 2 : 0) +
                    (data[0] < META_FORMAT_V7 ? 1 : 0) +
                    (data[0] < META_FORMAT_V8 ? 7 : 0) +
                    (data[0] == META_FORMAT_V1 ? 1 : 0));
  for (size_t i = 0; i < d.nks; i++)
    CHECK(meta_state_keyspace(&d, d.keyspaces[i].name) == &d.keyspaces[i]);
  for (size_t i = 0; i < d.nusers; i++)
    CHECK(meta_state_user(&d, d.users[i].name) == &d.users[i]);
  CHECK(meta_state_decode(e1, len1, &d2) == CHORUS_OK);
  CHECK(meta_t_state_eq(&d, &d2));
  CHECK(meta_state_encode(&d2, &e2, &len2) == CHORUS_OK);
  CHECK(len1 == len2 && memcmp(e1, e2, len1) == 0);
  chorus_free(e2);
  chorus_free(e1);
  meta_state_free(&d2);
  meta_state_free(&d);
  return 0;
}
