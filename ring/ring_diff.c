/* ring_diff.c: which token ranges change hands between two snapshots, and
 * from which node to which (the plan that streaming executes). */
#include <string.h>

#include "chorus_alloc.h"
#include "ring_int.h"

/* HOW IT WORKS
 *
 * A key's natural replicas depend only on the first token at or after its
 * own in the current ring (and on metadata, which is per snapshot). Cut the
 * token space at every token of either snapshot's current ring: inside one
 * piece (u[k-1], u[k]] both snapshots have a fixed successor, so both
 * preference lists are constant, and looking up u[k] itself gives them.
 * Compare the two lists of each piece and emit a move for every node that
 * gains it; extend the previous piece's move instead when the pair is the
 * same, so a vnode's range comes out as one move, not many. */

static int has_id(const struct ring_replica *r, unsigned n, chorus_node_id id) {
  for (unsigned i = 0; i < n; i++)
    if (r[i].id == id)
      return 1;
  return 0;
}

/* The sorted, deduplicated union of both current rings' tokens. */
static chorus_token *token_union(const struct ring__table *a,
                                 const struct ring__table *b, size_t *count) {
  chorus_token *u = chorus_malloc((a->count + b->count + 1) * sizeof *u);
  if (u == NULL)
    return NULL;
  size_t i = 0, j = 0, n = 0;
  while (i < a->count || j < b->count) {
    chorus_token t;
    if (j == b->count || (i < a->count && a->tok[i] <= b->tok[j]))
      t = a->tok[i++];
    else
      t = b->tok[j++];
    if (n == 0 || u[n - 1] != t)
      u[n++] = t;
  }
  *count = n;
  return u;
}

struct move_vec {
  struct ring_move *m;
  size_t n, cap;
};

static int push(struct move_vec *v, const struct ring_move *m) {
  if (v->n == v->cap) {
    size_t cap = v->cap == 0 ? 64 : v->cap * 2;
    struct ring_move *p = chorus_realloc(v->m, cap * sizeof *p);
    if (p == NULL)
      return CHORUS_ENOMEM;
    v->m = p;
    v->cap = cap;
  }
  v->m[v->n++] = *m;
  return CHORUS_OK;
}

/* add_move: @m, for the piece ending at m->end, extends the move of the
 * previous piece (one of @open) with the same pair, or is pushed; its
 * index goes to @now. Errors: CHORUS_ENOMEM. */
static int add_move(struct move_vec *vec, const size_t *open, size_t n_open,
                    size_t *now, size_t *n_now, const struct ring_move *m) {
  for (size_t o = 0; o < n_open; o++) {
    struct ring_move *p = &vec->m[open[o]];
    if (p->end == m->start && p->to == m->to && p->from == m->from &&
        p->has_from == m->has_from) {
      p->end = m->end;
      now[(*n_now)++] = open[o];
      return CHORUS_OK;
    }
  }
  if (push(vec, m) != CHORUS_OK)
    return CHORUS_ENOMEM;
  now[(*n_now)++] = vec->n - 1;
  return CHORUS_OK;
}

int ring_diff(const struct ring_snapshot *before,
              const struct ring_snapshot *after, struct ring_move **moves,
              size_t *count) {
  if (before == NULL || after == NULL || moves == NULL || count == NULL)
    return CHORUS_EINVAL;
  *moves = NULL;
  *count = 0;
  size_t nu;
  chorus_token *u = token_union(&before->cur, &after->cur, &nu);
  if (u == NULL)
    return CHORUS_ENOMEM;

  struct move_vec vec = {0};
  size_t open[RING_MAX_REPLICAS], n_open = 0;
  for (size_t k = 0; k < nu; k++) {
    chorus_token end = u[k];
    chorus_token start = u[k == 0 ? nu - 1 : k - 1];
    struct ring_replica b[RING_MAX_REPLICAS], a[RING_MAX_REPLICAS];
    unsigned nb = ring__natural(before, &before->cur, end, b);
    unsigned na = ring__natural(after, &after->cur, end, a);

    struct ring_replica lost[RING_MAX_REPLICAS];
    unsigned n_lost = 0, n_gain = 0;
    for (unsigned i = 0; i < nb; i++)
      if (!has_id(a, na, b[i].id))
        lost[n_lost++] = b[i];

    size_t now[RING_MAX_REPLICAS], n_now = 0;
    for (unsigned i = 0; i < na; i++) {
      if (has_id(b, nb, a[i].id))
        continue;
      struct ring_move m = {.start = start, .end = end, .to = a[i].id};
      if (n_gain < n_lost) {
        m.from = lost[n_gain].id;
        m.has_from = 1;
      } else if (nb > 0) {
        m.from = b[0].id;
        m.has_from = 1;
      }
      n_gain++;
      if (add_move(&vec, open, n_open, now, &n_now, &m) != CHORUS_OK) {
        chorus_free(vec.m);
        chorus_free(u);
        return CHORUS_ENOMEM;
      }
    }
    memcpy(open, now, n_now * sizeof *now);
    n_open = n_now;
  }
  chorus_free(u);
  *moves = vec.m;
  *count = vec.n;
  return CHORUS_OK;
}

/* ring_diff_kept (ring.h): the same walk over the pieces; a piece whose
 * replicas in @after all had it in @before, and that @leaver had and
 * has no more, is a move from @leaver to each of them. */
int ring_diff_kept(const struct ring_snapshot *before,
                   const struct ring_snapshot *after, chorus_node_id leaver,
                   struct ring_move **moves, size_t *count) {
  if (before == NULL || after == NULL || moves == NULL || count == NULL)
    return CHORUS_EINVAL;
  *moves = NULL;
  *count = 0;
  size_t nu;
  chorus_token *u = token_union(&before->cur, &after->cur, &nu);
  if (u == NULL)
    return CHORUS_ENOMEM;
  struct move_vec vec = {0};
  size_t open[RING_MAX_REPLICAS], n_open = 0;
  for (size_t k = 0; k < nu; k++) {
    chorus_token end = u[k];
    chorus_token start = u[k == 0 ? nu - 1 : k - 1];
    struct ring_replica b[RING_MAX_REPLICAS], a[RING_MAX_REPLICAS];
    unsigned nb = ring__natural(before, &before->cur, end, b);
    unsigned na = ring__natural(after, &after->cur, end, a);
    bool kept = has_id(b, nb, leaver) && !has_id(a, na, leaver);
    for (unsigned i = 0; i < na && kept; i++)
      kept = has_id(b, nb, a[i].id) != 0;
    size_t now[RING_MAX_REPLICAS], n_now = 0;
    for (unsigned i = 0; i < na && kept; i++) {
      struct ring_move m = {
          .start = start, .end = end, .from = leaver, .to = a[i].id};
      m.has_from = 1;
      if (add_move(&vec, open, n_open, now, &n_now, &m) != CHORUS_OK) {
        chorus_free(vec.m);
        chorus_free(u);
        return CHORUS_ENOMEM;
      }
    }
    memcpy(open, now, n_now * sizeof *now);
    n_open = n_now;
  }
  chorus_free(u);
  *moves = vec.m;
  *count = vec.n;
  return CHORUS_OK;
}
