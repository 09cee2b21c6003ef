/*
 * drain.c: the PostgreSQL -> Kafka drain (see drain.h).  Owns its own
 * PostgreSQL connection (advisory lock, LISTEN aegis_events, reads, cursor),
 * the producer's lifetime (created when the lock is won, recreated after a
 * fatal error or a failed delivery, rewinding to the acknowledged prefix),
 * topic creation before the first produce to a topic, the dead letters
 * (an event Kafka refuses for good, or for a topic outside --topic-allow, is
 * recorded with aegis.drain_dead_letter and passed), and the shutdown flush.
 */
#define _GNU_SOURCE
#include "drain.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ackwin.h"
#include "bridge.h"
#include "kafka.h"
#include "log.h"
#include "loop.h"
#include "pgconn.h"

#define DRAIN_LOCK_SQL "SELECT pg_try_advisory_lock(1095059273, 1)"
#define DRAIN_CURSOR_SQL "SELECT aegis.cursor_position('kafka-drain')"
#define DRAIN_ADVANCE_SQL "SELECT aegis.cursor_advance('kafka-drain', $1::bigint)"
#define DRAIN_TOPIC_SQL "SELECT partitions, replication_factor FROM aegis.topic_settings($1)"
#define DRAIN_READ_SQL \
    "SELECT id, topic, key, headers::text, event_type, payload::text " \
    "FROM aegis.read_topic_events($1::bigint, $2::int)"
#define DRAIN_CHANNEL "aegis_events"
#define DRAIN_DEAD_LETTER_SQL "SELECT aegis.drain_dead_letter($1::bigint, $2)"

#define DRAIN_LOCK_RETRY_US 2000000        /* standby: try the lock again */
#define DRAIN_CURSOR_DELAY_US 100000       /* cursor writes at most every 100 ms, */
#define DRAIN_CURSOR_IDLE_US 20000         /* or 20 ms once everything produced is acknowledged */
#define DRAIN_POLL_US 2000000              /* safety-net read without a wake-up */
#define DRAIN_BACKOFF_MIN_US 500000
#define DRAIN_BACKOFF_MAX_US 30000000
#define DRAIN_WINDOW_BATCHES 50            /* in-flight bound: 50 batches, */
#define DRAIN_WINDOW_MIN 1024              /* at least this, */
#define DRAIN_WINDOW_MAX 100000            /* at most librdkafka's default queue size */
#define DRAIN_RESTART_WAIT_MS 2000
#define DRAIN_DEFAULT_PARTITIONS 3
#define DRAIN_DEFAULT_RF 1
#define DRAIN_READS_MAX 8                  /* reads queued on the connection, all generations */

enum drain_phase {
    DRAIN_WAIT_PG,     /* no PostgreSQL connection */
    DRAIN_LOCKING,     /* lock query in flight */
    DRAIN_STANDBY,     /* another bridge drains: the lock is tried again */
    DRAIN_RETRY,       /* the cursor could not be read: tried again */
    DRAIN_LOADING,     /* cursor query in flight */
    DRAIN_ACTIVE,
    DRAIN_STOPPING,
};

struct drain {
    struct bridge *b;
    struct pgconn *pg;
    struct kafka *k;                  /* NULL while not active or between producers */
    struct loop_watch *kwatch;
    struct loop_timer *t_lock, *t_cursor, *t_poll, *t_restart, *t_topic;
    enum drain_phase phase;
    int ever_active;
    int have_lock;                    /* this session holds the advisory lock */
    int standby_logged;
    struct ackwin win;
    int64_t read_pos;                 /* last event id handed to the producer */
    int64_t stored;                   /* cursor as last written to PostgreSQL */
    unsigned gen;                     /* bumped when in-flight work is abandoned */
    struct {
        int64_t after;                /* the read's start position */
        unsigned gen;
    } reads[DRAIN_READS_MAX];         /* reads in flight, in pgconn's (FIFO) order */
    unsigned reads_head, reads_n;
    int reading;                      /* reads of the current generation in flight */
    int want_read, cursor_busy, cursor_armed;
    int64_t cursor_written_us;        /* when the last cursor update was sent */
    int kafka_full;                   /* producer queue full: wait for reports */
    char *restart_reason;             /* set from kafka callbacks, acted on after serving */
    struct loop_backoff backoff;      /* producer restarts */
    char **topics;                    /* topics known to exist for this producer */
    size_t ntopics, captopics;
    char *ensuring;                   /* topic being created */
    struct loop_backoff topic_backoff;
    uint64_t produced, delivered, failed, restarts;
    uint64_t failed_here;             /* failed deliveries of the current producer */
    int64_t isolate_until;            /* after a permanent error: one event at a time up to here */
    uint64_t dead_letters;
};

/* a dead letter being recorded: through the window (seq) or, after a
 * producer restart, by moving the acknowledged position past id */
struct drain_dead {
    struct drain *d;
    int64_t id;
    uint64_t seq;
    unsigned gen;
    int via_window;
};

static void drain_maybe_read(struct drain *d);
static void drain_read_done(struct pgconn *c, PGresult *res, void *ud);
static void drain_restart_producer(struct drain *d, const char *reason);
static void drain_try_lock(struct drain *d);
static void drain_cursor_arm(struct drain *d);
static int drain_isolating(const struct drain *d);
static void drain_dead_letter(struct drain *d, int64_t id, const char *topic, const char *why,
                              uint64_t seq, int via_window);

/* ---- topics known to exist ---- */

static int drain_topic_known(struct drain *d, const char *topic)
{
    size_t i;
    for (i = 0; i < d->ntopics; i++)
        if (strcmp(d->topics[i], topic) == 0)
            return 1;
    return 0;
}

static int drain_topic_add(struct drain *d, const char *topic)
{
    char **grown;
    if (d->ntopics == d->captopics) {
        size_t cap = d->captopics ? d->captopics * 2 : 8;
        grown = realloc(d->topics, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        d->topics = grown;
        d->captopics = cap;
    }
    d->topics[d->ntopics] = strdup(topic);
    if (d->topics[d->ntopics] == NULL)
        return -1;
    d->ntopics++;
    return 0;
}

static void drain_topics_clear(struct drain *d)
{
    size_t i;
    for (i = 0; i < d->ntopics; i++)
        free(d->topics[i]);
    d->ntopics = 0;
    free(d->ensuring);
    d->ensuring = NULL;
    loop_timer_cancel(d->t_topic);
}

/* ---- the durable cursor ---- */

static void drain_cursor_done(struct pgconn *c, PGresult *res, void *ud)
{
    struct drain *d = ud;
    (void)c;
    d->cursor_busy = 0;
    if (pgconn_result_int8(res, &d->stored) < 0) {
        if (res != NULL)
            LOG(LOG_WARN, "drain", "msg=cursor_advance_failed error=\"%s\"",
                log_text(PQresultErrorMessage(res)));
        return;
    }
    if (d->win.acked > d->stored && d->phase == DRAIN_ACTIVE)
        drain_cursor_arm(d);
}

static void drain_cursor_timer(void *ud)
{
    struct drain *d = ud;
    char pos[24];
    const char *params[1] = {pos};

    d->cursor_armed = 0;
    if (d->phase != DRAIN_ACTIVE || d->cursor_busy || d->win.acked <= d->stored)
        return;
    snprintf(pos, sizeof(pos), "%" PRId64, d->win.acked);
    if (pgconn_query(d->pg, DRAIN_ADVANCE_SQL, 1, params, drain_cursor_done, d) == 0) {
        d->cursor_busy = 1;
        d->cursor_written_us = loop_now_us();
    }
}

/* Writes at most one cursor update per DRAIN_CURSOR_DELAY_US while events
 * are in flight, and without delay when the last one is older than that.
 * Once the window is empty (a burst fully acknowledged) the gap shrinks to
 * DRAIN_CURSOR_IDLE_US, re-arming a pending timer: the end of a burst is
 * stored at once instead of up to 100 ms later. */
static void drain_cursor_arm(struct drain *d)
{
    int idle = ackwin_count(&d->win) == 0;
    int64_t delay;
    if (d->cursor_busy || (d->cursor_armed && !idle))
        return;
    delay = d->cursor_written_us + (idle ? DRAIN_CURSOR_IDLE_US : DRAIN_CURSOR_DELAY_US) -
            loop_now_us();
    d->cursor_armed = 1;
    loop_timer_schedule(d->t_cursor, delay > 0 ? delay : 1);
}

/* Shutdown: one blocking write on a short-lived connection. */
static void drain_cursor_store_now(struct drain *d)
{
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {d->b->cfg.database_url ? d->b->cfg.database_url : "", "5",
                          "aegis-bridge-drain-final", NULL};
    char pos[24];
    const char *params[1] = {pos};
    PGconn *conn;
    PGresult *res;

    if (d->win.acked <= d->stored)
        return;
    snprintf(pos, sizeof(pos), "%" PRId64, d->win.acked);
    conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        LOG(LOG_WARN, "drain", "msg=cursor_not_stored position=%s reason=\"%s\"", pos,
            log_text(PQerrorMessage(conn)));
        PQfinish(conn);
        return;
    }
    res = PQexecParams(conn, DRAIN_ADVANCE_SQL, 1, NULL, params, NULL, NULL, 0);
    if (pgconn_result_int8(res, &d->stored) < 0)   /* one row, not NULL: or not stored */
        LOG(LOG_WARN, "drain", "msg=cursor_not_stored position=%s reason=\"%s\"", pos,
            log_text(PQresultErrorMessage(res)));
    PQclear(res);
    PQfinish(conn);
}

/* ---- Kafka callbacks (run inside kafka_serve) ---- */

static void drain_on_delivery(void *ud, uint64_t seq, int err, const char *errstr)
{
    struct drain *d = ud;
    if (err != 0 && kafka_err_permanent(err)) {
        if (drain_isolating(d) && ackwin_count(&d->win) == 1)
            drain_dead_letter(d, ackwin_id(&d->win, seq), NULL, errstr ? errstr : "delivery failed",
                              seq, 0);
        else if (d->read_pos > d->isolate_until)
            d->isolate_until = d->read_pos;   /* find which event of the batch it was */
    }
    if (err != 0) {
        d->failed++;
        if (d->failed_here++ == 0)   /* the first one per producer; the restart line counts them */
            LOG(LOG_WARN, "drain", "msg=delivery_failed event_id=%" PRId64 " reason=\"%s\"",
                ackwin_id(&d->win, seq), log_text(errstr));
        if (d->restart_reason == NULL)
            d->restart_reason = strdup(errstr ? errstr : "delivery failed");
        return;
    }
    d->delivered++;
    if (drain_isolating(d))
        d->want_read = 1;                 /* the next one */
    if (ackwin_ack(&d->win, seq) > 0) {   /* progress: the next restart starts fast again */
        loop_backoff_reset(&d->backoff);
        drain_cursor_arm(d);
    }
}

static void drain_on_fatal(void *ud, const char *errstr)
{
    struct drain *d = ud;
    if (d->restart_reason == NULL)
        d->restart_reason = strdup(errstr ? errstr : "fatal producer error");
}

static void drain_topic_retry(struct drain *d, const char *topic, const char *why)
{
    LOG(LOG_WARN, "drain", "msg=topic_not_ready topic=\"%s\" reason=\"%s\" retry_ms=%" PRId64,
        log_text(topic), log_text(why), loop_backoff_peek(&d->topic_backoff) / 1000);
    loop_timer_schedule(d->t_topic, loop_backoff_next(&d->topic_backoff));
}

static void drain_on_topic(void *ud, const char *topic, int err, const char *errstr)
{
    struct drain *d = ud;
    if (d->ensuring == NULL || (topic != NULL && strcmp(topic, d->ensuring) != 0))
        return;
    if (err != 0 && kafka_err_cannot_create(err)) {
        /* an existing topic still works; a missing one fails its deliveries,
         * which restarts the producer with backoff: nothing is skipped */
        LOG(LOG_WARN, "drain", "msg=topic_create_not_allowed topic=\"%s\" reason=\"%s\" "
            "action=\"producing anyway\"", log_text(d->ensuring), log_text(errstr));
    } else if (err != 0) {
        drain_topic_retry(d, d->ensuring, errstr);
        return;
    } else {
        LOG(LOG_INFO, "drain", "msg=topic_ready topic=\"%s\"", log_text(d->ensuring));
    }
    if (drain_topic_add(d, d->ensuring) < 0) {
        drain_topic_retry(d, d->ensuring, "out of memory");
        return;
    }
    free(d->ensuring);
    d->ensuring = NULL;
    loop_backoff_reset(&d->topic_backoff);
    d->want_read = 1;
}

static void drain_on_kafka_readable(void *ud)
{
    struct drain *d = ud;
    char *reason;
    if (d->k == NULL)
        return;
    kafka_serve(d->k);
    if (d->restart_reason != NULL) {
        reason = d->restart_reason;
        d->restart_reason = NULL;
        drain_restart_producer(d, reason);
        free(reason);
        return;
    }
    if (d->kafka_full && !ackwin_full(&d->win)) {
        d->kafka_full = 0;
        d->want_read = 1;
    }
    drain_maybe_read(d);
}

/* ---- the producer's lifetime ---- */

/* Creates the producer: when the drain becomes active, or once at start-up
 * (early) so that its broker connection and producer id are under way while
 * PostgreSQL connects and the lock and cursor are read.  An early producer
 * produces nothing before the lock is won; a bridge that stands by frees it. */
static void drain_producer_open(struct drain *d, int early)
{
    static const struct kafka_callbacks cbs = {
        .on_delivery = drain_on_delivery, .on_topic = drain_on_topic, .on_fatal = drain_on_fatal};
    const struct bridge_config *cfg = &d->b->cfg;
    char *err = NULL;

    if (d->k != NULL || (d->phase != DRAIN_ACTIVE && !early))
        return;
    d->k = kafka_new(cfg->kafka_bootstrap_servers, cfg->rdkafka_props, cfg->nrdkafka_props, &cbs,
                     d, &err);
    if (d->k != NULL)
        d->kwatch = loop_watch_fd(d->b, kafka_fd(d->k), drain_on_kafka_readable, d);
    if (d->k == NULL || d->kwatch == NULL) {
        LOG(LOG_ERROR, "drain", "msg=producer_failed reason=\"%s\"",
            err ? log_text(err) : "cannot watch its queue");
        free(err);
        kafka_free(d->k, 0);
        d->k = NULL;
        d->gen++;   /* a first read issued with the producer is abandoned */
        d->reading = 0;
        loop_timer_schedule(d->t_restart, loop_backoff_peek(&d->backoff));
        return;
    }
    if (early) {
        LOG(LOG_INFO, "drain", "msg=producer_started bootstrap=\"%s\" early=1",
            log_text(cfg->kafka_bootstrap_servers));
        return;
    }
    LOG(LOG_INFO, "drain", "msg=producer_started bootstrap=\"%s\" from=%" PRId64,
        log_text(cfg->kafka_bootstrap_servers), d->win.acked);
    d->want_read = 1;
    drain_maybe_read(d);
}

static void drain_restart_timer(void *ud)
{
    drain_producer_open(ud, 0);
}

/* A producer made early by a bridge that does not drain (yet) goes. */
static void drain_producer_drop_early(struct drain *d)
{
    if (d->k == NULL || d->ever_active)
        return;
    loop_watch_free(d->kwatch);
    d->kwatch = NULL;
    kafka_free(d->k, 0);
    d->k = NULL;
}

/* Abandons everything in flight: the producer goes, reading resumes after the
 * acknowledged prefix with a new producer after a backoff (at-least-once). */
static void drain_restart_producer(struct drain *d, const char *reason)
{
    LOG(LOG_WARN, "drain", "msg=producer_restart reason=\"%s\" failed_deliveries=%" PRIu64
        " rewind_to=%" PRId64 " abandoned=%zu retry_ms=%" PRId64, log_text(reason), d->failed_here,
        d->win.acked, ackwin_count(&d->win), loop_backoff_peek(&d->backoff) / 1000);
    d->failed_here = 0;
    loop_watch_free(d->kwatch);
    d->kwatch = NULL;
    kafka_free(d->k, DRAIN_RESTART_WAIT_MS);
    d->k = NULL;
    ackwin_reset(&d->win, d->win.acked);
    d->read_pos = d->win.acked;
    drain_topics_clear(d);
    d->gen++;
    d->reading = 0;
    d->kafka_full = 0;
    d->restarts++;
    loop_timer_schedule(d->t_restart, loop_backoff_next(&d->backoff));
}

/* ---- topic creation ---- */

static void drain_topic_declared(struct pgconn *c, PGresult *res, void *ud)
{
    struct drain *d = ud;
    int partitions = DRAIN_DEFAULT_PARTITIONS, rf = DRAIN_DEFAULT_RF;
    (void)c;
    if (d->ensuring == NULL || d->k == NULL)
        return;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        drain_topic_retry(d, d->ensuring, res ? PQresultErrorMessage(res) : "connection lost");
        return;
    }
    if (PQntuples(res) == 1) {
        partitions = atoi(PQgetvalue(res, 0, 0));
        rf = atoi(PQgetvalue(res, 0, 1));
    }
    LOG(LOG_INFO, "drain", "msg=topic_create topic=\"%s\" partitions=%d replication_factor=%d",
        log_text(d->ensuring), partitions, rf);
    if (kafka_create_topic(d->k, d->ensuring, partitions, rf) < 0)
        drain_topic_retry(d, d->ensuring, "CreateTopics refused the request");
}

static void drain_topic_step(struct drain *d)
{
    const char *params[1] = {d->ensuring};
    if (d->ensuring == NULL || d->phase != DRAIN_ACTIVE || d->k == NULL)
        return;
    if (pgconn_query(d->pg, DRAIN_TOPIC_SQL, 1, params, drain_topic_declared, d) < 0)
        drain_topic_retry(d, d->ensuring, "no PostgreSQL connection");
}

static void drain_topic_timer(void *ud)
{
    drain_topic_step(ud);
}

static void drain_topic_ensure(struct drain *d, const char *topic)
{
    if (d->ensuring != NULL)
        return;
    d->ensuring = strdup(topic);
    if (d->ensuring != NULL)
        drain_topic_step(d);
}

/* ---- dead letters ---- */

static int drain_isolating(const struct drain *d)
{
    return d->isolate_until > d->win.acked;
}

static int drain_topic_allowed(const struct drain *d, const char *topic)
{
    const char *list = d->b->cfg.topic_allow, *p;
    size_t n = strlen(topic);

    if (list == NULL)
        return 1;
    for (p = list; *p; p += strcspn(p, ",")) {
        p += strspn(p, ", ");
        if (strncmp(p, topic, n) == 0 && (p[n] == ',' || p[n] == '\0' || p[n] == ' '))
            return 1;
    }
    return 0;
}

static void drain_dead_done(struct pgconn *c, PGresult *res, void *ud)
{
    struct drain_dead *x = ud;
    struct drain *d = x->d;

    (void)c;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        LOG(LOG_ERROR, "drain", "msg=dead_letter_not_recorded event=%" PRId64 " error=\"%s\" "
            "action=\"retried by the next producer\"", x->id,
            res ? log_text(PQresultErrorMessage(res)) : "connection lost");
        free(x);
        return;
    }
    d->dead_letters++;
    if (x->via_window && x->gen == d->gen) {
        if (ackwin_ack(&d->win, x->seq) > 0)
            drain_cursor_arm(d);
    } else if (!x->via_window && ackwin_count(&d->win) == 0 && d->win.acked < x->id) {
        ackwin_reset(&d->win, x->id);    /* the restarted producer goes on after it */
        d->read_pos = x->id;
        d->want_read = 1;
        drain_cursor_arm(d);
        drain_maybe_read(d);
    }
    free(x);
}

static void drain_dead_letter(struct drain *d, int64_t id, const char *topic, const char *why,
                              uint64_t seq, int via_window)
{
    struct drain_dead *x = calloc(1, sizeof *x);
    char idbuf[24];
    const char *params[2] = {idbuf, why};

    LOG(LOG_WARN, "drain", "msg=dead_letter event=%" PRId64 " topic=\"%s\" error=\"%s\" "
        "table=aegis.drain_dead_letters", id, log_text(topic ? topic : "?"), log_text(why));
    if (x == NULL)
        return;
    x->d = d;
    x->id = id;
    x->seq = seq;
    x->gen = d->gen;
    x->via_window = via_window;
    snprintf(idbuf, sizeof idbuf, "%" PRId64, id);
    if (pgconn_query(d->pg, DRAIN_DEAD_LETTER_SQL, 2, params, drain_dead_done, x) < 0)
        drain_dead_done(d->pg, NULL, x);
}

/* ---- reading and producing ---- */

/* Produces row i; returns 0, or -1 when producing must pause here. */
static int drain_produce_row(struct drain *d, PGresult *res, int i)
{
    char errbuf[256];
    struct kafka_msg m = {0};
    enum kafka_produce_result r;
    int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);

    m.topic = PQgetvalue(res, i, 1);
    if (!drain_topic_allowed(d, m.topic)) {
        if (ackwin_reserve(&d->win) < 0) {
            d->kafka_full = 1;
            return -1;
        }
        drain_dead_letter(d, id, m.topic, "topic not in the bridge's --topic-allow list",
                          ackwin_push(&d->win, id), 1);
        d->read_pos = id;
        return 0;
    }
    if (drain_isolating(d) && ackwin_count(&d->win) > 0)
        return -1;                    /* one at a time until past the failed batch */
    if (!drain_topic_known(d, m.topic)) {
        drain_topic_ensure(d, m.topic);
        return -1;
    }
    if (ackwin_reserve(&d->win) < 0) {   /* full, or the ring cannot grow now */
        d->kafka_full = 1;
        return -1;
    }
    m.key = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
    m.key_len = (size_t)PQgetlength(res, i, 2);
    m.headers_json = PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3);
    m.event_type = PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4);
    m.value = PQgetvalue(res, i, 5);
    m.value_len = (size_t)PQgetlength(res, i, 5);
    m.event_id = id;
    m.opaque = d->win.tail;
    r = kafka_produce(d->k, &m, errbuf, sizeof(errbuf));
    if (r == KAFKA_PRODUCE_FULL) {
        d->kafka_full = 1;
        return -1;
    }
    if (r == KAFKA_PRODUCE_ERROR) {
        LOG(LOG_ERROR, "drain", "msg=produce_refused event_id=%" PRId64 " topic=\"%s\" "
            "reason=\"%s\"", id, log_text(m.topic), log_text(errbuf));
        if (d->restart_reason == NULL)
            d->restart_reason = strdup(errbuf);
        return -1;
    }
    ackwin_push(&d->win, id);
    d->read_pos = id;
    d->produced++;
    return 0;
}

static int drain_issue_read(struct drain *d, int64_t after_id)
{
    char after[24], limit[16];
    const char *params[2] = {after, limit};
    unsigned slot;

    if (d->reads_n == DRAIN_READS_MAX)
        return -1;
    snprintf(after, sizeof(after), "%" PRId64, after_id);
    snprintf(limit, sizeof(limit), "%d", drain_isolating(d) ? 1 : d->b->cfg.drain_batch);
    if (pgconn_query(d->pg, DRAIN_READ_SQL, 2, params, drain_read_done, d) < 0)
        return -1;
    slot = (d->reads_head + d->reads_n++) % DRAIN_READS_MAX;
    d->reads[slot].after = after_id;
    d->reads[slot].gen = d->gen;
    d->reading++;
    return 0;
}

/* While a full batch is produced, the next one is already being read
 * (PostgreSQL and the producer work in parallel); it is dropped unread if
 * producing stops early, since it would not start at read_pos. */
static void drain_prefetch(struct drain *d, PGresult *res, int n)
{
    size_t batch = (size_t)d->b->cfg.drain_batch;
    if (n != d->b->cfg.drain_batch || drain_isolating(d) || d->reading != 0 || d->ensuring != NULL ||
        d->kafka_full ||
        ackwin_count(&d->win) + 2 * batch > d->win.cap)
        return;
    if (!drain_topic_known(d, PQgetvalue(res, 0, 1)))
        return;   /* the batch waits for CreateTopics and is read again: so would this one */
    drain_issue_read(d, strtoll(PQgetvalue(res, n - 1, 0), NULL, 10));
}

static void drain_read_done(struct pgconn *c, PGresult *res, void *ud)
{
    struct drain *d = ud;
    int i, n;
    int64_t after;
    unsigned gen;
    char *reason;
    (void)c;

    after = d->reads[d->reads_head].after;
    gen = d->reads[d->reads_head].gen;
    d->reads_head = (d->reads_head + 1) % DRAIN_READS_MAX;
    d->reads_n--;
    if (gen != d->gen || d->phase != DRAIN_ACTIVE || d->k == NULL)
        return;   /* abandoned by a restart or a lost connection */
    d->reading--;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (res != NULL)
            LOG(LOG_ERROR, "drain", "msg=read_failed error=\"%s\"",
                log_text(PQresultErrorMessage(res)));
        return;   /* the poll timer or the next wake-up retries */
    }
    if (after != d->read_pos) {   /* a prefetch that no longer fits */
        d->want_read = 1;
        drain_maybe_read(d);
        return;
    }
    n = PQntuples(res);
    drain_prefetch(d, res, n);
    for (i = 0; i < n; i++)
        if (drain_produce_row(d, res, i) < 0)
            break;
    LOG(LOG_DEBUG, "drain", "msg=batch rows=%d produced=%d in_flight=%zu acked=%" PRId64, n, i,
        ackwin_count(&d->win), d->win.acked);
    if (d->restart_reason != NULL) {
        reason = d->restart_reason;
        d->restart_reason = NULL;
        drain_restart_producer(d, reason);
        free(reason);
        return;
    }
    if (i < n || n == d->b->cfg.drain_batch)
        d->want_read = 1;   /* more is waiting */
    drain_maybe_read(d);
}

static void drain_maybe_read(struct drain *d)
{
    if (d->phase != DRAIN_ACTIVE || d->k == NULL || d->reading || !d->want_read ||
        d->ensuring != NULL || d->kafka_full || ackwin_full(&d->win) ||
        (drain_isolating(d) && ackwin_count(&d->win) > 0))
        return;
    if (drain_issue_read(d, d->read_pos) == 0)
        d->want_read = 0;
}

static void drain_poll_timer(void *ud)
{
    struct drain *d = ud;
    if (d->phase != DRAIN_ACTIVE)
        return;
    d->want_read = 1;
    drain_maybe_read(d);
    if (d->win.acked > d->stored)
        drain_cursor_arm(d);
    loop_timer_schedule(d->t_poll, DRAIN_POLL_US);
}

/* ---- the lock and activation ---- */

static void drain_activate(struct drain *d, int64_t cursor)
{
    if (!d->ever_active || cursor > d->win.acked) {
        /* first start, or another bridge drained meanwhile: start from the cursor
         * (an early producer has produced nothing: it stays) */
        if (d->k != NULL && d->ever_active)
            drain_restart_producer(d, "cursor moved while this bridge was not draining");
        ackwin_reset(&d->win, cursor);
        d->read_pos = cursor;
    }
    d->stored = cursor;
    d->ever_active = 1;
    d->phase = DRAIN_ACTIVE;
    LOG(LOG_INFO, "drain", "msg=active cursor=%" PRId64 " in_flight=%zu", cursor,
        ackwin_count(&d->win));
    d->want_read = 1;
    loop_timer_schedule(d->t_poll, DRAIN_POLL_US);
    drain_cursor_arm(d);
    if (d->k == NULL) {
        /* PostgreSQL reads the first batch while the producer is being made */
        if (d->reading == 0 && drain_issue_read(d, d->read_pos) == 0)
            d->want_read = 0;
        drain_producer_open(d, 0);
    } else {
        drain_maybe_read(d);
    }
}

static void drain_cursor_loaded(struct pgconn *c, PGresult *res, void *ud)
{
    struct drain *d = ud;
    int64_t cursor;

    (void)c;
    if (d->phase != DRAIN_LOADING)
        return;
    if (pgconn_result_int8(res, &cursor) < 0) {
        LOG(LOG_ERROR, "drain", "msg=cursor_read_failed error=\"%s\"",
            res ? log_text(PQresultErrorMessage(res)) : "connection lost");
        d->phase = res ? DRAIN_RETRY : DRAIN_WAIT_PG;
        if (res)
            loop_timer_schedule(d->t_lock, DRAIN_LOCK_RETRY_US);
        return;
    }
    drain_activate(d, cursor);
}

static void drain_load_cursor(struct drain *d)
{
    d->phase = DRAIN_LOADING;
    if (pgconn_query(d->pg, DRAIN_CURSOR_SQL, 0, NULL, drain_cursor_loaded, d) < 0)
        d->phase = DRAIN_WAIT_PG;
}

static void drain_lock_done(struct pgconn *c, PGresult *res, void *ud)
{
    struct drain *d = ud;
    int won;
    (void)c;
    if (d->phase != DRAIN_LOCKING)
        return;
    if (res == NULL) {
        d->phase = DRAIN_WAIT_PG;
        return;
    }
    won = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
          strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        LOG(LOG_ERROR, "drain", "msg=lock_failed error=\"%s\"",
            log_text(PQresultErrorMessage(res)));
    if (!won) {
        if (!d->standby_logged)
            LOG(LOG_INFO, "drain", "msg=standby reason=\"another bridge holds the drain lock\"");
        d->standby_logged = 1;
        d->phase = DRAIN_STANDBY;
        drain_producer_drop_early(d);
        loop_timer_schedule(d->t_lock, DRAIN_LOCK_RETRY_US);
        return;
    }
    d->have_lock = 1;
    d->standby_logged = 0;
    drain_load_cursor(d);
}

static void drain_try_lock(struct drain *d)
{
    if (d->phase != DRAIN_WAIT_PG && d->phase != DRAIN_STANDBY && d->phase != DRAIN_RETRY)
        return;
    if (d->have_lock) {   /* a retry after a failed cursor read: the lock is ours */
        drain_load_cursor(d);
        return;
    }
    if (pgconn_query(d->pg, DRAIN_LOCK_SQL, 0, NULL, drain_lock_done, d) == 0)
        d->phase = DRAIN_LOCKING;
}

static void drain_lock_timer(void *ud)
{
    drain_try_lock(ud);
}

/* ---- PostgreSQL callbacks ---- */

static void drain_pg_connected(struct pgconn *c, void *ud)
{
    struct drain *d = ud;
    if (d->phase == DRAIN_STOPPING)
        return;
    pgconn_set_statement_timeout(c, d->b->cfg.statement_timeout_ms);
    d->phase = DRAIN_WAIT_PG;
    drain_try_lock(d);
}

static void drain_pg_notify(struct pgconn *c, const char *channel, const char *payload, void *ud)
{
    struct drain *d = ud;
    (void)c;
    (void)payload;
    if (strcmp(channel, DRAIN_CHANNEL) != 0)
        return;
    d->want_read = 1;
    drain_maybe_read(d);
}

static void drain_pg_lost(struct pgconn *c, void *ud)
{
    struct drain *d = ud;
    (void)c;
    if (d->phase == DRAIN_STOPPING)
        return;
    if (d->phase == DRAIN_ACTIVE)
        LOG(LOG_WARN, "drain", "msg=paused reason=\"PostgreSQL connection lost\" acked=%" PRId64
            " in_flight=%zu", d->win.acked, ackwin_count(&d->win));
    /* the session's advisory lock is gone with it; in-flight messages stay */
    d->phase = DRAIN_WAIT_PG;
    d->have_lock = 0;
    d->reading = 0;
    d->cursor_busy = 0;
    d->gen++;
    free(d->ensuring);
    d->ensuring = NULL;
    loop_timer_cancel(d->t_lock);
    loop_timer_cancel(d->t_poll);
    loop_timer_cancel(d->t_topic);
}

/* ---- start, stop, state ---- */

static struct drain *drain_new(struct bridge *b)
{
    static const struct pgconn_callbacks pcbs = {
        .on_connected = drain_pg_connected, .on_notify = drain_pg_notify, .on_lost = drain_pg_lost};
    struct drain *d = calloc(1, sizeof(*d));
    size_t window;

    if (d == NULL)
        return NULL;
    d->b = b;
    d->phase = DRAIN_WAIT_PG;
    loop_backoff_init(&d->backoff, DRAIN_BACKOFF_MIN_US, DRAIN_BACKOFF_MAX_US);
    loop_backoff_init(&d->topic_backoff, DRAIN_BACKOFF_MIN_US, DRAIN_BACKOFF_MAX_US);
    window = (size_t)b->cfg.drain_batch * DRAIN_WINDOW_BATCHES;
    if (window < DRAIN_WINDOW_MIN)
        window = DRAIN_WINDOW_MIN;
    if (window > DRAIN_WINDOW_MAX)
        window = DRAIN_WINDOW_MAX;
    if (ackwin_init(&d->win, window, 0) < 0)
        goto err;
    d->t_lock = loop_timer_new(b, drain_lock_timer, d);
    d->t_cursor = loop_timer_new(b, drain_cursor_timer, d);
    d->t_poll = loop_timer_new(b, drain_poll_timer, d);
    d->t_restart = loop_timer_new(b, drain_restart_timer, d);
    d->t_topic = loop_timer_new(b, drain_topic_timer, d);
    if (!d->t_lock || !d->t_cursor || !d->t_poll || !d->t_restart || !d->t_topic)
        goto err;
    d->pg = pgconn_new(b, b->cfg.database_url, "drain", &pcbs, d);
    if (d->pg == NULL || pgconn_listen(d->pg, DRAIN_CHANNEL) < 0)
        goto err;
    return d;
err:
    pgconn_free(d->pg);
    loop_timer_free(d->t_topic);
    loop_timer_free(d->t_restart);
    loop_timer_free(d->t_poll);
    loop_timer_free(d->t_cursor);
    loop_timer_free(d->t_lock);
    ackwin_free(&d->win);
    free(d);
    return NULL;
}

static const char *drain_state_name(const struct drain *d)
{
    if (d->phase == DRAIN_STANDBY || (d->phase == DRAIN_LOCKING && d->standby_logged))
        return "standby";
    if (d->k == NULL)
        return "connecting";
    return kafka_state_name(kafka_get_state(d->k));
}

int drain_start(struct bridge *b)
{
    const struct bridge_config *cfg = &b->cfg;
    char *err = NULL;

    if (cfg->kafka_bootstrap_servers == NULL) {
        LOG(LOG_WARN, "drain", "msg=off reason=\"KAFKA_BOOTSTRAP_SERVERS is not set: events wait "
                               "in the store until a bridge with Kafka drains them\"");
        return 0;
    }
    if (!cfg->drain_enabled) {
        LOG(LOG_INFO, "drain", "msg=off reason=\"--no-drain\"");
        return 0;
    }
    if (kafka_config_check(cfg->kafka_bootstrap_servers, cfg->rdkafka_props, cfg->nrdkafka_props,
                           &err) < 0) {
        LOG(LOG_ERROR, "drain", "msg=bad_kafka_config reason=\"%s\"", log_text(err));
        free(err);
        return -1;
    }
    b->drain = drain_new(b);
    if (b->drain == NULL) {
        LOG(LOG_ERROR, "drain", "msg=start_failed reason=\"out of memory\"");
        return -1;
    }
    drain_producer_open(b->drain, 1);
    LOG(LOG_INFO, "drain", "msg=started bootstrap=\"%s\" batch=%d window=%zu",
        log_text(cfg->kafka_bootstrap_servers), cfg->drain_batch, b->drain->win.cap);
    return 0;
}

void drain_stop(struct bridge *b)
{
    struct drain *d = b->drain;
    int left = 0;

    if (d == NULL)
        return;
    d->phase = DRAIN_STOPPING;   /* no more reads, topic work or lock attempts */
    if (d->k != NULL) {
        if (kafka_flush(d->k, d->b->cfg.flush_timeout_ms) < 0)
            left = kafka_outq_len(d->k);
        free(d->restart_reason);
        d->restart_reason = NULL;
    }
    if (d->ever_active)
        drain_cursor_store_now(d);
    LOG(LOG_INFO, "drain", "msg=stopped cursor=%" PRId64 " produced=%" PRIu64 " delivered=%" PRIu64
        " failed=%" PRIu64 " restarts=%" PRIu64 " unflushed=%d", d->stored, d->produced,
        d->delivered, d->failed, d->restarts, left);
    loop_watch_free(d->kwatch);
    kafka_free(d->k, 0);
    pgconn_free(d->pg);
    drain_topics_clear(d);
    loop_timer_free(d->t_topic);
    loop_timer_free(d->t_restart);
    loop_timer_free(d->t_poll);
    loop_timer_free(d->t_cursor);
    loop_timer_free(d->t_lock);
    free(d->topics);
    ackwin_free(&d->win);
    free(d);
    b->drain = NULL;
}

const char *drain_kafka_state(const struct bridge *b)
{
    if (b->drain == NULL)
        return "off";
    return drain_state_name(b->drain);
}
