/* swim_codec.c: the compact gossip codec (a bounded hand-written reader, no
 * msgpack) and the XChaCha20-Poly1305 envelope around it. */
#include <string.h>

#include <sodium.h>

#include "swim.h"

/* ------------------------------------------------------------------------
 * Writing. The caller sized the buffer with the *_size functions.
 * ------------------------------------------------------------------------ */

static uint8_t *put_u8(uint8_t *p, uint8_t v) {
  *p = v;
  return p + 1;
}

static uint8_t *put_le(uint8_t *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
  return p + bytes;
}

static uint8_t *put_str(uint8_t *p, const char *s) {
  size_t n = strlen(s);
  *p++ = (uint8_t)n;
  memcpy(p, s, n);
  return p + n;
}

static size_t body_size(const struct swim_msg *m) {
  switch (m->kind) {
  case SWIM_MSG_PING:
    return 8 + 8 + 4;
  case SWIM_MSG_ACK:
    return 24;
  case SWIM_MSG_PING_REQ:
    return 8 + 1 + strlen(m->target_addr);
  case SWIM_MSG_NACK:
    return 0;
  case SWIM_MSG_PUSH_PULL:
    return 1;
  case SWIM_MSG_GOSSIP:
    return 0;
  }
  return 0;
}

size_t swim_codec_header_size(const struct swim_msg *m) {
  return 1 + 1 + 8 + 4 + body_size(m) + 2;
}

size_t swim_codec_update_size(const struct swim_update *u) {
  size_t n = 1 + 8 + 4;
  if (u->kind == SWIM_UPD_ALIVE)
    n += 3 + strlen(u->meta.addr) + strlen(u->meta.dc) + strlen(u->meta.rack) +
         2 + 1;
  else
    n += 8;
  return n;
}

size_t swim_codec_encode_header(const struct swim_msg *m, uint8_t *buf) {
  uint8_t *p = buf;
  p = put_u8(p, SWIM_CODEC_VERSION);
  p = put_u8(p, (uint8_t)m->kind);
  p = put_le(p, m->sender, 8);
  p = put_le(p, m->seq, 4);
  switch (m->kind) {
  case SWIM_MSG_PING:
    p = put_le(p, m->target, 8);
    p = put_le(p, (uint64_t)m->t1, 8);
    p = put_le(p, m->target_inc, 4);
    break;
  case SWIM_MSG_ACK:
    p = put_le(p, (uint64_t)m->t1, 8);
    p = put_le(p, (uint64_t)m->t2, 8);
    p = put_le(p, (uint64_t)m->t3, 8);
    break;
  case SWIM_MSG_PING_REQ:
    p = put_le(p, m->target, 8);
    p = put_str(p, m->target_addr);
    break;
  case SWIM_MSG_NACK:
  case SWIM_MSG_GOSSIP:
    break;
  case SWIM_MSG_PUSH_PULL:
    p = put_u8(p, m->flags);
    break;
  }
  p = put_le(p, m->nupdates, 2);
  return (size_t)(p - buf);
}

size_t swim_codec_encode_update(const struct swim_update *u, uint8_t *buf) {
  uint8_t *p = buf;
  p = put_u8(p, (uint8_t)u->kind);
  p = put_le(p, u->id, 8);
  p = put_le(p, u->incarnation, 4);
  if (u->kind == SWIM_UPD_ALIVE) {
    p = put_str(p, u->meta.addr);
    p = put_str(p, u->meta.dc);
    p = put_str(p, u->meta.rack);
    p = put_le(p, u->meta.vnodes, 2);
    p = put_u8(p, (uint8_t)u->meta.ownership);
  } else {
    p = put_le(p, u->from, 8);
  }
  return (size_t)(p - buf);
}

/* ------------------------------------------------------------------------
 * Reading: struct rd never reads past its end; the first failure sticks.
 * ------------------------------------------------------------------------ */

struct rd {
  const uint8_t *p;
  size_t n, off;
  const char *err; /* first failure, or NULL */
};

static uint64_t get_le(struct rd *r, int bytes, const char *what) {
  if (r->err)
    return 0;
  if (r->n - r->off < (size_t)bytes) {
    r->err = what;
    return 0;
  }
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--)
    v = (v << 8) | r->p[r->off + (size_t)i];
  r->off += (size_t)bytes;
  return v;
}

/* A str8 into @dst (room for @cap bytes, NUL included). */
static void get_str(struct rd *r, char *dst, size_t cap, const char *what) {
  size_t len = (size_t)get_le(r, 1, what);
  if (r->err)
    return;
  if (len >= cap || r->n - r->off < len) {
    r->err = what;
    return;
  }
  if (len > 0 && memchr(r->p + r->off, 0, len) != NULL) {
    r->err = what;
    return;
  }
  memcpy(dst, r->p + r->off, len);
  dst[len] = '\0';
  r->off += len;
}

static void read_update(struct rd *r, struct swim_update *u) {
  memset(u, 0, sizeof *u);
  uint64_t kind = get_le(r, 1, "update kind");
  if (!r->err && (kind < SWIM_UPD_ALIVE || kind > SWIM_UPD_REMOVE))
    r->err = "update kind";
  u->kind = (enum swim_update_kind)kind;
  u->id = get_le(r, 8, "update id");
  u->incarnation = (uint32_t)get_le(r, 4, "update incarnation");
  if (r->err)
    return;
  if (u->kind == SWIM_UPD_ALIVE) {
    get_str(r, u->meta.addr, sizeof u->meta.addr, "alive address");
    get_str(r, u->meta.dc, sizeof u->meta.dc, "alive datacenter");
    get_str(r, u->meta.rack, sizeof u->meta.rack, "alive rack");
    u->meta.vnodes = (uint32_t)get_le(r, 2, "alive vnodes");
    uint64_t own = get_le(r, 1, "alive ownership");
    if (!r->err && u->meta.vnodes > RING_MAX_VNODES)
      r->err = "alive vnodes";
    if (!r->err && own > RING_LEFT)
      r->err = "alive ownership";
    u->meta.ownership = (enum ring_node_state)own;
  } else {
    u->from = get_le(r, 8, "update from");
  }
}

int swim_codec_decode(const void *buf, size_t len, struct swim_msg *out,
                      char *errmsg) {
  struct rd r = {.p = buf, .n = buf ? len : 0};
  memset(out, 0, sizeof *out);
  uint64_t version = get_le(&r, 1, "version");
  if (r.err)
    return chorus_errf(errmsg, CHORUS_EMALFORMED, "swim packet: empty");
  if (version != SWIM_CODEC_VERSION)
    return chorus_errf(errmsg, CHORUS_EVERSION,
                       "swim packet: version %u, want %u", (unsigned)version,
                       SWIM_CODEC_VERSION);
  uint64_t kind = get_le(&r, 1, "kind");
  if (!r.err && (kind < SWIM_MSG_PING || kind > SWIM_MSG_GOSSIP))
    r.err = "kind";
  out->kind = (enum swim_msg_kind)kind;
  out->sender = get_le(&r, 8, "sender");
  out->seq = (uint32_t)get_le(&r, 4, "seq");
  if (!r.err) {
    switch (out->kind) {
    case SWIM_MSG_PING:
      out->target = get_le(&r, 8, "ping target");
      out->t1 = (int64_t)get_le(&r, 8, "ping t1");
      out->target_inc = (uint32_t)get_le(&r, 4, "ping incarnation");
      break;
    case SWIM_MSG_ACK:
      out->t1 = (int64_t)get_le(&r, 8, "ack t1");
      out->t2 = (int64_t)get_le(&r, 8, "ack t2");
      out->t3 = (int64_t)get_le(&r, 8, "ack t3");
      break;
    case SWIM_MSG_PING_REQ:
      out->target = get_le(&r, 8, "ping-req target");
      get_str(&r, out->target_addr, sizeof out->target_addr,
              "ping-req address");
      break;
    case SWIM_MSG_NACK:
    case SWIM_MSG_GOSSIP:
      break;
    case SWIM_MSG_PUSH_PULL:
      out->flags = (uint8_t)get_le(&r, 1, "push/pull flags");
      if (!r.err && (out->flags & ~(SWIM_PP_REPLY | SWIM_PP_JOIN)) != 0)
        r.err = "push/pull flags";
      break;
    }
  }
  out->nupdates = (uint16_t)get_le(&r, 2, "update count");
  if (r.err)
    return chorus_errf(errmsg, CHORUS_EMALFORMED, "swim packet: bad %s", r.err);
  out->upd = r.p + r.off;
  out->upd_len = r.n - r.off;
  out->upd_left = out->nupdates;
  /* Validate every update now, so that the cursor never meets a bad one. */
  for (unsigned i = 0; i < out->nupdates; i++) {
    struct swim_update u;
    read_update(&r, &u);
    if (r.err)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "swim packet: update %u of %u: bad %s", i,
                         (unsigned)out->nupdates, r.err);
  }
  if (r.off != r.n)
    return chorus_errf(errmsg, CHORUS_EMALFORMED,
                       "swim packet: %zu trailing bytes", r.n - r.off);
  return CHORUS_OK;
}

int swim_codec_next_update(struct swim_msg *m, struct swim_update *u) {
  if (m->upd_left == 0)
    return 0;
  struct rd r = {.p = m->upd, .n = m->upd_len};
  read_update(&r, u);
  if (r.err) { /* cannot happen after a successful decode */
    m->upd_left = 0;
    return 0;
  }
  m->upd += r.off;
  m->upd_len -= r.off;
  m->upd_left--;
  return 1;
}

/* ------------------------------------------------------------------------
 * The envelope
 * ------------------------------------------------------------------------ */

/* AD = version byte + cluster name: a packet of another cluster, or of a
 * future envelope version, fails authentication even under the same key. */
static size_t make_ad(const char *cluster, uint8_t *ad) {
  size_t n = strnlen(cluster, SWIM_CLUSTER_MAX - 1);
  ad[0] = 1;
  memcpy(ad + 1, cluster, n);
  return n + 1;
}

size_t swim_seal(const uint8_t key[SWIM_KEY_BYTES], const uint8_t nonce[24],
                 const char *cluster, const uint8_t *plain, size_t plen,
                 uint8_t *out) {
  uint8_t ad[SWIM_CLUSTER_MAX + 1];
  size_t adlen = make_ad(cluster, ad);
  out[0] = 1;
  memcpy(out + 1, nonce, 24);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out + 25, &clen, plain, plen, ad,
                                             adlen, NULL, nonce, key);
  return 25 + (size_t)clen;
}

int swim_open(const uint8_t (*keys)[SWIM_KEY_BYTES], size_t nkeys,
              const char *cluster, const uint8_t *sealed, size_t len,
              uint8_t *plain, size_t *plen) {
  if (sealed == NULL || len < SWIM_SEAL_OVERHEAD || sealed[0] != 1)
    return CHORUS_EMALFORMED;
  uint8_t ad[SWIM_CLUSTER_MAX + 1];
  size_t adlen = make_ad(cluster, ad);
  for (size_t i = 0; i < nkeys; i++) {
    unsigned long long n = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &n, NULL, sealed + 25,
                                                   len - 25, ad, adlen,
                                                   sealed + 1, keys[i]) == 0) {
      *plen = (size_t)n;
      return CHORUS_OK;
    }
  }
  return CHORUS_EAUTH;
}
