/* fuzz_common.h: the checks every crdt decoder fuzz target runs on what the
 * decoder accepts: re-encoding gives the exact size and decodes equal, and
 * join with itself changes nothing. Bad input must just be refused. */
#ifndef CHORUS_FUZZ_COMMON_H
#define CHORUS_FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>

#include "chorus_alloc.h"
#include "crdt.h"

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

/* Decoding failed: the code must be one a decoder may return. */
static inline void fuzz_refused(int rc) {
  FUZZ_CHECK(rc == CHORUS_EMALFORMED || rc == CHORUS_EVERSION ||
             rc == CHORUS_ETYPE || rc == CHORUS_ENOMEM);
}

/* The round trip and self-join checks, for a type T. */
#define FUZZ_ROUND_TRIP(T, x, JOIN)                                            \
  do {                                                                         \
    size_t n_ = T##_encoded_size(x), w_ = 0;                                   \
    uint8_t *b_ = chorus_malloc(n_);                                           \
    FUZZ_CHECK(b_ != NULL);                                                    \
    FUZZ_CHECK(T##_encode(x, b_, n_, &w_) == CHORUS_OK && w_ == n_);           \
    struct T y_;                                                               \
    FUZZ_CHECK(T##_decode(&y_, b_, n_, NULL) == CHORUS_OK);                    \
    FUZZ_CHECK(T##_equal(x, &y_));                                             \
    FUZZ_CHECK(JOIN(&y_, x) == CHORUS_OK && T##_equal(x, &y_));                \
    T##_free(&y_);                                                             \
    chorus_free(b_);                                                           \
  } while (0)

#endif /* CHORUS_FUZZ_COMMON_H */
