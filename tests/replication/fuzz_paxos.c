/* fuzz_paxos.c: libFuzzer target for the stored form of a key's Paxos
 * acceptor state (replication/paxos.h), and for the lock and fenced
 * records its values may hold. Input: the bytes as read from the store;
 * the same bytes are also judged as a committed value by a lock ACQUIRE
 * and a FENCED_SET run to their end against three acceptors holding it
 * (a damaged record is refused, PAXOS_REFUSED_CORRUPT, never trusted). What the
 * decoder accepts must encode back to the same bytes (the form is canonical),
 * and joining it into a small fixed state and into itself must keep the join's
 * laws (idempotent; commutative, compared on the encoded bytes). Never an
 * assert, a leak or an out-of-bounds access (ASan and UBSan in the fuzz build).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_error.h"
#include "paxos.h"

static uint8_t *encode(const struct paxos_acceptor *a, size_t *len) {
  size_t n = paxos_acceptor_encoded_size(a);
  uint8_t *b = malloc(n ? n : 1);
  if (b == NULL || paxos_acceptor_encode(a, b, n, len) != CHORUS_OK ||
      *len != n)
    abort();
  return b;
}

static void same(const struct paxos_acceptor *x,
                 const struct paxos_acceptor *y) {
  size_t nx, ny;
  uint8_t *bx = encode(x, &nx), *by = encode(y, &ny);
  if (nx != ny || memcmp(bx, by, nx) != 0)
    abort();
  free(bx);
  free(by);
}

/* judge: @cond on the committed value @v, over three acceptors that
 * hold it and a network that loses nothing. */
static void judge(uint8_t cond, struct paxos_value v) {
  static const chorus_node_id ids[3] = {1, 2, 3};
  struct paxos_acceptor acc[3];
  for (int i = 0; i < 3; i++) {
    paxos_acceptor_init(&acc[i]);
    if (paxos_commit(&acc[i], (struct paxos_ballot){5, 9}, v) != CHORUS_OK)
      abort();
  }
  static const uint8_t name[] = "lock", val[] = "v";
  const struct paxos_lock_args args = {.now = 1000,
                                       .ttl = 100,
                                       .skew = 50,
                                       .token = 3,
                                       .holder = name,
                                       .holder_len = 4,
                                       .fence = name,
                                       .fence_len = 4};
  struct paxos_op op;
  if (paxos_op_init_lock(&op, cond, &args, (struct paxos_value){true, val, 1},
                         ids, 3) != CHORUS_OK)
    abort();
  uint64_t t = 10;
  for (int guard = 0; guard < 20 && op.phase != PAXOS_DONE; guard++) {
    if ((op.phase == PAXOS_RESTART || guard == 0) &&
        paxos_op_restart(&op, (struct paxos_ballot){++t, 1}) != CHORUS_OK)
      abort();
    struct paxos_msg m;
    while (paxos_op_outbox(&op, &m) || paxos_op_commit_due(&op, &m))
      for (int i = 0; i < 3; i++) {
        if (m.type == PAXOS_MSG_PREPARE) {
          struct paxos_promise pr;
          paxos_prepare(&acc[i], m.ballot, &pr);
          if (paxos_op_on_promise(&op, ids[i], m.ballot, &pr) != CHORUS_OK)
            abort();
        } else if (m.type == PAXOS_MSG_PROPOSE) {
          bool ok;
          struct paxos_ballot pb;
          if (paxos_propose(&acc[i], m.ballot, m.value, &ok, &pb) !=
                  CHORUS_OK ||
              paxos_op_on_accept(&op, ids[i], m.ballot, ok, pb) != CHORUS_OK)
            abort();
        } else if (paxos_commit(&acc[i], m.ballot, m.value) != CHORUS_OK) {
          abort();
        }
      }
  }
  if (op.phase != PAXOS_DONE)
    abort();
  /* What it chose decodes as what it is. */
  if (op.outcome == PAXOS_APPLIED) {
    struct paxos_lock l;
    struct paxos_value fv;
    bool fenced;
    if (cond == PAXOS_LOCK_ACQUIRE &&
        (paxos_lock_decode(op.commit.value, &l) != CHORUS_OK || !l.held))
      abort();
    if (cond == PAXOS_FENCED_SET &&
        (paxos_fenced_value(op.commit.value, &fv, &fenced) != CHORUS_OK ||
         !fenced || fv.len != 1))
      abort();
  }
  paxos_op_free(&op);
  for (int i = 0; i < 3; i++)
    paxos_acceptor_free(&acc[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size <= 4096) {
    struct paxos_value v = {true, data, size};
    struct paxos_lock l;
    struct paxos_value fv;
    bool fenced;
    (void)paxos_lock_decode(v, &l);
    (void)paxos_fenced_value(v, &fv, &fenced);
    judge(PAXOS_LOCK_ACQUIRE, v);
    judge(PAXOS_FENCED_SET, v);
  }
  struct paxos_acceptor a;
  if (paxos_acceptor_decode(&a, data, size, NULL) != CHORUS_OK)
    return 0;
  size_t n;
  uint8_t *b = encode(&a, &n);
  if (n != size || memcmp(b, data, size) != 0)
    abort(); /* canonical */
  free(b);
  /* A fixed second state: promised, accepted and committed mid-range,
   * made as owned copies by joining a borrowed view into an empty one. */
  static const uint8_t v[] = "value";
  struct paxos_acceptor view = {.promised = {1u << 20, 7},
                                .accepted_at = {1u << 20, 7},
                                .accepted = {true, v, sizeof v - 1},
                                .committed_at = {1u << 19, 3},
                                .committed = {true, v, 2}};
  struct paxos_acceptor f;
  paxos_acceptor_init(&f);
  if (paxos_acceptor_join(&f, &view) != CHORUS_OK)
    abort();
  struct paxos_acceptor ab, ba, aa;
  paxos_acceptor_init(&ab);
  paxos_acceptor_init(&ba);
  paxos_acceptor_init(&aa);
  if (paxos_acceptor_copy(&ab, &a) || paxos_acceptor_join(&ab, &f) ||
      paxos_acceptor_copy(&ba, &f) || paxos_acceptor_join(&ba, &a) ||
      paxos_acceptor_copy(&aa, &a) || paxos_acceptor_join(&aa, &a))
    abort();
  same(&ab, &ba);
  same(&aa, &a);
  paxos_acceptor_free(&ab);
  paxos_acceptor_free(&ba);
  paxos_acceptor_free(&aa);
  paxos_acceptor_free(&f);
  paxos_acceptor_free(&a);
  return 0;
}
