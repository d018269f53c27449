/* node_loop.c: chorusd's loop phases: the check phase that states the
 * durability rule once, the sync barriers the core asks for (and the
 * store's sync thread that answers them), the core's deadline timer, and
 * the store's space check (node.h). */
#include <assert.h>
#include <inttypes.h>

#include <uv.h>

#include "chorus_alloc.h"
#include "node_int.h"

/* ------------------------------------------------------------------------
 * Sync barriers
 *
 * `group` durability: the barriers the core asks for during one loop
 * iteration are submitted as one store barrier at its end (the sync thread
 * wakes once for every write the iteration made, instead of syncing the
 * first few while the rest arrive); the store's sync thread hands the
 * results back through sync_async. `none` durability: nothing to wait for;
 * the answers are delivered at this iteration's check, before its output
 * leaves (never from inside the core's own effect, which must not re-enter
 * it).
 * ------------------------------------------------------------------------ */

static void chain_append(struct node_sync **head, struct node_sync **tail,
                         struct node_sync *d) {
  if (*tail)
    (*tail)->next = d;
  else
    *head = d;
  *tail = d;
}

/* While work waits for the check phase (`none` answers, or output that a
 * timer callback produced: timers run before the poll, the check after
 * it), an active idle handle makes the loop poll without blocking; the
 * callback has nothing to do, and the check stops it. */
static void on_wake_idle(uv_idle_t *h) {
  (void)h;
}

void node__loop_wake(struct node *n) {
  uv_idle_start(&n->wake_idle, on_wake_idle);
}

int node__fx_sync(void *ctx, chorus_seq seq, uint64_t token) {
  struct node *n = ctx;
  struct node_sync *d = chorus_calloc(1, sizeof *d);
  if (d == NULL)
    return CHORUS_ENOMEM;
  d->n = n;
  d->token = token;
  if (n->cfg.durability == NODE_DURABILITY_NONE) {
    d->status = CHORUS_OK;
    chain_append(&n->ready_head, &n->ready_tail, d);
    node__loop_wake(n);
    return CHORUS_OK;
  }
  chain_append(&n->barrier_head, &n->barrier_tail, d);
  if (seq > n->barrier_seq)
    n->barrier_seq = seq;
  return CHORUS_OK;
}

/* sync_push_chain: hands the results @head..@tail to the loop (any
 * thread). */
static void sync_push_chain(struct node *n, struct node_sync *head,
                            struct node_sync *tail) {
  uv_mutex_lock(&n->sync_lock);
  if (n->sync_tail)
    n->sync_tail->next = head;
  else
    n->sync_head = head;
  n->sync_tail = tail;
  /* Under the lock, so the loop cannot close the handle in between. */
  if (!n->async_closed)
    uv_async_send(&n->sync_async);
  uv_mutex_unlock(&n->sync_lock);
}

/* Runs on the store's sync thread: hand the results to the loop. @arg is
 * the chain of one iteration's barriers (submit_barriers). */
static void on_store_sync(void *arg, chorus_seq durable, int status) {
  (void)durable;
  struct node_sync *head = arg, *tail = head;
  for (struct node_sync *d = head; d; d = d->next) {
    d->status = status;
    tail = d;
  }
  sync_push_chain(head->n, head, tail);
}

/* submit_barriers: one store barrier for every barrier the core asked for
 * since the last call (group commit per loop iteration). */
static void submit_barriers(struct node *n) {
  struct node_sync *head = n->barrier_head, *tail = n->barrier_tail;
  if (head == NULL)
    return;
  n->barrier_head = n->barrier_tail = NULL;
  int rc = store_sync_request(n->store, n->barrier_seq, on_store_sync, head);
  if (rc != CHORUS_OK) {
    for (struct node_sync *d = head; d; d = d->next)
      d->status =
          rc == CHORUS_ENOMEM || rc == CHORUS_ENOSPC ? rc : CHORUS_ESYNCFAILED;
    sync_push_chain(n, head, tail);
  }
}

/* deliver: hands each result of the chain @d to the core and frees it. */
static void deliver(struct node *n, struct node_sync *d) {
  while (d) {
    struct node_sync *next = d->next;
    if (!n->closing_all) {
      /* ENOSPC: the disk filled under the writes it covers (store.h), the
       * node goes on; anything else is a failed sync. */
      int st = d->status == CHORUS_OK || d->status == CHORUS_ENOSPC
                   ? d->status
                   : CHORUS_ESYNCFAILED;
      if (d->status == CHORUS_ENOSPC)
        n->space_due = true;
      if (d->status == CHORUS_ESYNCFAILED)
        node_log(NODE_LOG_ERROR, "store", "sync failed: %s",
                 store_errmsg(n->store));
      int rc =
          core_sync_done(n->core, d->token, st, node__now(n), node__wall_ms());
      if (rc == CHORUS_ESYNCFAILED)
        node__fatal(rc, "the store failed under replication");
      if (rc != CHORUS_OK)
        node__fatal(rc, "sync done");
    }
    chorus_free(d);
    d = next;
  }
}

static void on_sync_async(uv_async_t *h) {
  struct node *n = h->data;
  uv_mutex_lock(&n->sync_lock);
  struct node_sync *d = n->sync_head;
  n->sync_head = n->sync_tail = NULL;
  uv_mutex_unlock(&n->sync_lock);
  deliver(n, d);
}

/* deliver_ready: the `none` durability answers of this iteration, and any
 * they cause. */
static void deliver_ready(struct node *n) {
  while (n->ready_head) {
    struct node_sync *d = n->ready_head;
    n->ready_head = n->ready_tail = NULL;
    deliver(n, d);
  }
}

/* ------------------------------------------------------------------------
 * The core's deadline: one uv_timer, re-armed when the deadline moves.
 * ------------------------------------------------------------------------ */

static void arm_deadline(struct node *n);
static void arm_deadline_after(struct node *n, chorus_ms min_delay);

/* on_deadline: runs in the loop's timer phase, before the poll: what the
 * core decided (replies, sends, barriers) must not wait for the next I/O
 * to reach the check phase, so the poll is told not to block. */
static void on_deadline(uv_timer_t *t) {
  struct node *n = t->data;
  n->deadline_armed = CORE_NEVER;
  int rc = core_tick(n->core, node__now(n), node__wall_ms());
  if (rc != CHORUS_OK)
    node__fatal(rc, "timer");
  /* Not 0 from here: libuv before 1.45 (Debian 12 has 1.44) runs a timer
   * started with no delay from a timer callback again in the same pass,
   * without polling, so a deadline that stayed due (a bug, as
   * core_aae.c's once was) would starve every socket. 1 ms lets the poll
   * in; the core runs what is due when the timer fires. */
  arm_deadline_after(n, 1);
  node__loop_wake(n);
}

static void arm_deadline(struct node *n) {
  arm_deadline_after(n, 0);
}

/* arm_deadline_after: the deadline timer for the core's next deadline,
 * no sooner than @min_delay ms from now. */
static void arm_deadline_after(struct node *n, chorus_ms min_delay) {
  if (n->closing_all)
    return;
  chorus_ms d = core_next_deadline(n->core);
  if (d == n->deadline_armed)
    return;
  n->deadline_armed = d;
  if (d == CORE_NEVER) {
    uv_timer_stop(&n->deadline_timer);
    return;
  }
  chorus_ms now = node__now(n);
  chorus_ms delay = d > now ? d - now : 0;
  uv_timer_start(&n->deadline_timer, on_deadline,
                 delay > min_delay ? delay : min_delay, 0);
}

/* ------------------------------------------------------------------------
 * The space check (store.h, THE SPACE RESERVE): every second, and at the
 * end of an iteration in which a write found the disk full. The store
 * decides; this logs each transition once.
 * ------------------------------------------------------------------------ */

void node__space_check(struct node *n) {
  n->space_due = false;
  if (n->store == NULL || n->closing_all)
    return;
  const struct store_disk *d = store_disk_info(n->store);
  uint64_t reopens = d->generation;
  bool changed = false;
  int rc = store_check_space(n->store, &changed);
  if (rc == CHORUS_ESYNCFAILED) {
    node_log(NODE_LOG_ERROR, "store", "%s", store_errmsg(n->store));
    node__fatal(rc, "reopening the store");
  }
  if (rc != CHORUS_OK && rc != n->space_rc)
    node_log(NODE_LOG_WARN, "store", "space check: %s", store_errmsg(n->store));
  else if (rc == CHORUS_OK && n->space_rc != CHORUS_OK)
    node_log(NODE_LOG_INFO, "store", "space check works again");
  n->space_rc = rc;
  if (d->generation != reopens)
    node_log(NODE_LOG_INFO, "store", "reopened %s (%" PRIu64 " bytes free)",
             d->read_only ? "read-only" : "read-write", d->avail);
  if (!changed)
    return;
  if (d->full)
    node_log(NODE_LOG_WARN, "store",
             "data folder %s full (%" PRIu64 " bytes free, --min-free-mb "
             "%" PRIu32 "): writes refused with ENOSPC until space returns; "
             "reads, gossip and hints go on",
             n->cfg.data, d->avail, n->cfg.min_free_mb);
  else
    node_log(NODE_LOG_INFO, "store",
             "data folder %s has room again (%" PRIu64 " bytes free): "
             "writes resume",
             n->cfg.data, d->avail);
}

static void on_space_timer(uv_timer_t *t) {
  node__space_check(t->data);
}

/* ------------------------------------------------------------------------
 * The check phase: once per loop iteration, after every I/O callback.
 *
 * THE DURABILITY RULE. Nothing an iteration decided leaves the node ahead
 * of the writes it stands on, in this order:
 *   0. the replica writes the iteration deferred are applied as one store
 *      write and answered (core_flush; repl_replica.c, REPLICA WRITES IN
 *      BATCHES): each answer waits for a barrier, like any other;
 *   1. `none` barriers are answered (their replies join this iteration);
 *   2. the iteration's WAL records go to the OS in one write(2)
 *      (store_flush): from here a process crash loses nothing that a
 *      reply or a replica's answer acknowledges; a failed flush leaves the
 *      WAL's end unknown, so the node stops before anything leaves. A
 *      flush that found the disk full is not that (store.h): its writes
 *      are lost at the store's reopen, so in `none` durability, where the
 *      output may acknowledge them, every connection with output closes
 *      without it (its client reads "may have been applied", a peer's
 *      coordinator hints); in `group` nothing in the output stands on an
 *      unsynced write, and it leaves;
 *   3. every connection with output is written, one uv_write each;
 *   4. one store barrier covers every `group` barrier of the iteration
 *      (acknowledgements wait for its fsync, node__fx_sync);
 *   5. a space check when a write found the disk full (the store reopens
 *      there: after the barriers, which it then answers);
 *   6. the core's deadline timer follows whatever the iteration armed,
 *      and the poll may block again.
 * ------------------------------------------------------------------------ */

/* flush_store: step 2. */
static void flush_store(struct node *n) {
  if (n->dirty == NULL || n->store == NULL)
    return;
  int rc = store_flush(n->store);
  if (rc == CHORUS_OK)
    return;
  if (rc != CHORUS_ENOSPC) {
    node_log(NODE_LOG_ERROR, "store", "%s", store_errmsg(n->store));
    node__fatal(CHORUS_ESYNCFAILED, "handing the WAL to the OS");
  }
  n->space_due = true;
  if (n->cfg.durability != NODE_DURABILITY_NONE)
    return;
  node_log(NODE_LOG_WARN, "store",
           "%s: this iteration's answers are dropped with their connections",
           store_errmsg(n->store));
  for (struct node_conn *c = n->dirty; c; c = c->dirty_next)
    node__conn_close(c);
}

/* flush_core: step 0. */
static void flush_core(struct node *n) {
  if (n->core == NULL || n->closing_all)
    return;
  int rc = core_flush(n->core, node__now(n), node__wall_ms());
  if (rc == CHORUS_ESYNCFAILED)
    node__fatal(rc, "the store failed under replication");
  if (rc != CHORUS_OK)
    node__fatal(rc, "applying the iteration's replica writes");
}

static void on_check(uv_check_t *h) {
  struct node *n = h->data;
  n->iterations++;
  flush_core(n);
  deliver_ready(n);
  flush_store(n);
  node__conn_flush_dirty(n);
  submit_barriers(n);
  if (n->space_due || (n->store != NULL && store_space_stale(n->store)))
    node__space_check(n);
  arm_deadline(n);
  uv_idle_stop(&n->wake_idle);
}

/* ------------------------------------------------------------------------
 * Handles
 * ------------------------------------------------------------------------ */

void node__loop_init(struct node *n) {
  uv_mutex_init(&n->sync_lock);
  uv_timer_init(&n->loop, &n->deadline_timer);
  uv_timer_init(&n->loop, &n->space_timer);
  uv_check_init(&n->loop, &n->flush_check);
  uv_idle_init(&n->loop, &n->wake_idle);
  uv_async_init(&n->loop, &n->sync_async, on_sync_async);
  n->deadline_timer.data = n->flush_check.data = n->sync_async.data = n;
  n->space_timer.data = n;
  n->wake_idle.data = n;
  n->deadline_armed = CORE_NEVER;
}

void node__loop_start(struct node *n) {
  uv_check_start(&n->flush_check, on_check);
  uv_timer_start(&n->space_timer, on_space_timer, 1000, 1000);
  arm_deadline(n);
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

void node__loop_close(struct node *n) {
  close_handle((uv_handle_t *)&n->deadline_timer);
  close_handle((uv_handle_t *)&n->space_timer);
  close_handle((uv_handle_t *)&n->flush_check);
  close_handle((uv_handle_t *)&n->wake_idle);
  uv_mutex_lock(&n->sync_lock);
  n->async_closed = true;
  uv_mutex_unlock(&n->sync_lock);
  close_handle((uv_handle_t *)&n->sync_async);
}

/* Barriers never submitted and results never delivered (the loop stopped
 * first) are freed with the ones the store's close canceled. */
void node__loop_fini(struct node *n) {
  assert(n->async_closed);
  if (n->barrier_tail) {
    n->barrier_tail->next = n->sync_head;
    n->sync_head = n->barrier_head;
    n->barrier_head = n->barrier_tail = NULL;
  }
  if (n->ready_tail) {
    n->ready_tail->next = n->sync_head;
    n->sync_head = n->ready_head;
    n->ready_head = n->ready_tail = NULL;
  }
  struct node_sync *d = n->sync_head;
  while (d) {
    struct node_sync *next = d->next;
    chorus_free(d);
    d = next;
  }
  n->sync_head = n->sync_tail = NULL;
  uv_mutex_destroy(&n->sync_lock);
}
