/* chorus_error.h: the one error enum of chorus, its strings, and the errmsg
 * helpers that carry context up the stack.
 *
 * HOW ERRORS TRAVEL
 *
 * Every fallible function returns an int: CHORUS_OK (0) or a negative
 * CHORUS_E* code from the table below. Codes are stable: they go on the wire
 * in ERROR replies (docs/PROTOCOL.md), so never renumber an entry, only add.
 *
 * An object that can fail in interesting ways (a store, a connection, a
 * decoder) owns a `char errmsg[CHORUS_ERRMSG_SIZE]`. The function that sees
 * the failure first writes a message with chorus_errf(); each caller above it
 * that adds meaning prefixes its context with chorus_errwrap(), so the final
 * text reads outermost-first:
 *
 *     open store /var/lib/chorus: column family "data": IO error: ...
 *
 * Foreign errors are converted at the boundary where they enter: RocksDB's
 * `char *err` strings in storage/store_rocksdb.c, negative libuv codes in
 * node/, errno values through chorus_error_from_errno().
 */
#ifndef CHORUS_ERROR_H
#define CHORUS_ERROR_H

#include <stddef.h>

/* X(name, value, text). Values are negative and never reused. */
#define CHORUS_ERROR_MAP(X)                                                    \
  X(ENOMEM, -1, "out of memory")                                               \
  X(EINVAL, -2, "invalid argument")                                            \
  X(ENOTFOUND, -3, "not found")                                                \
  X(EIO, -4, "I/O error")                                                      \
  X(ECORRUPT, -5, "data corruption detected")                                  \
  X(ESYNCFAILED, -6, "a sync failed earlier; the store refuses writes")        \
  X(EMALFORMED, -7, "malformed input")                                         \
  X(ETOOBIG, -8, "too large")                                                  \
  X(ETYPE, -9, "wrong object type for this key")                               \
  X(ECANCELED, -10, "operation canceled")                                      \
  X(ETIMEDOUT, -11, "timed out")                                               \
  X(EUNAVAILABLE, -12, "not enough replicas available")                        \
  X(EEXIST, -13, "already exists")                                             \
  X(EBUSY, -14, "resource busy")                                               \
  X(EVERSION, -15, "unsupported version")                                      \
  X(EAUTH, -16, "authentication failed")                                       \
  X(ECLUSTER, -17, "wrong cluster")                                            \
  X(ENOSPC, -18, "no space left on device")                                    \
  X(EOVERLOAD, -19, "overloaded, try again later")                             \
  X(ESIBLINGS, -20, "too many siblings")                                       \
  X(ECLOSED, -21, "closed")                                                    \
  X(ERANGE, -22, "value out of range")                                         \
  X(EPERM, -23, "permission denied")                                           \
  X(ENOTSUP, -24, "not supported")                                             \
  X(EINTERNAL, -25, "internal error")                                          \
  X(ESTALE, -26, "stale: the cluster's metadata has moved on")                 \
  X(EREMOVED, -27, "this node was removed from the cluster")                   \
  X(ECLOCK, -28, "a timestamp is too far ahead of this node's clock")

enum chorus_error {
  CHORUS_OK = 0,
#define CHORUS__ERROR_ENUM(name, value, text) CHORUS_##name = (value),
  CHORUS_ERROR_MAP(CHORUS__ERROR_ENUM)
#undef CHORUS__ERROR_ENUM
};

/* Size of every errmsg buffer; longer messages are truncated, never
 * overflowed. */
#define CHORUS_ERRMSG_SIZE 256

/* chorus_strerror: the text for @code. Unknown codes give "unknown error";
 * the returned string is static and never NULL. */
const char *chorus_strerror(int code);

/* chorus_errname: "CHORUS_ENOMEM" for CHORUS_ENOMEM; static, never NULL. */
const char *chorus_errname(int code);

/* chorus_errf: writes a printf-style message into @errmsg (which holds
 * CHORUS_ERRMSG_SIZE bytes; NULL is allowed and ignored) and returns @code,
 * so a failure site reads `return chorus_errf(s->errmsg, CHORUS_EIO, ...)`. */
int chorus_errf(char *errmsg, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* chorus_errwrap: prefixes "<context>: " to the message already in @errmsg
 * (or to chorus_strerror(@code) when it is empty) and returns @code. */
int chorus_errwrap(char *errmsg, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* chorus_error_from_errno: maps an errno value to the nearest chorus code
 * (ENOSPC -> CHORUS_ENOSPC, ENOMEM -> CHORUS_ENOMEM, EACCES -> CHORUS_EPERM,
 * anything else -> CHORUS_EIO). */
int chorus_error_from_errno(int errnum);

/* chorus_maybe_applied: whether a write that failed with @code may still
 * have taken effect on some replica: a quorum that timed out
 * (CHORUS_ETIMEDOUT), a node that stopped or failed after writing
 * (CHORUS_ECANCELED, CHORUS_ESYNCFAILED, CHORUS_EINTERNAL), replicas that
 * refused a write stamped too far ahead of their clocks (CHORUS_ECLOCK:
 * the coordinator holds it, and it spreads once their clocks pass its
 * stamp). Every other
 * code means nothing was written (a coordinator answers CHORUS_EIO only
 * when its own store refused the write). The coordinator and the
 * client library both classify with it, so a client never reports as
 * failed a write a node may have applied. */
int chorus_maybe_applied(int code);

#endif /* CHORUS_ERROR_H */
