/* meta_test.h: what the meta tests, the meta fuzz targets and meta_seeds
 * share: deep equality of commands, states and messages (entries' bytes,
 * configurations), and sample values of every command and message type. */
#ifndef CHORUS_META_TEST_H
#define CHORUS_META_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "meta.h"

/* ------------------------------------------------------------------------
 * Equality. Fields a type does not use are not compared (the codec does
 * not carry them), nor raft.server_id and raft.server_address (the encoder
 * ignores them, the decoder sets them): tests check those themselves.
 * ------------------------------------------------------------------------ */

static inline bool meta_t_repl_eq(const struct ring_replication *a,
                                  const struct ring_replication *b) {
  if (a->n != b->n || a->dc_count != b->dc_count)
    return false;
  for (uint32_t i = 0; i < a->dc_count && i < RING_MAX_DCS; i++)
    if (strcmp(a->dcs[i].dc, b->dcs[i].dc) != 0 ||
        a->dcs[i].factor != b->dcs[i].factor)
      return false;
  return true;
}

static inline bool meta_t_member_eq(const struct meta_member *a,
                                    const struct meta_member *b) {
  return a->id == b->id && strcmp(a->name, b->name) == 0 &&
         strcmp(a->addr, b->addr) == 0 && strcmp(a->dc, b->dc) == 0 &&
         strcmp(a->rack, b->rack) == 0 && a->vnodes == b->vnodes &&
         a->state == b->state && a->since == b->since && a->goal == b->goal &&
         a->ready == b->ready && a->disk == b->disk &&
         a->tokens_of == b->tokens_of;
}

static inline bool meta_t_keyspace_eq(const struct meta_keyspace *a,
                                      const struct meta_keyspace *b) {
  return strcmp(a->name, b->name) == 0 && a->id == b->id &&
         a->type == b->type &&
         meta_t_repl_eq(&a->replication, &b->replication) &&
         a->read == b->read && a->write == b->write && a->ttl_ms == b->ttl_ms &&
         a->siblings_warn == b->siblings_warn &&
         a->siblings_max == b->siblings_max;
}

/* Users compare field by field (the grants beyond ngrants are not
 * carried). */
static inline bool meta_t_user_eq(const struct meta_user *a,
                                  const struct meta_user *b) {
  if (strcmp(a->name, b->name) != 0 || a->ops != b->ops ||
      a->mem_kib != b->mem_kib || a->ngrants != b->ngrants ||
      memcmp(a->salt, b->salt, sizeof a->salt) != 0 ||
      memcmp(a->stored_key, b->stored_key, sizeof a->stored_key) != 0 ||
      memcmp(a->server_key, b->server_key, sizeof a->server_key) != 0)
    return false;
  for (uint8_t i = 0; i < a->ngrants; i++)
    if (a->grants[i].role != b->grants[i].role ||
        a->grants[i].ks_id != b->grants[i].ks_id)
      return false;
  return true;
}

static inline bool meta_t_cmd_eq(const struct meta_cmd *a,
                                 const struct meta_cmd *b) {
  if (a->type != b->type || a->proposer != b->proposer ||
      a->req_id != b->req_id)
    return false;
  switch (a->type) {
  case META_CMD_JOIN:
    return meta_t_member_eq(&a->member, &b->member);
  case META_CMD_SET_STATE:
    return a->id == b->id && a->state == b->state;
  case META_CMD_REMOVE:
    return a->id == b->id;
  case META_CMD_REPLICATION:
    return meta_t_repl_eq(&a->replication, &b->replication);
  case META_CMD_NOTE:
    return a->note_key == b->note_key && a->note_value == b->note_value;
  case META_CMD_LEAVE:
    return a->id == b->id && a->state == b->state;
  case META_CMD_STREAMED:
    return a->id == b->id && a->epoch == b->epoch;
  case META_CMD_FINISH:
    return a->epoch == b->epoch;
  case META_CMD_REPLACE:
    return a->id == b->id && a->with == b->with && a->disk == b->disk;
  case META_CMD_STAGE:
    return a->staged_type == b->staged_type && a->id == b->id &&
           a->state == b->state && a->with == b->with && a->disk == b->disk;
  case META_CMD_COMMIT:
    return a->state == b->state;
  case META_CMD_KEYSPACE_CREATE:
  case META_CMD_KEYSPACE_ALTER:
    return meta_t_keyspace_eq(&a->keyspace, &b->keyspace);
  case META_CMD_KEYSPACE_DROP:
    return strcmp(a->keyspace.name, b->keyspace.name) == 0;
  case META_CMD_USER_CREATE:
  case META_CMD_USER_PASSWD:
    return meta_t_user_eq(&a->user, &b->user);
  case META_CMD_USER_DROP:
    return strcmp(a->user.name, b->user.name) == 0;
  case META_CMD_USER_GRANT:
  case META_CMD_USER_REVOKE:
    return strcmp(a->user.name, b->user.name) == 0 &&
           a->grant.role == b->grant.role && a->grant.ks_id == b->grant.ks_id;
  case META_CMD_KEY_INSTALL:
    return a->key.id == b->key.id &&
           memcmp(a->key.key, b->key.key, sizeof a->key.key) == 0;
  case META_CMD_KEY_USE:
  case META_CMD_KEY_REMOVE:
    return a->key.id == b->key.id;
  case META_CMD_KEY_APPLIED:
    return a->id == b->id && a->version == b->version;
  default:
    return false;
  }
}

static inline bool meta_t_state_eq(const struct meta_state *a,
                                   const struct meta_state *b) {
  if (a->epoch != b->epoch || a->applied != b->applied || a->n != b->n ||
      !meta_t_repl_eq(&a->replication, &b->replication))
    return false;
  for (size_t i = 0; i < a->n; i++)
    if (!meta_t_member_eq(&a->members[i], &b->members[i]))
      return false;
  if (a->note_key != b->note_key || a->note != b->note ||
      a->nsessions != b->nsessions)
    return false;
  for (size_t i = 0; i < a->nsessions; i++) {
    const struct meta_session *x = &a->sessions[i], *y = &b->sessions[i];
    if (x->proposer != y->proposer || x->req_id != y->req_id ||
        x->status != y->status || x->index != y->index)
      return false;
  }
  if (a->nks != b->nks || a->next_ks_id != b->next_ks_id)
    return false;
  for (size_t i = 0; i < a->nks; i++)
    if (!meta_t_keyspace_eq(&a->keyspaces[i], &b->keyspaces[i]))
      return false;
  if (a->nusers != b->nusers)
    return false;
  for (size_t i = 0; i < a->nusers; i++)
    if (!meta_t_user_eq(&a->users[i], &b->users[i]))
      return false;
  const struct meta_keyring *x = &a->keyring, *y = &b->keyring;
  if (x->version != y->version || x->primary != y->primary ||
      x->primary_since != y->primary_since ||
      x->boot_retired != y->boot_retired || x->n != y->n ||
      a->nacks != b->nacks)
    return false;
  for (uint8_t i = 0; i < x->n; i++)
    if (x->keys[i].id != y->keys[i].id ||
        x->keys[i].since != y->keys[i].since ||
        memcmp(x->keys[i].key, y->keys[i].key, sizeof x->keys[i].key) != 0)
      return false;
  for (size_t i = 0; i < a->nacks; i++)
    if (a->acks[i].id != b->acks[i].id ||
        a->acks[i].version != b->acks[i].version)
      return false;
  return memcmp(&a->staged, &b->staged, sizeof a->staged) == 0;
}

static inline bool meta_t_buf_eq(const void *a, size_t alen, const void *b,
                                 size_t blen) {
  return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static inline bool meta_t_raft_eq(const struct raft_message *a,
                                  const struct raft_message *b) {
  if (a->type != b->type)
    return false;
  switch (a->type) {
  case RAFT_IO_APPEND_ENTRIES: {
    const struct raft_append_entries *x = &a->append_entries,
                                     *y = &b->append_entries;
    if (x->term != y->term || x->prev_log_index != y->prev_log_index ||
        x->prev_log_term != y->prev_log_term ||
        x->leader_commit != y->leader_commit || x->n_entries != y->n_entries)
      return false;
    for (unsigned i = 0; i < x->n_entries; i++) {
      const struct raft_entry *e = &x->entries[i], *f = &y->entries[i];
      if (e->term != f->term || e->type != f->type ||
          !meta_t_buf_eq(e->buf.base, e->buf.len, f->buf.base, f->buf.len))
        return false;
    }
    return true;
  }
  case RAFT_IO_APPEND_ENTRIES_RESULT: {
    const struct raft_append_entries_result *x = &a->append_entries_result,
                                            *y = &b->append_entries_result;
    return x->term == y->term && x->rejected == y->rejected &&
           x->last_log_index == y->last_log_index;
  }
  case RAFT_IO_REQUEST_VOTE: {
    const struct raft_request_vote *x = &a->request_vote, *y = &b->request_vote;
    return x->term == y->term && x->candidate_id == y->candidate_id &&
           x->last_log_index == y->last_log_index &&
           x->last_log_term == y->last_log_term &&
           x->disrupt_leader == y->disrupt_leader && x->pre_vote == y->pre_vote;
  }
  case RAFT_IO_REQUEST_VOTE_RESULT: {
    const struct raft_request_vote_result *x = &a->request_vote_result,
                                          *y = &b->request_vote_result;
    return x->term == y->term && x->vote_granted == y->vote_granted &&
           x->pre_vote == y->pre_vote;
  }
  case RAFT_IO_INSTALL_SNAPSHOT: {
    const struct raft_install_snapshot *x = &a->install_snapshot,
                                       *y = &b->install_snapshot;
    if (x->term != y->term || x->last_index != y->last_index ||
        x->last_term != y->last_term || x->conf_index != y->conf_index ||
        x->conf.n != y->conf.n ||
        !meta_t_buf_eq(x->data.base, x->data.len, y->data.base, y->data.len))
      return false;
    for (unsigned i = 0; i < x->conf.n; i++) {
      const struct raft_server *s = &x->conf.servers[i],
                               *t = &y->conf.servers[i];
      if (s->id != t->id || s->role != t->role ||
          strcmp(s->address, t->address) != 0)
        return false;
    }
    return true;
  }
  case RAFT_IO_TIMEOUT_NOW: {
    const struct raft_timeout_now *x = &a->timeout_now, *y = &b->timeout_now;
    return x->term == y->term && x->last_log_index == y->last_log_index &&
           x->last_log_term == y->last_log_term;
  }
  default:
    return false;
  }
}

static inline bool meta_t_msg_eq(const struct meta_msg *a,
                                 const struct meta_msg *b) {
  if (a->type != b->type || a->cluster != b->cluster || a->from != b->from)
    return false;
  switch (a->type) {
  case META_MSG_RAFT:
    return meta_t_raft_eq(&a->raft, &b->raft);
  case META_MSG_PROPOSE:
    return a->req_id == b->req_id && meta_t_cmd_eq(&a->cmd, &b->cmd);
  case META_MSG_PROPOSE_REPLY:
    return a->req_id == b->req_id && a->status == b->status &&
           a->index == b->index && a->leader == b->leader &&
           strcmp(a->text, b->text) == 0;
  default:
    return false;
  }
}

/* ------------------------------------------------------------------------
 * Samples
 * ------------------------------------------------------------------------ */

static inline struct meta_member meta_t_member(chorus_node_id id,
                                               const char *name, const char *dc,
                                               const char *rack,
                                               uint8_t state) {
  struct meta_member m;
  memset(&m, 0, sizeof m);
  m.id = id;
  snprintf(m.name, sizeof m.name, "%s", name);
  snprintf(m.addr, sizeof m.addr, "10.0.%u.%u:7000", (unsigned)(id >> 8 & 255),
           (unsigned)(id & 255));
  snprintf(m.dc, sizeof m.dc, "%s", dc);
  snprintf(m.rack, sizeof m.rack, "%s", rack);
  m.vnodes = (uint32_t)(id % 3 == 0 ? 0 : 256 * (id % 3));
  m.state = state;
  m.since = id * 10;
  m.disk = id * 0x9e3779b97f4a7c15ull; /* V4 */
  return m;
}

/* "dc1:3,dc2:2" */
static inline struct ring_replication meta_t_repl_dcs(void) {
  struct ring_replication r;
  memset(&r, 0, sizeof r);
  r.dc_count = 2;
  snprintf(r.dcs[0].dc, sizeof r.dcs[0].dc, "dc1");
  r.dcs[0].factor = 3;
  snprintf(r.dcs[1].dc, sizeof r.dcs[1].dc, "dc2");
  r.dcs[1].factor = 2;
  return r;
}

static inline struct ring_replication meta_t_repl_n(uint32_t n) {
  struct ring_replication r;
  memset(&r, 0, sizeof r);
  r.n = n;
  return r;
}

#define META_T_NCMD 24
/* The samples before this one are every V7 command type. */
#define META_T_NCMD_V7 20
/* The samples before this one are every V6 command type. */
#define META_T_NCMD_V6 15
/* The samples before this one are every V4 and V5 command type. */
#define META_T_NCMD_V5 12
/* The samples before this one are every V1 and V2 command type. */
#define META_T_NCMD_V2 6
/* ... and before this one every V3 command type. */
#define META_T_NCMD_V3 9

/* A keyspace called @name with every setting away from its default. */
static inline struct meta_keyspace meta_t_keyspace(const char *name,
                                                   uint32_t id, uint8_t type) {
  struct meta_keyspace k;
  memset(&k, 0, sizeof k);
  snprintf(k.name, sizeof k.name, "%s", name);
  k.id = id;
  k.type = type;
  k.read = META_LEVEL_MIN;
  k.write = 3;
  k.ttl_ms = META_MAX_TTL_MS;
  k.siblings_warn = 10;
  k.siblings_max = 20;
  return k;
}

/* A user called @name with a verifier of recognisable bytes. */
static inline struct meta_user meta_t_user(const char *name) {
  struct meta_user u;
  memset(&u, 0, sizeof u);
  snprintf(u.name, sizeof u.name, "%s", name);
  memset(u.salt, 0x5a, sizeof u.salt);
  u.ops = 2;
  u.mem_kib = 65536;
  memset(u.stored_key, 0x11, sizeof u.stored_key);
  memset(u.server_key, 0x22, sizeof u.server_key);
  return u;
}

/* Gossip key @fill (every byte), with its id. */
static inline struct meta_key meta_t_key(uint8_t fill) {
  struct meta_key k;
  memset(&k, 0, sizeof k);
  memset(k.key, fill, sizeof k.key);
  k.id = meta_key_id(k.key);
  return k;
}

/* Command sample @which, 0..META_T_NCMD-1: every type, replication both
 * ways. */
static inline struct meta_cmd meta_t_cmd(int which) {
  struct meta_cmd c;
  memset(&c, 0, sizeof c);
  switch (which) {
  case 0:
    c.type = META_CMD_JOIN;
    c.member = meta_t_member(0x8000000000000001ull, "node-a", "dc1", "r1",
                             META_JOINING);
    c.member.tokens_of = 0x8000000000000002ull; /* V5 */
    break;
  case 1:
    c.type = META_CMD_SET_STATE;
    c.id = 0x1234567890abcdefull;
    c.state = META_LEAVING;
    break;
  case 2:
    c.type = META_CMD_REMOVE;
    c.id = 77;
    break;
  case 3:
    c.type = META_CMD_REPLICATION;
    c.replication = meta_t_repl_dcs();
    break;
  case 4:
    c.type = META_CMD_REPLICATION;
    c.replication = meta_t_repl_n(16);
    break;
  case 5:
    c.type = META_CMD_NOTE;
    c.note_key = UINT64_MAX;
    c.note_value = 42;
    break;
  case 6:
    c.type = META_CMD_LEAVE;
    c.id = 0xfeedull;
    c.state = META_REMOVED;
    break;
  case 7:
    c.type = META_CMD_STREAMED;
    c.id = UINT64_MAX;
    c.epoch = 1u << 20;
    break;
  case 8:
    c.type = META_CMD_FINISH;
    c.epoch = UINT64_MAX;
    break;
  case 9:
    c.type = META_CMD_REPLACE;
    c.id = 0xdeadull;
    c.with = UINT64_MAX - 1;
    c.disk = 0x0123456789abcdefull;
    break;
  case 10:
    c.type = META_CMD_STAGE;
    c.staged_type = META_CMD_LEAVE;
    c.id = 0xbeefull;
    c.state = META_LEFT;
    break;
  case 11:
    c.type = META_CMD_COMMIT;
    c.state = 1;
    break;
  case 12: /* V6 */
    c.type = META_CMD_KEYSPACE_CREATE;
    c.keyspace = meta_t_keyspace("sessions", 0, META_KS_LWW);
    break;
  case 13:
    c.type = META_CMD_KEYSPACE_ALTER;
    c.keyspace = meta_t_keyspace("users-2", 0, META_KS_ANY);
    c.keyspace.replication = meta_t_repl_dcs(); /* refused when applied */
    break;
  case 14:
    c.type = META_CMD_KEYSPACE_DROP;
    strcpy(c.keyspace.name, "x");
    break;
  case 15: /* V7 */
    c.type = META_CMD_USER_CREATE;
    c.user = meta_t_user("ann@example.org");
    break;
  case 16:
    c.type = META_CMD_USER_PASSWD;
    c.user = meta_t_user("bob");
    c.user.ops = META_USER_OPS_MAX;
    c.user.mem_kib = META_USER_MEM_KIB_MIN;
    break;
  case 17:
    c.type = META_CMD_USER_DROP;
    strcpy(c.user.name, "c");
    break;
  case 18:
    c.type = META_CMD_USER_GRANT;
    strcpy(c.user.name, "ann@example.org");
    c.grant = (struct meta_grant){META_ROLE_WRITE, UINT32_MAX};
    break;
  case 19:
    c.type = META_CMD_USER_REVOKE;
    strcpy(c.user.name, "ann@example.org");
    c.grant = (struct meta_grant){META_ROLE_ADMIN, 0};
    break;
  case 20: /* V8 */
    c.type = META_CMD_KEY_INSTALL;
    c.key = meta_t_key(0xa5);
    break;
  case 21:
    c.type = META_CMD_KEY_USE;
    c.key.id = UINT32_MAX;
    break;
  case 22:
    c.type = META_CMD_KEY_REMOVE; /* id 0: the boot key */
    break;
  default:
    c.type = META_CMD_KEY_APPLIED;
    c.id = 100;
    c.version = UINT64_MAX;
    break;
  }
  if (which % 2 == 0) { /* an origin on half of them */
    c.proposer = 0x5151515151515151ull + (uint64_t)which;
    c.req_id = (uint64_t)(which + 1) << 32 | (uint64_t)which;
  }
  return c;
}

/* A state of @n (<= 8) members over two datacenters, sorted by id; the
 * members live in @members; n % 4 sessions (in a static array). */
static inline struct meta_state meta_t_state(struct meta_member *members,
                                             size_t n) {
  static const char *const names[] = {"alpha", "bravo", "charlie", "delta",
                                      "echo",  "fox",   "golf",    "hotel"};
  struct meta_state s;
  memset(&s, 0, sizeof s);
  s.epoch = 9;
  s.applied = 1234;
  s.replication = meta_t_repl_dcs();
  if (n % 2 == 1) /* V4: a staged change on half of them */
    s.staged = (struct meta_staged){META_CMD_REPLACE, 100, 107, 0, 42};
  for (size_t i = 0; i < n && i < 8; i++)
    members[i] = meta_t_member(100 + 7 * i, names[i], i % 2 ? "dc2" : "dc1",
                               i % 3 ? "r1" : "r2",
                               (uint8_t)(META_JOINING + i % META_STATE_MAX));
  for (size_t i = 0; i < n && i < 8; i++) {
    if (members[i].state == META_LEAVING)
      members[i].goal = i % 2 ? META_LEFT : META_REMOVED;
    members[i].ready = i * 3;
    if (i % 3 == 1) /* V5: a replacement's tokens */
      members[i].tokens_of = 0x5eed0000u + i;
  }
  s.n = n;
  s.members = n > 0 ? members : NULL;
  static struct meta_session sessions[3];
  sessions[0] = (struct meta_session){UINT64_MAX, 0, 0, 1000};
  sessions[1] = (struct meta_session){0x77, UINT64_MAX, INT32_MIN, 1100};
  sessions[2] = (struct meta_session){0x77, 5, 0, 1234};
  s.nsessions = n % 4;
  s.sessions = s.nsessions > 0 ? sessions : NULL;
  s.note_key = n;
  s.note = n * 1000;
  /* V6: two keyspaces when n % 3 == 2, sorted by name. */
  static struct meta_keyspace ks[2];
  if (n % 3 == 2) {
    ks[0] = meta_t_keyspace("orders", 3, META_KS_KV);
    ks[1] = meta_t_keyspace("tags", 1, META_KS_SET);
    ks[1].read = 0, ks[1].siblings_max = 0;
    s.keyspaces = ks;
    s.nks = 2;
    s.next_ks_id = 5;
    /* V7: two users, one with grants on every keyspace and on orders. */
    static struct meta_user users[2];
    users[0] = meta_t_user("ann");
    users[0].grants[0] = (struct meta_grant){META_ROLE_READ, 0};
    users[0].grants[1] = (struct meta_grant){META_ROLE_WRITE, 3};
    users[0].ngrants = 2;
    users[1] = meta_t_user("bob");
    s.users = users;
    s.nusers = 2;
    /* V8: a keyring of two keys, the second primary, and two reports. */
    s.keyring.version = 3;
    s.keyring.keys[0] = meta_t_key(1);
    s.keyring.keys[1] = meta_t_key(2);
    if (s.keyring.keys[0].id > s.keyring.keys[1].id) {
      struct meta_key t = s.keyring.keys[0];
      s.keyring.keys[0] = s.keyring.keys[1];
      s.keyring.keys[1] = t;
    }
    s.keyring.keys[0].since = 1;
    s.keyring.keys[1].since = 2;
    s.keyring.n = 2;
    s.keyring.primary = s.keyring.keys[1].id;
    s.keyring.primary_since = 3;
    static struct meta_key_ack acks[2];
    acks[0] = (struct meta_key_ack){100, 3};
    acks[1] = (struct meta_key_ack){UINT64_MAX, 1};
    s.acks = acks;
    s.nacks = 2;
  }
  return s;
}

/* A message sample and the memory it points to. Do not move it once
 * built: the message points into it. */
struct meta_t_sample {
  struct meta_msg msg;
  struct raft_entry entries[3];
  struct raft_server servers[3];
  char addr[3][META_ADDR_MAX];
  uint8_t data[300];
};

#define META_T_NMSG 13

/* Message sample @which, 0..META_T_NMSG-1: every Raft RPC (AppendEntries
 * with entries of every type and a heartbeat, InstallSnapshot with and
 * without configuration and data), PROPOSE, PROPOSE_REPLY. */
static inline void meta_t_msg(struct meta_t_sample *s, int which) {
  memset(s, 0, sizeof *s);
  for (size_t i = 0; i < sizeof s->data; i++)
    s->data[i] = (uint8_t)(i * 7 + 3);
  struct meta_msg *m = &s->msg;
  m->type = META_MSG_RAFT;
  m->cluster = 0xc1c1c1c1c1c1c1c1ull;
  m->from = 0x0a0a0a0a0a0a0a0aull;
  m->raft.server_id = 5; /* the destination; not encoded */
  switch (which) {
  case 0: {
    struct raft_append_entries *a = &m->raft.append_entries;
    m->raft.type = RAFT_IO_APPEND_ENTRIES;
    a->term = 7;
    a->prev_log_index = 100;
    a->prev_log_term = 6;
    a->leader_commit = 99;
    s->entries[0] = (struct raft_entry){7, RAFT_COMMAND, {s->data, 5}, NULL};
    s->entries[1] = (struct raft_entry){7, RAFT_BARRIER, {NULL, 0}, NULL};
    s->entries[2] =
        (struct raft_entry){7, RAFT_CHANGE, {s->data + 5, 295}, NULL};
    a->entries = s->entries;
    a->n_entries = 3;
    break;
  }
  case 1:
    m->raft.type = RAFT_IO_APPEND_ENTRIES;
    m->raft.append_entries.term = UINT64_MAX;
    m->raft.append_entries.leader_commit = 3;
    break;
  case 2:
    m->raft.type = RAFT_IO_APPEND_ENTRIES_RESULT;
    m->raft.append_entries_result.term = 7;
    m->raft.append_entries_result.rejected = 101;
    m->raft.append_entries_result.last_log_index = 90;
    break;
  case 3:
    m->raft.type = RAFT_IO_REQUEST_VOTE;
    m->raft.request_vote = (struct raft_request_vote){
        8, 0x0a0a0a0a0a0a0a0aull, 120, 7, true, true};
    break;
  case 4:
    m->raft.type = RAFT_IO_REQUEST_VOTE_RESULT;
    m->raft.request_vote_result =
        (struct raft_request_vote_result){8, true, raft_tribool_true};
    break;
  case 5:
    m->raft.type = RAFT_IO_REQUEST_VOTE_RESULT;
    m->raft.request_vote_result =
        (struct raft_request_vote_result){9, false, raft_tribool_false};
    break;
  case 6: {
    struct raft_install_snapshot *is = &m->raft.install_snapshot;
    m->raft.type = RAFT_IO_INSTALL_SNAPSHOT;
    is->term = 8;
    is->last_index = 5000;
    is->last_term = 7;
    is->conf_index = 4000;
    for (int i = 0; i < 3; i++) {
      snprintf(s->addr[i], sizeof s->addr[i], "10.0.0.%d:7000", i + 1);
      s->servers[i] = (struct raft_server){(raft_id)(i + 1) * 1000003u,
                                           s->addr[i], i /* every role */};
    }
    is->conf.servers = s->servers;
    is->conf.n = 3;
    is->data = (struct raft_buffer){s->data, sizeof s->data};
    break;
  }
  case 7:
    m->raft.type = RAFT_IO_INSTALL_SNAPSHOT;
    m->raft.install_snapshot.term = 1;
    break;
  case 8:
    m->raft.type = RAFT_IO_TIMEOUT_NOW;
    m->raft.timeout_now = (struct raft_timeout_now){9, 130, 8};
    break;
  case 9:
    m->type = META_MSG_PROPOSE;
    m->req_id = 31;
    m->cmd = meta_t_cmd(0);
    break;
  case 10:
    m->type = META_MSG_PROPOSE;
    m->req_id = 32;
    m->cmd = meta_t_cmd(3);
    break;
  case 11:
    m->type = META_MSG_PROPOSE_REPLY;
    m->req_id = 31;
    m->status = CHORUS_EEXIST;
    m->index = 77;
    m->leader = 0x0b0b0b0b0b0b0b0bull;
    snprintf(m->text, sizeof m->text, "name node-a is taken");
    break;
  default:
    m->type = META_MSG_PROPOSE_REPLY;
    m->req_id = 33;
    m->status = CHORUS_OK;
    m->index = 78;
    break;
  }
}

#endif /* CHORUS_META_TEST_H */
