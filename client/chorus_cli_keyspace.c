/* chorus_cli_keyspace.c: `chorus keyspace list|create|alter|drop` (issue
 * 21; libchorus.h, KEYSPACES). A keyspace lives in the cluster metadata;
 * the commands that change one are answered once the metadata applied
 * them, and print every keyspace after. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_cli_int.h"

/* level_str: a default level as people write it ("-": the node's). */
static const char *level_str(int32_t l, char *buf, size_t cap) {
  if (l == 0)
    return "-";
  if (l > 0) {
    snprintf(buf, cap, "%" PRId32, l);
    return buf;
  }
  const char *n = chorus_level_name(l);
  return n != NULL ? n : "?";
}

static void print_json(const struct chorus_keyspaces *k) {
  printf("{\"applied\": %" PRIu64 ", \"keyspaces\": [", k->applied);
  for (size_t i = 0; i < k->n; i++) {
    const struct chorus_keyspace *s = &k->keyspaces[i];
    printf("%s{\"name\": ", i ? ", " : "");
    json_cstr(s->name);
    printf(", \"id\": %" PRIu32 ", \"type\": \"%s\", \"replication\": ", s->id,
           chorus_keyspace_type_name(s->type));
    json_cstr(s->replication);
    printf(", \"read\": %" PRId32 ", \"write\": %" PRId32
           ", \"ttl_ms\": %" PRIu64 ", \"siblings_warn\": %" PRIu32
           ", \"siblings_max\": %" PRIu32 "}",
           s->read, s->write, s->ttl_ms, s->siblings_warn, s->siblings_max);
  }
  printf("]}\n");
}

static void print_table(const struct chorus_keyspaces *k) {
  int w = 4;
  for (size_t i = 0; i < k->n; i++)
    w = widen(w, k->keyspaces[i].name);
  printf("%-*s  %6s  %-7s  %-12s  %-12s  %-12s  %10s  %s\n", w, "NAME", "ID",
         "TYPE", "REPLICATION", "READ", "WRITE", "TTL_S", "SIBLINGS");
  for (size_t i = 0; i < k->n; i++) {
    const struct chorus_keyspace *s = &k->keyspaces[i];
    printf("%-*s  %6" PRIu32 "  %-7s  %-12s  ", w, s->name, s->id,
           chorus_keyspace_type_name(s->type),
           s->replication[0] ? s->replication : "(cluster's)");
    char rb[16], wb[16];
    const char *r = level_str(s->read, rb, sizeof rb),
               *wr = level_str(s->write, wb, sizeof wb);
    printf("%-12s  %-12s  ", r, wr);
    if (s->ttl_ms == 0)
      printf("%10s  ", "-");
    else
      printf("%10.3f  ", (double)s->ttl_ms / 1000.0);
    if (s->siblings_warn == 0 && s->siblings_max == 0)
      printf("-\n");
    else
      printf("warn %" PRIu32 ", max %" PRIu32 "\n", s->siblings_warn,
             s->siblings_max);
  }
  if (k->n == 0)
    printf("(no keyspace: requests use \"default\")\n");
}

int cmd_keyspace(struct chorus_client *c, const struct cli *cl) {
  if (cl->argc < 2)
    return usage_error("usage: chorus keyspace list [NAME] | create NAME "
                       "[--type T] ... | alter NAME ... | drop NAME");
  const char *sub = cl->argv[1];
  bool list = strcmp(sub, "list") == 0 || strcmp(sub, "describe") == 0;
  bool define = strcmp(sub, "create") == 0 || strcmp(sub, "alter") == 0;
  bool drop = strcmp(sub, "drop") == 0;
  if (!list && !define && !drop)
    return usage_error("keyspace: \"%s\" is not list, create, alter or drop",
                       sub);
  if (list ? cl->argc > 3 : cl->argc != 3)
    return usage_error("usage: chorus keyspace %s %s", sub,
                       list ? "[NAME]" : "NAME");
  if (!define &&
      (cl->ks_type || cl->ks_replicas || cl->opts.ttl_ms || cl->opts.r ||
       cl->opts.w || cl->ks_siblings_warn >= 0 || cl->ks_siblings_max >= 0))
    return usage_error("settings are for keyspace create and alter");
  const char *name = cl->argc == 3 ? cl->argv[2] : NULL;
  struct chorus_keyspaces *out = NULL;
  int rc;
  if (list) {
    rc = chorus_keyspace_list(c, name, &out);
  } else if (drop) {
    rc = chorus_keyspace_drop(c, name, &out);
  } else {
    struct chorus_keyspace ks;
    memset(&ks, 0, sizeof ks);
    if (strlen(name) >= sizeof ks.name)
      return usage_error("a keyspace's name is 1..47 bytes");
    if (strcmp(sub, "alter") == 0) {
      /* ALTER replaces every setting: the ones not given stay as they are
       * (read now; a change by another operator meanwhile is lost, as
       * with any read-modify-write). */
      struct chorus_keyspaces *have = NULL;
      if ((rc = chorus_keyspace_list(c, name, &have)) != CHORUS_OK)
        return client_failed(c, rc);

      if (have->n == 1)
        ks = have->keyspaces[0];
      chorus_keyspaces_free(have);
    }
    strcpy(ks.name, name);
    if (cl->ks_type != NULL &&
        (ks.type = chorus_keyspace_type_parse(cl->ks_type)) < 0)
      return usage_error("--type \"%s\" is not any, kv, lww, counter, set or "
                         "map",
                         cl->ks_type);
    if (cl->ks_replicas != NULL) {
      if (strlen(cl->ks_replicas) >= sizeof ks.replication)
        return usage_error("--replicas is at most 255 bytes");
      strcpy(ks.replication, cl->ks_replicas);
    }
    if (cl->r_given)
      ks.read = cl->opts.r;
    if (cl->w_given)
      ks.write = cl->opts.w;
    if (cl->opts.ttl_ms)
      ks.ttl_ms = cl->opts.ttl_ms;
    if (cl->ks_siblings_warn >= 0)
      ks.siblings_warn = (uint32_t)cl->ks_siblings_warn;
    if (cl->ks_siblings_max >= 0)
      ks.siblings_max = (uint32_t)cl->ks_siblings_max;
    rc = strcmp(sub, "create") == 0 ? chorus_keyspace_create(c, &ks, &out)
                                    : chorus_keyspace_alter(c, &ks, &out);
  }
  if (rc != CHORUS_OK)
    return client_failed(c, rc);

  if (cl->json)
    print_json(out);
  else
    print_table(out);
  chorus_keyspaces_free(out);
  return 0;
}
