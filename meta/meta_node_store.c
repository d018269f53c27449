/* meta_node_store.c: Raft's persistent state in STORE_META (meta_node.h).
 *
 *   key                         value
 *   "raft/tv"                   term (8, BE), vote (8, BE)
 *   "raft/log/" index (8, BE)   term (8), type (2), the entry's bytes
 *   "raft/snap"                 version 1 (1), index, term, conf index
 *                               (8 each), servers (4), each: id (8),
 *                               role (1), address length (1), address;
 *                               data length (4), data
 *   "meta/state"                the applied state (meta_state_encode)
 *
 * Writes are not synced here: the send gate and the completion queue in
 * meta_node_io.c wait for a barrier. Bytes read back that make no sense are
 * CHORUS_ECORRUPT: the node refuses to serve rather than guess. */
#include <inttypes.h>
#include <string.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "meta_node_int.h"

#define TRACE(n, ...) chorus_trace((n)->cfg.tracer, "meta", __VA_ARGS__)

static const char KEY_TV[] = "raft/tv";
static const char KEY_SNAP[] = "raft/snap";
static const char KEY_STATE[] = "meta/state";
static const char LOG_PREFIX[] = "raft/log/";
#define LOG_PREFIX_LEN (sizeof LOG_PREFIX - 1)
#define LOG_KEY_LEN (LOG_PREFIX_LEN + 8)
#define ENTRY_HEADER 10u

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

static void log_key(uint8_t key[LOG_KEY_LEN], raft_index index) {
  memcpy(key, LOG_PREFIX, LOG_PREFIX_LEN);
  put64(key + LOG_PREFIX_LEN, index);
}

/* wrote: bookkeeping of one store write's outcome, as a raft code. A full
 * disk refuses this write only (RAFT_NOSPACE); any other failure stops
 * the node (store.h: a failed sync is sticky). */
static int wrote(struct meta_node *n, int rc, chorus_seq seq,
                 const char *what) {
  if (rc == CHORUS_OK) {
    if (seq > n->written)
      n->written = seq;
    return 0;
  }
  n->store_errors++;
  TRACE(n, "metadata %s not written: %s", what, chorus_strerror(rc));
  if (rc == CHORUS_ENOMEM)
    return RAFT_NOMEM;
  if (rc == CHORUS_ENOSPC)
    return RAFT_NOSPACE;
  if (n->store_failed == CHORUS_OK)
    n->store_failed = rc;
  return RAFT_IOERR;
}

int meta__store_term_vote(struct meta_node *n, raft_term term, raft_id vote) {
  uint8_t v[16];
  put64(v, term);
  put64(v + 8, vote);
  chorus_seq seq = 0;
  int rc = store_put(n->store, STORE_META, KEY_TV, strlen(KEY_TV), v, sizeof v,
                     &seq);
  return wrote(n, rc, seq, "term and vote");
}

static int batch_entry(struct store_batch *b, raft_index index,
                       const struct raft_entry *e) {
  uint8_t key[LOG_KEY_LEN];
  log_key(key, index);
  size_t len = ENTRY_HEADER + e->buf.len;
  uint8_t *v = chorus_malloc(len);
  if (v == NULL)
    return CHORUS_ENOMEM;
  put64(v, e->term);
  v[8] = (uint8_t)(e->type >> 8);
  v[9] = (uint8_t)e->type;
  if (e->buf.len > 0)
    memcpy(v + ENTRY_HEADER, e->buf.base, e->buf.len);
  int rc = store_batch_put(b, STORE_META, key, sizeof key, v, len);
  chorus_free(v);
  return rc;
}

/* A FAILED WRITE LEAVES NO HOLE. Raft appends right after its last index
 * (the entries it was given are already in its in-memory log), whether or
 * not the store took the previous append: a write refused for a full disk
 * is not always the end of that instance (a configuration change's failed
 * append is answered later, and the revival waits for the next second,
 * meta_node_io.c), and meanwhile the leader's next entries arrive. Written
 * as they came, the log on disk had a hole (entries 1-6, then 29 once the
 * disk had room: the change simulator's grow and shrink seed 146), which
 * the next load rightly calls corrupt, and the node stopped for good. So
 * an append must continue what the store holds (n->log_last): one that
 * would leave a hole is refused like the write before it (RAFT_NOSPACE,
 * this write only), and the revival reloads the log as it is on disk and
 * asks the leader for the rest.
 *
 * The same batch deletes any stored entry past its last one: an append at
 * index i says the log ends at i + count - 1, and if the truncation that
 * preceded it failed, the older entries beyond would otherwise come back
 * at the next load as if never truncated. One batch: both, or neither. */
int meta__store_append(struct meta_node *n, const struct raft_entry *e,
                       unsigned count) {
  raft_index first = raft_last_index(&n->raft) - count + 1;
  raft_index last = first + count - 1;
  if (first > n->log_last + 1) {
    n->store_errors++;
    TRACE(n,
          "metadata log entries %" PRIu64 "-%" PRIu64
          " not written: the stored log ends at %" PRIu64
          " (an earlier write failed), a hole would corrupt it",
          (uint64_t)first, (uint64_t)last, (uint64_t)n->log_last);
    return RAFT_NOSPACE;
  }
  struct store_batch *b = store_batch_new();
  if (b == NULL)
    return RAFT_NOMEM;
  int rc = CHORUS_OK;
  for (unsigned i = 0; i < count && rc == CHORUS_OK; i++)
    rc = batch_entry(b, first + i, &e[i]);
  for (raft_index i = last + 1; i <= n->log_last && rc == CHORUS_OK; i++) {
    uint8_t key[LOG_KEY_LEN];
    log_key(key, i);
    rc = store_batch_delete(b, STORE_META, key, sizeof key);
  }
  chorus_seq seq = 0;
  if (rc == CHORUS_OK)
    rc = store_write_batch(n->store, b, &seq);
  store_batch_free(b);
  if (rc == CHORUS_OK)
    n->log_last = last;
  return wrote(n, rc, seq, "log entries");
}

/* delete_log: removes the log entries with @lo <= index < @hi. */
static int delete_log(struct meta_node *n, raft_index lo, raft_index hi,
                      const char *what) {
  uint8_t klo[LOG_KEY_LEN], khi[LOG_KEY_LEN];
  log_key(klo, lo);
  log_key(khi, hi);
  struct store_iter *it = NULL;
  int rc = store_iter_open(n->store, STORE_META, klo, sizeof klo,
                           hi == UINT64_MAX ? NULL : khi,
                           hi == UINT64_MAX ? 0 : sizeof khi, &it);
  if (rc != CHORUS_OK)
    return wrote(n, rc, 0, what);
  struct store_batch *b = store_batch_new();
  if (b == NULL) {
    store_iter_close(it);
    return RAFT_NOMEM;
  }
  for (; rc == CHORUS_OK && store_iter_valid(it); store_iter_next(it)) {
    size_t klen;
    const void *k = store_iter_key(it, &klen);
    if (klen != LOG_KEY_LEN || memcmp(k, LOG_PREFIX, LOG_PREFIX_LEN) != 0)
      break;
    rc = store_batch_delete(b, STORE_META, k, klen);
  }
  if (rc == CHORUS_OK)
    rc = store_iter_status(it);
  store_iter_close(it);
  chorus_seq seq = 0;
  if (rc == CHORUS_OK && store_batch_count(b) > 0)
    rc = store_write_batch(n->store, b, &seq);
  store_batch_free(b);
  return wrote(n, rc, seq, what);
}

int meta__store_truncate(struct meta_node *n, raft_index index) {
  int rv = delete_log(n, index, UINT64_MAX, "log truncation");
  if (rv == 0 && index > 0 && index - 1 < n->log_last)
    n->log_last = index - 1;
  return rv;
}

int meta__store_bootstrap(struct meta_node *n,
                          const struct raft_configuration *conf) {
  bool has = false;
  int rc = meta__store_has_raft(n, &has);
  if (rc != CHORUS_OK)
    return RAFT_IOERR;
  if (has)
    return RAFT_CANTBOOTSTRAP;
  struct raft_buffer buf;
  int rv = raft_configuration_encode(conf, &buf);
  if (rv != 0)
    return rv;
  struct raft_entry e = {.term = 1, .type = RAFT_CHANGE, .buf = buf};
  struct store_batch *b = store_batch_new();
  rc = b == NULL ? CHORUS_ENOMEM : batch_entry(b, 1, &e);
  raft_free(buf.base);
  uint8_t tv[16] = {0};
  put64(tv, 1);
  if (rc == CHORUS_OK)
    rc = store_batch_put(b, STORE_META, KEY_TV, strlen(KEY_TV), tv, sizeof tv);
  chorus_seq seq = 0;
  if (rc == CHORUS_OK)
    rc = store_write_batch(n->store, b, &seq);
  store_batch_free(b);
  if (rc == CHORUS_OK) {
    n->term = 1;
    n->log_last = 1;
  }
  return wrote(n, rc, seq, "bootstrap");
}

/* ------------------------------------------------------------------------
 * Snapshots
 * ------------------------------------------------------------------------ */

void meta__snapshot_destroy(struct raft_snapshot *s) {
  if (s == NULL)
    return;
  raft_configuration_close(&s->configuration);
  for (unsigned i = 0; i < s->n_bufs; i++)
    raft_free(s->bufs[i].base);
  raft_free(s->bufs);
  raft_free(s);
}

int meta__store_snapshot_put(struct meta_node *n, unsigned trailing,
                             const struct raft_snapshot *s) {
  size_t data = 0, len = 1 + 24 + 4 + 4;
  for (unsigned i = 0; i < s->n_bufs; i++)
    data += s->bufs[i].len;
  for (unsigned i = 0; i < s->configuration.n; i++)
    len += 10 + strlen(s->configuration.servers[i].address);
  len += data;
  if (data > META_MAX_STATE_BYTES || len > STORE_MAX_VALUE)
    return RAFT_TOOBIG;
  uint8_t *v = chorus_malloc(len), *p = v;
  if (v == NULL)
    return RAFT_NOMEM;
  *p++ = 1;
  put64(p, s->index);
  put64(p + 8, s->term);
  put64(p + 16, s->configuration_index);
  p += 24;
  uint32_t ns = s->configuration.n;
  for (int i = 3; i >= 0; i--)
    *p++ = (uint8_t)(ns >> (8 * i));
  for (unsigned i = 0; i < ns; i++) {
    const struct raft_server *sv = &s->configuration.servers[i];
    size_t al = strlen(sv->address);
    if (al > 255) {
      chorus_free(v);
      return RAFT_INVALID;
    }
    put64(p, sv->id);
    p[8] = (uint8_t)sv->role;
    p[9] = (uint8_t)al;
    memcpy(p + 10, sv->address, al);
    p += 10 + al;
  }
  for (int i = 3; i >= 0; i--)
    *p++ = (uint8_t)(data >> (8 * i));
  for (unsigned i = 0; i < s->n_bufs; i++) {
    if (s->bufs[i].len > 0)
      memcpy(p, s->bufs[i].base, s->bufs[i].len);
    p += s->bufs[i].len;
  }
  chorus_seq seq = 0;
  int rc =
      store_put(n->store, STORE_META, KEY_SNAP, strlen(KEY_SNAP), v, len, &seq);
  chorus_free(v);
  int rv = wrote(n, rc, seq, "snapshot");
  if (rv != 0)
    return rv;
  /* Entries the snapshot covers go, but for @trailing of them (0: every
   * entry, as after a snapshot installed from the leader). */
  if (trailing == 0) {
    rv = delete_log(n, 1, UINT64_MAX, "log compaction");
    if (rv == 0)
      n->log_last = s->index; /* the log goes on after the snapshot */
    return rv;
  }
  if (s->index > trailing)
    return delete_log(n, 1, s->index - trailing + 1, "log compaction");
  return 0;
}

/* decode_snapshot: "raft/snap"'s value into a raft_malloc'ed snapshot. */
static int decode_snapshot(const uint8_t *v, size_t len,
                           struct raft_snapshot **out) {
  *out = NULL;
  if (len < 1 + 24 + 4 || v[0] != 1)
    return CHORUS_ECORRUPT;
  struct raft_snapshot *s = raft_calloc(1, sizeof *s);
  if (s == NULL)
    return CHORUS_ENOMEM;
  raft_configuration_init(&s->configuration);
  const uint8_t *p = v + 1, *end = v + len;
  s->index = get64(p);
  s->term = get64(p + 8);
  s->configuration_index = get64(p + 16);
  p += 24;
  uint32_t ns =
      (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
  p += 4;
  int rc = CHORUS_OK;
  if (ns > META_MAX_MEMBERS)
    rc = CHORUS_ECORRUPT;
  for (uint32_t i = 0; i < ns && rc == CHORUS_OK; i++) {
    if (end - p < 10 || end - p - 10 < p[9]) {
      rc = CHORUS_ECORRUPT;
      break;
    }
    char addr[256];
    memcpy(addr, p + 10, p[9]);
    addr[p[9]] = '\0';
    int rv = raft_configuration_add(&s->configuration, get64(p), addr, p[8]);
    if (rv != 0)
      rc = rv == RAFT_NOMEM ? CHORUS_ENOMEM : CHORUS_ECORRUPT;
    p += 10 + p[9];
  }
  if (rc == CHORUS_OK && end - p < 4)
    rc = CHORUS_ECORRUPT;
  if (rc == CHORUS_OK) {
    uint32_t dl = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                  (uint32_t)p[2] << 8 | p[3];
    p += 4;
    if ((size_t)(end - p) != dl || dl > META_MAX_STATE_BYTES) {
      rc = CHORUS_ECORRUPT;
    } else {
      s->bufs = raft_malloc(sizeof *s->bufs);
      void *d = raft_malloc(dl ? dl : 1);
      if (s->bufs == NULL || d == NULL) {
        raft_free(d);
        rc = CHORUS_ENOMEM;
      } else {
        memcpy(d, p, dl);
        s->bufs[0] = (struct raft_buffer){d, dl};
        s->n_bufs = 1;
      }
    }
  }
  if (rc != CHORUS_OK) {
    meta__snapshot_destroy(s);
    return rc;
  }
  *out = s;
  return CHORUS_OK;
}

static int read_snapshot(struct meta_node *n, struct raft_snapshot **out) {
  void *v = NULL;
  size_t len = 0;
  int rc =
      store_get(n->store, STORE_META, KEY_SNAP, strlen(KEY_SNAP), &v, &len);
  if (rc != CHORUS_OK)
    return rc;
  rc = decode_snapshot(v, len, out);
  chorus_free(v);
  return rc;
}

int meta__store_snapshot_get(struct meta_node *n, struct raft_snapshot **out) {
  return read_snapshot(n, out);
}

/* ------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------ */

int meta__store_has_raft(struct meta_node *n, bool *has) {
  void *v = NULL;
  size_t len = 0;
  int rc = store_get(n->store, STORE_META, KEY_TV, strlen(KEY_TV), &v, &len);
  chorus_free(v);
  if (rc == CHORUS_OK) {
    *has = true;
    return CHORUS_OK;
  }
  if (rc != CHORUS_ENOTFOUND)
    return rc;
  rc = store_get(n->store, STORE_META, KEY_SNAP, strlen(KEY_SNAP), &v, &len);
  chorus_free(v);
  *has = rc == CHORUS_OK;
  return rc == CHORUS_ENOTFOUND ? CHORUS_OK : rc;
}

/* load_entries: every stored log entry, contiguous, into one raft_malloc'ed
 * batch (raft's convention for loaded entries). */
static int load_entries(struct meta_node *n, raft_index *start,
                        struct raft_entry **entries, size_t *count) {
  *entries = NULL;
  *count = 0;
  uint8_t klo[LOG_KEY_LEN];
  log_key(klo, 0);
  struct store_iter *it = NULL;
  int rc = store_iter_open(n->store, STORE_META, klo, sizeof klo, NULL, 0, &it);
  if (rc != CHORUS_OK)
    return rc;
  size_t cnt = 0, bytes = 0;
  raft_index first = 0;
  for (; store_iter_valid(it); store_iter_next(it)) {
    size_t klen, vlen;
    const uint8_t *k = store_iter_key(it, &klen);
    store_iter_value(it, &vlen);
    if (klen != LOG_KEY_LEN || memcmp(k, LOG_PREFIX, LOG_PREFIX_LEN) != 0)
      break;
    raft_index idx = get64(k + LOG_PREFIX_LEN);
    if (cnt == 0)
      first = idx;
    if (idx != first + cnt || vlen < ENTRY_HEADER) {
      TRACE(n,
            "stored log corrupt: entry %" PRIu64 " (%zu bytes) where %" PRIu64
            " belongs",
            (uint64_t)idx, vlen, (uint64_t)(first + cnt));
      store_iter_close(it);
      return CHORUS_ECORRUPT;
    }
    cnt++;
    bytes += vlen - ENTRY_HEADER;
  }
  rc = store_iter_status(it);
  store_iter_close(it);
  if (rc != CHORUS_OK || cnt == 0) {
    *start = first;
    return rc;
  }
  struct raft_entry *e = raft_calloc(cnt, sizeof *e);
  uint8_t *batch = raft_malloc(bytes ? bytes : 1);
  if (e == NULL || batch == NULL) {
    raft_free(e);
    raft_free(batch);
    return CHORUS_ENOMEM;
  }
  rc = store_iter_open(n->store, STORE_META, klo, sizeof klo, NULL, 0, &it);
  size_t i = 0, off = 0;
  for (; rc == CHORUS_OK && store_iter_valid(it) && i < cnt;
       store_iter_next(it), i++) {
    size_t vlen;
    const uint8_t *v = store_iter_value(it, &vlen);
    if (vlen < ENTRY_HEADER || off + vlen - ENTRY_HEADER > bytes) {
      rc = CHORUS_ECORRUPT;
      break;
    }
    e[i].term = get64(v);
    e[i].type = (unsigned short)(v[8] << 8 | v[9]);
    e[i].buf.base = batch + off;
    e[i].buf.len = vlen - ENTRY_HEADER;
    e[i].batch = batch;
    if (e[i].term == 0 || e[i].type < RAFT_COMMAND || e[i].type > RAFT_CHANGE)
      rc = CHORUS_ECORRUPT;
    memcpy(batch + off, v + ENTRY_HEADER, vlen - ENTRY_HEADER);
    off += vlen - ENTRY_HEADER;
  }
  if (it != NULL) {
    if (rc == CHORUS_OK)
      rc = store_iter_status(it);
    store_iter_close(it);
  }
  if (rc == CHORUS_OK && i != cnt)
    rc = CHORUS_ECORRUPT; /* changed under us: nothing else writes it */
  if (rc != CHORUS_OK) {
    raft_free(e);
    raft_free(batch);
    return rc;
  }
  *start = first;
  *entries = e;
  *count = cnt;
  return CHORUS_OK;
}

int meta__store_load(struct meta_node *n, raft_term *term, raft_id *vote,
                     struct raft_snapshot **snapshot, raft_index *start,
                     struct raft_entry **entries, size_t *count) {
  *term = 0;
  *vote = 0;
  *snapshot = NULL;
  *entries = NULL;
  *count = 0;
  void *v = NULL;
  size_t len = 0;
  int rc = store_get(n->store, STORE_META, KEY_TV, strlen(KEY_TV), &v, &len);
  if (rc == CHORUS_OK) {
    if (len != 16)
      rc = CHORUS_ECORRUPT;
    else {
      *term = get64(v);
      *vote = get64((uint8_t *)v + 8);
      n->term = *term;
    }
  } else if (rc == CHORUS_ENOTFOUND) {
    rc = CHORUS_OK;
  }
  chorus_free(v);
  if (rc != CHORUS_OK)
    return rc;
  rc = read_snapshot(n, snapshot);
  if (rc == CHORUS_ENOTFOUND)
    rc = CHORUS_OK;
  if (rc != CHORUS_OK)
    return rc;
  raft_index first = 0;
  rc = load_entries(n, &first, entries, count);
  if (rc != CHORUS_OK) {
    meta__snapshot_destroy(*snapshot);
    *snapshot = NULL;
    return rc;
  }
  if (*count == 0)
    first = *snapshot != NULL ? (*snapshot)->index + 1 : 1;
  /* The log must continue the snapshot (it may overlap it: trailing). */
  if (*snapshot != NULL && *count > 0 && first > (*snapshot)->index + 1)
    rc = CHORUS_ECORRUPT;
  if (*snapshot == NULL && *count > 0 && first != 1)
    rc = CHORUS_ECORRUPT;
  if (rc != CHORUS_OK)
    TRACE(n,
          "stored log corrupt: it starts at %" PRIu64 ", the snapshot ends at "
          "%" PRIu64,
          (uint64_t)first,
          *snapshot != NULL ? (uint64_t)(*snapshot)->index : 0);
  if (rc != CHORUS_OK) {
    meta__snapshot_destroy(*snapshot);
    *snapshot = NULL;
    if (*entries != NULL) {
      raft_free((*entries)[0].batch);
      raft_free(*entries);
    }
    *entries = NULL;
    *count = 0;
    return rc;
  }
  *start = first;
  n->log_last = *count > 0 ? first + *count - 1 : first - 1;
  TRACE(n,
        "loaded term %" PRIu64 ", %zu log entries from %" PRIu64
        ", snapshot %s",
        (uint64_t)*term, *count, (uint64_t)first,
        *snapshot != NULL ? "yes" : "none");
  return CHORUS_OK;
}

int meta__store_load_state(struct meta_node *n, struct meta_state *out) {
  void *v = NULL;
  size_t len = 0;
  int rc =
      store_get(n->store, STORE_META, KEY_STATE, strlen(KEY_STATE), &v, &len);
  if (rc != CHORUS_OK)
    return rc;
  struct meta_state s;
  rc = meta_state_decode(v, len, &s);
  chorus_free(v);
  if (rc != CHORUS_OK)
    return rc == CHORUS_ENOMEM ? rc : CHORUS_ECORRUPT;
  meta_state_free(out);
  *out = s;
  return CHORUS_OK;
}

void meta__store_state(struct meta_node *n, const struct meta_state *s) {
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = meta_state_encode(s, &buf, &len);
  chorus_seq seq = 0;
  if (rc == CHORUS_OK)
    rc = store_put(n->store, STORE_META, KEY_STATE, strlen(KEY_STATE), buf, len,
                   &seq);
  chorus_free(buf);
  /* The log keeps what this copy misses: a failed write only delays what
   * a restart serves before it hears from a leader. */
  (void)wrote(n, rc, seq, "state");
}
