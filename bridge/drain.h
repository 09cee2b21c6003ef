/*
 * drain.h: the PostgreSQL -> Kafka drain of aegis-bridge.  Reads topic events
 * after a durable cursor ('kafka-drain', aegis.cursor_position) in the
 * store's one order, produces them with kafka.c, and advances the cursor only over the
 * acknowledged prefix.  One drain per database at a time (advisory lock).
 */
#ifndef AEGIS_DRAIN_H
#define AEGIS_DRAIN_H

struct bridge;

/* Starts the drain when Kafka is configured and the drain enabled (otherwise
 * logs why not and returns 0).  Returns -1 on a bad Kafka configuration
 * (logged with the offending property); the caller should exit. */
int drain_start(struct bridge *b);

/* Shutdown: stops reading, flushes up to cfg.flush_timeout_ms, stores the
 * cursor, releases everything.  Blocks (shutdown only).  Safe without start. */
void drain_stop(struct bridge *b);

/* "off", "standby", "connecting", "up" or "down" (for /healthz). */
const char *drain_kafka_state(const struct bridge *b);

#endif
