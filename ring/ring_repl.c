/* ring_repl.c: the replication spec parser ("3", "dc1:3,dc2:2"). */
#include <string.h>

#include "ring.h"

static int is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

static const char *skip_spaces(const char *p) {
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

/* Parses a decimal factor at *@pp into *@v; 0 when there are no digits or
 * the value exceeds RING_MAX_REPLICAS (the caller reports it). */
static int parse_factor(const char **pp, uint32_t *v) {
  const char *p = *pp;
  uint32_t x = 0;
  int digits = 0;
  while (*p >= '0' && *p <= '9') {
    if (x <= RING_MAX_REPLICAS)
      x = x * 10u + (uint32_t)(*p - '0');
    digits++;
    p++;
  }
  *pp = p;
  *v = x;
  return digits > 0;
}

int ring_replication_parse(const char *spec, struct ring_replication *out,
                           char *errmsg) {
  if (spec == NULL || out == NULL)
    return chorus_errf(errmsg, CHORUS_EINVAL, "replication: NULL argument");
  memset(out, 0, sizeof *out);
  const char *p = skip_spaces(spec);
  if (*p == '\0')
    return chorus_errf(errmsg, CHORUS_EMALFORMED, "replication \"%s\": empty",
                       spec);

  /* A lone factor: N replicas anywhere. */
  if (*p >= '0' && *p <= '9') {
    uint32_t n;
    parse_factor(&p, &n);
    p = skip_spaces(p);
    if (*p != '\0')
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "replication \"%s\": unexpected '%c' at offset %d "
                         "(want N or dc:N,dc:N)",
                         spec, *p, (int)(p - spec));
    if (n < 1 || n > RING_MAX_REPLICAS)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "replication \"%s\": factor must be 1..%u", spec,
                         RING_MAX_REPLICAS);
    out->n = n;
    return CHORUS_OK;
  }

  uint32_t total = 0;
  for (;;) {
    p = skip_spaces(p);
    const char *name = p;
    while (is_name_char(*p))
      p++;
    size_t len = (size_t)(p - name);
    if (len == 0)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "replication \"%s\": expected a datacenter name at "
                         "offset %d",
                         spec, (int)(name - spec));
    if (len >= RING_NAME_MAX)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "replication \"%s\": datacenter name at offset %d is "
                         "longer than %u bytes",
                         spec, (int)(name - spec), RING_NAME_MAX - 1);
    p = skip_spaces(p);
    if (*p != ':')
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "replication \"%s\": expected ':' after \"%.*s\"",
                         spec, (int)len, name);
    p = skip_spaces(p + 1);
    uint32_t f;
    if (!parse_factor(&p, &f))
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "replication \"%s\": expected a factor after "
                         "\"%.*s:\"",
                         spec, (int)len, name);
    if (f < 1 || f > RING_MAX_REPLICAS)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "replication \"%s\": factor of %.*s must be 1..%u "
                         "(omit a datacenter to give it no replicas)",
                         spec, (int)len, name, RING_MAX_REPLICAS);
    for (uint32_t i = 0; i < out->dc_count; i++)
      if (strlen(out->dcs[i].dc) == len &&
          memcmp(out->dcs[i].dc, name, len) == 0)
        return chorus_errf(errmsg, CHORUS_EMALFORMED,
                           "replication \"%s\": datacenter %.*s appears twice",
                           spec, (int)len, name);
    if (out->dc_count == RING_MAX_DCS)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "replication \"%s\": more than %u datacenters", spec,
                         RING_MAX_DCS);
    total += f;
    if (total > RING_MAX_REPLICAS)
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "replication \"%s\": factors sum to more than %u",
                         spec, RING_MAX_REPLICAS);
    struct ring_dc_factor *d = &out->dcs[out->dc_count++];
    memcpy(d->dc, name, len);
    d->dc[len] = '\0';
    d->factor = f;

    p = skip_spaces(p);
    if (*p == '\0')
      break;
    if (*p != ',')
      return chorus_errf(errmsg, CHORUS_EMALFORMED,
                         "replication \"%s\": unexpected '%c' at offset %d "
                         "(want ',' between datacenters)",
                         spec, *p, (int)(p - spec));
    p++;
  }
  return CHORUS_OK;
}

uint32_t ring_replication_total(const struct ring_replication *repl) {
  if (repl->dc_count == 0)
    return repl->n;
  uint32_t total = 0;
  for (uint32_t i = 0; i < repl->dc_count && i < RING_MAX_DCS; i++)
    total += repl->dcs[i].factor;
  return total;
}
