/*
 * guard.c: owns the bounds on what clients hold (see guard.h).  Connections:
 * lws accepts on its own listener, so the count is kept from its callbacks
 * (FILTER_NETWORK_CONNECTION, then WSI_CREATE for the same connection, and
 * WSI_DESTROY); at the cap the listener's POLLIN is turned off with
 * lws_rx_flow_control, so a full bridge sleeps instead of accepting and
 * failing (EMFILE) in a loop, and it is turned on again from a timer once a
 * connection has closed.  Streams per address: a small hash of addresses.
 */
#define _GNU_SOURCE
#include "guard.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bridge.h"
#include "log.h"
#include "loop.h"

#define GUARD_BUCKETS 4096
#define GUARD_LOG_INTERVAL_S 10
#define GUARD_MIN_CONNECTIONS 16

struct guard_conn {                  /* an accepted client connection */
    struct guard_conn *next;
    const struct lws *wsi;
};

struct guard_ip {
    struct guard_ip *next;
    int streams;
    char addr[64];
};

struct guard {
    struct bridge *b;
    int limit;                       /* open client connections at most */
    long fd_limit;
    int open;
    int expect_create;               /* the next WSI_CREATE is the accepted connection */
    int paused;
    struct lws *listener;            /* seen in the first FILTER_NETWORK_CONNECTION */
    struct loop_timer *resume;
    struct guard_conn *conns[GUARD_BUCKETS];
    struct guard_ip *ips[GUARD_BUCKETS];
    uint64_t refused, ip_refused;
    unsigned long full_count;        /* times the cap was reached since the last log line */
    time_t logged;
};

static unsigned guard_hash_ptr(const void *p)
{
    uintptr_t v = (uintptr_t)p;

    return (unsigned)((v >> 4) ^ (v >> 16)) % GUARD_BUCKETS;
}

static unsigned guard_hash_str(const char *s)
{
    unsigned h = 2166136261u;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % GUARD_BUCKETS;
}

/* the cap: the descriptor limit minus the reserve, never below a floor */
static int guard_compute_limit(const struct bridge *b, long *fd_limit)
{
    struct rlimit rl;
    long lim = 1024, cap;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        lim = (long)rl.rlim_cur;
    *fd_limit = lim;
    cap = lim - b->cfg.reserved_fds;
    if (cap < GUARD_MIN_CONNECTIONS)
        cap = GUARD_MIN_CONNECTIONS;
    return cap > 1000000 ? 1000000 : (int)cap;
}

static void guard_log_full(struct guard *g)
{
    time_t now = time(NULL);

    g->full_count++;
    if (g->logged && now - g->logged < GUARD_LOG_INTERVAL_S)
        return;
    LOG(LOG_WARN, "guard", "msg=\"connection limit reached (descriptor limit minus the reserve): "
        "not accepting until one closes\" open=%d limit=%d fd_limit=%ld refused_total=%llu "
        "count=%lu", g->open, g->limit, g->fd_limit, (unsigned long long)g->refused,
        g->full_count);
    g->logged = now;
    g->full_count = 0;
}

static void guard_set_listening(struct guard *g, int on)
{
    if (!g->listener || g->paused == !on)
        return;
    g->paused = !on;
    lws_rx_flow_control(g->listener, on ? 1 : 0);
    LOG(LOG_DEBUG, "guard", "msg=\"listener %s\" open=%d limit=%d", on ? "resumed" : "paused",
        g->open, g->limit);
}

static void guard_resume_cb(void *ud)
{
    struct guard *g = ud;

    if (g->open < g->limit)
        guard_set_listening(g, 1);
}

struct guard *guard_new(struct bridge *b)
{
    struct guard *g = calloc(1, sizeof *g);

    if (!g)
        return NULL;
    g->b = b;
    g->limit = guard_compute_limit(b, &g->fd_limit);
    g->resume = loop_timer_new(b, guard_resume_cb, g);
    if (!g->resume) {
        free(g);
        return NULL;
    }
    LOG(LOG_INFO, "guard", "msg=\"connection limit\" limit=%d fd_limit=%ld reserved=%d "
        "max_clients_per_ip=%d header_timeout_s=%d", g->limit, g->fd_limit, b->cfg.reserved_fds,
        b->cfg.max_clients_per_ip, b->cfg.header_timeout_seconds);
    return g;
}

void guard_detach(struct guard *g)
{
    if (!g)
        return;
    loop_timer_free(g->resume);
    g->resume = NULL;
}

void guard_free(struct guard *g)
{
    struct guard_conn *c, *cn;
    struct guard_ip *ip, *in;
    unsigned i;

    if (!g)
        return;
    guard_detach(g);
    for (i = 0; i < GUARD_BUCKETS; i++) {
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

int guard_on_accept(struct guard *g, struct lws *listener)
{
    g->listener = listener;
    if (g->open >= g->limit) {
        g->refused++;
        guard_log_full(g);
        guard_set_listening(g, 0);
        return 1;
    }
    g->expect_create = 1;
    return 0;
}

void guard_on_wsi_create(struct guard *g, struct lws *wsi)
{
    struct guard_conn *c;
    unsigned h;

    if (!g->expect_create)
        return;
    g->expect_create = 0;
    c = malloc(sizeof *c);
    if (!c)
        return;                      /* not counted: the cap errs on the open side */
    h = guard_hash_ptr(wsi);
    c->wsi = wsi;
    c->next = g->conns[h];
    g->conns[h] = c;
    if (++g->open >= g->limit) {
        guard_log_full(g);
        guard_set_listening(g, 0);
    }
}

void guard_on_wsi_destroy(struct guard *g, struct lws *wsi)
{
    struct guard_conn **pp = &g->conns[guard_hash_ptr(wsi)], *c;

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

int guard_ip_acquire(struct guard *g, struct lws *wsi, struct guard_ip **out)
{
    char addr[64];
    struct guard_ip *ip;
    unsigned h;

    *out = NULL;
    if (!lws_get_peer_simple(wsi, addr, sizeof addr))
        addr[0] = '\0';
    h = guard_hash_str(addr);
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

void guard_ip_release(struct guard *g, struct guard_ip *ip)
{
    struct guard_ip **pp;

    if (!ip || --ip->streams > 0)
        return;
    pp = &g->ips[guard_hash_str(ip->addr)];
    while (*pp != ip)
        pp = &(*pp)->next;
    *pp = ip->next;
    free(ip);
}

int guard_connection_limit(const struct guard *g)
{
    return g->limit;
}

uint64_t guard_refused_total(const struct guard *g)
{
    return g->refused;
}

uint64_t guard_ip_refused_total(const struct guard *g)
{
    return g->ip_refused;
}

int guard_open_connections(const struct guard *g)
{
    return g->open;
}
