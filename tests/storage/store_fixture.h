/* store_fixture.h: one handle on "a store under test", so that the same test
 * bodies run against every backend (the conformance suite). */
#ifndef CHORUS_TEST_STORE_FIXTURE_H
#define CHORUS_TEST_STORE_FIXTURE_H

#include <pthread.h>

#include "store.h"

struct store_fixture {
  struct store *s;
  const char *backend; /* "memory" or "rocksdb" */
  char path[256];      /* rocksdb: the database folder */

  /* Barrier callbacks land here (from the sync thread on RocksDB). */
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int callbacks;
  int last_status;
  chorus_seq last_durable;
  int order_violations; /* a callback ran before an earlier request's */
  long next_expected;   /* index of the next callback in request order */
};

/* fixture_open: a fresh, empty store of @backend. */
int fixture_open(struct store_fixture *f, const char *backend);

/* fixture_reopen: a restart: RocksDB closes and reopens the folder; the
 * memory store crashes keeping nothing unsynced (so both keep exactly what
 * was synced). */
int fixture_reopen(struct store_fixture *f);

/* fixture_close: closes the store and deletes its files. */
void fixture_close(struct store_fixture *f);

/* fixture_request: store_sync_request with the fixture's counting callback;
 * @index is the request's position, used to check completion order. */
int fixture_request(struct store_fixture *f, long index, chorus_seq seq);

/* fixture_drive_syncs: lets pending barriers complete (memory: one sync
 * step; RocksDB: waits up to 30 s for @expected callbacks in total) and
 * returns the number of callbacks seen so far. */
int fixture_drive_syncs(struct store_fixture *f, int expected);

#endif
