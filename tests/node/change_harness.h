/* change_harness.h: what the topology-change tests on real chorusd
 * processes share (test_node_change.c, test_node_replace.c): numbered
 * nodes n1..n7 of one cluster, the members' states as `chorus cluster
 * status --json` shows them, keys written and read pipelined with their
 * values checked, and a forked QUORUM load whose every acknowledged write
 * is read back.
 *
 * Built on node_harness.h: every wait is bounded, every helper fails the
 * running cmocka test when the harness cannot go on, and every child is
 * killed at the end.
 */
#ifndef CHORUS_CHANGE_HARNESS_H
#define CHORUS_CHANGE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node_harness.h"

/* ------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------ */

/* ns[1..7]: n1..n7 (index 0 unused, so a node's index is its number). */
#define CH_NODES 8
extern struct proc ns[CH_NODES];
extern char founders[256]; /* --seeds: n1, n2 and n3 */

/* ch_setup: harness_setup and the CLI ($CHORUS_CLI, else the chorus of
 * chorusd's build); 0, or 1 with a line on stderr. */
int ch_setup(int argc, char **argv);
/* ch_init: node_init of n1..n7 and @founders. */
void ch_init(void);
/* ch_start: n@i with the test cluster's flags (N=3, the local SWIM
 * profile, 64 requests in flight, --timeout 10 s), seeded by the
 * founders, and the flags @more (NULL-terminated, up to 8; may be NULL). */
void ch_start(int i, const char *const *more);
/* kill9: SIGKILL, reaped (and no longer tracked by the harness). */
void kill9(struct proc *p);
/* stream_line: n@i's stream counters as one TAP comment. */
void stream_line(int i);
/* stream_stat: n@i's counter stream.@name ("keys", "ranges_done"...). */
int64_t stream_stat(int i, const char *name);

/* ------------------------------------------------------------------------
 * Members as `chorus cluster status --json` shows them
 * ------------------------------------------------------------------------ */

/* member_field: @field ("state", "alive") of member @name in a `cluster
 * status --json` answer, into @out ("" when @name is not a member). */
void member_field(const char *json, const char *name, const char *field,
                  char *out, size_t cap);
/* member_number: the number @field ("share_ppm", "vnodes") of member
 * @name in a `cluster status --json` answer; -1 when absent. */
int64_t member_number(const char *json, const char *name, const char *field);
/* view_is: @json matches every token of @expect: "NAME=STATE" (the
 * member's metadata state) or "NAME/FIELD=VALUE". */
bool view_is(const char *json, const char *expect);
/* state_of: member @name's state as n@i sees it, into @out ("" when n@i
 * does not answer or has no such member). */
void state_of(int i, const char *name, char *out, size_t cap);
/* states_seen_add: @state appended to the space-separated list @seen (of
 * @cap bytes) unless it is the last one there or the list is full: the
 * states a member went through, for a test's report. */
void states_seen_add(char *seen, size_t cap, const char *state);
/* wait_view: every running node's `cluster status --json` matches
 * @expect (view_is), within @secs (else the test fails); the seconds it
 * took. Polled twice a second: an ASan CLI costs ~80 ms of CPU. */
double wait_view(const char *expect, double secs);
/* wait_view_moving: wait_view for a change whose streams may be slow (a
 * node's ranges pulled from every live replica in turn, on a loaded
 * machine): it waits as long as they move (the receivers' stream.done_ppm
 * and stream.ranges_done, summed, grow), and fails when they stood still
 * for @stall seconds or after @secs in all. */
double wait_view_moving(const char *expect, double stall, double secs);
/* wait_all_normal: wait_view of every running node normal, and @more
 * (view_is tokens, or NULL). */
double wait_all_normal(const char *more, double secs);
/* cli_until_ok: `chorus ARGS` through n@i, asked again every 300 ms while
 * it fails (EBUSY: a change under way; a member not yet known), within
 * @secs (else the test fails); the seconds it took. */
double cli_until_ok(int i, double secs, const char *args);

/* ------------------------------------------------------------------------
 * Keys, pipelined
 * ------------------------------------------------------------------------ */

/* A set of keys: "<prefix><index, 6 digits>", each value "v<index>-" and
 * then letters, @vlen bytes (at most CH_MAX_VLEN). */
#define CH_MAX_VLEN 8000
struct keys {
  const char *prefix;
  size_t vlen;
  const int *idx; /* the indexes, or NULL for 0..n-1 */
  int n;
};

/* What the answers of a batch said. @missing: "not found" for a key that
 * was written, the error the tests exist to catch. */
struct tally {
  int ok, missing, wrong, errors, unanswered;
  int last_error;
  char first_missing[3][32];
};

struct wire_options opts_rw(int32_t r, int32_t w);
/* batch: every @stride-th key of @ks from @first, written (@write) or
 * read through the node on @port with @o, 32 requests in flight; the
 * answers counted into @t. */
void batch(int port, const struct keys *ks, bool write, struct wire_options o,
           int first, int stride, struct tally *t);
void tally_line(const char *what, const struct tally *t);
/* write_all_keys: @ks at W=ALL through n@i: every write acknowledged. */
void write_all_keys(int i, const struct keys *ks);
/* read_everything: every key of @ks at R=1 through n@i, found with its
 * value, printed; the number found. */
int read_everything(int i, const struct keys *ks);
/* every_node_reads: read_everything through each running node of n1..n7;
 * asserts that each found all of @ks. */
void every_node_reads(const struct keys *ks);

/* ------------------------------------------------------------------------
 * The background load: a forked child writing and reading at QUORUM
 * ------------------------------------------------------------------------ */

struct bg_counts {
  int writes, acked, write_errors, reads, read_ok, read_missing, read_wrong,
      read_errors, reconnects, last_error;
  double p50_ms, p99_ms, max_ms; /* every request's latency, answered or not */
};

/* bg_start: a child that writes key i (of its own, "bg<load>-<i>")
 * through the node @via[i % @nvia]
 * at QUORUM, about 100 a second, and reads each acknowledged one back at
 * QUORUM through the next node of @via; until bg_end. */
void bg_start(const int *via, int nvia);
/* bg_end: stops the child (within 30 s, else killed), reads its counts
 * into @c and prints them; the child's exit status (0: it ran). */
int bg_end(struct bg_counts *c);
/* bg_check_acked: every write the load saw acknowledged, read at QUORUM
 * through the running nodes in turn; asserts each is found with its
 * value. */
void bg_check_acked(const struct bg_counts *c);
/* bg_end_checked: bg_end, then bg_check_acked; asserts the load ran,
 * something was acknowledged and no read back was missing or wrong. */
void bg_end_checked(void);

#endif /* CHORUS_CHANGE_HARNESS_H */
