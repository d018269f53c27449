/* test_meta_node.c: the metadata Raft node (meta/meta_node.h) driven one
 * event at a time: a few nodes over memory stores, joined by an in-test
 * network that delivers, drops or holds messages, with crashes that lose
 * what was not synced. The simulator (tests/sim) runs the same code
 * inside whole node cores under swarms of faults; these cases pin the
 * behaviours one by one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "meta_node.h"
#include "store_mem.h"

#define MAXN 5
#define MAXQ 4096
#define CLUSTER 0xC1u

struct packet {
  int from, to;
  uint8_t *data;
  size_t len;
};

struct sync_req {
  uint64_t token;
  chorus_seq seq;
};

struct answer {
  uint64_t cookie;
  int status;
};

struct net {
  struct store *store[MAXN];
  struct meta_node *node[MAXN];
  bool up[MAXN];
  bool cut[MAXN][MAXN]; /* cut[a][b]: a's messages to b are lost */
  struct packet q[MAXQ];
  size_t nq;
  struct sync_req syncs[MAXN][64];
  size_t nsync[MAXN];
  struct answer answers[64];
  size_t nanswers;
  int states[MAXN]; /* state effects seen */
  chorus_ms now;
  int n;
  /* What the node core does for a joiner once it holds its ranges (there
   * is no data here): STREAMED, proposed again every 2 s until the state
   * shows it; off for nodes a test drives itself. */
  bool manual_stream[MAXN];
  chorus_ms streamed_at[MAXN];
};

struct ctx {
  struct net *net;
  int i;
};
static struct ctx ctxs[MAXN];

static chorus_node_id id_of(int i) {
  return 0x1000u + (chorus_node_id)i;
}

static int index_of(chorus_node_id id) {
  return (int)(id - 0x1000u);
}

static int fx_send(void *c, chorus_node_id to, const void *data, size_t len) {
  struct ctx *x = c;
  struct net *w = x->net;
  int t = index_of(to);
  if (t < 0 || t >= w->n || w->nq == MAXQ || w->cut[x->i][t])
    return CHORUS_OK;
  uint8_t *copy = chorus_malloc(len);
  if (copy == NULL)
    return CHORUS_ENOMEM;
  memcpy(copy, data, len);
  w->q[w->nq++] = (struct packet){x->i, t, copy, len};
  return CHORUS_OK;
}

static int fx_sync(void *c, chorus_seq seq, uint64_t token) {
  struct ctx *x = c;
  struct net *w = x->net;
  assert_true(token & META_SYNC_TOKEN_BIT);
  assert_true(w->nsync[x->i] < 64);
  w->syncs[x->i][w->nsync[x->i]++] = (struct sync_req){token, seq};
  return CHORUS_OK;
}

static void fx_state(void *c, const struct meta_state *s) {
  struct ctx *x = c;
  (void)s;
  x->net->states[x->i]++;
}

static void fx_answer(void *c, uint64_t cookie, int status, const char *text) {
  struct ctx *x = c;
  (void)text;
  struct net *w = x->net;
  if (w->nanswers < 64)
    w->answers[w->nanswers++] = (struct answer){cookie, status};
}

static uint32_t snapshot_threshold = 8;

static void emit_line(void *ctx, const char *module, const char *line) {
  fprintf(stderr, "# n%d %s: %s\n", (int)(intptr_t)ctx, module, line);
}
static struct chorus_tracer tracers[MAXN];

static struct meta_node_config config(int i) {
  struct meta_node_config cfg = {0};
  if (getenv("CHORUS_META_TRACE") != NULL) {
    tracers[i] = (struct chorus_tracer){emit_line, (void *)(intptr_t)i};
    cfg.tracer = &tracers[i];
  }
  cfg.self = id_of(i);
  cfg.cluster = CLUSTER;
  cfg.self_member.id = id_of(i);
  snprintf(cfg.self_member.name, sizeof cfg.self_member.name, "n%d", i + 1);
  snprintf(cfg.self_member.addr, sizeof cfg.self_member.addr, "n%d", i);
  snprintf(cfg.self_member.rack, sizeof cfg.self_member.rack, "r%d", i);
  cfg.self_member.vnodes = 16;
  cfg.self_member.state = META_NORMAL;
  cfg.replication.n = 3;
  cfg.snapshot_threshold = snapshot_threshold; /* small: snapshots happen */
  cfg.snapshot_trailing = 2;
  cfg.seed = 42;
  return cfg;
}

static void boot(struct net *w, int i) {
  struct meta_node_config cfg = config(i);
  ctxs[i] = (struct ctx){w, i};
  struct meta_node_effects fx = {&ctxs[i], fx_send,   fx_sync,
                                 fx_state, fx_answer, NULL};
  assert_int_equal(meta_node_new(&cfg, &fx, w->store[i], &w->node[i]),
                   CHORUS_OK);
  /* Before the load: a barrier the load asks for must be kept. */
  w->nsync[i] = 0;
  assert_int_equal(meta_node_load(w->node[i], w->now), CHORUS_OK);
  w->up[i] = true;
  for (int k = 0; k < w->n; k++)
    if (k != i)
      meta_node_contact(w->node[i], id_of(k), true);
}

static void net_init(struct net *w, int n) {
  memset(w, 0, sizeof *w);
  w->n = n;
  w->now = 1000;
  for (int i = 0; i < n; i++) {
    assert_int_equal(store_mem_open(&w->store[i]), CHORUS_OK);
    boot(w, i);
  }
}

static void crash(struct net *w, int i, size_t keep) {
  meta_node_free(w->node[i]);
  w->node[i] = NULL;
  w->up[i] = false;
  w->nsync[i] = 0;
  assert_int_equal(store_mem_crash(w->store[i], keep), CHORUS_OK);
}

static void net_free(struct net *w) {
  for (int i = 0; i < w->n; i++) {
    meta_node_free(w->node[i]);
    store_close(w->store[i]);
  }
  for (size_t k = 0; k < w->nq; k++)
    chorus_free(w->q[k].data);
}

static void bootstrap_all(struct net *w, int voters) {
  struct meta_founder f[MAXN];
  for (int i = 0; i < w->n; i++)
    f[i] = (struct meta_founder){id_of(i), i < voters};
  for (int i = 0; i < w->n; i++)
    assert_int_equal(meta_node_bootstrap(w->node[i], f, (size_t)w->n, w->now),
                     CHORUS_OK);
}

/* step: 10 ms of the world: syncs complete, messages arrive, ticks. */
/* report_streamed: the core's STREAMED for every joiner (see struct net). */
static void report_streamed(struct net *w) {
  for (int i = 0; i < w->n; i++) {
    if (!w->up[i] || w->manual_stream[i] || !meta_node_started(w->node[i]) ||
        w->now < w->streamed_at[i] + 2000)
      continue;
    const struct meta_state *s = meta_node_state(w->node[i]);
    const struct meta_member *me = meta_state_find(s, id_of(i));
    if (me == NULL || me->state != META_JOINING || me->ready == s->epoch)
      continue;
    struct meta_cmd c = {
        .type = META_CMD_STREAMED, .id = id_of(i), .epoch = s->epoch};
    assert_int_equal(
        meta_node_propose(w->node[i], &c, 900 + (uint64_t)i, 2000, w->now),
        CHORUS_OK);
    w->streamed_at[i] = w->now;
  }
}

static void step(struct net *w) {
  w->now += 10;
  report_streamed(w);
  for (int i = 0; i < w->n; i++) {
    if (!w->up[i])
      continue;
    store_mem_sync_step(w->store[i]);
    size_t ns = w->nsync[i];
    struct sync_req rs[64];
    memcpy(rs, w->syncs[i], ns * sizeof rs[0]);
    w->nsync[i] = 0;
    for (size_t k = 0; k < ns; k++)
      assert_int_equal(
          meta_node_sync_done(w->node[i], rs[k].token, CHORUS_OK, w->now),
          CHORUS_OK);
  }
  size_t nq = w->nq;
  struct packet *q = chorus_malloc((nq ? nq : 1) * sizeof *q);
  assert_non_null(q);
  memcpy(q, w->q, nq * sizeof *q);
  w->nq = 0;
  for (size_t k = 0; k < nq; k++) {
    if (w->up[q[k].to] && !w->cut[q[k].from][q[k].to])
      assert_int_equal(meta_node_recv(w->node[q[k].to], id_of(q[k].from),
                                      q[k].data, q[k].len, w->now),
                       CHORUS_OK);
    chorus_free(q[k].data);
  }
  chorus_free(q);
  for (int i = 0; i < w->n; i++)
    if (w->up[i] && meta_node_next_deadline(w->node[i]) <= w->now)
      assert_int_equal(meta_node_tick(w->node[i], w->now), CHORUS_OK);
}

static int leader(struct net *w) {
  int found = -1;
  for (int i = 0; i < w->n; i++) {
    if (!w->up[i])
      continue;
    struct meta_node_info info;
    meta_node_info(w->node[i], &info);
    if (info.raft_state == RAFT_LEADER)
      found = i;
  }
  return found;
}

/* settle: steps until @pred holds (fails the test after @ms). */
static void settle(struct net *w, bool (*pred)(struct net *), chorus_ms ms) {
  for (chorus_ms t = 0; t < ms; t += 10) {
    if (pred(w))
      return;
    step(w);
  }
  fail_msg("not settled after %llu ms", (unsigned long long)ms);
}

static bool all_normal(struct net *w) {
  for (int i = 0; i < w->n; i++) {
    if (!w->up[i])
      continue;
    const struct meta_state *s = meta_node_state(w->node[i]);
    size_t normal = 0;
    for (size_t k = 0; k < s->n; k++)
      normal += s->members[k].state == META_NORMAL;
    if (normal != (size_t)w->n)
      return false;
  }
  return true;
}

/* founded: @n nodes found the group together, all of them voters, and
 * every one of them sees every member normal. */
static void founded(struct net *w, int n) {
  net_init(w, n);
  bootstrap_all(w, n);
  settle(w, all_normal, 20000);
}

static bool has_leader(struct net *w) {
  return leader(w) >= 0;
}

static const struct answer *answer_of(struct net *w, uint64_t cookie) {
  for (size_t i = 0; i < w->nanswers; i++)
    if (w->answers[i].cookie == cookie)
      return &w->answers[i];
  return NULL;
}

/* The status proposal or read @cookie was answered with (failing the test
 * when it was not answered). */
static int status_of(struct net *w, uint64_t cookie) {
  const struct answer *a = answer_of(w, cookie);
  if (a == NULL) {
    fail_msg("no answer for cookie %" PRIu64, cookie);
    return INT32_MIN;
  }
  return a->status;
}

static int cookie_wanted;
static bool answered(struct net *w) {
  return answer_of(w, (uint64_t)cookie_wanted) != NULL;
}

/* note_through: a NOTE of @value proposed through node @node with
 * @cookie; returns its answer's status once answered (within @ms). */
static int note_through(struct net *w, int node, uint64_t value,
                        uint64_t cookie, chorus_ms ms) {
  struct meta_cmd note = {.type = META_CMD_NOTE, .note_value = value};
  assert_int_equal(meta_node_propose(w->node[node], &note, cookie, ms, w->now),
                   CHORUS_OK);
  cookie_wanted = (int)cookie;
  settle(w, answered, ms + 1000);
  return status_of(w, cookie);
}

/* ------------------------------------------------------------------------ */

static void test_founders_agree(void **state) {
  (void)state;
  static struct net w;
  founded(&w, 3);
  /* Everyone applied the same history: the same epoch and members. */
  const struct meta_state *s0 = meta_node_state(w.node[0]);
  assert_int_equal(s0->n, 3);
  for (int i = 1; i < 3; i++) {
    const struct meta_state *s = meta_node_state(w.node[i]);
    assert_int_equal(s->epoch, s0->epoch);
    assert_int_equal(s->n, s0->n);
    for (size_t k = 0; k < s->n; k++)
      assert_string_equal(s->members[k].name, s0->members[k].name);
  }
  for (int i = 0; i < 3; i++)
    assert_int_equal(meta_node_role(w.node[i], id_of(i)), RAFT_VOTER);
  net_free(&w);
}

static void test_restart_serves_from_disk(void **state) {
  (void)state;
  static struct net w;
  founded(&w, 3);
  for (int i = 0; i < 50; i++)
    step(&w); /* the state copy is synced with later writes */
  /* Every node goes down; one comes back alone. */
  for (int i = 0; i < 3; i++)
    crash(&w, i, 0);
  w.states[1] = 0;
  boot(&w, 1);
  const struct meta_state *s = meta_node_state(w.node[1]);
  assert_int_equal(s->n, 3);
  assert_true(w.states[1] > 0); /* served before any leader is heard */
  assert_true(meta_node_started(w.node[1]));
  for (int i = 0; i < 300; i++)
    step(&w);
  assert_int_equal(leader(&w), -1); /* alone: a minority */
  assert_int_equal(meta_node_state(w.node[1])->n, 3);
  net_free(&w);
}

static void test_joiner_becomes_normal(void **state) {
  (void)state;
  static struct net w;
  net_init(&w, 4);
  struct meta_founder f[3];
  for (int i = 0; i < 3; i++)
    f[i] = (struct meta_founder){id_of(i), true};
  for (int i = 0; i < 3; i++)
    assert_int_equal(meta_node_bootstrap(w.node[i], f, 3, w.now), CHORUS_OK);
  w.manual_stream[3] = true;
  assert_int_equal(meta_node_start_empty(w.node[3], w.now), CHORUS_OK);
  /* It joins as JOINING and stays so until it says it holds its ranges
   * (meta.h, TOPOLOGY CHANGES): the leader does not promote it alone. */
  for (int i = 0; i < 1000; i++)
    step(&w);
  const struct meta_state *s = meta_node_state(w.node[3]);
  const struct meta_member *me = meta_state_find(s, id_of(3));
  assert_non_null(me);
  assert_int_equal(me->state, META_JOINING);
  struct meta_cmd c = {
      .type = META_CMD_STREAMED, .id = id_of(3), .epoch = s->epoch};
  assert_int_equal(meta_node_propose(w.node[3], &c, 9, 5000, w.now), CHORUS_OK);
  cookie_wanted = 9;
  settle(&w, answered, 6000);
  assert_int_equal(status_of(&w, 9), CHORUS_OK);
  settle(&w, all_normal, 30000);
  int l = leader(&w);
  assert_true(l >= 0);
  assert_true(meta_node_role(w.node[l], id_of(3)) >= 0);
  net_free(&w);
}

/* A joiner that crashes before any Raft state reached its disk keeps its
 * data folder's id: its JOIN may be committed with it already, and another
 * id would make it believe its disk lost once its join finished. */
static uint64_t stored_disk(struct store *s) {
  void *v = NULL;
  size_t len = 0;
  uint64_t id = 0;
  if (store_get(s, STORE_META, "meta/disk", 9, &v, &len) == CHORUS_OK &&
      len == 8)
    id = store_be64_get(v);
  chorus_free(v);
  return id;
}

static void test_joiner_keeps_its_disk_id(void **state) {
  (void)state;
  static struct net w;
  net_init(&w, 4);
  assert_int_equal(meta_node_start_empty(w.node[3], w.now), CHORUS_OK);
  uint64_t disk = stored_disk(w.store[3]);
  assert_true(disk != 0);
  crash(&w, 3, SIZE_MAX); /* the id reached the disk, nothing else did */
  w.now += 1234;          /* a later start would draw another id */
  boot(&w, 3);
  assert_false(meta_node_started(w.node[3])); /* no Raft state */
  assert_int_equal(meta_node_start_empty(w.node[3], w.now), CHORUS_OK);
  assert_true(stored_disk(w.store[3]) == disk);
  net_free(&w);
}

static void test_remove_through_follower_and_minority(void **state) {
  (void)state;
  static struct net w;
  founded(&w, 3);
  int l = leader(&w);
  int f = (l + 1) % 3, gone = (l + 2) % 3;
  crash(&w, gone, 0);
  struct meta_cmd rm = {.type = META_CMD_REMOVE, .id = id_of(gone)};
  assert_int_equal(meta_node_propose(w.node[f], &rm, 7, 5000, w.now),
                   CHORUS_OK);
  cookie_wanted = 7;
  settle(&w, answered, 6000);
  assert_int_equal(status_of(&w, 7), CHORUS_OK);
  assert_int_equal(
      meta_state_find(meta_node_state(w.node[f]), id_of(gone))->state,
      META_REMOVED);
  /* The leader takes the removed member out of Raft's configuration. */
  for (int i = 0; i < 200; i++)
    step(&w);
  assert_int_equal(meta_node_role(w.node[leader(&w)], id_of(gone)), -1);
  /* Cut the follower off: on its own it cannot commit anything. */
  l = leader(&w);
  f = l == 0 ? 1 : 0;
  if (f == gone)
    f = 3 - l - gone;
  for (int i = 0; i < 3; i++)
    w.cut[f][i] = w.cut[i][f] = true;
  assert_int_equal(note_through(&w, f, 99, 8, 2000), CHORUS_EUNAVAILABLE);
  net_free(&w);
}

/* A follower's disk fills: libraft, refused a write, turns unavailable;
 * the node restarts it from the store once a second, and once there is
 * room again it catches up with what the others committed meanwhile. */
static void test_full_disk_then_space_back(void **state) {
  (void)state;
  static struct net w;
  /* Snapshots every 8 entries: the leader sends the follower snapshots
   * while its disk is full (the install fails; nothing may leak), and it
   * catches up by one once there is room. */
  founded(&w, 3);
  int l = leader(&w);
  int f = (l + 1) % 3;
  store_inject_fault(w.store[f], STORE_FAULT_FULL);
  for (uint64_t k = 1; k <= 5; k++) {
    assert_int_equal(note_through(&w, l, k, 20 + k, 5000), CHORUS_OK);
  }
  for (int i = 0; i < 300; i++)
    step(&w);
  struct meta_node_info mi;
  meta_node_info(w.node[f], &mi);
  assert_true(mi.store_errors > 0);
  assert_true(mi.revivals > 0);
  assert_true(meta_node_state(w.node[f])->note != 5);
  store_inject_fault(w.store[f], STORE_FAULT_NONE);
  for (int i = 0; i < 600; i++)
    step(&w);
  meta_node_info(w.node[f], &mi);
  struct meta_node_info ml;
  meta_node_info(w.node[l], &ml);
  printf("# follower: state %d term %llu commit %llu applied %llu last %llu "
         "revivals %llu; leader: state %d term %llu commit %llu last %llu; "
         "served applied %llu\n",
         mi.raft_state, (unsigned long long)mi.term,
         (unsigned long long)mi.commit_index,
         (unsigned long long)mi.applied_index,
         (unsigned long long)mi.last_index, (unsigned long long)mi.revivals,
         ml.raft_state, (unsigned long long)ml.term,
         (unsigned long long)ml.commit_index, (unsigned long long)ml.last_index,
         (unsigned long long)meta_node_state(w.node[f])->applied);
  assert_int_not_equal(mi.raft_state, RAFT_UNAVAILABLE);
  assert_int_equal(meta_node_state(w.node[f])->note, 5);
  assert_int_equal(meta_node_state(w.node[f])->applied,
                   meta_node_state(w.node[l])->applied);
  net_free(&w);
}

/* A follower's disk fills while a member joins: the batch it is sent
 * holds a configuration change, whose failed append libraft is told of
 * later (meta_node_io.c), so the follower stays up until its next revival.
 * Room comes back meanwhile and the leader's next entries arrive: written
 * as they came they left a hole in the stored log (the change simulator's
 * grow and shrink seed 146: entries 1-6, then 29), the next revival found
 * it corrupt, and the node stopped for good. Now the append that would
 * leave a hole is refused; the revival reloads the log as it is and the
 * follower catches up. */
static void test_full_disk_leaves_no_hole(void **state) {
  (void)state;
  static struct net w;
  net_init(&w, 4);
  struct meta_founder fo[3];
  for (int i = 0; i < 3; i++)
    fo[i] = (struct meta_founder){id_of(i), true};
  for (int i = 0; i < 3; i++)
    assert_int_equal(meta_node_bootstrap(w.node[i], fo, 3, w.now), CHORUS_OK);
  settle(&w, has_leader, 20000);
  for (int i = 0; i < 300; i++)
    step(&w);
  int l = leader(&w);
  int f = (l + 1) % 3;
  /* The follower hears nothing while node 3 joins, its disk full. */
  store_inject_fault(w.store[f], STORE_FAULT_FULL);
  for (int i = 0; i < 4; i++)
    w.cut[i][f] = true;
  assert_int_equal(meta_node_start_empty(w.node[3], w.now), CHORUS_OK);
  for (int i = 0; i < 1000; i++)
    step(&w);
  assert_non_null(meta_state_find(meta_node_state(w.node[l]), id_of(3)));
  for (int i = 0; i < 4; i++)
    w.cut[i][f] = false;
  /* Its first revival: the batch it is sent next (the join's change in
   * it) fails again, and libraft hears of that only later. Room comes
   * back then, and new entries follow. */
  struct meta_node_info mi;
  meta_node_info(w.node[f], &mi);
  uint64_t revivals = mi.revivals;
  for (int i = 0; i < 300 && mi.revivals == revivals; i++) {
    step(&w);
    meta_node_info(w.node[f], &mi);
  }
  assert_true(mi.revivals > revivals);
  for (int i = 0; i < 5; i++)
    step(&w);
  store_inject_fault(w.store[f], STORE_FAULT_NONE);
  for (uint64_t k = 1; k <= 3; k++)
    assert_int_equal(note_through(&w, l, k, 30 + k, 5000), CHORUS_OK);
  for (int i = 0; i < 600; i++)
    step(&w); /* the next revival loads the log: no hole in it */
  meta_node_info(w.node[f], &mi);
  assert_int_not_equal(mi.raft_state, RAFT_UNAVAILABLE);
  assert_int_equal(meta_node_state(w.node[f])->note, 3);
  /* and a restart from its disk loads the same log */
  crash(&w, f, SIZE_MAX);
  boot(&w, f);
  for (int i = 0; i < 300; i++)
    step(&w);
  assert_int_equal(meta_node_state(w.node[f])->note, 3);
  assert_int_equal(meta_node_state(w.node[f])->applied,
                   meta_node_state(w.node[l])->applied);
  net_free(&w);
}

static void test_bad_messages_refused(void **state) {
  (void)state;
  static struct net w;
  net_init(&w, 3);
  bootstrap_all(&w, 3);
  settle(&w, has_leader, 20000);
  struct meta_node_info before, after;
  meta_node_info(w.node[0], &before);
  /* Garbage, a foreign cluster, and a message claiming another sender. */
  uint8_t junk[] = {0xff, 0x00, 0x13, 0x37};
  assert_int_equal(
      meta_node_recv(w.node[0], id_of(1), junk, sizeof junk, w.now), CHORUS_OK);
  struct meta_msg m = {
      .type = META_MSG_PROPOSE_REPLY, .cluster = CLUSTER + 1, .from = id_of(1)};
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_int_equal(meta_msg_encode(&m, &buf, &len), CHORUS_OK);
  assert_int_equal(meta_node_recv(w.node[0], id_of(1), buf, len, w.now),
                   CHORUS_OK);
  chorus_free(buf);
  m.cluster = CLUSTER;
  m.from = id_of(2);
  assert_int_equal(meta_msg_encode(&m, &buf, &len), CHORUS_OK);
  assert_int_equal(meta_node_recv(w.node[0], id_of(1), buf, len, w.now),
                   CHORUS_OK);
  chorus_free(buf);
  meta_node_info(w.node[0], &after);
  assert_int_equal(after.bad_messages, before.bad_messages + 1);
  assert_int_equal(after.foreign, before.foreign + 2);
  net_free(&w);
}

/* send_raw: @m, from node @from, handed to node @to's metadata layer. */
static void send_raw(struct net *w, int from, int to, struct meta_msg *m) {
  m->cluster = CLUSTER;
  m->from = id_of(from);
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_int_equal(meta_msg_encode(m, &buf, &len), CHORUS_OK);
  assert_int_equal(meta_node_recv(w->node[to], id_of(from), buf, len, w->now),
                   CHORUS_OK);
  chorus_free(buf);
}

/* A term from the future (a RequestVote 1,000 terms ahead, as a node whose
 * terms ran away would send) reaches the leader and a follower: each logs
 * it and counts it, neither is deposed while it hears its leader (Raft
 * §4.2.3), and the group goes on committing. */
static void test_future_term_survived(void **state) {
  (void)state;
  static struct net w;
  founded(&w, 3);
  int l = leader(&w), x = (l + 1) % 3, f = (l + 2) % 3;
  struct meta_node_info before, after;
  meta_node_info(w.node[l], &before);
  struct meta_msg m = {.type = META_MSG_RAFT};
  m.raft.type = RAFT_IO_REQUEST_VOTE;
  m.raft.request_vote = (struct raft_request_vote){.term = before.term + 1000,
                                                   .candidate_id = id_of(x)};
  send_raw(&w, x, l, &m);
  send_raw(&w, x, f, &m);
  meta_node_info(w.node[l], &after);
  assert_int_equal(after.term_raises, before.term_raises + 1);
  assert_int_equal(after.term, before.term);
  for (int i = 0; i < 300; i++)
    step(&w);
  assert_int_equal(leader(&w), l);
  assert_int_equal(note_through(&w, f, 77, 9, 3000), CHORUS_OK);
  for (int i = 0; i < 3; i++)
    assert_int_equal(meta_node_state(w.node[i])->note, 77);
  net_free(&w);
}

/* A snapshot whose state does not decode, sent to a follower as from its
 * leader, is refused before libraft stores it (it would replace the log
 * with it): counted, and the follower still follows. */
static void test_snapshot_that_does_not_decode(void **state) {
  (void)state;
  static struct net w;
  founded(&w, 3);
  int l = leader(&w), f = (l + 1) % 3;
  struct meta_node_info before, after;
  meta_node_info(w.node[f], &before);
  void *snap0 = NULL, *snap1 = NULL;
  size_t len0 = 0, len1 = 0;
  int rc0 = store_get(w.store[f], STORE_META, "raft/snap", 9, &snap0, &len0);
  uint8_t junk[] = {META_FORMAT_V2, 0x93, 0x01, 0x02};
  struct meta_msg m = {.type = META_MSG_RAFT};
  m.raft.type = RAFT_IO_INSTALL_SNAPSHOT;
  struct raft_install_snapshot *is = &m.raft.install_snapshot;
  *is = (struct raft_install_snapshot){.term = before.term,
                                       .last_index = before.applied_index + 50,
                                       .last_term = before.term,
                                       .conf_index = 1,
                                       .data = {junk, sizeof junk}};
  raft_configuration_init(&is->conf);
  for (int i = 0; i < 3; i++) {
    char addr[17]; /* 16 hex digits: a Raft address (meta_node.c) */
    snprintf(addr, sizeof addr, "%016" PRIx64, id_of(i));
    assert_int_equal(
        raft_configuration_add(&is->conf, id_of(i), addr, RAFT_VOTER), 0);
  }
  send_raw(&w, l, f, &m);
  raft_configuration_close(&is->conf);
  meta_node_info(w.node[f], &after);
  assert_int_equal(after.bad_messages, before.bad_messages + 1);
  assert_int_not_equal(after.raft_state, RAFT_UNAVAILABLE);
  /* What it keeps as its snapshot is what it kept before. */
  assert_int_equal(
      store_get(w.store[f], STORE_META, "raft/snap", 9, &snap1, &len1), rc0);
  assert_int_equal(len1, len0);
  if (len0 > 0)
    assert_memory_equal(snap1, snap0, len0);
  chorus_free(snap0);
  chorus_free(snap1);
  assert_int_equal(note_through(&w, l, 78, 10, 3000), CHORUS_OK);
  for (int i = 0; i < 100; i++)
    step(&w);
  assert_int_equal(meta_node_state(w.node[f])->note, 78);
  net_free(&w);
}

static void test_snapshots_bound_the_log(void **state) {
  (void)state;
  static struct net w;
  founded(&w, 3);
  /* Node 2 is away while many commands commit: it catches up by a
   * snapshot once back. */
  crash(&w, 2, 0);
  int l = leader(&w);
  for (uint64_t k = 0; k < 40; k++) {
    struct meta_cmd note = {.type = META_CMD_NOTE, .note_value = 100 + k};
    assert_int_equal(meta_node_propose(w.node[l], &note, 100 + k, 5000, w.now),
                     CHORUS_OK);
    for (int i = 0; i < 5; i++)
      step(&w);
  }
  cookie_wanted = 139;
  settle(&w, answered, 5000);
  boot(&w, 2);
  for (int i = 0; i < 500; i++)
    step(&w);
  assert_int_equal(meta_node_state(w.node[2])->note, 139);
  struct meta_node_info info;
  meta_node_info(w.node[l], &info);
  /* Compaction keeps far fewer entries than were committed. */
  size_t entries = 0;
  struct store_iter *it = NULL;
  assert_int_equal(store_iter_open(w.store[l], STORE_META, "raft/log/", 9,
                                   "raft/log0", 9, &it),
                   CHORUS_OK);
  for (; store_iter_valid(it); store_iter_next(it))
    entries++;
  store_iter_close(it);
  assert_true(info.applied_index > 40);
  assert_true(entries < 20);
  net_free(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_founders_agree),
      cmocka_unit_test(test_restart_serves_from_disk),
      cmocka_unit_test(test_joiner_keeps_its_disk_id),
      cmocka_unit_test(test_joiner_becomes_normal),
      cmocka_unit_test(test_remove_through_follower_and_minority),
      cmocka_unit_test(test_full_disk_then_space_back),
      cmocka_unit_test(test_full_disk_leaves_no_hole),
      cmocka_unit_test(test_bad_messages_refused),
      cmocka_unit_test(test_future_term_survived),
      cmocka_unit_test(test_snapshot_that_does_not_decode),
      cmocka_unit_test(test_snapshots_bound_the_log),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
