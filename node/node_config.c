/* node_config.c: chorusd's flags and `key = value` config files. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>
#include <xxhash.h>

#include "node.h"
#include "repl.h"
#include "wire.h"

#define VERSION_TEXT "chorusd 0.1.0 (wire protocol 1..3)"

static const char usage_text[] =
    "usage: chorusd --id NAME --listen HOST:PORT --data DIR [options]\n"
    "\n"
    "  --id NAME              node name; the node id is xxh3-64(NAME)\n"
    "  --listen HOST:PORT     TCP for clients and peers, UDP gossip (same "
    "port)\n"
    "  --advertise HOST:PORT  address peers use (default: --listen)\n"
    "  --data DIR             data folder (created with its parents if\n"
    "                         missing)\n"
    "  --seeds H:P[,H:P...]   nodes to join through\n"
    "  --cluster NAME         cluster name (default \"chorus\")\n"
    "  --cluster-key FILE     64 hex chars (32 bytes) sealing gossip and\n"
    "                         peer handshakes; without it a key is derived\n"
    "                         from the cluster name (insecure, warned);\n"
    "                         refused when other users may read it\n"
    "  --dc NAME, --rack NAME placement labels (default \"dc1\", \"r1\")\n"
    "  --replicas SPEC        N, or dc1:3,dc2:2 (default 3)\n"
    "  --durability MODE      none | group (default group: ack after fsync)\n"
    "  --profile P            lan | local (SWIM timing; default lan)\n"
    "  --log-level L          error | warn | info | debug (default info)\n"
    "  --log-format F         text (default) | json: one object a line,\n"
    "                         {ts, level, module, node, msg}\n"
    "  --slow-ms MS           a read or write answered later than this is\n"
    "                         logged at warn with its timeline\n"
    "                         (default 1000; 0 off)\n"
    "  --timeout MS           default request timeout (default 2000)\n"
    "  --max-connections N    client sessions (default 1024); one more is\n"
    "                         answered EOVERLOAD; peers are never refused\n"
    "  --max-pending-handshakes N\n"
    "                         connections before HELLO (default\n"
    "                         max-connections / 4); one more closes the\n"
    "                         oldest\n"
    "  --handshake-ms MS      HELLO within this or closed (default 5000)\n"
    "  --idle-ms MS           a client with nothing in flight and no\n"
    "                         traffic this long is closed (default 300000;\n"
    "                         0 never)\n"
    "  --min-frame-rate B/S   a frame arriving slower than this, averaged\n"
    "                         from its first byte, closes its connection\n"
    "                         after a 3 s grace (default 16384; 0 off)\n"
    "  --max-inflight N       requests in flight per connection (default 256)\n"
    "  --max-frame BYTES      client frame limit (default 2097152)\n"
    "  --max-value-bytes N    largest PUT value or set member; more is\n"
    "                         refused with ETOOBIG (default 1048576)\n"
    "  --out-limit BYTES      unsent output per client before reading stops\n"
    "                         (default 1048576)\n"
    "  --max-object-bytes B   byte budget of one key's object, all siblings\n"
    "                         (65536..16515072, default 8388608): a write\n"
    "                         over it fails with ETOOBIG\n"
    "  --leave-ms MS          gossip time after leaving at shutdown (1000)\n"
    "  --stream-mbps N        topology changes: megabits per second this\n"
    "                         node pulls ranges at (400; 0: no limit)\n"
    "  --tombstone-gc MODE    repair (default: purge a tombstone once\n"
    "                         anti-entropy has shown every replica holds\n"
    "                         it) | timeout=SECONDS (purge after that,\n"
    "                         repaired or not: a replica that missed the\n"
    "                         delete for longer brings the value back) |\n"
    "                         off\n"
    "  --gc-interval-ms MS    walk the tombstone queue this often (10000)\n"
    "  --hint-max-age-ms MS   drop hints older than this (10800000, 3 h)\n"
    "  --aae-interval-ms MS   anti-entropy: an exchange of hash trees with\n"
    "                         the next replica in turn this often (60000;\n"
    "                         0: only on `chorus repair now`)\n"
    "  --hint-max-bytes B     hints kept per down replica (67108864); more\n"
    "                         are dropped, logged, left to anti-entropy\n"
    "  --min-free-mb MB       refuse writes while the data folder's file\n"
    "                         system has less free (default 256; 0: only\n"
    "                         when it is full); ENOSPC to clients\n";
/* Two strings: C11 compilers need only take 4095 bytes in one literal. */
static const char usage_text2[] =
    "  --lock-skew-ms MS      a lock's lease is taken from its holder only\n"
    "                         this long after it expired on the\n"
    "                         coordinator's clock (default 500)\n"
    "  --max-clock-ahead-ms MS an LWW register write stamped more than this\n"
    "                         ahead of this node's clock is refused with\n"
    "                         ECLOCK (1..86400000, default 5000)\n"
    "  --http HOST:PORT       serve the web console (/), /metrics\n"
    "                         (Prometheus), /health and /ready over HTTP\n"
    "                         there (default: off)\n"
    "  --http-max-connections N\n"
    "                         HTTP connections at once; one more is closed\n"
    "                         at once (default 16)\n"
    "  --http-timeout-ms MS   an HTTP request must arrive within this, or\n"
    "                         its connection is closed (default 5000)\n"
    "  --resp HOST:PORT       serve the Redis protocol (RESP2/3) there: GET,\n"
    "                         SET, INCR, SADD... (docs/RESP.md; default off)\n"
    "  --tls-cert FILE        PEM certificate chain of this node (TLS 1.3;\n"
    "                         re-read with --tls-key and --tls-ca on SIGHUP)\n"
    "  --tls-key FILE         its PEM private key (not world-readable)\n"
    "  --tls-ca FILE          PEM CA that signs peers' and clients'\n"
    "                         certificates\n"
    "  --tls-crl FILE         PEM CRL(s) of that CA: revoked peers' and\n"
    "                         clients' certificates are refused (re-read\n"
    "                         on SIGHUP)\n"
    "  --client-tls MODE      off, optional (TLS and plaintext clients on\n"
    "                         one port) or required (default off)\n"
    "  --peer-tls MODE        off or required: peer links with mutual TLS\n"
    "                         over --tls-ca (default off)\n"
    "  --auth MODE            off (default) or required: clients log in\n"
    "                         (a user and password, SCRAM with Argon2id)\n"
    "                         and each request is checked against the\n"
    "                         user's roles\n"
    "  --admin-user NAME      the first admin, created with admin on every\n"
    "                         keyspace when the cluster has no users; its\n"
    "                         password from --admin-password-file FILE or\n"
    "                         the environment variable CHORUS_ADMIN_PASSWORD\n"
    "  --admin-kdf PASSES:KIB the first admin's Argon2id cost (default\n"
    "                         2:65536; each client pays it once)\n"
    "  --config FILE          `key = value` lines with the same keys\n"
    "  --help, --version\n";

static int set_str(char *dst, size_t cap, const char *v, const char *key,
                   char *errmsg) {
  size_t len = strlen(v);
  if (len == 0 || len >= cap)
    return chorus_errf(errmsg, CHORUS_EINVAL, "--%s: must be 1..%zu bytes", key,
                       cap - 1);
  memcpy(dst, v, len + 1);
  return CHORUS_OK;
}

static int set_u32(uint32_t *dst, const char *v, uint32_t lo, uint32_t hi,
                   const char *key, char *errmsg) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi || v[0] == '-')
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "--%s: \"%s\" is not a number in %u..%u", key, v, lo,
                       hi);
  *dst = (uint32_t)x;
  return CHORUS_OK;
}

int node_addr_split(const char *addr, char *host, size_t cap, int *port) {
  const char *colon;
  const char *h = addr;
  size_t hlen;
  if (addr[0] == '[') {
    const char *close = strchr(addr, ']');
    if (close == NULL || close[1] != ':')
      return CHORUS_EINVAL;
    h = addr + 1;
    hlen = (size_t)(close - h);
    colon = close + 1;
  } else {
    colon = strrchr(addr, ':');
    if (colon == NULL)
      return CHORUS_EINVAL;
    hlen = (size_t)(colon - addr);
  }
  if (hlen == 0 || hlen >= cap)
    return CHORUS_EINVAL;
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || p < 1 || p > 65535)
    return CHORUS_EINVAL;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (int)p;
  return CHORUS_OK;
}

static int check_addr(const char *v, const char *key, char *errmsg) {
  char host[SWIM_ADDR_MAX];
  int port;
  if (node_addr_split(v, host, sizeof host, &port) != CHORUS_OK)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "--%s: \"%s\" is not HOST:PORT (port 1..65535)", key, v);
  return CHORUS_OK;
}

/* A key file holds 64 hex digits (32 bytes), surrounding whitespace
 * allowed. Other users may neither read nor change it (issue 24: whoever
 * reads it can join the cluster and forge its gossip), as ssh insists for
 * a private key; its group may read it (a service group), not write it. */
static int load_key(const char *path, uint8_t key[SWIM_KEY_BYTES],
                    char *errmsg) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return chorus_errf(errmsg, CHORUS_EIO, "--cluster-key %s: %s", path,
                       strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    int e = errno;
    fclose(f);
    return chorus_errf(errmsg, CHORUS_EIO, "--cluster-key %s: %s", path,
                       strerror(e));
  }
  if (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) {
    fclose(f);
    return chorus_errf(errmsg, CHORUS_EPERM,
                       "--cluster-key %s: mode %04o lets other users %s it; "
                       "chmod 600 %s",
                       path, (unsigned)(st.st_mode & 07777),
                       st.st_mode & S_IROTH ? "read" : "change", path);
  }
  char buf[256];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = buf;
  while (isspace((unsigned char)*p))
    p++;
  size_t len = 0;
  while (isxdigit((unsigned char)p[len]))
    len++;
  char *rest = p + len;
  while (isspace((unsigned char)*rest))
    rest++;
  size_t bin_len = 0;
  if (len != 2 * SWIM_KEY_BYTES || *rest ||
      sodium_hex2bin(key, SWIM_KEY_BYTES, p, len, NULL, &bin_len, NULL) != 0 ||
      bin_len != SWIM_KEY_BYTES)
    return chorus_errf(errmsg, CHORUS_EMALFORMED,
                       "--cluster-key %s: expected 64 hex digits (32 bytes)",
                       path);
  return CHORUS_OK;
}

static int parse_file(const char *path, struct node_config *cfg, int depth,
                      char *errmsg);

/* apply: one `key value` setting, from a flag or a config file line. */
static int apply(struct node_config *cfg, const char *key, const char *v,
                 int depth, char *errmsg) {
  if (strcmp(key, "id") == 0)
    return set_str(cfg->name, sizeof cfg->name, v, key, errmsg);
  if (strcmp(key, "listen") == 0 || strcmp(key, "advertise") == 0) {
    int rc = check_addr(v, key, errmsg);
    if (rc)
      return rc;
    char *dst = key[0] == 'l' ? cfg->listen : cfg->advertise;
    return set_str(dst, SWIM_ADDR_MAX, v, key, errmsg);
  }
  if (strcmp(key, "data") == 0)
    return set_str(cfg->data, sizeof cfg->data, v, key, errmsg);
  if (strcmp(key, "seeds") == 0) {
    cfg->nseeds = 0;
    const char *p = v;
    while (*p) {
      const char *comma = strchr(p, ',');
      size_t len = comma ? (size_t)(comma - p) : strlen(p);
      while (len && isspace((unsigned char)*p)) {
        p++;
        len--;
      }
      while (len && isspace((unsigned char)p[len - 1]))
        len--;
      if (len) {
        if (cfg->nseeds == NODE_MAX_SEEDS || len >= SWIM_ADDR_MAX)
          return chorus_errf(errmsg, CHORUS_EINVAL,
                             "--seeds: at most %u seeds of < %u bytes",
                             NODE_MAX_SEEDS, SWIM_ADDR_MAX);
        char *dst = cfg->seeds[cfg->nseeds++];
        memcpy(dst, p, len);
        dst[len] = '\0';
        int rc = check_addr(dst, key, errmsg);
        if (rc)
          return rc;
      }
      if (!comma)
        break;
      p = comma + 1;
    }
    return CHORUS_OK;
  }
  if (strcmp(key, "cluster") == 0)
    return set_str(cfg->cluster, sizeof cfg->cluster, v, key, errmsg);
  if (strcmp(key, "cluster-key") == 0) {
    cfg->key_derived = false;
    return load_key(v, cfg->key, errmsg);
  }
  if (strcmp(key, "dc") == 0)
    return set_str(cfg->dc, sizeof cfg->dc, v, key, errmsg);
  if (strcmp(key, "rack") == 0)
    return set_str(cfg->rack, sizeof cfg->rack, v, key, errmsg);
  if (strcmp(key, "replicas") == 0) {
    char why[CHORUS_ERRMSG_SIZE] = "";
    if (ring_replication_parse(v, &cfg->replication, why) != CHORUS_OK)
      return chorus_errf(errmsg, CHORUS_EINVAL, "--replicas: %s", why);
    return set_str(cfg->replicas, sizeof cfg->replicas, v, key, errmsg);
  }
  if (strcmp(key, "durability") == 0) {
    if (strcmp(v, "none") == 0)
      cfg->durability = NODE_DURABILITY_NONE;
    else if (strcmp(v, "group") == 0)
      cfg->durability = NODE_DURABILITY_GROUP;
    else
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "--durability: \"%s\" is not none or group", v);
    return CHORUS_OK;
  }
  if (strcmp(key, "profile") == 0) {
    if (strcmp(v, "lan") == 0)
      cfg->profile_local = false;
    else if (strcmp(v, "local") == 0)
      cfg->profile_local = true;
    else
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "--profile: \"%s\" is not lan or local", v);
    return CHORUS_OK;
  }
  if (strcmp(key, "log-level") == 0) {
    if (node_log_level_parse(v, &cfg->log_level) != CHORUS_OK)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "--log-level: \"%s\" is not error, warn, info or "
                         "debug",
                         v);
    return CHORUS_OK;
  }
  if (strcmp(key, "log-format") == 0) {
    if (node_log_format_parse(v, &cfg->log_format) != CHORUS_OK)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "--log-format: \"%s\" is not text or json", v);
    return CHORUS_OK;
  }
  if (strcmp(key, "slow-ms") == 0)
    return set_u32(&cfg->slow_ms, v, 0, 86400000, key, errmsg);
  if (strcmp(key, "timeout") == 0)
    return set_u32(&cfg->timeout_ms, v, 1, 86400000, key, errmsg);
  if (strcmp(key, "max-connections") == 0)
    return set_u32(&cfg->max_connections, v, 1, 1000000, key, errmsg);
  if (strcmp(key, "max-pending-handshakes") == 0)
    return set_u32(&cfg->max_pending, v, 1, 1000000, key, errmsg);
  if (strcmp(key, "http") == 0) {
    int rc = check_addr(v, key, errmsg);
    return rc ? rc : set_str(cfg->http, sizeof cfg->http, v, key, errmsg);
  }
  if (strcmp(key, "resp") == 0) {
    int rc = check_addr(v, key, errmsg);
    return rc ? rc : set_str(cfg->resp, sizeof cfg->resp, v, key, errmsg);
  }
  if (strcmp(key, "http-max-connections") == 0)
    return set_u32(&cfg->http_max_connections, v, 1, 65536, key, errmsg);
  if (strcmp(key, "http-timeout-ms") == 0)
    return set_u32(&cfg->http_timeout_ms, v, 100, 3600000, key, errmsg);
  if (strcmp(key, "handshake-ms") == 0)
    return set_u32(&cfg->handshake_ms, v, 10, 3600000, key, errmsg);
  if (strcmp(key, "idle-ms") == 0)
    return set_u32(&cfg->idle_ms, v, 0, 86400000, key, errmsg);
  if (strcmp(key, "min-frame-rate") == 0)
    return set_u32(&cfg->min_frame_rate, v, 0, 1u << 30, key, errmsg);
  if (strcmp(key, "max-inflight") == 0)
    return set_u32(&cfg->max_inflight, v, 1, 1000000, key, errmsg);
  if (strcmp(key, "max-frame") == 0)
    return set_u32(&cfg->max_frame, v, 64, WIRE_MAX_FRAME_HARD, key, errmsg);
  if (strcmp(key, "max-value-bytes") == 0)
    return set_u32(&cfg->max_value_bytes, v, 1, WIRE_MAX_FRAME_HARD, key,
                   errmsg);
  if (strcmp(key, "out-limit") == 0)
    return set_u32(&cfg->out_limit, v, 4096, 1u << 30, key, errmsg);
  if (strcmp(key, "max-clock-ahead-ms") == 0)
    return set_u32(&cfg->max_clock_ahead_ms, v, 1, 86400000, key, errmsg);
  if (strcmp(key, "lock-skew-ms") == 0)
    return set_u32(&cfg->lock_skew_ms, v, 0, 3600000, key, errmsg);
  if (strcmp(key, "max-object-bytes") == 0)
    /* Below the peer frame with room for a key and headers (repl.h). */
    return set_u32(&cfg->max_object_bytes, v, 64u * 1024, REPL_MAX_OBJECT_LIMIT,
                   key, errmsg);
  if (strcmp(key, "leave-ms") == 0) {
    uint32_t ms;
    int rc = set_u32(&ms, v, 0, 60000, key, errmsg);
    cfg->leave_ms = ms;
    return rc;
  }
  if (strcmp(key, "stream-mbps") == 0)
    return set_u32(&cfg->stream_mbps, v, 0, 1000000, key, errmsg);
  if (strcmp(key, "tombstone-gc") == 0) {
    uint32_t secs;
    if (strcmp(v, "repair") == 0) {
      cfg->tombstone_gc = REPL_GC_REPAIR;
    } else if (strcmp(v, "off") == 0) {
      cfg->tombstone_gc = REPL_GC_OFF;
    } else if (strncmp(v, "timeout=", 8) == 0 &&
               set_u32(&secs, v + 8, 0, 10u * 365 * 86400, key, errmsg) ==
                   CHORUS_OK) {
      cfg->tombstone_gc = REPL_GC_TIMEOUT;
      cfg->tombstone_gc_timeout_ms = (chorus_ms)secs * 1000;
    } else {
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "--tombstone-gc: \"%s\" is not repair, "
                         "timeout=SECONDS (0..315360000) or off",
                         v);
    }
    return CHORUS_OK;
  }
  if (strcmp(key, "gc-interval-ms") == 0)
    return set_u32(&cfg->gc_interval_ms, v, 10, 86400000, key, errmsg);
  if (strcmp(key, "hint-max-age-ms") == 0) {
    uint32_t ms;
    int rc = set_u32(&ms, v, 1000, 7u * 86400 * 1000, key, errmsg);
    cfg->hint_max_age_ms = ms;
    return rc;
  }
  if (strcmp(key, "aae-interval-ms") == 0)
    return set_u32(&cfg->aae_interval_ms, v, 0, 86400000, key, errmsg);
  if (strcmp(key, "hint-max-bytes") == 0) {
    uint32_t b;
    int rc = set_u32(&b, v, 1, UINT32_MAX, key, errmsg);
    cfg->hint_max_bytes = b;
    return rc;
  }
  if (strcmp(key, "min-free-mb") == 0)
    return set_u32(&cfg->min_free_mb, v, 0, 1u << 24, key, errmsg);
  if (strcmp(key, "tls-cert") == 0)
    return set_str(cfg->tls_cert, sizeof cfg->tls_cert, v, key, errmsg);
  if (strcmp(key, "tls-key") == 0)
    return set_str(cfg->tls_key, sizeof cfg->tls_key, v, key, errmsg);
  if (strcmp(key, "tls-ca") == 0)
    return set_str(cfg->tls_ca, sizeof cfg->tls_ca, v, key, errmsg);
  if (strcmp(key, "tls-crl") == 0)
    return set_str(cfg->tls_crl, sizeof cfg->tls_crl, v, key, errmsg);
  if (strcmp(key, "client-tls") == 0 || strcmp(key, "peer-tls") == 0) {
    bool peer = key[0] == 'p';
    enum node_tls_mode *dst = peer ? &cfg->peer_tls : &cfg->client_tls;
    if (strcmp(v, "off") == 0)
      *dst = NODE_TLS_OFF;
    else if (strcmp(v, "optional") == 0 && !peer)
      *dst = NODE_TLS_OPTIONAL;
    else if (strcmp(v, "required") == 0)
      *dst = NODE_TLS_REQUIRED;
    else
      return chorus_errf(
          errmsg, CHORUS_EINVAL, "--%s: \"%s\" is not %s", key, v,
          peer ? "off or required" : "off, optional or required");
    return CHORUS_OK;
  }
  if (strcmp(key, "auth") == 0) {
    if (strcmp(v, "off") == 0 || strcmp(v, "required") == 0) {
      cfg->auth_required = v[0] == 'r';
      return CHORUS_OK;
    }
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "--auth: \"%s\" is not off or required", v);
  }
  if (strcmp(key, "admin-user") == 0)
    return set_str(cfg->admin_user, sizeof cfg->admin_user, v, key, errmsg);
  if (strcmp(key, "admin-kdf") == 0) {
    char *end;
    unsigned long ops = strtoul(v, &end, 10);
    unsigned long kib = *end == ':' ? strtoul(end + 1, &end, 10) : 0;
    if (*end != '\0' || ops < 1 || ops > 10 || kib < 8 || kib > 262144)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "--admin-kdf: \"%s\" is not PASSES:KIB (1..10, "
                         "8..262144)",
                         v);
    cfg->admin_ops = (uint32_t)ops;
    cfg->admin_mem_kib = (uint32_t)kib;
    return CHORUS_OK;
  }
  if (strcmp(key, "admin-password-file") == 0)
    return set_str(cfg->admin_password_file, sizeof cfg->admin_password_file, v,
                   key, errmsg);
  if (strcmp(key, "config") == 0)
    return parse_file(v, cfg, depth + 1, errmsg);
  return chorus_errf(errmsg, CHORUS_EINVAL, "unknown option --%s (try --help)",
                     key);
}

static int parse_file(const char *path, struct node_config *cfg, int depth,
                      char *errmsg) {
  if (depth > 4)
    return chorus_errf(errmsg, CHORUS_EINVAL, "--config: nested too deep");
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return chorus_errf(errmsg, CHORUS_EIO, "--config %s: %s", path,
                       strerror(errno));
  char line[2048];
  int lineno = 0, rc = CHORUS_OK;
  while (rc == CHORUS_OK && fgets(line, sizeof line, f)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash)
      *hash = '\0';
    char *p = line;
    while (isspace((unsigned char)*p))
      p++;
    if (*p == '\0')
      continue;
    char *eq = strchr(p, '=');
    if (eq == NULL) {
      rc = chorus_errf(errmsg, CHORUS_EINVAL,
                       "--config %s:%d: expected key = value", path, lineno);
      break;
    }
    char *kend = eq;
    while (kend > p && isspace((unsigned char)kend[-1]))
      kend--;
    *kend = '\0';
    char *v = eq + 1;
    while (isspace((unsigned char)*v))
      v++;
    size_t vl = strlen(v);
    while (vl && isspace((unsigned char)v[vl - 1]))
      v[--vl] = '\0';
    rc = apply(cfg, p, v, depth, errmsg);
    if (rc)
      chorus_errwrap(errmsg, rc, "--config %s:%d", path, lineno);
  }
  fclose(f);
  return rc;
}

static void defaults(struct node_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->cluster, sizeof cfg->cluster, "chorus");
  snprintf(cfg->dc, sizeof cfg->dc, "dc1");
  snprintf(cfg->rack, sizeof cfg->rack, "r1");
  snprintf(cfg->replicas, sizeof cfg->replicas, "3");
  (void)ring_replication_parse("3", &cfg->replication, NULL);
  cfg->key_derived = true;
  cfg->durability = NODE_DURABILITY_GROUP;
  cfg->log_level = NODE_LOG_INFO;
  cfg->log_format = NODE_LOG_TEXT;
  /* Above any healthy request (a QUORUM round trip is a millisecond on a
   * LAN; an fsync tens at worst), below the default 2000 ms timeout, so a
   * request that nearly timed out is explained before it does. */
  cfg->slow_ms = 1000;
  cfg->max_connections = 1024;
  cfg->max_pending = 0; /* max_connections / 4, once it is known */
  cfg->handshake_ms = 5000;
  cfg->http_max_connections = 16;
  cfg->http_timeout_ms = 5000;
  cfg->idle_ms = 300000;
  cfg->min_frame_rate = 16u * 1024;
  cfg->max_inflight = 256;
  cfg->max_frame = WIRE_MAX_FRAME_CLIENT;
  cfg->max_value_bytes = WIRE_MAX_VALUE;
  cfg->max_clock_ahead_ms = REPL_MAX_CLOCK_AHEAD_DEFAULT;
  cfg->lock_skew_ms = REPL_LOCK_SKEW_DEFAULT;
  cfg->out_limit = 1u << 20;
  cfg->peer_out_limit = 64u << 20;
  cfg->max_object_bytes = REPL_MAX_OBJECT_DEFAULT;
  cfg->timeout_ms = 2000;
  cfg->leave_ms = 1000;
  cfg->stream_mbps = 400;
  cfg->tombstone_gc = REPL_GC_REPAIR;
  cfg->gc_interval_ms = 10000;
  cfg->hint_max_age_ms = 3ull * 3600 * 1000;
  cfg->aae_interval_ms = 60000;
  cfg->hint_max_bytes = 64ull << 20;
  /* What RocksDB needs to finish what it holds once writes stop, which
   * depends on its buffers, not on the disk's size (so no percentage):
   * table files for a full data memtable and the one behind it (2 x 64
   * MiB) and the hints and meta ones, written before the WAL they replace
   * goes; plus the writes of the up to one second between two checks (the
   * WAL at ~50 MiB/s, a loaded node's rate). docs/ARCHITECTURE.md, node. */
  cfg->min_free_mb = 256;
}

int node_config_parse(int argc, char **argv, struct node_config *cfg,
                      bool *exit_now, char *errmsg) {
  defaults(cfg);
  *exit_now = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage_text, stdout);
      fputs(usage_text2, stdout);
      *exit_now = true;
      return CHORUS_OK;
    }
    if (strcmp(a, "--version") == 0) {
      puts(VERSION_TEXT);
      *exit_now = true;
      return CHORUS_OK;
    }
    if (strncmp(a, "--", 2) != 0)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "unexpected argument \"%s\" (try --help)", a);
    char key[64];
    const char *v;
    const char *eq = strchr(a + 2, '=');
    size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    if (klen == 0 || klen >= sizeof key)
      return chorus_errf(errmsg, CHORUS_EINVAL, "bad option \"%s\"", a);
    memcpy(key, a + 2, klen);
    key[klen] = '\0';
    if (eq) {
      v = eq + 1;
    } else {
      if (i + 1 >= argc)
        return chorus_errf(errmsg, CHORUS_EINVAL, "--%s needs a value", key);
      v = argv[++i];
    }
    int rc = apply(cfg, key, v, 0, errmsg);
    if (rc)
      return rc;
  }
  if (cfg->name[0] == '\0' || cfg->listen[0] == '\0' || cfg->data[0] == '\0')
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "--id, --listen and --data are required (try --help)");
  if (cfg->advertise[0] == '\0') {
    /* A wildcard listen address is no address for peers to dial. */
    char host[SWIM_ADDR_MAX];
    int port;
    (void)node_addr_split(cfg->listen, host, sizeof host, &port);
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
      snprintf(cfg->advertise, sizeof cfg->advertise, "127.0.0.1:%d", port);
    else
      memcpy(cfg->advertise, cfg->listen, sizeof cfg->advertise);
  }
  if (cfg->max_pending == 0)
    cfg->max_pending = cfg->max_connections >= 4 ? cfg->max_connections / 4 : 1;
  bool tls_on =
      cfg->client_tls != NODE_TLS_OFF || cfg->peer_tls != NODE_TLS_OFF;
  if (tls_on && (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0'))
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "--client-tls/--peer-tls need --tls-cert and --tls-key");
  if (cfg->peer_tls != NODE_TLS_OFF && cfg->tls_ca[0] == '\0')
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "--peer-tls required needs --tls-ca (the cluster CA "
                       "that signs every node's certificate)");
  if (cfg->tls_crl[0] != '\0' && cfg->tls_ca[0] == '\0')
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "--tls-crl needs --tls-ca (the CA whose revocations "
                       "it lists)");
  if (cfg->admin_password_file[0] != '\0' && cfg->admin_user[0] == '\0')
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "--admin-password-file needs --admin-user");
  if (cfg->auth_required && (cfg->resp[0] != '\0'))
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "--auth required: the RESP gateway has no login yet; "
                       "start it without --resp (docs/RESP.md)");
  cfg->id = XXH3_64bits(cfg->name, strlen(cfg->name));
  if (cfg->key_derived) {
    /* Anyone who knows the cluster name knows this key: fine for a laptop,
     * never for a network (logged as a warning at start). */
    static const char tag[] = "chorus cluster key v1:";
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, SWIM_KEY_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)tag, sizeof tag - 1);
    crypto_generichash_update(&st, (const unsigned char *)cfg->cluster,
                              strlen(cfg->cluster));
    crypto_generichash_final(&st, cfg->key, SWIM_KEY_BYTES);
  }
  return CHORUS_OK;
}
