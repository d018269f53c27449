/* test_sim_engine.c: the engine itself, on a probe protocol: determinism,
 * latency matrices, partitions, drops, duplicates, clogs, clocks, crashes
 * that lose unsynced writes, incarnations, injected fsync failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "sim.h"
#include "sim_toy.h"
#include "store_mem.h"

/* ---- the probe protocol ---------------------------------------------------
 * Client PUTs are commands: key "send" sends the value to every peer; key
 * "write" stores it unsynced and answers at once; key "durable" stores it
 * and answers after a sync barrier. On start the probe counts the keys it
 * recovers and arms timer 7 for 100 ms. It records what it saw.
 */

#define MAX_ARRIVALS 64

struct arrival {
  int from;
  uint64_t v;
  sim_time at;
};

struct probe {
  int index;
  struct store *store;
  uint32_t epoch;
  size_t loaded;
  struct arrival arr[MAX_ARRIVALS];
  int narr;
  int timers;
  uint64_t pending_req;
  int sync_status;
  chorus_ms last_now, last_wall;
  int now_backwards, wall_backwards;
};

static struct sim *g_sim; /* lets the probe stamp arrivals in virtual us */

static int probe_create(void **state, const struct sim_node_config *cfg) {
  struct probe *p = chorus_calloc(1, sizeof *p);
  if (p == NULL)
    return CHORUS_ENOMEM;
  p->index = cfg->index;
  p->sync_status = 1;
  *state = p;
  return CHORUS_OK;
}

static int probe_handle(void *state, const struct sim_event *ev,
                        struct sim_effects *fx) {
  struct probe *p = state;
  if (p->last_now > ev->now)
    p->now_backwards = 1;
  if (p->last_wall > ev->wall)
    p->wall_backwards = 1;
  p->last_now = ev->now;
  p->last_wall = ev->wall;
  switch (ev->kind) {
  case SIM_EV_START: {
    p->store = ev->start.store;
    p->epoch = ev->start.epoch;
    struct store_iter *it;
    assert_int_equal(
        store_iter_open(p->store, STORE_DATA, NULL, 0, NULL, 0, &it),
        CHORUS_OK);
    for (; store_iter_valid(it); store_iter_next(it))
      p->loaded++;
    store_iter_close(it);
    return sim_fx_timer(fx, 7, 100);
  }
  case SIM_EV_MESSAGE:
    if (p->narr < MAX_ARRIVALS && ev->msg.len == 8)
      p->arr[p->narr++] = (struct arrival){
          ev->msg.from, store_be64_get(ev->msg.data), sim_now(g_sim)};
    return CHORUS_OK;
  case SIM_EV_TIMER:
    p->timers++;
    return CHORUS_OK;
  case SIM_EV_REQUEST: {
    const struct sim_request *r = &ev->req;
    struct sim_reply ok = {.id = r->id, .status = CHORUS_OK};
    if (r->klen == 4 && memcmp(r->key, "send", 4) == 0) {
      for (int i = 0; i < sim_nodes(g_sim); i++)
        if (i != p->index) {
          int rc = sim_fx_send(fx, i, r->value, r->vlen);
          if (rc != CHORUS_OK)
            return rc;
        }
      return sim_fx_reply(fx, &ok);
    }
    if (r->klen == 6 && memcmp(r->key, "stream", 6) == 0) {
      for (int i = 0; i < sim_nodes(g_sim); i++)
        if (i != p->index) {
          int rc = sim_fx_send_stream(fx, i, r->value, r->vlen);
          if (rc != CHORUS_OK)
            return rc;
        }
      return sim_fx_reply(fx, &ok);
    }
    chorus_seq seq;
    int rc = store_put(p->store, STORE_DATA, r->value, r->vlen, "x", 1, &seq);
    if (rc != CHORUS_OK) {
      struct sim_reply bad = {.id = r->id, .status = rc};
      return sim_fx_reply(fx, &bad);
    }
    if (r->klen == 5 && memcmp(r->key, "write", 5) == 0)
      return sim_fx_reply(fx, &ok);
    p->pending_req = r->id;
    return sim_fx_sync(fx, seq, r->id);
  }
  case SIM_EV_SYNC_DONE: {
    p->sync_status = ev->sync.status;
    struct sim_reply rep = {
        .id = ev->sync.token, .status = ev->sync.status, .maybe_applied = 1};
    return sim_fx_reply(fx, &rep);
  }
  }
  return CHORUS_EINVAL;
}

static int probe_inspect(void *state, enum sim_op_type type, const void *key,
                         size_t klen, struct sim_replica_view *out) {
  memset(out, 0, sizeof *out);
  return CHORUS_OK;
}

static void probe_destroy(void *state) {
  chorus_free(state);
}

static const struct sim_node_ops probe_ops = {
    .name = "probe",
    .create = probe_create,
    .handle = probe_handle,
    .inspect = probe_inspect,
    .destroy = probe_destroy,
};

static struct sim *probe_sim(int nodes, int dcs, uint64_t seed) {
  struct sim_config cfg = {
      .seed = seed, .nodes = nodes, .dcs = dcs, .ops = &probe_ops};
  cfg.faults.fsync_ms = 2;
  struct sim *s;
  assert_int_equal(sim_new(&cfg, &s), CHORUS_OK);
  g_sim = s;
  assert_int_equal(sim_run_for(s, SIM_MS(1)), CHORUS_OK);
  return s;
}

static struct probe *P(struct sim *s, int i) {
  return sim_node_state(s, i);
}

/* broadcast: node @from sends @v to every peer; returns when replied. */
static void broadcast(struct sim *s, int from, uint64_t v) {
  const struct sim_result *r = sim_put(s, from, "send", v);
  assert_non_null(r);
  assert_int_equal(r->outcome, SIM_OK);
}

static int got(struct sim *s, int node, uint64_t v) {
  int n = 0;
  for (int i = 0; i < P(s, node)->narr; i++)
    n += P(s, node)->arr[i].v == v;
  return n;
}

static sim_time arrival(struct sim *s, int node, uint64_t v) {
  for (int i = 0; i < P(s, node)->narr; i++)
    if (P(s, node)->arr[i].v == v)
      return P(s, node)->arr[i].at;
  fail_msg("n%d never got %llu", node, (unsigned long long)v);
  return 0;
}

/* ---- tests ----------------------------------------------------------------
 */

static void same_seed_same_trace_hash(void **state) {
  (void)state;
  struct sim_run_config rc;
  sim_run_defaults(&rc, &sim_toy_gossip);
  rc.chaos = SIM_MS(3000);
  rc.quiet = 1;
  for (uint64_t seed = 1; seed <= 3; seed++) {
    struct sim_run_result a, b, c;
    assert_int_equal(sim_run_seed(&rc, seed, &a), CHORUS_OK);
    assert_int_equal(sim_run_seed(&rc, seed, &b), CHORUS_OK);
    assert_int_equal(sim_run_seed(&rc, seed + 1000, &c), CHORUS_OK);
    assert_true(a.trace_hash == b.trace_hash);
    assert_int_equal(a.events, b.events);
    assert_int_equal(a.ops, b.ops);
    assert_true(a.trace_hash != c.trace_hash);
    printf("# seed %llu: trace hash %016llx twice, %zu events\n",
           (unsigned long long)seed, (unsigned long long)a.trace_hash,
           a.events);
  }
}

static void latency_follows_the_datacenter_matrix(void **state) {
  (void)state;
  struct sim *s = probe_sim(4, 2, 11); /* n0, n2 in dc0; n1, n3 in dc1 */
  sim_time t0 = sim_now(s);
  broadcast(s, 0, 5);
  assert_int_equal(sim_run_for(s, SIM_MS(400)), CHORUS_OK);
  sim_time near = arrival(s, 2, 5) - t0, far = arrival(s, 1, 5) - t0;
  /* Client hop (<= 0.5 ms) plus the link. */
  assert_true(near < SIM_MS(2));
  assert_true(far >= SIM_MS(40) && far <= SIM_MS(151));
  sim_free(s);
}

static void partitions_block_what_they_should(void **state) {
  (void)state;
  struct sim *s = probe_sim(3, 1, 12);
  sim_isolate(s, 0);
  broadcast(s, 0, 1);
  broadcast(s, 1, 2);
  assert_int_equal(sim_run_for(s, SIM_MS(50)), CHORUS_OK);
  assert_int_equal(got(s, 1, 1) + got(s, 2, 1), 0);
  assert_int_equal(got(s, 2, 2), 1);
  assert_int_equal(got(s, 0, 2), 0);

  sim_heal(s);
  sim_one_way(s, 0, 1);
  broadcast(s, 0, 3);
  broadcast(s, 1, 4);
  assert_int_equal(sim_run_for(s, SIM_MS(50)), CHORUS_OK);
  assert_int_equal(got(s, 1, 3), 0);
  assert_int_equal(got(s, 2, 3), 1);
  assert_int_equal(got(s, 0, 4), 1);

  struct sim_nodeset side;
  sim_nodeset_clear(&side);
  sim_nodeset_add(&side, 0);
  sim_bridge(s, &side, 1); /* n0 | n2, n1 talks to both */
  broadcast(s, 0, 5);
  broadcast(s, 1, 6);
  assert_int_equal(sim_run_for(s, SIM_MS(50)), CHORUS_OK);
  assert_int_equal(got(s, 1, 5), 1);
  assert_int_equal(got(s, 2, 5), 0);
  assert_int_equal(got(s, 0, 6) + got(s, 2, 6), 2);

  sim_heal(s);
  broadcast(s, 2, 7);
  assert_int_equal(sim_run_for(s, SIM_MS(50)), CHORUS_OK);
  assert_int_equal(got(s, 0, 7) + got(s, 1, 7), 2);
  sim_free(s);
}

static void drops_duplicates_and_clogs(void **state) {
  (void)state;
  struct sim_config cfg = {.seed = 13, .nodes = 2, .dcs = 1, .ops = &probe_ops};
  cfg.faults.dup = 1.0;
  struct sim *s;
  assert_int_equal(sim_new(&cfg, &s), CHORUS_OK);
  g_sim = s;
  assert_int_equal(sim_nemesis_start(s), CHORUS_OK); /* applies drop/dup */
  broadcast(s, 0, 1);
  assert_int_equal(sim_run_for(s, SIM_MS(50)), CHORUS_OK);
  assert_int_equal(got(s, 1, 1), 2);
  assert_int_equal(sim_nemesis_stop(s), CHORUS_OK);

  sim_clog(s, 0, 1, SIM_MS(500));
  sim_time t0 = sim_now(s);
  broadcast(s, 0, 2);
  broadcast(s, 1, 3);
  assert_int_equal(sim_run_for(s, SIM_MS(50)), CHORUS_OK);
  assert_int_equal(got(s, 1, 2), 0); /* waiting out the clog */
  assert_int_equal(got(s, 0, 3), 1); /* the other direction flows */
  assert_int_equal(sim_run_for(s, SIM_MS(500)), CHORUS_OK);
  assert_true(arrival(s, 1, 2) >= t0 + SIM_MS(500));
  sim_free(s);

  cfg.faults.dup = 0;
  cfg.faults.drop = 1.0;
  assert_int_equal(sim_new(&cfg, &s), CHORUS_OK);
  g_sim = s;
  assert_int_equal(sim_nemesis_start(s), CHORUS_OK);
  broadcast(s, 0, 1);
  assert_int_equal(sim_run_for(s, SIM_MS(50)), CHORUS_OK);
  assert_int_equal(got(s, 1, 1), 0);
  sim_free(s);
}

/* Beyond 64 nodes: tables sized at creation, partitions named by a
 * struct sim_nodeset, the nemesis drawing sides of any size. */
static void large_clusters_and_node_sets(void **state) {
  (void)state;
  struct sim *s = probe_sim(1000, 4, 15);
  struct sim_nodeset side;
  sim_nodeset_clear(&side);
  for (int i = 100; i < 200; i++)
    sim_nodeset_add(&side, i);
  sim_nodeset_add(&side, 999);
  sim_nodeset_add(&side, SIM_MAX_NODES); /* ignored */
  assert_true(sim_nodeset_has(&side, 999));
  assert_false(sim_nodeset_has(&side, 200));
  assert_false(sim_nodeset_has(&side, -1));
  sim_partition(s, &side);
  broadcast(s, 150, 1);
  broadcast(s, 998, 2);
  assert_int_equal(sim_run_for(s, SIM_MS(400)), CHORUS_OK);
  assert_int_equal(got(s, 999, 1) + got(s, 100, 1) + got(s, 199, 1), 3);
  assert_int_equal(got(s, 0, 1) + got(s, 200, 1) + got(s, 998, 1), 0);
  assert_int_equal(got(s, 0, 2) + got(s, 500, 2), 2);
  assert_int_equal(got(s, 999, 2) + got(s, 150, 2), 0);
  sim_heal(s);
  broadcast(s, 150, 3);
  assert_int_equal(sim_run_for(s, SIM_MS(400)), CHORUS_OK);
  assert_int_equal(got(s, 0, 3) + got(s, 998, 3), 2);
  sim_free(s);

  /* The nemesis partitions a 100-node cluster; every node still up. */
  struct sim_config cfg = {
      .seed = 16, .nodes = 100, .dcs = 2, .ops = &probe_ops};
  cfg.faults.partition = 40;
  assert_int_equal(sim_new(&cfg, &s), CHORUS_OK);
  g_sim = s;
  assert_int_equal(sim_nemesis_start(s), CHORUS_OK);
  assert_int_equal(sim_run_for(s, SIM_MS(500)), CHORUS_OK);
  assert_int_equal(sim_nemesis_stop(s), CHORUS_OK);
  broadcast(s, 0, 4);
  assert_int_equal(sim_run_for(s, SIM_MS(400)), CHORUS_OK);
  for (int i = 1; i < 100; i++)
    assert_int_equal(got(s, i, 4), 1);
  sim_free(s);

  cfg.nodes = SIM_MAX_NODES + 1;
  assert_int_equal(sim_new(&cfg, &s), CHORUS_EINVAL);
}

/* A slow node gets its messages late; streams survive total loss. */
static void slow_nodes_and_streams(void **state) {
  (void)state;
  struct sim *s = probe_sim(3, 1, 17);
  sim_slow_node(s, 2, SIM_MS(300), 0);
  sim_time t0 = sim_now(s);
  for (uint64_t v = 1; v <= 10; v++)
    broadcast(s, 0, v);
  assert_int_equal(sim_run_for(s, SIM_MS(400)), CHORUS_OK);
  sim_time slowest = 0;
  for (uint64_t v = 1; v <= 10; v++) {
    assert_true(arrival(s, 1, v) - t0 < SIM_MS(10));
    sim_time d = arrival(s, 2, v) - t0;
    assert_true(d < SIM_MS(312));
    if (d > slowest)
      slowest = d;
  }
  assert_true(slowest > SIM_MS(100));
  sim_slow_node(s, 2, 0, 0);

  sim_set_loss(s, 1.0, 1.0);
  broadcast(s, 0, 11);
  const struct sim_result *r = sim_put(s, 0, "stream", 12);
  assert_non_null(r);
  assert_int_equal(r->outcome, SIM_OK);
  assert_int_equal(sim_run_for(s, SIM_MS(50)), CHORUS_OK);
  assert_int_equal(got(s, 1, 11) + got(s, 2, 11), 0);
  assert_int_equal(got(s, 1, 12), 1); /* once: no duplicate either */
  assert_int_equal(got(s, 2, 12), 1);
  sim_isolate(s, 2); /* partitions still cut streams */
  assert_int_equal(sim_put(s, 0, "stream", 13)->outcome, SIM_OK);
  assert_int_equal(sim_run_for(s, SIM_MS(50)), CHORUS_OK);
  assert_int_equal(got(s, 1, 13) + got(s, 2, 13), 1);
  sim_free(s);
}

static int send_to_1(void *state, chorus_ms now, chorus_ms wall,
                     struct sim_effects *fx, void *arg) {
  (void)state;
  (void)now;
  (void)wall;
  uint8_t b[8];
  store_be64_put(b, *(const uint64_t *)arg);
  return sim_fx_send(fx, 1, b, sizeof b);
}

/* An operator command runs inside a live node, its effects applied. */
static void node_do_runs_inside_the_node(void **state) {
  (void)state;
  struct sim *s = probe_sim(2, 1, 18);
  uint64_t v = 9;
  assert_int_equal(sim_node_do(s, 0, send_to_1, &v), CHORUS_OK);
  assert_int_equal(sim_run_for(s, SIM_MS(10)), CHORUS_OK);
  assert_int_equal(got(s, 1, 9), 1);
  sim_kill(s, 0, SIM_KEEP_ALL);
  assert_int_equal(sim_node_do(s, 0, send_to_1, &v), CHORUS_ECLOSED);
  assert_int_equal(sim_node_do(s, 2, send_to_1, &v), CHORUS_EINVAL);
  sim_free(s);
}

static void crash_loses_exactly_the_unsynced_writes(void **state) {
  (void)state;
  struct sim *s = probe_sim(1, 1, 14);
  const struct sim_result *r = sim_put(s, 0, "durable", 1);
  assert_non_null(r);
  assert_int_equal(r->outcome, SIM_OK);
  assert_int_equal(sim_put(s, 0, "write", 2)->outcome, SIM_OK);
  assert_int_equal(sim_put(s, 0, "write", 3)->outcome, SIM_OK);
  assert_int_equal(store_mem_unsynced(sim_store(s, 0)), 2);

  sim_kill(s, 0, SIM_KEEP_NONE);
  assert_false(sim_node_up(s, 0));
  r = sim_put(s, 0, "write", 4); /* refused: certainly not applied */
  assert_int_equal(r->outcome, SIM_FAIL);
  assert_int_equal(sim_restart(s, 0), CHORUS_OK);
  assert_int_equal(sim_run_for(s, SIM_MS(1)), CHORUS_OK);
  assert_int_equal(P(s, 0)->loaded, 1);
  assert_int_equal(P(s, 0)->epoch, 1);

  assert_int_equal(sim_put(s, 0, "write", 5)->outcome, SIM_OK);
  sim_kill(s, 0, SIM_KEEP_ALL);
  assert_int_equal(sim_restart(s, 0), CHORUS_OK);
  assert_int_equal(sim_run_for(s, SIM_MS(1)), CHORUS_OK);
  assert_int_equal(P(s, 0)->loaded, 2);
  sim_free(s);
}

static void dead_incarnations_get_no_events(void **state) {
  (void)state;
  struct sim *s = probe_sim(2, 1, 15);
  assert_int_equal(sim_run_for(s, SIM_MS(50)), CHORUS_OK);
  sim_kill(s, 1, SIM_KEEP_ALL); /* its 100 ms timer is pending */
  assert_int_equal(sim_restart(s, 1), CHORUS_OK);
  assert_int_equal(sim_run_for(s, SIM_MS(80)), CHORUS_OK);
  assert_int_equal(P(s, 1)->timers, 0); /* the old one was discarded */
  assert_int_equal(sim_run_for(s, SIM_MS(30)), CHORUS_OK);
  assert_int_equal(P(s, 1)->timers, 1);
  assert_int_equal(P(s, 0)->timers, 1);
  sim_free(s);
}

static void fsync_failure_fails_barrier_and_restarts_node(void **state) {
  (void)state;
  struct sim *s = probe_sim(1, 1, 16);
  store_inject_fault(sim_store(s, 0), STORE_FAULT_SYNC);
  const struct sim_result *r = sim_put(s, 0, "durable", 1);
  assert_non_null(r);
  assert_int_equal(r->outcome, SIM_UNKNOWN);
  assert_int_equal(r->status, CHORUS_ESYNCFAILED);
  /* Sticky until restart: the next write fails too. */
  r = sim_put(s, 0, "write", 2);
  assert_int_equal(r->status, CHORUS_ESYNCFAILED);
  assert_int_equal(sim_run_for(s, SIM_MS(300)), CHORUS_OK);
  assert_non_null(P(s, 0));
  assert_int_equal(P(s, 0)->epoch, 1); /* the supervisor restarted it */
  r = sim_put(s, 0, "durable", 3);
  assert_int_equal(r->outcome, SIM_OK);
  sim_free(s);
}

static void clocks_drift_and_jump_but_now_is_monotonic(void **state) {
  (void)state;
  struct sim_config cfg = {.seed = 17, .nodes = 3, .dcs = 1, .ops = &probe_ops};
  cfg.faults.drift_ppm = 5000;
  cfg.faults.offset_ms = 3000;
  struct sim *s;
  assert_int_equal(sim_new(&cfg, &s), CHORUS_OK);
  g_sim = s;
  assert_int_equal(sim_run_for(s, SIM_MS(10)), CHORUS_OK);
  for (int round = 0; round < 20; round++) {
    sim_clock_jump(s, round % 3, round % 2 ? 2000 : -3000);
    broadcast(s, round % 3, 100 + (uint64_t)round);
    assert_int_equal(sim_run_for(s, SIM_MS(100)), CHORUS_OK);
  }
  int wall_back = 0;
  chorus_ms walls[3];
  for (int i = 0; i < 3; i++) {
    assert_false(P(s, i)->now_backwards);
    wall_back += P(s, i)->wall_backwards;
    walls[i] = P(s, i)->last_wall;
  }
  assert_true(wall_back > 0); /* jumps do move wall clocks backwards */
  assert_true(walls[0] != walls[1] || walls[1] != walls[2]);
  sim_free(s);
}

static void order(struct sim *s, void *arg) {
  int *log = arg;
  log[log[0] + 1] = (int)sim_now(s);
  log[0]++;
}

static void equal_times_run_in_scheduling_order(void **state) {
  (void)state;
  struct sim *s = probe_sim(1, 1, 18);
  int log[8] = {0};
  sim_time base = sim_now(s);
  assert_int_equal(sim_schedule(s, 30, order, log), CHORUS_OK);
  assert_int_equal(sim_schedule(s, 10, order, log), CHORUS_OK);
  assert_int_equal(sim_schedule(s, 10, order, log), CHORUS_OK);
  assert_int_equal(sim_run_for(s, 40), CHORUS_OK);
  assert_int_equal(log[0], 3);
  assert_int_equal(log[1], (int)(base + 10));
  assert_int_equal(log[2], (int)(base + 10));
  assert_int_equal(log[3], (int)(base + 30));
  sim_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(same_seed_same_trace_hash),
      cmocka_unit_test(latency_follows_the_datacenter_matrix),
      cmocka_unit_test(partitions_block_what_they_should),
      cmocka_unit_test(drops_duplicates_and_clogs),
      cmocka_unit_test(large_clusters_and_node_sets),
      cmocka_unit_test(slow_nodes_and_streams),
      cmocka_unit_test(node_do_runs_inside_the_node),
      cmocka_unit_test(crash_loses_exactly_the_unsynced_writes),
      cmocka_unit_test(dead_incarnations_get_no_events),
      cmocka_unit_test(fsync_failure_fails_barrier_and_restarts_node),
      cmocka_unit_test(clocks_drift_and_jump_but_now_is_monotonic),
      cmocka_unit_test(equal_times_run_in_scheduling_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
