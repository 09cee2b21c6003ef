/*
 * sse.h: Server-Sent Event streams: subscribers of workspace and
 * conversation streams, the one shared store reader (a long poll on
 * aegis.wait_all) that fans events out, per-subscriber replay from the store
 * (Last-Event-ID), run requests, heartbeats and bounded client buffers.
 */
#ifndef AEGIS_SSE_H
#define AEGIS_SSE_H

#include <stddef.h>

struct bridge;
struct lws;
struct sse_hub;
struct sse_sub;

enum sse_kind { SSE_WORKSPACE, SSE_CONVERSATION };

struct sse_request {
    enum sse_kind kind;
    const char *stream_id;        /* validated: ^[A-Za-z0-9_.:-]{1,128}$ */
    int has_last_id;              /* Last-Event-ID header or ?last_event_id= */
    long long last_id;
    const char *message;          /* conversation run request, or NULL */
    const char *agent_id;         /* NULL if absent */
    const char *agent_type;       /* NULL if absent */
    const char *cors_origin;      /* origin to allow in the response, or NULL */
    int cors_credentials;         /* also allow credentials (a listed origin) */
    const char *stream_key;       /* ?stream_key= (sse_key_valid), or NULL */
};

/* Creates the hub and its two PostgreSQL connections (the live reader's long
 * poll; replays, run requests and conversation queries). */
struct sse_hub *sse_hub_new(struct bridge *b);
void sse_hub_free(struct sse_hub *h);

/* Starts a stream for wsi.  Returns 0 and *out, or an HTTP status to answer
 * instead (503: PostgreSQL not connected or max_clients reached). */
int sse_open(struct sse_hub *h, struct lws *wsi, const struct sse_request *req, struct sse_sub **out);
/* LWS_CALLBACK_HTTP_WRITEABLE for a stream: returns -1 to close the connection. */
int sse_writeable(struct sse_sub *s);
/* The connection closed (LWS_CALLBACK_CLOSED_HTTP): forget wsi, free when idle. */
void sse_closed(struct sse_sub *s);
/* POST /streams/{key}/close: ends the open streams opened with
 * ?stream_key=key (what a page does when it closes an EventSource: over
 * HTTP/2 lws 4.1.6 never reports the client's RST_STREAM). Returns how many. */
int sse_close_key(struct sse_hub *h, const char *key);
/* Shutdown: end every stream (connections close as soon as they are flushed). */
void sse_close_all(struct sse_hub *h);
int sse_pg_ready(const struct sse_hub *h);
/* the least busy ready connection of the pool (replays, run requests, /metrics) */
struct pgconn;
struct pgconn *sse_pg_pick(struct sse_hub *h);

/* Pure helpers, unit-tested. */
int sse_id_valid(const char *id, size_t len);              /* ^[A-Za-z0-9_.:-]{1,128}$ */
int sse_key_valid(const char *key, size_t len);            /* ^[A-Za-z0-9_-]{16,64}$ */
int sse_parse_event_id(const char *s, long long *out);     /* decimal, <= 19 digits, >= 0 */
/* Formats "id: N\nevent: T\ndata: D\n\n" (D with newlines split into data lines);
 * returns a malloc'd string and its length in *len, NULL on out of memory. */
char *sse_format_event(long long id, const char *type, const char *data, size_t *len);

#endif
