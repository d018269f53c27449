/* paxos.c: single-decree Paxos per key (paxos.h says what and why). */
#include "paxos.h"

#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "paxos_int.h"

int paxos_ballot_cmp(struct paxos_ballot a, struct paxos_ballot b) {
  if (a.time != b.time)
    return a.time < b.time ? -1 : 1;
  if (a.node != b.node)
    return a.node < b.node ? -1 : 1;
  return 0;
}

bool paxos_value_equal(struct paxos_value a, struct paxos_value b) {
  if (a.present != b.present)
    return false;
  return !a.present || (a.len == b.len &&
                        (a.len == 0 || memcmp(a.bytes, b.bytes, a.len) == 0));
}

/* Owned values: bytes allocated here (at least one byte, so that an empty
 * present value has a pointer of its own). */
static void value_free(struct paxos_value *v) {
  chorus_free((void *)(uintptr_t)v->bytes); /* owned: allocated below */
  *v = (struct paxos_value){0};
}

int paxos__value_set(struct paxos_value *dst, struct paxos_value src) {
  struct paxos_value v = {.present = src.present};
  if (src.present) {
    uint8_t *b = chorus_malloc(src.len ? src.len : 1);
    if (b == NULL)
      return CHORUS_ENOMEM;
    if (src.len > 0)
      memcpy(b, src.bytes, src.len);
    v.bytes = b;
    v.len = src.len;
  }
  value_free(dst);
  *dst = v;
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * The acceptor
 * ------------------------------------------------------------------------ */

void paxos_acceptor_init(struct paxos_acceptor *a) {
  *a = (struct paxos_acceptor){0};
}

void paxos_acceptor_free(struct paxos_acceptor *a) {
  value_free(&a->accepted);
  value_free(&a->committed);
  *a = (struct paxos_acceptor){0};
}

int paxos_acceptor_copy(struct paxos_acceptor *dst,
                        const struct paxos_acceptor *src) {
  struct paxos_acceptor t = *src;
  t.accepted = t.committed = (struct paxos_value){0};
  if (paxos__value_set(&t.accepted, src->accepted) != CHORUS_OK ||
      paxos__value_set(&t.committed, src->committed) != CHORUS_OK) {
    paxos_acceptor_free(&t);
    return CHORUS_ENOMEM;
  }
  paxos_acceptor_free(dst);
  *dst = t;
  return CHORUS_OK;
}

static bool ballot_none(struct paxos_ballot b) {
  return b.time == 0 && b.node == 0;
}

/* value_cmp: an order on values (absent first, then by length, then by
 * bytes), only to break ties between two slots of the same ballot. */
static int value_cmp(struct paxos_value a, struct paxos_value b) {
  if (a.present != b.present)
    return a.present ? 1 : -1;
  if (!a.present)
    return 0;
  if (a.len != b.len)
    return a.len < b.len ? -1 : 1;
  return a.len == 0 ? 0 : memcmp(a.bytes, b.bytes, a.len);
}

/* newer: whether slot (@b, @v) wins over (@b0, @v0): the higher ballot.
 * Paxos gives a ballot one value, so equal ballots hold equal values in
 * any state a history makes; a damaged or forged state may not, and the
 * tie is broken by the value so that the join stays commutative. */
static bool newer(struct paxos_ballot b, struct paxos_value v,
                  struct paxos_ballot b0, struct paxos_value v0) {
  int c = paxos_ballot_cmp(b, b0);
  return c > 0 || (c == 0 && value_cmp(v, v0) > 0);
}

int paxos_acceptor_join(struct paxos_acceptor *dst,
                        const struct paxos_acceptor *src) {
  struct paxos_acceptor t = {0};
  if (paxos_acceptor_copy(&t, dst) != CHORUS_OK)
    return CHORUS_ENOMEM;
  if (paxos_ballot_cmp(src->promised, t.promised) > 0)
    t.promised = src->promised;
  if (newer(src->accepted_at, src->accepted, t.accepted_at, t.accepted)) {
    if (paxos__value_set(&t.accepted, src->accepted) != CHORUS_OK)
      goto nomem;
    t.accepted_at = src->accepted_at;
  }
  if (newer(src->committed_at, src->committed, t.committed_at, t.committed)) {
    if (paxos__value_set(&t.committed, src->committed) != CHORUS_OK)
      goto nomem;
    t.committed_at = src->committed_at;
  }
  if (!ballot_none(t.accepted_at) &&
      paxos_ballot_cmp(t.accepted_at, t.committed_at) <= 0) {
    value_free(&t.accepted);
    t.accepted_at = (struct paxos_ballot){0};
  }
  paxos_acceptor_free(dst);
  *dst = t;
  return CHORUS_OK;
nomem:
  paxos_acceptor_free(&t);
  return CHORUS_ENOMEM;
}

/* The stored form (paxos.h). */
size_t paxos__value_size(struct paxos_value v) {
  return 1 + 4 + (v.present ? v.len : 0);
}

size_t paxos_acceptor_encoded_size(const struct paxos_acceptor *a) {
  return 1 + 3 * 16 + paxos__value_size(a->accepted) +
         paxos__value_size(a->committed);
}

uint8_t *paxos__put_u64(uint8_t *p, uint64_t x) {
  for (int i = 7; i >= 0; i--)
    *p++ = (uint8_t)(x >> (8 * i));
  return p;
}

static uint8_t *put_ballot(uint8_t *p, struct paxos_ballot b) {
  return paxos__put_u64(paxos__put_u64(p, b.time), b.node);
}

uint8_t *paxos__put_value(uint8_t *p, struct paxos_value v) {
  size_t len = v.present ? v.len : 0;
  *p++ = v.present ? 1 : 0;
  for (int i = 3; i >= 0; i--)
    *p++ = (uint8_t)(len >> (8 * i));
  if (len > 0)
    memcpy(p, v.bytes, len);
  return p + len;
}

int paxos_acceptor_encode(const struct paxos_acceptor *a, uint8_t *buf,
                          size_t cap, size_t *len) {
  size_t need = paxos_acceptor_encoded_size(a);
  if (cap < need)
    return CHORUS_ETOOBIG;
  uint8_t *p = buf;
  *p++ = PAXOS_FORMAT_V1;
  p = put_ballot(p, a->promised);
  p = put_ballot(p, a->accepted_at);
  p = paxos__put_value(p, a->accepted);
  p = put_ballot(p, a->committed_at);
  p = paxos__put_value(p, a->committed);
  *len = (size_t)(p - buf);
  return CHORUS_OK;
}

bool paxos__get_u64(struct paxos__reader *r, uint64_t *x) {
  if (r->left < 8)
    return false;
  *x = 0;
  for (int i = 0; i < 8; i++)
    *x = *x << 8 | r->p[i];
  r->p += 8;
  r->left -= 8;
  return true;
}

static bool get_ballot(struct paxos__reader *r, struct paxos_ballot *b) {
  return paxos__get_u64(r, &b->time) && paxos__get_u64(r, &b->node);
}

/* get_value: a value borrowing from the input; its reason on failure. */
const char *paxos__get_value(struct paxos__reader *r, struct paxos_value *v) {
  if (r->left < 5)
    return "a value is cut short";
  uint8_t present = r->p[0];
  uint32_t len = (uint32_t)r->p[1] << 24 | (uint32_t)r->p[2] << 16 |
                 (uint32_t)r->p[3] << 8 | r->p[4];
  r->p += 5;
  r->left -= 5;
  if (present > 1)
    return "a value's presence is neither 0 nor 1";
  if (!present && len != 0)
    return "an absent value has bytes";
  if (len > PAXOS_MAX_VALUE)
    return "a value is over PAXOS_MAX_VALUE";
  if (len > r->left)
    return "a value's length runs past the end";
  *v = (struct paxos_value){present == 1, r->p, len};
  r->p += len;
  r->left -= len;
  return NULL;
}

int paxos_acceptor_decode(struct paxos_acceptor *out, const uint8_t *buf,
                          size_t len, char *errmsg) {
  paxos_acceptor_init(out);
  if (len < 1)
    return chorus_errf(errmsg, CHORUS_EMALFORMED, "paxos state: empty");
  if (buf[0] != PAXOS_FORMAT_V1)
    return chorus_errf(errmsg, CHORUS_EVERSION,
                       "paxos state: format %u unknown", buf[0]);
  struct paxos__reader r = {buf + 1, len - 1};
  struct paxos_acceptor t = {0};
  struct paxos_value acc = {0}, com = {0};
  const char *why = NULL;
  if (!get_ballot(&r, &t.promised) || !get_ballot(&r, &t.accepted_at))
    why = "a ballot is cut short";
  else if ((why = paxos__get_value(&r, &acc)) == NULL &&
           !get_ballot(&r, &t.committed_at))
    why = "a ballot is cut short";
  else if (why == NULL)
    why = paxos__get_value(&r, &com);
  if (why == NULL && r.left != 0)
    why = "trailing bytes";
  if (why == NULL && ballot_none(t.accepted_at) && acc.present)
    why = "a value accepted at no ballot";
  if (why == NULL && ballot_none(t.committed_at) && com.present)
    why = "a value committed at no ballot";
  if (why == NULL && !ballot_none(t.accepted_at) &&
      paxos_ballot_cmp(t.accepted_at, t.committed_at) <= 0)
    why = "an acceptance at or below the commit";
  if (why != NULL)
    return chorus_errf(errmsg, CHORUS_EMALFORMED, "paxos state: %s", why);
  if (paxos__value_set(&t.accepted, acc) != CHORUS_OK ||
      paxos__value_set(&t.committed, com) != CHORUS_OK) {
    paxos_acceptor_free(&t);
    return CHORUS_ENOMEM;
  }
  *out = t;
  return CHORUS_OK;
}

void paxos_prepare(struct paxos_acceptor *a, struct paxos_ballot b,
                   struct paxos_promise *out) {
  /* At or above: a PREPARE that arrives twice is promised twice (ballots
   * are unique per proposer and round, so an equal one is the same). */
  bool ok = paxos_ballot_cmp(b, a->promised) >= 0;
  if (ok)
    a->promised = b;
  *out = (struct paxos_promise){.ok = ok,
                                .promised = a->promised,
                                .accepted_at = a->accepted_at,
                                .accepted = a->accepted,
                                .committed_at = a->committed_at,
                                .committed = a->committed};
}

int paxos_propose(struct paxos_acceptor *a, struct paxos_ballot b,
                  struct paxos_value v, bool *accepted,
                  struct paxos_ballot *promised) {
  *accepted = false;
  /* At or below the commit it is refused too: that round is over (its
   * proposer restarts above the commit), and an acceptance is always above
   * the commit, which the stored form checks. */
  int rc = CHORUS_OK;
  if (paxos_ballot_cmp(b, a->promised) >= 0 &&
      paxos_ballot_cmp(b, a->committed_at) > 0) {
    rc = paxos__value_set(&a->accepted, v);
    if (rc == CHORUS_OK) {
      a->accepted_at = a->promised = b;
      *accepted = true;
    }
  }
  *promised = paxos_ballot_cmp(a->committed_at, a->promised) > 0
                  ? a->committed_at
                  : a->promised;
  return rc;
}

int paxos_commit(struct paxos_acceptor *a, struct paxos_ballot b,
                 struct paxos_value v) {
  if (paxos_ballot_cmp(b, a->committed_at) > 0) {
    int rc = paxos__value_set(&a->committed, v);
    if (rc != CHORUS_OK)
      return rc;
    a->committed_at = b;
  }
  /* An acceptance at or below a commit is settled: a later round must not
   * take it for unfinished work (it would propose an old value again). */
  if (!ballot_none(a->accepted_at))
    if (paxos_ballot_cmp(a->accepted_at, b) <= 0) {
      value_free(&a->accepted);
      a->accepted_at = (struct paxos_ballot){0};
    }
  return CHORUS_OK;
}

void paxos_context_encode(struct paxos_ballot b,
                          uint8_t out[PAXOS_CONTEXT_LEN]) {
  paxos__put_u64(paxos__put_u64(out, b.time), b.node);
}

bool paxos_context_decode(const uint8_t *bytes, size_t len,
                          struct paxos_ballot *b) {
  struct paxos__reader r = {bytes, len};
  struct paxos_ballot t;
  if (len != PAXOS_CONTEXT_LEN || !get_ballot(&r, &t))
    return false;
  *b = t;
  return true;
}

/* ------------------------------------------------------------------------
 * The proposer
 * ------------------------------------------------------------------------ */

int paxos_op_init(struct paxos_op *op, uint8_t cond,
                  struct paxos_value expected, struct paxos_value update,
                  const chorus_node_id *replicas, size_t n) {
  *op = (struct paxos_op){0};
  struct paxos_ballot ctx;
  if (n == 0 || n > PAXOS_MAX_REPLICAS || cond > PAXOS_COND_MAX)
    return CHORUS_EINVAL;
  if ((cond == PAXOS_IF_MATCH || cond == PAXOS_DELETE_IF_MATCH) &&
      !paxos_context_decode(expected.bytes, expected.len, &ctx))
    return CHORUS_EINVAL;
  op->cond = cond;
  if (paxos__value_set(&op->expected, expected) != CHORUS_OK ||
      paxos__value_set(&op->update, update) != CHORUS_OK) {
    paxos_op_free(op);
    return CHORUS_ENOMEM;
  }
  memcpy(op->replicas, replicas, n * sizeof *replicas);
  op->nreplicas = (uint8_t)n;
  op->quorum = (uint8_t)(n / 2 + 1);
  return CHORUS_OK;
}

static void forget_promises(struct paxos_op *op) {
  value_free(&op->max_accepted);
  value_free(&op->max_committed);
  op->max_accepted_at = op->max_committed_at = (struct paxos_ballot){0};
  op->answered = op->agreed = 0;
}

void paxos_op_free(struct paxos_op *op) {
  forget_promises(op);
  value_free(&op->expected);
  value_free(&op->update);
  value_free(&op->found);
  value_free(&op->commit.value);
  chorus_free((void *)(uintptr_t)op->args.holder); /* owned copies */
  chorus_free((void *)(uintptr_t)op->args.fence);
  *op = (struct paxos_op){0};
}

static int bytes_dup(const uint8_t **dst, const uint8_t *src, size_t len) {
  *dst = NULL;
  if (len == 0)
    return CHORUS_OK;
  uint8_t *b = chorus_malloc(len);
  if (b == NULL)
    return CHORUS_ENOMEM;
  memcpy(b, src, len);
  *dst = b;
  return CHORUS_OK;
}

int paxos_op_init_lock(struct paxos_op *op, uint8_t cond,
                       const struct paxos_lock_args *args,
                       struct paxos_value update,
                       const chorus_node_id *replicas, size_t n) {
  *op = (struct paxos_op){0};
  if (cond < PAXOS_LOCK_ACQUIRE || cond > PAXOS_COND_MAX ||
      args->holder_len > PAXOS_LOCK_MAX_HOLDER ||
      args->fence_len > PAXOS_FENCE_MAX_NAME ||
      (cond == PAXOS_FENCED_SET && args->fence_len == 0))
    return CHORUS_EINVAL;
  /* FENCED_SET keeps the value to write in @expected (unused otherwise):
   * op->update is the record computed from it, anew in every round. */
  struct paxos_value keep =
      cond == PAXOS_FENCED_SET ? update : (struct paxos_value){0};
  int rc = paxos_op_init(op, cond, keep, (struct paxos_value){0}, replicas, n);
  if (rc != CHORUS_OK)
    return rc;
  op->args = *args;
  op->args.holder = op->args.fence = NULL;
  if (bytes_dup(&op->args.holder, args->holder, args->holder_len) !=
          CHORUS_OK ||
      bytes_dup(&op->args.fence, args->fence, args->fence_len) != CHORUS_OK) {
    paxos_op_free(op);
    return CHORUS_ENOMEM;
  }
  return CHORUS_OK;
}

/* own_settled: the round of an own proposal ends without its choice: it
 * may lie with an acceptor unless every replica refused it. */
static void own_settled(struct paxos_op *op) {
  if (!op->own_in_flight)
    return;
  uint32_t all = (op->nreplicas == 32 ? 0 : (UINT32_C(1) << op->nreplicas)) - 1;
  if (op->agreed != 0 || op->answered != all)
    op->own_lurking = true;
  op->own_in_flight = false;
}

void paxos_op_give_up(struct paxos_op *op) {
  if (op->phase == PAXOS_DONE)
    return;
  own_settled(op);
  op->phase = PAXOS_DONE;
  op->outcome = op->own_lurking ? PAXOS_UNKNOWN : PAXOS_NOT_APPLIED;
  op->out.type = PAXOS_MSG_NONE;
}

int paxos_op_restart(struct paxos_op *op, struct paxos_ballot b) {
  if (op->phase == PAXOS_DONE || paxos_ballot_cmp(b, op->highest) <= 0 ||
      paxos_ballot_cmp(b, op->ballot) <= 0)
    return CHORUS_EINVAL;
  own_settled(op);
  op->repairing_own = false;
  forget_promises(op);
  op->ballot = op->highest = b;
  op->phase = PAXOS_PREPARING;
  op->out = (struct paxos_msg){.type = PAXOS_MSG_PREPARE, .ballot = b};
  op->rounds++;
  return CHORUS_OK;
}

bool paxos_op_outbox(struct paxos_op *op, struct paxos_msg *out) {
  if (op->out.type == PAXOS_MSG_NONE)
    return false;
  *out = op->out;
  op->out.type = PAXOS_MSG_NONE;
  return true;
}

bool paxos_op_commit_due(struct paxos_op *op, struct paxos_msg *out) {
  if (!op->commit_due)
    return false;
  *out = op->commit;
  op->commit_due = false;
  return true;
}

/* replica_index: @from's index, or -1 for a node that is no replica. */
static int replica_index(const struct paxos_op *op, chorus_node_id from) {
  for (uint8_t i = 0; i < op->nreplicas; i++)
    if (op->replicas[i] == from)
      return i;
  return -1;
}

static int popcount(uint32_t x) {
  int n = 0;
  for (; x != 0; x &= x - 1)
    n++;
  return n;
}

static void saw(struct paxos_op *op, struct paxos_ballot b) {
  if (paxos_ballot_cmp(b, op->highest) > 0)
    op->highest = b;
}

/* commit_at: a COMMIT of @v at the round's ballot, due once. */
static int commit_at(struct paxos_op *op, struct paxos_value v) {
  int rc = paxos__value_set(&op->commit.value, v);
  if (rc != CHORUS_OK)
    return rc;
  op->commit.type = PAXOS_MSG_COMMIT;
  op->commit.ballot = op->ballot;
  op->commit_due = true;
  return CHORUS_OK;
}

/* decide: a quorum promised: finish unfinished work, or judge the
 * condition on the current value. */
static int decide(struct paxos_op *op) {
  op->answered = op->agreed = 0;
  if (paxos_ballot_cmp(op->max_accepted_at, op->max_committed_at) > 0) {
    /* Step 2: an acceptance above every commit the quorum knows may have
     * been chosen; only its value may be proposed at this ballot. When it
     * is one of this operation's own, choosing it applies the update. */
    op->repairing_own = false;
    for (uint8_t k = 0; k < op->nown; k++)
      op->repairing_own |=
          paxos_ballot_cmp(op->own[k], op->max_accepted_at) == 0;
    op->phase = PAXOS_REPAIRING;
    op->out = (struct paxos_msg){.type = PAXOS_MSG_PROPOSE,
                                 .ballot = op->ballot,
                                 .value = op->max_accepted};
    return CHORUS_OK;
  }
  if (op->own_lurking) {
    /* An own proposal may lie with an acceptor, below what this quorum
     * shows: applied and superseded, or never to be; nobody can tell. */
    op->phase = PAXOS_DONE;
    op->outcome = PAXOS_UNKNOWN;
    return CHORUS_OK;
  }
  int rc = paxos__value_set(&op->found, op->max_committed);
  if (rc != CHORUS_OK)
    return rc;
  op->found_at = op->max_committed_at;
  bool applies;
  struct paxos_ballot ctx = {0};
  op->refusal = PAXOS_REFUSED_NONE;
  switch (op->cond) {
  case PAXOS_SET:
    applies = true;
    break;
  case PAXOS_IF_ABSENT:
    applies = !op->found.present;
    break;
  case PAXOS_IF_VALUE:
  case PAXOS_DELETE_IF_VALUE:
    applies = op->found.present && paxos_value_equal(op->found, op->expected);
    break;
  case PAXOS_IF_MATCH:
  case PAXOS_DELETE_IF_MATCH:
    /* The version, not the bytes: checked at paxos_op_init. */
    applies =
        paxos_context_decode(op->expected.bytes, op->expected.len, &ctx) &&
        paxos_ballot_cmp(ctx, op->found_at) == 0;
    break;
  case PAXOS_READ:
    applies = false;
    break;
  default: /* locks and fenced writes: the update is computed */
    rc = paxos__judge_record(op, &applies);
    if (rc != CHORUS_OK)
      return rc;
  }
  if (op->cond != PAXOS_READ && op->cond <= PAXOS_DELETE_IF_MATCH &&
      op->found.present && paxos__is_fenced(op->found)) {
    /* Whatever its condition says: applied, it would drop the key's
     * fences, and judged on the record it means nothing. */
    applies = false;
    op->refusal = PAXOS_REFUSED_NOT_FENCED;
  }
  if (!applies) {
    op->phase = PAXOS_DONE;
    op->outcome = PAXOS_NOT_APPLIED;
    return CHORUS_OK;
  }
  if (op->nown == PAXOS_MAX_OWN) {
    paxos_op_give_up(op); /* the driver bounds rounds below this */
    return CHORUS_OK;
  }
  if (op->cond == PAXOS_DELETE_IF_VALUE || op->cond == PAXOS_DELETE_IF_MATCH)
    value_free(&op->update); /* proposes "absent" */
  op->own[op->nown++] = op->ballot;
  op->own_in_flight = true;
  op->phase = PAXOS_PROPOSING;
  op->out = (struct paxos_msg){
      .type = PAXOS_MSG_PROPOSE, .ballot = op->ballot, .value = op->update};
  return CHORUS_OK;
}

struct paxos_ballot paxos_op_context(const struct paxos_op *op) {
  return op->outcome == PAXOS_APPLIED ? op->commit.ballot : op->found_at;
}

int paxos_op_on_promise(struct paxos_op *op, chorus_node_id from,
                        struct paxos_ballot round,
                        const struct paxos_promise *p) {
  int i = replica_index(op, from);
  if (op->phase != PAXOS_PREPARING || i < 0 ||
      paxos_ballot_cmp(round, op->ballot) != 0 ||
      (op->answered & (UINT32_C(1) << i)))
    return CHORUS_OK;
  op->answered |= UINT32_C(1) << i;
  saw(op, p->promised);
  saw(op, p->accepted_at);
  saw(op, p->committed_at);
  if (!p->ok) {
    op->phase = PAXOS_RESTART; /* pre-empted: a higher ballot is out */
    return CHORUS_OK;
  }
  op->agreed |= UINT32_C(1) << i;
  int rc;
  if (paxos_ballot_cmp(p->accepted_at, op->max_accepted_at) > 0) {
    if ((rc = paxos__value_set(&op->max_accepted, p->accepted)) != CHORUS_OK)
      return rc;
    op->max_accepted_at = p->accepted_at;
  }
  if (paxos_ballot_cmp(p->committed_at, op->max_committed_at) > 0) {
    if ((rc = paxos__value_set(&op->max_committed, p->committed)) != CHORUS_OK)
      return rc;
    op->max_committed_at = p->committed_at;
  }
  if (popcount(op->agreed) < op->quorum)
    return CHORUS_OK;
  return decide(op);
}

int paxos_op_on_accept(struct paxos_op *op, chorus_node_id from,
                       struct paxos_ballot round, bool accepted,
                       struct paxos_ballot promised) {
  int i = replica_index(op, from);
  if ((op->phase != PAXOS_REPAIRING && op->phase != PAXOS_PROPOSING) || i < 0 ||
      paxos_ballot_cmp(round, op->ballot) != 0 ||
      (op->answered & (UINT32_C(1) << i)))
    return CHORUS_OK;
  op->answered |= UINT32_C(1) << i;
  saw(op, promised);
  if (!accepted) {
    op->phase = PAXOS_RESTART;
    return CHORUS_OK;
  }
  op->agreed |= UINT32_C(1) << i;
  if (popcount(op->agreed) < op->quorum)
    return CHORUS_OK;
  /* Chosen. */
  if (op->phase == PAXOS_REPAIRING && !op->repairing_own) {
    int rc = commit_at(op, op->max_accepted);
    if (rc != CHORUS_OK)
      return rc;
    op->phase = PAXOS_RESTART; /* now this operation's own round */
    return CHORUS_OK;
  }
  /* Its own value: proposed now, or an earlier proposal of it finished. */
  int rc = commit_at(op, op->phase == PAXOS_REPAIRING ? op->max_accepted
                                                      : op->update);
  if (rc != CHORUS_OK)
    return rc;
  op->own_in_flight = op->own_lurking = false;
  op->outcome = PAXOS_APPLIED;
  op->phase = PAXOS_DONE;
  return CHORUS_OK;
}
