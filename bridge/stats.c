/*
 * stats.c: owns the cached store numbers of /metrics and the open-publisher
 * check (see stats.h).  Queries go to the least busy connection of the SSE
 * pool; each has the sessions' statement_timeout.
 */
#define _GNU_SOURCE
#include "stats.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "log.h"
#include "loop.h"
#include "pgconn.h"
#include "sse.h"

#define STATS_MAX_AGE_US 1000000          /* drain numbers: at most once a second */
#define STATS_PUBLISHER_US 2000000        /* open publishers: every 2 s */

static const char STATS_DRAIN_SQL[] =
    "SELECT cursor_position, pending_events, extract(epoch from oldest_pending_age), "
    "dead_letters FROM aegis.drain_status()";
static const char STATS_PUBLISHER_SQL[] =
    "SELECT open_publishers, oldest_pid, oldest_database, extract(epoch from oldest_age) "
    "FROM aegis.publisher_status()";

struct stats_waiter {
    struct stats_waiter *next;
    stats_cb cb;
    void *ud;
};

struct stats {
    struct bridge *b;
    struct stats_values v;
    int64_t read_us;                  /* when the drain numbers were read (0: never) */
    int reading;                      /* a drain query in flight */
    int checking;                     /* a publisher query in flight */
    struct stats_waiter *waiters;
    struct loop_timer *timer;
    long warned_pid;                  /* the publisher the last warning was about */
    int freeing;
};

static void stats_call_waiters(struct stats *s)
{
    struct stats_waiter *w, *next;

    w = s->waiters;
    s->waiters = NULL;
    for (; w; w = next) {
        next = w->next;
        w->cb(w->ud);
        free(w);
    }
}

static double stats_num(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? 0.0 : atof(PQgetvalue(res, 0, col));
}

static void stats_drain_done(struct pgconn *c, PGresult *res, void *ud)
{
    struct stats *s = ud;

    (void)c;
    s->reading = 0;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        s->v.have_drain = 1;
        s->v.cursor = stats_num(res, 0);
        s->v.pending = stats_num(res, 1);
        s->v.lag_s = stats_num(res, 2);
        s->v.dead_letters = stats_num(res, 3);
    } else if (res) {
        LOG(LOG_WARN, "stats", "msg=\"drain_status failed\" error=\"%s\"",
            log_text(PQresultErrorMessage(res)));
    }
    s->read_us = loop_now_us();
    stats_call_waiters(s);
}

int stats_when_fresh(struct stats *s, stats_cb cb, void *ud)
{
    struct stats_waiter *w;
    struct pgconn *c;

    if (s->read_us && loop_now_us() - s->read_us < STATS_MAX_AGE_US)
        return cb(ud), 1;
    if (!sse_pg_ready(s->b->sse) || !(w = calloc(1, sizeof *w)))
        return cb(ud), 1;
    if (!s->reading) {
        c = sse_pg_pick(s->b->sse);
        if (pgconn_query(c, STATS_DRAIN_SQL, 0, NULL, stats_drain_done, s) < 0) {
            free(w);
            return cb(ud), 1;
        }
        s->reading = 1;
    }
    w->cb = cb;
    w->ud = ud;
    w->next = s->waiters;
    s->waiters = w;
    return 0;
}

const struct stats_values *stats_values(const struct stats *s)
{
    return &s->v;
}

static void stats_publisher_warn(struct stats *s, const PGresult *res)
{
    long pid = PQgetisnull(res, 0, 1) ? 0 : atol(PQgetvalue(res, 0, 1));

    if (pid == 0 || s->v.oldest_age_s < s->b->cfg.publisher_warn_seconds) {
        if (pid == 0)
            s->warned_pid = 0;
        return;
    }
    if (pid == s->warned_pid)
        return;                       /* once per publisher */
    s->warned_pid = pid;
    LOG(LOG_WARN, "stats", "msg=\"an open publishing transaction holds back every reader (SSE, "
        "the Kafka drain) in every database; end it or bound it with "
        "idle_in_transaction_session_timeout\" pid=%ld database=\"%s\" age_s=%.0f open_publishers=%.0f",
        pid, log_text(PQgetvalue(res, 0, 2)), s->v.oldest_age_s, s->v.open_publishers);
}

static void stats_publisher_done(struct pgconn *c, PGresult *res, void *ud)
{
    struct stats *s = ud;

    (void)c;
    s->checking = 0;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        s->v.have_publishers = 1;
        s->v.open_publishers = stats_num(res, 0);
        s->v.oldest_age_s = stats_num(res, 3);
        stats_publisher_warn(s, res);
    }
    if (!s->freeing)
        loop_timer_schedule(s->timer, STATS_PUBLISHER_US);
}

static void stats_timer_cb(void *ud)
{
    struct stats *s = ud;

    if (!s->checking && sse_pg_ready(s->b->sse) &&
        pgconn_query(sse_pg_pick(s->b->sse), STATS_PUBLISHER_SQL, 0, NULL, stats_publisher_done,
                     s) == 0) {
        s->checking = 1;
        return;
    }
    loop_timer_schedule(s->timer, STATS_PUBLISHER_US);
}

struct stats *stats_new(struct bridge *b)
{
    struct stats *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->b = b;
    s->timer = loop_timer_new(b, stats_timer_cb, s);
    if (!s->timer) {
        free(s);
        return NULL;
    }
    loop_timer_schedule(s->timer, STATS_PUBLISHER_US);
    return s;
}

/* after sse_hub_free (which fails the queries in flight into the callbacks above) */
void stats_free(struct stats *s)
{
    if (!s)
        return;
    s->freeing = 1;
    stats_call_waiters(s);
    loop_timer_free(s->timer);
    free(s);
}
