/* core_users.c: users for operators (issue 24; meta.h, struct meta_user;
 * wire.h, USER): LIST answered from the metadata in force; CREATE,
 * PASSWD, DROP, GRANT and REVOKE judged against it first, so that every
 * refusal says why, then proposed to the Raft leader and answered once
 * applied with USER_REPLY (core_meta.c's mx_answer asks
 * core__pending_take). A reply never carries a verifier. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "core_int.h"

_Static_assert(WIRE_MAX_USER_NAME + 1 == META_USER_NAME_MAX, "user names");
_Static_assert(WIRE_USER_SALT_BYTES == META_USER_SALT_BYTES, "salt");
_Static_assert(WIRE_USER_KEY_BYTES == META_USER_KEY_BYTES, "verifier keys");
_Static_assert(WIRE_MAX_USER_ROLE == META_ROLE_MAX, "roles");

static const struct meta_keyspace *ks_named_id(const struct meta_state *s,
                                               uint32_t id) {
  for (size_t i = 0; i < s->nks; i++)
    if (s->keyspaces[i].id == id)
      return &s->keyspaces[i];
  return NULL;
}

/* user_record: @u as USER_REPLY carries it (wire.h) into @out
 * (WIRE_USER_RECORD_MAX bytes); its length. */
static size_t user_record(const struct meta_state *s, const struct meta_user *u,
                          uint8_t *out) {
  uint8_t *p = out;
  size_t nl = strnlen(u->name, WIRE_MAX_USER_NAME);
  *p++ = (uint8_t)nl;
  memcpy(p, u->name, nl);
  p += nl;
  uint8_t n = u->ngrants <= META_MAX_GRANTS ? u->ngrants : 0;
  *p++ = n;
  for (uint8_t i = 0; i < n; i++) {
    const struct meta_keyspace *k =
        u->grants[i].ks_id ? ks_named_id(s, u->grants[i].ks_id) : NULL;
    size_t kl = k ? strnlen(k->name, WIRE_MAX_KEYSPACE_NAME) : 0;
    *p++ = u->grants[i].role;
    *p++ = (uint8_t)kl;
    if (kl > 0)
      memcpy(p, k->name, kl);
    p += kl;
  }
  return (size_t)(p - out);
}

static size_t user_rows(const struct meta_state *s) {
  return s->nusers;
}
static const char *user_name_of(const struct meta_state *s, size_t i) {
  return s->users[i].name;
}
static size_t user_row_record(const struct meta_state *s, size_t i,
                              uint8_t *out) {
  return user_record(s, &s->users[i], out);
}

int core__user_reply(struct core *c, uint64_t cookie, const char *name) {
  static const struct core__table t = {
      "user",    WIRE_USER_REPLY, WIRE_USER_RECORD_MAX,
      user_rows, user_name_of,    user_row_record};
  return core__table_reply(c, cookie, &t, name);
}

/* text_of: a wire text field into @out (@cap bytes with its NUL); false
 * when it holds a NUL (the schema bounds its length). */
static bool text_of(struct wire_bytes b, char *out, size_t cap) {
  if (b.len >= cap || (b.len > 0 && memchr(b.ptr, '\0', b.len) != NULL))
    return false;
  if (b.len > 0)
    memcpy(out, b.ptr, b.len);
  out[b.len] = '\0';
  return true;
}

int core__user_client(struct core *c, const struct wire_msg *m,
                      uint64_t cookie) {
  const struct wire_user *w = &m->user;
  char name[META_USER_NAME_MAX], ks[META_KEYSPACE_NAME_MAX];
  char text[META_TEXT_MAX + 96];
  if (!text_of(w->name, name, sizeof name) ||
      !text_of(w->keyspace, ks, sizeof ks))
    return core__refuse(c, cookie, CHORUS_EINVAL, "a name holds a NUL");
  if (w->op == WIRE_USER_LIST)
    return core__user_reply(c, cookie, name[0] ? name : NULL);
  const struct meta_state *s = meta_node_state(c->meta);
  const struct meta_user *have = meta_state_user(s, name);
  struct meta_cmd cmd = {0};
  memcpy(cmd.user.name, name, sizeof name);
  if (have == NULL && w->op != WIRE_USER_CREATE) {
    snprintf(text, sizeof text, "no user named %s", name);
    return core__refuse(c, cookie, CHORUS_ENOTFOUND, text);
  }
  switch (w->op) {
  case WIRE_USER_CREATE:
  case WIRE_USER_PASSWD: {
    struct meta_user *u = &cmd.user;
    if (w->salt.len != sizeof u->salt ||
        w->stored_key.len != sizeof u->stored_key ||
        w->server_key.len != sizeof u->server_key)
      return core__refuse(c, cookie, CHORUS_EINVAL,
                          "a password's verifier is a 16-byte salt and two "
                          "32-byte keys");
    memcpy(u->salt, w->salt.ptr, sizeof u->salt);
    memcpy(u->stored_key, w->stored_key.ptr, sizeof u->stored_key);
    memcpy(u->server_key, w->server_key.ptr, sizeof u->server_key);
    u->ops = w->ops;
    u->mem_kib = w->mem_kib;
    char why[META_TEXT_MAX] = "";
    if (meta_user_check(u, why) != CHORUS_OK) {
      snprintf(text, sizeof text, "user %s: %s", name, why);
      return core__refuse(c, cookie, CHORUS_EINVAL, text);
    }
    if (w->op == WIRE_USER_CREATE && have != NULL) {
      snprintf(text, sizeof text, "user %s exists", name);
      return core__refuse(c, cookie, CHORUS_EEXIST, text);
    }
    if (w->op == WIRE_USER_CREATE && s->nusers >= META_MAX_USERS)
      return core__refuse(c, cookie, CHORUS_ENOSPC, "256 users at most");
    cmd.type =
        w->op == WIRE_USER_CREATE ? META_CMD_USER_CREATE : META_CMD_USER_PASSWD;
    break;
  }
  case WIRE_USER_DROP:
    cmd.type = META_CMD_USER_DROP;
    break;
  default: { /* GRANT, REVOKE */
    if (w->role < META_ROLE_READ || w->role > META_ROLE_MAX)
      return core__refuse(c, cookie, CHORUS_EINVAL,
                          "a role is read (1), write (2) or admin (3)");
    uint32_t id = 0;
    if (ks[0] != '\0') {
      const struct meta_keyspace *k = meta_state_keyspace(s, ks);
      if (k == NULL) {
        snprintf(text, sizeof text, "no keyspace named %s", ks);
        return core__refuse(c, cookie, CHORUS_ENOTFOUND, text);
      }
      id = k->id;
    }
    cmd.grant = (struct meta_grant){w->role, id};
    bool held = false;
    for (uint8_t i = 0; i < have->ngrants; i++)
      held |= have->grants[i].role == w->role && have->grants[i].ks_id == id;
    if (w->op == WIRE_USER_REVOKE && !held) {
      snprintf(text, sizeof text, "user %s holds no %s on %s", name,
               meta_role_name(w->role), ks[0] ? ks : "every keyspace");
      return core__refuse(c, cookie, CHORUS_ENOTFOUND, text);
    }
    if (w->op == WIRE_USER_GRANT && !held && have->ngrants >= META_MAX_GRANTS)
      return core__refuse(c, cookie, CHORUS_ENOSPC, "16 grants per user");
    cmd.type =
        w->op == WIRE_USER_GRANT ? META_CMD_USER_GRANT : META_CMD_USER_REVOKE;
    break;
  }
  }
  return core__propose_pending(c, &cmd, cookie, CORE_PENDING_USER);
}

/* ========================================================================
 * Roles per request (core.h, ROLES PER REQUEST)
 * ======================================================================== */

struct core_need core_role_of(const struct wire_msg *m) {
  const struct core_need none = {0, false, "use"},
                         read = {META_ROLE_READ, true, "read"},
                         write = {META_ROLE_WRITE, true, "write"},
                         admin = {META_ROLE_ADMIN, false, "change"};
  switch (m->type) {
  case WIRE_GET:
  case WIRE_COUNTER_READ:
  case WIRE_SET_READ:
  case WIRE_LWW_READ:
  case WIRE_MAP_READ:
    return read;
  case WIRE_CAS:
    return m->cas.cond == WIRE_CAS_READ ? read : write;
  case WIRE_LOCK:
    return m->lock.op == WIRE_LOCK_STATUS ? read : write;
  case WIRE_PUT:
  case WIRE_PUT_TTL:
  case WIRE_DELETE:
  case WIRE_COUNTER_ADD:
  case WIRE_SET_ADD:
  case WIRE_SET_REMOVE:
  case WIRE_LWW_SET:
  case WIRE_LWW_DELETE:
  case WIRE_MAP_UPDATE:
    return write;
  case WIRE_CLUSTER_QUERY:
  case WIRE_CLUSTER_PLAN:
    return none; /* what the cluster looks like: no data */
  case WIRE_KEYSPACE:
    if (m->keyspace.op == WIRE_KS_LIST)
      return none;
    if (m->keyspace.op == WIRE_KS_CREATE)
      return admin;
    return (struct core_need){META_ROLE_ADMIN, true, "change"};
  default: /* cluster changes, users; a type not listed needs the most */
    return admin;
  }
}

bool core_user_may(const struct meta_state *s, const char *user, uint8_t role,
                   const char *verb, uint32_t ks_id, const char *ks_name,
                   char *text, size_t cap) {
  const struct meta_user *u = meta_state_user(s, user);
  if (u == NULL) {
    snprintf(text, cap, "user %s no longer exists (log in again)", user);
    return false;
  }
  if (role == 0 || meta_user_may(u, role, ks_id))
    return true;
  uint8_t held = 0;
  for (uint8_t r = META_ROLE_READ; r <= META_ROLE_MAX; r++)
    if (meta_user_may(u, r, ks_id))
      held = r;
  char where[META_KEYSPACE_NAME_MAX + 16];
  if (ks_id == 0)
    snprintf(where, sizeof where, "every keyspace");
  else
    snprintf(where, sizeof where, "keyspace %s", ks_name);
  static const char *const may[] = {"", "read", "read and write", "administer"};
  if (held == 0)
    snprintf(text, cap, "user %s holds no role on %s, so may not %s it%s", user,
             where, verb,
             ks_id == 0 ? " (the default keyspace, locks, the cluster and "
                          "users need a grant on every keyspace)"
                        : "");
  else
    snprintf(text, cap, "user %s may %s %s but not %s it", user, may[held],
             where, verb);
  return false;
}

bool core_admin_bootstrap_step(const struct meta_state *s,
                               const struct meta_user *admin,
                               struct meta_cmd *out) {
  if (admin->name[0] == '\0')
    return false;
  memset(out, 0, sizeof *out);
  if (s->nusers == 0) {
    out->type = META_CMD_USER_CREATE;
    out->user = *admin;
    out->user.ngrants = 0;
    return true;
  }
  const struct meta_user *u = meta_state_user(s, admin->name);
  if (s->nusers == 1 && u != NULL && u->ngrants == 0) {
    out->type = META_CMD_USER_GRANT;
    memcpy(out->user.name, admin->name, sizeof out->user.name);
    out->grant = (struct meta_grant){META_ROLE_ADMIN, 0};
    return true;
  }
  return false;
}
