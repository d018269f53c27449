/* test_store_durability.c: kill -9 a RocksDB writer in `group` mode at a
 * random moment; after reopening, every write it acknowledged is there.
 *
 * The child writes keys k<i> = v<i> and acknowledges i on a pipe from the
 * sync barrier's callback, exactly as chorusd acknowledges a client in
 * `group` durability. The parent kills it with SIGKILL after a random delay,
 * reads every acknowledgement that made it out, reopens the store and checks
 * each. A SIGKILL exercises the process-crash path (WAL written, recovery on
 * open, acks only after the barrier); a power loss cannot be produced here,
 * which is why the fsync itself is covered by the barrier logic, not by this
 * test.
 *
 * The second test does the same in `none` durability: the child acknowledges
 * a group of writes once store_flush() has handed them to the OS, as chorusd
 * does before each loop iteration's replies leave. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chorus_alloc.h"
#include "chorus_prng.h"
#include "store_rocksdb.h"

#ifdef CHORUS_LONG_TESTS
#define ROUNDS 200
#else
#define ROUNDS 20
#endif
#define MAX_WRITES 200000
#define MAX_OUTSTANDING 64
#define FLUSH_GROUP 50

static atomic_int outstanding;
static int ack_fd;

static void ack(long i) {
  char line[24];
  int n = snprintf(line, sizeof line, "%ld\n", i);
  /* A short write to a pipe of <= PIPE_BUF bytes does not happen. */
  if (write(ack_fd, line, (size_t)n) != n)
    _exit(3);
}

static void on_durable(void *arg, chorus_seq durable, int status) {
  (void)durable;
  if (status == CHORUS_OK)
    ack((long)(intptr_t)arg);
  atomic_fetch_sub(&outstanding, 1);
}

static void child_writer(const char *path, int fd, long start, bool flush) {
  ack_fd = fd;
  /* RocksDB's background threads belong to the parent's Env and do not
   * exist in a forked child, so a memtable flush would stall the child for
   * good: the flushed run, unthrottled by barriers, gets a memtable that
   * holds all MAX_WRITES. */
  struct store_rocksdb_options o = {.path = path,
                                    .block_cache_bytes = 8u << 20,
                                    .write_buffer_bytes =
                                        flush ? 64u << 20 : 1u << 20};
  struct store *s;
  char errmsg[CHORUS_ERRMSG_SIZE];
  if (store_rocksdb_open(&o, &s, errmsg) != CHORUS_OK) {
    fprintf(stderr, "child: %s\n", errmsg);
    _exit(2);
  }
  for (long i = start; i < start + MAX_WRITES; i++) {
    char key[32], val[32];
    int kl = snprintf(key, sizeof key, "k%08ld", i);
    int vl = snprintf(val, sizeof val, "v%ld", i);
    chorus_seq seq;
    if (store_put(s, STORE_DATA, key, (size_t)kl, val, (size_t)vl, &seq) !=
        CHORUS_OK)
      _exit(4);
    if (flush) {
      /* A loop iteration's worth of writes, then one flush, then the acks. */
      if ((i + 1) % FLUSH_GROUP == 0) {
        if (store_flush(s) != CHORUS_OK)
          _exit(6);
        for (long j = i + 1 - FLUSH_GROUP; j <= i; j++)
          ack(j);
      }
      continue;
    }
    while (atomic_load(&outstanding) >= MAX_OUTSTANDING)
      sched_yield();
    atomic_fetch_add(&outstanding, 1);
    if (store_sync_request(s, seq, on_durable, (void *)(intptr_t)i) !=
        CHORUS_OK)
      _exit(5);
  }
  /* Finished before the kill: wait for it. */
  for (;;)
    pause();
}

static int remove_entry(const char *p, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(p);
}

/* read_acks: appends the numbers in @buf to @acks. */
static void parse_acks(char *buf, size_t *used, long *acks, size_t *nacks) {
  size_t start = 0;
  for (size_t i = 0; i < *used; i++) {
    if (buf[i] == '\n') {
      buf[i] = '\0';
      acks[(*nacks)++] = atol(buf + start);
      start = i + 1;
    }
  }
  memmove(buf, buf + start, *used - start);
  *used -= start;
}

static void kill9_rounds(bool flush) {
  char path[] = "/tmp/chorus-durability-XXXXXX";
  assert_non_null(mkdtemp(path));
  struct chorus_prng prng;
  chorus_prng_seed(&prng, 0xd0ab1e);
  long *acks = malloc(sizeof(long) * MAX_WRITES);
  long next_start = 0;
  long total_acked = 0;

  for (int round = 0; round < ROUNDS; round++) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      child_writer(path, fds[1], next_start, flush);
    }
    close(fds[1]);

    /* Let it run for a random 20..400 ms, collecting acks, then SIGKILL. */
    long delay_ms = (long)chorus_prng_range(&prng, 20, 400);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char buf[65536];
    size_t used = 0, nacks = 0;
    int killed = 0;
    for (;;) {
      clock_gettime(CLOCK_MONOTONIC, &now);
      long elapsed = (now.tv_sec - t0.tv_sec) * 1000 +
                     (now.tv_nsec - t0.tv_nsec) / 1000000;
      if (!killed && elapsed >= delay_ms) {
        kill(pid, SIGKILL);
        killed = 1;
      }
      struct pollfd p = {.fd = fds[0], .events = POLLIN};
      /* Read only what is there: a child that stops acknowledging must
       * still be killed on time. */
      if (poll(&p, 1, killed ? 1000 : 5) <= 0)
        continue;
      ssize_t n = read(fds[0], buf + used, sizeof buf - used);
      if (n > 0) {
        used += (size_t)n;
        parse_acks(buf, &used, acks, &nacks);
      } else if (n == 0) {
        break; /* EOF: the child is dead and the pipe drained */
      }
    }
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    struct store_rocksdb_options o = {.path = path};
    struct store *s;
    char errmsg[CHORUS_ERRMSG_SIZE];
    assert_int_equal(store_rocksdb_open(&o, &s, errmsg), CHORUS_OK);
    for (size_t i = 0; i < nacks; i++) {
      char key[32], want[32];
      int kl = snprintf(key, sizeof key, "k%08ld", acks[i]);
      int wl = snprintf(want, sizeof want, "v%ld", acks[i]);
      void *val;
      size_t vlen;
      int rc = store_get(s, STORE_DATA, key, (size_t)kl, &val, &vlen);
      if (rc != CHORUS_OK)
        fail_msg("round %d: acknowledged write %s lost (%s)", round, key,
                 chorus_strerror(rc));
      assert_int_equal(vlen, (size_t)wl);
      assert_memory_equal(val, want, (size_t)wl);
      chorus_free(val);
    }
    store_close(s);
    total_acked += (long)nacks;
    next_start += MAX_WRITES;
  }
  print_message("# %s: %d rounds, %ld acknowledged writes, all present "
                "after kill -9\n",
                flush ? "flushed" : "synced", ROUNDS, total_acked);
  assert_true(total_acked > 0);
  free(acks);
  nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void acknowledged_writes_survive_kill9(void **state) {
  (void)state;
  kill9_rounds(false);
}

static void flushed_writes_survive_kill9(void **state) {
  (void)state;
  kill9_rounds(true);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(acknowledged_writes_survive_kill9),
      cmocka_unit_test(flushed_writes_survive_kill9),
  };
  return cmocka_run_group_tests_name("durability", tests, NULL, NULL);
}
