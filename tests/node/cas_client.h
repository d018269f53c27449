/* cas_client.h: the raw CAS client test_node_cas and test_node_cas_kill
 * share: one CAS request on a connection, its outcome as the
 * linearizability checker (tests/lin) needs it. */
#ifndef CHORUS_TEST_CAS_CLIENT_H
#define CHORUS_TEST_CAS_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

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

#endif
