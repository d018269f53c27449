/* node_harness.h: chorusd as real processes on loopback, for the node
 * tests: spawning and reaping nodes, a tiny blocking client over
 * wire_encode / wire_decode, and the shared 3-node cluster.
 *
 * Every wait is bounded. Every child spawned is tracked: harness_finish
 * (and a fatal signal) kills it and removes the run's folder, @root, even
 * when a test failed; CHORUS_KEEP_LOGS=1 keeps the folder and says where,
 * and CHORUS_TEST_FILTER=pattern runs only the cases it matches.
 * The helpers fail the running cmocka test (assert_*, fail_msg) when the
 * harness itself cannot go on (no free port, fork failed).
 */
#ifndef CHORUS_NODE_HARNESS_H
#define CHORUS_NODE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire.h"

/* ------------------------------------------------------------------------
 * Processes and folders
 * ------------------------------------------------------------------------ */

extern const char *chorusd; /* the binary ($CHORUSD or argv[1]) */
extern char root[128];      /* this run's folder (mkdtemp) */

double now_s(void); /* CLOCK_MONOTONIC, seconds */
void sleep_ms(int ms);
/* kill_all: SIGKILL and reap every child still running. */
void kill_all(void);
/* free_port: a port free for both TCP and UDP right now. */
int free_port(void);

struct proc {
  pid_t pid;
  int port;
  char name[32];
  char data[300];
  char log[300];
  unsigned long nofile; /* 0, or the child's RLIMIT_NOFILE (soft and hard) */
  uid_t uid; /* 0, or the uid and gid the child runs as (the test is root) */
  char host[24]; /* "": 127.0.0.1; else the address it listens on */
  int netns;     /* 0, or an open network namespace the child runs in (and
                    the harness's connections to it start from) */
};

/* harness_cleanup_hook: NULL, or a test's own teardown (network
 * namespaces, helper processes) that kill_all runs after its kills, also
 * on a fatal signal. */
extern void (*harness_cleanup_hook)(void);

/* spawn: chorusd --id name --listen HOST:port --data data and the
 * flags @extra (NULL-terminated, may be NULL); stderr into @p->log (opened
 * before the child takes @p->uid: its folder needs to be the child's
 * only when that is not 0). */
void spawn(struct proc *p, const char *const *extra);
/* wait_exit: the child's exit status, or -1 when it did not exit within
 * @secs (it is then killed). */
int wait_exit(struct proc *p, double secs);
void read_file(const char *path, char *out, size_t cap);
void write_text(const char *path, const char *text);
size_t count_lines(const char *s);
/* rss_kb: VmRSS of @pid from /proc, or -1. */
long rss_kb(pid_t pid);

/* ------------------------------------------------------------------------
 * The CLI
 * ------------------------------------------------------------------------ */

extern const char *cli; /* the chorus CLI binary; the test sets it */

/* find_cli: sets @cli from $CHORUS_CLI, else the chorus of chorusd's
 * build (a test run by hand with the chorusd path); 0, or 1 with a line
 * on stderr. Call it after harness_setup. */
int find_cli(void);

/* run_cli: `chorus -H 127.0.0.1:PORT --cluster NAME ARGS...`, its output
 * (stdout and stderr) into @out, cut to @cap - 1 bytes; the exit status,
 * or -1. */
int run_cli(int port, char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* show: @text as TAP comments under @title, one per line. */
void show(const char *title, const char *text);
/* trace_replicas: the nodes that served a traced read (`--trace`): the
 * coordinator's "self: read" line and every "acked" line name one each.
 * Writes their names, space-separated and sorted by first appearance, to
 * @names; returns how many. */
int trace_replicas(const char *out, char *names, size_t cap);

/* ------------------------------------------------------------------------
 * A tiny client over wire_encode / wire_decode and blocking sockets
 * ------------------------------------------------------------------------ */

extern const char cluster[]; /* every test node's cluster name */
extern uint64_t next_id;     /* request ids, shared so none repeats */

struct reply {
  struct wire_msg m;
  uint8_t *body; /* @m borrows from it */
};

void reply_free(struct reply *r);
/* tcp_connect: a connected socket with 15 s send and receive timeouts and
 * TCP_NODELAY, or -1. tcp_connect_at: the same to @host (NULL:
 * 127.0.0.1) from network namespace @netns (0: the test's): the socket is
 * made there, and a socket stays in the namespace it was made in. */
int tcp_connect(int port);
int tcp_connect_at(const char *host, int port, int netns);
int write_all(int fd, const void *data, size_t len);
int read_all(int fd, void *data, size_t len);
int send_msg(int fd, const struct wire_msg *m);
/* recv_msg: one frame; -1 on EOF, timeout or a bad frame. */
int recv_msg(int fd, struct reply *r);
/* client_open: a connection after HELLO/WELCOME (role client), or -1.
 * proc_open: the same to @p where it listens, from its namespace. */
int client_open(int port);
int proc_open(const struct proc *p);
/* call: sends @m and waits for the frame answering its request id. */
int call(int fd, const struct wire_msg *m, struct reply *r);
struct wire_options quorum(void); /* r = w = QUORUM */
/* put_with: a PUT of @key = @value with @opts; 0 on WRITE_REPLY, else the
 * error code (-1000: no answer). put: the same at QUORUM. */
int put_with(int fd, const char *key, const char *value,
             struct wire_options opts);
int put(int fd, const char *key, const char *value);
/* get: 0 with the only sibling in @out, 1 when not found, else an error. */
int get(int fd, const char *key, char *out, size_t cap);
/* stat_of: a STATUS_QUERY value by name (on a connection of its own); -1
 * when absent or no answer. */
int64_t stat_of(int port, const char *name);
int64_t proc_stat(const struct proc *p, const char *name);
chorus_node_id id_of(const char *name);
int64_t member_state(int port, const char *name);
/* serves: a new client on @port writes a key at QUORUM and reads it back
 * (asserts). */
void serves(int port);

/* ------------------------------------------------------------------------
 * HTTP (chorusd --http, a Prometheus server)
 * ------------------------------------------------------------------------ */

/* http_raw: sends @len bytes of @req to 127.0.0.1:@port and reads until the
 * server closes; the status (-1: no answer) with the body in @body (@cap
 * bytes, cut; @body may be NULL). */
int http_raw(int port, const void *req, size_t len, char *body, size_t cap);
/* http_get: GET @path (Connection: close) through http_raw. */
int http_get(int port, const char *path, char *body, size_t cap);
/* metric_value: the value of the sample @series (name and labels, exactly
 * as the node writes them) in the exposition @text; 0 when absent (a
 * series not yet written is a counter still at 0). */
double metric_value(const char *text, const char *series);

/* ------------------------------------------------------------------------
 * The cluster fixture: n0, n1, n2 with --replicas 3 and the local SWIM
 * profile, seeded through n0; n0 allows 8 requests in flight, the others
 * 64.
 * ------------------------------------------------------------------------ */

extern struct proc nodes[3];
extern char keyfile_a[300], keyfile_b[300]; /* two different cluster keys */
/* member_extra: more flags for every member started from then on
 * (NULL-terminated, up to 9; NULL for none). */
extern const char *const *member_extra;

/* faketime_begin: members started until faketime_end run under
 * libfaketime (FAKETIME_LIB): their wall clock offset by @offset ("+0.5",
 * "-2h"), or, with @offset NULL, by what @file holds (re-read about once a
 * second, so a test can step the clock of a running node). The monotonic
 * clock stays true, as under NTP. Under ASan the preload comes before the
 * runtime (verify_asan_link_order=0 for the children). 0, or 77 when
 * libfaketime is not installed. */
#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
int faketime_begin(const char *offset, const char *file);
void faketime_end(void);

void node_init(struct proc *p, const char *name);
void start_member(struct proc *p, const char *key, int seed_port,
                  const char *max_inflight);
void start_cluster(void);
/* start_cluster_http: n0, n1, n2 (node_init'ed here, 64 requests in
 * flight each, seeded through n0) with --http 127.0.0.1:@http_port[i] on
 * free ports and the flags @more (NULL, or up to 4, NULL-terminated);
 * returns once all three see each other alive. */
extern int http_port[3];
void start_cluster_http(const char *const *more);
/* wait_alive: every node sees @want alive members, within @secs. */
void wait_alive(int want, double secs);
/* ensure_cluster: the 3-node cluster the tests after the startup ones
 * share, started by the first that needs it. */
void ensure_cluster(void);
int group_teardown(void **state); /* kills every node */

/* ------------------------------------------------------------------------
 * Cases and the run
 * ------------------------------------------------------------------------ */

/* Each case reports its wall time. */
int clock_start(void **state);
int clock_stop(void **state);
#define TIMED(f) cmocka_unit_test_setup_teardown(f, clock_start, clock_stop)

/* harness_setup: the binary, the run's folder, the key files and the
 * cleanup on fatal signals; 0, or 1 with a line on stderr.
 * harness_finish: kills and removes everything; the exit status for
 * @failed cmocka cases. */
int harness_setup(int argc, char **argv);
int harness_finish(int failed);

#endif /* CHORUS_NODE_HARNESS_H */
