/* fuzz_auth_login.c: libFuzzer target for the node's half of a login
 * (client/auth/auth_login.h) on hostile bytes: HELLO's credentials, then
 * a proof. Input: [flags u8][cred_len u8][credentials][proof 32]. Bit 0
 * of flags: the user exists (a fixed verifier). Whatever the bytes, no
 * crash, and no proof but the right one passes: the fuzzer cannot know
 * the password, so a pass aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth_login.h"
#include "chorus_error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  uint8_t flags = data[0];
  size_t cl = data[1];
  if (size < 2 + cl)
    return 0;
  const uint8_t *cred = data + 2;
  /* A verifier with random-looking keys: no password makes them. */
  struct auth_verifier v;
  memset(&v, 0x5a, sizeof v);
  v.kdf.ops = AUTH_OPS_MIN;
  v.kdf.mem_kib = AUTH_MEM_KIB_MIN;
  uint8_t secret[AUTH_SECRET_BYTES] = {1, 2, 3};
  uint8_t snonce[AUTH_NONCE_BYTES] = {9};
  struct auth_login l;
  int rc = auth_login_start(&l, cred, cl, (flags & 1) ? &v : NULL, secret,
                            snonce, NULL);
  if (rc != CHORUS_OK) {
    if (rc != CHORUS_EINVAL)
      abort();
    return 0;
  }
  if (auth_kdf_check(&l.v.kdf, NULL) != CHORUS_OK)
    abort(); /* a challenge a client would refuse */
  uint8_t proof[AUTH_KEY_BYTES] = {0}, sig[AUTH_KEY_BYTES];
  size_t left = size - 2 - cl;
  memcpy(proof, data + 2 + cl, left < sizeof proof ? left : sizeof proof);
  if (auth_login_finish(&l, "fuzz", proof, sig) == CHORUS_OK)
    abort();
  return 0;
}
