/* chorus_cli_lock.c: `chorus lock acquire|renew|release|status` and
 * `chorus put KEY VALUE --fence NAME:TOKEN` (issue 23; libchorus.h, LOCKS
 * WITH FENCING TOKENS). Exit codes as the CAS commands: 0 applied (status:
 * read), 1 not applied (why on stderr), 2 any error. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chorus_alloc.h"
#include "chorus_cli_int.h"

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nap_ms(uint64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* parse_u64: a decimal count 0..@max. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = s != NULL ? strtoull(s, &end, 10) : 0;
  if (s == NULL || errno || end == s || *end || s[0] == '-' || v > max)
    return -1;
  *out = v;
  return 0;
}

static void print_bytes_json(struct chorus_bytes b) {
  /* Holders and names are ids people choose: printable, or escaped. */
  putchar('"');
  for (size_t i = 0; i < b.len; i++) {
    uint8_t ch = b.ptr[i];
    if (ch == '"' || ch == '\\')
      printf("\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f)
      printf("\\u%04x", ch);
    else
      putchar(ch);
  }
  putchar('"');
}

static void print_record(const struct cli *cl, const char *name,
                         const struct chorus_result *res) {
  struct chorus_bytes holder =
      res->nvalues > 0 ? res->values[0] : (struct chorus_bytes){NULL, 0};
  if (cl->json) {
    printf("{\"lock\":");
    json_cstr(name);
    printf(",\"applied\":%s,\"held\":%s,\"token\":%" PRIu64 ",\"holder\":",
           res->cas_applied ? "true" : "false",
           res->lock_held ? "true" : "false", res->lock_token);
    print_bytes_json(holder);
    printf(",\"expires\":%" PRIu64 ",\"left_ms\":%" PRIu64 "}\n",
           res->lock_expires, res->lock_left_ms);
    return;
  }
  if (res->lock_held)
    printf("held by %.*s, token %" PRIu64 ", %" PRIu64 " ms left\n",
           (int)holder.len, (const char *)holder.ptr, res->lock_token,
           res->lock_left_ms);
  else
    printf("free, last token %" PRIu64 "\n", res->lock_token);
}

static const char *refusal_text(int why) {
  switch (why) {
  case CHORUS_LOCK_HELD:
    return "held by another holder whose lease is live";
  case CHORUS_LOCK_BAD_TOKEN:
    return "not held at that token";
  case CHORUS_LOCK_EXPIRED:
    return "the lease is over";
  default:
    return "not applied";
  }
}

/* A holder's id: host:pid, so that `lock status` says who. */
static size_t holder_id(char *buf, size_t cap) {
  char host[64] = "";
  if (gethostname(host, sizeof host) != 0)
    host[0] = '\0';
  host[sizeof host - 1] = '\0';
  int n = snprintf(buf, cap, "%s:%ld", host, (long)getpid());
  return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

int cmd_lock(struct chorus_client *c, const struct cli *cl) {
  const char *form = "lock acquire NAME --ttl MS [--wait MS] | lock renew "
                     "NAME TOKEN --ttl MS | lock release NAME TOKEN | lock "
                     "status NAME";
  if (cl->argc < 3)
    return usage_error("%s", form);
  const char *sub = cl->argv[1], *name = cl->argv[2];
  bool acquire = strcmp(sub, "acquire") == 0, renew = strcmp(sub, "renew") == 0,
       release = strcmp(sub, "release") == 0,
       status = strcmp(sub, "status") == 0;
  if (!acquire && !renew && !release && !status)
    return usage_error("lock: \"%s\" is not acquire, renew, release or "
                       "status",
                       sub);
  uint64_t ttl = 0, token = 0, wait = 0;
  if ((acquire || renew) &&
      (cl->ttl_raw == NULL || parse_u64(cl->ttl_raw, UINT64_MAX, &ttl) != 0 ||
       ttl == 0))
    return usage_error("lock %s needs --ttl MS (a lease of 1 ms or more)", sub);
  if (!(acquire || renew) && cl->ttl_raw != NULL)
    return usage_error("--ttl is for lock acquire and lock renew");
  int want = acquire ? (cl->wait ? 4 : 3) : status ? 3 : 4;
  if (cl->argc != want)
    return usage_error("%s", form);
  if ((renew || release) && parse_u64(cl->argv[3], UINT64_MAX, &token) != 0)
    return usage_error("lock %s: \"%s\" is not a token", sub, cl->argv[3]);
  if (acquire && cl->wait && parse_u64(cl->argv[3], 86400000u, &wait) != 0)
    return usage_error("--wait needs MS (0..86400000)");
  if (cl->wait && !acquire)
    return usage_error("--wait is for lock acquire");
  struct chorus_opts o = cl->opts;
  o.ttl_ms = 0; /* the lease is the lock's own --ttl */
  struct chorus_result res;
  int rc;
  size_t nlen = strlen(name);
  if (acquire) {
    char holder[128];
    size_t hlen = holder_id(holder, sizeof holder);
    uint64_t deadline = mono_ms() + wait, backoff = 10;
    for (;;) {
      rc = chorus_lock_acquire(c, name, nlen, holder, hlen, ttl, &o, &res);
      if (rc != CHORUS_OK || res.cas_applied || mono_ms() >= deadline)
        break;
      /* Held: try again after a growing, jittered pause, until the
       * deadline (the holder may release, or its lease run out). */
      uint64_t left = deadline - mono_ms();
      uint64_t nap = backoff / 2 + (uint64_t)rand() % (backoff / 2 + 1);
      if (res.lock_held && res.lock_left_ms > 0 && res.lock_left_ms < nap)
        nap = res.lock_left_ms;
      nap_ms(nap < left ? nap : left);
      backoff = backoff < 500 ? backoff * 2 : 1000;
      chorus_result_free(&res);
    }
  } else if (renew) {
    rc = chorus_lock_renew(c, name, nlen, token, ttl, &o, &res);
  } else if (release) {
    rc = chorus_lock_release(c, name, nlen, token, &o, &res);
  } else {
    rc = chorus_lock_status(c, name, nlen, &o, &res);
  }
  if (rc != CHORUS_OK) {
    fprintf(stderr, "chorus: %s (%s)%s\n", res.errmsg,
            chorus_errname(res.status),
            res.maybe_applied ? "; it may have been applied: read it with "
                                "chorus lock status"
                              : "");
    chorus_result_free(&res);
    return 2;
  }
  bool applied = res.cas_applied;
  if (cl->json) {
    print_record(cl, name, &res);
  } else if (status) {
    print_record(cl, name, &res);
  } else if (applied && acquire) {
    printf("%" PRIu64 "\n", res.lock_token);
  } else if (applied) {
    printf(renew ? "renewed\n" : "released\n");
  } else {
    fprintf(stderr, "chorus: lock %s: %s: %s\n", sub, name,
            refusal_text(res.lock_refusal));
    print_record(cl, name, &res);
  }
  chorus_result_free(&res);
  return applied || status ? 0 : 1;
}

int cmd_fenced_put(struct chorus_client *c, const struct cli *cl,
                   const uint8_t *val, size_t val_len) {
  const char *colon = strrchr(cl->fence, ':');
  uint64_t token;
  if (colon == NULL || colon == cl->fence ||
      parse_u64(colon + 1, UINT64_MAX, &token) != 0)
    return usage_error("--fence needs NAME:TOKEN");
  const char *key = cl->argv[1];
  struct chorus_result res;
  int rc =
      chorus_fenced_put(c, key, strlen(key), val, val_len, cl->fence,
                        (size_t)(colon - cl->fence), token, &cl->opts, &res);
  if (rc != CHORUS_OK) {
    fprintf(stderr, "chorus: %s (%s)%s\n", res.errmsg,
            chorus_errname(res.status),
            res.maybe_applied ? "; the write may have been applied" : "");
    chorus_result_free(&res);
    return 2;
  }
  bool applied = res.cas_applied;
  if (cl->json)
    printf("{\"applied\":%s,\"token\":%" PRIu64 ",\"highest\":%" PRIu64 "}\n",
           applied ? "true" : "false", token, applied ? token : res.lock_token);
  else if (applied)
    printf("applied\n");
  if (!applied)
    fprintf(stderr,
            "chorus: fenced: token %" PRIu64 " is below %" PRIu64
            " (the highest token %s has seen for lock %.*s); nothing "
            "changed\n",
            token, res.lock_token, key, (int)(colon - cl->fence), cl->fence);
  chorus_result_free(&res);
  return applied ? 0 : 1;
}
