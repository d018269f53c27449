/* fuzz_ring_spec.c: libFuzzer target for the replication spec parser and
 * for snapshot building and lookups over topologies drawn from the input.
 *
 * Input: a spec string up to the first NUL, then 4 bytes per node
 * (id, datacenter, rack, state/vnodes), then 8-byte tokens to look up.
 * The parser must never crash and must leave a message on error; a parsed
 * spec must build, and every lookup must give distinct replicas. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_alloc.h"
#include "ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  size_t slen = nul != NULL ? (size_t)(nul - data) : size;
  if (slen > 256)
    return 0;
  char spec[257];
  memcpy(spec, data, slen);
  spec[slen] = '\0';
  struct ring_replication repl;
  char err[CHORUS_ERRMSG_SIZE] = "";
  int rc = ring_replication_parse(spec, &repl, err);
  if (rc != CHORUS_OK) {
    if (rc != CHORUS_EMALFORMED || err[0] == '\0')
      abort();
    return 0;
  }
  if (ring_replication_total(&repl) < 1 ||
      ring_replication_total(&repl) > RING_MAX_REPLICAS)
    abort();
  if (nul == NULL)
    return 0;
  const uint8_t *p = nul + 1;
  size_t left = size - slen - 1;
  struct ring_node nodes[32];
  size_t n = 0;
  memset(nodes, 0, sizeof nodes);
  while (left >= 4 && n < 32) {
    nodes[n].id = p[0];
    /* Datacenter names the spec may use: dc0..dc2, or the spec's own. */
    if (repl.dc_count > 0 && (p[1] & 4))
      memcpy(nodes[n].dc, repl.dcs[p[1] % repl.dc_count].dc, RING_NAME_MAX);
    else
      nodes[n].dc[0] = (char)('a' + p[1] % 3);
    nodes[n].rack[0] = (char)('a' + p[2] % 4);
    nodes[n].state = (enum ring_node_state)(p[3] & 3);
    nodes[n].vnodes = 1 + (p[3] >> 2);
    p += 4;
    left -= 4;
    n++;
  }
  struct ring_snapshot *s = NULL;
  rc = ring_snapshot_build(nodes, n, &repl, 1, &s, err);
  if (rc == CHORUS_EMALFORMED)
    return 0; /* duplicate ids */
  if (rc != CHORUS_OK)
    abort();
  for (int i = 0; i < 8; i++) {
    uint64_t t = 0;
    if (left >= 8) {
      memcpy(&t, p, 8);
      p += 8;
      left -= 8;
    } else {
      t = (uint64_t)i * 0x9e3779b97f4a7c15ull;
    }
    struct ring_plist pl;
    ring_lookup(s, t, (unsigned)i, &pl);
    unsigned total = pl.n_natural + pl.n_pending + pl.n_fallback;
    if (pl.n_natural > ring_replication_total(&repl) || total > RING_PLIST_MAX)
      abort();
    for (unsigned a = 0; a < total; a++)
      for (unsigned b = a + 1; b < total; b++)
        if (pl.r[a].id == pl.r[b].id)
          abort();
  }
  struct ring_move *m = NULL;
  size_t nm = 0;
  if (ring_diff(s, s, &m, &nm) != CHORUS_OK || nm != 0)
    abort();
  ring_snapshot_free(s);
  return 0;
}
