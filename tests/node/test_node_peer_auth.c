/* test_node_peer_auth.c: the peer challenge-response and frame tags
 * (node/core/peer_auth.h) on real processes. n0 advertises a relay in
 * this test (a thread forwarding TCP and UDP to n0's port), so every
 * other node's link to n0 crosses it: the relay records a real dialer's
 * handshake and, on request, flips one byte of a frame after it.
 *
 * - the 3-node cluster forms and serves at QUORUM through the relay;
 * - the recorded HELLO + PROOF, replayed on a new connection, meets a new
 *   challenge: refused (ERROR EAUTH, node.peer_auth_failed), and n0 keeps
 *   serving;
 * - a flipped byte in a frame after the handshake fails its tag: n0
 *   closes that link only (node.peer_frame_auth_failed), the dialer
 *   redials, and writes at ALL (which need n0's acknowledgement) succeed
 *   again. About 6 s under ASan. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "node_harness.h"

/* ------------------------------------------------------------------------
 * The relay
 * ------------------------------------------------------------------------ */

#define PAIRS 16

struct pair {
  int from, to;     /* the dialer's side, n0's side; -1: unused */
  uint8_t hdr[4];   /* the dialer's frame being parsed: its prefix */
  size_t hdr_got;   /* prefix bytes read of the current frame */
  size_t body_left; /* body bytes still to come of it */
  unsigned frame;   /* its index on this link (0: HELLO, 1: PROOF) */
  bool recording;   /* this link's first frames are the recording */
};

static struct {
  int port, target;
  int tcp, udp, udp_out; /* listening TCP, UDP on @port; UDP towards n0 */
  struct pair p[PAIRS];
  pthread_t thread;
  atomic_bool stop, tamper, tampered;
  atomic_bool recorded; /* rec holds a whole HELLO + PROOF */
  uint8_t rec[512];
  size_t rec_len;
  bool any_recording;
} relay;

static int bind_on(int type, int port) {
  int fd = socket(AF_INET, type, 0);
  assert_true(fd >= 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  if (type == SOCK_STREAM)
    assert_int_equal(listen(fd, 16), 0);
  return fd;
}

static void pair_close(struct pair *p) {
  if (p->from >= 0)
    close(p->from);
  if (p->to >= 0)
    close(p->to);
  memset(p, 0, sizeof *p);
  p->from = p->to = -1;
}

/* dialer_bytes: the dialer's @n bytes at @b through the frame parser:
 * recorded while they are its first two frames, one flipped when asked
 * (a byte of a frame body after the PEER_PROOF that is not a PEER_TAG:
 * frames 3, 5, 7, ... on a tagged link). */
static void dialer_bytes(struct pair *p, uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p->recording && p->frame < 2 && relay.rec_len < sizeof relay.rec)
      relay.rec[relay.rec_len++] = b[i];
    if (p->body_left == 0) {
      p->hdr[p->hdr_got++] = b[i];
      if (p->hdr_got == 4) {
        p->body_left = (size_t)p->hdr[0] << 24 | (size_t)p->hdr[1] << 16 |
                       (size_t)p->hdr[2] << 8 | p->hdr[3];
        p->hdr_got = 0;
      }
      continue;
    }
    if (p->frame >= 3 && p->frame % 2 == 1 && atomic_load(&relay.tamper)) {
      b[i] ^= 0x01;
      atomic_store(&relay.tamper, false);
      atomic_store(&relay.tampered, true);
    }
    if (--p->body_left == 0) {
      p->frame++;
      if (p->recording && p->frame == 2)
        atomic_store(&relay.recorded, true);
    }
  }
}

static bool forward(struct pair *p, bool from_dialer) {
  uint8_t buf[65536];
  int src = from_dialer ? p->from : p->to, dst = from_dialer ? p->to : p->from;
  ssize_t n = read(src, buf, sizeof buf);
  if (n <= 0)
    return false;
  if (from_dialer)
    dialer_bytes(p, buf, (size_t)n);
  return write_all(dst, buf, (size_t)n) == 0;
}

static void *relay_run(void *arg) {
  (void)arg;
  while (!atomic_load(&relay.stop)) {
    struct pollfd pf[2 + 2 * PAIRS];
    int np = 0;
    pf[np++] = (struct pollfd){.fd = relay.tcp, .events = POLLIN};
    pf[np++] = (struct pollfd){.fd = relay.udp, .events = POLLIN};
    for (int i = 0; i < PAIRS; i++) {
      pf[np++] = (struct pollfd){.fd = relay.p[i].from, .events = POLLIN};
      pf[np++] = (struct pollfd){.fd = relay.p[i].to, .events = POLLIN};
    }
    if (poll(pf, (nfds_t)np, 50) <= 0)
      continue;
    if (pf[0].revents & POLLIN) {
      int c = accept(relay.tcp, NULL, NULL);
      int t = c >= 0 ? tcp_connect(relay.target) : -1;
      int slot = -1;
      for (int i = 0; i < PAIRS && slot < 0; i++)
        if (relay.p[i].from < 0)
          slot = i;
      if (c >= 0 && t >= 0 && slot >= 0) {
        struct pair *p = &relay.p[slot];
        p->from = c;
        p->to = t;
        /* The first link records: a real dialer's HELLO and PROOF. */
        p->recording = !relay.any_recording;
        relay.any_recording = true;
      } else {
        if (c >= 0)
          close(c);
        if (t >= 0)
          close(t);
      }
    }
    if (pf[1].revents & POLLIN) {
      uint8_t d[65536];
      ssize_t n = recv(relay.udp, d, sizeof d, 0);
      struct sockaddr_in a = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)relay.target),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
      if (n > 0)
        (void)sendto(relay.udp_out, d, (size_t)n, 0, (struct sockaddr *)&a,
                     sizeof a);
    }
    for (int i = 0; i < PAIRS; i++) {
      struct pair *p = &relay.p[i];
      short rf = pf[2 + 2 * i].revents, rt = pf[3 + 2 * i].revents;
      if (p->from < 0)
        continue;
      bool ok = true;
      if (rf & (POLLIN | POLLHUP | POLLERR))
        ok = forward(p, true);
      if (ok && (rt & (POLLIN | POLLHUP | POLLERR)))
        ok = forward(p, false);
      if (!ok) /* one side closed: so does the other */
        pair_close(p);
    }
  }
  return NULL;
}

static void relay_start(int port, int target) {
  memset(&relay, 0, sizeof relay);
  relay.port = port;
  relay.target = target;
  for (int i = 0; i < PAIRS; i++)
    relay.p[i].from = relay.p[i].to = -1;
  relay.tcp = bind_on(SOCK_STREAM, port);
  relay.udp = bind_on(SOCK_DGRAM, port);
  /* SWIM answers members at their advertised address, never at a
   * datagram's source: the forwarding socket only sends. */
  relay.udp_out = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(relay.udp_out >= 0);
  assert_int_equal(pthread_create(&relay.thread, NULL, relay_run, NULL), 0);
}

static void relay_stop(void) {
  atomic_store(&relay.stop, true);
  pthread_join(relay.thread, NULL);
  for (int i = 0; i < PAIRS; i++)
    pair_close(&relay.p[i]);
  close(relay.tcp);
  close(relay.udp);
  close(relay.udp_out);
}

/* ------------------------------------------------------------------------
 * The cases
 * ------------------------------------------------------------------------ */

static int relay_port;

static void wait_stat(const struct proc *p, const char *name, int64_t want,
                      double secs) {
  double until = now_s() + secs;
  int64_t v = -1;
  while ((v = stat_of(p->port, name)) < want && now_s() < until)
    sleep_ms(50);
  if (v < want)
    fail_msg("%s of %s is %lld, want >= %lld", name, p->name, (long long)v,
             (long long)want);
}

static struct wire_options at_all(void) {
  struct wire_options o = quorum();
  o.w = WIRE_ALL;
  return o;
}

static void test_cluster_forms_through_the_relay(void **state) {
  (void)state;
  relay_port = free_port();
  for (int i = 0; i < 3; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    node_init(&nodes[i], name);
  }
  relay_start(relay_port, nodes[0].port);
  static char adv[32];
  snprintf(adv, sizeof adv, "127.0.0.1:%d", relay_port);
  static const char *n0_extra[] = {"--advertise", adv, NULL};
  member_extra = n0_extra;
  start_member(&nodes[0], keyfile_a, relay_port, "64");
  member_extra = NULL;
  for (int i = 1; i < 3; i++)
    start_member(&nodes[i], keyfile_a, relay_port, "64");
  wait_alive(3, 30);
  int fd = client_open(nodes[1].port);
  assert_true(fd >= 0);
  assert_int_equal(put_with(fd, "through-relay", "v", at_all()), 0);
  char got[32];
  assert_int_equal(get(fd, "through-relay", got, sizeof got), 0);
  assert_string_equal(got, "v");
  close(fd);
  double until = now_s() + 10;
  while (!atomic_load(&relay.recorded) && now_s() < until)
    sleep_ms(20);
  assert_true(atomic_load(&relay.recorded));
  assert_int_equal(stat_of(nodes[0].port, "node.peer_auth_failed"), 0);
  assert_int_equal(stat_of(nodes[0].port, "node.peer_frame_auth_failed"), 0);
}

static void test_replayed_handshake_is_refused(void **state) {
  (void)state;
  int64_t before = stat_of(nodes[0].port, "node.peer_auth_failed");
  int fd = tcp_connect(nodes[0].port);
  assert_true(fd >= 0);
  assert_int_equal(write_all(fd, relay.rec, relay.rec_len), 0);
  /* A new challenge, then the refusal of the old proof, then the end. */
  const uint8_t want[] = {WIRE_WELCOME, WIRE_PEER_CHALLENGE, WIRE_ERROR};
  for (size_t i = 0; i < sizeof want; i++) {
    struct reply r;
    assert_int_equal(recv_msg(fd, &r), 0);
    assert_int_equal(r.m.type, want[i]);
    if (r.m.type == WIRE_ERROR)
      assert_int_equal(r.m.error.code, CHORUS_EAUTH);
    reply_free(&r);
  }
  struct reply r;
  assert_int_equal(recv_msg(fd, &r), -1);
  close(fd);
  wait_stat(&nodes[0], "node.peer_auth_failed", before + 1, 5);
  /* n0 keeps serving, itself and as a replica. */
  fd = client_open(nodes[0].port);
  assert_true(fd >= 0);
  assert_int_equal(put_with(fd, "after-replay", "v", at_all()), 0);
  close(fd);
}

static void test_flipped_frame_closes_the_link_only(void **state) {
  (void)state;
  int64_t before = stat_of(nodes[0].port, "node.peer_frame_auth_failed");
  atomic_store(&relay.tamper, true);
  /* Writes through n1 and n2 send n0 frames across the relay; one of them
   * is flipped. Some of these writes may fail while that link is down. */
  int fd1 = client_open(nodes[1].port), fd2 = client_open(nodes[2].port);
  assert_true(fd1 >= 0 && fd2 >= 0);
  double until = now_s() + 10;
  for (int k = 0; !atomic_load(&relay.tampered) && now_s() < until; k++) {
    char key[32];
    snprintf(key, sizeof key, "tamper-%d", k);
    (void)put(k % 2 ? fd1 : fd2, key, "v");
  }
  assert_true(atomic_load(&relay.tampered));
  wait_stat(&nodes[0], "node.peer_frame_auth_failed", before + 1, 5);
  /* The link redials: writes at ALL need n0's acknowledgement through it
   * again, from both other nodes. */
  until = now_s() + 15;
  int ok = 0;
  for (int k = 0; ok < 4 && now_s() < until; k++) {
    char key[32];
    snprintf(key, sizeof key, "redialled-%d", k);
    if (put_with(k % 2 ? fd1 : fd2, key, "v", at_all()) == 0)
      ok++;
    else
      sleep_ms(100);
  }
  assert_int_equal(ok, 4);
  close(fd1);
  close(fd2);
  /* The cluster never lost a member over it. */
  for (int i = 0; i < 3; i++)
    assert_int_equal(stat_of(nodes[i].port, "members.alive"), 3);
}

static int teardown(void **state) {
  int rc = group_teardown(state);
  relay_stop();
  return rc;
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      TIMED(test_cluster_forms_through_the_relay),
      TIMED(test_replayed_handshake_is_refused),
      TIMED(test_flipped_frame_closes_the_link_only),
  };
  int failed =
      cmocka_run_group_tests_name("node_peer_auth", tests, NULL, teardown);
  return harness_finish(failed);
}
