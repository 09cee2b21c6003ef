/*
 * http.h: the HTTP side of aegis-bridge: routes (SSE streams, /healthz,
 * /metrics, optional dashboard files, POST /conversations/{id}/runs),
 * request validation (400/404/405), CORS, and short plain-text error
 * bodies; authorization is asked of gate.c.  One lws protocol.
 */
#ifndef AEGIS_HTTP_H
#define AEGIS_HTTP_H

#include <stddef.h>

struct lws_protocols;
extern const struct lws_protocols http_protocol;

/* Pure: map a URL path to a route; fills id (pointer into path) for streams. */
enum http_route {
    ROUTE_NONE,
    ROUTE_WORKSPACE,
    ROUTE_CONVERSATION,
    ROUTE_HEALTHZ,
    ROUTE_METRICS,
    ROUTE_STATIC,
    ROUTE_RUNS,        /* POST /conversations/{id}/runs */
    ROUTE_STREAM_CLOSE /* POST /streams/{stream_key}/close */
};
enum http_route http_route_of(const char *path, const char **id, int *id_len, int static_on);
/* Pure: 1 if path (under /static/ or "/") is a safe relative file name. */
int http_static_path_ok(const char *rel);
/* Pure: 1 if s is well-formed UTF-8 without NUL or other C0 controls but tab. */
int http_text_ok(const char *s, size_t len);

#endif
