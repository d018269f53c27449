/* test_node_cas_kill.c: compare-and-set on three real chorusd processes
 * while replicas die by kill -9 and come back on the same data folder
 * (issue 23: "kill -9 a replica during CAS traffic: results stay
 * linearizable").
 *
 *   1. Four client threads race CAS operations on a few keys (serial
 *      reads, if-absent, if-value increments from the value last read,
 *      delete-if-value), each through a different node in turn. Meanwhile
 *      n2 is killed with SIGKILL and restarted 1.5 s later on its data
 *      folder (a promise or acceptance it answered was synced first, so
 *      it must still hold it), and later n1 is killed and restarted at
 *      once (its previous incarnation's connections still closing). An
 *      operation that errored with "may or may not have been applied", or
 *      whose connection died, is pending (unknown); one refused before
 *      proposing (EUNAVAILABLE, ECLOSED...) is left out. lin_check with
 *      lin_cas_register: every key's history is linearizable.
 *   2. A chain of N if-value increments from 0, each step retried through
 *      the next node until it is known to have applied, while a thread
 *      kills n0 at a moment that falls mid-chain (often under a request,
 *      which then ends unknown) and n0 restarts later in the chain: the
 *      value ends at exactly N (an unknown step that applied shows as "not
 *      applied, value i + 1" on its retry).
 *
 * About 12 s under ASan. CHORUS_KEEP_LOGS=1 keeps the nodes' logs. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cas_client.h"
#include "lin.h"
#include "node_harness.h"

#define NCLIENTS 4
#define NKEYS 3
#define RUN_MS 9000
#define KILL2_AT_MS 1500
#define DOWN2_MS 1500
#define KILL1_AT_MS 5000
#define MAX_OPS 40000
#define CHAIN_N 40
#define CHAIN_KILL_MS 120 /* after the chain starts: mid-request, often */
#define CHAIN_BACK_AT 30  /* the step at which n0 comes back */

/* ------------------------------------------------------------------------
 * 1. Racing clients, replicas killed and restarted, the checker
 * ------------------------------------------------------------------------ */

static struct lin_op hist[MAX_OPS];
static size_t nhist;
static pthread_mutex_t hist_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t run_end_us;
static int counts[4]; /* by outcome */
static int lost;      /* connections that died under a request */

static void record(const struct lin_op *op, enum outcome o, int code) {
  pthread_mutex_lock(&hist_lock);
  counts[o]++;
  if (code == -1000)
    lost++;
  if (o != REFUSED && nhist < MAX_OPS)
    hist[nhist++] = *op;
  pthread_mutex_unlock(&hist_lock);
}

struct client_arg {
  int index;
  int fds[3];
};

static void *client_main(void *p) {
  struct client_arg *a = p;
  uint64_t seed = 0x2545f4914f6cdd1dull * (uint64_t)(a->index + 1);
  int64_t seen[NKEYS];
  for (int k = 0; k < NKEYS; k++)
    seen[k] = LIN_ABSENT;
  uint64_t id = 1000000ull * (uint64_t)(a->index + 11);
  for (unsigned n = 0; now_us() < run_end_us; n++) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    int node = (int)((a->index + n / 3) % 3); /* a new coordinator often */
    if (a->fds[node] < 0 && (a->fds[node] = open_node(node)) < 0) {
      sleep_ms(20); /* down: the next node on the next turn */
      continue;
    }
    int k = (int)(seed % NKEYS);
    char key[16];
    snprintf(key, sizeof key, "kill-k%d", k);
    unsigned pick = (unsigned)(seed >> 20) % 100;
    struct lin_op op = {.key = (uint64_t)k, .client = (uint32_t)a->index};
    uint8_t cond;
    if (pick < 30 || (seen[k] == LIN_ABSENT && pick >= 60)) {
      cond = WIRE_CAS_READ;
      op.kind = LIN_READ;
    } else if (seen[k] == LIN_ABSENT) {
      cond = WIRE_CAS_IF_ABSENT;
      op.kind = LIN_CAS;
      op.in[0] = LIN_ABSENT;
      op.in[1] = 1000 * (a->index + 1);
    } else if (pick < 38) {
      cond = WIRE_CAS_DELETE_IF_VALUE;
      op.kind = LIN_CAS;
      op.in[0] = seen[k];
      op.in[1] = LIN_ABSENT;
    } else {
      cond = WIRE_CAS_IF_VALUE;
      op.kind = LIN_CAS;
      op.in[0] = seen[k];
      op.in[1] = seen[k] + 1;
    }
    struct cas_res r = cas_run(&a->fds[node], ++id, key, cond, &op, &seen[k]);
    record(&op, r.outcome, r.code);
  }
  return NULL;
}

static void describe_fail(const struct lin_result *res) {
  cas_describe_fail(res, hist, nhist);
}

/* kill9: SIGKILL node @i and reap it. */
static void kill9(int i) {
  assert_int_equal(kill(nodes[i].pid, SIGKILL), 0);
  assert_true(wait_exit(&nodes[i], 10) != -1);
}

/* restart: node @i again on its data folder, seeded through another. */
static void restart(int i) {
  int seed = i == 0 ? 1 : 0;
  start_member(&nodes[i], keyfile_a, nodes[seed].port, i == 0 ? "8" : "64");
}

static void cas_survives_kill9(void **state) {
  (void)state;
  ensure_cluster();
  struct client_arg args[NCLIENTS];
  pthread_t th[NCLIENTS];
  for (int i = 0; i < NCLIENTS; i++) {
    args[i].index = i;
    for (int j = 0; j < 3; j++)
      args[i].fds[j] = -1;
  }
  uint64_t t0 = now_us();
  run_end_us = t0 + RUN_MS * 1000ull;
  for (int i = 0; i < NCLIENTS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, client_main, &args[i]), 0);
  sleep_ms(KILL2_AT_MS);
  kill9(2);
  sleep_ms(DOWN2_MS);
  restart(2);
  sleep_ms(KILL1_AT_MS - KILL2_AT_MS - DOWN2_MS);
  kill9(1);
  restart(1); /* at once: a new incarnation on the same folder */
  for (int i = 0; i < NCLIENTS; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int j = 0; j < 3; j++)
      if (args[i].fds[j] >= 0)
        close(args[i].fds[j]);
  }
  print_message("# %zu operations in %.1f s: %d applied, %d not applied "
                "(reads included), %d unknown (%d lost connections), %d "
                "refused\n",
                nhist, (double)(now_us() - t0) / 1e6, counts[APPLIED],
                counts[NOT_APPLIED], counts[UNKNOWN], lost, counts[REFUSED]);
  assert_true(counts[APPLIED] >= 10);
  struct lin_result res;
  lin_check(&lin_cas_register, hist, nhist, 50000000, &res);
  if (res.verdict != LIN_OK)
    describe_fail(&res);
  print_message("# lin_check: %s in %" PRIu64 " steps\n",
                res.verdict == LIN_OK ? "linearizable" : "NOT linearizable",
                res.steps);
  assert_int_equal(res.verdict, LIN_OK);
  wait_alive(3, 30); /* the restarted nodes are back for the next case */
}

/* ------------------------------------------------------------------------
 * 2. A chain of increments across a kill -9 ends at exactly N
 * ------------------------------------------------------------------------ */

static atomic_int chain_killed;

/* The chain's killer: SIGKILL n0 a moment after the chain starts, whatever
 * the chain is doing then (no cmocka asserts off the main thread). */
static void *chain_killer(void *p) {
  (void)p;
  sleep_ms(CHAIN_KILL_MS);
  kill(nodes[0].pid, SIGKILL);
  atomic_store(&chain_killed, 1);
  return NULL;
}

static void cas_chain_across_kill9(void **state) {
  (void)state;
  ensure_cluster();
  pthread_t killer;
  int reaped = 0;
  assert_int_equal(pthread_create(&killer, NULL, chain_killer, NULL), 0);
  int fds[3];
  for (int i = 0; i < 3; i++)
    fds[i] = open_node(i);
  uint64_t id = 19000000;
  struct cas_res r;
  int unknown = 0;
  int64_t i = -1; /* -1: the if-absent that starts the chain at 0 */
  for (int tries = 0; i < CHAIN_N; tries++) {
    assert_true(tries < 40 * CHAIN_N);
    if (!reaped && atomic_load(&chain_killed)) {
      assert_true(wait_exit(&nodes[0], 10) != -1);
      reaped = 1;
      if (fds[0] >= 0)
        close(fds[0]);
      fds[0] = -1;
    }
    if (reaped == 1 && i >= CHAIN_BACK_AT) {
      restart(0);
      reaped = 2;
    }
    int node = tries % 3;
    if (fds[node] < 0 && (fds[node] = open_node(node)) < 0) {
      sleep_ms(20);
      continue;
    }
    int gone = i < 0 ? cas_call(fds[node], ++id, "kill-chain",
                                WIRE_CAS_IF_ABSENT, 0, 0, &r)
                     : cas_call(fds[node], ++id, "kill-chain",
                                WIRE_CAS_IF_VALUE, i, i + 1, &r);
    if (gone) {
      close(fds[node]);
      fds[node] = -1;
    }
    if (r.outcome == APPLIED) {
      i++;
    } else if (r.outcome == NOT_APPLIED) {
      /* The value is i + 1 (0 for the start) only when an earlier try of
       * this step ended unknown and was applied after all; anything else
       * is a lost or doubled increment. */
      assert_true(r.present);
      assert_int_equal(r.value, i + 1);
      i++;
    } else if (r.outcome == UNKNOWN) {
      unknown++;
    }
  }
  int got = 0;
  for (int tries = 0; tries < 30 && !got; tries++) {
    int node = 1 + tries % 2;
    if (fds[node] < 0 && (fds[node] = open_node(node)) < 0)
      continue;
    if (cas_call(fds[node], ++id, "kill-chain", WIRE_CAS_READ, 0, 0, &r) == 0 &&
        r.outcome == NOT_APPLIED)
      got = 1;
    else
      sleep_ms(100);
  }
  assert_int_equal(pthread_join(killer, NULL), 0);
  assert_true(got);
  print_message("# chain of %d through a kill -9 of n0 (%s): %d unknown "
                "steps, value %" PRId64 "\n",
                CHAIN_N, reaped ? "mid-chain" : "after it", unknown, r.value);
  assert_int_equal(r.value, CHAIN_N);
  for (int k = 0; k < 3; k++)
    if (fds[k] >= 0)
      close(fds[k]);
  if (!reaped) /* the chain outran the killer */
    assert_true(wait_exit(&nodes[0], 10) != -1);
  if (reaped != 2)
    restart(0);
}

static int teardown(void **state) {
  return group_teardown(state);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      TIMED(cas_survives_kill9),
      TIMED(cas_chain_across_kill9),
  };
  int failed =
      cmocka_run_group_tests_name("node_cas_kill", tests, NULL, teardown);
  return harness_finish(failed);
}
