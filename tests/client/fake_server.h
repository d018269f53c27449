/* fake_server.h: a chorus node impostor for the client tests: a thread that
 * speaks the wire protocol on a loopback port, keeps a toy single-replica
 * store, and misbehaves on command (hangs, closes after a request, refuses
 * the handshake, answers errors or garbage).
 *
 * The toy store stands in for DVV semantics with one actor: every kv sibling
 * carries the version that wrote it, a context is the 8-byte big-endian
 * version the reader saw, and a write with context c drops the siblings
 * with version <= c (what the writer had seen) before adding its own. That
 * is enough for the client's sibling/context round trip; the real semantics
 * are tested in tests/crdt and on real nodes in tests/client/test_cluster.
 * On a connection of protocol version 2 it answers GET_REPLY2 and
 * WRITE_REPLY2: a kv object's siblings, their bytes, and a sibling warning
 * from two siblings on. It answers every connection in its version's types
 * (wire_reply_for), so version 3's names (RING_REPLY2, STATUS_REPLY2) reach
 * only version-3 clients.
 *
 * A GET with opts.flags TRACE gets a canned TRACE first (received at n1
 * 0x1111...; 0x2222... acked at +3 ms, its own synced +1, answered +2).
 *
 * CLUSTER_QUERY gets canned metadata, for the formatting tests only (real
 * nodes: test_cluster.c): n1 (0x1111..., the answering node, a follower)
 * and n2 (0x2222..., the leader) are normal alive voters, n3 (0x3333...)
 * a normal dead standby, n4 (0x4444...) a joining suspect outside the Raft
 * group; term 7, commit 120, applied 118, epoch 12, each one more per
 * member removed. CLUSTER_REMOVE takes n3 out as asked, n1, n2 and n4 only
 * with force (else EBUSY); another name is ENOTFOUND. FAKE_VERSION_1
 * answers both ENOTSUP, as an older node does.
 */
#ifndef CHORUS_TESTS_FAKE_SERVER_H
#define CHORUS_TESTS_FAKE_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum fake_mode {
  FAKE_NORMAL = 0,
  FAKE_HANG,         /* read requests, never answer them */
  FAKE_CLOSE_ON_REQ, /* close the connection when a request arrives */
  FAKE_REFUSE_HELLO, /* answer HELLO with ERROR ECLUSTER */
  FAKE_ERROR,        /* answer every request with ERROR fake.error_code */
  FAKE_GARBAGE,      /* answer every request with a malformed frame */
  FAKE_SILENT_HELLO, /* never answer HELLO */
  FAKE_VERSION_1     /* an older node: speaks protocol version 1 only */
};

struct fake_server;

/* fake_start: listens on 127.0.0.1, an ephemeral port; NULL on failure.
 * @cluster: the cluster name it accepts. */
struct fake_server *fake_start(const char *cluster);
void fake_stop(struct fake_server *f);

uint16_t fake_port(const struct fake_server *f);
/* "127.0.0.1:PORT", static storage of @f. */
const char *fake_addr(const struct fake_server *f);

void fake_set_mode(struct fake_server *f, enum fake_mode mode, int error_code);

/* The addresses RING_REPLY lists for its three nodes (ids 0x1111..,
 * 0x2222.., 0x3333..; STATUS_REPLY holds them alive, suspect and dead).
 * Copied; call before clients connect. Default 127.0.0.1:7401..7403. */
void fake_set_ring(struct fake_server *f, const char *const addrs[3]);

/* Counters since start. */
int fake_connections(const struct fake_server *f);
int fake_requests(const struct fake_server *f); /* frames after HELLO */
/* The last counter op id received (0 if none). */
uint64_t fake_last_op_id(const struct fake_server *f);

/* A port on 127.0.0.1 where nothing listens (bound, then closed). */
uint16_t fake_dead_port(void);

#endif /* CHORUS_TESTS_FAKE_SERVER_H */
