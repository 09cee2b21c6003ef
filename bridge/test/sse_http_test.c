/*
 * sse_http_test.c: unit tests of the pure request helpers of sse.c and
 * http.c: id and Last-Event-ID validation, SSE framing, routing, static
 * file names and message text checks.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "sse.h"

#include "check.h"

static int id_ok(const char *s)
{
    return sse_id_valid(s, strlen(s));
}

static void test_ids(void)
{
    char long_id[200];

    CHECK("simple id", id_ok("cl-1"));
    CHECK("all allowed characters", id_ok("Az09_.:-"));
    CHECK("empty id rejected", !id_ok(""));
    CHECK("space rejected", !id_ok("a b"));
    CHECK("quote rejected", !id_ok("a'b"));
    CHECK("slash rejected", !id_ok("a/b"));
    CHECK("percent rejected", !id_ok("a%20"));
    CHECK("non-ASCII rejected", !id_ok("caf\xc3\xa9"));
    memset(long_id, 'a', sizeof long_id);
    CHECK("128 characters accepted", sse_id_valid(long_id, 128));
    CHECK("129 characters rejected", !sse_id_valid(long_id, 129));
    CHECK("embedded NUL rejected", !sse_id_valid("a\0b", 3));
}

static void test_event_ids(void)
{
    long long v = -1;

    CHECK("0 parses", sse_parse_event_id("0", &v) == 0 && v == 0);
    CHECK("42 parses", sse_parse_event_id("42", &v) == 0 && v == 42);
    CHECK("19 digits (int8 max) parse", sse_parse_event_id("9223372036854775807", &v) == 0 &&
          v == 9223372036854775807LL);
    CHECK("19 digits above int8 max rejected", sse_parse_event_id("9223372036854775808", &v) < 0);
    CHECK("20 digits rejected", sse_parse_event_id("12345678901234567890", &v) < 0);
    CHECK("empty rejected", sse_parse_event_id("", &v) < 0);
    CHECK("negative rejected", sse_parse_event_id("-1", &v) < 0);
    CHECK("plus sign rejected", sse_parse_event_id("+1", &v) < 0);
    CHECK("spaces rejected", sse_parse_event_id(" 1", &v) < 0);
    CHECK("hex rejected", sse_parse_event_id("0x10", &v) < 0);
    CHECK("exponent rejected", sse_parse_event_id("1e3", &v) < 0);
}

static void test_format(void)
{
    size_t len = 0;
    char *m = sse_format_event(7, "agent_status", "{\"a\": 1}", &len);

    CHECK("one-line JSON framing", m && !strcmp(m, "id: 7\nevent: agent_status\ndata: {\"a\": 1}\n\n") &&
          len == strlen(m));
    free(m);
    m = sse_format_event(8, "x", "line1\nline2\r\n", &len);
    CHECK("newlines become data lines, CR dropped", m && !strcmp(m, "id: 8\nevent: x\ndata: line1\ndata: line2\ndata: \n\n"));
    free(m);
}

static void test_routes(void)
{
    const char *id;
    int n;

    CHECK("workspace route", http_route_of("/workspaces/cl-1/stream", &id, &n, 0) == ROUTE_WORKSPACE &&
          n == 4 && !strncmp(id, "cl-1", 4));
    CHECK("conversation route", http_route_of("/conversations/conv-1/stream", &id, &n, 0) ==
          ROUTE_CONVERSATION && n == 6);
    CHECK("missing id routes to the stream (then 400)",
          http_route_of("/workspaces/stream", &id, &n, 0) == ROUTE_WORKSPACE && n == 0);
    CHECK("run requests route",
          http_route_of("/conversations/conv-1/runs", &id, &n, 0) == ROUTE_RUNS && n == 6
              && !strncmp(id, "conv-1", 6));
    CHECK("runs with a slash in the id route (then 400)",
          http_route_of("/conversations/a/b/runs", &id, &n, 0) == ROUTE_RUNS && n == 3);
    CHECK("runs on a workspace do not route",
          http_route_of("/workspaces/w/runs", &id, &n, 0) == ROUTE_NONE);
    CHECK("nested id keeps the slash (then 400)",
          http_route_of("/conversations/a/b/stream", &id, &n, 0) == ROUTE_CONVERSATION && n == 3);
    CHECK("healthz", http_route_of("/healthz", &id, &n, 0) == ROUTE_HEALTHZ);
    CHECK("metrics", http_route_of("/metrics", &id, &n, 0) == ROUTE_METRICS);
    CHECK("unknown path", http_route_of("/workspaces/x/streams", &id, &n, 0) == ROUTE_NONE);
    CHECK("root without static dir", http_route_of("/", &id, &n, 0) == ROUTE_NONE);
    CHECK("root with static dir", http_route_of("/", &id, &n, 1) == ROUTE_STATIC);
    CHECK("static file", http_route_of("/static/app.js", &id, &n, 1) == ROUTE_STATIC);
    CHECK("prefix alone is unknown", http_route_of("/workspaces/", &id, &n, 0) == ROUTE_NONE);
    CHECK("stream close routes",
          http_route_of("/streams/abcdefghijklmnop/close", &id, &n, 0) == ROUTE_STREAM_CLOSE && n == 16
              && !strncmp(id, "abcdefghijklmnop", 16));
    CHECK("stream close without a key routes (then 400)",
          http_route_of("/streams/x/close", &id, &n, 0) == ROUTE_STREAM_CLOSE && n == 1);
    CHECK("/streams/close alone is unknown", http_route_of("/streams/close", &id, &n, 0) == ROUTE_NONE);
    CHECK("/streams/KEY without /close is unknown",
          http_route_of("/streams/abcdefghijklmnop", &id, &n, 0) == ROUTE_NONE);
}

static void test_stream_keys(void)
{
    static const char k64[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-";
    char k65[66];

    CHECK("a 32-hex key accepted", sse_key_valid("0123456789abcdef0123456789abcdef", 32));
    CHECK("16 characters accepted", sse_key_valid("abcdefghijklmnop", 16));
    CHECK("15 characters rejected", !sse_key_valid("abcdefghijklmno", 15));
    CHECK("64 characters of the whole alphabet accepted", strlen(k64) == 64 && sse_key_valid(k64, 64));
    memcpy(k65, k64, 64);
    k65[64] = 'x';
    k65[65] = '\0';
    CHECK("65 characters rejected", !sse_key_valid(k65, 65));
    CHECK("a dot rejected", !sse_key_valid("abcdefghijklmno.", 16));
    CHECK("a slash rejected", !sse_key_valid("abcdefgh/ijklmnop", 17));
    CHECK("a NUL inside rejected", !sse_key_valid("abcdefgh\0ijklmnop", 17));
    CHECK("a percent rejected", !sse_key_valid("abcdefgh%20klmnop", 17));
}

static void test_static_paths(void)
{
    CHECK("plain file", http_static_path_ok("index.html"));
    CHECK("sub directory", http_static_path_ok("js/app.js"));
    CHECK("dot-dot rejected", !http_static_path_ok("../etc/passwd"));
    CHECK("hidden component rejected", !http_static_path_ok("a/.git/config"));
    CHECK("absolute rejected", !http_static_path_ok("/etc/passwd"));
    CHECK("double slash rejected", !http_static_path_ok("a//b"));
    CHECK("trailing slash rejected", !http_static_path_ok("a/"));
    CHECK("empty rejected", !http_static_path_ok(""));
    CHECK("odd characters rejected", !http_static_path_ok("a b.html"));
}

static int text_ok(const char *s)
{
    return http_text_ok(s, strlen(s));
}

static void test_text(void)
{
    CHECK("ASCII text", text_ok("Hello there"));
    CHECK("UTF-8 text", text_ok("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    CHECK("tab and newline allowed", text_ok("a\tb\nc"));
    CHECK("control character rejected", !text_ok("a\x01"));
    CHECK("DEL rejected", !text_ok("a\x7f"));
    CHECK("invalid byte rejected", !text_ok("\xff\xfe"));
    CHECK("overlong encoding rejected", !text_ok("\xc0\xaf"));
    CHECK("truncated sequence rejected", !text_ok("\xe2\x82"));
    CHECK("surrogate rejected", !text_ok("\xed\xa0\x80"));
    CHECK("beyond U+10FFFF rejected", !text_ok("\xf4\x90\x80\x80"));
    CHECK("embedded NUL rejected", !http_text_ok("a\0b", 3));
}

int main(void)
{
    test_ids();
    test_event_ids();
    test_format();
    test_routes();
    test_stream_keys();
    test_static_paths();
    test_text();
    return check_done("sse_http_test");
}
