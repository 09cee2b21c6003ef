/*
 * netstat.c: owns the per-protocol counters of client connections,
 * requests and SSE streams.  lws gives no callback when a connection's
 * protocol is settled (ALPN picks HTTP/2 during the TLS handshake), so a
 * connection is classified at its first request: an HTTP/2 stream's wsi has
 * a network wsi of its own (lws_get_network_wsi), an HTTP/1.1 request's wsi
 * is the connection.  Counted connections are kept in a table indexed by
 * socket descriptor, with the network wsi to tell a reused descriptor from
 * the old connection.
 */
#define _GNU_SOURCE
#include "netstat.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

struct netstat_conn {
    struct lws *nwsi;                 /* NULL: slot free */
    enum netstat_proto proto;
};

static struct netstat_conn *netstat_table;
static size_t netstat_cap;
static unsigned long netstat_open[NETSTAT_NPROTO], netstat_conns_total[NETSTAT_NPROTO];
static unsigned long netstat_requests[NETSTAT_NPROTO], netstat_open_streams[NETSTAT_NPROTO];
static unsigned long netstat_streams_total[NETSTAT_NPROTO];

static const char *const netstat_labels[NETSTAT_NPROTO] = {
    "protocol=\"http/1.1\",tls=\"no\"", "protocol=\"http/1.1\",tls=\"yes\"",
    "protocol=\"h2\",tls=\"yes\"" };

enum netstat_proto netstat_proto_of(struct lws *wsi)
{
    struct lws *nwsi = lws_get_network_wsi(wsi);

    if (nwsi != wsi)
        return NETSTAT_H2;
    return lws_is_ssl(wsi) ? NETSTAT_H1_TLS : NETSTAT_H1;
}

static struct netstat_conn *netstat_slot(int fd, int grow)
{
    size_t cap = netstat_cap ? netstat_cap : 256;
    struct netstat_conn *t;

    if (fd < 0)
        return NULL;
    if ((size_t)fd < netstat_cap)
        return &netstat_table[fd];
    if (!grow)
        return NULL;
    while (cap <= (size_t)fd)
        cap *= 2;
    t = realloc(netstat_table, cap * sizeof *t);
    if (!t)
        return NULL;
    memset(t + netstat_cap, 0, (cap - netstat_cap) * sizeof *t);
    netstat_table = t;
    netstat_cap = cap;
    return &netstat_table[fd];
}

void netstat_request(struct lws *wsi)
{
    struct lws *nwsi = lws_get_network_wsi(wsi);
    enum netstat_proto p = netstat_proto_of(wsi);
    struct netstat_conn *c = netstat_slot((int)lws_get_socket_fd(nwsi), 1);

    netstat_requests[p]++;
    if (!c || c->nwsi == nwsi)
        return;
    if (c->nwsi && netstat_open[c->proto] > 0)   /* a close we did not see */
        netstat_open[c->proto]--;
    c->nwsi = nwsi;
    c->proto = p;
    netstat_open[p]++;
    netstat_conns_total[p]++;
}

void netstat_closing(struct lws *wsi)
{
    struct netstat_conn *c = netstat_slot((int)lws_get_socket_fd(wsi), 0);

    if (!c || c->nwsi != wsi)
        return;
    if (netstat_open[c->proto] > 0)
        netstat_open[c->proto]--;
    c->nwsi = NULL;
}

void netstat_stream_opened(enum netstat_proto p)
{
    netstat_open_streams[p]++;
    netstat_streams_total[p]++;
}

void netstat_stream_closed(enum netstat_proto p)
{
    if (netstat_open_streams[p] > 0)
        netstat_open_streams[p]--;
}

unsigned long netstat_connections(enum netstat_proto p)
{
    return netstat_open[p];
}

unsigned long netstat_streams(enum netstat_proto p)
{
    return netstat_open_streams[p];
}

/* one metric family, a sample per protocol; out of memory leaves it out */
static void netstat_family(struct buf *out, const char *name, const char *type, const char *help,
                           const unsigned long *v)
{
    int i;

    (void)buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (i = 0; i < NETSTAT_NPROTO; i++)
        (void)buf_printf(out, "%s{%s} %lu\n", name, netstat_labels[i], v[i]);
}

void netstat_metrics(struct buf *out)
{
    netstat_family(out, "aegis_bridge_connections", "gauge",
                   "open client connections that made a request, by protocol", netstat_open);
    netstat_family(out, "aegis_bridge_connections_opened_total", "counter",
                   "client connections that made a request, by protocol", netstat_conns_total);
    netstat_family(out, "aegis_bridge_requests_by_protocol_total", "counter",
                   "HTTP requests (on HTTP/2: streams), by protocol", netstat_requests);
    netstat_family(out, "aegis_bridge_sse_streams", "gauge", "open SSE streams, by protocol",
                   netstat_open_streams);
    netstat_family(out, "aegis_bridge_sse_streams_opened_total", "counter",
                   "SSE streams accepted, by protocol", netstat_streams_total);
}
