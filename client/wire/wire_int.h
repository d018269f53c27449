/* wire_int.h: internals shared by the wire files: the bounded msgpack
 * reader and the table that describes every message's fields.
 *
 * The schema table is the single description of the protocol: the encoder,
 * the decoder, the field checks and the test comparison all walk it, so an
 * encoder and a decoder can never disagree on a field's order, type or
 * limit. docs/PROTOCOL.md is written from it.
 */
#ifndef CHORUS_WIRE_INT_H
#define CHORUS_WIRE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* ------------------------------------------------------------------------
 * msgpack headers (wire_reader.c; no msgpack.h needed to read)
 * ------------------------------------------------------------------------ */

enum wire__cls {
  WIRE__NIL,
  WIRE__BOOL,
  WIRE__UINT,
  WIRE__NINT, /* negative integer */
  WIRE__FLOAT,
  WIRE__STR,
  WIRE__BIN,
  WIRE__ARRAY,
  WIRE__MAP,
  WIRE__EXT
};

/* One decoded msgpack header. */
struct wire__head {
  uint8_t cls;   /* enum wire__cls */
  uint8_t hlen;  /* header bytes, floats' payload included */
  uint8_t first; /* the first byte, for messages */
  uint64_t u;    /* UINT value; BOOL as 0/1 */
  int64_t i;     /* NINT value */
  uint64_t n;    /* STR/BIN/EXT payload bytes; ARRAY/MAP entry count */
};

/* wire__head_parse: the header at @p (@left bytes available). Returns 0,
 * -1 when the header itself is truncated, -2 for the reserved byte 0xc1.
 * Checks nothing about the payload. */
int wire__head_parse(const uint8_t *p, size_t left, struct wire__head *h);

/* wire__cls_name: "bin", "array16"... for messages, from the first byte. */
const char *wire__format_name(uint8_t first);

/* A cursor over validated bytes; every read still checks bounds. */
struct wire__rd {
  const uint8_t *p;
  size_t left;
  const uint8_t *base; /* for offsets in messages */
  char *errmsg;
};

int wire__rd_array(struct wire__rd *rd, uint64_t *n, const char *what);
int wire__rd_map(struct wire__rd *rd, uint64_t *n, const char *what);
int wire__rd_uint(struct wire__rd *rd, uint64_t max, uint64_t *v,
                  const char *what);
int wire__rd_int(struct wire__rd *rd, int64_t min, int64_t max, int64_t *v,
                 const char *what);
int wire__rd_bool(struct wire__rd *rd, bool *v, const char *what);
/* @text selects str (true) or bin (false). */
int wire__rd_bytes(struct wire__rd *rd, bool text, uint64_t max,
                   struct wire_bytes *v, const char *what);

/* ------------------------------------------------------------------------
 * Schema (wire_schema.c)
 * ------------------------------------------------------------------------ */

enum wire__kind {
  WIRE__K_UINT,    /* unsigned integer, stored in @width bytes */
  WIRE__K_INT,     /* signed integer, stored in @width bytes */
  WIRE__K_BOOL,    /* stored as bool */
  WIRE__K_BIN,     /* struct wire_bytes, msgpack bin */
  WIRE__K_TEXT,    /* struct wire_bytes, msgpack str */
  WIRE__K_OPTS,    /* struct wire_options, a 7- or 8-element array */
  WIRE__K_BLIST,   /* struct wire_bytes_list, array of bin */
  WIRE__K_NODES,   /* nnodes + nodes of struct wire_ring_reply; @max is the
                      name's limit, 0 for nodes without a name entry */
  WIRE__K_STATS,   /* nstats + stats of struct wire_status_reply, a map */
  WIRE__K_MEMBERS, /* nmembers + members of struct wire_cluster_reply */
  WIRE__K_MOVES    /* nmoves + moves of struct wire_cluster_plan_reply */
};

struct wire__field {
  const char *name;
  uint8_t kind;     /* enum wire__kind */
  uint8_t width;    /* integers: 1, 4 or 8 bytes in the struct */
  uint16_t off;     /* offset in struct wire_msg */
  int64_t min;      /* signed integers: smallest allowed */
  int64_t imax;     /* signed integers: largest allowed */
  uint64_t max;     /* unsigned: largest; bytes: longest; lists: per item */
  uint64_t min_len; /* bytes: shortest */
  /* 1: optional, only as one of a message's last fields and only an
   * unsigned integer: the encoder leaves out the trailing ones that are 0,
   * the decoder takes a message without them as 0, so a message that does
   * not use them is the one an older peer knows (AAE_TREE_REQ's
   * class_tag). */
  uint8_t opt;
};

#define WIRE__MAX_FIELDS 10 /* CLUSTER_REPLY's */

struct wire__schema {
  uint8_t type;
  const char *name;
  uint8_t nfields;
  struct wire__field f[WIRE__MAX_FIELDS];
};

/* wire__schema_nopt: how many of @s's last fields are optional (@opt). */
unsigned wire__schema_nopt(const struct wire__schema *s);
/* wire__fields_sent: the fields of @s that @m's encoding carries: all but
 * the trailing optional ones that are 0. */
unsigned wire__fields_sent(const struct wire__schema *s,
                           const struct wire_msg *m);

/* wire__schema_of: the schema of @type, NULL when unknown. */
const struct wire__schema *wire__schema_of(unsigned type);

/* The schemas, in type order, for tests and docs. */
extern const struct wire__schema wire__schemas[];
extern const size_t wire__nschemas;

/* wire__int_load / wire__int_store: integer fields of @width bytes. */
uint64_t wire__uint_load(const void *p, unsigned width);
int64_t wire__int_load(const void *p, unsigned width);
void wire__uint_store(void *p, unsigned width, uint64_t v);
void wire__int_store(void *p, unsigned width, int64_t v);

/* wire__opts_check: the checks on struct wire_options shared by encoder and
 * decoder; @code is returned on failure (EINVAL or EMALFORMED). */
int wire__opts_check(const struct wire_options *o, int code, char *errmsg);
/* wire__opts_of: the options of @m (inside it), NULL for a type without. */
struct wire_options *wire__opts_of(struct wire_msg *m);

/* wire__msg_equal: deep equality of two messages of the same schema (byte
 * fields by content). For tests and the round-trip fuzz target. */
bool wire__msg_equal(const struct wire_msg *a, const struct wire_msg *b);

#endif /* CHORUS_WIRE_INT_H */
