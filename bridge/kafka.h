/*
 * kafka.h: the bridge's Kafka producer and admin client (librdkafka): an
 * idempotent acks=all producer configured from the bootstrap servers and the
 * -X pairs, topic creation with the Admin API, and every librdkafka event
 * (delivery reports, errors, logs, statistics, admin results) served from
 * one queue whose wake-ups arrive on a pipe the caller watches (kafka_fd).
 * Knows nothing of PostgreSQL or of the event loop: drain.c wires it in.
 * Also the one librdkafka property setter and log-level mapping, which the
 * consumers (consumer.c) share.
 */
#ifndef AEGIS_KAFKA_H
#define AEGIS_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"

struct kafka;

enum kafka_state { KAFKA_CONNECTING = 0, KAFKA_UP, KAFKA_DOWN };

struct kafka_callbacks {
    /* once per accepted message; err 0 = acknowledged by Kafka */
    void (*on_delivery)(void *ud, uint64_t opaque, int err, const char *errstr);
    /* result of kafka_create_topic; err 0 = created or already existed;
     * topic NULL when the whole request failed (timeout, no broker) */
    void (*on_topic)(void *ud, const char *topic, int err, const char *errstr);
    /* a fatal producer error: the producer must be recreated */
    void (*on_fatal)(void *ud, const char *errstr);
};

struct kafka_msg {
    const char *topic;
    const char *key;            /* NULL: no key */
    size_t key_len;
    const char *value;
    size_t value_len;
    const char *headers_json;   /* a JSON object of string values, or NULL */
    const char *event_type;     /* header aegis-event-type (NULL: omitted) */
    int64_t event_id;           /* header aegis-event-id */
    uint64_t opaque;            /* handed back in on_delivery */
};

enum kafka_produce_result { KAFKA_PRODUCE_OK = 0, KAFKA_PRODUCE_FULL, KAFKA_PRODUCE_ERROR };

/* Checks the bootstrap servers and the -X pairs without connecting anywhere.
 * Returns 0, or -1 with *errmsg (malloc'd, names the property and value). */
int kafka_config_check(const char *bootstrap, const struct config_kv *props, size_t nprops,
                       char **errmsg);

/* Sets one librdkafka property (the producer's and the consumers' one setter).
 * Returns 0, or -1 with *errmsg (malloc'd: "<origin> key=value refused by
 * librdkafka: <reason>"). */
int kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, const char *origin,
                   char **errmsg);
/* librdkafka's syslog-style level (0-7) as the bridge's log level. */
enum log_level kafka_log_level(int syslog_level);

/* Creates the producer (it starts connecting in librdkafka's threads).
 * Returns NULL with *errmsg (malloc'd) on a bad configuration. */
struct kafka *kafka_new(const char *bootstrap, const struct config_kv *props, size_t nprops,
                        const struct kafka_callbacks *cbs, void *ud, char **errmsg);
/* Purges what is not yet delivered (no delivery reports follow), waits at most
 * wait_ms for librdkafka to wind down, destroys it.  NULL is fine. */
void kafka_free(struct kafka *k, int wait_ms);

/* Readable when events wait; then call kafka_serve. */
int kafka_fd(const struct kafka *k);
/* Drains the wake-up pipe and serves every queued event (callbacks run here).
 * Returns the number of events served. */
int kafka_serve(struct kafka *k);

enum kafka_produce_result kafka_produce(struct kafka *k, const struct kafka_msg *m,
                                        char *errbuf, size_t errlen);
/* Starts CreateTopics; the result arrives through on_topic.  0 or -1. */
int kafka_create_topic(struct kafka *k, const char *topic, int partitions, int replication_factor);

/* 1 when a CreateTopics error means this client may not or cannot create
 * topics here (no permission, broker without the API): the topic may exist. */
int kafka_err_cannot_create(int err);

/* Blocks up to timeout_ms until every message is delivered or failed, then
 * serves the reports.  Returns 0 when nothing is left in flight.  Shutdown only. */
int kafka_flush(struct kafka *k, int timeout_ms);
int kafka_outq_len(const struct kafka *k);
enum kafka_state kafka_get_state(const struct kafka *k);
const char *kafka_state_name(enum kafka_state s);

/* For tests: makes the producer raise a fatal error as if the broker had sent one. */
int kafka_test_fatal(struct kafka *k, const char *reason);

#endif
