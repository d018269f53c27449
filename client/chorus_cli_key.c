/* chorus_cli_key.c: `chorus cluster key list|install|use|remove` (issue
 * 24; libchorus.h, GOSSIP KEYS). A key is named by its id; its bytes are
 * printed only when asked (install --show-key, so that it can become the
 * --cluster-key of nodes started later), never by list. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "chorus_cli_int.h"

static void print_json(const struct chorus_keyring *k) {
  printf("{\"applied\": %" PRIu64 ", \"version\": %" PRIu64
         ", \"id\": \"%08" PRIx32 "\", \"keys\": [",
         k->applied, k->version, k->id);
  for (size_t i = 0; i < k->n; i++)
    printf("%s{\"id\": \"%08" PRIx32 "\", \"boot\": %s, \"since\": %" PRIu64
           ", \"primary\": %s}",
           i ? ", " : "", k->keys[i].id, k->keys[i].id == 0 ? "true" : "false",
           k->keys[i].since, k->keys[i].primary ? "true" : "false");
  printf("], \"behind\": ");
  json_cstr(k->behind);
  printf("}\n");
}

static void print_table(const struct chorus_keyring *k) {
  printf("%-8s  %-7s  %s\n", "ID", "PRIMARY", "INSTALLED AT");
  for (size_t i = 0; i < k->n; i++) {
    const struct chorus_gossip_key *g = &k->keys[i];
    if (g->id == 0)
      printf("%08" PRIx32 "  %-7s  boot (--cluster-key)\n", g->id,
             g->primary ? "yes" : "");
    else
      printf("%08" PRIx32 "  %-7s  keyring version %" PRIu64 "\n", g->id,
             g->primary ? "yes" : "", g->since);
  }
  printf("keyring version %" PRIu64 "; %s%s\n", k->version,
         k->behind[0] ? "not applied yet by: " : "applied by every member",
         k->behind);
}

/* read_key: 64 hex digits (as --cluster-key's file) from @path. */
static int read_key(const char *path, uint8_t key[CHORUS_GOSSIP_KEY_BYTES]) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "chorus: %s: %s\n", path, strerror(errno));
    return 1;
  }
  char buf[160];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                   buf[n - 1] == ' ' || buf[n - 1] == '\t'))
    buf[--n] = '\0';
  bool ok = n == 2 * CHORUS_GOSSIP_KEY_BYTES;
  for (size_t i = 0; ok && i < CHORUS_GOSSIP_KEY_BYTES; i++) {
    unsigned v;
    char two[3] = {buf[2 * i], buf[2 * i + 1], '\0'};
    char *end;
    v = (unsigned)strtoul(two, &end, 16);
    ok = *end == '\0' && two[0] != '+' && two[0] != '-' && two[0] != ' ';
    key[i] = (uint8_t)v;
  }
  memset(buf, 0, sizeof buf);
  if (!ok) {
    fprintf(stderr, "chorus: %s: expected 64 hex digits (32 bytes)\n", path);
    return 1;
  }
  return 0;
}

static int parse_id(const char *s, uint32_t *id) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 16);
  if (errno || *s == '\0' || *end != '\0' || *s == '-' || v > UINT32_MAX)
    return usage_error("\"%s\" is not a key id (8 hex digits; 0: the boot "
                       "key)",
                       s);
  *id = (uint32_t)v;
  return 0;
}

int cmd_cluster_key(struct chorus_client *c, const struct cli *cl) {
  const char *sub = cl->argc > 2 ? cl->argv[2] : "";
  if ((cl->key_file || cl->show_key) && strcmp(sub, "install") != 0)
    return usage_error("--file and --show-key are for cluster key install");
  struct chorus_keyring *out = NULL;
  int rc;
  if (strcmp(sub, "list") == 0) {
    if ((rc = need_args(cl, 2, 2, "cluster key list [--json]")) != 0)
      return rc;
    rc = chorus_cluster_key_list(c, &out);
  } else if (strcmp(sub, "install") == 0) {
    if ((rc = need_args(cl, 2, 2,
                        "cluster key install [--file F] [--show-key]")) != 0)
      return rc;
    uint8_t key[CHORUS_GOSSIP_KEY_BYTES];
    if (cl->key_file != NULL) {
      if (read_key(cl->key_file, key) != 0)
        return 1;
    } else if (getrandom(key, sizeof key, 0) != (ssize_t)sizeof key) {
      fprintf(stderr, "chorus: getrandom: %s\n", strerror(errno));
      return 1;
    }
    rc = chorus_cluster_key_install(c, key, &out);
    if (rc == CHORUS_OK && cl->show_key) {
      /* Asked for: the --cluster-key of nodes started once it is the
       * primary. */
      for (size_t i = 0; i < sizeof key; i++)
        fprintf(stderr, "%s%02x", i ? "" : "key: ", key[i]);
      fprintf(stderr, "\n");
    }
    memset(key, 0, sizeof key);
  } else if (strcmp(sub, "use") == 0 || strcmp(sub, "remove") == 0) {
    bool use = strcmp(sub, "use") == 0;
    if ((rc = need_args(cl, 3, 3,
                        use ? "cluster key use ID"
                            : "cluster key remove ID (0: the boot key)")) != 0)
      return rc;
    uint32_t id = 0;
    if ((rc = parse_id(cl->argv[3], &id)) != 0)
      return rc;
    rc = use ? chorus_cluster_key_use(c, id, &out)
             : chorus_cluster_key_remove(c, id, &out);
  } else {
    return usage_error("cluster key list|install|use|remove");
  }
  if (rc != CHORUS_OK)
    return client_failed(c, rc);
  if (cl->json)
    print_json(out);
  else if (strcmp(sub, "install") == 0)
    printf("installed key %08" PRIx32 "\n", out->id);
  else if (strcmp(sub, "list") == 0)
    print_table(out);
  else
    printf("%s key %08" PRIx32 "\n",
           strcmp(sub, "use") == 0 ? "sealing with" : "removed", out->id);
  chorus_keyring_free(out);
  return 0;
}
