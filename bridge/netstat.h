/*
 * netstat.h: counts client connections, requests and SSE streams by
 * protocol (plain HTTP/1.1, HTTP/1.1 over TLS, HTTP/2) for /metrics.  A
 * connection is counted from its first request until lws closes it.
 */
#ifndef AEGIS_NETSTAT_H
#define AEGIS_NETSTAT_H

struct buf;
struct lws;

enum netstat_proto { NETSTAT_H1 = 0, NETSTAT_H1_TLS, NETSTAT_H2, NETSTAT_NPROTO };

/* the protocol of the connection wsi (a stream or a connection) is on */
enum netstat_proto netstat_proto_of(struct lws *wsi);

/* a request began on wsi (LWS_CALLBACK_HTTP): counts it, and its
 * connection the first time */
void netstat_request(struct lws *wsi);

/* lws is closing wsi (LWS_CALLBACK_CLOSED_HTTP / LWS_CALLBACK_WSI_DESTROY):
 * if it is a counted connection, it is no longer open */
void netstat_closing(struct lws *wsi);

/* an SSE stream opened / closed on protocol p */
void netstat_stream_opened(enum netstat_proto p);
void netstat_stream_closed(enum netstat_proto p);

/* open connections / open SSE streams on p (for tests and /metrics) */
unsigned long netstat_connections(enum netstat_proto p);
unsigned long netstat_streams(enum netstat_proto p);

/* appends the Prometheus text of every counter above */
void netstat_metrics(struct buf *out);

#endif
