/* store_rocksdb.h: the RocksDB storage backend that chorusd runs on.
 *
 * One RocksDB database per node with one column family per key space
 * ("data", "hints", "meta"; RocksDB's mandatory "default" family stays
 * empty). The WAL is written on every write (survives a process crash);
 * a dedicated sync thread runs group commit: it takes every barrier request
 * that arrived, reads the newest published sequence S, calls FlushWAL with
 * sync (one fsync), and completes every request with sequence <= S.
 *
 * Merges are read-modify-write under the caller's serialization, not a
 * RocksDB merge operator: see docs/ARCHITECTURE.md "Storage" for why.
 *
 * store_reclaim hands a manual compaction (CompactRange) of the deleted
 * range, and of the small hints and meta spaces, to a reclaim thread, so
 * that the deletes and what they shadow leave the WAL and the table files
 * without the caller waiting; paced to a tenth of the time at most
 * (store_rocksdb.c, HOW SPACE COMES BACK).
 *
 * A full disk (store.h, THE SPACE RESERVE; store_rocksdb.c, HOW A FULL
 * DISK IS MET): below the reserve the database is open read-only; a write
 * that still finds the disk full makes the store refuse writes until the
 * next store_check_space reopens it, read-only or, with room, read-write.
 */
#ifndef CHORUS_STORE_ROCKSDB_H
#define CHORUS_STORE_ROCKSDB_H

#include "store.h"

struct store_rocksdb_options {
  /* Directory of the database; created if missing (its parent must exist). */
  const char *path;
  /* Block cache size in bytes; 0 means the default (64 MiB). */
  size_t block_cache_bytes;
  /* Write buffer (memtable) size in bytes; 0 means the default (64 MiB). */
  size_t write_buffer_bytes;
  /* The reserve (store.h, THE SPACE RESERVE): with fewer bytes available
   * the database opens read-only and writes are refused. 0: only a disk
   * with no byte left. */
  uint64_t min_free_bytes;
};

/* store_rocksdb_open: opens (creating if needed) the database at
 * @opts->path and starts its sync thread. Below the reserve it opens
 * read-only (store_disk_info(s)->read_only; writes refused with
 * CHORUS_ENOSPC until store_check_space finds room and reopens it
 * read-write). On failure *@out is NULL and, when @errmsg is not NULL, it
 * holds the reason (CHORUS_ERRMSG_SIZE bytes).
 * Errors: CHORUS_EINVAL (no path), CHORUS_EIO, CHORUS_EPERM (unwritable),
 * CHORUS_EBUSY (another process holds the database lock), CHORUS_ECORRUPT,
 * CHORUS_ENOSPC (below the reserve with no database to open read-only: a
 * new one cannot be created), CHORUS_ENOMEM. */
int store_rocksdb_open(const struct store_rocksdb_options *opts,
                       struct store **out, char *errmsg);

#endif /* CHORUS_STORE_ROCKSDB_H */
