/*
 * consumer_batch.h: the consumer's batch encoder, pure and unit-tested:
 * Kafka messages (views) -> the arguments of aegis.consume_batch or of the
 * fast path's prepared statement, written into struct bufs (buf.h).
 */
#ifndef AEGIS_CONSUMER_BATCH_H
#define AEGIS_CONSUMER_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"


/* One Kafka message as the encoder sees it (a view, nothing owned). */
struct consumer_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;            /* NULL: no key */
    size_t key_len;
    const void *value;          /* NULL: no value (tombstone) */
    size_t value_len;
    int64_t timestamp_ms;       /* -1: none */
    size_t nheaders;
    const char *const *header_names;
    const void *const *header_values;   /* NULL entry: header without value */
    const size_t *header_sizes;
};

/* How a batch is encoded (consumer_batch_init). */
enum consumer_mode {
    CONSUMER_EMBED = 0,     /* consume_batch, values spliced into messages ("v") */
    CONSUMER_TEXT = 1,      /* consume_batch, values as JSON strings ("t") */
    CONSUMER_FAST = 2       /* the prepared statement: messages and metas are
                             * jsonb[] in binary format (values spliced) */
};

/* The JSON arguments of aegis.consume_batch for one batch (CONSUMER_EMBED,
 * CONSUMER_TEXT), or those of the fast path's prepared statement
 * (CONSUMER_FAST: positions, messages, metas; dead is filled as in the other
 * modes, and a batch with dead letters goes to consume_batch instead). */
struct consumer_batch {
    struct buf messages;   /* [{"m": meta, "v": value} or {"m", "t"}] */
    struct buf metas;      /* CONSUMER_FAST: jsonb[] of the metas */
    struct buf dead;       /* [{"m": meta, "t" or "b", "e": error}] */
    struct buf positions;  /* [{"topic", "partition", "first", "last"}] */
    size_t nmessages, ndead;
    struct consumer_pos *pos;       /* per partition first/last offsets */
    size_t npos, pos_cap;
    int text_mode;                  /* values as JSON text ("t") instead of embedded */
    int fast;                       /* CONSUMER_FAST */
};

void consumer_batch_init(struct consumer_batch *bt, enum consumer_mode mode);
/* Adds one message: valid JSON goes to messages, anything else to dead with
 * the reason.  In CONSUMER_FAST, any non-empty UTF-8 text without NUL goes
 * to messages unchecked (PostgreSQL's jsonb is the check there).  Returns 0,
 * or -1 when out of memory. */
int consumer_batch_add(struct consumer_batch *bt, const struct consumer_msg *m);
/* Closes the arrays; the buffers are then NUL-terminated JSON texts, except
 * messages and metas in CONSUMER_FAST: binary arrays of messages.len bytes. */
int consumer_batch_finish(struct consumer_batch *bt);
void consumer_batch_free(struct consumer_batch *bt);

/* Appends Kafka bytes as JSON: a string when UTF-8 without NUL, else
 * {"base64": "..."}; null for NULL.  Returns 0, or -1 when out of memory. */
int consumer_buf_bytes(struct buf *sb, const void *p, size_t n);

#endif
