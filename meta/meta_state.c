/* meta_state.c: the metadata state machine (meta.h, THE STATE MACHINE):
 * deterministic application of committed commands, lookups, the ring and
 * the voter choice built from it. */
#include <assert.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

#include <xxhash.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "chorus_search.h"
#include "meta_int.h"

const char *meta_member_state_name(enum meta_member_state s) {
  switch (s) {
  case META_JOINING:
    return "joining";
  case META_NORMAL:
    return "normal";
  case META_LEAVING:
    return "leaving";
  case META_LEFT:
    return "left";
  case META_REMOVED:
    return "removed";
  case META_REPLACING:
    return "replacing";
  }
  return "unknown";
}

bool meta_member_owns(uint8_t state) {
  return state == META_JOINING || state == META_NORMAL ||
         state == META_LEAVING || state == META_REPLACING;
}

void meta_state_init(struct meta_state *s,
                     const struct ring_replication *replication) {
  *s = (struct meta_state){0};
  if (replication != NULL)
    s->replication = *replication;
}

void meta_state_free(struct meta_state *s) {
  if (s == NULL)
    return;
  chorus_free(s->members);
  chorus_free(s->sessions);
  chorus_free(s->keyspaces);
  s->keyspaces = NULL;
  s->nks = 0;
  chorus_free(s->users);
  s->users = NULL;
  s->nusers = 0;
  chorus_free(s->acks);
  s->acks = NULL;
  s->nacks = 0;
  s->members = NULL;
  s->n = 0;
  s->sessions = NULL;
  s->nsessions = 0;
}

int meta_state_copy(const struct meta_state *src, struct meta_state *dst) {
  struct meta_member *m = NULL;
  struct meta_session *ss = NULL;
  struct meta_keyspace *ks = NULL;
  struct meta_user *us = NULL;
  struct meta_key_ack *ka = NULL;
  if (src->n > 0 &&
      (m = chorus_memdup(src->members, src->n * sizeof *m)) == NULL)
    return CHORUS_ENOMEM;
  if ((src->nsessions > 0 &&
       (ss = chorus_memdup(src->sessions, src->nsessions * sizeof *ss)) ==
           NULL) ||
      (src->nks > 0 &&
       (ks = chorus_memdup(src->keyspaces, src->nks * sizeof *ks)) == NULL) ||
      (src->nusers > 0 &&
       (us = chorus_memdup(src->users, src->nusers * sizeof *us)) == NULL) ||
      (src->nacks > 0 &&
       (ka = chorus_memdup(src->acks, src->nacks * sizeof *ka)) == NULL)) {
    chorus_free(m);
    chorus_free(ss);
    chorus_free(ks);
    chorus_free(us);
    return CHORUS_ENOMEM;
  }
  *dst = *src;
  dst->members = m;
  dst->sessions = ss;
  dst->keyspaces = ks;
  dst->users = us;
  dst->acks = ka;
  return CHORUS_OK;
}

const struct meta_session *meta_state_session(const struct meta_state *s,
                                              chorus_node_id proposer,
                                              uint64_t req_id) {
  if (proposer == 0)
    return NULL;
  /* Newest first: a resend is close behind its first copy. */
  for (size_t i = s->nsessions; i-- > 0;)
    if (s->sessions[i].proposer == proposer && s->sessions[i].req_id == req_id)
      return &s->sessions[i];
  return NULL;
}

/* session_room: room for one more session, made before the command is
 * applied so that remembering its outcome cannot fail after it (the array
 * is exactly nsessions long: copies and decodes make it so; metadata
 * commands are rare, so one realloc each is no cost). */
static int session_room(struct meta_state *s) {
  if (s->nsessions >= META_MAX_SESSIONS)
    return CHORUS_OK; /* full: the oldest makes room */
  struct meta_session *grown =
      chorus_realloc(s->sessions, (s->nsessions + 1) * sizeof *grown);
  if (grown == NULL)
    return CHORUS_ENOMEM;
  s->sessions = grown;
  return CHORUS_OK;
}

/* remember: @c's outcome, the newest session; the oldest goes once there
 * are META_MAX_SESSIONS. */
static void remember(struct meta_state *s, const struct meta_cmd *c, int rc,
                     uint64_t index) {
  if (s->nsessions == META_MAX_SESSIONS) {
    memmove(&s->sessions[0], &s->sessions[1],
            (s->nsessions - 1) * sizeof s->sessions[0]);
    s->nsessions--;
  }
  s->sessions[s->nsessions++] = (struct meta_session){.proposer = c->proposer,
                                                      .req_id = c->req_id,
                                                      .status = rc,
                                                      .index = index};
}

/* find_slot: the index of @id in the sorted member array, or where it
 * would go (*@found false). */
static size_t find_slot(const struct meta_state *s, chorus_node_id id,
                        bool *found) {
  size_t lo = chorus_id_lower_bound(s->members, s->n, sizeof s->members[0],
                                    offsetof(struct meta_member, id), id);
  *found = lo < s->n && s->members[lo].id == id;
  return lo;
}

const struct meta_member *meta_state_find(const struct meta_state *s,
                                          chorus_node_id id) {
  bool found;
  size_t i = find_slot(s, id, &found);
  return found ? &s->members[i] : NULL;
}

const struct meta_member *meta_state_find_name(const struct meta_state *s,
                                               const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->members[i].name, name) == 0)
      return &s->members[i];
  return NULL;
}

/* transition_ok: the member life meta.h draws. REMOVED is final; LEFT may
 * only be removed; a member may go back to NORMAL from JOINING or LEAVING
 * (an aborted change). */
/* ------------------------------------------------------------------------
 * Keyspaces (V6)
 * ------------------------------------------------------------------------ */

static const char *const ks_type_names[] = {"any",     "kv",  "lww",
                                            "counter", "set", "map"};

const char *meta_ks_type_name(uint8_t type) {
  return type <= META_KS_TYPE_MAX ? ks_type_names[type] : "?";
}

int meta_ks_type_parse(const char *name) {
  for (int i = 0; i <= META_KS_TYPE_MAX; i++)
    if (strcmp(name, ks_type_names[i]) == 0)
      return i;
  return -1;
}

/* ks_slot: where keyspace @name is, or would go (*@found says which). */
static size_t ks_slot(const struct meta_state *s, const char *name,
                      bool *found) {
  size_t i =
      chorus_name_lower_bound(s->keyspaces, s->nks, sizeof *s->keyspaces,
                              offsetof(struct meta_keyspace, name), name);
  *found = i < s->nks && strcmp(s->keyspaces[i].name, name) == 0;
  return i;
}

const struct meta_keyspace *meta_state_keyspace(const struct meta_state *s,
                                                const char *name) {
  bool found;
  size_t i = ks_slot(s, name, &found);
  return found ? &s->keyspaces[i] : NULL;
}

static int ks_why(char *why, int code, const char *text) {
  if (why != NULL)
    snprintf(why, META_TEXT_MAX, "%s", text);
  return code;
}

int meta_keyspace_check(const struct meta_keyspace *k, char *why) {
  size_t len = strnlen(k->name, META_KEYSPACE_NAME_MAX);
  if (len == 0 || len == META_KEYSPACE_NAME_MAX)
    return ks_why(why, CHORUS_EINVAL, "a keyspace name has 1..47 bytes");
  for (size_t i = 0; i < len; i++) {
    char ch = k->name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
      return ks_why(why, CHORUS_EINVAL,
                    "a keyspace name is letters, digits, '_' and '-'");
  }
  if (strcmp(k->name, "default") == 0)
    return ks_why(why, CHORUS_EINVAL,
                  "'default' is the keyspace of requests that name none");
  if (k->type > META_KS_TYPE_MAX)
    return ks_why(why, CHORUS_EINVAL, "unknown type");
  if (k->read < META_LEVEL_MIN || k->read > META_LEVEL_MAX ||
      k->write < META_LEVEL_MIN || k->write > META_LEVEL_MAX)
    return ks_why(why, CHORUS_EINVAL, "a default level out of range");
  if (k->ttl_ms > META_MAX_TTL_MS)
    return ks_why(why, CHORUS_EINVAL, "a TTL over ten years");
  if (k->siblings_warn > META_MAX_SIBLINGS ||
      k->siblings_max > META_MAX_SIBLINGS ||
      (k->siblings_warn != 0 && k->siblings_max != 0 &&
       k->siblings_warn > k->siblings_max))
    return ks_why(why, CHORUS_EINVAL,
                  "sibling limits: warn at most max, both at most 100000");
  if (k->replication.n != 0 || k->replication.dc_count != 0) {
    char err[CHORUS_ERRMSG_SIZE] = "";
    if (ring_replication_check(&k->replication, err) != CHORUS_OK)
      return ks_why(why, CHORUS_EINVAL, err);
  }
  return CHORUS_OK;
}

/* ks_own_replication: whether keyspace @k replicates otherwise than the
 * cluster (@s): n 0 with no datacenters is the cluster's, and so is a
 * spec giving the same replica sets (ring_replication_tag). */
static bool ks_own_replication(const struct meta_state *s,
                               const struct meta_keyspace *k) {
  if (k->replication.n == 0 && k->replication.dc_count == 0)
    return false;
  return ring_replication_tag(&k->replication) !=
         ring_replication_tag(&s->replication);
}

static uint64_t ks_class_tag(const struct meta_state *s,
                             const struct meta_keyspace *k) {
  return ks_own_replication(s, k) ? ring_replication_tag(&k->replication) : 0;
}

uint64_t meta_state_placement(const struct meta_state *s) {
  /* Dropped keyspaces too (ring_key_dropped): once one is, every live id
   * and the next one name which. */
  bool dropped = s->next_ks_id > 1 && s->nks < (size_t)s->next_ks_id - 1;
  uint64_t h = dropped ? XXH3_64bits(&s->next_ks_id, sizeof s->next_ks_id) : 0;
  for (size_t i = 0; i < s->nks; i++) {
    uint64_t tag = ks_class_tag(s, &s->keyspaces[i]);
    if (tag != 0 || dropped) {
      uint64_t pair[2] = {tag, s->keyspaces[i].id};
      h = XXH3_64bits_withSeed(pair, sizeof pair, h);
    }
  }
  return h;
}

int meta_keyspace_placement(const struct meta_state *s,
                            const struct meta_keyspace *k, bool alter,
                            char *why) {
  bool found;
  size_t at = ks_slot(s, k->name, &found);
  uint64_t tag = ks_class_tag(s, k);
  if (alter && found && tag != ks_class_tag(s, &s->keyspaces[at]))
    return ks_why(why, CHORUS_ENOTSUP,
                  "its replication cannot change (moving its keys is not "
                  "built): create a keyspace with the new one");
  if (alter || tag == 0)
    return CHORUS_OK;
  /* A new class: at most RING_MAX_CLASSES with the cluster's. */
  uint64_t seen[RING_MAX_CLASSES];
  unsigned n = 0;
  for (size_t i = 0; i < s->nks; i++) {
    uint64_t t = ks_class_tag(s, &s->keyspaces[i]);
    if (t == tag)
      return CHORUS_OK;
    bool dup = t == 0;
    for (unsigned j = 0; j < n && !dup; j++)
      dup = seen[j] == t;
    if (!dup && n < RING_MAX_CLASSES)
      seen[n++] = t;
  }
  if (n + 1 >= RING_MAX_CLASSES)
    return ks_why(why, CHORUS_ENOSPC,
                  "at most 7 replications besides the cluster's: use one "
                  "another keyspace has");
  return CHORUS_OK;
}

static int apply_keyspace(struct meta_state *s, const struct meta_cmd *c) {
  const struct meta_keyspace *k = &c->keyspace;
  bool found;
  size_t i = ks_slot(s, k->name, &found);
  if (c->type == META_CMD_KEYSPACE_DROP) {
    if (!found)
      return CHORUS_ENOTFOUND;
    meta__drop_grants(s, s->keyspaces[i].id);
    memmove(&s->keyspaces[i], &s->keyspaces[i + 1],
            (s->nks - i - 1) * sizeof *s->keyspaces);
    s->nks--;
    return CHORUS_OK;
  }
  int rc = meta_keyspace_check(k, NULL);
  if (rc == CHORUS_OK && (found || c->type == META_CMD_KEYSPACE_CREATE))
    rc =
        meta_keyspace_placement(s, k, c->type == META_CMD_KEYSPACE_ALTER, NULL);
  if (rc != CHORUS_OK)
    return rc;
  if (c->type == META_CMD_KEYSPACE_ALTER) {
    if (!found)
      return CHORUS_ENOTFOUND;
    if (k->type != s->keyspaces[i].type)
      return CHORUS_EINVAL; /* its keys hold that type already */
    uint32_t id = s->keyspaces[i].id;
    s->keyspaces[i] = *k;
    s->keyspaces[i].id = id;
    return CHORUS_OK;
  }
  if (found)
    return CHORUS_EEXIST;
  if (s->nks >= META_MAX_KEYSPACES || s->next_ks_id == UINT32_MAX)
    return CHORUS_ENOSPC;
  struct meta_keyspace *t =
      chorus_realloc(s->keyspaces, (s->nks + 1) * sizeof *s->keyspaces);
  if (t == NULL)
    return CHORUS_ENOMEM;
  s->keyspaces = t;
  memmove(&t[i + 1], &t[i], (s->nks - i) * sizeof *t);
  t[i] = *k;
  if (s->next_ks_id == 0)
    s->next_ks_id = 1;
  t[i].id = s->next_ks_id++;
  s->nks++;
  return CHORUS_OK;
}

static bool transition_ok(uint8_t from, uint8_t to) {
  if (from == to)
    return false;
  switch (to) {
  case META_NORMAL:
    return from == META_JOINING || from == META_LEAVING ||
           from == META_REPLACING;
  case META_LEAVING:
    return from == META_NORMAL;
  case META_LEFT:
    return from == META_LEAVING || from == META_JOINING;
  case META_JOINING:
    return false;
  case META_REMOVED:
    return from != META_REMOVED;
  default:
    return false;
  }
}

static bool terminated(const char *field, size_t cap) {
  return memchr(field, '\0', cap) != NULL;
}

static int apply_join(struct meta_state *s, const struct meta_member *m,
                      uint64_t index) {
  /* A decoded command has passed these checks (meta_codec.c); one built
   * in memory must pass them too before it shapes the ring. */
  if (m->id == 0 || m->state < META_JOINING || m->state > META_NORMAL ||
      !terminated(m->name, sizeof m->name) || m->name[0] == '\0' ||
      !terminated(m->addr, sizeof m->addr) ||
      !terminated(m->dc, sizeof m->dc) ||
      !terminated(m->rack, sizeof m->rack) || m->vnodes > RING_MAX_VNODES)
    return CHORUS_EINVAL;
  const struct meta_member *same = meta_state_find_name(s, m->name);
  bool found;
  size_t at = find_slot(s, m->id, &found);
  if (found || same != NULL)
    return CHORUS_EEXIST;
  /* Only the first member may own tokens from its JOIN: once a member
   * owns some, the cluster may hold data, and a member that owned tokens
   * at once would serve reads of keys it never received. Every later one
   * (the founders after the first included) joins as JOINING and streams
   * (TOPOLOGY CHANGES), one change at a time. */
  bool owned = false;
  for (size_t i = 0; i < s->n && !owned; i++)
    owned = meta_member_owns(s->members[i].state);
  uint8_t state = m->state == META_NORMAL && owned ? META_JOINING : m->state;
  if (state == META_JOINING && meta_state_changing(s))
    return CHORUS_EBUSY;
  if (s->n >= META_MAX_MEMBERS)
    return CHORUS_ETOOBIG;
  struct meta_member *grown =
      chorus_realloc(s->members, (s->n + 1) * sizeof *grown);
  if (grown == NULL)
    return CHORUS_ENOMEM;
  s->members = grown;
  memmove(&grown[at + 1], &grown[at], (s->n - at) * sizeof *grown);
  grown[at] = *m;
  grown[at].state = state;
  grown[at].since = index;
  grown[at].goal = 0;
  grown[at].ready = 0;
  grown[at].tokens_of = 0; /* its own: only a REPLACE hands tokens over */
  s->n++;
  return CHORUS_OK;
}

/* apply_replace: REPLACE(@id, @with) (meta.h). */
static int apply_replace(struct meta_state *s, const struct meta_cmd *c,
                         uint64_t index) {
  bool found;
  size_t i = find_slot(s, c->id, &found);
  if (!found)
    return CHORUS_ENOTFOUND;
  if (s->members[i].state != META_NORMAL)
    return CHORUS_EINVAL;
  if (c->with == c->id) {
    if (meta_state_changing(s))
      return CHORUS_EBUSY;
    s->members[i].state = META_REPLACING;
    s->members[i].since = index;
    s->members[i].ready = 0;
    s->members[i].disk = c->disk;
    return CHORUS_OK;
  }
  /* A new node takes the place of a lost one: its join (the change under
   * way, and the only one) and the lost node's removal complete together
   * (one FINISH), its streams come from the live replicas. */
  const struct meta_member *w = meta_state_find(s, c->with);
  if (w == NULL)
    return CHORUS_ENOTFOUND;
  if (w->state != META_JOINING && w->state != META_NORMAL)
    return CHORUS_EINVAL;
  if (w->state == META_NORMAL && meta_state_changing(s))
    return CHORUS_EBUSY; /* its join is over: a removal, one at a time */
  for (size_t j = 0; j < s->n; j++)
    if (j != i && s->members[j].id != c->with &&
        (s->members[j].state == META_JOINING ||
         s->members[j].state == META_LEAVING ||
         s->members[j].state == META_REPLACING))
      return CHORUS_EBUSY;
  s->members[i].state = META_LEAVING;
  s->members[i].goal = META_REMOVED;
  s->members[i].since = index;
  /* A joining replacement takes the lost node's tokens (Cassandra's
   * replace_address): the future ring is the current one with the new node
   * in the lost one's place, so only the replacement gains ranges, exactly
   * the lost node's, and no other node's data moves. One that already
   * finished joining keeps its own tokens: its ring is settled, and this
   * is then the lost node's removal. */
  struct meta_member *joiner = &s->members[find_slot(s, c->with, &found)];
  if (joiner->state == META_JOINING) {
    joiner->tokens_of =
        s->members[i].tokens_of ? s->members[i].tokens_of : s->members[i].id;
    joiner->vnodes = s->members[i].vnodes;
  }
  return CHORUS_OK;
}

int meta_state_apply(struct meta_state *s, const struct meta_cmd *c,
                     uint64_t index) {
  const struct meta_session *dup =
      meta_state_session(s, c->proposer, c->req_id);
  if (dup != NULL) {
    if (index > s->applied)
      s->applied = index;
    return dup->status;
  }
  if (c->proposer != 0 && session_room(s) != CHORUS_OK)
    return CHORUS_ENOMEM;
  int rc = CHORUS_OK;
  bool ring_input = false;
  switch (c->type) {
  case META_CMD_JOIN:
    rc = apply_join(s, &c->member, index);
    if (rc == CHORUS_ENOMEM)
      return rc;
    ring_input = rc == CHORUS_OK;
    break;
  case META_CMD_SET_STATE:
  case META_CMD_REMOVE: {
    uint8_t to = c->type == META_CMD_REMOVE ? META_REMOVED : c->state;
    bool found;
    size_t i = find_slot(s, c->id, &found);
    if (!found) {
      rc = CHORUS_ENOTFOUND;
    } else if (!transition_ok(s->members[i].state, to)) {
      rc = CHORUS_EINVAL;
    } else {
      s->members[i].state = to;
      s->members[i].since = index;
      s->members[i].goal = 0;
      ring_input = true;
    }
    break;
  }
  case META_CMD_LEAVE: {
    bool found;
    size_t i = find_slot(s, c->id, &found);
    if (!found)
      rc = CHORUS_ENOTFOUND;
    else if (s->members[i].state == META_LEAVING &&
             s->members[i].goal == c->state)
      rc = CHORUS_OK; /* asked again (two operators, a retried command) */
    else if (s->members[i].state != META_NORMAL ||
             (c->state != META_LEFT && c->state != META_REMOVED))
      rc = CHORUS_EINVAL;
    else if (meta_state_changing(s))
      rc = CHORUS_EBUSY;
    else if (meta_state_sole_owner(s, c->id))
      rc = CHORUS_EINVAL; /* nobody would take its ranges */
    else {
      s->members[i].state = META_LEAVING;
      s->members[i].goal = c->state;
      s->members[i].since = index;
      ring_input = true;
    }
    break;
  }
  case META_CMD_REPLACE:
    rc = apply_replace(s, c, index);
    ring_input = rc == CHORUS_OK;
    break;
  case META_CMD_STAGE:
    /* Staged, not applied: the members it names must exist now (the
     * commit checks the rest, against the state then). */
    if (c->staged_type != META_CMD_LEAVE &&
        c->staged_type != META_CMD_REPLACE && c->staged_type != META_CMD_REMOVE)
      rc = CHORUS_EINVAL;
    else if (meta_state_find(s, c->id) == NULL ||
             (c->staged_type == META_CMD_REPLACE &&
              meta_state_find(s, c->with) == NULL))
      rc = CHORUS_ENOTFOUND;
    else
      s->staged = (struct meta_staged){c->staged_type, c->id, c->with, c->state,
                                       c->disk};
    break;
  case META_CMD_COMMIT:
    if (c->state == 0) {
      s->staged = (struct meta_staged){0};
    } else if (s->staged.type == 0) {
      rc = CHORUS_ENOTFOUND;
    } else {
      /* The staged command, applied now as if proposed now (no origin of
       * its own: the COMMIT's answers for it). */
      const struct meta_staged *st = &s->staged;
      struct meta_cmd inner = {.type = st->type,
                               .id = st->id,
                               .state = st->state,
                               .with = st->with,
                               .disk = st->disk};
      rc = meta_state_apply(s, &inner, index);
      if (rc == CHORUS_ENOMEM)
        return rc;
      if (rc == CHORUS_OK)
        s->staged = (struct meta_staged){0};
    }
    break;
  case META_CMD_STREAMED: {
    bool found;
    size_t i = find_slot(s, c->id, &found);
    if (!found)
      rc = CHORUS_ENOTFOUND;
    else if (c->epoch != s->epoch || !meta_state_changing(s))
      rc = CHORUS_ESTALE;
    else
      s->members[i].ready = c->epoch;
    break;
  }
  case META_CMD_FINISH:
    if (c->epoch != s->epoch || !meta_state_changing(s)) {
      rc = CHORUS_ESTALE;
      break;
    }
    for (size_t i = 0; i < s->n; i++) {
      struct meta_member *m = &s->members[i];
      if (m->state != META_JOINING && m->state != META_LEAVING &&
          m->state != META_REPLACING)
        continue;
      /* A LEAVING member without a goal (made so by SET_STATE, or read
       * from a V2 state) leaves as LEFT. */
      m->state = m->state != META_LEAVING ? META_NORMAL
                 : m->goal != 0           ? m->goal
                                          : META_LEFT;
      m->goal = 0;
      m->since = index;
    }
    ring_input = true;
    break;
  case META_CMD_REPLICATION:
    if (ring_replication_check(&c->replication, NULL) != CHORUS_OK) {
      rc = CHORUS_EINVAL;
    } else if (memcmp(&s->replication, &c->replication,
                      sizeof c->replication) != 0) {
      s->replication = c->replication;
      ring_input = true;
    }
    break;
  case META_CMD_NOTE:
    s->note_key = c->note_key;
    s->note = c->note_value;
    break;
  case META_CMD_KEYSPACE_CREATE:
  case META_CMD_KEYSPACE_ALTER:
  case META_CMD_KEYSPACE_DROP:
    rc = apply_keyspace(s, c);
    if (rc == CHORUS_ENOMEM)
      return rc;
    break;
  case META_CMD_USER_CREATE:
  case META_CMD_USER_PASSWD:
  case META_CMD_USER_DROP:
  case META_CMD_USER_GRANT:
  case META_CMD_USER_REVOKE:
    rc = meta__apply_user(s, c);
    if (rc == CHORUS_ENOMEM)
      return rc;
    break;
  case META_CMD_KEY_INSTALL:
  case META_CMD_KEY_USE:
  case META_CMD_KEY_REMOVE:
  case META_CMD_KEY_APPLIED:
    rc = meta__apply_key(s, c);
    if (rc == CHORUS_ENOMEM)
      return rc;
    break;
  default:
    rc = CHORUS_EINVAL;
    break;
  }
  if (ring_input)
    s->epoch++;
  if (index > s->applied)
    s->applied = index;
  if (c->proposer != 0 && rc != CHORUS_ENOMEM)
    remember(s, c, rc, s->applied);
  return rc;
}

const char *meta_cmd_describe(const struct meta_cmd *c) {
  static char line[META_NAME_MAX + 96];
  switch (c->type) {
  case META_CMD_JOIN:
    snprintf(line, sizeof line, "join %s (%016llx) as %s", c->member.name,
             (unsigned long long)c->member.id,
             meta_member_state_name(c->member.state));
    break;
  case META_CMD_SET_STATE:
    snprintf(line, sizeof line, "%016llx to %s", (unsigned long long)c->id,
             meta_member_state_name(c->state));
    break;
  case META_CMD_REMOVE:
    snprintf(line, sizeof line, "remove %016llx", (unsigned long long)c->id);
    break;
  case META_CMD_REPLICATION:
    snprintf(line, sizeof line, "replication settings");
    break;
  case META_CMD_NOTE:
    snprintf(line, sizeof line, "note %llu", (unsigned long long)c->note_value);
    break;
  case META_CMD_LEAVE:
    snprintf(line, sizeof line, "%016llx leaves (then %s)",
             (unsigned long long)c->id, meta_member_state_name(c->state));
    break;
  case META_CMD_STREAMED:
    snprintf(line, sizeof line, "%016llx streamed epoch %llu",
             (unsigned long long)c->id, (unsigned long long)c->epoch);
    break;
  case META_CMD_FINISH:
    snprintf(line, sizeof line, "finish the change at epoch %llu",
             (unsigned long long)c->epoch);
    break;
  case META_CMD_STAGE:
    snprintf(line, sizeof line, "stage: command %u of %016llx", c->staged_type,
             (unsigned long long)c->id);
    break;
  case META_CMD_COMMIT:
    snprintf(line, sizeof line, "%s the staged change",
             c->state ? "commit" : "drop");
    break;
  case META_CMD_KEYSPACE_CREATE:
  case META_CMD_KEYSPACE_ALTER:
  case META_CMD_KEYSPACE_DROP:
    snprintf(line, sizeof line, "keyspace %.47s: %s", c->keyspace.name,
             c->type == META_CMD_KEYSPACE_CREATE  ? "create"
             : c->type == META_CMD_KEYSPACE_ALTER ? "alter"
                                                  : "drop");
    break;
  case META_CMD_USER_CREATE:
  case META_CMD_USER_PASSWD:
  case META_CMD_USER_DROP:
    snprintf(line, sizeof line, "user %.47s: %s", c->user.name,
             c->type == META_CMD_USER_CREATE   ? "create"
             : c->type == META_CMD_USER_PASSWD ? "new password"
                                               : "drop");
    break;
  case META_CMD_USER_GRANT:
  case META_CMD_USER_REVOKE:
    snprintf(line, sizeof line, "user %.47s: %s %s on keyspace %u",
             c->user.name, c->type == META_CMD_USER_GRANT ? "grant" : "revoke",
             meta_role_name(c->grant.role), (unsigned)c->grant.ks_id);
    break;
  case META_CMD_KEY_INSTALL:
  case META_CMD_KEY_USE:
  case META_CMD_KEY_REMOVE:
    snprintf(line, sizeof line, "gossip key %08x: %s", (unsigned)c->key.id,
             c->type == META_CMD_KEY_INSTALL ? "install"
             : c->type == META_CMD_KEY_USE   ? "use"
                                             : "remove");
    break;
  case META_CMD_KEY_APPLIED:
    snprintf(line, sizeof line, "%016llx applied keyring version %llu",
             (unsigned long long)c->id, (unsigned long long)c->version);
    break;
  case META_CMD_REPLACE:
    if (c->with == c->id)
      snprintf(line, sizeof line, "%016llx replaces its lost disk",
               (unsigned long long)c->id);
    else
      snprintf(line, sizeof line, "%016llx is replaced by %016llx",
               (unsigned long long)c->id, (unsigned long long)c->with);
    break;
  default:
    snprintf(line, sizeof line, "command %u", c->type);
    break;
  }
  return line;
}

static enum ring_node_state ring_state_of(uint8_t st) {
  switch (st) {
  case META_JOINING:
    return RING_JOINING;
  case META_LEAVING:
    return RING_LEAVING;
  case META_REPLACING:
    return RING_REPLACING;
  default:
    return RING_NORMAL;
  }
}

bool meta_state_changing(const struct meta_state *s) {
  for (size_t i = 0; i < s->n; i++)
    if (s->members[i].state == META_JOINING ||
        s->members[i].state == META_LEAVING ||
        s->members[i].state == META_REPLACING)
      return true;
  return false;
}

bool meta_state_sole_owner(const struct meta_state *s, chorus_node_id id) {
  const struct meta_member *m = meta_state_find(s, id);
  if (m == NULL || !meta_member_owns(m->state))
    return false;
  for (size_t i = 0; i < s->n; i++)
    if (s->members[i].id != id && meta_member_owns(s->members[i].state) &&
        s->members[i].state != META_LEAVING)
      return false;
  return true;
}

/* build_ring: the ring of @s now (RING_NOW), once the change under way
 * completes (RING_THEN), or now without the members that lost their data
 * (RING_HELD: what the replicas that hold data make; meta_state_moves). */
enum ring_kind { RING_NOW, RING_THEN, RING_HELD };

static int build_ring(const struct meta_state *s, enum ring_kind kind,
                      struct ring_snapshot **out, char *errmsg) {
  bool future = kind == RING_THEN;
  struct ring_node *nodes = chorus_calloc(s->n ? s->n : 1, sizeof *nodes);
  if (nodes == NULL)
    return CHORUS_ENOMEM;
  size_t n = 0;
  for (size_t i = 0; i < s->n; i++) {
    const struct meta_member *m = &s->members[i];
    if (!meta_member_owns(m->state) || (future && m->state == META_LEAVING) ||
        (kind == RING_HELD && m->state == META_REPLACING))
      continue;
    nodes[n].id = m->id;
    snprintf(nodes[n].dc, sizeof nodes[n].dc, "%s", m->dc);
    snprintf(nodes[n].rack, sizeof nodes[n].rack, "%s", m->rack);
    nodes[n].state = future ? RING_NORMAL : ring_state_of(m->state);
    nodes[n].vnodes = m->vnodes;
    nodes[n].tokens_of = m->tokens_of;
    n++;
  }
  /* Keyspaces replicated otherwise than the cluster: a class each
   * (ring.h), so that every ring of this state, now and then, places
   * their keys alike; every live keyspace and the next id, so that the
   * keys of dropped ones are known (ring_key_dropped). */
  struct ring_ks_replication *ks =
      chorus_calloc(s->nks ? s->nks : 1, sizeof *ks);
  size_t nks = 0;
  if (ks == NULL) {
    chorus_free(nodes);
    return CHORUS_ENOMEM;
  }
  for (size_t i = 0; i < s->nks; i++) {
    ks[nks].ks_id = s->keyspaces[i].id;
    if (ks_own_replication(s, &s->keyspaces[i]))
      ks[nks].repl = s->keyspaces[i].replication;
    nks++;
  }
  int rc = ring_snapshot_build_keyspaces(nodes, n, &s->replication, ks, nks,
                                         s->next_ks_id, s->epoch, out, errmsg);
  chorus_free(ks);
  chorus_free(nodes);
  return rc;
}

int meta_state_ring(const struct meta_state *s, struct ring_snapshot **out,
                    char *errmsg) {
  return build_ring(s, RING_NOW, out, errmsg);
}

int meta_state_future_ring(const struct meta_state *s,
                           struct ring_snapshot **out, char *errmsg) {
  return build_ring(s, RING_THEN, out, errmsg);
}

/* merge_self_moves: joins, in place, each move of @mv (@n of them, in
 * ring_diff's order: by piece, the first one wrapping) to the earlier move
 * of the same node that ends where it starts, and the last such move to the
 * first when they meet across the top of the token space; the count left.
 * ring_diff merged the pieces of one (from, to) pair, but a replacing
 * member's pieces came with different givers (each piece's first natural
 * replica) and now share one, itself: unmerged, a replaced node of a 3-node
 * cluster planned 1,047 ranges (one per vnode piece), each pulled from
 * both other replicas at a round trip and an ordered read apiece: 20,000
 * keys took 19 s to restore in a release build, 79 s under ASan. Merged,
 * they make a handful (core_stream.c cuts them into spans). */
static size_t merge_self_moves(struct ring_move *mv, size_t n) {
  size_t k = 0;
  for (size_t j = 0; j < n; j++) {
    struct ring_move *p = NULL;
    for (size_t i = k; i-- > 0;)
      if (mv[i].to == mv[j].to) {
        p = &mv[i];
        break;
      }
    if (p != NULL && p->end == mv[j].start && p->start != p->end)
      p->end = mv[j].end;
    else
      mv[k++] = mv[j];
  }
  /* Across the top: the last move of a node that ends where its first
   * begins takes it over (start == end, the whole ring, when they are one
   * already). */
  for (size_t i = k; i-- > 0;) {
    size_t f = 0;
    while (f < i && mv[f].to != mv[i].to)
      f++;
    bool last = true;
    for (size_t x = i + 1; x < k && last; x++)
      last = mv[x].to != mv[i].to;
    if (f == i || !last || mv[i].end != mv[f].start)
      continue;
    mv[f].start = mv[i].start;
    memmove(&mv[i], &mv[i + 1], (k - i - 1) * sizeof *mv);
    k--;
  }
  return k;
}

/* append_moves: @mv (@k of them) added to *@moves, each tagged with
 * class @tag. */
static int append_moves(const struct ring_move *mv, size_t k, uint64_t tag,
                        struct ring_move **moves, size_t *count) {
  if (k == 0)
    return CHORUS_OK;
  struct ring_move *all = chorus_realloc(*moves, (*count + k) * sizeof *all);
  if (all == NULL)
    return CHORUS_ENOMEM;
  memcpy(all + *count, mv, k * sizeof *all);
  for (size_t i = 0; i < k; i++)
    all[*count + i].class_tag = tag;
  *moves = all;
  *count += k;
  return CHORUS_OK;
}

/* replacing_moves: the ranges of each REPLACING member in one class, added
 * to *@moves: every range it owns in @then that it would gain over @held
 * (the same class of the ring of the replicas that hold data), as a move
 * from itself (its lost disk), so that core_stream pulls it from the live
 * replicas of each piece, the adjacent ones merged (merge_self_moves).
 * The ring now lists it already (ring_diff of now and then has nothing
 * for it). */
static int replacing_moves(const struct meta_state *s,
                           const struct ring_snapshot *held,
                           const struct ring_snapshot *then, uint64_t tag,
                           struct ring_move **moves, size_t *count) {
  struct ring_move *mv = NULL;
  size_t n = 0;
  int rc = ring_diff(held, then, &mv, &n);
  size_t k = 0;
  for (size_t j = 0; j < n && rc == CHORUS_OK; j++) {
    const struct meta_member *m = meta_state_find(s, mv[j].to);
    if (m == NULL || m->state != META_REPLACING || !mv[j].has_from)
      continue;
    mv[j].from = mv[j].to;
    mv[k++] = mv[j];
  }
  k = merge_self_moves(mv, k);
  if (rc == CHORUS_OK)
    rc = append_moves(mv, k, tag, moves, count);
  chorus_free(mv);
  return rc;
}

/* kept_moves: the ranges each member leaving as a decommission (goal
 * LEFT) gives up to nobody in one class, added to *@moves:
 * ring_diff_kept, pulled from it by the replicas that keep them. Below
 * the replication factor no member gains a leaver's range, ring_diff
 * lists nothing, and a write the leaver acknowledged that a keeper missed
 * (hinted to it, the hint on a node that goes too) would leave with it: a
 * shrink 3 -> 2 -> 1 lost one so (change_sim, "shrink while forming",
 * seed 181). A member removed (goal REMOVED) is presumed lost: nothing
 * to pull from it. */
static int kept_moves(const struct meta_state *s,
                      const struct ring_snapshot *now,
                      const struct ring_snapshot *then, uint64_t tag,
                      struct ring_move **moves, size_t *count) {
  int rc = CHORUS_OK;
  for (size_t i = 0; i < s->n && rc == CHORUS_OK; i++) {
    const struct meta_member *m = &s->members[i];
    if (m->state != META_LEAVING || m->goal == META_REMOVED)
      continue;
    struct ring_move *mv = NULL;
    size_t k = 0;
    rc = ring_diff_kept(now, then, m->id, &mv, &k);
    if (rc == CHORUS_OK)
      rc = append_moves(mv, k, tag, moves, count);
    chorus_free(mv);
  }
  return rc;
}

/* class_moves: the moves of class @c of @now (ring.h, replication
 * classes): ring_diff against the class of the same tag in @then, the
 * replacing members' against it in @held (NULL when none replaces), and
 * the kept ranges of decommissions, each tagged with the class. The rings
 * of one state hold the same classes (build_ring), yet they are matched
 * by tag, as across nodes. */
static int class_moves(const struct meta_state *s,
                       const struct ring_snapshot *now,
                       const struct ring_snapshot *then,
                       const struct ring_snapshot *held, unsigned c,
                       struct ring_move **moves, size_t *count) {
  uint64_t tag = ring_snapshot_class_tag(now, c);
  int tc = ring_snapshot_class_find(then, tag);
  int hc = held != NULL ? ring_snapshot_class_find(held, tag) : -1;
  if (tc < 0 || (held != NULL && hc < 0))
    return CHORUS_EINTERNAL; /* one state, one set of classes */
  const struct ring_snapshot *nc = ring_snapshot_class(now, c);
  const struct ring_snapshot *thc = ring_snapshot_class(then, (unsigned)tc);
  struct ring_move *mv = NULL;
  size_t k = 0;
  int rc = ring_diff(nc, thc, &mv, &k);
  if (rc == CHORUS_OK)
    rc = append_moves(mv, k, tag, moves, count);
  chorus_free(mv);
  if (rc == CHORUS_OK && held != NULL)
    rc = replacing_moves(s, ring_snapshot_class(held, (unsigned)hc), thc, tag,
                         moves, count);
  if (rc == CHORUS_OK)
    rc = kept_moves(s, nc, thc, tag, moves, count);
  return rc;
}

int meta_state_moves(const struct meta_state *s, struct ring_move **moves,
                     size_t *count, struct ring_snapshot **current,
                     struct ring_snapshot **future) {
  *moves = NULL;
  *count = 0;
  struct ring_snapshot *now = NULL, *then = NULL, *held = NULL;
  int rc = CHORUS_OK;
  bool replacing = false;
  for (size_t i = 0; i < s->n && !replacing; i++)
    replacing = s->members[i].state == META_REPLACING;
  if (meta_state_changing(s) &&
      (rc = build_ring(s, RING_NOW, &now, NULL)) == CHORUS_OK &&
      (rc = build_ring(s, RING_THEN, &then, NULL)) == CHORUS_OK && replacing)
    rc = build_ring(s, RING_HELD, &held, NULL);
  /* Class by class, class 0 (the cluster's) first: a keyspace with a
   * replication of its own moves its keys' ranges apart from the
   * cluster's (ring.h, replication classes). */
  for (unsigned c = 0;
       rc == CHORUS_OK && now != NULL && c < ring_snapshot_class_count(now);
       c++)
    rc = class_moves(s, now, then, held, c, moves, count);
  if (rc != CHORUS_OK) {
    chorus_free(*moves);
    *moves = NULL;
    *count = 0;
  }
  if (rc == CHORUS_OK && current != NULL) {
    *current = now;
    now = NULL;
  }
  if (rc == CHORUS_OK && future != NULL) {
    *future = then;
    then = NULL;
  }
  ring_snapshot_free(held);
  ring_snapshot_free(now);
  ring_snapshot_free(then);
  return rc;
}

bool meta_state_finishable(const struct meta_state *s,
                           const struct ring_move *moves, size_t count) {
  if (!meta_state_changing(s))
    return false;
  for (size_t i = 0; i < s->n; i++)
    if ((s->members[i].state == META_JOINING ||
         s->members[i].state == META_REPLACING) &&
        s->members[i].ready != s->epoch)
      return false;
  for (size_t i = 0; i < count; i++) {
    if (!moves[i].has_from)
      continue; /* nothing held it: nothing to stream */
    const struct meta_member *m = meta_state_find(s, moves[i].to);
    if (m == NULL || m->ready != s->epoch)
      return false;
  }
  return true;
}

/* Voters are spread like Cassandra spreads replicas: datacenters take
 * turns, and within a datacenter its racks take turns, so that losing one
 * rack or one datacenter loses as few votes as possible (3 datacenters of
 * any size give 2/2/1: losing any one keeps 3 of 5).
 *
 * Each eligible member gets a position in its datacenter's round robin
 * over racks (its rank by id within its rack first, then the rack's name);
 * voters are taken by that position, datacenters in name order within a
 * position. Quadratic in the members, which is why meta_node caches the
 * answer per epoch. */
static bool votes(const struct meta_member *m) {
  return m->state != META_LEFT && m->state != META_REMOVED;
}

/* rack_rank: @m's rank by id among the eligible members of its rack. */
static size_t rack_rank(const struct meta_state *s,
                        const struct meta_member *m) {
  size_t r = 0;
  for (size_t j = 0; j < s->n; j++) {
    const struct meta_member *o = &s->members[j];
    r += votes(o) && o->id < m->id && strcmp(o->dc, m->dc) == 0 &&
         strcmp(o->rack, m->rack) == 0;
  }
  return r;
}

/* before_in_dc: whether @a comes before @b in their datacenter's round
 * robin over racks. */
static bool before_in_dc(const struct meta_member *a, size_t ra,
                         const struct meta_member *b, size_t rb) {
  if (ra != rb)
    return ra < rb;
  int c = strcmp(a->rack, b->rack);
  return c != 0 ? c < 0 : a->id < b->id;
}

size_t meta_state_voters(const struct meta_state *s,
                         chorus_node_id out[META_MAX_VOTERS]) {
  size_t *rank = chorus_calloc(s->n ? s->n : 1, sizeof *rank);
  size_t *pos = chorus_calloc(s->n ? s->n : 1, sizeof *pos);
  size_t n = 0;
  if (rank == NULL || pos == NULL) {
    /* Out of memory: the first eligible members by id (deterministic
     * still, only less spread). */
    for (size_t i = 0; i < s->n && n < META_MAX_VOTERS; i++)
      if (votes(&s->members[i]))
        out[n++] = s->members[i].id;
    chorus_free(rank);
    chorus_free(pos);
    return n;
  }
  for (size_t i = 0; i < s->n; i++)
    if (votes(&s->members[i]))
      rank[i] = rack_rank(s, &s->members[i]);
  for (size_t i = 0; i < s->n; i++) {
    const struct meta_member *m = &s->members[i];
    if (!votes(m))
      continue;
    for (size_t j = 0; j < s->n; j++)
      pos[i] += j != i && votes(&s->members[j]) &&
                strcmp(s->members[j].dc, m->dc) == 0 &&
                before_in_dc(&s->members[j], rank[j], m, rank[i]);
  }
  /* Take the least (position, datacenter, id) not taken yet, five times. */
  while (n < META_MAX_VOTERS) {
    size_t best = s->n;
    for (size_t i = 0; i < s->n; i++) {
      const struct meta_member *m = &s->members[i];
      bool taken = false;
      for (size_t k = 0; k < n; k++)
        taken = taken || out[k] == m->id;
      if (!votes(m) || taken)
        continue;
      if (best == s->n || pos[i] < pos[best] ||
          (pos[i] == pos[best] && (strcmp(m->dc, s->members[best].dc) < 0 ||
                                   (strcmp(m->dc, s->members[best].dc) == 0 &&
                                    m->id < s->members[best].id))))
        best = i;
    }
    if (best == s->n)
      break;
    out[n++] = s->members[best].id;
  }
  chorus_free(rank);
  chorus_free(pos);
  return n;
}
