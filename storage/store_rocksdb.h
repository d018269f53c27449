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
};

/* store_rocksdb_open: opens (creating if needed) the database at
 * @opts->path and starts its sync thread. On failure *@out is NULL and, when
 * @errmsg is not NULL, it holds the reason (CHORUS_ERRMSG_SIZE bytes).
 * Errors: CHORUS_EINVAL (no path), CHORUS_EIO, CHORUS_EPERM (unwritable),
 * CHORUS_EBUSY (another process holds the database lock), CHORUS_ECORRUPT,
 * CHORUS_ENOMEM. */
int store_rocksdb_open(const struct store_rocksdb_options *opts,
                       struct store **out, char *errmsg);

#endif /* CHORUS_STORE_ROCKSDB_H */
