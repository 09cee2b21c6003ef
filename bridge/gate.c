/*
 * gate.c: owns the authorization step of the request path and its state:
 * the token verifier, the Host allow-list, the SQL policy function, deny
 * by default off loopback, and the timers that end streams whose token
 * expires.  Reads headers through lws; the decisions themselves are the
 * pure functions of auth.c and guard.c.  Refusals are logged with where
 * the token came from and why, never with the token.
 */
#define _GNU_SOURCE
#include "gate.h"
#include "buf.h"

#include <libpq-fe.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bridge.h"
#include "guard.h"
#include "h2.h"
#include "log.h"
#include "loop.h"
#include "pgconn.h"
#include "reqhdr.h"

struct gate {
    struct auth_verifier *verifier; /* NULL: auth off (loopback or --auth none) */
    char **hosts;                   /* NULL: any Host (--auth none off loopback) */
    size_t nhosts;
    char *policy_sql; /* SELECT f($1::jsonb, $2::text, $3::text), or NULL */
};

struct gate_policy_call {
    gate_policy_cb done;
    void *ud;
    int gone;
};

struct gate_expiry {
    struct lws *wsi;
    struct loop_timer *timer;
};

static struct bridge *gate_bridge(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---------- start ---------- */


static void gate_free(struct gate *g)
{
    size_t i;

    if (!g)
        return;
    auth_verifier_free(g->verifier);
    for (i = 0; i < g->nhosts; i++)
        free(g->hosts[i]);
    free(g->hosts);
    free(g->policy_sql);
    free(g);
}

/* the policy function exists as NAME(jsonb, text, text) RETURNS boolean */
static int gate_policy_check(const struct bridge_config *cfg, char **errmsg)
{
    static const char sql[] =
        "SELECT p.prorettype = 'pg_catalog.bool'::pg_catalog.regtype AND p.prokind = 'f' "
        "FROM pg_catalog.pg_proc p WHERE p.oid = pg_catalog.to_regprocedure($1)";
    const char *keys[] = { "dbname", "connect_timeout", NULL };
    const char *vals[] = { cfg->database_url ? cfg->database_url : "", "10", NULL };
    char sig[200];
    const char *params[1] = { sig };
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    PGresult *res = NULL;
    int rc = 0;

    snprintf(sig, sizeof sig, "%s(jsonb,text,text)", cfg->auth_sql_function);
    if (PQstatus(conn) != CONNECTION_OK) {
        rc = buf_fail(errmsg, 1, "cannot check --auth-sql-function %s: %s", cfg->auth_sql_function,
                       log_text(PQerrorMessage(conn)));
        goto out;
    }
    res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = buf_fail(errmsg, 1, "cannot check --auth-sql-function %s: %s", cfg->auth_sql_function,
                       log_text(PQresultErrorMessage(res)));
    else if (PQntuples(res) != 1)
        rc = buf_fail(errmsg, 2,
                       "--auth-sql-function: no function %s(claims jsonb, stream_kind text, "
                       "stream_id text) in the database",
                       cfg->auth_sql_function);
    else if (PQgetvalue(res, 0, 0)[0] != 't')
        rc = buf_fail(errmsg, 2,
                       "--auth-sql-function: %s(jsonb, text, text) must be a function "
                       "returning boolean",
                       cfg->auth_sql_function);
out:
    PQclear(res);
    PQfinish(conn);
    return rc;
}

static int gate_hosts(struct gate *g, const struct bridge_config *cfg, int loopback, char **errmsg)
{
    size_t i;

    if (cfg->nallowed_hosts > 0) {
        for (i = 0; i < cfg->nallowed_hosts; i++) {
            char **grown = realloc(g->hosts, (g->nhosts + 1) * sizeof *grown);
            if (!grown || !(grown[g->nhosts] = strdup(cfg->allowed_hosts[i]))) {
                if (grown)
                    g->hosts = grown;
                return buf_fail(errmsg, 1, "out of memory");
            }
            g->hosts = grown;
            g->nhosts++;
        }
        return 0;
    }
    if (loopback)
        return guard_default_hosts(cfg->listen_port, &g->hosts, &g->nhosts) < 0
                   ? buf_fail(errmsg, 1, "out of memory")
                   : 0;
    if (cfg->auth_jwt_key_file)
        return buf_fail(errmsg, 2,
                         "--allowed-hosts is required with --auth-jwt-key when listening on "
                         "%s (not loopback): name the Host values clients use (DNS rebinding)",
                         cfg->listen_host);
    return 0; /* --auth none off loopback: any Host */
}

static int gate_key(struct gate *g, const struct bridge_config *cfg, char **errmsg)
{
    struct auth_key key;
    char *msg = NULL;
    int alg = auth_alg_parse(cfg->auth_jwt_alg ? cfg->auth_jwt_alg : "HS256");

    if (alg < 0)
        return buf_fail(errmsg, 2, "--auth-jwt-alg must be HS256, HS384, HS512, RS256 or ES256");
    if (auth_key_load(cfg->auth_jwt_key_file, (enum auth_alg)alg, &key, &msg) < 0) {
        int rc = buf_fail(errmsg, 2, "--auth-jwt-key: %s", msg ? msg : "out of memory");
        free(msg);
        return rc;
    }
    g->verifier = auth_verifier_new(&key, cfg->auth_jwt_audience, cfg->auth_jwt_issuer);
    if (!g->verifier) {
        auth_key_clear(&key);
        return buf_fail(errmsg, 1, "out of memory");
    }
    return 0;
}

/* deny by default: anonymous only on loopback or when asked for */
static int gate_mode(const struct bridge_config *cfg, int loopback, char **errmsg)
{
    if (cfg->auth_none && cfg->auth_jwt_key_file)
        return buf_fail(errmsg, 2, "--auth none and --auth-jwt-key exclude each other");
    if (cfg->auth_sql_function && !cfg->auth_jwt_key_file)
        return buf_fail(errmsg, 2, "--auth-sql-function needs --auth-jwt-key (it judges tokens)");
    if (!cfg->auth_jwt_key_file && !cfg->auth_none && !loopback)
        return buf_fail(errmsg, 2,
                         "refusing to serve every stream to anyone on %s:%d: give "
                         "--auth-jwt-key FILE (signed tokens), or --auth none to serve without "
                         "authorization on purpose",
                         cfg->listen_host, cfg->listen_port);
    return 0;
}

int gate_start(struct bridge *b, char **errmsg)
{
    const struct bridge_config *cfg = &b->cfg;
    int loopback = guard_is_loopback(cfg->listen_host), rc;
    struct gate *g;

    *errmsg = NULL;
    if ((rc = gate_mode(cfg, loopback, errmsg)) != 0)
        return rc;
    if (!(g = calloc(1, sizeof *g)))
        return buf_fail(errmsg, 1, "out of memory");
    if ((rc = gate_hosts(g, cfg, loopback, errmsg)) != 0
        || (cfg->auth_jwt_key_file && (rc = gate_key(g, cfg, errmsg)) != 0)
        || (cfg->auth_sql_function && (rc = gate_policy_check(cfg, errmsg)) != 0))
        goto err;
    if (cfg->auth_sql_function
        && asprintf(&g->policy_sql, "SELECT %s($1::jsonb, $2::text, $3::text)",
                    cfg->auth_sql_function)
               < 0) {
        g->policy_sql = NULL;
        rc = buf_fail(errmsg, 1, "out of memory");
        goto err;
    }
    b->gate = g;
    if (cfg->auth_none && !loopback)
        LOG(LOG_WARN, "gate",
            "msg=\"authorization is off (--auth none): every client that reaches "
            "this address reads every stream and starts runs\" listen=%s:%d",
            cfg->listen_host, cfg->listen_port);
    LOG(LOG_INFO, "gate", "msg=\"authorization\" mode=%s alg=%s policy=%s hosts=%zu",
        g->verifier ? "jwt" : "anonymous",
        g->verifier ? (cfg->auth_jwt_alg ? cfg->auth_jwt_alg : "HS256") : "-",
        cfg->auth_sql_function ? cfg->auth_sql_function : "-", g->nhosts);
    return 0;
err:
    gate_free(g);
    return rc;
}

void gate_stop(struct bridge *b)
{
    gate_free(b->gate);
    b->gate = NULL;
}

/* ---------- request headers ---------- */

/* the access_token query argument (lws has decoded it), or NULL when absent
 * or given twice (an ambiguous credential is no credential) */
static char *gate_query_token(struct lws *wsi)
{
    char *out;

    return reqhdr_query_arg(wsi, AUTH_QUERY_ARG, &out) == 1 ? out : NULL;
}

char *gate_log_query(struct lws *wsi)
{
    char *q = NULL, *frag, *grown, *red;
    size_t qlen = 0;
    int i, len;

    for (i = 0; (len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i)) > 0; i++) {
        grown = realloc(q, qlen + (size_t)len + 2);
        if (!grown)
            break;
        q = grown;
        frag = q + qlen + (qlen ? 1 : 0);
        if (lws_hdr_copy_fragment(wsi, frag, len + 1, WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
            break;
        if (qlen)
            q[qlen] = '&';
        qlen += (size_t)len + (qlen ? 1 : 0);
        q[qlen] = '\0';
    }
    if (!q)
        return NULL;
    red = auth_redact_query(q);
    free(q);
    return red;
}

/* ---------- the checks ---------- */

static int gate_refuse(struct gate_refusal *no, int status, int challenge, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int gate_refuse(struct gate_refusal *no, int status, int challenge, const char *fmt, ...)
{
    va_list ap;

    no->status = status;
    no->challenge = challenge;
    va_start(ap, fmt);
    vsnprintf(no->body, sizeof no->body, fmt, ap);
    va_end(ap);
    return 0;
}

/* lws ends the request line at a decoded CR or LF in the URL: the rest of
 * the URL (later arguments, the message's tail) and the HTTP version are
 * lost.  An HTTP/1 request without a version token is such a cut request. */
static int gate_line_cut(struct lws *wsi)
{
    return lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_PATH) <= 0
           && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP) <= 0;
}

static int gate_host_ok(const struct gate *g, struct lws *wsi)
{
    char *host;
    int ok;

    if (!g->hosts)
        return 1;
    host = reqhdr_get(wsi, WSI_TOKEN_HOST);
    if (!host)
        host = reqhdr_get(wsi, WSI_TOKEN_HTTP_COLON_AUTHORITY);
    ok = guard_host_allowed(host, g->hosts, g->nhosts);
    if (!ok)
        LOG(LOG_INFO, "gate", "msg=\"host refused\" host=\"%s\"", log_text(host));
    free(host);
    return ok;
}

static const char *gate_cross_site(struct lws *wsi)
{
    const struct bridge_config *cfg = &gate_bridge(wsi)->cfg;
    char *site = reqhdr_custom(wsi, "sec-fetch-site:"), *origin = reqhdr_get(wsi, WSI_TOKEN_ORIGIN),
         *host = reqhdr_get(wsi, WSI_TOKEN_HOST);
    const char *why;

    if (!host)
        host = reqhdr_get(wsi, WSI_TOKEN_HTTP_COLON_AUTHORITY);
    why = guard_cross_site(site, origin, lws_is_ssl(wsi) ? "https" : "http", host,
                           cfg->cors_origins, cfg->ncors_origins);
    if (why)
        LOG(LOG_INFO, "gate",
            "msg=\"cross-site side effect refused\" sec_fetch_site=\"%s\" origin=\"%s\"",
            log_text(site), log_text(origin));
    free(site);
    free(origin);
    free(host);
    return why;
}

/* the token of the request, verified; 1 with *claims, 0 refused */
static int gate_token(const struct gate *g, struct lws *wsi, const struct gate_target *t,
                      struct auth_claims **claims, struct gate_refusal *no, enum auth_source *src)
{
    char *authz = reqhdr_get(wsi, WSI_TOKEN_HTTP_AUTHORIZATION),
         *cookie = reqhdr_get(wsi, WSI_TOKEN_HTTP_COOKIE), *query = gate_query_token(wsi),
         *token = auth_token_pick(authz, cookie, query, src);
    enum auth_result r = auth_verify(g->verifier, token, time(NULL), claims);

    if (token)
        explicit_bzero(token, strlen(token));
    free(authz);
    free(cookie);
    free(query);
    free(token);
    if (r == AUTH_OK)
        return 1;
    LOG(LOG_INFO, "gate", "msg=\"token refused\" reason=\"%s\" source=%s stream=%s:%s",
        auth_reason(r), auth_source_name(*src), t->kind ? t->kind : "-", log_text(t->id));
    return gate_refuse(no, 401, 1, "unauthorized: %s", auth_reason(r));
}

/* what the claims must cover */
static int gate_cover(const struct auth_claims *c, const struct gate_target *t,
                      struct gate_refusal *no, enum auth_source src)
{
    const char *what = NULL;

    if (t->action == GATE_METRICS && !auth_may_metrics(c))
        what = "the token does not allow /metrics (aegis.metrics)";
    else if ((t->action == GATE_READ || t->action == GATE_READ_AND_RUN || t->action == GATE_RUN)
             && !auth_may_subscribe(c, t->kind, t->id))
        what = "the token does not cover this stream";
    else if ((t->action == GATE_READ_AND_RUN || t->action == GATE_RUN)
             && !auth_may_run(c, t->agent_type))
        what = "the token may not start runs of this agent type (aegis.run)";
    if (!what)
        return 1;
    LOG(LOG_INFO, "gate", "msg=forbidden why=\"%s\" sub=\"%s\" source=%s stream=%s:%s", what,
        log_text(c->sub), auth_source_name(src), t->kind ? t->kind : "-", log_text(t->id));
    return gate_refuse(no, 403, 0, "forbidden: %s", what);
}

/* HTTP/2: lws 4.1.6 keeps no header it has no token for on an HTTP/2
 * stream (lib/roles/h2/hpack.c drops the value, lib/roles/http/parsers.c's
 * lws_hdr_custom_* refuse streams), so X-Aegis-Request never arrives there.
 * The signal instead is the Origin header (a token lws keeps): browsers send
 * it on every POST, and gate_cross_site has already refused it unless it is
 * the bridge's own origin or a listed --cors-origin. */
static int gate_run_origin(struct lws *wsi, enum auth_source src, struct gate_refusal *no)
{
    char *origin = reqhdr_get(wsi, WSI_TOKEN_ORIGIN);
    int ok = origin != NULL;

    free(origin);
    if (ok)
        return 1;
    LOG(LOG_INFO, "gate", "msg=\"HTTP/2 run request without Origin refused\" source=%s",
        auth_source_name(src));
    return gate_refuse(no, 403, 0,
                       "forbidden: a run request over HTTP/2 needs Authorization: Bearer or "
                       "the Origin header of the bridge or a --cors-origin");
}

/* a run request authenticated by a cookie alone could come from a form */
static int gate_run_header(struct lws *wsi, enum auth_source src, struct gate_refusal *no)
{
    char *x;
    int ok;

    if (src == AUTH_SRC_BEARER)
        return 1;
    if (h2_is_stream(wsi))
        return gate_run_origin(wsi, src, no);
    x = reqhdr_custom(wsi, "x-aegis-request:");
    ok = x && !strcmp(x, "1");
    free(x);
    if (ok)
        return 1;
    LOG(LOG_INFO, "gate", "msg=\"run request without X-Aegis-Request refused\" source=%s",
        auth_source_name(src));
    return gate_refuse(no, 403, 0,
                       "forbidden: a run request needs Authorization: Bearer or the "
                       "header X-Aegis-Request: 1");
}

int gate_check(struct lws *wsi, const struct gate_target *t, struct auth_claims **claims,
               struct gate_refusal *no)
{
    struct bridge *b = gate_bridge(wsi);
    const struct gate *g = b->gate;
    enum auth_source src = AUTH_SRC_NONE;
    const char *why;

    *claims = NULL;
    memset(no, 0, sizeof *no);
    if (gate_line_cut(wsi))
        return gate_refuse(
            no, 400, 0,
            "bad request: the URL holds a line break (%%0A or %%0D), which "
            "would cut it; send multi-line messages with POST /conversations/ID/runs");
    if (!g)
        return gate_refuse(no, 503, 0, "service unavailable: not started");
    if (!gate_host_ok(g, wsi))
        return gate_refuse(no, 421, 0, "misdirected request: this Host is not in --allowed-hosts");
    if ((t->action == GATE_READ_AND_RUN || t->action == GATE_RUN) && (why = gate_cross_site(wsi)))
        return gate_refuse(no, 403, 0, "%s", why);
    if (t->action == GATE_OPEN)
        return 1;
    if (!g->verifier) {
        *claims = auth_claims_all();
    } else if (!gate_token(g, wsi, t, claims, no, &src)) {
        return 0;
    }
    if (!*claims)
        return -1;
    if (!gate_cover(*claims, t, no, src)
        || (t->action == GATE_RUN && !gate_run_header(wsi, src, no))) {
        auth_claims_free(*claims);
        *claims = NULL;
        return 0;
    }
    return 1;
}

/* ---------- CORS ---------- */

int gate_cors_credentials(const struct bridge *b, const char *origin)
{
    return guard_origin_listed(origin, b->cfg.cors_origins, b->cfg.ncors_origins, 0);
}

/* ---------- the SQL policy ---------- */

int gate_policy_on(const struct bridge *b)
{
    return b->gate && b->gate->policy_sql;
}

static void gate_policy_done(struct pgconn *c, PGresult *res, void *ud)
{
    struct gate_policy_call *call = ud;
    int allowed = 0;

    (void)c;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        LOG(LOG_WARN, "gate", "msg=\"policy function failed: denied\" error=\"%s\"",
            log_text(res ? PQresultErrorMessage(res) : "connection lost"));
    else if (PQgetisnull(res, 0, 0))
        LOG(LOG_WARN, "gate", "msg=\"policy function returned NULL: denied\"");
    else
        allowed = PQgetvalue(res, 0, 0)[0] == 't';
    call->done(call->ud, allowed, call->gone);
    free(call);
}

struct gate_policy_call *gate_policy_ask(struct bridge *b, const struct auth_claims *c,
                                         const char *kind, const char *id, gate_policy_cb done,
                                         void *ud)
{
    struct gate_policy_call *call = calloc(1, sizeof *call);
    const char *params[3] = { c->json, kind, id };

    if (!call)
        return NULL;
    call->done = done;
    call->ud = ud;
    if (!b->pg || pgconn_query(b->pg, b->gate->policy_sql, 3, params, gate_policy_done, call) < 0) {
        free(call);
        return NULL;
    }
    return call;
}

void gate_policy_forget(struct gate_policy_call *call)
{
    if (call)
        call->gone = 1;
}

/* ---------- token expiry ---------- */

static void gate_expiry_fire(void *ud)
{
    struct gate_expiry *e = ud;

    LOG(LOG_INFO, "gate", "msg=\"token expired: closing the stream\"");
    if (e->wsi)
        lws_set_timeout(e->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

struct gate_expiry *gate_expiry_start(struct bridge *b, struct lws *wsi, long long exp)
{
    struct gate_expiry *e;
    long long now = (long long)time(NULL), at;

    if (exp <= 0)
        return NULL;
    /* a token accepted within the leeway after exp lives until the leeway
     * ends, so its reconnect is refused instead of closed again at once */
    at = exp > now ? exp : exp + AUTH_LEEWAY_SECONDS;
    if (!(e = calloc(1, sizeof *e)))
        return NULL;
    e->wsi = wsi;
    e->timer = loop_timer_new(b, gate_expiry_fire, e);
    if (!e->timer) {
        free(e);
        return NULL;
    }
    loop_timer_schedule(e->timer, (at > now ? at - now : 0) * 1000000LL + 100000);
    return e;
}

void gate_expiry_free(struct gate_expiry *e)
{
    if (!e)
        return;
    loop_timer_free(e->timer);
    free(e);
}
