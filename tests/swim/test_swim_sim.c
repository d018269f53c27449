/* test_swim_sim.c: SWIM plugged into the deterministic cluster simulator
 * (tests/sim) as a struct sim_node_ops: crash and restart, partitions with
 * the simulator's own network and clocks, and replay by trace hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_alloc.h"
#include "sim.h"
#include "swim.h"

/* ---- the adaptor: sim events in, swim calls, sim effects out ---- */

struct snode {
  struct swim *sw;
  int index, nodes;
  struct sim_effects *fx; /* during handle() only */
  uint64_t gen;           /* timer generation: stale timers are ignored */
  chorus_ms armed_at;
  int armed;
};

static void sn_send(void *ctx, const char *addr, enum swim_channel ch,
                    const void *data, size_t len) {
  struct snode *n = ctx;
  (void)ch; /* the simulator has one kind of link */
  int to = atoi(addr + 1);
  if (n->fx != NULL && addr[0] == 'n' && to >= 0 && to < n->nodes &&
      to != n->index)
    (void)sim_fx_send(n->fx, to, data, len);
}

static int sn_create(void **state, const struct sim_node_config *cfg) {
  struct snode *n = chorus_calloc(1, sizeof *n);
  if (n == NULL)
    return CHORUS_ENOMEM;
  n->index = cfg->index;
  n->nodes = cfg->nodes;
  struct swim_config c;
  memset(&c, 0, sizeof c);
  c.id = cfg->ids[cfg->index];
  snprintf(c.meta.addr, sizeof c.meta.addr, "n%d", cfg->index);
  snprintf(c.meta.dc, sizeof c.meta.dc, "dc%d", cfg->dc[cfg->index]);
  c.meta.ownership = RING_NORMAL;
  snprintf(c.cluster, sizeof c.cluster, "sim");
  memset(c.key, 0x5a, sizeof c.key);
  swim_timing_lan(&c.timing);
  c.seed = cfg->seed;
  c.clock_bound_ms = 500;
  c.fx.ctx = n;
  c.fx.send = sn_send;
  c.tracer = cfg->tracer;
  int rc = swim_new(&c, &n->sw);
  if (rc != CHORUS_OK) {
    chorus_free(n);
    return rc;
  }
  *state = n;
  return CHORUS_OK;
}

static void sn_destroy(void *state) {
  struct snode *n = state;
  swim_free(n->sw);
  chorus_free(n);
}

static int sn_inspect(void *state, enum sim_op_type type, const void *key,
                      size_t klen, struct sim_replica_view *out) {
  (void)state;
  (void)type;
  (void)key;
  (void)klen;
  (void)out;
  return CHORUS_ENOTFOUND;
}

static int sn_handle(void *state, const struct sim_event *ev,
                     struct sim_effects *fx) {
  struct snode *n = state;
  n->fx = fx;
  int rc = CHORUS_OK;
  switch (ev->kind) {
  case SIM_EV_START:
    rc = swim_start(n->sw, ev->now);
    if (rc == CHORUS_OK) {
      /* every node knows the seeds: nodes 0 and 1 */
      const char *seeds[] = {"n0", "n1"};
      rc = swim_join(n->sw, seeds, 2, ev->now, ev->wall);
    }
    break;
  case SIM_EV_MESSAGE:
    rc =
        swim_handle_packet(n->sw, ev->msg.data, ev->msg.len, ev->now, ev->wall);
    break;
  case SIM_EV_TIMER:
    if (ev->timer.id != n->gen)
      break;
    n->armed = 0;
    rc = swim_tick(n->sw, ev->now, ev->wall);
    break;
  case SIM_EV_REQUEST: {
    struct sim_reply r = {.id = ev->req.id, .status = CHORUS_ENOTSUP};
    rc = sim_fx_reply(fx, &r);
    break;
  }
  case SIM_EV_SYNC_DONE:
    break;
  }
  if (rc == CHORUS_OK) {
    chorus_ms d = swim_next_deadline(n->sw);
    if (d != UINT64_MAX && (!n->armed || d < n->armed_at)) {
      n->gen++;
      n->armed = 1;
      n->armed_at = d;
      rc = sim_fx_timer(fx, n->gen, d > ev->now ? d - ev->now : 0);
    }
  }
  n->fx = NULL;
  return rc;
}

static const struct sim_node_ops swim_sim_ops = {
    .name = "swim",
    .create = sn_create,
    .handle = sn_handle,
    .inspect = sn_inspect,
    .destroy = sn_destroy,
};

/* ---- helpers ---- */

static struct sim *cluster(int nodes, uint64_t seed) {
  struct sim_config cfg = {
      .seed = seed, .nodes = nodes, .dcs = 1, .ops = &swim_sim_ops};
  cfg.faults.fsync_ms = 2;
  struct sim *s = NULL;
  assert_int_equal(sim_new(&cfg, &s), CHORUS_OK);
  return s;
}

static struct swim *sw(struct sim *s, int i) {
  struct snode *n = sim_node_state(s, i);
  assert_non_null(n);
  return n->sw;
}

static enum swim_state seen(struct sim *s, int observer, int subject) {
  struct snode *o = sim_node_state(s, observer);
  assert_non_null(o);
  /* the subject is the member with its address */
  char addr[16];
  snprintf(addr, sizeof addr, "n%d", subject);
  for (size_t i = 0; i < swim_member_count(o->sw); i++) {
    const struct swim_member *m = swim_member_at(o->sw, i);
    if (strcmp(m->meta.addr, addr) == 0)
      return m->state;
  }
  return (enum swim_state) - 1;
}

static int everyone_sees(struct sim *s, int subject, enum swim_state st) {
  for (int i = 0; i < sim_nodes(s); i++)
    if (i != subject && sim_node_up(s, i) && seen(s, i, subject) != st)
      return 0;
  return 1;
}

static void test_sim_join_crash_restart(void **state) {
  (void)state;
  struct sim *s = cluster(8, 7);
  /* everyone joins through the seeds */
  assert_int_equal(sim_run_for(s, SIM_MS(10000)), CHORUS_OK);
  for (int i = 0; i < 8; i++)
    assert_int_equal(swim_alive_count(sw(s, i)), 8);
  sim_kill(s, 3, SIM_KEEP_ALL);
  assert_int_equal(sim_run_for(s, SIM_MS(60000)), CHORUS_OK);
  assert_true(everyone_sees(s, 3, SWIM_DEAD));
  /* the restarted node (incarnation 0 again) refutes its death */
  assert_int_equal(sim_restart(s, 3), CHORUS_OK);
  assert_int_equal(sim_run_for(s, SIM_MS(20000)), CHORUS_OK);
  assert_true(everyone_sees(s, 3, SWIM_ALIVE));
  assert_true(swim_incarnation(sw(s, 3)) > 0);
  const char *msg = NULL;
  assert_int_equal(sim_failure(s, &msg), CHORUS_OK);
  sim_free(s);
}

/* A minority partition is declared dead by the majority and comes back
 * after the heal (gossip to the recently dead, push/pull). */
static void test_sim_partition_heal(void **state) {
  (void)state;
  struct sim *s = cluster(9, 8);
  assert_int_equal(sim_run_for(s, SIM_MS(10000)), CHORUS_OK);
  sim_partition(s, (1u << 7) | (1u << 8));
  assert_int_equal(sim_run_for(s, SIM_MS(60000)), CHORUS_OK);
  assert_int_equal(seen(s, 0, 7), SWIM_DEAD);
  assert_int_equal(seen(s, 8, 0), SWIM_DEAD);
  assert_int_equal(seen(s, 8, 7), SWIM_ALIVE);
  sim_heal(s);
  assert_int_equal(sim_run_for(s, SIM_MS(40000)), CHORUS_OK);
  for (int j = 0; j < 9; j++)
    assert_true(everyone_sees(s, j, SWIM_ALIVE));
  sim_free(s);
}

/* The same seed replays the same run, event for event. */
static void test_sim_replay(void **state) {
  (void)state;
  uint64_t h[2];
  for (int r = 0; r < 2; r++) {
    struct sim *s = cluster(6, 99);
    assert_int_equal(sim_run_for(s, SIM_MS(5000)), CHORUS_OK);
    sim_kill(s, 2, SIM_KEEP_ALL);
    assert_int_equal(sim_run_for(s, SIM_MS(20000)), CHORUS_OK);
    h[r] = sim_trace_hash(s);
    sim_free(s);
  }
  assert_true(h[0] == h[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sim_join_crash_restart),
      cmocka_unit_test(test_sim_partition_heal),
      cmocka_unit_test(test_sim_replay),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
