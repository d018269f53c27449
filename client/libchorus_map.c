/* libchorus_map.c: maps for clients: operations from dotted paths into
 * MAP_UPDATE's encoding, and a MAP_REPLY's map walked or written as JSON. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chorus_alloc.h"
#include "crdt.h"
#include "libchorus_int.h"

_Static_assert(CHORUS_MAP_DEPTH_MAX == CRDT_MAP_DEPTH_MAX &&
                   CHORUS_MAP_NAME_MAX == CRDT_MAP_NAME_MAX &&
                   CHORUS_MAP_OPS_MAX == CRDT_MAP_OPS_MAX,
               "libchorus.h's map limits are crdt.h's");
_Static_assert((int)CHORUS_MAP_REGISTER == (int)CRDT_MAP_REGISTER &&
                   (int)CHORUS_MAP_MAP == (int)CRDT_MAP_MAP &&
                   (int)CHORUS_MAP_OP_REGISTER_SET ==
                       (int)CRDT_MAP_OP_REGISTER_SET &&
                   (int)CHORUS_MAP_OP_REMOVE == (int)CRDT_MAP_OP_REMOVE,
               "libchorus.h's map numbers are crdt.h's (and the wire's)");

/* The field type an operation kind works on (0 for REMOVE). */
static int kind_type(int kind) {
  switch (kind) {
  case CHORUS_MAP_OP_REGISTER_SET:
    return CHORUS_MAP_REGISTER;
  case CHORUS_MAP_OP_COUNTER_ADD:
    return CHORUS_MAP_COUNTER;
  case CHORUS_MAP_OP_SET_ADD:
  case CHORUS_MAP_OP_SET_REMOVE:
    return CHORUS_MAP_SET;
  case CHORUS_MAP_OP_FLAG_ENABLE:
  case CHORUS_MAP_OP_FLAG_DISABLE:
    return CHORUS_MAP_FLAG;
  default:
    return 0;
  }
}

/* One op of the library's into crdt's (borrowing its path). */
static int op_of(const struct chorus_map_op *in, struct crdt_map_op *out,
                 size_t i, char *errmsg) {
  memset(out, 0, sizeof *out);
  if (in->kind < CHORUS_MAP_OP_REGISTER_SET || in->kind > CHORUS_MAP_OP_REMOVE)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "map operation %zu: unknown kind %d", i, in->kind);
  int type = in->type ? in->type : kind_type(in->kind);
  if (type < CHORUS_MAP_REGISTER || type > CHORUS_MAP_MAP)
    return chorus_errf(errmsg, CHORUS_EINVAL, "map operation %zu: %s", i,
                       in->type ? "unknown field type"
                                : "a remove needs the field's type");
  if (in->path == NULL)
    return chorus_errf(errmsg, CHORUS_EINVAL, "map operation %zu: no path", i);
  const char *p = in->path;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if (out->depth == CHORUS_MAP_DEPTH_MAX)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "map operation %zu: path \"%s\" has more than %d "
                         "steps",
                         i, in->path, CHORUS_MAP_DEPTH_MAX);
    if (len == 0 || len > CHORUS_MAP_NAME_MAX)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "map operation %zu: path \"%s\": a name is 1 to %d "
                         "bytes",
                         i, in->path, CHORUS_MAP_NAME_MAX);
    out->path[out->depth++] =
        (struct crdt_map_key){(const uint8_t *)p, (uint32_t)len,
                              dot ? CRDT_MAP_MAP : (enum crdt_map_ftype)type};
    if (!dot)
      break;
    p = dot + 1;
  }
  if (in->len > 0 && in->data == NULL)
    return chorus_errf(errmsg, CHORUS_EINVAL, "map operation %zu: no data", i);
  size_t max = in->kind == CHORUS_MAP_OP_REGISTER_SET ? CHORUS_MAX_VALUE
                                                      : CHORUS_MAX_MEMBER;
  if (in->len > max)
    return chorus_errf(errmsg, CHORUS_ETOOBIG,
                       "map operation %zu: %zu bytes, over the %zu-byte limit",
                       i, in->len, (size_t)max);
  out->kind = (enum crdt_map_op_kind)in->kind;
  out->data = in->data;
  out->len = (uint32_t)in->len;
  out->amount = in->amount;
  /* The node's checks, before sending: the same words without a trip. */
  struct crdt_map probe;
  crdt_map_init(&probe);
  int rc = crdt_map_update(&probe, 1, 1, NULL, out, 1, errmsg);
  crdt_map_free(&probe);
  return rc == CHORUS_ENOMEM ? chorus_errf(errmsg, rc, "out of memory") : rc;
}

int chorus__map_ops_encode(const struct chorus_map_op *ops, size_t n,
                           uint8_t **buf, size_t *len, char *errmsg) {
  *buf = NULL;
  *len = 0;
  if (n == 0 || n > CHORUS_MAP_OPS_MAX || ops == NULL)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "a map update has 1 to %d operations, not %zu",
                       CHORUS_MAP_OPS_MAX, n);
  struct crdt_map_op *o = chorus_calloc(n, sizeof *o);
  if (o == NULL)
    return chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
  int rc = CHORUS_OK;
  for (size_t i = 0; i < n && rc == CHORUS_OK; i++)
    rc = op_of(&ops[i], &o[i], i + 1, errmsg);
  if (rc == CHORUS_OK) {
    size_t cap = crdt_map_ops_encoded_size(o, (uint32_t)n);
    if ((*buf = chorus_malloc(cap)) == NULL)
      rc = chorus_errf(errmsg, CHORUS_ENOMEM, "out of memory");
    else if ((rc = crdt_map_ops_encode(o, (uint32_t)n, *buf, cap, len)) !=
             CHORUS_OK)
      rc = chorus_errf(errmsg, CHORUS_EINVAL, "map operations do not encode");
  }
  if (rc != CHORUS_OK) {
    chorus_free(*buf);
    *buf = NULL;
    *len = 0;
  }
  chorus_free(o);
  return rc;
}

/* ------------------------------------------------------------------------
 * Walking a read
 * ------------------------------------------------------------------------ */

static int walk(const struct crdt_map_field *parent, unsigned depth,
                chorus_map_visit visit, void *arg) {
  for (uint32_t i = 0; i < parent->n; i++) {
    const struct crdt_map_field *f = &parent->sub[i];
    struct chorus_map_field v;
    memset(&v, 0, sizeof v);
    v.depth = depth;
    v.name = f->name;
    v.name_len = f->namelen;
    v.type = (int)f->type;
    struct chorus_bytes *members = NULL;
    int rc = CHORUS_OK;
    switch (f->type) {
    case CRDT_MAP_REGISTER: {
      const struct crdt_map_entry *e = crdt_map_register(f);
      v.value = (struct chorus_bytes){e->value, e->len};
      break;
    }
    case CRDT_MAP_COUNTER:
      rc = crdt_map_counter(f, &v.counter);
      break;
    case CRDT_MAP_FLAG:
      v.flag = crdt_map_flag(f);
      break;
    case CRDT_MAP_SET:
      if ((members = chorus_calloc(f->n, sizeof *members)) == NULL)
        return CHORUS_ENOMEM;
      for (uint32_t k = 0; k < f->n; k++)
        members[k] = (struct chorus_bytes){f->elem[k].data, f->elem[k].len};
      v.members = members;
      v.nmembers = f->n;
      break;
    case CRDT_MAP_MAP:
      v.nfields = f->n;
      break;
    }
    if (rc == CHORUS_OK)
      rc = visit(arg, &v);
    chorus_free(members);
    if (rc == CHORUS_OK && f->type == CRDT_MAP_MAP)
      rc = walk(f, depth + 1, visit, arg);
    if (rc != CHORUS_OK)
      return rc;
  }
  return CHORUS_OK;
}

int chorus_map_walk(const struct chorus_result *res, chorus_map_visit visit,
                    void *arg) {
  if (res == NULL || visit == NULL || res->nvalues != 1)
    return CHORUS_EINVAL;
  struct crdt_map m;
  int rc = crdt_map_decode(&m, res->values[0].ptr, res->values[0].len, NULL);
  if (rc != CHORUS_OK)
    return rc == CHORUS_ENOMEM ? rc : CHORUS_EMALFORMED;
  rc = walk(&m.root, 1, visit, arg);
  crdt_map_free(&m);
  return rc;
}

/* ------------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------------ */

struct jout {
  char *buf;
  size_t cap, len;
  /* Open maps: how many of their fields are still to come. */
  size_t left[CHORUS_MAP_DEPTH_MAX + 1];
  unsigned depth;
  bool first[CHORUS_MAP_DEPTH_MAX + 1];
};

static void jput(struct jout *j, const char *s, size_t n) {
  if (j->len < j->cap) {
    size_t room = j->cap - j->len;
    memcpy(j->buf + j->len, s, n < room ? n : room);
  }
  j->len += n;
}

static void jputs(struct jout *j, const char *s) {
  jput(j, s, strlen(s));
}

/* A JSON string of bytes: UTF-8 kept, anything else as \u00XX (read as
 * Latin-1), so any bytes yield valid JSON. */
static void jstr(struct jout *j, const uint8_t *p, size_t len,
                 const char *suffix) {
  jputs(j, "\"");
  size_t i = 0;
  char esc[8];
  while (i < len) {
    uint8_t ch = p[i];
    size_t n = ch < 0x80                 ? 1
               : ch >= 0xc2 && ch < 0xe0 ? 2
               : ch >= 0xe0 && ch < 0xf0 ? 3
               : ch >= 0xf0 && ch < 0xf5 ? 4
                                         : 0;
    bool ok = n > 0 && i + n <= len;
    for (size_t k = 1; ok && k < n; k++)
      ok = (p[i + k] & 0xc0) == 0x80;
    if (ok && n == 1 && (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\'))
      ok = false;
    if (ok) {
      jput(j, (const char *)p + i, n);
      i += n;
    } else {
      snprintf(esc, sizeof esc, "\\u%04x", ch);
      jputs(j, esc);
      i++;
    }
  }
  jputs(j, suffix);
  jputs(j, "\"");
}

/* Closes the maps whose fields are all written. */
static void jclose(struct jout *j) {
  while (j->depth > 0 && j->left[j->depth] == 0) {
    jputs(j, "}");
    j->depth--;
  }
}

static int json_visit(void *arg, const struct chorus_map_field *f) {
  struct jout *j = arg;
  static const char *const tname[] = {"",     ":register", ":counter",
                                      ":set", ":flag",     ":map"};
  if (!j->first[j->depth])
    jputs(j, ",");
  j->first[j->depth] = false;
  j->left[j->depth]--;
  jstr(j, f->name, f->name_len, tname[f->type]);
  jputs(j, ":");
  char num[32];
  switch (f->type) {
  case CHORUS_MAP_REGISTER:
    jstr(j, f->value.ptr, f->value.len, "");
    break;
  case CHORUS_MAP_COUNTER:
    snprintf(num, sizeof num, "%" PRId64, f->counter);
    jputs(j, num);
    break;
  case CHORUS_MAP_FLAG:
    jputs(j, f->flag ? "true" : "false");
    break;
  case CHORUS_MAP_SET:
    jputs(j, "[");
    for (size_t i = 0; i < f->nmembers; i++) {
      if (i)
        jputs(j, ",");
      jstr(j, f->members[i].ptr, f->members[i].len, "");
    }
    jputs(j, "]");
    break;
  case CHORUS_MAP_MAP:
    jputs(j, "{");
    j->depth++;
    j->left[j->depth] = f->nfields;
    j->first[j->depth] = true;
    break;
  }
  jclose(j);
  return CHORUS_OK;
}

/* The number of top-level fields, for the JSON writer's bookkeeping. */
static int count_top(void *arg, const struct chorus_map_field *f) {
  if (f->depth == 1)
    ++*(size_t *)arg;
  return CHORUS_OK;
}

int chorus_map_json(const struct chorus_result *res, char *buf, size_t cap,
                    size_t *needed) {
  if (buf == NULL && cap > 0)
    return CHORUS_EINVAL;
  struct jout j;
  memset(&j, 0, sizeof j);
  j.buf = buf;
  j.cap = cap;
  size_t top = 0;
  int rc = chorus_map_walk(res, count_top, &top);
  if (rc != CHORUS_OK)
    return rc;
  jputs(&j, "{");
  j.left[0] = top;
  j.first[0] = true;
  if ((rc = chorus_map_walk(res, json_visit, &j)) != CHORUS_OK)
    return rc;
  jputs(&j, "}");
  if (needed)
    *needed = j.len;
  if (j.len >= cap) {
    if (cap > 0)
      buf[cap - 1] = '\0';
    return CHORUS_ETOOBIG;
  }
  buf[j.len] = '\0';
  return CHORUS_OK;
}
