/* ring_rcu.c: publishing ring snapshots to reader threads with liburcu. */
#include <urcu/urcu-memb.h>

#include "ring_int.h"

/* WHY RCU
 *
 * Every request looks the ring up, on every thread; the ring changes a few
 * times a day. Readers therefore take no lock and write no shared cache
 * line: urcu-memb's read lock is a per-thread counter, and the writer pays
 * instead, by waiting a grace period (here off its own thread, in liburcu's
 * call_rcu worker) before freeing a snapshot that readers might still hold.
 * The flavour is urcu-memb (membarrier-based, no signals, no quiescent-state
 * calls): it is liburcu's default, so `-lurcu` from pkg-config links it. */

static void free_cb(struct rcu_head *head) {
  struct ring_snapshot *s =
      (struct ring_snapshot *)((char *)head -
                               offsetof(struct ring_snapshot, rcu));
  ring_snapshot_free(s);
}

void ring_rcu_init(struct ring_rcu *r, struct ring_snapshot *initial) {
  r->current = initial;
}

void ring_rcu_publish(struct ring_rcu *r, struct ring_snapshot *s) {
  /* Single writer: only this thread stores r->current, so a plain load
   * reads its own last store. rcu_assign_pointer orders the snapshot's
   * construction before the pointer becomes visible to readers. */
  struct ring_snapshot *old = r->current;
  rcu_assign_pointer(r->current, s);
  if (old != NULL)
    urcu_memb_call_rcu(&old->rcu, free_cb);
}

const struct ring_snapshot *ring_rcu_get(struct ring_rcu *r) {
  return rcu_dereference(r->current);
}

void ring_rcu_fini(struct ring_rcu *r) {
  struct ring_snapshot *old = r->current;
  rcu_assign_pointer(r->current, NULL);
  urcu_memb_synchronize_rcu();
  ring_snapshot_free(old);
  /* Wait for the call_rcu frees still queued. */
  urcu_memb_barrier();
}

void ring_rcu_register_thread(void) {
  urcu_memb_register_thread();
}

void ring_rcu_unregister_thread(void) {
  urcu_memb_unregister_thread();
}

void ring_rcu_read_lock(void) {
  urcu_memb_read_lock();
}

void ring_rcu_read_unlock(void) {
  urcu_memb_read_unlock();
}
