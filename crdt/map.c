/* map.c: the Riak-style map of registers, counters, sets, flags and nested
 * maps, with observed-remove of fields (see the essay in crdt.h). */
#include <assert.h>
#include <string.h>

#include "chorus_alloc.h"
#include "crdt_int.h"

/* ------------------------------------------------------------------------
 * Fields: memory, order, validity
 * ------------------------------------------------------------------------ */

static void field_clear(struct crdt_map_field *f) {
  for (uint32_t i = 0; f->ent && i < f->n; i++)
    chorus_free(f->ent[i].value);
  for (uint32_t i = 0; f->elem && i < f->n; i++)
    crdt__orset_elem_free(&f->elem[i]);
  for (uint32_t i = 0; f->sub && i < f->n; i++)
    field_clear(&f->sub[i]);
  chorus_free(f->ent);
  chorus_free(f->elem);
  chorus_free(f->sub);
  chorus_free(f->name);
  memset(f, 0, sizeof *f);
}

/* A field with no content yet: the name copied, the type's array empty. */
static int field_start(struct crdt_map_field *f, const uint8_t *name,
                       uint32_t len, enum crdt_map_ftype type) {
  memset(f, 0, sizeof *f);
  f->type = type;
  f->namelen = len;
  if (len && (f->name = chorus_memdup(name, len)) == NULL)
    return CHORUS_ENOMEM;
  return CHORUS_OK;
}

static int key_cmp(const uint8_t *a, uint32_t alen, enum crdt_map_ftype at,
                   const uint8_t *b, uint32_t blen, enum crdt_map_ftype bt) {
  int c = crdt__bytes_cmp(a, alen, b, blen);
  if (c != 0)
    return c;
  return at < bt ? -1 : (at > bt ? 1 : 0);
}

static int field_cmp(const struct crdt_map_field *a,
                     const struct crdt_map_field *b) {
  return key_cmp(a->name, a->namelen, a->type, b->name, b->namelen, b->type);
}

static int field_cmp_key(const void *item, const void *key) {
  const struct crdt_map_field *f = item;
  const struct crdt_map_key *k = key;
  return key_cmp(f->name, f->namelen, f->type, k->name, k->len, k->type);
}

/* Binary search among @p's nested fields: the index of the key, or where it
 * would go (*@found false). */
static uint32_t field_find(const struct crdt_map_field *p, const uint8_t *name,
                           uint32_t len, enum crdt_map_ftype type,
                           bool *found) {
  const struct crdt_map_key k = {name, len, type};
  return crdt__bsearch(p->sub, p->n, sizeof *p->sub, &k, field_cmp_key, found);
}

static bool ftype_ok(uint64_t t) {
  return t >= CRDT_MAP_REGISTER && t <= CRDT_MAP_MAP;
}

/* The representation invariants (crdt.h codec paragraph) of field @f at
 * @level (1: the top map's fields; the root is level 0). */
static bool field_valid(const struct crdt_map_field *f,
                        const struct crdt_ctx *c, uint32_t level) {
  if (f->n > f->cap || !ftype_ok(f->type))
    return false;
  if (level > 0 && (f->namelen == 0 || f->namelen > CRDT_MAP_NAME_MAX ||
                    f->name == NULL || f->n == 0))
    return false;
  switch (f->type) {
  case CRDT_MAP_REGISTER:
  case CRDT_MAP_COUNTER:
  case CRDT_MAP_FLAG:
    if (f->elem || f->sub || f->ent == NULL)
      return false;
    for (uint32_t i = 0; i < f->n; i++) {
      const struct crdt_map_entry *e = &f->ent[i];
      if ((i > 0 && crdt__dot_cmp(f->ent[i - 1].dot, e->dot) >= 0) ||
          !crdt_ctx_covers(c, e->dot))
        return false;
      if (f->type == CRDT_MAP_REGISTER
              ? (e->b != 0 || (e->len > 0) != (e->value != NULL) ||
                 e->len > DVV_VALUE_MAX)
              : (e->value != NULL || e->len != 0))
        return false;
      if (f->type == CRDT_MAP_COUNTER && e->a == 0 && e->b == 0)
        return false;
      if (f->type == CRDT_MAP_FLAG && (e->a > 1 || e->b != 0))
        return false;
    }
    return true;
  case CRDT_MAP_SET:
    if (f->ent || f->sub || f->elem == NULL)
      return false;
    for (uint32_t i = 0; i < f->n; i++) {
      const struct orset_elem *e = &f->elem[i];
      if ((i > 0 && crdt__bytes_cmp(f->elem[i - 1].data, f->elem[i - 1].len,
                                    e->data, e->len) >= 0) ||
          e->len > ORSET_ELEM_MAX || (e->len > 0) != (e->data != NULL) ||
          e->ndots == 0 || e->dots == NULL)
        return false;
      for (uint32_t k = 0; k < e->ndots; k++)
        if ((k > 0 && crdt__dot_cmp(e->dots[k - 1], e->dots[k]) >= 0) ||
            !crdt_ctx_covers(c, e->dots[k]))
          return false;
    }
    return true;
  case CRDT_MAP_MAP:
    if (f->ent || f->elem || (f->n > 0 && f->sub == NULL) ||
        level >= CRDT_MAP_DEPTH_MAX || f->n > CRDT_MAP_FIELDS_MAX)
      return false;
    for (uint32_t i = 0; i < f->n; i++)
      if ((i > 0 && field_cmp(&f->sub[i - 1], &f->sub[i]) >= 0) ||
          !field_valid(&f->sub[i], c, level + 1))
        return false;
    return true;
  }
  return false;
}

bool crdt__map_valid(const struct crdt_map *m) {
  if (!crdt__ctx_valid(&m->ctx) || m->root.type != CRDT_MAP_MAP ||
      m->root.name != NULL || !field_valid(&m->root, &m->ctx, 0) ||
      (m->ndef > 0 && m->def == NULL))
    return false;
  for (uint32_t i = 0; i < m->ndef; i++)
    if (crdt__map_def_invalid(m, i) != NULL)
      return false;
  return true;
}

void crdt_map_init(struct crdt_map *m) {
  crdt_ctx_init(&m->ctx);
  memset(&m->root, 0, sizeof m->root);
  m->root.type = CRDT_MAP_MAP;
  m->def = NULL;
  m->ndef = 0;
}

static void mdef_free(struct crdt_map_deferred *d) {
  crdt__orset_def_free(&d->r);
  for (uint32_t i = 0; i < d->depth; i++)
    chorus_free((void *)(uintptr_t)d->path[i].name);
  d->depth = 0;
}

static void mdefs_free(struct crdt_map *m) {
  for (uint32_t i = 0; i < m->ndef; i++)
    mdef_free(&m->def[i]);
  chorus_free(m->def);
  m->def = NULL;
  m->ndef = 0;
}

void crdt_map_free(struct crdt_map *m) {
  crdt_ctx_free(&m->ctx);
  field_clear(&m->root);
  mdefs_free(m);
  crdt_map_init(m);
}

static int entry_dup(struct crdt_map_entry *out,
                     const struct crdt_map_entry *in) {
  *out = *in;
  out->value = NULL;
  if (in->len && (out->value = chorus_memdup(in->value, in->len)) == NULL)
    return CHORUS_ENOMEM;
  return CHORUS_OK;
}

static int elem_dup(struct orset_elem *out, const struct orset_elem *in) {
  memset(out, 0, sizeof *out);
  out->dots = chorus_memdup(in->dots, in->ndots * sizeof *in->dots);
  if (out->dots == NULL)
    return CHORUS_ENOMEM;
  out->ndots = in->ndots;
  if (in->len && (out->data = chorus_memdup(in->data, in->len)) == NULL) {
    chorus_free(out->dots);
    out->dots = NULL;
    return CHORUS_ENOMEM;
  }
  out->len = in->len;
  return CHORUS_OK;
}

/* Deep copy into an uninitialised @out; on error @out is left cleared. */
static int field_dup(struct crdt_map_field *out,
                     const struct crdt_map_field *in) {
  if (field_start(out, in->name, in->namelen, in->type) != CHORUS_OK)
    goto err_after_start;
  switch (in->type) {
  case CRDT_MAP_REGISTER:
  case CRDT_MAP_COUNTER:
  case CRDT_MAP_FLAG:
    if (crdt__grow((void **)&out->ent, &out->cap, in->n ? in->n : 1,
                   sizeof *out->ent) != CHORUS_OK)
      goto err_after_start;
    for (; out->n < in->n; out->n++)
      if (entry_dup(&out->ent[out->n], &in->ent[out->n]) != CHORUS_OK)
        goto err_after_start;
    break;
  case CRDT_MAP_SET:
    if (crdt__grow((void **)&out->elem, &out->cap, in->n ? in->n : 1,
                   sizeof *out->elem) != CHORUS_OK)
      goto err_after_start;
    for (; out->n < in->n; out->n++)
      if (elem_dup(&out->elem[out->n], &in->elem[out->n]) != CHORUS_OK)
        goto err_after_start;
    break;
  case CRDT_MAP_MAP:
    if (in->n && crdt__grow((void **)&out->sub, &out->cap, in->n,
                            sizeof *out->sub) != CHORUS_OK)
      goto err_after_start;
    for (; out->n < in->n; out->n++)
      if (field_dup(&out->sub[out->n], &in->sub[out->n]) != CHORUS_OK)
        goto err_after_start;
    break;
  }
  return CHORUS_OK;

err_after_start:
  field_clear(out);
  return CHORUS_ENOMEM;
}

/* mdef_dup: a deep copy of kept remove @in into uninitialised @out, @seen
 * joined in when non-NULL; on error @out is left empty. */
static int mdef_dup(struct crdt_map_deferred *out,
                    const struct crdt_map_deferred *in,
                    const struct crdt_ctx *seen) {
  out->kind = in->kind;
  out->depth = 0;
  if (crdt__orset_def_dup(&out->r, &in->r, seen) != CHORUS_OK)
    return CHORUS_ENOMEM;
  for (; out->depth < in->depth; out->depth++) {
    const struct crdt_map_key *k = &in->path[out->depth];
    uint8_t *name = chorus_memdup(k->name, k->len);
    if (name == NULL) {
      mdef_free(out);
      return CHORUS_ENOMEM;
    }
    out->path[out->depth] = (struct crdt_map_key){name, k->len, k->type};
  }
  return CHORUS_OK;
}

/* Kept removes order by path (step by step, a prefix first), then kind,
 * then element. */
static int mdef_cmp(const struct crdt_map_deferred *a,
                    const struct crdt_map_deferred *b) {
  for (uint32_t i = 0; i < a->depth && i < b->depth; i++) {
    const struct crdt_map_key *x = &a->path[i], *y = &b->path[i];
    int c = key_cmp(x->name, x->len, x->type, y->name, y->len, y->type);
    if (c != 0)
      return c;
  }
  if (a->depth != b->depth)
    return a->depth < b->depth ? -1 : 1;
  if (a->kind != b->kind)
    return a->kind < b->kind ? -1 : 1;
  return crdt__bytes_cmp(a->r.data, a->r.len, b->r.data, b->r.len);
}

static int mdef_cmp_key(const void *item, const void *key) {
  return mdef_cmp(item, key);
}

/* Binary search of m->def: the index of @d's (path, kind, element), or
 * where it would go (*@found false). */
static uint32_t mdef_find(const struct crdt_map *m,
                          const struct crdt_map_deferred *d, bool *found) {
  return crdt__bsearch(m->def, m->ndef, sizeof *m->def, d, mdef_cmp_key, found);
}

/* mdef_add: @d (borrowed) kept in @m, merged into the remove with the same
 * (path, kind, element) if there is one. Errors: CHORUS_ENOMEM (@m
 * unchanged). */
static int mdef_add(struct crdt_map *m, const struct crdt_map_deferred *d) {
  bool found;
  uint32_t at = mdef_find(m, d, &found);
  if (found)
    return crdt_ctx_join(&m->def[at].r.seen, &d->r.seen);
  struct crdt_map_deferred *p =
      chorus_realloc(m->def, (m->ndef + 1) * sizeof *m->def);
  if (p == NULL)
    return CHORUS_ENOMEM;
  m->def = p;
  struct crdt_map_deferred c;
  if (mdef_dup(&c, d, NULL) != CHORUS_OK)
    return CHORUS_ENOMEM;
  memmove(&m->def[at + 1], &m->def[at], (m->ndef - at) * sizeof *m->def);
  m->def[at] = c;
  m->ndef++;
  return CHORUS_OK;
}

int crdt_map_copy(struct crdt_map *dst, const struct crdt_map *src) {
  if (dst == src)
    return CHORUS_OK;
  struct crdt_map t;
  crdt_map_init(&t);
  if (src->ndef > 0 &&
      (t.def = chorus_malloc(src->ndef * sizeof *t.def)) == NULL) {
    crdt_map_free(&t);
    return CHORUS_ENOMEM;
  }
  for (; t.ndef < src->ndef; t.ndef++)
    if (mdef_dup(&t.def[t.ndef], &src->def[t.ndef], NULL) != CHORUS_OK) {
      crdt_map_free(&t);
      return CHORUS_ENOMEM;
    }
  if (crdt_ctx_copy(&t.ctx, &src->ctx) != CHORUS_OK ||
      field_dup(&t.root, &src->root) != CHORUS_OK) {
    crdt_map_free(&t);
    return CHORUS_ENOMEM;
  }
  crdt_map_free(dst);
  *dst = t;
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * Join: the ORSWOT rule at every place in the tree
 * ------------------------------------------------------------------------ */

/* The total order on two entries with the same dot, which honest replicas
 * never produce with different payloads (one dot names one update); it only
 * keeps join a lattice on hostile input. */
static int entry_cmp(const struct crdt_map_entry *a,
                     const struct crdt_map_entry *b) {
  if (a->a != b->a)
    return a->a < b->a ? -1 : 1;
  if (a->b != b->b)
    return a->b < b->b ? -1 : 1;
  return crdt__bytes_cmp(a->value, a->len, b->value, b->len);
}

static int join_entries(struct crdt_map_field *out,
                        const struct crdt_map_field *a,
                        const struct crdt_ctx *ca,
                        const struct crdt_map_field *b,
                        const struct crdt_ctx *cb) {
  uint32_t na = a ? a->n : 0, nb = b ? b->n : 0;
  if (crdt__grow((void **)&out->ent, &out->cap, na + nb ? na + nb : 1,
                 sizeof *out->ent) != CHORUS_OK)
    return CHORUS_ENOMEM;
  uint32_t i = 0, j = 0;
  while (i < na || j < nb) {
    int r = i >= na   ? 1
            : j >= nb ? -1
                      : crdt__dot_cmp(a->ent[i].dot, b->ent[j].dot);
    const struct crdt_map_entry *keep = NULL;
    if (r == 0) {
      keep = entry_cmp(&a->ent[i], &b->ent[j]) >= 0 ? &a->ent[i] : &b->ent[j];
      i++, j++;
    } else if (r < 0) {
      if (!crdt_ctx_covers(cb, a->ent[i].dot))
        keep = &a->ent[i];
      i++;
    } else {
      if (!crdt_ctx_covers(ca, b->ent[j].dot))
        keep = &b->ent[j];
      j++;
    }
    if (keep) {
      if (entry_dup(&out->ent[out->n], keep) != CHORUS_OK)
        return CHORUS_ENOMEM;
      out->n++;
    }
  }
  return CHORUS_OK;
}

/* One set element's dots after a join (as orset's). */
static int join_elem(struct orset_elem *out, const struct orset_elem *a,
                     const struct crdt_ctx *ca, const struct orset_elem *b,
                     const struct crdt_ctx *cb) {
  const struct orset_elem *any = a ? a : b;
  uint32_t na = a ? a->ndots : 0, nb = b ? b->ndots : 0;
  memset(out, 0, sizeof *out);
  out->dots = chorus_malloc((na + nb) * sizeof *out->dots);
  if (out->dots == NULL)
    return CHORUS_ENOMEM;
  uint32_t i = 0, j = 0, k = 0;
  while (i < na || j < nb) {
    int r = i >= na ? 1 : j >= nb ? -1 : crdt__dot_cmp(a->dots[i], b->dots[j]);
    if (r == 0) {
      out->dots[k++] = a->dots[i];
      i++, j++;
    } else if (r < 0) {
      if (!crdt_ctx_covers(cb, a->dots[i]))
        out->dots[k++] = a->dots[i];
      i++;
    } else {
      if (!crdt_ctx_covers(ca, b->dots[j]))
        out->dots[k++] = b->dots[j];
      j++;
    }
  }
  out->ndots = k;
  if (k > 0 && any->len &&
      (out->data = chorus_memdup(any->data, any->len)) == NULL)
    return CHORUS_ENOMEM;
  out->len = k > 0 ? any->len : 0;
  return CHORUS_OK;
}

static int join_elems(struct crdt_map_field *out,
                      const struct crdt_map_field *a, const struct crdt_ctx *ca,
                      const struct crdt_map_field *b,
                      const struct crdt_ctx *cb) {
  uint32_t na = a ? a->n : 0, nb = b ? b->n : 0;
  if (crdt__grow((void **)&out->elem, &out->cap, na + nb ? na + nb : 1,
                 sizeof *out->elem) != CHORUS_OK)
    return CHORUS_ENOMEM;
  uint32_t i = 0, j = 0;
  while (i < na || j < nb) {
    const struct orset_elem *x = i < na ? &a->elem[i] : NULL;
    const struct orset_elem *y = j < nb ? &b->elem[j] : NULL;
    int r = !x   ? 1
            : !y ? -1
                 : crdt__bytes_cmp(x->data, x->len, y->data, y->len);
    if (r < 0)
      y = NULL, i++;
    else if (r > 0)
      x = NULL, j++;
    else
      i++, j++;
    struct orset_elem *o = &out->elem[out->n];
    int rc = join_elem(o, x, ca, y, cb);
    if (rc == CHORUS_OK && o->ndots > 0) {
      out->n++;
    } else {
      crdt__orset_elem_free(o);
      if (rc != CHORUS_OK)
        return rc;
    }
  }
  return CHORUS_OK;
}

/* @out (started, empty) becomes the join of fields @a and @b with the same
 * key (either may be NULL: absent on that side). Empty when nothing of the
 * field survives. On error @out holds a part the caller clears. */
static int join_field(struct crdt_map_field *out,
                      const struct crdt_map_field *a, const struct crdt_ctx *ca,
                      const struct crdt_map_field *b,
                      const struct crdt_ctx *cb);

static int join_subs(struct crdt_map_field *out, const struct crdt_map_field *a,
                     const struct crdt_ctx *ca, const struct crdt_map_field *b,
                     const struct crdt_ctx *cb) {
  uint32_t na = a ? a->n : 0, nb = b ? b->n : 0;
  if (na + nb && crdt__grow((void **)&out->sub, &out->cap, na + nb,
                            sizeof *out->sub) != CHORUS_OK)
    return CHORUS_ENOMEM;
  uint32_t i = 0, j = 0;
  while (i < na || j < nb) {
    const struct crdt_map_field *x = i < na ? &a->sub[i] : NULL;
    const struct crdt_map_field *y = j < nb ? &b->sub[j] : NULL;
    int r = !x ? 1 : !y ? -1 : field_cmp(x, y);
    if (r < 0)
      y = NULL, i++;
    else if (r > 0)
      x = NULL, j++;
    else
      i++, j++;
    const struct crdt_map_field *any = x ? x : y;
    struct crdt_map_field *o = &out->sub[out->n];
    int rc = field_start(o, any->name, any->namelen, any->type);
    if (rc == CHORUS_OK)
      rc = join_field(o, x, ca, y, cb);
    if (rc == CHORUS_OK && o->n > 0) {
      out->n++;
    } else {
      field_clear(o);
      if (rc != CHORUS_OK)
        return rc;
    }
  }
  return CHORUS_OK;
}

static int join_field(struct crdt_map_field *out,
                      const struct crdt_map_field *a, const struct crdt_ctx *ca,
                      const struct crdt_map_field *b,
                      const struct crdt_ctx *cb) {
  switch (out->type) {
  case CRDT_MAP_REGISTER:
  case CRDT_MAP_COUNTER:
  case CRDT_MAP_FLAG:
    return join_entries(out, a, ca, b, cb);
  case CRDT_MAP_SET:
    return join_elems(out, a, ca, b, cb);
  case CRDT_MAP_MAP:
    return join_subs(out, a, ca, b, cb);
  }
  return CHORUS_EINVAL;
}

static void mdefs_settle(struct crdt_map *m);

int crdt_map_join(struct crdt_map *dst, const struct crdt_map *src) {
  assert(crdt__map_valid(dst) && crdt__map_valid(src));
  if (dst == src)
    return CHORUS_OK;
  struct crdt_map t;
  crdt_map_init(&t);
  if (crdt_ctx_copy(&t.ctx, &dst->ctx) != CHORUS_OK ||
      crdt_ctx_join(&t.ctx, &src->ctx) != CHORUS_OK ||
      join_field(&t.root, &dst->root, &dst->ctx, &src->root, &src->ctx) !=
          CHORUS_OK) {
    crdt_map_free(&t);
    return CHORUS_ENOMEM;
  }
  /* Kept removes (crdt.h, deferred removes): both sides' merged, applied
   * to the joined fields, forgotten once the joined context covers them.
   * All on the new state @t, so an error leaves @dst as it was. */
  for (uint32_t i = 0; i < dst->ndef + src->ndef; i++) {
    const struct crdt_map_deferred *d =
        i < dst->ndef ? &dst->def[i] : &src->def[i - dst->ndef];
    if (mdef_add(&t, d) != CHORUS_OK) {
      crdt_map_free(&t);
      return CHORUS_ENOMEM;
    }
  }
  mdefs_settle(&t);
  crdt_map_free(dst);
  *dst = t;
  assert(crdt__map_valid(dst));
  return CHORUS_OK;
}

static bool field_equal(const struct crdt_map_field *a,
                        const struct crdt_map_field *b) {
  if (field_cmp(a, b) != 0 || a->n != b->n)
    return false;
  for (uint32_t i = 0; i < a->n; i++) {
    switch (a->type) {
    case CRDT_MAP_REGISTER:
    case CRDT_MAP_COUNTER:
    case CRDT_MAP_FLAG:
      if (crdt__dot_cmp(a->ent[i].dot, b->ent[i].dot) != 0 ||
          entry_cmp(&a->ent[i], &b->ent[i]) != 0)
        return false;
      break;
    case CRDT_MAP_SET: {
      const struct orset_elem *x = &a->elem[i], *y = &b->elem[i];
      if (crdt__bytes_cmp(x->data, x->len, y->data, y->len) != 0 ||
          x->ndots != y->ndots ||
          memcmp(x->dots, y->dots, x->ndots * sizeof *x->dots) != 0)
        return false;
      break;
    }
    case CRDT_MAP_MAP:
      if (!field_equal(&a->sub[i], &b->sub[i]))
        return false;
      break;
    }
  }
  return true;
}

bool crdt_map_equal(const struct crdt_map *a, const struct crdt_map *b) {
  if (a->ndef != b->ndef)
    return false;
  for (uint32_t i = 0; i < a->ndef; i++)
    if (mdef_cmp(&a->def[i], &b->def[i]) != 0 ||
        !crdt_ctx_equal(&a->def[i].r.seen, &b->def[i].r.seen))
      return false;
  return crdt_ctx_equal(&a->ctx, &b->ctx) && field_equal(&a->root, &b->root);
}

/* ------------------------------------------------------------------------
 * Updates
 * ------------------------------------------------------------------------ */

static bool seen_covers(const struct crdt_ctx *seen, struct crdt_dot d) {
  return seen == NULL || crdt_ctx_covers(seen, d);
}

/* Drops the dots of @f's subtree that @seen covers (NULL: all); fields and
 * elements left without dots go. Never allocates. */
static void drop_seen(struct crdt_map_field *f, const struct crdt_ctx *seen) {
  uint32_t k = 0;
  switch (f->type) {
  case CRDT_MAP_REGISTER:
  case CRDT_MAP_COUNTER:
  case CRDT_MAP_FLAG:
    for (uint32_t i = 0; i < f->n; i++) {
      if (seen_covers(seen, f->ent[i].dot))
        chorus_free(f->ent[i].value);
      else
        f->ent[k++] = f->ent[i];
    }
    break;
  case CRDT_MAP_SET:
    for (uint32_t i = 0; i < f->n; i++) {
      struct orset_elem *e = &f->elem[i];
      uint32_t kd = 0;
      for (uint32_t d = 0; d < e->ndots; d++)
        if (!seen_covers(seen, e->dots[d]))
          e->dots[kd++] = e->dots[d];
      e->ndots = kd;
      if (kd == 0)
        crdt__orset_elem_free(e);
      else
        f->elem[k++] = *e;
    }
    break;
  case CRDT_MAP_MAP:
    for (uint32_t i = 0; i < f->n; i++) {
      drop_seen(&f->sub[i], seen);
      if (f->sub[i].n == 0)
        field_clear(&f->sub[i]);
      else
        f->sub[k++] = f->sub[i];
    }
    break;
  }
  f->n = k;
}

/* Drops every field (at any depth) left without dots. */
static void prune(struct crdt_map_field *f) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < f->n; i++) {
    struct crdt_map_field *s = &f->sub[i];
    if (s->type == CRDT_MAP_MAP)
      prune(s);
    if (s->n == 0)
      field_clear(s);
    else
      f->sub[k++] = *s;
  }
  f->n = k;
}

/* The field at @path[0 .. depth - 1] under @root, NULL when absent. */
static struct crdt_map_field *walk(struct crdt_map_field *root,
                                   const struct crdt_map_key *path,
                                   uint32_t depth) {
  struct crdt_map_field *f = root;
  for (uint32_t i = 0; i < depth && f != NULL; i++) {
    bool found;
    uint32_t at =
        field_find(f, path[i].name, path[i].len, path[i].type, &found);
    f = found ? &f->sub[at] : NULL;
  }
  return f;
}

/* Set field @f's element @data: its dots @seen covers dropped (all when
 * NULL), the element gone with its last. Never allocates. */
static void elem_drop(struct crdt_map_field *f, const uint8_t *data,
                      uint32_t len, const struct crdt_ctx *seen) {
  bool found;
  uint32_t i = crdt__elems_find(f->elem, f->n, data, len, &found);
  if (!found)
    return;
  struct orset_elem *x = &f->elem[i];
  uint32_t kd = 0;
  for (uint32_t k = 0; k < x->ndots; k++)
    if (!seen_covers(seen, x->dots[k]))
      x->dots[kd++] = x->dots[k];
  x->ndots = kd;
  if (kd == 0) {
    crdt__orset_elem_free(x);
    memmove(x, x + 1, (f->n - i - 1) * sizeof *x);
    f->n--;
  }
}

/* Whether @seen covers a dot of @f's subtree. */
static bool field_any_covered(const struct crdt_map_field *f,
                              const struct crdt_ctx *seen) {
  for (uint32_t i = 0; i < f->n; i++) {
    switch (f->type) {
    case CRDT_MAP_REGISTER:
    case CRDT_MAP_COUNTER:
    case CRDT_MAP_FLAG:
      if (crdt_ctx_covers(seen, f->ent[i].dot))
        return true;
      break;
    case CRDT_MAP_SET:
      for (uint32_t k = 0; k < f->elem[i].ndots; k++)
        if (crdt_ctx_covers(seen, f->elem[i].dots[k]))
          return true;
      break;
    case CRDT_MAP_MAP:
      if (field_any_covered(&f->sub[i], seen))
        return true;
      break;
    }
  }
  return false;
}

/* Whether kept remove @d would drop a dot of @m (a settled one drops
 * none). */
static bool mdef_bites(const struct crdt_map *m,
                       const struct crdt_map_deferred *d) {
  const struct crdt_map_field *f =
      walk((struct crdt_map_field *)(uintptr_t)&m->root, d->path, d->depth);
  if (f == NULL)
    return false;
  if (d->kind != CRDT_MAP_OP_SET_REMOVE)
    return field_any_covered(f, &d->r.seen);
  /* A binary search: a decoder judges every kept remove, so a linear scan
   * would be quadratic in a hostile input's size. */
  bool found;
  uint32_t i = crdt__elems_find(f->elem, f->n, d->r.data, d->r.len, &found);
  for (uint32_t k = 0; found && k < f->elem[i].ndots; k++)
    if (crdt_ctx_covers(&d->r.seen, f->elem[i].dots[k]))
      return true;
  return false;
}

/* mdefs_settle: every kept remove applied (the dots its context covers at
 * its path dropped: the field's subtree for a remove, the entries for a
 * disable, the element's dots for a set remove), empty fields pruned, and
 * the removes the context covers forgotten (the join rule drops those
 * dots by itself from then on). Never allocates. */
static void mdefs_settle(struct crdt_map *m) {
  if (m->ndef == 0)
    return;
  for (uint32_t i = 0; i < m->ndef; i++) {
    const struct crdt_map_deferred *d = &m->def[i];
    struct crdt_map_field *f = walk(&m->root, d->path, d->depth);
    if (f == NULL)
      continue;
    if (d->kind == CRDT_MAP_OP_SET_REMOVE)
      elem_drop(f, d->r.data, d->r.len, &d->r.seen);
    else
      drop_seen(f, &d->r.seen);
  }
  prune(&m->root);
  uint32_t w = 0;
  for (uint32_t i = 0; i < m->ndef; i++) {
    if (crdt_ctx_covers_all(&m->ctx, &m->def[i].r.seen))
      mdef_free(&m->def[i]);
    else
      m->def[w++] = m->def[i];
  }
  m->ndef = w;
}

static int op_check(const struct crdt_map_op *op, char *errmsg);

const char *crdt__map_def_invalid(const struct crdt_map *m, uint32_t i) {
  const struct crdt_map_deferred *d = &m->def[i];
  if (d->kind != CRDT_MAP_OP_REMOVE && d->kind != CRDT_MAP_OP_SET_REMOVE &&
      d->kind != CRDT_MAP_OP_FLAG_DISABLE)
    return "not a remove";
  /* The shape is the operation's (path, types, sizes). */
  struct crdt_map_op op = {d->kind, d->depth, {{0}}, d->r.data, d->r.len, 0};
  if (d->depth > CRDT_MAP_DEPTH_MAX)
    return "path too long";
  memcpy(op.path, d->path, d->depth * sizeof *d->path);
  if (op_check(&op, NULL) != CHORUS_OK)
    return "not a valid operation";
  if ((d->r.len > 0) != (d->r.data != NULL) ||
      (d->kind != CRDT_MAP_OP_SET_REMOVE && d->r.len > 0))
    return "element on a remove that takes none";
  if (i > 0 && mdef_cmp(&m->def[i - 1], d) >= 0)
    return "not strictly ascending";
  if (!crdt__ctx_valid(&d->r.seen))
    return "context not canonical";
  if (crdt_ctx_covers_all(&m->ctx, &d->r.seen))
    return "context covered by the map's: settled";
  if (mdef_bites(m, d))
    return "covers a dot it would drop";
  return NULL;
}

/* The nested field @key of map field @p, created (empty) when absent and
 * @create; NULL when absent and not @create, or on error (*@rc set). */
static struct crdt_map_field *child(struct crdt_map_field *p,
                                    const struct crdt_map_key *key, bool create,
                                    int *rc, char *errmsg) {
  bool found;
  uint32_t i = field_find(p, key->name, key->len, key->type, &found);
  if (found)
    return &p->sub[i];
  if (!create)
    return NULL;
  if (p->n >= CRDT_MAP_FIELDS_MAX) {
    *rc = chorus_errf(errmsg, CHORUS_ETOOBIG,
                      "map: a level holds at most %u fields",
                      CRDT_MAP_FIELDS_MAX);
    return NULL;
  }
  struct crdt_map_field f;
  if (crdt__grow((void **)&p->sub, &p->cap, p->n + 1, sizeof *p->sub) !=
          CHORUS_OK ||
      field_start(&f, key->name, key->len, key->type) != CHORUS_OK) {
    *rc = CHORUS_ENOMEM;
    return NULL;
  }
  memmove(&p->sub[i + 1], &p->sub[i], (p->n - i) * sizeof *p->sub);
  p->sub[i] = f;
  p->n++;
  return &p->sub[i];
}

static enum crdt_map_ftype op_ftype(enum crdt_map_op_kind k) {
  switch (k) {
  case CRDT_MAP_OP_REGISTER_SET:
    return CRDT_MAP_REGISTER;
  case CRDT_MAP_OP_COUNTER_ADD:
    return CRDT_MAP_COUNTER;
  case CRDT_MAP_OP_SET_ADD:
  case CRDT_MAP_OP_SET_REMOVE:
    return CRDT_MAP_SET;
  case CRDT_MAP_OP_FLAG_ENABLE:
  case CRDT_MAP_OP_FLAG_DISABLE:
    return CRDT_MAP_FLAG;
  case CRDT_MAP_OP_REMOVE:
    break;
  }
  return 0;
}

/* Checks one op against the limits before anything changes. */
static int op_check(const struct crdt_map_op *op, char *errmsg) {
  if (op->kind < CRDT_MAP_OP_REGISTER_SET || op->kind > CRDT_MAP_OP_REMOVE)
    return chorus_errf(errmsg, CHORUS_EINVAL, "map: unknown operation %d",
                       (int)op->kind);
  if (op->depth < 1 || op->depth > CRDT_MAP_DEPTH_MAX)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "map: a path has 1 to %d steps, not %u",
                       CRDT_MAP_DEPTH_MAX, op->depth);
  for (uint32_t i = 0; i < op->depth; i++) {
    const struct crdt_map_key *k = &op->path[i];
    if (k->len == 0 || k->len > CRDT_MAP_NAME_MAX || k->name == NULL)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "map: a field name is 1 to %d bytes, not %u",
                         CRDT_MAP_NAME_MAX, k->len);
    if (!ftype_ok(k->type))
      return chorus_errf(errmsg, CHORUS_EINVAL, "map: unknown field type %d",
                         (int)k->type);
    if (i + 1 < op->depth && k->type != CRDT_MAP_MAP)
      return chorus_errf(errmsg, CHORUS_EINVAL,
                         "map: step %u of a path is a %s, not a map", i + 1,
                         crdt_map_ftype_name(k->type));
  }
  const struct crdt_map_key *last = &op->path[op->depth - 1];
  if (last->type == CRDT_MAP_MAP && op->depth >= CRDT_MAP_DEPTH_MAX)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "map: maps nest at most %d levels deep",
                       CRDT_MAP_DEPTH_MAX);
  if (op->kind != CRDT_MAP_OP_REMOVE && last->type != op_ftype(op->kind))
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "map: field is a %s, the operation needs a %s",
                       crdt_map_ftype_name(last->type),
                       crdt_map_ftype_name(op_ftype(op->kind)));
  if (op->kind == CRDT_MAP_OP_REGISTER_SET && op->len > DVV_VALUE_MAX)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "map: a register value is at most %u bytes",
                       DVV_VALUE_MAX);
  if ((op->kind == CRDT_MAP_OP_SET_ADD || op->kind == CRDT_MAP_OP_SET_REMOVE) &&
      op->len > ORSET_ELEM_MAX)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "map: a set element is at most %u bytes",
                       ORSET_ELEM_MAX);
  if (op->len > 0 && op->data == NULL)
    return chorus_errf(errmsg, CHORUS_EINVAL, "map: data missing");
  if (op->kind == CRDT_MAP_OP_COUNTER_ADD && op->amount == 0)
    return chorus_errf(errmsg, CHORUS_EINVAL, "map: counter amount 0");
  return CHORUS_OK;
}

/* Mints @coord's next dot into @m's context. */
static int mint(struct crdt_map *m, chorus_node_id coord, struct crdt_dot *d) {
  *d = crdt_ctx_next(&m->ctx, coord);
  if (d->counter > CRDT_EVENT_MAX)
    return CHORUS_ERANGE;
  return crdt_ctx_add(&m->ctx, *d);
}

/* Inserts @e (owned on success) into @f's entries, keeping dot order. */
static int entry_insert(struct crdt_map_field *f, struct crdt_map_entry e) {
  if (crdt__grow((void **)&f->ent, &f->cap, f->n + 1, sizeof *f->ent) !=
      CHORUS_OK)
    return CHORUS_ENOMEM;
  uint32_t i = f->n;
  while (i > 0 && crdt__dot_cmp(f->ent[i - 1].dot, e.dot) > 0)
    i--;
  memmove(&f->ent[i + 1], &f->ent[i], (f->n - i) * sizeof *f->ent);
  f->ent[i] = e;
  f->n++;
  return CHORUS_OK;
}

/* Applies one checked op to @m (a private copy: errors leave it partly
 * changed, the caller throws it away). */
static int apply(struct crdt_map *m, chorus_node_id coord, hlc_time ts,
                 const struct crdt_ctx *seen, const struct crdt_map_op *op,
                 char *errmsg) {
  bool creates =
      op->kind != CRDT_MAP_OP_REMOVE && op->kind != CRDT_MAP_OP_SET_REMOVE;
  int rc = CHORUS_OK;
  struct crdt_map_field *f = &m->root;
  for (uint32_t i = 0; i < op->depth && f != NULL; i++)
    f = child(f, &op->path[i], creates, &rc, errmsg);
  if (f == NULL)
    return rc; /* an absent field to remove from: nothing to do */
  struct crdt_dot d = {0, 0};
  if (op->kind != CRDT_MAP_OP_REMOVE && op->kind != CRDT_MAP_OP_SET_REMOVE &&
      (rc = mint(m, coord, &d)) != CHORUS_OK)
    return rc == CHORUS_ERANGE
               ? chorus_errf(errmsg, rc, "map: node %016llx ran out of dots",
                             (unsigned long long)coord)
               : rc;
  struct crdt_map_entry e = {d, 0, 0, NULL, 0};
  switch (op->kind) {
  case CRDT_MAP_OP_REGISTER_SET:
    /* Replaces every write this copy holds: the coordinator saw them. */
    if (op->len && (e.value = chorus_memdup(op->data, op->len)) == NULL)
      return CHORUS_ENOMEM;
    e.a = ts;
    e.len = op->len;
    drop_seen(f, NULL);
    if ((rc = entry_insert(f, e)) != CHORUS_OK)
      chorus_free(e.value);
    return rc;
  case CRDT_MAP_OP_COUNTER_ADD: {
    /* riak_dt_emcntr: this node's totals move to the new dot. */
    uint64_t p = 0, n = 0;
    uint32_t k = 0;
    for (uint32_t i = 0; i < f->n; i++) {
      if (f->ent[i].dot.node == coord) {
        if (p > UINT64_MAX - f->ent[i].a || n > UINT64_MAX - f->ent[i].b)
          return chorus_errf(errmsg, CHORUS_ERANGE, "map: counter overflow");
        p += f->ent[i].a;
        n += f->ent[i].b;
      } else {
        f->ent[k++] = f->ent[i];
      }
    }
    uint64_t mag = op->amount < 0 ? (uint64_t)(-(op->amount + 1)) + 1
                                  : (uint64_t)op->amount;
    uint64_t *side = op->amount < 0 ? &n : &p;
    if (*side > UINT64_MAX - mag)
      return chorus_errf(errmsg, CHORUS_ERANGE, "map: counter overflow");
    *side += mag;
    f->n = k;
    e.a = p;
    e.b = n;
    return entry_insert(f, e);
  }
  case CRDT_MAP_OP_FLAG_ENABLE:
  case CRDT_MAP_OP_FLAG_DISABLE:
    /* Enable replaces all this copy holds; disable only what the client
     * saw, so an enable it did not see stays on (enable wins). */
    drop_seen(f, op->kind == CRDT_MAP_OP_FLAG_ENABLE ? NULL : seen);
    e.a = op->kind == CRDT_MAP_OP_FLAG_ENABLE;
    return entry_insert(f, e);
  case CRDT_MAP_OP_SET_ADD: {
    bool found;
    uint32_t lo = crdt__elems_find(f->elem, f->n, op->data, op->len, &found);
    if (found) {
      struct orset_elem *x = &f->elem[lo];
      x->dots[0] = d; /* ndots >= 1, so no allocation */
      x->ndots = 1;
      return CHORUS_OK;
    }
    struct orset_elem x = {NULL, op->len, 1, NULL};
    if (crdt__grow((void **)&f->elem, &f->cap, f->n + 1, sizeof *f->elem) !=
            CHORUS_OK ||
        (x.dots = chorus_malloc(sizeof *x.dots)) == NULL)
      return CHORUS_ENOMEM;
    x.dots[0] = d;
    if (op->len && (x.data = chorus_memdup(op->data, op->len)) == NULL) {
      chorus_free(x.dots);
      return CHORUS_ENOMEM;
    }
    memmove(&f->elem[lo + 1], &f->elem[lo], (f->n - lo) * sizeof *f->elem);
    f->elem[lo] = x;
    f->n++;
    return CHORUS_OK;
  }
  case CRDT_MAP_OP_SET_REMOVE:
    elem_drop(f, op->data, op->len, seen);
    return CHORUS_OK;
  case CRDT_MAP_OP_REMOVE:
    drop_seen(f, seen);
    return CHORUS_OK;
  }
  return CHORUS_EINVAL;
}

/* defer: after @op ran, keeps it (crdt.h, deferred removes) when it is
 * a remove with a reader's context @seen that @m's does not cover: updates
 * that read saw and this copy has not received are dropped when they
 * arrive. Errors: CHORUS_EBUSY (too many kept), CHORUS_ENOMEM. */
static int defer(struct crdt_map *m, const struct crdt_ctx *seen,
                 const struct crdt_map_op *op, char *errmsg) {
  if (seen == NULL ||
      (op->kind != CRDT_MAP_OP_REMOVE && op->kind != CRDT_MAP_OP_SET_REMOVE &&
       op->kind != CRDT_MAP_OP_FLAG_DISABLE) ||
      crdt_ctx_covers_all(&m->ctx, seen))
    return CHORUS_OK;
  struct crdt_map_deferred d = {
      {(uint8_t *)(uintptr_t)op->data, op->len, *seen},
      op->kind,
      op->depth,
      {{0}}};
  if (op->kind != CRDT_MAP_OP_SET_REMOVE)
    d.r.data = NULL, d.r.len = 0;
  else if (op->len == 0)
    d.r.data = NULL;
  memcpy(d.path, op->path, op->depth * sizeof *op->path);
  bool found;
  (void)mdef_find(m, &d, &found);
  if (!found && m->ndef >= CRDT_MAP_DEFERRED_MAX)
    return chorus_errf(errmsg, CHORUS_EBUSY,
                       "%u removes on this map wait for updates this node "
                       "has not received; try again once its replicas "
                       "have exchanged",
                       CRDT_MAP_DEFERRED_MAX);
  return mdef_add(m, &d);
}

int crdt_map_update(struct crdt_map *m, chorus_node_id coord, hlc_time ts,
                    const struct crdt_ctx *seen, const struct crdt_map_op *ops,
                    uint32_t nops, char *errmsg) {
  assert(crdt__map_valid(m));
  assert(nops == 0 || ops != NULL);
  int rc;
  for (uint32_t i = 0; i < nops; i++)
    if ((rc = op_check(&ops[i], errmsg)) != CHORUS_OK)
      return rc;
  /* All or nothing: the ops run on a copy that replaces @m at the end. */
  struct crdt_map t;
  crdt_map_init(&t);
  if ((rc = crdt_map_copy(&t, m)) != CHORUS_OK)
    return rc;
  for (uint32_t i = 0; i < nops; i++) {
    if ((rc = apply(&t, coord, ts, seen, &ops[i], errmsg)) != CHORUS_OK ||
        (rc = defer(&t, seen, &ops[i], errmsg)) != CHORUS_OK) {
      crdt_map_free(&t);
      return rc;
    }
  }
  prune(&t.root);
  /* Kept removes also hold against this update's own dots (a context
   * naming dots this node has not minted yet is no honest read's). */
  mdefs_settle(&t);
  crdt_map_free(m);
  *m = t;
  assert(crdt__map_valid(m));
  return CHORUS_OK;
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

const struct crdt_map_field *crdt_map_find(const struct crdt_map_field *parent,
                                           const uint8_t *name, uint32_t len,
                                           enum crdt_map_ftype type) {
  if (parent == NULL || parent->type != CRDT_MAP_MAP)
    return NULL;
  bool found;
  uint32_t i = field_find(parent, name, len, type, &found);
  return found ? &parent->sub[i] : NULL;
}

const struct crdt_map_entry *crdt_map_register(const struct crdt_map_field *f) {
  const struct crdt_map_entry *best = NULL;
  for (uint32_t i = 0; f->type == CRDT_MAP_REGISTER && i < f->n; i++) {
    const struct crdt_map_entry *e = &f->ent[i];
    /* Entries are sorted by dot, so a later one with the same time has a
     * greater (node, counter): ties go to it, as lww's to the node id. */
    if (best == NULL || e->a >= best->a)
      best = e;
  }
  return best;
}

int crdt_map_counter(const struct crdt_map_field *f, int64_t *out) {
  /* Sums in 128 bits' worth: p and n separately, then the difference. */
  uint64_t p = 0, n = 0;
  for (uint32_t i = 0; f->type == CRDT_MAP_COUNTER && i < f->n; i++) {
    if (p > UINT64_MAX - f->ent[i].a || n > UINT64_MAX - f->ent[i].b)
      return CHORUS_ERANGE;
    p += f->ent[i].a;
    n += f->ent[i].b;
  }
  if (p >= n) {
    if (p - n > (uint64_t)INT64_MAX)
      return CHORUS_ERANGE;
    *out = (int64_t)(p - n);
  } else {
    if (n - p > (uint64_t)INT64_MAX + 1)
      return CHORUS_ERANGE;
    *out = n - p == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)(n - p);
  }
  return CHORUS_OK;
}

bool crdt_map_flag(const struct crdt_map_field *f) {
  for (uint32_t i = 0; f->type == CRDT_MAP_FLAG && i < f->n; i++)
    if (f->ent[i].a)
      return true;
  return false;
}

const char *crdt_map_ftype_name(enum crdt_map_ftype t) {
  switch (t) {
  case CRDT_MAP_REGISTER:
    return "register";
  case CRDT_MAP_COUNTER:
    return "counter";
  case CRDT_MAP_SET:
    return "set";
  case CRDT_MAP_FLAG:
    return "flag";
  case CRDT_MAP_MAP:
    return "map";
  }
  return "none";
}
