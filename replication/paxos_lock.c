/* paxos_lock.c: lock and fenced records, and the lock conditions and
 * FENCED_SET judged on them (paxos.h, LOCKS AND FENCING; decide() in
 * paxos.c calls paxos__judge_record). Pure, as the rest of paxos. */
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "paxos.h"
#include "paxos_int.h"

/* ------------------------------------------------------------------------
 * Lock and fenced records (paxos.h, LOCKS AND FENCING)
 * ------------------------------------------------------------------------ */

static const uint8_t LOCK_MAGIC[4] = {0xc1, 'L', 'C', 'K'};
static const uint8_t FENCED_MAGIC[4] = {0xc1, 'F', 'N', 'C'};
#define RECORD_FORMAT_V1 1u

static bool is_magic(const uint8_t *b, size_t len, const uint8_t magic[4]) {
  return len >= 4 && memcmp(b, magic, 4) == 0;
}

bool paxos__is_fenced(struct paxos_value v) {
  return v.present && is_magic(v.bytes, v.len, FENCED_MAGIC);
}

bool paxos_is_record(const uint8_t *bytes, size_t len) {
  return is_magic(bytes, len, LOCK_MAGIC) || is_magic(bytes, len, FENCED_MAGIC);
}

int paxos_lock_decode(struct paxos_value v, struct paxos_lock *out) {
  *out = (struct paxos_lock){0};
  if (!v.present)
    return CHORUS_OK; /* never acquired: free, token 0 */
  struct paxos__reader r = {v.bytes, v.len};
  if (!is_magic(r.p, r.left, LOCK_MAGIC) || r.left < 4 + 2)
    return CHORUS_EMALFORMED;
  if (r.p[4] != RECORD_FORMAT_V1 || r.p[5] > 1)
    return CHORUS_EMALFORMED;
  out->held = r.p[5] == 1;
  r.p += 6;
  r.left -= 6;
  if (!paxos__get_u64(&r, &out->token) || !paxos__get_u64(&r, &out->expires) ||
      r.left < 1)
    return CHORUS_EMALFORMED;
  out->holder_len = r.p[0];
  if (r.left - 1 != out->holder_len)
    return CHORUS_EMALFORMED;
  out->holder = r.p + 1;
  return CHORUS_OK;
}

/* lock_encode: @l as a record into @dst (owned). */
static int lock_encode(const struct paxos_lock *l, struct paxos_value *dst) {
  uint8_t buf[4 + 2 + 16 + 1 + PAXOS_LOCK_MAX_HOLDER];
  uint8_t *p = buf;
  memcpy(p, LOCK_MAGIC, 4);
  p += 4;
  *p++ = RECORD_FORMAT_V1;
  *p++ = l->held ? 1 : 0;
  p = paxos__put_u64(paxos__put_u64(p, l->token), l->expires);
  *p++ = (uint8_t)l->holder_len;
  if (l->holder_len > 0)
    memcpy(p, l->holder, l->holder_len);
  p += l->holder_len;
  return paxos__value_set(dst,
                          (struct paxos_value){true, buf, (size_t)(p - buf)});
}

/* A fenced record decoded (names and value borrow from it). */
struct fenced {
  uint8_t n;
  const uint8_t *name[PAXOS_FENCE_MAX];
  uint8_t name_len[PAXOS_FENCE_MAX];
  uint64_t token[PAXOS_FENCE_MAX];
  struct paxos_value value;
};

/* fenced_decode: @v as a fenced record; a value that is no fenced record
 * is one with no fences (a plain CAS key becomes fenced by its first
 * FENCED_SET). Errors: CHORUS_EMALFORMED. */
static int fenced_decode(struct paxos_value v, struct fenced *f) {
  *f = (struct fenced){.value = v};
  if (!v.present || !is_magic(v.bytes, v.len, FENCED_MAGIC))
    return CHORUS_OK;
  struct paxos__reader r = {v.bytes + 4, v.len - 4};
  if (r.left < 2 || r.p[0] != RECORD_FORMAT_V1 || r.p[1] > PAXOS_FENCE_MAX)
    return CHORUS_EMALFORMED;
  f->n = r.p[1];
  r.p += 2;
  r.left -= 2;
  for (uint8_t i = 0; i < f->n; i++) {
    if (r.left < 1 || r.p[0] == 0 || r.left - 1 < r.p[0])
      return CHORUS_EMALFORMED;
    f->name_len[i] = r.p[0];
    f->name[i] = r.p + 1;
    r.p += 1 + r.p[0];
    r.left -= 1 + (size_t)f->name_len[i];
    if (!paxos__get_u64(&r, &f->token[i]))
      return CHORUS_EMALFORMED;
  }
  if (paxos__get_value(&r, &f->value) != NULL || r.left != 0)
    return CHORUS_EMALFORMED;
  return CHORUS_OK;
}

int paxos_fenced_value(struct paxos_value v, struct paxos_value *out,
                       bool *fenced) {
  struct fenced f;
  *fenced = v.present && is_magic(v.bytes, v.len, FENCED_MAGIC);
  int rc = fenced_decode(v, &f);
  *out = rc == CHORUS_OK ? f.value : (struct paxos_value){0};
  return rc;
}

static int fenced_encode(const struct fenced *f, struct paxos_value *dst) {
  size_t need = 4 + 2 + paxos__value_size(f->value);
  for (uint8_t i = 0; i < f->n; i++)
    need += 1 + (size_t)f->name_len[i] + 8;
  uint8_t *buf = chorus_malloc(need);
  if (buf == NULL)
    return CHORUS_ENOMEM;
  uint8_t *p = buf;
  memcpy(p, FENCED_MAGIC, 4);
  p += 4;
  *p++ = RECORD_FORMAT_V1;
  *p++ = f->n;
  for (uint8_t i = 0; i < f->n; i++) {
    *p++ = f->name_len[i];
    memcpy(p, f->name[i], f->name_len[i]);
    p = paxos__put_u64(p + f->name_len[i], f->token[i]);
  }
  p = paxos__put_value(p, f->value);
  int rc =
      paxos__value_set(dst, (struct paxos_value){true, buf, (size_t)(p - buf)});
  chorus_free(buf);
  return rc;
}

static uint64_t sat_add(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* paxos__judge_record (paxos_int.h): a lock condition or FENCED_SET on
 * op->found: whether it applies, and then op->update the record to propose. */
int paxos__judge_record(struct paxos_op *op, bool *applies) {
  const struct paxos_lock_args *a = &op->args;
  *applies = false;
  if (op->cond == PAXOS_FENCED_SET) {
    struct fenced f;
    if (fenced_decode(op->found, &f) != CHORUS_OK) {
      op->refusal = PAXOS_REFUSED_CORRUPT;
      return CHORUS_OK;
    }
    uint8_t i = 0;
    while (i < f.n && !(f.name_len[i] == a->fence_len &&
                        memcmp(f.name[i], a->fence, a->fence_len) == 0))
      i++;
    op->fence_seen = i < f.n ? f.token[i] : 0;
    if (a->token < op->fence_seen) {
      op->refusal = PAXOS_REFUSED_FENCED;
      return CHORUS_OK;
    }
    if (i == f.n) {
      if (f.n == PAXOS_FENCE_MAX) {
        op->refusal = PAXOS_REFUSED_CORRUPT; /* too many lock names */
        return CHORUS_OK;
      }
      f.name[i] = a->fence;
      f.name_len[i] = (uint8_t)a->fence_len;
      f.n++;
    }
    f.token[i] = a->token;
    f.value = op->expected; /* the value to write (paxos_op_init_lock) */
    *applies = true;
    return fenced_encode(&f, &op->update);
  }
  struct paxos_lock l;
  if (paxos_lock_decode(op->found, &l) != CHORUS_OK) {
    op->refusal = PAXOS_REFUSED_CORRUPT;
    return CHORUS_OK;
  }
  bool live = l.held && a->now < l.expires;
  switch (op->cond) {
  case PAXOS_LOCK_ACQUIRE:
    if (l.held && a->now < sat_add(l.expires, a->skew)) {
      op->refusal = PAXOS_REFUSED_HELD;
      return CHORUS_OK;
    }
    if (l.token == UINT64_MAX) {
      op->refusal = PAXOS_REFUSED_CORRUPT; /* tokens never wrap */
      return CHORUS_OK;
    }
    l = (struct paxos_lock){true, l.token + 1, sat_add(a->now, a->ttl),
                            a->holder, a->holder_len};
    break;
  case PAXOS_LOCK_RENEW:
    if (!l.held || l.token != a->token) {
      op->refusal = PAXOS_REFUSED_TOKEN;
      return CHORUS_OK;
    }
    if (!live) {
      op->refusal = PAXOS_REFUSED_EXPIRED;
      return CHORUS_OK;
    }
    l.expires = sat_add(a->now, a->ttl);
    break;
  default: /* PAXOS_LOCK_RELEASE */
    if (!l.held || l.token != a->token) {
      op->refusal = PAXOS_REFUSED_TOKEN;
      return CHORUS_OK;
    }
    l = (struct paxos_lock){false, l.token, 0, NULL, 0};
    break;
  }
  *applies = true;
  return lock_encode(&l, &op->update); /* l borrows op->found, not update */
}
