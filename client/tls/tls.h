/* tls.h: TLS 1.3 for chorus's TCP links (client and peer), as a sans-I/O
 * engine over OpenSSL 3's memory BIOs: ciphertext in, plaintext out;
 * plaintext in, ciphertext out. It never touches a socket, a loop or a
 * clock, so chorusd (node_conn.c), libchorus (libchorus.c) and the unit
 * test (tests/tls, two engines wired back to back) drive the very same
 * code.
 *
 * HOW IT WORKS
 *
 * A struct tls_ctx is one configuration (OpenSSL's SSL_CTX: certificate,
 * key, trusted CA, who must show a certificate), made once and shared by
 * every connection made while it is current. A connection holds its own
 * reference, so replacing the context (chorusd's SIGHUP reload) never
 * disturbs a connection already open: new connections take the new one.
 *
 * A struct tls_engine is one connection's TLS state. Its driver:
 *
 *   bytes read from the socket    -> tls_engine_feed()
 *   plaintext for the protocol    <- tls_engine_read() until it gives 0
 *   plaintext to send             -> tls_engine_write() (once established)
 *   bytes to write to the socket  <- tls_engine_take() whenever
 *                                    tls_engine_pending() is non-zero
 *
 * Handshake messages appear in the output on their own (after a feed, and
 * at tls_engine_new for a client's ClientHello): the driver only has to
 * flush whatever is pending after every feed. An engine that failed
 * (tls_engine_failed) keeps its last output, usually the alert that tells
 * the other side why (unknown CA, bad certificate): flush it, then close.
 *
 * Only TLS 1.3 is spoken (min and max), so there is no renegotiation and
 * no downgrade to weigh. Session tickets are off: neither chorusd nor
 * libchorus resumes sessions, and each ticket costs the server a
 * signature-free but real encryption per connection.
 *
 * Verification. A side given a CA verifies the other's chain against it.
 * A client given a host name or IP address (tls_engine_new's @host) also
 * checks that the server's certificate names it (subjectAltName DNS or IP
 * entry, RFC 6125), so a certificate stolen from one node cannot be
 * presented for another address; peers dial with the address gossip gave
 * them, so node certificates carry their IP addresses (scripts/mkcerts).
 * A server with TLS_VERIFY_REQUIRED refuses a client without a
 * certificate from its CA (peer links, mutual TLS); with
 * TLS_VERIFY_OPTIONAL it asks for one and verifies what it gets, but lets
 * a client without one in (tls_engine_peer_verified says which).
 *
 * Revocation. With a CRL file (tls_ctx_opts.crl) the leaf certificate of
 * every chain verified is looked up in the CRLs of its issuer, read with
 * the context (so a reload reads them again); intermediate CAs are not
 * (chorus clusters have one CA; X509_V_FLAG_CRL_CHECK_ALL would refuse
 * every chain whose intermediates have no CRL here). A connection
 * verified under an older context can be checked again under a new one
 * (tls_engine_recheck), which is how chorusd's reload cuts links whose
 * certificate was revoked since.
 */
#ifndef CHORUS_TLS_H
#define CHORUS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The first byte of every TLS record carrying a handshake (ClientHello):
 * chorus frames start with a big-endian length, and a first byte of 0x16
 * would mean a frame of at least 369 MB, over every frame limit, so one
 * byte tells TLS from plaintext on a shared port. */
#define TLS_RECORD_HANDSHAKE 0x16u

enum tls_role { TLS_ROLE_SERVER = 0, TLS_ROLE_CLIENT };

enum tls_verify {
  TLS_VERIFY_NONE = 0, /* no certificate asked for or checked */
  TLS_VERIFY_OPTIONAL, /* server: asked for, checked if shown */
  TLS_VERIFY_REQUIRED  /* must be shown and chain to @ca */
};

struct tls_ctx_opts {
  enum tls_role role;
  const char *cert; /* PEM chain file (leaf first); NULL: none (clients) */
  const char *key;  /* PEM private key file; with @cert */
  const char *ca;   /* PEM file of trusted CAs; NULL: verify nothing */
  /* PEM file of CRLs (one or more) of the CA that issues the other side's
   * certificates; NULL: no revocation check. With it, every chain
   * verified is checked against them: a revoked certificate fails
   * ("certificate revoked"), and so does any certificate whose issuer has
   * no CRL here, or when the CRL is past its nextUpdate (a CRL must be
   * renewed before then: reload it). Needs @ca. */
  const char *crl;
  enum tls_verify verify;
};

struct tls_ctx;
struct tls_engine;

/* tls_ctx_new: a context from @o's files, read now (so a reload reads
 * them again). @errmsg (CHORUS_ERRMSG_SIZE) gets one line on failure,
 * naming the file and OpenSSL's reason.
 * Errors: CHORUS_EINVAL (a file missing, unreadable or not PEM; a key
 * that does not match the certificate; verification asked without a CA),
 * CHORUS_ENOMEM. */
int tls_ctx_new(const struct tls_ctx_opts *o, struct tls_ctx **out,
                char *errmsg);
/* tls_ctx_free: drops the caller's reference (NULL is fine); engines made
 * from it keep theirs. */
void tls_ctx_free(struct tls_ctx *ctx);

/* tls_engine_new: a connection's engine in @ctx's role. @host (copied;
 * NULL: none) is, for a client, the name or IP address the server's
 * certificate must carry; servers ignore it. A client's ClientHello is
 * pending at once. Errors: CHORUS_ENOMEM, CHORUS_EINVAL (@host unusable). */
int tls_engine_new(struct tls_ctx *ctx, const char *host,
                   struct tls_engine **out, char *errmsg);
void tls_engine_free(struct tls_engine *e);

/* tls_engine_feed: @len ciphertext bytes from the network (copied);
 * advances the handshake. Errors: CHORUS_EAUTH (the other side's
 * certificate failed verification, or it refused ours), CHORUS_EMALFORMED
 * (not TLS, or TLS that breaks the protocol), CHORUS_ECLOSED (the other
 * side closed the session), CHORUS_ENOMEM. After an error the engine is
 * failed: every later call returns the same code; tls_engine_errmsg
 * says why. */
int tls_engine_feed(struct tls_engine *e, const void *data, size_t len);
/* tls_engine_read: up to @cap plaintext bytes into @buf, *@got of them
 * (0: none until more is fed). Errors: as tls_engine_feed. */
int tls_engine_read(struct tls_engine *e, void *buf, size_t cap, size_t *got);
/* tls_engine_write: @len plaintext bytes (copied) encrypted into the
 * output. Precondition: tls_engine_established(). Errors: CHORUS_ENOMEM,
 * a failed engine's code. */
int tls_engine_write(struct tls_engine *e, const void *data, size_t len);
/* tls_engine_pending: ciphertext bytes waiting to be sent.
 * tls_engine_take: moves up to @cap of them into @buf; returns how many. */
size_t tls_engine_pending(const struct tls_engine *e);
size_t tls_engine_take(struct tls_engine *e, void *buf, size_t cap);

bool tls_engine_established(const struct tls_engine *e);
/* tls_engine_failed: 0, or the error code every call now returns. */
int tls_engine_failed(const struct tls_engine *e);
/* tls_engine_peer_verified: the other side showed a certificate that
 * chained to our CA (and named @host, for a client). */
bool tls_engine_peer_verified(const struct tls_engine *e);
/* tls_engine_recheck: the certificate the other side showed at the
 * handshake, verified again against @ctx (a reloaded context: its CA, its
 * CRLs, today's date). CHORUS_OK when it still verifies, or none was
 * shown, or the handshake is not done; CHORUS_EAUTH with @errmsg
 * ("certificate verify failed: certificate revoked") when it no longer
 * does; CHORUS_ENOMEM. The host name is not checked again. */
int tls_engine_recheck(const struct tls_engine *e, const struct tls_ctx *ctx,
                       char *errmsg);
/* tls_engine_export: @len bytes of keying material exported from the
 * established session under @label (RFC 8446 §7.5, no context): both ends
 * of one session get the same bytes, any other session others (channel
 * binding). CHORUS_EINVAL before the handshake is done. */
int tls_engine_export(const struct tls_engine *e, const char *label,
                      uint8_t *out, size_t len);
/* tls_engine_errmsg: why the engine failed (borrowed; "" when it did not). */
const char *tls_engine_errmsg(const struct tls_engine *e);
/* tls_engine_version: "TLSv1.3" once established, else "". */
const char *tls_engine_version(const struct tls_engine *e);

#endif /* CHORUS_TLS_H */
