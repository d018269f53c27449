/* test_wire_hostile.c: a table of hostile inputs (huge headers of every
 * kind, truncation at every byte offset, deep nesting, array16 chains, wrong
 * types, trailing garbage, 4 GiB length prefixes), each fed to the decoder
 * and to the splitter and rejected, with the process's memory growth across
 * the whole table held under 1 MiB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <malloc.h>
#include <sys/resource.h>

#include "chorus_alloc.h"
#include "wire_gen.h"

/* Under ASan, every allocation in the process passes through hooks that
 * keep live and peak heap bytes exactly; elsewhere mallinfo2() gives live
 * bytes and the peak comes from RSS. */
extern int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void *, size_t),
    void (*free_hook)(const volatile void *)) __attribute__((weak));
extern size_t __sanitizer_get_allocated_size(const volatile void *p)
    __attribute__((weak));

/* Blocks allocated before the hooks were installed may be freed after; the
 * offset keeps the running count from wrapping below zero. */
static size_t hook_live = (size_t)1 << 40, hook_peak;

static void on_malloc(const volatile void *p, size_t size) {
  (void)p;
  hook_live += size;
  if (hook_live > hook_peak)
    hook_peak = hook_live;
}

static void on_free(const volatile void *p) {
  hook_live -= __sanitizer_get_allocated_size(p);
}

static bool under_asan(void) {
  return __sanitizer_install_malloc_and_free_hooks != NULL &&
         __sanitizer_get_allocated_size != NULL;
}

static size_t heap_bytes(void) {
  if (under_asan())
    return hook_live;
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

static long peak_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static long rss_kib(void) {
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return 0;
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
    rss = 0;
  fclose(f);
  return rss * 4; /* 4 KiB pages */
}

struct hostile {
  const char *what;
  const uint8_t *body;
  size_t len;
  int code;           /* expected from wire_decode */
  const char *substr; /* expected in the message */
};

static const struct wire_limits peer = {WIRE_MAX_FRAME_PEER, WIRE_MAX_DEPTH};

#define B(...)                                                                 \
  (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

static const struct hostile fixed[] = {
    /* Huge headers of every kind, alone and inside messages. */
    {"msgpack-c #1013 array32", B(0xdd, 0xff, 0x00, 0x00, 0x00),
     CHORUS_EMALFORMED, "declares 4278190080 elements, only 0 bytes left"},
    {"array32 4G", B(0xdd, 0xff, 0xff, 0xff, 0xff), CHORUS_EMALFORMED,
     "array32 at offset 0 declares 4294967295"},
    {"map32 4G", B(0xdf, 0xff, 0xff, 0xff, 0xff), CHORUS_EMALFORMED, "map32"},
    {"map16", B(0xde, 0xff, 0xff), CHORUS_EMALFORMED, "65535 pairs"},
    {"array16", B(0xdc, 0xff, 0xff), CHORUS_EMALFORMED, "65535 elements"},
    {"fixarray", B(0x9f, 0xc0), CHORUS_EMALFORMED, "fixarray"},
    {"fixmap", B(0x8f, 0xc0, 0xc0), CHORUS_EMALFORMED, "fixmap"},
    {"str32 4G", B(0xdb, 0xff, 0xff, 0xff, 0xff), CHORUS_EMALFORMED,
     "str32 at offset 0 declares 4294967295 bytes"},
    {"str16", B(0xda, 0xff, 0xff, 'x'), CHORUS_EMALFORMED, "str16"},
    {"str8", B(0xd9, 0xff), CHORUS_EMALFORMED, "str8"},
    {"fixstr", B(0xbf, 'x'), CHORUS_EMALFORMED, "fixstr"},
    {"bin32 4G", B(0xc6, 0xff, 0xff, 0xff, 0xff), CHORUS_EMALFORMED, "bin32"},
    {"bin16", B(0xc5, 0xff, 0xff), CHORUS_EMALFORMED, "bin16"},
    {"bin8", B(0xc4, 0xff), CHORUS_EMALFORMED, "bin8"},
    {"ext32 4G", B(0xc9, 0xff, 0xff, 0xff, 0xff, 0x01), CHORUS_EMALFORMED,
     "ext32"},
    {"ext16", B(0xc8, 0xff, 0xff, 0x01), CHORUS_EMALFORMED, "ext16"},
    {"ext8", B(0xc7, 0xff, 0x01), CHORUS_EMALFORMED, "ext8"},
    {"fixext16", B(0xd8, 0x01, 0x00), CHORUS_EMALFORMED, "fixext16"},
    {"bin32 as PUT key", B(0x96, 0x11, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff),
     CHORUS_EMALFORMED, "bin32 at offset 3"},
    {"array32 as GET_REPLY values",
     B(0x94, 0x13, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc4, 0x00),
     CHORUS_EMALFORMED, "array32 at offset 3"},
    {"map32 as STATUS_REPLY stats",
     B(0x94, 0x63, 0x01, 0x00, 0xdf, 0xff, 0xff, 0xff, 0xff), CHORUS_EMALFORMED,
     "map32 at offset 4"},
    {"array32 as RING_REPLY nodes",
     B(0x95, 0x61, 0x01, 0x00, 0x01, 0xdd, 0x7f, 0xff, 0xff, 0xff),
     CHORUS_EMALFORMED, "array32 at offset 5"},
    /* Truncated headers and reserved bytes. */
    {"truncated array32 header", B(0xdd, 0xff), CHORUS_EMALFORMED,
     "truncated array32 header"},
    {"truncated uint64", B(0x92, 0x60, 0xcf, 0x00), CHORUS_EMALFORMED,
     "truncated uint64 header at offset 2"},
    {"truncated float64", B(0x92, 0x60, 0xcb), CHORUS_EMALFORMED, "float64"},
    {"reserved 0xc1", B(0x92, 0x60, 0xc1), CHORUS_EMALFORMED,
     "reserved byte 0xc1 at offset 2"},
    {"empty frame", B(0x00), CHORUS_EMALFORMED, NULL}, /* len fixed below */
    /* Wrong types at the frame level. */
    {"top-level nil", B(0xc0), CHORUS_EMALFORMED, "frame: expected array"},
    {"top-level str", B(0xa3, 'a', 'b', 'c'), CHORUS_EMALFORMED,
     "expected array, got fixstr"},
    {"top-level map", B(0x81, 0x01, 0x02), CHORUS_EMALFORMED,
     "expected array, got fixmap"},
    {"one-entry frame", B(0x91, 0x60), CHORUS_EMALFORMED,
     "need at least type and request_id"},
    {"type as str", B(0x92, 0xa1, 0x60, 0x01), CHORUS_EMALFORMED,
     "type: expected integer"},
    {"negative type", B(0x92, 0xff, 0x01), CHORUS_EMALFORMED,
     "type: -1 is negative"},
    {"type 256", B(0x92, 0xcd, 0x01, 0x00, 0x01), CHORUS_EMALFORMED,
     "type: 256 out of range"},
    {"type as float", B(0x92, 0xca, 0x42, 0xc0, 0x00, 0x00, 0x01),
     CHORUS_EMALFORMED, "got float32"},
    {"negative request id", B(0x92, 0x60, 0xff), CHORUS_EMALFORMED,
     "request_id: -1 is negative"},
    {"request id as bin", B(0x92, 0x60, 0xc4, 0x00), CHORUS_EMALFORMED,
     "request_id: expected integer, got bin8"},
    {"ext as field", B(0x93, 0x22, 0x01, 0xd4, 0x01, 0x00), CHORUS_EMALFORMED,
     "value: expected integer, got fixext1"},
    {"nil list item", B(0x94, 0x13, 0x01, 0x91, 0xc0, 0xc4, 0x00),
     CHORUS_EMALFORMED, "values: expected bin, got nil"},
    {"node of 4 entries",
     B(0x95, 0x61, 0x01, 0x00, 0x01, 0x91, 0x94, 0x00, 0xa0, 0xa0, 0xa0),
     CHORUS_EMALFORMED, "node 0: 4 entries, expected 5"},
    {"node state 9",
     B(0x95, 0x61, 0x01, 0x00, 0x01, 0x91, 0x95, 0x00, 0xa0, 0xa0, 0xa0, 0x09),
     CHORUS_EMALFORMED, "node.state: 9 out of range"},
    {"empty stat name", B(0x94, 0x63, 0x01, 0x00, 0x81, 0xa0, 0x01),
     CHORUS_EMALFORMED, "empty name"},
    /* Version 3: names, and the cluster metadata. */
    {"RING_REPLY2 node without its name",
     B(0x95, 0x69, 0x01, 0x00, 0x01, 0x91, 0x95, 0x00, 0xa0, 0xa0, 0xa0, 0x00),
     CHORUS_EMALFORMED, "node 0: 5 entries, expected 6"},
    {"RING_REPLY node with a name",
     B(0x95, 0x61, 0x01, 0x00, 0x01, 0x91, 0x96, 0x00, 0xa0, 0xa0, 0xa0, 0x00,
       0xa0),
     CHORUS_EMALFORMED, "node 0: 6 entries, expected 5"},
    {"STATUS_REPLY2 name as bin",
     B(0x95, 0x6a, 0x01, 0x00, 0xc4, 0x01, 'n', 0x80), CHORUS_EMALFORMED,
     "name: expected str, got bin8"},
    {"array32 as CLUSTER_REPLY members",
     B(0x9c, 0x67, 0x01, 0x00, 0xa0, 0x00, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x00,
       0xdd, 0x7f, 0xff, 0xff, 0xff),
     CHORUS_EMALFORMED, "array32 at offset 12"},
    {"CLUSTER_REPLY raft_state 4",
     B(0x9c, 0x67, 0x01, 0x00, 0xa0, 0x00, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x04,
       0x90),
     CHORUS_EMALFORMED, "raft_state: 4 out of range"},
    {"member of 9 entries",
     B(0x9c, 0x67, 0x01, 0x00, 0xa0, 0x00, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x00,
       0x91, 0x99, 0x01, 0xa1, 'n', 0xa0, 0xa0, 0xa0, 0x01, 0x00, 0x00, 0x00),
     CHORUS_EMALFORMED, "member 0: 9 entries, expected 10"},
    {"member state 0",
     B(0x9c, 0x67, 0x01, 0x00, 0xa0, 0x00, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x00,
       0x91, 0x9a, 0x01, 0xa1, 'n', 0xa0, 0xa0, 0xa0, 0x00, 0x00, 0x00, 0x00,
       0x00),
     CHORUS_EMALFORMED, "member 0: member.state: 0 unknown"},
    {"member without a name",
     B(0x9c, 0x67, 0x01, 0x00, 0xa0, 0x00, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x00,
       0x91, 0x9a, 0x01, 0xa0, 0xa0, 0xa0, 0xa0, 0x01, 0x00, 0x00, 0x00, 0x00),
     CHORUS_EMALFORMED, "member.name: length 0 outside [1, 127]"},
    {"member share over the whole ring",
     B(0x9c, 0x67, 0x01, 0x00, 0xa0, 0x00, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x00,
       0x91, 0x9a, 0x01, 0xa1, 'n', 0xa0, 0xa0, 0xa0, 0x01, 0x00, 0x00, 0x00,
       0xce, 0x00, 0x0f, 0x42, 0x41),
     CHORUS_EMALFORMED, "member.share_ppm: 1000001 exceeds 1000000"},
    {"member vnodes as a negative",
     B(0x9c, 0x67, 0x01, 0x00, 0xa0, 0x00, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x00,
       0x91, 0x9a, 0x01, 0xa1, 'n', 0xa0, 0xa0, 0xa0, 0x01, 0x00, 0x00, 0xff,
       0x00),
     CHORUS_EMALFORMED, "member.vnodes: -1 is negative"},
    {"CLUSTER_REPLY claiming one member per byte",
     B(0x9c, 0x67, 0x01, 0x00, 0xa0, 0x00, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x00,
       0xdc, 0x00, 0x10, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
       0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0),
     CHORUS_EMALFORMED, "16 list items would decode to more than 16 x"},
    {"CLUSTER_REMOVE with an empty name", B(0x94, 0x68, 0x01, 0xa0, 0x00),
     CHORUS_EMALFORMED, "name: 0 bytes, at least 1 required"},
    {"CLUSTER_REMOVE force 2", B(0x94, 0x68, 0x01, 0xa1, 'n', 0x02),
     CHORUS_EMALFORMED, "force: 2 out of range"},
    {"CLUSTER_QUERY with a field", B(0x93, 0x66, 0x01, 0xc0), CHORUS_EMALFORMED,
     "extra fields"},
    /* Replacements. */
    {"CLUSTER_REPLACE with an empty with", B(0x94, 0x6c, 0x01, 0xa1, 'n', 0xa0),
     CHORUS_EMALFORMED, "with: 0 bytes, at least 1 required"},
    {"CLUSTER_REPLACE without with", B(0x93, 0x6c, 0x01, 0xa1, 'n'),
     CHORUS_EMALFORMED, "missing fields"},
    /* Topology change plans. */
    {"CLUSTER_PLAN action 4",
     B(0x97, 0x6d, 0x01, 0x04, 0xa1, 'n', 0xa0, 0xa0, 0x00), CHORUS_EMALFORMED,
     "action: 4 out of range"},
    {"CLUSTER_PLAN vnodes 65536",
     B(0x97, 0x6d, 0x01, 0x01, 0xa1, 'n', 0xa0, 0xa0, 0xce, 0x00, 0x01, 0x00,
       0x00),
     CHORUS_EMALFORMED, "vnodes: 65536 out of range"},
    {"CLUSTER_PLAN without vnodes",
     B(0x96, 0x6d, 0x01, 0x01, 0xa1, 'n', 0xa0, 0xa0), CHORUS_EMALFORMED,
     "missing fields"},
    {"CLUSTER_PLAN name as bin",
     B(0x97, 0x6d, 0x01, 0x02, 0xc4, 0x01, 'n', 0xa0, 0xa0, 0x00),
     CHORUS_EMALFORMED, "name: expected str, got bin8"},
    {"CLUSTER_PLAN_REPLY basis over the whole ring",
     B(0x98, 0x6e, 0x01, 0x00, 0x00, 0x00, 0xce, 0x00, 0x0f, 0x42, 0x41, 0xa0,
       0x90),
     CHORUS_EMALFORMED, "basis_ppm: 1000001 out of range"},
    {"move of 7 entries",
     B(0x98, 0x6e, 0x01, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x91, 0x97, 0x01, 0xa0,
       0x02, 0xa0, 0x01, 0x00, 0x00),
     CHORUS_EMALFORMED, "move 0: 7 entries, expected 8"},
    {"move share over the whole ring",
     B(0x98, 0x6e, 0x01, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x91, 0x98, 0x01, 0xa0,
       0x02, 0xa0, 0x01, 0xce, 0x00, 0x0f, 0x42, 0x41, 0x00, 0x00),
     CHORUS_EMALFORMED, "move.share_ppm: 1000001 exceeds 1000000"},
    {"move keys as a negative",
     B(0x98, 0x6e, 0x01, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x91, 0x98, 0x01, 0xa0,
       0x02, 0xa0, 0x01, 0x00, 0xff, 0x00),
     CHORUS_EMALFORMED, "move.est_keys: -1 is negative"},
    {"array32 as CLUSTER_PLAN_REPLY moves",
     B(0x98, 0x6e, 0x01, 0x00, 0x00, 0x00, 0x00, 0xa0, 0xdd, 0x7f, 0xff, 0xff,
       0xff),
     CHORUS_EMALFORMED, "array32 at offset 8"},
    {"empty META", B(0x93, 0x65, 0x01, 0xc4, 0x00), CHORUS_EMALFORMED,
     "msg: 0 bytes, at least 1 required"},
    {"peer HELLO with 2^64-1 version",
     B(0x97, 0x01, 0x00, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
       0xa1, 'c', 0x01, 0x01, 0xc4, 0x00),
     CHORUS_EMALFORMED, "version: 18446744073709551615 out of range"},
    {"RING_REPLY claiming one node per byte",
     B(0x95, 0x61, 0x01, 0x00, 0x01, 0xdc, 0x00, 0x10, 0xc0, 0xc0, 0xc0, 0xc0,
       0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0),
     CHORUS_EMALFORMED, "16 list items would decode to more than 16 x"},
    /* Trailing bytes. */
    {"trailing garbage", B(0x92, 0x60, 0x01, 0x00), CHORUS_EMALFORMED,
     "1 trailing bytes after the message at offset 3"},
    {"two messages in one frame", B(0x92, 0x60, 0x01, 0x92, 0x60, 0x02),
     CHORUS_EMALFORMED, "3 trailing bytes"},
    /* Well-formed but unknown: refused without closing. */
    {"a reserved type", B(0x92, 0x75, 0x01), CHORUS_ENOTSUP,
     "unknown message type 117"},
};

/* Builds the generated entries into @buf; returns how many. */
static size_t generated(struct hostile *out, uint8_t *buf, size_t cap) {
  size_t n = 0, used = 0;
#define TAKE(sz)                                                               \
  (assert_true(used + (sz) <= cap), used += (sz), buf + used - (sz))
  /* Deep nesting: 33 fixarrays of one element, and 1000. */
  size_t depths[] = {33, 1000};
  for (size_t d = 0; d < 2; d++) {
    uint8_t *p = TAKE(depths[d] + 1);
    memset(p, 0x91, depths[d]);
    p[depths[d]] = 0xc0;
    out[n++] = (struct hostile){"deep fixarray nesting", p, depths[d] + 1,
                                CHORUS_EMALFORMED, "nesting deeper than 32"};
  }
  /* 32 fixarrays around an empty array or map: 33 levels, though the
   * innermost holds nothing (msgpack-c counts it too). */
  for (int k = 0; k < 2; k++) {
    uint8_t *p = TAKE(33);
    memset(p, 0x91, 32);
    p[32] = k ? 0x80 : 0x90;
    out[n++] = (struct hostile){"empty container at level 33", p, 33,
                                CHORUS_EMALFORMED,
                                "nesting deeper than 32 at offset 32"};
  }
  /* Nested maps: {nil: {nil: ...}} 40 deep. */
  {
    uint8_t *p = TAKE(2 * 40 + 1);
    for (int i = 0; i < 40; i++)
      p[2 * i] = 0x81, p[2 * i + 1] = 0xc0;
    p[80] = 0xc0;
    out[n++] = (struct hostile){"deep map nesting", p, 81, CHORUS_EMALFORMED,
                                "nesting deeper than 32"};
  }
  /* array16 chains: each level claims one element (too deep), or 65535
   * elements (too many for the bytes behind them). */
  {
    uint8_t *p = TAKE(3 * 40 + 1);
    for (int i = 0; i < 40; i++)
      p[3 * i] = 0xdc, p[3 * i + 1] = 0x00, p[3 * i + 2] = 0x01;
    p[120] = 0xc0;
    out[n++] = (struct hostile){"array16 chain, 40 deep", p, 121,
                                CHORUS_EMALFORMED, "nesting deeper than 32"};
    uint8_t *q = TAKE(3 * 30000);
    for (int i = 0; i < 30000; i++)
      q[3 * i] = 0xdc, q[3 * i + 1] = 0xff, q[3 * i + 2] = 0xff;
    out[n++] = (struct hostile){"array16 chain of 65535-element claims", q,
                                90000, CHORUS_EMALFORMED,
                                "array16 at offset 3 declares 65535 elements, "
                                "only 89994 bytes left"};
  }
  /* Exactly 32 levels: structurally fine, refused by the schema. */
  {
    uint8_t *p = TAKE(33);
    memset(p, 0x91, 32);
    p[32] = 0xc0;
    out[n++] = (struct hostile){"32 levels", p, 33, CHORUS_EMALFORMED,
                                "need at least type and request_id"};
  }
  /* A 64 KiB array of nils: structurally fine, wrong types. */
  {
    uint8_t *p = TAKE(3 + 65535);
    p[0] = 0xdc, p[1] = 0xff, p[2] = 0xff;
    memset(p + 3, 0xc0, 65535);
    out[n++] = (struct hostile){"array16 of 65535 nils", p, 65538,
                                CHORUS_EMALFORMED, "type: expected integer"};
  }
  /* A CLUSTER_REPLY with 4097 members, every one a nil: the count is
   * refused before anything is allocated for it. */
  {
    size_t count = WIRE_MAX_CLUSTER_MEMBERS + 1;
    static const uint8_t head[] = {0x9c, 0x67, 0x01, 0x00, 0xa0,
                                   0x00, 0xa0, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0xdc, 0x10, 0x01};
    uint8_t *p = TAKE(sizeof head + count);
    memcpy(p, head, sizeof head);
    memset(p + sizeof head, 0xc0, count);
    out[n++] = (struct hostile){"4097 members", p, sizeof head + count,
                                CHORUS_EMALFORMED, "members: 4097 exceed 4096"};
  }
  /* A CLUSTER_PLAN_REPLY with 4097 moves, every one a nil: refused by
   * its count before anything is allocated. */
  {
    size_t count = WIRE_MAX_PLAN_MOVES + 1;
    static const uint8_t head[] = {0x98, 0x6e, 0x01, 0x00, 0x00, 0x00,
                                   0x00, 0xa0, 0xdc, 0x10, 0x01};
    uint8_t *p = TAKE(sizeof head + count);
    memcpy(p, head, sizeof head);
    memset(p + sizeof head, 0xc0, count);
    out[n++] = (struct hostile){"4097 moves", p, sizeof head + count,
                                CHORUS_EMALFORMED, "moves: 4097 exceed 4096"};
  }
  /* A CLUSTER_REMOVE name one byte over its bound. */
  {
    uint8_t *p = TAKE(3 + 2 + 128 + 1);
    p[0] = 0x94, p[1] = 0x68, p[2] = 0x01, p[3] = 0xd9, p[4] = 128;
    memset(p + 5, 'n', 128);
    p[133] = 0x01;
    out[n++] = (struct hostile){"CLUSTER_REMOVE name of 128 bytes", p, 134,
                                CHORUS_EMALFORMED,
                                "name: 128 bytes exceeds the limit of 127"};
  }
  /* A GET whose key is one byte over its field bound. */
  {
    size_t klen = WIRE_MAX_KEY_FIELD + 1;
    uint8_t *p = TAKE(3 + 5 + klen + 8);
    uint8_t *w = p;
    *w++ = 0x94, *w++ = 0x10, *w++ = 0x01;
    *w++ = 0xc6, *w++ = 0, *w++ = (uint8_t)(klen >> 16),
    *w++ = (uint8_t)(klen >> 8), *w++ = (uint8_t)klen;
    memset(w, 'k', klen);
    w += klen;
    static const uint8_t opts[] = {0x97, 0, 0, 0, 0, 0, 0xc2, 0};
    memcpy(w, opts, 8);
    out[n++] = (struct hostile){"GET key over 64 KiB", p, 3 + 5 + klen + 8,
                                CHORUS_EMALFORMED,
                                "key: 65537 bytes exceeds the limit of 65536"};
  }
#undef TAKE
  return n;
}

/* Feeds @body to the splitter behind a correct prefix, in two pieces, then
 * decodes what comes out. Returns the decode result. */
static int through_splitter(const uint8_t *body, size_t len) {
  struct wire_splitter sp;
  wire_splitter_init(&sp, WIRE_MAX_FRAME_PEER);
  uint8_t pre[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
                    (uint8_t)(len >> 8), (uint8_t)len};
  size_t used;
  struct wire_bytes fr;
  int rc = wire_splitter_push(&sp, pre, 4, &used, &fr);
  if (len == 0) {
    assert_int_equal(rc, CHORUS_EMALFORMED);
    wire_splitter_fini(&sp);
    return rc;
  }
  assert_int_equal(rc, 0);
  size_t half = len / 2;
  assert_int_equal(wire_splitter_push(&sp, body, half, &used, &fr), 0);
  assert_int_equal(wire_splitter_push(&sp, body + half, len - half, &used, &fr),
                   1);
  struct wire_msg d;
  rc = wire_decode(fr.ptr, fr.len, &peer, &d, NULL);
  wire_msg_free(&d);
  wire_splitter_fini(&sp);
  return rc;
}

static void check_entry(const struct hostile *h) {
  char err[CHORUS_ERRMSG_SIZE] = "";
  struct wire_msg d;
  int rc = wire_decode(h->body, h->len, &peer, &d, err);
  if (rc != h->code)
    fail_msg("%s: got %s (%s), want %s", h->what, chorus_errname(rc), err,
             chorus_errname(h->code));
  if (h->substr && !strstr(err, h->substr))
    fail_msg("%s: message \"%s\" lacks \"%s\"", h->what, err, h->substr);
  assert_null(d.owned);
  wire_msg_free(&d);
  assert_int_equal(through_splitter(h->body, h->len), h->code);
}

/* Frames truncated at every byte offset: one random message of every type.
 * Every proper prefix is refused by the decoder, and the splitter, fed the
 * prefix behind the full length, waits for more without delivering. */
static int truncations(uint8_t *const *frames, const size_t *lens,
                       size_t nframes) {
  int cases = 0;
  for (size_t i = 0; i < nframes; i++) {
    const uint8_t *body = frames[i] + 4;
    size_t len = lens[i] - 4;
    for (size_t k = 0; k < len; k++) {
      struct wire_msg d;
      char err[CHORUS_ERRMSG_SIZE] = "";
      int rc = wire_decode(body, k, &peer, &d, err);
      if (rc != CHORUS_EMALFORMED)
        fail_msg("%s cut at %zu of %zu: %s", wire_type_name(body[1]), k, len,
                 chorus_errname(rc));
      assert_null(d.owned);
      struct wire_splitter sp;
      wire_splitter_init(&sp, WIRE_MAX_FRAME_PEER);
      size_t used;
      struct wire_bytes fr;
      assert_int_equal(wire_splitter_push(&sp, frames[i], 4 + k, &used, &fr),
                       0);
      assert_int_equal(wire_splitter_buffered(&sp), 4 + k);
      wire_splitter_fini(&sp);
      cases++;
    }
  }
  return cases;
}

static void hostile_table_is_rejected_within_1_mib(void **state) {
  (void)state;
  /* Build everything first, so the measurement sees only the table. */
  size_t cap = 512 * 1024;
  uint8_t *buf = chorus_malloc(cap);
  assert_non_null(buf);
  struct hostile gen[24];
  size_t ngen = generated(gen, buf, cap);

  struct wire_gen g;
  assert_int_equal(wire_gen_init(&g, 31), 0);
  uint8_t *frames[128];
  size_t lens[128];
  size_t nframes = wire__nschemas;
  assert_true(nframes <= sizeof frames / sizeof frames[0]);
  for (size_t i = 0; i < nframes; i++) {
    struct wire_msg m;
    wire_gen_msg(&g, &wire__schemas[i], WIRE_GEN_RANDOM, &m);
    lens[i] = wire_encoded_size(&m);
    frames[i] = chorus_malloc(lens[i]);
    assert_int_equal(wire_encode(&m, frames[i], lens[i], &lens[i], NULL), 0);
  }
  wire_gen_fini(&g);

  /* Length prefixes the splitter must refuse before buffering anything. */
  static const struct {
    uint8_t pre[4];
    int code;
  } prefixes[] = {{{0xff, 0xff, 0xff, 0xff}, CHORUS_ETOOBIG},
                  {{0x80, 0x00, 0x00, 0x00}, CHORUS_ETOOBIG},
                  {{0x01, 0x00, 0x00, 0x01}, CHORUS_ETOOBIG},
                  {{0x00, 0x00, 0x00, 0x00}, CHORUS_EMALFORMED}};

  if (under_asan())
    __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
  size_t heap0 = heap_bytes();
  hook_peak = hook_live;
  long rss0 = rss_kib(), peak0 = peak_rss_kib();

  int cases = 0;
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++, cases++) {
    struct hostile h = fixed[i];
    if (strcmp(h.what, "empty frame") == 0)
      h.len = 0;
    check_entry(&h);
  }
  for (size_t i = 0; i < ngen; i++, cases++)
    check_entry(&gen[i]);
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++, cases++) {
    struct wire_splitter sp;
    wire_splitter_init(&sp, WIRE_MAX_FRAME_PEER);
    size_t used;
    struct wire_bytes fr;
    uint8_t stream[4 + 64];
    memcpy(stream, prefixes[i].pre, 4);
    memset(stream + 4, 0x41, 64);
    assert_int_equal(wire_splitter_push(&sp, stream, sizeof stream, &used, &fr),
                     prefixes[i].code);
    assert_null(sp.buf);
    wire_splitter_fini(&sp);
    /* The same prefix as a body-less decode is refused by length too. */
  }
  cases += truncations(frames, lens, nframes);

  size_t heap1 = heap_bytes(), heap_peak = hook_peak;
  long rss1 = rss_kib(), peak1 = peak_rss_kib();
  print_message("# hostile table: %d cases; live heap %+ld B, peak heap "
                "%+ld B%s, rss %+ld KiB, peak rss %+ld KiB\n",
                cases, (long)heap1 - (long)heap0,
                under_asan() ? (long)heap_peak - (long)heap0 : 0L,
                under_asan() ? "" : " (not measured)", rss1 - rss0,
                peak1 - peak0);
  assert_true(cases > 1000);
  assert_true(heap1 < heap0 + 1024 * 1024);
  if (under_asan()) {
    /* ASan's own bookkeeping (allocation stack traces, shadow pages, size
     * class caches) adds resident memory per allocation that a plain build
     * does not have, so under ASan the bound is on the exact peak of live
     * heap bytes, and RSS is only held to a loose sanity bound. */
    assert_true(heap_peak < heap0 + 1024 * 1024);
    assert_true(rss1 - rss0 < 32 * 1024);
  } else {
    assert_true(rss1 - rss0 < 1024);
    assert_true(peak1 - peak0 < 1024);
  }

  for (size_t i = 0; i < nframes; i++)
    chorus_free(frames[i]);
  chorus_free(buf);
}

/* A decoded list costs at most WIRE_DECODE_FACTOR x the frame: the densest
 * legal list (empty bins, 2 bytes each) is well inside it. */
static void densest_list_stays_within_decode_factor(void **state) {
  (void)state;
  size_t n = 60000, len = 3 + 5 + 2 * n + 2;
  uint8_t *body = chorus_malloc(len);
  uint8_t *w = body;
  *w++ = 0x94, *w++ = 0x13, *w++ = 0x01;
  *w++ = 0xdd, *w++ = 0, *w++ = 0, *w++ = (uint8_t)(n >> 8), *w++ = (uint8_t)n;
  for (size_t i = 0; i < n; i++)
    *w++ = 0xc4, *w++ = 0x00;
  *w++ = 0xc4, *w++ = 0x00;
  assert_int_equal((size_t)(w - body), len);
  struct wire_msg d;
  size_t heap0 = heap_bytes();
  assert_int_equal(wire_decode(body, len, NULL, &d, NULL), CHORUS_OK);
  size_t used = heap_bytes() - heap0;
  assert_int_equal(d.get_reply.values.n, n);
  assert_true(used <= (size_t)WIRE_DECODE_FACTOR * len);
  wire_msg_free(&d);
  chorus_free(body);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hostile_table_is_rejected_within_1_mib),
      cmocka_unit_test(densest_list_stays_within_decode_factor),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
