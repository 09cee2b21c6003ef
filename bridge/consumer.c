/*
 * consumer.c: owns the Kafka -> PostgreSQL consumers: one librdkafka group
 * member each, with partitions assigned from the offsets stored in
 * PostgreSQL (aegis.consumer_positions) and spread over CONSUMER_WORKERS
 * PostgreSQL connections; messages are encoded a batch at a time (consumer_batch.c)
 * and applied in one statement (handler effects, dead letters and offsets
 * in one transaction):
 * the fast path, a statement prepared once per connection around
 * aegis.consumer_claim, or aegis.consume_batch when the batch has dead
 * letters or the fast path failed; a failed batch is retried as it was.
 */
#define _GNU_SOURCE
#include "consumer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <libwebsockets.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"
#include "consumer_batch.h"
#include "kafka.h"
#include "log.h"
#include "loop.h"
#include "pgconn.h"

#define CONSUMER_BACKOFF_MIN_US 200000
#define CONSUMER_BACKOFF_MAX_US 10000000
/* PostgreSQL connections per consumer; partitions are spread over them
 * (3: measured 0.47 -> 0.68 of COPY at batch=100 over 2, bench/consume) */
#define CONSUMER_WORKERS 3

/* ------------------------------------------------------------------ */
/* one consumer: a group member, a PostgreSQL connection, one batch     */
/* ------------------------------------------------------------------ */

/* A batch: its messages (owned) and, once encoded, the statement's arguments. */
struct consumer_slot {
    rd_kafka_message_t **msgs;      /* at most cfg->batch */
    size_t n;
    unsigned gen;                   /* consumer gen the messages were polled in */
    int text_mode;                  /* values as JSON text: one subtransaction each */
    int slow;                       /* the fast path failed: aegis.consume_batch */
    int sent_fast;                  /* what is at PostgreSQL went the fast path */
    int encoded;
    struct consumer_batch enc;
};

/* A worker applies the partitions forwarded to its queue, on its own
 * PostgreSQL connection: partitions of one consumer are applied in parallel,
 * each one in order by exactly one worker. */
struct consumer_worker {
    struct consumer *c;
    int idx;
    struct pgconn *pg;
    rd_kafka_queue_t *queue;        /* its partitions' queues are forwarded here */
    int pipefd[2];
    struct loop_watch *watch;
    /* slot[cur] is at PostgreSQL or waits for its retry; the other one is
     * polled and encoded meanwhile, so the bridge works while PostgreSQL does */
    struct consumer_slot slot[2];
    int cur;
    int inflight;                   /* slot[cur] is at PostgreSQL */
    int prepared;                   /* the fast statement: 0 not yet, 1 queued/ok, -1 off */
    int fast_failures;              /* in a row: CONSUMER_FAST_FAILURES turn it off */
    struct loop_backoff backoff;    /* retries of a failed batch */
    int64_t retry_ms;               /* the last retry's delay (logged) */
    int64_t retry_after_us;         /* no send before this (after a failure) */
};

struct consumer {
    struct bridge *b;
    const struct config_consumer *cfg;
    char *handler;                  /* resolved: schema.func(pg_catalog.jsonb,pg_catalog.jsonb) */
    char *name;                     /* "consumer:<group>" for logs and pgconn */
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;        /* the consumer queue: rebalances and errors */
    int pipefd[2];
    struct loop_watch *watch;
    struct loop_timer *tick;        /* poll_timeout_ms safety poll; retry backoff */
    struct consumer_worker w[CONSUMER_WORKERS];
    unsigned gen;                   /* bumps on every rebalance */
    rd_kafka_topic_partition_list_t *pending;   /* assigned by the group, offsets unread */
    unsigned pending_gen;
    int pending_query;              /* the offsets query is queued */
    int64_t pending_retry_us;
    struct loop_backoff pending_backoff;   /* retries of the offsets query */
    rd_kafka_topic_partition_list_t *assigned;  /* what we assigned (with PG offsets) */
    int stopping;
    uint64_t handled, dead, skipped, batches;
};

struct consumer_set {
    struct consumer **v;
    size_t n;
};

static const char consumer_batch_sql[] =
    "SELECT aegis.consume_batch($1, $2::regprocedure, $3::jsonb, $4::jsonb, $5::jsonb)";

/* The fast path, prepared once per connection with the handler's name in it:
 * aegis.consumer_claim (an InitPlan, run once before the first handler call)
 * locks the offset rows, checks that nothing of the batch was applied and
 * moves next_offset; then the handler runs once per message, in order.  The
 * statement is its own transaction.  Any error: aegis.consume_batch. */
static const char consumer_fast_sql[] =
    "SELECT count(h) FROM (SELECT %s(x.v, x.m) FROM unnest($3::jsonb[], $4::jsonb[]) AS x(v, m)"
    " WHERE (SELECT aegis.consumer_claim($1, $2::jsonb))) h";
#define CONSUMER_FAST_STMT "aegis_consume"
/* fast statements failing in a row before a connection stops trying (a
 * missing privilege, say); poison or a fence fails one batch at a time */
#define CONSUMER_FAST_FAILURES 10
#define CONSUMER_HANDLER_ARGS "(pg_catalog.jsonb,pg_catalog.jsonb)"

static const char consumer_offsets_sql[] =
    "SELECT topic, partition, next_offset FROM aegis.consumer_positions($1, $2::jsonb)";

static void consumer_pump(struct consumer_worker *w);
static void consumer_pump_all(struct consumer *c);

static void consumer_log_pg_error(struct consumer *c, const char *what, const PGresult *res,
                                  int64_t retry_ms)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    LOG(LOG_ERROR, "consumer", "msg=\"%s\" group=%s sqlstate=%s error=\"%s\" retry_ms=%" PRId64,
        what, c->cfg->group, state ? log_text(state) : "-",
        log_text(res ? PQresultErrorMessage(res) : "connection lost"), retry_ms);
}

static void consumer_slot_drop(struct consumer_slot *s)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        rd_kafka_message_destroy(s->msgs[i]);
    s->n = 0;
    s->text_mode = 0;
    s->slow = 0;
    if (s->encoded)
        consumer_batch_free(&s->enc);
    s->encoded = 0;
}

/* drops what is not at PostgreSQL (after a revoke: the next owner reads it) */
static void consumer_drop_idle(struct consumer *c)
{
    int i;

    for (i = 0; i < CONSUMER_WORKERS; i++) {
        consumer_slot_drop(&c->w[i].slot[c->w[i].cur ^ 1]);
        if (!c->w[i].inflight)
            consumer_slot_drop(&c->w[i].slot[c->w[i].cur]);
    }
}

static void consumer_backoff(struct consumer_worker *w)
{
    int64_t ms = loop_backoff_next(&w->backoff) / 1000;

    w->retry_ms = ms;
    w->retry_after_us = loop_now_us() + ms * 1000;
    loop_timer_schedule(w->c->tick, ms * 1000);
}

/* ---- partition assignment from the offsets in PostgreSQL ---- */

static int consumer_owns(const struct consumer *c, const rd_kafka_message_t *m)
{
    return c->assigned
           && rd_kafka_topic_partition_list_find(c->assigned, rd_kafka_topic_name(m->rkt),
                                                 m->partition) != NULL;
}

/* partition i of the assignment goes to worker i % CONSUMER_WORKERS */
static int consumer_route(struct consumer *c, const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_queue_t *pq;
    int i;

    for (i = 0; i < parts->cnt; i++) {
        pq = rd_kafka_queue_get_partition(c->rk, parts->elems[i].topic, parts->elems[i].partition);
        if (!pq) {
            LOG(LOG_ERROR, "consumer", "msg=\"no queue for partition\" group=%s topic=%s partition=%d",
                c->cfg->group, parts->elems[i].topic, (int)parts->elems[i].partition);
            return -1;
        }
        rd_kafka_queue_forward(pq, c->w[i % CONSUMER_WORKERS].queue);
        rd_kafka_queue_destroy(pq);        /* our reference only; the forward stays */
    }
    return 0;
}

static void consumer_log_assigned(const struct consumer *c, const rd_kafka_topic_partition_list_t *l)
{
    char at[32];
    int i;

    for (i = 0; i < l->cnt; i++) {
        snprintf(at, sizeof at, "beginning");
        if (l->elems[i].offset >= 0)
            snprintf(at, sizeof at, "%" PRId64, l->elems[i].offset);
        LOG(LOG_INFO, "consumer", "msg=assigned group=%s topic=%s partition=%d offset=%s worker=%d",
            c->cfg->group, l->elems[i].topic, (int)l->elems[i].partition, at,
            i % CONSUMER_WORKERS);
    }
}

static int consumer_apply_offsets(struct consumer *c, const PGresult *res)
{
    rd_kafka_topic_partition_t *tp;
    rd_kafka_resp_err_t err;
    int i;

    for (i = 0; i < c->pending->cnt; i++)
        c->pending->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    for (i = 0; i < PQntuples(res); i++) {
        tp = rd_kafka_topic_partition_list_find(c->pending, PQgetvalue(res, i, 0),
                                                atoi(PQgetvalue(res, i, 1)));
        if (tp && !PQgetisnull(res, i, 2))
            tp->offset = strtoll(PQgetvalue(res, i, 2), NULL, 10);
    }
    if (consumer_route(c, c->pending) < 0)
        return -1;
    err = rd_kafka_assign(c->rk, c->pending);
    if (err) {
        LOG(LOG_ERROR, "consumer", "msg=\"assign failed\" group=%s error=\"%s\"", c->cfg->group,
            log_text(rd_kafka_err2str(err)));
        return -1;
    }
    consumer_log_assigned(c, c->pending);
    if (c->assigned)
        rd_kafka_topic_partition_list_destroy(c->assigned);
    c->assigned = c->pending;
    c->pending = NULL;
    return 0;
}

static void consumer_read_offsets(struct consumer *c);

static void consumer_offsets_retry(struct consumer *c, const char *why, const PGresult *res)
{
    int64_t ms = loop_backoff_next(&c->pending_backoff) / 1000;

    c->pending_retry_us = loop_now_us() + ms * 1000;
    loop_timer_schedule(c->tick, ms * 1000);
    consumer_log_pg_error(c, why, res, ms);
}

static void consumer_on_offsets(struct pgconn *pg, PGresult *res, void *ud)
{
    struct consumer *c = ud;

    (void)pg;
    c->pending_query = 0;
    if (c->stopping || !c->pending)
        return;                            /* stopping, or revoked meanwhile */
    if (c->pending_gen != c->gen) {
        consumer_read_offsets(c);          /* a newer assignment: read again */
        return;
    }
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        consumer_offsets_retry(c, "cannot read stored offsets", res);
        return;
    }
    if (consumer_apply_offsets(c, res) < 0) {
        consumer_offsets_retry(c, "cannot assign partitions", NULL);
        return;
    }
    loop_backoff_reset(&c->pending_backoff);
    consumer_pump_all(c);
}

/* [{"topic": t, "partition": p}, ...] of the pending assignment */
static char *consumer_pending_json(const struct consumer *c)
{
    json_t *a = json_array();
    char *s;
    int i;

    for (i = 0; a && i < c->pending->cnt; i++)
        json_array_append_new(a, json_pack("{s:s, s:i}", "topic", c->pending->elems[i].topic,
                                           "partition", (int)c->pending->elems[i].partition));
    s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

/* on worker 0's connection, behind its batch: that batch's offsets are read */
static void consumer_read_offsets(struct consumer *c)
{
    const char *params[2];
    char *parts;

    if (!c->pending || c->pending_query || !pgconn_is_ready(c->w[0].pg)
        || loop_now_us() < c->pending_retry_us)
        return;                            /* on_connected or the tick calls again */
    parts = consumer_pending_json(c);
    if (!parts)
        return;
    params[0] = c->cfg->group;
    params[1] = parts;
    if (pgconn_query(c->w[0].pg, consumer_offsets_sql, 2, params, consumer_on_offsets, c) == 0) {
        c->pending_query = 1;
        c->pending_gen = c->gen;
    }
    free(parts);
}

/* Called from rd_kafka_consumer_poll (the loop's thread).  Assignment waits
 * for the offsets stored in PostgreSQL; librdkafka allows assign() later. */
static void consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                  rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct consumer *c = opaque;

    c->gen++;
    if (c->pending)
        rd_kafka_topic_partition_list_destroy(c->pending);
    c->pending = NULL;
    c->pending_retry_us = 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && !c->stopping) {
        LOG(LOG_INFO, "consumer", "msg=\"partitions assigned by the group\" group=%s count=%d",
            c->cfg->group, parts->cnt);
        c->pending = rd_kafka_topic_partition_list_copy(parts);
        consumer_read_offsets(c);
        return;
    }
    LOG(LOG_INFO, "consumer", "msg=\"partitions revoked\" group=%s reason=\"%s\"", c->cfg->group,
        log_text(rd_kafka_err2str(err)));
    rd_kafka_assign(rk, NULL);
    if (c->assigned)
        rd_kafka_topic_partition_list_destroy(c->assigned);
    c->assigned = NULL;
    consumer_drop_idle(c);                 /* the next owner reads them from the stored offsets */
}

/* ---- batches ---- */

static int consumer_encode_one(struct consumer_batch *bt, const rd_kafka_message_t *km)
{
    rd_kafka_headers_t *hdrs = NULL;
    struct consumer_msg m;
    rd_kafka_timestamp_type_t tstype;
    const char **names = NULL;
    const void **values = NULL;
    size_t *sizes = NULL, i, n = 0;
    int rc = -1;

    memset(&m, 0, sizeof m);
    m.topic = rd_kafka_topic_name(km->rkt);
    m.partition = km->partition;
    m.offset = km->offset;
    m.key = km->key;
    m.key_len = km->key_len;
    m.value = km->payload;
    m.value_len = km->len;
    m.timestamp_ms = rd_kafka_message_timestamp(km, &tstype);
    if (rd_kafka_message_headers(km, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
        n = rd_kafka_header_cnt(hdrs);
    if (n) {
        names = calloc(n, sizeof *names);
        values = calloc(n, sizeof *values);
        sizes = calloc(n, sizeof *sizes);
        if (!names || !values || !sizes)
            goto out;
        for (i = 0; i < n; i++)
            if (rd_kafka_header_get_all(hdrs, i, &names[i], &values[i], &sizes[i]))
                goto out;
    }
    m.nheaders = n;
    m.header_names = names;
    m.header_values = values;
    m.header_sizes = sizes;
    rc = consumer_batch_add(bt, &m);
out:
    free(names);
    free(values);
    free(sizes);
    return rc;
}

static void consumer_on_batch(struct pgconn *pg, PGresult *res, void *ud);

/* the fast path unless it failed for this batch or this connection */
static int consumer_fast_ok(const struct consumer_worker *w, const struct consumer_slot *s)
{
    return !s->text_mode && !s->slow && w->prepared >= 0;
}

static int consumer_encode(struct consumer_worker *w, struct consumer_slot *s)
{
    struct consumer *c = w->c;
    size_t i;
    int rc = 0;

    if (s->encoded)
        consumer_batch_free(&s->enc);
    s->encoded = 0;
    consumer_batch_init(&s->enc, s->text_mode      ? CONSUMER_TEXT
                                 : consumer_fast_ok(w, s) ? CONSUMER_FAST
                                                          : CONSUMER_EMBED);
    for (i = 0; rc == 0 && i < s->n; i++)
        rc = consumer_encode_one(&s->enc, s->msgs[i]);
    if (rc == 0)
        rc = consumer_batch_finish(&s->enc);
    if (rc < 0) {
        consumer_batch_free(&s->enc);
        LOG(LOG_ERROR, "consumer", "msg=\"out of memory encoding a batch\" group=%s",
            c->cfg->group);
        return -1;
    }
    s->encoded = 1;
    return 0;
}

static void consumer_on_prepared(struct pgconn *pg, PGresult *res, void *ud)
{
    struct consumer_worker *w = ud;

    (void)pg;
    if (!res || PQresultStatus(res) == PGRES_COMMAND_OK)
        return;                            /* lost: on_connected prepares again */
    w->prepared = -1;
    LOG(LOG_WARN, "consumer", "msg=\"fast path refused, using aegis.consume_batch\" group=%s "
        "worker=%d error=\"%s\"", w->c->cfg->group, w->idx, log_text(PQresultErrorMessage(res)));
}

/* queues the fast statement's preparation (once per connection) */
static int consumer_prepare(struct consumer_worker *w)
{
    size_t n = strlen(w->c->handler), k = strlen(CONSUMER_HANDLER_ARGS);
    char *name, *sql = NULL;
    int rc = -1;

    if (n <= k || strcmp(w->c->handler + n - k, CONSUMER_HANDLER_ARGS) != 0)
        return -1;                         /* not from consumer_check_handler */
    name = strndup(w->c->handler, n - k);
    if (name && asprintf(&sql, consumer_fast_sql, name) >= 0)
        rc = pgconn_prepare(w->pg, CONSUMER_FAST_STMT, sql, consumer_on_prepared, w);
    free(name);
    free(sql);
    return rc;
}

/* the batch through the prepared statement; -1: send it to consume_batch */
static int consumer_send_fast(struct consumer_worker *w, struct consumer_slot *s)
{
    static const int formats[4] = { 0, 0, 1, 1 };
    const char *params[4];
    int lengths[4] = { 0, 0, 0, 0 };

    if (w->prepared == 0) {
        if (consumer_prepare(w) < 0) {
            w->prepared = pgconn_is_ready(w->pg) ? -1 : 0;
            return -1;
        }
        w->prepared = 1;
    }
    params[0] = w->c->cfg->group;
    params[1] = s->enc.positions.p;
    params[2] = s->enc.messages.p;
    params[3] = s->enc.metas.p;
    lengths[2] = (int)s->enc.messages.len;
    lengths[3] = (int)s->enc.metas.len;
    if (s->enc.messages.len > INT32_MAX || s->enc.metas.len > INT32_MAX)
        return -1;
    if (pgconn_query_prepared(w->pg, CONSUMER_FAST_STMT, 4, params, lengths, formats,
                              consumer_on_batch, w) < 0)
        return 1;                          /* on_connected pumps again */
    s->sent_fast = 1;
    w->inflight = 1;
    return 0;
}

static void consumer_send(struct consumer_worker *w)
{
    struct consumer_slot *s = &w->slot[w->cur];
    const char *params[5];
    int rc;

    if (s->encoded && s->enc.fast != consumer_fast_ok(w, s))
        s->encoded = (consumer_batch_free(&s->enc), 0);
    if (!s->encoded && consumer_encode(w, s) < 0) {
        consumer_backoff(w);
        return;
    }
    if (s->enc.fast && s->enc.ndead == 0) {
        rc = consumer_send_fast(w, s);
        if (rc >= 0)
            return;
    }
    if (s->enc.fast) {                     /* dead letters, or no fast statement */
        s->slow = 1;
        if (consumer_encode(w, s) < 0) {
            consumer_backoff(w);
            return;
        }
    }
    s->sent_fast = 0;
    params[0] = w->c->cfg->group;
    params[1] = w->c->handler;
    params[2] = s->enc.positions.p;
    params[3] = s->enc.messages.p;
    params[4] = s->enc.dead.p;
    if (pgconn_query(w->pg, consumer_batch_sql, 5, params, consumer_on_batch, w) == 0)
        w->inflight = 1;                   /* else: on_connected pumps again */
}

static void consumer_slot_text_mode(struct consumer_slot *s)
{
    s->text_mode = 1;
    if (s->encoded)
        consumer_batch_free(&s->enc);
    s->encoded = 0;
}

static void consumer_slot_slow(struct consumer_worker *w, struct consumer_slot *s,
                               const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    LOG(LOG_DEBUG, "consumer", "msg=\"fast path failed, batch goes to aegis.consume_batch\" "
        "group=%s worker=%d sqlstate=%s error=\"%s\"", w->c->cfg->group, w->idx,
        state ? log_text(state) : "-", log_text(PQresultErrorMessage(res)));
    if (state && strcmp(state, "26000") == 0 && w->prepared == 1)
        w->prepared = 0;                   /* the statement is gone: prepare it again */
    if (++w->fast_failures >= CONSUMER_FAST_FAILURES && w->prepared == 1) {
        w->prepared = -1;
        LOG(LOG_WARN, "consumer", "msg=\"fast path failed %d times in a row, using "
            "aegis.consume_batch until reconnected\" group=%s worker=%d sqlstate=%s",
            w->fast_failures, w->c->cfg->group, w->idx, state ? state : "-");
    }
    s->slow = 1;
    s->sent_fast = 0;
    if (s->encoded)
        consumer_batch_free(&s->enc);
    s->encoded = 0;
}

static void consumer_batch_done(struct consumer_worker *w, const PGresult *res)
{
    struct consumer *c = w->c;
    struct consumer_slot *s = &w->slot[w->cur];
    json_t *r = s->sent_fast ? NULL : json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    json_int_t handled = json_integer_value(json_object_get(r, "handled"));
    json_int_t dead = json_integer_value(json_object_get(r, "dead"));
    json_int_t skipped = json_integer_value(json_object_get(r, "skipped"));

    if (json_object_get(r, "retry")) {
        json_decref(r);
        consumer_slot_text_mode(s);        /* a handler failed: again, one by one */
        LOG(LOG_DEBUG, "consumer", "msg=\"batch retried in text mode\" group=%s", c->cfg->group);
        return;
    }
    json_decref(r);
    if (s->sent_fast) {
        handled = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        w->fast_failures = 0;
    }
    c->handled += (uint64_t)handled;
    c->dead += (uint64_t)dead;
    c->skipped += (uint64_t)skipped;
    c->batches++;
    if (dead)
        LOG(LOG_WARN, "consumer", "msg=\"messages went to the dead letters\" group=%s count=%lld",
            c->cfg->group, (long long)dead);
    LOG(LOG_DEBUG, "consumer",
        "msg=batch group=%s worker=%d path=%s messages=%zu handled=%lld dead=%lld skipped=%lld",
        c->cfg->group, w->idx, s->sent_fast ? "fast" : "consume_batch", s->n, (long long)handled,
        (long long)dead, (long long)skipped);
    consumer_slot_drop(s);
    w->cur ^= 1;                           /* the prepared batch goes next */
    loop_backoff_reset(&w->backoff);
}

static void consumer_on_batch(struct pgconn *pg, PGresult *res, void *ud)
{
    struct consumer_worker *w = ud;
    struct consumer_slot *s = &w->slot[w->cur];
    const char *state;

    (void)pg;
    w->inflight = 0;
    if (w->c->stopping)
        return;
    if (s->gen != w->c->gen) {
        consumer_slot_drop(s);             /* revoked while in flight */
    } else if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        consumer_batch_done(w, res);
    } else if (res && s->sent_fast) {
        consumer_slot_slow(w, s, res);     /* rolled back: consume_batch sorts it out */
    } else {
        state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (res && !s->text_mode && state && strncmp(state, "22", 2) == 0) {
            consumer_slot_text_mode(s);    /* a value PostgreSQL cannot take as jsonb */
        } else {
            consumer_backoff(w);
            consumer_log_pg_error(w->c, "batch failed, will retry it", res, w->retry_ms);
            return;
        }
    }
    consumer_pump(w);
}

/* ---- the loop side ---- */

static void consumer_kafka_error(struct consumer *c, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    LOG(LOG_WARN, "consumer", "msg=\"kafka consumer error\" group=%s topic=%s error=\"%s\"",
        c->cfg->group, m->rkt ? rd_kafka_topic_name(m->rkt) : "-",
        log_text(rd_kafka_err2str(m->err)));
}

static void consumer_fill(struct consumer_worker *w, struct consumer_slot *s)
{
    struct consumer *c = w->c;
    size_t cap = (size_t)c->cfg->batch, i, got;
    ssize_t n;

    while (s->n < cap && !c->stopping) {
        n = rd_kafka_consume_batch_queue(w->queue, 0, s->msgs + s->n, cap - s->n);
        if (n <= 0)
            break;
        for (got = s->n, i = s->n; i < s->n + (size_t)n; i++) {
            rd_kafka_message_t *m = s->msgs[i];
            if (m->err)
                consumer_kafka_error(c, m);
            if (!m->err && consumer_owns(c, m))
                s->msgs[got++] = m;
            else
                rd_kafka_message_destroy(m);
        }
        s->n = got;
    }
    s->gen = c->gen;
}

/* Serves the consumer queue: rebalances, errors.  A message there means a
 * partition that was not forwarded to a worker: reassign from the stored
 * offsets (nothing is skipped; fencing in consume_batch drops repeats). */
static void consumer_serve_main(struct consumer *c)
{
    rd_kafka_message_t *m;

    while (!c->stopping && (m = rd_kafka_consumer_poll(c->rk, 0)) != NULL) {
        if (m->err) {
            consumer_kafka_error(c, m);
        } else if (c->assigned && !c->pending) {
            LOG(LOG_WARN, "consumer", "msg=\"message outside the workers, reassigning\" group=%s",
                c->cfg->group);
            c->gen++;
            c->pending = rd_kafka_topic_partition_list_copy(c->assigned);
            consumer_drop_idle(c);
            consumer_read_offsets(c);
        }
        rd_kafka_message_destroy(m);
    }
}

static void consumer_drain_pipe(int fd)
{
    char buf[64];

    while (read(fd, buf, sizeof buf) > 0)
        ;
}

/* Sends the worker's current batch unless one is at PostgreSQL or a retry
 * waits for its time; meanwhile polls and encodes the next one. */
static void consumer_pump(struct consumer_worker *w)
{
    struct consumer_slot *s = &w->slot[w->cur], *next = &w->slot[w->cur ^ 1];

    if (w->c->stopping)
        return;
    if (!w->inflight) {
        if (s->n == 0 && next->n > 0) {
            w->cur ^= 1;
            s = next;
            next = &w->slot[w->cur ^ 1];
        }
        if (s->n > 0 && s->gen != w->c->gen)
            consumer_slot_drop(s);
        if (s->n == 0)
            consumer_fill(w, s);
        if (s->n > 0 && loop_now_us() >= w->retry_after_us && pgconn_is_ready(w->pg))
            consumer_send(w);
    }
    if (w->inflight && next->n == 0) {
        consumer_fill(w, next);
        if (next->n > 0)
            consumer_encode(w, next);
    }
}

static void consumer_pump_all(struct consumer *c)
{
    int i;

    for (i = 0; i < CONSUMER_WORKERS; i++)
        consumer_pump(&c->w[i]);
}

static void consumer_on_readable(void *ud)
{
    struct consumer *c = ud;

    consumer_drain_pipe(c->pipefd[0]);
    consumer_serve_main(c);
}

static void consumer_worker_on_readable(void *ud)
{
    struct consumer_worker *w = ud;

    consumer_drain_pipe(w->pipefd[0]);
    consumer_pump(w);
}

static void consumer_on_tick(void *ud)
{
    struct consumer *c = ud;
    int64_t wait_us = (int64_t)c->cfg->poll_timeout_ms * 1000, now = loop_now_us();
    int i;

    consumer_serve_main(c);
    consumer_pump_all(c);
    if (c->pending && !c->pending_query)
        consumer_read_offsets(c);
    for (i = 0; i < CONSUMER_WORKERS; i++)
        if (c->w[i].retry_after_us > now && c->w[i].retry_after_us - now < wait_us)
            wait_us = c->w[i].retry_after_us - now;
    if (c->pending_retry_us > now && c->pending_retry_us - now < wait_us)
        wait_us = c->pending_retry_us - now;
    loop_timer_schedule(c->tick, wait_us);
}

static void consumer_on_connected(struct pgconn *pg, void *ud)
{
    struct consumer_worker *w = ud;

    (void)pg;
    w->prepared = 0;                       /* a new session: no prepared statement */
    w->fast_failures = 0;
    LOG(LOG_INFO, "consumer", "msg=\"PostgreSQL connected\" group=%s worker=%d",
        w->c->cfg->group, w->idx);
    if (w->idx == 0)
        consumer_read_offsets(w->c);
    consumer_pump(w);
}

static void consumer_on_lost(struct pgconn *pg, void *ud)
{
    struct consumer_worker *w = ud;

    (void)pg;
    LOG(LOG_WARN, "consumer", "msg=\"PostgreSQL connection lost\" group=%s worker=%d",
        w->c->cfg->group, w->idx);
}

static void consumer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct consumer *c = opaque;

    (void)rk;
    LOG(LOG_WARN, "consumer", "msg=\"kafka error\" group=%s error=\"%s\" reason=\"%s\"",
        c->cfg->group, log_text(rd_kafka_err2str((rd_kafka_resp_err_t)err)), log_text(reason));
}

static void consumer_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    LOG(kafka_log_level(level), "consumer", "msg=librdkafka facility=\"%s\" text=\"%s\"",
        log_text(fac), log_text(buf));
}

/* ---- creation ---- */

static int consumer_conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char *err = NULL;

    if (kafka_conf_set(conf, k, v, "consumer", &err) == 0)
        return 0;
    LOG(LOG_ERROR, "consumer", "msg=\"bad Kafka property\" property=\"%s\" error=\"%s\"",
        log_text(k), err ? log_text(err) : "out of memory");
    free(err);
    return -1;
}

static rd_kafka_conf_t *consumer_conf(struct consumer *c)
{
    const struct bridge_config *cfg = &c->b->cfg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    size_t i;
    int rc = 0;

    rc |= consumer_conf_set(conf, "topic.metadata.refresh.interval.ms", "10000");
    for (i = 0; i < cfg->nrdkafka_props; i++)
        rc |= consumer_conf_set(conf, cfg->rdkafka_props[i].key, cfg->rdkafka_props[i].value);
    /* what exactly-once through PostgreSQL needs, whatever -X said */
    rc |= consumer_conf_set(conf, "bootstrap.servers", cfg->kafka_bootstrap_servers);
    rc |= consumer_conf_set(conf, "group.id", c->cfg->group);
    rc |= consumer_conf_set(conf, "enable.auto.commit", "false");
    rc |= consumer_conf_set(conf, "enable.auto.offset.store", "false");
    rc |= consumer_conf_set(conf, "auto.offset.reset", "earliest");
    rc |= consumer_conf_set(conf, "partition.assignment.strategy", "range,roundrobin");
    if (rc) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_rebalance_cb(conf, consumer_rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, consumer_error_cb);
    rd_kafka_conf_set_log_cb(conf, consumer_log_cb);
    return conf;
}

static int consumer_subscribe(struct consumer *c)
{
    rd_kafka_topic_partition_list_t *topics;
    rd_kafka_resp_err_t err;
    size_t i;

    topics = rd_kafka_topic_partition_list_new((int)c->cfg->ntopics);
    for (i = 0; i < c->cfg->ntopics; i++)
        rd_kafka_topic_partition_list_add(topics, c->cfg->topics[i], RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        LOG(LOG_ERROR, "consumer", "msg=\"cannot subscribe\" group=%s error=\"%s\"",
            c->cfg->group, log_text(rd_kafka_err2str(err)));
        return -1;
    }
    return 0;
}

/* a queue whose wake-ups arrive on a non-blocking pipe watched by the loop */
static int consumer_queue_watch(struct consumer *c, rd_kafka_queue_t *q, int pipefd[2],
                                struct loop_watch **watch, loop_fd_cb cb, void *ud)
{
    if (!q || pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    rd_kafka_queue_io_event_enable(q, pipefd[1], "1", 1);
    *watch = loop_watch_fd(c->b, pipefd[0], cb, ud);
    return *watch ? 0 : -1;
}

static int consumer_worker_start(struct consumer *c, int idx)
{
    static const struct pgconn_callbacks cbs = { consumer_on_connected, NULL, consumer_on_lost };
    struct consumer_worker *w = &c->w[idx];
    char *name = NULL;

    w->c = c;
    w->idx = idx;
    w->slot[0].msgs = calloc((size_t)c->cfg->batch, sizeof *w->slot[0].msgs);
    w->slot[1].msgs = calloc((size_t)c->cfg->batch, sizeof *w->slot[1].msgs);
    if (!w->slot[0].msgs || !w->slot[1].msgs)
        return -1;
    w->queue = rd_kafka_queue_new(c->rk);
    if (consumer_queue_watch(c, w->queue, w->pipefd, &w->watch, consumer_worker_on_readable, w) < 0)
        return -1;
    if (asprintf(&name, "%s/%d", c->name, idx) < 0)
        return -1;
    w->pg = pgconn_new(c->b, c->b->cfg.database_url, name, &cbs, w);
    free(name);
    return w->pg ? 0 : -1;
}

static int consumer_kafka_start(struct consumer *c)
{
    char errstr[512];
    rd_kafka_conf_t *conf = consumer_conf(c);
    int i;

    if (!conf)
        return -1;
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        LOG(LOG_ERROR, "consumer", "msg=\"cannot create Kafka consumer\" group=%s error=\"%s\"",
            c->cfg->group, log_text(errstr));
        return -1;
    }
    rd_kafka_poll_set_consumer(c->rk);
    c->queue = rd_kafka_queue_get_consumer(c->rk);
    if (consumer_queue_watch(c, c->queue, c->pipefd, &c->watch, consumer_on_readable, c) < 0)
        return -1;
    for (i = 0; i < CONSUMER_WORKERS; i++)
        if (consumer_worker_start(c, i) < 0)
            return -1;
    return consumer_subscribe(c);
}

static void consumer_close_pipe(int pipefd[2])
{
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
}

static void consumer_free(struct consumer *c)
{
    int i;

    if (!c)
        return;
    c->stopping = 1;
    loop_watch_free(c->watch);
    loop_timer_free(c->tick);
    for (i = 0; i < CONSUMER_WORKERS; i++) {
        loop_watch_free(c->w[i].watch);
        pgconn_free(c->w[i].pg);           /* a batch in flight commits or aborts as a whole */
        consumer_slot_drop(&c->w[i].slot[0]);
        consumer_slot_drop(&c->w[i].slot[1]);
    }
    if (c->rk) {
        rd_kafka_consumer_close(c->rk);    /* leaves the group: the others take over */
        if (c->pending)
            rd_kafka_topic_partition_list_destroy(c->pending);
        if (c->assigned)
            rd_kafka_topic_partition_list_destroy(c->assigned);
        for (i = 0; i < CONSUMER_WORKERS; i++)
            if (c->w[i].queue)
                rd_kafka_queue_destroy(c->w[i].queue);
        if (c->queue)
            rd_kafka_queue_destroy(c->queue);
        rd_kafka_destroy(c->rk);
    }
    consumer_close_pipe(c->pipefd);
    for (i = 0; i < CONSUMER_WORKERS; i++) {
        consumer_close_pipe(c->w[i].pipefd);
        free(c->w[i].slot[0].msgs);
        free(c->w[i].slot[1].msgs);
    }
    LOG(LOG_INFO, "consumer", "msg=stopped group=%s batches=%" PRIu64 " handled=%" PRIu64
        " dead=%" PRIu64 " skipped=%" PRIu64, c->cfg->group, c->batches, c->handled, c->dead,
        c->skipped);
    free(c->handler);
    free(c->name);
    free(c);
}

static struct consumer *consumer_new(struct bridge *b, const struct config_consumer *cfg,
                                     const char *handler)
{
    struct consumer *c = calloc(1, sizeof *c);
    int i;

    if (!c)
        return NULL;
    c->b = b;
    c->cfg = cfg;
    c->pipefd[0] = c->pipefd[1] = -1;
    loop_backoff_init(&c->pending_backoff, CONSUMER_BACKOFF_MIN_US, CONSUMER_BACKOFF_MAX_US);
    for (i = 0; i < CONSUMER_WORKERS; i++) {
        c->w[i].pipefd[0] = c->w[i].pipefd[1] = -1;
        loop_backoff_init(&c->w[i].backoff, CONSUMER_BACKOFF_MIN_US, CONSUMER_BACKOFF_MAX_US);
    }
    c->handler = strdup(handler);
    if (asprintf(&c->name, "consumer:%s", cfg->group) < 0)
        c->name = NULL;
    if (!c->handler || !c->name)
        goto err;
    c->tick = loop_timer_new(b, consumer_on_tick, c);
    if (!c->tick || consumer_kafka_start(c) < 0)
        goto err;
    loop_timer_schedule(c->tick, (int64_t)cfg->poll_timeout_ms * 1000);
    LOG(LOG_INFO, "consumer", "msg=started group=%s handler=%s batch=%d topics=%zu workers=%d",
        cfg->group, c->handler, cfg->batch, cfg->ntopics, CONSUMER_WORKERS);
    return c;
err:
    consumer_free(c);
    return NULL;
}

/* ---- start and stop ---- */

/* Resolves every handler with aegis.consumer_check_handler, blocking, before
 * the loop runs: a missing handler or a wrong signature stops the start. */
static int consumers_check_handlers(struct bridge *b, char **resolved)
{
    const char *keys[] = { "dbname", "connect_timeout", "application_name", NULL };
    const char *vals[] = { b->cfg.database_url, "10", "aegis-bridge consumer check", NULL };
    PGconn *conn;
    PGresult *res;
    size_t i;
    int rc = 0;

    conn = PQconnectdbParams(b->cfg.database_url ? keys : keys + 1,
                             b->cfg.database_url ? vals : vals + 1, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        LOG(LOG_ERROR, "consumer",
            "msg=\"cannot check consumer handlers: PostgreSQL unreachable\" error=\"%s\"",
            log_text(PQerrorMessage(conn)));
        PQfinish(conn);
        return -1;
    }
    for (i = 0; i < b->cfg.nconsumers; i++) {
        const char *param = b->cfg.consumers[i].handler;
        res = PQexecParams(conn, "SELECT aegis.consumer_check_handler($1)", 1, NULL, &param, NULL,
                           NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
            resolved[i] = strdup(PQgetvalue(res, 0, 0));
        } else {
            LOG(LOG_ERROR, "consumer",
                "msg=\"consumer handler refused\" group=%s handler=%s error=\"%s\"",
                b->cfg.consumers[i].group, param,
                log_text(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)));
            rc = -1;
        }
        PQclear(res);
    }
    PQfinish(conn);
    return rc;
}

int consumers_start(struct bridge *b)
{
    struct consumer_set *set;
    char **resolved;
    size_t i;
    int rc = 0;

    if (b->cfg.nconsumers == 0)
        return 0;
    if (!b->cfg.kafka_bootstrap_servers) {
        LOG(LOG_ERROR, "consumer",
            "msg=\"consumers need Kafka: set KAFKA_BOOTSTRAP_SERVERS\" consumers=%zu",
            b->cfg.nconsumers);
        return -1;
    }
    resolved = calloc(b->cfg.nconsumers, sizeof *resolved);
    set = calloc(1, sizeof *set);
    if (set)
        set->v = calloc(b->cfg.nconsumers, sizeof *set->v);
    if (!resolved || !set || !set->v || consumers_check_handlers(b, resolved) < 0)
        rc = -1;
    for (i = 0; rc == 0 && i < b->cfg.nconsumers; i++) {
        set->v[i] = consumer_new(b, &b->cfg.consumers[i], resolved[i]);
        if (!set->v[i])
            rc = -1;
        else
            set->n = i + 1;
    }
    for (i = 0; resolved && i < b->cfg.nconsumers; i++)
        free(resolved[i]);
    free(resolved);
    if (set)
        b->consumers = set;
    if (rc < 0)
        consumers_stop(b);
    return rc;
}

void consumers_stop(struct bridge *b)
{
    struct consumer_set *set = b->consumers;
    size_t i;

    if (!set)
        return;
    for (i = 0; i < set->n; i++)
        consumer_free(set->v[i]);
    free(set->v);
    free(set);
    b->consumers = NULL;
}
