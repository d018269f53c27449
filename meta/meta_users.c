/* meta_users.c: the users of the cluster metadata (issue 24; meta.h,
 * struct meta_user): who may log in (the verifier of a password, never
 * the password) and what each may do (grants of a role on a keyspace). */
#include <stddef.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "chorus_search.h"
#include "meta_int.h"

static const char *const role_names[META_ROLE_MAX + 1] = {"?", "read", "write",
                                                          "admin"};

const char *meta_role_name(uint8_t role) {
  return role >= META_ROLE_READ && role <= META_ROLE_MAX ? role_names[role]
                                                         : "?";
}

int meta_role_parse(const char *name) {
  for (int i = META_ROLE_READ; i <= META_ROLE_MAX; i++)
    if (strcmp(name, role_names[i]) == 0)
      return i;
  return -1;
}

/* user_slot: where user @name is, or would go (*@found says which). */
static size_t user_slot(const struct meta_state *s, const char *name,
                        bool *found) {
  size_t i = chorus_name_lower_bound(s->users, s->nusers, sizeof *s->users,
                                     offsetof(struct meta_user, name), name);
  *found = i < s->nusers && strcmp(s->users[i].name, name) == 0;
  return i;
}

const struct meta_user *meta_state_user(const struct meta_state *s,
                                        const char *name) {
  bool found;
  size_t i = user_slot(s, name, &found);
  return found ? &s->users[i] : NULL;
}

static int why_is(char *why, const char *text) {
  if (why != NULL) {
    strncpy(why, text, META_TEXT_MAX - 1);
    why[META_TEXT_MAX - 1] = '\0';
  }
  return CHORUS_EINVAL;
}

int meta_user_check(const struct meta_user *u, char *why) {
  size_t len = strnlen(u->name, META_USER_NAME_MAX);
  if (len == 0 || len == META_USER_NAME_MAX)
    return why_is(why, "a user name has 1..47 bytes");
  for (size_t i = 0; i < len; i++) {
    char ch = u->name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '@' ||
          ch == '-'))
      return why_is(why, "a user name is letters, digits, '_', '.', '@' "
                         "and '-'");
  }
  if (u->ops < 1 || u->ops > META_USER_OPS_MAX ||
      u->mem_kib < META_USER_MEM_KIB_MIN || u->mem_kib > META_USER_MEM_KIB_MAX)
    return why_is(why, "password hashing costs out of bounds (1..10 passes, "
                       "8 KiB..256 MiB)");
  return CHORUS_OK;
}

bool meta_user_may(const struct meta_user *u, uint8_t role, uint32_t ks_id) {
  for (uint8_t i = 0; i < u->ngrants && i < META_MAX_GRANTS; i++) {
    const struct meta_grant *g = &u->grants[i];
    if (g->role >= role && (g->ks_id == 0 || (ks_id != 0 && g->ks_id == ks_id)))
      return true;
  }
  return false;
}

static int grant_cmp(const struct meta_grant *a, const struct meta_grant *b) {
  if (a->ks_id != b->ks_id)
    return a->ks_id < b->ks_id ? -1 : 1;
  return a->role < b->role ? -1 : a->role > b->role;
}

/* grant_slot: where @g is in @u's sorted grants, or would go. */
static uint8_t grant_slot(const struct meta_user *u, const struct meta_grant *g,
                          bool *found) {
  uint8_t i = 0;
  while (i < u->ngrants && grant_cmp(&u->grants[i], g) < 0)
    i++;
  *found = i < u->ngrants && grant_cmp(&u->grants[i], g) == 0;
  return i;
}

static bool keyspace_exists(const struct meta_state *s, uint32_t id) {
  for (size_t i = 0; i < s->nks; i++)
    if (s->keyspaces[i].id == id)
      return true;
  return false;
}

static int apply_grant(struct meta_state *s, struct meta_user *u,
                       const struct meta_cmd *c) {
  const struct meta_grant *g = &c->grant;
  if (g->role < META_ROLE_READ || g->role > META_ROLE_MAX)
    return CHORUS_EINVAL;
  bool found;
  uint8_t i = grant_slot(u, g, &found);
  if (c->type == META_CMD_USER_REVOKE) {
    if (!found)
      return CHORUS_ENOTFOUND;
    memmove(&u->grants[i], &u->grants[i + 1],
            (size_t)(u->ngrants - i - 1) * sizeof *u->grants);
    u->ngrants--;
    return CHORUS_OK;
  }
  if (g->ks_id != 0 && !keyspace_exists(s, g->ks_id))
    return CHORUS_ENOTFOUND;
  if (found)
    return CHORUS_OK;
  if (u->ngrants >= META_MAX_GRANTS)
    return CHORUS_ENOSPC;
  memmove(&u->grants[i + 1], &u->grants[i],
          (size_t)(u->ngrants - i) * sizeof *u->grants);
  u->grants[i] = *g;
  u->ngrants++;
  return CHORUS_OK;
}

int meta__apply_user(struct meta_state *s, const struct meta_cmd *c) {
  const struct meta_user *in = &c->user;
  bool found;
  size_t i = user_slot(s, in->name, &found);
  switch (c->type) {
  case META_CMD_USER_CREATE: {
    int rc = meta_user_check(in, NULL);
    if (rc != CHORUS_OK)
      return rc;
    if (found)
      return CHORUS_EEXIST;
    if (s->nusers >= META_MAX_USERS)
      return CHORUS_ENOSPC;
    struct meta_user *t =
        chorus_realloc(s->users, (s->nusers + 1) * sizeof *s->users);
    if (t == NULL)
      return CHORUS_ENOMEM;
    s->users = t;
    memmove(&t[i + 1], &t[i], (s->nusers - i) * sizeof *t);
    t[i] = *in;
    t[i].ngrants = 0; /* granted one by one */
    memset(t[i].grants, 0, sizeof t[i].grants);
    s->nusers++;
    return CHORUS_OK;
  }
  case META_CMD_USER_PASSWD: {
    int rc = meta_user_check(in, NULL);
    if (rc != CHORUS_OK)
      return rc;
    if (!found)
      return CHORUS_ENOTFOUND;
    struct meta_user *u = &s->users[i];
    memcpy(u->salt, in->salt, sizeof u->salt);
    u->ops = in->ops;
    u->mem_kib = in->mem_kib;
    memcpy(u->stored_key, in->stored_key, sizeof u->stored_key);
    memcpy(u->server_key, in->server_key, sizeof u->server_key);
    return CHORUS_OK;
  }
  case META_CMD_USER_DROP:
    if (!found)
      return CHORUS_ENOTFOUND;
    memmove(&s->users[i], &s->users[i + 1],
            (s->nusers - i - 1) * sizeof *s->users);
    s->nusers--;
    return CHORUS_OK;
  case META_CMD_USER_GRANT:
  case META_CMD_USER_REVOKE:
    return found ? apply_grant(s, &s->users[i], c) : CHORUS_ENOTFOUND;
  default:
    return CHORUS_EINVAL;
  }
}

void meta__drop_grants(struct meta_state *s, uint32_t ks_id) {
  for (size_t i = 0; i < s->nusers; i++) {
    struct meta_user *u = &s->users[i];
    uint8_t k = 0;
    for (uint8_t j = 0; j < u->ngrants; j++)
      if (u->grants[j].ks_id != ks_id)
        u->grants[k++] = u->grants[j];
    u->ngrants = k;
  }
}
