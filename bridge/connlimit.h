/*
 * connlimit.h: bounds on what clients can hold: open connections capped below
 * the descriptor limit (the listener is not polled while full and is polled
 * again when a connection closes), SSE streams per client address, and one
 * log line per interval for each.  Called from the lws "http" protocol
 * callback (http.c) and from sse.c.
 */
#ifndef AEGIS_CONNLIMIT_H
#define AEGIS_CONNLIMIT_H
#include <stdint.h>

struct bridge;
struct lws;
struct limits;

struct limits *limits_new(struct bridge *b);
/* Before lws_context_destroy (its timer lives in the context); the counts
 * keep working for the connections lws closes then.  Then limits_free. */
void limits_detach(struct limits *g);               /* NULL is fine */
void limits_free(struct limits *g);                 /* NULL is fine */

/* LWS_CALLBACK_FILTER_NETWORK_CONNECTION (wsi: the listener): 0 accept, 1 refuse */
int limits_on_accept(struct limits *g, struct lws *listener);
/* LWS_CALLBACK_WSI_CREATE / LWS_CALLBACK_WSI_DESTROY of any wsi */
void limits_on_wsi_create(struct limits *g, struct lws *wsi);
void limits_on_wsi_destroy(struct limits *g, struct lws *wsi);

/* A stream from wsi's address: 0 and *ip (pass it to limits_ip_release), or
 * -1 when the address has max_clients_per_ip streams already (or no memory). */
struct limits_ip;
int limits_ip_acquire(struct limits *g, struct lws *wsi, struct limits_ip **ip);
void limits_ip_release(struct limits *g, struct limits_ip *ip);   /* NULL is fine */

/* the cap on open client connections (descriptor limit minus the reserve) */
int limits_connection_limit(const struct limits *g);
uint64_t limits_refused_total(const struct limits *g);    /* connections closed at accept */
uint64_t limits_ip_refused_total(const struct limits *g); /* streams refused for their address */
int limits_open_connections(const struct limits *g);

#endif
