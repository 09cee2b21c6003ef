/*
 * bridge.h: the one struct bridge of the process: configuration, the lws
 * context and vhost, the PostgreSQL connection used by SSE, the module
 * pointers (SSE hub, Kafka drain, consumers) and the counters /metrics shows.
 */
#ifndef AEGIS_BRIDGE_H
#define AEGIS_BRIDGE_H

#include <stdint.h>
#include "config.h"

struct lws_context;
struct lws_vhost;
struct ev_loop;
struct loop_sul_pump;
struct pgconn;
struct sse_hub;
struct drain;
struct consumer_set;
struct gate;
struct limits;
struct stats;

struct bridge_metrics {
    uint64_t sse_connections;         /* open SSE responses (gauge) */
    uint64_t sse_connections_total;
    uint64_t sse_events_sent;         /* event messages queued to clients */
    uint64_t sse_replays;             /* subscribers that replayed from the store */
    uint64_t sse_replayed_events;
    uint64_t sse_drops;               /* stalled clients disconnected */
    uint64_t sse_catchups;            /* live subscribers switched to catch-up from the store */
    uint64_t sse_held_drops;          /* held live events dropped on overflow during a replay */
    uint64_t sse_rejected;            /* 503 at max_clients or without PostgreSQL */
    uint64_t http_requests_total;
    uint64_t http_bad_requests;       /* 400/404/405 */
    uint64_t store_reads;             /* non-empty aegis.wait_all batches of the live reader */
    uint64_t run_requests;
};

struct bridge {
    struct bridge_config cfg;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    struct ev_loop *evloop;           /* libev (epoll) loop lws runs on; NULL: lws's poll loop */
    struct loop_sul_pump *sul_pump;   /* loop.c: services lws timers on evloop */
    struct pgconn *pg;                /* the SSE reader's connection */
    struct sse_hub *sse;
    struct drain *drain;              /* set by drain_start; NULL: no drain */
    struct consumer_set *consumers;   /* set by consumers_start */
    struct gate *gate;                /* gate.c: authorization (tokens, hosts, policy) */
    struct limits *limits;             /* connection and per-address bounds (connlimit.c) */
    struct stats *stats;              /* cached store numbers for /metrics (stats.c) */
    struct bridge_metrics metrics;
    volatile int stopping;            /* set on the first SIGTERM/SIGINT */
};

#endif
