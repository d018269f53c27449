/* chorus_error.c: strings for the error table and the errmsg helpers. */
#include "chorus_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *chorus_strerror(int code) {
  switch (code) {
  case CHORUS_OK:
    return "ok";
#define CHORUS__ERROR_TEXT(name, value, text)                                  \
  case CHORUS_##name:                                                          \
    return text;
    CHORUS_ERROR_MAP(CHORUS__ERROR_TEXT)
#undef CHORUS__ERROR_TEXT
  default:
    return "unknown error";
  }
}

const char *chorus_errname(int code) {
  switch (code) {
  case CHORUS_OK:
    return "CHORUS_OK";
#define CHORUS__ERROR_NAME(name, value, text)                                  \
  case CHORUS_##name:                                                          \
    return "CHORUS_" #name;
    CHORUS_ERROR_MAP(CHORUS__ERROR_NAME)
#undef CHORUS__ERROR_NAME
  default:
    return "CHORUS_EUNKNOWN";
  }
}

int chorus_errf(char *errmsg, int code, const char *fmt, ...) {
  if (errmsg == NULL)
    return code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errmsg, CHORUS_ERRMSG_SIZE, fmt, ap);
  va_end(ap);
  return code;
}

int chorus_errwrap(char *errmsg, int code, const char *fmt, ...) {
  if (errmsg == NULL)
    return code;
  char inner[CHORUS_ERRMSG_SIZE];
  if (errmsg[0] != '\0')
    memcpy(inner, errmsg, CHORUS_ERRMSG_SIZE);
  else
    snprintf(inner, sizeof inner, "%s", chorus_strerror(code));
  inner[CHORUS_ERRMSG_SIZE - 1] = '\0';

  char context[CHORUS_ERRMSG_SIZE];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(context, sizeof context, fmt, ap);
  va_end(ap);
  /* "<context>: <inner>", truncated to fit (a plain snprintf of both would
   * trip -Wformat-truncation, which is the point here). */
  size_t used = 0;
  const char *parts[3] = {context, ": ", inner};
  for (int i = 0; i < 3; i++) {
    size_t len = strlen(parts[i]);
    if (len > CHORUS_ERRMSG_SIZE - 1 - used)
      len = CHORUS_ERRMSG_SIZE - 1 - used;
    memcpy(errmsg + used, parts[i], len);
    used += len;
  }
  errmsg[used] = '\0';
  return code;
}

int chorus_error_from_errno(int errnum) {
  switch (errnum) {
  case 0:
    return CHORUS_OK;
  case ENOSPC:
  case EDQUOT:
    return CHORUS_ENOSPC;
  case ENOMEM:
    return CHORUS_ENOMEM;
  case EACCES:
  case EPERM:
  case EROFS:
    return CHORUS_EPERM;
  case EEXIST:
    return CHORUS_EEXIST;
  case ENOENT:
    return CHORUS_ENOTFOUND;
  case EINVAL:
    return CHORUS_EINVAL;
  case EBUSY:
  case EADDRINUSE:
    return CHORUS_EBUSY;
  case ETIMEDOUT:
    return CHORUS_ETIMEDOUT;
  case ECANCELED:
    return CHORUS_ECANCELED;
  default:
    return CHORUS_EIO;
  }
}

int chorus_maybe_applied(int code) {
  switch (code) {
  case CHORUS_ETIMEDOUT:
  case CHORUS_ECANCELED:
  case CHORUS_ESYNCFAILED:
  case CHORUS_EINTERNAL:
  case CHORUS_ECLOCK:
    return 1;
  default:
    return 0;
  }
}
