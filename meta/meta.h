/* meta.h: the cluster's metadata: members, their tokens and ownership
 * states, the replication settings and the metadata epoch, kept by a Raft
 * group (DESIGN.md §10) and applied to the state machine below.
 *
 * THE STATE MACHINE
 *
 * struct meta_state is what every node agrees on: a list of members (id,
 * name, address, datacenter, rack, vnodes, state) sorted by id, the
 * replication settings, the epoch and the Raft index it was applied at.
 * It changes only by commands (struct meta_cmd) that the Raft log commits,
 * applied in log order by meta_state_apply(), which is deterministic: every
 * node applies the same commands to the same state and gets the same state.
 * A command that does not fit the state (a name already taken, an unknown
 * member) is applied as a no-op with a result code, so the log stays one
 * history and the proposer learns why.
 *
 * The epoch grows by one with every applied command that changes the ring's
 * input (a member added, a state changed, a member removed, replication
 * changed); the ring snapshot built from the state carries it as its
 * version.
 *
 * EXACTLY ONCE (Raft §6.3, "implementing linearizable semantics")
 *
 * A proposal is carried to the leader until it is answered, so one can be
 * committed twice: its PROPOSE reached a leader that appended it and lost
 * leadership before answering, and the resend reached the next leader. A
 * command therefore names its origin (the proposing node and its request
 * id), and the state keeps the outcome of the last META_MAX_SESSIONS
 * commands that had one. A command whose origin is among them is not
 * applied again: it answers with the first one's result. The table is part
 * of the state (snapshots carry it), so every node decides alike. A
 * duplicate is caught while fewer than META_MAX_SESSIONS commands have
 * been committed since the first copy; a proposal is resent for at most
 * its timeout (10 s at most in chorusd), far below that at metadata's
 * rates.
 *
 * Member states (a member's life):
 *   JOINING  known, receives the log; a pending replica of the ranges it
 *            takes (writes, no reads) while it streams them in
 *   NORMAL   owns its tokens
 *   LEAVING  still owns its tokens while the nodes that inherit them
 *            stream them (decommission: from it; removal of a dead node:
 *            from the other replicas); ends in its @goal, LEFT or REMOVED
 *   LEFT     owns nothing; kept so a name is not reused by accident
 *   REMOVED  taken out by an operator (cluster remove); owns nothing
 *   REPLACING owns its tokens but lost its data: the node came back with
 *            its name and an empty disk (a disk replacement). It is a
 *            pending replica of its own ranges (ring.h, RING_REPLACING:
 *            writes, no reads, its acks never make a quorum) while it
 *            streams them back from the other replicas; FINISH makes it
 *            NORMAL again
 *
 * TOPOLOGY CHANGES (issue 19; Cassandra's pending ranges, Riak's handoff)
 *
 * One change at a time: while any member is JOINING, LEAVING or
 * REPLACING, the
 * state is *changing* (meta_state_changing) and a JOIN of a new JOINING
 * member or a LEAVE is refused with CHORUS_EBUSY. The change's ranges are
 * ring_diff(current ring, future ring) (meta_state_moves): every node that
 * gains a range pulls it from the node giving it up and, once every range
 * it gains is durable, commits STREAMED(itself, epoch); the leader commits
 * FINISH(epoch) once every node that gains a range has (and every JOINING
 * member has, even one that gains nothing), which makes JOINING members
 * NORMAL and LEAVING ones their goal in one step, so the ring switches
 * once. Both carry the epoch they are about and are refused with
 * CHORUS_ESTALE when the epoch has moved (a forced REMOVE, new replication
 * settings: the streams start over for the new ranges). A forced REMOVE
 * applies at once, changing or not (an operator's way out of a change
 * that cannot finish). A LEAVE must leave a member to take the ranges:
 * the last member that owns tokens cannot leave (CHORUS_EINVAL,
 * meta_state_sole_owner), however few replicas that leaves, as the ranges
 * of a leaver are only ever streamed to a member that gains them.
 *
 * ENCODINGS (meta_codec.c)
 *
 * Commands, the state (snapshots, and the copy kept in STORE_META) and the
 * messages between nodes' metadata layers are msgpack, each decoder
 * hardened: sizes are checked before anything is allocated, every string
 * and count has a limit, and bytes that make no sense are CHORUS_EMALFORMED.
 *
 * Every encoding is one format byte followed by one msgpack array;
 * integers are unsigned unless marked, strings are msgpack str (no NUL
 * inside; the struct's array holds them with their NUL), bytes are msgpack
 * bin. Encoders write META_FORMAT_V8; decoders read V8, V7 (no keyring: no
 * KEY_* command, a state of 11), V6 (no users: no
 * USER_* command, a state of 10), V5 (no keyspaces:
 * no KEYSPACE_* command, a state of 8), V4 (members without tokens_of), V3 (no
 * REPLACE command, no REPLACING state), V2 (members without goal and ready,
 * none of the commands LEAVE, STREAMED, FINISH) and V1, which also had no
 * origin in commands and no sessions in the state (what a node of the first
 * metadata release left on disk):
 *
 *   cmd     = [1, member, origin...]                 JOIN
 *           | [2, id, state, origin...]              SET_STATE
 *           | [3, id, origin...]                     REMOVE
 *           | [4, repl, origin...]                   REPLICATION
 *           | [5, note_key, note_value, origin...]   NOTE
 *           | [6, id, goal, origin...]               LEAVE       (V3)
 *           | [7, id, epoch, origin...]              STREAMED    (V3)
 *           | [8, epoch, origin...]                  FINISH      (V3)
 *           | [9, id, with, disk, origin...]         REPLACE     (V4)
 *           | [10, staged_type, id, state, with, disk, origin...]
 *                                                    STAGE       (V4)
 *           | [11, commit (0..1), origin...]         COMMIT      (V4)
 *           | [12, keyspace, origin...]              KEYSPACE_CREATE (V6)
 *           | [13, keyspace, origin...]              KEYSPACE_ALTER  (V6)
 *           | [14, name, origin...]                  KEYSPACE_DROP   (V6)
 *           | [15, user, origin...]                  USER_CREATE     (V7)
 *           | [16, user, origin...]                  USER_PASSWD     (V7)
 *           | [17, name, origin...]                  USER_DROP       (V7)
 *           | [18, name, role, ks_id, origin...]     USER_GRANT      (V7)
 *           | [19, name, role, ks_id, origin...]     USER_REVOKE     (V7)
 *           | [20, key_id, key (bin 32), origin...]  KEY_INSTALL     (V8)
 *           | [21, key_id, origin...]                KEY_USE         (V8)
 *           | [22, key_id, origin...]                KEY_REMOVE      (V8)
 *           | [23, id, version, origin...]           KEY_APPLIED     (V8)
 *   origin  = proposer, req_id                       (V2 and V3; both 0
 *                                                     for none)
 *   member  = [id, name, addr, dc, rack, vnodes, state, since, goal, ready,
 *              disk, tokens_of]   (V1, V2: the first eight; V3: the first
 *                                  ten; V4: the first eleven)
 *   repl    = [n, [[dc, factor]...]]      dc_count pairs
 *   state   = [epoch, applied, note_key, note, repl, [member...],
 *              [session...], staged, [keyspace...], next_ks_id, [user...],
 *              keyring]
 *                                         (V1: no sessions; V2, V3: no
 *                                          staged; V4, V5: no keyspaces;
 *                                          V6: no users; V7: no keyring)
 *   keyring = [version, primary, primary_since, boot_retired (bool),
 *              [[key_id, key (bin 32), since]...], [[member, version]...]]
 *                                         keys sorted by id (at most
 *                                         META_MAX_KEYS), reports by member
 *   keyspace = [name, id, type, repl, read (signed), write (signed),
 *               ttl_ms, siblings_warn, siblings_max]   (repl may be
 *                                          [0, []]: the cluster's)
 *   user    = [name, salt (bin 16), ops, mem_kib, stored_key (bin 32),
 *              server_key (bin 32), [[role, ks_id]...]]
 *   staged  = [type, id, state, with, disk]  (type 0: none)
 *             members sorted by id, sessions by index
 *   session = [proposer, req_id, status (signed), index]
 *   msg     = [type, cluster, from, body]
 *   body    = raft | [req_id, cmd]        PROPOSE
 *           | [req_id, status (signed), index, leader, text]  PROPOSE_REPLY
 *   raft    = [1, term, prev_log_index, prev_log_term, leader_commit,
 *              [[term, type, bin]...]]                       AppendEntries
 *           | [2, term, rejected, last_log_index]            its result
 *           | [3, term, candidate_id, last_log_index, last_log_term,
 *              disrupt_leader (bool), pre_vote (bool)]       RequestVote
 *           | [4, term, vote_granted (bool), pre_vote (0..2)] its result
 *           | [5, term, last_index, last_term, [[id, address, role]...],
 *              conf_index, bin]                              InstallSnapshot
 *           | [6, term, last_log_index, last_log_term]       TimeoutNow
 *
 * (the raft codes are raft.h's RAFT_IO_*). A new format byte is how the
 * format evolves; a decoder refuses one it does not know (CHORUS_EVERSION).
 */
#ifndef CHORUS_META_H
#define CHORUS_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <raft.h>

#include "chorus_types.h"
#include "ring.h"

#define META_NAME_MAX 128u /* a member's name (--id), NUL included */
#define META_ADDR_MAX 64u  /* a member's peer address, NUL included */
#define META_MAX_MEMBERS RING_MAX_NODES
#define META_MAX_CMD_BYTES (64u * 1024)
#define META_MAX_STATE_BYTES (8u * 1024 * 1024)
/* Raft messages: at most this many entries per AppendEntries, each entry's
 * data at most META_MAX_ENTRY_BYTES, a snapshot's data at most
 * META_MAX_STATE_BYTES, a whole encoded message at most META_MAX_MSG_BYTES
 * (under WIRE_MAX_FRAME_PEER, 16 MiB, with room for the frame around it).
 * libraft 0.15 puts every entry from a follower's next index into one
 * AppendEntries: the sender clips n_entries (a prefix is a valid message)
 * before encoding, or the encoder refuses with CHORUS_ETOOBIG. */
#define META_MAX_ENTRIES 1024u
#define META_MAX_ENTRY_BYTES (1024u * 1024)
#define META_MAX_MSG_BYTES (12u * 1024 * 1024)
#define META_MAX_VOTERS 5u
#define META_TEXT_MAX 128u /* struct meta_msg's text, NUL included */
#define META_FORMAT_V1 1u  /* the first release: no origins, no sessions */
#define META_FORMAT_V2 2u  /* origins and sessions */
#define META_FORMAT_V3 3u  /* goal and ready, LEAVE, STREAMED, FINISH */
#define META_FORMAT_V4 4u  /* REPLACE, REPLACING, a member's disk */
#define META_FORMAT_V5 5u  /* a member's tokens_of */
#define META_FORMAT_V6 6u  /* keyspaces */
#define META_FORMAT_V7 7u  /* users */
#define META_FORMAT_V8                                                         \
  8u /* the first byte of every encoding written: the                          \
        gossip keyring */
/* The gossip keyring (V8): at most META_MAX_KEYS keys a node holds at once,
 * the boot key (--cluster-key) included while it is not retired (SWIM's
 * SWIM_MAX_KEYS; meta does not include swim.h). */
#define META_MAX_KEYS 4u
#define META_KEY_BYTES 32u
#define META_MAX_SESSIONS 512u /* outcomes remembered for deduplication */
#define META_MAX_KEYSPACES 256u
#define META_KEYSPACE_NAME_MAX 48u /* a keyspace's name, NUL included */
#define META_MAX_USERS 256u
#define META_USER_NAME_MAX 48u /* a user's name, NUL included */
#define META_MAX_GRANTS 16u    /* per user */
/* A user's verifier (client/auth/chorus_auth.h: SCRAM with Argon2id; meta
 * keeps the bytes and bounds, the node checks them against that module's). */
#define META_USER_SALT_BYTES 16u
#define META_USER_KEY_BYTES 32u
#define META_USER_OPS_MAX 10u
#define META_USER_MEM_KIB_MIN 8u
#define META_USER_MEM_KIB_MAX (256u * 1024)
/* Bounds of a keyspace's defaults (those of the wire: client/wire/wire.h's
 * WIRE_LEVEL_MIN, 64 replicas, WIRE_MAX_TTL_MS; meta does not include it). */
#define META_LEVEL_MIN (-8)
#define META_LEVEL_MAX 64
#define META_MAX_TTL_MS UINT64_C(315360000000)
#define META_MAX_SIBLINGS 100000u

enum meta_member_state {
  META_JOINING = 1,
  META_NORMAL = 2,
  META_LEAVING = 3,
  META_LEFT = 4,
  META_REMOVED = 5,
  META_REPLACING = 6, /* V4 */
  META_STATE_MAX = 6
};

const char *meta_member_state_name(enum meta_member_state s);

struct meta_member {
  chorus_node_id id; /* xxh3-64 of the name; never 0 */
  char name[META_NAME_MAX];
  char addr[META_ADDR_MAX];
  char dc[RING_NAME_MAX];
  char rack[RING_NAME_MAX];
  uint32_t vnodes; /* 0 means RING_DEFAULT_VNODES */
  uint8_t state;   /* enum meta_member_state */
  uint64_t since;  /* the Raft index at which it entered @state */
  uint8_t goal;    /* LEAVING: LEFT or REMOVED, where FINISH takes it; 0
                      otherwise */
  uint64_t ready;  /* the epoch of the last STREAMED it committed: it holds
                      every range it gains in the change at that epoch */
  uint64_t disk;   /* V4: the id of the data folder its node runs on, drawn
                      when that folder was created (0: unknown, a member
                      from V3): a node that finds another disk under its
                      name lost its own (REPLACING) */
  chorus_node_id tokens_of; /* V5: whose vnode tokens it holds (ring.h,
                               struct ring_node): 0 for its own; a
                               replacement's is the replaced member's */
};

/* The outcome of a command that named its origin (EXACTLY ONCE). */
struct meta_session {
  chorus_node_id proposer; /* never 0 */
  uint64_t req_id;
  int32_t status; /* meta_state_apply's result: CHORUS_OK or CHORUS_E* */
  uint64_t index; /* where it was applied */
};

/* A change staged for `chorus cluster commit` (META_CMD_STAGE): @type 0
 * for none. */
struct meta_staged {
  uint8_t type; /* META_CMD_LEAVE, META_CMD_REPLACE, META_CMD_REMOVE */
  chorus_node_id id, with;
  uint8_t state; /* LEAVE's goal */
  uint64_t disk;
};

/* The types a keyspace may hold (issue 21): ANY lets each key take its
 * type by first use, as the default keyspace does. */
enum meta_ks_type {
  META_KS_ANY = 0,
  META_KS_KV = 1,
  META_KS_LWW = 2,
  META_KS_COUNTER = 3,
  META_KS_SET = 4,
  META_KS_MAP = 5,
  META_KS_TYPE_MAX = 5
};

/* meta_ks_type_name: "any", "kv", "lww", "counter", "set", "map" or "?". */
const char *meta_ks_type_name(uint8_t type);
/* meta_ks_type_parse: the type called @name; -1 when none is. */
int meta_ks_type_parse(const char *name);

/* A keyspace (V6; Cassandra's keyspace, Riak's bucket type): a namespace
 * of keys with its own type and defaults. "default" is the keyspace of
 * requests that name none; it is not in the table and has none of
 * these. */
struct meta_keyspace {
  char name[META_KEYSPACE_NAME_MAX]; /* 1..47 of [A-Za-z0-9_-]; never
                                        "default" */
  uint32_t id;  /* > 0, the state's next_ks_id when created; never reused,
                   so a name dropped and created again is a new keyspace */
  uint8_t type; /* enum meta_ks_type */
  /* Its replication: n 0 and no datacenters means the cluster's; another
   * places its keys in a replication class of their own (ring.h). */
  struct ring_replication replication;
  int32_t read, write; /* default levels (META_LEVEL_MIN..MAX; 0: the
                          node's default) */
  uint64_t ttl_ms;     /* default time to live of a write (0: none) */
  uint32_t siblings_warn, siblings_max; /* kv siblings (0: the node's) */
};

/* Roles (issue 24), each including the ones below it: READ reads keys,
 * WRITE also writes them, ADMIN also changes the keyspace (and, granted
 * on every keyspace, the cluster: members, keyspaces, users). */
enum meta_role {
  META_ROLE_READ = 1,
  META_ROLE_WRITE = 2,
  META_ROLE_ADMIN = 3,
  META_ROLE_MAX = 3
};

/* meta_role_name: "read", "write", "admin" or "?"; meta_role_parse: the
 * role called @name, -1 when none is. */
const char *meta_role_name(uint8_t role);
int meta_role_parse(const char *name);

struct meta_grant {
  uint8_t role;   /* enum meta_role */
  uint32_t ks_id; /* a keyspace's id; 0: every keyspace, default included
                     (a keyspace dropped takes its grants with it) */
};

/* A user (V7, issue 24): a name and the verifier of its password (never
 * the password: chorus_auth.h), and what it may do. */
struct meta_user {
  char name[META_USER_NAME_MAX]; /* 1..47 of [A-Za-z0-9_.@-] */
  uint8_t salt[META_USER_SALT_BYTES];
  uint32_t ops, mem_kib; /* Argon2id's costs: 1..10 passes, 8 KiB..256 MiB */
  uint8_t stored_key[META_USER_KEY_BYTES];
  uint8_t server_key[META_USER_KEY_BYTES];
  uint8_t ngrants;
  struct meta_grant grants[META_MAX_GRANTS]; /* sorted by (ks_id, role),
                                                no duplicates */
};

/* The gossip keyring (V8, issue 24: memberlist's install -> use -> remove,
 * through the log). The boot key is each node's --cluster-key (derived
 * from the cluster name without one): the state never holds its bytes.
 * A node seals with the primary (the boot key while @primary is 0) and
 * opens with every key it holds (meta_keyring_keys).
 *
 * THE SAFETY RULE. A node must never seal with a key another member
 * cannot open yet, nor drop a key another member still seals with: either
 * makes its packets unreadable, probes fail and members are suspected.
 * So every member reports the keyring version it has applied to its SWIM
 * (KEY_APPLIED, proposed by the node itself once it has called
 * swim_keys_set), and the state judges: USE of key k only once every
 * member that is not LEFT or REMOVED reports a version >= k's @since (it
 * opens k), REMOVE only once every such member reports >= @primary_since
 * (it seals with the new primary, so nobody seals with the old one).
 * Otherwise CHORUS_EBUSY: try again (meta_keyring_check says who lags). */
struct meta_key {
  uint32_t id; /* meta_key_id(key): never 0 */
  uint8_t key[META_KEY_BYTES];
  uint64_t since; /* the keyring version its INSTALL made */
};

/* A member's report: it applied keyring version @version to its SWIM. */
struct meta_key_ack {
  chorus_node_id id;
  uint64_t version;
};

struct meta_keyring {
  uint64_t version;       /* +1 by every INSTALL, USE and REMOVE applied */
  uint32_t primary;       /* the sealing key's id; 0: the boot key */
  uint64_t primary_since; /* the version the last USE made (0: none) */
  bool boot_retired;      /* the boot key was removed: nobody opens it */
  uint8_t n;
  struct meta_key keys[META_MAX_KEYS]; /* sorted by id */
};

struct meta_state {
  uint64_t epoch;   /* grows with every change of the ring's input */
  uint64_t applied; /* the Raft index of the last applied command */
  /* The register META_CMD_NOTE writes (the simulator's linearizability
   * checker): the last NOTE's key (the writer's tag) and value. */
  uint64_t note_key, note;
  struct ring_replication replication;
  size_t n;                    /* members, sorted by id */
  struct meta_member *members; /* chorus_malloc'ed; n of them */
  /* The last META_MAX_SESSIONS outcomes, oldest first (by index). */
  size_t nsessions;
  struct meta_session *sessions;   /* chorus_malloc'ed */
  struct meta_staged staged;       /* V4 */
  size_t nks;                      /* V6: keyspaces, sorted by name */
  struct meta_keyspace *keyspaces; /* chorus_malloc'ed; nks of them */
  uint32_t next_ks_id;             /* the id the next one gets (from 1) */
  size_t nusers;                   /* V7: users, sorted by name */
  struct meta_user *users;         /* chorus_malloc'ed; nusers of them */
  struct meta_keyring keyring;     /* V8 */
  size_t nacks;                    /* V8: members' KEY_APPLIED, by id */
  struct meta_key_ack *acks;       /* chorus_malloc'ed; nacks of them */
};

/* ------------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------------ */

enum meta_cmd_type {
  META_CMD_JOIN = 1,        /* add @member (state as given) */
  META_CMD_SET_STATE = 2,   /* member @id to @state */
  META_CMD_REMOVE = 3,      /* member @id to REMOVED */
  META_CMD_REPLICATION = 4, /* replication settings to @replication */
  META_CMD_NOTE = 5,        /* a register write (tests, the linearizability
                               checker): the state's register :=
                               (@note_key, @note_value) */
  META_CMD_LEAVE = 6,       /* NORMAL member @id to LEAVING, goal @state
                               (LEFT: decommission; REMOVED: a dead node's
                               removal); EBUSY while changing; EINVAL
                               for the sole owner (meta_state_sole_owner) */
  META_CMD_STREAMED = 7,    /* member @id holds what it gains at @epoch */
  META_CMD_FINISH = 8,      /* the change at @epoch completes */
  META_CMD_REPLACE = 9,     /* V4: member @id is replaced by @with; @with ==
                               @id: NORMAL @id lost its disk and becomes
                               REPLACING; else NORMAL @id leaves (goal
                               REMOVED) in the change of JOINING @with,
                               which takes @id's tokens (tokens_of,
                               vnodes); a NORMAL @with keeps its own;
                               EBUSY while another change is under way */
  META_CMD_STAGE = 10,      /* V4: the change @staged_type (LEAVE, REPLACE
                               or REMOVE, with @id, @state, @with, @disk) is
                               staged, replacing any staged one; nothing
                               else changes (Riak's cluster plan) */
  META_CMD_COMMIT = 11,     /* V4: @state 1: the staged change is applied
                               as if proposed now (its own result; staged
                               no more when it applies), ENOTFOUND when none;
                               @state 0: the staged change is dropped */
  META_CMD_KEYSPACE_CREATE = 12, /* V6: @keyspace (its id is drawn);
                                    EEXIST, EINVAL (a bad name or
                                    setting), ENOTSUP (a replication of
                                    its own), ENOSPC (META_MAX_KEYSPACES) */
  META_CMD_KEYSPACE_ALTER = 13,  /* V6: @keyspace's settings replace the
                                    named one's (its id and type stay:
                                    EINVAL for another type); ENOTFOUND */
  META_CMD_KEYSPACE_DROP = 14,   /* V6: the keyspace @keyspace.name goes
                                    (its data stays on disk, unreachable:
                                    its id is never given again);
                                    ENOTFOUND */
  META_CMD_USER_CREATE = 15,     /* V7: @user (its verifier; grants none);
                                    EEXIST, EINVAL, ENOSPC (META_MAX_USERS) */
  META_CMD_USER_PASSWD = 16,     /* V7: @user.name's verifier := @user's;
                                    ENOTFOUND */
  META_CMD_USER_DROP = 17,       /* V7: @user.name goes; ENOTFOUND */
  META_CMD_USER_GRANT = 18,      /* V7: @user.name gets @grant (again: no
                                    change); ENOTFOUND (user or keyspace),
                                    ENOSPC (META_MAX_GRANTS) */
  META_CMD_USER_REVOKE = 19,     /* V7: @user.name loses @grant; ENOTFOUND
                                    when it had none */
  META_CMD_KEY_INSTALL = 20,     /* V8: @key (id and bytes) joins the
                                    keyring, accepted, not sealing;
                                    EEXIST, ENOSPC (META_MAX_KEYS with the
                                    boot key while not retired) */
  META_CMD_KEY_USE = 21,         /* V8: @key.id becomes the primary;
                                    ENOTFOUND, EBUSY (THE SAFETY RULE) */
  META_CMD_KEY_REMOVE = 22,      /* V8: @key.id leaves the keyring (0: the
                                    boot key, retired); ENOTFOUND, EINVAL
                                    (the primary), EBUSY (THE SAFETY RULE) */
  META_CMD_KEY_APPLIED = 23,     /* V8: member @id applied keyring version
                                    @version (a lower one than it reported:
                                    no change); ENOTFOUND, EINVAL (a version
                                    the keyring has not reached) */
  META_CMD_MAX = 23
};

struct meta_cmd {
  uint8_t type;              /* enum meta_cmd_type */
  struct meta_member member; /* JOIN */
  chorus_node_id id;         /* SET_STATE, REMOVE, LEAVE,
                                STREAMED, REPLACE */
  chorus_node_id with;       /* REPLACE: the replacement */
  uint64_t disk;       /* REPLACE of itself: the member's new data folder */
  uint8_t staged_type; /* STAGE: the staged command's type */
  uint8_t state;       /* SET_STATE; LEAVE: the goal */
  uint64_t epoch;      /* STREAMED, FINISH */
  struct ring_replication replication; /* REPLICATION */
  uint64_t note_key, note_value;       /* NOTE */
  struct meta_keyspace keyspace;       /* KEYSPACE_*: DROP names it only */
  struct meta_user user;               /* USER_*: DROP, GRANT and REVOKE name
                                          it only */
  struct meta_grant grant;             /* USER_GRANT, USER_REVOKE */
  struct meta_key key; /* KEY_INSTALL; KEY_USE and KEY_REMOVE: its id */
  uint64_t version;    /* KEY_APPLIED */
  /* Its origin: the proposing node and its request id, unique per
   * proposal (EXACTLY ONCE); proposer 0 for none. */
  chorus_node_id proposer;
  uint64_t req_id;
};

/* ------------------------------------------------------------------------
 * Messages between the metadata layers of two nodes (WIRE_META's bytes)
 * ------------------------------------------------------------------------ */

enum meta_msg_type {
  META_MSG_RAFT = 1,          /* a Raft RPC: @raft */
  META_MSG_PROPOSE = 2,       /* please commit @cmd (to the leader) */
  META_MSG_PROPOSE_REPLY = 3, /* @status of proposal @req_id */
  META_MSG_MAX = 3
};

struct meta_msg {
  uint8_t type;        /* enum meta_msg_type */
  uint64_t cluster;    /* the sender's cluster id; foreign ones are refused */
  chorus_node_id from; /* the sender (checked against the peer link) */
  /* RAFT: raft.server_id is not encoded. On encode it is the destination
   * (raft_io's send convention) and ignored: the sender is @from. On
   * decode it is set to @from, the sender (raft's recv convention).
   * server_address is not encoded either: decode sets it to NULL and the
   * caller fills it before handing the message to raft.
   *
   * What a decode allocates, all with raft_malloc so that raft can free it:
   *   AppendEntries, n_entries > 0: the entries array and ONE batch holding
   *     every entry's data back to back (at least one byte, so it is never
   *     NULL); entries[i].buf.base points into it and entries[i].batch is
   *     it (raft's entryBatchesDestroy frees it once). n_entries 0: entries
   *     is NULL.
   *   InstallSnapshot: conf (raft_configuration_init, then
   *     raft_configuration_add per server) and data.base, never NULL (one
   *     byte when data.len is 0).
   * The message owns them until it is handed to raft's recv callback, which
   * takes them; meta_msg_release frees them when it is not. The encoder
   * only reads @raft: what it points to stays the caller's. */
  struct raft_message raft;
  /* PROPOSE / PROPOSE_REPLY */
  uint64_t req_id;
  struct meta_cmd cmd;      /* PROPOSE */
  int32_t status;           /* PROPOSE_REPLY: CHORUS_OK or CHORUS_E* */
  uint64_t index;           /* PROPOSE_REPLY: the command's Raft index */
  chorus_node_id leader;    /* PROPOSE_REPLY: the leader known, or 0 */
  char text[META_TEXT_MAX]; /* PROPOSE_REPLY: why, for errors */
};

/* ------------------------------------------------------------------------
 * Codecs (meta_codec.c). Encoders allocate *@buf with chorus_malloc (the
 * caller frees it with chorus_free) and leave *@buf and *@len alone on
 * error; decoders never trust a size before checking it against the input
 * and the limits above, and leave *@out zeroed (nothing allocated) on
 * error. The encoder refuses exactly what the decoder would refuse.
 *
 * What is checked, both ways: a member's id is not 0, its name not empty,
 * its strings NUL-terminated within their arrays (and without a NUL
 * inside, on the wire), vnodes <= RING_MAX_VNODES, state in
 * 1..META_STATE_MAX; replication as ring_replication_check() says, and n
 * <= RING_MAX_REPLICAS even when dc_count > 0; a command's type is known,
 * SET_STATE and REMOVE name a non-zero id, a SET_STATE's state is in
 * range; a message's type is known, @from is not 0, a reply's status is
 * CHORUS_OK or negative and its text NUL-terminated within META_TEXT_MAX;
 * a Raft RPC's type is known, entry types are RAFT_COMMAND..RAFT_CHANGE,
 * configuration servers have an id > 0, an address shorter than
 * META_ADDR_MAX, a role RAFT_STANDBY..RAFT_SPARE, and no id or address
 * twice. Fields a type does not use are not encoded (decode zeroes them).
 *
 * Errors: CHORUS_ENOMEM; CHORUS_EINVAL (encode: a field out of range);
 * CHORUS_EMALFORMED (decode: bytes that are not a valid encoding,
 * truncated, with trailing bytes, or a field out of range);
 * CHORUS_ETOOBIG (either way: more than a limit above, members, entries,
 * servers or bytes, or an input longer than the limit of its kind);
 * CHORUS_EVERSION (decode: an unknown format byte).
 * ------------------------------------------------------------------------ */

/* Commands: at most META_MAX_CMD_BYTES encoded. */
int meta_cmd_encode(const struct meta_cmd *c, uint8_t **buf, size_t *len);
int meta_cmd_decode(const void *buf, size_t len, struct meta_cmd *out);

/* State: the snapshot format, at most META_MAX_STATE_BYTES encoded. Decode
 * fills @out (members allocated with chorus_malloc; meta_state_free
 * releases them); the members must be at most META_MAX_MEMBERS, sorted by
 * id strictly ascending, names unique, every field in range. */
int meta_state_encode(const struct meta_state *s, uint8_t **buf, size_t *len);
int meta_state_decode(const void *buf, size_t len, struct meta_state *out);

/* Messages: at most META_MAX_MSG_BYTES encoded. See struct meta_msg for
 * who owns what a RAFT message points to. */
int meta_msg_encode(const struct meta_msg *m, uint8_t **buf, size_t *len);
int meta_msg_decode(const void *buf, size_t len, struct meta_msg *out);
/* meta_msg_release: frees what a decoded RAFT message still owns (entries
 * and their batch, configuration, snapshot data) and zeroes those fields;
 * a no-op for other types and for NULL. Idempotent. Never call it on a
 * message whose raft part was handed to raft, nor on one the caller built
 * (it would free the caller's memory). */
void meta_msg_release(struct meta_msg *m);

/* ------------------------------------------------------------------------
 * The state machine (meta_state.c)
 * ------------------------------------------------------------------------ */

void meta_state_init(struct meta_state *s,
                     const struct ring_replication *replication);
void meta_state_free(struct meta_state *s);
/* meta_state_copy: a deep copy. Errors: CHORUS_ENOMEM. */
int meta_state_copy(const struct meta_state *src, struct meta_state *dst);

/* meta_state_apply: applies @c committed at Raft @index. Returns the
 * command's result (CHORUS_OK; CHORUS_EEXIST for a name or id in use,
 * CHORUS_ENOTFOUND for an unknown member, CHORUS_EINVAL for a transition
 * that is not allowed or a field out of range, CHORUS_ETOOBIG for a JOIN
 * beyond META_MAX_MEMBERS, CHORUS_EBUSY for a JOIN as JOINING or a LEAVE
 * while changing, CHORUS_ESTALE for a STREAMED or FINISH about another
 * epoch) after which the state is unchanged but for
 * @applied and the sessions; CHORUS_ENOMEM is the only error that leaves
 * it unchanged altogether (the caller must stop). A command whose origin
 * has a session is a duplicate: only @applied moves, and the result is the
 * session's (EXACTLY ONCE). */
int meta_state_apply(struct meta_state *s, const struct meta_cmd *c,
                     uint64_t index);

const struct meta_member *meta_state_find(const struct meta_state *s,
                                          chorus_node_id id);
/* meta_state_session: the outcome of @proposer's request @req_id, if the
 * state remembers it; NULL otherwise (and for proposer 0). */
const struct meta_session *meta_state_session(const struct meta_state *s,
                                              chorus_node_id proposer,
                                              uint64_t req_id);
const struct meta_member *meta_state_find_name(const struct meta_state *s,
                                               const char *name);
/* meta_state_keyspace: the keyspace called @name; NULL when none is (and
 * for "default", which has no entry). */
const struct meta_keyspace *meta_state_keyspace(const struct meta_state *s,
                                                const char *name);
/* meta_keyspace_check: whether @k is a keyspace CREATE or ALTER may hold:
 * a valid name (not "default"), a known type, levels, TTL and sibling
 * limits in range (warn <= max when both are set); CHORUS_EINVAL with a
 * reason in @why (may be NULL, META_TEXT_MAX bytes), also for a
 * replication ring_replication_check refuses. Its id is not judged. */
int meta_keyspace_check(const struct meta_keyspace *k, char *why);

/* meta_keyspace_placement: whether @s can place keyspace @k's keys: an
 * ALTER (@alter) must keep the replica sets it has (moving a keyspace's
 * keys to other nodes is not built: ENOTSUP), and a CREATE may bring a
 * replication class that is new only while the keyspaces hold fewer than
 * RING_MAX_CLASSES with the cluster's (ENOSPC). @why (META_TEXT_MAX; may
 * be NULL) says why not. */
int meta_keyspace_placement(const struct meta_state *s,
                            const struct meta_keyspace *k, bool alter,
                            char *why);

/* meta_state_placement: a fingerprint of where @s places keyspaces' keys
 * (each keyspace with a replication of its own, and its class; once a
 * keyspace was dropped, every live one and the next id, which name the
 * dropped ones): equal for two states whose rings list the same replicas
 * for every key of the same members. 0 when every keyspace takes the
 * cluster's and none was dropped. */
uint64_t meta_state_placement(const struct meta_state *s);
/* meta_state_user: the user called @name; NULL when none is. */
const struct meta_user *meta_state_user(const struct meta_state *s,
                                        const char *name);
/* meta_user_check: whether @u is a user CREATE or PASSWD may hold (a
 * valid name, costs in bounds); CHORUS_EINVAL with a reason in @why (may
 * be NULL, META_TEXT_MAX bytes). Its grants are not judged. */
int meta_user_check(const struct meta_user *u, char *why);
/* meta_user_may: whether @u holds @role (or one above it) on keyspace
 * @ks_id (0: the default keyspace and the cluster: only a grant on every
 * keyspace covers them). */
bool meta_user_may(const struct meta_user *u, uint8_t role, uint32_t ks_id);
/* meta_key_id: the id of gossip key @key (a 32-bit fingerprint, never
 * 0: what operators name a key by; the key itself is never shown). */
uint32_t meta_key_id(const uint8_t key[META_KEY_BYTES]);
/* meta_keyring_find: key @id of @kr; NULL when it holds none. */
const struct meta_key *meta_keyring_find(const struct meta_keyring *kr,
                                         uint32_t id);
/* meta_keyring_check: whether KEY_INSTALL, KEY_USE or KEY_REMOVE @c would
 * apply to @s now (meta_state_apply judges with it): its result code and,
 * when refused, why in @why (may be NULL; META_TEXT_MAX bytes), naming a
 * member that lags (THE SAFETY RULE). */
int meta_keyring_check(const struct meta_state *s, const struct meta_cmd *c,
                       char *why);
/* meta_key_applied: the keyring version member @id reported (0: none). */
uint64_t meta_key_applied(const struct meta_state *s, chorus_node_id id);
/* meta_keyring_keys: the keys a node with boot key @boot holds under @kr,
 * the sealing one first, into @out (META_MAX_KEYS); their count (>= 1). */
size_t meta_keyring_keys(const struct meta_keyring *kr,
                         const uint8_t boot[META_KEY_BYTES],
                         uint8_t out[META_MAX_KEYS][META_KEY_BYTES]);
/* meta_cmd_describe: one line about @c, for logs (a static buffer: not
 * thread-safe, the core is single-threaded). */
const char *meta_cmd_describe(const struct meta_cmd *c);

/* meta_member_owns: whether a member in @state owns tokens. */
bool meta_member_owns(uint8_t state);

/* meta_state_ring: the ring snapshot of @s (its owning members),
 * version = epoch. Errors: as ring_snapshot_build. */
int meta_state_ring(const struct meta_state *s, struct ring_snapshot **out,
                    char *errmsg);

/* meta_state_changing: whether a topology change is under way (a member
 * JOINING or LEAVING). */
bool meta_state_changing(const struct meta_state *s);

/* meta_state_sole_owner: whether member @id is the only one that would
 * own tokens once the change under way completes (every other member
 * LEAVING, LEFT or REMOVED): if it left, nobody would take its ranges.
 * Its LEAVE is refused (CHORUS_EINVAL, --force or not): with no receiver
 * the change moves nothing, FINISH empties the ring, every write the
 * member holds is abandoned, and the next JOIN owns tokens at once (the
 * first member's rule) without them (change_sim, a shrink of a partly
 * formed cluster: "shrink while forming", seed 165). False when @id is not
 * a member. */
bool meta_state_sole_owner(const struct meta_state *s, chorus_node_id id);

/* meta_state_future_ring: the ring once the change under way completes:
 * JOINING members NORMAL, LEAVING ones gone. Errors: as
 * ring_snapshot_build. */
int meta_state_future_ring(const struct meta_state *s,
                           struct ring_snapshot **out, char *errmsg);

/* meta_state_moves: the ranges the change under way moves, class by class
 * (ring.h, replication classes; class 0 first): ring_diff of each class
 * of meta_state_ring and the class of the same tag of
 * meta_state_future_ring, a replacing member's ranges and a
 * decommission's kept ones, each move's class_tag set to its class's tag
 * (0 for the cluster's); both rings when @current / @future are not NULL
 * (the caller frees them; NULL is fine). No change under way gives no
 * moves. A change completes only once every class's moves are held
 * (meta_state_finishable). Errors: as ring_diff and ring_snapshot_build
 * (*@moves is then NULL). */
int meta_state_moves(const struct meta_state *s, struct ring_move **moves,
                     size_t *count, struct ring_snapshot **current,
                     struct ring_snapshot **future);

/* meta_state_finishable: whether FINISH(@s->epoch) may be committed: a
 * change is under way and every member that gains a range in @moves
 * (@count of them, meta_state_moves), and every JOINING member, has
 * committed STREAMED at this epoch. */
bool meta_state_finishable(const struct meta_state *s,
                           const struct ring_move *moves, size_t count);

/* meta_state_voters: the members that should vote: up to META_MAX_VOTERS
 * of the members that are not LEFT or REMOVED, spread over datacenters
 * then racks (round robin, by id within each), deterministic. Writes ids
 * to @out (cap META_MAX_VOTERS), returns the count. */
size_t meta_state_voters(const struct meta_state *s,
                         chorus_node_id out[META_MAX_VOTERS]);

#endif /* CHORUS_META_H */
