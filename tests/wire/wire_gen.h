/* wire_gen.h: builds messages of every type from the schema table, for the
 * wire tests, the seed-corpus generator and the benchmark. */
#ifndef CHORUS_WIRE_GEN_H
#define CHORUS_WIRE_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "chorus_prng.h"
#include "wire_int.h"

enum wire_gen_mode {
  WIRE_GEN_EMPTY,  /* every field at its minimum: zeros, shortest bytes */
  WIRE_GEN_MAX,    /* every field at its maximum (frame-bounded bytes: 1 MiB) */
  WIRE_GEN_RANDOM, /* random values in range, short random bytes and lists */
};

/* Storage the generated message borrows from; one per live message. */
struct wire_gen {
  struct chorus_prng prng;
  uint8_t *pool; /* random bytes every byte field points into */
  size_t pool_len;
  struct wire_bytes items[64];
  struct wire_ring_node nodes[16];
  struct wire_stat stats[16];
  struct wire_cluster_member members[16];
  struct wire_plan_move moves[16];
};

/* wire_gen_init: seeds and allocates a 2 MiB pool. Returns 0 or -1. */
int wire_gen_init(struct wire_gen *g, uint64_t seed);
void wire_gen_fini(struct wire_gen *g);

/* wire_gen_msg: fills *@m with a valid message of @schema in @mode. The
 * message borrows from @g until the next call. */
void wire_gen_msg(struct wire_gen *g, const struct wire__schema *schema,
                  enum wire_gen_mode mode, struct wire_msg *m);

#endif /* CHORUS_WIRE_GEN_H */
