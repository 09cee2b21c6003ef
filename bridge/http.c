/*
 * http.c: owns the lws "http" protocol: method and path routing, query and
 * header validation before anything reaches SQL, CORS, /healthz, /metrics
 * (Prometheus text), dashboard files, run requests (POST …/runs), and short
 * error responses.  Every request but /healthz passes the gate (gate.c:
 * Host, cross-site checks, token, SQL policy) first.  Streams are handed to
 * sse.c; a wsi's stream is its lws opaque user data.
 */
#define _GNU_SOURCE
#include "http.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "bridge.h"
#include "connlimit.h"
#include "buf.h"
#include "gate.h"
#include "h2.h"
#include "log.h"
#include "netstat.h"
#include "pgconn.h"
#include "reqhdr.h"
#include "runreq.h"
#include "sse.h"
#include "stats.h"
#include "tls.h"
#include "drain.h"

#define HTTP_MESSAGE_MAX 8192

struct http_async;

struct http_session {
    int status;
    const char *ctype;
    char *body;
    size_t body_len;
    const char *allow;            /* "Allow:" of a 405, or NULL */
    int preflight;                /* add CORS preflight headers */
    char *cors_origin;            /* allowed origin to echo, or NULL */
    int cors_credentials;         /* the origin is listed: allow credentials */
    int challenge;                /* 401: add WWW-Authenticate */
    struct http_async *async;     /* /metrics or a run request waiting for SQL */
    int ready;                    /* response decided */
    /* authorization (gate.c) */
    char *path; /* the request's path, for continuing after the policy */
    struct gate_policy_call *policy;
    int policy_passed;          /* the SQL policy allowed this request */
    struct gate_expiry *expiry; /* ends the stream when its token expires */
    /* POST …/runs */
    char *post; /* the body so far */
    size_t post_len;
    int post_too_big;
};

struct http_async {
    struct lws *wsi;              /* NULL once the connection closed */
};

static struct bridge *http_bridge(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---------- pure helpers ---------- */

enum http_route http_route_of(const char *path, const char **id, int *id_len, int static_on)
{
    static const struct { const char *prefix; enum http_route r; } streams[] = {
        { "/workspaces/", ROUTE_WORKSPACE }, { "/conversations/", ROUTE_CONVERSATION } };
    size_t i, pl, n = strlen(path);

    *id = NULL;
    *id_len = 0;
    pl = strlen("/conversations/");
    if (n >= pl + 6 && !strncmp(path, "/conversations/", pl) && !strcmp(path + n - 5, "/runs")) {
        *id = path + pl;
        *id_len = (int)(n - pl - 5);
        return ROUTE_RUNS;
    }
    pl = strlen("/streams/");
    if (n >= pl + 7 && !strncmp(path, "/streams/", pl) && !strcmp(path + n - 6, "/close")) {
        *id = path + pl;
        *id_len = (int)(n - pl - 6);
        return ROUTE_STREAM_CLOSE;
    }
    if (!strcmp(path, "/healthz"))
        return ROUTE_HEALTHZ;
    if (!strcmp(path, "/metrics"))
        return ROUTE_METRICS;
    if (static_on && (!strcmp(path, "/") || !strncmp(path, "/static/", 8)))
        return ROUTE_STATIC;
    for (i = 0; i < 2; i++) {
        pl = strlen(streams[i].prefix);
        if (n == pl + 6 && !strncmp(path, streams[i].prefix, pl) && !strcmp(path + pl, "stream"))
            return streams[i].r;       /* "//" collapsed by lws: the id is missing (400) */
        if (n >= pl + 7 && !strncmp(path, streams[i].prefix, pl) &&
            !strcmp(path + n - 7, "/stream")) {
            *id = path + pl;
            *id_len = (int)(n - pl - 7);
            return streams[i].r;
        }
    }
    return ROUTE_NONE;
}

int http_static_path_ok(const char *rel)
{
    size_t i, n = strlen(rel);

    if (n == 0 || n > 200 || rel[0] == '/' || rel[0] == '.')
        return 0;
    for (i = 0; i < n; i++) {
        char c = rel[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '/'))
            return 0;
        if (c == '/' && (rel[i + 1] == '/' || rel[i + 1] == '.' || rel[i + 1] == '\0'))
            return 0;
    }
    return 1;
}

int http_text_ok(const char *s, size_t len)
{
    size_t i = 0, k, need;
    unsigned char c;
    unsigned cp;

    while (i < len) {
        c = (unsigned char)s[i];
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
        for (k = 1; k <= need; k++) {
            if (i + k >= len || ((unsigned char)s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3f);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* ---------- responses ---------- */

static void http_session_reset(struct lws *wsi, struct http_session *ss);

static int http_reply(struct lws *wsi, struct http_session *ss, int status, const char *ctype,
                      const char *body)
{
    free(ss->body);
    ss->body = strdup(body ? body : "");
    if (!ss->body)
        return -1;
    ss->body_len = strlen(ss->body);
    ss->status = status;
    ss->ctype = ctype;
    ss->ready = 1;
    if (status == 400 || status == 404 || status == 405)
        http_bridge(wsi)->metrics.http_bad_requests++;
    lws_callback_on_writable(wsi);
    return 0;
}

static int http_reply_text(struct lws *wsi, struct http_session *ss, int status, const char *msg)
{
    char line[512];

    snprintf(line, sizeof line, "%s\n", msg);
    return http_reply(wsi, ss, status, "text/plain; charset=utf-8", line);
}

static int http_add_hdr(struct lws *wsi, const char *name, const char *val, unsigned char **p,
                        unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)val,
                                       (int)strlen(val), p, end);
}

/* CORS: the listed origin (never *), credentials for an origin named
 * exactly, and for a preflight the methods and headers streams and run
 * requests use */
static int http_cors_headers(struct lws *wsi, struct http_session *ss, unsigned char **p,
                             unsigned char *end)
{
    if (!ss->cors_origin)
        return 0;
    return http_add_hdr(wsi, "access-control-allow-origin:", ss->cors_origin, p, end)
           || http_add_hdr(wsi, "vary:", "Origin", p, end)
           || (ss->cors_credentials
               && http_add_hdr(wsi, "access-control-allow-credentials:", "true", p, end))
           || (ss->preflight
               && (http_add_hdr(wsi, "access-control-allow-methods:", "GET, POST", p, end)
                   || http_add_hdr(
                       wsi, "access-control-allow-headers:",
                       "Authorization, Content-Type, Last-Event-ID, Cache-Control, X-Aegis-Request",
                       p, end)
                   || http_add_hdr(wsi, "access-control-max-age:", "600", p, end)));
}

static int http_write_reply(struct lws *wsi, struct http_session *ss)
{
    unsigned char hbuf[LWS_PRE + 2048];
    unsigned char *start = hbuf + LWS_PRE, *p = start, *end = hbuf + sizeof hbuf - 1;
    unsigned char *body;
    int rc, empty;

    if (lws_add_http_common_headers(wsi, (unsigned)ss->status, ss->ctype, ss->body_len, &p, end)
        || http_add_hdr(wsi, "cache-control:", "no-cache", &p, end)
        || http_add_hdr(wsi, "x-content-type-options:", "nosniff", &p, end)
        || (ss->allow && http_add_hdr(wsi, "allow:", ss->allow, &p, end))
        || (ss->challenge
            && http_add_hdr(wsi, "www-authenticate:",
                            "Bearer realm=\"aegis\", error=\"invalid_token\"", &p, end))
        || http_cors_headers(wsi, ss, &p, end)
        || lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (ss->body_len > 0) {
        body = malloc(LWS_PRE + ss->body_len);
        if (!body)
            return -1;
        memcpy(body + LWS_PRE, ss->body, ss->body_len);
        rc = lws_write(wsi, body + LWS_PRE, ss->body_len, LWS_WRITE_HTTP_FINAL);
        free(body);
        if (rc < (int)ss->body_len)
            return -1;
    }
    empty = ss->body_len == 0;
    http_session_reset(wsi, ss);
    if (empty && h2_is_stream(wsi))
        return h2_end_stream(wsi);             /* lws closes the stream once it is out */
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---------- request pieces ---------- */

static char *http_cors_origin(struct lws *wsi)
{
    const struct bridge_config *cfg = &http_bridge(wsi)->cfg;
    char *origin;
    size_t i;

    if (cfg->ncors_origins == 0 || !(origin = reqhdr_get(wsi, WSI_TOKEN_ORIGIN)))
        return NULL;
    for (i = 0; i < cfg->ncors_origins; i++) {
        if (!strcmp(cfg->cors_origins[i], "*") || !strcmp(cfg->cors_origins[i], origin))
            return origin;
    }
    free(origin);
    return NULL;
}

/* ---------- authorization ---------- */

static int http_route_request(struct lws *wsi, struct http_session *ss, const char *path);

/* the gate's verdict: 1 go on (*claims set), 0 refused (answer queued), -1 failure */
static int http_gate(struct lws *wsi, struct http_session *ss, const struct gate_target *t,
                     struct auth_claims **claims)
{
    struct gate_refusal no;
    int r = gate_check(wsi, t, claims, &no);

    if (r <= 0) {
        if (r < 0)
            return -1;
        ss->challenge = no.challenge;
        return http_reply_text(wsi, ss, no.status, no.body) < 0 ? -1 : 0;
    }
    return 1;
}

/* the SQL policy answered: refuse, or route the same request again (the
 * gate runs again, cheaply; the policy does not) */
static void http_policy_done(void *ud, int allowed, int gone)
{
    struct lws *wsi = ud;
    struct http_session *ss;

    if (gone)
        return;
    ss = lws_wsi_user(wsi);
    ss->policy = NULL;
    if (!allowed) {
        if (http_reply_text(wsi, ss, 403,
                            "forbidden: the policy function does not allow this stream")
            < 0)
            lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    ss->policy_passed = 1;
    if (http_route_request(wsi, ss, ss->path) < 0)
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* 1: the policy must still be asked (it was: wait), 0: go on, -1 failure */
static int http_policy_wait(struct lws *wsi, struct http_session *ss, const struct auth_claims *c,
                            const char *kind, const char *id)
{
    struct bridge *b = http_bridge(wsi);

    if (!gate_policy_on(b) || ss->policy_passed)
        return 0;
    ss->policy = gate_policy_ask(b, c, kind, id, http_policy_done, wsi);
    if (!ss->policy)
        return http_reply_text(wsi, ss, 503, "service unavailable: cannot ask the policy function")
                       < 0
                   ? -1
                   : 1;
    return 1;
}

/* access log (debug): method, path and the query with any token redacted */
static void http_access_log(struct lws *wsi, int method, const char *path)
{
    static const char *const names[] = { "GET",   "POST",   "OPTIONS", "PUT",
                                         "PATCH", "DELETE", "CONNECT", "HEAD" };
    char *query;

    if (!log_enabled(LOG_DEBUG))
        return;
    query = gate_log_query(wsi);
    LOG(LOG_DEBUG, "http", "msg=request method=%s path=\"%s\" query=\"%s\"",
        method >= 0 && method < 8 ? names[method] : "other", log_text(path), log_text(query));
    free(query);
}

/* ---------- routes ---------- */

static int http_healthz(struct lws *wsi, struct http_session *ss)
{
    struct bridge *b = http_bridge(wsi);
    int up = sse_pg_ready(b->sse);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I}", "status", up ? "ok" : "unavailable",
                          "postgres", up ? "connected" : "down", "kafka", drain_kafka_state(b),
                          "sse_connections", (json_int_t)b->metrics.sse_connections);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    int rc;

    json_decref(o);
    if (!text)
        return -1;
    rc = http_reply(wsi, ss, up ? 200 : 503, "application/json", text);
    free(text);
    return rc;
}

/* one metric; out of memory leaves it out (as a metric that did not fit did) */
static void http_metric(struct buf *out, const char *name, const char *type, const char *help,
                        double value)
{
    (void)buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
                     value);
}

/* the bounds of connlimit.c and the open publishers (stats.c) */
static void http_metrics_hardening(struct buf *out, struct bridge *b, const struct stats_values *v)
{
    if (b->limits) {
        http_metric(out, "aegis_bridge_accepted_connections", "gauge",
                    "open client connections, counted from accept (every protocol)",
                    (double)limits_open_connections(b->limits));
        http_metric(out, "aegis_bridge_connection_limit", "gauge",
                    "client connections at most (descriptor limit minus --reserved-fds)",
                    (double)limits_connection_limit(b->limits));
        http_metric(out, "aegis_bridge_connections_refused_total", "counter",
                    "connections closed at accept because the limit was reached",
                    (double)limits_refused_total(b->limits));
        http_metric(out, "aegis_bridge_sse_address_refused_total", "counter",
                    "streams refused with 429 (--max-clients-per-ip)",
                    (double)limits_ip_refused_total(b->limits));
    }
    if (v && v->have_publishers) {
        http_metric(out, "aegis_bridge_open_publishers", "gauge",
                    "open transactions that published (each holds readers back until it ends)",
                    v->open_publishers);
        http_metric(out, "aegis_bridge_oldest_publisher_age_seconds", "gauge",
                    "how long the oldest open publishing transaction has held every reader back",
                    v->oldest_age_s);
    }
}

static char *http_metrics_text(struct bridge *b)
{
    const struct bridge_metrics *m = &b->metrics;
    struct buf out = { 0 };
    const struct stats_values *v = b->stats ? stats_values(b->stats) : NULL;
    int have_lag = v && v->have_drain;
    unsigned long reloads, refused;

    if (buf_reserve(&out, 0, 4096) < 0)
        return NULL;
    out.p[0] = '\0';
    http_metric(&out, "aegis_bridge_postgres_up", "gauge",
                "1 when the SSE connection to PostgreSQL is ready", sse_pg_ready(b->sse));
    http_metric(&out, "aegis_bridge_sse_connections", "gauge", "open SSE streams",
                (double)m->sse_connections);
    http_metric(&out, "aegis_bridge_sse_connections_total", "counter",
                "SSE streams accepted", (double)m->sse_connections_total);
    http_metric(&out, "aegis_bridge_sse_events_sent_total", "counter",
                "events queued to SSE clients", (double)m->sse_events_sent);
    http_metric(&out, "aegis_bridge_sse_replays_total", "counter",
                "streams that replayed from the store", (double)m->sse_replays);
    http_metric(&out, "aegis_bridge_sse_replayed_events_total", "counter",
                "events read by replays", (double)m->sse_replayed_events);
    http_metric(&out, "aegis_bridge_sse_drops_total", "counter",
                "stalled clients disconnected", (double)m->sse_drops);
    http_metric(&out, "aegis_bridge_sse_catchups_total", "counter",
                "live subscribers whose buffer was full, switched to reading the store",
                (double)m->sse_catchups);
    http_metric(&out, "aegis_bridge_sse_rejected_total", "counter",
                "streams refused with 503", (double)m->sse_rejected);
    http_metric(&out, "aegis_bridge_http_requests_total", "counter", "HTTP requests",
                (double)m->http_requests_total);
    http_metric(&out, "aegis_bridge_http_bad_requests_total", "counter",
                "requests answered 400, 404 or 405", (double)m->http_bad_requests);
    http_metric(&out, "aegis_bridge_sse_held_drops_total", "counter",
                "live events held during a replay dropped on overflow (read again from the store)",
                (double)m->sse_held_drops);
    http_metric(&out, "aegis_bridge_store_reads_total", "counter",
                "non-empty aegis.wait_all batches of the live reader", (double)m->store_reads);
    http_metric(&out, "aegis_bridge_run_requests_total", "counter",
                "conversation run requests recorded or found", (double)m->run_requests);
    netstat_metrics(&out);
    tls_reload_counts(&reloads, &refused);
    http_metric(&out, "aegis_bridge_tls_reloads_total", "counter",
                "SIGHUP reloads of the TLS certificate and key", (double)reloads);
    http_metric(&out, "aegis_bridge_tls_reloads_refused_total", "counter",
                "SIGHUP reloads refused (bad pair; the old one stayed)", (double)refused);
    if (have_lag) {
        http_metric(&out, "aegis_bridge_drain_cursor_position", "gauge",
                    "last event id Kafka acknowledged", v->cursor);
        http_metric(&out, "aegis_bridge_drain_pending_events", "gauge",
                    "events with a topic not yet acknowledged by Kafka", v->pending);
        http_metric(&out, "aegis_bridge_drain_lag_seconds", "gauge",
                    "age of the oldest event waiting for Kafka",
                    v->lag_s);
        http_metric(&out, "aegis_bridge_drain_dead_letters_total", "counter",
                    "events the drain could not produce (permanent error or topic not allowed), "
                    "in aegis.drain_dead_letters", v->dead_letters);
    }
    http_metrics_hardening(&out, b, v);
    return out.p;
}

/* the cached store numbers are fresh (stats.c): answer */
static void http_metrics_ready(void *ud)
{
    struct http_async *a = ud;
    struct lws *wsi = a->wsi;
    struct http_session *ss;
    char *text;

    free(a);
    if (!wsi)
        return;
    ss = lws_wsi_user(wsi);
    ss->async = NULL;
    text = http_metrics_text(http_bridge(wsi));
    if (!text || http_reply(wsi, ss, 200, "text/plain; version=0.0.4", text) < 0)
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    free(text);
}

static int http_metrics(struct lws *wsi, struct http_session *ss)
{
    static const struct gate_target target = { GATE_METRICS, NULL, NULL, NULL };
    struct bridge *b = http_bridge(wsi);
    struct auth_claims *claims = NULL;
    struct http_async *a;
    char *text;
    int rc;

    if ((rc = http_gate(wsi, ss, &target, &claims)) <= 0)
        return rc;
    auth_claims_free(claims);

    if (b->stats && (a = calloc(1, sizeof *a))) {
        a->wsi = wsi;
        ss->async = a;
        stats_when_fresh(b->stats, http_metrics_ready, a);   /* may answer at once */
        return 0;
    }
    text = http_metrics_text(b);
    rc = text ? http_reply(wsi, ss, 200, "text/plain; version=0.0.4", text) : -1;
    free(text);
    return rc;
}

static const char *http_mime(const char *path)
{
    static const struct { const char *ext, *mime; } types[] = {
        { ".html", "text/html; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
        { ".mjs", "text/javascript; charset=utf-8" }, { ".css", "text/css; charset=utf-8" },
        { ".json", "application/json" }, { ".svg", "image/svg+xml" }, { ".png", "image/png" },
        { ".ico", "image/x-icon" }, { ".txt", "text/plain; charset=utf-8" } };
    const char *dot = strrchr(path, '.');
    size_t i;

    for (i = 0; dot && i < sizeof types / sizeof types[0]; i++) {
        if (!strcmp(dot, types[i].ext))
            return types[i].mime;
    }
    return "application/octet-stream";
}

/* the file rel names inside dir, resolved: NULL unless it is a regular
 * file whose real path stays inside the real path of dir (a symlink that
 * leads out of --static-dir is not followed) */
static char *http_static_file(const char *dir, const char *rel)
{
    char *root = realpath(dir, NULL), *file = NULL, *real = NULL;
    struct stat st;
    size_t rl;

    if (!root || asprintf(&file, "%s/%s", root, rel) < 0)
        file = NULL;
    if (file)
        real = realpath(file, NULL);
    rl = root ? strlen(root) : 0;
    if (real
        && (strncmp(real, root, rl) || real[rl] != '/' || stat(real, &st) < 0
            || !S_ISREG(st.st_mode))) {
        free(real);
        real = NULL;
    }
    free(file);
    free(root);
    return real;
}

/* headers of a dashboard file: nosniff on all, the policy on pages */
static int http_static_headers(struct lws *wsi, const char *mime, unsigned char *buf, size_t cap)
{
    static const char csp[] =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'none'";
    unsigned char *p = buf, *end = buf + cap;

    if (http_add_hdr(wsi, "x-content-type-options:", "nosniff", &p, end)
        || (!strncmp(mime, "text/html", 9)
            && (http_add_hdr(wsi, "content-security-policy:", csp, &p, end)
                || http_add_hdr(wsi, "referrer-policy:", "no-referrer", &p, end))))
        return -1;
    return (int)(p - buf);
}

static int http_static(struct lws *wsi, struct http_session *ss, const char *path)
{
    const char *dir = http_bridge(wsi)->cfg.static_dir;
    const char *rel = !strcmp(path, "/") ? "index.html" : path + 8;
    static const struct gate_target target = { GATE_OPEN, NULL, NULL, NULL };
    struct auth_claims *claims = NULL;
    unsigned char hdrs[1024];
    const char *mime;
    char *file;
    int n, hl;

    if ((n = http_gate(wsi, ss, &target, &claims)) <= 0)
        return n;
    if (!http_static_path_ok(rel) || !(file = http_static_file(dir, rel)))
        return http_reply_text(wsi, ss, 404, "not found");
    mime = http_mime(file);
    hl = http_static_headers(wsi, mime, hdrs, sizeof hdrs);
    n = hl < 0 ? -1 : lws_serve_http_file(wsi, file, mime, (const char *)hdrs, hl);
    free(file);
    if (n < 0)
        return -1;
    if (n > 0)
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    return 0;
}

/* Parses and validates the SSE request; answers 400 itself (returns 1). */
static int http_sse_params(struct lws *wsi, struct http_session *ss, struct sse_request *req,
                           char **owned)
{
    char *hdr = reqhdr_custom(wsi, "last-event-id:");
    int r;

    /* owned[]: message, agent_id, agent_type, last_event_id arg, header, stream_key */
    owned[4] = hdr;
    if ((r = reqhdr_query_arg(wsi, "message", &owned[0])) < 0 ||
        reqhdr_query_arg(wsi, "agent_id", &owned[1]) < 0 ||
        reqhdr_query_arg(wsi, "agent_type", &owned[2]) < 0 ||
        reqhdr_query_arg(wsi, "last_event_id", &owned[3]) < 0 ||
        reqhdr_query_arg(wsi, "stream_key", &owned[5]) < 0)
        return http_reply_text(wsi, ss, 400, "bad request: repeated or unreadable query argument"), 1;
    if (owned[5] && !sse_key_valid(owned[5], strlen(owned[5])))
        return http_reply_text(wsi, ss, 400, "bad request: stream_key must match [A-Za-z0-9_-]{16,64}"), 1;
    req->stream_key = owned[5];
    if (hdr || owned[3]) {
        if (sse_parse_event_id(hdr ? hdr : owned[3], &req->last_id) < 0)
            return http_reply_text(wsi, ss, 400,
                                   "bad request: Last-Event-ID must be a decimal integer of at most 19 digits"),
                   1;
        req->has_last_id = 1;
    }
    if (owned[0] && (!owned[0][0] || strlen(owned[0]) > HTTP_MESSAGE_MAX ||
                     !http_text_ok(owned[0], strlen(owned[0]))))
        return http_reply_text(wsi, ss, 400, "bad request: message must be 1 to 8192 bytes of UTF-8 text"), 1;
    if ((owned[1] && !sse_id_valid(owned[1], strlen(owned[1]))) ||
        (owned[2] && !sse_id_valid(owned[2], strlen(owned[2]))))
        return http_reply_text(wsi, ss, 400,
                               "bad request: agent_id and agent_type must match [A-Za-z0-9_.:-]{1,128}"), 1;
    if (!owned[0] && (owned[1] || owned[2]))
        return http_reply_text(wsi, ss, 400, "bad request: agent_id and agent_type need message"), 1;
    if (req->kind == SSE_WORKSPACE && owned[0])
        return http_reply_text(wsi, ss, 400, "bad request: message applies to conversation streams"), 1;
    req->message = owned[0];
    req->agent_id = owned[1];
    req->agent_type = owned[2];
    return 0;
}

/* a stream the gate (and the policy) allowed; its token's exp ends it */
static int http_sse_open(struct lws *wsi, struct http_session *ss, const struct sse_request *req,
                         const struct auth_claims *claims)
{
    struct bridge *b = http_bridge(wsi);
    struct sse_sub *sub = NULL;
    int status = sse_open(b->sse, wsi, req, &sub); /* copies what it keeps */

    if (status != 0)
        return http_reply_text(wsi, ss, status, status == 429
                               ? "too many requests: this address has --max-clients-per-ip streams open"
                               : "service unavailable: store not connected or too many clients");
    lws_set_opaque_user_data(wsi, sub);
    ss->expiry = gate_expiry_start(b, wsi, claims->exp);
    return 0;
}

static int http_sse(struct lws *wsi, struct http_session *ss, enum http_route route, const char *id,
                    int id_len)
{
    struct sse_request req;
    struct gate_target target;
    struct auth_claims *claims = NULL;
    char *owned[6] = { NULL, NULL, NULL, NULL, NULL, NULL };
    char idbuf[129];
    int rc = 0, i;

    if (!sse_id_valid(id, (size_t)id_len))
        return http_reply_text(wsi, ss, 400, "bad request: id must match [A-Za-z0-9_.:-]{1,128}");
    memcpy(idbuf, id, (size_t)id_len);
    idbuf[id_len] = '\0';
    memset(&req, 0, sizeof req);
    req.kind = route == ROUTE_WORKSPACE ? SSE_WORKSPACE : SSE_CONVERSATION;
    req.stream_id = idbuf;
    req.cors_origin = ss->cors_origin;
    req.cors_credentials = ss->cors_credentials;
    if (http_sse_params(wsi, ss, &req, owned) == 0) {
        target.action = req.message ? GATE_READ_AND_RUN : GATE_READ;
        target.kind = req.kind == SSE_WORKSPACE ? "workspace" : "conversation";
        target.id = idbuf;
        target.agent_type = req.agent_type;
        if ((rc = http_gate(wsi, ss, &target, &claims)) > 0
            && (rc = http_policy_wait(wsi, ss, claims, target.kind, idbuf)) == 0)
            rc = http_sse_open(wsi, ss, &req, claims);
        rc = rc < 0 ? -1 : 0;
    }
    auth_claims_free(claims);
    for (i = 0; i < 6; i++)
        free(owned[i]);
    return rc;
}

/* ---------- POST /conversations/{id}/runs ---------- */

/*
 * aegis.request_run's refusals, as for ?message= (sse.c): 23503 the agent
 * type is not configured (400), 23P01 too many open runs (409), another
 * class 22/23 error bad input (400); the body is a constant, the client's
 * own values are not echoed (the log has PostgreSQL's message).
 */
static int http_run_error(PGresult *res, const char **body)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    *body = "service unavailable: store not connected";
    if (!res)
        return 503;
    if (state && !strcmp(state, "23P01")) {
        *body = "conflict: this conversation already has an open run (the same message follows it)";
        return 409;
    }
    if (state && !strcmp(state, "23503")) {
        *body = "bad request: agent_type is not configured for runs";
        return 400;
    }
    if (state && (!strncmp(state, "22", 2) || !strncmp(state, "23", 2))) {
        *body = "bad request: the store refused the run request's values";
        return 400;
    }
    *body = "internal error: the run request failed";
    return 500;
}

static void http_run_done(struct pgconn *c, PGresult *res, void *ud)
{
    struct http_async *a = ud;
    struct lws *wsi = a->wsi;
    struct http_session *ss;
    const char *body;
    char line[64];
    int status, rc;

    (void)c;
    free(a);
    if (!wsi)
        return;
    ss = lws_wsi_user(wsi);
    ss->async = NULL;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        http_bridge(wsi)->metrics.run_requests++;
        snprintf(line, sizeof line, "{\"run_id\": %s}\n", PQgetvalue(res, 0, 0));
        rc = http_reply(wsi, ss, 202, "application/json", line);
    } else {
        status = http_run_error(res, &body);
        LOG(status >= 500 ? LOG_ERROR : LOG_INFO, "http",
            "msg=\"run request refused\" status=%d sqlstate=%s error=\"%s\"", status,
            res && PQresultErrorField(res, PG_DIAG_SQLSTATE) ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
                                                             : "-",
            log_text(res ? PQresultErrorMessage(res) : "connection lost"));
        rc = http_reply_text(wsi, ss, status, body);
    }
    if (rc < 0)
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static int http_run_record(struct lws *wsi, struct http_session *ss, const char *id,
                           const struct runreq *r)
{
    static const char sql[] = "SELECT aegis.request_run($1, $2, $3, $4)";
    struct bridge *b = http_bridge(wsi);
    const char *params[4] = { id, r->message, r->agent_id, r->agent_type };
    struct http_async *a;

    if (!sse_pg_ready(b->sse) || !(a = calloc(1, sizeof *a)))
        return http_reply_text(wsi, ss, 503, "service unavailable: store not connected");
    a->wsi = wsi;
    if (pgconn_query(b->pg, sql, 4, params, http_run_done, a) < 0) {
        free(a);
        return http_reply_text(wsi, ss, 503, "service unavailable: store not connected");
    }
    ss->async = a;
    return 0;
}

/* a JSON body, checked before the gate reads the agent type from it */
static int http_run_body_ok(struct lws *wsi, struct http_session *ss, struct runreq *r)
{
    char *ctype = reqhdr_get(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE), err[256];
    int json = ctype && !strncasecmp(ctype, "application/json", 16)
               && (ctype[16] == '\0' || ctype[16] == ';' || ctype[16] == ' ');

    free(ctype);
    if (!json)
        return http_reply_text(wsi, ss, 415,
                               "unsupported media type: send Content-Type: application/json"),
               0;
    if (ss->post_too_big)
        return http_reply_text(wsi, ss, 413, "payload too large: a run request is at most 64 KiB"),
               0;
    if (runreq_parse(ss->post, ss->post_len, r, err, sizeof err) < 0)
        return http_reply_text(wsi, ss, 400, err), 0;
    return 1;
}

static int http_runs(struct lws *wsi, struct http_session *ss, const char *id, int id_len)
{
    struct gate_target target = { GATE_RUN, "conversation", NULL, NULL };
    struct auth_claims *claims = NULL;
    struct runreq r;
    char idbuf[129];
    int rc;

    if (!sse_id_valid(id, (size_t)id_len))
        return http_reply_text(wsi, ss, 400, "bad request: id must match [A-Za-z0-9_.:-]{1,128}");
    memcpy(idbuf, id, (size_t)id_len);
    idbuf[id_len] = '\0';
    if (!http_run_body_ok(wsi, ss, &r))
        return 0;
    target.id = idbuf;
    target.agent_type = r.agent_type;
    if ((rc = http_gate(wsi, ss, &target, &claims)) > 0
        && (rc = http_policy_wait(wsi, ss, claims, "conversation", idbuf)) == 0)
        rc = http_run_record(wsi, ss, idbuf, &r);
    auth_claims_free(claims);
    runreq_clear(&r);
    return rc < 0 ? -1 : 0;
}

/* ---------- POST /streams/{stream_key}/close ---------- */

/*
 * A page closing an EventSource ends its stream here too: over HTTP/2 lws
 * 4.1.6 gives the server no word of the client's RST_STREAM (docs/deploy.md),
 * so the subscriber would live on until the connection closes.  The key is
 * the page's own random secret from the stream's ?stream_key=, so no token
 * is asked for (the gate still checks the Host); the body is ignored.
 * 204 when a stream was ended, 404 when none is open with that key.
 */
static int http_stream_close(struct lws *wsi, struct http_session *ss, const char *key, int key_len)
{
    static const struct gate_target target = { GATE_OPEN, NULL, NULL, NULL };
    struct auth_claims *claims = NULL;
    char keybuf[65];
    int rc;

    if (!sse_key_valid(key, (size_t)key_len))
        return http_reply_text(wsi, ss, 400, "bad request: stream_key must match [A-Za-z0-9_-]{16,64}");
    memcpy(keybuf, key, (size_t)key_len);
    keybuf[key_len] = '\0';
    if ((rc = http_gate(wsi, ss, &target, &claims)) <= 0)
        return rc < 0 ? -1 : 0;
    auth_claims_free(claims);
    if (sse_close_key(http_bridge(wsi)->sse, keybuf) > 0)
        return http_reply(wsi, ss, 204, "text/plain", "");
    return http_reply_text(wsi, ss, 404, "not found: no open stream has this stream_key");
}

/* POST …/runs: the body arrives in pieces, bounded */
static int http_post_body(struct http_session *ss, const void *in, size_t len)
{
    char *grown;

    if (ss->post_too_big || ss->post_len + len > RUNREQ_BODY_MAX) {
        ss->post_too_big = 1;
        return 0;
    }
    grown = realloc(ss->post, ss->post_len + len + 1);
    if (!grown)
        return -1;
    ss->post = grown;
    memcpy(ss->post + ss->post_len, in, len);
    ss->post_len += len;
    ss->post[ss->post_len] = '\0';
    return 0;
}

/* run requests and stream closes are POSTed, everything else is read with GET */
static int http_route_posted(enum http_route route)
{
    return route == ROUTE_RUNS || route == ROUTE_STREAM_CLOSE;
}

static int http_method_allowed(enum http_route route, int method)
{
    return method == (http_route_posted(route) ? LWSHUMETH_POST : LWSHUMETH_GET);
}

/* the route's handler; also where a request continues after the policy */
static int http_route_request(struct lws *wsi, struct http_session *ss, const char *path)
{
    struct bridge *b = http_bridge(wsi);
    const char *id;
    int id_len;
    enum http_route route = http_route_of(path, &id, &id_len, b->cfg.static_dir != NULL);

    if (b->stopping)
        return http_reply_text(wsi, ss, 503, "shutting down");
    switch (route) {
    case ROUTE_HEALTHZ:
        return http_healthz(wsi, ss);
    case ROUTE_METRICS:
        return http_metrics(wsi, ss);
    case ROUTE_STATIC:
        return http_static(wsi, ss, path);
    case ROUTE_RUNS:
        return http_runs(wsi, ss, id, id_len);
    case ROUTE_STREAM_CLOSE:
        return http_stream_close(wsi, ss, id, id_len);
    default:
        return http_sse(wsi, ss, route, id, id_len);
    }
}

/* a POST (run request, stream close) must say how long its body is (lws 4.1
 * reads no chunked request body) */
static int http_post_start(struct lws *wsi, struct http_session *ss)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        return http_reply_text(wsi, ss, 411,
                               "length required: send the POST with a Content-Length");
    return 0; /* routed once the body is complete */
}

static int http_request(struct lws *wsi, struct http_session *ss, const char *path)
{
    struct bridge *b = http_bridge(wsi);
    char *uri;
    int uri_len, method = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
    const char *id;
    int id_len;
    enum http_route route = http_route_of(path, &id, &id_len, b->cfg.static_dir != NULL);

    b->metrics.http_requests_total++;
    ss->cors_origin = http_cors_origin(wsi);
    ss->cors_credentials = ss->cors_origin && gate_cors_credentials(b, ss->cors_origin);
    http_access_log(wsi, method, path);
    if (!(ss->path = strdup(path)))
        return -1;
    if (route == ROUTE_NONE)
        return http_reply_text(wsi, ss, 404, "not found");
    if (!http_method_allowed(route, method)) {
        if (method == LWSHUMETH_OPTIONS && ss->cors_origin) {
            ss->preflight = 1;
            return http_reply(wsi, ss, 204, "text/plain", "");
        }
        ss->allow = http_route_posted(route) ? "POST" : "GET";
        return http_reply_text(wsi, ss, 405,
                               http_route_posted(route) ? "method not allowed: use POST"
                                                        : "method not allowed: use GET");
    }
    if (method == LWSHUMETH_POST)
        return http_post_start(wsi, ss);
    return http_route_request(wsi, ss, path);
}

static void http_session_reset(struct lws *wsi, struct http_session *ss)
{
    free(ss->body);
    free(ss->cors_origin);
    free(ss->path);
    free(ss->post);
    if (ss->async)
        ss->async->wsi = NULL;
    gate_policy_forget(ss->policy);
    gate_expiry_free(ss->expiry);
    memset(ss, 0, sizeof *ss);
    (void)wsi;
}

/* connections: counted and capped by connlimit.c (wsi is the listener for the filter) */
static int http_limits_event(struct lws *wsi, enum lws_callback_reasons reason)
{
    struct bridge *b = http_bridge(wsi);

    if (!b || !b->limits)
        return 0;
    if (reason == LWS_CALLBACK_FILTER_NETWORK_CONNECTION)
        return limits_on_accept(b->limits, wsi);
    if (reason == LWS_CALLBACK_WSI_CREATE)
        limits_on_wsi_create(b->limits, wsi);
    else
        limits_on_wsi_destroy(b->limits, wsi);
    return 0;
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct http_session *ss = user;
    struct sse_sub *sub;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        netstat_request(wsi);
        http_session_reset(wsi, ss);
        return http_request(wsi, ss, in ? (const char *)in : "/") < 0 ? -1 : 0;
    case LWS_CALLBACK_HTTP_BODY: /* POST …/runs only */
        /* a body on a request answered already (404, 405…): send the answer
         * and close.  Left unread, a pipelined request behind it makes lws
         * 4.1.6 spin in its rx-flow loop (fuzz finding pipelined-body-spin) */
        if (ss && ss->ready) {
            http_write_reply(wsi, ss);
            return -1;
        }
        return ss && http_post_body(ss, in, len) < 0 ? -1 : 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!ss || ss->ready || !ss->path)
            return 0; /* answered already (411, 405…) */
        return http_route_request(wsi, ss, ss->path) < 0 ? -1 : 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        sub = lws_get_opaque_user_data(wsi);
        if (sub)
            return sse_writeable(sub);
        if (ss && ss->ready)
            return http_write_reply(wsi, ss);
        return 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (ss)
            http_session_reset(wsi, ss);
        return 0;
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
    case LWS_CALLBACK_WSI_CREATE:
        return http_limits_event(wsi, reason);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
        tls_server_ctx_ready(user);                /* user is the vhost's SSL_CTX */
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        netstat_closing(wsi);
        http_limits_event(wsi, reason);
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    case LWS_CALLBACK_CLOSED_HTTP:
        netstat_closing(wsi);
        sub = lws_get_opaque_user_data(wsi);
        if (sub) {
            lws_set_opaque_user_data(wsi, NULL);
            sse_closed(sub);
        }
        if (ss)
            http_session_reset(wsi, ss);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

const struct lws_protocols http_protocol = {
    "http", http_cb, sizeof(struct http_session), 0, 0, NULL, 0
};
