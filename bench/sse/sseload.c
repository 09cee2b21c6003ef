/*
 * bench/sse/sseload.c: one SSE load client for both servers of bench/sse
 * (aegis-bridge and nginx + nchan), so both are measured the same way.
 *
 * Owns: its subscriber sockets (raw, non-blocking, one epoll loop in the
 * main thread), one publisher thread, and the statistics it prints.
 *
 *   sseload run  --port P --sub FMT --names PREFIX --subs N --streams S
 *                --events E --warmup W --rate R --pub bridge|nchan
 *                [--pub-path FMT] [--publishers K] [--timeout SEC]
 *     N subscribers, subscriber i on stream PREFIX<i % S> (path FMT with
 *     %s = stream name).  Once every subscriber has its response headers
 *     (and 1 s more), K publisher threads (1; one connection each, one call
 *     at a time; thread j takes events j, j+K, ...) publish W + E events,
 *     event k due at t0 + k / R (late calls are made at once, never
 *     skipped), event k on stream k % S:
 *       bridge: BEGIN; SELECT aegis.publish_workspace_event(name,
 *               'agent_status', payload); COMMIT over libpq (PG*
 *               environment), three round trips; the "call" is the COMMIT
 *               (the moment the event becomes an event);
 *       nchan:  POST FMT (%s = name) over one keep-alive connection; the
 *               call returns once the whole response has been read.
 *     Latency of one delivery = CLOCK_MONOTONIC at the subscriber's read()
 *     that completed the event's data line - CLOCK_MONOTONIC right after
 *     the call returned ("done"; same process, same clock), and also - the
 *     moment the call was issued ("start": COMMIT sent / POST sent), - the
 *     moment the bridge's transaction began ("txn": BEGIN sent; = start for
 *     nchan) and - the moment it was due on the schedule ("due": includes
 *     any publisher lag).  For the
 *     bridge with --notify-probe 1 a separate session LISTENs on aegis_events
 *     (off by default: one more process woken per event on a small machine,
 *     and the bridge itself is woken by aegis.wait_all, not NOTIFY): "notify" = arrival
 *     of the first NOTIFY whose position covers the event's id - the call's
 *     return (the extension's notifier path alone).  The first W events
 *     are a warm-up and not counted.  Prints one line of key=value (ms):
 *       done_p50 done_p99 done_max start_p50 start_p99 start_max txn_p50 txn_p99
 *       due_p50 due_p99 received
 *       expected rate (publish calls issued/s) pub_p50 pub_p99 (call duration)
 *       and for the bridge notify_p50 notify_p99 notifies
 *
 *   --dump FILE (run mode): one line per counted event with its publish
 *     times, id and first / median / last receipt (CLOCK_MONOTONIC ns), for
 *     bench/sse/hops.py to line up with a perf trace of the server.
 *
 *   sseload idle --port P --sub FMT --names PREFIX --conns N --streams S
 *                [--timeout SEC]
 *     opens N SSE connections (connection i on stream i % S), prints
 *     "ready N" once every one has its headers, then holds them (reading
 *     whatever arrives) until SIGTERM/SIGINT or the timeout.
 *
 * The SSE reader is deliberately minimal: it checks for an HTTP 200 status
 * line, skips the head up to the blank line, then splits the body into
 * lines and takes the event number from "seq=<n>" inside a "data:" line.
 * Bounded: every phase has a deadline; exit status 1 on any failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_CAP 65536
#define MAX_INFLIGHT 200

enum cstate { C_IDLE, C_CONNECTING, C_HEAD, C_LIVE, C_DEAD };

typedef struct conn {
    int fd;
    int stream;
    enum cstate st;
    size_t len;                 /* bytes waiting in buf */
    char *buf;
} conn;

typedef struct opts {
    const char *mode, *sub, *names, *pub, *pub_path, *dump;
    int port, subs, streams, events, warmup, timeout, publishers, notify_probe;
    double rate;
} opts;

static opts O = {.timeout = 120, .rate = 1000, .warmup = 100, .streams = 1, .publishers = 1};
static conn *C;
static int ep = -1;
static int64_t *pub_done;       /* per event: publish call returned (ns) */
static int64_t *pub_start;      /* per event: publish call started (ns) */
static int64_t *pub_begin;      /* per event: bridge: BEGIN sent; nchan: = pub_start */
static int64_t *pub_due;        /* per event: when it was due (ns) */
static int64_t *pub_took;       /* per event: duration of the call (ns) */
static int64_t *recv_at;        /* [sub * total + event]: receipt (ns), 0 = none */
static int total_events;
static volatile int pub_finished, pub_failed;   /* threads done; any failure */
static int64_t pub_t0;
static int64_t *pub_id;         /* bridge: the event id publish returned */
static int64_t *ntf_at, *ntf_pos;   /* bridge: NOTIFYs seen by a LISTEN session */
static size_t ntf_n, ntf_cap;          /* event k is due at pub_t0 + k / rate */
static volatile sig_atomic_t stop;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sseload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void stream_name(char *out, size_t cap, int stream)
{
    snprintf(out, cap, "%s%d", O.names, stream);
}

/* ---- subscribers ---- */

static int conn_open(int i)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(O.port)};
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    C[i].fd = fd;
    C[i].st = C_CONNECTING;
    C[i].len = 0;
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int conn_send_request(int i)
{
    char name[256], path[512], req[1024];
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(C[i].fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0)
        return -1;
    stream_name(name, sizeof name, C[i].stream);
    snprintf(path, sizeof path, O.sub, name);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n\r\n", path, O.port);
    if (write(C[i].fd, req, (size_t)n) != n)
        return -1;
    C[i].st = C_HEAD;
    return epoll_ctl(ep, EPOLL_CTL_MOD, C[i].fd, &ev);
}

/* One complete body line: record the event number of a data line. */
static void conn_line(int i, const char *line, size_t len, int64_t t)
{
    if (len < 5 || memcmp(line, "data:", 5) != 0 || recv_at == NULL)
        return;
    const char *p = memmem(line, len, "seq=", 4);
    if (p == NULL)
        return;
    long k = strtol(p + 4, NULL, 10);
    if (k < 0 || k >= total_events)
        return;
    int64_t *slot = &recv_at[(size_t)i * (size_t)total_events + (size_t)k];
    if (*slot == 0)
        *slot = t;
}

/* Consume buf: the head first, then whole lines; keep a partial line. */
static int conn_parse(int i, int64_t t)
{
    conn *c = &C[i];
    size_t off = 0;
    if (c->st == C_HEAD) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end == NULL)
            return c->len >= BUF_CAP ? -1 : 0;
        if (c->len < 12 || memcmp(c->buf + 8, " 200", 4) != 0) {
            fprintf(stderr, "sseload: subscriber %d: %.*s\n", i,
                    (int)strcspn(c->buf, "\r\n"), c->buf);
            return -1;
        }
        c->st = C_LIVE;
        off = (size_t)(end - c->buf) + 4;
    }
    for (;;) {
        char *nl = memchr(c->buf + off, '\n', c->len - off);
        if (nl == NULL)
            break;
        conn_line(i, c->buf + off, (size_t)(nl - (c->buf + off)), t);
        off = (size_t)(nl - c->buf) + 1;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    return c->len >= BUF_CAP ? -1 : 0;
}

static int conn_read(int i)
{
    for (;;) {
        ssize_t n = read(C[i].fd, C[i].buf + C[i].len, BUF_CAP - C[i].len);
        if (n > 0) {
            C[i].len += (size_t)n;
            if (conn_parse(i, now_ns()) < 0)
                return -1;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        return -1;              /* closed by the server, or an error */
    }
}

static void conn_fail(int i, const char *why)
{
    fprintf(stderr, "sseload: subscriber %d (%s): %s\n", i,
            C[i].st == C_HEAD ? "waiting for headers" : "streaming", why);
    epoll_ctl(ep, EPOLL_CTL_DEL, C[i].fd, NULL);
    close(C[i].fd);
    C[i].st = C_DEAD;
}

/* One epoll round; returns the number of connections that went live. */
static int poll_once(int timeout_ms, int *dead)
{
    struct epoll_event evs[512];
    int live = 0, n = epoll_wait(ep, evs, 512, timeout_ms);
    for (int j = 0; j < n; j++) {
        int i = (int)evs[j].data.u32;
        enum cstate before = C[i].st;
        if (C[i].st == C_CONNECTING) {
            if (conn_send_request(i) < 0) {
                conn_fail(i, "connect failed");
                (*dead)++;
            }
            continue;
        }
        if (C[i].st == C_DEAD)
            continue;
        if (conn_read(i) < 0) {
            conn_fail(i, "closed or bad response");
            (*dead)++;
            continue;
        }
        if (before == C_HEAD && C[i].st == C_LIVE)
            live++;
    }
    return live;
}

/* Open n connections, at most MAX_INFLIGHT without headers at a time. */
static int connect_all(int n, int64_t deadline)
{
    int opened = 0, live = 0, dead = 0;
    while (live + dead < n) {
        while (opened < n && opened - live - dead < MAX_INFLIGHT) {
            C[opened].stream = opened % O.streams;
            if (conn_open(opened) < 0)
                die("connect %d: %s", opened, strerror(errno));
            opened++;
        }
        live += poll_once(100, &dead);
        if (now_ns() > deadline)
            die("only %d of %d subscribers connected in time", live, n);
    }
    if (dead > 0)
        die("%d of %d subscribers failed", dead, n);
    return 0;
}

/* ---- publishers ---- */

static int payload(char *out, size_t cap, int k)
{
    return snprintf(out, cap,
                    "{\"status\": \"running\", \"message\": \"seq=%d of the sse benchmark, "
                    "a payload of about the size of a progress update\", \"progress\": 0.5}", k);
}

/* checks and frees a result; 0 (and pub_failed set) when it is not `want` */
static int pg_ok(PGresult *r, ExecStatusType want, const char *what, int k)
{
    int ok = PQresultStatus(r) == want;
    if (!ok) {
        fprintf(stderr, "sseload: %s %d: %s", what, k, PQresultErrorMessage(r));
        pub_failed = 1;
    }
    PQclear(r);
    return ok;
}

static void *pub_bridge(void *arg)
{
    PGconn *pg = PQconnectdb("");
    char name[256], body[512];
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "sseload: postgres: %s", PQerrorMessage(pg));
        pub_failed = 1;
        __atomic_add_fetch(&pub_finished, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    PGresult *r = PQprepare(pg, "pub",
                            "SELECT aegis.publish_workspace_event($1, 'agent_status', $2::jsonb)",
                            2, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "sseload: prepare: %s", PQerrorMessage(pg));
        pub_failed = 1;
    }
    PQclear(r);
    for (int k = (int)(intptr_t)arg; k < total_events && !pub_failed && !stop; k += O.publishers) {
        int64_t due = pub_due[k];
        struct timespec ts = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        stream_name(name, sizeof name, k % O.streams);
        payload(body, sizeof body, k);
        const char *vals[2] = {name, body};
        pub_begin[k] = now_ns();
        if (!pg_ok(PQexec(pg, "BEGIN"), PGRES_COMMAND_OK, "BEGIN", k))
            break;
        r = PQexecPrepared(pg, "pub", 2, vals, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            pub_id[k] = atoll(PQgetvalue(r, 0, 0));
        if (!pg_ok(r, PGRES_TUPLES_OK, "publish", k))
            break;
        int64_t t1 = pub_start[k] = now_ns();
        if (!pg_ok(PQexec(pg, "COMMIT"), PGRES_COMMAND_OK, "COMMIT", k))
            break;
        pub_done[k] = now_ns();
        pub_took[k] = pub_done[k] - t1;
    }
    PQfinish(pg);
    __atomic_add_fetch(&pub_finished, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Bridge only: a separate session LISTENs on aegis_events and records when
 * each NOTIFY (payload: the store position it covers) arrives, to split the
 * bridge's latency into commit -> NOTIFY and NOTIFY -> subscriber. */
static void *listen_bridge(void *arg)
{
    PGconn *pg = PQconnectdb("");
    (void)arg;
    PGresult *r = PQexec(pg, "LISTEN aegis_events");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "sseload: LISTEN: %s", PQerrorMessage(pg));
        PQclear(r);
        PQfinish(pg);
        return NULL;
    }
    PQclear(r);
    while (!stop) {
        struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int64_t t = now_ns();
        if (!PQconsumeInput(pg))
            break;
        PGnotify *n;
        while ((n = PQnotifies(pg)) != NULL) {
            if (ntf_n < ntf_cap) {
                ntf_at[ntf_n] = t;
                ntf_pos[ntf_n++] = atoll(n->extra);
            }
            PQfreemem(n);
        }
    }
    PQfinish(pg);
    return NULL;
}

/* Read one HTTP response (head + Content-Length body); its status or -1. */
static int http_response(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    char *end = NULL;
    while (end == NULL) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end == NULL && len >= cap - 1)
            return -1;
    }
    const char *cl = strcasestr(buf, "\r\ncontent-length:");
    size_t body = cl ? strtoul(cl + 17, NULL, 10) : 0;
    size_t want = (size_t)(end - buf) + 4 + body;
    if (want >= cap)
        return -1;
    while (len < want) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
    }
    if (len != want)
        return -1;              /* no pipelining: nothing may follow */
    return atoi(buf + 9);
}

static void *pub_nchan(void *arg)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(O.port)};
    char name[256], path[512], body[512], req[2048], resp[8192];
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        fprintf(stderr, "sseload: publisher connect: %s\n", strerror(errno));
        pub_failed = 1;
        __atomic_add_fetch(&pub_finished, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int k = (int)(intptr_t)arg; k < total_events && !pub_failed && !stop; k += O.publishers) {
        int64_t due = pub_due[k];
        struct timespec ts = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        stream_name(name, sizeof name, k % O.streams);
        snprintf(path, sizeof path, O.pub_path, name);
        int bl = payload(body, sizeof body, k);
        int n = snprintf(req, sizeof req,
                         "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                         "Content-Length: %d\r\n\r\n%s", path, O.port, bl, body);
        int64_t t1 = pub_start[k] = pub_begin[k] = now_ns();
        int status = write(fd, req, (size_t)n) == n ? http_response(fd, resp, sizeof resp) : -1;
        pub_done[k] = now_ns();
        pub_took[k] = pub_done[k] - t1;
        if (status != 201 && status != 202) {
            fprintf(stderr, "sseload: publish %d: HTTP status %d\n", k, status);
            pub_failed = 1;
        }
    }
    close(fd);
    __atomic_add_fetch(&pub_finished, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* ---- statistics ---- */

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)n);
    return n == 0 ? -1 : (double)v[i < n ? i : n - 1] / 1e6;
}

static size_t expected_count(void)
{
    size_t e = 0;
    for (int i = 0; i < O.subs; i++)
        for (int k = O.warmup; k < total_events; k++)
            e += (k % O.streams == C[i].stream);
    return e;
}

static size_t received_count(void)
{
    size_t got = 0;
    for (int i = 0; i < O.subs; i++)
        for (int k = O.warmup; k < total_events; k++)
            got += recv_at[(size_t)i * (size_t)total_events + (size_t)k] != 0;
    return got;
}

/* Sorted latencies of every counted delivery from base[k]; returns count. */
static size_t latencies(int64_t *lat, size_t cap, const int64_t *base)
{
    size_t n = 0;
    for (int i = 0; i < O.subs; i++)
        for (int k = O.warmup; k < total_events; k++) {
            int64_t t = recv_at[(size_t)i * (size_t)total_events + (size_t)k];
            if (t != 0 && n < cap)
                lat[n++] = t - base[k];
        }
    qsort(lat, n, sizeof *lat, cmp64);
    return n;
}

static void report(void)
{
    size_t exp = expected_count();
    int64_t *lat = malloc(sizeof(int64_t) * (exp ? exp : 1));
    int64_t *took = malloc(sizeof(int64_t) * (size_t)total_events);
    if (lat == NULL || took == NULL)
        die("out of memory");
    size_t n = latencies(lat, exp, pub_done);
    printf("done_p50=%.3f done_p99=%.3f done_max=%.3f ", pct_ms(lat, n, 0.5),
           pct_ms(lat, n, 0.99), n ? (double)lat[n - 1] / 1e6 : -1);
    n = latencies(lat, exp, pub_start);
    printf("start_p50=%.3f start_p99=%.3f start_max=%.3f ", pct_ms(lat, n, 0.5),
           pct_ms(lat, n, 0.99), n ? (double)lat[n - 1] / 1e6 : -1);
    n = latencies(lat, exp, pub_begin);
    printf("txn_p50=%.3f txn_p99=%.3f ", pct_ms(lat, n, 0.5), pct_ms(lat, n, 0.99));
    n = latencies(lat, exp, pub_due);
    printf("due_p50=%.3f due_p99=%.3f ", pct_ms(lat, n, 0.5), pct_ms(lat, n, 0.99));
    size_t nn = 0;
    for (int k = O.warmup; k < total_events && ntf_n > 0; k++) {
        size_t lo = 0, hi = ntf_n;      /* first NOTIFY covering event k's id */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (ntf_pos[mid] < pub_id[k]) lo = mid + 1; else hi = mid;
        }
        if (lo < ntf_n && pub_id[k] > 0)
            lat[nn++] = ntf_at[lo] - pub_done[k];
    }
    if (nn > 0) {
        qsort(lat, nn, sizeof *lat, cmp64);
        printf("notify_p50=%.3f notify_p99=%.3f notifies=%zu ", pct_ms(lat, nn, 0.5),
               pct_ms(lat, nn, 0.99), ntf_n);
    }
    int m = total_events - O.warmup;
    for (int k = 0; k < m; k++)
        took[k] = pub_took[O.warmup + k];
    qsort(took, (size_t)m, sizeof *took, cmp64);
    int64_t first = INT64_MAX, last = 0;
    for (int k = O.warmup; k < total_events; k++) {
        first = pub_start[k] < first ? pub_start[k] : first;
        last = pub_start[k] > last ? pub_start[k] : last;
    }
    double secs = (double)(last - first) / 1e9;
    printf("received=%zu expected=%zu rate=%.0f pub_p50=%.3f pub_p99=%.3f\n", n, exp,
           secs > 0 ? (m - 1) / secs : 0, pct_ms(took, (size_t)m, 0.5),
           pct_ms(took, (size_t)m, 0.99));
    free(lat);
    free(took);
}

/* --dump FILE: one line per counted event, CLOCK_MONOTONIC ns:
 * k stream start done id first_recv median_recv last_recv receivers
 * (for bench/sse/hops.py, which lines these up with a perf trace) */
static void dump_events(const char *path)
{
    FILE *f = fopen(path, "w");
    int64_t *r = malloc(sizeof(int64_t) * (size_t)O.subs);
    if (f == NULL || r == NULL)
        die("--dump %s: %s", path, strerror(errno));
    for (int k = O.warmup; k < total_events; k++) {
        size_t n = 0;
        for (int i = 0; i < O.subs; i++) {
            int64_t t = recv_at[(size_t)i * (size_t)total_events + (size_t)k];
            if (t != 0)
                r[n++] = t;
        }
        qsort(r, n, sizeof *r, cmp64);
        fprintf(f, "%d %d %lld %lld %lld %lld %lld %lld %zu\n", k, k % O.streams,
                (long long)pub_start[k], (long long)pub_done[k], (long long)pub_id[k],
                (long long)(n ? r[0] : 0), (long long)(n ? r[n / 2] : 0),
                (long long)(n ? r[n - 1] : 0), n);
    }
    free(r);
    fclose(f);
}

/* ---- modes ---- */

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int mode_run(void)
{
    pthread_t th[64];
    int dead = 0;
    total_events = O.warmup + O.events;
    pub_done = calloc((size_t)total_events, sizeof(int64_t));
    pub_took = calloc((size_t)total_events, sizeof(int64_t));
    pub_start = calloc((size_t)total_events, sizeof(int64_t));
    pub_begin = calloc((size_t)total_events, sizeof(int64_t));
    pub_due = calloc((size_t)total_events, sizeof(int64_t));
    pub_id = calloc((size_t)total_events, sizeof(int64_t));
    ntf_cap = (size_t)total_events * 2 + 1000;
    ntf_at = calloc(ntf_cap, sizeof(int64_t));
    ntf_pos = calloc(ntf_cap, sizeof(int64_t));
    if (pub_id == NULL || ntf_at == NULL || ntf_pos == NULL)
        die("out of memory");
    recv_at = calloc((size_t)O.subs * (size_t)total_events, sizeof(int64_t));
    if (pub_done == NULL || pub_took == NULL || pub_start == NULL || pub_begin == NULL ||
        pub_due == NULL || recv_at == NULL)
        die("out of memory");
    int64_t deadline = now_ns() + (int64_t)O.timeout * 1000000000;
    connect_all(O.subs, deadline);
    int64_t settle = now_ns() + 1000000000;
    while (now_ns() < settle)
        poll_once(50, &dead);
    pthread_t lt;
    int listening = O.notify_probe && !strcmp(O.pub, "bridge") && pthread_create(&lt, NULL, listen_bridge, NULL) == 0;
    pub_t0 = now_ns() + 50000000;   /* 50 ms for the publishers to connect */
    for (int k = 0; k < total_events; k++)
        pub_due[k] = pub_t0 + (int64_t)(k * 1e9 / O.rate);
    for (int j = 0; j < O.publishers; j++)
        if (pthread_create(&th[j], NULL, strcmp(O.pub, "nchan") == 0 ? pub_nchan : pub_bridge,
                           (void *)(intptr_t)j) != 0)
            die("pthread_create");
    int64_t last_check = 0, drain_end = 0;
    while (!stop && now_ns() < deadline && dead == 0) {
        poll_once(20, &dead);
        if (pub_finished < O.publishers || now_ns() - last_check < 200000000)
            continue;
        last_check = now_ns();
        if (drain_end == 0)
            drain_end = last_check + 30LL * 1000000000;   /* bounded drain after the last publish */
        if (received_count() == expected_count() || last_check > drain_end)
            break;
    }
    stop = 1;
    for (int j = 0; j < O.publishers; j++)
        pthread_join(th[j], NULL);
    if (listening)
        pthread_join(lt, NULL);
    if (pub_failed)
        die("publishing failed");
    if (dead > 0)
        die("%d subscribers lost their stream", dead);
    report();
    if (O.dump)
        dump_events(O.dump);
    return received_count() == expected_count() ? 0 : 1;
}

static int mode_idle(void)
{
    int dead = 0;
    int64_t deadline = now_ns() + (int64_t)O.timeout * 1000000000;
    O.subs = O.subs ? O.subs : 0;
    connect_all(O.subs, deadline);
    printf("ready %d\n", O.subs);
    fflush(stdout);
    while (!stop && now_ns() < deadline && dead == 0)
        poll_once(200, &dead);
    if (dead > 0)
        die("%d idle connections were closed by the server", dead);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: sseload run|idle --port P --sub FMT --names PREFIX "
            "[--subs N|--conns N] [--streams S] [--events E] [--warmup W] [--rate R] "
            "[--pub bridge|nchan] [--pub-path FMT] [--publishers K] [--timeout SEC] [--dump FILE]\n");
    exit(2);
}

static int int_arg(const char *v, int lo, int hi, const char *name)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < lo || x > hi)
        die("%s: '%s' is not an integer in %d..%d", name, v, lo, hi);
    return (int)x;
}

static void parse(int argc, char **argv)
{
    if (argc < 2)
        usage();
    O.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        i++;
        if (!strcmp(k, "--port")) O.port = int_arg(v, 1, 65535, k);
        else if (!strcmp(k, "--sub")) O.sub = v;
        else if (!strcmp(k, "--names")) O.names = v;
        else if (!strcmp(k, "--subs") || !strcmp(k, "--conns")) O.subs = int_arg(v, 1, 100000, k);
        else if (!strcmp(k, "--streams")) O.streams = int_arg(v, 1, 100000, k);
        else if (!strcmp(k, "--events")) O.events = int_arg(v, 1, 10000000, k);
        else if (!strcmp(k, "--warmup")) O.warmup = int_arg(v, 0, 1000000, k);
        else if (!strcmp(k, "--rate")) O.rate = int_arg(v, 1, 1000000, k);
        else if (!strcmp(k, "--timeout")) O.timeout = int_arg(v, 1, 3600, k);
        else if (!strcmp(k, "--publishers")) O.publishers = int_arg(v, 1, 64, k);
        else if (!strcmp(k, "--pub")) O.pub = v;
        else if (!strcmp(k, "--pub-path")) O.pub_path = v;
        else if (!strcmp(k, "--dump")) O.dump = v;
        else if (!strcmp(k, "--notify-probe")) O.notify_probe = int_arg(v, 0, 1, k);
        else usage();
    }
    if (O.port == 0 || O.sub == NULL || O.names == NULL || O.subs == 0)
        usage();
    if (strstr(O.sub, "%s") == NULL || (O.pub_path && strstr(O.pub_path, "%s") == NULL))
        die("--sub/--pub-path need one %%s");
    if (!strcmp(O.mode, "run") && (O.events == 0 || O.pub == NULL ||
        (strcmp(O.pub, "bridge") && strcmp(O.pub, "nchan")) ||
        (!strcmp(O.pub, "nchan") && O.pub_path == NULL)))
        usage();
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    parse(argc, argv);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    C = calloc((size_t)O.subs, sizeof *C);
    ep = epoll_create1(0);
    if (C == NULL || ep < 0)
        die("setup: %s", strerror(errno));
    for (int i = 0; i < O.subs; i++)
        if ((C[i].buf = malloc(BUF_CAP)) == NULL)
            die("out of memory");
    if (!strcmp(O.mode, "run"))
        return mode_run();
    if (!strcmp(O.mode, "idle"))
        return mode_idle();
    usage();
    return 2;
}
