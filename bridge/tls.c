/*
 * tls.c: owns HTTPS and HTTP/2 on the listener: checking the certificate
 * and key before the start (and before every reload), the vhost's TLS
 * options (the pair, ALPN "h2,http/1.1", the HTTP/2 SETTINGS the bridge
 * advertises), reloading the pair on SIGHUP, and noticing that a TLS client
 * of a never-ending HTTP/1.1 response closed.
 *
 * Reload: lws_tls_cert_updated() loads the files again into the vhost's
 * existing SSL_CTX (lws 4.1.6, lib/tls/tls-network.c).  OpenSSL copies the
 * certificate and key into each SSL object when a connection is accepted,
 * so open connections (and every stream on them) keep the pair they began
 * with and new connections get the new one; nothing is closed.  lws reports
 * no failure from that call and would leave the SSL_CTX without a usable
 * key if the new key did not match, so the pair is checked here first and a
 * bad pair is refused with the old one left in place.
 */
#define _GNU_SOURCE
#include "tls.h"
#include "buf.h"

#include <errno.h>
#include <libwebsockets.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bridge.h"
#include "log.h"

/* streams one HTTP/2 connection may hold open at once (lws's own default is
 * 24; a page may watch dozens of conversations) */
#define TLS_H2_MAX_STREAMS 128

static volatile sig_atomic_t tls_reload_asked;
static unsigned long tls_reloads_done, tls_reloads_refused;
static SSL_CTX *tls_server_ctx;           /* the vhost's, once lws made it */

static int tls_fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int tls_fail(char **err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    *err = buf_strdup_vprintf(fmt, ap);
    va_end(ap);
    ERR_clear_error();
    return -1;
}

/* an openssl time as text ("Jan  2 00:00:00 2020 GMT") */
static void tls_time_text(const ASN1_TIME *t, char *out, size_t cap)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int n = 0;

    out[0] = '\0';
    if (!bio)
        return;
    if (ASN1_TIME_print(bio, t))
        n = BIO_read(bio, out, (int)cap - 1);
    out[n > 0 ? n : 0] = '\0';
    BIO_free(bio);
}

/* opens a regular file for reading; -1 with *err naming flag and path */
static FILE *tls_open(const char *flag, const char *path, char **err)
{
    struct stat st;
    FILE *f;

    if (stat(path, &st) < 0) {
        tls_fail(err, "%s %s: %s", flag, path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        tls_fail(err, "%s %s: not a regular file", flag, path);
        return NULL;
    }
    f = fopen(path, "r");
    if (!f)
        tls_fail(err, "%s %s: %s", flag, path, strerror(errno));
    return f;
}

/* never prompt for a pass phrase: an encrypted key is refused */
static int tls_no_password(char *buf, int size, int rwflag, void *ud)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)ud;
    return -1;
}

static X509 *tls_read_cert(const char *path, char **err)
{
    FILE *f = tls_open("--tls-cert", path, err);
    X509 *x;

    if (!f)
        return NULL;
    x = PEM_read_X509(f, NULL, tls_no_password, NULL);
    fclose(f);
    if (!x)
        tls_fail(err, "--tls-cert %s: no PEM certificate in the file", path);
    return x;
}

static EVP_PKEY *tls_read_key(const char *path, char **err)
{
    FILE *f = tls_open("--tls-key", path, err);
    EVP_PKEY *k;

    if (!f)
        return NULL;
    k = PEM_read_PrivateKey(f, NULL, tls_no_password, NULL);
    fclose(f);
    if (!k)
        tls_fail(err, "--tls-key %s: no unencrypted PEM private key in the file", path);
    return k;
}

/* the certificate is valid now */
static int tls_check_dates(X509 *x, const char *path, char **err)
{
    char when[64];

    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
        tls_time_text(X509_get0_notAfter(x), when, sizeof when);
        return tls_fail(err, "--tls-cert %s: the certificate expired (not after %s)", path, when);
    }
    if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
        tls_time_text(X509_get0_notBefore(x), when, sizeof when);
        return tls_fail(err, "--tls-cert %s: the certificate is not valid yet (not before %s)", path,
                        when);
    }
    return 0;
}

int tls_check_pair(const char *cert, const char *key, char **err)
{
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    int rc = -1;

    *err = NULL;
    if (!(x = tls_read_cert(cert, err)) || !(k = tls_read_key(key, err)))
        goto out;
    if (X509_check_private_key(x, k) != 1) {
        tls_fail(err, "--tls-key %s: the key does not match the certificate in %s", key, cert);
        goto out;
    }
    rc = tls_check_dates(x, cert, err);
out:
    X509_free(x);
    EVP_PKEY_free(k);
    ERR_clear_error();
    return rc;
}

void tls_vhost_options(const struct bridge *b, struct lws_context_creation_info *info)
{
    /* [0] = 1: use [1..6]; lws's stock values but for the stream limit and
     * the header list size (the bridge accepts 16 KiB of headers) */
    static const uint32_t h2_settings[7] = {
        1, 65536 /* header table */, 0 /* push */, TLS_H2_MAX_STREAMS,
        0 /* initial window: lws grants credit by WINDOW_UPDATE */, 16384 /* max frame */,
        16384 /* max header list */ };

    memcpy(info->http2_settings, h2_settings, sizeof h2_settings);
    if (!b->cfg.tls_cert)
        return;
    info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info->ssl_cert_filepath = b->cfg.tls_cert;
    info->ssl_private_key_filepath = b->cfg.tls_key;
    info->alpn = "h2,http/1.1";
    info->ssl_options_set = (long)(SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                                   SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
}

void tls_server_ctx_ready(void *ssl_ctx)
{
    tls_server_ctx = ssl_ctx;
    LOG(LOG_DEBUG, "tls", "msg=\"server context ready\"");
}

void tls_request_reload(void)
{
    tls_reload_asked = 1;
}

int tls_reload_pending(struct bridge *b)
{
    char *err = NULL;

    if (!tls_reload_asked)
        return 0;
    tls_reload_asked = 0;
    if (!b->cfg.tls_cert) {
        LOG(LOG_INFO, "tls", "msg=\"SIGHUP: no certificate to reload (plain HTTP)\"");
        return 0;
    }
    if (tls_check_pair(b->cfg.tls_cert, b->cfg.tls_key, &err) < 0) {
        tls_reloads_refused++;
        LOG(LOG_ERROR, "tls", "msg=\"reload refused, the old certificate stays in use\" error=\"%s\"",
            err ? err : "out of memory");
        free(err);
        return -1;
    }
    lws_tls_cert_updated(b->ctx, b->cfg.tls_cert, b->cfg.tls_key, NULL, 0, NULL, 0);
    if (tls_server_ctx && SSL_CTX_check_private_key(tls_server_ctx) != 1) {
        /* the files changed between the check and lws's load */
        ERR_clear_error();
        tls_reloads_refused++;
        LOG(LOG_ERROR, "tls", "msg=\"reload left no usable key (files changed meanwhile?); send "
            "SIGHUP again\" cert=%s", b->cfg.tls_cert);
        return -1;
    }
    ERR_clear_error();
    tls_reloads_done++;
    LOG(LOG_INFO, "tls", "msg=\"certificate reloaded; new connections use it\" cert=%s",
        b->cfg.tls_cert);
    return 1;
}

void tls_reload_counts(unsigned long *done, unsigned long *refused)
{
    *done = tls_reloads_done;
    *refused = tls_reloads_refused;
}

int tls_peer_closed(struct lws *wsi)
{
    SSL *ssl = lws_get_ssl(wsi);
    char buf[512];
    int n, e, rounds;

    if (!ssl)
        return 1;
    for (rounds = 0; rounds < 64; rounds++) {
        ERR_clear_error();
        n = SSL_read(ssl, buf, sizeof buf);
        if (n > 0)
            continue;                      /* bytes after the request: discarded */
        e = SSL_get_error(ssl, n);
        ERR_clear_error();
        return !(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE);
    }
    return 0;                              /* still sending: look again next time */
}
