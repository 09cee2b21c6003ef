/*
 * bridge_http: libFuzzer target for the whole HTTP request path as the
 * bridge sees it: raw request bytes written into one end of a socket pair
 * whose other end an lws context with the bridge's own protocols (http.c,
 * sse.c, loop.c) has adopted, as if accepted on its listener.  The bridge is
 * configured with a CORS origin and the dashboard's files; its PostgreSQL
 * is unreachable, so streams are refused with 503 (the routes, query values,
 * headers, CORS and static files all run; the files are web/, or
 * FUZZ_STATIC_DIR).  Checked: no crash, leak or
 * sanitizer report; everything the bridge writes back is a sequence of
 * HTTP/1.1 responses whose status lines and header lines hold no control
 * character, and an Access-Control-Allow-Origin header only ever names the
 * configured origin.
 */
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"
#include "config.h"
#include "fuzz_bytes.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "sse.h"

#define ORIGIN "http://allowed.test"

static struct bridge B;

static void bridge_init(void)
{
    static struct lws_protocols list[3];
    struct lws_context_creation_info info;
    char *errmsg = NULL;
    const char *dir = getenv("FUZZ_STATIC_DIR");
    char *argv[] = { "aegis-bridge", "--cors-origin", ORIGIN, "--database-url",
                     "host=/nonexistent-aegis-fuzz port=1 connect_timeout=1", "--no-drain",
                     "--log-level", "error", "--static-dir", (char *)(dir ? dir : "../../web"), NULL };

    if (config_parse(&B.cfg, 10, argv, NULL, &errmsg) < 0)
        fuzz_fail("the harness's configuration", errmsg);
    log_set_level(B.cfg.log_level);
    lws_set_log_level(0, NULL);
    memset(list, 0, sizeof list);
    list[0] = http_protocol;
    list[1] = loop_protocol;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = list;
    info.user = &B;
    info.max_http_header_data = 16384;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    B.ctx = lws_create_context(&info);
    if (!B.ctx || !(B.vhost = lws_get_vhost_by_name(B.ctx, "default")))
        fuzz_fail("no lws context", NULL);
    B.sse = sse_hub_new(&B);
    if (!B.sse)
        fuzz_fail("no SSE hub", NULL);
}

/* the bridge's output: HTTP/1.1 responses, header lines without controls */
static void check_output(const char *out, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t end;
        const char *hdr_end = memmem(out + i, n - i, "\r\n\r\n", 4);
        long body = -1;

        if (n - i < 12 || (memcmp(out + i, "HTTP/1.1 ", 9) && memcmp(out + i, "HTTP/1.0 ", 9)))
            fuzz_fail("output that is not an HTTP/1.x response", NULL);
        if (!hdr_end)
            return;                             /* cut short by the close */
        end = (size_t)(hdr_end - out);
        for (size_t k = i; k < end; k++) {
            unsigned char c = (unsigned char)out[k];
            if ((c < 0x20 && c != '\r' && c != '\n') || c == 0x7f ||
                (c == '\r' && out[k + 1] != '\n') || (c == '\n' && out[k - 1] != '\r'))
                fuzz_fail("a control character in a response's head", NULL);
        }
        for (const char *p = out + i; p < out + end;) {
            const char *eol = memmem(p, (size_t)(out + end - p), "\r\n", 2);
            size_t len = eol ? (size_t)(eol - p) : (size_t)(out + end - p);
            if (len > 29 && !strncasecmp(p, "access-control-allow-origin: ", 29) &&
                (len - 29 != strlen(ORIGIN) || memcmp(p + 29, ORIGIN, len - 29)))
                fuzz_fail("an allowed origin other than the configured one", NULL);
            if (len > 16 && !strncasecmp(p, "content-length: ", 16))
                body = strtol(p + 16, NULL, 10);
            p += len + 2;
        }
        i = end + 4;
        if (body < 0)
            return;                             /* a stream or chunked: the rest is its body */
        i += (size_t)body;
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static int inited;
    int sv[2];
    size_t sent = 0, got = 0, cap = 65536;
    char *out = malloc(cap);
    int turns, closed = 0, quiet = 0;

    if (!inited) {
        bridge_init();
        inited = 1;
    }
    if (!out || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    if (!lws_adopt_socket_vhost(B.vhost, sv[0]))
        fuzz_fail("lws did not adopt the socket", NULL);
    /* the client keeps its end open (a half-close ends lws's connection at
     * once): serve until the input is in and nothing came out for 10 turns */
    for (turns = 0; turns < 500 && !closed && quiet < 10; turns++) {
        size_t before = got;
        if (sent < size) {
            ssize_t w = write(sv[1], data + sent, size - sent);
            if (w > 0)
                sent += (size_t)w;
        }
        lws_service(B.ctx, -1);
        for (;;) {
            ssize_t r;
            if (got == cap && !(out = realloc(out, cap *= 2)))
                abort();
            r = read(sv[1], out + got, cap - got);
            if (r > 0) {
                got += (size_t)r;
                continue;
            }
            if (r == 0)
                closed = 1;
            break;
        }
        quiet = sent == size && got == before ? quiet + 1 : 0;
    }
    close(sv[1]);
    /* let lws notice the closed peer and free the connection */
    for (turns = 0; turns < 20; turns++)
        lws_service(B.ctx, -1);
    if (getenv("FUZZ_DEBUG"))
        fprintf(stderr, "--- %zu bytes in, %zu out, %s:\n%.*s\n", size, got,
                closed ? "closed" : "open", (int)got, out);
    check_output(out, got);
    free(out);
    return 0;
}
