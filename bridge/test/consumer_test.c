/*
 * consumer_test.c: unit tests of consumer_batch.c, the consumer's batch
 * encoder that turns Kafka messages into the JSON arguments of
 * aegis.consume_batch: valid
 * JSON spliced in byte for byte, everything else routed to the dead letters
 * with a reason and its exact bytes, keys and headers that are not text in
 * base64, per-partition offset ranges, text mode, the fast path's binary
 * jsonb[] arrays, and no size limit.
 * Prints "ok - ..." / "not ok - ..." lines; exit status 1 if any failed.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer_batch.h"

#include "check.h"

static struct consumer_msg msg(const char *topic, int partition, long long offset, const char *key,
                               const char *value)
{
    struct consumer_msg m;

    memset(&m, 0, sizeof m);
    m.topic = topic;
    m.partition = partition;
    m.offset = offset;
    m.key = key;
    m.key_len = key ? strlen(key) : 0;
    m.value = value;
    m.value_len = value ? strlen(value) : 0;
    m.timestamp_ms = 1700000000000LL;
    return m;
}

static json_t *parse(const struct buf *b)
{
    return json_loads(b->p, JSON_DECODE_INT_AS_REAL, NULL);   /* a 100-bit integer is in there */
}

/* consumer_buf_bytes(p, n) as text */
static int bytes_are(const char *p, size_t n, const char *expected)
{
    struct buf b = { 0 };
    int same = consumer_buf_bytes(&b, p, n) == 0 && strcmp(b.p, expected) == 0;

    if (!same)
        printf("# got %s, expected %s\n", b.p ? b.p : "(nothing)", expected);
    buf_free(&b);
    return same;
}

static void test_bytes(void)
{
    CHECK("text key is a JSON string", bytes_are("k1", 2, "\"k1\""));
    CHECK("binary key is {\"base64\": ...}", bytes_are("\xff\x00\x01", 3, "{\"base64\":\"/wAB\"}"));
    CHECK("UTF-8 with a NUL byte is base64 too (jsonb cannot hold NUL)",
          bytes_are("a\0b", 3, "{\"base64\":\"YQBi\"}"));
    CHECK("no key is JSON null", bytes_are(NULL, 0, "null"));
    CHECK("an empty key is an empty string", bytes_are("", 0, "\"\""));
    CHECK("quotes, backslashes and control characters are escaped",
          bytes_are("q\"b\\s\n\x01\x7f", 8, "\"q\\\"b\\\\s\\u000a\\u0001\x7f\""));
    CHECK("valid UTF-8 (2, 3 and 4 bytes) stays text",
          bytes_are("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
          "\"\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""));
    CHECK("an overlong encoding is not text", bytes_are("\xc0\xaf", 2, "{\"base64\":\"wK8=\"}"));
    CHECK("a UTF-16 surrogate is not text", bytes_are("\xed\xa0\x80", 3, "{\"base64\":\"7aCA\"}"));
    CHECK("a truncated sequence is not text", bytes_are("\xe2\x82", 2, "{\"base64\":\"4oI=\"}"));
}

static void test_batch(void)
{
    struct consumer_batch bt;
    struct consumer_msg m[8];
    const char *names[] = { "src", "src", "bin\xff", "nil" };
    const void *values[] = { "a", "b", "x", NULL };
    const size_t sizes[] = { 1, 1, 1, 0 };
    json_t *msgs, *dead, *pos, *e, *h;
    size_t i;
    int rc = 0;

    m[0] = msg("t", 0, 10, "k0", "{ \"id\" : 1,\n \"f\": 1.50 }");
    m[0].nheaders = 4;
    m[0].header_names = names;
    m[0].header_values = values;
    m[0].header_sizes = sizes;
    m[1] = msg("t", 1, 5, NULL, "123456789012345678901234567890");
    m[2] = msg("t", 0, 11, "k2", "not json");
    m[3] = msg("t", 0, 12, "k3", NULL);
    m[4] = msg("t", 1, 6, "k4", "\xff\xfe{}");
    m[5] = msg("u", 0, 0, "k5", "\"just a string\"");
    m[6] = msg("t", 1, 7, "k6", "{\"a\":1} trailing");
    m[7] = msg("t", 0, 13, "k7", "");
    consumer_batch_init(&bt, 0);
    for (i = 0; i < 8; i++)
        rc |= consumer_batch_add(&bt, &m[i]);
    rc |= consumer_batch_finish(&bt);
    CHECK("a mixed batch encodes", rc == 0);
    msgs = parse(&bt.messages);
    dead = parse(&bt.dead);
    pos = parse(&bt.positions);
    CHECK("3 JSON values to the handler, 5 to the dead letters, 3 partitions",
          json_array_size(msgs) == 3 && json_array_size(dead) == 5 && json_array_size(pos) == 3);
    CHECK("a JSON value is spliced in byte for byte",
          strstr(bt.messages.p, "\"v\":{ \"id\" : 1,\n \"f\": 1.50 }}") != NULL);
    CHECK("an integer beyond 64 bits is valid JSON and kept exactly",
          strstr(bt.messages.p, "\"v\":123456789012345678901234567890}") != NULL);
    e = json_array_get(msgs, 0);
    h = json_object_get(json_object_get(e, "m"), "headers");
    CHECK("headers: repeated names collect an array, null values stay null, 3 names",
          json_array_size(json_object_get(h, "src")) == 2
          && json_is_null(json_object_get(h, "nil"))
          && json_object_get(h, "base64:Ymlu/w==") != NULL
          && json_object_size(h) == 3);
    CHECK("meta carries offset, key and timestamp",
          json_number_value(json_object_get(json_object_get(e, "m"), "offset")) == 10
          && strcmp(json_string_value(json_object_get(json_object_get(e, "m"), "key")), "k0") == 0
          && json_number_value(json_object_get(json_object_get(e, "m"), "timestamp"))
          == 1700000000000LL);
    e = json_array_get(dead, 0);
    CHECK("not JSON: dead letter with the text and the parser's reason",
          strcmp(json_string_value(json_object_get(e, "t")), "not json") == 0
          && strncmp(json_string_value(json_object_get(e, "e")), "value is not JSON", 17) == 0);
    e = json_array_get(dead, 1);
    CHECK("a null value: dead letter without a value",
          !json_object_get(e, "t") && !json_object_get(e, "b")
          && strstr(json_string_value(json_object_get(e, "e")), "no value") != NULL);
    e = json_array_get(dead, 2);
    CHECK("not UTF-8: dead letter with the bytes in base64",
          strcmp(json_string_value(json_object_get(e, "b")), "//57fQ==") == 0);
    e = json_array_get(dead, 3);
    CHECK("trailing bytes after a JSON value: dead letter",
          strcmp(json_string_value(json_object_get(e, "t")), "{\"a\":1} trailing") == 0);
    e = json_array_get(dead, 4);
    CHECK("an empty value: dead letter",
          json_is_string(json_object_get(e, "t")) && json_string_length(json_object_get(e, "t")) == 0);
    e = json_array_get(pos, 0);
    CHECK("positions: first and last offset per partition, dead letters included",
          strcmp(json_string_value(json_object_get(e, "topic")), "t") == 0
          && json_number_value(json_object_get(e, "first")) == 10
          && json_number_value(json_object_get(e, "last")) == 13);
    json_decref(msgs);
    json_decref(dead);
    json_decref(pos);
    consumer_batch_free(&bt);
}

static void test_text_mode(void)
{
    struct consumer_batch bt;
    struct consumer_msg m = msg("t", 2, 1, "k", "{\"q\":\"a \\\"quoted\\\" word\"}");
    json_t *msgs, *e;

    consumer_batch_init(&bt, 1);
    CHECK("text mode encodes", consumer_batch_add(&bt, &m) == 0 && consumer_batch_finish(&bt) == 0);
    msgs = parse(&bt.messages);
    e = json_array_get(msgs, 0);
    CHECK("text mode: the value travels as a JSON string equal to the bytes",
          !json_object_get(e, "v") && json_is_string(json_object_get(e, "t"))
          && strcmp(json_string_value(json_object_get(e, "t")), m.value) == 0);
    json_decref(msgs);
    consumer_batch_free(&bt);
}

static uint32_t get32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;

    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* element i of a binary jsonb[] (array_send layout); NULL when malformed */
static const char *element(const struct buf *b, size_t i, uint32_t *len)
{
    size_t at = 20, k;

    if (b->len < 20 || get32(b->p) != 1 || get32(b->p + 4) != 0 || get32(b->p + 8) != 3802
        || get32(b->p + 16) != 1 || i >= get32(b->p + 12))
        return NULL;
    for (k = 0;; k++) {
        if (at + 4 > b->len || at + 4 + get32(b->p + at) > b->len)
            return NULL;
        *len = get32(b->p + at);
        if (k == i)
            return *len >= 1 && b->p[at + 4] == 1 ? b->p + at + 4 : NULL;
        at += 4 + *len;
    }
}

static void test_fast_mode(void)
{
    struct consumer_batch bt;
    struct consumer_msg m[3];
    const char *e0, *e1, *meta;
    uint32_t n0 = 0, n1 = 0, nm = 0, total;
    json_t *j;

    m[0] = msg("t", 0, 7, "k0", "{ \"id\" : 1 }");
    m[1] = msg("t", 0, 8, "k1", "[\"\\u00e9\", 2]");
    m[2] = msg("t", 1, 3, "k2", "\"x\"");
    consumer_batch_init(&bt, CONSUMER_FAST);
    CHECK("fast mode encodes",
          consumer_batch_add(&bt, &m[0]) == 0 && consumer_batch_add(&bt, &m[1]) == 0
          && consumer_batch_add(&bt, &m[2]) == 0 && consumer_batch_finish(&bt) == 0);
    e0 = element(&bt.messages, 0, &n0);
    e1 = element(&bt.messages, 1, &n1);
    CHECK("fast mode: values are binary jsonb elements (version 1), byte for byte",
          e0 && n0 == 1 + strlen(m[0].value) && memcmp(e0 + 1, m[0].value, n0 - 1) == 0
          && e1 && n1 == 1 + strlen(m[1].value) && memcmp(e1 + 1, m[1].value, n1 - 1) == 0);
    total = 20 + 3 * 4 + 3 + (uint32_t)(strlen(m[0].value) + strlen(m[1].value) + strlen(m[2].value));
    CHECK("fast mode: a one-dimension array of 3 elements, nothing else in it",
          bt.messages.len == total && get32(bt.messages.p + 12) == 3);
    meta = element(&bt.metas, 2, &nm);
    j = meta ? json_loadb(meta + 1, nm - 1, 0, NULL) : NULL;
    CHECK("fast mode: metas are binary jsonb elements in message order",
          j && strcmp(json_string_value(json_object_get(j, "key")), "k2") == 0
          && json_integer_value(json_object_get(j, "offset")) == 3
          && json_integer_value(json_object_get(j, "partition")) == 1);
    json_decref(j);
    j = parse(&bt.positions);
    CHECK("fast mode: positions as JSON, no dead letters",
          json_array_size(j) == 2 && bt.ndead == 0 && strcmp(bt.dead.p, "[]") == 0);
    json_decref(j);
    consumer_batch_free(&bt);

    m[1] = msg("t", 0, 8, "k1", "not json");
    consumer_batch_init(&bt, CONSUMER_FAST);
    CHECK("fast mode: UTF-8 text goes to PostgreSQL unparsed (its jsonb decides)",
          consumer_batch_add(&bt, &m[0]) == 0 && consumer_batch_add(&bt, &m[1]) == 0
          && consumer_batch_finish(&bt) == 0 && bt.ndead == 0 && bt.nmessages == 2);
    consumer_batch_free(&bt);

    m[1] = msg("t", 0, 8, "k1", "\xff\xfe{}");
    m[2] = msg("t", 0, 9, "k2", "");
    consumer_batch_init(&bt, CONSUMER_FAST);
    CHECK("fast mode: a value that is not UTF-8, or empty, is dead (the batch goes to consume_batch)",
          consumer_batch_add(&bt, &m[0]) == 0 && consumer_batch_add(&bt, &m[1]) == 0
          && consumer_batch_add(&bt, &m[2]) == 0 && consumer_batch_finish(&bt) == 0
          && bt.ndead == 2 && bt.nmessages == 1);
    consumer_batch_free(&bt);

    consumer_batch_init(&bt, CONSUMER_FAST);
    CHECK("fast mode: an empty batch is two empty jsonb[]",
          consumer_batch_finish(&bt) == 0 && bt.messages.len == 12 && get32(bt.messages.p) == 0
          && get32(bt.messages.p + 8) == 3802 && bt.metas.len == 12);
    consumer_batch_free(&bt);
}

static void test_empty_and_large(void)
{
    struct consumer_batch bt;
    struct consumer_msg m;
    size_t n = 4u << 20, i;
    char *big = malloc(n + 1);
    json_t *msgs;

    consumer_batch_init(&bt, 0);
    CHECK("an empty batch is three empty arrays",
          consumer_batch_finish(&bt) == 0 && strcmp(bt.messages.p, "[]") == 0
          && strcmp(bt.dead.p, "[]") == 0 && strcmp(bt.positions.p, "[]") == 0);
    consumer_batch_free(&bt);
    if (!big)
        return;
    big[0] = '"';
    for (i = 1; i < n - 1; i++)
        big[i] = (char)('a' + i % 26);
    big[n - 1] = '"';
    big[n] = '\0';
    m = msg("t", 0, 1, NULL, big);
    consumer_batch_init(&bt, 0);
    CHECK("a 4 MiB value encodes (buffers grow)",
          consumer_batch_add(&bt, &m) == 0 && consumer_batch_finish(&bt) == 0);
    msgs = parse(&bt.messages);
    CHECK("the 4 MiB value comes back whole",
          json_string_length(json_object_get(json_array_get(msgs, 0), "v")) == n - 2);
    json_decref(msgs);
    consumer_batch_free(&bt);
    free(big);
}

int main(void)
{
    test_bytes();
    test_batch();
    test_text_mode();
    test_fast_mode();
    test_empty_and_large();
    return check_done("consumer_test");
}
