/* store.h: the storage interface that replication calls and node binds.
 *
 * WHAT A STORE IS
 *
 * An ordered byte-key/byte-value map split into key spaces (RocksDB column
 * families), with atomic batches, ordered range scans, write sequence numbers
 * and sync barriers. Two backends implement it: RocksDB for chorusd
 * (store_rocksdb.h) and an in-memory map for the simulator that models
 * exactly what a crash loses (store_mem.h). Replication code sees only this
 * header, so the same protocol code runs against either.
 *
 * KEY SPACES
 *
 *   STORE_DATA   replicated objects, key = [token: 8 bytes BE][user key]
 *   STORE_HINTS  hinted handoff, key = [target node: 8 bytes BE][token: 8 BE]
 *                [user key] (one hint per target and key;
 * replication/repl_int.h) STORE_META   node identity, incarnation, ring state;
 * small keys
 *
 * STORE_DATA keys are built with store_data_key(); the store does not check
 * the prefix, and a shorter key would surface in token scans as a key that
 * store_data_key_parse() rejects with CHORUS_ECORRUPT.
 *
 * Data keys are prefixed with the big-endian token of the user key
 * (DESIGN.md §5), so byte order is token order and one vnode's range is one
 * contiguous scan: streaming, handoff and Merkle trees iterate it directly.
 *
 *   offset  size  field
 *   0       8     token, big-endian (xxh3-64 of the user key, from ring/)
 *   8       n     user key bytes (n <= STORE_MAX_USER_KEY)
 *
 * SEQUENCES AND DURABILITY
 *
 * Every successful write (put, delete, batch) returns a sequence number S.
 * Sequences only grow. A write that returned S is visible to reads at once.
 * It survives a process crash once store_flush() has returned (the RocksDB
 * backend keeps its WAL in a process buffer until then, so that one loop
 * iteration's writes cost one write(2)), and a power loss once a sync
 * barrier covering S has completed. store_sync_request(S, cb) asks for that
 * barrier; the backend batches all requests that arrive while a sync is running
 * into the next one (group commit: one WAL fsync for every write since the
 * previous one), then calls cb.
 *
 * Durability modes (docs/ARCHITECTURE.md): in `none` the replication layer
 * acknowledges without waiting for a barrier; in `group` it acknowledges
 * only from the barrier's callback.
 *
 * ERRORS
 *
 * Failures come back as CHORUS_E* codes with a message in store->errmsg;
 * bytes read back from disk that make no sense are CHORUS_ECORRUPT, never an
 * assert. A failed sync leaves the WAL's state unknown (a failed fsync may
 * have dropped dirty pages, the "fsyncgate" lesson), so it is sticky: from
 * then on every write and every barrier fails with CHORUS_ESYNCFAILED until
 * the store is closed and reopened. Reads keep working.
 *
 * A full disk is not a failed sync: nothing that was synced is in doubt,
 * and space can come back. It is CHORUS_ENOSPC, never sticky (below).
 *
 * THE SPACE RESERVE (store_check_space)
 *
 * RocksDB cannot be allowed to find its disk full: its own files (the info
 * LOG, the WAL, a memtable flush) then fail, and the RocksDB we build on
 * (7.8, with assertions) aborts the process on the next write to a file
 * that already failed (writable_file_writer.h:312, issue 17). So the store
 * keeps a reserve: below store_set_reserve()'s floor of available bytes it
 * refuses every write with CHORUS_ENOSPC, "data folder full (N bytes
 * free)", before the backend sees it (writes to STORE_META alone, the
 * identity and the metadata Raft log, go on while the backend can write:
 * a voter short of space must not stop the cluster's metadata), while reads,
 * iterators and barriers of earlier writes keep working. The driver calls
 * store_check_space() periodically (chorusd: every second) and at once when
 * store_space_stale() says a write failed for lack of space; that call is the
 * one place where the decision is made, for both backends: full when fewer than
 * the reserve are available (or none at all), or when the backend cannot write
 * at all. Writes resume by themselves at the first check that finds room.
 *
 * The RocksDB backend opens read-only when the data folder is below its
 * reserve at open (a read-write open writes files), and when a write still
 * finds the disk full (another process took the space between two checks)
 * it stops touching RocksDB's files, reopens read-only at the next check
 * and read-write once there is room (store_rocksdb.h). Writes that had
 * returned a sequence but had not reached the OS are lost by that reopen,
 * as a crash would lose them: their barriers end with CHORUS_ENOSPC, and
 * sequences keep growing past them. The memory backend models a full disk
 * with STORE_FAULT_FULL: no bytes available, every write refused.
 *
 * THREADS
 *
 * The RocksDB backend may be called from any thread; the memory backend from
 * one thread at a time. Deferred writes (DEFERRED WRITES, below) are not
 * locked: a store that defers is called from one thread (chorusd: its
 * loop). The RocksDB backend runs two threads of its own: a
 * sync thread (group commit) and a reclaim thread (store_reclaim's
 * compactions, store_rocksdb.c). Barrier callbacks run on the backend's sync
 * thread (RocksDB) or inside store_mem_sync_step() (memory): keep them short
 * and hand off to your own loop (uv_async_send in node/).
 */
#ifndef CHORUS_STORE_H
#define CHORUS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus_error.h"
#include "chorus_types.h"

enum store_space { STORE_DATA = 0, STORE_HINTS, STORE_META, STORE_SPACE_COUNT };

/* Limits the store enforces on every write (CHORUS_ETOOBIG beyond them). */
#define STORE_TOKEN_PREFIX 8
#define STORE_MAX_USER_KEY (64u * 1024u)
#define STORE_MAX_KEY (STORE_TOKEN_PREFIX + STORE_MAX_USER_KEY)
#define STORE_MAX_VALUE (64u * 1024u * 1024u)

/* Faults a test can inject through store_inject_fault(). */
enum store_fault {
  STORE_FAULT_NONE = 0,
  STORE_FAULT_SYNC,  /* the next sync fails as a failed fsync would */
  STORE_FAULT_WRITE, /* the next write fails with CHORUS_EIO */
  STORE_FAULT_READ,  /* the next get or scan step fails with CHORUS_EIO */
  STORE_FAULT_NOSPC, /* the next write fails with CHORUS_ENOSPC */
  STORE_FAULT_FULL,  /* the disk fills: no bytes available, every write
                        fails with CHORUS_ENOSPC, until STORE_FAULT_NONE */
};

/* The barrier callback: @status is CHORUS_OK when every write with sequence
 * <= @durable (which is >= the requested sequence) is durable; otherwise
 * CHORUS_ESYNCFAILED (the sync failed, now or earlier), CHORUS_ENOSPC (the
 * disk filled before the writes it covers reached it: they may be lost, see
 * THE SPACE RESERVE; nothing synced is in doubt) or CHORUS_ECANCELED (the
 * store closed first). Runs exactly once per accepted request. */
typedef void (*store_sync_cb)(void *arg, chorus_seq durable, int status);

struct store;
struct store_iter;
struct store_batch;
struct store_usage;

/* ------------------------------------------------------------------------
 * Backend vtable. Users call the store_* functions below, never these.
 * ------------------------------------------------------------------------ */
struct store_ops {
  const char *name;
  int (*get)(struct store *, enum store_space, const void *key, size_t klen,
             void **val, size_t *vlen);
  int (*put)(struct store *, enum store_space, const void *key, size_t klen,
             const void *val, size_t vlen, chorus_seq *seq);
  int (*del)(struct store *, enum store_space, const void *key, size_t klen,
             chorus_seq *seq);
  int (*write_batch)(struct store *, const struct store_batch *,
                     chorus_seq *seq);
  int (*iter_open)(struct store *, enum store_space, const void *lo,
                   size_t lolen, const void *hi, size_t hilen,
                   struct store_iter **out);
  int (*sync_request)(struct store *, chorus_seq seq, store_sync_cb cb,
                      void *arg);
  int (*sync)(struct store *);
  int (*flush)(struct store *);
  chorus_seq (*last_seq)(struct store *);
  chorus_seq (*durable_seq)(struct store *);
  /* avail: bytes available to the store's writes now (*avail), and whether
   * the backend can write at all (*can_write: false while read-only). */
  int (*avail)(struct store *, uint64_t *avail, bool *can_write);
  /* reopen: called by store_check_space while the backend cannot write:
   * reopen for writing when @writable, else read-only if it must (*done
   * says whether it reopened). NULL for a backend that never needs it. */
  int (*reopen)(struct store *, bool writable, bool *done);
  void (*inject_fault)(struct store *, enum store_fault);
  /* reclaim, usage: SPACE TAKEN AND GIVEN BACK below; NULL for a backend
   * with nothing to reclaim (store.c answers for it). */
  int (*reclaim)(struct store *, chorus_token first, chorus_token last);
  int (*usage)(struct store *, struct store_usage *);
  void (*close)(struct store *);
};

struct store_iter_ops {
  int (*valid)(struct store_iter *);
  void (*next)(struct store_iter *);
  const void *(*key)(struct store_iter *, size_t *len);
  const void *(*value)(struct store_iter *, size_t *len);
  int (*status)(struct store_iter *);
  void (*close)(struct store_iter *);
  void (*seek)(struct store_iter *, const void *key, size_t len);
};

/* The disk as the reserve sees it, store.c's (THE SPACE RESERVE); zero at
 * open. */
struct store_disk {
  uint64_t reserve;    /* bytes: writes are refused below it */
  uint64_t avail;      /* bytes available at the last check */
  uint64_t generation; /* times the backend reopened */
  bool full;           /* writes are refused */
  bool read_only;      /* the backend could not write at the last check */
  bool stale;          /* a write failed with ENOSPC since the last check */
};

/* The writes store_defer() holds back, store.c's (DEFERRED WRITES); zero
 * at open. */
struct store_deferred {
  struct store_batch *batch; /* NULL until the first deferral */
  size_t bytes;              /* keys and values in it */
  chorus_seq promised;       /* the highest sequence store_last_seq gave for
                                a batch not yet applied */
  int failed;                /* an application's error, for store_commit */
  bool exposed;              /* store_get answered from the batch */
  bool broken;               /* a batch reads had seen failed: sticky */
};

/* Every backend's handle starts with this. */
struct store {
  const struct store_ops *ops;
  /* Why the last failed call failed, outermost context first. */
  char errmsg[CHORUS_ERRMSG_SIZE];
  struct store_disk disk;
  struct store_deferred deferred;
};

struct store_iter {
  const struct store_iter_ops *ops;
};

/* ------------------------------------------------------------------------
 * Reads and writes
 * ------------------------------------------------------------------------ */

/* store_get: looks up @key in @space. On CHORUS_OK, *@val is a chorus_malloc'ed
 * copy the caller frees with chorus_free() (non-NULL even when *@vlen is 0);
 * on any error *@val is NULL and *@vlen 0.
 * Errors: CHORUS_ENOTFOUND (absent; not an I/O failure), CHORUS_EIO,
 * CHORUS_ECORRUPT, CHORUS_ENOMEM, CHORUS_EINVAL (bad space). */
int store_get(struct store *s, enum store_space space, const void *key,
              size_t klen, void **val, size_t *vlen);

/* store_put: writes @val under @key; both are copied. *@seq (may be NULL)
 * receives the write's sequence number.
 * Errors: CHORUS_ETOOBIG (key or value over the limits), CHORUS_EINVAL,
 * CHORUS_EIO, CHORUS_ENOSPC, CHORUS_ESYNCFAILED (sticky, see above),
 * CHORUS_ENOMEM. On error nothing was written. */
int store_put(struct store *s, enum store_space space, const void *key,
              size_t klen, const void *val, size_t vlen, chorus_seq *seq);

/* store_delete: removes @key (deleting an absent key succeeds and still
 * consumes a sequence). Errors: as store_put. */
int store_delete(struct store *s, enum store_space space, const void *key,
                 size_t klen, chorus_seq *seq);

/* ------------------------------------------------------------------------
 * Atomic batches: all of a batch's writes become visible (and durable)
 * together or not at all. A batch is plain memory, independent of backends.
 * ------------------------------------------------------------------------ */

/* store_batch_new: an empty batch, or NULL when out of memory. */
struct store_batch *store_batch_new(void);

/* store_batch_put / store_batch_delete: append an operation; key and value
 * are copied. Errors: CHORUS_ENOMEM (the batch is unchanged), CHORUS_ETOOBIG,
 * CHORUS_EINVAL. */
int store_batch_put(struct store_batch *b, enum store_space space,
                    const void *key, size_t klen, const void *val, size_t vlen);
int store_batch_delete(struct store_batch *b, enum store_space space,
                       const void *key, size_t klen);

/* store_batch_count: operations in @b. */
size_t store_batch_count(const struct store_batch *b);

/* store_batch_clear: empties @b for reuse; store_batch_free releases it
 * (NULL is fine). */
void store_batch_clear(struct store_batch *b);
void store_batch_free(struct store_batch *b);

/* store_write_batch: applies @b atomically; @b stays owned by the caller and
 * unchanged. An empty batch succeeds without consuming a sequence (*@seq gets
 * the current last sequence). Errors: as store_put. */
int store_write_batch(struct store *s, const struct store_batch *b,
                      chorus_seq *seq);

/* ------------------------------------------------------------------------
 * Deferred writes: one backend write for many callers' batches
 *
 * A replica applies each coordinator's write as its own small batch; at
 * many requests in flight a loop iteration applies dozens, and RocksDB
 * charges each one a WAL record and a trip through its write group
 * (issue 27: about 4% of a node's CPU per request). store_defer() lets a
 * caller hand a batch over instead: the store keeps it in one deferred
 * batch and applies everything deferred as ONE backend write at
 * store_commit(), which the driver calls once per loop iteration (chorusd:
 * first thing in its check phase; the simulator: at the end of each event).
 *
 * Until then, the deferred writes are
 *   - visible to store_get() at once (the newest deferred write of a key
 *     answers, a deferred delete reads as CHORUS_ENOTFOUND);
 *   - applied first, in order, by every call that could observe or order
 *     around them: store_put, store_delete and store_write_batch (which
 *     join the same backend write), store_iter_open*, store_sync_request,
 *     store_flush, store_sync, store_check_space, store_reclaim and
 *     store_close; and when the batch grows past STORE_DEFER_MAX_OPS
 *     operations or STORE_DEFER_MAX_BYTES;
 *   - counted by store_last_seq() as one more write (the backend's last
 *     sequence + 1, a sequence their application reaches), so a barrier
 *     asked for it covers them: store_sync_request applies them first.
 * Nothing in a deferred batch is acknowledged by the store before it is
 * applied: a caller that answers for a deferred write answers after
 * store_commit() said it was applied (replication/repl_replica.c).
 *
 * A failed application. The deferred writes are not applied; the next
 * store_commit() returns the error (once), so their callers refuse them
 * as they would have refused an immediate write. A barrier promised for
 * them by store_last_seq() covers what was applied before them. Unless a
 * store_get() had answered from the batch: then state the node may have
 * handed out is gone, and the store fails as after a failed sync
 * (CHORUS_ESYNCFAILED from then on for writes and barriers, sticky).
 * ------------------------------------------------------------------------ */

#define STORE_DEFER_MAX_OPS 256u
#define STORE_DEFER_MAX_BYTES (4u << 20)

/* store_defer: moves @b's operations into @s's deferred batch (@b is left
 * empty, ready for reuse or store_batch_free). Checks what
 * store_write_batch checks first (the space reserve).
 * Errors: CHORUS_ENOSPC, CHORUS_ESYNCFAILED (sticky, above), CHORUS_EINVAL,
 * CHORUS_ENOMEM (nothing moved). */
int store_defer(struct store *s, struct store_batch *b);

/* store_commit: applies every deferred write as one backend write.
 * Errors: the error of this application or of one since the last call
 * that another call made (store_write_batch's, store_iter_open's, ...):
 * those deferred writes were not applied; CHORUS_ESYNCFAILED when the
 * store is broken (above). CHORUS_OK when nothing was deferred. */
int store_commit(struct store *s);

/* store_defer_drop: forgets the deferred writes unapplied, and a break
 * they caused: a new process (a simulated crash: store_mem_crash). */
void store_defer_drop(struct store *s);

/* Reading a batch back, for backends: operation @i's fields. The pointers are
 * borrowed until the batch is cleared or freed. */
struct store_batch_op {
  enum store_space space;
  int is_delete;
  const void *key;
  size_t klen;
  const void *val;
  size_t vlen;
};
void store_batch_get(const struct store_batch *b, size_t i,
                     struct store_batch_op *op);

/* ------------------------------------------------------------------------
 * Ordered iteration
 * ------------------------------------------------------------------------ */

/* store_iter_open: iterates @space over keys k with lo <= k < hi in
 * unsigned byte order (memcmp, shorter prefix first). @lo NULL means from the
 * start, @hi NULL means to the end. The iterator sees a consistent snapshot
 * taken at open time. Close it with store_iter_close(); while open, it pins
 * that snapshot. Errors: CHORUS_ENOMEM, CHORUS_EINVAL, CHORUS_EIO. */
int store_iter_open(struct store *s, enum store_space space, const void *lo,
                    size_t lolen, const void *hi, size_t hilen,
                    struct store_iter **out);

/* store_iter_open_tokens: iterates STORE_DATA over every key whose token t
 * satisfies @first <= t <= @last (inclusive; a wrapping vnode range is two
 * calls, the caller splits it). */
int store_iter_open_tokens(struct store *s, chorus_token first,
                           chorus_token last, struct store_iter **out);

/* store_iter_seek: repositions @it on its first entry >= @key (its lower
 * bound when @key is below it), in the same snapshot: a read kept open can
 * serve a later range without the cost of a new open (store_rocksdb.c:
 * opening an ordered read of the data space sorts its memtable). Valid,
 * key and status then read as after an open; an iterator that failed
 * stays failed. */
void store_iter_seek(struct store_iter *it, const void *key, size_t len);

/* store_iter_valid: 1 while positioned on an entry; 0 at the end or after an
 * error (see store_iter_status). */
int store_iter_valid(struct store_iter *it);

/* store_iter_next: advances; requires store_iter_valid(). */
void store_iter_next(struct store_iter *it);

/* store_iter_key / store_iter_value: the current entry, borrowed until the
 * next store_iter_next() or store_iter_close(). Require store_iter_valid(). */
const void *store_iter_key(struct store_iter *it, size_t *len);
const void *store_iter_value(struct store_iter *it, size_t *len);

/* store_iter_status: CHORUS_OK, or the error that ended iteration early
 * (CHORUS_EIO, CHORUS_ECORRUPT). Check it when valid() turns 0. */
int store_iter_status(struct store_iter *it);

/* store_iter_close: releases @it (NULL is fine). */
void store_iter_close(struct store_iter *it);

/* ------------------------------------------------------------------------
 * Durability
 * ------------------------------------------------------------------------ */

/* store_sync_request: asks for @cb once every write with sequence <= @seq is
 * durable. @cb never runs inside this call (even when @seq is already
 * durable); it runs exactly once unless this call fails.
 * Errors: CHORUS_EINVAL (@seq is beyond store_last_seq()), CHORUS_ENOMEM,
 * CHORUS_ESYNCFAILED (an earlier sync failed), CHORUS_ECLOSED (RocksDB: a
 * request raced with store_close() from another thread). */
int store_sync_request(struct store *s, chorus_seq seq, store_sync_cb cb,
                       void *arg);

/* store_flush: hands every write so far to the OS, so that a process crash
 * no longer loses it; a power loss still may, until a barrier covers it.
 * chorusd calls it once per loop iteration, before it sends anything that
 * the iteration's writes decided (an acknowledgement must not reach the
 * network ahead of its write). A failure is sticky like a failed sync.
 * Errors: CHORUS_ESYNCFAILED (now or earlier), CHORUS_EIO. */
int store_flush(struct store *s);

/* store_sync: makes every write so far durable before returning (shutdown,
 * tests). Errors: CHORUS_ESYNCFAILED (now or earlier), CHORUS_EIO. */
int store_sync(struct store *s);

/* store_last_seq: the sequence of the newest completed write (0 for none).
 * store_durable_seq: the newest sequence known to be durable. */
chorus_seq store_last_seq(struct store *s);
chorus_seq store_durable_seq(struct store *s);

/* ------------------------------------------------------------------------
 * Space (THE SPACE RESERVE above)
 * ------------------------------------------------------------------------ */

/* store_set_reserve: writes are refused while fewer than @bytes are
 * available (0: only when none are). Takes effect at the next check. */
void store_set_reserve(struct store *s, uint64_t bytes);

/* store_check_space: asks the backend how many bytes are available, lets a
 * backend that cannot write reopen (for writing when there is room, else
 * read-only), and decides whether writes are refused. *@changed (may be
 * NULL) says whether that decision changed, for a log line per transition.
 * Not concurrently with other calls on @s (a reopen swaps the backend's
 * handle; the RocksDB sync thread is excluded by the backend itself).
 * Errors: CHORUS_EIO (the free space could not be read; the decision
 * stands), a failed reopen's error (the store keeps refusing writes),
 * CHORUS_ESYNCFAILED (a reopen failed so that the store cannot even read:
 * the node must stop). */
int store_check_space(struct store *s, bool *changed);

/* store_write_allowed: CHORUS_OK, or CHORUS_ENOSPC with the reason in
 * errmsg ("data folder full (N bytes free)"): what every write checks
 * first, and what a caller asks before work that ends in a write. */
int store_write_allowed(struct store *s);

/* store_space_stale: a write failed with CHORUS_ENOSPC since the last
 * check (the reserve was outrun): check now. */
bool store_space_stale(const struct store *s);

/* store_disk_info: the state of the last check (borrowed). */
const struct store_disk *store_disk_info(const struct store *s);

/* ------------------------------------------------------------------------
 * Space taken and given back
 *
 * A delete does not give space back by itself: RocksDB writes a deletion
 * marker, and the bytes it shadows stay in the WAL, the memory table and
 * the table files until a flush and then a compaction drop both (a
 * database that fits its memory table never flushes at all, so it only
 * grows). The node core knows when it has just deleted much (a tombstone
 * walk that purged many objects); the backend knows how to get the space
 * back without making its caller wait. So the core hints and the store
 * acts, in the background (store_rocksdb.c, HOW SPACE COMES BACK).
 * ------------------------------------------------------------------------ */

/* What a store takes and how its writes fare (store_usage). The RocksDB
 * backend fills every field; the memory backend only memory_bytes. */
struct store_usage {
  uint64_t folder_bytes; /* bytes in the data folder's files (their sizes,
                            not their blocks: RocksDB preallocates its WAL) */
  uint64_t table_bytes;  /* bytes in the table files (SSTs) of every space */
  uint64_t live_bytes;   /* RocksDB's estimate of the live data in them */
  uint64_t memory_bytes; /* bytes in memory tables not yet flushed (memory
                            backend: the keys and values it holds) */
  uint64_t reclaims;     /* reclaims done since open */
  uint64_t reclaim_ms;   /* the time they took, ms */
  uint64_t reclaims_skipped; /* skipped: too little room to compact */
  /* Write pressure (RocksDB's properties; the memory backend: zeros). */
  uint64_t pending_compaction_bytes; /* its estimate, every space */
  uint64_t delayed_write_rate;       /* bytes/s while writes are slowed
                                        down, 0 while they are not */
  uint64_t write_stall_us;           /* writes held by slowdowns and stops since
                                        open, us (whole ms: RocksDB prints them) */
  bool write_stopped;                /* writes are stopped now */
  /* The store's own WAL syncs (the group fsyncs of barriers and
   * store_sync), counted and timed around RocksDB's FlushWAL(sync). */
  uint64_t wal_syncs;
  uint64_t wal_sync_us;
};

/* store_reclaim: a hint that STORE_DATA keys with tokens in [@first,
 * @last] (and STORE_META bookkeeping about them) were just deleted in
 * bulk. The backend gives their space back in the background and returns
 * at once; hints that come while one is being acted on merge into one,
 * and the backend paces them (RocksDB: a tenth of the time at most). The
 * memory backend has nothing to give back. Errors: none today (an int for
 * backends that may refuse). */
int store_reclaim(struct store *s, chorus_token first, chorus_token last);

/* store_usage: what @s takes now (struct store_usage); cheap enough for a
 * status request (a listing of the data folder). Errors: CHORUS_EIO (the
 * folder could not be listed; the other fields are still filled). */
int store_usage(struct store *s, struct store_usage *out);

/* store_inject_fault: test hook; makes the next operation of that kind fail
 * through the backend's real error path. */
void store_inject_fault(struct store *s, enum store_fault fault);

/* store_close: cancels pending barriers (their callbacks run with
 * CHORUS_ECANCELED), closes and frees @s (NULL is fine). Writes not covered
 * by a completed barrier keep the promise of the mode they were made in:
 * close flushes (store_flush) but does not sync; call store_sync() first
 * for a clean shutdown. */
void store_close(struct store *s);

/* store_errmsg: the message of @s's last failure. */
const char *store_errmsg(const struct store *s);

/* ------------------------------------------------------------------------
 * Key layout helpers (see the table at the top)
 * ------------------------------------------------------------------------ */

static inline void store_be64_put(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (unsigned char)v;
    v >>= 8;
  }
}

static inline uint64_t store_be64_get(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

/* store_data_key: writes [token][user key] into @out, which must hold
 * STORE_TOKEN_PREFIX + @klen bytes; returns the key's length. */
size_t store_data_key(unsigned char *out, chorus_token token, const void *key,
                      size_t klen);

/* store_data_key_parse: splits a STORE_DATA key back into token and user key
 * (borrowed from @dkey). Errors: CHORUS_ECORRUPT when shorter than the
 * prefix. */
int store_data_key_parse(const void *dkey, size_t dklen, chorus_token *token,
                         const void **key, size_t *klen);

#endif /* CHORUS_STORE_H */
