/* lin.h: a linearizability checker for histories of concurrent operations
 * (issue 23: compare-and-set, locks and fencing tokens are judged by it).
 *
 * A history is linearizable (Herlihy & Wing 1990) when each operation can
 * be given a point between its invocation and its completion such that the
 * operations, taken in the order of their points, are a legal sequential
 * run of the object's specification (the model), with the results the
 * clients saw. Linearizability is local: a history is linearizable exactly
 * when each object's (here: each key's) subhistory is, so keys are judged
 * one at a time (Herlihy & Wing, Theorem 1; Porcupine's partitioning).
 *
 * THE SEARCH (Wing & Gong 1993, with Lowe's memoization, 2017, as in
 * Porcupine). The invocations and completions of one key, sorted by time,
 * form a list. The search walks it: at an invocation it tries to
 * linearize that operation now (the model accepts it from the current
 * state with the result the client saw), takes it and its completion out
 * of the list and starts again from the head; at a completion it has met
 * an operation that had to be placed already, and backtracks: it undoes
 * the last operation placed and tries the next candidate. Every (set of
 * operations placed, model state) configuration tried is remembered, and a
 * configuration seen before is not searched again (Lowe): what follows
 * depends on nothing else. The search ends when the list is empty
 * (linearizable), when there is nothing left to undo (not linearizable),
 * or after @max_steps steps (unknown: the problem is NP-complete, Gibbons &
 * Korach 1997, and a checker that may answer "unknown" beats one that may
 * not answer).
 *
 * PENDING OPERATIONS. An operation that never completed (a timeout, a
 * client killed) may have taken effect at any time after its invocation,
 * or never. Its completion is taken as after every other event, and its
 * result as unknown (the model computes it); placed last, it is as if it
 * never happened, which the model must allow (every model here does: its
 * operations are always legal when no result is checked).
 *
 * Ties: an invocation and a completion at the same instant are taken as
 * concurrent (invocations sort first): the lenient reading, so that a
 * clock's resolution never makes a correct system look wrong.
 *
 * Pure, single-threaded, allocation-checked; no dependency beyond libc. */
#ifndef CHORUS_TEST_LIN_H
#define CHORUS_TEST_LIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A completion time meaning "never completed". */
#define LIN_PENDING UINT64_MAX

/* The model's state: a few integers, compared and hashed as bytes. */
struct lin_state {
  int64_t v[4];
};

struct lin_op {
  uint64_t key;       /* the object; keys are judged separately */
  uint64_t call, ret; /* invocation, completion (LIN_PENDING: none) */
  uint8_t kind;       /* the model's operation */
  int64_t in[2];      /* its arguments */
  int64_t out;        /* its result as the client saw it (ignored when
                         pending) */
  uint32_t client;    /* who issued it (only for messages) */
};

/* A sequential specification. step: whether @op, with result @op->out
 * (any result when @known is false), is legal from @s; if so *@next is the
 * state after it. Deterministic: one next state per (state, op). */
struct lin_model {
  const char *name;
  void (*init)(struct lin_state *s);
  bool (*step)(const struct lin_state *s, const struct lin_op *op, bool known,
               struct lin_state *next);
  /* describe: @op in words, for messages ("cas(1 -> 2) = applied"). */
  void (*describe)(const struct lin_op *op, char *buf, size_t cap);
};

enum lin_verdict {
  LIN_OK = 0,    /* linearizable */
  LIN_VIOLATION, /* not linearizable */
  LIN_UNKNOWN,   /* the step budget ran out */
  LIN_ERROR,     /* bad input (ret < call) or out of memory */
};

struct lin_result {
  enum lin_verdict verdict;
  uint64_t key;    /* LIN_VIOLATION/UNKNOWN: the key judged */
  size_t ops;      /* operations of that key */
  size_t placed;   /* the most of them ever placed in one order */
  size_t stuck_at; /* LIN_VIOLATION: index (in the input) of the operation
                      whose completion no order could reach, at the
                      deepest point */
  uint64_t steps;  /* search steps, over every key judged */
  char message[256];
};

/* A growing history, as the simulator tests record one. */
struct lin_history {
  struct lin_op *ops;
  size_t n, cap;
};

/* lin_history_push: appends @op (copied). Returns 0, or -1 when out of
 * memory (the history is unchanged). lin_history_free releases it. */
int lin_history_push(struct lin_history *h, const struct lin_op *op);
void lin_history_free(struct lin_history *h);

/* lin_check: judges @n operations of @h against @model, at most
 * @max_steps search steps per key (0: no bound). @h is not changed. */
void lin_check(const struct lin_model *model, const struct lin_op *h, size_t n,
               uint64_t max_steps, struct lin_result *out);

/* ------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------ */

/* A register with compare-and-set, initially absent (LIN_ABSENT):
 *   LIN_READ                  out = the value (LIN_ABSENT when none)
 *   LIN_WRITE  in[0]=v        out unused
 *   LIN_CAS    in[0]=expected in[1]=new   out = 1 applied, 0 not; expected
 *                             LIN_ABSENT: only if absent (put --if-absent)
 *   LIN_DELETE                out unused
 */
#define LIN_ABSENT INT64_MIN
enum { LIN_READ = 1, LIN_WRITE, LIN_CAS, LIN_DELETE };
extern const struct lin_model lin_cas_register;

/* A lock with fencing tokens (Kleppmann's pattern; issue 23), taken as a
 * sequential object whose leases never expire on their own (a checker of
 * expiry needs time in the model; here a release is explicit):
 *   LIN_ACQUIRE  in[0]=client  out = its token (> every token before),
 *                0 when the lock is held (refused)
 *   LIN_RELEASE  in[0]=token   out = 1 released, 0 not the holder's token
 *   LIN_FENCED   in[0]=token   a write fenced by @token at the resource:
 *                out = 1 applied (token >= the highest seen), 0 refused
 * State: v[0] the holder's token (0: free), v[1] the last token issued,
 * v[2] the highest token a fenced write carried. Tokens are judged as
 * "greater than every earlier one", not as exact numbers: v[1] holds the
 * greatest token seen. */
enum { LIN_ACQUIRE = 16, LIN_RELEASE, LIN_FENCED };
extern const struct lin_model lin_fenced_lock;

#endif /* CHORUS_TEST_LIN_H */
