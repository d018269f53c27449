/* test_ring_rcu.c: RCU publication: reader threads look keys up while a
 * writer replaces the snapshot thousands of times; under ASan a reader that
 * touched a freed snapshot would abort, and every reader checks that the
 * snapshot it holds is whole (checksum) and never older than one it saw. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chorus_alloc.h"
#include "chorus_prng.h"
#include "ring.h"

#ifdef CHORUS_LONG_TESTS
enum { SWAPS = 50000 };
#else
enum { SWAPS = 3000 };
#endif
enum { READERS = 4 };

struct shared {
  struct ring_rcu pub;
  volatile int stop;
};

struct reader {
  pthread_t thread;
  struct shared *sh;
  uint64_t seed;
  long reads, versions_seen, errors;
};

/* Snapshot v has (v % 7) + 3 nodes whose ids encode v, so a reader can
 * check that the list it got belongs to the snapshot it holds. */
static struct ring_snapshot *make(uint64_t v) {
  struct ring_node nodes[10];
  size_t n = (size_t)(v % 7) + 3;
  memset(nodes, 0, sizeof nodes);
  for (size_t i = 0; i < n; i++) {
    nodes[i].id = (v << 8) | i;
    snprintf(nodes[i].dc, RING_NAME_MAX, "dc%zu", i % 2);
    snprintf(nodes[i].rack, RING_NAME_MAX, "r%zu", i % 3);
    nodes[i].state = i == 0 && v % 5 == 0 ? RING_JOINING : RING_NORMAL;
    nodes[i].vnodes = 16;
  }
  struct ring_replication repl;
  if (ring_replication_parse(v % 2 ? "dc0:2,dc1:1" : "2", &repl, NULL) !=
      CHORUS_OK)
    return NULL;
  struct ring_snapshot *s = NULL;
  if (ring_snapshot_build(nodes, n, &repl, v, &s, NULL) != CHORUS_OK)
    return NULL;
  return s;
}

static void *reader_main(void *arg) {
  struct reader *r = arg;
  struct chorus_prng p;
  chorus_prng_seed(&p, r->seed);
  ring_rcu_register_thread();
  uint64_t last = 0;
  while (!r->sh->stop) {
    ring_rcu_read_lock();
    const struct ring_snapshot *s = ring_rcu_get(&r->sh->pub);
    if (s != NULL) {
      uint64_t v = ring_snapshot_version(s);
      if (v < last || ring_snapshot_verify(s) != CHORUS_OK)
        r->errors++;
      if (v != last)
        r->versions_seen++;
      last = v;
      struct ring_plist pl;
      for (int i = 0; i < 8; i++) {
        int rc = ring_lookup(s, chorus_prng_next(&p), 2, &pl);
        if (rc != CHORUS_OK || pl.n_natural < 1)
          r->errors++;
        for (int j = 0; j < pl.n_natural + pl.n_pending + pl.n_fallback; j++)
          if (pl.r[j].id >> 8 != v)
            r->errors++;
      }
      /* Re-verify after the lookups: still alive, still whole. */
      if (ring_snapshot_verify(s) != CHORUS_OK || ring_snapshot_version(s) != v)
        r->errors++;
      r->reads++;
    }
    ring_rcu_read_unlock();
  }
  ring_rcu_unregister_thread();
  return NULL;
}

static void readers_survive_thousands_of_swaps(void **state) {
  (void)state;
  struct shared sh;
  memset(&sh, 0, sizeof sh);
  ring_rcu_register_thread();
  ring_rcu_init(&sh.pub, make(1));
  struct reader rd[READERS];
  memset(rd, 0, sizeof rd);
  for (int i = 0; i < READERS; i++) {
    rd[i].sh = &sh;
    rd[i].seed = (uint64_t)i + 1;
    assert_int_equal(pthread_create(&rd[i].thread, NULL, reader_main, &rd[i]),
                     0);
  }
  for (uint64_t v = 2; v <= SWAPS; v++) {
    struct ring_snapshot *s = make(v);
    assert_non_null(s);
    ring_rcu_publish(&sh.pub, s);
  }
  sh.stop = 1;
  long reads = 0, versions = 0;
  for (int i = 0; i < READERS; i++) {
    assert_int_equal(pthread_join(rd[i].thread, NULL), 0);
    assert_int_equal(rd[i].errors, 0);
    reads += rd[i].reads;
    versions += rd[i].versions_seen;
  }
  ring_rcu_read_lock();
  assert_int_equal(ring_snapshot_version(ring_rcu_get(&sh.pub)), SWAPS);
  ring_rcu_read_unlock();
  ring_rcu_fini(&sh.pub);
  ring_rcu_read_lock();
  assert_null(ring_rcu_get(&sh.pub));
  ring_rcu_read_unlock();
  ring_rcu_unregister_thread();
  print_message("# %d swaps, %d readers: %ld read sections, %ld version "
                "changes seen\n",
                SWAPS, READERS, reads, versions);
  assert_true(reads > 0);
}

/* Publishing NULL empties the ring; publishing again restores it. */
static void publish_null_and_back(void **state) {
  (void)state;
  ring_rcu_register_thread();
  struct ring_rcu pub;
  ring_rcu_init(&pub, NULL);
  ring_rcu_read_lock();
  assert_null(ring_rcu_get(&pub));
  ring_rcu_read_unlock();
  ring_rcu_publish(&pub, make(3));
  ring_rcu_publish(&pub, NULL);
  ring_rcu_read_lock();
  assert_null(ring_rcu_get(&pub));
  ring_rcu_read_unlock();
  ring_rcu_publish(&pub, make(4));
  ring_rcu_read_lock();
  assert_int_equal(ring_snapshot_version(ring_rcu_get(&pub)), 4);
  ring_rcu_read_unlock();
  ring_rcu_fini(&pub);
  ring_rcu_unregister_thread();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(readers_survive_thousands_of_swaps),
      cmocka_unit_test(publish_null_and_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
