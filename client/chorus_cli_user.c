/* chorus_cli_user.c: `chorus user list|add|passwd|drop|grant|revoke`
 * (issue 24; libchorus.h, USERS). A password is read from CHORUS_PASSWORD
 * or, without it, from the terminal with echo off (or one line of a
 * standard input that is not a terminal), never from the command line,
 * where every user of the machine could read it in the process list. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "chorus_cli_int.h"

static void print_json(const struct chorus_users *u) {
  printf("{\"applied\": %" PRIu64 ", \"users\": [", u->applied);
  for (size_t i = 0; i < u->n; i++) {
    const struct chorus_user *s = &u->users[i];
    printf("%s{\"name\": ", i ? ", " : "");
    json_cstr(s->name);
    printf(", \"grants\": [");
    for (size_t g = 0; g < s->ngrants; g++) {
      printf("%s{\"role\": \"%s\", \"keyspace\": ", g ? ", " : "",
             chorus_role_name(s->grants[g].role));
      if (s->grants[g].keyspace[0])
        json_cstr(s->grants[g].keyspace);
      else
        printf("null");
      printf("}");
    }
    printf("]}");
  }
  printf("]}\n");
}

static void print_table(const struct chorus_users *u) {
  int w = 4;
  for (size_t i = 0; i < u->n; i++)
    w = widen(w, u->users[i].name);
  printf("%-*s  %s\n", w, "NAME", "GRANTS");
  for (size_t i = 0; i < u->n; i++) {
    const struct chorus_user *s = &u->users[i];
    printf("%-*s  ", w, s->name);
    if (s->ngrants == 0)
      printf("-");
    for (size_t g = 0; g < s->ngrants; g++)
      printf("%s%s on %s", g ? ", " : "", chorus_role_name(s->grants[g].role),
             s->grants[g].keyspace[0] ? s->grants[g].keyspace : "*");
    printf("\n");
  }
  if (u->n == 0)
    printf("(no user)\n");
}

long cli_read_password(const char *name, const char *env_name, char *buf,
                       size_t cap) {
  const char *env = env_name != NULL ? getenv(env_name) : NULL;
  if (env != NULL) {
    size_t n = strlen(env);
    if (n >= cap)
      return -1;
    memcpy(buf, env, n + 1);
    return (long)n;
  }
  bool tty = isatty(STDIN_FILENO);
  struct termios old, quiet;
  if (tty) {
    fprintf(stderr, "password for %s: ", name);
    fflush(stderr);
    if (tcgetattr(STDIN_FILENO, &old) == 0) {
      quiet = old;
      quiet.c_lflag &= ~(tcflag_t)ECHO;
      tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    } else {
      tty = false;
    }
  }
  char *got = fgets(buf, (int)cap, stdin);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fprintf(stderr, "\n");
  }
  if (got == NULL)
    return -1;
  size_t n = strcspn(buf, "\n");
  if (buf[n] != '\n' && !feof(stdin))
    return -1; /* longer than the buffer */
  buf[n] = '\0';
  return (long)n;
}

static int parse_cost(const char *s, struct chorus_pw_cost *out) {
  char *end;
  errno = 0;
  unsigned long ops = strtoul(s, &end, 10);
  if (errno || *end != ':' || ops == 0 || ops > 10)
    return -1;
  unsigned long kib = strtoul(end + 1, &end, 10);
  if (errno || *end || kib < 8 || kib > 262144)
    return -1;
  out->ops = (uint32_t)ops;
  out->mem_kib = (uint32_t)kib;
  return 0;
}

int cmd_user(struct chorus_client *c, const struct cli *cl) {
  static const char usage[] =
      "usage: chorus user list [NAME] | add NAME | passwd NAME | drop NAME | "
      "grant NAME read|write|admin [KEYSPACE] | revoke NAME ROLE [KEYSPACE]";
  if (cl->argc < 2)
    return usage_error("%s", usage);
  const char *sub = cl->argv[1];
  bool list = strcmp(sub, "list") == 0;
  bool add = strcmp(sub, "add") == 0, passwd = strcmp(sub, "passwd") == 0;
  bool drop = strcmp(sub, "drop") == 0;
  bool grant = strcmp(sub, "grant") == 0, revoke = strcmp(sub, "revoke") == 0;
  if (!list && !add && !passwd && !drop && !grant && !revoke)
    return usage_error("user: \"%s\" is not list, add, passwd, drop, grant "
                       "or revoke",
                       sub);
  int lo = list ? 2 : grant || revoke ? 4 : 3;
  int hi = list ? 3 : grant || revoke ? 5 : 3;
  if (cl->argc < lo || cl->argc > hi)
    return usage_error("%s", usage);
  if (cl->kdf != NULL && !add && !passwd)
    return usage_error("--kdf is for user add and passwd");
  const char *name = cl->argc > 2 ? cl->argv[2] : NULL;
  struct chorus_users *out = NULL;
  int rc;
  if (list) {
    rc = chorus_user_list(c, name, &out);
  } else if (drop) {
    rc = chorus_user_drop(c, name, &out);
  } else if (grant || revoke) {
    int role = chorus_role_parse(cl->argv[3]);
    if (role < 0)
      return usage_error("user %s: \"%s\" is not read, write or admin", sub,
                         cl->argv[3]);
    const char *ks = cl->argc == 5 ? cl->argv[4] : NULL;
    rc = grant ? chorus_user_grant(c, name, role, ks, &out)
               : chorus_user_revoke(c, name, role, ks, &out);
  } else {
    struct chorus_pw_cost cost, *costp = NULL;
    if (cl->kdf != NULL) {
      if (parse_cost(cl->kdf, &cost) != 0)
        return usage_error("--kdf needs PASSES:KIB (1..10 and 8..262144)");
      costp = &cost;
    }
    char pw[1026];
    /* Logged in, CHORUS_PASSWORD is the login's: the new password comes
     * from CHORUS_NEW_PASSWORD or the prompt. */
    const char *env = getenv("CHORUS_NEW_PASSWORD") != NULL
                          ? "CHORUS_NEW_PASSWORD"
                      : cl->user == NULL ? "CHORUS_PASSWORD"
                                         : NULL;
    long n = cli_read_password(name, env, pw, sizeof pw);
    if (n < 0 || n > 1024) {
      fprintf(stderr,
              "chorus: no password (set %s or type one; at most "
              "1024 bytes)\n",
              cl->user == NULL ? "CHORUS_PASSWORD" : "CHORUS_NEW_PASSWORD");
      return 1;
    }
    rc = add ? chorus_user_create(c, name, pw, (size_t)n, costp, &out)
             : chorus_user_passwd(c, name, pw, (size_t)n, costp, &out);
    memset(pw, 0, sizeof pw);
  }
  if (rc != CHORUS_OK)
    return client_failed(c, rc);

  if (cl->json)
    print_json(out);
  else
    print_table(out);
  chorus_users_free(out);
  return 0;
}
