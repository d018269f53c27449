/* fuzz_obj.c: libFuzzer target for crdt_obj_decode. The input is also split
 * in two at the position its first byte names; when both halves decode to
 * objects of one type, join must be commutative and idempotent on them:
 * decoders promise the laws hold for every state they accept (a cas
 * object's join is replication's: here only equal states join). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const struct crdt_obj *o) {
  size_t n = crdt_obj_encoded_size(o), w = 0;
  uint8_t *b = chorus_malloc(n);
  FUZZ_CHECK(b != NULL);
  FUZZ_CHECK(crdt_obj_encode(o, b, n, &w) == CHORUS_OK && w == n);
  struct crdt_obj y;
  FUZZ_CHECK(crdt_obj_decode(&y, o->type, b, n, NULL) == CHORUS_OK);
  FUZZ_CHECK(crdt_obj_equal(o, &y));
  crdt_obj_free(&y);
  chorus_free(b);
}

static int copy_obj(struct crdt_obj *dst, const struct crdt_obj *src) {
  crdt_obj_init(dst, src->type);
  return crdt_obj_join(dst, src, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct crdt_obj a, b;
  int rc = crdt_obj_decode(&a, CRDT_NONE, data, size, NULL);
  if (rc == CHORUS_OK) {
    round_trip(&a);
    crdt_obj_free(&a);
  } else {
    fuzz_refused(rc);
  }
  if (size < 2)
    return 0;
  size_t cut = 1 + data[0] % (size - 1);
  if (crdt_obj_decode(&a, CRDT_NONE, data + 1, cut - 1, NULL) != CHORUS_OK)
    return 0;
  if (crdt_obj_decode(&b, a.type, data + cut, size - cut, NULL) != CHORUS_OK) {
    crdt_obj_free(&a);
    return 0;
  }
  if (a.type == CRDT_PAXOS) {
    /* Opaque here: its join is replication's (paxos_acceptor_join, whose
     * laws fuzz_paxos checks); crdt/ joins only equal or empty states. */
    struct crdt_obj c;
    FUZZ_CHECK(copy_obj(&c, &a) == CHORUS_OK && crdt_obj_equal(&c, &a));
    int jrc = crdt_obj_join(&c, &b, NULL);
    FUZZ_CHECK(jrc == (crdt_obj_equal(&a, &b) ? CHORUS_OK : CHORUS_ENOTSUP));
    crdt_obj_free(&c);
    crdt_obj_free(&a);
    crdt_obj_free(&b);
    return 0;
  }
  struct crdt_obj ab, ba, aa;
  FUZZ_CHECK(copy_obj(&ab, &a) == CHORUS_OK);
  FUZZ_CHECK(crdt_obj_join(&ab, &b, NULL) == CHORUS_OK);
  FUZZ_CHECK(copy_obj(&ba, &b) == CHORUS_OK);
  FUZZ_CHECK(crdt_obj_join(&ba, &a, NULL) == CHORUS_OK);
  FUZZ_CHECK(crdt_obj_equal(&ab, &ba));
  FUZZ_CHECK(copy_obj(&aa, &ab) == CHORUS_OK);
  FUZZ_CHECK(crdt_obj_join(&aa, &b, NULL) == CHORUS_OK);
  FUZZ_CHECK(crdt_obj_equal(&aa, &ab));
  round_trip(&ab);
  crdt_obj_free(&a);
  crdt_obj_free(&b);
  crdt_obj_free(&ab);
  crdt_obj_free(&ba);
  crdt_obj_free(&aa);
  return 0;
}
