/* chorus_types.h: the scalar types every module shares. */
#ifndef CHORUS_TYPES_H
#define CHORUS_TYPES_H

#include <stdint.h>

/* A node's identity inside the cluster: the xxh3-64 of its configured name
 * (`--id NAME`). Dots in version vectors and slots in counters use it. */
typedef uint64_t chorus_node_id;

/* A position on the hash ring: xxh3-64 of a key (DESIGN.md §5). */
typedef uint64_t chorus_token;

/* Milliseconds. Monotonic when it measures a duration or a timeout; event
 * time in the simulator. Never wall time for ordering (DESIGN.md §7). */
typedef uint64_t chorus_ms;

/* A storage write sequence number: strictly increasing per store; a sync
 * barrier for S covers every write that returned a sequence <= S. */
typedef uint64_t chorus_seq;

#endif /* CHORUS_TYPES_H */
