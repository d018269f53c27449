/* store_rocksdb.c: the RocksDB storage backend with group-commit syncs.
 *
 * The only file in chorus that includes rocksdb/c.h. RocksDB's `char *err`
 * strings are converted to chorus codes here (rocks_error) and their text is
 * kept in store->errmsg.
 *
 * HOW GROUP COMMIT WORKS
 *
 * Writes go to RocksDB with sync=false and manual_wal_flush on: the WAL
 * record goes to RocksDB's buffer in this process, and store_flush() hands
 * the buffer to the OS with one write(2). chorusd flushes once per loop
 * iteration, before its replies leave, so a process crash loses nothing that
 * was acknowledged, and the iteration's many small writes cost one system
 * call instead of one each (the WAL append was 10% of a node's CPU). A power
 * loss may lose anything a barrier has not covered. After a write we read
 * RocksDB's newest published sequence number; RocksDB publishes a sequence
 * only once its record is in the WAL buffer, so every sequence <= that
 * number is in the buffer or the file.
 *
 * store_sync_request(S, cb) appends (S, cb) to `pending` and wakes the sync
 * thread. The sync thread loops:
 *
 *   1. wait until `pending` is non-empty (or the store closes);
 *   2. T := newest published sequence;      every write <= T is in the WAL
 *   3. FlushWAL(sync=true);                 one fsync for all of them
 *   4. durable := T; run every pending cb with S <= T, in request order.
 *
 * Requests that arrive during step 3 wait for the next round, so while one
 * fsync runs the next group forms: with many concurrent writers each fsync
 * covers many acknowledgements (Helland, "Group Commit"). A failure in step
 * 3 is sticky (store.h): every pending and future barrier and every write
 * fails with CHORUS_ESYNCFAILED.
 *
 * HOW A FULL DISK IS MET (issue 17)
 *
 * RocksDB 7.8, as Debian builds it (assertions on), aborts the process when
 * a file whose last write failed is written again
 * (WritableFileWriter::AssertFalseAndGetStatusForPrevError, "assertion
 * sync_without_flush_called_"). On a full disk the first such file is its
 * info LOG: the background error of the first failed WAL write is logged at
 * ERROR level, twice, and the second line aborts. So:
 *
 *   1. RocksDB logs only FATAL lines (and its header at open): a failed
 *      write is reported by us, in the error message, not in its LOG.
 *   2. The reserve (store.h) keeps RocksDB off a full disk: below it the
 *      store refuses writes before RocksDB sees them.
 *   3. A write(2) of the WAL that still fails with ENOSPC (the reserve was
 *      outrun) is not a failed fsync: nothing synced is in doubt. The store
 *      turns NOSPACE: it stops calling RocksDB's write paths (the WAL writer
 *      now refuses them: "Seen error. Skip writing buffer."), fails writes
 *      and barriers of unsynced writes with CHORUS_ENOSPC, and keeps
 *      serving reads. RocksDB 7.8's C API has no rocksdb_resume and its
 *      automatic recovery does not clear a failed WAL write, so the next
 *      store_check_space reopens the database: read-only while the disk is
 *      below the reserve, read-write once there is room. The reopen replays
 *      the WAL that reached the disk; writes still in the lost buffer are
 *      gone, as in a crash, and their barriers end with CHORUS_ENOSPC.
 *      Sequence numbers keep growing across it (seq_offset).
 *   4. At open, below the reserve, the database opens read-only: a
 *      read-write open writes a new WAL, a MANIFEST, OPTIONS and its LOG
 *      header, and replays the old WAL into table files, any of which
 *      could find the disk full (and a LOG that failed aborts).
 *
 * A failed fsync stays a failed fsync (sticky, fsyncgate): the WAL's write
 * failing with ENOSPC is told apart by RocksDB's context text ("While
 * appending to file"), an fsync's failure says "While fsync" or "While
 * fdatasync".
 *
 * The sync thread uses the database handle under db_lock, which a reopen
 * takes, so it never syncs a handle being closed; every other call comes
 * from the caller's threads, which must not overlap store_check_space.
 */
#include "store_rocksdb.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "chorus_alloc.h"

static const char *const column_family_names[] = {"default", "data", "hints",
                                                  "meta"};
#define COLUMN_FAMILY_COUNT 4
/* enum store_space value + 1 = its index in column_family_names. */

struct sync_request {
  chorus_seq seq;
  store_sync_cb cb;
  void *arg;
};

/* What the database can do (HOW A FULL DISK IS MET). */
enum rocks_mode {
  ROCKS_RW = 0,  /* open read-write */
  ROCKS_NOSPACE, /* read-write, but a WAL write failed for lack of space:
                    no more writes until the reopen */
  ROCKS_RO,      /* open read-only (below the reserve) */
};

/* HOW SPACE COMES BACK: after a compaction that took T, the reclaim
 * thread waits RECLAIM_IDLE_FACTOR * T before the next, so that reclaims
 * take at most a tenth of the time however often they are asked for. */
#define RECLAIM_IDLE_FACTOR 9

/* RocksDB's BottommostLevelCompaction::kForceOptimized (options.h): the C
 * API takes the enum's value. */
#define ROCKS_BOTTOMMOST_FORCE_OPTIMIZED 3

/* RocksDB's InfoLogLevel FATAL_LEVEL: the C API has no name for it. */
#define ROCKS_LOG_FATAL 4

struct rocks_store {
  struct store base;
  char *path;
  rocksdb_t *db;
  rocksdb_options_t *options;
  rocksdb_options_t *cf_options;
  rocksdb_options_t *data_options;  /* cf_options, memtable hashed by token */
  rocksdb_options_t *hints_options; /* cf_options, a smaller memtable */
  rocksdb_block_based_table_options_t *table_options;
  rocksdb_cache_t *cache;
  rocksdb_filterpolicy_t *filter; /* owned by table_options once set */
  rocksdb_column_family_handle_t *cf[COLUMN_FAMILY_COUNT];
  rocksdb_readoptions_t *read_options;
  rocksdb_writeoptions_t *write_options;
  rocksdb_compactoptions_t *compact_options; /* HOW SPACE COMES BACK */

  /* Sticky failure: CHORUS_OK until a sync fails, then the failure code. */
  atomic_int sticky_error;
  atomic_int mode; /* enum rocks_mode */
  /* Test faults armed by store_inject_fault; each fires once but full. */
  atomic_int fault_sync, fault_write, fault_read, fault_nospc, fault_full;
  _Atomic chorus_seq durable;
  /* Sequences we report are RocksDB's plus seq_offset, so they keep growing
   * across a reopen that lost writes; (lost_lo, lost_hi] are the ones the
   * last reopen lost (their barriers end with CHORUS_ENOSPC). Changed by a
   * reopen only, under db_lock. */
  chorus_seq seq_offset, lost_lo, lost_hi;
  atomic_size_t open_iters;
  /* The database handle against a reopen: the sync thread holds it while
   * it syncs, a reopen while it swaps the handle. */
  pthread_mutex_t db_lock;

  /* Sync thread and its queue, guarded by lock. */
  pthread_t sync_thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  struct sync_request *pending;
  size_t pending_count, pending_cap;
  int closing;

  /* The reclaim thread (HOW SPACE COMES BACK) and its one request,
   * guarded by reclaim_lock; compact_lock is held while it compacts, so
   * that a reopen or close (which first cancel the compaction) wait for it
   * to leave the handle. */
  pthread_t reclaim_thread;
  pthread_mutex_t reclaim_lock, compact_lock;
  pthread_cond_t reclaim_wake; /* on CLOCK_MONOTONIC */
  bool reclaim_pending, reclaim_closing;
  chorus_token reclaim_first, reclaim_last;
  uint64_t reclaim_reserve;           /* the store's, at the request */
  struct timespec reclaim_not_before; /* the pace (RECLAIM_IDLE_FACTOR) */
  uint64_t db_generation; /* open_db calls: which handle a pause is of */
  _Atomic uint64_t reclaims, reclaim_ms, reclaims_skipped;
  /* WAL syncs by flush_wal and the time they took, us (store_usage). */
  _Atomic uint64_t wal_syncs, wal_sync_us;
};

struct rocks_iter {
  struct store_iter base;
  rocksdb_iterator_t *it;
  rocksdb_readoptions_t *read_options;
  int status;
  atomic_int *fault_read;
  atomic_size_t *open_iters; /* the store's count (a reopen waits for 0) */
  /* Bounds are referenced by read_options, so they live as long as it. */
  size_t lolen, hilen;
  unsigned char *lo, *hi;
};

static const struct store_ops rocks_ops;
static const struct store_iter_ops rocks_iter_ops;

/* ------------------------------------------------------------------------
 * Error conversion at the boundary
 * ------------------------------------------------------------------------ */

/* rocks_error: converts and frees a RocksDB error string, writing
 * "<what>: <rocksdb text>" into @errmsg. RocksDB's status strings start with
 * the status kind ("IO error: ", "Corruption: " ...), which is what we map
 * on; an errno text inside an IO error refines it. */
static int rocks_error(char *errmsg, char *err, const char *what) {
  int code = CHORUS_EIO;
  if (strncmp(err, "Corruption", 10) == 0)
    code = CHORUS_ECORRUPT;
  else if (strncmp(err, "Invalid argument", 16) == 0)
    code = CHORUS_EINVAL;
  else if (strncmp(err, "Not implemented", 15) == 0)
    code = CHORUS_ENOTSUP;
  else if (strstr(err, "No space left") != NULL ||
           strncmp(err, "IO error: No space", 18) == 0)
    code = CHORUS_ENOSPC;
  else if (strstr(err, "Permission denied") != NULL ||
           strstr(err, "Read-only file system") != NULL)
    code = CHORUS_EPERM;
  else if (strstr(err, "/LOCK") != NULL &&
           (strstr(err, "Resource temporarily unavailable") != NULL ||
            strstr(err, "lock hold by current process") != NULL))
    code = CHORUS_EBUSY; /* another opener, in this process or another */
  chorus_errf(errmsg, code, "%s: %s", what, err);
  rocksdb_free(err);
  return code;
}

static int take_fault(atomic_int *flag) {
  int expected = 1;
  return atomic_compare_exchange_strong(flag, &expected, 0);
}

static rocksdb_column_family_handle_t *cf_of(struct rocks_store *rs,
                                             enum store_space space) {
  return rs->cf[(int)space + 1];
}

/* The sequence we report for RocksDB's newest one (see seq_offset). */
static chorus_seq latest_seq(struct rocks_store *rs) {
  return rocksdb_get_latest_sequence_number(rs->db) + rs->seq_offset;
}

/* write_gate: what every write checks first: a sticky sync failure, a
 * database that cannot write, then injected faults. */
static int write_gate(struct rocks_store *rs) {
  int sticky = atomic_load(&rs->sticky_error);
  if (sticky != CHORUS_OK)
    return chorus_errf(rs->base.errmsg, CHORUS_ESYNCFAILED,
                       "write refused: an earlier sync failed (%s); reopen "
                       "the store",
                       chorus_strerror(sticky));
  switch (atomic_load(&rs->mode)) {
  case ROCKS_NOSPACE:
    return chorus_errf(rs->base.errmsg, CHORUS_ENOSPC,
                       "write refused: a write found the data folder full; "
                       "the store reopens at the next space check");
  case ROCKS_RO:
    return chorus_errf(rs->base.errmsg, CHORUS_ENOSPC,
                       "write refused: the store is open read-only (the data "
                       "folder was below its reserve)");
  default:
    break;
  }
  if (take_fault(&rs->fault_write))
    return chorus_errf(rs->base.errmsg, CHORUS_EIO,
                       "write: injected I/O error");
  if (take_fault(&rs->fault_nospc) || atomic_load(&rs->fault_full))
    return chorus_errf(rs->base.errmsg, CHORUS_ENOSPC,
                       "write: injected no space left on device");
  return CHORUS_OK;
}

/* out_of_space: whether RocksDB's error text @err is a write that found the
 * disk full (the WAL's append, a table file's write), or the WAL writer
 * refusing after such a write; an fsync that fails with ENOSPC is a failed
 * fsync, and says so ("While fsync", "While fdatasync"). */
static bool out_of_space(const char *err) {
  if (strstr(err, "Seen error") != NULL)
    return true;
  if (strstr(err, "No space") == NULL)
    return false;
  return strstr(err, "While fsync") == NULL &&
         strstr(err, "While fdatasync") == NULL &&
         strstr(err, "While sync_file_range") == NULL;
}

/* write_failed: a write, flush or sync failed with RocksDB's @err: a full
 * disk turns the store NOSPACE (HOW A FULL DISK IS MET) and is
 * CHORUS_ENOSPC; anything else is rocks_error's code. Consumes @err. */
static int write_failed(struct rocks_store *rs, char *errmsg, char *err,
                        const char *what) {
  bool nospace = out_of_space(err);
  int rc = rocks_error(errmsg, err, what);
  if (!nospace)
    return rc;
  int expected = ROCKS_RW;
  atomic_compare_exchange_strong(&rs->mode, &expected, ROCKS_NOSPACE);
  return CHORUS_ENOSPC;
}

/* ------------------------------------------------------------------------
 * Reads and writes
 * ------------------------------------------------------------------------ */

static int rocks_get(struct store *s, enum store_space space, const void *key,
                     size_t klen, void **val, size_t *vlen) {
  struct rocks_store *rs = (struct rocks_store *)s;
  *val = NULL;
  *vlen = 0;
  if (take_fault(&rs->fault_read))
    return chorus_errf(s->errmsg, CHORUS_EIO, "get: injected I/O error");
  if (rs->db == NULL)
    return chorus_errf(s->errmsg, CHORUS_EIO,
                       "get: the store failed to reopen");
  char *err = NULL;
  rocksdb_pinnableslice_t *slice = rocksdb_get_pinned_cf(
      rs->db, rs->read_options, cf_of(rs, space), key, klen, &err);
  if (err != NULL)
    return rocks_error(s->errmsg, err, "get");
  if (slice == NULL)
    return CHORUS_ENOTFOUND;
  size_t len;
  const char *data = rocksdb_pinnableslice_value(slice, &len);
  void *copy = chorus_memdup(data, len);
  rocksdb_pinnableslice_destroy(slice);
  if (copy == NULL)
    return chorus_errf(s->errmsg, CHORUS_ENOMEM, "get: copying %zu bytes", len);
  *val = copy;
  *vlen = len;
  return CHORUS_OK;
}

static int rocks_put(struct store *s, enum store_space space, const void *key,
                     size_t klen, const void *val, size_t vlen,
                     chorus_seq *seq) {
  struct rocks_store *rs = (struct rocks_store *)s;
  int rc = write_gate(rs);
  if (rc != CHORUS_OK)
    return rc;
  char *err = NULL;
  rocksdb_put_cf(rs->db, rs->write_options, cf_of(rs, space), key, klen, val,
                 vlen, &err);
  if (err != NULL)
    return write_failed(rs, s->errmsg, err, "put");
  *seq = latest_seq(rs);
  return CHORUS_OK;
}

static int rocks_del(struct store *s, enum store_space space, const void *key,
                     size_t klen, chorus_seq *seq) {
  struct rocks_store *rs = (struct rocks_store *)s;
  int rc = write_gate(rs);
  if (rc != CHORUS_OK)
    return rc;
  char *err = NULL;
  rocksdb_delete_cf(rs->db, rs->write_options, cf_of(rs, space), key, klen,
                    &err);
  if (err != NULL)
    return write_failed(rs, s->errmsg, err, "delete");
  *seq = latest_seq(rs);
  return CHORUS_OK;
}

static int rocks_write_batch(struct store *s, const struct store_batch *b,
                             chorus_seq *seq) {
  struct rocks_store *rs = (struct rocks_store *)s;
  int rc = write_gate(rs);
  if (rc != CHORUS_OK)
    return rc;
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  size_t n = store_batch_count(b);
  for (size_t i = 0; i < n; i++) {
    struct store_batch_op op;
    store_batch_get(b, i, &op);
    if (op.is_delete)
      rocksdb_writebatch_delete_cf(wb, cf_of(rs, op.space), op.key, op.klen);
    else
      rocksdb_writebatch_put_cf(wb, cf_of(rs, op.space), op.key, op.klen,
                                op.val, op.vlen);
  }
  char *err = NULL;
  rocksdb_write(rs->db, rs->write_options, wb, &err);
  rocksdb_writebatch_destroy(wb);
  if (err != NULL)
    return write_failed(rs, s->errmsg, err, "write batch");
  *seq = latest_seq(rs);
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * Iteration
 * ------------------------------------------------------------------------ */

static int rocks_iter_open(struct store *s, enum store_space space,
                           const void *lo, size_t lolen, const void *hi,
                           size_t hilen, struct store_iter **out) {
  struct rocks_store *rs = (struct rocks_store *)s;
  if (take_fault(&rs->fault_read))
    return chorus_errf(s->errmsg, CHORUS_EIO, "scan: injected I/O error");
  if (rs->db == NULL)
    return chorus_errf(s->errmsg, CHORUS_EIO,
                       "scan: the store failed to reopen");
  struct rocks_iter *ri = chorus_calloc(1, sizeof *ri);
  if (ri == NULL)
    goto err_nomem;
  ri->base.ops = &rocks_iter_ops;
  ri->fault_read = &rs->fault_read;
  ri->open_iters = &rs->open_iters;
  if (lo != NULL) {
    ri->lo = chorus_memdup(lo, lolen);
    if (ri->lo == NULL)
      goto err_after_iter;
    ri->lolen = lolen;
  }
  if (hi != NULL) {
    ri->hi = chorus_memdup(hi, hilen);
    if (ri->hi == NULL)
      goto err_after_lo;
    ri->hilen = hilen;
  }
  /* The iterator reads an implicit snapshot taken at creation. */
  ri->read_options = rocksdb_readoptions_create();
  /* Byte order across prefixes, not just within one (token_prefix). */
  rocksdb_readoptions_set_total_order_seek(ri->read_options, 1);
  if (ri->hi != NULL)
    rocksdb_readoptions_set_iterate_upper_bound(
        ri->read_options, (const char *)ri->hi, ri->hilen);
  if (ri->lo != NULL)
    rocksdb_readoptions_set_iterate_lower_bound(
        ri->read_options, (const char *)ri->lo, ri->lolen);
  ri->it =
      rocksdb_create_iterator_cf(rs->db, ri->read_options, cf_of(rs, space));
  if (ri->lo != NULL)
    rocksdb_iter_seek(ri->it, (const char *)ri->lo, ri->lolen);
  else
    rocksdb_iter_seek_to_first(ri->it);
  char *err = NULL;
  rocksdb_iter_get_error(ri->it, &err);
  if (err != NULL)
    ri->status = rocks_error(s->errmsg, err, "scan");
  atomic_fetch_add(&rs->open_iters, 1);
  *out = &ri->base;
  return CHORUS_OK;

err_after_lo:
  chorus_free(ri->lo);
err_after_iter:
  chorus_free(ri);
err_nomem:
  return chorus_errf(s->errmsg, CHORUS_ENOMEM, "scan: out of memory");
}

static int rocks_iter_valid(struct store_iter *it) {
  struct rocks_iter *ri = (struct rocks_iter *)it;
  return ri->status == CHORUS_OK && rocksdb_iter_valid(ri->it);
}

static void rocks_iter_next(struct store_iter *it) {
  struct rocks_iter *ri = (struct rocks_iter *)it;
  if (take_fault(ri->fault_read)) {
    ri->status = CHORUS_EIO;
    return;
  }
  rocksdb_iter_next(ri->it);
  char *err = NULL;
  rocksdb_iter_get_error(ri->it, &err);
  if (err != NULL)
    ri->status = rocks_error(NULL, err, "scan");
}

static const void *rocks_iter_key(struct store_iter *it, size_t *len) {
  struct rocks_iter *ri = (struct rocks_iter *)it;
  return rocksdb_iter_key(ri->it, len);
}

static const void *rocks_iter_value(struct store_iter *it, size_t *len) {
  struct rocks_iter *ri = (struct rocks_iter *)it;
  return rocksdb_iter_value(ri->it, len);
}

/* rocks_iter_seek: a Seek in the iterator's own snapshot and sorted view
 * (no new sort of the memtable); below the lower bound, to the bound. */
static void rocks_iter_seek(struct store_iter *it, const void *key,
                            size_t len) {
  struct rocks_iter *ri = (struct rocks_iter *)it;
  if (ri->status != CHORUS_OK)
    return;
  if (take_fault(ri->fault_read)) {
    ri->status = CHORUS_EIO;
    return;
  }
  if (ri->lo != NULL) {
    size_t n = len < ri->lolen ? len : ri->lolen;
    int c = n ? memcmp(key, ri->lo, n) : 0;
    if (c < 0 || (c == 0 && len < ri->lolen)) {
      key = ri->lo;
      len = ri->lolen;
    }
  }
  rocksdb_iter_seek(ri->it, (const char *)key, len);
  char *err = NULL;
  rocksdb_iter_get_error(ri->it, &err);
  if (err != NULL)
    ri->status = rocks_error(NULL, err, "scan");
}

static int rocks_iter_status(struct store_iter *it) {
  return ((struct rocks_iter *)it)->status;
}

static void rocks_iter_close(struct store_iter *it) {
  struct rocks_iter *ri = (struct rocks_iter *)it;
  rocksdb_iter_destroy(ri->it);
  rocksdb_readoptions_destroy(ri->read_options);
  atomic_fetch_sub(ri->open_iters, 1);
  chorus_free(ri->lo);
  chorus_free(ri->hi);
  chorus_free(ri);
}

/* ------------------------------------------------------------------------
 * Sync thread and barriers
 * ------------------------------------------------------------------------ */

/* flush_wal: one group fsync; returns the sequence it made durable through
 * *@target. FlushWAL(sync=true) writes the WAL buffer out first, then
 * syncs. Honors an injected sync fault, a sticky failure and the mode: a
 * database that cannot write has nothing to sync beyond what is durable,
 * and a write that finds the disk full is CHORUS_ENOSPC (not sticky: the
 * buffer was not written, nothing synced is in doubt). Called with
 * db_lock held. */
static int flush_wal(struct rocks_store *rs, chorus_seq *target, char *errmsg) {
  int sticky = atomic_load(&rs->sticky_error);
  if (sticky != CHORUS_OK)
    return chorus_errf(errmsg, CHORUS_ESYNCFAILED,
                       "sync refused: an earlier sync failed");
  *target = atomic_load(&rs->durable);
  switch (atomic_load(&rs->mode)) {
  case ROCKS_RO:
    return CHORUS_OK; /* everything it holds was synced at open */
  case ROCKS_NOSPACE:
    return chorus_errf(errmsg, CHORUS_ENOSPC,
                       "sync refused: a write found the data folder full");
  default:
    break;
  }
  *target = latest_seq(rs);
  int rc = CHORUS_OK;
  if (take_fault(&rs->fault_sync)) {
    rc = chorus_errf(errmsg, CHORUS_EIO, "sync: injected fsync failure");
  } else {
    char *err = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rocksdb_flush_wal(rs->db, 1, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t us = ((int64_t)t1.tv_sec - (int64_t)t0.tv_sec) * 1000000 +
                 ((int64_t)t1.tv_nsec - (int64_t)t0.tv_nsec) / 1000;
    atomic_fetch_add(&rs->wal_syncs, 1);
    atomic_fetch_add(&rs->wal_sync_us, us > 0 ? (uint64_t)us : 0);
    if (err != NULL)
      rc = write_failed(rs, errmsg, err, "sync WAL");
  }
  if (rc == CHORUS_ENOSPC) {
    *target = atomic_load(&rs->durable); /* the buffer never got out */
    return rc;
  }
  if (rc != CHORUS_OK) {
    /* The WAL's durable state is now unknown: refuse everything after. */
    int expected = CHORUS_OK;
    atomic_compare_exchange_strong(&rs->sticky_error, &expected, rc);
    return CHORUS_ESYNCFAILED;
  }
  chorus_seq prev = atomic_load(&rs->durable);
  while (prev < *target &&
         !atomic_compare_exchange_weak(&rs->durable, &prev, *target))
    ;
  return CHORUS_OK;
}

/* take_satisfied: moves up to @max of the pending requests that are
 * complete (seq <= @durable, or any when @all) to @out, in request order.
 * Called with the lock held. Working in fixed-size chunks lets the sync
 * thread run callbacks without holding the lock and without allocating. */
static size_t take_satisfied(struct rocks_store *rs, chorus_seq durable,
                             int all, struct sync_request *out, size_t max) {
  size_t kept = 0, taken = 0;
  for (size_t i = 0; i < rs->pending_count; i++) {
    if (taken < max && (all || rs->pending[i].seq <= durable))
      out[taken++] = rs->pending[i];
    else
      rs->pending[kept++] = rs->pending[i];
  }
  rs->pending_count = kept;
  return taken;
}

#define CALLBACK_CHUNK 64

/* complete_requests: runs the callbacks of every satisfied request, outside
 * the lock. Called and returns with the lock held. */
static void complete_requests(struct rocks_store *rs, chorus_seq durable,
                              int all, int status) {
  struct sync_request chunk[CALLBACK_CHUNK];
  size_t n;
  while ((n = take_satisfied(rs, durable, all, chunk, CALLBACK_CHUNK)) > 0) {
    pthread_mutex_unlock(&rs->lock);
    for (size_t i = 0; i < n; i++)
      chunk[i].cb(chunk[i].arg, status == CHORUS_OK ? durable : 0, status);
    pthread_mutex_lock(&rs->lock);
  }
}

static void *sync_thread_main(void *arg) {
  struct rocks_store *rs = arg;
  pthread_mutex_lock(&rs->lock);
  for (;;) {
    while (rs->pending_count == 0 && !rs->closing)
      pthread_cond_wait(&rs->wake, &rs->lock);
    if (rs->closing)
      break;
    pthread_mutex_unlock(&rs->lock);

    chorus_seq target = 0;
    char errmsg[CHORUS_ERRMSG_SIZE] = "";
    pthread_mutex_lock(&rs->db_lock);
    int rc = flush_wal(rs, &target, errmsg);
    pthread_mutex_unlock(&rs->db_lock);

    pthread_mutex_lock(&rs->lock);
    if (rc == CHORUS_OK) {
      complete_requests(rs, target, 0, CHORUS_OK);
      /* A read-only database has nothing beyond what is durable. */
      if (atomic_load(&rs->mode) == ROCKS_RO)
        complete_requests(rs, 0, 1, CHORUS_ENOSPC);
    } else if (rc == CHORUS_ENOSPC) {
      /* Whatever is durable is; the rest will not be (store.h). */
      complete_requests(rs, target, 0, CHORUS_OK);
      complete_requests(rs, 0, 1, CHORUS_ENOSPC);
    } else {
      complete_requests(rs, 0, 1, CHORUS_ESYNCFAILED);
    }
  }
  pthread_mutex_unlock(&rs->lock);
  return NULL;
}

static int rocks_sync_request(struct store *s, chorus_seq seq, store_sync_cb cb,
                              void *arg) {
  struct rocks_store *rs = (struct rocks_store *)s;
  if (atomic_load(&rs->sticky_error) != CHORUS_OK)
    return chorus_errf(s->errmsg, CHORUS_ESYNCFAILED,
                       "sync refused: an earlier sync failed");
  if (seq > rs->lost_lo && seq <= rs->lost_hi)
    return chorus_errf(s->errmsg, CHORUS_ENOSPC,
                       "sync refused: the write of sequence %llu was lost when "
                       "the store reopened after finding its disk full",
                       (unsigned long long)seq);
  int rc = CHORUS_OK;
  pthread_mutex_lock(&rs->lock);
  if (rs->closing) {
    rc = chorus_errf(s->errmsg, CHORUS_ECLOSED, "sync: store is closing");
    goto out;
  }
  if (rs->pending_count == rs->pending_cap) {
    size_t cap = rs->pending_cap ? rs->pending_cap * 2 : 64;
    struct sync_request *grown =
        chorus_realloc(rs->pending, cap * sizeof *grown);
    if (grown == NULL) {
      rc = chorus_errf(s->errmsg, CHORUS_ENOMEM, "sync: queueing a barrier");
      goto out;
    }
    rs->pending = grown;
    rs->pending_cap = cap;
  }
  rs->pending[rs->pending_count++] =
      (struct sync_request){.seq = seq, .cb = cb, .arg = arg};
  pthread_cond_signal(&rs->wake);
out:
  pthread_mutex_unlock(&rs->lock);
  return rc;
}

static int rocks_sync(struct store *s) {
  struct rocks_store *rs = (struct rocks_store *)s;
  chorus_seq target;
  pthread_mutex_lock(&rs->db_lock);
  int rc = flush_wal(rs, &target, s->errmsg);
  pthread_mutex_unlock(&rs->db_lock);
  /* Barriers this sync satisfied are completed by the sync thread's next
   * round; wake it so they do not wait for another request. */
  pthread_mutex_lock(&rs->lock);
  if (rs->pending_count > 0)
    pthread_cond_signal(&rs->wake);
  pthread_mutex_unlock(&rs->lock);
  return rc;
}

/* rocks_flush: the WAL buffer to the OS (manual_wal_flush, see the top of
 * this file). A write that finds the disk full is CHORUS_ENOSPC and turns
 * the store NOSPACE (the buffer's writes are lost at the reopen, as in a
 * crash); any other failed write leaves the WAL's end unknown, as a failed
 * fsync does, and is sticky the same way. */
static int rocks_flush(struct store *s) {
  struct rocks_store *rs = (struct rocks_store *)s;
  int sticky = atomic_load(&rs->sticky_error);
  if (sticky != CHORUS_OK)
    return chorus_errf(s->errmsg, CHORUS_ESYNCFAILED,
                       "flush refused: an earlier sync failed (%s)",
                       chorus_strerror(sticky));
  switch (atomic_load(&rs->mode)) {
  case ROCKS_RO:
    return CHORUS_OK; /* nothing was written */
  case ROCKS_NOSPACE:
    return chorus_errf(s->errmsg, CHORUS_ENOSPC,
                       "flush refused: a write found the data folder full");
  default:
    break;
  }
  char *err = NULL;
  rocksdb_flush_wal(rs->db, 0, &err);
  if (err == NULL)
    return CHORUS_OK;
  int rc = write_failed(rs, s->errmsg, err, "flush WAL");
  if (rc == CHORUS_ENOSPC)
    return rc;
  int expected = CHORUS_OK;
  atomic_compare_exchange_strong(&rs->sticky_error, &expected, rc);
  return CHORUS_ESYNCFAILED;
}

static chorus_seq rocks_last_seq(struct store *s) {
  struct rocks_store *rs = (struct rocks_store *)s;
  return rs->db != NULL ? latest_seq(rs) : atomic_load(&rs->durable);
}

static chorus_seq rocks_durable_seq(struct store *s) {
  return atomic_load(&((struct rocks_store *)s)->durable);
}

static void rocks_inject_fault(struct store *s, enum store_fault fault) {
  struct rocks_store *rs = (struct rocks_store *)s;
  switch (fault) {
  case STORE_FAULT_SYNC:
    atomic_store(&rs->fault_sync, 1);
    break;
  case STORE_FAULT_WRITE:
    atomic_store(&rs->fault_write, 1);
    break;
  case STORE_FAULT_READ:
    atomic_store(&rs->fault_read, 1);
    break;
  case STORE_FAULT_NOSPC:
    atomic_store(&rs->fault_nospc, 1);
    break;
  case STORE_FAULT_FULL:
    atomic_store(&rs->fault_full, 1);
    break;
  case STORE_FAULT_NONE:
    atomic_store(&rs->fault_sync, 0);
    atomic_store(&rs->fault_write, 0);
    atomic_store(&rs->fault_read, 0);
    atomic_store(&rs->fault_nospc, 0);
    atomic_store(&rs->fault_full, 0);
    break;
  }
}

/* ------------------------------------------------------------------------
 * Space given back (store.h, SPACE TAKEN AND GIVEN BACK)
 *
 * HOW SPACE COMES BACK
 *
 * A RocksDB delete is a marker; the value it deletes stays in the WAL,
 * the memory table and the table files until a flush writes the marker
 * to a table file and a compaction carries it down to the last level
 * that holds the key, where both go. Nothing triggers that by itself for
 * a node that deletes what it wrote: a data space under its memory
 * table's 64 MiB never flushes, so its WAL, which holds every value and
 * every delete, only grows (1.2 to 1.3x the full folder once all 3,000
 * keys of tests/node/test_node_gc.c were purged); and a level's size, not
 * its deletes, decides when it is compacted. Measured there, and not
 * chosen:
 *   - a flush of the memory tables alone: the WAL goes, but the markers
 *     stay in level-0 files (0.26 to 0.47 MiB left of 3.2 to 3.6, the
 *     empty folder being 0.04);
 *   - with that, RocksDB's compact-on-deletion collector: it marks a file
 *     of deletes, but RocksDB 7.8 does not compact a marked file of the
 *     last non-empty level (LevelCompactionBuilder::PickFileToCompact),
 *     and in a small database that is level 0: a file of 6,000 deletes
 *     out of 6,000 entries stayed;
 *   - SuggestCompactRange: it marks the files above the last non-empty
 *     level only, the same blind spot.
 * So store_reclaim asks this backend's reclaim thread for a manual
 * compaction (CompactRange) of the data range the caller deleted, and of
 * the whole hints and meta spaces: they are small, and a WAL file is
 * deleted only once every memory table with a write in it has been
 * flushed (a coordinator's hints space holds a put/delete pair, object
 * included, for the writes it coordinated: 4.8 MiB of WAL stayed on the
 * coordinator of 3,000 1 KiB writes when only data and meta were
 * flushed). CompactRange flushes what it covers and compacts it down to
 * the last level: the markers and what they shadow are gone. It blocks
 * its caller for as long as that lasts (seconds for a large range), which
 * is why the caller is not the event loop: store_reclaim only records the
 * request. Requests made while one runs merge into one, and after a
 * reclaim that took T the next waits RECLAIM_IDLE_FACTOR * T: the
 * rewriting of live data that compacting a range also does takes a tenth
 * of the time at most. A compaction needs room for what it writes before
 * it deletes what it read: it is skipped (counted) while the folder has
 * less free than the reserve plus the range's table bytes. A reopen
 * cancels a running compaction (DisableManualCompaction) before it swaps
 * the handle; close does the same and joins the thread.
 * ------------------------------------------------------------------------ */

static int avail_bytes(const char *path, uint64_t *out, char *errmsg);

static void mono_now(struct timespec *t) {
  clock_gettime(CLOCK_MONOTONIC, t);
}

static uint64_t ms_between(const struct timespec *a, const struct timespec *b) {
  int64_t ms = ((int64_t)b->tv_sec - (int64_t)a->tv_sec) * 1000 +
               ((int64_t)b->tv_nsec - (int64_t)a->tv_nsec) / 1000000;
  return ms > 0 ? (uint64_t)ms : 0;
}

/* compact: one reclaim of data tokens [@first, @last] (the reclaim
 * thread, compact_lock held). */
static void compact(struct rocks_store *rs, chorus_token first,
                    chorus_token last, uint64_t reserve) {
  if (rs->db == NULL || atomic_load(&rs->mode) != ROCKS_RW ||
      atomic_load(&rs->sticky_error) != CHORUS_OK)
    return; /* a store that cannot write makes no table file */
  unsigned char lo[8], hi[8];
  store_be64_put(lo, first);
  /* The limit is exclusive: the token after @last, or the end. */
  bool to_end = last == UINT64_MAX;
  if (!to_end)
    store_be64_put(hi, last + 1);
  const char *los = (const char *)lo, *his = to_end ? NULL : (const char *)hi;
  size_t lol = sizeof lo, hil = to_end ? 0 : sizeof hi;
  uint64_t range = 0, avail = 0;
  if (to_end) {
    if (rocksdb_property_int_cf(rs->db, cf_of(rs, STORE_DATA),
                                "rocksdb.live-sst-files-size", &range) != 0)
      range = 0;
  } else {
    char *err = NULL;
    rocksdb_approximate_sizes_cf(rs->db, cf_of(rs, STORE_DATA), 1, &los, &lol,
                                 &his, &hil, &range, &err);
    if (err != NULL)
      rocksdb_free(err);
  }
  char errmsg[CHORUS_ERRMSG_SIZE];
  if (avail_bytes(rs->path, &avail, errmsg) != CHORUS_OK ||
      avail < reserve + range) {
    atomic_fetch_add(&rs->reclaims_skipped, 1);
    return;
  }
  struct timespec t0, t1;
  mono_now(&t0);
  rocksdb_compact_range_cf_opt(rs->db, cf_of(rs, STORE_DATA),
                               rs->compact_options, los, lol, his, hil);
  rocksdb_compact_range_cf_opt(rs->db, cf_of(rs, STORE_HINTS),
                               rs->compact_options, NULL, 0, NULL, 0);
  rocksdb_compact_range_cf_opt(rs->db, cf_of(rs, STORE_META),
                               rs->compact_options, NULL, 0, NULL, 0);
  mono_now(&t1);
  uint64_t took = ms_between(&t0, &t1);
  atomic_fetch_add(&rs->reclaims, 1);
  atomic_fetch_add(&rs->reclaim_ms, took);
  uint64_t idle_ms = took * RECLAIM_IDLE_FACTOR;
  struct timespec nb = t1;
  nb.tv_sec += (time_t)(idle_ms / 1000);
  nb.tv_nsec += (long)(idle_ms % 1000) * 1000000;
  if (nb.tv_nsec >= 1000000000) {
    nb.tv_sec++;
    nb.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&rs->reclaim_lock);
  rs->reclaim_not_before = nb;
  pthread_mutex_unlock(&rs->reclaim_lock);
}

static void *reclaim_thread_main(void *arg) {
  struct rocks_store *rs = arg;
  pthread_mutex_lock(&rs->reclaim_lock);
  for (;;) {
    while (!rs->reclaim_pending && !rs->reclaim_closing)
      pthread_cond_wait(&rs->reclaim_wake, &rs->reclaim_lock);
    if (rs->reclaim_closing)
      break;
    struct timespec now;
    mono_now(&now);
    if (ms_between(&now, &rs->reclaim_not_before) > 0) {
      (void)pthread_cond_timedwait(&rs->reclaim_wake, &rs->reclaim_lock,
                                   &rs->reclaim_not_before);
      continue; /* the pace, or closing */
    }
    chorus_token first = rs->reclaim_first, last = rs->reclaim_last;
    uint64_t reserve = rs->reclaim_reserve;
    rs->reclaim_pending = false;
    pthread_mutex_unlock(&rs->reclaim_lock);
    pthread_mutex_lock(&rs->compact_lock);
    compact(rs, first, last, reserve);
    pthread_mutex_unlock(&rs->compact_lock);
    pthread_mutex_lock(&rs->reclaim_lock);
  }
  pthread_mutex_unlock(&rs->reclaim_lock);
  return NULL;
}

/* rocks_reclaim: the request recorded (merged into one that waits), the
 * reclaim thread woken; returns at once. */
static int rocks_reclaim(struct store *s, chorus_token first,
                         chorus_token last) {
  struct rocks_store *rs = (struct rocks_store *)s;
  pthread_mutex_lock(&rs->reclaim_lock);
  rs->reclaim_reserve = s->disk.reserve;
  if (rs->reclaim_pending) {
    if (first < rs->reclaim_first)
      rs->reclaim_first = first;
    if (last > rs->reclaim_last)
      rs->reclaim_last = last;
  } else {
    rs->reclaim_first = first;
    rs->reclaim_last = last;
    rs->reclaim_pending = true;
  }
  pthread_cond_signal(&rs->reclaim_wake);
  pthread_mutex_unlock(&rs->reclaim_lock);
  return CHORUS_OK;
}

/* pause_compaction / resume_compaction: a running reclaim cancelled and
 * kept off the handle (a reopen), and let back on; only the handle that
 * was paused is resumed (RocksDB asserts a resume follows a pause). */
static uint64_t pause_compaction(struct rocks_store *rs) {
  if (rs->db != NULL)
    rocksdb_disable_manual_compaction(rs->db);
  pthread_mutex_lock(&rs->compact_lock);
  return rs->db != NULL ? rs->db_generation : 0;
}

static void resume_compaction(struct rocks_store *rs, uint64_t paused) {
  if (rs->db != NULL && paused != 0 && rs->db_generation == paused)
    rocksdb_enable_manual_compaction(rs->db);
  pthread_mutex_unlock(&rs->compact_lock);
}

/* stop_reclaim_thread: the thread told to stop, its compaction
 * cancelled, and joined (close, or an open that fails after it started). */
static void stop_reclaim_thread(struct rocks_store *rs) {
  pthread_mutex_lock(&rs->reclaim_lock);
  rs->reclaim_closing = true;
  pthread_cond_signal(&rs->reclaim_wake);
  pthread_mutex_unlock(&rs->reclaim_lock);
  if (rs->db != NULL)
    rocksdb_disable_manual_compaction(rs->db);
  pthread_join(rs->reclaim_thread, NULL);
}

/* folder_bytes: the sizes of the files in the data folder (flat: RocksDB
 * keeps no subfolders there). */
static int folder_bytes(const char *path, uint64_t *out, char *errmsg) {
  DIR *d = opendir(path);
  if (d == NULL)
    return chorus_errf(errmsg, chorus_error_from_errno(errno),
                       "list data folder %s: %s", path, strerror(errno));
  struct dirent *e;
  struct stat st;
  while ((e = readdir(d)) != NULL)
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode))
      *out += (uint64_t)st.st_size;
  closedir(d);
  return CHORUS_OK;
}

/* write_stall_us: the cumulative write stall of @db, from the text of
 * "rocksdb.dbstats" ("Cumulative stall: HH:MM:SS.mmm H:M:S, ..."): RocksDB
 * 7's C API has no integer property nor statistics ticker reader for it,
 * and enabling statistics would cost every write. 0 when the text does
 * not say. Reading it moves the "Interval" figures of RocksDB's own LOG
 * dump (they count from the last reader); the cumulative ones do not. */
static uint64_t write_stall_us(rocksdb_t *db) {
  char *text = rocksdb_property_value(db, "rocksdb.dbstats");
  if (text == NULL)
    return 0;
  uint64_t us = 0;
  const char *p = strstr(text, "Cumulative stall: ");
  unsigned h, m;
  double sec;
  if (p != NULL &&
      sscanf(p, "Cumulative stall: %u:%u:%lf", &h, &m, &sec) == 3 && sec >= 0)
    us = ((uint64_t)h * 3600 + (uint64_t)m * 60) * 1000000 +
         (uint64_t)(sec * 1e6 + 0.5);
  rocksdb_free(text);
  return us;
}

static int rocks_usage(struct store *s, struct store_usage *out) {
  struct rocks_store *rs = (struct rocks_store *)s;
  out->reclaims = atomic_load(&rs->reclaims);
  out->reclaim_ms = atomic_load(&rs->reclaim_ms);
  out->reclaims_skipped = atomic_load(&rs->reclaims_skipped);
  out->wal_syncs = atomic_load(&rs->wal_syncs);
  out->wal_sync_us = atomic_load(&rs->wal_sync_us);
  if (rs->db != NULL) {
    uint64_t v;
    if (rocksdb_property_int(rs->db, "rocksdb.is-write-stopped", &v) == 0)
      out->write_stopped = v != 0;
    if (rocksdb_property_int(rs->db, "rocksdb.actual-delayed-write-rate", &v) ==
        0)
      out->delayed_write_rate = v;
    out->write_stall_us = write_stall_us(rs->db);
  }
  if (rs->db != NULL)
    for (int i = 0; i < COLUMN_FAMILY_COUNT; i++) {
      uint64_t v;
      if (rocksdb_property_int_cf(rs->db, rs->cf[i],
                                  "rocksdb.live-sst-files-size", &v) == 0)
        out->table_bytes += v;
      if (rocksdb_property_int_cf(rs->db, rs->cf[i],
                                  "rocksdb.estimate-live-data-size", &v) == 0)
        out->live_bytes += v;
      if (rocksdb_property_int_cf(rs->db, rs->cf[i],
                                  "rocksdb.cur-size-all-mem-tables", &v) == 0)
        out->memory_bytes += v;
      if (rocksdb_property_int_cf(rs->db, rs->cf[i],
                                  "rocksdb.estimate-pending-compaction-bytes",
                                  &v) == 0)
        out->pending_compaction_bytes += v;
    }
  return folder_bytes(rs->path, &out->folder_bytes, s->errmsg);
}

/* ------------------------------------------------------------------------
 * Open and close
 * ------------------------------------------------------------------------ */

/* close_db: the database and its column family handles (a reopen, the
 * store's close). */
static void close_db(struct rocks_store *rs) {
  for (int i = 0; i < COLUMN_FAMILY_COUNT; i++)
    if (rs->cf[i] != NULL) {
      rocksdb_column_family_handle_destroy(rs->cf[i]);
      rs->cf[i] = NULL;
    }
  if (rs->db != NULL)
    rocksdb_close(rs->db);
  rs->db = NULL;
}

/* release: frees whatever open() got to; safe on a partly built store. */
static void release(struct rocks_store *rs) {
  close_db(rs);
  if (rs->read_options != NULL)
    rocksdb_readoptions_destroy(rs->read_options);
  if (rs->write_options != NULL)
    rocksdb_writeoptions_destroy(rs->write_options);
  if (rs->compact_options != NULL)
    rocksdb_compactoptions_destroy(rs->compact_options);
  if (rs->cf_options != NULL)
    rocksdb_options_destroy(rs->cf_options);
  if (rs->data_options != NULL)
    rocksdb_options_destroy(rs->data_options);
  if (rs->hints_options != NULL)
    rocksdb_options_destroy(rs->hints_options);
  if (rs->options != NULL)
    rocksdb_options_destroy(rs->options);
  if (rs->table_options != NULL)
    rocksdb_block_based_options_destroy(rs->table_options);
  if (rs->cache != NULL)
    rocksdb_cache_destroy(rs->cache);
  chorus_free(rs->pending);
  chorus_free(rs->path);
  chorus_free(rs);
}

static void rocks_close(struct store *s) {
  struct rocks_store *rs = (struct rocks_store *)s;
  stop_reclaim_thread(rs);
  pthread_mutex_lock(&rs->lock);
  rs->closing = 1;
  pthread_cond_signal(&rs->wake);
  pthread_mutex_unlock(&rs->lock);
  pthread_join(rs->sync_thread, NULL);

  /* The sync thread is gone: cancel what it did not complete, here. */
  pthread_mutex_lock(&rs->lock);
  complete_requests(rs, 0, 1, CHORUS_ECANCELED);
  pthread_mutex_unlock(&rs->lock);
  /* Close does not sync, but a clean exit loses nothing to a later crash. */
  if (rs->db != NULL)
    (void)rocks_flush(s);
  pthread_cond_destroy(&rs->wake);
  pthread_mutex_destroy(&rs->lock);
  pthread_mutex_destroy(&rs->db_lock);
  pthread_cond_destroy(&rs->reclaim_wake);
  pthread_mutex_destroy(&rs->compact_lock);
  pthread_mutex_destroy(&rs->reclaim_lock);
  release(rs);
}

/* ensure_directory: RocksDB creates only the last path component; check the
 * folder up front so the error names the real problem. */
static int ensure_directory(const char *path, char *errmsg) {
  if (mkdir(path, 0755) != 0 && errno != EEXIST)
    return chorus_errf(errmsg, chorus_error_from_errno(errno),
                       "create data folder %s: %s", path, strerror(errno));
  struct stat st;
  if (stat(path, &st) != 0)
    return chorus_errf(errmsg, chorus_error_from_errno(errno),
                       "data folder %s: %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return chorus_errf(errmsg, CHORUS_EINVAL, "data folder %s: not a folder",
                       path);
  return CHORUS_OK;
}

/* avail_bytes: what the file system of @path has available to us
 * (statvfs: blocks available to unprivileged users, times their size). */
static int avail_bytes(const char *path, uint64_t *out, char *errmsg) {
  struct statvfs v;
  if (statvfs(path, &v) != 0)
    return chorus_errf(errmsg, chorus_error_from_errno(errno),
                       "free space of %s: %s", path, strerror(errno));
  *out = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
  return CHORUS_OK;
}

/* sync_wal_files: fsyncs every WAL file of the folder, which a read-only
 * open cannot ask RocksDB to do: what they hold may have reached only the
 * page cache before the previous process died, and a read-only store calls
 * all of it durable. */
static int sync_wal_files(const char *path, char *errmsg) {
  DIR *d = opendir(path);
  if (d == NULL)
    return chorus_errf(errmsg, chorus_error_from_errno(errno),
                       "open data folder %s: %s", path, strerror(errno));
  int rc = CHORUS_OK;
  struct dirent *e;
  while (rc == CHORUS_OK && (e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n < 4 || strcmp(e->d_name + n - 4, ".log") != 0)
      continue;
    int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
      rc = chorus_errf(errmsg, chorus_error_from_errno(errno),
                       "sync WAL file %s/%s: %s", path, e->d_name,
                       strerror(errno));
    if (fd >= 0)
      close(fd);
  }
  closedir(d);
  return rc;
}

/* The data space's prefix extractor: a key's first 8 bytes, its token
 * (store.h), or the whole key when shorter. Keyed by it, the data memtable
 * is a hash of small skip lists: a point get or put touches one bucket
 * instead of walking a skip list of every recent write, which was the
 * largest single cost of a node under load (bench/chorus, issue 10 note).
 * Every key is in the domain, so short keys stay correct. */
enum { TOKEN_PREFIX_BYTES = 8 };

static char *token_prefix(void *state, const char *key, size_t len,
                          size_t *prefix_len) {
  (void)state;
  *prefix_len = len < TOKEN_PREFIX_BYTES ? len : TOKEN_PREFIX_BYTES;
  /* The C API's signature drops const; RocksDB only reads the prefix. */
  return (char *)(uintptr_t)key;
}

static unsigned char token_prefix_in_domain(void *state, const char *key,
                                            size_t len) {
  (void)state, (void)key, (void)len;
  return 1;
}

static unsigned char token_prefix_in_range(void *state, const char *key,
                                           size_t len) {
  (void)state, (void)key;
  return len <= TOKEN_PREFIX_BYTES;
}

/* RocksDB calls the destructor unconditionally; the extractor has no state. */
static void token_prefix_destroy(void *state) {
  (void)state;
}

static const char *token_prefix_name(void *state) {
  (void)state;
  return "chorus.TokenPrefix";
}

/* build_options: RocksDB's options for the database and each column
 * family, kept for every (re)open. */
static void build_options(struct rocks_store *rs,
                          const struct store_rocksdb_options *opts) {
  size_t cache_bytes =
      opts->block_cache_bytes ? opts->block_cache_bytes : 64u << 20;
  size_t buffer_bytes =
      opts->write_buffer_bytes ? opts->write_buffer_bytes : 64u << 20;

  rs->options = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(rs->options, 1);
  rocksdb_options_set_create_missing_column_families(rs->options, 1);
  rocksdb_options_increase_parallelism(rs->options, 2);
  /* The WAL is ours to hand to the OS (store_flush, once per loop
   * iteration) and to sync (group commit). */
  rocksdb_options_set_manual_wal_flush(rs->options, 1);
  rocksdb_options_set_keep_log_file_num(rs->options, 4);
  /* Errors are ours to report; a LOG line written to a full disk can
   * abort the process (HOW A FULL DISK IS MET). */
  rocksdb_options_set_info_log_level(rs->options, ROCKS_LOG_FATAL);

  /* RocksDB counts perf_context statistics per operation by default, in
   * thread-local storage reached through __tls_get_addr from a shared
   * library: about 5% of a node's CPU, for counters nobody reads. The level
   * is per thread: this covers the opening (event loop) thread. */
  rocksdb_set_perf_level(rocksdb_disable);
  rs->cache = rocksdb_cache_create_lru(cache_bytes);
  rs->table_options = rocksdb_block_based_options_create();
  rocksdb_block_based_options_set_block_cache(rs->table_options, rs->cache);
  /* Point lookups dominate (every replica write reads its object first):
   * a bloom filter saves the disk read for absent keys. */
  rocksdb_block_based_options_set_filter_policy(
      rs->table_options, rocksdb_filterpolicy_create_bloom(10));
  rs->cf_options = rocksdb_options_create_copy(rs->options);
  rocksdb_options_set_block_based_table_factory(rs->cf_options,
                                                rs->table_options);
  rocksdb_options_set_write_buffer_size(rs->cf_options, buffer_bytes);
  rocksdb_options_set_compression(rs->cf_options, rocksdb_lz4_compression);

  /* Data: hashed memtable by token (see token_prefix). Its ordered
   * iteration builds a sorted view first, so scans set total_order_seek;
   * point reads and writes, the hot path, stay O(1). A hashed memtable
   * takes one writer at a time, which is all chorusd has.
   * Every iterator open sorts the whole memtable, whatever its range: ~100
   * ms for a full one (up to a second on a loaded machine), against ~1 ms
   * with RocksDB's default skip list. That skip list costs 24-31% more node
   * CPU per request (issue 27, bench/chorus/results/memtable.txt), so a
   * scan that runs in steps keeps one iterator across its steps instead. */
  rs->data_options = rocksdb_options_create_copy(rs->cf_options);
  rocksdb_options_set_prefix_extractor(
      rs->data_options,
      rocksdb_slicetransform_create(NULL, token_prefix_destroy, token_prefix,
                                    token_prefix_in_domain,
                                    token_prefix_in_range, token_prefix_name));
  /* The bucket array lives in the memtable's arena and must stay a small
   * part of it (RocksDB asserts a new memtable is not already full): one
   * 8-byte bucket per 256 bytes of write buffer, 3%. */
  size_t buckets = buffer_bytes / 256 > 1024 ? buffer_bytes / 256 : 1024;
  /* Each bucket is a skip list of height up to 12 (branching 4): a bucket
   * stays logarithmic even if keys that do not start with a token crowd
   * into one (RocksDB's default of 4 degrades to a list scan there). */
  rocksdb_options_set_hash_skip_list_rep(rs->data_options, buckets, 12, 4);
  rocksdb_options_set_allow_concurrent_memtable_write(rs->options, 0);

  /* Hints: nearly every one is deleted within a round trip of its write,
   * so a large memtable is mostly put/delete pairs that every insert and
   * every replay scan must step through. A sixteenth of the buffer flushes
   * often, and a flush drops the pairs. */
  rs->hints_options = rocksdb_options_create_copy(rs->cf_options);
  rocksdb_options_set_write_buffer_size(
      rs->hints_options,
      buffer_bytes / 16 > (1u << 20) ? buffer_bytes / 16 : (1u << 20));
  rs->read_options = rocksdb_readoptions_create();
  rs->write_options = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(rs->write_options, 0);
  /* A reclaim's compaction runs beside RocksDB's own and the writes,
   * never stopping them. */
  rs->compact_options = rocksdb_compactoptions_create();
  rocksdb_compactoptions_set_exclusive_manual_compaction(rs->compact_options,
                                                         0);
  /* The range's last level too: by default CompactRange skips it, and
   * where every file is in one level (a small database: all in level 0)
   * that skips everything, markers included. Optimized: not the files
   * this same compaction has just written there. */
  rocksdb_compactoptions_set_bottommost_level_compaction(
      rs->compact_options, ROCKS_BOTTOMMOST_FORCE_OPTIMIZED);
}

/* open_db: opens the database read-write (@writable) or read-only, and
 * makes what its WAL holds durable before calling it so: what the WAL
 * holds at open may have reached only the OS page cache before the
 * previous process died. */
static int open_db(struct rocks_store *rs, bool writable, char *errmsg) {
  const rocksdb_options_t *cf_opts[COLUMN_FAMILY_COUNT];
  for (int i = 0; i < COLUMN_FAMILY_COUNT; i++)
    cf_opts[i] = rs->cf_options;
  cf_opts[(int)STORE_DATA + 1] = rs->data_options;
  cf_opts[(int)STORE_HINTS + 1] = rs->hints_options;
  char *err = NULL;
  int rc;
  if (!writable && (rc = sync_wal_files(rs->path, errmsg)) != CHORUS_OK)
    return rc;
  rs->db = writable ? rocksdb_open_column_families(
                          rs->options, rs->path, COLUMN_FAMILY_COUNT,
                          column_family_names, cf_opts, rs->cf, &err)
                    : rocksdb_open_for_read_only_column_families(
                          rs->options, rs->path, COLUMN_FAMILY_COUNT,
                          column_family_names, cf_opts, rs->cf, 0, &err);
  if (err != NULL) {
    rc = rocks_error(errmsg, err,
                     writable ? "open store" : "open store read-only");
    rs->db = NULL;
    memset(rs->cf, 0, sizeof rs->cf);
    return rc;
  }
  if (writable) {
    rocksdb_flush_wal(rs->db, 1, &err);
    if (err != NULL) {
      rc = rocks_error(errmsg, err, "open store: sync recovered WAL");
      close_db(rs);
      return rc;
    }
  }
  atomic_store(&rs->mode, writable ? ROCKS_RW : ROCKS_RO);
  rs->db_generation++;
  return CHORUS_OK;
}

/* rocks_avail: statvfs of the data folder (0 while STORE_FAULT_FULL). */
static int rocks_avail(struct store *s, uint64_t *avail, bool *can_write) {
  struct rocks_store *rs = (struct rocks_store *)s;
  *can_write = atomic_load(&rs->mode) == ROCKS_RW;
  *avail = 0;
  if (atomic_load(&rs->fault_full))
    return CHORUS_OK;
  return avail_bytes(rs->path, avail, s->errmsg);
}

/* rocks_reopen: a database that cannot write, reopened (HOW A FULL DISK IS
 * MET): NOSPACE always (read-only without room), read-only only once there
 * is room. Sequences keep growing past the writes the reopen lost; pending
 * barriers end here, OK for what the reopen recovered (the open synced
 * it), CHORUS_ENOSPC for what it lost. */
static int reopen(struct rocks_store *rs, bool writable, bool *done);

static int rocks_reopen(struct store *s, bool writable, bool *done) {
  struct rocks_store *rs = (struct rocks_store *)s;
  *done = false;
  int mode = atomic_load(&rs->mode);
  if (mode == ROCKS_RW || (mode == ROCKS_RO && !writable) ||
      atomic_load(&rs->sticky_error) != CHORUS_OK)
    return CHORUS_OK;
  if (atomic_load(&rs->open_iters) > 0)
    return chorus_errf(s->errmsg, CHORUS_EBUSY,
                       "reopen the store: an iterator is open; next check");
  uint64_t paused = pause_compaction(rs);
  int rc = reopen(rs, writable, done);
  resume_compaction(rs, paused);
  return rc;
}

/* reopen: rocks_reopen's work, no compaction running. */
static int reopen(struct rocks_store *rs, bool writable, bool *done) {
  struct store *s = &rs->base;
  pthread_mutex_lock(&rs->db_lock);
  chorus_seq old_last = latest_seq(rs), old_offset = rs->seq_offset;
  close_db(rs);
  int rc = open_db(rs, writable, s->errmsg);
  if (rc != CHORUS_OK && writable) {
    char why[CHORUS_ERRMSG_SIZE];
    snprintf(why, sizeof why, "%s", s->errmsg);
    if (open_db(rs, false, s->errmsg) == CHORUS_OK)
      chorus_errf(s->errmsg, rc, "%s; reopened read-only", why);
  }
  if (rs->db == NULL) {
    int expected = CHORUS_OK;
    atomic_compare_exchange_strong(&rs->sticky_error, &expected, rc);
    pthread_mutex_unlock(&rs->db_lock);
    pthread_mutex_lock(&rs->lock);
    complete_requests(rs, 0, 1, CHORUS_ESYNCFAILED);
    pthread_mutex_unlock(&rs->lock);
    chorus_errwrap(s->errmsg, rc, "reopen failed, the store cannot read");
    return CHORUS_ESYNCFAILED;
  }
  chorus_seq got = rocksdb_get_latest_sequence_number(rs->db);
  chorus_seq recovered = got + old_offset;
  if (recovered < old_last) {
    rs->lost_lo = recovered;
    rs->lost_hi = old_last;
    rs->seq_offset = old_last - got;
  }
  /* Whatever the reopen recovered is durable; the rest is lost. The
   * pending barriers learn which before the sync thread may run again: it
   * would answer them from `durable`, which now covers the lost ones too
   * (later requests for those are refused, rocks_sync_request). */
  pthread_mutex_lock(&rs->lock);
  complete_requests(rs, recovered, 0, CHORUS_OK);
  complete_requests(rs, 0, 1, CHORUS_ENOSPC);
  pthread_mutex_unlock(&rs->lock);
  atomic_store(&rs->durable, latest_seq(rs));
  *done = true;
  pthread_mutex_unlock(&rs->db_lock);
  return rc;
}

/* start_reclaim_thread: the reclaim thread's locks, its condition (on
 * the monotonic clock: its pace must not follow the wall clock) and the
 * thread. Errors: CHORUS_ENOMEM, nothing left behind. */
static int start_reclaim_thread(struct rocks_store *rs, char *errmsg) {
  pthread_condattr_t ca;
  if (pthread_mutex_init(&rs->reclaim_lock, NULL) != 0)
    return chorus_errf(errmsg, CHORUS_ENOMEM, "open store: mutex");
  if (pthread_mutex_init(&rs->compact_lock, NULL) != 0)
    goto err_after_reclaim_lock;
  if (pthread_condattr_init(&ca) != 0)
    goto err_after_compact_lock;
  if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
      pthread_cond_init(&rs->reclaim_wake, &ca) != 0) {
    pthread_condattr_destroy(&ca);
    goto err_after_compact_lock;
  }
  pthread_condattr_destroy(&ca);
  if (pthread_create(&rs->reclaim_thread, NULL, reclaim_thread_main, rs) != 0)
    goto err_after_cond;
  return CHORUS_OK;

err_after_cond:
  pthread_cond_destroy(&rs->reclaim_wake);
err_after_compact_lock:
  pthread_mutex_destroy(&rs->compact_lock);
err_after_reclaim_lock:
  pthread_mutex_destroy(&rs->reclaim_lock);
  return chorus_errf(errmsg, CHORUS_ENOMEM, "open store: reclaim thread");
}

int store_rocksdb_open(const struct store_rocksdb_options *opts,
                       struct store **out, char *errmsg) {
  *out = NULL;
  if (opts == NULL || opts->path == NULL || opts->path[0] == '\0')
    return chorus_errf(errmsg, CHORUS_EINVAL, "open store: no path given");
  int rc = ensure_directory(opts->path, errmsg);
  if (rc != CHORUS_OK)
    return rc;
  uint64_t avail = 0;
  if ((rc = avail_bytes(opts->path, &avail, errmsg)) != CHORUS_OK)
    return rc;

  struct rocks_store *rs = chorus_calloc(1, sizeof *rs);
  if (rs == NULL || (rs->path = chorus_strdup(opts->path)) == NULL) {
    chorus_free(rs);
    return chorus_errf(errmsg, CHORUS_ENOMEM, "open store: out of memory");
  }
  rs->base.ops = &rocks_ops;
  atomic_init(&rs->sticky_error, CHORUS_OK);
  atomic_init(&rs->mode, ROCKS_RW);
  atomic_init(&rs->open_iters, 0);
  build_options(rs, opts);

  /* Below the reserve, open read-only: a read-write open writes files,
   * and a folder without a database cannot get one. */
  bool room = avail > 0 && avail >= opts->min_free_bytes;
  char current[NAME_MAX + 1024];
  struct stat st;
  snprintf(current, sizeof current, "%s/CURRENT", opts->path);
  if (!room && stat(current, &st) != 0) {
    rc = chorus_errf(errmsg, CHORUS_ENOSPC,
                     "data folder full (%llu bytes free, the reserve is "
                     "%llu): it holds no store, and none can be made",
                     (unsigned long long)avail,
                     (unsigned long long)opts->min_free_bytes);
    goto err_after_alloc;
  }
  rc = open_db(rs, room, errmsg);
  if (rc == CHORUS_ENOSPC && room) {
    room = false;
    rc = open_db(rs, false, errmsg);
  }
  if (rc != CHORUS_OK) {
    chorus_errwrap(errmsg, rc, "%s", opts->path);
    goto err_after_alloc;
  }
  atomic_init(&rs->durable, latest_seq(rs));

  if (pthread_mutex_init(&rs->lock, NULL) != 0) {
    rc = chorus_errf(errmsg, CHORUS_ENOMEM, "open store: mutex");
    goto err_after_alloc;
  }
  if (pthread_mutex_init(&rs->db_lock, NULL) != 0) {
    rc = chorus_errf(errmsg, CHORUS_ENOMEM, "open store: mutex");
    goto err_after_mutex;
  }
  if (pthread_cond_init(&rs->wake, NULL) != 0) {
    rc = chorus_errf(errmsg, CHORUS_ENOMEM, "open store: condition variable");
    goto err_after_db_lock;
  }
  if ((rc = start_reclaim_thread(rs, errmsg)) != CHORUS_OK)
    goto err_after_cond;
  if (pthread_create(&rs->sync_thread, NULL, sync_thread_main, rs) != 0) {
    rc = chorus_errf(errmsg, CHORUS_ENOMEM, "open store: sync thread");
    goto err_after_reclaim;
  }
  store_set_reserve(&rs->base, opts->min_free_bytes);
  /* The first decision: a read-only store refuses writes from the start. */
  (void)store_check_space(&rs->base, NULL);
  *out = &rs->base;
  return CHORUS_OK;

err_after_reclaim:
  stop_reclaim_thread(rs);
  pthread_cond_destroy(&rs->reclaim_wake);
  pthread_mutex_destroy(&rs->compact_lock);
  pthread_mutex_destroy(&rs->reclaim_lock);
err_after_cond:
  pthread_cond_destroy(&rs->wake);
err_after_db_lock:
  pthread_mutex_destroy(&rs->db_lock);
err_after_mutex:
  pthread_mutex_destroy(&rs->lock);
err_after_alloc:
  release(rs);
  return rc;
}

static const struct store_ops rocks_ops = {
    .name = "rocksdb",
    .get = rocks_get,
    .put = rocks_put,
    .del = rocks_del,
    .write_batch = rocks_write_batch,
    .iter_open = rocks_iter_open,
    .sync_request = rocks_sync_request,
    .sync = rocks_sync,
    .flush = rocks_flush,
    .last_seq = rocks_last_seq,
    .durable_seq = rocks_durable_seq,
    .avail = rocks_avail,
    .reopen = rocks_reopen,
    .inject_fault = rocks_inject_fault,
    .reclaim = rocks_reclaim,
    .usage = rocks_usage,
    .close = rocks_close,
};

static const struct store_iter_ops rocks_iter_ops = {
    .valid = rocks_iter_valid,
    .next = rocks_iter_next,
    .key = rocks_iter_key,
    .value = rocks_iter_value,
    .status = rocks_iter_status,
    .close = rocks_iter_close,
    .seek = rocks_iter_seek,
};
