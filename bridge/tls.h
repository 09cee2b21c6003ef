/*
 * tls.h: HTTPS and HTTP/2 for the listener.  tls_check_pair validates a
 * certificate/key pair before lws sees it (the start refuses a bad pair,
 * naming the file); tls_vhost_options puts the pair, ALPN "h2,http/1.1" and
 * the HTTP/2 settings into lws's creation info; a SIGHUP asks for a reload,
 * which the loop performs (tls_reload_pending) without touching open
 * connections.  tls_peer_closed tells whether a TLS client whose SSE
 * response never ends has closed its side.
 */
#ifndef AEGIS_TLS_H
#define AEGIS_TLS_H

struct bridge;
struct lws;
struct lws_context_creation_info;

/* 0 if cert holds a PEM certificate (chain) and key the matching private
 * key, both readable, the certificate valid now; else -1 and *err
 * (malloc'd, names the file and what is wrong). */
int tls_check_pair(const char *cert, const char *key, char **err);

/* When the configuration has a pair: serve TLS on the vhost with it,
 * ALPN h2 + http/1.1, and the bridge's HTTP/2 settings. */
void tls_vhost_options(const struct bridge *b, struct lws_context_creation_info *info);

/* LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS: the vhost's SSL_CTX
 * (checked after a reload). */
void tls_server_ctx_ready(void *ssl_ctx);

/* Async-signal-safe: note that a reload was asked for. */
void tls_request_reload(void);

/* In the loop: if a reload was asked for, check the pair again and hand it
 * to lws (new connections use it; open ones keep theirs).  A bad pair is
 * logged and the old one stays.  Returns 1 reloaded, 0 nothing to do, -1
 * refused. */
int tls_reload_pending(struct bridge *b);

/* Counts of reloads done and refused since start (for /metrics). */
void tls_reload_counts(unsigned long *done, unsigned long *refused);

/* For a TLS connection whose socket turned readable while lws is not
 * reading it (an SSE response over HTTP/1.1): 1 if the client closed
 * (close_notify, end of file or an error), 0 if not.  Bytes the client
 * sent are read through the TLS session and discarded. */
int tls_peer_closed(struct lws *wsi);

#endif
