/* chorus_cli_int.h: what the CLI's files share (chorus_cli.c parses the
 * command line and runs the key, status and ring commands;
 * chorus_cli_cluster.c the cluster commands: status, plans, changes and
 * their progress). */
#ifndef CHORUS_CLI_INT_H
#define CHORUS_CLI_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libchorus.h"

#define EXIT_USAGE 2

/* The parsed command line. */
struct cli {
  char *hosts; /* comma-separated, owned */
  const char *cluster;
  /* --tls-ca, --tls-cert, --tls-key, --tls-crl (or $CHORUS_TLS_CA, _CERT,
   * _KEY, _CRL) */
  const char *tls_ca, *tls_cert, *tls_key, *tls_crl;
  /* --user (or $CHORUS_USER) and its password ($CHORUS_PASSWORD or the
   * prompt; never argv), for a node with --auth required */
  const char *user;
  char password[1026];
  bool json;
  struct chorus_opts opts;
  const char *context_hex;
  const char *value_file;  /* --value-file */
  bool force;              /* --force */
  const char *with;        /* --with (cluster replace) */
  bool stage;              /* --stage: staged for cluster commit */
  bool wait;               /* --wait */
  unsigned wait_timeout;   /* --wait-timeout, seconds; 0: none */
  const char *dc, *rack;   /* --dc, --rack */
  uint32_t vnodes;         /* --vnodes */
  bool if_absent, serial;  /* --if-absent, --serial (CAS) */
  bool local_serial;       /* --local-serial (CAS: LOCAL_SERIAL) */
  const char *if_value;    /* --if-value OLD (CAS) */
  const char *if_match;    /* --if-match CTX (CAS; hex) */
  const char *fence;       /* --fence NAME:TOKEN (put) */
  const char *ttl_raw;     /* --ttl as given (lock: ms) */
  const char *ks_type;     /* --type (keyspace create) */
  const char *ks_replicas; /* --replicas (keyspace create, alter) */
  long ks_siblings_warn, ks_siblings_max; /* --siblings-warn, -max; -1 */
  const char *kdf;                        /* --kdf PASSES:KIB (user) */
  const char *key_file;                   /* --file F (cluster key install) */
  bool show_key;                          /* --show-key (cluster key install) */
  bool r_given, w_given;                  /* -r, -w or -c was given */
  bool range;                             /* --range given: */
  uint64_t range_first, range_last;       /* its tokens, inclusive */
  const char *argv[64]; /* positionals: command and its arguments */
  int argc;
};

/* cli_read_password: the environment variable @env_name (NULL: none),
 * else a line from the terminal (echo off, prompted "password for
 * @name") or from standard input; its length, or -1. */
long cli_read_password(const char *name, const char *env_name, char *buf,
                       size_t cap);

/* usage_error: prints "chorus: <message>" and the usage hint; returns
 * EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* need_args: whether the command has @lo..@hi positionals (usage_error's
 * code with @form otherwise, 0 when it does). */
int need_args(const struct cli *cl, int lo, int hi, const char *form);
/* client_failed: prints "chorus: <the client's message> (<code>)" for a
 * call on @c that returned @rc; returns 1, the CLI's error status. */
int client_failed(struct chorus_client *c, int rc);
/* json_cstr: @s as a JSON string. */
void json_cstr(const char *s);
/* or_dash: @s, or "-" when empty; widen: @w grown to fit or_dash(@s). */
const char *or_dash(const char *s);
int widen(int w, const char *s);

/* cmd_cluster: `chorus cluster ...` (chorus_cli_cluster.c). */
int cmd_cluster(struct chorus_client *c, const struct cli *cl);
/* cmd_cluster_key: `chorus cluster key ...` (chorus_cli_key.c). */
int cmd_cluster_key(struct chorus_client *c, const struct cli *cl);
/* cmd_lock: `chorus lock ...`; cmd_fenced_put: `chorus put KEY VALUE
 * --fence NAME:TOKEN` with the value read (chorus_cli_lock.c). */
int cmd_lock(struct chorus_client *c, const struct cli *cl);
int cmd_fenced_put(struct chorus_client *c, const struct cli *cl,
                   const uint8_t *val, size_t val_len);
/* cmd_keyspace: `chorus keyspace ...` (chorus_cli_keyspace.c). */
int cmd_keyspace(struct chorus_client *c, const struct cli *cl);
/* cmd_user: `chorus user ...` (chorus_cli_user.c). */
int cmd_user(struct chorus_client *c, const struct cli *cl);

#endif /* CHORUS_CLI_INT_H */
