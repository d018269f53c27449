/* core_keys.c: the gossip keyring (issue 24; meta.h, struct meta_keyring
 * and THE SAFETY RULE; wire.h, CLUSTER_KEY). The node applies the keyring
 * in force to its SWIM whenever the metadata moves it (at start: the
 * metadata on disk; before any: --cluster-key alone), then reports the
 * version it applied with KEY_APPLIED, so the metadata can judge a USE or
 * a REMOVE against what every member really holds. For operators: LIST
 * answered from the metadata in force; INSTALL, USE and REMOVE proposed
 * to the Raft leader, judged when applied (the leader's answer says why a
 * refusal), and answered once applied here (mx_answer asks
 * core__keys_answer). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "chorus_alloc.h"
#include "core_int.h"

#define TRACE(c, ...) chorus_trace((c)->cfg.tracer, "core", __VA_ARGS__)

_Static_assert(META_MAX_KEYS == SWIM_MAX_KEYS, "keyring sizes");
_Static_assert(META_KEY_BYTES == SWIM_KEY_BYTES, "key sizes");
_Static_assert(WIRE_KEY_BYTES == META_KEY_BYTES, "key sizes");

/* How long after a KEY_APPLIED that did not commit the next is tried. */
#define REPORT_RETRY_MS 1000

size_t core_gossip_keys(const struct core *c,
                        uint8_t out[SWIM_MAX_KEYS][SWIM_KEY_BYTES]) {
  if (c->keys.n == 0) { /* nothing applied yet: --cluster-key alone */
    memcpy(out[0], c->cfg.swim.key, SWIM_KEY_BYTES);
    return 1;
  }
  memcpy(out, c->keys.keys, c->keys.n * sizeof out[0]);
  return c->keys.n;
}

uint64_t core_keyring_version(const struct core *c) {
  return c->keys.version;
}

/* report: KEY_APPLIED(this node, the version its SWIM holds), when the
 * metadata does not know it yet and no report is under way. */
static int report(struct core *c, const struct meta_state *s) {
  struct core__keys *k = &c->keys;
  chorus_node_id self = c->cfg.swim.id;
  const struct meta_member *me = meta_state_find(s, self);
  if (k->reporting || c->now < k->retry_at || me == NULL ||
      me->state == META_LEFT || me->state == META_REMOVED ||
      meta_key_applied(s, self) >= k->version || k->committed >= k->version)
    return CHORUS_OK;
  struct meta_cmd cmd = {
      .type = META_CMD_KEY_APPLIED, .id = self, .version = k->version};
  k->reporting = true;
  k->proposed = k->version;
  TRACE(c, "keyring version %" PRIu64 " applied to SWIM: reporting",
        k->version);
  int rc = meta_node_propose(c->meta, &cmd, CORE_KEYS_COOKIE, 10000, c->now);
  if (rc != CHORUS_OK) {
    k->reporting = false;
    k->retry_at = c->now + REPORT_RETRY_MS;
    if (rc != CHORUS_ENOMEM)
      rc = CHORUS_OK; /* no leader yet, too many proposals: later */
  }
  return rc;
}

void core__keys_state(struct core *c, const struct meta_state *s) {
  struct core__keys *k = &c->keys;
  if (k->n == 0 || s->keyring.version != k->version) {
    uint8_t keys[META_MAX_KEYS][META_KEY_BYTES];
    size_t n = meta_keyring_keys(&s->keyring, c->cfg.swim.key, keys);
    /* Cannot fail: n is 1..SWIM_MAX_KEYS (meta_keyring_keys). */
    (void)swim_keys_set(c->swim, keys[0],
                        (const uint8_t(*)[SWIM_KEY_BYTES])keys + 1, n - 1);
    memcpy(k->keys, keys, sizeof keys);
    sodium_memzero(keys, sizeof keys);
    k->n = n;
    if (k->version != s->keyring.version)
      TRACE(c,
            "keyring version %" PRIu64 ": sealing with %08" PRIx32 ", %zu keys",
            s->keyring.version, s->keyring.primary, n);
    k->version = s->keyring.version;
  }
  /* The report waits for the next tick: this runs inside the metadata
   * node's apply, which must not propose from within raft's callback. */
  if (!k->reporting && k->committed < k->version &&
      meta_key_applied(s, c->cfg.swim.id) < k->version &&
      (k->retry_at == 0 || k->retry_at > c->now))
    k->retry_at = c->now > 0 ? c->now : 1;
}

int core__keys_tick(struct core *c) {
  struct core__keys *k = &c->keys;
  if (k->reporting || k->retry_at == 0 || c->now < k->retry_at)
    return CHORUS_OK;
  k->retry_at = 0;
  int rc = report(c, meta_node_state(c->meta));
  if (rc == CHORUS_OK)
    rc = c->meta_err; /* raised inside the proposal's effects */
  c->meta_err = CHORUS_OK;
  return rc;
}

void core__keys_reported(struct core *c, int status) {
  struct core__keys *k = &c->keys;
  k->reporting = false;
  if (status != CHORUS_OK) {
    TRACE(c, "KEY_APPLIED not committed (%s): again", chorus_errname(status));
    k->retry_at = c->now + REPORT_RETRY_MS;
  } else {
    /* Committed (this node's state may not show it yet); the state in
     * force may have moved on meanwhile: look again at the next tick. */
    if (k->proposed > k->committed)
      k->committed = k->proposed;
    k->retry_at = c->now;
  }
}

/* ------------------------------------------------------------------------
 * Operators
 * ------------------------------------------------------------------------ */

static void put_be(uint8_t *p, uint64_t v, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

int core__keys_reply(struct core *c, uint64_t cookie, uint32_t id) {
  const struct meta_state *s = meta_node_state(c->meta);
  const struct meta_keyring *kr = &s->keyring;
  uint8_t rec[META_MAX_KEYS + 1][WIRE_KEY_RECORD_BYTES];
  struct wire_bytes items[META_MAX_KEYS + 1];
  size_t n = 0;
  if (!kr->boot_retired) { /* id 0 sorts first */
    put_be(rec[n], 0, 4);
    put_be(rec[n] + 4, 0, 8);
    rec[n][12] = kr->primary == 0;
    n++;
  }
  for (uint8_t i = 0; i < kr->n && i < META_MAX_KEYS; i++, n++) {
    put_be(rec[n], kr->keys[i].id, 4);
    put_be(rec[n] + 4, kr->keys[i].since, 8);
    rec[n][12] = kr->keys[i].id == kr->primary;
  }
  for (size_t i = 0; i < n; i++)
    items[i] = (struct wire_bytes){rec[i], WIRE_KEY_RECORD_BYTES};
  /* Who has not reported the current version, cut to fit. */
  char behind[WIRE_MAX_KEY_BEHIND + 1] = "";
  size_t bl = 0;
  for (size_t i = 0; i < s->n; i++) {
    const struct meta_member *m = &s->members[i];
    if (m->state == META_LEFT || m->state == META_REMOVED ||
        meta_key_applied(s, m->id) >= kr->version)
      continue;
    int w = snprintf(behind + bl, sizeof behind - bl, "%s%s", bl ? "," : "",
                     m->name);
    if (w < 0 || (size_t)w >= sizeof behind - bl) {
      behind[bl] = '\0';
      break;
    }
    bl += (size_t)w;
  }
  struct wire_msg r = {.type = WIRE_CLUSTER_KEY_REPLY};
  r.cluster_key_reply = (struct wire_cluster_key_reply){
      s->applied, kr->version, id, {n, items}, {(const uint8_t *)behind, bl}};
  return c->fx.reply(c->fx.ctx, cookie, &r, false);
}

int core__keys_client(struct core *c, const struct wire_msg *m,
                      uint64_t cookie) {
  const struct wire_cluster_key *w = &m->cluster_key;
  if (w->op == WIRE_KEY_LIST)
    return core__keys_reply(c, cookie, 0);
  struct meta_cmd cmd = {0};
  switch (w->op) {
  case WIRE_KEY_INSTALL:
    if (w->key.len != META_KEY_BYTES)
      return core__refuse(c, cookie, CHORUS_EINVAL, "a gossip key is 32 bytes");
    cmd.type = META_CMD_KEY_INSTALL;
    memcpy(cmd.key.key, w->key.ptr, META_KEY_BYTES);
    cmd.key.id = meta_key_id(cmd.key.key);
    break;
  case WIRE_KEY_USE:
    cmd.type = META_CMD_KEY_USE;
    cmd.key.id = w->id;
    break;
  default:
    cmd.type = META_CMD_KEY_REMOVE;
    cmd.key.id = w->id;
    break;
  }
  /* Not judged here: this node's metadata may lag the leader's (a key
   * installed through another node not applied here yet). The state
   * machine judges when it applies, and the leader says why (meta_node's
   * answer text). */
  int rc = core__propose_pending(c, &cmd, cookie, CORE_PENDING_KEY);
  sodium_memzero(&cmd.key.key, sizeof cmd.key.key);
  return rc;
}

int core__keys_answer(struct core *c, uint64_t cookie, int status,
                      const char *text, uint32_t id) {
  if (status == CHORUS_OK)
    return core__keys_reply(c, cookie, id);
  /* The reason is the leader's, judged on the state that refused it. */
  return core__refuse(c, cookie, status,
                      text && text[0] ? text : chorus_strerror(status));
}
