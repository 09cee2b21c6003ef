/*
 * bridge_text: libFuzzer target for the bridge's checks of decoded query
 * values and headers: http_text_ok (?message=), sse_parse_event_id
 * (Last-Event-ID / ?last_event_id=) and sse_id_valid (?agent_id=...), and
 * for the SSE framing of an event (sse_format_event).  The first byte picks
 * the check; the rest is the value.  Each is compared with its rule written
 * out again here (UTF-8 as PostgreSQL takes it, no C0 control but tab and
 * newline, no DEL; 1-19 decimal digits up to 2^63-1; the SSE frame parses
 * back, per the HTML spec's event stream rules, to one event with the same
 * id, type and data).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_bytes.h"
#include "http.h"
#include "sse.h"

static int text_rule(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i], need, cp;
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
                return 0;
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

static void check_event_id(const char *s)
{
    long long got = -1;
    int rc = sse_parse_event_id(s, &got);
    size_t n = strlen(s);
    int digits = n >= 1 && n <= 19 && strspn(s, "0123456789") == n;
    unsigned long long v = digits ? strtoull(s, NULL, 10) : 0;
    int ok = digits && v <= 9223372036854775807ULL;

    if ((rc == 0) != ok)
        fuzz_fail(ok ? "a good event id refused" : "a bad event id accepted", s);
    if (ok && (unsigned long long)got != v)
        fuzz_fail("an event id parsed to another number", s);
}

/* parses an event stream frame back (CR, LF or CRLF end lines) */
static void check_frame(long long id, const char *type, const char *data)
{
    size_t len = 0, i = 0, events = 0;
    char *out = sse_format_event(id, type, data, &len);
    char *got_data = calloc(1, len + 1), *got_type = NULL, *got_id = NULL;
    char want_id[32];
    size_t dl = 0;
    int first_data = 1;

    if (!out || !got_data)
        abort();
    if (strlen(out) != len)
        fuzz_fail("a frame whose length is not its text's", NULL);
    while (i < len) {
        size_t e = i, l;
        char *colon, *val;

        while (e < len && out[e] != '\n' && out[e] != '\r')
            e++;
        if (e == len)
            fuzz_fail("a frame that does not end with a line end", out);
        l = e - i;
        if (l == 0) {
            events++;
        } else {
            char *line = strndup(out + i, l);
            colon = strchr(line, ':');
            val = colon ? colon + 1 + (colon[1] == ' ') : line + l;
            if (colon)
                *colon = '\0';
            if (!strcmp(line, "data")) {
                if (!first_data)
                    got_data[dl++] = '\n';
                memcpy(got_data + dl, val, strlen(val));
                dl += strlen(val);
                first_data = 0;
            } else if (!strcmp(line, "event")) {
                free(got_type);
                got_type = strdup(val);
            } else if (!strcmp(line, "id")) {
                free(got_id);
                got_id = strdup(val);
            } else {
                fuzz_fail("a frame with a field of another name", out);
            }
            free(line);
        }
        i = e + (out[e] == '\r' && e + 1 < len && out[e + 1] == '\n' ? 2 : 1);
    }
    snprintf(want_id, sizeof want_id, "%lld", id);
    if (events != 1)
        fuzz_fail("a frame that is not exactly one event", out);
    if (!got_id || strcmp(got_id, want_id) || !got_type || strcmp(got_type, type))
        fuzz_fail("a frame with another id or type", out);
    {
        /* the data minus CR, which the frame drops (it would end a line) */
        char *want = malloc(strlen(data) + 1);
        size_t w = 0;
        for (const char *p = data; *p; p++)
            if (*p != '\r')
                want[w++] = *p;
        want[w] = '\0';
        if (strcmp(got_data, want) != 0)
            fuzz_fail("a frame whose data reads back otherwise", out);
        free(want);
    }
    free(got_type);
    free(got_id);
    free(got_data);
    free(out);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct fuzz_bytes f = { data, size };
    unsigned which = fuzz_u8(&f);
    char *s;

    switch (which % 4) {
    case 0:
        if (http_text_ok((const char *)f.p, f.n) != text_rule(f.p, f.n))
            fuzz_fail("http_text_ok disagrees with the text rule", NULL);
        break;
    case 1:
        s = strndup((const char *)f.p, f.n);
        check_event_id(s);
        free(s);
        break;
    case 2:
        s = strndup((const char *)f.p, f.n);
        if (sse_id_valid(s, strlen(s)) !=
            (strlen(s) >= 1 && strlen(s) <= 128 &&
             strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-") == strlen(s)))
            fuzz_fail("sse_id_valid disagrees with the id rule", s);
        free(s);
        break;
    default: {
        /* event types are the models' names upstream: no CR or LF */
        long long id = (long long)(((unsigned long long)fuzz_u16(&f) << 48) ^ fuzz_u16(&f)) & 0x7fffffffffffffffLL;
        char *type = fuzz_cstr(&f, 64);
        char *d = strndup((const char *)f.p, f.n);
        type[strcspn(type, "\r\n")] = '\0';
        check_frame(id, type, d);
        free(type);
        free(d);
    }
    }
    return 0;
}
