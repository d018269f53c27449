/* libchorus_user.c: the users of the cluster metadata (libchorus.h,
 * USERS; wire.h, USER). A new password becomes its verifier here
 * (client/auth: SCRAM with Argon2id), so it never leaves the caller. */
#include <assert.h>
#include <string.h>

#include <sodium.h>

#include "chorus_alloc.h"
#include "chorus_auth.h"
#include "libchorus_int.h"

_Static_assert(CHORUS_MAX_USER_NAME == WIRE_MAX_USER_NAME, "user names");
_Static_assert(CHORUS_MAX_USER_NAME == AUTH_USER_MAX, "user names");
_Static_assert(WIRE_USER_SALT_BYTES == AUTH_SALT_BYTES, "salt");
_Static_assert(WIRE_USER_KEY_BYTES == AUTH_KEY_BYTES, "keys");

static const char *const role_names[] = {"?", "read", "write", "admin"};

const char *chorus_role_name(int role) {
  return role >= CHORUS_ROLE_READ && role <= CHORUS_ROLE_ADMIN
             ? role_names[role]
             : "?";
}

int chorus_role_parse(const char *name) {
  for (int i = CHORUS_ROLE_READ; name != NULL && i <= CHORUS_ROLE_ADMIN; i++)
    if (strcmp(name, role_names[i]) == 0)
      return i;
  return -1;
}

void chorus_users_free(struct chorus_users *u) {
  chorus_free(u);
}

/* chorus__take_users: each record checked (wire.h): its exact length, a
 * name, grants of known roles with names that fit. */
int chorus__take_users(struct chorus_result *res,
                       const struct wire_user_reply *r) {
  size_t n = r->entries.n;
  struct chorus_users *u =
      chorus_calloc(1, sizeof *u + (n ? n : 1) * sizeof *u->users);
  if (u == NULL) {
    chorus__result_error(res, CHORUS_ENOMEM, "out of memory");
    return CHORUS_ENOMEM;
  }
  u->applied = r->applied;
  u->n = n;
  u->users = (struct chorus_user *)(u + 1);
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = r->entries.items[i].ptr;
    size_t len = r->entries.items[i].len, at = 0;
    struct chorus_user *o = &u->users[i];
    bool ok = len >= WIRE_USER_RECORD_MIN;
    size_t nl = ok ? p[at++] : 0;
    ok = ok && nl >= 1 && nl <= CHORUS_MAX_USER_NAME && at + nl + 1 <= len;
    if (ok) {
      memcpy(o->name, p + at, nl);
      at += nl;
      o->ngrants = p[at++];
      ok = o->ngrants <= CHORUS_MAX_GRANTS;
    }
    for (size_t g = 0; ok && g < o->ngrants; g++) {
      ok = at + 2 <= len;
      uint8_t role = ok ? p[at] : 0;
      size_t kl = ok ? p[at + 1] : 0;
      at += 2;
      ok = ok && role >= CHORUS_ROLE_READ && role <= CHORUS_ROLE_ADMIN &&
           kl <= CHORUS_MAX_KEYSPACE_NAME && at + kl <= len;
      if (ok) {
        o->grants[g].role = role;
        memcpy(o->grants[g].keyspace, p + at, kl);
        at += kl;
      }
    }
    if (!ok || at != len) {
      chorus_free(u);
      chorus__result_error(res, CHORUS_EMALFORMED,
                           "user record %zu is malformed", i);
      return CHORUS_EMALFORMED;
    }
  }
  res->users = u;
  return CHORUS_OK;
}

static int name_field(struct chorus_client *c, const char *name, bool any,
                      struct wire_bytes *out) {
  const char *nm = name != NULL ? name : "";
  size_t len = strnlen(nm, CHORUS_MAX_USER_NAME + 1);
  if (len > CHORUS_MAX_USER_NAME || (!any && len == 0))
    return chorus_errf(c->errmsg, CHORUS_EINVAL, "a user name is 1..%u bytes",
                       CHORUS_MAX_USER_NAME);
  *out = (struct wire_bytes){(const uint8_t *)nm, len};
  return CHORUS_OK;
}

/* A verifier of @password in @m (its salt drawn here). The user's keys
 * live in @keys until the request is encoded. */
static int verifier(struct chorus_client *c, const char *password, size_t len,
                    const struct chorus_pw_cost *cost, struct wire_msg *m,
                    struct auth_verifier *v) {
  if (password == NULL && len > 0)
    return chorus_errf(c->errmsg, CHORUS_EINVAL, "NULL password");
  struct auth_kdf kdf = {
      .ops = cost ? cost->ops : AUTH_OPS_DEFAULT,
      .mem_kib = cost ? cost->mem_kib : AUTH_MEM_KIB_DEFAULT,
  };
  if (auth_init() != 0)
    return chorus_errf(c->errmsg, CHORUS_EIO, "libsodium did not start");
  randombytes_buf(kdf.salt, sizeof kdf.salt);
  int rc =
      auth_verifier_make(password ? password : "", len, &kdf, v, c->errmsg);
  if (rc != CHORUS_OK)
    return rc;
  m->user.salt = (struct wire_bytes){v->kdf.salt, sizeof v->kdf.salt};
  m->user.ops = v->kdf.ops;
  m->user.mem_kib = v->kdf.mem_kib;
  m->user.stored_key = (struct wire_bytes){v->stored_key, AUTH_KEY_BYTES};
  m->user.server_key = (struct wire_bytes){v->server_key, AUTH_KEY_BYTES};
  return CHORUS_OK;
}

/* One USER call, synchronous: LIST a read (resent on another seed), the
 * others writes. */
static int sync_user(struct chorus_client *c, uint8_t op, const char *name,
                     const char *password, size_t len,
                     const struct chorus_pw_cost *cost, int role,
                     const char *keyspace, struct chorus_users **out) {
  if (c == NULL)
    return CHORUS_EINVAL;
  if (out == NULL)
    return chorus_errf(c->errmsg, CHORUS_EINVAL, "NULL out");
  *out = NULL;
  struct wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = WIRE_USER;
  m.user.op = op;
  int rc = name_field(c, name, op == WIRE_USER_LIST, &m.user.name);
  struct auth_verifier v;
  if (rc == CHORUS_OK && (op == WIRE_USER_CREATE || op == WIRE_USER_PASSWD))
    rc = verifier(c, password, len, cost, &m, &v);
  if (rc == CHORUS_OK && (op == WIRE_USER_GRANT || op == WIRE_USER_REVOKE)) {
    const char *ks = keyspace != NULL ? keyspace : "";
    size_t kl = strnlen(ks, CHORUS_MAX_KEYSPACE_NAME + 1);
    if (role < CHORUS_ROLE_READ || role > CHORUS_ROLE_ADMIN ||
        kl > CHORUS_MAX_KEYSPACE_NAME)
      rc = chorus_errf(c->errmsg, CHORUS_EINVAL,
                       "a grant is a role (read, write, admin) and a "
                       "keyspace name of 0..%u bytes",
                       CHORUS_MAX_KEYSPACE_NAME);
    m.user.role = (uint8_t)role;
    m.user.keyspace = (struct wire_bytes){(const uint8_t *)ks, kl};
  }
  if (rc != CHORUS_OK)
    return rc;
  struct chorus_result res;
  struct chorus__sync_wait w;
  rc = chorus__sync_begin(c, &res, &w);
  if (rc == CHORUS_OK)
    rc = chorus__sync_end(
        c,
        chorus__submit(c, &m, op != WIRE_USER_LIST, false,
                       op == WIRE_USER_LIST ? 0 : CHORUS__ADMIN_TIMEOUT_MS,
                       chorus__sync_cb, &w),
        &w);
  sodium_memzero(&v, sizeof v);
  assert(rc != CHORUS_OK || res.users != NULL);
  if (rc == CHORUS_OK) {
    *out = res.users;
    res.users = NULL;
  }
  return chorus__sync_result_end(c, &res, rc);
}

int chorus_user_list(struct chorus_client *c, const char *name,
                     struct chorus_users **out) {
  return sync_user(c, WIRE_USER_LIST, name, NULL, 0, NULL, 0, NULL, out);
}

int chorus_user_create(struct chorus_client *c, const char *name,
                       const char *password, size_t len,
                       const struct chorus_pw_cost *cost,
                       struct chorus_users **out) {
  return sync_user(c, WIRE_USER_CREATE, name, password, len, cost, 0, NULL,
                   out);
}

int chorus_user_passwd(struct chorus_client *c, const char *name,
                       const char *password, size_t len,
                       const struct chorus_pw_cost *cost,
                       struct chorus_users **out) {
  return sync_user(c, WIRE_USER_PASSWD, name, password, len, cost, 0, NULL,
                   out);
}

int chorus_user_drop(struct chorus_client *c, const char *name,
                     struct chorus_users **out) {
  return sync_user(c, WIRE_USER_DROP, name, NULL, 0, NULL, 0, NULL, out);
}

int chorus_user_grant(struct chorus_client *c, const char *name, int role,
                      const char *keyspace, struct chorus_users **out) {
  return sync_user(c, WIRE_USER_GRANT, name, NULL, 0, NULL, role, keyspace,
                   out);
}

int chorus_user_revoke(struct chorus_client *c, const char *name, int role,
                       const char *keyspace, struct chorus_users **out) {
  return sync_user(c, WIRE_USER_REVOKE, name, NULL, 0, NULL, role, keyspace,
                   out);
}
