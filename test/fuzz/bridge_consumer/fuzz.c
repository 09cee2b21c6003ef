/*
 * bridge_consumer: libFuzzer target for the consumer's encoding of Kafka
 * messages (consumer_batch_add / consumer_batch_finish): a batch of up to 16
 * messages read off the input (topic, partition, offset, key, value,
 * headers, timestamp), in the mode the first byte picks.  Checked against
 * what the handler must receive: the JSON texts parse (jansson); there is one
 * entry per message in messages or dead; each entry's topic, partition,
 * offset, key, headers and value decode (strings, or base64) to the bytes
 * sent; in the fast mode the binary arrays have the layout of array_send
 * with the value's bytes as sent; positions cover each partition's offsets.
 */
#include <jansson.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

#include "consumer_batch.h"
#include "fuzz_bytes.h"

#define MAX_MSGS 16
#define MAX_HDRS 4

struct msg {
    struct consumer_msg m;
    char *topic;
    const char *names[MAX_HDRS];
    const void *values[MAX_HDRS];
    size_t sizes[MAX_HDRS];
    char *owned_names[MAX_HDRS];
};

/* a JSON number as an integer (messages are parsed with integers as reals) */
static long long jint(const json_t *j)
{
    if (json_is_integer(j))
        return json_integer_value(j);
    if (json_is_real(j))
        return (long long)json_real_value(j);
    return -999999;
}

/* UTF-8 as PostgreSQL takes it (no overlongs, surrogates), no NUL */
static int utf8_rule(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i], need, cp;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, cp = c & 0x07;
        else
            return 0;
        if (len - i <= need)
            return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* decodes a consumer_buf_bytes value: a string, {"base64": "..."}, or null */
static int same_bytes(json_t *j, const void *p, size_t n)
{
    if (!p)
        return json_is_null(j);
    if (json_is_string(j))
        return json_string_length(j) == n && memcmp(json_string_value(j), p, n) == 0;
    if (json_is_object(j) && json_object_size(j) == 1 &&
        json_is_string(json_object_get(j, "base64"))) {
        const char *b = json_string_value(json_object_get(j, "base64"));
        char *out = malloc(n + 8);
        int len = lws_b64_decode_string(b, out, (int)n + 8);
        int same = len == (int)n && memcmp(out, p, n) == 0;
        free(out);
        return same;
    }
    return 0;
}

static int base64_is(const char *b, const void *p, size_t n)
{
    char *out = malloc(n + 8);
    int len = lws_b64_decode_string(b, out, (int)n + 8);
    int same = len == (int)n && memcmp(out, p, n) == 0;
    free(out);
    return same;
}

static void check_meta(json_t *meta, const struct msg *x)
{
    const struct consumer_msg *m = &x->m;
    json_t *h = json_object_get(meta, "headers");

    if (!json_is_object(meta) || !same_bytes(json_object_get(meta, "topic"), m->topic, strlen(m->topic)) ||
        jint(json_object_get(meta, "partition")) != m->partition ||
        jint(json_object_get(meta, "offset")) != m->offset ||
        !same_bytes(json_object_get(meta, "key"), m->key, m->key_len))
    {
        char *text = json_dumps(meta, JSON_ENCODE_ANY);
        fuzz_fail("a meta whose topic, partition, offset or key differs", text);
    }
    if (m->timestamp_ms >= 0 ? jint(json_object_get(meta, "timestamp")) != m->timestamp_ms
                             : !json_is_null(json_object_get(meta, "timestamp")))
        fuzz_fail("a meta with another timestamp", NULL);
    if (m->nheaders == 0) {
        if (!json_is_null(h))
            fuzz_fail("headers where there were none", NULL);
        return;
    }
    for (size_t i = 0; i < m->nheaders; i++) {
        /* the name as text, or "base64:..." */
        json_t *v = json_object_get(h, m->header_names[i]);
        size_t k, count = 0, nth = 0;
        if (!v) {
            const char *key;
            json_t *val;
            json_object_foreach(h, key, val) {
                if (!strncmp(key, "base64:", 7) &&
                    base64_is(key + 7, m->header_names[i], strlen(m->header_names[i])))
                    v = val;
            }
        }
        if (!v)
            fuzz_fail("a header name lost", m->header_names[i]);
        for (k = 0; k < m->nheaders; k++)
            if (!strcmp(m->header_names[k], m->header_names[i])) {
                if (k < i)
                    nth++;
                count++;
            }
        if (count > 1 ? !json_is_array(v) || json_array_size(v) != count ||
                            !same_bytes(json_array_get(v, nth), m->header_values[i], m->header_sizes[i])
                      : !same_bytes(v, m->header_values[i], m->header_sizes[i]))
            fuzz_fail("a header value differs", m->header_names[i]);
    }
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* array_send of jsonb: header, then per element length, version 1, text */
static void check_fast(const struct buf *b, size_t n, struct msg *msgs, size_t *idx, int metas)
{
    const unsigned char *p = (const unsigned char *)b->p;
    size_t at;

    if (b->len < 12 || get32(p) != (n ? 1u : 0u) || get32(p + 4) != 0 || get32(p + 8) != 3802)
        fuzz_fail("a fast-path array header that is wrong", NULL);
    if (n == 0) {
        if (b->len != 12)
            fuzz_fail("an empty fast-path array with bytes after its header", NULL);
        return;
    }
    if (b->len < 20 || get32(p + 12) != n || get32(p + 16) != 1)
        fuzz_fail("a fast-path array dimension that is wrong", NULL);
    at = 20;
    for (size_t i = 0; i < n; i++) {
        uint32_t len = 0;
        struct msg *x = &msgs[idx[i]];
        if (at + 5 > b->len || (len = get32(p + at)) < 1 || at + 4 + len > b->len || p[at + 4] != 1)
            fuzz_fail("a fast-path element that overruns or has no version byte", NULL);
        if (metas) {
            json_error_t e;
            json_t *meta = json_loadb((const char *)p + at + 5, len - 1, 0, &e);
            if (!meta)
                fuzz_fail("a fast-path meta that is not JSON", e.text);
            check_meta(meta, x);
            json_decref(meta);
        } else if (len - 1 != x->m.value_len || memcmp(p + at + 5, x->m.value, len - 1) != 0) {
            fuzz_fail("a fast-path value that is not the bytes sent", NULL);
        }
        at += 4 + len;
    }
    if (at != b->len)
        fuzz_fail("bytes after the last fast-path element", NULL);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct fuzz_bytes f = { data, size };
    enum consumer_mode mode = (enum consumer_mode)(fuzz_u8(&f) % 3);
    size_t nmsgs = fuzz_u8(&f) % (MAX_MSGS + 1), fast_idx[MAX_MSGS], nfast = 0;
    struct msg msgs[MAX_MSGS];
    struct consumer_batch bt;
    json_error_t e;
    json_t *messages = NULL, *dead = NULL, *positions;

    memset(msgs, 0, sizeof msgs);
    consumer_batch_init(&bt, mode);
    for (size_t i = 0; i < nmsgs; i++) {
        struct msg *x = &msgs[i];
        unsigned flags = fuzz_u8(&f);
        size_t len;

        x->topic = fuzz_cstr(&f, 40);
        x->m.topic = x->topic;
        x->m.partition = (int32_t)(fuzz_u8(&f) % 4) - (flags & 0x80 ? 1 : 0);
        x->m.offset = (int64_t)fuzz_u16(&f) * (flags & 0x40 ? 1000000007LL : 1);
        x->m.key = fuzz_take(&f, 64, &len);
        x->m.key_len = len;
        if (flags & 1)
            x->m.key = NULL, x->m.key_len = 0;
        x->m.value = fuzz_take(&f, 4096, &len);
        x->m.value_len = len;
        if (flags & 2)
            x->m.value = NULL, x->m.value_len = 0;
        x->m.timestamp_ms = flags & 4 ? -1 : (int64_t)fuzz_u16(&f) * 1000;
        x->m.nheaders = (flags >> 3) % (MAX_HDRS + 1);
        for (size_t h = 0; h < x->m.nheaders; h++) {
            x->owned_names[h] = fuzz_cstr(&f, 16);
            x->names[h] = x->owned_names[h];
            x->values[h] = fuzz_take(&f, 64, &x->sizes[h]);
            if (fuzz_u8(&f) & 1)
                x->values[h] = NULL, x->sizes[h] = 0;
        }
        x->m.header_names = x->names;
        x->m.header_values = x->values;
        x->m.header_sizes = x->sizes;
        if (consumer_batch_add(&bt, &x->m) < 0)
            fuzz_fail("consumer_batch_add failed (out of memory?)", NULL);
    }
    if (consumer_batch_finish(&bt) < 0)
        fuzz_fail("consumer_batch_finish failed", NULL);
    if (bt.nmessages + bt.ndead != nmsgs)
        fuzz_fail("messages lost or doubled", NULL);

    dead = json_loads(bt.dead.p, 0, &e);
    if (!json_is_array(dead) || json_array_size(dead) != bt.ndead) {
        if (getenv("FUZZ_DEBUG"))
            fprintf(stderr, "%s\n", bt.dead.p);
        fuzz_fail("dead letters that are not a JSON array of one entry each", e.text);
    }
    positions = json_loads(bt.positions.p, 0, &e);
    if (!json_is_array(positions))
        fuzz_fail("positions that are not a JSON array", e.text);
    if (mode != CONSUMER_FAST) {
        messages = json_loads(bt.messages.p, JSON_DECODE_INT_AS_REAL, &e);
        if (!json_is_array(messages) || json_array_size(messages) != bt.nmessages)
            fuzz_fail("messages that are not a JSON array of one entry per message", e.text);
    }
    /* entries in order: each message is the next of messages or of dead */
    {
        size_t mi = 0, di = 0;
        for (size_t i = 0; i < nmsgs; i++) {
            struct msg *x = &msgs[i];
            const struct consumer_msg *m = &x->m;
            int is_dead = !m->value || memchr(m->value, 0, m->value_len) != NULL;

            if (!is_dead && !(mode == CONSUMER_FAST && m->value_len > 0 &&
                              utf8_rule(m->value, m->value_len))) {
                json_t *j = json_loadb(m->value, m->value_len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &e);
                is_dead = j == NULL;
                json_decref(j);
            }
            if (is_dead) {
                json_t *d = json_array_get(dead, di++);
                json_t *t = json_object_get(d, "t"), *b = json_object_get(d, "b");
                if (!d)
                    fuzz_fail("a refused message missing from dead", NULL);
                check_meta(json_object_get(d, "m"), x);
                if (!json_is_string(json_object_get(d, "e")))
                    fuzz_fail("a dead letter without a reason", NULL);
                if (m->value ? !(t ? same_bytes(t, m->value, m->value_len)
                                   : json_is_string(b) && base64_is(json_string_value(b), m->value, m->value_len))
                             : (t || b))
                    fuzz_fail("a dead letter whose value is not the bytes sent", NULL);
            } else if (mode == CONSUMER_FAST) {
                fast_idx[nfast++] = i;
                mi++;
            } else {
                json_t *entry = json_array_get(messages, mi++);
                json_t *v = json_object_get(entry, "v"), *t = json_object_get(entry, "t");
                if (!entry)
                    fuzz_fail("an accepted message missing from messages", NULL);
                check_meta(json_object_get(entry, "m"), x);
                if (mode == CONSUMER_TEXT) {
                    if (!same_bytes(t, m->value, m->value_len))
                        fuzz_fail("a text-mode value that is not the text sent", NULL);
                } else {
                    json_t *want = json_loadb(m->value, m->value_len,
                                              JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &e);
                    if (!want || !v || !json_equal(want, v))
                        fuzz_fail("an embedded value that is not the JSON sent", NULL);
                    json_decref(want);
                }
            }
        }
        if (mi != bt.nmessages || di != bt.ndead)
            fuzz_fail("more entries than messages", NULL);
    }
    if (mode == CONSUMER_FAST) {
        check_fast(&bt.messages, bt.nmessages, msgs, fast_idx, 0);
        check_fast(&bt.metas, bt.nmessages, msgs, fast_idx, 1);
    }
    /* positions: each message's offset within its partition's range */
    for (size_t i = 0; i < nmsgs; i++) {
        size_t k;
        for (k = 0; k < json_array_size(positions); k++) {
            json_t *p = json_array_get(positions, k);
            if (same_bytes(json_object_get(p, "topic"), msgs[i].m.topic, strlen(msgs[i].m.topic)) &&
                jint(json_object_get(p, "partition")) == msgs[i].m.partition &&
                jint(json_object_get(p, "first")) <= msgs[i].m.offset &&
                jint(json_object_get(p, "last")) >= msgs[i].m.offset)
                break;
        }
        if (k == json_array_size(positions))
            fuzz_fail("a message outside the positions", msgs[i].m.topic);
    }
    json_decref(messages);
    json_decref(dead);
    json_decref(positions);
    consumer_batch_free(&bt);
    for (size_t i = 0; i < nmsgs; i++) {
        free(msgs[i].topic);
        for (size_t h = 0; h < msgs[i].m.nheaders; h++)
            free(msgs[i].owned_names[h]);
    }
    return 0;
}
