/* core_keyspace.c: keyspaces for operators (issue 21; meta.h, struct
 * meta_keyspace; wire.h, KEYSPACE): LIST answered from the metadata in
 * force; CREATE, ALTER and DROP judged against it first, so that every
 * refusal says why (the state machine would only return a code), then
 * proposed to the Raft leader and answered once applied with
 * KEYSPACE_REPLY (core_meta.c's mx_answer asks core__keyspace_answered). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "core_int.h"

#define TRACE(c, ...) chorus_trace((c)->cfg.tracer, "core", __VA_ARGS__)

bool core__keyspace_answered(struct core *c, uint64_t cookie) {
  for (size_t i = 0; i < CORE_KS_PENDING; i++)
    if (c->ks_pending[i] == cookie && cookie != 0) {
      c->ks_pending[i] = 0;
      return true;
    }
  return false;
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

/* keyspace_reply: KEYSPACE_REPLY with every keyspace, or only @name's
 * (ENOTFOUND when there is none), as this node applied them. */
int core__keyspace_reply(struct core *c, uint64_t cookie, const char *name) {
  const struct meta_state *s = meta_node_state(c->meta);
  size_t n = s->nks;
  uint8_t *buf = chorus_malloc((n ? n : 1) * WIRE_KEYSPACE_RECORD_MAX);
  struct wire_bytes *items = chorus_calloc(n ? n : 1, sizeof *items);
  if (buf == NULL || items == NULL) {
    chorus_free(buf);
    chorus_free(items);
    return CHORUS_ENOMEM;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (name != NULL && strcmp(name, s->keyspaces[i].name) != 0)
      continue;
    uint8_t *at = buf + k * WIRE_KEYSPACE_RECORD_MAX;
    items[k] = (struct wire_bytes){at, ks_record(&s->keyspaces[i], at)};
    k++;
  }
  int rc;
  if (name != NULL && k == 0) {
    char text[WIRE_MAX_KEYSPACE_NAME + 32];
    snprintf(text, sizeof text, "no keyspace named %s", name);
    rc = core__refuse(c, cookie, CHORUS_ENOTFOUND, text);
  } else {
    struct wire_msg r = {.type = WIRE_KEYSPACE_REPLY};
    r.keyspace_reply.applied = s->applied;
    r.keyspace_reply.entries = (struct wire_bytes_list){k, items};
    rc = c->fx.reply(c->fx.ctx, cookie, &r, false);
  }
  chorus_free(buf);
  chorus_free(items);
  return rc;
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
    cmd.type = w->op == WIRE_KS_CREATE ? META_CMD_KEYSPACE_CREATE
                                       : META_CMD_KEYSPACE_ALTER;
  }
  size_t slot = CORE_KS_PENDING;
  for (size_t i = 0; i < CORE_KS_PENDING && slot == CORE_KS_PENDING; i++)
    if (c->ks_pending[i] == 0)
      slot = i;
  if (slot == CORE_KS_PENDING || cookie == 0)
    return core__refuse(c, cookie, CHORUS_EBUSY,
                        "too many keyspace changes under way on this node");
  c->ks_pending[slot] = cookie;
  TRACE(c, "operator: %s", meta_cmd_describe(&cmd));
  int rc =
      meta_node_propose(c->meta, &cmd, cookie, CORE_ADMIN_TIMEOUT_MS, c->now);
  if (rc != CHORUS_OK)
    c->ks_pending[slot] = 0; /* answered already, or never will be */
  return rc;
}
