/* paxos_int.h: what paxos.c and paxos_lock.c share: the owned-value
 * helpers and the big-endian codec of the stored forms (paxos.h), and the
 * lock conditions' judge. */
#ifndef CHORUS_PAXOS_INT_H
#define CHORUS_PAXOS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paxos.h"

/* paxos__value_set: *@dst (owned, freed first) becomes a copy of @src.
 * Errors: CHORUS_ENOMEM (@dst unchanged). */
int paxos__value_set(struct paxos_value *dst, struct paxos_value src);

/* The stored forms' pieces: a value is [present u8][len u32 BE][bytes]. */
size_t paxos__value_size(struct paxos_value v);
uint8_t *paxos__put_u64(uint8_t *p, uint64_t x);
uint8_t *paxos__put_value(uint8_t *p, struct paxos_value v);

/* A reader over untrusted bytes: every get checks what is left. */
struct paxos__reader {
  const uint8_t *p;
  size_t left;
};
bool paxos__get_u64(struct paxos__reader *r, uint64_t *x);
/* paxos__get_value: a value borrowing from the input; NULL, or why not. */
const char *paxos__get_value(struct paxos__reader *r, struct paxos_value *v);

/* paxos__is_fenced: whether @v is a fenced record. */
bool paxos__is_fenced(struct paxos_value v);
/* paxos__judge_record: a lock condition or FENCED_SET on op->found:
 * *@applies, and then op->update the record to propose (op->refusal and
 * op->fence_seen say why not). Errors: CHORUS_ENOMEM. */
int paxos__judge_record(struct paxos_op *op, bool *applies);

#endif /* CHORUS_PAXOS_INT_H */
