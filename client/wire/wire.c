/* wire.c: the HELLO handshake decision and small protocol helpers (names of
 * types and consistency levels, which errors close a connection).
 */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wire_int.h"

static void fill_error(struct wire_msg *reply, uint64_t request_id, int code,
                       const char *text) {
  /* ERROR's code field is negative (wire_schema.c): an encodable reply. */
  assert(code < 0 && text != NULL);
  memset(reply, 0, sizeof *reply);
  reply->type = WIRE_ERROR;
  reply->request_id = request_id;
  reply->error.code = code;
  size_t n = strlen(text);
  if (n > WIRE_MAX_ERROR_TEXT)
    n = WIRE_MAX_ERROR_TEXT;
  reply->error.text.ptr = (const uint8_t *)text;
  reply->error.text.len = n;
}

void wire_error_reply(struct wire_msg *reply, uint64_t request_id, int code,
                      const char *text) {
  /* ERROR carries a negative code; anything else is a caller bug that must
   * still produce an encodable reply. */
  fill_error(reply, request_id, code < 0 ? code : CHORUS_EINTERNAL,
             text ? text : "");
}

/* The text borrows nothing from @hello: a hostile cluster name is shown
 * only as its length, so logs and replies never echo attacker bytes. */
int wire_hello_check(const struct wire_hello *hello,
                     const struct wire_hello_policy *policy,
                     uint64_t request_id, struct wire_msg *reply, char *text) {
  assert(hello != NULL && policy != NULL && reply != NULL && text != NULL);
  assert(policy->min_version <= policy->max_version);
  int rc = CHORUS_OK;
  if (hello->version < policy->min_version ||
      hello->version > policy->max_version)
    rc = chorus_errf(text, CHORUS_EVERSION,
                     "protocol version %" PRIu32
                     " not supported; this node speaks %" PRIu32 "..%" PRIu32,
                     hello->version, policy->min_version, policy->max_version);
  else if (hello->cluster.len != policy->cluster.len ||
           (hello->cluster.len > 0 &&
            memcmp(hello->cluster.ptr, policy->cluster.ptr,
                   hello->cluster.len) != 0))
    rc = chorus_errf(text, CHORUS_ECLUSTER,
                     "cluster name (%zu bytes) does not match this node's "
                     "cluster \"%.*s\"",
                     hello->cluster.len, (int)policy->cluster.len,
                     (const char *)policy->cluster.ptr);
  else if (hello->role > WIRE_ROLE_MAX ||
           !(policy->roles & (1u << hello->role)))
    rc = chorus_errf(text, CHORUS_EPERM, "role %s not accepted here",
                     hello->role == WIRE_ROLE_PEER ? "peer" : "client");
  else if (hello->role == WIRE_ROLE_PEER && hello->node_id == 0)
    rc = chorus_errf(text, CHORUS_EMALFORMED, "peer HELLO without a node id");
  if (rc) {
    fill_error(reply, request_id, rc, text);
    return rc;
  }
  memset(reply, 0, sizeof *reply);
  reply->type = WIRE_WELCOME;
  reply->request_id = request_id;
  reply->welcome.version = hello->version;
  reply->welcome.cluster = policy->cluster;
  reply->welcome.node_id = policy->node_id;
  return CHORUS_OK;
}

bool wire_should_close(int code) {
  return code != CHORUS_OK && code != CHORUS_ENOTSUP;
}

bool wire_reply_for(const struct wire_msg *m, uint32_t version,
                    struct wire_msg *out, char *text) {
  *out = *m;
  if (version < WIRE_PROTOCOL_STREAM_GAPS && m->type == WIRE_STREAM_CHUNK2) {
    /* The same batch without the empty stretch: the puller pulls the
     * ranges after it as before. */
    out->type = WIRE_STREAM_CHUNK;
    out->stream_chunk.empty_to = 0;
    return true;
  }
  struct wire_options *o = wire__opts_of(out);
  bool changed = false;
  if (version < WIRE_PROTOCOL_STREAM_GAPS && o != NULL && o->flags != 0) {
    /* Flags only ask for more (a trace): an older peer coordinates the
     * request without them. A keyspace never gets here: the node that
     * took the request resolved it into the key. */
    o->flags = 0;
    changed = true;
  }
  if (version < WIRE_PROTOCOL_CLIENT_DC && o != NULL && o->dc.len > 0) {
    /* A request a node forwards to a peer of an older release, which
     * would close the connection on an 8th option: the peer coordinates
     * it for its own datacenter, as every node did then. */
    o->dc = (struct wire_bytes){NULL, 0};
    return true;
  }
  if (version >= WIRE_PROTOCOL_CLUSTER)
    return changed;
  /* Before version 3: the same lists, without the names (the structs are
   * shared, and RING_REPLY's and STATUS_REPLY's schemas skip them). */
  if (m->type == WIRE_RING_REPLY2) {
    out->type = WIRE_RING_REPLY;
    return true;
  }
  if (m->type == WIRE_STATUS_REPLY2) {
    out->type = WIRE_STATUS_REPLY;
    return true;
  }
  if (version >= WIRE_PROTOCOL_REPLY2)
    return changed;
  if (m->type == WIRE_WRITE_REPLY2) {
    out->type = WIRE_WRITE_REPLY;
    return true;
  }
  if (m->type != WIRE_GET_REPLY2)
    return changed;
  const struct wire_get_reply *g = &m->get_reply;
  if (!(g->flags & WIRE_REPLY_TRUNCATED)) {
    out->type = WIRE_GET_REPLY;
    return true;
  }
  chorus_errf(text, CHORUS_ETOOBIG,
              "the object is %" PRIu64 " bytes with %" PRIu32
              " siblings, too big for one reply; a client of protocol "
              "version %u or later gets %zu of them and the context that "
              "resolves them all",
              g->bytes, g->siblings, WIRE_PROTOCOL_REPLY2, g->values.n);
  fill_error(out, m->request_id, CHORUS_ETOOBIG, text);
  return true;
}

const char *wire_type_name(unsigned type) {
  const struct wire__schema *s = wire__schema_of(type);
  return s ? s->name : "UNKNOWN";
}

static const char *const level_names[] = {
    "DEFAULT", "ONE",       "TWO",          "THREE",      "QUORUM",
    "ALL",     "LOCAL_ONE", "LOCAL_QUORUM", "EACH_QUORUM"};

const char *wire_level_name(int32_t level) {
  if (level > 0 || level < WIRE_LEVEL_MIN)
    return NULL;
  assert((size_t)-level < sizeof level_names / sizeof level_names[0]);
  return level_names[-level];
}

int wire_level_parse(const char *s, int32_t *out) {
  if (!s || !*s)
    return CHORUS_EINVAL;
  for (int32_t k = 0; k >= WIRE_LEVEL_MIN; k--)
    if (strcasecmp(s, level_names[-k]) == 0) {
      *out = k;
      return CHORUS_OK;
    }
  for (const char *p = s; *p; p++)
    if (!isdigit((unsigned char)*p))
      return CHORUS_EINVAL;
  if (strlen(s) > 3)
    return CHORUS_EINVAL;
  long v = strtol(s, NULL, 10);
  if (v < 1 || v > (long)WIRE_MAX_REPLICAS)
    return CHORUS_EINVAL;
  *out = (int32_t)v;
  return CHORUS_OK;
}

/* The record's fields in wire order (wire.h, REPAIR_RANGES_REPLY). */
#define RANGE_FIELDS(r)                                                        \
  {                                                                            \
    &(r)->first, &(r)->last, &(r)->last_completed_ms, &(r)->age_ms,            \
        &(r)->exchanges, &(r)->segments_differing, &(r)->keys_differing,       \
        &(r)->keys_repaired, &(r)->bytes_sent, &(r)->bytes_received,           \
        &(r)->flags                                                            \
  }

_Static_assert(WIRE_REPAIR_RANGE_BYTES == 11 * 8, "eleven u64 fields");

void wire_repair_range_put(uint8_t *p, const struct wire_repair_range *r) {
  const uint64_t *f[] = RANGE_FIELDS(r);
  for (size_t i = 0; i < 11; i++)
    for (int b = 0; b < 8; b++)
      p[8 * i + (size_t)b] = (uint8_t)(*f[i] >> (56 - 8 * b));
}

void wire_repair_range_get(const uint8_t *p, struct wire_repair_range *r) {
  uint64_t *f[] = RANGE_FIELDS(r);
  for (size_t i = 0; i < 11; i++) {
    uint64_t v = 0;
    for (int b = 0; b < 8; b++)
      v = v << 8 | p[8 * i + (size_t)b];
    *f[i] = v;
  }
}

static void put32(uint8_t *p, uint32_t v) {
  for (int b = 0; b < 4; b++)
    p[b] = (uint8_t)(v >> (24 - 8 * b));
}
static void put64(uint8_t *p, uint64_t v) {
  for (int b = 0; b < 8; b++)
    p[b] = (uint8_t)(v >> (56 - 8 * b));
}
static uint32_t get32(const uint8_t *p) {
  uint32_t v = 0;
  for (int b = 0; b < 4; b++)
    v = v << 8 | p[b];
  return v;
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int b = 0; b < 8; b++)
    v = v << 8 | p[b];
  return v;
}

_Static_assert(WIRE_TRACE_EVENT_BYTES == 32, "the record of wire.h, TRACE");

void wire_trace_event_put(uint8_t *p, const struct wire_trace_event *e) {
  p[0] = e->kind;
  p[1] = e->state;
  p[2] = e->flags;
  p[3] = 0;
  put32(p + 4, e->at_ms);
  put64(p + 8, e->node);
  put64(p + 16, e->other);
  put32(p + 24, e->synced_ms);
  put32(p + 28, e->answered_ms);
}

void wire_trace_event_get(const uint8_t *p, struct wire_trace_event *e) {
  e->kind = p[0];
  e->state = p[1];
  e->flags = p[2];
  e->at_ms = get32(p + 4);
  e->node = get64(p + 8);
  e->other = get64(p + 16);
  e->synced_ms = get32(p + 24);
  e->answered_ms = get32(p + 28);
}
