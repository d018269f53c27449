/* chorus_alloc.h: the one allocation seam of chorus.
 *
 * All chorus code allocates through these functions, never through malloc()
 * directly, so a test can make the (k+1)-th allocation fail and walk every
 * out-of-memory path:
 *
 *     for (long k = 0;; k++) {
 *       chorus_alloc_fail_after(k);
 *       int rc = operation_under_test();
 *       chorus_alloc_fail_after(-1);
 *       if (rc == CHORUS_OK) break;        // k allocations were enough
 *       assert_int_equal(rc, CHORUS_ENOMEM);
 *       // ... and the object is still usable, nothing leaked (ASan)
 *     }
 *
 * Foreign libraries (RocksDB, msgpack-c, libuv) allocate on their own; their
 * failures reach us as their own error codes and are converted at the
 * boundary.
 *
 * The failure counter is process-wide and atomic, so it is safe to touch from
 * any thread; tests that inject failures should keep other threads quiet.
 */
#ifndef CHORUS_ALLOC_H
#define CHORUS_ALLOC_H

#include <stddef.h>

/* Same contracts as malloc/calloc/realloc/free, except that they may fail on
 * purpose under chorus_alloc_fail_after(). chorus_calloc checks @n * @size
 * for overflow. chorus_realloc leaves @ptr untouched when it fails.
 * chorus_malloc(0) returns a unique non-NULL pointer (it asks for one byte). */
void *chorus_malloc(size_t size);
void *chorus_calloc(size_t n, size_t size);
void *chorus_realloc(void *ptr, size_t size);
void chorus_free(void *ptr);

/* chorus_memdup: a chorus_malloc'ed copy of @len bytes of @src (@src may be
 * NULL when @len is 0). NULL when out of memory. */
void *chorus_memdup(const void *src, size_t len);

/* chorus_strdup: a chorus_malloc'ed copy of a NUL-terminated string. */
char *chorus_strdup(const char *s);

/* chorus_grow: array @p (*@cap elements of @size, @n of them in use) with
 * room for one more: @p itself while @n < *@cap, else @p chorus_realloc'ed
 * to twice the capacity (@first when it was 0) and *@cap updated. NULL
 * when out of memory or the size would overflow: @p and *@cap are then
 * unchanged and still the caller's. Usage:
 *   struct x *g = chorus_grow(a->v, &a->cap, a->n, sizeof *g, 16);
 *   if (g == NULL) return CHORUS_ENOMEM;
 *   a->v = g;
 *   a->v[a->n++] = item; */
void *chorus_grow(void *p, size_t *cap, size_t n, size_t size, size_t first);

/* chorus_alloc_fail_after: the next @k allocations succeed, every one after
 * them fails, until the next call. @k < 0 turns injection off (the default). */
void chorus_alloc_fail_after(long k);

/* chorus_alloc_count: allocations attempted since the process started (or
 * since the last chorus_alloc_fail_after() call), successful or not. Lets a
 * test learn how many allocations an operation makes. */
long chorus_alloc_count(void);

#endif /* CHORUS_ALLOC_H */
