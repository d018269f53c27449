/* meta_codec.c: encoders (msgpack-c's packer) and hardened decoders (a
 * bounded reader of our own) of the metadata's commands, state and
 * messages, the formats meta.h draws under ENCODINGS.
 *
 * HOW IT WORKS
 *
 * Encoding runs the same packing walk twice: once into a counting sink,
 * which gives the size to check against the limit and to allocate, then
 * into the buffer. Before that the value goes through the same checks the
 * decoder applies (the *_check functions, with EINVAL as their code), so
 * every encoding we produce is one we accept.
 *
 * Decoding never uses msgpack-c's unpacker, which allocates what a header
 * declares (msgpack-c issue 1013: five bytes can ask for gigabytes). Like
 * crdt_codec.c it reads the handful of shapes these formats use with a
 * cursor that compares every declared count and length with the bytes left
 * before using it: an array of members, entries or servers must be within
 * its limit, and fit in the input at its smallest encoding per element,
 * before an array is allocated for it. Nesting is fixed by the formats (at
 * most six levels, a PROPOSE of REPLICATION), so there is no recursion to
 * bound. Every member, command, replication, entry and server read goes
 * through the same *_check function as the encoder's, now with EMALFORMED
 * as the code; the rest (types, tribools, roles, statuses, strings) is
 * checked as it is read.
 *
 * Raft's parts are allocated with raft_malloc (raft frees them once the
 * recv callback has them); everything else with chorus_malloc.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "meta.h"

/* The smallest encodings of one array element, for the bytes-left bound:
 * a member is a fixarray, a fixint id, a one-byte name (fixstr header and
 * the byte), four empty strings or fixints and a fixint since; an entry a
 * fixarray, two fixints and a bin8 header; a server a fixarray, a fixint,
 * an empty fixstr and a fixint; a datacenter a fixarray, an empty fixstr
 * and a fixint. */
#define META__MIN_MEMBER 10u
#define META__MIN_ENTRY 5u
#define META__MIN_SERVER 4u
#define META__MIN_DC 3u
#define META__MIN_SESSION 5u /* a fixarray and four fixints */
/* a keyspace: a fixarray, a one-byte name (2), five fixints, a replication
 * (a fixarray, a fixint, an empty fixarray) and two fixints */
#define META__MIN_KEYSPACE 13u
/* a user: a fixarray, a one-byte name (2), a salt (bin8 header and 16), two
 * fixints, two keys (bin8 header and 32 each) and an empty fixarray */
#define META__MIN_USER 92u
/* a key: a fixarray, a fixint id, a bin8 header and 32 bytes, a fixint */
#define META__MIN_KEY 36u

/* ------------------------------------------------------------------------
 * Checks, shared by both directions (@code: EINVAL to encode, EMALFORMED
 * to decode; a limit exceeded is ETOOBIG either way)
 * ------------------------------------------------------------------------ */

/* A NUL within @cap bytes, and (when @nonempty) a first byte that is not
 * the NUL. */
static bool str_ok(const char *s, size_t cap, bool nonempty) {
  return memchr(s, '\0', cap) != NULL && (!nonempty || s[0] != '\0');
}

static int repl_check(const struct ring_replication *r, int code) {
  if (r->n > RING_MAX_REPLICAS || ring_replication_check(r, NULL) != CHORUS_OK)
    return code;
  return CHORUS_OK;
}

static int member_check(const struct meta_member *m, int code) {
  if (m->id == 0 || !str_ok(m->name, sizeof m->name, true) ||
      !str_ok(m->addr, sizeof m->addr, false) ||
      !str_ok(m->dc, sizeof m->dc, false) ||
      !str_ok(m->rack, sizeof m->rack, false) || m->vnodes > RING_MAX_VNODES ||
      m->state < META_JOINING || m->state > META_STATE_MAX ||
      (m->state == META_LEAVING
           ? m->goal != 0 && m->goal != META_LEFT && m->goal != META_REMOVED
           : m->goal != 0))
    return code;
  return CHORUS_OK;
}

static int cmp_name(const void *a, const void *b) {
  const struct meta_member *const *x = a, *const *y = b;
  return strcmp((*x)->name, (*y)->name);
}

/* Every member valid, ids strictly ascending, names unique. Names are
 * compared after sorting pointers to them, O(n log n) for 4,096 members
 * rather than 8 million comparisons. */
static int members_check(const struct meta_member *m, size_t n, int code) {
  if (n > META_MAX_MEMBERS)
    return CHORUS_ETOOBIG;
  if (n > 0 && m == NULL)
    return code;
  for (size_t i = 0; i < n; i++) {
    if (member_check(&m[i], code) != CHORUS_OK ||
        (i > 0 && m[i].id <= m[i - 1].id))
      return code;
  }
  if (n < 2)
    return CHORUS_OK;
  const struct meta_member **by_name = chorus_malloc(n * sizeof *by_name);
  if (by_name == NULL)
    return CHORUS_ENOMEM;
  for (size_t i = 0; i < n; i++)
    by_name[i] = &m[i];
  qsort(by_name, n, sizeof *by_name, cmp_name);
  int rc = CHORUS_OK;
  for (size_t i = 1; i < n && rc == CHORUS_OK; i++)
    if (strcmp(by_name[i]->name, by_name[i - 1]->name) == 0)
      rc = code;
  chorus_free(by_name);
  return rc;
}

/* Sessions: at most META_MAX_SESSIONS, each with a proposer and a result
 * that is CHORUS_OK or an error, strictly ascending by index, none after
 * the state's @applied. */
static int sessions_check(const struct meta_session *ss, size_t n,
                          uint64_t applied, int code) {
  if (n > META_MAX_SESSIONS)
    return CHORUS_ETOOBIG;
  for (size_t i = 0; i < n; i++) {
    const struct meta_session *x = &ss[i];
    if (x->proposer == 0 || x->status > 0 || x->index > applied ||
        (i > 0 && x->index <= ss[i - 1].index))
      return code;
  }
  return CHORUS_OK;
}

/* A staged change: LEAVE (goal LEFT or REMOVED), REPLACE or REMOVE of a
 * member; or none (type 0, every field 0) when @none_ok. */
static int staged_check(uint8_t type, chorus_node_id id, uint8_t state,
                        chorus_node_id with, int code) {
  switch (type) {
  case META_CMD_LEAVE:
    return id != 0 && (state == META_LEFT || state == META_REMOVED) ? CHORUS_OK
                                                                    : code;
  case META_CMD_REPLACE:
    return id != 0 && with != 0 ? CHORUS_OK : code;
  case META_CMD_REMOVE:
    return id != 0 ? CHORUS_OK : code;
  default:
    return code;
  }
}

/* A keyspace a command or a state may carry: what meta_keyspace_check
 * accepts; a command may also carry a replication of its own (refused when
 * applied, ENOTSUP), well formed. */
static int ks_check(const struct meta_keyspace *k, bool in_state, int code) {
  if (!str_ok(k->name, sizeof k->name, true))
    return code;
  int rc = meta_keyspace_check(k, NULL);
  if (rc == CHORUS_ENOTSUP && !in_state)
    return repl_check(&k->replication, code);
  return rc == CHORUS_OK ? CHORUS_OK : code;
}

/* The keyspaces of a state: each valid, sorted by name without
 * duplicates, ids non-zero, unique and below @next. */
static int keyspaces_check(const struct meta_keyspace *k, size_t n,
                           uint32_t next, int code) {
  if (n > META_MAX_KEYSPACES)
    return CHORUS_ETOOBIG;
  for (size_t i = 0; i < n; i++) {
    if (ks_check(&k[i], true, code) != CHORUS_OK || k[i].id == 0 ||
        k[i].id >= next)
      return code;
    if (i > 0 && strcmp(k[i - 1].name, k[i].name) >= 0)
      return code;
    for (size_t j = 0; j < i; j++)
      if (k[j].id == k[i].id)
        return code;
  }
  return CHORUS_OK;
}

/* A user a state holds: what meta_user_check accepts, its grants sorted
 * by (keyspace, role) without duplicates, each of a known role on every
 * keyspace (0) or on one of @ks (dropping a keyspace drops its grants). */
static int user_check(const struct meta_user *u, const struct meta_keyspace *ks,
                      size_t nks, int code) {
  if (!str_ok(u->name, sizeof u->name, true) ||
      meta_user_check(u, NULL) != CHORUS_OK || u->ngrants > META_MAX_GRANTS)
    return code;
  for (uint8_t i = 0; i < u->ngrants; i++) {
    const struct meta_grant *g = &u->grants[i];
    if (g->role < META_ROLE_READ || g->role > META_ROLE_MAX)
      return code;
    if (i > 0) {
      const struct meta_grant *p = &u->grants[i - 1];
      if (p->ks_id > g->ks_id || (p->ks_id == g->ks_id && p->role >= g->role))
        return code;
    }
    bool known = g->ks_id == 0;
    for (size_t k = 0; k < nks && !known; k++)
      known = ks[k].id == g->ks_id;
    if (!known)
      return code;
  }
  return CHORUS_OK;
}

static int users_check(const struct meta_state *s, int code) {
  if (s->nusers > META_MAX_USERS)
    return CHORUS_ETOOBIG;
  for (size_t i = 0; i < s->nusers; i++)
    if (user_check(&s->users[i], s->keyspaces, s->nks, code) != CHORUS_OK ||
        (i > 0 && strcmp(s->users[i - 1].name, s->users[i].name) >= 0))
      return code;
  return CHORUS_OK;
}

/* The keyring a state holds (meta.h, struct meta_keyring): keys sorted by
 * id, each id its key's fingerprint, none from a version not reached; the
 * boot key counted while not retired; a primary installed, or 0 (the boot
 * key) while the boot key is not retired. */
static int keyring_check(const struct meta_keyring *kr, int code) {
  if (kr->n + (kr->boot_retired ? 0u : 1u) > META_MAX_KEYS ||
      kr->primary_since > kr->version ||
      (kr->primary == 0) != (kr->primary_since == 0) ||
      (kr->primary == 0 && kr->boot_retired))
    return code;
  bool primary_found = kr->primary == 0;
  for (uint8_t i = 0; i < kr->n; i++) {
    const struct meta_key *k = &kr->keys[i];
    if (k->id == 0 || k->id != meta_key_id(k->key) || k->since == 0 ||
        k->since > kr->version || (i > 0 && kr->keys[i - 1].id >= k->id))
      return code;
    primary_found |= k->id == kr->primary;
  }
  return primary_found ? CHORUS_OK : code;
}

/* Members' reports: sorted by id, none 0, none beyond the keyring. */
static int acks_check(const struct meta_state *s, int code) {
  if (s->nacks > META_MAX_MEMBERS)
    return CHORUS_ETOOBIG;
  for (size_t i = 0; i < s->nacks; i++)
    if (s->acks[i].id == 0 || s->acks[i].version > s->keyring.version ||
        (i > 0 && s->acks[i - 1].id >= s->acks[i].id))
      return code;
  return CHORUS_OK;
}

static int cmd_check(const struct meta_cmd *c, int code) {
  if (c->proposer == 0 && c->req_id != 0)
    return code; /* no origin is all zeroes */
  switch (c->type) {
  case META_CMD_JOIN:
    return member_check(&c->member, code);
  case META_CMD_SET_STATE:
    return c->id != 0 && c->state >= META_JOINING && c->state <= META_STATE_MAX
               ? CHORUS_OK
               : code;
  case META_CMD_REMOVE:
    return c->id != 0 ? CHORUS_OK : code;
  case META_CMD_REPLICATION:
    return repl_check(&c->replication, code);
  case META_CMD_NOTE:
  case META_CMD_FINISH:
    return CHORUS_OK;
  case META_CMD_LEAVE:
    return c->id != 0 && (c->state == META_LEFT || c->state == META_REMOVED)
               ? CHORUS_OK
               : code;
  case META_CMD_STREAMED:
    return c->id != 0 ? CHORUS_OK : code;
  case META_CMD_REPLACE:
    return c->id != 0 && c->with != 0 ? CHORUS_OK : code;
  case META_CMD_STAGE:
    return staged_check(c->staged_type, c->id, c->state, c->with, code);
  case META_CMD_COMMIT:
    return c->state <= 1 ? CHORUS_OK : code;
  case META_CMD_KEYSPACE_CREATE:
  case META_CMD_KEYSPACE_ALTER:
    return ks_check(&c->keyspace, false, code);
  case META_CMD_KEYSPACE_DROP:
    return str_ok(c->keyspace.name, sizeof c->keyspace.name, true) ? CHORUS_OK
                                                                   : code;
  case META_CMD_USER_CREATE:
  case META_CMD_USER_PASSWD: /* a verifier, no grants */
    return c->user.ngrants == 0 &&
                   user_check(&c->user, NULL, 0, code) == CHORUS_OK
               ? CHORUS_OK
               : code;
  case META_CMD_USER_DROP:
    return str_ok(c->user.name, sizeof c->user.name, true) ? CHORUS_OK : code;
  case META_CMD_USER_GRANT:
  case META_CMD_USER_REVOKE:
    return str_ok(c->user.name, sizeof c->user.name, true) &&
                   c->grant.role >= META_ROLE_READ &&
                   c->grant.role <= META_ROLE_MAX
               ? CHORUS_OK
               : code;
  case META_CMD_KEY_INSTALL:
    return c->key.id != 0 && c->key.id == meta_key_id(c->key.key) ? CHORUS_OK
                                                                  : code;
  case META_CMD_KEY_USE:
    return c->key.id != 0 ? CHORUS_OK : code;
  case META_CMD_KEY_REMOVE: /* 0: the boot key */
    return CHORUS_OK;
  case META_CMD_KEY_APPLIED:
    return c->id != 0 ? CHORUS_OK : code;
  default:
    return code;
  }
}

/* An entry's type and size (its data pointer is the encoder's concern). */
static int entry_check(const struct raft_entry *e, int code) {
  if (e->buf.len > META_MAX_ENTRY_BYTES)
    return CHORUS_ETOOBIG;
  if (e->type < RAFT_COMMAND || e->type > RAFT_CHANGE)
    return code;
  return CHORUS_OK;
}

static int server_check(raft_id id, const char *address, int role, int code) {
  if (id == 0 || address == NULL ||
      memchr(address, '\0', META_ADDR_MAX) == NULL || role < RAFT_STANDBY ||
      role > RAFT_SPARE)
    return code;
  return CHORUS_OK;
}

/* The encoder's check of a configuration; the decoder builds one with
 * raft_configuration_add, which refuses duplicates itself. */
static int conf_check(const struct raft_configuration *c, int code) {
  if (c->n > META_MAX_MEMBERS)
    return CHORUS_ETOOBIG;
  if (c->n > 0 && c->servers == NULL)
    return code;
  for (unsigned i = 0; i < c->n; i++) {
    const struct raft_server *s = &c->servers[i];
    if (server_check(s->id, s->address, s->role, code) != CHORUS_OK)
      return code;
    for (unsigned j = 0; j < i; j++)
      if (c->servers[j].id == s->id ||
          strcmp(c->servers[j].address, s->address) == 0)
        return code;
  }
  return CHORUS_OK;
}

static int raft_check(const struct raft_message *r, int code) {
  int rc = CHORUS_OK;
  switch (r->type) {
  case RAFT_IO_APPEND_ENTRIES: {
    const struct raft_append_entries *a = &r->append_entries;
    if (a->n_entries > META_MAX_ENTRIES)
      return CHORUS_ETOOBIG;
    if (a->n_entries > 0 && a->entries == NULL)
      return code;
    for (unsigned i = 0; i < a->n_entries && rc == CHORUS_OK; i++) {
      const struct raft_entry *e = &a->entries[i];
      rc = e->buf.len > 0 && e->buf.base == NULL ? code : entry_check(e, code);
    }
    return rc;
  }
  case RAFT_IO_INSTALL_SNAPSHOT: {
    const struct raft_install_snapshot *s = &r->install_snapshot;
    if (s->data.len > META_MAX_STATE_BYTES)
      return CHORUS_ETOOBIG;
    if (s->data.len > 0 && s->data.base == NULL)
      return code;
    return conf_check(&s->conf, code);
  }
  case RAFT_IO_REQUEST_VOTE_RESULT:
    return r->request_vote_result.pre_vote > raft_tribool_false ? code
                                                                : CHORUS_OK;
  case RAFT_IO_APPEND_ENTRIES_RESULT:
  case RAFT_IO_REQUEST_VOTE:
  case RAFT_IO_TIMEOUT_NOW:
    return CHORUS_OK;
  default:
    return code;
  }
}

static int msg_check(const struct meta_msg *m, int code) {
  if (m->from == 0)
    return code;
  switch (m->type) {
  case META_MSG_RAFT:
    return raft_check(&m->raft, code);
  case META_MSG_PROPOSE:
    return cmd_check(&m->cmd, code);
  case META_MSG_PROPOSE_REPLY:
    return m->status <= 0 && str_ok(m->text, sizeof m->text, false) ? CHORUS_OK
                                                                    : code;
  default:
    return code;
  }
}

/* ------------------------------------------------------------------------
 * Writing: a packer over a sink that counts (buf NULL) or copies
 * ------------------------------------------------------------------------ */

struct sink {
  uint8_t *buf; /* NULL: only count */
  size_t len, cap;
  bool overflow;
};

static int sink_write(void *data, const char *p, size_t n) {
  struct sink *k = data;
  if (k->buf != NULL) {
    if (n > k->cap - k->len) {
      k->overflow = true;
      return -1;
    }
    if (n > 0)
      memcpy(k->buf + k->len, p, n);
  }
  k->len += n;
  return 0;
}

/* The pack calls' results need no checking: a counting sink cannot fail,
 * and a copying one was sized by the counting walk (overflow is sticky and
 * asserted on). */
static void pack_str(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

static void pack_bin(msgpack_packer *pk, const void *p, size_t n) {
  msgpack_pack_bin(pk, n);
  if (n > 0)
    msgpack_pack_bin_body(pk, p, n);
}

static void pack_bool(msgpack_packer *pk, bool b) {
  if (b)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
}

static void pack_repl(msgpack_packer *pk, const struct ring_replication *r) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint64(pk, r->n);
  msgpack_pack_array(pk, r->dc_count);
  for (uint32_t i = 0; i < r->dc_count; i++) {
    msgpack_pack_array(pk, 2);
    pack_str(pk, r->dcs[i].dc);
    msgpack_pack_uint64(pk, r->dcs[i].factor);
  }
}

static void pack_member(msgpack_packer *pk, const struct meta_member *m) {
  msgpack_pack_array(pk, 12);
  msgpack_pack_uint64(pk, m->id);
  pack_str(pk, m->name);
  pack_str(pk, m->addr);
  pack_str(pk, m->dc);
  pack_str(pk, m->rack);
  msgpack_pack_uint64(pk, m->vnodes);
  msgpack_pack_uint64(pk, m->state);
  msgpack_pack_uint64(pk, m->since);
  msgpack_pack_uint64(pk, m->goal);
  msgpack_pack_uint64(pk, m->ready);
  msgpack_pack_uint64(pk, m->disk);
  msgpack_pack_uint64(pk, m->tokens_of);
}

static void pack_keyspace(msgpack_packer *pk, const struct meta_keyspace *k) {
  msgpack_pack_array(pk, 9);
  pack_str(pk, k->name);
  msgpack_pack_uint64(pk, k->id);
  msgpack_pack_uint64(pk, k->type);
  pack_repl(pk, &k->replication);
  msgpack_pack_int64(pk, k->read);
  msgpack_pack_int64(pk, k->write);
  msgpack_pack_uint64(pk, k->ttl_ms);
  msgpack_pack_uint64(pk, k->siblings_warn);
  msgpack_pack_uint64(pk, k->siblings_max);
}

static void pack_user(msgpack_packer *pk, const struct meta_user *u) {
  msgpack_pack_array(pk, 7);
  pack_str(pk, u->name);
  pack_bin(pk, u->salt, sizeof u->salt);
  msgpack_pack_uint64(pk, u->ops);
  msgpack_pack_uint64(pk, u->mem_kib);
  pack_bin(pk, u->stored_key, sizeof u->stored_key);
  pack_bin(pk, u->server_key, sizeof u->server_key);
  msgpack_pack_array(pk, u->ngrants);
  for (uint8_t i = 0; i < u->ngrants; i++) {
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, u->grants[i].role);
    msgpack_pack_uint64(pk, u->grants[i].ks_id);
  }
}

static void pack_cmd(msgpack_packer *pk, const void *x) {
  const struct meta_cmd *c = x;
  switch (c->type) {
  case META_CMD_JOIN:
    msgpack_pack_array(pk, 2 + 2);
    msgpack_pack_uint64(pk, c->type);
    pack_member(pk, &c->member);
    break;
  case META_CMD_SET_STATE:
    msgpack_pack_array(pk, 3 + 2);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->id);
    msgpack_pack_uint64(pk, c->state);
    break;
  case META_CMD_REMOVE:
    msgpack_pack_array(pk, 2 + 2);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->id);
    break;
  case META_CMD_REPLICATION:
    msgpack_pack_array(pk, 2 + 2);
    msgpack_pack_uint64(pk, c->type);
    pack_repl(pk, &c->replication);
    break;
  case META_CMD_LEAVE:
    msgpack_pack_array(pk, 3 + 2);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->id);
    msgpack_pack_uint64(pk, c->state);
    break;
  case META_CMD_STREAMED:
    msgpack_pack_array(pk, 3 + 2);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->id);
    msgpack_pack_uint64(pk, c->epoch);
    break;
  case META_CMD_FINISH:
    msgpack_pack_array(pk, 2 + 2);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->epoch);
    break;
  case META_CMD_REPLACE:
    msgpack_pack_array(pk, 4 + 2);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->id);
    msgpack_pack_uint64(pk, c->with);
    msgpack_pack_uint64(pk, c->disk);
    break;
  case META_CMD_STAGE:
    msgpack_pack_array(pk, 6 + 2);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->staged_type);
    msgpack_pack_uint64(pk, c->id);
    msgpack_pack_uint64(pk, c->state);
    msgpack_pack_uint64(pk, c->with);
    msgpack_pack_uint64(pk, c->disk);
    break;
  case META_CMD_COMMIT:
    msgpack_pack_array(pk, 2 + 2);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->state);
    break;
  case META_CMD_KEYSPACE_CREATE:
  case META_CMD_KEYSPACE_ALTER:
    msgpack_pack_array(pk, 2 + 2);
    msgpack_pack_uint64(pk, c->type);
    pack_keyspace(pk, &c->keyspace);
    break;
  case META_CMD_KEYSPACE_DROP:
    msgpack_pack_array(pk, 2 + 2);
    msgpack_pack_uint64(pk, c->type);
    pack_str(pk, c->keyspace.name);
    break;
  case META_CMD_USER_CREATE:
  case META_CMD_USER_PASSWD:
    msgpack_pack_array(pk, 2 + 2);
    msgpack_pack_uint64(pk, c->type);
    pack_user(pk, &c->user);
    break;
  case META_CMD_USER_DROP:
    msgpack_pack_array(pk, 2 + 2);
    msgpack_pack_uint64(pk, c->type);
    pack_str(pk, c->user.name);
    break;
  case META_CMD_USER_GRANT:
  case META_CMD_USER_REVOKE:
    msgpack_pack_array(pk, 4 + 2);
    msgpack_pack_uint64(pk, c->type);
    pack_str(pk, c->user.name);
    msgpack_pack_uint64(pk, c->grant.role);
    msgpack_pack_uint64(pk, c->grant.ks_id);
    break;
  case META_CMD_KEY_INSTALL:
    msgpack_pack_array(pk, 3 + 2);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->key.id);
    pack_bin(pk, c->key.key, sizeof c->key.key);
    break;
  case META_CMD_KEY_USE:
  case META_CMD_KEY_REMOVE:
    msgpack_pack_array(pk, 2 + 2);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->key.id);
    break;
  case META_CMD_KEY_APPLIED:
    msgpack_pack_array(pk, 3 + 2);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->id);
    msgpack_pack_uint64(pk, c->version);
    break;
  default: /* NOTE; cmd_check refused every other type */
    msgpack_pack_array(pk, 3 + 2);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->note_key);
    msgpack_pack_uint64(pk, c->note_value);
    break;
  }
  msgpack_pack_uint64(pk, c->proposer);
  msgpack_pack_uint64(pk, c->req_id);
}

static void pack_state(msgpack_packer *pk, const void *x) {
  const struct meta_state *s = x;
  msgpack_pack_array(pk, 12);
  msgpack_pack_uint64(pk, s->epoch);
  msgpack_pack_uint64(pk, s->applied);
  msgpack_pack_uint64(pk, s->note_key);
  msgpack_pack_uint64(pk, s->note);
  pack_repl(pk, &s->replication);
  msgpack_pack_array(pk, s->n);
  for (size_t i = 0; i < s->n; i++)
    pack_member(pk, &s->members[i]);
  msgpack_pack_array(pk, s->nsessions);
  for (size_t i = 0; i < s->nsessions; i++) {
    const struct meta_session *ss = &s->sessions[i];
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint64(pk, ss->proposer);
    msgpack_pack_uint64(pk, ss->req_id);
    msgpack_pack_int64(pk, ss->status);
    msgpack_pack_uint64(pk, ss->index);
  }
  const struct meta_staged *st = &s->staged;
  msgpack_pack_array(pk, 5);
  msgpack_pack_uint64(pk, st->type);
  msgpack_pack_uint64(pk, st->id);
  msgpack_pack_uint64(pk, st->state);
  msgpack_pack_uint64(pk, st->with);
  msgpack_pack_uint64(pk, st->disk);
  msgpack_pack_array(pk, s->nks);
  for (size_t i = 0; i < s->nks; i++)
    pack_keyspace(pk, &s->keyspaces[i]);
  msgpack_pack_uint64(pk, s->next_ks_id);
  msgpack_pack_array(pk, s->nusers);
  for (size_t i = 0; i < s->nusers; i++)
    pack_user(pk, &s->users[i]);
  const struct meta_keyring *kr = &s->keyring;
  msgpack_pack_array(pk, 6);
  msgpack_pack_uint64(pk, kr->version);
  msgpack_pack_uint64(pk, kr->primary);
  msgpack_pack_uint64(pk, kr->primary_since);
  if (kr->boot_retired)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
  msgpack_pack_array(pk, kr->n);
  for (uint8_t i = 0; i < kr->n; i++) {
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint64(pk, kr->keys[i].id);
    pack_bin(pk, kr->keys[i].key, sizeof kr->keys[i].key);
    msgpack_pack_uint64(pk, kr->keys[i].since);
  }
  msgpack_pack_array(pk, s->nacks);
  for (size_t i = 0; i < s->nacks; i++) {
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, s->acks[i].id);
    msgpack_pack_uint64(pk, s->acks[i].version);
  }
}

static void pack_raft(msgpack_packer *pk, const struct raft_message *r) {
  switch (r->type) {
  case RAFT_IO_APPEND_ENTRIES: {
    const struct raft_append_entries *a = &r->append_entries;
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint64(pk, r->type);
    msgpack_pack_uint64(pk, a->term);
    msgpack_pack_uint64(pk, a->prev_log_index);
    msgpack_pack_uint64(pk, a->prev_log_term);
    msgpack_pack_uint64(pk, a->leader_commit);
    msgpack_pack_array(pk, a->n_entries);
    for (unsigned i = 0; i < a->n_entries; i++) {
      const struct raft_entry *e = &a->entries[i];
      msgpack_pack_array(pk, 3);
      msgpack_pack_uint64(pk, e->term);
      msgpack_pack_uint64(pk, e->type);
      pack_bin(pk, e->buf.base, e->buf.len);
    }
    break;
  }
  case RAFT_IO_APPEND_ENTRIES_RESULT: {
    const struct raft_append_entries_result *a = &r->append_entries_result;
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint64(pk, r->type);
    msgpack_pack_uint64(pk, a->term);
    msgpack_pack_uint64(pk, a->rejected);
    msgpack_pack_uint64(pk, a->last_log_index);
    break;
  }
  case RAFT_IO_REQUEST_VOTE: {
    const struct raft_request_vote *v = &r->request_vote;
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint64(pk, r->type);
    msgpack_pack_uint64(pk, v->term);
    msgpack_pack_uint64(pk, v->candidate_id);
    msgpack_pack_uint64(pk, v->last_log_index);
    msgpack_pack_uint64(pk, v->last_log_term);
    pack_bool(pk, v->disrupt_leader);
    pack_bool(pk, v->pre_vote);
    break;
  }
  case RAFT_IO_REQUEST_VOTE_RESULT: {
    const struct raft_request_vote_result *v = &r->request_vote_result;
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint64(pk, r->type);
    msgpack_pack_uint64(pk, v->term);
    pack_bool(pk, v->vote_granted);
    msgpack_pack_uint64(pk, (uint64_t)v->pre_vote);
    break;
  }
  case RAFT_IO_INSTALL_SNAPSHOT: {
    const struct raft_install_snapshot *s = &r->install_snapshot;
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint64(pk, r->type);
    msgpack_pack_uint64(pk, s->term);
    msgpack_pack_uint64(pk, s->last_index);
    msgpack_pack_uint64(pk, s->last_term);
    msgpack_pack_array(pk, s->conf.n);
    for (unsigned i = 0; i < s->conf.n; i++) {
      const struct raft_server *v = &s->conf.servers[i];
      msgpack_pack_array(pk, 3);
      msgpack_pack_uint64(pk, v->id);
      pack_str(pk, v->address);
      msgpack_pack_uint64(pk, (uint64_t)v->role);
    }
    msgpack_pack_uint64(pk, s->conf_index);
    pack_bin(pk, s->data.base, s->data.len);
    break;
  }
  default: { /* TIMEOUT_NOW; raft_check refused every other type */
    const struct raft_timeout_now *t = &r->timeout_now;
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint64(pk, r->type);
    msgpack_pack_uint64(pk, t->term);
    msgpack_pack_uint64(pk, t->last_log_index);
    msgpack_pack_uint64(pk, t->last_log_term);
    break;
  }
  }
}

static void pack_msg(msgpack_packer *pk, const void *x) {
  const struct meta_msg *m = x;
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint64(pk, m->type);
  msgpack_pack_uint64(pk, m->cluster);
  msgpack_pack_uint64(pk, m->from);
  switch (m->type) {
  case META_MSG_RAFT:
    pack_raft(pk, &m->raft);
    break;
  case META_MSG_PROPOSE:
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, m->req_id);
    pack_cmd(pk, &m->cmd);
    break;
  default: /* PROPOSE_REPLY */
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint64(pk, m->req_id);
    msgpack_pack_int64(pk, m->status);
    msgpack_pack_uint64(pk, m->index);
    msgpack_pack_uint64(pk, m->leader);
    pack_str(pk, m->text);
    break;
  }
}

typedef void (*pack_fn)(msgpack_packer *pk, const void *x);

static void run_packer(struct sink *k, pack_fn body, const void *x) {
  static const char version = META_FORMAT_V8;
  msgpack_packer pk;
  msgpack_packer_init(&pk, k, sink_write);
  sink_write(k, &version, 1);
  body(&pk, x);
}

/* Counts, checks the size against @limit, allocates and packs. */
static int encode(pack_fn body, const void *x, size_t limit, uint8_t **buf,
                  size_t *len) {
  struct sink count = {0};
  run_packer(&count, body, x);
  if (count.len > limit)
    return CHORUS_ETOOBIG;
  uint8_t *p = chorus_malloc(count.len);
  if (p == NULL)
    return CHORUS_ENOMEM;
  struct sink out = {p, 0, count.len, false};
  run_packer(&out, body, x);
  assert(!out.overflow && out.len == count.len);
  *buf = p;
  *len = out.len;
  return CHORUS_OK;
}

int meta_cmd_encode(const struct meta_cmd *c, uint8_t **buf, size_t *len) {
  assert(c != NULL && buf != NULL && len != NULL);
  int rc = cmd_check(c, CHORUS_EINVAL);
  if (rc != CHORUS_OK)
    return rc;
  return encode(pack_cmd, c, META_MAX_CMD_BYTES, buf, len);
}

int meta_state_encode(const struct meta_state *s, uint8_t **buf, size_t *len) {
  assert(s != NULL && buf != NULL && len != NULL);
  int rc = repl_check(&s->replication, CHORUS_EINVAL);
  if (rc == CHORUS_OK)
    rc = members_check(s->members, s->n, CHORUS_EINVAL);
  if (rc == CHORUS_OK)
    rc = sessions_check(s->sessions, s->nsessions, s->applied, CHORUS_EINVAL);
  if (rc == CHORUS_OK)
    rc = keyspaces_check(s->keyspaces, s->nks, s->next_ks_id, CHORUS_EINVAL);
  if (rc == CHORUS_OK)
    rc = users_check(s, CHORUS_EINVAL);
  if (rc == CHORUS_OK)
    rc = keyring_check(&s->keyring, CHORUS_EINVAL);
  if (rc == CHORUS_OK)
    rc = acks_check(s, CHORUS_EINVAL);
  if (rc != CHORUS_OK)
    return rc;
  return encode(pack_state, s, META_MAX_STATE_BYTES, buf, len);
}

int meta_msg_encode(const struct meta_msg *m, uint8_t **buf, size_t *len) {
  assert(m != NULL && buf != NULL && len != NULL);
  int rc = msg_check(m, CHORUS_EINVAL);
  if (rc != CHORUS_OK)
    return rc;
  return encode(pack_msg, m, META_MAX_MSG_BYTES, buf, len);
}

/* ------------------------------------------------------------------------
 * Reading: a cursor that never reads past its end. Every failure is
 * CHORUS_EMALFORMED unless a limit says CHORUS_ETOOBIG.
 * ------------------------------------------------------------------------ */

struct rd {
  const uint8_t *p, *end;
  uint8_t version; /* the input's format byte, once read */
};

static size_t rd_left(const struct rd *r) {
  return (size_t)(r->end - r->p);
}

/* @n bytes big-endian. */
static int rd_be(struct rd *r, unsigned n, uint64_t *v) {
  if (rd_left(r) < n)
    return CHORUS_EMALFORMED;
  uint64_t x = 0;
  for (unsigned i = 0; i < n; i++)
    x = (x << 8) | r->p[i];
  r->p += n;
  *v = x;
  return CHORUS_OK;
}

static int rd_tag(struct rd *r, uint8_t *tag) {
  if (rd_left(r) < 1)
    return CHORUS_EMALFORMED;
  *tag = *r->p++;
  return CHORUS_OK;
}

/* Any msgpack integer: *@neg tells whether it is negative (*@i) or not
 * (*@u). */
static int rd_integer(struct rd *r, bool *neg, uint64_t *u, int64_t *i) {
  uint8_t tag;
  int rc = rd_tag(r, &tag);
  if (rc != CHORUS_OK)
    return rc;
  *neg = false;
  if (tag <= 0x7f) {
    *u = tag;
    return CHORUS_OK;
  }
  if (tag >= 0xe0) {
    *neg = true;
    *i = (int8_t)tag;
    return CHORUS_OK;
  }
  if (tag >= 0xcc && tag <= 0xcf)
    return rd_be(r, 1u << (tag - 0xcc), u);
  if (tag >= 0xd0 && tag <= 0xd3) {
    unsigned w = 1u << (tag - 0xd0);
    uint64_t raw;
    if ((rc = rd_be(r, w, &raw)))
      return rc;
    if (w < 8 && (raw >> (8 * w - 1)) & 1)
      raw |= ~UINT64_C(0) << (8 * w); /* sign-extend */
    int64_t v;
    memcpy(&v, &raw, sizeof v);
    *neg = v < 0;
    if (*neg)
      *i = v;
    else
      *u = (uint64_t)v;
    return CHORUS_OK;
  }
  return CHORUS_EMALFORMED;
}

static int rd_uint(struct rd *r, uint64_t max, uint64_t *v) {
  bool neg;
  int64_t i;
  int rc = rd_integer(r, &neg, v, &i);
  if (rc == CHORUS_OK && (neg || *v > max))
    return CHORUS_EMALFORMED;
  return rc;
}

static int rd_int(struct rd *r, int64_t min, int64_t max, int64_t *v) {
  bool neg;
  uint64_t u;
  int rc = rd_integer(r, &neg, &u, v);
  if (rc != CHORUS_OK)
    return rc;
  if (!neg) {
    if (max < 0 || u > (uint64_t)max)
      return CHORUS_EMALFORMED;
    *v = (int64_t)u;
  }
  return *v < min || *v > max ? CHORUS_EMALFORMED : CHORUS_OK;
}

static int rd_bool(struct rd *r, bool *v) {
  uint8_t tag;
  int rc = rd_tag(r, &tag);
  if (rc != CHORUS_OK)
    return rc;
  if (tag != 0xc2 && tag != 0xc3)
    return CHORUS_EMALFORMED;
  *v = tag == 0xc3;
  return CHORUS_OK;
}

/* An array header of at most @limit elements (ETOOBIG above) that each
 * take at least @min_item bytes of what is left (EMALFORMED otherwise). */
static int rd_array(struct rd *r, uint64_t *n, uint64_t limit,
                    size_t min_item) {
  uint8_t tag;
  int rc = rd_tag(r, &tag);
  if (rc != CHORUS_OK)
    return rc;
  if ((tag & 0xf0) == 0x90)
    *n = tag & 0x0f;
  else if (tag == 0xdc)
    rc = rd_be(r, 2, n);
  else if (tag == 0xdd)
    rc = rd_be(r, 4, n);
  else
    return CHORUS_EMALFORMED;
  if (rc != CHORUS_OK)
    return rc;
  if (*n > limit)
    return CHORUS_ETOOBIG;
  if (*n > rd_left(r) / min_item)
    return CHORUS_EMALFORMED;
  return CHORUS_OK;
}

/* An array of exactly @want elements. */
static int rd_tuple(struct rd *r, uint64_t want) {
  uint64_t n;
  int rc = rd_array(r, &n, UINT64_MAX, 1);
  if (rc == CHORUS_OK && n != want)
    return CHORUS_EMALFORMED;
  return rc;
}

/* A str (@str) or bin of at most @max bytes (ETOOBIG above), borrowed. */
static int rd_raw(struct rd *r, bool str, uint64_t max, const uint8_t **p,
                  size_t *len) {
  uint8_t tag;
  uint64_t n = 0;
  int rc = rd_tag(r, &tag);
  if (rc != CHORUS_OK)
    return rc;
  if (str && (tag & 0xe0) == 0xa0)
    n = tag & 0x1f;
  else if (str && tag >= 0xd9 && tag <= 0xdb)
    rc = rd_be(r, 1u << (tag - 0xd9), &n);
  else if (!str && tag >= 0xc4 && tag <= 0xc6)
    rc = rd_be(r, 1u << (tag - 0xc4), &n);
  else
    return CHORUS_EMALFORMED;
  if (rc != CHORUS_OK)
    return rc;
  if (n > max)
    return CHORUS_ETOOBIG;
  if (n > rd_left(r))
    return CHORUS_EMALFORMED;
  *p = r->p;
  *len = (size_t)n;
  r->p += n;
  return CHORUS_OK;
}

/* A str into @dst, @cap bytes with its NUL: a longer one, or one with a
 * NUL inside (which would not survive the round trip), is malformed. */
static int rd_str(struct rd *r, char *dst, size_t cap) {
  const uint8_t *p;
  size_t n;
  int rc = rd_raw(r, true, UINT64_MAX, &p, &n);
  if (rc != CHORUS_OK)
    return rc;
  if (n >= cap || (n > 0 && memchr(p, '\0', n) != NULL))
    return CHORUS_EMALFORMED;
  memcpy(dst, p, n);
  dst[n] = '\0';
  return CHORUS_OK;
}

/* raft's terms, indexes and ids are unsigned long long, 64 bits. */
static int rd_ull(struct rd *r, unsigned long long *v) {
  uint64_t x = 0;
  int rc = rd_uint(r, UINT64_MAX, &x);
  *v = x;
  return rc;
}

static int rd_u32(struct rd *r, uint32_t *v) {
  uint64_t x = 0;
  int rc = rd_uint(r, UINT32_MAX, &x);
  *v = (uint32_t)x;
  return rc;
}

static int rd_u8(struct rd *r, uint8_t *v) {
  uint64_t x = 0;
  int rc = rd_uint(r, UINT8_MAX, &x);
  *v = (uint8_t)x;
  return rc;
}

/* The format byte, then the caller's array; rd_end after it. */
static int rd_version(struct rd *r) {
  if (rd_left(r) < 1)
    return CHORUS_EMALFORMED;
  if (*r->p < META_FORMAT_V1 || *r->p > META_FORMAT_V8)
    return CHORUS_EVERSION;
  r->version = *r->p++;
  return CHORUS_OK;
}

static int rd_end(const struct rd *r) {
  return rd_left(r) == 0 ? CHORUS_OK : CHORUS_EMALFORMED;
}

static int rd_repl(struct rd *r, struct ring_replication *out) {
  uint64_t n;
  int rc;
  if ((rc = rd_tuple(r, 2)) || (rc = rd_u32(r, &out->n)) ||
      (rc = rd_array(r, &n, UINT64_MAX, META__MIN_DC)))
    return rc;
  if (n > RING_MAX_DCS)
    return CHORUS_EMALFORMED;
  out->dc_count = (uint32_t)n;
  for (uint32_t i = 0; i < out->dc_count; i++) {
    if ((rc = rd_tuple(r, 2)) ||
        (rc = rd_str(r, out->dcs[i].dc, sizeof out->dcs[i].dc)) ||
        (rc = rd_u32(r, &out->dcs[i].factor)))
      return rc;
  }
  return repl_check(out, CHORUS_EMALFORMED);
}

static int rd_member(struct rd *r, struct meta_member *m) {
  int rc;
  if ((rc = rd_tuple(r, r->version >= META_FORMAT_V5   ? 12
                        : r->version >= META_FORMAT_V4 ? 11
                        : r->version >= META_FORMAT_V3 ? 10
                                                       : 8)) ||
      (rc = rd_uint(r, UINT64_MAX, &m->id)) ||
      (rc = rd_str(r, m->name, sizeof m->name)) ||
      (rc = rd_str(r, m->addr, sizeof m->addr)) ||
      (rc = rd_str(r, m->dc, sizeof m->dc)) ||
      (rc = rd_str(r, m->rack, sizeof m->rack)) ||
      (rc = rd_u32(r, &m->vnodes)) || (rc = rd_u8(r, &m->state)) ||
      (rc = rd_uint(r, UINT64_MAX, &m->since)))
    return rc;
  if (r->version >= META_FORMAT_V3 &&
      ((rc = rd_u8(r, &m->goal)) || (rc = rd_uint(r, UINT64_MAX, &m->ready))))
    return rc;
  if (r->version >= META_FORMAT_V4 && (rc = rd_uint(r, UINT64_MAX, &m->disk)))
    return rc;
  if (r->version >= META_FORMAT_V5 &&
      (rc = rd_uint(r, UINT64_MAX, &m->tokens_of)))
    return rc;
  if (r->version < META_FORMAT_V4 && m->state == META_REPLACING)
    return CHORUS_EMALFORMED;
  return member_check(m, CHORUS_EMALFORMED);
}

static int rd_keyspace(struct rd *r, struct meta_keyspace *k) {
  int rc;
  int64_t rl, wl;
  if ((rc = rd_tuple(r, 9)) || (rc = rd_str(r, k->name, sizeof k->name)) ||
      (rc = rd_u32(r, &k->id)) || (rc = rd_u8(r, &k->type)))
    return rc;
  /* A keyspace's own replication may be empty (the cluster's): rd_repl
   * wants a valid one, so this reads it by hand. */
  uint64_t n;
  if ((rc = rd_tuple(r, 2)) || (rc = rd_u32(r, &k->replication.n)) ||
      (rc = rd_array(r, &n, RING_MAX_DCS, META__MIN_DC)))
    return rc;
  k->replication.dc_count = (uint32_t)n;
  for (uint32_t i = 0; i < k->replication.dc_count; i++)
    if ((rc = rd_tuple(r, 2)) ||
        (rc = rd_str(r, k->replication.dcs[i].dc,
                     sizeof k->replication.dcs[i].dc)) ||
        (rc = rd_u32(r, &k->replication.dcs[i].factor)))
      return rc;
  if ((rc = rd_int(r, META_LEVEL_MIN, META_LEVEL_MAX, &rl)) ||
      (rc = rd_int(r, META_LEVEL_MIN, META_LEVEL_MAX, &wl)) ||
      (rc = rd_uint(r, META_MAX_TTL_MS, &k->ttl_ms)) ||
      (rc = rd_u32(r, &k->siblings_warn)) || (rc = rd_u32(r, &k->siblings_max)))
    return rc;
  k->read = (int32_t)rl;
  k->write = (int32_t)wl;
  return CHORUS_OK;
}

/* A bin of exactly @n bytes into @dst. */
static int rd_bin_exact(struct rd *r, uint8_t *dst, size_t n) {
  const uint8_t *p;
  size_t len;
  int rc = rd_raw(r, false, n, &p, &len);
  if (rc == CHORUS_ETOOBIG || (rc == CHORUS_OK && len != n))
    return CHORUS_EMALFORMED;
  if (rc == CHORUS_OK)
    memcpy(dst, p, n);
  return rc;
}

static int rd_user(struct rd *r, struct meta_user *u) {
  uint64_t n;
  int rc;
  if ((rc = rd_tuple(r, 7)) || (rc = rd_str(r, u->name, sizeof u->name)) ||
      (rc = rd_bin_exact(r, u->salt, sizeof u->salt)) ||
      (rc = rd_u32(r, &u->ops)) || (rc = rd_u32(r, &u->mem_kib)) ||
      (rc = rd_bin_exact(r, u->stored_key, sizeof u->stored_key)) ||
      (rc = rd_bin_exact(r, u->server_key, sizeof u->server_key)) ||
      (rc = rd_array(r, &n, META_MAX_GRANTS, 3)))
    return rc;
  u->ngrants = (uint8_t)n;
  for (uint8_t i = 0; i < u->ngrants; i++)
    if ((rc = rd_tuple(r, 2)) || (rc = rd_u8(r, &u->grants[i].role)) ||
        (rc = rd_u32(r, &u->grants[i].ks_id)))
      return rc;
  return CHORUS_OK;
}

/* A command into @c, zeroed by the caller. */
static int rd_cmd(struct rd *r, struct meta_cmd *c) {
  /* Elements of each type's array, by type. */
  static const uint8_t fields[META_CMD_MAX + 1] = {
      [META_CMD_JOIN] = 2,           [META_CMD_SET_STATE] = 3,
      [META_CMD_REMOVE] = 2,         [META_CMD_REPLICATION] = 2,
      [META_CMD_NOTE] = 3,           [META_CMD_LEAVE] = 3,
      [META_CMD_STREAMED] = 3,       [META_CMD_FINISH] = 2,
      [META_CMD_REPLACE] = 4,        [META_CMD_STAGE] = 6,
      [META_CMD_COMMIT] = 2,         [META_CMD_KEYSPACE_CREATE] = 2,
      [META_CMD_KEYSPACE_ALTER] = 2, [META_CMD_KEYSPACE_DROP] = 2,
      [META_CMD_USER_CREATE] = 2,    [META_CMD_USER_PASSWD] = 2,
      [META_CMD_USER_DROP] = 2,      [META_CMD_USER_GRANT] = 4,
      [META_CMD_USER_REVOKE] = 4,    [META_CMD_KEY_INSTALL] = 3,
      [META_CMD_KEY_USE] = 2,        [META_CMD_KEY_REMOVE] = 2,
      [META_CMD_KEY_APPLIED] = 3,
  };
  /* The types each format knows. */
  const uint8_t known = r->version >= META_FORMAT_V8   ? META_CMD_MAX
                        : r->version >= META_FORMAT_V7 ? META_CMD_USER_REVOKE
                        : r->version >= META_FORMAT_V6 ? META_CMD_KEYSPACE_DROP
                        : r->version >= META_FORMAT_V4 ? META_CMD_COMMIT
                        : r->version >= META_FORMAT_V3 ? META_CMD_FINISH
                                                       : META_CMD_NOTE;
  /* V2 puts the origin (proposer, req_id) after a type's fields. */
  const uint64_t origin = r->version >= META_FORMAT_V2 ? 2 : 0;
  uint64_t n;
  int rc;
  if ((rc = rd_array(r, &n, UINT64_MAX, 1)) || (rc = rd_u8(r, &c->type)))
    return rc;
  if (c->type < META_CMD_JOIN || c->type > known ||
      n != fields[c->type] + origin)
    return CHORUS_EMALFORMED;
  switch (c->type) {
  case META_CMD_JOIN:
    rc = rd_member(r, &c->member);
    break;
  case META_CMD_SET_STATE:
    if ((rc = rd_uint(r, UINT64_MAX, &c->id)) == CHORUS_OK)
      rc = rd_u8(r, &c->state);
    break;
  case META_CMD_REMOVE:
    rc = rd_uint(r, UINT64_MAX, &c->id);
    break;
  case META_CMD_REPLICATION:
    rc = rd_repl(r, &c->replication);
    break;
  case META_CMD_LEAVE:
    if ((rc = rd_uint(r, UINT64_MAX, &c->id)) == CHORUS_OK)
      rc = rd_u8(r, &c->state);
    break;
  case META_CMD_STREAMED:
    if ((rc = rd_uint(r, UINT64_MAX, &c->id)) == CHORUS_OK)
      rc = rd_uint(r, UINT64_MAX, &c->epoch);
    break;
  case META_CMD_FINISH:
    rc = rd_uint(r, UINT64_MAX, &c->epoch);
    break;
  case META_CMD_REPLACE:
    if ((rc = rd_uint(r, UINT64_MAX, &c->id)) == CHORUS_OK &&
        (rc = rd_uint(r, UINT64_MAX, &c->with)) == CHORUS_OK)
      rc = rd_uint(r, UINT64_MAX, &c->disk);
    break;
  case META_CMD_STAGE:
    if ((rc = rd_u8(r, &c->staged_type)) == CHORUS_OK &&
        (rc = rd_uint(r, UINT64_MAX, &c->id)) == CHORUS_OK &&
        (rc = rd_u8(r, &c->state)) == CHORUS_OK &&
        (rc = rd_uint(r, UINT64_MAX, &c->with)) == CHORUS_OK)
      rc = rd_uint(r, UINT64_MAX, &c->disk);
    break;
  case META_CMD_COMMIT:
    rc = rd_u8(r, &c->state);
    break;
  case META_CMD_KEYSPACE_CREATE:
  case META_CMD_KEYSPACE_ALTER:
    rc = rd_keyspace(r, &c->keyspace);
    break;
  case META_CMD_KEYSPACE_DROP:
    rc = rd_str(r, c->keyspace.name, sizeof c->keyspace.name);
    break;
  case META_CMD_USER_CREATE:
  case META_CMD_USER_PASSWD:
    rc = rd_user(r, &c->user);
    break;
  case META_CMD_USER_DROP:
    rc = rd_str(r, c->user.name, sizeof c->user.name);
    break;
  case META_CMD_USER_GRANT:
  case META_CMD_USER_REVOKE:
    if ((rc = rd_str(r, c->user.name, sizeof c->user.name)) == CHORUS_OK &&
        (rc = rd_u8(r, &c->grant.role)) == CHORUS_OK)
      rc = rd_u32(r, &c->grant.ks_id);
    break;
  case META_CMD_KEY_INSTALL:
    if ((rc = rd_u32(r, &c->key.id)) == CHORUS_OK)
      rc = rd_bin_exact(r, c->key.key, sizeof c->key.key);
    break;
  case META_CMD_KEY_USE:
  case META_CMD_KEY_REMOVE:
    rc = rd_u32(r, &c->key.id);
    break;
  case META_CMD_KEY_APPLIED:
    if ((rc = rd_uint(r, UINT64_MAX, &c->id)) == CHORUS_OK)
      rc = rd_uint(r, UINT64_MAX, &c->version);
    break;
  default: /* NOTE */
    if ((rc = rd_uint(r, UINT64_MAX, &c->note_key)) == CHORUS_OK)
      rc = rd_uint(r, UINT64_MAX, &c->note_value);
    break;
  }
  if (rc == CHORUS_OK && origin != 0 &&
      (rc = rd_uint(r, UINT64_MAX, &c->proposer)) == CHORUS_OK)
    rc = rd_uint(r, UINT64_MAX, &c->req_id);
  if (rc != CHORUS_OK)
    return rc;
  return cmd_check(c, CHORUS_EMALFORMED);
}

int meta_cmd_decode(const void *buf, size_t len, struct meta_cmd *out) {
  assert(out != NULL && (buf != NULL || len == 0));
  memset(out, 0, sizeof *out);
  if (len > META_MAX_CMD_BYTES)
    return CHORUS_ETOOBIG;
  struct rd r = {buf, (const uint8_t *)buf + len, 0};
  int rc;
  if ((rc = rd_version(&r)) || (rc = rd_cmd(&r, out)) || (rc = rd_end(&r)))
    memset(out, 0, sizeof *out);
  return rc;
}

/* The sessions of a V2 state into @out (whose members and applied are
 * read); allocated into out->sessions even on error (the caller frees). */
static int rd_sessions(struct rd *r, struct meta_state *out) {
  uint64_t n;
  int rc = rd_array(r, &n, META_MAX_SESSIONS, META__MIN_SESSION);
  if (rc != CHORUS_OK)
    return rc;
  if (n == 0)
    return CHORUS_OK;
  out->sessions = chorus_calloc((size_t)n, sizeof *out->sessions);
  if (out->sessions == NULL)
    return CHORUS_ENOMEM;
  for (out->nsessions = 0; out->nsessions < n; out->nsessions++) {
    struct meta_session *x = &out->sessions[out->nsessions];
    int64_t status;
    if ((rc = rd_tuple(r, 4)) || (rc = rd_uint(r, UINT64_MAX, &x->proposer)) ||
        (rc = rd_uint(r, UINT64_MAX, &x->req_id)) ||
        (rc = rd_int(r, INT32_MIN, 0, &status)) ||
        (rc = rd_uint(r, UINT64_MAX, &x->index)))
      return rc;
    x->status = (int32_t)status;
  }
  return sessions_check(out->sessions, out->nsessions, out->applied,
                        CHORUS_EMALFORMED);
}

/* The staged change of a V4 state: none (all zeroes) or a valid one. */
static int rd_staged(struct rd *r, struct meta_staged *st) {
  int rc;
  if ((rc = rd_tuple(r, 5)) || (rc = rd_u8(r, &st->type)) ||
      (rc = rd_uint(r, UINT64_MAX, &st->id)) || (rc = rd_u8(r, &st->state)) ||
      (rc = rd_uint(r, UINT64_MAX, &st->with)) ||
      (rc = rd_uint(r, UINT64_MAX, &st->disk)))
    return rc;
  if (st->type == 0)
    return st->id == 0 && st->state == 0 && st->with == 0 && st->disk == 0
               ? CHORUS_OK
               : CHORUS_EMALFORMED;
  return staged_check(st->type, st->id, st->state, st->with, CHORUS_EMALFORMED);
}

/* V8: the keyring and the members' reports into @out. */
static int rd_keyring(struct rd *r, struct meta_state *out) {
  struct meta_keyring *kr = &out->keyring;
  uint64_t n;
  int rc;
  if ((rc = rd_tuple(r, 6)) || (rc = rd_uint(r, UINT64_MAX, &kr->version)) ||
      (rc = rd_u32(r, &kr->primary)) ||
      (rc = rd_uint(r, UINT64_MAX, &kr->primary_since)) ||
      (rc = rd_bool(r, &kr->boot_retired)) ||
      (rc = rd_array(r, &n, META_MAX_KEYS, META__MIN_KEY)))
    return rc;
  kr->n = (uint8_t)n;
  for (uint8_t i = 0; i < kr->n; i++)
    if ((rc = rd_tuple(r, 3)) || (rc = rd_u32(r, &kr->keys[i].id)) ||
        (rc = rd_bin_exact(r, kr->keys[i].key, sizeof kr->keys[i].key)) ||
        (rc = rd_uint(r, UINT64_MAX, &kr->keys[i].since)))
      return rc;
  if ((rc = keyring_check(kr, CHORUS_EMALFORMED)) ||
      (rc = rd_array(r, &n, META_MAX_MEMBERS, 3)))
    return rc;
  if (n > 0 &&
      (out->acks = chorus_calloc((size_t)n, sizeof *out->acks)) == NULL)
    return CHORUS_ENOMEM;
  for (out->nacks = 0; out->nacks < n; out->nacks++)
    if ((rc = rd_tuple(r, 2)) ||
        (rc = rd_uint(r, UINT64_MAX, &out->acks[out->nacks].id)) ||
        (rc = rd_uint(r, UINT64_MAX, &out->acks[out->nacks].version)))
      return rc;
  return acks_check(out, CHORUS_EMALFORMED);
}

int meta_state_decode(const void *buf, size_t len, struct meta_state *out) {
  assert(out != NULL && (buf != NULL || len == 0));
  memset(out, 0, sizeof *out);
  if (len > META_MAX_STATE_BYTES)
    return CHORUS_ETOOBIG;
  struct rd r = {buf, (const uint8_t *)buf + len, 0};
  uint64_t n;
  int rc;
  if ((rc = rd_version(&r)) ||
      (rc = rd_tuple(&r, r.version >= META_FORMAT_V8   ? 12
                         : r.version >= META_FORMAT_V7 ? 11
                         : r.version >= META_FORMAT_V6 ? 10
                         : r.version >= META_FORMAT_V4 ? 8
                         : r.version >= META_FORMAT_V2 ? 7
                                                       : 6)) ||
      (rc = rd_uint(&r, UINT64_MAX, &out->epoch)) ||
      (rc = rd_uint(&r, UINT64_MAX, &out->applied)) ||
      (rc = rd_uint(&r, UINT64_MAX, &out->note_key)) ||
      (rc = rd_uint(&r, UINT64_MAX, &out->note)) ||
      (rc = rd_repl(&r, &out->replication)) ||
      (rc = rd_array(&r, &n, META_MAX_MEMBERS, META__MIN_MEMBER)))
    goto err_after_init;
  if (n > 0) {
    out->members = chorus_calloc((size_t)n, sizeof *out->members);
    if (out->members == NULL) {
      rc = CHORUS_ENOMEM;
      goto err_after_init;
    }
  }
  for (out->n = 0; out->n < n; out->n++)
    if ((rc = rd_member(&r, &out->members[out->n])))
      goto err_after_members;
  if ((rc = members_check(out->members, out->n, CHORUS_EMALFORMED)))
    goto err_after_members;
  if (r.version >= META_FORMAT_V2 && (rc = rd_sessions(&r, out)))
    goto err_after_members;
  if (r.version >= META_FORMAT_V4 && (rc = rd_staged(&r, &out->staged)))
    goto err_after_members;
  if (r.version >= META_FORMAT_V6) {
    if ((rc = rd_array(&r, &n, META_MAX_KEYSPACES, META__MIN_KEYSPACE)))
      goto err_after_members;
    if (n > 0 && (out->keyspaces = chorus_calloc(
                      (size_t)n, sizeof *out->keyspaces)) == NULL) {
      rc = CHORUS_ENOMEM;
      goto err_after_members;
    }
    for (out->nks = 0; out->nks < n; out->nks++)
      if ((rc = rd_keyspace(&r, &out->keyspaces[out->nks])))
        goto err_after_members;
    if ((rc = rd_u32(&r, &out->next_ks_id)) ||
        (rc = keyspaces_check(out->keyspaces, out->nks, out->next_ks_id,
                              CHORUS_EMALFORMED)))
      goto err_after_members;
  }
  if (r.version >= META_FORMAT_V7) {
    if ((rc = rd_array(&r, &n, META_MAX_USERS, META__MIN_USER)))
      goto err_after_members;
    if (n > 0 &&
        (out->users = chorus_calloc((size_t)n, sizeof *out->users)) == NULL) {
      rc = CHORUS_ENOMEM;
      goto err_after_members;
    }
    for (out->nusers = 0; out->nusers < n; out->nusers++)
      if ((rc = rd_user(&r, &out->users[out->nusers])))
        goto err_after_members;
    if ((rc = users_check(out, CHORUS_EMALFORMED)))
      goto err_after_members;
  }
  if (r.version >= META_FORMAT_V8 && (rc = rd_keyring(&r, out)))
    goto err_after_members;
  if ((rc = rd_end(&r)))
    goto err_after_members;
  return CHORUS_OK;

err_after_members:
  chorus_free(out->acks);
  chorus_free(out->users);
  chorus_free(out->keyspaces);
  chorus_free(out->sessions);
  chorus_free(out->members);
err_after_init:
  memset(out, 0, sizeof *out);
  return rc;
}

/* One entry: its fields into @e, its data borrowed from the input. */
static int rd_entry(struct rd *r, struct raft_entry *e, const uint8_t **data) {
  uint64_t type;
  int rc;
  if ((rc = rd_tuple(r, 3)) || (rc = rd_ull(r, &e->term)) ||
      (rc = rd_uint(r, UINT16_MAX, &type)) ||
      (rc = rd_raw(r, false, META_MAX_ENTRY_BYTES, data, &e->buf.len)))
    return rc;
  e->type = (unsigned short)type;
  e->buf.base = NULL;
  e->batch = NULL;
  return entry_check(e, CHORUS_EMALFORMED);
}

/* The entries of an AppendEntries: a first walk checks them and sums their
 * data, then the entries array and the one batch are allocated (raft's
 * ownership rules, meta.h), and a second walk over the same, now known
 * good, bytes fills them. */
static int rd_entries(struct rd *r, struct raft_append_entries *a) {
  uint64_t n;
  int rc = rd_array(r, &n, META_MAX_ENTRIES, META__MIN_ENTRY);
  if (rc != CHORUS_OK || n == 0)
    return rc;
  const struct rd first = *r;
  size_t total = 0;
  for (uint64_t i = 0; i < n; i++) {
    struct raft_entry e;
    const uint8_t *data;
    if ((rc = rd_entry(r, &e, &data)))
      return rc;
    total += e.buf.len; /* within the input, so no overflow */
  }
  struct raft_entry *entries = raft_malloc((size_t)n * sizeof *entries);
  if (entries == NULL)
    return CHORUS_ENOMEM;
  uint8_t *batch = raft_malloc(total > 0 ? total : 1);
  if (batch == NULL) {
    raft_free(entries);
    return CHORUS_ENOMEM;
  }
  struct rd again = first;
  size_t off = 0;
  for (uint64_t i = 0; i < n; i++) {
    const uint8_t *data;
    rc = rd_entry(&again, &entries[i], &data);
    assert(rc == CHORUS_OK && entries[i].buf.len <= total - off);
    if (entries[i].buf.len > 0)
      memcpy(batch + off, data, entries[i].buf.len);
    entries[i].buf.base = batch + off;
    entries[i].batch = batch;
    off += entries[i].buf.len;
  }
  assert(again.p == r->p && off == total);
  a->entries = entries;
  a->n_entries = (unsigned)n;
  return CHORUS_OK;
}

/* A configuration into @conf, initialised by the caller (and closed by
 * meta_msg_release on failure). */
static int rd_conf(struct rd *r, struct raft_configuration *conf) {
  uint64_t n;
  int rc = rd_array(r, &n, META_MAX_MEMBERS, META__MIN_SERVER);
  for (uint64_t i = 0; i < n && rc == CHORUS_OK; i++) {
    uint64_t id, role;
    char address[META_ADDR_MAX];
    if ((rc = rd_tuple(r, 3)) || (rc = rd_uint(r, UINT64_MAX, &id)) ||
        (rc = rd_str(r, address, sizeof address)) ||
        (rc = rd_uint(r, RAFT_SPARE, &role)) ||
        (rc = server_check(id, address, (int)role, CHORUS_EMALFORMED)))
      return rc;
    switch (raft_configuration_add(conf, id, address, (int)role)) {
    case 0:
      break;
    case RAFT_NOMEM:
      return CHORUS_ENOMEM;
    default: /* RAFT_DUPLICATEID, RAFT_DUPLICATEADDRESS */
      return CHORUS_EMALFORMED;
    }
  }
  return rc;
}

static int rd_snapshot(struct rd *r, struct raft_install_snapshot *s) {
  const uint8_t *data;
  size_t len;
  int rc;
  raft_configuration_init(&s->conf);
  if ((rc = rd_ull(r, &s->term)) || (rc = rd_ull(r, &s->last_index)) ||
      (rc = rd_ull(r, &s->last_term)) || (rc = rd_conf(r, &s->conf)) ||
      (rc = rd_ull(r, &s->conf_index)) ||
      (rc = rd_raw(r, false, META_MAX_STATE_BYTES, &data, &len)))
    return rc;
  s->data.base = raft_malloc(len > 0 ? len : 1);
  if (s->data.base == NULL)
    return CHORUS_ENOMEM;
  if (len > 0)
    memcpy(s->data.base, data, len);
  s->data.len = len;
  return CHORUS_OK;
}

static int rd_raft(struct rd *r, struct raft_message *m) {
  /* Elements of each RPC's array, by type. */
  static const uint8_t fields[RAFT_IO_TIMEOUT_NOW + 1] = {
      [RAFT_IO_APPEND_ENTRIES] = 6,   [RAFT_IO_APPEND_ENTRIES_RESULT] = 4,
      [RAFT_IO_REQUEST_VOTE] = 7,     [RAFT_IO_REQUEST_VOTE_RESULT] = 4,
      [RAFT_IO_INSTALL_SNAPSHOT] = 7, [RAFT_IO_TIMEOUT_NOW] = 4,
  };
  uint64_t n, type;
  int rc;
  if ((rc = rd_array(r, &n, UINT64_MAX, 1)) ||
      (rc = rd_uint(r, RAFT_IO_TIMEOUT_NOW, &type)))
    return rc;
  if (type < RAFT_IO_APPEND_ENTRIES || n != fields[type])
    return CHORUS_EMALFORMED;
  m->type = (unsigned short)type;
  switch (m->type) {
  case RAFT_IO_APPEND_ENTRIES: {
    struct raft_append_entries *a = &m->append_entries;
    if ((rc = rd_ull(r, &a->term)) || (rc = rd_ull(r, &a->prev_log_index)) ||
        (rc = rd_ull(r, &a->prev_log_term)) ||
        (rc = rd_ull(r, &a->leader_commit)))
      return rc;
    return rd_entries(r, a);
  }
  case RAFT_IO_APPEND_ENTRIES_RESULT: {
    struct raft_append_entries_result *a = &m->append_entries_result;
    if ((rc = rd_ull(r, &a->term)) || (rc = rd_ull(r, &a->rejected)))
      return rc;
    return rd_ull(r, &a->last_log_index);
  }
  case RAFT_IO_REQUEST_VOTE: {
    struct raft_request_vote *v = &m->request_vote;
    if ((rc = rd_ull(r, &v->term)) || (rc = rd_ull(r, &v->candidate_id)) ||
        (rc = rd_ull(r, &v->last_log_index)) ||
        (rc = rd_ull(r, &v->last_log_term)) ||
        (rc = rd_bool(r, &v->disrupt_leader)))
      return rc;
    return rd_bool(r, &v->pre_vote);
  }
  case RAFT_IO_REQUEST_VOTE_RESULT: {
    struct raft_request_vote_result *v = &m->request_vote_result;
    uint64_t pre;
    if ((rc = rd_ull(r, &v->term)) || (rc = rd_bool(r, &v->vote_granted)) ||
        (rc = rd_uint(r, raft_tribool_false, &pre)))
      return rc;
    v->pre_vote = (raft_tribool)pre;
    return CHORUS_OK;
  }
  case RAFT_IO_INSTALL_SNAPSHOT:
    return rd_snapshot(r, &m->install_snapshot);
  default: { /* TIMEOUT_NOW */
    struct raft_timeout_now *t = &m->timeout_now;
    if ((rc = rd_ull(r, &t->term)) || (rc = rd_ull(r, &t->last_log_index)))
      return rc;
    return rd_ull(r, &t->last_log_term);
  }
  }
}

int meta_msg_decode(const void *buf, size_t len, struct meta_msg *out) {
  assert(out != NULL && (buf != NULL || len == 0));
  memset(out, 0, sizeof *out);
  if (len > META_MAX_MSG_BYTES)
    return CHORUS_ETOOBIG;
  struct rd r = {buf, (const uint8_t *)buf + len, 0};
  int rc;
  if ((rc = rd_version(&r)) || (rc = rd_tuple(&r, 4)) ||
      (rc = rd_u8(&r, &out->type)) ||
      (rc = rd_uint(&r, UINT64_MAX, &out->cluster)) ||
      (rc = rd_uint(&r, UINT64_MAX, &out->from)))
    goto err_after_init;
  if (out->from == 0) {
    rc = CHORUS_EMALFORMED;
    goto err_after_init;
  }
  switch (out->type) {
  case META_MSG_RAFT:
    /* From here on, meta_msg_release undoes whatever was allocated. */
    rc = rd_raft(&r, &out->raft);
    out->raft.server_id = out->from;
    break;
  case META_MSG_PROPOSE:
    if ((rc = rd_tuple(&r, 2)) == CHORUS_OK &&
        (rc = rd_uint(&r, UINT64_MAX, &out->req_id)) == CHORUS_OK)
      rc = rd_cmd(&r, &out->cmd);
    break;
  case META_MSG_PROPOSE_REPLY: {
    int64_t status;
    if ((rc = rd_tuple(&r, 5)) ||
        (rc = rd_uint(&r, UINT64_MAX, &out->req_id)) ||
        (rc = rd_int(&r, INT32_MIN, 0, &status)) ||
        (rc = rd_uint(&r, UINT64_MAX, &out->index)) ||
        (rc = rd_uint(&r, UINT64_MAX, &out->leader)) ||
        (rc = rd_str(&r, out->text, sizeof out->text)))
      break;
    out->status = (int32_t)status;
    break;
  }
  default:
    rc = CHORUS_EMALFORMED;
    break;
  }
  if (rc == CHORUS_OK)
    rc = rd_end(&r);
  if (rc == CHORUS_OK)
    return CHORUS_OK;
  meta_msg_release(out);
err_after_init:
  memset(out, 0, sizeof *out);
  return rc;
}

void meta_msg_release(struct meta_msg *m) {
  if (m == NULL || m->type != META_MSG_RAFT)
    return;
  switch (m->raft.type) {
  case RAFT_IO_APPEND_ENTRIES: {
    struct raft_append_entries *a = &m->raft.append_entries;
    if (a->entries == NULL)
      break;
    /* Free each batch once, as raft's entryBatchesDestroy does; ours have
     * one, but a message may have been assembled otherwise. */
    void *batch = NULL;
    for (unsigned i = 0; i < a->n_entries; i++) {
      if (a->entries[i].batch != batch) {
        batch = a->entries[i].batch;
        raft_free(batch);
      }
    }
    raft_free(a->entries);
    a->entries = NULL;
    a->n_entries = 0;
    break;
  }
  case RAFT_IO_INSTALL_SNAPSHOT: {
    struct raft_install_snapshot *s = &m->raft.install_snapshot;
    raft_configuration_close(&s->conf);
    raft_configuration_init(&s->conf);
    raft_free(s->data.base);
    s->data.base = NULL;
    s->data.len = 0;
    break;
  }
  default:
    break;
  }
}
