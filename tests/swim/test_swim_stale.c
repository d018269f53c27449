/* test_swim_stale.c: a live member held dead by one node whose
 * dissemination budget ran out is taken back alive by that node, without
 * push/pull (the sequence test_change_sim seed 181 of "shrink while forming
 * 3->5->3" showed: n3 held n2 dead for 10 s while n2 was up and seen
 * alive by everyone else).
 *
 * Three instances, A B C, on a hand-rolled network: every datagram is
 * delivered 1 ms later unless its link is cut, and every instance ticks at
 * its deadline. Step by step, deterministic, no simulator: the test drives
 * exactly the sequence, then counts what crosses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "swim.h"

#define NODES 3
#define QMAX 4096
enum { A, B, C };

struct pkt {
  int from, to;
  chorus_ms at;
  size_t len;
  uint8_t data[SWIM_PACKET_MAX];
};

struct net {
  struct swim *sw[NODES];
  bool cut[NODES][NODES]; /* [from][to]: datagrams lost */
  struct pkt *q;
  size_t nq;
  chorus_ms now;
  int sending; /* the node whose call is running */
  uint64_t delivered[NODES][NODES];
  uint64_t streams[NODES]; /* push/pulls sent, by sender */
};

static struct net net;
static const uint8_t key[SWIM_KEY_BYTES] = {7};

static chorus_node_id id_of(int i) {
  return 100 + (chorus_node_id)i;
}

static void on_send(void *ctx, const char *addr, enum swim_channel ch,
                    const void *data, size_t len) {
  int from = (int)(intptr_t)ctx;
  if (ch == SWIM_STREAM)
    net.streams[from]++;
  int to = addr[1] - '0';
  assert_true(to >= 0 && to < NODES && len <= SWIM_PACKET_MAX);
  if (net.cut[from][to])
    return;
  assert_true(net.nq < QMAX);
  struct pkt *p = &net.q[net.nq++];
  p->from = from;
  p->to = to;
  p->at = net.now + 1;
  p->len = len;
  memcpy(p->data, data, len);
}

static void meta_of(int i, struct swim_meta *m) {
  memset(m, 0, sizeof *m);
  snprintf(m->addr, sizeof m->addr, "n%d", i);
  snprintf(m->dc, sizeof m->dc, "dc0");
  snprintf(m->rack, sizeof m->rack, "r0");
  m->ownership = RING_NORMAL;
}

/* Node @i, a fresh instance that knows the members in @knows (a bit per
 * node), started at the current time. Push/pull is off: the datagram path
 * alone must mend the views (push/pull only comes every 30 s). */
static void node_up(int i, uint64_t seed, unsigned knows) {
  struct swim_config c;
  memset(&c, 0, sizeof c);
  c.id = id_of(i);
  meta_of(i, &c.meta);
  snprintf(c.cluster, sizeof c.cluster, "stale");
  memcpy(c.key, key, sizeof key);
  swim_timing_lan(&c.timing);
  c.timing.pushpull_interval = 0;
  c.seed = seed * 10 + (uint64_t)i;
  c.fx.ctx = (void *)(intptr_t)i;
  c.fx.send = on_send;
  assert_int_equal(swim_new(&c, &net.sw[i]), CHORUS_OK);
  for (int j = 0; j < NODES; j++) {
    if (i == j || !(knows & (1u << j)))
      continue;
    struct swim_meta m;
    meta_of(j, &m);
    assert_int_equal(swim_add_member(net.sw[i], id_of(j), &m, 0, net.now),
                     CHORUS_OK);
  }
  assert_int_equal(swim_start(net.sw[i], net.now), CHORUS_OK);
}

/* A cluster of three that know each other. */
static void net_up(uint64_t seed) {
  memset(&net, 0, sizeof net);
  net.q = calloc(QMAX, sizeof *net.q);
  assert_non_null(net.q);
  for (int i = 0; i < NODES; i++)
    node_up(i, seed, 7u);
}

static void net_down(void) {
  for (int i = 0; i < NODES; i++)
    swim_free(net.sw[i]);
  free(net.q);
  net.q = NULL;
}

/* Runs the network until @t (ms): deliveries due, then deadlines due. */
static void run_until(chorus_ms t) {
  for (; net.now <= t; net.now++) {
    size_t w = 0, n = net.nq;
    for (size_t i = 0; i < n; i++) {
      struct pkt p = net.q[i];
      if (p.at > net.now) {
        net.q[w++] = p;
        continue;
      }
      /* lost if its link was cut while in flight */
      if (net.cut[p.from][p.to])
        continue;
      net.delivered[p.from][p.to]++;
      assert_int_equal(
          swim_handle_packet(net.sw[p.to], p.data, p.len, net.now, net.now),
          CHORUS_OK);
    }
    /* packets sent while delivering went to the tail: keep them */
    memmove(&net.q[w], &net.q[n], (net.nq - n) * sizeof *net.q);
    net.nq = w + (net.nq - n);
    for (int i = 0; i < NODES; i++)
      if (swim_next_deadline(net.sw[i]) <= net.now)
        assert_int_equal(swim_tick(net.sw[i], net.now, net.now), CHORUS_OK);
  }
}

static const struct swim_member *view(int observer, int subject) {
  const struct swim_member *m =
      swim_member_find(net.sw[observer], id_of(subject));
  assert_non_null(m);
  return m;
}

/* Hands node @to one GOSSIP datagram from @from carrying @u, as if it had
 * crossed the network (sealed with the cluster key). */
static void inject(int from, int to, const struct swim_update *u) {
  struct swim_msg m = {.kind = SWIM_MSG_GOSSIP, .sender = id_of(from)};
  m.nupdates = 1;
  uint8_t plain[SWIM_PACKET_MAX], sealed[SWIM_PACKET_MAX];
  size_t off = swim_codec_header_size(&m);
  assert_int_equal(swim_codec_encode_header(&m, plain), off);
  off += swim_codec_encode_update(u, plain + off);
  uint8_t nonce[24] = {(uint8_t)net.now, (uint8_t)(net.now >> 8), 42};
  size_t len = swim_seal(key, nonce, "stale", plain, off, sealed);
  assert_int_equal(
      swim_handle_packet(net.sw[to], sealed, len, net.now, net.now), CHORUS_OK);
}

/* Cuts (or mends) every link to and from node @i. */
static void isolate(int i, bool cut) {
  for (int j = 0; j < NODES; j++)
    net.cut[i][j] = net.cut[j][i] = cut;
}

/* B is told (by C, in one datagram) that A is dead at incarnation 0, while
 * cut off from everyone until its broadcast queue has spent the news:
 * neither A nor C ever hears it. Meanwhile A may refute suspicions @a_inc
 * times, which C hears and B does not. Then the network is whole again.
 * Before the fix B held A dead for good (no push/pull here): B does not
 * probe the dead, A's probes of B got plain ACKs, and nothing repeated A's
 * ALIVE to B once the queues were spent. Now A's next packet to B brings
 * B's accusation back to A, and A answers B with its ALIVE. */
static void run_stale_dead(uint32_t a_inc) {
  for (uint64_t seed = 1; seed <= 8; seed++) {
    net_up(seed);
    run_until(3000);
    for (int i = 0; i < NODES; i++)
      for (int j = 0; j < NODES; j++)
        if (i != j)
          assert_int_equal(view(i, j)->state, SWIM_ALIVE);
    isolate(B, true);
    struct swim_update du = {.kind = SWIM_UPD_DEAD,
                             .id = id_of(A),
                             .incarnation = 0,
                             .from = id_of(C)};
    inject(C, B, &du);
    assert_int_equal(view(B, A)->state, SWIM_DEAD);
    for (uint32_t k = 0; k < a_inc; k++) {
      struct swim_update su = {.kind = SWIM_UPD_SUSPECT,
                               .id = id_of(A),
                               .incarnation = swim_incarnation(net.sw[A]),
                               .from = id_of(C)};
      inject(C, A, &su);
    }
    assert_int_equal(swim_incarnation(net.sw[A]), a_inc);
    run_until(net.now + 1500); /* every queue spends its news */
    assert_int_equal(view(C, A)->incarnation, a_inc);
    assert_int_equal(view(B, A)->state, SWIM_DEAD);
    assert_int_equal(view(B, A)->incarnation, 0);
    isolate(B, false);
    chorus_ms healed = net.now;
    /* A probes B every period or so (two members to probe): a few
     * periods at most. */
    while (net.now < healed + 5000 && view(B, A)->state != SWIM_ALIVE)
      run_until(net.now + 10);
    assert_int_equal(view(B, A)->state, SWIM_ALIVE);
    assert_true(view(B, A)->incarnation >= (a_inc > 0 ? a_inc : 1));
    /* the exchange ends: views agree and stay so, no refutation loop */
    uint64_t refutations = swim_stats(net.sw[A])->refutations;
    run_until(net.now + 20000);
    for (int i = 0; i < NODES; i++)
      for (int j = 0; j < NODES; j++)
        if (i != j)
          assert_int_equal(view(i, j)->state, SWIM_ALIVE);
    assert_int_equal(swim_stats(net.sw[A])->refutations, refutations);
    assert_int_equal(view(B, A)->incarnation, swim_incarnation(net.sw[A]));
    net_down();
  }
}

/* A never heard it was suspected: it refutes (SWIM §4.2) when B's answer
 * brings the accusation. */
static void test_dead_unheard(void **state) {
  (void)state;
  run_stale_dead(0);
}

/* A refuted already (C took it back, B missed it): the older accusation
 * from B gets A's current ALIVE again, no new incarnation needed. */
static void test_dead_refuted_elsewhere(void **state) {
  (void)state;
  run_stale_dead(2);
}

/* C restarts knowing only B (its saved table was short, and the push/pull
 * that would have told it of A was cut). A still holds C alive and probes
 * it: C drops a stranger's PING (it cannot address an ACK), B's relayed
 * probe succeeds, so A never suspects C and C never hears of A. Before the
 * fix that lasted until a push/pull; now A's next PING to C, answered only
 * through B before, carries A's ALIVE. */
static void test_restarted_stranger(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 8; seed++) {
    net_up(seed);
    run_until(3000);
    swim_free(net.sw[C]);
    node_up(C, seed + 100, 1u << B);
    assert_null(swim_member_find(net.sw[C], id_of(A)));
    chorus_ms restarted = net.now;
    while (net.now < restarted + 10000 &&
           swim_member_find(net.sw[C], id_of(A)) == NULL)
      run_until(net.now + 10);
    assert_non_null(swim_member_find(net.sw[C], id_of(A)));
    run_until(net.now + 20000);
    for (int i = 0; i < NODES; i++)
      for (int j = 0; j < NODES; j++)
        if (i != j)
          assert_int_equal(view(i, j)->state, SWIM_ALIVE);
    net_down();
  }
}

/* C restarts and joins through B while its links are cut: the join's
 * push/pull is lost. SWIM asks again (1 s, then 2 s, ...) until an answer
 * comes; before, a join whose every answer was lost stayed unanswered
 * (the driver retried only while the table held this node alone, and a
 * restart from a saved table never does). */
static void test_join_retried(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 4; seed++) {
    net_up(seed);
    run_until(3000);
    swim_free(net.sw[C]);
    isolate(C, true);
    node_up(C, seed + 100, 0);
    const char *seeds[] = {"n1"};
    assert_int_equal(swim_join(net.sw[C], seeds, 1, net.now, net.now),
                     CHORUS_OK);
    run_until(net.now + 500);
    isolate(C, false);
    assert_int_equal(swim_member_count(net.sw[C]), 1);
    chorus_ms healed = net.now;
    while (net.now < healed + 3000 && swim_member_count(net.sw[C]) < NODES)
      run_until(net.now + 10);
    assert_int_equal(swim_member_count(net.sw[C]), NODES);
    /* answered: no more tries (push/pull is off: no other stream) */
    assert_true(net.streams[C] >= 2);
    uint64_t sent = net.streams[C];
    run_until(net.now + 60000);
    assert_int_equal(view(C, A)->state, SWIM_ALIVE);
    assert_int_equal(net.streams[C], sent);
    net_down();
  }
}

/* C was down long enough for A and B to hold it dead, and restarts
 * knowing only B (its join answered by a seed that did not know A, as in
 * the change simulator's join 3->5 seed 174). B takes it back alive, but
 * B's word never reaches A (B -> A lost meanwhile, and A <-> C until
 * B's broadcast queue is spent). A does not probe the
 * dead, C has never heard of A: before, no packet crossed between them
 * until a push/pull. Now A pings a dead member every few periods, with
 * its ALIVE in the PING: C learns A, its ACK brings back A's accusation,
 * C refutes. */
static void test_dead_and_unknown(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 8; seed++) {
    net_up(seed);
    run_until(3000);
    isolate(C, true);
    run_until(net.now + 15000);
    assert_int_equal(view(A, C)->state, SWIM_DEAD);
    assert_int_equal(view(B, C)->state, SWIM_DEAD);
    swim_free(net.sw[C]);
    node_up(C, seed + 100, 1u << B);
    net.cut[C][B] = net.cut[B][C] = false;
    net.cut[B][A] = true;
    run_until(net.now + 2500);
    isolate(C, false);
    net.cut[B][A] = false;
    assert_int_equal(view(B, C)->state, SWIM_ALIVE);
    assert_int_equal(view(A, C)->state, SWIM_DEAD);
    assert_null(swim_member_find(net.sw[C], id_of(A)));
    chorus_ms healed = net.now;
    while (net.now < healed + 15000 && view(A, C)->state != SWIM_ALIVE)
      run_until(net.now + 10);
    assert_int_equal(view(A, C)->state, SWIM_ALIVE);
    assert_non_null(swim_member_find(net.sw[C], id_of(A)));
    run_until(net.now + 20000);
    for (int i = 0; i < NODES; i++)
      for (int j = 0; j < NODES; j++)
        if (i != j)
          assert_int_equal(view(i, j)->state, SWIM_ALIVE);
    net_down();
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dead_unheard),
      cmocka_unit_test(test_dead_refuted_elsewhere),
      cmocka_unit_test(test_restarted_stranger),
      cmocka_unit_test(test_join_retried),
      cmocka_unit_test(test_dead_and_unknown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
