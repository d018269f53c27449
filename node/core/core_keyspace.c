/* core_keyspace.c: keyspaces for operators (issue 21; meta.h, struct
 * meta_keyspace; wire.h, KEYSPACE): LIST answered from the metadata in
 * force; CREATE, ALTER and DROP judged against it first, so that every
 * refusal says why (the state machine would only return a code), then
 * proposed to the Raft leader and answered once applied with
 * KEYSPACE_REPLY (core_meta.c's mx_answer asks core__pending_take). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "core_int.h"
#include "crdt.h"

#define TRACE(c, ...) chorus_trace((c)->cfg.tracer, "core", __VA_ARGS__)

uint8_t core__pending_take(struct core *c, uint64_t cookie) {
  for (size_t i = 0; i < CORE_ADMIN_PENDING; i++)
    if (c->admin_pending[i].cookie == cookie && cookie != 0) {
      c->admin_pending[i].cookie = 0;
      return c->admin_pending[i].kind;
    }
  return CORE_PENDING_NONE;
}

const struct core__pending *core__pending_find(const struct core *c,
                                               uint64_t cookie) {
  for (size_t i = 0; i < CORE_ADMIN_PENDING; i++)
    if (c->admin_pending[i].cookie == cookie && cookie != 0)
      return &c->admin_pending[i];
  return NULL;
}

int core__propose_pending(struct core *c, const struct meta_cmd *cmd,
                          uint64_t cookie, uint8_t kind) {
  size_t slot = CORE_ADMIN_PENDING;
  for (size_t i = 0; i < CORE_ADMIN_PENDING && slot == CORE_ADMIN_PENDING; i++)
    if (c->admin_pending[i].cookie == 0)
      slot = i;
  if (slot == CORE_ADMIN_PENDING || cookie == 0)
    return core__refuse(c, cookie, CHORUS_EBUSY,
                        "too many keyspace and user changes under way on "
                        "this node");
  c->admin_pending[slot] = (struct core__pending){cookie, kind, cmd->key.id};
  TRACE(c, "operator: %s", meta_cmd_describe(cmd));
  int rc =
      meta_node_propose(c->meta, cmd, cookie, CORE_ADMIN_TIMEOUT_MS, c->now);
  if (rc != CHORUS_OK)
    c->admin_pending[slot].cookie = 0; /* answered already, or never will */
  return rc;
}

/* replication_spec: @r as ring_replication_parse reads it ("" for the
 * cluster's: n 0, no datacenters). */
static void replication_spec(const struct ring_replication *r, char *out,
                             size_t cap) {
  out[0] = '\0';
  if (r->dc_count == 0) {
    if (r->n != 0)
      snprintf(out, cap, "%" PRIu32, r->n);
    return;
  }
  size_t off = 0;
  for (uint32_t i = 0; i < r->dc_count && off < cap; i++)
    off += (size_t)snprintf(out + off, cap - off, "%s%s:%" PRIu32, i ? "," : "",
                            r->dcs[i].dc, r->dcs[i].factor);
}

/* ks_record: @k as KEYSPACE_REPLY carries it (wire.h) into @out
 * (WIRE_KEYSPACE_RECORD_MAX bytes); its length. */
static size_t ks_record(const struct meta_keyspace *k, uint8_t *out) {
  char spec[WIRE_MAX_KEYSPACE_REPL + 1];
  replication_spec(&k->replication, spec, sizeof spec);
  size_t nl = strnlen(k->name, WIRE_MAX_KEYSPACE_NAME);
  size_t rl = strnlen(spec, WIRE_MAX_KEYSPACE_REPL);
  uint8_t *p = out;
  for (int i = 3; i >= 0; i--)
    *p++ = (uint8_t)(k->id >> (8 * i));
  *p++ = k->type;
  *p++ = (uint8_t)(int8_t)k->read;
  *p++ = (uint8_t)(int8_t)k->write;
  for (int i = 7; i >= 0; i--)
    *p++ = (uint8_t)(k->ttl_ms >> (8 * i));
  for (int i = 3; i >= 0; i--)
    *p++ = (uint8_t)(k->siblings_warn >> (8 * i));
  for (int i = 3; i >= 0; i--)
    *p++ = (uint8_t)(k->siblings_max >> (8 * i));
  *p++ = (uint8_t)nl;
  memcpy(p, k->name, nl);
  p += nl;
  *p++ = (uint8_t)rl;
  memcpy(p, spec, rl);
  p += rl;
  return (size_t)(p - out);
}

int core__table_reply(struct core *c, uint64_t cookie,
                      const struct core__table *t, const char *name) {
  const struct meta_state *s = meta_node_state(c->meta);
  size_t n = t->rows(s);
  uint8_t *buf = chorus_malloc((n ? n : 1) * t->record_max);
  struct wire_bytes *items = chorus_calloc(n ? n : 1, sizeof *items);
  if (buf == NULL || items == NULL) {
    chorus_free(buf);
    chorus_free(items);
    return CHORUS_ENOMEM;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (name != NULL && strcmp(name, t->name_of(s, i)) != 0)
      continue;
    uint8_t *at = buf + k * t->record_max;
    items[k] = (struct wire_bytes){at, t->record(s, i, at)};
    k++;
  }
  int rc;
  if (name != NULL && k == 0) {
    char text[64 + META_NAME_MAX];
    snprintf(text, sizeof text, "no %s named %s", t->what, name);
    rc = core__refuse(c, cookie, CHORUS_ENOTFOUND, text);
  } else {
    struct wire_msg r = {.type = t->reply_type};
    struct wire_bytes_list entries = {k, items};
    if (t->reply_type == WIRE_USER_REPLY)
      r.user_reply = (struct wire_user_reply){s->applied, entries};
    else
      r.keyspace_reply = (struct wire_keyspace_reply){s->applied, entries};
    rc = c->fx.reply(c->fx.ctx, cookie, &r, false);
  }
  chorus_free(buf);
  chorus_free(items);
  return rc;
}

static size_t ks_rows(const struct meta_state *s) {
  return s->nks;
}
static const char *ks_name_of(const struct meta_state *s, size_t i) {
  return s->keyspaces[i].name;
}
static size_t ks_row_record(const struct meta_state *s, size_t i,
                            uint8_t *out) {
  return ks_record(&s->keyspaces[i], out);
}

int core__keyspace_reply(struct core *c, uint64_t cookie, const char *name) {
  static const struct core__table t = {
      "keyspace", WIRE_KEYSPACE_REPLY, WIRE_KEYSPACE_RECORD_MAX,
      ks_rows,    ks_name_of,          ks_row_record};
  return core__table_reply(c, cookie, &t, name);
}

/* admin_keyspace: KEYSPACE (wire.h). Judged against the metadata in force
 * first, so that the operator reads why (the state machine would only
 * return a code); a race with another operator still gets the code. */
int core__keyspace_client(struct core *c, const struct wire_msg *m,
                          uint64_t cookie) {
  const struct wire_keyspace *w = &m->keyspace;
  char name[META_KEYSPACE_NAME_MAX], text[META_TEXT_MAX + 64];
  if (w->name.len > 0 && memchr(w->name.ptr, '\0', w->name.len) != NULL)
    return core__refuse(c, cookie, CHORUS_EINVAL,
                        "a keyspace name holds a NUL");
  memcpy(name, w->name.ptr, w->name.len); /* <= 47: the schema's bound */
  name[w->name.len] = '\0';
  if (w->op == WIRE_KS_LIST)
    return core__keyspace_reply(c, cookie, name[0] ? name : NULL);
  const struct meta_state *s = meta_node_state(c->meta);
  const struct meta_keyspace *have = meta_state_keyspace(s, name);
  struct meta_cmd cmd = {0};
  memcpy(cmd.keyspace.name, name, sizeof name);
  if (w->op == WIRE_KS_DROP) {
    if (have == NULL) {
      snprintf(text, sizeof text, "no keyspace named %s", name);
      return core__refuse(c, cookie, CHORUS_ENOTFOUND, text);
    }
    cmd.type = META_CMD_KEYSPACE_DROP;
  } else {
    struct meta_keyspace *k = &cmd.keyspace;
    k->type = w->type;
    k->read = w->read;
    k->write = w->write;
    k->ttl_ms = w->ttl_ms;
    k->siblings_warn = w->siblings_warn;
    k->siblings_max = w->siblings_max;
    if (w->replication.len > 0) {
      char spec[WIRE_MAX_KEYSPACE_REPL + 1], why[CHORUS_ERRMSG_SIZE] = "";
      memcpy(spec, w->replication.ptr, w->replication.len);
      spec[w->replication.len] = '\0';
      if (strlen(spec) != w->replication.len)
        return core__refuse(c, cookie, CHORUS_EINVAL,
                            "a replication spec holds a NUL");
      if (ring_replication_parse(spec, &k->replication, why) != CHORUS_OK)
        return core__refuse(c, cookie, CHORUS_EINVAL, why);
    }
    char why[META_TEXT_MAX] = "";
    int rc = meta_keyspace_check(k, why);
    if (rc != CHORUS_OK) {
      snprintf(text, sizeof text, "keyspace %s: %s", name, why);
      return core__refuse(c, cookie, rc, text);
    }
    if (w->op == WIRE_KS_CREATE && have != NULL) {
      snprintf(text, sizeof text, "keyspace %s exists (id %" PRIu32 ")", name,
               have->id);
      return core__refuse(c, cookie, CHORUS_EEXIST, text);
    }
    if (w->op == WIRE_KS_ALTER && have == NULL) {
      snprintf(text, sizeof text, "no keyspace named %s", name);
      return core__refuse(c, cookie, CHORUS_ENOTFOUND, text);
    }
    if (w->op == WIRE_KS_ALTER && have->type != k->type) {
      snprintf(text, sizeof text,
               "keyspace %s holds %s keys: its type cannot change", name,
               meta_ks_type_name(have->type));
      return core__refuse(c, cookie, CHORUS_EINVAL, text);
    }
    if (w->op == WIRE_KS_CREATE && s->nks >= META_MAX_KEYSPACES)
      return core__refuse(c, cookie, CHORUS_ENOSPC, "256 keyspaces at most");
    rc = meta_keyspace_placement(s, k, w->op == WIRE_KS_ALTER, why);
    if (rc != CHORUS_OK) {
      snprintf(text, sizeof text, "keyspace %s: %s", name, why);
      return core__refuse(c, cookie, rc, text);
    }
    cmd.type = w->op == WIRE_KS_CREATE ? META_CMD_KEYSPACE_CREATE
                                       : META_CMD_KEYSPACE_ALTER;
  }
  return core__propose_pending(c, &cmd, cookie, CORE_PENDING_KEYSPACE);
}

/* ========================================================================
 * KEYSPACE KEYS: a client request that names a keyspace is resolved where
 * it enters, into the key every node stores and replicates (ring.h,
 * RING_KS_PREFIX_LEN): [0x00][id: 4 bytes BE][client key]. Peers then
 * forward, replicate, hint, stream and repair it as any key, whatever
 * their version; ids are never reused, so a keyspace dropped and created
 * again never sees the old one's keys.
 * ======================================================================== */

static const struct meta_keyspace *ks_by_id(const struct core *c, uint32_t id) {
  if (c->meta == NULL)
    return NULL;
  const struct meta_state *s = meta_node_state(c->meta);
  for (size_t i = 0; i < s->nks; i++)
    if (s->keyspaces[i].id == id)
      return &s->keyspaces[i];
  return NULL;
}

/* ks_holds: whether a keyspace of type @ks_type takes a request on an
 * object of crdt type @type. A CAS key (CRDT_PAXOS) is none of the
 * declared types, so only ANY takes it. */
static bool ks_holds(uint8_t ks_type, uint8_t type) {
  switch (ks_type) {
  case META_KS_ANY:
    return true;
  case META_KS_KV:
    return type == CRDT_KV;
  case META_KS_LWW:
    return type == CRDT_LWW;
  case META_KS_COUNTER:
    return type == CRDT_COUNTER;
  case META_KS_SET:
    return type == CRDT_SET;
  case META_KS_MAP:
    return type == CRDT_MAP;
  default:
    return false;
  }
}

static const char *crdt_type_word(uint8_t type) {
  static const char *const words[] = {"?",   "kv",  "counter", "set",
                                      "lww", "map", "cas"};
  return type < sizeof words / sizeof words[0] ? words[type] : "?";
}

bool core__ks_kv_limits(void *ctx, const uint8_t *key, size_t len,
                        struct dvv_limits *out) {
  const struct core *c = ctx;
  uint32_t id = ring_key_keyspace(key, len);
  const struct meta_keyspace *k = id != 0 ? ks_by_id(c, id) : NULL;
  if (k == NULL || (k->siblings_warn == 0 && k->siblings_max == 0))
    return false;
  *out = (struct dvv_limits){
      .warn = k->siblings_warn ? k->siblings_warn : DVV_WARN_DEFAULT,
      .reject = k->siblings_max ? k->siblings_max : DVV_REJECT_DEFAULT};
  return true;
}

int core__ks_request(struct core *c, const struct wire_msg *m,
                     const struct repl_origin *o, chorus_ms now,
                     chorus_ms wall) {
  struct wire_msg x = *m;
  uint8_t type = 0;
  struct wire_bytes *key = repl_request_key(&x, &type);
  struct wire_options *opts = wire_options_of(&x);
  /* The user's role is checked here, once per request, where its
   * keyspace is known; a forwarded request was checked where the client
   * logged in (c->req_user is NULL on the peer path). */
  struct core_need need = core_role_of(m);
  if (key == NULL || opts == NULL) {
    if (!core__may(c, o->cookie, need, 0, ""))
      return CHORUS_OK;
    return repl_client(c->repl, m, o, now, wall, &c->rfx);
  }
  char name[META_KEYSPACE_NAME_MAX], text[WIRE_MAX_ERROR_TEXT];
  size_t nl = opts->keyspace.len; /* <= 47: the decoder's bound */
  if (nl >= sizeof name)
    return core__refuse(c, o->cookie, CHORUS_EINVAL,
                        "a keyspace name holds at most 47 bytes");
  if (nl > 0)
    memcpy(name, opts->keyspace.ptr, nl);
  name[nl] = '\0';
  if (nl == 0 || strcmp(name, "default") == 0) {
    if (!core__may(c, o->cookie, need, 0, "default"))
      return CHORUS_OK;
    if (key->len > 0 && key->ptr[0] == 0)
      return core__refuse(c, o->cookie, CHORUS_EINVAL,
                          "a key may not begin with byte 0x00 (reserved for "
                          "keyspaces' keys)");
    opts->keyspace = (struct wire_bytes){NULL, 0};
    return repl_client(c->repl, &x, o, now, wall, &c->rfx);
  }
  if (c->meta == NULL)
    return core__refuse(c, o->cookie, CHORUS_ENOTSUP,
                        "this node keeps no cluster metadata: it has no "
                        "keyspaces but default");
  if (x.type == WIRE_LOCK && x.lock.op != WIRE_LOCK_FENCED_PUT)
    return core__refuse(c, o->cookie, CHORUS_ENOTSUP,
                        "locks live in the cluster's lock namespace, not in "
                        "a keyspace (a fenced put may name one)");
  const struct meta_keyspace *k =
      strlen(name) == nl ? meta_state_keyspace(meta_node_state(c->meta), name)
                         : NULL;
  /* A user who may not touch such a keyspace learns nothing of whether it
   * exists: the refusal reads as for one that does (UINT32_MAX is no
   * keyspace's id, so only a grant on every keyspace passes). */
  if (k == NULL && !core__may(c, o->cookie, need, UINT32_MAX, name))
    return CHORUS_OK;
  if (k == NULL) {
    snprintf(text, sizeof text, "no keyspace named %s (chorus keyspace list)",
             name);
    return core__refuse(c, o->cookie, CHORUS_ENOTFOUND, text);
  }
  if (!core__may(c, o->cookie, need, k->id, k->name))
    return CHORUS_OK;
  if (!ks_holds(k->type, type)) {
    snprintf(text, sizeof text, "keyspace %s holds %s keys, not %s", name,
             meta_ks_type_name(k->type), crdt_type_word(type));
    return core__refuse(c, o->cookie, CHORUS_ETYPE, text);
  }
  if (key->len == 0 || key->len > WIRE_MAX_KEY - RING_KS_PREFIX_LEN) {
    snprintf(text, sizeof text,
             "key of %zu bytes: a keyspace's keys hold 1..%u bytes", key->len,
             WIRE_MAX_KEY - RING_KS_PREFIX_LEN);
    return core__refuse(c, o->cookie, key->len ? CHORUS_ETOOBIG : CHORUS_EINVAL,
                        text);
  }
  /* The keyspace's defaults stand where the request left the node's. */
  if (opts->r == 0)
    opts->r = k->read;
  if (opts->w == 0)
    opts->w = k->write;
  if ((x.type == WIRE_PUT || x.type == WIRE_PUT_TTL) && x.put.ttl_ms == 0 &&
      k->ttl_ms != 0) {
    x.type = WIRE_PUT_TTL;
    x.put.ttl_ms = k->ttl_ms;
  }
  uint8_t *buf = chorus_malloc(RING_KS_PREFIX_LEN + key->len);
  if (buf == NULL)
    return CHORUS_ENOMEM;
  buf[0] = 0;
  for (int i = 0; i < 4; i++)
    buf[1 + i] = (uint8_t)(k->id >> (24 - 8 * i));
  memcpy(buf + RING_KS_PREFIX_LEN, key->ptr, key->len);
  *key = (struct wire_bytes){buf, RING_KS_PREFIX_LEN + key->len};
  opts->keyspace = (struct wire_bytes){NULL, 0};
  int rc = repl_client(c->repl, &x, o, now, wall, &c->rfx);
  chorus_free(buf);
  return rc;
}
