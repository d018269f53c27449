/* cas_client.h: the raw CAS client test_node_cas and test_node_cas_kill
 * share: one CAS request on a connection, its outcome as the
 * linearizability checker (tests/lin) needs it. */
#ifndef CHORUS_TEST_CAS_CLIENT_H
#define CHORUS_TEST_CAS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lin.h"

/* The outcome of one CAS call. */
enum outcome { APPLIED, NOT_APPLIED, UNKNOWN, REFUSED };

struct cas_res {
  enum outcome outcome;
  int code;      /* the ERROR's code (UNKNOWN, REFUSED) */
  bool present;  /* the value found */
  int64_t value; /* parsed; LIN_ABSENT when absent */
};

/* now_us: the harness clock in microseconds (the checker's time). */
uint64_t now_us(void);

/* open_node: a connection to node @i with 4 s socket timeouts (a stopped
 * or dead node's socket gives up before tcp_connect's 15 s); -1 while the
 * node is down. */
int open_node(int i);

/* cas_call: CAS @cond on @key (values are decimal numbers) with a 2 s
 * timeout; -1 when the connection is lost (the outcome is then UNKNOWN:
 * the request may have reached the node before it died). Only a code
 * chorus_maybe_applied() says may have applied is UNKNOWN; every other
 * refusal came before anything was proposed (REFUSED). */
int cas_call(int fd, uint64_t id, const char *key, uint8_t cond,
             int64_t expected, int64_t value, struct cas_res *out);

/* cas_run: @op (its kind and in[] set by the caller) as CAS @cond on @key
 * over *@fd, which is closed and set to -1 when the connection is lost;
 * fills op's call, ret (LIN_PENDING when the outcome is unknown) and out,
 * and *@seen with what this client expects next (the value after its
 * update, or the value found). Returns the call's result. */
struct cas_res cas_run(int *fd, uint64_t id, const char *key, uint8_t cond,
                       struct lin_op *op, int64_t *seen);

/* cas_describe_fail: the checker's message and the key's operations of
 * @hist (@n) around the one it got stuck at (at most 80 lines). */
void cas_describe_fail(const struct lin_result *res, const struct lin_op *hist,
                       size_t n);

#endif
