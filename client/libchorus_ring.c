/* libchorus_ring.c: the one way from an info result (RING_REPLY joined with
 * STATUS_REPLY) to a ring/ring.h snapshot, for the token shares of
 * `chorus ring`, token-aware routing and chorus-bench.
 *
 * The client computes the very ring the nodes compute (ring.h: tokens
 * derive from node ids and T alone), so a key's replicas are known without
 * asking. Replication factors come from STATUS_REPLY; when it names none,
 * or names them in a way ring.h cannot read, the snapshot gets a single
 * replica. That loses nothing the client uses: token shares do not depend
 * on replication, and the first natural replica of a key (what routing
 * picks first) is its primary owner under any single-group replication.
 */
#include <assert.h>
#include <string.h>

#include "chorus_alloc.h"
#include "libchorus_int.h"
#include "ring.h"

static enum ring_node_state ring_state_of(int state) {
  return state == CHORUS_RING_JOINING   ? RING_JOINING
         : state == CHORUS_RING_LEAVING ? RING_LEAVING
                                        : RING_NORMAL;
}

int chorus__ring_build(const struct chorus_result *res,
                       struct ring_snapshot **out) {
  assert(res != NULL && out != NULL);
  assert(res->nnodes == 0 || res->nodes != NULL);
  *out = NULL;
  size_t n = 0;
  for (size_t i = 0; i < res->nnodes; i++)
    n += res->nodes[i].in_ring;
  if (n == 0)
    return CHORUS_EINVAL;
  if (n > RING_MAX_NODES)
    return CHORUS_EMALFORMED;
  struct ring_node *nodes = chorus_calloc(n, sizeof *nodes);
  if (nodes == NULL)
    return CHORUS_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < res->nnodes; i++) {
    const struct chorus_node_info *ni = &res->nodes[i];
    if (!ni->in_ring)
      continue;
    /* Names come from the node: too long for ring.h is a malformed reply,
     * not a broken invariant. */
    if (strlen(ni->dc) >= RING_NAME_MAX || strlen(ni->rack) >= RING_NAME_MAX) {
      chorus_free(nodes);
      return CHORUS_EMALFORMED;
    }
    nodes[k].id = ni->id;
    strcpy(nodes[k].dc, ni->dc);
    strcpy(nodes[k].rack, ni->rack);
    nodes[k].state = ring_state_of(ni->ring_state);
    nodes[k].vnodes = res->vnodes;
    k++;
  }
  assert(k == n);
  struct ring_replication repl;
  if (res->replication[0] == '\0' ||
      ring_replication_parse(res->replication, &repl, NULL) != CHORUS_OK) {
    memset(&repl, 0, sizeof repl);
    repl.n = 1;
  }
  int rc = ring_snapshot_build(nodes, n, &repl, res->epoch, out, NULL);
  chorus_free(nodes);
  return rc;
}
