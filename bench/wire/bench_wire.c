/* bench_wire.c: encode and decode throughput of chorus frames, in messages
 * per second: a client PUT with a 100-byte value and a replica write with a
 * 160-byte object blob (roughly that value inside its DVV). Prints figures,
 * asserts nothing about time. Usage: bench_wire [seconds-per-case]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum op { ENCODE, DECODE, BOTH, SPLIT_DECODE };
static const char *const op_names[] = {"encode", "decode", "encode+decode",
                                       "split+decode"};

static volatile uint64_t sink;

/* Runs @op on @m for about @secs seconds; returns messages per second. */
static double run(const struct wire_msg *m, enum op op, double secs) {
  static uint8_t buf[4096];
  static uint8_t stream[64 * 4096];
  size_t len;
  if (wire_encode(m, buf, sizeof buf, &len, NULL)) {
    fprintf(stderr, "encode failed\n");
    exit(1);
  }
  size_t per = sizeof stream / len;
  for (size_t i = 0; i < per; i++)
    memcpy(stream + i * len, buf, len);
  struct wire_limits lim = WIRE_LIMITS_PEER;
  uint64_t n = 0;
  double t0 = now_s(), t1;
  do {
    for (int k = 0; k < 1000; k++) {
      struct wire_msg d;
      size_t w;
      switch (op) {
      case ENCODE:
        wire_encode(m, buf, sizeof buf, &w, NULL);
        sink += buf[w - 1];
        n++;
        break;
      case DECODE:
        if (wire_decode(buf + 4, len - 4, &lim, &d, NULL))
          abort();
        sink += d.request_id;
        wire_msg_free(&d);
        n++;
        break;
      case BOTH:
        wire_encode(m, buf, sizeof buf, &w, NULL);
        if (wire_decode(buf + 4, w - 4, &lim, &d, NULL))
          abort();
        sink += d.request_id;
        wire_msg_free(&d);
        n++;
        break;
      case SPLIT_DECODE: {
        /* A stream of back-to-back frames pushed in 1460-byte segments. */
        struct wire_splitter sp;
        wire_splitter_init(&sp, lim.max_frame);
        size_t total = per * len;
        for (size_t off = 0; off < total;) {
          size_t seg = total - off < 1460 ? total - off : 1460;
          const uint8_t *p = stream + off;
          size_t left = seg;
          for (;;) {
            size_t used;
            struct wire_bytes fr;
            int rc = wire_splitter_push(&sp, p, left, &used, &fr);
            p += used;
            left -= used;
            if (rc <= 0)
              break;
            if (wire_decode(fr.ptr, fr.len, &lim, &d, NULL))
              abort();
            sink += d.request_id;
            wire_msg_free(&d);
            n++;
          }
          off += seg;
        }
        wire_splitter_fini(&sp);
        k += (int)per - 1;
        break;
      }
      }
    }
    t1 = now_s();
  } while (t1 - t0 < secs);
  return (double)n / (t1 - t0);
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 1.0;
  static uint8_t value[100], object[160], ctx[24];
  for (size_t i = 0; i < sizeof object; i++)
    object[i] = (uint8_t)(i * 7);
  memset(value, 'v', sizeof value);
  memset(ctx, 0x11, sizeof ctx);

  struct wire_msg put = {.type = WIRE_PUT, .request_id = 123456};
  put.put.key = (struct wire_bytes){(const uint8_t *)"user:0000001234", 15};
  put.put.value = (struct wire_bytes){value, sizeof value};
  put.put.context = (struct wire_bytes){ctx, sizeof ctx};
  put.put.opts = (struct wire_options){.r = WIRE_QUORUM,
                                       .w = WIRE_QUORUM,
                                       .timeout_ms = 2000,
                                       .read_repair = WIRE_RR_DEFAULT};

  struct wire_msg rw = {.type = WIRE_REPLICA_WRITE, .request_id = 987654321};
  rw.replica_write.token = 0x9e3779b97f4a7c15ull;
  rw.replica_write.key = put.put.key;
  rw.replica_write.object = (struct wire_bytes){object, sizeof object};
  rw.replica_write.flags = WIRE_REPLICA_DURABLE;

  struct {
    const char *name;
    const struct wire_msg *m;
  } cases[] = {{"PUT (100 B value)", &put}, {"REPLICA_WRITE (160 B obj)", &rw}};
  printf("%-28s %-14s %8s %14s %10s\n", "message", "operation", "frame B",
         "msgs/s", "MB/s");
  for (size_t c = 0; c < 2; c++) {
    size_t flen = wire_encoded_size(cases[c].m);
    for (int op = ENCODE; op <= SPLIT_DECODE; op++) {
      double best = 0;
      for (int rep = 0; rep < 3; rep++) {
        double r = run(cases[c].m, (enum op)op, secs / 3);
        if (r > best)
          best = r;
      }
      printf("%-28s %-14s %8zu %14.0f %10.1f\n", cases[c].name, op_names[op],
             flen, best, best * (double)flen / 1e6);
    }
  }
  return 0;
}
