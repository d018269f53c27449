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
 *     reported (meta_check_final).
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

struct meta_check {
  struct meta_check_term *terms; /* sorted by term */
  size_t nterms, capterms;
  struct meta_check_state *states; /* sorted by index */
  size_t nstates, capstates;
  uint64_t max_commit; /* the highest commit index a leader reported */
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

#endif /* CHORUS_META_CHECK_H */
