/*
 * bridge_route: libFuzzer target for the bridge's request path routing
 * (http_route_of, including POST /conversations/{id}/runs), stream id rule (sse_id_valid) and static file names
 * (http_static_path_ok), fed the path as lws hands it over (a C string; the
 * input up to its first NUL; static files on when the input's length is odd).
 * Checked against the rules written out again here: the route matches the
 * path, a stream id points into the path before "/stream", an accepted id is
 * 1-128 of [A-Za-z0-9_.:-], an accepted file name has no empty, "." or ".."
 * segment and no character outside [A-Za-z0-9_./-].
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_bytes.h"
#include "http.h"
#include "sse.h"

static int id_rule(const char *s, size_t n)
{
    if (n < 1 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr("_.:-", s[i])))
            return 0;
    return 1;
}

/* an accepted file name is safe to join to the static directory */
static void check_static(const char *rel)
{
    size_t n = strlen(rel), seg = 0;

    if (!http_static_path_ok(rel))
        return;
    if (n == 0 || n > 200 || rel[0] == '/')
        fuzz_fail("an unsafe static path accepted", rel);
    for (size_t i = 0; i <= n; i++) {
        if (i < n && !((rel[i] >= 'a' && rel[i] <= 'z') || (rel[i] >= 'A' && rel[i] <= 'Z') ||
                       (rel[i] >= '0' && rel[i] <= '9') || strchr("_./-", rel[i])))
            fuzz_fail("a static path with a stray character accepted", rel);
        if (i == n || rel[i] == '/') {
            size_t len = i - seg;
            if (len == 0 || rel[seg] == '.')
                fuzz_fail("a static path with an empty or dot segment accepted", rel);
            seg = i + 1;
        }
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *path = malloc(size + 1);
    const char *id = (const char *)1;
    int id_len = -1, static_on = (int)(size & 1);
    size_t n;
    enum http_route r;

    if (!path)
        abort();
    memcpy(path, data, size);
    path[size] = '\0';
    n = strlen(path);
    r = http_route_of(path, &id, &id_len, static_on);
    if ((r == ROUTE_HEALTHZ) != (strcmp(path, "/healthz") == 0) ||
        (r == ROUTE_METRICS) != (strcmp(path, "/metrics") == 0))
        fuzz_fail("/healthz or /metrics routed wrong", path);
    if (r == ROUTE_STATIC && !(static_on && (!strcmp(path, "/") || !strncmp(path, "/static/", 8))))
        fuzz_fail("a static route for another path", path);
    if (r == ROUTE_WORKSPACE || r == ROUTE_CONVERSATION) {
        const char *prefix = r == ROUTE_WORKSPACE ? "/workspaces/" : "/conversations/";
        size_t pl = strlen(prefix);

        if (strncmp(path, prefix, pl) != 0 || n < pl + 6 || strcmp(path + n - 6, "stream") != 0)
            fuzz_fail("a stream route for another path", path);
        if (id != NULL) {
            if (id != path + pl || id_len < 0 || (size_t)id_len + pl + 7 != n ||
                path[pl + id_len] != '/')
                fuzz_fail("a stream id outside its place in the path", path);
            if (sse_id_valid(id, (size_t)id_len) != id_rule(id, (size_t)id_len))
                fuzz_fail("sse_id_valid disagrees with the id rule", path);
        }
    } else if (r == ROUTE_RUNS) {
        /* POST /conversations/{id}/runs: the id is what lies between */
        size_t pl = strlen("/conversations/");

        if (strncmp(path, "/conversations/", pl) != 0 || n < pl + 6 ||
            strcmp(path + n - 5, "/runs") != 0)
            fuzz_fail("a runs route for another path", path);
        if (id != path + pl || id_len < 1 || (size_t)id_len + pl + 5 != n)
            fuzz_fail("a run's conversation id outside its place in the path", path);
    } else if (r == ROUTE_STREAM_CLOSE) {
        /* POST /streams/{stream_key}/close: the key is what lies between */
        size_t pl = strlen("/streams/");

        if (strncmp(path, "/streams/", pl) != 0 || n < pl + 7 ||
            strcmp(path + n - 6, "/close") != 0)
            fuzz_fail("a stream-close route for another path", path);
        if (id != path + pl || id_len < 1 || (size_t)id_len + pl + 6 != n)
            fuzz_fail("a stream key outside its place in the path", path);
        if (sse_key_valid(id, (size_t)id_len) &&
            strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") <
                (size_t)id_len)
            fuzz_fail("sse_key_valid accepted a byte outside the key alphabet", path);
    } else if (id != NULL || id_len != 0) {
        fuzz_fail("an id set for a route without one", path);
    }
    if (r == ROUTE_NONE && n >= 19 && !strncmp(path, "/workspaces/", 12) &&
        !strcmp(path + n - 7, "/stream"))
        fuzz_fail("a workspace stream path not routed", path);
    if (!strncmp(path, "/static/", 8))
        check_static(path + 8);
    check_static(path);
    free(path);
    return 0;
}
