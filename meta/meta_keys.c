/* meta_keys.c: the gossip keyring of the cluster metadata (issue 24; meta.h,
 * struct meta_keyring and THE SAFETY RULE): install, use and remove judged
 * when applied, and the members' reports of what they applied. Pure: the
 * node core applies the result to SWIM (core_keys.c). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "meta_int.h"

uint32_t meta_key_id(const uint8_t key[META_KEY_BYTES]) {
  /* A fingerprint, not a secret: 32 bits of a 256-bit key tell nothing
   * about the other 224. Seeded so it is no other id in the code. */
  uint64_t h = XXH3_64bits_withSeed(key, META_KEY_BYTES, 0x6b657972696e67u);
  uint32_t id = (uint32_t)(h ^ (h >> 32));
  return id != 0 ? id : 1;
}

const struct meta_key *meta_keyring_find(const struct meta_keyring *kr,
                                         uint32_t id) {
  for (uint8_t i = 0; i < kr->n && i < META_MAX_KEYS; i++)
    if (kr->keys[i].id == id)
      return &kr->keys[i];
  return NULL;
}

static size_t ack_slot(const struct meta_state *s, chorus_node_id id,
                       bool *found) {
  size_t lo = 0, hi = s->nacks;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->acks[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < s->nacks && s->acks[lo].id == id;
  return lo;
}

uint64_t meta_key_applied(const struct meta_state *s, chorus_node_id id) {
  bool found;
  size_t i = ack_slot(s, id, &found);
  return found ? s->acks[i].version : 0;
}

/* laggard: the first member (not LEFT or REMOVED) that has not reported
 * keyring version @v; NULL when none. */
static const struct meta_member *laggard(const struct meta_state *s,
                                         uint64_t v) {
  for (size_t i = 0; i < s->n; i++) {
    const struct meta_member *m = &s->members[i];
    if (m->state != META_LEFT && m->state != META_REMOVED &&
        meta_key_applied(s, m->id) < v)
      return m;
  }
  return NULL;
}

static int say(char *why, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int say(char *why, int rc, const char *fmt, ...) {
  if (why != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, META_TEXT_MAX, fmt, ap);
    va_end(ap);
  }
  return rc;
}

int meta_keyring_check(const struct meta_state *s, const struct meta_cmd *c,
                       char *why) {
  const struct meta_keyring *kr = &s->keyring;
  uint32_t id = c->key.id;
  const struct meta_key *k = meta_keyring_find(kr, id);
  const struct meta_member *m;
  switch (c->type) {
  case META_CMD_KEY_INSTALL:
    if (id == 0 || id != meta_key_id(c->key.key))
      return say(why, CHORUS_EINVAL, "a key's id is its fingerprint");
    if (k != NULL)
      return say(why, CHORUS_EEXIST, "key %08" PRIx32 " is installed", id);
    if (kr->n + (kr->boot_retired ? 0u : 1u) >= META_MAX_KEYS)
      return say(why, CHORUS_ENOSPC,
                 "the keyring holds %u keys (the --cluster-key counts until "
                 "removed): remove one first",
                 META_MAX_KEYS);
    return CHORUS_OK;
  case META_CMD_KEY_USE:
    if (k == NULL)
      return say(why, CHORUS_ENOTFOUND, "no key %08" PRIx32 " installed", id);
    if ((m = laggard(s, k->since)) != NULL)
      return say(why, CHORUS_EBUSY,
                 "%.47s has not applied the install of key %08" PRIx32
                 " yet; try again",
                 m->name, id);
    return CHORUS_OK;
  case META_CMD_KEY_REMOVE:
    if (id == 0 ? kr->boot_retired : k == NULL)
      return say(why, CHORUS_ENOTFOUND, "no key %08" PRIx32 " installed", id);
    if (id == kr->primary)
      return say(why, CHORUS_EINVAL,
                 "key %08" PRIx32 " is the primary: use another first", id);
    if ((m = laggard(s, kr->primary_since)) != NULL)
      return say(why, CHORUS_EBUSY,
                 "%.47s has not applied the use of key %08" PRIx32
                 " yet; try again",
                 m->name, kr->primary);
    return CHORUS_OK;
  default:
    return say(why, CHORUS_EINVAL, "not a keyring command");
  }
}

static int apply_ack(struct meta_state *s, const struct meta_cmd *c) {
  if (meta_state_find(s, c->id) == NULL)
    return CHORUS_ENOTFOUND;
  if (c->version > s->keyring.version)
    return CHORUS_EINVAL;
  bool found;
  size_t i = ack_slot(s, c->id, &found);
  if (found) {
    if (s->acks[i].version < c->version)
      s->acks[i].version = c->version;
    return CHORUS_OK;
  }
  if (s->nacks >= META_MAX_MEMBERS)
    return CHORUS_ENOSPC;
  struct meta_key_ack *t =
      chorus_realloc(s->acks, (s->nacks + 1) * sizeof *s->acks);
  if (t == NULL)
    return CHORUS_ENOMEM;
  s->acks = t;
  memmove(&t[i + 1], &t[i], (s->nacks - i) * sizeof *t);
  t[i] = (struct meta_key_ack){c->id, c->version};
  s->nacks++;
  return CHORUS_OK;
}

int meta__apply_key(struct meta_state *s, const struct meta_cmd *c) {
  if (c->type == META_CMD_KEY_APPLIED)
    return apply_ack(s, c);
  int rc = meta_keyring_check(s, c, NULL);
  if (rc != CHORUS_OK)
    return rc;
  struct meta_keyring *kr = &s->keyring;
  uint32_t id = c->key.id;
  switch (c->type) {
  case META_CMD_KEY_INSTALL: {
    uint8_t i = 0;
    while (i < kr->n && kr->keys[i].id < id)
      i++;
    memmove(&kr->keys[i + 1], &kr->keys[i],
            (size_t)(kr->n - i) * sizeof *kr->keys);
    kr->keys[i] = c->key;
    kr->keys[i].since = ++kr->version;
    kr->n++;
    return CHORUS_OK;
  }
  case META_CMD_KEY_USE:
    if (kr->primary == id)
      return CHORUS_OK; /* in use already: nothing for anyone to apply */
    kr->primary = id;
    kr->primary_since = ++kr->version;
    return CHORUS_OK;
  default: /* REMOVE */
    if (id == 0) {
      kr->boot_retired = true;
    } else {
      const struct meta_key *k = meta_keyring_find(kr, id);
      uint8_t i = (uint8_t)(k - kr->keys);
      memset(&kr->keys[i], 0, sizeof kr->keys[i]);
      memmove(&kr->keys[i], &kr->keys[i + 1],
              (size_t)(kr->n - i - 1) * sizeof *kr->keys);
      kr->n--;
      memset(&kr->keys[kr->n], 0, sizeof kr->keys[kr->n]);
    }
    kr->version++;
    return CHORUS_OK;
  }
}

size_t meta_keyring_keys(const struct meta_keyring *kr,
                         const uint8_t boot[META_KEY_BYTES],
                         uint8_t out[META_MAX_KEYS][META_KEY_BYTES]) {
  const struct meta_key *p =
      kr->primary ? meta_keyring_find(kr, kr->primary) : NULL;
  size_t n = 0;
  memcpy(out[n++], p != NULL ? p->key : boot, META_KEY_BYTES);
  if (p != NULL && !kr->boot_retired)
    memcpy(out[n++], boot, META_KEY_BYTES);
  for (uint8_t i = 0; i < kr->n && n < META_MAX_KEYS; i++)
    if (&kr->keys[i] != p)
      memcpy(out[n++], kr->keys[i].key, META_KEY_BYTES);
  return n;
}
