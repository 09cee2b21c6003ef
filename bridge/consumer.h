/*
 * consumer.h: the Kafka -> PostgreSQL side of aegis-bridge.  Each configured
 * consumer is a librdkafka group member plus its own PostgreSQL connections;
 * messages go, a batch per statement, to a prepared statement that fences
 * with aegis.consumer_claim and calls the SQL handler (or to
 * aegis.consume_batch), storing the offsets in the same transaction.
 * Partitions are assigned from the offsets stored in PostgreSQL, never from
 * Kafka's.
 */
#ifndef AEGIS_CONSUMER_H
#define AEGIS_CONSUMER_H

struct bridge;
struct consumer_set;

/* Checks every handler (blocking, before the loop runs), then starts every
 * consumer.  Returns 0, or -1 after logging why (missing handler, wrong
 * signature, PostgreSQL unreachable, Kafka off, bad -X pair): main exits. */
int consumers_start(struct bridge *b);
/* Leaves the groups and frees everything; a batch still in flight is left to
 * PostgreSQL (it commits or aborts as a whole).  Safe when nothing started. */
void consumers_stop(struct bridge *b);

#endif
