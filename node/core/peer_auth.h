/* peer_auth.h: the peer link's authentication, sans-I/O: a challenge-
 * response on fresh nonces from both ends under the cluster's peer key,
 * then (on links without TLS) a tag on every frame for the link's life.
 * node_peer.c and node_conn.c move its bytes; tests/node/test_peer_auth.c
 * drives two ends back to back.
 *
 * THE HANDSHAKE (docs/PROTOCOL.md, "Peer links")
 *
 *   dialer                                   acceptor
 *   HELLO(role peer, id_d, credentials = nonce_d)  ->
 *                  <-  WELCOME(id_a), PEER_CHALLENGE(nonce_a, mac_a)
 *   PEER_PROOF(mac_d), frames ...            ->
 *
 *   mac_a = HMAC_k("chorus peer acceptor" | T)
 *   mac_d = HMAC_k("chorus peer dialer"   | T)
 *   T     = nonce_d | nonce_a | id_d | id_a | tagged | binding | cluster
 *
 * HMAC is HMAC-SHA-512-256 (libsodium crypto_auth), k a peer key (a node
 * signs with its primary key and accepts any key it holds, so a gossip key
 * rotation never splits the cluster). Both nonces are fresh per link (32
 * random bytes each), so a MAC recorded from one link proves nothing on
 * another: a replayed HELLO + PROOF meets a new nonce_a, a replayed
 * CHALLENGE a new nonce_d. The labels differ, so neither MAC can be
 * reflected as the other; both ids and the cluster are inside, so a MAC
 * cannot be moved to another node pair or cluster. The dialer checks mac_a
 * before it sends anything but its HELLO, so a fake acceptor (one without
 * the key) learns nothing and gets no frame.
 *
 * @binding is the TLS link's exported keying material (RFC 5705/8446,
 * label "EXPORTER-chorus-peer-auth"), or zeros on a plaintext link: under
 * --peer-tls the MACs are tied to this TLS session, so a relay holding a
 * cluster CA certificate but not the cluster key cannot splice two TLS
 * sessions together. @tagged says whether frames carry tags (plaintext
 * links): it is inside T so neither end can be talked out of them.
 *
 * FRAMES FOR THE LINK'S LIFE
 *
 * On a plaintext link, after the handshake every frame in either direction
 * is preceded by a PEER_TAG frame (26 bytes on the wire):
 *
 *   tag = ChaCha20-Poly1305 (IETF) under the direction's session key,
 *         nonce seq (u64 little-endian, then 4 zero bytes), the frame's
 *         body as associated data, nothing encrypted: its 16-byte tag
 *
 * The session keys (one per direction) are BLAKE2b-256, keyed with the
 * acceptor's primary key, of HMAC_k("chorus peer session" | T), with the
 * direction in the personalisation; seq
 * counts that direction's frames from 0. A frame changed, dropped,
 * replayed or reordered on the link fails its tag; the receiver closes
 * the link (node_peer.c counts it). With TLS, TLS already authenticates
 * every byte in order and the tags are left out.
 */
#ifndef CHORUS_PEER_AUTH_H
#define CHORUS_PEER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus_types.h"

#define PEER_AUTH_KEY_BYTES 32u
#define PEER_AUTH_NONCE_BYTES 32u /* HELLO credentials, PEER_CHALLENGE */
#define PEER_AUTH_MAC_BYTES 32u   /* PEER_CHALLENGE, PEER_PROOF */
#define PEER_AUTH_BINDING_BYTES 32u
#define PEER_AUTH_TAG_BYTES 16u
/* A PEER_TAG frame: length prefix, then [186, 0, bin8(16)]. */
#define PEER_AUTH_TAG_FRAME (4u + 6u + PEER_AUTH_TAG_BYTES)
#define PEER_AUTH_CLUSTER_MAX 255u

/* The keys a node holds: key[0] is the primary (signs), every one is
 * accepted (node__peer_keys). */
struct peer_auth_keys {
  const uint8_t (*key)[PEER_AUTH_KEY_BYTES];
  size_t n; /* >= 1 */
};

enum peer_auth_state {
  PEER_AUTH_HELLO_SENT, /* dialer: waits for WELCOME + PEER_CHALLENGE */
  PEER_AUTH_CHALLENGED, /* acceptor: waits for PEER_PROOF */
  PEER_AUTH_DONE,
  PEER_AUTH_FAILED,
};

struct peer_auth {
  enum peer_auth_state state;
  bool dialer, tagged;
  bool have_tag; /* input: a PEER_TAG was read, its frame is next */
  uint8_t cluster_len;
  char cluster[PEER_AUTH_CLUSTER_MAX];
  chorus_node_id id_d, id_a;
  uint8_t nonce_d[PEER_AUTH_NONCE_BYTES], nonce_a[PEER_AUTH_NONCE_BYTES];
  uint8_t binding[PEER_AUTH_BINDING_BYTES];
  uint8_t key_out[PEER_AUTH_KEY_BYTES], key_in[PEER_AUTH_KEY_BYTES];
  uint8_t tag_in[PEER_AUTH_TAG_BYTES];
  uint64_t seq_out, seq_in;
};

/* peer_auth_dial: the dialer's state for a new link; its HELLO's
 * credentials are @pa->nonce_d (copied from @nonce, fresh random bytes). */
void peer_auth_dial(struct peer_auth *pa, const char *cluster, size_t len,
                    chorus_node_id self, const uint8_t *nonce);

/* peer_auth_accept: the acceptor's answer to a peer HELLO from @dialer
 * whose credentials are @cred: the PEER_CHALLENGE's MAC into @mac_out,
 * under @keys' primary, with @nonce (fresh) as nonce_a. @binding: NULL on a
 * plaintext link (frames tagged), else the TLS exporter's bytes.
 * CHORUS_EAUTH when @cred is not a nonce (state FAILED). */
int peer_auth_accept(struct peer_auth *pa, const struct peer_auth_keys *keys,
                     const char *cluster, size_t len, chorus_node_id self,
                     chorus_node_id dialer, const uint8_t *cred,
                     size_t cred_len, const uint8_t *nonce,
                     const uint8_t *binding,
                     uint8_t mac_out[PEER_AUTH_MAC_BYTES]);

/* peer_auth_on_challenge: the dialer checks the acceptor's (WELCOME's
 * @acceptor id, PEER_CHALLENGE's @nonce and @mac) under any of @keys; on
 * CHORUS_OK the link is DONE and @proof_out is PEER_PROOF's MAC (under the
 * primary). CHORUS_EAUTH otherwise (state FAILED), also when not waiting
 * for a challenge. */
int peer_auth_on_challenge(struct peer_auth *pa,
                           const struct peer_auth_keys *keys,
                           chorus_node_id acceptor, const uint8_t *nonce,
                           size_t nonce_len, const uint8_t *mac, size_t mac_len,
                           const uint8_t *binding,
                           uint8_t proof_out[PEER_AUTH_MAC_BYTES]);

/* peer_auth_on_proof: the acceptor checks PEER_PROOF's @mac under any of
 * @keys: CHORUS_OK (DONE) or CHORUS_EAUTH (FAILED). */
int peer_auth_on_proof(struct peer_auth *pa, const struct peer_auth_keys *keys,
                       const uint8_t *mac, size_t mac_len);

/* peer_auth_seal: the PEER_TAG frame (PEER_AUTH_TAG_FRAME bytes, prefix
 * included) that goes right before the frame of body @body; advances the
 * output sequence. Only on a DONE, tagged link. */
void peer_auth_seal(struct peer_auth *pa, const uint8_t *body, size_t len,
                    uint8_t out[PEER_AUTH_TAG_FRAME]);

/* peer_auth_open: one frame body read on a DONE, tagged link.
 * PEER_AUTH_TAG_READ: it was a PEER_TAG (kept; nothing to dispatch);
 * PEER_AUTH_FRAME_OK: the frame its tag vouches for (dispatch it);
 * CHORUS_EAUTH: a tag expected and something else came, or a frame whose
 * tag does not match (close the link). */
#define PEER_AUTH_TAG_READ 1
#define PEER_AUTH_FRAME_OK 0
int peer_auth_open(struct peer_auth *pa, const uint8_t *body, size_t len);

#endif
