/* sim_history.h: the record of what clients asked and saw, and the checkers
 * that judge it.
 *
 * THE HISTORY FORMAT
 *
 * A history is a list of client operations (struct sim_hop) plus, after the
 * heal phase, the final state of every key on every replica (struct
 * sim_hfinal). Each operation has an invoke time, a completion time and an
 * outcome, as in Jepsen's histories:
 *
 *   SIM_OK       the operation took effect and the client was told so
 *   SIM_FAIL     it certainly did not take effect (rejected before any
 *                replica wrote it; for reads: no answer)
 *   SIM_UNKNOWN  it may or may not have taken effect (timeout, crash,
 *                partial quorum)
 *   SIM_PENDING  still in flight when the history was judged (= unknown)
 *
 * Written values are unique 64-bit numbers (never 0), so a value read back
 * names the one write that produced it.
 *
 * CAUSALITY WITHOUT CRDT INTERNALS
 *
 * The checkers never look inside a protocol's causal metadata. A kv PUT
 * records the values it *covers*: the siblings its client had read with
 * the context it passed (none for a blind put). Writing with a context
 * that covered a value supersedes that value, and supersedes is transitive
 * (DVV paper, Almeida et al. 2014: the new dot dominates every dot in the
 * context). From that relation alone:
 *
 *   lost write     an OK PUT v whose value is neither in a replica's final
 *                  sibling set nor reachable through covers from a value
 *                  that is
 *   phantom        a read or final value that no PUT/SET_ADD on that key
 *                  wrote (or one invoked only after the read completed)
 *   false sibling  two values of one read or final set where one
 *                  (transitively) supersedes the other
 *
 * DELETES. A kv DELETE carries a unique value of its own (never sent,
 * never read back: it names the delete) and covers, like a PUT, the values
 * its client read with the context it passed. It supersedes them and their
 * past, and nothing else: a value written concurrently with it (not in its
 * context) survives it as a sibling. So:
 *
 *   lost write     (above) a value gone because a delete that may have
 *                  taken effect (OK, unknown or pending) covered it is not
 *                  lost
 *   zombie         a final value that an acknowledged (OK) delete covered,
 *                  transitively: the delete's tombstone was lost (purged
 *                  before every replica held it) and a replica that missed
 *                  it handed the value back
 *   read after delete  (strict runs) a read invoked after an OK delete
 *                  completed returns a value that delete covered
 *
 * Counters are judged by bounds (Jepsen's counter checker): with strict
 * quorums (R+W>N) a read lies between the sum of the increments certainly
 * applied before it began and that sum plus every increment that may have
 * been; with weaker quorums a read may miss any increment, so only the
 * loose bounds hold (no increment the read could not have seen, nor a
 * failed one). After heal, a final value with the applied op ids must
 * equal exactly their sum and include every OK increment; without op ids
 * it must lie within the bounds of OK plus maybe-applied increments.
 *
 * Sets (add-wins OR-sets): an acknowledged add is in every final set
 * unless a remove that may have taken effect named it; a remove passes
 * the context of a read that returned the element, so an acknowledged one
 * leaves it in no final set (elements are unique: no concurrent re-add).
 *
 * LWW registers are judged by stamps: the write with the greatest (HLC
 * time, node id) wins. A lost write here is an acknowledged write whose
 * stamp is above the final one; a value read with another stamp than its
 * write got is a phantom. Blind writes losing to greater stamps are the
 * type's meaning, not a loss.
 *
 * Every checker returns 0 (history fine), 1 (violation, described in
 * @rep) or CHORUS_ENOMEM.
 */
#ifndef CHORUS_SIM_HISTORY_H
#define CHORUS_SIM_HISTORY_H

#include <stddef.h>
#include <stdint.h>

enum sim_op {
  SIM_OP_GET = 1,      /* kv: siblings + context */
  SIM_OP_PUT,          /* kv: value, optional context */
  SIM_OP_COUNTER_ADD,  /* counter: amount (either sign) */
  SIM_OP_COUNTER_READ, /* counter: value */
  SIM_OP_SET_ADD,      /* set: element */
  SIM_OP_SET_READ,     /* set: elements */
  SIM_OP_DELETE,       /* kv: delete with the context of an earlier GET */
  SIM_OP_CAS,          /* cas: a compare-and-set or serial read (issue 23;
                        * sim_call.cas_cond; judged by tests/lin, not by
                        * the checkers here) */
  SIM_OP_SET_REMOVE,   /* set: remove element @value with the context of an
                        * earlier SET_READ that returned it (covers: it) */
  SIM_OP_LWW_SET,      /* lww: write value; OK carries the stamp it got */
  SIM_OP_LWW_READ,     /* lww: the value (none or one) and its stamp */
  SIM_OP_LOCK,         /* lock: a LOCK request (issue 23; sim_call.lock_op:
                        * acquire, renew, release, status, fenced put;
                        * judged by test_lock_sim, not by the checkers
                        * here) */
};

enum sim_op_type {
  SIM_TYPE_KV = 0,
  SIM_TYPE_COUNTER,
  SIM_TYPE_SET,
  SIM_TYPE_CAS, /* a Paxos key: skipped by every checker below */
  SIM_TYPE_LWW,
};

enum sim_outcome { SIM_PENDING = 0, SIM_OK, SIM_FAIL, SIM_UNKNOWN };

enum sim_op_type sim_op_type_of(enum sim_op op);
const char *sim_op_name(enum sim_op op);
const char *sim_outcome_name(enum sim_outcome o);

/* One client operation. Times are virtual microseconds. */
struct sim_hop {
  uint64_t id; /* the request id (and counter op id) */
  int client;
  int node;
  enum sim_op op;
  uint32_t key; /* index into sim_history.keys */
  uint64_t value;
  int64_t amount;
  uint64_t *covers; /* PUT: values superseded by this write */
  size_t ncovers;
  uint64_t *read; /* GET siblings, SET_READ elements (OK only) */
  size_t nread;
  int64_t counter; /* COUNTER_READ result */
  /* LWW_SET (OK): the stamp the write got; LWW_READ (OK): the stamp of the
   * value read (HLC time, node id; 0, 0 when absent or not told). */
  uint64_t stamp[2];
  uint64_t invoke, complete;
  enum sim_outcome outcome;
};

/* One replica's state of one key after the heal phase. */
struct sim_hfinal {
  uint32_t key;
  int node;
  uint64_t *values;
  size_t nvalues;
  int64_t counter;
  int has_op_ids;
  uint64_t *op_ids;
  size_t nop_ids;
  uint64_t digest;
  uint64_t stamp[2]; /* lww: the register's stamp */
};

struct sim_hkey {
  char *name;
  enum sim_op_type type;
};

struct sim_history {
  struct sim_hop *ops;
  size_t nops, capops;
  struct sim_hfinal *finals;
  size_t nfinals, capfinals;
  struct sim_hkey *keys;
  size_t nkeys, capkeys;
};

/* What a failing checker says. */
struct sim_check_report {
  char checker[32];
  char message[256];
};

void sim_history_init(struct sim_history *h);
/* sim_history_free: releases everything and re-initialises @h. */
void sim_history_free(struct sim_history *h);

/* sim_history_key: the index of @name (copied) with @type, interned.
 * Returns the index, or CHORUS_ENOMEM, or CHORUS_ETYPE when @name was
 * interned with another type. */
int64_t sim_history_key(struct sim_history *h, const char *name,
                        enum sim_op_type type);

/* sim_history_invoke: appends @op (its covers array is copied; its read
 * array is ignored) with outcome PENDING. Returns the op's index or
 * CHORUS_ENOMEM. */
int64_t sim_history_invoke(struct sim_history *h, const struct sim_hop *op);

/* sim_history_complete: sets op @idx's outcome and completion time and
 * copies @read/@nread and @counter into it. Errors: CHORUS_ENOMEM. */
int sim_history_complete(struct sim_history *h, size_t idx,
                         enum sim_outcome outcome, uint64_t when,
                         const uint64_t *read, size_t nread, int64_t counter);

/* sim_history_stamp: sets op @idx's stamp (lww). */
void sim_history_stamp(struct sim_history *h, size_t idx,
                       const uint64_t stamp[2]);

/* sim_history_final: appends a replica's final state (arrays copied).
 * Errors: CHORUS_ENOMEM. */
int sim_history_final(struct sim_history *h, const struct sim_hfinal *f);

/* sim_history_clear_finals: forgets every recorded final state (to record
 * them again later, e.g. once a topology change has completed). */
void sim_history_clear_finals(struct sim_history *h);

/* Checkers (see above). */
int sim_check_kv_lost(const struct sim_history *h,
                      struct sim_check_report *rep);
int sim_check_phantom(const struct sim_history *h,
                      struct sim_check_report *rep);
int sim_check_false_siblings(const struct sim_history *h,
                             struct sim_check_report *rep);
int sim_check_convergence(const struct sim_history *h,
                          struct sim_check_report *rep);
/* sim_check_counter_bounds: the strict bounds (R+W>N, strict quorum). */
int sim_check_counter_bounds(const struct sim_history *h,
                             struct sim_check_report *rep);
/* sim_check_counter_weak: the loose bounds, for any quorum sizes. */
int sim_check_counter_weak(const struct sim_history *h,
                           struct sim_check_report *rep);
int sim_check_counter_final(const struct sim_history *h,
                            struct sim_check_report *rep);
int sim_check_set_lost(const struct sim_history *h,
                       struct sim_check_report *rep);
/* sim_check_zombie: no replica's final state of a kv key holds a value an
 * acknowledged delete covered. */
int sim_check_zombie(const struct sim_history *h, struct sim_check_report *rep);
/* sim_check_read_after_delete: a GET invoked after an OK delete completed
 * (any client) returns no value that delete covered. Holds with R+W>N,
 * strict quorum and no faults only. */
int sim_check_read_after_delete(const struct sim_history *h,
                                struct sim_check_report *rep);
/* sim_check_ryw: read-your-writes per client: a GET/SET_READ that a client
 * invoked after its own PUT/SET_ADD completed OK sees that write (or a value
 * superseding it, or a delete that covered it and was invoked before the
 * read completed). Holds with R+W>N, strict quorum and no faults only. */
int sim_check_ryw(const struct sim_history *h, struct sim_check_report *rep);

/* sim_check_set_removed: no replica's final set holds an element that an
 * acknowledged (OK) remove took out with the context of a read that saw
 * it. Elements are unique (one add each), so no concurrent add of the
 * same element can excuse it (add-wins has nothing to win). */
int sim_check_set_removed(const struct sim_history *h,
                          struct sim_check_report *rep);
/* sim_check_lww: LWW registers, judged by the stamps the clients were
 * told. Every acknowledged write got a stamp no other write got; a read
 * or a final state holding value v holds v's write's stamp; and no
 * replica's final stamp is below that of an acknowledged write (a write
 * lost to a smaller stamp). */
int sim_check_lww(const struct sim_history *h, struct sim_check_report *rep);
/* sim_check_lww_fresh: a LWW_READ invoked after an OK LWW_SET (any
 * client) completed returns a stamp at least that write's. Holds with
 * R+W>N, strict quorum and no faults only. */
int sim_check_lww_fresh(const struct sim_history *h,
                        struct sim_check_report *rep);

/* sim_check_all: every checker, stopping at the first violation. The
 * strict-quorum ones (read-your-writes, read after delete, strict counter
 * bounds) run only when
 * @strict says the run had R+W>N, strict quorums and no faults. */
int sim_check_all(const struct sim_history *h, int strict,
                  struct sim_check_report *rep);

#endif /* CHORUS_SIM_HISTORY_H */
