/* node.h: chorusd: configuration, logs, and the node: the libuv binding
 * of the node core (node/core/core.h) to sockets, timers and RocksDB.
 *
 * HOW IT WORKS
 *
 * One thread runs one libuv loop that owns everything: the TCP listener
 * (clients and peers share it; HELLO's role tells them apart), the UDP
 * socket for SWIM datagrams on the same port, the core's deadline timer,
 * and the write side of every connection. All protocol logic is in the
 * node core, a sans-I/O state machine (DESIGN.md §3) that the simulator
 * drives too: each event (a frame, a datagram, the deadline, a finished
 * sync barrier, a signal) becomes one core_* call, and the core's effects
 * come back through callbacks that encode frames, send datagrams, answer
 * clients, ask for barriers and publish ring snapshots. The only other
 * thread is the RocksDB store's group-commit sync thread; its barrier
 * callbacks are queued under a mutex and handed to the loop with
 * uv_async_send. node_int.h lists the files and their order.
 *
 * Writes are coalesced: an effect appends its encoded frame to the
 * connection's output buffer, and a uv_check handle (it runs once per loop
 * iteration, after I/O callbacks) flushes every dirty connection with one
 * uv_write of everything it accumulated.
 *
 * Back-pressure: a client connection whose unsent output exceeds
 * cfg.out_limit stops being read until its output drains to half of it, so
 * a client that sends requests and never reads the answers blocks itself
 * (its kernel buffers fill) instead of growing the node's memory. In-flight
 * requests per connection are capped (ERROR EOVERLOAD beyond); so are
 * connections and frame sizes (wire.h limits). A peer connection over its
 * (larger) bound drops messages, which replication tolerates.
 *
 * CONNECTION BUDGETS (node_accept.c tells how). Connections that have not
 * completed HELLO are capped apart from client sessions (the oldest is
 * closed to admit a new one) and closed after --handshake-ms; client
 * sessions are capped by --max-connections and closed after --idle-ms
 * without traffic; peers are never refused for either cap. A frame that
 * arrives under --min-frame-rate closes its connection. When accept runs
 * out of descriptors, the oldest pending handshake makes room, or
 * accepting pauses (logged once per shortage) until descriptors return.
 *
 * Peers: a node sends to a peer only over the connection it dialled itself
 * (lazily, to the address SWIM gossips for it; HELLO role peer with a MAC
 * of cluster and node id under a key derived from the cluster key), and
 * only reads on the connections peers dialled to it. Two nodes thus share
 * two TCP connections, one per direction: whoever has something to send
 * owns reconnecting, and there is no simultaneous-open race to settle. A
 * failed dial backs off NODE_DIAL_BACKOFF_MS; messages meanwhile are
 * dropped, which replication tolerates (timeouts, hints). SWIM datagrams
 * go over UDP; its stream packets (push/pull, join) ride the same peer
 * connections as WIRE_GOSSIP frames.
 *
 * Requests: a client request gets a slot whose (generation, index) is
 * replication's origin cookie, so a late answer to a connection that
 * closed (or a request already failed by shutdown) is recognised and
 * dropped: each request is answered exactly once.
 *
 * Startup checks (exit 1, one log line): the TCP and UDP ports, the data
 * folder (created if missing, writable, not locked by another process),
 * and its identity: the node name, id and cluster written into the META
 * space on first start must match on every later one.
 *
 * A full data folder (store.h, THE SPACE RESERVE): the free space is
 * checked every second and right after a write that found the disk full;
 * below --min-free-mb the store refuses writes (clients get CHORUS_ENOSPC,
 * "data folder full (N bytes free)"; peers' replica writes are refused
 * likewise and stay hinted) while reads, gossip and hint replay go on, and
 * writes resume by themselves once space returns. Each transition is one
 * log line. A node started below the reserve opens its store read-only
 * and says so; until space returns it has no durable epoch, so it serves
 * reads and replica reads but coordinates no write.
 *
 * Shutdown (SIGINT/SIGTERM; a second signal closes at once): stop
 * accepting, fail in-flight client requests with CHORUS_ECANCELED (they
 * may or may not have been applied), store_sync, core_leave, keep the loop
 * running --leave-ms (1 s) so LEFT spreads, then close everything.
 *
 * HTTP (--http HOST:PORT, off unless set; node_http.c): /metrics in the
 * Prometheus text format, /health and /ready, on a listener of its own
 * served by the same loop. Its connections are bounded apart from the
 * client sessions (--http-max-connections, --http-timeout-ms, an 8 KiB
 * request head), so a scraper or an attacker on that port cannot take
 * what clients and peers need.
 *
 * Ring snapshots: the core builds them (core.h, THE HOOKUP) and hands
 * each to the ring effect, which publishes it with ring_rcu_publish: any
 * thread may read the ring under RCU, and the previous snapshot is freed
 * after a grace period, once the core has moved on.
 */
#ifndef CHORUS_NODE_H
#define CHORUS_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus_error.h"
#include "chorus_types.h"
#include "repl.h"
#include "ring.h"
#include "swim.h"

/* ------------------------------------------------------------------------
 * Logs (node_log.c): `2026-11-26T01:02:03.456Z info node: message` on
 * stderr, one line per event.
 * ------------------------------------------------------------------------ */

enum node_log_level {
  NODE_LOG_ERROR = 0,
  NODE_LOG_WARN,
  NODE_LOG_INFO,
  NODE_LOG_DEBUG,
};

/* --log-format: text (above), or json: one object a line,
 *   {"ts":"2026-11-26T01:02:03.456Z","level":"info","module":"node",
 *    "node":"n1","msg":"message"}
 * with ts in RFC 3339 UTC to the millisecond, node the --id, and strings
 * escaped as node_json.h says (invalid UTF-8 becomes \ufffd). Either way
 * a line is at most CHORUS_TRACE_LINE_MAX + 128 bytes and one write(2);
 * a longer message is cut (in json at a character, the object closed). */
enum node_log_format { NODE_LOG_TEXT = 0, NODE_LOG_JSON };

/* node_log_set_format: the format, and the node name json lines carry
 * (copied; NULL: empty). node_log_format_parse: "text" or "json"; errors:
 * CHORUS_EINVAL. */
void node_log_set_format(enum node_log_format format, const char *node);
int node_log_format_parse(const char *s, enum node_log_format *out);

/* node_log_set_level / node_log_level_parse ("error".."debug").
 * node_log_level_parse errors: CHORUS_EINVAL. */
void node_log_set_level(enum node_log_level level);
int node_log_level_parse(const char *s, enum node_log_level *out);
bool node_log_enabled(enum node_log_level level);
void node_log(enum node_log_level level, const char *module, const char *fmt,
              ...) __attribute__((format(printf, 3, 4)));

/* node_log_tracer: a tracer that writes each trace line at debug level. */
extern const struct chorus_tracer node_log_tracer;
/* node_log_info_tracer: the same at info level, for the metadata layer,
 * whose decisions (elections, joins, configuration changes, refused
 * messages) are rare and each worth a line. */
extern const struct chorus_tracer node_log_info_tracer;
/* node_log_warn_tracer: the same at warn level (what an operator must
 * hear, such as dropped hints). */
extern const struct chorus_tracer node_log_warn_tracer;

/* ------------------------------------------------------------------------
 * Configuration (node_config.c)
 * ------------------------------------------------------------------------ */

#define NODE_MAX_SEEDS SWIM_MAX_SEEDS
#define NODE_PATH_MAX 1024u

enum node_durability { NODE_DURABILITY_NONE = 0, NODE_DURABILITY_GROUP };

/* --client-tls / --peer-tls (node_tls.c). */
enum node_tls_mode {
  NODE_TLS_OFF = 0,
  NODE_TLS_OPTIONAL, /* clients only: TLS and plaintext share the port */
  NODE_TLS_REQUIRED
};

struct node_config {
  char name[128];                /* --id NAME */
  chorus_node_id id;             /* xxh3-64 of @name */
  char listen[SWIM_ADDR_MAX];    /* --listen HOST:PORT */
  char advertise[SWIM_ADDR_MAX]; /* --advertise; default @listen */
  char data[NODE_PATH_MAX];      /* --data DIR */
  char seeds[NODE_MAX_SEEDS][SWIM_ADDR_MAX];
  size_t nseeds;
  char cluster[SWIM_CLUSTER_MAX]; /* --cluster NAME */
  uint8_t key[SWIM_KEY_BYTES];    /* --cluster-key FILE, or derived */
  bool key_derived;               /* no key file: warn at start */
  char dc[RING_NAME_MAX], rack[RING_NAME_MAX];
  char replicas[128]; /* --replicas spec, as given */
  struct ring_replication replication;
  enum node_durability durability; /* --durability none|group */
  bool profile_local;              /* --profile local */
  enum node_log_level log_level;
  enum node_log_format log_format; /* --log-format text|json */
  uint32_t slow_ms; /* --slow-ms: slower requests logged; 0 off */
  /* Limits. */
  uint32_t max_connections; /* --max-connections (client sessions), 1024 */
  uint32_t max_pending;     /* --max-pending-handshakes, max_connections/4 */
  uint32_t handshake_ms;    /* --handshake-ms: HELLO within, 5000 */
  uint32_t idle_ms;         /* --idle-ms: idle client closed, 300000; 0 never */
  uint32_t min_frame_rate;  /* --min-frame-rate bytes/s, 16384; 0 off */
  uint32_t max_inflight;    /* --max-inflight (per connection), 256 */
  uint32_t max_frame;       /* --max-frame (client frames), 2 MiB */
  uint32_t max_value_bytes; /* --max-value-bytes, 1 MiB (WIRE_MAX_VALUE) */
  uint32_t max_clock_ahead_ms; /* --max-clock-ahead-ms, 5000 (repl.h) */
  uint32_t lock_skew_ms;       /* --lock-skew-ms, 500 (repl.h) */
  uint32_t out_limit;          /* --out-limit (client output), 1 MiB */
  uint32_t peer_out_limit;     /* peer output before dropping, 64 MiB */
  uint32_t timeout_ms;         /* --timeout (default request timeout) */
  chorus_ms leave_ms;          /* --leave-ms: gossip time at shutdown */
  uint32_t stream_mbps;        /* --stream-mbps: pull rate, 400; 0 no limit */
  uint32_t min_free_mb;        /* --min-free-mb: writes refused below, 256 */
  /* --tombstone-gc repair | timeout=SECONDS | off (repl.h, TOMBSTONE
   * COLLECTION), and its walk period --gc-interval-ms (10000). */
  enum repl_tombstone_gc tombstone_gc;
  chorus_ms tombstone_gc_timeout_ms;
  uint32_t gc_interval_ms;
  chorus_ms hint_max_age_ms; /* --hint-max-age-ms, 3 h */
  /* --max-object-bytes: the byte budget of one object (repl.h), 8 MiB */
  uint32_t max_object_bytes;
  /* --aae-interval-ms: an anti-entropy exchange this often, 60000; 0 none
   * (the tree is kept all the same; `chorus repair now` still runs one) */
  uint32_t aae_interval_ms;
  /* --hint-max-bytes: hints kept per target, 64 MiB (repl.h) */
  uint64_t hint_max_bytes;
  /* The HTTP listener (node_http.c): --http HOST:PORT, empty: none;
   * --http-max-connections (16): one more is closed at once;
   * --http-timeout-ms (5000): a request head must arrive within it, and
   * an answer must make progress within it once written. */
  char http[SWIM_ADDR_MAX];
  uint32_t http_max_connections;
  uint32_t http_timeout_ms;
  /* The RESP gateway (node_resp.c, docs/RESP.md): --resp HOST:PORT, empty:
   * none. Its connections count against --max-connections with the
   * native clients' and share their limits. */
  char resp[SWIM_ADDR_MAX];
  /* TLS 1.3 on the client and peer port (node_tls.c, docs/ARCHITECTURE.md
   * TLS): --tls-cert and --tls-key (PEM; read at start and again on
   * SIGHUP), --tls-ca (the cluster CA: peers' and clients' certificates
   * are checked against it), --tls-crl (PEM CRLs of that CA: revoked
   * certificates refused; re-read on SIGHUP too);
   * --client-tls off|optional|required;
   * --peer-tls off|required (mutual: both ends show a certificate of the
   * CA). Empty paths: none. */
  char tls_cert[NODE_PATH_MAX], tls_key[NODE_PATH_MAX], tls_ca[NODE_PATH_MAX];
  char tls_crl[NODE_PATH_MAX];
  enum node_tls_mode client_tls, peer_tls;
  /* Client logins (issue 24; docs/ARCHITECTURE.md, Users and logins):
   * --auth required|off (default off: a cluster with no users yet, and
   * every existing deployment, keep working; required is one flag away);
   * --admin-user NAME with --admin-password-file FILE or the environment
   * variable CHORUS_ADMIN_PASSWORD: the first admin, created through the
   * metadata log when the cluster has no users. */
  bool auth_required;
  char admin_user[48];
  uint32_t admin_ops, admin_mem_kib; /* --admin-kdf PASSES:KIB; 0: 2:65536 */
  char admin_password_file[NODE_PATH_MAX];
};

/* node_config_parse: fills @cfg from argv (and from --config files). On
 * --help or --version it prints to stdout and sets *@exit_now. @errmsg
 * (CHORUS_ERRMSG_SIZE) gets one line on failure.
 * Errors: CHORUS_EINVAL (bad or missing flag), CHORUS_EIO (unreadable
 * --config or --cluster-key file), CHORUS_EMALFORMED (bad key file). */
int node_config_parse(int argc, char **argv, struct node_config *cfg,
                      bool *exit_now, char *errmsg);

/* node_addr_split: "HOST:PORT" or "[V6]:PORT" into @host (@cap bytes) and
 * *@port. Errors: CHORUS_EINVAL. */
int node_addr_split(const char *addr, char *host, size_t cap, int *port);

/* ------------------------------------------------------------------------
 * The node (node.c): lifecycle.
 * ------------------------------------------------------------------------ */

struct node;

/* node_open: binds the ports, opens the store and checks its identity,
 * builds SWIM and replication. Nothing runs until node_run.
 * Errors: CHORUS_EBUSY (port or data folder in use), CHORUS_EPERM
 * (unwritable data folder), CHORUS_ECLUSTER (data folder of another node
 * id or cluster), store and libuv errors; @errmsg says which in one line. */
int node_open(const struct node_config *cfg, struct node **out, char *errmsg);

/* node_run: runs the loop until a graceful shutdown (SIGINT/SIGTERM)
 * completes; returns the process exit status. */
int node_run(struct node *n);

/* node_free: frees what node_run left (NULL is fine). */
void node_free(struct node *n);

#endif /* CHORUS_NODE_H */
