/*
 * guard.h: bounds on what clients can hold: open connections capped below
 * the descriptor limit (the listener is not polled while full and is polled
 * again when a connection closes), SSE streams per client address, and one
 * log line per interval for each.  Called from the lws "http" protocol
 * callback (http.c) and from sse.c.
 */
#ifndef AEGIS_GUARD_H
#define AEGIS_GUARD_H
#include <stdint.h>

struct bridge;
struct lws;
struct guard;

struct guard *guard_new(struct bridge *b);
/* Before lws_context_destroy (its timer lives in the context); the counts
 * keep working for the connections lws closes then.  Then guard_free. */
void guard_detach(struct guard *g);               /* NULL is fine */
void guard_free(struct guard *g);                 /* NULL is fine */

/* LWS_CALLBACK_FILTER_NETWORK_CONNECTION (wsi: the listener): 0 accept, 1 refuse */
int guard_on_accept(struct guard *g, struct lws *listener);
/* LWS_CALLBACK_WSI_CREATE / LWS_CALLBACK_WSI_DESTROY of any wsi */
void guard_on_wsi_create(struct guard *g, struct lws *wsi);
void guard_on_wsi_destroy(struct guard *g, struct lws *wsi);

/* A stream from wsi's address: 0 and *ip (pass it to guard_ip_release), or
 * -1 when the address has max_clients_per_ip streams already (or no memory). */
struct guard_ip;
int guard_ip_acquire(struct guard *g, struct lws *wsi, struct guard_ip **ip);
void guard_ip_release(struct guard *g, struct guard_ip *ip);   /* NULL is fine */

/* the cap on open client connections (descriptor limit minus the reserve) */
int guard_connection_limit(const struct guard *g);
uint64_t guard_refused_total(const struct guard *g);    /* connections closed at accept */
uint64_t guard_ip_refused_total(const struct guard *g); /* streams refused for their address */
int guard_open_connections(const struct guard *g);

#endif
