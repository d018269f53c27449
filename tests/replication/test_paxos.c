/* test_paxos.c: per-key Paxos (replication/paxos.h), the core of
 * compare-and-set (issue 23), run as an adversary would and judged by the
 * linearizability checker (tests/lin).
 *
 *   1. The acceptor's rules, one by one (promise, refusal, acceptance,
 *      commit settling an acceptance).
 *   2. One proposer alone: IF_ABSENT applies once and then fails with the
 *      value found; IF_VALUE, DELETE_IF_VALUE, a read.
 *   3. A finished-by-the-next-round proposal: a proposal accepted by one
 *      replica and abandoned is found and committed by a later read.
 *   4. Swarm: 5 replicas, 4 clients each running 12 operations (reads,
 *      writes, if-absent, if-value, delete-if-value; every value unique),
 *      over a network that delivers messages in random order, drops 10%,
 *      duplicates 5%, and now and then pauses a replica (crash and
 *      restart with its durable state: messages to it are lost). Clients
 *      time out, back off at random and retry at a higher ballot, at most
 *      12 rounds. Every history is linearizable (outcome "unknown" counts
 *      as pending), on 300 seeds (6,000 in long mode; CHORUS_PAXOS_SEEDS=N
 *      runs N).
 *   5. The same swarm with a planted bug, an acceptor that accepts a
 *      proposal below its promise: the checker catches it on some seeds
 *      (the test would be worthless if it could not fail).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_error.h"
#include "lin.h"
#include "paxos.h"

#ifdef CHORUS_LONG_TESTS
#define SEEDS 6000
#else
#define SEEDS 300
#endif

static struct paxos_value val(const int64_t *v) {
  return (struct paxos_value){true, (const uint8_t *)v, sizeof *v};
}
static const struct paxos_value ABSENT = {false, NULL, 0};

static int64_t as_int(struct paxos_value v) {
  if (!v.present)
    return LIN_ABSENT;
  int64_t x;
  assert_int_equal(v.len, sizeof x);
  memcpy(&x, v.bytes, sizeof x);
  return x;
}

static struct paxos_ballot B(uint64_t t, uint64_t n) {
  return (struct paxos_ballot){t, n};
}

static void
acceptor_rules(void **state) {
  (void)state;
  struct paxos_acceptor a;
  paxos_acceptor_init(&a);
  struct paxos_promise p;
  paxos_prepare(&a, B(5, 1), &p);
  assert_true(p.ok);
  assert_false(p.accepted.present);
  paxos_prepare(&a, B(4, 9), &p); /* below the promise */
  assert_false(p.ok);
  assert_int_equal(paxos_ballot_cmp(p.promised, B(5, 1)), 0);
  bool ok;
  struct paxos_ballot prom;
  int64_t seven = 7, eight = 8;
  assert_int_equal(paxos_propose(&a, B(4, 9), val(&seven), &ok, &prom),
                   CHORUS_OK);
  assert_false(ok); /* below the promise */
  assert_int_equal(paxos_propose(&a, B(5, 1), val(&seven), &ok, &prom),
                   CHORUS_OK);
  assert_true(ok);
  paxos_prepare(&a, B(6, 2), &p); /* the acceptance travels with a promise */
  assert_true(p.ok);
  assert_int_equal(as_int(p.accepted), 7);
  assert_int_equal(paxos_ballot_cmp(p.accepted_at, B(5, 1)), 0);
  assert_int_equal(paxos_commit(&a, B(5, 1), val(&seven)), CHORUS_OK);
  paxos_prepare(&a, B(7, 2), &p);
  assert_false(p.accepted.present); /* settled by the commit */
  assert_int_equal(as_int(p.committed), 7);
  /* A proposal at or below the commit is refused, whatever the promise:
   * that round is over; the answer names the commit to restart above. */
  assert_int_equal(paxos_propose(&a, B(5, 1), val(&eight), &ok, &prom),
                   CHORUS_OK);
  assert_false(ok);
  /* An older commit arriving late changes nothing. */
  assert_int_equal(paxos_commit(&a, B(3, 3), val(&eight)), CHORUS_OK);
  assert_int_equal(as_int(a.committed), 7);
  struct paxos_acceptor c;
  paxos_acceptor_init(&c);
  assert_int_equal(paxos_acceptor_copy(&c, &a), CHORUS_OK);
  assert_int_equal(as_int(c.committed), 7);
  paxos_acceptor_free(&c);
  paxos_acceptor_free(&a);
}

/* The stored form: round trip, canonical, and every malformed input
 * refused with a reason; the join's laws on states a real history makes. */
static void stored_form_and_join(void **state) {
  (void)state;
  int64_t seven = 7, nine = 9;
  struct paxos_acceptor a, d;
  paxos_acceptor_init(&a);
  bool ok;
  struct paxos_ballot prom;
  struct paxos_promise p;
  paxos_prepare(&a, B(3, 1), &p);
  assert_int_equal(paxos_propose(&a, B(3, 1), val(&seven), &ok, &prom), 0);
  assert_int_equal(paxos_commit(&a, B(3, 1), val(&seven)), 0);
  paxos_prepare(&a, B(5, 2), &p);
  assert_int_equal(paxos_propose(&a, B(5, 2), val(&nine), &ok, &prom), 0);
  uint8_t buf[256];
  size_t n;
  assert_int_equal(paxos_acceptor_encode(&a, buf, sizeof buf, &n), CHORUS_OK);
  assert_int_equal(n, paxos_acceptor_encoded_size(&a));
  assert_int_equal(paxos_acceptor_encode(&a, buf, n - 1, &n), CHORUS_ETOOBIG);
  assert_int_equal(paxos_acceptor_encode(&a, buf, sizeof buf, &n), CHORUS_OK);
  char err[256];
  assert_int_equal(paxos_acceptor_decode(&d, buf, n, err), CHORUS_OK);
  assert_int_equal(as_int(d.accepted), 9);
  assert_int_equal(as_int(d.committed), 7);
  assert_int_equal(paxos_ballot_cmp(d.promised, B(5, 2)), 0);
  paxos_acceptor_free(&d);
  /* Hostile: each refused, with its reason. */
  static const struct {
    size_t off; /* byte changed (SIZE_MAX: cut inside a ballot) */
    uint8_t to;
    int code;
    const char *why;
  } bad[] = {
      {0, 2, CHORUS_EVERSION, "format 2"},
      /* [0] format, [1, 33) promise and acceptance ballots, [33] the
       * acceptance's presence, [34, 38) its length, [38, 46) its bytes */
      {33, 2, CHORUS_EMALFORMED, "neither 0 nor 1"},
      {34, 0xff, CHORUS_EMALFORMED, "over PAXOS_MAX_VALUE"},
      {37, 0x40, CHORUS_EMALFORMED, "runs past the end"},
      {SIZE_MAX, 0, CHORUS_EMALFORMED, "cut short"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t b2[256];
    memcpy(b2, buf, n);
    size_t n2 = n;
    if (bad[i].off == SIZE_MAX)
      n2 = 20;
    else
      b2[bad[i].off] = bad[i].to;
    assert_int_equal(paxos_acceptor_decode(&d, b2, n2, err), bad[i].code);
    assert_non_null(strstr(err, bad[i].why));
  }
  uint8_t longer[257];
  memcpy(longer, buf, n);
  longer[n] = 0;
  assert_int_equal(paxos_acceptor_decode(&d, longer, n + 1, err),
                   CHORUS_EMALFORMED);
  assert_non_null(strstr(err, "trailing"));
  assert_int_equal(paxos_acceptor_decode(&d, buf, 0, err), CHORUS_EMALFORMED);
  /* An acceptance at or below the commit: no rule makes it. */
  struct paxos_acceptor odd = a;
  odd.accepted_at = B(2, 1);
  uint8_t b3[256];
  size_t n3;
  assert_int_equal(paxos_acceptor_encode(&odd, b3, sizeof b3, &n3), 0);
  assert_int_equal(paxos_acceptor_decode(&d, b3, n3, err), CHORUS_EMALFORMED);
  assert_non_null(strstr(err, "at or below the commit"));
  /* Join: a second state that committed 9 at 6; commutative, idempotent,
   * and the acceptance at 5 is settled by the commit at 6. */
  struct paxos_acceptor b;
  paxos_acceptor_init(&b);
  paxos_prepare(&b, B(6, 3), &p);
  assert_int_equal(paxos_commit(&b, B(6, 3), val(&nine)), 0);
  struct paxos_acceptor ab, ba, aa;
  paxos_acceptor_init(&ab);
  paxos_acceptor_init(&ba);
  paxos_acceptor_init(&aa);
  assert_int_equal(paxos_acceptor_copy(&ab, &a), 0);
  assert_int_equal(paxos_acceptor_join(&ab, &b), 0);
  assert_int_equal(paxos_acceptor_copy(&ba, &b), 0);
  assert_int_equal(paxos_acceptor_join(&ba, &a), 0);
  assert_int_equal(paxos_acceptor_copy(&aa, &a), 0);
  assert_int_equal(paxos_acceptor_join(&aa, &a), 0);
  uint8_t x[256], y[256];
  size_t nx, ny;
  assert_int_equal(paxos_acceptor_encode(&ab, x, sizeof x, &nx), 0);
  assert_int_equal(paxos_acceptor_encode(&ba, y, sizeof y, &ny), 0);
  assert_int_equal(nx, ny);
  assert_memory_equal(x, y, nx);
  assert_int_equal(paxos_acceptor_encode(&aa, x, sizeof x, &nx), 0);
  assert_int_equal(paxos_acceptor_encode(&a, y, sizeof y, &ny), 0);
  assert_int_equal(nx, ny);
  assert_memory_equal(x, y, nx);
  assert_false(ab.accepted.present); /* 5 <= the commit at 6 */
  assert_int_equal(as_int(ab.committed), 9);
  assert_int_equal(paxos_ballot_cmp(ab.promised, B(6, 3)), 0);
  paxos_acceptor_free(&ab);
  paxos_acceptor_free(&ba);
  paxos_acceptor_free(&aa);
  paxos_acceptor_free(&b);
  paxos_acceptor_free(&a);
}

/* ------------------------------------------------------------------------
 * A small world: acceptors, and an operation driven to its end with
 * every message delivered (tests 2 and 3)
 * ------------------------------------------------------------------------ */

#define NACC 5
static const chorus_node_id ids[NACC] = {11, 12, 13, 14, 15};

static void deliver_all(struct paxos_acceptor *acc, struct paxos_op *op,
                        const struct paxos_msg *m, uint32_t reach) {
  for (int i = 0; i < NACC; i++) {
    if (!(reach & (1u << i)))
      continue;
    if (m->type == PAXOS_MSG_PREPARE) {
      struct paxos_promise p;
      paxos_prepare(&acc[i], m->ballot, &p);
      assert_int_equal(paxos_op_on_promise(op, ids[i], m->ballot, &p),
                       CHORUS_OK);
    } else if (m->type == PAXOS_MSG_PROPOSE) {
      bool ok;
      struct paxos_ballot prom;
      assert_int_equal(paxos_propose(&acc[i], m->ballot, m->value, &ok, &prom),
                       CHORUS_OK);
      assert_int_equal(paxos_op_on_accept(op, ids[i], m->ballot, ok, prom),
                       CHORUS_OK);
    } else {
      assert_int_equal(paxos_commit(&acc[i], m->ballot, m->value), CHORUS_OK);
    }
  }
}

static uint64_t clock_now = 100;

static void run_op(struct paxos_acceptor *acc, struct paxos_op *op,
                   chorus_node_id me) {
  assert_int_equal(paxos_op_restart(op, B(++clock_now, me)), CHORUS_OK);
  for (int guard = 0; guard < 50 && op->phase != PAXOS_DONE; guard++) {
    struct paxos_msg m;
    while (paxos_op_outbox(op, &m))
      deliver_all(acc, op, &m, 0x1f);
    if (paxos_op_commit_due(op, &m))
      deliver_all(acc, op, &m, 0x1f);
    if (op->phase == PAXOS_RESTART) {
      clock_now = op->highest.time + 1;
      assert_int_equal(paxos_op_restart(op, B(clock_now, me)), CHORUS_OK);
    }
  }
  struct paxos_msg m;
  if (paxos_op_commit_due(op, &m))
    deliver_all(acc, op, &m, 0x1f);
  assert_int_equal(op->phase, PAXOS_DONE);
}

static void one_proposer(void **state) {
  (void)state;
  struct paxos_acceptor acc[NACC];
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_init(&acc[i]);
  int64_t one = 1, two = 2;
  struct paxos_op op;
  assert_int_equal(
      paxos_op_init(&op, PAXOS_IF_ABSENT, ABSENT, val(&one), ids, NACC),
      CHORUS_OK);
  run_op(acc, &op, 1);
  assert_int_equal(op.outcome, PAXOS_APPLIED);
  paxos_op_free(&op);
  /* Again: the key holds 1 now, so it fails and says what it found. */
  assert_int_equal(
      paxos_op_init(&op, PAXOS_IF_ABSENT, ABSENT, val(&two), ids, NACC),
      CHORUS_OK);
  run_op(acc, &op, 2);
  assert_int_equal(op.outcome, PAXOS_NOT_APPLIED);
  assert_int_equal(as_int(op.found), 1);
  paxos_op_free(&op);
  /* If-value with the wrong value, then the right one. */
  assert_int_equal(
      paxos_op_init(&op, PAXOS_IF_VALUE, val(&two), val(&two), ids, NACC),
      CHORUS_OK);
  run_op(acc, &op, 1);
  assert_int_equal(op.outcome, PAXOS_NOT_APPLIED);
  paxos_op_free(&op);
  assert_int_equal(
      paxos_op_init(&op, PAXOS_IF_VALUE, val(&one), val(&two), ids, NACC),
      CHORUS_OK);
  run_op(acc, &op, 1);
  assert_int_equal(op.outcome, PAXOS_APPLIED);
  assert_int_equal(as_int(op.found), 1);
  paxos_op_free(&op);
  assert_int_equal(
      paxos_op_init(&op, PAXOS_DELETE_IF_VALUE, val(&two), ABSENT, ids, NACC),
      CHORUS_OK);
  run_op(acc, &op, 3);
  assert_int_equal(op.outcome, PAXOS_APPLIED);
  paxos_op_free(&op);
  assert_int_equal(paxos_op_init(&op, PAXOS_READ, ABSENT, ABSENT, ids, NACC),
                   CHORUS_OK);
  run_op(acc, &op, 3);
  assert_int_equal(op.outcome, PAXOS_NOT_APPLIED);
  assert_false(op.found.present);
  paxos_op_free(&op);
  /* Bad arguments. */
  assert_int_equal(paxos_op_init(&op, 99, ABSENT, ABSENT, ids, NACC),
                   CHORUS_EINVAL);
  assert_int_equal(paxos_op_init(&op, PAXOS_READ, ABSENT, ABSENT, ids, 0),
                   CHORUS_EINVAL);
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_free(&acc[i]);
}

/* if_match: @cond (IF_MATCH or DELETE_IF_MATCH) naming version @ctx, run
 * to its end by proposer @me; its outcome, the value found and the
 * context of the key's value after it. */
static uint8_t if_match(struct paxos_acceptor *acc, uint8_t cond,
                        struct paxos_ballot ctx, struct paxos_value update,
                        chorus_node_id me, int64_t *found,
                        struct paxos_ballot *after) {
  uint8_t c[PAXOS_CONTEXT_LEN];
  paxos_context_encode(ctx, c);
  struct paxos_op op;
  assert_int_equal(paxos_op_init(&op, cond,
                                 (struct paxos_value){true, c, sizeof c},
                                 update, ids, NACC),
                   CHORUS_OK);
  run_op(acc, &op, me);
  uint8_t out = op.outcome;
  *found = as_int(op.found);
  *after = paxos_op_context(&op);
  paxos_op_free(&op);
  return out;
}

/* read_ctx: a serial read: the value and its context. */
static int64_t read_ctx(struct paxos_acceptor *acc, struct paxos_ballot *ctx) {
  struct paxos_op op;
  assert_int_equal(paxos_op_init(&op, PAXOS_READ, ABSENT, ABSENT, ids, NACC),
                   CHORUS_OK);
  run_op(acc, &op, 9);
  assert_int_equal(op.outcome, PAXOS_NOT_APPLIED);
  int64_t v = as_int(op.found);
  *ctx = paxos_op_context(&op);
  paxos_op_free(&op);
  return v;
}

/* Contexts (paxos.h, CONTEXTS): an if-match applies on the version it
 * names, once; a stale one is refused with the current value and its
 * context; a delete is a version; the never-written key has its own. */
static void if_match_names_a_version(void **state) {
  (void)state;
  struct paxos_acceptor acc[NACC];
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_init(&acc[i]);
  int64_t one = 1, two = 2, three = 3, f;
  struct paxos_ballot c0, c1, c2, cx, after;
  /* Never written: ballot {0, 0}, and if-match of it creates the key. */
  assert_int_equal(read_ctx(acc, &c0), LIN_ABSENT);
  assert_int_equal(paxos_ballot_cmp(c0, (struct paxos_ballot){0}), 0);
  assert_int_equal(if_match(acc, PAXOS_IF_MATCH, c0, val(&one), 1, &f, &c1),
                   PAXOS_APPLIED);
  assert_int_equal(f, LIN_ABSENT);
  assert_int_equal(read_ctx(acc, &cx), 1);
  assert_int_equal(paxos_ballot_cmp(cx, c1), 0); /* the applied answer's */
  /* Two writers with the same context: the first applies, the second is
   * refused and learns the winner's value and context. */
  assert_int_equal(if_match(acc, PAXOS_IF_MATCH, c1, val(&two), 2, &f, &c2),
                   PAXOS_APPLIED);
  assert_int_equal(f, 1);
  assert_true(paxos_ballot_cmp(c2, c1) > 0);
  assert_int_equal(if_match(acc, PAXOS_IF_MATCH, c1, val(&three), 3, &f, &cx),
                   PAXOS_NOT_APPLIED);
  assert_int_equal(f, 2);
  assert_int_equal(paxos_ballot_cmp(cx, c2), 0);
  /* ABA: the value goes back to 1 at a new version; the context of the
   * first 1 is stale, though the bytes are equal. */
  assert_int_equal(if_match(acc, PAXOS_IF_MATCH, c2, val(&one), 1, &f, &cx),
                   PAXOS_APPLIED);
  assert_int_equal(
      if_match(acc, PAXOS_IF_MATCH, c1, val(&three), 3, &f, &after),
      PAXOS_NOT_APPLIED);
  assert_int_equal(f, 1);
  assert_int_equal(paxos_ballot_cmp(after, cx), 0);
  /* Delete-if-match: stale refused, current applied; the absent key is a
   * version of its own, not the never-written one. */
  assert_int_equal(
      if_match(acc, PAXOS_DELETE_IF_MATCH, c2, ABSENT, 2, &f, &after),
      PAXOS_NOT_APPLIED);
  assert_int_equal(f, 1);
  assert_int_equal(if_match(acc, PAXOS_DELETE_IF_MATCH, cx, ABSENT, 2, &f, &c1),
                   PAXOS_APPLIED);
  assert_int_equal(read_ctx(acc, &c2), LIN_ABSENT);
  assert_int_equal(paxos_ballot_cmp(c2, c1), 0);
  assert_int_equal(if_match(acc, PAXOS_IF_MATCH, c0, val(&one), 1, &f, &after),
                   PAXOS_NOT_APPLIED); /* deleted is not never-written */
  assert_int_equal(f, LIN_ABSENT);
  assert_int_equal(if_match(acc, PAXOS_IF_MATCH, c1, val(&three), 3, &f, &cx),
                   PAXOS_APPLIED); /* if-absent, on this very absence */
  assert_int_equal(read_ctx(acc, &after), 3);
  /* A context is 16 bytes, nothing else. */
  struct paxos_op op;
  uint8_t shortc[PAXOS_CONTEXT_LEN - 1] = {0};
  assert_int_equal(
      paxos_op_init(&op, PAXOS_IF_MATCH,
                    (struct paxos_value){true, shortc, sizeof shortc},
                    val(&one), ids, NACC),
      CHORUS_EINVAL);
  assert_int_equal(
      paxos_op_init(&op, PAXOS_DELETE_IF_MATCH, ABSENT, ABSENT, ids, NACC),
      CHORUS_EINVAL);
  uint8_t enc[PAXOS_CONTEXT_LEN];
  paxos_context_encode(B(0x0102030405060708u, 9), enc);
  assert_int_equal(enc[0], 1);
  assert_int_equal(enc[15], 9);
  assert_true(paxos_context_decode(enc, sizeof enc, &cx));
  assert_int_equal(paxos_ballot_cmp(cx, B(0x0102030405060708u, 9)), 0);
  assert_false(paxos_context_decode(enc, sizeof enc - 1, &cx));
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_free(&acc[i]);
}

/* ------------------------------------------------------------------------
 * Locks and fencing (paxos.h, LOCKS AND FENCING)
 * ------------------------------------------------------------------------ */

/* lock_op: one lock operation at time @now (ms) run to its end; its
 * outcome, and the record it found (or chose, when applied) in *@l. */
static uint8_t lock_op(struct paxos_acceptor *acc, uint8_t cond, uint64_t now,
                       uint64_t token, const char *holder, uint8_t *refusal,
                       struct paxos_lock *l, uint8_t *rec, size_t *rlen) {
  struct paxos_lock_args a = {.now = now,
                              .ttl = 1000,
                              .skew = 500,
                              .token = token,
                              .holder = (const uint8_t *)holder,
                              .holder_len = holder ? strlen(holder) : 0};
  struct paxos_op op;
  assert_int_equal(paxos_op_init_lock(&op, cond, &a, ABSENT, ids, NACC),
                   CHORUS_OK);
  run_op(acc, &op, 7);
  uint8_t out = op.outcome;
  *refusal = op.refusal;
  struct paxos_value v = out == PAXOS_APPLIED ? op.commit.value : op.found;
  assert_true(v.len <= 512);
  memcpy(rec, v.bytes, v.len);
  *rlen = v.len;
  assert_int_equal(
      paxos_lock_decode((struct paxos_value){v.present, rec, v.len}, l),
      CHORUS_OK);
  paxos_op_free(&op);
  return out;
}

static void locks_and_tokens(void **state) {
  (void)state;
  struct paxos_acceptor acc[NACC];
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_init(&acc[i]);
  uint8_t why, rec[512];
  size_t rlen;
  struct paxos_lock l;
  /* A free lock: token 1, until now + ttl. */
  assert_int_equal(
      lock_op(acc, PAXOS_LOCK_ACQUIRE, 10000, 0, "A", &why, &l, rec, &rlen),
      PAXOS_APPLIED);
  assert_true(l.held);
  assert_int_equal(l.token, 1);
  assert_int_equal(l.expires, 11000);
  assert_memory_equal(l.holder, "A", 1);
  /* Held: B is refused while the lease, then the allowance, runs. */
  assert_int_equal(
      lock_op(acc, PAXOS_LOCK_ACQUIRE, 10999, 0, "B", &why, &l, rec, &rlen),
      PAXOS_NOT_APPLIED);
  assert_int_equal(why, PAXOS_REFUSED_HELD);
  assert_int_equal(
      lock_op(acc, PAXOS_LOCK_ACQUIRE, 11499, 0, "B", &why, &l, rec, &rlen),
      PAXOS_NOT_APPLIED);
  assert_int_equal(why, PAXOS_REFUSED_HELD);
  /* A renews at its token while live; a stale token is refused. */
  assert_int_equal(
      lock_op(acc, PAXOS_LOCK_RENEW, 10500, 1, NULL, &why, &l, rec, &rlen),
      PAXOS_APPLIED);
  assert_int_equal(l.expires, 11500);
  assert_int_equal(
      lock_op(acc, PAXOS_LOCK_RENEW, 10600, 2, NULL, &why, &l, rec, &rlen),
      PAXOS_NOT_APPLIED);
  assert_int_equal(why, PAXOS_REFUSED_TOKEN);
  /* Expired (past expires, within the allowance): no renewal, and no new
   * holder either; past the allowance B takes it at token 2. */
  assert_int_equal(
      lock_op(acc, PAXOS_LOCK_RENEW, 11600, 1, NULL, &why, &l, rec, &rlen),
      PAXOS_NOT_APPLIED);
  assert_int_equal(why, PAXOS_REFUSED_EXPIRED);
  assert_int_equal(
      lock_op(acc, PAXOS_LOCK_ACQUIRE, 11999, 0, "B", &why, &l, rec, &rlen),
      PAXOS_NOT_APPLIED);
  assert_int_equal(
      lock_op(acc, PAXOS_LOCK_ACQUIRE, 12000, 0, "B", &why, &l, rec, &rlen),
      PAXOS_APPLIED);
  assert_int_equal(l.token, 2);
  /* A's release at its stale token is refused; B's frees it, keeping the
   * token, so the next acquire takes 3 (tokens never repeat). */
  assert_int_equal(
      lock_op(acc, PAXOS_LOCK_RELEASE, 12100, 1, NULL, &why, &l, rec, &rlen),
      PAXOS_NOT_APPLIED);
  assert_int_equal(why, PAXOS_REFUSED_TOKEN);
  assert_int_equal(
      lock_op(acc, PAXOS_LOCK_RELEASE, 12100, 2, NULL, &why, &l, rec, &rlen),
      PAXOS_APPLIED);
  assert_false(l.held);
  assert_int_equal(l.token, 2);
  assert_int_equal(
      lock_op(acc, PAXOS_LOCK_RELEASE, 12100, 2, NULL, &why, &l, rec, &rlen),
      PAXOS_NOT_APPLIED);
  uint64_t last = 2;
  for (uint64_t t = 0; t < 20; t++) {
    /* Alternate a release with an expiry: tokens strictly increase. */
    assert_int_equal(lock_op(acc, PAXOS_LOCK_ACQUIRE, 13000 + t * 5000, 0, "C",
                             &why, &l, rec, &rlen),
                     PAXOS_APPLIED);
    assert_int_equal(l.token, last + 1);
    last = l.token;
    if (t % 2 == 0)
      assert_int_equal(lock_op(acc, PAXOS_LOCK_RELEASE, 13001 + t * 5000, last,
                               NULL, &why, &l, rec, &rlen),
                       PAXOS_APPLIED);
  }
  /* Damaged records and bad arguments. */
  struct paxos_lock d;
  assert_int_equal(
      paxos_lock_decode((struct paxos_value){true, rec, rlen - 1}, &d),
      CHORUS_EMALFORMED);
  assert_int_equal(paxos_lock_decode((struct paxos_value){true, rec, 3}, &d),
                   CHORUS_EMALFORMED);
  assert_true(paxos_is_record(rec, rlen));
  struct paxos_op op;
  struct paxos_lock_args bad = {.fence_len = 0};
  assert_int_equal(
      paxos_op_init_lock(&op, PAXOS_FENCED_SET, &bad, ABSENT, ids, NACC),
      CHORUS_EINVAL);
  assert_int_equal(
      paxos_op_init_lock(&op, PAXOS_IF_ABSENT, &bad, ABSENT, ids, NACC),
      CHORUS_EINVAL);
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_free(&acc[i]);
}

static uint8_t fenced_op(struct paxos_acceptor *acc, const char *name,
                         uint64_t token, int64_t v, struct paxos_op *op) {
  struct paxos_lock_args a = {.token = token,
                              .fence = (const uint8_t *)name,
                              .fence_len = strlen(name)};
  assert_int_equal(
      paxos_op_init_lock(op, PAXOS_FENCED_SET, &a, val(&v), ids, NACC),
      CHORUS_OK);
  run_op(acc, op, 8);
  return op->outcome;
}

static int64_t serial_value(struct paxos_acceptor *acc) {
  struct paxos_op op;
  assert_int_equal(paxos_op_init(&op, PAXOS_READ, ABSENT, ABSENT, ids, NACC),
                   CHORUS_OK);
  run_op(acc, &op, 9);
  struct paxos_value v;
  bool fenced;
  assert_int_equal(paxos_fenced_value(op.found, &v, &fenced), CHORUS_OK);
  assert_true(fenced);
  int64_t x = as_int(v);
  paxos_op_free(&op);
  return x;
}

static void fenced_writes(void **state) {
  (void)state;
  struct paxos_acceptor acc[NACC];
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_init(&acc[i]);
  struct paxos_op op;
  /* A plain CAS value first: the first fenced write takes it over. */
  int64_t zero = 0;
  assert_int_equal(paxos_op_init(&op, PAXOS_SET, ABSENT, val(&zero), ids, NACC),
                   CHORUS_OK);
  run_op(acc, &op, 1);
  paxos_op_free(&op);
  assert_int_equal(fenced_op(acc, "L", 5, 50, &op), PAXOS_APPLIED);
  paxos_op_free(&op);
  assert_int_equal(serial_value(acc), 50);
  /* Equal is fine, below is refused with the highest named, and nothing
   * changes. */
  assert_int_equal(fenced_op(acc, "L", 5, 51, &op), PAXOS_APPLIED);
  paxos_op_free(&op);
  assert_int_equal(fenced_op(acc, "L", 4, 40, &op), PAXOS_NOT_APPLIED);
  assert_int_equal(op.refusal, PAXOS_REFUSED_FENCED);
  assert_int_equal(op.fence_seen, 5);
  paxos_op_free(&op);
  assert_int_equal(serial_value(acc), 51);
  /* Another lock's fence is its own. */
  assert_int_equal(fenced_op(acc, "M", 1, 60, &op), PAXOS_APPLIED);
  paxos_op_free(&op);
  assert_int_equal(fenced_op(acc, "L", 7, 70, &op), PAXOS_APPLIED);
  paxos_op_free(&op);
  assert_int_equal(fenced_op(acc, "M", 0, 1, &op), PAXOS_NOT_APPLIED);
  assert_int_equal(op.fence_seen, 1);
  paxos_op_free(&op);
  assert_int_equal(serial_value(acc), 70);
  /* A plain update would drop the fences: refused. */
  int64_t one = 1;
  assert_int_equal(paxos_op_init(&op, PAXOS_SET, ABSENT, val(&one), ids, NACC),
                   CHORUS_OK);
  run_op(acc, &op, 1);
  assert_int_equal(op.outcome, PAXOS_NOT_APPLIED);
  assert_int_equal(op.refusal, PAXOS_REFUSED_NOT_FENCED);
  paxos_op_free(&op);
  assert_int_equal(serial_value(acc), 70);
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_free(&acc[i]);
}

/* A proposal accepted by one replica only, its proposer gone: a later
 * read (whose quorum includes that replica) finishes and commits it; a
 * read whose quorum misses it sees the old value, which is linearizable
 * since the write never answered. */
static void unfinished_proposal_is_finished(void **state) {
  (void)state;
  struct paxos_acceptor acc[NACC];
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_init(&acc[i]);
  int64_t nine = 9;
  struct paxos_op w;
  assert_int_equal(paxos_op_init(&w, PAXOS_SET, ABSENT, val(&nine), ids, NACC),
                   CHORUS_OK);
  assert_int_equal(paxos_op_restart(&w, B(++clock_now, 1)), CHORUS_OK);
  struct paxos_msg m;
  assert_true(paxos_op_outbox(&w, &m));
  deliver_all(acc, &w, &m, 0x1f);
  assert_int_equal(w.phase, PAXOS_PROPOSING);
  assert_true(paxos_op_outbox(&w, &m));
  deliver_all(acc, &w, &m, 0x01); /* only replica 0 hears the proposal */
  assert_int_equal(w.phase, PAXOS_PROPOSING);
  /* A read through replicas 2, 3, 4: nothing there. */
  struct paxos_op r;
  assert_int_equal(paxos_op_init(&r, PAXOS_READ, ABSENT, ABSENT, ids, NACC),
                   CHORUS_OK);
  assert_int_equal(paxos_op_restart(&r, B(++clock_now, 2)), CHORUS_OK);
  assert_true(paxos_op_outbox(&r, &m));
  deliver_all(acc, &r, &m, 0x1c);
  assert_int_equal(r.phase, PAXOS_DONE);
  assert_false(r.found.present);
  paxos_op_free(&r);
  /* A read through all: replica 0's acceptance is the highest above any
   * commit; the read finishes it, then reads it. */
  assert_int_equal(paxos_op_init(&r, PAXOS_READ, ABSENT, ABSENT, ids, NACC),
                   CHORUS_OK);
  run_op(acc, &r, 2);
  assert_int_equal(as_int(r.found), 9);
  assert_true(r.rounds >= 2);
  paxos_op_free(&r);
  /* The writer's next round finds its value committed above its own
   * proposal: it cannot tell whether it applied (it did, here). */
  clock_now += 10;
  assert_int_equal(paxos_op_restart(&w, B(++clock_now, 1)), CHORUS_OK);
  while (paxos_op_outbox(&w, &m))
    deliver_all(acc, &w, &m, 0x1f);
  assert_int_equal(w.phase, PAXOS_DONE);
  assert_int_equal(w.outcome, PAXOS_UNKNOWN);
  paxos_op_free(&w);
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_free(&acc[i]);
}

/* ------------------------------------------------------------------------
 * The swarm (tests 4 and 5)
 * ------------------------------------------------------------------------ */

static uint64_t rs;
static uint64_t rnd(void) {
  rs ^= rs >> 12;
  rs ^= rs << 25;
  rs ^= rs >> 27;
  return rs * 0x2545f4914f6cdd1du;
}
static uint64_t below(uint64_t n) {
  return rnd() % n;
}

#define CLIENTS 4
#define OPS_PER_CLIENT 12
#define MAX_ROUNDS 12
#define TIMEOUT 40
#define VMAX 48 /* the largest value in flight: a lock record */

struct msg {
  bool to_acceptor;
  int acceptor; /* index */
  int client;
  struct paxos_msg m; /* to an acceptor; value owned (copied bytes) */
  uint8_t vbuf[VMAX]; /* the value's bytes */
  /* to a client: an answer */
  bool is_promise;
  struct paxos_ballot round;
  struct paxos_promise p; /* values point into pbuf */
  uint8_t pbuf[2][VMAX];
  bool ok;
  struct paxos_ballot promised;
};

struct client {
  struct paxos_op op;
  bool busy, gave_up;
  uint64_t call, last_progress, restart_at;
  int done;
  uint8_t cond;
  int64_t expected, update;
  /* The lock swarm: this client's clock offset (ticks), and the token it
   * believes it holds (0: none) until when. */
  uint64_t offset, held_token, held_until;
  /* If-match: the value this client last learnt and its context (valid
   * once @seen; before, the never-written key, absent at {0, 0}). */
  bool seen;
  int64_t seen_val;
  struct paxos_ballot seen_ctx;
};

/* The lock swarm: every lock operation, to judge at the end. */
struct lock_rec {
  uint8_t cond; /* PAXOS_LOCK_* */
  uint8_t outcome;
  uint64_t token; /* ACQUIRE applied: the new token; else the argument */
  uint64_t call, ret;
};
#define LOCK_TTL 30
#define LOCK_SKEW 10 /* the allowance; offsets are within 0..LOCK_SKEW-2 */

struct world {
  struct paxos_acceptor acc[NACC];
  uint64_t down_until[NACC];
  struct client c[CLIENTS];
  struct msg *bag;
  size_t nbag, capbag;
  struct lin_op hist[CLIENTS * OPS_PER_CLIENT * 2];
  size_t nhist;
  uint64_t now;
  int64_t next_value;
  bool bug;       /* accept below the promise */
  bool transfers; /* join states between replicas at random */
  uint64_t joins;
  bool locks;    /* the lock swarm: lock operations on one lock */
  uint64_t skew; /* the allowance the lock swarm's ops use */
  struct lock_rec lrec[CLIENTS * OPS_PER_CLIENT];
  size_t nlrec;
};

static void bag_add(struct world *w, const struct msg *m) {
  if (w->nbag == w->capbag) {
    w->capbag = w->capbag ? 2 * w->capbag : 64;
    w->bag = realloc(w->bag, w->capbag * sizeof *w->bag);
    assert_non_null(w->bag);
  }
  w->bag[w->nbag++] = *m;
}

static void broadcast(struct world *w, int client, const struct paxos_msg *pm) {
  for (int i = 0; i < NACC; i++) {
    struct msg m = {
        .to_acceptor = true, .acceptor = i, .client = client, .m = *pm};
    if (pm->value.present) {
      assert_true(pm->value.len <= VMAX);
      memcpy(m.vbuf, pm->value.bytes, pm->value.len);
      m.m.value.bytes = NULL; /* fixed up at delivery (the bag moves) */
    }
    bag_add(w, &m);
  }
}

static void flush(struct world *w, int client) {
  struct paxos_op *op = &w->c[client].op;
  struct paxos_msg m;
  while (paxos_op_outbox(op, &m))
    broadcast(w, client, &m);
  if (paxos_op_commit_due(op, &m))
    broadcast(w, client, &m);
}

static void record_lock(struct world *w, struct client *c) {
  const struct paxos_op *op = &c->op;
  struct lock_rec r = {.cond = c->cond,
                       .outcome = op->outcome,
                       .token = op->args.token,
                       .call = c->call,
                       .ret = w->now};
  if (c->gave_up && op->outcome == PAXOS_NOT_APPLIED)
    return;
  if (c->cond == PAXOS_LOCK_ACQUIRE && op->outcome == PAXOS_APPLIED) {
    struct paxos_lock l;
    assert_int_equal(paxos_lock_decode(op->commit.value, &l), CHORUS_OK);
    assert_true(l.held);
    r.token = l.token;
    /* The holder counts its lease from its call, as a careful client. */
    c->held_token = l.token;
    c->held_until = c->call + LOCK_TTL;
  } else if (c->cond == PAXOS_LOCK_RENEW && op->outcome == PAXOS_APPLIED) {
    c->held_until = c->call + LOCK_TTL;
  } else if (c->cond != PAXOS_READ) {
    c->held_token = 0; /* released, refused or unknown: let it go */
  }
  if (c->cond != PAXOS_READ)
    w->lrec[w->nlrec++] = r;
}

static void record(struct world *w, struct client *c) {
  const struct paxos_op *op = &c->op;
  if (w->locks) {
    record_lock(w, c);
    return;
  }
  if (c->gave_up && op->outcome == PAXOS_NOT_APPLIED)
    return; /* nothing of it exists: no effect, no result */
  struct lin_op h = {.call = c->call,
                     .ret = op->outcome == PAXOS_UNKNOWN ? LIN_PENDING : w->now,
                     .client = (uint32_t)(c - w->c)};
  switch (c->cond) {
  case PAXOS_READ:
    h.kind = LIN_READ;
    h.out = as_int(op->found);
    break;
  case PAXOS_SET:
    h.kind = LIN_WRITE;
    h.in[0] = c->update;
    break;
  case PAXOS_IF_ABSENT:
    h.kind = LIN_CAS;
    h.in[0] = LIN_ABSENT;
    h.in[1] = c->update;
    h.out = op->outcome == PAXOS_APPLIED;
    break;
  case PAXOS_IF_VALUE:
  case PAXOS_DELETE_IF_VALUE:
  case PAXOS_IF_MATCH:
  case PAXOS_DELETE_IF_MATCH:
    /* An if-match is judged as an if-value of the value its context came
     * with: applied, that version was current, so was its value. */
    h.kind = LIN_CAS;
    h.in[0] = c->expected;
    h.in[1] = c->cond == PAXOS_IF_VALUE || c->cond == PAXOS_IF_MATCH
                  ? c->update
                  : LIN_ABSENT;
    h.out = op->outcome == PAXOS_APPLIED;
    break;
  }
  if (op->outcome != PAXOS_UNKNOWN) {
    c->seen = true;
    c->seen_ctx = paxos_op_context(op);
    bool del =
        c->cond == PAXOS_DELETE_IF_VALUE || c->cond == PAXOS_DELETE_IF_MATCH;
    c->seen_val = op->outcome != PAXOS_APPLIED ? as_int(op->found)
                  : del                        ? LIN_ABSENT
                                               : c->update;
  }
  /* A refused if-match is no refused if-value: the value may be equal at
   * another version (ABA, or a repair's new ballot). Only its read counts. */
  bool match = c->cond == PAXOS_IF_MATCH || c->cond == PAXOS_DELETE_IF_MATCH;
  if (!(match && op->outcome == PAXOS_NOT_APPLIED))
    w->hist[w->nhist++] = h;
  /* A failed condition also says what it found: judged as a read. */
  if (c->cond != PAXOS_READ && op->outcome == PAXOS_NOT_APPLIED) {
    struct lin_op r = h;
    r.kind = LIN_READ;
    r.out = as_int(op->found);
    w->hist[w->nhist++] = r;
  }
}

static void start_lock_op(struct world *w, int i) {
  struct client *c = &w->c[i];
  if (c->held_token != 0 && w->now >= c->held_until)
    c->held_token = 0; /* its lease is over, by its own count */
  uint64_t pick = below(10);
  c->cond = c->held_token == 0 ? (pick < 8 ? PAXOS_LOCK_ACQUIRE : PAXOS_READ)
            : pick < 5         ? PAXOS_LOCK_RENEW
                               : PAXOS_LOCK_RELEASE;
  const struct paxos_lock_args a = {.now = w->now + c->offset,
                                    .ttl = LOCK_TTL,
                                    .skew = w->skew,
                                    .token = c->held_token,
                                    .holder = (const uint8_t *)"h",
                                    .holder_len = 1};
  if (c->cond == PAXOS_READ)
    assert_int_equal(
        paxos_op_init(&c->op, PAXOS_READ, ABSENT, ABSENT, ids, NACC),
        CHORUS_OK);
  else
    assert_int_equal(paxos_op_init_lock(&c->op, c->cond, &a, ABSENT, ids, NACC),
                     CHORUS_OK);
  c->busy = true;
  c->gave_up = false;
  c->call = w->now;
  c->restart_at = w->now;
}

static void start_op(struct world *w, int i) {
  struct client *c = &w->c[i];
  if (w->locks) {
    start_lock_op(w, i);
    return;
  }
  c->cond = (uint8_t)below(7);
  c->update = ++w->next_value;
  /* An expected value that is often right: the last value written. */
  c->expected = below(3) ? w->next_value - 1 - (int64_t)below(2) : 999;
  int64_t e = c->expected, u = c->update;
  struct paxos_value ev = {true, (const uint8_t *)&e, sizeof e};
  struct paxos_value uv = {true, (const uint8_t *)&u, sizeof u};
  uint8_t ctx[PAXOS_CONTEXT_LEN];
  if (c->cond == PAXOS_IF_MATCH || c->cond == PAXOS_DELETE_IF_MATCH) {
    /* The version this client last learnt, current or stale by now. */
    if (!c->seen) {
      c->seen_val = LIN_ABSENT;
      c->seen_ctx = (struct paxos_ballot){0};
    }
    c->expected = c->seen_val;
    paxos_context_encode(c->seen_ctx, ctx);
    ev = (struct paxos_value){true, ctx, sizeof ctx};
  }
  assert_int_equal(paxos_op_init(&c->op, c->cond, ev, uv, ids, NACC),
                   CHORUS_OK);
  c->busy = true;
  c->gave_up = false;
  c->call = w->now;
  c->restart_at = w->now;
}

static void client_step(struct world *w, int i) {
  struct client *c = &w->c[i];
  if (!c->busy) {
    if (c->done < OPS_PER_CLIENT && below(4) == 0)
      start_op(w, i);
    return;
  }
  struct paxos_op *op = &c->op;
  bool stalled =
      (op->phase == PAXOS_PREPARING || op->phase == PAXOS_PROPOSING ||
       op->phase == PAXOS_REPAIRING) &&
      w->now - c->last_progress > TIMEOUT;
  if (op->phase == 0 || op->phase == PAXOS_RESTART || stalled) {
    if (op->phase != 0 && w->now < c->restart_at)
      return;
    if (op->rounds >= MAX_ROUNDS) {
      paxos_op_give_up(op);
      c->gave_up = true;
    } else {
      uint64_t t = op->highest.time > w->now ? op->highest.time : w->now;
      assert_int_equal(paxos_op_restart(op, B(t + 1, (uint64_t)i + 1)),
                       CHORUS_OK);
      c->last_progress = w->now;
      /* Randomized backoff before the next restart, growing. */
      c->restart_at =
          w->now + 1 + below(8u << (op->rounds < 4 ? op->rounds : 4));
      flush(w, i);
    }
  }
  if (op->phase == PAXOS_DONE) {
    flush(w, i); /* the commit */
    record(w, c);
    paxos_op_free(op);
    c->busy = false;
    c->done++;
  }
}

static void acceptor_gets(struct world *w, struct msg *m) {
  struct paxos_acceptor *a = &w->acc[m->acceptor];
  if (m->m.value.present)
    m->m.value.bytes = m->vbuf;
  struct msg r = {.to_acceptor = false,
                  .acceptor = m->acceptor,
                  .client = m->client,
                  .round = m->m.ballot};
  if (m->m.type == PAXOS_MSG_PREPARE) {
    paxos_prepare(a, m->m.ballot, &r.p);
    r.is_promise = true;
    assert_true(r.p.accepted.len <= VMAX && r.p.committed.len <= VMAX);
    if (r.p.accepted.present)
      memcpy(r.pbuf[0], r.p.accepted.bytes, r.p.accepted.len);
    if (r.p.committed.present)
      memcpy(r.pbuf[1], r.p.committed.bytes, r.p.committed.len);
  } else if (m->m.type == PAXOS_MSG_PROPOSE) {
    if (w->bug && !(m->m.ballot.time & 1)) {
      /* PLANTED BUG: even ballots are accepted below the promise. */
      struct paxos_ballot keep = a->promised;
      a->promised = (struct paxos_ballot){0};
      assert_int_equal(
          paxos_propose(a, m->m.ballot, m->m.value, &r.ok, &r.promised),
          CHORUS_OK);
      if (paxos_ballot_cmp(keep, a->promised) > 0)
        a->promised = keep;
    } else {
      assert_int_equal(
          paxos_propose(a, m->m.ballot, m->m.value, &r.ok, &r.promised),
          CHORUS_OK);
    }
  } else {
    assert_int_equal(paxos_commit(a, m->m.ballot, m->m.value), CHORUS_OK);
    return;
  }
  bag_add(w, &r);
}

static void client_gets(struct world *w, struct msg *m) {
  struct client *c = &w->c[m->client];
  if (!c->busy)
    return;
  int rc;
  if (m->is_promise) {
    /* The values as the acceptor had them, from the copies taken. */
    if (m->p.accepted.present)
      m->p.accepted.bytes = m->pbuf[0];
    if (m->p.committed.present)
      m->p.committed.bytes = m->pbuf[1];
    rc = paxos_op_on_promise(&c->op, ids[m->acceptor], m->round, &m->p);
  } else {
    rc = paxos_op_on_accept(&c->op, ids[m->acceptor], m->round, m->ok,
                            m->promised);
  }
  assert_int_equal(rc, CHORUS_OK);
  c->last_progress = w->now;
  flush(w, m->client);
}

/* run_seed: one swarm run; the checker's verdict. */
static uint64_t joins_total;

static void run_world(struct world *w);
static uint64_t seeds_to_run(void);

static enum lin_verdict run_seed(uint64_t seed, bool bug, bool transfers,
                                 size_t *ops, size_t *unknown, char *why,
                                 size_t cap) {
  struct world *w = calloc(1, sizeof *w);
  assert_non_null(w);
  w->bug = bug;
  w->transfers = transfers;
  rs = seed * 0x9e3779b97f4a7c15u + 1;
  run_world(w);
  struct lin_result res;
  lin_check(&lin_cas_register, w->hist, w->nhist, 2000000, &res);
  *ops = w->nhist;
  *unknown = 0;
  for (size_t i = 0; i < w->nhist; i++)
    *unknown += w->hist[i].ret == LIN_PENDING;
  snprintf(why, cap, "%s", res.message);
  joins_total += w->joins;
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_free(&w->acc[i]);
  free(w->bag);
  free(w);
  return res.verdict;
}

/* run_world: the swarm until every client did its operations. */
static void run_world(struct world *w) {
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_init(&w->acc[i]);
  for (w->now = 1; w->now < 200000; w->now++) {
    bool all_done = true;
    for (int i = 0; i < CLIENTS; i++) {
      client_step(w, i);
      all_done &= w->c[i].done == OPS_PER_CLIENT;
    }
    if (all_done)
      break;
    /* A replica pauses now and then (a crash and restart: its state is
     * durable, what was sent to it meanwhile is lost). */
    if (below(500) == 0)
      w->down_until[below(NACC)] = w->now + 20 + below(60);
    /* One replica's state joined into another's, as streaming or
     * anti-entropy will carry it (paxos_acceptor_join). */
    if (w->transfers && below(50) == 0) {
      size_t from = (size_t)below(NACC), to = (size_t)below(NACC);
      assert_int_equal(paxos_acceptor_join(&w->acc[to], &w->acc[from]),
                       CHORUS_OK);
      w->joins++;
    }
    for (int k = 0; k < 3 && w->nbag > 0; k++) {
      size_t j = (size_t)below(w->nbag);
      struct msg m = w->bag[j];
      w->bag[j] = w->bag[--w->nbag];
      uint64_t roll = below(100);
      if (roll < 10)
        continue; /* lost */
      if (roll < 15)
        bag_add(w, &m); /* delivered twice: once later */
      if (w->down_until[m.acceptor] > w->now)
        continue; /* to or from a paused replica */
      if (m.to_acceptor)
        acceptor_gets(w, &m);
      else
        client_gets(w, &m);
    }
  }
  for (int i = 0; i < CLIENTS; i++)
    assert_int_equal(w->c[i].done, OPS_PER_CLIENT);
}

/* lock_seed: one lock swarm run (clients' clocks 0..@spread-1 ticks
 * apart, allowance @skew); NULL when safe, else what broke (in @why):
 *   - two applied acquisitions with one token;
 *   - an acquisition that completed before another began, with a token
 *     not below the other's (tokens grow in real time);
 *   - two holders whose leases overlap: consecutive applied acquisitions
 *     a, b (by token) where a was never released (no release of its
 *     token applied or unknown) and b began before a's lease, counted
 *     from a's call (or its last renewal's), was over. */
static const char *lock_seed(uint64_t seed, uint64_t skew, uint64_t spread,
                             size_t *nacq, char *why, size_t cap) {
  struct world *w = calloc(1, sizeof *w);
  assert_non_null(w);
  w->locks = true;
  w->skew = skew;
  rs = seed * 0x9e3779b97f4a7c15u + 7;
  for (int i = 0; i < CLIENTS; i++)
    w->c[i].offset = below(spread);
  run_world(w);
  const char *bad = NULL;
  struct lock_rec *acq[CLIENTS * OPS_PER_CLIENT];
  size_t n = 0;
  for (size_t i = 0; i < w->nlrec; i++)
    if (w->lrec[i].cond == PAXOS_LOCK_ACQUIRE &&
        w->lrec[i].outcome == PAXOS_APPLIED)
      acq[n++] = &w->lrec[i];
  *nacq = n;
  for (size_t i = 0; i < n && bad == NULL; i++)
    for (size_t j = 0; j < n && bad == NULL; j++) {
      const struct lock_rec *a = acq[i], *b = acq[j];
      if (i != j && a->token == b->token) {
        bad = "two acquisitions with one token";
      } else if (a->ret < b->call && a->token >= b->token) {
        bad = "a later acquisition got a token not above an earlier one's";
      } else if (b->token == a->token + 1) {
        /* What a's holder believed: held from its call until its lease,
         * counted from its call or its last applied renewal, ran out, or
         * until it let go (a release, applied or unknown: it then acts
         * no more). An unknown renewal it does not count on either. */
        uint64_t release_call = UINT64_MAX, lease_from = a->call;
        for (size_t k = 0; k < w->nlrec; k++) {
          const struct lock_rec *r = &w->lrec[k];
          if (r->token != a->token || r->outcome == PAXOS_NOT_APPLIED)
            continue;
          if (r->cond == PAXOS_LOCK_RELEASE && r->call < release_call)
            release_call = r->call;
          if (r->cond == PAXOS_LOCK_RENEW && r->outcome == PAXOS_APPLIED &&
              r->call > lease_from)
            lease_from = r->call;
        }
        uint64_t until = lease_from + LOCK_TTL;
        if (release_call < until)
          until = release_call;
        /* b's holder believes it holds once the answer is in. */
        if (b->ret < until)
          bad = "two holders' leases overlap";
      }
      if (bad != NULL)
        snprintf(why, cap,
                 "seed %" PRIu64 ": %s: token %" PRIu64 " [%" PRIu64
                 ", %" PRIu64 "], token %" PRIu64 " [%" PRIu64 ", %" PRIu64 "]",
                 seed, bad, a->token, a->call, a->ret, b->token, b->call,
                 b->ret);
    }
  for (int i = 0; i < NACC; i++)
    paxos_acceptor_free(&w->acc[i]);
  free(w->bag);
  free(w);
  return bad;
}

/* The lock swarm on the hostile network: tokens grow, holders never
 * overlap when the allowance covers the clocks' spread; with no
 * allowance and clocks 3 allowances apart, two holders overlap on some
 * seeds (the check can fail). */
static void lock_swarm_is_safe(void **state) {
  (void)state;
  uint64_t seeds = seeds_to_run();
  size_t total = 0, overlaps = 0;
  char why[256];
  for (uint64_t seed = 1; seed <= seeds; seed++) {
    size_t nacq;
    if (lock_seed(seed, LOCK_SKEW, LOCK_SKEW - 1, &nacq, why, sizeof why) !=
        NULL)
      fail_msg("%s", why);
    total += nacq;
  }
  for (uint64_t seed = 1; seed <= seeds; seed++) {
    size_t nacq;
    overlaps +=
        lock_seed(seed, 0, 3 * LOCK_SKEW, &nacq, why, sizeof why) != NULL;
  }
  printf("# %" PRIu64 " seeds, %zu acquisitions: tokens grow, no overlap; "
         "with clocks 30 ticks apart and no allowance, %zu seeds "
         "overlap\n",
         seeds, total, overlaps);
  assert_true(total > seeds);
  assert_true(overlaps > 0);
}

static uint64_t seeds_to_run(void) {
  const char *e = getenv("CHORUS_PAXOS_SEEDS");
  return e != NULL && strtoull(e, NULL, 10) > 0 ? strtoull(e, NULL, 10) : SEEDS;
}

static void swarm_is_linearizable(void **state) {
  (void)state;
  size_t total = 0, unknown_total = 0;
  uint64_t seeds = seeds_to_run();
  for (uint64_t seed = 1; seed <= seeds; seed++) {
    size_t ops, unknown;
    char why[256];
    enum lin_verdict v =
        run_seed(seed, false, false, &ops, &unknown, why, sizeof why);
    if (v != LIN_OK)
      fail_msg("seed %" PRIu64 ": %s", seed, why);
    total += ops;
    unknown_total += unknown;
  }
  printf("# %" PRIu64 " seeds, %zu operations judged linearizable (%zu with "
         "an unknown outcome, taken as pending)\n",
         seeds, total, unknown_total);
}

/* States copied between replicas at random (a join every ~50 steps) keep
 * every history linearizable: what streaming and anti-entropy will do. */
static void state_transfers_are_safe(void **state) {
  (void)state;
  size_t total = 0, unknown_total = 0;
  uint64_t seeds = seeds_to_run();
  joins_total = 0;
  for (uint64_t seed = 1; seed <= seeds; seed++) {
    size_t ops, unknown;
    char why[256];
    if (run_seed(seed, false, true, &ops, &unknown, why, sizeof why) != LIN_OK)
      fail_msg("seed %" PRIu64 " (with state transfers): %s", seed, why);
    total += ops;
    unknown_total += unknown;
  }
  printf("# %" PRIu64 " seeds with %" PRIu64 " state joins between replicas, "
         "%zu operations judged linearizable (%zu unknown)\n",
         seeds, joins_total, total, unknown_total);
  assert_true(joins_total > seeds);
}

static void planted_bug_is_caught(void **state) {
  (void)state;
  int caught = 0, seeds = SEEDS < 300 ? SEEDS : 300;
  for (uint64_t seed = 1; seed <= (uint64_t)seeds; seed++) {
    size_t ops, unknown;
    char why[256];
    if (run_seed(seed, true, false, &ops, &unknown, why, sizeof why) ==
        LIN_VIOLATION) {
      if (caught == 0)
        printf("# planted bug, seed %" PRIu64 ": %s\n", seed, why);
      caught++;
    }
  }
  printf("# planted bug (acceptance below the promise) caught on %d of %d "
         "seeds\n",
         caught, seeds);
  assert_true(caught > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(acceptor_rules),
      cmocka_unit_test(one_proposer),
      cmocka_unit_test(if_match_names_a_version),
      cmocka_unit_test(unfinished_proposal_is_finished),
      cmocka_unit_test(locks_and_tokens),
      cmocka_unit_test(fenced_writes),
      cmocka_unit_test(stored_form_and_join),
      cmocka_unit_test(swarm_is_linearizable),
      cmocka_unit_test(state_transfers_are_safe),
      cmocka_unit_test(lock_swarm_is_safe),
      cmocka_unit_test(planted_bug_is_caught),
  };
  return cmocka_run_group_tests_name("paxos", tests, NULL, NULL);
}
