/* chorus_cli.c: `chorus`, the command-line client: one command per run over
 * the synchronous libchorus API, text or JSON output, exit 0/1/2.
 *
 * Contexts are printed and read as lowercase hexadecimal (the context is
 * opaque binary; hex survives shells and copy-paste untouched). In text
 * mode values and members are printed raw, one per line; use --json for
 * values that may hold newlines or binary bytes.
 *
 * A value (or one set member) may come from a file (--value-file FILE) or
 * from standard input ("-" in its place): one argument of the command line
 * holds at most 128 KiB on Linux (MAX_ARG_STRLEN), a value up to 1 MiB.
 *
 * Nodes are shown by name (chorusd --id; "-" from a node older than
 * protocol version 3) beside their 16-hex-digit id; --json has both.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chorus_alloc.h"
#include "chorus_cli_int.h"
#include "libchorus.h"

/* scripts/start's three nodes, tried in order */
#define DEFAULT_HOST "127.0.0.1:7401,127.0.0.1:7402,127.0.0.1:7403"

static const char usage_text[] =
    "usage: chorus [-H HOST:PORT] [--cluster NAME] [--json] COMMAND ...\n"
    "\n"
    "commands:\n"
    "  put KEY VALUE [--context CTX] [-w N | -c LEVEL] [--ttl SECONDS]\n"
    "  put KEY - | put KEY --value-file FILE\n"
    "                                the value from standard input or a file\n"
    "                                (any bytes, up to 1 MiB)\n"
    "  get KEY [-r N | -c LEVEL]     siblings, one per line, then the "
    "context;\n"
    "                                a counter's value; a set's members;\n"
    "                                a register's value and stamp\n"
    "  del KEY [--context CTX] [-w N | -c LEVEL]\n"
    "                                without --context: reads the key first\n"
    "                                and deletes the siblings it saw\n"
    "  incr KEY [DELTA]              add DELTA (default 1) to a counter\n"
    "  sadd KEY MEMBER...            add members to a set (a MEMBER \"-\" is\n"
    "                                read from standard input; --value-file\n"
    "                                FILE adds one more, up to 64 KiB each)\n"
    "  srem KEY MEMBER... [--context CTX]\n"
    "                                remove members from a set (same forms):\n"
    "                                with CTX from smembers, only the adds\n"
    "                                that read saw (a concurrent add stays)\n"
    "  smembers KEY                  the members of a set, then the context\n"
    "  lww set KEY VALUE             write an LWW register (VALUE \"-\" or\n"
    "                                --value-file FILE: from stdin or a\n"
    "                                file): the write with the latest\n"
    "                                (HLC time, node id) wins everywhere\n"
    "  lww get KEY                   its value, then \"written: MS.LOGICAL by\n"
    "                                NODE\", the winning write's stamp\n"
    "  lww del KEY                   write \"no value\" the same way\n"
    "  map update KEY OP... [--context CTX]\n"
    "                                update a map, OPs applied in order:\n"
    "                                PATH:register:set:VALUE,\n"
    "                                PATH:counter:+N (or -N),\n"
    "                                PATH:set:add:X, PATH:set:remove:X,\n"
    "                                PATH:flag:enable (or disable),\n"
    "                                -PATH:TYPE or PATH:TYPE:remove (the\n"
    "                                field); PATH is NAME or MAP.NAME (maps\n"
    "                                3 deep); removes without --context\n"
    "                                read first and remove what was seen\n"
    "  map get KEY                   NAME:TYPE = VALUE per field (nested\n"
    "                                fields indented), then the context\n"
    "  put KEY VALUE --if-absent     compare-and-set (linearizable, Paxos):\n"
    "  put KEY VALUE --if-value OLD  exit 0 applied, 1 not applied (the\n"
    "  put KEY VALUE --if-match CTX  current value printed), 2 error; each\n"
    "  del KEY --if-value OLD        answer ends with \"context: CTX\", the\n"
    "  del KEY --if-match CTX        version of the value (--if-match: only\n"
    "  get KEY --serial              if still that version); a CAS key\n"
    "                                takes CAS commands only;\n"
    "                                --local-serial: Paxos among the client's\n"
    "                                (--dc) or the node's datacenter only\n"
    "  status                        every member: name, state, address, dc,\n"
    "                                rack, incarnation, clock offset, hints\n"
    "  repair status [--range R]     this node's anti-entropy: totals; per\n"
    "                                peer and per token range it replicates\n"
    "                                the last completed exchange, "
    "differences,\n"
    "                                keys repaired, bytes; whether repaired\n"
    "  repair now [--range R]        an exchange as soon as possible (with\n"
    "                                --range: with each other replica of the\n"
    "                                node's ranges overlapping R)\n"
    "  ring                          each node's share of the token space and\n"
    "                                the replication settings\n"
    "";

/* Locks and fenced writes, a string of their own (C99's 4,095 bytes). */
static const char usage_lock[] =
    "  put KEY VALUE --fence NAME:TOKEN\n"
    "                                a fenced write: applied only if TOKEN\n"
    "                                is at least the highest the key has\n"
    "                                seen for lock NAME (exit 1 otherwise)\n"
    "  lock acquire NAME --ttl MS [--wait MS]\n"
    "                                prints a fencing token (exit 1: held);\n"
    "                                --wait retries until MS have passed\n"
    "  lock renew NAME TOKEN --ttl MS  extend the lease\n"
    "  lock release NAME TOKEN       free it (the token is never reused)\n"
    "  lock status NAME              holder, token, lease left\n"
    "";

/* The cluster commands, a string of their own (C99 promises 4,095
 * bytes). */
static const char usage_cluster[] =
    "  cluster status                the cluster metadata: the Raft leader,\n"
    "                                term, commit index, epoch; every "
    "member's\n"
    "                                state, Raft role, liveness, ring share\n"
    "  cluster decommission NAME [--force]  a live member hands its ranges\n"
    "                                over, then leaves (--force: even below\n"
    "                                the replication factor)\n"
    "  cluster remove NAME [--force] take a member out of the cluster (a live\n"
    "                                one only with --force); prints the "
    "status\n"
    "                                after the change\n"
    "  cluster decommission|remove|replace ... --stage\n"
    "                                stage the change instead (Riak's plan\n"
    "                                and commit): `cluster plan` shows it,\n"
    "  cluster commit                applies the staged change\n"
    "  cluster clear                 drops it\n"
    "  cluster replace DEAD --with NEW [--wait]\n"
    "                                NEW (started with --seeds) takes the "
    "dead\n"
    "                                member's place: one change, its ranges\n"
    "                                streamed from the other replicas\n"
    "  cluster join NAME             NAME (a node started with --seeds) is\n"
    "                                joining or normal; with --wait, follow\n"
    "                                its streams until it is normal\n"
    "  cluster wait                  follow the change under way to its end\n"
    "  cluster plan join NAME [--dc DC] [--rack RACK] [--vnodes N]\n"
    "  cluster plan decommission NAME | cluster plan remove NAME\n"
    "  cluster plan                  a dry run: the ranges that would move,\n"
    "                                from -> to, with estimated keys and "
    "bytes\n"
    "                                (no argument: the change under way)\n"
    "  cluster key list              the gossip keyring: ids, the primary\n"
    "  cluster key install [--file F] [--show-key]  a key (F: 64 hex\n"
    "                                digits; else random) every node opens\n"
    "  cluster key use ID            every node seals with it\n"
    "  cluster key remove ID         nobody opens it (0: --cluster-key)\n"
    "  keyspace list [NAME]          keyspaces (kept in the cluster metadata;\n"
    "                                data commands name one with -k NAME)\n"
    "  keyspace create NAME [--type any|kv|lww|counter|set|map]\n"
    "                 [--replicas N|DC:N,...]  its own replication\n"
    "                 [-r|--read L] [-w|--write L]\n"
    "                 [--ttl S] [--siblings-warn N] [--siblings-max N]\n"
    "  keyspace alter NAME ...       new settings (type, replication stay)\n"
    "  keyspace drop NAME            its keys become unreachable\n"
    "  user list [NAME]              users and their grants (kept in the\n"
    "                                metadata)\n"
    "  user add NAME, user passwd NAME  the password from CHORUS_PASSWORD\n"
    "                                (CHORUS_NEW_PASSWORD when logged in)\n"
    "                                or the terminal (never argv); --kdf\n"
    "                                PASSES:KIB sets Argon2id's cost "
    "(2:65536)\n"
    "  user drop NAME\n"
    "  user grant|revoke NAME read|write|admin [KEYSPACE]\n"
    "                                on KEYSPACE, or on every keyspace\n"
    "\n";

/* The options, a string of their own (C99 promises 4,095 bytes). */
static const char usage_options[] =
    "options:\n"
    "  -H, --host HOST:PORT[,...]    nodes to try in order (repeatable;\n"
    "                                default $CHORUS_HOST, else\n"
    "                                127.0.0.1:7401,7402,7403: scripts/start)\n"
    "  --cluster NAME                cluster name (default $CHORUS_CLUSTER or\n"
    "                                \"chorus\")\n"
    "  --tls-ca FILE                 TLS 1.3: the CA of the nodes' "
    "certificates\n"
    "                                (default $CHORUS_TLS_CA); each node's\n"
    "                                certificate must name the address "
    "dialled\n"
    "  --tls-cert FILE, --tls-key FILE  this client's certificate and key, "
    "for\n"
    "                                nodes that ask ($CHORUS_TLS_CERT, _KEY)\n"
    "  --tls-crl FILE                PEM CRL(s) of that CA: refuse a node\n"
    "                                whose certificate is revoked\n"
    "                                ($CHORUS_TLS_CRL)\n"
    "  --user NAME                   log in (default $CHORUS_USER); the\n"
    "                                password from $CHORUS_PASSWORD or the\n"
    "                                terminal, never argv\n"
    "  --json                        one JSON object per command on stdout\n"
    "                                (node ids as 16 hex digits)\n"
    "  -r, --read N|LEVEL            read quorum (1..64 or a level)\n"
    "  -w, --write N|LEVEL           write quorum (1..64 or a level)\n"
    "  -c LEVEL                      both: ONE TWO THREE QUORUM ALL LOCAL_ONE\n"
    "                                LOCAL_QUORUM EACH_QUORUM\n"
    "  -k, --keyspace NAME           the keyspace of the key (default:\n"
    "                                `default`); its defaults apply\n"
    "  --pr N|LEVEL, --pw N|LEVEL    primary replicas required\n"
    "  --sloppy                      writes may use fallback nodes\n"
    "  --trace                       print the request's path after its\n"
    "                                result: coordinator, each replica's\n"
    "                                times, hints, read repairs (--json: one\n"
    "                                more line, {\"trace\":[events]})\n"
    "  --timeout MS                  request timeout (node default otherwise)\n"
    "  --context CTX                 causal context from a get (hex)\n"
    "  --ttl SECONDS                 put: the value reads as not found after\n"
    "                                SECONDS (> 0, decimals allowed, at most\n"
    "                                ten years), by the nodes' clocks\n"
    "  --value-file FILE             put's value, or one set member, from\n"
    "                                FILE (\"-\": standard input), read whole\n"
    "  --force                       cluster remove: also a live member\n"
    "  --with NEW                    cluster replace: the member taking the\n"
    "                                dead one's place\n"
    "  --wait                        cluster join, decommission, remove,\n"
    "                                replace: show\n"
    "                                the transfers' progress until the change\n"
    "                                ends (exit 1 if it was aborted)\n"
    "  --wait-timeout SECS           give up waiting after SECS (exit 1)\n"
    "  --range START..END|TOKEN     repair: token range, inclusive, in hex as\n"
    "                                repair status prints it (START > END\n"
    "                                wraps)\n"
    "  --dc DC                       the client's datacenter: LOCAL_ONE and\n"
    "                                LOCAL_QUORUM count its replicas, "
    "wherever\n"
    "                                the request lands (nodes of protocol 4)\n"
    "  --dc DC, --rack RACK, --vnodes N  cluster plan join: where a new node\n"
    "                                goes (default dc1, r1, the ring's "
    "vnodes)\n"
    "  -h, --help, --version\n"
    "\n"
    "exit status: 0 ok, 1 error (message on stderr), 2 usage\n";

int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "chorus: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nTry 'chorus --help'.\n");
  va_end(ap);
  return EXIT_USAGE;
}

static int add_host(struct cli *cl, const char *h) {
  size_t old = cl->hosts ? strlen(cl->hosts) : 0;
  char *n = chorus_realloc(cl->hosts, old + strlen(h) + 2);
  if (n == NULL)
    return -1;
  if (old > 0)
    n[old++] = ',';
  strcpy(n + old, h);
  cl->hosts = n;
  return 0;
}

static int parse_level(const char *opt, const char *v, int32_t *out) {
  if (v == NULL)
    return usage_error("%s needs a value", opt);
  if (chorus_level_parse(v, out) != CHORUS_OK)
    return usage_error("bad level or count \"%s\" (1..64, ONE, TWO, THREE, "
                       "QUORUM, ALL, LOCAL_ONE, LOCAL_QUORUM, EACH_QUORUM)",
                       v);
  return 0;
}

/* parse_token: 1 to 16 hex digits, 0x allowed, the whole of [@s, @end). */
static int parse_token(const char *s, const char *end, uint64_t *out) {
  if (end - s > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
    s += 2;
  if (s == end || end - s > 16)
    return -1;
  uint64_t v = 0;
  for (; s < end; s++) {
    int d = *s >= '0' && *s <= '9'   ? *s - '0'
            : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
            : *s >= 'A' && *s <= 'F' ? *s - 'A' + 10
                                     : -1;
    if (d < 0)
      return -1;
    v = v << 4 | (uint64_t)d;
  }
  *out = v;
  return 0;
}

/* parse_range: "START..END" or "TOKEN" (then START = END = TOKEN). */
static int parse_range(const char *s, uint64_t *first, uint64_t *last) {
  const char *dots = strstr(s, "..");
  const char *end = s + strlen(s);
  if (dots == NULL)
    return parse_token(s, end, first) == 0 ? (*last = *first, 0) : -1;
  return parse_token(s, dots, first) == 0 &&
                 parse_token(dots + 2, end, last) == 0
             ? 0
             : -1;
}

/* parse: fills @cl from argv; returns -1 to go on, or an exit status. Options
 * may come anywhere; an argument that looks like a negative number is a
 * positional (incr KEY -5). */
static int parse(struct cli *cl, int argc, char **argv) {
  bool only_pos = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    /* A map remove, -PATH:TYPE, is an argument: no option has a ':'. */
    bool is_opt = !only_pos && a[0] == '-' && a[1] != '\0' &&
                  !(a[1] >= '0' && a[1] <= '9') && strchr(a, ':') == NULL;
    if (!is_opt) {
      if (cl->argc == (int)(sizeof cl->argv / sizeof cl->argv[0]))
        return usage_error("too many arguments");
      cl->argv[cl->argc++] = a;
      continue;
    }
    int rc = 0;
    if (strcmp(a, "--") == 0) {
      only_pos = true;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage_text, stdout);
      fputs(usage_lock, stdout);
      fputs(usage_cluster, stdout);
      fputs(usage_options, stdout);
      return 0;
    } else if (strcmp(a, "--version") == 0) {
      printf("chorus %s\n", CHORUS_CLIENT_VERSION);
      return 0;
    } else if (strcmp(a, "--json") == 0) {
      cl->json = true;
    } else if (strcmp(a, "--sloppy") == 0) {
      cl->opts.sloppy = true;
    } else if (strcmp(a, "--trace") == 0) {
      cl->opts.trace = true;
    } else if (strcmp(a, "--force") == 0) {
      cl->force = true;
    } else if (strcmp(a, "--stage") == 0) {
      cl->stage = true;
    } else if (strcmp(a, "--with") == 0) {
      if (v == NULL)
        return usage_error("%s needs a member's name", a);
      cl->with = v;
      i++;
    } else if (strcmp(a, "--wait") == 0) {
      cl->wait = true;
    } else if (strcmp(a, "--if-absent") == 0) {
      cl->if_absent = true;
    } else if (strcmp(a, "--serial") == 0) {
      cl->serial = true;
    } else if (strcmp(a, "--local-serial") == 0) {
      cl->local_serial = true;
    } else if (strcmp(a, "--fence") == 0) {
      if (v == NULL)
        return usage_error("%s needs NAME:TOKEN", a);
      cl->fence = v;
      i++;
    } else if (strcmp(a, "--if-match") == 0) {
      if (v == NULL)
        return usage_error("%s needs a context from a CAS answer (hex)", a);
      cl->if_match = v;
      i++;
    } else if (strcmp(a, "--if-value") == 0) {
      if (v == NULL)
        return usage_error("%s needs the value expected", a);
      cl->if_value = v;
      i++;
    } else if (strcmp(a, "--wait-timeout") == 0 || strcmp(a, "--vnodes") == 0) {
      char *end;
      errno = 0;
      bool secs = a[2] == 'w';
      unsigned long t = v ? strtoul(v, &end, 10) : 0;
      if (v == NULL || errno || *end || v[0] == '-' ||
          (secs ? t == 0 || t > 86400ul : t > 65535ul))
        return usage_error(secs ? "--wait-timeout needs seconds 1..86400"
                                : "--vnodes needs a count 0..65535");
      if (secs)
        cl->wait_timeout = (unsigned)t;
      else
        cl->vnodes = (uint32_t)t;
      i++;
    } else if (strcmp(a, "--range") == 0) {
      if (v == NULL)
        return usage_error("--range needs START..END or TOKEN (hex tokens)");
      if (parse_range(v, &cl->range_first, &cl->range_last) != 0)
        return usage_error("--range \"%s\" is not START..END or TOKEN: "
                           "tokens are 1 to 16 hex digits (0x allowed)",
                           v);
      cl->range = true;
      i++;
    } else if (strcmp(a, "--type") == 0 || strcmp(a, "--replicas") == 0) {
      if (v == NULL)
        return usage_error("%s needs a value", a);
      *(a[2] == 't' ? &cl->ks_type : &cl->ks_replicas) = v;
      i++;
    } else if (strcmp(a, "--siblings-warn") == 0 ||
               strcmp(a, "--siblings-max") == 0) {
      char *end;
      errno = 0;
      long n = v ? strtol(v, &end, 10) : -1;
      if (v == NULL || errno || *end || n < 0 || n > 100000)
        return usage_error("%s needs a count 0..100000", a);
      *(a[11] == 'w' ? &cl->ks_siblings_warn : &cl->ks_siblings_max) = n;
      i++;
    } else if (strcmp(a, "--dc") == 0 || strcmp(a, "--rack") == 0) {
      if (v == NULL || strlen(v) > 64)
        return usage_error("%s needs a name of 0..64 bytes", a);
      *(a[2] == 'd' ? &cl->dc : &cl->rack) = v;
      i++;
    } else if (strcmp(a, "--kdf") == 0) {
      if (v == NULL)
        return usage_error("--kdf needs PASSES:KIB");
      cl->kdf = v;
      i++;
    } else if (strcmp(a, "-k") == 0 || strcmp(a, "--keyspace") == 0) {
      if (v == NULL || v[0] == '\0' || strlen(v) > CHORUS_MAX_KEYSPACE_NAME)
        return usage_error("%s needs a keyspace name of 1..47 bytes", a);
      cl->opts.keyspace = v;
      i++;
    } else if (strcmp(a, "-H") == 0 || strcmp(a, "--host") == 0) {
      if (v == NULL)
        return usage_error("%s needs HOST:PORT", a);
      if (add_host(cl, v) != 0)
        return 1;
      i++;
    } else if (strcmp(a, "--user") == 0) {
      if (v == NULL)
        return usage_error("%s needs a user name", a);
      cl->user = v;
      i++;
    } else if (strcmp(a, "--cluster") == 0) {
      if (v == NULL)
        return usage_error("%s needs a name", a);
      cl->cluster = v;
      i++;
    } else if (strcmp(a, "--tls-ca") == 0 || strcmp(a, "--tls-cert") == 0 ||
               strcmp(a, "--tls-key") == 0 || strcmp(a, "--tls-crl") == 0) {
      if (v == NULL)
        return usage_error("%s needs a PEM file", a);
      if (strcmp(a, "--tls-ca") == 0)
        cl->tls_ca = v;
      else if (strcmp(a, "--tls-cert") == 0)
        cl->tls_cert = v;
      else if (strcmp(a, "--tls-crl") == 0)
        cl->tls_crl = v;
      else
        cl->tls_key = v;
      i++;
    } else if (strcmp(a, "--file") == 0) {
      if (v == NULL)
        return usage_error("%s needs a key file (64 hex digits)", a);
      cl->key_file = v;
      i++;
    } else if (strcmp(a, "--show-key") == 0) {
      cl->show_key = true;
    } else if (strcmp(a, "--value-file") == 0) {
      if (v == NULL)
        return usage_error("%s needs a file (\"-\": standard input)", a);
      cl->value_file = v;
      i++;
    } else if (strcmp(a, "--context") == 0) {
      if (v == NULL)
        return usage_error("%s needs a hex context", a);
      cl->context_hex = v;
      i++;
    } else if (strcmp(a, "--ttl") == 0) {
      /* Seconds, as people think of them; the library takes ms. */
      char *end;
      errno = 0;
      double t = v ? strtod(v, &end) : 0;
      double ms = t * 1000.0 + 0.5;
      if (v == NULL || errno || end == v || *end || !(ms >= 1.0) ||
          ms > (double)CHORUS_MAX_TTL_MS)
        return usage_error("--ttl needs seconds, more than 0 and at most "
                           "315360000 (ten years)");
      cl->opts.ttl_ms = (uint64_t)ms;
      cl->ttl_raw = v; /* lock: milliseconds */
      i++;
    } else if (strcmp(a, "--timeout") == 0) {
      char *end;
      errno = 0;
      unsigned long t = v ? strtoul(v, &end, 10) : 0;
      if (v == NULL || errno || *end || v[0] == '-' || t == 0 || t > 86400000ul)
        return usage_error("--timeout needs milliseconds 1..86400000");
      cl->opts.timeout_ms = (uint32_t)t;
      i++;
    } else if (strcmp(a, "-r") == 0 || strcmp(a, "--read") == 0) {
      rc = parse_level(a, v, &cl->opts.r);
      cl->r_given = true;
      i++;
    } else if (strcmp(a, "-w") == 0 || strcmp(a, "--write") == 0) {
      rc = parse_level(a, v, &cl->opts.w);
      cl->w_given = true;
      i++;
    } else if (strcmp(a, "--pr") == 0) {
      rc = parse_level(a, v, &cl->opts.pr);
      i++;
    } else if (strcmp(a, "--pw") == 0) {
      rc = parse_level(a, v, &cl->opts.pw);
      i++;
    } else if (strcmp(a, "-c") == 0 || strcmp(a, "--consistency") == 0) {
      rc = parse_level(a, v, &cl->opts.r);
      cl->opts.w = cl->opts.r;
      cl->r_given = cl->w_given = true;
      i++;
    } else {
      return usage_error("unknown option %s", a);
    }
    if (rc != 0)
      return rc;
  }
  return -1;
}

/* ------------------------------------------------------------------------
 * Output helpers
 * ------------------------------------------------------------------------ */

static void print_hex(const uint8_t *p, size_t len) {
  for (size_t i = 0; i < len; i++)
    printf("%02x", p[i]);
}

static int hex_decode(const char *s, uint8_t **out, size_t *len) {
  size_t n = strlen(s);
  if (n % 2 != 0)
    return CHORUS_EINVAL;
  uint8_t *b = chorus_malloc(n / 2 + 1);
  if (b == NULL)
    return CHORUS_ENOMEM;
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v = 0;
    for (int j = 0; j < 2; j++) {
      char ch = s[2 * i + (size_t)j];
      unsigned d;
      if (ch >= '0' && ch <= '9')
        d = (unsigned)(ch - '0');
      else if (ch >= 'a' && ch <= 'f')
        d = (unsigned)(ch - 'a') + 10;
      else if (ch >= 'A' && ch <= 'F')
        d = (unsigned)(ch - 'A') + 10;
      else {
        chorus_free(b);
        return CHORUS_EINVAL;
      }
      v = v << 4 | d;
    }
    b[i] = (uint8_t)v;
  }
  *out = b;
  *len = n / 2;
  return CHORUS_OK;
}

/* A JSON string. Bytes that are not valid UTF-8 are written as \u00XX
 * (read as Latin-1), so any value yields valid JSON. */
static void json_str(const uint8_t *p, size_t len) {
  putchar('"');
  size_t i = 0;
  while (i < len) {
    uint8_t ch = p[i];
    if (ch == '"' || ch == '\\') {
      printf("\\%c", ch);
      i++;
    } else if (ch == '\n') {
      fputs("\\n", stdout);
      i++;
    } else if (ch == '\t') {
      fputs("\\t", stdout);
      i++;
    } else if (ch == '\r') {
      fputs("\\r", stdout);
      i++;
    } else if (ch < 0x20 || ch == 0x7f) {
      printf("\\u%04x", ch);
      i++;
    } else if (ch < 0x80) {
      putchar(ch);
      i++;
    } else {
      size_t n = ch >= 0xf0 && ch < 0xf5   ? 4
                 : ch >= 0xe0 && ch < 0xf0 ? 3
                 : ch >= 0xc2 && ch < 0xe0 ? 2
                                           : 0;
      bool ok = n > 0 && i + n <= len;
      for (size_t j = 1; ok && j < n; j++)
        ok = (p[i + j] & 0xc0) == 0x80;
      if (ok) {
        fwrite(p + i, 1, n, stdout);
        i += n;
      } else {
        printf("\\u%04x", ch);
        i++;
      }
    }
  }
  putchar('"');
}

void json_cstr(const char *s) {
  json_str((const uint8_t *)s, strlen(s));
}

static void json_hex(struct chorus_bytes b) {
  putchar('"');
  print_hex(b.ptr, b.len);
  putchar('"');
}

int client_failed(struct chorus_client *c, int rc) {
  fprintf(stderr, "chorus: %s (%s)\n", chorus_client_errmsg(c),
          chorus_errname(rc));
  return 1;
}

static int fail(const struct chorus_result *res) {
  fprintf(stderr, "chorus: %s (%s)%s\n", res->errmsg,
          chorus_errname(res->status),
          res->maybe_applied ? "; the write may have been applied" : "");
  return 1;
}

static void print_list(const struct cli *cl, const char *field,
                       const struct chorus_result *res) {
  if (!cl->json) {
    for (size_t i = 0; i < res->nvalues; i++) {
      fwrite(res->values[i].ptr, 1, res->values[i].len, stdout);
      putchar('\n');
    }
    return;
  }
  printf("\"%s\":[", field);
  for (size_t i = 0; i < res->nvalues; i++) {
    if (i)
      putchar(',');
    json_str(res->values[i].ptr, res->values[i].len);
  }
  putchar(']');
}

/* ------------------------------------------------------------------------
 * Values from files and standard input
 * ------------------------------------------------------------------------ */

/* read_value: the whole of @path ("-": standard input) into *@out (owned,
 * chorus_free), binary-safe. More than @limit bytes is refused with the
 * words libchorus uses (it would refuse the request anyway, and reading a
 * huge file first helps nobody). Returns 0, or the exit status after a
 * message on stderr. */
static int read_value(const char *path, size_t limit, const char *what,
                      uint8_t **out, size_t *len) {
  bool in = strcmp(path, "-") == 0;
  const char *name = in ? "standard input" : path;
  FILE *f = in ? stdin : fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "chorus: %s: %s\n", path, strerror(errno));
    return 1;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
      (uint64_t)st.st_size > limit) {
    fprintf(stderr,
            "chorus: %s: %s of %" PRIu64 " bytes is over the %zu-byte %s "
            "limit (%s)\n",
            name, what, (uint64_t)st.st_size, limit, what,
            chorus_errname(CHORUS_ETOOBIG));
    if (!in)
      fclose(f);
    return 1;
  }
  uint8_t *b = chorus_malloc(limit + 1);
  size_t n = 0;
  while (b != NULL && n <= limit && !feof(f) && !ferror(f))
    n += fread(b + n, 1, limit + 1 - n, f);
  int rc = 0;
  if (b == NULL) {
    fprintf(stderr, "chorus: out of memory\n");
    rc = 1;
  } else if (ferror(f)) {
    fprintf(stderr, "chorus: %s: %s\n", name, strerror(errno));
    rc = 1;
  } else if (n > limit) {
    fprintf(stderr,
            "chorus: %s: %s of more than %zu bytes is over the %s "
            "limit (%s)\n",
            name, what, limit, what, chorus_errname(CHORUS_ETOOBIG));
    rc = 1;
  }
  if (!in)
    fclose(f);
  if (rc != 0) {
    chorus_free(b);
    return rc;
  }
  *out = b;
  *len = n;
  return 0;
}

/* ------------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------------ */

int need_args(const struct cli *cl, int lo, int hi, const char *form) {
  if (cl->argc - 1 < lo || (hi >= 0 && cl->argc - 1 > hi))
    return usage_error("usage: chorus %s", form);
  return 0;
}

/* The node's warnings about the object under @key (libchorus.h, OBJECT
 * WARNINGS), one line each on stderr. */
static void print_warnings(const char *key, const struct chorus_result *res) {
  if (res->object_flags & CHORUS_OBJECT_TRUNCATED)
    fprintf(stderr,
            "chorus: warning: %s: %zu of %" PRIu32 " siblings shown (the "
            "object is %" PRIu64 " bytes); a put with this context replaces "
            "them all\n",
            key, res->nvalues, res->siblings, res->object_bytes);
  if (res->object_flags & CHORUS_OBJECT_SIBLINGS)
    fprintf(stderr,
            "chorus: warning: %s has %" PRIu32 " siblings: get it and put "
            "one value back with its context to resolve them\n",
            key, res->siblings);
  if (res->object_flags & CHORUS_OBJECT_LARGE)
    fprintf(stderr,
            "chorus: warning: %s is %" PRIu64 " bytes, over half the node's "
            "budget for one object\n",
            key, res->object_bytes);
}

static int print_write(const struct cli *cl, const struct chorus_result *res) {
  print_warnings(cl->argv[1], res);
  if (cl->json) {
    printf("{\"ok\":true,\"context\":");
    json_hex(res->context);
    printf("}\n");
  } else {
    /* CRDT writes (a set's add) answer without a context: none shown. */
    printf("ok\n");
    if (res->context.len > 0) {
      printf("context: ");
      print_hex(res->context.ptr, res->context.len);
      putchar('\n');
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Request traces (--trace; libchorus.h, REQUEST TRACES)
 * ------------------------------------------------------------------------ */

/* The name of node @id in @ring (a chorus_ring result), else its id. */
static const char *trace_name(const struct chorus_result *ring, uint64_t id,
                              char *buf, size_t cap) {
  for (size_t i = 0; i < ring->nnodes; i++)
    if (ring->nodes[i].id == id && ring->nodes[i].name != NULL &&
        ring->nodes[i].name[0] != '\0')
      return ring->nodes[i].name;
  snprintf(buf, cap, "%016" PRIx64, id);
  return buf;
}

static const char *trace_kind(int kind) {
  static const char *const names[] = {"?",      "received", "forwarded",
                                      "sent",   "replica",  "answered",
                                      "repair", "ended"};
  return kind >= 1 && kind <= CHORUS_TRACE_ENDED ? names[kind] : "?";
}

static const char *trace_state(int state) {
  switch (state) {
  case CHORUS_TRACE_ACKED:
    return "acked";
  case CHORUS_TRACE_REFUSED:
    return "refused";
  case CHORUS_TRACE_NO_ANSWER:
    return "no answer";
  case CHORUS_TRACE_NOT_ASKED:
    return "down, not asked";
  default:
    return "?";
  }
}

/* One event as a line: "  +3 ms  n2  acked; its own: synced +1 ms,
 * answered +1 ms". */
static void trace_line(const struct chorus_trace_event *e, const char *name,
                       const char *other) {
  printf("%6" PRIu32 " ms  %-16s ", e->at_ms, name);
  switch (e->kind) {
  case CHORUS_TRACE_RECEIVED:
    printf("received the request (coordinator)");
    break;
  case CHORUS_TRACE_FORWARDED:
    printf("not a replica: forwarded to %s, back after %" PRIu32
           " ms on its clock",
           other, e->at_ms);
    break;
  case CHORUS_TRACE_SENT:
    printf("sent to the replicas");
    break;
  case CHORUS_TRACE_REPLICA:
    if (e->flags & CHORUS_TRACE_SELF)
      printf("self: %s",
             e->flags & CHORUS_TRACE_SYNCED ? "stored and synced" : "read");
    else
      printf("%s", trace_state(e->state));
    if (e->other != 0)
      printf(" (standing in for %s)", other);
    if ((e->flags & CHORUS_TRACE_TIMES) && !(e->flags & CHORUS_TRACE_SELF)) {
      printf("; on %s: received +0", name);
      if (e->flags & CHORUS_TRACE_SYNCED)
        printf(", synced +%" PRIu32, e->synced_ms);
      printf(", answered +%" PRIu32 " ms", e->answered_ms);
    }
    if (e->flags & CHORUS_TRACE_HINT)
      printf("; hint kept");
    break;
  case CHORUS_TRACE_ANSWERED:
    printf("answer ready");
    break;
  case CHORUS_TRACE_REPAIR:
    printf("read repair sent");
    break;
  case CHORUS_TRACE_ENDED:
    printf("ended%s", e->flags & CHORUS_TRACE_TIMED_OUT ? " (timed out)" : "");
    break;
  default:
    printf("(an event of a newer node)");
  }
  putchar('\n');
}

/* print_trace: @res's timeline after its result, when --trace asked for
 * it: one line per event (ms after the coordinator's receipt, node, what
 * happened), or with --json one more line {"trace":[...]}. Node names
 * come from a ring query to the same cluster. */
static void print_trace(struct chorus_client *c, const struct cli *cl,
                        const struct chorus_result *res) {
  if (!cl->opts.trace)
    return;
  if (res->trace == NULL) {
    fprintf(stderr, "chorus: no trace: the node refused the request before "
                    "asking a replica, or speaks a protocol older than 5\n");
    return;
  }
  struct chorus_result ring;
  if (chorus_ring(c, &ring) != CHORUS_OK) {
    chorus_result_free(&ring); /* ids, then */
    memset(&ring, 0, sizeof ring);
  }
  char b1[24], b2[24];
  if (cl->json) {
    printf("{\"trace\":[");
    for (size_t i = 0; i < res->ntrace; i++) {
      const struct chorus_trace_event *e = &res->trace[i];
      printf("%s{\"at_ms\":%" PRIu32 ",\"event\":\"%s\",\"node\":",
             i ? "," : "", e->at_ms, trace_kind(e->kind));
      json_cstr(trace_name(&ring, e->node, b1, sizeof b1));
      printf(",\"id\":\"%016" PRIx64 "\"", e->node);
      if (e->kind == CHORUS_TRACE_REPLICA) {
        printf(",\"state\":\"%s\",\"self\":%s,\"hint\":%s",
               trace_state(e->state),
               e->flags & CHORUS_TRACE_SELF ? "true" : "false",
               e->flags & CHORUS_TRACE_HINT ? "true" : "false");
        if (e->flags & CHORUS_TRACE_TIMES) {
          printf(",\"answered_ms\":%" PRIu32, e->answered_ms);
          if (e->flags & CHORUS_TRACE_SYNCED)
            printf(",\"synced_ms\":%" PRIu32, e->synced_ms);
        }
      }
      if (e->other != 0) {
        printf(",\"other\":");
        json_cstr(trace_name(&ring, e->other, b2, sizeof b2));
      }
      if (e->kind == CHORUS_TRACE_ENDED)
        printf(",\"timed_out\":%s",
               e->flags & CHORUS_TRACE_TIMED_OUT ? "true" : "false");
      putchar('}');
    }
    printf("]}\n");
  } else {
    printf("trace (coordinator %s):\n",
           trace_name(&ring, res->trace_node, b1, sizeof b1));
    /* One timeline: in time order, the node's order among equals; a
     * forwarding hop (its own clock) first. */
    bool *shown = chorus_calloc(res->ntrace ? res->ntrace : 1, sizeof *shown);
    for (size_t k = 0; shown != NULL && k < res->ntrace; k++) {
      size_t best = SIZE_MAX;
      for (size_t i = 0; i < res->ntrace; i++) {
        const struct chorus_trace_event *e = &res->trace[i];
        if (shown[i])
          continue;
        if (best == SIZE_MAX ||
            (e->kind == CHORUS_TRACE_FORWARDED &&
             res->trace[best].kind != CHORUS_TRACE_FORWARDED) ||
            (res->trace[best].kind != CHORUS_TRACE_FORWARDED &&
             e->at_ms < res->trace[best].at_ms))
          best = i;
      }
      shown[best] = true;
      const struct chorus_trace_event *e = &res->trace[best];
      trace_line(e, trace_name(&ring, e->node, b1, sizeof b1),
                 trace_name(&ring, e->other, b2, sizeof b2));
    }
    chorus_free(shown);
  }
  chorus_result_free(&ring);
}

/* "context: HEX" after a read's list (kv siblings, set members). */
static void print_context(const struct chorus_result *res) {
  printf("context: ");
  print_hex(res->context.ptr, res->context.len);
  putchar('\n');
}

/* An LWW register's read: its value (or "not found" on stderr), then the
 * winning write's stamp: "written: MS.LOGICAL by NODE" (HLC milliseconds
 * since the epoch, its logical counter, the coordinating node's id). */
static void print_lww(const struct cli *cl, const char *key,
                      const struct chorus_result *res) {
  uint64_t ms = CHORUS_LWW_MS(res->lww_ts);
  unsigned logical = (unsigned)(res->lww_ts & 0xffffu);
  if (cl->json) {
    printf("{\"found\":%s,\"type\":\"lww\",\"value\":",
           res->nvalues > 0 ? "true" : "false");
    if (res->nvalues > 0)
      json_str(res->values[0].ptr, res->values[0].len);
    else
      printf("null");
    printf(",\"ts\":%" PRIu64 ",\"ms\":%" PRIu64 ",\"node\":\"%016" PRIx64
           "\"}\n",
           res->lww_ts, ms, res->lww_node);
    return;
  }
  print_list(cl, "value", res);
  if (res->lww_ts != 0)
    printf("written: %" PRIu64 ".%u by %016" PRIx64 "\n", ms, logical,
           res->lww_node);
  if (res->nvalues == 0)
    fprintf(stderr, "chorus: %s: not found\n", key);
}

/* lww set KEY VALUE|- (or --value-file FILE), lww get KEY, lww del KEY. */
static int cmd_lww(struct chorus_client *c, const struct cli *cl) {
  static const char form[] =
      "lww set KEY VALUE|- | lww set KEY --value-file FILE | lww get KEY | "
      "lww del KEY";
  int rc = need_args(cl, 2, 3, form);
  if (rc != 0)
    return rc;
  const char *sub = cl->argv[1], *key = cl->argv[2];
  bool set = strcmp(sub, "set") == 0;
  if (!set && strcmp(sub, "get") != 0 && strcmp(sub, "del") != 0)
    return usage_error("lww: \"%s\" is not set, get or del", sub);
  if (cl->value_file != NULL && !set)
    return usage_error("--value-file is for put, sadd, srem and lww set");
  if (set ? cl->argc != (cl->value_file ? 3 : 4) : cl->argc != 3)
    return usage_error("usage: chorus %s", form);
  struct chorus_result res;
  uint8_t *val = NULL;
  size_t val_len = 0;
  if (strcmp(sub, "get") == 0) {
    rc = chorus_lww_get(c, key, strlen(key), &cl->opts, &res);
    if (rc == CHORUS_OK)
      print_lww(cl, key, &res);
  } else if (set) {
    const char *src = cl->value_file ? cl->value_file : cl->argv[3];
    if (cl->value_file || strcmp(src, "-") == 0) {
      if ((rc = read_value(src, CHORUS_MAX_VALUE, "value", &val, &val_len)) !=
          0)
        return rc;
    } else {
      val = chorus_memdup(src, strlen(src));
      val_len = strlen(src);
      if (val_len > 0 && val == NULL) {
        fprintf(stderr, "chorus: out of memory\n");
        return 1;
      }
    }
    rc = chorus_lww_set(c, key, strlen(key), val, val_len, &cl->opts, &res);
  } else {
    rc = chorus_lww_delete(c, key, strlen(key), &cl->opts, &res);
  }
  if (rc == CHORUS_OK && strcmp(sub, "get") != 0) {
    /* The stamp this write got (0 from a node before protocol 5): the
     * write wins over every write with a smaller one. */
    print_warnings(key, &res);
    if (cl->json)
      printf("{\"ok\":true,\"ts\":%" PRIu64 ",\"node\":\"%016" PRIx64 "\"}\n",
             res.lww_ts, res.lww_node);
    else if (res.lww_ts != 0)
      printf("ok\nwritten: %" PRIu64 ".%u by %016" PRIx64 "\n",
             CHORUS_LWW_MS(res.lww_ts), (unsigned)(res.lww_ts & 0xffffu),
             res.lww_node);
    else
      printf("ok\n");
  }
  rc = rc == CHORUS_OK ? 0 : fail(&res);
  print_trace(c, cl, &res);
  chorus_result_free(&res);
  chorus_free(val);
  return rc;
}

/* CAS: put --if-absent, put --if-value OLD, put --if-match CTX, del
 * --if-value OLD, del --if-match CTX, get --serial. Exit 0 applied (get
 * --serial: read), 1 not applied (the value found printed), 2 any error
 * (its own code: the outcome 1 must mean "the condition failed", nothing
 * else). Every answer ends with the context of the key's value (applied:
 * of the value written), printed and read as a kv context is (hex). */
static int cmd_cas(struct chorus_client *c, const struct cli *cl,
                   const char *cmd) {
  bool put = strcmp(cmd, "put") == 0, del = strcmp(cmd, "del") == 0,
       get = strcmp(cmd, "get") == 0;
  int conds = cl->serial + cl->if_absent + (cl->if_value != NULL) +
              (cl->if_match != NULL);
  int cond = -1;
  if (conds == 1 && get && cl->serial)
    cond = CHORUS_CAS_READ;
  else if (conds == 1 && put && cl->if_absent)
    cond = CHORUS_CAS_IF_ABSENT;
  else if (conds == 1 && put && cl->if_value)
    cond = CHORUS_CAS_IF_VALUE;
  else if (conds == 1 && put && cl->if_match)
    cond = CHORUS_CAS_IF_MATCH;
  else if (conds == 1 && del && cl->if_value)
    cond = CHORUS_CAS_DELETE_IF_VALUE;
  else if (conds == 1 && del && cl->if_match)
    cond = CHORUS_CAS_DELETE_IF_MATCH;
  else
    return usage_error("compare-and-set: put KEY VALUE --if-absent, put KEY "
                       "VALUE --if-value OLD|--if-match CTX, del KEY "
                       "--if-value OLD|--if-match CTX or get KEY --serial");
  bool from_file = put && cl->value_file != NULL;
  int rc = need_args(
      cl, put && !from_file ? 2 : 1, put && !from_file ? 2 : 1,
      put   ? "put KEY VALUE|- --if-absent|--if-value OLD|--if-match CTX"
      : del ? "del KEY --if-value OLD|--if-match CTX"
            : "get KEY --serial");
  if (rc != 0)
    return rc;
  if (cl->context_hex != NULL)
    return usage_error("--context is not for compare-and-set (--if-match "
                       "takes a CAS answer's context)");
  uint8_t *match = NULL;
  size_t match_len = 0;
  if (cl->if_match != NULL &&
      (hex_decode(cl->if_match, &match, &match_len) != CHORUS_OK ||
       match_len != CHORUS_CAS_CONTEXT_LEN)) {
    chorus_free(match);
    return usage_error("--if-match: \"%s\" is not a CAS context (%u bytes "
                       "in hex, as \"context:\" of a CAS answer)",
                       cl->if_match, CHORUS_CAS_CONTEXT_LEN);
  }
  const char *key = cl->argv[1];
  uint8_t *val = NULL;
  size_t val_len = 0;
  if (put) {
    const char *src = from_file ? cl->value_file : cl->argv[2];
    if (from_file || strcmp(src, "-") == 0) {
      if ((rc = read_value(src, CHORUS_MAX_VALUE, "value", &val, &val_len)) !=
          0) {
        chorus_free(match);
        return 2;
      }
    } else if ((val_len = strlen(src)) > 0 &&
               (val = chorus_memdup(src, val_len)) == NULL) {
      fprintf(stderr, "chorus: out of memory\n");
      chorus_free(match);
      return 2;
    }
  }
  struct chorus_result res;
  const void *exp = cl->if_value ? cl->if_value : "";
  size_t exp_len = strlen(exp);
  if (match != NULL) {
    exp = match;
    exp_len = match_len;
  }
  struct chorus_opts o = cl->opts;
  if (cl->local_serial) /* Paxos among this datacenter's replicas */
    o.w = CHORUS_LOCAL_QUORUM;
  rc = chorus_cas(c, key, strlen(key), cond, exp, exp_len, val, val_len, &o,
                  &res);
  chorus_free(val);
  chorus_free(match);
  if (rc != CHORUS_OK) {
    fail(&res);
    if (res.maybe_applied)
      fprintf(stderr, "chorus: read it with: chorus get %s --serial\n", key);
    chorus_result_free(&res);
    return 2;
  }
  bool applied = res.cas_applied;
  if (cl->json) {
    printf("{\"applied\":%s,\"value\":", applied ? "true" : "false");
    if (res.nvalues > 0)
      json_str(res.values[0].ptr, res.values[0].len);
    else
      printf("null");
    printf(",\"context\":");
    json_hex(res.context);
    printf("}\n");
  } else if (get) {
    if (res.nvalues > 0) {
      fwrite(res.values[0].ptr, 1, res.values[0].len, stdout);
      putchar('\n');
    } else {
      fprintf(stderr, "chorus: %s: not found\n", key);
    }
    print_context(&res); /* also absent: --if-match of that absence */
  } else if (applied) {
    printf("applied\n");
    print_context(&res);
  } else if (res.nvalues > 0) {
    printf("not applied; current value:\n");
    fwrite(res.values[0].ptr, 1, res.values[0].len, stdout);
    putchar('\n');
    print_context(&res);
  } else {
    printf("not applied; the key has no value\n");
    print_context(&res);
  }
  chorus_result_free(&res);
  return applied || get ? 0 : 1;
}

static int map_print(const struct cli *cl, const char *key,
                     const struct chorus_result *res);

/* get: GET, and on ETYPE the counter, then the set, then the register,
 * then the map (the key's type is fixed at its first write, so one of them
 * answers). */
static int cmd_get(struct chorus_client *c, const struct cli *cl) {
  const char *key = cl->argv[1];
  struct chorus_result res;
  int rc = chorus_get(c, key, strlen(key), &cl->opts, &res);
  if (rc == CHORUS_OK) {
    print_warnings(key, &res);
    if (cl->json) {
      printf("{\"found\":%s,\"type\":\"kv\",",
             res.nvalues > 0 ? "true" : "false");
      print_list(cl, "values", &res);
      printf(",\"context\":");
      json_hex(res.context);
      printf("}\n");
    } else {
      print_list(cl, "values", &res);
      print_context(&res);
      if (res.nvalues == 0)
        fprintf(stderr, "chorus: %s: not found\n", key);
    }
    print_trace(c, cl, &res);
    chorus_result_free(&res);
    return 0;
  }
  if (rc != CHORUS_ETYPE)
    goto err;
  chorus_result_free(&res);
  rc = chorus_counter_read(c, key, strlen(key), &cl->opts, &res);
  if (rc == CHORUS_OK) {
    if (cl->json)
      printf("{\"found\":true,\"type\":\"counter\",\"value\":%" PRId64 "}\n",
             res.counter);
    else
      printf("%" PRId64 "\n", res.counter);
    print_trace(c, cl, &res);
    chorus_result_free(&res);
    return 0;
  }
  if (rc != CHORUS_ETYPE)
    goto err;
  chorus_result_free(&res);
  rc = chorus_set_members(c, key, strlen(key), &cl->opts, &res);
  if (rc == CHORUS_OK) {
    if (cl->json) {
      printf("{\"found\":true,\"type\":\"set\",");
      print_list(cl, "members", &res);
      printf(",\"context\":");
      json_hex(res.context);
      printf("}\n");
    } else {
      print_list(cl, "members", &res);
      print_context(&res);
    }
    print_trace(c, cl, &res);
    chorus_result_free(&res);
    return 0;
  }
  if (rc != CHORUS_ETYPE)
    goto err;
  chorus_result_free(&res);
  rc = chorus_lww_get(c, key, strlen(key), &cl->opts, &res);
  if (rc == CHORUS_OK) {
    print_lww(cl, key, &res);
    print_trace(c, cl, &res);
    chorus_result_free(&res);
    return 0;
  }
  if (rc != CHORUS_ETYPE)
    goto err;
  chorus_result_free(&res);
  rc = chorus_map_get(c, key, strlen(key), &cl->opts, &res);
  if (rc == CHORUS_OK) {
    rc = map_print(cl, key, &res);
    print_trace(c, cl, &res);
    chorus_result_free(&res);
    return rc;
  }
err:
  rc = fail(&res);
  print_trace(c, cl, &res);
  /* Every type tried: the key is a compare-and-set key, which only CAS
   * reads (docs/PROTOCOL.md, CAS: the type rule). */
  if (res.status == CHORUS_ETYPE)
    fprintf(stderr,
            "chorus: %s may be a compare-and-set key: chorus get %s "
            "--serial\n",
            key, key);
  chorus_result_free(&res);
  return rc;
}

/* A name for a table: "-" when the node did not say. */
const char *or_dash(const char *s) {
  return s != NULL && s[0] != '\0' ? s : "-";
}

/* widen: a column of width @w that also holds @s as printed. */
int widen(int w, const char *s) {
  int n = (int)strlen(or_dash(s));
  return n > w ? n : w;
}

static const char *node_state(const struct chorus_node_info *n) {
  return n->member_state != CHORUS_MEMBER_UNKNOWN
             ? chorus_member_state_name(n->member_state)
             : chorus_ring_state_name(n->ring_state);
}

static int cmd_status(struct chorus_client *c, const struct cli *cl) {
  struct chorus_result res;
  if (chorus_status(c, &res) != CHORUS_OK) {
    int rc = fail(&res);
    chorus_result_free(&res);
    return rc;
  }
  if (cl->json) {
    printf("{\"node\":\"%016" PRIx64 "\",\"node_name\":", res.node_id);
    json_cstr(res.node_name);
    printf(",\"server\":");
    json_cstr(res.server);
    printf(",\"members\":[");
    for (size_t i = 0; i < res.nnodes; i++) {
      const struct chorus_node_info *n = &res.nodes[i];
      printf("%s{\"id\":\"%016" PRIx64 "\",\"name\":", i ? "," : "", n->id);
      json_cstr(n->name);
      printf(",\"state\":\"%s\",\"addr\":", node_state(n));
      json_cstr(n->addr);
      printf(",\"dc\":");
      json_cstr(n->dc);
      printf(",\"rack\":");
      json_cstr(n->rack);
      printf(",\"incarnation\":%" PRId64 ",\"offset_ms\":", n->incarnation);
      if (n->has_offset)
        printf("%" PRId64, n->offset_ms);
      else
        printf("null");
      printf(",\"hints\":%" PRId64 "}", n->hints);
    }
    printf("],\"stats\":{");
    for (size_t i = 0; i < res.nstats; i++) {
      if (i)
        putchar(',');
      json_cstr(res.stats[i].name);
      printf(":%" PRId64, res.stats[i].value);
    }
    printf("}}\n");
  } else {
    if (res.node_name[0] != '\0')
      printf("node %s (%016" PRIx64 ") at %s\n", res.node_name, res.node_id,
             res.server);
    else
      printf("node %016" PRIx64 " at %s\n", res.node_id, res.server);
    int wn = 4; /* "name" */
    for (size_t i = 0; i < res.nnodes; i++)
      wn = widen(wn, res.nodes[i].name);
    printf("%-*s  %-16s  %-7s  %-21s  %-8s  %-8s  %11s  %9s  %6s\n", wn, "name",
           "id", "state", "address", "dc", "rack", "incarnation", "offset_ms",
           "hints");
    for (size_t i = 0; i < res.nnodes; i++) {
      const struct chorus_node_info *n = &res.nodes[i];
      char off[24] = "-";
      if (n->has_offset)
        snprintf(off, sizeof off, "%" PRId64, n->offset_ms);
      printf("%-*s  %016" PRIx64 "  %-7s  %-21s  %-8s  %-8s  %11" PRId64
             "  %9s  %6" PRId64 "\n",
             wn, or_dash(n->name), n->id, node_state(n), or_dash(n->addr),
             or_dash(n->dc), or_dash(n->rack), n->incarnation, off, n->hints);
    }
  }
  chorus_result_free(&res);
  return 0;
}

/* The value of stat @name in @res, or -1. */
static int64_t stat_value(const struct chorus_result *res, const char *name) {
  for (size_t i = 0; i < res->nstats; i++)
    if (strcmp(res->stats[i].name, name) == 0)
      return res->stats[i].value;
  return -1;
}

/* The per-range table of repair status (text). */
static void print_ranges(const struct chorus_result *res) {
  printf("%-34s  %-14s  %9s  %8s  %13s  %13s  %10s  %14s  %8s\n",
         "range (first..last)", "last completed", "exchanges", "segments",
         "keys_differing", "keys_repaired", "bytes_sent", "bytes_received",
         "repaired");
  for (size_t i = 0; i < res->nranges; i++) {
    const struct chorus_repair_range *g = &res->ranges[i];
    char ago[32] = "never";
    if (g->last_completed_ms > 0)
      snprintf(ago, sizeof ago, "%" PRIu64 " s ago", g->age_ms / 1000);
    printf("%016" PRIx64 "..%016" PRIx64 "  %-14s  %9" PRIu64 "  %8" PRIu64
           "  %13" PRIu64 "  %13" PRIu64 "  %10" PRIu64 "  %14" PRIu64
           "  %8s\n",
           g->first, g->last, ago, g->exchanges, g->segments_differing,
           g->keys_differing, g->keys_repaired, g->bytes_sent,
           g->bytes_received, g->repaired ? "yes" : "no");
  }
}

static void json_ranges(const struct chorus_result *res) {
  printf(",\"ranges\":[");
  for (size_t i = 0; i < res->nranges; i++) {
    const struct chorus_repair_range *g = &res->ranges[i];
    printf("%s{\"first\":\"%016" PRIx64 "\",\"last\":\"%016" PRIx64
           "\",\"last_completed_ms\":%" PRIu64 ",\"age_ms\":%" PRIu64
           ",\"exchanges\":%" PRIu64 ",\"segments_differing\":%" PRIu64
           ",\"keys_differing\":%" PRIu64 ",\"keys_repaired\":%" PRIu64
           ",\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%" PRIu64
           ",\"repaired\":%s}",
           i ? "," : "", g->first, g->last, g->last_completed_ms, g->age_ms,
           g->exchanges, g->segments_differing, g->keys_differing,
           g->keys_repaired, g->bytes_sent, g->bytes_received,
           g->repaired ? "true" : "false");
  }
  printf("]");
}

/* repair status | now [--range R]: per-range status from REPAIR_RANGES,
 * falling back to the per-peer REPAIR_STATUS of a node older than it
 * (status and a plain now only: a range asks for what it cannot do). */
static int cmd_repair(struct chorus_client *c, const struct cli *cl, bool now) {
  struct chorus_result res;
  uint64_t first = cl->range ? cl->range_first : 0;
  uint64_t last = cl->range ? cl->range_last : UINT64_MAX;
  int rc;
  bool ranges = true;
  if (now && !cl->range) {
    /* As before --range: one exchange with the next peer in turn. */
    rc = chorus_repair_now(c, &res);
    if (rc == CHORUS_OK) {
      chorus_result_free(&res);
      rc = chorus_repair_ranges(c, first, last, false, &res);
    }
  } else {
    rc = chorus_repair_ranges(c, first, last, now, &res);
  }
  if (rc == CHORUS_ENOTSUP && res.from_node && !cl->range) {
    chorus_result_free(&res);
    ranges = false;
    rc = chorus_repair_status(c, &res);
  }
  if (rc != CHORUS_OK) {
    rc = fail(&res);
    chorus_result_free(&res);
    return rc;
  }
  if (cl->json) {
    printf("{\"node\":\"%016" PRIx64 "\",\"node_name\":", res.node_id);
    json_cstr(res.node_name);
    printf(",\"server\":");
    json_cstr(res.server);
    printf(",\"stats\":{");
    for (size_t i = 0; i < res.nstats; i++) {
      if (i)
        putchar(',');
      json_cstr(res.stats[i].name);
      printf(":%" PRId64, res.stats[i].value);
    }
    printf("}");
    if (ranges)
      json_ranges(&res);
    printf("}\n");
    chorus_result_free(&res);
    return 0;
  }
  printf("node %s (%016" PRIx64 ") at %s", or_dash(res.node_name), res.node_id,
         res.server);
  if (now && cl->range)
    printf(": exchanges requested with %" PRId64 " peers\n",
           stat_value(&res, "aae.requested_peers"));
  else
    printf("%s\n", now ? ": exchange requested" : "");
  printf("tree %s, exchange every %" PRId64 " ms%s; %" PRId64
         " exchanges completed, %" PRId64 " abandoned, %" PRId64
         " keys repaired\n",
         stat_value(&res, "aae.tree_built") == 1 ? "built" : "being rebuilt",
         stat_value(&res, "aae.interval_ms"),
         stat_value(&res, "aae.busy") == 1 ? " (one under way)" : "",
         stat_value(&res, "aae.completed"), stat_value(&res, "aae.aborted"),
         stat_value(&res, "aae.keys_repaired"));
  printf("%-16s  %-14s  %9s  %7s  %8s  %13s  %12s\n", "peer", "last completed",
         "exchanges", "aborted", "segments", "keys_repaired", "bytes");
  int64_t wall = (int64_t)time(NULL) * 1000;
  for (size_t i = 0; i < res.nstats; i++) {
    const char *nm = res.stats[i].name;
    size_t len = strlen(nm);
    const char *suffix = ".last_completed_ms";
    if (strncmp(nm, "peer.", 5) != 0 || len != 5 + 16 + strlen(suffix) ||
        strcmp(nm + 21, suffix) != 0)
      continue;
    char id[17], key[64], ago[32] = "never";
    memcpy(id, nm + 5, 16);
    id[16] = '\0';
    if (res.stats[i].value > 0)
      snprintf(ago, sizeof ago, "%" PRId64 " s ago",
               (wall - res.stats[i].value) / 1000);
    int64_t v[5];
    const char *f[5] = {"exchanges", "aborted", "segments_differing",
                        "keys_repaired", "bytes"};
    for (int k = 0; k < 5; k++) {
      snprintf(key, sizeof key, "peer.%s.%s", id, f[k]);
      v[k] = stat_value(&res, key);
    }
    printf("%-16s  %-14s  %9" PRId64 "  %7" PRId64 "  %8" PRId64 "  %13" PRId64
           "  %12" PRId64 "\n",
           id, ago, v[0], v[1], v[2], v[3], v[4]);
  }
  if (ranges) {
    int64_t all = stat_value(&res, "aae.ranges");
    size_t repaired = 0, never = 0;
    for (size_t i = 0; i < res.nranges; i++) {
      repaired += res.ranges[i].repaired;
      never += res.ranges[i].exchanges == 0;
    }
    printf("%" PRId64 " ranges replicated here%s%s: %zu repaired since the "
           "node started, %zu never exchanged\n",
           all, cl->range ? " overlap the range asked" : "",
           (int64_t)res.nranges < all ? " (the first shown)" : "", repaired,
           never);
    print_ranges(&res);
  } else {
    printf("(per-range status needs a newer node)\n");
  }
  chorus_result_free(&res);
  return 0;
}

static int cmd_ring(struct chorus_client *c, const struct cli *cl) {
  struct chorus_result res;
  if (chorus_ring(c, &res) != CHORUS_OK) {
    int rc = fail(&res);
    chorus_result_free(&res);
    return rc;
  }
  if (cl->json) {
    printf("{\"epoch\":%" PRIu64 ",\"vnodes\":%" PRIu32 ",\"replication\":",
           res.epoch, res.vnodes);
    json_cstr(res.replication);
    printf(",\"nodes\":[");
    bool first = true;
    for (size_t i = 0; i < res.nnodes; i++) {
      const struct chorus_node_info *n = &res.nodes[i];
      if (!n->in_ring)
        continue;
      printf("%s{\"id\":\"%016" PRIx64 "\",\"name\":", first ? "" : ",", n->id);
      first = false;
      json_cstr(n->name);
      printf(",\"addr\":");
      json_cstr(n->addr);
      printf(",\"dc\":");
      json_cstr(n->dc);
      printf(",\"rack\":");
      json_cstr(n->rack);
      printf(",\"state\":\"%s\",\"share\":%.6f}",
             chorus_ring_state_name(n->ring_state), n->share);
    }
    printf("]}\n");
  } else {
    printf("ring epoch %" PRIu64 ", %" PRIu32 " vnodes per node, replication "
           "%s\n",
           res.epoch, res.vnodes, res.replication[0] ? res.replication : "?");
    int wn = 4;
    for (size_t i = 0; i < res.nnodes; i++)
      wn = res.nodes[i].in_ring ? widen(wn, res.nodes[i].name) : wn;
    printf("%-*s  %-16s  %-21s  %-8s  %-8s  %-8s  %7s\n", wn, "name", "id",
           "address", "dc", "rack", "state", "share");
    for (size_t i = 0; i < res.nnodes; i++) {
      const struct chorus_node_info *n = &res.nodes[i];
      if (!n->in_ring)
        continue;
      printf("%-*s  %016" PRIx64 "  %-21s  %-8s  %-8s  %-8s  %6.2f%%\n", wn,
             or_dash(n->name), n->id, or_dash(n->addr), or_dash(n->dc),
             or_dash(n->rack), chorus_ring_state_name(n->ring_state),
             100.0 * n->share);
    }
  }
  chorus_result_free(&res);
  return 0;
}

/* ------------------------------------------------------------------------
 * Maps: map update KEY OP..., map get KEY
 * ------------------------------------------------------------------------ */

static const char *const map_type_names[] = {"",    "register", "counter",
                                             "set", "flag",     "map"};

static int map_type_of(const char *s, size_t len) {
  for (int t = CHORUS_MAP_REGISTER; t <= CHORUS_MAP_MAP; t++)
    if (strlen(map_type_names[t]) == len &&
        memcmp(map_type_names[t], s, len) == 0)
      return t;
  return 0;
}

/* One OP of map update into *@op; @path gets the copy of its path that
 * op->path points into (PATH:TYPE:ACTION[:ARG], or -PATH:TYPE). */
static int map_op_parse(const char *arg, struct chorus_map_op *op, char *path,
                        size_t cap) {
  static const char form[] =
      "PATH:register:set:VALUE, PATH:counter:+N|-N, PATH:set:add|remove:X, "
      "PATH:flag:enable|disable, PATH:TYPE:remove or -PATH:TYPE";
  memset(op, 0, sizeof *op);
  bool minus = arg[0] == '-';
  const char *p = arg + minus, *c1 = strchr(p, ':');
  if (c1 == NULL || (size_t)(c1 - p) >= cap)
    return usage_error("map: \"%s\" is not one of %s", arg, form);
  memcpy(path, p, (size_t)(c1 - p));
  path[c1 - p] = '\0';
  op->path = path;
  const char *t = c1 + 1, *c2 = strchr(t, ':');
  int type = map_type_of(t, c2 ? (size_t)(c2 - t) : strlen(t));
  if (type == 0)
    return usage_error("map: \"%s\": the type is register, counter, set, "
                       "flag or map",
                       arg);
  op->type = type;
  const char *act = c2 ? c2 + 1 : "";
  const char *c3 = strchr(act, ':');
  size_t alen = c3 ? (size_t)(c3 - act) : strlen(act);
  const char *rest = c3 ? c3 + 1 : NULL;
#define ACT(s) (alen == strlen(s) && memcmp(act, s, alen) == 0)
  if (minus || (ACT("remove") && type != CHORUS_MAP_SET && rest == NULL)) {
    if (minus && c2 != NULL)
      return usage_error("map: \"%s\": a remove is -PATH:TYPE", arg);
    op->kind = CHORUS_MAP_OP_REMOVE;
  } else if (type == CHORUS_MAP_REGISTER && ACT("set") && rest != NULL) {
    op->kind = CHORUS_MAP_OP_REGISTER_SET;
    op->data = rest;
    op->len = strlen(rest);
  } else if (type == CHORUS_MAP_COUNTER && c2 != NULL && rest == NULL) {
    char *end;
    errno = 0;
    long long d = strtoll(act, &end, 10);
    if (errno || *end || end == act || d == 0)
      return usage_error("map: \"%s\": a counter takes +N or -N (not 0)", arg);
    op->kind = CHORUS_MAP_OP_COUNTER_ADD;
    op->amount = d;
  } else if (type == CHORUS_MAP_SET && (ACT("add") || ACT("remove")) &&
             rest != NULL) {
    op->kind = ACT("add") ? CHORUS_MAP_OP_SET_ADD : CHORUS_MAP_OP_SET_REMOVE;
    op->data = rest;
    op->len = strlen(rest);
  } else if (type == CHORUS_MAP_SET && ACT("remove") && rest == NULL) {
    op->kind = CHORUS_MAP_OP_REMOVE;
  } else if (type == CHORUS_MAP_FLAG && (ACT("enable") || ACT("disable")) &&
             rest == NULL) {
    op->kind =
        ACT("enable") ? CHORUS_MAP_OP_FLAG_ENABLE : CHORUS_MAP_OP_FLAG_DISABLE;
  } else {
    return usage_error("map: \"%s\" is not one of %s", arg, form);
  }
#undef ACT
  return 0;
}

/* Text: one line per field, "NAME:TYPE = VALUE", a nested map's fields
 * indented under "NAME:map". */
static int map_print_visit(void *arg, const struct chorus_map_field *f) {
  (void)arg;
  printf("%*s%.*s:%s", (int)(2 * (f->depth - 1)), "", (int)f->name_len,
         (const char *)f->name, map_type_names[f->type]);
  switch (f->type) {
  case CHORUS_MAP_REGISTER:
    fputs(" = ", stdout);
    fwrite(f->value.ptr, 1, f->value.len, stdout);
    break;
  case CHORUS_MAP_COUNTER:
    printf(" = %" PRId64, f->counter);
    break;
  case CHORUS_MAP_FLAG:
    printf(" = %s", f->flag ? "true" : "false");
    break;
  case CHORUS_MAP_SET:
    fputs(" = {", stdout);
    for (size_t i = 0; i < f->nmembers; i++) {
      fputs(i ? ", " : "", stdout);
      fwrite(f->members[i].ptr, 1, f->members[i].len, stdout);
    }
    putchar('}');
    break;
  default:
    break;
  }
  putchar('\n');
  return 0;
}

static int count_fields(void *arg, const struct chorus_map_field *f) {
  (void)f;
  ++*(size_t *)arg;
  return 0;
}

static int map_print(const struct cli *cl, const char *key,
                     const struct chorus_result *res) {
  size_t nfields = 0;
  int rc = chorus_map_walk(res, count_fields, &nfields);
  if (rc != CHORUS_OK) {
    fprintf(stderr, "chorus: %s: the map does not decode (%s)\n", key,
            chorus_errname(rc));
    return 1;
  }
  if (cl->json) {
    size_t need = 0;
    (void)chorus_map_json(res, NULL, 0, &need);
    char *js = chorus_malloc(need + 1);
    if (js == NULL || chorus_map_json(res, js, need + 1, NULL) != CHORUS_OK) {
      chorus_free(js);
      fprintf(stderr, "chorus: out of memory\n");
      return 1;
    }
    printf("{\"found\":%s,\"type\":\"map\",\"map\":%s,\"context\":",
           nfields > 0 ? "true" : "false", js);
    json_hex(res->context);
    printf("}\n");
    chorus_free(js);
    return 0;
  }
  (void)chorus_map_walk(res, map_print_visit, NULL);
  print_context(res);
  if (nfields == 0)
    fprintf(stderr, "chorus: %s: not found\n", key);
  return 0;
}

static bool map_op_removes(const struct chorus_map_op *op) {
  return op->kind == CHORUS_MAP_OP_REMOVE ||
         op->kind == CHORUS_MAP_OP_SET_REMOVE ||
         op->kind == CHORUS_MAP_OP_FLAG_DISABLE;
}

/* map update KEY OP... [--context CTX], map get KEY. An update that
 * removes (a field, a set member, a flag's enables) without --context
 * reads the map first, at the request's levels, and removes what that
 * read saw, as del does. */
static int cmd_map(struct chorus_client *c, const struct cli *cl,
                   const uint8_t *ctx, size_t ctx_len) {
  static const char form[] = "map update KEY OP... [--context CTX] | map get "
                             "KEY";
  int rc = need_args(cl, 2, -1, form);
  if (rc != 0)
    return rc;
  const char *sub = cl->argv[1], *key = cl->argv[2];
  struct chorus_result res;
  memset(&res, 0, sizeof res);
  if (strcmp(sub, "get") == 0) {
    if (cl->argc != 3)
      return usage_error("usage: chorus %s", form);
    if (chorus_map_get(c, key, strlen(key), &cl->opts, &res) != CHORUS_OK)
      rc = fail(&res);
    else
      rc = map_print(cl, key, &res);
    print_trace(c, cl, &res);
    chorus_result_free(&res);
    return rc;
  }
  if (strcmp(sub, "update") != 0)
    return usage_error("map: \"%s\" is not update or get", sub);
  size_t n = (size_t)cl->argc - 3;
  if (n == 0)
    return usage_error("usage: chorus %s", form);
  struct chorus_map_op ops[64];
  char paths[64][CHORUS_MAP_DEPTH_MAX * (CHORUS_MAP_NAME_MAX + 1)];
  bool removes = false;
  for (size_t i = 0; i < n; i++) {
    if ((rc = map_op_parse(cl->argv[3 + i], &ops[i], paths[i],
                           sizeof paths[i])) != 0)
      return rc;
    removes |= map_op_removes(&ops[i]);
  }
  uint8_t *read_ctx = NULL;
  if (removes && ctx == NULL) {
    if (chorus_map_get(c, key, strlen(key), &cl->opts, &res) != CHORUS_OK) {
      rc = fail(&res);
      chorus_result_free(&res);
      return rc;
    }
    if (res.context.len > 0 &&
        (read_ctx = chorus_memdup(res.context.ptr, res.context.len)) == NULL) {
      chorus_result_free(&res);
      fprintf(stderr, "chorus: out of memory\n");
      return 1;
    }
    ctx = read_ctx;
    ctx_len = res.context.len;
    chorus_result_free(&res);
  }
  if (chorus_map_update(c, key, strlen(key), ops, n, ctx, ctx_len, &cl->opts,
                        &res) == CHORUS_OK) {
    print_warnings(key, &res);
    printf(cl->json ? "{\"ok\":true}\n" : "ok\n");
    rc = 0;
  } else {
    rc = fail(&res);
  }
  print_trace(c, cl, &res);
  chorus_result_free(&res);
  chorus_free(read_ctx);
  return rc;
}

/* put KEY VALUE --fence NAME:TOKEN (chorus_cli_lock.c). */
static int fenced_put(struct chorus_client *c, const struct cli *cl,
                      const char *cmd) {
  if (strcmp(cmd, "put") != 0 || cl->if_absent || cl->if_value ||
      cl->if_match || cl->serial || cl->context_hex != NULL || cl->opts.ttl_ms)
    return usage_error("--fence is for put KEY VALUE (without --if-absent, "
                       "--if-value, --if-match, --context or --ttl)");
  bool from_file = cl->value_file != NULL;
  int rc = need_args(cl, from_file ? 1 : 2, from_file ? 1 : 2,
                     "put KEY VALUE|- --fence NAME:TOKEN");
  if (rc != 0)
    return rc;
  uint8_t *val = NULL;
  size_t val_len = 0;
  const char *src = from_file ? cl->value_file : cl->argv[2];
  if (from_file || strcmp(src, "-") == 0) {
    if (read_value(src, CHORUS_MAX_VALUE, "value", &val, &val_len) != 0)
      return 2;
  } else if ((val_len = strlen(src)) > 0 &&
             (val = chorus_memdup(src, val_len)) == NULL) {
    fprintf(stderr, "chorus: out of memory\n");
    return 2;
  }
  rc = cmd_fenced_put(c, cl, val, val_len);
  chorus_free(val);
  return rc;
}

static int run(struct chorus_client *c, const struct cli *cl) {
  const char *cmd = cl->argv[0];
  uint8_t *ctx = NULL, *val = NULL, *in = NULL;
  size_t ctx_len = 0, val_len = 0, in_len = 0;
  struct chorus_result res;
  memset(&res, 0, sizeof res);
  int rc;
  if (cl->context_hex != NULL &&
      hex_decode(cl->context_hex, &ctx, &ctx_len) != CHORUS_OK)
    return usage_error("--context: \"%s\" is not hexadecimal", cl->context_hex);
  const char *key = cl->argc > 1 ? cl->argv[1] : "";
  bool set_cmd = strcmp(cmd, "sadd") == 0 || strcmp(cmd, "srem") == 0;
  if (cl->range && strcmp(cmd, "repair") != 0) {
    rc = usage_error("--range is for repair status and repair now");
    goto out;
  }
  if (cl->value_file != NULL && strcmp(cmd, "put") != 0 && !set_cmd &&
      strcmp(cmd, "lww") != 0) {
    rc = usage_error("--value-file is for put, sadd, srem and lww set");
    goto out;
  }
  if (cl->opts.ttl_ms && strcmp(cmd, "put") != 0 &&
      strcmp(cmd, "keyspace") != 0 && strcmp(cmd, "lock") != 0) {
    rc = usage_error("--ttl is for put, lock and keyspace create|alter");
    goto out;
  }
  if ((cl->ks_type || cl->ks_replicas || cl->ks_siblings_warn >= 0 ||
       cl->ks_siblings_max >= 0) &&
      strcmp(cmd, "keyspace") != 0) {
    rc = usage_error("--type, --replicas, --siblings-warn and --siblings-max "
                     "are for keyspace create|alter");
    goto out;
  }
  if ((cl->key_file || cl->show_key) &&
      (strcmp(cmd, "cluster") != 0 || cl->argc < 2 ||
       strcmp(cl->argv[1], "key") != 0)) {
    rc = usage_error("--file and --show-key are for cluster key install");
    goto out;
  }
  if (cl->force && strcmp(cmd, "cluster") != 0) {
    rc = usage_error("--force is for cluster remove");
    goto out;
  }
  if (strcmp(cmd, "lock") == 0) {
    rc = cmd_lock(c, cl);
    goto out;
  }
  if (cl->fence != NULL) {
    rc = fenced_put(c, cl, cmd);
    goto out;
  }
  if ((cl->wait || cl->wait_timeout || cl->rack || cl->vnodes) &&
      strcmp(cmd, "cluster") != 0) {
    rc = usage_error("--wait, --wait-timeout, --rack and --vnodes are for "
                     "cluster commands");
    goto out;
  }
  if (cl->if_absent || cl->if_value || cl->if_match || cl->serial) {
    rc = cmd_cas(c, cl, cmd);
    goto out;
  }
  if (strcmp(cmd, "get") == 0) {
    if ((rc = need_args(cl, 1, 1, "get KEY [-r N | -c LEVEL]")) == 0)
      rc = cmd_get(c, cl);
    goto out;
  }
  if (strcmp(cmd, "status") == 0) {
    if ((rc = need_args(cl, 0, 0, "status")) == 0)
      rc = cmd_status(c, cl);
    goto out;
  }
  if (strcmp(cmd, "repair") == 0) {
    if ((rc = need_args(cl, 1, 1, "repair status|now")) != 0)
      goto out;
    if (strcmp(cl->argv[1], "status") == 0 || strcmp(cl->argv[1], "now") == 0)
      rc = cmd_repair(c, cl, strcmp(cl->argv[1], "now") == 0);
    else
      rc = usage_error("repair: \"%s\" is not status or now", cl->argv[1]);
    goto out;
  }
  if (strcmp(cmd, "ring") == 0) {
    if ((rc = need_args(cl, 0, 0, "ring")) == 0)
      rc = cmd_ring(c, cl);
    goto out;
  }
  if (strcmp(cmd, "cluster") == 0) {
    rc = cmd_cluster(c, cl);
    goto out;
  }
  if (strcmp(cmd, "keyspace") == 0) {
    rc = cmd_keyspace(c, cl);
    goto out;
  }
  if (strcmp(cmd, "user") == 0) {
    rc = cmd_user(c, cl);
    goto out;
  }
  if (strcmp(cmd, "lww") == 0) {
    rc = cmd_lww(c, cl);
    goto out;
  }
  if (strcmp(cmd, "map") == 0) {
    rc = cmd_map(c, cl, ctx, ctx_len);
    goto out;
  }
  if (strcmp(cmd, "put") == 0) {
    bool from_file = cl->value_file != NULL;
    if ((rc = need_args(cl, from_file ? 1 : 2, from_file ? 1 : 2,
                        "put KEY VALUE|- [--context CTX], or put KEY "
                        "--value-file FILE")) != 0)
      goto out;
    const char *src = from_file ? cl->value_file : cl->argv[2];
    if (from_file || strcmp(src, "-") == 0) {
      if ((rc = read_value(src, CHORUS_MAX_VALUE, "value", &val, &val_len)) !=
          0)
        goto out;
      chorus_put(c, key, strlen(key), val, val_len, ctx, ctx_len, &cl->opts,
                 &res);
    } else {
      chorus_put(c, key, strlen(key), src, strlen(src), ctx, ctx_len, &cl->opts,
                 &res);
    }
  } else if (strcmp(cmd, "del") == 0) {
    if ((rc = need_args(cl, 1, 1, "del KEY [--context CTX]")) != 0)
      goto out;
    if (cl->context_hex == NULL) {
      /* A node refuses a delete that names nothing (an empty context,
       * docs/PROTOCOL.md): read first, at the request's levels, and
       * delete the siblings that read saw. */
      if (chorus_get(c, key, strlen(key), &cl->opts, &res) != CHORUS_OK) {
        rc = fail(&res);
        goto out;
      }
      if (res.context.len > 0 &&
          (ctx = chorus_memdup(res.context.ptr, res.context.len)) == NULL) {
        fprintf(stderr, "chorus: out of memory\n");
        rc = 1;
        goto out;
      }
      ctx_len = res.context.len;
      chorus_result_free(&res);
    }
    chorus_delete(c, key, strlen(key), ctx, ctx_len, &cl->opts, &res);
  } else if (strcmp(cmd, "incr") == 0) {
    if ((rc = need_args(cl, 1, 2, "incr KEY [DELTA]")) != 0)
      goto out;
    int64_t delta = 1;
    if (cl->argc > 2) {
      char *end;
      errno = 0;
      long long d = strtoll(cl->argv[2], &end, 10);
      if (errno || *end || end == cl->argv[2] || d == 0) {
        rc = usage_error("incr: DELTA \"%s\" must be a non-zero integer",
                         cl->argv[2]);
        goto out;
      }
      delta = d;
    }
    chorus_counter_add(c, key, strlen(key), delta, &cl->opts, &res);
  } else if (set_cmd) {
    bool add = cmd[1] == 'a';
    if ((rc = need_args(cl, cl->value_file ? 1 : 2, -1,
                        add ? "sadd KEY MEMBER... [--value-file FILE]"
                            : "srem KEY MEMBER... [--value-file FILE] "
                              "[--context CTX]")) != 0)
      goto out;
    /* Members as given; "-" is standard input, --value-file one more. */
    struct chorus_bytes members[65];
    size_t n = 0;
    int stdin_uses = cl->value_file && strcmp(cl->value_file, "-") == 0;
    for (int i = 2; i < cl->argc; i++)
      stdin_uses += strcmp(cl->argv[i], "-") == 0;
    if (stdin_uses > 1) {
      rc = usage_error("standard input holds one member (\"-\" once)");
      goto out;
    }
    for (int i = 2; i < cl->argc; i++, n++) {
      if (strcmp(cl->argv[i], "-") == 0) {
        if ((rc = read_value("-", CHORUS_MAX_MEMBER, "member", &in, &in_len)) !=
            0)
          goto out;
        members[n] = (struct chorus_bytes){in, in_len};
        continue;
      }
      members[n].ptr = (const uint8_t *)cl->argv[i];
      members[n].len = strlen(cl->argv[i]);
    }
    if (cl->value_file != NULL) {
      const char *f = cl->value_file;
      bool std = strcmp(f, "-") == 0;
      if ((rc = read_value(f, CHORUS_MAX_MEMBER, "member", std ? &in : &val,
                           std ? &in_len : &val_len)) != 0)
        goto out;
      members[n++] = std ? (struct chorus_bytes){in, in_len}
                         : (struct chorus_bytes){val, val_len};
    }
    if (add)
      chorus_set_add(c, key, strlen(key), members, n, &cl->opts, &res);
    else
      chorus_set_remove(c, key, strlen(key), members, n, ctx, ctx_len,
                        &cl->opts, &res);
  } else if (strcmp(cmd, "smembers") == 0) {
    if ((rc = need_args(cl, 1, 1, "smembers KEY")) != 0)
      goto out;
    if (chorus_set_members(c, key, strlen(key), &cl->opts, &res) == CHORUS_OK) {
      if (cl->json) {
        putchar('{');
        print_list(cl, "members", &res);
        printf(",\"context\":");
        json_hex(res.context);
        printf("}\n");
      } else {
        print_list(cl, "members", &res);
        print_context(&res);
      }
      rc = 0;
      goto out;
    }
    rc = fail(&res);
    goto out;
  } else {
    rc = usage_error("unknown command \"%s\"", cmd);
    goto out;
  }
  rc = res.status == CHORUS_OK ? print_write(cl, &res) : fail(&res);
  print_trace(c, cl, &res);
out:
  chorus_result_free(&res);
  chorus_free(ctx);
  chorus_free(val);
  chorus_free(in);
  return rc;
}

int main(int argc, char **argv) {
  struct cli cl;
  memset(&cl, 0, sizeof cl);
  cl.ks_siblings_warn = cl.ks_siblings_max = -1;
  int rc = parse(&cl, argc, argv);
  if (rc >= 0) {
    chorus_free(cl.hosts);
    return rc;
  }
  if (cl.argc == 0) {
    chorus_free(cl.hosts);
    return usage_error("no command given");
  }
  if (cl.hosts == NULL) {
    const char *env = getenv("CHORUS_HOST");
    if (add_host(&cl, env && *env ? env : DEFAULT_HOST) != 0)
      return 1;
  }
  if (cl.cluster == NULL) {
    const char *env = getenv("CHORUS_CLUSTER");
    cl.cluster = env && *env ? env : "chorus";
  }
  const char *const tls_env[] = {"CHORUS_TLS_CA", "CHORUS_TLS_CERT",
                                 "CHORUS_TLS_KEY", "CHORUS_TLS_CRL"};
  const char **tls_dst[] = {&cl.tls_ca, &cl.tls_cert, &cl.tls_key, &cl.tls_crl};
  for (size_t t = 0; t < 4; t++) {
    const char *env = getenv(tls_env[t]);
    if (*tls_dst[t] == NULL && env && *env)
      *tls_dst[t] = env;
  }
  if (cl.user == NULL) {
    const char *env = getenv("CHORUS_USER");
    cl.user = env && *env ? env : NULL;
  }
  if (cl.user != NULL) {
    long pl = cli_read_password(cl.user, "CHORUS_PASSWORD", cl.password,
                                sizeof cl.password);
    if (pl <= 0 || pl > 1024) {
      chorus_free(cl.hosts);
      return usage_error("--user %s needs a password: CHORUS_PASSWORD or "
                         "typed at the prompt (1..1024 bytes)",
                         cl.user);
    }
  }
  struct chorus_config cfg;
  chorus_config_init(&cfg);
  cfg.cluster = cl.cluster;
  cfg.tls_ca = cl.tls_ca;
  cfg.tls_cert = cl.tls_cert;
  cfg.tls_key = cl.tls_key;
  cfg.tls_crl = cl.tls_crl;
  cfg.user = cl.user;
  cfg.password = cl.user != NULL ? cl.password : NULL;
  /* --dc: the client's datacenter for data commands (LOCAL levels count
   * its replicas); cluster plan join's new node's for cluster ones. */
  if (cl.dc != NULL && cl.dc[0] != '\0' &&
      (cl.argc == 0 || strcmp(cl.argv[0], "cluster") != 0))
    cfg.dc = cl.dc;
  struct chorus_client *c = NULL;
  char err[CHORUS_ERRMSG_SIZE] = "";
  rc = chorus_client_open(cl.hosts, &cfg, &c, err);
  memset(cl.password, 0, sizeof cl.password); /* the client has its copy */
  if (rc != CHORUS_OK) {
    fprintf(stderr, "chorus: %s\n", err);
    chorus_free(cl.hosts);
    return rc == CHORUS_EINVAL ? EXIT_USAGE : 1;
  }
  rc = run(c, &cl);
  chorus_client_close(c);
  chorus_free(cl.hosts);
  fflush(stdout);
  return rc;
}
