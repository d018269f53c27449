/* paxos.h: single-decree Paxos per key, the core of compare-and-set
 * (issue 23): the acceptor's state and rules, and the proposer's state
 * machine for one operation. Pure: no store, no clock, no network. The
 * replication layer will keep each key's acceptor state durable (written
 * before a promise or an acceptance is answered) and carry the messages;
 * tests/replication/test_paxos.c runs it over a lossy, reordering,
 * duplicating network with crashes and judges every history with the
 * linearizability checker (tests/lin).
 *
 * THE PROTOCOL (Lamport, "Paxos Made Simple", 2001; as Cassandra's
 * lightweight transactions run it, one instance per key, re-used: each
 * decided value is committed and the next round starts from it)
 *
 *   PREPARE(b)       an acceptor that promised nothing at or above b
 *                    promises b and answers with the value it accepted
 *                    last (ballot and value) and the value committed last;
 *                    else it refuses, naming its promise.
 *   PROPOSE(b, v)    an acceptor that promised nothing above b, and
 *                    committed nothing at or above it, accepts (b, v)
 *                    (and so promises b); else it refuses.
 *   COMMIT(b, v)     v, chosen at b, becomes the acceptor's committed value
 *                    unless it committed a later ballot; an acceptance at
 *                    or below b is done with and forgotten.
 *
 * The proposer of an operation (a read, or a compare-and-set whose
 * condition is judged on the value it finds):
 *
 *   1. PREPARE(b) to every replica, and waits for a quorum of promises.
 *   2. If some promise carries an acceptance above the latest commit among
 *      them, a proposal may have been chosen that nobody committed (its
 *      proposer died or lost its messages): it proposes that value again at
 *      b, commits it, and starts over at a higher ballot (Paxos's rule: the
 *      value of the highest-numbered acceptance in a quorum of promises is
 *      the only one b may propose).
 *   3. Otherwise the current value is the latest commit among the quorum.
 *      A read answers it (its linearization point is the promise quorum:
 *      every value chosen before it is in that quorum, committed or
 *      accepted, and step 2 finished the latter). A compare-and-set whose
 *      condition fails answers "not applied" with that value, likewise.
 *   4. Else it proposes (b, new value) and waits for a quorum of
 *      acceptances: the value is chosen, and the operation answers
 *      "applied". It then commits it to every replica (the answer does not
 *      wait: a later round that finds it accepted and not committed
 *      finishes it in step 2).
 *
 * WHETHER AN UPDATE APPLIED. A proposal of the operation's value that did
 * not reach a quorum (refused, or its answers lost) may still be chosen
 * later: an acceptor that took it keeps it, and a later round whose quorum
 * includes that acceptor, and no higher acceptance, finishes it (step 2).
 * So the next round of the same operation looks for it: when the highest
 * acceptance in its quorum is one of this operation's own proposals, it
 * finishes it itself and answers "applied" (exactly once: one value chosen
 * at one more ballot). When it is not, and the earlier proposal may lie
 * with some acceptor (one accepted it, or one never answered), the
 * operation ends "unknown" (maybe applied, as a write's timeout): judging
 * the condition again could apply the update twice, or deny an update
 * that is applied. Only a proposal every replica refused is known not to
 * exist. (Cassandra's lightweight transactions have the same hole as a
 * timeout, CASSANDRA-9328; its Paxos v2 tracks it further.)
 *
 * A refusal (a higher promise) or a timeout starts the operation over at a
 * ballot above every one it has seen, after a backoff the driver chooses
 * (randomized: two proposers that keep pre-empting each other is Paxos's
 * known livelock). Ballots are (HLC time, node id), unique per node and
 * growing; the driver supplies them (paxos_op_restart says above what).
 *
 * Messages are broadcasts: each step sends one message to every replica
 * (paxos_op_outbox); answers come back one per replica, any order, any
 * number of times (duplicates are ignored).
 *
 * THREADS: none; one operation is driven by one thread. */
#ifndef CHORUS_PAXOS_H
#define CHORUS_PAXOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus_types.h"

/* A ballot: ordered by time, then node; {0, 0} is "none". */
struct paxos_ballot {
  uint64_t time; /* the proposer's HLC (crdt.h) when it began the round */
  chorus_node_id node;
};

/* paxos_ballot_cmp: <0, 0, >0 as @a is below, equal to, above @b. */
int paxos_ballot_cmp(struct paxos_ballot a, struct paxos_ballot b);

/* A value: absent, or bytes (borrowed where a struct says so). */
struct paxos_value {
  bool present;
  const uint8_t *bytes;
  size_t len;
};

bool paxos_value_equal(struct paxos_value a, struct paxos_value b);

/* ------------------------------------------------------------------------
 * The acceptor (one key's durable state; its values are owned copies)
 * ------------------------------------------------------------------------ */

struct paxos_acceptor {
  struct paxos_ballot promised;
  struct paxos_ballot accepted_at; /* {0}: nothing accepted pending */
  struct paxos_value accepted;
  struct paxos_ballot committed_at; /* {0}: nothing committed yet */
  struct paxos_value committed;
};

void paxos_acceptor_init(struct paxos_acceptor *a);
void paxos_acceptor_free(struct paxos_acceptor *a);
/* paxos_acceptor_copy: @dst (initialised) becomes a deep copy of @src.
 * Errors: CHORUS_ENOMEM (@dst unchanged). */
int paxos_acceptor_copy(struct paxos_acceptor *dst,
                        const struct paxos_acceptor *src);

/* paxos_acceptor_join: @dst takes the higher of each part of @src: the
 * promise, the acceptance, the commit (an acceptance at or below the
 * commit is dropped, as COMMIT drops it). This is how an acceptor's state
 * may travel like any object (streaming to a new replica, anti-entropy)
 * without breaking Paxos: every acceptance and commit it brings was made
 * by some acceptor of a real round, so the one rule the proofs use still
 * holds -- a quorum of promises for ballot c shows, as accepted or
 * committed, every value chosen below c, at its ballot or a later one
 * (the highest of a slot only grows, and is only cleared by a commit
 * above it). test_paxos's swarm copies states at random and stays
 * linearizable. Commutative, associative, idempotent.
 * Errors: CHORUS_ENOMEM (@dst unchanged). */
int paxos_acceptor_join(struct paxos_acceptor *dst,
                        const struct paxos_acceptor *src);

/* The acceptor's state as stored: [format u8 = PAXOS_FORMAT_V1]
 * [promised][accepted_at][accepted][committed_at][committed], a ballot as
 * time and node (u64 BE each), a value as [present u8: 0 or 1][len u32
 * BE][bytes] (len 0 when absent). Decoding trusts no length: every one is
 * checked against the bytes left and PAXOS_MAX_VALUE, trailing bytes are
 * refused, and an acceptance at or below the commit (a state no rule
 * makes) is refused. */
#define PAXOS_FORMAT_V1 1u
#define PAXOS_MAX_VALUE (64u * 1024 * 1024)
/* paxos_acceptor_encoded_size: the exact bytes paxos_acceptor_encode
 * writes. */
size_t paxos_acceptor_encoded_size(const struct paxos_acceptor *a);
/* paxos_acceptor_encode: into @buf (@cap bytes); *@len the bytes written.
 * Errors: CHORUS_ETOOBIG (@cap too small). */
int paxos_acceptor_encode(const struct paxos_acceptor *a, uint8_t *buf,
                          size_t cap, size_t *len);
/* paxos_acceptor_decode: into @out (uninitialised; freed by the caller on
 * success, empty on failure). Errors: CHORUS_EVERSION (another format),
 * CHORUS_EMALFORMED (@errmsg, which may be NULL, says why),
 * CHORUS_ENOMEM. */
int paxos_acceptor_decode(struct paxos_acceptor *out, const uint8_t *buf,
                          size_t len, char *errmsg);

/* An answer to PREPARE or PROPOSE. Values borrow from the acceptor. */
struct paxos_promise {
  bool ok;
  struct paxos_ballot promised; /* the acceptor's promise after the call */
  struct paxos_ballot accepted_at;
  struct paxos_value accepted;
  struct paxos_ballot committed_at;
  struct paxos_value committed;
};

/* paxos_prepare: PREPARE(@b) at @a; *@out borrows from @a. Changes @a
 * only when it promises (the caller persists it before answering). */
void paxos_prepare(struct paxos_acceptor *a, struct paxos_ballot b,
                   struct paxos_promise *out);
/* paxos_propose: PROPOSE(@b, @v); whether accepted (@a changed: persist
 * before answering). *@promised is @a's promise after the call.
 * Errors: CHORUS_ENOMEM (@a unchanged, not accepted). */
int paxos_propose(struct paxos_acceptor *a, struct paxos_ballot b,
                  struct paxos_value v, bool *accepted,
                  struct paxos_ballot *promised);
/* paxos_commit: COMMIT(@b, @v). Errors: CHORUS_ENOMEM (@a unchanged). */
int paxos_commit(struct paxos_acceptor *a, struct paxos_ballot b,
                 struct paxos_value v);

/* ------------------------------------------------------------------------
 * LOCKS AND FENCING (issue 23; Kleppmann, "How to do distributed locking",
 * 2016: a lease alone is unsafe, a paused holder must be stopped at the
 * resource by a token that only grows)
 *
 * A lock is a CAS key whose value is a lock record; a fenced key is a CAS
 * key whose value is a fenced record. Both are judged and computed inside
 * decide() below, so a lock operation is one Paxos round like any CAS and
 * the simulator drives it with the rest.
 *
 *   lock record:   [0xc1 'L' 'C' 'K'][format u8 = 1][held u8: 0 or 1]
 *                  [token u64 BE][expires u64 BE: ms, the coordinator's
 *                  HLC physical time][holder_len u8][holder bytes]
 *   fenced record: [0xc1 'F' 'N' 'C'][format u8 = 1][nfences u8]
 *                  nfences x [name_len u8][name][token u64 BE]
 *                  [present u8: 0 or 1][len u32 BE][value bytes]
 *
 * 0xc1 is the byte msgpack never uses; the node refuses a plain CAS value
 * that starts with either magic, so a user's value is never taken for a
 * record. A lock's token lives in its record after a release or an expiry
 * (held 0), so the next ACQUIRE takes token + 1: tokens of one lock only
 * grow, whatever node coordinates, crashes or restarts (the record is
 * Paxos state, durable before any acceptance is answered).
 *
 * Lease expiry is judged with the coordinator's clock (@now) and an
 * allowance for the skew between coordinators (@skew): ACQUIRE takes a
 * held lock only when now >= expires + skew. RENEW needs now < expires.
 * A fenced record keeps, per lock name, the highest token any applied
 * FENCED_SET carried; a FENCED_SET with a lower token is refused
 * (PAXOS_REFUSED_FENCED, fence_seen the highest) and nothing changes. A
 * SET, IF_ABSENT, IF_VALUE or DELETE_IF_VALUE on a fenced key is refused
 * (PAXOS_REFUSED_NOT_FENCED): it would drop the fences.
 * ------------------------------------------------------------------------ */

#define PAXOS_LOCK_MAX_HOLDER 255u
#define PAXOS_FENCE_MAX_NAME 255u
#define PAXOS_FENCE_MAX 16u /* lock names one fenced key remembers */

/* The arguments of a lock condition or FENCED_SET (borrowed by
 * paxos_op_init_lock, which copies the bytes). */
struct paxos_lock_args {
  uint64_t now;   /* ms: the coordinator's clock when the operation began */
  uint64_t ttl;   /* ms: ACQUIRE, RENEW: the lease */
  uint64_t skew;  /* ms: ACQUIRE: the allowance past expires */
  uint64_t token; /* RENEW, RELEASE, FENCED_SET */
  const uint8_t *holder; /* ACQUIRE: the new holder's id (informative) */
  size_t holder_len;
  const uint8_t *fence; /* FENCED_SET: the lock's name */
  size_t fence_len;
};

/* Why a condition failed (NOT_APPLIED). */
enum paxos_refusal {
  PAXOS_REFUSED_NONE = 0,   /* the condition was false (or a read) */
  PAXOS_REFUSED_HELD,       /* ACQUIRE: another holder's lease is live */
  PAXOS_REFUSED_TOKEN,      /* RENEW, RELEASE: not held at that token */
  PAXOS_REFUSED_EXPIRED,    /* RENEW: held at that token, lease over */
  PAXOS_REFUSED_FENCED,     /* FENCED_SET: token below fence_seen */
  PAXOS_REFUSED_NOT_FENCED, /* a plain update on a fenced key */
  PAXOS_REFUSED_CORRUPT,    /* a record that does not decode, or too many
                               fences on one key */
};

/* A decoded lock record (@holder borrows from the value). */
struct paxos_lock {
  bool held;
  uint64_t token, expires;
  const uint8_t *holder;
  size_t holder_len;
};

/* paxos_lock_decode: @v as a lock record (absent: free, token 0).
 * Errors: CHORUS_EMALFORMED (not a lock record, or damaged). */
int paxos_lock_decode(struct paxos_value v, struct paxos_lock *out);

/* paxos_is_record: whether @v starts with a lock or fenced record's magic
 * (the node refuses such a value in a plain CAS). */
bool paxos_is_record(const uint8_t *bytes, size_t len);

/* paxos_fenced_value: the value part of @v when it is a fenced record (in
 * *@out, borrowing), else @v itself; *@fenced whether it was one.
 * Errors: CHORUS_EMALFORMED (a fenced record that does not decode). */
int paxos_fenced_value(struct paxos_value v, struct paxos_value *out,
                       bool *fenced);

/* ------------------------------------------------------------------------
 * CONTEXTS (issue 23: put --if-match, del --if-match)
 *
 * A context names one version of a CAS key's value: the ballot at which
 * that value was committed, which no other chosen value shares (a ballot
 * proposes one value, and each round that chooses one has its own
 * ballot). The version "never written" is ballot {0, 0}; a delete is a
 * version too (absent, at its ballot), so an if-match of an absent key
 * applies only while it stays the absent version that was read: the ABA
 * an if-value cannot see (v, then w, then v again) is refused.
 *
 * A repair renames: a value chosen at b1 whose commit reached no replica
 * of a later quorum is proposed again at that round's b2 and committed at
 * b2 (step 2 above): the same bytes, now version b2. An if-match naming
 * b1 is then refused (it answers the value and b2), never applied on a
 * stale version: safe, and rare (every commit to a majority lost).
 *
 * On the wire and to clients a context is PAXOS_CONTEXT_LEN opaque bytes:
 * [time u64 BE][node u64 BE].
 * ------------------------------------------------------------------------ */

#define PAXOS_CONTEXT_LEN 16u

/* paxos_context_encode: @b as a context into @out. */
void paxos_context_encode(struct paxos_ballot b,
                          uint8_t out[PAXOS_CONTEXT_LEN]);
/* paxos_context_decode: @len bytes at @bytes as a context; false (and *@b
 * untouched) when @len is not PAXOS_CONTEXT_LEN. */
bool paxos_context_decode(const uint8_t *bytes, size_t len,
                          struct paxos_ballot *b);

/* ------------------------------------------------------------------------
 * The proposer: one operation
 * ------------------------------------------------------------------------ */

#define PAXOS_MAX_REPLICAS 16u

enum paxos_cond_kind {
  PAXOS_READ = 0,        /* no update: answers the current value */
  PAXOS_SET,             /* unconditional: always applies (a fenced or plain
                            write through Paxos) */
  PAXOS_IF_ABSENT,       /* applies when the key has no value */
  PAXOS_IF_VALUE,        /* applies when the value equals @expected */
  PAXOS_DELETE_IF_VALUE, /* deletes when the value equals @expected */
  PAXOS_IF_MATCH,        /* applies when the value is the version @expected
                            names (a context: CONTEXTS below) */
  PAXOS_DELETE_IF_MATCH, /* deletes when it is that version */
  /* Locks and fenced writes (paxos_op_init_lock; LOCKS AND FENCING below):
   * conditions judged on a record, whose update is computed from the
   * record found. */
  PAXOS_LOCK_ACQUIRE, /* free, or its lease + skew passed: token + 1 */
  PAXOS_LOCK_RENEW,   /* held at the args' token, lease live: extends it */
  PAXOS_LOCK_RELEASE, /* held at the args' token: frees it (token kept) */
  PAXOS_FENCED_SET,   /* the args' token >= the key's highest for the lock */
  PAXOS_COND_MAX = PAXOS_FENCED_SET,
};

enum paxos_phase {
  PAXOS_PREPARING = 1, /* waiting for a quorum of promises */
  PAXOS_REPAIRING,     /* proposing an unfinished acceptance found */
  PAXOS_PROPOSING,     /* proposing this operation's value */
  PAXOS_RESTART,       /* refused or repaired: needs a new ballot */
  PAXOS_DONE,          /* answered (the commit may still go out) */
};

enum paxos_outcome {
  PAXOS_NOT_APPLIED = 0, /* a read, or the condition failed: nothing done */
  PAXOS_APPLIED,         /* the update was chosen */
  PAXOS_UNKNOWN,         /* it may or may not have been (see above) */
};

/* Proposals of its own value one operation remembers (its rounds are
 * bounded below this by the driver; past it, the outcome is unknown). */
#define PAXOS_MAX_OWN 16u

enum paxos_msg_type {
  PAXOS_MSG_NONE = 0,
  PAXOS_MSG_PREPARE,
  PAXOS_MSG_PROPOSE,
  PAXOS_MSG_COMMIT
};

/* What to send to every replica (values borrow from the operation). */
struct paxos_msg {
  uint8_t type; /* enum paxos_msg_type */
  struct paxos_ballot ballot;
  struct paxos_value value; /* PROPOSE, COMMIT */
};

struct paxos_op {
  uint8_t cond;                        /* enum paxos_cond_kind */
  struct paxos_value expected, update; /* owned copies */
  uint8_t phase;                       /* enum paxos_phase */
  struct paxos_ballot ballot;
  struct paxos_ballot highest; /* the highest ballot seen (restart above) */
  chorus_node_id replicas[PAXOS_MAX_REPLICAS];
  uint8_t nreplicas, quorum;
  uint32_t answered, agreed; /* bitmasks by replica index, this phase */
  /* Promises: the highest acceptance and commit seen (owned copies). */
  struct paxos_ballot max_accepted_at, max_committed_at;
  struct paxos_value max_accepted, max_committed;
  /* The message of this phase, and a commit to send once (after a
   * repair, or once the operation's value is chosen). */
  struct paxos_msg out;
  struct paxos_msg commit;
  bool commit_due;
  uint32_t rounds; /* prepares sent */
  /* Its own proposals: their ballots; one in flight (not yet chosen nor
   * refused by every replica); one that may lie with some acceptor. */
  struct paxos_ballot own[PAXOS_MAX_OWN];
  uint8_t nown;
  bool own_in_flight, own_lurking;
  bool repairing_own; /* REPAIRING its own value */
  /* The answer (DONE): the outcome, and the value before the update (the
   * current value for a read or a failed condition). */
  uint8_t outcome;              /* enum paxos_outcome */
  struct paxos_value found;     /* owned */
  struct paxos_ballot found_at; /* @found's version (CONTEXTS above) */
  /* Locks and fenced writes: the arguments (holder and fence name owned
   * copies), and why a condition failed. */
  struct paxos_lock_args args;
  uint8_t refusal;     /* enum paxos_refusal, when NOT_APPLIED */
  uint64_t fence_seen; /* FENCED_SET: the key's highest token for the lock */
};

/* paxos_op_init: an operation with condition @cond (@expected for
 * IF_VALUE and DELETE_IF_VALUE, the context for IF_MATCH and
 * DELETE_IF_MATCH; @update for SET, IF_ABSENT, IF_VALUE, IF_MATCH) over @n
 * replicas (quorum n/2+1). Values are copied.
 * Errors: CHORUS_EINVAL (n 0 or over PAXOS_MAX_REPLICAS, unknown cond, a
 * context that is not PAXOS_CONTEXT_LEN bytes), CHORUS_ENOMEM. */
int paxos_op_init(struct paxos_op *op, uint8_t cond,
                  struct paxos_value expected, struct paxos_value update,
                  const chorus_node_id *replicas, size_t n);
void paxos_op_free(struct paxos_op *op);

/* paxos_op_init_lock: as paxos_op_init, for PAXOS_LOCK_* (no values) and
 * PAXOS_FENCED_SET (@update the value to write under the fence), with
 * @args (copied). When the operation ends APPLIED, op->commit.value is the
 * value chosen (the new record). Errors: CHORUS_EINVAL (as paxos_op_init,
 * another cond, a holder or fence name over its limit, an empty fence
 * name), CHORUS_ENOMEM. */
int paxos_op_init_lock(struct paxos_op *op, uint8_t cond,
                       const struct paxos_lock_args *args,
                       struct paxos_value update,
                       const chorus_node_id *replicas, size_t n);

/* paxos_op_context: the version of the key's value once @op is DONE: the
 * ballot its update was chosen at when APPLIED, else @found's. */
struct paxos_ballot paxos_op_context(const struct paxos_op *op);

/* paxos_op_restart: a new round at @b (above op->highest: the caller's
 * HLC, received past it; CHORUS_EINVAL otherwise): PREPARING, with
 * PREPARE(@b) in the outbox. Also the first round. */
int paxos_op_restart(struct paxos_op *op, struct paxos_ballot b);

/* paxos_op_give_up: ends an operation the driver stops retrying (its
 * round budget spent): DONE, outcome UNKNOWN when an own proposal may lie
 * with an acceptor, else NOT_APPLIED (nothing of it exists). */
void paxos_op_give_up(struct paxos_op *op);

/* paxos_op_outbox: the message to broadcast now, if any (type NONE:
 * nothing), then nothing until the phase changes. The commit due after a
 * choice comes out of paxos_op_commit_due. */
bool paxos_op_outbox(struct paxos_op *op, struct paxos_msg *out);
bool paxos_op_commit_due(struct paxos_op *op, struct paxos_msg *out);

/* paxos_op_on_promise: replica @from's answer to this round's PREPARE.
 * paxos_op_on_accept: its answer to this round's PROPOSE. Answers of
 * other rounds, other replicas and duplicates are ignored. The phase may
 * change (see enum paxos_phase). Errors: CHORUS_ENOMEM. */
int paxos_op_on_promise(struct paxos_op *op, chorus_node_id from,
                        struct paxos_ballot round,
                        const struct paxos_promise *p);
int paxos_op_on_accept(struct paxos_op *op, chorus_node_id from,
                       struct paxos_ballot round, bool accepted,
                       struct paxos_ballot promised);

#endif /* CHORUS_PAXOS_H */
