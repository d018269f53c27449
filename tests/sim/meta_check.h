/* meta_check.h: the metadata Raft group's safety, checked from what the
 * simulator observes of every node (issue 18):
 *
 *   - election safety: at most one leader per term (Raft §3.6.3, figure
 *     3.2); every (term, leader) any node reports is recorded;
 *   - one history: the state a node has applied at index i is the same on
 *     every node and at every time (a committed entry never changes, and
 *     every node's applied metadata is a prefix of one history); states
 *     are compared by a hash of their encoding, which holds the index;
 *   - nothing committed lost: at the end, once healed, every running
 *     node has applied at least the highest commit index a leader ever
 *     reported (meta_check_final);
 *   - linearizable metadata: a register (the state's NOTE, meta.h) written
 *     by NOTE commands with unique values and read by barrier reads
 *     (meta_node_read) is linearizable (meta_check_linearizable).
 *
 * HOW LINEARIZABILITY IS DECIDED
 *
 * Checking a history for linearizability is NP-complete in general, but
 * not with what Raft gives away (Gibbons & Korach 1997: with unique values
 * and a known order of writes it is polynomial). Writes carry unique
 * values, so a read names the write it saw; and the order of writes is
 * the log's, which the "one history" check already holds every node to:
 * meta_check_value records at which log indexes each value is the
 * register, and a write's place is the first of them. (A value seen
 * again after another one is itself a violation: a write applied twice.)
 * Writes never seen in any applied state are left out, with no read to
 * speak of them; leaving them out cannot make a linearizable history look
 * otherwise.
 *
 * With the order of writes fixed, group each write with the reads that
 * saw it (reads of the initial register form the first group). The history
 * is linearizable exactly when the groups in log order, each write before
 * its reads and the reads in invocation order, respect real time: no
 * operation of a later group completes before an operation of an earlier
 * group is invoked, and no read completes before the write it saw is
 * invoked. Per group that is one comparison against the earliest
 * completion of all later groups (a suffix minimum): O(n log n).
 *
 * An operation whose answer never came (a crash, a timeout, "leadership
 * lost: may or may not apply") is a write that may take effect at any time
 * after its invocation: it completes at infinity. A read without an answer
 * says nothing and is left out.
 *
 * The checker only sees observations, so planted violations test it
 * without a cluster (tests/sim/test_meta_sim.c). */
#ifndef CHORUS_META_CHECK_H
#define CHORUS_META_CHECK_H

#include <stddef.h>
#include <stdint.h>

struct meta_check_term {
  uint64_t term, leader;
};
struct meta_check_state {
  uint64_t index, hash;
  int node;
};

/* One operation on the register: a NOTE write of @value (its id) or a
 * read that returned @value (0: the initial register). */
struct meta_check_op {
  uint64_t value;
  uint64_t inv, resp; /* times; resp UINT64_MAX while unanswered */
  int write;          /* 1: a write; 0: a read */
  int answered;       /* 1: ended OK (a read's value is known) */
};
/* The log indexes at which a value was the register. */
struct meta_check_value {
  uint64_t value, first, last;
};

struct meta_check {
  struct meta_check_term *terms; /* sorted by term */
  size_t nterms, capterms;
  struct meta_check_state *states; /* sorted by index */
  size_t nstates, capstates;
  struct meta_check_op *ops; /* by id - 1 */
  size_t nops, capops;
  struct meta_check_value *values; /* sorted by value */
  size_t nvalues, capvalues;
  uint64_t max_commit; /* the highest commit index a leader reported */
  uint64_t reads_checked, writes_placed; /* what linearizable() judged */
  uint64_t observations;
  int violations;
  char first[256]; /* the first violation, "" while none */
};

void meta_check_init(struct meta_check *mc);
void meta_check_free(struct meta_check *mc);
/* meta_check_role: node @node reports @term; @leader non-zero when it says
 * it is the leader of that term (its id), with its @commit index. */
void meta_check_role(struct meta_check *mc, int node, uint64_t term,
                     uint64_t leader, uint64_t commit);
/* meta_check_applied: node @node has applied up to @index, its state's
 * hash @hash. */
void meta_check_applied(struct meta_check *mc, int node, uint64_t index,
                        uint64_t hash);
/* meta_check_final: node @node, after the heal, has applied up to @index. */
void meta_check_final(struct meta_check *mc, int node, uint64_t index);

/* The register's history. meta_check_invoke: an operation begins at
 * @now; returns its id (a write's value: unique, from 1), 0 when out of
 * memory (the checker records a violation). meta_check_answer: operation
 * @id ended at @now, @ok or not (a write that did not end OK may still
 * take effect); a read's @value is what it returned. */
uint64_t meta_check_invoke(struct meta_check *mc, int write, uint64_t now);
void meta_check_answer(struct meta_check *mc, uint64_t id, int ok,
                       uint64_t value, uint64_t now);
/* meta_check_value: a node's state applied at @index holds register
 * @value (every applied state, any node). */
void meta_check_value(struct meta_check *mc, uint64_t index, uint64_t value);
/* meta_check_linearizable: judges the register's history so far. */
void meta_check_linearizable(struct meta_check *mc);

#endif /* CHORUS_META_CHECK_H */
