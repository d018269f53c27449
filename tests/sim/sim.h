/* sim.h: the deterministic cluster simulator: engine, network, clocks,
 * storage, and the sans-I/O node interface that protocols plug into.
 *
 * WHAT IT IS
 *
 * A whole chorus cluster in one process, driven by one seed (DESIGN.md §3,
 * §8; anchors: FoundationDB's simulation, TigerBeetle's VOPR, the cluster
 * fixture of canonical/raft). Nothing here reads a clock, a socket or the
 * OS's randomness: virtual time advances from one event to the next, and
 * every random choice comes from a PRNG derived from the master seed with
 * chorus_prng_derive(), one per subsystem (network, clocks, storage, nemesis,
 * workload, each node), so that adding draws in one subsystem does not shift
 * another's. The same seed gives the same run, event for event; the run's
 * trace hash (sim_trace_hash) proves it.
 *
 * THE ENGINE
 *
 * One event queue ordered by (time, sequence): time is virtual microseconds
 * (sim_time), the sequence is the order of scheduling, so two events at the
 * same microsecond run in the order they were scheduled, never in heap
 * order. sim_step() pops one event and runs it. Every event that reaches a
 * node, every effect it emits, every client call and completion and every
 * trace line is folded into the trace hash (FNV-1a); trace lines, stamped
 * with virtual time and node, are also kept in a ring of recent lines that
 * a failure prints.
 *
 * THE NODE-SIDE INTERFACE (what SWIM and the coordinator plug into)
 *
 * A protocol is a struct sim_node_ops: a sans-I/O state machine that is
 * handed one event at a time and answers with effects. It never blocks,
 * never reads a clock and never calls back into the simulator. SWIM and the
 * coordinator keep their own event and effect types in ring/ and
 * replication/ (DESIGN.md §3), joined once by the node core (node/core); a
 * thin adapter in tests/sim (core_sim_adapter.h) maps the core onto this
 * vtable, exactly as chorusd's libuv driver (node/) maps it onto sockets,
 * one timer and RocksDB.
 *
 *   events in (struct sim_event, `now` and `wall` inside every event)
 *     SIM_EV_START     first boot or restart after a crash; carries the
 *                      node's store, already recovered to its durable state
 *     SIM_EV_MESSAGE   a peer's message arrived (opaque bytes)
 *     SIM_EV_TIMER     a timer the node armed has fired (its id)
 *     SIM_EV_REQUEST   a client request (get/put/counter/set operations)
 *     SIM_EV_SYNC_DONE a sync barrier the node requested has completed
 *                      (or failed: the store is then sticky-failed)
 *   effects out (sim_fx_* calls on the struct sim_effects handed in)
 *     sim_fx_send      send bytes to a peer (copied; may be dropped,
 *                      duplicated, delayed, reordered by the network)
 *     sim_fx_send_stream the same over a stream (TCP): never dropped or
 *                      duplicated, still delayed and cut by partitions
 *     sim_fx_timer     arm a one-shot timer after a local-clock delay
 *     sim_fx_reply     complete a client request (exactly once per request;
 *                      values copied)
 *     sim_fx_sync      request a sync barrier covering a store sequence;
 *                      answered by exactly one SIM_EV_SYNC_DONE unless the
 *                      node crashes first
 *
 * Effects are buffered and applied by the simulator after handle() returns,
 * in the order they were emitted: inside handle() nothing has happened yet.
 * Reads and unsynced writes go straight to the store (synchronous, as in
 * DESIGN.md §3); only durability is an effect.
 *
 * Ownership: the simulator owns each node's struct store for the whole run
 * (it survives crashes: that is the point) and lends it to the node from
 * SIM_EV_START until the node is destroyed; the node must not close it.
 * Event payloads (message bytes, request key/value/context) are borrowed for
 * the duration of handle(). The node's state (from create()) is owned by
 * the node and freed by destroy(), which the simulator calls at a crash and
 * at the end of the run; a crash is destroy() without warning, so anything
 * not in the store is gone, and pending timers, sync barriers and replies of
 * the dead instance are discarded (each incarnation has an epoch; events of
 * an older epoch never reach the new one).
 *
 * Timers cannot be cancelled: a protocol encodes a generation in the id and
 * ignores stale ones. Messages are addressed by node index (0..nodes-1);
 * sim_node_config.ids gives each index its chorus_node_id.
 *
 * Clocks: `now` is the node's monotonic clock in milliseconds (its own rate:
 * drift, never backwards), `wall` its wall clock (offset, drift, occasional
 * jumps, may go backwards): use `now` for timeouts and `wall` only for HLCs.
 * Timer delays are measured in the node's `now`.
 *
 * THE NETWORK
 *
 * Each directed link has a latency (the datacenter matrix entry plus a
 * random exponential tail; delays are independent per message, so messages
 * reorder), a drop and a duplicate probability, a clog (messages sent while
 * clogged wait until it clears) and a block flag (partitions; a message is
 * lost if its link is blocked when it is sent or when it would arrive). A
 * message reaches whichever incarnation of its target is up when it
 * arrives, and is lost if none is (UDP semantics); a stream
 * (sim_fx_send_stream) is exempt from drops and duplicates only. A slow
 * node (sim_slow_node) adds an extra uniform delay to its messages. Nodes are
 * spread over datacenters round-robin (node i in dc i % dcs); inside one
 * datacenter latency is 0.1-0.9 ms, across 40-150 ms, drawn per seed.
 *
 * STORAGE
 *
 * Each node has a memory store (storage/store_mem.h). A sync barrier
 * completes when the simulator calls store_mem_sync_step() for that node,
 * after a per-node fsync latency; a crash keeps the durable state plus all,
 * none or a random prefix of the unsynced writes; injected faults
 * (STORE_FAULT_SYNC/WRITE/NOSPC/READ) go through the backend's real error
 * paths.
 * A node whose sync failed is restarted after a delay, as a process that
 * exits on fsync failure would be (the "fsyncgate" rule in store.h).
 *
 * SCALE
 *
 * Up to SIM_MAX_NODES (4,096) nodes. Every per-node table is sized from
 * sim_config.nodes when the simulator is created (chorus_calloc); only the
 * partition flags are per directed link, one byte each (1 MB at 1,000
 * nodes, 16 MB at 4,096); the datacenter latency matrix is dcs x dcs and
 * clogs are a short list. A 1,000-node simulator costs about 2 MB before
 * the nodes' own state and is created in 8 ms (4,096: 20 MB, 0.1 s); at
 * 1,000 SWIM members the memory is SWIM's own member tables and the
 * messages in flight (swim-report peaks under 0.5 GB). Sets of nodes (a
 * partition's side) are struct sim_nodeset bitsets, passed by pointer. Up to 64
 * nodes every random choice is drawn as it was when the tables were fixed at 64
 * (masks in a uint64_t), so old seeds keep their trace hashes.
 *
 * CLIENTS AND HISTORY
 *
 * Client requests are made through sim_request_start() (or the vocabulary
 * helpers sim_put/sim_get/...); every one is recorded in the run's history
 * (sim_history.h) with its virtual invoke and completion times and outcome,
 * so scenario tests and the random workload feed the same checkers. Values
 * are unique 64-bit numbers, written as 8 big-endian bytes. Outcomes: a
 * reply with CHORUS_OK is ok; an error reply is unknown for a write that
 * says maybe_applied, fail otherwise; a request reaching a down node fails
 * (connection refused); no reply within the client's timeout is unknown
 * for writes, fail for reads. Late replies are ignored.
 */
#ifndef CHORUS_SIM_H
#define CHORUS_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "chorus_prng.h"
#include "chorus_trace.h"
#include "chorus_types.h"
#include "sim_history.h"
#include "store.h"

/* Virtual time in microseconds since the start of the run. */
typedef uint64_t sim_time;

#define SIM_US_PER_MS 1000u
#define SIM_MS(ms) ((sim_time)(ms)*SIM_US_PER_MS)
/* The largest cluster. Node tables are sized from sim_config.nodes when
 * the simulator is created; only the per-link partition flags grow as
 * nodes^2 (one byte each: 1 MB at 1,000 nodes, 16 MB at 4,096). */
#define SIM_MAX_NODES 4096

/* ------------------------------------------------------------------------
 * Events and effects: the node-side interface
 * ------------------------------------------------------------------------ */

enum sim_event_kind {
  SIM_EV_START = 1,
  SIM_EV_MESSAGE,
  SIM_EV_TIMER,
  SIM_EV_REQUEST,
  SIM_EV_SYNC_DONE,
};

/* A client request as a node receives it. Values and contexts are opaque
 * bytes; key, value and context are borrowed for the call. */
struct sim_request {
  uint64_t id;    /* unique in the run; echo it in sim_reply.id */
  enum sim_op op; /* SIM_OP_GET, SIM_OP_PUT, ... (sim_history.h) */
  const void *key;
  size_t klen;
  const void *value; /* PUT value, SET_ADD element */
  size_t vlen;
  const void *context; /* PUT: the context of an earlier GET; NULL: blind */
  size_t clen;
  int64_t amount;    /* COUNTER_ADD */
  int r, w;          /* quorum sizes asked for; 0: protocol default */
  int cas_cond;      /* SIM_OP_CAS: the wire's condition (WIRE_CAS_READ...);
                      * @value is the new value, sent when the condition
                      * takes one */
  uint64_t expected; /* SIM_OP_CAS IF_VALUE, DELETE_IF_VALUE: as 8 bytes */
  /* SIM_OP_LOCK: the wire's op (WIRE_LOCK_ACQUIRE...), its token and
   * ttl; FENCED_PUT: @name the lock's name, @value the value (8 bytes),
   * @key the data key (for the others @key is the lock's own key). */
  int lock_op;
  uint64_t token, ttl_ms;
  const void *name;
  size_t nlen;
};

struct sim_event {
  enum sim_event_kind kind;
  chorus_ms now;  /* the node's monotonic clock */
  chorus_ms wall; /* the node's wall clock (for HLCs only) */
  union {
    struct {
      struct store *store; /* lent until destroy(); never close it */
      int restarted;       /* 0 on first boot, 1 after a crash */
      uint32_t epoch;      /* incarnation number, 0 on first boot */
    } start;
    struct {
      int from;
      const void *data;
      size_t len;
    } msg;
    struct {
      uint64_t id;
    } timer;
    struct sim_request req;
    struct {
      uint64_t token;     /* as given to sim_fx_sync() */
      chorus_seq durable; /* every write <= durable is durable (status OK) */
      int status;         /* CHORUS_OK or CHORUS_ESYNCFAILED */
    } sync;
  };
};

/* A borrowed byte string. */
struct sim_buf {
  const void *data;
  size_t len;
};

/* A reply to a client request. Everything is copied by sim_fx_reply(). */
struct sim_reply {
  uint64_t id;
  int status;                   /* CHORUS_OK or a CHORUS_E* code */
  int maybe_applied;            /* status != OK: the write may still take effect
                                 * (timeouts, partial quorums); 0 means it certainly
                                 * did not (rejected before any replica wrote it) */
  const struct sim_buf *values; /* GET siblings, SET_READ elements */
  size_t nvalues;
  const void *context; /* GET: opaque causal context for a later PUT */
  size_t clen;
  int64_t counter; /* COUNTER_READ */
  /* LWW_READ, and an LWW_SET's WRITE_REPLY: the register's stamp (HLC
   * time, node id) */
  uint64_t stamp[2];
  struct sim_lock_answer {
    int refusal;      /* enum wire_lock_refusal */
    int held;         /* 0 or 1 */
    uint64_t token;   /* the lock's token; FENCED_PUT: the key's highest
                       * for the lock before the write */
    uint64_t expires; /* the coordinator's HLC ms */
  } lock;             /* SIM_OP_LOCK (applied: .counter 1) */
};

struct sim_effects;

/* sim_fx_send: sends @len bytes (copied) to node @to.
 * Errors: CHORUS_EINVAL (bad @to, or @to is the sender), CHORUS_ENOMEM. */
int sim_fx_send(struct sim_effects *fx, int to, const void *data, size_t len);

/* sim_fx_send_stream: sim_fx_send over a stream (TCP): never dropped or
 * duplicated by the loss knobs (sim_faults.drop/dup, sim_set_loss), still
 * delayed, clogged, reordered against datagrams and cut by partitions.
 * Errors: as sim_fx_send. */
int sim_fx_send_stream(struct sim_effects *fx, int to, const void *data,
                       size_t len);

/* sim_fx_timer: arms a one-shot timer that fires SIM_EV_TIMER with @id after
 * @after_ms of the node's monotonic clock. Errors: CHORUS_ENOMEM. */
int sim_fx_timer(struct sim_effects *fx, uint64_t id, chorus_ms after_ms);

/* sim_fx_reply: completes a client request (*@r copied).
 * Errors: CHORUS_ENOMEM. */
int sim_fx_reply(struct sim_effects *fx, const struct sim_reply *r);

/* sim_fx_sync: asks for a SIM_EV_SYNC_DONE carrying @token once every store
 * write with sequence <= @seq is durable. Errors: CHORUS_ENOMEM. */
int sim_fx_sync(struct sim_effects *fx, chorus_seq seq, uint64_t token);

/* What a node hands to create(). Everything is borrowed for the node's life
 * (the simulator outlives every node). */
struct sim_node_config {
  int index;                 /* this node: 0..nodes-1 */
  int nodes;                 /* cluster size */
  const chorus_node_id *ids; /* ids[i]: node i's chorus_node_id */
  const int *dc;             /* dc[i]: node i's datacenter */
  uint64_t seed;             /* seed this incarnation's own PRNG from it */
  const struct chorus_tracer *tracer; /* stamps lines with time and node */
  void *arg;                          /* sim_node_ops' private argument */
};

/* A replica's final state of one key, for the convergence and final-state
 * checkers. values point into the node's state, borrowed until the next
 * call on the node. */
struct sim_replica_view {
  const struct sim_buf *values; /* kv siblings or set elements */
  size_t nvalues;
  int64_t counter;
  const uint64_t *op_ids; /* counter: op ids applied, if the protocol knows */
  size_t nop_ids;
  int has_op_ids;
  uint64_t digest;   /* equal states give equal digests (protocol-defined) */
  uint64_t stamp[2]; /* lww: the register's stamp */
};

struct sim_node_ops {
  const char *name;
  /* create: a new instance in *@state. No event yet: SIM_EV_START follows.
   * Errors: CHORUS_ENOMEM. */
  int (*create)(void **state, const struct sim_node_config *cfg);
  /* handle: one event in, effects out through @fx. A returned error is a
   * bug in the protocol: the run fails with it. */
  int (*handle)(void *state, const struct sim_event *ev,
                struct sim_effects *fx);
  /* inspect: the node's state of @key. CHORUS_ENOTFOUND when the node is not
   * a replica of @key; a replica with nothing yet returns an empty view;
   * CHORUS_ECLOSED when the node cannot tell now (no instance runs): it is
   * not converged, and its final state is not recorded. */
  int (*inspect)(void *state, enum sim_op_type type, const void *key,
                 size_t klen, struct sim_replica_view *out);
  /* destroy: frees the instance (crash or end of run). */
  void (*destroy)(void *state);
};

/* ------------------------------------------------------------------------
 * Configuration and fault knobs
 * ------------------------------------------------------------------------ */

/* Fault rates. Rates are per second of virtual chaos time unless noted. */
struct sim_faults {
  double drop;         /* per message */
  double dup;          /* per message */
  chorus_ms tail_ms;   /* mean of the exponential latency tail */
  double partition;    /* partitions (of a random shape) per second */
  double clog;         /* link clogs per second */
  double crash;        /* node crashes per second */
  double store_fault;  /* injected I/O or fsync failures per second */
  double clock_jump;   /* wall-clock jumps per second */
  int drift_ppm;       /* max |drift| of a node's clock */
  chorus_ms offset_ms; /* max |offset| of a node's wall clock */
  chorus_ms fsync_ms;  /* max fsync latency (min is a tenth of it) */
};

/* The brutal end of the swarm: per seed, each knob is switched on with
 * probability 1/2 and then drawn uniformly below these maxima. */
void sim_faults_swarm_max(struct sim_faults *f);

/* sim_faults_draw: swarm testing (Groce et al., "Swarm Testing", ISSTA
 * 2012): from @max, draws this seed's rates into @out. */
void sim_faults_draw(struct sim_faults *out, const struct sim_faults *max,
                     struct chorus_prng *prng);

struct sim_config {
  uint64_t seed;
  int nodes; /* 1..SIM_MAX_NODES */
  int dcs;   /* 1..nodes */
  const struct sim_node_ops *ops;
  void *ops_arg;
  struct sim_faults faults; /* used by sim_nemesis_start() and the network */
  int verbose;              /* print every trace line to stderr */
};

struct sim;

/* sim_new: a simulator with every node created and started at time 0 (the
 * START events are queued; run sim_step to deliver them). @cfg is copied.
 * Errors: CHORUS_EINVAL (bad sizes), CHORUS_ENOMEM, or the error a node's
 * create() returned. */
int sim_new(const struct sim_config *cfg, struct sim **out);

/* sim_free: destroys every node and store (NULL is fine). */
void sim_free(struct sim *s);

/* ------------------------------------------------------------------------
 * Running
 * ------------------------------------------------------------------------ */

/* sim_step: runs the next event. Returns 1 when an event ran, 0 when the
 * queue is empty, or a negative error (a node's handle() failed; the run is
 * then broken: see sim_failure()). */
int sim_step(struct sim *s);

/* sim_run_until: runs every event up to and including time @t, then sets
 * the clock to @t. Returns CHORUS_OK or a step error. */
int sim_run_until(struct sim *s, sim_time t);

/* sim_run_for: sim_run_until(now + @us). */
int sim_run_for(struct sim *s, sim_time us);

/* sim_step_until: steps until @pred(s, arg) holds (checked before each
 * step) or @limit microseconds have passed. Returns 1 if it held, 0 on
 * timeout, or a step error. */
int sim_step_until(struct sim *s, int (*pred)(struct sim *, void *), void *arg,
                   sim_time limit);

sim_time sim_now(const struct sim *s);
int sim_nodes(const struct sim *s);
int sim_node_up(const struct sim *s, int node);
uint64_t sim_seed(const struct sim *s);
struct sim_history *sim_history(struct sim *s);
const struct sim_faults *sim_faults(const struct sim *s);

/* sim_fnv64: FNV-1a (64 bit) of @n bytes, continuing from @h (start with
 * SIM_FNV64_INIT): the one hash of trace hashes, digests and toy tokens. */
#define SIM_FNV64_INIT 0xcbf29ce484222325ULL
uint64_t sim_fnv64(uint64_t h, const void *d, size_t n);

/* sim_trace_hash: FNV-1a over every delivered event and trace line so far.
 * Equal seeds (and equal calls) give equal hashes. */
uint64_t sim_trace_hash(const struct sim *s);

/* sim_trace_dump: writes the last @lines trace lines to @f (a FILE *). */
void sim_trace_dump(const struct sim *s, void *f, int lines);

/* sim_tracef: adds a line from the simulator itself (nemesis, workload). */
void sim_tracef(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* sim_failure: the first node error of the run (CHORUS_OK if none), and its
 * message. */
int sim_failure(const struct sim *s, const char **msg);

/* sim_schedule: runs @fn(s, @arg) after @delay microseconds (an event like
 * any other, ordered by time then scheduling order). Errors: CHORUS_ENOMEM.
 */
int sim_schedule(struct sim *s, sim_time delay,
                 void (*fn)(struct sim *, void *), void *arg);

/* sim_prng: the simulator's PRNG for @tag's subsystem (workload, tests):
 * derived from the master seed on first use, then kept. */
struct chorus_prng *sim_prng(struct sim *s, uint64_t tag);

/* ------------------------------------------------------------------------
 * Faults: the vocabulary of scenario tests (each leaves a trace line)
 * ------------------------------------------------------------------------ */

/* A set of nodes (bit i for node i), a plain value: partitions name one
 * side with it. Fill it with sim_nodeset_clear and sim_nodeset_add (indexes
 * outside 0..SIM_MAX_NODES-1 are ignored). */
#define SIM_NODESET_WORDS (SIM_MAX_NODES / 64)
struct sim_nodeset {
  uint64_t w[SIM_NODESET_WORDS];
};
void sim_nodeset_clear(struct sim_nodeset *set);
void sim_nodeset_add(struct sim_nodeset *set, int node);
int sim_nodeset_has(const struct sim_nodeset *set, int node);

/* Partitions replace the current one. @side is borrowed for the call; the
 * trace line prints it as one hexadecimal number. */
void sim_partition(struct sim *s,
                   const struct sim_nodeset *side); /* side vs the rest */
void sim_isolate(struct sim *s, int node);
/* sim_bridge: @side and the rest cannot talk, but @bridge (in neither)
 * talks to both: a non-transitive partition. */
void sim_bridge(struct sim *s, const struct sim_nodeset *side, int bridge);
/* sim_one_way: messages from @from to @to are lost; the other way works. */
void sim_one_way(struct sim *s, int from, int to);
/* sim_heal: removes partitions and clogs. */
void sim_heal(struct sim *s);
/* sim_clog: messages from @from to @to sent in the next @us wait until the
 * clog clears. */
void sim_clog(struct sim *s, int from, int to, sim_time us);

/* sim_slow_node: every message delivered to @node waits an extra delay
 * drawn uniformly below @in_us, every message it sends one below @out_us
 * (0: none): a node that handles its traffic late, Lifeguard's slow member
 * (Dadgar et al. 2017, §5). Lasts until changed; sim_heal keeps it. A bad
 * @node is ignored. */
void sim_slow_node(struct sim *s, int node, sim_time in_us, sim_time out_us);
/* sim_set_loss: sets the network's per-message drop and duplicate
 * probabilities now (sim_nemesis_start sets them from sim_faults, and
 * sim_nemesis_stop clears them). Streams are exempt. */
void sim_set_loss(struct sim *s, double drop, double dup);

/* sim_node_do: runs @fn on live node @node's state now, with its clocks and
 * an effects buffer applied afterwards as for handle(): an operator command
 * arriving at the node (a leave, a key change, a join through chosen
 * seeds). @fn's error is returned and does not fail the run.
 * Errors: CHORUS_EINVAL (bad @node), CHORUS_ECLOSED (node down or not yet
 * started), the run's failure, or @fn's error. */
int sim_node_do(struct sim *s, int node,
                int (*fn)(void *state, chorus_ms now, chorus_ms wall,
                          struct sim_effects *fx, void *arg),
                void *arg);

/* What a crash keeps of the writes not covered by a completed sync. */
enum sim_keep { SIM_KEEP_NONE, SIM_KEEP_ALL, SIM_KEEP_RANDOM };

/* sim_kill: crashes @node (destroy without warning; store_mem_crash with
 * @keep); the node stays down until sim_restart. No-op if already down. */
void sim_kill(struct sim *s, int node, enum sim_keep keep);
/* sim_wipe: @node's disk is replaced by an empty one (the node must be
 * down: sim_kill first); its next sim_restart starts from nothing under
 * the same id. CHORUS_EINVAL when it is up; CHORUS_ENOMEM. */
int sim_wipe(struct sim *s, int node);
/* sim_restart: creates a new incarnation and delivers SIM_EV_START.
 * Returns CHORUS_OK, or create()'s error. No-op if up. */
int sim_restart(struct sim *s, int node);
/* sim_store: node @node's store (for fault injection in tests). */
struct store *sim_store(struct sim *s, int node);
/* sim_clock_jump: moves @node's wall clock by @ms (either sign). */
void sim_clock_jump(struct sim *s, int node, int64_t ms);
/* sim_clock_error_max: the largest |offset + jumps| any node's wall clock
 * has had so far, in ms (drift comes on top: at most drift_ppm of the
 * virtual time elapsed). test_lock_sim judges lease overlaps only when
 * the lock skew allowance covers it. */
chorus_ms sim_clock_error_max(const struct sim *s);
/* sim_node_state: the node's protocol state, NULL when down (tests). */
void *sim_node_state(struct sim *s, int node);

/* sim_nemesis_start: random faults at the configured rates until
 * sim_nemesis_stop (chaos phase). Errors: CHORUS_ENOMEM. */
int sim_nemesis_start(struct sim *s);
/* sim_nemesis_stop: stops the nemesis, heals the network, clears clock
 * jumps' future, restarts every down node (heal phase). */
int sim_nemesis_stop(struct sim *s);

/* ------------------------------------------------------------------------
 * Clients: every request is recorded in sim_history(s)
 * ------------------------------------------------------------------------ */

/* A client's view of a completed request, valid until the next request of
 * the same client slot. */
struct sim_result {
  int done; /* 0 while in flight */
  enum sim_outcome outcome;
  int status;
  const uint64_t *values; /* decoded siblings / elements */
  size_t nvalues;
  const void *context;
  size_t clen;
  int64_t counter;
  struct sim_lock_answer lock; /* SIM_OP_LOCK */
  size_t hop;                  /* index of the op in the history */
};

/* A request a client makes. @covers lists the values the client saw with
 * @context (the history's supersedes relation; sim_put_after fills it). */
struct sim_call {
  enum sim_op op;
  const char *key;
  uint64_t value; /* PUT value, SET_ADD element, DELETE's own name (unique,
                   * >= 1; a delete sends no value) */
  int64_t amount; /* COUNTER_ADD */
  const void *context;
  size_t clen;
  const uint64_t *covers;
  size_t ncovers;
  int r, w;
  sim_time timeout; /* 0: 2 s */
  /* SIM_OP_CAS (issue 23): the condition (WIRE_CAS_READ, _IF_ABSENT,
   * _IF_VALUE, _DELETE_IF_VALUE, _SET, _IF_MATCH, _DELETE_IF_MATCH) and
   * the value it expects (IF_MATCH: @context, a CAS reply's). The reply:
   * sim_result.counter 1 when applied, .values the value found (none when
   * absent), .context the value's context; an error that may have applied
   * is unknown, as for any write (a serial read's too: it may have
   * finished a proposal). */
  int cas_cond;
  uint64_t expected;
  /* SIM_OP_LOCK (issue 23): the wire's op (WIRE_LOCK_ACQUIRE, _RENEW,
   * _RELEASE, _STATUS, _FENCED_PUT), its token and ttl; @key is the
   * lock's key (WIRE_LOCK_PREFIX + name) or, for FENCED_PUT, the data key,
   * @lock_name then the lock's name and @value the value. The reply:
   * sim_result.counter 1 when applied, .lock the rest, .values the value
   * found (FENCED_PUT). */
  int lock_op;
  uint64_t token, ttl_ms;
  const char *lock_name;
};

/* sim_request_start: client @client (0..SIM_MAX_CLIENTS-1, one request in
 * flight each) sends @call to @node. The result lands in *sim_client_result
 * and @done(s, arg) runs (may be NULL) when it completes: a reply, the node
 * down (fail), or the timeout (unknown for writes, fail for reads).
 * Errors: CHORUS_EBUSY (that client has a request in flight), CHORUS_EINVAL,
 * CHORUS_ENOMEM. */
#define SIM_MAX_CLIENTS 32
int sim_request_start(struct sim *s, int client, int node,
                      const struct sim_call *call,
                      void (*done)(struct sim *, void *, int client),
                      void *arg);
const struct sim_result *sim_client_result(struct sim *s, int client);

/* The synchronous vocabulary for scenario tests: start a request as client
 * @SIM_VOCAB_CLIENT, step until it completes, return its result (borrowed
 * until the next call). A NULL return means the run broke. */
#define SIM_VOCAB_CLIENT (SIM_MAX_CLIENTS - 1)
const struct sim_result *sim_get(struct sim *s, int node, const char *key);
const struct sim_result *sim_put(struct sim *s, int node, const char *key,
                                 uint64_t value);
/* sim_put_after: a PUT with the context (and covered values) of @seen, a
 * result of an earlier sim_get on the same key; copies them first. */
const struct sim_result *sim_put_after(struct sim *s, int node, const char *key,
                                       uint64_t value,
                                       const struct sim_result *seen);
const struct sim_result *sim_call(struct sim *s, int node,
                                  const struct sim_call *call);

/* sim_converged: whether every node is up (its SIM_EV_START delivered) and
 * every key in the history has equal states on all its replicas (inspect()
 * digests and counters). */
int sim_converged(struct sim *s);

/* sim_record_finals: records every up replica's final state of every key of
 * the history (sim_history_final), for the final-state checkers (a node
 * whose inspect() says CHORUS_ECLOSED is left out). */
int sim_record_finals(struct sim *s);

/* ------------------------------------------------------------------------
 * A whole seed: workload, chaos, heal, checks (sim_workload.c)
 * ------------------------------------------------------------------------ */

struct sim_run_config {
  struct sim_config sim; /* .faults is a maximum when swarm is set */
  int swarm;             /* draw fault rates per seed below sim.faults */
  int clients;           /* concurrent clients (default 4) */
  int kv_keys, counter_keys, set_keys; /* key counts per type */
  int lww_keys;        /* LWW registers (default 0: not every protocol
                        * under test has them) */
  int set_remove_pct;  /* set operations that read the set, then remove one
                        * element it returned with the read's context
                        * (SIM_OP_SET_REMOVE), percent [0]; at most 70 */
  int delete_pct;      /* kv operations that read the key, then delete it with
                        * the read's context (SIM_OP_DELETE), percent [0]; at
                        * most 45: they replace read-modify-writes */
  sim_time chaos;      /* chaos phase length (default 8 s) */
  sim_time heal_bound; /* convergence bound after heal (default 30 s) */
  int r, w;            /* quorum sizes asked for (0: protocol default) */
  int strict;          /* R+W>N, strict quorum, no faults: also run
                        * read-your-writes and strict counter bounds */
  int trace_lines;     /* lines printed on failure (default 40) */
  int quiet;           /* print nothing on failure */
  /* Scenario hooks for tests (NULL: none), both called with @hook_arg:
   * @hook_start right after the simulator is created, before any event
   * ran (act on the cluster at once, or schedule actions and observations
   * with sim_schedule: they run under the workload); @hook_end once the
   * run is judged, before the simulator is freed (look at the final
   * state; it may still run the simulator to watch what follows). */
  void (*hook_start)(struct sim *s, void *arg);
  void (*hook_end)(struct sim *s, void *arg);
  /* @hook_converged (NULL: none): one more condition the heal phase
   * waits for beside sim_converged, within the same heal bound (a node
   * that must first finish restoring, say); nonzero when it holds. */
  int (*hook_converged)(struct sim *s, void *arg);
  void *hook_arg;
};

struct sim_run_result {
  int ok;
  char checker[32]; /* the first failing checker, or "" */
  char message[256];
  uint64_t trace_hash;
  size_t ops;    /* client operations recorded */
  size_t events; /* events run */
  sim_time end;  /* virtual time at the end */
  /* When the faults stopped, and when convergence was first seen (0:
   * never): converged - healed is the time to converge after the heal,
   * the clients' last requests included. */
  sim_time healed, converged;
};

/* sim_run_defaults: fills @rc with the defaults above for @ops. */
void sim_run_defaults(struct sim_run_config *rc,
                      const struct sim_node_ops *ops);

/* sim_run_seed: one complete run of @seed (overrides rc->sim.seed). On a
 * checker failure prints the seed, the checker and a short trace to stderr
 * (unless quiet). Returns CHORUS_OK (see res->ok for the verdict) or an
 * engine error (CHORUS_ENOMEM). */
int sim_run_seed(const struct sim_run_config *rc, uint64_t seed,
                 struct sim_run_result *res);

size_t sim_events(const struct sim *s);

#endif /* CHORUS_SIM_H */
