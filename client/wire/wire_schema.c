/* wire_schema.c: the table of every chorus message and its fields, and the
 * field-level helpers that encoder, decoder and tests share.
 *
 * Each row is one message type: its fields in wire order (after type and
 * request_id), their kind, where they live in struct wire_msg, and their
 * range or length limits. docs/PROTOCOL.md mirrors this table; change both.
 */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "wire_int.h"

#define OFF(m) ((uint16_t)offsetof(struct wire_msg, m))
#define WSIZE(m) ((uint8_t)sizeof(((struct wire_msg *)0)->m))
#define U(nm, m, mx)                                                           \
  { nm, WIRE__K_UINT, WSIZE(m), OFF(m), 0, 0, (mx), 0, 0 }
#define I(nm, m, mn, mx)                                                       \
  { nm, WIRE__K_INT, WSIZE(m), OFF(m), (mn), (mx), 0, 0, 0 }
#define BIN(nm, m, mn, mx)                                                     \
  { nm, WIRE__K_BIN, 0, OFF(m), 0, 0, (mx), (mn), 0 }
#define TEXT(nm, m, mn, mx)                                                    \
  { nm, WIRE__K_TEXT, 0, OFF(m), 0, 0, (mx), (mn), 0 }
#define OPTS(m)                                                                \
  { "opts", WIRE__K_OPTS, 0, OFF(m), 0, 0, 0, 0, 0 }
/* An optional unsigned field (struct wire__field, @opt). */
#define UOPT(nm, m, mx)                                                        \
  { nm, WIRE__K_UINT, WSIZE(m), OFF(m), 0, 0, (mx), 0, 1 }
#define BLIST(nm, m, mx)                                                       \
  { nm, WIRE__K_BLIST, 0, OFF(m), 0, 0, (mx), 0, 0 }

/* Byte fields without a limit of their own are bounded by the frame. */
#define ANY WIRE_MAX_FRAME_HARD

const struct wire__schema wire__schemas[] = {
    {WIRE_HELLO,
     "HELLO",
     5,
     {U("version", hello.version, UINT32_MAX),
      TEXT("cluster", hello.cluster, 1, WIRE_MAX_CLUSTER),
      U("role", hello.role, WIRE_ROLE_MAX),
      U("node_id", hello.node_id, UINT64_MAX),
      BIN("credentials", hello.credentials, 0, WIRE_MAX_CREDENTIALS)}},
    {WIRE_WELCOME,
     "WELCOME",
     3,
     {U("version", welcome.version, UINT32_MAX),
      TEXT("cluster", welcome.cluster, 1, WIRE_MAX_CLUSTER),
      U("node_id", welcome.node_id, UINT64_MAX)}},
    {WIRE_ERROR,
     "ERROR",
     2,
     {I("code", error.code, INT32_MIN, -1),
      TEXT("text", error.text, 0, WIRE_MAX_ERROR_TEXT)}},
    {WIRE_GET,
     "GET",
     2,
     {BIN("key", get.key, 1, WIRE_MAX_KEY_FIELD), OPTS(get.opts)}},
    {WIRE_PUT,
     "PUT",
     4,
     {BIN("key", put.key, 1, WIRE_MAX_KEY_FIELD),
      BIN("value", put.value, 0, ANY),
      BIN("context", put.context, 0, WIRE_MAX_CONTEXT), OPTS(put.opts)}},
    {WIRE_DELETE,
     "DELETE",
     3,
     {BIN("key", del.key, 1, WIRE_MAX_KEY_FIELD),
      BIN("context", del.context, 0, WIRE_MAX_CONTEXT), OPTS(del.opts)}},
    {WIRE_GET_REPLY,
     "GET_REPLY",
     2,
     {BLIST("values", get_reply.values, ANY),
      BIN("context", get_reply.context, 0, WIRE_MAX_CONTEXT)}},
    {WIRE_WRITE_REPLY,
     "WRITE_REPLY",
     1,
     {BIN("context", write_reply.context, 0, WIRE_MAX_CONTEXT)}},
    {WIRE_GET_REPLY2,
     "GET_REPLY2",
     5,
     {BLIST("values", get_reply.values, ANY),
      BIN("context", get_reply.context, 0, WIRE_MAX_CONTEXT),
      U("flags", get_reply.flags, WIRE_REPLY_FLAGS_MAX),
      U("siblings", get_reply.siblings, UINT32_MAX),
      U("bytes", get_reply.bytes, UINT64_MAX)}},
    {WIRE_WRITE_REPLY2,
     "WRITE_REPLY2",
     4,
     {BIN("context", write_reply.context, 0, WIRE_MAX_CONTEXT),
      U("flags", write_reply.flags, WIRE_REPLY_FLAGS_MAX),
      U("siblings", write_reply.siblings, UINT32_MAX),
      U("bytes", write_reply.bytes, UINT64_MAX)}},
    {WIRE_PUT_TTL,
     "PUT_TTL",
     5,
     {BIN("key", put.key, 1, WIRE_MAX_KEY_FIELD),
      BIN("value", put.value, 0, ANY),
      BIN("context", put.context, 0, WIRE_MAX_CONTEXT), OPTS(put.opts),
      U("ttl_ms", put.ttl_ms, WIRE_MAX_TTL_MS)}},
    {WIRE_COUNTER_ADD,
     "COUNTER_ADD",
     4,
     {BIN("key", counter_add.key, 1, WIRE_MAX_KEY_FIELD),
      I("delta", counter_add.delta, INT64_MIN, INT64_MAX),
      U("op_id", counter_add.op_id, UINT64_MAX), OPTS(counter_add.opts)}},
    {WIRE_COUNTER_READ,
     "COUNTER_READ",
     2,
     {BIN("key", counter_read.key, 1, WIRE_MAX_KEY_FIELD),
      OPTS(counter_read.opts)}},
    {WIRE_COUNTER_REPLY,
     "COUNTER_REPLY",
     1,
     {I("value", counter_reply.value, INT64_MIN, INT64_MAX)}},
    {WIRE_SET_ADD,
     "SET_ADD",
     3,
     {BIN("key", set_add.key, 1, WIRE_MAX_KEY_FIELD),
      BLIST("members", set_add.members, WIRE_MAX_MEMBER), OPTS(set_add.opts)}},
    {WIRE_SET_REMOVE,
     "SET_REMOVE",
     4,
     {BIN("key", set_remove.key, 1, WIRE_MAX_KEY_FIELD),
      BLIST("members", set_remove.members, WIRE_MAX_MEMBER),
      BIN("context", set_remove.context, 0, WIRE_MAX_CONTEXT),
      OPTS(set_remove.opts)}},
    {WIRE_SET_READ,
     "SET_READ",
     2,
     {BIN("key", set_read.key, 1, WIRE_MAX_KEY_FIELD), OPTS(set_read.opts)}},
    {WIRE_SET_REPLY,
     "SET_REPLY",
     2,
     {BLIST("members", set_reply.members, WIRE_MAX_MEMBER),
      BIN("context", set_reply.context, 0, WIRE_MAX_CONTEXT)}},
    {WIRE_LWW_SET,
     "LWW_SET",
     3,
     {BIN("key", lww_set.key, 1, WIRE_MAX_KEY_FIELD),
      BIN("value", lww_set.value, 0, ANY), OPTS(lww_set.opts)}},
    {WIRE_LWW_DELETE,
     "LWW_DELETE",
     2,
     {BIN("key", lww_key.key, 1, WIRE_MAX_KEY_FIELD), OPTS(lww_key.opts)}},
    {WIRE_LWW_READ,
     "LWW_READ",
     2,
     {BIN("key", lww_key.key, 1, WIRE_MAX_KEY_FIELD), OPTS(lww_key.opts)}},
    {WIRE_LWW_REPLY,
     "LWW_REPLY",
     4,
     {U("present", lww_reply.present, 1), BIN("value", lww_reply.value, 0, ANY),
      U("ts", lww_reply.ts, UINT64_MAX),
      U("node", lww_reply.node, UINT64_MAX)}},
    {WIRE_MAP_UPDATE,
     "MAP_UPDATE",
     4,
     {BIN("key", map_update.key, 1, WIRE_MAX_KEY_FIELD),
      BIN("ops", map_update.ops, 1, ANY),
      BIN("context", map_update.context, 0, WIRE_MAX_CONTEXT),
      OPTS(map_update.opts)}},
    {WIRE_MAP_READ,
     "MAP_READ",
     2,
     {BIN("key", map_read.key, 1, WIRE_MAX_KEY_FIELD), OPTS(map_read.opts)}},
    {WIRE_MAP_REPLY,
     "MAP_REPLY",
     2,
     {BIN("map", map_reply.map, 0, ANY),
      BIN("context", map_reply.context, 0, WIRE_MAX_CONTEXT)}},
    {WIRE_REPLICA_READ,
     "REPLICA_READ",
     2,
     {U("token", replica_read.token, UINT64_MAX),
      BIN("key", replica_read.key, 1, WIRE_MAX_KEY_FIELD)}},
    {WIRE_REPLICA_READ_REPLY,
     "REPLICA_READ_REPLY",
     1,
     {BIN("object", replica_read_reply.object, 0, ANY)}},
    {WIRE_REPLICA_WRITE,
     "REPLICA_WRITE",
     4,
     {U("token", replica_write.token, UINT64_MAX),
      BIN("key", replica_write.key, 1, WIRE_MAX_KEY_FIELD),
      BIN("object", replica_write.object, 1, ANY),
      U("flags", replica_write.flags, WIRE_REPLICA_FLAGS_ALL)}},
    {WIRE_REPLICA_ACK,
     "REPLICA_ACK",
     1,
     {I("status", replica_ack.status, INT32_MIN, 0)}},
    {WIRE_REPLICA_WRITE2,
     "REPLICA_WRITE2",
     5,
     {U("token", replica_write.token, UINT64_MAX),
      BIN("key", replica_write.key, 1, WIRE_MAX_KEY_FIELD),
      BIN("object", replica_write.object, 1, ANY),
      U("flags", replica_write.flags, WIRE_REPLICA_FLAGS_ALL),
      U("epoch", replica_write.epoch, UINT64_MAX)}},
    {WIRE_REPLICA_FORWARD,
     "REPLICA_FORWARD",
     7,
     {U("token", replica_forward.w.token, UINT64_MAX),
      BIN("key", replica_forward.w.key, 1, WIRE_MAX_KEY_FIELD),
      BIN("object", replica_forward.w.object, 1, ANY),
      U("flags", replica_forward.w.flags, WIRE_REPLICA_FLAGS_ALL),
      U("epoch", replica_forward.w.epoch, UINT64_MAX),
      BIN("targets", replica_forward.targets, 8, 8 * WIRE_MAX_FORWARD_TARGETS),
      U("timeout_ms", replica_forward.timeout_ms, WIRE_MAX_TIMEOUT_MS)}},
    {WIRE_REPLICA_RELAY_ACK,
     "REPLICA_RELAY_ACK",
     2,
     {U("replica", replica_relay_ack.replica, UINT64_MAX),
      I("status", replica_relay_ack.status, INT32_MIN, 0)}},
    {WIRE_HINT_DELIVER,
     "HINT_DELIVER",
     5,
     {U("target", hint_deliver.target, UINT64_MAX),
      U("hint_seq", hint_deliver.hint_seq, UINT64_MAX),
      U("token", hint_deliver.token, UINT64_MAX),
      BIN("key", hint_deliver.key, 1, WIRE_MAX_KEY_FIELD),
      BIN("object", hint_deliver.object, 1, ANY)}},
    {WIRE_HINT_ACK,
     "HINT_ACK",
     2,
     {U("hint_seq", hint_ack.hint_seq, UINT64_MAX),
      I("status", hint_ack.status, INT32_MIN, 0)}},
    {WIRE_RING_QUERY, "RING_QUERY", 0, {{0}}},
    {WIRE_RING_REPLY,
     "RING_REPLY",
     3,
     {U("epoch", ring_reply.epoch, UINT64_MAX),
      U("vnodes", ring_reply.vnodes, 65535),
      {"nodes", WIRE__K_NODES, 0, OFF(ring_reply), 0, 0, 0, 0, 0}}},
    {WIRE_STATUS_QUERY, "STATUS_QUERY", 0, {{0}}},
    {WIRE_STATUS_REPLY,
     "STATUS_REPLY",
     2,
     {U("node_id", status_reply.node_id, UINT64_MAX),
      {"stats", WIRE__K_STATS, 0, OFF(status_reply), 0, 0, 0, 0, 0}}},
    {WIRE_GOSSIP, "GOSSIP", 1, {BIN("packet", gossip.packet, 1, ANY)}},
    {WIRE_META, "META", 1, {BIN("msg", meta.msg, 1, ANY)}},
    {WIRE_CLUSTER_QUERY, "CLUSTER_QUERY", 0, {{0}}},
    {WIRE_CLUSTER_REPLY,
     "CLUSTER_REPLY",
     10,
     {U("node_id", cluster_reply.node_id, UINT64_MAX),
      TEXT("node_name", cluster_reply.node_name, 0, WIRE_MAX_NAME),
      U("leader_id", cluster_reply.leader_id, UINT64_MAX),
      TEXT("leader_name", cluster_reply.leader_name, 0, WIRE_MAX_NAME),
      U("term", cluster_reply.term, UINT64_MAX),
      U("commit_index", cluster_reply.commit_index, UINT64_MAX),
      U("applied_index", cluster_reply.applied_index, UINT64_MAX),
      U("epoch", cluster_reply.epoch, UINT64_MAX),
      U("raft_state", cluster_reply.raft_state, WIRE_RAFT_STATE_MAX),
      {"members", WIRE__K_MEMBERS, 0, OFF(cluster_reply), 0, 0, 0, 0, 0}}},
    {WIRE_CLUSTER_REMOVE,
     "CLUSTER_REMOVE",
     2,
     {TEXT("name", cluster_remove.name, 1, WIRE_MAX_NAME),
      U("force", cluster_remove.force, 1)}},
    {WIRE_RING_REPLY2,
     "RING_REPLY2",
     3,
     {U("epoch", ring_reply.epoch, UINT64_MAX),
      U("vnodes", ring_reply.vnodes, 65535),
      {"nodes", WIRE__K_NODES, 0, OFF(ring_reply), 0, 0, WIRE_MAX_NAME, 0, 0}}},
    {WIRE_STATUS_REPLY2,
     "STATUS_REPLY2",
     3,
     {U("node_id", status_reply.node_id, UINT64_MAX),
      TEXT("name", status_reply.name, 0, WIRE_MAX_NAME),
      {"stats", WIRE__K_STATS, 0, OFF(status_reply), 0, 0, 0, 0, 0}}},
    {WIRE_CLUSTER_DECOMMISSION,
     "CLUSTER_DECOMMISSION",
     2,
     {TEXT("name", cluster_decommission.name, 1, WIRE_MAX_NAME),
      U("force", cluster_decommission.force, 1)}},
    {WIRE_CLUSTER_REPLACE,
     "CLUSTER_REPLACE",
     2,
     {TEXT("name", cluster_replace.name, 1, WIRE_MAX_NAME),
      TEXT("with", cluster_replace.with, 1, WIRE_MAX_NAME)}},
    {WIRE_CLUSTER_PLAN,
     "CLUSTER_PLAN",
     5,
     {U("action", cluster_plan.action, WIRE_PLAN_ACTION_MAX),
      TEXT("name", cluster_plan.name, 0, WIRE_MAX_NAME),
      TEXT("dc", cluster_plan.dc, 0, WIRE_MAX_LABEL),
      TEXT("rack", cluster_plan.rack, 0, WIRE_MAX_LABEL),
      U("vnodes", cluster_plan.vnodes, 65535)}},
    {WIRE_CLUSTER_PLAN_REPLY,
     "CLUSTER_PLAN_REPLY",
     6,
     {U("epoch", cluster_plan_reply.epoch, UINT64_MAX),
      U("basis_keys", cluster_plan_reply.basis_keys, UINT64_MAX),
      U("basis_bytes", cluster_plan_reply.basis_bytes, UINT64_MAX),
      U("basis_ppm", cluster_plan_reply.basis_ppm, WIRE_SHARE_PPM_MAX),
      TEXT("note", cluster_plan_reply.note, 0, WIRE_MAX_ERROR_TEXT),
      {"moves", WIRE__K_MOVES, 0, OFF(cluster_plan_reply), 0, 0, 0, 0, 0}}},
    {WIRE_CLUSTER_STAGE,
     "CLUSTER_STAGE",
     4,
     {U("action", cluster_stage.action, WIRE_STAGE_ACTION_MAX),
      TEXT("name", cluster_stage.name, 0, WIRE_MAX_NAME),
      TEXT("with", cluster_stage.with, 0, WIRE_MAX_NAME),
      U("force", cluster_stage.force, 1)}},
    {WIRE_REPAIR_STATUS, "REPAIR_STATUS", 0, {{0}}},
    {WIRE_REPAIR_STATUS_REPLY,
     "REPAIR_STATUS_REPLY",
     3,
     {U("node_id", status_reply.node_id, UINT64_MAX),
      TEXT("name", status_reply.name, 0, WIRE_MAX_NAME),
      {"stats", WIRE__K_STATS, 0, OFF(status_reply), 0, 0, 0, 0, 0}}},
    {WIRE_REPAIR_NOW, "REPAIR_NOW", 0, {{0}}},
    {WIRE_REPAIR_RANGES,
     "REPAIR_RANGES",
     3,
     {U("first", repair_ranges.first, UINT64_MAX),
      U("last", repair_ranges.last, UINT64_MAX),
      U("now", repair_ranges.now, 1)}},
    {WIRE_REPAIR_RANGES_REPLY,
     "REPAIR_RANGES_REPLY",
     4,
     {U("node_id", repair_ranges_reply.status.node_id, UINT64_MAX),
      TEXT("name", repair_ranges_reply.status.name, 0, WIRE_MAX_NAME),
      {"stats", WIRE__K_STATS, 0, OFF(repair_ranges_reply.status), 0, 0, 0, 0,
       0},
      BIN("ranges", repair_ranges_reply.ranges, 0,
          WIRE_REPAIR_RANGE_BYTES *WIRE_MAX_REPAIR_RANGES)}},
    {WIRE_STREAM_PULL,
     "STREAM_PULL",
     7,
     {U("epoch", stream_pull.epoch, UINT64_MAX),
      U("first", stream_pull.first, UINT64_MAX),
      U("last", stream_pull.last, UINT64_MAX),
      BIN("after", stream_pull.after, 0, 8 + WIRE_MAX_KEY_FIELD),
      U("max_bytes", stream_pull.max_bytes, WIRE_MAX_FRAME_PEER / 2),
      UOPT("class_tag", stream_pull.class_tag, UINT64_MAX),
      UOPT("class_map", stream_pull.class_map, UINT64_MAX)}},
    {WIRE_STREAM_CHUNK,
     "STREAM_CHUNK",
     3,
     {BLIST("entries", stream_chunk.entries, ANY),
      U("sum", stream_chunk.sum, UINT64_MAX), U("more", stream_chunk.more, 1)}},
    {WIRE_AAE_TREE_REQ,
     "AAE_TREE_REQ",
     7,
     {U("epoch", aae_tree_req.epoch, UINT64_MAX),
      U("bits", aae_tree_req.bits, 24), U("level", aae_tree_req.level, 1),
      BIN("intervals", aae_tree_req.intervals, 0, 16 * WIRE_AAE_MAX_INTERVALS),
      BIN("ids", aae_tree_req.ids, 0, 4 * WIRE_AAE_MAX_IDS),
      UOPT("class_tag", aae_tree_req.class_tag, UINT64_MAX),
      UOPT("class_map", aae_tree_req.class_map, UINT64_MAX)}},
    {WIRE_AAE_TREE,
     "AAE_TREE",
     1,
     {BIN("hashes", aae_tree.hashes, 0, 8 * WIRE_AAE_MAX_IDS)}},
    {WIRE_AAE_KEYS_REQ,
     "AAE_KEYS_REQ",
     6,
     {U("epoch", aae_keys_req.epoch, UINT64_MAX),
      BIN("intervals", aae_keys_req.intervals, 0, 16 * WIRE_AAE_MAX_INTERVALS),
      BIN("after", aae_keys_req.after, 0, 8 + WIRE_MAX_KEY_FIELD),
      U("max_keys", aae_keys_req.max_keys, WIRE_AAE_MAX_KEYS),
      UOPT("class_tag", aae_keys_req.class_tag, UINT64_MAX),
      UOPT("class_map", aae_keys_req.class_map, UINT64_MAX)}},
    {WIRE_AAE_KEYS,
     "AAE_KEYS",
     2,
     {BLIST("entries", aae_keys.entries, WIRE_MAX_KEY_FIELD),
      U("more", aae_keys.more, 1)}},
    {WIRE_STREAM_CHUNK2,
     "STREAM_CHUNK2",
     4,
     {BLIST("entries", stream_chunk.entries, ANY),
      U("sum", stream_chunk.sum, UINT64_MAX), U("more", stream_chunk.more, 1),
      U("empty_to", stream_chunk.empty_to, UINT64_MAX)}},
    {WIRE_CAS,
     "CAS",
     5,
     {BIN("key", cas.key, 1, WIRE_MAX_KEY_FIELD),
      U("cond", cas.cond, WIRE_CAS_COND_MAX),
      BIN("expected", cas.expected, 0, ANY), BIN("value", cas.value, 0, ANY),
      OPTS(cas.opts)}},
    {WIRE_CAS_REPLY,
     "CAS_REPLY",
     4,
     {U("applied", cas_reply.applied, 1), U("present", cas_reply.present, 1),
      BIN("value", cas_reply.value, 0, ANY),
      BIN("context", cas_reply.context, WIRE_CAS_CONTEXT_LEN,
          WIRE_CAS_CONTEXT_LEN)}},
    {WIRE_PAXOS_PREPARE,
     "PAXOS_PREPARE",
     4,
     {U("token", paxos.token, UINT64_MAX),
      BIN("key", paxos.key, 1, WIRE_MAX_KEY_FIELD),
      U("ballot_time", paxos.ballot_time, UINT64_MAX),
      U("ballot_node", paxos.ballot_node, UINT64_MAX)}},
    {WIRE_PAXOS_PROMISE,
     "PAXOS_PROMISE",
     4,
     {U("round_time", paxos_promise.round_time, UINT64_MAX),
      U("round_node", paxos_promise.round_node, UINT64_MAX),
      U("ok", paxos_promise.ok, 1), BIN("state", paxos_promise.state, 1, ANY)}},
    {WIRE_PAXOS_PROPOSE,
     "PAXOS_PROPOSE",
     6,
     {U("token", paxos.token, UINT64_MAX),
      BIN("key", paxos.key, 1, WIRE_MAX_KEY_FIELD),
      U("ballot_time", paxos.ballot_time, UINT64_MAX),
      U("ballot_node", paxos.ballot_node, UINT64_MAX),
      U("present", paxos.present, 1), BIN("value", paxos.value, 0, ANY)}},
    {WIRE_PAXOS_ACCEPT,
     "PAXOS_ACCEPT",
     5,
     {U("round_time", paxos_accept.round_time, UINT64_MAX),
      U("round_node", paxos_accept.round_node, UINT64_MAX),
      U("accepted", paxos_accept.accepted, 1),
      U("promised_time", paxos_accept.promised_time, UINT64_MAX),
      U("promised_node", paxos_accept.promised_node, UINT64_MAX)}},
    {WIRE_PAXOS_COMMIT,
     "PAXOS_COMMIT",
     6,
     {U("token", paxos.token, UINT64_MAX),
      BIN("key", paxos.key, 1, WIRE_MAX_KEY_FIELD),
      U("ballot_time", paxos.ballot_time, UINT64_MAX),
      U("ballot_node", paxos.ballot_node, UINT64_MAX),
      U("present", paxos.present, 1), BIN("value", paxos.value, 0, ANY)}},
    {WIRE_LOCK,
     "LOCK",
     8,
     {U("op", lock.op, WIRE_LOCK_OP_MAX),
      BIN("key", lock.key, 1, WIRE_MAX_KEY_FIELD),
      BIN("name", lock.name, 0, WIRE_MAX_LOCK_NAME),
      BIN("value", lock.value, 0, ANY),
      BIN("holder", lock.holder, 0, WIRE_MAX_LOCK_HOLDER),
      U("token", lock.token, UINT64_MAX),
      U("ttl_ms", lock.ttl_ms, WIRE_MAX_TTL_MS), OPTS(lock.opts)}},
    {WIRE_LOCK_REPLY,
     "LOCK_REPLY",
     9,
     {U("applied", lock_reply.applied, 1),
      U("refusal", lock_reply.refusal, WIRE_LOCK_REFUSAL_MAX),
      U("held", lock_reply.held, 1), U("token", lock_reply.token, UINT64_MAX),
      BIN("holder", lock_reply.holder, 0, WIRE_MAX_LOCK_HOLDER),
      U("expires", lock_reply.expires, UINT64_MAX),
      U("left_ms", lock_reply.left_ms, UINT64_MAX),
      U("present", lock_reply.present, 1),
      BIN("value", lock_reply.value, 0, ANY)}},
    {WIRE_KEYSPACE,
     "KEYSPACE",
     9,
     {U("op", keyspace.op, WIRE_KS_OP_MAX),
      TEXT("name", keyspace.name, 0, WIRE_MAX_KEYSPACE_NAME),
      U("type", keyspace.type, WIRE_MAX_KEYSPACE_TYPE),
      TEXT("replication", keyspace.replication, 0, WIRE_MAX_KEYSPACE_REPL),
      I("read", keyspace.read, WIRE_LEVEL_MIN, 64),
      I("write", keyspace.write, WIRE_LEVEL_MIN, 64),
      U("ttl_ms", keyspace.ttl_ms, WIRE_MAX_TTL_MS),
      U("siblings_warn", keyspace.siblings_warn, WIRE_MAX_KEYSPACE_SIBLINGS),
      U("siblings_max", keyspace.siblings_max, WIRE_MAX_KEYSPACE_SIBLINGS)}},
    {WIRE_KEYSPACE_REPLY,
     "KEYSPACE_REPLY",
     2,
     {U("applied", keyspace_reply.applied, UINT64_MAX),
      BLIST("entries", keyspace_reply.entries, WIRE_KEYSPACE_RECORD_MAX)}},
    {WIRE_TRACE,
     "TRACE",
     2,
     {U("node_id", trace.node_id, UINT64_MAX),
      BIN("events", trace.events, 0,
          WIRE_TRACE_EVENT_BYTES *WIRE_MAX_TRACE_EVENTS)}},
    {WIRE_REPLICA_TIMES,
     "REPLICA_TIMES",
     3,
     {U("synced", replica_times.synced, 1),
      U("synced_ms", replica_times.synced_ms, UINT32_MAX),
      U("answered_ms", replica_times.answered_ms, UINT32_MAX)}},
    {WIRE_USER,
     "USER",
     9,
     {U("op", user.op, WIRE_USER_OP_MAX),
      TEXT("name", user.name, 0, WIRE_MAX_USER_NAME),
      BIN("salt", user.salt, 0, WIRE_USER_SALT_BYTES),
      U("ops", user.ops, UINT32_MAX), U("mem_kib", user.mem_kib, UINT32_MAX),
      BIN("stored_key", user.stored_key, 0, WIRE_USER_KEY_BYTES),
      BIN("server_key", user.server_key, 0, WIRE_USER_KEY_BYTES),
      U("role", user.role, WIRE_MAX_USER_ROLE),
      TEXT("keyspace", user.keyspace, 0, WIRE_MAX_KEYSPACE_NAME)}},
    {WIRE_USER_REPLY,
     "USER_REPLY",
     2,
     {U("applied", user_reply.applied, UINT64_MAX),
      BLIST("entries", user_reply.entries, WIRE_USER_RECORD_MAX)}},
    {WIRE_AUTH_CHALLENGE,
     "AUTH_CHALLENGE",
     4,
     {BIN("salt", auth_challenge.salt, WIRE_USER_SALT_BYTES,
          WIRE_USER_SALT_BYTES),
      U("ops", auth_challenge.ops, UINT32_MAX),
      U("mem_kib", auth_challenge.mem_kib, UINT32_MAX),
      BIN("nonce", auth_challenge.nonce, WIRE_AUTH_NONCE_BYTES,
          WIRE_AUTH_NONCE_BYTES)}},
    {WIRE_AUTH_PROOF,
     "AUTH_PROOF",
     1,
     {BIN("proof", auth_key.key, WIRE_USER_KEY_BYTES, WIRE_USER_KEY_BYTES)}},
    {WIRE_AUTH_OK,
     "AUTH_OK",
     1,
     {BIN("signature", auth_key.key, WIRE_USER_KEY_BYTES,
          WIRE_USER_KEY_BYTES)}},
    {WIRE_PEER_CHALLENGE,
     "PEER_CHALLENGE",
     2,
     {BIN("nonce", peer_challenge.nonce, WIRE_PEER_NONCE_BYTES,
          WIRE_PEER_NONCE_BYTES),
      BIN("mac", peer_challenge.mac, WIRE_PEER_MAC_BYTES,
          WIRE_PEER_MAC_BYTES)}},
    {WIRE_PEER_PROOF,
     "PEER_PROOF",
     1,
     {BIN("mac", peer_proof.mac, WIRE_PEER_MAC_BYTES, WIRE_PEER_MAC_BYTES)}},
    {WIRE_PEER_TAG,
     "PEER_TAG",
     1,
     {BIN("tag", peer_tag.tag, WIRE_PEER_TAG_BYTES, WIRE_PEER_TAG_BYTES)}},
    {WIRE_CLUSTER_KEY,
     "CLUSTER_KEY",
     3,
     {U("op", cluster_key.op, WIRE_KEY_OP_MAX),
      U("id", cluster_key.id, UINT32_MAX),
      BIN("key", cluster_key.key, 0, WIRE_KEY_BYTES)}},
    {WIRE_CLUSTER_KEY_REPLY,
     "CLUSTER_KEY_REPLY",
     5,
     {U("applied", cluster_key_reply.applied, UINT64_MAX),
      U("version", cluster_key_reply.version, UINT64_MAX),
      U("id", cluster_key_reply.id, UINT32_MAX),
      BLIST("entries", cluster_key_reply.entries, WIRE_KEY_RECORD_BYTES),
      TEXT("behind", cluster_key_reply.behind, 0, WIRE_MAX_KEY_BEHIND)}},
};
const size_t wire__nschemas = sizeof wire__schemas / sizeof wire__schemas[0];

/* Type number -> row, built on first use would need a lock; the table is
 * small and sorted, so a binary search is as simple and thread-safe. */
const struct wire__schema *wire__schema_of(unsigned type) {
  size_t lo = 0, hi = wire__nschemas;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (wire__schemas[mid].type == type)
      return &wire__schemas[mid];
    if (wire__schemas[mid].type < type)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

uint64_t wire__uint_load(const void *p, unsigned width) {
  assert(width == 1 || width == 4 || width == 8);
  switch (width) {
  case 1: {
    uint8_t v;
    memcpy(&v, p, 1);
    return v;
  }
  case 4: {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
  }
  default: {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
  }
  }
}

int64_t wire__int_load(const void *p, unsigned width) {
  assert(width == 4 || width == 8);
  if (width == 4) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
  }
  int64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* Callers have range-checked @v against the field, which fits the width. */
void wire__uint_store(void *p, unsigned width, uint64_t v) {
  assert(width == 1 || width == 4 || width == 8);
  assert(width == 8 || v >> (8 * width) == 0);
  if (width == 1) {
    uint8_t x = (uint8_t)v;
    memcpy(p, &x, 1);
  } else if (width == 4) {
    uint32_t x = (uint32_t)v;
    memcpy(p, &x, 4);
  } else {
    memcpy(p, &v, 8);
  }
}

void wire__int_store(void *p, unsigned width, int64_t v) {
  assert(width == 4 || width == 8);
  assert(width == 8 || (v >= INT32_MIN && v <= INT32_MAX));
  if (width == 4) {
    int32_t x = (int32_t)v;
    memcpy(p, &x, 4);
  } else {
    memcpy(p, &v, 8);
  }
}

static int level_check(int32_t v, const char *what, int code, char *errmsg) {
  if (v < WIRE_LEVEL_MIN || v > (int32_t)WIRE_MAX_REPLICAS)
    return chorus_errf(errmsg, code,
                       "opts.%s: %" PRId32 " is neither a level (%d..-1) nor "
                       "a count (0..%u)",
                       what, v, WIRE_LEVEL_MIN, WIRE_MAX_REPLICAS);
  return CHORUS_OK;
}

int wire__opts_check(const struct wire_options *o, int code, char *errmsg) {
  int rc;
  if ((rc = level_check(o->r, "r", code, errmsg)) ||
      (rc = level_check(o->w, "w", code, errmsg)) ||
      (rc = level_check(o->pr, "pr", code, errmsg)) ||
      (rc = level_check(o->pw, "pw", code, errmsg)))
    return rc;
  if (o->timeout_ms > WIRE_MAX_TIMEOUT_MS)
    return chorus_errf(errmsg, code,
                       "opts.timeout_ms: %" PRIu32 " exceeds %u ms",
                       o->timeout_ms, WIRE_MAX_TIMEOUT_MS);
  if (o->read_repair > WIRE_RR_MAX)
    return chorus_errf(errmsg, code, "opts.read_repair: unknown mode %u",
                       (unsigned)o->read_repair);
  if (o->dc.len > WIRE_MAX_LABEL || (o->dc.len > 0 && o->dc.ptr == NULL))
    return chorus_errf(errmsg, code, "opts.dc: %zu bytes, at most %u",
                       o->dc.len, WIRE_MAX_LABEL);
  if (o->keyspace.len > WIRE_MAX_KEYSPACE_NAME ||
      (o->keyspace.len > 0 && o->keyspace.ptr == NULL))
    return chorus_errf(errmsg, code, "opts.keyspace: %zu bytes, at most %u",
                       o->keyspace.len, WIRE_MAX_KEYSPACE_NAME);
  if (o->flags & ~WIRE_OPT_FLAGS_ALL)
    return chorus_errf(errmsg, code, "opts.flags: unknown bits 0x%x",
                       (unsigned)(o->flags & ~WIRE_OPT_FLAGS_ALL));
  return CHORUS_OK;
}

unsigned wire__schema_nopt(const struct wire__schema *s) {
  unsigned n = 0;
  while (n < s->nfields && s->f[s->nfields - 1 - n].opt)
    n++;
  return n;
}

unsigned wire__fields_sent(const struct wire__schema *s,
                           const struct wire_msg *m) {
  unsigned n = s->nfields;
  while (n > 0 && s->f[n - 1].opt) {
    const struct wire__field *f = &s->f[n - 1];
    assert(f->kind == WIRE__K_UINT);
    if (wire__uint_load((const char *)m + f->off, f->width) != 0)
      break;
    n--;
  }
  return n;
}

struct wire_options *wire_options_of(struct wire_msg *m) {
  return wire__opts_of(m);
}

bool wire_has_options(unsigned type) {
  struct wire_msg m = {.type = (uint8_t)type};
  return type <= UINT8_MAX && wire__opts_of(&m) != NULL;
}

struct wire_options *wire__opts_of(struct wire_msg *m) {
  const struct wire__schema *s = wire__schema_of(m->type);
  for (unsigned i = 0; s != NULL && i < s->nfields; i++)
    if (s->f[i].kind == WIRE__K_OPTS)
      return (struct wire_options *)((char *)m + s->f[i].off);
  return NULL;
}

static bool bytes_eq(struct wire_bytes a, struct wire_bytes b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool wire__msg_equal(const struct wire_msg *a, const struct wire_msg *b) {
  if (a->type != b->type || a->request_id != b->request_id)
    return false;
  const struct wire__schema *s = wire__schema_of(a->type);
  if (!s)
    return false;
  const char *pa = (const char *)a, *pb = (const char *)b;
  for (unsigned i = 0; i < s->nfields; i++) {
    const struct wire__field *f = &s->f[i];
    const void *fa = pa + f->off, *fb = pb + f->off;
    switch (f->kind) {
    case WIRE__K_UINT:
      if (wire__uint_load(fa, f->width) != wire__uint_load(fb, f->width))
        return false;
      break;
    case WIRE__K_INT:
      if (wire__int_load(fa, f->width) != wire__int_load(fb, f->width))
        return false;
      break;
    case WIRE__K_BOOL:
      if (*(const bool *)fa != *(const bool *)fb)
        return false;
      break;
    case WIRE__K_BIN:
    case WIRE__K_TEXT:
      if (!bytes_eq(*(const struct wire_bytes *)fa,
                    *(const struct wire_bytes *)fb))
        return false;
      break;
    case WIRE__K_OPTS: {
      const struct wire_options *x = fa, *y = fb;
      if (x->r != y->r || x->w != y->w || x->pr != y->pr || x->pw != y->pw ||
          x->timeout_ms != y->timeout_ms || x->sloppy != y->sloppy ||
          x->read_repair != y->read_repair || !bytes_eq(x->dc, y->dc) ||
          !bytes_eq(x->keyspace, y->keyspace) || x->flags != y->flags)
        return false;
      break;
    }
    case WIRE__K_BLIST: {
      const struct wire_bytes_list *x = fa, *y = fb;
      if (x->n != y->n)
        return false;
      for (size_t k = 0; k < x->n; k++)
        if (!bytes_eq(x->items[k], y->items[k]))
          return false;
      break;
    }
    case WIRE__K_NODES: {
      const struct wire_ring_reply *x = fa, *y = fb;
      if (x->nnodes != y->nnodes)
        return false;
      for (size_t k = 0; k < x->nnodes; k++) {
        const struct wire_ring_node *u = &x->nodes[k], *v = &y->nodes[k];
        if (u->id != v->id || u->state != v->state ||
            !bytes_eq(u->addr, v->addr) || !bytes_eq(u->dc, v->dc) ||
            !bytes_eq(u->rack, v->rack) ||
            (f->max > 0 && !bytes_eq(u->name, v->name)))
          return false;
      }
      break;
    }
    case WIRE__K_MEMBERS: {
      const struct wire_cluster_reply *x = fa, *y = fb;
      if (x->nmembers != y->nmembers)
        return false;
      for (size_t k = 0; k < x->nmembers; k++) {
        const struct wire_cluster_member *u = &x->members[k],
                                         *v = &y->members[k];
        if (u->id != v->id || u->state != v->state || u->role != v->role ||
            u->alive != v->alive || u->vnodes != v->vnodes ||
            u->share_ppm != v->share_ppm || !bytes_eq(u->name, v->name) ||
            !bytes_eq(u->addr, v->addr) || !bytes_eq(u->dc, v->dc) ||
            !bytes_eq(u->rack, v->rack))
          return false;
      }
      break;
    }
    case WIRE__K_MOVES: {
      const struct wire_cluster_plan_reply *x = fa, *y = fb;
      if (x->nmoves != y->nmoves)
        return false;
      for (size_t k = 0; k < x->nmoves; k++) {
        const struct wire_plan_move *u = &x->moves[k], *v = &y->moves[k];
        if (u->from != v->from || u->to != v->to || u->ranges != v->ranges ||
            u->share_ppm != v->share_ppm || u->est_keys != v->est_keys ||
            u->est_bytes != v->est_bytes ||
            !bytes_eq(u->from_name, v->from_name) ||
            !bytes_eq(u->to_name, v->to_name))
          return false;
      }
      break;
    }
    case WIRE__K_STATS: {
      const struct wire_status_reply *x = fa, *y = fb;
      if (x->nstats != y->nstats)
        return false;
      for (size_t k = 0; k < x->nstats; k++)
        if (x->stats[k].value != y->stats[k].value ||
            !bytes_eq(x->stats[k].name, y->stats[k].name))
          return false;
      break;
    }
    }
  }
  return true;
}
