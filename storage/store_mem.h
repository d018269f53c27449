/* store_mem.h: the in-memory storage backend, for the simulator and tests.
 *
 * HOW IT MODELS A CRASH
 *
 * The store keeps two maps per key space: `current` (what reads see) and
 * `durable` (what survives a crash), plus the list of writes made since the
 * last completed sync, in sequence order (a batch is one entry). Syncs
 * complete only when the driver says so, by calling store_mem_sync_step():
 * that is where simulated fsync latency and fsync failure live.
 *
 *   store_mem_sync_step()   durable := current; fire barriers; clear list
 *   store_mem_crash(keep)   current := durable + the first @keep unsynced
 *                           writes; the rest are lost (the test picks all,
 *                           none, or a random prefix: a WAL that was
 *                           written but not synced loses a suffix, never a
 *                           hole in the middle)
 *
 * After a crash the handle behaves like a freshly reopened store: pending
 * barriers are dropped without their callbacks running (the process that
 * asked for them is gone), a sticky sync failure and injected faults are
 * cleared, sequences continue from the last surviving write, and the
 * recovered writes count as durable (a second crash cannot lose them), as
 * after a RocksDB reopen, which syncs the replayed WAL.
 *
 * Displaced records are kept until the next sync step (they are what a
 * crash restores), so a driver should sync periodically even in `none`
 * durability, as a background WAL sync would.
 *
 * Single-threaded: one thread at a time, including callbacks. A barrier
 * callback may write and request new barriers (they wait for the next
 * step), but must not call store_sync(), store_mem_sync_step(),
 * store_mem_crash() or store_close() on the same store; iterators must be
 * closed before store_close(). Both are asserted.
 */
#ifndef CHORUS_STORE_MEM_H
#define CHORUS_STORE_MEM_H

#include "store.h"

/* store_mem_open: a new empty memory store in *@out.
 * Errors: CHORUS_ENOMEM. */
int store_mem_open(struct store **out);

/* store_mem_sync_step: completes a sync: every write so far becomes durable,
 * and every pending barrier runs its callback (in request order) with
 * CHORUS_OK. If a STORE_FAULT_SYNC was injected, the sync fails instead:
 * nothing new becomes durable, the store turns sticky-failed, and every
 * pending barrier runs with CHORUS_ESYNCFAILED. Returns the number of
 * callbacks run, or a negative error (CHORUS_ESYNCFAILED). @s must be a
 * memory store. */
int store_mem_sync_step(struct store *s);

/* store_mem_pending_syncs: barriers waiting for the next sync step. */
size_t store_mem_pending_syncs(struct store *s);

/* store_mem_unsynced: writes (a batch counts once) since the last completed
 * sync; these are what a crash may lose. */
size_t store_mem_unsynced(struct store *s);

/* store_mem_open_iters: iterators open on @s now (a test's view of who
 * still pins a snapshot). */
size_t store_mem_open_iters(struct store *s);

/* store_mem_crash: simulates a process crash followed by a restart that
 * recovers the durable state plus the first @keep unsynced writes (@keep is
 * clamped to store_mem_unsynced()). Pending barriers are dropped without
 * their callbacks. Errors: CHORUS_ENOMEM (the store is unchanged). */
int store_mem_crash(struct store *s, size_t keep);

/* store_mem_is_mem: whether @s is a memory store. */
int store_mem_is_mem(const struct store *s);

#endif /* CHORUS_STORE_MEM_H */
