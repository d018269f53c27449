/* test_meta_codec.c: the metadata codecs (meta/meta_codec.c): round trips
 * of every command, state and message type, the layout meta.h draws
 * (checked byte for byte against a packer written from it), every
 * rejection of the decoders and refusal of the encoders, raft's ownership
 * rules on decoded messages, and the out-of-memory paths of both
 * allocators (chorus's and raft's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "chorus_alloc.h"
#include "meta.h"
#include "meta_test.h"

/* ------------------------------------------------------------------------
 * A packer written from meta.h's drawing, checking nothing: it makes the
 * bytes the encoder refuses to make. Strings are packed up to their
 * array's size, so an array without its NUL gives an over-long string.
 * ------------------------------------------------------------------------ */

struct hb {
  msgpack_sbuffer sb;
  msgpack_packer pk;
};

static msgpack_packer *hb_start_format(struct hb *h, char format) {
  msgpack_sbuffer_init(&h->sb);
  msgpack_packer_init(&h->pk, &h->sb, msgpack_sbuffer_write);
  msgpack_sbuffer_write(&h->sb, &format, 1);
  return &h->pk;
}

static msgpack_packer *hb_start(struct hb *h) {
  return hb_start_format(h, META_FORMAT_V8);
}

static void hb_free(struct hb *h) {
  msgpack_sbuffer_destroy(&h->sb);
}

static void sp_str(msgpack_packer *pk, const char *s, size_t cap) {
  size_t n = strnlen(s, cap);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

static void sp_bin(msgpack_packer *pk, const void *p, size_t n) {
  msgpack_pack_bin(pk, n);
  msgpack_pack_bin_body(pk, p, n);
}

static void sp_bool(msgpack_packer *pk, bool b) {
  if (b)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
}

static void sp_repl(msgpack_packer *pk, const struct ring_replication *r) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint64(pk, r->n);
  uint32_t n = r->dc_count < RING_MAX_DCS ? r->dc_count : RING_MAX_DCS;
  msgpack_pack_array(pk, n);
  for (uint32_t i = 0; i < n; i++) {
    msgpack_pack_array(pk, 2);
    sp_str(pk, r->dcs[i].dc, RING_NAME_MAX);
    msgpack_pack_uint64(pk, r->dcs[i].factor);
  }
}

/* A member in @format's layout (V3: goal and ready after since). */
static void sp_member(msgpack_packer *pk, const struct meta_member *m,
                      char format) {
  msgpack_pack_array(pk, (unsigned char)format >= META_FORMAT_V5   ? 12
                         : (unsigned char)format >= META_FORMAT_V4 ? 11
                         : (unsigned char)format >= META_FORMAT_V3 ? 10
                                                                   : 8);
  msgpack_pack_uint64(pk, m->id);
  sp_str(pk, m->name, sizeof m->name);
  sp_str(pk, m->addr, sizeof m->addr);
  sp_str(pk, m->dc, sizeof m->dc);
  sp_str(pk, m->rack, sizeof m->rack);
  msgpack_pack_uint64(pk, m->vnodes);
  msgpack_pack_uint64(pk, m->state);
  msgpack_pack_uint64(pk, m->since);
  if ((unsigned char)format >= META_FORMAT_V3) {
    msgpack_pack_uint64(pk, m->goal);
    msgpack_pack_uint64(pk, m->ready);
  }
  if ((unsigned char)format >= META_FORMAT_V4)
    msgpack_pack_uint64(pk, m->disk);
  if ((unsigned char)format >= META_FORMAT_V5)
    msgpack_pack_uint64(pk, m->tokens_of);
}

static void sp_user(msgpack_packer *pk, const struct meta_user *u) {
  msgpack_pack_array(pk, 7);
  msgpack_pack_str(pk, strlen(u->name));
  msgpack_pack_str_body(pk, u->name, strlen(u->name));
  msgpack_pack_bin(pk, sizeof u->salt);
  msgpack_pack_bin_body(pk, u->salt, sizeof u->salt);
  msgpack_pack_uint64(pk, u->ops);
  msgpack_pack_uint64(pk, u->mem_kib);
  msgpack_pack_bin(pk, sizeof u->stored_key);
  msgpack_pack_bin_body(pk, u->stored_key, sizeof u->stored_key);
  msgpack_pack_bin(pk, sizeof u->server_key);
  msgpack_pack_bin_body(pk, u->server_key, sizeof u->server_key);
  msgpack_pack_array(pk, u->ngrants);
  for (uint8_t i = 0; i < u->ngrants; i++) {
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, u->grants[i].role);
    msgpack_pack_uint64(pk, u->grants[i].ks_id);
  }
}

static void sp_keyspace(msgpack_packer *pk, const struct meta_keyspace *k) {
  msgpack_pack_array(pk, 9);
  msgpack_pack_str(pk, strlen(k->name));
  msgpack_pack_str_body(pk, k->name, strlen(k->name));
  msgpack_pack_uint64(pk, k->id);
  msgpack_pack_uint64(pk, k->type);
  sp_repl(pk, &k->replication);
  msgpack_pack_int64(pk, k->read);
  msgpack_pack_int64(pk, k->write);
  msgpack_pack_uint64(pk, k->ttl_ms);
  msgpack_pack_uint64(pk, k->siblings_warn);
  msgpack_pack_uint64(pk, k->siblings_max);
}

/* A command in @format's layout (V2: the origin after the fields). */
static void sp_cmd_format(msgpack_packer *pk, const struct meta_cmd *c,
                          char format) {
  const unsigned o = format == META_FORMAT_V1 ? 0 : 2;
  switch (c->type) {
  case META_CMD_JOIN:
    msgpack_pack_array(pk, 2 + o);
    msgpack_pack_uint64(pk, c->type);
    sp_member(pk, &c->member, format);
    break;
  case META_CMD_SET_STATE:
    msgpack_pack_array(pk, 3 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->id);
    msgpack_pack_uint64(pk, c->state);
    break;
  case META_CMD_REMOVE:
    msgpack_pack_array(pk, 2 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->id);
    break;
  case META_CMD_REPLICATION:
    msgpack_pack_array(pk, 2 + o);
    msgpack_pack_uint64(pk, c->type);
    sp_repl(pk, &c->replication);
    break;
  case META_CMD_LEAVE:
  case META_CMD_STREAMED:
    msgpack_pack_array(pk, 3 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->id);
    msgpack_pack_uint64(pk, c->type == META_CMD_LEAVE ? c->state : c->epoch);
    break;
  case META_CMD_FINISH:
    msgpack_pack_array(pk, 2 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->epoch);
    break;
  case META_CMD_REPLACE:
    msgpack_pack_array(pk, 4 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->id);
    msgpack_pack_uint64(pk, c->with);
    msgpack_pack_uint64(pk, c->disk);
    break;
  case META_CMD_STAGE:
    msgpack_pack_array(pk, 6 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->staged_type);
    msgpack_pack_uint64(pk, c->id);
    msgpack_pack_uint64(pk, c->state);
    msgpack_pack_uint64(pk, c->with);
    msgpack_pack_uint64(pk, c->disk);
    break;
  case META_CMD_COMMIT:
    msgpack_pack_array(pk, 2 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->state);
    break;
  case META_CMD_KEYSPACE_CREATE:
  case META_CMD_KEYSPACE_ALTER:
    msgpack_pack_array(pk, 2 + o);
    msgpack_pack_uint64(pk, c->type);
    sp_keyspace(pk, &c->keyspace);
    break;
  case META_CMD_KEYSPACE_DROP:
    msgpack_pack_array(pk, 2 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_str(pk, strlen(c->keyspace.name));
    msgpack_pack_str_body(pk, c->keyspace.name, strlen(c->keyspace.name));
    break;
  case META_CMD_USER_CREATE:
  case META_CMD_USER_PASSWD:
    msgpack_pack_array(pk, 2 + o);
    msgpack_pack_uint64(pk, c->type);
    sp_user(pk, &c->user);
    break;
  case META_CMD_USER_DROP:
    msgpack_pack_array(pk, 2 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_str(pk, strlen(c->user.name));
    msgpack_pack_str_body(pk, c->user.name, strlen(c->user.name));
    break;
  case META_CMD_USER_GRANT:
  case META_CMD_USER_REVOKE:
    msgpack_pack_array(pk, 4 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_str(pk, strlen(c->user.name));
    msgpack_pack_str_body(pk, c->user.name, strlen(c->user.name));
    msgpack_pack_uint64(pk, c->grant.role);
    msgpack_pack_uint64(pk, c->grant.ks_id);
    break;
  case META_CMD_KEY_INSTALL:
    msgpack_pack_array(pk, 3 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->key.id);
    sp_bin(pk, c->key.key, sizeof c->key.key);
    break;
  case META_CMD_KEY_USE:
  case META_CMD_KEY_REMOVE:
    msgpack_pack_array(pk, 2 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->key.id);
    break;
  case META_CMD_KEY_APPLIED:
    msgpack_pack_array(pk, 3 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->id);
    msgpack_pack_uint64(pk, c->version);
    break;
  default: /* NOTE, and unknown types in NOTE's shape */
    msgpack_pack_array(pk, 3 + o);
    msgpack_pack_uint64(pk, c->type);
    msgpack_pack_uint64(pk, c->note_key);
    msgpack_pack_uint64(pk, c->note_value);
    break;
  }
  if (o) {
    msgpack_pack_uint64(pk, c->proposer);
    msgpack_pack_uint64(pk, c->req_id);
  }
}

static void sp_cmd(msgpack_packer *pk, const struct meta_cmd *c) {
  sp_cmd_format(pk, c, META_FORMAT_V8);
}

/* A state in @format's layout (V2: the sessions last). */
static void sp_state_format(msgpack_packer *pk, const struct meta_state *s,
                            char format) {
  msgpack_pack_array(pk, format == META_FORMAT_V1                  ? 6
                         : (unsigned char)format >= META_FORMAT_V8 ? 12
                         : (unsigned char)format >= META_FORMAT_V7 ? 11
                         : (unsigned char)format >= META_FORMAT_V6 ? 10
                         : (unsigned char)format >= META_FORMAT_V4 ? 8
                                                                   : 7);
  msgpack_pack_uint64(pk, s->epoch);
  msgpack_pack_uint64(pk, s->applied);
  msgpack_pack_uint64(pk, s->note_key);
  msgpack_pack_uint64(pk, s->note);
  sp_repl(pk, &s->replication);
  msgpack_pack_array(pk, s->n);
  for (size_t i = 0; i < s->n; i++)
    sp_member(pk, &s->members[i], format);
  if (format == META_FORMAT_V1)
    return;
  msgpack_pack_array(pk, s->nsessions);
  for (size_t i = 0; i < s->nsessions; i++) {
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint64(pk, s->sessions[i].proposer);
    msgpack_pack_uint64(pk, s->sessions[i].req_id);
    msgpack_pack_int64(pk, s->sessions[i].status);
    msgpack_pack_uint64(pk, s->sessions[i].index);
  }
  if ((unsigned char)format < META_FORMAT_V4)
    return;
  msgpack_pack_array(pk, 5);
  msgpack_pack_uint64(pk, s->staged.type);
  msgpack_pack_uint64(pk, s->staged.id);
  msgpack_pack_uint64(pk, s->staged.state);
  msgpack_pack_uint64(pk, s->staged.with);
  msgpack_pack_uint64(pk, s->staged.disk);
  if ((unsigned char)format < META_FORMAT_V6)
    return;
  msgpack_pack_array(pk, s->nks);
  for (size_t i = 0; i < s->nks; i++)
    sp_keyspace(pk, &s->keyspaces[i]);
  msgpack_pack_uint64(pk, s->next_ks_id);
  if ((unsigned char)format < META_FORMAT_V7)
    return;
  msgpack_pack_array(pk, s->nusers);
  for (size_t i = 0; i < s->nusers; i++)
    sp_user(pk, &s->users[i]);
  if ((unsigned char)format < META_FORMAT_V8)
    return;
  const struct meta_keyring *kr = &s->keyring;
  msgpack_pack_array(pk, 6);
  msgpack_pack_uint64(pk, kr->version);
  msgpack_pack_uint64(pk, kr->primary);
  msgpack_pack_uint64(pk, kr->primary_since);
  sp_bool(pk, kr->boot_retired);
  msgpack_pack_array(pk, kr->n);
  for (uint8_t i = 0; i < kr->n; i++) {
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint64(pk, kr->keys[i].id);
    sp_bin(pk, kr->keys[i].key, sizeof kr->keys[i].key);
    msgpack_pack_uint64(pk, kr->keys[i].since);
  }
  msgpack_pack_array(pk, s->nacks);
  for (size_t i = 0; i < s->nacks; i++) {
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, s->acks[i].id);
    msgpack_pack_uint64(pk, s->acks[i].version);
  }
}

static void sp_state(msgpack_packer *pk, const struct meta_state *s) {
  sp_state_format(pk, s, META_FORMAT_V8);
}

static void sp_raft(msgpack_packer *pk, const struct raft_message *r) {
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
      msgpack_pack_array(pk, 3);
      msgpack_pack_uint64(pk, a->entries[i].term);
      msgpack_pack_uint64(pk, a->entries[i].type);
      sp_bin(pk, a->entries[i].buf.base, a->entries[i].buf.len);
    }
    break;
  }
  case RAFT_IO_APPEND_ENTRIES_RESULT:
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint64(pk, r->type);
    msgpack_pack_uint64(pk, r->append_entries_result.term);
    msgpack_pack_uint64(pk, r->append_entries_result.rejected);
    msgpack_pack_uint64(pk, r->append_entries_result.last_log_index);
    break;
  case RAFT_IO_REQUEST_VOTE:
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint64(pk, r->type);
    msgpack_pack_uint64(pk, r->request_vote.term);
    msgpack_pack_uint64(pk, r->request_vote.candidate_id);
    msgpack_pack_uint64(pk, r->request_vote.last_log_index);
    msgpack_pack_uint64(pk, r->request_vote.last_log_term);
    sp_bool(pk, r->request_vote.disrupt_leader);
    sp_bool(pk, r->request_vote.pre_vote);
    break;
  case RAFT_IO_REQUEST_VOTE_RESULT:
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint64(pk, r->type);
    msgpack_pack_uint64(pk, r->request_vote_result.term);
    sp_bool(pk, r->request_vote_result.vote_granted);
    msgpack_pack_uint64(pk, (uint64_t)r->request_vote_result.pre_vote);
    break;
  case RAFT_IO_INSTALL_SNAPSHOT: {
    const struct raft_install_snapshot *s = &r->install_snapshot;
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint64(pk, r->type);
    msgpack_pack_uint64(pk, s->term);
    msgpack_pack_uint64(pk, s->last_index);
    msgpack_pack_uint64(pk, s->last_term);
    msgpack_pack_array(pk, s->conf.n);
    for (unsigned i = 0; i < s->conf.n; i++) {
      msgpack_pack_array(pk, 3);
      msgpack_pack_uint64(pk, s->conf.servers[i].id);
      sp_str(pk, s->conf.servers[i].address, META_ADDR_MAX);
      msgpack_pack_int64(pk, s->conf.servers[i].role);
    }
    msgpack_pack_uint64(pk, s->conf_index);
    sp_bin(pk, s->data.base, s->data.len);
    break;
  }
  default: /* TIMEOUT_NOW, and unknown types in its shape */
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint64(pk, r->type);
    msgpack_pack_uint64(pk, r->timeout_now.term);
    msgpack_pack_uint64(pk, r->timeout_now.last_log_index);
    msgpack_pack_uint64(pk, r->timeout_now.last_log_term);
    break;
  }
}

static void sp_msg(msgpack_packer *pk, const struct meta_msg *m) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint64(pk, m->type);
  msgpack_pack_uint64(pk, m->cluster);
  msgpack_pack_uint64(pk, m->from);
  switch (m->type) {
  case META_MSG_RAFT:
    sp_raft(pk, &m->raft);
    break;
  case META_MSG_PROPOSE:
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, m->req_id);
    sp_cmd(pk, &m->cmd);
    break;
  default: /* PROPOSE_REPLY, and unknown types in its shape */
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint64(pk, m->req_id);
    msgpack_pack_int64(pk, m->status);
    msgpack_pack_uint64(pk, m->index);
    msgpack_pack_uint64(pk, m->leader);
    sp_str(pk, m->text, sizeof m->text);
    break;
  }
}

/* ------------------------------------------------------------------------
 * Decoding helpers: a refusal leaves the output zeroed
 * ------------------------------------------------------------------------ */

static bool all_zero(const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != 0)
      return false;
  return true;
}

static int dec_cmd(const void *buf, size_t len) {
  struct meta_cmd c;
  int rc = meta_cmd_decode(buf, len, &c);
  if (rc != CHORUS_OK)
    assert_true(all_zero(&c, sizeof c));
  return rc;
}

static int dec_state(const void *buf, size_t len) {
  struct meta_state s;
  int rc = meta_state_decode(buf, len, &s);
  if (rc != CHORUS_OK)
    assert_true(all_zero(&s, sizeof s));
  meta_state_free(&s);
  return rc;
}

static int dec_msg(const void *buf, size_t len) {
  struct meta_msg m;
  int rc = meta_msg_decode(buf, len, &m);
  if (rc != CHORUS_OK)
    assert_true(all_zero(&m, sizeof m));
  meta_msg_release(&m);
  return rc;
}

static int hb_cmd(struct hb *h) {
  int rc = dec_cmd(h->sb.data, h->sb.size);
  hb_free(h);
  return rc;
}

static int hb_state(struct hb *h) {
  int rc = dec_state(h->sb.data, h->sb.size);
  hb_free(h);
  return rc;
}

static int hb_msg(struct hb *h) {
  int rc = dec_msg(h->sb.data, h->sb.size);
  hb_free(h);
  return rc;
}

/* The encoder refuses @c with @enc; the same value, packed anyway, is
 * refused by the decoder with @dec. */
static void refused_cmd(const struct meta_cmd *c, int enc, int dec) {
  uint8_t sentinel[1];
  uint8_t *buf = sentinel;
  size_t len = 12345;
  assert_int_equal(meta_cmd_encode(c, &buf, &len), enc);
  assert_ptr_equal(buf, sentinel); /* untouched */
  assert_int_equal(len, 12345);
  struct hb h;
  sp_cmd(hb_start(&h), c);
  assert_int_equal(hb_cmd(&h), dec);
}

static void refused_state(const struct meta_state *s, int enc, int dec) {
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_int_equal(meta_state_encode(s, &buf, &len), enc);
  assert_null(buf);
  struct hb h;
  sp_state(hb_start(&h), s);
  assert_int_equal(hb_state(&h), dec);
}

static void refused_msg(const struct meta_msg *m, int enc, int dec) {
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_int_equal(meta_msg_encode(m, &buf, &len), enc);
  assert_null(buf);
  struct hb h;
  sp_msg(hb_start(&h), m);
  assert_int_equal(hb_msg(&h), dec);
}

/* Every proper prefix of @buf is malformed, and so is @buf with a byte
 * more; another format byte is a version error. */
static void cut_everywhere(const uint8_t *buf, size_t len,
                           int (*dec)(const void *, size_t)) {
  for (size_t n = 0; n < len; n++)
    assert_int_equal(dec(buf, n), CHORUS_EMALFORMED);
  uint8_t *more = malloc(len + 1);
  assert_non_null(more);
  memcpy(more, buf, len);
  more[len] = 0xc0;
  assert_int_equal(dec(more, len + 1), CHORUS_EMALFORMED);
  more[0] = META_FORMAT_V8 + 1;
  assert_int_equal(dec(more, len), CHORUS_EVERSION);
  more[0] = 0;
  assert_int_equal(dec(more, len), CHORUS_EVERSION);
  free(more);
}

/* ------------------------------------------------------------------------
 * Round trips and the layout
 * ------------------------------------------------------------------------ */

static void test_cmd_roundtrip(void **state) {
  (void)state;
  for (int i = 0; i < META_T_NCMD; i++) {
    struct meta_cmd c = meta_t_cmd(i), d;
    /* Fields the type does not use are not carried. */
    if (c.type != META_CMD_JOIN)
      c.member.id = 99;
    if (c.type != META_CMD_NOTE)
      c.note_key = 99;
    uint8_t *buf;
    size_t len;
    assert_int_equal(meta_cmd_encode(&c, &buf, &len), CHORUS_OK);
    assert_int_equal(buf[0], META_FORMAT_V8);
    assert_int_equal(meta_cmd_decode(buf, len, &d), CHORUS_OK);
    assert_true(meta_t_cmd_eq(&c, &d));
    assert_int_equal(d.member.id, c.type == META_CMD_JOIN ? c.member.id : 0);
    assert_int_equal(d.note_key, c.type == META_CMD_NOTE ? c.note_key : 0);
    /* The layout is meta.h's. */
    struct hb h;
    sp_cmd(hb_start(&h), &c);
    assert_int_equal(h.sb.size, len);
    assert_memory_equal(h.sb.data, buf, len);
    hb_free(&h);
    cut_everywhere(buf, len, dec_cmd);
    chorus_free(buf);
  }
}

static void test_cmd_every_member_state(void **state) {
  (void)state;
  for (uint8_t st = META_JOINING; st <= META_STATE_MAX; st++) {
    struct meta_cmd c = meta_t_cmd(0), d;
    c.member.state = st;
    c.member.vnodes = RING_MAX_VNODES;
    c.member.since = UINT64_MAX;
    memset(c.member.name, 'n', sizeof c.member.name - 1); /* 127 bytes */
    memset(c.member.addr, 'a', sizeof c.member.addr - 1);
    memset(c.member.dc, 'd', sizeof c.member.dc - 1);
    c.member.rack[0] = '\0'; /* empty dc, rack and addr are valid */
    uint8_t *buf;
    size_t len;
    assert_int_equal(meta_cmd_encode(&c, &buf, &len), CHORUS_OK);
    assert_int_equal(meta_cmd_decode(buf, len, &d), CHORUS_OK);
    assert_true(meta_t_cmd_eq(&c, &d));
    chorus_free(buf);
  }
}

static void test_state_roundtrip(void **state) {
  (void)state;
  struct meta_member m[8];
  for (size_t n = 0; n <= 8; n++) {
    struct meta_state s = meta_t_state(m, n), d;
    if (n % 2)
      s.replication = meta_t_repl_n((uint32_t)n);
    uint8_t *buf;
    size_t len;
    assert_int_equal(meta_state_encode(&s, &buf, &len), CHORUS_OK);
    assert_int_equal(meta_state_decode(buf, len, &d), CHORUS_OK);
    assert_true(meta_t_state_eq(&s, &d));
    assert_true(n == 0 ? d.members == NULL : d.members != s.members);
    struct hb h;
    sp_state(hb_start(&h), &s);
    assert_int_equal(h.sb.size, len);
    assert_memory_equal(h.sb.data, buf, len);
    hb_free(&h);
    if (n == 0 || n == 5)
      cut_everywhere(buf, len, dec_state);
    meta_state_free(&d);
    chorus_free(buf);
  }
}

/* The largest state: META_MAX_MEMBERS members with the longest names. */
static void test_state_largest(void **state) {
  (void)state;
  struct meta_member *m = calloc(META_MAX_MEMBERS, sizeof *m);
  assert_non_null(m);
  for (size_t i = 0; i < META_MAX_MEMBERS; i++) {
    m[i] = meta_t_member(i + 1, "", "dc-with-a-long-name-0123456789a",
                         "rack-with-a-long-name-012345678", META_NORMAL);
    memset(m[i].name, 'x', sizeof m[i].name - 1);
    snprintf(m[i].name, sizeof m[i].name, "%zu", i); /* unique prefix */
    m[i].name[strlen(m[i].name)] = 'x';
    memset(m[i].addr, 'a', sizeof m[i].addr - 1);
  }
  struct meta_state s = {.epoch = 1,
                         .applied = 2,
                         .replication = meta_t_repl_n(3),
                         .n = META_MAX_MEMBERS,
                         .members = m},
                    d;
  uint8_t *buf;
  size_t len;
  assert_int_equal(meta_state_encode(&s, &buf, &len), CHORUS_OK);
  assert_true(len <= META_MAX_STATE_BYTES);
  assert_int_equal(meta_state_decode(buf, len, &d), CHORUS_OK);
  assert_true(meta_t_state_eq(&s, &d));
  meta_state_free(&d);
  chorus_free(buf);
  /* One member more: too big, either way. */
  s.n = META_MAX_MEMBERS + 1;
  assert_int_equal(meta_state_encode(&s, &buf, &len), CHORUS_ETOOBIG);
  free(m);
}

static void test_msg_roundtrip(void **state) {
  (void)state;
  for (int i = 0; i < META_T_NMSG; i++) {
    struct meta_t_sample s;
    meta_t_msg(&s, i);
    struct meta_msg d;
    uint8_t *buf;
    size_t len;
    assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), CHORUS_OK);
    assert_int_equal(meta_msg_decode(buf, len, &d), CHORUS_OK);
    assert_true(meta_t_msg_eq(&s.msg, &d));
    if (d.type == META_MSG_RAFT) {
      /* raft's recv convention: server_id is the sender. */
      assert_int_equal(d.raft.server_id, s.msg.from);
      assert_null(d.raft.server_address);
    } else {
      assert_true(all_zero(&d.raft, sizeof d.raft));
    }
    struct hb h;
    sp_msg(hb_start(&h), &s.msg);
    assert_int_equal(h.sb.size, len);
    assert_memory_equal(h.sb.data, buf, len);
    hb_free(&h);
    cut_everywhere(buf, len, dec_msg);
    meta_msg_release(&d);
    chorus_free(buf);
    /* The encoder took nothing: the sample is intact. */
    struct meta_t_sample again;
    meta_t_msg(&again, i);
    assert_true(meta_t_msg_eq(&s.msg, &again.msg));
  }
}

/* Extreme values of every scalar field survive. */
static void test_msg_extremes(void **state) {
  (void)state;
  struct meta_t_sample s;
  meta_t_msg(&s, 3);
  s.msg.cluster = 0;
  s.msg.from = UINT64_MAX;
  s.msg.raft.request_vote =
      (struct raft_request_vote){UINT64_MAX, 0, UINT64_MAX, 0, false, false};
  uint8_t *buf;
  size_t len;
  struct meta_msg d;
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), CHORUS_OK);
  assert_int_equal(meta_msg_decode(buf, len, &d), CHORUS_OK);
  assert_true(meta_t_msg_eq(&s.msg, &d));
  chorus_free(buf);
  meta_t_msg(&s, 11);
  s.msg.status = INT32_MIN;
  memset(s.msg.text, 't', sizeof s.msg.text - 1);
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), CHORUS_OK);
  assert_int_equal(meta_msg_decode(buf, len, &d), CHORUS_OK);
  assert_true(meta_t_msg_eq(&s.msg, &d));
  chorus_free(buf);
  /* Every pre_vote answer. */
  for (int t = raft_tribool_unknown; t <= raft_tribool_false; t++) {
    meta_t_msg(&s, 4);
    s.msg.raft.request_vote_result.pre_vote = (raft_tribool)t;
    assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), CHORUS_OK);
    assert_int_equal(meta_msg_decode(buf, len, &d), CHORUS_OK);
    assert_int_equal(d.raft.request_vote_result.pre_vote, t);
    chorus_free(buf);
  }
}

/* ------------------------------------------------------------------------
 * Ownership of decoded Raft messages (meta.h, struct meta_msg)
 * ------------------------------------------------------------------------ */

static void decode_sample(int which, struct meta_msg *d) {
  struct meta_t_sample s;
  meta_t_msg(&s, which);
  uint8_t *buf;
  size_t len;
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), CHORUS_OK);
  assert_int_equal(meta_msg_decode(buf, len, d), CHORUS_OK);
  /* Nothing points into the input. */
  memset(buf, 0xee, len);
  chorus_free(buf);
  assert_true(meta_t_msg_eq(&s.msg, d));
}

static void test_entries_one_batch(void **state) {
  (void)state;
  struct meta_msg d;
  decode_sample(0, &d);
  const struct raft_append_entries *a = &d.raft.append_entries;
  assert_int_equal(a->n_entries, 3);
  const uint8_t *batch = a->entries[0].batch;
  assert_non_null(batch);
  size_t off = 0;
  for (unsigned i = 0; i < a->n_entries; i++) {
    assert_ptr_equal(a->entries[i].batch, batch);
    assert_ptr_equal(a->entries[i].buf.base, batch + off); /* back to back */
    off += a->entries[i].buf.len;
  }
  assert_int_equal(off, 300);
  meta_msg_release(&d);
  assert_null(d.raft.append_entries.entries);
  assert_int_equal(d.raft.append_entries.n_entries, 0);
  meta_msg_release(&d); /* idempotent */
  meta_msg_release(NULL);

  /* A heartbeat has no entries and allocates nothing. */
  decode_sample(1, &d);
  assert_null(d.raft.append_entries.entries);
  assert_int_equal(d.raft.append_entries.n_entries, 0);
  meta_msg_release(&d);

  /* Entries without data still get a batch: raft frees entries[i].batch
   * and asserts it is not NULL (entryBatchesDestroy). */
  struct meta_t_sample s;
  meta_t_msg(&s, 0);
  s.msg.raft.append_entries.entries = &s.entries[1]; /* the empty BARRIER */
  s.msg.raft.append_entries.n_entries = 1;
  uint8_t *buf;
  size_t len;
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), CHORUS_OK);
  assert_int_equal(meta_msg_decode(buf, len, &d), CHORUS_OK);
  chorus_free(buf);
  assert_non_null(d.raft.append_entries.entries[0].batch);
  assert_ptr_equal(d.raft.append_entries.entries[0].buf.base,
                   d.raft.append_entries.entries[0].batch);
  assert_int_equal(d.raft.append_entries.entries[0].buf.len, 0);
  /* Handed to raft instead: raft frees the batch and the array itself. */
  raft_free(d.raft.append_entries.entries[0].batch);
  raft_free(d.raft.append_entries.entries);
}

static void test_snapshot_ownership(void **state) {
  (void)state;
  struct meta_msg d;
  decode_sample(6, &d);
  struct raft_install_snapshot *is = &d.raft.install_snapshot;
  assert_int_equal(is->conf.n, 3);
  for (unsigned i = 0; i < 3; i++)
    assert_int_equal(is->conf.servers[i].role, (int)i);
  assert_int_equal(is->data.len, 300);
  meta_msg_release(&d);
  assert_int_equal(d.raft.install_snapshot.conf.n, 0);
  assert_null(d.raft.install_snapshot.conf.servers);
  assert_null(d.raft.install_snapshot.data.base);
  meta_msg_release(&d);

  /* Empty configuration and data: data.base is still an allocation. */
  decode_sample(7, &d);
  assert_int_equal(d.raft.install_snapshot.conf.n, 0);
  assert_null(d.raft.install_snapshot.conf.servers);
  assert_non_null(d.raft.install_snapshot.data.base);
  assert_int_equal(d.raft.install_snapshot.data.len, 0);
  /* Handed to raft instead: raft closes the configuration and frees the
   * data (recv.c on RAFT_BUSY). */
  raft_configuration_close(&d.raft.install_snapshot.conf);
  raft_free(d.raft.install_snapshot.data.base);

  /* Release does nothing to other messages. */
  decode_sample(9, &d);
  struct meta_msg copy = d;
  meta_msg_release(&d);
  assert_memory_equal(&copy, &d, sizeof d);
}

/* ------------------------------------------------------------------------
 * Refusals: values out of range, each both ways
 * ------------------------------------------------------------------------ */

static void test_cmd_refused(void **state) {
  (void)state;
  const int E = CHORUS_EINVAL, M = CHORUS_EMALFORMED;
  struct meta_cmd c;
  for (int t = 0; t <= 255; t += 1) {
    if (t >= META_CMD_JOIN && t <= META_CMD_MAX)
      continue;
    c = meta_t_cmd(5);
    c.type = (uint8_t)t;
    refused_cmd(&c, E, M);
  }
  c = meta_t_cmd(0), c.member.id = 0, refused_cmd(&c, E, M);
  c = meta_t_cmd(0), c.member.name[0] = '\0', refused_cmd(&c, E, M);
  c = meta_t_cmd(0), c.member.state = 0, refused_cmd(&c, E, M);
  c = meta_t_cmd(0), c.member.state = META_STATE_MAX + 1;
  refused_cmd(&c, E, M);
  c = meta_t_cmd(0), c.member.vnodes = RING_MAX_VNODES + 1;
  refused_cmd(&c, E, M);
  /* No NUL within the array: a string one byte too long on the wire. */
  c = meta_t_cmd(0);
  memset(c.member.name, 'n', sizeof c.member.name);
  refused_cmd(&c, E, M);
  c = meta_t_cmd(0), memset(c.member.addr, 'a', sizeof c.member.addr);
  refused_cmd(&c, E, M);
  c = meta_t_cmd(0), memset(c.member.dc, 'd', sizeof c.member.dc);
  refused_cmd(&c, E, M);
  c = meta_t_cmd(0), memset(c.member.rack, 'r', sizeof c.member.rack);
  refused_cmd(&c, E, M);
  c = meta_t_cmd(1), c.id = 0, refused_cmd(&c, E, M);
  c = meta_t_cmd(1), c.state = 0, refused_cmd(&c, E, M);
  c = meta_t_cmd(1), c.state = META_STATE_MAX + 1, refused_cmd(&c, E, M);
  c = meta_t_cmd(2), c.id = 0, refused_cmd(&c, E, M);
  /* No origin is all zeroes. */
  c = meta_t_cmd(1), c.req_id = 9, refused_cmd(&c, E, M);
  /* Replication as ring_replication_check says, and n <= 16 always. */
  c = meta_t_cmd(4), c.replication.n = 0, refused_cmd(&c, E, M);
  c = meta_t_cmd(4), c.replication.n = RING_MAX_REPLICAS + 1;
  refused_cmd(&c, E, M);
  c = meta_t_cmd(3), c.replication.dcs[0].factor = 0, refused_cmd(&c, E, M);
  c = meta_t_cmd(3), c.replication.dcs[0].factor = 15, refused_cmd(&c, E, M);
  c = meta_t_cmd(3), strcpy(c.replication.dcs[1].dc, "dc1");
  refused_cmd(&c, E, M);
  c = meta_t_cmd(3), c.replication.n = RING_MAX_REPLICAS + 1;
  refused_cmd(&c, E, M);
  c = meta_t_cmd(3), memset(c.replication.dcs[1].dc, 'x', RING_NAME_MAX);
  refused_cmd(&c, E, M);
  c = meta_t_cmd(3), c.replication.n = 5; /* unused but in range: kept */
  uint8_t *buf;
  size_t len;
  struct meta_cmd d;
  assert_int_equal(meta_cmd_encode(&c, &buf, &len), CHORUS_OK);
  assert_int_equal(meta_cmd_decode(buf, len, &d), CHORUS_OK);
  assert_true(meta_t_cmd_eq(&c, &d));
  chorus_free(buf);
  /* Nine datacenters (only the packer can say it). */
  struct hb h;
  msgpack_packer *pk = hb_start_format(&h, META_FORMAT_V1);
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint64(pk, META_CMD_REPLICATION);
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint64(pk, 0);
  msgpack_pack_array(pk, RING_MAX_DCS + 1);
  for (unsigned i = 0; i <= RING_MAX_DCS; i++) {
    char dc[8];
    snprintf(dc, sizeof dc, "d%u", i);
    msgpack_pack_array(pk, 2);
    sp_str(pk, dc, sizeof dc);
    msgpack_pack_uint64(pk, 1);
  }
  assert_int_equal(hb_cmd(&h), M);
  c = meta_t_cmd(3), c.replication.dc_count = RING_MAX_DCS + 1;
  assert_int_equal(meta_cmd_encode(&c, &buf, &len), E);
}

static void test_state_refused(void **state) {
  (void)state;
  const int E = CHORUS_EINVAL, M = CHORUS_EMALFORMED;
  struct meta_member m[8];
  struct meta_state s;
  struct meta_member t;
#define FRESH() (s = meta_t_state(m, 5))
  /* Members out of order, a duplicate id, a duplicate name. */
  FRESH(), t = m[1], m[1] = m[2], m[2] = t, refused_state(&s, E, M);
  FRESH(), m[4].id = m[3].id, refused_state(&s, E, M);
  FRESH(), m[4].id = 1, refused_state(&s, E, M);
  FRESH(), strcpy(m[3].name, m[0].name), refused_state(&s, E, M);
  FRESH(), strcpy(m[4].name, m[3].name), refused_state(&s, E, M);
  /* A member out of range. */
  FRESH(), m[0].id = 0, refused_state(&s, E, M);
  FRESH(), m[2].name[0] = '\0', refused_state(&s, E, M);
  FRESH(), m[2].state = 0, refused_state(&s, E, M);
  FRESH(), m[2].state = META_STATE_MAX + 1, refused_state(&s, E, M);
  FRESH(), m[2].vnodes = RING_MAX_VNODES + 1, refused_state(&s, E, M);
  FRESH(), memset(m[2].name, 'x', sizeof m[2].name), refused_state(&s, E, M);
  FRESH(), memset(m[2].rack, 'x', sizeof m[2].rack), refused_state(&s, E, M);
  /* Replication out of range. */
  FRESH(), s.replication = meta_t_repl_n(0), refused_state(&s, E, M);
  FRESH(), s.replication.dcs[1].factor = 14, refused_state(&s, E, M);
  /* Sessions: by index strictly, none after applied, each with a
   * proposer and a status that is not positive (7 members: 3 sessions). */
#undef FRESH
#define FRESH() (s = meta_t_state(m, 7))
  FRESH(), s.sessions[1].index = s.sessions[0].index, refused_state(&s, E, M);
  FRESH(), s.sessions[2].index = s.applied + 1, refused_state(&s, E, M);
  FRESH(), s.sessions[0].proposer = 0, refused_state(&s, E, M);
  FRESH(), s.sessions[1].status = 1, refused_state(&s, E, M);
#undef FRESH
  /* Members NULL: only the encoder can be given that. */
  s = meta_t_state(m, 5);
  s.members = NULL;
  uint8_t *buf = NULL;
  size_t len;
  assert_int_equal(meta_state_encode(&s, &buf, &len), E);
  /* More members than the limit: refused at the header. */
  struct hb h;
  msgpack_packer *pk = hb_start_format(&h, META_FORMAT_V5);
  msgpack_pack_array(pk, 8);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 0);
  msgpack_pack_uint64(pk, 0);
  struct ring_replication r = meta_t_repl_n(3);
  sp_repl(pk, &r);
  msgpack_pack_array(pk, META_MAX_MEMBERS + 1);
  assert_int_equal(hb_state(&h), CHORUS_ETOOBIG);
  /* Within the limit but more than the bytes can hold. */
  pk = hb_start_format(&h, META_FORMAT_V5);
  msgpack_pack_array(pk, 8);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 0);
  msgpack_pack_uint64(pk, 0);
  sp_repl(pk, &r);
  msgpack_pack_array(pk, 100);
  struct meta_member one = meta_t_member(1, "x", "", "", META_NORMAL);
  for (int i = 0; i < 20; i++)
    sp_member(pk, &one, META_FORMAT_V5);
  assert_int_equal(hb_state(&h), M);
  /* More sessions than the limit: refused at the header, both ways. */
  pk = hb_start_format(&h, META_FORMAT_V5);
  msgpack_pack_array(pk, 8);
  for (int i = 0; i < 4; i++)
    msgpack_pack_uint64(pk, 0);
  sp_repl(pk, &r);
  msgpack_pack_array(pk, 0);
  msgpack_pack_array(pk, META_MAX_SESSIONS + 1);
  assert_int_equal(hb_state(&h), CHORUS_ETOOBIG);
  s = meta_t_state(m, 3);
  s.nsessions = META_MAX_SESSIONS + 1;
  assert_int_equal(meta_state_encode(&s, &buf, &len), CHORUS_ETOOBIG);
}

/* What the first metadata release wrote (META_FORMAT_V1: commands without
 * an origin, a state without sessions) is still read. */
static void test_v1_is_read(void **state) {
  (void)state;
  for (int i = 0; i < META_T_NCMD_V2; i++) {
    struct meta_cmd c = meta_t_cmd(i), d;
    c.member.disk = 0;      /* V4's */
    c.member.tokens_of = 0; /* V5's */
    c.proposer = 0, c.req_id = 0;
    struct hb h;
    sp_cmd_format(hb_start_format(&h, META_FORMAT_V1), &c, META_FORMAT_V1);
    assert_int_equal(meta_cmd_decode(h.sb.data, h.sb.size, &d), CHORUS_OK);
    hb_free(&h);
    assert_true(meta_t_cmd_eq(&c, &d));
    /* A V1 command with an origin's two fields has two too many. */
    struct meta_cmd o = meta_t_cmd(i);
    o.proposer = 1;
    sp_cmd_format(hb_start_format(&h, META_FORMAT_V1), &o, META_FORMAT_V2);
    assert_int_equal(hb_cmd(&h), CHORUS_EMALFORMED);
    /* And a V2 one without them two too few. */
    sp_cmd_format(hb_start(&h), &c, META_FORMAT_V1);
    assert_int_equal(hb_cmd(&h), CHORUS_EMALFORMED);
  }
  struct meta_member m[8];
  struct meta_state s = meta_t_state(m, 4), d;
  s.nsessions = 0, s.sessions = NULL;
  for (size_t i = 0; i < s.n; i++)
    m[i].goal = 0, m[i].ready = 0, m[i].disk = 0, m[i].tokens_of = 0;
  struct hb h;
  sp_state_format(hb_start_format(&h, META_FORMAT_V1), &s, META_FORMAT_V1);
  assert_int_equal(meta_state_decode(h.sb.data, h.sb.size, &d), CHORUS_OK);
  hb_free(&h);
  assert_true(meta_t_state_eq(&s, &d));
  assert_null(d.sessions);
  meta_state_free(&d);
}

/* What the metadata release before topology changes wrote
 * (META_FORMAT_V2: members without goal and ready) is still read, and
 * LEAVE, STREAMED and FINISH exist only from V3 on. */
static void test_v2_is_read(void **state) {
  (void)state;
  struct hb h;
  for (int i = 0; i < META_T_NCMD; i++) {
    struct meta_cmd c = meta_t_cmd(i), d;
    c.member.disk = 0, c.member.tokens_of = 0; /* V4's, V5's */
    sp_cmd_format(hb_start_format(&h, META_FORMAT_V2), &c, META_FORMAT_V2);
    if (i >= META_T_NCMD_V2) {
      assert_int_equal(hb_cmd(&h), CHORUS_EMALFORMED);
      continue;
    }
    assert_int_equal(meta_cmd_decode(h.sb.data, h.sb.size, &d), CHORUS_OK);
    hb_free(&h);
    assert_true(meta_t_cmd_eq(&c, &d));
  }
  struct meta_member m[8];
  struct meta_state s = meta_t_state(m, 6), d;
  for (size_t i = 0; i < s.n; i++) {
    m[i].goal = 0, m[i].ready = 0, m[i].disk = 0, m[i].tokens_of = 0;
    if (m[i].state == META_REPLACING)
      m[i].state = META_NORMAL; /* V4 */
  }
  sp_state_format(hb_start_format(&h, META_FORMAT_V2), &s, META_FORMAT_V2);
  assert_int_equal(meta_state_decode(h.sb.data, h.sb.size, &d), CHORUS_OK);
  hb_free(&h);
  assert_true(meta_t_state_eq(&s, &d));
  meta_state_free(&d);
  /* A V3 member needs a goal only when LEAVING, and then LEFT or
   * REMOVED. */
  s = meta_t_state(m, 6);
  for (size_t i = 0; i < s.n; i++)
    if (m[i].state != META_LEAVING)
      m[i].goal = META_LEFT;
  uint8_t *buf;
  size_t len;
  assert_int_equal(meta_state_encode(&s, &buf, &len), CHORUS_EINVAL);
  sp_state(hb_start(&h), &s);
  assert_int_equal(hb_state(&h), CHORUS_EMALFORMED);
}

/* What the release before replacements wrote (META_FORMAT_V3) is still
 * read; REPLACE and the REPLACING state exist only from V4 on. */
static void test_v3_is_read(void **state) {
  (void)state;
  struct hb h;
  for (int i = 0; i < META_T_NCMD; i++) {
    struct meta_cmd c = meta_t_cmd(i), d;
    c.member.disk = 0, c.member.tokens_of = 0; /* V4's, V5's */
    sp_cmd_format(hb_start_format(&h, META_FORMAT_V3), &c, META_FORMAT_V3);
    if (i >= META_T_NCMD_V3) {
      assert_int_equal(hb_cmd(&h), CHORUS_EMALFORMED);
      continue;
    }
    assert_int_equal(meta_cmd_decode(h.sb.data, h.sb.size, &d), CHORUS_OK);
    hb_free(&h);
    assert_true(meta_t_cmd_eq(&c, &d));
  }
  struct meta_member m[8];
  struct meta_state s = meta_t_state(m, 6), d;
  bool replacing = false;
  for (size_t i = 0; i < s.n; i++) {
    replacing |= m[i].state == META_REPLACING;
    m[i].disk = 0;      /* V4's */
    m[i].tokens_of = 0; /* V5's */
  }
  assert_true(replacing); /* the sample has one: V3 refuses it */
  sp_state_format(hb_start_format(&h, META_FORMAT_V3), &s, META_FORMAT_V3);
  assert_int_equal(hb_state(&h), CHORUS_EMALFORMED);
  for (size_t i = 0; i < s.n; i++)
    if (m[i].state == META_REPLACING)
      m[i].state = META_NORMAL;
  sp_state_format(hb_start_format(&h, META_FORMAT_V3), &s, META_FORMAT_V3);
  assert_int_equal(meta_state_decode(h.sb.data, h.sb.size, &d), CHORUS_OK);
  hb_free(&h);
  assert_true(meta_t_state_eq(&s, &d));
  meta_state_free(&d);
}

/* What the release before replacements took the replaced node's tokens
 * wrote (META_FORMAT_V4) is still read, every member with its own tokens. */
static void test_v4_is_read(void **state) {
  (void)state;
  struct hb h;
  for (int i = 0; i < META_T_NCMD; i++) {
    struct meta_cmd c = meta_t_cmd(i), d;
    c.member.tokens_of = 0x77; /* not written in V4: read as 0 */
    sp_cmd_format(hb_start_format(&h, META_FORMAT_V4), &c, META_FORMAT_V4);
    if (i >= META_T_NCMD_V5) { /* V6's keyspace commands */
      assert_int_equal(hb_cmd(&h), CHORUS_EMALFORMED);
      continue;
    }
    assert_int_equal(meta_cmd_decode(h.sb.data, h.sb.size, &d), CHORUS_OK);
    hb_free(&h);
    c.member.tokens_of = 0;
    assert_true(meta_t_cmd_eq(&c, &d));
  }
  struct meta_member m[8];
  struct meta_state s = meta_t_state(m, 7), d;
  sp_state_format(hb_start_format(&h, META_FORMAT_V4), &s, META_FORMAT_V4);
  assert_int_equal(meta_state_decode(h.sb.data, h.sb.size, &d), CHORUS_OK);
  hb_free(&h);
  for (size_t i = 0; i < s.n; i++)
    m[i].tokens_of = 0;
  assert_true(meta_t_state_eq(&s, &d));
  meta_state_free(&d);
}

/* commands_in_format: every command sample written in @format: the first
 * @known (the types it has) read back equal, the later ones malformed. */
static void commands_in_format(char format, int known) {
  struct hb h;
  for (int i = 0; i < META_T_NCMD; i++) {
    struct meta_cmd c = meta_t_cmd(i), d;
    sp_cmd_format(hb_start_format(&h, format), &c, format);
    if (i >= known) {
      assert_int_equal(hb_cmd(&h), CHORUS_EMALFORMED);
      continue;
    }
    assert_int_equal(meta_cmd_decode(h.sb.data, h.sb.size, &d), CHORUS_OK);
    hb_free(&h);
    assert_true(meta_t_cmd_eq(&c, &d));
  }
}

/* What the release before the keyring wrote (META_FORMAT_V7) is still
 * read, with an empty keyring (every node seals with its --cluster-key);
 * the key commands exist only from V8 on, and a V8 keyring is judged:
 * keys sorted, ids their fingerprints, a primary installed, the boot key
 * counted, reports sorted and within the keyring's version. */
static void test_v7_is_read(void **state) {
  (void)state;
  struct hb h;
  commands_in_format(META_FORMAT_V7, META_T_NCMD_V7);
  struct meta_member m[8];
  struct meta_state s = meta_t_state(m, 5), d;
  assert_int_equal(s.keyring.n, 2);
  sp_state_format(hb_start_format(&h, META_FORMAT_V7), &s, META_FORMAT_V7);
  assert_int_equal(meta_state_decode(h.sb.data, h.sb.size, &d), CHORUS_OK);
  hb_free(&h);
  assert_int_equal(d.keyring.n, 0);
  assert_int_equal(d.keyring.primary, 0);
  assert_int_equal(d.nacks, 0);
  memset(&s.keyring, 0, sizeof s.keyring);
  s.nacks = 0, s.acks = NULL;
  assert_true(meta_t_state_eq(&s, &d));
  meta_state_free(&d);
  for (int bad = 0; bad < 9; bad++) {
    s = meta_t_state(m, 5);
    struct meta_keyring *kr = &s.keyring;
    struct meta_key_ack acks[2] = {s.acks[0], s.acks[1]};
    s.acks = acks;
    switch (bad) {
    case 0:
      kr->keys[1] = kr->keys[0];
      break; /* a duplicate id */
    case 1:
      kr->keys[0].key[0] ^= 1;
      break; /* an id that is not the key's */
    case 2:
      kr->primary = 7;
      break; /* a primary not installed */
    case 3:
      kr->keys[0].since = kr->version + 1;
      break; /* from a version not reached */
    case 4:
      kr->keys[2] = meta_t_key(3);
      kr->keys[3] = meta_t_key(4);
      kr->keys[2].since = kr->keys[3].since = 1;
      kr->n = 4; /* with the boot key: five (unsorted, too) */
      break;
    case 5:
      kr->primary = 0;
      kr->primary_since = 0;
      kr->boot_retired = true;
      break; /* nothing to seal with */
    case 6:
      acks[1].id = acks[0].id;
      break; /* a report twice */
    case 7:
      acks[0].version = kr->version + 1;
      break;
    default:
      kr->primary_since = 0;
      break; /* a primary never used */
    }
    uint8_t *buf;
    size_t len;
    assert_int_equal(meta_state_encode(&s, &buf, &len), CHORUS_EINVAL);
    sp_state(hb_start(&h), &s);
    assert_int_equal(meta_state_decode(h.sb.data, h.sb.size, &d),
                     CHORUS_EMALFORMED);
    hb_free(&h);
  }
}

/* What the release before users wrote (META_FORMAT_V6) is still read, with
 * no user; the user commands exist only from V7 on, and a V7 state's users
 * are judged: sorted by name, costs in bounds, grants sorted, of known
 * roles, on keyspaces the state has. */
static void test_v6_is_read(void **state) {
  (void)state;
  struct hb h;
  commands_in_format(META_FORMAT_V6, META_T_NCMD_V6);
  struct meta_member m[8];
  struct meta_state s = meta_t_state(m, 5), d;
  assert_int_equal(s.nusers, 2);
  sp_state_format(hb_start_format(&h, META_FORMAT_V6), &s, META_FORMAT_V6);
  assert_int_equal(meta_state_decode(h.sb.data, h.sb.size, &d), CHORUS_OK);
  hb_free(&h);
  assert_int_equal(d.nusers, 0);
  s.nusers = 0, s.users = NULL;
  memset(&s.keyring, 0, sizeof s.keyring); /* V8's */
  s.nacks = 0, s.acks = NULL;
  assert_true(meta_t_state_eq(&s, &d));
  meta_state_free(&d);
  /* Bad user tables, each refused both ways. */
  for (int bad = 0; bad < 7; bad++) {
    struct meta_user us[2] = {meta_t_user("a"), meta_t_user("b")};
    s = meta_t_state(m, 5);
    s.users = us;
    s.nusers = 2;
    us[0].grants[0] = (struct meta_grant){META_ROLE_READ, 0};
    us[0].grants[1] = (struct meta_grant){META_ROLE_ADMIN, 3};
    us[0].ngrants = 2;
    switch (bad) {
    case 0:
      strcpy(us[1].name, "a");
      break; /* duplicate name */
    case 1:
      strcpy(us[1].name, "b c");
      break; /* not a name */
    case 2:
      us[1].ops = 0;
      break; /* costs */
    case 3:
      us[1].mem_kib = META_USER_MEM_KIB_MAX + 1;
      break;
    case 4:
      us[0].grants[1].ks_id = 4;
      break; /* no such keyspace */
    case 5:
      us[0].grants[1] = us[0].grants[0];
      break; /* a duplicate grant */
    default:
      us[0].grants[0].role = META_ROLE_MAX + 1;
      break; /* no such role */
    }
    uint8_t *buf;
    size_t len;
    assert_int_equal(meta_state_encode(&s, &buf, &len), CHORUS_EINVAL);
    sp_state(hb_start(&h), &s);
    assert_int_equal(meta_state_decode(h.sb.data, h.sb.size, &d),
                     CHORUS_EMALFORMED);
    hb_free(&h);
  }
}

/* What the release before keyspaces wrote (META_FORMAT_V5) is still read,
 * with no keyspace; the keyspace commands exist only from V6 on, and a V6
 * state's keyspaces are judged: sorted by name, ids unique and below
 * next_ks_id, settings in range. */
static void test_v5_is_read(void **state) {
  (void)state;
  struct hb h;
  commands_in_format(META_FORMAT_V5, META_T_NCMD_V5);
  struct meta_member m[8];
  struct meta_state s = meta_t_state(m, 5), d;
  assert_int_equal(s.nks, 2);
  sp_state_format(hb_start_format(&h, META_FORMAT_V5), &s, META_FORMAT_V5);
  assert_int_equal(meta_state_decode(h.sb.data, h.sb.size, &d), CHORUS_OK);
  hb_free(&h);
  assert_int_equal(d.nks, 0);
  assert_int_equal(d.next_ks_id, 0);
  s.nks = 0, s.keyspaces = NULL, s.next_ks_id = 0;
  s.nusers = 0, s.users = NULL;
  memset(&s.keyring, 0, sizeof s.keyring); /* V8's */
  s.nacks = 0, s.acks = NULL;
  assert_true(meta_t_state_eq(&s, &d));
  meta_state_free(&d);
  /* Bad keyspace tables, each refused both ways. */
  for (int bad = 0; bad < 6; bad++) {
    struct meta_keyspace ks[2] = {meta_t_keyspace("a", 1, META_KS_KV),
                                  meta_t_keyspace("b", 2, META_KS_SET)};
    s = meta_t_state(m, 5);
    s.keyspaces = ks;
    s.nks = 2;
    s.next_ks_id = 3;
    switch (bad) {
    case 0:
      strcpy(ks[1].name, "a");
      break; /* duplicate name */
    case 1:
      ks[1].id = 1;
      break; /* duplicate id */
    case 2:
      s.next_ks_id = 2;
      break; /* an id not below next */
    case 3:
      ks[0].type = META_KS_TYPE_MAX + 1;
      break;
    case 4:
      ks[0].siblings_warn = 30;
      break; /* warn above max */
    default:
      strcpy(ks[0].name, "default");
      break;
    }
    uint8_t *buf;
    size_t len;
    assert_int_equal(meta_state_encode(&s, &buf, &len), CHORUS_EINVAL);
    sp_state(hb_start(&h), &s);
    assert_int_equal(hb_state(&h), CHORUS_EMALFORMED);
  }
}

static void test_msg_refused(void **state) {
  (void)state;
  const int E = CHORUS_EINVAL, M = CHORUS_EMALFORMED;
  struct meta_t_sample s;
#define FRESH(i) meta_t_msg(&s, (i))
  FRESH(8), s.msg.from = 0, refused_msg(&s.msg, E, M);
  FRESH(9), s.msg.from = 0, refused_msg(&s.msg, E, M);
  FRESH(8), s.msg.type = 0, refused_msg(&s.msg, E, M);
  FRESH(11), s.msg.type = META_MSG_MAX + 1, refused_msg(&s.msg, E, M);
  FRESH(8), s.msg.raft.type = 0, refused_msg(&s.msg, E, M);
  FRESH(8), s.msg.raft.type = RAFT_IO_TIMEOUT_NOW + 1;
  refused_msg(&s.msg, E, M);
  FRESH(0), s.entries[1].type = 0, refused_msg(&s.msg, E, M);
  FRESH(0), s.entries[2].type = RAFT_CHANGE + 1, refused_msg(&s.msg, E, M);
  FRESH(4), s.msg.raft.request_vote_result.pre_vote = 3;
  refused_msg(&s.msg, E, M);
  FRESH(6), s.servers[1].role = RAFT_SPARE + 1, refused_msg(&s.msg, E, M);
  FRESH(6), s.servers[1].role = -1, refused_msg(&s.msg, E, M);
  FRESH(6), s.servers[2].id = 0, refused_msg(&s.msg, E, M);
  FRESH(6), s.servers[2].id = s.servers[0].id, refused_msg(&s.msg, E, M);
  FRESH(6), strcpy(s.addr[2], s.addr[1]), refused_msg(&s.msg, E, M);
  FRESH(6), memset(s.addr[0], 'a', META_ADDR_MAX), refused_msg(&s.msg, E, M);
  FRESH(11), s.msg.status = 1, refused_msg(&s.msg, E, M);
  FRESH(11), memset(s.msg.text, 't', sizeof s.msg.text);
  refused_msg(&s.msg, E, M);
  FRESH(9), s.msg.cmd.member.state = 0, refused_msg(&s.msg, E, M);
  FRESH(10), s.msg.cmd.type = 0, refused_msg(&s.msg, E, M);
#undef FRESH
  /* Only the encoder can be given NULL pointers or a NULL address. */
  uint8_t *buf = NULL;
  size_t len;
  meta_t_msg(&s, 0);
  s.entries[0].buf.base = NULL;
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), E);
  meta_t_msg(&s, 0);
  s.msg.raft.append_entries.entries = NULL;
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), E);
  meta_t_msg(&s, 6);
  s.msg.raft.install_snapshot.conf.servers = NULL;
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), E);
  meta_t_msg(&s, 6);
  s.servers[1].address = NULL;
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), E);
  meta_t_msg(&s, 6);
  s.msg.raft.install_snapshot.data.base = NULL;
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), E);
  assert_null(buf);
}

/* ------------------------------------------------------------------------
 * Limits: ETOOBIG both ways
 * ------------------------------------------------------------------------ */

static void test_limits(void **state) {
  (void)state;
  const int T = CHORUS_ETOOBIG;
  struct meta_t_sample s;
  uint8_t *buf = NULL;
  size_t len;

  /* Entries: META_MAX_ENTRIES is fine, one more is not. */
  static struct raft_entry many[META_MAX_ENTRIES + 1];
  for (size_t i = 0; i <= META_MAX_ENTRIES; i++)
    many[i] = (struct raft_entry){1, RAFT_BARRIER, {NULL, 0}, NULL};
  meta_t_msg(&s, 0);
  s.msg.raft.append_entries.entries = many;
  s.msg.raft.append_entries.n_entries = META_MAX_ENTRIES;
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), CHORUS_OK);
  struct meta_msg d;
  assert_int_equal(meta_msg_decode(buf, len, &d), CHORUS_OK);
  assert_int_equal(d.raft.append_entries.n_entries, META_MAX_ENTRIES);
  meta_msg_release(&d);
  chorus_free(buf);
  buf = NULL;
  s.msg.raft.append_entries.n_entries = META_MAX_ENTRIES + 1;
  refused_msg(&s.msg, T, T);

  /* An entry's data, a snapshot's data, a whole message. */
  size_t big_len = META_MAX_STATE_BYTES + 1;
  uint8_t *big = calloc(1, big_len);
  assert_non_null(big);
  meta_t_msg(&s, 0);
  s.entries[2].buf = (struct raft_buffer){big, META_MAX_ENTRY_BYTES};
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), CHORUS_OK);
  assert_int_equal(dec_msg(buf, len), CHORUS_OK);
  chorus_free(buf);
  buf = NULL;
  s.entries[2].buf.len = META_MAX_ENTRY_BYTES + 1;
  refused_msg(&s.msg, T, T);
  meta_t_msg(&s, 6);
  s.msg.raft.install_snapshot.data = (struct raft_buffer){big, big_len - 1};
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), CHORUS_OK);
  assert_int_equal(dec_msg(buf, len), CHORUS_OK);
  chorus_free(buf);
  buf = NULL;
  s.msg.raft.install_snapshot.data.len = big_len;
  refused_msg(&s.msg, T, T);
  /* Twelve entries of 1 MiB: each fine, the message too big. */
  struct raft_entry twelve[12];
  for (int i = 0; i < 12; i++)
    twelve[i] = (struct raft_entry){1, RAFT_COMMAND, {big, 1u << 20}, NULL};
  meta_t_msg(&s, 0);
  s.msg.raft.append_entries.entries = twelve;
  s.msg.raft.append_entries.n_entries = 12;
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), T);
  assert_null(buf);

  /* Servers: refused at the count, before any is looked at. */
  meta_t_msg(&s, 6);
  s.msg.raft.install_snapshot.conf.n = META_MAX_MEMBERS + 1;
  assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), T);
  struct hb h;
  msgpack_packer *pk = hb_start(&h);
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint64(pk, META_MSG_RAFT);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_array(pk, 7);
  msgpack_pack_uint64(pk, RAFT_IO_INSTALL_SNAPSHOT);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_array(pk, META_MAX_MEMBERS + 1);
  assert_int_equal(hb_msg(&h), T);
  /* Data and entries declared over the limit, without the bytes. */
  pk = hb_start(&h);
  meta_t_msg(&s, 7);
  sp_msg(pk, &s.msg);
  h.sb.size -= 2; /* the empty bin8 at the end */
  msgpack_pack_bin(pk, META_MAX_STATE_BYTES + 1);
  assert_int_equal(hb_msg(&h), T);
  pk = hb_start(&h);
  meta_t_msg(&s, 1);
  sp_msg(pk, &s.msg);
  h.sb.size -= 1; /* the empty entries array */
  msgpack_pack_array(pk, 1);
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, RAFT_COMMAND);
  msgpack_pack_bin(pk, META_MAX_ENTRY_BYTES + 1);
  assert_int_equal(hb_msg(&h), T);
  pk = hb_start(&h);
  sp_msg(pk, &s.msg);
  h.sb.size -= 1;
  msgpack_pack_array(pk, META_MAX_ENTRIES + 1);
  assert_int_equal(hb_msg(&h), T);

  /* Inputs longer than their kind's limit. */
  uint8_t *huge = calloc(1, META_MAX_MSG_BYTES + 1);
  assert_non_null(huge);
  huge[0] = META_FORMAT_V1;
  assert_int_equal(dec_cmd(huge, META_MAX_CMD_BYTES + 1), T);
  assert_int_equal(dec_state(huge, META_MAX_STATE_BYTES + 1), T);
  assert_int_equal(dec_msg(huge, META_MAX_MSG_BYTES + 1), T);
  free(huge);
  free(big);
}

/* ------------------------------------------------------------------------
 * Bytes that are not an encoding at all
 * ------------------------------------------------------------------------ */

static void test_wrong_shapes(void **state) {
  (void)state;
  const int M = CHORUS_EMALFORMED;
  struct hb h;
  msgpack_packer *pk;
  assert_int_equal(dec_cmd(NULL, 0), M);
  assert_int_equal(dec_state(NULL, 0), M);
  assert_int_equal(dec_msg(NULL, 0), M);

  /* The top level is not an array. */
  pk = hb_start(&h), msgpack_pack_map(pk, 0), assert_int_equal(hb_cmd(&h), M);
  pk = hb_start(&h), msgpack_pack_nil(pk), assert_int_equal(hb_state(&h), M);
  pk = hb_start(&h), msgpack_pack_uint64(pk, 1);
  assert_int_equal(hb_msg(&h), M);
  /* Wrong element counts. */
  pk = hb_start(&h), msgpack_pack_array(pk, 3), msgpack_pack_uint64(pk, 3);
  msgpack_pack_uint64(pk, 7), msgpack_pack_uint64(pk, 7); /* REMOVE of 3 */
  assert_int_equal(hb_cmd(&h), M);
  pk = hb_start(&h), msgpack_pack_array(pk, 0), assert_int_equal(hb_cmd(&h), M);
  /* A string for an integer, an integer for a string, nil, a float, a
   * negative integer, an integer for a bool, a map for the member. */
  pk = hb_start_format(&h, META_FORMAT_V1), msgpack_pack_array(pk, 3);
  msgpack_pack_uint64(pk, 2);
  msgpack_pack_str_with_body(pk, "7", 1), msgpack_pack_uint64(pk, 2);
  assert_int_equal(hb_cmd(&h), M);
  pk = hb_start_format(&h, META_FORMAT_V1), msgpack_pack_array(pk, 3);
  msgpack_pack_uint64(pk, 2);
  msgpack_pack_nil(pk), msgpack_pack_uint64(pk, 2);
  assert_int_equal(hb_cmd(&h), M);
  pk = hb_start_format(&h, META_FORMAT_V1), msgpack_pack_array(pk, 3);
  msgpack_pack_uint64(pk, 2);
  msgpack_pack_double(pk, 7.0), msgpack_pack_uint64(pk, 2);
  assert_int_equal(hb_cmd(&h), M);
  pk = hb_start_format(&h, META_FORMAT_V1), msgpack_pack_array(pk, 3);
  msgpack_pack_uint64(pk, 2);
  msgpack_pack_int64(pk, -7), msgpack_pack_uint64(pk, 2);
  assert_int_equal(hb_cmd(&h), M);
  pk = hb_start_format(&h, META_FORMAT_V1), msgpack_pack_array(pk, 2);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_map(pk, 0), assert_int_equal(hb_cmd(&h), M);
  struct meta_cmd join = meta_t_cmd(0);
  pk = hb_start_format(&h, META_FORMAT_V1), msgpack_pack_array(pk, 2);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_array(pk, 8), msgpack_pack_uint64(pk, join.member.id);
  msgpack_pack_uint64(pk, 5); /* the name */
  for (int i = 0; i < 6; i++)
    msgpack_pack_uint64(pk, 1);
  assert_int_equal(hb_cmd(&h), M);
  struct meta_t_sample s;
  meta_t_msg(&s, 3);
  pk = hb_start(&h), msgpack_pack_array(pk, 4);
  msgpack_pack_uint64(pk, META_MSG_RAFT), msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 2), msgpack_pack_array(pk, 7);
  msgpack_pack_uint64(pk, RAFT_IO_REQUEST_VOTE);
  for (int i = 0; i < 4; i++)
    msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 1), msgpack_pack_false(pk); /* 1 for a bool */
  assert_int_equal(hb_msg(&h), M);
  /* A bin for a string, a string for a bin. */
  meta_t_msg(&s, 11);
  pk = hb_start(&h), sp_msg(pk, &s.msg);
  h.sb.data[h.sb.size - strlen(s.msg.text) - 1] = (char)0xc4; /* fixstr->bin8 */
  assert_int_equal(hb_msg(&h), M);
  meta_t_msg(&s, 7);
  pk = hb_start(&h), sp_msg(pk, &s.msg);
  h.sb.data[h.sb.size - 2] = (char)0xa1; /* bin8 0 -> fixstr 1 */
  assert_int_equal(hb_msg(&h), M);
  /* A NUL inside a string would not survive the round trip. */
  pk = hb_start(&h), msgpack_pack_array(pk, 4);
  msgpack_pack_uint64(pk, META_MSG_PROPOSE_REPLY);
  msgpack_pack_uint64(pk, 1), msgpack_pack_uint64(pk, 2);
  msgpack_pack_array(pk, 5), msgpack_pack_uint64(pk, 1);
  msgpack_pack_int64(pk, -1), msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 1), msgpack_pack_str_with_body(pk, "a\0b", 3);
  assert_int_equal(hb_msg(&h), M);
  /* The reserved byte, and a count no input could back. */
  const uint8_t reserved[] = {META_FORMAT_V1, 0x93, 0x05, 0xc1, 0x01};
  assert_int_equal(dec_cmd(reserved, sizeof reserved), M);
  const uint8_t inflated[] = {META_FORMAT_V1, 0xdd, 0xff, 0xff, 0xff, 0xff};
  assert_int_equal(dec_cmd(inflated, sizeof inflated), M);
  assert_int_equal(dec_state(inflated, sizeof inflated), M);
  assert_int_equal(dec_msg(inflated, sizeof inflated), M);
  /* A JOIN whose name is a str32 of 4 GiB. */
  const uint8_t str32[] = {META_FORMAT_V1, 0x92, 0x01, 0x98, 0x01, 0xdb, 0xff,
                           0xff,           0xff, 0xff, 0x00, 0x00, 0x00};
  assert_int_equal(dec_cmd(str32, sizeof str32), M);
  /* A status below INT32_MIN. */
  pk = hb_start(&h), msgpack_pack_array(pk, 4);
  msgpack_pack_uint64(pk, META_MSG_PROPOSE_REPLY);
  msgpack_pack_uint64(pk, 1), msgpack_pack_uint64(pk, 2);
  msgpack_pack_array(pk, 5), msgpack_pack_uint64(pk, 1);
  msgpack_pack_int64(pk, (int64_t)INT32_MIN - 1), msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 1), msgpack_pack_str_with_body(pk, "", 0);
  assert_int_equal(hb_msg(&h), M);
}

/* Integers in any msgpack format are read by value: a signed format with
 * a non-negative value is an unsigned integer (other packers write
 * those). */
static void test_integer_formats(void **state) {
  (void)state;
  const uint8_t note[] = {META_FORMAT_V1, 0x93, 0xd0, 0x05, /* int8 5 */
                          0xd3,           0,    0,    0,    0, 0, 0, 0,
                          0x07,                        /* int64 7 */
                          0xcd,           0x01, 0x00}; /* uint16 256 */
  struct meta_cmd c;
  assert_int_equal(meta_cmd_decode(note, sizeof note, &c), CHORUS_OK);
  assert_int_equal(c.type, META_CMD_NOTE);
  assert_int_equal(c.note_key, 7);
  assert_int_equal(c.note_value, 256);
  /* A type that does not fit its field is out of range, not truncated. */
  const uint8_t bad[] = {META_FORMAT_V1, 0x93, 0xcd, 0x01, 0x05, 0x07, 0x07};
  assert_int_equal(dec_cmd(bad, sizeof bad), CHORUS_EMALFORMED);
}

/* ------------------------------------------------------------------------
 * Out of memory: chorus's allocator, then raft's
 * ------------------------------------------------------------------------ */

static void test_oom_chorus(void **state) {
  (void)state;
  struct meta_member m[8];
  struct meta_state s = meta_t_state(m, 8);
  uint8_t *buf = NULL;
  size_t len = 0;
  long k;
  /* Encoding a state: the name check's scratch, then the buffer. */
  for (k = 0;; k++) {
    chorus_alloc_fail_after(k);
    int rc = meta_state_encode(&s, &buf, &len);
    chorus_alloc_fail_after(-1);
    if (rc == CHORUS_OK)
      break;
    assert_int_equal(rc, CHORUS_ENOMEM);
    assert_null(buf);
  }
  assert_int_equal(k, 2);
  /* Decoding it: the members, the keyspaces, the users, the keyring's
   * reports, then the scratch. */
  for (k = 0;; k++) {
    struct meta_state d;
    chorus_alloc_fail_after(k);
    int rc = meta_state_decode(buf, len, &d);
    chorus_alloc_fail_after(-1);
    if (rc == CHORUS_OK) {
      assert_true(meta_t_state_eq(&s, &d));
      meta_state_free(&d);
      break;
    }
    assert_int_equal(rc, CHORUS_ENOMEM);
    assert_true(all_zero(&d, sizeof d));
  }
  assert_int_equal(k, 5); /* members, keyspaces, users, reports */
  chorus_free(buf);
  buf = NULL;
  /* Commands and messages: the buffer only. */
  struct meta_cmd c = meta_t_cmd(0);
  chorus_alloc_fail_after(0);
  assert_int_equal(meta_cmd_encode(&c, &buf, &len), CHORUS_ENOMEM);
  chorus_alloc_fail_after(-1);
  assert_null(buf);
  for (int i = 0; i < META_T_NMSG; i++) {
    struct meta_t_sample x;
    meta_t_msg(&x, i);
    chorus_alloc_fail_after(0);
    assert_int_equal(meta_msg_encode(&x.msg, &buf, &len), CHORUS_ENOMEM);
    chorus_alloc_fail_after(-1);
    assert_null(buf);
  }
}

/* raft's allocator with a failure counter, like chorus_alloc_fail_after. */
static long raft_budget = -1;
static long raft_calls;

static bool raft_fails(void) {
  raft_calls++;
  if (raft_budget < 0)
    return false;
  if (raft_budget == 0)
    return true;
  raft_budget--;
  return false;
}

static void *t_malloc(void *data, size_t n) {
  (void)data;
  return raft_fails() ? NULL : malloc(n);
}

static void t_free(void *data, void *p) {
  (void)data;
  free(p);
}

static void *t_calloc(void *data, size_t n, size_t size) {
  (void)data;
  return raft_fails() ? NULL : calloc(n, size);
}

static void *t_realloc(void *data, void *p, size_t n) {
  (void)data;
  return raft_fails() ? NULL : realloc(p, n);
}

static void *t_aligned_alloc(void *data, size_t align, size_t n) {
  (void)data;
  return raft_fails() ? NULL : aligned_alloc(align, n);
}

static void t_aligned_free(void *data, size_t align, void *p) {
  (void)data;
  (void)align;
  free(p);
}

static struct raft_heap failing_heap = {.malloc = t_malloc,
                                        .free = t_free,
                                        .calloc = t_calloc,
                                        .realloc = t_realloc,
                                        .aligned_alloc = t_aligned_alloc,
                                        .aligned_free = t_aligned_free};

static void test_oom_raft(void **state) {
  (void)state;
  raft_heap_set(&failing_heap);
  /* AppendEntries: the array, the batch. InstallSnapshot: per server the
   * array grows and the address is copied, then the data. */
  const int which[] = {0, 6, 7};
  const long need[] = {2, 7, 1};
  for (size_t w = 0; w < sizeof which / sizeof which[0]; w++) {
    struct meta_t_sample s;
    meta_t_msg(&s, which[w]);
    uint8_t *buf;
    size_t len;
    assert_int_equal(meta_msg_encode(&s.msg, &buf, &len), CHORUS_OK);
    long k;
    for (k = 0;; k++) {
      struct meta_msg d;
      raft_budget = k;
      raft_calls = 0;
      int rc = meta_msg_decode(buf, len, &d);
      raft_budget = -1;
      if (rc == CHORUS_OK) {
        assert_true(meta_t_msg_eq(&s.msg, &d));
        meta_msg_release(&d);
        break;
      }
      assert_int_equal(rc, CHORUS_ENOMEM);
      assert_true(all_zero(&d, sizeof d));
    }
    assert_int_equal(k, need[w]);
    chorus_free(buf);
  }
  raft_heap_set_default();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cmd_roundtrip),
      cmocka_unit_test(test_cmd_every_member_state),
      cmocka_unit_test(test_state_roundtrip),
      cmocka_unit_test(test_state_largest),
      cmocka_unit_test(test_msg_roundtrip),
      cmocka_unit_test(test_msg_extremes),
      cmocka_unit_test(test_entries_one_batch),
      cmocka_unit_test(test_snapshot_ownership),
      cmocka_unit_test(test_cmd_refused),
      cmocka_unit_test(test_state_refused),
      cmocka_unit_test(test_v1_is_read),
      cmocka_unit_test(test_v2_is_read),
      cmocka_unit_test(test_v3_is_read),
      cmocka_unit_test(test_v4_is_read),
      cmocka_unit_test(test_v5_is_read),
      cmocka_unit_test(test_v6_is_read),
      cmocka_unit_test(test_v7_is_read),
      cmocka_unit_test(test_msg_refused),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_wrong_shapes),
      cmocka_unit_test(test_integer_formats),
      cmocka_unit_test(test_oom_chorus),
      cmocka_unit_test(test_oom_raft),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
