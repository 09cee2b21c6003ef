/*
 * kafka.c: the producer and admin client behind kafka.h.  Owns the
 * librdkafka handle, its configuration (safe defaults, then the user's -X
 * pairs, refusing the ones that would break zero-loss delivery), the
 * wake-up pipe of its main queue, and the translation of librdkafka events
 * (delivery reports, errors, logs, statistics, CreateTopics results) into
 * the callbacks of kafka.h and rate-limited log lines.
 */
#define _GNU_SOURCE
#include "kafka.h"
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define KAFKA_ERRLOG_INTERVAL_S 10    /* one warning per error code per interval */
#define KAFKA_ERRLOG_SLOTS 8
#define KAFKA_ADMIN_TIMEOUT_MS 10000

_Static_assert(sizeof(void *) >= sizeof(uint64_t), "message opaque must hold 64 bits");

struct kafka_errlog {
    int code;
    time_t last;
    unsigned suppressed;
};

struct kafka {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;          /* main queue: DRs, errors, logs, stats, admin results */
    int pipe_rd, pipe_wr;
    struct kafka_callbacks cbs;
    void *ud;
    enum kafka_state state;
    struct kafka_errlog errlog[KAFKA_ERRLOG_SLOTS];
    rd_kafka_topic_t **topics;    /* handles made early so their metadata is asked for at once */
    size_t ntopics;
};

static void kafka_dispatch(struct kafka *k, rd_kafka_event_t *ev);

/* Defaults applied before the user's -X pairs (which may change them,
 * except the ones kafka_prop_refused rejects). */
static const struct config_kv kafka_defaults[] = {
    {"enable.idempotence", "true"},
    {"acks", "all"},
    {"message.timeout.ms", "0"},          /* never fail a message out of order */
    {"enable.gapless.guarantee", "true"}, /* a possible gap becomes a fatal error */
    {"statistics.interval.ms", "1000"},   /* broker states for /healthz */
    {"client.id", "aegis-bridge"},
    {"log.queue", "true"},
    /* Latency (docs/PERFORMANCE.md, "Commit -> Kafka"): no lingering, as the
     * drain produces a whole read at once, so a batch never waits for more
     * of it; under a backlog, batches still grow while the idempotent
     * producer's (at most 5) requests are in flight.  Without TCP_NODELAY a
     * small produce request can wait on the previous one's ACK. */
    {"linger.ms", "0"},
    {"socket.nagle.disable", "true"},
};


/* The settings that would turn off idempotence or acks=all are refused:
 * the drain's guarantees depend on them. */
static const char *kafka_prop_refused(const char *key, const char *value)
{
    if (strcmp(key, "enable.idempotence") == 0 && strcmp(value, "true") != 0)
        return "the drain needs an idempotent producer (enable.idempotence=true)";
    if ((strcmp(key, "acks") == 0 || strcmp(key, "request.required.acks") == 0) &&
        strcmp(value, "all") != 0 && strcmp(value, "-1") != 0)
        return "the drain needs acks=all";
    if (strcmp(key, "log.queue") == 0 && strcmp(value, "true") != 0)
        return "the bridge serves librdkafka's logs from its queue (log.queue=true)";
    return NULL;
}

int kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, const char *origin,
                   char **errmsg)
{
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        *errmsg = buf_strdup_printf("%s %s=%s refused by librdkafka: %s", origin, key,
                                      value, err);
        return -1;
    }
    return 0;
}

/* Builds the producer configuration; NULL with *errmsg on a bad value. */
static rd_kafka_conf_t *kafka_conf_build(const char *bootstrap, const struct config_kv *props,
                                         size_t nprops, char **errmsg)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    size_t i;
    const char *why;

    *errmsg = NULL;
    if (bootstrap == NULL || bootstrap[0] == '\0' || strspn(bootstrap, " ,") == strlen(bootstrap)) {
        *errmsg = buf_strdup_printf("KAFKA_BOOTSTRAP_SERVERS is empty: expected host:port[,host:port...]");
        goto err;
    }
    for (i = 0; i < sizeof(kafka_defaults) / sizeof(kafka_defaults[0]); i++)
        if (kafka_conf_set(conf, kafka_defaults[i].key, kafka_defaults[i].value, "default",
                            errmsg) < 0)
            goto err;
    if (kafka_conf_set(conf, "bootstrap.servers", bootstrap, "KAFKA_BOOTSTRAP_SERVERS", errmsg) < 0)
        goto err;
    for (i = 0; i < nprops; i++) {
        why = kafka_prop_refused(props[i].key, props[i].value);
        if (why != NULL) {
            *errmsg = buf_strdup_printf("-X %s=%s refused: %s", props[i].key, props[i].value, why);
            goto err;
        }
        if (kafka_conf_set(conf, props[i].key, props[i].value, "-X", errmsg) < 0)
            goto err;
    }
    return conf;
err:
    rd_kafka_conf_destroy(conf);
    if (*errmsg == NULL)
        *errmsg = buf_strdup_printf("out of memory");
    return NULL;
}

int kafka_config_check(const char *bootstrap, const struct config_kv *props, size_t nprops,
                       char **errmsg)
{
    rd_kafka_conf_t *conf = kafka_conf_build(bootstrap, props, nprops, errmsg);
    if (conf == NULL)
        return -1;
    rd_kafka_conf_destroy(conf);
    return 0;
}

static int kafka_pipe_open(struct kafka *k)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    k->pipe_rd = fds[0];
    k->pipe_wr = fds[1];
    return 0;
}

struct kafka *kafka_new(const char *bootstrap, const struct config_kv *props, size_t nprops,
                        const struct kafka_callbacks *cbs, void *ud, char **errmsg)
{
    char err[512];
    struct kafka *k = calloc(1, sizeof(*k));
    rd_kafka_conf_t *conf = NULL;

    *errmsg = NULL;
    if (k == NULL)
        goto err;
    k->pipe_rd = k->pipe_wr = -1;
    k->cbs = *cbs;
    k->ud = ud;
    k->state = KAFKA_CONNECTING;
    if (kafka_pipe_open(k) < 0) {
        *errmsg = buf_strdup_printf("pipe: %s", strerror(errno));
        goto err;
    }
    conf = kafka_conf_build(bootstrap, props, nprops, errmsg);
    if (conf == NULL)
        goto err;
    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG |
                                       RD_KAFKA_EVENT_STATS | RD_KAFKA_EVENT_CREATETOPICS_RESULT);
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (k->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        *errmsg = buf_strdup_printf("cannot create the Kafka producer: %s", err);
        goto err;
    }
    /* conf now belongs to rk */
    k->q = rd_kafka_queue_get_main(k->rk);
    rd_kafka_set_log_queue(k->rk, NULL); /* logs to the main queue */
    rd_kafka_queue_io_event_enable(k->q, k->pipe_wr, "1", 1);
    /* events queued before this point (configuration warnings) would never
     * wake the pipe: the queue only signals going from empty to non-empty */
    if (write(k->pipe_wr, "1", 1) < 0)
        LOG(LOG_DEBUG, "kafka", "msg=wakeup_write_failed errno=%d", errno);
    return k;
err:
    if (*errmsg == NULL)
        *errmsg = buf_strdup_printf("out of memory");
    if (k != NULL) {
        if (k->pipe_rd >= 0)
            close(k->pipe_rd);
        if (k->pipe_wr >= 0)
            close(k->pipe_wr);
        free(k);
    }
    return NULL;
}

/* Serves the queue (dispatching when dispatch is set) until nothing is in
 * flight or timeout_ms passed.  rd_kafka_flush cannot do it: with delivery
 * reports as events it waits for them to be served by another thread. */
static void kafka_drain_queue(struct kafka *k, int timeout_ms, int dispatch)
{
    struct timespec ts;
    int64_t now_ms, deadline;
    rd_kafka_event_t *ev;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    deadline = now_ms + timeout_ms;
    for (;;) {
        while ((ev = rd_kafka_queue_poll(k->q, 0)) != NULL) {
            if (dispatch)
                kafka_dispatch(k, ev);
            rd_kafka_event_destroy(ev);
        }
        if (rd_kafka_outq_len(k->rk) == 0 || now_ms >= deadline)
            return;
        ev = rd_kafka_queue_poll(k->q, (int)(deadline - now_ms < 100 ? deadline - now_ms : 100));
        if (ev != NULL) {
            if (dispatch)
                kafka_dispatch(k, ev);
            rd_kafka_event_destroy(ev);
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
}

void kafka_free(struct kafka *k, int wait_ms)
{
    if (k == NULL)
        return;
    rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                              RD_KAFKA_PURGE_F_NON_BLOCKING);
    rd_kafka_queue_io_event_enable(k->q, -1, NULL, 0);
    kafka_drain_queue(k, wait_ms > 0 ? wait_ms : 0, 0); /* purged reports: nobody waits */
    while (k->ntopics > 0)
        rd_kafka_topic_destroy(k->topics[--k->ntopics]);
    free(k->topics);
    rd_kafka_queue_destroy(k->q);
    rd_kafka_destroy(k->rk);
    close(k->pipe_rd);
    close(k->pipe_wr);
    free(k);
}

int kafka_fd(const struct kafka *k)
{
    return k->pipe_rd;
}

int kafka_outq_len(const struct kafka *k)
{
    return rd_kafka_outq_len(k->rk);
}

enum kafka_state kafka_get_state(const struct kafka *k)
{
    return k->state;
}

const char *kafka_state_name(enum kafka_state s)
{
    switch (s) {
    case KAFKA_UP: return "up";
    case KAFKA_DOWN: return "down";
    default: return "connecting";
    }
}

int kafka_test_fatal(struct kafka *k, const char *reason)
{
    return rd_kafka_test_fatal_error(k->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

/* ---- serving events ---- */

/* 1 when this error code may be logged now; counts what it suppresses */
static int kafka_errlog_allow(struct kafka *k, int code, unsigned *suppressed)
{
    time_t now = time(NULL);
    struct kafka_errlog *slot = NULL, *oldest = &k->errlog[0];
    int i;
    for (i = 0; i < KAFKA_ERRLOG_SLOTS; i++) {
        if (k->errlog[i].code == code && k->errlog[i].last != 0)
            slot = &k->errlog[i];
        if (k->errlog[i].last < oldest->last)
            oldest = &k->errlog[i];
    }
    if (slot == NULL) {
        slot = oldest;
        slot->code = code;
        slot->last = 0;
        slot->suppressed = 0;
    }
    if (slot->last != 0 && now - slot->last < KAFKA_ERRLOG_INTERVAL_S) {
        slot->suppressed++;
        return 0;
    }
    *suppressed = slot->suppressed;
    slot->suppressed = 0;
    slot->last = now;
    return 1;
}

static void kafka_on_error_event(struct kafka *k, rd_kafka_event_t *ev)
{
    char fatal[512];
    rd_kafka_resp_err_t code = rd_kafka_event_error(ev);
    unsigned suppressed = 0;

    if (rd_kafka_event_error_is_fatal(ev)) {
        rd_kafka_fatal_error(k->rk, fatal, sizeof(fatal));
        LOG(LOG_ERROR, "kafka", "msg=fatal_error reason=\"%s\"", log_text(fatal));
        if (k->cbs.on_fatal)
            k->cbs.on_fatal(k->ud, fatal);
        return;
    }
    if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        k->state = KAFKA_DOWN;
    if (kafka_errlog_allow(k, code, &suppressed))
        LOG(LOG_WARN, "kafka", "msg=broker_error code=%s reason=\"%s\" suppressed=%u",
            log_text(rd_kafka_err2name(code)), log_text(rd_kafka_event_error_string(ev)),
            suppressed);
}

static void kafka_on_dr_event(struct kafka *k, rd_kafka_event_t *ev)
{
    const rd_kafka_message_t *m;
    while ((m = rd_kafka_event_message_next(ev)) != NULL) {
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            k->state = KAFKA_UP;
        if (k->cbs.on_delivery)
            k->cbs.on_delivery(k->ud, (uint64_t)(uintptr_t)m->_private, m->err,
                               m->err ? rd_kafka_err2str(m->err) : NULL);
    }
}

enum log_level kafka_log_level(int syslog_level)
{
    return syslog_level <= 3   ? LOG_ERROR
           : syslog_level == 4 ? LOG_WARN
           : syslog_level <= 6 ? LOG_INFO
                               : LOG_DEBUG;
}

static void kafka_on_log_event(rd_kafka_event_t *ev)
{
    const char *fac = "", *str = "";
    int level = 6;
    enum log_level l;
    if (rd_kafka_event_log(ev, &fac, &str, &level) != 0)
        return;
    l = kafka_log_level(level);
    if (l == LOG_WARN && strcmp(fac, "CONFWARN") == 0 && strstr(str, "enable.gapless.guarantee"))
        l = LOG_INFO; /* "experimental": our deliberate default, not news */
    if (l == LOG_ERROR && strcmp(fac, "FAIL") == 0)
        l = LOG_WARN; /* a broker connection failed: librdkafka retries (and de-duplicates these) */
    LOG(l, "rdkafka", "msg=librdkafka facility=\"%s\" text=\"%s\"", log_text(fac), log_text(str));
}

/* Broker states from the statistics JSON: up when any broker is UP. */
static void kafka_on_stats_event(struct kafka *k, rd_kafka_event_t *ev)
{
    json_t *root = json_loads(rd_kafka_event_stats(ev), 0, NULL);
    json_t *brokers, *br;
    const char *name;
    int up = 0;
    if (root == NULL)
        return;
    brokers = json_object_get(root, "brokers");
    json_object_foreach(brokers, name, br) {
        const char *st = json_string_value(json_object_get(br, "state"));
        if (st != NULL && strcmp(st, "UP") == 0)
            up = 1;
    }
    json_decref(root);
    k->state = up ? KAFKA_UP : (k->state == KAFKA_CONNECTING ? KAFKA_CONNECTING : KAFKA_DOWN);
}

static void kafka_on_topics_event(struct kafka *k, rd_kafka_event_t *ev)
{
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    const rd_kafka_topic_result_t **topics;
    size_t n = 0, i;
    if (res == NULL)
        return;
    topics = rd_kafka_CreateTopics_result_topics(res, &n);
    if (n == 0 && k->cbs.on_topic) /* the whole request failed (timeout, broker down) */
        k->cbs.on_topic(k->ud, NULL, rd_kafka_event_error(ev) ? rd_kafka_event_error(ev)
                                                              : RD_KAFKA_RESP_ERR__FAIL,
                        rd_kafka_event_error_string(ev));
    for (i = 0; i < n; i++) {
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(topics[i]);
        const char *msg = rd_kafka_topic_result_error_string(topics[i]);
        if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            err = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (k->cbs.on_topic)
            k->cbs.on_topic(k->ud, rd_kafka_topic_result_name(topics[i]), err,
                            err ? (msg ? msg : rd_kafka_err2str(err)) : NULL);
    }
}

static void kafka_dispatch(struct kafka *k, rd_kafka_event_t *ev)
{
    switch (rd_kafka_event_type(ev)) {
    case RD_KAFKA_EVENT_DR: kafka_on_dr_event(k, ev); break;
    case RD_KAFKA_EVENT_ERROR: kafka_on_error_event(k, ev); break;
    case RD_KAFKA_EVENT_LOG: kafka_on_log_event(ev); break;
    case RD_KAFKA_EVENT_STATS: kafka_on_stats_event(k, ev); break;
    case RD_KAFKA_EVENT_CREATETOPICS_RESULT: kafka_on_topics_event(k, ev); break;
    default: break;
    }
}

int kafka_serve(struct kafka *k)
{
    char buf[256];
    rd_kafka_event_t *ev;
    int n = 0;
    while (read(k->pipe_rd, buf, sizeof(buf)) > 0)
        ;
    /* serve until empty: a queue left non-empty never writes the pipe again */
    while ((ev = rd_kafka_queue_poll(k->q, 0)) != NULL) {
        kafka_dispatch(k, ev);
        rd_kafka_event_destroy(ev);
        n++;
    }
    return n;
}

/* ---- producing ---- */

static int kafka_headers_add_json(rd_kafka_headers_t *hdrs, const char *headers_json)
{
    json_error_t jerr;
    json_t *obj, *v;
    const char *name;
    int rc = 0;
    if (headers_json == NULL)
        return 0;
    obj = json_loads(headers_json, JSON_DECODE_ANY, &jerr);
    if (obj == NULL || !json_is_object(obj)) {
        LOG(LOG_WARN, "kafka", "msg=bad_headers reason=\"not a JSON object\"");
        json_decref(obj);
        return -1;
    }
    json_object_foreach(obj, name, v) {
        if (json_is_string(v)) {
            rd_kafka_header_add(hdrs, name, -1, json_string_value(v), (ssize_t)json_string_length(v));
        } else if (!json_is_null(v)) {
            char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            if (s == NULL) {
                rc = -1;
                break;
            }
            rd_kafka_header_add(hdrs, name, -1, s, -1);
            free(s);
        }
    }
    json_decref(obj);
    return rc;
}

enum kafka_produce_result kafka_produce(struct kafka *k, const struct kafka_msg *m,
                                        char *errbuf, size_t errlen)
{
    char idbuf[24];
    rd_kafka_resp_err_t err;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);

    if (kafka_headers_add_json(hdrs, m->headers_json) < 0) {
        rd_kafka_headers_destroy(hdrs);
        snprintf(errbuf, errlen, "headers of event %" PRId64 " are not a JSON object", m->event_id);
        return KAFKA_PRODUCE_ERROR;
    }
    snprintf(idbuf, sizeof(idbuf), "%" PRId64, m->event_id);
    rd_kafka_header_add(hdrs, "aegis-event-id", -1, idbuf, -1);
    if (m->event_type != NULL)
        rd_kafka_header_add(hdrs, "aegis-event-type", -1, m->event_type, -1);
    err = rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC(m->topic),
                            RD_KAFKA_V_KEY((void *)m->key, m->key ? m->key_len : 0),
                            RD_KAFKA_V_VALUE((void *)m->value, m->value_len),
                            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)m->opaque),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return KAFKA_PRODUCE_OK; /* hdrs now belong to the message */
    rd_kafka_headers_destroy(hdrs);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return KAFKA_PRODUCE_FULL;
    snprintf(errbuf, errlen, "%s", rd_kafka_err2str(err));
    return KAFKA_PRODUCE_ERROR;
}

/* A local topic handle makes librdkafka ask for the topic's metadata now;
 * created at the first produce instead, the request can wait for the next
 * one-second topic scan, which delays the first delivery by up to a second. */
static void kafka_topic_handle(struct kafka *k, const char *topic)
{
    rd_kafka_topic_t **grown;
    size_t i;
    for (i = 0; i < k->ntopics; i++)
        if (strcmp(rd_kafka_topic_name(k->topics[i]), topic) == 0)
            return;   /* a retried CreateTopics: one handle is enough */
    grown = realloc(k->topics, (k->ntopics + 1) * sizeof(*grown));
    if (grown == NULL)
        return;
    k->topics = grown;
    k->topics[k->ntopics] = rd_kafka_topic_new(k->rk, topic, NULL);
    if (k->topics[k->ntopics] != NULL)
        k->ntopics++;
}

int kafka_create_topic(struct kafka *k, const char *topic, int partitions, int replication_factor)
{
    char err[512];
    rd_kafka_NewTopic_t *nt;
    rd_kafka_AdminOptions_t *opts;

    if (partitions < 1 || replication_factor < 1)
        snprintf(err, sizeof(err), "partitions and replication factor must be >= 1");
    nt = partitions < 1 || replication_factor < 1
             ? NULL
             : rd_kafka_NewTopic_new(topic, partitions, replication_factor, err, sizeof(err));
    if (nt == NULL) {
        LOG(LOG_ERROR, "kafka", "msg=create_topic_refused topic=\"%s\" partitions=%d "
            "replication_factor=%d reason=\"%s\"", log_text(topic), partitions, replication_factor,
            log_text(err));
        return -1;
    }
    opts = rd_kafka_AdminOptions_new(k->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    if (opts == NULL) {
        rd_kafka_NewTopic_destroy(nt);
        return -1;
    }
    rd_kafka_AdminOptions_set_request_timeout(opts, KAFKA_ADMIN_TIMEOUT_MS, err, sizeof(err));
    kafka_topic_handle(k, topic);
    rd_kafka_CreateTopics(k->rk, &nt, 1, opts, k->q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(nt);
    return 0;
}

int kafka_err_cannot_create(int err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
    case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        return 1;
    default:
        return 0;
    }
}

int kafka_flush(struct kafka *k, int timeout_ms)
{
    char buf[256];
    while (read(k->pipe_rd, buf, sizeof(buf)) > 0)
        ;
    kafka_drain_queue(k, timeout_ms, 1);
    return rd_kafka_outq_len(k->rk) == 0 ? 0 : -1;
}

/*
 * A delivery error that no retry can fix, for this message: the drain
 * dead-letters the event instead of retrying it for ever.  librdkafka has
 * already retried what it considers retriable (rd_kafka_error_is_retriable
 * covers the same ground for errors it returns as objects).
 */
int kafka_err_permanent(int err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:          /* the topic's max.message.bytes */
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:             /* an invalid topic, e.g. an internal one */
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
        return 1;
    default:
        return 0;
    }
}
