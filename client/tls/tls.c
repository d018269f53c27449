/* tls.c: the TLS 1.3 engine over OpenSSL memory BIOs (tls.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "chorus_alloc.h"
#include "chorus_error.h"
#include "tls.h"

struct tls_ctx {
  SSL_CTX *ssl;
  enum tls_role role;
};

struct tls_engine {
  SSL *ssl;
  BIO *rbio; /* ciphertext fed, owned by @ssl */
  BIO *wbio; /* ciphertext to send, owned by @ssl */
  enum tls_role role;
  bool established;
  int failed;
  char errmsg[CHORUS_ERRMSG_SIZE];
};

/* ssl_reason: OpenSSL's oldest queued error as text (the queue is then
 * cleared), or @fallback when there is none. */
static const char *ssl_reason(char *buf, size_t cap, const char *fallback) {
  unsigned long e = ERR_get_error();
  if (e == 0) {
    snprintf(buf, cap, "%s", fallback);
  } else {
    const char *r = ERR_reason_error_string(e);
    if (r != NULL)
      snprintf(buf, cap, "%s", r);
    else
      ERR_error_string_n(e, buf, cap);
  }
  ERR_clear_error();
  return buf;
}

int tls_ctx_new(const struct tls_ctx_opts *o, struct tls_ctx **out,
                char *errmsg) {
  char why[160];
  *out = NULL;
  if (o->verify != TLS_VERIFY_NONE && o->ca == NULL)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "verifying certificates needs a CA file (--tls-ca)");
  if (o->crl != NULL && o->ca == NULL)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "a CRL (--tls-crl) needs the CA it revokes for "
                       "(--tls-ca)");
  if ((o->cert == NULL) != (o->key == NULL))
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "a certificate needs its key and a key its "
                       "certificate (--tls-cert with --tls-key)");
  if (o->role == TLS_ROLE_SERVER && o->cert == NULL)
    return chorus_errf(errmsg, CHORUS_EINVAL,
                       "a TLS server needs a certificate (--tls-cert)");
  struct tls_ctx *t = chorus_calloc(1, sizeof *t);
  if (t == NULL)
    return CHORUS_ENOMEM;
  t->role = o->role;
  ERR_clear_error();
  t->ssl = SSL_CTX_new(o->role == TLS_ROLE_SERVER ? TLS_server_method()
                                                  : TLS_client_method());
  if (t->ssl == NULL) {
    chorus_free(t);
    return CHORUS_ENOMEM;
  }
  int rc = CHORUS_EINVAL;
  if (!SSL_CTX_set_min_proto_version(t->ssl, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(t->ssl, TLS1_3_VERSION)) {
    chorus_errf(errmsg, rc, "TLS 1.3: %s",
                ssl_reason(why, sizeof why, "not supported"));
    goto err_after_ctx;
  }
  /* Writes of any size go out whole (the memory BIO grows), and a write
   * buffer may move between calls (node_conn.c swaps its buffers). */
  SSL_CTX_set_mode(t->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (o->role == TLS_ROLE_SERVER)
    (void)SSL_CTX_set_num_tickets(t->ssl, 0);
  /* The cost per record, not per byte, is what chorus pays (frames of a
   * few hundred bytes, coalesced per loop iteration): read ahead takes
   * every buffered record from the input in one go instead of a header
   * then a body, and AES-128-GCM (AES-NI) is offered first; the peer's
   * order decides, and both ends are ours. */
  SSL_CTX_set_read_ahead(t->ssl, 1);
  if (SSL_CTX_set_ciphersuites(t->ssl, "TLS_AES_128_GCM_SHA256:"
                                       "TLS_AES_256_GCM_SHA384:"
                                       "TLS_CHACHA20_POLY1305_SHA256") != 1) {
    chorus_errf(errmsg, rc, "TLS 1.3 cipher suites: %s",
                ssl_reason(why, sizeof why, "not supported"));
    goto err_after_ctx;
  }
  if (o->cert != NULL) {
    if (SSL_CTX_use_certificate_chain_file(t->ssl, o->cert) != 1) {
      chorus_errf(errmsg, rc, "certificate %s: %s", o->cert,
                  ssl_reason(why, sizeof why, "unreadable"));
      goto err_after_ctx;
    }
    if (SSL_CTX_use_PrivateKey_file(t->ssl, o->key, SSL_FILETYPE_PEM) != 1) {
      chorus_errf(errmsg, rc, "key %s: %s", o->key,
                  ssl_reason(why, sizeof why, "unreadable"));
      goto err_after_ctx;
    }
    if (SSL_CTX_check_private_key(t->ssl) != 1) {
      chorus_errf(errmsg, rc, "key %s does not match certificate %s: %s",
                  o->key, o->cert, ssl_reason(why, sizeof why, "mismatch"));
      goto err_after_ctx;
    }
  }
  if (o->ca != NULL) {
    if (SSL_CTX_load_verify_locations(t->ssl, o->ca, NULL) != 1) {
      chorus_errf(errmsg, rc, "CA %s: %s", o->ca,
                  ssl_reason(why, sizeof why, "unreadable"));
      goto err_after_ctx;
    }
    if (o->role == TLS_ROLE_SERVER) {
      /* The CertificateRequest names the CA, so a client holding several
       * certificates picks the right one. */
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca);
      if (names != NULL)
        SSL_CTX_set_client_CA_list(t->ssl, names);
    }
  }
  if (o->crl != NULL) {
    /* X509_load_crl_file reads every CRL of a PEM file (and returns how
     * many); their signatures and dates are checked at each verification,
     * against the CA above. */
    X509_STORE *store = SSL_CTX_get_cert_store(t->ssl);
    X509_LOOKUP *lu = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lu == NULL || X509_load_crl_file(lu, o->crl, X509_FILETYPE_PEM) < 1) {
      chorus_errf(errmsg, rc, "CRL %s: %s", o->crl,
                  ssl_reason(why, sizeof why, "no CRL in the file"));
      goto err_after_ctx;
    }
    (void)X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  int mode = SSL_VERIFY_NONE;
  if (o->role == TLS_ROLE_CLIENT && o->ca != NULL)
    mode = SSL_VERIFY_PEER;
  else if (o->verify == TLS_VERIFY_OPTIONAL)
    mode = SSL_VERIFY_PEER;
  else if (o->verify == TLS_VERIFY_REQUIRED)
    mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(t->ssl, mode, NULL);
  ERR_clear_error();
  *out = t;
  return CHORUS_OK;

err_after_ctx:
  SSL_CTX_free(t->ssl);
  chorus_free(t);
  ERR_clear_error();
  return rc;
}

void tls_ctx_free(struct tls_ctx *ctx) {
  if (ctx == NULL)
    return;
  SSL_CTX_free(ctx->ssl);
  chorus_free(ctx);
}

/* fail: the engine is failed with @code; @errmsg says why. The output
 * keeps what OpenSSL queued (an alert): the driver flushes it. */
static int fail(struct tls_engine *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct tls_engine *e, int code, const char *fmt, ...) {
  e->failed = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->errmsg, sizeof e->errmsg, fmt, ap);
  va_end(ap);
  ERR_clear_error();
  return code;
}

/* ssl_error: the failed engine after an SSL call returned @ret. */
static int ssl_error(struct tls_engine *e, int ret) {
  int err = SSL_get_error(e->ssl, ret);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
    return CHORUS_OK;
  if (err == SSL_ERROR_ZERO_RETURN)
    return fail(e, CHORUS_ECLOSED, "%s", "the other side closed TLS");
  long v = SSL_get_verify_result(e->ssl);
  if (v != X509_V_OK)
    return fail(e, CHORUS_EAUTH, "certificate verify failed: %s",
                X509_verify_cert_error_string(v));
  char why[160];
  unsigned long first = ERR_peek_error();
  ssl_reason(why, sizeof why, "TLS protocol error");
  /* An alert from the other side about our certificate, or the lack of
   * one, is an authentication failure; anything else is bad input. */
  int code = CHORUS_EMALFORMED;
  if (ERR_GET_LIB(first) == ERR_LIB_SSL) {
    int r = ERR_GET_REASON(first);
    if (r == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
        r == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
        r == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED ||
        r == SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED ||
        r == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN ||
        r == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
        r == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE ||
        r == SSL_R_CERTIFICATE_VERIFY_FAILED ||
        r == SSL_R_TLSV1_ALERT_ACCESS_DENIED)
      code = CHORUS_EAUTH;
  }
  return fail(e, code, "TLS: %s", why);
}

/* advance: drives the handshake while it is not done. */
static int advance(struct tls_engine *e) {
  if (e->failed)
    return e->failed;
  if (e->established)
    return CHORUS_OK;
  ERR_clear_error();
  int ret = SSL_do_handshake(e->ssl);
  if (ret == 1) {
    e->established = true;
    return CHORUS_OK;
  }
  return ssl_error(e, ret);
}

int tls_engine_new(struct tls_ctx *ctx, const char *host,
                   struct tls_engine **out, char *errmsg) {
  *out = NULL;
  struct tls_engine *e = chorus_calloc(1, sizeof *e);
  if (e == NULL)
    return CHORUS_ENOMEM;
  e->role = ctx->role;
  ERR_clear_error();
  e->ssl = SSL_new(ctx->ssl); /* holds its own reference to the context */
  if (e->ssl == NULL)
    goto err_after_alloc;
  e->rbio = BIO_new(BIO_s_mem());
  e->wbio = BIO_new(BIO_s_mem());
  if (e->rbio == NULL || e->wbio == NULL) {
    BIO_free(e->rbio);
    BIO_free(e->wbio);
    goto err_after_ssl;
  }
  /* An empty input reads as "wait for more", never as end of stream. */
  BIO_set_mem_eof_return(e->rbio, -1);
  SSL_set_bio(e->ssl, e->rbio, e->wbio);
  if (ctx->role == TLS_ROLE_SERVER) {
    SSL_set_accept_state(e->ssl);
  } else {
    SSL_set_connect_state(e->ssl);
    if (host != NULL && host[0] != '\0') {
      /* An IP address is checked against the certificate's IP entries, a
       * name against its DNS entries (and sent as SNI). */
      X509_VERIFY_PARAM *p = SSL_get0_param(e->ssl);
      if (X509_VERIFY_PARAM_set1_ip_asc(p, host) != 1) {
        ERR_clear_error();
        /* SSL_set_tlsext_host_name casts its argument to void *: a
         * copy of our own keeps -Wcast-qual quiet (a name is at most 255
         * bytes, RFC 1035). */
        char sni[256];
        size_t hl = strnlen(host, sizeof sni);
        if (hl < sizeof sni)
          memcpy(sni, host, hl + 1);
        if (hl >= sizeof sni || SSL_set1_host(e->ssl, host) != 1 ||
            SSL_set_tlsext_host_name(e->ssl, sni) != 1) {
          SSL_free(e->ssl);
          chorus_free(e);
          ERR_clear_error();
          return chorus_errf(errmsg, CHORUS_EINVAL,
                             "TLS: \"%s\" is not a host name or address", host);
        }
      }
    }
    (void)advance(e); /* the ClientHello */
  }
  *out = e;
  return CHORUS_OK;

err_after_ssl:
  SSL_free(e->ssl);
err_after_alloc:
  chorus_free(e);
  ERR_clear_error();
  return CHORUS_ENOMEM;
}

void tls_engine_free(struct tls_engine *e) {
  if (e == NULL)
    return;
  SSL_free(e->ssl); /* frees both BIOs */
  chorus_free(e);
}

int tls_engine_feed(struct tls_engine *e, const void *data, size_t len) {
  if (e->failed)
    return e->failed;
  if (len > 0 && BIO_write(e->rbio, data, (int)len) != (int)len)
    return fail(e, CHORUS_ENOMEM, "%s", "TLS: out of memory");
  return advance(e);
}

int tls_engine_read(struct tls_engine *e, void *buf, size_t cap, size_t *got) {
  *got = 0;
  int rc = advance(e);
  if (rc != CHORUS_OK || !e->established || cap == 0)
    return rc;
  /* Nothing buffered, in OpenSSL or in the input: no call that can only
   * say "want read" (the driver reads until it gets 0). */
  if (!SSL_has_pending(e->ssl) && BIO_ctrl_pending(e->rbio) == 0)
    return CHORUS_OK;
  ERR_clear_error();
  size_t n = 0;
  int ret = SSL_read_ex(e->ssl, buf, cap, &n);
  if (ret == 1) {
    *got = n;
    return CHORUS_OK;
  }
  return ssl_error(e, ret);
}

int tls_engine_write(struct tls_engine *e, const void *data, size_t len) {
  if (e->failed)
    return e->failed;
  if (len == 0)
    return CHORUS_OK;
  ERR_clear_error();
  size_t n = 0;
  int ret = SSL_write_ex(e->ssl, data, len, &n);
  if (ret == 1 && n == len)
    return CHORUS_OK;
  return ssl_error(e, ret) == CHORUS_OK
             ? fail(e, CHORUS_ENOMEM, "%s", "TLS: write did not complete")
             : e->failed;
}

size_t tls_engine_pending(const struct tls_engine *e) {
  return BIO_ctrl_pending(e->wbio);
}

size_t tls_engine_take(struct tls_engine *e, void *buf, size_t cap) {
  size_t n = 0;
  if (cap > 0 && BIO_read_ex(e->wbio, buf, cap, &n) != 1)
    n = 0;
  return n;
}

bool tls_engine_established(const struct tls_engine *e) {
  return e->established && !e->failed;
}

int tls_engine_failed(const struct tls_engine *e) {
  return e->failed;
}

bool tls_engine_peer_verified(const struct tls_engine *e) {
  if (!e->established)
    return false;
  X509 *cert = SSL_get0_peer_certificate(e->ssl);
  return cert != NULL && SSL_get_verify_result(e->ssl) == X509_V_OK;
}

int tls_engine_recheck(const struct tls_engine *e, const struct tls_ctx *ctx,
                       char *errmsg) {
  X509 *cert = e->established ? SSL_get0_peer_certificate(e->ssl) : NULL;
  if (cert == NULL)
    return CHORUS_OK;
  X509_STORE_CTX *x = X509_STORE_CTX_new();
  if (x == NULL)
    return CHORUS_ENOMEM;
  int rc = CHORUS_OK;
  /* The chain the other side sent is the untrusted set, as in the
   * handshake; the store brings the CA, the CRLs and their flags. */
  if (X509_STORE_CTX_init(x, SSL_CTX_get_cert_store(ctx->ssl), cert,
                          SSL_get_peer_cert_chain(e->ssl)) != 1 ||
      X509_STORE_CTX_set_default(
          x, e->role == TLS_ROLE_SERVER ? "ssl_client" : "ssl_server") != 1) {
    rc = chorus_errf(errmsg, CHORUS_ENOMEM, "%s", "TLS: out of memory");
  } else if (X509_verify_cert(x) != 1) {
    rc =
        chorus_errf(errmsg, CHORUS_EAUTH, "certificate verify failed: %s",
                    X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
  }
  X509_STORE_CTX_free(x);
  ERR_clear_error();
  return rc;
}

int tls_engine_export(const struct tls_engine *e, const char *label,
                      uint8_t *out, size_t len) {
  if (!e->established ||
      SSL_export_keying_material(e->ssl, out, len, label, strlen(label), NULL,
                                 0, 0) != 1)
    return CHORUS_EINVAL;
  return CHORUS_OK;
}

const char *tls_engine_errmsg(const struct tls_engine *e) {
  return e->errmsg;
}

const char *tls_engine_version(const struct tls_engine *e) {
  return e->established ? SSL_get_version(e->ssl) : "";
}
