/*
 * consumer_batch.c: the consumer's batch encoder (see consumer_batch.h):
 * Kafka messages -> the JSON (or binary jsonb[]) arguments of one statement,
 * with dead letters and per-partition offset ranges.  Pure: no I/O, no
 * state beyond the batch; unit-tested by test/consumer_test.c.
 */
#define _GNU_SOURCE
#include "consumer_batch.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct consumer_pos {
    const char *topic;          /* borrowed from the message */
    int32_t partition;
    int64_t first, last;
};

/* UTF-8 as PostgreSQL accepts it (no overlongs, no surrogates), without NUL */
static int consumer_is_text(const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
    size_t i = 0, k, len;
    uint32_t cp;

    while (i < n) {
        if (p[i] == 0)
            return 0;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if (p[i] >= 0xc2 && p[i] <= 0xdf)
            len = 2, cp = p[i] & 0x1f;
        else if (p[i] >= 0xe0 && p[i] <= 0xef)
            len = 3, cp = p[i] & 0x0f;
        else if (p[i] >= 0xf0 && p[i] <= 0xf4)
            len = 4, cp = p[i] & 0x07;
        else
            return 0;
        if (n - i < len)
            return 0;
        for (k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
            || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

/* a JSON string of text that consumer_is_text accepted */
static int consumer_buf_string(struct buf *sb, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char esc[7] = "\\u00";
    size_t i, from = 0;

    if (buf_add(sb, "\"", 1) < 0)
        return -1;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        if (buf_add(sb, p + from, i - from) < 0)
            return -1;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\', esc[1] = (char)ch;
            if (buf_add(sb, esc, 2) < 0)
                return -1;
        } else {
            esc[0] = '\\', esc[1] = 'u', esc[4] = hex[ch >> 4], esc[5] = hex[ch & 15];
            if (buf_add(sb, esc, 6) < 0)
                return -1;
        }
        from = i + 1;
    }
    if (buf_add(sb, p + from, n - from) < 0)
        return -1;
    return buf_add(sb, "\"", 1);
}

/* base64 text, unquoted */
static int consumer_buf_b64(struct buf *sb, const void *p, size_t n)
{
    size_t room = 4 * ((n + 2) / 3) + 4;   /* lws wants room past the text */
    int len;

    if (n > (size_t)INT32_MAX / 2 || buf_reserve(sb, room, 0) < 0)
        return -1;
    len = lws_b64_encode_string(p, (int)n, sb->p + sb->len, (int)room);
    if (len < 0)
        return -1;
    sb->len += (size_t)len;
    return 0;
}

static int consumer_buf_base64(struct buf *sb, const void *p, size_t n)
{
    return buf_add(sb, "\"", 1) < 0 || consumer_buf_b64(sb, p, n) < 0
                   || buf_add(sb, "\"", 1) < 0
               ? -1
               : 0;
}

int consumer_buf_bytes(struct buf *sb, const void *p, size_t n)
{
    if (!p)
        return buf_str(sb, "null");
    if (consumer_is_text(p, n))
        return consumer_buf_string(sb, p, n);
    return buf_str(sb, "{\"base64\":") < 0 || consumer_buf_base64(sb, p, n) < 0
                   || buf_str(sb, "}") < 0
               ? -1
               : 0;
}

/* a header name as an object key: itself, or "base64:..." when not text */
static int consumer_buf_header_name(struct buf *sb, const char *name)
{
    struct buf b64 = { 0 };
    int rc;

    if (consumer_is_text(name, strlen(name)))
        return consumer_buf_string(sb, name, strlen(name));
    rc = buf_str(&b64, "base64:") < 0 || consumer_buf_b64(&b64, name, strlen(name)) < 0
             ? -1
             : consumer_buf_string(sb, b64.p, b64.len);
    buf_free(&b64);
    return rc;
}

/* {name: value}; a repeated name collects its values in an array; null when none */
static int consumer_buf_headers(struct buf *sb, const struct consumer_msg *m)
{
    size_t i, j, count;
    int first = 1;

    if (m->nheaders == 0)
        return buf_str(sb, "null");
    if (buf_str(sb, "{") < 0)
        return -1;
    for (i = 0; i < m->nheaders; i++) {
        for (j = 0; j < i && strcmp(m->header_names[j], m->header_names[i]) != 0; j++)
            ;
        if (j < i)
            continue;                      /* written with its first occurrence */
        for (count = 0, j = i; j < m->nheaders; j++)
            count += strcmp(m->header_names[j], m->header_names[i]) == 0;
        if ((!first && buf_str(sb, ",") < 0)
            || consumer_buf_header_name(sb, m->header_names[i]) < 0
            || buf_str(sb, count > 1 ? ":[" : ":") < 0)
            return -1;
        first = 0;
        for (count = 0, j = i; j < m->nheaders; j++) {
            if (strcmp(m->header_names[j], m->header_names[i]) != 0)
                continue;
            if ((count++ && buf_str(sb, ",") < 0)
                || consumer_buf_bytes(sb, m->header_values[j], m->header_sizes[j]) < 0)
                return -1;
        }
        if (count > 1 && buf_str(sb, "]") < 0)
            return -1;
    }
    return buf_str(sb, "}");
}

/* {"topic", "partition", "offset", "key", "headers", "timestamp"} */
static int consumer_buf_meta(struct buf *sb, const struct consumer_msg *m)
{
    char num[96];

    if (buf_str(sb, "{\"topic\":") < 0
        || consumer_buf_bytes(sb, m->topic, strlen(m->topic)) < 0)
        return -1;
    snprintf(num, sizeof num, ",\"partition\":%d,\"offset\":%" PRId64 ",\"key\":",
             (int)m->partition, m->offset);
    if (buf_str(sb, num) < 0 || consumer_buf_bytes(sb, m->key, m->key_len) < 0
        || buf_str(sb, ",\"headers\":") < 0 || consumer_buf_headers(sb, m) < 0)
        return -1;
    if (m->timestamp_ms >= 0)
        snprintf(num, sizeof num, ",\"timestamp\":%" PRId64 "}", m->timestamp_ms);
    else
        snprintf(num, sizeof num, ",\"timestamp\":null}");
    return buf_str(sb, num);
}

static int consumer_batch_note_pos(struct consumer_batch *bt, const struct consumer_msg *m)
{
    struct consumer_pos *grown;
    size_t i;

    for (i = 0; i < bt->npos; i++) {
        if (bt->pos[i].partition == m->partition && strcmp(bt->pos[i].topic, m->topic) == 0) {
            if (m->offset < bt->pos[i].first)
                bt->pos[i].first = m->offset;
            if (m->offset > bt->pos[i].last)
                bt->pos[i].last = m->offset;
            return 0;
        }
    }
    if (bt->npos == bt->pos_cap) {
        grown = realloc(bt->pos, (bt->pos_cap ? bt->pos_cap * 2 : 8) * sizeof *grown);
        if (!grown)
            return -1;
        bt->pos = grown;
        bt->pos_cap = bt->pos_cap ? bt->pos_cap * 2 : 8;
    }
    bt->pos[bt->npos++] = (struct consumer_pos){ m->topic, m->partition, m->offset, m->offset };
    return 0;
}

void consumer_batch_init(struct consumer_batch *bt, enum consumer_mode mode)
{
    memset(bt, 0, sizeof *bt);
    bt->text_mode = mode == CONSUMER_TEXT;
    bt->fast = mode == CONSUMER_FAST;
}

/* ---- binary jsonb[] (PostgreSQL's array_send layout, jsonb_send elements) ---- */

#define CONSUMER_JSONB_OID 3802
#define CONSUMER_ARRAY_HEADER 20        /* ndim, hasnull, elemtype, dim, lbound */

static void consumer_put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24), p[1] = (char)(v >> 16), p[2] = (char)(v >> 8), p[3] = (char)v;
}

/* reserves the array header, written by consumer_array_close */
static int consumer_array_open(struct buf *sb)
{
    static const char zero[CONSUMER_ARRAY_HEADER];

    return buf_add(sb, zero, sizeof zero);
}

static int consumer_array_close(struct buf *sb, size_t n)
{
    if (sb->len < CONSUMER_ARRAY_HEADER || n > INT32_MAX)
        return -1;
    consumer_put32(sb->p, n ? 1 : 0);       /* an empty array has no dimension */
    consumer_put32(sb->p + 4, 0);
    consumer_put32(sb->p + 8, CONSUMER_JSONB_OID);
    if (n == 0) {
        sb->len = 12;
        return 0;
    }
    consumer_put32(sb->p + 12, (uint32_t)n);
    consumer_put32(sb->p + 16, 1);
    return 0;
}

/* the element's length and jsonb's version byte; returns where the length goes */
static int consumer_element_open(struct buf *sb, size_t *at)
{
    *at = sb->len;
    return buf_add(sb, "\0\0\0\0\1", 5);
}

static int consumer_element_close(struct buf *sb, size_t at)
{
    size_t n = sb->len - at - 4;

    if (n > INT32_MAX)
        return -1;
    consumer_put32(sb->p + at, (uint32_t)n);
    return 0;
}

/* CONSUMER_FAST: the value into messages, the meta into metas */
static int consumer_batch_fast(struct consumer_batch *bt, const struct consumer_msg *m)
{
    size_t at;

    if ((bt->nmessages == 0 && (consumer_array_open(&bt->messages) < 0
                                || consumer_array_open(&bt->metas) < 0))
        || consumer_element_open(&bt->messages, &at) < 0
        || buf_add(&bt->messages, m->value, m->value_len) < 0
        || consumer_element_close(&bt->messages, at) < 0
        || consumer_element_open(&bt->metas, &at) < 0 || consumer_buf_meta(&bt->metas, m) < 0
        || consumer_element_close(&bt->metas, at) < 0)
        return -1;
    bt->nmessages++;
    return 0;
}

/* {"m": meta, "e": why, "t"|"b": value} into dead */
static int consumer_batch_dead(struct consumer_batch *bt, const struct consumer_msg *m,
                               const char *why)
{
    struct buf *sb = &bt->dead;

    if (buf_str(sb, bt->ndead++ ? ",{\"m\":" : "[{\"m\":") < 0
        || consumer_buf_meta(sb, m) < 0 || buf_str(sb, ",\"e\":") < 0
        || consumer_buf_string(sb, why, strlen(why)) < 0)
        return -1;
    if (m->value && consumer_is_text(m->value, m->value_len)) {
        if (buf_str(sb, ",\"t\":") < 0 || consumer_buf_string(sb, m->value, m->value_len) < 0)
            return -1;
    } else if (m->value) {
        if (buf_str(sb, ",\"b\":") < 0 || consumer_buf_base64(sb, m->value, m->value_len) < 0)
            return -1;
    }
    return buf_str(sb, "}");
}

/* Valid JSON is spliced in as received ("v"), or as a JSON string ("t"). */
static int consumer_batch_good(struct consumer_batch *bt, const struct consumer_msg *m)
{
    struct buf *sb = &bt->messages;

    if (bt->fast)
        return consumer_batch_fast(bt, m);
    if (buf_str(sb, bt->nmessages++ ? ",{\"m\":" : "[{\"m\":") < 0
        || consumer_buf_meta(sb, m) < 0)
        return -1;
    if (bt->text_mode)
        return buf_str(sb, ",\"t\":") < 0 || consumer_buf_string(sb, m->value, m->value_len) < 0
                       || buf_str(sb, "}") < 0
                   ? -1
                   : 0;
    return buf_str(sb, ",\"v\":") < 0 || buf_add(sb, m->value, m->value_len) < 0
                   || buf_str(sb, "}") < 0
               ? -1
               : 0;
}

/* jansson's error text quotes the offending bytes and may cut a UTF-8
 * character (and snprintf may cut one too): the reason goes into a jsonb
 * parameter, so keep it ASCII (fuzz finding dead-letter-reason-cuts-utf8) */
static void consumer_ascii_only(char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s >= 0x80 || (unsigned char)*s < 0x20)
            *s = '?';
    }
}

int consumer_batch_add(struct consumer_batch *bt, const struct consumer_msg *m)
{
    json_error_t jerr;
    json_t *v;
    char why[300];

    if (consumer_batch_note_pos(bt, m) < 0)
        return -1;
    if (!m->value)
        return consumer_batch_dead(bt, m, "message has no value (null)");
    if (memchr(m->value, '\0', m->value_len))
        return consumer_batch_dead(bt, m, "value is not JSON: it contains a NUL byte");
    if (bt->fast && m->value_len > 0 && consumer_is_text(m->value, m->value_len))
        return consumer_batch_good(bt, m);   /* PostgreSQL parses it; if it refuses,
                                              * consume_batch gets the batch */
    v = json_loadb(m->value, m->value_len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!v) {
        snprintf(why, sizeof why, "value is not JSON: %s at line %d column %d", jerr.text,
                 jerr.line, jerr.column);
        consumer_ascii_only(why);
        return consumer_batch_dead(bt, m, why);
    }
    json_decref(v);
    return consumer_batch_good(bt, m);
}

int consumer_batch_finish(struct consumer_batch *bt)
{
    char num[96];
    size_t i;

    if (bt->fast) {
        if ((bt->nmessages == 0 && (consumer_array_open(&bt->messages) < 0
                                    || consumer_array_open(&bt->metas) < 0))
            || consumer_array_close(&bt->messages, bt->nmessages) < 0
            || consumer_array_close(&bt->metas, bt->nmessages) < 0)
            return -1;
    } else if (buf_str(&bt->messages, bt->nmessages ? "]" : "[]") < 0) {
        return -1;
    }
    if (buf_str(&bt->dead, bt->ndead ? "]" : "[]") < 0
        || buf_str(&bt->positions, "[") < 0)
        return -1;
    for (i = 0; i < bt->npos; i++) {
        if (buf_str(&bt->positions, i ? ",{\"topic\":" : "{\"topic\":") < 0
            || consumer_buf_bytes(&bt->positions, bt->pos[i].topic, strlen(bt->pos[i].topic)) < 0)
            return -1;
        snprintf(num, sizeof num, ",\"partition\":%d,\"first\":%" PRId64 ",\"last\":%" PRId64 "}",
                 (int)bt->pos[i].partition, bt->pos[i].first, bt->pos[i].last);
        if (buf_str(&bt->positions, num) < 0)
            return -1;
    }
    return buf_str(&bt->positions, "]");
}

void consumer_batch_free(struct consumer_batch *bt)
{
    buf_free(&bt->messages);
    buf_free(&bt->metas);
    buf_free(&bt->dead);
    buf_free(&bt->positions);
    free(bt->pos);
    memset(bt, 0, sizeof *bt);
}
