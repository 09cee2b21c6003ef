/*
 * pgconn.c: owns one libpq connection in the loop: non-blocking connect
 * (PQconnectStart/PQconnectPoll), a FIFO of queries sent one at a time with
 * PQsendQueryParams, LISTEN channels re-issued after reconnect, NOTIFY
 * delivery, and reconnect with exponential backoff (100 ms .. 5 s).
 */
#define _GNU_SOURCE
#include "pgconn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "log.h"
#include "loop.h"

enum pgconn_state { PGC_CONNECTING, PGC_READY, PGC_BACKOFF, PGC_CLOSED };

struct pgconn_query {
    struct pgconn_query *next;
    char *sql;                 /* owned copy */
    int nparams;
    char **params;             /* owned copies; NULL entries are SQL NULL */
    pgconn_result_cb cb;
    void *ud;
    int internal;              /* LISTEN issued by pgconn itself */
    int kind;                  /* PGCONN_Q_PARAMS, _PREPARE or _PREPARED */
    char *stmt;                /* prepared statement name (owned) */
    int *lengths, *formats;    /* per param, for _PREPARED (owned) */
};

enum { PGCONN_Q_PARAMS, PGCONN_Q_PREPARE, PGCONN_Q_PREPARED };

struct pgconn {
    struct bridge *b;
    char *conninfo;
    char *name;
    struct pgconn_callbacks cbs;
    void *ud;
    PGconn *conn;
    struct loop_watch *watch;
    int sock;                           /* the socket watch is a dup of */
    struct loop_timer *retry;
    struct loop_timer *fail;            /* reports a send failure from the loop */
    int failing;                        /* send failed: loss reported soon */
    char fail_reason[256];
    enum pgconn_state state;
    struct loop_backoff backoff;      /* reconnects: 100 ms .. 5 s */
    struct pgconn_query *head, *tail;   /* head is on the wire when busy */
    int busy;
    PGresult *last;                     /* last result of the query on the wire */
    char **channels;
    size_t nchannels;
    int qlen;
};

static void pgconn_start(struct pgconn *c);
static void pgconn_on_readable(void *ud);
static void pgconn_send_next(struct pgconn *c);

static void pgconn_query_free(struct pgconn_query *q)
{
    int i;

    if (!q)
        return;
    for (i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q->sql);
    free(q->stmt);
    free(q->lengths);
    free(q->formats);
    free(q);
}

/* at the tail of the FIFO; sent when the queries before it are done */
static void pgconn_append(struct pgconn *c, struct pgconn_query *q)
{
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    c->qlen++;
}

static struct pgconn_query *pgconn_query_pop(struct pgconn *c)
{
    struct pgconn_query *q = c->head;

    if (q) {
        c->head = q->next;
        if (!c->head)
            c->tail = NULL;
        c->qlen--;
    }
    return q;
}

static void pgconn_fail_all(struct pgconn *c)
{
    struct pgconn_query *q;

    while ((q = pgconn_query_pop(c))) {
        if (q->cb)
            q->cb(c, NULL, q->ud);
        pgconn_query_free(q);
    }
    c->busy = 0;
}

static void pgconn_teardown(struct pgconn *c)
{
    loop_watch_free(c->watch);
    c->watch = NULL;
    if (c->last) {
        PQclear(c->last);
        c->last = NULL;
    }
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
}

static void pgconn_retry_cb(void *ud)
{
    pgconn_start(ud);
}

static void pgconn_lost(struct pgconn *c, const char *why)
{
    int was_ready = c->state == PGC_READY;

    LOG(LOG_WARN, "pgconn", "msg=\"connection lost\" name=%s reason=\"%s\" retry_ms=%lld", c->name,
        log_text(why), (long long)(loop_backoff_peek(&c->backoff) / 1000));
    c->failing = 0;
    loop_timer_cancel(c->fail);
    pgconn_teardown(c);
    c->state = PGC_BACKOFF;
    pgconn_fail_all(c);
    if (was_ready && c->cbs.on_lost)
        c->cbs.on_lost(c, c->ud);
    loop_timer_schedule(c->retry, loop_backoff_next(&c->backoff));
}

/* libpq's message, raw: pgconn_lost logs it through log_text */
static const char *pgconn_error(const struct pgconn *c)
{
    return c->conn ? PQerrorMessage(c->conn) : "out of memory";
}

static int pgconn_queue_listen(struct pgconn *c, const char *channel)
{
    char *ident = PQescapeIdentifier(c->conn, channel, strlen(channel));
    struct pgconn_query *q;
    size_t n;

    if (!ident)
        return -1;
    q = calloc(1, sizeof *q);
    n = strlen(ident) + 8;
    if (q)
        q->sql = malloc(n);
    if (!q || !q->sql) {
        free(q);
        PQfreemem(ident);
        return -1;
    }
    snprintf(q->sql, n, "LISTEN %s", ident);
    PQfreemem(ident);
    q->internal = 1;
    pgconn_append(c, q);
    return 0;
}

static void pgconn_became_ready(struct pgconn *c)
{
    size_t i;

    if (PQsetnonblocking(c->conn, 1) != 0) {
        pgconn_lost(c, "cannot set non-blocking");
        return;
    }
    c->state = PGC_READY;
    loop_backoff_reset(&c->backoff);
    LOG(LOG_INFO, "pgconn", "msg=connected name=%s server_version=%d", c->name,
        PQserverVersion(c->conn));
    for (i = 0; i < c->nchannels; i++)
        pgconn_queue_listen(c, c->channels[i]);
    if (c->cbs.on_connected)
        c->cbs.on_connected(c, c->ud);
    if (c->state == PGC_READY)
        pgconn_send_next(c);
}

static void pgconn_connect_step(void *ud)
{
    struct pgconn *c = ud;
    PostgresPollingStatusType st = PQconnectPoll(c->conn);

    /* the socket can change during connect (multi-host, SSL retry) */
    if (st == PGRES_POLLING_FAILED) {
        pgconn_lost(c, pgconn_error(c));
        return;
    }
    loop_watch_free(c->watch);
    c->sock = PQsocket(c->conn);
    c->watch = loop_watch_fd(c->b, c->sock, pgconn_on_readable, c);
    if (!c->watch) {
        pgconn_lost(c, "cannot watch socket");
        return;
    }
    if (st == PGRES_POLLING_OK)
        pgconn_became_ready(c);
    else if (st == PGRES_POLLING_WRITING)
        loop_watch_want_write(c->watch, pgconn_connect_step);
}

static void pgconn_notice(void *arg, const char *message)
{
    struct pgconn *c = arg;

    LOG(LOG_WARN, "pgconn", "msg=\"server notice\" name=%s notice=\"%s\"", c->name,
        log_text(message));
}

static void pgconn_start(struct pgconn *c)
{
    c->state = PGC_CONNECTING;
    c->conn = PQconnectStart(c->conninfo ? c->conninfo : "");
    if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD || PQsocket(c->conn) < 0) {
        pgconn_lost(c, pgconn_error(c));
        return;
    }
    PQsetNoticeProcessor(c->conn, pgconn_notice, c);
    c->sock = PQsocket(c->conn);
    c->watch = loop_watch_fd(c->b, c->sock, pgconn_on_readable, c);
    if (!c->watch) {
        pgconn_lost(c, "cannot watch socket");
        return;
    }
    /* PQconnectStart's first step waits for writability */
    loop_watch_want_write(c->watch, pgconn_connect_step);
}

static void pgconn_flush_cb(void *ud)
{
    struct pgconn *c = ud;
    int r = PQflush(c->conn);

    if (r < 0)
        pgconn_lost(c, pgconn_error(c));
    else if (r > 0)
        loop_watch_want_write(c->watch, pgconn_flush_cb);
}

static void pgconn_fail_cb(void *ud)
{
    struct pgconn *c = ud;

    if (c->failing)
        pgconn_lost(c, c->fail_reason);
}

/* A send failure can happen inside a caller's pgconn_query: callbacks must
 * not run re-entrantly there, so the loss is reported from the loop. */
static void pgconn_fail_later(struct pgconn *c)
{
    if (c->failing)
        return;
    snprintf(c->fail_reason, sizeof c->fail_reason, "%s", pgconn_error(c));
    c->failing = 1;
    loop_timer_schedule(c->fail, 1);
}

static void pgconn_send_next(struct pgconn *c)
{
    struct pgconn_query *q = c->head;
    int ok, r;

    if (c->busy || !q || c->state != PGC_READY || c->failing)
        return;
    if (q->internal)
        ok = PQsendQuery(c->conn, q->sql);
    else if (q->kind == PGCONN_Q_PREPARE)
        ok = PQsendPrepare(c->conn, q->stmt, q->sql, 0, NULL);
    else if (q->kind == PGCONN_Q_PREPARED)
        ok = PQsendQueryPrepared(c->conn, q->stmt, q->nparams, (const char *const *)q->params,
                                 q->lengths, q->formats, 0);
    else
        ok = PQsendQueryParams(c->conn, q->sql, q->nparams, NULL,
                               (const char *const *)q->params, NULL, NULL, 0);
    if (!ok) {
        pgconn_fail_later(c);
        return;
    }
    c->busy = 1;
    r = PQflush(c->conn);
    if (r < 0)
        pgconn_fail_later(c);
    else if (r > 0)
        loop_watch_want_write(c->watch, pgconn_flush_cb);
}

static void pgconn_finish_query(struct pgconn *c)
{
    struct pgconn_query *q = pgconn_query_pop(c);
    PGresult *res = c->last;

    c->last = NULL;
    c->busy = 0;
    if (q && q->internal && res && PQresultStatus(res) != PGRES_COMMAND_OK)
        LOG(LOG_ERROR, "pgconn", "msg=\"LISTEN failed\" name=%s error=\"%s\"", c->name,
            log_text(PQresultErrorMessage(res)));
    if (q && q->cb)
        q->cb(c, res, q->ud);
    if (res)
        PQclear(res);
    pgconn_query_free(q);
}

static void pgconn_deliver_notifies(struct pgconn *c)
{
    PGnotify *n;

    while (c->conn && (n = PQnotifies(c->conn))) {
        if (c->cbs.on_notify)
            c->cbs.on_notify(c, n->relname, n->extra, c->ud);
        PQfreemem(n);
    }
}

static void pgconn_collect_results(struct pgconn *c)
{
    PGresult *res;

    while (c->state == PGC_READY && c->busy && !PQisBusy(c->conn)) {
        res = PQgetResult(c->conn);
        if (res) {
            if (c->last)
                PQclear(c->last);
            c->last = res;
            continue;
        }
        pgconn_finish_query(c);   /* may queue more queries from the callback */
        pgconn_send_next(c);
    }
}

static void pgconn_on_readable(void *ud)
{
    struct pgconn *c = ud;

    if (c->state == PGC_CONNECTING) {
        pgconn_connect_step(c);
        return;
    }
    if (c->state != PGC_READY)
        return;
    if (!PQconsumeInput(c->conn) || PQstatus(c->conn) == CONNECTION_BAD) {
        pgconn_lost(c, pgconn_error(c));
        return;
    }
    pgconn_deliver_notifies(c);
    pgconn_collect_results(c);
    pgconn_deliver_notifies(c);
}

struct pgconn *pgconn_new(struct bridge *b, const char *conninfo, const char *name,
                          const struct pgconn_callbacks *cbs, void *ud)
{
    struct pgconn *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->b = b;
    c->conninfo = conninfo ? strdup(conninfo) : NULL;
    c->name = strdup(name ? name : "pg");
    c->retry = loop_timer_new(b, pgconn_retry_cb, c);
    c->fail = loop_timer_new(b, pgconn_fail_cb, c);
    if ((conninfo && !c->conninfo) || !c->name || !c->retry || !c->fail)
        goto err;
    if (cbs)
        c->cbs = *cbs;
    c->ud = ud;
    loop_backoff_init(&c->backoff, 100000, 5000000);
    pgconn_start(c);
    return c;
err:
    loop_timer_free(c->retry);
    loop_timer_free(c->fail);
    free(c->name);
    free(c->conninfo);
    free(c);
    return NULL;
}

void pgconn_free(struct pgconn *c)
{
    size_t i;

    if (!c)
        return;
    c->state = PGC_CLOSED;
    pgconn_teardown(c);
    pgconn_fail_all(c);
    loop_timer_free(c->retry);
    loop_timer_free(c->fail);
    for (i = 0; i < c->nchannels; i++)
        free(c->channels[i]);
    free(c->channels);
    free(c->name);
    free(c->conninfo);
    free(c);
}

int pgconn_listen(struct pgconn *c, const char *channel)
{
    char **grown;

    if (!channel || !*channel || strlen(channel) > 63)
        return -1;
    grown = realloc(c->channels, (c->nchannels + 1) * sizeof *grown);
    if (!grown)
        return -1;
    c->channels = grown;
    c->channels[c->nchannels] = strdup(channel);
    if (!c->channels[c->nchannels])
        return -1;
    c->nchannels++;
    if (c->state == PGC_READY) {
        if (pgconn_queue_listen(c, channel) < 0)
            return -1;
        pgconn_send_next(c);
    }
    return 0;
}

static struct pgconn_query *pgconn_query_copy(const char *sql, int nparams,
                                              const char *const *params)
{
    struct pgconn_query *q = calloc(1, sizeof *q);
    int i;

    if (!q)
        return NULL;
    q->sql = strdup(sql);
    q->params = nparams > 0 ? calloc((size_t)nparams, sizeof *q->params) : NULL;
    if (!q->sql || (nparams > 0 && !q->params))
        goto err;
    q->nparams = nparams;
    for (i = 0; i < nparams; i++) {
        if (params[i] && !(q->params[i] = strdup(params[i])))
            goto err;
    }
    return q;
err:
    pgconn_query_free(q);
    return NULL;
}

static void pgconn_enqueue(struct pgconn *c, struct pgconn_query *q)
{
    pgconn_append(c, q);
    pgconn_send_next(c);
}

int pgconn_prepare(struct pgconn *c, const char *stmt, const char *sql, pgconn_result_cb cb,
                   void *ud)
{
    struct pgconn_query *q;

    if (c->state != PGC_READY || c->failing)
        return -1;
    q = pgconn_query_copy(sql, 0, NULL);
    if (q && !(q->stmt = strdup(stmt))) {
        pgconn_query_free(q);
        q = NULL;
    }
    if (!q)
        return -1;
    q->kind = PGCONN_Q_PREPARE;
    q->cb = cb;
    q->ud = ud;
    pgconn_enqueue(c, q);
    return 0;
}

/* params[i] copied with lengths[i] bytes when formats[i] is 1 (binary) */
static int pgconn_copy_params(struct pgconn_query *q, int nparams, const char *const *params,
                              const int *lengths, const int *formats)
{
    int i, bin;

    q->params = nparams > 0 ? calloc((size_t)nparams, sizeof *q->params) : NULL;
    q->lengths = nparams > 0 ? calloc((size_t)nparams, sizeof *q->lengths) : NULL;
    q->formats = nparams > 0 ? calloc((size_t)nparams, sizeof *q->formats) : NULL;
    if (nparams > 0 && (!q->params || !q->lengths || !q->formats))
        return -1;
    q->nparams = nparams;
    for (i = 0; i < nparams; i++) {
        bin = formats && formats[i] == 1;
        q->formats[i] = bin;
        if (!params[i])
            continue;
        q->lengths[i] = bin ? lengths[i] : 0;
        q->params[i] = bin ? malloc(lengths[i] > 0 ? (size_t)lengths[i] : 1) : strdup(params[i]);
        if (!q->params[i] || (bin && lengths[i] < 0))
            return -1;
        if (bin)
            memcpy(q->params[i], params[i], (size_t)lengths[i]);
    }
    return 0;
}

int pgconn_query_prepared(struct pgconn *c, const char *stmt, int nparams,
                          const char *const *params, const int *lengths, const int *formats,
                          pgconn_result_cb cb, void *ud)
{
    struct pgconn_query *q;

    if (c->state != PGC_READY || c->failing || nparams < 0)
        return -1;
    q = calloc(1, sizeof *q);
    if (!q)
        return -1;
    q->kind = PGCONN_Q_PREPARED;
    if (!(q->stmt = strdup(stmt)) || !(q->sql = strdup(""))
        || pgconn_copy_params(q, nparams, params, lengths, formats) < 0) {
        pgconn_query_free(q);
        return -1;
    }
    q->cb = cb;
    q->ud = ud;
    pgconn_enqueue(c, q);
    return 0;
}

int pgconn_query(struct pgconn *c, const char *sql, int nparams, const char *const *params,
                 pgconn_result_cb cb, void *ud)
{
    struct pgconn_query *q;

    if (c->state != PGC_READY || c->failing || nparams < 0)
        return -1;
    q = pgconn_query_copy(sql, nparams, params);
    if (!q)
        return -1;
    q->cb = cb;
    q->ud = ud;
    pgconn_enqueue(c, q);
    return 0;
}

int pgconn_result_int8(const PGresult *res, int64_t *out)
{
    const char *v;
    char *end;
    long long n;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        PQnfields(res) < 1 || PQgetisnull(res, 0, 0))
        return -1;
    v = PQgetvalue(res, 0, 0);
    errno = 0;
    n = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || errno != 0)
        return -1;
    *out = n;
    return 0;
}

int pgconn_is_ready(const struct pgconn *c)
{
    return c && c->state == PGC_READY && !c->failing;
}

const char *pgconn_state_name(const struct pgconn *c)
{
    static const char *const names[] = { "connecting", "ready", "backoff", "closed" };

    return c ? names[c->state] : "closed";
}

int pgconn_queue_length(const struct pgconn *c)
{
    return c ? c->qlen : 0;
}
