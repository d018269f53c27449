/* fuzz_wire_check.c: libFuzzer target for wire_msgpack_check(), checked
 * against msgpack-c: whatever the bounded checker accepts, msgpack-c must
 * unpack completely (the claim that makes it safe to hand checked bytes to
 * msgpack_unpack), with the same object count bound. */
#include <stdint.h>
#include <stdlib.h>

#include <msgpack.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* @depth: containers enclosing @o; the checker allows WIRE_MAX_DEPTH. */
static size_t count_objects(const msgpack_object *o, unsigned depth) {
  size_t n = 1;
  if (depth > WIRE_MAX_DEPTH)
    abort();
  if (o->type == MSGPACK_OBJECT_ARRAY)
    for (uint32_t i = 0; i < o->via.array.size; i++)
      n += count_objects(&o->via.array.ptr[i], depth + 1);
  else if (o->type == MSGPACK_OBJECT_MAP)
    for (uint32_t i = 0; i < o->via.map.size; i++)
      n += count_objects(&o->via.map.ptr[i].key, depth + 1) +
           count_objects(&o->via.map.ptr[i].val, depth + 1);
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t objects = 0;
  char err[CHORUS_ERRMSG_SIZE];
  if (wire_msgpack_check(data, size, WIRE_MAX_DEPTH, &objects, err) !=
      CHORUS_OK)
    return 0;
  if (objects == 0 || objects > size)
    abort();
  msgpack_unpacked res;
  msgpack_unpacked_init(&res);
  size_t off = 0;
  msgpack_unpack_return r =
      msgpack_unpack_next(&res, (const char *)data, size, &off);
  if (r != MSGPACK_UNPACK_SUCCESS || off != size)
    abort();
  if (count_objects(&res.data, 0) != objects)
    abort();
  msgpack_unpacked_destroy(&res);
  return 0;
}
