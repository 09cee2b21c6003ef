/*
 * reqhdr.h: copies of the request pieces lws has parsed (a header by lws
 * token, a header lws does not know by name, a decoded query argument), as
 * NUL-terminated heap strings sized to the value: no fixed buffer a client
 * could overflow.  Used by the request path (http.c) and its authorization
 * step (gate.c).
 */
#ifndef AEGIS_REQHDR_H
#define AEGIS_REQHDR_H

#include <libwebsockets.h>

/* the header's value (malloc'd), or NULL when absent, empty or out of memory */
char *reqhdr_get(struct lws *wsi, enum lws_token_indexes h);

/* a header lws has no token for, by its lower-case name with the colon
 * ("last-event-id:"); NULL when absent or out of memory.  lws 4.1.6 keeps
 * such headers on HTTP/1.1 only: on an HTTP/2 stream this is always NULL. */
char *reqhdr_custom(struct lws *wsi, const char *name);

/* the value of query argument name (lws has %-decoded it) in *out
 * (malloc'd): returns 0 when absent, 1 when found once, -1 when given twice
 * or out of memory (*out NULL) */
int reqhdr_query_arg(struct lws *wsi, const char *name, char **out);

#endif
