/* cas_client.c: the raw CAS client of the CAS tests (cas_client.h). */
#include "cas_client.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chorus_error.h"
#include "lin.h"
#include "node_harness.h"

uint64_t now_us(void) {
  return (uint64_t)(now_s() * 1e6);
}

/* One connection with 4 s timeouts: a stopped node's socket gives up
 * before the 15 s of tcp_connect. */
int open_node(int i) {
  int fd = client_open(nodes[i].port);
  if (fd >= 0) {
    struct timeval tv = {4, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  return fd;
}

int cas_call(int fd, uint64_t id, const char *key, uint8_t cond,
             int64_t expected, int64_t value, struct cas_res *out) {
  char e[24], v[24];
  snprintf(e, sizeof e, "%" PRId64, expected);
  snprintf(v, sizeof v, "%" PRId64, value);
  struct wire_msg m = {.type = WIRE_CAS, .request_id = id};
  m.cas.key = (struct wire_bytes){(const uint8_t *)key, strlen(key)};
  m.cas.cond = cond;
  if (cond == WIRE_CAS_IF_VALUE || cond == WIRE_CAS_DELETE_IF_VALUE)
    m.cas.expected = (struct wire_bytes){(const uint8_t *)e, strlen(e)};
  if (cond != WIRE_CAS_READ && cond != WIRE_CAS_DELETE_IF_VALUE)
    m.cas.value = (struct wire_bytes){(const uint8_t *)v, strlen(v)};
  m.cas.opts.timeout_ms = 2000;
  struct reply r;
  memset(out, 0, sizeof *out);
  if (call(fd, &m, &r) != 0) {
    out->outcome = UNKNOWN;
    out->code = -1000;
    return -1; /* the connection is lost */
  }
  if (r.m.type == WIRE_CAS_REPLY) {
    out->outcome = r.m.cas_reply.applied ? APPLIED : NOT_APPLIED;
    out->present = r.m.cas_reply.present;
    out->value = LIN_ABSENT;
    if (out->present) {
      char buf[24];
      size_t n = r.m.cas_reply.value.len < 23 ? r.m.cas_reply.value.len : 23;
      memcpy(buf, r.m.cas_reply.value.ptr, n);
      buf[n] = '\0';
      out->value = strtoll(buf, NULL, 10);
    }
  } else if (r.m.type == WIRE_ERROR) {
    out->code = r.m.error.code;
    /* Only ETIMEDOUT (and a sync failure) may have applied; every other
     * refusal is before anything was proposed. */
    out->outcome = chorus_maybe_applied(out->code) ? UNKNOWN : REFUSED;
  } else {
    out->outcome = REFUSED;
    out->code = -1001;
  }
  reply_free(&r);
  return 0;
}

struct cas_res cas_run(int *fd, uint64_t id, const char *key, uint8_t cond,
                       struct lin_op *op, int64_t *seen) {
  struct cas_res r;
  op->call = now_us();
  int lost = cas_call(*fd, id, key, cond, op->in[0], op->in[1], &r);
  op->ret = now_us();
  if (lost) {
    close(*fd);
    *fd = -1;
  }
  if (r.outcome == UNKNOWN) {
    op->ret = LIN_PENDING;
  } else if (r.outcome != REFUSED) {
    op->out = op->kind == LIN_READ ? r.value : r.outcome == APPLIED;
    *seen = r.outcome == APPLIED ? op->in[1] : r.value;
  }
  return r;
}

void cas_describe_fail(const struct lin_result *res, const struct lin_op *hist,
                       size_t n) {
  print_message("# %s\n", res->message);
  size_t from = res->stuck_at > 40 ? res->stuck_at - 40 : 0;
  for (size_t i = from; i < n && i < from + 80; i++) {
    if (hist[i].key != res->key)
      continue;
    char d[96];
    lin_cas_register.describe(&hist[i], d, sizeof d);
    print_message("#   c%u [%" PRIu64 ", %" PRIu64 "] %s\n", hist[i].client,
                  hist[i].call, hist[i].ret, d);
  }
}
