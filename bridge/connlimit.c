/*
 * connlimit.c: owns the bounds on what clients hold (see connlimit.h).  Connections:
 * lws accepts on its own listener, so the count is kept from its callbacks
 * (FILTER_NETWORK_CONNECTION, then WSI_CREATE for the same connection, and
 * WSI_DESTROY); at the cap the listener's POLLIN is turned off with
 * lws_rx_flow_control, so a full bridge sleeps instead of accepting and
 * failing (EMFILE) in a loop, and it is turned on again from a timer once a
 * connection has closed.  Streams per address: a small hash of addresses.
 */
#define _GNU_SOURCE
#include "connlimit.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bridge.h"
#include "log.h"
#include "loop.h"

#define LIMITS_BUCKETS 4096
#define LIMITS_LOG_INTERVAL_S 10
#define LIMITS_MIN_CONNECTIONS 16

struct limits_conn {                  /* an accepted client connection */
    struct limits_conn *next;
    const struct lws *wsi;
};

struct limits_ip {
    struct limits_ip *next;
    int streams;
    char addr[64];
};

struct limits {
    struct bridge *b;
    int limit;                       /* open client connections at most */
    long fd_limit;
    int open;
    int expect_create;               /* the next WSI_CREATE is the accepted connection */
    int paused;
    struct lws *listener;            /* seen in the first FILTER_NETWORK_CONNECTION */
    struct loop_timer *resume;
    struct limits_conn *conns[LIMITS_BUCKETS];
    struct limits_ip *ips[LIMITS_BUCKETS];
    uint64_t refused, ip_refused;
    unsigned long full_count;        /* times the cap was reached since the last log line */
    time_t logged;
};

static unsigned limits_hash_ptr(const void *p)
{
    uintptr_t v = (uintptr_t)p;

    return (unsigned)((v >> 4) ^ (v >> 16)) % LIMITS_BUCKETS;
}

static unsigned limits_hash_str(const char *s)
{
    unsigned h = 2166136261u;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % LIMITS_BUCKETS;
}

/* the cap: the descriptor limit minus the reserve, never below a floor */
static int limits_compute_limit(const struct bridge *b, long *fd_limit)
{
    struct rlimit rl;
    long lim = 1024, cap;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        lim = (long)rl.rlim_cur;
    *fd_limit = lim;
    cap = lim - b->cfg.reserved_fds;
    if (cap < LIMITS_MIN_CONNECTIONS)
        cap = LIMITS_MIN_CONNECTIONS;
    return cap > 1000000 ? 1000000 : (int)cap;
}

static void limits_log_full(struct limits *g)
{
    time_t now = time(NULL);

    g->full_count++;
    if (g->logged && now - g->logged < LIMITS_LOG_INTERVAL_S)
        return;
    LOG(LOG_WARN, "limits", "msg=\"connection limit reached (descriptor limit minus the reserve): "
        "not accepting until one closes\" open=%d limit=%d fd_limit=%ld refused_total=%llu "
        "count=%lu", g->open, g->limit, g->fd_limit, (unsigned long long)g->refused,
        g->full_count);
    g->logged = now;
    g->full_count = 0;
}

static void limits_set_listening(struct limits *g, int on)
{
    if (!g->listener || g->paused == !on)
        return;
    g->paused = !on;
    lws_rx_flow_control(g->listener, on ? 1 : 0);
    LOG(LOG_DEBUG, "limits", "msg=\"listener %s\" open=%d limit=%d", on ? "resumed" : "paused",
        g->open, g->limit);
}

static void limits_resume_cb(void *ud)
{
    struct limits *g = ud;

    if (g->open < g->limit)
        limits_set_listening(g, 1);
}

struct limits *limits_new(struct bridge *b)
{
    struct limits *g = calloc(1, sizeof *g);

    if (!g)
        return NULL;
    g->b = b;
    g->limit = limits_compute_limit(b, &g->fd_limit);
    g->resume = loop_timer_new(b, limits_resume_cb, g);
    if (!g->resume) {
        free(g);
        return NULL;
    }
    LOG(LOG_INFO, "limits", "msg=\"connection limit\" limit=%d fd_limit=%ld reserved=%d "
        "max_clients_per_ip=%d header_timeout_s=%d", g->limit, g->fd_limit, b->cfg.reserved_fds,
        b->cfg.max_clients_per_ip, b->cfg.header_timeout_seconds);
    return g;
}

void limits_detach(struct limits *g)
{
    if (!g)
        return;
    loop_timer_free(g->resume);
    g->resume = NULL;
}

void limits_free(struct limits *g)
{
    struct limits_conn *c, *cn;
    struct limits_ip *ip, *in;
    unsigned i;

    if (!g)
        return;
    limits_detach(g);
    for (i = 0; i < LIMITS_BUCKETS; i++) {
        for (c = g->conns[i]; c; c = cn) {
            cn = c->next;
            free(c);
        }
        for (ip = g->ips[i]; ip; ip = in) {
            in = ip->next;
            free(ip);
        }
    }
    free(g);
}

int limits_on_accept(struct limits *g, struct lws *listener)
{
    g->listener = listener;
    if (g->open >= g->limit) {
        g->refused++;
        limits_log_full(g);
        limits_set_listening(g, 0);
        return 1;
    }
    g->expect_create = 1;
    return 0;
}

void limits_on_wsi_create(struct limits *g, struct lws *wsi)
{
    struct limits_conn *c;
    unsigned h;

    if (!g->expect_create)
        return;
    g->expect_create = 0;
    c = malloc(sizeof *c);
    if (!c)
        return;                      /* not counted: the cap errs on the open side */
    h = limits_hash_ptr(wsi);
    c->wsi = wsi;
    c->next = g->conns[h];
    g->conns[h] = c;
    if (++g->open >= g->limit) {
        limits_log_full(g);
        limits_set_listening(g, 0);
    }
}

void limits_on_wsi_destroy(struct limits *g, struct lws *wsi)
{
    struct limits_conn **pp = &g->conns[limits_hash_ptr(wsi)], *c;

    while ((c = *pp) && c->wsi != wsi)
        pp = &c->next;
    if (!c)
        return;
    *pp = c->next;
    free(c);
    g->open--;
    if (g->paused && g->open < g->limit && g->resume)
        loop_timer_schedule(g->resume, 0);     /* not from inside lws's close */
}

int limits_ip_acquire(struct limits *g, struct lws *wsi, struct limits_ip **out)
{
    char addr[64];
    struct limits_ip *ip;
    unsigned h;

    *out = NULL;
    if (!lws_get_peer_simple(wsi, addr, sizeof addr))
        addr[0] = '\0';
    h = limits_hash_str(addr);
    for (ip = g->ips[h]; ip && strcmp(ip->addr, addr) != 0; ip = ip->next)
        ;
    if (ip && ip->streams >= g->b->cfg.max_clients_per_ip) {
        g->ip_refused++;
        return -1;
    }
    if (!ip) {
        ip = calloc(1, sizeof *ip);
        if (!ip)
            return -1;
        memcpy(ip->addr, addr, sizeof ip->addr);
        ip->next = g->ips[h];
        g->ips[h] = ip;
    }
    ip->streams++;
    *out = ip;
    return 0;
}

void limits_ip_release(struct limits *g, struct limits_ip *ip)
{
    struct limits_ip **pp;

    if (!ip || --ip->streams > 0)
        return;
    pp = &g->ips[limits_hash_str(ip->addr)];
    while (*pp != ip)
        pp = &(*pp)->next;
    *pp = ip->next;
    free(ip);
}

int limits_connection_limit(const struct limits *g)
{
    return g->limit;
}

uint64_t limits_refused_total(const struct limits *g)
{
    return g->refused;
}

uint64_t limits_ip_refused_total(const struct limits *g)
{
    return g->ip_refused;
}

int limits_open_connections(const struct limits *g)
{
    return g->open;
}
