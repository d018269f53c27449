/* crdt_obj.c: the tagged object envelope storage keeps under one key. */
#include "chorus_alloc.h"
#include "crdt_int.h"

const char *crdt_type_name(enum crdt_type t) {
  switch (t) {
  case CRDT_KV:
    return "kv";
  case CRDT_COUNTER:
    return "counter";
  case CRDT_SET:
    return "set";
  case CRDT_LWW:
    return "lww";
  case CRDT_MAP:
    return "map";
  case CRDT_PAXOS:
    return "cas";
  case CRDT_NONE:
    break;
  }
  return "none";
}

void crdt_obj_init(struct crdt_obj *o, enum crdt_type type) {
  o->type = type;
  switch (type) {
  case CRDT_KV:
    dvv_init(&o->u.kv);
    break;
  case CRDT_COUNTER:
    pncounter_init(&o->u.counter);
    break;
  case CRDT_SET:
    orset_init(&o->u.set);
    break;
  case CRDT_LWW:
    lww_init(&o->u.lww);
    break;
  case CRDT_MAP:
    crdt_map_init(&o->u.map);
    break;
  case CRDT_PAXOS:
    o->u.opaque = (struct crdt_opaque){NULL, 0};
    break;
  case CRDT_NONE:
    break;
  }
}

void crdt_obj_free(struct crdt_obj *o) {
  switch (o->type) {
  case CRDT_KV:
    dvv_free(&o->u.kv);
    break;
  case CRDT_COUNTER:
    pncounter_free(&o->u.counter);
    break;
  case CRDT_SET:
    orset_free(&o->u.set);
    break;
  case CRDT_LWW:
    lww_free(&o->u.lww);
    break;
  case CRDT_MAP:
    crdt_map_free(&o->u.map);
    break;
  case CRDT_PAXOS:
    chorus_free(o->u.opaque.bytes);
    o->u.opaque = (struct crdt_opaque){NULL, 0};
    break;
  case CRDT_NONE:
    break;
  }
}

int crdt_obj_join(struct crdt_obj *dst, const struct crdt_obj *src,
                  unsigned *flags) {
  if (flags)
    *flags = 0;
  if (dst->type != src->type)
    return CHORUS_ETYPE;
  switch (dst->type) {
  case CRDT_KV:
    return dvv_join(&dst->u.kv, &src->u.kv, NULL, flags);
  case CRDT_COUNTER:
    return pncounter_join(&dst->u.counter, &src->u.counter);
  case CRDT_SET:
    return orset_join(&dst->u.set, &src->u.set);
  case CRDT_LWW:
    return lww_join(&dst->u.lww, &src->u.lww);
  case CRDT_MAP:
    return crdt_map_join(&dst->u.map, &src->u.map);
  case CRDT_PAXOS:
    /* An empty state (crdt_obj_init's) takes the other, equal states join
     * to themselves; any other pair only their owner can join. */
    if (src->u.opaque.len == 0 || crdt_obj_equal(dst, src))
      return CHORUS_OK;
    if (dst->u.opaque.len == 0)
      return crdt_obj_set_opaque(dst, src->u.opaque.bytes, src->u.opaque.len);
    return CHORUS_ENOTSUP;
  case CRDT_NONE:
    break;
  }
  return CHORUS_EINVAL;
}

bool crdt_obj_equal(const struct crdt_obj *a, const struct crdt_obj *b) {
  if (a->type != b->type)
    return false;
  switch (a->type) {
  case CRDT_KV:
    return dvv_equal(&a->u.kv, &b->u.kv);
  case CRDT_COUNTER:
    return pncounter_equal(&a->u.counter, &b->u.counter);
  case CRDT_SET:
    return orset_equal(&a->u.set, &b->u.set);
  case CRDT_LWW:
    return lww_equal(&a->u.lww, &b->u.lww);
  case CRDT_MAP:
    return crdt_map_equal(&a->u.map, &b->u.map);
  case CRDT_PAXOS:
    return a->u.opaque.len == b->u.opaque.len &&
           (a->u.opaque.len == 0 ||
            memcmp(a->u.opaque.bytes, b->u.opaque.bytes, a->u.opaque.len) == 0);
  case CRDT_NONE:
    break;
  }
  return true;
}

int crdt_obj_set_opaque(struct crdt_obj *o, const uint8_t *bytes, size_t len) {
  if (o->type != CRDT_PAXOS || len == 0 || bytes == NULL)
    return CHORUS_EINVAL;
  uint8_t *copy = chorus_malloc(len);
  if (copy == NULL)
    return CHORUS_ENOMEM;
  memcpy(copy, bytes, len);
  chorus_free(o->u.opaque.bytes);
  o->u.opaque = (struct crdt_opaque){copy, len};
  return CHORUS_OK;
}
