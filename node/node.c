/* node.c: chorusd's lifecycle: opening (ports, the data folder and its
 * identity, the node core), running, graceful shutdown and freeing
 * (node.h, HOW IT WORKS). */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <xxhash.h>
#include <uv.h>

#include "chorus_alloc.h"
#include "node_int.h"
#include "store_rocksdb.h"

#define IDENTITY_KEY "node/identity"

/* ------------------------------------------------------------------------
 * Shutdown
 * ------------------------------------------------------------------------ */

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* The last step: everything closes and uv_run returns. */
static void close_all(struct node *n) {
  n->closing_all = true;
  while (n->conns)
    node__conn_close(n->conns);
  node__accept_close(n);
  node__http_close(n);
  node__resp_close(n);
  close_handle((uv_handle_t *)&n->udp);
  close_handle((uv_handle_t *)&n->leave_timer);
  node__peers_close(n);
  close_handle((uv_handle_t *)&n->sigint);
  close_handle((uv_handle_t *)&n->sigterm);
  node__tls_close(n);
  node__loop_close(n);
}

static void on_leave_timer(uv_timer_t *t) {
  struct node *n = t->data;
  node_log(NODE_LOG_INFO, NODE_MOD, "left the cluster; closing");
  close_all(n);
}

/* Graceful shutdown: stop accepting, fail in-flight client requests, make
 * every write durable, leave the gossip, and give the LEFT update time
 * to spread (swim.h: keep ticking for a few probe intervals). */
static void shutdown_begin(struct node *n, int signum) {
  if (n->shutting_down) {
    node_log(NODE_LOG_WARN, NODE_MOD, "signal %d again: closing now", signum);
    close_all(n);
    return;
  }
  n->shutting_down = true;
  node_log(NODE_LOG_INFO, NODE_MOD, "signal %d: shutting down", signum);
  node__listen_stop(n);
  node__http_stop(n);
  node__resp_stop(n);
  node__cancel_inflight(n);
  for (struct node_conn *c = n->conns; c; c = c->next)
    if (c->kind == NODE_CONN_CLIENT || c->kind == NODE_CONN_NEW ||
        c->kind == NODE_CONN_HTTP || c->kind == NODE_CONN_RESP) {
      c->close_after_flush = true;
      node__mark_dirty(c);
    }
  int rc = store_sync(n->store);
  if (rc != CHORUS_OK)
    node_log(NODE_LOG_ERROR, "store", "final sync: %s", store_errmsg(n->store));
  else
    node_log(NODE_LOG_INFO, "store", "synced up to seq %" PRIu64,
             store_durable_seq(n->store));
  rc = core_leave(n->core, node__now(n), node__wall_ms());
  if (rc != CHORUS_OK)
    node_log(NODE_LOG_WARN, "swim", "leave: %s", chorus_strerror(rc));
  uv_timer_start(&n->leave_timer, on_leave_timer, n->cfg.leave_ms, 0);
}

static void on_signal(uv_signal_t *h, int signum) {
  shutdown_begin(h->data, signum);
}

/* ------------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------------ */

/* The data folder remembers whose it is: node name, id and cluster, written
 * on first start into the META space, checked on every later one. */
static int check_identity(struct node *n, char *errmsg) {
  char want[512];
  int wl = snprintf(want, sizeof want,
                    "chorus node identity v1\nid=%016" PRIx64
                    "\nname=%s\ncluster=%s\n",
                    n->cfg.id, n->cfg.name, n->cfg.cluster);
  void *val = NULL;
  size_t vlen = 0;
  int rc = store_get(n->store, STORE_META, IDENTITY_KEY, strlen(IDENTITY_KEY),
                     &val, &vlen);
  if (rc == CHORUS_ENOTFOUND) {
    /* The first start: a node that cannot say whose folder this is does
     * not start (below the reserve: "data folder full"). */
    rc = store_put(n->store, STORE_META, IDENTITY_KEY, strlen(IDENTITY_KEY),
                   want, (size_t)wl, NULL);
    if (rc == CHORUS_OK)
      rc = store_sync(n->store);
    if (rc != CHORUS_OK)
      return chorus_errf(errmsg, rc, "data folder %s: writing identity: %s",
                         n->cfg.data, store_errmsg(n->store));
    return CHORUS_OK;
  }
  if (rc != CHORUS_OK)
    return chorus_errf(errmsg, rc, "data folder %s: reading identity: %s",
                       n->cfg.data, store_errmsg(n->store));
  bool same = vlen == (size_t)wl && memcmp(val, want, vlen) == 0;
  if (!same) {
    char have[512];
    size_t hl = vlen < sizeof have - 1 ? vlen : sizeof have - 1;
    memcpy(have, val, hl);
    have[hl] = '\0';
    for (char *p = have; *p; p++)
      if (*p == '\n')
        *p = ' ';
    chorus_free(val);
    return chorus_errf(
        errmsg, CHORUS_ECLUSTER,
        "data folder %s belongs to another node or cluster "
        "(%s); this is node \"%s\" (id %016" PRIx64 ") of cluster \"%s\"",
        n->cfg.data, have, n->cfg.name, n->cfg.id, n->cfg.cluster);
  }
  chorus_free(val);
  return CHORUS_OK;
}

/* make_dirs: `mkdir -p @path`: the folder and every missing parent
 * (--help: "created if missing"). Returns 0, or -1 with errno set by the
 * first step that failed (ENOTDIR when a parent is a file). */
static int make_dirs(const char *path) {
  char p[NODE_PATH_MAX];
  size_t len = strlen(path);
  if (len >= sizeof p) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(p, path, len + 1);
  for (char *s = p + 1; *s != '\0'; s++) {
    if (*s != '/' || s[-1] == '/')
      continue;
    *s = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
      return -1;
    *s = '/';
  }
  return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int open_data(struct node *n, char *errmsg) {
  struct stat st;
  if (stat(n->cfg.data, &st) != 0) {
    if (errno != ENOENT || make_dirs(n->cfg.data) != 0)
      return chorus_errf(errmsg, chorus_error_from_errno(errno),
                         "data folder %s: cannot create: %s", n->cfg.data,
                         strerror(errno));
  } else if (!S_ISDIR(st.st_mode)) {
    return chorus_errf(errmsg, CHORUS_EPERM, "data folder %s: not a directory",
                       n->cfg.data);
  }
  if (access(n->cfg.data, W_OK | X_OK) != 0)
    return chorus_errf(errmsg, CHORUS_EPERM, "data folder %s: not writable: %s",
                       n->cfg.data, strerror(errno));
  struct store_rocksdb_options o = {.path = n->cfg.data,
                                    .min_free_bytes =
                                        (uint64_t)n->cfg.min_free_mb << 20};
  char why[CHORUS_ERRMSG_SIZE] = "";
  int rc = store_rocksdb_open(&o, &n->store, why);
  if (rc == CHORUS_EBUSY)
    return chorus_errf(errmsg, rc,
                       "data folder %s is in use by another process: %s",
                       n->cfg.data, why);
  if (rc != CHORUS_OK)
    return chorus_errf(errmsg, rc, "data folder %s: %s", n->cfg.data, why);
  return check_identity(n, errmsg);
}

static int open_ports(struct node *n, char *errmsg) {
  struct sockaddr_storage sa;
  if (node__resolve(n->cfg.listen, &sa) != CHORUS_OK)
    return chorus_errf(errmsg, CHORUS_EINVAL, "--listen %s: cannot resolve",
                       n->cfg.listen);
  int rc = node__listen(n, (const struct sockaddr *)&sa);
  if (rc < 0)
    return chorus_errf(errmsg, rc == UV_EADDRINUSE ? CHORUS_EBUSY : CHORUS_EIO,
                       "listen on %s (tcp): %s", n->cfg.listen,
                       rc == UV_EADDRINUSE ? "port already in use"
                                           : uv_strerror(rc));
  rc = uv_udp_bind(&n->udp, (const struct sockaddr *)&sa, 0);
  if (rc == 0)
    rc = node__gossip_listen(n);
  if (rc < 0)
    return chorus_errf(errmsg, rc == UV_EADDRINUSE ? CHORUS_EBUSY : CHORUS_EIO,
                       "listen on %s (udp gossip): %s", n->cfg.listen,
                       rc == UV_EADDRINUSE ? "port already in use"
                                           : uv_strerror(rc));
  if (n->cfg.resp[0] != '\0') {
    if (node__resolve(n->cfg.resp, &sa) != CHORUS_OK)
      return chorus_errf(errmsg, CHORUS_EINVAL, "--resp %s: cannot resolve",
                         n->cfg.resp);
    rc = node__resp_listen(n, (const struct sockaddr *)&sa);
    if (rc < 0)
      return chorus_errf(
          errmsg, rc == UV_EADDRINUSE ? CHORUS_EBUSY : CHORUS_EIO,
          "listen on %s (resp): %s", n->cfg.resp,
          rc == UV_EADDRINUSE ? "port already in use" : uv_strerror(rc));
  }
  if (n->cfg.http[0] == '\0')
    return CHORUS_OK;
  if (node__resolve(n->cfg.http, &sa) != CHORUS_OK)
    return chorus_errf(errmsg, CHORUS_EINVAL, "--http %s: cannot resolve",
                       n->cfg.http);
  rc = node__http_listen(n, (const struct sockaddr *)&sa);
  if (rc < 0)
    return chorus_errf(errmsg, rc == UV_EADDRINUSE ? CHORUS_EBUSY : CHORUS_EIO,
                       "listen on %s (http): %s", n->cfg.http,
                       rc == UV_EADDRINUSE ? "port already in use"
                                           : uv_strerror(rc));
  return CHORUS_OK;
}

/* admin_password: the first admin's password (--admin-password-file, or
 * CHORUS_ADMIN_PASSWORD, which is then taken out of the environment) into
 * @out (@cap bytes); its length, or -1 with @errmsg. A file others may
 * read is refused, as a key file is. */
static int admin_password(const struct node *n, char *out, size_t cap,
                          char *errmsg) {
  const char *path = n->cfg.admin_password_file;
  if (path[0] == '\0') {
    const char *env = getenv("CHORUS_ADMIN_PASSWORD");
    if (env == NULL || env[0] == '\0' || strlen(env) >= cap) {
      chorus_errf(errmsg, CHORUS_EINVAL,
                  "--admin-user %s needs a password: --admin-password-file "
                  "FILE or CHORUS_ADMIN_PASSWORD (1..%zu bytes)",
                  n->cfg.admin_user, cap - 1);
      return -1;
    }
    size_t len = strlen(env);
    memcpy(out, env, len + 1);
    (void)unsetenv("CHORUS_ADMIN_PASSWORD");
    return (int)len;
  }
  struct stat st;
  FILE *f = NULL;
  if (stat(path, &st) != 0 || (f = fopen(path, "r")) == NULL) {
    chorus_errf(errmsg, CHORUS_EIO, "--admin-password-file %s: %s", path,
                strerror(errno));
    return -1;
  }
  if (st.st_mode & (S_IRGRP | S_IROTH | S_IWOTH | S_IWGRP)) {
    fclose(f);
    chorus_errf(errmsg, CHORUS_EPERM,
                "--admin-password-file %s: mode %03o lets others read or "
                "change it (chmod 600 %s)",
                path, (unsigned)(st.st_mode & 0777), path);
    return -1;
  }
  size_t len = fread(out, 1, cap - 1, f);
  fclose(f);
  while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r'))
    len--;
  out[len] = '\0';
  if (len == 0) {
    chorus_errf(errmsg, CHORUS_EINVAL, "--admin-password-file %s is empty",
                path);
    return -1;
  }
  return (int)len;
}

/* bootstrap_admin: the first admin's verifier (a fresh salt, the costs of
 * --admin-kdf or the defaults: Argon2id runs here, once, before the loop)
 * for the core. */
static int bootstrap_admin(const struct node *n, struct meta_user *u,
                           char *errmsg) {
  char pw[AUTH_PASSWORD_MAX + 1];
  int len = admin_password(n, pw, sizeof pw, errmsg);
  if (len < 0)
    return CHORUS_EINVAL;
  struct auth_kdf kdf = {
      .ops = n->cfg.admin_ops ? n->cfg.admin_ops : AUTH_OPS_DEFAULT,
      .mem_kib =
          n->cfg.admin_mem_kib ? n->cfg.admin_mem_kib : AUTH_MEM_KIB_DEFAULT};
  randombytes_buf(kdf.salt, sizeof kdf.salt);
  struct auth_verifier v;
  int rc = auth_verifier_make(pw, (size_t)len, &kdf, &v, errmsg);
  sodium_memzero(pw, sizeof pw);
  if (rc != CHORUS_OK)
    return rc;
  memset(u, 0, sizeof *u);
  snprintf(u->name, sizeof u->name, "%s", n->cfg.admin_user);
  memcpy(u->salt, v.kdf.salt, sizeof u->salt);
  u->ops = v.kdf.ops;
  u->mem_kib = v.kdf.mem_kib;
  memcpy(u->stored_key, v.stored_key, sizeof u->stored_key);
  memcpy(u->server_key, v.server_key, sizeof u->server_key);
  sodium_memzero(&v, sizeof v);
  char why[META_TEXT_MAX] = "";
  if (meta_user_check(u, why) != CHORUS_OK)
    return chorus_errf(errmsg, CHORUS_EINVAL, "--admin-user: %s", why);
  return CHORUS_OK;
}

/* open_core: the node core over this node's configuration. SWIM's nonces
 * and replication's PRNG are seeded from the OS: the logic never reads it
 * (DESIGN.md §3). */
static int open_core(struct node *n, char *errmsg) {
  const struct chorus_tracer *tracer =
      node_log_enabled(NODE_LOG_DEBUG) ? &node_log_tracer : NULL;
  struct core_config cc;
  memset(&cc, 0, sizeof cc);
  struct swim_config *sc = &cc.swim;
  sc->id = n->cfg.id;
  snprintf(sc->meta.addr, sizeof sc->meta.addr, "%s", n->cfg.advertise);
  snprintf(sc->meta.dc, sizeof sc->meta.dc, "%s", n->cfg.dc);
  snprintf(sc->meta.rack, sizeof sc->meta.rack, "%s", n->cfg.rack);
  sc->meta.vnodes = 0;
  sc->meta.ownership = RING_NORMAL;
  snprintf(sc->cluster, sizeof sc->cluster, "%s", n->cfg.cluster);
  memcpy(sc->key, n->cfg.key, SWIM_KEY_BYTES);
  if (n->cfg.profile_local)
    swim_timing_local(&sc->timing);
  else
    swim_timing_lan(&sc->timing);
  randombytes_buf(&sc->seed, sizeof sc->seed);
  sc->clock_bound_ms = 500;
  sc->tracer = tracer;
  repl_config_defaults(&cc.repl, n->cfg.id);
  snprintf(cc.repl.dc, sizeof cc.repl.dc, "%s", n->cfg.dc);
  randombytes_buf(&cc.repl.seed, sizeof cc.repl.seed);
  cc.repl.timeout_ms = n->cfg.timeout_ms;
  cc.repl.max_value_bytes = n->cfg.max_value_bytes;
  cc.repl.max_object_bytes = n->cfg.max_object_bytes;
  cc.repl.max_clock_ahead_ms = n->cfg.max_clock_ahead_ms;
  cc.repl.lock_skew_ms = n->cfg.lock_skew_ms;
  cc.repl.hint_max_bytes = n->cfg.hint_max_bytes;
  cc.repl.tracer = tracer;
  cc.repl.warn = &node_log_warn_tracer;
  cc.repl.slow_ms = n->cfg.slow_ms;
  /* One store write per loop iteration for the replica writes (on_check
   * calls core_flush first). */
  cc.repl.defer_replica_writes = true;
  cc.repl.tombstone_gc = n->cfg.tombstone_gc;
  cc.repl.tombstone_gc_timeout_ms = n->cfg.tombstone_gc_timeout_ms;
  cc.repl.hint_max_age_ms = n->cfg.hint_max_age_ms;
  cc.gc_interval_ms = n->cfg.gc_interval_ms;
  cc.replication = n->cfg.replication;
  cc.gossip = true;
  cc.metadata = true;
  struct meta_member *me = &cc.meta.self_member;
  me->id = n->cfg.id;
  snprintf(me->name, sizeof me->name, "%s", n->cfg.name);
  snprintf(me->addr, sizeof me->addr, "%s", n->cfg.advertise);
  snprintf(me->dc, sizeof me->dc, "%s", n->cfg.dc);
  snprintf(me->rack, sizeof me->rack, "%s", n->cfg.rack);
  me->vnodes = sc->meta.vnodes;
  me->state = META_NORMAL;
  cc.meta.cluster = XXH3_64bits(n->cfg.cluster, strlen(n->cfg.cluster));
  randombytes_buf(&cc.meta.seed, sizeof cc.meta.seed);
  cc.meta.tracer = &node_log_info_tracer;
  cc.stream_mbps = n->cfg.stream_mbps;
  cc.aae_interval_ms = n->cfg.aae_interval_ms;
  cc.tracer = tracer;
  if (n->cfg.admin_user[0] != '\0') {
    int rc = bootstrap_admin(n, &cc.bootstrap_admin, errmsg);
    if (rc != CHORUS_OK)
      return rc;
  }
  struct core_effects fx = {
      .ctx = n,
      .gossip = node__fx_gossip,
      .send = node__fx_send,
      .reply = node__fx_reply,
      .sync = node__fx_sync,
      .member = node__fx_member,
      .clock = node__fx_clock,
      .ring = node__fx_ring,
  };
  node__login_init(n);
  int rc = core_new(&cc, &fx, &n->core, errmsg);
  sodium_memzero(&cc.bootstrap_admin, sizeof cc.bootstrap_admin);
  return rc;
}

int node_open(const struct node_config *cfg, struct node **out, char *errmsg) {
  *out = NULL;
  if (sodium_init() < 0)
    return chorus_errf(errmsg, CHORUS_EINTERNAL, "libsodium failed to start");
  struct node *n = chorus_calloc(1, sizeof *n);
  if (n == NULL)
    return chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
  n->cfg = *cfg;
  n->on_frame = node__on_frame;
  n->on_conn_closed = node__on_conn_closed;
  n->on_http = node__http_on_read;
  n->on_resp = node__resp_on_read;
  *out = n;
  signal(SIGPIPE, SIG_IGN);
  ring_rcu_register_thread();
  uv_loop_init(&n->loop);
  node__loop_init(n);
  node__peers_init(n);
  node__accept_init(n);
  node__http_init(n);
  node__resp_init(n);
  uv_timer_init(&n->loop, &n->leave_timer);
  uv_signal_init(&n->loop, &n->sigint);
  uv_signal_init(&n->loop, &n->sigterm);
  uv_udp_init(&n->loop, &n->udp);
  n->udp.data = n->leave_timer.data = n;
  n->sigint.data = n->sigterm.data = n;
  int rc = node__tls_open(n, errmsg);
  if (rc == CHORUS_OK)
    rc = open_ports(n, errmsg);
  if (rc == CHORUS_OK)
    rc = open_data(n, errmsg);
  if (rc == CHORUS_OK)
    rc = open_core(n, errmsg);
  return rc;
}

/* on_loopback: whether HOST:PORT @addr names a loopback address, which
 * only this machine can reach. */
static bool on_loopback(const char *addr) {
  char host[SWIM_ADDR_MAX];
  int port;
  if (node_addr_split(addr, host, sizeof host, &port) != CHORUS_OK)
    return false;
  return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
         strcmp(host, "localhost") == 0;
}

/* warn_exposed: one loud line each (issue 24) when this node is reachable
 * from other machines with links anyone on the path can read or forge. */
static void warn_exposed(const struct node *n) {
  if (on_loopback(n->cfg.listen))
    return;
  /* One line for clients, naming what is missing: TLS, logins, or both. */
  bool no_tls = n->cfg.client_tls != NODE_TLS_REQUIRED;
  bool no_auth = !n->cfg.auth_required;
  if (no_tls || no_auth)
    node_log(NODE_LOG_WARN, NODE_MOD,
             "clients reach this node on %s, which is not loopback, %s%s%s: "
             "%s (%s; README, A secured cluster)",
             n->cfg.listen,
             !no_tls                             ? ""
             : n->cfg.client_tls == NODE_TLS_OFF ? "without TLS"
                                                 : "with TLS optional",
             no_tls && no_auth ? " and " : "",
             no_auth ? "without logins (--auth off)" : "",
             no_auth ? "whoever reaches the port reads and writes every key"
                     : "whoever is on the path reads their keys and values",
             no_tls && no_auth ? "--client-tls required, --auth required"
             : no_tls          ? "--client-tls required"
                               : "--auth required");
  if (n->cfg.peer_tls != NODE_TLS_REQUIRED)
    node_log(NODE_LOG_WARN, NODE_MOD,
             "peer links on %s are not encrypted (--peer-tls required): "
             "whoever is on the path reads the replicated data",
             n->cfg.listen);
}

int node_run(struct node *n) {
  uv_signal_start(&n->sigint, on_signal, SIGINT);
  uv_signal_start(&n->sigterm, on_signal, SIGTERM);
  if (n->cfg.key_derived)
    node_log(NODE_LOG_WARN, NODE_MOD,
             "no --cluster-key: the gossip key is derived from the cluster "
             "name, which anyone can guess");
  warn_exposed(n);
  node_log(NODE_LOG_INFO, NODE_MOD,
           "node %s (id %016" PRIx64 ") of cluster \"%s\" listening on %s "
           "(advertised %s), data %s, replicas %s, durability %s, profile %s",
           n->cfg.name, n->cfg.id, n->cfg.cluster, n->cfg.listen,
           n->cfg.advertise, n->cfg.data, n->cfg.replicas,
           n->cfg.durability == NODE_DURABILITY_GROUP ? "group" : "none",
           n->cfg.profile_local ? "local" : "lan");
  if (n->cfg.http[0] != '\0')
    node_log(NODE_LOG_INFO, NODE_MOD, "http on %s: /metrics, /health, /ready",
             n->cfg.http);
  if (n->cfg.resp[0] != '\0')
    node_log(NODE_LOG_INFO, NODE_MOD, "resp on %s: the Redis protocol",
             n->cfg.resp);
  const struct store_disk *disk = store_disk_info(n->store);
  if (disk->full)
    node_log(NODE_LOG_WARN, "store",
             "data folder %s below its reserve (%" PRIu64 " bytes free, "
             "--min-free-mb %" PRIu32 "): started %s; writes refused with "
             "ENOSPC until space returns, reads served",
             n->cfg.data, disk->avail, n->cfg.min_free_mb,
             disk->read_only ? "read-only" : "refusing writes");
  /* Boot writes the epoch (replication); on a full data folder it stays
   * in memory and the node coordinates no write until it is durable
   * (repl.h, A FULL DATA FOLDER). */
  int rc = core_start(n->core, n->store, node__now(n), node__wall_ms());
  if (rc != CHORUS_OK)
    node__fatal(rc, "start");
  /* Founders (docs/ARCHITECTURE.md, cluster metadata): a node started
   * without seeds founds a cluster of one; one whose advertised address
   * is among its seeds founds the cluster with the other seeds, as etcd's
   * initial-cluster; any other asks to join. A node with metadata on
   * disk keeps its own cluster whatever it is told. */
  const char *seeds[NODE_MAX_SEEDS];
  bool founder = n->cfg.nseeds == 0;
  for (size_t i = 0; i < n->cfg.nseeds; i++) {
    seeds[i] = n->cfg.seeds[i];
    founder = founder || strcmp(seeds[i], n->cfg.advertise) == 0;
  }
  if (founder) {
    rc = core_found(n->core, seeds, n->cfg.nseeds, node__now(n),
                    node__wall_ms());
    if (rc != CHORUS_OK)
      node__fatal(rc, "found the cluster's metadata");
  }
  rc = core_join(n->core, seeds, n->cfg.nseeds, node__now(n), node__wall_ms());
  if (rc != CHORUS_OK)
    node_log(NODE_LOG_WARN, "swim", "join: %s", chorus_strerror(rc));
  node__loop_start(n);
  node__accept_start(n);
  node__tls_start(n);
  uv_run(&n->loop, UV_RUN_DEFAULT);
  return n->exit_status;
}

void node_free(struct node *n) {
  if (n == NULL)
    return;
  if (!n->closing_all)
    close_all(n);
  uv_run(&n->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
  core_free(n->core);
  /* Barriers still pending complete with CHORUS_ECANCELED on close. */
  store_close(n->store);
  node__loop_fini(n);
  if (n->ring_pub.current)
    ring_rcu_fini(&n->ring_pub);
  ring_rcu_unregister_thread();
  uv_loop_close(&n->loop);
  node__peers_free(n);
  node__tls_free(n);
  chorus_free(n->slots);
  chorus_free(n->free_slots);
  chorus_free(n);
}
